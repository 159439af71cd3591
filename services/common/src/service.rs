//! The service scaffold every service starts from, and the start-up pieces it is made of.
//!
//! A service names its domain, repository and routes: it implements [`Service`] (its name,
//! OpenAPI document and router) over a state that implements [`ServiceState`] (the tenancy its
//! requests authenticate through, the databases `/readyz` checks, what to close on shutdown).
//! [`app`] puts the router behind the platform shell ([`crate::http::platform_router`]), and
//! [`run`] is the whole process: logging and TLS ([`init_process`]), the tenant and key
//! directory ([`tenancy`]), cache invalidation from Redis plus its readiness check
//! ([`lifecycle`]), the service's own state (its `connect` step), then [`serve`] on
//! [`listen_addr`] until SIGTERM or Ctrl-C. A service with its own start-up (tenant-mgmt serves
//! the directory itself) calls the pieces and [`serve`] directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;

use anyhow::Context as _;
use axum::extract::FromRef;

use crate::auth::KeyStore;
use crate::config::CommonArgs;
use crate::directory::RemoteDirectory;
use crate::events;
use crate::http::{ReadinessCheck, RedisCheck};
use crate::tenancy::{StaticRegistry, Tenancy, TenancyOptions, TenantResolver};

/// What a service's handlers share, as the scaffold needs it.
pub trait ServiceState: Clone + Send + Sync + 'static {
    /// Where the service's requests are authenticated and their tenants resolved.
    fn tenancy(&self) -> &Tenancy;
    /// The service's databases, checked by `/readyz`.
    fn readiness(&self) -> Vec<Arc<dyn ReadinessCheck>>;
    /// Runs once the server has stopped (closes connection pools).
    fn close(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Registers the service's own metrics in the registry `/metrics` serves.
    fn register_metrics(&self, _metrics: &crate::metrics::Metrics) {}
    /// What the service does with tenant lifecycle events besides dropping the tenancy's
    /// caches (handed to the one subscriber [`run`] starts).
    fn event_hook(&self) -> Option<Arc<dyn events::EventHook>> {
        None
    }
}

/// Handlers take the [`Tenant`](crate::tenancy::Tenant) extractor over any service's state.
impl<S: ServiceState> FromRef<S> for Tenancy {
    fn from_ref(state: &S) -> Tenancy {
        state.tenancy().clone()
    }
}

/// A service: its name, its API document and its routes over its state.
pub trait Service {
    /// The name in logs and metrics (the Kubernetes name of the service).
    const NAME: &'static str;
    /// The port when `PORT` is unset.
    const DEFAULT_PORT: u16;
    type State: ServiceState;
    /// The OpenAPI document served at `/openapi.json`.
    fn openapi() -> serde_json::Value;
    /// The API routes (authenticated by the shell).
    fn routes() -> axum::Router<Self::State>;
}

/// The whole application of service `S` over `state`, callable without a socket (tests drive it
/// with `oneshot`).
pub fn app<S: Service>(state: S::State, settings: AppSettings) -> axum::Router {
    let tenancy = state.tenancy().clone();
    let readiness = state.readiness();
    let registering = state.clone();
    application_with_metrics(
        S::NAME,
        S::openapi(),
        S::routes().with_state(state),
        &tenancy,
        readiness,
        settings,
        |metrics| registering.register_metrics(metrics),
    )
}

/// Serves [`app`] on `addr` until SIGTERM or Ctrl-C, then closes the state.
pub async fn serve<S: Service>(
    state: S::State,
    settings: AppSettings,
    addr: SocketAddr,
) -> anyhow::Result<()> {
    let closing = state.clone();
    crate::http::serve(app::<S>(state, settings), addr).await?;
    closing.close().await;
    Ok(())
}

/// Runs service `S` until SIGTERM or Ctrl-C: process start-up, the tenant directory and its
/// lifecycle events from `common` (with the state's [`ServiceState::event_hook`]), the state
/// `connect` builds over the tenancy, then [`serve`].
pub async fn run<S, F, Fut>(common: &CommonArgs, log_level: &str, connect: F) -> anyhow::Result<()>
where
    S: Service,
    F: FnOnce(Tenancy) -> Fut,
    Fut: Future<Output = anyhow::Result<S::State>>,
{
    init_process(log_level, &common.log_format);
    let tenancy = tenancy(common)?;
    let mut settings = AppSettings::from_args(common);
    let state = connect(tenancy.clone()).await?;
    settings.extra_readiness = lifecycle_with(common, &tenancy, state.event_hook())?;
    let addr = listen_addr(common, S::DEFAULT_PORT)?;
    serve::<S>(state, settings, addr).await
}

/// The state of a service whose data is one [`MongoStore`](crate::mongo::MongoStore).
#[derive(Debug, Clone)]
pub struct MongoState {
    pub store: crate::mongo::MongoStore,
    pub tenancy: Tenancy,
}

impl MongoState {
    /// The state over the store of `layout` from `args` (see [`mongo_store`]).
    pub async fn connect(
        args: &crate::config::MongoArgs,
        layout: crate::mongo::MongoLayout,
        app_name: &str,
        tenancy: Tenancy,
    ) -> anyhow::Result<Self> {
        let store = mongo_store(args, layout, app_name).await?;
        Ok(MongoState { store, tenancy })
    }
}

impl ServiceState for MongoState {
    fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    fn readiness(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![Arc::new(self.store.clone())]
    }
}

/// The state of a service whose data is one PostgreSQL database reached through PgBouncer.
#[derive(Debug, Clone)]
pub struct PgState {
    pub db: Arc<crate::pg::TenantDb>,
    pub tenancy: Tenancy,
}

