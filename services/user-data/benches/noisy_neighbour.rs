//! Benchmark: does a quiet tenant's latency survive a noisy neighbour on user-data-service, with
//! and without the per-tenant request budget?
//!
//! Method (also in docs/benchmarks.md): the harness starts PostgreSQL and PgBouncer; two tenants,
//! `quiet` (A) and `noisy` (B), are provisioned with the service's migrations and seeded with
//! 1,000 users each, as in `get_user.rs`. Two instances of the service run in this process
//! (tokio, 2 worker threads) on loopback ports, sharing one 16-connection client pool: one with
//! the per-tenant limit off, one with the platform default budget (`Limits::default()`: 100
//! requests/s, burst 200, the defaults of `TENANT_RATE_LIMIT_RPS` / `_BURST`).
//!
//! A's load is an open-loop paced client on its own OS thread (a current-thread runtime, raw
//! HTTP/1.1 keep-alive over loopback): request `i` is due at `start + i / RATE`, each is sent at
//! its due time on a free connection (a new one when all are busy), and its latency is counted
//! from its due time, so a stalled service shows as latency rather than as fewer requests
//! (no coordinated omission). B's load is `wrk` with many connections, as fast as it goes; it
//! does not honour `Retry-After`, the worst case for the limiter.
//!
//! Four phases on the same servers: A alone (limit off), A beside B (limit off), A alone (limit
//! on), A beside B (limit on). Each phase prints A's p50/p99/max, and B's answers per second by
//! status, the CPU the service process and `wrk` used during it (in cores: CPU seconds over wall
//! seconds), and the machine's load average at its end. `BENCH_SECONDS` (default 20) is each phase's measured length; `BENCH_LATENCY_CSV`, when
//! set, names a file that receives every latency of A (`phase,ms`). Run with `make bench`.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prismicx_harness::servers;
use prismicx_service_common::pg::TenantDb;
use prismicx_service_common::ratelimit::Limits;
use prismicx_service_common::tenancy::{StaticRegistry, Tenancy, TenancyOptions};
use prismicx_user_data::{app, AppSettings, AppState};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod seed;

use seed::{cores, scratch_dir, succeeded, BenchDb, ID_PREFIX, USERS};
/// A's pace, requests per second: well under A's budget when the limit is on.
const QUIET_RATE: u32 = 50;
/// Connections A opens before it starts (more are opened when all are busy).
const QUIET_CONNECTIONS: usize = 4;
/// B: `wrk -t2 -c64`, twice the connections of the throughput benchmark.
const NOISY_THREADS: u32 = 2;
const NOISY_CONNECTIONS: u32 = 64;
/// wrk starts this long before A's measured window and ends about as long after it.
const NOISY_LEAD: Duration = Duration::from_secs(2);

/// One keep-alive HTTP/1.1 connection to the service.
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn open(port: u16) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
        })
    }

    /// GETs `path` with `key`; the status. The body is read (by its Content-Length) and dropped.
    async fn get(&mut self, path: &str, key: &str) -> anyhow::Result<u16> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n"
        );
        self.stream.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("not an HTTP status line: {line:?}"))?;
        let mut length = None;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                anyhow::bail!("connection closed in the headers");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>()?);
                }
            }
        }
        let length = length.ok_or_else(|| anyhow::anyhow!("a response without Content-Length"))?;
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(status)
    }
}

/// What A saw in one phase: every latency (from the request's due time), and the answers that
/// were not 200.
struct QuietRun {
    latencies_ms: Vec<f64>,
    not_ok: usize,
}

impl QuietRun {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies_ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        // Nearest rank.
        let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
        v[rank.min(v.len()) - 1]
    }
}

/// A's paced client for `duration`, on a thread and runtime of its own so that its timing does
/// not queue behind the service's tasks.
fn run_quiet(port: u16, duration: Duration) -> anyhow::Result<QuietRun> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(quiet_loop(port, duration))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the quiet client panicked"))?
}

async fn quiet_loop(port: u16, duration: Duration) -> anyhow::Result<QuietRun> {
    let idle = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..QUIET_CONNECTIONS {
        let conn = Conn::open(port).await?;
        idle.lock().unwrap().push(conn);
    }
    let count = (duration.as_secs_f64() * f64::from(QUIET_RATE)) as u64;
    let interval = Duration::from_secs(1) / QUIET_RATE;
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::with_capacity(count as usize);
    for i in 0..count {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let idle = idle.clone();
        // Users in a fixed order that covers all of them, the same in every phase.
        let user = (i * 7919) % u64::from(USERS) + 1;
        tasks.push(tokio::spawn(async move {
            let conn = idle.lock().unwrap().pop();
            let mut conn = match conn {
                Some(c) => c,
                None => Conn::open(port).await?,
            };
            let status = conn
                .get(&format!("/v1/users/{ID_PREFIX}{user:012}"), "quiet-key")
                .await?;
            let latency = due.elapsed();
            idle.lock().unwrap().push(conn);
            anyhow::Ok((latency, status))
        }));
    }
    let mut run = QuietRun {
        latencies_ms: Vec::with_capacity(tasks.len()),
        not_ok: 0,
    };
    for t in tasks {
        let (latency, status) = t.await??;
        run.latencies_ms.push(latency.as_secs_f64() * 1000.0);
        if status != 200 {
            run.not_ok += 1;
        }
    }
    Ok(run)
}

