//! Key revocation, key expiry, tenant suspension and tenant deletion reaching other services, and
//! the attacks the shared shell stops before they reach tenant-mgmt (floods of garbage keys) or a
//! neighbour (a noisy tenant, throttled by its own `rate_limit` from the registry).
//!
//! tenant-mgmt runs on a loopback socket (counting the key verifications it serves), subscribes
//! to lifecycle events like the deployed service (revoking a deleted tenant's keys) and publishes
//! them on the harness Redis;
//! user-data-service (on the harness PostgreSQL through PgBouncer) and task-repo-service (on the
//! harness MongoDB) resolve tenants and keys through tenant-mgmt's internal API, each with a
//! 5-minute cache of its own, and subscribe to the events. Only the
//! event can make a change visible within the test's wait, which the control case shows: a key
//! revoked behind tenant-mgmt's back (no event) keeps working from user-data's cache.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use mongodb::bson::{doc, Document};
use prismicx_harness::kit::{mongo_store, ApiClient, Call, TestTenant, PLATFORM_KEY};
use prismicx_harness::{servers, unique_name};
use prismicx_service_common::config::Secret;
use prismicx_service_common::directory::{RemoteDirectory, VERIFY_KEY_PATH};
use prismicx_service_common::events::{self, TenantEvent, TenantEventKind};
use prismicx_service_common::pg::{migrate, PgSettings, TenantDb};
use prismicx_service_common::ratelimit::{Limits, RateLimit};
use prismicx_service_common::service::AppSettings;
use prismicx_service_common::tenancy::{Tenancy, TenancyOptions, TenantState};
use prismicx_tenant_mgmt::{API_KEYS_COLLECTION, REGISTRY_COLLECTION};
use serde_json::json;
use support::{issue_key, redis_url, register, set_state, spawn_with, verify_key, Options};

/// How long a change may take to reach the other service before the test fails. Far below the
/// cache TTL, so only the lifecycle event can deliver it in time.
const DEADLINE: Duration = Duration::from_secs(15);
const CACHE_TTL: Duration = Duration::from_secs(300);

struct Platform {
    mgmt: support::TestApp,
    /// Key verifications tenant-mgmt has served over its socket.
    verifications: Arc<AtomicUsize>,
    /// user-data-service (PostgreSQL) and task-repo-service (MongoDB), each resolving through
    /// tenant-mgmt with its own cache and event subscription.
    others: Vec<(&'static str, &'static str, ApiClient)>,
}

