//! Gossip, failure detection, join, decommission, removal and anti-entropy over real server
//! processes on 127.0.0.1 (each test's nodes gossip every 100 ms, suspect after 1 s of silence
//! and declare death after 3 s).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Cluster, eventually, get, put, status};
use distkv_proto::distkv::{self as pb, ConsistencyLevel::*};
use distkv_proto::internal;

/// True when node `i` holds `key` in its own store (not through a coordinator).
async fn holds(c: &Cluster, i: usize, key: &str) -> bool {
    let mut r = c.replica(i).await;
    r.read(internal::ReplicaReadRequest { key: key.into() })
        .await
        .map(|v| v.into_inner().found)
        .unwrap_or(false)
}

/// The ring of the test cluster's nodes (64 virtual nodes each).
/// Asks node `via` to remove `node` (an id or an address).
async fn remove_node(c: &Cluster, via: usize, node: impl Into<String>) -> pb::RemoveNodeResponse {
    c.admin(via)
        .await
        .remove_node(pb::RemoveNodeRequest {
            node_address: node.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn ring_of(ids: &[&str]) -> distkv_cluster::Ring {
    let mut ring = distkv_cluster::Ring::new();
    for id in ids {
        ring.add_node(id, 64);
    }
    ring
}

fn node_status(s: &pb::ClusterStatusResponse, id: &str) -> Option<pb::NodeStatus> {
    s.nodes
        .iter()
        .find(|n| n.node_id == id)
        .and_then(|n| pb::NodeStatus::try_from(n.status).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_seeded_with_one_node_learn_each_other_and_agree_on_the_ring() {
    // node2 and node3 know only node1; they learn each other through gossip.
    let c = Cluster::start(3, &[]).await;
    let s3 = status(&c.nodes[2].address).await.unwrap();
    assert_eq!(node_status(&s3, "node2"), Some(pb::NodeStatus::Alive));
    let mut rings = Vec::new();
    for i in 0..3 {
        let r = c
            .admin(i)
            .await
            .get_ring(pb::RingRequest {})
            .await
            .unwrap()
            .into_inner();
        rings.push(
            r.nodes
                .iter()
                .map(|n| {
                    (
                        n.node_id.clone(),
                        n.virtual_nodes,
                        (n.ownership * 1e9) as u64,
                    )
                })
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(rings[0].len(), 3);
    assert!(rings.windows(2).all(|w| w[0] == w[1]), "{rings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_turns_suspect_then_dead_and_is_alive_again_after_restart() {
    let mut c = Cluster::start(3, &[]).await;
    let mut a = c.kv(0).await;
    c.kill(2);
    let killed = Instant::now();
    // Suspect after about a second of silence, dead after three, on both survivors.
    let seen_suspect = Arc::new(AtomicBool::new(false));
    eventually("node3 dead on node1 and node2", || {
        let (a0, a1) = (c.nodes[0].address.clone(), c.nodes[1].address.clone());
        let seen = Arc::clone(&seen_suspect);
        async move {
            let s0 = status(&a0).await?;
            let s1 = status(&a1).await?;
            let (x, y) = (node_status(&s0, "node3")?, node_status(&s1, "node3")?);
            if x == pb::NodeStatus::Suspect || y == pb::NodeStatus::Suspect {
                seen.store(true, Ordering::Relaxed);
            }
            (x == pb::NodeStatus::Dead && y == pb::NodeStatus::Dead).then_some(())
        }
    })
    .await;
    let took = killed.elapsed();
    assert!(
        seen_suspect.load(Ordering::Relaxed),
        "node3 went straight to DEAD"
    );
    assert!(
        took < Duration::from_secs(6),
        "dead after {took:?} (dead timeout 3 s)"
    );
    // Requests route around it: no waiting for the dead replica.
    let started = Instant::now();
    let w = put(&mut a, "while-dead", "v", Some(Quorum)).await;
    assert!(w.success, "{}", w.error_message);
    // Waiting for the dead replica would take the request timeout (2 s).
    assert!(started.elapsed() < Duration::from_secs(2));
    let all = put(&mut a, "all", "v", Some(All)).await;
    assert!(
        all.error_message
            .contains("quorum not reached: needed 3, got 2"),
        "{}",
        all.error_message
    );
    // Restarted: alive on every node, and it gets the write it missed.
    c.restart(2).await;
    eventually("node3 received the write it missed", || async {
        holds(&c, 2, "while-dead").await.then_some(())
    })
    .await;
    let mut n3 = c.kv(2).await;
    assert_eq!(get(&mut n3, "while-dead", Some(All)).await.value, b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_fourth_node_while_clients_write_loses_nothing_and_moves_a_quarter() {
    let mut c = Cluster::start(3, &[]).await;
    let mut a = c.kv(0).await;
    const KEYS: usize = 600;
    for i in 0..KEYS {
        let r = put(&mut a, &format!("pre-{i}"), &format!("v{i}"), Some(Quorum)).await;
        assert!(r.success, "{}", r.error_message);
    }
    // A client keeps writing during the join; every acknowledged key is remembered.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut kv = c.kv(1).await;
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("during-{i}");
                if put(&mut kv, &key, "x", Some(Quorum)).await.success {
                    acked.push(key);
                }
                i += 1;
            }
            acked
        })
    };
    let d = c.add_node(&[]);
    c.wait_converged().await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(!acked.is_empty());
    // Every acknowledged write, before and during the join, is readable at ALL through the
    // new node (whose ranges now hold three replicas each).
    let mut dn = c.kv(d).await;
    let mut missing = Vec::new();
    for key in (0..KEYS)
        .map(|i| format!("pre-{i}"))
        .chain(acked.iter().cloned())
    {
        let g = get(&mut dn, &key, Some(All)).await;
        if !g.found {
            missing.push((key, g.error_message));
        }
    }
    assert!(missing.is_empty(), "lost after the join: {missing:?}");
    // And the new node holds each key it is now a replica of itself (a read at ALL would
    // repair what it lacked, so look at its own store).
    let ring = ring_of(&["node1", "node2", "node3", "node4"]);
    let mut lacking = Vec::new();
    for key in (0..KEYS)
        .map(|i| format!("pre-{i}"))
        .chain(acked.iter().cloned())
    {
        if ring
            .preference_list(key.as_bytes(), 3)
            .contains(&"node4".to_string())
            && !holds(&c, d, &key).await
        {
            lacking.push(key);
        }
    }
    assert!(lacking.is_empty(), "node4 lacks {lacking:?}");
    // Only what the new node took over moved: with N=3 it holds 3/4 of the keys, a quarter
    // of all copies.
    let s = status(&c.nodes[d].address).await.unwrap();
    let join = s
        .operations
        .iter()
        .find(|o| o.kind == "join")
        .expect("the join is reported");
    assert_eq!(join.state, "done", "{join:?}");
    let copies = 3.0 * KEYS as f64;
    let moved = join.keys as f64 / copies;
    eprintln!(
        "join of a 4th node: {} keys streamed of {KEYS} keys x 3 copies = {:.1}% of all copies",
        join.keys,
        moved * 100.0
    );
    assert!((0.15..0.40).contains(&moved), "moved {:.1}%", moved * 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_streams_every_range_so_each_key_keeps_three_replicas() {
    let c = Cluster::start(4, &[]).await;
    let mut a = c.kv(0).await;
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert!(put(&mut a, k, "v", Some(All)).await.success);
    }
    let reply = c
        .admin(1)
        .await
        .decommission(pb::DecommissionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(reply.success, "{}", reply.error_message);
    assert!(reply.keys_moved > 0);
    c.wait_status(1, pb::NodeStatus::Left).await;
    // Three nodes remain with N=3: each must hold every key itself.
    for i in [0, 2, 3] {
        let mut lacking = Vec::new();
        for k in &keys {
            if !holds(&c, i, k).await {
                lacking.push(k.clone());
            }
        }
        assert!(lacking.is_empty(), "node{} lacks {lacking:?}", i + 1);
    }
    // And the ring no longer has it.
    let ring = c
        .admin(0)
        .await
        .get_ring(pb::RingRequest {})
        .await
        .unwrap()
        .into_inner();
    let ids: BTreeSet<String> = ring.nodes.into_iter().map(|n| n.node_id).collect();
    assert_eq!(
        ids,
        BTreeSet::from(["node1".into(), "node3".into(), "node4".into()])
    );
    // A second decommission is refused clearly.
    let again = c
        .admin(1)
        .await
        .decommission(pb::DecommissionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!again.success);
    assert!(
        again.error_message.contains("already left"),
        "{}",
        again.error_message
    );
    // So is one that would leave fewer nodes than replicas.
    let too_few = c
        .admin(0)
        .await
        .decommission(pb::DecommissionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        too_few.error_message,
        "decommission would leave 2 nodes for 3 replicas per key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_dead_node_rereplicates_its_ranges_from_the_survivors() {
    // Five nodes: each survivor gains only some of the dead node's ranges, from sources that
    // differ from range to range.
    let mut c = Cluster::start(5, &[]).await;
    let mut a = c.kv(0).await;
    let keys: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    for k in &keys {
        assert!(put(&mut a, k, "v", Some(All)).await.success);
    }
    // A live node is not removed: it is decommissioned.
    let alive = remove_node(&c, 0, "node4").await;
    assert!(
        alive.error_message.contains("node node4 is not dead"),
        "{}",
        alive.error_message
    );
    c.kill(3);
    c.wait_status(3, pb::NodeStatus::Dead).await;
    let reply = remove_node(&c, 0, "node4").await;
    assert!(reply.success, "{}", reply.error_message);
    c.wait_status(3, pb::NodeStatus::Left).await;
    // Every key has its three replicas on the four survivors, each holding its own copy.
    let ring = ring_of(&["node1", "node2", "node3", "node5"]);
    let mut lacking = Vec::new();
    for k in &keys {
        for id in ring.preference_list(k.as_bytes(), 3) {
            let i = c.index_of(&id);
            if !holds(&c, i, k).await {
                lacking.push(format!("{id}:{k}"));
            }
        }
    }
    assert!(lacking.is_empty(), "missing replicas: {lacking:?}");
    // Run again (as after an interruption), the removal re-replicates the ranges again rather
    // than finding nothing to do: the log of each run says how many keys moved.
    let again = remove_node(&c, 0, "node4").await;
    assert!(again.success, "{}", again.error_message);
    let moved: Vec<u64> = c
        .log(0)
        .lines()
        .filter(|l| l.contains("node removed by admin request"))
        .filter_map(|l| {
            l.split("keys=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(moved.len(), 2, "{}", c.log(0));
    assert!(
        moved.iter().all(|k| *k > 0),
        "keys moved per run: {moved:?}"
    );
    // Removing oneself, or a stranger, is refused clearly.
    let me = remove_node(&c, 0, c.nodes[0].address.clone()).await;
    assert!(
        me.error_message.contains("cannot remove itself"),
        "{}",
        me.error_message
    );
    let stranger = remove_node(&c, 0, "nobody").await;
    assert_eq!(stranger.error_message, "unknown node nobody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_brings_a_stale_replica_up_to_date_including_deletes() {
    // No hints and no read repair reach node3: only anti-entropy can fix it.
    let mut c = Cluster::start(3, &["-hint-interval=1h", "-anti-entropy-interval=0s"]).await;
    let mut a = c.kv(0).await;
    for i in 0..50 {
        assert!(
            put(&mut a, &format!("ae-{i}"), "old", Some(All))
                .await
                .success
        );
    }
    c.kill(2);
    for i in 0..50 {
        assert!(
            put(&mut a, &format!("ae-{i}"), "new", Some(Quorum))
                .await
                .success
        );
    }
    let del = a
        .delete(pb::DeleteRequest {
            key: "ae-7".into(),
            consistency_level: Quorum as i32,
            consistency_set: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(del.success, "{}", del.error_message);
    c.restart(2).await;
    let reply = c
        .admin(2)
        .await
        .repair(pb::RepairRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(reply.success, "{}", reply.error_message);
    assert_eq!(reply.peers, 2);
    assert!(reply.keys_repaired >= 50, "{reply:?}");
    // node3's own copies are the new ones, and the deleted key is a tombstone there too.
    let mut r3 = c.replica(2).await;
    for i in 0..50 {
        let v = r3
            .read(internal::ReplicaReadRequest {
                key: format!("ae-{i}"),
            })
            .await
            .unwrap()
            .into_inner();
        let versions = distkv_cluster::Siblings::decode(&v.versions).unwrap();
        if i == 7 {
            assert!(versions.is_deleted(), "the delete was repaired too");
        } else {
            let values: Vec<_> = versions
                .versions()
                .iter()
                .filter_map(|v| v.value.clone())
                .collect();
            assert_eq!(values, vec![b"new".to_vec()], "ae-{i}");
        }
    }
    // A second repair finds nothing left to do, and the totals show in status.
    let again = c
        .admin(2)
        .await
        .repair(pb::RepairRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.keys_repaired, 0, "{again:?}");
    let s = status(&c.nodes[2].address).await.unwrap();
    let ae = s.anti_entropy.unwrap();
    assert!(
        ae.keys_repaired >= 50 && ae.rounds == 2 && ae.last_round > 0,
        "{ae:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_join_resumes_after_a_restart() {
    let mut c = Cluster::start(3, &[]).await;
    let mut a = c.kv(0).await;
    // About 3 MB of data, streamed to the new node at 1 MiB/s: the join takes seconds.
    let value = "x".repeat(4000);
    for i in 0..800 {
        assert!(
            put(&mut a, &format!("big-{i}"), &value, Some(All))
                .await
                .success
        );
    }
    let d = c.add_node(&["-stream-throughput=1"]);
    let addr = c.nodes[d].address.clone();
    // A joining node refuses requests, saying how far it got.
    eventually("the join is streaming", || {
        let addr = addr.clone();
        async move {
            let ch = common::connect(&addr).await.ok()?;
            let err = distkv_proto::distkv::admin_service_client::AdminServiceClient::new(ch)
                .get_cluster_status(pb::ClusterStatusRequest {})
                .await
                .err()?;
            let m = err.message().to_string();
            (m.contains("node4 is joining the cluster") && !m.contains(" 0 keys streamed"))
                .then_some(())
        }
    })
    .await;
    c.kill(d);
    c.restart(d).await;
    assert!(
        c.log(d).contains("resuming an interrupted join"),
        "the second run resumed the saved plan"
    );
    // Every key the new node replicates is in its own store: the resumed stream skipped
    // nothing.
    let ring = ring_of(&["node1", "node2", "node3", "node4"]);
    let mut lacking = Vec::new();
    for i in 0..800 {
        let key = format!("big-{i}");
        if ring
            .preference_list(key.as_bytes(), 3)
            .contains(&"node4".to_string())
            && !holds(&c, d, &key).await
        {
            lacking.push(key);
        }
    }
    assert!(lacking.is_empty(), "node4 lacks {lacking:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_node_introduces_a_waiting_node_and_refuses_wrong_ones() {
    let mut c = Cluster::start(2, &[]).await;
    // A node whose seed is wrong waits to join; another started without seeds serves a
    // cluster of its own.
    let waiting = c.add_node(&["-seed-nodes=127.0.0.1:1"]);
    let founder = c.add_node(&["-seed-nodes="]);
    let (waiting_addr, founder_addr) = (
        c.nodes[waiting].address.clone(),
        c.nodes[founder].address.clone(),
    );
    // Both answer (the waiting one refuses requests until it has joined).
    for addr in [&waiting_addr, &founder_addr] {
        eventually("the new node listens", || {
            let addr = addr.clone();
            async move { common::connect(&addr).await.ok().map(|_| ()) }
        })
        .await;
    }
    let add = |id: &str, address: &str| pb::AddNodeRequest {
        node_id: id.into(),
        node_address: address.into(),
        virtual_nodes: 0,
    };
    let mut admin = c.admin(0).await;
    let wrong = admin
        .add_node(add("someone-else", &waiting_addr))
        .await
        .unwrap()
        .into_inner();
    assert!(!wrong.success);
    assert!(
        wrong.error_message.contains("is node3, not someone-else"),
        "{}",
        wrong.error_message
    );
    let none = admin
        .add_node(add("x", "127.0.0.1:1"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        none.error_message.contains("unreachable"),
        "{}",
        none.error_message
    );
    let other = admin
        .add_node(add("node4", &founder_addr))
        .await
        .unwrap()
        .into_inner();
    assert!(
        other.error_message.contains("a member of another cluster"),
        "{}",
        other.error_message
    );
    // The waiting node, introduced, joins (streaming) and is alive everywhere.
    let ok = admin
        .add_node(add("node3", &waiting_addr))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.success, "{}", ok.error_message);
    c.kill(founder);
    c.wait_converged().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_are_purged_after_the_grace_period_and_the_key_stays_deleted() {
    // The horizon trails a round's start by twice the request timeout and a second (a write
    // may be in flight that long), and every member is asked for its hints after a round.
    let c = Cluster::start(
        3,
        &[
            "-anti-entropy-interval=500ms",
            "-tombstone-gc-grace=1s",
            "-request-timeout=2s",
        ],
    )
    .await;
    let mut a = c.kv(0).await;
    assert!(put(&mut a, "doomed", "v", Some(All)).await.success);
    let del = a
        .delete(pb::DeleteRequest {
            key: "doomed".into(),
            consistency_level: All as i32,
            consistency_set: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(del.success, "{}", del.error_message);
    // Every replica holds the tombstone, then (after a full anti-entropy round that started
    // after it, and the grace) none holds anything.
    for i in 0..3 {
        assert!(holds(&c, i, "doomed").await);
    }
    eventually("the tombstone is purged on every replica", || async {
        for i in 0..3 {
            if holds(&c, i, "doomed").await {
                return None;
            }
        }
        Some(())
    })
    .await;
    let g = get(&mut a, "doomed", Some(All)).await;
    assert!(!g.found && g.error_message.is_empty(), "{g:?}");
    let s = status(&c.nodes[0].address).await.unwrap();
    assert!(s.anti_entropy.unwrap().tombstones_purged >= 1);
    // Later rounds do not bring it back.
    let before = status(&c.nodes[1].address)
        .await
        .unwrap()
        .anti_entropy
        .unwrap()
        .rounds;
    eventually("two more rounds", || async {
        let s = status(&c.nodes[1].address).await?;
        (s.anti_entropy?.rounds >= before + 2).then_some(())
    })
    .await;
    for i in 0..3 {
        assert!(!holds(&c, i, "doomed").await, "node{} has it back", i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_that_restarts_joins_again_without_bringing_deletes_back() {
    let mut c = Cluster::start(4, &[]).await;
    let mut a = c.kv(0).await;
    assert!(put(&mut a, "victim", "v", Some(All)).await.success);
    c.kill(3);
    c.wait_status(3, pb::NodeStatus::Dead).await;
    let reply = remove_node(&c, 0, "node4").await;
    assert!(reply.success, "{}", reply.error_message);
    let del = a
        .delete(pb::DeleteRequest {
            key: "victim".into(),
            consistency_level: All as i32,
            consistency_set: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(del.success, "{}", del.error_message);
    // node4 comes back believing it is still a member: it learns it was removed, drops its
    // stale copy, joins again by streaming, and then serves.
    c.restart(3).await;
    assert!(
        c.log(3)
            .contains("joining again: deleted the data of an earlier membership"),
        "{}",
        c.log(3)
    );
    let mut d = c.kv(3).await;
    let g = get(&mut d, "victim", Some(All)).await;
    assert!(!g.found && g.error_message.is_empty(), "{g:?}");
}
