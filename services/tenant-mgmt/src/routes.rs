//! HTTP handlers: validate the request, act through the registry, key or settings store, and
//! (for key issuance and revocation) announce the change on Redis.

use prismicx_service_common::mongo::bson_time;
use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::Utc;
use prismicx_service_common::auth::{KeyDigest, Principal};
use prismicx_service_common::directory::{
    VerifyKeyRequest, VerifyKeyResponse, TENANT_PATH, VERIFY_KEY_PATH,
};
use prismicx_service_common::events::{TenantEvent, TenantEventKind};
use prismicx_service_common::extract::{
    created, no_content_if, with_etag, IfMatch, Json, Path, Query,
};
use prismicx_service_common::pagination::{self, Page};
use prismicx_service_common::tenancy::{Scoped, TenantPlacement, TenantRecord, TenantSlug};
use prismicx_service_common::ApiError;
use uuid::Uuid;

use crate::domain::{
    self, ApiKeyView, CreateApiKey, IssuedApiKey, PutSetting, Setting, TenantView,
};
use crate::keys::{self, KeyCursor, KeyDoc};
use crate::registry::{record_of, view_of, RegistryFilter};
use crate::settings::{self, Put};
use crate::AppState;
use prismicx_service_common::mongo::bson_uuid;

type Problem = prismicx_service_common::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", get(list_tenants))
        .route("/v1/tenants/{slug}", get(get_tenant))
        .route("/v1/tenant", get(own_tenant))
        .route("/v1/api-keys", get(list_api_keys).post(create_api_key))
        .route("/v1/api-keys/{id}", get(get_api_key).delete(revoke_api_key))
        .route("/v1/settings", get(list_settings))
        .route(
            "/v1/settings/{key}",
            get(get_setting).put(put_setting).delete(delete_setting),
        )
        .route(&format!("{TENANT_PATH}/{{slug}}"), get(resolve_tenant))
        .route(VERIFY_KEY_PATH, post(verify_key))
}

fn require_platform(p: &Principal, what: &str) -> Result<(), ApiError> {
    match p {
        Principal::Platform => Ok(()),
        Principal::Tenant(_) => Err(ApiError::Forbidden(format!(
            "only the platform key may {what}"
        ))),
    }
}

fn actor(p: &Principal) -> &'static str {
    match p {
        Principal::Platform => "platform",
        Principal::Tenant(_) => "tenant-key",
    }
}

fn parse_slug(s: &str) -> Result<TenantSlug, ApiError> {
    TenantSlug::parse(s).map_err(|e| ApiError::bad_request("slug", format!("tenant slug {e}")))
}

fn reject_unknown(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(
            k.clone(),
            "is not a parameter of this list",
        )),
        None => Ok(()),
    }
}

fn parse_enum<T: serde::de::DeserializeOwned>(field: &str, v: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(v.to_string()))
        .map_err(|_| ApiError::bad_request(field, format!("{v:?} is not a valid {field}")))
}

/// List the registry (platform key only).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    params(
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("state" = Option<prismicx_service_common::tenancy::TenantState>, Query, description = "provisioning, active, suspended or deleting"),
        ("tier" = Option<prismicx_service_common::tenancy::Tier>, Query, description = "standard or dedicated"),
    ),
    responses((status = 200, body = Page<TenantView>), (status = 403, description = "Not the platform key", body = Problem)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Page<TenantView>>, ApiError> {
    require_platform(&principal, "list tenants")?;
    reject_unknown(&params, &["limit", "cursor", "state", "tier"])?;
    let filter = RegistryFilter {
        state: params
            .get("state")
            .map(|s| parse_enum("state", s))
            .transpose()?,
        tier: params
            .get("tier")
            .map(|s| parse_enum("tier", s))
            .transpose()?,
        after: pagination::cursor::<String>(params.get("cursor").map(String::as_str))?,
        limit: pagination::limit_param(&params)?,
    };
    let docs = state.registry.list(&filter).await?;
    let views: Vec<TenantView> = docs.iter().filter_map(view_of).collect();
    Ok(Json(Page::from_overfetch(views, filter.limit, |t| {
        t.slug.as_str().to_string()
    })))
}

/// A tenant's registry entry: any tenant with the platform key, its own with a tenant key.
#[utoipa::path(get, path = "/v1/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = "Tenant slug", pattern = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")),
    responses((status = 200, body = TenantView),
        (status = 403, description = "A tenant key for another tenant", body = Problem)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(slug): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let slug = parse_slug(&slug)?;
    if let Principal::Tenant(own) = &principal {
        if own != &slug {
            return Err(ApiError::Forbidden(
                "this API key belongs to another tenant".into(),
            ));
        }
    }
    let doc = state.registry.get(&slug).await?;
    doc.as_ref()
        .and_then(view_of)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("tenant {slug} does not exist")))
}

