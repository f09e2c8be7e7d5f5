//! Anti-entropy sessions between real engines in temporary directories, over the in-process
//! twin: a seeded model of what two diverged replicas hold, checked against what the session
//! leaves on both.

use std::sync::Arc;

use distkv_cluster::{ConflictMode, Dot, Siblings, TokenRange, VectorClock, key_token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::session::{AntiEntropy, SyncStats};
use crate::counters::Metrics;
use crate::error::{NodeError, PeerFailure};
use crate::storage::Store;
use crate::twin::MemPeers;

const A: &str = "127.0.0.1:1";
const B: &str = "127.0.0.1:2";

fn store(dir: &std::path::Path) -> Store {
    let opts = distkv_lsm::Options {
        memtable_bytes: 256 << 10,
        // No syncs: on tokio's paused clock, time runs ahead while a task awaits one (the
        // sync is on the disk, not the runtime); durability is tested where syncs are held.
        sync: distkv_lsm::SyncPolicy::Never,
        ..distkv_lsm::Options::default()
    };
    Store::open(dir, opts, ConflictMode::Siblings).unwrap()
}

/// Two components, each with its own store, reaching each other through one twin.
struct Pair {
    _dirs: [tempfile::TempDir; 2],
    a: AntiEntropy<MemPeers>,
    b: AntiEntropy<MemPeers>,
    peers: MemPeers,
}

fn pair() -> Pair {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let peers = MemPeers::default();
    let a = AntiEntropy::new(store(dirs[0].path()), peers.clone(), Arc::default());
    let b = AntiEntropy::new(store(dirs[1].path()), peers.clone(), Arc::default());
    peers.add(A, Arc::clone(a.server()));
    peers.add(B, Arc::clone(b.server()));
    Pair {
        _dirs: dirs,
        a,
        b,
        peers,
    }
}

fn write(
    on: &Siblings,
    node: &str,
    counter: u64,
    context: &VectorClock,
    value: Option<&str>,
) -> Siblings {
    on.write(
        Dot::new(node, counter),
        context,
        value.map(|v| v.as_bytes().to_vec()),
        1_000 + counter,
        ConflictMode::Siblings,
    )
}

/// What a replica pair holds before a session: each key's versions on A and on B.
struct Divergence {
    keys: Vec<(String, Siblings, Siblings)>,
}

/// `n` keys, each in one of the ways replicas diverge, chosen by `seed`.
fn diverge(seed: u64, n: usize) -> Divergence {
    let mut rng = SmallRng::seed_from_u64(seed);
    let empty = Siblings::new();
    let none = VectorClock::new();
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("key-{seed}-{i}");
        let c = i as u64 + 1;
        let base = write(&empty, "a", c, &none, Some("base"));
        let (on_a, on_b) = match rng.random_range(0..8) {
            // The same on both: nothing to do.
            0..=2 => (base.clone(), base),
            // On one side only.
            3 => (base, empty.clone()),
            4 => (
                empty.clone(),
                write(&empty, "b", c, &none, Some("only on b")),
            ),
            // Concurrent writes: both survive, as siblings.
            5 => (base, write(&empty, "b", c, &none, Some("concurrent"))),
            // B saw A's version and replaced it: B's wins on both.
            6 => {
                let newer = write(&base, "b", c, &base.context(), Some("newer"));
                (base, newer)
            }
            // A deleted what B still holds: the tombstone wins on both.
            _ => {
                let deleted = write(&base, "a", c + 1_000_000, &base.context(), None);
                (deleted, base)
            }
        };
        keys.push((key, on_a, on_b));
    }
    Divergence { keys }
}

impl Pair {
    async fn load(&self, d: &Divergence) {
        let side = |pick: fn(&(String, Siblings, Siblings)) -> &Siblings| {
            d.keys
                .iter()
                .filter(|k| !pick(k).is_empty())
                .map(|k| (k.0.clone(), pick(k).clone()))
                .collect::<Vec<_>>()
        };
        self.a
            .server()
            .store()
            .merge_many(side(|k| &k.1))
            .await
            .unwrap();
        self.b
            .server()
            .store()
            .merge_many(side(|k| &k.2))
            .await
            .unwrap();
    }

    async fn held(&self, on: &AntiEntropy<MemPeers>, key: &str) -> Siblings {
        on.server().store().read(key.to_string()).await.unwrap()
    }
}

