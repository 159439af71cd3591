//! API fuzzing: schemathesis against each service's own `/openapi.json` while the service runs
//! on the platform under test (locally: the local platform, the same one `make run` starts, with
//! its real servers, operator and tenant-mgmt-issued keys).
//!
//! For each service, schemathesis generates requests from the document — valid and invalid ones
//! (examples, coverage, fuzzing phases) and stateful sequences that feed one response into the
//! next request (create → read → update → delete, through the links it infers) — and checks
//! every answer: no 5xx, status codes, content types, headers and bodies as the document
//! declares them, valid data accepted and invalid data refused, and our own check
//! (`e2e/fuzz/hooks.py`) that every error is problem+json whose `status` is the response's.
//!
//! Each service is fuzzed as a fresh standard tenant with its own key, and once more with the
//! platform key naming that tenant in `X-Tenant` (tenant-mgmt only that way, in a tenant of its
//! own: its `/internal` and registry routes are the platform key's). Each run is bounded by
//! `--max-examples` and `--max-time` ([`MAX_EXAMPLES`], [`MAX_SECONDS`], …) so the whole test,
//! platform start included, stays around three minutes on two cores; `--seed` is fixed so a
//! failure reproduces. The test fails with schemathesis' report, where every failure has a
//! `curl` line to replay it. schemathesis comes from `make deps` (scripts/install-deps.sh, a
//! venv of its own under `$PRISMICX_TOOLS_DIR`); what it may tolerate is in `e2e/fuzz/`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use prismicx_e2e::*;
use serde_json::json;

/// Per run: the most test cases per operation and phase, and the time budget in seconds.
const MAX_EXAMPLES: u32 = 12;
const MAX_SECONDS: u32 = 20;
/// The platform-key runs repeat the tenant-key ones with fewer cases.
const PLATFORM_MAX_EXAMPLES: u32 = 4;
const PLATFORM_MAX_SECONDS: u32 = 8;
/// Fixed, so a failure found in CI reproduces locally.
const SEED: &str = "20261204";

/// Which key each service is fuzzed with: (service, tenant key run, platform key run).
const RUNS: &[(&str, bool, bool)] = &[
    ("tenant-mgmt-service", false, true),
    ("user-data-service", true, true),
    ("task-repo-service", true, true),
    ("category-repository-service", true, true),
    ("management-system-repo", true, true),
];

fn schemathesis() -> PathBuf {
    let tools = std::env::var("PRISMICX_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/prismicx/tools")
        });
    tools.join("schemathesis-venv/bin/schemathesis")
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// One schemathesis run; `Err` holds its report when it found a failure.
fn run(
    base: &str,
    headers: &[(&str, &str)],
    max_examples: u32,
    max_seconds: u32,
) -> Result<(), String> {
    let dir = fuzz_dir();
    let mut cmd = Command::new(schemathesis());
    cmd.arg("--no-color")
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", base])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &max_examples.to_string()])
        .args(["--max-time", &max_seconds.to_string()])
        .args(["--seed", SEED])
        // One worker: with threads, hypothesis' lambda descriptions race in CPython 3.11's
        // parser ("AST constructor recursion depth mismatch") and the run errors out.
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .args(["--wait-for-schema", "30"])
        .args(["--suppress-health-check", "all"])
        .env("SCHEMATHESIS_HOOKS", dir.join("hooks.py"))
        // schemathesis keeps a cache in its working directory.
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    for (name, value) in headers {
        cmd.args(["--header", &format!("{name}: {value}")]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "running {}: {e} (run `make deps`)",
            schemathesis().display()
        )
    });
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        eprintln!("{}", report.lines().last().unwrap_or_default());
        Ok(())
    } else {
        Err(report)
    }
}

/// Waits until `base/readyz` answers 200 (panics after a minute).
async fn wait_ready(base: &str) {
    let url = format!("{base}/readyz");
    eventually(&url, std::time::Duration::from_secs(60), || {
        let url = url.clone();
        async move {
            Ok(reqwest::get(&url)
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ()))
        }
    })
    .await
    .unwrap();
}

