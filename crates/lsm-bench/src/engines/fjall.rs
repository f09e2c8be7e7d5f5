//! fjall 3 adapter: one `Database` with one keyspace.
//!
//! fjall writes every insert to its journal and hands it to the OS; a synced write is an
//! insert followed by `Database::persist(SyncData)` (fdatasync, like RocksDB's
//! `sync = true`). Concurrent synced writers each call `persist`, so any group commit
//! comes from fjall's journal lock, not from us.

use std::path::Path;

use anyhow::{Context, Result};
use fjall::config::{BloomConstructionPolicy, CompressionPolicy, FilterPolicy, FilterPolicyEntry};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::engine::{BenchEngine, EngineSettings};

/// Name of the single keyspace the benchmark writes into.
const KEYSPACE: &str = "bench";

pub struct FjallEngine {
    db: Database,
    keyspace: Keyspace,
}

impl FjallEngine {
    pub fn open(path: &Path, settings: &EngineSettings) -> Result<Self> {
        let db = Database::builder(path)
            .cache_size(settings.cache_bytes as u64)
            .open()
            .with_context(|| format!("opening fjall at {}", path.display()))?;
        // fjall stores bits per key as f32.
        let bits = settings.bloom_bits_per_key as f32;
        let memtable_bytes = settings.memtable_bytes as u64;
        let keyspace = db
            .keyspace(KEYSPACE, || {
                KeyspaceCreateOptions::default()
                    .max_memtable_size(memtable_bytes)
                    .filter_policy(FilterPolicy::all(FilterPolicyEntry::Bloom(
                        BloomConstructionPolicy::BitsPerKey(bits),
                    )))
                    .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
            })
            .context("opening fjall keyspace")?;
        Ok(Self { db, keyspace })
    }
}

impl BenchEngine for FjallEngine {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.keyspace.insert(key, value)?;
        if sync {
            self.db.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self.keyspace.get(key)? {
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
        for guard in self.keyspace.range(start..).take(n) {
            let (key, value) = guard.into_inner()?;
            bytes += key.len() + value.len();
            read += 1;
        }
        std::hint::black_box(bytes);
        Ok(read)
    }

    fn flush(&self) -> Result<()> {
        self.keyspace.rotate_memtable_and_wait()?;
        Ok(())
    }

    fn wait_for_compactions(&self) -> Result<()> {
        super::wait_until_idle("fjall", || {
            Ok(self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0)
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}
