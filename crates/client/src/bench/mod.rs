//! `distkv-bench`: a load generator for a DistKV cluster.
//!
//! `-concurrency` workers each send one request at a time for `-duration`. Each picks a key
//! uniformly from a key space of `-keys` keys (`bench-0000000000`, ...) and reads it with
//! probability `-read-ratio`, else writes a random printable value of `-value-size` bytes.
//! Workers are spread round-robin over the `-server` list (comma-separated), one connection
//! per server and every 16 workers. With `-token-aware` (the default) a connection learns the
//! ring from its server and sends each key's requests to a replica of the key
//! ([`crate::routing`]); with `-token-aware=false` every request goes to the worker's server.
//! Every worker's choices come from its own RNG derived from `-seed`, so a run's sequence of
//! requests per worker is reproducible (their interleaving, of course, is not).
//!
//! Without `-rate` the load is a closed loop: each worker sends its next request as soon as
//! the last one is answered, and latency is measured from sending. With `-rate=R` it is an
//! open loop at R requests a second in all: each worker has a schedule of intended start times
//! (evenly spaced, staggered across workers) and a request's latency is measured from its
//! intended start, so a server that falls behind is charged the time requests waited to be
//! sent (no coordinated omission, as wrk2 measures). The start times come from a thread that
//! sleeps on the operating system's fine timers ([`pacer`]), not from tokio's millisecond
//! wheel, whose lateness would be charged to the server. A run at half the highest throughput
//! gives the latency percentiles a service sees under a steady load.
//!
//! With `-warmup` (the default) the whole key space is written first with batch puts of
//! [`WARMUP_BATCH`] keys, so that reads find values; the warm-up is reported but not measured.
//!
//! Just before and just after the measured phase, each `-server` node's
//! `process_cpu_seconds_total` and `process_threads` are read from its `/metrics` (module
//! [`server`]), for the server CPU per operation and the threads per node; a node that cannot
//! be read makes them unavailable, not the run.
//!
//! Latencies of successful requests go into HDR histograms (1 µs to 1 min, 3 significant
//! digits), separately for reads and writes; failed requests are counted, and the first error's
//! message is kept. While running, a progress line goes to stderr every second when stderr is a
//! terminal or with `-progress`. Ctrl-C ends the run early and still prints the report.
//!
//! Flags use Go syntax like the other binaries: `-concurrency=8`, `-duration 30s`,
//! `-warmup=false`.

mod pacer;
pub mod report;
pub mod server;
pub mod target;
pub mod workload;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use distkv_flags::{normalize_go_args, parse_go_bool, parse_go_duration};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use crate::cli::TlsFlags;
use crate::cli::output::OutputFormat;
use crate::client::{Client, ClientConfig, DEFAULT_SERVER, DEFAULT_TIMEOUT, TlsConfig};
use crate::error::ClientError;
use crate::routing::ClusterClient;
use crate::types::Consistency;
use report::{BenchReport, OpStats, WarmupReport, new_histogram};
use server::{ServerUsage, sample_all};
use target::{Conn, Target};
use workload::{Op, Workload, key_name};