fn all() -> Vec<TokenRange> {
    vec![TokenRange::new(0, 0)]
}

#[tokio::test]
async fn diverged_replicas_end_with_the_merge_of_both_and_a_second_session_finds_nothing() {
    for seed in [1, 2, 3] {
        let p = pair();
        let d = diverge(seed, 2_000);
        p.load(&d).await;
        let stats = p.a.sync_ranges(B, &all()).await.unwrap();

        let (mut differed, mut changed_here) = (0, 0);
        for (key, on_a, on_b) in &d.keys {
            let merged = on_a.merge(on_b);
            differed += usize::from(on_a != on_b);
            changed_here += usize::from(merged != *on_a);
            assert_eq!(p.held(&p.a, key).await, merged, "seed {seed}: {key} on A");
            assert_eq!(p.held(&p.b, key).await, merged, "seed {seed}: {key} on B");
        }
        let on_a = d.keys.iter().filter(|k| !k.1.is_empty()).count() as u64;
        assert_eq!(
            stats,
            SyncStats {
                compared: on_a,
                fetched: changed_here as u64,
                sent: differed as u64,
                repaired: differed as u64,
            },
            "seed {seed}"
        );
        assert!(differed > 0, "seed {seed}: the model made no divergence");

        // Now they agree: the roots match and no key is listed, fetched or sent.
        let before = p.peers.calls();
        let again = p.b.sync_ranges(A, &all()).await.unwrap();
        assert_eq!(again.repaired, 0, "seed {seed}");
        let calls = p.peers.calls();
        assert_eq!(
            calls.hashes - before.hashes,
            1,
            "seed {seed}: one question, the root"
        );
        assert_eq!(
            (calls.keys, calls.fetches, calls.sends),
            (before.keys, before.fetches, before.sends),
            "seed {seed}"
        );
    }
}

#[tokio::test]
async fn one_differing_key_among_many_is_found_by_descending_not_by_listing_everything() {
    let p = pair();
    let none = VectorClock::new();
    let same: Vec<(String, Siblings)> = (0..5_000)
        .map(|i| {
            (
                format!("k{i}"),
                write(&Siblings::new(), "a", i + 1, &none, Some("v")),
            )
        })
        .collect();
    p.a.server().store().merge_many(same.clone()).await.unwrap();
    p.b.server().store().merge_many(same).await.unwrap();
    let odd = write(&Siblings::new(), "b", 1, &none, Some("only on b"));
    p.b.server()
        .store()
        .merge("odd".into(), odd.clone())
        .await
        .unwrap();

    let stats = p.a.sync_ranges(B, &all()).await.unwrap();
    assert_eq!((stats.repaired, stats.fetched, stats.sent), (1, 1, 1));
    assert_eq!(p.held(&p.a, "odd").await, odd);
    let calls = p.peers.calls();
    assert_eq!((calls.keys, calls.fetches, calls.sends), (1, 1, 1));
}

#[tokio::test]
async fn only_the_ranges_given_are_compared() {
    let p = pair();
    let d = diverge(7, 1_000);
    p.load(&d).await;
    // The lower half of the token space only.
    let half = vec![TokenRange::new(0, u64::MAX / 2)];
    p.a.sync_ranges(B, &half).await.unwrap();
    let mut outside_left = 0;
    for (key, on_a, on_b) in &d.keys {
        let token = key_token(key.as_bytes());
        let inside = token > 0 && token <= u64::MAX / 2;
        let (now_a, now_b) = (p.held(&p.a, key).await, p.held(&p.b, key).await);
        if inside {
            assert_eq!(now_a, now_b, "{key} is in the ranges compared");
        } else {
            assert_eq!((&now_a, &now_b), (on_a, on_b), "{key} is outside them");
            outside_left += usize::from(on_a != on_b);
        }
    }
    assert!(outside_left > 0, "some keys outside differed and still do");
}

#[tokio::test]
async fn an_unreachable_peer_fails_the_session_by_name_and_changes_nothing() {
    let p = pair();
    let d = diverge(11, 300);
    p.load(&d).await;
    p.peers.set_down(B, true);
    let err = p.a.sync_ranges(B, &all()).await.unwrap_err();
    assert!(
        matches!(&err, NodeError::Peer { peer, failure: PeerFailure::Unreachable(_) } if peer == B),
        "{err}"
    );
    assert!(err.is_retryable());
    for (key, on_a, on_b) in &d.keys {
        assert_eq!(&p.held(&p.a, key).await, on_a);
        assert_eq!(&p.held(&p.b, key).await, on_b);
    }
    // Back up, the next session repairs.
    p.peers.set_down(B, false);
    assert!(p.a.sync_ranges(B, &all()).await.unwrap().repaired > 0);
}

