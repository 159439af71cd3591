//! Attacks on authentication and on the tenants' shared capacity, through the HTTP shell
//! (`platform_router`) driven in process: key guessing per client and per named tenant, floods
//! of garbage keys against the key store, and a noisy tenant against its neighbour. Clients are
//! told apart by the `ConnectInfo` peer address `serve` attaches to each request; the tests
//! attach it by hand. The key store is the file registry behind a counter of the lookups that
//! reach it.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use prismicx_service_common::auth::{KeyDigest, KeyStore, PresentedKey};
use prismicx_service_common::config::Secret;
use prismicx_service_common::http::{platform_router, Shell};
use prismicx_service_common::metrics::Metrics;
use prismicx_service_common::ratelimit::{Limits, RateLimit};
use prismicx_service_common::tenancy::{
    DirectoryError, RegistryEntry, StaticRegistry, Tenancy, TenancyOptions, Tenant, TenantSlug,
    TenantState, Tier,
};
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

const PLATFORM_KEY: &str = "platform-key-abuse-0123456789";
const KEY_A: &str = "tenant-a-key-abuse-0123456789";
const KEY_B: &str = "tenant-b-key-abuse-0123456789";
const HOUR: Duration = Duration::from_secs(3600);

/// The file registry, counting the verifications that reach it.
struct Counted {
    inner: StaticRegistry,
    calls: AtomicUsize,
}

#[async_trait]
impl KeyStore for Counted {
    async fn verify(&self, key: &PresentedKey) -> Result<Option<TenantSlug>, DirectoryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(key).await
    }
}

struct App {
    router: Router,
    store: Arc<Counted>,
    a: TenantSlug,
    b: TenantSlug,
}

impl App {
    fn lookups(&self) -> usize {
        self.store.calls.load(Ordering::SeqCst)
    }
}

fn app(options: TenancyOptions) -> App {
    let a = TenantSlug::parse(&prismicx_harness::unique_name("a")).unwrap();
    let b = TenantSlug::parse(&prismicx_harness::unique_name("b")).unwrap();
    let entry = |slug: &TenantSlug, key: &str| RegistryEntry {
        slug: slug.clone(),
        id: Uuid::new_v4(),
        tier: Tier::Standard,
        state: TenantState::Active,
        api_keys: vec![KeyDigest::of(key).to_string()],
    };
    let registry = StaticRegistry::from_entries(vec![entry(&a, KEY_A), entry(&b, KEY_B)]);
    let store = Arc::new(Counted {
        inner: registry.clone(),
        calls: AtomicUsize::new(0),
    });
    let tenancy = Tenancy::with_options(
        &Secret::new(PLATFORM_KEY.to_string()),
        store.clone(),
        Arc::new(registry),
        options,
    );
    let api = Router::new()
        .route(
            "/v1/whoami",
            get(|Tenant(t): Tenant| async move { axum::Json(json!({"tenant": t.slug})) }),
        )
        .with_state(tenancy.clone());
    let shell = Shell {
        tenancy,
        metrics: Metrics::new("abuse-test"),
        readiness: vec![],
        openapi: json!({"openapi": "3.1.0", "info": {"title": "test", "version": "0"}}),
        request_timeout: Duration::from_secs(10),
        body_limit: 1024,
    };
    App {
        router: platform_router(api, shell),
        store,
        a,
        b,
    }
}

/// An app whose only limit is `per_client` failed authentications per client an hour.
fn guarded_per_client(per_client: u32) -> App {
    app(options(Limits {
        auth_failures_per_client: per_client,
        auth_failure_window: HOUR,
        ..Limits::off()
    }))
}

fn options(limits: Limits) -> TenancyOptions {
    TenancyOptions {
        limits,
        ..TenancyOptions::new(Duration::from_secs(300))
    }
}

struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
    content_type: Option<String>,
    body: Value,
}

