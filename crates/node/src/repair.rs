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
//!
//! **When.** Every `-anti-entropy-interval` with every live peer that shares ranges, and on
//! demand (`distkv-client repair`, which also serves `Rebalance`).
//!
//! **Tombstones.** A key whose versions are all tombstones older than `-tombstone-gc-grace` is
//! deleted for good (index and data) after a round. The grace must be longer than the
//! anti-entropy interval, so that a tombstone has been offered to every replica at least once
//! before it goes; a replica that was down for longer than the grace must be wiped and
//! re-joined, or it could bring deleted data back (as in Cassandra with `gc_grace_seconds`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use distkv_cluster::merkle::{self, DiffStep, MerkleDiff, MerkleTree, TreeBuilder};
use distkv_cluster::placement::{RangeSet, peers_sharing, shared_ranges};
use distkv_cluster::{NodeId, Siblings, TokenRange};
use distkv_proto::internal;

use crate::error::{BadMessage, NodeError, Result};
use crate::membership::range_to_proto;
use crate::node::Node;
use crate::storage::Store;

/// How long a peer keeps a tree built for a session.
const SESSION_TTL: Duration = Duration::from_secs(60);
/// Trees kept at once for sessions.
const MAX_SESSIONS: usize = 8;
/// Leaves whose keys are listed per request, and keys fetched or sent per request.
const CHUNK: usize = 256;

/// A tree built for a peer's session: its ranges, the tree, when last used.
type SessionTree = (Vec<TokenRange>, Arc<MerkleTree>, Instant);

/// The trees a node built for its peers' sessions.
#[derive(Default)]
pub struct MerkleSessions {
    trees: parking_lot::Mutex<HashMap<u64, SessionTree>>,
}

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

