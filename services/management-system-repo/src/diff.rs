//! Structural diff of two configurations as an RFC 6902 JSON Patch.
//!
//! `diff(from, to)` returns operations that, applied in order to `from`, yield `to`:
//!
//! - objects are compared key by key: `remove` for keys only in `from`, `add` for keys only in
//!   `to`, and a recursive diff for keys in both;
//! - arrays are compared index by index over their common length (recursively), then the
//!   surplus of `from` is removed from the end backwards (so earlier indexes stay valid) or the
//!   surplus of `to` is added at the end in order;
//! - any other difference (a scalar change, a type change) is one `replace` of the value;
//! - equal values give no operation; paths are JSON pointers with `~` and `/` escaped.
//!
//! Numbers compare as JSON values (`1` and `1.0` differ, as they do in the stored documents).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One JSON Patch operation (RFC 6902); this diff emits `add`, `remove` and `replace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PatchOp {
    /// `add`, `remove` or `replace`.
    pub op: String,
    /// JSON pointer (RFC 6901) into the configuration.
    pub path: String,
    /// The new value (`add` and `replace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
}

impl PatchOp {
    fn add(path: String, value: &Value) -> Self {
        PatchOp {
            op: "add".into(),
            path,
            value: Some(value.clone()),
        }
    }

    fn remove(path: String) -> Self {
        PatchOp {
            op: "remove".into(),
            path,
            value: None,
        }
    }

    fn replace(path: String, value: &Value) -> Self {
        PatchOp {
            op: "replace".into(),
            path,
            value: Some(value.clone()),
        }
    }
}

/// A reference token escaped for a JSON pointer (RFC 6901: `~` → `~0`, `/` → `~1`).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The operations turning `from` into `to`.
pub fn diff(from: &Value, to: &Value) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    diff_at(String::new(), from, to, &mut ops);
    ops
}

fn diff_at(path: String, from: &Value, to: &Value, ops: &mut Vec<PatchOp>) {
    if from == to {
        return;
    }
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                ops.push(PatchOp::remove(format!("{path}/{}", escape(k))));
            }
            for (k, bv) in b {
                let p = format!("{path}/{}", escape(k));
                match a.get(k) {
                    Some(av) => diff_at(p, av, bv, ops),
                    None => ops.push(PatchOp::add(p, bv)),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let common = a.len().min(b.len());
            for i in 0..common {
                diff_at(format!("{path}/{i}"), &a[i], &b[i], ops);
            }
            for i in (common..a.len()).rev() {
                ops.push(PatchOp::remove(format!("{path}/{i}")));
            }
            for (i, v) in b.iter().enumerate().skip(common) {
                ops.push(PatchOp::add(format!("{path}/{i}"), v));
            }
        }
        _ => ops.push(PatchOp::replace(path, to)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal RFC 6902 applier for add/remove/replace, independent of `diff`.
    fn apply(doc: &Value, ops: &[PatchOp]) -> Value {
        let mut doc = doc.clone();
        for op in ops {
            if op.path.is_empty() {
                doc = op.value.clone().unwrap();
                continue;
            }
            let tokens: Vec<String> = op.path[1..]
                .split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect();
            let (last, parents) = tokens.split_last().unwrap();
            let mut cur = &mut doc;
            for t in parents {
                cur = match cur {
                    Value::Object(m) => m.get_mut(t).unwrap(),
                    Value::Array(a) => &mut a[t.parse::<usize>().unwrap()],
                    _ => panic!("bad path"),
                };
            }
            match (op.op.as_str(), cur) {
                ("remove", Value::Object(m)) => {
                    m.remove(last).unwrap();
                }
                ("remove", Value::Array(a)) => {
                    a.remove(last.parse().unwrap());
                }
                ("add" | "replace", Value::Object(m)) => {
                    m.insert(last.clone(), op.value.clone().unwrap());
                }
                ("add", Value::Array(a)) => {
                    a.insert(last.parse().unwrap(), op.value.clone().unwrap())
                }
                ("replace", Value::Array(a)) => {
                    a[last.parse::<usize>().unwrap()] = op.value.clone().unwrap()
                }
                _ => panic!("bad op"),
            }
        }
        doc
    }

    #[test]
    fn applying_the_diff_yields_the_target() {
        let cases = [
            (json!({}), json!({})),
            (json!({"a": 1}), json!({"a": 1.0})),
            (
                json!({"a": 1, "b": [1, 2, 3]}),
                json!({"b": [1, 5], "c": {"d": null}}),
            ),
            (json!({"x": [1]}), json!({"x": [1, [2, {"y": 3}], 4]})),
            (json!({"x": [{"a": 1}, {"b": 2}]}), json!({"x": [{"a": 2}]})),
            (
                json!({"a/b": {"c~d": 1}}),
                json!({"a/b": {"c~d": 2, "": 3}}),
            ),
            (json!({"t": "s"}), json!({"t": {"now": "object"}})),
            (json!([1, 2]), json!({"root": "changed type"})),
            (
                json!({"deep": {"er": {"est": [true, false]}}}),
                json!({"deep": {"er": {"est": [false]}}}),
            ),
        ];
        for (from, to) in cases {
            let ops = diff(&from, &to);
            assert_eq!(apply(&from, &ops), to, "{from} -> {to}: {ops:?}");
        }
    }

    #[test]
    fn ops_are_minimal_and_escaped() {
        assert!(diff(&json!({"a": [1, {"b": 2}]}), &json!({"a": [1, {"b": 2}]})).is_empty());
        assert_eq!(
            diff(&json!({"a/b": 1, "keep": 0}), &json!({"a/b": 2, "keep": 0})),
            vec![PatchOp::replace("/a~1b".into(), &json!(2))]
        );
        assert_eq!(
            diff(&json!({"l": [1, 2, 3]}), &json!({"l": [1]})),
            vec![
                PatchOp::remove("/l/2".into()),
                PatchOp::remove("/l/1".into())
            ]
        );
        let ops = serde_json::to_value(diff(&json!({"a": 1}), &json!({}))).unwrap();
        assert_eq!(ops, json!([{"op": "remove", "path": "/a"}]));
        let ops = serde_json::to_value(diff(&json!({"a": 1}), &json!({"a": null}))).unwrap();
        assert_eq!(ops, json!([{"op": "replace", "path": "/a", "value": null}]));
    }
}