/// Waits until the service authenticates `headers` (an authenticated list answers other than
/// 503: the service reaches tenant-mgmt), so a run starts on a serving platform; panics with
/// the processes' log tails after a minute.
async fn wait_serving(t: &Target, base: &str, headers: &[(&str, &str)]) {
    let doc: serde_json::Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = doc["paths"]
        .as_object()
        .and_then(|paths| {
            paths
                .iter()
                .find(|(p, ops)| !p.contains('{') && ops.get("get").is_some())
        })
        .map(|(p, _)| format!("{base}{p}"))
        .unwrap();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let serving = eventually(&list, std::time::Duration::from_secs(60), || {
        let (list, headers) = (list.clone(), headers.clone());
        async move {
            let mut req = reqwest::Client::new().get(&list);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            Ok(req
                .send()
                .await
                .ok()
                .filter(|r| r.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE)
                .map(|_| ()))
        }
    })
    .await;
    assert!(
        serving.is_ok(),
        "{base} does not serve authenticated requests (503): the platform, not a fuzz finding\n{}",
        service_log_tails(t)
    );
}

/// The last lines of each local process's log, to tell what a 5xx hid ("" on a cluster).
fn service_log_tails(t: &Target) -> String {
    let Some(dir) = &t.logs else {
        return String::new();
    };
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    logs.sort();
    logs.iter()
        .map(|log| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            // A process the runner started again logs "listening" more than once.
            let starts = lines.iter().filter(|l| l.contains("\"listening\"")).count();
            let panics: Vec<&str> = lines
                .iter()
                .filter(|l| l.contains("panicked"))
                .copied()
                .take(5)
                .collect();
            format!(
                "== {} ({starts} starts; panics: {panics:?}; last lines) ==\n{}",
                log.display(),
                lines[lines.len().saturating_sub(15)..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn every_service_answers_as_its_openapi_document_declares_under_fuzzing() {
    assert!(
        schemathesis().exists(),
        "{} is missing: run `make deps`",
        schemathesis().display()
    );
    let t = target(env!("CARGO_BIN_EXE_prismicx-e2e-node"));
    // tenant-mgmt is fuzzed in a tenant of its own: its run issues (up to the limit) and revokes
    // that tenant's keys, which would lock the other runs out.
    let (tenant, registry_tenant) = (unique("fuzz-"), unique("fuzz-tm-"));
    for name in [&tenant, &registry_tenant] {
        create_tenant(t, name, json!({"tier": "standard"}))
            .await
            .unwrap();
    }
    for name in [&tenant, &registry_tenant] {
        wait_tenant(t, name, "True", None).await.unwrap();
    }

    let mut failures = Vec::new();
    for (service, with_tenant_key, with_platform_key) in RUNS {
        let base = t.url(service);
        assert!(!base.is_empty(), "{service} has no URL");
        // Every service resolves keys and tenants through tenant-mgmt: start each service's run
        // with both ready, whatever the previous run left behind (a 503 is a finding).
        for name in [*service, "tenant-mgmt-service"] {
            wait_ready(&t.url(name)).await;
        }
        if *with_tenant_key {
            // A key of its own per service: the tenant-mgmt run may revoke keys it lists.
            let key = issue_key(t, &tenant).await.unwrap();
            let bearer = format!("Bearer {key}");
            wait_serving(t, &base, &[("Authorization", &bearer)]).await;
            if let Err(report) = run(
                &base,
                &[("Authorization", &bearer)],
                MAX_EXAMPLES,
                MAX_SECONDS,
            ) {
                failures.push(format!("== {service}, tenant key ==\n{report}"));
            }
        }
        if *with_platform_key {
            let bearer = format!("Bearer {}", t.platform_key);
            let (examples, seconds) = if *with_tenant_key {
                (PLATFORM_MAX_EXAMPLES, PLATFORM_MAX_SECONDS)
            } else {
                (MAX_EXAMPLES, MAX_SECONDS)
            };
            let named = if *service == "tenant-mgmt-service" {
                &registry_tenant
            } else {
                &tenant
            };
            wait_serving(t, &base, &[("Authorization", &bearer), ("X-Tenant", named)]).await;
            if let Err(report) = run(
                &base,
                &[("Authorization", &bearer), ("X-Tenant", named)],
                examples,
                seconds,
            ) {
                failures.push(format!(
                    "== {service}, platform key + X-Tenant ==\n{report}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "schemathesis found failures:\n{}\n{}",
        failures.join("\n"),
        service_log_tails(t)
    );
}
