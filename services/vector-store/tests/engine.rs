//! The vector engine through its public API: durability across a real `kill -9`, recall
//! against exact search, quotas, tenant isolation, eviction and tier moves, and filtered
//! queries, counts and deletes (with and without a payload index) against brute force.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use prismicx_vector_store::engine::{
    CollectionKey, CollectionSpec, Durability, Engine, EngineConfig, EngineError, Filter,
    IndexParams, IndexState, Metric, Plan, Point, Query, Quota, Scope,
};
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

const CRASH_DIR_VAR: &str = "PRISMICX_VECTOR_CRASH_DIR";
const CRASH_TENANT: Uuid = Uuid::from_u128(0x1111);
const CRASH_COLLECTION: Uuid = Uuid::from_u128(0x2222);

fn config(dir: &Path) -> EngineConfig {
    EngineConfig {
        data_dir: dir.to_path_buf(),
        memory_budget_bytes: 1 << 30,
        durability: Durability::Fsync,
        checkpoint_bytes: 1 << 20,
    }
}

fn spec(dimension: usize, metric: Metric) -> CollectionSpec {
    CollectionSpec {
        dimension,
        metric,
        index: IndexParams::default(),
        indexed_fields: vec![],
    }
}

fn key(scope: Scope, tenant: Uuid, collection: Uuid) -> CollectionKey {
    CollectionKey {
        scope,
        tenant,
        collection,
    }
}

/// An engine in `dir` with one new collection of a new tenant.
fn engine_with_collection(dir: &Path, spec: &CollectionSpec) -> (Engine, CollectionKey) {
    let engine = Engine::open(config(dir)).expect("engine opens");
    let key = key(Scope::Shared, Uuid::new_v4(), Uuid::new_v4());
    engine
        .create_collection(&key, spec, &Quota::default())
        .expect("collection is created");
    (engine, key)
}

fn random_points(seed: u64, n: usize, dim: usize) -> Vec<Point> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| Point {
            id: format!("p{i:05}"),
            vector: (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect(),
            payload: json!({"i": i}),
        })
        .collect()
}

fn query(vector: Vec<f32>, limit: usize) -> Query {
    Query {
        vector,
        limit,
        filter: None,
        with_payload: true,
        with_vector: false,
        ef: None,
        exact: false,
    }
}

fn crash_point(i: u64) -> Point {
    Point {
        id: format!("w{i}"),
        vector: (0..8).map(|d| (i * 8 + d) as f32 / 1000.0).collect(),
        payload: json!({"i": i, "pad": "x".repeat(64)}),
    }
}

/// Runs only as the child of `an_acknowledged_write_survives_kill_9`: writes forever, printing
/// each acknowledged id.
#[test]
fn crash_writer_process() {
    let Ok(dir) = std::env::var(CRASH_DIR_VAR) else {
        return;
    };
    let mut config = config(Path::new(&dir));
    config.checkpoint_bytes = 16 * 1024; // checkpoints happen while the writer is killed
    let engine = Engine::open(config).unwrap();
    let key = key(Scope::Shared, CRASH_TENANT, CRASH_COLLECTION);
    for i in 0.. {
        engine
            .upsert(&key, vec![crash_point(i)], &Quota::default())
            .unwrap();
        if i % 7 == 3 {
            engine.delete_ids(&key, &[format!("w{}", i - 1)]).unwrap();
            println!("DEL w{}", i - 1);
        }
        println!("ACK w{i}");
    }
}

