//! The client's domain types: what callers send and get back, free of protobuf.
//!
//! Maps are `BTreeMap`s and lists are in a stated order, so that anything printed from these
//! types is the same from run to run. The status and ring types implement `Serialize` with their
//! field names as they are: `distkv-client -o json` prints them that way, so renaming a field
//! here changes the CLI's JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// How many replicas must answer a request (Dynamo §4.5: R and W of N).
///
/// Requests carry a level only when the caller chose one; with `None` the server applies its
/// configured default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// One replica.
    One,
    /// A majority: the server's R for reads, W for writes.
    Quorum,
    /// Every replica.
    All,
}

impl Consistency {
    /// The lower-case name used on command lines: `one`, `quorum`, `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::One => "one",
            Consistency::Quorum => "quorum",
            Consistency::All => "all",
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A consistency level name that is not `one`, `quorum` or `all`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid consistency level {input:?}: expected one, quorum or all")]
pub struct InvalidConsistency {
    /// The rejected name.
    pub input: String,
}

impl FromStr for Consistency {
    type Err = InvalidConsistency;

    /// Parses `one`, `quorum` or `all`, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "one" => Ok(Consistency::One),
            "quorum" => Ok(Consistency::Quorum),
            "all" => Ok(Consistency::All),
            _ => Err(InvalidConsistency {
                input: s.to_string(),
            }),
        }
    }
}

/// A vector clock: node id → counter (Dynamo §4.4).
pub type VectorClock = BTreeMap<String, u64>;

/// The outcome of a successful put.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutResult {
    /// The clock of the stored version (empty when the server does not report one).
    pub clock: VectorClock,
    /// The causal context of the stored version, to pass to a later put or delete.
    pub context: Vec<u8>,
}

/// One of several concurrent versions of a key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sibling {
    /// The version's value.
    pub value: Vec<u8>,
    /// The version's vector clock.
    pub clock: VectorClock,
    /// Unix milliseconds when the coordinator accepted the write (0 when unknown).
    pub timestamp_ms: i64,
}

/// The outcome of a get.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetResult {
    /// Whether the key has a live value.
    pub found: bool,
    /// The value, or with several siblings the server's deterministic winner; empty when not
    /// found.
    pub value: Vec<u8>,
    /// Every concurrent version, in the server's order. One when there is no conflict; empty
    /// when not found. A server that does not know siblings (the original) yields one sibling
    /// made of `value`.
    pub siblings: Vec<Sibling>,
    /// The causal context to send with a put or delete that resolves these versions.
    pub context: Vec<u8>,
}

/// The outcome of a batch put. Partial failure is a result, not an error, as in the original.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchResult {
    /// Whether every item was stored.
    pub success: bool,
    /// The server's explanation when `success` is false.
    pub error_message: String,
    /// The keys that were not stored, sorted.
    pub failed_keys: Vec<String>,
}

/// What a scan reads and how. With `prefix` set, `start` and `end` are ignored by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanOptions {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Inclusive start key; `None` means the first key.
    pub start: Option<String>,
    /// Exclusive end key; `None` means no end.
    pub end: Option<String>,
    /// Page size; `None` lets the server choose (100). The server caps it at 10000.
    pub limit: Option<u32>,
    /// Continue after the page that returned this token.
    pub page_token: Option<String>,
    /// The read consistency; `None` for the server's default.
    pub consistency: Option<Consistency>,
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    /// Live key-value pairs in key order (deletion markers are dropped).
    pub items: Vec<(String, Vec<u8>)>,
    /// The token for the next page; `None` when the scan is complete.
    pub next_page_token: Option<String>,
}

/// A node's state as the failure detector sees it (Dynamo §4.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Answering heartbeats.
    Alive,
    /// Missed heartbeats for a while.
    Suspect,
    /// Missed heartbeats for long enough to be given up on.
    Dead,
    /// Left the cluster on purpose.
    Left,
    /// Taking over its ranges (streaming them in).
    Joining,
    /// Handing its ranges off (decommissioning).
    Leaving,
    /// A value this client does not know (from a newer server).
    Unknown(i32),
}

impl NodeState {
    /// The upper-case name the original CLI prints: `ALIVE`, `SUSPECT`, `DEAD`, and ours:
    /// `LEFT`, `JOINING`, `LEAVING`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "ALIVE",
            NodeState::Suspect => "SUSPECT",
            NodeState::Dead => "DEAD",
            NodeState::Left => "LEFT",
            NodeState::Joining => "JOINING",
            NodeState::Leaving => "LEAVING",
            NodeState::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NodeState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One member in a cluster status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    pub node_id: String,
    pub address: String,
    pub status: NodeState,
    /// Unix seconds of the last heartbeat seen.
    pub last_seen: i64,
}

/// Membership counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ClusterHealth {
    pub total_nodes: i32,
    pub alive_nodes: i32,
    pub dead_nodes: i32,
    /// 0..100.
    pub availability_percentage: f64,
}

