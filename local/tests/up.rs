//! `make run` end to end: the launcher brings the platform up on free ports, every printed curl
//! example succeeds exactly as printed (curl told to fail on HTTP errors through its config
//! file) — vector-store's filtered query finding only the point its filter names —, Ctrl-C
//! stops everything and removes its files, and the README shows the same examples.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn printed_examples_work_and_ctrl_c_cleans_up() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_prismicx-local"))
        .args(["up", "--free-ports"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut data_dir = None;
    let mut examples = Vec::new();
    let mut in_examples = false;
    let mut vector_store_url = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("vector-store-service ") {
            vector_store_url = Some(rest.trim().to_string());
        }
        if let Some(rest) = line.trim().strip_prefix("data and logs") {
            data_dir = rest.split_whitespace().next().map(std::path::PathBuf::from);
        }
        if line == "Try:" {
            in_examples = true;
            continue;
        }
        if in_examples {
            if line.is_empty() {
                break;
            }
            examples.push(line);
        }
    }
    let data_dir = data_dir.expect("the launcher prints its data directory");
    assert!(data_dir.exists());
    assert!(examples.len() >= 5, "{examples:?}");

    let curl_home = tempfile::tempdir().unwrap();
    std::fs::write(curl_home.path().join(".curlrc"), "--fail\n--max-time 20\n").unwrap();
    for example in &examples {
        let out = Command::new("sh")
            .args(["-c", example])
            .env("CURL_HOME", curl_home.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{example}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("`{example}` did not print JSON"));
        assert!(!body.is_null());
        if example.contains("/v1/collections/docs/query") {
            let ids: Vec<&str> = body["results"]
                .as_array()
                .unwrap_or_else(|| panic!("`{example}`: {body}"))
                .iter()
                .filter_map(|h| h["id"].as_str())
                .collect();
            assert_eq!(ids, ["b"], "the filter keeps only lang=de: {body}");
        }
    }
    assert!(
        examples
            .iter()
            .any(|e| e.contains("/v1/collections/docs/query")),
        "{examples:?}"
    );
    // vector-store-service runs with the others and answers its liveness probe.
    let vector_store_url = vector_store_url.expect("the banner lists vector-store-service");
    let health = Command::new("curl")
        .args(["-s", "--fail", "--max-time", "20"])
        .arg(format!("{vector_store_url}/healthz"))
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{vector_store_url}/healthz: {}",
        String::from_utf8_lossy(&health.stderr)
    );

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the launcher did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.starts_with("Stopped every process")),
        "{rest:?}"
    );
    assert!(!data_dir.exists(), "{} was left behind", data_dir.display());
}

#[test]
fn readme_shows_the_examples_the_launcher_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for e in prismicx_local::example_templates(&prismicx_local::service_urls(0)) {
        assert!(readme.contains(&e), "README.md lacks the example:\n{e}");
    }
}
