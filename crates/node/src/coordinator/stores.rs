//! The simulation's second ring: a cluster whose nodes are the node's real components over
//! real engines in temporary directories — the store, the hint store, the coordinator with its
//! [`StoreReplica`] (dots kept in the hint store, versions stamped by a clock that follows
//! simulated time), hinted handoff and anti-entropy — reaching each other in process: replica
//! calls through [`StoreTransport`] with the twin's faults ([`super::memory::Fault`]; a
//! forgetful replica is the first ring's only), hints
//! and Merkle sessions through [`MemPeers`]. Keys are placed on a ring of the nodes' tokens,
//! N of them a key (N may be fewer than the nodes): a node that is not a replica of a key
//! forwards a write of it to one, and anti-entropy compares what two nodes share. Engine
//! work runs on tokio's blocking pool, which holds a paused clock still while it runs, so a
//! seed replays exactly.
//!
//! A node can crash and restart ([`StoreCluster::crash`], [`StoreCluster::restart`]): its
//! requests in flight fail, calls to it are refused, its coordinator's background work stops,
//! its engines are closed, and a restart opens them again from its directory (replaying their
//! logs) with a new coordinator, whose dots must never repeat one from before. A crash is a
//! machine's ([`distkv_lsm::Db::crash`] on both engines): what the engines had applied but
//! not synced is lost. The data stores sync every write before it is acknowledged, as a node
//! does by default, but their group commits are run by the node's simulated disk ([`disk`]:
//! each sync asked for happens a seeded 0.2 to 20 ms later, covering what was applied
//! meanwhile) rather than the engine's sync thread ([`distkv_lsm::Db::hold_syncs`]), so that
//! when a crash comes the writes it loses are the same in every replay. The hint stores sync
//! on their own, every write before it returns.
//!
//! After the faults heal, the cluster settles the way a real one does without any client:
//! every node delivers its hints, then every pair of nodes runs an anti-entropy session.
//!
//! In membership mode (`members.rs`) each node also runs its real membership and streaming
//! components: rings come from gossip, the last node joins during the run and another may
//! decommission; the cluster then settles once every join and decommission has finished.

mod members;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use distkv_cluster::placement::shared_ranges;
use distkv_cluster::{ConflictMode, Consistency, NodeId, Ring, Siblings, key_token, node_tokens};
use parking_lot::Mutex;

use super::memory::{Fault, exchange};
use super::replica::StoreReplica;
use super::sim::SimCluster;
use super::{Coordinator, FORWARD_MARGIN, Placement, ReplicaTransport, Settings, Write};
use crate::clock::TokioClock;
use crate::counters::Metrics;
use crate::error::{NodeError, PeerFailure, Result};
use crate::handoff::{Handoff, HintRoute, HintRoutes};
use crate::hints::HintStore;
use crate::repair::AntiEntropy;
use crate::storage::Store;
use crate::twin::MemPeers;
use members::MemberParts;

/// One node's components, as one run of it opened them.
struct Parts {
    store: Store,
    hints: HintStore,
    coordinator: Coordinator<StoreTransport, StoreReplica>,
    repair: Arc<AntiEntropy<MemPeers>>,
    handoff: Arc<Handoff<MemPeers>>,
    /// Membership mode: the node's membership and streaming, and their workers.
    member: Option<MemberParts>,
}

/// How often each node of a membership-mode run compares with its peers, and how old a
/// tombstone must be before a purge after a full round may drop it (`-anti-entropy-interval`,
/// `-tombstone-gc-grace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TombstoneGc {
    pub interval: Duration,
    pub grace: Duration,
}

/// How the nodes' data stores reach their disks: every write is synced before it is
/// acknowledged, in group commits that take `sync_delay` each (run by [`disk`], not the
/// engine's sync thread, so that a seed replays exactly) and that a crash cuts short: what was
/// applied and not yet synced is lost, as in a machine crash.
#[derive(Clone, Copy, Debug)]
pub struct Disks {
    pub sync_delay: Duration,
    /// The planted bug: writes are acknowledged at once and left to the OS to sync, and a
    /// crash loses everything the WAL held (a machine crash before the OS wrote it back).
    pub ack_before_sync: bool,
}

