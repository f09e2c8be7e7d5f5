//! # distkv-cluster
//!
//! The cluster logic of DistKV, with no I/O: where keys live, how their versions are compared and
//! merged, when a quorum round has succeeded, and who the members of the cluster are. Nothing here
//! opens a socket, reads a clock or starts a task; the node layer (`distkv-node`) feeds in replies,
//! timeouts and the current time, and acts on what comes back. That makes every rule in this crate
//! deterministic and testable one step at a time.
//!
//! From the bottom up, following the Dynamo paper (DeCandia et al., SOSP 2007):
//!
//! * [`ring`]: consistent hashing with virtual nodes, preference lists (4.2, 4.3).
//! * [`vclock`]: vector clocks, the causal context handed to clients (4.4).
//! * [`versions`]: versioned values with dotted version vectors, siblings, merge laws (4.4).
//! * [`quorum`]: N, R, W and per-request consistency levels (4.5).
//! * [`coordinator`]: sans-IO read and write rounds that decide success or failure (4.5) and pick
//!   read-repair targets.
//! * [`fanout`]: where a write goes: a key's placement (replicas, pending nodes, those held
//!   down, sloppy-quorum stand-ins) and the fan-out that picks stand-ins and hints (4.6).
//! * [`membership`]: the member table every node shares, merged by version (4.8).
//! * [`failure`]: the phi-accrual failure detector with the original's timeouts as bounds.
//! * [`gossip`]: push-pull gossip of the member table and heartbeats as a state machine (4.8).
//! * [`placement`]: which ranges move, to whom and from whom, when the ring changes (4.9).
//! * [`merkle`]: Merkle trees over key digests and the descent that finds differences (4.7).
//!
//! Every output that lists nodes or versions is in a defined order (sorted, or the order of the
//! preference list), never in hash-map order, so two nodes given the same input produce the same
//! bytes.
//!
//! ```
//! use distkv_cluster::{ConflictMode, Dot, Ring, Siblings, VectorClock};
//!
//! let mut ring = Ring::new();
//! for id in ["n1", "n2", "n3", "n4"] {
//!     ring.add_node(id, 64);
//! }
//! let replicas = ring.preference_list(b"user:1", 3);
//! assert_eq!(replicas.len(), 3);
//!
//! // Two clients write without having read anything: both writes are kept as siblings.
//! let (empty, mode) = (VectorClock::new(), ConflictMode::Siblings);
//! let a = Siblings::new().write(Dot::new("n1", 1), &empty, Some(b"ada".to_vec()), 10, mode);
//! let b = a.write(Dot::new("n1", 2), &empty, Some(b"grace".to_vec()), 11, mode);
//! assert_eq!(b.len(), 2);
//!
//! // A client that read both writes with that context and replaces them.
//! let read = Siblings::decode(&b.encode())?;
//! let c = b.write(Dot::new("n2", 1), &read.context(), Some(b"both".to_vec()), 12, mode);
//! assert_eq!(c.len(), 1);
//! # Ok::<(), distkv_cluster::DecodeError>(())
//! ```
//!
//! Left out (they live in the node layer): timers and sockets, hinted handoff queues, storage,
//! and the protobuf conversions.

mod codec;
pub mod coordinator;
pub mod error;
pub mod failure;
pub mod fanout;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod gossip;
pub mod membership;
pub mod merkle;
pub mod placement;
pub mod quorum;
pub mod ring;
pub mod vclock;
pub mod versions;

pub use coordinator::{Outcome, QuorumError, ReadRound, WriteRound};
pub use error::{DecodeError, Error, Result};
pub use failure::{DetectorConfig, FailureDetector, Liveness};
pub use gossip::{Ack, Ack2, GossipConfig, GossipDigest, GossipEvent, Gossiper, Outgoing, Syn};
pub use membership::{Member, MemberState, Membership, NodeStatus, Update};
pub use placement::{RangeSet, Transfer, plan_transfers};
pub use quorum::{Consistency, Quorum, QuorumConfigError};
pub use ring::{Ring, Token, TokenRange, key_token, node_tokens};
pub use vclock::{Causality, VectorClock};
pub use versions::{ConflictMode, Dot, Siblings, Version};

/// The name of a node: unique in the cluster, stable across restarts.
pub type NodeId = String;
