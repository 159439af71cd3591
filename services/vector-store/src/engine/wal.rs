//! The write-ahead log of one collection (`wal.log` in its directory).
//!
//! Every write is appended as one record before it is applied in memory:
//!
//! ```text
//! record = len: u32 | crc32: u32 | lsn: u64 | body (len bytes)
//! body   = kind: u8 | points: u64 | bytes: u64 | slots: u64 | items
//! ```
//!
//! `crc32` covers `lsn` and `body`; `points`/`bytes` are the collection's counts *after* the
//! write, so a tenant's usage is read from the last record without loading the collection.
//! LSNs grow by one per record and continue the snapshot's. With [`Durability::Fsync`] the file
//! is fsynced before the append returns.
//!
//! Recovery ([`Wal::open`]) reads records front to back. A record cut short by the end of the
//! file, or the last record with a bad checksum, is a torn write: the file is truncated just
//! before it (the write was never acknowledged). A bad record followed by more data is damage,
//! and opening fails with [`EngineError::Corrupt`] rather than silently dropping writes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::codec::{put_bytes, put_f32s, put_u32, put_u64, put_u8, Reader};
use super::{Durability, EngineError, Point};

const HEADER: usize = 16;
const KIND_UPSERT: u8 = 1;
const KIND_DELETE: u8 = 2;

/// A collection's size as the quota counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Counts {
    pub points: u64,
    pub bytes: u64,
    /// Slots in use, live or deleted (`slots - points` is `deleted_pending`).
    pub slots: u64,
}

/// One logged write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WalOp {
    Upsert(Vec<Point>),
    Delete(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WalRecord {
    pub lsn: u64,
    /// The collection's counts after this write.
    pub counts: Counts,
    pub op: WalOp,
}

/// The open log, positioned at its end.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    len: u64,
    durability: Durability,
}

fn encode(record: &WalRecord) -> Result<Vec<u8>, EngineError> {
    let mut body = Vec::new();
    let (kind, items) = match &record.op {
        WalOp::Upsert(points) => (KIND_UPSERT, points.len()),
        WalOp::Delete(ids) => (KIND_DELETE, ids.len()),
    };
    put_u8(&mut body, kind);
    put_u64(&mut body, record.counts.points);
    put_u64(&mut body, record.counts.bytes);
    put_u64(&mut body, record.counts.slots);
    put_u32(&mut body, items as u32);
    match &record.op {
        WalOp::Upsert(points) => {
            for point in points {
                put_bytes(&mut body, point.id.as_bytes());
                put_u32(&mut body, point.vector.len() as u32);
                put_f32s(&mut body, &point.vector);
                put_bytes(&mut body, point.payload.to_string().as_bytes());
            }
        }
        WalOp::Delete(ids) => {
            for id in ids {
                put_bytes(&mut body, id.as_bytes());
            }
        }
    }
    let len = u32::try_from(body.len())
        .map_err(|_| EngineError::Invalid("a batch must encode to less than 4 GiB".into()))?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    put_u32(&mut out, len);
    put_u32(&mut out, checksum(record.lsn, &body));
    put_u64(&mut out, record.lsn);
    out.extend_from_slice(&body);
    Ok(out)
}

fn checksum(lsn: u64, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(body);
    hasher.finalize()
}

fn decode_body(lsn: u64, body: &[u8]) -> Result<WalRecord, EngineError> {
    let mut r = Reader::new(body, "log record");
    let kind = r.u8()?;
    let counts = Counts {
        points: r.u64()?,
        bytes: r.u64()?,
        slots: r.u64()?,
    };
    let n = r.u32()? as usize;
    let op = match kind {
        KIND_UPSERT => {
            let mut points = Vec::with_capacity(n.min(65_536));
            for _ in 0..n {
                let id = r.string()?;
                let dim = r.u32()? as usize;
                let mut vector = Vec::with_capacity(dim.min(65_536));
                r.f32s_into(dim, &mut vector)?;
                let payload = r.json()?;
                points.push(Point {
                    id,
                    vector,
                    payload,
                });
            }
            WalOp::Upsert(points)
        }
        KIND_DELETE => {
            let mut ids = Vec::with_capacity(n.min(65_536));
            for _ in 0..n {
                ids.push(r.string()?);
            }
            WalOp::Delete(ids)
        }
        _ => return Err(EngineError::Corrupt("log record of unknown kind".into())),
    };
    if !r.is_empty() {
        return Err(EngineError::Corrupt("log record has trailing bytes".into()));
    }
    Ok(WalRecord { lsn, counts, op })
}

/// What a scan of the log's bytes found.
struct Scan {
    records: Vec<WalRecord>,
    /// Where the valid records end (the rest is a torn tail).
    valid_len: u64,
}

