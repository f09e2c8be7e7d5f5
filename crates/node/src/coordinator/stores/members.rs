//! The second ring's membership mode ([`StoreCluster::form`], [`StoreCluster::join`],
//! [`StoreCluster::decommission`]): each node runs its real membership, gossiping over the
//! twin, and its streaming component; a node learns where keys live from its own
//! membership (so placements differ while news travels, joining and leaving nodes get
//! writes as pending replicas, and the failure detector holds crashed nodes down); the last
//! node is started only when the run joins it, and another may decommission. Requests
//! through a node that is joining or has left are refused, as a node refuses them.

use std::sync::Arc;
use std::time::Duration;

use distkv_cluster::{MemberState, NodeId, Ring};
use parking_lot::Mutex;

use super::{Parts, StoreCluster, address};
use crate::counters::Metrics;
use crate::error::{NodeError, Result};
use crate::handoff::Handoff;
use crate::hints::HintStore;
use crate::membership::Membership;
use crate::ops::Operations;
use crate::repair::{AntiEntropy, Rounds, RoundsParts};
use crate::storage::Store;
use crate::streaming::{Streaming, StreamingParts};
use crate::twin::MemPeers;
use crate::twin::house::{Puller, eventually};

/// A node's membership (gossiping over the twin) and streaming, with their workers.
pub(super) struct MemberParts {
    pub(super) membership: Arc<Membership<MemPeers>>,
    pub(super) streaming: Arc<Streaming<MemPeers>>,
    pub(super) stop: tokio::sync::watch::Sender<bool>,
    pub(super) workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A running node's [`MemberParts`] (it holds the node's parts while it is used).
pub(super) struct MemberPartsRef(pub(super) Arc<Parts>);

impl std::ops::Deref for MemberPartsRef {
    type Target = MemberParts;

    fn deref(&self) -> &MemberParts {
        self.0
            .member
            .as_ref()
            .expect("made only for parts with a membership")
    }
}

impl StoreCluster {
    /// Membership mode: waits until every node started is normal and sees them all in its
    /// ring (a cluster formed by its first node, the others joining through it).
    pub async fn form(&self) {
        if !self.members {
            return;
        }
        let started: Vec<NodeId> = self.started.lock().iter().cloned().collect();
        let formed = || {
            started.iter().all(|n| {
                self.member(n).is_some_and(|m| {
                    m.membership.local_state() == MemberState::Normal
                        && m.membership.ring().nodes() == started
                })
            })
        };
        eventually("the cluster formed", formed).await;
    }

    /// Membership mode: node `id`'s membership, while it runs.
    pub(super) fn member(&self, id: &str) -> Option<MemberPartsRef> {
        let parts = self.slot(id).parts.lock().clone()?;
        parts.member.as_ref()?;
        Some(MemberPartsRef(parts))
    }

