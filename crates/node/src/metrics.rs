//! Prometheus metrics of a node (`GET /metrics`, OpenMetrics text).
//!
//! Families, all prefixed `distkv_`, following the seed README's four groups:
//!
//! - **requests**: `requests_total{op}`, `request_errors_total{op}` and
//!   `request_duration_seconds{op}` (a histogram) for put, get, delete, batch and scan;
//! - **storage** (read from the engine at each scrape): operations, bytes, latency percentiles,
//!   `sstables{level}`, `sstable_bytes{level}`, compactions, write amplification, cache hits and
//!   misses, bloom filter checks and false positives, memory and its limit;
//! - **replication**: quorum failures, read repairs, hints stored, delivered and pending,
//!   siblings returned, keys streamed in and out, anti-entropy rounds, keys compared and
//!   repaired, tombstones purged;
//! - **gossip**: `nodes{status}`, messages sent and received, status changes (detections);
//! - **network**: connections accepted, TLS handshake failures, bytes received and sent,
//!   peer calls that timed out.
//!
//! Beside them, without the prefix, the standard process metrics (`process_cpu_seconds_total`,
//! memory, threads, file descriptors, start time; Linux only), from [`process`].
//!
//! Counters kept by the node (atomics) and the engine's statistics are read when scraped by
//! one collector, so nothing is counted twice and the hot paths only bump atomics.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::node::Node;

pub mod process;

pub use crate::counters::{NetworkCounters, OPS, RequestMetrics};

/// The registry of a node: the process metrics, its request metrics and a collector for
/// everything else.
pub fn registry(node: Arc<Node>) -> Registry {
    let mut root = Registry::default();
    root.register_collector(Box::new(process::ProcessCollector));
    let r = root.sub_registry_with_prefix("distkv");
    let req = node.requests.clone();
    r.register(
        "requests",
        "Client requests handled by this node, by operation",
        req.requests,
    );
    r.register(
        "request_errors",
        "Client requests that failed, by operation",
        req.errors,
    );
    r.register(
        "request_duration_seconds",
        "Time to answer client requests, by operation",
        req.latency,
    );
    let net = Arc::clone(&node.network);
    r.register(
        "network_connections_accepted",
        "Connections accepted",
        net.connections_accepted.clone(),
    );
    r.register(
        "network_tls_handshake_failures",
        "Connections whose TLS handshake failed or timed out",
        net.tls_handshake_failures.clone(),
    );
    r.register(
        "network_received_bytes",
        "Bytes received on accepted connections",
        net.bytes_received.clone(),
    );
    r.register(
        "network_sent_bytes",
        "Bytes sent on accepted connections",
        net.bytes_sent.clone(),
    );
    r.register_collector(Box::new(NodeCollector { node }));
    root
}

/// The registry's OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        let _ = writeln!(out, "# encoding failed");
    }
    out
}

