//! The write paths a run measures, behind one `Target`: cqrs-es's own framework, the
//! engine's write path in-process, and the same through the real API over HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework};
use domain::{Wallet, WalletCommand, WalletId};
use eventstore::{BatchConfig, BatchedWalletStore, CqrsWalletStore, ExecuteError, WalletStore};
use postgres_es::PostgresEventRepository;
use serde_json::json;
use sqlx::PgPool;

use crate::Args;

pub enum Outcome {
    Done,
    Refused,
    Failed,
}

#[async_trait::async_trait]
pub trait Target: Send + Sync {
    /// Runs one command; the second value counts retries after a lost race.
    async fn run(&self, wallet: WalletId, command: WalletCommand) -> (Outcome, u64);
}

pub struct Framework(
    pub CqrsFramework<Wallet, PersistedEventStore<PostgresEventRepository, Wallet>>,
);

#[async_trait::async_trait]
impl Target for Framework {
    async fn run(&self, wallet: WalletId, command: WalletCommand) -> (Outcome, u64) {
        let id = wallet.to_string();
        let mut metadata = HashMap::new();
        if let Some(tx) = command.transaction_id() {
            metadata.insert("transaction_id".to_string(), tx.to_string());
        }
        for retry in 0..32 {
            match self
                .0
                .execute_with_metadata(&id, command.clone(), metadata.clone())
                .await
            {
                Ok(()) => return (Outcome::Done, retry),
                Err(AggregateError::AggregateConflict) => continue,
                Err(AggregateError::UserError(_)) => return (Outcome::Refused, retry),
                Err(_) => return (Outcome::Failed, retry),
            }
        }
        (Outcome::Failed, 32)
    }
}

/// Several instances of a path on one database, sent commands in turn, as a load
/// balancer's round-robin would: consecutive commands on a wallet reach different ones.
pub struct RoundRobin {
    targets: Vec<Arc<dyn Target>>,
    next: std::sync::atomic::AtomicUsize,
    /// Send each wallet's commands to one instance instead (a load balancer routing by
    /// wallet), for comparison.
    by_wallet: bool,
}

impl RoundRobin {
    pub fn new(targets: Vec<Arc<dyn Target>>, by_wallet: bool) -> Self {
        RoundRobin {
            targets,
            next: std::sync::atomic::AtomicUsize::new(0),
            by_wallet,
        }
    }
}

#[async_trait::async_trait]
impl Target for RoundRobin {
    async fn run(&self, wallet: WalletId, command: WalletCommand) -> (Outcome, u64) {
        let n = if self.by_wallet {
            (wallet.as_uuid().as_u128() % self.targets.len() as u128) as usize
        } else {
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        };
        self.targets[n % self.targets.len()]
            .run(wallet, command)
            .await
    }
}

pub struct Engine(pub Arc<dyn WalletStore>);

#[async_trait::async_trait]
impl Target for Engine {
    async fn run(&self, wallet: WalletId, command: WalletCommand) -> (Outcome, u64) {
        match self.0.execute(wallet, command).await {
            Ok(_) => (Outcome::Done, 0),
            Err(ExecuteError::Refused { .. }) => (Outcome::Refused, 0),
            Err(_) => (Outcome::Failed, 0),
        }
    }
}

const BENCH_TOKEN: &str = "write-bench-token";

pub struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    /// The API over `pool`, on the batched or the straightforward path; with `cluster`,
    /// as one of several instances on the database (`command_api::cluster`).
    pub async fn start(
        pool: PgPool,
        args: &Args,
        batched: bool,
        cluster: bool,
    ) -> anyhow::Result<Self> {
        let connections = args.connections;
        use command_api::auth::{ApiClient, Scope};
        let config = command_api::Config {
            listen_addr: "127.0.0.1:0".parse()?,
            database_url: String::new(),
            db_connections_max: connections,
            clients: vec![ApiClient::new(
                "bench",
                BENCH_TOKEN,
                vec![Scope::Read, Scope::Write],
            )],
            log_json: false,
            redis_url: command_api::config::REDIS_URL_DEFAULT.into(),
            redis_prefix: format!("write-bench-{}", std::process::id()),
            providers: vec![],
            session_ttl_s: 60,
            provider_brands: Default::default(),
            rate_limit_per_s: 1_000_000,
            rate_limit_burst: 1_000_000,
            concurrency_max: 10_000,
            expiry_interval_ms: 0,
            write_path: command_api::config::WritePath::Cqrs,
            write_shards: args.shards,
            cluster: cluster.then(|| command_api::config::ClusterConfig {
                advertise: None,
                secret: "write-bench-cluster-secret".into(),
            }),
            protection: Default::default(),
            hub88: Vec::new(),
            header_read_timeout_ms: command_api::config::HEADER_READ_TIMEOUT_MS_DEFAULT,
            credit_caps: Default::default(),
        };
        let store: Arc<dyn WalletStore> = if batched {
            Arc::new(BatchedWalletStore::new(
                pool.clone(),
                BatchConfig::default(),
            ))
        } else {
            Arc::new(CqrsWalletStore::new(pool.clone()))
        };
        let app = command_api::Application::with_store(&config, pool, store).await?;
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until(std::future::pending()));
        Ok(Http {
            base,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1_024)
                .build()?,
        })
    }
}

#[async_trait::async_trait]
impl Target for Http {
    async fn run(&self, wallet: WalletId, command: WalletCommand) -> (Outcome, u64) {
        let (path, body) = match command {
            WalletCommand::Deposit {
                transaction_id,
                amount,
                ..
            } => (
                format!("/v1/wallets/{wallet}/deposits"),
                json!({"transaction_id": transaction_id, "amount": amount.to_string()}),
            ),
            WalletCommand::Withdraw {
                transaction_id,
                amount,
                ..
            } => (
                format!("/v1/wallets/{wallet}/withdrawals"),
                json!({"transaction_id": transaction_id, "amount": amount.to_string()}),
            ),
            WalletCommand::Reserve {
                reservation_id,
                amount,
                game_id,
                round_id,
                ..
            } => (
                format!("/v1/wallets/{wallet}/reservations"),
                json!({"transaction_id": reservation_id, "amount": amount.to_string(),
                       "game_id": game_id, "round_id": round_id}),
            ),
            WalletCommand::Settle {
                reservation_id,
                transaction_id,
                payout,
                ..
            } => (
                format!("/v1/wallets/{wallet}/reservations/{reservation_id}/settle"),
                json!({"transaction_id": transaction_id, "payout": payout.to_string()}),
            ),
            WalletCommand::Refund {
                reservation_id,
                transaction_id,
            } => (
                format!("/v1/wallets/{wallet}/reservations/{reservation_id}/refund"),
                json!({"transaction_id": transaction_id}),
            ),
            _ => return (Outcome::Failed, 0),
        };
        let sent = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(BENCH_TOKEN)
            .json(&body)
            .send()
            .await;
        match sent.map(|r| r.status().as_u16()) {
            Ok(200) => (Outcome::Done, 0),
            Ok(404 | 409 | 422) => (Outcome::Refused, 0),
            _ => (Outcome::Failed, 0),
        }
    }
}