/// A node's disk: each sync its data store asks for happens `delay` later, covering whatever
/// was applied meanwhile (a group commit), until the node crashes.
async fn disk(
    db: distkv_lsm::Db,
    asked: Arc<tokio::sync::Notify>,
    delay: Duration,
    mut crashes: tokio::sync::watch::Receiver<u64>,
) {
    loop {
        tokio::select! {
            _ = asked.notified() => {}
            _ = crashes.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = crashes.changed() => return,
        }
        if db.sync_held().is_err() {
            return;
        }
    }
}

/// A node: its components while it runs, and a signal that fires when it crashes.
struct Slot {
    parts: Mutex<Option<Arc<Parts>>>,
    crashes: tokio::sync::watch::Sender<u64>,
    /// The node's counters, kept across its restarts so that a run can sum them.
    metrics: Arc<Metrics>,
}

/// Nodes on real engines, each a replica of every key.
pub struct StoreCluster {
    dir: tempfile::TempDir,
    slots: BTreeMap<NodeId, Slot>,
    faults: Mutex<BTreeMap<NodeId, Fault>>,
    ring: Ring,
    settings: Settings,
    /// Sloppy quorum: the rest of a key's ring walk stands in for its failed replicas.
    sloppy: bool,
    /// Hint calls that reached a stand-in.
    stand_in_hints: Arc<std::sync::atomic::AtomicUsize>,
    /// Writes the data stores had applied but not synced when their node crashed.
    lost_unsynced: std::sync::atomic::AtomicUsize,
    peers: MemPeers,
    clock: Arc<TokioClock>,
    /// Membership mode: each node learns the ring from its own membership, gossiping over
    /// the twin (so placements differ while news travels, and the failure detector holds
    /// nodes down), and the last node joins only when [`StoreCluster::join`] starts it.
    members: bool,
    /// Membership mode: anti-entropy rounds and tombstone purges during the run.
    tombstone_gc: Option<TombstoneGc>,
    /// How the nodes' data stores reach their disks.
    disks: Disks,
    /// The nodes started so far (the joiner is not, until it joins).
    started: Mutex<BTreeSet<NodeId>>,
    /// A bug planted on purpose ([`StoreCluster::plant_join_without_data`]).
    wipe_joiner: std::sync::atomic::AtomicBool,
    me: Weak<StoreCluster>,
}

/// Where node `id` is reached through the twin.
pub(super) fn address(id: &str) -> String {
    format!("{id}:7000")
}

/// Hints go straight to their node (addresses are node ids here).
struct Everyone;

impl HintRoutes for Everyone {
    fn route(&self, target: &str) -> HintRoute {
        HintRoute::Deliver(address(target))
    }
}

/// What a request to a crashed node, or in flight on one when it crashed, gets.
fn crashed(id: &str) -> NodeError {
    NodeError::Peer {
        peer: id.to_string(),
        failure: PeerFailure::Unreachable("the node crashed".into()),
    }
}

/// `work` on node `id`, unless it crashes first (`crashes` taken before `work` was made).
async fn until_crash<R>(
    id: &str,
    mut crashes: tokio::sync::watch::Receiver<u64>,
    work: impl Future<Output = Result<R>>,
) -> Result<R> {
    tokio::select! {
        r = work => r,
        _ = crashes.changed() => Err(crashed(id)),
    }
}

