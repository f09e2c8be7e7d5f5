//! Gossip and failure detection in a simulated network: many `Gossiper`s exchanging messages
//! that are delivered, lost, delayed and reordered by a seeded random network, with
//! partitions and restarts, on a logical clock. Each test prints its seed when it fails
//! (`GOSSIP_SIM_SEED` replays one).
//!
//! The 1000-node test reports how many gossip rounds a new member takes to reach every node
//! (target: at most 2 log2 N) and how long a crash takes to be known everywhere.

use std::collections::BTreeSet;

use distkv_cluster::gossip::SplitMix64;
use distkv_cluster::{
    Ack, Ack2, DetectorConfig, GossipConfig, Gossiper, Member, MemberState, Membership, NodeStatus,
    Syn, node_tokens,
};

const ROUND_MS: u64 = 1000;

fn config() -> GossipConfig {
    GossipConfig {
        heartbeat_interval_ms: ROUND_MS,
        gossip_interval_ms: ROUND_MS,
        fanout: 3,
        detector: DetectorConfig {
            suspect_timeout_ms: 5_000,
            dead_timeout_ms: 15_000,
            min_suspect_ms: 2 * ROUND_MS,
            phi_threshold: 8.0,
        },
    }
}

fn seed() -> u64 {
    std::env::var("GOSSIP_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

enum Message {
    Syn(Syn),
    Ack(Ack),
    Ack2(Ack2),
}

struct InFlight {
    at: u64,
    order: u64,
    from: usize,
    to: usize,
    message: Message,
}

/// Nodes `n0 ... n{N-1}` at addresses `n{i}:1`.
struct Sim {
    nodes: Vec<Option<Gossiper>>,
    generation: Vec<u64>,
    now: u64,
    rng: SplitMix64,
    /// Probability (per mille) that a message is lost.
    loss_per_mille: usize,
    /// Largest delivery delay.
    max_delay_ms: u64,
    /// Pairs that cannot talk.
    cut: BTreeSet<(usize, usize)>,
    queue: Vec<InFlight>,
    order: u64,
    cfg: GossipConfig,
}

fn id(i: usize) -> String {
    format!("n{i}")
}

fn index(address: &str) -> usize {
    address
        .trim_start_matches('n')
        .trim_end_matches(":1")
        .parse()
        .expect("a simulated address")
}

impl Sim {
    fn new(n: usize, seed: u64, cfg: GossipConfig) -> Sim {
        let mut sim = Sim {
            nodes: Vec::new(),
            generation: vec![1; n],
            now: 0,
            rng: SplitMix64::new(seed),
            loss_per_mille: 0,
            max_delay_ms: 0,
            cut: BTreeSet::new(),
            queue: Vec::new(),
            order: 0,
            cfg,
        };
        for i in 0..n {
            let g = sim.fresh(i, vec!["n0:1".to_string()], None);
            sim.nodes.push(Some(g));
        }
        sim
    }

    fn fresh(&mut self, i: usize, seeds: Vec<String>, remembered: Option<&Membership>) -> Gossiper {
        let me = Member::new(
            id(i),
            format!("n{i}:1"),
            self.generation[i],
            MemberState::Normal,
            node_tokens(&id(i), 8),
        );
        let mut table = Membership::new(me);
        if let Some(r) = remembered {
            table.merge(r.members().filter(|m| m.id != id(i)).cloned());
        }
        let rng_seed = self.rng.next_u64();
        Gossiper::new(self.cfg, table, seeds, rng_seed, self.now)
    }

    fn send(&mut self, from: usize, to: usize, message: Message) {
        if self.cut.contains(&(from.min(to), from.max(to))) {
            return;
        }
        if self.loss_per_mille > 0 && self.rng.below(1000) < self.loss_per_mille {
            return;
        }
        let delay = if self.max_delay_ms == 0 {
            0
        } else {
            self.rng.below(self.max_delay_ms as usize + 1) as u64
        };
        self.order += 1;
        self.queue.push(InFlight {
            at: self.now + delay,
            order: self.order,
            from,
            to,
            message,
        });
    }

    /// One step of `step_ms`: every live node ticks, then every message due is delivered (in
    /// delivery-time order; answers sent with no delay are delivered in the same step).
    fn step(&mut self, step_ms: u64) {
        self.now += step_ms;
        for i in 0..self.nodes.len() {
            let Some(g) = self.nodes[i].as_mut() else {
                continue;
            };
            let out = g.tick(self.now);
            for o in out {
                let to = index(&o.address);
                self.send(i, to, Message::Syn(o.syn));
            }
        }
        loop {
            let now = self.now;
            let mut due: Vec<InFlight> = Vec::new();
            let mut later = Vec::new();
            for m in self.queue.drain(..) {
                if m.at <= now {
                    due.push(m)
                } else {
                    later.push(m)
                }
            }
            self.queue = later;
            if due.is_empty() {
                break;
            }
            due.sort_by_key(|m| (m.at, m.order));
            for m in due {
                let Some(g) = self.nodes[m.to].as_mut() else {
                    continue;
                };
                match m.message {
                    Message::Syn(syn) => {
                        let ack = g.on_syn(now, syn);
                        self.send(m.to, m.from, Message::Ack(ack));
                    }
                    Message::Ack(ack) => {
                        if let Some(ack2) = g.on_ack(now, ack) {
                            self.send(m.to, m.from, Message::Ack2(ack2));
                        }
                    }
                    Message::Ack2(ack2) => g.on_ack2(now, ack2),
                }
            }
        }
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Gossiper)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.as_ref().map(|g| (i, g)))
    }

    /// True when every live node knows every live node and sees it as `status`.
    fn all_see(&self, status: NodeStatus) -> bool {
        let live: Vec<usize> = self.live().map(|(i, _)| i).collect();
        self.live().all(|(_, g)| {
            live.iter()
                .all(|j| g.statuses().get(&id(*j)) == Some(&status))
        })
    }

    /// Steps until `done` holds, at most `max_rounds` rounds; the rounds it took.
    fn until(&mut self, max_rounds: u64, step_ms: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
        let start = self.now;
        while self.now - start < max_rounds * ROUND_MS {
            if done(self) {
                return Some((self.now - start).div_ceil(ROUND_MS));
            }
            self.step(step_ms);
        }
        done(self).then(|| (self.now - start).div_ceil(ROUND_MS))
    }

    fn crash(&mut self, i: usize) -> Membership {
        self.nodes[i].take().expect("running").table().clone()
    }

    fn restart(&mut self, i: usize, remembered: &Membership) {
        self.generation[i] += 1;
        let g = self.fresh(i, vec!["n0:1".to_string()], Some(remembered));
        self.nodes[i] = Some(g);
    }
}

