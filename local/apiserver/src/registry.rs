//! The resource types served: the built-in ones and those defined by CustomResourceDefinitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::schema::StructuralSchema;

/// A printer column of `kubectl get` (a CRD's `additionalPrinterColumns` entry).
#[derive(Debug, Clone)]
pub struct Column {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// Optional format.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 = always shown, >0 = only with `-o wide`.
    pub priority: i64,
    /// The simple JSONPath evaluated against the object.
    pub json_path: String,
}

/// One served resource of one group version.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    /// API group (`""` for core).
    pub group: String,
    /// Version (`v1`, `v1alpha1`).
    pub version: String,
    /// Kind (`Tenant`).
    pub kind: String,
    /// Plural name used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories for kubectl (`kubectl get prismicx`).
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (the main endpoint then ignores `status`).
    pub has_status: bool,
    /// Printer columns (besides Name).
    pub columns: Vec<Column>,
    /// Schema of a custom resource's version.
    pub schema: Option<Arc<StructuralSchema>>,
    /// Defined by a CRD.
    pub custom: bool,
    /// The version objects are stored with (for a CRD: the storage version).
    pub storage_version: String,
}

impl ResourceDef {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage key: objects of every version of one group resource share one store.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Whether `metadata.generation` is maintained (custom resources and built-ins with a spec/status split).
    pub fn tracks_generation(&self) -> bool {
        self.custom || self.has_status
    }

    /// Discovery entries (`APIResource`) for this resource and its subresources.
    pub fn discovery(&self) -> Vec<Value> {
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut out = vec![main];
        if self.has_status {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

/// A group and a plural name: the identity of a store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
}

/// A built-in resource: namespaced, without `/status`, short names or printer columns until
/// the builder methods below add them.
fn builtin(group: &str, version: &str, kind: &str, plural: &str) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced: true,
        short_names: Vec::new(),
        categories: if matches!(plural, "pods" | "services" | "deployments") {
            vec!["all".into()]
        } else {
            vec![]
        },
        has_status: false,
        columns: Vec::new(),
        schema: None,
        custom: false,
        storage_version: version.into(),
    }
}

impl ResourceDef {
    fn cluster_scoped(mut self) -> Self {
        self.namespaced = false;
        self
    }

    fn with_status(mut self) -> Self {
        self.has_status = true;
        self
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Printer columns: (header, type, JSONPath).
    fn columns(mut self, columns: &[(&str, &str, &str)]) -> Self {
        self.columns = columns
            .iter()
            .map(|(name, type_, path)| Column {
                name: (*name).into(),
                type_: (*type_).into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                json_path: (*path).into(),
            })
            .collect();
        self
    }
}

/// The printer columns both Event groups share; the message column differs (`message`, `note`).
const EVENT_COLUMNS: [(&str, &str, &str); 2] =
    [("Type", "string", ".type"), ("Reason", "string", ".reason")];

const SERVICE_COLUMNS: [(&str, &str, &str); 2] = [
    ("Type", "string", ".spec.type"),
    ("Cluster-IP", "string", ".spec.clusterIP"),
];

const DEPLOYMENT_COLUMNS: [(&str, &str, &str); 3] = [
    ("Replicas", "integer", ".spec.replicas"),
    ("Ready", "integer", ".status.readyReplicas"),
    ("Available", "integer", ".status.availableReplicas"),
];

/// The built-in resources.
pub fn builtins() -> Vec<ResourceDef> {
    let phase = ("Status", "string", ".status.phase");
    let [event_type, event_reason] = EVENT_COLUMNS;
    // Events of both groups are separate stores here (the real server shares one).
    vec![
        builtin("", "v1", "Namespace", "namespaces")
            .cluster_scoped()
            .short(&["ns"])
            .with_status()
            .columns(&[phase]),
        builtin("", "v1", "Secret", "secrets").columns(&[("Type", "string", ".type")]),
        builtin("", "v1", "ConfigMap", "configmaps").short(&["cm"]),
        builtin("", "v1", "Service", "services")
            .short(&["svc"])
            .with_status()
            .columns(&SERVICE_COLUMNS),
        builtin("", "v1", "ServiceAccount", "serviceaccounts").short(&["sa"]),
        builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
            .short(&["pvc"])
            .with_status(),
        builtin("", "v1", "Event", "events")
            .short(&["ev"])
            .columns(&[event_type, event_reason, ("Message", "string", ".message")]),
        builtin("", "v1", "Pod", "pods")
            .short(&["po"])
            .with_status()
            .columns(&[phase]),
        builtin("apps", "v1", "Deployment", "deployments")
            .short(&["deploy"])
            .with_status()
            .columns(&DEPLOYMENT_COLUMNS),
        builtin("coordination.k8s.io", "v1", "Lease", "leases").columns(&[(
            "Holder",
            "string",
            ".spec.holderIdentity",
        )]),
        builtin("events.k8s.io", "v1", "Event", "events")
            .short(&["ev"])
            .columns(&[event_type, event_reason, ("Note", "string", ".note")]),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        )
        .cluster_scoped()
        .short(&["crd", "crds"])
        .with_status(),
    ]
}

