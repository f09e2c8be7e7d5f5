//! The streaming component of several nodes in one process: each node's store and hint store
//! are real engines in temporary directories, its membership gossips, and its anti-entropy,
//! handoff and streaming components reach the other nodes through the in-process twin
//! ([`MemPeers`]), all on tokio's paused clock. A node joins and takes over its share of the
//! keys; a node decommissions and hands its share on; a dead node's ranges are re-replicated.

use std::time::Duration;

use distkv_cluster::MemberState;

use crate::error::NodeError;
use crate::twin::MemPeers;
use crate::twin::house::{
    House, N, address, eventually, start_streaming_at, three_with_data, two_with_data, version,
};

#[tokio::test(start_paused = true)]
async fn a_joining_node_takes_its_share_of_the_keys_then_serves() {
    let peers = MemPeers::default();
    let (_a, _b, c, written) = three_with_data(&peers, 300).await;
    assert!(c.membership.serving());
    // c is a replica of some keys, and holds each of them as its old replicas did, including
    // those its stream's source lacked (a missed every tenth key; b has them).
    let ring = c.membership.ring();
    let mine = written
        .0
        .iter()
        .filter(|(k, _)| {
            ring.preference_list(k.as_bytes(), N)
                .contains(&"c".to_string())
        })
        .count();
    assert!(mine > 0 && mine < 300, "c replicates {mine} of 300 keys");
    written.held_by_replicas(&c, &[&c]).await;
    assert!(peers.calls().pages > 0, "{:?}", peers.calls());
}

#[tokio::test(start_paused = true)]
async fn a_decommissioned_node_hands_its_share_on_then_leaves() {
    let peers = MemPeers::default();
    let (a, b, c, written) = three_with_data(&peers, 300).await;
    // b alone holds every tenth key: its decommission must carry them.
    b.streaming.start_decommission().unwrap();
    eventually("b left and every node knows", || {
        b.membership.local_state() == MemberState::Left
            && [&a, &c]
                .iter()
                .all(|h| h.membership.ring().nodes().len() == 2)
    })
    .await;
    // c, a replica of every key now, holds all of them, those only b had too. (a still
    // lacks the writes it missed: repairing that is anti-entropy's work, not streaming's.)
    written.held_by_replicas(&a, &[&c]).await;
    // Too few nodes would remain for N replicas: refused.
    match a.streaming.start_decommission() {
        Err(e) => assert!(e.to_string().contains("replica"), "{e}"),
        Ok(_) => panic!("a decommission that leaves fewer nodes than replicas started"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_dead_nodes_ranges_are_re_replicated_from_the_survivors() {
    let peers = MemPeers::default();
    let (a, b, c, written) = three_with_data(&peers, 300).await;
    // a dies; removing it while a is still alive is refused.
    let err = b.streaming.remove_node("a").await.unwrap_err();
    assert!(
        matches!(&err, NodeError::StillAlive(id) if id == "a"),
        "{err}"
    );
    let _ = a.stop.send(true);
    peers.set_down(&address("a"), true);
    eventually("b and c hold a down", || {
        b.membership.is_down("a") && c.membership.is_down("a")
    })
    .await;
    let (removed, _keys) = b.streaming.remove_node("a").await.unwrap();
    assert_eq!(removed, "a");
    eventually("c knows a left", || c.membership.ring().nodes().len() == 2).await;
    // Every key is on both survivors now; the keys only a and c held came to b, pulled at
    // c's request or by b itself.
    written.held_by_replicas(&b, &[&b, &c]).await;
}

#[tokio::test(start_paused = true)]
async fn writes_made_while_a_node_joins_reach_it() {
    let peers = MemPeers::default();
    let (a, b, mut written) = two_with_data(&peers, 300).await;
    // A slow stream (50 bytes a second: several simulated seconds), so that the join spans writes.
    let c = start_streaming_at(&peers, "c", &["a"], 50);
    let houses = [&a, &b, &c];
    let house = |id: &str| -> &House { houses.iter().find(|h| h.id == id).unwrap() };
    // Meanwhile a client writes through a, as a's coordinator sends a write: to the key's
    // replicas and to the nodes pending for it. Writes a places before it hears that c joins
    // reach c only through the stream or the join's final tree comparison.
    let (mut during, mut sent_to_pending) = (0u64, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while c.membership.local_state() != MemberState::Normal {
        assert!(tokio::time::Instant::now() < deadline, "c never joined");
        let key = format!("during-{during}");
        let versions = version("a", 10_000 + during, &format!("during-{during}"));
        let placement = a.membership.placement(&key, N, false);
        sent_to_pending += placement.pending.len();
        for node in placement.replicas.iter().chain(&placement.pending) {
            let stored = house(node).store.merge(key.clone(), versions.clone());
            stored.await.unwrap();
        }
        written.0.push((key, versions));
        during += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(during >= 5, "only {during} writes while c joined");
    assert!(sent_to_pending > 0, "no write went to c as a pending node");
    eventually("every node holds c normal", || {
        houses
            .iter()
            .all(|h| h.membership.ring().nodes().len() == 3)
    })
    .await;
    // c holds every key it now replicates, those written during its join too.
    written.held_by_replicas(&c, &[&c]).await;
}
