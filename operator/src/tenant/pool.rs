//! The tenant in PgBouncer: a dedicated tenant's pool alias per PostgreSQL service database
//! (`<db>__<slug>`, its own `pool_size`), written to the `[databases]` file PgBouncer includes,
//! applied with `RELOAD` and verified with `SHOW DATABASES`; standard tenants have no alias
//! (they use the service database's pool). A suspended dedicated tenant's aliases are
//! `DISABLE`d (no new client connections) until it is resumed.
//!
//! The file holds every tenant's entries, so edits are serialized by a process-wide lock and
//! touch only this tenant's lines.

use anyhow::{Context as _, Result};
use prismicx_store::pg::pgbouncer::{self, PoolEntry};
use sqlx::Executor;

use super::plan::TenantPlan;
use crate::dataplane::DataPlane;

/// Serialises this process's read-modify-write edits of the include file.
static FILE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Holds off this process's edits of the include file while the guard lives (for an edit made
/// outside the operator in the same process, such as a test's hand edit).
pub async fn lock_databases_file() -> tokio::sync::MutexGuard<'static, ()> {
    FILE_LOCK.lock().await
}

/// The entries `plan` wants, and the aliases it must not have.
pub fn desired(plan: &TenantPlan, dp: &DataPlane) -> (Vec<PoolEntry>, Vec<String>) {
    let mut keep = Vec::new();
    let mut remove = Vec::new();
    for pg in &plan.postgres {
        match &pg.pool {
            Some(pool) => keep.push(PoolEntry {
                name: pool.alias.clone(),
                host: dp.endpoints.pool_server_host.clone(),
                port: dp.endpoints.pool_server_port,
                dbname: Some(pg.database.to_string()),
                pool_size: Some(pool.size),
            }),
            None => remove.push(pg.dedicated_alias.clone()),
        }
    }
    (keep, remove)
}

/// Makes PgBouncer serve exactly the tenant's desired aliases. Returns a summary.
pub async fn apply(dp: &DataPlane, plan: &TenantPlan) -> Result<String> {
    let (entries, remove) = desired(plan, dp);
    edit(dp, &remove, &entries).await?;
    if entries.is_empty() {
        return Ok("shared pools".into());
    }
    let mut admin = dp.pgbouncer_admin().await?;
    for e in &entries {
        let cmd = if plan.suspended { "DISABLE" } else { "ENABLE" };
        admin
            .execute(format!("{cmd} {}", e.name).as_str())
            .await
            .with_context(|| format!("PgBouncer {cmd} {}", e.name))?;
    }
    Ok(if entries.is_empty() {
        "shared pools".into()
    } else {
        entries
            .iter()
            .map(|e| format!("{} (size {})", e.name, e.pool_size.unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Removes every alias of the tenant.
pub async fn remove(dp: &DataPlane, plan: &TenantPlan) -> Result<()> {
    let all: Vec<String> = plan
        .postgres
        .iter()
        .map(|p| p.dedicated_alias.clone())
        .collect();
    edit(dp, &all, &[]).await
}

/// Edits the tenant's lines of the include file; reloads only when the file changed, and
/// always checks that PgBouncer serves the entries (it may have been restarted with another
/// file, or the file edited by hand).
async fn edit(dp: &DataPlane, remove: &[String], upsert: &[PoolEntry]) -> Result<()> {
    let _guard = FILE_LOCK.lock().await;
    let path = &dp.pgbouncer_databases_file;
    let existing = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let wanted = pgbouncer::edit_databases(&existing, remove, upsert)?;
    if upsert.is_empty() && wanted == existing {
        // A standard tenant without stale aliases: nothing to tell PgBouncer.
        return Ok(());
    }
    let mut admin = dp.pgbouncer_admin().await?;
    let shown = pgbouncer::show_databases(&mut admin).await?;
    let served = upsert.iter().all(|e| {
        shown
            .get(&e.name)
            .is_some_and(|s| Some(s.pool_size) == e.pool_size.map(i64::from))
    });
    if wanted != existing || !served {
        pgbouncer::apply(&mut admin, path, &wanted, upsert).await?;
    }
    Ok(())
}

/// Compares what PgBouncer serves with the plan.
pub async fn observe(dp: &DataPlane, plan: &TenantPlan) -> Result<Vec<String>> {
    let (entries, stale) = desired(plan, dp);
    let file = std::fs::read_to_string(&dp.pgbouncer_databases_file).unwrap_or_default();
    let in_file = |name: &str| {
        file.lines()
            .any(|l| l.split_once('=').is_some_and(|(n, _)| n.trim() == name))
    };
    let mut out: Vec<String> = stale
        .iter()
        .filter(|a| in_file(a))
        .map(|a| format!("pool {a} is configured for a standard tenant"))
        .collect();
    if entries.is_empty() {
        return Ok(out);
    }
    let mut admin = dp.pgbouncer_admin().await?;
    let shown = pgbouncer::show_databases(&mut admin).await?;
    for e in &entries {
        match shown.get(&e.name) {
            None => out.push(format!("pool {} is not served", e.name)),
            Some(s) if Some(s.pool_size) != e.pool_size.map(i64::from) => out.push(format!(
                "pool {} has size {} instead of {}",
                e.name,
                s.pool_size,
                e.pool_size.unwrap_or_default()
            )),
            _ => {}
        }
        if !in_file(&e.name) {
            out.push(format!(
                "pool {} is missing from {}",
                e.name,
                dp.pgbouncer_databases_file.display()
            ));
        }
    }
    Ok(out)
}
