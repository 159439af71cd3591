//! The Helm chart (`charts/prismicx`) and the image build files, checked with the real tools
//! `make deps` installs into the tools directory: `helm`, and `kubernetes-validate`, `checkov`,
//! PyYAML and jsonschema in its Python venv. `cargo test -p prismicx-chart-tests`.
//!
//! The chart is rendered once per process (release `prismicx`, namespace `prismicx`, Kubernetes
//! 1.35) with the default values and with every `charts/prismicx/ci/*.yaml`; each check then
//! runs one tool process over all renders:
//! - `helm lint --strict` per values file;
//! - `kubernetes-validate --strict` for 1.35 (built-in kinds; it only warns on kinds it has no
//!   schema for, so any warning about a kind other than ours fails the test);
//! - our custom resources, which kubernetes-validate cannot check, against the CRD's
//!   openAPIV3Schema from `crds/` (jsonschema in the venv, unknown fields rejected as with
//!   strict field validation) and the CRD's CEL rules (kube's client-side CEL, through the typed
//!   `DatabaseService`);
//! - `checkov` on the renders and `images/Dockerfile`, every finding fixed or listed with its
//!   reason in `charts/prismicx/checkov-skips.txt`;
//! - behaviour of the templates (what the default and each variant render) and static checks of
//!   the build files (`images/`) against the workspace's binaries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use prismicx_operator_api::{DatabaseService, ServiceKind};
use serde_json::Value;

const RELEASE: &str = "prismicx";
const NAMESPACE: &str = "prismicx";
const KUBE_VERSION: &str = "1.35.0";

/// The workspace root: this crate is `charts/tests`.
fn repo() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
}

fn chart() -> PathBuf {
    repo().join("charts/prismicx")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

// --- tools -----------------------------------------------------------------------------------

/// A tool from the tools directory; a missing one fails with how to install it.
fn tool(relative: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = prismicx_harness::tools_dir().join(relative);
    let executable = path
        .metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    assert!(
        executable,
        "`{}` is missing ({}): run `make deps`, which installs helm into the tools directory \
         and kubernetes-validate, checkov, PyYAML and jsonschema into its venv",
        Path::new(relative)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        path.display()
    );
    path
}

fn helm() -> Command {
    Command::new(tool("bin/helm"))
}

fn venv(bin: &str) -> Command {
    Command::new(tool(&format!("venv/bin/{bin}")))
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, asserts it succeeded, returns its stdout.
fn succeed(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// --- renders ---------------------------------------------------------------------------------

/// This process's scratch directory (under cargo's per-target tmp dir); directories of earlier
/// processes that are gone are removed.
fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart-test");
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !Path::new("/proc").join(&name).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        dir
    })
}

/// `helm template` of the chart with extra arguments (`-f file`, `--set k=v`), as for a cluster
/// that serves the CRDs (every upgrade; an install whose CRDs were applied beforehand). The first
/// install, which creates them, is [`template_first_install`].
fn template(args: &[&str]) -> Output {
    output(
        helm()
            .args(["template", RELEASE])
            .arg(chart())
            .args(["--namespace", NAMESPACE, "--kube-version", KUBE_VERSION])
            .args(["--api-versions", "prismicx.io/v1alpha1/DatabaseService"])
            .args(args),
    )
}

/// `helm template` as for the install that creates the CRDs (the API is not served yet).
fn template_first_install() -> Output {
    output(helm().args(["template", RELEASE]).arg(chart()).args([
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ]))
}

/// One rendering of the chart, written to the scratch directory.
#[derive(Debug)]
struct Render {
    /// `default`, or the ci/ values file's stem.
    name: String,
    /// The values file, for the variants.
    values: Option<PathBuf>,
    /// The rendered manifest.
    path: PathBuf,
    /// Its documents, parsed.
    docs: Vec<Value>,
}

fn render_to(name: &str, args: &[&str]) -> PathBuf {
    let out = template(args);
    assert!(
        out.status.success(),
        "helm template {name} ({args:?}) failed:\n{}",
        text(&out)
    );
    let path = work_dir().join(format!("{name}.yaml"));
    std::fs::write(&path, &out.stdout).expect("writing the rendered manifest");
    path
}

/// The default values and every ci/*.yaml, rendered and parsed once per process.
fn renders() -> &'static [Render] {
    static RENDERS: OnceLock<Vec<Render>> = OnceLock::new();
    RENDERS.get_or_init(|| {
        let mut variants: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
            .expect("charts/prismicx/ci/ exists")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        variants.sort();
        assert!(
            variants.len() >= 4,
            "expected the ci/ variants (external databases, services disabled, namespaced, \
             in-cluster databases), found {variants:?}"
        );
        let mut out = vec![("default".to_string(), None, render_to("default", &[]))];
        for v in variants {
            let name = v
                .file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let path = render_to(&name, &["-f", &v.to_string_lossy()]);
            out.push((name, Some(v), path));
        }
        let paths: Vec<&Path> = out.iter().map(|(_, _, p)| p.as_path()).collect();
        let mut parsed = inspect(&paths);
        assert!(
            parsed.errors.is_empty(),
            "custom resources that break their CRD's schema:\n{}",
            parsed.errors.join("\n")
        );
        out.into_iter()
            .map(|(name, values, path)| {
                let docs = parsed
                    .docs
                    .remove(&path.to_string_lossy().into_owned())
                    .expect("the helper parsed every manifest");
                Render {
                    name,
                    values,
                    path,
                    docs,
                }
            })
            .collect()
    })
}

fn render(name: &str) -> &'static Render {
    renders()
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no render named {name}"))
}

