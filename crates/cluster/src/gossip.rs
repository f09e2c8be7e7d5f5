//! Gossip membership as a sans-IO state machine: who is in the cluster, and who is up.
//!
//! **Guarantees.** Given messages that are delivered at all (any may be lost, delayed or
//! reordered), every node's table converges to the same records ([`crate::membership`]'s merge
//! is a semilattice), so every node builds the same ring. A new member reaches every node in
//! O(log N) rounds (push-pull to `fanout` random peers per round; a simulation of 1000 nodes in
//! `tests/gossip_sim.rs` measures it). A node whose heartbeat stops is suspect, then dead, on
//! every node within the configured timeouts plus the rounds its last heartbeat takes to
//! spread; one that comes back (or restarts) is alive again wherever its new heartbeat arrives.
//!
//! **How.** Dynamo 4.8 and Cassandra's three-way exchange. Every `gossip_interval` a node sends
//! a [`Syn`] holding the *digests* of every record it knows ((generation, version, heartbeat)
//! and a fingerprint of the content) to `fanout` random live peers, now and then to a dead one
//! (to notice it is back) and to a seed (so that partitions heal). The receiver answers with an
//! [`Ack`]: the records and heartbeats where it is newer, and its own digests of what the
//! sender is newer on. The sender finishes with an [`Ack2`] carrying those. Heartbeats, which
//! change every second, travel as bare counters; whole records (with their tokens) only when
//! they changed. Heartbeat advances feed the failure detector ([`crate::failure`]).
//!
//! Time is the driver's: every method takes `now` in milliseconds, and the peers to gossip with
//! come from a seeded random generator, so a run is a function of its inputs (the seed is
//! printed by tests that fail).
//!
//! **Left out.** Sending and receiving (the node's driver turns [`Outgoing`] into RPCs and
//! feeds the answers back); the data streaming that follows a join or leave.

use std::collections::BTreeMap;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::NodeId;
use crate::failure::{DetectorConfig, FailureDetector, Liveness};
use crate::membership::{Applied, Member, MemberState, Membership, NodeStatus, Update};

/// How often a node that knows nobody yet asks its seeds (at most; never more often than it
/// gossips otherwise).
pub const SEED_RETRY_MS: u64 = 100;

/// Timers and fan-out, in milliseconds of the driver's clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GossipConfig {
    pub heartbeat_interval_ms: u64,
    pub gossip_interval_ms: u64,
    /// Live peers gossiped with per round.
    pub fanout: usize,
    pub detector: DetectorConfig,
}

/// What gossip knows of a record, sent instead of the record itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipDigest {
    pub id: NodeId,
    pub generation: u64,
    pub version: u64,
    pub heartbeat: u64,
    /// A hash of the record's content: two records with the same `(generation, version)` but
    /// different contents (an admin change racing another) must still be exchanged.
    pub fingerprint: u64,
}

impl GossipDigest {
    fn of(m: &Member) -> GossipDigest {
        GossipDigest {
            id: m.id.clone(),
            generation: m.generation,
            version: m.version,
            heartbeat: m.heartbeat,
            fingerprint: fingerprint(m),
        }
    }

    /// The digest of a record one does not have: older than any record.
    fn absent(id: &str) -> GossipDigest {
        GossipDigest {
            id: id.to_string(),
            generation: 0,
            version: 0,
            heartbeat: 0,
            fingerprint: 0,
        }
    }
}

fn fingerprint(m: &Member) -> u64 {
    let tokens = m.tokens.iter().fold(0u64, |acc, t| {
        acc.rotate_left(7) ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    });
    xxh3_64_with_seed(m.address.as_bytes(), u64::from(m.state.as_u32())) ^ tokens
}

/// Opens an exchange: the digests of every record the sender knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syn {
    pub from: NodeId,
    pub digests: Vec<GossipDigest>,
}

/// The receiver's answer: what it is newer on, and its digests of what the sender is newer on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub from: NodeId,
    pub updates: Vec<Update>,
    pub wanted: Vec<GossipDigest>,
}

/// The sender's last word: what the receiver asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack2 {
    pub from: NodeId,
    pub updates: Vec<Update>,
}

