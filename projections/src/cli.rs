//! Command-line options shared by the binaries of this crate.

/// Where the three services are; each option also reads its environment variable.
#[derive(clap::Args, Debug, Clone)]
pub struct ServiceUrls {
    #[arg(
        long,
        env = "BETLEDGER_DATABASE_URL",
        default_value = "postgres://betledger@127.0.0.1:55432/betledger",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Redis: `redis://host:port/db`, or through Sentinel
    /// `redis-sentinel://host:port/db?sentinelServiceName=NAME&node=host:port...`.
    #[arg(
        long,
        env = "BETLEDGER_REDIS_URL",
        default_value = "redis://127.0.0.1:56379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// RabbitMQ: one AMQP URL, or a cluster's nodes' URLs separated by commas.
    #[arg(
        long,
        env = "BETLEDGER_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:55672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,
}
