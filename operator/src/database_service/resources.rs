//! The objects a DatabaseService owns, built from its plan (pure): ConfigMap, ServiceAccount,
//! Service, Deployment, the operator's database Secret and, for vector-store, its
//! PersistentVolumeClaim, each with the same labels and a controller reference to the
//! DatabaseService.
//!
//! ```text
//! ServicePlan (+ config hash) ──► config_map, service_account, service, deployment
//! ServicePlan ──► volume_claim (vector-store: its data directory)
//! ServicePlan + Endpoints + password ──► database_secret
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, Secret, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::ObjectMeta;
use prismicx_store::Secret as Hidden;

use super::plan::{service_user, ServicePlan, VECTOR_DATA_DIR};
use crate::dataplane::Endpoints;

/// The pod-template annotation holding [`config_hash`]; a new value rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "prismicx.io/config-hash";
/// User and group the containers run as (the distroless `nonroot` ids).
pub const RUN_AS: i64 = 65532;
/// The name of the container port (Service `targetPort`, probes).
pub const PORT_NAME: &str = "http";

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
    if let Some(volume) = &plan.volume {
        volumes.push(Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: volume.claim.clone(),
                read_only: None,
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "data".into(),
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
            // A ReadWriteOnce volume has one writer: the old pod goes before the new one starts.
            strategy: plan.volume.as_ref().map(|_| DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
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

/// The service's PersistentVolumeClaim (ReadWriteOnce, the plan's size and StorageClass), or
/// `None` for a service without data on disk. Owned by the DatabaseService like every other
/// object: deleting the DatabaseService deletes the claim.
pub fn volume_claim(plan: &ServicePlan) -> Option<PersistentVolumeClaim> {
    let volume = plan.volume.as_ref()?;
    Some(PersistentVolumeClaim {
        metadata: meta(plan, &volume.claim),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: volume.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    volume.size.clone(),
                )])),
                limits: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// `host:port` split for a Secret's `host`/`port` keys (MongoDB's default port when absent).
pub(super) fn split_address(address: &str) -> (String, String) {
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
    Some(crate::tenant::secret::opaque(
        meta(plan, &plan.database_secret),
        data,
    ))
}
