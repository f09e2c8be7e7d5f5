//! Errors of a node. One place ([`NodeError::to_status`]) maps them to gRPC status codes; the
//! original's services report them as `success=false` plus `error_message` instead.

use distkv_cluster::QuorumError;

pub type Result<T, E = NodeError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("key must not be empty")]
    EmptyKey,
    #[error("key is {len} bytes, the limit is {max}")]
    KeyTooLarge { len: usize, max: usize },
    #[error("value is {len} bytes, the limit is {max}")]
    ValueTooLarge { len: usize, max: usize },
    #[error("batch has {items} items, the limit is {max}")]
    BatchTooLarge { items: usize, max: usize },
    #[error("invalid causal context: {0}")]
    BadContext(#[from] distkv_cluster::DecodeError),
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    #[error("no replicas: the ring is empty")]
    EmptyRing,
    #[error("storage: {0}")]
    Storage(#[from] distkv_lsm::Error),
    #[error("stored versions of {key:?} do not decode: {reason}")]
    CorruptVersions { key: String, reason: String },
    #[error("peer {peer}: {failure}")]
    Peer { peer: String, failure: PeerFailure },
    /// The replica a write was forwarded to could not complete it; its message is the reason.
    #[error("{message}")]
    Coordinator { peer: String, message: String },
    #[error("node {0} is down")]
    PeerDown(String),
    #[error("unknown node {0}")]
    UnknownNode(String),
    #[error("node is shutting down")]
    ShuttingDown,
    /// A peer sent something that makes no sense, or a request this node cannot act on.
    #[error("bad message: {0}")]
    BadMessage(#[from] BadMessage),
    #[error("a node cannot remove itself: decommission it instead")]
    RemoveSelf,
    /// The request does not fit a node's state in the ring.
    #[error("not possible: the node is {0}")]
    WrongState(&'static str),
    #[error("no replica to stream from is reachable")]
    NoSource,
    /// Too many client requests in flight.
    #[error("server busy: {limit} requests in flight (-max-concurrent-requests); retry later")]
    Busy { limit: usize },
    /// The node is still joining the cluster; it serves requests once its ranges are in.
    #[error("node {node} is joining the cluster ({}); ask another node", JoinState(.progress))]
    Joining {
        node: String,
        /// How far its join is; `None` before the join has started.
        progress: Option<JoinProgress>,
    },
    #[error("node {0} is not dead: decommission it instead (removenode is for dead nodes)")]
    StillAlive(String),
    #[error("decommission would leave {remaining} nodes for {replicas} replicas per key")]
    TooFewNodes { remaining: usize, replicas: usize },
    #[error("TLS: {0}")]
    Tls(#[from] distkv_tls::TlsError),
    /// Data streaming or repair with some peers failed (each named with its reason).
    #[error("streaming failed: {}", PeerErrors(.failures))]
    Streaming {
        /// Each peer that failed, and why.
        failures: Vec<(String, NodeError)>,
    },
    /// The concurrent versions of one key together outgrow what a replica stores.
    #[error(
        "key {key:?} would hold {versions} concurrent versions of {bytes} bytes, more than the {max} a replica stores: resolve them with a put carrying the context of a get"
    )]
    TooManyVersions {
        key: String,
        versions: usize,
        bytes: usize,
        max: usize,
    },
    /// The member table kept in the data directory is damaged.
    #[error(
        "member table {}: {source} (restore it from a backup, or remove it to start this node with its default tokens)",
        .path.display()
    )]
    MemberTable {
        path: std::path::PathBuf,
        source: MembersFileError,
    },
    /// A backup could not be made; the reason names the name or file at fault.
    #[error(transparent)]
    Backup(#[from] BackupError),
}

/// How far a join is, as a node that is still joining reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinProgress {
    pub steps_done: u32,
    pub steps_total: u32,
    /// Keys streamed in so far.
    pub keys: u64,
    /// What it is doing or waiting for now (empty: nothing to add).
    pub detail: String,
}

impl std::fmt::Display for JoinProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} steps, {} keys streamed",
            self.steps_done, self.steps_total, self.keys
        )?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A join's progress, or "starting" before there is any.
struct JoinState<'a>(&'a Option<JoinProgress>);

impl std::fmt::Display for JoinState<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(p) => p.fmt(f),
            None => f.write_str("starting"),
        }
    }
}

/// Something a peer sent that makes no sense, or a request a node cannot act on.
#[derive(Debug, thiserror::Error)]
pub enum BadMessage {
    #[error("member state {0}")]
    UnknownMemberState(u32),
    #[error("member without a node id")]
    MemberWithoutId,
    #[error("empty gossip update")]
    EmptyGossipUpdate,
    #[error("the node at {address} did not tell who it is")]
    Anonymous { address: String },
    #[error("the node at {address} is {found}, not {expected}")]
    WrongNode {
        address: String,
        found: String,
        expected: String,
    },
    #[error("no such tree nodes at level {level}")]
    NoTreeNodes { level: usize },
    #[error("a write cannot be forwarded to this node itself ({node})")]
    ForwardToSelf { node: String },
}

