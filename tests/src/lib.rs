//! Helpers for the end-to-end tests: start the real API in-process on a random port over
//! a test's own database, and talk to it over HTTP.
//!
//! Each test gets a fresh database from `#[sqlx::test]` (which needs `DATABASE_URL`, set
//! by `scripts/test.sh`), so tests run side by side.
//!
//! # Layout
//! - this file: the API in-process (`spawn_app`, `TestApp`) and the test configuration.
//! - [`readside`]: the relay and workers in-process over a test's own names, and the
//!   check that the read models equal a fold of the log.
//! - [`acked`]: steady load through the HTTP API with every acknowledged answer recorded,
//!   retried under its id, and the check that the log holds exactly those once.
//! - [`backup`]: `scripts/backup.sh` run as an operator runs it (drill, restore after a
//!   failover).
//! - [`workload`]: the shared workload and fixtures (the `betledger-workload` crate).
//!
//! The tests themselves: `e2e/` (one binary, every module a face or a part),
//! `service_restarts/` (restarts the shared services, so a binary of its own) and
//! `failover/` (kills nodes of the HA topology of `scripts/ha.sh`; `#[ignore]`d, run by
//! `scripts/test.sh` unless `BETLEDGER_HA_TESTS=0`), and `backup/` (the restore drill on a
//! PostgreSQL of its own; `#[ignore]`d, run by `scripts/backup.sh drill` from `scripts/test.sh`).
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use command_api::auth::{ApiClient, Scope};
use command_api::providers::Provider;
use command_api::{Application, Config};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A token with read and write scopes.
pub const WRITER_TOKEN: &str = "test-writer-token";
/// A token with the read scope only.
pub const READER_TOKEN: &str = "test-reader-token";
/// The Hub88-style face's test operator, and its key pair (tests/fixtures, made with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`; test use only).
pub const HUB88_OPERATOR: &str = "op88";
pub const HUB88_PUBLIC_KEY: &str = include_str!("../fixtures/hub88-test-key.pub.pem");
pub const HUB88_PRIVATE_KEY: &str = include_str!("../fixtures/hub88-test-key.pem");
/// Another key, which the operator does not use.
pub const HUB88_OTHER_KEY: &str = include_str!("../fixtures/hub88-other-key.pem");

/// `body` signed as the Hub88 aggregator signs it: RSA-SHA256 PKCS#1 v1.5, base64, with the
/// PKCS#8 private key in `private_pem`.
pub fn hub88_sign(private_pem: &str, body: &[u8]) -> String {
    use base64::Engine;
    let b64: String = private_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("a PEM body");
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("a PKCS#8 RSA key");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        body,
        &mut signature,
    )
    .expect("signing");
    base64::engine::general_purpose::STANDARD.encode(signature)
}

/// The operator client's token (scopes read, write and operator: it may lock accounts).
pub const OPERATOR_TOKEN: &str = "test-operator-token";
/// Two game providers and their secrets.
pub const PROVIDER_A: &str = "alpha";
pub const PROVIDER_A_SECRET: &str = "alpha-secret-0123456789";
pub const PROVIDER_B: &str = "beta";
pub const PROVIDER_B_SECRET: &str = "beta-secret-9876543210";

pub mod acked;
pub mod backup;
pub mod readside;
/// The workload and fixtures shared with the benchmarks (the `betledger-workload` crate).
pub use workload;

/// The Redis the tests use: `BETLEDGER_REDIS_URL` (set by `scripts/test.sh`), else the
/// loopback Redis of `scripts/services.sh`.
pub fn redis_url() -> String {
    std::env::var("BETLEDGER_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379".into())
}

/// The RabbitMQ the tests use: `BETLEDGER_AMQP_URL`, else that of `scripts/services.sh`.
pub fn amqp_url() -> String {
    std::env::var("BETLEDGER_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:55672/%2f".into())
}

/// Logging for the tests that run services' failures on purpose: quiet unless `RUST_LOG`
/// asks (amqprs logs every lost connection as an error).
pub fn quiet_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

/// Runs `verify` over the whole log and asserts it is clean (`when` says at which moment,
/// in the failure); returns the events it read.
pub async fn verify_clean(pool: &PgPool, when: &str) -> u64 {
    let report = replay_tool::verify::verify(
        pool,
        &replay_tool::verify::VerifyConfig {
            page_size: 500,
            listed_max: 20,
            progress: replay_tool::progress::ProgressMode::Quiet,
        },
    )
    .await
    .expect("verify runs");
    assert!(report.ok, "verify {when}: {:?}", report.listed);
    report.events
}