/// Renders with `args` and parses the documents (for one-off value changes).
fn render_docs(name: &str, args: &[&str]) -> Vec<Value> {
    let path = render_to(name, args);
    let mut parsed = inspect(&[&path]);
    assert!(parsed.errors.is_empty(), "{}", parsed.errors.join("\n"));
    parsed
        .docs
        .remove(&path.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// --- the Python helper: YAML → JSON, custom resources against the CRD schemas ------------------

/// Loads each manifest (PyYAML) and validates the documents whose kind a CRD in `crds/` defines
/// against that CRD's openAPIV3Schema (jsonschema). The schema is made strict the way the API
/// server is with strict field validation: an object schema with `properties` and no
/// `additionalProperties` accepts no other field. A self-check makes sure an unknown field is
/// caught, so the validation cannot pass vacuously.
const INSPECT_PY: &str = r#"
import json, pathlib, sys
import jsonschema, yaml

crd_dir, manifests = sys.argv[1], sys.argv[2:]

def strict(s):
    if isinstance(s, list):
        return [strict(x) for x in s]
    if not isinstance(s, dict):
        return s
    s = {k: strict(v) for k, v in s.items()}
    if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s \
            and not s.get("x-kubernetes-preserve-unknown-fields"):
        s["additionalProperties"] = False
    if s.pop("nullable", False) and isinstance(s.get("type"), str):
        s["type"] = [s["type"], "null"]
    return s

schemas = {}
for path in sorted(pathlib.Path(crd_dir).glob("*.yaml")):
    crd = yaml.safe_load(path.read_text())
    spec = crd["spec"]
    for version in spec["versions"]:
        key = (spec["group"] + "/" + version["name"], spec["names"]["kind"])
        schemas[key] = strict(version["schema"]["openAPIV3Schema"])

errors, docs, checked = [], {}, 0
for manifest in manifests:
    with open(manifest) as f:
        items = [d for d in yaml.safe_load_all(f) if d]
    docs[manifest] = items
    for d in items:
        key = (d.get("apiVersion"), d.get("kind"))
        if key not in schemas:
            continue
        meta = d.get("metadata") or {}
        where = "%s: %s/%s" % (manifest, d["kind"], meta.get("name"))
        if not meta.get("name") or not meta.get("namespace"):
            errors.append(where + ": metadata.name and metadata.namespace are required")
        body = {k: v for k, v in d.items() if k not in ("apiVersion", "kind", "metadata")}
        validator = jsonschema.Draft7Validator(schemas[key])
        for e in validator.iter_errors(body):
            errors.append("%s: %s: %s" % (where, "/".join(map(str, e.path)), e.message))
        checked += 1
        if checked == 1:
            probe = json.loads(json.dumps(body))
            probe.setdefault("spec", {})["notAField"] = 1
            if not any(True for _ in validator.iter_errors(probe)):
                errors.append("self-check: the strict schema accepted an unknown spec field")

json.dump({"docs": docs, "errors": errors}, sys.stdout)
"#;

#[derive(Debug)]
struct Inspected {
    docs: BTreeMap<String, Vec<Value>>,
    errors: Vec<String>,
}

fn inspect(manifests: &[&Path]) -> Inspected {
    let stdout = succeed(
        venv("python")
            .arg("-c")
            .arg(INSPECT_PY)
            .arg(repo().join("crds"))
            .args(manifests),
    );
    let v: Value = serde_json::from_str(&stdout).expect("the helper prints JSON");
    let docs = v["docs"]
        .as_object()
        .expect("docs by manifest")
        .iter()
        .map(|(k, d)| (k.clone(), d.as_array().cloned().unwrap_or_default()))
        .collect();
    let errors = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect();
    Inspected { docs, errors }
}

// --- helpers over parsed documents -------------------------------------------------------------

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn names(docs: &[Value], kind: &str) -> BTreeSet<String> {
    of_kind(docs, kind)
        .iter()
        .map(|d| {
            d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn operator_deployment(docs: &[Value]) -> &Value {
    named(docs, "Deployment", &format!("{RELEASE}-operator")).expect("the operator Deployment")
}

fn container<'a>(pod_owner: &'a Value, name: &str) -> &'a Value {
    pod_owner["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("container {name}"))
}

/// Every container and init container of the Deployments and StatefulSets.
fn all_containers(docs: &[Value]) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for d in docs
        .iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
    {
        let pod = &d["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for c in pod[list].as_array().into_iter().flatten() {
                out.push((
                    format!("{}/{}/{}", d["kind"], d["metadata"]["name"], c["name"]),
                    c,
                ));
            }
        }
    }
    out
}

fn env_of(c: &Value) -> BTreeMap<String, Value> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e.clone(),
            )
        })
        .collect()
}

/// Settings of operator/src/config.rs the chart leaves unset on purpose.
const NOT_SET: [&str; 1] = [
    // The credential-less alternative to SERVICES_REDIS_SECRET, which the chart always sets:
    // every Redis it knows (in-cluster or external) has credentials.
    "SERVICES_REDIS_URL",
];

/// The environment variables operator/src/config.rs reads (`env = "NAME"`).
fn operator_config_env() -> BTreeSet<String> {
    let src = read(&repo().join("operator/src/config.rs"));
    let mut out = BTreeSet::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find("env = \"") {
        rest = &rest[i + 7..];
        let end = rest.find('"').expect("closing quote");
        out.insert(rest[..end].to_string());
        rest = &rest[end..];
    }
    assert!(
        out.len() > 10,
        "parsed too few env vars from config.rs: {out:?}"
    );
    out
}

// --- lint ------------------------------------------------------------------------------------

#[test]
fn chart_lints_with_strict_for_every_values_file() {
    let out = succeed(
        helm()
            .arg("lint")
            .arg(chart())
            .args(["--kube-version", KUBE_VERSION]),
    );
    assert!(out.contains("0 chart(s) failed"), "{out}");
    for r in renders() {
        let mut cmd = helm();
        cmd.arg("lint")
            .arg(chart())
            .args(["--strict", "--kube-version", KUBE_VERSION]);
        if let Some(v) = &r.values {
            cmd.arg("-f").arg(v);
        }
        let out = succeed(&mut cmd);
        assert!(out.contains("0 chart(s) failed"), "{}: {out}", r.name);
    }
}

#[test]
fn values_schema_rejects_unknown_keys_and_missing_external_settings() {
    let out = template(&["--set", "operator.replicaz=2"]);
    assert!(!out.status.success(), "an unknown key rendered");
    assert!(text(&out).contains("replicaz"), "{}", text(&out));

    // External databases without their endpoints and Secrets say what is missing.
    let out = template(&["--set", "databases.inCluster=false"]);
    assert!(
        !out.status.success(),
        "external databases without settings rendered"
    );
    let msg = text(&out);
    assert!(
        msg.contains("external/postgres/host") && msg.contains("external/redis/existingSecret"),
        "{msg}"
    );
}

// --- schema validation -------------------------------------------------------------------------

#[test]
fn rendered_manifests_are_valid_for_kubernetes_1_35() {
    let renders = renders();
    let out = output(
        venv("kubernetes-validate")
            .args(["--strict", "--kubernetes-version", KUBE_VERSION])
            .args(renders.iter().map(|r| &r.path)),
    );
    let report = text(&out);
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{report}"
    );
    let mut passed = 0;
    for line in report.lines() {
        if line.starts_with("INFO") && line.contains(" passed for resource ") {
            passed += 1;
        } else if line.starts_with("WARN") {
            // It has no schema for custom resources and only warns; ours are checked below. Any
            // other kind it does not know (a typo in apiVersion) must fail.
            assert!(
                line.contains("api version prismicx.io/v1alpha1"),
                "kubernetes-validate could not check a built-in kind: {line}"
            );
        } else if !line.trim().is_empty() {
            panic!("unexpected kubernetes-validate output: {line}");
        }
    }
    let built_in: usize = renders
        .iter()
        .map(|r| {
            r.docs
                .iter()
                .filter(|d| d["apiVersion"] != "prismicx.io/v1alpha1")
                .count()
        })
        .sum();
    assert_eq!(
        passed, built_in,
        "every built-in resource validated:\n{report}"
    );
}

