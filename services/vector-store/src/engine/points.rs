//! The points of one collection in memory: vectors in one contiguous `Vec<f32>` (slot `s`
//! holds `vectors[s*dim..(s+1)*dim]`), payloads and ids per slot, and the id → slot map in id
//! order (a `BTreeMap`, which `scroll` walks).
//!
//! A slot number is the point's key in the HNSW index. Replacing a point reuses its slot;
//! deleting one leaves a hole (counted as `deleted_pending`) until `compact` renumbers the live
//! points densely. Exact scoring reads the contiguous vectors with plain loops the compiler
//! vectorises; cosine uses the stored norms, so it normalises exactly as usearch's `Cos` does.
//!
//! The store also keeps the collection's [`PayloadIndex`] (its `indexed_fields`) in step, keyed
//! by slot: `put` removes a replaced point's old payload from it and inserts the new one,
//! `remove` takes the point out. A store rebuilt by `put` (snapshot load, log replay,
//! compaction) therefore rebuilds its index too. [`PointStore::matching`] answers a filter
//! through it when it can, else by scanning the payloads.

use std::collections::BTreeMap;

use super::filter::Filter;
use super::payload_index::PayloadIndex;
use super::wal::Counts;
use super::{Metric, Point};

/// A live point's data besides its vector.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub id: String,
    pub payload: serde_json::Value,
    /// What the point counts for in the byte quota.
    pub bytes: u64,
}

/// The bytes a point counts for in the quota: its vector (4 bytes a dimension), its payload as
/// compact JSON and its id.
pub(crate) fn quota_bytes(point: &Point) -> u64 {
    (point.vector.len() * 4 + point.payload.to_string().len() + point.id.len()) as u64
}

/// Rough heap overhead of a slot beyond its counted bytes (map node, `Value` tree, `String`s).
const SLOT_OVERHEAD: u64 = 160;

#[derive(Debug)]
pub(crate) struct PointStore {
    dim: usize,
    metric: Metric,
    vectors: Vec<f32>,
    norms: Vec<f32>,
    slots: Vec<Option<Slot>>,
    ids: BTreeMap<String, u64>,
    counted_bytes: u64,
    payload_index: PayloadIndex,
}

/// Sums `term(a[i], b[i])` over two equal-length slices. Eight independent accumulators let
/// the loop vectorise without fast-math.
#[inline(always)]
fn sum_of(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (x, y) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += term(x[i], y[i]);
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in rest_a.iter().zip(rest_b) {
        sum += term(*x, *y);
    }
    sum
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    sum_of(a, b, |x, y| x * y)
}

pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    sum_of(a, b, |x, y| (x - y) * (x - y))
}

