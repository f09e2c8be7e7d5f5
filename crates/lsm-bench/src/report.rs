//! Turning measurements into text: a line per finished workload, a summary table, the
//! ratio of our engine to each peer, a markdown block for the README and a JSON file.
//!
//! Rows follow the order the run used (engines as given, workloads as given), never a
//! hash order, so two reports of the same run diff cleanly.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::BenchConfig;
use crate::engine::{COMPRESSION, EngineKind};
use crate::measure::Machine;
use crate::workloads::{KEY_BYTES, VALUE_BYTES, Workload};

/// One engine's numbers for one workload.
#[derive(Debug, Clone)]
pub struct WorkloadResult {
    pub engine: EngineKind,
    pub workload: Workload,
    /// Timed operations.
    pub ops: u64,
    /// Wall time of the timed operations.
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// Bytes passed to write calls (WAL, tables, compactions, up to the end of the flush
    /// and compactions that follow a write workload) per user byte written.
    pub write_amp: Option<f64>,
    /// Page-cache bytes dirtied over the same span per user byte (see `measure.rs` for
    /// why this overstates small synced writes on kernels with large folios).
    pub dirtied_amp: Option<f64>,
    /// Disk usage of the data directory after the flush and compactions, per logical byte.
    pub space_amp: Option<f64>,
    /// Data directory size in bytes, measured with `space_amp`.
    pub disk_bytes: Option<u64>,
    /// The engine's own cumulative write amplification, when it reports one.
    pub engine_write_amp: Option<f64>,
    /// Time spent flushing and waiting for compactions after a write workload (untimed).
    pub settle: Option<Duration>,
    /// Untimed operations running alongside (the writer of `readwhilewriting`).
    pub background_ops: u64,
}

impl WorkloadResult {
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }

    fn background_ops_per_sec(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        (self.background_ops > 0 && secs > 0.0).then(|| self.background_ops as f64 / secs)
    }
}

/// Prints one finished workload, as the run goes.
pub fn print_progress(r: &WorkloadResult) {
    let mut line = format!(
        "{:<8} {:<17} {:>11} ops in {:>8.2} s = {:>11} ops/s  p50 {:>9}  p99 {:>9}",
        r.engine.name(),
        r.workload.name(),
        thousands(r.ops as f64),
        r.elapsed.as_secs_f64(),
        thousands(r.ops_per_sec()),
        micros(r.p50),
        micros(r.p99),
    );
    if let Some(w) = r.write_amp {
        let _ = write!(line, "  write-amp {w:.2}");
    }
    if let Some(d) = r.dirtied_amp {
        let _ = write!(line, " (page cache {d:.2})");
    }
    if let Some(s) = r.space_amp {
        let _ = write!(line, "  space-amp {s:.2}");
    }
    if let Some(e) = r.engine_write_amp {
        let _ = write!(line, "  (engine's own write-amp {e:.2})");
    }
    if let Some(settle) = r.settle {
        let _ = write!(line, "  settle {:.1} s", settle.as_secs_f64());
    }
    if let Some(w) = r.background_ops_per_sec() {
        let _ = write!(line, "  writer {} ops/s", thousands(w));
    }
    println!("{line}");
}

