use super::*;

fn cfg(seeds: &[&str]) -> NodeConfig {
    let mut c = crate::config::test_config("n1", "127.0.0.1:7000");
    c.seeds = seeds.iter().map(|s| s.to_string()).collect();
    c
}

#[test]
fn the_start_state_follows_the_last_run() {
    let saved = |state| {
        let mut m = Member::new("n1", "127.0.0.1:7000", 500, state, vec![3, 1, 2]);
        m.version = 9;
        m
    };
    // New nodes: with seeds they join, without (or only themselves) they start a cluster.
    assert_eq!(
        initial_state(&cfg(&["a:1"]), None, 10).state,
        MemberState::Joining
    );
    assert_eq!(
        initial_state(&cfg(&[]), None, 10).state,
        MemberState::Normal
    );
    assert_eq!(
        initial_state(&cfg(&["127.0.0.1:7000"]), None, 10).state,
        MemberState::Normal
    );
    // Members carry on; an interrupted join or a removal means joining again.
    for (before, after) in [
        (MemberState::Normal, MemberState::Normal),
        (MemberState::Leaving, MemberState::Leaving),
        (MemberState::Joining, MemberState::Joining),
        (MemberState::Left, MemberState::Joining),
    ] {
        let m = initial_state(&cfg(&["a:1"]), Some(&saved(before)), 10);
        assert_eq!(m.state, after, "after {before:?}");
        // The tokens are kept, the generation only grows.
        assert_eq!(&m.tokens[..], &[1, 2, 3]);
        assert_eq!(m.generation, 501);
    }
    let fresh = initial_state(&cfg(&[]), None, 10);
    assert_eq!(fresh.tokens.len(), 150);
    assert_eq!(fresh.generation, 10);
}

// ---- the component, several nodes over the in-process transport, on tokio's paused clock ----

mod component {
    use std::sync::Arc;
    use std::time::Duration;

    use distkv_cluster::MemberState;
    use tokio::sync::watch;
    use tokio::time::Instant;

    use crate::clock::TokioClock;
    use crate::counters::Metrics;
    use crate::error::{BadMessage, NodeError};
    use crate::handoff::{HintRoute, HintRoutes};
    use crate::members_file;
    use crate::membership::Membership;
    use crate::twin::MemPeers;

    /// One node's membership, its directory and its running loop.
    struct Member {
        id: &'static str,
        m: Arc<Membership<MemPeers>>,
        dir: tempfile::TempDir,
        stop: watch::Sender<bool>,
    }

    fn address(id: &str) -> String {
        format!("{id}:7000")
    }

    fn config(id: &str, seeds: &[&str], dir: &std::path::Path) -> crate::config::NodeConfig {
        let mut cfg = crate::config::test_config(id, &address(id));
        cfg.seeds = seeds.iter().map(|s| address(s)).collect();
        cfg.data_dir = dir.to_path_buf();
        cfg.suspect_timeout = Duration::from_secs(5);
        cfg.dead_timeout = Duration::from_secs(10);
        cfg
    }

    /// Starts `id` (seeded with `seeds`) from what its directory holds, reachable through
    /// `peers`.
    fn start(peers: &MemPeers, id: &'static str, seeds: &[&str], dir: tempfile::TempDir) -> Member {
        let saved = members_file::load(dir.path())
            .expect("the saved table reads")
            .unwrap_or_default();
        let m = Arc::new(Membership::new(
            &config(id, seeds, dir.path()),
            saved,
            peers.clone(),
            Arc::default(),
            Arc::new(Metrics::default()),
            Arc::new(TokioClock::starting_at(1_800_000_000_000)),
        ));
        peers.add_gossip(&address(id), m.clone());
        peers.set_down(&address(id), false);
        let (stop, rx) = watch::channel(false);
        tokio::spawn(Arc::clone(&m).run(rx));
        Member { id, m, dir, stop }
    }

    fn new_node(peers: &MemPeers, id: &'static str, seeds: &[&str]) -> Member {
        start(peers, id, seeds, tempfile::tempdir().unwrap())
    }

    /// Stops the node's loop and refuses every call to it: it is gone, as a killed process.
    fn kill(peers: &MemPeers, node: Member) -> tempfile::TempDir {
        let _ = node.stop.send(true);
        peers.set_down(&address(node.id), true);
        node.dir
    }

    impl Member {
        fn state_of(&self, id: &str) -> Option<MemberState> {
            self.m
                .members()
                .into_iter()
                .find(|m| m.id == id)
                .map(|m| m.state)
        }
    }

    /// Waits, in simulated time, until `cond` holds; fails after five simulated minutes.
    async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "not within 300 simulated seconds: {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// a starts the cluster; b and c join through it.
    async fn three(peers: &MemPeers) -> (Member, Member, Member) {
        let a = new_node(peers, "a", &[]);
        let b = new_node(peers, "b", &["a"]);
        let c = new_node(peers, "c", &["a"]);
        eventually("every node knows three members", || {
            [&a, &b, &c].iter().all(|n| n.m.members().len() == 3)
        })
        .await;
        (a, b, c)
    }

