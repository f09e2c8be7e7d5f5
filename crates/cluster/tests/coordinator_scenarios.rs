//! Quorum rounds driven one message at a time: each scenario is a list of deliveries (replies,
//! failures, the deadline) with the outcome expected after each, then what the round reports.

use distkv_cluster::coordinator::NO_REPLY;
use distkv_cluster::{
    ConflictMode, Dot, NodeId, Outcome, QuorumError, ReadRound, Siblings, VectorClock, Version,
    WriteRound,
};

/// One delivery to a round.
#[derive(Clone, Debug)]
enum Msg {
    Ack(&'static str),
    Reply(&'static str, Siblings),
    Fail(&'static str, &'static str),
    Timeout,
}

use Msg::*;

const PENDING: Outcome = Outcome::Pending;
const OK: Outcome = Outcome::Succeeded;

fn not_reached(required: usize, acked: usize, failures: &[(&str, &str)]) -> Outcome {
    Outcome::Failed(QuorumError::NotReached {
        required,
        acked,
        failures: failures
            .iter()
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect(),
    })
}

fn ids(v: &[&str]) -> Vec<NodeId> {
    v.iter().map(|s| s.to_string()).collect()
}

fn version(node: &str, counter: u64, ctx: &[(&str, u64)], value: &str, ts: u64) -> Version {
    Version {
        dot: Dot::new(node, counter),
        context: ctx.iter().copied().collect::<VectorClock>(),
        value: Some(value.as_bytes().to_vec()),
        timestamp_ms: ts,
    }
}

fn set(versions: &[&Version]) -> Siblings {
    versions.iter().fold(Siblings::new(), |s, v| {
        s.merge(&Siblings::from_version((*v).clone()))
    })
}

struct WriteCase {
    name: &'static str,
    replicas: &'static [&'static str],
    required: usize,
    script: Vec<(Msg, Outcome)>,
    acked: &'static [&'static str],
    pending: &'static [&'static str],
}

#[test]
fn write_rounds() {
    let cases = vec![
        WriteCase {
            name: "all replicas ack",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            script: vec![(Ack("n1"), PENDING), (Ack("n2"), OK), (Ack("n3"), OK)],
            acked: &["n1", "n2", "n3"],
            pending: &[],
        },
        WriteCase {
            name: "slow replica: decided before it answers, the deadline changes nothing",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            script: vec![(Ack("n3"), PENDING), (Ack("n2"), OK), (Timeout, OK)],
            acked: &["n2", "n3"],
            pending: &["n1"],
        },
        WriteCase {
            name: "lost replies: the deadline fails the round",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            script: vec![
                (Ack("n1"), PENDING),
                (
                    Timeout,
                    not_reached(2, 1, &[("n2", NO_REPLY), ("n3", NO_REPLY)]),
                ),
                // A late ack is recorded but does not overturn the decision.
                (
                    Ack("n2"),
                    not_reached(2, 1, &[("n2", NO_REPLY), ("n3", NO_REPLY)]),
                ),
            ],
            acked: &["n1", "n2"],
            pending: &["n3"],
        },
        WriteCase {
            name: "failures that make success impossible fail at once",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            script: vec![
                (Fail("n2", "disk full"), PENDING),
                (
                    Fail("n1", "connection refused"),
                    not_reached(2, 0, &[("n1", "connection refused"), ("n2", "disk full")]),
                ),
            ],
            acked: &[],
            pending: &["n3"],
        },
        WriteCase {
            name: "ALL fails on the first failure",
            replicas: &["n1", "n2", "n3"],
            required: 3,
            script: vec![
                (Ack("n1"), PENDING),
                (
                    Fail("n3", "timeout"),
                    not_reached(3, 1, &[("n3", "timeout")]),
                ),
            ],
            acked: &["n1"],
            pending: &["n2"],
        },
        WriteCase {
            name: "a failure is survivable while enough replicas remain",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            script: vec![
                (Fail("n1", "io"), PENDING),
                (Ack("n2"), PENDING),
                (Ack("n3"), OK),
            ],
            acked: &["n2", "n3"],
            pending: &[],
        },
        WriteCase {
            name: "duplicate acks count once; strangers are ignored",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            script: vec![
                (Ack("n1"), PENDING),
                (Ack("n1"), PENDING),
                (Ack("n9"), PENDING),
                (Ack("n3"), OK),
            ],
            acked: &["n1", "n3"],
            pending: &["n2"],
        },
        WriteCase {
            name: "a replica's first answer decides how it counts",
            replicas: &["n1", "n2"],
            required: 2,
            script: vec![
                (Ack("n1"), PENDING),
                (Fail("n1", "late error"), PENDING),
                (Fail("n2", "io"), not_reached(2, 1, &[("n2", "io")])),
                (Ack("n2"), not_reached(2, 1, &[("n2", "io")])),
            ],
            acked: &["n1"],
            pending: &[],
        },
        WriteCase {
            name: "W=1 succeeds on the first ack",
            replicas: &["n1", "n2", "n3"],
            required: 1,
            script: vec![(Ack("n2"), OK), (Fail("n1", "io"), OK)],
            acked: &["n2"],
            pending: &["n3"],
        },
    ];
    for case in cases {
        let mut round = WriteRound::new(ids(case.replicas), case.required);
        assert_eq!(round.outcome(), &PENDING, "{}: at start", case.name);
        for (i, (msg, want)) in case.script.iter().enumerate() {
            let got = match msg {
                Ack(n) => round.on_ack(n).clone(),
                Fail(n, reason) => round.on_failure(n, reason.to_string()).clone(),
                Timeout => round.on_timeout().clone(),
                Reply(..) => unreachable!("writes get acks"),
            };
            assert_eq!(&got, want, "{}: step {i} ({msg:?})", case.name);
            assert_eq!(round.outcome(), want, "{}: step {i}", case.name);
        }
        assert_eq!(round.acked(), ids(case.acked), "{}: acked", case.name);
        assert_eq!(round.pending(), ids(case.pending), "{}: pending", case.name);
    }
}

