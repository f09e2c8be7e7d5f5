//! What the servers spent on a run: each target node's `process_cpu_seconds_total` and
//! `process_threads`, read from its `/metrics` (HTTP on the gRPC port, with the same TLS
//! settings) just before and just after the measured phase.
//!
//! The CPU the nodes used between the two readings, summed over the nodes and divided by the
//! requests of the run, is the **server CPU per operation**: what one request costs the
//! cluster, replication, background work (flushes, compactions, gossip) and the scrapes
//! included. Only the nodes named by `-server` are read, so for a cluster's whole cost name
//! every node. The kernel counts CPU time in clock ticks (10 ms on most Linux systems), so a
//! run should last long enough for that to be small beside what it measures.
//!
//! A node whose metrics cannot be read (an older server, another port, not Linux) makes the
//! total unknown; the run goes on and the report says why.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::client::Client;

/// The counter of a process's user and system CPU time, in seconds.
pub const CPU_SECONDS: &str = "process_cpu_seconds_total";
/// The gauge of a process's threads.
pub const THREADS: &str = "process_threads";

/// The value of the sample `name` without labels in Prometheus or OpenMetrics text
/// (`name 1.5`, maybe followed by a timestamp or an exemplar); `None` when there is none.
/// Comment lines (`# HELP`, `# TYPE`, `# EOF`) and labelled samples are skipped.
pub fn sample_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(name)?;
        // `name_more 1` or `name{...} 1` is another series.
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// One reading of a node's process metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    /// `None` when the node does not export `process_threads`.
    pub threads: Option<u64>,
}

impl ProcessSample {
    /// The sample in a node's `/metrics` text; `None` without `process_cpu_seconds_total`.
    pub fn parse(metrics: &str) -> Option<ProcessSample> {
        let cpu_seconds = sample_value(metrics, CPU_SECONDS).filter(|v| v.is_finite())?;
        let threads = sample_value(metrics, THREADS)
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| v as u64);
        Some(ProcessSample {
            cpu_seconds,
            threads,
        })
    }
}

/// Reads `client`'s node; the error says why not, fit to print.
pub async fn sample(client: &Client) -> Result<ProcessSample, String> {
    let metrics = client.metrics().await.map_err(|e| e.to_string())?;
    ProcessSample::parse(&metrics).ok_or_else(|| {
        format!(
            "{} exports no {CPU_SECONDS} (a server older than this distkv-bench, or not on Linux)",
            client.server()
        )
    })
}

/// Reads every node, in the order given (one after the other: a few milliseconds beside a
/// run of seconds); clients to the same address are read once.
pub async fn sample_all(clients: &[Client]) -> Vec<(String, Result<ProcessSample, String>)> {
    let mut seen = BTreeSet::new();
    let mut samples = Vec::new();
    for client in clients
        .iter()
        .filter(|c| seen.insert(c.server().to_string()))
    {
        samples.push((client.server().to_string(), sample(client).await));
    }
    samples
}

/// One node's use of the run, as `-o json` shows it under `server_nodes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeUsage {
    /// The address as given to `-server`.
    pub server: String,
    pub cpu_seconds_before: Option<f64>,
    pub cpu_seconds_after: Option<f64>,
    /// CPU seconds used during the run: after minus before.
    pub cpu_seconds: Option<f64>,
    pub threads_before: Option<u64>,
    /// Threads at the end of the run.
    pub threads_after: Option<u64>,
    /// Why this node's CPU is unknown.
    pub error: Option<String>,
}

/// What the target nodes spent on a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerUsage {
    pub nodes: Vec<NodeUsage>,
}

impl ServerUsage {
    /// Pairs the readings before and after the run, node by node (both lists come from
    /// [`sample_all`] on the same clients, so in the same order).
    pub fn between(
        before: Vec<(String, Result<ProcessSample, String>)>,
        after: Vec<(String, Result<ProcessSample, String>)>,
    ) -> ServerUsage {
        let nodes = before
            .into_iter()
            .zip(after)
            .map(|((server, before), (_, after))| {
                let b = before.as_ref().ok();
                let a = after.as_ref().ok();
                let error = match (&before, &after) {
                    (Err(e), _) | (_, Err(e)) => Some(e.clone()),
                    (Ok(b), Ok(a)) if a.cpu_seconds < b.cpu_seconds => Some(format!(
                        "{server}: its CPU time went backwards (did it restart during the run?)"
                    )),
                    _ => None,
                };
                NodeUsage {
                    cpu_seconds_before: b.map(|s| s.cpu_seconds),
                    cpu_seconds_after: a.map(|s| s.cpu_seconds),
                    cpu_seconds: match (b, a, &error) {
                        (Some(b), Some(a), None) => Some(a.cpu_seconds - b.cpu_seconds),
                        _ => None,
                    },
                    threads_before: b.and_then(|s| s.threads),
                    threads_after: a.and_then(|s| s.threads),
                    error,
                    server,
                }
            })
            .collect();
        ServerUsage { nodes }
    }