impl StoreCluster {
    /// A cluster of `nodes` whose coordinators run with `settings`; with `members`, in
    /// membership mode (the last of `nodes` joins later).
    pub fn new(
        nodes: &[&str],
        settings: Settings,
        sloppy: bool,
        members: bool,
        disks: Disks,
        tombstone_gc: Option<TombstoneGc>,
    ) -> Result<Arc<StoreCluster>> {
        let cluster = Arc::new_cyclic(|me: &Weak<StoreCluster>| StoreCluster {
            dir: tempfile::tempdir().expect("a temporary directory"),
            slots: nodes
                .iter()
                .map(|n| {
                    let slot = Slot {
                        parts: Mutex::new(None),
                        crashes: tokio::sync::watch::channel(0).0,
                        metrics: Arc::default(),
                    };
                    (n.to_string(), slot)
                })
                .collect(),
            faults: Mutex::new(nodes.iter().map(|n| (n.to_string(), Fault::None)).collect()),
            ring: {
                let mut ring = Ring::new();
                for n in nodes {
                    ring.add_node_tokens(n, &node_tokens(n, 16));
                }
                ring
            },
            settings,
            sloppy,
            stand_in_hints: Arc::default(),
            lost_unsynced: Default::default(),
            peers: MemPeers::default(),
            clock: Arc::new(TokioClock::starting_at(1_700_000_000_000)),
            members,
            disks,
            tombstone_gc,
            started: Mutex::default(),
            wipe_joiner: Default::default(),
            me: me.clone(),
        });
        let first = if members {
            nodes.len() - 1
        } else {
            nodes.len()
        };
        for n in &nodes[..first] {
            cluster.open(n)?;
        }
        Ok(cluster)
    }

    /// Opens node `id`'s engines from its directory and starts its components.
    fn open(&self, id: &str) -> Result<()> {
        // A memtable no run fills: switching one syncs the WAL on its own.
        let opts = distkv_lsm::Options {
            sync: match self.disks.ack_before_sync {
                false => distkv_lsm::SyncPolicy::EveryCommit,
                true => distkv_lsm::SyncPolicy::Never,
            },
            memtable_bytes: 8 << 20,
            ..distkv_lsm::Options::default()
        };
        let home = self.dir.path().join(id);
        let store = Store::open(&home.join("storage"), opts, ConflictMode::Siblings)?;
        if !self.disks.ack_before_sync {
            let asked = Arc::new(tokio::sync::Notify::new());
            store.db().hold_syncs({
                let asked = Arc::clone(&asked);
                move || asked.notify_one()
            });
            tokio::spawn(disk(
                store.db().clone(),
                asked,
                self.disks.sync_delay,
                self.crashes(id),
            ));
        }
        let hints = HintStore::open(&home.join("hints"))?;
        if let Some(gc) = self.tombstone_gc {
            store.set_gc_grace(gc.grace.as_millis() as u64, self.clock.clone());
        }
        let replica = StoreReplica::with_clock(
            id.to_string(),
            store.clone(),
            hints.clone(),
            self.clock.clone(),
        )?;
        let transport = StoreTransport {
            cluster: self.me.clone(),
            from: id.to_string(),
        };
        let metrics = Arc::clone(&self.slot(id).metrics);
        let coordinator = Coordinator::new(
            transport,
            replica,
            self.settings.clone(),
            Arc::clone(&metrics),
        );
        let repair = Arc::new(AntiEntropy::new(
            store.clone(),
            self.peers.clone(),
            Arc::clone(&metrics),
        ));
        let handoff = Arc::new(Handoff::new(
            hints.clone(),
            self.peers.clone(),
            Arc::clone(&metrics),
        ));
        let at = address(id);
        self.peers.add(&at, Arc::clone(repair.server()));
        self.peers.add_hints(&at, hints.clone());
        let member = self
            .members
            .then(|| self.start_member(id, &home, &store, &hints, &repair, &handoff, metrics));
        *self.slot(id).parts.lock() = Some(Arc::new(Parts {
            store,
            hints,
            coordinator,
            repair,
            handoff,
            member,
        }));
        self.started.lock().insert(id.to_string());
        Ok(())
    }

    /// Where `key` lives: its N replicas on the ring, and with a sloppy quorum the rest of
    /// its ring walk as stand-ins. No failure detector runs here: a replica is known to have
    /// failed only when a call to it fails.
    pub fn placement(&self, key: &str) -> Placement {
        if self.members {
            return self
                .reference_ring()
                .map_or_else(Placement::default, |ring| {
                    let n = self.settings.quorum.n;
                    Placement::new(
                        ring.preference_list(key.as_bytes(), n),
                        Vec::new(),
                        n,
                        "",
                        |_| false,
                        None,
                    )
                });
        }
        let token = key_token(key.as_bytes());
        let n = self.settings.quorum.n;
        let replicas = self.ring.preference_list_for_token(token, n);
        let walk = self
            .sloppy
            .then(|| self.ring.preference_list_for_token(token, usize::MAX));
        Placement::new(replicas, Vec::new(), n, "", |_| false, walk)
    }

