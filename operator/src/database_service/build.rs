//! The pure half of the DatabaseService reconciler: from the resource, the operator's settings
//! and the data plane's addresses to the objects the operator applies, and from the
//! Deployment's status to the resource's status. Nothing here touches an API or a server.
//!
//! ```text
//! DatabaseService + Settings + Endpoints ──► plan (validates; ConfigMap data, env, image)
//! plan ──► secret_refs ──(the reconciler reads those Secrets)──► config_hash
//! plan + hash ──► config_map, service_account, service, deployment, database_secret
//! Deployment (as applied) ──► observe (readyReplicas; Available, Progressing, Degraded)
//! ```

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector,
    SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use kube::core::ObjectMeta;
use kube::{Resource, ResourceExt};
use prismicx_operator_api::database_service::LogLevel;
use prismicx_operator_api::{DatabaseService, ServiceKind};
use prismicx_store::Secret as Hidden;
use sha2::{Digest, Sha256};

use crate::config::OperatorArgs;
use crate::dataplane::Endpoints;
use crate::error::Error;
use crate::tenant::status::Cond;

/// The pod-template annotation holding [`config_hash`]; a new value rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "prismicx.io/config-hash";
/// Where vector-store keeps its vectors and indexes (an emptyDir for now).
pub const VECTOR_DATA_DIR: &str = "/var/lib/prismicx/vectors";
/// The variable that tells vector-store [`VECTOR_DATA_DIR`].
pub const VECTOR_DATA_DIR_VAR: &str = "VECTOR_STORE_DATA_DIR";
/// User and group the containers run as (the distroless `nonroot` ids).
pub const RUN_AS: i64 = 65532;
/// The name of the container port (Service `targetPort`, probes).
pub const PORT_NAME: &str = "http";

/// Condition types of a DatabaseService, in display order.
pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const CONDITIONS: [&str; 3] = [AVAILABLE, PROGRESSING, DEGRADED];

/// Where the services' `REDIS_URL` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisUrl {
    /// A plain value in the ConfigMap.
    Value(String),
    /// A key of a Secret in the DatabaseService's namespace.
    Secret { name: String, key: String },
}

/// Operator-wide settings of the deployed services (from [`OperatorArgs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Registry of the default images (`<registry>/<service k8s name>:<tag>`, e.g. `prismicx/user-data-service:0.1.0`).
    pub image_registry: String,
    /// Tag of the default images.
    pub image_tag: String,
    pub redis: RedisUrl,
    /// The only namespace whose DatabaseServices are deployed (see
    /// [`OperatorArgs::platform_namespace`]).
    pub platform_namespace: String,
}

impl Settings {
    /// The settings from the flags; fails when no platform namespace is known.
    pub fn from_args(a: &OperatorArgs) -> Result<Self, Error> {
        let platform_namespace = a
            .platform_namespace
            .clone()
            .or_else(|| a.lease_namespace.clone())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                Error::Config(
                    "no platform namespace: set --platform-namespace (PLATFORM_NAMESPACE) or \
                     POD_NAMESPACE"
                        .into(),
                )
            })?;
        Ok(Settings {
            platform_namespace,
            image_registry: a.image_registry.clone(),
            image_tag: a.image_tag.clone(),
            redis: match &a.services_redis_secret {
                Some(name) => RedisUrl::Secret {
                    name: name.clone(),
                    key: a.services_redis_secret_key.clone(),
                },
                None => RedisUrl::Value(a.services_redis_url.clone()),
            },
        })
    }

    /// The default image of `kind`.
    pub fn image(&self, kind: ServiceKind) -> String {
        let registry = self.image_registry.trim_end_matches('/');
        if registry.is_empty() {
            format!("{}:{}", kind.image_name(), self.image_tag)
        } else {
            format!("{registry}/{}:{}", kind.image_name(), self.image_tag)
        }
    }
}

