//! Patches and field management.
//!
//! - JSON merge patch (RFC 7386) and JSON patch (RFC 6902) through the `json-patch` crate.
//! - Strategic merge patch is approximated as a merge patch (its `$patch`/`$setElementOrder`/
//!   `$retainKeys`/`$deleteFromPrimitiveList` directives are dropped; lists are replaced).
//! - Server-side apply is approximated: the applied configuration is merged into the live object
//!   (maps merge recursively, lists and scalars are replaced), and fields the same manager
//!   applied before but omits now are removed unless another manager also claims them. Ownership
//!   is kept in `metadata.managedFields` (`FieldsV1`, lists treated as atomic). There are never
//!   ownership conflicts: every apply behaves as if `force=true`.

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};

/// The patch flavours of `PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (or `+json`, `+cbor` is not supported)
    Apply,
}

impl PatchKind {
    /// From the request's `Content-Type`.
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Ok(PatchKind::Apply)
            }
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
            ))),
        }
    }
}

/// Applies a merge or JSON patch (or a strategic merge patch, as a merge patch) to `target`.
pub fn apply_patch(kind: PatchKind, target: &mut Value, body: &[u8]) -> ApiResult<()> {
    match kind {
        PatchKind::Merge | PatchKind::Strategic => {
            let mut patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch body: {e}")))?;
            if kind == PatchKind::Strategic {
                strip_directives(&mut patch);
            }
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchKind::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let rejected = |e: String| {
                let mut err = ApiError::invalid("", "", "", vec![]);
                err.message =
                    format!("the server rejected our request due to an error in our request: {e}");
                err.details = None;
                err
            };
            for op in patch.0 {
                // As on the real server, `test` of `null` passes on a missing path.
                if let json_patch::PatchOperation::Test(t) = &op {
                    if t.value.is_null() {
                        match target.pointer(t.path.as_str()) {
                            None | Some(Value::Null) => continue,
                            Some(_) => {
                                return Err(rejected(format!(
                                    "testing value {} failed: not null",
                                    t.path.as_str()
                                )))
                            }
                        }
                    }
                }
                json_patch::patch(target, &json_patch::Patch(vec![op]))
                    .map_err(|e| rejected(e.to_string()))?;
            }
            Ok(())
        }
        PatchKind::Apply => Err(ApiError::internal("apply is not a plain patch")),
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            for child in map.values_mut() {
                strip_directives(child);
            }
        }
        Value::Array(items) => {
            items.retain(|i| !(i.is_object() && i.get("$patch").is_some()));
            for child in items {
                strip_directives(child);
            }
        }
        _ => {}
    }
}

/// Recursive merge of an applied configuration: maps merge, `null` removes, the rest replaces.
pub fn apply_merge(target: &mut Value, applied: &Value) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, v) in a {
                if v.is_null() {
                    t.remove(k);
                } else if let Some(existing) = t.get_mut(k) {
                    if existing.is_object() && v.is_object() {
                        apply_merge(existing, v);
                    } else {
                        *existing = v.clone();
                    }
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// The metadata fields whose ownership is tracked.
const OWNED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The `FieldsV1` set of the fields present in `v` (lists are leaves).
pub fn fields_of(v: &Value) -> Value {
    let mut set = Map::new();
    if let Value::Object(map) = v {
        for (k, child) in map {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                let mut meta = Map::new();
                for mk in OWNED_METADATA {
                    if let Some(mv) = child.get(*mk) {
                        meta.insert(format!("f:{mk}"), leaf_or_tree(mv));
                    }
                }
                if !meta.is_empty() {
                    set.insert("f:metadata".into(), Value::Object(meta));
                }
                continue;
            }
            set.insert(format!("f:{k}"), leaf_or_tree(child));
        }
    }
    Value::Object(set)
}

fn leaf_or_tree(v: &Value) -> Value {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut set = Map::new();
            for (k, child) in m {
                set.insert(format!("f:{k}"), leaf_or_tree(child));
            }
            Value::Object(set)
        }
        // An empty map: the map itself, none of its keys.
        Value::Object(_) => json!({".": {}}),
        _ => json!({}),
    }
}

