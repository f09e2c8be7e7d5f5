//! The node's side of gossip: drives [`distkv_cluster::Gossiper`] with real time and RPCs,
//! keeps the rings every request uses, and remembers the member table across restarts.
//!
//! The gossiper itself is a state machine behind a mutex: a loop ticks it every quarter of
//! the shorter of the heartbeat and gossip intervals and sends the [`Syn`]s it asks for, each
//! exchange a task of its own bounded by the request timeout, so a silent peer delays nothing
//! else. Incoming exchanges are answered by the replica service through
//! [`Node::on_gossip_syn`] and [`Node::on_gossip_ack2`]. After every step the events are
//! handled here: a changed record rebuilds the rings and saves the table
//! (`<data-dir>/members.pb`); a changed status is logged and counted.
//!
//! On start, the node's own record decides what it does (see [`initial_state`]): a node that
//! was a member carries on under a new generation; a new node with seeds joins (streams its
//! ranges in first, [`crate::streaming`]); a new node without seeds starts a cluster.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use distkv_cluster::gossip::{Ack, Ack2, GossipEvent, Outgoing, Syn};
use distkv_cluster::{
    DetectorConfig, GossipConfig, Member, MemberState, Membership, NodeId, NodeStatus, Ring, Token,
    Update, node_tokens,
};

use crate::config::NodeConfig;
use crate::error::{BadMessage, NodeError, Result};
use crate::members_file;
use crate::node::Node;
use crate::transport::{GossipAnswer, GossipTransport};

/// Where the member table is kept between runs.
pub use crate::members_file::MEMBERS_FILE;

/// The rings requests use, rebuilt whenever a record changes.
#[derive(Clone, Debug, Default)]
pub struct Rings {
    /// Members that hold their ranges (normal, leaving): reads, and writes' quorum.
    pub read: Arc<Ring>,
    /// After pending joins and leaves: writes also go to these replicas.
    pub pending: Arc<Ring>,
    /// Every member's address, by id.
    pub addresses: Arc<HashMap<NodeId, String>>,
}

impl Rings {
    /// The rings of `table`.
    pub fn of(table: &Membership) -> Rings {
        Rings {
            read: Arc::new(table.ring()),
            pending: Arc::new(table.pending_ring()),
            addresses: Arc::new(
                table
                    .members()
                    .map(|m| (m.id.clone(), m.address.clone()))
                    .collect(),
            ),
        }
    }
}

/// A member as `status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    pub id: NodeId,
    pub address: String,
    pub status: NodeStatus,
    pub state: MemberState,
    pub generation: u64,
    pub heartbeat: u64,
    pub tokens: usize,
    /// Unix seconds when its heartbeat last advanced, as this node heard it.
    pub last_seen_secs: i64,
}

/// The gossip settings of a node's configuration, in milliseconds.
pub fn gossip_config(cfg: &NodeConfig) -> GossipConfig {
    let ms = |d: Duration| d.as_millis() as u64;
    GossipConfig {
        heartbeat_interval_ms: ms(cfg.heartbeat_interval),
        gossip_interval_ms: ms(cfg.gossip_interval),
        fanout: cfg.gossip_fanout,
        detector: DetectorConfig {
            suspect_timeout_ms: ms(cfg.suspect_timeout),
            dead_timeout_ms: ms(cfg.dead_timeout),
            // A few rounds of silence are normal; never suspect sooner.
            min_suspect_ms: 3 * ms(cfg.gossip_interval.max(cfg.heartbeat_interval)),
            phi_threshold: 8.0,
        },
    }
}