    /// Where node `at` places `key`: its membership's view in membership mode (pending
    /// nodes, nodes it holds down), the fixed ring otherwise.
    fn placement_at(&self, at: &str, key: &str) -> Placement {
        match self.member(at) {
            Some(m) => m
                .membership
                .placement(key, self.settings.quorum.n, self.sloppy),
            None => self.placement(key),
        }
    }

    fn slot(&self, id: &str) -> &Slot {
        self.slots
            .get(id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    /// Node `id`'s components, unless it is crashed.
    fn parts(&self, id: &str) -> Result<Arc<Parts>> {
        self.slot(id)
            .parts
            .lock()
            .clone()
            .ok_or_else(|| crashed(id))
    }

    /// Watches for `id`'s next crash; take it before the components a request will use.
    fn crashes(&self, id: &str) -> tokio::sync::watch::Receiver<u64> {
        self.slot(id).crashes.subscribe()
    }

    /// Crashes node `id`: requests in flight on it fail, calls to it are refused, its
    /// coordinator's background work stops, and once nothing holds them any more its engines
    /// die without closing ([`distkv_lsm::Db::crash`]: no last sync, nothing held in the
    /// process written).
    pub async fn crash(&self, id: &str) {
        let Some(parts) = self.slot(id).parts.lock().take() else {
            return;
        };
        self.peers.remove(&address(id));
        self.slot(id).crashes.send_modify(|n| *n += 1);
        parts.coordinator.abort_background();
        if let Some(m) = &parts.member {
            // Its gossip and streaming stop; a join or decommission in progress stops at its
            // next page and resumes from its saved plan after the restart.
            let _ = m.stop.send(true);
            let workers = std::mem::take(&mut *m.workers.lock());
            for w in workers {
                let _ = w.await;
            }
        }
        // Whatever still holds the components (a request that has not seen the crash yet)
        // lets go within a round of the runtime or two.
        let started = tokio::time::Instant::now();
        while Arc::strong_count(&parts) > 1 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{id}'s components are still held a minute after it crashed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Only now, with no engine work in flight on the blocking pool: what the crash finds
        // unsynced is then the same in every replay of a seed.
        // Each write of the store is a batch of two entries (the versions, the index entry).
        let lost = parts.store.db().unsynced_entries() / 2;
        self.lost_unsynced
            .fetch_add(lost as usize, std::sync::atomic::Ordering::Relaxed);
        parts.store.crash();
        parts.hints.crash();
        if self.disks.ack_before_sync {
            // The machine went down before the OS wrote the WAL back: it is gone.
            let dir = self.dir.path().join(id).join("storage");
            for entry in std::fs::read_dir(&dir)
                .expect("the store's directory")
                .flatten()
            {
                if entry.path().extension().is_some_and(|e| e == "log") {
                    std::fs::remove_file(entry.path()).expect("a WAL file removed");
                }
            }
        }
        drop(parts);
    }

    /// Starts node `id` again from what its engines hold (nothing when it runs).
    pub fn restart(&self, id: &str) -> Result<()> {
        if self.slot(id).parts.lock().is_some() || !self.started.lock().contains(id) {
            return Ok(());
        }
        self.open(id)
    }

    /// Every node delivers its hints, then every pair of nodes runs an anti-entropy session.
    async fn deliver_and_repair(&self) -> Result<()> {
        let ring = match self.members {
            true => self.reference_ring().ok_or(NodeError::EmptyRing)?,
            false => Arc::new(self.ring.clone()),
        };
        let names: Vec<NodeId> = ring.nodes();
        let started: Vec<NodeId> = self.started.lock().iter().cloned().collect();
        for n in started {
            let p = self.parts(&n)?;
            match self.member(&n) {
                Some(m) => p.handoff.deliver(m.membership.as_ref()).await?,
                None => p.handoff.deliver(&Everyone).await?,
            };
        }
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let shared = shared_ranges(&ring, self.settings.quorum.n, a, b);
                self.parts(a)?
                    .repair
                    .sync_ranges(&address(b), &shared)
                    .await?;
            }
        }
        Ok(())
    }

