//! What every service's OpenAPI document shares, applied in one place.
//!
//! A service derives its document with utoipa (info, paths, tags) and builds it with
//! [`ApiDocument::new`] (or passes it through [`document`]), which adds the `api_key` security
//! scheme ([`crate::http::ApiKeyAuth`]) and the `Problem` and `FieldError` schemas, and makes the
//! parts every route has in common exact:
//!
//! - every error response is `application/problem+json` with the [`crate::error::Problem`]
//!   schema (utoipa would say `application/json`, but [`crate::error::ApiError`] and the shell
//!   send problem+json);
//! - the errors the shell and the shared extractors answer on any authenticated route are
//!   declared on each operation: 400 (a malformed parameter, header or JSON body), 401, 403,
//!   404 (the platform key naming an unknown tenant), 422, 429 (rate limit) and 503 (timeout,
//!   a busy database, a tenant still provisioning), plus 413 and 415 where a body is read;
//! - the optional `X-Tenant` header (the platform key names the tenant with it) is a parameter
//!   of each operation, with the slug's format;
//! - `If-Match` has the entity-tag format [`crate::extract::parse_etag`] reads; an operation
//!   taking it declares 412, and 428 when it is required;
//! - `limit` has the bounds of [`crate::pagination::limit`];
//! - the NUL rule of [`crate::extract::Json`]: no string or key holds U+0000, and free-form
//!   JSON fields are the `JsonValue` schema;
//! - each operation requires the `api_key` security scheme.
//!
//! A route declares only its success responses and the statuses whose meaning is its own (404
//! for its resource, 409, a 422 or 503 it explains), with its own descriptions; those are kept,
//! only their content type is corrected. It repeats neither the statuses above nor `security`:
//! declared once here, they cannot drift apart between routes. A service then states
//! its own field rules in its `openapi.rs` with [`constrain`], [`constrain_param`],
//! [`trimmed_text`], [`attributes_schema`], [`require_a_change`] and [`any_json`]: whatever a
//! handler refuses, the document says, so a request valid by the document is accepted (the API
//! fuzzing test, `e2e/tests/fuzz.rs`, checks both ways).

use serde_json::{json, Map, Value};

use crate::tenancy::TenantSlug;

/// The reference to the shared problem schema.
fn problem_content() -> Value {
    json!({ crate::error::PROBLEM_JSON: { "schema": { "$ref": "#/components/schemas/Problem" } } })
}

/// The errors any authenticated operation can answer, whatever the route.
const COMMON: &[(&str, &str)] = &[
    (
        "400",
        "A malformed request: a path or query parameter, a header (`X-Tenant`, `If-Match`) or \
         the JSON body; `errors[].field` names it",
    ),
    (
        "401",
        "No API key, or one that is not valid (`WWW-Authenticate: Bearer`)",
    ),
    (
        "403",
        "The tenant is suspended, or `X-Tenant` names another tenant than the key's",
    ),
    (
        "404",
        "The platform key's `X-Tenant` names no tenant, or the resource does not exist",
    ),
    (
        "422",
        "A well-formed request that breaks a rule; `errors[].field` names each offending field",
    ),
    (
        "429",
        "Too many requests for this tenant or key; retry after `Retry-After` seconds",
    ),
    (
        "503",
        "Not available now: the request timed out, a database is busy, or the tenant is still \
         being provisioned; retry",
    ),
];

/// The errors of an operation that reads a body.
const WITH_BODY: &[(&str, &str)] = &[
    ("413", "The request body is larger than the service accepts"),
    (
        "415",
        "The request body is not JSON (`Content-Type: application/json`)",
    ),
];

/// No string or key of a JSON body may hold U+0000 ([`crate::extract::reject_nul`]), nor any
/// query parameter.
const NO_NUL: &str = "^[^\\u0000]*$";

/// The document a service serves at `/openapi.json` and docgen renders: `doc` with the shared
/// components and the shared declarations above applied to every operation.
pub fn document(mut doc: utoipa::openapi::OpenApi) -> Value {
    use utoipa::{Modify, PartialSchema, ToSchema};
    crate::http::ApiKeyAuth.modify(&mut doc);
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        (
            crate::error::Problem::name(),
            crate::error::Problem::schema(),
        ),
        (crate::FieldError::name(), crate::FieldError::schema()),
    ] {
        components
            .schemas
            .entry(name.into_owned())
            .or_insert(schema);
    }
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths") {
        forbid_nul(paths);
    }
    if let Some(schemas) = doc.pointer_mut("/components/schemas") {
        forbid_nul(schemas);
    }
    if let Some(schemas) = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
        .map(|c| c.entry("schemas").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        schemas.insert("JsonValue".into(), json_value_schema());
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if is_method(method) {
                    if let Some(op) = op.as_object_mut() {
                        complete_operation(op);
                    }
                }
            }
        }
    }
    doc
}

