//! HTTP handlers. Systems, versions and relations: parse and validate the request (a
//! `configSchema` is checked on the blocking pool through the [`SchemaGate`](crate::schema::gate::SchemaGate)
//! before any transaction), run one tenant transaction on PostgreSQL (retried on transient
//! failures), commit. Configurations: see [`configuration`]. Every JSON body comes in through
//! [`Body`].

pub mod configuration;
pub mod relations;
pub mod systems;
pub mod versions;

use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use prismicx_service_common::auth::Principal;
use prismicx_service_common::pg::TenantTx;
use prismicx_service_common::ApiError;
use uuid::Uuid;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/systems",
            get(systems::list_systems).post(systems::create_system),
        )
        .route(
            "/v1/systems/{id}",
            get(systems::get_system)
                .patch(systems::update_system)
                .delete(systems::delete_system),
        )
        .route(
            "/v1/systems/{id}/versions",
            get(versions::list_versions).post(versions::create_version),
        )
        .route(
            "/v1/systems/{id}/versions/{version_id}",
            get(versions::get_version)
                .patch(versions::update_version)
                .delete(versions::delete_version),
        )
        .route(
            "/v1/systems/{id}/relations",
            get(relations::list_relations).post(relations::create_relation),
        )
        .route(
            "/v1/systems/{id}/relations/{relation_id}",
            get(relations::get_relation).delete(relations::delete_relation),
        )
        .route(
            "/v1/systems/{id}/configuration",
            get(configuration::get_latest).put(configuration::put_configuration),
        )
        .route(
            "/v1/systems/{id}/configuration/versions",
            get(configuration::list_versions),
        )
        .route(
            "/v1/systems/{id}/configuration/versions/{version}",
            get(configuration::get_version),
        )
        .route(
            "/v1/systems/{id}/configuration/diff",
            get(configuration::diff),
        )
        .route(
            "/v1/systems/{id}/configuration/rollback",
            post(configuration::rollback),
        )
}

pub(crate) use prismicx_service_common::in_tenant_tx;

/// Who made a change (stored with configuration versions).
pub(crate) fn actor(p: &Principal) -> &'static str {
    match p {
        Principal::Platform => "platform",
        Principal::Tenant(_) => "tenant-key",
    }
}

pub(crate) type Cursor = (DateTime<Utc>, Uuid);

pub(crate) fn system_not_found(id: Uuid) -> ApiError {
    ApiError::not_found("system", id)
}

/// 404 unless the tenant has the system `id`.
pub(crate) async fn ensure_system(tx: &mut TenantTx, id: Uuid) -> Result<(), ApiError> {
    if crate::repo::system_exists(tx, id).await? {
        Ok(())
    } else {
        Err(system_not_found(id))
    }
}

/// The precondition of `If-Match` against the current revision.
pub(crate) fn check_revision(expected: Option<i64>, current: i64) -> Result<(), ApiError> {
    match expected {
        Some(e) if e != current => Err(ApiError::PreconditionFailed(format!(
            "If-Match names revision {e}, but the resource is at revision {current}; read it and retry"
        ))),
        _ => Ok(()),
    }
}
