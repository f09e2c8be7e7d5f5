//! Engine statistics: lock-free counters and latency histograms, read as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A latency histogram with logarithmic buckets (4 per power of two), updated without locks.
/// Percentiles are accurate to about 19%, which is enough to tell p50 from p99.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

const BUCKETS: usize = 4 * 64;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

fn bucket_of(nanos: u64) -> usize {
    if nanos < 4 {
        return nanos as usize;
    }
    let exp = 63 - nanos.leading_zeros() as usize; // >= 2
    let sub = ((nanos >> (exp - 2)) & 3) as usize;
    (exp * 4 + sub).min(BUCKETS - 1)
}

fn bucket_floor(b: usize) -> u64 {
    if b < 4 {
        return b as u64;
    }
    if b < 8 {
        // Buckets 4..8 are never used: values 4..8 land in 8..12.
        return 4;
    }
    let (exp, sub) = (b / 4, (b % 4) as u64);
    (1u64 << exp) | (sub << (exp - 2))
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let nanos = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.buckets[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LatencySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let pct = |p: f64| -> Duration {
            if total == 0 {
                return Duration::ZERO;
            }
            let rank = ((total as f64) * p).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (b, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_nanos(bucket_floor(b));
                }
            }
            Duration::ZERO
        };
        let count = self.count.load(Ordering::Relaxed);
        LatencySummary {
            count,
            mean: Duration::from_nanos(
                self.sum_nanos
                    .load(Ordering::Relaxed)
                    .checked_div(count)
                    .unwrap_or(0),
            ),
            p50: pct(0.50),
            p99: pct(0.99),
            p999: pct(0.999),
        }
    }
}

/// Percentiles of one operation's latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
}

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Live counters shared by the engine's parts.
        #[derive(Default)]
        pub(crate) struct StatsInner {
            $(pub(crate) $name: AtomicU64,)*
            pub(crate) get_latency: Histogram,
            pub(crate) write_latency: Histogram,
        }

        /// Counters since open.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Counters {
            $(pub $name: u64,)*
        }

        impl StatsInner {
            pub(crate) fn counters(&self) -> Counters {
                Counters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters!(
    gets,
    gets_found,
    puts,
    deletes,
    batches,
    user_bytes_written,
    user_bytes_read,
    iter_items,
    iter_bytes,
    wal_bytes_written,
    wal_syncs,
    flushes,
    flush_bytes_written,
    compactions,
    trivial_moves,
    compaction_bytes_read,
    compaction_bytes_written,
    tombstones_dropped,
    table_bytes_read,
    tables_deleted,
    cache_hits,
    cache_misses,
    bloom_checks,
    bloom_negatives,
    bloom_false_positives,
    write_slowdowns,
    write_stalls,
    write_stall_micros,
);

impl StatsInner {
    pub(crate) fn add(&self, counter: &AtomicU64, n: u64) {
        let _ = self;
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn record_iter_item(&self, bytes: usize) {
        self.iter_items.fetch_add(1, Ordering::Relaxed);
        self.iter_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Files and bytes in one level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LevelStats {
    pub files: usize,
    pub bytes: u64,
}

/// A snapshot of the engine's statistics.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub counters: Counters,
    pub get_latency: LatencySummary,
    pub write_latency: LatencySummary,
    /// Per level, L0 first.
    pub levels: Vec<LevelStats>,
    /// Bytes of all live table files.
    pub sst_bytes: u64,
    /// Entries in live tables (all versions and tombstones).
    pub sst_entries: u64,
    /// Entries in the memtables (all versions and tombstones).
    pub memtable_entries: u64,
    pub memtable_bytes: usize,
    pub immutable_memtables: usize,
    pub block_cache_bytes: u64,
    pub block_cache_capacity: u64,
    /// Memory of the indexes and bloom filters of open tables.
    pub table_index_bytes: usize,
    /// Memtables + block cache + indexes and filters.
    pub memory_bytes: u64,
    pub memory_limit: u64,
    pub last_sequence: u64,
    pub compaction_running: bool,
}

impl Stats {
    /// Bytes written to disk (WAL, flushes, compactions) per byte the user wrote.
    pub fn write_amplification(&self) -> f64 {
        let c = &self.counters;
        if c.user_bytes_written == 0 {
            return 0.0;
        }
        (c.wal_bytes_written + c.flush_bytes_written + c.compaction_bytes_written) as f64
            / c.user_bytes_written as f64
    }

    /// Hits per block-cache lookup, 0 when there were none.
    pub fn cache_hit_rate(&self) -> f64 {
        let c = &self.counters;
        let total = c.cache_hits + c.cache_misses;
        if total == 0 {
            0.0
        } else {
            c.cache_hits as f64 / total as f64
        }
    }

    /// Share of lookups of keys a table did not hold that its bloom filter let through.
    pub fn bloom_false_positive_rate(&self) -> f64 {
        let c = &self.counters;
        let absent = c.bloom_false_positives + c.bloom_negatives;
        if absent == 0 {
            0.0
        } else {
            c.bloom_false_positives as f64 / absent as f64
        }
    }

    pub fn sst_files(&self) -> usize {
        self.levels.iter().map(|l| l.files).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_floors_are_monotonic_and_bound_their_values() {
        for v in [0u64, 1, 3, 4, 5, 7, 8, 100, 1000, 123_456_789, u64::MAX / 2] {
            let b = bucket_of(v);
            assert!(bucket_floor(b) <= v, "{v}");
            if b + 1 < BUCKETS {
                assert!(bucket_floor(b + 1) > v, "{v}");
            }
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_distribution() {
        let h = Histogram::default();
        for _ in 0..990 {
            h.record(Duration::from_micros(10));
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(10));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert!(s.p50 <= Duration::from_micros(10) && s.p50 > Duration::from_micros(8));
        assert!(s.p999 > Duration::from_millis(8));
    }
}
