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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::collection::Collection;
use super::{CollectionKey, Resident};

#[derive(Debug)]
pub(crate) struct Handle {
    pub state: RwLock<Option<Collection>>,
    last_used: AtomicU64,
    /// Whether it is resident, and its bytes (counted in the registry's totals when resident).
    held: Mutex<(bool, u64)>,
}

impl Handle {
    fn new() -> Handle {
        Handle {
            state: RwLock::new(None),
            last_used: AtomicU64::new(0),
            held: Mutex::new((false, 0)),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, (bool, u64)> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_resident(&self) -> bool {
        self.held().0
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    handles: Mutex<HashMap<CollectionKey, Arc<Handle>>>,
    clock: AtomicU64,
    /// The resident collections and bytes, kept by [`Registry::note`] so that no call walks
    /// every handle unless the budget is exceeded.
    totals: Mutex<Resident>,
}

impl Registry {
    /// Records what a collection holds after a call, and its share of the totals.
    pub(crate) fn note(&self, handle: &Handle, collection: Option<&Collection>, tick: u64) {
        handle.last_used.store(tick, Ordering::Relaxed);
        let now = (
            collection.is_some(),
            collection.map_or(0, Collection::memory_bytes),
        );
        let mut held = handle.held();
        let before = std::mem::replace(&mut *held, now);
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        if before.0 {
            totals.collections -= 1;
            totals.bytes -= before.1;
        }
        if now.0 {
            totals.collections += 1;
            totals.bytes += now.1;
        }
    }

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
            drop(map);
            self.note(handle, None, 0);
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
        *self.totals.lock().unwrap_or_else(|p| p.into_inner())
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
            self.note(&handle, state.as_ref(), tick);
        }
    }
}
