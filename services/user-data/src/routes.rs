//! HTTP handlers: parse and validate the request, then, in the tenant's transaction
//! ([`in_tenant_tx!`]: run again from the start on a transient database error), call `repo` and
//! record the change in the audit trail, commit.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, put};
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use prismicx_service_common::auth::Principal;
use prismicx_service_common::error::Problem;
use prismicx_service_common::extract::{created, Json, Path, Query};
use prismicx_service_common::in_tenant_tx;
use prismicx_service_common::pagination::{self, Page, PageQuery};
use prismicx_service_common::pg::retry::Fail;
use prismicx_service_common::pg::TenantTx;
use prismicx_service_common::tenancy::Scoped;
use prismicx_service_common::ApiError;
use serde_json::json;
use uuid::Uuid;

use crate::domain::{self, AuditEvent, CreateRole, CreateUser, Role, UpdateUser, User};
use crate::repo::{self, UserFilter};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route(
            "/v1/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/v1/users/{id}/roles", get(user_roles))
        .route(
            "/v1/users/{id}/roles/{role_id}",
            put(grant_role).delete(revoke_role),
        )
        .route("/v1/roles", get(list_roles).post(create_role))
        .route("/v1/roles/{id}", get(get_role).delete(delete_role))
        .route("/v1/audit-events", get(list_audit_events))
}

fn actor(p: &Principal) -> &'static str {
    match p {
        Principal::Platform => "platform",
        Principal::Tenant(_) => "tenant-key",
    }
}

/// Records `action` on `entity` `id` in the audit trail, in the change's transaction.
async fn audit(
    tx: &mut TenantTx,
    principal: &Principal,
    action: &str,
    entity: &str,
    id: Uuid,
    details: serde_json::Value,
) -> Result<(), Fail> {
    repo::audit(tx, actor(principal), action, entity, id, details).await
}

type Cursor = (DateTime<Utc>, Uuid);

fn user_not_found(id: Uuid) -> ApiError {
    ApiError::not_found("user", id)
}

fn role_not_found(id: Uuid) -> ApiError {
    ApiError::not_found("role", id)
}

/// Create a user.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = User, headers(("location" = String, description = "URL of the new user"))),
        (status = 409, description = "Email already used in this tenant", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem)))]
pub async fn create_user(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateUser>,
) -> Result<Response, ApiError> {
    let (new, principal) = (&body.validate()?, &principal);
    let user = in_tenant_tx!(state, tenant, |tx| {
        let user = repo::insert_user(&mut tx, new).await?;
        let details = json!({"email": user.email});
        audit(&mut tx, principal, "create", "user", user.id, details).await?;
        user
    })?;
    Ok(created(&format!("/v1/users/{}", user.id), Json(user)))
}

/// Get a user.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = User)))]
pub async fn get_user(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<User>, ApiError> {
    let user = in_tenant_tx!(state, tenant, |tx| {
        repo::get_user(&mut tx, id, false)
            .await?
            .ok_or_else(|| user_not_found(id))?
    })?;
    Ok(Json(user))
}

/// Change a user's fields; `attributes` is a JSON merge patch.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", request_body = UpdateUser,
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = User),
        (status = 409, description = "Email already used in this tenant", body = Problem)))]
pub async fn update_user(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    let changed: Vec<&str> = [
        body.email.as_ref().map(|_| "email"),
        body.display_name.as_ref().map(|_| "displayName"),
        body.status.as_ref().map(|_| "status"),
        body.attributes.as_ref().map(|_| "attributes"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (body, principal, changed) = (&body, &principal, &changed);
    let user = in_tenant_tx!(state, tenant, |tx| {
        let current = repo::get_user(&mut tx, id, true)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        let next = body.apply(&current)?;
        let user = repo::update_user(&mut tx, id, &next).await?;
        let details = json!({"fields": changed});
        audit(&mut tx, principal, "update", "user", id, details).await?;
        user
    })?;
    Ok(Json(user))
}

/// Delete a user (and their memberships).
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 204)))]
pub async fn delete_user(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let principal = &principal;
    in_tenant_tx!(state, tenant, |tx| {
        if !repo::delete_user(&mut tx, id).await? {
            return Err(ApiError::not_found("user", id).into());
        }
        audit(&mut tx, principal, "delete", "user", id, json!({})).await?;
    })?;
    Ok(StatusCode::NO_CONTENT)
}

