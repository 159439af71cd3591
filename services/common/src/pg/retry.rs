//! Retries of PostgreSQL units of work on transient failures (used by services whose handlers
//! retry whole transactions; see management-system-repo and user-data).
//!
//! A unit of work (begin, statements, commit) is run again, from the start, under the store's
//! one retry policy ([`prismicx_store::retry::TRANSIENT`]: which errors are transient, how
//! often, how long to wait). A handler's unit of work fails with a [`Fail`]: a database error,
//! kept as is so it can be classified, or an [`ApiError`] the handler decided on, never retried.

use std::future::Future;

use prismicx_store::retry::TransientError;

use crate::ApiError;

/// Attempts before the last error is returned.
pub const ATTEMPTS: u32 = prismicx_store::retry::TRANSIENT.attempts;

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

impl TransientError for Fail {
    fn pg_error(&self) -> Option<&sqlx::Error> {
        match self {
            Fail::Db(e) => Some(e),
            Fail::Api(_) => None,
        }
    }
}

impl Fail {
    /// Whether running the unit of work again may succeed.
    pub fn is_transient(&self) -> bool {
        TransientError::is_transient(self)
    }
}

/// Serialization failures, deadlocks and connection trouble.
pub use prismicx_store::retry::is_transient_pg as is_transient;

/// Runs `op` until it succeeds, fails permanently, or has been tried [`ATTEMPTS`] times.
pub async fn retry_pg<R, F, Fut>(op: F) -> Result<R, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R, Fail>>,
{
    prismicx_store::retry::retry_transient(op)
        .await
        .map_err(ApiError::from)
}

/// Runs `$body` in the tenant's PostgreSQL transaction (`$tx`), commits, and runs it all again
/// on a transient failure ([`retry_pg`]); the value of `$body` is the answer. The body sees
/// only `$tx` and what the handler lent it by reference (or `Copy` values), since it may run
/// more than once; `?` turns database and API errors into [`Fail`], and only database errors
/// the retry policy calls transient run it again. Every PostgreSQL service's handlers go
/// through it.
#[macro_export]
macro_rules! in_tenant_tx {
    ($state:expr, $tenant:expr, |$tx:ident| $body:expr) => {{
        let db = &$state.db;
        let tenant = &$tenant;
        $crate::pg::retry::retry_pg(move || async move {
            let mut $tx = db.begin(tenant).await?;
            let out = $body;
            $tx.commit().await?;
            Ok::<_, $crate::pg::retry::Fail>(out)
        })
        .await
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
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
}