/// Where a [`Syn`] goes: a known member, or a seed known only by its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub to: Option<NodeId>,
    pub address: String,
    pub syn: Syn,
}

/// Something the driver may want to act on or log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipEvent {
    /// A record was added or its content changed: the rings may differ, the table is worth
    /// saving.
    RecordChanged { id: NodeId },
    /// A member's status as this node sees it changed.
    StatusChanged {
        id: NodeId,
        from: NodeStatus,
        to: NodeStatus,
    },
}

/// A small deterministic generator (SplitMix64): the same seed picks the same peers.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// `k` distinct items of `items`, in random order.
    pub fn choose<T: Clone>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut pool: Vec<T> = items.to_vec();
        let k = k.min(pool.len());
        for i in 0..k {
            let j = i + self.below(pool.len() - i);
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }
}

/// One node's gossip: its member table, its failure detector and its timers.
#[derive(Clone, Debug)]
pub struct Gossiper {
    cfg: GossipConfig,
    table: Membership,
    detector: FailureDetector,
    rng: SplitMix64,
    seeds: Vec<String>,
    next_heartbeat: u64,
    next_gossip: u64,
    next_seed_try: u64,
    statuses: BTreeMap<NodeId, NodeStatus>,
    events: Vec<GossipEvent>,
}

impl Gossiper {
    /// A gossiper for `table` (which may hold members remembered from an earlier run: they
    /// are suspect until their heartbeats are heard), starting at `now`.
    pub fn new(
        cfg: GossipConfig,
        table: Membership,
        seeds: Vec<String>,
        rng_seed: u64,
        now: u64,
    ) -> Self {
        let mut detector = FailureDetector::new(cfg.detector);
        for m in table.members() {
            if m.id != table.local_id() {
                detector.track(&m.id, now);
            }
        }
        let own = table.local().address.clone();
        let mut g = Gossiper {
            cfg,
            table,
            detector,
            rng: SplitMix64::new(rng_seed),
            seeds: seeds.into_iter().filter(|s| *s != own).collect(),
            next_heartbeat: now,
            next_gossip: now,
            next_seed_try: now,
            statuses: BTreeMap::new(),
            events: Vec::new(),
        };
        g.refresh_statuses(now);
        g.events.clear();
        g
    }

    pub fn config(&self) -> &GossipConfig {
        &self.cfg
    }

    pub fn table(&self) -> &Membership {
        &self.table
    }

    /// Changes to the table that do not come from gossip (the local node's state, admin
    /// actions) go through here; the caller reports what changed with [`Gossiper::changed`].
    pub fn table_mut(&mut self) -> &mut Membership {
        &mut self.table
    }

    /// Records that the table's record of `id` was changed through [`Gossiper::table_mut`].
    pub fn changed(&mut self, id: &str, now: u64) {
        if id != self.table.local_id() {
            self.detector.track(id, now);
        }
        self.events
            .push(GossipEvent::RecordChanged { id: id.to_string() });
        self.refresh_statuses(now);
    }

    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// Takes the events since the last call.
    pub fn drain_events(&mut self) -> Vec<GossipEvent> {
        std::mem::take(&mut self.events)
    }

    /// How `id` is doing as this node sees it at `now`.
    pub fn status(&self, id: &str, now: u64) -> NodeStatus {
        let Some(m) = self.table.get(id) else {
            return NodeStatus::Dead;
        };
        let liveness = if id == self.table.local_id() {
            Liveness::Alive
        } else {
            self.detector.verdict(id, now)
        };
        match (m.state, liveness) {
            (MemberState::Left, _) => NodeStatus::Left,
            (_, Liveness::Dead) => NodeStatus::Dead,
            (_, Liveness::Suspect) => NodeStatus::Suspect,
            (MemberState::Joining, Liveness::Alive) => NodeStatus::Joining,
            (MemberState::Leaving, Liveness::Alive) => NodeStatus::Leaving,
            (MemberState::Normal, Liveness::Alive) => NodeStatus::Alive,
        }
    }

