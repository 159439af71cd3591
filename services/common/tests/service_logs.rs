//! `SERVICE_NAME` reaches every log line a request produces and labels the metrics; without it,
//! the service's constant name does.
//!
//! Alone in its own test binary, as one test: tracing caches each callsite's interest
//! process-wide, so a scoped subscriber only sees a callsite reliably when no other test thread
//! registers it at the same moment.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use prismicx_service_common::service::{application, AppSettings};
use prismicx_service_common::tenancy::{StaticRegistry, Tenancy};
use tower::ServiceExt;

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The shell around one `/probe` route that logs, for a service constantly named
/// `constant-service` and configured with `service_name`.
fn app(service_name: Option<&str>) -> axum::Router {
    let registry = Arc::new(StaticRegistry::default());
    let tenancy = Tenancy::new(
        &"platform".into(),
        registry.clone(),
        registry,
        Duration::from_secs(1),
    );
    let router = axum::Router::new().route(
        "/probe",
        axum::routing::get(|| async {
            tracing::info!("probe answered");
            "ok"
        }),
    );
    let settings = AppSettings {
        service_name: service_name.map(str::to_string),
        ..AppSettings::default()
    };
    application(
        "constant-service",
        serde_json::json!({}),
        router,
        &tenancy,
        Vec::new(),
        settings,
    )
}

/// The body `app` answers `GET path` with, asked with the platform key.
async fn get(app: axum::Router, path: &str) -> String {
    let res = app
        .oneshot(
            Request::get(path)
                .header("authorization", "Bearer platform")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn service_name_is_a_field_of_request_logs_and_labels_metrics() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let named = app(Some("renamed-service"));
    assert_eq!(get(named.clone(), "/probe").await, "ok");
    let logs =
        String::from_utf8_lossy(&out.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("probe answered"))
        .unwrap_or_else(|| panic!("no probe log in {logs}"));
    assert!(line.contains("service=renamed-service"), "{line}");
    assert!(!line.contains("constant-service"), "{line}");

    let metrics = get(named, "/metrics").await;
    assert!(
        metrics.contains(r#"service="renamed-service""#),
        "{metrics}"
    );
    assert!(!metrics.contains("constant-service"), "{metrics}");

    let unnamed = app(None);
    get(unnamed.clone(), "/probe").await;
    let metrics = get(unnamed, "/metrics").await;
    assert!(
        metrics.contains(r#"service="constant-service""#),
        "{metrics}"
    );
}
