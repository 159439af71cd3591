//! Query shapes the PostgreSQL services' repositories share, where only the table differs. Each
//! runs inside the caller's [`TenantTx`], so row-level security keeps it to the transaction's
//! tenant.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{build_query_as, query, TenantTx};

/// A keyset position in a list ordered by (time, id): the page holds the rows strictly after
/// it (`None`: the first page).
pub type After = Option<(DateTime<Utc>, Uuid)>;

/// One page of a list in (`time_col`, `id_col`) order: finishes `qb` (a `SELECT … WHERE
/// <conditions>`) with the rows strictly after `after`, the order and `LIMIT limit + 1`, so the
/// caller can tell whether another page follows
/// ([`Page::from_overfetch`](crate::pagination::Page::from_overfetch)), and runs it in `tx`. The
/// column names are the repository's constants, never request input.
pub async fn keyset_page<T>(
    tx: &mut TenantTx,
    mut qb: QueryBuilder<'_, Postgres>,
    (time_col, id_col): (&str, &str),
    after: After,
    limit: u32,
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    if let Some((at, id)) = after {
        qb.push(format!(" AND ({time_col}, {id_col}) > ("))
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(format!(" ORDER BY {time_col}, {id_col} LIMIT "))
        .push_bind(i64::from(limit) + 1);
    build_query_as::<T>(&mut qb).fetch_all(tx.conn()).await
}

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