/// The resources a CRD defines (one per served version), after checking the CRD.
pub fn from_crd(crd: &Value) -> ApiResult<Vec<ResourceDef>> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    let mut need = |ok: bool, field: &str| {
        if !ok {
            causes.push(Cause {
                field: field.into(),
                message: "Required value".into(),
                reason: "FieldValueRequired".into(),
            });
        }
    };
    need(!group.is_empty(), "spec.group");
    need(!plural.is_empty(), "spec.names.plural");
    need(!kind.is_empty(), "spec.names.kind");
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    need(!versions.is_empty(), "spec.versions");
    if causes.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause {
            field: "metadata.name".into(),
            message: format!(
                "Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
            ),
            reason: "FieldValueInvalid".into(),
        });
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            name,
            causes,
        ));
    }
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .or(versions.first())
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut defs = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let version = v["name"].as_str().unwrap_or_default();
        let schema_value = &v["schema"]["openAPIV3Schema"];
        let schema = if schema_value.is_object() {
            Some(Arc::new(StructuralSchema::compile(schema_value).map_err(
                |e| {
                    ApiError::invalid(
                        "apiextensions.k8s.io",
                        "CustomResourceDefinition",
                        name,
                        vec![Cause {
                            field: format!("spec.versions[{i}].schema.openAPIV3Schema"),
                            message: format!("Invalid value: {e}"),
                            reason: "FieldValueInvalid".into(),
                        }],
                    )
                },
            )?))
        } else {
            None
        };
        let columns = v["additionalPrinterColumns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| Column {
                        name: c["name"].as_str().unwrap_or_default().into(),
                        type_: c["type"].as_str().unwrap_or("string").into(),
                        format: c["format"].as_str().unwrap_or_default().into(),
                        description: c["description"].as_str().unwrap_or_default().into(),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        json_path: c["jsonPath"].as_str().unwrap_or_default().into(),
                    })
                    .collect()
            })
            .unwrap_or_else(|| {
                vec![Column {
                    name: "Age".into(),
                    type_: "date".into(),
                    format: String::new(),
                    description: String::new(),
                    priority: 0,
                    json_path: ".metadata.creationTimestamp".into(),
                }]
            });
        defs.push(ResourceDef {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced,
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            has_status: v["subresources"]["status"].is_object(),
            columns,
            schema,
            custom: true,
            storage_version: storage_version.clone(),
        });
    }
    Ok(defs)
}

/// All served resources, by group, version and plural.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    defs: BTreeMap<(String, String, String), Arc<ResourceDef>>,
}

impl Registry {
    /// A registry of the built-ins.
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        for d in builtins() {
            r.insert(d);
        }
        r
    }

    /// Adds or replaces a resource.
    pub fn insert(&mut self, def: ResourceDef) {
        self.defs.insert(
            (def.group.clone(), def.version.clone(), def.plural.clone()),
            Arc::new(def),
        );
    }

    /// Removes every version of a custom group resource.
    pub fn remove_custom(&mut self, group: &str, plural: &str) {
        self.defs
            .retain(|(g, _, p), d| !(g == group && p == plural && d.custom));
    }

    /// The resource `plural` in `group/version`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Resources of one group version, in name order.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.defs
            .values()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// Groups (without the core group) with their versions, the preferred (storage) version first.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.defs.values() {
            if d.group.is_empty() {
                continue;
            }
            let versions = out.entry(d.group.clone()).or_default();
            if !versions.contains(&d.version) {
                if d.version == d.storage_version {
                    versions.insert(0, d.version.clone());
                } else {
                    versions.push(d.version.clone());
                }
            }
        }
        out
    }

    /// Whether the group has any resource.
    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.defs.keys().any(|(g, v, _)| g == group && v == version)
    }
}
