//! Unit tests of the pure half of the DatabaseService reconciler: plan, config hash, the
//! objects built from the plan, and the status observed from the Deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use prismicx_operator_api::{DatabaseService, ServiceKind};
use prismicx_store::Secret as Hidden;

use super::config_hash::*;
use super::observe::*;
use super::plan::*;
use super::resources::*;
use crate::conditions::ConditionType;
use crate::config::OperatorArgs;
use crate::dataplane::Endpoints;
use crate::error::Error;
use crate::tenant::secret::{assert_data, value_of as get};

const AVAILABLE: &str = "Available";
const PROGRESSING: &str = "Progressing";
const DEGRADED: &str = "Degraded";
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

fn endpoints() -> Endpoints {
    Endpoints {
        postgres_host: "postgres-system".into(),
        postgres_port: 5432,
        pooler_host: "pgbouncer".into(),
        pooler_port: 6432,
        pool_server_host: "postgres-system".into(),
        pool_server_port: 5432,
        mongo_tenant_address: "mongodb-tenant:27017".into(),
        mongo_system_address: "mongodb-system:27018".into(),
    }
}

fn settings() -> Settings {
    Settings {
        image_registry: "registry.example/prismicx".into(),
        image_tag: "1.2.3".into(),
        redis: RedisUrl::Value("redis://redis-cache:6379".into()),
        platform_namespace: "prismicx".into(),
    }
}

fn ds(spec: serde_json::Value) -> DatabaseService {
    let mut spec = spec;
    spec["apiKeySecret"] = serde_json::json!({"name": "platform", "key": "api-key"});
    let mut d = DatabaseService::new("svc", serde_json::from_value(spec).unwrap());
    d.metadata.namespace = Some("prod".into());
    d.metadata.uid = Some("uid-1".into());
    d
}

fn plan_of(spec: serde_json::Value) -> ServicePlan {
    plan(&ds(spec), &settings(), &endpoints()).unwrap()
}

fn env_names(p: &ServicePlan) -> Vec<&str> {
    p.env.iter().map(|e| e.name.as_str()).collect()
}

fn secret_of<'a>(p: &'a ServicePlan, var: &str) -> Option<(&'a str, &'a str)> {
    p.env
        .iter()
        .find(|e| e.name == var)
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.secret_key_ref.as_ref())
        .map(|r| (r.name.as_str(), r.key.as_str()))
}

#[test]
fn every_service_gets_its_ports_names_and_database_variables() {
    for kind in ServiceKind::ALL {
        let p = plan_of(serde_json::json!({"service": kind}));
        assert_eq!(p.name, kind.k8s_name());
        let svc = service(&p);
        let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.port, i32::from(kind.external_port()));
        assert_eq!(
            port.target_port,
            Some(IntOrString::Int(i32::from(kind.container_port())))
        );
        assert_eq!(port.name.as_deref(), Some("http"));
        assert_eq!(p.config["PORT"], kind.container_port().to_string());
        assert_eq!(p.config["SERVICE_NAME"], kind.k8s_name());
        assert_eq!(p.config["HOST"], "0.0.0.0");
        assert_eq!(p.config[&kind.log_level_var()], "INFO");
        assert_eq!(secret_of(&p, "API_KEY"), Some(("platform", "api-key")));
        let db_secret = format!("{}-db", kind.k8s_name());
        if let Some(prefix) = kind.postgres_env_prefix() {
            assert_eq!(p.config[&format!("{prefix}_HOST")], "pgbouncer");
            assert_eq!(p.config[&format!("{prefix}_PORT")], "6432");
            assert_eq!(
                p.config[&format!("{prefix}_NAME")],
                kind.postgres_database().unwrap()
            );
            assert_eq!(
                secret_of(&p, &format!("{prefix}_USER")),
                Some((db_secret.as_str(), "username"))
            );
            assert_eq!(
                secret_of(&p, &format!("{prefix}_PASSWORD")),
                Some((db_secret.as_str(), "password"))
            );
        }
        assert_eq!(
            secret_of(&p, "MONGODB_URI").is_some(),
            kind.mongo_database().is_some()
        );
        if kind.mongo_database().is_some() {
            assert_eq!(
                secret_of(&p, "MONGODB_TENANT_URI"),
                Some((db_secret.as_str(), "mongodb-tenant-uri"))
            );
        }
        assert_eq!(
            p.config.get("TENANT_MGMT_URL").map(String::as_str),
            (kind != ServiceKind::TenantMgmt).then_some("http://tenant-mgmt-service:8501")
        );
        assert_eq!(p.config["REDIS_URL"], "redis://redis-cache:6379");
        // Secrets only through secretKeyRef; nothing secret in the ConfigMap.
        assert!(p.env.iter().all(|e| e.value.is_none()));
        assert!(!p.config.keys().any(|k| k.ends_with("PASSWORD")
            || k.ends_with("_USER")
            || k.contains("URI")
            || k == "API_KEY"));
    }
    let p = plan_of(serde_json::json!({"service": "user-data"}));
    assert!(p.config.contains_key("USER_DB_HOST"));
    let p = plan_of(serde_json::json!({"service": "management-system-repo"}));
    assert_eq!(
        p.config["MANAGEMENT_DB_NAME"],
        "management_system_repository"
    );
    assert_eq!(
        env_names(&p),
        [
            "API_KEY",
            "MANAGEMENT_DB_USER",
            "MANAGEMENT_DB_PASSWORD",
            "MONGODB_URI",
            "MONGODB_TENANT_URI"
        ]
    );
}