/// The set of fields that differ between `old` and `new` (present in `new`).
pub fn changed_fields(old: &Value, new: &Value) -> Value {
    let full = fields_of(new);
    let mut out = Map::new();
    diff_into(&full, old, new, &mut out);
    Value::Object(out)
}

fn diff_into(set: &Value, old: &Value, new: &Value, out: &mut Map<String, Value>) {
    let Some(set) = set.as_object() else { return };
    for (fk, sub) in set {
        let k = fk.trim_start_matches("f:");
        let (o, n) = (old.get(k), new.get(k));
        if o == n {
            continue;
        }
        let is_tree = sub.as_object().is_some_and(|m| !m.is_empty());
        if is_tree && o.is_some_and(Value::is_object) {
            let mut child = Map::new();
            diff_into(
                sub,
                o.unwrap_or(&Value::Null),
                n.unwrap_or(&Value::Null),
                &mut child,
            );
            if !child.is_empty() {
                out.insert(fk.clone(), Value::Object(child));
            }
        } else {
            out.insert(fk.clone(), sub.clone());
        }
    }
}

/// Adds every field of `b` to `a`.
pub fn set_union(a: &mut Value, b: &Value) {
    let (Some(am), Some(bm)) = (a.as_object_mut(), b.as_object()) else {
        return;
    };
    for (k, bv) in bm {
        match am.get_mut(k) {
            Some(av) => {
                let a_leaf = av.as_object().is_none_or(Map::is_empty);
                let b_leaf = bv.as_object().is_none_or(Map::is_empty);
                if b_leaf && !a_leaf {
                    *av = json!({});
                } else if !a_leaf {
                    set_union(av, bv);
                }
            }
            None => {
                am.insert(k.clone(), bv.clone());
            }
        }
    }
}

/// Removes from `a` the fields `b` covers.
pub fn set_subtract(a: &mut Value, b: &Value) {
    let (Some(am), Some(bm)) = (a.as_object_mut(), b.as_object()) else {
        return;
    };
    let keys: Vec<String> = am.keys().cloned().collect();
    for k in keys {
        let Some(bv) = bm.get(&k) else { continue };
        let b_leaf = bv.as_object().is_none_or(Map::is_empty);
        let a_leaf = am
            .get(&k)
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if b_leaf {
            am.remove(&k);
        } else if !a_leaf {
            if let Some(av) = am.get_mut(&k) {
                set_subtract(av, bv);
                if av.as_object().is_some_and(Map::is_empty) {
                    am.remove(&k);
                }
            }
        }
    }
}

/// Whether `set` covers the field at `path` (`["f:spec", "f:x"]`).
fn set_covers(set: &Value, path: &[String]) -> bool {
    let mut cur = set;
    for p in path {
        match cur.as_object() {
            Some(m) if m.is_empty() => return true,
            Some(m) => match m.get(p) {
                Some(next) => cur = next,
                None => return false,
            },
            None => return false,
        }
    }
    true
}

fn leaf_paths(set: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match set.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, v) in m {
                prefix.push(k.clone());
                leaf_paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.push(prefix.clone());
            }
        }
    }
}

fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if last == "." {
        return;
    }
    let mut cur = obj;
    for p in parents {
        match cur.get_mut(p.trim_start_matches("f:")) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last.trim_start_matches("f:"));
    }
}

/// One `managedFields` entry's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerKey {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: &'static str,
    /// `""` or `status`.
    pub subresource: String,
}

fn entry_matches(e: &Value, key: &ManagerKey) -> bool {
    e["manager"].as_str() == Some(key.manager.as_str())
        && e["operation"].as_str() == Some(key.operation)
        && e["subresource"].as_str().unwrap_or_default() == key.subresource
}

