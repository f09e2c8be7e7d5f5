//! The node's join, decommission and removal of a dead member, as [`crate::streaming`]
//! describes them: each plans its transfers, keeps the plan, and runs it through one
//! executor ([`Node::execute_plan`]) that pulls or pushes task by task, throttled, resuming
//! from the kept cursors after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use distkv_cluster::{
    MemberState, NodeId, NodeStatus, RangeSet, Siblings, TokenRange, Transfer, plan_transfers,
};

use super::Node;
use crate::error::{NodeError, Result};
use crate::ops::{Op, Throttle};
use crate::storage::Cursor;
use crate::streaming::plan::{plan_from_proto, plan_to_proto};
use crate::transport::RepairTransport;

use crate::streaming::pull::{self, PullHooks};
use crate::streaming::{StreamPlan, StreamTask, group_pulls, group_pushes};

/// Where a streaming plan is kept (in the hint store; no `\0`, so never a hint).
const PLAN_KEY: &[u8] = b"meta:stream-plan";
/// Keys per pushed page.
const PUSH_KEYS: usize = 256;
/// How soon a failed join or decommission is tried again.
const LIFECYCLE_RETRY: Duration = Duration::from_secs(5);
/// Attempts at a push target before a decommission gives up.
const PUSH_ATTEMPTS: usize = 5;

/// Which way a plan's tasks move ranges: from each task's peer here, or from here to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Pull,
    Push,
}

impl Node {
    fn load_plan(&self, kind: &str) -> Option<StreamPlan> {
        let bytes = self.hints.db().get(PLAN_KEY).ok()??;
        let plan = plan_from_proto(prost::Message::decode(bytes.as_ref()).ok()?);
        (plan.kind == kind).then_some(plan)
    }