    /// The CPU seconds the nodes used during the run, summed; or why that is unknown (the
    /// first node that could not be read, and how many could not).
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        let failed: Vec<&str> = self
            .nodes
            .iter()
            .filter_map(|n| n.error.as_deref())
            .collect();
        match failed.as_slice() {
            [] if self.nodes.is_empty() => Err("no server was read".to_string()),
            [] => Ok(self.nodes.iter().filter_map(|n| n.cpu_seconds).sum()),
            [only] => Err((*only).to_string()),
            [first, rest @ ..] => Err(format!(
                "{first} (and {} other node{})",
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            )),
        }
    }

    /// Server CPU per operation in microseconds: [`ServerUsage::cpu_seconds`] over `ops`;
    /// `None` when that is unknown or no operation ran.
    pub fn cpu_us_per_op(&self, ops: u64) -> Option<f64> {
        let seconds = self.cpu_seconds().ok()?;
        (ops > 0).then(|| seconds * 1e6 / ops as f64)
    }

    /// The most threads any node had at the end of the run; `None` unless every node said.
    pub fn threads_max(&self) -> Option<u64> {
        self.nodes
            .iter()
            .map(|n| n.threads_after)
            .collect::<Option<Vec<u64>>>()?
            .into_iter()
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's `/metrics` as prometheus-client writes it, trimmed.
    const METRICS: &str = "\
# HELP process_cpu_seconds Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds counter
process_cpu_seconds_total 1.23
# HELP process_threads Number of OS threads in the process.
# TYPE process_threads gauge
process_threads 17
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1700000000.5
# HELP distkv_requests Client requests handled by this node, by operation.
# TYPE distkv_requests counter
distkv_requests_total{op=\"get\"} 10
distkv_requests_total{op=\"put\"} 5
# EOF
";

    #[test]
    fn samples_are_found_by_their_exact_name() {
        assert_eq!(sample_value(METRICS, CPU_SECONDS), Some(1.23));
        assert_eq!(sample_value(METRICS, THREADS), Some(17.0));
        assert_eq!(
            sample_value(METRICS, "process_start_time_seconds"),
            Some(1_700_000_000.5)
        );
        // Not a prefix of a longer name, not the family of a counter, not a labelled series.
        assert_eq!(sample_value(METRICS, "process_cpu_seconds"), None);
        assert_eq!(sample_value(METRICS, "process_start_time"), None);
        assert_eq!(sample_value(METRICS, "distkv_requests_total"), None);
        assert_eq!(sample_value(METRICS, "process_open_fds"), None);
        assert_eq!(sample_value("", CPU_SECONDS), None);
        // A timestamp or an exemplar after the value, other exporters' number formats.
        assert_eq!(
            sample_value("process_cpu_seconds_total 2.5 1700000000\n", CPU_SECONDS),
            Some(2.5)
        );
        assert_eq!(
            sample_value(
                "process_cpu_seconds_total 3e+02 # {trace_id=\"a\"} 1\n",
                CPU_SECONDS
            ),
            Some(300.0)
        );
        assert_eq!(
            sample_value("process_cpu_seconds_total x\n", CPU_SECONDS),
            None
        );
    }

    #[test]
    fn a_process_sample_needs_the_cpu_counter() {
        assert_eq!(
            ProcessSample::parse(METRICS),
            Some(ProcessSample {
                cpu_seconds: 1.23,
                threads: Some(17),
            })
        );
        assert_eq!(
            ProcessSample::parse("process_cpu_seconds_total 4\n# EOF\n"),
            Some(ProcessSample {
                cpu_seconds: 4.0,
                threads: None,
            })
        );
        let old_server = "# TYPE distkv_up gauge\ndistkv_up 1\n# EOF\n";
        assert_eq!(ProcessSample::parse(old_server), None);
        assert_eq!(
            ProcessSample::parse("process_cpu_seconds_total NaN\n"),
            None
        );
    }

    fn ok(cpu_seconds: f64, threads: u64) -> Result<ProcessSample, String> {
        Ok(ProcessSample {
            cpu_seconds,
            threads: Some(threads),
        })
    }

    fn node(
        name: &str,
        r: Result<ProcessSample, String>,
    ) -> (String, Result<ProcessSample, String>) {
        (name.to_string(), r)
    }

    #[test]
    fn usage_sums_the_nodes_and_divides_by_the_operations() {
        let usage = ServerUsage::between(
            vec![node("a:1", ok(10.0, 20)), node("b:2", ok(1.5, 30))],
            vec![node("a:1", ok(12.0, 25)), node("b:2", ok(2.0, 22))],
        );
        assert_eq!(usage.cpu_seconds(), Ok(2.5));
        assert_eq!(usage.cpu_us_per_op(10_000), Some(250.0));
        assert_eq!(usage.cpu_us_per_op(0), None);
        assert_eq!(usage.threads_max(), Some(25));
        assert_eq!(
            usage.nodes[1],
            NodeUsage {
                server: "b:2".into(),
                cpu_seconds_before: Some(1.5),
                cpu_seconds_after: Some(2.0),
                cpu_seconds: Some(0.5),
                threads_before: Some(30),
                threads_after: Some(22),
                error: None,
            }
        );
    }

    #[test]
    fn one_unreadable_node_makes_the_total_unknown() {
        let usage = ServerUsage::between(
            vec![
                node("a:1", ok(10.0, 20)),
                node("b:2", Err("b:2: HTTP 404".into())),
                node("c:3", ok(5.0, 9)),
            ],
            vec![
                node("a:1", ok(11.0, 20)),
                node("b:2", Err("b:2: HTTP 404".into())),
                node("c:3", ok(4.0, 9)),
            ],
        );
        assert_eq!(
            usage.cpu_seconds(),
            Err("b:2: HTTP 404 (and 1 other node)".to_string())
        );
        assert_eq!(usage.cpu_us_per_op(100), None);
        assert_eq!(usage.nodes[0].cpu_seconds, Some(1.0));
        assert_eq!(usage.nodes[1].cpu_seconds, None);
        assert_eq!(usage.nodes[1].threads_after, None);
        // A counter that went backwards: the node restarted.
        assert_eq!(usage.nodes[2].cpu_seconds, None);
        assert_eq!(
            usage.nodes[2].error.as_deref(),
            Some("c:3: its CPU time went backwards (did it restart during the run?)")
        );
        assert_eq!(usage.threads_max(), None);
        assert_eq!(
            ServerUsage::default().cpu_seconds(),
            Err("no server was read".to_string())
        );
    }
}
