//! The streaming component: the node's join, decommission and removal of a dead member, as
//! [`crate::streaming`] describes them. Each ([`operations`]) plans its transfers, keeps the
//! plan in the hint store, and runs it through one executor (here) that pulls or pushes task
//! by task, throttled, resuming from the kept cursors after a restart.
//!
//! It owns what it runs (the join or decommission in progress, as operations) and a worker,
//! [`Streaming::run`], that starts them whenever the local state calls for one; it reaches
//! peers only through its transport `T` (gRPC in a node, [`MemPeers`](crate::twin::MemPeers)
//! in process) and learns the cluster from the [`Membership`] it is given.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use distkv_cluster::{MemberState, NodeId, RangeSet, TokenRange};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::counters::Metrics;
use crate::error::{NodeError, Result};
use crate::handoff::Handoff;
use crate::hints::HintStore;
use crate::membership::Membership;
use crate::ops::{Op, Operations, Throttle};
use crate::repair::{Rounds, SyncStats};
use crate::storage::{Cursor, Store};
use crate::streaming::plan::{plan_from_proto, plan_to_proto};
use crate::streaming::pull::{self, PullHooks};
use crate::streaming::{StreamPlan, StreamTask};
use crate::transport::{GossipTransport, HandoffTransport, RepairTransport, StreamTransport};

/// Where a streaming plan is kept (in the hint store; no `\0`, so never a hint).
const PLAN_KEY: &[u8] = b"meta:stream-plan";
/// Keys per pushed page.
const PUSH_KEYS: usize = 256;
/// How soon a failed join or decommission is tried again.
const LIFECYCLE_RETRY: Duration = Duration::from_secs(5);
/// Attempts at a push target before a decommission gives up.
const PUSH_ATTEMPTS: usize = 5;

mod operations;

/// Which way a plan's tasks move ranges: from each task's peer here, or from here to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Pull,
    Push,
}

/// What a node's streaming needs of the rest of it.
pub struct StreamingParts<T> {
    /// This node's id.
    pub id: NodeId,
    /// Replicas per key (N).
    pub replicas: usize,
    /// The seeds, for the log while a join waits for them.
    pub seeds: Vec<String>,
    /// Streaming's throughput limit (0: none).
    pub bytes_per_sec: u64,
    /// How long a stop waits for the operation in progress to give up.
    pub drain_within: Duration,
    pub store: Store,
    pub hints: HintStore,
    pub membership: Arc<Membership<T>>,
    pub transport: T,
    /// Its anti-entropy rounds: the final comparisons of a join or decommission.
    pub rounds: Arc<Rounds<T>>,
    pub handoff: Arc<Handoff<T>>,
    pub ops: Arc<Operations>,
    pub metrics: Arc<Metrics>,
    /// Turns true when the node stops.
    pub stop: watch::Receiver<bool>,
}

/// Joins, decommissions and removals of one node (see the module doc).
pub struct Streaming<T> {
    p: StreamingParts<T>,
    /// The join or decommission running, by kind.
    running: Mutex<HashMap<&'static str, Op>>,
    /// The operations started, until they end.
    tasks: Mutex<JoinSet<()>>,
}

