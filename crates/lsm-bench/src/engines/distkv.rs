//! distkv-lsm adapter.
//!
//! The database's own sync policy is `Never`: a put reaches the WAL and the OS, and
//! only puts with `sync = true` (the `fillsync-*` workloads) are made durable before
//! returning, through `WriteOptions { sync: true }`. Compression is set to LZ4 and the
//! Bloom filter to bits per key explicitly, so a change of the engine's defaults does
//! not quietly change the comparison.

use std::path::Path;

use anyhow::{Context, Result};
use distkv_lsm::{BloomConfig, Compression, Db, Options, SyncPolicy, WriteOptions};

use crate::engine::{BenchEngine, EngineSettings};

pub struct DistkvEngine {
    db: Db,
}

impl DistkvEngine {
    pub fn open(path: &Path, settings: &EngineSettings) -> Result<Self> {
        let defaults = Options::default();
        // The memory ceiling must cover memtables plus cache: grow it with a large
        // --cache-mb, keeping the default headroom for indexes and filters.
        let headroom = defaults
            .max_memory
            .saturating_sub(defaults.max_memtable_memory + defaults.block_cache_bytes);
        let max_memory = defaults.max_memory.max(
            defaults
                .max_memtable_memory
                .saturating_add(settings.cache_bytes)
                .saturating_add(headroom),
        );
        let opts = Options {
            block_cache_bytes: settings.cache_bytes,
            memtable_bytes: settings.memtable_bytes,
            bloom: BloomConfig::BitsPerKey(settings.bloom_bits_per_key),
            compression: Compression::Lz4,
            sync: SyncPolicy::Never,
            max_memory,
            ..defaults
        };
        let db = Db::open(path, opts)
            .with_context(|| format!("opening distkv-lsm at {}", path.display()))?;
        Ok(Self { db })
    }
}

impl BenchEngine for DistkvEngine {
    fn name(&self) -> &'static str {
        "distkv"
    }

    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        if sync {
            self.db.put_opt(key, value, &WriteOptions { sync: true })?;
        } else {
            self.db.put(key, value)?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.db.get(key)? {
            Some(value) => {
                out.extend_from_slice(&value);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan(&self, start: &[u8], n: usize) -> Result<usize> {
        let mut read = 0;
        let mut bytes = 0usize;
        for item in self.db.range(start..)?.take(n) {
            let (key, value): (bytes::Bytes, bytes::Bytes) = item?;
            bytes += key.len() + value.len();
            read += 1;
        }
        std::hint::black_box(bytes);
        Ok(read)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn wait_for_compactions(&self) -> Result<()> {
        self.db.wait_for_compactions()?;
        Ok(())
    }

    fn engine_write_amplification(&self) -> Option<f64> {
        Some(self.db.stats().write_amplification())
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.db.close()?;
        Ok(())
    }
}