/// A Tenancy resolving through tenant-mgmt at `url`, subscribed to lifecycle events.
async fn remote_tenancy(url: &str, options: TenancyOptions) -> Tenancy {
    let remote = Arc::new(RemoteDirectory::new(url, PLATFORM_KEY.into()).unwrap());
    let tenancy = Tenancy::with_options(&PLATFORM_KEY.into(), remote.clone(), remote, options);
    let (tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    events::spawn_invalidator(Secret::new(redis_url()), tenancy.clone(), Some(tx));
    ready.recv().await.unwrap();
    tenancy
}

/// tenant-mgmt on a socket, user-data and task-repo in process resolving through it, caching
/// for [`CACHE_TTL`] with no rate limits.
async fn platform() -> Platform {
    platform_with(TenancyOptions::new(CACHE_TTL), |_| None).await
}

/// [`platform`] with the other services' caches and limits from `options`, and `edit` applied
/// to the registry documents (as the operator would write them) before anything is cached.
async fn platform_with(
    options: TenancyOptions,
    edit: impl Fn(&prismicx_harness::kit::TestTenant) -> Option<mongodb::bson::Document>,
) -> Platform {
    let mgmt = spawn_with(Options {
        tenants: 2,
        dedicated: vec![1],
        cache_ttl: CACHE_TTL,
        events: true,
    })
    .await;
    for t in &mgmt.tenants {
        if let Some(set) = edit(t) {
            mgmt.store
                .system_database()
                .collection::<Document>(REGISTRY_COLLECTION)
                .update_one(doc! { "_id": t.slug() }, doc! { "$set": set })
                .await
                .unwrap();
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let verifications = Arc::new(AtomicUsize::new(0));
    let counter = verifications.clone();
    let router = mgmt.api.router.clone().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            if req.uri().path() == VERIFY_KEY_PATH {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            next.run(req)
        },
    ));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    // tenant-mgmt's own subscription, as `run` sets it up (revoking a deleted tenant's keys).
    let (tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    prismicx_tenant_mgmt::events::spawn_listener(
        Secret::new(redis_url()),
        mgmt.state.tenancy.clone(),
        mgmt.state.keys.clone(),
        Some(tx),
    );
    ready.recv().await.unwrap();

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

    let tenancy = remote_tenancy(&url, options.clone()).await;
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
        tenancy: remote_tenancy(&url, options).await,
    };
    let tasks = ApiClient::new(prismicx_task_repo::app(tasks, AppSettings::default()));
    Platform {
        mgmt,
        verifications,
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

    /// Asserts tenant-mgmt itself answers `want` to `tenant`'s key on its settings.
    async fn mgmt_answers(&self, tenant: &TestTenant, want: StatusCode) {
        let api = &self.mgmt.api;
        let r = api.get_with(&tenant.key, "/v1/settings").await;
        assert_eq!(r.status, want, "tenant-mgmt itself");
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
async fn revoked_key_is_refused_at_once_by_other_services() {
    let p = platform().await;
    for tenant in p.mgmt.tenants.clone() {
        let (id, key) = issue(&p, &tenant).await;
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
    let fresh = verify_key(&p.mgmt.api, PLATFORM_KEY, &tenant.key).await;
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
        p.mgmt_answers(&tenant, StatusCode::FORBIDDEN).await;
        for other in p.mgmt.tenants.iter().filter(|o| o.slug() != tenant.slug()) {
            p.all_answer(&other.key, StatusCode::OK).await;
        }

        set_state(&p.mgmt.store, &tenant, TenantState::Active).await;
        publish(TenantEventKind::Resumed, &tenant).await;
        p.wait_for(&tenant.key, StatusCode::OK, "resumed").await;
    }
}

/// `GET path` with `key` from the client at `ip` (as `serve` records the peer address).
async fn from_client(
    api: &ApiClient,
    ip: &str,
    key: &str,
    path: &str,
) -> prismicx_harness::kit::Reply {
    let mut req = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::new(
            ip.parse().unwrap(),
            40000,
        )));
    api.raw(req).await
}

fn assert_throttled(r: &prismicx_harness::kit::Reply) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(r.is_problem(), "{}", r.body);
}

/// What tenant-mgmt answers, asked fresh, about the key `key`.
async fn fresh_verification(p: &Platform, key: &str) -> StatusCode {
    p.mgmt
        .api
        .send(
            Call::new(Method::POST, VERIFY_KEY_PATH)
                .key(PLATFORM_KEY)
                .json(json!({"digest": prismicx_service_common::auth::KeyDigest::of(key).to_string()})),
        )
        .await
        .status
}

/// Issues a key for `tenant` through the API: (id, key).
async fn issue(p: &Platform, tenant: &TestTenant) -> (String, String) {
    let issued = issue_key(&p.mgmt.api, tenant, "app").await;
    (issued.str("id"), issued.str("key"))
}

/// Polls until `done` holds, failing after [`DEADLINE`].
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, done: impl Fn() -> F) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < DEADLINE, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_expired_key_is_refused_by_other_services_that_cached_it() {
    let p = platform().await;
    let tenant = &p.mgmt.tenants[0];
    // Stored directly (no event is published for it, and none is for its expiry).
    let key = prismicx_tenant_mgmt::keys::generate();
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let doc = prismicx_tenant_mgmt::keys::KeyDoc {
        id: prismicx_service_common::mongo::bson_uuid(uuid::Uuid::new_v4()),
        tenant_id: None,
        slug: tenant.slug().to_string(),
        name: "short-lived".into(),
        prefix: key.chars().take(12).collect(),
        digest: prismicx_tenant_mgmt::keys::digest_of(&key),
        created_at: mongodb::bson::DateTime::now(),
        created_by: "platform".into(),
        expires_at: Some(prismicx_service_common::mongo::bson_time(expires_at)),
        revoked_at: None,
    };
    p.mgmt
        .state
        .keys
        .insert(&tenant.placement, &doc)
        .await
        .unwrap();
    // Both services verify it and cache it (for up to five minutes).
    p.all_answer(&key, StatusCode::OK).await;
    while chrono::Utc::now() <= expires_at + chrono::Duration::milliseconds(100) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Expired: refused at once, from the cache's own knowledge of the expiry.
    p.all_answer(&key, StatusCode::UNAUTHORIZED).await;
    assert_eq!(fresh_verification(&p, &key).await, StatusCode::NOT_FOUND);
    p.all_answer(&tenant.key, StatusCode::OK).await;
    p.all_answer(&p.mgmt.tenants[1].key, StatusCode::OK).await;
}

