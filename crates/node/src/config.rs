//! Server configuration: the original's flags (same names and defaults, Go syntax accepted) plus
//! DistKV's own, validated once into typed values.
//!
//! Differences from the original, on purpose: `-mem-table-size` defaults to 64 MiB (the
//! original's 1024 bytes was a bug its README contradicts); an empty `-node-id` is generated once
//! and kept in `<data-dir>/NODE_ID`, so a restarted node keeps its identity; an unknown
//! `-tls-client-auth` is an error rather than `NoClientCert`.
//!
//! Size: a quarter of this file is its tests; the rest is the flag table and its checks,
//! which read best whole.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use distkv_cluster::{ConflictMode, Quorum};
use distkv_flags::{parse_go_bool, parse_go_duration};

/// Room left in a message between replicas, beyond one stored entry and its key, for the
/// request's or reply's other fields and protobuf framing.
const MESSAGE_FRAMING_BYTES: usize = 64 * 1024;

/// Flags of `distkv-server`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "distkv-server",
    version,
    // As with Go's flag package, a repeated flag takes its last value.
    args_override_self = true,
    about = "A DistKV node: stores, replicates and serves data.",
    long_about = "A DistKV node: stores, replicates and serves data. Flags use Go syntax as the original's do: -name=value, -name value, --name=value; booleans may be bare (-sloppy-quorum)."
)]
pub struct Flags {
    /// A TOML file of settings (flag names as keys); flags and DISTKV_* variables override it
    #[arg(long = "config", default_value = "")]
    pub config: String,
    /// Print the effective configuration (and where each value came from) and exit
    #[arg(long = "print-config", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub print_config: bool,
    /// Unique node id; generated once (and kept in <data-dir>/NODE_ID) when empty
    #[arg(long = "node-id", default_value = "")]
    pub node_id: String,
    /// Address to listen on (host:port)
    #[arg(long, default_value = "localhost:8080")]
    pub address: String,
    /// Address peers and clients use to reach this node (default: -address)
    #[arg(long = "advertise-address", default_value = "")]
    pub advertise_address: String,
    /// A second listener for the HTTP endpoints only (/metrics, /health, /ready, /status, /);
    /// they are always served on -address too
    #[arg(long = "http-address", default_value = "")]
    pub http_address: String,
    /// Directory for data
    #[arg(long = "data-dir", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Comma-separated host:port of nodes to join through
    #[arg(long = "seed-nodes", default_value = "")]
    pub seed_nodes: String,
    /// Virtual nodes (tokens) of this node on the hash ring
    #[arg(long = "virtual-nodes", default_value_t = 150)]
    pub virtual_nodes: u32,
    /// Memtable flush threshold in bytes
    #[arg(long = "mem-table-size", default_value_t = 64 << 20)]
    pub mem_table_size: usize,
    /// Target size of SSTables written by compaction, in bytes
    #[arg(long = "sstable-size", default_value_t = 268_435_456)]
    pub sstable_size: u64,
    /// Bloom filter bits per key
    #[arg(long = "bloom-filter-bits", default_value_t = 10)]
    pub bloom_filter_bits: u32,
    /// Number of L0 SSTables that triggers a compaction
    #[arg(long = "compaction-threshold", default_value_t = 4)]
    pub compaction_threshold: usize,
    /// Replicas per key (N)
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Replies a read waits for (R) when the request does not say
    #[arg(long = "read-quorum", default_value_t = 2)]
    pub read_quorum: usize,
    /// Acks a write waits for (W) when the request does not say
    #[arg(long = "write-quorum", default_value_t = 2)]
    pub write_quorum: usize,
    /// How often this node announces it is alive
    #[arg(long = "heartbeat-interval", default_value = "1s", value_parser = parse_go_duration)]
    pub heartbeat_interval: Duration,
    /// Silence after which a node is suspected
    #[arg(long = "suspect-timeout", default_value = "30s", value_parser = parse_go_duration)]
    pub suspect_timeout: Duration,
    /// Silence after which a node is declared dead
    #[arg(long = "dead-timeout", default_value = "2m0s", value_parser = parse_go_duration)]
    pub dead_timeout: Duration,
    /// Interval between membership exchanges
    #[arg(long = "gossip-interval", default_value = "1s", value_parser = parse_go_duration)]
    pub gossip_interval: Duration,
    /// Peers contacted per membership exchange
    #[arg(long = "gossip-fanout", default_value_t = 3)]
    pub gossip_fanout: usize,
    /// Serve with TLS
    #[arg(long = "tls-enabled", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub tls_enabled: bool,
    /// The node's certificate chain (PEM), shown to clients and, as a client certificate, to peers
    #[arg(long = "tls-cert-file", default_value = "")]
    pub tls_cert_file: String,
    /// The private key of -tls-cert-file (PEM)
    #[arg(long = "tls-key-file", default_value = "")]
    pub tls_key_file: String,
    /// CA certificates (PEM) that peers' certificates (and clients' where -tls-client-auth verifies) must chain to; nodes of a cluster need it
    #[arg(long = "tls-ca-file", default_value = "")]
    pub tls_ca_file: String,
    /// Client certificates: NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert
    #[arg(long = "tls-client-auth", default_value = "NoClientCert")]
    pub tls_client_auth: String,
    /// Deadline of each request to a peer and of each client request's quorum wait
    #[arg(long = "request-timeout", default_value = "5s", value_parser = parse_go_duration)]
    pub request_timeout: Duration,
    /// Concurrent versions: keep them as siblings (vclock) or keep the last writer's (lww)
    #[arg(long = "conflict-resolution", default_value = "vclock", value_parser = ["vclock", "lww"])]
    pub conflict_resolution: String,
    /// Count hinted writes toward W (Dynamo's sloppy quorum: availability over consistency)
    #[arg(long = "sloppy-quorum", num_args = 0..=1, default_value = "false", default_missing_value = "true", value_parser = parse_go_bool)]
    pub sloppy_quorum: bool,
    /// Share of reads (0 to 1) after which the replicas the read did not ask are read too, for
    /// read repair only, so that it also reaches replicas the quorum does not need
    /// (anti-entropy repairs the rest)
    #[arg(long = "read-repair-chance", default_value_t = 0.1)]
    pub read_repair_chance: f64,
    /// When replica writes reach the disk: always (fdatasync before acknowledging), never
    /// (the OS decides; a process crash still loses nothing), or an interval such as 100ms
    #[arg(long = "wal-sync", default_value = "always")]
    pub wal_sync: String,
    /// Largest key accepted, in bytes
    #[arg(long = "max-key-size", default_value_t = 64 * 1024)]
    pub max_key_size: usize,
    /// Largest value accepted, in bytes
    #[arg(long = "max-value-size", default_value_t = 4 << 20)]
    pub max_value_size: usize,
    /// Most items accepted in one BatchPut
    #[arg(long = "max-batch-items", default_value_t = 10_000)]
    pub max_batch_items: usize,
    /// Client requests handled at once; more are refused at once ("server busy")
    #[arg(long = "max-concurrent-requests", default_value_t = 1024)]
    pub max_concurrent_requests: usize,
    /// Connections open at once, clients and peers (more wait until one closes)
    #[arg(long = "max-connections", default_value_t = 4096)]
    pub max_connections: usize,
    /// Largest gRPC message accepted or sent, in bytes
    #[arg(long = "max-message-size", default_value_t = 64 << 20)]
    pub max_message_size: usize,
    /// How often held hints are offered to their nodes
    #[arg(long = "hint-interval", default_value = "1s", value_parser = parse_go_duration)]
    pub hint_interval: Duration,
    /// How often replicas compare Merkle trees of the ranges they share, then purge old tombstones (0 turns these rounds off: tombstones are then purged only after a `distkv-client repair`, and data of handed-over ranges stays on disk)
    #[arg(long = "anti-entropy-interval", default_value = "10m0s", value_parser = parse_go_duration)]
    pub anti_entropy_interval: Duration,
    /// Age after which a deleted key's tombstone is purged; must exceed the anti-entropy
    /// interval, so that every replica has had the tombstone offered first
    #[arg(long = "tombstone-gc-grace", default_value = "3h0m0s", value_parser = parse_go_duration)]
    pub tombstone_gc_grace: Duration,
    /// Data streaming (join, decommission, re-replication) in MiB/s; 0 is unlimited
    #[arg(long = "stream-throughput", default_value_t = 64)]
    pub stream_throughput: u64,
    /// Threads that run requests and background work; 0 is one per core this process may use.
    /// Set it lower where several nodes (or a node and its clients) share the cores: threads
    /// waking each other across processes cost more than they add
    #[arg(long = "worker-threads", default_value_t = 0)]
    pub worker_threads: usize,
    /// Log level: error, warn, info, debug, trace (or a tracing filter)
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    /// Log format: text or json
    #[arg(long = "log-format", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// The most worker threads a node may be given.
pub const MAX_WORKER_THREADS: usize = 1024;

/// How replica writes are synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalSync {
    Always,
    Never,
    Every(Duration),
}