#[tokio::test]
async fn the_session_counts_into_the_node_metrics() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let peers = MemPeers::default();
    let metrics = Arc::new(Metrics::default());
    let a = AntiEntropy::new(store(dirs[0].path()), peers.clone(), Arc::clone(&metrics));
    let b = AntiEntropy::new(store(dirs[1].path()), peers.clone(), Arc::default());
    peers.add(B, Arc::clone(b.server()));
    let v = write(&Siblings::new(), "a", 1, &VectorClock::new(), Some("v"));
    a.server().store().merge("k".into(), v).await.unwrap();
    a.sync_ranges(B, &all()).await.unwrap();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&metrics.ae_keys_compared), 1);
    assert_eq!(load(&metrics.ae_keys_repaired), 1);
}

// ---- the rounds: whole nodes (membership, anti-entropy, rounds) over the twin ----

mod rounds {
    use distkv_cluster::{ConflictMode, Dot, Siblings};

    use crate::error::NodeError;
    use crate::twin::MemPeers;
    use crate::twin::house::{address, eventually, three_with_data, two_with_data};

    /// A tombstone over `versions`, stamped long ago.
    fn deleted(versions: &Siblings, counter: u64) -> Siblings {
        versions.write(
            Dot::new("b", 1_000_000 + counter),
            &versions.context(),
            None,
            2_000,
            ConflictMode::Siblings,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_repairs_what_a_replica_missed_and_then_tombstones_can_go() {
        let peers = MemPeers::default();
        let (a, b, written) = two_with_data(&peers, 300).await;
        // Some keys deleted on both replicas, long ago.
        let gone: Vec<&(String, Siblings)> = written.0.iter().skip(1).step_by(7).collect();
        for (i, (key, versions)) in gone.iter().enumerate() {
            let tombstone = deleted(versions, i as u64);
            for h in [&a, &b] {
                h.store.merge(key.clone(), tombstone.clone()).await.unwrap();
            }
        }
        for h in [&a, &b] {
            h.store
                .set_gc_grace(3_600_000, std::sync::Arc::new(crate::clock::SystemClock));
        }
        // No full round yet: nothing may be purged (a replica might not have the tombstone).
        assert_eq!(a.rounds.purge_old_tombstones().await.unwrap(), 0);

        // a missed every tenth key (those deleted since hold the same tombstone on both); one
        // round with its only peer brings them.
        let missed = written
            .0
            .iter()
            .step_by(10)
            .filter(|(k, _)| !gone.iter().any(|(g, _)| g == k))
            .count();
        let (stats, peers_compared) = a.rounds.repair_all("repair").await.unwrap();
        assert_eq!(peers_compared, 1);
        assert_eq!(stats.repaired, missed as u64, "{stats:?}");
        for (key, versions) in written.0.iter().step_by(10) {
            if gone.iter().any(|(k, _)| k == key) {
                continue;
            }
            assert_eq!(&a.store.read(key.clone()).await.unwrap(), versions, "{key}");
        }
        // The round reached every replica: a's old tombstones go for good.
        assert_eq!(a.rounds.purge_old_tombstones().await.unwrap(), gone.len());
        for (key, _) in &gone {
            assert!(a.store.read(key.clone()).await.unwrap().is_empty(), "{key}");
        }
        // b's own round (each node's horizon follows its own full rounds: until b's, b still
        // offers the tombstones a left out, which a takes back), then b's purge; after that
        // the replicas agree and a round finds nothing to repair.
        b.rounds.repair_all("repair").await.unwrap();
        for h in [&a, &b] {
            h.rounds.purge_old_tombstones().await.unwrap();
        }
        let (again, _) = a.rounds.repair_all("repair").await.unwrap();
        assert_eq!(again.repaired, 0, "{again:?}");
        for h in [&a, &b] {
            for (key, _) in &gone {
                assert!(h.store.read(key.clone()).await.unwrap().is_empty(), "{key}");
            }
        }
    }

    /// A hint held by any member keeps the tombstones that could have deleted its versions:
    /// delivered after their purge, it would bring a deleted value back (the simulation's
    /// seed 395). Once no member holds a hint, the next full round lets them go.
    #[tokio::test(start_paused = true)]
    async fn a_hint_held_by_any_member_keeps_the_tombstones_it_could_undo() {
        let peers = MemPeers::default();
        let (a, b, c, written) = three_with_data(&peers, 40).await;
        let gone: Vec<&(String, Siblings)> = written.0.iter().step_by(4).collect();
        // c keeps an old write of the first deleted key for b, as if b was away when it was
        // written; then the keys are deleted on every node, long ago.
        let (held_key, held_versions) = gone[0];
        c.hints.add("b", held_key, held_versions).unwrap();
        for (i, (key, versions)) in gone.iter().enumerate() {
            let tombstone = deleted(versions, i as u64);
            for h in [&a, &b, &c] {
                h.store.merge(key.clone(), tombstone.clone()).await.unwrap();
            }
        }
        a.store
            .set_gc_grace(3_600_000, std::sync::Arc::new(crate::clock::SystemClock));

        // A full round, but c's hint is older than the tombstones: none may go.
        a.rounds.repair_all("repair").await.unwrap();
        let oldest = held_versions.versions()[0].timestamp_ms;
        assert!(
            a.store.gc_horizon() <= oldest,
            "the horizon {} passed the hint's version at {oldest}",
            a.store.gc_horizon()
        );
        assert_eq!(a.rounds.purge_old_tombstones().await.unwrap(), 0);

        // c delivers its hint (b merges it under the tombstone, which wins) and holds none:
        // the next full round moves the horizon, and the tombstones go.
        for hint in c.hints.pending("b", 10).unwrap() {
            b.store
                .merge(hint.key.clone(), hint.versions)
                .await
                .unwrap();
            c.hints.remove(&hint.id).unwrap();
        }
        a.rounds.repair_all("repair").await.unwrap();
        assert_eq!(a.rounds.purge_old_tombstones().await.unwrap(), gone.len());
        assert!(b.store.read(held_key.clone()).await.unwrap().is_deleted());
    }

    /// The horizon a full round sets trails its start by the longest a write may stay in
    /// flight: a write stamped just before the round may still become a hint after the
    /// members were asked for theirs (the simulation's seed 739).
    #[tokio::test(start_paused = true)]
    async fn the_horizon_trails_a_round_by_the_longest_flight_of_a_write() {
        let peers = MemPeers::default();
        let (a, _b, _written) = two_with_data(&peers, 10).await;
        a.store.set_gc_grace(1, std::sync::Arc::new(a.clock));
        tokio::time::advance(std::time::Duration::from_secs(3600)).await;
        let started = crate::clock::Clock::now_ms(&a.clock);
        a.rounds.repair_all("repair").await.unwrap();
        let flight = crate::coordinator::in_flight_bound(
            crate::config::test_config("a", "127.0.0.1:1").request_timeout,
        );
        assert!(!flight.is_zero());
        assert_eq!(
            a.store.gc_horizon(),
            started - flight.as_millis() as u64,
            "the horizon is the round's start less the flight"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_that_cannot_reach_a_peer_names_it_and_purges_nothing() {
        let peers = MemPeers::default();
        let (a, b, _written) = two_with_data(&peers, 50).await;
        a.store
            .set_gc_grace(3_600_000, std::sync::Arc::new(crate::clock::SystemClock));
        // b is gone, as a killed process: its workers stop and calls to it are refused.
        let _ = b.stop.send(true);
        peers.set_down(&address("b"), true);
        let err = a.rounds.repair_all("repair").await.unwrap_err();
        match &err {
            NodeError::Streaming { failures } => {
                assert_eq!(failures.len(), 1, "{err}");
                assert_eq!(failures[0].0, "b");
            }
            other => panic!("not a per-peer failure: {other}"),
        }
        assert_eq!(
            a.store.gc_horizon(),
            0,
            "an incomplete round set the GC horizon"
        );
        // Once the failure detector holds b down, rounds skip it: they succeed without
        // counting as full rounds.
        eventually("a holds b down", || a.membership.is_down("b")).await;
        let (_, compared) = a.rounds.repair_all("repair").await.unwrap();
        assert_eq!(compared, 0);
        assert_eq!(
            a.store.gc_horizon(),
            0,
            "a round that skipped b set the GC horizon"
        );
    }
}
