//! Hint delivery over real hint stores and engines in temporary directories, through the
//! in-process twin.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use distkv_cluster::{ConflictMode, Dot, Siblings, VectorClock};

use super::{Handoff, HintRoute, HintRoutes};
use crate::counters::Metrics;
use crate::error::NodeError;
use crate::hints::HintStore;
use crate::repair::RepairServer;
use crate::storage::Store;
use crate::twin::MemPeers;

const B: &str = "127.0.0.1:2";
const D: &str = "127.0.0.1:4";

struct Routes(HashMap<&'static str, HintRoute>);

impl HintRoutes for Routes {
    fn route(&self, target: &str) -> HintRoute {
        self.0.get(target).cloned().unwrap_or(HintRoute::Hold)
    }
}

fn routes(of: &[(&'static str, HintRoute)]) -> Routes {
    Routes(of.iter().cloned().collect())
}

fn version(counter: u64) -> Siblings {
    Siblings::new().write(
        Dot::new("a", counter),
        &VectorClock::new(),
        Some(format!("v{counter}").into_bytes()),
        1_000 + counter,
        ConflictMode::Siblings,
    )
}

/// Node A holding hints, its peers B (a replica, store only) and D (a member that can keep
/// hints for others), all on real engines.
struct World {
    _dirs: Vec<tempfile::TempDir>,
    a: Handoff<MemPeers>,
    metrics: Arc<Metrics>,
    peers: MemPeers,
    b_store: Store,
    d_hints: HintStore,
}

fn world() -> World {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let peers = MemPeers::default();
    let metrics = Arc::new(Metrics::default());
    let a = Handoff::new(
        HintStore::open(dirs[0].path()).unwrap(),
        peers.clone(),
        Arc::clone(&metrics),
    );
    // No syncs: on tokio's paused clock, time runs ahead while a task awaits one (the sync
    // is on the disk, not the runtime); durability is tested where syncs are held.
    let b_store = Store::open(
        dirs[1].path(),
        distkv_lsm::Options {
            sync: distkv_lsm::SyncPolicy::Never,
            ..distkv_lsm::Options::default()
        },
        ConflictMode::Siblings,
    )
    .unwrap();
    peers.add(B, Arc::new(RepairServer::new(b_store.clone())));
    let d_hints = HintStore::open(dirs[2].path()).unwrap();
    peers.add_hints(D, d_hints.clone());
    World {
        _dirs: dirs,
        a,
        metrics,
        peers,
        b_store,
        d_hints,
    }
}

impl World {
    /// Hints on A for `target`: keys `<target>-0..n`.
    fn hold(&self, target: &str, n: u64) {
        for i in 0..n {
            let key = format!("{target}-{i}");
            self.a.hints().add(target, &key, &version(i + 1)).unwrap();
        }
    }

    fn held_for(&self, target: &str) -> usize {
        self.a.hints().pending(target, usize::MAX).unwrap().len()
    }
}

#[tokio::test]
async fn hints_reach_their_node_in_batches_and_go_once_acknowledged() {
    let w = world();
    w.hold("b", 300);
    let delivered =
        w.a.deliver(&routes(&[("b", HintRoute::Deliver(B.into()))]))
            .await
            .unwrap();
    assert_eq!(delivered, 300);
    assert_eq!(w.held_for("b"), 0);
    for i in 0..300 {
        let got = w.b_store.read(format!("b-{i}")).await.unwrap();
        assert_eq!(got, version(i + 1), "b-{i}");
    }
    assert_eq!(w.peers.calls().sends, 3, "batches of 128");
    assert_eq!(w.metrics.hints_delivered.load(Ordering::Relaxed), 300);
    // Nothing is left to send.
    let again =
        w.a.deliver(&routes(&[("b", HintRoute::Deliver(B.into()))]))
            .await
            .unwrap();
    assert_eq!((again, w.peers.calls().sends), (0, 3));
}

#[tokio::test]
async fn a_node_that_refuses_keeps_its_hints_until_it_answers() {
    let w = world();
    w.hold("b", 10);
    w.peers.set_down(B, true);
    let to_b = routes(&[("b", HintRoute::Deliver(B.into()))]);
    assert_eq!(w.a.deliver(&to_b).await.unwrap(), 0);
    assert_eq!(w.held_for("b"), 10);
    assert!(w.b_store.read("b-0".into()).await.unwrap().is_empty());
    w.peers.set_down(B, false);
    assert_eq!(w.a.deliver(&to_b).await.unwrap(), 10);
    assert_eq!(w.held_for("b"), 0);
}

#[tokio::test]
async fn hints_are_held_for_a_node_down_and_dropped_for_one_that_left() {
    let w = world();
    w.hold("b", 5);
    w.hold("c", 7);
    let delivered =
        w.a.deliver(&routes(&[("b", HintRoute::Hold), ("c", HintRoute::Drop)]))
            .await
            .unwrap();
    assert_eq!(delivered, 0);
    assert_eq!((w.held_for("b"), w.held_for("c")), (5, 0));
    assert_eq!(w.peers.calls().sends, 0);
}

#[tokio::test]
async fn a_leaving_node_hands_what_it_cannot_deliver_to_a_member_that_is_not_its_target() {
    let w = world();
    w.hold("b", 200);
    w.peers.set_down(B, true);
    // b is the first heir offered, but its own hints cannot go to it.
    let heirs = [
        ("b".to_string(), B.to_string()),
        ("d".to_string(), D.to_string()),
    ];
    w.a.hand_off_all(&routes(&[("b", HintRoute::Deliver(B.into()))]), &heirs)
        .await
        .unwrap();
    assert_eq!(w.held_for("b"), 0);
    let kept = w.d_hints.pending("b", usize::MAX).unwrap();
    assert_eq!(kept.len(), 200);
    let mut keys: Vec<String> = kept.iter().map(|h| h.key.clone()).collect();
    keys.sort();
    let mut want: Vec<String> = (0..200).map(|i| format!("b-{i}")).collect();
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(w.peers.calls().kept, 200);
}

#[tokio::test]
async fn a_leaving_node_with_no_member_to_take_its_hints_says_so_and_keeps_them() {
    let w = world();
    w.hold("b", 3);
    w.peers.set_down(B, true);
    let heirs = [("b".to_string(), B.to_string())];
    let err =
        w.a.hand_off_all(&routes(&[("b", HintRoute::Deliver(B.into()))]), &heirs)
            .await
            .unwrap_err();
    assert!(matches!(err, NodeError::NoSource), "{err}");
    assert_eq!(w.held_for("b"), 3);
}

/// The worker delivers on its interval once the node answers, and ends when told to stop.
#[tokio::test(start_paused = true)]
async fn the_worker_delivers_every_interval_and_stops_when_told() {
    let w = world();
    w.hold("b", 5);
    w.peers.set_down(B, true);
    let to_b = routes(&[("b", HintRoute::Deliver(B.into()))]);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = w.a.run(&to_b, std::time::Duration::from_secs(1), stopped);
    let check = async {
        // Down: passes run and keep the hints.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        assert_eq!(w.held_for("b"), 5);
        w.peers.set_down(B, false);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while w.held_for("b") > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "hints not delivered within 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(w.b_store.read("b-4".into()).await.unwrap(), version(5));
        stop.send(true).unwrap();
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        tokio::join!(worker, check)
    })
    .await
    .expect("the worker ended after the stop signal");
}
