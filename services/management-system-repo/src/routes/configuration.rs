//! `/v1/systems/{id}/configuration`: versioned configuration documents in MongoDB `config_db`.
//!
//! Every request first checks the system in PostgreSQL within the tenant's transaction (so a
//! system of another tenant is a 404 like any unknown id). A write reads the system's
//! `configSchema`, validates the configuration against it on the blocking pool with no
//! transaction open ([`SchemaGate`](crate::schema::gate::SchemaGate)), then opens the transaction
//! with the row locked `FOR SHARE` and makes sure the schema is still the one validated against
//! (else validates again against the new one, a few rounds, then 409). The lock is held while
//! the version is written to MongoDB, so the schema cannot change and the system cannot be
//! deleted meanwhile; the transaction only read, so its commit afterwards just releases the lock.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use prismicx_service_common::auth::Principal;
use prismicx_service_common::error::Problem;
use prismicx_service_common::extract::{self, with_etag, IfMatch, Json, Path, Query};
use prismicx_service_common::pagination::{Page, PageQuery};
use prismicx_service_common::pg::TenantTx;
use prismicx_service_common::tenancy::{Scoped, TenantPlacement};
use prismicx_service_common::ApiError;
use serde_json::Value;
use uuid::Uuid;

use super::{actor, in_tenant_tx, system_not_found};
use crate::configs::{document_of, Configs, NewConfig};
use crate::diff;
use crate::domain::{
    self, Configuration, ConfigurationDiff, ConfigurationSummary, PutConfiguration, Rollback,
    System,
};
use crate::repo::{self, Lock};
use crate::{schema, AppState};
use prismicx_service_common::pg::retry::{retry_pg, Fail};

fn version_not_found(n: i64) -> ApiError {
    ApiError::not_found("configuration version", n)
}

/// Opens the tenant's transaction with the system locked `FOR SHARE`.
async fn lock_system(
    state: &AppState,
    tenant: &TenantPlacement,
    id: Uuid,
) -> Result<(TenantTx, System), ApiError> {
    let db = &state.db;
    let (tx, system) = retry_pg(move || async move {
        let mut tx = db.begin(tenant).await?;
        let s = repo::get_system(&mut tx, id, Lock::Share).await?;
        Ok::<_, Fail>((tx, s))
    })
    .await?;
    Ok((tx, system.ok_or_else(|| system_not_found(id))?))
}

/// Rounds of validate-then-lock before a write whose system's schema keeps changing gives up.
const SCHEMA_ROUNDS: usize = 3;

/// The system as it is now, without a lock (404 unless it exists in this tenant).
async fn read_system(
    state: &AppState,
    tenant: &TenantPlacement,
    id: Uuid,
) -> Result<System, ApiError> {
    in_tenant_tx!(state, tenant, |tx| repo::get_system(
        &mut tx,
        id,
        Lock::None
    )
    .await?)?
    .ok_or_else(|| system_not_found(id))
}

/// Validates `config` against `schema` (the system's, as last read), then locks the system
/// `FOR SHARE`; returns the open transaction once the locked system's schema is the one
/// `config` was validated against.
async fn lock_validated(
    state: &AppState,
    tenant: &TenantPlacement,
    id: Uuid,
    config: Arc<Value>,
    mut schema: Value,
) -> Result<TenantTx, ApiError> {
    for _ in 0..SCHEMA_ROUNDS {
        let s = Arc::new(schema);
        let (s2, c) = (s.clone(), config.clone());
        state
            .schemas
            .run(tenant.id, "config", move || {
                schema::validate_config(&s2, &c)
            })
            .await??;
        let (tx, system) = lock_system(state, tenant, id).await?;
        if system.config_schema == *s {
            return Ok(tx);
        }
        release(tx).await;
        schema = system.config_schema;
    }
    Err(ApiError::conflict(
        "configSchema",
        "the system's configSchema kept changing while the configuration was validated; retry",
    ))
}

/// Fails with 404 unless the system exists in this tenant.
async fn require_system(
    state: &AppState,
    tenant: &TenantPlacement,
    id: Uuid,
) -> Result<(), ApiError> {
    in_tenant_tx!(state, tenant, |tx| super::ensure_system(&mut tx, id)
        .await?)
}