/// The local record to start with, from the table saved by the last run (if any): a member
/// carries on (joining or leaving where it left off); a node an admin removed, or a new node
/// with seeds, joins; a new node without seeds starts a cluster.
pub fn initial_state(cfg: &NodeConfig, saved: Option<&Member>, now_ms: u64) -> Member {
    let has_seeds = cfg.seeds.iter().any(|s| *s != cfg.advertise_address);
    let state = match saved.map(|m| m.state) {
        Some(MemberState::Normal) => MemberState::Normal,
        Some(MemberState::Leaving) => MemberState::Leaving,
        Some(MemberState::Joining | MemberState::Left) => MemberState::Joining,
        None if has_seeds => MemberState::Joining,
        None => MemberState::Normal,
    };
    let tokens: Vec<Token> = match saved {
        Some(m) if !m.tokens.is_empty() => {
            if m.tokens.len() != cfg.virtual_nodes as usize {
                tracing::warn!(
                    kept = m.tokens.len(),
                    flag = cfg.virtual_nodes,
                    "keeping the tokens this node already owns; -virtual-nodes applies to new nodes only"
                );
            }
            m.tokens.to_vec()
        }
        _ => node_tokens(&cfg.node_id, cfg.virtual_nodes),
    };
    // A generation larger than any earlier one, even if the clock went back.
    let generation = now_ms.max(saved.map_or(0, |m| m.generation + 1));
    Member::new(
        cfg.node_id.clone(),
        cfg.advertise_address.clone(),
        generation,
        state,
        tokens,
    )
}

impl Node {
    /// Milliseconds on the node's monotonic clock (the gossiper's time).
    pub fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The current rings.
    pub fn rings(&self) -> Rings {
        self.rings.read().clone()
    }

    /// The read ring (normal and leaving members).
    pub fn ring(&self) -> Arc<Ring> {
        Arc::clone(&self.rings.read().read)
    }

    /// The ring reads use, with member `id` in it on the tokens it holds (or held, if it left).
    pub fn ring_with_member(&self, id: &str) -> Ring {
        let g = self.gossip.lock();
        let mut ring = g.table().ring();
        if let Some(m) = g.table().get(id)
            && !ring.contains(id)
        {
            ring.add_node_tokens(&m.id, &m.tokens);
        }
        ring
    }

    /// The local node's state in the ring.
    pub fn local_state(&self) -> MemberState {
        self.gossip.lock().table().local().state
    }

    /// A receiver that changes whenever the local node's state does.
    pub fn local_state_watch(&self) -> tokio::sync::watch::Receiver<MemberState> {
        self.local_state.subscribe()
    }

    pub fn address_of(&self, id: &str) -> Option<String> {
        self.gossip
            .lock()
            .table()
            .get(id)
            .map(|m| m.address.clone())
    }

    /// True when requests should route around `id`: the failure detector holds it dead, or it
    /// left.
    pub fn is_down(&self, id: &str) -> bool {
        id != self.cfg.node_id && self.gossip.lock().is_down(id)
    }

    /// Every member as `status` shows it, sorted by id.
    pub fn member_views(&self) -> Vec<MemberView> {
        let now = self.clock_ms();
        let wall = now_secs();
        let g = self.gossip.lock();
        g.table()
            .members()
            .map(|m| {
                let silence_ms = if m.id == self.cfg.node_id {
                    0
                } else {
                    g.silence(&m.id, now).unwrap_or(0)
                };
                MemberView {
                    id: m.id.clone(),
                    address: m.address.clone(),
                    status: g.status(&m.id, now),
                    state: m.state,
                    generation: m.generation,
                    heartbeat: m.heartbeat,
                    tokens: m.tokens.len(),
                    last_seen_secs: wall - (silence_ms / 1000) as i64,
                }
            })
            .collect()
    }

    /// The member records, sorted by id.
    pub fn members(&self) -> Vec<Member> {
        self.gossip.lock().table().members().cloned().collect()
    }

