//! The real kubectl (1.35) against the server, through a written kubeconfig.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

fn kubectl() -> PathBuf {
    let tools = std::env::var_os("PRISMICX_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/prismicx/tools")
        });
    let bin = tools.join("bin/kubectl");
    assert!(
        bin.is_file(),
        "kubectl not found at {} (run `make deps`, or set PRISMICX_TOOLS_DIR to a directory with bin/kubectl)",
        bin.display()
    );
    bin
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs kubectl; `manifest` is written to a file and passed as `-f FILE` in place of `-f -`.
async fn run(kubeconfig: &Path, args: &[&str], manifest: Option<&str>) -> Out {
    let file = kubeconfig.with_file_name(format!("manifest-{}.yaml", uuid::Uuid::new_v4()));
    if let Some(m) = manifest {
        std::fs::write(&file, m).unwrap();
    }
    let file_arg = file.to_string_lossy().into_owned();
    let args: Vec<&str> = args
        .iter()
        .map(|a| {
            if *a == "-" && manifest.is_some() {
                file_arg.as_str()
            } else {
                *a
            }
        })
        .collect();
    let mut cmd = tokio::process::Command::new(kubectl());
    cmd.args(&args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("kubectl finishes within 60 s")
        .unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(kubeconfig, args, stdin).await;
    assert!(
        out.ok,
        "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout
}

const TENANT: &str = "apiVersion: prismicx.io/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  tier: TIER
  displayName: Acme Inc.
";

#[tokio::test]
async fn kubectl_apply_get_delete() {
    let (server, _client) = common::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kc).unwrap();

    // Create, then update, with client-side apply.
    for (tier, outcome) in [
        ("standard", "created"),
        ("dedicated", "configured"),
        ("dedicated", "unchanged"),
    ] {
        let manifest = TENANT.replace("TIER", tier);
        let out = ok(&kc, &["apply", "-f", "-"], Some(&manifest)).await;
        let want = format!("tenant.prismicx.io/acme {outcome}");
        assert!(out.contains(&want), "{tier}: {out}");
    }

    // A schema violation is refused with the field named.
    let bad = run(
        &kc,
        &["apply", "-f", "-"],
        Some(&TENANT.replace("TIER", "gold")),
    )
    .await;
    assert!(!bad.ok);
    assert!(bad.stderr.contains("spec.tier"), "{}", bad.stderr);

    // Printer columns from crds/tenants.prismicx.io.yaml.
    let out = ok(&kc, &["get", "tenants"], None).await;
    let header = out.lines().next().unwrap();
    for col in ["NAME", "TIER", "READY", "SUSPENDED", "AGE"] {
        assert!(header.contains(col), "{col} missing in {header:?}");
    }
    assert!(
        !header.contains("TENANT ID"),
        "priority-1 column only with -o wide: {header:?}"
    );
    let row = out.lines().nth(1).unwrap();
    assert!(
        row.starts_with("acme") && row.contains("dedicated") && row.contains("false"),
        "{row}"
    );
    let wide = ok(&kc, &["get", "tn", "-o", "wide"], None).await;
    assert!(wide.lines().next().unwrap().contains("TENANT ID"), "{wide}");

    let yaml = ok(&kc, &["get", "tenant", "acme", "-o", "yaml"], None).await;
    assert!(yaml.contains("kind: Tenant"), "{yaml}");
    assert!(yaml.contains("tier: dedicated"), "{yaml}");
    assert!(
        yaml.contains("deletionPolicy: Retain"),
        "defaults applied: {yaml}"
    );
    assert!(yaml.contains("displayName: Acme Inc."), "{yaml}");

    // A ConfigMap (strategic merge patch path) and a cluster-wide list.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: \"1\"\n";
    ok(&kc, &["apply", "-f", "-"], Some(cm)).await;
    let out = ok(
        &kc,
        &["apply", "-f", "-"],
        Some(&cm.replace("\"1\"", "\"2\"")),
    )
    .await;
    assert!(out.contains("configmap/settings configured"), "{out}");
    let value = ok(
        &kc,
        &["get", "configmap", "settings", "-o", "jsonpath={.data.a}"],
        None,
    )
    .await;
    assert_eq!(value, "2");
    let all = ok(&kc, &["get", "configmaps", "-A"], None).await;
    assert!(all.lines().next().unwrap().contains("NAMESPACE"), "{all}");
    assert!(
        all.lines()
            .any(|l| l.starts_with("default") && l.contains("settings")),
        "{all}"
    );

    // Server-side apply through kubectl.
    let out = ok(
        &kc,
        &["apply", "--server-side", "-f", "-"],
        Some(&TENANT.replace("acme", "ssa").replace("TIER", "standard")),
    )
    .await;
    assert!(
        out.contains("tenant.prismicx.io/ssa serverside-applied"),
        "{out}"
    );

    let out = ok(&kc, &["delete", "tenant", "acme"], None).await;
    assert!(out.contains("\"acme\" deleted"), "{out}");
    let out = run(&kc, &["get", "tenant", "acme"], None).await;
    assert!(!out.ok && out.stderr.contains("NotFound"), "{}", out.stderr);
    let names = ok(&kc, &["get", "tenants", "-o", "name"], None).await;
    assert_eq!(names.trim(), "tenant.prismicx.io/ssa");
    let crds = ok(&kc, &["get", "crds"], None).await;
    assert!(
        crds.contains("tenants.prismicx.io") && crds.contains("databaseservices.prismicx.io"),
        "{crds}"
    );
}