fn run(name: &str, test: impl FnOnce(u64)) {
    let seed = seed();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(seed)));
    if let Err(e) = result {
        eprintln!("{name} failed with GOSSIP_SIM_SEED={seed}");
        std::panic::resume_unwind(e);
    }
}

#[test]
fn nodes_started_from_one_seed_converge_to_alive_everywhere() {
    run("converge", |seed| {
        let mut sim = Sim::new(8, seed, config());
        let rounds = sim
            .until(30, ROUND_MS, |s| s.all_see(NodeStatus::Alive))
            .expect("8 nodes converge to ALIVE from one seed");
        assert!(rounds <= 10, "took {rounds} rounds");
        // Every node holds the same table (heartbeats aside) and so the same ring.
        let rings: Vec<_> = sim.live().map(|(_, g)| g.table().ring()).collect();
        assert!(rings.windows(2).all(|w| w[0] == w[1]));
    });
}

#[test]
fn lost_delayed_and_reordered_messages_still_converge() {
    run("lossy", |seed| {
        let mut sim = Sim::new(10, seed, config());
        sim.loss_per_mille = 250;
        sim.max_delay_ms = 1500;
        let rounds = sim
            .until(60, 250, |s| s.all_see(NodeStatus::Alive))
            .expect("converges through a quarter of messages lost and delays up to 1.5 rounds");
        assert!(rounds <= 40, "took {rounds} rounds");
        // And it stays that way: lost and late heartbeats may make a peer suspect for a while
        // (that costs nothing: requests still go to it), never dead.
        for _ in 0..80 {
            sim.step(250);
            for (_, g) in sim.live() {
                assert!(
                    g.statuses().values().all(|s| *s != NodeStatus::Dead),
                    "a false death at {}: {:?}",
                    sim.now,
                    g.statuses()
                );
            }
        }
    });
}

