//! The coordinator's rounds over the in-process twin, on paused time: every delay below is
//! exact, and nothing waits on a real clock.

use std::time::Duration;

use distkv_cluster::{Consistency, Siblings};
use tokio::time::Instant;

use super::memory::{Fault, Hint, MemCluster, settings};
use super::{Placement, Write, WriteContext};
use crate::error::NodeError;

const KEY: &str = "k";
/// Long enough for every background call to end (lost calls time out after about 2 s).
const DRAIN: Duration = Duration::from_secs(10);

fn blind(value: &str) -> Write {
    Write {
        key: KEY.to_string(),
        value: Some(value.as_bytes().to_vec()),
        context: WriteContext::Coordinator,
        level: None,
    }
}

fn at(level: Consistency, write: Write) -> Write {
    Write {
        level: Some(level),
        ..write
    }
}

/// The live values of `versions`, sorted.
fn values(versions: &Siblings) -> Vec<String> {
    let mut v: Vec<String> = versions
        .live()
        .iter()
        .map(|v| String::from_utf8(v.value.clone().unwrap_or_default()).unwrap())
        .collect();
    v.sort();
    v
}

fn three() -> std::sync::Arc<MemCluster> {
    MemCluster::new(&["a", "b", "c"], settings(3, 2, 2))
}

