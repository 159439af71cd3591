//! Benchmark: the vector engine's approximate search against faiss and hnswlib on the same data
//! with the same index parameters, plus filtered search, ingest and many small tenants, in one run.
//!
//! Method (also in docs/benchmarks.md):
//!
//! 1. Data: Fashion-MNIST from the Debian package `dataset-fashion-mnist` (`make bench-deps`):
//!    the 60,000 training images are the base, the first 2,000 of the 10,000 test images the
//!    queries, 784 dimensions, pixels 0–255 as f32, Euclidean distance (the public ANN benchmarks'
//!    fashion-mnist-784-euclidean). `benches/ann_peers.py prepare` writes them as raw f32 files
//!    with the exact 10 nearest neighbours (faiss `IndexFlatL2`), cached in
//!    `$PRISMICX_TOOLS_DIR/ann-cache`.
//! 2. Engine: one collection (metric l2, M = 16, efConstruction = 200), the base upserted in
//!    batches of 1,000 with relaxed durability, each point with the payload `{"bucket": i % 100}`
//!    (`bucket` an indexed field). Build time is the wall time of the upserts; memory is the
//!    engine's own account (`stats`, `resident`) and the growth of the process's RSS.
//! 3. Queries, one thread, k = 10, at ef 10, 16, 20, 32, 40, 64, 128, 256, one `query` call per
//!    query: each ef's QPS is the best of 3 passes over the queries, both per second of wall
//!    time and per second of the querying thread's CPU time (`/proc/thread-self/schedstat`; the
//!    peers: Python's `process_time`). The machine is shared, so the CPU-time figure is the one
//!    that compares; the wall figure shows what the load left. Recall@10 is
//!    |found ∩ exact| / 10, averaged.
//! 4. Peers: `ann_peers.py run` builds faiss `IndexHNSWFlat` and hnswlib with M = 16,
//!    efConstruction = 200, one thread, and runs the same queries as one batch per ef (best of 3).
//!    QPS at recall 0.90 / 0.95 / 0.99 is interpolated linearly between the two efs around the
//!    recall; where even the smallest ef exceeds it, the QPS of that ef is taken.
//! 5. Filtered: `{"bucket": {"$lt": 1}}` (1 % of the points) and `{"$lt": 50}` (50 %), the first
//!    500 queries, recall against an exact filtered top 10 computed here.
//! 6. Ingest: 10,000 points into a new collection through `upsert` in batches of 500, with fsync
//!    durability and with relaxed durability (each its own engine).
//! 7. Service: vector-store-service in this process on a loopback port (metadata in the
//!    harness's MongoDB, engine with fsync durability): a third of the base ingested through
//!    `PUT …/points` in batches of 500, then `wrk` (one connection, then 8) on `POST …/query`
//!    against the same collection queried in process.
//! 8. Many tenants: 10,000 tenants with one collection of 100 random 32-d points each on one
//!    engine with a 4 MiB memory budget; resident bytes against the budget; latency of a query to
//!    a cold (evicted) tenant and to a warm one, p50 / p99.
//!
//! The recall–QPS points go to `docs/benchmarks/vector-store-recall-qps.json` and the plot
//! (`benches/plot_recall_qps.py`) to `docs/benchmarks/vector-store-recall-qps.png`.
//! `VECTOR_BENCH_QUICK=1`: 10,000 base points, 500 queries, 1,000 tenants, 2,000 ingested
//! points, output under the system temp directory. Run with `make bench` or
//! `cargo bench -p prismicx-vector-store --bench ann`.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use prismicx_vector_store::engine::{
    CollectionKey, CollectionSpec, Durability, Engine, EngineConfig, Filter, IndexParams,
    IndexState, Metric, Plan, Point, Query, Quota, Scope,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

const K: usize = 10;
const EFS: [usize; 8] = [10, 16, 20, 32, 40, 64, 128, 256];
const FILTER_EFS: [usize; 5] = [16, 32, 64, 128, 256];
const REPEATS: usize = 3;
const BUILD_BATCH: usize = 1_000;
const INGEST_BATCH: usize = 500;
const RECALL_TARGETS: [f64; 3] = [0.90, 0.95, 0.99];
const DATASET_DIR: &str = "/usr/share/datasets/fashion-mnist";
const INSTALL_HINT: &str = "run `make bench-deps` (or `scripts/install-deps.sh --bench`): it \
     installs the Debian package dataset-fashion-mnist and the venv with faiss-cpu and hnswlib";

