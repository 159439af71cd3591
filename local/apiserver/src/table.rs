//! `meta.k8s.io/v1 Table` answers for `kubectl get`.

use serde_json::{json, Value};

use crate::registry::{Column, ResourceDef};
use crate::select::json_path;

/// What a row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// From the `includeObject` query parameter.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

fn columns(def: &ResourceDef) -> Vec<Column> {
    let mut cols = vec![Column {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        priority: 0,
        json_path: ".metadata.name".into(),
    }];
    cols.extend(def.columns.iter().cloned());
    if !def.custom {
        cols.push(Column {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: "Time since creation.".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        });
    }
    cols
}

/// kubectl's short human durations (`45s`, `5m10s`, `3h`, `2d4h`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    // `<n><unit>`, followed by the remainder in the next smaller unit unless it is zero.
    let with_rest = |n: i64, unit: &str, rest: i64, rest_unit: &str| {
        if rest == 0 {
            format!("{n}{unit}")
        } else {
            format!("{n}{unit}{rest}{rest_unit}")
        }
    };
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        with_rest(m, "m", s % 60, "s")
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        with_rest(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        with_rest(d, "d", h % 24, "h")
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

fn cell(col: &Column, obj: &Value) -> Value {
    let found = json_path(obj, &col.json_path);
    if found.is_empty() {
        return Value::Null;
    }
    if col.type_ == "date" {
        let Some(ts) = found[0].as_str() else {
            return Value::Null;
        };
        return match chrono::DateTime::parse_from_rfc3339(ts) {
            Ok(t) => json!(human_duration(
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()
            )),
            Err(_) => json!(ts),
        };
    }
    if found.len() == 1 {
        return match &found[0] {
            v @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => v.clone(),
            other => json!(other.to_string()),
        };
    }
    json!(found
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(","))
}

/// A Table of `objects` (already presented in `def`'s version).
pub fn table(
    def: &ResourceDef,
    objects: &[Value],
    rv: Option<u64>,
    include: IncludeObject,
) -> Value {
    let cols = columns(def);
    let definitions: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": if c.type_ == "date" { "string" } else { c.type_.as_str() },
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| cell(c, o)).collect();
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Object => row["object"] = o.clone(),
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"],
                    })
                }
            }
            row
        })
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = rv {
        metadata["resourceVersion"] = json!(rv.to_string());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(130), "2m10s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(4 * 3600 + 60), "4h1m");
        assert_eq!(human_duration(3 * 86_400), "3d");
    }
}