#[test]
fn write_round_edge_shapes() {
    // Fewer replicas than required (a cluster smaller than N): failed from the start.
    let round = WriteRound::new(ids(&["n1"]), 2);
    assert_eq!(round.outcome(), &not_reached(2, 0, &[]));
    // Duplicates in the replica list count once.
    let mut round = WriteRound::new(ids(&["n1", "n1", "n2"]), 2);
    assert_eq!(round.replicas(), ids(&["n1", "n2"]));
    assert_eq!(round.on_ack("n1"), &PENDING);
    assert_eq!(round.on_ack("n2"), &OK);
    // The error reads as the node layer reports it.
    let Outcome::Failed(err) = not_reached(2, 1, &[("n2", NO_REPLY)]) else {
        unreachable!()
    };
    assert_eq!(err.to_string(), "quorum not reached: needed 2, got 1");
}

struct ReadCase {
    name: &'static str,
    replicas: &'static [&'static str],
    required: usize,
    mode: ConflictMode,
    script: Vec<(Msg, Outcome)>,
    merged: Siblings,
    stale: Vec<(&'static str, Siblings)>,
}

#[test]
fn read_rounds() {
    let old = version("n1", 1, &[], "old", 10);
    let new = version("n2", 1, &[("n1", 1)], "new", 20);
    let x = version("n1", 2, &[("n1", 1)], "x", 30);
    let y = version("n3", 1, &[("n1", 1)], "y", 25);
    let z = version("n2", 2, &[], "z", 5);
    let both = set(&[&x, &y]);

    let cases = vec![
        ReadCase {
            name: "all replicas agree: nothing to repair",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            mode: ConflictMode::Siblings,
            script: vec![
                (Reply("n1", set(&[&new])), PENDING),
                (Reply("n2", set(&[&new])), OK),
                (Reply("n3", set(&[&new])), OK),
            ],
            merged: set(&[&new]),
            stale: vec![],
        },
        ReadCase {
            name: "a stale replica (older version) is listed for repair",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            mode: ConflictMode::Siblings,
            script: vec![
                (Reply("n1", set(&[&new])), PENDING),
                (Reply("n2", set(&[&old])), OK),
            ],
            merged: set(&[&new]),
            stale: vec![("n2", set(&[&new]))],
        },
        ReadCase {
            name: "slow replica: decided first, its late stale reply is absorbed and repaired",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            mode: ConflictMode::Siblings,
            script: vec![
                (Reply("n2", set(&[&new])), PENDING),
                (Reply("n3", set(&[&new])), OK),
                (Reply("n1", set(&[&old])), OK),
            ],
            merged: set(&[&new]),
            stale: vec![("n1", set(&[&new]))],
        },
        ReadCase {
            name: "concurrent versions from two replicas are both merged, both replicas repaired",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            mode: ConflictMode::Siblings,
            script: vec![
                (Reply("n1", set(&[&x])), PENDING),
                (Reply("n3", set(&[&y])), OK),
            ],
            merged: both.clone(),
            stale: vec![("n1", both.clone()), ("n3", both.clone())],
        },
        ReadCase {
            name: "a late concurrent reply joins the merge after the decision",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            mode: ConflictMode::Siblings,
            script: vec![
                (Reply("n1", set(&[&x])), PENDING),
                (Reply("n3", set(&[&x])), OK),
                (Reply("n2", set(&[&z])), OK),
            ],
            merged: set(&[&x, &z]),
            stale: vec![
                ("n1", set(&[&x, &z])),
                ("n2", set(&[&x, &z])),
                ("n3", set(&[&x, &z])),
            ],
        },
        ReadCase {
            name: "an absent key is an empty reply, repaired like any stale one",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            mode: ConflictMode::Siblings,
            script: vec![
                (Reply("n1", Siblings::new()), PENDING),
                (Reply("n2", set(&[&old])), OK),
            ],
            merged: set(&[&old]),
            stale: vec![("n1", set(&[&old]))],
        },
        ReadCase {
            name: "lost replies: the deadline fails the round, the reply received still merged",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            mode: ConflictMode::Siblings,
            script: vec![
                (Reply("n2", set(&[&old])), PENDING),
                (
                    Timeout,
                    not_reached(2, 1, &[("n1", NO_REPLY), ("n3", NO_REPLY)]),
                ),
            ],
            merged: set(&[&old]),
            stale: vec![],
        },
        ReadCase {
            name: "failures that make success impossible fail at once",
            replicas: &["n1", "n2", "n3"],
            required: 3,
            mode: ConflictMode::Siblings,
            script: vec![
                (Reply("n1", set(&[&old])), PENDING),
                (
                    Fail("n2", "unavailable"),
                    not_reached(3, 1, &[("n2", "unavailable")]),
                ),
                (
                    Reply("n3", set(&[&new])),
                    not_reached(3, 1, &[("n2", "unavailable")]),
                ),
            ],
            merged: set(&[&new]),
            stale: vec![("n1", set(&[&new]))],
        },
        ReadCase {
            name: "duplicate replies from one node count once",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            mode: ConflictMode::Siblings,
            script: vec![
                (Reply("n1", set(&[&old])), PENDING),
                (Reply("n1", set(&[&old])), PENDING),
                (Reply("n7", set(&[&new])), PENDING),
                (Reply("n2", set(&[&old])), OK),
            ],
            merged: set(&[&old]),
            stale: vec![],
        },
        ReadCase {
            name: "last-write-wins: only the newest survives, replicas holding it are not repaired",
            replicas: &["n1", "n2", "n3"],
            required: 2,
            mode: ConflictMode::LastWriteWins,
            script: vec![
                (Reply("n1", set(&[&x])), PENDING),
                (Reply("n3", set(&[&y])), OK),
            ],
            merged: set(&[&x]),
            stale: vec![("n3", set(&[&x]))],
        },
    ];
    for case in cases {
        let mut round = ReadRound::new(ids(case.replicas), case.required).with_mode(case.mode);
        for (i, (msg, want)) in case.script.iter().enumerate() {
            let got = match msg {
                Reply(n, s) => round.on_reply(n, s.clone()).clone(),
                Fail(n, reason) => round.on_failure(n, reason.to_string()).clone(),
                Timeout => round.on_timeout().clone(),
                Ack(_) => unreachable!("reads get replies"),
            };
            assert_eq!(&got, want, "{}: step {i} ({msg:?})", case.name);
        }
        assert_eq!(round.merged(), case.merged, "{}: merged", case.name);
        let stale: Vec<(NodeId, Siblings)> = case
            .stale
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        assert_eq!(round.stale_replicas(), stale, "{}: stale", case.name);
    }
}

#[test]
fn read_round_keeps_each_replicas_reply() {
    let a = version("n1", 1, &[], "a", 1);
    let b = version("n2", 1, &[], "b", 2);
    let mut round = ReadRound::new(ids(&["n1", "n2"]), 1);
    assert_eq!(round.on_reply("n1", set(&[&a])), &OK);
    // A second reply from the same node (a retry that saw more) is merged into its first.
    round.on_reply("n1", set(&[&b]));
    assert_eq!(round.reply("n1"), Some(&set(&[&a, &b])));
    assert_eq!(round.reply("n2"), None);
    assert_eq!(round.acked(), ids(&["n1"]));
    assert_eq!(round.pending(), ids(&["n2"]));
    assert_eq!(round.stale_replicas(), vec![]);
}
