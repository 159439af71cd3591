//! The `DatabaseService` resource: one of the six services, deployed by the operator with its
//! database bindings.

// `printcolumn(name = …, type_ = …)` repeats keys by design; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tenant::VectorStoreLimitsSpec;
use crate::ServiceKind;

/// One of the platform's six services, deployed from this workspace's images.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "prismicx.io",
    version = "v1alpha1",
    kind = "DatabaseService",
    plural = "databaseservices",
    shortname = "dbsvc",
    category = "prismicx",
    namespaced,
    cel,
    status = "DatabaseServiceStatus",
    doc = "One of the six PrismicX services; the operator runs it as a Deployment with its Service, ServiceAccount, ConfigMap and database bindings.",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.service != 'vector-store' || self.replicas <= 1").message("vector-store runs at most one replica: one writer owns its data directory"))]
#[x_kube(validation = Rule::new("(!has(self.storage) && !has(self.vectorStore)) || self.service == 'vector-store'").message("spec.storage and spec.vectorStore apply only to the vector-store service"))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseServiceSpec {
    /// Which service this is. Fixed at creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.service cannot change; create another DatabaseService"))]
    pub service: ServiceKind,

    /// Container image; defaults to the operator's image for this service and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Pods to run (vector-store: 0 or 1, since one process owns its data directory).
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 50").message("replicas must be between 0 and 50"))]
    pub replicas: i32,

    /// The service's `*_LOG_LEVEL`.
    #[serde(default)]
    pub log_level: LogLevel,

    /// The Secret key holding the platform API key (`API_KEY`).
    pub api_key_secret: SecretKeyRef,

    /// Database credentials of the service: a Secret with the keys host, port, dbname, username,
    /// password (PostgreSQL services) and mongodb-uri, mongodb-tenant-uri (MongoDB services).
    /// Default: the Secret `<k8s name>-db` (e.g. `user-data-service-db`) the operator creates
    /// with a login of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_secret: Option<String>,

    /// Compute resources of the service container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Extra environment variables (overriding the operator's for the same name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// vector-store only: the PersistentVolumeClaim holding its vectors and indexes (default:
    /// 10Gi of the cluster's default StorageClass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// vector-store only: its memory budget, durability and default tenant quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_store: Option<VectorStoreSpec>,
}

/// The size of the vector-store's volume when `spec.storage.size` is unset.
pub const DEFAULT_STORAGE_SIZE: &str = "10Gi";

/// A service's persistent volume (a ReadWriteOnce PersistentVolumeClaim the DatabaseService
/// owns: deleting the DatabaseService deletes the claim, and the StorageClass's reclaim policy
/// decides what happens to the volume).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested capacity (default `10Gi`). It can grow when the StorageClass allows volume
    /// expansion; it never shrinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// The claim's StorageClass; unset: the cluster's default. Fixed once the claim exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.storage.storageClassName cannot change once set"))]
    pub storage_class_name: Option<String>,
}

/// How vector-store makes writes durable (`VECTOR_STORE_DURABILITY`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every acknowledged write is on disk (fsync before the answer).
    #[default]
    Fsync,
    /// Writes reach the disk shortly after the answer; a crash may lose the last ones.
    Relaxed,
}

/// vector-store's own settings; each unset field takes the service's default.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VectorStoreSpec {
    /// Memory for indexes in MiB (`VECTOR_STORE_MEMORY_BUDGET_MB`); unset: three quarters of
    /// the container's memory limit, or 1024 without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 16 && self <= 1048576").message("vectorStore.memoryBudgetMb must be between 16 and 1048576"))]
    pub memory_budget_mb: Option<i64>,
    /// `fsync` (default) or `relaxed` (`VECTOR_STORE_DURABILITY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
    /// The quota of a tenant without its own (`VECTOR_STORE_MAX_COLLECTIONS`, `_MAX_POINTS`,
    /// `_MAX_BYTES`); a Tenant's `spec.limits.vectorStore` overrides each field it sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_quota: Option<VectorStoreLimitsSpec>,
}

fn one() -> i32 {
    1
}

/// A key in a Secret of the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key within the Secret.
    pub key: String,
}

/// Log levels the services understand.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Error,
    Warning,
    #[default]
    Info,
    Debug,
}

/// The deployment as the operator last saw it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseServiceStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Available, Progressing, Degraded.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Hash of the configuration and Secrets in the pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;

    fn svc(spec: serde_json::Value) -> DatabaseService {
        DatabaseService {
            metadata: ObjectMeta {
                name: Some("user-data".into()),
                ..Default::default()
            },
            spec: serde_json::from_value(spec).unwrap(),
            status: None,
        }
    }

    #[test]
    fn service_is_fixed_and_replicas_bounded() {
        let base = serde_json::json!({"service": "user-data", "apiKeySecret": {"name": "platform", "key": "api-key"}});
        let a = svc(base.clone());
        assert_eq!(a.spec.replicas, 1);
        assert_eq!(a.spec.log_level, LogLevel::Info);
        assert!(a.validate_cel().is_ok());
        let mut b = base.clone();
        b["service"] = "task-repo".into();
        assert!(svc(b).validate_cel_update(&a).is_err());
        let mut c = base;
        c["replicas"] = 51.into();
        assert!(svc(c).validate_cel().is_err());
    }

    #[test]
    fn vector_store_runs_one_replica_and_only_it_has_storage() {
        let vectors = serde_json::json!({"service": "vector-store", "apiKeySecret": {"name": "platform", "key": "api-key"}});
        assert!(svc(vectors.clone()).validate_cel().is_ok());
        let mut two = vectors.clone();
        two["replicas"] = 2.into();
        assert!(svc(two).validate_cel().is_err());
        let mut with_storage = vectors.clone();
        with_storage["storage"] = serde_json::json!({"size": "20Gi", "storageClassName": "fast"});
        with_storage["vectorStore"] =
            serde_json::json!({"memoryBudgetMb": 512, "durability": "relaxed"});
        let stored = svc(with_storage.clone());
        assert!(stored.validate_cel().is_ok());
        let mut other_class = with_storage.clone();
        other_class["storage"]["storageClassName"] = "slow".into();
        assert!(svc(other_class).validate_cel_update(&stored).is_err());
        let mut too_small = with_storage.clone();
        too_small["vectorStore"]["memoryBudgetMb"] = 1.into();
        assert!(svc(too_small).validate_cel().is_err());
        let mut too_many = with_storage;
        too_many["vectorStore"]["defaultQuota"] = serde_json::json!({"maxCollections": 10001});
        assert!(svc(too_many).validate_cel().is_err());
        let mut elsewhere = vectors;
        elsewhere["service"] = "user-data".into();
        elsewhere["storage"] = serde_json::json!({"size": "1Gi"});
        assert!(svc(elsewhere).validate_cel().is_err());
    }
}
