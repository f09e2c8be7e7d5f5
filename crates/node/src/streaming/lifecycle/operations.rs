//! The three operations of [`Streaming`]: a join, a decommission, and the removal of a dead
//! member, each a plan carried out by the component's executor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use distkv_cluster::{MemberState, NodeId, NodeStatus, TokenRange, Transfer, plan_transfers};

use super::{Direction, Streaming};
use crate::error::{NodeError, Result};
use crate::ops::Op;
use crate::streaming::{StreamPlan, StreamTask, group_pulls, group_pushes};
use crate::transport::{GossipTransport, HandoffTransport, RepairTransport, StreamTransport};

impl<T> Streaming<T>
where
    T: StreamTransport + RepairTransport + HandoffTransport + GossipTransport + Clone,
{
    // ---- join ----

    /// Runs (or resumes) this node's join; finishes with the node `normal`.
    pub async fn run_join(self: Arc<Self>, op: Op) -> Result<u64> {
        // 1. Know the cluster: at least one member that serves reads, or bootstrap one.
        let mut waited = 0u32;
        loop {
            if self.stopping() {
                return Err(NodeError::ShuttingDown);
            }
            let members = self.p.membership.members();
            let others: Vec<_> = members
                .iter()
                .filter(|m| m.id != self.p.id && m.state != MemberState::Left)
                .collect();
            if others.iter().any(|m| m.state.serves_reads()) {
                break;
            }
            // Everyone known is joining too (nodes that all name each other as seeds): the
            // one with the smallest id starts the cluster.
            if !others.is_empty()
                && waited >= 100
                && others.iter().all(|m| m.state == MemberState::Joining)
                && others.iter().all(|m| m.id > self.p.id)
            {
                tracing::info!("no member serves yet: this node starts the cluster");
                self.p.membership.set_local_state(MemberState::Normal).await;
                self.p.membership.start_serving();
                return Ok(0);
            }
            if waited % 300 == 100 {
                let last_error = self.p.membership.last_error().unwrap_or_default();
                tracing::info!(
                    seeds = ?self.p.seeds,
                    last_error,
                    "joining: waiting to hear from the cluster"
                );
                op.set_detail("waiting for a seed to answer");
            }
            waited += 1;
            tokio::time::sleep(Duration::from_millis(if waited < 100 { 10 } else { 100 })).await;
        }
        // 2. Everyone learns that writes for our future ranges come here too.
        self.p.membership.announce().await;
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
                if self.p.membership.take_stale_data() {
                    let stale = self.p.store.delete_all().await?;
                    tracing::info!(
                        keys = stale,
                        "joining again: deleted the data of an earlier membership"
                    );
                }
                let old = self.p.membership.ring();
                let mut new = (*old).clone();
                let tokens = self.p.membership.local_tokens();
                new.add_node_tokens(&self.p.id, &tokens);
                let transfers: Vec<Transfer> = plan_transfers(&old, &new, self.p.replicas)
                    .into_iter()
                    .filter(|t| t.target == self.p.id)
                    .collect();
                let me = vec![self.p.id.clone()];
                let plan = StreamPlan {
                    kind: "join".into(),
                    tasks: group_pulls(
                        &transfers,
                        &me,
                        |t, s| {
                            !new.preference_list_for_token(t.range.end, self.p.replicas)
                                .iter()
                                .any(|x| x == s)
                        },
                        |n| self.p.membership.is_down(n),
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
            if self.p.membership.is_down(peer) {
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
        self.p.membership.set_local_state(MemberState::Normal).await;
        // Every member reachable now knows: serve.
        self.p.membership.start_serving();
        let keys: u64 = plan.tasks.iter().map(|t| t.keys).sum();
        op.set_detail(format!("joined: {keys} keys streamed in"));
        tracing::info!(keys, "joined the cluster");
        Ok(keys)
    }

    // ---- decommission ----

    /// Runs (or resumes) this node's decommission; finishes with the node `left`.
    pub async fn run_decommission(self: Arc<Self>, op: Op) -> Result<u64> {
        if self.p.membership.local_state() != MemberState::Leaving {
            self.p
                .membership
                .set_local_state(MemberState::Leaving)
                .await;
        } else {
            self.p.membership.announce().await;
        }
        let mut plan = match self.load_plan("decommission") {
            Some(plan) => plan,
            None => {
                let rings = self.p.membership.rings();
                let transfers: Vec<Transfer> =
                    plan_transfers(&rings.read, &rings.pending, self.p.replicas)
                        .into_iter()
                        .filter(|t| t.sources.contains(&self.p.id))
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
        self.p.membership.set_local_state(MemberState::Left).await;
        let keys: u64 = plan.tasks.iter().map(|t| t.keys).sum();
        op.set_detail(format!("left the cluster: {keys} keys streamed out"));
        tracing::info!(keys, "decommissioned: this node has left the cluster");
        Ok(keys)
    }

    /// Starts the decommission (or returns the one running).
    pub fn start_decommission(self: &Arc<Self>) -> Result<Op> {
        match self.p.membership.local_state() {
            MemberState::Joining => return Err(NodeError::WrongState("joining")),
            MemberState::Left => return Err(NodeError::WrongState("already left")),
            MemberState::Leaving => {}
            MemberState::Normal => {
                // As Cassandra: never leave fewer nodes than replicas per key.
                let remaining = self
                    .p
                    .membership
                    .ring()
                    .nodes()
                    .into_iter()
                    .filter(|n| *n != self.p.id)
                    .count();
                if remaining < self.p.replicas {
                    return Err(NodeError::TooFewNodes {
                        remaining,
                        replicas: self.p.replicas,
                    });
                }
            }
        }
        Ok(self.start_lifecycle_op("decommission", |s, op| Box::pin(s.run_decommission(op))))
    }

    // ---- remove a dead node ----

    /// Admin RemoveNode: marks the node left and has every node that becomes a replica of one
    /// of its ranges pull that range from a surviving replica. Returns its id and the keys
    /// moved.
    pub async fn remove_node(&self, id_or_address: &str) -> Result<(NodeId, u64)> {
        // Only a node this one holds dead: a live one is decommissioned instead (it streams
        // its own ranges, including writes no other replica has).
        if let Some(view) = self
            .p
            .membership
            .member_views()
            .into_iter()
            .find(|m| m.id == id_or_address || m.address == id_or_address)
            && !matches!(view.status, NodeStatus::Dead | NodeStatus::Left)
            && view.id != self.p.id
        {
            return Err(NodeError::StillAlive(view.id));
        }
        let id = self.p.membership.mark_member_left(id_or_address)?;
        self.p.membership.announce().await;
        let after = self.p.membership.ring();
        // The ring with the removed node put back (its tokens stay in the member table), not
        // the ring read before marking it left: so running removenode again, after an
        // interruption (a target restarted, the caller was cut off), re-replicates its ranges
        // again instead of finding nothing to move. Versions already there merge, as always.
        let before = self.p.membership.ring_with_member(&id);
        let transfers = plan_transfers(&before, &after, self.p.replicas);
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
                |n| self.p.membership.is_down(n),
            );
        }
        let op = self.p.ops.start(
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
            let this = self;
            let op = op.clone();
            async move {
                let mut total = (0, 0);
                for task in tasks {
                    let sources: Vec<NodeId> =
                        std::iter::once(task.peer).chain(task.alternates).collect();
                    let r = if target == this.p.id {
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
            .p
            .membership
            .address_of(target)
            .ok_or_else(|| NodeError::UnknownNode(target.to_string()))?;
        self.p
            .transport
            .ask_to_pull(&address, &ranges, sources, reason)
            .await
    }
}