    /// The statuses computed at the last tick or message, by id.
    pub fn statuses(&self) -> &BTreeMap<NodeId, NodeStatus> {
        &self.statuses
    }

    /// Milliseconds since `id`'s heartbeat last advanced, as this node heard it.
    pub fn silence(&self, id: &str, now: u64) -> Option<u64> {
        self.detector.silence(id, now)
    }

    /// True when requests should route around `id` (dead or left).
    pub fn is_down(&self, id: &str) -> bool {
        matches!(
            self.statuses.get(id),
            Some(NodeStatus::Dead | NodeStatus::Left)
        )
    }

    /// The opening message of an exchange.
    pub fn syn(&self) -> Syn {
        Syn {
            from: self.table.local_id().to_string(),
            digests: self.table.members().map(GossipDigest::of).collect(),
        }
    }

    /// Advances the clock: beats the heart and, every gossip interval, picks the peers to
    /// gossip with.
    pub fn tick(&mut self, now: u64) -> Vec<Outgoing> {
        if now >= self.next_heartbeat {
            self.table.beat();
            self.next_heartbeat = now + self.cfg.heartbeat_interval_ms.max(1);
        }
        self.refresh_statuses(now);
        // A node that knows nobody yet (just started, or its seeds were not up) keeps asking
        // its seeds more often than it gossips, so that a cluster starting together forms in
        // a fraction of a round.
        let alone = self.table.members().count() == 1;
        if alone && !self.seeds.is_empty() && now >= self.next_seed_try && now < self.next_gossip {
            self.next_seed_try = now + SEED_RETRY_MS.min(self.cfg.gossip_interval_ms.max(1));
            let syn = self.syn();
            return self
                .seeds
                .iter()
                .map(|a| Outgoing {
                    to: None,
                    address: a.clone(),
                    syn: syn.clone(),
                })
                .collect();
        }
        if now < self.next_gossip {
            return Vec::new();
        }
        self.next_seed_try = now + SEED_RETRY_MS.min(self.cfg.gossip_interval_ms.max(1));
        self.next_gossip = now + self.cfg.gossip_interval_ms.max(1);
        let syn = self.syn();
        self.targets()
            .into_iter()
            .map(|(to, address)| Outgoing {
                to,
                address,
                syn: syn.clone(),
            })
            .collect()
    }

    /// Every known peer that has not left: for announcing a change of the local state at once.
    pub fn announce(&self) -> Vec<Outgoing> {
        let syn = self.syn();
        self.table
            .members()
            .filter(|m| m.id != self.table.local_id() && m.state != MemberState::Left)
            .map(|m| Outgoing {
                to: Some(m.id.clone()),
                address: m.address.clone(),
                syn: syn.clone(),
            })
            .collect()
    }

    /// An extra round now, outside the timer (the driver calls it when a record changed, so
    /// that joins, leaves and removals spread at once rather than at the next round).
    pub fn push_round(&mut self) -> Vec<Outgoing> {
        let syn = self.syn();
        self.targets()
            .into_iter()
            .map(|(to, address)| Outgoing {
                to,
                address,
                syn: syn.clone(),
            })
            .collect()
    }

    fn targets(&mut self) -> Vec<(Option<NodeId>, String)> {
        let local = self.table.local_id().to_string();
        let (mut live, mut down): (Vec<&Member>, Vec<&Member>) = (Vec::new(), Vec::new());
        for m in self.table.members() {
            if m.id == local || m.state == MemberState::Left {
                continue;
            }
            if self.statuses.get(&m.id) == Some(&NodeStatus::Dead) {
                down.push(m);
            } else {
                live.push(m);
            }
        }
        let live: Vec<(NodeId, String)> = live
            .into_iter()
            .map(|m| (m.id.clone(), m.address.clone()))
            .collect();
        let down: Vec<(NodeId, String)> = down
            .into_iter()
            .map(|m| (m.id.clone(), m.address.clone()))
            .collect();
        let mut out: Vec<(Option<NodeId>, String)> = self
            .rng
            .choose(&live, self.cfg.fanout)
            .into_iter()
            .map(|(id, a)| (Some(id), a))
            .collect();
        // Now and then a dead peer, to notice that it is back (Cassandra's rule: more often
        // the more of the cluster is down).
        if !down.is_empty() && self.rng.below(live.len() + 1) < down.len() {
            let (id, a) = down[self.rng.below(down.len())].clone();
            out.push((Some(id), a));
        }
        // A seed when nothing else is known, and now and then anyway, so that a partition
        // heals and a node restarted alone finds the others.
        let unseen: Vec<String> = self
            .seeds
            .iter()
            .filter(|s| !out.iter().any(|(_, a)| a == *s))
            .cloned()
            .collect();
        if live.is_empty() && down.is_empty() {
            out.extend(unseen.into_iter().map(|a| (None, a)));
        } else if !unseen.is_empty() && self.rng.below(live.len() + 1) == 0 {
            let a = unseen[self.rng.below(unseen.len())].clone();
            out.push((None, a));
        }
        out
    }

