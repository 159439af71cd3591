//! Where a tenant's documents live, and how changes to them survive transient failures.
//!
//! A [`MongoStore`] holds a MongoDB service's two clients (mongodb-system and mongodb-tenant) and
//! its [`MongoLayout`]. Given a resolved tenant it hands out [`TenantCollection`]s in the right
//! database: the service database's shared collections for a `standard` tenant, the tenant's own
//! database (`<database>__<slug>`) on mongodb-tenant for a `dedicated` one. Documents carry
//! `tenant_id` in both places, so the tenant filter guards dedicated databases too.
//!
//! Multi-document changes go through [`MongoStore::transaction`], which retries the whole body
//! on a `TransientTransactionError` (a write conflict with a concurrent transaction, a failover)
//! and the commit on an `UnknownTransactionCommitResult`, with backoff. Single operations use
//! [`retry_transient`].

use std::future::{Future, IntoFuture};
use std::time::Duration;

use futures::future::BoxFuture;
use mongodb::error::{ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::{Client, ClientSession, Database};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{MongoLayout, TenantCollection, TenantMongoError};
use crate::error::ApiError;
use crate::tenancy::{TenantPlacement, Tier};

/// Attempts of a transaction body or a single operation before the error is returned.
const ATTEMPTS: u32 = 6;

/// Server error codes that say "try again": write conflicts, interruptions, elections,
/// shutdowns and network trouble seen by the server.
const TRANSIENT_CODES: &[i32] = &[
    6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];

/// Whether `e` is worth retrying: labelled transient or retryable by the server, a network
/// failure, no server selectable, or a code from the list above.
pub fn is_transient(e: &mongodb::error::Error) -> bool {
    if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR)
    {
        return true;
    }
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. } => true,
        ErrorKind::Command(c) => TRANSIENT_CODES.contains(&c.code),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            TRANSIENT_CODES.contains(&w.code)
        }
        _ => false,
    }
}

/// An error that may wrap a transient MongoDB failure.
pub trait TransientError {
    /// The MongoDB error inside, if any.
    fn mongo_error(&self) -> Option<&mongodb::error::Error> {
        None
    }

    fn is_transient(&self) -> bool {
        self.mongo_error().is_some_and(is_transient)
    }
}

