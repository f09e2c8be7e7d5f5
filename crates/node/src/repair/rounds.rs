//! The node's anti-entropy rounds: which peers and ranges to compare, from its rings, on a
//! timer ([`Rounds::run`]) and on demand (`repair`, `rebalance`); the tombstone purge after a
//! round; and the clean-up of ranges the node has handed over. Each comparison is a session
//! of the [`AntiEntropy`] component ([`super`] explains the protocol). Generic over its
//! transport, with the clock injected, like every component.
//!
//! **The tombstone horizon.** A round that compared with every replica sharing ranges with
//! this node moves the horizon (tombstones older than it may be purged, once past their
//! grace too) to the round's start, so every replica was offered a tombstone before it goes.
//! Replicas are not the only holders of versions, though: a hint kept for a replica that was
//! away, by any member, may hold a version a later delete removed, and delivered after the
//! tombstone's purge it would bring the value back (the seeded simulation found this, seed
//! 395 of its membership mode). So the horizon moves no further than the oldest version in
//! any hint held anywhere: after a full round the node asks every member for its oldest hint,
//! and a member that is down or does not answer keeps the horizon where it was (it may hold
//! hints). Removing a dead member (`removenode`) lets it move again. A write still in flight
//! when the members were asked may become a hint after they answered (the simulation found
//! that too, seed 739): the horizon also trails the round's start by the longest a write
//! stays in flight. Both assume the nodes' clocks agree to well within the grace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use distkv_cluster::placement::{RangeSet, peers_sharing};
use distkv_cluster::{MemberState, NodeId, TokenRange};
use tokio::sync::watch;

use super::session::{AntiEntropy, SyncStats, expired};
use crate::clock::Clock;
use crate::counters::Metrics;
use crate::error::{NodeError, PeerFailure, Result};
use crate::hints::HintStore;
use crate::membership::Membership;
use crate::ops::Operations;
use crate::storage::{Cursor, IndexEntry, Store};
use crate::transport::{GossipTransport, RepairTransport};

/// What a node's anti-entropy rounds need of the rest of it.
pub struct RoundsParts<T> {
    /// This node's id.
    pub id: NodeId,
    /// Replicas per key (N).
    pub replicas: usize,
    /// How often a round runs (zero: never on a timer).
    pub interval: Duration,
    /// How long a write may stay in flight before it lands or becomes a hint
    /// ([`crate::coordinator::in_flight_bound`]): the horizon trails a round's start by it.
    pub in_flight: Duration,
    pub store: Store,
    /// This node's hints (their oldest version holds the tombstone horizon back).
    pub hints: HintStore,
    pub membership: Arc<Membership<T>>,
    pub anti_entropy: Arc<AntiEntropy<T>>,
    pub ops: Arc<Operations>,
    pub metrics: Arc<Metrics>,
    /// Stamps a round's start and end (the tombstone horizon follows full rounds).
    pub clock: Arc<dyn Clock>,
}

/// The anti-entropy rounds of one node (see the module doc).
pub struct Rounds<T> {
    p: RoundsParts<T>,
}

impl<T: RepairTransport + GossipTransport> Rounds<T> {
    pub fn new(parts: RoundsParts<T>) -> Arc<Self> {
        Arc::new(Rounds { p: parts })
    }

    /// Compares the given ranges with the member `peer` and exchanges the keys that differ
    /// ([`AntiEntropy::sync_ranges`]).
    pub async fn sync_with(&self, peer: &str, ranges: &[TokenRange]) -> Result<SyncStats> {
        if peer == self.p.id {
            return Ok(SyncStats::default());
        }
        self.p
            .anti_entropy
            .sync_member(peer, self.p.membership.address_of(peer), ranges)
            .await
    }

    /// The peers this node shares ranges with (in the read ring), with those ranges.
    pub fn peers(&self) -> BTreeMap<NodeId, Vec<TokenRange>> {
        peers_sharing(&self.p.membership.ring(), self.p.replicas, &self.p.id)
    }