    /// Answers a [`Syn`].
    pub fn on_syn(&mut self, now: u64, mut syn: Syn) -> Ack {
        // A message from a node is proof that it is up, as much as its heartbeat.
        self.heard_directly(&syn.from, now);
        let mut updates = Vec::new();
        let mut wanted = Vec::new();
        // Digests come sorted by id (as [`Gossiper::syn`] writes them); records the sender
        // did not mention are found by walking both lists side by side.
        if !syn.digests.is_sorted_by(|a, b| a.id < b.id) {
            syn.digests.sort_by(|a, b| a.id.cmp(&b.id));
            syn.digests.dedup_by(|a, b| a.id == b.id);
        }
        let unmentioned: Vec<Member> = {
            let mut theirs = syn.digests.iter().map(|d| d.id.as_str()).peekable();
            self.table
                .members()
                .filter(|m| {
                    while theirs.next_if(|id| *id < m.id.as_str()).is_some() {}
                    theirs.peek() != Some(&m.id.as_str())
                })
                .cloned()
                .collect()
        };
        updates.extend(unmentioned.into_iter().map(Update::Record));
        for d in syn.digests {
            let Some(mine) = self.table.get(&d.id) else {
                wanted.push(GossipDigest::absent(&d.id));
                continue;
            };
            let mine_d = GossipDigest::of(mine);
            match compare(&mine_d, &d) {
                Newer::Mine => updates.push(Update::Record(mine.clone())),
                Newer::Theirs if self.table.refused_restart(&d.id, d.generation) => {
                    // A removed node back under a new generation: tell it it was removed.
                    updates.push(Update::Record(mine.clone()));
                    wanted.push(mine_d);
                }
                Newer::Theirs => wanted.push(mine_d),
                Newer::Both => {
                    updates.push(Update::Record(mine.clone()));
                    wanted.push(mine_d);
                }
                Newer::Same => {
                    if mine_d.heartbeat > d.heartbeat {
                        updates.push(Update::Heartbeat {
                            id: d.id.clone(),
                            generation: d.generation,
                            heartbeat: mine_d.heartbeat,
                        });
                    } else if d.heartbeat > mine_d.heartbeat {
                        // The digest itself carries the newer heartbeat.
                        self.apply(
                            now,
                            Update::Heartbeat {
                                id: d.id,
                                generation: d.generation,
                                heartbeat: d.heartbeat,
                            },
                        );
                    }
                }
            }
        }
        Ack {
            from: self.table.local_id().to_string(),
            updates,
            wanted,
        }
    }

    /// Takes an [`Ack`]; returns the [`Ack2`] to send back, if the peer wanted anything.
    pub fn on_ack(&mut self, now: u64, ack: Ack) -> Option<Ack2> {
        let mut updates = Vec::new();
        for u in ack.updates {
            // A node removed while it was down, restarted since, still calls itself a member:
            // it gets our record of its removal back, which makes it join again.
            if let Update::Record(m) = &u
                && m.id == ack.from
                && m.state != MemberState::Joining
                && self.table.refused_restart(&m.id, m.generation)
                && let Some(left) = self.table.get(&m.id)
            {
                updates.push(Update::Record(left.clone()));
            }
            self.apply(now, u);
        }
        self.heard_directly(&ack.from, now);
        for w in ack.wanted {
            let Some(mine) = self.table.get(&w.id) else {
                continue;
            };
            let mine_d = GossipDigest::of(mine);
            match compare(&mine_d, &w) {
                Newer::Mine | Newer::Both => updates.push(Update::Record(mine.clone())),
                Newer::Same if mine_d.heartbeat > w.heartbeat => updates.push(Update::Heartbeat {
                    id: w.id.clone(),
                    generation: w.generation,
                    heartbeat: mine_d.heartbeat,
                }),
                _ => {}
            }
        }
        (!updates.is_empty()).then(|| Ack2 {
            from: self.table.local_id().to_string(),
            updates,
        })
    }