/// Why a member table file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum MembersFileError {
    #[error("{len} bytes, shorter than the {header}-byte header")]
    Truncated { len: usize, header: usize },
    #[error("format {found}, this release reads format {supported}")]
    UnsupportedFormat { found: u8, supported: u8 },
    #[error("the header says {claimed} bytes of table, the file holds {held}")]
    Length { claimed: u64, held: usize },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("the table does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Why a backup could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup name must not be empty")]
    EmptyName,
    #[error("backup name is {len} characters, the limit is {max}")]
    NameTooLong { len: usize, max: usize },
    #[error("backup name {name:?} has {found:?}: use letters, digits, '.', '_' and '-'")]
    BadCharacter { name: String, found: char },
    #[error("backup name {name:?} must not start with '.' or end in '.partial'")]
    ReservedName { name: String },
    #[error("a backup named {name:?} already exists at {}", .path.display())]
    Exists {
        name: String,
        path: std::path::PathBuf,
    },
    #[error("{}: {source}", .path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("describing the backup: {0}")]
    Describe(#[from] serde_json::Error),
}

/// Peers and their errors, shown as `peer: error; peer: error`.
struct PeerErrors<'a>(&'a [(String, NodeError)]);

impl std::fmt::Display for PeerErrors<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (peer, error)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{peer}: {error}")?;
        }
        Ok(())
    }
}

/// How a call to another node failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerFailure {
    #[error("bad address: {0}")]
    BadAddress(String),
    /// No connection could be made (or it broke).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// Found unreachable a moment ago; not dialled again until the backoff has passed.
    #[error("unreachable (next attempt in {0:?})")]
    BackingOff(std::time::Duration),
    #[error("timed out")]
    TimedOut,
    /// The peer answered with an error of its own.
    #[error("{message} ({code:?})")]
    Refused { code: tonic::Code, message: String },
    /// The peer's answer did not decode.
    #[error("undecodable reply: {0}")]
    BadReply(String),
}

impl PeerFailure {
    /// True when a later call may succeed: the peer was unreachable, slow or refused for a
    /// reason of the moment (unavailable, busy, timed out on its side).
    pub fn is_retryable(&self) -> bool {
        use tonic::Code;
        match self {
            PeerFailure::Unreachable(_) | PeerFailure::BackingOff(_) | PeerFailure::TimedOut => {
                true
            }
            PeerFailure::Refused { code, .. } => matches!(
                code,
                Code::Unavailable
                    | Code::ResourceExhausted
                    | Code::DeadlineExceeded
                    | Code::Aborted
            ),
            PeerFailure::BadAddress(_) | PeerFailure::BadReply(_) => false,
        }
    }
}

impl NodeError {
    /// A peer's reply that did not decode.
    pub fn bad_reply(peer: &str, reason: impl std::fmt::Display) -> NodeError {
        NodeError::Peer {
            peer: peer.to_string(),
            failure: PeerFailure::BadReply(reason.to_string()),
        }
    }

    /// True when the same request may succeed if it is made again, after a moment or on
    /// another node: a quorum or peer that was not there, a busy, joining or stopping node.
    /// False for what a retry cannot change: bad input, a refusal by the cluster's state, a
    /// damaged file.
    pub fn is_retryable(&self) -> bool {
        match self {
            NodeError::Quorum(_)
            | NodeError::PeerDown(_)
            | NodeError::ShuttingDown
            | NodeError::NoSource
            | NodeError::Busy { .. }
            | NodeError::Joining { .. }
            // The forwarding node checked the request before it forwarded it: what fails on
            // the replica is the cluster's (its quorum, its load).
            | NodeError::Coordinator { .. } => true,
            NodeError::Peer { failure, .. } => failure.is_retryable(),
            NodeError::Streaming { failures, .. } => failures.iter().all(|(_, e)| e.is_retryable()),
            NodeError::EmptyKey
            | NodeError::KeyTooLarge { .. }
            | NodeError::ValueTooLarge { .. }
            | NodeError::BatchTooLarge { .. }
            | NodeError::BadContext(_)
            | NodeError::EmptyRing
            | NodeError::Storage(_)
            | NodeError::CorruptVersions { .. }
            | NodeError::UnknownNode(_)
            | NodeError::BadMessage(_)
            | NodeError::RemoveSelf
            | NodeError::WrongState(_)
            | NodeError::StillAlive(_)
            | NodeError::TooFewNodes { .. }
            | NodeError::Tls(_)
            | NodeError::TooManyVersions { .. }
            | NodeError::MemberTable { .. }
            | NodeError::Backup(_) => false,
        }
    }

