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
//!
//! The service's user on mongodb-tenant holds `readWrite` on its dedicated tenants' databases
//! only, and the operator grants a new tenant's database to it while the service runs. A server
//! that resolves a user's roles when a connection authenticates (SecantusDB does; a real mongod
//! applies a grant at once) keeps refusing the new database on connections opened before the
//! grant. So when mongodb-tenant answers `Unauthorized` (code 13), a store built with the tenant
//! server's options ([`MongoStore::with_tenant_options`]) opens a fresh client (new
//! connections, authenticated with the current roles; one rebuild however many requests saw the
//! refusal) and the operation runs once more. A refusal that persists is returned as it is.

use std::future::IntoFuture;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use mongodb::error::{ErrorKind, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::options::ClientOptions;
use mongodb::{Client, ClientSession, Database};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{MongoLayout, TenantCollection};
use crate::retry::{retry_transient, TransientError, TRANSIENT};
use prismicx_tenancy::{TenantPlacement, Tier};

/// The body of a transaction: called with the session, possibly more than once.
pub type TransactionBody<'s, R, E> = BoxFuture<'s, Result<R, E>>;

/// A MongoDB service's databases.
#[derive(Debug, Clone)]
pub struct MongoStore {
    system: Client,
    tenant: Arc<TenantServer>,
    layout: MongoLayout,
}

/// mongodb-tenant's client, and how to open a fresh one (see the module docs).
#[derive(Debug)]
pub(crate) struct TenantServer {
    /// The client in use and its generation (bumped by each rebuild).
    current: RwLock<(u64, Client)>,
    /// Options to open a fresh client with; `None`: never rebuilt.
    options: Option<ClientOptions>,
}

impl TenantServer {
    pub(crate) fn client(&self) -> (u64, Client) {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A client opened after generation `seen` was refused: a fresh one, unless another caller
    /// already opened one since. `None` when the store cannot rebuild its client.
    pub(crate) fn after_refusal(&self, seen: u64) -> Option<Client> {
        let options = self.options.as_ref()?;
        let mut current = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if current.0 == seen {
            let fresh = Client::with_options(options.clone()).ok()?;
            tracing::info!("mongodb-tenant refused a command as unauthorized; reconnecting to pick up granted roles");
            *current = (seen + 1, fresh);
        }
        Some(current.1.clone())
    }
}

/// Whether mongodb-tenant refused `e` for lack of a role (`Unauthorized`, code 13).
pub(crate) fn is_unauthorized(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => c.code == 13,
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => w.code == 13,
        _ => false,
    }
}

impl MongoStore {
    /// `system` reaches mongodb-system (the service database, shared collections), `tenant`
    /// reaches mongodb-tenant (dedicated tenants' databases); both may be the same client.
    pub fn new(system: Client, tenant: Client, layout: MongoLayout) -> Self {
        MongoStore {
            system,
            tenant: Arc::new(TenantServer {
                current: RwLock::new((0, tenant)),
                options: None,
            }),
            layout,
        }
    }

    /// The same store, able to open a fresh mongodb-tenant client with `options` when the
    /// server refuses a command as unauthorized (see the module docs).
    pub fn with_tenant_options(self, options: ClientOptions) -> Self {
        let (generation, client) = self.tenant.client();
        MongoStore {
            tenant: Arc::new(TenantServer {
                current: RwLock::new((generation, client)),
                options: Some(options),
            }),
            ..self
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
    pub fn client(&self, tenant: &TenantPlacement) -> Client {
        match tenant.tier {
            Tier::Standard => self.system.clone(),
            Tier::Dedicated => self.tenant.client().1,
        }
    }

    /// The database holding `tenant`'s documents.
    pub fn database(&self, tenant: &TenantPlacement) -> Database {
        match tenant.tier {
            Tier::Standard => self.system_database(),
            Tier::Dedicated => self
                .tenant
                .client()
                .1
                .database(&self.layout.dedicated_database(&tenant.slug)),
        }
    }

    /// `collection` of `tenant`, filtered to its documents.
    pub fn collection<T>(&self, tenant: &TenantPlacement, collection: &str) -> TenantCollection<T>
    where
        T: Serialize + DeserializeOwned + Send + Sync,
    {
        match tenant.tier {
            Tier::Standard => TenantCollection::new(&self.system_database(), collection, tenant.id),
            Tier::Dedicated => {
                let (generation, client) = self.tenant.client();
                let db = client.database(&self.layout.dedicated_database(&tenant.slug));
                TenantCollection::new(&db, collection, tenant.id)
                    .on_tenant_server(self.tenant.clone(), generation)
            }
        }
    }

    /// Runs `body` in a transaction on `tenant`'s client and commits it. The body runs again
    /// (in a fresh transaction) after a transient error, so it must read what it decides on
    /// inside the transaction and have no effects outside it.
    pub async fn transaction<R, E, F>(&self, tenant: &TenantPlacement, mut body: F) -> Result<R, E>
    where
        E: From<mongodb::error::Error> + TransientError,
        F: for<'s> FnMut(&'s mut ClientSession) -> TransactionBody<'s, R, E>,
    {
        let (mut generation, mut client) = match tenant.tier {
            Tier::Standard => (0, self.system.clone()),
            Tier::Dedicated => self.tenant.client(),
        };
        let mut session = retry_transient(|| client.start_session().into_future()).await?;
        let mut attempt = 0;
        let mut reconnected = false;
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
                // Refused on a connection opened before a grant: once more on a fresh client.
                Err(e)
                    if tenant.tier == Tier::Dedicated
                        && !reconnected
                        && e.mongo_error().is_some_and(is_unauthorized) =>
                {
                    reconnected = true;
                    match self.tenant.after_refusal(generation) {
                        Some(fresh) => {
                            client = fresh;
                            generation = self.tenant.client().0;
                            session =
                                retry_transient(|| client.start_session().into_future()).await?;
                        }
                        None => return Err(e),
                    }
                }
                Err(e) if e.is_transient() && attempt + 1 < TRANSIENT.attempts => {
                    tracing::debug!(
                        attempt,
                        "transaction hit a transient error; running it again"
                    );
                    tokio::time::sleep(TRANSIENT.backoff(attempt)).await;
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
            .client()
            .1
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
                    && attempt + 1 < TRANSIENT.attempts =>
            {
                tokio::time::sleep(TRANSIENT.backoff(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
