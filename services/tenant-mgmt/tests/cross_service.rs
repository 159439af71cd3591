//! Key revocation and tenant suspension reaching another service through Redis.
//!
//! tenant-mgmt runs on a loopback socket and publishes lifecycle events on the harness Redis;
//! user-data-service (on the harness PostgreSQL through PgBouncer) resolves tenants and keys
//! through tenant-mgmt's internal API with a 5-minute cache and subscribes to the events. Only the
//! event can make a change visible within the test's wait, which the control case shows: a key
//! revoked behind tenant-mgmt's back (no event) keeps working from user-data's cache.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use mongodb::bson::{doc, Document};
use prismicx_harness::service::{ApiClient, Call, TestTenant, PLATFORM_KEY};
use prismicx_harness::{servers, unique_name};
use prismicx_service_common::config::Secret;
use prismicx_service_common::directory::RemoteDirectory;
use prismicx_service_common::events::{self, TenantEvent, TenantEventKind};
use prismicx_service_common::pg::{migrate, PgSettings, TenantDb};
use prismicx_service_common::service::AppSettings;
use prismicx_service_common::tenancy::{Tenancy, TenantState};
use prismicx_tenant_mgmt::API_KEYS_COLLECTION;
use serde_json::json;
use support::{redis_url, set_state, spawn_with, Options};

/// How long a change may take to reach the other service before the test fails. Far below the
/// cache TTL, so only the lifecycle event can deliver it in time.
const DEADLINE: Duration = Duration::from_secs(15);
const CACHE_TTL: Duration = Duration::from_secs(300);

struct Platform {
    mgmt: support::TestApp,
    user_data: ApiClient,
}

