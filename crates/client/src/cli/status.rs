//! `status`: the cluster as the connected node sees it.
//!
//! Text: the original's lines exactly, with nodes sorted by node id (the original printed them in
//! random order) and times in the local time zone as Go's RFC 3339:
//!
//! ```text
//! === Cluster Status ===
//! Health: 3 total nodes, 3 alive, 0 dead (100.0% availability)
//!
//! === Nodes ===
//!   node1 (localhost:8080) - ALIVE - Last seen: 2025-09-05T22:45:29-07:00
//!
//! === Metrics ===
//! Total requests: 1234
//! Average latency: 0.42 ms
//! ```
//!
//! followed, when the server reports storage metrics, by the block the original's README
//! promised (its error counts and heap usage have no source and are left out; SSTable size and
//! write amplification are new; levels after the last non-empty one are not listed, and the
//! memory limit and percentage only when the server has a limit):
//!
//! ```text
//!
//! === Storage Metrics ===
//! Total reads: 5234
//! Total writes: 3421
//! Cache hit rate: 87.3%
//! SSTable count: 8 (Level 0: 2, Level 1: 3, Level 2: 3)
//! Compaction count: 15
//! Memory usage: 1.2GB / 2.0GB (60%)
//! SSTable size: 1.5GB
//! Write amplification: 2.35
//! ```
//!
//! Then, when the node reports them, its operations (join, decommission, re-replication,
//! repair; running and recent) and its anti-entropy totals:
//!
//! ```text
//!
//! === Operations ===
//!   #1 done: join [========================] 3/3 steps, 1200 keys, 1.2MB - streaming 300 ranges from 2 sources
//!
//! === Anti-entropy ===
//! Rounds: 3, keys compared: 3600, keys repaired: 5, tombstones purged: 0
//! Last complete round: 2025-09-05T22:45:29-07:00
//! ```
//!
//! JSON: `{"command":"status","nodes":[{"node_id","address","status","last_seen"}],
//! "health":{"total_nodes","alive_nodes","dead_nodes","availability_percentage"},
//! "metrics":{"total_keys","total_requests","avg_latency_ms","qps"},"storage":null|{"reads",
//! "writes","sstables_per_level","compactions","cache_hit_rate","memory_bytes",
//! "memory_limit_bytes","sstable_bytes","write_amplification"},"operations":[{"id","kind",
//! "state","steps_total","steps_done","keys","bytes","started","finished","detail"}],
//! "anti_entropy":null|{"rounds","keys_compared","keys_repaired","last_round",
//! "tombstones_purged"}}` with `last_seen` in Unix seconds, `status` as in the text and
//! `cache_hit_rate` as a 0..1 ratio.

use std::fmt::Write as _;
use std::io::Write;

use chrono::TimeZone;
use serde::Serialize;

use super::output::{OutputFormat, format_bytes, format_rfc3339, json_line};
use super::{CliError, Ctx, UsageError};
use crate::types::{ClusterStatus, StorageMetrics};

pub(crate) const USAGE: &str = "distkv-client status";

pub(crate) fn parse(args: &[String]) -> Result<(), UsageError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(UsageError::WrongArgs(USAGE))
    }
}

pub(crate) async fn execute(ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
    let status = ctx.client.cluster_status().await?;
    out.write_all(render(&status, ctx.format, &chrono::Local).as_bytes())?;
    Ok(())
}

/// The output of `status`, with times shown in `tz`.
pub fn render<Tz: TimeZone>(status: &ClusterStatus, format: OutputFormat, tz: &Tz) -> String {
    match format {
        OutputFormat::Text => render_text(status, tz),
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct StatusView<'a> {
                command: &'static str,
                #[serde(flatten)]
                status: &'a ClusterStatus,
            }
            json_line(&StatusView {
                command: "status",
                status,
            })
        }
    }
}

fn render_text<Tz: TimeZone>(status: &ClusterStatus, tz: &Tz) -> String {
    let health = &status.health;
    let mut out = String::new();
    out.push_str("=== Cluster Status ===\n");
    let _ = writeln!(
        out,
        "Health: {} total nodes, {} alive, {} dead ({:.1}% availability)",
        health.total_nodes, health.alive_nodes, health.dead_nodes, health.availability_percentage
    );
    out.push_str("\n=== Nodes ===\n");
    let mut nodes: Vec<_> = status.nodes.iter().collect();
    nodes.sort_by(|a, b| (&a.node_id, &a.address).cmp(&(&b.node_id, &b.address)));
    for node in nodes {
        let _ = writeln!(
            out,
            "  {} ({}) - {} - Last seen: {}",
            node.node_id,
            node.address,
            node.status,
            format_rfc3339(node.last_seen, tz)
        );
    }
    out.push_str("\n=== Metrics ===\n");
    let _ = writeln!(out, "Total requests: {}", status.metrics.total_requests);
    let _ = writeln!(
        out,
        "Average latency: {:.2} ms",
        status.metrics.avg_latency_ms
    );
    if let Some(storage) = &status.storage {
        out.push('\n');
        out.push_str(&render_storage(storage));
    }
    if !status.operations.is_empty() {
        out.push_str("\n=== Operations ===\n");
        for op in &status.operations {
            let _ = writeln!(
                out,
                "  #{} {}: {}",
                op.id,
                op.state,
                super::admin::render_progress(op)
            );
        }
    }
    if let Some(ae) = &status.anti_entropy {
        out.push_str("\n=== Anti-entropy ===\n");
        let _ = writeln!(
            out,
            "Rounds: {}, keys compared: {}, keys repaired: {}, tombstones purged: {}",
            ae.rounds, ae.keys_compared, ae.keys_repaired, ae.tombstones_purged
        );
        let last = if ae.last_round == 0 {
            "never".to_string()
        } else {
            format_rfc3339(ae.last_round, tz)
        };
        let _ = writeln!(out, "Last complete round: {last}");
    }
    out
}