/// The sizes of a run.
struct Settings {
    base: usize,
    queries: usize,
    filtered_queries: usize,
    ingest_points: usize,
    tenants: usize,
    out_dir: PathBuf,
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("VECTOR_BENCH_QUICK").is_ok_and(|v| v == "1");
        if quick {
            Settings {
                base: 10_000,
                queries: 500,
                filtered_queries: 200,
                ingest_points: 2_000,
                tenants: 1_000,
                out_dir: std::env::temp_dir().join("prismicx-ann-bench"),
            }
        } else {
            Settings {
                base: 60_000,
                queries: 2_000,
                filtered_queries: 500,
                ingest_points: 10_000,
                tenants: 10_000,
                out_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks"),
            }
        }
    }
}

/// Where the peers' venv and the prepared data live.
struct Tools {
    python: PathBuf,
    cache: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools> {
        let dir = match std::env::var_os("PRISMICX_TOOLS_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
                .join(".cache/prismicx/tools"),
        };
        let python = dir.join("ann-venv/bin/python");
        if !python.exists() {
            bail!("{} not found: {INSTALL_HINT}", python.display());
        }
        Ok(Tools {
            python,
            cache: dir.join("ann-cache"),
        })
    }

    fn peers(&self, args: &[&str]) -> Result<String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ann_peers.py");
        let out = Command::new(&self.python)
            .arg(&script)
            .args(args)
            .arg("--cache")
            .arg(&self.cache)
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "ann_peers.py {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

#[derive(Deserialize)]
struct Prepared {
    dim: usize,
    base_path: PathBuf,
    queries_path: PathBuf,
    gt_path: PathBuf,
}

/// The base, the queries and the exact neighbours, row-major.
struct Data {
    dim: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
    truth: Vec<i32>,
}

impl Data {
    fn load(tools: &Tools, settings: &Settings) -> Result<Data> {
        let dataset = std::env::var("FASHION_MNIST_DIR").unwrap_or_else(|_| DATASET_DIR.into());
        if !Path::new(&dataset)
            .join("train-images-idx3-ubyte.gz")
            .exists()
        {
            bail!("Fashion-MNIST not found in {dataset}: {INSTALL_HINT}");
        }
        let (base, queries) = (settings.base.to_string(), settings.queries.to_string());
        let out = tools.peers(&[
            "prepare",
            "--data",
            &dataset,
            "--base",
            &base,
            "--queries",
            &queries,
        ])?;
        let prepared: Prepared = serde_json::from_str(out.trim())?;
        let read_f32 = |p: &Path| -> Result<Vec<f32>> {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let truth_bytes = std::fs::read(&prepared.gt_path)?;
        let data = Data {
            dim: prepared.dim,
            base: read_f32(&prepared.base_path)?,
            queries: read_f32(&prepared.queries_path)?,
            truth: truth_bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        };
        if data.base.len() != settings.base * data.dim
            || data.queries.len() != settings.queries * data.dim
            || data.truth.len() != settings.queries * K
        {
            bail!(
                "prepared files in {} have unexpected sizes",
                tools.cache.display()
            );
        }
        Ok(data)
    }

    fn base_vector(&self, i: usize) -> &[f32] {
        &self.base[i * self.dim..(i + 1) * self.dim]
    }

    fn query_vector(&self, i: usize) -> &[f32] {
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }

    fn n_base(&self) -> usize {
        self.base.len() / self.dim
    }

    fn n_queries(&self) -> usize {
        self.queries.len() / self.dim
    }

    fn point(&self, i: usize) -> Point {
        Point {
            id: i.to_string(),
            vector: self.base_vector(i).to_vec(),
            payload: json!({ "bucket": i % 100 }),
        }
    }

    /// The exact top k of query `q` among the base points that `keep` admits.
    fn exact_top(&self, q: usize, keep: impl Fn(usize) -> bool) -> Vec<usize> {
        let query = self.query_vector(q);
        let mut scored: Vec<(f32, usize)> = (0..self.n_base())
            .filter(|&i| keep(i))
            .map(|i| (squared_l2(query, self.base_vector(i)), i))
            .collect();
        let k = K.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        scored.truncate(k);
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        scored.into_iter().map(|(_, i)| i).collect()
    }
}

fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// One point of a recall–QPS curve.
#[derive(Debug, Deserialize)]
struct CurvePoint {
    library: String,
    #[serde(default)]
    version: String,
    ef: usize,
    /// Queries per second of wall time.
    qps: f64,
    /// Queries per second of the querying thread's (process's) CPU time.
    cpu_qps: f64,
    recall: f64,
    build_s: f64,
    build_cpu_s: f64,
    memory_bytes: u64,
}

/// One library's curve and build figures.
struct Curve {
    library: String,
    points: Vec<CurvePoint>,
    build_s: f64,
    build_cpu_s: f64,
    memory_bytes: u64,
}

impl Curve {
    fn from_points(points: Vec<CurvePoint>) -> Result<Curve> {
        let first = points.first().context("a library reported no points")?;
        Ok(Curve {
            library: if first.version.is_empty() {
                first.library.clone()
            } else {
                format!("{} {}", first.library, first.version)
            },
            build_s: first.build_s,
            build_cpu_s: first.build_cpu_s,
            memory_bytes: first.memory_bytes,
            points,
        })
    }