#[test]
fn an_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let key = key(Scope::Shared, CRASH_TENANT, CRASH_COLLECTION);
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        engine
            .create_collection(&key, &spec(8, Metric::L2), &Quota::default())
            .unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_writer_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut deleted = Vec::new();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        // The test harness's own "test … " text may precede the first line on the same line.
        if let Some(at) = line.find("ACK ") {
            acked.push(line[at + 4..].to_string());
        } else if let Some(at) = line.find("DEL ") {
            deleted.push(line[at + 4..].to_string());
        }
        if acked.len() == 400 {
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 400, "the writer stopped early");
    assert_eq!(acked[0], "w0");

    let engine = Engine::open(config(dir.path())).unwrap();
    let present = engine.get(&key, &acked, true).unwrap();
    let present: std::collections::HashMap<_, _> =
        present.into_iter().map(|r| (r.id.clone(), r)).collect();
    for id in &acked {
        if deleted.contains(id) {
            assert!(!present.contains_key(id), "{id} was deleted");
            continue;
        }
        let record = present
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged {id} is lost"));
        let number: u64 = id[1..].parse().unwrap();
        let expected = crash_point(number);
        assert_eq!(record.payload, expected.payload);
        assert_eq!(record.vector.as_deref(), Some(&expected.vector[..]));
    }
    // The recovered collection takes writes and queries again.
    engine
        .upsert(&key, vec![crash_point(100_000)], &Quota::default())
        .unwrap();
    let (hits, _) = engine
        .query(&key, &query(crash_point(5).vector, 1))
        .unwrap();
    assert_eq!(hits[0].id, "w5");
}

#[test]
fn hnsw_recall_at_10_is_at_least_0_9_at_ef_64() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, key) = engine_with_collection(dir.path(), &spec(32, Metric::Cosine));
    for batch in random_points(1, 5000, 32).chunks(1000) {
        engine
            .upsert(&key, batch.to_vec(), &Quota::default())
            .unwrap();
    }
    let queries = random_points(2, 50, 32);
    let mut found = 0;
    for q in &queries {
        let mut approx = query(q.vector.clone(), 10);
        approx.ef = Some(64);
        let (hits, plan) = engine.query(&key, &approx).unwrap();
        assert_eq!(plan, Plan::Index);
        let mut exact = approx.clone();
        exact.exact = true;
        let (truth, plan) = engine.query(&key, &exact).unwrap();
        assert_eq!(plan, Plan::ExactScan);
        assert_eq!(truth.len(), 10);
        assert!(truth.windows(2).all(|w| w[0].score >= w[1].score));
        found += hits
            .iter()
            .filter(|h| truth.iter().any(|t| t.id == h.id))
            .count();
    }
    let recall = found as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.9, "recall@10 = {recall}");
}

#[test]
fn a_refused_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = Uuid::new_v4();
    let (a, b) = (
        key(Scope::Shared, tenant, Uuid::new_v4()),
        key(Scope::Shared, tenant, Uuid::new_v4()),
    );
    let quota = Quota {
        max_collections: Some(2),
        max_points: Some(10),
        max_bytes: Some(10_000),
    };
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        engine
            .create_collection(&a, &spec(4, Metric::L2), &quota)
            .unwrap();
        engine
            .create_collection(&b, &spec(4, Metric::L2), &quota)
            .unwrap();
        let third = key(Scope::Shared, tenant, Uuid::new_v4());
        assert!(matches!(
            engine.create_collection(&third, &spec(4, Metric::L2), &quota),
            Err(EngineError::Quota {
                what: "collections",
                ..
            })
        ));
        engine.upsert(&a, random_points(3, 6, 4), &quota).unwrap();
        // 6 in `a` + 5 in `b` is past 10 points, across the tenant's collections.
        assert!(matches!(
            engine.upsert(&b, random_points(4, 5, 4), &quota),
            Err(EngineError::Quota {
                what: "points",
                would_be: 11,
                limit: 10
            })
        ));
        let mut big = random_points(5, 1, 4);
        big[0].payload = json!({"blob": "x".repeat(20_000)});
        assert!(matches!(
            engine.upsert(&b, big, &quota),
            Err(EngineError::Quota { what: "bytes", .. })
        ));
        // A bad point anywhere refuses the whole batch.
        let mut mixed = random_points(6, 3, 4);
        mixed[2].vector.push(1.0);
        assert!(matches!(
            engine.upsert(&b, mixed, &Quota::default()),
            Err(EngineError::Dimension {
                expected: 4,
                got: 5
            })
        ));
        assert_eq!(engine.count(&b, None).unwrap(), 0);
        let usage = engine.usage(Scope::Shared, tenant).unwrap();
        assert_eq!((usage.collections, usage.points), (2, 6));
    }
    // Nothing of the refused batches is on disk either.
    let engine = Engine::open(config(dir.path())).unwrap();
    let usage = engine.usage(Scope::Shared, tenant).unwrap();
    assert_eq!((usage.collections, usage.points), (2, 6));
    assert_eq!(engine.count(&b, None).unwrap(), 0);
    assert_eq!(engine.count(&a, None).unwrap(), 6);
    assert_eq!(engine.usage(Scope::Shared, tenant).unwrap(), usage);
}

