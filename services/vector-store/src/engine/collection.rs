//! One resident collection: its points, its HNSW index and its open log, with the write path
//! (validate → log → apply) and the snapshot path (checkpoint, compact).
//!
//! Opening = read the snapshot the manifest names, open the log (a torn tail is truncated) and
//! replay its records with an LSN above the snapshot's. Writes are validated completely before
//! the log is touched; once a record is logged it is applied in memory, and if applying fails
//! the collection is marked `broken` so the engine drops it and reloads it from disk (where the
//! logged write replays).
//!
//! A snapshot whose index file is at least [`VIEW_MIN_BYTES`] opens with the index mapped
//! read-only (`index.rs`); the first write (or a log replay, or a checkpoint) loads it into
//! memory for writing first ([`Collection::ensure_writable`]), before anything is logged.

use std::path::{Path, PathBuf};

use super::filter::MAX_PATH_BYTES;
use super::index::VectorIndex;
use super::layout::{self, WAL};
use super::points::{quota_bytes, PointStore};
use super::snapshot::{self, Manifest};
use super::wal::{Counts, Wal, WalOp, WalRecord};
use super::{CollectionSpec, Durability, EngineError, Metric, Point};

/// The longest id, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 256;
/// Snapshot index files from this size on are mapped read-only until the first write.
pub(crate) const VIEW_MIN_BYTES: u64 = 64 << 20;
/// The most payload fields a collection may index.
pub(crate) const MAX_INDEXED_FIELDS: usize = 64;

#[derive(Debug)]
pub(crate) struct Collection {
    dir: PathBuf,
    pub spec: CollectionSpec,
    pub store: PointStore,
    pub index: VectorIndex,
    wal: Wal,
    /// The last LSN applied (logged or in the snapshot).
    lsn: u64,
    generation: u64,
    /// A logged write could not be applied in memory: reload before further use.
    pub broken: bool,
}

/// A validated batch, ready to log.
#[derive(Debug)]
pub(crate) struct PreparedUpsert {
    points: Vec<(Point, u64)>,
    /// The collection's counts once the batch is applied.
    pub counts_after: Counts,
}

/// Checks a collection spec.
pub(crate) fn validate_spec(spec: &CollectionSpec) -> Result<(), EngineError> {
    let invalid = |m: &str| Err(EngineError::Invalid(m.into()));
    if spec.dimension == 0 || spec.dimension > 65_536 {
        return invalid("dimension must be between 1 and 65536");
    }
    if !(2..=256).contains(&spec.index.m) {
        return invalid("m must be between 2 and 256");
    }
    if !(1..=10_000).contains(&spec.index.ef_construction) {
        return invalid("ef_construction must be between 1 and 10000");
    }
    if !(1..=10_000).contains(&spec.index.ef_search) {
        return invalid("ef_search must be between 1 and 10000");
    }
    if spec.indexed_fields.len() > MAX_INDEXED_FIELDS {
        return invalid("at most 64 payload fields can be indexed");
    }
    let mut seen = std::collections::HashSet::new();
    for field in &spec.indexed_fields {
        if field.is_empty() || field.len() > MAX_PATH_BYTES {
            return Err(EngineError::Invalid(format!(
                "an indexed field must have 1 to {MAX_PATH_BYTES} bytes"
            )));
        }
        if !seen.insert(field.as_str()) {
            return invalid("an indexed field is listed twice");
        }
    }
    Ok(())
}

/// Checks a vector against a collection: dimension, finite values, and (cosine) not zero.
pub(crate) fn validate_vector(spec: &CollectionSpec, vector: &[f32]) -> Result<(), EngineError> {
    if vector.len() != spec.dimension {
        return Err(EngineError::Dimension {
            expected: spec.dimension,
            got: vector.len(),
        });
    }
    if vector.iter().any(|v| !v.is_finite()) {
        return Err(EngineError::NotFinite);
    }
    if spec.metric == Metric::Cosine && vector.iter().all(|v| *v == 0.0) {
        return Err(EngineError::Invalid(
            "a zero vector has no direction for the cosine metric".into(),
        ));
    }
    Ok(())
}