/// Server-side apply of `applied` onto the live object `live` (see the module docs); also
/// records the manager's fields. For the status subresource (`key.subresource == "status"`)
/// only `status` is owned; with `exclude_status` (main endpoint of a resource with a status
/// subresource) `status` is not.
pub fn server_side_apply(
    live: &Value,
    applied: &Value,
    key: &ManagerKey,
    api_version: &str,
    now: &str,
    exclude_status: bool,
) -> Value {
    let mut new = live.clone();
    let mut new_set = fields_of(applied);
    if let Some(m) = new_set.as_object_mut() {
        if key.subresource == "status" {
            m.retain(|k, _| k == "f:status");
        } else if exclude_status {
            m.remove("f:status");
        }
    }
    let entries: Vec<Value> = live["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let previous = entries
        .iter()
        .find(|e| entry_matches(e, key))
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_else(|| json!({}));
    let mut stale = Vec::new();
    leaf_paths(&previous, &mut Vec::new(), &mut stale);
    for path in stale {
        if set_covers(&new_set, &path) {
            continue;
        }
        let shared = entries
            .iter()
            .filter(|e| !entry_matches(e, key))
            .any(|e| set_covers(&e["fieldsV1"], &path));
        if !shared {
            remove_path(&mut new, &path);
        }
    }
    apply_merge(&mut new, applied);
    record_fields(&mut new, &entries, key, new_set, api_version, now, true);
    new
}

/// Records that `key` now owns `fields` (replacing its set when `replace`, else adding to it),
/// taking them away from every other manager.
pub fn record_fields(
    obj: &mut Value,
    entries: &[Value],
    key: &ManagerKey,
    fields: Value,
    api_version: &str,
    now: &str,
    replace: bool,
) {
    let mut out = Vec::new();
    let mut own = None;
    for e in entries {
        if entry_matches(e, key) {
            own = Some(e["fieldsV1"].clone());
            continue;
        }
        let mut e = e.clone();
        set_subtract(&mut e["fieldsV1"], &fields);
        if e["fieldsV1"].as_object().is_some_and(|m| !m.is_empty()) {
            out.push(e);
        }
    }
    let set = match (replace, own) {
        (false, Some(mut prev)) => {
            set_union(&mut prev, &fields);
            prev
        }
        _ => fields,
    };
    if set.as_object().is_some_and(|m| !m.is_empty()) {
        let mut entry = json!({
            "manager": key.manager,
            "operation": key.operation,
            "apiVersion": api_version,
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": set,
        });
        if !key.subresource.is_empty() {
            entry["subresource"] = json!(key.subresource);
        }
        out.push(entry);
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if out.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(out));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(m: &str) -> ManagerKey {
        ManagerKey {
            manager: m.into(),
            operation: "Apply",
            subresource: String::new(),
        }
    }

    /// Applies `applied` to `live` as `manager` (apiVersion v1, status included).
    fn apply_as(manager: &str, live: &Value, applied: Value) -> Value {
        server_side_apply(live, &applied, &key(manager), "v1", "now", false)
    }

    #[test]
    fn apply_removes_fields_the_manager_dropped() {
        let live = json!({"metadata": {"name": "x"}, "data": {"a": "1"}});
        let v1 = apply_as("m", &live, json!({"data": {"a": "1", "b": "2"}}));
        assert_eq!(v1["data"], json!({"a": "1", "b": "2"}));
        let v2 = apply_as("m", &v1, json!({"data": {"a": "1"}}));
        assert_eq!(v2["data"], json!({"a": "1"}));
        // Another manager's field survives.
        let v3 = apply_as("o", &v2, json!({"data": {"c": "3"}}));
        let v4 = apply_as("m", &v3, json!({"data": {}}));
        assert_eq!(v4["data"], json!({"c": "3"}));
    }

    #[test]
    fn strategic_directives_are_dropped() {
        let mut target = json!({"spec": {"a": [1, 2], "b": 1}});
        apply_patch(
            PatchKind::Strategic,
            &mut target,
            br#"{"spec": {"$setElementOrder/a": [1], "a": [1], "$retainKeys": ["a"]}}"#,
        )
        .unwrap();
        assert_eq!(target, json!({"spec": {"a": [1], "b": 1}}));
    }

    #[test]
    fn changed_fields_only_lists_differences() {
        let old = json!({"spec": {"a": 1, "b": {"c": 2, "d": 3}}});
        let new = json!({"spec": {"a": 1, "b": {"c": 5, "d": 3}}, "extra": true});
        assert_eq!(
            changed_fields(&old, &new),
            json!({"f:spec": {"f:b": {"f:c": {}}}, "f:extra": {}})
        );
    }
}
