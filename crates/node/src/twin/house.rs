//! A node's background components over the twin, for tests that run several nodes in one
//! process: the store and hint store on real engines in a temporary directory, the membership
//! (gossiping through [`MemPeers`]), anti-entropy with its rounds, handoff and streaming, on
//! tokio's clock (paused in the tests that use it). The coordinator has its own rings in
//! [`crate::coordinator`]'s simulation.

use std::sync::Arc;
use std::time::Duration;

use distkv_cluster::{ConflictMode, Dot, MemberState, NodeId, Siblings, TokenRange, VectorClock};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{MemPeers, PullAnswer};
use crate::clock::TokioClock;
use crate::counters::Metrics;
use crate::error::Result;
use crate::handoff::Handoff;
use crate::hints::HintStore;
use crate::membership::Membership;
use crate::ops::Operations;
use crate::repair::{AntiEntropy, Rounds, RoundsParts};
use crate::storage::Store;
use crate::streaming::{Streaming, StreamingParts};

/// Replicas per key.
pub const N: usize = 2;

/// Where node `id` is reached.
pub fn address(id: &str) -> String {
    format!("{id}:7000")
}

/// One node's components, reachable through the twin.
pub struct House {
    pub id: &'static str,
    pub store: Store,
    pub hints: HintStore,
    /// The clock its membership and rounds read.
    pub clock: TokioClock,
    pub membership: Arc<Membership<MemPeers>>,
    pub streaming: Arc<Streaming<MemPeers>>,
    /// Its anti-entropy rounds (no timer: tests run them).
    pub rounds: Arc<Rounds<MemPeers>>,
    /// Stops its workers.
    pub stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// A node pulls ranges when a peer asks (a removal) through its streaming component.
pub struct Puller(pub Arc<Streaming<MemPeers>>);

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
pub fn start(peers: &MemPeers, id: &'static str, seeds: &[&str]) -> House {
    start_streaming_at(peers, id, seeds, 0)
}

/// [`start`], streaming at most `bytes_per_sec` (0: unthrottled).
pub fn start_streaming_at(
    peers: &MemPeers,
    id: &'static str,
    seeds: &[&str],
    bytes_per_sec: u64,
) -> House {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = crate::config::test_config(id, &address(id));
    cfg.seeds = seeds.iter().map(|s| address(s)).collect();
    cfg.data_dir = dir.path().to_path_buf();
    cfg.quorum.n = N;
    // No syncs: on tokio's paused clock, time runs ahead while a task awaits one (the sync is
    // on the disk, not the runtime); durability is tested where syncs are held.
    let opts = distkv_lsm::Options {
        memtable_bytes: 256 << 10,
        sync: distkv_lsm::SyncPolicy::Never,
        ..distkv_lsm::Options::default()
    };
    let store = Store::open(&dir.path().join("storage"), opts, ConflictMode::Siblings).unwrap();
    let hints = HintStore::open(&dir.path().join("hints")).unwrap();
    let metrics = Arc::new(Metrics::default());
    let clock = TokioClock::starting_at(1_800_000_000_000);
    let membership = Arc::new(Membership::new(
        &cfg,
        Vec::new(),
        peers.clone(),
        Arc::default(),
        Arc::clone(&metrics),
        Arc::new(clock),
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
    let ops = Arc::new(Operations::default());
    let rounds = Rounds::new(RoundsParts {
        id: id.to_string(),
        replicas: N,
        interval: Duration::ZERO,
        in_flight: crate::coordinator::in_flight_bound(cfg.request_timeout),
        store: store.clone(),
        hints: hints.clone(),
        membership: Arc::clone(&membership),
        anti_entropy: Arc::clone(&anti_entropy),
        ops: Arc::clone(&ops),
        metrics: Arc::clone(&metrics),
        clock: Arc::new(clock),
    });
    let streaming = Streaming::new(StreamingParts {
        id: id.to_string(),
        replicas: N,
        seeds: cfg.seeds.clone(),
        bytes_per_sec,
        drain_within: Duration::from_secs(10),
        store: store.clone(),
        hints: hints.clone(),
        membership: Arc::clone(&membership),
        transport: peers.clone(),
        rounds: Arc::clone(&rounds),
        handoff,
        ops,
        metrics,
        stop: stopped.clone(),
    });
    let at = address(id);
    peers.add(&at, Arc::clone(anti_entropy.server()));
    peers.add_hints(&at, hints.clone());
    peers.add_gossip(&at, membership.clone());
    peers.add_puller(&at, Arc::new(Puller(Arc::clone(&streaming))));
    tokio::spawn(Arc::clone(&membership).run(stopped));
    tokio::spawn(Arc::clone(&streaming).run());
    House {
        id,
        store,
        hints,
        clock,
        membership,
        streaming,
        rounds,
        stop,
        _dir: dir,
    }
}

/// Waits, in simulated time, until `cond` holds; fails after ten simulated minutes.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
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
pub fn version(node: &str, counter: u64, value: &str) -> Siblings {
    Siblings::new().write(
        Dot::new(node, counter),
        &VectorClock::new(),
        Some(value.as_bytes().to_vec()),
        1_000 + counter,
        ConflictMode::Siblings,
    )
}

/// Keys and what each holds, as written to the nodes that should hold it.
pub struct Written(pub Vec<(String, Siblings)>);

impl Written {
    /// Checks that each of `houses` holds exactly what was written for every key it is a
    /// replica of in `ring_of`'s read ring.
    pub async fn held_by_replicas(&self, ring_of: &House, houses: &[&House]) {
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
pub async fn two_with_data(peers: &MemPeers, keys: usize) -> (House, House, Written) {
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
pub async fn three_with_data(peers: &MemPeers, keys: usize) -> (House, House, House, Written) {
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
