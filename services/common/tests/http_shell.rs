//! The HTTP shell (`platform_router`) driven in-process with `tower::ServiceExt::oneshot`:
//! platform routes, authentication, tenant selection, request IDs, limits, timeouts and
//! problem+json errors; readiness checks a real TenantDb through PgBouncer.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use prismicx_service_common::auth::KeyDigest;
use prismicx_service_common::config::Secret;
use prismicx_service_common::extract;
use prismicx_service_common::http::{platform_router, ReadinessCheck, Shell};
use prismicx_service_common::metrics::Metrics;
use prismicx_service_common::pg::TenantDb;
use prismicx_service_common::tenancy::{
    RegistryEntry, StaticRegistry, Tenancy, Tenant, TenantSlug, TenantState, Tier,
};
use serde::Deserialize;
use serde_json::{json, Value};
use support::PgFixture;
use tower::ServiceExt;
use uuid::Uuid;

const PLATFORM_KEY: &str = "platform-key-0123456789";
const KEY_A: &str = "tenant-a-key-0123456789";
const BODY_LIMIT: usize = 1024;
const TIMEOUT: Duration = Duration::from_millis(300);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Echo {
    name: String,
}

fn api(tenancy: Tenancy) -> Router {
    Router::new()
        .route(
            "/v1/echo",
            post(
                |Tenant(t): Tenant, extract::Json(body): extract::Json<Echo>| async move {
                    axum::Json(json!({"tenant": t.slug, "tenantId": t.id, "name": body.name}))
                },
            ),
        )
        .route(
            "/v1/whoami",
            get(|Tenant(t): Tenant| async move { axum::Json(json!({"tenant": t.slug})) }),
        )
        .route(
            "/v1/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "too late"
            }),
        )
        .with_state(tenancy)
}

struct App {
    router: Router,
    a_id: Uuid,
}

/// The shell around the tiny API, with tenants `a…` (key KEY_A) and `b…`, and `readiness`.
fn app(
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    slugs: (&TenantSlug, &TenantSlug),
    request_timeout: Duration,
) -> App {
    let a_id = Uuid::new_v4();
    let registry = Arc::new(StaticRegistry::from_entries(vec![
        RegistryEntry {
            slug: slugs.0.clone(),
            id: a_id,
            tier: Tier::Standard,
            state: TenantState::Active,
            api_keys: vec![KeyDigest::of(KEY_A).to_string()],
        },
        RegistryEntry {
            slug: slugs.1.clone(),
            id: Uuid::new_v4(),
            tier: Tier::Standard,
            state: TenantState::Active,
            api_keys: vec![],
        },
    ]));
    let tenancy = Tenancy::new(
        &Secret::new(PLATFORM_KEY.to_string()),
        registry.clone(),
        registry,
        Duration::from_secs(60),
    );
    let shell = Shell {
        tenancy: tenancy.clone(),
        metrics: Metrics::new("http-shell-test"),
        readiness,
        openapi: json!({"openapi": "3.1.0", "info": {"title": "test", "version": "0"}}),
        request_timeout,
        body_limit: BODY_LIMIT,
    };
    App {
        router: platform_router(api(tenancy), shell),
        a_id,
    }
}

fn slugs() -> (TenantSlug, TenantSlug) {
    (
        TenantSlug::parse(&prismicx_harness::unique_name("a")).unwrap(),
        TenantSlug::parse(&prismicx_harness::unique_name("b")).unwrap(),
    )
}

/// An app whose readiness checks nothing (for the tests that do not concern readiness).
fn plain_app() -> (App, TenantSlug, TenantSlug) {
    let (a, b) = slugs();
    (app(vec![], (&a, &b), TIMEOUT), a, b)
}

async fn send(router: &Router, req: Request<Body>) -> (Response<()>, Vec<u8>) {
    let res = router.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, ()), bytes)
}

fn get_req(uri: &str) -> axum::http::request::Builder {
    Request::builder().method("GET").uri(uri)
}

/// `GET uri` with no headers and no body.
async fn get_plain(router: &Router, uri: &str) -> (Response<()>, Vec<u8>) {
    send(router, get_req(uri).body(Body::empty()).unwrap()).await
}

/// `GET uri` must be a 200; returns its body as JSON.
async fn get_json_ok(router: &Router, uri: &str) -> Value {
    let (res, body) = get_plain(router, uri).await;
    assert_eq!(res.status(), StatusCode::OK, "{uri}");
    serde_json::from_slice(&body).unwrap()
}

