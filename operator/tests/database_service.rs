//! DatabaseService reconcile against an in-memory Kubernetes API (kube-fake-client) and the real
//! data servers from the harness: the objects of each of the six services, rollouts on a
//! configuration change, removal of unwanted objects, status from the Deployment, and the
//! databases, login role and MongoDB users made before the first rollout.
//!
//! Each test has its own fake API and namespace. The service logins (`<db>_svc`) are shared by
//! every test of this process, so tests that let the operator create them hold the lock of
//! those services ([`lock`]); the others bring their own database Secret.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvVar, PersistentVolumeClaim, Probe, Secret, Service, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use mongodb::bson::{doc, Document};
use prismicx_harness::{servers, unique_name};
use prismicx_operator::catalog::Catalog;
use prismicx_operator::controller::error_policy;
use prismicx_operator::database_service::plan::{RedisUrl, Settings};
use prismicx_operator::database_service::resources::CONFIG_HASH_ANNOTATION;
use prismicx_operator::database_service::{self, DatabaseServiceContext};
use prismicx_operator::{Context, Error, Step};
use prismicx_operator_api::{DatabaseService, DatabaseServiceSpec, ServiceKind};
use prismicx_store::pg::query_scalar;
use serde_json::json;
use sqlx::Connection;
use tokio::sync::{Mutex, MutexGuard};

/// One lock per service: held while the operator may (re)create that service's logins.
static LOCKS: LazyLock<Vec<Mutex<()>>> =
    LazyLock::new(|| ServiceKind::ALL.iter().map(|_| Mutex::new(())).collect());

/// Locks `kinds` in a fixed order (no deadlock between tests locking several).
async fn lock(kinds: &[ServiceKind]) -> Vec<MutexGuard<'static, ()>> {
    let mut guards = Vec::new();
    for (i, k) in ServiceKind::ALL.iter().enumerate() {
        if kinds.contains(k) {
            guards.push(LOCKS[i].lock().await);
        }
    }
    guards
}

const API_KEY_SECRET: &str = "platform-api";

struct T {
    ctx: Arc<DatabaseServiceContext>,
    ns: String,
    dss: Api<DatabaseService>,
    deployments: Api<Deployment>,
    services: Api<Service>,
    accounts: Api<ServiceAccount>,
    config_maps: Api<ConfigMap>,
    secrets: Api<Secret>,
    claims: Api<PersistentVolumeClaim>,
}

/// The DatabaseService's group, version and kind, for kube-fake-client's
/// `with_status_subresource`, which reads them from a `Default` instance (DatabaseService has
/// no `Default`: `spec.service` has none).
#[derive(Default)]
struct DatabaseServiceKind {
    metadata: kube::core::ObjectMeta,
}

impl serde::Serialize for DatabaseServiceKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json!({"apiVersion": "prismicx.io/v1alpha1", "kind": "DatabaseService", "metadata": self.metadata}).serialize(s)
    }
}

impl Resource for DatabaseServiceKind {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;
    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        DatabaseService::kind(&())
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        DatabaseService::group(&())
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        DatabaseService::version(&())
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        DatabaseService::plural(&())
    }
    fn meta(&self) -> &kube::core::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut kube::core::ObjectMeta {
        &mut self.metadata
    }
}

/// A fake API with the DatabaseService CRD (status subresources on it and on Deployments), a
/// Context on the harness's servers, a fresh namespace and its API-key Secret.
async fn setup() -> T {
    let base = support::env().await;
    let client = kube_fake_client::ClientBuilder::new()
        .with_resource::<DatabaseService>()
        .with_status_subresource::<DatabaseServiceKind>()
        .with_status_subresource::<Deployment>()
        .build()
        .await
        .expect("fake kube client");
    let ctx = Arc::new(Context::new(
        client.clone(),
        base.ctx.data.clone(),
        Catalog::platform(),
        Duration::from_secs(300),
    ));
    let ns = unique_name("ns");
    let t = T {
        ctx: Arc::new(DatabaseServiceContext {
            ctx,
            settings: Settings {
                image_registry: "registry.test/prismicx".into(),
                image_tag: "test".into(),
                redis: RedisUrl::Value("redis://redis-cache:6379".into()),
                platform_namespace: ns.clone(),
            },
        }),
        dss: Api::namespaced(client.clone(), &ns),
        deployments: Api::namespaced(client.clone(), &ns),
        services: Api::namespaced(client.clone(), &ns),
        accounts: Api::namespaced(client.clone(), &ns),
        config_maps: Api::namespaced(client.clone(), &ns),
        secrets: Api::namespaced(client.clone(), &ns),
        claims: Api::namespaced(client.clone(), &ns),
        ns,
    };
    put_secret(&t, API_KEY_SECRET, &[("api-key", "key-1")]).await;
    t
}