/// A name no other test (or earlier run) uses: the prefix of a test's Redis keys and
/// RabbitMQ exchanges and queues, so tests run side by side.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "t-{test}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The configuration tests run the API with: port 0, two clients, read models under a
/// prefix of the test's own.
pub fn test_config() -> Config {
    Config {
        listen_addr: "127.0.0.1:0".parse().expect("a literal socket address"),
        database_url: String::new(),
        db_connections_max: 5,
        clients: vec![
            ApiClient::new("writer", WRITER_TOKEN, vec![Scope::Read, Scope::Write]),
            ApiClient::new("reader", READER_TOKEN, vec![Scope::Read]),
            ApiClient::new(
                "operator",
                OPERATOR_TOKEN,
                vec![Scope::Read, Scope::Write, Scope::Operator],
            ),
        ],
        log_json: false,
        redis_url: redis_url(),
        redis_prefix: unique_prefix("api"),
        providers: vec![
            Provider::new(PROVIDER_A, PROVIDER_A_SECRET),
            Provider::new(PROVIDER_B, PROVIDER_B_SECRET),
        ],
        session_ttl_s: 60,
        provider_brands: Default::default(),
        rate_limit_per_s: 100_000,
        rate_limit_burst: 100_000,
        concurrency_max: 256,
        expiry_interval_ms: 200,
        // `scripts/test.sh` runs the end-to-end suite once per write path.
        write_path: std::env::var("BETLEDGER_WRITE_PATH")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(command_api::config::WritePath::Batched),
        write_shards: command_api::config::WRITE_SHARDS_DEFAULT,
        cluster: None,
        protection: Default::default(),
        hub88: vec![
            command_api::hub88::Hub88Operator::new(HUB88_OPERATOR, HUB88_PUBLIC_KEY)
                .expect("the test key"),
        ],
        header_read_timeout_ms: command_api::config::HEADER_READ_TIMEOUT_MS_DEFAULT,
        credit_caps: Default::default(),
    }
}

/// A running API server and an HTTP client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub pool: PgPool,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts the real API (the cqrs-es write path) over `pool`, on a random port.
pub async fn spawn_app(pool: PgPool) -> TestApp {
    let app = Application::with_pool(&test_config(), pool.clone())
        .await
        .expect("the API binds a loopback port");
    start_app(app, pool)
}

/// Starts the real API over `pool`, reading "now" from `clock` (a `FixedClock` the test
/// sets and moves).
pub async fn spawn_app_at(
    pool: PgPool,
    clock: std::sync::Arc<dyn command_api::clock::Clock>,
) -> TestApp {
    let app = Application::with_clock(&test_config(), pool.clone(), clock)
        .await
        .expect("the API binds a loopback port");
    start_app(app, pool)
}

/// Starts the real API over `pool` with `config` (from [`test_config`], changed).
pub async fn spawn_app_with(pool: PgPool, config: Config) -> TestApp {
    let app = Application::with_pool(&config, pool.clone())
        .await
        .expect("the API binds a loopback port");
    start_app(app, pool)
}

/// Starts the real API over `pool` whose read endpoints serve the read models under
/// `prefix` (those a test's `ReadSide` writes).
pub async fn spawn_app_reading(pool: PgPool, prefix: &str) -> TestApp {
    let mut config = test_config();
    config.redis_prefix = prefix.to_string();
    let app = Application::with_pool(&config, pool.clone())
        .await
        .expect("the API binds a loopback port");
    start_app(app, pool)
}

/// Serves an already built `Application` in the background.
pub fn start_app(app: Application, pool: PgPool) -> TestApp {
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        http: reqwest::Client::new(),
        pool,
        stop: Some(stop),
        server: Some(server),
    }
}

/// A second, independent pool on the same database as `pool`: what a restarted process or
/// another API instance would open.
pub async fn reopen(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(5)
        .connect_with((*pool.connect_options()).clone())
        .await
        .expect("reconnecting to the test database")
}

/// `X-Signature` of `body` for provider `pid` with `secret`.
pub fn sign(pid: &str, secret: &str, body: &[u8]) -> String {
    Provider::new(pid, secret).sign(body)
}

