//! Test support for the operator: the real data servers from the harness, an in-memory
//! Kubernetes API (kube-fake-client; a mock only because no API server can run here), and a
//! `Context` wired to both. Each test builds its own fake API and uses tenants with unique
//! names, so tests run in parallel on the shared servers.

#![allow(dead_code)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use prismicx_harness::{servers, unique_name};
use prismicx_operator::catalog::Catalog;
use prismicx_operator::dataplane::{DataPlane, DataPlaneSettings, Endpoints};
use prismicx_operator::tenant;
use prismicx_operator::Context;
use prismicx_operator_api::{Tenant, TenantSpec};
use prismicx_store::Secret as Hidden;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

pub const NS: &str = "tenants";

pub struct Env {
    pub client: kube::Client,
    pub ctx: Arc<Context>,
    pub tenants: Api<Tenant>,
    pub secrets: Api<Secret>,
}

pub async fn env() -> Env {
    let s = servers();
    let client = kube_fake_client::ClientBuilder::new()
        .with_resource::<Tenant>()
        .with_status_subresource::<Tenant>()
        .build()
        .await
        .expect("fake kube client");
    let settings = DataPlaneSettings {
        pg_admin: s.postgres.admin_options("postgres"),
        pgbouncer_admin: s.pgbouncer.admin_options(),
        pgbouncer_databases_file: s.pgbouncer.databases_file().to_path_buf(),
        mongo_system_uri: Hidden::new(s.mongo_system.uri()),
        mongo_tenant_uri: Hidden::new(s.mongo_tenant.uri()),
        redis_url: Hidden::new(s.redis.url()),
        endpoints: Endpoints {
            postgres_host: "127.0.0.1".into(),
            postgres_port: s.postgres.port(),
            pooler_host: "127.0.0.1".into(),
            pooler_port: s.pgbouncer.port(),
            pool_server_host: "127.0.0.1".into(),
            pool_server_port: s.postgres.port(),
            mongo_tenant_address: s.mongo_tenant.address(),
            mongo_system_address: s.mongo_system.address(),
        },
        default_dedicated_pool_size: 3,
    };
    let data = DataPlane::connect(settings).await.expect("data plane");
    let ctx = Arc::new(Context::new(
        client.clone(),
        data,
        Catalog::platform(),
        Duration::from_secs(300),
    ));
    Env {
        tenants: Api::namespaced(client.clone(), NS),
        secrets: Api::namespaced(client.clone(), NS),
        client,
        ctx,
    }
}

/// A Tenant named `<prefix><random>` with `spec` (JSON), created in the fake API.
pub async fn create(env: &Env, prefix: &str, spec: serde_json::Value) -> Tenant {
    let spec: TenantSpec = serde_json::from_value(spec).expect("spec");
    let mut t = Tenant::new(&unique_name(prefix), spec);
    t.metadata.namespace = Some(NS.into());
    env.tenants
        .create(&PostParams::default(), &t)
        .await
        .expect("create tenant")
}

/// A slug as it appears in SQL identifiers and database names (`-` → `_`).
pub fn ident(name: &str) -> String {
    name.replace('-', "_")
}

/// Merges `spec` into the Tenant's spec, as `kubectl patch --type merge` would.
pub async fn patch_spec(env: &Env, name: &str, spec: serde_json::Value) {
    env.tenants
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&serde_json::json!({ "spec": spec })),
        )
        .await
        .expect("patch spec");
}

pub async fn get(env: &Env, name: &str) -> Tenant {
    env.tenants.get(name).await.expect("get tenant")
}

/// One reconcile of the Tenant as it is stored now.
pub async fn reconcile(
    env: &Env,
    name: &str,
) -> prismicx_operator::Result<kube::runtime::controller::Action> {
    let t = get(env, name).await;
    tenant::reconcile(Arc::new(t), env.ctx.clone()).await
}

/// The spec most tests use for a dedicated tenant: user-data and task-repo.
pub fn dedicated_spec() -> serde_json::Value {
    serde_json::json!({"tier": "dedicated", "services": ["user-data", "task-repo"]})
}

/// A standard tenant of user-data alone.
pub fn user_data_spec() -> serde_json::Value {
    serde_json::json!({"services": ["user-data"]})
}

/// The spec most tests use for a standard tenant: user-data and task-repo.
pub fn standard_spec() -> serde_json::Value {
    serde_json::json!({"services": ["user-data", "task-repo"]})
}

/// A Tenant made by [`create`] and reconciled until Ready ([`provision`]).
pub async fn provisioned(env: &Env, prefix: &str, spec: serde_json::Value) -> Tenant {
    let t = create(env, prefix, spec).await;
    provision(env, &t.name_any()).await
}

/// Reconciles until the Tenant is Ready.
pub async fn provision(env: &Env, name: &str) -> Tenant {
    for _ in 0..3 {
        reconcile(env, name).await.expect("reconcile");
        let t = get(env, name).await;
        if condition(&t, "Ready").is_some_and(|c| c.status == "True") {
            return t;
        }
    }
    panic!(
        "{name} did not become Ready: {:#?}",
        get(env, name).await.status
    );
}

