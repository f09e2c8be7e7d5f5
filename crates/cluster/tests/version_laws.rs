//! The merge laws of sibling sets, checked over causally valid histories.
//!
//! A simulator plays clients against three replicas of one key: a client reads the sets of some
//! replicas (merged, as a quorum read does) and writes through a coordinator with the context it
//! read, or writes blind with an empty context, or deletes; the coordinator merges the new version
//! into its own set and sends that set to some replicas; anti-entropy merges one replica into
//! another. Dots are unique per write. Beside the real sets the simulator keeps a model: for every
//! write, the set of writes its client had actually seen. The model, not the code's own rule, says
//! which versions must survive.

use std::collections::{BTreeMap, BTreeSet};

use distkv_cluster::{ConflictMode, Dot, Siblings, VectorClock};
use proptest::prelude::*;
use proptest::sample::Index;

const REPLICAS: usize = 3;
const SIBLINGS: ConflictMode = ConflictMode::Siblings;

#[derive(Debug, Clone)]
enum Step {
    /// A client reads the replicas in `read_mask` (none: a blind write), then writes `value`
    /// (`None`: delete) through `coordinator`, which sends its merged set to the replicas in
    /// `replicate_mask`.
    Write {
        read_mask: u8,
        coordinator: usize,
        replicate_mask: u8,
        value: Option<u8>,
        timestamp_ms: u64,
    },
    /// Anti-entropy: `to` merges the set of `from`.
    Sync { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let mask = 0u8..(1 << REPLICAS);
    prop_oneof![
        4 => (
            prop_oneof![1 => Just(0u8), 3 => mask.clone()],
            0..REPLICAS,
            mask,
            prop::option::weighted(0.8, any::<u8>()),
            0u64..40,
        )
            .prop_map(|(read_mask, coordinator, replicate_mask, value, timestamp_ms)| Step::Write {
                read_mask,
                coordinator,
                replicate_mask,
                value,
                timestamp_ms,
            }),
        2 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

fn node(i: usize) -> String {
    format!("r{i}")
}

struct Sim {
    mode: ConflictMode,
    replicas: Vec<Siblings>,
    /// The last counter each replica used as coordinator.
    counters: Vec<u64>,
    /// Every set any replica has held, in order.
    states: Vec<Siblings>,
    /// Model: the writes each write's client had seen (its causal past, transitively).
    past: BTreeMap<Dot, BTreeSet<Dot>>,
}

impl Sim {
    fn run(mode: ConflictMode, steps: &[Step]) -> Sim {
        let mut sim = Sim {
            mode,
            replicas: vec![Siblings::new(); REPLICAS],
            counters: vec![0; REPLICAS],
            states: vec![Siblings::new()],
            past: BTreeMap::new(),
        };
        for s in steps {
            sim.step(s);
        }
        sim
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Write {
                read_mask,
                coordinator,
                replicate_mask,
                value,
                timestamp_ms,
            } => {
                let read = (0..REPLICAS)
                    .filter(|i| read_mask & (1 << i) != 0)
                    .fold(Siblings::new(), |acc, i| acc.merge(&self.replicas[i]));
                let c = *coordinator;
                self.counters[c] += 1;
                let dot = Dot::new(node(c), self.counters[c]);
                self.past.insert(dot.clone(), self.seen(&read));
                let value = value.map(|v| vec![v]);
                self.replicas[c] =
                    self.replicas[c].write(dot, &read.context(), value, *timestamp_ms, self.mode);
                self.states.push(self.replicas[c].clone());
                let sent = self.replicas[c].clone();
                for r in (0..REPLICAS).filter(|r| replicate_mask & (1 << r) != 0 && *r != c) {
                    self.receive(r, &sent);
                }
            }
            Step::Sync { from, to } => {
                let sent = self.replicas[*from].clone();
                self.receive(*to, &sent);
            }
        }
    }

    fn receive(&mut self, r: usize, set: &Siblings) {
        self.replicas[r] = self.replicas[r].merge(set).resolve(self.mode);
        self.states.push(self.replicas[r].clone());
    }

    /// Model: every write a reader of `set` has seen, directly or through what it read.
    fn seen(&self, set: &Siblings) -> BTreeSet<Dot> {
        let mut seen = BTreeSet::new();
        for v in set.versions() {
            seen.insert(v.dot.clone());
            seen.extend(self.past[&v.dot].iter().cloned());
        }
        seen
    }

    /// Model: the versions of `sets` that no version among them had seen.
    fn expected_merge(&self, sets: &[&Siblings]) -> BTreeSet<Dot> {
        let all: BTreeSet<Dot> = sets.iter().flat_map(|s| dots(s)).collect();
        let seen: BTreeSet<Dot> = all
            .iter()
            .flat_map(|d| self.past[d].iter().cloned())
            .collect();
        all.difference(&seen).cloned().collect()
    }

    /// Every replica merges every other, twice over: afterwards all hold the same set.
    fn converge(&mut self) {
        for _ in 0..2 {
            for from in 0..REPLICAS {
                for to in 0..REPLICAS {
                    let sent = self.replicas[from].clone();
                    self.receive(to, &sent);
                }
            }
        }
    }

    fn pick(&self, i: &Index) -> &Siblings {
        &self.states[i.index(self.states.len())]
    }
}

fn dots(s: &Siblings) -> BTreeSet<Dot> {
    s.versions().iter().map(|v| v.dot.clone()).collect()
}

fn history() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..40)
}

