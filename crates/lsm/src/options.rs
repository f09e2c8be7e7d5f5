//! Options of an engine instance, with the defaults of the DistKV README.
//!
//! | option | default |
//! |---|---|
//! | `memtable_bytes` (flush threshold) | 64 MiB |
//! | `max_memtable_memory` (active + immutable memtables) | 512 MiB |
//! | `block_cache_bytes` | 512 MiB |
//! | `max_memory` (memtables + cache + table indexes and filters; the cache gives way) | 2 GiB |
//! | `sync` | every commit |
//! | `compaction` | leveled: L0 trigger 4 files, 7 levels, 10x per level |
//! | `bloom` | 1% false-positive rate |
//! | `tombstone_ttl` | 3 hours |
//! | `max_key_bytes` / `max_value_bytes` / `max_batch_bytes` | 64 KiB / 16 MiB / 64 MiB |

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// The hard ceiling for `max_key_bytes`.
pub const MAX_KEY_BYTES: usize = 1 << 20;
/// The hard ceiling for `max_value_bytes`.
pub const MAX_VALUE_BYTES: usize = 256 << 20;
/// The hard ceiling for `max_batch_bytes` (a WAL record length is a u32).
pub const MAX_BATCH_BYTES: usize = 1 << 30;

const MIB: usize = 1 << 20;

/// When acknowledged writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fdatasync before each write is acknowledged; concurrent writers share one sync.
    EveryCommit,
    /// fdatasync at most this often; a crash loses at most this window of writes.
    Interval(Duration),
    /// Leave syncing to the OS; a crash of the machine (not the process) may lose recent writes.
    Never,
}

/// How SSTables are merged in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionStyle {
    /// LevelDB/RocksDB style: L0 of overlapping flushes, then levels of non-overlapping runs each
    /// `level_size_multiplier` times larger than the one above.
    Leveled,
    /// Cassandra style: every flush is a run in L0; runs of similar size are merged together.
    SizeTiered,
    /// When L0 reaches the trigger, merge all of L0 and L1 into a new L1.
    Simple,
}

/// How the bloom filter of each table is sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BloomConfig {
    /// Size for this false-positive rate (0 < rate < 1).
    FalsePositiveRate(f64),
    /// This many bits per key.
    BitsPerKey(f64),
    /// No filter.
    Disabled,
}

/// Block compression of SSTables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// LZ4 block compression; a block is stored raw when compression saves less than 1/8.
    Lz4,
}

/// A source of wall-clock time in milliseconds, injectable for tests (tombstone TTL).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_millis(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    pub fn new(millis: u64) -> Self {
        ManualClock(std::sync::atomic::AtomicU64::new(millis))
    }
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Options for [`crate::Db::open`].
#[derive(Debug, Clone)]
pub struct Options {
    /// A memtable becomes immutable and is flushed once it holds this many bytes.
    pub memtable_bytes: usize,
    /// Active plus immutable memtables; writers stall when flushes fall this far behind.
    pub max_memtable_memory: usize,
    /// Capacity of the block cache in bytes.
    pub block_cache_bytes: usize,
    /// Ceiling for memtables, block cache, and the indexes and filters of open tables together.
    /// Memtables and cache must fit at open; as the tables' indexes and filters grow, the
    /// block cache shrinks to keep the total within it (down to 8 MiB; past that the total is
    /// over, which the statistics show and a warning says).
    pub max_memory: usize,
    pub sync: SyncPolicy,
    pub compaction: CompactionStyle,
    /// Number of L0 files that triggers a compaction (leveled, simple) or the minimum number of
    /// similar runs merged together (size-tiered).
    pub l0_compaction_trigger: usize,
    /// L0 file count at which each write is delayed by a millisecond.
    pub l0_slowdown_trigger: usize,
    /// L0 file count at which writes stop until compaction catches up.
    pub l0_stop_trigger: usize,
    /// Number of levels, L0 included.
    pub num_levels: usize,
    /// Target size of L1; each deeper level is `level_size_multiplier` times larger.
    pub level1_bytes: u64,
    pub level_size_multiplier: u64,
    /// Compaction output is cut into files of about this size.
    pub target_file_bytes: u64,
    /// Uncompressed size of a data block.
    pub block_bytes: usize,
    /// Keys between restart points inside a block.
    pub block_restart_interval: usize,
    pub compression: Compression,
    pub bloom: BloomConfig,
    /// Tombstones younger than this survive compaction, even at the bottom level, so that
    /// replicas that missed the delete can learn it (anti-entropy) before it disappears.
    pub tombstone_ttl: Duration,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_batch_bytes: usize,
    /// Obsolete WAL files kept for reuse when every commit syncs: overwriting a written file syncs
    /// faster than appending, since the file size (metadata) does not change.
    pub wal_recycle_files: usize,
    /// Time source for tombstone ages.
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memtable_bytes: 64 * MIB,
            max_memtable_memory: 512 * MIB,
            block_cache_bytes: 512 * MIB,
            max_memory: 2048 * MIB,
            sync: SyncPolicy::EveryCommit,
            compaction: CompactionStyle::Leveled,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 20,
            l0_stop_trigger: 36,
            num_levels: 7,
            level1_bytes: 256 * MIB as u64,
            level_size_multiplier: 10,
            target_file_bytes: 64 * MIB as u64,
            block_bytes: 4096,
            block_restart_interval: 16,
            compression: Compression::Lz4,
            bloom: BloomConfig::FalsePositiveRate(0.01),
            tombstone_ttl: Duration::from_secs(3 * 3600),
            max_key_bytes: 64 * 1024,
            max_value_bytes: 16 * MIB,
            max_batch_bytes: 64 * MIB,
            wal_recycle_files: 2,
            clock: Arc::new(SystemClock),
        }
    }
}