#[test]
fn a_named_database_secret_supplies_every_database_variable() {
    let p = plan_of(serde_json::json!({"service": "user-data", "databaseSecret": "mine"}));
    assert!(!p.operator_secret);
    assert!(!p.config.contains_key("USER_DB_HOST"));
    for (var, key) in [
        ("USER_DB_HOST", "host"),
        ("USER_DB_PORT", "port"),
        ("USER_DB_NAME", "dbname"),
        ("USER_DB_USER", "username"),
        ("USER_DB_PASSWORD", "password"),
    ] {
        assert_eq!(secret_of(&p, var), Some(("mine", key)), "{var}");
    }
    assert!(database_secret(&p, &endpoints(), &Hidden::new("pw".into())).is_none());
}

#[test]
fn spec_env_overrides_the_operators_settings_in_order() {
    let p = plan_of(serde_json::json!({
        "service": "task-repo",
        "logLevel": "DEBUG",
        "env": [
            {"name": "ZED", "value": "1"},
            {"name": "PORT", "value": "9999"},
            {"name": "MONGODB_URI", "valueFrom": {"secretKeyRef": {"name": "other", "key": "uri"}}},
            {"name": "EXTRA", "value": "x"}
        ]
    }));
    assert_eq!(p.config["TASK_REPO_LOG_LEVEL"], "DEBUG");
    assert!(
        !p.config.contains_key("PORT"),
        "overridden: not in the ConfigMap"
    );
    assert_eq!(
        env_names(&p),
        [
            "API_KEY",
            "MONGODB_TENANT_URI",
            "ZED",
            "PORT",
            "MONGODB_URI",
            "EXTRA"
        ]
    );
    assert_eq!(secret_of(&p, "MONGODB_URI"), Some(("other", "uri")));
    let refs = secret_refs(&p.env);
    assert!(refs.contains_key(&("other".into(), "uri".into())));
    assert!(!refs.contains_key(&("task-repo-service-db".into(), "mongodb-uri".into())));
}

