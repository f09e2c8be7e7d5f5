//! Anti-entropy (Dynamo 4.7): replicas compare Merkle trees of the ranges they share and
//! exchange only the keys that differ; and the garbage collection of old tombstones that
//! this makes safe.
//!
//! **A round with one peer.** This node lists the token ranges it shares with the peer
//! ([`distkv_cluster::placement::shared_ranges`]), builds its Merkle tree over its index
//! entries in those ranges, and descends the peer's tree over the same ranges (the peer builds
//! it for the session and keeps it a minute) level by level, asking only for the children of
//! nodes that differ ([`distkv_cluster::merkle::MerkleDiff`]). For the leaves that differ both
//! sides list `(key, digest)`; keys the peer holds differently are fetched and merged here,
//! and then every key that differed is sent to the peer from here, already merged, so both
//! end with the merge of both. Tombstones are keys like any other: they are repaired too.
//! That session is the component in [`session`] ([`AntiEntropy`], and [`RepairServer`] on the
//! answering side), which reaches peers through
//! [`RepairTransport`](crate::transport::RepairTransport): over gRPC in a node, in process in
//! tests. The node's rounds ([`rounds`]: [`Rounds`]) choose the peers and ranges from its rings.
//!
//! **When.** Every `-anti-entropy-interval` with every live peer that shares ranges, and on
//! demand (`distkv-client repair`, which also serves `Rebalance`).
//!
//! **Tombstones.** A key whose versions are all tombstones older than `-tombstone-gc-grace` is
//! deleted for good (index and data) after a round. The grace must be longer than the
//! anti-entropy interval, so that a tombstone has been offered to every replica at least once
//! before it goes; a replica that was down for longer than the grace must be wiped and
//! re-joined, or it could bring deleted data back (as in Cassandra with `gc_grace_seconds`).

pub mod rounds;
pub mod session;
#[cfg(test)]
mod tests;

pub use rounds::{Rounds, RoundsParts};
pub use session::{AntiEntropy, RepairServer, SyncStats, build_tree, expired, leaf_keys};
