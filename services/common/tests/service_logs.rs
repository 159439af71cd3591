//! `SERVICE_NAME` reaches every log line a request produces.
//!
//! Alone in its own test binary: tracing caches each callsite's interest process-wide, so a
//! scoped subscriber only sees a callsite reliably when no other test thread registers it at
//! the same moment.

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

#[tokio::test]
async fn service_name_is_a_field_of_request_logs() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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
        service_name: Some("renamed-service".into()),
        ..AppSettings::default()
    };
    let app = application(
        "constant-service",
        serde_json::json!({}),
        router,
        &tenancy,
        Vec::new(),
        settings,
    );
    let res = app
        .oneshot(
            Request::get("/probe")
                .header("authorization", "Bearer platform")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"ok");

    let logs =
        String::from_utf8_lossy(&out.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("probe answered"))
        .unwrap_or_else(|| panic!("no probe log in {logs}"));
    assert!(line.contains("service=renamed-service"), "{line}");
    assert!(!line.contains("constant-service"), "{line}");
}
