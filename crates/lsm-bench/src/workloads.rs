//! The db_bench-style workloads, and the keys and values they use.
//!
//! Keys are 16 bytes: the key index as 8 big-endian bytes, then eight ASCII `'0'`. A
//! key that is certainly absent (for `readmissing`) ends in `'.'` instead, so it sorts
//! between two present keys: the lookup has to be answered by Bloom filters and index
//! blocks, not by a key-range check. Values are 100 bytes derived from the key index,
//! made like db_bench's: 50 random printable bytes written twice, so LZ4 halves them.
//! Deriving the value from the index lets every read check what it got back.
//!
//! Every random choice comes from RNGs seeded from the run's seed, the workload and the
//! thread number, so two runs with the same flags issue the same operations.
//!
//! Each workload returns the operations it timed and a latency histogram; the runner
//! (`bench.rs`) owns the database, the flushes and the disk measurements around it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use rand::rngs::{SmallRng, StdRng};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::engine::BenchEngine;

/// Key length in bytes.
pub const KEY_BYTES: usize = 16;
/// Value length in bytes.
pub const VALUE_BYTES: usize = 100;
/// Logical size of one entry: what the user asked to store.
pub const ENTRY_BYTES: u64 = (KEY_BYTES + VALUE_BYTES) as u64;
/// Entries read after each seek in `seekrandom`.
pub const SCAN_LENGTH: usize = 100;
/// Size of the value pool; values repeat with this period, as in db_bench.
const VALUE_POOL_BYTES: usize = 1 << 20;
/// Latency histograms cover 1 ns to 60 s at 3 significant digits.
const HISTOGRAM_MAX_NANOS: u64 = 60_000_000_000;

/// The benchmarks, named as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Workload {
    /// Write `num` keys in ascending order into a fresh database.
    #[value(name = "fillseq")]
    FillSeq,
    /// Write `num` keys, each once, in a random order into a fresh database.
    #[value(name = "fillrandom")]
    FillRandom,
    /// Write `num` random existing keys again (keys drawn with replacement).
    #[value(name = "overwrite")]
    Overwrite,
    /// Read `reads` random existing keys, `threads` readers.
    #[value(name = "readrandom")]
    ReadRandom,
    /// Read `reads` random absent keys, `threads` readers.
    #[value(name = "readmissing")]
    ReadMissing,
    /// Seek to `reads` random keys and read 100 entries after each, `threads` readers.
    #[value(name = "seekrandom")]
    SeekRandom,
    /// `threads` readers do `reads` random reads while one writer overwrites random
    /// keys as fast as it can; the reads are measured.
    #[value(name = "readwhilewriting")]
    ReadWhileWriting,
    /// Synced random writes into a fresh database, one writer.
    #[value(name = "fillsync-1")]
    FillSync1,
    /// Synced random writes into a fresh database, 32 writers (group commit).
    #[value(name = "fillsync-32")]
    FillSync32,
}

impl Workload {
    /// Every workload in the default order: fills, then reads of the filled
    /// database, then the synced fills, which start over with a small database.
    pub const ALL: [Workload; 9] = [
        Workload::FillSeq,
        Workload::FillRandom,
        Workload::Overwrite,
        Workload::ReadRandom,
        Workload::ReadMissing,
        Workload::SeekRandom,
        Workload::ReadWhileWriting,
        Workload::FillSync1,
        Workload::FillSync32,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::Overwrite => "overwrite",
            Workload::ReadRandom => "readrandom",
            Workload::ReadMissing => "readmissing",
            Workload::SeekRandom => "seekrandom",
            Workload::ReadWhileWriting => "readwhilewriting",
            Workload::FillSync1 => "fillsync-1",
            Workload::FillSync32 => "fillsync-32",
        }
    }

    /// Whether the workload starts from an empty database.
    pub fn needs_fresh_db(self) -> bool {
        matches!(
            self,
            Workload::FillSeq | Workload::FillRandom | Workload::FillSync1 | Workload::FillSync32
        )
    }

    /// Whether the workload measures writes, so write and space amplification apply.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Workload::FillSeq
                | Workload::FillRandom
                | Workload::Overwrite
                | Workload::FillSync1
                | Workload::FillSync32
        )
    }

    /// Writer threads for the synced fills.
    pub fn sync_writers(self) -> Option<usize> {
        match self {
            Workload::FillSync1 => Some(1),
            Workload::FillSync32 => Some(32),
            _ => None,
        }
    }

    /// A per-workload number mixed into RNG seeds.
    fn seed_salt(self) -> u64 {
        Workload::ALL
            .iter()
            .position(|w| *w == self)
            .map_or(0, |i| (i as u64 + 1) << 32)
    }
}

