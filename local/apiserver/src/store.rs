//! The in-memory object store: CRUD with Kubernetes metadata semantics, deletion with
//! finalizers and owner-reference cascade, and the change feed watches read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use rand::Rng as _;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::error::{ApiError, ApiResult, Cause};
use crate::patch::{self, ManagerKey, PatchKind};
use crate::registry::{self, GroupResource, Registry, ResourceDef};
use crate::select::{FieldSelector, LabelSelector};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Updated (including a deletion that waits for finalizers).
    Modified,
    /// Removed.
    Deleted,
}

/// One entry of the change feed.
#[derive(Debug, Clone)]
pub struct Change {
    /// The store.
    pub gr: GroupResource,
    /// The resourceVersion the change got.
    pub rv: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (its last state for a deletion).
    pub object: Value,
    /// The object before the change (for Modified).
    pub old: Option<Value>,
}

#[derive(Debug, Default)]
struct Table {
    objects: BTreeMap<(String, String), Value>,
    history: VecDeque<Arc<Change>>,
    /// Every change with a resourceVersion up to this one has left the history.
    compacted: u64,
}

/// How a write was asked for.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// `fieldManager` (or a name derived from the user agent).
    pub manager: String,
}

/// `DeleteOptions` that matter here.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `Orphan`, `Background` or `Foreground` (the last two both delete dependents).
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// What a watch starts with.
#[derive(Debug)]
pub struct WatchStart {
    /// Events to send before the live ones.
    pub initial: Vec<Arc<Change>>,
    /// Live changes (of every resource; filter by `gr`).
    pub live: broadcast::Receiver<Arc<Change>>,
}

#[derive(Debug)]
struct Inner {
    rv: u64,
    registry: Registry,
    tables: HashMap<GroupResource, Table>,
    tx: broadcast::Sender<Arc<Change>>,
    history_limit: usize,
}

/// The shared store.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
}

/// Current time as Kubernetes writes it (`2024-05-01T10:00:00Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"][key].as_str()
}