#[test]
fn invalid_env_is_refused() {
    for env in [
        serde_json::json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        serde_json::json!([{"name": "A=B", "value": "1"}]),
        serde_json::json!([{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
    ] {
        let d = ds(serde_json::json!({"service": "task-repo", "env": env}));
        let e = plan(&d, &settings(), &endpoints()).unwrap_err();
        assert!(e.is_permanent(), "{e}");
    }
    let d = ds(serde_json::json!({"service": "task-repo", "databaseSecret": ""}));
    assert!(plan(&d, &settings(), &endpoints()).is_err());
}

#[test]
fn the_hash_is_stable_and_follows_every_input() {
    let p = plan_of(serde_json::json!({"service": "user-data"}));
    let secrets = BTreeMap::from([
        (
            ("platform".to_string(), "api-key".to_string()),
            Some(b"k1".to_vec()),
        ),
        (
            ("user-data-service-db".to_string(), "password".to_string()),
            Some(b"pw".to_vec()),
        ),
    ]);
    let h = config_hash(&p.config, &p.env, &secrets);
    assert_eq!(h.len(), 64);
    assert_eq!(h, config_hash(&p.config, &p.env, &secrets.clone()));
    assert_eq!(
        h,
        config_hash(
            &plan_of(serde_json::json!({"service": "user-data"})).config,
            &p.env,
            &secrets
        )
    );

    let debug = plan_of(serde_json::json!({"service": "user-data", "logLevel": "DEBUG"}));
    assert_ne!(h, config_hash(&debug.config, &debug.env, &secrets));
    let extra =
        plan_of(serde_json::json!({"service": "user-data", "env": [{"name": "X", "value": "1"}]}));
    assert_ne!(h, config_hash(&extra.config, &extra.env, &secrets));
    let mut rotated = secrets.clone();
    rotated.insert(
        ("platform".to_string(), "api-key".to_string()),
        Some(b"k2".to_vec()),
    );
    assert_ne!(h, config_hash(&p.config, &p.env, &rotated));
    let mut missing = secrets.clone();
    missing.insert(("platform".to_string(), "api-key".to_string()), None);
    assert_ne!(h, config_hash(&p.config, &p.env, &missing));
    // Field boundaries count: moving a character between key and value changes it.
    let a = BTreeMap::from([("AB".to_string(), "C".to_string())]);
    let b = BTreeMap::from([("A".to_string(), "BC".to_string())]);
    assert_ne!(
        config_hash(&a, &[], &BTreeMap::new()),
        config_hash(&b, &[], &BTreeMap::new())
    );
}

#[test]
fn the_deployment_is_locked_down_probed_and_owned() {
    let p = plan_of(serde_json::json!({"service": "category-repository"}));
    let d = deployment(&p, "abc");
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    let tpl = &spec.template;
    assert_eq!(
        tpl.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION],
        "abc"
    );
    let selector = spec.selector.match_labels.as_ref().unwrap();
    let pod_labels = tpl.metadata.as_ref().unwrap().labels.as_ref().unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    assert_eq!(
        selector["app.kubernetes.io/name"],
        "category-repository-service"
    );
    let pod = tpl.spec.as_ref().unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("category-repository-service")
    );
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example/prismicx/category-repository-service:1.2.3")
    );
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8080);
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let live = c
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/healthz"));
    assert_eq!(live.port, IntOrString::String("http".into()));
    let ready = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    assert_eq!(c.resources.as_ref(), Some(&default_resources()));
    let limits = default_resources().limits.unwrap();
    assert_eq!(limits["cpu"], Quantity("500m".into()));
    assert_eq!(limits["memory"], Quantity("256Mi".into()));
    let requests = default_resources().requests.unwrap();
    assert_eq!(requests["cpu"], Quantity("50m".into()));
    assert_eq!(requests["memory"], Quantity("64Mi".into()));
    let mounts: Vec<&str> = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(mounts, ["/tmp"]);
    assert_eq!(
        c.env_from.as_ref().unwrap()[0]
            .config_map_ref
            .as_ref()
            .unwrap()
            .name,
        "category-repository-service"
    );
    for owner in [
        d.metadata.owner_references.clone(),
        service(&p).metadata.owner_references,
        config_map(&p).metadata.owner_references,
        service_account(&p).metadata.owner_references,
    ] {
        let o = &owner.unwrap()[0];
        assert_eq!(o.kind, "DatabaseService");
        assert_eq!(o.uid, "uid-1");
        assert_eq!(o.controller, Some(true));
    }
    assert_eq!(
        d.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "prismicx-operator"
    );
}

#[test]
fn vector_store_gets_a_data_directory_and_spec_resources_win() {
    let p = plan_of(serde_json::json!({
        "service": "vector-store",
        "image": "mine:dev",
        "replicas": 0,
        "resources": {"limits": {"memory": "1Gi"}}
    }));
    assert_eq!(p.config[VECTOR_DATA_DIR_VAR], VECTOR_DATA_DIR);
    let d = deployment(&p, "h");
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(0));
    let pod = spec.template.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("mine:dev"));
    assert!(c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .any(|m| m.mount_path == VECTOR_DATA_DIR));
    assert_eq!(
        c.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"],
        Quantity("1Gi".into())
    );
    assert!(c.resources.as_ref().unwrap().requests.is_none());
    let s = Settings {
        image_registry: String::new(),
        ..settings()
    };
    assert_eq!(
        s.image(ServiceKind::VectorStore),
        "vector-store-service:1.2.3"
    );
}

