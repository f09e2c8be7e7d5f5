//! Reads table files: point lookups through the bloom filter and the block cache, and iterators.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::block::{Block, BlockIter};
use super::{
    BLOCK_TRAILER_LEN, BlockHandle, COMPRESSION_LZ4, COMPRESSION_NONE, FOOTER_LEN, FORMAT_VERSION,
    MAGIC, Properties, bloom,
};
use crate::cache::BlockCache;
use crate::coding::{checksum_matches, u32_at, u64_at};
use crate::db::Probe;
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::iter::InternalIterator;
use crate::stats::StatsInner;
use crate::types::{self, KIND_SEEK, SeqNo, compare_internal};

/// What every open table shares: the block cache and the statistics.
#[derive(Clone)]
pub(crate) struct TableContext {
    pub(crate) cache: Arc<BlockCache>,
    pub(crate) stats: Arc<StatsInner>,
}

/// Memory an index entry takes beside its key: the handle and the vector's bookkeeping.
const INDEX_ENTRY_OVERHEAD: usize = 32;

/// An open, immutable table file.
///
/// When the table has been removed from the live version (`mark_obsolete`), the file is deleted
/// as the last reference goes away, so iterators and lookups in flight never lose their file.
pub(crate) struct Table {
    number: u64,
    path: PathBuf,
    file: File,
    file_size: u64,
    index: Vec<(Vec<u8>, BlockHandle)>,
    filter: Vec<u8>,
    /// Bytes the index and filter hold in memory (computed once).
    pinned: usize,
    props: Properties,
    ctx: TableContext,
    obsolete: AtomicBool,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("number", &self.number)
            .field("file_size", &self.file_size)
            .finish()
    }
}

