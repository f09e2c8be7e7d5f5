//! The benchmark's results and how they are printed.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::BenchConfig;
use super::server::{NodeUsage, ServerUsage};
use super::target::Target;

/// Latencies are recorded in microseconds, from 1 µs to a minute, to 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's rules (low >= 1, high >= 2 * low,
    // sigfig <= 5), so this cannot fail.
    let mut histogram = Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"));
    histogram.auto(true);
    histogram
}

/// Results of one kind of request.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latencies of successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Failed requests.
    pub errors: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            latency_us: new_histogram(),
            errors: 0,
        }
    }
}

impl OpStats {
    /// Successful requests.
    pub fn ok(&self) -> u64 {
        self.latency_us.len()
    }

    /// Successful and failed requests.
    pub fn total(&self) -> u64 {
        self.ok() + self.errors
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &OpStats) {
        // Both histograms auto-resize, so adding cannot run out of range.
        let _ = self.latency_us.add(&other.latency_us);
        self.errors += other.errors;
    }
}

/// The warm-up phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WarmupReport {
    /// Keys written.
    pub keys: u64,
    /// Keys whose write failed.
    pub failed_keys: u64,
    #[serde(rename = "elapsed_secs", serialize_with = "secs")]
    pub elapsed: Duration,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// How long the measured phase ran (shorter than asked when interrupted).
    pub elapsed: Duration,
    pub reads: OpStats,
    pub writes: OpStats,
    /// The first error seen, to tell what went wrong.
    pub first_error: Option<String>,
    pub warmup: Option<WarmupReport>,
    /// What the target nodes spent: CPU time and threads.
    pub server: ServerUsage,
}

impl BenchReport {
    pub fn total_ops(&self) -> u64 {
        self.reads.total() + self.writes.total()
    }

    pub fn errors(&self) -> u64 {
        self.reads.errors + self.writes.errors
    }

    /// Requests (successful or not) per second of the measured phase.
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.total_ops() as f64 / secs
        } else {
            0.0
        }
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// The final report as text.
pub fn render_text(config: &BenchConfig, report: &BenchReport) -> String {
    let mut out = String::new();
    let consistency = config.consistency.map_or("server default", |c| c.as_str());
    let _ = match &config.target {
        Target::DistKv => writeln!(out, "Servers:     {}", config.servers.join(", ")),
        peer => writeln!(out, "Target:      {peer}"),
    };
    let _ = writeln!(
        out,
        "Workload:    {} clients, {} keys, {}-byte values, {:.0}% reads, consistency {consistency}, seed {}",
        config.concurrency,
        config.keys,
        config.value_size,
        config.read_ratio * 100.0,
        config.seed
    );
    if let Some(warmup) = &report.warmup {
        let _ = writeln!(
            out,
            "Warm-up:     {} keys in {:.2}s ({} failed)",
            warmup.keys,
            warmup.elapsed.as_secs_f64(),
            warmup.failed_keys
        );
    }
    let routing = match (&config.target, config.token_aware) {
        (Target::DistKv, true) => ", token-aware (each key to a replica)",
        (Target::DistKv, false) => ", to each worker's server",
        _ => "",
    };
    let _ = match config.rate {
        None => writeln!(out, "Load:        closed loop{routing}"),
        Some(rate) => writeln!(
            out,
            "Load:        open loop at {rate:.0} ops/s (latency from intended start){routing}"
        ),
    };
    let _ = writeln!(out, "Duration:    {:.2}s", report.elapsed.as_secs_f64());
    out.push('\n');
    let _ = writeln!(
        out,
        "Total ops:   {} ({} reads, {} writes)",
        report.total_ops(),
        report.reads.total(),
        report.writes.total()
    );
    let _ = writeln!(out, "Throughput:  {:.1} ops/s", report.ops_per_sec());
    let nodes = report.server.nodes.len();
    let over = format!("over {nodes} node{}", if nodes == 1 { "" } else { "s" });
    match report.server.cpu_seconds() {
        Ok(seconds) => match report.server.cpu_us_per_op(report.total_ops()) {
            Some(us) => {
                let _ = writeln!(out, "Server CPU:  {us:.1} µs/op ({seconds:.2} s {over})");
            }
            None => {
                let _ = writeln!(out, "Server CPU:  {seconds:.2} s {over} (no operations)");
            }
        },
        Err(_) if config.target != Target::DistKv => {
            let _ = writeln!(
                out,
                "Server CPU:  not read (a peer's is measured from outside)"
            );
        }
        Err(reason) => {
            let _ = writeln!(out, "Server CPU:  unavailable ({reason})");
        }
    }
    if let Some(threads) = report.server.threads_max() {
        let _ = writeln!(
            out,
            "Threads:     {threads} per node at most (at the end of the run)"
        );
    }
    let _ = writeln!(
        out,
        "Errors:      {} ({} reads, {} writes)",
        report.errors(),
        report.reads.errors,
        report.writes.errors
    );
    if let Some(error) = &report.first_error {
        let _ = writeln!(out, "First error: {error}");
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "Latency (ms)", "ok", "p50", "p99", "p99.9", "max"
    );
    for (name, stats) in [("reads", &report.reads), ("writes", &report.writes)] {
        let h = &stats.latency_us;
        let _ = writeln!(
            out,
            "{:<12} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            name,
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
        );
    }
    out
}

