//! RocksDB adapter, through the `rocksdb` crate linked against the system librocksdb.
//!
//! Settings mirror the others: a shared LRU block cache, a 64 MiB write buffer, a full
//! (not block-based) Bloom filter at 10 bits per key and LZ4 on every level. The WAL is
//! on; `sync = true` writes use RocksDB's own group commit, which is the point of the
//! `fillsync-32` workload.

use std::path::Path;

use anyhow::{Context, Result};
use rocksdb::{BlockBasedOptions, Cache, DB, DBCompressionType, Options, WriteOptions};

use crate::engine::{BenchEngine, EngineSettings};

/// Properties that are non-zero while RocksDB still has background work queued or running.
const BUSY_PROPERTIES: [&str; 4] = [
    "rocksdb.mem-table-flush-pending",
    "rocksdb.num-running-flushes",
    "rocksdb.compaction-pending",
    "rocksdb.num-running-compactions",
];

pub struct RocksDbEngine {
    db: DB,
    plain: WriteOptions,
    synced: WriteOptions,
    // Held so the cache outlives every table reader that points at it.
    _cache: Cache,
}

impl RocksDbEngine {
    pub fn open(path: &Path, settings: &EngineSettings) -> Result<Self> {
        let cache = Cache::new_lru_cache(settings.cache_bytes).context("creating RocksDB cache")?;
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(settings.bloom_bits_per_key, false);

        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_write_buffer_size(settings.memtable_bytes);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_block_based_table_factory(&table);
        let db = DB::open(&opts, path)
            .with_context(|| format!("opening RocksDB at {}", path.display()))?;

        let plain = WriteOptions::default();
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        Ok(Self {
            db,
            plain,
            synced,
            _cache: cache,
        })
    }
}

impl BenchEngine for RocksDbEngine {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        let opts = if sync { &self.synced } else { &self.plain };
        self.db.put_opt(key, value, opts)?;
        Ok(())
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.db.get_pinned(key)? {
            Some(value) => {
                out.extend_from_slice(&value);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan(&self, start: &[u8], n: usize) -> Result<usize> {
        let mut iter = self.db.raw_iterator();
        iter.seek(start);
        let mut read = 0;
        let mut bytes = 0usize;
        while read < n {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else {
                break;
            };
            bytes += key.len() + value.len();
            read += 1;
            iter.next();
        }
        iter.status()?;
        std::hint::black_box(bytes);
        Ok(read)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn wait_for_compactions(&self) -> Result<()> {
        super::wait_until_idle("rocksdb", || {
            for property in BUSY_PROPERTIES {
                if self.db.property_int_value(property)?.unwrap_or(0) > 0 {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }
}