/// Ends the read-only locking transaction once the version is written; a failure only means the
/// lock was released by the server already.
async fn release(tx: TenantTx) {
    if let Err(e) = tx.commit().await {
        tracing::warn!(error = %e, "releasing the system lock failed; the configuration is stored");
    }
}

fn created(id: Uuid, c: Configuration) -> Response {
    let location = format!("/v1/systems/{id}/configuration/versions/{}", c.version);
    extract::created(&location, with_etag(StatusCode::CREATED, c.version, c))
}

/// Write a new configuration version: validated against the system's `configSchema`, stored as
/// the next version number (versions are never overwritten). `If-Match` is optional; when
/// given it must name the latest version (`"0"` when there is none yet).
#[utoipa::path(put, path = "/v1/systems/{id}/configuration", tag = "configuration", request_body = PutConfiguration,
    params(("id" = Uuid, Path, description = "System id"),
           ("If-Match" = Option<String>, Header, description = "ETag of the latest configuration version as last read, e.g. \"3\"")),
    responses(
        (status = 201, description = "Stored as a new version", body = Configuration,
            headers(("etag" = String, description = "The new version number"),
                    ("location" = String, description = "URL of the new version"))),
        (status = 404, description = "No such system in this tenant", body = Problem),
        (status = 409, description = "Too many concurrent writers, or the system's configSchema no longer compiles", body = Problem),
        (status = 422, description = "Invalid body; each schema violation is listed with its JSON pointer (/config/...)", body = Problem),
        (status = 503, description = "Too many configuration schema checks running; retry", body = Problem)))]
pub async fn put_configuration(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<Uuid>,
    if_match: IfMatch,
    Json(body): Json<PutConfiguration>,
) -> Result<Response, ApiError> {
    domain::validate_config_document(&body.config)?;
    let comment = domain::parse_comment(body.comment.as_deref())?;
    let config = Arc::new(body.config);
    let current = read_system(&state, &tenant, id).await?;
    let tx = lock_validated(&state, &tenant, id, config.clone(), current.config_schema).await?;
    let configs = Configs::new(&state.store, &tenant, id);
    let stored = configs
        .append(
            if_match.0,
            NewConfig {
                config: document_of(&config),
                comment,
                rolled_back_from: None,
                created_by: actor(&principal),
            },
        )
        .await;
    release(tx).await;
    Ok(created(id, configs.configuration(&stored?)?))
}

/// Copy an earlier version into a new latest version: its content is exactly version
/// `toVersion`'s, and it records `rolledBackFrom`. The content must satisfy the system's
/// current `configSchema`. `If-Match` as for PUT.
#[utoipa::path(post, path = "/v1/systems/{id}/configuration/rollback", tag = "configuration", request_body = Rollback,
    params(("id" = Uuid, Path, description = "System id"),
           ("If-Match" = Option<String>, Header, description = "ETag of the latest configuration version as last read")),
    responses(
        (status = 201, description = "Stored as a new version", body = Configuration,
            headers(("etag" = String, description = "The new version number"),
                    ("location" = String, description = "URL of the new version"))),
        (status = 404, description = "No such system in this tenant", body = Problem),
        (status = 409, description = "Too many concurrent writers", body = Problem),
        (status = 422, description = "toVersion names no version, or its content violates the current configSchema", body = Problem),
        (status = 503, description = "Too many configuration schema checks running; retry", body = Problem)))]
pub async fn rollback(
    Scoped { state, tenant }: Scoped<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<Uuid>,
    if_match: IfMatch,
    Json(body): Json<Rollback>,
) -> Result<Response, ApiError> {
    if body.to_version < 1 {
        return Err(ApiError::invalid("toVersion", "must be 1 or more"));
    }
    let comment = match body.comment.as_deref() {
        Some(c) => domain::parse_comment(Some(c))?,
        None => format!("rollback to version {}", body.to_version),
    };
    let current = read_system(&state, &tenant, id).await?;
    let configs = Configs::new(&state.store, &tenant, id);
    // Versions are immutable, so the source can be read before the system is locked; if the
    // system is deleted meanwhile, locking it answers 404.
    let source = configs
        .get(body.to_version)
        .await?
        .ok_or_else(|| ApiError::invalid("toVersion", "names no version of this configuration"))?;
    let config = match source.get_document("config") {
        Ok(d) => d.clone(),
        Err(_) => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "stored configuration lacks config"
            )))
        }
    };
    let as_json = Arc::new(configs.configuration(&source)?.config);
    let tx = lock_validated(&state, &tenant, id, as_json, current.config_schema).await?;
    let stored = configs
        .append(
            if_match.0,
            NewConfig {
                config,
                comment,
                rolled_back_from: Some(body.to_version),
                created_by: actor(&principal),
            },
        )
        .await;
    release(tx).await;
    Ok(created(id, configs.configuration(&stored?)?))
}