    /// QPS at `recall`, interpolated on the curve ordered by recall, and whether even the
    /// smallest ef is above that recall (then the fastest ef's QPS); `None` when no ef reaches it.
    fn qps_at(&self, recall: f64, qps: fn(&CurvePoint) -> f64) -> Option<(f64, bool)> {
        let mut pts: Vec<&CurvePoint> = self.points.iter().collect();
        pts.sort_by(|a, b| a.recall.total_cmp(&b.recall));
        let above = pts.iter().position(|p| p.recall >= recall)?;
        if above == 0 {
            return pts
                .iter()
                .map(|p| qps(p))
                .reduce(f64::max)
                .map(|q| (q, true));
        }
        let (lo, hi) = (pts[above - 1], pts[above]);
        let t = (recall - lo.recall) / (hi.recall - lo.recall);
        Some((qps(lo) + t * (qps(hi) - qps(lo)), false))
    }
}

fn bench_spec(dim: usize, indexed: &[&str]) -> CollectionSpec {
    CollectionSpec {
        dimension: dim,
        metric: Metric::L2,
        index: IndexParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        },
        indexed_fields: indexed.iter().map(|s| s.to_string()).collect(),
    }
}

fn new_key() -> CollectionKey {
    CollectionKey {
        scope: Scope::Shared,
        tenant: Uuid::new_v4(),
        collection: Uuid::new_v4(),
    }
}

fn open_engine(dir: &Path, durability: Durability, budget: u64) -> Result<Engine> {
    Ok(Engine::open(EngineConfig {
        data_dir: dir.to_path_buf(),
        memory_budget_bytes: budget,
        durability,
        checkpoint_bytes: 64 << 20,
    })?)
}

/// The process's resident set size and its CPU time so far (user + system).
fn process_usage() -> (u64, Duration) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    // USER_HZ is 100 on Linux.
    (rss_kib * 1024, Duration::from_millis(ticks * 10))
}

/// The CPU time the calling thread has run (the kernel's per-thread schedstat, in ns).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn query(vector: &[f32], ef: usize, filter: Option<Filter>) -> Query {
    Query {
        vector: vector.to_vec(),
        limit: K,
        filter,
        with_payload: false,
        with_vector: false,
        ef: Some(ef),
        exact: false,
    }
}

/// What a set of queries measured.
struct Measured {
    qps: f64,
    cpu_qps: f64,
    recall: f64,
    plans: Vec<&'static str>,
}

/// Runs every query `REPEATS` times: the best pass's QPS (wall and CPU time of this thread, each
/// the best of the passes), the recall against `truth` (the ids expected per query) and the
/// plans the engine chose.
fn timed_queries(
    engine: &Engine,
    key: &CollectionKey,
    queries: &[Query],
    truth: &[Vec<usize>],
) -> Result<Measured> {
    let mut best = Duration::MAX;
    let mut best_cpu = Duration::MAX;
    let mut found = Vec::new();
    let mut plans: Vec<Plan> = Vec::new();
    for _ in 0..REPEATS {
        found.clear();
        let (start, start_cpu) = (Instant::now(), thread_cpu());
        for q in queries {
            let (hits, plan) = engine.query(key, q)?;
            found.push(hits);
            if !plans.contains(&plan) {
                plans.push(plan);
            }
        }
        best = best.min(start.elapsed());
        best_cpu = best_cpu.min(thread_cpu().saturating_sub(start_cpu));
    }
    let mut hit_count = 0usize;
    let mut expected = 0usize;
    for (hits, want) in found.iter().zip(truth) {
        let want: HashSet<usize> = want.iter().copied().collect();
        hit_count += hits
            .iter()
            .filter_map(|h| h.id.parse::<usize>().ok())
            .filter(|id| want.contains(id))
            .count();
        expected += want.len();
    }
    let n = queries.len() as f64;
    Ok(Measured {
        qps: n / best.as_secs_f64(),
        cpu_qps: n / best_cpu.as_secs_f64().max(1e-9),
        recall: hit_count as f64 / expected.max(1) as f64,
        plans: plans.into_iter().map(plan_name).collect(),
    })
}