/// Keys per batch put during the warm-up.
pub const WARMUP_BATCH: u64 = 100;
/// Workers per connection.
const WORKERS_PER_CONNECTION: usize = 16;
/// How often a worker hands its recent latencies to the progress line.
const PROGRESS_FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// How often the progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// A benchmark run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Nodes to spread the workers over.
    pub servers: Vec<String>,
    /// Connect and per-request timeout.
    pub timeout: Duration,
    pub tls: Option<TlsConfig>,
    /// Workers, each with one request in flight.
    pub concurrency: usize,
    /// Size of the key space.
    pub keys: u64,
    /// Bytes per written value.
    pub value_size: usize,
    /// Share of reads, 0..=1.
    pub read_ratio: f64,
    /// Length of the measured phase.
    pub duration: Duration,
    /// `None` for the server's default.
    pub consistency: Option<Consistency>,
    /// Write the key space before measuring.
    pub warmup: bool,
    pub seed: u64,
    /// Print the progress line even when stderr is not a terminal.
    pub progress: bool,
    /// Send each key's requests to a replica of it.
    pub token_aware: bool,
    /// Requests a second in all (open loop); `None`: closed loop.
    pub rate: Option<f64>,
    /// The store measured: DistKV at `servers`, or a peer.
    pub target: Target,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            servers: vec![DEFAULT_SERVER.to_string()],
            timeout: DEFAULT_TIMEOUT,
            tls: None,
            concurrency: 50,
            keys: 10_000,
            value_size: 100,
            read_ratio: 0.5,
            duration: Duration::from_secs(10),
            consistency: Some(Consistency::Quorum),
            warmup: true,
            seed: 1,
            progress: false,
            token_aware: true,
            rate: None,
            target: Target::DistKv,
        }
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Connect(#[from] ClientError),
    #[error("cannot connect to {target}: {reason}")]
    Peer { target: Target, reason: String },
    #[error("a benchmark worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    #[error("cannot start the open loop's pacing thread: {0}")]
    Pacer(#[from] std::io::Error),
}

/// The flags of `distkv-bench`.
#[derive(Debug, Parser)]
#[command(
    name = "distkv-bench",
    args_override_self = true,
    about = "Load generator for DistKV: closed-loop reads and writes, latency histograms",
    after_help = "Flags may also be written Go-style: -name value, -name=value; booleans as \
                  -warmup=false. Durations use Go syntax: 500ms, 10s, 1m30s.",
    disable_version_flag = true
)]
struct Flags {
    /// Servers, comma-separated host:port; workers are spread over them.
    #[arg(long, default_value = DEFAULT_SERVER)]
    server: String,
    /// Connect and request timeout (Go duration).
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    timeout: Duration,
    /// Workers, each with one request in flight.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Size of the key space.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Share of reads, 0 to 1.
    #[arg(long, default_value_t = 0.5)]
    read_ratio: f64,
    /// Length of the measured phase (Go duration).
    #[arg(long, default_value = "10s", value_parser = parse_go_duration)]
    duration: Duration,
    /// one, quorum or all.
    #[arg(long, default_value = "quorum")]
    consistency: String,
    /// Write the whole key space before measuring.
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", value_parser = parse_go_bool)]
    warmup: bool,
    /// Seed of the workers' random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print progress every second even when stderr is not a terminal.
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    progress: bool,
    /// Send each key's requests straight to a replica of it (learning the ring from the
    /// servers); false: every request to the worker's server.
    #[arg(long, num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", value_parser = parse_go_bool)]
    token_aware: bool,
    /// Requests a second in all, on a fixed schedule (open loop; latency from each request's
    /// intended start); 0: closed loop, as fast as answers come.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// The store to measure: distkv (the -server nodes), redis://host:port (GET and SET) or
    /// etcd://host:port,... (range reads and puts; needs a build with the etcd feature).
    #[arg(long, default_value = "distkv")]
    target: String,
    /// Report format: text or json.
    #[arg(short = 'o', long = "output", default_value = "text")]
    output: String,
    #[command(flatten)]
    tls: TlsFlags,
}