/// The final report as one JSON object: the settings (with `target`, `token_aware`, and
/// `rate`: `null` for a closed loop), then `total_ops`, `ops_per_sec`,
/// `errors`, `elapsed_secs`, `first_error`, `warmup`; the servers' `server_cpu_seconds`,
/// `server_cpu_us_per_op`, `server_threads_max` (each `null` when unknown),
/// `server_cpu_error` (why they are unknown, else `null`) and `server_nodes` (per node
/// `server`, `cpu_seconds_before`, `cpu_seconds_after`, `cpu_seconds`, `threads_before`,
/// `threads_after`, `error`); and for `reads` and `writes` the counts `ok` and `errors` and
/// the latencies `p50_us`, `p99_us`, `p999_us`, `max_us`, `mean_us`.
pub fn render_json(config: &BenchConfig, report: &BenchReport) -> String {
    #[derive(Serialize)]
    struct Latency {
        ok: u64,
        errors: u64,
        p50_us: u64,
        p99_us: u64,
        p999_us: u64,
        max_us: u64,
        mean_us: f64,
    }
    #[derive(Serialize)]
    struct View<'a> {
        target: String,
        servers: &'a [String],
        concurrency: usize,
        keys: u64,
        value_size: usize,
        read_ratio: f64,
        consistency: Option<&'static str>,
        seed: u64,
        token_aware: bool,
        rate: Option<f64>,
        duration_secs: f64,
        elapsed_secs: f64,
        total_ops: u64,
        ops_per_sec: f64,
        errors: u64,
        first_error: Option<&'a str>,
        warmup: Option<&'a WarmupReport>,
        server_cpu_seconds: Option<f64>,
        server_cpu_us_per_op: Option<f64>,
        server_threads_max: Option<u64>,
        server_cpu_error: Option<String>,
        server_nodes: &'a [NodeUsage],
        reads: Latency,
        writes: Latency,
    }
    let latency = |stats: &OpStats| {
        let h = &stats.latency_us;
        Latency {
            ok: h.len(),
            errors: stats.errors,
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    };
    crate::cli::output::json_line(&View {
        target: config.target.to_string(),
        servers: &config.servers,
        concurrency: config.concurrency,
        keys: config.keys,
        value_size: config.value_size,
        read_ratio: config.read_ratio,
        consistency: config.consistency.map(|c| c.as_str()),
        seed: config.seed,
        token_aware: config.token_aware,
        rate: config.rate,
        duration_secs: config.duration.as_secs_f64(),
        elapsed_secs: report.elapsed.as_secs_f64(),
        total_ops: report.total_ops(),
        ops_per_sec: report.ops_per_sec(),
        errors: report.errors(),
        first_error: report.first_error.as_deref(),
        warmup: report.warmup.as_ref(),
        server_cpu_seconds: report.server.cpu_seconds().ok(),
        server_cpu_us_per_op: report.server.cpu_us_per_op(report.total_ops()),
        server_threads_max: report.server.threads_max(),
        server_cpu_error: report.server.cpu_seconds().err(),
        server_nodes: &report.server.nodes,
        reads: latency(&report.reads),
        writes: latency(&report.writes),
    })
}

