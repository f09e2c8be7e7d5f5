//! The membership component: the gossiper, the rings it builds and the saved member table,
//! owned together and driven over a [`GossipTransport`].
//!
//! The gossiper is a state machine behind a mutex: [`Membership::run`] ticks it every quarter
//! of the shorter of the heartbeat and gossip intervals and sends the [`Syn`]s it asks for,
//! each exchange a task of its own bounded by the request timeout, so a silent peer delays
//! nothing else. Peers' exchanges are answered through [`GossipAnswer`]. After every step the
//! events are handled here: a changed record rebuilds the rings and saves the table
//! (`<data-dir>/members.pb`); a changed status is logged and counted.
//!
//! The component also keeps the local node's lifecycle as membership decides it: whether it
//! serves client requests (not while it joins) and whether its data is stale (it was removed
//! and joins again). Time is tokio's: on a paused runtime the failure detector and the rounds
//! follow simulated time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use distkv_cluster::gossip::{Ack, Ack2, GossipEvent, Outgoing, Syn};
use distkv_cluster::{
    Gossiper, Member, MemberState, Membership as MemberTable, NodeId, NodeStatus, Ring, Update,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::{MemberView, Rings, gossip_config, initial_state};
use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::coordinator::Placement;
use crate::counters::Metrics;
use crate::error::{BadMessage, NodeError, Result};
use crate::handoff::{HintRoute, HintRoutes};
use crate::members_file;
use crate::transport::{GossipAnswer, GossipTransport};

/// What the component needs of the node's configuration.
#[derive(Clone, Debug)]
struct Settings {
    gossip_interval: Duration,
    heartbeat_interval: Duration,
    fanout: usize,
    request_timeout: Duration,
    data_dir: PathBuf,
}

/// The node's view of the cluster and the loop that keeps it current.
pub struct Membership<T> {
    id: NodeId,
    settings: Settings,
    /// The member table, the failure detector and their timers.
    gossip: Mutex<Gossiper>,
    /// The rings built from the table, rebuilt when a record changes (shared with the
    /// coordinator's transport, which resolves addresses through them).
    rings: Arc<RwLock<Rings>>,
    /// Serializes ring rebuilds and saves of the member table.
    save_order: Mutex<()>,
    /// The local node's state, for the tasks that act on it.
    local_state: watch::Sender<MemberState>,
    /// When the rings last changed (handed-over data is deleted only once they settle).
    ring_changed_at: Mutex<Instant>,
    /// Wakes the loop for an extra round when a record changed.
    push_now: Notify,
    /// False while the node joins: client and admin requests are refused until it serves
    /// its ranges (as Cassandra opens its client port only after bootstrapping).
    serving: AtomicBool,
    /// Set when the node left or was removed and joins again: its data is stale.
    stale_data: AtomicBool,
    /// The last failed exchange (peer and reason), for the joining node's log.
    last_error: Mutex<Option<String>>,
    /// When a TLS failure with a peer was last logged as a warning (they repeat every round).
    tls_warned_at: Mutex<Option<Instant>>,
    transport: T,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    started: Instant,
}

impl<T: GossipTransport> Membership<T> {
    /// The membership of the node `cfg` describes, from the member table its last run saved
    /// (`saved`, empty for a new node): see [`initial_state`]. Does no I/O.
    ///
    /// `rings` is the handle the node's rings are kept in (shared with the transport, which
    /// finds members' addresses there); it is set from the table here.
    pub fn new(
        cfg: &NodeConfig,
        saved: Vec<Member>,
        transport: T,
        rings: Arc<RwLock<Rings>>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let saved_self = saved.iter().find(|m| m.id == cfg.node_id);
        let rejoining = saved_self.is_some_and(|m| m.state == MemberState::Left);
        let now_ms = clock.now_ms();
        let local = initial_state(cfg, saved_self, now_ms);
        let state = local.state;
        let mut table = MemberTable::new(local);
        table.merge(saved.into_iter().filter(|m| m.id != cfg.node_id));
        *rings.write() = Rings::of(&table);
        let rng_seed = distkv_cluster::key_token(cfg.node_id.as_bytes()) ^ now_ms;
        let gossip = Gossiper::new(gossip_config(cfg), table, cfg.seeds.clone(), rng_seed, 0);
        Membership {
            id: cfg.node_id.clone(),
            settings: Settings {
                gossip_interval: cfg.gossip_interval,
                heartbeat_interval: cfg.heartbeat_interval,
                fanout: cfg.gossip_fanout,
                request_timeout: cfg.request_timeout,
                data_dir: cfg.data_dir.clone(),
            },
            gossip: Mutex::new(gossip),
            rings,
            save_order: Mutex::new(()),
            local_state: watch::channel(state).0,
            ring_changed_at: Mutex::new(Instant::now()),
            push_now: Notify::new(),
            serving: AtomicBool::new(state != MemberState::Joining),
            stale_data: AtomicBool::new(rejoining),
            last_error: Mutex::new(None),
            tls_warned_at: Mutex::new(None),
            transport,
            metrics,
            clock,
            started: Instant::now(),
        }
    }

    /// Milliseconds on the component's monotonic clock (the gossiper's time).
    fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The rings, shared: whoever holds this sees every rebuild.
    pub fn rings_handle(&self) -> Arc<RwLock<Rings>> {
        Arc::clone(&self.rings)
    }

    /// The current rings.
    pub fn rings(&self) -> Rings {
        self.rings.read().clone()
    }

    /// The read ring (normal and leaving members).
    pub fn ring(&self) -> Arc<Ring> {
        Arc::clone(&self.rings.read().read)
    }

    /// How long ago the rings last changed.
    pub fn since_ring_change(&self) -> Duration {
        self.ring_changed_at.lock().elapsed()
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

    /// The local node's tokens.
    pub fn local_tokens(&self) -> Vec<distkv_cluster::Token> {
        self.gossip.lock().table().local().tokens.to_vec()
    }

    /// A receiver that changes whenever the local node's state does.
    pub fn local_state_watch(&self) -> watch::Receiver<MemberState> {
        self.local_state.subscribe()
    }

    /// Whether the node serves client and admin requests (not while it joins).
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// The node serves (its join is done, or it starts the cluster).
    pub fn start_serving(&self) {
        self.serving.store(true, Ordering::Release);
    }

    /// True once after the node learned that its data is of an earlier membership (it left
    /// or was removed, and joins again): the caller deletes it.
    pub fn take_stale_data(&self) -> bool {
        self.stale_data.swap(false, Ordering::AcqRel)
    }

    /// The last failed gossip exchange, as `peer: reason`.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
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
        id != self.id && self.gossip.lock().is_down(id)
    }

    /// Where `key` lives for a round at `n` replicas: its replicas and pending replicas as the
    /// rings say, which of them the failure detector holds down, and (`sloppy`) the stand-ins.
    /// The rules (pending nodes counted while the cluster is smaller than N, which nodes may
    /// stand in) are [`Placement::new`]'s.
    pub fn placement(&self, key: &str, n: usize, sloppy: bool) -> Placement {
        let rings = self.rings.read().clone();
        let replicas = rings.read.preference_list(key.as_bytes(), n);
        let next = rings.pending.preference_list(key.as_bytes(), n);
        // Sloppy quorum (Dynamo 4.6): the nodes after the key's replicas on its ring walk.
        let walk = sloppy.then(|| rings.read.walk(key.as_bytes()));
        let gossip = self.gossip.lock();
        Placement::new(replicas, next, n, &self.id, |id| gossip.is_down(id), walk)
    }

    /// Every member as `status` shows it, sorted by id.
    pub fn member_views(&self) -> Vec<MemberView> {
        let now = self.clock_ms();
        let wall = (self.clock.now_ms() / 1000) as i64;
        let g = self.gossip.lock();
        g.table()
            .members()
            .map(|m| {
                let silence_ms = if m.id == self.id {
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
    pub async fn set_local_state(&self, state: MemberState) {
        {
            let mut g = self.gossip.lock();
            if g.table_mut().set_local_state(state) {
                let now = self.clock_ms();
                g.changed(&self.id, now);
            }
        }
        self.handle_events();
        tracing::info!(node = self.id, state = ?state, "local state changed");
        self.announce().await;
    }

    /// One exchange with every known peer; returns how many answered.
    pub async fn announce(&self) -> usize {
        let outgoing = self.gossip.lock().announce();
        let calls = outgoing
            .into_iter()
            .map(|o| async move { self.exchange(o).await.is_ok() });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    /// Admin AddNode: one gossip exchange with the node at `address`, which must turn out to
    /// be `id`.
    pub async fn introduce(&self, id: &str, address: &str) -> Result<()> {
        // First look without telling: a Syn that mentions nothing gets the peer's records
        // back and teaches it nothing.
        let probe = Syn {
            from: self.id.clone(),
            digests: Vec::new(),
        };
        let theirs = self
            .transport
            .syn(address, probe, self.settings.request_timeout, true)
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
        .await
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
            if id == self.id {
                return Err(NodeError::RemoveSelf);
            }
            g.table_mut().mark_left(&id);
            let now = self.clock_ms();
            g.changed(&id, now);
            id
        };
        self.handle_events();
        Ok(id)
    }

    fn heard_from_node(&self, id: &str) {
        if let Some(address) = self.address_of(id) {
            self.transport.heard_from(&address);
        }
    }

    /// One three-way exchange with the peer `o` names.
    async fn exchange(&self, o: Outgoing) -> Result<()> {
        let ack = self
            .transport
            .syn(&o.address, o.syn, self.gossip_timeout(), false)
            .await?;
        self.metrics
            .gossip_messages_sent
            .fetch_add(1, Ordering::Relaxed);
        let ack2 = {
            let mut g = self.gossip.lock();
            let now = self.clock_ms();
            g.on_ack(now, ack)
        };
        self.handle_events();
        if let Some(ack2) = ack2 {
            self.transport
                .ack2(&o.address, ack2, self.gossip_timeout())
                .await?;
        }
        Ok(())
    }

    fn gossip_timeout(&self) -> Duration {
        let s = &self.settings;
        s.request_timeout
            .min(s.gossip_interval.max(Duration::from_millis(500)) * 2)
    }

    /// Acts on what the gossiper reported: rebuilds the rings and saves the table when a
    /// record changed, logs status changes.
    fn handle_events(&self) {
        // Held from draining the events to saving the table, so that an older copy of the
        // table can never overwrite the rings built from a newer one.
        let _order = self.save_order.lock();
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
                self.metrics.status_changes.fetch_add(1, Ordering::Relaxed);
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
        let Some(table) = table else { return };
        // Spread the change now rather than at the next round.
        self.push_now.notify_one();
        let rings = Rings::of(&table);
        let mut current = self.rings.write();
        if current.read != rings.read || current.pending != rings.pending {
            *self.ring_changed_at.lock() = Instant::now();
        }
        *current = rings;
        drop(current);
        if let Err(e) = members_file::save(&self.settings.data_dir, &self.id, &table) {
            tracing::warn!(error = %e, "could not save the member table");
        }
        if local_state == MemberState::Joining && *self.local_state.borrow() != MemberState::Joining
        {
            // Told it was removed while down: it joins again, from an empty store, and
            // serves only after that.
            self.serving.store(false, Ordering::Release);
            self.stale_data.store(true, Ordering::Release);
        }
        self.local_state.send_if_modified(|s| {
            let changed = *s != local_state;
            *s = local_state;
            changed
        });
    }

    /// Ticks the gossiper and runs the exchanges it asks for, until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let s = &self.settings;
        let step = (s.gossip_interval.min(s.heartbeat_interval) / 4)
            .clamp(Duration::from_millis(10), Duration::from_millis(100));
        let max_exchanges = 4 * s.fanout.max(1);
        let mut tick = tokio::time::interval(step);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut exchanges = tokio::task::JoinSet::new();
        let mut last_push = Instant::now();
        loop {
            let push = tokio::select! {
                _ = tick.tick() => false,
                _ = self.push_now.notified() => true,
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
                    last_push = Instant::now();
                    g.push_round()
                } else {
                    g.tick(now)
                }
            };
            self.handle_events();
            for o in outgoing {
                // Exchanges still running from earlier rounds are not piled up.
                if exchanges.len() >= max_exchanges {
                    break;
                }
                let this = Arc::clone(&self);
                exchanges.spawn(async move {
                    let address = o.address.clone();
                    if let Err(e) = this.exchange(o).await {
                        this.exchange_failed(&address, &e);
                    }
                });
            }
        }
        exchanges.shutdown().await;
    }

    /// Records a failed exchange: at debug level (peers go down, that is what the failure
    /// detector is for), but a TLS failure as a warning, at most every 30 seconds.
    fn exchange_failed(&self, peer: &str, error: &NodeError) {
        let text = error.to_string();
        *self.last_error.lock() = Some(format!("{peer}: {text}"));
        if is_tls_failure(&text) {
            let mut warned = self.tls_warned_at.lock();
            if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                *warned = Some(Instant::now());
                tracing::warn!(peer, error = %text, "TLS with a peer failed (certificates or CA?)");
                return;
            }
        }
        tracing::debug!(peer, error = %text, "gossip exchange failed");
    }
}

impl<T: GossipTransport> GossipAnswer for Membership<T> {
    /// Answers a peer's opening message.
    fn on_syn(&self, syn: Syn) -> Ack {
        let from = syn.from.clone();
        let ack = {
            let mut g = self.gossip.lock();
            let now = self.clock_ms();
            g.on_syn(now, syn)
        };
        self.heard_from_node(&from);
        self.metrics
            .gossip_messages_received
            .fetch_add(1, Ordering::Relaxed);
        self.handle_events();
        ack
    }

    /// Takes a peer's closing message.
    fn on_ack2(&self, ack2: Ack2) {
        let from = ack2.from.clone();
        {
            let mut g = self.gossip.lock();
            let now = self.clock_ms();
            g.on_ack2(now, ack2);
        }
        self.heard_from_node(&from);
        self.handle_events();
    }
}

impl<T: GossipTransport> HintRoutes for Membership<T> {
    /// A node that left (or is unknown) gets nothing more: its hints go; one held down, or
    /// whose address is not known yet, keeps them for later.
    fn route(&self, target: &str) -> HintRoute {
        let left = self
            .gossip
            .lock()
            .table()
            .get(target)
            .is_none_or(|m| m.state == MemberState::Left);
        if left {
            return HintRoute::Drop;
        }
        if self.is_down(target) {
            return HintRoute::Hold;
        }
        self.address_of(target)
            .map_or(HintRoute::Hold, HintRoute::Deliver)
    }
}

/// Whether an error is about certificates or the TLS handshake (a misconfiguration that
/// repeats at every round until someone fixes it), not the peer being down.
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
