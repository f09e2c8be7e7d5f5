//! The ring over many keys: replicas are distinct, load is balanced, and adding a node moves only
//! the keys it takes over.

use std::collections::{BTreeMap, BTreeSet};

use distkv_cluster::{NodeId, Ring, key_token};
use proptest::prelude::*;

const KEYS: usize = 100_000;
const VNODES: u32 = 150;

fn ring_of(nodes: usize) -> Ring {
    let mut ring = Ring::new();
    for i in 1..=nodes {
        ring.add_node(&format!("node-{i}"), VNODES);
    }
    ring
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

fn primaries(ring: &Ring) -> Vec<NodeId> {
    (0..KEYS)
        .map(|i| ring.preference_list(&key(i), 1).remove(0))
        .collect()
}

#[test]
fn every_node_owns_its_share_within_30_percent() {
    let ring = ring_of(10);
    let mut counts: BTreeMap<NodeId, usize> = BTreeMap::new();
    for p in primaries(&ring) {
        *counts.entry(p).or_default() += 1;
    }
    assert_eq!(counts.len(), 10);
    let fair = KEYS as f64 / 10.0;
    for (node, count) in &counts {
        let ratio = *count as f64 / fair;
        assert!(
            (0.7..=1.3).contains(&ratio),
            "{node} holds {count} keys, {ratio:.3} of its fair share"
        );
    }
    // The token-space shares agree with what the keys found.
    let ownership = ring.ownership();
    let total: f64 = ownership.values().sum();
    assert!((total - 1.0).abs() < 1e-9, "ownership sums to {total}");
    for (node, share) in &ownership {
        let measured = counts[node] as f64 / KEYS as f64;
        assert!(
            (share - measured).abs() < 0.01,
            "{node}: token share {share:.4}, key share {measured:.4}"
        );
    }
}

#[test]
fn adding_a_node_moves_about_one_in_eleven_keys_and_only_to_it() {
    let before = primaries(&ring_of(10));
    let after = primaries(&ring_of(11));
    let mut moved = 0;
    for (i, (old, new)) in before.iter().zip(&after).enumerate() {
        if old != new {
            moved += 1;
            assert_eq!(
                new, "node-11",
                "key {i} moved from {old} to {new}, two old nodes"
            );
        }
    }
    let fraction = moved as f64 / KEYS as f64;
    let expected = 1.0 / 11.0;
    assert!(
        (fraction - expected).abs() < expected * 0.3,
        "{moved} keys moved ({fraction:.4}), expected about {expected:.4}"
    );
}

#[test]
fn replicas_are_distinct_and_follow_the_walk() {
    let ring = ring_of(10);
    for i in 0..2_000 {
        let k = key(i);
        let walk = ring.walk(&k);
        assert_eq!(walk.len(), 10);
        assert_eq!(
            walk.iter().collect::<BTreeSet<_>>().len(),
            10,
            "walk repeats a node"
        );
        for n in 0..=12 {
            let list = ring.preference_list(&k, n);
            assert_eq!(list.len(), n.min(10));
            assert_eq!(list[..], walk[..n.min(10)]);
        }
    }
}

#[test]
fn removing_a_node_hands_its_keys_to_the_next_replica() {
    let full = ring_of(5);
    let mut without = full.clone();
    without.remove_node("node-3");
    for i in 0..5_000 {
        let k = key(i);
        let mut expected = full.walk(&k);
        expected.retain(|n| n != "node-3");
        assert_eq!(without.walk(&k), expected);
    }
}

#[test]
fn key_beyond_the_last_token_wraps_to_the_first() {
    let ring = ring_of(4);
    let (last, _) = ring.tokens().last().expect("tokens");
    let (_, first_owner) = ring.tokens().next().expect("tokens");
    let k = (0..)
        .map(|i: u64| format!("probe-{i}").into_bytes())
        .find(|k| key_token(k) > last)
        .expect("some key hashes past the last token");
    assert_eq!(ring.preference_list(&k, 1), [first_owner]);
}

proptest! {
    /// Whatever order members are added in (with detours), the ring and its placements are equal.
    #[test]
    fn ring_depends_only_on_membership(
        members in prop::collection::btree_map("[a-z]{1,6}", 0u32..40, 1..8),
        order in any::<u64>(),
        key in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut sorted = Ring::new();
        for (id, v) in &members {
            sorted.add_node(id, *v);
        }
        // A shuffled order (driven by the generated seed), each node first added with another
        // count.
        let mut ids: Vec<(&String, &u32)> = members.iter().collect();
        let n = ids.len();
        for i in (1..n).rev() {
            ids.swap(i, (order.rotate_left(i as u32) as usize) % (i + 1));
        }
        let mut shuffled = Ring::new();
        for (id, v) in &ids {
            shuffled.add_node(id, *v + 3);
        }
        for (id, v) in &ids {
            shuffled.add_node(id, **v);
        }
        prop_assert_eq!(&sorted, &shuffled);
        prop_assert_eq!(sorted.walk(&key), shuffled.walk(&key));
        prop_assert_eq!(sorted.ownership(), shuffled.ownership());
    }
}