/// Request counters of the node that answered.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ClusterMetrics {
    pub total_keys: i64,
    pub total_requests: i64,
    pub avg_latency_ms: f64,
    pub qps: f64,
}

/// The storage engine of the node that answered.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StorageMetrics {
    pub reads: u64,
    pub writes: u64,
    /// Table count of each level, L0 first.
    pub sstables_per_level: Vec<u32>,
    pub compactions: u64,
    /// Block cache hits over lookups, 0..1.
    pub cache_hit_rate: f64,
    /// Bytes held in memory (memtables and cache).
    pub memory_bytes: u64,
    /// The configured memory limit; 0 when there is none.
    pub memory_limit_bytes: u64,
    /// Bytes of all SSTables.
    pub sstable_bytes: u64,
    /// Bytes written to disk per byte written by clients.
    pub write_amplification: f64,
}

impl StorageMetrics {
    /// Tables over all levels.
    pub fn sstable_count(&self) -> u64 {
        self.sstables_per_level.iter().map(|&n| u64::from(n)).sum()
    }
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ClusterStatus {
    /// Members sorted by node id.
    pub nodes: Vec<NodeStatus>,
    pub health: ClusterHealth,
    pub metrics: ClusterMetrics,
    /// `None` from a server that does not report storage metrics (the original).
    pub storage: Option<StorageMetrics>,
    /// Data streaming and repairs of the node that answered, running or recently finished.
    pub operations: Vec<OperationInfo>,
    /// Anti-entropy totals of the node that answered (`None` from the original).
    pub anti_entropy: Option<AntiEntropyStats>,
}

/// A long-running job of one node: join, decommission, re-replication, repair.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OperationInfo {
    pub id: u64,
    /// `join`, `decommission`, `removenode`, `rereplicate`, `repair`, `rebalance`,
    /// `anti-entropy`.
    pub kind: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub steps_total: u32,
    pub steps_done: u32,
    pub keys: u64,
    pub bytes: u64,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds; 0 while running.
    pub finished: i64,
    pub detail: String,
}

/// Anti-entropy totals of one node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AntiEntropyStats {
    pub rounds: u64,
    pub keys_compared: u64,
    pub keys_repaired: u64,
    /// Unix seconds of the last complete round; 0 for never.
    pub last_round: i64,
    pub tombstones_purged: u64,
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RepairResult {
    pub peers: u32,
    pub keys_compared: u64,
    pub keys_repaired: u64,
}

/// A backup a node wrote (`Client::backup`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct BackupInfo {
    pub name: String,
    /// The backup's directory on the node.
    pub path: String,
    pub node_id: String,
    /// Unix seconds.
    pub created: i64,
    /// Table files and their bytes.
    pub files: u32,
    pub bytes: u64,
}

/// One node on the hash ring.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RingNode {
    pub node_id: String,
    pub address: String,
    pub virtual_nodes: u32,
    /// Share of the hash space this node owns as primary, 0..1.
    pub ownership: f64,
    pub status: NodeState,
    /// The node's tokens on the ring (from DistKV servers; empty from the original's, and
    /// while the node joins). Left out of JSON output.
    #[serde(skip)]
    pub tokens: Vec<u64>,
}

/// The hash ring (Dynamo §4.2) and the replication settings (N, R, W).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RingInfo {
    /// Nodes sorted by node id.
    pub nodes: Vec<RingNode>,
    /// N.
    pub replicas: u32,
    /// R.
    pub read_quorum: u32,
    /// W.
    pub write_quorum: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_parses_case_insensitively() {
        assert_eq!("one".parse(), Ok(Consistency::One));
        assert_eq!("QUORUM".parse(), Ok(Consistency::Quorum));
        assert_eq!("All".parse(), Ok(Consistency::All));
        assert_eq!(
            "two".parse::<Consistency>(),
            Err(InvalidConsistency {
                input: "two".into()
            })
        );
        assert_eq!(
            "".parse::<Consistency>().unwrap_err().to_string(),
            "invalid consistency level \"\": expected one, quorum or all"
        );
    }

    #[test]
    fn consistency_round_trips_through_its_name() {
        for level in [Consistency::One, Consistency::Quorum, Consistency::All] {
            assert_eq!(level.to_string().parse(), Ok(level));
        }
    }

    #[test]
    fn node_state_names() {
        assert_eq!(NodeState::Alive.to_string(), "ALIVE");
        assert_eq!(NodeState::Suspect.to_string(), "SUSPECT");
        assert_eq!(NodeState::Dead.to_string(), "DEAD");
        assert_eq!(NodeState::Left.to_string(), "LEFT");
        assert_eq!(NodeState::Unknown(9).to_string(), "UNKNOWN");
    }

    #[test]
    fn sstable_count_sums_levels() {
        let storage = StorageMetrics {
            sstables_per_level: vec![2, 3, 3],
            ..Default::default()
        };
        assert_eq!(storage.sstable_count(), 8);
        assert_eq!(StorageMetrics::default().sstable_count(), 0);
    }
}
