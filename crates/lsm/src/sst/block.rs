//! Data and index blocks.
//!
//! ```text
//! entry*:    shared varint | unshared varint | value_len varint | key[shared..] | value
//! restarts:  u32 offset per restart point (every `restart_interval` entries the key is whole)
//! trailer:   num_restarts u32
//! ```
//!
//! Keys are internal keys, prefix-compressed against the previous key. A seek binary-searches the
//! restart points and then scans forward. Every decode is bounds-checked: a malformed block is a
//! corruption error, never a panic.

use std::sync::Arc;

use bytes::Bytes;

use crate::coding::{decode_varint, put_u32, put_varint, u32_at};
use crate::error::CorruptionKind;
use crate::types::{TRAILER_LEN, compare_internal};

/// Builds one block.
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    counter: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    pub(crate) fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            restart_interval,
            counter: 0,
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Adds an entry; keys must arrive in increasing internal-key order.
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(self.entries == 0 || compare_internal(&self.last_key, key).is_lt());
        let shared = if self.counter < self.restart_interval {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.counter += 1;
        self.entries += 1;
    }

    pub(crate) fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Finishes the block and resets the builder.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for &r in &self.restarts {
            put_u32(&mut out, r);
        }
        put_u32(&mut out, self.restarts.len() as u32);
        self.restarts = vec![0];
        self.counter = 0;
        self.entries = 0;
        self.last_key.clear();
        out
    }
}

/// A parsed, immutable block.
#[derive(Debug)]
pub(crate) struct Block {
    data: Bytes,
    /// Offset where the restart array starts (the end of the entries).
    restarts_at: usize,
    num_restarts: usize,
}

impl Block {
    pub(crate) fn parse(data: Bytes) -> Result<Self, CorruptionKind> {
        let n = data.len();
        let num_restarts = u32_at(&data, n.wrapping_sub(4))
            .ok_or(CorruptionKind::Truncated("block trailer"))? as usize;
        let restarts_bytes = num_restarts
            .checked_mul(4)
            .and_then(|b| b.checked_add(4))
            .filter(|&b| b <= n && num_restarts > 0)
            .ok_or(CorruptionKind::Malformed("restart count"))?;
        let restarts_at = n - restarts_bytes;
        let block = Block {
            data,
            restarts_at,
            num_restarts,
        };
        for i in 0..num_restarts {
            if block.restart(i) > restarts_at {
                return Err(CorruptionKind::Malformed("restart offset"));
            }
        }
        Ok(block)
    }

    fn restart(&self, i: usize) -> usize {
        u32_at(&self.data, self.restarts_at + 4 * i).unwrap_or(u32::MAX) as usize
    }