#[test]
fn vector_store_keeps_its_data_on_an_owned_claim_with_one_pod_recreated() {
    let p = plan_of(serde_json::json!({"service": "vector-store"}));
    let claim = volume_claim(&p).expect("vector-store has a claim");
    assert_eq!(
        claim.metadata.name.as_deref(),
        Some("vector-store-service-data")
    );
    let owner = &claim.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        ("uid-1", Some(true))
    );
    let spec = claim.spec.unwrap();
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    assert_eq!(spec.storage_class_name, None);
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"],
        Quantity("10Gi".into())
    );
    let d = deployment(&p, "h").spec.unwrap();
    assert_eq!(
        d.strategy.and_then(|s| s.type_).as_deref(),
        Some("Recreate")
    );
    let pod = d.template.spec.unwrap();
    let data = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.persistent_volume_claim.is_some())
        .expect("the claim is mounted");
    assert_eq!(
        data.persistent_volume_claim.unwrap().claim_name,
        "vector-store-service-data"
    );
    assert!(pod.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .any(|m| m.name == data.name && m.mount_path == VECTOR_DATA_DIR));

    let sized = plan_of(serde_json::json!({
        "service": "vector-store",
        "storage": {"size": "50Gi", "storageClassName": "fast-ssd"}
    }));
    let spec = volume_claim(&sized).unwrap().spec.unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast-ssd"));
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"],
        Quantity("50Gi".into())
    );

    // Other services keep no data on disk: no claim, the default rolling update.
    let other = plan_of(serde_json::json!({"service": "user-data"}));
    assert!(volume_claim(&other).is_none());
    assert!(deployment(&other, "h").spec.unwrap().strategy.is_none());
}

#[test]
fn vector_store_settings_come_from_the_spec_or_the_memory_limit() {
    let p = plan_of(serde_json::json!({"service": "vector-store"}));
    // The default limit is 256Mi: three quarters of it.
    assert_eq!(p.config["VECTOR_STORE_MEMORY_BUDGET_MB"], "192");
    assert_eq!(p.config["VECTOR_STORE_DURABILITY"], "fsync");
    assert!(!p.config.contains_key("VECTOR_STORE_MAX_POINTS"));
    let no_limit = plan_of(serde_json::json!({
        "service": "vector-store",
        "resources": {"requests": {"memory": "1Gi"}}
    }));
    assert_eq!(no_limit.config["VECTOR_STORE_MEMORY_BUDGET_MB"], "1024");
    let from_limit = plan_of(serde_json::json!({
        "service": "vector-store",
        "resources": {"limits": {"memory": "4Gi"}}
    }));
    assert_eq!(from_limit.config["VECTOR_STORE_MEMORY_BUDGET_MB"], "3072");
    let own = plan_of(serde_json::json!({
        "service": "vector-store",
        "vectorStore": {"memoryBudgetMb": 700, "durability": "relaxed",
                        "defaultQuota": {"maxCollections": 5, "maxPoints": 100000, "maxBytes": 1073741824}}
    }));
    assert_eq!(own.config["VECTOR_STORE_MEMORY_BUDGET_MB"], "700");
    assert_eq!(own.config["VECTOR_STORE_DURABILITY"], "relaxed");
    assert_eq!(own.config["VECTOR_STORE_MAX_COLLECTIONS"], "5");
    assert_eq!(own.config["VECTOR_STORE_MAX_POINTS"], "100000");
    assert_eq!(own.config["VECTOR_STORE_MAX_BYTES"], "1073741824");
    assert_eq!(own.config[VECTOR_DATA_DIR_VAR], VECTOR_DATA_DIR);
    assert_eq!(
        secret_of(&own, "MONGODB_URI"),
        Some(("vector-store-service-db", "mongodb-uri"))
    );
    assert_eq!(
        secret_of(&own, "MONGODB_TENANT_URI"),
        Some(("vector-store-service-db", "mongodb-tenant-uri"))
    );
}

#[test]
fn vector_store_refuses_more_than_one_replica_and_bad_storage() {
    for (spec, field) in [
        (
            serde_json::json!({"service": "vector-store", "replicas": 2}),
            "spec.replicas",
        ),
        (
            serde_json::json!({"service": "vector-store", "storage": {"size": "lots"}}),
            "spec.storage.size",
        ),
        (
            serde_json::json!({"service": "vector-store", "storage": {"size": "0"}}),
            "spec.storage.size",
        ),
        (
            serde_json::json!({"service": "vector-store", "storage": {"storageClassName": ""}}),
            "spec.storage.storageClassName",
        ),
        (
            serde_json::json!({"service": "task-repo", "storage": {"size": "1Gi"}}),
            "spec.storage",
        ),
    ] {
        match plan(&ds(spec), &settings(), &endpoints()) {
            Err(Error::InvalidSpec(msg)) => assert!(msg.starts_with(field), "{msg}"),
            other => panic!("{field}: expected InvalidSpec, got {other:?}"),
        }
    }
    assert!(plan(
        &ds(serde_json::json!({"service": "vector-store", "replicas": 1})),
        &settings(),
        &endpoints()
    )
    .is_ok());
}