fn plan_name(plan: Plan) -> &'static str {
    match plan {
        Plan::Index => "index",
        Plan::FilteredIndex => "filtered-index",
        Plan::ExactScan => "exact-scan",
    }
}

/// The engine's collection of the whole base, and its build figures.
struct Built {
    key: CollectionKey,
    build_cpu: Duration,
    /// CPU time of one `stats` call: the engine's per-call memory accounting (`memory_bytes`)
    /// that every query also pays when it records the collection's size.
    stats_call: Duration,
    rss_growth: u64,
}

fn build_and_query(engine: &Engine, data: &Data) -> Result<(Built, Curve)> {
    let key = new_key();
    engine.create_collection(&key, &bench_spec(data.dim, &["bucket"]), &Quota::default())?;
    let (rss_before, process_cpu_before) = process_usage();
    let cpu_before = thread_cpu();
    let start = Instant::now();
    for chunk in (0..data.n_base()).collect::<Vec<_>>().chunks(BUILD_BATCH) {
        let points = chunk.iter().map(|&i| data.point(i)).collect();
        engine.upsert(&key, points, &Quota::default())?;
    }
    let build = start.elapsed();
    let build_cpu = thread_cpu().saturating_sub(cpu_before);
    let (rss_after, process_cpu_after) = process_usage();
    let stats = engine.stats(&key)?;
    let truth: Vec<Vec<usize>> = (0..data.n_queries())
        .map(|q| {
            data.truth[q * K..(q + 1) * K]
                .iter()
                .map(|&i| i as usize)
                .collect()
        })
        .collect();
    let mut points = Vec::new();
    for ef in EFS {
        let queries: Vec<Query> = (0..data.n_queries())
            .map(|q| query(data.query_vector(q), ef, None))
            .collect();
        let m = timed_queries(engine, &key, &queries, &truth)?;
        eprintln!(
            "engine ef {ef}: {:.0} QPS ({:.0} per CPU second), recall {:.4}, plans {:?}",
            m.qps, m.cpu_qps, m.recall, m.plans
        );
        points.push(CurvePoint {
            library: "engine".into(),
            version: String::new(),
            ef,
            qps: m.qps,
            cpu_qps: m.cpu_qps,
            recall: m.recall,
            build_s: build.as_secs_f64(),
            build_cpu_s: build_cpu.as_secs_f64(),
            memory_bytes: stats.bytes_in_memory,
        });
    }
    const STATS_CALLS: u32 = 200;
    let stats_start = thread_cpu();
    for _ in 0..STATS_CALLS {
        engine.stats(&key)?;
    }
    let built = Built {
        key,
        stats_call: thread_cpu().saturating_sub(stats_start) / STATS_CALLS,
        build_cpu: process_cpu_after.saturating_sub(process_cpu_before),
        rss_growth: rss_after.saturating_sub(rss_before),
    };
    Ok((built, Curve::from_points(points)?))
}

fn peer_curve(tools: &Tools, settings: &Settings, library: &str) -> Result<Curve> {
    let efs = EFS.map(|e| e.to_string()).join(",");
    let (base, queries) = (settings.base.to_string(), settings.queries.to_string());
    let out = tools.peers(&[
        "run",
        "--library",
        library,
        "--base",
        &base,
        "--queries",
        &queries,
        "--efs",
        &efs,
    ])?;
    let points = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<CurvePoint>, _>>()?;
    Curve::from_points(points)
}

