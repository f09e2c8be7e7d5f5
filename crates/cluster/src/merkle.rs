//! Merkle trees over key digests, and the descent that finds where two replicas differ.
//!
//! **Guarantees.** Two trees built from the same set of `(token, key, digest)` entries are
//! equal, whatever the order the entries were added in. [`MerkleDiff`] names every leaf where
//! two trees differ and no other, after at most `DEPTH + 1` exchanges of hashes, sending only
//! the hashes under subtrees that differ; [`diff_keys`] then names exactly the keys whose
//! digests differ or that one side lacks. So replicas exchange only the keys that differ.
//!
//! **How.** Dynamo 4.7. The token space is cut into `FANOUT^DEPTH` equal leaves (the top bits
//! of a key's token pick its leaf); a leaf's hash is the wrapping sum of its entries' hashes
//! (order-free), an inner node's the hash of its children's. A replica builds the tree over the
//! key ranges it shares with a peer, from a token-ordered index of `(key, digest of its
//! versions)`; the peer builds the same over the same ranges. The descent compares roots, then
//! the children of nodes that differ, level by level, down to the leaves; the keys of differing
//! leaves are then compared one by one.
//!
//! **Left out.** Moving the keys that differ (the node fetches and pushes them, merging sibling
//! sets, so repairs commute), and building the tree incrementally (it is rebuilt from the index
//! for each comparison: one sequential read of the index).

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::ring::Token;

/// Children per inner node.
pub const FANOUT: usize = 16;
/// Levels below the root.
pub const DEPTH: usize = 4;
/// Leaves: `FANOUT^DEPTH`.
pub const LEAVES: usize = FANOUT.pow(DEPTH as u32);
const LEAF_BITS: u32 = LEAVES.trailing_zeros();

/// A Merkle tree over the token space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[0]` is the root, `levels[DEPTH]` the leaves.
    levels: Vec<Vec<u64>>,
    entries: u64,
}

/// The leaf a token falls in.
pub fn leaf_of(token: Token) -> usize {
    (token >> (64 - LEAF_BITS)) as usize
}

/// The tokens of leaf `leaf`: `[lo, hi]`.
pub fn leaf_tokens(leaf: usize) -> (Token, Token) {
    let lo = (leaf as u64) << (64 - LEAF_BITS);
    (lo, lo | (u64::MAX >> LEAF_BITS))
}

/// The hash an entry contributes to its leaf.
pub fn entry_hash(key: &[u8], digest: u64) -> u64 {
    xxh3_64_with_seed(key, digest)
}

/// Accumulates entries; [`TreeBuilder::finish`] computes the inner nodes.
#[derive(Clone, Debug)]
pub struct TreeBuilder {
    leaves: Vec<u64>,
    entries: u64,
}

impl Default for TreeBuilder {
    fn default() -> Self {
        TreeBuilder {
            leaves: vec![0; LEAVES],
            entries: 0,
        }
    }
}

impl TreeBuilder {
    pub fn new() -> TreeBuilder {
        TreeBuilder::default()
    }

    pub fn add(&mut self, token: Token, key: &[u8], digest: u64) {
        let leaf = &mut self.leaves[leaf_of(token)];
        *leaf = leaf.wrapping_add(entry_hash(key, digest));
        self.entries += 1;
    }

    pub fn finish(self) -> MerkleTree {
        let mut levels = vec![self.leaves];
        while levels[0].len() > 1 {
            let below = &levels[0];
            let above: Vec<u64> = below
                .chunks(FANOUT)
                .map(|children| {
                    let bytes: Vec<u8> = children.iter().flat_map(|h| h.to_le_bytes()).collect();
                    xxh3_64(&bytes)
                })
                .collect();
            levels.insert(0, above);
        }
        MerkleTree {
            levels,
            entries: self.entries,
        }
    }
}

impl MerkleTree {
    pub fn root(&self) -> u64 {
        self.levels[0][0]
    }

    /// Entries the tree was built from.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The hashes of `nodes` at `level` (0 is the root); `None` for a level or node that does
    /// not exist.
    pub fn hashes(&self, level: usize, nodes: &[usize]) -> Option<Vec<u64>> {
        let l = self.levels.get(level)?;
        nodes.iter().map(|n| l.get(*n).copied()).collect()
    }
}