/// Creates or replaces Secret `name` with `data` (server-side apply, as a user would).
async fn put_secret(t: &T, name: &str, data: &[(&str, &str)]) {
    let data: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    t.secrets
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": t.ns},
                "data": data.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect::<BTreeMap<_, _>>(),
            })),
        )
        .await
        .expect("put secret");
}

/// A DatabaseService `name` with `spec` (JSON; `apiKeySecret` filled in when absent).
async fn create(t: &T, name: &str, mut spec: serde_json::Value) -> DatabaseService {
    if spec.get("apiKeySecret").is_none() {
        spec["apiKeySecret"] = json!({"name": API_KEY_SECRET, "key": "api-key"});
    }
    let spec: DatabaseServiceSpec = serde_json::from_value(spec).expect("spec");
    let mut ds = DatabaseService::new(name, spec);
    ds.metadata.namespace = Some(t.ns.clone());
    t.dss
        .create(&PostParams::default(), &ds)
        .await
        .expect("create databaseservice")
}

/// A DatabaseService `name` whose pods read `secret`, a database Secret of the test's own
/// ([`own_database_secret`], made first), with the rest of `spec` as [`create`] takes it.
async fn create_with_own_secret(
    t: &T,
    name: &str,
    secret: &str,
    mut spec: serde_json::Value,
) -> DatabaseService {
    own_database_secret(t, secret).await;
    spec["databaseSecret"] = json!(secret);
    create(t, name, spec).await
}

async fn patch_spec(t: &T, name: &str, spec: serde_json::Value) {
    t.dss
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
        .expect("patch spec");
}

async fn get(t: &T, name: &str) -> DatabaseService {
    t.dss.get(name).await.expect("get databaseservice")
}

/// One reconcile of the DatabaseService as it is stored now.
async fn reconcile(t: &T, name: &str) -> prismicx_operator::Result<Action> {
    database_service::reconcile(Arc::new(get(t, name).await), t.ctx.clone()).await
}

async fn deployment(t: &T, kind: ServiceKind) -> Deployment {
    t.deployments
        .get(kind.k8s_name())
        .await
        .expect("deployment")
}

fn container_env(d: &Deployment) -> Vec<EnvVar> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
        .containers[0]
        .env
        .clone()
        .unwrap_or_default()
}

fn secret_ref(d: &Deployment, var: &str) -> Option<(String, String)> {
    container_env(d)
        .into_iter()
        .find(|e| e.name == var)
        .and_then(|e| e.value_from)
        .and_then(|v| v.secret_key_ref)
        .map(|r| (r.name, r.key))
}

fn pod_hash(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
        .expect("config hash annotation")
        .clone()
}

fn condition(ds: &DatabaseService, type_: &str) -> (String, String) {
    let c = ds
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("{type_} missing: {:?}", ds.status));
    (c.status.clone(), c.reason.clone())
}

/// Asserts the status and reason of the condition `type_`.
#[track_caller]
fn assert_condition(ds: &DatabaseService, type_: &str, status: &str, reason: &str) {
    assert_eq!(
        condition(ds, type_),
        (status.to_string(), reason.to_string()),
        "{type_}"
    );
}

/// The database Secret the operator made for `kind` (`<k8s-name>-db`).
async fn operator_secret(t: &T, kind: ServiceKind) -> Secret {
    t.secrets
        .get(&format!("{}-db", kind.k8s_name()))
        .await
        .expect("the operator's database Secret")
}

/// The HTTP path a probe asks.
fn probe_path(probe: &Option<Probe>) -> Option<&str> {
    probe.as_ref()?.http_get.as_ref()?.path.as_deref()
}

