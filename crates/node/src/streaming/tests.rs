//! The streaming component of several nodes in one process: each node's store and hint store
//! are real engines in temporary directories, its membership gossips, and its anti-entropy,
//! handoff and streaming components reach the other nodes through the in-process twin
//! ([`MemPeers`]), all on tokio's paused clock. A node joins and takes over its share of the
//! keys; a node decommissions and hands its share on; a dead node's ranges are re-replicated.

use std::sync::Arc;
use std::time::Duration;

use distkv_cluster::{ConflictMode, Dot, MemberState, NodeId, Siblings, TokenRange, VectorClock};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Streaming, StreamingParts};
use crate::clock::TokioClock;
use crate::counters::Metrics;
use crate::error::{NodeError, Result};
use crate::handoff::Handoff;
use crate::hints::HintStore;
use crate::membership::Membership;
use crate::ops::Operations;
use crate::repair::AntiEntropy;
use crate::storage::Store;
use crate::twin::{MemPeers, PullAnswer};

/// Replicas per key.
const N: usize = 2;

fn address(id: &str) -> String {
    format!("{id}:7000")
}

/// One node's components, reachable through the twin.
struct House {
    id: &'static str,
    store: Store,
    membership: Arc<Membership<MemPeers>>,
    streaming: Arc<Streaming<MemPeers>>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// A node pulls ranges when a peer asks (a removal) through its streaming component.
struct Puller(Arc<Streaming<MemPeers>>);

impl PullAnswer for Puller {
    fn pull(
        &self,
        ranges: Vec<TokenRange>,
        sources: Vec<NodeId>,
        _reason: String,
    ) -> BoxFuture<'static, Result<(u64, u64)>> {
        let streaming = Arc::clone(&self.0);
        Box::pin(async move { streaming.pull_ranges("rereplicate", ranges, sources).await })
    }
}

/// Starts node `id`, seeded with `seeds` (none: it starts the cluster), with its workers:
/// gossip and streaming.
fn start(peers: &MemPeers, id: &'static str, seeds: &[&str]) -> House {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::config::test_config(id, &address(id));
    cfg.seeds = seeds.iter().map(|s| address(s)).collect();
    cfg.data_dir = dir.path().to_path_buf();
    cfg.quorum.n = N;
    cfg.stream_bytes_per_sec = 0;
    let opts = distkv_lsm::Options {
        memtable_bytes: 256 << 10,
        ..distkv_lsm::Options::default()
    };
    let store = Store::open(&dir.path().join("storage"), opts, ConflictMode::Siblings).unwrap();
    let hints = HintStore::open(&dir.path().join("hints")).unwrap();
    let metrics = Arc::new(Metrics::default());
    let membership = Arc::new(Membership::new(
        &cfg,
        Vec::new(),
        peers.clone(),
        Arc::default(),
        Arc::clone(&metrics),
        Arc::new(TokioClock::starting_at(1_800_000_000_000)),
    ));
    let anti_entropy = Arc::new(AntiEntropy::new(
        store.clone(),
        peers.clone(),
        Arc::clone(&metrics),
    ));
    let handoff = Arc::new(Handoff::new(
        hints.clone(),
        peers.clone(),
        Arc::clone(&metrics),
    ));
    let (stop, stopped) = watch::channel(false);
    let streaming = Streaming::new(StreamingParts {
        id: id.to_string(),
        replicas: N,
        seeds: cfg.seeds.clone(),
        bytes_per_sec: 0,
        drain_within: Duration::from_secs(10),
        store: store.clone(),
        hints: hints.clone(),
        membership: Arc::clone(&membership),
        transport: peers.clone(),
        anti_entropy: Arc::clone(&anti_entropy),
        handoff,
        ops: Arc::new(Operations::default()),
        metrics,
        stop: stopped.clone(),
    });
    let at = address(id);
    peers.add(&at, Arc::clone(anti_entropy.server()));
    peers.add_hints(&at, hints);
    peers.add_gossip(&at, membership.clone());
    peers.add_puller(&at, Arc::new(Puller(Arc::clone(&streaming))));
    tokio::spawn(Arc::clone(&membership).run(stopped));
    tokio::spawn(Arc::clone(&streaming).run());
    House {
        id,
        store,
        membership,
        streaming,
        stop,
        _dir: dir,
    }
}

/// Waits, in simulated time, until `cond` holds; fails after ten simulated minutes.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "not within 600 simulated seconds: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One version of `key` written by `node`.
fn version(node: &str, counter: u64, value: &str) -> Siblings {
    Siblings::new().write(
        Dot::new(node, counter),
        &VectorClock::new(),
        Some(value.as_bytes().to_vec()),
        1_000 + counter,
        ConflictMode::Siblings,
    )
}

/// Keys and what each holds, as written to the nodes that should hold it.
struct Written(Vec<(String, Siblings)>);

impl Written {
    /// Checks that each of `houses` holds exactly what was written for every key it is a
    /// replica of in `ring_of`'s read ring.
    async fn held_by_replicas(&self, ring_of: &House, houses: &[&House]) {
        let ring = ring_of.membership.ring();
        for (key, versions) in &self.0 {
            for house in houses {
                if !ring
                    .preference_list(key.as_bytes(), N)
                    .contains(&house.id.to_string())
                {
                    continue;
                }
                let held = house.store.read(key.clone()).await.unwrap();
                assert_eq!(&held, versions, "{key} on {}", house.id);
            }
        }
    }
}

/// a and b, both normal, holding `keys` keys (both replicas of every key with N = 2), every
/// tenth of them on b alone (a write a missed).
async fn two_with_data(peers: &MemPeers, keys: usize) -> (House, House, Written) {
    let a = start(peers, "a", &[]);
    let b = start(peers, "b", &["a"]);
    eventually("b joined", || {
        a.membership.ring().nodes().len() == 2 && b.membership.local_state() == MemberState::Normal
    })
    .await;
    let mut written = Vec::new();
    for i in 0..keys {
        let key = format!("key-{i}");
        let versions = version("a", i as u64 + 1, &format!("value-{i}"));
        if i % 10 != 0 {
            a.store.merge(key.clone(), versions.clone()).await.unwrap();
        }
        b.store.merge(key.clone(), versions.clone()).await.unwrap();
        written.push((key, versions));
    }
    (a, b, Written(written))
}

/// [`two_with_data`], then c joins through a: once every node holds it normal.
async fn three_with_data(peers: &MemPeers, keys: usize) -> (House, House, House, Written) {
    let (a, b, written) = two_with_data(peers, keys).await;
    let c = start(peers, "c", &["a"]);
    eventually("c joined and every node holds it normal", || {
        c.membership.local_state() == MemberState::Normal
            && [&a, &b, &c]
                .iter()
                .all(|h| h.membership.ring().nodes().len() == 3)
    })
    .await;
    (a, b, c, written)
}

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