/// The calling tenant's registry entry.
#[utoipa::path(get, path = "/v1/tenant", tag = "tenants",
    responses((status = 200, body = TenantView)))]
pub async fn own_tenant(
    Scoped { state, tenant }: Scoped<AppState>,
) -> Result<Json<TenantView>, ApiError> {
    let doc = state.registry.get(&tenant.slug).await?;
    doc.as_ref()
        .and_then(view_of)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("tenant {} does not exist", tenant.slug)))
}

fn key_not_found(id: Uuid) -> ApiError {
    ApiError::not_found("API key", id)
}

/// Issue an API key for the tenant. The answer is the only time the key is shown.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateApiKey,
    responses(
        (status = 201, description = "Issued; `key` is shown only now", body = IssuedApiKey,
            headers(("location" = String, description = "URL of the key"))),
        (status = 409, description = "The tenant already holds the maximum of live keys", body = Problem)))]
pub async fn create_api_key(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateApiKey>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let name = body.validate(now)?;
    if state.keys.live_count(&tenant).await? >= keys::MAX_LIVE_KEYS {
        return Err(ApiError::Conflict {
            detail: format!(
                "the tenant already holds {} live keys; revoke one first",
                keys::MAX_LIVE_KEYS
            ),
            field: None,
        });
    }
    let key = keys::generate();
    let doc = KeyDoc {
        id: bson_uuid(Uuid::new_v4()),
        tenant_id: None,
        slug: tenant.slug.as_str().to_string(),
        name,
        prefix: key.chars().take(keys::SHOWN_PREFIX_LEN).collect(),
        digest: keys::digest_of(&key),
        created_at: bson_time(now),
        created_by: actor(&principal).to_string(),
        expires_at: body.expires_at.map(bson_time),
        revoked_at: None,
    };
    state.keys.insert(&tenant, &doc).await?;
    let view = doc.view(now);
    tracing::info!(tenant = %tenant.slug, key_id = %view.id, prefix = %view.prefix, "API key issued");
    // Services that cached the new key's digest as unknown (it was tried before it existed)
    // drop that on this event instead of after their negative-cache TTL.
    announce_keys_changed(&state, &tenant).await;
    let location = format!("/v1/api-keys/{}", view.id);
    Ok(created(
        &location,
        Json(IssuedApiKey { api_key: view, key }),
    ))
}

/// List the tenant's API keys (prefixes only), oldest first.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys",
    params(
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
    ),
    responses((status = 200, body = Page<ApiKeyView>)))]
pub async fn list_api_keys(
    Scoped { state, tenant }: Scoped<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Page<ApiKeyView>>, ApiError> {
    reject_unknown(&params, &["limit", "cursor"])?;
    let (limit, after) = pagination::page_params::<KeyCursor>(&params)?;
    let now = Utc::now();
    let docs = state.keys.list(&tenant, after, limit).await?;
    let views: Vec<ApiKeyView> = docs.iter().map(|d| d.view(now)).collect();
    Ok(Json(Page::from_overfetch(views, limit, |k| {
        (k.created_at, k.id)
    })))
}

/// One of the tenant's API keys.
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = Uuid, Path, description = "Key id")),
    responses((status = 200, body = ApiKeyView)))]
pub async fn get_api_key(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let doc = state
        .keys
        .get(&tenant, id)
        .await?
        .ok_or_else(|| key_not_found(id))?;
    Ok(Json(doc.view(Utc::now())))
}

/// Revoke an API key. Every service stops accepting it as soon as it receives the lifecycle
/// event (at most `TENANT_CACHE_TTL_SECS` later when Redis is unreachable). Idempotent.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = Uuid, Path, description = "Key id")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke_api_key(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if !state.keys.revoke(&tenant, id).await? {
        return Err(key_not_found(id));
    }
    tracing::info!(tenant = %tenant.slug, key_id = %id, "API key revoked");
    announce_keys_changed(&state, &tenant).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn announce_keys_changed(state: &AppState, tenant: &TenantPlacement) {
    state.tenancy.invalidate(&tenant.slug);
    if let Some(events) = &state.events {
        events
            .publish(TenantEvent::new(
                TenantEventKind::KeysChanged,
                tenant.id,
                tenant.slug.clone(),
            ))
            .await;
    }
}

fn setting_response(status: StatusCode, setting: Setting) -> Response {
    with_etag(status, setting.revision, setting)
}

fn setting_not_found(key: &str) -> ApiError {
    ApiError::not_found("setting", key)
}

