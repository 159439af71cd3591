//! management-system-repo's own test support: the application on the kit's tenants, with its
//! PostgreSQL database (the service's real migrations, reached through the harness PgBouncer,
//! dedicated tenants through their own pool alias) and its MongoDB layout as `config_db`
//! ([`spawn_app`]); its seeds (a system, a configuration), raw reads of what it stored, and a
//! JSON Patch applier to check its diffs against.

#![allow(dead_code)]

use std::sync::Arc;

use mongodb::bson::{doc, Document};
use prismicx_harness::kit::{
    mongo_store, raw_database, raw_find, tenancy_of, tenants_with, PgOptions, PgService, ServiceApp,
};
use prismicx_management_system_repo::{
    app, migrations, AppSettings, AppState, GateSettings, SchemaGate, MONGO,
};
use serde_json::{json, Value};

#[allow(unused_imports)]
pub use prismicx_harness::kit::PLATFORM_KEY;

prismicx_harness::service_app!(
    /// The application under test; the kit's `ServiceApp` plus this service's seeds.
    pub struct TestApp(AppState);
);

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

/// `tenants` tenants, those whose index is in `dedicated` dedicated and in `suspended`
/// suspended, the other options as by default.
pub async fn spawn_tiers(tenants: usize, dedicated: &[usize], suspended: &[usize]) -> TestApp {
    spawn_app_with(Options {
        tenants,
        dedicated: dedicated.to_vec(),
        suspended: suspended.to_vec(),
        ..Default::default()
    })
    .await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let tenants = tenants_with(opts.tenants, &opts.dedicated, &opts.suspended);
    let placements = tenants.iter().map(|t| &t.placement);
    let pg = PgService::provision(&migrations::SCHEMA, placements, PgOptions::default()).await;
    let state = AppState {
        db: Arc::new(pg.tenant_db()),
        store: mongo_store(MONGO, &tenants).await,
        tenancy: tenancy_of(&tenants),
        schemas: Arc::new(SchemaGate::new(opts.schema_gate.unwrap_or_default())),
    };
    let router = app(state.clone(), AppSettings::default());
    TestApp(ServiceApp::new(router, tenants, state).with_pg(pg))
}

impl TestApp {
    /// Creates a system for tenant `i` with `schema` (or none), returning its id.
    pub async fn create_system(&self, i: usize, name: &str, schema: Option<Value>) -> String {
        let mut body = json!({"name": name, "kind": "application", "description": format!("{name} of tenant {i}")});
        if let Some(s) = schema {
            body["configSchema"] = s;
        }
        let r = self.post(i, "/v1/systems", body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.str("id")
    }

    /// Writes a configuration for tenant `i`'s system, returning the new version number.
    pub async fn put_config(&self, i: usize, system: &str, config: Value) -> i64 {
        let r = self
            .put(
                i,
                &format!("/v1/systems/{system}/configuration"),
                json!({"config": config, "comment": "test"}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["version"].as_i64().expect("version")
    }

    /// The tenant's schema name, quoted.
    pub fn schema(&self, i: usize) -> String {
        self.tenants[i].quoted_schema()
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
        raw_database(MONGO, &self.tenants[i]).await
    }

    /// Raw configuration documents of `system` wherever they are, on any database of the server.
    pub async fn raw_configs(&self, i: usize, system: &str) -> Vec<Document> {
        let id = uuid::Uuid::parse_str(system).expect("uuid");
        let filter = doc! {"system_id": prismicx_service_common::mongo::tenant_bson(id)};
        let by_version = Some(doc! {"version": 1});
        raw_find(
            MONGO,
            &self.tenants[i],
            "configurations",
            filter,
            by_version,
        )
        .await
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
