//! Retries of PostgreSQL units of work on transient failures (used by services whose handlers
//! retry whole transactions; see management-system-repo).
//!
//! A unit of work (begin, statements, commit) is run again, from the start, when PostgreSQL
//! aborts it with a serialization failure or a deadlock, or when the connection fails (a
//! PgBouncer restart, a failover, a server that closed the connection). Everything else —
//! constraint violations, validation errors, pool exhaustion (503) — is returned at once.
//! Backoff is exponential with jitter so racing retries spread out.

use std::future::Future;
use std::time::Duration;

use crate::ApiError;

/// Attempts before the last error is returned.
pub const ATTEMPTS: u32 = 4;

/// An error of a unit of work: a database error (kept as is, so it can be classified) or an
/// API error decided by the handler.
#[derive(Debug)]
pub enum Fail {
    Db(sqlx::Error),
    Api(ApiError),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        Fail::Api(e)
    }
}

impl From<Fail> for ApiError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Db(e) => e.into(),
            Fail::Api(e) => e,
        }
    }
}

impl Fail {
    /// Whether running the unit of work again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Fail::Db(e) => is_transient(e),
            Fail::Api(_) => false,
        }
    }
}

/// Serialization failures, deadlocks and connection trouble.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c == "40001" // serialization_failure
                || c == "40P01" // deadlock_detected
                || c.starts_with("08") // connection_exception
                || c == "57P01" // admin_shutdown
                || c == "57P02" // crash_shutdown
                || c == "57P03" // cannot_connect_now
        }),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => true,
        _ => false,
    }
}

fn backoff(attempt: u32) -> Duration {
    // 25, 50, 100 ms (capped at 500 ms) plus up to 50 % jitter.
    let base = Duration::from_millis(25 * (1u64 << attempt.min(4))).min(Duration::from_millis(500));
    base + base.mul_f64(rand::random::<f64>() * 0.5)
}

/// Runs `op` until it succeeds, fails permanently, or has been tried [`ATTEMPTS`] times.
pub async fn retry_pg<R, F, Fut>(mut op: F) -> Result<R, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R, Fail>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt + 1 < ATTEMPTS => {
                tracing::debug!(attempt, error = ?e, "transient PostgreSQL error; running the unit of work again");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn transient_errors_are_retried_and_permanent_ones_are_not() {
        let calls = AtomicU32::new(0);
        let out = retry_pg(|| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(Fail::Db(sqlx::Error::Io(std::io::Error::other("reset"))))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(out.ok(), Some(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let out: Result<(), ApiError> = retry_pg(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Fail::Api(ApiError::NotFound("x".into()))) }
        })
        .await;
        assert_eq!(out.map_err(|e| e.status().as_u16()), Err(404));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let out: Result<(), ApiError> = retry_pg(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Fail::Db(sqlx::Error::Io(std::io::Error::other("down")))) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);
    }

    #[test]
    fn backoff_is_bounded() {
        assert!(backoff(0) >= Duration::from_millis(25));
        assert!(backoff(10) <= Duration::from_millis(750));
    }
}
