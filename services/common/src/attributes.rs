//! Extensible attributes (a JSON object clients attach to a resource) with the same limits in
//! every service that uses them, and RFC 7396 merge patches to change them.

use serde_json::{Map, Value};

use crate::FieldError;

pub const MAX_ATTRIBUTE_KEYS: usize = 64;
pub const MAX_ATTRIBUTE_DEPTH: usize = 5;
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// Whether `k` may name an attribute: a letter, then letters, digits or `_`, 64 at most.
pub fn valid_attribute_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && k.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The error of an attribute key [`valid_attribute_key`] refuses.
pub fn invalid_key(k: &str) -> FieldError {
    FieldError::new(
        format!("attributes.{k}"),
        "keys must start with a letter and contain only letters, digits and _ (at most 64)",
    )
}

/// How deeply `v` nests (a scalar is 0).
pub fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Validates an attributes object; errors name the offending key (`attributes.<key>`).
pub fn validate_attributes(v: &Value, errors: &mut Vec<FieldError>) {
    validate_attributes_with(v, errors, |k, val, errors| {
        if !valid_attribute_key(k) {
            errors.push(invalid_key(k));
        }
        if depth(val) >= MAX_ATTRIBUTE_DEPTH {
            errors.push(FieldError::new(
                format!("attributes.{k}"),
                format!("nests deeper than {MAX_ATTRIBUTE_DEPTH} levels"),
            ));
        }
    });
}

/// The limits of an attributes object as a whole (a JSON object of at most
/// [`MAX_ATTRIBUTE_KEYS`] keys and [`MAX_ATTRIBUTES_BYTES`] bytes), with `entry` checking each
/// key and its value: for a service whose store has rules of its own for nested values.
pub fn validate_attributes_with(
    v: &Value,
    errors: &mut Vec<FieldError>,
    mut entry: impl FnMut(&str, &Value, &mut Vec<FieldError>),
) {
    let Value::Object(map) = v else {
        errors.push(FieldError::new("attributes", "must be a JSON object"));
        return;
    };
    if map.len() > MAX_ATTRIBUTE_KEYS {
        errors.push(FieldError::new(
            "attributes",
            format!("must have at most {MAX_ATTRIBUTE_KEYS} keys"),
        ));
    }
    for (k, val) in map {
        entry(k, val, errors);
    }
    if serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0) > MAX_ATTRIBUTES_BYTES {
        errors.push(FieldError::new(
            "attributes",
            format!("must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"),
        ));
    }
}

/// The attributes `current` after the merge patch `patch` (when one was sent), validated; a
/// patch that is not an object is refused.
pub fn apply_patch(current: &Value, patch: Option<&Value>, errors: &mut Vec<FieldError>) -> Value {
    let mut attributes = current.clone();
    if let Some(patch) = patch {
        if patch.is_object() {
            merge_patch(&mut attributes, patch);
            validate_attributes(&attributes, errors);
        } else {
            errors.push(FieldError::new(
                "attributes",
                "must be a JSON object (a merge patch)",
            ));
        }
    }
    attributes
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attributes_limits() {
        let mut errors = vec![];
        validate_attributes(&json!([1]), &mut errors);
        assert_eq!(errors[0].field, "attributes");
        let mut errors = vec![];
        validate_attributes(
            &json!({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}),
            &mut errors,
        );
        assert_eq!(errors[0].field, "attributes.a");
        let mut errors = vec![];
        let big: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
        validate_attributes(&Value::Object(big), &mut errors);
        assert!(errors.iter().any(|e| e.message.contains("64 keys")));
        let mut errors = vec![];
        validate_attributes(
            &json!({"blob": "x".repeat(MAX_ATTRIBUTES_BYTES)}),
            &mut errors,
        );
        assert!(errors.iter().any(|e| e.message.contains("bytes")));
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
