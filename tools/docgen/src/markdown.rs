//! An OpenAPI 3.1 document rendered as a Markdown reference: operations grouped by tag, their
//! parameters, request bodies and responses, then the schemas.

use std::fmt::Write as _;

use serde_json::Value;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// A table cell: no line breaks, `|` escaped.
fn cell(s: &str) -> String {
    s.replace('\n', " ").replace('|', "\\|")
}

fn anchor(name: &str) -> String {
    name.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// A short type expression for `schema`.
pub fn type_of(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[{name}](#{})", anchor(name));
    }
    for (key, sep) in [("oneOf", " \\| "), ("anyOf", " \\| "), ("allOf", " & ")] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            return list.iter().map(type_of).collect::<Vec<_>>().join(sep);
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    let types: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => vec![],
    };
    let rendered: Vec<String> = types
        .iter()
        .map(|t| match t.as_str() {
            "array" => format!(
                "array of {}",
                schema.get("items").map(type_of).unwrap_or("any".into())
            ),
            "object" => match schema.get("additionalProperties") {
                Some(v @ Value::Object(_)) => format!("map of {}", type_of(v)),
                _ => "object".into(),
            },
            other => match schema.get("format").and_then(Value::as_str) {
                Some(f) => format!("{other} ({f})"),
                None => other.to_string(),
            },
        })
        .collect();
    if rendered.is_empty() {
        "any".into()
    } else {
        rendered.join(" \\| ")
    }
}

fn body_type(content: Option<&Value>) -> String {
    let Some(content) = content.and_then(Value::as_object) else {
        return "—".into();
    };
    content
        .iter()
        .map(|(mime, m)| {
            format!(
                "{} (`{mime}`)",
                m.get("schema").map(type_of).unwrap_or("any".into())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string()
}

struct Operation<'a> {
    method: &'a str,
    path: &'a str,
    op: &'a Value,
}

fn render_operation(out: &mut String, o: &Operation<'_>) {
    let _ = writeln!(out, "### `{} {}`\n", o.method.to_ascii_uppercase(), o.path);
    for key in ["summary", "description"] {
        let t = text(o.op, key);
        if !t.is_empty() {
            let _ = writeln!(out, "{t}\n");
        }
    }
    if let Some(params) = o.op.get("parameters").and_then(Value::as_array) {
        if !params.is_empty() {
            out.push_str(
                "| parameter | in | type | required | description |\n|---|---|---|---|---|\n",
            );
            for p in params {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} |",
                    text(p, "name"),
                    text(p, "in"),
                    p.get("schema").map(type_of).unwrap_or("any".into()),
                    if p.get("required").and_then(Value::as_bool).unwrap_or(false) {
                        "yes"
                    } else {
                        "no"
                    },
                    cell(&text(p, "description")),
                );
            }
            out.push('\n');
        }
    }
    if let Some(body) = o.op.get("requestBody") {
        let _ = writeln!(
            out,
            "Request body{}: {}\n",
            if body
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                " (required)"
            } else {
                ""
            },
            body_type(body.get("content"))
        );
    }
    if let Some(responses) = o.op.get("responses").and_then(Value::as_object) {
        out.push_str("| status | description | body |\n|---|---|---|\n");
        for (status, r) in responses {
            let _ = writeln!(
                out,
                "| {status} | {} | {} |",
                cell(&text(r, "description")),
                body_type(r.get("content"))
            );
        }
        out.push('\n');
    }
}

fn render_schema(out: &mut String, name: &str, schema: &Value) {
    let _ = writeln!(out, "### {name}\n");
    let d = text(schema, "description");
    if !d.is_empty() {
        let _ = writeln!(out, "{d}\n");
    }
    match schema.get("properties").and_then(Value::as_object) {
        Some(props) => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            out.push_str("| field | type | required | description |\n|---|---|---|---|\n");
            for (field, p) in props {
                let _ = writeln!(
                    out,
                    "| `{field}` | {} | {} | {} |",
                    type_of(p),
                    if required.contains(&field.as_str()) {
                        "yes"
                    } else {
                        "no"
                    },
                    cell(&text(p, "description"))
                );
            }
            out.push('\n');
        }
        None => {
            let _ = writeln!(out, "{}\n", type_of(schema));
        }
    }
}