    /// The gRPC status for the new RPCs (the original's report errors in the message body).
    pub fn to_status(&self) -> tonic::Status {
        use tonic::Status;
        match self {
            NodeError::EmptyKey
            | NodeError::KeyTooLarge { .. }
            | NodeError::ValueTooLarge { .. }
            | NodeError::BatchTooLarge { .. }
            | NodeError::BadContext(_) => Status::invalid_argument(self.to_string()),
            NodeError::Backup(_) | NodeError::TooManyVersions { .. } => {
                Status::failed_precondition(self.to_string())
            }
            NodeError::Quorum(_)
            | NodeError::EmptyRing
            | NodeError::Peer { .. }
            | NodeError::PeerDown(_)
            | NodeError::Coordinator { .. } => Status::unavailable(self.to_string()),
            NodeError::UnknownNode(_) => Status::not_found(self.to_string()),
            NodeError::ShuttingDown
            | NodeError::NoSource
            | NodeError::Streaming { .. }
            | NodeError::Joining { .. } => Status::unavailable(self.to_string()),
            NodeError::BadMessage(_) | NodeError::RemoveSelf => {
                Status::invalid_argument(self.to_string())
            }
            NodeError::Busy { .. } => Status::resource_exhausted(self.to_string()),
            NodeError::WrongState(_) | NodeError::TooFewNodes { .. } | NodeError::StillAlive(_) => {
                Status::failed_precondition(self.to_string())
            }
            NodeError::Storage(_)
            | NodeError::CorruptVersions { .. }
            | NodeError::Tls(_)
            | NodeError::MemberTable { .. } => Status::internal(self.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joining_node_says_how_far_its_join_is() {
        let starting = NodeError::Joining {
            node: "n4".into(),
            progress: None,
        };
        assert_eq!(
            starting.to_string(),
            "node n4 is joining the cluster (starting); ask another node"
        );
        let waiting = NodeError::Joining {
            node: "n4".into(),
            progress: Some(JoinProgress {
                steps_done: 0,
                steps_total: 0,
                keys: 0,
                detail: "waiting for a seed to answer".into(),
            }),
        };
        assert_eq!(
            waiting.to_string(),
            "node n4 is joining the cluster (0/0 steps, 0 keys streamed: waiting for a seed to answer); ask another node"
        );
        let streaming = NodeError::Joining {
            node: "n4".into(),
            progress: Some(JoinProgress {
                steps_done: 2,
                steps_total: 5,
                keys: 1200,
                detail: String::new(),
            }),
        };
        assert!(
            streaming
                .to_string()
                .contains("(2/5 steps, 1200 keys streamed)")
        );
        assert!(streaming.is_retryable());
    }

    fn down(peer: &str) -> (String, NodeError) {
        (peer.to_string(), NodeError::PeerDown(peer.to_string()))
    }

    #[test]
    fn what_a_retry_can_change_is_retryable() {
        let quorum = NodeError::Quorum(QuorumError::NotReached {
            required: 2,
            acked: 1,
            failures: Vec::new(),
        });
        assert!(quorum.is_retryable());
        assert!(NodeError::Busy { limit: 5 }.is_retryable());
        let timed_out = NodeError::Peer {
            peer: "n2".into(),
            failure: PeerFailure::TimedOut,
        };
        assert!(timed_out.is_retryable());
        let refused = |code| NodeError::Peer {
            peer: "n2".into(),
            failure: PeerFailure::Refused {
                code,
                message: "no".into(),
            },
        };
        assert!(refused(tonic::Code::Unavailable).is_retryable());
        assert!(!refused(tonic::Code::InvalidArgument).is_retryable());
        assert!(!NodeError::EmptyKey.is_retryable());
        assert!(!NodeError::BadMessage(BadMessage::MemberWithoutId).is_retryable());
        let context = distkv_cluster::VectorClock::decode(&[9]).unwrap_err();
        assert!(!NodeError::from(context).is_retryable());
        assert!(!NodeError::from(BackupError::EmptyName).is_retryable());
    }

    #[test]
    fn a_streaming_failure_names_each_peer_and_is_retryable_only_if_each_is() {
        let all_down = NodeError::Streaming {
            failures: vec![down("n2"), down("n3")],
        };
        assert_eq!(
            all_down.to_string(),
            "streaming failed: n2: node n2 is down; n3: node n3 is down"
        );
        assert!(all_down.is_retryable());
        let one_bad = NodeError::Streaming {
            failures: vec![down("n2"), ("n3".into(), NodeError::EmptyKey)],
        };
        assert!(!one_bad.is_retryable());
        assert_eq!(one_bad.to_status().code(), tonic::Code::Unavailable);
    }
}
