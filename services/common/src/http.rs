//! The HTTP shell every service runs in.
//!
//! [`platform_router`] takes a service's API router and returns the full application:
//! authenticated API routes (with the failed-authentication and per-tenant rate limits of
//! [`crate::ratelimit`], applied through the service's [`Tenancy`]), the unauthenticated
//! platform routes (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`), and the middleware stack (outermost first): request ID
//! (`x-request-id`, generated when absent and echoed back), tracing, metrics, timeout (503
//! problem), body-size limit (413 problem). [`serve`] runs it with graceful shutdown on SIGTERM
//! or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::tenancy::require_api_key;
use crate::tenancy::Tenancy;

/// A dependency `/readyz` checks (a database, Redis).
#[async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn check(&self) -> anyhow::Result<()>;
}

/// What the shell needs from the service.
#[derive(Clone)]
pub struct Shell {
    pub tenancy: Tenancy,
    pub metrics: Metrics,
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// The service's OpenAPI document, served at `/openapi.json`.
    pub openapi: serde_json::Value,
    pub request_timeout: Duration,
    pub body_limit: usize,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("request_timeout", &self.request_timeout)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: `api` behind API-key authentication, plus the platform routes.
pub fn platform_router(api: Router, shell: Shell) -> Router {
    let api = api.layer(middleware::from_fn_with_state(
        shell.tenancy.clone(),
        require_api_key,
    ));
    let openapi = Arc::new(shell.openapi.clone());
    let readiness = Arc::new(shell.readiness.clone());
    let platform = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(ready).with_state(readiness))
        .route(
            "/metrics",
            get(metrics::handler).with_state(shell.metrics.clone()),
        )
        .route(
            "/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        );
    let timeout = shell.request_timeout;
    platform
        .merge(api)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ProblemResponse(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route")
        })
        .layer(DefaultBodyLimit::max(shell.body_limit))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            request_timeout(timeout, req, next)
        }))
        .layer(middleware::from_fn_with_state(shell.metrics.clone(), metrics::track))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

struct ProblemResponse(StatusCode, &'static str);

impl IntoResponse for ProblemResponse {
    fn into_response(self) -> Response {
        let problem = crate::error::Problem {
            problem_type: "about:blank".into(),
            title: self.0.canonical_reason().unwrap_or("Error").into(),
            status: self.0.as_u16(),
            detail: Some(self.1.into()),
            errors: vec![],
        };
        let mut res = (self.0, axum::Json(problem)).into_response();
        res.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(crate::error::PROBLEM_JSON),
        );
        res
    }
}

async fn request_timeout(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::Unavailable(format!(
            "the request took longer than {}s and was abandoned; retry",
            timeout.as_secs_f32()
        ))
        .into_response(),
    }
}

async fn ready(State(checks): State<Arc<Vec<Arc<dyn ReadinessCheck>>>>) -> Response {
    let results = futures::future::join_all(checks.iter().map(|c| async move {
        let outcome = tokio::time::timeout(Duration::from_secs(3), c.check()).await;
        let ok = match outcome {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(
                    check = c.name(),
                    error = format!("{e:#}"),
                    "readiness check failed"
                );
                false
            }
            Err(_) => {
                tracing::warn!(check = c.name(), "readiness check timed out");
                false
            }
        };
        (c.name(), ok)
    }))
    .await;
    let all_ok = results.iter().all(|(_, ok)| *ok);
    let body = json!({
        "status": if all_ok { "ready" } else { "not ready" },
        "checks": results.iter().map(|(n, ok)| (n.to_string(), json!(if *ok { "ok" } else { "failed" }))).collect::<serde_json::Map<_, _>>(),
    });
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

pub use prismicx_store::process::shutdown_signal;

/// Binds `addr` and serves `app` until a shutdown signal, letting in-flight requests finish.
/// Requests carry their peer address (`ConnectInfo<SocketAddr>`), which the failed-authentication
/// limit counts by.
pub async fn serve(app: Router, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    tracing::info!(%addr, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    Ok(())
}

/// Readiness check for a PostgreSQL database reached through [`crate::pg::TenantDb`].
#[async_trait]
impl ReadinessCheck for crate::pg::TenantDb {
    fn name(&self) -> &'static str {
        "postgres"
    }
    async fn check(&self) -> anyhow::Result<()> {
        crate::pg::TenantDb::check(self).await?;
        Ok(())
    }
}

/// Readiness check for Redis.
#[derive(Debug)]
pub struct RedisCheck(pub redis::Client);

#[async_trait]
impl ReadinessCheck for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }
    async fn check(&self) -> anyhow::Result<()> {
        let mut c = self.0.get_multiplexed_async_connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }
}

/// Readiness check for a MongoDB service's servers.
#[async_trait]
impl ReadinessCheck for crate::mongo::MongoStore {
    fn name(&self) -> &'static str {
        "mongodb"
    }
    async fn check(&self) -> anyhow::Result<()> {
        self.ping().await?;
        Ok(())
    }
}

/// The OpenAPI security scheme every service declares, `api_key` (HTTP bearer): use it as
/// `modifiers(&ApiKeyAuth)` in a service's `#[openapi]`.
#[derive(Debug)]
pub struct ApiKeyAuth;

impl utoipa::Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
