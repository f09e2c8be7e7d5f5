//! Where a write goes, without I/O: a key's [`Placement`] (its replicas, the nodes taking its
//! range over, those held down, and the stand-ins of a sloppy quorum) and the [`WriteFanout`]
//! that turns each replica's answer into the next calls and hints.
//!
//! **Guarantees.** A placement lists each node once per role, in preference-list (ring-walk)
//! order, and never offers as a stand-in a replica of the key or a node held down (a pending
//! node may stand in: it is a healthy node past the replicas on the key's walk). A fan-out
//! tries each stand-in at most once, in order, and only for a replica that failed (or is held
//! down), never for a pending node; a stand-in's acknowledgement counts for the replica it
//! stands in for, once. Every failure that nothing else covers ends as exactly one
//! [`Step::KeepHint`] for its target: a failed replica once the stand-ins are used up (or
//! after the round is decided), a pending node at once. Its round decides as the
//! [`WriteRound`] inside it does, and never changes its mind.
//!
//! **How.** Dynamo 4.6. The driver (the node's coordinator) applies the write locally, builds
//! the fan-out ([`WriteFanout::start`]), performs every [`Step`] it returns (a call to a node,
//! or keeping a hint for a node in its own hint store), and feeds each call's result back with
//! [`WriteFanout::on_result`]; on its deadline it calls [`WriteFanout::on_timeout`]. Once it
//! answers the client it calls [`WriteFanout::settle`]: results that arrive later only leave
//! hints, they no longer recruit stand-ins.
//!
//! **Left out.** Sending, timers, the hint store and its delivery (the driver's); deciding who
//! is down (the failure detector's, [`crate::failure`]).

use std::collections::VecDeque;

use crate::NodeId;
use crate::coordinator::{Outcome, WriteRound};

/// Where a key lives, as one node's rings and failure detector see it when a request arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The replicas a request counts, in preference-list order.
    pub replicas: Vec<NodeId>,
    /// Nodes that get writes without counting toward W: the key's next replicas while a join
    /// or leave is under way.
    pub pending: Vec<NodeId>,
    /// Replicas and pending nodes the failure detector holds down: nothing is sent to them.
    pub down: Vec<NodeId>,
    /// Sloppy quorum: the nodes that may stand in for a replica that failed, in ring-walk
    /// order (empty in strict mode).
    pub stand_ins: Vec<NodeId>,
}

impl Placement {
    /// The placement of a key whose preference list of `n` is `replicas` on the ring of
    /// serving nodes and `next` on the ring with the joining and leaving ones, as `me` sees it.
    ///
    /// The nodes of `next` not among `replicas` are pending: they get writes without counting
    /// toward W. But while the replicas and the pending ones together are no more than `n`, as
    /// when a cluster is forming or growing toward N nodes, they are all counted, for reads and
    /// writes alike: with W + R > N >= their number, every read set still meets every write set
    /// within them. `is_down` names the nodes the failure detector holds down (`me` never is).
    /// With `walk` (the key's whole ring walk, for a sloppy quorum) the stand-ins are the nodes
    /// after the replicas on it that are not held down.
    pub fn new(
        mut replicas: Vec<NodeId>,
        next: Vec<NodeId>,
        n: usize,
        me: &str,
        is_down: impl Fn(&str) -> bool,
        walk: Option<Vec<NodeId>>,
    ) -> Placement {
        let mut pending: Vec<NodeId> = Vec::new();
        for p in next {
            if !replicas.contains(&p) && !pending.contains(&p) {
                pending.push(p);
            }
        }
        if replicas.len() + pending.len() <= n {
            replicas.append(&mut pending);
        }
        let is_down = |id: &str| id != me && is_down(id);
        let down = replicas
            .iter()
            .chain(&pending)
            .filter(|r| is_down(r))
            .cloned()
            .collect();
        let stand_ins = walk
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !replicas.contains(s) && !is_down(s))
            .collect();
        Placement {
            replicas,
            pending,
            down,
            stand_ins,
        }
    }

    /// Whether the failure detector held `node` down when the placement was made.
    pub fn is_down(&self, node: &str) -> bool {
        self.down.iter().any(|d| d == node)
    }
}

