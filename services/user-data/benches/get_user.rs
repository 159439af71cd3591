//! Benchmark: `GET /v1/users/{id}` through user-data-service (PgBouncer, RLS, tenant context)
//! against `pgbench` running the same SQL through the same PgBouncer, in one run.
//!
//! Method (also in docs/benchmarks.md): the harness starts PostgreSQL and PgBouncer; one tenant
//! is provisioned with the service's migrations and seeded with 1,000 users whose ids are
//! `00000000-0000-4000-8000-<n, 12 digits>`. The service runs in this process on a loopback port
//! with a 16-connection client pool. `wrk` (2 threads, 32 connections, random user per request)
//! loads it; then `pgbench` (extended protocol, unnamed statements, 16 clients, 2 threads) runs
//! the service's transaction — BEGIN; set_config(tenant, search_path); SELECT the user; COMMIT —
//! against the same PgBouncer as the same login role. Run with `make bench`
//! (`BENCH_SECONDS`, default 15, sets each run's length).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use prismicx_harness::servers;
use prismicx_service_common::tenancy::{StaticRegistry, Tenancy};
use prismicx_user_data::{app, AppSettings, AppState};

mod seed;

use seed::{cores, scratch_dir, succeeded, BenchDb, ID_PREFIX, USERS};

fn parse_after(text: &str, marker: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains(marker))?;
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace()
        .next()?
        .trim_end_matches(',')
        .parse()
        .ok()
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let s = servers();
    let (db, login, password, slug, tenant_id, port) = rt.block_on(async {
        let mut bench = BenchDb::create(s).await?;
        let entry = bench.seed_tenant("bench").await?;
        let (slug, tenant_id) = (entry.slug.clone(), entry.id);
        let registry = Arc::new(StaticRegistry::from_entries(vec![entry]));
        let tenancy = Tenancy::new(
            &"bench-platform".into(),
            registry.clone(),
            registry,
            Duration::from_secs(300),
        );
        let db_handle = Arc::new(bench.tenant_db(s));
        let router = app(
            AppState {
                db: db_handle,
                tenancy,
            },
            AppSettings::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let BenchDb {
            db,
            login,
            password,
            ..
        } = bench;
        anyhow::Ok((db, login, password, slug, tenant_id, port))
    })?;

    let dir = scratch_dir()?;
    let lua = dir.join("get_user.lua");
    std::fs::write(
        &lua,
        format!(
            "math.randomseed(42)\n\
             wrk.headers[\"Authorization\"] = \"Bearer bench-key\"\n\
             request = function()\n  \
               local n = math.random(1, {USERS})\n  \
               return wrk.format(\"GET\", string.format(\"/v1/users/{ID_PREFIX}%012d\", n))\n\
             end\n\
             response = function(status, headers, body)\n  \
               if status ~= 200 then error(\"status \" .. status) end\n\
             end\n"
        ),
    )?;
    // Warm up, then measure.
    let wrk = |secs: u64| {
        Command::new("wrk")
            .args(["-t2", "-c32", &format!("-d{secs}s"), "--latency", "-s"])
            .arg(&lua)
            .arg(format!("http://127.0.0.1:{port}"))
            .output()
    };
    wrk(2)?;
    let wrk_text = succeeded(&wrk(seconds)?, "wrk")?;
    anyhow::ensure!(
        !wrk_text.contains("Non-2xx"),
        "the service answered errors under load:\n{wrk_text}"
    );
    let service_rps = parse_after(&wrk_text, "Requests/sec:")
        .ok_or_else(|| anyhow::anyhow!("no rate in wrk output:\n{wrk_text}"))?;

    let script = dir.join("get_user.sql");
    std::fs::write(
        &script,
        format!(
            "\\set n random(1, {USERS})\n\
             BEGIN;\n\
             SELECT set_config('app.tenant_id', '{tenant_id}', true), set_config('search_path', '\"{}\"', true);\n\
             SELECT id, tenant_id, email, display_name, status, attributes, created_at, updated_at FROM users \
               WHERE id = ('{ID_PREFIX}' || lpad(:n::text, 12, '0'))::uuid;\n\
             COMMIT;\n",
            slug.pg_schema()
        ),
    )?;
    let pgbench = |secs: u64| {
        Command::new("pgbench")
            .args([
                "-n",
                "-M",
                "extended",
                "-c",
                "16",
                "-j",
                "2",
                "-T",
                &secs.to_string(),
                "-f",
            ])
            .arg(&script)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &s.pgbouncer.port().to_string(),
                "-U",
                &login,
                &db,
            ])
            .env("PGPASSWORD", &password)
            .output()
    };
    pgbench(2)?;
    let pg_text = succeeded(&pgbench(seconds)?, "pgbench")?;
    let pgbench_tps = parse_after(&pg_text, "tps = ")
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench output:\n{pg_text}"))?;

    let latency: Vec<&str> = wrk_text
        .lines()
        .filter(|l| l.trim_start().starts_with("50%") || l.trim_start().starts_with("99%"))
        .collect();
    println!(
        "user-data GET /v1/users/{{id}} benchmark ({seconds} s per run, {} cores)",
        cores()
    );
    println!(
        "  service (wrk -t2 -c32):        {service_rps:>10.0} requests/s   latency {}",
        latency
            .iter()
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  pgbench (-M extended -c16 -j2): {pgbench_tps:>10.0} transactions/s");
    println!(
        "  ratio service / pgbench:        {:>10.2}",
        service_rps / pgbench_tps
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