/// Whether the Deployment `name` exists.
async fn has_deployment(t: &T, name: &str) -> bool {
    t.deployments
        .get_opt(name)
        .await
        .expect("get deployment")
        .is_some()
}

fn secret_value(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().expect("data")[key].0.clone()).expect("utf8")
}

fn assert_owned_by<K: Resource>(obj: &K, ds: &DatabaseService) {
    let refs = obj.meta().owner_references.clone().unwrap_or_default();
    assert!(
        refs.iter().any(|o| o.controller == Some(true)
            && o.kind == "DatabaseService"
            && Some(&o.uid) == ds.metadata.uid.as_ref()),
        "{:?} not owned by {}: {refs:?}",
        obj.meta().name,
        ds.name_any()
    );
}

/// A database Secret of the test's own (the operator then creates no login).
async fn own_database_secret(t: &T, name: &str) {
    put_secret(
        t,
        name,
        &[
            ("host", "db.example"),
            ("port", "6432"),
            ("dbname", "x"),
            ("username", "u"),
            ("password", "p"),
            ("mongodb-uri", "mongodb://u:p@mongo.example/x"),
            ("mongodb-tenant-uri", "mongodb://u:p@mongo-tenant.example/"),
        ],
    )
    .await;
}

#[tokio::test]
async fn every_service_gets_its_objects_ports_env_probes_and_owner() {
    let _guards = lock(&ServiceKind::ALL).await;
    let t = setup().await;
    for kind in ServiceKind::ALL {
        let ds = create(&t, kind.as_str(), json!({"service": kind})).await;
        let action = reconcile(&t, kind.as_str()).await.expect("reconcile");
        assert_eq!(action, Action::requeue(Duration::from_secs(60)));
        let name = kind.k8s_name();

        let svc = t.services.get(name).await.expect("service");
        assert_owned_by(&svc, &ds);
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let port = &spec.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.target_port.clone()),
            (
                Some("http"),
                i32::from(kind.external_port()),
                Some(IntOrString::Int(i32::from(kind.container_port())))
            ),
            "{name}"
        );
        assert_eq!(
            spec.selector.as_ref().unwrap()["app.kubernetes.io/instance"],
            kind.as_str()
        );

        let sa = t.accounts.get(name).await.expect("service account");
        assert_owned_by(&sa, &ds);
        let cm = t.config_maps.get(name).await.expect("config map");
        assert_owned_by(&cm, &ds);
        let data = cm.data.clone().unwrap();
        assert_eq!(data["SERVICE_NAME"], name);
        assert_eq!(data["HOST"], "0.0.0.0");
        assert_eq!(data["PORT"], kind.container_port().to_string());
        assert_eq!(data[&kind.log_level_var()], "INFO");
        assert_eq!(data["REDIS_URL"], "redis://redis-cache:6379");
        assert_eq!(
            data.contains_key("TENANT_MGMT_URL"),
            kind != ServiceKind::TenantMgmt
        );

        let d = deployment(&t, kind).await;
        assert_owned_by(&d, &ds);
        let labels = d.metadata.labels.clone().unwrap();
        assert_eq!(labels["app.kubernetes.io/name"], name);
        assert_eq!(labels["app.kubernetes.io/managed-by"], "prismicx-operator");
        assert_eq!(labels["app.kubernetes.io/part-of"], "prismicx");
        let pod = d.spec.as_ref().unwrap().template.spec.clone().unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some(name));
        let c = &pod.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some(format!("registry.test/prismicx/{}:test", kind.k8s_name()).as_str())
        );
        assert_eq!(
            c.ports.as_ref().unwrap()[0].container_port,
            i32::from(kind.container_port())
        );
        assert_eq!(probe_path(&c.liveness_probe), Some("/healthz"));
        assert_eq!(probe_path(&c.readiness_probe), Some("/readyz"));
        let env_from = c.env_from.as_deref().unwrap_or_default();
        assert_eq!(
            env_from[0].config_map_ref.as_ref().map(|r| r.name.as_str()),
            Some(name)
        );
        assert_eq!(
            secret_ref(&d, "API_KEY"),
            Some((API_KEY_SECRET.into(), "api-key".into()))
        );
        let db_secret = format!("{name}-db");
        if let Some(prefix) = kind.postgres_env_prefix() {
            assert_eq!(
                data[&format!("{prefix}_PORT")],
                servers().pgbouncer.port().to_string()
            );
            assert_eq!(
                secret_ref(&d, &format!("{prefix}_USER")),
                Some((db_secret.clone(), "username".into()))
            );
            assert_eq!(
                secret_ref(&d, &format!("{prefix}_PASSWORD")),
                Some((db_secret.clone(), "password".into()))
            );
        }
        if kind.mongo_database().is_some() {
            assert_eq!(
                secret_ref(&d, "MONGODB_URI"),
                Some((db_secret.clone(), "mongodb-uri".into()))
            );
            assert_eq!(
                secret_ref(&d, "MONGODB_TENANT_URI"),
                Some((db_secret.clone(), "mongodb-tenant-uri".into()))
            );
        }
        let secret = t.secrets.get(&db_secret).await.expect("database secret");
        assert_owned_by(&secret, &ds);
        for key in ["host", "port", "dbname", "username", "password"] {
            assert!(!secret_value(&secret, key).is_empty(), "{db_secret}: {key}");
        }

        let ds = get(&t, kind.as_str()).await;
        let status = ds.status.clone().expect("status");
        assert_eq!(status.observed_generation, ds.metadata.generation);
        assert_eq!(status.config_hash.as_deref(), Some(pod_hash(&d).as_str()));
        assert_eq!(condition(&ds, "Degraded").0, "False");
        assert_condition(&ds, "Available", "False", "WaitingForReplicas");
    }
}

