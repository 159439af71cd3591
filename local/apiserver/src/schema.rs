//! Structural schemas of custom resources: pruning of unknown fields, defaulting, and validation
//! (through the `jsonschema` crate, after translating the OpenAPI v3 schema to JSON Schema).
//!
//! Honoured: `type`, `properties`, `items`, `additionalProperties`, `required`, `enum`, `pattern`,
//! `minimum`/`maximum` (with OpenAPI's boolean `exclusiveMinimum`/`exclusiveMaximum`),
//! `minLength`/`maxLength`, `minItems`/`maxItems`, `uniqueItems`, `multipleOf`,
//! `minProperties`/`maxProperties`, `allOf`/`anyOf`/`oneOf`/`not`, `nullable`, `default`,
//! `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource`. Ignored: `format`, every other `x-kubernetes-*` keyword,
//! and CEL rules (`x-kubernetes-validations`).

use serde_json::{Map, Value};

use crate::error::Cause;

/// A compiled CRD version schema.
pub struct StructuralSchema {
    raw: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for StructuralSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StructuralSchema")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

impl StructuralSchema {
    /// Compiles an `openAPIV3Schema`.
    pub fn compile(raw: &Value) -> Result<Self, String> {
        let translated = translate(raw);
        let validator = jsonschema::validator_for(&translated).map_err(|e| e.to_string())?;
        Ok(StructuralSchema {
            raw: raw.clone(),
            validator,
        })
    }

    /// The `openAPIV3Schema` as written in the CRD.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Drops fields the schema does not know (unless `x-kubernetes-preserve-unknown-fields`),
    /// and nulls of non-nullable fields, then applies `default`s, like the real server.
    pub fn prune_and_default(&self, obj: &mut Value) {
        prune(&self.raw, obj, true);
        default(&self.raw, obj);
    }

    /// Validation failures, with Kubernetes-style field paths.
    pub fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        for error in self.validator.iter_errors(obj) {
            let field = field_path(error.instance_path().as_str(), obj);
            let instance = error.instance().to_string();
            let cause = match error.kind() {
                jsonschema::error::ValidationErrorKind::Enum { options } => Cause {
                    field,
                    message: format!(
                        "Unsupported value: {instance}: supported values: {}",
                        options
                            .as_array()
                            .map(|o| o
                                .iter()
                                .map(|v| v.to_string())
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default()
                    ),
                    reason: "FieldValueNotSupported".into(),
                },
                jsonschema::error::ValidationErrorKind::Required { property } => Cause {
                    field: join_field(&field, property.as_str().unwrap_or_default()),
                    message: "Required value".into(),
                    reason: "FieldValueRequired".into(),
                },
                jsonschema::error::ValidationErrorKind::Type { .. } => Cause {
                    message: format!("Invalid value: {instance}: {error}"),
                    field,
                    reason: "FieldValueTypeInvalid".into(),
                },
                _ => Cause {
                    message: format!("Invalid value: {instance}: {error}"),
                    field,
                    reason: "FieldValueInvalid".into(),
                },
            };
            causes.push(cause);
        }
        causes
    }
}

fn join_field(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

/// `/spec/services/0` → `spec.services[0]` (indices where the instance has an array).
fn field_path(pointer: &str, root: &Value) -> String {
    let mut out = String::new();
    let mut cur = Some(root);
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        match cur {
            Some(Value::Array(items)) => {
                out.push_str(&format!("[{token}]"));
                cur = token.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&token);
                cur = other.and_then(|v| v.get(&token));
            }
        }
    }
    out
}

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn prune(schema: &Value, value: &mut Value, root: bool) {
    if is_true(schema, "x-kubernetes-int-or-string") {
        return;
    }
    let embedded = root || is_true(schema, "x-kubernetes-embedded-resource");
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if embedded && (key == "apiVersion" || key == "kind" || key == "metadata") {
                    if let Some(sub) = props.and_then(|p| p.get(&key)) {
                        if key != "metadata" {
                            if let Some(v) = map.get_mut(&key) {
                                prune(sub, v, false);
                            }
                        }
                    }
                    continue;
                }
                let sub = props.and_then(|p| p.get(&key)).or(match additional {
                    Some(s @ Value::Object(_)) => Some(s),
                    _ => None,
                });
                match sub {
                    Some(sub) => {
                        let nullable = is_true(sub, "nullable");
                        if map.get(&key).is_some_and(Value::is_null) && !nullable {
                            map.remove(&key);
                        } else if let Some(v) = map.get_mut(&key) {
                            prune(sub, v, false);
                        }
                    }
                    None => {
                        if !preserve && additional != Some(&Value::Bool(true)) {
                            map.remove(&key);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items {
                    prune(sub, item, false);
                }
            }
        }
        _ => {}
    }
}