/// Any JSON value whose keys and strings hold no U+0000: what a free-form field accepts.
fn json_value_schema() -> Value {
    let me = json!({ "$ref": "#/components/schemas/JsonValue" });
    json!({
        "description": "Any JSON value; no key or string may hold the NUL character (U+0000).",
        "anyOf": [
            { "type": ["null", "boolean", "number"] },
            { "type": "string", "pattern": NO_NUL },
            { "type": "array", "items": me },
            { "type": "object", "propertyNames": { "pattern": NO_NUL }, "additionalProperties": me },
        ],
    })
}

fn has_type(schema: &Map<String, Value>, ty: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == ty,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == ty),
        _ => false,
    }
}

/// Declares the NUL rule on every schema under `v`: strings without a pattern or format get
/// [`NO_NUL`], free-form objects (`attributes`, `config`) and untyped properties (any JSON) the
/// [`json_value_schema`].
fn forbid_nul(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if has_type(m, "string")
                && !m.contains_key("pattern")
                && !m.contains_key("format")
                && !m.contains_key("enum")
            {
                m.insert("pattern".into(), json!(NO_NUL));
            }
            if has_type(m, "object")
                && !m.contains_key("properties")
                && !m.contains_key("additionalProperties")
            {
                m.insert("propertyNames".into(), json!({ "pattern": NO_NUL }));
                m.insert(
                    "additionalProperties".into(),
                    json!({ "$ref": "#/components/schemas/JsonValue" }),
                );
            }
            if let Some(Value::Object(props)) = m.get_mut("properties") {
                for prop in props.values_mut() {
                    if let Some(p) = prop.as_object_mut() {
                        let untyped = ["type", "$ref", "allOf", "anyOf", "oneOf", "enum", "const"]
                            .iter()
                            .all(|k| !p.contains_key(*k));
                        if untyped {
                            p.insert("$ref".into(), json!("#/components/schemas/JsonValue"));
                        }
                    }
                }
            }
            for child in m.values_mut() {
                forbid_nul(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

/// A service's OpenAPI document while its `openapi.rs` states the rules its handlers enforce that
/// the derive cannot: each method is one of the functions below, chained.
#[derive(Debug, Clone)]
pub struct ApiDocument(Value);

impl ApiDocument {
    /// The derived `doc` with everything [`document`] adds.
    pub fn new(doc: utoipa::openapi::OpenApi) -> Self {
        ApiDocument(document(doc))
    }

    /// [`constrain`] at `pointer`.
    pub fn constrain(&mut self, pointer: &str, patch: Value) -> &mut Self {
        constrain(&mut self.0, pointer, patch);
        self
    }

    /// [`constrain`] of the property `property` of each component schema in `schemas`.
    pub fn property(&mut self, schemas: &[&str], property: &str, patch: Value) -> &mut Self {
        for schema in schemas {
            let pointer = format!("/components/schemas/{schema}/properties/{property}");
            constrain(&mut self.0, &pointer, patch.clone());
        }
        self
    }

    /// Replaces the schema of `property` of each component schema in `schemas` by `schema`.
    pub fn replace_property(
        &mut self,
        schemas: &[&str],
        property: &str,
        schema: Value,
    ) -> &mut Self {
        for s in schemas {
            self.0["components"]["schemas"][*s]["properties"][property] = schema.clone();
        }
        self
    }

    /// [`constrain_param`].
    pub fn param(&mut self, path: &str, method: &str, name: &str, patch: Value) -> &mut Self {
        constrain_param(&mut self.0, path, method, name, patch);
        self
    }

    /// [`any_json`] at `pointer`.
    pub fn any_json(&mut self, pointer: &str) -> &mut Self {
        any_json(&mut self.0, pointer);
        self
    }

    /// [`require_a_change`] of the component schema `schema`.
    pub fn require_a_change(&mut self, schema: &str, fields: &[&str]) -> &mut Self {
        require_a_change(&mut self.0, schema, fields);
        self
    }

    /// The document being built, for an edit none of the methods above makes.
    pub fn json_mut(&mut self) -> &mut Value {
        &mut self.0
    }

    /// The finished document.
    pub fn build(&mut self) -> Value {
        std::mem::take(&mut self.0)
    }
}

/// Merges `patch` into the schema at `pointer` (e.g. `/components/schemas/UpdateTask`, or a
/// property below it): for the rules a service enforces that its derive cannot state.
pub fn constrain(doc: &mut Value, pointer: &str, patch: Value) {
    if let (Some(Value::Object(target)), Value::Object(patch)) = (doc.pointer_mut(pointer), patch) {
        target.extend(patch);
    }
}

/// Merges `patch` into the schema of parameter `name` of the operation `method path`, and
/// makes it required when `patch` holds `"required": true`.
pub fn constrain_param(doc: &mut Value, path: &str, method: &str, name: &str, patch: Value) {
    let pointer = format!(
        "/paths/{}/{method}/parameters",
        path.replace('~', "~0").replace('/', "~1")
    );
    let Some(Value::Array(params)) = doc.pointer_mut(&pointer) else {
        return;
    };
    for p in params.iter_mut().filter(|p| p["name"] == name) {
        if let Value::Object(patch) = &patch {
            for (k, v) in patch {
                if k == "required" {
                    p["required"] = v.clone();
                } else {
                    p["schema"][k] = v.clone();
                }
            }
        }
    }
}

/// The schema of an attributes object ([`crate::attributes::validate_attributes`]): at most
/// [`crate::attributes::MAX_ATTRIBUTE_KEYS`] keys, each a letter then letters, digits or `_`
/// (64 at most), values nesting fewer than [`crate::attributes::MAX_ATTRIBUTE_DEPTH`] levels
/// whose own keys match `nested_keys`. Merge into a property with [`constrain`].
pub fn attributes_schema(nested_keys: &str) -> Value {
    json!({
        "maxProperties": crate::attributes::MAX_ATTRIBUTE_KEYS,
        "propertyNames": { "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$" },
        "additionalProperties": nested_value(crate::attributes::MAX_ATTRIBUTE_DEPTH - 1, nested_keys),
    })
}

/// Keys of nested attribute objects where any key but one holding NUL is stored.
pub const ANY_NESTED_KEY: &str = NO_NUL;

/// A JSON value with at most `levels` levels of arrays and objects below it, whose object keys
/// match the pattern `keys`.
pub fn nested_value(levels: usize, keys: &str) -> Value {
    let mut any_of = vec![
        json!({ "type": ["null", "boolean", "number"] }),
        json!({ "type": "string", "pattern": NO_NUL }),
    ];
    if levels > 0 {
        let inner = nested_value(levels - 1, keys);
        any_of.push(json!({ "type": "array", "items": inner }));
        any_of.push(
            json!({ "type": "object", "propertyNames": { "pattern": keys },
                            "additionalProperties": inner }),
        );
    }
    json!({ "anyOf": any_of })
}

/// Any JSON value (a setting's value, a patch operation's value), replacing the schema at
/// `pointer`.
pub fn any_json(doc: &mut Value, pointer: &str) {
    if let Some(target) = doc.pointer_mut(pointer) {
        let description = target.get("description").cloned();
        *target = json!({ "$ref": "#/components/schemas/JsonValue" });
        if let Some(d) = description {
            target["description"] = d;
        }
    }
}

/// A PATCH body whose fields are all optional and where `null` means "leave as is": at least one
/// of `fields` must be present and not null (the handler answers 422 "names no field to
/// change" otherwise).
pub fn require_a_change(doc: &mut Value, schema: &str, fields: &[&str]) {
    let any_of: Vec<Value> = fields
        .iter()
        .map(|f| json!({ "required": [f], "properties": { *f: { "not": { "type": "null" } } } }))
        .collect();
    constrain(
        doc,
        &format!("/components/schemas/{schema}"),
        json!({ "anyOf": any_of }),
    );
}

/// Unicode White_Space: what `str::trim` removes.
const WS: &str =
    "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
/// What `char::is_control` refuses (C0, DEL, C1).
const CONTROLS: &str = "\\x00-\\x1f\\x7f-\\x9f";
/// The controls a multi-line text keeps: all but tab, line feed and carriage return.
const CONTROLS_MULTILINE: &str = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f";

/// The schema of a text field the handler trims and then checks: `min` (0 or 1) to `max`
/// characters after trimming, no control characters (tab and line breaks allowed when
/// `multiline`), none of the characters in `forbid`. Merge into a property with [`constrain`].
///
/// The trimmed length is stated in the pattern, so `max` must stay small (at most 1,000: a
/// pattern repeating more is too large for validators); a longer text is [`text_as_sent`].
pub fn trimmed_text(min: usize, max: usize, multiline: bool, forbid: &str) -> Value {
    debug_assert!(max <= 1000, "use text_as_sent for long texts");
    let (edge, inner) = text_classes(multiline, forbid);
    let body = format!("{edge}({inner}{{0,{}}}{edge})?", max.saturating_sub(2));
    let body = if min == 0 { format!("({body})?") } else { body };
    json!({ "pattern": format!("^[{WS}]*{body}[{WS}]*$") })
}

/// The schema of a text whose handler counts it as sent (at most `max` characters) and checks
/// it trimmed (no control characters but tab and line breaks when `multiline`).
pub fn text_as_sent(max: usize, multiline: bool) -> Value {
    let (edge, inner) = text_classes(multiline, "");
    json!({
        "maxLength": max,
        "pattern": format!("^[{WS}]*({edge}({inner}*{edge})?)?[{WS}]*$"),
    })
}

/// The character classes of a trimmed text: its first and last character, and those between.
fn text_classes(multiline: bool, forbid: &str) -> (String, String) {
    let controls = if multiline {
        CONTROLS_MULTILINE
    } else {
        CONTROLS
    };
    (
        format!("[^{WS}{CONTROLS}{forbid}]"),
        format!("[^{controls}{forbid}]"),
    )
}

fn is_method(key: &str) -> bool {
    matches!(
        key,
        "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
    )
}

fn complete_operation(op: &mut Map<String, Value>) {
    let has_body = op.contains_key("requestBody");
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(responses) = responses {
        let extra = COMMON.iter().chain(if has_body { WITH_BODY } else { &[] });
        for (status, description) in extra {
            responses
                .entry(status.to_string())
                .or_insert_with(|| json!({ "description": description }));
        }
        for (status, response) in responses.iter_mut() {
            if status.starts_with('4') || status.starts_with('5') {
                if let Some(r) = response.as_object_mut() {
                    r.insert("content".into(), problem_content());
                }
            }
        }
    }
    let params = op
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut();
    let mut if_match = None;
    if let Some(params) = params {
        for p in params.iter_mut() {
            if p["in"] == "query" && p["name"] == "limit" {
                // Every list takes its page size through crate::pagination::limit.
                p["schema"]["minimum"] = json!(1);
                p["schema"]["maximum"] = json!(crate::pagination::MAX_LIMIT);
            }
            if p["in"] == "header"
                && p["name"].as_str().map(str::to_ascii_lowercase).as_deref() == Some("if-match")
            {
                p["schema"] = if_match_schema();
                if_match = Some(p["required"] == true);
            }
        }
        let declared = params.iter().any(|p| {
            p["in"] == "header"
                && p["name"].as_str().map(str::to_ascii_lowercase)
                    == Some(crate::tenancy::TENANT_HEADER.into())
        });
        if !declared {
            params.push(tenant_header());
        }
    }
    if let (Some(required), Some(responses)) = (
        if_match,
        op.get_mut("responses").and_then(Value::as_object_mut),
    ) {
        responses.entry("412").or_insert_with(|| {
            json!({ "description": "`If-Match` is not the current revision; nothing was written",
                    "content": problem_content() })
        });
        if required {
            responses.entry("428").or_insert_with(|| {
                json!({ "description": "`If-Match` is missing (field `If-Match`); nothing was written",
                        "content": problem_content() })
            });
        }
    }
    op.entry("security")
        .or_insert_with(|| json!([{ "api_key": [] }]));
}

/// An entity tag as [`crate::extract::parse_etag`] reads it: `"<revision>"`, optionally weak.
fn if_match_schema() -> Value {
    json!({ "type": "string", "pattern": "^(W/)?\"-?[0-9]{1,18}\"$" })
}

/// The `X-Tenant` header parameter, with the format [`TenantSlug::parse`] enforces.
fn tenant_header() -> Value {
    json!({
        "name": "X-Tenant",
        "in": "header",
        "required": false,
        "description": "The tenant the request acts for. Required with the platform key; with a \
                        tenant key it may only name the key's own tenant (403 otherwise).",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": TenantSlug::MAX_LEN,
            "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    #[utoipa::path(post, path = "/v1/things", request_body = String,
        responses((status = 201, description = "Created"),
                  (status = 409, description = "Taken", body = crate::error::Problem)))]
    #[allow(dead_code)]
    async fn create_thing() {}

    #[derive(OpenApi)]
    #[openapi(paths(create_thing))]
    struct Doc;

    #[test]
    fn every_error_is_problem_json_and_the_common_ones_are_declared() {
        let doc = document(Doc::openapi());
        let op = &doc["paths"]["/v1/things"]["post"];
        let responses = op["responses"].as_object().unwrap();
        for status in [
            "400", "401", "403", "404", "409", "413", "415", "422", "429", "503",
        ] {
            let content = responses[status]["content"].as_object().unwrap();
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                ["application/problem+json"],
                "{status}"
            );
        }
        assert_eq!(responses["409"]["description"], "Taken");
        assert!(responses["201"].get("content").is_none());
        let params = op["parameters"].as_array().unwrap();
        assert!(params.iter().any(|p| p["name"] == "X-Tenant"));
        assert_eq!(op["security"], json!([{ "api_key": [] }]));
    }
}
