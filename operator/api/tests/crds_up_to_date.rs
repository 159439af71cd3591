//! `crds/` and the Helm chart's copies in `charts/prismicx/files/crds/` are generated from the
//! types: this fails when someone changes a type without running `make generate`, or edits the
//! YAML by hand (in either place).

/// Every directory `make generate` writes the CRDs into.
const GENERATED_DIRS: [&str; 2] = ["crds", "charts/prismicx/files/crds"];

fn check_dir(rel: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    let differs = |(file, yaml): &(String, String)| {
        std::fs::read_to_string(dir.join(file)).unwrap_or_default() != *yaml
    };
    let stale: Vec<String> = prismicx_operator_api::crd_files()
        .into_iter()
        .filter(differs)
        .map(|(file, _)| file)
        .collect();
    assert!(
        stale.is_empty(),
        "{rel}/ is out of date for {stale:?}: run `make generate`"
    );
    let expected: std::collections::BTreeSet<String> = prismicx_operator_api::crd_files()
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    let present: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e} (run `make generate`)", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(
        present, expected,
        "{rel}/ holds files the code does not generate"
    );
}

#[test]
fn crds_directory_matches_the_types() {
    check_dir(GENERATED_DIRS[0]);
}

#[test]
fn chart_crds_match_the_types() {
    check_dir(GENERATED_DIRS[1]);
}

#[test]
fn crds_carry_descriptions_cel_rules_and_printer_columns() {
    let files = prismicx_operator_api::crd_files();
    let tenant = &files
        .iter()
        .find(|(f, _)| f == "tenants.prismicx.io.yaml")
        .unwrap()
        .1;
    for needle in [
        "x-kubernetes-validations",
        "services can be added but not removed",
        "status.tenantId is assigned once",
        "metadata.name is the tenant slug",
        "jsonPath: .spec.tier",
        "- tn",
        "subresources:",
        "deletionPolicy",
        "What deleting the Tenant does to its data",
    ] {
        assert!(tenant.contains(needle), "tenant CRD lacks {needle:?}");
    }
}
