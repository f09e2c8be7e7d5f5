//! Quorum rounds without I/O: the coordinator's decision for one read or one write.
//!
//! **Guarantees.** A round decides once: it moves from [`Outcome::Pending`] to
//! [`Outcome::Succeeded`] or [`Outcome::Failed`] and never changes its mind. It succeeds as soon
//! as `required` distinct replicas have answered well, and fails as soon as that has become
//! impossible (too many replicas failed) or the driver reports the deadline. Each replica counts
//! once however many times it answers; answers from nodes that are not among the round's
//! replicas are ignored. Every list a round returns is in the order of its replicas (the
//! preference list), and failure lists are too, so the outcome is a function of the answers
//! alone.
//!
//! **How.** Dynamo 4.5. The driver (the node layer) sends the request to every replica itself,
//! feeds each reply or error into the round with `on_ack`/`on_reply`/`on_failure`, and calls
//! `on_timeout` when its timer fires; each call returns the current outcome. A [`ReadRound`]
//! merges every reply ([`Siblings::merge`]), including replies that arrive after the decision,
//! and names the replicas whose copy differs from the merge: the targets of read repair, each
//! with the set to send it (4.7). A first answer fixes how a replica counts: a replica that
//! failed and later replies is still a failure.
//!
//! **Left out.** Sending, timers and retries (the driver's); choosing replicas, sloppy-quorum
//! stand-ins and who gets a hint ([`crate::fanout`], which drives a [`WriteRound`]).

use std::collections::BTreeMap;

use crate::NodeId;
use crate::versions::{ConflictMode, Siblings};

/// The reason recorded for a replica that had not answered when the round timed out.
pub const NO_REPLY: &str = "no reply before the deadline";

/// Where a round stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not decided yet.
    Pending,
    /// Enough replicas answered.
    Succeeded,
    /// Enough replicas can no longer answer, or the deadline passed.
    Failed(QuorumError),
}

impl Outcome {
    /// True once the round has succeeded or failed.
    pub fn is_decided(&self) -> bool {
        !matches!(self, Outcome::Pending)
    }
}

/// Why a round failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// Fewer than `required` replicas answered well. `failures` names every replica that did not,
    /// in replica order, with its reason ([`NO_REPLY`] for one still silent at the deadline).
    #[error("quorum not reached: needed {required}, got {acked}")]
    NotReached {
        required: usize,
        acked: usize,
        failures: Vec<(NodeId, String)>,
    },
}

/// How one replica answered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    Failed(String),
}

/// The counting shared by reads and writes.
#[derive(Clone, Debug)]
struct Tally {
    /// Distinct replicas in preference-list order.
    replicas: Vec<NodeId>,
    required: usize,
    answers: BTreeMap<NodeId, Answer>,
    outcome: Outcome,
}

impl Tally {
    fn new(replicas: Vec<NodeId>, required: usize) -> Tally {
        let mut distinct: Vec<NodeId> = Vec::with_capacity(replicas.len());
        for r in replicas {
            if !distinct.contains(&r) {
                distinct.push(r);
            }
        }
        let mut tally = Tally {
            replicas: distinct,
            required,
            answers: BTreeMap::new(),
            outcome: Outcome::Pending,
        };
        tally.decide();
        tally
    }

    fn is_replica(&self, node: &str) -> bool {
        self.replicas.iter().any(|r| r == node)
    }

    /// Records a first answer from a replica; false when ignored (stranger or already answered).
    fn record(&mut self, node: &str, answer: Answer) -> bool {
        if !self.is_replica(node) || self.answers.contains_key(node) {
            return false;
        }
        self.answers.insert(node.to_string(), answer);
        self.decide();
        true
    }

    fn acked(&self) -> Vec<NodeId> {
        self.in_order(|a| matches!(a, Some(Answer::Ok)))
    }

    fn pending(&self) -> Vec<NodeId> {
        self.in_order(|a| a.is_none())
    }

    fn failed(&self) -> Vec<(NodeId, String)> {
        self.replicas
            .iter()
            .filter_map(|r| match self.answers.get(r) {
                Some(Answer::Failed(reason)) => Some((r.clone(), reason.clone())),
                _ => None,
            })
            .collect()
    }

    fn in_order(&self, keep: impl Fn(Option<&Answer>) -> bool) -> Vec<NodeId> {
        self.replicas
            .iter()
            .filter(|r| keep(self.answers.get(*r)))
            .cloned()
            .collect()
    }

    fn count_ok(&self) -> usize {
        self.answers.values().filter(|a| **a == Answer::Ok).count()
    }

    fn decide(&mut self) {
        if self.outcome.is_decided() {
            return;
        }
        let ok = self.count_ok();
        let failed = self.answers.len() - ok;
        if ok >= self.required {
            self.outcome = Outcome::Succeeded;
        } else if self.replicas.len() - failed < self.required {
            self.outcome = Outcome::Failed(QuorumError::NotReached {
                required: self.required,
                acked: ok,
                failures: self.failed(),
            });
        }
    }

    fn timeout(&mut self) {
        if self.outcome.is_decided() {
            return;
        }
        let failures = self
            .replicas
            .iter()
            .filter_map(|r| match self.answers.get(r) {
                Some(Answer::Ok) => None,
                Some(Answer::Failed(reason)) => Some((r.clone(), reason.clone())),
                None => Some((r.clone(), NO_REPLY.to_string())),
            })
            .collect();
        self.outcome = Outcome::Failed(QuorumError::NotReached {
            required: self.required,
            acked: self.count_ok(),
            failures,
        });
    }
}

