//! SSTables: immutable sorted files of internal keys.
//!
//! # Format (version 1)
//!
//! ```text
//! +--------------------+
//! | data block 0       |  each block: contents | compression u8 | crc32c u32
//! | ...                |  (crc over contents and the compression byte)
//! | data block n       |
//! | filter block       |  bloom filter over user keys (see `bloom`), compression 0
//! | properties block   |  key range, counts, sequence range (see `Properties`)
//! | index block        |  a block whose keys are the last internal key of each data block
//! |                    |  and whose values are handles: offset varint | size varint
//! | footer (64 bytes)  |  index, filter, properties handles as u64 offset + u64 size,
//! |                    |  format_version u32, crc32c u32 of the preceding 52 bytes,
//! |                    |  magic u64
//! +--------------------+
//! ```
//!
//! All integers are little-endian. Data blocks hold about `block_bytes` of entries before
//! compression; a block is stored lz4-compressed only when that saves at least an eighth. A handle's
//! size counts the stored contents without the 5-byte block trailer. Readers check the magic,
//! the version and the footer checksum when a table is opened, and every block's checksum when it
//! is read; any mismatch is a corruption error naming the file and offset.

pub(crate) mod block;
pub(crate) mod bloom;
pub(crate) mod builder;
pub(crate) mod reader;

use crate::coding::{Reader, put_bytes, put_varint};
use crate::error::CorruptionKind;

pub(crate) const MAGIC: u64 = 0x4453_4b56_5354_4231; // "DSKVSTB1" read big-endian
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const FOOTER_LEN: usize = 64;
pub(crate) const BLOCK_TRAILER_LEN: usize = 5;

pub(crate) const COMPRESSION_NONE: u8 = 0;
pub(crate) const COMPRESSION_LZ4: u8 = 1;

/// Where a block lives in a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BlockHandle {
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

impl BlockHandle {
    pub(crate) fn encode_to(&self, buf: &mut Vec<u8>) {
        put_varint(buf, self.offset);
        put_varint(buf, self.size);
    }

    pub(crate) fn decode(buf: &[u8]) -> Option<Self> {
        let mut r = Reader::new(buf);
        Some(BlockHandle {
            offset: r.varint()?,
            size: r.varint()?,
        })
    }
}

/// Table properties, stored in the properties block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub num_entries: u64,
    pub num_deletes: u64,
    pub num_data_blocks: u64,
    pub raw_key_bytes: u64,
    pub raw_value_bytes: u64,
    pub min_seq: u64,
    pub max_seq: u64,
    /// Smallest and largest internal keys.
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
}

const PROPERTIES_VERSION: u64 = 1;

impl Properties {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_varint(&mut b, PROPERTIES_VERSION);
        for v in [
            self.num_entries,
            self.num_deletes,
            self.num_data_blocks,
            self.raw_key_bytes,
            self.raw_value_bytes,
            self.min_seq,
            self.max_seq,
        ] {
            put_varint(&mut b, v);
        }
        put_bytes(&mut b, &self.smallest);
        put_bytes(&mut b, &self.largest);
        b
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self, CorruptionKind> {
        let bad = CorruptionKind::Malformed("properties block");
        let mut r = Reader::new(buf);
        let version = r.varint().ok_or(bad.clone())?;
        if version != PROPERTIES_VERSION {
            return Err(CorruptionKind::UnsupportedVersion(version as u32));
        }
        let mut f = || r.varint().ok_or(bad.clone());
        let mut p = Properties {
            num_entries: f()?,
            num_deletes: f()?,
            num_data_blocks: f()?,
            raw_key_bytes: f()?,
            raw_value_bytes: f()?,
            min_seq: f()?,
            max_seq: f()?,
            ..Default::default()
        };
        p.smallest = r.bytes().ok_or(bad.clone())?.to_vec();
        p.largest = r.bytes().ok_or(bad)?.to_vec();
        Ok(p)
    }
}