/// A tombstone past the horizon: left out of comparisons (it is purged, or about to be, on
/// every replica).
fn expired(tombstone_ms: u64, horizon: u64) -> bool {
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

impl MerkleSessions {
    /// The tree of `session`, building it over `ranges` on first use.
    pub async fn tree(
        &self,
        store: &Store,
        session: u64,
        ranges: Vec<TokenRange>,
    ) -> Result<Arc<MerkleTree>> {
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
        let store = store.clone();
        let r = ranges.clone();
        let tree = tokio::task::spawn_blocking(move || build_tree(&store, &r))
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
}

impl Node {
    /// Compares the given ranges with `peer` and exchanges the keys that differ.
    pub async fn sync_ranges(
        self: &Arc<Self>,
        peer: &str,
        ranges: &[TokenRange],
    ) -> Result<SyncStats> {
        if ranges.is_empty() || peer == self.cfg.node_id {
            return Ok(SyncStats::default());
        }
        let address = self
            .address_of(peer)
            .ok_or_else(|| NodeError::UnknownNode(peer.to_string()))?;
        let store = self.store.clone();
        let r = ranges.to_vec();
        let local = tokio::task::spawn_blocking(move || build_tree(&store, &r))
            .await
            .map_err(|_| NodeError::ShuttingDown)??;
        let mut stats = SyncStats {
            compared: local.entries(),
            ..SyncStats::default()
        };
        let session = rand_u64();
        let proto_ranges: Vec<internal::TokenRange> =
            ranges.iter().copied().map(range_to_proto).collect();
        let mut diff = MerkleDiff::new(local);
        let mut step = diff.start();
        let leaves = loop {
            match step {
                DiffStep::Leaves(leaves) => break leaves,
                DiffStep::Ask { level, nodes } => {
                    let mut client = self.peers.background(&address)?;
                    let mut req = tonic::Request::new(internal::MerkleHashesRequest {
                        session,
                        ranges: proto_ranges.clone(),
                        level: level as u32,
                        nodes: nodes.iter().map(|n| *n as u32).collect(),
                    });
                    req.set_timeout(self.cfg.request_timeout * 4);
                    let reply = client
                        .merkle_hashes(req)
                        .await
                        .map_err(|s| self.peers.error(&address, s))?
                        .into_inner();
                    step = diff
                        .on_hashes(&reply.hashes)
                        .map_err(|e| NodeError::bad_reply(&address, e))?;
                }
            }
        };
        for chunk in leaves.chunks(CHUNK) {
            let store = self.store.clone();
            let (r, l) = (ranges.to_vec(), chunk.to_vec());
            let mine = tokio::task::spawn_blocking(move || leaf_keys(&store, &r, &l))
                .await
                .map_err(|_| NodeError::ShuttingDown)??;
            let mut client = self.peers.background(&address)?;
            let mut req = tonic::Request::new(internal::MerkleKeysRequest {
                session,
                ranges: proto_ranges.clone(),
                leaves: chunk.iter().map(|n| *n as u32).collect(),
            });
            req.set_timeout(self.cfg.request_timeout * 4);
            let theirs: Vec<(String, u64)> = client
                .merkle_keys(req)
                .await
                .map_err(|s| self.peers.error(&address, s))?
                .into_inner()
                .keys
                .into_iter()
                .map(|k| (k.key, k.digest))
                .collect();
            let kd = merkle::diff_keys(&mine, &theirs);
            // Fetch what the peer has differently, merge it here...
            for keys in kd.fetch.chunks(CHUNK) {
                let mut client = self.peers.background(&address)?;
                let mut req = tonic::Request::new(internal::FetchKeysRequest {
                    keys: keys.to_vec(),
                });
                req.set_timeout(self.cfg.request_timeout * 4);
                let entries = client
                    .fetch_keys(req)
                    .await
                    .map_err(|s| self.peers.error(&address, s))?
                    .into_inner()
                    .entries;
                let mut decoded = Vec::with_capacity(entries.len());
                for e in entries {
                    let v = Siblings::decode(&e.versions)
                        .map_err(|err| NodeError::bad_reply(&address, err))?;
                    decoded.push((e.key, v));
                }
                stats.fetched += self.store.merge_many(decoded).await? as u64;
            }
            // ...then send every key that differed, merged, so the peer ends the same.
            let mut send: Vec<String> = kd.send;
            send.extend(kd.fetch);
            send.sort();
            send.dedup();
            stats.repaired += send.len() as u64;
            for keys in send.chunks(CHUNK) {
                let entries = self.store.read_many(keys.to_vec()).await?;
                self.send_entries(&address, &entries).await?;
                stats.sent += entries.len() as u64;
            }
        }
        let m = &self.metrics;
        m.ae_keys_compared
            .fetch_add(stats.compared, Ordering::Relaxed);
        m.ae_keys_repaired
            .fetch_add(stats.repaired, Ordering::Relaxed);
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

    /// The peers this node shares ranges with (in the read ring), with those ranges.
    pub fn repair_peers(&self) -> BTreeMap<NodeId, Vec<TokenRange>> {
        peers_sharing(&self.ring(), self.cfg.quorum.n, &self.cfg.node_id)
    }

    /// One anti-entropy round with every live peer sharing ranges, as an operation of `kind`.
    /// Returns the totals and the number of peers compared with.
    pub async fn repair_all(self: &Arc<Self>, kind: &'static str) -> Result<(SyncStats, usize)> {
        let started_ms = now_ms();
        let sharing = self.repair_peers();
        let peers: Vec<(NodeId, Vec<TokenRange>)> = sharing
            .iter()
            .filter(|(p, _)| !self.is_down(p))
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect();
        let skipped = sharing.len() - peers.len();
        let op = self
            .ops
            .start(kind, format!("comparing with {} peers", peers.len()));
        op.set_steps(peers.len());
        let mut total = SyncStats::default();
        let mut failures = Vec::new();
        for (peer, ranges) in &peers {
            match self.sync_ranges(peer, ranges).await {
                Ok(s) => {
                    total.compared += s.compared;
                    total.fetched += s.fetched;
                    total.sent += s.sent;
                    total.repaired += s.repaired;
                    op.add(s.repaired, 0);
                }
                Err(e) => failures.push((peer.clone(), e)),
            }
            op.step_done();
        }
        self.metrics.ae_rounds.fetch_add(1, Ordering::Relaxed);
        let result = if failures.is_empty() {
            self.metrics
                .ae_last_round_secs
                .store(now_secs() as u64, Ordering::Relaxed);
            if skipped == 0 {
                // Every replica sharing ranges with this node was compared with.
                self.store.full_round_done(started_ms);
            }
            Ok((total, peers.len()))
        } else {
            Err(NodeError::Streaming { failures })
        };
        op.finish(&result);
        result
    }

    /// Deletes tombstones older than the grace period for good; returns how many.
    pub async fn purge_old_tombstones(&self) -> Result<usize> {
        let before = self.store.gc_horizon();
        if before == 0 {
            return Ok(0);
        }
        let all = RangeSet::new(&[TokenRange::new(0, 0)]);
        let mut purged = 0;
        let mut cursor = None;
        loop {
            let (page, more) = self.store.index_page(all.clone(), cursor, 4096).await?;
            cursor = page.last().map(|e| crate::storage::Cursor {
                token: e.token,
                key: e.key.clone(),
            });
            let old: Vec<String> = page
                .into_iter()
                .filter(|e| expired(e.tombstone_ms, before))
                .map(|e| e.key)
                .collect();
            if !old.is_empty() {
                purged += self.store.purge_tombstones(old, before).await?;
            }
            if !more {
                break;
            }
        }
        if purged > 0 {
            self.metrics
                .tombstones_purged
                .fetch_add(purged as u64, Ordering::Relaxed);
            tracing::info!(purged, "purged tombstones older than the grace period");
        }
        Ok(purged)
    }

    /// Deletes what this node holds of ranges it no longer replicates (handed over when
    /// nodes joined, or left behind by a decommission it streamed), once the ring has been
    /// settled (no join or leave pending) for `settled`: that data has its replicas
    /// elsewhere, and kept here it would come back if the node became a replica again after
    /// its tombstones were purged. Returns how many keys went.
    pub async fn clean_up_handed_over(&self, settled: std::time::Duration) -> Result<usize> {
        let rings = self.rings();
        if rings.read != rings.pending || self.ring_changed_at.lock().elapsed() < settled {
            return Ok(0);
        }
        let ours = RangeSet::new(&distkv_cluster::placement::replicated_ranges(
            &rings.read,
            self.cfg.quorum.n,
            &self.cfg.node_id,
        ));
        if ours.is_empty() {
            return Ok(0);
        }
        let all = RangeSet::new(&[TokenRange::new(0, 0)]);
        let mut removed = 0;
        let mut cursor = None;
        loop {
            let (page, more) = self.store.index_page(all.clone(), cursor, 4096).await?;
            cursor = page.last().map(|e| crate::storage::Cursor {
                token: e.token,
                key: e.key.clone(),
            });
            let foreign: Vec<String> = page
                .into_iter()
                .filter(|e| !ours.contains(e.token))
                .map(|e| e.key)
                .collect();
            if !foreign.is_empty() {
                removed += self.store.delete_keys(foreign).await?;
            }
            if !more {
                break;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "deleted the data of ranges this node handed over");
        }
        Ok(removed)
    }

    /// Anti-entropy every interval, then tombstone GC, until shutdown.
    pub async fn anti_entropy_loop(self: Arc<Self>) {
        let interval = self.cfg.anti_entropy_interval;
        if interval.is_zero() {
            return;
        }
        let mut stop = self.shutdown_signal();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if self.local_state() != distkv_cluster::MemberState::Normal {
                continue;
            }
            let round = async {
                if let Err(e) = self.repair_all("anti-entropy").await {
                    tracing::warn!(error = %e, "anti-entropy round incomplete");
                }
                if let Err(e) = self.purge_old_tombstones().await {
                    tracing::warn!(error = %e, "tombstone purge failed");
                }
                if let Err(e) = self.clean_up_handed_over(interval).await {
                    tracing::warn!(error = %e, "cleanup of handed-over ranges failed");
                }
            };
            tokio::select! {
                _ = round => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Answers a peer's question about this node's tree for a session.
    pub async fn merkle_hashes(
        &self,
        session: u64,
        ranges: Vec<TokenRange>,
        level: usize,
        nodes: &[usize],
    ) -> Result<(Vec<u64>, u64)> {
        let tree = self
            .merkle_sessions
            .tree(&self.store, session, ranges)
            .await?;
        let hashes = tree
            .hashes(level, nodes)
            .ok_or(BadMessage::NoTreeNodes { level })?;
        Ok((hashes, tree.entries()))
    }

    /// This node's shared-range check used by tests and status: the ranges shared with `peer`.
    pub fn shared_with(&self, peer: &str) -> Vec<TokenRange> {
        shared_ranges(&self.ring(), self.cfg.quorum.n, &self.cfg.node_id, peer)
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}
