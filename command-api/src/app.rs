//! Builds the application's state and router over a write path, and runs the server until
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use eventstore::{CqrsWalletStore, WalletStore};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::json::BODY_BYTES_MAX;
use crate::state::{AppState, ReadModels, Services};

/// The whole HTTP surface. A request passes, in order: the check that marks an answer
/// given before its body was read (`Connection: close`), the metrics, the gate (who is
/// calling, from the head alone: an unauthenticated request ends here, its body drained
/// but not parsed), the slots (its principal's share, then the server's), then its route.
pub fn router(state: AppState, concurrency_max: usize) -> Router {
    let slots = Arc::new(crate::limits::Slots::new(concurrency_max));
    crate::routes::router()
        .layer(axum::middleware::from_fn_with_state(
            slots,
            crate::limits::admit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::gate::gate,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(axum::middleware::from_fn(crate::json::close_unread))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

/// A bound, not yet serving, API server: tests start it in-process on port 0.
pub struct Application {
    listener: TcpListener,
    router: Router,
    expiry: Option<crate::expiry::Expiry>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
    presence: Arc<crate::presence::Presence>,
    header_read_timeout: std::time::Duration,
}

impl Application {
    /// Connects to the event store, migrates it and binds the listen address.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let pool = eventstore::db::connect(&config.database_url, config.db_connections_max)
            .await
            .context(
                "connecting to PostgreSQL (BETLEDGER_DATABASE_URL); is it running? \
                 `scripts/services.sh up` starts it",
            )?;
        eventstore::db::migrate(&pool)
            .await
            .context("migrating the event store")?;
        Self::with_pool(config, pool).await
    }

    /// Binds the listen address over an already migrated pool, with the configured
    /// write path.
    pub async fn with_pool(config: &Config, pool: PgPool) -> anyhow::Result<Self> {
        Self::with_clock(config, pool, Arc::new(crate::clock::SystemClock)).await
    }

    /// As [`Application::with_pool`], reading "now" from `clock` (a test's).
    pub async fn with_clock(
        config: &Config,
        pool: PgPool,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> anyhow::Result<Self> {
        // The recorder first: what the write path registers as it starts must reach it.
        crate::metrics::handle();
        let store: Arc<dyn WalletStore> = match config.write_path {
            crate::config::WritePath::Cqrs => Arc::new(CqrsWalletStore::new(pool.clone())),
            crate::config::WritePath::Batched => Arc::new(eventstore::BatchedWalletStore::new(
                pool.clone(),
                eventstore::BatchConfig {
                    shards: config.write_shards,
                    ..eventstore::BatchConfig::default()
                },
            )),
        };
        Self::assemble(config, pool, store, clock).await
    }

    /// Binds the listen address over a given write path.
    pub async fn with_store(
        config: &Config,
        pool: PgPool,
        store: Arc<dyn WalletStore>,
    ) -> anyhow::Result<Self> {
        Self::assemble(config, pool, store, Arc::new(crate::clock::SystemClock)).await
    }

    async fn assemble(
        config: &Config,
        pool: PgPool,
        store: Arc<dyn WalletStore>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("binding {} (BETLEDGER_API_ADDR)", config.listen_addr))?;
        // Connects in the background: a Redis that is down gives 503 on the read
        // endpoints, not an API that cannot start.
        let client = readmodel::connect(&config.redis_url)
            .await
            .context("configuring the Redis client (BETLEDGER_REDIS_URL)")?;
        let cluster = match &config.cluster {
            None => None,
            Some(c) => {
                let address = match &c.advertise {
                    Some(address) => address.clone(),
                    None => {
                        let bound = listener
                            .local_addr()
                            .context("the listen address to advertise")?;
                        anyhow::ensure!(
                            !bound.ip().is_unspecified(),
                            "BETLEDGER_CLUSTER_ADDR=auto advertises the listen address, and \
                             {bound} is not one the other instances can reach: set \
                             BETLEDGER_CLUSTER_ADDR to HOST:PORT"
                        );
                        bound.to_string()
                    }
                };
                Some(
                    crate::cluster::Cluster::join(pool.clone(), address, c.secret.clone())
                        .await
                        .context("joining the other instances (BETLEDGER_CLUSTER_ADDR)")?,
                )
            }
        };
        let local = store;
        let store: Arc<dyn WalletStore> = match &cluster {
            None => local.clone(),
            Some(cluster) => Arc::new(crate::cluster::RoutedStore {
                local: local.clone(),
                cluster: cluster.clone(),
            }),
        };
        let presence = crate::presence::Presence::new(pool.clone(), cluster.is_some());
        let state = AppState::new(Services {
            presence: presence.clone(),
            protection: config.protection,
            credit_caps: config.credit_caps.clone(),
            clock,
            hub88: Arc::new(
                config
                    .hub88
                    .iter()
                    .map(|o| (o.id.clone(), o.clone()))
                    .collect(),
            ),
            store,
            local,
            cluster: cluster.clone(),
            brands: Arc::new(crate::brands::BrandDirectory::new(pool.clone())),
            provider_brands: Arc::new(config.provider_brands.clone()),
            pool,
            clients: Arc::new(config.clients.clone()),
            metrics: crate::metrics::handle(),
            read_models: ReadModels {
                client: client.clone(),
                keys: readmodel::Keys::new(&config.redis_prefix),
            },
            sessions: crate::sessions::Sessions::new(
                client,
                &config.redis_prefix,
                config.session_ttl_s,
            ),
            providers: Arc::new(
                config
                    .providers
                    .iter()
                    .map(|p| (p.id.clone(), p.clone()))
                    .collect(),
            ),
            limiter: Arc::new(crate::limits::RateLimiter::new(
                config.rate_limit_per_s,
                config.rate_limit_burst,
            )),
        });
        crate::metrics::register_at_zero(config);
        let expiry = (config.expiry_interval_ms > 0).then(|| crate::expiry::Expiry {
            pool: state.pool.clone(),
            store: state.store.clone(),
            interval: std::time::Duration::from_millis(config.expiry_interval_ms),
            clock: state.clock.clone(),
        });
        Ok(Self {
            listener,
            router: router(state, config.concurrency_max),
            expiry,
            cluster,
            presence,
            header_read_timeout: std::time::Duration::from_millis(config.header_read_timeout_ms),
        })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // The expiry sweep runs beside the server and stops with it.
        let (stop_sweep, sweep_stopped) = tokio::sync::oneshot::channel::<()>();
        let sweep = self.expiry.map(|e| tokio::spawn(e.run(sweep_stopped)));
        // So does the cluster heartbeat; stopping, the instance leaves the cluster.
        let (stop_beat, beat_stopped) = tokio::sync::oneshot::channel::<()>();
        let beat = self.cluster.map(|c| tokio::spawn(c.run(beat_stopped)));
        // And the count of instances beside it outside a cluster (`presence`).
        let (stop_presence, presence_stopped) = tokio::sync::oneshot::channel::<()>();
        let presence = tokio::spawn(self.presence.run(presence_stopped));
        let served = crate::serve::serve(
            self.listener,
            self.router,
            self.header_read_timeout,
            shutdown,
        )
        .await;
        let _ = stop_sweep.send(());
        let _ = stop_beat.send(());
        let _ = stop_presence.send(());
        let _ = presence.await;
        if let Some(sweep) = sweep {
            let _ = sweep.await;
        }
        if let Some(beat) = beat {
            let _ = beat.await;
        }
        served
    }
}

/// Runs the API until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let app = Application::build(&config).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, "betledger-api listening");
    println!("betledger-api listening on http://{addr}");
    app.run_until(shutdown_signal())
        .await
        .context("serving HTTP")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down: finishing requests in flight");
}
