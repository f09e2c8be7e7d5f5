//! The coordinator's in-process twin: a cluster whose replicas are maps in memory, reached
//! through [`MemTransport`] with faults injected per node, so that quorum rounds, hints, read
//! repair and forwarding run in a test without sockets, disks or threads. Time is tokio's: on
//! paused time (`#[tokio::test(start_paused = true)]`) delays and deadlines are exact, and a
//! test waits on nothing real.
//!
//! A call's faults act where they would on a network: [`Fault::Down`] refuses the call at once
//! (as a refused connection), [`Fault::LoseRequests`] drops it before the replica sees it,
//! [`Fault::LoseReplies`] applies it and drops the answer, [`Fault::Slow`] delivers it (so it is
//! applied and answered) after a delay. A lost call fails as a timeout after
//! [`MemCluster::call_timeout`] (a forwarded write: after its own timeout), as a gRPC call with
//! its deadline does.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use distkv_cluster::{Dot, NodeId, Siblings};
use parking_lot::Mutex;

use super::WriteContext;
use super::{
    Coordinator, FORWARD_MARGIN, LocalReplica, Placement, ReplicaTransport, Settings, Write,
};
use crate::counters::Metrics;
use crate::error::{NodeError, PeerFailure, Result};

/// What happens to calls made to a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Refuses every call at once, as a node whose port is closed.
    Down,
    /// Calls never reach it (nothing is applied); the caller times out.
    LoseRequests,
    /// Calls are applied, their answers never come back; the caller times out.
    LoseReplies,
    /// Calls arrive after the delay (they are applied then) and are answered at once.
    Slow(Duration),
    /// A bug planted for the simulation checker's own test: replica writes are acknowledged
    /// and never stored (other calls work).
    Forgetful,
}

/// A hint a node keeps for another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    pub target: NodeId,
    pub key: String,
    pub versions: Siblings,
}

#[derive(Default)]
struct MemNode {
    data: BTreeMap<String, Siblings>,
    hints: Vec<Hint>,
    fault: Fault,
    /// Calls that reached it (a lost request does not).
    received: u64,
}

/// The twin's coordinator type.
pub type MemCoordinator = Coordinator<MemTransport, MemReplica>;

/// Nodes in memory, each with a coordinator; one placement for every key.
pub struct MemCluster {
    // Ordered maps: a run on paused time does the same, in the same order, every time.
    nodes: Mutex<BTreeMap<NodeId, MemNode>>,
    coordinators: Mutex<BTreeMap<NodeId, Arc<MemCoordinator>>>,
    placement: Mutex<Placement>,
    settings: Settings,
    /// Wall-clock stand-in for versions' timestamps: starts here and follows tokio's clock.
    started: tokio::time::Instant,
}

impl MemCluster {
    /// A cluster of `nodes`, every key placed on all of them in this order; each node's
    /// coordinator runs with `settings` and counts into its own metrics.
    pub fn new(nodes: &[&str], settings: Settings) -> Arc<MemCluster> {
        let cluster = Arc::new(MemCluster {
            nodes: Mutex::new(
                nodes
                    .iter()
                    .map(|n| (n.to_string(), MemNode::default()))
                    .collect(),
            ),
            coordinators: Mutex::new(BTreeMap::new()),
            placement: Mutex::new(Placement {
                replicas: nodes.iter().map(|n| n.to_string()).collect(),
                ..Placement::default()
            }),
            settings: settings.clone(),
            started: tokio::time::Instant::now(),
        });
        for n in nodes {
            let transport = MemTransport {
                cluster: Arc::downgrade(&cluster),
            };
            let local = MemReplica {
                id: n.to_string(),
                cluster: Arc::downgrade(&cluster),
                dots: AtomicU64::new(1),
            };
            let coordinator = Coordinator::new(
                transport,
                local,
                settings.clone(),
                Arc::new(Metrics::default()),
            );
            cluster
                .coordinators
                .lock()
                .insert(n.to_string(), Arc::new(coordinator));
        }
        cluster
    }

    /// Node `id`'s coordinator.
    pub fn coordinator(&self, id: &str) -> Arc<MemCoordinator> {
        Arc::clone(&self.coordinators.lock()[id])
    }

    /// Where every key lives from now on.
    pub fn set_placement(&self, placement: Placement) {
        *self.placement.lock() = placement;
    }

    pub fn placement(&self) -> Placement {
        self.placement.lock().clone()
    }

    /// What happens to calls to `id` from now on.
    pub fn set_fault(&self, id: &str, fault: Fault) {
        self.with_node(id, |n| n.fault = fault);
    }

    /// `id`'s versions of `key`.
    pub fn versions(&self, id: &str, key: &str) -> Siblings {
        self.with_node(id, |n| n.data.get(key).cloned().unwrap_or_default())
    }