pub(crate) fn validate_id(id: &str) -> Result<(), EngineError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(EngineError::Invalid(format!(
            "an id must have 1 to {MAX_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

impl Collection {
    /// Creates a collection in `dir` (which must exist and be empty): an empty snapshot and log.
    pub(crate) fn create(
        dir: &Path,
        spec: &CollectionSpec,
        durability: Durability,
    ) -> Result<Collection, EngineError> {
        let store = PointStore::new(spec.dimension, spec.metric, &spec.indexed_fields);
        let index = VectorIndex::new(spec)?;
        let manifest = Manifest {
            format: 1,
            spec: spec.clone(),
            generation: 1,
            lsn: 0,
            counts: store.counts(),
        };
        snapshot::write(dir, &manifest, &store, &index)?;
        let (wal, _) = Wal::open(&dir.join(WAL), durability)?;
        layout::fsync_dir(dir)?;
        Ok(Collection {
            dir: dir.to_path_buf(),
            spec: spec.clone(),
            store,
            index,
            wal,
            lsn: 0,
            generation: 1,
            broken: false,
        })
    }

    /// Loads a collection: snapshot, then the log records after it.
    pub(crate) fn open(dir: &Path, durability: Durability) -> Result<Collection, EngineError> {
        Collection::open_viewing_from(dir, durability, VIEW_MIN_BYTES)
    }

    /// [`Collection::open`], mapping the snapshot's index read-only from `view_min_bytes` on.
    fn open_viewing_from(
        dir: &Path,
        durability: Durability,
        view_min_bytes: u64,
    ) -> Result<Collection, EngineError> {
        let manifest = snapshot::read_manifest(dir)?;
        let (store, mut index) = snapshot::read(dir, &manifest, view_min_bytes)?;
        if index.size() != store.len() {
            index = rebuild_index(&manifest.spec, &store)?;
        }
        let (wal, records) = Wal::open(&dir.join(WAL), durability)?;
        let mut collection = Collection {
            dir: dir.to_path_buf(),
            spec: manifest.spec.clone(),
            store,
            index,
            wal,
            lsn: manifest.lsn,
            generation: manifest.generation,
            broken: false,
        };
        for record in records {
            if record.lsn <= collection.lsn {
                continue; // already in the snapshot (a crash between commit and log truncation)
            }
            collection.apply(&record.op)?;
            collection.lsn = record.lsn;
        }
        Ok(collection)
    }

    /// Loads the index into memory for writing when it is a read-only view of the snapshot's
    /// index file (which the current generation names, and which is still on disk: only a
    /// checkpoint replaces it, and a checkpoint comes here first).
    pub(crate) fn ensure_writable(&mut self) -> Result<(), EngineError> {
        if self.index.is_view() {
            let path = self.dir.join(layout::index_file(self.generation));
            self.index = VectorIndex::load(&self.spec, layout::utf8(&path)?)?;
        }
        Ok(())
    }

    /// Validates a batch completely (nothing is written). Duplicate ids: the last one wins.
    pub(crate) fn prepare_upsert(&self, points: Vec<Point>) -> Result<PreparedUpsert, EngineError> {
        for point in &points {
            validate_id(&point.id)?;
            validate_vector(&self.spec, &point.vector)?;
            if !point.payload.is_object() {
                return Err(EngineError::Invalid(
                    "a payload must be a JSON object".into(),
                ));
            }
        }
        // Keep the last occurrence of each id, in batch order.
        let mut last_index = std::collections::HashMap::with_capacity(points.len());
        for (i, point) in points.iter().enumerate() {
            last_index.insert(point.id.clone(), i);
        }
        let mut counts = self.store.counts();
        let mut prepared = Vec::with_capacity(last_index.len());
        for (i, point) in points.into_iter().enumerate() {
            if last_index.get(&point.id) != Some(&i) {
                continue;
            }
            let bytes = quota_bytes(&point);
            match self.store.bytes_of(&point.id) {
                Some(old) => counts.bytes = counts.bytes - old + bytes,
                None => {
                    counts.points += 1;
                    counts.slots += 1;
                    counts.bytes += bytes;
                }
            }
            prepared.push((point, bytes));
        }
        Ok(PreparedUpsert {
            points: prepared,
            counts_after: counts,
        })
    }

    /// Logs and applies a prepared batch; returns the points written.
    pub(crate) fn commit_upsert(&mut self, prepared: PreparedUpsert) -> Result<u64, EngineError> {
        let written = prepared.points.len() as u64;
        if written == 0 {
            return Ok(0);
        }
        self.ensure_writable()?;
        let new_points = prepared
            .points
            .iter()
            .filter(|(p, _)| self.store.slot_of(&p.id).is_none())
            .count();
        self.index.reserve_for(new_points)?;
        let points: Vec<Point> = prepared.points.into_iter().map(|(p, _)| p).collect();
        let op = WalOp::Upsert(points);
        self.log_and_apply(op, prepared.counts_after)?;
        Ok(written)
    }

    /// The ids among `ids` that exist (each once), and the counts once they are deleted.
    pub(crate) fn prepare_delete(&self, ids: &[String]) -> (Vec<String>, Counts) {
        let mut seen = std::collections::HashSet::new();
        let mut counts = self.store.counts();
        let mut present = Vec::new();
        for id in ids {
            if let Some(bytes) = self.store.bytes_of(id) {
                if seen.insert(id.as_str()) {
                    counts.points -= 1;
                    counts.bytes -= bytes;
                    present.push(id.clone());
                }
            }
        }
        (present, counts)
    }

    pub(crate) fn commit_delete(
        &mut self,
        ids: Vec<String>,
        counts_after: Counts,
    ) -> Result<u64, EngineError> {
        let n = ids.len() as u64;
        if n > 0 {
            self.ensure_writable()?;
            self.log_and_apply(WalOp::Delete(ids), counts_after)?;
        }
        Ok(n)
    }

    fn log_and_apply(&mut self, op: WalOp, counts: Counts) -> Result<(), EngineError> {
        let record = WalRecord {
            lsn: self.lsn + 1,
            counts,
            op,
        };
        self.wal.append(&record)?;
        self.lsn = record.lsn;
        if let Err(e) = self.apply(&record.op) {
            self.broken = true;
            return Err(e);
        }
        Ok(())
    }

    /// Applies a (logged) write in memory.
    fn apply(&mut self, op: &WalOp) -> Result<(), EngineError> {
        self.ensure_writable()?;
        match op {
            WalOp::Upsert(points) => {
                for point in points {
                    let bytes = quota_bytes(point);
                    let slot = self.store.put(point.clone(), bytes);
                    self.index.insert(slot, &point.vector)?;
                }
            }
            WalOp::Delete(ids) => {
                for id in ids {
                    if let Some(slot) = self.store.remove(id) {
                        self.index.remove(slot)?;
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn wal_bytes(&self) -> u64 {
        self.wal.len()
    }

    /// Folds the log into a new snapshot and empties the log.
    pub(crate) fn checkpoint(&mut self) -> Result<(), EngineError> {
        self.ensure_writable()?;
        let manifest = Manifest {
            format: 1,
            spec: self.spec.clone(),
            generation: self.generation + 1,
            lsn: self.lsn,
            counts: self.store.counts(),
        };
        snapshot::write(&self.dir, &manifest, &self.store, &self.index)?;
        self.generation = manifest.generation;
        self.wal.clear()
    }

    /// Renumbers the live points densely, rebuilds the index from them, and checkpoints.
    pub(crate) fn compact(&mut self) -> Result<(), EngineError> {
        let mut store = PointStore::new(
            self.spec.dimension,
            self.spec.metric,
            &self.spec.indexed_fields,
        );
        for (slot, point) in self.store.live() {
            let vector = self.store.vector(slot).to_vec();
            let bytes = point.bytes;
            store.put(
                Point {
                    id: point.id.clone(),
                    vector,
                    payload: point.payload.clone(),
                },
                bytes,
            );
        }
        let index = rebuild_index(&self.spec, &store)?;
        self.store = store;
        self.index = index;
        self.checkpoint()
    }

    /// Heap bytes held by the points and the index.
    pub(crate) fn memory_bytes(&self) -> u64 {
        self.store.memory_bytes() + self.index.memory_usage() as u64
    }

    pub(crate) fn disk_bytes(&self) -> Result<u64, EngineError> {
        Ok(layout::dir_bytes(&self.dir)?)
    }
}

/// An index holding exactly the live points of a store.
fn rebuild_index(spec: &CollectionSpec, store: &PointStore) -> Result<VectorIndex, EngineError> {
    let index = VectorIndex::new(spec)?;
    index.reserve_for(store.len())?;
    for (slot, _) in store.live() {
        index.insert(slot, store.vector(slot))?;
    }
    Ok(index)
}

/// The counts a collection directory records (the last log record's, else the manifest's),
/// read without loading the collection.
pub(crate) fn counts_on_disk(dir: &Path) -> Result<Counts, EngineError> {
    let manifest = snapshot::read_manifest(dir)?;
    match Wal::last_counts(&dir.join(WAL))? {
        Some((lsn, counts)) if lsn > manifest.lsn => Ok(counts),
        _ => Ok(manifest.counts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::IndexParams;
    use serde_json::json;

    fn spec() -> CollectionSpec {
        CollectionSpec {
            dimension: 3,
            metric: Metric::L2,
            index: IndexParams::default(),
            indexed_fields: vec![],
        }
    }

    fn point(id: &str, x: f32) -> Point {
        Point {
            id: id.into(),
            vector: vec![x, 0.0, 1.0],
            payload: json!({"x": x}),
        }
    }

    fn upsert(c: &mut Collection, points: Vec<Point>) {
        let prepared = c.prepare_upsert(points).unwrap();
        c.commit_upsert(prepared).unwrap();
    }

    fn delete(c: &mut Collection, ids: &[&str]) {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let (present, counts) = c.prepare_delete(&ids);
        c.commit_delete(present, counts).unwrap();
    }

    #[test]
    fn replay_after_a_snapshot_restores_later_writes_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Collection::create(dir.path(), &spec(), Durability::Fsync).unwrap();
        upsert(&mut c, vec![point("a", 1.0), point("b", 2.0)]);
        c.checkpoint().unwrap();
        assert_eq!(c.wal_bytes(), 0);
        upsert(&mut c, vec![point("c", 3.0), point("a", 9.0)]);
        delete(&mut c, &["b"]);
        let expected = c.store.counts();
        drop(c);
        assert_eq!(counts_on_disk(dir.path()).unwrap(), expected);

        let c = Collection::open(dir.path(), Durability::Fsync).unwrap();
        assert_eq!(c.store.counts(), expected);
        assert_eq!(c.store.slot_of("b"), None);
        let a = c.store.slot_of("a").unwrap();
        assert_eq!(c.store.vector(a), &[9.0, 0.0, 1.0]);
        assert_eq!(c.store.slot(a).unwrap().payload, json!({"x": 9.0}));
        assert_eq!(c.index.size(), 2);
    }

    #[test]
    fn a_delete_survives_reopening_and_compaction_fills_the_hole() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Collection::create(dir.path(), &spec(), Durability::Relaxed).unwrap();
        upsert(
            &mut c,
            vec![point("a", 1.0), point("b", 2.0), point("c", 3.0)],
        );
        delete(&mut c, &["a", "a", "missing"]);
        assert_eq!(c.store.counts().points, 2);
        drop(c);
        let mut c = Collection::open(dir.path(), Durability::Relaxed).unwrap();
        assert_eq!(c.store.slot_of("a"), None);
        assert_eq!(c.store.counts().slots, 3);
        c.compact().unwrap();
        assert_eq!(c.store.counts().slots, 2);
        drop(c);
        let c = Collection::open(dir.path(), Durability::Relaxed).unwrap();
        assert_eq!(c.store.counts().points, 2);
        assert_eq!(c.store.counts().slots, 2);
        assert_eq!(c.index.size(), 2);
    }

    fn nearest(c: &Collection, x: f32) -> u64 {
        c.index.search(&[x, 0.0, 1.0], 1, 64, None).unwrap()[0].0
    }

    /// A directory holding a collection of 300 points `p0`..`p299`, checkpointed.
    fn checkpointed_300_points() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Collection::create(dir.path(), &spec(), Durability::Relaxed).unwrap();
        let points = (0..300)
            .map(|i| point(&format!("p{i}"), i as f32))
            .collect();
        upsert(&mut c, points);
        c.checkpoint().unwrap();
        dir
    }

    #[test]
    fn a_viewed_index_answers_then_is_loaded_for_the_first_write() {
        let dir = checkpointed_300_points();
        let reopen = |view_min_bytes| {
            Collection::open_viewing_from(dir.path(), Durability::Relaxed, view_min_bytes).unwrap()
        };
        let loaded = reopen(u64::MAX);
        assert!(!loaded.index.is_view(), "a small file is loaded");
        let viewed = reopen(0);
        assert!(
            viewed.index.memory_usage() < loaded.index.memory_usage(),
            "a view's pages are not on the heap"
        );
        drop((loaded, viewed));

        let mut c = reopen(0);
        assert!(c.index.is_view());
        assert_eq!(c.index.size(), 300);
        assert_eq!(nearest(&c, 42.0), c.store.slot_of("p42").unwrap());
        assert!(
            c.index.insert(999, &[0.0, 0.0, 1.0]).is_err(),
            "a view is read-only"
        );
        upsert(&mut c, vec![point("new", 1000.0)]);
        assert!(!c.index.is_view());
        assert_eq!(c.index.size(), 301);
        assert_eq!(nearest(&c, 1000.0), c.store.slot_of("new").unwrap());
        drop(c);

        // The log holds a write past the snapshot: its replay needs a writable index.
        let mut c = reopen(0);
        assert!(!c.index.is_view());
        assert_eq!(nearest(&c, 1000.0), c.store.slot_of("new").unwrap());
        c.checkpoint().unwrap();
        drop(c);

        let mut c = reopen(0);
        assert!(c.index.is_view());
        let p42 = c.store.slot_of("p42").unwrap();
        delete(&mut c, &["p42"]);
        assert!(!c.index.is_view());
        assert_eq!(c.index.size(), 300);
        assert_ne!(nearest(&c, 42.0), p42);
        drop(c);

        // A checkpoint of a viewed collection writes the same index again.
        let mut c = reopen(0);
        c.checkpoint().unwrap();
        drop(c);
        let c = reopen(0);
        assert!(c.index.is_view());
        assert_eq!(c.index.size(), 300);
        assert_eq!(nearest(&c, 1000.0), c.store.slot_of("new").unwrap());
    }

    #[test]
    fn a_truncated_index_file_fails_the_open_viewed_or_loaded() {
        let dir = checkpointed_300_points();
        let path = dir.path().join(layout::index_file(2));
        let len = std::fs::metadata(&path).unwrap().len();
        for cut in [len - 8, len / 2, 10] {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(cut).unwrap();
            for view_min_bytes in [0, u64::MAX] {
                let opened =
                    Collection::open_viewing_from(dir.path(), Durability::Relaxed, view_min_bytes);
                assert!(opened.is_err(), "cut at {cut}, view from {view_min_bytes}");
            }
        }
    }

    #[test]
    fn indexed_fields_are_checked() {
        let with_fields = |fields: &[&str]| CollectionSpec {
            indexed_fields: fields.iter().map(|f| f.to_string()).collect(),
            ..spec()
        };
        assert!(validate_spec(&with_fields(&["a", "b.c"])).is_ok());
        assert!(validate_spec(&with_fields(&[""])).is_err());
        assert!(validate_spec(&with_fields(&["a", "a"])).is_err());
        assert!(validate_spec(&with_fields(&[&"x".repeat(MAX_PATH_BYTES + 1)])).is_err());
        let many: Vec<String> = (0..=MAX_INDEXED_FIELDS).map(|i| format!("f{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(validate_spec(&with_fields(&many)).is_err());
    }

    #[test]
    fn a_bad_batch_writes_nothing_and_duplicates_keep_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Collection::create(dir.path(), &spec(), Durability::Relaxed).unwrap();
        let mut bad = point("z", 1.0);
        bad.vector[1] = f32::NAN;
        assert!(matches!(
            c.prepare_upsert(vec![point("a", 1.0), bad]),
            Err(EngineError::NotFinite)
        ));
        let mut not_object = point("y", 1.0);
        not_object.payload = json!([1]);
        assert!(c.prepare_upsert(vec![not_object]).is_err());
        assert!(c.prepare_upsert(vec![point("", 1.0)]).is_err());
        assert!(c
            .prepare_upsert(vec![point(&"x".repeat(257), 1.0)])
            .is_err());
        assert_eq!(c.wal_bytes(), 0);
        upsert(&mut c, vec![point("d", 1.0), point("d", 2.0)]);
        assert_eq!(c.store.counts().points, 1);
        let d = c.store.slot_of("d").unwrap();
        assert_eq!(c.store.vector(d)[0], 2.0);
    }
}