impl ServiceState for PgState {
    fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    fn readiness(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        vec![self.db.clone()]
    }

    async fn close(&self) {
        self.db.close().await;
    }
}

/// A service's entry points, from the names every service crate defines at its root: `SERVICE`
/// (its name), `AppState` (a [`ServiceState`]), `config::Config` with `config::DEFAULT_PORT`,
/// `openapi::document` and `routes::router`. Defines the [`Service`] `$ty` and
/// `pub fn app(state, settings)`; with `connect`, also `pub async fn run(config)`, which builds
/// the state with `connect` from the config and the tenancy, and runs [`run`].
///
/// ```ignore
/// prismicx_service_common::service_entry_points!(TaskRepo, connect: |config, tenancy| {
///     MongoState::connect(&config.mongo, MONGO, SERVICE, tenancy)
/// });
/// ```
// `crate::…` names the calling service's items on purpose (the convention above).
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! service_entry_points {
    ($ty:ident) => {
        /// This service, for the scaffold ([`prismicx_service_common::service`]).
        #[derive(Debug)]
        pub struct $ty;

        impl $crate::service::Service for $ty {
            const NAME: &'static str = crate::SERVICE;
            const DEFAULT_PORT: u16 = crate::config::DEFAULT_PORT;
            type State = crate::AppState;

            fn openapi() -> ::serde_json::Value {
                crate::openapi::document()
            }

            fn routes() -> ::axum::Router<crate::AppState> {
                crate::routes::router()
            }
        }

        /// The whole application, callable without a socket (tests drive it with `oneshot`).
        pub fn app(
            state: crate::AppState,
            settings: $crate::service::AppSettings,
        ) -> ::axum::Router {
            $crate::service::app::<$ty>(state, settings)
        }
    };
    ($ty:ident, connect: |$cfg:ident, $tenancy:ident| $connect:expr) => {
        $crate::service_entry_points!($ty);

        /// Runs the service until SIGTERM or Ctrl-C.
        pub async fn run($cfg: crate::config::Config) -> ::anyhow::Result<()> {
            let (common, log_level) = ($cfg.common.clone(), $cfg.log_level.clone());
            $crate::service::run::<$ty, _, _>(&common, &log_level, |$tenancy| $connect).await
        }
    };
}

/// Process start-up every binary runs first: logging at `log_level` in `log_format`, and the
/// TLS provider ([`crate::tls`]).
pub fn init_process(log_level: &str, log_format: &str) {
    prismicx_store::process::init(log_level, log_format);
}

/// HTTP settings of a service's application.
#[derive(Clone)]
pub struct AppSettings {
    /// The name in logs and metrics (`SERVICE_NAME`); `None`: the service's own constant.
    pub service_name: Option<String>,
    pub request_timeout: Duration,
    pub body_limit: usize,
    /// Checks beyond the service's databases (Redis) for `/readyz`.
    pub extra_readiness: Vec<Arc<dyn ReadinessCheck>>,
}

impl std::fmt::Debug for AppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSettings")
            .field("service_name", &self.service_name)
            .field("request_timeout", &self.request_timeout)
            .field("body_limit", &self.body_limit)
            .field("extra_readiness", &self.extra_readiness.len())
            .finish()
    }
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            service_name: None,
            request_timeout: Duration::from_secs(30),
            body_limit: 1024 * 1024,
            extra_readiness: Vec::new(),
        }
    }
}

impl AppSettings {
    pub fn from_args(common: &CommonArgs) -> Self {
        AppSettings {
            service_name: common.service_name.clone(),
            request_timeout: common.request_timeout(),
            body_limit: common.body_limit_bytes,
            extra_readiness: Vec::new(),
        }
    }
}

/// A service's whole application: its API `router` (state applied) behind the shared shell, with
/// `/readyz` checking `readiness` (its databases) and `settings.extra_readiness` (Redis). The
/// service is named `settings.service_name` (`SERVICE_NAME`), else `service`: the `service`
/// label of every metric and the `service` field of every log line a request produces.
pub fn application(
    service: &'static str,
    openapi: serde_json::Value,
    router: axum::Router,
    tenancy: &Tenancy,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    settings: AppSettings,
) -> axum::Router {
    application_with_metrics(
        service,
        openapi,
        router,
        tenancy,
        readiness,
        settings,
        |_| {},
    )
}

/// [`application`], with `register` adding the service's own metrics to the registry.
pub fn application_with_metrics(
    service: &'static str,
    openapi: serde_json::Value,
    router: axum::Router,
    tenancy: &Tenancy,
    mut readiness: Vec<Arc<dyn ReadinessCheck>>,
    settings: AppSettings,
    register: impl FnOnce(&crate::metrics::Metrics),
) -> axum::Router {
    readiness.extend(settings.extra_readiness);
    let name: Arc<str> = settings.service_name.as_deref().unwrap_or(service).into();
    let metrics = crate::metrics::Metrics::new(&name);
    register(&metrics);
    let shell = crate::http::Shell {
        tenancy: tenancy.clone(),
        metrics,
        readiness,
        openapi,
        request_timeout: settings.request_timeout,
        body_limit: settings.body_limit,
    };
    crate::http::platform_router(router, shell)
        .layer(axum::middleware::from_fn_with_state(name, in_service_span))
}

/// Runs a request inside a span naming the service, so every event it logs (the request trace
/// included) carries `service`.
async fn in_service_span(
    axum::extract::State(name): axum::extract::State<Arc<str>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    let span = tracing::info_span!("service", service = %name);
    next.run(req).instrument(span).await
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
