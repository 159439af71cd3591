//! vector-store-service: per-tenant collections of embeddings, searched by nearest neighbours
//! with payload filters.
//!
//! Data flow: a request passes the shared HTTP shell (auth, tenant resolution, rate limit) into
//! a handler in [`routes`], which validates its body with [`domain`], finds the tenant's
//! collection by name in the [`catalog`] (metadata documents in MongoDB, cached in process), and
//! runs the [`engine`] call on the blocking pool through [`vectors`]. The engine keeps each
//! collection's vectors, payloads and HNSW index in files under the data directory:
//! `shared/<tenant_id>/<collection_id>/` for `standard` tenants, `dedicated/<tenant_id>/…` for
//! `dedicated` ones. Metadata documents live where the tenant's MongoDB data lives: the shared
//! `vector_store_system` database on mongodb-system for `standard` tenants, the tenant's own
//! `vector_store_system__<slug>` on mongodb-tenant for `dedicated` ones, always through a
//! tenant-scoped collection. A collection of another tenant is never found, so every route
//! answers it 404.
//!
//! Writes are checked against the tenant's quota (its own from the tenant directory, else the
//! service's default) by the engine, all or nothing. [`garbage`] removes engine data whose
//! metadata document is gone (deleted tenants, interrupted creates and deletes).

pub mod catalog;
pub mod config;
pub mod domain;
pub mod engine;
pub mod garbage;
pub mod openapi;
pub mod routes;
pub mod vectors;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use prismicx_service_common::events::EventHook;
use prismicx_service_common::http::ReadinessCheck;
use prismicx_service_common::mongo::MongoStore;
use prismicx_service_common::service::{self, ServiceState};
use prismicx_service_common::tenancy::Tenancy;
use prismicx_tenancy::VectorQuota;

pub use config::Config;
pub use prismicx_service_common::service::AppSettings;

/// The name in logs and metrics (the Kubernetes name of the service).
pub const SERVICE: &str = "vector-store-service";

/// The service's data layout (declared with the tenancy contract, which the operator provisions).
pub use prismicx_tenancy::services::vector_store::{COLLECTIONS, MONGO};

/// What handlers share: the metadata store, the tenancy, and the engine with its caches.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: MongoStore,
    pub tenancy: Tenancy,
    pub vectors: Arc<vectors::Vectors>,
    /// The engine's data directory (for `/readyz`).
    pub data_dir: PathBuf,
}

impl AppState {
    /// The state over an opened `engine` whose data directory is `data_dir`.
    pub fn new(
        store: MongoStore,
        tenancy: Tenancy,
        engine: engine::Engine,
        data_dir: PathBuf,
        default_quota: VectorQuota,
    ) -> Self {
        AppState {
            store,
            tenancy,
            vectors: Arc::new(vectors::Vectors::new(engine, default_quota)),
            data_dir,
        }
    }
}

/// `/readyz`: the data directory accepts a file.
#[derive(Debug)]
pub struct DataDirCheck(pub PathBuf);

#[async_trait]
impl ReadinessCheck for DataDirCheck {
    fn name(&self) -> &'static str {
        "data-dir"
    }
    async fn check(&self) -> anyhow::Result<()> {
        let probe = self.0.join(format!(".readyz-probe-{}", std::process::id()));
        tokio::task::spawn_blocking(move || {
            std::fs::write(&probe, b"ok")?;
            std::fs::remove_file(&probe)
        })
        .await??;
        Ok(())
    }
}

impl ServiceState for AppState {
    fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    fn readiness(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![
            Arc::new(self.store.clone()),
            Arc::new(DataDirCheck(self.data_dir.clone())),
        ]
    }

    fn register_metrics(&self, metrics: &prismicx_service_common::metrics::Metrics) {
        self.vectors.metrics.register(metrics);
    }

    fn event_hook(&self) -> Option<Arc<dyn EventHook>> {
        Some(Arc::new(garbage::SweepOnDelete {
            vectors: self.vectors.clone(),
            store: self.store.clone(),
        }))
    }
}

prismicx_service_common::service_entry_points!(VectorStore);

/// Opens the engine and the metadata store, and starts the start-up garbage sweep in the
/// background (retried until MongoDB answers, so the service starts while it comes up).
pub async fn connect(config: &Config, tenancy: Tenancy) -> anyhow::Result<AppState> {
    let store = service::mongo_store(&config.mongo, MONGO, SERVICE).await?;
    let engine_config = config.engine();
    let data_dir = engine_config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| anyhow::anyhow!("creating the data directory: {e}"))?;
    let engine = tokio::task::spawn_blocking(move || engine::Engine::open(engine_config))
        .await?
        .map_err(|e| anyhow::anyhow!("opening the vector engine: {e}"))?;
    let state = AppState::new(
        store,
        tenancy,
        engine,
        data_dir.clone(),
        config.default_quota(),
    );
    let (vectors, store) = (state.vectors.clone(), state.store.clone());
    tokio::spawn(async move {
        let mut delay = std::time::Duration::from_millis(500);
        loop {
            match garbage::sweep_at_start(&vectors, &store, &data_dir).await {
                Ok(n) => break tracing::info!(dropped = n, "start-up garbage sweep done"),
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "start-up garbage sweep failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(30));
                }
            }
        }
    });
    Ok(state)
}

/// Runs the service until SIGTERM or Ctrl-C (the body limit is `VECTOR_STORE_BODY_LIMIT_BYTES`).
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut common = config.common.clone();
    common.body_limit_bytes = config.vector_store_body_limit_bytes;
    service::run::<VectorStore, _, _>(&common, &config.log_level, |tenancy| {
        let config = config.clone();
        async move { connect(&config, tenancy).await }
    })
    .await
}