impl Options {
    /// Checks that the options are usable together.
    pub fn validate(&self) -> Result<()> {
        let bad = |what| Err(Error::InvalidOptions(what));
        if self.memtable_bytes < 4096 {
            return bad("memtable_bytes must be at least 4 KiB");
        }
        if self.max_memtable_memory < 2 * self.memtable_bytes {
            return bad("max_memtable_memory must hold at least two memtables");
        }
        if self
            .max_memtable_memory
            .saturating_add(self.block_cache_bytes)
            > self.max_memory
        {
            return bad("max_memtable_memory + block_cache_bytes must not exceed max_memory");
        }
        if self.num_levels < 2 || self.num_levels > 16 {
            return bad("num_levels must be between 2 and 16");
        }
        if self.l0_compaction_trigger < 2 {
            return bad("l0_compaction_trigger must be at least 2");
        }
        if self.l0_slowdown_trigger < self.l0_compaction_trigger
            || self.l0_stop_trigger < self.l0_slowdown_trigger
        {
            return bad("L0 triggers must satisfy compaction <= slowdown <= stop");
        }
        if self.level_size_multiplier < 2 {
            return bad("level_size_multiplier must be at least 2");
        }
        if self.block_bytes < 256 || self.block_bytes > 4 * MIB {
            return bad("block_bytes must be between 256 B and 4 MiB");
        }
        if self.block_restart_interval == 0 {
            return bad("block_restart_interval must be at least 1");
        }
        if self.target_file_bytes < 64 * 1024 {
            return bad("target_file_bytes must be at least 64 KiB");
        }
        match self.bloom {
            BloomConfig::FalsePositiveRate(p) if !(p > 0.0 && p < 1.0) => {
                return bad("bloom false-positive rate must be between 0 and 1");
            }
            BloomConfig::BitsPerKey(b) if !(1.0..=64.0).contains(&b) => {
                return bad("bloom bits per key must be between 1 and 64");
            }
            _ => {}
        }
        if self.max_key_bytes == 0 || self.max_key_bytes > MAX_KEY_BYTES {
            return bad("max_key_bytes must be between 1 and 1 MiB");
        }
        if self.max_value_bytes > MAX_VALUE_BYTES {
            return bad("max_value_bytes must be at most 256 MiB");
        }
        if self.max_batch_bytes > MAX_BATCH_BYTES
            || self.max_batch_bytes < self.max_key_bytes + self.max_value_bytes
        {
            return bad("max_batch_bytes must hold one maximal entry and be at most 1 GiB");
        }
        if let SyncPolicy::Interval(d) = self.sync
            && d.is_zero()
        {
            return bad("sync interval must be positive");
        }
        Ok(())
    }

    /// Bloom bits per key for the configured filter, or `None` when disabled.
    pub(crate) fn bloom_bits_per_key(&self) -> Option<f64> {
        match self.bloom {
            BloomConfig::FalsePositiveRate(p) => {
                Some(-p.ln() / (std::f64::consts::LN_2 * std::f64::consts::LN_2))
            }
            BloomConfig::BitsPerKey(b) => Some(b),
            BloomConfig::Disabled => None,
        }
    }

    /// Size target of `level` (L1 and deeper).
    pub(crate) fn level_target_bytes(&self, level: usize) -> u64 {
        let mut t = self.level1_bytes;
        for _ in 1..level {
            t = t.saturating_mul(self.level_size_multiplier);
        }
        t
    }

    /// Immutable memtables allowed before writers stall.
    pub(crate) fn max_immutable_memtables(&self) -> usize {
        (self.max_memtable_memory / self.memtable_bytes)
            .saturating_sub(1)
            .max(1)
    }
}

/// Options of one write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Sync the WAL before acknowledging, whatever the database's [`SyncPolicy`].
    pub sync: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_readme() {
        let o = Options::default();
        o.validate().unwrap();
        assert_eq!(o.memtable_bytes, 64 << 20);
        assert_eq!(o.max_memory, 2 << 30);
        assert_eq!(o.max_immutable_memtables(), 7);
        assert_eq!(o.level_target_bytes(3), 25600 << 20);
        let bits = o.bloom_bits_per_key().unwrap();
        assert!((9.5..9.7).contains(&bits), "{bits}");
    }

    #[test]
    fn contradictions_are_named() {
        let o = Options {
            block_cache_bytes: 4 << 30,
            ..Options::default()
        };
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("block_cache_bytes"), "{e}");
        let o = Options {
            bloom: BloomConfig::FalsePositiveRate(1.5),
            ..Options::default()
        };
        assert!(o.validate().is_err());
    }
}
