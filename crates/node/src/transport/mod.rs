//! The node's calls to its peers, as traits with domain types: the coordinator's replica
//! calls ([`ReplicaTransport`]: write, read, hint, forward), what anti-entropy asks of a peer
//! ([`RepairTransport`]), what hinted handoff sends ([`HandoffTransport`]), what streaming
//! pulls ([`StreamTransport`]; it pushes with [`RepairTransport::send`]), gossip's exchanges
//! ([`GossipTransport`], answered by a [`GossipAnswer`]) and a scan's replica pages
//! ([`ScanTransport`]). Components hold one of these, never a gRPC client. In a node one
//! [`grpc::GrpcTransport`] implements them all over the `Replica` service (the coordinator's
//! calls, batched, in [`replicas`]), converting with [`convert`]: the only place their proto
//! types appear. In process, [`MemPeers`](crate::twin::MemPeers) implements the background
//! ones for tests that run components of several nodes over real engines without sockets,
//! and the coordinator's tests have their own twin of [`ReplicaTransport`].
//!
//! Peers are named by address. Every call fails with a [`NodeError`](crate::NodeError) naming
//! the peer: unreachable, timed out, refused, or a reply that does not make sense.

use std::future::Future;
use std::time::Duration;

use distkv_cluster::gossip::{Ack, Ack2, Syn};
use distkv_cluster::{Consistency, NodeId, Siblings, TokenRange, VectorClock};

use crate::error::Result;
use crate::storage::{Cursor, RangePage};

pub mod batching;
pub mod convert;
pub mod grpc;
pub mod replicas;

/// What an anti-entropy session asks of a peer.
pub trait RepairTransport: Send + Sync + 'static {
    /// The hashes of `nodes` at `level` of the peer's tree for `session` over `ranges` (the
    /// peer builds the tree on the session's first question and keeps it a while).
    fn merkle_hashes(
        &self,
        peer: &str,
        session: u64,
        ranges: &[TokenRange],
        level: usize,
        nodes: &[usize],
    ) -> impl Future<Output = Result<Vec<u64>>> + Send;

    /// The peer's `(key, digest)` pairs in `leaves` within `ranges`, sorted by key.
    fn merkle_keys(
        &self,
        peer: &str,
        session: u64,
        ranges: &[TokenRange],
        leaves: &[usize],
    ) -> impl Future<Output = Result<Vec<(String, u64)>>> + Send;

    /// The peer's versions of `keys` (keys it does not hold come back empty or not at all).
    fn fetch(
        &self,
        peer: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<(String, Siblings)>>> + Send;

    /// Has the peer merge `entries` into what it holds (anti-entropy's sends, delivered hints
    /// and pushed ranges all travel this way).
    fn send(
        &self,
        peer: &str,
        entries: &[(String, Siblings)],
    ) -> impl Future<Output = Result<()>> + Send;

    /// The oldest version timestamp among the hints the peer holds (`None`: it holds none).
    fn oldest_hint(&self, peer: &str) -> impl Future<Output = Result<Option<u64>>> + Send;
}