fn print_comparison(curves: &[Curve], engine_extra: &Built, resident_bytes: u64) {
    println!("\n### Recall@10 and QPS per ef (one thread, k = 10; QPS per CPU second / per wall second)\n");
    print!("| ef |");
    for c in curves {
        print!(" {0} recall | {0} QPS CPU | {0} QPS wall |", c.library);
    }
    println!();
    println!("|---|{}", "---|---|---|".repeat(curves.len()));
    for (row, ef) in EFS.iter().enumerate() {
        print!("| {ef} |");
        for c in curves {
            match c.points.get(row) {
                Some(p) => print!(" {:.4} | {:.0} | {:.0} |", p.recall, p.cpu_qps, p.qps),
                None => print!(" – | – | – |"),
            }
        }
        println!();
    }
    let fmt = |v: Option<(f64, bool)>| match v {
        Some((q, false)) => format!("{q:.0}"),
        Some((q, true)) => format!("{q:.0}*"),
        None => "not reached".to_string(),
    };
    let ratio = |a: Option<(f64, bool)>, b: Option<(f64, bool)>| match (a, b) {
        (Some((a, _)), Some((b, _))) => format!("{:.2}", a / b),
        _ => "–".into(),
    };
    let per_cpu: fn(&CurvePoint) -> f64 = |p| p.cpu_qps;
    let per_wall: fn(&CurvePoint) -> f64 = |p| p.qps;
    for (name, qps) in [("CPU", per_cpu), ("wall", per_wall)] {
        println!("\n### QPS per {name} second at a recall@10 (interpolated)\n");
        print!("| recall |");
        for c in curves {
            print!(" {} |", c.library);
        }
        println!(" engine / faiss | engine / hnswlib |");
        println!("|---|{}---|---|", "---|".repeat(curves.len()));
        for r in RECALL_TARGETS {
            let at: Vec<Option<(f64, bool)>> = curves.iter().map(|c| c.qps_at(r, qps)).collect();
            print!("| {r:.2} |");
            for q in &at {
                print!(" {} |", fmt(*q));
            }
            println!(" {} | {} |", ratio(at[0], at[1]), ratio(at[0], at[2]));
        }
    }
    println!(
        "\n\\* even ef {} is above this recall: the QPS of the fastest ef",
        EFS[0]
    );
    println!("\n### Build (M = 16, efConstruction = 200) and memory\n");
    println!("| library | build s (wall) | build s (CPU) | memory MiB |");
    println!("|---|---|---|---|");
    for c in curves {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} |",
            c.library,
            c.build_s,
            c.build_cpu_s,
            mib(c.memory_bytes)
        );
    }
    println!(
        "\nengine: build CPU {:.1} s of the whole process (all threads) for {:.1} s wall; memory \
         above is the engine's stats().bytes_in_memory; resident() {:.1} MiB; process RSS grew \
         {:.1} MiB over the build (peers: RSS growth of their process over the build)",
        engine_extra.build_cpu.as_secs_f64(),
        curves[0].build_s,
        mib(resident_bytes),
        mib(engine_extra.rss_growth),
    );
    println!(
        "engine: one stats() call (the memory accounting a query also runs after it answers, \
         plus a few file sizes) takes {:.1} µs of CPU",
        engine_extra.stats_call.as_secs_f64() * 1e6
    );
}

fn filtered(engine: &Engine, key: &CollectionKey, data: &Data, settings: &Settings) -> Result<()> {
    println!(
        "\n### Filtered search ({} queries, payload bucket = i % 100, indexed)\n",
        settings.filtered_queries
    );
    println!("| filter | selectivity | ef | recall@10 | QPS CPU | QPS wall | plan |");
    println!("|---|---|---|---|---|---|---|");
    for below in [1usize, 50] {
        let filter_json = json!({ "bucket": { "$lt": below } });
        let filter = Filter::parse("filter", &filter_json)
            .map_err(|e| anyhow::anyhow!("filter refused: {e:?}"))?;
        let truth: Vec<Vec<usize>> = (0..settings.filtered_queries)
            .map(|q| data.exact_top(q, |i| i % 100 < below))
            .collect();
        let mut efs: Vec<Option<usize>> = FILTER_EFS.iter().copied().map(Some).collect();
        efs.push(None);
        for ef in efs {
            let queries: Vec<Query> = (0..settings.filtered_queries)
                .map(|q| Query {
                    ef,
                    exact: ef.is_none(),
                    ..query(data.query_vector(q), 0, Some(filter.clone()))
                })
                .collect();
            let m = timed_queries(engine, key, &queries, &truth)?;
            let mut plans = m.plans.clone();
            plans.sort();
            println!(
                "| `{filter_json}` | {below} % | {} | {:.4} | {:.0} | {:.0} | {} |",
                ef.map_or("exact".to_string(), |e| e.to_string()),
                m.recall,
                m.cpu_qps,
                m.qps,
                plans.join(", ")
            );
        }
    }
    Ok(())
}