    /// Takes an [`Ack2`].
    pub fn on_ack2(&mut self, now: u64, ack2: Ack2) {
        for u in ack2.updates {
            self.apply(now, u);
        }
        self.heard_directly(&ack2.from, now);
    }

    /// Records that `id` itself just sent a message: it is up now.
    fn heard_directly(&mut self, id: &str, now: u64) {
        if id == self.table.local_id()
            || self
                .table
                .get(id)
                .is_none_or(|m| m.state == MemberState::Left)
        {
            return;
        }
        self.detector.heard(id, now);
        if self.statuses.get(id) != Some(&NodeStatus::Alive) {
            self.refresh_status(id, now);
        }
    }

    fn apply(&mut self, now: u64, u: Update) {
        let id = match &u {
            Update::Record(m) => m.id.clone(),
            Update::Heartbeat { id, .. } => id.clone(),
        };
        let known = self.table.get(&id).is_some();
        let generation_before = self.table.get(&id).map(|m| m.generation);
        let Applied {
            record_changed,
            heartbeat_advanced,
        } = self.table.apply(u);
        if id == self.table.local_id() {
            if record_changed {
                self.events.push(GossipEvent::RecordChanged { id });
            }
            return;
        }
        if !known {
            // Learned from gossip: suspect until its own heartbeat is heard advancing.
            self.detector.track(&id, now);
        } else if heartbeat_advanced {
            if self.table.get(&id).map(|m| m.generation) != generation_before {
                // Restarted: the gaps of its earlier life say nothing about this one.
                self.detector.forget(&id);
            }
            self.detector.heard(&id, now);
        }
        if record_changed {
            if self
                .table
                .get(&id)
                .is_some_and(|m| m.state == MemberState::Left)
            {
                self.detector.forget(&id);
            }
            self.refresh_status(&id, now);
            self.events.push(GossipEvent::RecordChanged { id });
        } else if heartbeat_advanced && self.statuses.get(&id) != Some(&NodeStatus::Alive) {
            // A node coming back is alive at once, not at the next tick.
            self.refresh_status(&id, now);
        }
    }

    /// Recomputes every member's status (at each tick; statuses also change between ticks
    /// when a record changes or a peer's heartbeat returns).
    fn refresh_statuses(&mut self, now: u64) {
        let ids: Vec<NodeId> = self.table.members().map(|m| m.id.clone()).collect();
        for id in ids {
            self.refresh_status(&id, now);
        }
    }

    fn refresh_status(&mut self, id: &str, now: u64) {
        let status = self.status(id, now);
        match self.statuses.get_mut(id) {
            Some(before) if *before == status => {}
            Some(before) => {
                self.events.push(GossipEvent::StatusChanged {
                    id: id.to_string(),
                    from: *before,
                    to: status,
                });
                *before = status;
            }
            None => {
                self.statuses.insert(id.to_string(), status);
            }
        }
    }
}

/// Which of two digests of the same record is newer.
enum Newer {
    Mine,
    Theirs,
    /// Same `(generation, version)`, different contents: each side needs the other's record
    /// to pick the winner.
    Both,
    Same,
}