#[test]
fn concurrent_batches_cannot_both_pass_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let tenant = Uuid::new_v4();
    let quota = Quota {
        max_points: Some(30),
        ..Quota::default()
    };
    let keys: Vec<_> = (0..4)
        .map(|_| key(Scope::Dedicated, tenant, Uuid::new_v4()))
        .collect();
    for k in &keys {
        engine
            .create_collection(k, &spec(4, Metric::Dot), &quota)
            .unwrap();
    }
    std::thread::scope(|s| {
        for (i, k) in keys.iter().enumerate() {
            let engine = &engine;
            s.spawn(move || {
                for round in 0..5 {
                    let _ = engine.upsert(k, random_points((i * 10 + round) as u64, 3, 4), &quota);
                }
            });
        }
    });
    let usage = engine.usage(Scope::Dedicated, tenant).unwrap();
    let counted: u64 = keys.iter().map(|k| engine.count(k, None).unwrap()).sum();
    assert_eq!(usage.points, counted);
    assert!(usage.points <= 30, "{usage:?}");
}

#[test]
fn tenants_never_see_each_others_points() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let collection = Uuid::new_v4();
    let a = key(Scope::Shared, Uuid::new_v4(), collection);
    let b = key(Scope::Shared, Uuid::new_v4(), collection);
    for k in [&a, &b] {
        engine
            .create_collection(k, &spec(4, Metric::L2), &Quota::default())
            .unwrap();
    }
    let mut a_points = random_points(7, 20, 4);
    for p in &mut a_points {
        p.payload = json!({"owner": "a"});
    }
    engine.upsert(&a, a_points, &Quota::default()).unwrap();
    engine
        .upsert(&b, random_points(8, 3, 4), &Quota::default())
        .unwrap();
    let (hits, _) = engine.query(&b, &query(vec![0.0; 4], 50)).unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits
        .iter()
        .all(|h| h.payload != Some(json!({"owner": "a"}))));
    let (page, _) = engine.scroll(&b, None, 100, None, false).unwrap();
    assert_eq!(page.len(), 3);
    // An id of `a` read through `b` is simply absent; deleting it there touches nothing of `a`.
    assert!(
        engine
            .get(&b, &["p00010".into()], false)
            .unwrap()
            .is_empty()
            || page.len() == 3
    );
    engine.delete_ids(&b, &["p00015".into()]).unwrap();
    assert_eq!(engine.count(&a, None).unwrap(), 20);
    assert_eq!(engine.usage(Scope::Shared, a.tenant).unwrap().points, 20);
    engine.drop_tenant(Scope::Shared, b.tenant).unwrap();
    assert!(matches!(engine.count(&b, None), Err(EngineError::NotFound)));
    assert_eq!(engine.count(&a, None).unwrap(), 20);
}

#[test]
fn eviction_under_a_tiny_budget_then_reload_gives_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.memory_budget_bytes = 1;
    let engine = Engine::open(cfg).unwrap();
    let tenant = Uuid::new_v4();
    let keys: Vec<_> = (0..3)
        .map(|_| key(Scope::Shared, tenant, Uuid::new_v4()))
        .collect();
    let probe = random_points(99, 1, 16).remove(0).vector;
    let mut before = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        engine
            .create_collection(k, &spec(16, Metric::Cosine), &Quota::default())
            .unwrap();
        engine
            .upsert(k, random_points(i as u64, 400, 16), &Quota::default())
            .unwrap();
        engine.delete_ids(k, &["p00001".into()]).unwrap();
        before.push(engine.query(k, &query(probe.clone(), 10)).unwrap().0);
        // Only the collection just used stays in memory.
        assert_eq!(engine.resident().collections, 1);
    }
    assert_eq!(
        engine.stats(&keys[0]).unwrap().index_state,
        IndexState::OnDisk
    );
    assert_eq!(engine.stats(&keys[0]).unwrap().deleted_pending, 1);
    for (k, expected) in keys.iter().zip(&before) {
        let (hits, _) = engine.query(k, &query(probe.clone(), 10)).unwrap();
        assert_eq!(&hits, expected);
        assert_eq!(engine.count(k, None).unwrap(), 399);
    }
    let resident = engine.resident();
    assert_eq!(resident.collections, 1);
    assert!(resident.bytes > 0);
}