/// The key of index `i`, present once a fill has run.
pub fn key(i: u64) -> [u8; KEY_BYTES] {
    let mut key = [b'0'; KEY_BYTES];
    key[..8].copy_from_slice(&i.to_be_bytes());
    key
}

/// A key next to `key(i)` that no workload ever writes.
pub fn missing_key(i: u64) -> [u8; KEY_BYTES] {
    let mut key = key(i);
    key[KEY_BYTES - 1] = b'.';
    key
}

/// The deterministic 100-byte values, half compressible.
pub struct Values {
    pool: Vec<u8>,
}

impl Values {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let pieces = VALUE_POOL_BYTES / VALUE_BYTES;
        let half = VALUE_BYTES / 2;
        let mut pool = Vec::with_capacity(pieces * VALUE_BYTES);
        for _ in 0..pieces {
            let random: Vec<u8> = (0..half).map(|_| rng.random_range(b' '..=b'~')).collect();
            pool.extend_from_slice(&random);
            pool.extend_from_slice(&random);
        }
        Self { pool }
    }

    /// The value stored under `key(i)`.
    pub fn get(&self, i: u64) -> &[u8] {
        let pieces = (self.pool.len() / VALUE_BYTES) as u64;
        let start = (i % pieces) as usize * VALUE_BYTES;
        &self.pool[start..start + VALUE_BYTES]
    }
}

/// Everything a workload reads but does not own.
pub struct WorkloadContext<'a> {
    pub engine: &'a dyn BenchEngine,
    pub values: &'a Values,
    /// Keys `0..num` are present (for reads) or written (for fills).
    pub num: u64,
    /// Operations for the read workloads, split across `threads`.
    pub reads: u64,
    pub threads: usize,
    /// Operations for the synced fills.
    pub sync_ops: u64,
    pub seed: u64,
}

/// What a workload measured.
pub struct Measured {
    /// Operations timed (puts, gets, or seek+scan).
    pub ops: u64,
    /// Wall time from the first operation to the last thread finishing.
    pub elapsed: Duration,
    /// Latency of each timed operation, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Operations done but not timed (the writer in `readwhilewriting`).
    pub background_ops: u64,
}

/// Runs `workload` against a database prepared by the runner.
pub fn run(workload: Workload, ctx: &WorkloadContext<'_>) -> Result<Measured> {
    let seed = ctx.seed ^ workload.seed_salt();
    match workload {
        Workload::FillSeq => fill(ctx, (0..ctx.num).collect(), 1, false),
        Workload::FillRandom => fill(ctx, shuffled(ctx.num, seed), 1, false),
        Workload::Overwrite => overwrite(ctx, seed),
        Workload::ReadRandom => parallel_reads(ctx, seed, read_present),
        Workload::ReadMissing => parallel_reads(ctx, seed, read_missing),
        Workload::SeekRandom => parallel_reads(ctx, seed, seek_and_scan),
        Workload::ReadWhileWriting => read_while_writing(ctx, seed),
        Workload::FillSync1 | Workload::FillSync32 => {
            let writers = workload.sync_writers().unwrap_or(1);
            let mut order = shuffled(ctx.num, seed);
            order.truncate(ctx.sync_ops.min(ctx.num) as usize);
            fill(ctx, order, writers, true)
        }
    }
}

/// `0..n` in a random order.
fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    order
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NANOS, 3)
        .expect("constant histogram bounds are valid")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Per-thread tally, merged after the threads join.
struct ThreadTally {
    ops: u64,
    latency: Histogram<u64>,
}

impl ThreadTally {
    fn new() -> Self {
        Self {
            ops: 0,
            latency: new_histogram(),
        }
    }

    /// Runs `op`, timing it.
    fn timed<T>(&mut self, op: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let out = op()?;
        self.latency.saturating_record(nanos(started.elapsed()));
        self.ops += 1;
        Ok(out)
    }
}

/// Runs `threads` copies of `body(thread_index)` and merges their tallies.
fn in_threads(
    threads: usize,
    body: impl Fn(usize) -> Result<ThreadTally> + Sync,
) -> Result<(u64, Duration, Histogram<u64>)> {
    let started = Instant::now();
    let tallies: Vec<Result<ThreadTally>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let body = &body;
                scope.spawn(move || body(t))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a benchmark thread panicked"))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut ops = 0;
    let mut latency = new_histogram();
    for tally in tallies {
        let tally = tally?;
        ops += tally.ops;
        latency
            .add(&tally.latency)
            .context("merging latency histograms")?;
    }
    Ok((ops, elapsed, latency))
}