/// `GET /v1/whoami` with `key`, from `client` (a peer address) when given, naming `tenant`.
async fn whoami(app: &App, key: &str, client: Option<&str>, tenant: Option<&str>) -> Reply {
    let mut req = Request::get("/v1/whoami").header(header::AUTHORIZATION, format!("Bearer {key}"));
    if let Some(t) = tenant {
        req = req.header("x-tenant", t);
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(c) = client {
        let addr: SocketAddr = format!("{c}:40000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    let res = app.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let retry_after = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        retry_after,
        content_type,
        body,
    }
}

fn garbage(i: usize) -> String {
    format!("pxk_guess_{i:06}_{}", Uuid::new_v4().simple())
}

fn assert_throttled(r: &Reply) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.retry_after.is_some_and(|s| s >= 1), "Retry-After missing");
    assert_eq!(r.content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(r.body["status"], 429);
}

#[tokio::test]
async fn guessing_keys_is_rate_limited_per_client() {
    let app = guarded_per_client(5);
    let attacker = "198.51.100.7";
    for i in 0..5 {
        let r = whoami(&app, &garbage(i), Some(attacker), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.lookups(), 5);
    // The sixth guess is refused before its key is looked up.
    let r = whoami(&app, &garbage(5), Some(attacker), None).await;
    assert_throttled(&r);
    assert_eq!(app.lookups(), 5);
    // So is a valid key from the same client, for the rest of the window: the limit is on the
    // client, not on what it guesses.
    assert_throttled(&whoami(&app, KEY_A, Some(attacker), None).await);
    // Another client is served, and its own failures are its own.
    let r = whoami(&app, KEY_A, Some("203.0.113.20"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["tenant"], app.a.as_str());
    let r = whoami(&app, &garbage(6), Some("203.0.113.20"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Without a socket (no ConnectInfo) requests count as one client of their own.
    assert_eq!(whoami(&app, KEY_B, None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn guessing_keys_with_fresh_addresses_from_one_ipv6_host_counts_as_one_client() {
    let app = guarded_per_client(3);
    for i in 0..3 {
        let r = whoami(
            &app,
            &garbage(i),
            Some(&format!("[2001:db8:7:7::{i:x}]")),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_throttled(&whoami(&app, &garbage(9), Some("[2001:db8:7:7:ffff::1]"), None).await);
    assert_eq!(app.lookups(), 3);
}

#[tokio::test]
async fn a_spray_of_client_addresses_is_limited_as_one_client_once_the_table_is_full() {
    let app = app(options(Limits {
        auth_failures_per_client: 3,
        auth_failure_window: HOUR,
        max_tracked: 10,
        ..Limits::off()
    }));
    // Ten addresses fill the table; the rest of the spray shares one overflow window.
    for i in 0..13 {
        let r = whoami(&app, &garbage(i), Some(&format!("192.0.2.{i}")), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    assert_throttled(&whoami(&app, &garbage(99), Some("192.0.2.200"), None).await);
    assert_eq!(app.lookups(), 13);
    // A tracked client under its limit is still served.
    assert_eq!(
        whoami(&app, KEY_A, Some("192.0.2.0"), None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn guessing_keys_for_one_tenant_is_rate_limited_per_tenant() {
    let app = app(options(Limits {
        auth_failures_per_tenant: 3,
        auth_failure_window: HOUR,
        ..Limits::off()
    }));
    let (a, b) = (app.a.to_string(), app.b.to_string());
    // Guesses from ever new clients, all naming tenant a.
    for i in 0..3 {
        let r = whoami(
            &app,
            &garbage(i),
            Some(&format!("198.51.100.{i}")),
            Some(&a),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = whoami(&app, &garbage(3), Some("198.51.100.50"), Some(&a)).await;
    assert_throttled(&r);
    assert_eq!(app.lookups(), 3);
    // Tenant b is not affected.
    let r = whoami(&app, &garbage(4), Some("198.51.100.51"), Some(&b)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        whoami(&app, KEY_B, Some("198.51.100.52"), Some(&b))
            .await
            .status,
        StatusCode::OK
    );
    // Tenant a's own clients (no X-Tenant) and the platform acting for it are still served.
    let r = whoami(&app, KEY_A, Some("198.51.100.53"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["tenant"], a.as_str());
    let r = whoami(&app, PLATFORM_KEY, Some("198.51.100.54"), Some(&a)).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn garbage_keys_do_not_evict_valid_keys_or_reach_the_store_twice() {
    let app = app(TenancyOptions {
        negative_capacity: 8,
        ..options(Limits::off())
    });
    assert_eq!(whoami(&app, KEY_A, None, None).await.status, StatusCode::OK);
    assert_eq!(app.lookups(), 1);
    // One garbage key repeated: looked up once.
    let repeated = garbage(0);
    for _ in 0..20 {
        let r = whoami(&app, &repeated, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.lookups(), 2);
    // A flood of distinct garbage, far beyond the negative cache's size…
    for i in 1..=100 {
        whoami(&app, &garbage(i), None, None).await;
    }
    assert_eq!(app.lookups(), 102);
    // …leaves the valid key cached: no lookup.
    let r = whoami(&app, KEY_A, None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["tenant"], app.a.as_str());
    assert_eq!(app.lookups(), 102);
}

#[tokio::test]
async fn a_noisy_tenant_is_throttled_and_its_neighbour_is_not() {
    // A rate so low no token comes back during the test: the burst is all there is.
    let app = app(options(Limits {
        tenant_rate: RateLimit {
            rps: 0.001,
            burst: 3,
        },
        ..Limits::off()
    }));
    for _ in 0..3 {
        assert_eq!(whoami(&app, KEY_A, None, None).await.status, StatusCode::OK);
    }
    let r = whoami(&app, KEY_A, None, None).await;
    assert_throttled(&r);
    // The platform acting for the noisy tenant spends the same budget.
    let a = app.a.to_string();
    assert_throttled(&whoami(&app, PLATFORM_KEY, None, Some(&a)).await);
    // The neighbour has its whole budget.
    for _ in 0..3 {
        let r = whoami(&app, KEY_B, None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["tenant"], app.b.as_str());
    }
    // Being throttled is not failing to authenticate: no key lookups beyond the first of each.
    assert_eq!(app.lookups(), 2);
}

/// A key store whose keys can be added while the test runs (tenant-mgmt issuing a key).
struct Growing {
    keys: std::sync::Mutex<Vec<(KeyDigest, TenantSlug)>>,
    calls: AtomicUsize,
}

#[async_trait]
impl KeyStore for Growing {
    async fn verify(&self, key: &PresentedKey) -> Result<Option<TenantSlug>, DirectoryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let digest = key.digest();
        Ok(self
            .keys
            .lock()
            .unwrap()
            .iter()
            .find(|(d, _)| d.ct_eq(&digest))
            .map(|(_, s)| s.clone()))
    }
}

#[tokio::test]
async fn a_key_refused_before_it_was_issued_works_once_keys_changed_is_announced() {
    let slug = TenantSlug::parse(&prismicx_harness::unique_name("a")).unwrap();
    let store = Arc::new(Growing {
        keys: std::sync::Mutex::new(vec![]),
        calls: AtomicUsize::new(0),
    });
    let tenancy = Tenancy::with_options(
        &Secret::new(PLATFORM_KEY.to_string()),
        store.clone(),
        Arc::new(StaticRegistry::default()),
        TenancyOptions {
            negative_ttl: HOUR,
            ..TenancyOptions::new(HOUR)
        },
    );
    let key = PresentedKey::new("pxk_issued_later_0123456789");
    for _ in 0..3 {
        assert_eq!(tenancy.authenticate(&key).await.unwrap_err().status(), 401);
    }
    assert_eq!(store.calls.load(Ordering::SeqCst), 1);
    // Issued now: the miss is still cached…
    store
        .keys
        .lock()
        .unwrap()
        .push((key.digest(), slug.clone()));
    assert_eq!(tenancy.authenticate(&key).await.unwrap_err().status(), 401);
    // …until the keysChanged event, which the subscriber turns into this call.
    tenancy.invalidate(&slug);
    assert_eq!(
        tenancy.authenticate(&key).await.unwrap(),
        prismicx_service_common::auth::Principal::Tenant(slug)
    );
}

/// An over-budget request is held `throttle_delay` before its 429, so a client that retries at
/// once is slowed to its connections / the delay (measured on tokio's paused clock: the test
/// does not wait, and asserts no wall time). Requests within the budget are not held.
#[tokio::test(start_paused = true)]
async fn an_over_budget_request_is_held_before_its_429_and_one_within_is_not() {
    let app = app(options(Limits {
        tenant_rate: RateLimit {
            rps: 0.001,
            burst: 1,
        },
        throttle_delay: std::time::Duration::from_millis(250),
        ..Limits::off()
    }));
    let start = tokio::time::Instant::now();
    assert_eq!(whoami(&app, KEY_A, None, None).await.status, StatusCode::OK);
    assert_eq!(
        start.elapsed(),
        std::time::Duration::ZERO,
        "within the budget: no hold"
    );
    let r = whoami(&app, KEY_A, None, None).await;
    assert_throttled(&r);
    assert_eq!(
        start.elapsed(),
        std::time::Duration::from_millis(250),
        "held for the throttle delay"
    );
    // The neighbour is not held.
    let before = tokio::time::Instant::now();
    assert_eq!(whoami(&app, KEY_B, None, None).await.status, StatusCode::OK);
    assert_eq!(before.elapsed(), std::time::Duration::ZERO);
}