impl PointStore {
    /// An empty store whose payload index covers `indexed_fields`.
    pub(crate) fn new(dim: usize, metric: Metric, indexed_fields: &[String]) -> PointStore {
        PointStore {
            dim,
            metric,
            vectors: Vec::new(),
            norms: Vec::new(),
            slots: Vec::new(),
            ids: BTreeMap::new(),
            counted_bytes: 0,
            payload_index: PayloadIndex::new(indexed_fields),
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            points: self.ids.len() as u64,
            bytes: self.counted_bytes,
            slots: self.slots.len() as u64,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn slot_of(&self, id: &str) -> Option<u64> {
        self.ids.get(id).copied()
    }

    pub(crate) fn slot(&self, slot: u64) -> Option<&Slot> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    pub(crate) fn vector(&self, slot: u64) -> &[f32] {
        let start = slot as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    /// Live points in id order, from just after `after`.
    pub(crate) fn ids_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&'a String, u64)> + 'a {
        use std::ops::Bound;
        let lower = match after {
            Some(after) => Bound::Excluded(after.to_string()),
            None => Bound::Unbounded,
        };
        self.ids
            .range::<String, _>((lower, Bound::Unbounded))
            .map(|(id, slot)| (id, *slot))
    }

    /// Live points in slot order.
    pub(crate) fn live(&self) -> impl Iterator<Item = (u64, &Slot)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u64, s)))
    }

    /// Writes a point (replacing the one with its id) and returns its slot.
    pub(crate) fn put(&mut self, point: Point, bytes: u64) -> u64 {
        let norm = dot(&point.vector, &point.vector).sqrt();
        let slot = match self.ids.get(&point.id) {
            Some(&slot) => {
                let start = slot as usize * self.dim;
                self.vectors[start..start + self.dim].copy_from_slice(&point.vector);
                self.norms[slot as usize] = norm;
                if let Some(old) = self.slots[slot as usize].take() {
                    self.counted_bytes -= old.bytes;
                    self.payload_index.remove(slot, &old.payload);
                }
                slot
            }
            None => {
                let slot = self.slots.len() as u64;
                self.vectors.extend_from_slice(&point.vector);
                self.norms.push(norm);
                self.slots.push(None);
                self.ids.insert(point.id.clone(), slot);
                slot
            }
        };
        self.counted_bytes += bytes;
        self.payload_index.insert(slot, &point.payload);
        self.slots[slot as usize] = Some(Slot {
            id: point.id,
            payload: point.payload,
            bytes,
        });
        slot
    }

    /// Appends a hole (a deleted slot, when a snapshot is read back).
    pub(crate) fn push_hole(&mut self) {
        self.vectors.resize(self.vectors.len() + self.dim, 0.0);
        self.norms.push(0.0);
        self.slots.push(None);
    }

    /// Removes a point; its slot becomes a hole.
    pub(crate) fn remove(&mut self, id: &str) -> Option<u64> {
        let slot = self.ids.remove(id)?;
        if let Some(old) = self.slots[slot as usize].take() {
            self.counted_bytes -= old.bytes;
            self.payload_index.remove(slot, &old.payload);
        }
        Some(slot)
    }

    /// The live slots whose payload matches, in slot order: the payload index's candidates
    /// checked one by one when it answers the filter, else a scan of every payload.
    pub(crate) fn matching(&self, filter: &Filter) -> Vec<u64> {
        match filter.candidates(&self.payload_index) {
            Some(candidates) => candidates
                .into_iter()
                .filter(|&slot| self.slot(slot).is_some_and(|p| filter.matches(&p.payload)))
                .collect(),
            None => self
                .live()
                .filter(|(_, point)| filter.matches(&point.payload))
                .map(|(slot, _)| slot)
                .collect(),
        }
    }

    /// The bytes a point with this id holds now (0 when absent).
    pub(crate) fn bytes_of(&self, id: &str) -> Option<u64> {
        self.slot_of(id)
            .and_then(|s| self.slot(s))
            .map(|slot| slot.bytes)
    }

    /// The score of a slot against a query (`query_norm` is the query's norm, for cosine),
    /// in the engine's convention: cosine similarity, inner product, or Euclidean distance.
    pub(crate) fn score(&self, query: &[f32], query_norm: f32, slot: u64) -> f32 {
        let v = self.vector(slot);
        match self.metric {
            Metric::Cosine => {
                let denominator = query_norm * self.norms[slot as usize];
                if denominator > 0.0 {
                    dot(query, v) / denominator
                } else {
                    0.0
                }
            }
            Metric::Dot => dot(query, v),
            Metric::L2 => l2_squared(query, v).sqrt(),
        }
    }

    /// Heap bytes held, estimated.
    pub(crate) fn memory_bytes(&self) -> u64 {
        (self.vectors.capacity() * 4
            + self.norms.capacity() * 4
            + self.slots.capacity() * std::mem::size_of::<Option<Slot>>()) as u64
            + self.counted_bytes
            + self.ids.len() as u64 * SLOT_OVERHEAD
            + self.payload_index.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn point(id: &str, v: &[f32]) -> Point {
        Point {
            id: id.into(),
            vector: v.to_vec(),
            payload: json!({}),
        }
    }

    #[test]
    fn replace_reuses_the_slot_and_delete_leaves_a_hole() {
        let mut store = PointStore::new(2, Metric::L2, &[]);
        let a = store.put(point("a", &[1.0, 0.0]), 10);
        let b = store.put(point("b", &[0.0, 1.0]), 10);
        assert_eq!(store.put(point("a", &[3.0, 4.0]), 12), a);
        assert_eq!(store.vector(a), &[3.0, 4.0]);
        assert_eq!(
            store.counts(),
            Counts {
                points: 2,
                bytes: 22,
                slots: 2
            }
        );
        assert_eq!(store.remove("b"), Some(b));
        assert_eq!(store.remove("b"), None);
        assert_eq!(
            store.counts(),
            Counts {
                points: 1,
                bytes: 12,
                slots: 2
            }
        );
        assert_eq!(store.score(&[0.0, 0.0], 0.0, a), 5.0);
    }

    #[test]
    fn the_payload_index_follows_overwrites_and_removals() {
        let mut store = PointStore::new(2, Metric::L2, &["tag".to_string()]);
        let with_tag = |id: &str, tag: &str| Point {
            payload: json!({"tag": tag}),
            ..point(id, &[1.0, 0.0])
        };
        let a = store.put(with_tag("a", "red"), 10);
        let b = store.put(with_tag("b", "red"), 10);
        let red = Filter::parse("filter", &json!({"tag": "red"})).unwrap();
        let blue = Filter::parse("filter", &json!({"tag": "blue"})).unwrap();
        assert_eq!(red.candidates(&store.payload_index), Some(vec![a, b]));
        let indexed = store.memory_bytes();

        assert_eq!(store.put(with_tag("a", "blue"), 10), a);
        assert_eq!(red.candidates(&store.payload_index), Some(vec![b]));
        assert_eq!(blue.candidates(&store.payload_index), Some(vec![a]));
        assert_eq!(store.matching(&blue), vec![a]);

        store.remove("b");
        assert_eq!(red.candidates(&store.payload_index), Some(vec![]));
        assert_eq!(store.matching(&red), Vec::<u64>::new());
        store.remove("a");
        assert_eq!(store.payload_index.memory_bytes(), 0);
        assert!(store.memory_bytes() < indexed);
    }

    #[test]
    fn kernels_match_naive_sums() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 3.0 - i as f32).collect();
        let naive_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let naive_l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((dot(&a, &b) - naive_dot).abs() < 1e-3);
        assert!((l2_squared(&a, &b) - naive_l2).abs() < 1e-3);
    }
}
