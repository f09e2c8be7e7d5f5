//! The counters a node's components and services bump as they work, read by the status RPC
//! and the Prometheus exporter ([`crate::metrics`]). A leaf: it imports nothing of the crate,
//! so every component can hold them without importing the node.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Counters behind the status RPC and the exporter.
#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub request_micros: AtomicU64,
    pub quorum_failures: AtomicU64,
    /// Write and read rounds that reached their quorum.
    pub quorum_successes: AtomicU64,
    pub read_repairs: AtomicU64,
    /// Replicas a read asked beyond R because the ones asked were slow.
    pub speculative_reads: AtomicU64,
    pub hints_stored: AtomicU64,
    pub hints_delivered: AtomicU64,
    pub siblings_returned: AtomicU64,
    pub gossip_messages_sent: AtomicU64,
    pub gossip_messages_received: AtomicU64,
    pub status_changes: AtomicU64,
    pub keys_streamed_in: AtomicU64,
    pub keys_streamed_out: AtomicU64,
    pub ae_rounds: AtomicU64,
    pub ae_keys_compared: AtomicU64,
    pub ae_keys_repaired: AtomicU64,
    pub ae_last_round_secs: AtomicU64,
    pub tombstones_purged: AtomicU64,
}

pub(crate) type Labels = Vec<(&'static str, String)>;

/// Client requests by operation.
#[derive(Clone)]
pub struct RequestMetrics {
    pub(crate) requests: Family<Labels, Counter>,
    pub(crate) errors: Family<Labels, Counter>,
    pub(crate) latency: Family<Labels, Histogram>,
}

/// The operations of the data API, as the `op` label names them.
pub const OPS: [&str; 5] = ["get", "put", "delete", "batch", "scan"];

impl Default for RequestMetrics {
    fn default() -> Self {
        let m = RequestMetrics {
            requests: Family::default(),
            errors: Family::default(),
            // 100 µs to about 6.5 s.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 17))
            }),
        };
        // Every operation's series from the start, at zero: dashboards and alerts on error
        // rates then see 0, not "no data".
        for op in OPS {
            let labels = vec![("op", op.to_string())];
            drop(m.requests.get_or_create(&labels));
            drop(m.errors.get_or_create(&labels));
            drop(m.latency.get_or_create(&labels));
        }
        m
    }
}

impl RequestMetrics {
    /// Records one request of `op` that started at `started`.
    pub fn observe(&self, op: &'static str, started: Instant, ok: bool) {
        let labels = vec![("op", op.to_string())];
        self.requests.get_or_create(&labels).inc();
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
}

/// What the connection layer counts.
#[derive(Default)]
pub struct NetworkCounters {
    pub connections_accepted: Counter,
    pub tls_handshake_failures: Counter,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
}
