//! The crate split, checked: services/common's modules form no import cycle, and the crates
//! below it (prismicx-tenancy, prismicx-store) and the operator stay free of the HTTP stack.
//!
//! Both checks read source files, so they hold without building anything else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to (`auth` for `src/auth.rs`, `pg` for
/// `src/pg/retry.rs`); `None` for the crate root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib").then_some(name)
}

/// Code without `//` comments (doc links name modules without importing them).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `module → modules it refers to` through `crate::<module>` paths (in `use` lines and inline).
fn module_edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let code = without_comments(&std::fs::read_to_string(file).expect("readable source"));
        for (i, _) in code.match_indices("crate::") {
            let target: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if target != from && modules.contains(&target) {
                edges.entry(from.clone()).or_default().insert(target);
            }
        }
        // Grouped imports: `use crate::{a, b::X}`.
        for (i, _) in code.match_indices("crate::{") {
            let group = &code[i + "crate::{".len()..];
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let target: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if target != from && modules.contains(&target) {
                    edges.entry(from.clone()).or_default().insert(target);
                }
            }
        }
    }
    edges
}

/// A cycle through `edges`, if there is one (as the list of modules along it).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn modules_of_service_common_form_no_cycle() {
    let src = workspace_root().join("services/common/src");
    let edges = module_edges(&src);
    assert!(
        edges.contains_key("tenancy"),
        "the scan found no edges: {edges:?}"
    );
    if let Some(cycle) = find_cycle(&edges) {
        panic!(
            "services/common has an import cycle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.insert("a".into(), ["b".to_string()].into());
    edges.insert("b".into(), ["c".to_string()].into());
    assert_eq!(find_cycle(&edges), None);
    edges.insert("c".into(), ["a".to_string()].into());
    assert_eq!(
        find_cycle(&edges).map(|c| c.join(" -> ")).as_deref(),
        Some("a -> b -> c -> a")
    );
}

/// The dependency names of `[dependencies]` (and `[dev-dependencies]` when asked) of a manifest.
fn dependencies(manifest: &Path, with_dev: bool) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).expect("readable manifest");
    let mut section = String::new();
    let mut out = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        let wanted = section == "dependencies" || (with_dev && section == "dev-dependencies");
        if wanted && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                out.insert(name.trim().split('.').next().unwrap_or("").to_string());
            }
        }
    }
    out
}

#[test]
fn the_lower_crates_carry_no_http_stack() {
    let root = workspace_root();
    let http = [
        "axum",
        "utoipa",
        "tower",
        "tower-http",
        "http",
        "reqwest",
        "hyper",
    ];
    for krate in ["tenancy", "store"] {
        let deps = dependencies(&root.join(krate).join("Cargo.toml"), true);
        assert!(!deps.is_empty(), "{krate}: no dependencies read");
        for dep in deps {
            let optional_docs = krate == "tenancy" && dep == "utoipa";
            assert!(
                optional_docs || !http.contains(&dep.as_str()),
                "{krate} depends on {dep}"
            );
            assert!(
                !dep.starts_with("prismicx-service") && dep != "prismicx-harness",
                "{krate} depends on {dep}, which is above it"
            );
        }
    }
    let tenancy = dependencies(&root.join("tenancy/Cargo.toml"), false);
    for driver in ["sqlx", "mongodb", "redis", "tokio"] {
        assert!(
            !tenancy.contains(driver),
            "prismicx-tenancy depends on {driver}"
        );
    }
}

#[test]
fn the_operator_depends_on_no_service_crate() {
    let root = workspace_root();
    let deps = dependencies(&root.join("operator/Cargo.toml"), false);
    assert!(deps.contains("prismicx-tenancy") && deps.contains("prismicx-store"));
    for dep in deps {
        assert!(
            dep == "prismicx-operator-api"
                || dep == "prismicx-tenancy"
                || dep == "prismicx-store"
                || !dep.starts_with("prismicx-"),
            "the operator depends on {dep}"
        );
    }
}