/// One write sent to `replicas`, waiting for `required` acknowledgements.
///
/// With fewer replicas than `required` it has failed from the start; with `required == 0` it has
/// succeeded from the start.
#[derive(Clone, Debug)]
pub struct WriteRound {
    tally: Tally,
}

impl WriteRound {
    /// A round over `replicas` (duplicates count once), in preference-list order.
    pub fn new(replicas: Vec<NodeId>, required: usize) -> Self {
        WriteRound {
            tally: Tally::new(replicas, required),
        }
    }

    /// `node` stored the write.
    pub fn on_ack(&mut self, node: &str) -> &Outcome {
        self.tally.record(node, Answer::Ok);
        &self.tally.outcome
    }

    /// `node` could not store the write. Fails the round as soon as success is impossible.
    pub fn on_failure(&mut self, node: &str, reason: String) -> &Outcome {
        self.tally.record(node, Answer::Failed(reason));
        &self.tally.outcome
    }

    /// The deadline passed: a pending round fails; a decided one stays as it is.
    pub fn on_timeout(&mut self) -> &Outcome {
        self.tally.timeout();
        &self.tally.outcome
    }

    pub fn outcome(&self) -> &Outcome {
        &self.tally.outcome
    }

    /// Replicas that acknowledged, in replica order (late ones included).
    pub fn acked(&self) -> Vec<NodeId> {
        self.tally.acked()
    }

    /// Replicas that failed, with their reasons, in replica order.
    pub fn failed(&self) -> Vec<(NodeId, String)> {
        self.tally.failed()
    }

    /// Replicas that have not answered yet, in replica order: candidates for hinted handoff
    /// once the round is over.
    pub fn pending(&self) -> Vec<NodeId> {
        self.tally.pending()
    }

    /// The round's replicas, distinct, in order.
    pub fn replicas(&self) -> &[NodeId] {
        &self.tally.replicas
    }

    pub fn required(&self) -> usize {
        self.tally.required
    }
}

/// One read sent to `replicas`, waiting for `required` replies.
#[derive(Clone, Debug)]
pub struct ReadRound {
    tally: Tally,
    mode: ConflictMode,
    /// Each replica's reply (duplicates merged).
    replies: BTreeMap<NodeId, Siblings>,
    /// The merge of every reply, resolved per `mode`.
    merged: Siblings,
}

impl ReadRound {
    /// A round over `replicas` (duplicates count once) that keeps siblings.
    pub fn new(replicas: Vec<NodeId>, required: usize) -> Self {
        ReadRound {
            tally: Tally::new(replicas, required),
            mode: ConflictMode::Siblings,
            replies: BTreeMap::new(),
            merged: Siblings::new(),
        }
    }

    /// Resolves the merged set per `mode` (last-write-wins keeps one version), so that replicas
    /// already holding the winner are not repaired.
    pub fn with_mode(mut self, mode: ConflictMode) -> Self {
        self.mode = mode;
        self.merged = self.merged.resolve(mode);
        self
    }

    /// `node` answered with its versions of the key (empty when it has none). Replies after the
    /// decision still join [`ReadRound::merged`]; a second reply from a node is merged with its
    /// first but counts once.
    pub fn on_reply(&mut self, node: &str, versions: Siblings) -> &Outcome {
        let first = self.tally.record(node, Answer::Ok);
        if first || self.replies.contains_key(node) {
            self.merged = self.merged.merge(&versions).resolve(self.mode);
            let reply = self.replies.entry(node.to_string()).or_default();
            *reply = reply.merge(&versions).resolve(self.mode);
        }
        &self.tally.outcome
    }

    /// `node` could not answer. Fails the round as soon as success is impossible.
    pub fn on_failure(&mut self, node: &str, reason: String) -> &Outcome {
        self.tally.record(node, Answer::Failed(reason));
        &self.tally.outcome
    }

    /// The deadline passed: a pending round fails; a decided one stays as it is.
    pub fn on_timeout(&mut self) -> &Outcome {
        self.tally.timeout();
        &self.tally.outcome
    }

    pub fn outcome(&self) -> &Outcome {
        &self.tally.outcome
    }

    /// The merge of every reply so far, late replies included.
    pub fn merged(&self) -> Siblings {
        self.merged.clone()
    }

    /// Replicas that replied with something other than [`ReadRound::merged`], in replica order,
    /// each with the set to write to it: the read-repair targets.
    pub fn stale_replicas(&self) -> Vec<(NodeId, Siblings)> {
        self.tally
            .replicas
            .iter()
            .filter(|r| self.replies.get(*r).is_some_and(|s| *s != self.merged))
            .map(|r| (r.clone(), self.merged.clone()))
            .collect()
    }

    /// What `node` replied, if it did.
    pub fn reply(&self, node: &str) -> Option<&Siblings> {
        self.replies.get(node)
    }

    /// Replicas that replied, in replica order.
    pub fn acked(&self) -> Vec<NodeId> {
        self.tally.acked()
    }

    /// Replicas that failed, with their reasons, in replica order.
    pub fn failed(&self) -> Vec<(NodeId, String)> {
        self.tally.failed()
    }

    /// Replicas that have not answered yet, in replica order.
    pub fn pending(&self) -> Vec<NodeId> {
        self.tally.pending()
    }

    /// The round's replicas, distinct, in order.
    pub fn replicas(&self) -> &[NodeId] {
        &self.tally.replicas
    }

    pub fn required(&self) -> usize {
        self.tally.required
    }
}
