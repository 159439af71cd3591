//! A collection's snapshot: `manifest.json`, `data-<gen>.bin` and `index-<gen>.usearch`.
//!
//! The data file holds every slot in key order:
//!
//! ```text
//! magic "PXVDATA1" | dim: u32 | slots: u64 | slot* | crc32: u32 (of everything before)
//! slot = 0u8                                   (a hole)
//!      | 1u8 | id | payload JSON | vector      (a live point; id/payload length-prefixed)
//! ```
//!
//! Writing a snapshot of generation `g`: the data and index files are written under temporary
//! names, fsynced and renamed, and the directory fsynced; then the manifest naming `g` is
//! written the same way and the directory fsynced again. The manifest's rename is the commit point: a crash before it leaves the
//! previous generation in force (its files are untouched); files of other generations are
//! removed afterwards. The caller empties the log only after the commit.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::codec::{put_bytes, put_f32s, put_u32, put_u64, put_u8, Reader};
use super::index::VectorIndex;
use super::layout::{self, MANIFEST};
use super::points::PointStore;
use super::wal::Counts;
use super::{CollectionSpec, EngineError, Point};

const MAGIC: &[u8; 8] = b"PXVDATA1";
const FORMAT: u32 = 1;

/// The snapshot's description; its `counts` also serve `usage` without loading the collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    pub spec: CollectionSpec,
    pub generation: u64,
    /// The last log record folded into this snapshot.
    pub lsn: u64,
    pub counts: Counts,
}

pub(crate) fn read_manifest(dir: &Path) -> Result<Manifest, EngineError> {
    let raw = std::fs::read(dir.join(MANIFEST))?;
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|_| EngineError::Corrupt("collection manifest is malformed".into()))?;
    if manifest.format != FORMAT {
        return Err(EngineError::Corrupt(format!(
            "collection manifest has unknown format {}",
            manifest.format
        )));
    }
    Ok(manifest)
}

fn write_file_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), EngineError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = BufWriter::new(File::create(&tmp)?);
    file.write_all(bytes)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

fn encode_data(store: &PointStore, dim: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(store.slot_count() * (dim * 4 + 64) + 32);
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, dim as u32);
    put_u64(&mut out, store.slot_count() as u64);
    for slot in 0..store.slot_count() as u64 {
        match store.slot(slot) {
            None => put_u8(&mut out, 0),
            Some(point) => {
                put_u8(&mut out, 1);
                put_bytes(&mut out, point.id.as_bytes());
                put_bytes(&mut out, point.payload.to_string().as_bytes());
                put_f32s(&mut out, store.vector(slot));
            }
        }
    }
    let crc = crc32fast::hash(&out);
    put_u32(&mut out, crc);
    out
}

fn decode_data(bytes: &[u8], spec: &CollectionSpec) -> Result<PointStore, EngineError> {
    let damaged = || EngineError::Corrupt("snapshot data file is damaged".into());
    if bytes.len() < MAGIC.len() + 16 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(damaged());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(damaged());
    }
    let mut r = Reader::new(&body[MAGIC.len()..], "snapshot data file");
    let dim = r.u32()? as usize;
    if dim != spec.dimension {
        return Err(damaged());
    }
    let slots = r.u64()?;
    let mut store = PointStore::new(dim, spec.metric, &spec.indexed_fields);
    for _ in 0..slots {
        match r.u8()? {
            0 => store.push_hole(),
            1 => {
                let id = r.string()?;
                let payload = r.json()?;
                let mut vector = Vec::with_capacity(dim);
                r.f32s_into(dim, &mut vector)?;
                let point = Point {
                    id,
                    vector,
                    payload,
                };
                let bytes = super::points::quota_bytes(&point);
                store.put(point, bytes);
            }
            _ => return Err(damaged()),
        }
    }
    if !r.is_empty() {
        return Err(damaged());
    }
    Ok(store)
}

/// Writes generation `manifest.generation` of a collection and commits it.
pub(crate) fn write(
    dir: &Path,
    manifest: &Manifest,
    store: &PointStore,
    index: &VectorIndex,
) -> Result<(), EngineError> {
    let generation = manifest.generation;
    write_file_durably(
        dir,
        &layout::data_file(generation),
        &encode_data(store, manifest.spec.dimension),
    )?;
    let index_name = layout::index_file(generation);
    let index_tmp = dir.join(format!("{index_name}.tmp"));
    index.save(layout::utf8(&index_tmp)?)?;
    layout::fsync_file(&index_tmp)?;
    std::fs::rename(&index_tmp, dir.join(&index_name))?;
    // The files the manifest will name must be in place before the manifest is.
    layout::fsync_dir(dir)?;
    let manifest_json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| EngineError::Invalid(format!("manifest: {e}")))?;
    write_file_durably(dir, MANIFEST, &manifest_json)?;
    layout::fsync_dir(dir)?;
    remove_other_generations(dir, generation)?;
    Ok(())
}

/// Removes data/index files (and temporaries) not of `generation`.
fn remove_other_generations(dir: &Path, generation: u64) -> Result<(), EngineError> {
    let keep = [
        layout::data_file(generation),
        layout::index_file(generation),
    ];
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("data-") || name.starts_with("index-");
        if (ours && !keep.contains(&name)) || name.ends_with(".tmp") {
            std::fs::remove_file(dir.join(&name))?;
        }
    }
    Ok(())
}

/// Reads the snapshot a manifest names. An index file of at least `view_min_bytes` is mapped
/// read-only ([`VectorIndex::view`]) instead of loaded.
pub(crate) fn read(
    dir: &Path,
    manifest: &Manifest,
    view_min_bytes: u64,
) -> Result<(PointStore, VectorIndex), EngineError> {
    let data = std::fs::read(dir.join(layout::data_file(manifest.generation)))?;
    let store = decode_data(&data, &manifest.spec)?;
    let index_path = dir.join(layout::index_file(manifest.generation));
    let index_bytes = std::fs::metadata(&index_path)?.len();
    let index_path = layout::utf8(&index_path)?;
    let index = if index_bytes >= view_min_bytes {
        VectorIndex::view(&manifest.spec, index_path)?
    } else {
        VectorIndex::load(&manifest.spec, index_path)?
    };
    remove_other_generations(dir, manifest.generation)?;
    Ok((store, index))
}
