//! The OpenAPI document served at `/openapi.json`.

use utoipa::OpenApi;

use crate::routes;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "tenant-mgmt-service",
        description = "The PrismicX tenant registry (tenant → tier, state, placement, written by the operator), \
                       tenant settings and tenant API keys. Authenticate with `Authorization: Bearer <key>`: \
                       a tenant key acts for its tenant; the platform key names the tenant in `X-Tenant`. \
                       The `/internal` routes are the directory the other services use (platform key only). \
                       Errors are RFC 9457 problem+json."
    ),
    paths(
        routes::list_tenants, routes::get_tenant, routes::own_tenant,
        routes::create_api_key, routes::list_api_keys, routes::get_api_key, routes::revoke_api_key,
        routes::list_settings, routes::get_setting, routes::put_setting, routes::delete_setting,
        routes::resolve_tenant, routes::verify_key,
    ),
    components(schemas(
        prismicx_service_common::tenancy::TenantPlacement,
        prismicx_service_common::tenancy::TenantRecord,
        prismicx_service_common::ratelimit::RateLimit,
        prismicx_service_common::directory::VerifyKeyRequest,
        prismicx_service_common::directory::VerifyKeyResponse,
    )),
    tags(
        (name = "tenants", description = "The tenant registry"),
        (name = "api-keys", description = "Tenant API keys"),
        (name = "settings", description = "Tenant settings"),
        (name = "internal", description = "The directory other services resolve tenants and keys through"),
    )
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    use prismicx_service_common::openapi::{trimmed_text, ApiDocument};
    // The rules the handlers enforce that the derived schemas cannot state.
    ApiDocument::new(ApiDoc::openapi())
        // A setting's value is any JSON value, not only an object.
        .any_json("/components/schemas/PutSetting/properties/value")
        .any_json("/components/schemas/Setting/properties/value")
        .any_json("/components/schemas/Page_Setting/properties/items/items/properties/value")
        .constrain(
            "/components/schemas/CreateApiKey/properties/name",
            trimmed_text(1, 100, false, ""),
        )
        .build()
}