#[test]
fn custom_resources_follow_the_crd_schemas_and_cel_rules() {
    // The schema half ran when the renders were parsed (renders() asserts no errors).
    let mut checked = 0;
    for r in renders() {
        for d in of_kind(&r.docs, "DatabaseService") {
            let svc: DatabaseService = serde_json::from_value(d.clone())
                .unwrap_or_else(|e| panic!("{}: {d}: {e}", r.name));
            if let Err(e) = svc.validate_cel() {
                panic!(
                    "{}: {} breaks a CEL rule: {e:?}",
                    r.name, d["metadata"]["name"]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 6, "checked {checked} DatabaseServices");

    // The CEL check bites: replicas beyond the CRD's bound are refused.
    let mut over = of_kind(&render("default").docs, "DatabaseService")[0].clone();
    over["spec"]["replicas"] = 51.into();
    let over: DatabaseService = serde_json::from_value(over).expect("still well-typed");
    assert!(over.validate_cel().is_err());
}

// --- security scan -------------------------------------------------------------------------------

/// A line of checkov-skips.txt.
#[derive(Debug)]
struct Skip {
    check: String,
    resource: String,
    line: usize,
}

fn skips() -> Vec<Skip> {
    let file = chart().join("checkov-skips.txt");
    read(&file)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            let mut parts = l.split_whitespace();
            let check = parts.next().unwrap_or_default().to_string();
            let resource = parts.next().unwrap_or_default().to_string();
            let reason: Vec<&str> = parts.collect();
            assert!(
                check.starts_with("CKV") && !resource.is_empty() && reason.len() >= 3,
                "{}:{}: expected `CHECK_ID RESOURCE reason…`, got {l:?}",
                file.display(),
                i + 1
            );
            Skip {
                check,
                resource,
                line: i + 1,
            }
        })
        .collect()
}

fn skip_matches(skip: &Skip, check: &str, resource: &str) -> bool {
    if skip.check != check {
        return false;
    }
    if skip.resource == "*" {
        return true;
    }
    // checkov names Kubernetes resources Kind.namespace.name and files by their path; the skip
    // list leaves out the namespace (always the release namespace here) and the repository root.
    let root = format!("{}/", repo().display());
    let resource = resource.strip_prefix(&root).unwrap_or(resource).replacen(
        &format!(".{NAMESPACE}."),
        ".",
        1,
    );
    resource == skip.resource
        || resource
            .strip_prefix(&skip.resource)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[test]
fn security_scan_findings_are_fixed_or_justified() {
    let renders = renders();
    let dockerfile = repo().join("images/Dockerfile");
    let out = output(
        venv("checkov")
            .current_dir(work_dir())
            .args(["--framework", "kubernetes", "dockerfile"])
            .arg("-f")
            .args(renders.iter().map(|r| format!("{}.yaml", r.name)))
            .arg(&dockerfile)
            .args([
                "--quiet",
                "--output",
                "json",
                "--soft-fail",
                "--skip-download",
            ]),
    );
    assert!(out.status.success(), "checkov failed:\n{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("checkov printed no JSON ({e}):\n{}", text(&out)));
    let reports: Vec<Value> = match report {
        Value::Array(a) => a,
        single => vec![single],
    };
    let frameworks: BTreeSet<&str> = reports
        .iter()
        .filter_map(|r| r["check_type"].as_str())
        .collect();
    assert_eq!(
        frameworks,
        BTreeSet::from(["dockerfile", "kubernetes"]),
        "checkov scanned both"
    );

    let skips = skips();
    let mut used = vec![false; skips.len()];
    let mut unjustified = Vec::new();
    for r in &reports {
        assert_eq!(
            r["summary"]["parsing_errors"], 0,
            "checkov could not parse: {r}"
        );
        assert!(
            r["summary"]["passed"].as_u64().unwrap_or(0) > 0,
            "checkov checked nothing"
        );
        for f in r["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let check = f["check_id"].as_str().unwrap_or_default();
            let resource = f["resource"].as_str().unwrap_or_default();
            let mut justified = false;
            for (i, s) in skips.iter().enumerate() {
                if skip_matches(s, check, resource) {
                    used[i] = true;
                    justified = true;
                }
            }
            if !justified {
                unjustified.push(format!(
                    "{check} {resource} ({}): {}",
                    f["file_path"].as_str().unwrap_or_default(),
                    f["check_name"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    unjustified.sort();
    unjustified.dedup();
    assert!(
        unjustified.is_empty(),
        "checkov findings neither fixed nor justified in charts/prismicx/checkov-skips.txt:\n{}",
        unjustified.join("\n")
    );
    let stale: Vec<String> = skips
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(s, _)| format!("line {}: {} {}", s.line, s.check, s.resource))
        .collect();
    assert!(
        stale.is_empty(),
        "checkov-skips.txt lists findings that no longer occur (remove them):\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_container_is_non_root_read_only_and_bounded() {
    for r in renders() {
        let containers = all_containers(&r.docs);
        assert!(!containers.is_empty(), "{}: no containers", r.name);
        for (name, c) in containers {
            let sc = &c["securityContext"];
            let at = format!("{}: {name}", r.name);
            assert_eq!(sc["runAsNonRoot"], true, "{at}");
            assert!(sc["runAsUser"].as_u64().is_some_and(|u| u > 0), "{at}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{at}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{at}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{at}"
            );
            assert!(sc["capabilities"]["add"].is_null(), "{at}");
            assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{at}");
            for bound in ["requests", "limits"] {
                for res in ["cpu", "memory"] {
                    assert!(
                        !c["resources"][bound][res].is_null(),
                        "{at}: resources.{bound}.{res}"
                    );
                }
            }
        }
    }
}

// --- CRDs ------------------------------------------------------------------------------------

#[test]
fn chart_crds_are_the_generated_crds_and_are_kept_on_uninstall() {
    let files = |dir: &Path| -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    read(&e.path()),
                )
            })
            .collect()
    };
    let generated = files(&repo().join("crds"));
    assert_eq!(
        files(&chart().join("files/crds")),
        generated,
        "charts/prismicx/files/crds/ differs from crds/: run `make generate`"
    );

    // Rendered: the same spec, labelled, with the keep annotation.
    let generated_specs = inspect(
        &generated
            .keys()
            .map(|f| repo().join("crds").join(f))
            .collect::<Vec<_>>()
            .iter()
            .map(PathBuf::as_path)
            .collect::<Vec<_>>(),
    );
    let by_name: BTreeMap<String, Value> = generated_specs
        .docs
        .into_values()
        .flatten()
        .map(|d| {
            (
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                d,
            )
        })
        .collect();
    let rendered = of_kind(&render("default").docs, "CustomResourceDefinition");
    assert_eq!(rendered.len(), by_name.len());
    for crd in rendered {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let expected = by_name
            .get(name)
            .unwrap_or_else(|| panic!("unexpected CRD {name}"));
        assert_eq!(
            crd["spec"], expected["spec"],
            "{name}: rendered spec differs"
        );
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name}"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/instance"],
            RELEASE
        );
    }

    // crds.enabled=false (the namespaced variant) renders none; crds.keep=false drops the annotation.
    assert!(of_kind(
        &render("namespaced-values").docs,
        "CustomResourceDefinition"
    )
    .is_empty());
    let unkept = render_docs("crds-not-kept", &["--set", "crds.keep=false"]);
    for crd in of_kind(&unkept, "CustomResourceDefinition") {
        assert!(crd["metadata"]["annotations"].is_null(), "{crd}");
    }
}

// --- what the templates render -----------------------------------------------------------------

#[test]
fn default_render_has_the_six_database_services_and_the_operator() {
    let docs = &render("default").docs;
    assert_eq!(
        names(docs, "DatabaseService"),
        // The six services of DESIGN.md section 2, as the operator API names them (whose own
        // tests pin the names).
        ServiceKind::ALL
            .iter()
            .map(|s| s.k8s_name().to_string())
            .collect(),
    );
    let kinds: BTreeSet<&str> = of_kind(docs, "DatabaseService")
        .iter()
        .map(|d| d["spec"]["service"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    for d in of_kind(docs, "DatabaseService") {
        assert_eq!(
            d["spec"]["apiKeySecret"]["name"],
            format!("{RELEASE}-platform")
        );
        assert!(named(docs, "Secret", &format!("{RELEASE}-platform")).is_some());
    }

    let deployment = operator_deployment(docs);
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let op = container(deployment, "operator");
    assert_eq!(op["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(op["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(op["ports"][0]["containerPort"], 8080);
    let metrics = named(docs, "Service", &format!("{RELEASE}-operator-metrics"))
        .expect("the metrics Service");
    assert_eq!(metrics["spec"]["ports"][0]["port"], 8080);

    // Every setting of operator/src/config.rs is set (WATCH_NAMESPACE only when namespaced,
    // TENANT_NAMESPACES only when listed).
    let env = env_of(op);
    let namespaced_env = env_of(container(
        operator_deployment(&render("namespaced-values").docs),
        "operator",
    ));
    let listed_env = env_of(container(
        operator_deployment(&render("tenant-namespaces-values").docs),
        "operator",
    ));
    let set: BTreeSet<String> = env
        .keys()
        .chain(namespaced_env.keys())
        .chain(listed_env.keys())
        .cloned()
        .chain(NOT_SET.iter().map(|s| s.to_string()))
        .collect();
    let missing: Vec<String> = operator_config_env().difference(&set).cloned().collect();
    assert!(
        missing.is_empty(),
        "the operator Deployment does not set {missing:?} (operator/src/config.rs)"
    );
    assert!(
        !env.contains_key("WATCH_NAMESPACE"),
        "cluster-wide watches every namespace"
    );
    assert_eq!(
        env["SERVICES_REDIS_SECRET"]["value"],
        format!("{RELEASE}-redis")
    );
    assert!(named(docs, "Secret", &format!("{RELEASE}-redis")).is_some());
    assert_eq!(env["LEADER_ELECTION"]["value"], "true");
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        assert_eq!(env[var]["valueFrom"]["fieldRef"]["fieldPath"], field);
    }
    for var in [
        "POSTGRES_ADMIN_USER",
        "POSTGRES_ADMIN_PASSWORD",
        "PGBOUNCER_ADMIN_PASSWORD",
        "MONGODB_SYSTEM_URI",
        "MONGODB_TENANT_URI",
        "REDIS_URL",
    ] {
        assert!(
            env[var]["value"].is_null() && !env[var]["valueFrom"]["secretKeyRef"].is_null(),
            "{var} must come from a Secret: {}",
            env[var]
        );
    }

    // The data servers under the Service names and ports of DESIGN.md section 2.
    for (svc, port) in [
        ("postgres-system", 5432),
        ("pgbouncer", 6432),
        ("mongodb-system", 27018),
        ("mongodb-tenant", 27017),
        ("redis-cache", 6379),
    ] {
        let s = named(docs, "Service", svc).unwrap_or_else(|| panic!("Service {svc}"));
        assert_eq!(s["spec"]["ports"][0]["port"], port, "{svc}");
    }
    assert_eq!(
        names(docs, "StatefulSet"),
        BTreeSet::from(["postgres-system", "mongodb-system", "mongodb-tenant"].map(String::from))
    );
}

#[test]
fn pgbouncer_shares_the_include_file_with_the_operator() {
    let docs = &render("default").docs;
    let deployment = operator_deployment(docs);
    let op = container(deployment, "operator");
    let pgb = container(deployment, "pgbouncer");
    let file = env_of(op)["PGBOUNCER_DATABASES_FILE"]["value"]
        .as_str()
        .expect("PGBOUNCER_DATABASES_FILE")
        .to_string();
    let dir = Path::new(&file)
        .parent()
        .expect("a directory")
        .to_string_lossy()
        .into_owned();
    let volume_at = |c: &Value| -> Option<String> {
        c["volumeMounts"]
            .as_array()?
            .iter()
            .find(|m| m["mountPath"] == dir.as_str())
            .and_then(|m| m["name"].as_str().map(String::from))
    };
    let shared = volume_at(op).expect("the operator mounts the include file's directory");
    assert_eq!(
        volume_at(pgb).as_deref(),
        Some(shared.as_str()),
        "PgBouncer reads the same volume"
    );
    let volume = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == shared.as_str()))
        .expect("the shared volume");
    assert!(!volume["emptyDir"].is_null(), "an emptyDir: {volume}");

    // PgBouncer ≥ 1.25 in transaction mode, including that file.
    let image = pgb["image"].as_str().unwrap_or_default();
    let version: Vec<u32> = image
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_start_matches('v')
        .split(['.', '-'])
        .take(2)
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    assert!(
        version >= vec![1, 25],
        "PgBouncer image {image} is older than 1.25"
    );
    let config = named(docs, "ConfigMap", &format!("{RELEASE}-pgbouncer")).expect("the ConfigMap");
    let ini = config["data"]["pgbouncer.ini"].as_str().unwrap_or_default();
    for needle in [
        "pool_mode = transaction",
        "ignore_startup_parameters = extra_float_digits",
        "auth_query = ",
        "admin_users = pgbouncer_admin",
        &format!("%include {file}"),
    ] {
        assert!(
            ini.contains(needle),
            "pgbouncer.ini lacks {needle:?}:\n{ini}"
        );
    }
    let seed = config["data"]["databases.seed.ini"]
        .as_str()
        .unwrap_or_default();
    assert!(
        seed.contains("[databases]") && seed.contains("* = host=postgres-system."),
        "{seed}"
    );

    // The pgbouncer Service reaches this Pod even while the operator container is not ready.
    let svc = named(docs, "Service", "pgbouncer").expect("Service pgbouncer");
    assert_eq!(svc["spec"]["publishNotReadyAddresses"], true);
    let selector = svc["spec"]["selector"].as_object().expect("a selector");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector {
        assert_eq!(
            &pod_labels[k], v,
            "the pgbouncer Service selects the operator Pod"
        );
    }
}

#[test]
fn the_install_that_creates_the_crds_defers_the_database_services() {
    // Helm maps every object of a release to an API before creating any, so a DatabaseService
    // next to the CRD that defines it would fail a fresh install ("ensure CRDs are installed
    // first"). That install renders the CRDs without DatabaseServices; the next upgrade adds them.
    let out = template_first_install();
    assert!(out.status.success(), "{}", text(&out));
    let path = work_dir().join("first-install.yaml");
    std::fs::write(&path, &out.stdout).expect("writing the render");
    let docs = inspect(&[&path])
        .docs
        .remove(&path.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(of_kind(&docs, "CustomResourceDefinition").len(), 2);
    assert!(of_kind(&docs, "DatabaseService").is_empty());
    let notes = succeed(helm().args(["install", RELEASE]).arg(chart()).args([
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
    ]));
    assert!(
        notes.contains("--reuse-values"),
        "NOTES tell how to create the services:\n{notes}"
    );
    // With CRDs managed outside Helm they are rendered straight away.
    let docs = render_docs("crds-external", &["--set", "crds.enabled=false"]);
    assert_eq!(names(&docs, "DatabaseService").len(), 6);
}

#[test]
fn disabling_task_repo_removes_its_database_service() {
    let docs = render_docs(
        "no-task-repo",
        &["--set", "services.taskRepo.enabled=false"],
    );
    let remaining = names(&docs, "DatabaseService");
    assert!(!remaining.contains("task-repo-service"), "{remaining:?}");
    assert_eq!(remaining.len(), 5, "{remaining:?}");
    assert!(names(&render("services-disabled-values").docs, "DatabaseService").is_empty());
}

#[test]
fn the_vector_store_gets_its_volume_settings_and_quotas() {
    let docs = &render("default").docs;
    let vectors =
        named(docs, "DatabaseService", "vector-store-service").expect("the vector-store service");
    let spec = &vectors["spec"];
    assert_eq!(spec["service"], "vector-store");
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["storage"], serde_json::json!({"size": "10Gi"}));
    // Unset: the operator derives the budget from the memory limit; the service's own quotas.
    assert_eq!(
        spec["vectorStore"],
        serde_json::json!({"durability": "fsync"})
    );
    for other in of_kind(docs, "DatabaseService") {
        if other["spec"]["service"] != "vector-store" {
            assert!(other["spec"]["storage"].is_null(), "{other}");
            assert!(other["spec"]["vectorStore"].is_null(), "{other}");
        }
    }

    let docs = render_docs(
        "vector-store-settings",
        &[
            "--set",
            "services.vectorStore.persistence.size=50Gi",
            "--set",
            "services.vectorStore.persistence.storageClass=fast-ssd",
            "--set",
            "services.vectorStore.memoryBudgetMb=2048",
            "--set",
            "services.vectorStore.durability=relaxed",
            "--set",
            "services.vectorStore.quotas.maxCollections=0",
            "--set",
            "services.vectorStore.quotas.maxBytes=10737418240",
        ],
    );
    let spec = &named(&docs, "DatabaseService", "vector-store-service").expect("rendered")["spec"];
    assert_eq!(
        spec["storage"],
        serde_json::json!({"size": "50Gi", "storageClassName": "fast-ssd"})
    );
    assert_eq!(
        spec["vectorStore"],
        serde_json::json!({
            "durability": "relaxed",
            "memoryBudgetMb": 2048,
            "defaultQuota": {"maxCollections": 0, "maxBytes": 10737418240_i64},
        })
    );

    // One writer of the data directory: the values refuse a second replica, as the CRD does.
    for bad in [
        "services.vectorStore.replicas=2",
        "services.vectorStore.durability=sometimes",
        "services.vectorStore.quotas.maxPoints=-1",
    ] {
        let out = template(&["--set", bad]);
        assert!(!out.status.success(), "{bad} rendered");
    }
}

#[test]
fn external_databases_render_no_statefulset_and_use_the_given_secrets() {
    let docs = &render("external-databases-values").docs;
    assert!(
        of_kind(docs, "StatefulSet").is_empty(),
        "no StatefulSet with external databases"
    );
    for svc in [
        "postgres-system",
        "mongodb-system",
        "mongodb-tenant",
        "redis-cache",
    ] {
        assert!(named(docs, "Service", svc).is_none(), "{svc} is external");
    }
    let secrets = names(docs, "Secret");
    assert_eq!(
        secrets,
        BTreeSet::from([format!("{RELEASE}-pgbouncer")]),
        "only the PgBouncer admin Secret is generated"
    );
    let env = env_of(container(operator_deployment(docs), "operator"));
    assert_eq!(env["POSTGRES_HOST"]["value"], "pg.example.internal");
    assert_eq!(
        env["MONGODB_TENANT_ADDRESS"]["value"],
        "mongo-tenant.example.internal:27017"
    );
    for (var, secret) in [
        ("POSTGRES_ADMIN_PASSWORD", "prismicx-postgres-admin"),
        ("MONGODB_SYSTEM_URI", "prismicx-mongodb-system"),
        ("MONGODB_TENANT_URI", "prismicx-mongodb-tenant"),
        ("REDIS_URL", "prismicx-redis"),
    ] {
        assert_eq!(
            env[var]["valueFrom"]["secretKeyRef"]["name"], secret,
            "{var}"
        );
    }
    // PgBouncer still runs beside the operator: the operator owns its include file.
    assert!(named(docs, "Service", "pgbouncer").is_some());
}

#[test]
fn rbac_is_least_privilege_cluster_wide_or_namespaced() {
    let check_rules = |kind: &str, role: &Value| {
        for rule in role["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs"] {
                assert!(
                    !rule[field]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|v| v == "*"),
                    "{kind}: wildcard {field}: {rule}"
                );
            }
            let resources: Vec<&str> = rule["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for r in &resources {
                assert!(
                    [
                        "tenants",
                        "tenants/status",
                        "tenants/finalizers",
                        "databaseservices",
                        "databaseservices/status",
                        "databaseservices/finalizers",
                        "secrets",
                        "configmaps",
                        "services",
                        "serviceaccounts",
                        "persistentvolumeclaims",
                        "deployments",
                        "events",
                        "leases",
                    ]
                    .contains(r),
                    "{kind} grants {r}"
                );
            }
            if resources.contains(&"events") {
                assert_eq!(rule["apiGroups"], serde_json::json!(["events.k8s.io"]));
                assert_eq!(rule["verbs"], serde_json::json!(["create", "patch"]));
            }
        }
    };

    let default = &render("default").docs;
    let cluster_roles = of_kind(default, "ClusterRole");
    assert_eq!(
        cluster_roles.len(),
        1,
        "one ClusterRole when watching every namespace"
    );
    check_rules("ClusterRole", cluster_roles[0]);
    assert!(
        !serde_json::to_string(cluster_roles[0])
            .unwrap_or_default()
            .contains("leases"),
        "leases only in the release namespace's Role"
    );
    let lease_role = of_kind(default, "Role")
        .into_iter()
        .find(|r| r.to_string().contains("leases"))
        .expect("the leader-election Role");
    check_rules("Role", lease_role);
    assert!(lease_role
        .to_string()
        .contains("\"resourceNames\":[\"prismicx-operator\"]"));

    // What DatabaseServices own is granted in the release namespace only; the ClusterRole holds
    // the custom resources, Events and (Tenants anywhere) their Secrets.
    let grants = |role: &Value| -> Vec<String> {
        role["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["resources"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let cluster = grants(cluster_roles[0]);
    for platform_only in [
        "deployments",
        "configmaps",
        "services",
        "serviceaccounts",
        "persistentvolumeclaims",
    ] {
        assert!(
            !cluster.iter().any(|r| r == platform_only),
            "the ClusterRole grants {platform_only}"
        );
    }
    assert!(cluster.iter().any(|r| r == "secrets"));
    let platform_role = of_kind(default, "Role")
        .into_iter()
        .find(|r| grants(r).iter().any(|g| g == "deployments"))
        .expect("the platform Role");
    assert_eq!(platform_role["metadata"]["namespace"], NAMESPACE);
    check_rules("Role", platform_role);

    // Tenants in listed namespaces: Secrets in those and the release namespace only.
    let listed = &render("tenant-namespaces-values").docs;
    let cluster_roles = of_kind(listed, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    check_rules("ClusterRole", cluster_roles[0]);
    assert!(
        !grants(cluster_roles[0]).iter().any(|r| r == "secrets"),
        "no Secret outside the managed namespaces"
    );
    let mut with_secrets: Vec<String> = of_kind(listed, "Role")
        .into_iter()
        .filter(|r| grants(r).iter().any(|g| g == "secrets"))
        .map(|r| {
            check_rules("Role", r);
            r["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    with_secrets.sort();
    assert_eq!(with_secrets, [NAMESPACE, "team-a", "team-b"]);
    for binding in of_kind(listed, "RoleBinding") {
        assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    }
    let env = env_of(container(operator_deployment(listed), "operator"));
    assert_eq!(env["TENANT_NAMESPACES"]["value"], "team-a,team-b");

    let namespaced = &render("namespaced-values").docs;
    assert!(of_kind(namespaced, "ClusterRole").is_empty());
    assert!(of_kind(namespaced, "ClusterRoleBinding").is_empty());
    for role in of_kind(namespaced, "Role") {
        assert_eq!(role["metadata"]["namespace"], NAMESPACE);
        check_rules("Role", role);
    }
    let env = env_of(container(operator_deployment(namespaced), "operator"));
    assert_eq!(env["WATCH_NAMESPACE"]["value"], NAMESPACE);
}

// --- the PgBouncer configuration on a real PgBouncer ----------------------------------------------

/// A PgBouncer started from the chart's ConfigMap; stopped (and its files removed) on drop.
#[derive(Debug)]
struct ChartPgBouncer {
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for ChartPgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PgBouncer from PATH or /usr/sbin (where Debian's `pgbouncer` package puts it).
fn pgbouncer_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`pgbouncer` is not installed: run `make deps` (Debian package pgbouncer)")
        })
}

/// The chart's init script and pgbouncer.ini, with the Pod's paths moved into a scratch
/// directory and PgBouncer on a free loopback port, run as in the Pod: the init container
/// first, then PgBouncer (both as `nobody` when the test runs as root, as PgBouncer refuses
/// root). Nothing but the paths, the listen address and the port is changed.
fn start_chart_pgbouncer() -> (ChartPgBouncer, u16) {
    use std::os::unix::process::CommandExt;

    let docs = &render("default").docs;
    let config = named(docs, "ConfigMap", &format!("{RELEASE}-pgbouncer")).expect("the ConfigMap");
    let deployment = operator_deployment(docs);
    let databases_file = env_of(container(deployment, "operator"))["PGBOUNCER_DATABASES_FILE"]
        ["value"]
        .as_str()
        .expect("PGBOUNCER_DATABASES_FILE")
        .to_string();
    let databases_dir = Path::new(&databases_file)
        .parent()
        .expect("a directory")
        .to_string_lossy()
        .into_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();

    // Under the system temp dir rather than the target dir: `nobody` must be able to reach it.
    let dir = std::env::temp_dir().join(format!("prismicx-chart-pgbouncer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sub = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let paths = [
        ("/var/run/pgbouncer-auth", sub("auth")),
        (databases_dir.as_str(), sub("databases")),
        ("/run/secrets/pgbouncer", sub("secrets")),
        ("/etc/pgbouncer", sub("etc")),
    ];
    for (_, local) in &paths {
        std::fs::create_dir_all(local).expect("creating the scratch directories");
    }
    let localize = |text: &str| -> String {
        let mut out = text.to_string();
        for (pod, local) in &paths {
            out = out.replace(pod, local);
        }
        out.replace("listen_addr = *", "listen_addr = 127.0.0.1")
            .replace("listen_port = 6432", &format!("listen_port = {port}"))
    };
    for (key, value) in config["data"].as_object().expect("ConfigMap data") {
        std::fs::write(
            dir.join("etc").join(key),
            localize(value.as_str().unwrap_or_default()),
        )
        .expect("writing the config");
    }
    // The projected Secret volume of the Pod; a quote in the password exercises the escaping.
    for (file, value) in [
        ("auth-user", "postgres"),
        ("auth-password", "pg\"pass"),
        ("admin-password", "admin-secret"),
    ] {
        std::fs::write(dir.join("secrets").join(file), value).expect("writing the secrets");
    }

    let as_root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    let run_as = |cmd: &mut Command| {
        if as_root.as_ref().is_ok_and(|root| *root) {
            cmd.uid(65534).gid(65534);
        }
    };
    if as_root.as_ref().is_ok_and(|root| *root) {
        for entry in [dir.clone()]
            .into_iter()
            .chain(paths.iter().map(|(_, l)| PathBuf::from(l)))
            .chain(["etc", "secrets"].into_iter().flat_map(|sub| {
                std::fs::read_dir(dir.join(sub))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
            }))
        {
            std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).expect("chown to nobody");
        }
    }

    let mut init = Command::new("sh");
    init.arg(dir.join("etc/init.sh"))
        .env("DATABASES_FILE", localize(&databases_file))
        .env("ADMIN_USER", "pgbouncer_admin");
    run_as(&mut init);
    succeed(&mut init);

    let log = std::fs::File::create(dir.join("pgbouncer.log")).expect("the log file");
    let mut cmd = Command::new(pgbouncer_binary());
    cmd.arg(dir.join("etc/pgbouncer.ini"))
        .stdout(log.try_clone().expect("the log file"))
        .stderr(log);
    run_as(&mut cmd);
    let child = cmd.spawn().expect("starting pgbouncer");
    let running = ChartPgBouncer { child, dir };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "PgBouncer did not listen with the chart's config:\n{}",
            std::fs::read_to_string(running.dir.join("pgbouncer.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (running, port)
}

#[tokio::test]
async fn chart_pgbouncer_config_serves_the_operators_pool_edits() {
    use prismicx_store::pg::pgbouncer::{self as pool, PoolEntry};
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{Connection, Executor, PgConnection, Row};

    let (running, port) = start_chart_pgbouncer();
    let userlist = read(&running.dir.join("auth/userlist.txt"));
    assert_eq!(
        userlist,
        "\"postgres\" \"pg\"\"pass\"\n\"pgbouncer_admin\" \"admin-secret\"\n"
    );
    let seeded = read(&running.dir.join("databases/databases.ini"));
    assert!(
        seeded.contains("* = host=postgres-system.prismicx.svc port=5432"),
        "{seeded}"
    );

    let admin = |password: &str| {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username("pgbouncer_admin")
            .password(password)
            .database("pgbouncer")
    };
    assert!(
        PgConnection::connect_with(&admin("not-the-password"))
            .await
            .is_err(),
        "the admin console refuses a wrong password"
    );
    let mut console = PgConnection::connect_with(&admin("admin-secret"))
        .await
        .expect("the admin console accepts the admin user from the Secret");

    // Every [pgbouncer] setting of the ConfigMap took effect (none reset by the includes).
    let config: BTreeMap<String, String> = console
        .fetch_all("SHOW CONFIG")
        .await
        .expect("SHOW CONFIG")
        .iter()
        .map(|r| {
            let key: String = r.try_get("key").unwrap_or_default();
            let value: Option<String> = r.try_get("value").unwrap_or_default();
            (key, value.unwrap_or_default())
        })
        .collect();
    for (key, value) in [
        ("pool_mode", "transaction"),
        ("auth_type", "scram-sha-256"),
        ("auth_user", "postgres"),
        ("max_client_conn", "2000"),
        ("default_pool_size", "20"),
        ("ignore_startup_parameters", "extra_float_digits"),
        ("admin_users", "pgbouncer_admin"),
    ] {
        assert_eq!(config.get(key).map(String::as_str), Some(value), "{key}");
    }

    // The operator's edit of the include file, applied with RELOAD and checked with SHOW
    // DATABASES — the code path of operator/src/tenant/pool.rs.
    let file = running.dir.join("databases/databases.ini");
    let entry = PoolEntry {
        name: "system_users__acme".into(),
        host: "127.0.0.1".into(),
        port: 5432,
        dbname: Some("system_users".into()),
        pool_size: Some(7),
    };
    let wanted =
        pool::edit_databases(&seeded, &[], std::slice::from_ref(&entry)).expect("the edit");
    pool::apply(&mut console, &file, &wanted, std::slice::from_ref(&entry))
        .await
        .expect("PgBouncer serves the operator's alias after RELOAD");
    let shown = pool::show_databases(&mut console)
        .await
        .expect("SHOW DATABASES");
    assert_eq!(shown["system_users__acme"].pool_size, 7);
    assert!(
        read(&file).contains("* = host=postgres-system.prismicx.svc port=5432"),
        "the fallback stays"
    );
    drop(running);
}

// --- values documentation --------------------------------------------------------------------

#[test]
fn every_value_is_documented_with_an_example() {
    let values = read(&chart().join("values.yaml"));
    // (indent, key, documented) of the enclosing mappings.
    let mut stack: Vec<(usize, String, bool)> = Vec::new();
    let mut comment = String::new();
    let mut undocumented = Vec::new();
    let mut leaves = 0;
    for line in values.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            comment.clear();
            continue;
        }
        if let Some(c) = trimmed.strip_prefix('#') {
            comment.push_str(c);
            comment.push('\n');
            continue;
        }
        if trimmed.starts_with("- ") {
            comment.clear();
            continue;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            comment.clear();
            continue;
        };
        while stack.last().is_some_and(|(i, _, _)| *i >= indent) {
            stack.pop();
        }
        let documented = comment.contains("Example:");
        comment.clear();
        let covered = documented || stack.iter().any(|(_, _, d)| *d);
        let path: Vec<&str> = stack
            .iter()
            .map(|(_, k, _)| k.as_str())
            .chain([key])
            .collect();
        if rest.trim().is_empty() {
            stack.push((indent, key.to_string(), documented));
        } else {
            leaves += 1;
            if !covered {
                undocumented.push(path.join("."));
            }
        }
    }
    assert!(leaves > 50, "parsed only {leaves} values");
    assert!(
        undocumented.is_empty(),
        "values.yaml keys without a comment carrying an `Example:`: {undocumented:?}"
    );
}

// --- images ----------------------------------------------------------------------------------

/// `[[bin]]` targets, `src/main.rs` and `src/bin/*.rs` of every workspace member.
fn workspace_binaries() -> BTreeSet<String> {
    let root = read(&repo().join("Cargo.toml"));
    let members = root
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("[workspace] members");
    let mut bins = BTreeSet::new();
    for member in members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        let dir = repo().join(member);
        let manifest = read(&dir.join("Cargo.toml"));
        let mut explicit = false;
        let mut in_bin = false;
        let mut package = None;
        let mut section = "";
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
                in_bin = line == "[[bin]]";
                explicit |= in_bin;
                continue;
            }
            let value = || {
                line.split_once('=')
                    .map(|(_, v)| v.trim().trim_matches('"').to_string())
            };
            if in_bin && line.starts_with("name") {
                bins.extend(value());
            } else if section == "[package]" && line.starts_with("name") {
                package = value();
            }
        }
        if !explicit && dir.join("src/main.rs").exists() {
            bins.extend(package);
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) {
            for e in entries.flatten() {
                if let Some(stem) = e.path().file_stem() {
                    bins.insert(stem.to_string_lossy().into_owned());
                }
            }
        }
    }
    bins
}

/// images/README.md's table: image → (binary, buildable).
fn image_table() -> BTreeMap<String, (String, bool)> {
    let readme = read(&repo().join("images/README.md"));
    let mut rows = BTreeMap::new();
    for line in readme.lines().filter(|l| l.starts_with("| `prismicx/")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 4, "images/README.md row: {line}");
        let image = cells[0].trim_matches('`').to_string();
        let binary = cells[1].trim_matches('`').to_string();
        let buildable = match cells[3] {
            "yes" => true,
            "not yet" => false,
            other => {
                panic!("images/README.md: buildable must be `yes` or `not yet`, got {other:?}")
            }
        };
        rows.insert(image, (binary, buildable));
    }
    rows
}

fn workspace_version() -> String {
    let root = read(&repo().join("Cargo.toml"));
    let package = root
        .split_once("[workspace.package]")
        .map(|(_, rest)| rest)
        .expect("[workspace.package]");
    package
        .lines()
        .find_map(|l| l.trim().strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("workspace version")
}

#[test]
fn default_images_are_workspace_binaries_or_marked_not_buildable() {
    let bins = workspace_binaries();
    assert!(bins.contains("prismicx-operator"), "{bins:?}");
    let table = image_table();
    for (image, (binary, buildable)) in &table {
        assert_eq!(
            image.rsplit('/').next(),
            Some(binary.as_str()),
            "images are named after binaries"
        );
        assert_eq!(
            bins.contains(binary),
            *buildable,
            "images/README.md says {image} is {}buildable, but the workspace {} a `{binary}` binary",
            if *buildable { "" } else { "not " },
            if bins.contains(binary) { "has" } else { "has no" },
        );
    }

    let version = workspace_version();
    let chart_yaml = read(&chart().join("Chart.yaml"));
    assert!(
        chart_yaml.contains(&format!("appVersion: \"{version}\"")),
        "Chart.yaml appVersion is not the workspace version {version}"
    );
    let docs = &render("default").docs;
    let mut images: Vec<String> = all_containers(docs)
        .iter()
        .filter_map(|(_, c)| c["image"].as_str().map(String::from))
        .collect();
    images.extend(
        of_kind(docs, "DatabaseService")
            .iter()
            .filter_map(|d| d["spec"]["image"].as_str().map(String::from)),
    );
    // A DatabaseService's image is the one the operator would choose without spec.image
    // (IMAGE_REGISTRY/<image_name>:IMAGE_TAG), so hand-made ones run the same images.
    let env = env_of(container(operator_deployment(docs), "operator"));
    for d in of_kind(docs, "DatabaseService") {
        let kind: ServiceKind =
            serde_json::from_value(d["spec"]["service"].clone()).expect("a service kind");
        assert_eq!(
            d["spec"]["image"],
            format!(
                "{}/{}:{}",
                env["IMAGE_REGISTRY"]["value"].as_str().unwrap_or_default(),
                kind.image_name(),
                env["IMAGE_TAG"]["value"].as_str().unwrap_or_default()
            ),
        );
    }
    for image in images {
        let (repository, tag) = image.rsplit_once(':').unwrap_or((&image, ""));
        if repository.starts_with("prismicx/") {
            assert!(
                table.contains_key(repository),
                "{image} is not in images/README.md"
            );
            assert_eq!(
                tag, version,
                "{image}: the default tag is the workspace version"
            );
        } else {
            assert!(
                !tag.is_empty() && tag != "latest",
                "{image}: third-party images are pinned"
            );
        }
    }
}

#[test]
fn dockerfile_builds_in_a_separate_stage_and_runs_as_non_root() {
    let dockerfile = read(&repo().join("images/Dockerfile"));
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(froms.len() >= 2, "a builder stage and a runtime stage");
    assert!(
        instructions[froms[0]]
            .to_lowercase()
            .ends_with(" as builder"),
        "the first stage is the builder: {}",
        instructions[froms[0]]
    );
    let builder = instructions[froms[0]..froms[froms.len() - 1]].join("\n");
    assert!(
        builder.contains("ARG BINARY"),
        "the binary is a build argument"
    );
    assert!(
        builder.contains("cargo build --release --locked --bin \"${BINARY}\""),
        "the builder builds the chosen binary"
    );
    let runtime = &instructions[froms[froms.len() - 1]..];
    assert!(
        !runtime[0].contains("rust:"),
        "the runtime stage has no toolchain: {}",
        runtime[0]
    );
    assert!(runtime.iter().any(|l| l.starts_with("COPY --from=builder")));
    assert!(
        !runtime.iter().any(|l| l.starts_with("RUN ")),
        "nothing runs in the runtime stage"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER must be a numeric non-root uid, got {user:?}"
    );

    let ignore = read(&repo().join(".dockerignore"));
    for entry in [".git", "**/target"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

/// A namespace owner's Pods cannot reach PgBouncer or the database servers unless the platform
/// admits their namespace: by default the release namespace and labelled namespaces only.
#[test]
fn database_network_policies_admit_only_the_platform_and_labelled_namespaces() {
    let docs = &render("default").docs;
    let policies = of_kind(docs, "NetworkPolicy");
    assert!(!policies.is_empty());
    let mut checked = 0;
    for p in policies {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        for rule in p["spec"]["ingress"].as_array().into_iter().flatten() {
            let metrics = rule["ports"][0]["port"] == serde_json::json!(8080);
            for peer in rule["from"].as_array().into_iter().flatten() {
                if metrics {
                    continue;
                }
                checked += 1;
                let ns = &peer["namespaceSelector"];
                assert!(
                    ns.is_null() && peer["podSelector"] == serde_json::json!({})
                        || ns["matchLabels"]["prismicx.io/database-clients"]
                            == serde_json::json!("true"),
                    "{name} admits {peer}"
                );
            }
        }
    }
    assert!(checked >= 2, "PgBouncer's policy was inspected");
}