fn default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in props {
                    if !map.contains_key(key) {
                        if let Some(d) = sub.get("default") {
                            map.insert(key.clone(), d.clone());
                        }
                    }
                    if let Some(v) = map.get_mut(key) {
                        default(sub, v);
                    }
                }
            }
            if let Some(sub @ Value::Object(_)) = schema.get("additionalProperties") {
                for v in map.values_mut() {
                    default(sub, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items {
                    default(sub, item);
                }
            }
        }
        _ => {}
    }
}

const KEPT: &[&str] = &[
    "required",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
    "minProperties",
    "maxProperties",
];

/// OpenAPI v3 (Kubernetes flavour) → JSON Schema 2020-12.
fn translate(schema: &Value) -> Value {
    let Some(src) = schema.as_object() else {
        return Value::Bool(true);
    };
    let mut out = Map::new();
    let nullable = is_true(schema, "nullable");
    let mut types: Vec<Value> = Vec::new();
    if is_true(schema, "x-kubernetes-int-or-string") {
        types.push("integer".into());
        types.push("string".into());
    } else if let Some(t) = src.get("type").and_then(Value::as_str) {
        types.push(t.into());
    }
    if !types.is_empty() {
        if nullable {
            types.push("null".into());
        }
        out.insert(
            "type".into(),
            if types.len() == 1 {
                types.remove(0)
            } else {
                Value::Array(types)
            },
        );
    }
    for key in KEPT {
        if let Some(v) = src.get(*key) {
            let mut v = v.clone();
            if *key == "enum" && nullable {
                if let Value::Array(a) = &mut v {
                    a.push(Value::Null);
                }
            }
            out.insert((*key).into(), v);
        }
    }
    for (bound, exclusive) in [
        ("minimum", "exclusiveMinimum"),
        ("maximum", "exclusiveMaximum"),
    ] {
        if let Some(limit) = src.get(bound) {
            if is_true(schema, exclusive) {
                out.insert(exclusive.into(), limit.clone());
            } else {
                out.insert(bound.into(), limit.clone());
            }
        }
    }
    if let Some(props) = src.get("properties").and_then(Value::as_object) {
        let translated: Map<String, Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), translate(v)))
            .collect();
        out.insert("properties".into(), Value::Object(translated));
    }
    if let Some(items) = src.get("items") {
        out.insert("items".into(), translate(items));
    }
    match src.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            out.insert("additionalProperties".into(), Value::Bool(*b));
        }
        Some(s @ Value::Object(_)) => {
            out.insert("additionalProperties".into(), translate(s));
        }
        _ => {}
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = src.get(key).and_then(Value::as_array) {
            out.insert(
                key.into(),
                Value::Array(list.iter().map(translate).collect()),
            );
        }
    }
    if let Some(not) = src.get("not") {
        out.insert("not".into(), translate(not));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn schema() -> StructuralSchema {
        StructuralSchema::compile(&json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "tier": {"type": "string", "enum": ["a", "b"], "default": "a"},
                        "size": {"type": "integer", "nullable": true, "minimum": 1},
                        "list": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "q": {"x-kubernetes-int-or-string": true}
                    }
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn prunes_defaults_and_validates() {
        let s = schema();
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"name": "n", "extra": 1, "list": [{"k": "v", "z": 2}], "free": {"any": {"thing": 1}}, "q": "10%"},
            "unknown": true
        });
        s.prune_and_default(&mut obj);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "labels": {"a": "b"}},
                "spec": {"name": "n", "tier": "a", "list": [{"k": "v"}], "free": {"any": {"thing": 1}}, "q": "10%"}
            })
        );
        assert!(s.validate(&obj).is_empty());

        let bad = json!({"spec": {"tier": "gold", "size": 0, "list": [{"k": 1}]}});
        let causes = s.validate(&bad);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"spec.tier"), "{causes:?}");
        assert!(fields.contains(&"spec.name"), "{causes:?}");
        assert!(fields.contains(&"spec.size"), "{causes:?}");
        assert!(fields.contains(&"spec.list[0].k"), "{causes:?}");
        let tier = causes.iter().find(|c| c.field == "spec.tier").unwrap();
        assert_eq!(tier.reason, "FieldValueNotSupported");
        assert!(tier.message.contains("\"gold\""));
        // nullable fields accept null
        assert!(s
            .validate(&json!({"spec": {"name": "n", "size": null}}))
            .is_empty());
    }
}
