//! `/v1/systems/{id}/relations`: typed edges between two systems of the same tenant.

use axum::http::StatusCode;
use axum::response::Response;
use prismicx_service_common::error::Problem;
use prismicx_service_common::extract::{created, no_content_if, Json, Path, Query};
use prismicx_service_common::pagination::{self, Page};
use prismicx_service_common::tenancy::Scoped;
use prismicx_service_common::ApiError;
use uuid::Uuid;

use super::{ensure_system, in_tenant_tx, system_not_found, Cursor};
use crate::domain::{self, CreateRelation, Relation};
use crate::repo::{self, Direction, Lock};
use crate::AppState;
use prismicx_service_common::pg::retry::Fail;

fn relation_not_found(id: Uuid) -> ApiError {
    ApiError::not_found("relation", id)
}

fn unknown_target() -> ApiError {
    ApiError::invalid("targetId", "no system with this id exists in this tenant")
}

/// Relate a system (the source) to another system of the tenant (the target).
#[utoipa::path(post, path = "/v1/systems/{id}/relations", tag = "relations", request_body = CreateRelation,
    params(("id" = Uuid, Path, description = "Source system id")),
    responses(
        (status = 201, body = Relation, headers(("location" = String, description = "URL of the new relation"))),
        (status = 404, description = "No such source system in this tenant", body = Problem),
        (status = 409, description = "The same relation (target and kind) exists", body = Problem),
        (status = 422, description = "Invalid fields; targetId names no system of this tenant, or the source itself", body = Problem)))]
pub async fn create_relation(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<CreateRelation>,
) -> Result<Response, ApiError> {
    let new = body.validate(id)?;
    let new = &new;
    let relation = in_tenant_tx!(state, tenant, |tx| {
        repo::get_system(&mut tx, id, Lock::Share)
            .await?
            .ok_or_else(|| system_not_found(id))?;
        if repo::get_system(&mut tx, new.target_id, Lock::Share)
            .await?
            .is_none()
        {
            return Err(unknown_target().into());
        }
        // The composite foreign keys refuse a target outside the tenant at the database level
        // too (a concurrent delete of the target lands here).
        repo::insert_relation(&mut tx, id, new)
            .await
            .map_err(|e| match e {
                Fail::Db(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23503") => {
                    Fail::Api(unknown_target())
                }
                other => other,
            })?
    })?;
    let location = format!("/v1/systems/{id}/relations/{}", relation.id);
    Ok(created(&location, Json(relation)))
}

/// Get a relation that starts or ends at the system.
#[utoipa::path(get, path = "/v1/systems/{id}/relations/{relation_id}", tag = "relations",
    params(("id" = Uuid, Path, description = "System id (source or target)"), ("relation_id" = Uuid, Path, description = "Relation id")),
    responses(
        (status = 200, body = Relation),
        (status = 404, description = "No such relation at this system in this tenant", body = Problem)))]
pub async fn get_relation(
    Scoped { state, tenant }: Scoped<AppState>,
    Path((id, relation_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Relation>, ApiError> {
    let r = in_tenant_tx!(state, tenant, |tx| repo::get_relation(
        &mut tx,
        id,
        relation_id
    )
    .await?)?
    .ok_or_else(|| relation_not_found(relation_id))?;
    Ok(Json(r))
}

/// Delete a relation that starts or ends at the system.
#[utoipa::path(delete, path = "/v1/systems/{id}/relations/{relation_id}", tag = "relations",
    params(("id" = Uuid, Path, description = "System id (source or target)"), ("relation_id" = Uuid, Path, description = "Relation id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such relation at this system in this tenant", body = Problem)))]
pub async fn delete_relation(
    Scoped { state, tenant }: Scoped<AppState>,
    Path((id, relation_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let deleted = in_tenant_tx!(state, tenant, |tx| repo::delete_relation(
        &mut tx,
        id,
        relation_id
    )
    .await?)?;
    no_content_if(deleted, || relation_not_found(relation_id))
}

/// Query of `GET /v1/systems/{id}/relations`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RelationQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// `outgoing` (the system is the source), `incoming` (the target) or `both` (default).
    pub direction: Option<String>,
    /// Only relations of this kind.
    pub kind: Option<String>,
}

/// List the relations of a system, oldest first (by creation time, then id).
#[utoipa::path(get, path = "/v1/systems/{id}/relations", tag = "relations",
    params(("id" = Uuid, Path, description = "System id"), RelationQuery),
    responses(
        (status = 200, body = Page<Relation>),
        (status = 404, description = "No such system in this tenant", body = Problem)))]
pub async fn list_relations(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<RelationQuery>,
) -> Result<Json<Page<Relation>>, ApiError> {
    let (limit, after) = pagination::page::<Cursor>(q.limit, q.cursor.as_deref())?;
    let direction = match q.direction.as_deref().unwrap_or("both") {
        "outgoing" => Direction::Outgoing,
        "incoming" => Direction::Incoming,
        "both" => Direction::Both,
        _ => {
            return Err(ApiError::bad_request(
                "direction",
                "must be outgoing, incoming or both",
            ))
        }
    };
    let kind = q
        .kind
        .as_deref()
        .map(|k| domain::parse_relation_kind(k).map_err(|m| ApiError::bad_request("kind", m)))
        .transpose()?;
    let kind = kind.as_deref();
    let relations = in_tenant_tx!(state, tenant, |tx| {
        ensure_system(&mut tx, id).await?;
        repo::list_relations(&mut tx, id, direction, kind, after, limit).await?
    })?;
    Ok(Json(Page::from_overfetch(relations, limit, |r| {
        (r.created_at, r.id)
    })))
}