    async fn save_plan(&self, plan: Option<&StreamPlan>) -> Result<()> {
        let db = self.hints.db().clone();
        let bytes = plan.map(|p| prost::Message::encode_to_vec(&plan_to_proto(p)));
        tokio::task::spawn_blocking(move || -> Result<()> {
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
        Throttle::new(self.cfg.stream_bytes_per_sec)
    }

    /// Pulls the task's ranges from its peer (then its alternates, should it fail) into the
    /// local store, from the task's cursor on; `persist` saves the plan after every page.
    async fn pull_task(
        self: &Arc<Self>,
        task: &mut StreamTask,
        op: &Op,
        throttle: &mut Throttle,
        persist: Option<(&mut StreamPlan, usize)>,
    ) -> Result<()> {
        let mut hooks = NodePull {
            node: self,
            op,
            throttle,
            persist,
            shutdown: self.shutdown_signal(),
        };
        pull::pull(&self.transport, &self.store, task, &mut hooks).await
    }

    /// Pushes the local copy of the task's ranges to its peer, from the task's cursor on.
    async fn push_task(
        self: &Arc<Self>,
        task: &mut StreamTask,
        op: &Op,
        throttle: &mut Throttle,
        plan: &mut StreamPlan,
        index: usize,
    ) -> Result<()> {
        let address = self
            .membership
            .address_of(&task.peer)
            .ok_or_else(|| NodeError::UnknownNode(task.peer.clone()))?;
        let ranges = RangeSet::new(&task.ranges);
        let mut failures = 0;
        loop {
            let (page, more) = self
                .store
                .index_page(ranges.clone(), task.cursor.clone(), PUSH_KEYS)
                .await?;
            let keys: Vec<String> = page.iter().map(|e| e.key.clone()).collect();
            let entries = self.store.read_many(keys).await?;
            let bytes: u64 = entries
                .iter()
                .map(|(k, v)| (k.len() + v.encode().len()) as u64)
                .sum();
            let sent = loop {
                let r = self.send_entries(&address, &entries).await;
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
            self.metrics
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
            if *self.shutdown_signal().borrow() {
                return Err(NodeError::ShuttingDown);
            }
        }
    }

    /// Sends versions to the node at `address`, which merges them (the hint handoff RPC).
    pub async fn send_entries(&self, address: &str, entries: &[(String, Siblings)]) -> Result<()> {
        self.transport.send(address, entries).await
    }

    /// Pulls `ranges` from the first of `sources` that answers (others as fall-backs), as
    /// one operation of `kind`. Returns the keys and bytes received.
    pub async fn pull_ranges(
        self: &Arc<Self>,
        kind: &'static str,
        ranges: Vec<TokenRange>,
        sources: Vec<NodeId>,
    ) -> Result<(u64, u64)> {
        let op = self.ops.start(
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
        self: &Arc<Self>,
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

    // ---- join ----

    /// Runs (or resumes) this node's join; finishes with the node `normal`.
    pub async fn run_join(self: Arc<Self>, op: Op) -> Result<u64> {
        // 1. Know the cluster: at least one member that serves reads, or bootstrap one.
        let mut waited = 0u32;
        loop {
            if *self.shutdown_signal().borrow() {
                return Err(NodeError::ShuttingDown);
            }
            let members = self.membership.members();
            let others: Vec<_> = members
                .iter()
                .filter(|m| m.id != self.cfg.node_id && m.state != MemberState::Left)
                .collect();
            if others.iter().any(|m| m.state.serves_reads()) {
                break;
            }
            // Everyone known is joining too (nodes that all name each other as seeds): the
            // one with the smallest id starts the cluster.
            if !others.is_empty()
                && waited >= 100
                && others.iter().all(|m| m.state == MemberState::Joining)
                && others.iter().all(|m| m.id > self.cfg.node_id)
            {
                tracing::info!("no member serves yet: this node starts the cluster");
                self.membership.set_local_state(MemberState::Normal).await;
                self.membership.start_serving();
                return Ok(0);
            }
            if waited % 300 == 100 {
                let last_error = self.membership.last_error().unwrap_or_default();
                tracing::info!(
                    seeds = ?self.cfg.seeds,
                    last_error,
                    "joining: waiting to hear from the cluster"
                );
                op.set_detail("waiting for a seed to answer");
            }
            waited += 1;
            tokio::time::sleep(Duration::from_millis(if waited < 100 { 10 } else { 100 })).await;
        }
        // 2. Everyone learns that writes for our future ranges come here too.
        self.membership.announce().await;
        // 3. The plan: what we take over, and from whom.
        let mut plan = match self.load_plan("join") {
            Some(plan) => {
                tracing::info!(tasks = plan.tasks.len(), "resuming an interrupted join");
                plan
            }
            None => {
                // A node that left or was removed and joins again holds data of an earlier
                // membership, possibly with deletes it missed whose tombstones are purged by
                // now: it starts empty, and its ranges come from their replicas. (Any other
                // node's data is kept: streaming merges into it.)
                if self.membership.take_stale_data() {
                    let stale = self.store.delete_all().await?;
                    tracing::info!(
                        keys = stale,
                        "joining again: deleted the data of an earlier membership"
                    );
                }
                let old = self.membership.ring();
                let mut new = (*old).clone();
                let tokens = self.membership.local_tokens();
                new.add_node_tokens(&self.cfg.node_id, &tokens);
                let transfers: Vec<Transfer> = plan_transfers(&old, &new, self.cfg.quorum.n)
                    .into_iter()
                    .filter(|t| t.target == self.cfg.node_id)
                    .collect();
                let me = vec![self.cfg.node_id.clone()];
                let plan = StreamPlan {
                    kind: "join".into(),
                    tasks: group_pulls(
                        &transfers,
                        &me,
                        |t, s| {
                            !new.preference_list_for_token(t.range.end, self.cfg.quorum.n)
                                .iter()
                                .any(|x| x == s)
                        },
                        |n| self.membership.is_down(n),
                    ),
                };
                self.save_plan(Some(&plan)).await?;
                plan
            }
        };
        // 4. Pull.
        self.execute_plan(&mut plan, &op, Direction::Pull, 1)
            .await?;
        // 5. Whatever any old replica has that we lack: a write acknowledged by W of them
        //    before they sent us writes too, or written behind the cursor during the stream.
        //    Every reachable old replica is compared, so that reads that now count this node
        //    in place of one of them still meet every acknowledged write.
        op.set_detail("comparing Merkle trees with the old replicas");
        let mut compare: BTreeMap<NodeId, Vec<TokenRange>> = BTreeMap::new();
        for task in &plan.tasks {
            for peer in std::iter::once(&task.peer).chain(&task.alternates) {
                compare
                    .entry(peer.clone())
                    .or_default()
                    .extend(task.ranges.iter().copied());
            }
        }
        for (peer, ranges) in &compare {
            if self.membership.is_down(peer) {
                continue;
            }
            match self.sync_ranges(peer, ranges).await {
                Ok(stats) => op.add(stats.fetched, 0),
                Err(e) => tracing::warn!(peer, error = %e, "joining: final comparison failed"),
            }
        }
        op.step_done();
        // 6. Serve. The plan goes first: a crash in between restarts the join from scratch
        //    (streaming again is harmless), never from a plan already carried out.
        self.save_plan(None).await?;
        self.membership.set_local_state(MemberState::Normal).await;
        // Every member reachable now knows: serve.
        self.membership.start_serving();
        let keys: u64 = plan.tasks.iter().map(|t| t.keys).sum();
        op.set_detail(format!("joined: {keys} keys streamed in"));
        tracing::info!(keys, "joined the cluster");
        Ok(keys)
    }

    // ---- decommission ----

    /// Runs (or resumes) this node's decommission; finishes with the node `left`.
    pub async fn run_decommission(self: Arc<Self>, op: Op) -> Result<u64> {
        if self.membership.local_state() != MemberState::Leaving {
            self.membership.set_local_state(MemberState::Leaving).await;
        } else {
            self.membership.announce().await;
        }
        let mut plan = match self.load_plan("decommission") {
            Some(plan) => plan,
            None => {
                let rings = self.membership.rings();
                let transfers: Vec<Transfer> =
                    plan_transfers(&rings.read, &rings.pending, self.cfg.quorum.n)
                        .into_iter()
                        .filter(|t| t.sources.contains(&self.cfg.node_id))
                        .collect();
                let plan = StreamPlan {
                    kind: "decommission".into(),
                    tasks: group_pushes(&transfers),
                };
                self.save_plan(Some(&plan)).await?;
                plan
            }
        };
        self.execute_plan(&mut plan, &op, Direction::Push, 2)
            .await?;
        // Hints held here would leave with this node: deliver them, or hand them on.
        op.set_detail("handing off hints");
        self.hand_off_all_hints().await?;
        op.step_done();
        op.set_detail("comparing Merkle trees with the new owners");
        for task in &plan.tasks {
            if let Err(e) = self.sync_ranges(&task.peer, &task.ranges).await {
                tracing::warn!(peer = task.peer, error = %e, "decommission: final comparison failed");
            }
        }
        op.step_done();
        self.save_plan(None).await?;
        self.membership.set_local_state(MemberState::Left).await;
        let keys: u64 = plan.tasks.iter().map(|t| t.keys).sum();
        op.set_detail(format!("left the cluster: {keys} keys streamed out"));
        tracing::info!(keys, "decommissioned: this node has left the cluster");
        Ok(keys)
    }

    /// Starts the decommission (or returns the one running).
    pub fn start_decommission(self: &Arc<Self>) -> Result<Op> {
        match self.membership.local_state() {
            MemberState::Joining => return Err(NodeError::WrongState("joining")),
            MemberState::Left => return Err(NodeError::WrongState("already left")),
            MemberState::Leaving => {}
            MemberState::Normal => {
                // As Cassandra: never leave fewer nodes than replicas per key.
                let remaining = self
                    .membership
                    .ring()
                    .nodes()
                    .into_iter()
                    .filter(|n| *n != self.cfg.node_id)
                    .count();
                if remaining < self.cfg.quorum.n {
                    return Err(NodeError::TooFewNodes {
                        remaining,
                        replicas: self.cfg.quorum.n,
                    });
                }
            }
        }
        Ok(self.start_lifecycle_op("decommission", |node, op| {
            Box::pin(node.run_decommission(op))
        }))
    }

    /// Starts (or returns the running) operation `kind` driven by `run`, in the node's tasks.
    fn start_lifecycle_op(
        self: &Arc<Self>,
        kind: &'static str,
        run: impl FnOnce(
            Arc<Node>,
            Op,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64>> + Send>>,
    ) -> Op {
        let mut running = self.lifecycle_ops.lock();
        if let Some(op) = running.get(kind)
            && op.info().state == crate::ops::OpState::Running
        {
            return op.clone();
        }
        let op = self.ops.start(kind, "");
        running.insert(kind, op.clone());
        let fut = run(Arc::clone(self), op.clone());
        let done = op.clone();
        self.spawn_task(async move {
            let result = fut.await;
            if let Err(e) = &result {
                tracing::error!(operation = kind, error = %e, "operation failed");
            }
            done.finish(&result);
        });
        op
    }

    /// Watches the local state and runs what it calls for: a join while `joining`, a
    /// decommission while `leaving` (also after a restart in the middle of either).
    pub async fn lifecycle_loop(self: Arc<Self>) {
        let mut state = self.membership.local_state_watch();
        let mut stop = self.shutdown_signal();
        loop {
            let current = *state.borrow_and_update();
            match current {
                MemberState::Joining => {
                    self.start_lifecycle_op("join", |node, op| Box::pin(node.run_join(op)));
                }
                MemberState::Leaving => {
                    self.start_lifecycle_op("decommission", |node, op| {
                        Box::pin(node.run_decommission(op))
                    });
                }
                _ => {}
            }
            // Also wake now and then: a join or decommission that failed (a source down, a
            // peer backing off) is started again while the state still calls for it.
            tokio::select! {
                r = state.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(LIFECYCLE_RETRY) => {}
                _ = stop.changed() => return,
            }
        }
    }

    // ---- remove a dead node ----

    /// Admin RemoveNode: marks the node left and has every node that becomes a replica of one
    /// of its ranges pull that range from a surviving replica. Returns its id and the keys
    /// moved.
    pub async fn remove_node(self: &Arc<Self>, id_or_address: &str) -> Result<(NodeId, u64)> {
        // Only a node this one holds dead: a live one is decommissioned instead (it streams
        // its own ranges, including writes no other replica has).
        if let Some(view) = self
            .membership
            .member_views()
            .into_iter()
            .find(|m| m.id == id_or_address || m.address == id_or_address)
            && !matches!(view.status, NodeStatus::Dead | NodeStatus::Left)
            && view.id != self.cfg.node_id
        {
            return Err(NodeError::StillAlive(view.id));
        }
        let id = self.membership.mark_member_left(id_or_address)?;
        self.membership.announce().await;
        let after = self.membership.ring();
        // The ring with the removed node put back (its tokens stay in the member table), not
        // the ring read before marking it left: so running removenode again, after an
        // interruption (a target restarted, the caller was cut off), re-replicates its ranges
        // again instead of finding nothing to move. Versions already there merge, as always.
        let before = self.membership.ring_with_member(&id);
        let transfers = plan_transfers(&before, &after, self.cfg.quorum.n);
        // Per target, one pull per list of surviving sources (each list holds all its ranges).
        let mut by_target: BTreeMap<NodeId, Vec<StreamTask>> = BTreeMap::new();
        for t in &transfers {
            by_target.entry(t.target.clone()).or_default();
        }
        for (target, tasks) in by_target.iter_mut() {
            let theirs: Vec<Transfer> = transfers
                .iter()
                .filter(|t| t.target == *target)
                .cloned()
                .collect();
            *tasks = group_pulls(
                &theirs,
                &[id.clone(), target.clone()],
                |_, _| false,
                |n| self.membership.is_down(n),
            );
        }
        let op = self.ops.start(
            "removenode",
            format!(
                "re-replicating the ranges of {id} to {} nodes",
                by_target.len()
            ),
        );
        op.set_steps(by_target.len());
        tracing::info!(
            node = id,
            targets = by_target.len(),
            "removing a node: re-replicating its ranges"
        );
        let calls = by_target.into_iter().map(|(target, tasks)| {
            let this = Arc::clone(self);
            let op = op.clone();
            async move {
                let mut total = (0, 0);
                for task in tasks {
                    let sources: Vec<NodeId> =
                        std::iter::once(task.peer).chain(task.alternates).collect();
                    let r = if target == this.cfg.node_id {
                        this.pull_ranges("rereplicate", task.ranges, sources).await
                    } else {
                        this.remote_pull(&target, task.ranges, sources, "rereplicate")
                            .await
                    };
                    match r {
                        Ok((keys, bytes)) => {
                            op.add(keys, bytes);
                            total.0 += keys;
                            total.1 += bytes;
                        }
                        Err(e) => return (target, Err(e)),
                    }
                }
                op.step_done();
                (target, Ok(total))
            }
        });
        let mut keys = 0;
        let mut failed = Vec::new();
        for (target, r) in futures::future::join_all(calls).await {
            match r {
                Ok((k, _)) => keys += k,
                Err(e) => {
                    tracing::warn!(target_node = target, error = %e, "re-replication failed");
                    failed.push((target, e));
                }
            }
        }
        let result = if failed.is_empty() {
            Ok((id, keys))
        } else {
            Err(NodeError::Streaming { failures: failed })
        };
        op.finish(&result);
        result
    }

    async fn remote_pull(
        &self,
        target: &str,
        ranges: Vec<TokenRange>,
        sources: Vec<NodeId>,
        reason: &str,
    ) -> Result<(u64, u64)> {
        let address = self
            .membership
            .address_of(target)
            .ok_or_else(|| NodeError::UnknownNode(target.to_string()))?;
        self.transport
            .ask_to_pull(&address, &ranges, sources, reason)
            .await
    }
}

/// A node's side of a pull: progress, metrics, the persisted plan, the throttle, shutdown.
struct NodePull<'a> {
    node: &'a Arc<Node>,
    op: &'a Op,
    throttle: &'a mut Throttle,
    persist: Option<(&'a mut StreamPlan, usize)>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl PullHooks for NodePull<'_> {
    fn address_of(&self, source: &str) -> Option<String> {
        self.node.membership.address_of(source)
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    async fn after_page(&mut self, task: &StreamTask, keys: u64, bytes: u64) -> Result<()> {
        self.op.add(keys, bytes);
        self.node
            .metrics
            .keys_streamed_in
            .fetch_add(keys, std::sync::atomic::Ordering::Relaxed);
        if let Some((plan, i)) = self.persist.as_mut() {
            plan.tasks[*i] = task.clone();
            self.node.save_plan(Some(plan)).await?;
        }
        self.throttle.consume(bytes).await;
        Ok(())
    }
}