/// Reconciles `name` once more (it must succeed) and returns its `Drifted` condition.
pub async fn drift_after_repair(
    env: &Env,
    name: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    reconcile(env, name).await.expect("repairing reconcile");
    let t = get(env, name).await;
    condition(&t, "Drifted")
        .expect("a Drifted condition")
        .clone()
}

/// Runs the finalizer's cleanup as the API server would after `kubectl delete`.
pub async fn delete(
    env: &Env,
    name: &str,
) -> prismicx_operator::Result<kube::runtime::controller::Action> {
    let mut t = get(env, name).await;
    t.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    tenant::reconcile(Arc::new(t), env.ctx.clone()).await
}

pub fn condition<'a>(
    t: &'a Tenant,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    t.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
}

pub fn tenant_id(t: &Tenant) -> uuid::Uuid {
    uuid::Uuid::parse_str(
        t.status
            .as_ref()
            .and_then(|s| s.tenant_id.as_deref())
            .expect("tenant id"),
    )
    .expect("uuid")
}

/// The value of `key` in the tenant's credentials Secret.
pub async fn secret_value(env: &Env, t: &Tenant, key: &str) -> String {
    let s = env
        .secrets
        .get(&format!("{}-db-credentials", t.name_any()))
        .await
        .expect("credentials secret");
    String::from_utf8(s.data.expect("data")[key].0.clone()).expect("utf8")
}

/// Connects with a `postgres://` URI from the Secret (no statement cache: PgBouncer).
/// A connection with the URI under `key` of the Tenant's credentials Secret.
pub async fn connect_with_secret(env: &Env, t: &Tenant, key: &str) -> PgConnection {
    connect_uri(&secret_value(env, t, key).await)
        .await
        .expect("connects with the Secret's URI")
}

/// The `count(*)` (or any bigint) `sql` returns.
pub async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    prismicx_store::pg::query_scalar(sql)
        .fetch_one(conn)
        .await
        .expect("count query")
}

/// The `count(*)` (or any bigint) `sql` returns with `arg` bound to `$1`.
pub async fn count_with(conn: &mut PgConnection, sql: &str, arg: &str) -> i64 {
    prismicx_store::pg::query_scalar(sql)
        .bind(arg)
        .fetch_one(conn)
        .await
        .expect("count query")
}

/// Runs `sql` (one or more statements) on `conn`; a failure fails the test.
pub async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .expect("statement runs");
}

/// Whether `role` has USAGE on `schema`.
pub async fn schema_usage(conn: &mut PgConnection, role: &str, schema: &str) -> bool {
    prismicx_store::pg::query_scalar("SELECT has_schema_privilege($1, $2, 'USAGE')")
        .bind(role)
        .bind(schema)
        .fetch_one(conn)
        .await
        .expect("has_schema_privilege")
}

pub async fn connect_uri(uri: &str) -> Result<PgConnection, sqlx::Error> {
    let opts = PgConnectOptions::from_str(uri)?.statement_cache_capacity(0);
    PgConnection::connect_with(&opts).await
}

/// A superuser connection straight to `db`.
pub async fn admin(db: &str) -> PgConnection {
    servers()
        .postgres
        .admin_connect(db)
        .await
        .expect("admin connection")
}

/// The administrator's client of mongodb-system (registry, shared collections).
pub async fn mongo() -> mongodb::Client {
    mongodb::Client::with_uri_str(servers().mongo_system.uri())
        .await
        .expect("mongodb-system client")
}

/// The administrator's client of mongodb-tenant (dedicated tenants' databases and users).
pub async fn mongo_tenant() -> mongodb::Client {
    mongodb::Client::with_uri_str(servers().mongo_tenant.uri())
        .await
        .expect("mongodb-tenant client")
}

/// The `usersInfo` reply for tenant `name`'s MongoDB user (`tenant_<slug>_login` in `admin`).
/// The names of the indexes of `collection` in `db`.
pub async fn index_names(client: &mongodb::Client, db: &str, collection: &str) -> Vec<String> {
    client
        .database(db)
        .collection::<mongodb::bson::Document>(collection)
        .list_index_names()
        .await
        .expect("listing indexes")
}

pub async fn users_info(name: &str) -> mongodb::bson::Document {
    mongo_tenant()
        .await
        .database("admin")
        .run_command(mongodb::bson::doc! {
            "usersInfo": {"user": format!("tenant_{}_login", name.replace('-', "_")), "db": "admin"}
        })
        .await
        .expect("usersInfo")
}

/// The registry entry of tenant `name` (`tenant_registry.tenants`), if any.
pub async fn registry_entry(name: &str) -> Option<mongodb::bson::Document> {
    mongo()
        .await
        .database("tenant_registry")
        .collection::<mongodb::bson::Document>("tenants")
        .find_one(mongodb::bson::doc! {"_id": name})
        .await
        .expect("reading the registry")
}

/// Two Tenants made by [`create`] one after the other, then reconciled until Ready in the same
/// order (so neither is provisioned before both exist).
pub async fn provisioned_pair(
    env: &Env,
    a: (&str, serde_json::Value),
    b: (&str, serde_json::Value),
) -> (Tenant, Tenant) {
    let a = create(env, a.0, a.1).await;
    let b = create(env, b.0, b.1).await;
    let a = provision(env, &a.name_any()).await;
    let b = provision(env, &b.name_any()).await;
    (a, b)
}
