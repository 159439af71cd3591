//! Start-up pieces every service binary shares: where tenants are resolved from, the Redis
//! lifecycle subscription, HTTP settings and the listen address.
//!
//! A service's `run` reads its config, builds its data handles, then calls [`tenancy`] (tenant
//! and key directory with its cache), [`lifecycle`] (cache invalidation from Redis, plus the
//! Redis readiness check) and serves [`crate::http::platform_router`] on [`listen_addr`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::auth::KeyStore;
use crate::config::CommonArgs;
use crate::directory::RemoteDirectory;
use crate::events;
use crate::http::{ReadinessCheck, RedisCheck};
use crate::tenancy::{StaticRegistry, Tenancy, TenancyOptions, TenantResolver};

/// Process start-up every binary runs first: logging at `log_level` in `log_format`, and the
/// TLS provider ([`crate::tls`]).
pub fn init_process(log_level: &str, log_format: &str) {
    prismicx_store::process::init(log_level, log_format);
}

/// HTTP settings of a service's application.
#[derive(Clone)]
pub struct AppSettings {
    pub request_timeout: Duration,
    pub body_limit: usize,
    /// Checks beyond the service's databases (Redis) for `/readyz`.
    pub extra_readiness: Vec<Arc<dyn ReadinessCheck>>,
}

impl std::fmt::Debug for AppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSettings")
            .field("request_timeout", &self.request_timeout)
            .field("body_limit", &self.body_limit)
            .field("extra_readiness", &self.extra_readiness.len())
            .finish()
    }
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            request_timeout: Duration::from_secs(30),
            body_limit: 1024 * 1024,
            extra_readiness: Vec::new(),
        }
    }
}

impl AppSettings {
    pub fn from_args(common: &CommonArgs) -> Self {
        AppSettings {
            request_timeout: common.request_timeout(),
            body_limit: common.body_limit_bytes,
            extra_readiness: Vec::new(),
        }
    }
}

/// A service's whole application: its API `router` (state applied) behind the shared shell, with
/// `/readyz` checking `readiness` (its databases) and `settings.extra_readiness` (Redis).
pub fn application(
    service: &'static str,
    openapi: serde_json::Value,
    router: axum::Router,
    tenancy: &Tenancy,
    mut readiness: Vec<Arc<dyn ReadinessCheck>>,
    settings: AppSettings,
) -> axum::Router {
    readiness.extend(settings.extra_readiness);
    let shell = crate::http::Shell {
        tenancy: tenancy.clone(),
        metrics: crate::metrics::Metrics::new(service),
        readiness,
        openapi,
        request_timeout: settings.request_timeout,
        body_limit: settings.body_limit,
    };
    crate::http::platform_router(router, shell)
}

/// The tenant and key directory a service (other than tenant-mgmt) uses: tenant-mgmt's API when
/// `TENANT_MGMT_URL` is set, else the `TENANT_REGISTRY_FILE`, else none (only the platform key
/// authenticates and no tenant resolves; logged as a warning).
pub fn tenancy(common: &CommonArgs) -> anyhow::Result<Tenancy> {
    let (keys, resolver): (Arc<dyn KeyStore>, Arc<dyn TenantResolver>) = match (
        &common.tenant_mgmt_url,
        &common.tenant_registry_file,
    ) {
        (Some(url), _) => {
            let d = Arc::new(RemoteDirectory::new(url, common.api_key.clone())?);
            tracing::info!(url = %url, "resolving tenants through tenant-mgmt");
            (d.clone(), d)
        }
        (None, Some(path)) => {
            let r = Arc::new(StaticRegistry::load(path)?);
            tracing::info!(file = %path.display(), "resolving tenants from a registry file");
            (r.clone(), r)
        }
        (None, None) => {
            tracing::warn!(
                    "neither TENANT_MGMT_URL nor TENANT_REGISTRY_FILE is set: only the platform key works and no tenant resolves"
                );
            let r = Arc::new(StaticRegistry::default());
            (r.clone(), r)
        }
    };
    Ok(Tenancy::with_options(
        &common.api_key,
        keys,
        resolver,
        TenancyOptions::from_args(common)?,
    ))
}