#[test]
fn a_partition_makes_each_side_dead_to_the_other_and_healing_revives_both() {
    run("partition", |seed| {
        let mut sim = Sim::new(6, seed, config());
        sim.until(30, ROUND_MS, |s| s.all_see(NodeStatus::Alive))
            .expect("converged");
        let (left, right) = ([0usize, 1, 2], [3usize, 4, 5]);
        for a in left {
            for b in right {
                sim.cut.insert((a.min(b), a.max(b)));
            }
        }
        let cfg = config();
        let dead_after = sim
            .until(40, ROUND_MS, |s| {
                left.iter().all(|&a| {
                    right.iter().all(|&b| {
                        let ga = s.nodes[a].as_ref().unwrap();
                        let gb = s.nodes[b].as_ref().unwrap();
                        ga.status(&id(b), s.now) == NodeStatus::Dead
                            && gb.status(&id(a), s.now) == NodeStatus::Dead
                    })
                })
            })
            .expect("each side sees the other dead");
        assert!(
            dead_after * ROUND_MS <= cfg.detector.dead_timeout_ms + 3 * ROUND_MS,
            "dead after {dead_after} rounds"
        );
        // Within a side everyone stays alive.
        for a in left {
            for b in left {
                assert_eq!(
                    sim.nodes[a].as_ref().unwrap().status(&id(b), sim.now),
                    NodeStatus::Alive
                );
            }
        }
        sim.cut.clear();
        let healed = sim
            .until(30, ROUND_MS, |s| s.all_see(NodeStatus::Alive))
            .expect("the partition heals");
        assert!(healed <= 15, "healed after {healed} rounds");
    });
}

#[test]
fn a_crashed_node_turns_suspect_then_dead_and_its_restart_is_alive_everywhere() {
    run("restart", |seed| {
        let mut sim = Sim::new(6, seed, config());
        sim.until(30, ROUND_MS, |s| s.all_see(NodeStatus::Alive))
            .expect("converged");
        let disk = sim.crash(4);
        let cfg = config();
        let status_of_4 = |s: &Sim| -> BTreeSet<NodeStatus> {
            s.live().map(|(_, g)| g.status("n4", s.now)).collect()
        };
        let suspect = sim
            .until(30, ROUND_MS, |s| {
                status_of_4(s).iter().all(|st| *st != NodeStatus::Alive)
            })
            .expect("suspected everywhere");
        assert!(suspect * ROUND_MS <= cfg.detector.suspect_timeout_ms + 3 * ROUND_MS);
        let dead = sim
            .until(30, ROUND_MS, |s| {
                status_of_4(s) == BTreeSet::from([NodeStatus::Dead])
            })
            .expect("dead everywhere");
        assert!((suspect + dead) * ROUND_MS <= cfg.detector.dead_timeout_ms + 3 * ROUND_MS);
        sim.restart(4, &disk);
        let back = sim
            .until(20, ROUND_MS, |s| s.all_see(NodeStatus::Alive))
            .expect("alive everywhere after the restart");
        assert!(back <= 8, "alive everywhere after {back} rounds");
        // The restarted node's record is its new generation everywhere.
        for (_, g) in sim.live() {
            assert_eq!(g.table().get("n4").map(|m| m.generation), Some(2));
        }
    });
}

