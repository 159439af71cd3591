//! `crdgen [DIR]`: writes the CRDs of the PrismicX resources into DIR (default `crds/`);
//! `crdgen --check [DIR]` exits 1 when DIR differs from the code.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "crds".into());
    let mut stale = Vec::new();
    for (file, yaml) in prismicx_operator_api::crd_files() {
        let path = std::path::Path::new(&dir).join(&file);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
                stale.push(path.display().to_string());
            }
        } else if let Err(e) =
            std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, yaml))
        {
            eprintln!("crdgen: writing {}: {e}", path.display());
            std::process::exit(2);
        } else {
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        eprintln!(
            "crdgen: out of date: {} (run `make generate`)",
            stale.join(", ")
        );
        std::process::exit(1);
    }
}
