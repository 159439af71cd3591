//! Little-endian binary encoding shared by the write-ahead log and the snapshot's data file:
//! fixed-width integers, `f32` runs and length-prefixed byte strings. Decoding never panics:
//! a short or malformed input is [`EngineError::Corrupt`].

use super::EngineError;

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}
pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_f32s(out: &mut Vec<u8>, values: &[f32]) {
    out.reserve(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}
/// A byte string prefixed with its `u32` length.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// Reads values back from a byte slice, front to back.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the structure in error messages.
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, what }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], EngineError> {
        if self.bytes.len() < n {
            return Err(EngineError::Corrupt(format!("{} is truncated", self.what)));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, EngineError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, EngineError> {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(raw))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, EngineError> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(raw))
    }
    /// Appends `n` floats to `out`.
    pub(crate) fn f32s_into(&mut self, n: usize, out: &mut Vec<f32>) -> Result<(), EngineError> {
        let raw = self.take(n.checked_mul(4).ok_or_else(|| self.corrupt())?)?;
        out.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Ok(())
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], EngineError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub(crate) fn string(&mut self) -> Result<String, EngineError> {
        let raw = self.bytes()?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.corrupt())
    }
    pub(crate) fn json(&mut self) -> Result<serde_json::Value, EngineError> {
        let raw = self.bytes()?;
        serde_json::from_slice(raw).map_err(|_| self.corrupt())
    }
    fn corrupt(&self) -> EngineError {
        EngineError::Corrupt(format!("{} holds a malformed value", self.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_input_is_corrupt() {
        let mut out = Vec::new();
        put_u8(&mut out, 7);
        put_u64(&mut out, 1 << 40);
        put_f32s(&mut out, &[1.5, -2.0]);
        put_bytes(&mut out, b"{\"a\":1}");
        let mut r = Reader::new(&out, "test");
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u64().unwrap(), 1 << 40);
        let mut v = Vec::new();
        r.f32s_into(2, &mut v).unwrap();
        assert_eq!(v, vec![1.5, -2.0]);
        assert_eq!(r.json().unwrap(), serde_json::json!({"a": 1}));
        assert!(r.is_empty());
        assert!(matches!(
            Reader::new(&out[..3], "test").u64(),
            Err(EngineError::Corrupt(_))
        ));
    }
}
