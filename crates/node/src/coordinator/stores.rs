//! The simulation's second ring: a cluster whose nodes are the node's real components over
//! real engines in temporary directories — the store, the hint store, the coordinator with its
//! [`StoreReplica`] (dots kept in the hint store, versions stamped by a clock that follows
//! simulated time), hinted handoff and anti-entropy — reaching each other in process: replica
//! calls through [`StoreTransport`] with the twin's faults ([`super::memory::Fault`]; a
//! forgetful replica is the first ring's only), hints
//! and Merkle sessions through [`MemPeers`]. Every node is a replica of every key, as in the
//! first ring. Engine work runs on tokio's blocking pool, which holds a paused clock still
//! while it runs, and the data stores do not wait for syncs, so a seed replays exactly.
//!
//! After the faults heal, the cluster settles the way a real one does without any client:
//! every node delivers its hints, then every pair of nodes runs an anti-entropy session.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use distkv_cluster::{ConflictMode, Consistency, NodeId, Siblings, TokenRange};
use parking_lot::Mutex;

use super::grpc::StoreReplica;
use super::memory::{Fault, exchange};
use super::sim::SimCluster;
use super::{Coordinator, FORWARD_MARGIN, Placement, Settings, Transport, Write};
use crate::clock::TokioClock;
use crate::error::{NodeError, Result};
use crate::handoff::{Handoff, HintRoute, HintRoutes};
use crate::hints::HintStore;
use crate::node::Metrics;
use crate::repair::AntiEntropy;
use crate::storage::Store;
use crate::transport::memory::MemPeers;

/// One node's components.
struct Parts {
    store: Store,
    hints: HintStore,
    coordinator: Coordinator<StoreTransport, StoreReplica>,
    repair: AntiEntropy<MemPeers>,
    handoff: Handoff<MemPeers>,
}

/// Nodes on real engines, each a replica of every key.
pub struct StoreCluster {
    _dir: tempfile::TempDir,
    parts: BTreeMap<NodeId, Parts>,
    faults: Mutex<BTreeMap<NodeId, Fault>>,
    placement: Placement,
    settings: Settings,
}

/// Hints go straight to their node (addresses are node ids here).
struct Everyone;

impl HintRoutes for Everyone {
    fn route(&self, target: &str) -> HintRoute {
        HintRoute::Deliver(target.to_string())
    }
}