#[test]
fn a_tier_move_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let tenant = Uuid::new_v4();
    let shared = key(Scope::Shared, tenant, Uuid::new_v4());
    engine
        .create_collection(&shared, &spec(4, Metric::L2), &Quota::default())
        .unwrap();
    engine
        .upsert(&shared, random_points(11, 30, 4), &Quota::default())
        .unwrap();
    engine.ensure_scope(tenant, Scope::Dedicated).unwrap();
    let dedicated = CollectionKey {
        scope: Scope::Dedicated,
        ..shared
    };
    assert!(matches!(
        engine.count(&shared, None),
        Err(EngineError::NotFound)
    ));
    assert_eq!(engine.count(&dedicated, None).unwrap(), 30);
    assert_eq!(
        engine.collections_of(Scope::Dedicated, tenant).unwrap(),
        vec![shared.collection]
    );
    assert!(engine
        .collections_of(Scope::Shared, tenant)
        .unwrap()
        .is_empty());
    assert_eq!(engine.usage(Scope::Dedicated, tenant).unwrap().points, 30);
    assert_eq!(engine.usage(Scope::Shared, tenant).unwrap().points, 0);
    // Moving again is a no-op; moving back restores the shared layout.
    engine.ensure_scope(tenant, Scope::Dedicated).unwrap();
    engine.ensure_scope(tenant, Scope::Shared).unwrap();
    assert_eq!(engine.count(&shared, None).unwrap(), 30);
    drop(engine);
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(engine.count(&shared, None).unwrap(), 30);
}

#[test]
fn scroll_pages_in_id_order_and_compaction_reclaims_holes() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, k) = engine_with_collection(dir.path(), &spec(4, Metric::Dot));
    let mut points = random_points(12, 25, 4);
    points.reverse();
    engine.upsert(&k, points, &Quota::default()).unwrap();
    engine
        .delete_ids(&k, &["p00003".into(), "p00004".into()])
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = engine
            .scroll(&k, cursor.as_deref(), 10, None, true)
            .unwrap();
        assert!(page
            .iter()
            .all(|r| r.vector.as_ref().is_some_and(|v| v.len() == 4)));
        seen.extend(page.into_iter().map(|r| r.id));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..25).map(|i| format!("p{i:05}")).collect();
    expected.retain(|id| id != "p00003" && id != "p00004");
    assert_eq!(seen, expected);
    assert_eq!(engine.stats(&k).unwrap().deleted_pending, 2);
    engine.compact(&k).unwrap();
    let stats = engine.stats(&k).unwrap();
    assert_eq!((stats.points, stats.deleted_pending), (23, 0));
    assert!(stats.bytes_on_disk > 0);
    engine.drop_collection(&k).unwrap();
    assert!(matches!(
        engine.drop_collection(&k),
        Err(EngineError::NotFound)
    ));
    assert!(engine
        .collections_of(Scope::Shared, k.tenant)
        .unwrap()
        .is_empty());
}