    async fn three_normal(peers: &MemPeers) -> (Member, Member, Member) {
        let (a, b, c) = three(peers).await;
        b.m.set_local_state(MemberState::Normal).await;
        c.m.set_local_state(MemberState::Normal).await;
        eventually("every node holds every node normal", || {
            [&a, &b, &c].iter().all(|n| n.m.ring().nodes().len() == 3)
        })
        .await;
        (a, b, c)
    }

    #[tokio::test(start_paused = true)]
    async fn members_meet_through_a_seed_join_then_serve_and_save_their_table() {
        let peers = MemPeers::default();
        let (a, b, c) = three(&peers).await;
        // Joining nodes take writes (the pending ring) but serve no reads yet.
        assert_eq!(a.m.ring().nodes(), vec!["a".to_string()]);
        assert_eq!(b.m.rings().pending.nodes().len(), 3);
        assert!(a.m.serving());
        assert!(!b.m.serving() && !c.m.serving());
        assert_eq!(b.m.local_state(), MemberState::Joining);

        b.m.set_local_state(MemberState::Normal).await;
        eventually("c hears that b is normal", || {
            c.state_of("b") == Some(MemberState::Normal)
        })
        .await;
        assert_eq!(c.m.ring().nodes(), vec!["a".to_string(), "b".to_string()]);
        assert!(c.m.since_ring_change() < Duration::from_secs(60));

        // What every node saved is what it holds.
        for n in [&a, &b, &c] {
            let saved = members_file::load(n.dir.path()).unwrap().unwrap();
            assert_eq!(saved, n.m.members());
        }
        assert!(peers.calls().gossip > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_member_is_held_down_routed_around_then_up_again() {
        let peers = MemPeers::default();
        let (a, b, c) = three_normal(&peers).await;
        assert_eq!(a.m.route("c"), HintRoute::Deliver(address("c")));
        let c_dir = kill(&peers, c);
        eventually("a and b hold c down", || {
            a.m.is_down("c") && b.m.is_down("c")
        })
        .await;
        // c's writes become hints, kept for later; its placement says down.
        assert_eq!(a.m.route("c"), HintRoute::Hold);
        assert_eq!(a.m.route("b"), HintRoute::Deliver(address("b")));
        let placement = a.m.placement("k", 3, false);
        assert_eq!(placement.replicas.len(), 3);
        assert_eq!(placement.down, vec!["c".to_string()]);
        assert!(placement.stand_ins.is_empty());
        assert!(!a.m.is_down("a"), "a node never holds itself down");

        // Restarted from its directory, c is a member again under a new generation.
        let c = start(&peers, "c", &["a"], c_dir);
        assert_eq!(c.m.local_state(), MemberState::Normal);
        assert!(c.m.serving());
        eventually("a and b hold c up again", || {
            !a.m.is_down("c") && !b.m.is_down("c")
        })
        .await;
        assert_eq!(a.m.route("c"), HintRoute::Deliver(address("c")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_removed_while_down_is_dropped_and_joins_again_from_empty() {
        let peers = MemPeers::default();
        let (a, b, c) = three_normal(&peers).await;
        let c_dir = kill(&peers, c);
        eventually("a holds c down", || a.m.is_down("c")).await;

        assert!(matches!(
            a.m.mark_member_left("a"),
            Err(NodeError::RemoveSelf)
        ));
        assert!(matches!(
            a.m.mark_member_left("nobody"),
            Err(NodeError::UnknownNode(_))
        ));
        // By address, as the CLI allows.
        assert_eq!(a.m.mark_member_left(&address("c")).unwrap(), "c");
        eventually("b learns c left", || {
            b.state_of("c") == Some(MemberState::Left)
        })
        .await;
        assert_eq!(b.m.route("c"), HintRoute::Drop, "hints for a left node go");
        assert_eq!(b.m.ring().nodes().len(), 2);

        // Restarted, c learns of its removal: it joins again, refuses clients meanwhile, and
        // its data is of an earlier membership (told once).
        let c = start(&peers, "c", &["a"], c_dir);
        eventually("c joins again", || {
            c.m.local_state() == MemberState::Joining && !c.m.serving()
        })
        .await;
        assert!(c.m.take_stale_data());
        assert!(!c.m.take_stale_data());
        eventually("a hears c joining", || {
            a.state_of("c") == Some(MemberState::Joining)
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn introducing_checks_who_answers() {
        let peers = MemPeers::default();
        let a = new_node(&peers, "a", &[]);
        let b = new_node(&peers, "b", &[]);
        let c = new_node(&peers, "c", &["z"]);
        // The address answers with another id.
        let wrong = a.m.introduce("x", &address("b")).await;
        assert!(
            matches!(
                wrong,
                Err(NodeError::BadMessage(BadMessage::WrongNode { ref found, .. })) if found == "b"
            ),
            "{wrong:?}"
        );
        // b started without seeds: it serves a cluster of its own.
        assert!(matches!(
            a.m.introduce("b", &address("b")).await,
            Err(NodeError::WrongState(_))
        ));
        // Nobody there.
        assert!(a.m.introduce("q", &address("q")).await.is_err());
        // c waits for its seed (which does not exist): introduced, it joins a's cluster.
        a.m.introduce("c", &address("c")).await.unwrap();
        eventually("c knows a", || c.state_of("a") == Some(MemberState::Normal)).await;
        assert_eq!(a.state_of("c"), Some(MemberState::Joining));
        assert_eq!(b.m.members().len(), 1, "b learned nothing");
    }
}
