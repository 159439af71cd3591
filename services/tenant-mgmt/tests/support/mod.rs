//! tenant-mgmt's own test support: the kit's tenants registered the way the operator registers
//! them (a document per tenant in the shared `tenant_registry.tenants` on the harness MongoDB),
//! each with one API key stored as the service stores keys, and the application driven in
//! process by the kit's [`ServiceApp`].

#![allow(dead_code, clippy::unwrap_used)]

use std::ops::Deref;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use mongodb::bson::{doc, Bson, Document};
use prismicx_harness::kit::{
    mongo_store, test_tenants, ApiClient, Call, Reply, ServiceApp, TestTenant, PLATFORM_KEY,
};
use prismicx_harness::servers;
use prismicx_service_common::auth::KeyDigest;
use prismicx_service_common::mongo::{bson_uuid, tenant_bson, MongoStore};
use prismicx_service_common::service::AppSettings;
use prismicx_service_common::tenancy::{TenantState, Tier};
use prismicx_tenant_mgmt::events::EventPublisher;
use prismicx_tenant_mgmt::keys::{digest_of, KeyDoc};
use prismicx_tenant_mgmt::{app, AppState, MONGO, REGISTRY_COLLECTION};

/// The application under test (the kit's [`ServiceApp`]) and the store its registry is in.
pub struct TestApp {
    app: ServiceApp<AppState>,
    pub store: MongoStore,
}

impl Deref for TestApp {
    type Target = ServiceApp<AppState>;
    fn deref(&self) -> &Self::Target {
        &self.app
    }
}

fn state_str(s: TenantState) -> &'static str {
    match s {
        TenantState::Provisioning => "provisioning",
        TenantState::Active => "active",
        TenantState::Suspended => "suspended",
        TenantState::Deleting => "deleting",
    }
}

/// The registry document the operator writes for `t` (docs/operator.md, "Registry").
pub fn registry_document(t: &TestTenant) -> Document {
    let p = &t.placement;
    let (tier, server, database) = match p.tier {
        Tier::Standard => ("standard", "mongodb-system", MONGO.database.to_string()),
        Tier::Dedicated => (
            "dedicated",
            "mongodb-tenant",
            MONGO.dedicated_database(&p.slug),
        ),
    };
    doc! {
        "_id": p.slug.as_str(),
        "slug": p.slug.as_str(),
        "tenant_id": tenant_bson(p.id),
        "namespace": "tests",
        "tier": tier,
        "state": state_str(p.state),
        "display_name": format!("Tenant {}", p.slug),
        "services": ["tenant-mgmt"],
        "placement": { "postgres": [], "mongo": [ { "service": MONGO.database, "server": server, "database": database } ] },
        "created_at": mongodb::bson::DateTime::now(),
        "updated_at": mongodb::bson::DateTime::now(),
    }
}

/// Writes (or replaces) `t`'s registry document.
pub async fn register(store: &MongoStore, t: &TestTenant) {
    store
        .system_database()
        .collection::<Document>(REGISTRY_COLLECTION)
        .replace_one(doc! { "_id": t.slug() }, registry_document(t))
        .upsert(true)
        .await
        .unwrap();
}

/// Sets `t`'s registry state as the operator does on suspension and resumption.
pub async fn set_state(store: &MongoStore, t: &TestTenant, state: TenantState) {
    store
        .system_database()
        .collection::<Document>(REGISTRY_COLLECTION)
        .update_one(
            doc! { "_id": t.slug() },
            doc! { "$set": { "state": state_str(state) } },
        )
        .await
        .unwrap();
}

/// Stores `key` for `t` as the service stores keys (digest only).
pub async fn store_key(state: &AppState, t: &TestTenant, key: &str, expired: bool) {
    let now = chrono::Utc::now();
    let doc = KeyDoc {
        id: bson_uuid(uuid::Uuid::new_v4()),
        tenant_id: None,
        slug: t.slug().to_string(),
        name: "fixture".into(),
        prefix: key.chars().take(12).collect(),
        digest: digest_of(key),
        created_at: mongodb::bson::DateTime::now(),
        created_by: "platform".into(),
        expires_at: expired
            .then(|| prismicx_service_common::mongo::bson_time(now - chrono::Duration::hours(1))),
        revoked_at: None,
    };
    state.keys.insert(&t.placement, &doc).await.unwrap();
}

/// Options of [`spawn_with`].
pub struct Options {
    pub tenants: usize,
    pub dedicated: Vec<usize>,
    pub cache_ttl: Duration,
    /// Publish lifecycle events on the harness Redis.
    pub events: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tenants: 3,
            dedicated: vec![1],
            cache_ttl: Duration::from_secs(60),
            events: false,
        }
    }
}

pub async fn spawn() -> TestApp {
    spawn_with(Options::default()).await
}

pub fn redis_url() -> String {
    format!("redis://127.0.0.1:{}", servers().redis.port())
}

pub async fn spawn_with(opts: Options) -> TestApp {
    let tenants = test_tenants(opts.tenants, &opts.dedicated);
    let store = mongo_store(MONGO, &tenants).await;
    let events = opts
        .events
        .then(|| EventPublisher::new(&redis_url().as_str().into()).unwrap());
    let state = AppState::new(store.clone(), &PLATFORM_KEY.into(), opts.cache_ttl, events);
    state.keys.ensure_indexes().await.unwrap();
    for t in &tenants {
        register(&store, t).await;
        store_key(&state, t, &t.key, false).await;
    }
    TestApp {
        app: ServiceApp::new(app(state.clone(), AppSettings::default()), tenants, state),
        store,
    }
}

/// A value of a JSON body that must not be absent.
pub fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let f = &v[name];
    assert!(!f.is_null(), "{name} missing in {v}");
    f
}

/// Whether any string anywhere in `v` contains `needle`.
pub fn mentions(v: &serde_json::Value, needle: &str) -> bool {
    v.to_string().contains(needle)
}

pub fn bson_state(d: &Document) -> Option<&str> {
    match d.get("state") {
        Some(Bson::String(s)) => Some(s),
        _ => None,
    }
}

/// `POST /internal/v1/api-keys/verify` of `key`'s digest, asked with `caller` (the platform key,
/// or a tenant key that must be refused).
pub async fn verify_key(api: &ApiClient, caller: &str, key: &str) -> Reply {
    let digest = KeyDigest::of(key).to_string();
    let call = Call::new(Method::POST, "/internal/v1/api-keys/verify").key(caller);
    api.send(call.json(serde_json::json!({ "digest": digest })))
        .await
}

/// Issues an API key named `name` for `tenant` with the platform key; fails the test unless it
/// is created. Returns the answer (`id`, `key`).
pub async fn issue_key(api: &ApiClient, tenant: &TestTenant, name: &str) -> Reply {
    let body = serde_json::json!({ "name": name });
    let r = api
        .as_platform(tenant.slug(), Method::POST, "/v1/api-keys", Some(body))
        .await;
    r.expect(StatusCode::CREATED, "issuing an API key")
}