/// The latest configuration version.
#[utoipa::path(get, path = "/v1/systems/{id}/configuration", tag = "configuration",
    params(("id" = Uuid, Path, description = "System id")),
    responses(
        (status = 200, body = Configuration, headers(("etag" = String, description = "The version number, for If-Match"))),
        (status = 404, description = "No such system in this tenant, or it has no configuration yet", body = Problem)))]
pub async fn get_latest(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    require_system(&state, &tenant, id).await?;
    let configs = Configs::new(&state.store, &tenant, id);
    let d = configs
        .latest()
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("system {id} has no configuration yet")))?;
    let c = configs.configuration(&d)?;
    Ok(with_etag(StatusCode::OK, c.version, c))
}

/// One configuration version.
#[utoipa::path(get, path = "/v1/systems/{id}/configuration/versions/{version}", tag = "configuration",
    params(("id" = Uuid, Path, description = "System id"), ("version" = i64, Path, description = "Version number (1, 2, …)")),
    responses(
        (status = 200, body = Configuration, headers(("etag" = String, description = "The version number"))),
        (status = 404, description = "No such system in this tenant, or no such version", body = Problem)))]
pub async fn get_version(
    Scoped { state, tenant }: Scoped<AppState>,
    Path((id, version)): Path<(Uuid, i64)>,
) -> Result<Response, ApiError> {
    require_system(&state, &tenant, id).await?;
    let configs = Configs::new(&state.store, &tenant, id);
    let d = configs
        .get(version)
        .await?
        .ok_or_else(|| version_not_found(version))?;
    let c = configs.configuration(&d)?;
    Ok(with_etag(StatusCode::OK, c.version, c))
}

/// The configuration's history, newest first (summaries without the documents).
#[utoipa::path(get, path = "/v1/systems/{id}/configuration/versions", tag = "configuration",
    params(("id" = Uuid, Path, description = "System id"), PageQuery),
    responses(
        (status = 200, body = Page<ConfigurationSummary>),
        (status = 404, description = "No such system in this tenant", body = Problem)))]
pub async fn list_versions(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<ConfigurationSummary>>, ApiError> {
    let (limit, before) = q.page::<i64>()?;
    require_system(&state, &tenant, id).await?;
    let configs = Configs::new(&state.store, &tenant, id);
    let items = configs
        .history(before, limit)
        .await?
        .iter()
        .map(|d| configs.summary(d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Page::from_overfetch(items, limit, |s| s.version)))
}

/// Query of `GET .../configuration/diff`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiffQuery {
    /// The version to diff from (required).
    pub from: Option<i64>,
    /// The version to diff to (required).
    pub to: Option<i64>,
}

/// The difference between two versions as an RFC 6902 JSON Patch: applied to version `from`'s
/// config it yields version `to`'s.
#[utoipa::path(get, path = "/v1/systems/{id}/configuration/diff", tag = "configuration",
    params(("id" = Uuid, Path, description = "System id"), DiffQuery),
    responses(
        (status = 200, body = ConfigurationDiff),
        (status = 404, description = "No such system in this tenant, or no such version", body = Problem)))]
pub async fn diff(
    Scoped { state, tenant }: Scoped<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<ConfigurationDiff>, ApiError> {
    let from = q
        .from
        .ok_or_else(|| ApiError::bad_request("from", "is required"))?;
    let to =
        q.to.ok_or_else(|| ApiError::bad_request("to", "is required"))?;
    require_system(&state, &tenant, id).await?;
    let configs = Configs::new(&state.store, &tenant, id);
    let load = |n: i64| {
        let configs = &configs;
        async move {
            let d = configs.get(n).await?.ok_or_else(|| version_not_found(n))?;
            configs.configuration(&d).map(|c| c.config)
        }
    };
    let a = load(from).await?;
    let b = load(to).await?;
    Ok(Json(ConfigurationDiff {
        system_id: id,
        from,
        to,
        patch: diff::diff(&a, &b),
    }))
}
