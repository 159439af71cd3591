//! `/v1/systems`: create, read, list, update (optimistic concurrency with `If-Match`) and delete
//! management systems.

use axum::http::StatusCode;
use axum::response::Response;
use prismicx_service_common::error::Problem;
use prismicx_service_common::extract::{self, created, IfMatch, Json, Path, Query};
use prismicx_service_common::pagination::{self, Page};
use prismicx_service_common::tenancy::Scoped;
use prismicx_service_common::ApiError;
use uuid::Uuid;

use super::{check_revision, in_tenant_tx, system_not_found, Cursor};
use crate::configs::Configs;
use crate::domain::{self, CreateSystem, System, UpdateSystem};
use crate::repo::{self, Lock};
use crate::{schema, AppState};
use prismicx_service_common::pg::retry::{retry_pg, Fail};

fn with_etag(status: StatusCode, system: System) -> Response {
    extract::with_etag(status, system.revision, system)
}

/// Register a system.
#[utoipa::path(post, path = "/v1/systems", tag = "systems", request_body = CreateSystem,
    responses(
        (status = 201, description = "Created", body = System,
            headers(("location" = String, description = "URL of the new system"),
                    ("etag" = String, description = "Revision, for If-Match"))),
        (status = 409, description = "A system with this name exists", body = Problem),
        (status = 422, description = "Invalid fields (configSchema errors carry JSON pointers)", body = Problem),
        (status = 503, description = "Too many configuration schema checks running; retry", body = Problem)))]
pub async fn create_system(
    Scoped { state, tenant }: Scoped<AppState>,
    Json(body): Json<CreateSystem>,
) -> Result<Response, ApiError> {
    // Validation compiles the configSchema: on the blocking pool, before the transaction.
    let new = state
        .schemas
        .run(tenant.id, "configSchema", move || body.validate())
        .await??;
    let new = &new;
    let system = in_tenant_tx!(state, tenant, |tx| repo::insert_system(&mut tx, new)
        .await?)?;
    let location = format!("/v1/systems/{}", system.id);
    Ok(created(&location, with_etag(StatusCode::CREATED, system)))
}

/// Get a system.
#[utoipa::path(get, path = "/v1/systems/{id}", tag = "systems",
    params(("id" = Uuid, Path, description = "System id")),
    responses(
        (status = 200, body = System, headers(("etag" = String, description = "Revision, for If-Match"))),
        (status = 404, description = "No such system in this tenant", body = Problem)))]
pub async fn get_system(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let system = in_tenant_tx!(state, tenant, |tx| repo::get_system(
        &mut tx,
        id,
        Lock::None
    )
    .await?)?
    .ok_or_else(|| system_not_found(id))?;
    Ok(with_etag(StatusCode::OK, system))
}

/// Change a system. Requires `If-Match` with the ETag last read; `attributes` is a JSON merge
/// patch, `configSchema` replaces the schema (existing configuration versions are kept as they
/// are; new ones are validated against the new schema).
#[utoipa::path(patch, path = "/v1/systems/{id}", tag = "systems", request_body = UpdateSystem,
    params(("id" = Uuid, Path, description = "System id"),
           ("If-Match" = String, Header, description = "ETag of the system as last read, e.g. \"3\"")),
    responses(
        (status = 200, body = System, headers(("etag" = String, description = "New revision"))),
        (status = 404, description = "No such system in this tenant", body = Problem),
        (status = 409, description = "Name taken", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
        (status = 503, description = "Too many configuration schema checks running; retry", body = Problem)))]
pub async fn update_system(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    if_match: IfMatch,
    Json(body): Json<UpdateSystem>,
) -> Result<Response, ApiError> {
    let expected = if_match.required()?;
    // A new configSchema is compiled on the blocking pool before the row is locked.
    if let Some(s) = body.config_schema.clone() {
        state
            .schemas
            .run(tenant.id, "configSchema", move || schema::check(&s))
            .await??;
    }
    let body = &body;
    let system = in_tenant_tx!(state, tenant, |tx| {
        let current = repo::get_system(&mut tx, id, Lock::Update)
            .await?
            .ok_or_else(|| system_not_found(id))?;
        check_revision(Some(expected), current.revision)?;
        let next = body.clone().apply(&current)?;
        repo::update_system(&mut tx, id, &next).await?
    })?;
    Ok(with_etag(StatusCode::OK, system))
}

/// Delete a system with its versions, relations and every configuration version. `If-Match` is
/// optional; when given it must match. Configurations are deleted first, then the row, while
/// the row is locked; if the configuration delete fails the system stays and the request can be
/// repeated.
#[utoipa::path(delete, path = "/v1/systems/{id}", tag = "systems",
    params(("id" = Uuid, Path, description = "System id"),
           ("If-Match" = Option<String>, Header, description = "ETag of the system as last read")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such system in this tenant", body = Problem),
        (status = 503, description = "A database is unavailable; nothing of the system is lost except possibly part of its configurations, retry", body = Problem)))]
pub async fn delete_system(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let (db, t) = (&state.db, &tenant);
    let (mut tx, current) = retry_pg(move || async move {
        let mut tx = db.begin(t).await?;
        let s = repo::get_system(&mut tx, id, Lock::Update).await?;
        Ok::<_, Fail>((tx, s))
    })
    .await?;
    let current = current.ok_or_else(|| system_not_found(id))?;
    check_revision(if_match.0, current.revision)?;
    // Configurations first: while the row is locked no configuration can be written, and if
    // this fails the transaction rolls back and the system is still there to delete again.
    Configs::new(&state.store, &tenant, id).delete_all().await?;
    if !repo::delete_system(&mut tx, id).await? {
        return Err(system_not_found(id));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/systems`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SystemQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only systems of this kind.
    pub kind: Option<String>,
}

/// List systems, oldest first (by creation time, then id).
#[utoipa::path(get, path = "/v1/systems", tag = "systems", params(SystemQuery),
    responses((status = 200, body = Page<System>)))]
pub async fn list_systems(
    Scoped { state, tenant }: Scoped<AppState>,
    Query(q): Query<SystemQuery>,
) -> Result<Json<Page<System>>, ApiError> {
    let (limit, after) = pagination::page::<Cursor>(q.limit, q.cursor.as_deref())?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| domain::parse_kind(k).map_err(|m| ApiError::bad_request("kind", m)))
        .transpose()?;
    let kind = kind.as_deref();
    let systems = in_tenant_tx!(state, tenant, |tx| repo::list_systems(
        &mut tx, kind, after, limit
    )
    .await?)?;
    Ok(Json(Page::from_overfetch(systems, limit, |s| {
        (s.created_at, s.id)
    })))
}
