//! The long-running admin commands (new): `decommission`, `removenode <node>`, `repair` and
//! `rebalance`. Each asks the connected node to do the work and waits for it to finish, however
//! long that takes (`-timeout` bounds only the connection); meanwhile it polls the node's
//! status and shows the operation's progress on stderr: a bar redrawn in place on a terminal,
//! a line per completed step otherwise.
//!
//! Text on stdout when done:
//!
//! ```text
//! Node decommissioned: 1204 keys streamed to their new owners
//! Node 'node3' removed: 811 keys re-replicated
//! Repair complete: 3000 keys compared with 2 peers, 12 repaired
//! Rebalance complete: 12 keys moved
//! ```
//!
//! JSON: `{"command":"decommission","keys_moved"}`, `{"command":"removenode","node",
//! "keys_moved"}`, `{"command":"repair","peers","keys_compared","keys_repaired"}`,
//! `{"command":"rebalance","keys_moved"}`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde::Serialize;

use super::output::{OutputFormat, format_bytes, json_line};
use super::{CliError, Ctx, UsageError};
use crate::types::{OperationInfo, RepairResult};

pub(crate) const DECOMMISSION_USAGE: &str = "distkv-client decommission";
pub(crate) const REMOVENODE_USAGE: &str = "distkv-client removenode <node-id|address>";
pub(crate) const REPAIR_USAGE: &str = "distkv-client repair";
pub(crate) const REBALANCE_USAGE: &str = "distkv-client rebalance";

/// Which admin operation, with its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admin {
    Decommission,
    RemoveNode(String),
    Repair,
    Rebalance,
}

impl Admin {
    pub(crate) fn parse(name: &str, args: &[String]) -> Result<Admin, UsageError> {
        match (name, args) {
            ("decommission", []) => Ok(Admin::Decommission),
            ("decommission", _) => Err(UsageError::WrongArgs(DECOMMISSION_USAGE)),
            ("removenode", [node]) if !node.is_empty() => Ok(Admin::RemoveNode(node.clone())),
            ("removenode", _) => Err(UsageError::WrongArgs(REMOVENODE_USAGE)),
            ("repair", []) => Ok(Admin::Repair),
            ("repair", _) => Err(UsageError::WrongArgs(REPAIR_USAGE)),
            ("rebalance", []) => Ok(Admin::Rebalance),
            (_, _) => Err(UsageError::WrongArgs(REBALANCE_USAGE)),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Admin::Decommission => "decommission",
            Admin::RemoveNode(_) => "removenode",
            Admin::Repair => "repair",
            Admin::Rebalance => "rebalance",
        }
    }

    /// The operation kinds whose progress the node reports for this command.
    fn watched_kinds(&self) -> &'static [&'static str] {
        match self {
            Admin::Decommission => &["decommission"],
            Admin::RemoveNode(_) => &["removenode"],
            Admin::Repair => &["repair"],
            Admin::Rebalance => &["rebalance"],
        }
    }

    pub(crate) async fn execute(&self, ctx: &Ctx, out: &mut dyn Write) -> Result<(), CliError> {
        let client = &ctx.client;
        // Operations already finished before this command are not its own.
        let before: Vec<u64> = match client.cluster_status().await {
            Ok(s) => s.operations.iter().map(|o| o.id).collect(),
            Err(_) => Vec::new(),
        };
        let work = async {
            match self {
                Admin::Decommission => client.decommission().await.map(Outcome::Moved),
                Admin::RemoveNode(node) => client
                    .remove_node(node.clone())
                    .await
                    .map(|()| Outcome::Removed),
                Admin::Repair => client.repair().await.map(Outcome::Repaired),
                Admin::Rebalance => client.rebalance(false).await.map(Outcome::Moved),
            }
        };
        let mut progress = Progress::new(std::io::stderr().is_terminal());
        let poll = async {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(status) = client.cluster_status().await
                    && let Some(op) = status.operations.iter().rev().find(|o| {
                        self.watched_kinds().contains(&o.kind.as_str()) && !before.contains(&o.id)
                    })
                {
                    progress.show(op);
                }
            }
        };
        let outcome = tokio::select! {
            r = work => r,
            () = poll => unreachable!("the poll loop never ends"),
        };
        progress.clear();
        let outcome = outcome?;
        out.write_all(render(self, &outcome, ctx.format).as_bytes())?;
        Ok(())
    }
}

/// What an admin operation reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Moved(u64),
    Removed,
    Repaired(RepairResult),
}

