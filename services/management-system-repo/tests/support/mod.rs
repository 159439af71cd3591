//! `spawn_app()` for management-system-repo tests: a fresh `management_system_repository`-like
//! database on the harness PostgreSQL with the service's real tenant migrations, a login role
//! that reaches it only through the harness PgBouncer (dedicated tenants through their own pool
//! alias), the harness MongoDB as `config_db` with the service's layout provisioned in the
//! shared and dedicated databases, tenants with their own keys, and the application driven
//! without a socket.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use mongodb::bson::{doc, Document};
use prismicx_harness::service::{self, ApiClient, Call, Reply, TestTenant};
use prismicx_harness::{servers, unique_name, PoolAlias};
use prismicx_management_system_repo::{
    app, migrations, AppSettings, AppState, GateSettings, SchemaGate, MONGO,
};
use prismicx_service_common::config::Secret;
use prismicx_service_common::pg::{migrate, PgSettings, TenantDb};
use prismicx_service_common::tenancy::{TenantState, Tier};
use serde_json::{json, Value};

#[allow(unused_imports)]
pub use prismicx_harness::service::PLATFORM_KEY;

pub struct TestApp {
    pub api: ApiClient,
    pub db: String,
    pub login: String,
    pub password: String,
    pub tenants: Vec<TestTenant>,
    pub state: AppState,
}

/// Options of [`spawn_app_with`].
#[derive(Default)]
pub struct Options {
    pub tenants: usize,
    pub dedicated: Vec<usize>,
    pub suspended: Vec<usize>,
    /// How schema work is bounded (the service's defaults when `None`).
    pub schema_gate: Option<GateSettings>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options {
        tenants: 2,
        ..Default::default()
    })
    .await
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
    let mut tenants = service::test_tenants(opts.tenants, &opts.dedicated);
    for i in &opts.suspended {
        tenants[*i] = tenants[*i].clone().with_state(TenantState::Suspended);
    }
    let mut aliases = Vec::new();
    for t in &tenants {
        migrate::provision_tenant(&mut admin, &migrations::SCHEMA, &t.placement.slug, t.id())
            .await
            .expect("tenant migrations");
        if t.placement.tier == Tier::Dedicated {
            aliases.push(PoolAlias {
                name: prismicx_service_common::pg::dedicated_pool_alias(&db, &t.placement.slug),
                dbname: db.clone(),
                pool_size: 2,
            });
        }
    }
    if !aliases.is_empty() {
        s.pgbouncer
            .set_aliases(&aliases)
            .await
            .expect("pgbouncer aliases");
    }
    let store = service::mongo_store(MONGO, &tenants).await;
    let settings = PgSettings {
        host: "127.0.0.1".into(),
        port: s.pgbouncer.port(),
        database: db.clone(),
        user: login.clone(),
        password: Secret::new(password.clone()),
        pool_size: 8,
        dedicated_pool_size: 2,
        acquire_timeout: Duration::from_secs(10),
    };
    let state = AppState {
        db: Arc::new(TenantDb::connect_lazy(settings)),
        store,
        tenancy: service::tenancy_of(&tenants),
        schemas: Arc::new(SchemaGate::new(opts.schema_gate.unwrap_or_default())),
    };
    TestApp {
        api: ApiClient::new(app(state.clone(), AppSettings::default())),
        db,
        login,
        password,
        tenants,
        state,
    }
}

impl TestApp {
    pub fn tenant(&self, i: usize) -> &TestTenant {
        &self.tenants[i]
    }

    /// `method path` as tenant `i` with its own key.
    pub async fn call(&self, i: usize, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.api
            .as_tenant(&self.tenants[i], method, path, body)
            .await
    }

    /// `method path` as tenant `i` with `If-Match: "<tag>"`.
    pub async fn call_if(
        &self,
        i: usize,
        method: Method,
        path: &str,
        tag: i64,
        body: Option<Value>,
    ) -> Reply {
        let mut c = Call::new(method, path)
            .key(&self.tenants[i].key)
            .header("if-match", &format!("\"{tag}\""));
        c.body = body;
        self.api.send(c).await
    }

    /// Creates a system for tenant `i` with `schema` (or none), returning its id.
    pub async fn create_system(&self, i: usize, name: &str, schema: Option<Value>) -> String {
        let mut body = json!({"name": name, "kind": "application", "description": format!("{name} of tenant {i}")});
        if let Some(s) = schema {
            body["configSchema"] = s;
        }
        let r = self.call(i, Method::POST, "/v1/systems", Some(body)).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.str("id")
    }

