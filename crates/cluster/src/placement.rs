//! Which ranges move when the ring changes, and between whom.
//!
//! **Guarantees.** [`plan_transfers`] lists, for a change from one ring to another, every
//! token range that gains a replica, the node that gains it and the nodes that held it before
//! (its sources, in preference order). Ranges whose replicas do not change never appear, so
//! adding a node moves only what the new node takes over: with N replicas on M nodes, about
//! N/(M+1) of the keys get a new copy (a quarter of all copies when a 4th node joins 3 with
//! N = 3). The plan is a pure function of the two rings and N: every node computes the same.
//!
//! **How.** Dynamo 4.9. The boundaries of both rings cut the circle into arcs on which both
//! preference lists are constant; for each arc, the new list minus the old list are the
//! gainers. Neighbouring arcs with the same gainer and sources are merged.
//!
//! **Left out.** Moving the data (the node streams it) and the order of transfers.

use std::collections::{BTreeMap, BTreeSet};

use crate::NodeId;
use crate::ring::{Ring, Token, TokenRange, arcs_between};

/// One range that `target` must receive, from any of `sources`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub range: TokenRange,
    pub target: NodeId,
    /// The range's replicas before the change, in preference order.
    pub sources: Vec<NodeId>,
}

/// The transfers that take a cluster from `old` to `new` with `n` replicas per key, in token
/// order of their ranges.
pub fn plan_transfers(old: &Ring, new: &Ring, n: usize) -> Vec<Transfer> {
    let mut points: BTreeSet<Token> = old.tokens().map(|(t, _)| t).collect();
    points.extend(new.tokens().map(|(t, _)| t));
    let mut out: Vec<Transfer> = Vec::new();
    for arc in arcs_between(&points) {
        let before = old.preference_list_for_token(arc.end, n);
        let after = new.preference_list_for_token(arc.end, n);
        for gainer in after.iter().filter(|a| !before.contains(a)) {
            // Extend the previous transfer when it is the same move on the adjacent arc.
            if let Some(last) =
                out.iter_mut().rev().take(n).find(|t| {
                    t.target == *gainer && t.range.end == arc.start && t.sources == before
                })
            {
                last.range.end = arc.end;
                continue;
            }
            out.push(Transfer {
                range: arc,
                target: gainer.clone(),
                sources: before.clone(),
            });
        }
    }
    // The first and last arcs meet at the top of the circle: join them too.
    if out.len() > 1 {
        let first = out[0].clone();
        if let Some(pos) = out.iter().rposition(|t| {
            t.target == first.target
                && t.sources == first.sources
                && t.range.end == first.range.start
        }) && pos != 0
        {
            out[0].range.start = out[pos].range.start;
            out.remove(pos);
        }
    }
    out
}

/// The token ranges for which both `a` and `b` are among the `n` replicas: what the two
/// compare in anti-entropy. Adjacent arcs are merged.
pub fn shared_ranges(ring: &Ring, n: usize, a: &str, b: &str) -> Vec<TokenRange> {
    ranges_where(ring, n, |list| {
        list.iter().any(|x| x == a) && list.iter().any(|x| x == b)
    })
}

/// The token ranges `node` is a replica of.
pub fn replicated_ranges(ring: &Ring, n: usize, node: &str) -> Vec<TokenRange> {
    ranges_where(ring, n, |list| list.iter().any(|x| x == node))
}

/// For each other node, the ranges it shares with `node` (only nodes sharing any).
pub fn peers_sharing(ring: &Ring, n: usize, node: &str) -> BTreeMap<NodeId, Vec<TokenRange>> {
    let mut out = BTreeMap::new();
    for peer in ring.nodes() {
        if peer != node {
            let ranges = shared_ranges(ring, n, node, &peer);
            if !ranges.is_empty() {
                out.insert(peer, ranges);
            }
        }
    }
    out
}

fn ranges_where(ring: &Ring, n: usize, keep: impl Fn(&[NodeId]) -> bool) -> Vec<TokenRange> {
    let arcs = ring.arcs();
    if arcs.len() == 1 {
        let list = ring.preference_list_for_token(arcs[0].end, n);
        return if keep(&list) {
            vec![TokenRange::new(arcs[0].end, arcs[0].end)]
        } else {
            Vec::new()
        };
    }
    let mut out: Vec<TokenRange> = Vec::new();
    for arc in arcs {
        if keep(&ring.preference_list_for_token(arc.end, n)) {
            match out.last_mut() {
                Some(last) if last.end == arc.start => last.end = arc.end,
                _ => out.push(arc),
            }
        }
    }
    if out.len() > 1 && out[out.len() - 1].end == out[0].start {
        let last = out.pop().expect("two or more");
        out[0].start = last.start;
    }
    out
}

/// A set of token ranges, for asking whether a token falls in any of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// Non-wrapping inclusive intervals, sorted and disjoint.
    intervals: Vec<(Token, Token)>,
}

