//! The OpenAPI document served at `/openapi.json`.

use utoipa::OpenApi;

use crate::routes;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "category-repository-service",
        description = "Hierarchical categories of a PrismicX tenant: a forest of ordered trees with \
                       materialized paths. Create, rename, move whole subtrees atomically, reorder \
                       siblings, list children, ancestors and descendants, delete (optionally the \
                       whole subtree). Authenticate with `Authorization: Bearer <key>`: a tenant key \
                       acts for its tenant; the platform key names the tenant in `X-Tenant`. Writes \
                       take an optional `If-Match: \"<revision>\"`. Errors are RFC 9457 problem+json."
    ),
    paths(
        routes::create_category, routes::list_roots, routes::get_category,
        routes::update_category, routes::delete_category,
        routes::move_category, routes::reorder_category,
        routes::list_children, routes::list_ancestors, routes::list_descendants,
    ),
    tags(
        (name = "categories", description = "Categories of the tenant"),
        (name = "tree", description = "Moving categories and walking the tree"),
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    use prismicx_service_common::openapi::{nested_value, trimmed_text, ApiDocument};
    use serde_json::json;
    // The rules the handlers enforce that the derived schemas cannot state.
    let bodies = &["CreateCategory", "UpdateCategory"];
    // MongoDB field names at every level: not empty, no leading `$`, no `.`; the nesting stated
    // is shallower than the handler's limit (MAX_ATTRIBUTE_NESTING).
    let keys = "^[^$.\\u0000][^.\\u0000]*$";
    ApiDocument::new(ApiDoc::openapi())
        .property(bodies, "name", trimmed_text(1, 100, false, ""))
        .property(bodies, "description", json!({ "maxLength": 1000 }))
        .property(
            bodies,
            "attributes",
            json!({
            "maxProperties": 64, "propertyNames": { "pattern": keys },
            "additionalProperties": nested_value(4, keys) }),
        )
        .param(
            "/v1/categories/{id}/descendants",
            "get",
            "maxDepth",
            json!({ "minimum": 1, "maximum": 32 }),
        )
        .build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented_with_bearer_security() {
        let doc = super::document();
        let paths = doc["paths"].as_object().expect("paths");
        for p in [
            "/v1/categories",
            "/v1/categories/{id}",
            "/v1/categories/{id}/move",
            "/v1/categories/{id}/reorder",
            "/v1/categories/{id}/children",
            "/v1/categories/{id}/ancestors",
            "/v1/categories/{id}/descendants",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        assert!(doc["components"]["schemas"]["Category"].is_object());
    }
}