#[tokio::test]
async fn a_config_change_rolls_the_pods() {
    let t = setup().await;
    create_with_own_secret(
        &t,
        "categories",
        "cat-db",
        json!({"service": "category-repository"}),
    )
    .await;
    let kind = ServiceKind::CategoryRepository;
    reconcile(&t, "categories").await.expect("reconcile");
    let h1 = pod_hash(&deployment(&t, kind).await);
    reconcile(&t, "categories").await.expect("reconcile again");
    assert_eq!(
        pod_hash(&deployment(&t, kind).await),
        h1,
        "no change, no rollout"
    );

    patch_spec(&t, "categories", json!({"logLevel": "DEBUG"})).await;
    reconcile(&t, "categories").await.expect("reconcile");
    let h2 = pod_hash(&deployment(&t, kind).await);
    assert_ne!(h2, h1, "log level");
    let cm = t.config_maps.get(kind.k8s_name()).await.unwrap();
    assert_eq!(cm.data.unwrap()["CATEGORY_REPOSITORY_LOG_LEVEL"], "DEBUG");

    patch_spec(
        &t,
        "categories",
        json!({"env": [{"name": "FEATURE_X", "value": "on"}, {"name": "HOST", "value": "::"}]}),
    )
    .await;
    reconcile(&t, "categories").await.expect("reconcile");
    let d = deployment(&t, kind).await;
    let h3 = pod_hash(&d);
    assert_ne!(h3, h2, "env entry");
    let env = container_env(&d);
    assert!(env
        .iter()
        .any(|e| e.name == "FEATURE_X" && e.value.as_deref() == Some("on")));
    assert!(env
        .iter()
        .any(|e| e.name == "HOST" && e.value.as_deref() == Some("::")));
    // The env entry wins over the ConfigMap's HOST in the pod (env beats envFrom); the plan
    // also drops HOST from the ConfigMap, which a real API server's server-side apply removes
    // (kube-fake-client merges applies, so that part is covered by the unit tests).

    // The API key rotates: only the Secret changes, the DatabaseService does not.
    put_secret(&t, API_KEY_SECRET, &[("api-key", "key-2")]).await;
    reconcile(&t, "categories").await.expect("reconcile");
    let d = deployment(&t, kind).await;
    let h4 = pod_hash(&d);
    assert_ne!(h4, h3, "API key rotation");
    // So does the database Secret the spec names.
    put_secret(
        &t,
        "cat-db",
        &[
            ("mongodb-uri", "mongodb://other/"),
            ("mongodb-tenant-uri", "x"),
        ],
    )
    .await;
    reconcile(&t, "categories").await.expect("reconcile");
    let h5 = pod_hash(&deployment(&t, kind).await);
    assert_ne!(h5, h4, "database Secret change");
    let ds = get(&t, "categories").await;
    assert_eq!(ds.status.unwrap().config_hash.as_deref(), Some(h5.as_str()));
}