/// A JSON answer: status and body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The contract's error code, if this is an error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("the API sends a body");
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// POSTs `body` as the writer client.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_raw(path, body.to_string(), Some(WRITER_TOKEN))
            .await
    }

    /// POSTs raw bytes with an optional bearer token.
    pub async fn post_raw(&self, path: &str, body: String, token: Option<&str>) -> Reply {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// POSTs `body` to `/hub88/{operator}/{call}`, signed with `signature` (`None`: no
    /// header). Every answer of that face is HTTP 200; the status is in the body.
    pub async fn hub88_raw(
        &self,
        operator: &str,
        call: &str,
        body: &[u8],
        signature: Option<String>,
    ) -> Reply {
        let mut request = self
            .http
            .post(self.url(&format!("/hub88/{operator}/{call}")))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub88-signature", signature);
        }
        self.send(request).await
    }

    /// POSTs `body` to the test operator's `call`, signed with its key.
    pub async fn hub88(&self, call: &str, body: Value) -> Reply {
        let bytes = body.to_string().into_bytes();
        let signature = hub88_sign(HUB88_PRIVATE_KEY, &bytes);
        self.hub88_raw(HUB88_OPERATOR, call, &bytes, Some(signature))
            .await
    }

    /// Sends `method` to `path` with `body` as JSON and an optional bearer token.
    pub async fn send_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// GETs `path` as the reader client.
    pub async fn get(&self, path: &str) -> Reply {
        self.send_get_with_token(path, Some(READER_TOKEN)).await
    }

    /// GETs `path` with an optional bearer token.
    pub async fn send_get_with_token(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// POSTs `body` to `/provider/{pid}/{call}`, signed with `secret` (the raw body as
    /// sent), with `timestamp` set to now unless the body has one.
    pub async fn provider(&self, pid: &str, secret: &str, call: &str, mut body: Value) -> Reply {
        if body.get("timestamp").is_none() {
            body["timestamp"] = Value::from(chrono::Utc::now().timestamp());
        }
        let raw = body.to_string();
        let signature = sign(pid, secret, raw.as_bytes());
        self.provider_raw(pid, call, raw, Some(&signature)).await
    }

    /// POSTs raw bytes to a provider endpoint with an optional `X-Signature`.
    pub async fn provider_raw(
        &self,
        pid: &str,
        call: &str,
        body: String,
        signature: Option<&str>,
    ) -> Reply {
        let mut request = self
            .http
            .post(self.url(&format!("/provider/{pid}/{call}")))
            .header("content-type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-signature", signature);
        }
        self.send(request).await
    }

    /// Ends the game session of `token`, asserting success.
    pub async fn end_session(&self, token: &str) {
        let reply = self
            .send_with(
                reqwest::Method::DELETE,
                &format!("/v1/sessions/{token}"),
                serde_json::json!({}),
                Some(WRITER_TOKEN),
            )
            .await;
        assert!(reply.status < 300, "ending a session: {:?}", reply.body);
    }

    /// Starts a game session for `player` (EUR) with provider `pid` on game `game`.
    pub async fn session(&self, player: &str, pid: &str, game: &str) -> String {
        let reply = self
            .post(
                "/v1/sessions",
                serde_json::json!({"player_id": player, "currency": "EUR",
                                   "provider_id": pid, "game_id": game}),
            )
            .await;
        assert_eq!(reply.status, 201, "session: {:?}", reply.body);
        reply.body["token"].as_str().expect("a token").to_string()
    }

    /// Opens a wallet and returns its id.
    pub async fn open_wallet(&self, player: &str, currency: &str) -> String {
        let reply = self
            .post(
                "/v1/wallets",
                serde_json::json!({"player_id": player, "currency": currency}),
            )
            .await;
        assert_eq!(reply.status, 201, "open wallet: {:?}", reply.body);
        reply.body["wallet_id"]
            .as_str()
            .expect("an opened wallet has an id")
            .to_string()
    }

    /// Deposits `amount` under transaction `tx`, asserting success.
    pub async fn deposit(&self, wallet: &str, tx: &str, amount: &str) -> Reply {
        let reply = self
            .post(
                &format!("/v1/wallets/{wallet}/deposits"),
                serde_json::json!({"transaction_id": tx, "amount": amount}),
            )
            .await;
        assert_eq!(reply.status, 200, "deposit: {:?}", reply.body);
        reply
    }

    /// How many events the log holds, over all wallets.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("counting events")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task ends")
                .expect("the server stops cleanly");
        }
    }
}