/// Everything the builders need, derived from one DatabaseService.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub kind: ServiceKind,
    /// The name of every object (`spec.service.k8s_name()`).
    pub name: String,
    pub namespace: String,
    /// The DatabaseService's name (`app.kubernetes.io/instance`).
    pub instance: String,
    /// Controller reference to the DatabaseService, set on every object.
    pub owner: Option<OwnerReference>,
    pub image: String,
    pub replicas: i32,
    /// The Secret the database variables read: `spec.databaseSecret`, else the operator's.
    pub database_secret: String,
    /// Whether the operator creates and owns [`ServicePlan::database_secret`].
    pub operator_secret: bool,
    /// The ConfigMap's data: every non-secret setting (after `spec.env` overrides).
    pub config: BTreeMap<String, String>,
    /// The container's `env`: secret references, then `spec.env` in its order.
    pub env: Vec<EnvVar>,
    pub resources: ResourceRequirements,
}

/// The name of the Secret the operator creates for a service's database credentials.
pub fn operator_secret_name(kind: ServiceKind) -> String {
    format!("{}-db", kind.k8s_name())
}

/// The login role (PostgreSQL) or user (MongoDB) of a service in `database`: `<db>_svc`.
pub fn service_user(database: &str) -> String {
    format!("{database}_svc")
}

fn secret_ref(var: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: var.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: None,
            }),
            ..Default::default()
        }),
    }
}

fn log_level(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Error => "ERROR",
        LogLevel::Warning => "WARNING",
        LogLevel::Info => "INFO",
        LogLevel::Debug => "DEBUG",
    }
}