/// Prints the summary table, the ratio table and the README markdown.
pub fn print_summary(config: &BenchConfig, machine: &Machine, results: &[WorkloadResult]) {
    println!();
    println!("== Results ==");
    println!(
        "{:<17} {:<8} {:>12} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "workload", "engine", "ops/s", "p50", "p99", "wamp-sys", "wamp-page", "space-amp"
    );
    for r in ordered(config, results) {
        println!(
            "{:<17} {:<8} {:>12} {:>10} {:>10} {:>9} {:>9} {:>9}",
            r.workload.name(),
            r.engine.name(),
            thousands(r.ops_per_sec()),
            micros(r.p50),
            micros(r.p99),
            opt_ratio(r.write_amp),
            opt_ratio(r.dirtied_amp),
            opt_ratio(r.space_amp),
        );
    }

    let peers = peers(config);
    if config.engines.contains(&EngineKind::Distkv) && !peers.is_empty() {
        println!();
        println!("== distkv ops/s divided by each peer's (above 1.00x: distkv is faster) ==");
        let mut header = format!("{:<17}", "workload");
        for peer in &peers {
            let _ = write!(header, " {:>12}", format!("vs {}", peer.name()));
        }
        println!("{header}");
        for &w in &config.workloads {
            let mut row = format!("{:<17}", w.name());
            for &peer in &peers {
                let _ = write!(row, " {:>12}", ratio_cell(results, w, peer));
            }
            println!("{row}");
        }
    } else {
        println!();
        println!("(no ratio table: it needs distkv and at least one peer in --engines)");
    }

    println!();
    println!("== Markdown for the README ==");
    println!();
    print!("{}", markdown(config, machine, results));
}

/// The README block: settings, machine, one row per workload and engine, then ratios.
pub fn markdown(config: &BenchConfig, machine: &Machine, results: &[WorkloadResult]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Engine benchmark ({} mode), {}: {} keys of {KEY_BYTES} B with {VALUE_BYTES} B values \
         (half compressible), {} reads, {} reader thread(s), {} synced writes, seed {}.",
        config.mode.name(),
        machine.date,
        thousands(config.num as f64),
        thousands(config.reads as f64),
        config.threads,
        thousands(config.sync_ops as f64),
        config.seed,
    );
    let _ = writeln!(
        md,
        "Every engine: {} MiB block cache, {} MiB memtable, WAL on (synced only in fillsync), \
         Bloom filter {} bits/key, {COMPRESSION} on every level.",
        config.settings.cache_bytes >> 20,
        config.settings.memtable_bytes >> 20,
        config.settings.bloom_bits_per_key,
    );
    let _ = writeln!(
        md,
        "Machine: {} CPUs ({}), {:.0} GiB RAM, Linux {}.",
        machine.cpus, machine.cpu_model, machine.memory_gib, machine.kernel
    );
    let _ = writeln!(
        md,
        "Write amp, per user byte (key + value), from the start of a write workload to the end \
         of the flush and compactions after it: *syscalls* = bytes passed to write calls \
         (`wchar`), *pages* = page-cache bytes dirtied (`write_bytes`, charged per folio, so \
         small synced writes into large folios are overstated). Space amp = data directory \
         size (du) after the flush and compactions per logical byte, WAL files included."
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| workload | engine | ops/s | p50 | p99 | write amp (syscalls) | write amp (pages) | space amp |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|--:|");
    for r in ordered(config, results) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.workload.name(),
            r.engine.name(),
            thousands(r.ops_per_sec()),
            micros(r.p50),
            micros(r.p99),
            opt_ratio(r.write_amp),
            opt_ratio(r.dirtied_amp),
            opt_ratio(r.space_amp),
        );
    }
    let peers = peers(config);
    if config.engines.contains(&EngineKind::Distkv) && !peers.is_empty() {
        let _ = writeln!(md);
        let mut header = String::from("| workload |");
        let mut rule = String::from("|---|");
        for peer in &peers {
            let _ = write!(header, " distkv ÷ {} |", peer.name());
            rule.push_str("--:|");
        }
        let _ = writeln!(md, "{header}");
        let _ = writeln!(md, "{rule}");
        for &w in &config.workloads {
            let mut row = format!("| {} |", w.name());
            for &peer in &peers {
                let _ = write!(row, " {} |", ratio_cell(results, w, peer));
            }
            let _ = writeln!(md, "{row}");
        }
    }
    md
}