/// What B's wrk run got: answers by status, over its duration.
struct NoisyRun {
    seconds: f64,
    ok: u64,
    limited: u64,
    other: u64,
}

/// The wrk script: a random one of the noisy tenant's users per request; counts answers by
/// status in each thread and prints the totals in `done`.
fn noisy_script() -> String {
    format!(
        "math.randomseed(7)\n\
         wrk.headers[\"Authorization\"] = \"Bearer noisy-key\"\n\
         local threads = {{}}\n\
         function setup(thread) table.insert(threads, thread) end\n\
         function init(args) ok = 0; limited = 0; other = 0 end\n\
         request = function()\n  \
           local n = math.random(1, {USERS})\n  \
           return wrk.format(\"GET\", string.format(\"/v1/users/{ID_PREFIX}%012d\", n))\n\
         end\n\
         response = function(status, headers, body)\n  \
           if status == 200 then ok = ok + 1 elseif status == 429 then limited = limited + 1 else other = other + 1 end\n\
         end\n\
         done = function(summary, latency, requests)\n  \
           local o, l, x = 0, 0, 0\n  \
           for _, t in ipairs(threads) do o = o + t:get(\"ok\"); l = l + t:get(\"limited\"); x = x + t:get(\"other\") end\n  \
           io.write(string.format(\"STATUS %d %d %d %d\\n\", summary.duration, o, l, x))\n\
         end\n"
    )
}

fn parse_noisy(text: &str) -> anyhow::Result<NoisyRun> {
    let line = text
        .lines()
        .find(|l| l.starts_with("STATUS "))
        .ok_or_else(|| anyhow::anyhow!("no STATUS line in wrk output:\n{text}"))?;
    let f: Vec<u64> = line[7..]
        .split_whitespace()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(f.len() == 4, "bad STATUS line: {line}");
    Ok(NoisyRun {
        seconds: f[0] as f64 / 1e6,
        ok: f[1],
        limited: f[2],
        other: f[3],
    })
}