/// A call the driver makes for a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Store the write on a replica of the key.
    Replica(NodeId),
    /// Store the write on a node taking the key's range over (does not count toward W).
    Pending(NodeId),
    /// Ask `via` to keep the write as a hint for the replica `target`, which failed, and to
    /// deliver it when `target` answers again (counts toward W for `target`).
    StandIn { via: NodeId, target: NodeId },
}

/// What the fan-out asks of the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make this call and report its result with [`WriteFanout::on_result`]. A call to the
    /// driver's own node is a local one (a stand-in that is the coordinator keeps the hint
    /// in its own store).
    Send(Call),
    /// Keep the write as a hint for this node in the driver's own hint store.
    KeepHint(NodeId),
}

/// The fan-out of one write: its round, the stand-ins not tried yet, and whether the client
/// has been answered.
#[derive(Clone, Debug)]
pub struct WriteFanout {
    round: WriteRound,
    stand_ins: VecDeque<NodeId>,
    settled: bool,
}

impl WriteFanout {
    /// Starts the fan-out of a write that `me` has applied to its own copy, needing `required`
    /// acknowledgements among the placement's replicas. `me` counts as one when it is a
    /// replica. Returns the steps to take now: a call to every other replica and pending node,
    /// and for replicas held down, a stand-in (sloppy) or a hint (strict).
    pub fn start(placement: &Placement, me: &str, required: usize) -> (WriteFanout, Vec<Step>) {
        let mut fanout = WriteFanout {
            round: WriteRound::new(placement.replicas.clone(), required),
            stand_ins: placement.stand_ins.iter().cloned().collect(),
            settled: false,
        };
        if placement.replicas.iter().any(|r| r == me) {
            fanout.round.on_ack(me);
        }
        let mut steps = Vec::new();
        for r in placement.replicas.iter().filter(|r| *r != me) {
            if placement.is_down(r) {
                // Known to be down: not waited for (Dynamo 4.6 routes around it).
                let reason = format!("node {r} is down");
                fanout.replica_failed(r.clone(), reason, &mut steps);
            } else {
                steps.push(Step::Send(Call::Replica(r.clone())));
            }
        }
        for p in placement.pending.iter().filter(|p| *p != me) {
            steps.push(Step::Send(Call::Pending(p.clone())));
        }
        (fanout, steps)
    }

    /// The result of a call the fan-out asked for (`Err` with the reason it failed); returns
    /// the steps it leads to.
    pub fn on_result(&mut self, call: Call, result: Result<(), String>) -> Vec<Step> {
        let mut steps = Vec::new();
        match (call, result) {
            (Call::Replica(node), Ok(())) => {
                self.round.on_ack(&node);
            }
            (Call::StandIn { target, .. }, Ok(())) => {
                self.round.on_ack(&target);
            }
            (Call::Pending(_), Ok(())) => {}
            (Call::Pending(node), Err(_)) => steps.push(Step::KeepHint(node)),
            (Call::Replica(target) | Call::StandIn { target, .. }, Err(reason)) => {
                self.replica_failed(target, reason, &mut steps);
            }
        }
        steps
    }

    /// A replica's write (or its stand-in's) failed: the next stand-in takes its place, or,
    /// when none is left or the client has been answered, a hint kept here covers it.
    fn replica_failed(&mut self, target: NodeId, reason: String, steps: &mut Vec<Step>) {
        if !self.settled
            && let Some(via) = self.stand_ins.pop_front()
        {
            steps.push(Step::Send(Call::StandIn { via, target }));
            return;
        }
        steps.push(Step::KeepHint(target.clone()));
        self.round.on_failure(&target, reason);
    }

    /// The driver's deadline passed: a pending round fails.
    pub fn on_timeout(&mut self) -> &Outcome {
        self.round.on_timeout()
    }

    /// The client has been answered: failures reported from now on leave hints only.
    pub fn settle(&mut self) {
        self.settled = true;
    }

