//! The `DatabaseService` resource: one of the six services, deployed by the operator with its
//! database bindings.

// `printcolumn(name = …, type_ = …)` repeats keys by design; clippy reads them as duplicates.
#![allow(clippy::duplicated_attributes)]
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
#[serde(rename_all = "camelCase")]
pub struct DatabaseServiceSpec {
    /// Which service this is. Fixed at creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.service cannot change; create another DatabaseService"))]
    pub service: ServiceKind,

    /// Container image; defaults to the operator's image for this service and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Pods to run.
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
}
