//! Moving whole token ranges between nodes: joining, decommissioning, and re-replicating the
//! ranges of a removed node (Dynamo 4.9).
//!
//! **Join.** A node that starts with seeds and no place in the ring gossips itself as
//! `joining` with its tokens. Every node then sends writes for the ranges it takes over to it
//! as well (the pending ring), while reads still go to the old replicas. It plans which ranges
//! it gains ([`distkv_cluster::plan_transfers`]: only ranges whose replicas change move),
//! pulls each from one of its current replicas in token order, page by page, then compares
//! Merkle trees with those replicas for anything written meanwhile, and only then becomes
//! `normal`: from that moment reads of its ranges reach it.
//!
//! **Decommission.** The leaving node gossips `leaving`; writes for its ranges also go to
//! their next owners. It pushes each range to the node that gains it, hands off the hints it
//! holds, compares trees with the new owners, and gossips `left`: out of every ring.
//!
//! **Remove a dead node.** An admin marks it `left`; every node that becomes a replica of
//! one of its ranges pulls that range from a surviving replica. Interrupted, it is run again:
//! the ranges are planned from the removed node's tokens, so a second run pulls them again.
//!
//! All streaming is throttled (`-stream-throughput`), shows as an operation in `status`, and
//! keeps its plan and a cursor per source in the hint store, so that a join or decommission
//! interrupted by a restart resumes where it stopped (a removal is run again instead).
//!
//! The plans ([`plan`]) and a pull of one task from one peer over a
//! [`StreamTransport`](crate::transport::StreamTransport) ([`pull`]) are the parts; the
//! [`Streaming`] component ([`lifecycle`]) runs a node's join, decommission and removal
//! through one plan executor.

pub mod lifecycle;
pub mod plan;
pub mod pull;
#[cfg(test)]
mod tests;

pub use lifecycle::{Streaming, StreamingParts};
pub use plan::{StreamPlan, StreamTask, group_pulls, group_pushes};