    pub fn outcome(&self) -> &Outcome {
        self.round.outcome()
    }

    /// The round inside (acknowledged and failed replicas).
    pub fn round(&self) -> &WriteRound {
        &self.round
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<NodeId> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn placement(replicas: &[&str], down: &[&str], stand_ins: &[&str]) -> Placement {
        Placement {
            replicas: ids(replicas),
            pending: Vec::new(),
            down: ids(down),
            stand_ins: ids(stand_ins),
        }
    }

    fn send(call: Call) -> Step {
        Step::Send(call)
    }

    fn stand_in(via: &str, target: &str) -> Call {
        Call::StandIn {
            via: via.into(),
            target: target.into(),
        }
    }

    #[test]
    fn placement_counts_pending_nodes_while_the_cluster_is_smaller_than_n() {
        let none = |_: &str| false;
        // Two serving nodes and a joiner: three together are still N, so all count.
        let p = Placement::new(ids(&["a", "b"]), ids(&["a", "c", "b"]), 3, "a", none, None);
        assert_eq!(p.replicas, ids(&["a", "b", "c"]));
        assert!(p.pending.is_empty());
        // Three serving and a joiner: the joiner is pending.
        let p = Placement::new(
            ids(&["a", "b", "c"]),
            ids(&["a", "d", "b"]),
            3,
            "a",
            none,
            None,
        );
        assert_eq!(p.replicas, ids(&["a", "b", "c"]));
        assert_eq!(p.pending, ids(&["d"]));
    }

    #[test]
    fn placement_never_holds_itself_down_nor_offers_replicas_or_down_nodes_as_stand_ins() {
        let down = |id: &str| id == "a" || id == "c" || id == "e";
        let walk = Some(ids(&["a", "b", "c", "d", "e", "f"]));
        let p = Placement::new(
            ids(&["a", "b", "c"]),
            ids(&["a", "b", "c"]),
            3,
            "a",
            down,
            walk,
        );
        assert_eq!(p.down, ids(&["c"]));
        assert_eq!(p.stand_ins, ids(&["d", "f"]));
        // Strict mode: no walk, no stand-ins.
        let p = Placement::new(ids(&["a", "b", "c"]), vec![], 3, "a", down, None);
        assert!(p.stand_ins.is_empty());
    }

    #[test]
    fn every_replica_answering_decides_the_round_without_hints() {
        let (mut f, steps) = WriteFanout::start(&placement(&["a", "b", "c"], &[], &[]), "a", 2);
        assert_eq!(
            steps,
            vec![
                send(Call::Replica("b".into())),
                send(Call::Replica("c".into()))
            ]
        );
        assert_eq!(f.outcome(), &Outcome::Pending);
        assert!(f.on_result(Call::Replica("b".into()), Ok(())).is_empty());
        assert_eq!(f.outcome(), &Outcome::Succeeded);
        assert!(f.on_result(Call::Replica("c".into()), Ok(())).is_empty());
        assert_eq!(f.round().acked(), ids(&["a", "b", "c"]));
    }

    #[test]
    fn strict_quorum_keeps_a_hint_for_a_failed_replica_and_counts_it_as_failed() {
        let (mut f, _) = WriteFanout::start(&placement(&["a", "b", "c"], &[], &[]), "a", 3);
        let steps = f.on_result(Call::Replica("b".into()), Err("refused".into()));
        assert_eq!(steps, vec![Step::KeepHint("b".into())]);
        assert!(matches!(f.outcome(), Outcome::Failed(_)));
        assert_eq!(
            f.round().failed(),
            vec![("b".to_string(), "refused".to_string())]
        );
    }

    #[test]
    fn a_replica_held_down_gets_a_stand_in_at_once_whose_ack_counts_for_it() {
        let p = placement(&["a", "b", "c"], &["c"], &["d", "e"]);
        let (mut f, steps) = WriteFanout::start(&p, "a", 3);
        assert_eq!(
            steps,
            vec![send(Call::Replica("b".into())), send(stand_in("d", "c"))]
        );
        f.on_result(Call::Replica("b".into()), Ok(()));
        assert_eq!(f.outcome(), &Outcome::Pending);
        assert!(f.on_result(stand_in("d", "c"), Ok(())).is_empty());
        assert_eq!(f.outcome(), &Outcome::Succeeded);
        assert_eq!(f.round().acked(), ids(&["a", "b", "c"]));
    }

    #[test]
    fn stand_ins_are_tried_in_order_once_each_then_a_local_hint_covers_the_rest() {
        let p = placement(&["a", "b", "c"], &[], &["d", "e"]);
        let (mut f, _) = WriteFanout::start(&p, "a", 3);
        assert_eq!(
            f.on_result(Call::Replica("b".into()), Err("timeout".into())),
            vec![send(stand_in("d", "b"))]
        );
        assert_eq!(
            f.on_result(Call::Replica("c".into()), Err("refused".into())),
            vec![send(stand_in("e", "c"))]
        );
        // d refuses: no stand-in is left, so b's write is a hint here and b has failed.
        assert_eq!(
            f.on_result(stand_in("d", "b"), Err("full".into())),
            vec![Step::KeepHint("b".into())]
        );
        assert!(matches!(f.outcome(), Outcome::Failed(_)));
        // A late success of e still counts for c (the round reports who acknowledged).
        assert!(f.on_result(stand_in("e", "c"), Ok(())).is_empty());
        assert_eq!(f.round().acked(), ids(&["a", "c"]));
    }

    #[test]
    fn pending_nodes_get_the_write_and_a_hint_on_failure_without_touching_the_round() {
        let p = Placement {
            replicas: ids(&["a", "b"]),
            pending: ids(&["c"]),
            down: Vec::new(),
            stand_ins: ids(&["d"]),
        };
        let (mut f, steps) = WriteFanout::start(&p, "a", 2);
        assert_eq!(
            steps,
            vec![
                send(Call::Replica("b".into())),
                send(Call::Pending("c".into()))
            ]
        );
        // A pending node's failure never recruits a stand-in.
        assert_eq!(
            f.on_result(Call::Pending("c".into()), Err("refused".into())),
            vec![Step::KeepHint("c".into())]
        );
        assert_eq!(f.outcome(), &Outcome::Pending);
        f.on_result(Call::Replica("b".into()), Ok(()));
        assert_eq!(f.outcome(), &Outcome::Succeeded);
    }

    #[test]
    fn after_the_answer_failures_leave_hints_and_recruit_no_stand_in() {
        let p = placement(&["a", "b", "c"], &[], &["d"]);
        let (mut f, _) = WriteFanout::start(&p, "a", 2);
        f.on_result(Call::Replica("b".into()), Ok(()));
        assert_eq!(f.outcome(), &Outcome::Succeeded);
        f.settle();
        assert_eq!(
            f.on_result(Call::Replica("c".into()), Err("timeout".into())),
            vec![Step::KeepHint("c".into())]
        );
        assert_eq!(f.outcome(), &Outcome::Succeeded);
    }

    #[test]
    fn a_coordinator_that_is_not_a_replica_does_not_count_itself() {
        let p = placement(&["b", "c", "d"], &[], &[]);
        let (mut f, steps) = WriteFanout::start(&p, "a", 2);
        assert_eq!(steps.len(), 3);
        f.on_result(Call::Replica("b".into()), Ok(()));
        assert_eq!(f.outcome(), &Outcome::Pending);
        f.on_result(Call::Replica("c".into()), Ok(()));
        assert_eq!(f.outcome(), &Outcome::Succeeded);
    }

    proptest::proptest! {
        /// Any placement, any order of answers, any moment of the client's answer: each
        /// stand-in is tried at most once and never for a pending node, the round never
        /// changes its mind and succeeds exactly when enough replicas (or their stand-ins)
        /// acknowledged, and every node that did not get the write ends with exactly one hint.
        #[test]
        fn every_miss_ends_as_one_hint_and_no_stand_in_serves_twice(
            replicas in 1usize..6,
            pending in 0usize..3,
            stand_ins in 0usize..4,
            down_mask in 0u8..32,
            coordinator_is_replica in proptest::bool::ANY,
            required_seed in 0usize..6,
            answers in proptest::collection::vec((0usize..16, proptest::bool::ANY), 0..40),
            settle_after in 0usize..40,
        ) {
            let replica_ids: Vec<NodeId> = (0..replicas).map(|i| format!("r{i}")).collect();
            let me = if coordinator_is_replica { "r0".to_string() } else { "x".to_string() };
            let placement = Placement {
                replicas: replica_ids.clone(),
                pending: (0..pending).map(|i| format!("p{i}")).collect(),
                down: replica_ids
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| down_mask & (1 << i) != 0 && **r != me)
                    .map(|(_, r)| r.clone())
                    .collect(),
                stand_ins: (0..stand_ins).map(|i| format!("s{i}")).collect(),
            };
            let required = 1 + required_seed % replicas;
            let (mut fanout, first) = WriteFanout::start(&placement, &me, required);
            let mut out: Vec<Call> = Vec::new();
            let mut hints: Vec<NodeId> = Vec::new();
            let mut recruited: Vec<NodeId> = Vec::new();
            let mut take = |steps: Vec<Step>, out: &mut Vec<Call>, hints: &mut Vec<NodeId>| {
                for step in steps {
                    match step {
                        Step::Send(call) => {
                            if let Call::StandIn { via, target } = &call {
                                assert!(!recruited.contains(via), "{via} recruited twice");
                                assert!(target.starts_with('r'), "a stand-in for {target}");
                                recruited.push(via.clone());
                            }
                            out.push(call);
                        }
                        Step::KeepHint(node) => hints.push(node),
                    }
                }
            };
            take(first, &mut out, &mut hints);
            let mut decided: Option<Outcome> = None;
            let mut acked: Vec<NodeId> = Vec::new();
            let mut got: Vec<NodeId> = Vec::new();
            let mut answered = 0;
            // The answers given, then every call still out fails (or succeeds) in turn.
            let mut script = answers.into_iter();
            while !out.is_empty() {
                let (pick, ok) = script.next().unwrap_or((0, true));
                let call = out.remove(pick % out.len());
                if ok {
                    match &call {
                        Call::Replica(r) => acked.push(r.clone()),
                        Call::StandIn { target, .. } => acked.push(target.clone()),
                        Call::Pending(p) => got.push(p.clone()),
                    }
                }
                let result = if ok { Ok(()) } else { Err("refused".to_string()) };
                let steps = fanout.on_result(call, result);
                take(steps, &mut out, &mut hints);
                answered += 1;
                if answered == settle_after {
                    fanout.settle();
                }
                if let Some(d) = &decided {
                    proptest::prop_assert_eq!(d, fanout.outcome());
                } else if *fanout.outcome() != Outcome::Pending {
                    decided = Some(fanout.outcome().clone());
                }
            }
            if coordinator_is_replica {
                acked.push(me.clone());
            }
            let succeeded = acked.len() >= required;
            proptest::prop_assert_eq!(succeeded, *fanout.outcome() == Outcome::Succeeded);
            for node in placement.replicas.iter().chain(&placement.pending) {
                if *node == me {
                    continue;
                }
                let hinted = hints.iter().filter(|h| *h == node).count();
                let got_it = acked.contains(node) || got.contains(node);
                proptest::prop_assert_eq!(hinted, usize::from(!got_it), "{} hinted {} times", node, hinted);
            }
        }
    }

    #[test]
    fn the_deadline_fails_an_undecided_round_only() {
        let (mut f, _) = WriteFanout::start(&placement(&["a", "b", "c"], &[], &[]), "a", 2);
        assert!(matches!(f.on_timeout(), Outcome::Failed(_)));
        let (mut f, _) = WriteFanout::start(&placement(&["a", "b", "c"], &[], &[]), "a", 1);
        assert_eq!(f.on_timeout(), &Outcome::Succeeded);
    }
}