/// A flag value that parses but makes no sense.
#[derive(Debug, PartialEq, thiserror::Error)]
enum ConfigError {
    #[error("-server names no server")]
    NoServers,
    #[error("-concurrency must be at least 1")]
    NoWorkers,
    #[error("-keys must be at least 1")]
    NoKeys,
    #[error("-read-ratio must be between 0 and 1, got {0}")]
    ReadRatio(f64),
    #[error("-duration must be positive")]
    NoDuration,
    #[error(
        "-rate must be 0 or a number of requests a second that gives each worker one a day at least, got {0}"
    )]
    Rate(f64),
    #[error("{0}")]
    Target(String),
    #[error(transparent)]
    Consistency(#[from] crate::types::InvalidConsistency),
    #[error(transparent)]
    Output(#[from] crate::cli::output::InvalidOutputFormat),
}

impl Flags {
    fn config(&self) -> Result<(BenchConfig, OutputFormat), ConfigError> {
        let servers: Vec<String> = self
            .server
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if servers.is_empty() {
            return Err(ConfigError::NoServers);
        }
        if self.concurrency == 0 {
            return Err(ConfigError::NoWorkers);
        }
        if self.keys == 0 {
            return Err(ConfigError::NoKeys);
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err(ConfigError::ReadRatio(self.read_ratio));
        }
        if self.duration.is_zero() {
            return Err(ConfigError::NoDuration);
        }
        // A worker's interval (concurrency / rate) must be a duration: at most a day.
        let too_slow = self.rate > 0.0 && self.concurrency as f64 / self.rate > 86_400.0;
        if !self.rate.is_finite() || self.rate < 0.0 || too_slow {
            return Err(ConfigError::Rate(self.rate));
        }
        let config = BenchConfig {
            servers,
            timeout: self.timeout,
            tls: self.tls.config(),
            concurrency: self.concurrency,
            keys: self.keys,
            value_size: self.value_size,
            read_ratio: self.read_ratio,
            duration: self.duration,
            consistency: Some(self.consistency.parse()?),
            warmup: self.warmup,
            seed: self.seed,
            progress: self.progress,
            token_aware: self.token_aware,
            rate: (self.rate > 0.0).then_some(self.rate),
            target: Target::parse(&self.target).map_err(ConfigError::Target)?,
        };
        Ok((config, self.output.parse()?))
    }
}

/// Runs `distkv-bench` on `args` (the program name first) and returns the exit status: 0 after
/// a run (even with failed requests, which the report counts), 1 when it could not run, 2 on a
/// malformed flag.
pub fn run(args: impl IntoIterator<Item = String>) -> ExitCode {
    let flags = match Flags::try_parse_from(normalize_go_args(args)) {
        Ok(flags) => flags,
        Err(e) => {
            // Help goes to stdout with status 0, errors to stderr with status 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let (config, format) = match flags.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let show_progress = config.progress || std::io::stderr().is_terminal();
    let result = runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let ctrl_c_stop = Arc::clone(&stop);
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                ctrl_c_stop.store(true, Ordering::Relaxed);
            }
        });
        let result = run_bench(&config, show_progress, &stop).await;
        tasks.shutdown().await;
        result
    });
    match result {
        Ok(report) => {
            let text = match format {
                OutputFormat::Text => report::render_text(&config, &report),
                OutputFormat::Json => report::render_json(&config, &report),
            };
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: cannot write the report: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Counters shared between the workers and the progress line.
#[derive(Debug)]
struct Live {
    ops: AtomicU64,
    errors: AtomicU64,
    /// Latencies of every request so far, for the progress line's p99.
    latency_us: Mutex<Histogram<u64>>,
}

/// Connects, warms up and runs the measured phase; `stop` ends it early. With `show_progress`
/// a progress line goes to stderr every second.
pub async fn run_bench(
    config: &BenchConfig,
    show_progress: bool,
    stop: &Arc<AtomicBool>,
) -> Result<BenchReport, BenchError> {
    let (clients, nodes) = connect_all(config).await?;

    let warmup = if config.warmup {
        let batches: Vec<Conn> = match config.target {
            Target::DistKv => nodes
                .iter()
                .map(|n| Conn::Node(Box::new(n.clone())))
                .collect(),
            _ => clients.clone(),
        };
        Some(warm_up(config, &batches).await?)
    } else {
        None
    };

    let live = Arc::new(Live {
        ops: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latency_us: Mutex::new(new_histogram()),
    });
    let server_before = sample_all(&nodes).await;
    let started = Instant::now();
    let deadline = started + config.duration;
    let mut workers = JoinSet::new();
    // Open loop: the intended start times, from a thread of their own (see `pacer`).
    let (mut starts, pacer) = match config.rate {
        Some(rate) => {
            let (starts, thread) = pacer::start(
                started,
                rate,
                config.concurrency,
                deadline,
                Arc::clone(stop),
            )?;
            (starts.into_iter(), Some(thread))
        }
        None => (Vec::new().into_iter(), None),
    };
    for worker in 0..config.concurrency {
        let client = clients[worker % clients.len()].clone();
        let workload = Workload::new(
            config.seed,
            worker as u64,
            config.keys,
            config.read_ratio,
            config.value_size,
        );
        let live = Arc::clone(&live);
        let stop = Arc::clone(stop);
        let consistency = config.consistency;
        // Open loop: worker w's receiver is the pacer's w-th.
        let schedule = starts.next();
        workers.spawn(async move {
            run_worker(
                client,
                workload,
                consistency,
                schedule,
                deadline,
                stop,
                live,
            )
            .await
        });
    }

    if show_progress {
        let tty = std::io::stderr().is_terminal();
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + PROGRESS_INTERVAL,
            PROGRESS_INTERVAL,
        );
        let mut last_ops = 0;
        let mut last_tick = started;
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            ticker.tick().await;
            let now = Instant::now();
            let ops = live.ops.load(Ordering::Relaxed);
            let rate = (ops - last_ops) as f64 / now.duration_since(last_tick).as_secs_f64();
            let p99 = live
                .latency_us
                .lock()
                .map(|h| h.value_at_quantile(0.99))
                .unwrap_or(0);
            let line = report::render_progress(
                now.duration_since(started),
                rate,
                live.errors.load(Ordering::Relaxed),
                p99,
            );
            if tty {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
            (last_ops, last_tick) = (ops, now);
        }
        if tty {
            eprintln!();
        }
    }

    let mut reads = OpStats::default();
    let mut writes = OpStats::default();
    let mut first_error = None;
    while let Some(done) = workers.join_next().await {
        let result = done?;
        reads.merge(&result.reads);
        writes.merge(&result.writes);
        if first_error.is_none() {
            first_error = result.first_error;
        }
    }
    let elapsed = started.elapsed();
    if let Some(pacer) = pacer {
        // It handed out its last start (or saw the stop) before the workers could end.
        let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
    }
    let server = ServerUsage::between(server_before, sample_all(&nodes).await);
    Ok(BenchReport {
        elapsed,
        reads,
        writes,
        first_error,
        warmup,
        server,
    })
}

/// The workers' connections, and one client per server in `-server` order (for the warm-up's
/// batches and the servers' metrics; none for a peer target, whose cost the caller measures
/// from outside).
///
/// Token-aware: one [`ClusterClient`] for every worker, so one HTTP/2 connection per node
/// carries every request for the keys it coordinates (as Cassandra's drivers keep one
/// connection per host). Otherwise one connection per server and more for every
/// [`WORKERS_PER_CONNECTION`] workers, in round-robin server order.
async fn connect_all(config: &BenchConfig) -> Result<(Vec<Conn>, Vec<Client>), BenchError> {
    let connections = config
        .servers
        .len()
        .max(config.concurrency.div_ceil(WORKERS_PER_CONNECTION));
    if config.target != Target::DistKv {
        let mut conns = Vec::with_capacity(connections);
        for _ in 0..config.concurrency.div_ceil(WORKERS_PER_CONNECTION) {
            let conn = Conn::connect_peer(&config.target)
                .await
                .map_err(|e| BenchError::Peer {
                    target: config.target.clone(),
                    reason: e.to_string(),
                })?;
            conns.push(conn);
        }
        return Ok((conns, Vec::new()));
    }
    let client_config = |server: &String| ClientConfig {
        server: server.clone(),
        timeout: config.timeout,
        tls: config.tls.clone(),
    };
    let mut nodes = Vec::with_capacity(config.servers.len());
    for server in &config.servers {
        nodes.push(Client::connect(client_config(server)).await?);
    }
    if config.token_aware {
        let routed = ClusterClient::connect(client_config(&config.servers[0])).await?;
        routed.connect_nodes().await;
        return Ok((vec![Conn::Routed(routed)], nodes));
    }
    let mut conns: Vec<Conn> = nodes
        .iter()
        .map(|n| Conn::Node(Box::new(n.clone())))
        .collect();
    for i in conns.len()..connections {
        let server = &config.servers[i % config.servers.len()];
        conns.push(Conn::Node(Box::new(
            Client::connect(client_config(server)).await?,
        )));
    }
    Ok((conns, nodes))
}

/// Writes every key once, in batches, with `concurrency` batches in flight.
async fn warm_up(config: &BenchConfig, clients: &[Conn]) -> Result<WarmupReport, BenchError> {
    let started = Instant::now();
    let batches = config.keys.div_ceil(WARMUP_BATCH);
    let next_batch = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for worker in 0..config.concurrency.min(batches as usize) {
        let client = clients[worker % clients.len()].clone();
        let next_batch = Arc::clone(&next_batch);
        // Distinct from the measured phase's streams.
        let mut values = Workload::new(
            config.seed ^ 0x5741_524D_5550,
            worker as u64,
            config.keys,
            0.0,
            config.value_size,
        );
        let (keys, consistency) = (config.keys, config.consistency);
        tasks.spawn(async move {
            let mut failed = 0;
            loop {
                let batch = next_batch.fetch_add(1, Ordering::Relaxed);
                if batch >= batches {
                    return failed;
                }
                let range = batch * WARMUP_BATCH..((batch + 1) * WARMUP_BATCH).min(keys);
                let len = range.end - range.start;
                let items = range.map(|i| (key_name(i), values.value())).collect();
                match client.put_many(items, consistency).await {
                    Ok(n) => failed += n,
                    Err(_) => failed += len,
                }
            }
        });
    }
    let mut failed_keys = 0;
    while let Some(done) = tasks.join_next().await {
        failed_keys += done?;
    }
    Ok(WarmupReport {
        keys: config.keys,
        failed_keys,
        elapsed: started.elapsed(),
    })
}

/// What one worker measured.
struct WorkerResult {
    reads: OpStats,
    writes: OpStats,
    first_error: Option<String>,
}

async fn run_worker(
    client: Conn,
    mut workload: Workload,
    consistency: Option<Consistency>,
    mut schedule: Option<pacer::Starts>,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
) -> WorkerResult {
    let mut result = WorkerResult {
        reads: OpStats::default(),
        writes: OpStats::default(),
        first_error: None,
    };
    let mut recent = new_histogram();
    let mut last_flush = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Closed loop: until the deadline, latency from now. Open loop: every request whose
        // intended start is before the deadline, even when the run fell behind (those are
        // the slow ones), latency from the intended start.
        let sent = match &mut schedule {
            None if Instant::now() >= deadline => break,
            None => Instant::now(),
            Some(starts) => match starts.recv().await {
                Some(intended) => intended,
                // The pacer handed out every start due before the deadline.
                None => break,
            },
        };
        let op = workload.next_op();
        let (outcome, stats) = match op {
            Op::Read { key } => (client.get(key, consistency).await, &mut result.reads),
            Op::Write { key, value } => (
                client.put(key, value, consistency).await,
                &mut result.writes,
            ),
        };
        let micros = u64::try_from(sent.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        live.ops.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                // Auto-resizing histograms accept any value.
                let _ = stats.latency_us.record(micros);
                let _ = recent.record(micros);
            }
            Err(e) => {
                stats.errors += 1;
                live.errors.fetch_add(1, Ordering::Relaxed);
                result.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        if last_flush.elapsed() >= PROGRESS_FLUSH_INTERVAL {
            flush(&live, &mut recent);
            last_flush = Instant::now();
        }
    }
    flush(&live, &mut recent);
    result
}

/// Hands a worker's recent latencies to the shared histogram; the lock is held only to add.
fn flush(live: &Live, recent: &mut Histogram<u64>) {
    if recent.is_empty() {
        return;
    }
    if let Ok(mut shared) = live.latency_us.lock() {
        let _ = shared.add(&*recent);
    }
    recent.reset();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(BenchConfig, OutputFormat), ConfigError> {
        let args = std::iter::once("distkv-bench").chain(args.iter().copied());
        Flags::try_parse_from(normalize_go_args(args.map(String::from)))
            .unwrap()
            .config()
    }

    #[test]
    fn defaults() {
        let (config, format) = parse(&[]).unwrap();
        assert_eq!(config, BenchConfig::default());
        assert_eq!(format, OutputFormat::Text);
        assert_eq!(config.concurrency, 50);
        assert_eq!(config.keys, 10_000);
        assert_eq!(config.value_size, 100);
        assert_eq!(config.read_ratio, 0.5);
        assert_eq!(config.duration, Duration::from_secs(10));
        assert!(config.warmup);
    }

    #[test]
    fn go_style_flags() {
        let (config, format) = parse(&[
            "-server=a:1, b:2,,c:3",
            "-concurrency",
            "8",
            "-keys=100",
            "-value-size=10",
            "-read-ratio=0.9",
            "-duration=1m30s",
            "-consistency=ONE",
            "-warmup=false",
            "-seed=7",
            "-progress",
            "-o",
            "json",
            "-tls-enabled",
        ])
        .unwrap();
        assert_eq!(config.servers, ["a:1", "b:2", "c:3"]);
        assert_eq!(config.concurrency, 8);
        assert_eq!(config.keys, 100);
        assert_eq!(config.value_size, 10);
        assert_eq!(config.read_ratio, 0.9);
        assert_eq!(config.duration, Duration::from_secs(90));
        assert_eq!(config.consistency, Some(Consistency::One));
        assert!(!config.warmup);
        assert_eq!(config.seed, 7);
        assert!(config.progress);
        assert!(config.tls.is_some());
        assert_eq!(format, OutputFormat::Json);
        assert!(config.token_aware);
        assert_eq!(config.rate, None);
        let (config, _) = parse(&["-token-aware=false", "-rate", "2500"]).unwrap();
        assert!(!config.token_aware);
        assert_eq!(config.rate, Some(2500.0));
        assert_eq!(parse(&["-rate=0"]).unwrap().0.rate, None);
    }

    #[test]
    fn nonsense_values_are_refused() {
        assert_eq!(parse(&["-server= , "]), Err(ConfigError::NoServers));
        assert_eq!(parse(&["-concurrency=0"]), Err(ConfigError::NoWorkers));
        assert_eq!(parse(&["-keys=0"]), Err(ConfigError::NoKeys));
        assert_eq!(
            parse(&["-read-ratio=1.5"]),
            Err(ConfigError::ReadRatio(1.5))
        );
        assert_eq!(parse(&["-duration=0s"]), Err(ConfigError::NoDuration));
        assert_eq!(parse(&["-rate=-5"]), Err(ConfigError::Rate(-5.0)));
        assert_eq!(parse(&["-rate=1e-300"]), Err(ConfigError::Rate(1e-300)));
        assert!(matches!(
            parse(&["-consistency=most"]),
            Err(ConfigError::Consistency(_))
        ));
        assert!(matches!(parse(&["-o=xml"]), Err(ConfigError::Output(_))));
    }

    #[tokio::test]
    async fn unreachable_server_fails_before_measuring() {
        let config = BenchConfig {
            servers: vec!["127.0.0.1:1".into()],
            timeout: Duration::from_millis(500),
            ..BenchConfig::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let err = run_bench(&config, false, &stop).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("failed to connect to server 127.0.0.1:1: "),
            "{err}"
        );
    }
}