impl TransientError for mongodb::error::Error {
    fn mongo_error(&self) -> Option<&mongodb::error::Error> {
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

impl TransientError for ApiError {
    fn mongo_error(&self) -> Option<&mongodb::error::Error> {
        match self {
            ApiError::Internal(e) => e.downcast_ref::<mongodb::error::Error>(),
            _ => None,
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    // 20, 40, 80, … ms, capped at 1 s, with up to 50 % jitter so racing retries spread out.
    let base = Duration::from_millis(20 * (1u64 << attempt.min(6))).min(Duration::from_secs(1));
    let jitter = rand::random::<f64>() * 0.5;
    base + base.mul_f64(jitter)
}

/// Runs `op` until it succeeds, fails with a non-transient error, or has been tried
/// [`ATTEMPTS`] times, sleeping with exponential backoff in between.
pub async fn retry_transient<R, E, F, Fut>(mut op: F) -> Result<R, E>
where
    E: TransientError,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt + 1 < ATTEMPTS => {
                tracing::debug!(attempt, "transient MongoDB error; retrying");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The body of a transaction: called with the session, possibly more than once.
pub type TransactionBody<'s, R, E> = BoxFuture<'s, Result<R, E>>;

/// A MongoDB service's databases.
#[derive(Debug, Clone)]
pub struct MongoStore {
    system: Client,
    tenant: Client,
    layout: MongoLayout,
}

impl MongoStore {
    /// `system` reaches mongodb-system (the service database, shared collections), `tenant`
    /// reaches mongodb-tenant (dedicated tenants' databases); both may be the same client.
    pub fn new(system: Client, tenant: Client, layout: MongoLayout) -> Self {
        MongoStore {
            system,
            tenant,
            layout,
        }
    }

    pub fn layout(&self) -> &MongoLayout {
        &self.layout
    }

    /// The service database on mongodb-system.
    pub fn system_database(&self) -> Database {
        self.system.database(self.layout.database)
    }

    /// The client holding `tenant`'s documents.
    pub fn client(&self, tenant: &TenantPlacement) -> &Client {
        match tenant.tier {
            Tier::Standard => &self.system,
            Tier::Dedicated => &self.tenant,
        }
    }

    /// The database holding `tenant`'s documents.
    pub fn database(&self, tenant: &TenantPlacement) -> Database {
        match tenant.tier {
            Tier::Standard => self.system_database(),
            Tier::Dedicated => self
                .tenant
                .database(&self.layout.dedicated_database(&tenant.slug)),
        }
    }

    /// `collection` of `tenant`, filtered to its documents.
    pub fn collection<T>(&self, tenant: &TenantPlacement, collection: &str) -> TenantCollection<T>
    where
        T: Serialize + DeserializeOwned + Send + Sync,
    {
        TenantCollection::new(&self.database(tenant), collection, tenant.id)
    }

    /// Runs `body` in a transaction on `tenant`'s client and commits it. The body runs again
    /// (in a fresh transaction) after a transient error, so it must read what it decides on
    /// inside the transaction and have no effects outside it.
    pub async fn transaction<R, E, F>(&self, tenant: &TenantPlacement, mut body: F) -> Result<R, E>
    where
        E: From<mongodb::error::Error> + TransientError,
        F: for<'s> FnMut(&'s mut ClientSession) -> TransactionBody<'s, R, E>,
    {
        let client = self.client(tenant);
        let mut session = retry_transient(|| client.start_session().into_future()).await?;
        let mut attempt = 0;
        loop {
            session.start_transaction().await?;
            let outcome = match body(&mut session).await {
                Ok(value) => commit(&mut session).await.map(|()| value).map_err(E::from),
                Err(e) if needs_replica_set(&e) => {
                    tracing::error!(
                        "MongoDB refused a transaction: transactions need a replica set (a single-node replica set is enough; start mongod with --replSet and run rs.initiate())"
                    );
                    let _ = session.abort_transaction().await;
                    Err(e)
                }
                Err(e) => {
                    // Aborting may fail when the server already aborted it; nothing to undo then.
                    let _ = session.abort_transaction().await;
                    Err(e)
                }
            };
            match outcome {
                Err(e) if e.is_transient() && attempt + 1 < ATTEMPTS => {
                    tracing::debug!(
                        attempt,
                        "transaction hit a transient error; running it again"
                    );
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Pings mongodb-system and, when it is another server, mongodb-tenant.
    pub async fn ping(&self) -> mongodb::error::Result<()> {
        use mongodb::bson::doc;
        self.system
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await?;
        self.tenant
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await?;
        Ok(())
    }
}

/// Whether `e` is the server saying it cannot run transactions (a standalone mongod).
fn needs_replica_set<E: TransientError>(e: &E) -> bool {
    e.mongo_error().is_some_and(|m| {
        matches!(m.kind.as_ref(), ErrorKind::Command(c) if c.code == 20 && c.message.contains("replica set"))
    })
}

/// Commits, retrying while the outcome is unknown (the commit is idempotent).
async fn commit(session: &mut ClientSession) -> mongodb::error::Result<()> {
    let mut attempt = 0;
    loop {
        match session.commit_transaction().await {
            Err(e)
                if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                    && attempt + 1 < ATTEMPTS =>
            {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= Duration::from_millis(20));
        assert!(backoff(0) <= Duration::from_millis(30));
        assert!(backoff(3) >= Duration::from_millis(160));
        assert!(backoff(20) <= Duration::from_millis(1500));
    }

    #[test]
    fn api_errors_are_transient_only_when_they_wrap_one() {
        assert!(!ApiError::NotFound("x".into()).is_transient());
        assert!(!ApiError::internal(anyhow::anyhow!("boom")).is_transient());
    }

    #[tokio::test]
    async fn retry_gives_up_on_permanent_errors_at_once() {
        let mut calls = 0;
        let out: Result<(), TenantMongoError> = retry_transient(|| {
            calls += 1;
            async { Err(TenantMongoError::ForeignTenant) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls, 1);
    }
}
