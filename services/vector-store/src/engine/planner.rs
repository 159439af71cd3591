//! How a query is answered.
//!
//! - No filter: the HNSW index, unless the query asks for `exact` or the collection has fewer
//!   than [`SMALL_COLLECTION`] points (where a scan is both cheaper and exact).
//! - A filter: first the set of matching slots: the payload index's candidates, each checked
//!   with the filter, when the index answers it, else a scan of the payloads. When
//!   there are at most [`exact_threshold`] of them (`max(1000, 4·k, 2 % of the points)`), an
//!   exact scan over just those answers; otherwise usearch's filtered search walks the graph
//!   with a bitset predicate. If that returns fewer than `min(k, matches)` hits (the graph can
//!   strand a sparse set), the exact scan over the matches answers instead. So a filtered query
//!   returns `k` hits whenever at least `k` points match.
//!
//! Scores follow the collection's metric: cosine similarity and inner product (higher first),
//! Euclidean distance (lower first).

use super::collection::Collection;
use super::filter::Filter;
use super::index::score_of;
use super::points::dot;
use super::{Metric, Plan};

/// Below this many points, an unfiltered query scans exactly.
pub(crate) const SMALL_COLLECTION: usize = 256;
/// The fewest matches a filtered query always scans exactly.
const EXACT_FLOOR: usize = 1000;

/// Up to this many filter matches are scanned exactly rather than searched in the graph.
pub(crate) fn exact_threshold(k: usize, points: usize) -> usize {
    EXACT_FLOOR.max(4 * k).max(points / 50)
}

/// What the planner needs of a query.
pub(crate) struct Search<'a> {
    pub vector: &'a [f32],
    pub k: usize,
    pub ef: usize,
    pub exact: bool,
    pub filter: Option<&'a Filter>,
}

/// Best-first `(slot, score)` pairs and the path that produced them.
pub(crate) fn run(
    collection: &Collection,
    search: &Search<'_>,
) -> Result<(Vec<(u64, f32)>, Plan), super::EngineError> {
    let store = &collection.store;
    let metric = collection.spec.metric;
    let k = search.k;
    let Some(filter) = search.filter else {
        if search.exact || store.len() < SMALL_COLLECTION {
            let slots = store.live().map(|(slot, _)| slot);
            return Ok((
                exact_scan(collection, search.vector, k, slots),
                Plan::ExactScan,
            ));
        }
        let hits = collection.index.search(search.vector, k, search.ef, None)?;
        return Ok((to_scores(metric, hits), Plan::Index));
    };
    let matching = store.matching(filter);
    if search.exact || matching.len() <= exact_threshold(k, store.len()) {
        let hits = exact_scan(collection, search.vector, k, matching.iter().copied());
        return Ok((hits, Plan::ExactScan));
    }
    let mut allowed = vec![0u64; store.slot_count().div_ceil(64)];
    for &slot in &matching {
        allowed[slot as usize / 64] |= 1 << (slot % 64);
    }
    let allow = |key: u64| {
        allowed
            .get(key as usize / 64)
            .is_some_and(|word| word & (1 << (key % 64)) != 0)
    };
    let hits = collection
        .index
        .search(search.vector, k, search.ef, Some(&allow))?;
    if hits.len() < k.min(matching.len()) {
        let hits = exact_scan(collection, search.vector, k, matching.iter().copied());
        return Ok((hits, Plan::ExactScan));
    }
    Ok((to_scores(metric, hits), Plan::FilteredIndex))
}

fn to_scores(metric: Metric, hits: Vec<(u64, f32)>) -> Vec<(u64, f32)> {
    hits.into_iter()
        .map(|(slot, distance)| (slot, score_of(metric, distance)))
        .collect()
}

/// Whether score `a` ranks before score `b` under a metric.
fn better_first(metric: Metric) -> impl Fn(&(u64, f32), &(u64, f32)) -> std::cmp::Ordering {
    move |a, b| {
        let by_score = match metric {
            Metric::L2 => a.1.total_cmp(&b.1),
            Metric::Cosine | Metric::Dot => b.1.total_cmp(&a.1),
        };
        by_score.then(a.0.cmp(&b.0))
    }
}