/// The next step of a descent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffStep {
    /// Ask the peer for the hashes of `nodes` at `level`.
    Ask { level: usize, nodes: Vec<usize> },
    /// Done: these leaves differ (empty: the trees are equal).
    Leaves(Vec<usize>),
}

/// The initiator's side of a descent: compares the peer's hashes with its own tree, level by
/// level.
#[derive(Clone, Debug)]
pub struct MerkleDiff {
    local: MerkleTree,
    asked: Option<(usize, Vec<usize>)>,
}

/// The peer answered something other than what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("merkle descent: expected {expected} hashes at level {level}, got {got}")]
pub struct MerkleAnswerError {
    pub level: usize,
    pub expected: usize,
    pub got: usize,
}

impl MerkleDiff {
    pub fn new(local: MerkleTree) -> MerkleDiff {
        MerkleDiff { local, asked: None }
    }

    /// The first question: the root.
    pub fn start(&mut self) -> DiffStep {
        self.ask(0, vec![0])
    }

    fn ask(&mut self, level: usize, nodes: Vec<usize>) -> DiffStep {
        self.asked = Some((level, nodes.clone()));
        DiffStep::Ask { level, nodes }
    }

    /// Takes the peer's hashes for the last question.
    pub fn on_hashes(&mut self, hashes: &[u64]) -> Result<DiffStep, MerkleAnswerError> {
        let (level, nodes) = self.asked.take().unwrap_or((0, Vec::new()));
        if hashes.len() != nodes.len() {
            return Err(MerkleAnswerError {
                level,
                expected: nodes.len(),
                got: hashes.len(),
            });
        }
        let mine = self.local.hashes(level, &nodes).unwrap_or_default();
        let differing: Vec<usize> = nodes
            .iter()
            .zip(mine.iter().zip(hashes))
            .filter(|(_, (a, b))| a != b)
            .map(|(n, _)| *n)
            .collect();
        if level == DEPTH || differing.is_empty() {
            return Ok(DiffStep::Leaves(differing));
        }
        let children = differing
            .iter()
            .flat_map(|n| n * FANOUT..(n + 1) * FANOUT)
            .collect();
        Ok(self.ask(level + 1, children))
    }
}

/// What to do about the keys of differing leaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyDiff {
    /// Keys the peer has in another version, or that only the peer has: fetch and merge.
    pub fetch: Vec<String>,
    /// Keys this side has in another version, or only this side has: send (after merging).
    pub send: Vec<String>,
}