#[tokio::test]
async fn objects_no_longer_wanted_are_removed_and_deletion_cascades() {
    let _guards = lock(&[ServiceKind::TaskRepo]).await;
    let t = setup().await;
    let kind = ServiceKind::TaskRepo;
    let ds = create(&t, "tasks", json!({"service": "task-repo"})).await;
    reconcile(&t, "tasks").await.expect("reconcile");
    let own = format!("{}-db", kind.k8s_name());
    assert!(t.secrets.get_opt(&own).await.unwrap().is_some());

    // The spec names its own credentials: the operator's Secret goes, the pods read the new one.
    own_database_secret(&t, "task-creds").await;
    patch_spec(&t, "tasks", json!({"databaseSecret": "task-creds"})).await;
    reconcile(&t, "tasks").await.expect("reconcile");
    assert!(
        t.secrets.get_opt(&own).await.unwrap().is_none(),
        "{own} removed"
    );
    let d = deployment(&t, kind).await;
    assert_eq!(
        secret_ref(&d, "MONGODB_URI"),
        Some(("task-creds".into(), "mongodb-uri".into()))
    );

    // Deleting the DatabaseService removes everything it owns (the fake API, like the garbage
    // collector, follows ownerReferences), and nothing it does not own.
    t.dss
        .delete("tasks", &DeleteParams::background())
        .await
        .expect("delete");
    let name = kind.k8s_name();
    assert!(!has_deployment(&t, name).await);
    assert!(t.services.get_opt(name).await.unwrap().is_none());
    assert!(t.accounts.get_opt(name).await.unwrap().is_none());
    assert!(t.config_maps.get_opt(name).await.unwrap().is_none());
    assert!(t.secrets.get_opt("task-creds").await.unwrap().is_some());
    assert!(t.secrets.get_opt(API_KEY_SECRET).await.unwrap().is_some());
    drop(ds);
}

#[tokio::test]
async fn status_follows_the_deployment() {
    let t = setup().await;
    let kind = ServiceKind::VectorStore;
    create_with_own_secret(&t, "vectors", "vec-db", json!({"service": "vector-store"})).await;
    reconcile(&t, "vectors").await.expect("reconcile");
    let ds = get(&t, "vectors").await;
    // Its data directory is a claim the DatabaseService owns, mounted by a Recreate Deployment.
    let claim = t
        .claims
        .get("vector-store-service-data")
        .await
        .expect("the data claim");
    assert_eq!(
        claim.owner_references()[0].uid,
        ds.uid().unwrap_or_default()
    );
    assert_eq!(
        deployment(&t, kind)
            .await
            .spec
            .and_then(|s| s.strategy)
            .and_then(|s| s.type_)
            .as_deref(),
        Some("Recreate")
    );
    assert_eq!(ds.status.as_ref().unwrap().ready_replicas, 0);
    assert_eq!(condition(&ds, "Available").0, "False");
    assert_condition(&ds, "Progressing", "True", "RollingOut");

    // The Deployment's status as its controller would write it, then one reconcile.
    let reconcile_with_status = |status: serde_json::Value| {
        let t = &t;
        async move {
            t.deployments
                .patch_status(
                    kind.k8s_name(),
                    &PatchParams::default(),
                    &Patch::Merge(&json!({ "status": status })),
                )
                .await
                .expect("deployment status");
            reconcile(t, "vectors").await.expect("reconcile");
            get(t, "vectors").await
        }
    };
    let ds = reconcile_with_status(json!({
        "observedGeneration": 1000, "replicas": 1, "updatedReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "ok"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "done"}
        ]
    }))
    .await;
    let status = ds.status.clone().unwrap();
    assert_eq!(status.ready_replicas, 1);
    assert_eq!(status.observed_generation, ds.metadata.generation);
    assert_condition(&ds, "Available", "True", "MinimumReplicasAvailable");
    assert_condition(&ds, "Progressing", "False", "RolloutComplete");
    assert_condition(&ds, "Degraded", "False", "AsExpected");

    let ds = reconcile_with_status(json!({
        "readyReplicas": 0, "availableReplicas": 0,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "none"},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "stuck"}
        ]
    }))
    .await;
    assert_eq!(ds.status.as_ref().unwrap().ready_replicas, 0);
    assert_eq!(condition(&ds, "Available").0, "False");
    assert_condition(&ds, "Degraded", "True", "ProgressDeadlineExceeded");

    // replicas 0: every object stays, no pod is asked for.
    patch_spec(&t, "vectors", json!({"replicas": 0})).await;
    let ds = reconcile_with_status(json!({"replicas": 0, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0, "conditions": []})).await;
    let d = deployment(&t, kind).await;
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(0));
    assert!(t.services.get_opt(kind.k8s_name()).await.unwrap().is_some());
    assert!(t
        .config_maps
        .get_opt(kind.k8s_name())
        .await
        .unwrap()
        .is_some());
    assert_condition(&ds, "Available", "True", "ScaledToZero");
    assert_eq!(condition(&ds, "Degraded").0, "False");
}