    fn fault(&self, to: &str) -> Result<Fault> {
        self.faults
            .lock()
            .get(to)
            .copied()
            .ok_or_else(|| NodeError::UnknownNode(to.to_string()))
    }
}

impl Drop for StoreCluster {
    /// The twin holds each node's gossip and streaming, which hold the twin: forgetting the
    /// nodes there lets their engines close (and their threads end) with the run.
    fn drop(&mut self) {
        for id in self.slots.keys() {
            self.peers.remove(&address(id));
        }
    }
}

impl SimCluster for StoreCluster {
    async fn write(&self, id: &str, write: Write) -> Result<Siblings> {
        let crashes = self.crashes(id);
        let p = self.parts(id)?;
        self.check_serving(id)?;
        let placement = self.placement_at(id, &write.key);
        until_crash(id, crashes, p.coordinator.write(&placement, write, false)).await
    }

    async fn read_at(&self, id: &str, key: &str, level: Option<Consistency>) -> Result<Siblings> {
        let crashes = self.crashes(id);
        let p = self.parts(id)?;
        self.check_serving(id)?;
        let placement = self.placement_at(id, key);
        until_crash(id, crashes, p.coordinator.read(&placement, key, level)).await
    }

    fn set_fault(&self, id: &str, fault: Fault) {
        self.faults.lock().insert(id.to_string(), fault);
    }

    /// As a node's peer channels wait.
    fn call_timeout(&self) -> Duration {
        self.settings.request_timeout + FORWARD_MARGIN
    }

    async fn drain(&self, within: Duration) -> bool {
        let mut done = true;
        for n in self.slots.keys() {
            if let Ok(p) = self.parts(n) {
                done &= p.coordinator.drain(within).await;
            }
        }
        done
    }

    fn crashes(&self) -> bool {
        true
    }

    async fn crash(&self, id: &str) {
        StoreCluster::crash(self, id).await
    }

