//! Where schema work runs: compiling a `configSchema` and validating a configuration against it
//! are CPU work on client input, so they run on tokio's blocking threads, never on the async
//! workers and never while a database transaction is open (the handlers call [`SchemaGate::run`]
//! before they begin one).
//!
//! A job first takes a slot of its tenant (at most [`GateSettings::per_tenant`] at once), then a
//! slot of the service (at most [`GateSettings::concurrent`]), waiting up to
//! [`GateSettings::queue_wait`] for them (else 503). It then has [`GateSettings::deadline`] to
//! finish; past it the request is answered 422 at once. A blocking thread cannot be stopped, so
//! an overrunning job keeps its slots until it ends: that caps the CPU such jobs can take, and
//! the static limits ([`super::limits`]) bound how long any job can run. One tenant can
//! therefore occupy its own slots but not all of the service's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prismicx_service_common::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// How much schema work may run, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct GateSettings {
    /// Schema jobs running at once in the service.
    pub concurrent: usize,
    /// Schema jobs running at once for one tenant.
    pub per_tenant: usize,
    /// How long a job may run before its request is answered 422.
    pub deadline: Duration,
    /// How long a job may wait for its slots before its request is answered 503.
    pub queue_wait: Duration,
}

impl Default for GateSettings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let concurrent = cores.max(2);
        GateSettings {
            concurrent,
            // Half the service's slots, so that another tenant always finds one.
            per_tenant: (concurrent / 2).max(1),
            deadline: Duration::from_secs(2),
            queue_wait: Duration::from_secs(10),
        }
    }
}

/// Runs schema jobs on the blocking pool within [`GateSettings`].
#[derive(Debug)]
pub struct SchemaGate {
    settings: GateSettings,
    service: Arc<Semaphore>,
    tenants: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
}

/// Tenants remembered before idle entries are swept from the map.
const SWEEP_AT: usize = 1024;

impl SchemaGate {
    pub fn new(settings: GateSettings) -> Self {
        SchemaGate {
            settings,
            service: Arc::new(Semaphore::new(settings.concurrent.max(1))),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> GateSettings {
        self.settings
    }

    /// Jobs running now (including overrunning ones whose request was answered).
    pub fn running(&self) -> usize {
        self.settings.concurrent.max(1) - self.service.available_permits()
    }

    fn tenant_slots(&self, tenant: Uuid) -> Arc<Semaphore> {
        let mut map = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= SWEEP_AT {
            // Only the map holds an idle tenant's semaphore.
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        map.entry(tenant)
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_tenant.max(1))))
            .clone()
    }

    async fn slot(&self, slots: Arc<Semaphore>) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(self.settings.queue_wait, slots.acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(ApiError::Unavailable(
                "too many configuration schema checks are running; retry".into(),
            )),
        }
    }

    /// Runs `job` for `tenant` on a blocking thread. `field` is what an overrun is reported on
    /// (`configSchema` when compiling one, `config` when validating against one).
    pub async fn run<T, F>(&self, tenant: Uuid, field: &'static str, job: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let own = self.slot(self.tenant_slots(tenant)).await?;
        let shared = self.slot(self.service.clone()).await?;
        let handle = tokio::task::spawn_blocking(move || {
            // Held until the job really ends, even after its request was answered.
            let _slots = (own, shared);
            job()
        });
        let deadline = self.settings.deadline;
        match tokio::time::timeout(deadline, handle).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(_)) => Err(ApiError::invalid(
                field,
                "could not be checked against the configuration schema",
            )),
            Err(_) => {
                tracing::warn!(%tenant, field, ?deadline, "schema check overran its deadline");
                Err(ApiError::invalid(
                    field,
                    format!(
                        "checking against the configuration schema took longer than {} ms; \
                         simplify configSchema (fewer subschemas, references or patterns)",
                        deadline.as_millis()
                    ),
                ))
            }
        }
    }
}