fn ingest(data: &Data, settings: &Settings) -> Result<()> {
    println!(
        "\n### Ingest ({} points of {} dimensions through upsert, batches of {INGEST_BATCH})\n",
        settings.ingest_points, data.dim
    );
    println!("| durability | points/s | batch p50 ms | batch p99 ms |");
    println!("|---|---|---|---|");
    for (name, durability) in [
        ("fsync", Durability::Fsync),
        ("relaxed", Durability::Relaxed),
    ] {
        let dir = tempfile::tempdir()?;
        let engine = open_engine(dir.path(), durability, 8 << 30)?;
        let key = new_key();
        engine.create_collection(&key, &bench_spec(data.dim, &["bucket"]), &Quota::default())?;
        let mut batches = Vec::new();
        let start = Instant::now();
        let ids: Vec<usize> = (0..settings.ingest_points.min(data.n_base())).collect();
        for chunk in ids.chunks(INGEST_BATCH) {
            let points = chunk.iter().map(|&i| data.point(i)).collect();
            let t = Instant::now();
            engine.upsert(&key, points, &Quota::default())?;
            batches.push(t.elapsed());
        }
        let rate = ids.len() as f64 / start.elapsed().as_secs_f64();
        batches.sort();
        println!(
            "| {name} | {rate:.0} | {:.1} | {:.1} |",
            percentile(&batches, 50.0).as_secs_f64() * 1e3,
            percentile(&batches, 99.0).as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// A small deterministic generator (xorshift64*) for the tenants' random vectors.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }

    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.unit()).collect()
    }
}

fn many_tenants(settings: &Settings) -> Result<()> {
    const DIM: usize = 32;
    const POINTS: usize = 100;
    const BUDGET: u64 = 4 << 20;
    const SAMPLES: usize = 1_000;
    let dir = tempfile::tempdir()?;
    let engine = open_engine(dir.path(), Durability::Relaxed, BUDGET)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let spec = bench_spec(DIM, &[]);
    let mut keys = Vec::with_capacity(settings.tenants);
    let start = Instant::now();
    for _ in 0..settings.tenants {
        let key = new_key();
        engine.create_collection(&key, &spec, &Quota::default())?;
        let points = (0..POINTS)
            .map(|i| Point {
                id: i.to_string(),
                vector: rng.vector(DIM),
                payload: json!({}),
            })
            .collect();
        engine.upsert(&key, points, &Quota::default())?;
        keys.push(key);
    }
    let setup = start.elapsed();
    let resident = engine.resident();
    let (rss, _) = process_usage();

    // Warm: the most recently written tenant, again and again.
    let warm_key = *keys.last().context("no tenants")?;
    let mut warm = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let q = query(&rng.vector(DIM), 64, None);
        let t = Instant::now();
        engine.query(&warm_key, &q)?;
        warm.push(t.elapsed());
    }
    // Cold: the oldest tenants, evicted first; only those the engine reports on disk count.
    let mut cold = Vec::with_capacity(SAMPLES);
    let mut were_resident = 0usize;
    for key in keys.iter().take(SAMPLES.min(keys.len() / 2)) {
        if engine.stats(key)?.index_state != IndexState::OnDisk {
            were_resident += 1;
            continue;
        }
        let q = query(&rng.vector(DIM), 64, None);
        let t = Instant::now();
        engine.query(key, &q)?;
        cold.push(t.elapsed());
    }
    let after = engine.resident();
    warm.sort();
    cold.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\n### Many tenants ({} tenants × 1 collection of {POINTS} points, {DIM}-d, one engine, \
         memory budget {:.0} MiB)\n",
        settings.tenants,
        mib(BUDGET)
    );
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| setup (create + upsert, relaxed) | {:.1} s ({:.0} tenants/s) |",
        setup.as_secs_f64(),
        settings.tenants as f64 / setup.as_secs_f64()
    );
    println!(
        "| resident after setup | {} collections, {:.2} MiB (budget {:.0} MiB) |",
        resident.collections,
        mib(resident.bytes),
        mib(BUDGET)
    );
    println!(
        "| resident after the cold queries | {} collections, {:.2} MiB |",
        after.collections,
        mib(after.bytes)
    );
    println!("| process RSS after setup | {:.1} MiB |", mib(rss));
    println!(
        "| warm tenant query p50 / p99 | {:.3} / {:.3} ms ({SAMPLES} queries) |",
        ms(percentile(&warm, 50.0)),
        ms(percentile(&warm, 99.0))
    );
    println!(
        "| cold (evicted) tenant query p50 / p99 | {:.3} / {:.3} ms ({} queries; {were_resident} \
         of the oldest tenants were still resident) |",
        ms(percentile(&cold, 50.0)),
        ms(percentile(&cold, 99.0)),
        cold.len()
    );
    Ok(())
}

/// How many points the service section ingests and queries through HTTP.
fn service_points(settings: &Settings) -> usize {
    (settings.base / 3).max(2_000)
}

/// The process's CPU time (all threads).
fn process_cpu() -> Duration {
    process_usage().1
}

