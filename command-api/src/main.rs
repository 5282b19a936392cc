//! `betledger-api`: reads its configuration from the environment and serves the wallet API.
#![forbid(unsafe_code)]

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = command_api::Config::from_env().context("reading configuration")?;
    command_api::config::init_tracing(&config);
    tracing::info!(config = %config, "starting betledger-api");
    command_api::run(config).await
}