/// Writes `order` (key indexes) split into `writers` contiguous chunks.
fn fill(
    ctx: &WorkloadContext<'_>,
    order: Vec<u64>,
    writers: usize,
    sync: bool,
) -> Result<Measured> {
    let chunk = order.len().div_ceil(writers.max(1)).max(1);
    let chunks: Vec<&[u64]> = order.chunks(chunk).collect();
    let (ops, elapsed, latency) = in_threads(chunks.len(), |t| {
        let mut tally = ThreadTally::new();
        for &i in chunks[t] {
            tally.timed(|| ctx.engine.put(&key(i), ctx.values.get(i), sync))?;
        }
        Ok(tally)
    })?;
    Ok(Measured {
        ops,
        elapsed,
        latency,
        background_ops: 0,
    })
}

fn overwrite(ctx: &WorkloadContext<'_>, seed: u64) -> Result<Measured> {
    let (ops, elapsed, latency) = in_threads(1, |_| {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut tally = ThreadTally::new();
        for _ in 0..ctx.num {
            let i = rng.random_range(0..ctx.num);
            tally.timed(|| ctx.engine.put(&key(i), ctx.values.get(i), false))?;
        }
        Ok(tally)
    })?;
    Ok(Measured {
        ops,
        elapsed,
        latency,
        background_ops: 0,
    })
}