    /// Membership mode: node `id`'s membership (from the table its directory holds, the
    /// first node seeding the others) and streaming, reachable through the twin, their
    /// workers running.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_member(
        &self,
        id: &str,
        home: &std::path::Path,
        store: &Store,
        hints: &HintStore,
        repair: &Arc<AntiEntropy<MemPeers>>,
        handoff: &Arc<Handoff<MemPeers>>,
        metrics: Arc<Metrics>,
    ) -> MemberParts {
        let first = self.slots.keys().next().expect("nodes");
        let mut cfg = crate::config::test_config(id, &address(id));
        if id != first {
            cfg.seeds = vec![address(first)];
        }
        cfg.data_dir = home.to_path_buf();
        cfg.quorum = self.settings.quorum;
        cfg.virtual_nodes = 16;
        // Gossip five times a second: joins and decommissions finish while clients still
        // send requests (a run's requests span a few simulated seconds).
        cfg.gossip_interval = Duration::from_millis(200);
        cfg.heartbeat_interval = Duration::from_millis(200);
        cfg.suspect_timeout = Duration::from_secs(1);
        cfg.dead_timeout = Duration::from_secs(3);
        let saved = crate::members_file::load(home)
            .unwrap_or_else(|e| panic!("{id}'s member table: {e}"))
            .unwrap_or_default();
        let membership = Arc::new(Membership::new(
            &cfg,
            saved,
            self.peers.clone(),
            Arc::default(),
            Arc::clone(&metrics),
            self.clock.clone(),
        ));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let ops = Arc::new(Operations::default());
        // Rounds for the final comparisons of a join or decommission, and with tombstone GC
        // on, on a timer with their purges, as a node runs them; the settling runs
        // cluster-wide comparisons either way.
        let rounds = Rounds::new(RoundsParts {
            id: id.to_string(),
            replicas: self.settings.quorum.n,
            interval: self.tombstone_gc.map_or(Duration::ZERO, |gc| gc.interval),
            in_flight: crate::coordinator::in_flight_bound(self.settings.request_timeout),
            store: store.clone(),
            hints: hints.clone(),
            membership: Arc::clone(&membership),
            anti_entropy: Arc::clone(repair),
            ops: Arc::clone(&ops),
            metrics: Arc::clone(&metrics),
            clock: self.clock.clone(),
        });
        let streaming = Streaming::new(StreamingParts {
            id: id.to_string(),
            replicas: self.settings.quorum.n,
            seeds: cfg.seeds.clone(),
            bytes_per_sec: 0,
            drain_within: Duration::from_secs(10),
            store: store.clone(),
            hints: hints.clone(),
            membership: Arc::clone(&membership),
            transport: self.peers.clone(),
            rounds: Arc::clone(&rounds),
            handoff: Arc::clone(handoff),
            ops,
            metrics,
            stop: stopped.clone(),
        });
        let at = address(id);
        self.peers.add_gossip(&at, membership.clone());
        self.peers
            .add_puller(&at, Arc::new(Puller(Arc::clone(&streaming))));
        // Hints go out during the run too, as a node sends them (once a second).
        let delivery = {
            let (handoff, membership, stop) = (
                Arc::clone(handoff),
                Arc::clone(&membership),
                stopped.clone(),
            );
            async move {
                handoff
                    .run(membership.as_ref(), Duration::from_secs(1), stop)
                    .await
            }
        };
        let workers = vec![
            tokio::spawn(Arc::clone(&membership).run(stopped.clone())),
            tokio::spawn(Arc::clone(&streaming).run()),
            tokio::spawn(rounds.run(stopped)),
            tokio::spawn(delivery),
        ];
        MemberParts {
            membership,
            streaming,
            stop,
            workers: Mutex::new(workers),
        }
    }

    /// Membership mode: the read ring of the first node running that serves, the ring the
    /// checker compares replicas by.
    pub(super) fn reference_ring(&self) -> Option<Arc<Ring>> {
        self.slots.keys().find_map(|n| {
            let m = self.member(n)?;
            let serving =
                m.membership.serving() && m.membership.local_state() == MemberState::Normal;
            serving.then(|| m.membership.ring())
        })
    }

    /// Membership mode: refuses a request through `id` while it joins or once it left, as
    /// a node does.
    pub(super) fn check_serving(&self, id: &str) -> Result<()> {
        let Some(m) = self.member(id) else {
            return Ok(());
        };
        match m.membership.local_state() {
            MemberState::Left => Err(NodeError::WrongState("left")),
            _ if !m.membership.serving() => Err(NodeError::Joining {
                node: id.to_string(),
                progress: None,
            }),
            _ => Ok(()),
        }
    }

    /// Membership mode: starts node `id` for the first time; it joins through the first
    /// node. Returns whether it started (it had not).
    pub fn join(&self, id: &str) -> Result<bool> {
        if !self.members || self.started.lock().contains(id) {
            return Ok(false);
        }
        self.open(id)?;
        if self.wipe_joiner.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(m) = self.member(id)
        {
            let (membership, store) = (Arc::clone(&m.membership), m.0.store.clone());
            // Gives the engines up if the joiner crashes first, so that it can start again.
            let mut crashes = self.crashes(id);
            tokio::spawn(async move {
                let mut state = membership.local_state_watch();
                while *state.borrow_and_update() != MemberState::Normal {
                    tokio::select! {
                        changed = state.changed() => {
                            if changed.is_err() {
                                return;
                            }
                        }
                        _ = crashes.changed() => return,
                    }
                }
                let _ = store.delete_all().await;
            });
        }
        Ok(true)
    }

    /// Plants a bug on purpose (the checker's test): the joiner loses what it holds the
    /// moment it turns normal, as a join that streamed and compared nothing would leave it.
    pub fn plant_join_without_data(&self) {
        self.wipe_joiner
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Membership mode: node `id`'s state as it sees itself, while it runs.
    pub fn member_state(&self, id: &str) -> Option<MemberState> {
        let m = self.member(id)?;
        let state = m.membership.local_state();
        (state != MemberState::Normal || m.membership.serving()).then_some(state)
    }

    /// Membership mode: starts node `id`'s decommission; whether it started (the node runs,
    /// is normal, and enough nodes would remain).
    pub fn decommission(&self, id: &str) -> bool {
        self.member(id).is_some_and(|m| {
            m.membership.local_state() == MemberState::Normal
                && m.streaming.start_decommission().is_ok()
        })
    }

    /// Membership mode: waits (bounded) until no join or decommission is under way in any
    /// running node's view and all of them see one ring.
    pub(super) async fn settle_membership(&self) {
        let settled = || {
            let running: Vec<MemberPartsRef> =
                self.slots.keys().filter_map(|n| self.member(n)).collect();
            let rings: Vec<_> = running
                .iter()
                .filter(|m| m.membership.local_state() != MemberState::Left)
                .map(|m| m.membership.rings())
                .collect();
            running.iter().all(|m| {
                matches!(
                    m.membership.local_state(),
                    MemberState::Normal | MemberState::Left
                ) && m.membership.serving()
            }) && rings
                .windows(2)
                .all(|w| w[0].read.nodes() == w[1].read.nodes())
                && rings.iter().all(|r| r.read.nodes() == r.pending.nodes())
        };
        eventually("joins and decommissions settled", settled).await;
    }
}