fn compare(mine: &GossipDigest, theirs: &GossipDigest) -> Newer {
    match (mine.generation, mine.version).cmp(&(theirs.generation, theirs.version)) {
        std::cmp::Ordering::Greater => Newer::Mine,
        std::cmp::Ordering::Less => Newer::Theirs,
        std::cmp::Ordering::Equal if mine.fingerprint != theirs.fingerprint => Newer::Both,
        std::cmp::Ordering::Equal => Newer::Same,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::node_tokens;
    use std::collections::BTreeSet;

    fn cfg() -> GossipConfig {
        GossipConfig {
            heartbeat_interval_ms: 1000,
            gossip_interval_ms: 1000,
            fanout: 3,
            detector: DetectorConfig {
                suspect_timeout_ms: 5_000,
                dead_timeout_ms: 20_000,
                min_suspect_ms: 2_000,
                phi_threshold: 8.0,
            },
        }
    }

    fn node(id: &str, seeds: &[&str]) -> Gossiper {
        let me = Member::new(
            id,
            format!("{id}:1"),
            1,
            MemberState::Normal,
            node_tokens(id, 4),
        );
        Gossiper::new(
            cfg(),
            Membership::new(me),
            seeds.iter().map(|s| s.to_string()).collect(),
            7,
            0,
        )
    }

    /// One full exchange from `a` to `b`.
    fn exchange(a: &mut Gossiper, b: &mut Gossiper, now: u64) {
        let ack = b.on_syn(now, a.syn());
        if let Some(ack2) = a.on_ack(now, ack) {
            b.on_ack2(now, ack2);
        }
    }

    #[test]
    fn one_exchange_teaches_both_sides_everything() {
        let mut a = node("a", &[]);
        let mut b = node("b", &["a:1"]);
        let mut c = node("c", &[]);
        exchange(&mut c, &mut a, 0);
        exchange(&mut b, &mut a, 0);
        assert_eq!(a.table(), &{
            let mut t = a.table().clone();
            t.merge(b.table().members().cloned());
            t
        });
        let ids = |g: &Gossiper| {
            g.table()
                .members()
                .map(|m| m.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ["a", "b", "c"]);
        assert_eq!(ids(&b), ["a", "b", "c"]);
        // Learned members are suspect until their heartbeats are heard advancing.
        assert_eq!(b.status("c", 0), NodeStatus::Suspect);
        assert_eq!(b.status("b", 0), NodeStatus::Alive);
    }

    #[test]
    fn a_node_alone_gossips_with_its_seeds_and_then_with_members() {
        let mut b = node("b", &["a:1", "b:1"]);
        let out = b.tick(0);
        assert_eq!(
            out.iter().map(|o| o.address.as_str()).collect::<Vec<_>>(),
            ["a:1"],
            "its own address is not a seed to gossip with"
        );
        assert_eq!(out[0].to, None);
        // Alone, it asks its seeds again every 100 ms until one answers...
        assert!(b.tick(99).is_empty());
        assert_eq!(b.tick(100).len(), 1);
        assert!(b.tick(150).is_empty());
        let mut a = node("a", &[]);
        exchange(&mut b, &mut a, 999);
        let out = b.tick(1000);
        assert!(out.iter().any(|o| o.to.as_deref() == Some("a")));
    }

    #[test]
    fn heartbeats_travel_without_records_and_keep_peers_alive() {
        let mut a = node("a", &[]);
        let mut b = node("b", &[]);
        exchange(&mut a, &mut b, 0);
        for t in 1..=10u64 {
            a.tick(t * 1000);
            b.tick(t * 1000);
            let ack = b.on_syn(t * 1000, a.syn());
            // After the first exchange only heartbeats move: no whole records.
            assert!(
                ack.updates
                    .iter()
                    .all(|u| matches!(u, Update::Heartbeat { .. })),
                "{ack:?}"
            );
            if let Some(ack2) = a.on_ack(t * 1000, ack) {
                b.on_ack2(t * 1000, ack2);
            }
        }
        assert_eq!(a.status("b", 10_000), NodeStatus::Alive);
        assert_eq!(b.status("a", 10_000), NodeStatus::Alive);
        assert_eq!(a.table().get("b").map(|m| m.heartbeat), Some(10));
    }

    #[test]
    fn silence_turns_a_peer_suspect_then_dead_and_its_restart_revives_it() {
        let mut a = node("a", &[]);
        let mut b = node("b", &[]);
        for t in 0..5u64 {
            a.tick(t * 1000);
            b.tick(t * 1000);
            exchange(&mut a, &mut b, t * 1000);
        }
        a.drain_events();
        // b stops; a keeps ticking.
        let mut seen = Vec::new();
        for t in 5..30u64 {
            a.tick(t * 1000);
            for e in a.drain_events() {
                if let GossipEvent::StatusChanged { id, to, .. } = e {
                    seen.push((t, id, to));
                }
            }
        }
        assert_eq!(
            seen,
            [
                (9, "b".to_string(), NodeStatus::Suspect),
                (24, "b".to_string(), NodeStatus::Dead)
            ]
        );
        assert!(a.is_down("b"));
        // b restarts with a new generation: alive again at the first exchange.
        let mut b2 = Gossiper::new(
            cfg(),
            Membership::new(Member::new(
                "b",
                "b:1",
                2,
                MemberState::Normal,
                node_tokens("b", 4),
            )),
            vec!["a:1".into()],
            9,
            30_000,
        );
        b2.tick(30_000);
        exchange(&mut b2, &mut a, 30_000);
        assert_eq!(a.status("b", 30_000), NodeStatus::Alive);
        assert!(!a.is_down("b"));
    }

    #[test]
    fn a_removed_node_that_restarts_is_told_and_joins_again() {
        let mut a = node("a", &[]);
        let mut b = node("b", &[]);
        exchange(&mut a, &mut b, 0);
        a.table_mut().mark_left("b");
        // b restarts (new generation) still believing it is normal. Whichever side opens the
        // exchange, b learns of its removal and joins again.
        let restarted = || {
            Gossiper::new(
                cfg(),
                Membership::new(Member::new(
                    "b",
                    "b:1",
                    2,
                    MemberState::Normal,
                    node_tokens("b", 4),
                )),
                vec!["a:1".into()],
                3,
                100,
            )
        };
        for b_opens in [true, false] {
            let mut a2 = a.clone();
            let mut b2 = restarted();
            if b_opens {
                exchange(&mut b2, &mut a2, 100);
            } else {
                exchange(&mut a2, &mut b2, 100);
            }
            assert_eq!(
                b2.table().local().state,
                MemberState::Joining,
                "b opens: {b_opens}"
            );
            exchange(&mut b2, &mut a2, 200);
            assert_eq!(
                a2.table().get("b").map(|m| (m.state, m.generation)),
                Some((MemberState::Joining, 2)),
                "b opens: {b_opens}"
            );
        }
    }

    #[test]
    fn conflicting_records_at_the_same_version_still_converge() {
        let mut a = node("a", &[]);
        let mut b = node("b", &[]);
        let c = node("c", &[]);
        a.table_mut().merge(c.table().members().cloned());
        b.table_mut().merge(c.table().members().cloned());
        // Two admins change c at the same time on different nodes.
        a.table_mut().mark_left("c");
        let mut moved = c.table().local().clone();
        moved.address = "elsewhere:1".into();
        b.table_mut().upsert(moved);
        let va = a.table().get("c").map(|m| m.version);
        let vb = b.table().get("c").map(|m| m.version);
        assert_eq!(va, vb);
        exchange(&mut a, &mut b, 0);
        assert_eq!(a.table().get("c"), b.table().get("c"));
        assert_eq!(a.table().get("c").map(|m| m.state), Some(MemberState::Left));
    }

    #[test]
    fn the_generator_is_deterministic_and_uniform_enough() {
        let mut r = SplitMix64::new(42);
        let picks: Vec<usize> = (0..10).map(|_| r.below(10)).collect();
        let mut again = SplitMix64::new(42);
        assert_eq!(picks, (0..10).map(|_| again.below(10)).collect::<Vec<_>>());
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[r.below(4)] += 1;
        }
        assert!(counts.iter().all(|c| (850..1150).contains(c)), "{counts:?}");
        let chosen = r.choose(&[1, 2, 3, 4, 5], 3);
        assert_eq!(chosen.len(), 3);
        assert_eq!(chosen.iter().collect::<BTreeSet<_>>().len(), 3);
    }
}