    /// One anti-entropy round with every live peer sharing ranges, as an operation of `kind`.
    /// Returns the totals and the number of peers compared with.
    pub async fn repair_all(&self, kind: &'static str) -> Result<(SyncStats, usize)> {
        let started_ms = self.p.clock.now_ms();
        let sharing = self.peers();
        let peers: Vec<(NodeId, Vec<TokenRange>)> = sharing
            .iter()
            .filter(|(p, _)| !self.p.membership.is_down(p))
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect();
        let skipped = sharing.len() - peers.len();
        let op = self
            .p
            .ops
            .start(kind, format!("comparing with {} peers", peers.len()));
        op.set_steps(peers.len());
        let mut total = SyncStats::default();
        let mut failures = Vec::new();
        for (peer, ranges) in &peers {
            match self.sync_with(peer, ranges).await {
                Ok(s) => {
                    total += s;
                    op.add(s.repaired, 0);
                }
                Err(e) => failures.push((peer.clone(), e)),
            }
            op.step_done();
        }
        self.p.metrics.ae_rounds.fetch_add(1, Ordering::Relaxed);
        let result = if failures.is_empty() {
            self.p
                .metrics
                .ae_last_round_secs
                .store(self.p.clock.now_ms() / 1000, Ordering::Relaxed);
            if skipped == 0 {
                // Every replica sharing ranges with this node was compared with; no hint
                // anywhere may hold a version older than the horizon.
                // A write stamped before the round that was still in flight when the members
                // were asked may yet become a hint: the horizon trails by the longest flight.
                let before = started_ms.saturating_sub(self.p.in_flight.as_millis() as u64);
                match self.oldest_hint_anywhere().await {
                    Ok(oldest) => self
                        .p
                        .store
                        .full_round_done(oldest.map_or(before, |o| o.min(before))),
                    Err(e) => tracing::info!(
                        error = %e,
                        "tombstone horizon kept: a member's hints are not known"
                    ),
                }
            }
            Ok((total, peers.len()))
        } else {
            Err(NodeError::Streaming { failures })
        };
        op.finish(&result);
        result
    }

    /// The oldest version timestamp among the hints every member holds, this node's included
    /// (`None`: no member holds any). An error names a member that is down, unknown or did not
    /// answer: it may hold hints.
    async fn oldest_hint_anywhere(&self) -> Result<Option<u64>> {
        let mut oldest = self.p.hints.oldest_version_ms_async().await?;
        for m in self.p.membership.members() {
            if m.id == self.p.id || m.state == MemberState::Left {
                continue;
            }
            if self.p.membership.is_down(&m.id) {
                return Err(NodeError::Peer {
                    peer: m.id.clone(),
                    failure: PeerFailure::Unreachable("held down by the failure detector".into()),
                });
            }
            let theirs = self.p.anti_entropy.oldest_hint(&m.address).await?;
            oldest = match (oldest, theirs) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(oldest)
    }

    /// Deletes tombstones older than the grace period for good; returns how many.
    pub async fn purge_old_tombstones(&self) -> Result<usize> {
        let before = self.p.store.gc_horizon();
        if before == 0 {
            return Ok(0);
        }
        let purged = self
            .sweep_index(
                |e| expired(e.tombstone_ms, before),
                |old| self.p.store.purge_tombstones(old, before),
            )
            .await?;
        if purged > 0 {
            self.p
                .metrics
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
        let rings = self.p.membership.rings();
        if rings.read != rings.pending || self.p.membership.since_ring_change() < settled {
            return Ok(0);
        }
        let ours = RangeSet::new(&distkv_cluster::placement::replicated_ranges(
            &rings.read,
            self.p.replicas,
            &self.p.id,
        ));
        if ours.is_empty() {
            return Ok(0);
        }
        let removed = self
            .sweep_index(
                |e| !ours.contains(e.token),
                |foreign| self.p.store.delete_keys(foreign),
            )
            .await?;
        if removed > 0 {
            tracing::info!(removed, "deleted the data of ranges this node handed over");
        }
        Ok(removed)
    }

    /// Walks the whole index a page at a time and hands the keys of each page that `pick`
    /// selects to `act`; returns the sum of what `act` returned.
    async fn sweep_index<F>(
        &self,
        pick: impl Fn(&IndexEntry) -> bool,
        act: impl Fn(Vec<String>) -> F,
    ) -> Result<usize>
    where
        F: std::future::Future<Output = Result<usize>>,
    {
        let all = RangeSet::new(&[TokenRange::new(0, 0)]);
        let mut done = 0;
        let mut cursor = None;
        loop {
            let (page, more) = self.p.store.index_page(all.clone(), cursor, 4096).await?;
            cursor = page.last().map(|e| Cursor {
                token: e.token,
                key: e.key.clone(),
            });
            let keys: Vec<String> = page.into_iter().filter(&pick).map(|e| e.key).collect();
            if !keys.is_empty() {
                done += act(keys).await?;
            }
            if !more {
                return Ok(done);
            }
        }
    }

    /// The component's worker: a round every interval (while this node is normal), then
    /// tombstone GC and the clean-up of handed-over ranges, until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let interval = self.p.interval;
        if interval.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if self.p.membership.local_state() != distkv_cluster::MemberState::Normal {
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
}