/// List the tenant's settings in key order.
#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    params(
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
    ),
    responses((status = 200, body = Page<Setting>)))]
pub async fn list_settings(
    Scoped { state, tenant }: Scoped<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Page<Setting>>, ApiError> {
    reject_unknown(&params, &["limit", "cursor"])?;
    let (limit, after) = pagination::page_params::<String>(&params)?;
    let items = settings::list(&state.store, &tenant, after, limit).await?;
    Ok(Json(Page::from_overfetch(items, limit, |s| s.key.clone())))
}

/// One setting; its revision is the `ETag`.
#[utoipa::path(get, path = "/v1/settings/{key}", tag = "settings",
    params(("key" = String, Path, description = "Setting key", pattern = r"^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses((status = 200, body = Setting, headers(("etag" = String, description = "The revision")))))]
pub async fn get_setting(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    domain::validate_setting_key(&key)?;
    let s = settings::get(&state.store, &tenant, &key)
        .await?
        .ok_or_else(|| setting_not_found(&key))?;
    Ok(setting_response(StatusCode::OK, s))
}

/// Create or replace a setting. With `If-Match`, only if the setting is at that revision.
#[utoipa::path(put, path = "/v1/settings/{key}", tag = "settings", request_body = PutSetting,
    params(("key" = String, Path, description = "Setting key", pattern = r"^[a-z0-9][a-z0-9._-]{0,127}$"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; the write happens only at that revision")),
    responses(
        (status = 200, description = "Replaced", body = Setting),
        (status = 201, description = "Created", body = Setting)))]
pub async fn put_setting(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(key): Path<String>,
    if_match: IfMatch,
    Json(body): Json<PutSetting>,
) -> Result<Response, ApiError> {
    domain::validate_setting_key(&key)?;
    let text = serde_json::to_string(&body.value).map_err(ApiError::internal)?;
    if text.len() > domain::MAX_SETTING_BYTES {
        return Err(ApiError::invalid(
            "value",
            format!(
                "must be at most {} bytes of JSON",
                domain::MAX_SETTING_BYTES
            ),
        ));
    }
    let (outcome, stored) = settings::put(&state.store, &tenant, &key, text, if_match.0).await?;
    Ok(setting_response(
        match outcome {
            Put::Created => StatusCode::CREATED,
            Put::Updated => StatusCode::OK,
        },
        stored,
    ))
}

/// Delete a setting. With `If-Match`, only if the setting is at that revision.
#[utoipa::path(delete, path = "/v1/settings/{key}", tag = "settings",
    params(("key" = String, Path, description = "Setting key", pattern = r"^[a-z0-9][a-z0-9._-]{0,127}$"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_setting(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(key): Path<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    domain::validate_setting_key(&key)?;
    let deleted = settings::delete(&state.store, &tenant, &key, if_match.0).await?;
    no_content_if(deleted, || setting_not_found(&key))
}

/// Where a tenant lives, whether it may be served and its own rate limit when it has one
/// (platform key only; read fresh from the registry, callers cache it).
#[utoipa::path(get, path = "/internal/v1/tenants/{slug}", tag = "internal",
    params(("slug" = String, Path, description = "Tenant slug", pattern = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")),
    responses((status = 200, body = TenantRecord), (status = 403, description = "Not the platform key", body = Problem)))]
pub async fn resolve_tenant(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(slug): Path<String>,
) -> Result<Json<TenantRecord>, ApiError> {
    require_platform(&principal, "resolve tenants")?;
    let slug = parse_slug(&slug)?;
    let doc = state.registry.get(&slug).await?;
    doc.as_ref()
        .and_then(record_of)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("tenant {slug} does not exist")))
}

/// Which tenant a key (given as its digest) acts for, and when it expires (platform key only).
/// 404 when no live key has that digest, its tenant is gone, or it was issued before the
/// tenant's current registry entry (a tenant deleted and created again).
#[utoipa::path(post, path = "/internal/v1/api-keys/verify", tag = "internal", request_body = VerifyKeyRequest,
    responses((status = 200, body = VerifyKeyResponse), (status = 403, description = "Not the platform key", body = Problem)))]
pub async fn verify_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<VerifyKeyRequest>,
) -> Result<Json<VerifyKeyResponse>, ApiError> {
    require_platform(&principal, "verify keys")?;
    let digest = KeyDigest::parse(&body.digest).map_err(|e| ApiError::invalid("digest", e))?;
    let key = state
        .directory
        .verify_digest(&digest.to_string())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound("no live key has this digest".into()))?;
    Ok(Json(VerifyKeyResponse {
        tenant: key.tenant,
        expires_at: key.expires_at,
    }))
}