const USER_LIST_PARAMS: &[&str] = &["limit", "cursor", "status", "email", "role", "q"];
const MAX_ATTRIBUTE_FILTERS: usize = 5;

/// List users, oldest first, with filters and cursor pagination.
#[utoipa::path(get, path = "/v1/users", tag = "users",
    params(
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"),
        ("status" = Option<String>, Query, description = "active, disabled or invited"),
        ("email" = Option<String>, Query, description = "Exact email (case-insensitive)"),
        ("role" = Option<String>, Query, description = "Only members of the role with this name"),
        ("q" = Option<String>, Query, description = "Case-insensitive text in email or display name"),
        ("attr.<key>" = Option<String>, Query, description = "attributes.<key> equals this text (up to 5)"),
    ),
    responses((status = 200, body = Page<User>)))]
pub async fn list_users(
    Scoped { state, tenant }: Scoped<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Page<User>>, ApiError> {
    let (limit, after) = pagination::page_params::<Cursor>(&params)?;
    let mut filter = UserFilter {
        limit,
        after,
        ..UserFilter::default()
    };
    for (k, v) in &params {
        if let Some(attr) = k.strip_prefix("attr.") {
            if attr.is_empty() || attr.len() > 64 {
                return Err(ApiError::bad_request(k.clone(), "names no attribute key"));
            }
            filter.attributes.push((attr.to_string(), v.clone()));
        } else if !USER_LIST_PARAMS.contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                k.clone(),
                "is not a filter of this list",
            ));
        }
    }
    if filter.attributes.len() > MAX_ATTRIBUTE_FILTERS {
        return Err(ApiError::bad_request(
            "attr",
            format!("at most {MAX_ATTRIBUTE_FILTERS} attribute filters"),
        ));
    }
    filter.attributes.sort();
    if let Some(s) = params.get("status") {
        filter.status =
            Some(domain::parse_status(s).map_err(|m| ApiError::bad_request("status", m))?);
    }
    if let Some(e) = params.get("email") {
        filter.email = Some(e.trim().to_lowercase());
    }
    if let Some(r) = params.get("role") {
        filter.role = Some(r.clone());
    }
    if let Some(q) = params.get("q") {
        if q.chars().count() > 200 {
            return Err(ApiError::bad_request("q", "must be at most 200 characters"));
        }
        if !q.trim().is_empty() {
            filter.text = Some(q.trim().to_string());
        }
    }
    let filter = &filter;
    let users = in_tenant_tx!(state, tenant, |tx| repo::list_users(&mut tx, filter)
        .await?)?;
    Ok(Json(Page::from_overfetch(users, filter.limit, |u| {
        (u.created_at, u.id)
    })))
}

/// The roles a user is a member of.
#[utoipa::path(get, path = "/v1/users/{id}/roles", tag = "memberships",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = Vec<Role>)))]
pub async fn user_roles(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Role>>, ApiError> {
    let roles = in_tenant_tx!(state, tenant, |tx| {
        repo::get_user(&mut tx, id, false)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        repo::roles_of_user(&mut tx, id).await?
    })?;
    Ok(Json(roles))
}

/// Make a user a member of a role (idempotent).
#[utoipa::path(put, path = "/v1/users/{id}/roles/{role_id}", tag = "memberships",
    params(("id" = Uuid, Path, description = "User id"), ("role_id" = Uuid, Path, description = "Role id")),
    responses((status = 204)))]