#[test]
fn quantities_are_read_in_bytes() {
    for (q, bytes) in [
        ("10Gi", Some(10u64 << 30)),
        ("512M", Some(512_000_000)),
        ("1073741824", Some(1 << 30)),
        ("1.5Gi", Some(3 << 29)),
        ("1.2.3Gi", None),
        ("10Xi", None),
        ("lots", None),
        ("", None),
    ] {
        assert_eq!(quantity_bytes(&Quantity(q.into())), bytes, "{q}");
    }
}

#[test]
fn settings_come_from_the_operator_flags() {
    let args = OperatorArgs::for_test(&[]);
    assert!(
        matches!(Settings::from_args(&args), Err(Error::Config(_))),
        "no platform namespace, no DatabaseService controller"
    );
    let args = OperatorArgs::for_test(&["--lease-namespace=ops"]);
    let s = Settings::from_args(&args).unwrap();
    assert_eq!(
        s.platform_namespace, "ops",
        "the operator's own namespace by default"
    );
    assert_eq!(s.image_registry, "prismicx");
    assert_eq!(s.image_tag, env!("CARGO_PKG_VERSION"));
    assert_eq!(s.redis, RedisUrl::Value("redis://redis-cache:6379".into()));
    assert_eq!(args.data.mongodb_system_address, "mongodb-system:27018");
    let args = OperatorArgs::for_test(&[
        "--image-registry=ghcr.io/acme",
        "--image-tag=2.0.0",
        "--services-redis-secret=redis-auth",
        "--platform-namespace=prismicx-system",
    ]);
    let s = Settings::from_args(&args).unwrap();
    assert_eq!(s.platform_namespace, "prismicx-system");
    assert_eq!(
        s.image(ServiceKind::UserData),
        "ghcr.io/acme/user-data-service:2.0.0"
    );
    assert_eq!(
        s.redis,
        RedisUrl::Secret {
            name: "redis-auth".into(),
            key: "redis-url".into()
        }
    );
}

#[test]
fn redis_from_a_secret_is_a_secret_reference() {
    let s = Settings {
        redis: RedisUrl::Secret {
            name: "redis".into(),
            key: "url".into(),
        },
        ..settings()
    };
    let p = plan(
        &ds(serde_json::json!({"service": "tenant-mgmt"})),
        &s,
        &endpoints(),
    )
    .unwrap();
    assert!(!p.config.contains_key("REDIS_URL"));
    assert_eq!(secret_of(&p, "REDIS_URL"), Some(("redis", "url")));
}

#[test]
fn the_database_secret_describes_the_service_logins() {
    let pw = Hidden::new("pw".to_string());
    let p = plan_of(serde_json::json!({"service": "user-data"}));
    let s = database_secret(&p, &endpoints(), &pw).unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("user-data-service-db"));
    assert_data(
        &s,
        &[
            ("host", "pgbouncer"),
            ("port", "6432"),
            ("dbname", "system_users"),
            ("username", "system_users_svc"),
            ("password", "pw"),
        ],
    );
    assert!(!s.data.as_ref().unwrap().contains_key("mongodb-uri"));

    let p = plan_of(serde_json::json!({"service": "task-repo"}));
    let s = database_secret(&p, &endpoints(), &pw).unwrap();
    assert_data(&s, &[("username", "task_repository_svc"), ("host", "mongodb-system"), ("port", "27018"), ("mongodb-uri", "mongodb://task_repository_svc:pw@mongodb-system:27018/task_repository?authSource=task_repository"), ("mongodb-tenant-uri", "mongodb://task_repository_svc:pw@mongodb-tenant:27017/?authSource=admin")]);

    let p = plan_of(serde_json::json!({"service": "management-system-repo"}));
    let s = database_secret(&p, &endpoints(), &pw).unwrap();
    assert_data(
        &s,
        &[
            ("username", "management_system_repository_svc"),
            ("host", "pgbouncer"),
        ],
    );
    assert!(get(&s, "mongodb-uri").starts_with("mongodb://config_db_svc:pw@"));
    assert_eq!(split_address("mongo"), ("mongo".into(), "27017".into()));
}