    /// Changes the local node's state (joining, normal, leaving, left) and tells every peer
    /// at once rather than waiting for gossip to get there.
    pub async fn set_local_state(self: &Arc<Self>, state: MemberState) {
        {
            let mut g = self.gossip.lock();
            if g.table_mut().set_local_state(state) {
                let now = self.clock_ms();
                let id = self.cfg.node_id.clone();
                g.changed(&id, now);
            }
        }
        self.handle_gossip_events();
        tracing::info!(node = self.cfg.node_id, state = ?state, "local state changed");
        self.announce().await;
    }

    /// One exchange with every known peer; returns how many answered.
    pub async fn announce(self: &Arc<Self>) -> usize {
        let outgoing = self.gossip.lock().announce();
        let calls = outgoing.into_iter().map(|o| {
            let this = Arc::clone(self);
            async move { this.exchange(o).await.is_ok() }
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    /// Admin AddNode: one gossip exchange with the node at `address`, which must turn out to
    /// be `id`.
    pub async fn introduce(self: &Arc<Self>, id: &str, address: &str) -> Result<()> {
        // First look without telling: a Syn that mentions nothing gets the peer's records
        // back and teaches it nothing.
        let probe = Syn {
            from: self.cfg.node_id.clone(),
            digests: Vec::new(),
        };
        let theirs = self
            .peer_calls
            .syn(address, probe, self.cfg.request_timeout, true)
            .await?;
        let them = theirs
            .updates
            .into_iter()
            .find_map(|u| match u {
                Update::Record(m) if m.id == theirs.from => Some(m),
                _ => None,
            })
            .ok_or_else(|| BadMessage::Anonymous {
                address: address.to_string(),
            })?;
        if them.id != id {
            return Err(BadMessage::WrongNode {
                address: address.to_string(),
                found: them.id,
                expected: id.to_string(),
            }
            .into());
        }
        let known = self.gossip.lock().table().get(id).is_some();
        if them.state.serves_reads() && !known {
            // A node that started without seeds serves a cluster of its own: merging it would
            // put a node without this cluster's data among the replicas of reads.
            return Err(NodeError::WrongState(
                "a member of another cluster (it started without seeds): restart it with an empty data directory and -seed-nodes naming this cluster",
            ));
        }
        let syn = self.gossip.lock().syn();
        self.exchange(Outgoing {
            to: None,
            address: address.to_string(),
            syn,
        })
        .await?;
        Ok(())
    }

    /// Admin RemoveNode: marks a member (by id or address) as left. Returns its id.
    pub fn mark_member_left(&self, id_or_address: &str) -> Result<NodeId> {
        let id = {
            let mut g = self.gossip.lock();
            let id = match g.table().get(id_or_address) {
                Some(m) => m.id.clone(),
                None => g
                    .table()
                    .find_by_address(id_or_address)
                    .map(|m| m.id.clone())
                    .ok_or_else(|| NodeError::UnknownNode(id_or_address.to_string()))?,
            };
            if id == self.cfg.node_id {
                return Err(NodeError::RemoveSelf);
            }
            g.table_mut().mark_left(&id);
            let now = self.clock_ms();
            g.changed(&id, now);
            id
        };
        self.handle_gossip_events();
        Ok(id)
    }

    /// Answers a peer's opening message.
    pub fn on_gossip_syn(&self, syn: Syn) -> Ack {
        let from = syn.from.clone();
        let ack = {
            let mut g = self.gossip.lock();
            let now = self.clock_ms();
            g.on_syn(now, syn)
        };
        self.heard_from_node(&from);
        self.metrics
            .gossip_messages_received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.handle_gossip_events();
        ack
    }

    /// Takes a peer's closing message.
    pub fn on_gossip_ack2(&self, ack2: Ack2) {
        let from = ack2.from.clone();
        {
            let mut g = self.gossip.lock();
            let now = self.clock_ms();
            g.on_ack2(now, ack2);
        }
        self.heard_from_node(&from);
        self.handle_gossip_events();
    }

    fn heard_from_node(&self, id: &str) {
        if let Some(address) = self.address_of(id) {
            self.peers.heard_from(&address);
        }
    }

    /// One three-way exchange with the peer `o` names.
    async fn exchange(self: &Arc<Self>, o: Outgoing) -> Result<()> {
        let ack = self
            .peer_calls
            .syn(&o.address, o.syn, self.gossip_timeout(), false)
            .await?;
        self.metrics
            .gossip_messages_sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ack2 = {
            let mut g = self.gossip.lock();
            let now = self.clock_ms();
            g.on_ack(now, ack)
        };
        self.handle_gossip_events();
        if let Some(ack2) = ack2 {
            self.peer_calls
                .ack2(&o.address, ack2, self.gossip_timeout())
                .await?;
        }
        Ok(())
    }

    fn gossip_timeout(&self) -> Duration {
        self.cfg
            .request_timeout
            .min(self.cfg.gossip_interval.max(Duration::from_millis(500)) * 2)
    }

    /// Acts on what the gossiper reported: rebuilds the rings and saves the table when a
    /// record changed, logs status changes.
    pub fn handle_gossip_events(&self) {
        // Held from draining the events to saving the table, so that an older copy of the
        // table can never overwrite the rings built from a newer one.
        let _order = self.membership_save.lock();
        let (events, table, local_state) = {
            let mut g = self.gossip.lock();
            let events = g.drain_events();
            if events.is_empty() {
                return;
            }
            let changed = events
                .iter()
                .any(|e| matches!(e, GossipEvent::RecordChanged { .. }));
            let table = changed.then(|| g.table().clone());
            (events, table, g.table().local().state)
        };
        for e in &events {
            if let GossipEvent::StatusChanged { id, from, to } = e {
                self.metrics
                    .status_changes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if *to == NodeStatus::Dead || *to == NodeStatus::Suspect {
                    tracing::warn!(
                        node = id,
                        from = from.name(),
                        to = to.name(),
                        "member status changed"
                    );
                } else {
                    tracing::info!(
                        node = id,
                        from = from.name(),
                        to = to.name(),
                        "member status changed"
                    );
                }
            }
        }
        if let Some(table) = table {
            // Spread the change now rather than at the next round.
            self.gossip_now.notify_one();
            let rings = Rings::of(&table);
            let mut current = self.rings.write();
            if current.read != rings.read || current.pending != rings.pending {
                *self.ring_changed_at.lock() = std::time::Instant::now();
            }
            *current = rings;
            drop(current);
            if let Err(e) = members_file::save(&self.cfg.data_dir, &self.cfg.node_id, &table) {
                tracing::warn!(error = %e, "could not save the member table");
            }
            if local_state == MemberState::Joining
                && *self.local_state.borrow() != MemberState::Joining
            {
                // Told it was removed while down: it joins again, from an empty store, and
                // serves only after that.
                self.serving
                    .store(false, std::sync::atomic::Ordering::Release);
                self.wipe_before_join
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            self.local_state.send_if_modified(|s| {
                let changed = *s != local_state;
                *s = local_state;
                changed
            });
        }
    }

    /// Ticks the gossiper and runs the exchanges it asks for, until shutdown.
    pub async fn gossip_loop(self: Arc<Self>) {
        let mut stop = self.shutdown_signal();
        let step = (self.cfg.gossip_interval.min(self.cfg.heartbeat_interval) / 4)
            .clamp(Duration::from_millis(10), Duration::from_millis(100));
        let mut tick = tokio::time::interval(step);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut exchanges = tokio::task::JoinSet::new();
        let mut last_evict = std::time::Instant::now();
        let mut last_push = std::time::Instant::now();
        loop {
            let push = tokio::select! {
                _ = tick.tick() => false,
                _ = self.gossip_now.notified() => true,
                _ = stop.changed() => break,
            };
            while exchanges.try_join_next().is_some() {}
            let outgoing = {
                let mut g = self.gossip.lock();
                let now = self.clock_ms();
                if push {
                    // At most one extra round per step, however many changes come in.
                    if last_push.elapsed() < step {
                        continue;
                    }
                    last_push = std::time::Instant::now();
                    g.push_round()
                } else {
                    g.tick(now)
                }
            };
            self.handle_gossip_events();
            for o in outgoing {
                // Exchanges still running from earlier rounds are not piled up.
                if exchanges.len() >= 4 * self.cfg.gossip_fanout.max(1) {
                    break;
                }
                let this = Arc::clone(&self);
                exchanges.spawn(async move {
                    let address = o.address.clone();
                    if let Err(e) = this.exchange(o).await {
                        this.gossip_failed(&address, &e);
                    }
                });
            }
            if last_evict.elapsed() > Duration::from_secs(60) {
                self.peers.evict_idle(Duration::from_secs(300));
                last_evict = std::time::Instant::now();
            }
        }
        exchanges.shutdown().await;
    }
}

/// Whether an error is about certificates or the TLS handshake (a misconfiguration that
/// repeats at every round until someone fixes it), not the peer being down.
impl GossipAnswer for Node {
    fn on_syn(&self, syn: Syn) -> Ack {
        self.on_gossip_syn(syn)
    }

    fn on_ack2(&self, ack2: Ack2) {
        self.on_gossip_ack2(ack2)
    }
}

fn is_tls_failure(error: &str) -> bool {
    let e = error.to_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "unknownissuer",
        "alert",
        "requires tls",
    ]
    .iter()
    .any(|m| e.contains(m))
}

impl Node {
    /// Records a failed gossip exchange: at debug level (peers go down, that is what the
    /// failure detector is for), but a TLS failure as a warning, at most every 30 seconds.
    fn gossip_failed(&self, peer: &str, error: &NodeError) {
        let text = error.to_string();
        *self.last_gossip_error.lock() = Some(format!("{peer}: {text}"));
        if is_tls_failure(&text) {
            let mut warned = self.tls_warned_at.lock();
            if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                *warned = Some(std::time::Instant::now());
                tracing::warn!(peer, error = %text, "TLS with a peer failed (certificates or CA?)");
                return;
            }
        }
        tracing::debug!(peer, error = %text, "gossip exchange failed");
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seeds: &[&str]) -> NodeConfig {
        let mut c = crate::config::test_config("n1", "127.0.0.1:7000");
        c.seeds = seeds.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn the_start_state_follows_the_last_run() {
        let saved = |state| {
            let mut m = Member::new("n1", "127.0.0.1:7000", 500, state, vec![3, 1, 2]);
            m.version = 9;
            m
        };
        // New nodes: with seeds they join, without (or only themselves) they start a cluster.
        assert_eq!(
            initial_state(&cfg(&["a:1"]), None, 10).state,
            MemberState::Joining
        );
        assert_eq!(
            initial_state(&cfg(&[]), None, 10).state,
            MemberState::Normal
        );
        assert_eq!(
            initial_state(&cfg(&["127.0.0.1:7000"]), None, 10).state,
            MemberState::Normal
        );
        // Members carry on; an interrupted join or a removal means joining again.
        for (before, after) in [
            (MemberState::Normal, MemberState::Normal),
            (MemberState::Leaving, MemberState::Leaving),
            (MemberState::Joining, MemberState::Joining),
            (MemberState::Left, MemberState::Joining),
        ] {
            let m = initial_state(&cfg(&["a:1"]), Some(&saved(before)), 10);
            assert_eq!(m.state, after, "after {before:?}");
            // The tokens are kept, the generation only grows.
            assert_eq!(&m.tokens[..], &[1, 2, 3]);
            assert_eq!(m.generation, 501);
        }
        let fresh = initial_state(&cfg(&[]), None, 10);
        assert_eq!(fresh.tokens.len(), 150);
        assert_eq!(fresh.generation, 10);
    }
}