    pub(crate) fn size(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn iter(self: &Arc<Self>) -> BlockIter {
        BlockIter {
            block: Arc::clone(self),
            key: Vec::new(),
            value: (0, 0),
            next_offset: 0,
            valid: false,
            error: None,
        }
    }
}

/// An iterator over one block.
pub(crate) struct BlockIter {
    block: Arc<Block>,
    key: Vec<u8>,
    value: (usize, usize),
    next_offset: usize,
    valid: bool,
    error: Option<CorruptionKind>,
}

impl BlockIter {
    pub(crate) fn valid(&self) -> bool {
        self.valid
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn value(&self) -> &[u8] {
        &self.block.data[self.value.0..self.value.1]
    }

    pub(crate) fn value_bytes(&self) -> Bytes {
        self.block.data.slice(self.value.0..self.value.1)
    }

    pub(crate) fn take_error(&mut self) -> Option<CorruptionKind> {
        self.error.take()
    }

    /// Decodes the entry at `next_offset`; with `restart` the key must not share a prefix.
    fn decode_next(&mut self) -> bool {
        let at = self.next_offset;
        if at >= self.block.restarts_at {
            self.valid = false;
            return false;
        }
        match self.decode_at(at) {
            Ok(()) => {
                self.valid = true;
                true
            }
            Err(e) => {
                self.error = Some(e);
                self.valid = false;
                false
            }
        }
    }

    fn decode_at(&mut self, at: usize) -> Result<(), CorruptionKind> {
        let bad = CorruptionKind::Malformed("block entry");
        let data = &self.block.data[..self.block.restarts_at];
        let mut p = at;
        let mut field = || -> Result<usize, CorruptionKind> {
            let (v, n) = decode_varint(data.get(p..).ok_or(bad.clone())?).ok_or(bad.clone())?;
            p += n;
            usize::try_from(v).map_err(|_| bad.clone())
        };
        let shared = field()?;
        let unshared = field()?;
        let value_len = field()?;
        if shared > self.key.len() {
            return Err(bad);
        }
        let key_end = p.checked_add(unshared).ok_or(bad.clone())?;
        let value_end = key_end.checked_add(value_len).ok_or(bad.clone())?;
        if value_end > data.len() || shared + unshared < TRAILER_LEN {
            return Err(bad);
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(&data[p..key_end]);
        self.value = (key_end, value_end);
        self.next_offset = value_end;
        Ok(())
    }

    pub(crate) fn seek_to_first(&mut self) {
        self.key.clear();
        self.next_offset = 0;
        self.decode_next();
    }

    pub(crate) fn next(&mut self) {
        if self.valid {
            self.decode_next();
        }
    }

    /// Positions at the first entry whose key is at or after `target`.
    pub(crate) fn seek(&mut self, target: &[u8]) {
        // Binary search for the last restart point whose key is < target.
        let (mut lo, mut hi) = (0usize, self.block.num_restarts - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            self.key.clear();
            self.next_offset = self.block.restart(mid);
            if !self.decode_next() {
                return;
            }
            if compare_internal(&self.key, target).is_lt() {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        self.key.clear();
        self.next_offset = self.block.restart(lo);
        while self.decode_next() {
            if !compare_internal(&self.key, target).is_lt() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::internal_key;

    fn build(n: usize, interval: usize) -> (Arc<Block>, Vec<Vec<u8>>) {
        let mut b = BlockBuilder::new(interval);
        let keys: Vec<Vec<u8>> = (0..n)
            .map(|i| internal_key(format!("key{i:05}").as_bytes(), 7, 1))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            b.add(k, format!("v{i}").as_bytes());
        }
        let block = Block::parse(Bytes::from(b.finish())).unwrap();
        (Arc::new(block), keys)
    }

    #[test]
    fn iterates_and_seeks_every_key() {
        for interval in [1, 3, 16] {
            let (block, keys) = build(100, interval);
            let mut it = block.iter();
            it.seek_to_first();
            for (i, k) in keys.iter().enumerate() {
                assert!(it.valid());
                assert_eq!(it.key(), k.as_slice());
                assert_eq!(it.value(), format!("v{i}").as_bytes());
                it.next();
            }
            assert!(!it.valid());
            for (i, k) in keys.iter().enumerate() {
                it.seek(k);
                assert_eq!(it.key(), k.as_slice(), "interval {interval} key {i}");
            }
            it.seek(&internal_key(b"key00050x", 7, 1));
            assert_eq!(it.key(), keys[51].as_slice());
            it.seek(&internal_key(b"zzz", 7, 1));
            assert!(!it.valid());
            it.seek(&internal_key(b"a", 7, 1));
            assert_eq!(it.key(), keys[0].as_slice());
        }
    }

    #[test]
    fn malformed_blocks_are_errors_not_panics() {
        assert!(Block::parse(Bytes::from_static(&[1, 2])).is_err());
        assert!(Block::parse(Bytes::from_static(&[0xff, 0xff, 0xff, 0x7f])).is_err());
        let (block, _) = build(20, 4);
        let mut raw = block.data.to_vec();
        // Damage the first entry's lengths; iteration must report an error.
        raw[1] = 0xff;
        raw[2] = 0xff;
        let block = Arc::new(Block::parse(Bytes::from(raw)).unwrap());
        let mut it = block.iter();
        it.seek_to_first();
        let mut n = 0;
        while it.valid() && n < 100 {
            it.next();
            n += 1;
        }
        assert!(it.take_error().is_some());
    }
}
