//! The OpenAPI document served at `/openapi.json`.

use prismicx_service_common::http::ApiKeyAuth;
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
    components(schemas(prismicx_service_common::error::Problem, prismicx_service_common::FieldError)),
    modifiers(&ApiKeyAuth),
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
        any_json, attributes_schema, constrain, constrain_param, require_a_change, text_as_sent,
        ANY_NESTED_KEY,
    };
    use serde_json::json;
    let mut doc = prismicx_service_common::openapi::document(ApiDoc::openapi());
    // The rules the handlers enforce that the derived schemas cannot state.
    let name = json!({ "pattern": "^[a-z0-9][a-z0-9._-]{0,99}$" });
    let kind = json!({ "pattern": "^[a-z][a-z0-9_-]{0,62}$" });
    let description = text_as_sent(2000, true);
    for schema in ["CreateSystem", "UpdateSystem"] {
        let props = format!("/components/schemas/{schema}/properties");
        constrain(&mut doc, &format!("{props}/name"), name.clone());
        constrain(&mut doc, &format!("{props}/kind"), kind.clone());
        constrain(
            &mut doc,
            &format!("{props}/displayName"),
            text_as_sent(200, false),
        );
        constrain(
            &mut doc,
            &format!("{props}/description"),
            description.clone(),
        );
        constrain(
            &mut doc,
            &format!("{props}/attributes"),
            attributes_schema(ANY_NESTED_KEY),
        );
    }
    require_a_change(
        &mut doc,
        "UpdateSystem",
        &[
            "name",
            "kind",
            "displayName",
            "description",
            "attributes",
            "configSchema",
        ],
    );
    require_a_change(&mut doc, "UpdateVersion", &["notes", "status"]);
    for schema in ["CreateVersion", "UpdateVersion"] {
        constrain(
            &mut doc,
            &format!("/components/schemas/{schema}/properties/notes"),
            text_as_sent(10_000, true),
        );
        doc["components"]["schemas"][schema]["properties"]["status"] = json!({
            "type": ["string", "null"], "enum": ["draft", "released", "deprecated", null] });
    }
    constrain(
        &mut doc,
        "/components/schemas/CreateVersion/properties/version",
        json!({
        "maxLength": 64,
        "pattern": "^[0-9]{1,10}\\.[0-9]{1,10}(\\.[0-9]{1,10})?(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$" }),
    );
    let relation_kinds = json!(crate::domain::RELATION_KINDS);
    constrain(
        &mut doc,
        "/components/schemas/CreateRelation/properties/kind",
        json!({ "enum": relation_kinds.clone() }),
    );
    constrain(
        &mut doc,
        "/components/schemas/CreateRelation/properties/description",
        description,
    );
    let comment = text_as_sent(crate::domain::MAX_COMMENT_CHARS, true);
    for schema in ["PutConfiguration", "Rollback"] {
        constrain(
            &mut doc,
            &format!("/components/schemas/{schema}/properties/comment"),
            comment.clone(),
        );
    }
    constrain(
        &mut doc,
        "/components/schemas/Rollback/properties/toVersion",
        json!({ "minimum": 1 }),
    );
    // A configuration document: any JSON whose keys, at every depth, neither start with `$` nor
    // hold NUL (MongoDB stores them verbatim; `domain::validate_config_document`).
    let config_key = json!({ "pattern": "^([^$\\u0000][^\\u0000]*)?$" });
    let me = json!({ "$ref": "#/components/schemas/ConfigValue" });
    if let Some(schemas) = doc
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
    constrain(
        &mut doc,
        "/components/schemas/PutConfiguration/properties/config",
        json!({ "propertyNames": config_key, "additionalProperties": me }),
    );
    // An RFC 6902 operation's value is any JSON value.
    any_json(&mut doc, "/components/schemas/PatchOp/properties/value");
    let diff = "/v1/systems/{id}/configuration/diff";
    for p in ["from", "to"] {
        constrain_param(
            &mut doc,
            diff,
            "get",
            p,
            json!({ "required": true, "type": "integer", "minimum": 1 }),
        );
    }
    constrain_param(&mut doc, "/v1/systems", "get", "kind", kind);
    let relations = "/v1/systems/{id}/relations";
    constrain_param(
        &mut doc,
        relations,
        "get",
        "kind",
        json!({ "enum": relation_kinds }),
    );
    constrain_param(
        &mut doc,
        relations,
        "get",
        "direction",
        json!({ "enum": ["outgoing", "incoming", "both"] }),
    );
    constrain_param(
        &mut doc,
        "/v1/systems/{id}/versions",
        "get",
        "status",
        json!({ "enum": crate::domain::VERSION_STATUSES }),
    );
    doc
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
