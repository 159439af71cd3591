//! The operator's own small HTTP server, for Prometheus and the kubelet's probes.
//!
//! ```text
//! GET /metrics ──► HealthState.metrics.render()      ──► 200 OpenMetrics text
//! GET /healthz ──► (the process answers at all)       ──► 200 "ok"
//! GET /readyz  ──► HealthState.ready (set_ready)      ──► 200 "ready" | 503 "not ready"
//! ```
//!
//! The binary builds one [`HealthState`], keeps a clone to call [`HealthState::set_ready`] once
//! the controller has started, and hands [`router`] to [`serve`], which runs until its shutdown
//! future resolves. Tests call [`router`] directly, without a socket.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// The content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoints report on; cheap to clone, and all clones share the readiness flag.
#[derive(Clone, Debug)]
pub struct HealthState {
    /// The operator's metrics, rendered by `GET /metrics`.
    pub metrics: Metrics,
    ready: Arc<AtomicBool>,
}

impl HealthState {
    /// A state that is not ready yet.
    pub fn new(metrics: Metrics) -> Self {
        HealthState {
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Says whether the controller has started (`GET /readyz` answers 200 only while `true`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// The value last given to [`HealthState::set_ready`].
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The routes `GET /metrics`, `GET /healthz` and `GET /readyz`.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Binds `addr` and serves `router` until `shutdown` resolves, then lets in-flight requests
/// finish and returns.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP server to {addr}"))?;
    serve_on(listener, router, shutdown).await
}

/// [`serve`] on a listener that is already bound (tests bind port 0 and read the port).
pub async fn serve_on(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
}

async fn metrics(State(state): State<HealthState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HealthState>) -> (StatusCode, &'static str) {
    if state.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    async fn call(state: &HealthState, method: Method, uri: &str) -> (StatusCode, String, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("valid request");
        let response = router(state.clone())
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body is readable")
            .to_bytes();
        let body = String::from_utf8(body.to_vec()).expect("body is UTF-8");
        (status, content_type, body)
    }

    #[tokio::test]
    async fn healthz_answers_ok_even_when_not_ready() {
        let state = HealthState::new(Metrics::new());
        let (status, _, body) = call(&state, Method::GET, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    async fn readyz_follows_set_ready() {
        let state = HealthState::new(Metrics::new());
        let (status, _, _) = call(&state, Method::GET, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

        // A clone shares the flag, as the binary keeps one and the router the other.
        state.clone().set_ready(true);
        let (status, _, body) = call(&state, Method::GET, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ready");

        state.set_ready(false);
        let (status, _, _) = call(&state, Method::GET, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn metrics_serves_openmetrics_text_of_the_shared_registry() {
        let state = HealthState::new(Metrics::new());
        state.metrics.set_leader(true);
        state.metrics.reconcile_timer("tenant").finish(Ok(()));

        let (status, content_type, body) = call(&state, Method::GET, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
        assert!(body.contains("\nprismicx_operator_leader 1\n"), "{body}");
        assert!(
            body.contains("prismicx_operator_reconciles_total{resource=\"tenant\"} 1\n"),
            "{body}"
        );
        assert!(body.trim_end().ends_with("# EOF"));
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_refused() {
        let state = HealthState::new(Metrics::new());
        let (status, _, _) = call(&state, Method::GET, "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(&state, Method::POST, "/metrics").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn serve_answers_on_a_socket_and_stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(
            listener,
            router(HealthState::new(Metrics::new())),
            async move {
                let _ = stop_rx.await;
            },
        ));

        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("write request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("read response");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nok"), "{response}");

        stop_tx.send(()).expect("server is running");
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("server stops after shutdown")
            .expect("server task did not panic");
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn serve_reports_a_port_in_use() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("local addr");
        let err = serve(addr, Router::new(), std::future::pending())
            .await
            .expect_err("the port is taken");
        assert!(err.to_string().contains(&addr.to_string()), "{err:#}");
    }
}
