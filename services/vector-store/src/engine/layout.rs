//! Where things are on disk, and the few filesystem moves the engine makes atomically.
//!
//! ```text
//! <data_dir>/shared/<tenant>/<collection>/      a standard tenant's collection
//! <data_dir>/dedicated/<tenant>/<collection>/   a dedicated tenant's collection
//!     manifest.json        spec, generation, LSN and counts of the current snapshot
//!     data-<gen>.bin       ids, payloads and vectors of the snapshot
//!     index-<gen>.usearch  the HNSW index of the snapshot
//!     wal.log              writes after the snapshot
//! ```
//!
//! A collection is created under a hidden `.creating-…` name and renamed into place once
//! complete; a removed one is first renamed to a hidden `.trash-…` name, then deleted, so a
//! crash never leaves a half-made or half-deleted collection under a live name. Hidden
//! leftovers are swept when their tenant directory is next listed. Every rename is followed by
//! an fsync of the directories involved.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use super::{CollectionKey, Scope};

pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const WAL: &str = "wal.log";
const TRASH_PREFIX: &str = ".trash-";
const CREATING_PREFIX: &str = ".creating-";

pub(crate) fn scope_dir(data_dir: &Path, scope: Scope) -> PathBuf {
    data_dir.join(match scope {
        Scope::Shared => "shared",
        Scope::Dedicated => "dedicated",
    })
}

pub(crate) fn tenant_dir(data_dir: &Path, scope: Scope, tenant: Uuid) -> PathBuf {
    scope_dir(data_dir, scope).join(tenant.to_string())
}

pub(crate) fn collection_dir(data_dir: &Path, key: &CollectionKey) -> PathBuf {
    tenant_dir(data_dir, key.scope, key.tenant).join(key.collection.to_string())
}

pub(crate) fn data_file(generation: u64) -> String {
    format!("data-{generation}.bin")
}

pub(crate) fn index_file(generation: u64) -> String {
    format!("index-{generation}.usearch")
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes a file's contents to disk.
pub(crate) fn fsync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// A name no other call of this process uses, for hidden temporary entries.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        Uuid::new_v4().simple()
    )
}

/// A fresh hidden directory name beside `final_dir` to build it in.
pub(crate) fn creating_name(final_dir: &Path) -> PathBuf {
    let name = final_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_dir.with_file_name(format!("{CREATING_PREFIX}{name}-{}", unique_suffix()))
}

/// Removes a directory tree so that a crash leaves either the whole tree under its name or
/// nothing under its name. Missing: `Ok(false)`.
pub(crate) fn remove_tree(dir: &Path) -> io::Result<bool> {
    let Some(parent) = dir.parent() else {
        return Err(io::Error::other("no parent directory"));
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let trash = parent.join(format!("{TRASH_PREFIX}{name}-{}", unique_suffix()));
    match std::fs::rename(dir, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    fsync_dir(parent)?;
    std::fs::remove_dir_all(&trash)?;
    Ok(true)
}

/// Renames `from` to `to` (same filesystem) and makes both parents durable.
pub(crate) fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(from, to)?;
    for parent in [to.parent(), from.parent()].into_iter().flatten() {
        fsync_dir(parent)?;
    }
    Ok(())
}

fn is_hidden_leftover(name: &str) -> bool {
    name.starts_with(TRASH_PREFIX) || name.starts_with(CREATING_PREFIX)
}

/// Removes hidden leftovers (interrupted creations and removals) directly under `dir`.
pub(crate) fn sweep_hidden(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if is_hidden_leftover(&entry.file_name().to_string_lossy()) {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// The collections (directories named by a UUID) under a tenant directory; sweeps hidden
/// leftovers of interrupted creations and removals. Missing directory: none.
pub(crate) fn list_collections(tenant_dir: &Path) -> io::Result<Vec<Uuid>> {
    let entries = match std::fs::read_dir(tenant_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut collections = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_hidden_leftover(&name) {
            let _ = std::fs::remove_dir_all(entry.path());
            continue;
        }
        if let Ok(id) = Uuid::parse_str(&name) {
            if entry.file_type()?.is_dir() {
                collections.push(id);
            }
        }
    }
    collections.sort();
    Ok(collections)
}

/// Bytes of the files directly in a directory.
pub(crate) fn dir_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// A path as the UTF-8 text usearch's C++ API needs.
pub(crate) fn utf8(path: &Path) -> io::Result<&str> {
    path.to_str()
        .ok_or_else(|| io::Error::other("data directory path is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_skips_and_sweeps_hidden_leftovers() {
        let root = tempfile::tempdir().unwrap();
        let tenant = root.path().join("t");
        let live = Uuid::new_v4();
        std::fs::create_dir_all(tenant.join(live.to_string())).unwrap();
        std::fs::create_dir_all(tenant.join(".trash-x-1")).unwrap();
        std::fs::create_dir_all(tenant.join(".creating-y-2")).unwrap();
        std::fs::create_dir_all(tenant.join("not-a-uuid")).unwrap();
        assert_eq!(list_collections(&tenant).unwrap(), vec![live]);
        assert!(!tenant.join(".trash-x-1").exists());
        assert!(remove_tree(&tenant.join(live.to_string())).unwrap());
        assert!(!remove_tree(&tenant.join(live.to_string())).unwrap());
        assert!(list_collections(&tenant).unwrap().is_empty());
        std::fs::create_dir_all(root.path().join(".trash-t-3")).unwrap();
        sweep_hidden(root.path()).unwrap();
        assert!(!root.path().join(".trash-t-3").exists());
        assert!(tenant.exists());
    }
}