    /// The hints `id` keeps.
    pub fn hints(&self, id: &str) -> Vec<Hint> {
        self.with_node(id, |n| n.hints.clone())
    }

    /// Calls that reached `id` so far.
    pub fn received(&self, id: &str) -> u64 {
        self.with_node(id, |n| n.received)
    }

    /// How long a call waits for an answer before it fails as timed out: the request timeout
    /// and the margin a forwarded write gets, as a node's peer channels.
    pub fn call_timeout(&self) -> Duration {
        self.settings.request_timeout + FORWARD_MARGIN
    }

    /// Runs `write` through `id`'s coordinator with the cluster's placement.
    pub async fn write(&self, id: &str, write: Write) -> Result<Siblings> {
        let placement = self.placement();
        self.coordinator(id).write(&placement, write, false).await
    }

    /// Reads `key` through `id`'s coordinator with the cluster's placement.
    pub async fn read(&self, id: &str, key: &str) -> Result<Siblings> {
        self.read_at(id, key, None).await
    }

    /// Reads `key` through `id`'s coordinator at `level` (`None`: the default R).
    pub async fn read_at(
        &self,
        id: &str,
        key: &str,
        level: Option<distkv_cluster::Consistency>,
    ) -> Result<Siblings> {
        let placement = self.placement();
        self.coordinator(id).read(&placement, key, level).await
    }

    /// Waits until every coordinator's background work is done (or `within` has passed).
    pub async fn drain(&self, within: Duration) -> bool {
        let all: Vec<_> = self.coordinators.lock().values().cloned().collect();
        let mut done = true;
        for c in all {
            done &= c.drain(within).await;
        }
        done
    }

    fn with_node<R>(&self, id: &str, f: impl FnOnce(&mut MemNode) -> R) -> R {
        let mut nodes = self.nodes.lock();
        let node = nodes
            .get_mut(id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"));
        f(node)
    }

    fn now_ms(&self) -> u64 {
        1_700_000_000_000 + self.started.elapsed().as_millis() as u64
    }

    /// `to`'s fault now: a call takes the fault of the moment it is made, as a request sent
    /// then meets the network of then (its future may be polled later).
    fn fault(&self, to: &str) -> Result<Fault> {
        let nodes = self.nodes.lock();
        let node = nodes
            .get(to)
            .ok_or_else(|| NodeError::UnknownNode(to.to_string()))?;
        Ok(node.fault)
    }

    /// One exchange with `to` under `fault`, within `timeout` ([`exchange`]), counted as
    /// received when it arrives.
    async fn exchange<R>(
        &self,
        to: &str,
        fault: Result<Fault>,
        timeout: Duration,
        work: impl Future<Output = Result<R>>,
    ) -> Result<R> {
        exchange(
            to,
            fault,
            timeout,
            || self.with_node(to, |n| n.received += 1),
            work,
        )
        .await
    }

    /// An exchange with `to` under `fault` whose work is `apply` on its state.
    async fn call<R>(
        &self,
        to: &str,
        fault: Result<Fault>,
        apply: impl FnOnce(&mut MemNode) -> Result<R>,
    ) -> Result<R> {
        let work = async { self.with_node(to, apply) };
        self.exchange(to, fault, self.call_timeout(), work).await
    }
}

/// One exchange with `to` under `fault`, within `timeout`, as a network would deliver it:
/// refused at once when down, never arriving when requests are lost, late when slow; on
/// arrival `arrived` runs, then `work`, whose answer the caller gets back unless replies are
/// lost. A call that gets no answer in time fails as timed out.
pub(crate) async fn exchange<R>(
    to: &str,
    fault: Result<Fault>,
    timeout: Duration,
    arrived: impl FnOnce(),
    work: impl Future<Output = Result<R>>,
) -> Result<R> {
    let exchange = async {
        let fault = fault?;
        match fault {
            Fault::Down => return Err(unreachable(to)),
            Fault::LoseRequests => std::future::pending::<()>().await,
            Fault::Slow(delay) => tokio::time::sleep(delay).await,
            Fault::None | Fault::LoseReplies | Fault::Forgetful => {}
        }
        arrived();
        let answer = work.await;
        if fault == Fault::LoseReplies {
            std::future::pending::<()>().await;
        }
        answer
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(NodeError::Peer {
                peer: to.to_string(),
                failure: PeerFailure::TimedOut,
            })
        })
}

fn unreachable(to: &str) -> NodeError {
    NodeError::Peer {
        peer: to.to_string(),
        failure: PeerFailure::Unreachable("connection refused".to_string()),
    }
}

fn gone() -> NodeError {
    NodeError::ShuttingDown
}

/// Reaches the nodes of a [`MemCluster`].
pub struct MemTransport {
    cluster: Weak<MemCluster>,
}