/// Reads the records of a log; `decode` false only checks them (and keeps none but the last).
fn scan(bytes: &[u8], decode_all: bool) -> Result<Scan, EngineError> {
    let mut records = Vec::new();
    let mut pos = 0usize;
    let mut last_lsn = 0u64;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < HEADER {
            break;
        }
        let mut header = Reader::new(&rest[..HEADER], "log header");
        let len = header.u32()? as usize;
        let crc = header.u32()?;
        let lsn = header.u64()?;
        let Some(end) = HEADER.checked_add(len).filter(|end| *end <= rest.len()) else {
            break; // cut short by the end of the file
        };
        let body = &rest[HEADER..end];
        if checksum(lsn, body) != crc {
            if pos + end == bytes.len() {
                break; // the last record, torn
            }
            return Err(EngineError::Corrupt(format!(
                "log record at offset {pos} fails its checksum"
            )));
        }
        if lsn <= last_lsn && last_lsn != 0 {
            return Err(EngineError::Corrupt(format!(
                "log record at offset {pos} goes back in sequence"
            )));
        }
        last_lsn = lsn;
        let record = decode_body(lsn, body)?;
        if !decode_all {
            records.clear();
        }
        records.push(record);
        pos += end;
    }
    Ok(Scan {
        records,
        valid_len: pos as u64,
    })
}

impl Wal {
    /// Opens (or creates) the log, truncates a torn tail and returns the records it holds.
    pub(crate) fn open(
        path: &Path,
        durability: Durability,
    ) -> Result<(Wal, Vec<WalRecord>), EngineError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let scan = scan(&bytes, true)?;
        if scan.valid_len < bytes.len() as u64 {
            file.set_len(scan.valid_len)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(scan.valid_len))?;
        Ok((
            Wal {
                file,
                len: scan.valid_len,
                durability,
            },
            scan.records,
        ))
    }

    /// The counts of the last complete record, without opening the log for writing.
    pub(crate) fn last_counts(path: &Path) -> Result<Option<(u64, Counts)>, EngineError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let scan = scan(&bytes, false)?;
        Ok(scan.records.last().map(|r| (r.lsn, r.counts)))
    }

    /// Appends one record; durable on return under [`Durability::Fsync`].
    pub(crate) fn append(&mut self, record: &WalRecord) -> Result<(), EngineError> {
        let bytes = encode(record)?;
        let result = self
            .file
            .write_all(&bytes)
            .and_then(|()| match self.durability {
                Durability::Fsync => self.file.sync_data(),
                Durability::Relaxed => Ok(()),
            });
        if let Err(e) = result {
            // Leave no partial record behind for a later append to follow.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(e.into());
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Empties the log (after a snapshot took in all its records).
    pub(crate) fn clear(&mut self) -> Result<(), EngineError> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.sync_all()?;
        self.len = 0;
        Ok(())
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upsert(lsn: u64, id: &str) -> WalRecord {
        WalRecord {
            lsn,
            counts: Counts {
                points: lsn,
                bytes: 10 * lsn,
                slots: lsn,
            },
            op: WalOp::Upsert(vec![Point {
                id: id.into(),
                vector: vec![1.0, 2.0],
                payload: json!({"n": lsn}),
            }]),
        }
    }

    #[test]
    fn records_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.log");
        let (mut wal, records) = Wal::open(&path, Durability::Fsync).unwrap();
        assert!(records.is_empty());
        wal.append(&upsert(1, "a")).unwrap();
        let delete = WalRecord {
            lsn: 2,
            counts: Counts::default(),
            op: WalOp::Delete(vec!["a".into()]),
        };
        wal.append(&delete).unwrap();
        drop(wal);
        let (_, records) = Wal::open(&path, Durability::Fsync).unwrap();
        assert_eq!(records, vec![upsert(1, "a"), delete]);
        assert_eq!(
            Wal::last_counts(&path).unwrap(),
            Some((2, Counts::default()))
        );
    }

    /// A log holding upserts of `a` then `b`, and the length of the first record.
    fn two_records() -> (tempfile::TempDir, std::path::PathBuf, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.log");
        let (mut wal, _) = Wal::open(&path, Durability::Fsync).unwrap();
        wal.append(&upsert(1, "a")).unwrap();
        let first = wal.len();
        wal.append(&upsert(2, "b")).unwrap();
        (dir, path, first)
    }

    #[test]
    fn a_torn_tail_is_truncated() {
        let (_dir, path, good) = two_records();
        // Cut the second record in half.
        let full = std::fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(good + (full - good) / 2).unwrap();
        drop(file);
        let (mut wal, records) = Wal::open(&path, Durability::Fsync).unwrap();
        assert_eq!(records, vec![upsert(1, "a")]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        // Appends continue from the truncation point.
        wal.append(&upsert(2, "c")).unwrap();
        drop(wal);
        let (_, records) = Wal::open(&path, Durability::Fsync).unwrap();
        assert_eq!(records, vec![upsert(1, "a"), upsert(2, "c")]);
    }

    #[test]
    fn a_bad_checksum_at_the_tail_is_torn_but_in_the_middle_is_damage() {
        let (_dir, path, first) = two_records();
        let first = first as usize;
        let clean = std::fs::read(&path).unwrap();

        let mut tail_flipped = clean.clone();
        let last = tail_flipped.len() - 1;
        tail_flipped[last] ^= 0xff;
        std::fs::write(&path, &tail_flipped).unwrap();
        let (_, records) = Wal::open(&path, Durability::Relaxed).unwrap();
        assert_eq!(records, vec![upsert(1, "a")]);

        let mut middle_flipped = clean;
        middle_flipped[first - 1] ^= 0xff;
        std::fs::write(&path, &middle_flipped).unwrap();
        assert!(matches!(
            Wal::open(&path, Durability::Relaxed),
            Err(EngineError::Corrupt(_))
        ));
    }
}
