//! The anti-entropy component: one comparison with a peer ([`AntiEntropy::sync_ranges`]), and
//! the answering side a peer's comparison talks to ([`RepairServer`]).
//!
//! It reaches peers only through [`RepairTransport`], a trait with domain-typed calls: over
//! gRPC in a node ([`crate::transport::grpc::GrpcTransport`], where every proto conversion
//! lives), and in process in tests ([`crate::twin::MemPeers`]), so that sessions
//! between real engines in temporary directories run without sockets. The descent of the trees is the
//! sans-IO [`MerkleDiff`] of `distkv-cluster`; this component only carries its questions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use distkv_cluster::TokenRange;
use distkv_cluster::merkle::{self, DiffStep, MerkleDiff, MerkleTree, TreeBuilder};
use distkv_cluster::placement::RangeSet;

use crate::counters::Metrics;
use crate::error::{BadMessage, NodeError, Result};
use crate::storage::Store;
use crate::transport::RepairTransport;

/// How long a peer keeps a tree built for a session.
const SESSION_TTL: Duration = Duration::from_secs(60);
/// Trees kept at once for sessions.
const MAX_SESSIONS: usize = 8;
/// Leaves whose keys are listed per request, and keys fetched or sent per request.
pub(crate) const CHUNK: usize = 256;

/// What one comparison did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Keys in the local tree.
    pub compared: u64,
    /// Keys fetched from the peer that changed something here.
    pub fetched: u64,
    /// Keys sent to the peer.
    pub sent: u64,
    /// Keys that differed (each counted once, whichever way it went).
    pub repaired: u64,
}

impl std::ops::AddAssign for SyncStats {
    fn add_assign(&mut self, s: SyncStats) {
        self.compared += s.compared;
        self.fetched += s.fetched;
        self.sent += s.sent;
        self.repaired += s.repaired;
    }
}

/// A tombstone past the horizon: left out of comparisons (it is purged, or about to be, on
/// every replica).
pub fn expired(tombstone_ms: u64, horizon: u64) -> bool {
    tombstone_ms > 0 && tombstone_ms < horizon
}

/// Builds the tree of `store`'s index entries in `ranges` (blocking), tombstones past the
/// horizon left out.
pub fn build_tree(store: &Store, ranges: &[TokenRange]) -> Result<MerkleTree> {
    let set = RangeSet::new(ranges);
    let horizon = store.gc_horizon();
    let mut b = TreeBuilder::new();
    store.for_each_indexed(&set, |e| {
        if !expired(e.tombstone_ms, horizon) {
            b.add(e.token, e.key.as_bytes(), e.digest);
        }
    })?;
    Ok(b.finish())
}

/// The `(key, digest)` pairs of `store` in `leaves` within `ranges`, sorted by key (blocking).
pub fn leaf_keys(
    store: &Store,
    ranges: &[TokenRange],
    leaves: &[usize],
) -> Result<Vec<(String, u64)>> {
    let mut within: Vec<TokenRange> = Vec::new();
    let wanted = RangeSet::new(ranges);
    for &leaf in leaves {
        if leaf >= merkle::LEAVES {
            continue;
        }
        let (lo, hi) = merkle::leaf_tokens(leaf);
        // The leaf as a range (lo - 1, hi]; leaf 0 starts at token 0.
        within.push(TokenRange::new(lo.wrapping_sub(1), hi));
    }
    let mut out = Vec::new();
    let leaf_set = RangeSet::new(&within);
    let horizon = store.gc_horizon();
    // A leaf starting at 0 as (MAX, hi] also covers MAX: filter with the exact leaf bounds.
    store.for_each_indexed(&leaf_set, |e| {
        if wanted.contains(e.token)
            && leaves.contains(&merkle::leaf_of(e.token))
            && !expired(e.tombstone_ms, horizon)
        {
            out.push((e.key, e.digest));
        }
    })?;
    out.sort();
    Ok(out)
}

/// A tree built for a peer's session: its ranges, the tree, when last used.
type SessionTree = (Vec<TokenRange>, Arc<MerkleTree>, Instant);

/// The side of anti-entropy that answers peers: their sessions' trees over this node's store.
pub struct RepairServer {
    store: Store,
    trees: parking_lot::Mutex<HashMap<u64, SessionTree>>,
}