impl Table {
    pub(crate) fn open(path: &Path, number: u64, ctx: TableContext) -> Result<Table> {
        let file = File::open(path).at(path)?;
        let file_size = file.metadata().at(path)?.len();
        let corrupt = |offset: u64, kind| Error::corruption(path, offset, kind);
        if file_size < FOOTER_LEN as u64 {
            return Err(corrupt(
                0,
                CorruptionKind::Truncated("file shorter than a footer"),
            ));
        }
        let footer_at = file_size - FOOTER_LEN as u64;
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, footer_at).at(path)?;
        if u64_at(&footer, 56) != Some(MAGIC) {
            return Err(corrupt(footer_at + 56, CorruptionKind::BadMagic));
        }
        let stored = u32_at(&footer, 52).unwrap_or(0);
        let computed = crc32c::crc32c(&footer[..52]);
        if !checksum_matches(stored, computed) {
            return Err(corrupt(
                footer_at,
                CorruptionKind::ChecksumMismatch { stored, computed },
            ));
        }
        let version = u32_at(&footer, 48).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(corrupt(
                footer_at + 48,
                CorruptionKind::UnsupportedVersion(version),
            ));
        }
        let handle = |at: usize| BlockHandle {
            offset: u64_at(&footer, at).unwrap_or(0),
            size: u64_at(&footer, at + 8).unwrap_or(0),
        };
        let (index_h, filter_h, props_h) = (handle(0), handle(16), handle(32));
        for h in [index_h, filter_h, props_h] {
            let end = h
                .size
                .checked_add(BLOCK_TRAILER_LEN as u64)
                .and_then(|n| n.checked_add(h.offset));
            if end.is_none_or(|end| end > footer_at) {
                return Err(corrupt(
                    footer_at,
                    CorruptionKind::Malformed("block handle"),
                ));
            }
        }
        let mut table = Table {
            number,
            path: path.to_path_buf(),
            file,
            file_size,
            index: Vec::new(),
            filter: Vec::new(),
            pinned: 0,
            props: Properties::default(),
            ctx,
            obsolete: AtomicBool::new(false),
        };
        let props = table.read_raw(props_h)?;
        table.props = Properties::decode(&props).map_err(|k| corrupt(props_h.offset, k))?;
        table.filter = table.read_raw(filter_h)?.to_vec();
        let index = Arc::new(
            Block::parse(table.read_raw(index_h)?).map_err(|k| corrupt(index_h.offset, k))?,
        );
        let mut it = index.iter();
        it.seek_to_first();
        while it.valid() {
            let h = BlockHandle::decode(it.value())
                .ok_or_else(|| corrupt(index_h.offset, CorruptionKind::Malformed("index entry")))?;
            table.index.push((it.key().to_vec(), h));
            it.next();
        }
        if let Some(k) = it.take_error() {
            return Err(corrupt(index_h.offset, k));
        }
        table.pinned = table.filter.len()
            + table
                .index
                .iter()
                .map(|(k, _)| k.len() + INDEX_ENTRY_OVERHEAD)
                .sum::<usize>();
        Ok(table)
    }

    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    pub(crate) fn file_size(&self) -> u64 {
        self.file_size
    }

    pub(crate) fn properties(&self) -> &Properties {
        &self.props
    }

    pub(crate) fn smallest(&self) -> &[u8] {
        &self.props.smallest
    }

    pub(crate) fn largest(&self) -> &[u8] {
        &self.props.largest
    }

    /// Memory held by the index and filter.
    pub(crate) fn pinned_bytes(&self) -> usize {
        self.pinned
    }

    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::SeqCst);
    }

    /// Reads a block's stored bytes, checks its checksum and decompresses it.
    fn read_raw(&self, h: BlockHandle) -> Result<Bytes> {
        let corrupt = |kind| Error::corruption(&self.path, h.offset, kind);
        let len = usize::try_from(h.size)
            .ok()
            .and_then(|s| s.checked_add(BLOCK_TRAILER_LEN))
            .filter(|&len| {
                h.offset
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= self.file_size)
            })
            .ok_or_else(|| corrupt(CorruptionKind::Malformed("block handle")))?;
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, h.offset).at(&self.path)?;
        self.ctx
            .stats
            .table_bytes_read
            .fetch_add(len as u64, Ordering::Relaxed);
        let n = h.size as usize;
        let kind = buf[n];
        let stored = u32_at(&buf, n + 1).unwrap_or(0);
        let computed = crc32c::crc32c(&buf[..n + 1]);
        if !checksum_matches(stored, computed) {
            return Err(corrupt(CorruptionKind::ChecksumMismatch {
                stored,
                computed,
            }));
        }
        buf.truncate(n);
        match kind {
            COMPRESSION_NONE => Ok(Bytes::from(buf)),
            COMPRESSION_LZ4 => decompress_lz4(&buf)
                .map(Bytes::from)
                .map_err(|_| corrupt(CorruptionKind::Malformed("lz4 block"))),
            _ => Err(corrupt(CorruptionKind::Malformed("compression type"))),
        }
    }

    /// Reads data block `i` through the block cache.
    fn data_block(&self, i: usize, fill_cache: bool) -> Result<Arc<Block>> {
        let h = self.index[i].1;
        let cache_key = (self.number, h.offset);
        if let Some(b) = self.ctx.cache.get(&cache_key) {
            self.ctx.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(b);
        }
        self.ctx.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
        let raw = self.read_raw(h)?;
        let block =
            Arc::new(Block::parse(raw).map_err(|k| Error::corruption(&self.path, h.offset, k))?);
        if fill_cache {
            self.ctx.cache.insert(cache_key, Arc::clone(&block));
        }
        Ok(block)
    }

    /// True when `key` lies within this table's user-key range.
    pub(crate) fn covers(&self, key: &[u8]) -> bool {
        key >= types::user_key(&self.props.smallest) && key <= types::user_key(&self.props.largest)
    }

    /// The newest entry of `key` at or below `snapshot`, if this table has one. Without `io`,
    /// a data block missing from the block cache is not read: [`Probe::NeedsIo`].
    pub(crate) fn get(&self, key: &[u8], hash: u64, snapshot: SeqNo, io: bool) -> Result<Probe> {
        let filtered = !self.filter.is_empty();
        if filtered {
            self.ctx.stats.bloom_checks.fetch_add(1, Ordering::Relaxed);
            if !bloom::may_contain(&self.filter, hash) {
                self.ctx
                    .stats
                    .bloom_negatives
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(Probe::Absent);
            }
        }
        let target = types::internal_key(key, snapshot, KIND_SEEK);
        let i = self
            .index
            .partition_point(|(last, _)| compare_internal(last, &target).is_lt());
        let found = if i < self.index.len() {
            let block = if io {
                self.data_block(i, true)?
            } else {
                match self.cached_block(i) {
                    Some(b) => b,
                    None => return Ok(Probe::NeedsIo),
                }
            };
            let mut it = block.iter();
            it.seek(&target);
            if let Some(k) = it.take_error() {
                return Err(Error::corruption(&self.path, self.index[i].1.offset, k));
            }
            if it.valid() && types::user_key(it.key()) == key {
                let kind = types::kind_of(it.key()).ok_or_else(|| {
                    Error::corruption(
                        &self.path,
                        self.index[i].1.offset,
                        CorruptionKind::Malformed("entry kind"),
                    )
                })?;
                Some((kind, it.value_bytes()))
            } else {
                None
            }
        } else {
            None
        };
        if filtered && found.is_none() && !self.has_key_any_version(key, io) {
            self.ctx
                .stats
                .bloom_false_positives
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(match found {
            Some((kind, v)) => Probe::Found(kind, v),
            None => Probe::Absent,
        })
    }

    /// Data block `i` if the block cache holds it.
    fn cached_block(&self, i: usize) -> Option<Arc<Block>> {
        let h = self.index[i].1;
        let b = self.ctx.cache.get(&(self.number, h.offset))?;
        self.ctx.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(b)
    }

    /// Whether the key exists at any version (only asked after a bloom hit found nothing visible;
    /// an invisible newer version is not a false positive).
    fn has_key_any_version(&self, key: &[u8], io: bool) -> bool {
        let target = types::internal_key(key, types::MAX_SEQNO, KIND_SEEK);
        let i = self
            .index
            .partition_point(|(last, _)| compare_internal(last, &target).is_lt());
        if i >= self.index.len() {
            return false;
        }
        let block = if io {
            match self.data_block(i, true) {
                Ok(b) => b,
                Err(_) => return false,
            }
        } else {
            // Not worth a disk read for a statistic: count it as a true positive.
            match self.cached_block(i) {
                Some(b) => b,
                None => return true,
            }
        };
        let mut it = block.iter();
        it.seek(&target);
        it.valid() && types::user_key(it.key()) == key
    }

    pub(crate) fn iter(self: &Arc<Self>, fill_cache: bool) -> TableIter {
        TableIter {
            table: Arc::clone(self),
            index_pos: 0,
            block: None,
            error: None,
            fill_cache,
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::SeqCst) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "could not delete obsolete table");
            } else {
                self.ctx
                    .stats
                    .tables_deleted
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Most bytes one byte of LZ4 block data can stand for: a match's length grows by at most 255
/// per byte of its length extension.
const LZ4_MAX_EXPANSION: usize = 255;

/// An LZ4 block with its uncompressed size prepended (u32, little-endian), as the builder
/// stores it. The size is checked against what the compressed bytes can possibly expand to
/// before anything is allocated for it, so a damaged size is an error, not a huge allocation.
fn decompress_lz4(stored: &[u8]) -> std::result::Result<Vec<u8>, ()> {
    let size = u32_at(stored, 0).ok_or(())? as usize;
    let compressed = &stored[4..];
    if size > compressed.len().saturating_mul(LZ4_MAX_EXPANSION) {
        return Err(());
    }
    lz4_flex::block::decompress(compressed, size).map_err(drop)
}

/// Iterates a table's entries in order.
pub(crate) struct TableIter {
    table: Arc<Table>,
    index_pos: usize,
    block: Option<BlockIter>,
    error: Option<Error>,
    fill_cache: bool,
}

impl TableIter {
    fn load_block(&mut self) -> bool {
        self.block = None;
        if self.index_pos >= self.table.index.len() {
            return false;
        }
        match self.table.data_block(self.index_pos, self.fill_cache) {
            Ok(b) => {
                self.block = Some(b.iter());
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// Moves past exhausted blocks; records a block's decode error.
    fn settle(&mut self) {
        loop {
            let Some(b) = &mut self.block else { return };
            if b.valid() {
                return;
            }
            if let Some(k) = b.take_error() {
                let offset = self.table.index[self.index_pos].1.offset;
                self.error = Some(Error::corruption(&self.table.path, offset, k));
                self.block = None;
                return;
            }
            self.index_pos += 1;
            if !self.load_block() {
                return;
            }
            if let Some(b) = &mut self.block {
                b.seek_to_first();
            }
        }
    }
}

impl InternalIterator for TableIter {
    fn valid(&self) -> bool {
        self.block.as_ref().is_some_and(|b| b.valid())
    }

    fn seek_to_first(&mut self) {
        self.index_pos = 0;
        if self.load_block()
            && let Some(b) = &mut self.block
        {
            b.seek_to_first();
        }
        self.settle();
    }

    fn seek(&mut self, target: &[u8]) {
        self.index_pos = self
            .table
            .index
            .partition_point(|(last, _)| compare_internal(last, target).is_lt());
        if self.load_block()
            && let Some(b) = &mut self.block
        {
            b.seek(target);
        }
        self.settle();
    }

    fn next(&mut self) {
        if let Some(b) = &mut self.block {
            b.next();
        }
        self.settle();
    }

    fn key(&self) -> &[u8] {
        self.block.as_ref().map_or(&[], |b| b.key())
    }

    fn value(&self) -> &[u8] {
        self.block.as_ref().map_or(&[], |b| b.value())
    }

    fn value_bytes(&self) -> Bytes {
        self.block
            .as_ref()
            .map_or_else(Bytes::new, |b| b.value_bytes())
    }

    fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

/// Iterates a sorted run of non-overlapping tables (one level), opening one table at a time.
pub(crate) struct LevelIter {
    tables: Vec<Arc<Table>>,
    pos: usize,
    current: Option<TableIter>,
    error: Option<Error>,
    fill_cache: bool,
}

impl LevelIter {
    pub(crate) fn new(tables: Vec<Arc<Table>>, fill_cache: bool) -> Self {
        LevelIter {
            tables,
            pos: 0,
            current: None,
            error: None,
            fill_cache,
        }
    }

    fn open(&mut self) {
        self.current = self.tables.get(self.pos).map(|t| t.iter(self.fill_cache));
    }

    fn settle(&mut self) {
        while let Some(cur) = &mut self.current {
            if cur.valid() {
                return;
            }
            if let Some(e) = cur.take_error() {
                self.error = Some(e);
                self.current = None;
                return;
            }
            self.pos += 1;
            self.open();
            if let Some(c) = &mut self.current {
                c.seek_to_first();
            }
        }
    }
}

impl InternalIterator for LevelIter {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.valid())
    }

    fn seek_to_first(&mut self) {
        self.pos = 0;
        self.open();
        if let Some(c) = &mut self.current {
            c.seek_to_first();
        }
        self.settle();
    }

    fn seek(&mut self, target: &[u8]) {
        self.pos = self
            .tables
            .partition_point(|t| compare_internal(t.largest(), target).is_lt());
        self.open();
        if let Some(c) = &mut self.current {
            c.seek(target);
        }
        self.settle();
    }

    fn next(&mut self) {
        if let Some(c) = &mut self.current {
            c.next();
        }
        self.settle();
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.key())
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.value())
    }

    fn value_bytes(&self) -> Bytes {
        self.current
            .as_ref()
            .map_or_else(Bytes::new, |c| c.value_bytes())
    }

    fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lz4_blocks_decompress_and_a_damaged_size_allocates_nothing() {
        let raw = vec![7u8; 10_000];
        let stored = lz4_flex::block::compress_prepend_size(&raw);
        assert!(stored.len() < 100, "a run compresses well");
        assert_eq!(decompress_lz4(&stored), Ok(raw));
        // Four bytes that claim 4 GiB: refused before any allocation.
        let mut huge = stored.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decompress_lz4(&huge), Err(()));
        assert_eq!(decompress_lz4(&[1, 2]), Err(()));
    }
}