/// One read operation of a read workload, checked against what the fill wrote.
type ReadOp = fn(&WorkloadContext<'_>, u64, &mut Vec<u8>) -> Result<()>;

fn read_present(ctx: &WorkloadContext<'_>, i: u64, buf: &mut Vec<u8>) -> Result<()> {
    let found = ctx.engine.get(&key(i), buf)?;
    ensure!(found, "{}: key {i} is missing", ctx.engine.name());
    ensure!(
        buf.as_slice() == ctx.values.get(i),
        "{}: key {i} has a wrong value ({} bytes)",
        ctx.engine.name(),
        buf.len()
    );
    Ok(())
}

fn read_missing(ctx: &WorkloadContext<'_>, i: u64, buf: &mut Vec<u8>) -> Result<()> {
    let found = ctx.engine.get(&missing_key(i), buf)?;
    ensure!(
        !found,
        "{}: absent key next to {i} was found",
        ctx.engine.name()
    );
    Ok(())
}

fn seek_and_scan(ctx: &WorkloadContext<'_>, i: u64, _buf: &mut Vec<u8>) -> Result<()> {
    let read = ctx.engine.scan(&key(i), SCAN_LENGTH)?;
    let expected = SCAN_LENGTH.min((ctx.num - i) as usize);
    ensure!(
        read == expected,
        "{}: scan from key {i} read {read} entries, expected {expected}",
        ctx.engine.name()
    );
    Ok(())
}

/// Splits `ctx.reads` operations over `ctx.threads` readers drawing uniform key indexes.
fn parallel_reads(ctx: &WorkloadContext<'_>, seed: u64, op: ReadOp) -> Result<Measured> {
    let (ops, elapsed, latency) = in_threads(ctx.threads, |t| reader(ctx, seed, t, op))?;
    Ok(Measured {
        ops,
        elapsed,
        latency,
        background_ops: 0,
    })
}

/// Reader thread `t` of `ctx.threads`: its share of `ctx.reads` operations.
fn reader(ctx: &WorkloadContext<'_>, seed: u64, t: usize, op: ReadOp) -> Result<ThreadTally> {
    let threads = ctx.threads as u64;
    let share = ctx.reads / threads + u64::from((t as u64) < ctx.reads % threads);
    let mut rng = SmallRng::seed_from_u64(seed ^ (t as u64 + 1));
    let mut tally = ThreadTally::new();
    let mut buf = Vec::with_capacity(VALUE_BYTES);
    for _ in 0..share {
        let i = rng.random_range(0..ctx.num);
        tally.timed(|| op(ctx, i, &mut buf))?;
    }
    Ok(tally)
}

/// `ctx.threads` readers plus one unthrottled writer overwriting random keys (with the
/// same values, so reads stay checkable) until the readers finish.
fn read_while_writing(ctx: &WorkloadContext<'_>, seed: u64) -> Result<Measured> {
    let readers_done = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let (read_result, write_result) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| -> Result<()> {
            let mut rng = SmallRng::seed_from_u64(seed ^ 0xffff);
            while !readers_done.load(Ordering::Relaxed) {
                let i = rng.random_range(0..ctx.num);
                ctx.engine.put(&key(i), ctx.values.get(i), false)?;
                writes.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        let reads = in_threads(ctx.threads, |t| reader(ctx, seed, t, read_present));
        readers_done.store(true, Ordering::Relaxed);
        let write_result = writer
            .join()
            .unwrap_or_else(|_| bail!("the writer thread panicked"));
        (reads, write_result)
    });
    write_result.context("readwhilewriting writer")?;
    let (ops, elapsed, latency) = read_result?;
    Ok(Measured {
        ops,
        elapsed,
        latency,
        background_ops: writes.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::memory::MemoryEngine;

    fn context<'a>(engine: &'a MemoryEngine, values: &'a Values) -> WorkloadContext<'a> {
        WorkloadContext {
            engine,
            values,
            num: 500,
            reads: 301,
            threads: 3,
            sync_ops: 64,
            seed: 9,
        }
    }

    #[test]
    fn every_workload_runs_against_the_model() -> Result<()> {
        let engine = MemoryEngine::default();
        let values = Values::new(1);
        let ctx = context(&engine, &values);
        let expected_ops = |w: Workload| match w {
            Workload::FillSeq | Workload::FillRandom | Workload::Overwrite => 500,
            Workload::FillSync1 | Workload::FillSync32 => 64,
            _ => 301,
        };
        for w in Workload::ALL
            .into_iter()
            .filter(|w| w.sync_writers().is_none())
        {
            let measured = run(w, &ctx)?;
            assert_eq!(measured.ops, expected_ops(w), "{}", w.name());
            assert_eq!(measured.latency.len(), expected_ops(w), "{}", w.name());
        }
        assert_eq!(engine.len(), 500);
        for w in [Workload::FillSync1, Workload::FillSync32] {
            let fresh = MemoryEngine::default();
            let measured = run(w, &context(&fresh, &values))?;
            assert_eq!(measured.ops, 64);
            // Distinct keys: every write lands on a new key.
            assert_eq!(fresh.len(), 64);
        }
        Ok(())
    }

    #[test]
    fn reads_catch_a_wrong_value() -> Result<()> {
        let engine = MemoryEngine::corrupting(vec![b'x'; VALUE_BYTES]);
        let values = Values::new(1);
        let ctx = context(&engine, &values);
        run(Workload::FillSeq, &ctx)?;
        let err = run(Workload::ReadRandom, &ctx).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("wrong value")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn reads_catch_missing_keys_and_short_scans() -> Result<()> {
        let engine = MemoryEngine::default();
        let values = Values::new(1);
        let ctx = context(&engine, &values);
        // Only half the keys: reads and scans must notice.
        for i in 0..250 {
            engine.put(&key(i * 2), values.get(i * 2), false)?;
        }
        assert!(run(Workload::ReadRandom, &ctx).is_err());
        assert!(run(Workload::SeekRandom, &ctx).is_err());
        assert!(run(Workload::ReadMissing, &ctx).is_ok());
        Ok(())
    }

    #[test]
    fn keys_are_sixteen_bytes_and_sort_by_index() {
        assert_eq!(key(1).len(), KEY_BYTES);
        assert!(key(1) < key(2));
        assert!(key(255) < key(256));
        assert_eq!(&key(0x0102)[..], b"\0\0\0\0\0\0\x01\x0200000000");
    }

    #[test]
    fn missing_keys_sit_between_present_keys() {
        assert!(key(6) < missing_key(7));
        assert!(missing_key(7) < key(7));
        assert_ne!(missing_key(7), key(7));
    }

    #[test]
    fn values_are_deterministic_and_half_repeated() {
        let a = Values::new(42);
        let b = Values::new(42);
        assert_eq!(a.get(12345), b.get(12345));
        let v = a.get(3);
        assert_eq!(v.len(), VALUE_BYTES);
        assert_eq!(v[..VALUE_BYTES / 2], v[VALUE_BYTES / 2..]);
        assert!(v.iter().all(|c| (b' '..=b'~').contains(c)));
        assert_ne!(a.get(3), a.get(4));
        assert_ne!(Values::new(43).get(3), v);
    }

    #[test]
    fn shuffled_is_a_seeded_permutation() {
        let order = shuffled(1000, 7);
        assert_eq!(order, shuffled(1000, 7));
        assert_ne!(order, shuffled(1000, 8));
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn workload_names_round_trip_through_clap() {
        for w in Workload::ALL {
            assert_eq!(Workload::from_str(w.name(), false), Ok(w));
        }
    }
}
