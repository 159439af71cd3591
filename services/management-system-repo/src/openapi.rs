//! The OpenAPI document served at `/openapi.json`.

use utoipa::OpenApi;

use crate::routes::{configuration, relations, systems, versions};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "management-system-repo",
        description = "Registry of a PrismicX tenant's management systems: systems with a JSON Schema \
                       for their configurations, their versions and the relations between them \
                       (PostgreSQL), and each system's versioned configurations with history, diff \
                       and rollback (MongoDB config_db). Authenticate with `Authorization: Bearer <key>`: \
                       a tenant key acts for its tenant; the platform key names the tenant in `X-Tenant`. \
                       Errors are RFC 9457 problem+json; `errors[].field` names the offending field \
                       (JSON pointers for configSchema and configuration violations)."
    ),
    paths(
        systems::create_system, systems::list_systems, systems::get_system,
        systems::update_system, systems::delete_system,
        versions::create_version, versions::list_versions, versions::get_version,
        versions::update_version, versions::delete_version,
        relations::create_relation, relations::list_relations, relations::get_relation,
        relations::delete_relation,
        configuration::put_configuration, configuration::get_latest, configuration::list_versions,
        configuration::get_version, configuration::diff, configuration::rollback,
    ),
    tags(
        (name = "systems", description = "Management systems of the tenant"),
        (name = "versions", description = "Versions (releases) of a system"),
        (name = "relations", description = "Typed edges between systems of the tenant"),
        (name = "configuration", description = "Versioned configuration documents of a system"),
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    use prismicx_service_common::openapi::{
        attributes_schema, text_as_sent, ApiDocument, ANY_NESTED_KEY,
    };
    use serde_json::json;
    // The rules the handlers enforce that the derived schemas cannot state.
    let kind = json!({ "pattern": "^[a-z][a-z0-9_-]{0,62}$" });
    let description = text_as_sent(2000, true);
    let systems = &["CreateSystem", "UpdateSystem"];
    let versions = &["CreateVersion", "UpdateVersion"];
    let relation_kinds = json!(crate::domain::RELATION_KINDS);
    let comment = text_as_sent(crate::domain::MAX_COMMENT_CHARS, true);
    // A configuration document: any JSON whose keys, at every depth, neither start with `$` nor
    // hold NUL (MongoDB stores them verbatim; `domain::validate_config_document`).
    let config_key = json!({ "pattern": "^([^$\\u0000][^\\u0000]*)?$" });
    let me = json!({ "$ref": "#/components/schemas/ConfigValue" });
    let mut doc = ApiDocument::new(ApiDoc::openapi());
    doc.property(
        systems,
        "name",
        json!({ "pattern": "^[a-z0-9][a-z0-9._-]{0,99}$" }),
    )
    .property(systems, "kind", kind.clone())
    .property(systems, "displayName", text_as_sent(200, false))
    .property(systems, "description", description.clone())
    .property(systems, "attributes", attributes_schema(ANY_NESTED_KEY))
    .require_a_change(
        "UpdateSystem",
        &[
            "name",
            "kind",
            "displayName",
            "description",
            "attributes",
            "configSchema",
        ],
    )
    .require_a_change("UpdateVersion", &["notes", "status"])
    .property(versions, "notes", text_as_sent(10_000, true))
    .replace_property(
        versions,
        "status",
        json!({ "type": ["string", "null"], "enum": ["draft", "released", "deprecated", null] }),
    )
    .constrain(
        "/components/schemas/CreateVersion/properties/version",
        json!({
        "maxLength": 64,
        "pattern": "^[0-9]{1,10}\\.[0-9]{1,10}(\\.[0-9]{1,10})?(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$" }),
    )
    .property(
        &["CreateRelation"],
        "kind",
        json!({ "enum": relation_kinds.clone() }),
    )
    .property(&["CreateRelation"], "description", description)
    .property(&["PutConfiguration", "Rollback"], "comment", comment)
    .property(&["Rollback"], "toVersion", json!({ "minimum": 1 }));
    if let Some(schemas) = doc
        .json_mut()
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        schemas.insert(
            "ConfigValue".into(),
            json!({
                "description": "A value inside a configuration document: any JSON; no key starts with `$`, no key or string holds NUL.",
                "anyOf": [
                    { "type": ["null", "boolean", "number"] },
                    { "type": "string", "pattern": "^[^\\u0000]*$" },
                    { "type": "array", "items": me.clone() },
                    { "type": "object", "propertyNames": config_key.clone(), "additionalProperties": me.clone() },
                ],
            }),
        );
    }
    doc.property(
        &["PutConfiguration"],
        "config",
        json!({ "propertyNames": config_key, "additionalProperties": me }),
    )
    // An RFC 6902 operation's value is any JSON value.
    .any_json("/components/schemas/PatchOp/properties/value");
    for p in ["from", "to"] {
        doc.param(
            "/v1/systems/{id}/configuration/diff",
            "get",
            p,
            json!({ "required": true, "type": "integer", "minimum": 1 }),
        );
    }
    let relations = "/v1/systems/{id}/relations";
    doc.param("/v1/systems", "get", "kind", kind)
        .param(relations, "get", "kind", json!({ "enum": relation_kinds }))
        .param(
            relations,
            "get",
            "direction",
            json!({ "enum": ["outgoing", "incoming", "both"] }),
        )
        .param(
            "/v1/systems/{id}/versions",
            "get",
            "status",
            json!({ "enum": crate::domain::VERSION_STATUSES }),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_problem_responses() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), 11);
        for (path, ops) in paths {
            for (method, op) in ops.as_object().expect("ops") {
                let responses = op["responses"].as_object().expect("responses");
                assert!(responses.contains_key("401"), "{method} {path}");
                assert!(responses.contains_key("400"), "{method} {path}");
                assert!(!op["security"].is_null(), "{method} {path}");
            }
        }
        assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    }
}
