//! Hinted handoff's delivery (Dynamo 4.6) as a component: [`Handoff`] holds the node's
//! [`HintStore`] (where the coordinator keeps writes a replica could not take) and delivers
//! them when their node answers again, through a [`HandoffTransport`]: over gRPC in a node, in
//! process in tests ([`crate::twin::MemPeers`], over real hint stores and
//! engines). Where the hints for a node go now is the node's membership's to say
//! ([`HintRoutes`]); the component only acts on it.
//!
//! A hint is removed only after its target acknowledged it, so a delivery cut short sends the
//! rest (and perhaps some again: replicas merge versions idempotently) on the next pass.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use distkv_cluster::{NodeId, Siblings};

use crate::counters::Metrics;
use crate::error::{NodeError, Result};
use crate::hints::{Hint, HintStore};
use crate::transport::HandoffTransport;

#[cfg(test)]
mod tests;

/// Hints read, sent and removed at a time.
const BATCH: usize = 128;

/// What to do now with the hints held for a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HintRoute {
    /// Deliver them to the node at this address.
    Deliver(String),
    /// Keep them: the node is down, or its address is not known yet.
    Hold,
    /// Drop them: the node left the ring, and its ranges were streamed to their new owners,
    /// which had these writes from the other replicas.
    Drop,
}

/// Where hints go: the node's view of its members.
pub trait HintRoutes {
    fn route(&self, target: &str) -> HintRoute;
}

/// The node's hints and their delivery.
pub struct Handoff<T> {
    hints: HintStore,
    transport: T,
    metrics: Arc<Metrics>,
}

/// Runs blocking hint-store work off the async threads.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> Result<R> + Send + 'static) -> Result<R> {
    crate::blocking::spawn(f)
        .await
        .map_err(|_| NodeError::ShuttingDown)?
}

impl<T: HandoffTransport> Handoff<T> {
    pub fn new(hints: HintStore, transport: T, metrics: Arc<Metrics>) -> Self {
        Handoff {
            hints,
            transport,
            metrics,
        }
    }

    pub fn hints(&self) -> &HintStore {
        &self.hints
    }

    /// The nodes hints are held for.
    async fn targets(&self) -> Result<Vec<NodeId>> {
        let hints = self.hints.clone();
        blocking(move || hints.targets()).await
    }

    /// Up to a batch of the hints held for `target`.
    async fn pending(&self, target: &str) -> Result<Vec<Hint>> {
        let (hints, target) = (self.hints.clone(), target.to_string());
        blocking(move || hints.pending(&target, BATCH)).await
    }

    async fn remove(&self, batch: Vec<Hint>) -> Result<()> {
        let hints = self.hints.clone();
        blocking(move || {
            for h in batch {
                hints.remove(&h.id)?;
            }
            Ok(())
        })
        .await
    }

    /// The component's worker: a pass of [`Self::deliver`] every `every`, until `stop` turns
    /// true (or its sender is gone). A pass that fails is logged and tried again next time.
    pub async fn run(
        &self,
        routes: &impl HintRoutes,
        every: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                    continue;
                }
            }
            if let Err(e) = self.deliver(routes).await {
                tracing::debug!(error = %e, "hint delivery incomplete");
            }
        }
    }

    /// One pass of delivery over every node hints are held for, routed by `routes`; returns
    /// how many hints were delivered. One target that fails does not hold up the others.
    pub async fn deliver(&self, routes: &impl HintRoutes) -> Result<usize> {
        let mut delivered = 0;
        for target in self.targets().await? {
            match routes.route(&target) {
                HintRoute::Drop => {
                    let (hints, t) = (self.hints.clone(), target.clone());
                    let dropped = blocking(move || hints.drop_target(&t)).await?;
                    if dropped > 0 {
                        tracing::info!(
                            target_node = target,
                            dropped,
                            "dropped hints for a node that left"
                        );
                    }
                }
                HintRoute::Hold => {}
                HintRoute::Deliver(address) => match self.deliver_to(&target, &address).await {
                    Ok(n) => delivered += n,
                    Err(e) => {
                        tracing::debug!(target_node = target, error = %e, "hint delivery failed")
                    }
                },
            }
        }
        Ok(delivered)
    }

    /// Delivers every hint held for `target` (at `address`), in batches; returns how many.
    async fn deliver_to(&self, target: &str, address: &str) -> Result<usize> {
        let mut delivered = 0;
        loop {
            let batch = self.pending(target).await?;
            if batch.is_empty() {
                return Ok(delivered);
            }
            self.transport.deliver(address, &entries(&batch)).await?;
            let n = batch.len();
            self.remove(batch).await?;
            delivered += n;
            self.metrics
                .hints_delivered
                .fetch_add(n as u64, Ordering::Relaxed);
            tracing::info!(target_node = target, n, "delivered hints");
        }
    }

    /// Before this node leaves: delivers what it can, then hands the hints whose target is
    /// unreachable to the first of `heirs` (id and address: members that serve and answer)
    /// that is not itself such a target, which keeps and delivers them later.
    pub async fn hand_off_all(
        &self,
        routes: &impl HintRoutes,
        heirs: &[(NodeId, String)],
    ) -> Result<()> {
        self.deliver(routes).await?;
        let targets = self.targets().await?;
        if targets.is_empty() {
            return Ok(());
        }
        let (heir, address) = heirs
            .iter()
            .find(|(id, _)| !targets.contains(id))
            .ok_or(NodeError::NoSource)?;
        for target in targets {
            loop {
                let batch = self.pending(&target).await?;
                if batch.is_empty() {
                    break;
                }
                self.transport
                    .keep_hints(address, &target, &entries(&batch))
                    .await?;
                self.remove(batch).await?;
            }
            tracing::info!(target_node = target, heir, "handed hints to another member");
        }
        Ok(())
    }
}

fn entries(batch: &[Hint]) -> Vec<(String, Siblings)> {
    batch
        .iter()
        .map(|h| (h.key.clone(), h.versions.clone()))
        .collect()
}
