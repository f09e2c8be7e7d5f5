//! `engine-bench`: db_bench-style workloads against distkv-lsm, fjall and RocksDB in one
//! run, with the same cache, memtable, Bloom filter and compression settings for all.
//!
//! ```text
//! cargo run --release -p distkv-lsm-bench -- --quick
//! scripts/bench-engine.sh --quick            # with RocksDB (system librocksdb)
//! ```

mod bench;
mod engine;
mod engines;
mod measure;
mod report;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, ensure};
use clap::Parser;

use bench::{BenchConfig, Mode};
use engine::{BLOOM_BITS_PER_KEY, EngineKind, EngineSettings, MEMTABLE_BYTES};
use workloads::Workload;

/// Seed for every RNG in a run unless `--seed` says otherwise.
const DEFAULT_SEED: u64 = 0x0D15_7C0F_FEE5_EED5;

#[derive(Debug, Parser)]
#[command(name = "engine-bench", version, about)]
struct Cli {
    /// 1,000,000 keys, 20,000 synced writes (the default).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// 10,000,000 keys, 100,000 synced writes.
    #[arg(long)]
    full: bool,
    /// Keys per fill [default: from the mode].
    #[arg(long)]
    num: Option<u64>,
    /// Operations per read workload [default: --num].
    #[arg(long)]
    reads: Option<u64>,
    /// Reader threads in readrandom, readmissing, seekrandom and readwhilewriting.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Writes per synced fill (fillsync-1, fillsync-32) [default: from the mode].
    #[arg(long)]
    sync_ops: Option<u64>,
    /// Engines to run, in order [default: every engine compiled in].
    #[arg(long, value_enum, value_delimiter = ',')]
    engines: Vec<EngineKind>,
    /// Workloads to run, in order [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    workloads: Vec<Workload>,
    /// Directory for the databases, kept afterwards [default: a temporary directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Block cache size in MiB, the same for every engine.
    #[arg(long, default_value_t = 512)]
    cache_mb: usize,
    /// Also write the results as JSON to this path.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Seed for key orders, values and the keys read.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
}

impl Cli {
    fn into_config(self) -> Result<BenchConfig> {
        let mode = if self.full { Mode::Full } else { Mode::Quick };
        let num = self.num.unwrap_or(mode.default_num());
        ensure!(num > 0, "--num must be at least 1");
        ensure!(self.threads > 0, "--threads must be at least 1");
        let engines = if self.engines.is_empty() {
            EngineKind::ALL
                .into_iter()
                .filter(|e| e.is_compiled_in())
                .collect()
        } else {
            dedup(self.engines)
        };
        for e in &engines {
            ensure!(
                e.is_compiled_in(),
                "engine {} is not compiled in: rebuild with --features {}",
                e.name(),
                e.feature().unwrap_or("?")
            );
        }
        let workloads = if self.workloads.is_empty() {
            Workload::ALL.to_vec()
        } else {
            dedup(self.workloads)
        };
        Ok(BenchConfig {
            mode,
            engines,
            workloads,
            num,
            reads: self.reads.unwrap_or(num),
            threads: self.threads,
            sync_ops: self.sync_ops.unwrap_or(mode.default_sync_ops()).min(num),
            dir: self.dir,
            settings: EngineSettings {
                cache_bytes: self.cache_mb << 20,
                memtable_bytes: MEMTABLE_BYTES,
                bloom_bits_per_key: BLOOM_BITS_PER_KEY,
            },
            seed: self.seed,
        })
    }
}

/// Drops repeats, keeping first occurrences in order.
fn dedup<T: PartialEq + Copy>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let json = cli.json.clone();
    let config = cli.into_config()?;
    let machine = measure::Machine::detect();
    let results = bench::run(&config)?;
    report::print_summary(&config, &machine, &results);
    if let Some(path) = &json {
        report::write_json(path, &config, &machine, &results)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
