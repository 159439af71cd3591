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
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
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