/// The `=== Storage Metrics ===` block.
pub fn render_storage(storage: &StorageMetrics) -> String {
    let mut out = String::from("=== Storage Metrics ===\n");
    let _ = writeln!(out, "Total reads: {}", storage.reads);
    let _ = writeln!(out, "Total writes: {}", storage.writes);
    let _ = writeln!(
        out,
        "Cache hit rate: {:.1}%",
        storage.cache_hit_rate * 100.0
    );
    let _ = write!(out, "SSTable count: {}", storage.sstable_count());
    let levels = &storage.sstables_per_level;
    let shown = levels
        .iter()
        .rposition(|&n| n > 0)
        .map_or(0, |last| last + 1);
    if shown > 0 {
        let levels: Vec<String> = levels[..shown]
            .iter()
            .enumerate()
            .map(|(level, count)| format!("Level {level}: {count}"))
            .collect();
        let _ = write!(out, " ({})", levels.join(", "));
    }
    out.push('\n');
    let _ = writeln!(out, "Compaction count: {}", storage.compactions);
    let _ = write!(out, "Memory usage: {}", format_bytes(storage.memory_bytes));
    if storage.memory_limit_bytes > 0 {
        let percent = storage.memory_bytes as f64 * 100.0 / storage.memory_limit_bytes as f64;
        let _ = write!(
            out,
            " / {} ({:.0}%)",
            format_bytes(storage.memory_limit_bytes),
            percent
        );
    }
    out.push('\n');
    let _ = writeln!(out, "SSTable size: {}", format_bytes(storage.sstable_bytes));
    let _ = writeln!(
        out,
        "Write amplification: {:.2}",
        storage.write_amplification
    );
    out
}

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, Utc};

    use super::*;
    use crate::types::{ClusterHealth, ClusterMetrics, NodeState, NodeStatus};

    fn node(id: &str, port: u16, status: NodeState, last_seen: i64) -> NodeStatus {
        NodeStatus {
            node_id: id.into(),
            address: format!("localhost:{port}"),
            status,
            last_seen,
        }
    }

    fn sample(storage: Option<StorageMetrics>) -> ClusterStatus {
        ClusterStatus {
            // Deliberately out of order: rendering sorts.
            nodes: vec![
                node("node3", 8082, NodeState::Dead, 1_757_137_527),
                node("node1", 8080, NodeState::Alive, 1_757_137_529),
                node("node2", 8081, NodeState::Suspect, 1_757_137_528),
                node("node4", 8083, NodeState::Unknown(7), 0),
            ],
            health: ClusterHealth {
                total_nodes: 4,
                alive_nodes: 1,
                dead_nodes: 1,
                availability_percentage: 25.0,
            },
            metrics: ClusterMetrics {
                total_keys: 10,
                total_requests: 5234,
                avg_latency_ms: 1.23456,
                qps: 3.5,
            },
            storage,
            operations: Vec::new(),
            anti_entropy: None,
        }
    }

    fn storage() -> StorageMetrics {
        StorageMetrics {
            reads: 5234,
            writes: 3421,
            sstables_per_level: vec![2, 3, 3, 0, 0, 0, 0],
            compactions: 15,
            cache_hit_rate: 0.873,
            memory_bytes: 1_288_490_189,
            memory_limit_bytes: 2 * 1024 * 1024 * 1024,
            sstable_bytes: 1_610_612_736,
            write_amplification: 2.345,
        }
    }

    #[test]
    fn text_matches_the_original_format() {
        let pdt = FixedOffset::west_opt(7 * 3600).unwrap();
        assert_eq!(
            render(&sample(None), OutputFormat::Text, &pdt),
            "=== Cluster Status ===\n\
             Health: 4 total nodes, 1 alive, 1 dead (25.0% availability)\n\
             \n\
             === Nodes ===\n\
             \x20 node1 (localhost:8080) - ALIVE - Last seen: 2025-09-05T22:45:29-07:00\n\
             \x20 node2 (localhost:8081) - SUSPECT - Last seen: 2025-09-05T22:45:28-07:00\n\
             \x20 node3 (localhost:8082) - DEAD - Last seen: 2025-09-05T22:45:27-07:00\n\
             \x20 node4 (localhost:8083) - UNKNOWN - Last seen: 1969-12-31T17:00:00-07:00\n\
             \n\
             === Metrics ===\n\
             Total requests: 5234\n\
             Average latency: 1.23 ms\n"
        );
    }

    #[test]
    fn text_with_storage_metrics() {
        let text = render(&sample(Some(storage())), OutputFormat::Text, &Utc);
        let expected_tail = "Average latency: 1.23 ms\n\
             \n\
             === Storage Metrics ===\n\
             Total reads: 5234\n\
             Total writes: 3421\n\
             Cache hit rate: 87.3%\n\
             SSTable count: 8 (Level 0: 2, Level 1: 3, Level 2: 3)\n\
             Compaction count: 15\n\
             Memory usage: 1.2GB / 2.0GB (60%)\n\
             SSTable size: 1.5GB\n\
             Write amplification: 2.35\n";
        assert!(text.ends_with(expected_tail), "{text}");
        assert!(text.contains("Last seen: 2025-09-06T05:45:29Z\n"), "{text}");
    }

    #[test]
    fn operations_and_anti_entropy_blocks() {
        let mut status = sample(None);
        status.operations = vec![crate::types::OperationInfo {
            id: 1,
            kind: "join".into(),
            state: "done".into(),
            steps_total: 3,
            steps_done: 3,
            keys: 1200,
            bytes: 1_300_000,
            started: 1,
            finished: 2,
            detail: "streaming 300 ranges from 2 sources".into(),
        }];
        status.anti_entropy = Some(crate::types::AntiEntropyStats {
            rounds: 3,
            keys_compared: 3600,
            keys_repaired: 5,
            last_round: 0,
            tombstones_purged: 0,
        });
        let text = render(&status, OutputFormat::Text, &Utc);
        assert!(
            text.ends_with(
                "Average latency: 1.23 ms\n\
                 \n\
                 === Operations ===\n\
                 \x20 #1 done: join [========================] 3/3 steps, 1200 keys, 1.2MB - streaming 300 ranges from 2 sources\n\
                 \n\
                 === Anti-entropy ===\n\
                 Rounds: 3, keys compared: 3600, keys repaired: 5, tombstones purged: 0\n\
                 Last complete round: never\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn empty_cluster_and_empty_storage() {
        let status = ClusterStatus {
            storage: Some(StorageMetrics::default()),
            ..Default::default()
        };
        assert_eq!(
            render(&status, OutputFormat::Text, &Utc),
            "=== Cluster Status ===\n\
             Health: 0 total nodes, 0 alive, 0 dead (0.0% availability)\n\
             \n\
             === Nodes ===\n\
             \n\
             === Metrics ===\n\
             Total requests: 0\n\
             Average latency: 0.00 ms\n\
             \n\
             === Storage Metrics ===\n\
             Total reads: 0\n\
             Total writes: 0\n\
             Cache hit rate: 0.0%\n\
             SSTable count: 0\n\
             Compaction count: 0\n\
             Memory usage: 0B\n\
             SSTable size: 0B\n\
             Write amplification: 0.00\n"
        );
    }

    #[test]
    fn empty_levels_between_full_ones_are_listed() {
        let storage = StorageMetrics {
            sstables_per_level: vec![1, 0, 4, 0],
            ..Default::default()
        };
        assert!(
            render_storage(&storage)
                .contains("SSTable count: 5 (Level 0: 1, Level 1: 0, Level 2: 4)\n")
        );
    }

    #[test]
    fn json_shape() {
        let mut status = sample(Some(storage()));
        status.nodes.truncate(1);
        let json: serde_json::Value =
            serde_json::from_str(&render(&status, OutputFormat::Json, &Utc)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "command": "status",
                "nodes": [{
                    "node_id": "node3",
                    "address": "localhost:8082",
                    "status": "DEAD",
                    "last_seen": 1_757_137_527,
                }],
                "health": {
                    "total_nodes": 4,
                    "alive_nodes": 1,
                    "dead_nodes": 1,
                    "availability_percentage": 25.0,
                },
                "metrics": {
                    "total_keys": 10,
                    "total_requests": 5234,
                    "avg_latency_ms": 1.23456,
                    "qps": 3.5,
                },
                "storage": {
                    "reads": 5234,
                    "writes": 3421,
                    "sstables_per_level": [2, 3, 3, 0, 0, 0, 0],
                    "compactions": 15,
                    "cache_hit_rate": 0.873,
                    "memory_bytes": 1_288_490_189u64,
                    "memory_limit_bytes": 2_147_483_648u64,
                    "sstable_bytes": 1_610_612_736u64,
                    "write_amplification": 2.345,
                },
                "operations": [],
                "anti_entropy": null,
            })
        );
    }

    #[test]
    fn json_without_storage_has_null() {
        let json: serde_json::Value =
            serde_json::from_str(&render(&sample(None), OutputFormat::Json, &Utc)).unwrap();
        assert_eq!(json["storage"], serde_json::Value::Null);
    }

    #[test]
    fn takes_no_arguments() {
        assert_eq!(parse(&[]), Ok(()));
        assert_eq!(parse(&["x".to_string()]), Err(UsageError::WrongArgs(USAGE)));
    }
}
