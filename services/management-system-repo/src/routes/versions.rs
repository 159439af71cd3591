//! `/v1/systems/{id}/versions`: a system's versions (semver-like strings, release notes,
//! status draft → released ↔ deprecated).

use axum::http::StatusCode;
use axum::response::Response;
use prismicx_service_common::error::Problem;
use prismicx_service_common::extract::{created, no_content_if, Json, Path, Query};
use prismicx_service_common::pagination::{self, Page};
use prismicx_service_common::tenancy::Scoped;
use prismicx_service_common::ApiError;
use uuid::Uuid;

use super::{ensure_system, in_tenant_tx, system_not_found, Cursor};
use crate::domain::{self, CreateVersion, SystemVersion, UpdateVersion};
use crate::repo::{self, Lock};
use crate::AppState;

fn version_not_found(id: Uuid) -> ApiError {
    ApiError::not_found("version", id)
}

/// Add a version to a system.
#[utoipa::path(post, path = "/v1/systems/{id}/versions", tag = "versions", request_body = CreateVersion,
    params(("id" = Uuid, Path, description = "System id")),
    responses(
        (status = 201, body = SystemVersion, headers(("location" = String, description = "URL of the new version"))),
        (status = 404, description = "No such system in this tenant", body = Problem),
        (status = 409, description = "The system already has this version", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem)))]
pub async fn create_version(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<CreateVersion>,
) -> Result<Response, ApiError> {
    let new = body.validate()?;
    let new = &new;
    let version = in_tenant_tx!(state, tenant, |tx| {
        // Locked so a concurrent delete of the system cannot slip between check and insert.
        repo::get_system(&mut tx, id, Lock::Share)
            .await?
            .ok_or_else(|| system_not_found(id))?;
        repo::insert_version(&mut tx, id, new).await?
    })?;
    let location = format!("/v1/systems/{id}/versions/{}", version.id);
    Ok(created(&location, Json(version)))
}

/// Get a version of a system.
#[utoipa::path(get, path = "/v1/systems/{id}/versions/{version_id}", tag = "versions",
    params(("id" = Uuid, Path, description = "System id"), ("version_id" = Uuid, Path, description = "Version id")),
    responses(
        (status = 200, body = SystemVersion),
        (status = 404, description = "No such system or version in this tenant", body = Problem)))]
pub async fn get_version(
    Scoped { state, tenant }: Scoped<AppState>,
    Path((id, version_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<SystemVersion>, ApiError> {
    let v = in_tenant_tx!(state, tenant, |tx| repo::get_version(
        &mut tx, id, version_id, false
    )
    .await?)?
    .ok_or_else(|| version_not_found(version_id))?;
    Ok(Json(v))
}

/// Change a version's notes or status (`draft` → `released` | `deprecated`,
/// `released` ↔ `deprecated`; never back to `draft`). `releasedAt` is set when it is first
/// released.
#[utoipa::path(patch, path = "/v1/systems/{id}/versions/{version_id}", tag = "versions", request_body = UpdateVersion,
    params(("id" = Uuid, Path, description = "System id"), ("version_id" = Uuid, Path, description = "Version id")),
    responses(
        (status = 200, body = SystemVersion),
        (status = 404, description = "No such system or version in this tenant", body = Problem),
        (status = 422, description = "Invalid fields or status transition", body = Problem)))]
pub async fn update_version(
    Scoped { state, tenant }: Scoped<AppState>,
    Path((id, version_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<UpdateVersion>,
) -> Result<Json<SystemVersion>, ApiError> {
    let body = &body;
    let v = in_tenant_tx!(state, tenant, |tx| {
        let current = repo::get_version(&mut tx, id, version_id, true)
            .await?
            .ok_or_else(|| version_not_found(version_id))?;
        let (notes, status) = body.clone().apply(&current)?;
        repo::update_version(&mut tx, version_id, &notes, &status).await?
    })?;
    Ok(Json(v))
}

/// Delete a version of a system.
#[utoipa::path(delete, path = "/v1/systems/{id}/versions/{version_id}", tag = "versions",
    params(("id" = Uuid, Path, description = "System id"), ("version_id" = Uuid, Path, description = "Version id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such system or version in this tenant", body = Problem)))]
pub async fn delete_version(
    Scoped { state, tenant }: Scoped<AppState>,
    Path((id, version_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let deleted = in_tenant_tx!(state, tenant, |tx| repo::delete_version(
        &mut tx, id, version_id
    )
    .await?)?;
    no_content_if(deleted, || version_not_found(version_id))
}

/// Query of `GET /v1/systems/{id}/versions`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VersionQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only versions with this status (`draft`, `released`, `deprecated`).
    pub status: Option<String>,
}

/// List a system's versions, oldest first (by creation time, then id).
#[utoipa::path(get, path = "/v1/systems/{id}/versions", tag = "versions",
    params(("id" = Uuid, Path, description = "System id"), VersionQuery),
    responses(
        (status = 200, body = Page<SystemVersion>),
        (status = 404, description = "No such system in this tenant", body = Problem)))]
pub async fn list_versions(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<Page<SystemVersion>>, ApiError> {
    let (limit, after) = pagination::page::<Cursor>(q.limit, q.cursor.as_deref())?;
    let status = q
        .status
        .as_deref()
        .map(|s| domain::parse_version_status(s).map_err(|m| ApiError::bad_request("status", m)))
        .transpose()?;
    let status = status.as_deref();
    let versions = in_tenant_tx!(state, tenant, |tx| {
        ensure_system(&mut tx, id).await?;
        repo::list_versions(&mut tx, id, status, after, limit).await?
    })?;
    Ok(Json(Page::from_overfetch(versions, limit, |v| {
        (v.created_at, v.id)
    })))
}
