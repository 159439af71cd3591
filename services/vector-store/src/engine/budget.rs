//! Which collections are in memory, and the memory budget.
//!
//! Each known collection has a [`Handle`]: a `RwLock` over its loaded state (`None` while on
//! disk; queries share it, writes take it exclusively), the tick of its last use, and the bytes
//! it held after its last use. The registry map is locked only to find or insert a handle.
//! After each call the engine asks the registry to evict, least recently used first, while the
//! resident total is above the budget; the collection just used is never a candidate, and a
//! collection busy in another call is skipped (eviction only `try_write`s). Evicting
//! checkpoints a non-empty log first, so a reload reads a snapshot rather than replaying.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::collection::Collection;
use super::{CollectionKey, Resident};

#[derive(Debug)]
pub(crate) struct Handle {
    pub state: RwLock<Option<Collection>>,
    last_used: AtomicU64,
    bytes: AtomicU64,
    resident: AtomicBool,
}

impl Handle {
    fn new() -> Handle {
        Handle {
            state: RwLock::new(None),
            last_used: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            resident: AtomicBool::new(false),
        }
    }

    /// Records what a collection holds after a call.
    pub(crate) fn note(&self, collection: Option<&Collection>, tick: u64) {
        self.last_used.store(tick, Ordering::Relaxed);
        self.resident.store(collection.is_some(), Ordering::Relaxed);
        self.bytes.store(
            collection.map_or(0, Collection::memory_bytes),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn is_resident(&self) -> bool {
        self.resident.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    handles: Mutex<HashMap<CollectionKey, Arc<Handle>>>,
    clock: AtomicU64,
}

impl Registry {
    pub(crate) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<CollectionKey, Arc<Handle>>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn handle(&self, key: &CollectionKey) -> Arc<Handle> {
        self.map()
            .entry(*key)
            .or_insert_with(|| Arc::new(Handle::new()))
            .clone()
    }

    /// Forgets a handle (the collection is gone or moved), if it is still this one.
    pub(crate) fn forget(&self, key: &CollectionKey, handle: &Arc<Handle>) {
        let mut map = self.map();
        if map.get(key).is_some_and(|h| Arc::ptr_eq(h, handle)) {
            map.remove(key);
        }
    }

    /// Handles whose key satisfies `select`.
    pub(crate) fn select(
        &self,
        select: impl Fn(&CollectionKey) -> bool,
    ) -> Vec<(CollectionKey, Arc<Handle>)> {
        self.map()
            .iter()
            .filter(|(k, _)| select(k))
            .map(|(k, h)| (*k, h.clone()))
            .collect()
    }

    pub(crate) fn resident(&self) -> Resident {
        let mut resident = Resident::default();
        for handle in self.map().values() {
            if handle.is_resident() {
                resident.collections += 1;
                resident.bytes += handle.bytes.load(Ordering::Relaxed);
            }
        }
        resident
    }

    /// Evicts least recently used collections (not `keep`) while above `budget` bytes.
    /// `unload` checkpoints and drops a collection; it returns false when that failed (the
    /// collection then stays resident).
    pub(crate) fn enforce(
        &self,
        budget: u64,
        keep: &CollectionKey,
        unload: impl Fn(&CollectionKey, &mut Option<Collection>) -> bool,
    ) {
        let mut skipped = Vec::new();
        loop {
            if self.resident().bytes <= budget {
                return;
            }
            let candidate = self
                .map()
                .iter()
                .filter(|(k, h)| *k != keep && h.is_resident() && !skipped.contains(*k))
                .min_by_key(|(_, h)| h.last_used.load(Ordering::Relaxed))
                .map(|(k, h)| (*k, h.clone()));
            let Some((key, handle)) = candidate else {
                return;
            };
            skipped.push(key);
            let Ok(mut state) = handle.state.try_write() else {
                continue; // busy in another call
            };
            if state.is_some() && unload(&key, &mut state) {
                *state = None;
            }
            let tick = handle.last_used.load(Ordering::Relaxed);
            handle.note(state.as_ref(), tick);
        }
    }
}