async fn admin_bool(db: &str, sql: &str, arg: &str) -> bool {
    let mut c = support::admin(db).await;
    query_scalar(sql)
        .bind(arg)
        .fetch_one(&mut c)
        .await
        .expect(sql)
}

/// The service login as the pods use it: through PgBouncer, one transaction, unnamed
/// statements.
async fn login_through_pgbouncer(secret: &Secret) -> (String, String) {
    let opts = servers()
        .pgbouncer
        .options(
            &secret_value(secret, "dbname"),
            &secret_value(secret, "username"),
            &secret_value(secret, "password"),
        )
        .statement_cache_capacity(0);
    assert_eq!(
        secret_value(secret, "port"),
        servers().pgbouncer.port().to_string()
    );
    let mut conn = sqlx::PgConnection::connect_with(&opts)
        .await
        .expect("login through PgBouncer");
    let mut tx = conn.begin().await.expect("begin");
    let user: String = query_scalar("SELECT current_user::text")
        .fetch_one(&mut *tx)
        .await
        .expect("current_user");
    let db: String = query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *tx)
        .await
        .expect("current_database");
    tx.commit().await.expect("commit");
    (user, db)
}

#[tokio::test]
async fn postgres_services_get_their_database_schema_and_login_before_the_first_rollout() {
    let _guards = lock(&[ServiceKind::UserData, ServiceKind::ManagementSystemRepo]).await;
    let t = setup().await;
    for (kind, db) in [
        (ServiceKind::UserData, "system_users"),
        (
            ServiceKind::ManagementSystemRepo,
            "management_system_repository",
        ),
    ] {
        create(&t, kind.as_str(), json!({"service": kind})).await;
        // The database step fails once: nothing is rolled out.
        t.ctx.ctx.fail_step_once(Step::Postgres);
        let err = reconcile(&t, kind.as_str()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Step {
                    step: Step::Postgres,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!has_deployment(&t, kind.k8s_name()).await);
        let ds = get(&t, kind.as_str()).await;
        assert_condition(&ds, "Degraded", "True", "PostgresFailed");

        reconcile(&t, kind.as_str()).await.expect("reconcile");
        reconcile(&t, kind.as_str()).await.expect("idempotent");
        assert!(has_deployment(&t, kind.k8s_name()).await);
        let ds = get(&t, kind.as_str()).await;
        assert_eq!(condition(&ds, "Degraded").0, "False");

        let login = format!("{db}_svc");
        assert!(
            admin_bool(
                "postgres",
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                db
            )
            .await
        );
        assert!(
            admin_bool(
                db,
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                "prismicx"
            )
            .await
        );
        let mut c = support::admin(db).await;
        let applied: i64 = query_scalar("SELECT count(*) FROM prismicx.schema_migrations")
            .fetch_one(&mut c)
            .await
            .expect("the system schema records its migrations");
        let system = Catalog::platform()
            .service(kind)
            .postgres
            .unwrap()
            .schema
            .system
            .len();
        assert_eq!(
            applied as usize, system,
            "{db}: every system migration applied"
        );
        assert!(
            admin_bool(db, "SELECT rolcanlogin AND NOT rolbypassrls AND NOT rolsuper AND NOT rolcreaterole AND NOT rolcreatedb FROM pg_roles WHERE rolname = $1", &login).await,
            "{login}: LOGIN NOBYPASSRLS, no other privilege"
        );
        let member: bool = query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
            .bind(&login)
            .bind(format!("{db}_app"))
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert!(member, "{login} is a member of {db}_app");
        assert!(
            admin_bool(db, "SELECT NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = $1)", &login).await,
            "{login} owns nothing"
        );

        // The Secret's credentials log in through PgBouncer, and stay the same across reconciles.
        let secret = operator_secret(&t, kind).await;
        assert_eq!(secret_value(&secret, "username"), login);
        assert_eq!(
            login_through_pgbouncer(&secret).await,
            (login.clone(), db.to_string())
        );
        reconcile(&t, kind.as_str()).await.expect("reconcile");
        let again = operator_secret(&t, kind).await;
        assert_eq!(
            secret_value(&again, "password"),
            secret_value(&secret, "password")
        );
        assert_eq!(login_through_pgbouncer(&again).await.0, login);
    }
}

async fn users_info(client: &mongodb::Client, db: &str, user: &str) -> Vec<(String, String)> {
    let reply = client
        .database(db)
        .run_command(doc! {"usersInfo": {"user": user, "db": db}})
        .await
        .expect("usersInfo");
    let users = reply.get_array("users").expect("users");
    let u = users
        .first()
        .and_then(|u| u.as_document())
        .unwrap_or_else(|| panic!("no user {user} in {db}"));
    let mut roles: Vec<(String, String)> = u
        .get_array("roles")
        .expect("roles")
        .iter()
        .filter_map(|r| r.as_document())
        .map(|r| {
            (
                r.get_str("db").unwrap_or_default().to_string(),
                r.get_str("role").unwrap_or_default().to_string(),
            )
        })
        .collect();
    roles.sort();
    roles
}

#[tokio::test]
async fn mongo_services_get_their_users() {
    let _guards = lock(&[ServiceKind::TaskRepo, ServiceKind::ManagementSystemRepo]).await;
    let t = setup().await;
    for (kind, db) in [
        (ServiceKind::TaskRepo, "task_repository"),
        (ServiceKind::ManagementSystemRepo, "config_db"),
    ] {
        create(&t, kind.as_str(), json!({"service": kind})).await;
        reconcile(&t, kind.as_str()).await.expect("reconcile");
        reconcile(&t, kind.as_str()).await.expect("idempotent");
        let m = support::mongo().await;
        let mt = support::mongo_tenant().await;
        let user = format!("{db}_svc");
        assert_eq!(
            users_info(&m, db, &user).await,
            [
                (db.to_string(), "readWrite".to_string()),
                ("tenant_registry".to_string(), "read".to_string())
            ]
        );
        // On mongodb-tenant: its own service's dedicated tenant databases only.
        let roles = users_info(&mt, "admin", &user).await;
        assert!(
            roles
                .iter()
                .all(|(d, r)| d.starts_with(&format!("{db}__")) && r == "readWrite"),
            "{user} on mongodb-tenant: {roles:?}"
        );
        let secret = operator_secret(&t, kind).await;
        let uri = secret_value(&secret, "mongodb-uri");
        assert!(uri.starts_with(&format!("mongodb://{user}:")), "{uri}");
        assert!(uri.ends_with(&format!("/{db}?authSource={db}")), "{uri}");
        assert!(secret_value(&secret, "mongodb-tenant-uri").ends_with("/?authSource=admin"));

        // The URI works as the service uses it.
        let client = mongodb::Client::with_uri_str(&uri).await.expect("uri");
        let coll = client.database(db).collection::<Document>("svc_probe");
        coll.insert_one(doc! {"probe": kind.as_str()})
            .await
            .expect("insert as the service user");
        assert!(coll
            .find_one(doc! {"probe": kind.as_str()})
            .await
            .unwrap()
            .is_some());
        coll.drop().await.unwrap();
    }
}

#[tokio::test]
async fn bad_specs_and_missing_secrets_are_reported_and_touch_nothing() {
    let t = setup().await;
    create_with_own_secret(&t, "dup", "db", json!({"service": "task-repo", "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]})).await;
    let err = reconcile(&t, "dup").await.unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err}");
    let ds = get(&t, "dup").await;
    assert_condition(&ds, "Degraded", "True", "InvalidSpec");
    assert_eq!(
        ds.status.as_ref().unwrap().observed_generation,
        ds.metadata.generation
    );
    assert_eq!(
        error_policy(Arc::new(ds), &err, t.ctx.clone()),
        Action::await_change()
    );
    assert!(!has_deployment(&t, "task-repo-service").await);

    create(
        &t,
        "nokey",
        json!({"service": "category-repository", "databaseSecret": "db", "apiKeySecret": {"name": "absent", "key": "api-key"}}),
    )
    .await;
    let err = reconcile(&t, "nokey").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Step {
                step: Step::Secret,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("absent"), "{err}");
    let ds = get(&t, "nokey").await;
    assert_condition(&ds, "Degraded", "True", "SecretFailed");
    assert_ne!(
        error_policy(Arc::new(ds), &err, t.ctx.clone()),
        Action::await_change()
    );
    assert!(!has_deployment(&t, "category-repository-service").await);

    // Once the Secret exists, the next reconcile deploys.
    put_secret(&t, "absent", &[("api-key", "k")]).await;
    reconcile(&t, "nokey").await.expect("reconcile");
    assert!(has_deployment(&t, "category-repository-service").await);

    // A second DatabaseService for the same service is refused and leaves the first alone.
    let before = deployment(&t, ServiceKind::CategoryRepository).await;
    create(
        &t,
        "twin",
        json!({"service": "category-repository", "databaseSecret": "db", "replicas": 3}),
    )
    .await;
    let err = reconcile(&t, "twin").await.unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err}");
    assert!(err.to_string().contains("nokey"), "{err}");
    let after = deployment(&t, ServiceKind::CategoryRepository).await;
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
}

/// A namespace owner (not the platform's) creates DatabaseServices, with the Secret the operator
/// would read the service login's password from already holding a password of its choosing.
#[tokio::test]
async fn a_database_service_in_another_namespace_cannot_reset_platform_passwords() {
    let _guards = lock(&[ServiceKind::UserData]).await;
    let t = setup().await;
    create(&t, "user-data", json!({"service": "user-data"})).await;
    reconcile(&t, "user-data")
        .await
        .expect("the platform's own");
    let platform_secret = t.secrets.get("user-data-service-db").await.unwrap();
    assert_eq!(
        login_through_pgbouncer(&platform_secret).await.0,
        "system_users_svc"
    );

    let client = t.ctx.ctx.client.clone();
    let hostile = "hostile";
    let secrets: Api<Secret> = Api::namespaced(client.clone(), hostile);
    let chosen = "attacker-chosen-password";
    secrets
        .patch(
            "user-data-service-db",
            &PatchParams::apply("attacker").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "user-data-service-db", "namespace": hostile},
                "data": {"password": ByteString(chosen.as_bytes().to_vec())},
            })),
        )
        .await
        .unwrap();
    let dss: Api<DatabaseService> = Api::namespaced(client.clone(), hostile);
    let spec: DatabaseServiceSpec = serde_json::from_value(json!({
        "service": "user-data",
        "apiKeySecret": {"name": API_KEY_SECRET, "key": "api-key"},
    }))
    .unwrap();
    let mut ds = DatabaseService::new("user-data", spec);
    ds.metadata.namespace = Some(hostile.into());
    dss.create(&PostParams::default(), &ds).await.unwrap();
    let err =
        database_service::reconcile(Arc::new(dss.get("user-data").await.unwrap()), t.ctx.clone())
            .await
            .expect_err("refused");
    assert!(err.is_permanent(), "{err}");
    let ds = dss.get("user-data").await.unwrap();
    assert_condition(&ds, "Degraded", "True", "OutsidePlatformNamespace");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), hostile);
    assert!(deployments
        .get_opt("user-data-service")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        secret_value(
            &secrets.get("user-data-service-db").await.unwrap(),
            "password"
        ),
        chosen,
        "the hostile namespace's Secret was not rewritten either"
    );

    // The platform login keeps its password; the attacker's does not log in.
    assert_eq!(
        login_through_pgbouncer(&platform_secret).await.0,
        "system_users_svc"
    );
    let opts = servers()
        .pgbouncer
        .options("system_users", "system_users_svc", chosen)
        .statement_cache_capacity(0);
    assert!(sqlx::PgConnection::connect_with(&opts).await.is_err());
}
