//! Locating server binaries, with install hints when one is missing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub const APT_HINT_PGBOUNCER: &str =
    "install it with `apt-get install pgbouncer` (or run `make deps`)";
pub const APT_HINT_REDIS: &str =
    "install it with `apt-get install redis-server` (or run `make deps`)";

/// Finds `name` on PATH or in /usr/sbin (Debian puts pgbouncer there).
pub fn require(name: &str, hint: &str) -> Result<PathBuf> {
    match find(name) {
        Some(p) => Ok(p),
        None => bail!("`{name}` was not found on PATH; {hint}"),
    }
}

pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The PostgreSQL server binaries: `$PRISMICX_PG_BIN`, else Debian's PostgreSQL 15 directory.
pub fn postgres_bin_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("PRISMICX_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    for bin in ["initdb", "postgres"] {
        if !is_executable(&dir.join(bin)) {
            bail!(
                "PostgreSQL server binary `{}` is missing; install it with \
                 `apt-get install postgresql-15` or point PRISMICX_PG_BIN at a PostgreSQL 15 bin directory",
                dir.join(bin).display()
            );
        }
    }
    Ok(dir)
}

/// Which MongoDB wire server the harness runs.
#[derive(Debug, Clone)]
pub enum MongoServer {
    /// A real `mongod`, preferred when present.
    Mongod(PathBuf),
    /// SecantusDB's `secantusd-py` (a MongoDB wire-protocol server on WiredTiger).
    Secantus(PathBuf),
}

/// The tools directory `make deps` installs into (Python venv, Helm, kubectl).
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PRISMICX_TOOLS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/prismicx/tools")
}

/// `mongod` on PATH first, else `secantusd-py` from `$PRISMICX_SECANTUSD`, PATH or the tools venv.
pub fn mongo_server() -> Result<MongoServer> {
    if let Some(p) = find("mongod") {
        return Ok(MongoServer::Mongod(p));
    }
    if let Some(p) = std::env::var_os("PRISMICX_SECANTUSD").map(PathBuf::from) {
        if is_executable(&p) {
            return Ok(MongoServer::Secantus(p));
        }
    }
    let venv = tools_dir().join("venv/bin/secantusd-py");
    if let Some(p) = find("secantusd-py").or_else(|| is_executable(&venv).then_some(venv.clone())) {
        return Ok(MongoServer::Secantus(p));
    }
    bail!(
        "no MongoDB wire server found: neither `mongod` on PATH nor `secantusd-py` at {} \
         (run `make deps`, which installs the PyPI package SecantusDB into that venv)",
        venv.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_which_and_how_to_install_it() {
        let err = require("prismicx-no-such-server", APT_HINT_REDIS)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`prismicx-no-such-server` was not found"),
            "{err}"
        );
        assert!(err.contains("apt-get install redis-server"), "{err}");
    }

    #[test]
    fn a_missing_postgres_directory_is_explained() {
        std::env::set_var("PRISMICX_PG_BIN", "/nonexistent/pg/bin");
        let err = postgres_bin_dir().unwrap_err().to_string();
        std::env::remove_var("PRISMICX_PG_BIN");
        assert!(
            err.contains("/nonexistent/pg/bin/initdb")
                && err.contains("apt-get install postgresql-15"),
            "{err}"
        );
    }
}