fn key_of(obj: &Value) -> (String, String) {
    (
        meta_str(obj, "namespace").unwrap_or_default().to_string(),
        meta_str(obj, "name").unwrap_or_default().to_string(),
    )
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

fn random_suffix() -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// The object without the fields that do not count as a change: resourceVersion and
/// managedFields timestamps.
fn comparable(obj: &Value) -> Value {
    let mut c = obj.clone();
    if let Some(meta) = c.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            for e in entries {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    c
}

/// The object without what does not bump `generation`: metadata, and status when it is a
/// subresource.
fn spec_part(obj: &Value, has_status: bool) -> Value {
    let mut c = obj.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        if has_status {
            m.remove("status");
        }
    }
    c
}

impl Store {
    /// A store with the built-in resources, the `default` and `kube-system` namespaces, and a
    /// watch history of `history_limit` changes per resource.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(16_384);
        let store = Store {
            inner: Mutex::new(Inner {
                rv: 0,
                registry: Registry::with_builtins(),
                tables: HashMap::new(),
                tx,
                history_limit: history_limit.max(1),
            }),
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let def = store.def("", "v1", "namespaces");
            if let Some(def) = def {
                let _ = store.create(
                    &def,
                    None,
                    json!({"metadata": {"name": ns}}),
                    &WriteOpts {
                        manager: "prismicx-apiserver".into(),
                        ..WriteOpts::default()
                    },
                );
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The resource `plural` of `group/version`.
    pub fn def(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.lock().registry.get(group, version, plural)
    }

    /// A snapshot of the registry (for discovery).
    pub fn registry(&self) -> Registry {
        self.lock().registry.clone()
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Creates an object.
    pub fn create(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        inner.create(def, ns, body, opts, "Update")
    }

    /// Reads an object.
    pub fn get(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let inner = self.lock();
        inner.get(def, ns, name).map(|o| inner.present(def, o))
    }

    /// Lists objects (of one namespace or all) matching the selectors, with the collection's
    /// resourceVersion.
    pub fn list(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .tables
            .get(&def.group_resource())
            .map(|t| {
                t.objects
                    .values()
                    .filter(|o| ns.is_none_or(|n| meta_str(o, "namespace") == Some(n)))
                    .filter(|o| labels.matches(o) && fields.matches(o))
                    .map(|o| inner.present(def, o))
                    .collect()
            })
            .unwrap_or_default();
        (items, inner.rv)
    }

    /// Replaces an object (`PUT`), or its status (`PUT …/status`).
    pub fn update(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        status: bool,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        let sub = if status { "status" } else { "" };
        inner.write_existing(def, ns, name, sub, opts, false, |_| Ok(body))
    }

    /// Patches an object or its status. Server-side apply creates an absent object.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        status: bool,
        kind: PatchKind,
        body: &[u8],
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        let sub = if status { "status" } else { "" };
        if kind != PatchKind::Apply {
            return inner.write_existing(def, ns, name, sub, opts, false, |old| {
                let mut target = old.clone();
                patch::apply_patch(kind, &mut target, body)?;
                Ok(target)
            });
        }
        let applied: Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid apply configuration: {e}")))?;
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "the apply configuration must be an object",
            ));
        }
        if let Some(n) = meta_str(&applied, "name") {
            if n != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        if applied["kind"].as_str().is_none_or(str::is_empty)
            || applied["apiVersion"].as_str().is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "apply configurations must set apiVersion and kind",
            ));
        }
        let key = ManagerKey {
            manager: opts.manager.clone(),
            operation: "Apply",
            subresource: sub.into(),
        };
        if inner.get(def, ns, name).is_err() {
            if status {
                return Err(ApiError::not_found(&def.group, &def.plural, name));
            }
            let mut body = applied;
            meta_mut(&mut body).insert("name".into(), json!(name));
            return inner.create(def, ns, body, opts, "Apply");
        }
        let api_version = def.api_version();
        let exclude_status = def.has_status;
        inner.write_existing(def, ns, name, sub, opts, true, |old| {
            Ok(patch::server_side_apply(
                old,
                &applied,
                &key,
                &api_version,
                &now(),
                exclude_status,
            ))
        })
    }

    /// Deletes an object: at once, or (with finalizers) by setting `deletionTimestamp`.
    pub fn delete(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        inner.delete(def, ns, name, opts)
    }

    /// Deletes every matching object; returns the deleted (or deleting) objects.
    pub fn delete_collection(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        opts: &DeleteOpts,
    ) -> ApiResult<(Vec<Value>, u64)> {
        let mut inner = self.lock();
        let names: Vec<(String, String)> = inner
            .tables
            .get(&def.group_resource())
            .map(|t| {
                t.objects
                    .iter()
                    .filter(|(_, o)| ns.is_none_or(|n| meta_str(o, "namespace") == Some(n)))
                    .filter(|(_, o)| labels.matches(o) && fields.matches(o))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        for (n, name) in names {
            let nso = if def.namespaced {
                Some(n.as_str())
            } else {
                None
            };
            match inner.delete(def, nso, &name, opts) {
                Ok(o) => out.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok((out, inner.rv))
    }

    /// Starts a watch of `def` from `rv` (`None`/`0`: the current objects as ADDED first).
    pub fn watch(&self, def: &ResourceDef, rv: Option<&str>) -> ApiResult<WatchStart> {
        let inner = self.lock();
        let live = inner.tx.subscribe();
        let gr = def.group_resource();
        let table = inner.tables.get(&gr);
        let from = match rv.filter(|r| !r.is_empty() && *r != "0") {
            None => {
                let initial = table
                    .map(|t| {
                        t.objects
                            .values()
                            .map(|o| {
                                Arc::new(Change {
                                    gr: gr.clone(),
                                    rv: o["metadata"]["resourceVersion"]
                                        .as_str()
                                        .and_then(|r| r.parse().ok())
                                        .unwrap_or(0),
                                    kind: ChangeKind::Added,
                                    object: o.clone(),
                                    old: None,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(WatchStart { initial, live });
            }
            Some(r) => r
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {r:?}")))?,
        };
        let compacted = table.map(|t| t.compacted).unwrap_or(0);
        if from < compacted {
            return Err(ApiError::gone(format!(
                "too old resource version: {from} ({compacted})"
            )));
        }
        let initial = table
            .map(|t| t.history.iter().filter(|c| c.rv > from).cloned().collect())
            .unwrap_or_default();
        Ok(WatchStart { initial, live })
    }

    /// The object as served in `def`'s version.
    pub fn present(&self, def: &ResourceDef, obj: &Value) -> Value {
        self.lock().present(def, obj)
    }
}

impl Inner {
    fn present(&self, def: &ResourceDef, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(def.api_version());
        o["kind"] = json!(def.kind);
        o
    }

    fn table(&mut self, gr: &GroupResource) -> &mut Table {
        self.tables.entry(gr.clone()).or_default()
    }

    fn get(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> ApiResult<&Value> {
        self.tables
            .get(&def.group_resource())
            .and_then(|t| {
                t.objects
                    .get(&(ns.unwrap_or_default().to_string(), name.to_string()))
            })
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))
    }

    /// Stores (or removes) `obj`, assigning the next resourceVersion, and publishes the change.
    fn commit(
        &mut self,
        def: &ResourceDef,
        mut obj: Value,
        kind: ChangeKind,
        old: Option<Value>,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        obj["apiVersion"] = json!(if def.custom {
            if def.group.is_empty() {
                def.storage_version.clone()
            } else {
                format!("{}/{}", def.group, def.storage_version)
            }
        } else {
            def.api_version()
        });
        obj["kind"] = json!(def.kind);
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        let gr = def.group_resource();
        let limit = self.history_limit;
        let change = Arc::new(Change {
            gr: gr.clone(),
            rv,
            kind,
            object: obj.clone(),
            old,
        });
        let table = self.table(&gr);
        let key = key_of(&obj);
        if kind == ChangeKind::Deleted {
            table.objects.remove(&key);
        } else {
            table.objects.insert(key, obj.clone());
        }
        table.history.push_back(change.clone());
        while table.history.len() > limit {
            if let Some(dropped) = table.history.pop_front() {
                table.compacted = dropped.rv;
            }
        }
        let _ = self.tx.send(change);
        obj
    }

    fn namespace(&self, name: &str) -> Option<&Value> {
        self.tables
            .get(&GroupResource {
                group: String::new(),
                plural: "namespaces".into(),
            })
            .and_then(|t| t.objects.get(&(String::new(), name.to_string())))
    }

    /// Checks and normalises an object about to be written: names, Secret `stringData`,
    /// custom resource schemas, CRD definitions.
    fn prepare(&self, def: &ResourceDef, obj: &mut Value) -> ApiResult<()> {
        let name = meta_str(obj, "name").unwrap_or_default().to_string();
        let valid_name = if def.plural == "namespaces" {
            is_dns_label(&name)
        } else if def.plural == "events" || def.plural == "leases" {
            !name.is_empty() && !name.contains('/')
        } else {
            is_dns_subdomain(&name)
        };
        if !valid_name {
            return Err(ApiError::invalid(
                &def.group,
                &def.kind,
                &name,
                vec![Cause {
                    field: "metadata.name".into(),
                    message: format!(
                        "Invalid value: \"{name}\": a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                        if def.plural == "namespaces" { "label" } else { "subdomain" }
                    ),
                    reason: "FieldValueInvalid".into(),
                }],
            ));
        }
        if def.group.is_empty() && def.plural == "secrets" {
            if let Some(Value::Object(string_data)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                if !obj["data"].is_object() {
                    obj["data"] = json!({});
                }
                for (k, v) in string_data {
                    let s = v.as_str().unwrap_or_default();
                    obj["data"][k] =
                        json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()));
                }
            }
        }
        if let Some(schema) = &def.schema {
            schema.prune_and_default(obj);
            let causes = schema.validate(obj);
            if !causes.is_empty() {
                return Err(ApiError::invalid(&def.group, &def.kind, &name, causes));
            }
        }
        if def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions" {
            registry::from_crd(obj)?;
            let names = obj["spec"]["names"].clone();
            let storage: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v["storage"].as_bool() == Some(true))
                        .map(|v| v["name"].clone())
                        .collect()
                })
                .unwrap_or_default();
            let t = now();
            obj["status"] = json!({
                "acceptedNames": names,
                "storedVersions": storage,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": t},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": t},
                ],
            });
        }
        Ok(())
    }

    /// Keeps the registry in step with the stored CRDs.
    fn crd_changed(&mut self, crd: &Value, removed: bool) {
        let group = crd["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.registry.remove_custom(&group, &plural);
        if removed {
            let gr = GroupResource {
                group: group.clone(),
                plural: plural.clone(),
            };
            let objects: Vec<Value> = self
                .tables
                .get(&gr)
                .map(|t| t.objects.values().cloned().collect())
                .unwrap_or_default();
            if let Some(def) = objects.first().and_then(|_| {
                registry::from_crd(crd)
                    .ok()
                    .and_then(|d| d.into_iter().next())
            }) {
                for o in objects {
                    self.commit(&def, o, ChangeKind::Deleted, None);
                }
            }
            return;
        }
        if let Ok(defs) = registry::from_crd(crd) {
            for d in defs {
                self.registry.insert(d);
            }
        }
    }

    fn is_crd(def: &ResourceDef) -> bool {
        def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions"
    }

    fn create(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        mut body: Value,
        opts: &WriteOpts,
        operation: &'static str,
    ) -> ApiResult<Value> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        if let Some(kind) = body["kind"].as_str() {
            if !kind.is_empty() && kind != def.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind of the object ({kind}) does not match the resource ({})",
                    def.kind
                )));
            }
        }
        body["apiVersion"] = json!(def.api_version());
        body["kind"] = json!(def.kind);
        // The creator owns what it sent, not what the server defaults.
        let mut fields = patch::fields_of(&body);
        if let Some(m) = fields.as_object_mut() {
            m.remove("f:status");
        }
        let meta = meta_mut(&mut body);
        if def.namespaced {
            let Some(ns) = ns else {
                return Err(ApiError::bad_request(
                    "a namespaced object must be created in a namespace",
                ));
            };
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let has_name = meta
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let name = format!("{prefix}{}", random_suffix());
                    meta.insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &def.group,
                        &def.kind,
                        "",
                        vec![Cause {
                            field: "metadata.name".into(),
                            message: "Required value: name or generateName is required".into(),
                            reason: "FieldValueRequired".into(),
                        }],
                    ))
                }
            }
        }
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        if def.has_status {
            if let Some(m) = body.as_object_mut() {
                m.remove("status");
            }
        }
        if def.group.is_empty() {
            match def.plural.as_str() {
                "namespaces" => body["status"] = json!({"phase": "Active"}),
                "secrets" if !body["type"].is_string() => body["type"] = json!("Opaque"),
                "services" => self.default_service(&mut body),
                _ => {}
            }
        }
        self.prepare(def, &mut body)?;
        let (ns_key, name) = key_of(&body);
        if def.namespaced {
            match self.namespace(&ns_key) {
                None => return Err(ApiError::not_found("", "namespaces", &ns_key)),
                Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns_key} because it is being terminated",
                        def.plural
                    )))
                }
                _ => {}
            }
        }
        if self
            .tables
            .get(&def.group_resource())
            .is_some_and(|t| t.objects.contains_key(&(ns_key.clone(), name.clone())))
        {
            return Err(ApiError::already_exists(&def.group, &def.plural, &name));
        }
        let t = now();
        let meta = meta_mut(&mut body);
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(t));
        if def.tracks_generation() {
            meta.insert("generation".into(), json!(1));
        }
        let manager = if opts.manager.is_empty() {
            "unknown".to_string()
        } else {
            opts.manager.clone()
        };
        patch::record_fields(
            &mut body,
            &[],
            &ManagerKey {
                manager,
                operation,
                subresource: String::new(),
            },
            fields,
            &def.api_version(),
            &t,
            true,
        );
        if opts.dry_run {
            return Ok(self.present(def, &body));
        }
        let stored = self.commit(def, body, ChangeKind::Added, None);
        if Self::is_crd(def) {
            self.crd_changed(&stored, false);
        }
        Ok(self.present(def, &stored))
    }

    /// A Service gets `type: ClusterIP` and a made-up cluster IP (nothing routes to it).
    fn default_service(&self, svc: &mut Value) {
        if !svc["spec"].is_object() {
            svc["spec"] = json!({});
        }
        let spec = &mut svc["spec"];
        if !spec["type"].is_string() {
            spec["type"] = json!("ClusterIP");
        }
        if !spec["clusterIP"].is_string() && spec["type"] != "ExternalName" {
            let n = self.rv + 1;
            let ip = format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1);
            spec["clusterIP"] = json!(ip);
            spec["clusterIPs"] = json!([ip]);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_existing(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        sub: &str,
        opts: &WriteOpts,
        applied: bool,
        mutate: impl FnOnce(&Value) -> ApiResult<Value>,
    ) -> ApiResult<Value> {
        let old = self.get(def, ns, name)?.clone();
        let mut candidate = mutate(&self.present(def, &old))?;
        if !candidate.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let old_rv = meta_str(&old, "resourceVersion")
            .unwrap_or_default()
            .to_string();
        if let Some(rv) = meta_str(&candidate, "resourceVersion") {
            if !rv.is_empty() && rv != old_rv {
                return Err(ApiError::conflict(
                    &def.group,
                    &def.plural,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
        }
        if let Some(n) = meta_str(&candidate, "name") {
            if n != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        if let Some(kind) = candidate["kind"].as_str() {
            if !kind.is_empty() && kind != def.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind of the object ({kind}) does not match the resource ({})",
                    def.kind
                )));
            }
        }
        // Status subresource separation.
        let mut new = if sub == "status" {
            let mut n = old.clone();
            match candidate.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            n
        } else {
            if def.has_status {
                match old.get("status") {
                    Some(s) => candidate["status"] = s.clone(),
                    None => {
                        if let Some(m) = candidate.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            candidate
        };
        // System metadata comes from the stored object.
        let old_meta = old["metadata"].clone();
        let meta = meta_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => {
                    meta.insert(k.into(), v.clone());
                }
                None => {
                    meta.remove(k);
                }
            }
        }
        meta.remove("resourceVersion");
        if !applied {
            // (Server-side apply has recorded its own fields already.)
            meta.remove("managedFields");
            if let Some(mf) = old_meta.get("managedFields") {
                meta.insert("managedFields".into(), mf.clone());
            }
        }
        self.prepare(def, &mut new)?;
        if def.tracks_generation()
            && spec_part(&old, def.has_status) != spec_part(&new, def.has_status)
        {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if !applied {
            let mut changed = patch::changed_fields(&old, &new);
            if let Some(m) = changed.as_object_mut() {
                if sub == "status" {
                    m.retain(|k, _| k == "f:status");
                } else if def.has_status {
                    m.remove("f:status");
                }
            }
            if changed.as_object().is_some_and(|m| !m.is_empty()) {
                let entries = old["metadata"]["managedFields"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                patch::record_fields(
                    &mut new,
                    &entries,
                    &ManagerKey {
                        manager: opts.manager.clone(),
                        operation: "Update",
                        subresource: sub.into(),
                    },
                    changed,
                    &def.api_version(),
                    &now(),
                    false,
                );
            }
        }
        meta_mut(&mut new).insert("resourceVersion".into(), json!(old_rv));
        if comparable(&new) == comparable(&old) {
            return Ok(self.present(def, &old));
        }
        if opts.dry_run {
            return Ok(self.present(def, &new));
        }
        if new["metadata"]["deletionTimestamp"].is_string() && finalizers(&new).is_empty() {
            let removed = self.remove(def, new, Some(old), false);
            return Ok(self.present(def, &removed));
        }
        let stored = self.commit(def, new, ChangeKind::Modified, Some(old));
        if Self::is_crd(def) {
            self.crd_changed(&stored, false);
        }
        Ok(self.present(def, &stored))
    }

    /// Removes an object for good, then its dependents (unless orphaned) and a terminating
    /// namespace that is now empty.
    fn remove(&mut self, def: &ResourceDef, obj: Value, old: Option<Value>, orphan: bool) -> Value {
        let uid = meta_str(&obj, "uid").unwrap_or_default().to_string();
        let ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
        let removed = self.commit(def, obj, ChangeKind::Deleted, old);
        if Self::is_crd(def) {
            self.crd_changed(&removed, true);
        }
        if !orphan {
            for (dep_def, dep_ns, dep_name) in self.dependents(&uid) {
                let nso = if dep_def.namespaced {
                    Some(dep_ns.as_str())
                } else {
                    None
                };
                let _ = self.delete(&dep_def, nso, &dep_name, &DeleteOpts::default());
            }
        }
        if !ns.is_empty() {
            self.finish_namespace_if_empty(&ns);
        }
        if def.group.is_empty() && def.plural == "namespaces" {
            let name = meta_str(&removed, "name").unwrap_or_default().to_string();
            self.purge_namespace(&name);
        }
        removed
    }

    fn def_for(&self, gr: &GroupResource) -> Option<Arc<ResourceDef>> {
        let versions = self.registry.groups();
        if gr.group.is_empty() {
            return self.registry.get("", "v1", &gr.plural);
        }
        versions
            .get(&gr.group)
            .into_iter()
            .flatten()
            .find_map(|v| self.registry.get(&gr.group, v, &gr.plural))
    }

    /// Objects whose ownerReferences name `uid`.
    fn dependents(&self, uid: &str) -> Vec<(Arc<ResourceDef>, String, String)> {
        if uid.is_empty() {
            return vec![];
        }
        let mut out = Vec::new();
        for (gr, table) in &self.tables {
            for ((ns, name), o) in &table.objects {
                let owned = o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)));
                if owned {
                    if let Some(def) = self.def_for(gr) {
                        out.push((def, ns.clone(), name.clone()));
                    }
                }
            }
        }
        out
    }

    fn orphan_dependents(&mut self, uid: &str) {
        for (def, ns, name) in self.dependents(uid) {
            let nso = if def.namespaced {
                Some(ns.as_str())
            } else {
                None
            };
            let Ok(old) = self.get(&def, nso, &name).cloned() else {
                continue;
            };
            let mut new = old.clone();
            if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"].as_str() != Some(uid));
                if refs.is_empty() {
                    meta_mut(&mut new).remove("ownerReferences");
                }
            }
            self.commit(&def, new, ChangeKind::Modified, Some(old));
        }
    }

    fn objects_in_namespace(&self, ns: &str) -> Vec<(Arc<ResourceDef>, String)> {
        let mut out = Vec::new();
        for (gr, table) in &self.tables {
            for (n, name) in table.objects.keys() {
                if n == ns {
                    if let Some(def) = self.def_for(gr) {
                        out.push((def, name.clone()));
                    }
                }
            }
        }
        out
    }

    fn finish_namespace_if_empty(&mut self, ns: &str) {
        let terminating = self
            .namespace(ns)
            .is_some_and(|n| n["metadata"]["deletionTimestamp"].is_string());
        if terminating && self.objects_in_namespace(ns).is_empty() {
            if let Some(def) = self.registry.get("", "v1", "namespaces") {
                if let Some(obj) = self.namespace(ns).cloned() {
                    self.remove(&def, obj, None, false);
                }
            }
        }
    }

    /// Objects left in a removed namespace (registry changes can leave some) go too.
    fn purge_namespace(&mut self, ns: &str) {
        for (def, name) in self.objects_in_namespace(ns) {
            if let Ok(obj) = self.get(&def, Some(ns), &name).cloned() {
                self.commit(&def, obj, ChangeKind::Deleted, None);
            }
        }
    }

    fn delete(
        &mut self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let old = self.get(def, ns, name)?.clone();
        let conflict = |why: &str| Err(ApiError::conflict(&def.group, &def.plural, name, why));
        if let Some(uid) = &opts.uid {
            if meta_str(&old, "uid") != Some(uid.as_str()) {
                return conflict(&format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or_default()
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            if meta_str(&old, "resourceVersion") != Some(rv.as_str()) {
                return conflict(
                    "the object has been modified; please apply your changes to the latest version and try again",
                );
            }
        }
        if opts.dry_run {
            return Ok(self.present(def, &old));
        }
        let orphan = opts.propagation.as_deref() == Some("Orphan");
        let uid = meta_str(&old, "uid").unwrap_or_default().to_string();
        if orphan {
            self.orphan_dependents(&uid);
        }
        let is_namespace = def.group.is_empty() && def.plural == "namespaces";
        if is_namespace {
            if !old["metadata"]["deletionTimestamp"].is_string() {
                let mut new = old.clone();
                meta_mut(&mut new).insert("deletionTimestamp".into(), json!(now()));
                new["status"] = json!({"phase": "Terminating"});
                self.commit(def, new, ChangeKind::Modified, Some(old.clone()));
            }
            for (d, n) in self.objects_in_namespace(name) {
                let _ = self.delete(&d, Some(name), &n, &DeleteOpts::default());
            }
            self.finish_namespace_if_empty(name);
            let now_obj = self.get(def, None, name).cloned().unwrap_or(old);
            return Ok(self.present(def, &now_obj));
        }
        if !finalizers(&old).is_empty() {
            if old["metadata"]["deletionTimestamp"].is_string() {
                return Ok(self.present(def, &old));
            }
            let mut new = old.clone();
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            let stored = self.commit(def, new, ChangeKind::Modified, Some(old));
            return Ok(self.present(def, &stored));
        }
        let removed = self.remove(def, old, None, orphan);
        Ok(self.present(def, &removed))
    }
}