fn echo_req(key: &str, tenant: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri("/v1/echo")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = tenant {
        b = b.header("x-tenant", t);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// Asserts a problem+json response with `status`; returns the document.
fn problem(res: &Response<()>, body: &[u8], status: u16) -> Value {
    assert_eq!(
        res.status().as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let doc: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(doc["status"], status);
    assert!(doc["title"].is_string() && doc["type"].is_string(), "{doc}");
    doc
}

#[tokio::test]
async fn healthz_and_metrics() {
    let (app, _, _) = plain_app();
    assert_eq!(get_json_ok(&app.router, "/healthz").await["status"], "ok");

    let (res, body) = get_plain(&app.router, "/metrics").await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"route="/healthz""#)
            && l.contains(r#"status="200""#)),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds"), "{text}");

    let openapi = get_json_ok(&app.router, "/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.1.0");
}

#[tokio::test]
async fn readyz_checks_postgres_through_pgbouncer() {
    let fx = PgFixture::provision(0).await;
    let (a, b) = slugs();
    let db: Arc<dyn ReadinessCheck> = Arc::new(fx.tenant_db(2));
    // /readyz runs under the request timeout too; give the failing check (below) room.
    let app = app(vec![db], (&a, &b), Duration::from_secs(10));
    let (res, body) = get_plain(&app.router, "/readyz").await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{doc}");
    assert_eq!(doc["checks"]["postgres"], "ok");
    assert_eq!(doc["status"], "ready");

    // The same login, pointed at a database that does not exist.
    let mut settings = fx.settings_for(&prismicx_harness::unique_name("missing_"), 2);
    settings.acquire_timeout = Duration::from_secs(2);
    let missing: Arc<dyn ReadinessCheck> = Arc::new(TenantDb::connect_lazy(settings));
    let app = crate::app(vec![missing], (&a, &b), Duration::from_secs(10));
    let (res, body) = get_plain(&app.router, "/readyz").await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{doc}");
    assert_eq!(doc["checks"]["postgres"], "failed");
    assert_eq!(doc["status"], "not ready");
}

#[tokio::test]
async fn authentication_and_tenant_selection() {
    let (app, a, b) = plain_app();
    let body = r#"{"name":"n"}"#;

    // Tenant key: acts for its tenant, with or without naming it.
    for named in [None, Some(a.as_str())] {
        let (res, out) = send(&app.router, echo_req(KEY_A, named, body)).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&out)
        );
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["tenant"], a.as_str());
        assert_eq!(doc["tenantId"], app.a_id.to_string());
    }
    // X-API-Key works too.
    let req = get_req("/v1/whoami")
        .header("x-api-key", KEY_A)
        .body(Body::empty())
        .unwrap();
    let (res, _) = send(&app.router, req).await;
    assert_eq!(res.status(), StatusCode::OK);

    // No key.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/echo")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let (res, out) = send(&app.router, req).await;
    problem(&res, &out, 401);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");

    // Wrong key.
    let (res, out) = send(&app.router, echo_req("not-a-key", None, body)).await;
    problem(&res, &out, 401);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");

    // A's key naming B.
    let (res, out) = send(&app.router, echo_req(KEY_A, Some(b.as_str()), body)).await;
    problem(&res, &out, 403);

    // Platform key without X-Tenant: 400 naming the header.
    let (res, out) = send(&app.router, echo_req(PLATFORM_KEY, None, body)).await;
    let doc = problem(&res, &out, 400);
    assert_eq!(doc["errors"][0]["field"], "X-Tenant", "{doc}");

    // Platform key naming B; and naming an unknown tenant or a malformed slug.
    let (res, out) = send(&app.router, echo_req(PLATFORM_KEY, Some(b.as_str()), body)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&out).unwrap()["tenant"],
        b.as_str()
    );
    let (res, out) = send(
        &app.router,
        echo_req(PLATFORM_KEY, Some("nobody-here"), body),
    )
    .await;
    problem(&res, &out, 404);
    let (res, out) = send(&app.router, echo_req(PLATFORM_KEY, Some("Bad_Slug"), body)).await;
    let doc = problem(&res, &out, 400);
    assert_eq!(doc["errors"][0]["field"], "X-Tenant", "{doc}");
}

#[tokio::test]
async fn request_ids_are_generated_and_echoed() {
    let (app, _, _) = plain_app();
    let (res, _) = get_plain(&app.router, "/healthz").await;
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(Uuid::parse_str(&generated).is_ok(), "{generated}");
    let (res, _) = get_plain(&app.router, "/healthz").await;
    assert_ne!(res.headers()["x-request-id"], generated.as_str());

    let req = get_req("/v1/whoami")
        .header("x-request-id", "req-from-client-42")
        .body(Body::empty())
        .unwrap();
    // Even an error response (401 here) carries it.
    let (res, _) = send(&app.router, req).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["x-request-id"], "req-from-client-42");
}

#[tokio::test]
async fn bad_bodies_and_routes_get_problems() {
    let (app, _, _) = plain_app();

    // Larger than the body limit.
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(BODY_LIMIT * 2));
    let (res, out) = send(&app.router, echo_req(KEY_A, None, &big)).await;
    problem(&res, &out, 413);

    // Not JSON.
    let req = Request::builder()
        .method("POST")
        .uri("/v1/echo")
        .header(header::AUTHORIZATION, format!("Bearer {KEY_A}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("name=n"))
        .unwrap();
    let (res, out) = send(&app.router, req).await;
    problem(&res, &out, 415);

    // Malformed JSON, and JSON of the wrong shape naming the field.
    let (res, out) = send(&app.router, echo_req(KEY_A, None, r#"{"name":"#)).await;
    problem(&res, &out, 400);
    let (res, out) = send(
        &app.router,
        echo_req(KEY_A, None, r#"{"name":"n","tenantId":"x"}"#),
    )
    .await;
    let doc = problem(&res, &out, 422);
    assert_eq!(doc["errors"][0]["field"], "tenantId", "{doc}");

    // Unknown route (no key needed to learn it does not exist), and a wrong method.
    let (res, out) = get_plain(&app.router, "/v1/nothing-here").await;
    problem(&res, &out, 404);
    let req = Request::builder()
        .method("DELETE")
        .uri("/healthz")
        .body(Body::empty())
        .unwrap();
    let (res, out) = send(&app.router, req).await;
    problem(&res, &out, 405);
}

#[tokio::test]
async fn slow_handlers_are_cut_off_with_a_503_problem() {
    let (app, _, _) = plain_app();
    let started = std::time::Instant::now();
    let req = get_req("/v1/slow")
        .header(header::AUTHORIZATION, format!("Bearer {KEY_A}"))
        .body(Body::empty())
        .unwrap();
    let (res, out) = send(&app.router, req).await;
    problem(&res, &out, 503);
    // Cut off at the timeout, not after the handler's 5 s (a bound, not a performance figure).
    assert!(started.elapsed() < Duration::from_secs(4));
}
