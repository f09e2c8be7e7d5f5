//! The seam every benchmarked engine sits behind.
//!
//! Each adapter in `engines/` opens its engine with the same [`EngineSettings`] and maps
//! the five operations the workloads need onto it. The trait is object safe and
//! `Send + Sync`, so workload threads share one engine by reference, the way a server
//! would share its storage engine.
//!
//! What "equal settings" means here, for every engine:
//! - one block cache of `cache_bytes`, shared by all of the engine's files;
//! - a 64 MiB memtable (write buffer) before a flush to an SSTable;
//! - Bloom filters with 10 bits per key on every level;
//! - LZ4 for data blocks on every level, set explicitly for each engine (fjall's
//!   default leaves L0 and L1 raw, RocksDB's default is Snappy);
//! - the write-ahead log on, written to the OS on every put and synced to disk only
//!   when a workload asks (`sync = true`), with fdatasync-class syncs where the engine
//!   lets us choose.
//!
//! Everything else (compaction strategy, level sizes, block size, background threads)
//! is left at each engine's default.

use std::path::Path;

use anyhow::Result;
use clap::ValueEnum;

/// Settings applied identically to every engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    /// Block cache capacity in bytes.
    pub cache_bytes: usize,
    /// Memtable (write buffer) size in bytes.
    pub memtable_bytes: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: f64,
}

/// Memtable size every engine gets: RocksDB's `write_buffer_size` and fjall's
/// `max_memtable_size` both take the same number.
pub const MEMTABLE_BYTES: usize = 64 << 20;

/// Bloom filter density every engine gets (about 1 % false positives).
pub const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// The compression every engine uses for data blocks, for the report.
pub const COMPRESSION: &str = "lz4";

/// A storage engine under test.
///
/// Adapters must do the work a real caller would: `get` copies the value out and `scan`
/// touches every key and value it passes, so no engine wins by being lazy.
pub trait BenchEngine: Send + Sync {
    /// Short name used in tables: `distkv`, `fjall`, `rocksdb`.
    fn name(&self) -> &'static str;

    /// Writes one key. With `sync` the write is durable (WAL synced) before returning.
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()>;

    /// Reads one key, copying its value into `out` (cleared first). Returns whether the
    /// key was found.
    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool>;

    /// Seeks to the first key `>= start` and reads up to `n` entries in order. Returns
    /// how many entries were read.
    fn scan(&self, start: &[u8], n: usize) -> Result<usize>;

    /// Writes the memtable out to an SSTable and waits for that flush.
    fn flush(&self) -> Result<()>;

    /// Blocks until background flushes and compactions are idle, so the disk footprint
    /// and the bytes written can be measured at rest.
    fn wait_for_compactions(&self) -> Result<()>;

    /// The engine's own write-amplification figure, if it keeps one.
    fn engine_write_amplification(&self) -> Option<f64> {
        None
    }

    /// Closes the engine, releasing its files.
    fn close(self: Box<Self>) -> Result<()>;
}

/// The engines this binary knows; which of them are compiled in depends on features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum EngineKind {
    /// distkv-lsm, our engine (feature `distkv`, on by default).
    Distkv,
    /// fjall 3, a pure-Rust LSM engine.
    Fjall,
    /// RocksDB through the system librocksdb (feature `rocksdb`).
    Rocksdb,
}

impl EngineKind {
    /// Every engine, in report order: ours first.
    pub const ALL: [EngineKind; 3] = [EngineKind::Distkv, EngineKind::Fjall, EngineKind::Rocksdb];

    /// The name used for directories, tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Distkv => "distkv",
            EngineKind::Fjall => "fjall",
            EngineKind::Rocksdb => "rocksdb",
        }
    }

    /// Whether this binary was built with the engine.
    pub fn is_compiled_in(self) -> bool {
        match self {
            EngineKind::Distkv => cfg!(feature = "distkv"),
            EngineKind::Fjall => true,
            EngineKind::Rocksdb => cfg!(feature = "rocksdb"),
        }
    }

    /// The cargo feature that brings the engine in, for error messages.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            EngineKind::Distkv => Some("distkv"),
            EngineKind::Fjall => None,
            EngineKind::Rocksdb => Some("rocksdb"),
        }
    }

    /// Opens (creating if needed) an engine of this kind at `path`.
    pub fn open(self, path: &Path, settings: &EngineSettings) -> Result<Box<dyn BenchEngine>> {
        match self {
            #[cfg(feature = "distkv")]
            EngineKind::Distkv => Ok(Box::new(crate::engines::distkv::DistkvEngine::open(
                path, settings,
            )?)),
            EngineKind::Fjall => Ok(Box::new(crate::engines::fjall::FjallEngine::open(
                path, settings,
            )?)),
            #[cfg(feature = "rocksdb")]
            EngineKind::Rocksdb => Ok(Box::new(crate::engines::rocksdb::RocksDbEngine::open(
                path, settings,
            )?)),
            #[allow(unreachable_patterns)]
            other => anyhow::bail!(
                "engine {} is not compiled in: rebuild with --features {}",
                other.name(),
                other.feature().unwrap_or("?")
            ),
        }
    }
}