/// Subscribes `tenancy` to lifecycle events when `REDIS_URL` is set; returns the Redis readiness
/// check to add to `/readyz`. Without Redis, cached entries live until their TTL.
pub fn lifecycle(
    common: &CommonArgs,
    tenancy: &Tenancy,
) -> anyhow::Result<Vec<Arc<dyn ReadinessCheck>>> {
    lifecycle_with(common, tenancy, None)
}

/// [`lifecycle`], handing every event to `hook` too.
pub fn lifecycle_with(
    common: &CommonArgs,
    tenancy: &Tenancy,
    hook: Option<Arc<dyn events::EventHook>>,
) -> anyhow::Result<Vec<Arc<dyn ReadinessCheck>>> {
    match &common.redis_url {
        Some(url) => {
            let client = redis::Client::open(url.expose().as_str()).context("REDIS_URL")?;
            events::spawn_listener(url.clone(), tenancy.clone(), None, hook);
            Ok(vec![Arc::new(RedisCheck(client))])
        }
        None => {
            tracing::warn!(
                "REDIS_URL is not set: revoked keys and suspended tenants take effect only when the cache TTL runs out"
            );
            Ok(Vec::new())
        }
    }
}

/// `HOST:PORT`, with the service's platform port when `PORT` is unset.
pub fn listen_addr(common: &CommonArgs, default_port: u16) -> anyhow::Result<SocketAddr> {
    format!("{}:{}", common.host, common.port.unwrap_or(default_port))
        .parse()
        .context("HOST/PORT do not form a socket address")
}

/// The client options of a MongoDB URI, with the service's name and short timeouts.
pub async fn mongo_options(
    uri: &crate::config::Secret<String>,
    app_name: &str,
) -> anyhow::Result<mongodb::options::ClientOptions> {
    let mut opts = mongodb::options::ClientOptions::parse(uri.expose())
        .await
        .map_err(|_| anyhow::anyhow!("a MongoDB URI is not valid (its value is not shown)"))?;
    opts.app_name = Some(app_name.to_string());
    opts.server_selection_timeout
        .get_or_insert(Duration::from_secs(5));
    opts.connect_timeout.get_or_insert(Duration::from_secs(3));
    Ok(opts)
}

/// Connects a MongoDB client from a URI (lazily: the first operation opens connections).
pub async fn mongo_client(
    uri: &crate::config::Secret<String>,
    app_name: &str,
) -> anyhow::Result<mongodb::Client> {
    mongodb::Client::with_options(mongo_options(uri, app_name).await?)
        .context("creating the MongoDB client")
}

/// The [`MongoStore`](crate::mongo::MongoStore) of a service with `layout`, from its
/// `MONGODB_URI` / `MONGODB_TENANT_URI`.
pub async fn mongo_store(
    args: &crate::config::MongoArgs,
    layout: crate::mongo::MongoLayout,
    app_name: &str,
) -> anyhow::Result<crate::mongo::MongoStore> {
    let system = mongo_client(&args.mongodb_uri, app_name)
        .await
        .context("MONGODB_URI")?;
    Ok(match &args.mongodb_tenant_uri {
        Some(uri) => {
            let opts = mongo_options(uri, app_name)
                .await
                .context("MONGODB_TENANT_URI")?;
            let tenant =
                mongodb::Client::with_options(opts.clone()).context("MONGODB_TENANT_URI")?;
            // Able to reconnect when a grant made while it runs is not yet on its connections.
            crate::mongo::MongoStore::new(system, tenant, layout).with_tenant_options(opts)
        }
        None => crate::mongo::MongoStore::new(system.clone(), system, layout),
    })
}
