//! The run: for each engine in turn, each workload in turn, on databases the runner
//! opens, fills, flushes and measures.
//!
//! Fills (`fillseq`, `fillrandom`, `fillsync-*`) start from an empty directory. The other
//! workloads read or overwrite the database the previous fill left, which then holds
//! exactly keys `0..num`; if none did (say `--workloads readrandom`), the runner first
//! loads one with an untimed `fillseq`. The synced fills write only `sync_ops` keys, so
//! they leave a database the read workloads cannot use, and run last by default.
//!
//! After each write workload the runner flushes the memtable and waits for compactions
//! (untimed), then reads the bytes written and the directory size, so write and space
//! amplification describe the data at rest rather than a moment mid-compaction. The
//! counters are process-wide, which is one reason engines never run at the same time.
//!
//! Engines run one after another, never at once, each in its own subdirectory, which is
//! removed afterwards unless the user chose the directory with `--dir`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::engine::{BenchEngine, EngineKind, EngineSettings};
use crate::measure::{WriteCounters, disk_usage};
use crate::report::{self, WorkloadResult};
use crate::workloads::{self, ENTRY_BYTES, Values, Workload, WorkloadContext};

/// Size presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 1,000,000 keys; 20,000 synced writes.
    Quick,
    /// 10,000,000 keys; 100,000 synced writes.
    Full,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }

    pub fn default_num(self) -> u64 {
        match self {
            Mode::Quick => 1_000_000,
            Mode::Full => 10_000_000,
        }
    }

    /// Synced writes cost a device flush each (less with group commit), so they get far
    /// fewer operations than the other workloads.
    pub fn default_sync_ops(self) -> u64 {
        match self {
            Mode::Quick => 20_000,
            Mode::Full => 100_000,
        }
    }
}

/// A validated benchmark run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub mode: Mode,
    /// Engines in run and report order.
    pub engines: Vec<EngineKind>,
    /// Workloads in run order, without repeats.
    pub workloads: Vec<Workload>,
    /// Keys per fill.
    pub num: u64,
    /// Operations per read workload.
    pub reads: u64,
    /// Reader threads for the read workloads.
    pub threads: usize,
    /// Writes per synced fill.
    pub sync_ops: u64,
    /// Where the databases go; a temporary directory when `None`.
    pub dir: Option<PathBuf>,
    pub settings: EngineSettings,
    pub seed: u64,
}

/// Runs every engine through every workload, printing each result as it lands.
pub fn run(config: &BenchConfig) -> Result<Vec<WorkloadResult>> {
    let temp;
    let root = match &config.dir {
        Some(dir) => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("engine-bench-")
                .tempdir()
                .context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    if WriteCounters::read().is_none() {
        eprintln!("note: /proc/self/io is unreadable here, so write amplification is not measured");
    }
    eprintln!("data directory: {}", root.display());

    let values = Values::new(config.seed);
    let mut results = Vec::new();
    for &kind in &config.engines {
        let mut run = EngineRun::new(kind, root.join(kind.name()), config, &values);
        let outcome = config.workloads.iter().try_for_each(|&w| -> Result<()> {
            let result = run.workload(w)?;
            report::print_progress(&result);
            results.push(result);
            Ok(())
        });
        let closed = run.close();
        outcome.with_context(|| format!("benchmarking {}", kind.name()))?;
        closed?;
        if config.dir.is_none() {
            remove_dir_if_present(&root.join(kind.name()))?;
        }
    }
    Ok(results)
}

/// One engine's open database and what it holds.
struct EngineRun<'a> {
    kind: EngineKind,
    path: PathBuf,
    config: &'a BenchConfig,
    values: &'a Values,
    engine: Option<Box<dyn BenchEngine>>,
    /// The open database holds exactly keys `0..num` with their values.
    populated: bool,
}

impl<'a> EngineRun<'a> {
    fn new(kind: EngineKind, path: PathBuf, config: &'a BenchConfig, values: &'a Values) -> Self {
        Self {
            kind,
            path,
            config,
            values,
            engine: None,
            populated: false,
        }
    }

    fn workload(&mut self, w: Workload) -> Result<WorkloadResult> {
        if w.needs_fresh_db() {
            self.reopen_empty()?;
        } else if !self.populated {
            self.preload()?;
        }
        let config = self.config;
        let engine = self.engine()?;
        let ctx = WorkloadContext {
            engine,
            values: self.values,
            num: config.num,
            reads: config.reads,
            threads: config.threads,
            sync_ops: config.sync_ops,
            seed: config.seed,
        };
        eprintln!("{}: {} ...", self.kind.name(), w.name());
        let written_before = WriteCounters::read();
        let measured = workloads::run(w, &ctx).with_context(|| w.name().to_string())?;

        let mut result = WorkloadResult {
            engine: self.kind,
            workload: w,
            ops: measured.ops,
            elapsed: measured.elapsed,
            p50: Duration::from_nanos(measured.latency.value_at_quantile(0.50)),
            p99: Duration::from_nanos(measured.latency.value_at_quantile(0.99)),
            write_amp: None,
            dirtied_amp: None,
            space_amp: None,
            disk_bytes: None,
            engine_write_amp: None,
            settle: None,
            background_ops: measured.background_ops,
        };
        if w.is_write() {
            let settle_started = Instant::now();
            engine.flush().context("flushing after the workload")?;
            engine
                .wait_for_compactions()
                .context("waiting for compactions after the workload")?;
            result.settle = Some(settle_started.elapsed());
            let user_bytes = measured.ops * ENTRY_BYTES;
            if let (Some(before), Some(after)) = (written_before, WriteCounters::read()) {
                let written = after.since(before);
                result.write_amp = ratio(written.syscall_bytes, user_bytes);
                result.dirtied_amp = ratio(written.dirtied_bytes, user_bytes);
            }
            // The synced fills write distinct keys; the others leave keys 0..num.
            let logical_bytes = match w.sync_writers() {
                Some(_) => measured.ops * ENTRY_BYTES,
                None => config.num * ENTRY_BYTES,
            };
            let disk = disk_usage(&self.path)?;
            result.disk_bytes = Some(disk);
            result.space_amp = ratio(disk, logical_bytes);
            result.engine_write_amp = engine.engine_write_amplification();
        }
        match w {
            Workload::FillSeq | Workload::FillRandom => self.populated = true,
            Workload::FillSync1 | Workload::FillSync32 => self.populated = false,
            _ => {}
        }
        Ok(result)
    }