/// One `wrk` run against `url` with `lua`: requests/s and the latency line (p50, p99).
fn wrk(lua: &Path, url: &str, threads: u32, connections: u32, secs: u32) -> Result<(f64, String)> {
    let out = Command::new("wrk")
        .args([
            format!("-t{threads}"),
            format!("-c{connections}"),
            format!("-d{secs}s"),
            "--latency".into(),
            "-s".into(),
        ])
        .arg(lua)
        .arg(url)
        .output()
        .context("running wrk (make deps installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() || text.contains("Non-2xx") || text.contains("error") {
        bail!(
            "wrk failed or the service answered errors:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no rate in wrk output:\n{text}"))?;
    let latency = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("50%") || l.starts_with("99%"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((rate, latency))
}

/// The HTTP service in this process on a loopback port (metadata in the harness's MongoDB, the
/// engine in a temporary directory with fsync durability, the service's default): ingest
/// through `PUT …/points`, then query throughput through `POST …/query` with `wrk`, against the
/// same engine called in process.
fn service_http(data: &Data, settings: &Settings) -> Result<()> {
    use prismicx_harness::kit::{mongo_store, tenancy_of, test_tenants};
    use prismicx_tenancy::VectorQuota;
    use prismicx_vector_store::{app, AppSettings, AppState, MONGO};

    const EFS_HTTP: [usize; 2] = [16, 64];
    const BODIES: usize = 200;
    const SECONDS: u32 = 10;
    let n = service_points(settings).min(data.n_base());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let tenants = test_tenants(1, &[]);
    let tenant = tenants[0].clone();
    let (state, port) = rt.block_on(async {
        let store = mongo_store(MONGO, &tenants).await;
        let engine = open_engine(dir.path(), Durability::Fsync, 8 << 30)?;
        let quota = VectorQuota {
            max_collections: None,
            max_points: None,
            max_bytes: None,
        };
        let state = AppState::new(
            store,
            tenancy_of(&tenants),
            engine,
            dir.path().to_path_buf(),
            quota,
        );
        let settings = AppSettings {
            body_limit: 64 << 20,
            ..AppSettings::default()
        };
        let router = app(state.clone(), settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        anyhow::Ok((state, port))
    })?;
    let base_url = format!("http://127.0.0.1:{port}");
    let auth = format!("Bearer {}", tenant.key);
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        let req = client
            .request(method, format!("{base_url}{path}"))
            .header("authorization", &auth)
            .json(&body);
        rt.block_on(async {
            let resp = req.send().await?;
            let status = resp.status();
            let text = resp.text().await?;
            if !status.is_success() {
                bail!("{path}: {status} {text}");
            }
            anyhow::Ok(serde_json::from_str::<serde_json::Value>(&text)?)
        })
    };
    let created = call(
        reqwest::Method::POST,
        "/v1/collections",
        json!({ "name": "fmnist", "dimension": data.dim, "metric": "l2",
                "index": { "m": 16, "efConstruction": 200 }, "indexedFields": ["bucket"] }),
    )?;
    let collection: Uuid = created["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("the created collection has no id")?;
    let key = CollectionKey {
        scope: Scope::Shared,
        tenant: tenant.placement.id,
        collection,
    };

    let ids: Vec<usize> = (0..n).collect();
    let (start, cpu_start) = (Instant::now(), process_cpu());
    for chunk in ids.chunks(INGEST_BATCH) {
        let points: Vec<serde_json::Value> = chunk
            .iter()
            .map(|&i| json!({ "id": i.to_string(), "vector": data.base_vector(i), "payload": { "bucket": i % 100 } }))
            .collect();
        call(
            reqwest::Method::PUT,
            "/v1/collections/fmnist/points",
            json!({ "points": points }),
        )?;
    }
    let ingest_rate = n as f64 / start.elapsed().as_secs_f64();
    let ingest_cpu = process_cpu().saturating_sub(cpu_start);

    // The same queries, as request bodies for wrk (pixel values are integers).
    let scratch = tempfile::tempdir()?;
    let engine = &state.vectors.engine;
    println!(
        "\n### Service over HTTP against the engine in process ({n} points, one tenant, \
         fsync durability; wrk on the same 2 cores)\n"
    );
    println!(
        "ingest through `PUT /v1/collections/{{name}}/points` (batches of {INGEST_BATCH}): \
         {ingest_rate:.0} points/s ({:.0} per CPU second of this process, client included)\n",
        n as f64 / ingest_cpu.as_secs_f64().max(1e-9)
    );
    println!("| ef | engine in process QPS (CPU / wall, one thread) | service wrk -t1 -c1 req/s | latency | service wrk -t2 -c8 req/s | latency | service req per CPU second (-c8) | service / engine (CPU) |");
    println!("|---|---|---|---|---|---|---|---|");
    for ef in EFS_HTTP {
        let queries: Vec<Query> = (0..data.n_queries())
            .map(|q| query(data.query_vector(q), ef, None))
            .collect();
        let in_process = timed_queries(engine, &key, &queries, &[])?;
        let bodies: Vec<String> = (0..BODIES.min(data.n_queries()))
            .map(|q| {
                let v: Vec<i64> = data.query_vector(q).iter().map(|x| *x as i64).collect();
                json!({ "vector": v, "limit": K, "ef": ef, "withPayload": false }).to_string()
            })
            .collect();
        let lua = scratch.path().join(format!("query-{ef}.lua"));
        let mut script = format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Authorization\"] = \"{auth}\"\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\nlocal bodies = {{\n"
        );
        for b in &bodies {
            script.push_str(&format!("  [[{b}]],\n"));
        }
        script.push_str(
            "}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  \
             return wrk.format(nil, \"/v1/collections/fmnist/query\", nil, bodies[(i % #bodies) + 1])\nend\n\
             response = function(status, headers, body)\n  \
             if status ~= 200 then error(\"status \" .. status) end\nend\n",
        );
        std::fs::write(&lua, script)?;
        wrk(&lua, &base_url, 1, 1, 2)?; // warm-up
        let (single, single_latency) = wrk(&lua, &base_url, 1, 1, SECONDS)?;
        let cpu_before = process_cpu();
        let t = Instant::now();
        let (parallel, parallel_latency) = wrk(&lua, &base_url, 2, 8, SECONDS)?;
        let wall = t.elapsed().as_secs_f64();
        let per_cpu = parallel * wall
            / process_cpu()
                .saturating_sub(cpu_before)
                .as_secs_f64()
                .max(1e-9);
        println!(
            "| {ef} | {:.0} / {:.0} | {single:.0} | {single_latency} | {parallel:.0} | {parallel_latency} | {per_cpu:.0} | {:.2} |",
            in_process.cpu_qps,
            in_process.qps,
            per_cpu / in_process.cpu_qps
        );
    }
    drop(rt);
    Ok(())
}

fn write_plot(curves: &[Curve], tools: &Tools, settings: &Settings, title: &str) -> Result<()> {
    std::fs::create_dir_all(&settings.out_dir)?;
    let json_path = settings.out_dir.join("vector-store-recall-qps.json");
    let png_path = settings.out_dir.join("vector-store-recall-qps.png");
    let points: Vec<serde_json::Value> = curves
        .iter()
        .flat_map(|c| {
            c.points.iter().map(|p| {
                json!({
                    "library": c.library,
                    "ef": p.ef,
                    "qps": p.qps,
                    "cpu_qps": p.cpu_qps,
                    "recall": p.recall,
                })
            })
        })
        .collect();
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json!({ "title": title, "points": points }))? + "\n",
    )?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/plot_recall_qps.py");
    let status = Command::new(&tools.python)
        .arg(&script)
        .arg(&json_path)
        .arg(&png_path)
        .status()?;
    if !status.success() {
        bail!("plot_recall_qps.py failed");
    }
    println!(
        "\nrecall–QPS points: {}; plot: {}",
        json_path.display(),
        png_path.display()
    );
    Ok(())
}