impl<T> Streaming<T>
where
    T: StreamTransport + RepairTransport + HandoffTransport + GossipTransport + Clone,
{
    pub fn new(parts: StreamingParts<T>) -> Arc<Self> {
        Arc::new(Streaming {
            p: parts,
            running: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
        })
    }

    fn stopping(&self) -> bool {
        *self.p.stop.borrow()
    }

    fn load_plan(&self, kind: &str) -> Option<StreamPlan> {
        let bytes = self.p.hints.db().get(PLAN_KEY).ok()??;
        let plan = plan_from_proto(prost::Message::decode(bytes.as_ref()).ok()?);
        (plan.kind == kind).then_some(plan)
    }

    async fn save_plan(&self, plan: Option<&StreamPlan>) -> Result<()> {
        let db = self.p.hints.db().clone();
        let bytes = plan.map(|p| prost::Message::encode_to_vec(&plan_to_proto(p)));
        crate::blocking::spawn(move || -> Result<()> {
            let opts = distkv_lsm::WriteOptions { sync: true };
            match bytes {
                Some(b) => db.put_opt(PLAN_KEY, &b, &opts)?,
                None => db.delete_opt(PLAN_KEY, &opts)?,
            }
            Ok(())
        })
        .await
        .map_err(|_| NodeError::ShuttingDown)?
    }

    fn throttle(&self) -> Throttle {
        Throttle::new(self.p.bytes_per_sec)
    }

    /// Pulls the task's ranges from its peer (then its alternates, should it fail) into the
    /// local store, from the task's cursor on; `persist` saves the plan after every page.
    async fn pull_task(
        &self,
        task: &mut StreamTask,
        op: &Op,
        throttle: &mut Throttle,
        persist: Option<(&mut StreamPlan, usize)>,
    ) -> Result<()> {
        let mut hooks = NodePull {
            streaming: self,
            op,
            throttle,
            persist,
        };
        pull::pull(&self.p.transport, &self.p.store, task, &mut hooks).await
    }

    /// Pushes the local copy of the task's ranges to its peer, from the task's cursor on.
    async fn push_task(
        &self,
        task: &mut StreamTask,
        op: &Op,
        throttle: &mut Throttle,
        plan: &mut StreamPlan,
        index: usize,
    ) -> Result<()> {
        let address = self
            .p
            .membership
            .address_of(&task.peer)
            .ok_or_else(|| NodeError::UnknownNode(task.peer.clone()))?;
        let ranges = RangeSet::new(&task.ranges);
        let mut failures = 0;
        loop {
            let (page, more) = self
                .p
                .store
                .index_page(ranges.clone(), task.cursor.clone(), PUSH_KEYS)
                .await?;
            let keys: Vec<String> = page.iter().map(|e| e.key.clone()).collect();
            let entries = self.p.store.read_many(keys).await?;
            let bytes: u64 = entries
                .iter()
                .map(|(k, v)| (k.len() + v.encode().len()) as u64)
                .sum();
            let sent = loop {
                let r = self.p.transport.send(&address, &entries).await;
                match r {
                    Ok(()) => break Ok(()),
                    Err(e) if failures + 1 < PUSH_ATTEMPTS => {
                        failures += 1;
                        tracing::warn!(target_node = task.peer, error = %e, "pushing a range failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 << failures)).await;
                    }
                    Err(e) => break Err(e),
                }
            };
            sent?;
            let n = entries.len() as u64;
            task.keys += n;
            task.bytes += bytes;
            op.add(n, bytes);
            self.p
                .metrics
                .keys_streamed_out
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            task.cursor = page
                .last()
                .map(|e| Cursor {
                    token: e.token,
                    key: e.key.clone(),
                })
                .or(task.cursor.take());
            task.done = !more;
            plan.tasks[index] = task.clone();
            self.save_plan(Some(plan)).await?;
            throttle.consume(bytes).await;
            if task.done {
                return Ok(());
            }
            if self.stopping() {
                return Err(NodeError::ShuttingDown);
            }
        }
    }

    /// Pulls `ranges` from the first of `sources` that answers (others as fall-backs), as
    /// one operation of `kind`. Returns the keys and bytes received.
    pub async fn pull_ranges(
        &self,
        kind: &'static str,
        ranges: Vec<TokenRange>,
        sources: Vec<NodeId>,
    ) -> Result<(u64, u64)> {
        let op = self.p.ops.start(
            kind,
            format!(
                "pulling {} ranges from {}",
                ranges.len(),
                sources.join(", ")
            ),
        );
        let mut task = StreamTask {
            ranges,
            ..StreamTask::new(
                sources.first().cloned().unwrap_or_default(),
                sources.iter().skip(1).cloned().collect(),
            )
        };
        op.set_steps(1);
        let mut throttle = self.throttle();
        let result = self.pull_task(&mut task, &op, &mut throttle, None).await;
        if result.is_ok() {
            op.step_done();
        }
        op.finish(&result);
        result.map(|()| (task.keys, task.bytes))
    }

    /// Carries out the tasks of `plan` not done yet, pulling each task's ranges from its peer
    /// or pushing them to it, the plan saved after every page; counts the tasks done before
    /// (a resumed plan). `after` is how many steps of its own the operation has once the
    /// plan is carried out.
    async fn execute_plan(
        &self,
        plan: &mut StreamPlan,
        op: &Op,
        direction: Direction,
        after: usize,
    ) -> Result<()> {
        let ranges: usize = plan.tasks.iter().map(|t| t.ranges.len()).sum();
        let peers = plan.tasks.len();
        op.set_steps(peers + after);
        op.set_detail(match direction {
            Direction::Pull => format!("streaming {ranges} ranges from {peers} sources"),
            Direction::Push => format!("streaming {ranges} ranges to {peers} nodes"),
        });
        tracing::info!(plan = plan.kind, ranges, peers, "streaming ranges");
        let mut throttle = self.throttle();
        for i in 0..plan.tasks.len() {
            let mut task = plan.tasks[i].clone();
            if task.done {
                op.add(task.keys, task.bytes);
            } else {
                match direction {
                    Direction::Pull => {
                        self.pull_task(&mut task, op, &mut throttle, Some((&mut *plan, i)))
                            .await?
                    }
                    Direction::Push => {
                        self.push_task(&mut task, op, &mut throttle, plan, i)
                            .await?
                    }
                }
                plan.tasks[i] = task;
            }
            op.step_done();
        }
        Ok(())
    }

    /// Compares `ranges` with the member `peer` (anti-entropy), as after a stream.
    async fn sync_ranges(&self, peer: &str, ranges: &[TokenRange]) -> Result<SyncStats> {
        self.p.rounds.sync_with(peer, ranges).await
    }

    /// Before this node leaves: delivers the hints it holds, and hands those whose target is
    /// unreachable to another member, which delivers them later.
    async fn hand_off_all_hints(&self) -> Result<()> {
        let heirs: Vec<(NodeId, String)> = self
            .p
            .membership
            .members()
            .into_iter()
            .filter(|m| {
                m.id != self.p.id
                    && m.state == MemberState::Normal
                    && !self.p.membership.is_down(&m.id)
            })
            .map(|m| (m.id, m.address))
            .collect();
        self.p
            .handoff
            .hand_off_all(self.p.membership.as_ref(), &heirs)
            .await
    }

    /// Starts (or returns the running) operation `kind` driven by `run`, in this component's
    /// tasks.
    fn start_lifecycle_op(
        self: &Arc<Self>,
        kind: &'static str,
        run: impl FnOnce(Arc<Self>, Op) -> BoxFuture<'static, Result<u64>>,
    ) -> Op {
        let mut running = self.running.lock();
        if let Some(op) = running.get(kind)
            && op.info().state == crate::ops::OpState::Running
        {
            return op.clone();
        }
        let op = self.p.ops.start(kind, "");
        running.insert(kind, op.clone());
        let fut = run(Arc::clone(self), op.clone());
        let done = op.clone();
        let mut tasks = self.tasks.lock();
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let result = fut.await;
            if let Err(e) = &result {
                tracing::error!(operation = kind, error = %e, "operation failed");
            }
            done.finish(&result);
        });
        op
    }

    /// The component's worker: watches the local state and runs what it calls for, a join
    /// while `joining`, a decommission while `leaving` (also after a restart in the middle of
    /// either), until the node stops; then waits (bounded) for the operation in progress to
    /// give up.
    pub async fn run(self: Arc<Self>) {
        let mut state = self.p.membership.local_state_watch();
        let mut stop = self.p.stop.clone();
        loop {
            let current = *state.borrow_and_update();
            match current {
                MemberState::Joining => {
                    self.start_lifecycle_op("join", |s, op| Box::pin(s.run_join(op)));
                }
                MemberState::Leaving => {
                    self.start_lifecycle_op("decommission", |s, op| {
                        Box::pin(s.run_decommission(op))
                    });
                }
                _ => {}
            }
            // Also wake now and then: a join or decommission that failed (a source down, a
            // peer backing off) is started again while the state still calls for it.
            tokio::select! {
                r = state.changed() => if r.is_err() { break },
                _ = tokio::time::sleep(LIFECYCLE_RETRY) => {}
                _ = stop.changed() => break,
            }
        }
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.p.drain_within, drain)
            .await
            .is_err()
        {
            tracing::warn!("a join or decommission still running at shutdown was cancelled");
        }
    }
}

/// Streaming's side of a pull: progress, metrics, the persisted plan, the throttle, shutdown.
struct NodePull<'a, T> {
    streaming: &'a Streaming<T>,
    op: &'a Op,
    throttle: &'a mut Throttle,
    persist: Option<(&'a mut StreamPlan, usize)>,
}

impl<T> PullHooks for NodePull<'_, T>
where
    T: StreamTransport + RepairTransport + HandoffTransport + GossipTransport + Clone,
{
    fn address_of(&self, source: &str) -> Option<String> {
        self.streaming.p.membership.address_of(source)
    }

    fn stopping(&self) -> bool {
        self.streaming.stopping()
    }

    async fn after_page(&mut self, task: &StreamTask, keys: u64, bytes: u64) -> Result<()> {
        self.op.add(keys, bytes);
        self.streaming
            .p
            .metrics
            .keys_streamed_in
            .fetch_add(keys, std::sync::atomic::Ordering::Relaxed);
        if let Some((plan, i)) = self.persist.as_mut() {
            plan.tasks[*i] = task.clone();
            self.streaming.save_plan(Some(plan)).await?;
        }
        self.throttle.consume(bytes).await;
        Ok(())
    }
}