    /// Writes a configuration for tenant `i`'s system, returning the new version number.
    pub async fn put_config(&self, i: usize, system: &str, config: Value) -> i64 {
        let r = self
            .call(
                i,
                Method::PUT,
                &format!("/v1/systems/{system}/configuration"),
                Some(json!({"config": config, "comment": "test"})),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["version"].as_i64().expect("version")
    }

    /// Superuser view of the PostgreSQL database (to check what really is stored).
    pub async fn admin(&self) -> sqlx::PgConnection {
        servers()
            .postgres
            .admin_connect(&self.db)
            .await
            .expect("admin")
    }

    /// The tenant's schema name, quoted.
    pub fn schema(&self, i: usize) -> String {
        format!("\"{}\"", self.tenants[i].placement.slug.pg_schema())
    }

    /// Counts rows of `table` in tenant `i`'s schema as the superuser sees them.
    pub async fn stored_rows(&self, i: usize, table: &str) -> i64 {
        let mut admin = self.admin().await;
        prismicx_service_common::pg::query_scalar(&format!(
            "SELECT count(*) FROM {}.{table}",
            self.schema(i)
        ))
        .fetch_one(&mut admin)
        .await
        .expect("count")
    }

    /// The raw MongoDB database where tenant `i`'s documents must be: `config_db` for standard
    /// tenants, `config_db__<slug>` for dedicated ones (read with a plain client, no filter).
    pub async fn raw_database(&self, i: usize) -> mongodb::Database {
        let name = match self.tenants[i].placement.tier {
            Tier::Standard => MONGO.database.to_string(),
            Tier::Dedicated => MONGO.dedicated_database(&self.tenants[i].placement.slug),
        };
        service::mongo_for(self.tenants[i].placement.tier)
            .await
            .database(&name)
    }

    /// Raw configuration documents of `system` wherever they are, on any database of the server.
    pub async fn raw_configs(&self, i: usize, system: &str) -> Vec<Document> {
        use futures::TryStreamExt;
        let id = uuid::Uuid::parse_str(system).expect("uuid");
        self.raw_database(i)
            .await
            .collection::<Document>("configurations")
            .find(doc! {"system_id": prismicx_service_common::mongo::tenant_bson(id)})
            .sort(doc! {"version": 1})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("collect")
    }
}

/// A minimal RFC 6902 applier (add, remove, replace, with `-` for appends), written for the
/// tests independently of the service's diff.
pub fn apply_patch(doc: &Value, ops: &[Value]) -> Result<Value, String> {
    let mut doc = doc.clone();
    for op in ops {
        let kind = op["op"].as_str().ok_or("op missing")?;
        let path = op["path"].as_str().ok_or("path missing")?;
        if path.is_empty() {
            match kind {
                "add" | "replace" => doc = op.get("value").cloned().ok_or("value missing")?,
                _ => return Err(format!("cannot {kind} the root")),
            }
            continue;
        }
        let tokens: Vec<String> = path
            .strip_prefix('/')
            .ok_or("path must start with /")?
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (last, parents) = tokens.split_last().ok_or("empty path")?;
        let mut cur = &mut doc;
        for t in parents {
            cur = match cur {
                Value::Object(m) => m.get_mut(t).ok_or(format!("no member {t}"))?,
                Value::Array(a) => {
                    let i: usize = t.parse().map_err(|_| format!("bad index {t}"))?;
                    a.get_mut(i).ok_or(format!("no index {i}"))?
                }
                _ => return Err(format!("{t} is inside a scalar")),
            };
        }
        let value = || op.get("value").cloned().ok_or("value missing".to_string());
        match (kind, cur) {
            ("add", Value::Object(m)) => {
                m.insert(last.clone(), value()?);
            }
            ("replace", Value::Object(m)) => {
                if !m.contains_key(last) {
                    return Err(format!("replace of missing {last}"));
                }
                m.insert(last.clone(), value()?);
            }
            ("remove", Value::Object(m)) => {
                m.remove(last).ok_or(format!("remove of missing {last}"))?;
            }
            ("add", Value::Array(a)) => {
                let i = if last == "-" {
                    a.len()
                } else {
                    last.parse().map_err(|_| "bad index")?
                };
                if i > a.len() {
                    return Err(format!("add past the end at {i}"));
                }
                a.insert(i, value()?);
            }
            ("replace", Value::Array(a)) => {
                let i: usize = last.parse().map_err(|_| "bad index")?;
                *a.get_mut(i).ok_or("replace past the end")? = value()?;
            }
            ("remove", Value::Array(a)) => {
                let i: usize = last.parse().map_err(|_| "bad index")?;
                if i >= a.len() {
                    return Err("remove past the end".into());
                }
                a.remove(i);
            }
            (k, _) => return Err(format!("unsupported op {k} here")),
        }
    }
    Ok(doc)
}