/// Writes every result, the settings and the machine as JSON.
pub fn write_json(
    path: &Path,
    config: &BenchConfig,
    machine: &Machine,
    results: &[WorkloadResult],
) -> Result<()> {
    let mut out = String::from("{\n");
    let _ = writeln!(
        out,
        "  \"machine\": {{\"cpus\": {}, \"cpu_model\": {}, \"memory_gib\": {:.1}, \
         \"kernel\": {}, \"date\": {}}},",
        machine.cpus,
        json_str(&machine.cpu_model),
        machine.memory_gib,
        json_str(&machine.kernel),
        json_str(&machine.date),
    );
    let _ = writeln!(
        out,
        "  \"config\": {{\"mode\": {}, \"num\": {}, \"reads\": {}, \"threads\": {}, \
         \"sync_ops\": {}, \"seed\": {}, \"key_bytes\": {KEY_BYTES}, \"value_bytes\": {VALUE_BYTES}, \
         \"cache_bytes\": {}, \"memtable_bytes\": {}, \"bloom_bits_per_key\": {}, \
         \"compression\": {}}},",
        json_str(config.mode.name()),
        config.num,
        config.reads,
        config.threads,
        config.sync_ops,
        config.seed,
        config.settings.cache_bytes,
        config.settings.memtable_bytes,
        config.settings.bloom_bits_per_key,
        json_str(COMPRESSION),
    );
    out.push_str("  \"results\": [\n");
    for (i, r) in results.iter().enumerate() {
        let _ = write!(
            out,
            "    {{\"engine\": {}, \"workload\": {}, \"ops\": {}, \"elapsed_s\": {:.6}, \
             \"ops_per_sec\": {:.1}, \"p50_us\": {:.3}, \"p99_us\": {:.3}, \"write_amp\": {}, \
             \"dirtied_amp\": {}, \"space_amp\": {}, \"disk_bytes\": {}, \"engine_write_amp\": {}, \"settle_s\": {}, \
             \"background_ops\": {}}}",
            json_str(r.engine.name()),
            json_str(r.workload.name()),
            r.ops,
            r.elapsed.as_secs_f64(),
            r.ops_per_sec(),
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            json_opt(r.write_amp),
            json_opt(r.dirtied_amp),
            json_opt(r.space_amp),
            r.disk_bytes.map_or("null".to_string(), |b| b.to_string()),
            json_opt(r.engine_write_amp),
            json_opt(r.settle.map(|d| d.as_secs_f64())),
            r.background_ops,
        );
        out.push_str(if i + 1 < results.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ]\n}\n");
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Results in workload order, engines in run order within each workload.
fn ordered<'a>(config: &BenchConfig, results: &'a [WorkloadResult]) -> Vec<&'a WorkloadResult> {
    let mut rows = Vec::with_capacity(results.len());
    for &w in &config.workloads {
        for &e in &config.engines {
            rows.extend(results.iter().filter(|r| r.workload == w && r.engine == e));
        }
    }
    rows
}

fn peers(config: &BenchConfig) -> Vec<EngineKind> {
    config
        .engines
        .iter()
        .copied()
        .filter(|e| *e != EngineKind::Distkv)
        .collect()
}

fn find(results: &[WorkloadResult], w: Workload, e: EngineKind) -> Option<&WorkloadResult> {
    results.iter().find(|r| r.workload == w && r.engine == e)
}

fn ratio_cell(results: &[WorkloadResult], w: Workload, peer: EngineKind) -> String {
    match (find(results, w, EngineKind::Distkv), find(results, w, peer)) {
        (Some(ours), Some(theirs)) if theirs.ops_per_sec() > 0.0 => {
            format!("{:.2}x", ours.ops_per_sec() / theirs.ops_per_sec())
        }
        _ => "-".to_string(),
    }
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in microseconds, or milliseconds once it is large.
fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn opt_ratio(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |x| format!("{x:.2}"))
}

fn json_opt(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        _ => "null".to_string(),
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.8), "1,234,568");
    }

    #[test]
    fn micros_switches_to_ms() {
        assert_eq!(micros(Duration::from_nanos(1500)), "1.5 µs");
        assert_eq!(micros(Duration::from_millis(25)), "25.0 ms");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
