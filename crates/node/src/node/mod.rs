//! A node: the coordinator of client requests and a replica of its share of the keys.
//!
//! Any node coordinates any request (Dynamo 4.5). For a key it computes the preference list of
//! N distinct nodes on the ring (4.2), sends the request to all of them in parallel, and answers
//! once the round from `distkv-cluster` decides: W acks for a write, R replies for a read, where
//! the request's consistency level sets W and R (ONE, QUORUM, ALL) or the server's defaults apply.
//! A round that cannot succeed fails with "quorum not reached: needed X, got Y"; every peer call
//! has the request timeout, so a dead peer delays nothing past it.
//!
//! Writes create a new version whose dot is (this node, a counter unique to it) and whose context
//! is what the client had read; replicas merge it into what they hold, so concurrent writes stay
//! siblings (4.4). A write without a context (a blind write, as every client of the original
//! makes) is coordinated by a replica of the key, which takes the versions it holds when it
//! applies the write (under the key's lock) as the context, as Riak's vnode-coordinated puts
//! do: one round, no read first. Blind writes through one coordinator therefore overwrite in the
//! order it applies them; writes through different coordinators that race (neither held the
//! other when it applied its own), or that a coordinator did not hold yet (it was behind when
//! an earlier one was acknowledged), become siblings. A node that is not a replica forwards the
//! write to the key's first replica that is not known to be down.
//!
//! A replica that fails to take a write gets a hint kept durably here and
//! delivered when it answers again (4.6); by default hints do not count toward W (Cassandra's
//! strict quorum). With `-sloppy-quorum` (Dynamo's mode) the write meant for an unreachable
//! replica goes to the next healthy node on the ring after the key's replicas, which keeps it as
//! a hint, delivers it later, and counts toward W. After a read, replicas that answered
//! with less than the merged result are sent the merged versions off the request path (read
//! repair, 4.7).
//!
//! Membership comes from gossip ([`crate::membership`]): the rings every request uses are
//! rebuilt from the member table whenever a record changes; replicas the failure detector
//! holds dead are skipped at once (their writes become hints), and joining or leaving nodes
//! get writes before they serve reads ([`crate::streaming`]). Merkle anti-entropy is in
//! [`crate::repair`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use distkv_cluster::{Consistency, NodeId, QuorumError, Siblings};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::backup::{BackupInfo, Backups};
use crate::clock::SystemClock;
use crate::config::NodeConfig;
use crate::coordinator::replica::StoreReplica;
use crate::coordinator::{self, Coordinator, Placement, Write};
use crate::error::{JoinProgress, NodeError, Result};
use crate::handoff::Handoff;
use crate::hints::HintStore;
use crate::members_file;
use crate::membership::Membership;
use crate::ops::{Op, Operations};
use crate::peers::Peers;
use crate::repair::{AntiEntropy, Rounds, RoundsParts};
use crate::rings::Rings;
use crate::storage::Store;
use crate::streaming::{Streaming, StreamingParts};
use crate::transport::ScanTransport;
use crate::transport::grpc::GrpcTransport;

/// The least a replica is asked for in one scan page, however many nodes share the budget.
const MIN_SCAN_PAGE_BYTES: usize = 256 * 1024;

pub use crate::coordinator::WriteContext;
pub use crate::counters::Metrics;

/// The coordinator of this node's client reads and writes.
pub type NodeCoordinator = Coordinator<GrpcTransport, StoreReplica>;