impl RangeSet {
    pub fn new(ranges: &[TokenRange]) -> RangeSet {
        let mut iv: Vec<(Token, Token)> = ranges.iter().flat_map(|r| r.intervals()).collect();
        iv.sort_unstable();
        let mut merged: Vec<(Token, Token)> = Vec::with_capacity(iv.len());
        for (lo, hi) in iv {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        RangeSet { intervals: merged }
    }

    pub fn contains(&self, token: Token) -> bool {
        let i = self.intervals.partition_point(|(lo, _)| *lo <= token);
        i > 0 && token <= self.intervals[i - 1].1
    }

    /// The intervals `[lo, hi]`, sorted and disjoint.
    pub fn intervals(&self) -> &[(Token, Token)] {
        &self.intervals
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// The share of the token space covered.
    pub fn fraction(&self) -> f64 {
        let total: u128 = self
            .intervals
            .iter()
            .map(|(lo, hi)| u128::from(hi - lo) + 1)
            .sum();
        total as f64 / (1u128 << 64) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::key_token;

    fn ring(nodes: &[&str], vnodes: u32) -> Ring {
        let mut r = Ring::new();
        for n in nodes {
            r.add_node(n, vnodes);
        }
        r
    }

    /// For every key sampled, the plan says exactly which node gains it and from whom.
    fn check_plan(old: &Ring, new: &Ring, n: usize) -> usize {
        let plan = plan_transfers(old, new, n);
        let mut moved = 0;
        for i in 0..5000u32 {
            let key = format!("key-{i}");
            let t = key_token(key.as_bytes());
            let before = old.preference_list_for_token(t, n);
            let after = new.preference_list_for_token(t, n);
            let gainers: BTreeSet<&NodeId> = after.iter().filter(|a| !before.contains(a)).collect();
            let planned: BTreeSet<&NodeId> = plan
                .iter()
                .filter(|tr| tr.range.contains(t))
                .map(|tr| {
                    assert_eq!(tr.sources, before, "sources of {key}");
                    &tr.target
                })
                .collect();
            assert_eq!(planned, gainers, "{key}");
            moved += gainers.len();
        }
        moved
    }

    #[test]
    fn a_fourth_node_takes_about_a_quarter_of_all_copies() {
        let old = ring(&["a", "b", "c"], 64);
        let new = ring(&["a", "b", "c", "d"], 64);
        let moved = check_plan(&old, &new, 3);
        // 5000 keys x 3 copies; d takes 3/4 of the keys, a quarter of all copies.
        let fraction = moved as f64 / (5000.0 * 3.0);
        assert!((0.2..0.3).contains(&fraction), "{fraction}");
        assert!(
            plan_transfers(&old, &new, 3)
                .iter()
                .all(|t| t.target == "d")
        );
    }

    #[test]
    fn plans_for_leaving_and_for_no_change() {
        let old = ring(&["a", "b", "c", "d", "e"], 32);
        let new = ring(&["a", "b", "d", "e"], 32);
        let moved = check_plan(&old, &new, 3);
        assert!(moved > 0);
        for t in plan_transfers(&old, &new, 3) {
            assert!(t.sources.contains(&"c".to_string()), "only c's ranges move");
            assert_ne!(t.target, "c");
        }
        assert!(plan_transfers(&old, &old, 3).is_empty());
        // From nothing: every range to each of its replicas, from no sources.
        let plan = plan_transfers(&Ring::new(), &ring(&["a"], 4), 1);
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].range.start, plan[0].range.end, "the whole ring");
        assert!(plan[0].sources.is_empty());
    }

    #[test]
    fn shared_and_replicated_ranges_match_preference_lists() {
        let r = ring(&["a", "b", "c", "d"], 16);
        let shared = RangeSet::new(&shared_ranges(&r, 2, "a", "b"));
        let mine = RangeSet::new(&replicated_ranges(&r, 2, "a"));
        for i in 0..5000u32 {
            let t = key_token(format!("k{i}").as_bytes());
            let list = r.preference_list_for_token(t, 2);
            let has = |x: &str| list.iter().any(|n| n == x);
            assert_eq!(shared.contains(t), has("a") && has("b"));
            assert_eq!(mine.contains(t), has("a"));
        }
        assert!((mine.fraction() - 0.5).abs() < 0.15, "{}", mine.fraction());
        let peers = peers_sharing(&r, 2, "a");
        assert!(!peers.contains_key("a"));
        // With N = all nodes everyone shares the whole ring.
        let all = ring(&["a", "b"], 4);
        assert_eq!(
            RangeSet::new(&shared_ranges(&all, 2, "a", "b")).fraction(),
            1.0
        );
    }

    #[test]
    fn range_sets_handle_wrapping_and_merging() {
        let set = RangeSet::new(&[
            TokenRange::new(100, 10),
            TokenRange::new(10, 20),
            TokenRange::new(50, 60),
        ]);
        for (t, want) in [
            (0, true),
            (10, true),
            (20, true),
            (21, false),
            (50, false),
            (51, true),
            (60, true),
            (100, false),
            (101, true),
            (u64::MAX, true),
        ] {
            assert_eq!(set.contains(t), want, "{t}");
        }
        assert_eq!(set.intervals(), &[(0, 20), (51, 60), (101, u64::MAX)]);
        assert!(RangeSet::new(&[]).is_empty());
        assert_eq!(RangeSet::new(&[TokenRange::new(5, 5)]).fraction(), 1.0);
    }
}
