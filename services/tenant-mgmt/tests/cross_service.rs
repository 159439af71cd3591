//! Key revocation and tenant suspension reaching another service through Redis.
//!
//! tenant-mgmt runs on a loopback socket and publishes lifecycle events on the harness Redis;
//! user-data-service (on the harness PostgreSQL through PgBouncer) and task-repo-service (on the
//! harness MongoDB) resolve tenants and keys through tenant-mgmt's internal API, each with a
//! 5-minute cache of its own, and subscribe to the events. Only the
//! event can make a change visible within the test's wait, which the control case shows: a key
//! revoked behind tenant-mgmt's back (no event) keeps working from user-data's cache.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use mongodb::bson::{doc, Document};
use prismicx_harness::service::{mongo_store, ApiClient, Call, TestTenant, PLATFORM_KEY};
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
    /// user-data-service (PostgreSQL) and task-repo-service (MongoDB), each resolving through
    /// tenant-mgmt with its own cache and event subscription.
    others: Vec<(&'static str, &'static str, ApiClient)>,
}

/// A Tenancy resolving through tenant-mgmt at `url`, subscribed to lifecycle events.
async fn remote_tenancy(url: &str) -> Tenancy {
    let remote = Arc::new(RemoteDirectory::new(url, PLATFORM_KEY.into()).unwrap());
    let tenancy = Tenancy::new(&PLATFORM_KEY.into(), remote.clone(), remote, CACHE_TTL);
    let (tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    events::spawn_invalidator(Secret::new(redis_url()), tenancy.clone(), Some(tx));
    ready.recv().await.unwrap();
    tenancy
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

    let tenancy = remote_tenancy(&url).await;
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
    let user_data = ApiClient::new(prismicx_user_data::app(state, AppSettings::default()));
    let tasks = prismicx_task_repo::AppState {
        store: mongo_store(prismicx_task_repo::MONGO, &mgmt.tenants).await,
        tenancy: remote_tenancy(&url).await,
    };
    let tasks = ApiClient::new(prismicx_task_repo::app(tasks, AppSettings::default()));
    Platform {
        mgmt,
        others: vec![
            ("user-data", "/v1/users", user_data),
            ("task-repo", "/v1/tasks", tasks),
        ],
    }
}

impl Platform {
    /// What each other service answers a list request made with `key`.
    async fn statuses(&self, key: &str) -> Vec<(&'static str, StatusCode)> {
        let mut out = Vec::new();
        for (name, path, api) in &self.others {
            out.push((
                *name,
                api.send(Call::new(Method::GET, *path).key(key))
                    .await
                    .status,
            ));
        }
        out
    }

    /// Asserts every other service answers `want` to `key` now.
    async fn all_answer(&self, key: &str, want: StatusCode) {
        for (name, got) in self.statuses(key).await {
            assert_eq!(got, want, "{name}");
        }
    }

    /// Polls until every other service answers `want` to `key`, failing after [`DEADLINE`].
    async fn wait_for(&self, key: &str, want: StatusCode, what: &str) {
        let start = Instant::now();
        loop {
            let got = self.statuses(key).await;
            if got.iter().all(|(_, s)| *s == want) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{what}: expected {want} everywhere, got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
        p.all_answer(&key, StatusCode::OK).await;

        let r = p
            .mgmt
            .api
            .as_tenant(&tenant, Method::DELETE, &format!("/v1/api-keys/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        p.wait_for(&key, StatusCode::UNAUTHORIZED, "revoked key")
            .await;
        // The tenant's other key still works.
        p.all_answer(&tenant.key, StatusCode::OK).await;
    }
}

#[tokio::test]
async fn without_an_event_the_cache_keeps_a_revoked_key_until_its_ttl() {
    let p = platform().await;
    let tenant = &p.mgmt.tenants[0];
    p.all_answer(&tenant.key, StatusCode::OK).await;
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
    // …while the other services still serve it from their caches: the event is what makes revocation prompt.
    p.all_answer(&tenant.key, StatusCode::OK).await;
    publish(TenantEventKind::KeysChanged, tenant).await;
    p.wait_for(&tenant.key, StatusCode::UNAUTHORIZED, "after the event")
        .await;
}

#[tokio::test]
async fn suspension_and_resumption_reach_other_services_through_the_event() {
    let p = platform().await;
    for tenant in p.mgmt.tenants.clone() {
        p.all_answer(&tenant.key, StatusCode::OK).await;
        // What the operator does on `suspended: true`: registry state, then the event.
        set_state(&p.mgmt.store, &tenant, TenantState::Suspended).await;
        publish(TenantEventKind::Suspended, &tenant).await;
        p.wait_for(&tenant.key, StatusCode::FORBIDDEN, "suspended")
            .await;
        let r = p
            .mgmt
            .api
            .as_tenant(&tenant, Method::GET, "/v1/settings", None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "tenant-mgmt itself");
        for other in p.mgmt.tenants.iter().filter(|o| o.slug() != tenant.slug()) {
            p.all_answer(&other.key, StatusCode::OK).await;
        }

        set_state(&p.mgmt.store, &tenant, TenantState::Active).await;
        publish(TenantEventKind::Resumed, &tenant).await;
        p.wait_for(&tenant.key, StatusCode::OK, "resumed").await;
    }
}
