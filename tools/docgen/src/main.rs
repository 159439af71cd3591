//! `docgen <docs dir>`: writes every generated document under `<docs dir>` (see the library).

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: docgen <docs dir>"))?;
    for (path, text) in prismicx_docgen::documents()? {
        let path = std::path::Path::new(&dir).join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