/// A cluster of `n` nodes that already know each other, heartbeats flowing, and node `n`
/// (not yet started) that will join through the seed.
fn settled_cluster(n: usize, seed: u64, cfg: GossipConfig) -> (Sim, Option<Gossiper>) {
    let mut sim = Sim::new(n + 1, seed, cfg);
    let newcomer = sim.nodes[n].take();
    let everyone: Vec<Member> = sim.live().map(|(_, g)| g.table().local().clone()).collect();
    for g in sim.nodes.iter_mut().flatten() {
        g.table_mut().merge(everyone.iter().cloned());
    }
    for _ in 0..3 {
        sim.step(ROUND_MS);
    }
    (sim, newcomer)
}

/// 1000 nodes that already know each other; a 1001st joins through one seed. Reports the
/// rounds it takes to be known everywhere.
#[test]
fn a_thousand_nodes_learn_a_new_member_in_logarithmic_rounds() {
    run("thousand", |seed| {
        const N: usize = 1000;
        let (mut sim, newcomer) = settled_cluster(N, seed, config());
        sim.nodes[N] = newcomer;
        let knows = |s: &Sim| s.live().all(|(_, g)| g.table().get(&id(N)).is_some());
        let rounds = sim
            .until(60, ROUND_MS, knows)
            .expect("everyone learns the newcomer");
        let target = 2.0 * (N as f64).log2();
        eprintln!(
            "{N}-node simulation: a new member known everywhere after {rounds} rounds (target <= {target:.1})"
        );
        assert!((rounds as f64) <= target, "{rounds} rounds");
    });
}

/// A crash among many nodes: rounds until every node suspects it. 200 nodes in the normal
/// suite; `GOSSIP_SIM_CRASH_NODES=1000` (as `make test-heavy` sets) for the full size.
#[test]
fn a_crash_among_many_nodes_is_known_everywhere() {
    run("crash", |seed| {
        let n: usize = std::env::var("GOSSIP_SIM_CRASH_NODES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let mut cfg = config();
        // A heartbeat takes a few rounds to cross the cluster: the timeouts leave room for it.
        cfg.detector.suspect_timeout_ms = 10_000;
        cfg.detector.dead_timeout_ms = 30_000;
        let (mut sim, _) = settled_cluster(n, seed, cfg);
        for _ in 0..12 {
            sim.step(ROUND_MS);
        }
        assert!(
            sim.all_see(NodeStatus::Alive),
            "a false suspicion among {n} nodes"
        );
        sim.crash(n / 2);
        let victim = id(n / 2);
        let suspected = |s: &Sim| {
            s.live()
                .all(|(_, g)| g.status(&victim, s.now) != NodeStatus::Alive)
        };
        let rounds = sim
            .until(60, ROUND_MS, suspected)
            .expect("the crash is suspected everywhere");
        let spread = 2 * (n as f64).log2().ceil() as u64;
        eprintln!(
            "{n}-node simulation: a crash suspected everywhere after {rounds} rounds (suspect timeout {} rounds)",
            cfg.detector.suspect_timeout_ms / ROUND_MS
        );
        assert!(rounds * ROUND_MS <= cfg.detector.suspect_timeout_ms + spread * ROUND_MS);
        let dead = |s: &Sim| {
            s.live()
                .all(|(_, g)| g.status(&victim, s.now) == NodeStatus::Dead)
        };
        let more = sim
            .until(60, ROUND_MS, dead)
            .expect("the crash is known dead everywhere");
        eprintln!(
            "{n}-node simulation: dead everywhere after {} rounds (dead timeout {} rounds)",
            rounds + more,
            cfg.detector.dead_timeout_ms / ROUND_MS
        );
        assert!((rounds + more) * ROUND_MS <= cfg.detector.dead_timeout_ms + spread * ROUND_MS);
    });
}
