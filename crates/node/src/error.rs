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
    BadContext(String),
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
    /// A peer sent something that makes no sense.
    #[error("bad message: {0}")]
    BadMessage(String),
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
    #[error("node {node} is joining the cluster ({progress}); ask another node")]
    Joining { node: String, progress: String },
    #[error("node {0} is not dead: decommission it instead (removenode is for dead nodes)")]
    StillAlive(String),
    #[error("decommission would leave {remaining} nodes for {replicas} replicas per key")]
    TooFewNodes { remaining: usize, replicas: usize },
    #[error("TLS: {0}")]
    Tls(#[from] distkv_tls::TlsError),
    /// Data streaming or repair with some peers failed (each named with its reason).
    #[error("streaming failed: {0}")]
    Streaming(String),
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
        "member table in {dir}: {source} (restore it from a backup, or remove it to start this node with its default tokens)",
        dir = .dir.display()
    )]
    MemberTable {
        dir: std::path::PathBuf,
        source: crate::members_file::MembersFileError,
    },
    /// A backup could not be made; the reason names the name or file at fault.
    #[error("{0}")]
    Backup(String),
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

impl NodeError {
    /// A peer's reply that did not decode.
    pub fn bad_reply(peer: &str, reason: impl std::fmt::Display) -> NodeError {
        NodeError::Peer {
            peer: peer.to_string(),
            failure: PeerFailure::BadReply(reason.to_string()),
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
            | NodeError::Streaming(_)
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
