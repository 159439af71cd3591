//! tenant-mgmt-service: the tenant registry, tenant settings and tenant API keys (MongoDB
//! `tenant_registry` on mongodb-system).
//!
//! Data flow:
//! - The operator writes the registry (`tenants`, one document per tenant, see [`registry`]);
//!   this service reads it and serves it: to clients (`/v1/tenants`, `/v1/tenant`) and, through
//!   `/internal/v1/...`, to every other service, whose
//!   [`RemoteDirectory`](prismicx_service_common::directory::RemoteDirectory) resolves tenants
//!   and verifies keys here and caches the answers.
//! - API keys ([`keys`]) are platform data in the shared `api_keys` collection for every tier;
//!   issuing or revoking one publishes a `keysChanged` lifecycle event on Redis ([`events`]) so
//!   every service drops what it cached; a `deleted` event revokes all of the tenant's keys.
//! - Settings ([`settings`]) are tenant data, placed by tier through the shared
//!   [`MongoStore`]: the layout in [`MONGO`] is what the operator provisions per tenant.
//! - This service authenticates its own requests through [`registry::RegistryDirectory`], the
//!   same [`KeyStore`](prismicx_service_common::auth::KeyStore) and
//!   [`TenantResolver`](prismicx_service_common::tenancy::TenantResolver) it serves to the others.

pub mod config;
pub mod domain;
pub mod events;
pub mod keys;
pub mod openapi;
pub mod registry;
pub mod routes;
pub mod settings;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;
use prismicx_service_common::http::ReadinessCheck;
use prismicx_service_common::mongo::MongoStore;
use prismicx_service_common::service::{self, AppSettings};
use prismicx_service_common::tenancy::{Tenancy, TenancyOptions};

pub use config::Config;

use crate::events::EventPublisher;
use crate::keys::ApiKeys;
use crate::registry::{Registry, RegistryDirectory};

/// The name in logs and metrics.
pub const SERVICE: &str = "tenant-mgmt-service";

/// The service's data layout and the platform-wide registry and API-key collections (declared
/// with the tenancy contract, which the operator provisions).
pub use prismicx_tenancy::services::tenant_mgmt::{
    API_KEYS_COLLECTION, MONGO, REGISTRY_COLLECTION,
};

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: MongoStore,
    pub registry: Registry,
    pub keys: ApiKeys,
    pub directory: RegistryDirectory,
    pub tenancy: Tenancy,
    /// Lifecycle events (key revocations); `None` without Redis.
    pub events: Option<EventPublisher>,
}

impl FromRef<AppState> for Tenancy {
    fn from_ref(s: &AppState) -> Tenancy {
        s.tenancy.clone()
    }
}

impl AppState {
    /// State over `store` whose own requests authenticate through the registry, with the
    /// platform key `api_key` and verified keys cached for `cache_ttl`.
    pub fn new(
        store: MongoStore,
        api_key: &prismicx_service_common::config::Secret<String>,
        cache_ttl: std::time::Duration,
        events: Option<EventPublisher>,
    ) -> Self {
        Self::with_options(store, api_key, TenancyOptions::new(cache_ttl), events)
    }

    /// [`new`](Self::new) with the caches and rate limits of `options`.
    pub fn with_options(
        store: MongoStore,
        api_key: &prismicx_service_common::config::Secret<String>,
        options: TenancyOptions,
        events: Option<EventPublisher>,
    ) -> Self {
        let db = store.system_database();
        let registry = Registry::new(&db);
        let keys = ApiKeys::new(&db);
        let directory = RegistryDirectory {
            registry: registry.clone(),
            keys: keys.clone(),
        };
        let shared = Arc::new(directory.clone());
        let tenancy = Tenancy::with_options(api_key, shared.clone(), shared, options);
        AppState {
            store,
            registry,
            keys,
            directory,
            tenancy,
            events,
        }
    }
}

/// The whole application, callable without a socket (tests drive it with `oneshot`).
pub fn app(state: AppState, settings: AppSettings) -> Router {
    let tenancy = state.tenancy.clone();
    let readiness: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(state.store.clone())];
    service::application(
        SERVICE,
        openapi::document(),
        routes::router().with_state(state),
        &tenancy,
        readiness,
        settings,
    )
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    service::init_process(&config.log_level, &config.common.log_format);
    let store = service::mongo_store(&config.mongo, MONGO, SERVICE).await?;
    let events = config
        .common
        .redis_url
        .as_ref()
        .map(EventPublisher::new)
        .transpose()?;
    let state = AppState::with_options(
        store,
        &config.common.api_key,
        TenancyOptions::from_args(&config.common)?,
        events,
    );
    // The platform collections' indexes: retried in the background until MongoDB answers, so
    // the service starts (and reports not ready) while MongoDB is still coming up.
    let keys = state.keys.clone();
    tokio::spawn(async move {
        let mut delay = std::time::Duration::from_millis(500);
        loop {
            match keys.ensure_indexes().await {
                Ok(()) => break tracing::info!("API key indexes ensured"),
                Err(e) => {
                    tracing::warn!(error = %e, "API key indexes not ensured yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(10));
                }
            }
        }
    });
    let mut settings = AppSettings::from_args(&config.common);
    let revoke = Arc::new(events::RevokeOnDelete(state.keys.clone()));
    settings.extra_readiness =
        service::lifecycle_with(&config.common, &state.tenancy, Some(revoke))?;
    let addr = service::listen_addr(&config.common, config::DEFAULT_PORT)?;
    prismicx_service_common::http::serve(app(state, settings), addr).await
}