fn main() -> Result<()> {
    let settings = Settings::from_env();
    let tools = Tools::find()?;
    let data = Data::load(&tools, &settings)?;
    println!(
        "## vector-store ANN benchmark: Fashion-MNIST {} base × {} queries, {} dimensions, L2, k = {K}",
        data.n_base(),
        data.n_queries(),
        data.dim
    );
    println!(
        "machine: {} cores; engine, faiss and hnswlib one thread each for queries",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let dir = tempfile::tempdir()?;
    let engine = open_engine(dir.path(), Durability::Relaxed, 8 << 30)?;
    let (built, engine_curve) = build_and_query(&engine, &data)?;
    let resident = engine.resident();
    let mut curves = vec![engine_curve];
    for library in ["faiss", "hnswlib"] {
        eprintln!("running {library}…");
        curves.push(peer_curve(&tools, &settings, library)?);
    }
    print_comparison(&curves, &built, resident.bytes);
    write_plot(
        &curves,
        &tools,
        &settings,
        &format!(
            "Fashion-MNIST-784 ({} × {} queries), k = 10, M = 16, efC = 200, one thread",
            data.n_base(),
            data.n_queries()
        ),
    )?;
    filtered(&engine, &built.key, &data, &settings)?;
    drop(engine);
    ingest(&data, &settings)?;
    if let Err(e) = service_http(&data, &settings) {
        println!("\n### Service over HTTP: not measured: {e:#}");
    }
    many_tenants(&settings)?;
    Ok(())
}