/// Checks what the CRD's rules cannot: `spec.env` names (unique, non-empty, no `=`, one
/// source each) and non-empty Secret and image names.
pub fn validate(ds: &DatabaseService) -> Result<(), Error> {
    let spec = &ds.spec;
    if spec.api_key_secret.name.is_empty() || spec.api_key_secret.key.is_empty() {
        return Err(Error::InvalidSpec(
            "spec.apiKeySecret needs a name and a key".into(),
        ));
    }
    if spec.database_secret.as_deref() == Some("") {
        return Err(Error::InvalidSpec(
            "spec.databaseSecret is empty; remove it to use the operator's credentials".into(),
        ));
    }
    if spec.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        return Err(Error::InvalidSpec(
            "spec.image is empty; remove it to use the default image".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for e in &spec.env {
        if e.name.is_empty() || e.name.contains('=') {
            return Err(Error::InvalidSpec(format!(
                "spec.env: {:?} is not a variable name",
                e.name
            )));
        }
        if !seen.insert(e.name.as_str()) {
            return Err(Error::InvalidSpec(format!(
                "spec.env: {} is set twice",
                e.name
            )));
        }
        if e.value.is_some() && e.value_from.is_some() {
            return Err(Error::InvalidSpec(format!(
                "spec.env: {} has both value and valueFrom",
                e.name
            )));
        }
    }
    Ok(())
}

/// Validates `ds` and plans its objects.
pub fn plan(
    ds: &DatabaseService,
    settings: &Settings,
    endpoints: &Endpoints,
) -> Result<ServicePlan, Error> {
    validate(ds)?;
    let spec = &ds.spec;
    let kind = spec.service;
    let name = kind.k8s_name().to_string();
    let operator_secret = spec.database_secret.is_none();
    let database_secret = spec
        .database_secret
        .clone()
        .unwrap_or_else(|| operator_secret_name(kind));

    let mut config: BTreeMap<String, String> = BTreeMap::new();
    let mut env: Vec<EnvVar> = Vec::new();
    config.insert("SERVICE_NAME".into(), name.clone());
    config.insert("HOST".into(), "0.0.0.0".into());
    config.insert("PORT".into(), kind.container_port().to_string());
    config.insert(kind.log_level_var(), log_level(spec.log_level).into());
    config.insert("LOG_FORMAT".into(), "json".into());
    if kind != ServiceKind::TenantMgmt {
        config.insert(
            "TENANT_MGMT_URL".into(),
            format!(
                "http://{}:{}",
                ServiceKind::TenantMgmt.k8s_name(),
                ServiceKind::TenantMgmt.external_port()
            ),
        );
    }
    if kind == ServiceKind::VectorStore {
        config.insert(VECTOR_DATA_DIR_VAR.into(), VECTOR_DATA_DIR.into());
    }
    env.push(secret_ref(
        "API_KEY",
        &spec.api_key_secret.name,
        &spec.api_key_secret.key,
    ));
    if let (Some(prefix), Some(db)) = (kind.postgres_env_prefix(), kind.postgres_database()) {
        if operator_secret {
            config.insert(format!("{prefix}_HOST"), endpoints.pooler_host.clone());
            config.insert(format!("{prefix}_PORT"), endpoints.pooler_port.to_string());
            config.insert(format!("{prefix}_NAME"), db.to_string());
        } else {
            // The user's Secret says where the database is, as the CRD documents.
            for (suffix, key) in [("HOST", "host"), ("PORT", "port"), ("NAME", "dbname")] {
                env.push(secret_ref(
                    &format!("{prefix}_{suffix}"),
                    &database_secret,
                    key,
                ));
            }
        }
        env.push(secret_ref(
            &format!("{prefix}_USER"),
            &database_secret,
            "username",
        ));
        env.push(secret_ref(
            &format!("{prefix}_PASSWORD"),
            &database_secret,
            "password",
        ));
    }
    if kind.mongo_database().is_some() {
        env.push(secret_ref("MONGODB_URI", &database_secret, "mongodb-uri"));
        env.push(secret_ref(
            "MONGODB_TENANT_URI",
            &database_secret,
            "mongodb-tenant-uri",
        ));
    }
    match &settings.redis {
        RedisUrl::Value(url) => {
            config.insert("REDIS_URL".into(), url.clone());
        }
        RedisUrl::Secret { name: s, key } => env.push(secret_ref("REDIS_URL", s, key)),
    }
    // spec.env overrides: the operator's setting of the same name goes, wherever it was.
    for e in &spec.env {
        config.remove(&e.name);
        env.retain(|x| x.name != e.name);
    }
    env.extend(spec.env.iter().cloned());

    Ok(ServicePlan {
        kind,
        name,
        namespace: ds.namespace().unwrap_or_else(|| "default".into()),
        instance: ds.name_any(),
        owner: ds.controller_owner_ref(&()),
        image: spec.image.clone().unwrap_or_else(|| settings.image(kind)),
        replicas: spec.replicas,
        database_secret,
        operator_secret,
        config,
        env,
        resources: spec.resources.clone().unwrap_or_else(default_resources),
    })
}

/// Requests 50m CPU / 64Mi, limits 500m CPU / 256Mi: what one replica of a service needs at rest
/// and a bound on a runaway one.
pub fn default_resources() -> ResourceRequirements {
    let q = |cpu: &str, mem: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(mem.into())),
        ])
    };
    ResourceRequirements {
        requests: Some(q("50m", "64Mi")),
        limits: Some(q("500m", "256Mi")),
        ..Default::default()
    }
}

/// Labels of every object.
pub fn labels(plan: &ServicePlan) -> BTreeMap<String, String> {
    let mut l = selector_labels(plan);
    l.insert("app.kubernetes.io/component".into(), "service".into());
    l.insert("app.kubernetes.io/part-of".into(), "prismicx".into());
    l.insert(
        "app.kubernetes.io/managed-by".into(),
        crate::FIELD_MANAGER.into(),
    );
    l
}

/// The labels that select the pods: stable for the Deployment's life (its selector is
/// immutable).
pub fn selector_labels(plan: &ServicePlan) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), plan.name.clone()),
        (
            "app.kubernetes.io/instance".to_string(),
            plan.instance.clone(),
        ),
    ])
}

/// The label selector of everything one DatabaseService owns (for pruning).
pub fn owned_selector(instance: &str) -> String {
    format!(
        "app.kubernetes.io/instance={instance},app.kubernetes.io/managed-by={}",
        crate::FIELD_MANAGER
    )
}