fn dep(
    generation: i64,
    observed: i64,
    counts: (i32, i32, i32, i32),
    conds: &[(&str, &str, &str)],
) -> Deployment {
    let (replicas, updated, ready, available) = counts;
    let mut d = Deployment::default();
    d.metadata.generation = Some(generation);
    d.status = Some(DeploymentStatus {
        observed_generation: Some(observed),
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        conditions: Some(
            conds
                .iter()
                .map(|(t, s, r)| DeploymentCondition {
                    type_: t.to_string(),
                    status: s.to_string(),
                    reason: Some(r.to_string()),
                    message: Some(format!("{t} {r}")),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    });
    d
}

fn summary(o: &Observed) -> Vec<(&str, bool, &str)> {
    o.conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.ok, c.reason.as_str()))
        .collect()
}

#[test]
fn status_follows_the_deployment() {
    let o = observe(None, 1);
    assert_eq!(o.ready_replicas, 0);
    assert_eq!(summary(&o)[0], (AVAILABLE, false, "NotDeployed"));

    // Created, not yet observed by the deployment controller.
    let o = observe(Some(&dep(1, 0, (0, 0, 0, 0), &[])), 2);
    assert_eq!(
        summary(&o),
        [
            (AVAILABLE, false, "WaitingForReplicas"),
            (PROGRESSING, true, "RollingOut"),
            (DEGRADED, false, "AsExpected")
        ]
    );

    let healthy = [
        ("Available", "True", "MinimumReplicasAvailable"),
        ("Progressing", "True", "NewReplicaSetAvailable"),
    ];
    let o = observe(Some(&dep(2, 2, (2, 2, 2, 2), &healthy)), 2);
    assert_eq!(o.ready_replicas, 2);
    assert_eq!(
        summary(&o),
        [
            (AVAILABLE, true, "MinimumReplicasAvailable"),
            (PROGRESSING, false, "RolloutComplete"),
            (DEGRADED, false, "AsExpected")
        ]
    );

    // A rollout: old pods still there.
    let o = observe(Some(&dep(3, 3, (3, 1, 2, 2), &healthy)), 2);
    assert_eq!(summary(&o)[1], (PROGRESSING, true, "RollingOut"));
    assert!(summary(&o)[0].1);

    let stuck = [
        ("Available", "False", "MinimumReplicasUnavailable"),
        ("Progressing", "False", "ProgressDeadlineExceeded"),
    ];
    let o = observe(Some(&dep(3, 3, (1, 1, 0, 0), &stuck)), 1);
    assert_eq!(
        summary(&o),
        [
            (AVAILABLE, false, "MinimumReplicasUnavailable"),
            (PROGRESSING, false, "ProgressDeadlineExceeded"),
            (DEGRADED, true, "ProgressDeadlineExceeded")
        ]
    );

    let quota = [
        ("Available", "True", "MinimumReplicasAvailable"),
        ("ReplicaFailure", "True", "FailedCreate"),
    ];
    let o = observe(Some(&dep(1, 1, (1, 1, 1, 1), &quota)), 2);
    assert_eq!(summary(&o)[2], (DEGRADED, true, "ReplicaFailure"));

    // A pod lost after the rollout: not progressing, not available.
    let lost = [
        ("Available", "False", "MinimumReplicasUnavailable"),
        ("Progressing", "True", "NewReplicaSetAvailable"),
    ];
    let o = observe(Some(&dep(1, 1, (1, 1, 0, 0), &lost)), 1);
    assert_eq!(summary(&o)[2], (DEGRADED, true, "Unavailable"));

    // Starting: the new ReplicaSet's pods are not ready yet.
    let starting = [
        ("Available", "False", "MinimumReplicasUnavailable"),
        ("Progressing", "True", "ReplicaSetUpdated"),
    ];
    let o = observe(Some(&dep(1, 1, (1, 1, 0, 0), &starting)), 1);
    assert_eq!(
        summary(&o),
        [
            (AVAILABLE, false, "MinimumReplicasUnavailable"),
            (PROGRESSING, true, "RollingOut"),
            (DEGRADED, false, "AsExpected")
        ]
    );

    // Scaled to zero.
    let o = observe(Some(&dep(4, 4, (0, 0, 0, 0), &[])), 0);
    assert_eq!(
        summary(&o),
        [
            (AVAILABLE, true, "ScaledToZero"),
            (PROGRESSING, false, "RolloutComplete"),
            (DEGRADED, false, "AsExpected")
        ]
    );
}
