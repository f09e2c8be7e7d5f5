//! The coordinator of client reads and writes: Dynamo's quorum rounds (4.5), driven over a
//! [`ReplicaTransport`] to the key's replicas.
//!
//! **What it decides.** For a write it gives the new version its dot on the local replica
//! ([`LocalReplica::apply`]), sends the resulting versions to every other replica and to the
//! nodes that will be replicas once a join or leave completes, and answers once W replicas
//! acknowledged, or fails with "quorum not reached" once that has become impossible or the
//! request timeout passed. A replica that fails gets a hint kept here (or, with a sloppy
//! quorum, on the next stand-in, which then counts toward W). A coordinator that is not a
//! replica of the key forwards the write to the first replica not known to be down, trying the
//! next only when one could not be reached at all. For a read it asks R replicas (its own copy
//! first), one more for each that fails or when they are slow, and every replica when the
//! quorum found nothing; it answers with the merge of the first R replies and repairs the
//! replicas that answered with less in the background (4.7). On a share of reads (the
//! read-repair chance) it also reads the replicas it did not ask, after answering and for
//! repair only, in calls shared with other such reads ([`ReplicaTransport::repair_read`]).
//!
//! **What it does not.** It holds no membership: the caller passes a [`Placement`] (the key's
//! replicas as its rings say, which of them are down, and the stand-ins). It does no I/O of its
//! own: the local replica is a [`LocalReplica`] and every replica, the local one too, is
//! reached through the [`ReplicaTransport`] (gRPC in a node, [`memory`] in tests). Its clock is
//! tokio's, so tests run it on paused time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use crate::transport::{REPAIR_READ_DELAY, ReplicaTransport, Write, WriteContext};
pub use distkv_cluster::fanout::Placement;
use distkv_cluster::fanout::{Call, Step, WriteFanout};
use distkv_cluster::{
    ConflictMode, Consistency, Dot, NodeId, Outcome, Quorum, QuorumError, ReadRound, Siblings,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use crate::counters::Metrics;
use crate::error::{NodeError, PeerFailure, Result};

pub mod memory;
pub mod replica;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod stores;

/// How long a read that found nothing waits for the replicas still out.
pub const ABSENT_GRACE: Duration = Duration::from_millis(100);
/// How long a read waits for the replicas it asked before it asks one more (Cassandra's
/// speculative retry): rarely reached under load, it bounds what a replica that stopped
/// answering, and is not yet held down, costs a read.
pub const SPECULATIVE_READ_AFTER: Duration = Duration::from_millis(50);
/// Extra time a forwarded write gets beyond the request timeout of the replica coordinating it.
pub const FORWARD_MARGIN: Duration = Duration::from_secs(1);

/// How long after its coordinator stamped a version a write of it may still land on a replica
/// or become a hint, with `request_timeout`: the replica calls, then a hint's call to a stand-in,
/// each within the timeout, and a forwarded write's margin. The tombstone horizon trails a
/// round's start by this much ([`crate::repair::Rounds`]).
pub fn in_flight_bound(request_timeout: Duration) -> Duration {
    request_timeout * 2 + FORWARD_MARGIN
}

/// The coordinator's own replica: what only the node coordinating a write does.
pub trait LocalReplica: Send + Sync + 'static {
    /// This node's id.
    fn id(&self) -> &str;

    /// A dot this node has never used, across restarts.
    fn next_dot(&self) -> Result<Dot>;

    /// Under the key's lock, stores a new version of `key` with `dot` that supersedes what
    /// `context` covers ([`WriteContext::Coordinator`]: what this replica holds), keeping
    /// concurrent versions as siblings; returns the key's versions after it, once durable.
    fn apply(
        &self,
        key: &str,
        dot: Dot,
        context: &WriteContext,
        value: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static;

    /// Keeps `versions` of `key` durably as a hint for `target`.
    fn keep_hint(
        &self,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static;
}

/// True when `e` says a peer was never reached (so it did not get the request).
pub fn is_unreachable(e: &NodeError) -> bool {
    matches!(
        e,
        NodeError::Peer {
            failure: PeerFailure::Unreachable(_) | PeerFailure::BadAddress(_),
            ..
        } | NodeError::UnknownNode(_)
            | NodeError::PeerDown(_)
    )
}

/// The coordinator's settings, from the node's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// N, and R and W for requests that name no consistency level.
    pub quorum: Quorum,
    /// How long a round waits for replies.
    pub request_timeout: Duration,
    pub conflict_mode: ConflictMode,
    /// The share of reads (0 to 1) that ask every replica rather than R of them, so that
    /// read repair reaches replicas the quorum does not need (anti-entropy covers the rest).
    pub read_repair_chance: f64,
    /// How long a read waits for its replicas before it also asks one it has not asked.
    pub speculative_read_after: Duration,
    /// Seeds the choice of the reads that ask every replica.
    pub seed: u64,
}

/// A call of a write's fan-out, with its result.
type WriteCall = Pin<Box<dyn Future<Output = (Call, Result<()>)> + Send>>;
type ReadCall = Pin<Box<dyn Future<Output = (NodeId, Result<Siblings>)> + Send>>;

/// Coordinates reads and writes over `T`, with `L` as its own replica.
pub struct Coordinator<T, L> {
    transport: Arc<T>,
    local: Arc<L>,
    settings: Settings,
    metrics: Arc<Metrics>,
    /// Calls still out after a round decided, and read repairs.
    tasks: Mutex<JoinSet<()>>,
    rng: Mutex<SmallRng>,
}

impl<T: ReplicaTransport, L: LocalReplica> Coordinator<T, L> {
    pub fn new(transport: T, local: L, settings: Settings, metrics: Arc<Metrics>) -> Self {
        Coordinator {
            transport: Arc::new(transport),
            local: Arc::new(local),
            metrics,
            tasks: Mutex::new(JoinSet::new()),
            rng: Mutex::new(SmallRng::seed_from_u64(settings.seed)),
            settings,
        }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn local(&self) -> &L {
        &self.local
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Waits for the background work started by finished rounds (hints for replicas that
    /// failed late, read repairs), at most `within`; false when some was cancelled.
    pub async fn drain(&self, within: Duration) -> bool {
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        let all = async { while tasks.join_next().await.is_some() {} };
        tokio::time::timeout(within, all).await.is_ok()
    }

    /// Stops the background work of rounds that were decided (a crash of the node).
    pub fn abort_background(&self) {
        self.tasks.lock().abort_all();
    }

    fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(f);
    }

    /// Coordinates `write` of a key placed as `placement`; returns the versions written. A
    /// coordinator that is not one of the replicas forwards the write to one, unless it was
    /// itself `forwarded` the write (ring views differ), when it coordinates it.
    pub async fn write(
        &self,
        placement: &Placement,
        write: Write,
        forwarded: bool,
    ) -> Result<Siblings> {
        if placement.replicas.is_empty() && placement.pending.is_empty() {
            return Err(NodeError::EmptyRing);
        }
        let me = self.local.id();
        let is_replica = placement.replicas.iter().any(|r| r == me);
        // A replica coordinates itself: forwarding to a "better" replica would make the write
        // wait for (and fail with) a replica that is silent but not yet known down.
        if !is_replica && !forwarded {
            return self.forward(placement, &write).await;
        }
        let required = self.settings.quorum.writes(write.level);
        let key = write.key.as_str();
        // The coordinator applies the write to its own copy first, under the key's lock, and
        // then sends the whole resulting set: every replica that gets this version also gets
        // the concurrent versions its dot does not cover. A coordinator that is not a replica
        // (it was forwarded the write while ring views differed) keeps a copy all the same: a
        // node must hold every version it coordinated for a key, or a later dot of its own
        // could be read as covering an earlier concurrent one.
        let dot = self.local.next_dot()?;
        let written = self
            .local
            .apply(key, dot, &write.context, write.value)
            .await?;
        // Who gets the write, which stand-in takes a failed replica's place and who gets a
        // hint is the fan-out's decision (distkv-cluster); this loop makes its calls.
        let (mut fanout, steps) = WriteFanout::start(placement, me, required);
        let mut calls: FuturesUnordered<WriteCall> = FuturesUnordered::new();
        self.take_steps(steps, key, &written, &mut calls).await;
        let deadline = tokio::time::sleep(self.settings.request_timeout);
        tokio::pin!(deadline);
        // Until decided; after a failure, until every replica answered, so that the error
        // reports how many really acknowledged.
        loop {
            let decided = !matches!(fanout.outcome(), Outcome::Pending);
            if decided && (matches!(fanout.outcome(), Outcome::Succeeded) || calls.is_empty()) {
                break;
            }
            let (call, result) = tokio::select! {
                // Replies first: a round decided by ready replies arms no timer.
                biased;
                next = calls.next() => match next {
                    Some(event) => event,
                    None => break,
                },
                _ = &mut deadline => { fanout.on_timeout(); break; }
            };
            if let (Call::StandIn { target, via }, Ok(())) = (&call, &result) {
                tracing::debug!(key, target, stand_in = via, "hinted write on a stand-in");
            }
            let steps = fanout.on_result(call, result.map_err(|e| e.to_string()));
            self.take_steps(steps, key, &written, &mut calls).await;
        }
        // Calls still out finish in the background; replicas that fail (and stand-ins that
        // refuse) leave a hint here.
        fanout.settle();
        // Decided now (the fan-out moves to the background below), without copying the round.
        let failure = match fanout.outcome() {
            Outcome::Succeeded => None,
            _ => {
                let round = fanout.round();
                Some(not_reached(required, round.acked().len(), round.failed()))
            }
        };
        if !calls.is_empty() {
            let (local, metrics) = (Arc::clone(&self.local), Arc::clone(&self.metrics));
            let (key, versions) = (key.to_string(), written.clone());
            self.spawn(async move {
                while let Some((call, result)) = calls.next().await {
                    for step in fanout.on_result(call, result.map_err(|e| e.to_string())) {
                        // A settled fan-out only ever asks for hints.
                        if let Step::KeepHint(target) = step {
                            keep_hint(&*local, &metrics, &target, &key, &versions).await;
                        }
                    }
                }
            });
        }
        match failure {
            None => {
                self.metrics
                    .quorum_successes
                    .fetch_add(1, Ordering::Relaxed);
                Ok(written)
            }
            Some(e) => {
                self.metrics.quorum_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Counts a decided round and turns it into the request's answer: `value` when it
    /// succeeded, else the quorum `failure`.
    fn conclude<V>(
        &self,
        outcome: &Outcome,
        value: impl FnOnce() -> V,
        failure: impl FnOnce() -> NodeError,
    ) -> Result<V> {
        if matches!(outcome, Outcome::Succeeded) {
            self.metrics
                .quorum_successes
                .fetch_add(1, Ordering::Relaxed);
            Ok(value())
        } else {
            self.metrics.quorum_failures.fetch_add(1, Ordering::Relaxed);
            Err(failure())
        }
    }

    async fn keep_hint(&self, target: &str, key: &str, versions: &Siblings) {
        keep_hint(&*self.local, &self.metrics, target, key, versions).await
    }

    /// Takes the fan-out's `steps`: calls join `calls`, hints are kept here at once.
    async fn take_steps(
        &self,
        steps: Vec<Step>,
        key: &str,
        versions: &Siblings,
        calls: &mut FuturesUnordered<WriteCall>,
    ) {
        for step in steps {
            match step {
                Step::Send(call) => calls.push(self.send(call, key, versions)),
                Step::KeepHint(target) => self.keep_hint(&target, key, versions).await,
            }
        }
    }

    /// Makes one call of a write's fan-out. A stand-in keeps the write meant for the
    /// unreachable target as a hint (and delivers it when the target answers again); the
    /// coordinator itself may be one. The call runs in the round's stream, so the round's
    /// deadline bounds it like any replica call.
    fn send(&self, call: Call, key: &str, versions: &Siblings) -> WriteCall {
        match &call {
            Call::Replica(to) | Call::Pending(to) => {
                let write = self.transport.write(to, key, versions);
                Box::pin(async move { (call, write.await) })
            }
            Call::StandIn { via, target } => {
                let metrics = Arc::clone(&self.metrics);
                let hint: Pin<Box<dyn Future<Output = Result<()>> + Send>> =
                    if via == self.local.id() {
                        Box::pin(self.local.keep_hint(target, key, versions))
                    } else {
                        Box::pin(self.transport.hint(via, target, key, versions))
                    };
                Box::pin(async move {
                    let result = hint.await;
                    if result.is_ok() {
                        metrics.hints_stored.fetch_add(1, Ordering::Relaxed);
                    }
                    (call, result)
                })
            }
        }
    }

    /// Hands a write to the first replica of the key that answers. The next replica is tried
    /// only when one could not be reached at all: after a timeout the write may have
    /// happened, and a retry would write it again under a new dot.
    async fn forward(&self, placement: &Placement, write: &Write) -> Result<Siblings> {
        // The replica coordinating the write has the request timeout for its own round; give
        // the forwarded call a little more so that its "quorum not reached" comes back rather
        // than our own timeout.
        let deadline = tokio::time::Instant::now() + self.settings.request_timeout + FORWARD_MARGIN;
        let mut last_error = NodeError::EmptyRing;
        for target in placement.replicas.iter().filter(|r| !placement.is_down(r)) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.transport.forward(target, write, left).await {
                Ok(written) => return Ok(written),
                Err(e) if is_unreachable(&e) => last_error = e,
                Err(e) => {
                    last_error = e;
                    break;
                }
            }
        }
        self.metrics.quorum_failures.fetch_add(1, Ordering::Relaxed);
        Err(last_error)
    }

    /// Reads `key` at R (per `level`): asks R replicas (this node's own copy first, then the
    /// others in preference order), one more whenever one fails or none answered within
    /// [`Settings::speculative_read_after`], and all of them when the quorum found nothing;
    /// answers with the merge of the first R replies and repairs the replicas that answered
    /// with less in the background. On a [`Settings::read_repair_chance`] of reads the
    /// replicas not asked are read too, for that repair only ([`ReplicaTransport::repair_read`]).
    pub async fn read(
        &self,
        placement: &Placement,
        key: &str,
        level: Option<Consistency>,
    ) -> Result<Siblings> {
        if placement.replicas.is_empty() {
            return Err(NodeError::EmptyRing);
        }
        let required = self.settings.quorum.reads(level);
        let mut round = ReadRound::new(placement.replicas.clone(), required)
            .with_mode(self.settings.conflict_mode);
        let mut unasked = self.read_order(placement).into_iter();
        // On a share of reads the replicas the round does not ask are read too, for read
        // repair only: after the round, in calls they may share with other such reads.
        let repair_all = self.ask_every_replica();
        let mut calls: FuturesUnordered<ReadCall> = FuturesUnordered::new();
        for node in unasked.by_ref().take(required) {
            calls.push(self.read_call(placement, node, key));
        }
        let deadline = tokio::time::sleep(self.settings.request_timeout);
        tokio::pin!(deadline);
        let speculate_every = self.settings.speculative_read_after;
        let speculate = tokio::time::sleep(speculate_every);
        tokio::pin!(speculate);
        loop {
            let decided = !matches!(round.outcome(), Outcome::Pending);
            if decided && (matches!(round.outcome(), Outcome::Succeeded) || calls.is_empty()) {
                break;
            }
            if calls.is_empty() {
                // Every replica asked failed: ask the next, or the round is decided.
                match unasked.next() {
                    Some(node) => calls.push(self.read_call(placement, node, key)),
                    None => break,
                }
                continue;
            }
            tokio::select! {
                // Replies first: a round decided by ready replies arms no timer.
                biased;
                next = calls.next() => {
                    if let Some((node, reply)) = next {
                        if reply.is_err() {
                            // A failed replica is replaced at once, and the replacement gets
                            // the whole delay before another is asked.
                            if let Some(node) = unasked.next() {
                                calls.push(self.read_call(placement, node, key));
                                speculate.as_mut().reset(tokio::time::Instant::now() + speculate_every);
                            }
                        }
                        on_read_reply(&mut round, node, reply);
                    }
                }
                _ = &mut deadline => { round.on_timeout(); break; }
                _ = &mut speculate, if unasked.len() > 0 => {
                    // Slow replicas: ask one more, and again after as long.
                    if let Some(node) = unasked.next() {
                        if !placement.is_down(&node) {
                            self.metrics.speculative_reads.fetch_add(1, Ordering::Relaxed);
                        }
                        calls.push(self.read_call(placement, node, key));
                    }
                    speculate.as_mut().reset(tokio::time::Instant::now() + speculate_every);
                }
            }
        }
        // Absence is weak evidence: when the quorum agreed the key has no versions, ask the
        // replicas not asked yet and give every replica still out a short grace period, so
        // that a read right after a write at ONE does not miss it only because the replicas
        // asked first had not got it.
        if matches!(round.outcome(), Outcome::Succeeded) && round.merged().is_empty() {
            for node in unasked.by_ref() {
                calls.push(self.read_call(placement, node, key));
            }
            let grace = tokio::time::sleep(ABSENT_GRACE.min(self.settings.request_timeout));
            tokio::pin!(grace);
            while round.merged().is_empty() {
                tokio::select! {
                    // Replies first: a round decided by ready replies arms no timer.
                    biased;
                    next = calls.next() => match next {
                        Some((node, reply)) => { on_read_reply(&mut round, node, reply); }
                        None => break,
                    },
                    _ = &mut grace => break,
                }
            }
        }
        let failed = || not_reached(required, round.acked().len(), round.failed());
        let result = self.conclude(round.outcome(), || round.merged(), failed);
        if repair_all {
            for node in unasked.filter(|n| !placement.is_down(n)) {
                let call = self.transport.repair_read(&node, key);
                calls.push(Box::pin(async move { (node, call.await) }));
            }
        }
        self.repair_after(key, round, calls);
        result
    }

    /// The order a read asks the replicas in: this node's own copy (no network), then the
    /// others in preference order, those known to be down last (they fail at once).
    fn read_order(&self, placement: &Placement) -> Vec<NodeId> {
        let me = self.local.id();
        let mut order: Vec<NodeId> = Vec::with_capacity(placement.replicas.len());
        let mine = placement.replicas.iter().filter(|r| *r == me);
        let up = placement
            .replicas
            .iter()
            .filter(|r| *r != me && !placement.is_down(r));
        let down = placement
            .replicas
            .iter()
            .filter(|r| *r != me && placement.is_down(r));
        for r in mine.chain(up).chain(down) {
            if !order.contains(r) {
                order.push(r.clone());
            }
        }
        order
    }

    /// Whether this read asks every replica (for read repair), at the configured chance.
    fn ask_every_replica(&self) -> bool {
        let chance = self.settings.read_repair_chance;
        chance >= 1.0 || (chance > 0.0 && self.rng.lock().random::<f64>() < chance)
    }

    fn read_call(&self, placement: &Placement, node: NodeId, key: &str) -> ReadCall {
        if placement.is_down(&node) {
            // Known to be down: a failure now rather than at the deadline.
            let failed = (node.clone(), Err(NodeError::PeerDown(node)));
            return Box::pin(std::future::ready(failed));
        }
        let call = self.transport.read(&node, key);
        Box::pin(async move { (node, call.await) })
    }

    /// Read repair: waits (bounded) for the replies still out, then sends the merged versions
    /// to every replica that answered with less.
    fn repair_after(&self, key: &str, mut round: ReadRound, mut calls: FuturesUnordered<ReadCall>) {
        if calls.is_empty() && round.stale_replicas().is_empty() {
            return;
        }
        let (transport, metrics) = (Arc::clone(&self.transport), Arc::clone(&self.metrics));
        let key = key.to_string();
        let timeout = self.settings.request_timeout;
        self.spawn(async move {
            let rest = async {
                while let Some((node, reply)) = calls.next().await {
                    on_read_reply(&mut round, node, reply);
                }
            };
            let _ = tokio::time::timeout(timeout, rest).await;
            for (node, needed) in round.stale_replicas() {
                match transport.write(&node, &key, &needed).await {
                    Ok(()) => {
                        metrics.read_repairs.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(key, node, "read repair");
                    }
                    Err(e) => tracing::debug!(key, node, error = %e, "read repair failed"),
                }
            }
        });
    }
}

fn not_reached(required: usize, acked: usize, failures: Vec<(NodeId, String)>) -> NodeError {
    NodeError::Quorum(QuorumError::NotReached {
        required,
        acked,
        failures,
    })
}

fn on_read_reply(round: &mut ReadRound, node: NodeId, reply: Result<Siblings>) {
    match reply {
        Ok(versions) => round.on_reply(&node, versions),
        Err(e) => {
            tracing::debug!(node, error = %e, "replica read failed");
            round.on_failure(&node, e.to_string())
        }
    };
}

/// Keeps a hint for `target` here, logging (not returning) a failure: the write's outcome is
/// decided by its acknowledgements, and anti-entropy repairs what a lost hint misses.
async fn keep_hint<L: LocalReplica>(
    local: &L,
    metrics: &Metrics,
    target: &str,
    key: &str,
    versions: &Siblings,
) {
    match local.keep_hint(target, key, versions).await {
        Ok(()) => {
            metrics.hints_stored.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::error!(target_node = target, key, error = %e, "could not store a hint"),
    }
}

#[cfg(test)]
mod tests;