impl RepairServer {
    pub fn new(store: Store) -> Self {
        RepairServer {
            store,
            trees: parking_lot::Mutex::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The tree of `session`, building it over `ranges` on first use.
    async fn tree(&self, session: u64, ranges: Vec<TokenRange>) -> Result<Arc<MerkleTree>> {
        {
            let mut trees = self.trees.lock();
            trees.retain(|_, (_, _, at)| at.elapsed() < SESSION_TTL);
            if let Some((r, t, at)) = trees.get_mut(&session)
                && *r == ranges
            {
                *at = Instant::now();
                return Ok(Arc::clone(t));
            }
        }
        let store = self.store.clone();
        let r = ranges.clone();
        let tree = crate::blocking::spawn(move || build_tree(&store, &r))
            .await
            .map_err(|_| NodeError::ShuttingDown)??;
        let tree = Arc::new(tree);
        let mut trees = self.trees.lock();
        if trees.len() >= MAX_SESSIONS
            && let Some(oldest) = trees
                .iter()
                .min_by_key(|(_, (_, _, at))| *at)
                .map(|(k, _)| *k)
        {
            trees.remove(&oldest);
        }
        trees.insert(session, (ranges, Arc::clone(&tree), Instant::now()));
        Ok(tree)
    }

    /// Answers a peer's question about this node's tree for a session: the hashes asked for,
    /// and how many keys the tree holds.
    pub async fn hashes(
        &self,
        session: u64,
        ranges: Vec<TokenRange>,
        level: usize,
        nodes: &[usize],
    ) -> Result<(Vec<u64>, u64)> {
        let tree = self.tree(session, ranges).await?;
        let hashes = tree
            .hashes(level, nodes)
            .ok_or(BadMessage::NoTreeNodes { level })?;
        Ok((hashes, tree.entries()))
    }

    /// This node's `(key, digest)` pairs in `leaves` within `ranges`, sorted by key.
    pub async fn leaf_keys(
        &self,
        ranges: Vec<TokenRange>,
        leaves: Vec<usize>,
    ) -> Result<Vec<(String, u64)>> {
        let store = self.store.clone();
        crate::blocking::spawn(move || leaf_keys(&store, &ranges, &leaves))
            .await
            .map_err(|_| NodeError::ShuttingDown)?
    }
}

/// Anti-entropy of one node: compares its ranges with peers through `T` and answers their
/// comparisons ([`Self::server`]).
pub struct AntiEntropy<T> {
    server: Arc<RepairServer>,
    transport: T,
    metrics: Arc<Metrics>,
}

impl<T: RepairTransport> AntiEntropy<T> {
    pub fn new(store: Store, transport: T, metrics: Arc<Metrics>) -> Self {
        AntiEntropy {
            server: Arc::new(RepairServer::new(store)),
            transport,
            metrics,
        }
    }

    /// The answering side, for the RPC service (or a twin) to call.
    pub fn server(&self) -> &Arc<RepairServer> {
        &self.server
    }

    /// [`Self::sync_ranges`] with the member `peer`, named by id and found at `address` (none:
    /// an unknown node); logs what it repaired.
    /// The oldest version timestamp among the hints the node at `address` holds.
    pub async fn oldest_hint(&self, address: &str) -> Result<Option<u64>> {
        self.transport.oldest_hint(address).await
    }

    pub async fn sync_member(
        &self,
        peer: &str,
        address: Option<String>,
        ranges: &[TokenRange],
    ) -> Result<SyncStats> {
        if ranges.is_empty() {
            return Ok(SyncStats::default());
        }
        let address = address.ok_or_else(|| NodeError::UnknownNode(peer.to_string()))?;
        let stats = self.sync_ranges(&address, ranges).await?;
        if stats.repaired > 0 {
            tracing::info!(
                peer,
                keys = stats.repaired,
                fetched = stats.fetched,
                sent = stats.sent,
                "anti-entropy repaired keys"
            );
        }
        Ok(stats)
    }

    /// Compares `ranges` with the peer at `peer` and exchanges the keys that differ: keys the
    /// peer holds differently are fetched and merged here, then every key that differed is
    /// sent to the peer already merged, so both end with the merge of both.
    pub async fn sync_ranges(&self, peer: &str, ranges: &[TokenRange]) -> Result<SyncStats> {
        if ranges.is_empty() {
            return Ok(SyncStats::default());
        }
        let store = self.server.store.clone();
        let r = ranges.to_vec();
        let local = crate::blocking::spawn(move || build_tree(&store, &r))
            .await
            .map_err(|_| NodeError::ShuttingDown)??;
        let mut stats = SyncStats {
            compared: local.entries(),
            ..SyncStats::default()
        };
        let session: u64 = rand::random();
        let mut diff = MerkleDiff::new(local);
        let mut step = diff.start();
        let leaves = loop {
            match step {
                DiffStep::Leaves(leaves) => break leaves,
                DiffStep::Ask { level, nodes } => {
                    let hashes = self
                        .transport
                        .merkle_hashes(peer, session, ranges, level, &nodes)
                        .await?;
                    step = diff
                        .on_hashes(&hashes)
                        .map_err(|e| NodeError::bad_reply(peer, e))?;
                }
            }
        };
        let store = &self.server.store;
        for chunk in leaves.chunks(CHUNK) {
            let mine = self
                .server
                .leaf_keys(ranges.to_vec(), chunk.to_vec())
                .await?;
            let theirs = self
                .transport
                .merkle_keys(peer, session, ranges, chunk)
                .await?;
            let kd = merkle::diff_keys(&mine, &theirs);
            // Fetch what the peer has differently, merge it here...
            for keys in kd.fetch.chunks(CHUNK) {
                let entries = self.transport.fetch(peer, keys).await?;
                stats.fetched += store.merge_many(entries).await? as u64;
            }
            // ...then send every key that differed, merged, so the peer ends the same.
            let mut send: Vec<String> = kd.send;
            send.extend(kd.fetch);
            send.sort();
            send.dedup();
            stats.repaired += send.len() as u64;
            for keys in send.chunks(CHUNK) {
                let entries = store.read_many(keys.to_vec()).await?;
                self.transport.send(peer, &entries).await?;
                stats.sent += entries.len() as u64;
            }
        }
        let m = &self.metrics;
        m.ae_keys_compared
            .fetch_add(stats.compared, Ordering::Relaxed);
        m.ae_keys_repaired
            .fetch_add(stats.repaired, Ordering::Relaxed);
        Ok(stats)
    }
}
