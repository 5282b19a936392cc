//! What every handler can reach: the write path, the pool, the clients, the read models,
//! sessions, providers and the rate limiter, behind one `Arc`.

use std::sync::Arc;

use eventstore::WalletStore;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::auth::{ApiClient, Authenticates};
use crate::limits::RateLimiter;
use crate::providers::Providers;
use crate::sessions::Sessions;

/// One `Arc`, so the clone axum makes for each extractor and middleware of every request
/// is one reference count, not a copy of every field.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    /// The write path: in a cluster, the one that passes commands to their owners.
    pub store: Arc<dyn WalletStore>,
    /// This instance's own write path (what forwarded commands run on).
    pub local: Arc<dyn WalletStore>,
    /// The other instances, when several share the database.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub pool: PgPool,
    pub clients: Arc<Vec<ApiClient>>,
    /// Each wallet's brand, for the brand check of clients limited to some brands.
    pub brands: Arc<crate::brands::BrandDirectory>,
    /// The brands each provider (by id, or `hub88.{operator}`) is enabled in.
    pub provider_brands: Arc<std::collections::HashMap<String, domain::Brands>>,
    pub metrics: PrometheusHandle,
    /// The Redis read models (`/v1/read/...`).
    pub read_models: ReadModels,
    /// Game sessions (Redis).
    pub sessions: Sessions,
    /// Providers by id.
    pub providers: Arc<Providers>,
    /// Requests per second per client.
    pub limiter: Arc<RateLimiter>,
    /// The other instances on this database that this one is not clustered with.
    pub presence: Arc<crate::presence::Presence>,
    /// Operators of the Hub88 face by id.
    pub hub88: Arc<std::collections::HashMap<String, crate::hub88::Hub88Operator>>,
    /// The deployment's zone and cooling-off for limit changes.
    pub protection: crate::config::ProtectionConfig,
    /// What a provider may credit without a stake in one call.
    pub credit_caps: crate::caps::CreditCaps,
    /// Where every handler reads "now".
    pub clock: Arc<dyn crate::clock::Clock>,
}

/// A Redis client and the key layout the projection workers write.
#[derive(Clone)]
pub struct ReadModels {
    pub client: fred::prelude::Client,
    pub keys: readmodel::Keys,
}

impl Authenticates for AppState {
    fn clients(&self) -> &[ApiClient] {
        &self.clients
    }

    fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    async fn wallet_admitted(
        &self,
        wallet: domain::WalletId,
        brands: &domain::Brands,
    ) -> Result<bool, crate::error::ApiError> {
        self.brands.admitted(wallet, brands).await
    }
}
