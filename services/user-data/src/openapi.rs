//! The OpenAPI document served at `/openapi.json`.

use prismicx_service_common::http::ApiKeyAuth;
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
    components(schemas(prismicx_service_common::error::Problem, prismicx_service_common::FieldError)),
    modifiers(&ApiKeyAuth),
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
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