#[test]
fn queries_with_different_ef_run_side_by_side() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine>();
    let dir = tempfile::tempdir().unwrap();
    let (engine, key) = engine_with_collection(dir.path(), &spec(8, Metric::L2));
    engine
        .upsert(&key, random_points(13, 2000, 8), &Quota::default())
        .unwrap();
    let probes = random_points(14, 20, 8);
    std::thread::scope(|s| {
        for (t, ef) in [16, 64, 128, 64, 300, 16].into_iter().enumerate() {
            let (engine, probes) = (&engine, &probes);
            s.spawn(move || {
                for p in probes.iter().skip(t) {
                    let mut q = query(p.vector.clone(), 10);
                    q.ef = Some(ef);
                    let (hits, plan) = engine.query(&key, &q).unwrap();
                    assert_eq!(plan, Plan::Index);
                    assert_eq!(hits.len(), 10);
                    assert!(hits.windows(2).all(|w| w[0].score <= w[1].score));
                }
            });
        }
    });
    let mut bad = query(vec![0.0; 8], 10);
    bad.ef = Some(0);
    assert!(matches!(
        engine.query(&key, &bad),
        Err(EngineError::Invalid(_))
    ));
    assert!(matches!(
        engine.query(&key, &query(vec![0.0; 8], 0)),
        Err(EngineError::Invalid(_))
    ));
    assert!(matches!(
        engine.query(&key, &query(vec![f32::INFINITY; 8], 3)),
        Err(EngineError::NotFinite)
    ));
}

fn filter(value: serde_json::Value) -> Filter {
    Filter::parse("filter", &value).expect("filter parses")
}

/// Points `p00000…` with random vectors and the payload `{"bucket": i % 100}`.
fn bucketed_points(seed: u64, n: usize, dim: usize) -> Vec<Point> {
    random_points(seed, n, dim)
        .into_iter()
        .enumerate()
        .map(|(i, point)| Point {
            payload: json!({"bucket": i % 100}),
            ..point
        })
        .collect()
}