fn meta(plan: &ServicePlan, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(plan.namespace.clone()),
        labels: Some(labels(plan)),
        owner_references: plan.owner.clone().map(|o| vec![o]),
        ..Default::default()
    }
}

/// The Secrets and keys the container's env references, with whether each may be missing.
pub fn secret_refs(env: &[EnvVar]) -> BTreeMap<(String, String), bool> {
    let mut out = BTreeMap::new();
    for e in env {
        if let Some(r) = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            let optional = r.optional.unwrap_or(false);
            out.entry((r.name.clone(), r.key.clone()))
                .and_modify(|o: &mut bool| *o &= optional)
                .or_insert(optional);
        }
    }
    out
}

/// SHA-256 (hex) over the ConfigMap's data, the container's env and the value of every Secret
/// key the env references (`None`: an optional key that is missing), each in a stable order.
/// Any change to what the pods read changes it, so the pod template changes and the pods roll.
pub fn config_hash(
    config: &BTreeMap<String, String>,
    env: &[EnvVar],
    secrets: &BTreeMap<(String, String), Option<Vec<u8>>>,
) -> String {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    let mut h = Sha256::new();
    field(&mut h, b"configmap");
    for (k, v) in config {
        field(&mut h, k.as_bytes());
        field(&mut h, v.as_bytes());
    }
    field(&mut h, b"env");
    for e in env {
        // EnvVar serializes its fields in declaration order: stable.
        field(&mut h, &serde_json::to_vec(e).unwrap_or_default());
    }
    field(&mut h, b"secrets");
    for ((name, key), value) in secrets {
        field(&mut h, name.as_bytes());
        field(&mut h, key.as_bytes());
        match value {
            Some(v) => {
                field(&mut h, b"1");
                field(&mut h, v);
            }
            None => field(&mut h, b"0"),
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The ConfigMap every pod reads with `envFrom`.
pub fn config_map(plan: &ServicePlan) -> ConfigMap {
    ConfigMap {
        metadata: meta(plan, &plan.name),
        data: Some(plan.config.clone()),
        ..Default::default()
    }
}

/// The pods' ServiceAccount; no API token is mounted (the services never call the API).
pub fn service_account(plan: &ServicePlan) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(plan, &plan.name),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

/// The ClusterIP Service: `external_port` → the container port, named `http`.
pub fn service(plan: &ServicePlan) -> Service {
    Service {
        metadata: meta(plan, &plan.name),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(plan)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                protocol: Some("TCP".into()),
                port: i32::from(plan.kind.external_port()),
                target_port: Some(IntOrString::Int(i32::from(plan.kind.container_port()))),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(PORT_NAME.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

/// The container's security context: non-root, read-only root filesystem, no privilege
/// escalation, no capabilities, the runtime's default seccomp profile.
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// The Deployment; `hash` goes into the pod template's [`CONFIG_HASH_ANNOTATION`].
pub fn deployment(plan: &ServicePlan, hash: &str) -> Deployment {
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..Default::default()
    }];
    if plan.kind == ServiceKind::VectorStore {
        volumes.push(Volume {
            name: "vectors".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "vectors".into(),
            mount_path: VECTOR_DATA_DIR.into(),
            ..Default::default()
        });
    }
    let container = Container {
        name: plan.kind.as_str().into(),
        image: Some(plan.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: i32::from(plan.kind.container_port()),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: plan.name.clone(),
                optional: None,
            }),
            ..Default::default()
        }]),
        env: Some(plan.env.clone()),
        liveness_probe: Some(probe("/healthz", 10)),
        readiness_probe: Some(probe("/readyz", 5)),
        resources: Some(plan.resources.clone()),
        security_context: Some(container_security_context()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let mut pod_labels = labels(plan);
    pod_labels.retain(|k, _| k != "app.kubernetes.io/managed-by");
    Deployment {
        metadata: meta(plan, &plan.name),
        spec: Some(DeploymentSpec {
            replicas: Some(plan.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(plan)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_string(),
                        hash.to_string(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(plan.name.clone()),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        fs_group: Some(RUN_AS),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `host:port` split for a Secret's `host`/`port` keys (MongoDB's default port when absent).
fn split_address(address: &str) -> (String, String) {
    match address.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => (h.to_string(), p.to_string()),
        _ => (address.to_string(), "27017".to_string()),
    }
}

/// The operator's database Secret for the service (`<k8s-name>-db`), or `None` when the spec
/// names its own. Keys: `host`, `port`, `dbname`, `username`, `password` — PgBouncer and the
/// login role for a PostgreSQL service, else mongodb-system and the MongoDB user — plus
/// `mongodb-uri` (mongodb-system, the service database) and `mongodb-tenant-uri`
/// (mongodb-tenant) for a MongoDB service.
pub fn database_secret(
    plan: &ServicePlan,
    endpoints: &Endpoints,
    password: &Hidden<String>,
) -> Option<Secret> {
    if !plan.operator_secret {
        return None;
    }
    let pw = password.expose();
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    data.insert("password".into(), pw.clone());
    if let Some(db) = plan.kind.mongo_database() {
        let user = service_user(db);
        let (host, port) = split_address(&endpoints.mongo_system_address);
        data.insert("host".into(), host);
        data.insert("port".into(), port);
        data.insert("dbname".into(), db.into());
        data.insert("username".into(), user.clone());
        data.insert(
            "mongodb-uri".into(),
            format!(
                "mongodb://{user}:{pw}@{}/{db}?authSource={db}",
                endpoints.mongo_system_address
            ),
        );
        data.insert(
            "mongodb-tenant-uri".into(),
            format!(
                "mongodb://{user}:{pw}@{}/?authSource=admin",
                endpoints.mongo_tenant_address
            ),
        );
    }
    // A PostgreSQL service's host/port/dbname/username describe PostgreSQL (through PgBouncer).
    if let Some(db) = plan.kind.postgres_database() {
        data.insert("host".into(), endpoints.pooler_host.clone());
        data.insert("port".into(), endpoints.pooler_port.to_string());
        data.insert("dbname".into(), db.into());
        data.insert("username".into(), service_user(db));
    }
    Some(Secret {
        metadata: meta(plan, &plan.database_secret),
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    })
}

/// What the Deployment says, as the DatabaseService reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub ready_replicas: i32,
    pub conditions: Vec<Cond>,
}

/// Derives readyReplicas and the Available / Progressing / Degraded conditions from the
/// Deployment (as in ClusterOperator status: Available = serving, Progressing = a rollout is
/// under way, Degraded = not in the desired state without progressing towards it).
pub fn observe(deployment: Option<&Deployment>, desired: i32) -> Observed {
    let Some(dep) = deployment else {
        return Observed {
            ready_replicas: 0,
            conditions: vec![
                Cond::new(AVAILABLE, false, "NotDeployed", "no Deployment yet"),
                Cond::new(PROGRESSING, true, "Deploying", "creating the Deployment"),
                Cond::new(DEGRADED, false, "AsExpected", ""),
            ],
        };
    };
    let st = dep.status.clone().unwrap_or_default();
    let conds = st.conditions.clone().unwrap_or_default();
    let cond = |t: &str| conds.iter().find(|c| c.type_ == t);
    let ready = st.ready_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let seen = match (dep.metadata.generation, st.observed_generation) {
        (Some(g), Some(o)) => o >= g,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let deadline = cond("Progressing")
        .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
    let replica_failure = cond("ReplicaFailure").filter(|c| c.status == "True");
    let counts = format!("{ready}/{desired} ready, {updated} updated, {available} available");

    let available_cond = if desired == 0 {
        Cond::new(
            AVAILABLE,
            true,
            "ScaledToZero",
            "replicas is 0: the objects are kept, no pod runs",
        )
    } else if let Some(c) = cond("Available") {
        Cond::new(
            AVAILABLE,
            c.status == "True",
            c.reason.as_deref().unwrap_or("DeploymentAvailable"),
            format!("{}; {counts}", c.message.as_deref().unwrap_or_default()),
        )
    } else if available >= desired {
        Cond::new(AVAILABLE, true, "ReplicasAvailable", counts.clone())
    } else {
        Cond::new(AVAILABLE, false, "WaitingForReplicas", counts.clone())
    };
    // A rollout is complete when the deployment controller says so (Progressing with
    // NewReplicaSetAvailable; a pod lost later does not reopen it), else by the counts.
    let rolled_out = seen && updated >= desired && total == updated;
    let complete = match cond("Progressing").and_then(|c| c.reason.as_deref()) {
        Some("NewReplicaSetAvailable") => rolled_out,
        Some(_) => false,
        None => rolled_out && available >= desired,
    };
    let progressing = if deadline {
        Cond::new(
            PROGRESSING,
            false,
            "ProgressDeadlineExceeded",
            cond("Progressing")
                .and_then(|c| c.message.clone())
                .unwrap_or_default(),
        )
    } else if complete {
        Cond::new(PROGRESSING, false, "RolloutComplete", counts.clone())
    } else {
        Cond::new(PROGRESSING, true, "RollingOut", counts.clone())
    };
    let degraded = if deadline {
        Cond::new(
            DEGRADED,
            true,
            "ProgressDeadlineExceeded",
            "the rollout made no progress within its deadline",
        )
    } else if let Some(c) = replica_failure {
        Cond::new(
            DEGRADED,
            true,
            "ReplicaFailure",
            c.message.clone().unwrap_or_default(),
        )
    } else if !progressing.ok && !available_cond.ok {
        Cond::new(DEGRADED, true, "Unavailable", counts)
    } else {
        Cond::new(DEGRADED, false, "AsExpected", "")
    };
    Observed {
        ready_replicas: ready,
        conditions: vec![available_cond, progressing, degraded],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let extra = plan_of(
            serde_json::json!({"service": "user-data", "env": [{"name": "X", "value": "1"}]}),
        );
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

    fn get(s: &Secret, k: &str) -> String {
        String::from_utf8(s.data.as_ref().unwrap()[k].0.clone()).unwrap()
    }

    #[test]
    fn the_database_secret_describes_the_service_logins() {
        let pw = Hidden::new("pw".to_string());
        let p = plan_of(serde_json::json!({"service": "user-data"}));
        let s = database_secret(&p, &endpoints(), &pw).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("user-data-service-db"));
        assert_eq!(get(&s, "host"), "pgbouncer");
        assert_eq!(get(&s, "port"), "6432");
        assert_eq!(get(&s, "dbname"), "system_users");
        assert_eq!(get(&s, "username"), "system_users_svc");
        assert_eq!(get(&s, "password"), "pw");
        assert!(!s.data.as_ref().unwrap().contains_key("mongodb-uri"));

        let p = plan_of(serde_json::json!({"service": "task-repo"}));
        let s = database_secret(&p, &endpoints(), &pw).unwrap();
        assert_eq!(get(&s, "username"), "task_repository_svc");
        assert_eq!(get(&s, "host"), "mongodb-system");
        assert_eq!(get(&s, "port"), "27018");
        assert_eq!(
            get(&s, "mongodb-uri"),
            "mongodb://task_repository_svc:pw@mongodb-system:27018/task_repository?authSource=task_repository"
        );
        assert_eq!(
            get(&s, "mongodb-tenant-uri"),
            "mongodb://task_repository_svc:pw@mongodb-tenant:27017/?authSource=admin"
        );

        let p = plan_of(serde_json::json!({"service": "management-system-repo"}));
        let s = database_secret(&p, &endpoints(), &pw).unwrap();
        assert_eq!(get(&s, "username"), "management_system_repository_svc");
        assert_eq!(get(&s, "host"), "pgbouncer");
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
            .map(|c| (c.type_, c.ok, c.reason.as_str()))
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
}