/// Reads the node's counters and its engine's statistics at each scrape.
struct NodeCollector {
    node: Arc<Node>,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCollector")
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(String, f64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (l, v) in values {
        let labels = [(label, l.as_str())];
        ConstGauge::new(*v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for NodeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let n = &self.node;
        let m = &n.metrics;
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        // Storage.
        let s = n.store().db().stats();
        let c = &s.counters;
        counter(&mut enc, "storage_reads", "Engine point reads", c.gets)?;
        counter(
            &mut enc,
            "storage_writes",
            "Engine puts and deletes",
            c.puts + c.deletes,
        )?;
        counter(
            &mut enc,
            "storage_user_written_bytes",
            "Bytes written by the node to the engine",
            c.user_bytes_written,
        )?;
        counter(
            &mut enc,
            "storage_wal_syncs",
            "WAL syncs (group commits that reached the disk)",
            c.wal_syncs,
        )?;
        counter(
            &mut enc,
            "storage_flushes",
            "Memtables flushed to SSTables",
            c.flushes,
        )?;
        counter(
            &mut enc,
            "storage_compactions",
            "Compactions run",
            c.compactions,
        )?;
        counter(
            &mut enc,
            "storage_cache_hits",
            "Block cache hits",
            c.cache_hits,
        )?;
        counter(
            &mut enc,
            "storage_cache_misses",
            "Block cache misses",
            c.cache_misses,
        )?;
        counter(
            &mut enc,
            "storage_bloom_checks",
            "Bloom filter checks",
            c.bloom_checks,
        )?;
        counter(
            &mut enc,
            "storage_bloom_false_positives",
            "Bloom filter checks that passed for absent keys",
            c.bloom_false_positives,
        )?;
        counter(
            &mut enc,
            "storage_write_stalls",
            "Writes stalled by flush or compaction debt",
            c.write_stalls,
        )?;
        gauge(
            &mut enc,
            "storage_cache_hit_ratio",
            "Block cache hits over lookups",
            s.cache_hit_rate(),
        )?;
        gauge(
            &mut enc,
            "storage_write_amplification",
            "Bytes written to disk per byte written by the node",
            s.write_amplification(),
        )?;
        gauge(
            &mut enc,
            "storage_memory_bytes",
            "Memory held by memtables, cache, indexes and filters",
            s.memory_bytes as f64,
        )?;
        gauge(
            &mut enc,
            "storage_memory_limit_bytes",
            "The configured memory limit",
            s.memory_limit as f64,
        )?;
        gauge(
            &mut enc,
            "storage_get_latency_p99_seconds",
            "99th percentile of engine read latency",
            s.get_latency.p99.as_secs_f64(),
        )?;
        gauge(
            &mut enc,
            "storage_write_latency_p99_seconds",
            "99th percentile of engine write latency",
            s.write_latency.p99.as_secs_f64(),
        )?;
        let levels: Vec<(String, f64)> = s
            .levels
            .iter()
            .enumerate()
            .map(|(i, lv)| (i.to_string(), lv.files as f64))
            .collect();
        gauges(
            &mut enc,
            "storage_sstables",
            "SSTables per level",
            "level",
            &levels,
        )?;
        let bytes: Vec<(String, f64)> = s
            .levels
            .iter()
            .enumerate()
            .map(|(i, lv)| (i.to_string(), lv.bytes as f64))
            .collect();
        gauges(
            &mut enc,
            "storage_sstable_bytes",
            "SSTable bytes per level",
            "level",
            &bytes,
        )?;
        // Replication.
        counter(
            &mut enc,
            "quorum_failures",
            "Requests that could not reach their quorum",
            l(&m.quorum_failures),
        )?;
        counter(
            &mut enc,
            "quorum_successes",
            "Read and write rounds this node coordinated that reached their quorum",
            l(&m.quorum_successes),
        )?;
        counter(
            &mut enc,
            "read_repairs",
            "Stale replicas brought up to date after a read",
            l(&m.read_repairs),
        )?;
        counter(
            &mut enc,
            "speculative_reads",
            "Replicas a read asked beyond R because those asked were slow to answer",
            l(&m.speculative_reads),
        )?;
        counter(
            &mut enc,
            "hints_stored",
            "Writes kept as hints for unreachable replicas",
            l(&m.hints_stored),
        )?;
        counter(
            &mut enc,
            "hints_delivered",
            "Hints delivered to their replicas",
            l(&m.hints_delivered),
        )?;
        gauge(
            &mut enc,
            "hints_pending",
            "Hints held for delivery",
            n.hints().count().unwrap_or(0) as f64,
        )?;
        counter(
            &mut enc,
            "siblings_returned",
            "Reads that returned concurrent versions",
            l(&m.siblings_returned),
        )?;
        counter(
            &mut enc,
            "keys_streamed_in",
            "Keys received by joins and re-replication",
            l(&m.keys_streamed_in),
        )?;
        counter(
            &mut enc,
            "keys_streamed_out",
            "Keys sent by decommissions",
            l(&m.keys_streamed_out),
        )?;
        counter(
            &mut enc,
            "anti_entropy_rounds",
            "Anti-entropy rounds run",
            l(&m.ae_rounds),
        )?;
        counter(
            &mut enc,
            "anti_entropy_keys_compared",
            "Keys compared by anti-entropy",
            l(&m.ae_keys_compared),
        )?;
        counter(
            &mut enc,
            "anti_entropy_keys_repaired",
            "Keys anti-entropy found different and repaired",
            l(&m.ae_keys_repaired),
        )?;
        counter(
            &mut enc,
            "tombstones_purged",
            "Tombstones purged after the grace period",
            l(&m.tombstones_purged),
        )?;
        // Gossip.
        let mut by_status: std::collections::BTreeMap<&'static str, f64> =
            ["ALIVE", "SUSPECT", "DEAD", "LEFT", "JOINING", "LEAVING"]
                .into_iter()
                .map(|s| (s, 0.0))
                .collect();
        for v in n.membership.member_views() {
            *by_status.entry(v.status.name()).or_default() += 1.0;
        }
        let statuses: Vec<(String, f64)> = by_status
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        gauges(
            &mut enc,
            "nodes",
            "Members by status, as this node sees them",
            "status",
            &statuses,
        )?;
        counter(
            &mut enc,
            "gossip_messages_sent",
            "Gossip exchanges opened",
            l(&m.gossip_messages_sent),
        )?;
        counter(
            &mut enc,
            "gossip_messages_received",
            "Gossip exchanges answered",
            l(&m.gossip_messages_received),
        )?;
        counter(
            &mut enc,
            "gossip_status_changes",
            "Member status changes detected",
            l(&m.status_changes),
        )?;
        // Network (beyond the connection counters).
        counter(
            &mut enc,
            "network_peer_timeouts",
            "Calls to peers that timed out",
            n.peers().timeouts(),
        )?;
        let traffic = n.peers().traffic();
        counter(
            &mut enc,
            "network_peer_connections",
            "Connections this node opened to its peers",
            traffic.connections.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "network_peer_sent_bytes",
            "Bytes sent on connections this node opened to its peers",
            traffic.sent.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "network_peer_received_bytes",
            "Bytes received on connections this node opened to its peers",
            traffic.received.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut enc,
            "up",
            "1 while the node serves, 0 while it joins",
            if n.check_serving().is_ok() { 1.0 } else { 0.0 },
        )?;
        let limit = n.config().max_concurrent_requests;
        let in_flight = limit.saturating_sub(n.request_slots.available_permits());
        gauge(
            &mut enc,
            "requests_in_flight",
            "Client requests being handled",
            in_flight as f64,
        )?;
        gauge(
            &mut enc,
            "requests_in_flight_limit",
            "The limit of client requests in flight (-max-concurrent-requests)",
            limit as f64,
        )?;
        Ok(())
    }
}