/// Compares the `(key, digest)` lists of both sides, each sorted by key.
pub fn diff_keys(local: &[(String, u64)], remote: &[(String, u64)]) -> KeyDiff {
    let mut out = KeyDiff::default();
    let (mut i, mut j) = (0, 0);
    while i < local.len() || j < remote.len() {
        match (local.get(i), remote.get(j)) {
            (Some((lk, ld)), Some((rk, rd))) if lk == rk => {
                if ld != rd {
                    out.fetch.push(rk.clone());
                    out.send.push(lk.clone());
                }
                i += 1;
                j += 1;
            }
            (Some((lk, _)), Some((rk, _))) if lk < rk => {
                out.send.push(lk.clone());
                i += 1;
            }
            (Some((lk, _)), None) => {
                out.send.push(lk.clone());
                i += 1;
            }
            (_, Some((rk, _))) => {
                out.fetch.push(rk.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::key_token;
    use proptest::prelude::*;

    fn tree(entries: &[(String, u64)]) -> MerkleTree {
        let mut b = TreeBuilder::new();
        for (k, d) in entries {
            b.add(key_token(k.as_bytes()), k.as_bytes(), *d);
        }
        b.finish()
    }

    /// Runs a descent between two trees; returns the differing leaves and the hashes sent.
    fn descend(a: &MerkleTree, b: &MerkleTree) -> (Vec<usize>, usize) {
        let mut diff = MerkleDiff::new(a.clone());
        let mut step = diff.start();
        let mut sent = 0;
        loop {
            match step {
                DiffStep::Ask { level, nodes } => {
                    let hashes = b.hashes(level, &nodes).expect("valid question");
                    sent += hashes.len();
                    step = diff.on_hashes(&hashes).expect("right count");
                }
                DiffStep::Leaves(leaves) => return (leaves, sent),
            }
        }
    }

    #[test]
    fn leaves_cover_the_token_space() {
        assert_eq!(leaf_of(0), 0);
        assert_eq!(leaf_of(u64::MAX), LEAVES - 1);
        for leaf in [0, 1, 4097, LEAVES - 1] {
            let (lo, hi) = leaf_tokens(leaf);
            assert_eq!(leaf_of(lo), leaf);
            assert_eq!(leaf_of(hi), leaf);
            if leaf + 1 < LEAVES {
                assert_eq!(leaf_tokens(leaf + 1).0, hi + 1);
            }
        }
    }

    #[test]
    fn one_changed_key_is_found_with_few_hashes() {
        let entries: Vec<(String, u64)> = (0..10_000).map(|i| (format!("k{i}"), i)).collect();
        let mut changed = entries.clone();
        changed[4321].1 = 999_999;
        let (a, b) = (tree(&entries), tree(&changed));
        assert_ne!(a.root(), b.root());
        let (leaves, sent) = descend(&a, &b);
        assert_eq!(leaves, vec![leaf_of(key_token(b"k4321"))]);
        // One root, then 16 children per level below it.
        assert_eq!(sent, 1 + DEPTH * FANOUT);
        let (same, sent) = descend(&a, &a.clone());
        assert!(same.is_empty());
        assert_eq!(sent, 1);
    }

    #[test]
    fn a_wrong_answer_is_an_error() {
        let t = tree(&[]);
        let mut diff = MerkleDiff::new(t);
        diff.start();
        assert_eq!(
            diff.on_hashes(&[1, 2]),
            Err(MerkleAnswerError {
                level: 0,
                expected: 1,
                got: 2
            })
        );
    }

    #[test]
    fn key_lists_diff_both_ways() {
        let s = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(k, d)| (k.to_string(), *d)).collect()
        };
        let d = diff_keys(
            &s(&[("a", 1), ("b", 2), ("d", 4), ("e", 5)]),
            &s(&[("a", 1), ("b", 3), ("c", 3), ("e", 5), ("f", 6)]),
        );
        assert_eq!(d.fetch, ["b", "c", "f"]);
        assert_eq!(d.send, ["b", "d"]);
        assert_eq!(diff_keys(&[], &[]), KeyDiff::default());
    }

    proptest! {
        /// The descent finds exactly the leaves holding keys that differ, and the key diff
        /// exactly the keys; the trees do not depend on insertion order.
        #[test]
        fn descent_finds_exactly_the_differences(
            common in prop::collection::btree_map("[a-z]{1,6}", 0u64..4, 0..200),
            only_a in prop::collection::btree_map("[A-Z]{1,6}", 0u64..4, 0..5),
            changed in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        ) {
            let a_entries: Vec<(String, u64)> =
                common.iter().chain(&only_a).map(|(k, d)| (k.clone(), *d)).collect();
            let keys: Vec<&String> = common.keys().collect();
            let mut b_map = common.clone();
            let mut expected_keys = std::collections::BTreeSet::new();
            if !keys.is_empty() {
                for c in &changed {
                    let k = keys[c.index(keys.len())].clone();
                    *b_map.get_mut(&k).unwrap() += 10;
                    expected_keys.insert(k);
                }
            }
            expected_keys.extend(only_a.keys().cloned());
            let b_entries: Vec<(String, u64)> = b_map.into_iter().collect();
            let mut reversed = a_entries.clone();
            reversed.reverse();
            prop_assert_eq!(tree(&a_entries), tree(&reversed));
            let (leaves, _) = descend(&tree(&a_entries), &tree(&b_entries));
            let expected_leaves: std::collections::BTreeSet<usize> = expected_keys
                .iter()
                .map(|k| leaf_of(key_token(k.as_bytes())))
                .collect();
            prop_assert_eq!(leaves.iter().copied().collect::<std::collections::BTreeSet<_>>(), expected_leaves.clone());
            // Keys of the differing leaves, as each side would list them.
            let in_leaves = |v: &[(String, u64)]| -> Vec<(String, u64)> {
                let mut v: Vec<(String, u64)> = v
                    .iter()
                    .filter(|(k, _)| expected_leaves.contains(&leaf_of(key_token(k.as_bytes()))))
                    .cloned()
                    .collect();
                v.sort();
                v
            };
            let d = diff_keys(&in_leaves(&a_entries), &in_leaves(&b_entries));
            let mut found: std::collections::BTreeSet<String> = d.send.iter().cloned().collect();
            found.extend(d.fetch.iter().cloned());
            prop_assert_eq!(found, expected_keys);
        }
    }
}