pub struct Node {
    pub(crate) cfg: NodeConfig,
    pub(crate) store: Store,
    pub(crate) hints: HintStore,
    pub(crate) peers: Arc<Peers>,
    /// Client reads and writes: quorum rounds over the replicas.
    pub(crate) coordinator: NodeCoordinator,
    /// Gossip, the rings and the member table; whether the node serves.
    pub membership: Arc<Membership<GrpcTransport>>,
    pub(crate) ops: Arc<Operations>,
    /// Merkle comparisons with peers, and the answers to theirs.
    pub(crate) anti_entropy: Arc<AntiEntropy<GrpcTransport>>,
    /// Delivery of the hints this node holds.
    pub(crate) handoff: Arc<Handoff<GrpcTransport>>,
    /// Join, decommission and removal of a dead member.
    pub streaming: Arc<Streaming<GrpcTransport>>,
    /// Anti-entropy rounds, tombstone GC and the clean-up of handed-over ranges.
    pub rounds: Arc<Rounds<GrpcTransport>>,
    /// Every call to peers (streaming's pulls too); components hold clones.
    pub(crate) transport: GrpcTransport,
    pub metrics: Arc<Metrics>,
    /// Client requests by operation (Prometheus).
    pub requests: crate::counters::RequestMetrics,
    /// What the connection layer counts (Prometheus).
    pub network: Arc<crate::counters::NetworkCounters>,
    request_ids: AtomicU64,
    /// One permit per client request in flight (-max-concurrent-requests).
    pub(crate) request_slots: Arc<tokio::sync::Semaphore>,
    tasks: Mutex<JoinSet<()>>,
    /// Backups of the node's data (`backup.rs`).
    pub(crate) backups: Backups,
    shutdown: watch::Sender<bool>,
    pub(crate) started: Instant,
}

impl Node {
    /// Opens the node's storage and hint store and its member table; does no networking.
    pub fn open(cfg: NodeConfig) -> Result<Arc<Node>> {
        let store = Store::open(
            &cfg.data_dir.join("storage"),
            cfg.engine.clone(),
            cfg.conflict_mode,
        )?;
        let hints = HintStore::open(&cfg.data_dir.join("hints"))?;
        // Remember the members of the last run, so a restarted node finds its cluster again
        // even without seeds, and carries on in the state it was in.
        let saved = members_file::load(&cfg.data_dir)
            .map_err(|source| NodeError::MemberTable {
                path: cfg.data_dir.join(members_file::MEMBERS_FILE),
                source,
            })?
            .unwrap_or_default();
        let mut peers = Peers::new(
            cfg.request_timeout.min(Duration::from_secs(2)),
            cfg.request_timeout + coordinator::FORWARD_MARGIN,
        );
        peers = peers.with_max_message(cfg.max_message_bytes);
        if let Some(tls) = &cfg.tls {
            peers = peers.with_tls(tls.peer_client_config().map_err(NodeError::Tls)?);
        }
        let peers = Arc::new(peers);
        let metrics = Arc::new(Metrics::default());
        let rings = Arc::new(RwLock::new(Rings::default()));
        // Tree building, key listings and batches of hints take longer than a replica call.
        let transport = GrpcTransport::new(
            cfg.node_id.clone(),
            store.clone(),
            hints.clone(),
            Arc::clone(&peers),
            Arc::clone(&rings),
            cfg.request_timeout * 4,
        );
        let membership = Arc::new(Membership::new(
            &cfg,
            saved,
            transport.clone(),
            rings,
            Arc::clone(&metrics),
            Arc::new(SystemClock),
        ));
        let coordinator = Coordinator::new(
            transport.clone(),
            StoreReplica::open(cfg.node_id.clone(), store.clone(), hints.clone())?,
            coordinator::Settings {
                quorum: cfg.quorum,
                request_timeout: cfg.request_timeout,
                conflict_mode: cfg.conflict_mode,
                read_repair_chance: cfg.read_repair_chance,
                speculative_read_after: coordinator::SPECULATIVE_READ_AFTER,
                seed: rand::random(),
            },
            Arc::clone(&metrics),
        );
        let slots = cfg.max_concurrent_requests;
        let (shutdown, _) = watch::channel(false);
        let anti_entropy = Arc::new(AntiEntropy::new(
            store.clone(),
            transport.clone(),
            Arc::clone(&metrics),
        ));
        let handoff = Arc::new(Handoff::new(
            hints.clone(),
            transport.clone(),
            Arc::clone(&metrics),
        ));
        let ops = Arc::new(Operations::default());
        let rounds = Rounds::new(RoundsParts {
            id: cfg.node_id.clone(),
            replicas: cfg.quorum.n,
            interval: cfg.anti_entropy_interval,
            in_flight: crate::coordinator::in_flight_bound(cfg.request_timeout),
            store: store.clone(),
            hints: hints.clone(),
            membership: Arc::clone(&membership),
            anti_entropy: Arc::clone(&anti_entropy),
            ops: Arc::clone(&ops),
            metrics: Arc::clone(&metrics),
            clock: Arc::new(SystemClock),
        });
        let streaming = Streaming::new(StreamingParts {
            id: cfg.node_id.clone(),
            replicas: cfg.quorum.n,
            seeds: cfg.seeds.clone(),
            bytes_per_sec: cfg.stream_bytes_per_sec,
            drain_within: cfg.request_timeout * 2,
            store: store.clone(),
            hints: hints.clone(),
            membership: Arc::clone(&membership),
            transport: transport.clone(),
            rounds: Arc::clone(&rounds),
            handoff: Arc::clone(&handoff),
            ops: Arc::clone(&ops),
            metrics: Arc::clone(&metrics),
            stop: shutdown.subscribe(),
        });
        let backups = Backups::new(
            store.clone(),
            hints.clone(),
            cfg.data_dir.clone(),
            cfg.node_id.clone(),
        );
        let node = Arc::new(Node {
            // Every call's own deadline is the request timeout (rounds stop waiting then); the
            // channel allows a forwarded write the margin on top.
            peers,
            coordinator,
            cfg,
            store,
            hints,
            membership,
            ops,
            anti_entropy,
            handoff,
            streaming,
            rounds,
            transport,
            metrics,
            requests: crate::counters::RequestMetrics::default(),
            network: Arc::new(crate::counters::NetworkCounters::default()),
            request_ids: AtomicU64::new(1),
            request_slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            tasks: Mutex::new(JoinSet::new()),
            backups,
            shutdown,
            started: Instant::now(),
        });
        node.store.set_gc_grace(
            node.cfg.tombstone_gc_grace.as_millis() as u64,
            Arc::new(SystemClock),
        );
        Ok(node)
    }