/// What hinted handoff sends: hints delivered to their target, and hints handed to another
/// member to keep.
pub trait HandoffTransport: Send + Sync + 'static {
    /// Has the peer merge `entries` into what it holds (the same call as
    /// [`RepairTransport::send`]).
    fn deliver(
        &self,
        peer: &str,
        entries: &[(String, Siblings)],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Has the peer keep `hints` (key and versions) for `target` and deliver them itself.
    fn keep_hints(
        &self,
        peer: &str,
        target: &NodeId,
        hints: &[(String, Siblings)],
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What streaming pulls from a peer.
pub trait StreamTransport: Send + Sync + 'static {
    /// A page of the peer's keys in `ranges` after `after` (from the start without one), of
    /// about `max_bytes`.
    fn fetch_range(
        &self,
        peer: &str,
        ranges: &[TokenRange],
        after: Option<Cursor>,
        max_bytes: usize,
    ) -> impl Future<Output = Result<RangePage>> + Send;

    /// Asks the peer to pull `ranges` itself from the first of `sources` that answers (a
    /// removal's re-replication, `reason` saying which); resolves with the keys and bytes it
    /// pulled, once it has.
    fn ask_to_pull(
        &self,
        peer: &str,
        ranges: &[TokenRange],
        sources: Vec<NodeId>,
        reason: &str,
    ) -> impl Future<Output = Result<(u64, u64)>> + Send;
}

/// Gossip's three-way exchange, as the side that starts it sees it.
pub trait GossipTransport: Send + Sync + 'static {
    /// Sends `syn` to the peer and returns its answer, within `timeout`. `dial_anyway` dials
    /// a peer even while it is backed off (an operator's request, not a background round).
    fn syn(
        &self,
        peer: &str,
        syn: Syn,
        timeout: Duration,
        dial_anyway: bool,
    ) -> impl Future<Output = Result<Ack>> + Send;

    /// Sends the exchange's last message.
    fn ack2(
        &self,
        peer: &str,
        ack2: Ack2,
        timeout: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The peer at `address` just spoke to us (a transport that backs off from silent peers
    /// may dial it again at once).
    fn heard_from(&self, _address: &str) {}
}

/// The side of gossip that answers a peer's exchange.
pub trait GossipAnswer: Send + Sync {
    fn on_syn(&self, syn: Syn) -> Ack;
    fn on_ack2(&self, ack2: Ack2);
}

/// A page of a replica's keys between two bounds, for a scan.
pub trait ScanTransport: Send + Sync + 'static {
    /// The peer's keys in `[start, end)` (an empty `end`: to the last key), at most `limit`
    /// of them and about `max_bytes`, and whether more follow.
    fn scan(
        &self,
        peer: &str,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<(Vec<(String, Siblings)>, bool)>> + Send;
}

/// How long a read for read repair only may wait for others to the same node, to share a call.
pub const REPAIR_READ_DELAY: Duration = Duration::from_millis(10);

/// The causal context of a client's write: which stored versions it supersedes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteContext {
    /// The context the client read: the write supersedes exactly the versions it covers.
    Given(VectorClock),
    /// None given (a blind write): the versions the coordinating replica holds when it applies
    /// the write.
    Coordinator,
}

/// A client's write of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub key: String,
    /// The new value; `None` deletes (a tombstone).
    pub value: Option<Vec<u8>>,
    pub context: WriteContext,
    /// The client's consistency level; `None`: the server's default.
    pub level: Option<Consistency>,
}

/// How the coordinator reaches every replica of a key, the local one included (a direct call
/// there). Futures own what they need: they may outlive the round that started them.
pub trait ReplicaTransport: Send + Sync + 'static {
    /// Merges `versions` into `to`'s copy of `key`; done once durable there.
    fn write(
        &self,
        to: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static;

    /// `to`'s versions of `key` (empty when it holds none).
    fn read(&self, to: &str, key: &str) -> impl Future<Output = Result<Siblings>> + Send + 'static;

    /// [`ReplicaTransport::read`] for read repair only: no client waits for it, so it may wait (up to
    /// [`REPAIR_READ_DELAY`]) to share a call with others to the same node.
    fn repair_read(
        &self,
        to: &str,
        key: &str,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        self.read(to, key)
    }

    /// Asks `via` to keep `versions` of `key` as a hint for `target` and deliver it later.
    fn hint(
        &self,
        via: &str,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static;

    /// Asks `to` to coordinate `write` itself, within `timeout`; returns the versions it
    /// wrote. A failure that says `to` could not be reached ([`is_unreachable`](crate::coordinator::is_unreachable)) means it
    /// never got the write.
    fn forward(
        &self,
        to: &str,
        write: &Write,
        timeout: Duration,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static;
}
