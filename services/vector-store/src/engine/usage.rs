//! Per-tenant usage and quota checks.
//!
//! For each (scope, tenant) the engine keeps a ledger behind its own mutex: the counts of each
//! of the tenant's collections. It is filled on first need from disk — each collection's last
//! log record, else its manifest, so no index is loaded — and kept current by every write.
//! A write holds the tenant's ledger lock from its quota check until its log record is written
//! (and a checkpoint holds it while it replaces the manifest and empties the log), so two
//! concurrent batches cannot both pass a quota and the disk always agrees with the ledger
//! whenever the lock is free. Lock order: a collection's lock, then its tenant's ledger.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use super::collection::counts_on_disk;
use super::layout;
use super::wal::Counts;
use super::{EngineError, Quota, Scope, Usage};

/// One tenant's collections and their counts, in one scope.
#[derive(Debug, Default)]
pub(crate) struct TenantLedger {
    loaded: bool,
    collections: BTreeMap<Uuid, Counts>,
}

impl TenantLedger {
    /// Fills the ledger from disk when it has not been yet.
    pub(crate) fn ensure_loaded(&mut self, tenant_dir: &Path) -> Result<(), EngineError> {
        if self.loaded {
            return Ok(());
        }
        let mut collections = BTreeMap::new();
        for collection in layout::list_collections(tenant_dir)? {
            let counts = counts_on_disk(&tenant_dir.join(collection.to_string()))?;
            collections.insert(collection, counts);
        }
        self.collections = collections;
        self.loaded = true;
        Ok(())
    }

    /// Forgets what was read (the tenant's directory moved).
    pub(crate) fn invalidate(&mut self) {
        self.loaded = false;
        self.collections.clear();
    }

    pub(crate) fn usage(&self) -> Usage {
        let mut usage = Usage {
            collections: self.collections.len() as u64,
            ..Usage::default()
        };
        for counts in self.collections.values() {
            usage.points += counts.points;
            usage.bytes += counts.bytes;
        }
        usage
    }

    pub(crate) fn set(&mut self, collection: Uuid, counts: Counts) {
        if self.loaded {
            self.collections.insert(collection, counts);
        }
    }

    pub(crate) fn remove(&mut self, collection: Uuid) {
        self.collections.remove(&collection);
    }

    /// Refuses a new collection past `max_collections`.
    pub(crate) fn check_new_collection(&self, quota: &Quota) -> Result<(), EngineError> {
        let would_be = self.collections.len() as u64 + 1;
        match quota.max_collections {
            Some(limit) if would_be > limit => Err(EngineError::Quota {
                what: "collections",
                would_be,
                limit,
            }),
            _ => Ok(()),
        }
    }

    /// Refuses a write to `collection` that would take the tenant past its point or byte limit.
    /// A write that does not grow a measure is never refused for it.
    pub(crate) fn check_write(
        &self,
        quota: &Quota,
        collection: Uuid,
        after: Counts,
    ) -> Result<(), EngineError> {
        let before = self
            .collections
            .get(&collection)
            .copied()
            .unwrap_or_default();
        let total = self.usage();
        let points = total.points - before.points + after.points;
        let bytes = total.bytes - before.bytes + after.bytes;
        refuse_growth_past(
            "points",
            points,
            quota.max_points,
            after.points > before.points,
        )?;
        refuse_growth_past("bytes", bytes, quota.max_bytes, after.bytes > before.bytes)?;
        Ok(())
    }
}

/// Refuses a measure that grows to `would_be` past its `limit`.
fn refuse_growth_past(
    what: &'static str,
    would_be: u64,
    limit: Option<u64>,
    grows: bool,
) -> Result<(), EngineError> {
    match limit {
        Some(limit) if grows && would_be > limit => Err(EngineError::Quota {
            what,
            would_be,
            limit,
        }),
        _ => Ok(()),
    }
}

/// A tenant's ledger, shared by the calls that lock it.
type SharedLedger = Arc<Mutex<TenantLedger>>;

/// Every tenant's ledger, created on first use.
#[derive(Debug, Default)]
pub(crate) struct Ledgers {
    tenants: Mutex<HashMap<(Scope, Uuid), SharedLedger>>,
}

/// A locked ledger.
pub(crate) struct LedgerGuard {
    ledger: SharedLedger,
}

impl LedgerGuard {
    pub(crate) fn lock(&self) -> MutexGuard<'_, TenantLedger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Ledgers {
    pub(crate) fn of(&self, scope: Scope, tenant: Uuid) -> LedgerGuard {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        LedgerGuard {
            ledger: tenants.entry((scope, tenant)).or_default().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_counts_the_whole_tenant_and_lets_shrinking_writes_through() {
        let mut ledger = TenantLedger {
            loaded: true,
            ..TenantLedger::default()
        };
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let counts = |points, bytes| Counts {
            points,
            bytes,
            slots: points,
        };
        ledger.set(a, counts(6, 600));
        ledger.set(b, counts(3, 300));
        let quota = Quota {
            max_collections: Some(2),
            max_points: Some(10),
            max_bytes: Some(1000),
        };
        assert!(ledger.check_new_collection(&quota).is_err());
        assert!(ledger.check_write(&quota, b, counts(4, 400)).is_ok());
        assert!(matches!(
            ledger.check_write(&quota, b, counts(5, 400)),
            Err(EngineError::Quota {
                what: "points",
                would_be: 11,
                limit: 10
            })
        ));
        assert!(matches!(
            ledger.check_write(&quota, a, counts(6, 701)),
            Err(EngineError::Quota { what: "bytes", .. })
        ));
        let tight = Quota {
            max_points: Some(1),
            ..quota
        };
        assert!(ledger.check_write(&tight, a, counts(5, 500)).is_ok());
        assert_eq!(ledger.usage().points, 9);
    }
}