fn quorum_error(e: &NodeError) -> (usize, usize) {
    match e {
        NodeError::Quorum(distkv_cluster::QuorumError::NotReached {
            required, acked, ..
        }) => (*required, *acked),
        other => panic!("expected quorum not reached, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_is_acknowledged_at_w_and_reaches_every_replica() {
    let cluster = three();
    let written = cluster.write("a", blind("v1")).await.unwrap();
    assert_eq!(values(&written), ["v1"]);
    assert!(cluster.drain(DRAIN).await);
    for node in ["a", "b", "c"] {
        assert_eq!(cluster.versions(node, KEY), written, "replica {node}");
        assert!(cluster.hints("a").is_empty());
    }
    let read = cluster.read("b", KEY).await.unwrap();
    assert_eq!(values(&read), ["v1"]);
}

#[tokio::test(start_paused = true)]
async fn a_lost_request_leaves_a_hint_once_its_call_times_out() {
    let cluster = three();
    cluster.set_fault("c", Fault::LoseRequests);
    let started = Instant::now();
    let written = cluster.write("a", blind("v1")).await.unwrap();
    // W = 2: the local replica and b; the round does not wait for c.
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(cluster.hints("a").is_empty(), "c's call is still out");
    assert!(cluster.drain(DRAIN).await);
    assert_eq!(cluster.received("c"), 0);
    assert!(cluster.versions("c", KEY).is_empty());
    assert_eq!(
        cluster.hints("a"),
        [Hint {
            target: "c".to_string(),
            key: KEY.to_string(),
            versions: written,
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_reply_fails_a_write_at_all_at_the_deadline_though_the_replica_has_it() {
    let cluster = three();
    cluster.set_fault("c", Fault::LoseReplies);
    let started = Instant::now();
    let err = cluster
        .write("a", at(Consistency::All, blind("v1")))
        .await
        .unwrap_err();
    assert_eq!(quorum_error(&err), (3, 2));
    assert_eq!(
        started.elapsed(),
        cluster.coordinator("a").settings().request_timeout
    );
    assert_eq!(values(&cluster.versions("c", KEY)), ["v1"]);
    assert!(cluster.drain(DRAIN).await);
    // The call timed out, so a's hint covers c (delivering it again changes nothing there).
    assert_eq!(cluster.hints("a").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn slow_replies_within_the_timeout_are_waited_for() {
    let cluster = three();
    cluster.set_fault("b", Fault::Slow(Duration::from_millis(300)));
    cluster.set_fault("c", Fault::Slow(Duration::from_millis(700)));
    let started = Instant::now();
    cluster
        .write("a", at(Consistency::All, blind("v1")))
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(700));
    let started = Instant::now();
    cluster.write("a", blind("v2")).await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(300),
        "W = 2 waits for b only"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reply_later_than_the_decision_changes_nothing_and_leaves_no_hint() {
    let cluster = three();
    cluster.set_fault("c", Fault::Slow(Duration::from_millis(1500)));
    let started = Instant::now();
    cluster.write("a", blind("v1")).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(cluster.drain(DRAIN).await);
    assert_eq!(values(&cluster.versions("c", KEY)), ["v1"]);
    assert!(cluster.hints("a").is_empty(), "c acknowledged, late");
}

#[tokio::test(start_paused = true)]
async fn a_slow_replica_past_the_timeout_fails_the_round_at_the_deadline() {
    let cluster = three();
    cluster.set_fault("b", Fault::Slow(Duration::from_secs(5)));
    cluster.set_fault("c", Fault::Slow(Duration::from_secs(5)));
    let started = Instant::now();
    let err = cluster.write("a", blind("v1")).await.unwrap_err();
    assert_eq!(quorum_error(&err), (2, 1));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let started = Instant::now();
    let err = cluster.read("a", KEY).await.unwrap_err();
    assert_eq!(quorum_error(&err), (2, 1));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_replica_known_down_gets_no_call_and_a_hint_at_once() {
    let cluster = three();
    cluster.set_placement(Placement {
        down: vec!["c".to_string()],
        ..cluster.placement()
    });
    let started = Instant::now();
    cluster.write("a", blind("v1")).await.unwrap();
    assert_eq!(cluster.received("c"), 0);
    // At ALL the round fails as soon as c's failure is counted, not at the deadline.
    let err = cluster
        .write("a", at(Consistency::All, blind("v2")))
        .await
        .unwrap_err();
    assert_eq!(quorum_error(&err), (3, 2));
    assert_eq!(started.elapsed(), Duration::ZERO);
    // Reads skip it too.
    assert_eq!(values(&cluster.read("a", KEY).await.unwrap()), ["v2"]);
    assert_eq!(cluster.received("c"), 0);
    assert!(cluster.drain(DRAIN).await);
    let hinted: Vec<String> = cluster.hints("a").into_iter().map(|h| h.target).collect();
    assert_eq!(hinted, ["c", "c"]);
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_refuses_calls_fails_fast_and_two_fail_the_quorum() {
    let cluster = three();
    cluster.set_fault("b", Fault::Down);
    cluster.write("a", blind("v1")).await.unwrap();
    cluster.set_fault("c", Fault::Down);
    let started = Instant::now();
    let err = cluster.write("a", blind("v2")).await.unwrap_err();
    assert_eq!(quorum_error(&err), (2, 1));
    let NodeError::Quorum(distkv_cluster::QuorumError::NotReached { failures, .. }) = &err else {
        unreachable!()
    };
    assert!(
        failures
            .iter()
            .all(|(_, reason)| reason.contains("connection refused")),
        "{failures:?}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(cluster.drain(DRAIN).await);
    let mut hinted: Vec<String> = cluster.hints("a").into_iter().map(|h| h.target).collect();
    hinted.sort();
    assert_eq!(hinted, ["b", "b", "c"]);
}

#[tokio::test(start_paused = true)]
async fn a_sloppy_quorum_counts_a_stand_in_that_keeps_the_hint() {
    let cluster = MemCluster::new(&["a", "b", "c", "d"], settings(3, 2, 3));
    cluster.set_placement(Placement {
        replicas: vec!["a".into(), "b".into(), "c".into()],
        stand_ins: vec!["d".into()],
        ..Placement::default()
    });
    cluster.set_fault("c", Fault::Down);
    let written = cluster.write("a", blind("v1")).await.unwrap();
    let hints = cluster.hints("d");
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].target, "c");
    assert_eq!(hints[0].versions, written);
    assert!(
        cluster.versions("d", KEY).is_empty(),
        "a stand-in keeps hints only"
    );
    // With no stand-in left, a second failure fails the round.
    cluster.set_fault("b", Fault::Down);
    let err = cluster.write("a", blind("v2")).await.unwrap_err();
    assert_eq!(quorum_error(&err), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn a_read_answers_at_r_and_repairs_the_replica_that_was_behind() {
    let cluster = three();
    cluster.set_fault("c", Fault::Down);
    let written = cluster.write("a", blind("v1")).await.unwrap();
    cluster.set_fault("c", Fault::Slow(Duration::from_millis(50)));
    let started = Instant::now();
    let read = cluster.read("b", KEY).await.unwrap();
    assert_eq!(read, written);
    assert_eq!(started.elapsed(), Duration::ZERO, "a and b answer first");
    assert!(cluster.versions("c", KEY).is_empty());
    assert!(cluster.drain(DRAIN).await);
    assert_eq!(cluster.versions("c", KEY), written, "read repair");
    assert_eq!(
        cluster
            .coordinator("b")
            .metrics()
            .read_repairs
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_that_finds_nothing_waits_briefly_for_a_replica_still_out() {
    let cluster = three();
    cluster.set_fault("b", Fault::Down);
    cluster.set_fault("c", Fault::Down);
    cluster
        .write("a", at(Consistency::One, blind("v1")))
        .await
        .unwrap();
    cluster.set_fault("b", Fault::None);
    cluster.set_fault("c", Fault::None);
    // b answers "nothing" at once; a, slow, is given the speculative delay, then c is asked
    // and answers "nothing" too; a, which has it, answers after the grace period.
    cluster.set_fault("a", Fault::Slow(Duration::from_millis(500)));
    let started = Instant::now();
    assert!(cluster.read("b", KEY).await.unwrap().is_empty());
    let speculate = cluster.coordinator("b").settings().speculative_read_after;
    assert_eq!(started.elapsed(), speculate + super::ABSENT_GRACE);
    // Within it, a's answer is the read's.
    cluster.set_fault("a", Fault::Slow(Duration::from_millis(50)));
    let started = Instant::now();
    let read = cluster.read("b", KEY).await.unwrap();
    assert_eq!(values(&read), ["v1"]);
    assert_eq!(started.elapsed(), Duration::from_millis(50));
}

/// Three nodes at N=3, R=W=2 whose reads ask R replicas (no read-repair chance).
fn three_reading_r() -> std::sync::Arc<MemCluster> {
    let mut s = settings(3, 2, 2);
    s.read_repair_chance = 0.0;
    MemCluster::new(&["a", "b", "c"], s)
}

/// Calls each node received from `run` and the background work it left (read repairs).
async fn calls_during<F: std::future::Future>(
    cluster: &MemCluster,
    run: impl FnOnce() -> F,
) -> [u64; 3] {
    let before = ["a", "b", "c"].map(|n| cluster.received(n));
    run().await;
    assert!(cluster.drain(DRAIN).await);
    let after = ["a", "b", "c"].map(|n| cluster.received(n));
    [0, 1, 2].map(|i| after[i] - before[i])
}

/// Replicas `node`'s reads asked beyond R because those asked were slow.
fn speculative_reads(cluster: &MemCluster, node: &str) -> u64 {
    let coordinator = cluster.coordinator(node);
    let count = &coordinator.metrics().speculative_reads;
    count.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn a_read_asks_its_own_copy_and_r_minus_one_other_replica() {
    let cluster = three_reading_r();
    cluster.write("a", blind("v1")).await.unwrap();
    assert!(cluster.drain(DRAIN).await);
    // c's own copy, then the first other replica in preference order (a); b is not asked.
    let calls = calls_during(&cluster, || async {
        assert_eq!(values(&cluster.read("c", KEY).await.unwrap()), ["v1"]);
    })
    .await;
    assert_eq!(calls, [1, 0, 1]);
    // At ONE, only the coordinator's own copy.
    let calls = calls_during(&cluster, || async {
        let (placement, b) = (cluster.placement(), cluster.coordinator("b"));
        let read = b.read(&placement, KEY, Some(Consistency::One)).await;
        assert_eq!(values(&read.unwrap()), ["v1"]);
    })
    .await;
    assert_eq!(calls, [0, 1, 0]);
    assert!(cluster.drain(DRAIN).await);
}

#[tokio::test(start_paused = true)]
async fn a_read_replaces_a_failed_replica_at_once_and_a_slow_one_after_the_speculative_delay() {
    let cluster = three_reading_r();
    let written = cluster.write("a", blind("v1")).await.unwrap();
    assert!(cluster.drain(DRAIN).await);
    let after = settings(3, 2, 2).speculative_read_after;
    // b refuses: c is asked at once.
    cluster.set_fault("b", Fault::Down);
    let started = Instant::now();
    assert_eq!(cluster.read("a", KEY).await.unwrap(), written);
    assert_eq!(started.elapsed(), Duration::ZERO);
    // b is silent: c is asked after the speculative delay, and answers.
    cluster.set_fault("b", Fault::LoseRequests);
    let started = Instant::now();
    assert_eq!(cluster.read("a", KEY).await.unwrap(), written);
    assert_eq!(started.elapsed(), after);
    assert_eq!(speculative_reads(&cluster, "a"), 1);
    // b and c silent: the read fails at the deadline with a's answer only.
    cluster.set_fault("c", Fault::LoseRequests);
    let started = Instant::now();
    let err = cluster.read("a", KEY).await.unwrap_err();
    assert_eq!(quorum_error(&err), (2, 1));
    assert_eq!(started.elapsed(), settings(3, 2, 2).request_timeout);
    assert!(cluster.drain(DRAIN).await);
}

#[tokio::test(start_paused = true)]
async fn a_read_skips_replicas_known_down_and_asks_them_only_when_nothing_else_is_left() {
    let cluster = three_reading_r();
    cluster.write("a", blind("v1")).await.unwrap();
    assert!(cluster.drain(DRAIN).await);
    let mut placement = cluster.placement();
    placement.down = vec!["b".to_string()];
    cluster.set_placement(placement);
    let calls = calls_during(&cluster, || async {
        assert_eq!(values(&cluster.read("a", KEY).await.unwrap()), ["v1"]);
    })
    .await;
    assert_eq!(calls, [1, 0, 1], "c is asked in b's place");
    // With c silent too, b (held down) is tried only when the speculative delay asks for one
    // more, and fails at once: no call reaches it, and no speculative read is counted for it.
    cluster.set_fault("c", Fault::LoseRequests);
    let calls = calls_during(&cluster, || async {
        let err = cluster.read("a", KEY).await.unwrap_err();
        assert_eq!(quorum_error(&err), (2, 1));
    })
    .await;
    assert_eq!(calls, [1, 0, 0]);
    assert_eq!(speculative_reads(&cluster, "a"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_read_repair_chance_between_zero_and_one_asks_every_replica_on_about_that_share() {
    let mut s = settings(3, 2, 2);
    s.read_repair_chance = 0.25;
    let cluster = MemCluster::new(&["a", "b", "c"], s);
    cluster.write("a", blind("v1")).await.unwrap();
    assert!(cluster.drain(DRAIN).await);
    // Through a, R-only reads ask a and b; the full ones ask c too. The seed fixes the draw.
    let calls = calls_during(&cluster, || async {
        for _ in 0..400 {
            cluster.read("a", KEY).await.unwrap();
        }
    })
    .await;
    assert_eq!(calls[..2], [400, 400]);
    assert!((70..=130).contains(&calls[2]), "c asked {} times", calls[2]);
}

#[tokio::test(start_paused = true)]
async fn a_read_that_found_nothing_asks_the_replicas_it_had_not() {
    let cluster = three_reading_r();
    // Only c has the write (at ONE, the others refusing).
    cluster.set_fault("a", Fault::Down);
    cluster.set_fault("b", Fault::Down);
    cluster
        .write("c", at(Consistency::One, blind("v1")))
        .await
        .unwrap();
    cluster.set_fault("a", Fault::None);
    cluster.set_fault("b", Fault::None);
    assert!(cluster.drain(DRAIN).await);
    // a and b (asked first) hold nothing; c, asked then, has it and is repaired onto them.
    assert_eq!(values(&cluster.read("a", KEY).await.unwrap()), ["v1"]);
    assert!(cluster.drain(DRAIN).await);
    assert_eq!(values(&cluster.versions("b", KEY)), ["v1"], "read repair");
}

#[tokio::test(start_paused = true)]
async fn at_read_repair_chance_one_every_replica_is_asked_and_repaired() {
    let cluster = three(); // read_repair_chance 1
    cluster.set_fault("c", Fault::Down);
    let written = cluster.write("a", blind("v1")).await.unwrap();
    cluster.set_fault("c", Fault::None);
    let calls = calls_during(&cluster, || async {
        assert_eq!(cluster.read("a", KEY).await.unwrap(), written);
    })
    .await;
    // Each replica's read, and c's repair.
    assert_eq!(calls, [1, 1, 2]);
    assert_eq!(cluster.versions("c", KEY), written);
    // At chance 0 the same stale replica is never asked, so never repaired by a read.
    let cluster = three_reading_r();
    cluster.set_fault("c", Fault::Down);
    cluster.write("a", blind("v1")).await.unwrap();
    cluster.set_fault("c", Fault::None);
    for _ in 0..10 {
        cluster.read("a", KEY).await.unwrap();
    }
    assert!(cluster.drain(DRAIN).await);
    assert!(cluster.versions("c", KEY).is_empty());
}

#[tokio::test(start_paused = true)]
async fn sequential_blind_writes_through_one_coordinator_overwrite() {
    let cluster = three();
    for v in ["v1", "v2", "v3"] {
        cluster.write("a", blind(v)).await.unwrap();
    }
    assert!(cluster.drain(DRAIN).await);
    for node in ["a", "b", "c"] {
        assert_eq!(
            values(&cluster.versions(node, KEY)),
            ["v3"],
            "replica {node}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn racing_blind_writes_through_two_coordinators_become_siblings() {
    let cluster = three();
    // Each coordinator's copies to the others take 10 ms: neither holds the other's write
    // when it applies its own.
    for node in ["a", "b", "c"] {
        cluster.set_fault(node, Fault::Slow(Duration::from_millis(10)));
    }
    let (x, y) = tokio::join!(
        cluster.write("a", blind("x")),
        cluster.write("b", blind("y"))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(values(&x), ["x"]);
    assert_eq!(values(&y), ["y"]);
    assert!(cluster.drain(DRAIN).await);
    for node in ["a", "b", "c"] {
        assert_eq!(
            values(&cluster.versions(node, KEY)),
            ["x", "y"],
            "replica {node}"
        );
    }
    // A write with the context of a read that saw both resolves them; a blind write through a
    // replica that holds both does too.
    let read = cluster.read("c", KEY).await.unwrap();
    let resolve = Write {
        context: WriteContext::Given(read.context()),
        ..blind("z")
    };
    cluster.write("c", resolve).await.unwrap();
    assert!(cluster.drain(DRAIN).await);
    assert_eq!(values(&cluster.versions("a", KEY)), ["z"]);
}

#[tokio::test(start_paused = true)]
async fn a_write_with_a_stale_context_keeps_the_version_it_did_not_see() {
    let cluster = three();
    let first = cluster.write("a", blind("v1")).await.unwrap();
    cluster.write("a", blind("v2")).await.unwrap();
    assert!(cluster.drain(DRAIN).await);
    let stale = Write {
        context: WriteContext::Given(first.context()),
        ..blind("v3")
    };
    let written = cluster.write("b", stale).await.unwrap();
    assert_eq!(values(&written), ["v2", "v3"]);
}

#[tokio::test(start_paused = true)]
async fn a_non_replica_forwards_to_the_first_replica_that_answers() {
    let cluster = MemCluster::new(&["a", "b", "c", "d"], settings(3, 2, 2));
    cluster.set_placement(Placement {
        replicas: vec!["b".into(), "c".into(), "d".into()],
        ..Placement::default()
    });
    let written = cluster.write("a", blind("v1")).await.unwrap();
    assert_eq!(written.versions()[0].dot.node, "b", "b coordinated it");
    assert!(cluster.versions("a", KEY).is_empty(), "a keeps no copy");
    // b refuses calls: c coordinates.
    cluster.set_fault("b", Fault::Down);
    let written = cluster.write("a", blind("v2")).await.unwrap();
    assert_eq!(written.versions().last().unwrap().dot.node, "c");
    // A replica held down is skipped without a call.
    cluster.set_fault("b", Fault::None);
    cluster.set_placement(Placement {
        down: vec!["b".into()],
        ..cluster.placement()
    });
    let received = cluster.received("b");
    let written = cluster.write("a", blind("v3")).await.unwrap();
    assert!(written.versions().iter().any(|v| v.dot.node == "c"));
    assert_eq!(cluster.received("b"), received);
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_write_that_times_out_is_not_retried_elsewhere() {
    let cluster = MemCluster::new(&["a", "b", "c", "d"], settings(3, 2, 2));
    cluster.set_placement(Placement {
        replicas: vec!["b".into(), "c".into(), "d".into()],
        ..Placement::default()
    });
    cluster.set_fault("b", Fault::LoseReplies);
    let started = Instant::now();
    let err = cluster.write("a", blind("v1")).await.unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::Peer {
                failure: crate::error::PeerFailure::TimedOut,
                ..
            }
        ),
        "{err}"
    );
    // The forwarded call's own deadline: the request timeout and the margin.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // b did coordinate it (only its answer was lost); c and d never got a second copy
    // coordinated under another dot.
    assert_eq!(values(&cluster.versions("b", KEY)), ["v1"]);
    assert!(cluster.drain(DRAIN).await);
    for node in ["c", "d"] {
        let v = cluster.versions(node, KEY);
        assert!(
            v.versions().iter().all(|v| v.dot.node == "b"),
            "{node}: {v:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_write_that_fails_its_quorum_reports_the_coordinators_reason() {
    let cluster = MemCluster::new(&["a", "b", "c", "d"], settings(3, 2, 2));
    cluster.set_placement(Placement {
        replicas: vec!["b".into(), "c".into(), "d".into()],
        ..Placement::default()
    });
    cluster.set_fault("c", Fault::Down);
    cluster.set_fault("d", Fault::Down);
    let err = cluster.write("a", blind("v1")).await.unwrap_err();
    match err {
        NodeError::Coordinator { peer, message } => {
            assert_eq!(peer, "b");
            assert!(message.contains("quorum not reached"), "{message}");
        }
        other => panic!("expected b's failure, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_placement_is_an_error_not_a_hang() {
    let cluster = three();
    cluster.set_placement(Placement::default());
    assert!(matches!(
        cluster.write("a", blind("v1")).await,
        Err(NodeError::EmptyRing)
    ));
    assert!(matches!(
        cluster.read("a", KEY).await,
        Err(NodeError::EmptyRing)
    ));
}

#[tokio::test(start_paused = true)]
async fn racing_blind_writes_through_one_coordinator_leave_the_one_applied_last() {
    let cluster = three();
    for node in ["b", "c"] {
        cluster.set_fault(node, Fault::Slow(Duration::from_millis(10)));
    }
    // Both are in flight at once; the coordinator applies them one after the other, and the
    // later takes the earlier as its context.
    let (x, y) = tokio::join!(
        cluster.write("a", blind("x")),
        cluster.write("a", blind("y"))
    );
    assert_eq!(values(&x.unwrap()), ["x"]);
    assert_eq!(values(&y.unwrap()), ["y"]);
    assert!(cluster.drain(DRAIN).await);
    for node in ["a", "b", "c"] {
        assert_eq!(
            values(&cluster.versions(node, KEY)),
            ["y"],
            "replica {node}"
        );
    }
}
