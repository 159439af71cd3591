//! Fixtures for testing a service's application against the real servers: tenants with their
//! own keys and placements, a [`StaticRegistry`] of them, a [`MongoStore`] on the harness's two
//! MongoDB servers with least-privilege users and the service's layout provisioned the way the
//! operator does it, and [`ApiClient`], which
//! drives an axum application without a socket.
//!
//! Tenants get unique slugs, so tests share the service's database on the harness servers and
//! still run in parallel.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use prismicx_service_common::auth::KeyDigest;
use prismicx_service_common::mongo::{LayoutIndexes, MongoLayout, MongoStore};
use prismicx_service_common::tenancy::{
    RegistryEntry, StaticRegistry, Tenancy, TenantPlacement, TenantSlug, TenantState, Tier,
};
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

use crate::{servers, unique_name};

/// The platform key the fixtures' [`Tenancy`] accepts.
pub const PLATFORM_KEY: &str = "platform-test-key";

/// A tenant of a test: its placement and a tenant-scoped API key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub placement: TenantPlacement,
    pub key: String,
}

impl TestTenant {
    /// A fresh tenant with a unique slug, a new id and key, active.
    pub fn new(tier: Tier) -> Self {
        let slug = TenantSlug::parse(&unique_name("tn-")).expect("unique names are slugs");
        TestTenant {
            placement: TenantPlacement {
                id: Uuid::new_v4(),
                slug,
                tier,
                state: TenantState::Active,
            },
            key: unique_name("key_"),
        }
    }

    pub fn slug(&self) -> &str {
        self.placement.slug.as_str()
    }

    pub fn id(&self) -> Uuid {
        self.placement.id
    }

    pub fn with_state(mut self, state: TenantState) -> Self {
        self.placement.state = state;
        self
    }
}

/// `n` tenants: those whose index is in `dedicated` are dedicated, the rest standard.
pub fn test_tenants(n: usize, dedicated: &[usize]) -> Vec<TestTenant> {
    (0..n)
        .map(|i| {
            TestTenant::new(if dedicated.contains(&i) {
                Tier::Dedicated
            } else {
                Tier::Standard
            })
        })
        .collect()
}

/// A registry of `tenants` with their keys.
pub fn registry_of(tenants: &[TestTenant]) -> StaticRegistry {
    StaticRegistry::from_entries(
        tenants
            .iter()
            .map(|t| RegistryEntry {
                slug: t.placement.slug.clone(),
                id: t.placement.id,
                tier: t.placement.tier,
                state: t.placement.state,
                api_keys: vec![KeyDigest::of(&t.key).to_string()],
            })
            .collect(),
    )
}

/// A [`Tenancy`] over [`registry_of`] `tenants`, with [`PLATFORM_KEY`].
pub fn tenancy_of(tenants: &[TestTenant]) -> Tenancy {
    let r = std::sync::Arc::new(registry_of(tenants));
    Tenancy::new(&PLATFORM_KEY.into(), r.clone(), r, Duration::from_secs(60))
}

/// An administrator's client of mongodb-system (for raw reads and writes in tests).
pub async fn mongo_system() -> mongodb::Client {
    mongodb::Client::with_uri_str(servers().mongo_system.uri())
        .await
        .expect("mongodb-system client")
}

/// An administrator's client of mongodb-tenant (for raw reads and writes in tests).
pub async fn mongo_tenant() -> mongodb::Client {
    mongodb::Client::with_uri_str(servers().mongo_tenant.uri())
        .await
        .expect("mongodb-tenant client")
}

/// The administrator's client of the server a tenant of `tier` keeps its documents on.
pub async fn mongo_for(tier: Tier) -> mongodb::Client {
    match tier {
        Tier::Standard => mongo_system().await,
        Tier::Dedicated => mongo_tenant().await,
    }
}

/// A [`MongoStore`] as a service has it in production: on mongodb-system as a user defined in
/// the service database with `readWrite` on it only, and on mongodb-tenant as a user with
/// `readWrite` on the dedicated `tenants`' databases only (both created for this store, so
/// parallel tests do not share them). `layout`'s indexes are in the shared database and in each
/// dedicated tenant's database, as the operator provisions them. A service that reads a
/// dedicated tenant's documents from the wrong server, or reaches a database outside its own,
/// is refused.
pub async fn mongo_store(layout: MongoLayout, tenants: &[TestTenant]) -> MongoStore {
    let s = servers();
    let (system_admin, tenant_admin) = (mongo_system().await, mongo_tenant().await);
    let dedicated: Vec<&TestTenant> = tenants
        .iter()
        .filter(|t| t.placement.tier == Tier::Dedicated)
        .collect();
    let user = unique_name("svc_");
    let password = unique_name("pw");
    system_admin
        .database(layout.database)
        .run_command(mongodb::bson::doc! {
            "createUser": &user, "pwd": &password,
            "roles": [{"role": "readWrite", "db": layout.database}],
        })
        .await
        .expect("service user on mongodb-system");
    let roles: Vec<mongodb::bson::Document> = dedicated
        .iter()
        .map(|t| {
            mongodb::bson::doc! {"role": "readWrite", "db": layout.dedicated_database(&t.placement.slug)}
        })
        .collect();
    tenant_admin
        .database("admin")
        .run_command(mongodb::bson::doc! {"createUser": &user, "pwd": &password, "roles": roles})
        .await
        .expect("service user on mongodb-tenant");
    let system =
        mongodb::Client::with_uri_str(s.mongo_system.uri_as(&user, &password, layout.database))
            .await
            .expect("service client of mongodb-system");
    let tenant = mongodb::Client::with_uri_str(s.mongo_tenant.uri_as(&user, &password, "admin"))
        .await
        .expect("service client of mongodb-tenant");
    layout
        .ensure_indexes(&system_admin.database(layout.database))
        .await
        .expect("shared indexes");
    for t in dedicated {
        layout
            .ensure_indexes(&tenant_admin.database(&layout.dedicated_database(&t.placement.slug)))
            .await
            .expect("dedicated indexes");
    }
    MongoStore::new(system, tenant, layout)
}

/// A response, its body parsed as JSON (`Null` when empty, a string when not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The fields named in a problem document's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn is_problem(&self) -> bool {
        self.headers
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }

    /// `body[field]` as a string; panics (fails the test) when absent.
    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing in {}", self.body))
            .to_string()
    }
}

/// One request for [`ApiClient::send`].
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Call {
            method,
            path: path.into(),
            key: None,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// Drives an application in process.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub router: Router,
}

impl ApiClient {
    pub fn new(router: Router) -> Self {
        ApiClient { router }
    }

    pub async fn send(&self, call: Call) -> Reply {
        let mut req = Request::builder().method(call.method).uri(call.path);
        if let Some(k) = &call.key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        for (n, v) in &call.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        let req = match call.body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&b).expect("json"))),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.raw(req).await
    }

    /// Sends a request built by hand (malformed bodies, odd headers).
    pub async fn raw(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `method path` as `tenant`, with its own key.
    pub async fn as_tenant(
        &self,
        tenant: &TestTenant,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut call = Call::new(method, path).key(&tenant.key);
        call.body = body;
        self.send(call).await
    }

    /// `method path` with the platform key, acting for `slug` (`X-Tenant`).
    pub async fn as_platform(
        &self,
        slug: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut call = Call::new(method, path)
            .key(PLATFORM_KEY)
            .header("x-tenant", slug);
        call.body = body;
        self.send(call).await
    }
}
