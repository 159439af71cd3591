//! user-data-service: the users of each PrismicX tenant — profiles, JSONB attributes, roles and
//! memberships, search and cursor pagination, and an audit trail.
//!
//! Data flow: a request passes the shared HTTP shell (auth, tenant resolution) into a handler in
//! [`routes`], which validates its input with [`domain`], opens the tenant's transaction on
//! `system_users` through PgBouncer ([`prismicx_service_common::pg::TenantDb::begin`]), runs the
//! SQL in `repo`, and commits. Tenant data lives in the tenant's schema `tenant_<slug>`; the
//! shared audit trail lives in `prismicx.audit_events` under row-level security.
//! [`migrations`] is the schema the operator applies to every tenant.

pub mod config;
pub mod domain;
pub mod migrations;
pub mod openapi;
mod repo;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prismicx_service_common::pg::{migrate, TenantDb};
use prismicx_service_common::service;
pub use prismicx_service_common::service::AppSettings;
use prismicx_service_common::tenancy::Tenancy;
use sqlx::Connection;

pub use config::Config;

/// The name in logs and metrics.
pub const SERVICE: &str = "user-data-service";

/// What handlers share: the tenant database pools and the tenancy.
pub type AppState = service::PgState;

prismicx_service_common::service_entry_points!(UserData, connect: |config, tenancy| connect(&config, tenancy));

/// Applies the system migrations over `url` (direct to PostgreSQL), retrying the connection for
/// up to a minute while the database comes up.
pub async fn migrate_system(url: &str) -> anyhow::Result<i32> {
    let mut delay = Duration::from_millis(250);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut conn = loop {
        match sqlx::PgConnection::connect(url).await {
            Ok(c) => break c,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "migration connection failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).context("connecting for system migrations"),
        }
    };
    migrate::apply_system(&mut conn, &migrations::SCHEMA).await
}

/// The state of a running service: the system migrations first when `USER_DB_MIGRATE_URL` is
/// set, then the tenant database pools (opened lazily).
async fn connect(config: &Config, tenancy: Tenancy) -> anyhow::Result<AppState> {
    if let Some(url) = &config.db_migrate_url {
        let v = migrate_system(url.expose()).await?;
        tracing::info!(version = v, "system migrations applied");
    }
    let db = Arc::new(TenantDb::connect_lazy(config.db.settings()));
    Ok(AppState { db, tenancy })
}