/// The validated configuration of a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: String,
    pub listen_address: String,
    pub advertise_address: String,
    pub http_address: Option<String>,
    pub data_dir: PathBuf,
    pub seeds: Vec<String>,
    pub virtual_nodes: u32,
    pub quorum: Quorum,
    pub request_timeout: Duration,
    pub conflict_mode: ConflictMode,
    pub sloppy_quorum: bool,
    pub read_repair_chance: f64,
    pub wal_sync: WalSync,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_batch_items: usize,
    pub max_concurrent_requests: usize,
    pub max_connections: usize,
    /// Threads of the async runtime; `None`: one per core.
    pub worker_threads: Option<usize>,
    pub max_message_bytes: usize,
    pub gossip_interval: Duration,
    pub gossip_fanout: usize,
    pub heartbeat_interval: Duration,
    pub suspect_timeout: Duration,
    pub dead_timeout: Duration,
    pub hint_interval: Duration,
    pub anti_entropy_interval: Duration,
    pub tombstone_gc_grace: Duration,
    pub stream_bytes_per_sec: u64,
    /// TLS for every connection, to and from this node; `None` serves plaintext.
    pub tls: Option<distkv_tls::ServerTls>,
    pub engine: distkv_lsm::Options,
}

/// A configuration that cannot work, in one line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Flags {
    /// Validates the flags into a configuration.
    pub fn into_config(self) -> Result<NodeConfig, ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        let quorum = Quorum::new(self.replicas, self.read_quorum, self.write_quorum)
            .map_err(|e| ConfigError(e.to_string()))?;
        let tls = if self.tls_enabled {
            if self.tls_cert_file.is_empty() || self.tls_key_file.is_empty() {
                return bad("-tls-enabled needs -tls-cert-file and -tls-key-file".into());
            }
            let client_auth = self
                .tls_client_auth
                .parse::<distkv_tls::ClientAuth>()
                .map_err(|e| ConfigError(e.to_string()))?;
            let tls = distkv_tls::ServerTls {
                cert_file: PathBuf::from(&self.tls_cert_file),
                key_file: PathBuf::from(&self.tls_key_file),
                ca_file: (!self.tls_ca_file.is_empty()).then(|| PathBuf::from(&self.tls_ca_file)),
                client_auth,
            };
            // Every file is read and the configurations built now: a bad path or a key that
            // does not match its certificate is one line at start, not a failed handshake.
            tls.validate()
                .map_err(|e| ConfigError(format!("TLS: {e}")))?;
            tls.peer_client_config()
                .map_err(|e| ConfigError(format!("TLS: {e}")))?;
            // Peers are told from clients by a certificate of the cluster's CA: without one
            // no node could call another.
            if tls.ca_file.is_none() && self.seed_nodes.split(',').any(|s| !s.trim().is_empty()) {
                return bad(
                    "-tls-enabled with -seed-nodes needs -tls-ca-file: nodes accept each other's calls only with a certificate of that CA".into(),
                );
            }
            Some(tls)
        } else {
            None
        };
        if self.virtual_nodes == 0 || self.virtual_nodes > 4096 {
            return bad(format!(
                "-virtual-nodes must be between 1 and 4096, got {}",
                self.virtual_nodes
            ));
        }
        if self.address.is_empty() {
            return bad("-address must not be empty".into());
        }
        if self.request_timeout.is_zero() {
            return bad("-request-timeout must be positive".into());
        }
        if self.gossip_interval.is_zero()
            || self.hint_interval.is_zero()
            || self.heartbeat_interval.is_zero()
        {
            return bad(
                "-gossip-interval, -heartbeat-interval and -hint-interval must be positive".into(),
            );
        }
        if self.gossip_fanout == 0 {
            return bad("-gossip-fanout must be at least 1".into());
        }
        let beat = self.heartbeat_interval.max(self.gossip_interval);
        if self.suspect_timeout < 2 * beat {
            return bad(format!(
                "-suspect-timeout ({}) must be at least twice the heartbeat and gossip intervals",
                distkv_flags::format_go_duration(self.suspect_timeout)
            ));
        }
        if self.dead_timeout <= self.suspect_timeout {
            return bad(format!(
                "-dead-timeout ({}) must be longer than -suspect-timeout ({})",
                distkv_flags::format_go_duration(self.dead_timeout),
                distkv_flags::format_go_duration(self.suspect_timeout)
            ));
        }
        if !self.anti_entropy_interval.is_zero()
            && self.tombstone_gc_grace <= self.anti_entropy_interval
        {
            return bad(format!(
                "-tombstone-gc-grace ({}) must be longer than -anti-entropy-interval ({}): a tombstone must reach every replica before it is purged",
                distkv_flags::format_go_duration(self.tombstone_gc_grace),
                distkv_flags::format_go_duration(self.anti_entropy_interval)
            ));
        }
        if self.max_key_size == 0
            || self.max_key_size + crate::storage::INDEX_KEY_OVERHEAD > distkv_lsm::MAX_KEY_BYTES
        {
            return bad(format!(
                "-max-key-size must be between 1 and {}",
                distkv_lsm::MAX_KEY_BYTES - crate::storage::INDEX_KEY_OVERHEAD
            ));
        }
        // A stored entry holds the value up to twice (siblings during a merge) and the
        // versions around it, within the engine's limit on one value.
        let max_value = (distkv_lsm::MAX_VALUE_BYTES - 4096) / 2;
        if self.max_value_size == 0 || self.max_value_size > max_value {
            return bad(format!(
                "-max-value-size must be between 1 and {max_value}, got {}",
                self.max_value_size
            ));
        }
        if self.max_batch_items == 0 {
            return bad("-max-batch-items must be at least 1".into());
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            return bad(format!(
                "-worker-threads must be at most {MAX_WORKER_THREADS} (0: one per core), got {}",
                self.worker_threads
            ));
        }
        if self.max_concurrent_requests == 0 {
            return bad("-max-concurrent-requests must be at least 1".into());
        }
        if self.max_connections < 16 {
            return bad(format!(
                "-max-connections must be at least 16 (peers need connections too), got {}",
                self.max_connections
            ));
        }
        // A reply between replicas may carry two concurrent versions of a value of the largest
        // size, with the key and the versions' clocks: leave room for them.
        let needed = 2 * self.max_value_size + self.max_key_size + (1 << 20);
        if self.max_message_size < needed {
            return bad(format!(
                "-max-message-size ({}) must be at least twice -max-value-size plus -max-key-size plus 1 MiB ({needed})",
                self.max_message_size
            ));
        }
        let wal_sync = match self.wal_sync.as_str() {
            "always" => WalSync::Always,
            "never" => WalSync::Never,
            other => match parse_go_duration(other) {
                Ok(d) if !d.is_zero() => WalSync::Every(d),
                _ => {
                    return bad(format!(
                        "-wal-sync must be always, never or a duration such as 100ms, got {other:?}"
                    ));
                }
            },
        };
        if !(0.0..=1.0).contains(&self.read_repair_chance) {
            return bad(format!(
                "-read-repair-chance must be between 0 and 1, got {}",
                self.read_repair_chance
            ));
        }
        let conflict_mode = match self.conflict_resolution.as_str() {
            "lww" => ConflictMode::LastWriteWins,
            _ => ConflictMode::Siblings,
        };
        let mut engine = distkv_lsm::Options {
            memtable_bytes: self.mem_table_size,
            target_file_bytes: self.sstable_size,
            bloom: distkv_lsm::BloomConfig::BitsPerKey(f64::from(self.bloom_filter_bits)),
            l0_compaction_trigger: self.compaction_threshold,
            sync: match wal_sync {
                WalSync::Always => distkv_lsm::SyncPolicy::EveryCommit,
                WalSync::Never => distkv_lsm::SyncPolicy::Never,
                WalSync::Every(d) => distkv_lsm::SyncPolicy::Interval(d),
            },
            ..distkv_lsm::Options::default()
        };
        // Versions, clocks and framing add to each value: leave room for them. A stored entry
        // (all of a key's versions) must also fit one message between replicas with its key,
        // or it could be written but never read back nor scanned past.
        engine.max_value_bytes = engine
            .max_value_bytes
            .max(self.max_value_size * 2 + 4096)
            .min(self.max_message_size - self.max_key_size - MESSAGE_FRAMING_BYTES);
        // One write batch holds at least one entry of the largest size.
        engine.max_batch_bytes = engine
            .max_batch_bytes
            .max(engine.max_value_bytes + engine.max_key_bytes + 4096);
        // The token index stores each key behind a prefix: leave room for it.
        engine.max_key_bytes = self.max_key_size + crate::storage::INDEX_KEY_OVERHEAD;
        engine.max_memtable_memory = engine.max_memtable_memory.max(self.mem_table_size * 2);
        engine.l0_slowdown_trigger = engine.l0_slowdown_trigger.max(self.compaction_threshold);
        engine.l0_stop_trigger = engine.l0_stop_trigger.max(engine.l0_slowdown_trigger);
        engine.max_memory = engine
            .max_memory
            .max(engine.max_memtable_memory + engine.block_cache_bytes);
        engine
            .validate()
            .map_err(|e| ConfigError(format!("storage: {e}")))?;
        let seeds = self
            .seed_nodes
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let advertise_address = if self.advertise_address.is_empty() {
            self.address.clone()
        } else {
            self.advertise_address.clone()
        };
        Ok(NodeConfig {
            node_id: self.node_id,
            listen_address: self.address,
            advertise_address,
            http_address: (!self.http_address.is_empty()).then_some(self.http_address),
            data_dir: self.data_dir,
            seeds,
            virtual_nodes: self.virtual_nodes,
            quorum,
            request_timeout: self.request_timeout,
            conflict_mode,
            sloppy_quorum: self.sloppy_quorum,
            read_repair_chance: self.read_repair_chance,
            wal_sync,
            max_key_bytes: self.max_key_size,
            max_value_bytes: self.max_value_size,
            max_batch_items: self.max_batch_items,
            max_concurrent_requests: self.max_concurrent_requests,
            worker_threads: (self.worker_threads > 0).then_some(self.worker_threads),
            max_connections: self.max_connections,
            max_message_bytes: self.max_message_size,
            gossip_interval: self.gossip_interval,
            gossip_fanout: self.gossip_fanout,
            heartbeat_interval: self.heartbeat_interval,
            suspect_timeout: self.suspect_timeout,
            dead_timeout: self.dead_timeout,
            hint_interval: self.hint_interval,
            anti_entropy_interval: self.anti_entropy_interval,
            tombstone_gc_grace: self.tombstone_gc_grace,
            stream_bytes_per_sec: self.stream_throughput.saturating_mul(1 << 20),
            tls,
            engine,
        })
    }
}