    pub fn id(&self) -> &str {
        &self.cfg.node_id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    pub fn hints(&self) -> &HintStore {
        &self.hints
    }

    pub fn operations(&self) -> &Operations {
        &self.ops
    }

    /// Refuses client and admin requests while the node joins, saying how far it got.
    pub fn check_serving(&self) -> Result<()> {
        if self.membership.serving() {
            return Ok(());
        }
        let progress = self
            .ops
            .list()
            .into_iter()
            .rev()
            .find(|o| o.kind == "join")
            .map(|o| JoinProgress {
                steps_done: o.steps_done,
                steps_total: o.steps_total,
                keys: o.keys,
                detail: o.detail,
            });
        Err(NodeError::Joining {
            node: self.cfg.node_id.clone(),
            progress,
        })
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn spawn_task(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(f);
    }

    /// A receiver that turns true when the node shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells every background loop to stop (they watch [`Node::shutdown_signal`]).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Stops background work and waits (bounded) for tasks in flight, then closes storage.
    /// Callers join the loops they run (gossip, hints, ...) before this, so that none of them
    /// touches storage after it is closed.
    pub async fn shutdown(&self) -> Result<()> {
        self.begin_shutdown();
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.cfg.request_timeout * 2, drain)
            .await
            .is_err()
        {
            tracing::warn!("background tasks still running at shutdown were cancelled");
        }
        if !self.coordinator.drain(self.cfg.request_timeout * 2).await {
            tracing::warn!("hints and read repairs still running at shutdown were cancelled");
        }
        let store = self.store.clone();
        let hints = self.hints.clone();
        crate::blocking::spawn(move || -> Result<()> {
            store.flush()?;
            store.close()?;
            hints.close()
        })
        .await
        .map_err(|_| NodeError::ShuttingDown)?
    }

    /// Writes a backup of this node's data named `name` (or the current UTC time; see
    /// [`Backups::write`]). Refused while the node is joining.
    pub async fn backup(&self, name: Option<String>) -> Result<BackupInfo> {
        self.check_serving()?;
        self.backups.write(name).await
    }

    // ---- validation ----

    pub fn validate_key(&self, key: &str) -> Result<()> {
        if key.is_empty() {
            return Err(NodeError::EmptyKey);
        }
        if key.len() > self.cfg.max_key_bytes {
            return Err(NodeError::KeyTooLarge {
                len: key.len(),
                max: self.cfg.max_key_bytes,
            });
        }
        Ok(())
    }

    pub fn validate_value(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.cfg.max_value_bytes {
            return Err(NodeError::ValueTooLarge {
                len: value.len(),
                max: self.cfg.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Counts a client request of `op` that started at `started` (for status and metrics).
    pub fn record_request(&self, op: &'static str, started: Instant, ok: bool) {
        let elapsed = started.elapsed();
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .request_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.requests.observe(op, elapsed, ok);
        tracing::debug!(op, ok, micros = elapsed.as_micros() as u64, "request done");
    }

    /// A new id for a request's log span.
    pub fn next_request_id(&self) -> u64 {
        self.request_ids.fetch_add(1, Ordering::Relaxed)
    }

    // ---- coordination ----

    /// Where `key` lives, as the membership sees it now (see [`Membership::placement`]).
    pub fn placement(&self, key: &str) -> Placement {
        self.membership
            .placement(key, self.cfg.quorum.n, self.cfg.sloppy_quorum)
    }

    /// Writes a new version of `key` (`None` deletes) that supersedes what `context` covers.
    /// Returns the versions of the key as written by the coordinator.
    pub async fn coordinate_write(
        &self,
        key: &str,
        value: Option<Vec<u8>>,
        context: &WriteContext,
        level: Option<Consistency>,
    ) -> Result<Siblings> {
        self.coordinate_write_here(key, value, context, level, false)
            .await
    }

    /// Coordinates a write on this node. A node that is not a replica of the key forwards the
    /// write to the first replica not known to be down (unless this node was itself forwarded
    /// the write, when ring views differ).
    pub async fn coordinate_write_here(
        &self,
        key: &str,
        value: Option<Vec<u8>>,
        context: &WriteContext,
        level: Option<Consistency>,
        forwarded: bool,
    ) -> Result<Siblings> {
        let write = Write {
            key: key.to_string(),
            value,
            context: context.clone(),
            level,
        };
        self.coordinator
            .write(&self.placement(key), write, forwarded)
            .await
    }

    /// Reads `key` from R replicas (per `level`); repairs stale replicas in the background.
    pub async fn coordinate_read(&self, key: &str, level: Option<Consistency>) -> Result<Siblings> {
        self.coordinator
            .read(&self.placement(key), key, level)
            .await
    }

    /// Bytes of keys and versions one scan page may carry (and what a replica builds for
    /// one): a quarter of `-max-message-size`, so that a page always fits in a reply.
    pub fn scan_budget(&self) -> usize {
        self.cfg.max_message_bytes / 4
    }

    /// One page of keys in `[start, end)` (empty `end`: unbounded) across the cluster.
    pub async fn coordinate_scan(
        self: &Arc<Self>,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        level: Option<Consistency>,
    ) -> Result<(Vec<(String, Siblings)>, Option<String>)> {
        let ring = self.membership.ring();
        let nodes: Vec<NodeId> = ring.nodes();
        // Every node's page together stays within one budget (each at least a little).
        let budget = self.scan_budget();
        let per_node = (budget / nodes.len().max(1)).max(MIN_SCAN_PAGE_BYTES);
        let mut calls: FuturesUnordered<_> = nodes
            .iter()
            .map(|n| {
                let this = Arc::clone(self);
                let (n, start, end) = (n.clone(), start.clone(), end.clone());
                async move {
                    let res = this.replica_scan(&n, start, end, limit, per_node).await;
                    (n, res)
                }
            })
            .collect();
        let mut merged: BTreeMap<String, Siblings> = BTreeMap::new();
        let mut bound: Option<String> = None;
        let mut failures = 0usize;
        let deadline = tokio::time::sleep(self.cfg.request_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = calls.next() => match next {
                    Some((node, Ok((entries, more)))) => {
                        if more && let Some((last, _)) = entries.last() {
                            bound = Some(match bound { Some(b) if b <= *last => b, _ => last.clone() });
                        }
                        for (k, v) in entries {
                            // A node keeps what it held of ranges it has since handed over;
                            // only a key's replicas speak for it.
                            if !ring.preference_list(k.as_bytes(), self.cfg.quorum.n).contains(&node) {
                                continue;
                            }
                            let e = merged.entry(k).or_default();
                            *e = e.merge(&v);
                        }
                    }
                    Some((node, Err(e))) => {
                        failures += 1;
                        tracing::debug!(node, error = %e, "scan: replica failed");
                    }
                    None => break,
                },
                _ = &mut deadline => { failures += calls.len(); break; }
            }
        }
        // Every key must have had enough replicas answering: as for a get, a cluster with
        // fewer nodes than the level needs cannot serve it.
        let n = self.cfg.quorum.n.min(nodes.len());
        let required = self.cfg.quorum.reads(level);
        if n.saturating_sub(failures) < required {
            return Err(NodeError::Quorum(QuorumError::NotReached {
                required,
                acked: n.saturating_sub(failures),
                failures: Vec::new(),
            }));
        }
        let mut page = Vec::new();
        let mut next = None;
        let mut bytes = 0;
        for (k, v) in merged {
            if bound.as_ref().is_some_and(|b| k > *b) {
                break;
            }
            if v.is_deleted() {
                continue;
            }
            let size = k.len() + v.encode().len();
            // The page must fit in one reply: cut it by count and by bytes.
            if page.len() == limit || (!page.is_empty() && bytes + size > budget) {
                next = page.last().map(|(k, _): &(String, Siblings)| k.clone());
                break;
            }
            bytes += size;
            page.push((k, v));
        }
        if next.is_none() && bound.is_some() {
            // Cut by a replica's page: continue after the last key this page covered.
            next = bound;
        }
        Ok((page, next))
    }

    async fn replica_scan(
        self: &Arc<Self>,
        node: &str,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(String, Siblings)>, bool)> {
        if node == self.cfg.node_id {
            return self.store.scan(start, end, limit, max_bytes).await;
        }
        let address = self
            .membership
            .address_of(node)
            .ok_or_else(|| NodeError::UnknownNode(node.to_string()))?;
        self.transport
            .scan(&address, start, end, limit, max_bytes)
            .await
    }

    /// Delivers held hints to their nodes every hint interval, until the node stops (the
    /// handoff component's worker, routed by the membership).
    pub async fn hint_loop(self: Arc<Self>) {
        self.handoff
            .run(
                self.membership.as_ref(),
                self.cfg.hint_interval,
                self.shutdown_signal(),
            )
            .await
    }

    /// One pass of hint delivery; returns how many hints were delivered.
    pub async fn deliver_hints(&self) -> Result<usize> {
        self.handoff.deliver(self.membership.as_ref()).await
    }

    /// Starts this node's decommission (or returns the one running).
    pub fn start_decommission(&self) -> Result<Op> {
        self.streaming.start_decommission()
    }

    /// Admin RemoveNode ([`Streaming::remove_node`]).
    pub async fn remove_node(&self, id_or_address: &str) -> Result<(NodeId, u64)> {
        self.streaming.remove_node(id_or_address).await
    }

    /// Pulls `ranges` from the first of `sources` that answers ([`Streaming::pull_ranges`]).
    pub async fn pull_ranges(
        &self,
        kind: &'static str,
        ranges: Vec<distkv_cluster::TokenRange>,
        sources: Vec<NodeId>,
    ) -> Result<(u64, u64)> {
        self.streaming.pull_ranges(kind, ranges, sources).await
    }
}