/// The `k` best of `slots` by exact score, best first.
pub(crate) fn exact_scan(
    collection: &Collection,
    query: &[f32],
    k: usize,
    slots: impl Iterator<Item = u64>,
) -> Vec<(u64, f32)> {
    let store = &collection.store;
    let query_norm = dot(query, query).sqrt();
    let mut scored: Vec<(u64, f32)> = slots
        .map(|slot| (slot, store.score(query, query_norm, slot)))
        .collect();
    let order = better_first(collection.spec.metric);
    if scored.len() > k && k > 0 {
        scored.select_nth_unstable_by(k - 1, &order);
    }
    scored.truncate(k);
    scored.sort_unstable_by(order);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{CollectionSpec, Durability, IndexParams, Point};
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    fn filled(metric: Metric, n: usize, dim: usize) -> (tempfile::TempDir, Collection) {
        let dir = tempfile::tempdir().unwrap();
        let spec = CollectionSpec {
            dimension: dim,
            metric,
            index: IndexParams::default(),
            indexed_fields: vec![],
        };
        let mut c = Collection::create(dir.path(), &spec, Durability::Relaxed).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let points = (0..n)
            .map(|i| Point {
                id: format!("p{i}"),
                vector: (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect(),
                payload: json!({"group": i % 100}),
            })
            .collect();
        let prepared = c.prepare_upsert(points).unwrap();
        c.commit_upsert(prepared).unwrap();
        (dir, c)
    }

    fn top_10<'a>(query: &'a [f32], filter: &'a Filter) -> Search<'a> {
        Search {
            vector: query,
            k: 10,
            ef: 64,
            exact: false,
            filter: Some(filter),
        }
    }

    fn parsed(filter: serde_json::Value) -> Filter {
        Filter::parse("filter", &filter).unwrap()
    }

    #[test]
    fn exact_scores_agree_with_the_index_for_each_metric() {
        for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
            let (_dir, c) = filled(metric, 300, 8);
            let query = c.store.vector(5).to_vec();
            let exact = exact_scan(&c, &query, 5, c.store.live().map(|(s, _)| s));
            let approx = to_scores(metric, c.index.search(&query, 5, 200, None).unwrap());
            assert_eq!(exact[0].0, approx[0].0, "{metric:?}");
            for (e, a) in exact.iter().zip(&approx) {
                assert!((e.1 - a.1).abs() < 1e-3, "{metric:?}: {e:?} vs {a:?}");
            }
            if metric != Metric::Dot {
                assert_eq!(exact[0].0, 5, "a point is its own nearest neighbour");
            }
        }
    }

    #[test]
    fn a_sparse_filter_returns_k_exact_matches() {
        let (_dir, c) = filled(Metric::L2, 3000, 8);
        let query = vec![0.0; 8];
        // 1 % of the points match.
        let filter = parsed(json!({"group": 42}));
        let (hits, plan) = run(&c, &top_10(&query, &filter)).unwrap();
        assert_eq!(plan, Plan::ExactScan);
        let matching = c
            .store
            .live()
            .filter(|(_, p)| p.payload["group"] == json!(42))
            .map(|(s, _)| s);
        let expected = exact_scan(&c, &query, 10, matching);
        assert_eq!(hits, expected);
        assert_eq!(hits.len(), 10);
    }

    #[test]
    fn a_broad_filter_uses_the_graph_and_still_returns_k() {
        let (_dir, c) = filled(Metric::Cosine, 3000, 8);
        let query = vec![0.5; 8];
        let filter = parsed(json!({"group": {"$lt": 50}}));
        let predicate = |p: &serde_json::Value| p["group"].as_u64().is_some_and(|g| g < 50);
        let search = top_10(&query, &filter);
        let (hits, plan) = run(&c, &search).unwrap();
        assert_eq!(plan, Plan::FilteredIndex);
        assert_eq!(hits.len(), 10);
        for (slot, _) in hits {
            assert!(predicate(&c.store.slot(slot).unwrap().payload));
        }
        let unfiltered = Search {
            filter: None,
            ..search
        };
        assert_eq!(run(&c, &unfiltered).unwrap().1, Plan::Index);
    }
}
