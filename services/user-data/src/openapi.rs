//! The OpenAPI document served at `/openapi.json`.

use utoipa::OpenApi;

use crate::routes;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "user-data-service",
        description = "Users of a PrismicX tenant: profiles, JSONB attributes, roles and memberships, \
                       search and cursor pagination. Authenticate with `Authorization: Bearer <key>`: \
                       a tenant key acts for its tenant; the platform key names the tenant in `X-Tenant`. \
                       Errors are RFC 9457 problem+json."
    ),
    paths(
        routes::create_user, routes::list_users, routes::get_user, routes::update_user, routes::delete_user,
        routes::user_roles, routes::grant_role, routes::revoke_role,
        routes::create_role, routes::list_roles, routes::get_role, routes::delete_role,
        routes::list_audit_events,
    ),
    tags(
        (name = "users", description = "Users of the tenant"),
        (name = "roles", description = "Roles of the tenant"),
        (name = "memberships", description = "Which users hold which roles"),
        (name = "audit", description = "Who changed what"),
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    use prismicx_service_common::openapi::{
        attributes_schema, trimmed_text, ApiDocument, ANY_NESTED_KEY,
    };
    use serde_json::json;
    // The rules the handlers enforce that the derived schemas cannot state.
    // parse_email: one `@`, 1 to 64 characters before it, a domain of two or more labels not
    // starting or ending with `-`, no spaces or control characters, 3 to 254 characters. Stated
    // in ASCII; the handler also takes other letters.
    let label = "[\\x21-\\x2c\\x2f-\\x3f\\x41-\\x7e]([\\x21-\\x2d\\x2f-\\x3f\\x41-\\x7e]*[\\x21-\\x2c\\x2f-\\x3f\\x41-\\x7e])?";
    let email = json!({ "minLength": 3, "maxLength": 254,
        "pattern": format!("^[\\x21-\\x3f\\x41-\\x7e]{{1,64}}@{label}(\\.{label})+$") });
    let bodies = &["CreateUser", "UpdateUser"];
    ApiDocument::new(ApiDoc::openapi())
        .require_a_change(
            "UpdateUser",
            &["email", "displayName", "status", "attributes"],
        )
        .property(bodies, "email", email)
        .property(bodies, "displayName", trimmed_text(1, 200, false, ""))
        .property(bodies, "attributes", attributes_schema(ANY_NESTED_KEY))
        .replace_property(
            bodies,
            "status",
            json!({ "type": ["string", "null"], "enum": ["active", "disabled", "invited", null] }),
        )
        .constrain(
            "/components/schemas/CreateRole/properties/name",
            json!({ "pattern": "^[a-z][a-z0-9_.:-]{0,62}$" }),
        )
        .constrain(
            "/components/schemas/CreateRole/properties/permissions",
            json!({
            "maxItems": 100,
            "items": { "type": "string", "minLength": 1, "maxLength": 128,
                       "pattern": "^[^\\s\\x00-\\x1f\\x7f-\\x9f]+$" } }),
        )
        .param("/v1/users", "get", "q", json!({ "maxLength": 200 }))
        .param(
            "/v1/users",
            "get",
            "status",
            json!({ "enum": crate::domain::STATUSES }),
        )
        .build()
}
