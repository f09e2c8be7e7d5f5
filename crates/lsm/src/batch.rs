//! Atomic write batches and their encoding, which is also the WAL record payload.
//!
//! ```text
//! header:  base_seq u64 | commit_millis u64 | count u32
//! entry:   kind u8 | key (varint length + bytes) | value (varint length + bytes, puts only)
//! ```
//!
//! Entry `i` gets sequence number `base_seq + i`. A delete's tombstone records `commit_millis`,
//! the time the batch was committed, so replay recreates the same tombstone.

use crate::coding::{Reader, put_bytes, u32_at, u64_at, varint_len};
use crate::types::{SeqNo, ValueKind};

pub(crate) const BATCH_HEADER_LEN: usize = 20;

/// A group of puts and deletes applied atomically: after a crash either all are there or none.
#[derive(Debug, Clone)]
pub struct WriteBatch {
    rep: Vec<u8>,
    deletes: u32,
    count: u32,
    /// Largest key and value in the batch, for limit checks.
    max_key: usize,
    max_value: usize,
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A batch with room for `bytes` of entries before it reallocates.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut rep = Vec::with_capacity(BATCH_HEADER_LEN + bytes);
        rep.resize(BATCH_HEADER_LEN, 0);
        WriteBatch {
            rep,
            deletes: 0,
            count: 0,
            max_key: 0,
            max_value: 0,
        }
    }

    /// Adds a put of `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.rep.reserve(Self::entry_bytes(key.len(), value.len()));
        self.rep.push(ValueKind::Put as u8);
        put_bytes(&mut self.rep, key);
        put_bytes(&mut self.rep, value);
        self.note(key.len(), value.len());
        self
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        self.rep.push(ValueKind::Delete as u8);
        put_bytes(&mut self.rep, key);
        self.deletes += 1;
        self.note(key.len(), 0);
        self
    }

    fn note(&mut self, key: usize, value: usize) {
        self.count += 1;
        self.max_key = self.max_key.max(key);
        self.max_value = self.max_value.max(value);
        if key == 0 {
            // Remember an empty key by making max_key impossible to miss in validation.
            self.max_key = usize::MAX;
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.rep.len()
    }

    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// True when the batch holds a delete (whose tombstone needs the commit time).
    pub(crate) fn has_deletes(&self) -> bool {
        self.deletes > 0
    }

    /// Encoded size of one entry, for sizing a batch up front.
    pub(crate) fn entry_bytes(key: usize, value: usize) -> usize {
        1 + varint_len(key as u64) + key + varint_len(value as u64) + value
    }

    pub(crate) fn max_key_len(&self) -> usize {
        self.max_key
    }

    pub(crate) fn max_value_len(&self) -> usize {
        self.max_value
    }

    /// Stamps the batch with its sequence number and commit time and returns the WAL payload.
    pub(crate) fn seal(&mut self, base_seq: SeqNo, commit_millis: u64) -> &[u8] {
        self.rep[0..8].copy_from_slice(&base_seq.to_le_bytes());
        self.rep[8..16].copy_from_slice(&commit_millis.to_le_bytes());
        self.rep[16..20].copy_from_slice(&self.count.to_le_bytes());
        &self.rep
    }

    pub(crate) fn payload(&self) -> &[u8] {
        &self.rep
    }
}

/// One decoded entry of a batch.
pub(crate) struct BatchEntry<'a> {
    pub(crate) seq: SeqNo,
    pub(crate) kind: ValueKind,
    pub(crate) key: &'a [u8],
    /// The value of a put; empty for a delete.
    pub(crate) value: &'a [u8],
}

/// A decoded batch header.
pub(crate) struct BatchHeader {
    pub(crate) base_seq: SeqNo,
    pub(crate) count: u32,
}

/// The commit time recorded in a sealed batch (the time of its tombstones).
pub(crate) fn commit_millis(payload: &[u8]) -> u64 {
    u64_at(payload, 8).unwrap_or(0)
}

/// Decodes a batch payload, calling `f` for each entry in order. `None` when it is malformed
/// (entries before the damage may already have been visited).
pub(crate) fn for_each_entry<'a>(
    payload: &'a [u8],
    mut f: impl FnMut(BatchEntry<'a>),
) -> Option<BatchHeader> {
    let header = BatchHeader {
        base_seq: u64_at(payload, 0)?,
        count: u32_at(payload, 16)?,
    };
    let mut r = Reader::new(&payload[BATCH_HEADER_LEN..]);
    for i in 0..u64::from(header.count) {
        let kind = ValueKind::from_u8(r.u8()?)?;
        let key = r.bytes()?;
        let value = match kind {
            ValueKind::Put => r.bytes()?,
            ValueKind::Delete => &[],
        };
        f(BatchEntry {
            // A count that runs the sequence past the largest number is damage.
            seq: header.base_seq.checked_add(i)?,
            kind,
            key,
            value,
        });
    }
    r.is_empty().then_some(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips() {
        let mut b = WriteBatch::new();
        b.put(b"k1", b"v1").delete(b"k2").put(b"k3", b"");
        let payload = b.seal(100, 42).to_vec();
        let mut got = Vec::new();
        let h = for_each_entry(&payload, |e| {
            got.push((e.seq, e.kind, e.key.to_vec(), e.value.to_vec()))
        })
        .unwrap();
        assert_eq!((h.base_seq, h.count), (100, 3));
        assert_eq!(commit_millis(&payload), 42);
        assert_eq!(
            got,
            vec![
                (100, ValueKind::Put, b"k1".to_vec(), b"v1".to_vec()),
                (101, ValueKind::Delete, b"k2".to_vec(), vec![]),
                (102, ValueKind::Put, b"k3".to_vec(), vec![]),
            ]
        );
        assert!(for_each_entry(&payload[..payload.len() - 1], |_| {}).is_none());
        assert!(b.has_deletes());
    }
}
