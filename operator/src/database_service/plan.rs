//! Planning a DatabaseService (pure): the operator's settings of the deployed services
//! ([`Settings`], from the flags), validation of what the CRD's rules cannot check, and the
//! [`ServicePlan`] every builder reads — names, the ConfigMap's data, the container's env
//! (secret references, then `spec.env`), image, replicas and resources — and which Secret keys
//! that env references ([`secret_refs`], read by the reconciler for the config hash).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ResourceRequirements, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use prismicx_operator_api::database_service::{Durability, LogLevel, DEFAULT_STORAGE_SIZE};
use prismicx_operator_api::{DatabaseService, ServiceKind};

use crate::config::OperatorArgs;
use crate::dataplane::Endpoints;
use crate::error::Error;

/// Where vector-store keeps its vectors and indexes (its PersistentVolumeClaim's mount).
pub const VECTOR_DATA_DIR: &str = "/var/lib/prismicx/vectors";
/// The variable that tells vector-store [`VECTOR_DATA_DIR`].
pub const VECTOR_DATA_DIR_VAR: &str = "VECTOR_STORE_DATA_DIR";
/// vector-store's memory budget when neither `spec.vectorStore.memoryBudgetMb` nor a memory
/// limit says otherwise (the service's own default).
pub const DEFAULT_MEMORY_BUDGET_MB: u64 = 1024;

/// A service's persistent volume: the claim's name, size and StorageClass.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumePlan {
    /// `<k8s name>-data` (`vector-store-service-data`).
    pub claim: String,
    pub size: Quantity,
    /// `None`: the cluster's default StorageClass.
    pub storage_class: Option<String>,
}

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
    /// The PersistentVolumeClaim of a service with data on disk (vector-store); such a service
    /// runs at most one pod, replaced with the `Recreate` strategy (the volume is ReadWriteOnce).
    pub volume: Option<VolumePlan>,
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
    if spec.service == ServiceKind::VectorStore && spec.replicas > 1 {
        return Err(Error::InvalidSpec(format!(
            "spec.replicas: vector-store runs at most one replica (one writer owns its data \
             directory), not {}",
            spec.replicas
        )));
    }
    if spec.service != ServiceKind::VectorStore
        && (spec.storage.is_some() || spec.vector_store.is_some())
    {
        return Err(Error::InvalidSpec(
            "spec.storage and spec.vectorStore apply only to the vector-store service".into(),
        ));
    }
    if let Some(size) = spec.storage.as_ref().and_then(|s| s.size.as_ref()) {
        if quantity_bytes(size).is_none_or(|b| b == 0) {
            return Err(Error::InvalidSpec(format!(
                "spec.storage.size: {:?} is not a positive quantity (e.g. 10Gi)",
                size.0
            )));
        }
    }
    if spec
        .storage
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        == Some("")
    {
        return Err(Error::InvalidSpec(
            "spec.storage.storageClassName is empty; remove it to use the default StorageClass"
                .into(),
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
    let resources = spec.resources.clone().unwrap_or_else(default_resources);
    let volume = (kind == ServiceKind::VectorStore).then(|| vector_store_volume(ds));
    if kind == ServiceKind::VectorStore {
        vector_store_config(ds, &resources, &mut config);
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
        resources,
        volume,
    })
}

/// The name of a service's PersistentVolumeClaim: `<k8s name>-data`.
pub fn volume_claim_name(kind: ServiceKind) -> String {
    format!("{}-data", kind.k8s_name())
}

fn vector_store_volume(ds: &DatabaseService) -> VolumePlan {
    let storage = ds.spec.storage.clone().unwrap_or_default();
    VolumePlan {
        claim: volume_claim_name(ds.spec.service),
        size: storage
            .size
            .unwrap_or_else(|| Quantity(DEFAULT_STORAGE_SIZE.into())),
        storage_class: storage.storage_class_name,
    }
}

/// vector-store's settings in the ConfigMap: its data directory, memory budget (the spec's,
/// else three quarters of the memory limit, else [`DEFAULT_MEMORY_BUDGET_MB`]), durability and
/// the default tenant quotas the spec sets.
fn vector_store_config(
    ds: &DatabaseService,
    resources: &ResourceRequirements,
    config: &mut BTreeMap<String, String>,
) {
    let own = ds.spec.vector_store.clone().unwrap_or_default();
    config.insert(VECTOR_DATA_DIR_VAR.into(), VECTOR_DATA_DIR.into());
    let budget = own
        .memory_budget_mb
        .and_then(|mb| u64::try_from(mb).ok())
        .or_else(|| memory_limit_mib(resources).map(|mib| (mib * 3 / 4).max(16)))
        .unwrap_or(DEFAULT_MEMORY_BUDGET_MB);
    config.insert("VECTOR_STORE_MEMORY_BUDGET_MB".into(), budget.to_string());
    let durability = match own.durability.unwrap_or_default() {
        Durability::Fsync => "fsync",
        Durability::Relaxed => "relaxed",
    };
    config.insert("VECTOR_STORE_DURABILITY".into(), durability.into());
    let quota = own.default_quota.unwrap_or_default();
    for (var, value) in [
        ("VECTOR_STORE_MAX_COLLECTIONS", quota.max_collections),
        ("VECTOR_STORE_MAX_POINTS", quota.max_points),
        ("VECTOR_STORE_MAX_BYTES", quota.max_bytes),
    ] {
        if let Some(v) = value {
            config.insert(var.into(), v.to_string());
        }
    }
}

/// The container's memory limit in MiB, when it has one that parses.
fn memory_limit_mib(resources: &ResourceRequirements) -> Option<u64> {
    let limit = resources.limits.as_ref()?.get("memory")?;
    quantity_bytes(limit).map(|b| b / (1024 * 1024))
}

/// The whole bytes a Kubernetes quantity names (`10Gi`, `1.5Gi`, `512M`, `1073741824`); `None`
/// for what is not a non-negative number with a binary or decimal suffix (exponents and milli
/// units are not sizes anyone writes for memory or disks).
pub fn quantity_bytes(q: &Quantity) -> Option<u64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let factor: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        _ => return None,
    };
    match number.split_once('.') {
        None => number.parse::<u64>().ok()?.checked_mul(factor),
        Some((whole, fraction)) => {
            if whole.is_empty() && fraction.is_empty() {
                return None;
            }
            let value: f64 = number.parse().ok()?;
            let bytes = (value * factor as f64).floor();
            (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
        }
    }
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