impl StoreCluster {
    /// A cluster of `nodes` whose coordinators run with `settings`.
    pub fn new(nodes: &[&str], settings: Settings) -> Result<Arc<StoreCluster>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let peers = MemPeers::default();
        let clock = Arc::new(TokioClock::starting_at(1_700_000_000_000));
        let mut opened = Vec::new();
        for n in nodes {
            let opts = distkv_lsm::Options {
                sync: distkv_lsm::SyncPolicy::Never,
                memtable_bytes: 1 << 20,
                ..distkv_lsm::Options::default()
            };
            let store = Store::open(
                &dir.path().join(n).join("storage"),
                opts,
                ConflictMode::Siblings,
            )?;
            let hints = HintStore::open(&dir.path().join(n).join("hints"))?;
            let replica = StoreReplica::with_clock(
                n.to_string(),
                store.clone(),
                hints.clone(),
                clock.clone(),
            )?;
            opened.push((n.to_string(), store, hints, replica));
        }
        let cluster = Arc::new_cyclic(|me: &Weak<StoreCluster>| {
            let mut parts = BTreeMap::new();
            for (n, store, hints, replica) in opened {
                let transport = StoreTransport {
                    cluster: me.clone(),
                    from: n.clone(),
                };
                let metrics = Arc::new(Metrics::default());
                let coordinator =
                    Coordinator::new(transport, replica, settings.clone(), Arc::clone(&metrics));
                let repair = AntiEntropy::new(store.clone(), peers.clone(), Arc::clone(&metrics));
                let handoff = Handoff::new(hints.clone(), peers.clone(), metrics);
                peers.add(&n, Arc::clone(repair.server()));
                peers.add_hints(&n, hints.clone());
                parts.insert(
                    n,
                    Parts {
                        store,
                        hints,
                        coordinator,
                        repair,
                        handoff,
                    },
                );
            }
            StoreCluster {
                _dir: dir,
                parts,
                faults: Mutex::new(nodes.iter().map(|n| (n.to_string(), Fault::None)).collect()),
                placement: Placement {
                    replicas: nodes.iter().map(|n| n.to_string()).collect(),
                    ..Placement::default()
                },
                settings,
            }
        });
        Ok(cluster)
    }

    fn parts(&self, id: &str) -> &Parts {
        self.parts
            .get(id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    /// Every node delivers its hints, then every pair of nodes runs an anti-entropy session.
    async fn deliver_and_repair(&self) -> Result<()> {
        for p in self.parts.values() {
            p.handoff.deliver(&Everyone).await?;
        }
        let names: Vec<&NodeId> = self.parts.keys().collect();
        let all = [TokenRange::new(0, 0)];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                self.parts(a).repair.sync_ranges(b, &all).await?;
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

impl SimCluster for StoreCluster {
    async fn write(&self, id: &str, write: Write) -> Result<Siblings> {
        self.parts(id)
            .coordinator
            .write(&self.placement, write, false)
            .await
    }

    async fn read_at(&self, id: &str, key: &str, level: Option<Consistency>) -> Result<Siblings> {
        self.parts(id)
            .coordinator
            .read(&self.placement, key, level)
            .await
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
        for p in self.parts.values() {
            done &= p.coordinator.drain(within).await;
        }
        done
    }

    /// What a cluster does with no client once its faults healed: every node delivers its
    /// hints (and holds none after), then every pair of nodes compares and repairs all their
    /// keys. No client read repairs anything.
    async fn settle(&self, _keys: &[String], nodes: &[String]) {
        self.deliver_and_repair()
            .await
            .unwrap_or_else(|e| panic!("the healed cluster did not settle: {e}"));
        for n in nodes {
            let held = self.parts(n).hints.count().unwrap_or(usize::MAX);
            assert_eq!(held, 0, "{n} still holds hints after delivering them");
        }
    }

    async fn versions(&self, id: &str, key: &str) -> Siblings {
        self.parts(id)
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
    /// Runs `work` on `to`'s parts as a call from this node would reach them.
    fn call<R: Send + 'static, F>(
        &self,
        to: &str,
        work: impl FnOnce(Arc<StoreCluster>, String) -> F + Send + 'static,
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
            if local {
                return work(cluster, to).await;
            }
            let timeout = cluster.call_timeout();
            let target = to.clone();
            exchange(&to, fault, timeout, || {}, work(cluster, target)).await
        }
    }
}

impl Transport for StoreTransport {
    fn write(
        &self,
        to: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (key, versions) = (key.to_string(), versions.clone());
        self.call(to, move |cluster, to| async move {
            cluster
                .parts(&to)
                .store
                .merge(key, versions)
                .await
                .map(drop)
        })
    }

    fn read(&self, to: &str, key: &str) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let key = key.to_string();
        self.call(to, move |cluster, to| async move {
            cluster.parts(&to).store.read(key).await
        })
    }

    fn hint(
        &self,
        via: &str,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (target, key, versions) = (target.to_string(), key.to_string(), versions.clone());
        self.call(via, move |cluster, via| async move {
            let hints = cluster.parts(&via).hints.clone();
            tokio::task::spawn_blocking(move || hints.add(&target, &key, &versions))
                .await
                .map_err(|_| NodeError::ShuttingDown)?
        })
    }

    /// Never needed: every node is a replica of every key and coordinates its own writes.
    fn forward(
        &self,
        to: &str,
        _write: &Write,
        _timeout: Duration,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        std::future::ready(Err(NodeError::UnknownNode(to.to_string())))
    }
}