fn picks() -> impl Strategy<Value = Vec<(Index, Index, Index)>> {
    prop::collection::vec(any::<(Index, Index, Index)>(), 12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_is_commutative_associative_idempotent(steps in history(), picks in picks()) {
        let sim = Sim::run(SIBLINGS, &steps);
        for (i, j, k) in &picks {
            let (a, b, c) = (sim.pick(i), sim.pick(j), sim.pick(k));
            prop_assert_eq!(a.merge(b), b.merge(a));
            prop_assert_eq!(a.merge(b).merge(c), a.merge(&b.merge(c)));
            prop_assert_eq!(&a.merge(a), a);
            prop_assert_eq!(&a.merge(&Siblings::new()), a);
        }
    }

    /// A merge keeps exactly the versions no client had seen (per the model), so a version is
    /// dropped only when a version in the result saw it.
    #[test]
    fn merge_drops_only_what_was_seen(steps in history(), picks in picks()) {
        let sim = Sim::run(SIBLINGS, &steps);
        for (i, j, _) in &picks {
            let (a, b) = (sim.pick(i), sim.pick(j));
            let m = a.merge(b);
            prop_assert_eq!(dots(&m), sim.expected_merge(&[a, b]));
            for x in a.versions().iter().chain(b.versions()) {
                if !dots(&m).contains(&x.dot) {
                    prop_assert!(
                        m.versions().iter().any(|y| y.saw(x)),
                        "{:?} dropped but no version in the result saw it", x.dot
                    );
                }
            }
            for x in m.versions() {
                let superseded = m.versions().iter().any(|y| y.saw(x));
                prop_assert!(!superseded, "result holds the superseded {:?}", x.dot);
            }
        }
    }

    /// A blind write, even through a coordinator that wrote some of the existing versions, joins
    /// them as a sibling.
    #[test]
    fn blind_write_becomes_a_sibling(steps in history(), pick in any::<Index>(), c in 0..REPLICAS) {
        let sim = Sim::run(SIBLINGS, &steps);
        let before = sim.pick(&pick);
        let dot = Dot::new(node(c), sim.counters[c] + 1);
        let empty = VectorClock::new();
        let after = before.write(dot.clone(), &empty, Some(b"blind".to_vec()), 0, SIBLINGS);
        let mut want = dots(before);
        want.insert(dot);
        prop_assert_eq!(dots(&after), want);
    }

    /// A write with the context of a read supersedes exactly the versions that read returned (and
    /// what they had seen), on the replica read and on any other.
    #[test]
    fn write_with_read_context_supersedes_exactly_what_was_read(
        steps in history(),
        read in any::<Index>(),
        other in any::<Index>(),
        c in 0..REPLICAS,
    ) {
        let sim = Sim::run(SIBLINGS, &steps);
        let read = sim.pick(&read);
        let dot = Dot::new(node(c), sim.counters[c] + 1);
        let write = |target: &Siblings| {
            target.write(dot.clone(), &read.context(), Some(b"new".to_vec()), 0, SIBLINGS)
        };
        prop_assert_eq!(dots(&write(read)), BTreeSet::from([dot.clone()]));
        let target = read.merge(sim.pick(&other));
        let seen = sim.seen(read);
        let mut want: BTreeSet<Dot> = dots(&target).difference(&seen).cloned().collect();
        want.insert(dot.clone());
        prop_assert_eq!(dots(&write(&target)), want);
    }

    /// After anti-entropy everywhere, every replica holds the same set: exactly the writes no
    /// client saw. Nothing else was lost.
    #[test]
    fn replicas_converge_to_the_unseen_writes(steps in history()) {
        let mut sim = Sim::run(SIBLINGS, &steps);
        sim.converge();
        for r in &sim.replicas[1..] {
            prop_assert_eq!(r, &sim.replicas[0]);
        }
        let written: Vec<&Siblings> = sim.states.iter().collect();
        prop_assert_eq!(dots(&sim.replicas[0]), sim.expected_merge(&written));
    }

    /// Every state of a real history survives the wire.
    #[test]
    fn history_states_round_trip_through_bytes(steps in history()) {
        let sim = Sim::run(SIBLINGS, &steps);
        for s in &sim.states {
            prop_assert_eq!(&Siblings::decode(&s.encode()), &Ok(s.clone()));
        }
    }

    /// Last-write-wins keeps exactly one version of a written key, merging then resolving is
    /// commutative, associative and idempotent, replicas converge on the write with the largest
    /// (timestamp, dot), and a write always replaces what its coordinator held.
    #[test]
    fn lww_keeps_exactly_one(steps in history(), picks in picks(), c in 0..REPLICAS) {
        let lww = ConflictMode::LastWriteWins;
        let mut sim = Sim::run(lww, &steps);
        // A replica holds nothing until a write reaches it, then exactly one version.
        for s in &sim.states {
            prop_assert!(s.len() <= 1, "{:?}", s);
        }
        let m = |x: &Siblings, y: &Siblings| x.merge(y).resolve(lww);
        for (i, j, k) in &picks {
            let (a, b, c) = (sim.pick(i), sim.pick(j), sim.pick(k));
            prop_assert_eq!(m(a, b), m(b, a));
            prop_assert_eq!(m(&m(a, b), c), m(a, &m(b, c)));
            prop_assert_eq!(&m(a, a), a);
        }
        let held = sim.replicas[c].clone();
        let dot = Dot::new(node(c), sim.counters[c] + 1);
        let after = held.write(dot.clone(), &VectorClock::new(), None, 0, lww);
        prop_assert_eq!(dots(&after), BTreeSet::from([dot]));

        sim.converge();
        for r in &sim.replicas[1..] {
            prop_assert_eq!(r, &sim.replicas[0]);
        }
        let newest = sim
            .states
            .iter()
            .flat_map(|s| s.versions())
            .max_by(|a, b| (a.timestamp_ms, &a.dot).cmp(&(b.timestamp_ms, &b.dot)));
        prop_assert_eq!(sim.replicas[0].versions().first(), newest);
    }
}
