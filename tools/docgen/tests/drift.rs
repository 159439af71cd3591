//! The generated documents under `docs/` match what the code renders now.

#[test]
fn generated_docs_are_up_to_date() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut stale = Vec::new();
    for (path, text) in prismicx_docgen::documents().expect("the docs render") {
        let on_disk = std::fs::read_to_string(docs.join(&path)).unwrap_or_default();
        if on_disk != text {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "generated docs differ from the code: {stale:?}; run `make generate` and commit the result"
    );
}