/// A alone for `seconds`, or beside B's wrk when `noisy` is set.
fn phase(
    port: u16,
    seconds: u64,
    noisy: Option<&std::path::Path>,
) -> anyhow::Result<(QuietRun, Option<NoisyRun>)> {
    let measured = Duration::from_secs(seconds);
    let Some(script) = noisy else {
        return Ok((run_quiet(port, measured)?, None));
    };
    let wrk_secs = seconds + 2 * NOISY_LEAD.as_secs();
    let child = Command::new("wrk")
        .args([
            &format!("-t{NOISY_THREADS}"),
            &format!("-c{NOISY_CONNECTIONS}"),
            &format!("-d{wrk_secs}s"),
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(NOISY_LEAD);
    let quiet = run_quiet(port, measured);
    let out = child.wait_with_output()?;
    let quiet = quiet?;
    let text = succeeded(&out, "wrk")?;
    let noisy = parse_noisy(&text)?;
    anyhow::ensure!(
        noisy.other == 0,
        "the service answered the noisy tenant {} times with neither 200 nor 429",
        noisy.other
    );
    Ok((quiet, Some(noisy)))
}

/// CPU seconds used so far by this process (the service, A's client, the harness's clients) and
/// by its waited-for children (the `wrk` runs), from `/proc/self/stat` (clock ticks, 100 a
/// second on Linux).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime are fields 14 to 17 of the whole line, 12 to 15 here.
    let tick = |i: usize| f.get(i).copied().unwrap_or(0.0) / 100.0;
    (tick(11) + tick(12), tick(13) + tick(14))
}

/// The machine's 1-minute load average (`/proc/loadavg`), to tell a run that shared the cores
/// with other work (wrk, the service and the servers alone keep both cores busy when B runs).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Serves the service on a loopback port with `limits`; the port.
async fn start_service(
    db: Arc<TenantDb>,
    registry: Arc<StaticRegistry>,
    limits: Limits,
) -> anyhow::Result<u16> {
    let tenancy = Tenancy::with_options(
        &"bench-platform".into(),
        registry.clone(),
        registry,
        TenancyOptions {
            limits,
            ..TenancyOptions::new(Duration::from_secs(300))
        },
    );
    let router = app(AppState { db, tenancy }, AppSettings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    Ok(port)
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let csv = std::env::var_os("BENCH_LATENCY_CSV");
    let limited = Limits {
        tenant_rate: Limits::default().tenant_rate,
        throttle_delay: std::env::var("BENCH_THROTTLE_DELAY_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Limits::default().throttle_delay, Duration::from_millis),
        ..Limits::off()
    };
    let budget = limited.tenant_rate;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let s = servers();
    let (port_off, port_on) = rt.block_on(async {
        let mut bench = BenchDb::create(s).await?;
        let mut entries = Vec::new();
        for name in ["quiet", "noisy"] {
            entries.push(bench.seed_tenant(name).await?);
        }
        let registry = Arc::new(StaticRegistry::from_entries(entries));
        // One pool for both instances: they run one at a time.
        let db_handle = Arc::new(bench.tenant_db(s));
        let off = start_service(db_handle.clone(), registry.clone(), Limits::off()).await?;
        let on = start_service(db_handle, registry, limited).await?;
        anyhow::Ok((off, on))
    })?;

    let dir = scratch_dir()?;
    let script = dir.join("noisy.lua");
    std::fs::write(&script, noisy_script())?;

    // Warm-up: both tenants' keys and placements cached, the pool's connections open.
    for port in [port_off, port_on] {
        run_quiet(port, Duration::from_secs(1))?;
    }
    let warm = Command::new("wrk")
        .args(["-t2", "-c16", "-d2s", "-s"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port_off}"))
        .output()?;
    anyhow::ensure!(warm.status.success(), "wrk warm-up failed");

    let phases = [
        ("idle, limit off", port_off, false),
        ("noisy, limit off", port_off, true),
        ("idle, limit on", port_on, false),
        ("noisy, limit on", port_on, true),
    ];
    let mut results = Vec::new();
    for (name, port, noisy) in phases {
        let (cpu0, wall0) = (cpu_seconds(), std::time::Instant::now());
        let (quiet, b) = phase(port, seconds, noisy.then_some(script.as_path()))?;
        let (cpu1, wall) = (cpu_seconds(), wall0.elapsed().as_secs_f64());
        let cores = ((cpu1.0 - cpu0.0) / wall, (cpu1.1 - cpu0.1) / wall);
        results.push((name, quiet, b, load_average(), cores));
    }
    std::fs::remove_dir_all(&dir).ok();

    println!(
        "user-data noisy-neighbour benchmark ({seconds} s per phase, {} cores)",
        cores()
    );
    println!(
        "  A (quiet): open loop, {QUIET_RATE} requests/s; B (noisy): wrk -t{NOISY_THREADS} -c{NOISY_CONNECTIONS}; \
         limit on = {} requests/s, burst {} per tenant",
        budget.rps, budget.burst
    );
    println!(
        "  {:<18} {:>8} {:>9} {:>9} {:>9} {:>7} | {:>10} {:>10} | {:>8} {:>8} {:>6}",
        "phase",
        "A reqs",
        "A p50 ms",
        "A p99 ms",
        "A max ms",
        "A !200",
        "B 200/s",
        "B 429/s",
        "svc cpu",
        "wrk cpu",
        "load"
    );
    for (name, q, b, load, (svc, wrk)) in &results {
        let (ok, lim) = match b {
            Some(b) => (
                format!("{:.0}", b.ok as f64 / b.seconds),
                format!("{:.0}", b.limited as f64 / b.seconds),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "  {:<18} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>7} | {:>10} {:>10} | {:>8.2} {:>8.2} {:>6}",
            name,
            q.latencies_ms.len(),
            q.percentile(50.0),
            q.percentile(99.0),
            q.percentile(100.0),
            q.not_ok,
            ok,
            lim,
            svc,
            wrk,
            load
        );
    }
    let p99 = |i: usize| results[i].1.percentile(99.0);
    let (off, on) = (p99(1) / p99(0), p99(3) / p99(2));
    println!("  A p99 noisy / idle, limit off: {off:>6.2}");
    println!(
        "  A p99 noisy / idle, limit on:  {on:>6.2}   (target <= 2: {})",
        if on <= 2.0 { "met" } else { "NOT met" }
    );
    println!(
        "  A p99 noisy (limit on) / idle (limit off): {:>6.2}",
        p99(3) / p99(0)
    );

    if let Some(path) = csv {
        let mut text = String::from("phase,ms\n");
        for (name, q, ..) in &results {
            for l in &q.latencies_ms {
                text.push_str(&format!("\"{name}\",{l:.3}\n"));
            }
        }
        std::fs::write(&path, text)?;
        println!("  A's latencies written to {}", path.to_string_lossy());
    }
    Ok(())
}