/// The live progress line: seconds so far, throughput over the last interval, errors so far and
/// the p99 of every request so far.
pub fn render_progress(elapsed: Duration, ops_per_sec: f64, errors: u64, p99_us: u64) -> String {
    format!(
        "[{:>4}s] {:>9.0} ops/s  errors {:<6}  p99 {:.3} ms",
        elapsed.as_secs(),
        ops_per_sec,
        errors,
        ms(p99_us)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::server::ProcessSample;
    use crate::types::Consistency;

    fn stats(latencies_us: &[u64], errors: u64) -> OpStats {
        let mut stats = OpStats::default();
        for &l in latencies_us {
            stats.latency_us.record(l).unwrap();
        }
        stats.errors = errors;
        stats
    }

    fn config() -> BenchConfig {
        BenchConfig {
            servers: vec!["localhost:8080".into(), "localhost:8081".into()],
            concurrency: 50,
            keys: 10_000,
            value_size: 100,
            read_ratio: 0.5,
            duration: Duration::from_secs(10),
            consistency: Some(Consistency::Quorum),
            seed: 1,
            ..BenchConfig::default()
        }
    }

    fn report() -> BenchReport {
        BenchReport {
            elapsed: Duration::from_secs(2),
            reads: stats(&[1000, 1000, 2000, 4000], 1),
            writes: stats(&[500, 3000], 0),
            first_error: Some("get failed: boom".into()),
            warmup: Some(WarmupReport {
                keys: 10_000,
                failed_keys: 0,
                elapsed: Duration::from_millis(1500),
            }),
            server: ServerUsage::between(
                vec![
                    ("localhost:8080".into(), sample(1.0, 30)),
                    ("localhost:8081".into(), sample(2.0, 31)),
                ],
                vec![
                    ("localhost:8080".into(), sample(1.25, 33)),
                    ("localhost:8081".into(), sample(2.25, 32)),
                ],
            ),
        }
    }

    fn sample(cpu_seconds: f64, threads: u64) -> Result<ProcessSample, String> {
        Ok(ProcessSample {
            cpu_seconds,
            threads: Some(threads),
        })
    }

    /// The report of a run against a node whose metrics could not be read.
    fn report_without_server_metrics() -> BenchReport {
        let unreadable =
            || {
                vec![
                ("localhost:8080".into(), sample(1.0, 30)),
                (
                    "localhost:8081".into(),
                    Err("GET /metrics from server localhost:8081 failed (HTTP 404): no such path"
                        .into()),
                ),
            ]
            };
        BenchReport {
            server: ServerUsage::between(unreadable(), unreadable()),
            ..report()
        }
    }

    #[test]
    fn counts() {
        let r = report();
        assert_eq!(r.total_ops(), 7);
        assert_eq!(r.errors(), 1);
        assert_eq!(r.ops_per_sec(), 3.5);
        let empty = BenchReport {
            elapsed: Duration::ZERO,
            reads: OpStats::default(),
            writes: OpStats::default(),
            first_error: None,
            warmup: None,
            server: ServerUsage::default(),
        };
        assert_eq!(empty.ops_per_sec(), 0.0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = stats(&[10, 20], 1);
        a.merge(&stats(&[30], 2));
        assert_eq!((a.ok(), a.errors, a.total()), (3, 3, 6));
        assert_eq!(a.latency_us.max(), 30);
    }

    #[test]
    fn text_report() {
        assert_eq!(
            render_text(&config(), &report()),
            "Servers:     localhost:8080, localhost:8081\n\
             Workload:    50 clients, 10000 keys, 100-byte values, 50% reads, consistency quorum, seed 1\n\
             Warm-up:     10000 keys in 1.50s (0 failed)\n\
             Load:        closed loop, token-aware (each key to a replica)\n\
             Duration:    2.00s\n\
             \n\
             Total ops:   7 (5 reads, 2 writes)\n\
             Throughput:  3.5 ops/s\n\
             Server CPU:  71428.6 µs/op (0.50 s over 2 nodes)\n\
             Threads:     33 per node at most (at the end of the run)\n\
             Errors:      1 (1 reads, 0 writes)\n\
             First error: get failed: boom\n\
             \n\
             Latency (ms)         ok       p50       p99     p99.9       max\n\
             reads                 4     1.000     4.001     4.001     4.001\n\
             writes                2     0.500     3.001     3.001     3.001\n"
        );
    }

    #[test]
    fn text_report_without_server_metrics() {
        let text = render_text(&config(), &report_without_server_metrics());
        assert!(
            text.contains(
                "Throughput:  3.5 ops/s\n\
                 Server CPU:  unavailable (GET /metrics from server localhost:8081 failed (HTTP 404): no such path)\n\
                 Errors:      1 (1 reads, 0 writes)\n"
            ),
            "{text}"
        );
        assert!(!text.contains("Threads:"), "{text}");
    }

    #[test]
    fn json_report() {
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&config(), &report())).unwrap();
        assert_eq!(
            json["servers"],
            serde_json::json!(["localhost:8080", "localhost:8081"])
        );
        assert_eq!(json["consistency"], "quorum");
        assert_eq!(json["total_ops"], 7);
        assert_eq!(json["ops_per_sec"], 3.5);
        assert_eq!(json["errors"], 1);
        assert_eq!(json["first_error"], "get failed: boom");
        assert_eq!(json["elapsed_secs"], 2.0);
        assert_eq!(json["duration_secs"], 10.0);
        assert_eq!(
            json["warmup"],
            serde_json::json!({"keys": 10000, "failed_keys": 0, "elapsed_secs": 1.5})
        );
        assert_eq!(json["reads"]["ok"], 4);
        assert_eq!(json["reads"]["errors"], 1);
        assert_eq!(json["reads"]["p50_us"], 1000);
        assert_eq!(json["reads"]["max_us"], 4001);
        assert_eq!(json["reads"]["mean_us"], 2000.25);
        assert_eq!(json["writes"]["p99_us"], 3001);
        assert_eq!(json["server_cpu_seconds"], 0.5);
        // serde_json reads floats back to within an ulp or two.
        let per_op = json["server_cpu_us_per_op"].as_f64().unwrap();
        assert!((per_op - 0.5 * 1e6 / 7.0).abs() < 1e-6, "{json}");
        assert_eq!(json["server_threads_max"], 33);
        assert_eq!(json["server_cpu_error"], serde_json::Value::Null);
        assert_eq!(
            json["server_nodes"][1],
            serde_json::json!({
                "server": "localhost:8081",
                "cpu_seconds_before": 2.0,
                "cpu_seconds_after": 2.25,
                "cpu_seconds": 0.25,
                "threads_before": 31,
                "threads_after": 32,
                "error": null,
            })
        );
    }

    #[test]
    fn json_report_without_server_metrics() {
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&config(), &report_without_server_metrics()))
                .unwrap();
        assert_eq!(json["server_cpu_seconds"], serde_json::Value::Null);
        assert_eq!(json["server_cpu_us_per_op"], serde_json::Value::Null);
        assert_eq!(json["server_threads_max"], serde_json::Value::Null);
        assert_eq!(
            json["server_cpu_error"],
            "GET /metrics from server localhost:8081 failed (HTTP 404): no such path"
        );
        assert_eq!(json["server_nodes"][0]["cpu_seconds"], 0.0);
        assert_eq!(
            json["server_nodes"][1]["cpu_seconds_before"],
            serde_json::Value::Null
        );
        // The run itself is reported as usual.
        assert_eq!(json["total_ops"], 7);
    }

    #[test]
    fn progress_line() {
        assert_eq!(
            render_progress(Duration::from_millis(3_200), 12_345.4, 2, 2_100),
            "[   3s]     12345 ops/s  errors 2       p99 2.100 ms"
        );
    }
}