/// What the operator does when it deletes a tenant: the registry entry goes, then the event.
async fn operator_deletes(p: &Platform, tenant: &TestTenant, announce: bool) {
    p.mgmt
        .store
        .system_database()
        .collection::<Document>(REGISTRY_COLLECTION)
        .delete_one(doc! { "_id": tenant.slug() })
        .await
        .unwrap();
    if announce {
        publish(TenantEventKind::Deleted, tenant).await;
    }
}

/// The tenant's keys that are not revoked, straight from the collection.
async fn unrevoked_keys(p: &Platform, tenant: &TestTenant) -> u64 {
    p.mgmt
        .store
        .system_database()
        .collection::<Document>(API_KEYS_COLLECTION)
        .count_documents(doc! {
            "tenant_id": prismicx_service_common::mongo::tenant_bson(tenant.id()),
            "revoked_at": mongodb::bson::Bson::Null,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn retained_and_recreated_tenant_does_not_get_old_keys_back() {
    let p = platform().await;
    let tenant = p.mgmt.tenants[0].clone();
    let neighbour = p.mgmt.tenants[1].clone();
    let (old_id, old_key) = issue(&p, &tenant).await;
    p.all_answer(&old_key, StatusCode::OK).await;
    assert_eq!(unrevoked_keys(&p, &tenant).await, 2);

    operator_deletes(&p, &tenant, true).await;
    // tenant-mgmt revokes every key of the deleted tenant on the event.
    eventually("the deleted tenant's keys are revoked", || async {
        unrevoked_keys(&p, &tenant).await == 0
    })
    .await;
    // Created again under the same id (DeletionPolicy Retain): a new registry entry, announced.
    tokio::time::sleep(Duration::from_millis(5)).await;
    register(&p.mgmt.store, &tenant).await;
    publish(TenantEventKind::Provisioned, &tenant).await;

    for old in [&old_key, &tenant.key] {
        p.wait_for(
            old,
            StatusCode::UNAUTHORIZED,
            "a key of the tenant's former life",
        )
        .await;
        assert_eq!(fresh_verification(&p, old).await, StatusCode::NOT_FOUND);
    }
    let listed = p
        .mgmt
        .api
        .as_platform(
            tenant.slug(),
            Method::GET,
            &format!("/v1/api-keys/{old_id}"),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.str("status"), "revoked");
    // The tenant's new life gets new keys, which work; the neighbour never noticed.
    let (_, new_key) = issue(&p, &tenant).await;
    p.wait_for(
        &new_key,
        StatusCode::OK,
        "a key issued after the re-creation",
    )
    .await;
    p.all_answer(&neighbour.key, StatusCode::OK).await;
    assert_eq!(unrevoked_keys(&p, &neighbour).await, 1);
}

#[tokio::test]
async fn a_recreated_tenant_does_not_get_old_keys_back_even_if_the_deleted_event_was_missed() {
    let p = platform().await;
    let tenant = p.mgmt.tenants[0].clone();
    // tenant-mgmt was down when the operator deleted the tenant: no event reached it.
    operator_deletes(&p, &tenant, false).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    register(&p.mgmt.store, &tenant).await;
    // The old key was never revoked…
    assert_eq!(unrevoked_keys(&p, &tenant).await, 1);
    // …but it predates the tenant's registry entry, so nobody accepts it.
    assert_eq!(
        fresh_verification(&p, &tenant.key).await,
        StatusCode::NOT_FOUND
    );
    p.all_answer(&tenant.key, StatusCode::UNAUTHORIZED).await;
    p.mgmt_answers(&tenant, StatusCode::UNAUTHORIZED).await;
    p.all_answer(&p.mgmt.tenants[1].key, StatusCode::OK).await;
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn garbage_keys_do_not_reach_tenant_mgmt() {
    let options = TenancyOptions {
        negative_ttl: CACHE_TTL,
        limits: Limits {
            auth_failures_per_client: 30,
            auth_failure_window: HOUR,
            ..Limits::off()
        },
        ..TenancyOptions::new(CACHE_TTL)
    };
    let p = platform_with(options, |_| None).await;
    let (_, _, tasks) = &p.others[1];
    let verifications = || p.verifications.load(Ordering::SeqCst);
    let attacker = "198.51.100.7";
    let before = verifications();

    // The same garbage key, again and again: tenant-mgmt is asked once.
    let garbage = prismicx_tenant_mgmt::keys::generate();
    for _ in 0..20 {
        let r = from_client(tasks, attacker, &garbage, "/v1/tasks").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(verifications() - before, 1);

    // Ever new garbage keys: asked for each until the client's 30 failures are used up…
    for _ in 0..10 {
        let key = prismicx_tenant_mgmt::keys::generate();
        let r = from_client(tasks, attacker, &key, "/v1/tasks").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(verifications() - before, 11);
    // …then refused before any lookup.
    for _ in 0..20 {
        let key = prismicx_tenant_mgmt::keys::generate();
        assert_throttled(&from_client(tasks, attacker, &key, "/v1/tasks").await);
    }
    assert_eq!(verifications() - before, 11);

    // The tenants' own clients elsewhere are served.
    for t in &p.mgmt.tenants {
        let r = from_client(tasks, "203.0.113.5", &t.key, "/v1/tasks").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
}

#[tokio::test]
async fn a_noisy_tenant_is_throttled_by_its_registry_rate_limit_and_its_neighbour_is_not() {
    let options = TenancyOptions {
        limits: Limits {
            // The platform default: a budget of 50, hardly refilled during the test.
            tenant_rate: RateLimit {
                rps: 0.001,
                burst: 50,
            },
            ..Limits::off()
        },
        ..TenancyOptions::new(CACHE_TTL)
    };
    // The noisy tenant's registry entry carries a budget of its own, passed through tenant-mgmt.
    let noisy_slug = std::sync::Mutex::new(None::<String>);
    let p = platform_with(options, |t| {
        let mut first = noisy_slug.lock().unwrap();
        if first.is_none() {
            *first = Some(t.slug().to_string());
            Some(doc! { "rate_limit": { "rps": 0.001, "burst": 3 } })
        } else {
            None
        }
    })
    .await;
    let (noisy, neighbour) = (&p.mgmt.tenants[0], &p.mgmt.tenants[1]);
    assert_eq!(noisy_slug.lock().unwrap().as_deref(), Some(noisy.slug()));
    let (_, _, tasks) = &p.others[1];
    let create = |t: &TestTenant, title: String| {
        let t = t.clone();
        async move {
            tasks
                .as_tenant(&t, Method::POST, "/v1/tasks", Some(json!({"title": title})))
                .await
        }
    };
    for i in 0..3 {
        let r = create(noisy, format!("noisy {i}")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    assert_throttled(&create(noisy, "one too many".into()).await);
    assert_throttled(&tasks.as_tenant(noisy, Method::GET, "/v1/tasks", None).await);

    // The neighbour, on the platform default, is served throughout, and its data is its own.
    for i in 0..5 {
        let r = create(neighbour, format!("neighbour {i}")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let list = tasks
        .as_tenant(neighbour, Method::GET, "/v1/tasks", None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let titles = list.item_strs("title");
    assert_eq!(titles.len(), 5, "{titles:?}");
    assert!(
        titles.iter().all(|t| t.starts_with("neighbour ")),
        "{titles:?}"
    );
}