    async fn restart(&self, id: &str) {
        // The engines of a node that crashed while its crash was being carried out may still
        // be closing: a start that finds them locked tries again.
        let started = tokio::time::Instant::now();
        while let Err(e) = StoreCluster::restart(self, id) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{id} cannot start again: {e}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn joiner(&self) -> Option<String> {
        self.members
            .then(|| self.slots.keys().next_back().cloned())
            .flatten()
    }

    async fn join(&self, id: &str) -> bool {
        StoreCluster::join(self, id).unwrap_or_else(|e| panic!("{id} cannot start: {e}"))
    }

    async fn decommission(&self, id: &str) -> bool {
        StoreCluster::decommission(self, id)
    }

    fn member_state(&self, id: &str) -> Option<distkv_cluster::MemberState> {
        StoreCluster::member_state(self, id)
    }

    /// What a cluster does with no client once its faults healed: every node delivers its
    /// hints (and holds none after), then every pair of nodes compares and repairs all their
    /// keys. No client read repairs anything.
    async fn settle(&self, _keys: &[String], nodes: &[String]) {
        self.settle_membership().await;
        self.deliver_and_repair()
            .await
            .unwrap_or_else(|e| panic!("the healed cluster did not settle: {e}"));
        if let Some(gc) = self.tombstone_gc {
            // The nodes' own rounds run on until the last tombstones are past their grace
            // and purged, then the cluster is compared once more.
            tokio::time::sleep(gc.grace + gc.interval * 3).await;
            self.deliver_and_repair()
                .await
                .unwrap_or_else(|e| panic!("the healed cluster did not settle: {e}"));
        }
        for n in nodes.iter().filter(|n| self.started.lock().contains(*n)) {
            let held = self
                .parts(n)
                .map_or(usize::MAX, |p| p.hints.count().unwrap_or(usize::MAX));
            assert_eq!(held, 0, "{n} still holds hints after delivering them");
        }
    }

    fn is_replica(&self, id: &str, key: &str) -> bool {
        self.placement(key).replicas.iter().any(|r| r == id)
    }

    fn stand_in_hints(&self) -> usize {
        self.stand_in_hints
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lost_unsynced(&self) -> usize {
        self.lost_unsynced
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn tombstones_purged(&self) -> u64 {
        self.slots
            .values()
            .map(|s| {
                s.metrics
                    .tombstones_purged
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
    }

    async fn versions(&self, id: &str, key: &str) -> Siblings {
        let parts = self
            .parts(id)
            .unwrap_or_else(|e| panic!("{id} is not running at the end: {e}"));
        parts
            .store
            .read(key.to_string())
            .await
            .unwrap_or_else(|e| panic!("{id} cannot read {key}: {e}"))
    }
}

fn gone() -> NodeError {
    NodeError::ShuttingDown
}

/// One node's replica calls in a [`StoreCluster`]: its own replica directly, the others
/// under their faults.
pub struct StoreTransport {
    cluster: Weak<StoreCluster>,
    from: NodeId,
}

impl StoreTransport {
    /// Runs `work` on `to`'s components as a call from this node would reach them: refused
    /// while `to` is crashed, failed when it crashes before answering.
    fn call<R: Send + 'static, F>(
        &self,
        to: &str,
        work: impl FnOnce(Arc<Parts>) -> F + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send + 'static
    where
        F: Future<Output = Result<R>> + Send,
    {
        let cluster = self.cluster.upgrade();
        let local = to == self.from;
        let fault = cluster.as_ref().map_or(Ok(Fault::None), |c| c.fault(to));
        let to = to.to_string();
        async move {
            let cluster = cluster.ok_or_else(gone)?;
            let timeout = cluster.call_timeout();
            let reach = async {
                let crashes = cluster.crashes(&to);
                let parts = cluster.parts(&to)?;
                until_crash(&to, crashes, work(parts)).await
            };
            if local {
                return reach.await;
            }
            exchange(&to, fault, timeout, || {}, reach).await
        }
    }
}

impl ReplicaTransport for StoreTransport {
    fn write(
        &self,
        to: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (key, versions) = (key.to_string(), versions.clone());
        self.call(to, move |p| async move {
            p.store.merge(key, versions).await.map(drop)
        })
    }

    fn read(&self, to: &str, key: &str) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let key = key.to_string();
        self.call(to, move |p| async move { p.store.read(key).await })
    }

    fn hint(
        &self,
        via: &str,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (target, key, versions) = (target.to_string(), key.to_string(), versions.clone());
        let counter = self
            .cluster
            .upgrade()
            .map(|c| Arc::clone(&c.stand_in_hints));
        self.call(via, move |p| async move {
            let hints = p.hints.clone();
            crate::blocking::spawn(move || hints.add(&target, &key, &versions))
                .await
                .map_err(|_| NodeError::ShuttingDown)??;
            if let Some(c) = counter {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
    }

    /// `to` coordinates the write itself; its failure reaches this node as its message.
    fn forward(
        &self,
        to: &str,
        write: &Write,
        timeout: Duration,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let (write, peer) = (write.clone(), to.to_string());
        let placement = self
            .cluster
            .upgrade()
            .map(|c| c.placement_at(to, &write.key))
            .unwrap_or_default();
        let timed_out = NodeError::Peer {
            peer: peer.clone(),
            failure: PeerFailure::TimedOut,
        };
        let call = self.call(to, move |p| async move {
            // Boxed: this future is part of the coordinator's own write future.
            let run: std::pin::Pin<Box<dyn Future<Output = Result<Siblings>> + Send>> =
                Box::pin(async move { p.coordinator.write(&placement, write, true).await });
            run.await.map_err(|e| NodeError::Coordinator {
                peer,
                message: e.to_string(),
            })
        });
        async move {
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or(Err(timed_out))
        }
    }
}