pub async fn grant_role(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, role_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let principal = &principal;
    in_tenant_tx!(state, tenant, |tx| {
        // Both must be visible to this tenant before the membership is written.
        repo::get_user(&mut tx, id, true)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        repo::get_role(&mut tx, role_id)
            .await?
            .ok_or_else(|| role_not_found(role_id))?;
        if repo::grant_role(&mut tx, id, role_id).await? {
            let details = json!({"roleId": role_id});
            audit(&mut tx, principal, "grant", "user", id, details).await?;
        }
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a user from a role.
#[utoipa::path(delete, path = "/v1/users/{id}/roles/{role_id}", tag = "memberships",
    params(("id" = Uuid, Path, description = "User id"), ("role_id" = Uuid, Path, description = "Role id")),
    responses((status = 204)))]
pub async fn revoke_role(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, role_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let principal = &principal;
    in_tenant_tx!(state, tenant, |tx| {
        if !repo::revoke_role(&mut tx, id, role_id).await? {
            return Err(
                ApiError::NotFound(format!("user {id} is not a member of role {role_id}")).into(),
            );
        }
        let details = json!({"roleId": role_id});
        audit(&mut tx, principal, "revoke", "user", id, details).await?;
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create a role.
#[utoipa::path(post, path = "/v1/roles", tag = "roles", request_body = CreateRole,
    responses((status = 201, body = Role),
        (status = 409, description = "A role of this name exists in this tenant", body = Problem)))]
pub async fn create_role(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<CreateRole>,
) -> Result<Response, ApiError> {
    let (new, principal) = (&body.validate()?, &principal);
    let role = in_tenant_tx!(state, tenant, |tx| {
        let role = repo::insert_role(&mut tx, new).await?;
        let details = json!({"name": role.name});
        audit(&mut tx, principal, "create", "role", role.id, details).await?;
        role
    })?;
    Ok(created(&format!("/v1/roles/{}", role.id), Json(role)))
}

/// Get a role.
#[utoipa::path(get, path = "/v1/roles/{id}", tag = "roles",
    params(("id" = Uuid, Path, description = "Role id")),
    responses((status = 200, body = Role)))]
pub async fn get_role(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Role>, ApiError> {
    let role = in_tenant_tx!(state, tenant, |tx| {
        repo::get_role(&mut tx, id)
            .await?
            .ok_or_else(|| role_not_found(id))?
    })?;
    Ok(Json(role))
}

/// Delete a role (and its memberships).
#[utoipa::path(delete, path = "/v1/roles/{id}", tag = "roles",
    params(("id" = Uuid, Path, description = "Role id")),
    responses((status = 204)))]
pub async fn delete_role(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let principal = &principal;
    in_tenant_tx!(state, tenant, |tx| {
        if !repo::delete_role(&mut tx, id).await? {
            return Err(ApiError::not_found("role", id).into());
        }
        audit(&mut tx, principal, "delete", "role", id, json!({})).await?;
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// List roles.
#[utoipa::path(get, path = "/v1/roles", tag = "roles", params(PageQuery),
    responses((status = 200, body = Page<Role>)))]
pub async fn list_roles(
    Scoped { state, tenant }: Scoped<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<Role>>, ApiError> {
    let (limit, after) = q.page::<Cursor>()?;
    let roles = in_tenant_tx!(state, tenant, |tx| {
        repo::list_roles(&mut tx, after, limit).await?
    })?;
    Ok(Json(Page::from_overfetch(roles, limit, |r| {
        (r.created_at, r.id)
    })))
}

/// Query of the audit trail.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only events about this user or role.
    pub entity_id: Option<Uuid>,
}

/// The tenant's audit trail, oldest first.
#[utoipa::path(get, path = "/v1/audit-events", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEvent>)))]
pub async fn list_audit_events(
    Scoped { state, tenant }: Scoped<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Page<AuditEvent>>, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let after = pagination::cursor(q.cursor.as_deref())?;
    let entity = q.entity_id;
    let events = in_tenant_tx!(state, tenant, |tx| {
        repo::list_audit(&mut tx, entity, after, limit).await?
    })?;
    Ok(Json(Page::from_overfetch(events, limit, |e| {
        (e.occurred_at, e.id)
    })))
}