impl MemTransport {
    /// The cluster and `to`'s fault, as a call to it is made.
    fn send(&self, to: &str) -> Result<(Arc<MemCluster>, Result<Fault>)> {
        let cluster = self.cluster.upgrade().ok_or_else(gone)?;
        let fault = cluster.fault(to);
        Ok((cluster, fault))
    }
}

impl ReplicaTransport for MemTransport {
    fn write(
        &self,
        to: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let sent = self.send(to);
        let (to, key, versions) = (to.to_string(), key.to_string(), versions.clone());
        async move {
            let (cluster, fault) = sent?;
            let mode = cluster.settings.conflict_mode;
            let forgets = matches!(fault, Ok(Fault::Forgetful));
            cluster
                .call(&to, fault, |n| {
                    if !forgets {
                        let current = n.data.remove(&key).unwrap_or_default();
                        n.data.insert(key, current.merge(&versions).resolve(mode));
                    }
                    Ok(())
                })
                .await
        }
    }

    fn read(&self, to: &str, key: &str) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let sent = self.send(to);
        let (to, key) = (to.to_string(), key.to_string());
        async move {
            let (cluster, fault) = sent?;
            cluster
                .call(&to, fault, |n| {
                    Ok(n.data.get(&key).cloned().unwrap_or_default())
                })
                .await
        }
    }

    fn hint(
        &self,
        via: &str,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let sent = self.send(via);
        let hint = Hint {
            target: target.to_string(),
            key: key.to_string(),
            versions: versions.clone(),
        };
        let via = via.to_string();
        async move {
            let (cluster, fault) = sent?;
            cluster
                .call(&via, fault, |n| {
                    n.hints.push(hint);
                    Ok(())
                })
                .await
        }
    }

    fn forward(
        &self,
        to: &str,
        write: &Write,
        timeout: Duration,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let sent = self.send(to);
        let (to, write) = (to.to_string(), write.clone());
        async move {
            let (cluster, fault) = sent?;
            // The forwarded write runs on `to`'s coordinator once the call got there.
            let placement = cluster.placement();
            let coordinator = cluster.coordinator(&to);
            // Boxed: this future is part of the coordinator's own write future.
            let run: Pin<Box<dyn Future<Output = Result<Siblings>> + Send + '_>> =
                Box::pin(coordinator.write(&placement, write, true));
            let work = async {
                run.await
                    // The forwarding node hears the other coordinator's failure as its message.
                    .map_err(|e| NodeError::Coordinator {
                        peer: to.clone(),
                        message: e.to_string(),
                    })
            };
            cluster.exchange(&to, fault, timeout, work).await
        }
    }
}

/// A node's own replica in a [`MemCluster`].
pub struct MemReplica {
    id: NodeId,
    cluster: Weak<MemCluster>,
    dots: AtomicU64,
}

impl LocalReplica for MemReplica {
    fn id(&self) -> &str {
        &self.id
    }

    fn next_dot(&self) -> Result<Dot> {
        Ok(Dot::new(
            self.id.clone(),
            self.dots.fetch_add(1, Ordering::Relaxed),
        ))
    }

    fn apply(
        &self,
        key: &str,
        dot: Dot,
        context: &WriteContext,
        value: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let cluster = self.cluster.upgrade();
        let (id, key, context) = (self.id.clone(), key.to_string(), context.clone());
        async move {
            let cluster = cluster.ok_or_else(gone)?;
            let (mode, now) = (cluster.settings.conflict_mode, cluster.now_ms());
            Ok(cluster.with_node(&id, |n| {
                let current = n.data.remove(&key).unwrap_or_default();
                let context = match context {
                    WriteContext::Given(c) => c,
                    WriteContext::Coordinator => current.context(),
                };
                let next = current.write(dot, &context, value, now, mode);
                n.data.insert(key, next.clone());
                next
            }))
        }
    }

    fn keep_hint(
        &self,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let cluster = self.cluster.upgrade();
        let id = self.id.clone();
        let hint = Hint {
            target: target.to_string(),
            key: key.to_string(),
            versions: versions.clone(),
        };
        async move {
            let cluster = cluster.ok_or_else(gone)?;
            cluster.with_node(&id, |n| n.hints.push(hint));
            Ok(())
        }
    }
}

/// Settings for a twin: N replicas with R and W, a 1 s request timeout, siblings kept.
pub fn settings(n: usize, r: usize, w: usize) -> Settings {
    Settings {
        quorum: distkv_cluster::Quorum::new(n, r, w).expect("a valid quorum"),
        request_timeout: Duration::from_secs(1),
        conflict_mode: distkv_cluster::ConflictMode::default(),
        // Every read also reads the replicas it did not ask, for repair: tests of reads that
        // repair only what they asked set 0.
        read_repair_chance: 1.0,
        speculative_read_after: Duration::from_millis(50),
        seed: 7,
    }
}