/// The ids of the `k` points nearest to `query` (Euclidean) among those `keep` accepts.
fn brute_force_nearest(
    points: &[Point],
    query: &[f32],
    k: usize,
    keep: impl Fn(&Point) -> bool,
) -> Vec<String> {
    let mut scored: Vec<(f32, &str)> = points
        .iter()
        .filter(|p| keep(p))
        .map(|p| {
            let distance: f32 = p
                .vector
                .iter()
                .zip(query)
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            (distance, p.id.as_str())
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored
        .into_iter()
        .take(k)
        .map(|(_, id)| id.into())
        .collect()
}

fn bucket_of(payload: &serde_json::Value) -> u64 {
    payload["bucket"].as_u64().expect("a bucket")
}

#[test]
fn filtered_queries_agree_with_brute_force_with_and_without_a_payload_index() {
    const DIM: usize = 16;
    let points = bucketed_points(21, 3000, DIM);
    let queries = random_points(22, 20, DIM);
    let mut memory = Vec::new();
    for indexed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = spec(DIM, Metric::L2);
        if indexed {
            spec.indexed_fields = vec!["bucket".into()];
        }
        let (engine, key) = engine_with_collection(dir.path(), &spec);
        for batch in points.chunks(1000) {
            engine
                .upsert(&key, batch.to_vec(), &Quota::default())
                .unwrap();
        }
        memory.push(engine.stats(&key).unwrap().bytes_in_memory);

        // 1 % selectivity: the exact k nearest of the matches.
        for sparse in [json!({"bucket": 0}), json!({"bucket": {"$lt": 1}})] {
            let sparse = filter(sparse);
            assert_eq!(engine.count(&key, Some(&sparse)).unwrap(), 30);
            for q in &queries {
                let mut filtered = query(q.vector.clone(), 10);
                filtered.filter = Some(sparse.clone());
                let (hits, plan) = engine.query(&key, &filtered).unwrap();
                assert_eq!(plan, Plan::ExactScan, "indexed: {indexed}");
                let ids: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
                let expected =
                    brute_force_nearest(&points, &q.vector, 10, |p| bucket_of(&p.payload) == 0);
                assert_eq!(ids, expected, "indexed: {indexed}");
            }
        }

        // 50 % selectivity: k matching hits from the graph, close to the exact answer.
        let half = filter(json!({"bucket": {"$lt": 50}}));
        assert_eq!(engine.count(&key, Some(&half)).unwrap(), 1500);
        let mut found = 0;
        for q in &queries {
            let mut filtered = query(q.vector.clone(), 10);
            filtered.filter = Some(half.clone());
            let (hits, plan) = engine.query(&key, &filtered).unwrap();
            assert_eq!(plan, Plan::FilteredIndex, "indexed: {indexed}");
            assert_eq!(hits.len(), 10);
            assert!(hits
                .iter()
                .all(|h| bucket_of(h.payload.as_ref().unwrap()) < 50));
            let expected =
                brute_force_nearest(&points, &q.vector, 10, |p| bucket_of(&p.payload) < 50);
            found += hits.iter().filter(|h| expected.contains(&h.id)).count();
        }
        let recall = found as f64 / (10 * queries.len()) as f64;
        assert!(recall >= 0.9, "indexed: {indexed}, recall@10 = {recall}");
    }
    assert!(
        memory[1] > memory[0],
        "the payload index counts in memory: {memory:?}"
    );
}

#[test]
fn deleted_and_overwritten_points_never_match_again() {
    const DIM: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(DIM, Metric::L2);
    spec.indexed_fields = vec!["bucket".into()];
    let (engine, key) = engine_with_collection(dir.path(), &spec);
    let points = bucketed_points(31, 600, DIM);
    engine
        .upsert(&key, points.clone(), &Quota::default())
        .unwrap();

    // Buckets 0..10 go: 60 points.
    let low = filter(json!({"bucket": {"$lt": 10}}));
    assert_eq!(engine.count(&key, Some(&low)).unwrap(), 60);
    assert_eq!(engine.delete_filter(&key, &low).unwrap(), 60);
    assert_eq!(engine.delete_filter(&key, &low).unwrap(), 0);
    // p00010 moves from bucket 10 to bucket 99, with a new vector.
    let moved = Point {
        id: "p00010".into(),
        vector: vec![0.5; DIM],
        payload: json!({"bucket": 99}),
    };
    engine
        .upsert(&key, vec![moved.clone()], &Quota::default())
        .unwrap();
    let deleted: Vec<&Point> = points
        .iter()
        .filter(|p| bucket_of(&p.payload) < 10)
        .collect();

    let check = |engine: &Engine, stage: &str| {
        assert_eq!(engine.count(&key, None).unwrap(), 540, "{stage}");
        assert_eq!(engine.count(&key, Some(&low)).unwrap(), 0, "{stage}");
        let bucket_10 = filter(json!({"bucket": 10}));
        assert_eq!(engine.count(&key, Some(&bucket_10)).unwrap(), 5, "{stage}");
        let bucket_99 = filter(json!({"bucket": {"$gte": 99}}));
        assert_eq!(engine.count(&key, Some(&bucket_99)).unwrap(), 7, "{stage}");
        // Every live point, exactly.
        let mut all = query(vec![0.0; DIM], 1000);
        all.exact = true;
        let (hits, _) = engine.query(&key, &all).unwrap();
        assert_eq!(hits.len(), 540, "{stage}");
        assert!(
            hits.iter()
                .all(|h| bucket_of(h.payload.as_ref().unwrap()) >= 10),
            "{stage}"
        );
        // A deleted point's own vector does not find it, through the graph or a filter.
        for point in deleted.iter().take(20) {
            for filtered in [None, Some(low.clone())] {
                let mut near = query(point.vector.clone(), 5);
                near.filter = filtered;
                let (hits, _) = engine.query(&key, &near).unwrap();
                assert!(hits.iter().all(|h| h.id != point.id), "{stage}");
            }
        }
        // The overwritten point is found under its new bucket only, with its new payload.
        let mut near = query(moved.vector.clone(), 1);
        near.filter = Some(bucket_99.clone());
        let (hits, _) = engine.query(&key, &near).unwrap();
        assert_eq!(hits[0].id, moved.id, "{stage}");
        assert_eq!(hits[0].payload.as_ref(), Some(&moved.payload), "{stage}");
        near.filter = Some(bucket_10);
        near.limit = 10;
        let (hits, _) = engine.query(&key, &near).unwrap();
        assert_eq!(hits.len(), 5, "{stage}");
        assert!(hits.iter().all(|h| h.id != moved.id), "{stage}");
    };
    check(&engine, "in memory");
    drop(engine);
    let engine = Engine::open(config(dir.path())).unwrap();
    check(&engine, "after reopening (log replay)");
    engine.compact(&key).unwrap();
    check(&engine, "after compaction");
    drop(engine);
    let engine = Engine::open(config(dir.path())).unwrap();
    check(&engine, "after reopening the compacted snapshot");
}
