//! The counters a node's components and services bump as they work, read by the status RPC
//! and the Prometheus exporter ([`crate::metrics`]). A leaf: it imports nothing of the crate,
//! so every component can hold them without importing the node.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

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
///
/// The families are what the exporter registers; each operation's series are also held
/// directly (`by_op`), so recording a request takes no lock, allocates nothing and looks
/// nothing up: three atomic updates.
#[derive(Clone)]
pub struct RequestMetrics {
    pub(crate) requests: Family<Labels, Counter>,
    pub(crate) errors: Family<Labels, Counter>,
    pub(crate) latency: Family<Labels, Histogram>,
    by_op: Arc<[OpSeries; OPS.len()]>,
}

/// The series of one operation, shared with the families (a counter or histogram clone is
/// the same series).
struct OpSeries {
    requests: Counter,
    errors: Counter,
    latency: Histogram,
}

/// The operations of the data API, as the `op` label names them.
pub const OPS: [&str; 5] = ["get", "put", "delete", "batch", "scan"];

impl Default for RequestMetrics {
    fn default() -> Self {
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        // 100 µs to about 6.5 s.
        let latency = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        // Every operation's series from the start, at zero: dashboards and alerts on error
        // rates then see 0, not "no data".
        let by_op = OPS.map(|op| {
            let labels = vec![("op", op.to_string())];
            OpSeries {
                requests: requests.get_or_create(&labels).clone(),
                errors: errors.get_or_create(&labels).clone(),
                latency: latency.get_or_create(&labels).clone(),
            }
        });
        RequestMetrics {
            requests,
            errors,
            latency,
            by_op: Arc::new(by_op),
        }
    }
}

impl RequestMetrics {
    /// Records one request of `op` that took `elapsed`.
    pub fn observe(&self, op: &'static str, elapsed: Duration, ok: bool) {
        let seconds = elapsed.as_secs_f64();
        if let Some(series) = OPS.iter().position(|o| *o == op).map(|i| &self.by_op[i]) {
            series.requests.inc();
            if !ok {
                series.errors.inc();
            }
            series.latency.observe(seconds);
            return;
        }
        // An operation outside `OPS` still counts, under its own label.
        let labels = vec![("op", op.to_string())];
        self.requests.get_or_create(&labels).inc();
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency.get_or_create(&labels).observe(seconds);
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

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    fn exported(m: &RequestMetrics) -> String {
        let mut registry = Registry::default();
        registry.register("requests", "", m.requests.clone());
        registry.register("errors", "", m.errors.clone());
        registry.register("latency", "", m.latency.clone());
        let mut out = String::new();
        encode(&mut out, &registry).expect("encodes");
        out
    }

    #[test]
    fn observed_requests_reach_the_exported_series() {
        let m = RequestMetrics::default();
        m.observe("put", Duration::from_millis(3), true);
        m.observe("put", Duration::from_millis(3), false);
        m.observe("get", Duration::from_micros(50), true);
        m.observe("compact", Duration::from_millis(1), false);
        let text = exported(&m);
        for line in [
            "requests_total{op=\"put\"} 2",
            "errors_total{op=\"put\"} 1",
            "requests_total{op=\"get\"} 1",
            "errors_total{op=\"get\"} 0",
            "requests_total{op=\"scan\"} 0",
            "requests_total{op=\"compact\"} 1",
            "errors_total{op=\"compact\"} 1",
            "latency_count{op=\"put\"} 2",
            "latency_bucket{le=\"0.0001\",op=\"get\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
