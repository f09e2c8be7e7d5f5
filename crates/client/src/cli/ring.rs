//! `ring`: the hash ring and replication settings as the connected node sees them (new).
//!
//! Text, nodes sorted by id, ownership as the share of the hash space each node owns as primary:
//!
//! ```text
//! === Ring ===
//! Replication: N=3, R=2, W=2
//! Nodes: 3, virtual nodes: 450
//!
//! NODE   ADDRESS         STATUS  VNODES  OWNERSHIP
//! node1  localhost:8080  ALIVE      150      33.4%
//! ```
//!
//! The table is left out when the ring is empty. JSON: `{"command":"ring","nodes":[{"node_id",
//! "address","virtual_nodes","ownership","status"}],"replicas","read_quorum","write_quorum"}`
//! with `ownership` as a 0..1 ratio.

use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use super::output::{OutputFormat, json_line};
use super::{CliError, Ctx, UsageError};
use crate::types::RingInfo;

pub(crate) const USAGE: &str = "distkv-client ring";

pub(crate) fn parse(args: &[String]) -> Result<(), UsageError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(UsageError::WrongArgs(USAGE))
    }
}

pub(crate) async fn execute(ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
    let ring = ctx.client.ring().await?;
    out.write_all(render(&ring, ctx.format).as_bytes())?;
    Ok(())
}

/// The output of `ring`.
pub fn render(ring: &RingInfo, format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => render_text(ring),
        OutputFormat::Json => {
            #[derive(Serialize)]
            struct RingView<'a> {
                command: &'static str,
                #[serde(flatten)]
                ring: &'a RingInfo,
            }
            json_line(&RingView {
                command: "ring",
                ring,
            })
        }
    }
}

fn render_text(ring: &RingInfo) -> String {
    let mut out = String::from("=== Ring ===\n");
    let _ = writeln!(
        out,
        "Replication: N={}, R={}, W={}",
        ring.replicas, ring.read_quorum, ring.write_quorum
    );
    let vnodes: u64 = ring.nodes.iter().map(|n| u64::from(n.virtual_nodes)).sum();
    let _ = writeln!(out, "Nodes: {}, virtual nodes: {vnodes}", ring.nodes.len());
    if ring.nodes.is_empty() {
        return out;
    }
    let mut nodes: Vec<_> = ring.nodes.iter().collect();
    nodes.sort_by(|a, b| (&a.node_id, &a.address).cmp(&(&b.node_id, &b.address)));
    let header = ["NODE", "ADDRESS", "STATUS", "VNODES", "OWNERSHIP"];
    let rows: Vec<[String; 5]> = nodes
        .iter()
        .map(|n| {
            [
                n.node_id.clone(),
                n.address.clone(),
                n.status.to_string(),
                n.virtual_nodes.to_string(),
                format!("{:.1}%", n.ownership * 100.0),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    out.push('\n');
    let header = header.map(String::from);
    for row in std::iter::once(&header).chain(&rows) {
        // Text columns left-aligned, number columns right-aligned.
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{NodeState, RingNode};

    fn node(id: &str, port: u16, vnodes: u32, ownership: f64, status: NodeState) -> RingNode {
        RingNode {
            node_id: id.into(),
            address: format!("localhost:{port}"),
            virtual_nodes: vnodes,
            ownership,
            status,
            tokens: Vec::new(),
        }
    }

    fn sample() -> RingInfo {
        RingInfo {
            nodes: vec![
                node("node2", 8081, 150, 0.3312, NodeState::Suspect),
                node("node1", 8080, 150, 0.3345, NodeState::Alive),
                node("node10", 8089, 1500, 0.3343, NodeState::Alive),
            ],
            replicas: 3,
            read_quorum: 2,
            write_quorum: 2,
        }
    }

    #[test]
    fn text_table() {
        assert_eq!(
            render(&sample(), OutputFormat::Text),
            "=== Ring ===\n\
             Replication: N=3, R=2, W=2\n\
             Nodes: 3, virtual nodes: 1800\n\
             \n\
             NODE    ADDRESS         STATUS   VNODES  OWNERSHIP\n\
             node1   localhost:8080  ALIVE       150      33.5%\n\
             node10  localhost:8089  ALIVE      1500      33.4%\n\
             node2   localhost:8081  SUSPECT     150      33.1%\n"
        );
    }

    #[test]
    fn empty_ring_has_no_table() {
        assert_eq!(
            render(&RingInfo::default(), OutputFormat::Text),
            "=== Ring ===\nReplication: N=0, R=0, W=0\nNodes: 0, virtual nodes: 0\n"
        );
    }

    #[test]
    fn json_shape() {
        let mut ring = sample();
        ring.nodes.truncate(1);
        let json: serde_json::Value =
            serde_json::from_str(&render(&ring, OutputFormat::Json)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "command": "ring",
                "nodes": [{
                    "node_id": "node2",
                    "address": "localhost:8081",
                    "virtual_nodes": 150,
                    "ownership": 0.3312,
                    "status": "SUSPECT",
                }],
                "replicas": 3,
                "read_quorum": 2,
                "write_quorum": 2,
            })
        );
    }

    #[test]
    fn takes_no_arguments() {
        assert_eq!(parse(&[]), Ok(()));
        assert_eq!(parse(&["x".into()]), Err(UsageError::WrongArgs(USAGE)));
    }
}