/// The output of an admin command.
pub(crate) fn render(cmd: &Admin, outcome: &Outcome, format: OutputFormat) -> String {
    #[derive(Serialize)]
    struct Json<'a> {
        command: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        node: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        keys_moved: Option<u64>,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        repair: Option<&'a RepairResult>,
    }
    match format {
        OutputFormat::Json => json_line(&Json {
            command: cmd.name(),
            node: match cmd {
                Admin::RemoveNode(n) => Some(n),
                _ => None,
            },
            keys_moved: match outcome {
                Outcome::Moved(n) => Some(*n),
                _ => None,
            },
            repair: match outcome {
                Outcome::Repaired(r) => Some(r),
                _ => None,
            },
        }),
        OutputFormat::Text => match (cmd, outcome) {
            (Admin::Decommission, Outcome::Moved(n)) => {
                format!("Node decommissioned: {n} keys streamed to their new owners\n")
            }
            (Admin::RemoveNode(node), _) => {
                format!("Node '{node}' removed: its ranges were re-replicated\n")
            }
            (_, Outcome::Repaired(r)) => format!(
                "Repair complete: {} keys compared with {} peers, {} repaired\n",
                r.keys_compared, r.peers, r.keys_repaired
            ),
            (_, Outcome::Moved(n)) => format!("Rebalance complete: {n} keys moved\n"),
            (_, Outcome::Removed) => "Done\n".to_string(),
        },
    }
}

/// One line of progress: `[=========>          ] 3/7 steps, 1200 keys, 1.2MB - <detail>`.
pub fn render_progress(op: &OperationInfo) -> String {
    const WIDTH: usize = 24;
    let fraction = if op.steps_total == 0 {
        0.0
    } else {
        f64::from(op.steps_done.min(op.steps_total)) / f64::from(op.steps_total)
    };
    let filled = (fraction * WIDTH as f64).round() as usize;
    let mut bar = "=".repeat(filled);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH - filled - 1));
    }
    let mut line = format!(
        "{} [{bar}] {}/{} steps, {} keys, {}",
        op.kind,
        op.steps_done,
        op.steps_total,
        op.keys,
        format_bytes(op.bytes)
    );
    if !op.detail.is_empty() {
        line.push_str(" - ");
        line.push_str(&op.detail);
    }
    line
}

/// Shows progress on stderr: redrawn in place on a terminal, else a line per step.
struct Progress {
    terminal: bool,
    last_steps: Option<u32>,
    drawn: bool,
}

impl Progress {
    fn new(terminal: bool) -> Progress {
        Progress {
            terminal,
            last_steps: None,
            drawn: false,
        }
    }

    fn show(&mut self, op: &OperationInfo) {
        let line = render_progress(op);
        let mut err = std::io::stderr();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
            self.drawn = true;
        } else if self.last_steps != Some(op.steps_done) {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.last_steps = Some(op.steps_done);
    }

    fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parse_each_command() {
        assert_eq!(Admin::parse("decommission", &[]), Ok(Admin::Decommission));
        assert_eq!(
            Admin::parse("removenode", &args(&["n3"])),
            Ok(Admin::RemoveNode("n3".into()))
        );
        assert_eq!(
            Admin::parse("removenode", &[]),
            Err(UsageError::WrongArgs(REMOVENODE_USAGE))
        );
        assert_eq!(
            Admin::parse("repair", &args(&["x"])),
            Err(UsageError::WrongArgs(REPAIR_USAGE))
        );
        assert_eq!(Admin::parse("rebalance", &[]), Ok(Admin::Rebalance));
    }

    #[test]
    fn outputs() {
        assert_eq!(
            render(
                &Admin::Decommission,
                &Outcome::Moved(12),
                OutputFormat::Text
            ),
            "Node decommissioned: 12 keys streamed to their new owners\n"
        );
        assert_eq!(
            render(
                &Admin::RemoveNode("n3".into()),
                &Outcome::Removed,
                OutputFormat::Json
            ),
            "{\"command\":\"removenode\",\"node\":\"n3\"}\n"
        );
        let r = RepairResult {
            peers: 2,
            keys_compared: 300,
            keys_repaired: 4,
        };
        assert_eq!(
            render(
                &Admin::Repair,
                &Outcome::Repaired(r.clone()),
                OutputFormat::Text
            ),
            "Repair complete: 300 keys compared with 2 peers, 4 repaired\n"
        );
        assert_eq!(
            render(&Admin::Repair, &Outcome::Repaired(r), OutputFormat::Json),
            "{\"command\":\"repair\",\"peers\":2,\"keys_compared\":300,\"keys_repaired\":4}\n"
        );
        assert_eq!(
            render(&Admin::Rebalance, &Outcome::Moved(0), OutputFormat::Json),
            "{\"command\":\"rebalance\",\"keys_moved\":0}\n"
        );
    }

    #[test]
    fn progress_lines() {
        let op = OperationInfo {
            kind: "decommission".into(),
            steps_total: 4,
            steps_done: 1,
            keys: 1200,
            bytes: 2048,
            detail: "streaming 300 ranges to 2 nodes".into(),
            ..OperationInfo::default()
        };
        assert_eq!(
            render_progress(&op),
            "decommission [======>                 ] 1/4 steps, 1200 keys, 2.0KB - streaming 300 ranges to 2 nodes"
        );
        let done = OperationInfo {
            steps_done: 4,
            ..op
        };
        assert!(render_progress(&done).contains("[========================] 4/4"));
    }
}
