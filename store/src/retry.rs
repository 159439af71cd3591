//! The one retry policy for transient database errors, shared by every service and the
//! operator's store calls.
//!
//! A unit of work (a PostgreSQL transaction from `BEGIN` to `COMMIT`, a MongoDB operation or
//! transaction body) runs again, from the start, when it fails with an error that says "try
//! again": a serialization failure or deadlock, a connection that dropped (a PgBouncer restart,
//! a failover, an election), a server shutting down or not yet accepting connections, a MongoDB
//! write conflict or an error the server labels transient or retryable. Everything else —
//! constraint violations, validation errors, pool exhaustion, a foreign tenant — is returned at
//! once. [`TRANSIENT`] runs at most [`RetryPolicy::attempts`] times with exponential backoff
//! and jitter, so racing retries spread out.
//!
//! Errors say whether they are transient through [`TransientError`]: an error type that may wrap
//! a driver error hands it out ([`TransientError::pg_error`], [`TransientError::mongo_error`])
//! and the classifiers below decide.

use std::future::Future;
use std::time::Duration;

use mongodb::error::ErrorKind;

use crate::error::StoreError;
use crate::mongo::TenantMongoError;

/// How often and how patiently a unit of work is run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first run included) before the last error is returned.
    pub attempts: u32,
    /// The pause after the first failure; doubled after each further one.
    pub base: Duration,
    /// The longest pause (before jitter).
    pub cap: Duration,
}

/// The platform's policy: 6 attempts, pausing 20, 40, 80, 160, 320 ms (capped at 1 s) plus up
/// to 50 % jitter — under 1.5 s of waiting in all before a transient error becomes a 503/500.
pub const TRANSIENT: RetryPolicy = RetryPolicy {
    attempts: 6,
    base: Duration::from_millis(20),
    cap: Duration::from_secs(1),
};

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (0-based): `base * 2^attempt`, capped, plus up to
    /// 50 % jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        base + base.mul_f64(rand::random::<f64>() * 0.5)
    }

    /// Runs `op` until it succeeds, fails with an error `retry` refuses, or has run
    /// [`attempts`](Self::attempts) times, sleeping [`backoff`](Self::backoff) in between.
    pub async fn run_if<R, E, F, Fut>(&self, mut op: F, retry: impl Fn(&E) -> bool) -> Result<R, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if attempt + 1 < self.attempts && retry(&e) => {
                    tracing::debug!(
                        attempt,
                        "transient database error; running the unit of work again"
                    );
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// [`run_if`](Self::run_if) on [`TransientError::is_transient`].
    pub async fn run<R, E, F, Fut>(&self, op: F) -> Result<R, E>
    where
        E: TransientError,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        self.run_if(op, E::is_transient).await
    }
}

/// Runs `op` under [`TRANSIENT`].
pub async fn retry_transient<R, E, F, Fut>(op: F) -> Result<R, E>
where
    E: TransientError,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    TRANSIENT.run(op).await
}

/// An error that may wrap a transient database failure.
pub trait TransientError {
    /// The MongoDB error inside, if any.
    fn mongo_error(&self) -> Option<&mongodb::error::Error> {
        None
    }

    /// The PostgreSQL error inside, if any.
    fn pg_error(&self) -> Option<&sqlx::Error> {
        None
    }

    /// Whether running the unit of work again may succeed.
    fn is_transient(&self) -> bool {
        self.mongo_error().is_some_and(is_transient_mongo)
            || self.pg_error().is_some_and(is_transient_pg)
    }
}

impl TransientError for mongodb::error::Error {
    fn mongo_error(&self) -> Option<&mongodb::error::Error> {
        Some(self)
    }
}

impl TransientError for sqlx::Error {
    fn pg_error(&self) -> Option<&sqlx::Error> {
        Some(self)
    }
}

impl TransientError for TenantMongoError {
    fn mongo_error(&self) -> Option<&mongodb::error::Error> {
        match self {
            TenantMongoError::Mongo(e) => Some(e),
            _ => None,
        }
    }
}

impl TransientError for StoreError {
    fn mongo_error(&self) -> Option<&mongodb::error::Error> {
        match self {
            StoreError::Mongo(e) => e.mongo_error(),
            StoreError::Postgres(_) => None,
        }
    }

    fn pg_error(&self) -> Option<&sqlx::Error> {
        match self {
            StoreError::Postgres(e) => Some(e),
            StoreError::Mongo(_) => None,
        }
    }
}

/// PostgreSQL: serialization failures, deadlocks, connection exceptions, a server shutting down
/// or not accepting connections yet, and I/O or TLS failures of the connection.
pub fn is_transient_pg(e: &sqlx::Error) -> bool {
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

/// MongoDB server error codes that say "try again": write conflicts, interruptions, elections,
/// shutdowns and network trouble seen by the server.
const TRANSIENT_MONGO_CODES: &[i32] = &[
    6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];

/// MongoDB: labelled transient or retryable by the server, a network failure, no server
/// selectable, a cleared pool, or a code from the list above.
pub fn is_transient_mongo(e: &mongodb::error::Error) -> bool {
    if e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
        || e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR)
    {
        return true;
    }
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. } => true,
        ErrorKind::Command(c) => TRANSIENT_MONGO_CODES.contains(&c.code),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            TRANSIENT_MONGO_CODES.contains(&w.code)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn io(msg: &str) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::other(msg.to_string()))
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = TRANSIENT;
        assert!(p.backoff(0) >= Duration::from_millis(20));
        assert!(p.backoff(0) <= Duration::from_millis(30));
        assert!(p.backoff(3) >= Duration::from_millis(160));
        assert!(p.backoff(3) <= Duration::from_millis(240));
        assert!(p.backoff(20) >= Duration::from_secs(1));
        assert!(p.backoff(20) <= Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let out = retry_transient(|| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(io("reset"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(out.ok(), Some(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lasting_transient_error_is_returned_after_every_attempt() {
        let calls = AtomicU32::new(0);
        let out: Result<(), StoreError> = retry_transient(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(StoreError::Postgres(io("down"))) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), TRANSIENT.attempts);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_returned_at_once() {
        let mut calls = 0;
        let out: Result<(), TenantMongoError> = retry_transient(|| {
            calls += 1;
            async { Err(TenantMongoError::ForeignTenant) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls, 1);

        let mut calls = 0;
        let out: Result<(), sqlx::Error> = retry_transient(|| {
            calls += 1;
            async { Err(sqlx::Error::RowNotFound) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn classifiers_know_the_transient_errors() {
        assert!(is_transient_pg(&io("reset")));
        assert!(is_transient_pg(&sqlx::Error::PoolClosed));
        assert!(!is_transient_pg(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient_pg(&sqlx::Error::RowNotFound));
        let net = mongodb::error::Error::from(std::io::Error::other("reset"));
        assert!(is_transient_mongo(&net));
        assert!(StoreError::from(net).is_transient());
        assert!(!StoreError::Mongo(TenantMongoError::TenantFieldUpdate).is_transient());
    }

    #[tokio::test(start_paused = true)]
    async fn run_if_uses_its_own_classifier() {
        let mut calls = 0;
        let out: Result<(), &str> = TRANSIENT
            .run_if(
                || {
                    calls += 1;
                    async { Err("busy") }
                },
                |e| *e == "busy",
            )
            .await;
        assert!(out.is_err());
        assert_eq!(calls, TRANSIENT.attempts);
    }
}