/// The reference page of `service`.
pub fn render(service: &str, doc: &Value) -> String {
    let mut out = format!(
        "<!-- Generated by `make generate` from {service}'s OpenAPI document; do not edit. -->\n"
    );
    let info = doc.get("info").cloned().unwrap_or(Value::Null);
    let _ = writeln!(out, "# {} API\n", text(&info, "title"));
    let d = text(&info, "description");
    if !d.is_empty() {
        let _ = writeln!(out, "{d}\n");
    }
    let _ = writeln!(
        out,
        "Served at `/openapi.json` (OpenAPI {}); platform routes `/healthz`, `/readyz` and `/metrics` need no key.\n",
        text(doc, "openapi")
    );

    let mut ops: Vec<(String, Operation<'_>)> = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(*method) {
                    let tag = op
                        .get("tags")
                        .and_then(Value::as_array)
                        .and_then(|t| t.first())
                        .and_then(Value::as_str)
                        .unwrap_or("other")
                        .to_string();
                    ops.push((tag, Operation { method, path, op }));
                }
            }
        }
    }
    let mut tags: Vec<(String, String)> = doc
        .get("tags")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| (text(t, "name"), text(t, "description")))
                .collect()
        })
        .unwrap_or_default();
    for (tag, _) in &ops {
        if !tags.iter().any(|(t, _)| t == tag) {
            tags.push((tag.clone(), String::new()));
        }
    }

    out.push_str("## Operations\n\n| operation | summary |\n|---|---|\n");
    for (_, o) in &ops {
        let _ = writeln!(
            out,
            "| `{} {}` | {} |",
            o.method.to_ascii_uppercase(),
            o.path,
            cell(&text(o.op, "summary"))
        );
    }
    out.push('\n');
    for (tag, description) in &tags {
        let in_tag: Vec<&Operation<'_>> = ops
            .iter()
            .filter(|(t, _)| t == tag)
            .map(|(_, o)| o)
            .collect();
        if in_tag.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {tag}\n");
        if !description.is_empty() {
            let _ = writeln!(out, "{description}\n");
        }
        for o in in_tag {
            render_operation(&mut out, o);
        }
    }
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        out.push_str("## Schemas\n\n");
        for (name, schema) in schemas {
            render_schema(&mut out, name, schema);
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_render_refs_arrays_unions_and_formats() {
        assert_eq!(
            type_of(&json!({"$ref": "#/components/schemas/User"})),
            "[User](#user)"
        );
        assert_eq!(
            type_of(&json!({"type": "array", "items": {"type": "string", "format": "uuid"}})),
            "array of string (uuid)"
        );
        assert_eq!(
            type_of(&json!({"type": ["string", "null"]})),
            "string \\| null"
        );
        assert_eq!(
            type_of(&json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/A"}]})),
            "null \\| [A](#a)"
        );
        assert_eq!(type_of(&json!({"enum": ["a", "b"]})), "`\"a\"` \\| `\"b\"`");
        assert_eq!(type_of(&json!({})), "any");
    }

    #[test]
    fn a_document_renders_operations_and_schemas() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "demo", "description": "A demo."},
            "tags": [{"name": "things", "description": "Things"}],
            "paths": {"/v1/things/{id}": {"get": {
                "tags": ["things"], "summary": "Get a thing.",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}}
            }}},
            "components": {"schemas": {"Thing": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string", "description": "a|b"}}}}}
        });
        let md = render("demo", &doc);
        assert!(md.contains("### `GET /v1/things/{id}`"));
        assert!(md.contains("| `id` | path | string | yes |  |"));
        assert!(md.contains("| 200 | OK | [Thing](#thing) (`application/json`) |"));
        assert!(md.contains("| `id` | string | yes | a\\|b |"));
        assert!(!md.ends_with("\n\n"));
    }
}
