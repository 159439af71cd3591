//! `spawn_app()` for user-data tests: a fresh `system_users`-like database on the harness
//! PostgreSQL, the service's real migrations, a login role that reaches it only through the
//! harness PgBouncer, tenants with their own keys, and the application driven without a socket.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use prismicx_harness::{servers, unique_name, PoolAlias};
use prismicx_service_common::auth::KeyDigest;
use prismicx_service_common::config::Secret;
use prismicx_service_common::pg::{migrate, PgSettings, TenantDb};
use prismicx_service_common::tenancy::{
    RegistryEntry, StaticRegistry, Tenancy, TenantSlug, TenantState, Tier,
};
use prismicx_user_data::{app, migrations, AppSettings, AppState};
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

pub const PLATFORM_KEY: &str = "platform-test-key";

#[derive(Debug, Clone)]
pub struct TestTenant {
    pub slug: String,
    pub id: Uuid,
    pub key: String,
}

pub struct TestApp {
    pub router: Router,
    pub db: String,
    pub login: String,
    pub password: String,
    pub tenants: Vec<TestTenant>,
    pub state: AppState,
}

/// Options of [`spawn_app_with`].
pub struct Options {
    pub tenants: usize,
    pub suspended: Vec<usize>,
    pub dedicated: Vec<usize>,
    /// Route the shared pool through a PgBouncer alias of this size.
    pub shared_pool_alias_size: Option<u32>,
    pub client_pool_size: u32,
    pub settings: AppSettings,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tenants: 2,
            suspended: vec![],
            dedicated: vec![],
            shared_pool_alias_size: None,
            client_pool_size: 8,
            settings: AppSettings::default(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let s = servers();
    let db = s
        .postgres
        .create_database()
        .await
        .expect("create database")
        .name;
    let mut admin = s.postgres.admin_connect(&db).await.expect("admin connect");
    migrate::apply_system(&mut admin, &migrations::SCHEMA)
        .await
        .expect("system migrations");
    let login = format!("{db}_svc");
    let password = unique_name("pw");
    migrate::ensure_login_role(&mut admin, &login, &Secret::new(password.clone()))
        .await
        .expect("login role");
    let mut tenants = Vec::new();
    let mut entries = Vec::new();
    let mut aliases = Vec::new();
    for i in 0..opts.tenants {
        let slug = unique_name("tn-");
        let id = Uuid::new_v4();
        let key = unique_name("key_");
        let parsed = TenantSlug::parse(&slug).expect("slug");
        migrate::provision_tenant(&mut admin, &migrations::SCHEMA, &parsed, id)
            .await
            .expect("tenant migrations");
        let tier = if opts.dedicated.contains(&i) {
            Tier::Dedicated
        } else {
            Tier::Standard
        };
        if tier == Tier::Dedicated {
            aliases.push(PoolAlias {
                name: prismicx_service_common::pg::dedicated_pool_alias(&db, &parsed),
                dbname: db.clone(),
                pool_size: 2,
            });
        }
        entries.push(RegistryEntry {
            slug: parsed,
            id,
            tier,
            state: if opts.suspended.contains(&i) {
                TenantState::Suspended
            } else {
                TenantState::Active
            },
            api_keys: vec![KeyDigest::of(&key).to_string()],
        });
        tenants.push(TestTenant { slug, id, key });
    }
    let mut database = db.clone();
    if let Some(size) = opts.shared_pool_alias_size {
        database = format!("{db}_shared");
        aliases.push(PoolAlias {
            name: database.clone(),
            dbname: db.clone(),
            pool_size: size,
        });
    }
    if !aliases.is_empty() {
        s.pgbouncer
            .set_aliases(&aliases)
            .await
            .expect("pgbouncer aliases");
    }
    let registry = Arc::new(StaticRegistry::from_entries(entries));
    let tenancy = Tenancy::new(
        &PLATFORM_KEY.into(),
        registry.clone(),
        registry,
        Duration::from_secs(60),
    );
    let settings = PgSettings {
        host: "127.0.0.1".into(),
        port: s.pgbouncer.port(),
        database,
        user: login.clone(),
        password: Secret::new(password.clone()),
        pool_size: opts.client_pool_size,
        dedicated_pool_size: 2,
        acquire_timeout: Duration::from_secs(10),
    };
    let state = AppState {
        db: Arc::new(TenantDb::connect_lazy(settings)),
        tenancy,
    };
    TestApp {
        router: app(state.clone(), opts.settings),
        db,
        login,
        password,
        tenants,
        state,
    }
}

/// A response, body parsed as JSON (Null when empty).
#[derive(Debug)]
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
}

impl TestApp {
    pub fn tenant(&self, i: usize) -> &TestTenant {
        &self.tenants[i]
    }

    /// Calls the app with `key` (as Bearer), optional `X-Tenant` and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        tenant_header: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        if let Some(t) = tenant_header {
            req = req.header("x-tenant", t);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&b).expect("json"))),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
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

    /// As tenant `i` with its own key.
    pub async fn as_tenant(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let key = self.tenants[i].key.clone();
        self.call(method, path, Some(&key), None, body).await
    }

    /// Creates a user for tenant `i`, returning its id.
    pub async fn create_user(&self, i: usize, email: &str, name: &str) -> String {
        let r = self
            .as_tenant(
                i,
                Method::POST,
                "/v1/users",
                Some(serde_json::json!({"email": email, "displayName": name})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// Superuser view of the database (to check what really is stored).
    pub async fn admin(&self) -> sqlx::PgConnection {
        servers()
            .postgres
            .admin_connect(&self.db)
            .await
            .expect("admin")
    }
}