/// tenant-mgmt on a socket, user-data in process resolving through it.
async fn platform() -> Platform {
    let mgmt = spawn_with(Options {
        tenants: 2,
        dedicated: vec![1],
        cache_ttl: CACHE_TTL,
        events: true,
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = mgmt.api.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    events::spawn_invalidator(Secret::new(redis_url()), mgmt.state.tenancy.clone(), None);

    // user-data's database, as the operator provisions it.
    let s = servers();
    let db = s.postgres.create_database().await.unwrap().name;
    let mut admin = s.postgres.admin_connect(&db).await.unwrap();
    let schema = &prismicx_user_data::migrations::SCHEMA;
    migrate::apply_system(&mut admin, schema).await.unwrap();
    let login = format!("{db}_svc");
    let password = unique_name("pw");
    migrate::ensure_login_role(&mut admin, &login, &Secret::new(password.clone()))
        .await
        .unwrap();
    for t in &mgmt.tenants {
        migrate::provision_tenant(&mut admin, schema, &t.placement.slug, t.id())
            .await
            .unwrap();
    }
    let aliases: Vec<_> = mgmt
        .tenants
        .iter()
        .filter(|t| t.placement.tier == prismicx_service_common::tenancy::Tier::Dedicated)
        .map(|t| prismicx_harness::PoolAlias {
            name: prismicx_service_common::pg::dedicated_pool_alias(&db, &t.placement.slug),
            dbname: db.clone(),
            pool_size: 2,
        })
        .collect();
    s.pgbouncer.set_aliases(&aliases).await.unwrap();

    let remote = Arc::new(RemoteDirectory::new(&url, PLATFORM_KEY.into()).unwrap());
    let tenancy = Tenancy::new(&PLATFORM_KEY.into(), remote.clone(), remote, CACHE_TTL);
    let (tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    events::spawn_invalidator(Secret::new(redis_url()), tenancy.clone(), Some(tx));
    ready.recv().await.unwrap();
    let state = prismicx_user_data::AppState {
        db: Arc::new(TenantDb::connect_lazy(PgSettings {
            host: "127.0.0.1".into(),
            port: s.pgbouncer.port(),
            database: db,
            user: login,
            password: Secret::new(password),
            pool_size: 4,
            dedicated_pool_size: 2,
            acquire_timeout: Duration::from_secs(10),
        })),
        tenancy,
    };
    Platform {
        mgmt,
        user_data: ApiClient::new(prismicx_user_data::app(state, AppSettings::default())),
    }
}

async fn users_with(api: &ApiClient, key: &str) -> StatusCode {
    api.send(Call::new(Method::GET, "/v1/users").key(key))
        .await
        .status
}

/// Polls until user-data answers `want` with `key`, failing after [`DEADLINE`].
async fn wait_for(api: &ApiClient, key: &str, want: StatusCode, what: &str) {
    let start = Instant::now();
    loop {
        let got = users_with(api, key).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: user-data still answers {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn publish(kind: TenantEventKind, t: &TestTenant) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    events::publish(
        &mut conn,
        &TenantEvent::new(kind, t.id(), t.placement.slug.clone()),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_revoked_key_stops_working_in_other_services_through_the_event() {
    let p = platform().await;
    for tenant in p.mgmt.tenants.clone() {
        let issued = p
            .mgmt
            .api
            .as_platform(
                tenant.slug(),
                Method::POST,
                "/v1/api-keys",
                Some(json!({"name": "app"})),
            )
            .await;
        assert_eq!(issued.status, StatusCode::CREATED);
        let (id, key) = (issued.str("id"), issued.str("key"));
        assert_eq!(users_with(&p.user_data, &key).await, StatusCode::OK);

        let r = p
            .mgmt
            .api
            .as_tenant(&tenant, Method::DELETE, &format!("/v1/api-keys/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        wait_for(&p.user_data, &key, StatusCode::UNAUTHORIZED, "revoked key").await;
        // The tenant's other key still works.
        assert_eq!(users_with(&p.user_data, &tenant.key).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn without_an_event_the_cache_keeps_a_revoked_key_until_its_ttl() {
    let p = platform().await;
    let tenant = &p.mgmt.tenants[0];
    assert_eq!(users_with(&p.user_data, &tenant.key).await, StatusCode::OK);
    // Revoked in the database directly: no event is published.
    p.mgmt
        .store
        .system_database()
        .collection::<Document>(API_KEYS_COLLECTION)
        .update_many(
            doc! { "slug": tenant.slug() },
            doc! { "$set": { "revoked_at": mongodb::bson::DateTime::now() } },
        )
        .await
        .unwrap();
    // tenant-mgmt itself (asked fresh) refuses it…
    let fresh = p
        .mgmt
        .api
        .send(
            Call::new(Method::POST, "/internal/v1/api-keys/verify")
                .key(PLATFORM_KEY)
                .json(json!({"digest": prismicx_service_common::auth::KeyDigest::of(&tenant.key).to_string()})),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::NOT_FOUND);
    // …while user-data still serves it from its cache: the event is what makes revocation prompt.
    assert_eq!(users_with(&p.user_data, &tenant.key).await, StatusCode::OK);
    publish(TenantEventKind::KeysChanged, tenant).await;
    wait_for(
        &p.user_data,
        &tenant.key,
        StatusCode::UNAUTHORIZED,
        "after the event",
    )
    .await;
}

#[tokio::test]
async fn suspension_and_resumption_reach_other_services_through_the_event() {
    let p = platform().await;
    for tenant in p.mgmt.tenants.clone() {
        assert_eq!(users_with(&p.user_data, &tenant.key).await, StatusCode::OK);
        // What the operator does on `suspended: true`: registry state, then the event.
        set_state(&p.mgmt.store, &tenant, TenantState::Suspended).await;
        publish(TenantEventKind::Suspended, &tenant).await;
        wait_for(
            &p.user_data,
            &tenant.key,
            StatusCode::FORBIDDEN,
            "suspended",
        )
        .await;
        let r = p
            .mgmt
            .api
            .as_tenant(&tenant, Method::GET, "/v1/settings", None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "tenant-mgmt itself");
        for other in p.mgmt.tenants.iter().filter(|o| o.slug() != tenant.slug()) {
            assert_eq!(users_with(&p.user_data, &other.key).await, StatusCode::OK);
        }

        set_state(&p.mgmt.store, &tenant, TenantState::Active).await;
        publish(TenantEventKind::Resumed, &tenant).await;
        wait_for(&p.user_data, &tenant.key, StatusCode::OK, "resumed").await;
    }
}