impl NodeConfig {
    /// The node id: the configured one, or the one kept in `<data-dir>/NODE_ID`, or a new one
    /// (the original's format, `node-<address with ':' as '-'>-<unix seconds>`) saved there.
    pub fn resolve_node_id(&mut self) -> std::io::Result<()> {
        let path = self.data_dir.join("NODE_ID");
        if self.node_id.is_empty() {
            match std::fs::read_to_string(&path) {
                Ok(s) if !s.trim().is_empty() => self.node_id = s.trim().to_string(),
                _ => {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    self.node_id =
                        format!("node-{}-{secs}", self.advertise_address.replace(':', "-"));
                    std::fs::create_dir_all(&self.data_dir)?;
                    std::fs::write(&path, format!("{}\n", self.node_id))?;
                }
            }
        }
        Ok(())
    }
}

/// A configuration with the defaults, for unit tests of the node layer.
#[cfg(test)]
pub(crate) fn test_config(node_id: &str, address: &str) -> NodeConfig {
    let flags = Flags::try_parse_from([
        "distkv-server".to_string(),
        format!("--node-id={node_id}"),
        format!("--address={address}"),
    ])
    .expect("default flags parse");
    flags.into_config().expect("default flags are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<NodeConfig, String> {
        let argv = distkv_flags::normalize_go_args(
            std::iter::once("distkv-server".to_string()).chain(args.iter().map(|s| s.to_string())),
        );
        let flags = Flags::try_parse_from(argv).map_err(|e| e.to_string())?;
        flags.into_config().map_err(|e| e.to_string())
    }

    #[test]
    fn original_flags_in_go_syntax() {
        let c = parse(&[
            "-node-id=n1",
            "-address",
            "127.0.0.1:9000",
            "--data-dir=/tmp/x",
            "-seed-nodes= a:1 ,b:2",
            "-dead-timeout=2m0s",
            "-sloppy-quorum",
            "-replicas=3",
            "-read-quorum=1",
        ])
        .unwrap();
        assert_eq!(c.node_id, "n1");
        assert_eq!(c.listen_address, "127.0.0.1:9000");
        assert_eq!(c.advertise_address, "127.0.0.1:9000");
        assert_eq!(c.seeds, vec!["a:1".to_string(), "b:2".to_string()]);
        assert!(c.sloppy_quorum);
        assert_eq!((c.quorum.n, c.quorum.r, c.quorum.w), (3, 1, 2));
        assert_eq!(c.engine.memtable_bytes, 64 << 20);
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value() {
        let c = parse(&["-hint-interval=200ms", "-hint-interval=1h"]).unwrap();
        assert_eq!(c.hint_interval, Duration::from_secs(3600));
    }

    #[test]
    fn invalid_quorums_and_values_are_one_clear_line() {
        let e = parse(&["-read-quorum=4"]).unwrap_err();
        assert!(e.contains("R must be between 1 and N"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = parse(&["-suspect-timeout=5s", "-dead-timeout=5s"]).unwrap_err();
        assert!(e.contains("-dead-timeout (5s) must be longer"), "{e}");
        let e = parse(&["-anti-entropy-interval=1h", "-tombstone-gc-grace=30m"]).unwrap_err();
        assert!(e.contains("-tombstone-gc-grace"), "{e}");
        assert!(parse(&["-anti-entropy-interval=0s", "-tombstone-gc-grace=1m"]).is_ok());
        let e = parse(&["-wal-sync=sometimes"]).unwrap_err();
        assert!(e.contains("-wal-sync"), "{e}");
        for chance in ["1.5", "-0.1", "NaN"] {
            let e = parse(&[&format!("-read-repair-chance={chance}")]).unwrap_err();
            assert!(
                e.contains("-read-repair-chance must be between 0 and 1"),
                "{e}"
            );
        }
        let c = parse(&["-read-repair-chance=0"]).unwrap();
        assert_eq!(c.read_repair_chance, 0.0);
        let e = parse(&["-worker-threads=5000"]).unwrap_err();
        assert!(
            e.contains("-worker-threads must be at most 1024 (0: one per core), got 5000"),
            "{e}"
        );
        assert_eq!(parse(&[]).unwrap().worker_threads, None);
        assert_eq!(
            parse(&["-worker-threads=1"]).unwrap().worker_threads,
            Some(1)
        );
        assert_eq!(
            parse(&["-tls-enabled"]).unwrap_err(),
            "invalid configuration: -tls-enabled needs -tls-cert-file and -tls-key-file"
        );
        let e = parse(&[
            "-tls-enabled",
            "-tls-cert-file=/nonexistent/cert.pem",
            "-tls-key-file=/nonexistent/key.pem",
        ])
        .unwrap_err();
        assert!(e.contains("cannot read /nonexistent/cert.pem"), "{e}");
        let e = parse(&[
            "-tls-enabled",
            "-tls-cert-file=a",
            "-tls-key-file=b",
            "-tls-client-auth=Sometimes",
        ])
        .unwrap_err();
        assert!(
            e.contains("-tls-client-auth: unknown value \"Sometimes\""),
            "{e}"
        );
        assert!(parse(&["-no-such-flag=1"]).is_err());
    }

    #[test]
    fn tls_nodes_with_seeds_need_the_cluster_ca() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let tls = [
            "-tls-enabled".to_string(),
            format!("-tls-cert-file={}", cert_file.display()),
            format!("-tls-key-file={}", key_file.display()),
        ];
        let with = |extra: &[String]| {
            let args: Vec<&str> = tls.iter().chain(extra).map(String::as_str).collect();
            parse(&args)
        };
        // One node alone needs no CA; with seeds it would refuse every peer, so it is an error.
        assert!(with(&[]).is_ok());
        let e = with(&["-seed-nodes=a:1".into()]).unwrap_err();
        assert!(
            e.contains("-tls-enabled with -seed-nodes needs -tls-ca-file"),
            "{e}"
        );
        let ca = format!("-tls-ca-file={}", cert_file.display());
        assert!(with(&["-seed-nodes=a:1".into(), ca]).is_ok());
    }

    #[test]
    fn a_stored_entry_always_fits_one_message_between_replicas() {
        for args in [
            &[][..],
            &["-max-value-size=1", "-max-message-size=1114114"][..],
            &["-max-value-size=4000000", "-max-message-size=9114112"][..],
            &["-max-value-size=100000000", "-max-message-size=300000000"][..],
        ] {
            let c = parse(args).unwrap();
            assert!(
                c.engine.max_value_bytes >= 2 * c.max_value_bytes + 4096,
                "{args:?}"
            );
            assert!(
                c.engine.max_value_bytes + c.max_key_bytes + MESSAGE_FRAMING_BYTES
                    <= c.max_message_bytes,
                "{args:?}: entries of {} bytes, messages of {}",
                c.engine.max_value_bytes,
                c.max_message_bytes
            );
        }
        let e = parse(&["-max-value-size=4000000", "-max-message-size=9000000"]).unwrap_err();
        assert!(
            e.contains("-max-message-size (9000000) must be at least"),
            "{e}"
        );
    }
}