    fn engine(&self) -> Result<&dyn BenchEngine> {
        self.engine
            .as_deref()
            .context("no database is open (a previous step failed)")
    }

    /// Closes the current database, if any, and opens an empty one.
    fn reopen_empty(&mut self) -> Result<()> {
        self.close()?;
        remove_dir_if_present(&self.path)?;
        fs::create_dir_all(&self.path)
            .with_context(|| format!("creating {}", self.path.display()))?;
        self.engine = Some(self.kind.open(&self.path, &self.config.settings)?);
        self.populated = false;
        Ok(())
    }

    /// Loads keys `0..num` without timing, for read workloads run without a fill.
    fn preload(&mut self) -> Result<()> {
        eprintln!(
            "{}: loading {} keys with an untimed fillseq first",
            self.kind.name(),
            self.config.num
        );
        self.reopen_empty()?;
        let engine = self.engine()?;
        let ctx = WorkloadContext {
            engine,
            values: self.values,
            num: self.config.num,
            reads: 0,
            threads: 1,
            sync_ops: 0,
            seed: self.config.seed,
        };
        workloads::run(Workload::FillSeq, &ctx).context("preloading")?;
        engine.flush()?;
        engine.wait_for_compactions()?;
        self.populated = true;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        self.populated = false;
        match self.engine.take() {
            Some(engine) => engine.close(),
            None => Ok(()),
        }
    }
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

fn remove_dir_if_present(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole run against one engine, tiny: every workload, real files, real
    /// measurements, every read checked against the values written.
    fn every_workload_runs(kind: EngineKind) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let config = BenchConfig {
            mode: Mode::Quick,
            engines: vec![kind],
            workloads: Workload::ALL.to_vec(),
            num: 2_000,
            reads: 2_000,
            threads: 2,
            sync_ops: 64,
            dir: Some(dir.path().to_path_buf()),
            settings: EngineSettings {
                cache_bytes: 8 << 20,
                memtable_bytes: crate::engine::MEMTABLE_BYTES,
                bloom_bits_per_key: crate::engine::BLOOM_BITS_PER_KEY,
            },
            seed: 1,
        };
        let results = run(&config)?;
        let names: Vec<_> = results.iter().map(|r| r.workload).collect();
        assert_eq!(names, Workload::ALL.to_vec());
        for r in &results {
            let expected = match r.workload {
                Workload::FillSync1 | Workload::FillSync32 => 64,
                _ => 2_000,
            };
            assert_eq!(r.ops, expected, "{}", r.workload.name());
            assert_eq!(r.space_amp.is_some(), r.workload.is_write());
            assert!(r.p50 <= r.p99);
        }
        let fill = &results[0];
        assert!(fill.disk_bytes.is_some_and(|b| b > 0));
        let md = report::markdown(&config, &crate::measure::Machine::detect(), &results);
        let row = format!("| {} |", kind.name());
        assert_eq!(md.matches(&row).count(), Workload::ALL.len());
        Ok(())
    }

    #[test]
    fn fjall_runs_every_workload() -> Result<()> {
        every_workload_runs(EngineKind::Fjall)
    }

    #[cfg(feature = "distkv")]
    #[test]
    fn distkv_runs_every_workload() -> Result<()> {
        every_workload_runs(EngineKind::Distkv)
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn rocksdb_runs_every_workload() -> Result<()> {
        every_workload_runs(EngineKind::Rocksdb)
    }

    /// Read workloads without a fill first load the keys themselves.
    #[test]
    fn reads_alone_preload_the_database() -> Result<()> {
        let config = BenchConfig {
            mode: Mode::Quick,
            engines: vec![EngineKind::Fjall],
            workloads: vec![Workload::SeekRandom, Workload::ReadRandom],
            num: 500,
            reads: 100,
            threads: 1,
            sync_ops: 10,
            dir: None,
            settings: EngineSettings {
                cache_bytes: 8 << 20,
                memtable_bytes: crate::engine::MEMTABLE_BYTES,
                bloom_bits_per_key: crate::engine::BLOOM_BITS_PER_KEY,
            },
            seed: 2,
        };
        let results = run(&config)?;
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.ops == 100));
        Ok(())
    }
}
