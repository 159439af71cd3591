//! Query shapes the PostgreSQL services' repositories share, where only the table differs. Each
//! runs inside the caller's [`TenantTx`], so row-level security keeps it to the transaction's
//! tenant.

use uuid::Uuid;

use super::{query, TenantTx};

/// Deletes the row `id` of `table`; whether there was one. `table` is a table of the service's
/// own schema (a constant), never request input.
pub async fn delete_by_id(
    tx: &mut TenantTx,
    table: &'static str,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let sql = format!("DELETE FROM {table} WHERE id = $1");
    let done = query(&sql).bind(id).execute(tx.conn()).await?;
    Ok(done.rows_affected() == 1)
}
