//! Consistent hashing with virtual nodes: which nodes hold a key.
//!
//! **Guarantees.** The ring is a pure function of its membership: the same node ids with the same
//! virtual-node counts give an identical [`Ring`] on every node, in whatever order they were
//! added, because a node's tokens depend only on its id and its count. A key's preference list
//! names distinct physical nodes. Adding a node moves only the keys the new node takes over
//! (about `1/(nodes+1)` of them); no key moves between two nodes that were already there.
//!
//! **How.** Dynamo 4.2 and 4.3. Every physical node places `vnodes` tokens on a 64-bit circle,
//! token `i` being `xxh3_64("{id}#{i}")`. A key hashes to `xxh3_64(key)` and belongs to the first
//! token at or after that point, wrapping past the top; that token's node is the key's primary
//! (coordinator), and walking on clockwise, skipping nodes already picked, gives the other
//! replicas. Many small tokens per node even out the load (with 150 tokens each, every node owns
//! close to its fair share) and spread a failed node's keys over many others. In the rare case of
//! two tokens with the same value, the one of the smaller node id comes first, so the order stays
//! independent of insertion order.
//!
//! **Left out.** Tokens are not weighted by capacity other than through the vnode count; there is
//! no Dynamo "strategy 3" (equal-sized fixed partitions). Which nodes are healthy is not known
//! here: [`Ring::walk`] returns the whole walk and the caller skips unhealthy nodes (sloppy
//! quorum, 4.6).

use std::collections::{BTreeMap, BTreeSet};

use xxhash_rust::xxh3::xxh3_64;

use crate::NodeId;

/// A point on the hash circle.
pub type Token = u64;

/// The position of a key on the ring: `xxh3_64` of its bytes.
pub fn key_token(key: &[u8]) -> Token {
    xxh3_64(key)
}

/// The token of virtual node `index` of node `id`.
pub fn vnode_token(id: &str, index: u32) -> Token {
    xxh3_64(format!("{id}#{index}").as_bytes())
}

/// The tokens of node `id` with `vnodes` virtual nodes: `vnode_token(id, i)` for each `i`.
/// A node picks them once, when it first joins, and gossips them in its member record.
pub fn node_tokens(id: &str, vnodes: u32) -> Vec<Token> {
    (0..vnodes).map(|i| vnode_token(id, i)).collect()
}

/// The keys whose tokens lie in `(start, end]`, going clockwise: `start == end` is the whole
/// ring, and `start > end` wraps past the top.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenRange {
    /// Exclusive.
    pub start: Token,
    /// Inclusive.
    pub end: Token,
}

impl TokenRange {
    pub fn new(start: Token, end: Token) -> TokenRange {
        TokenRange { start, end }
    }

    /// True when `token` lies in the range.
    pub fn contains(&self, token: Token) -> bool {
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Less => token > self.start && token <= self.end,
            std::cmp::Ordering::Greater => token > self.start || token <= self.end,
            std::cmp::Ordering::Equal => true,
        }
    }

    /// The range as at most two non-wrapping inclusive intervals `[lo, hi]`, in token order.
    pub fn intervals(&self) -> Vec<(Token, Token)> {
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Less => vec![(self.start + 1, self.end)],
            std::cmp::Ordering::Greater => {
                let mut v = vec![(0, self.end)];
                if self.start < Token::MAX {
                    v.push((self.start + 1, Token::MAX));
                }
                v
            }
            std::cmp::Ordering::Equal => vec![(0, Token::MAX)],
        }
    }

    /// The share of the token space it covers.
    pub fn fraction(&self) -> f64 {
        let span = if self.start == self.end {
            1u128 << 64
        } else {
            u128::from(self.end.wrapping_sub(self.start))
        };
        span as f64 / (1u128 << 64) as f64
    }
}

impl std::fmt::Display for TokenRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({:#018x}, {:#018x}]", self.start, self.end)
    }
}

/// The arcs between consecutive points, the first wrapping from the last point.
pub(crate) fn arcs_between(points: &BTreeSet<Token>) -> Vec<TokenRange> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(points.len());
    let mut previous = *last;
    for p in points {
        out.push(TokenRange::new(previous, *p));
        previous = *p;
    }
    debug_assert_eq!(out[0].end, *first);
    out
}

/// The tokens of every node and who owns them.
///
/// A node added with zero virtual nodes is listed by [`Ring::nodes`] but owns no token, so it
/// never appears in a preference list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// Every (token, owner) pair, in ring order. A set of pairs rather than a map from token so
    /// that a token collision keeps both owners in a defined order.
    tokens: BTreeSet<(Token, NodeId)>,
    /// Physical nodes and their virtual-node counts.
    nodes: BTreeMap<NodeId, u32>,
    /// Physical nodes that own at least one token.
    placed: usize,
}

impl Ring {
    /// An empty ring.
    pub fn new() -> Ring {
        Ring::default()
    }

    /// Adds node `id` with `vnodes` tokens, replacing the tokens it had before.
    pub fn add_node(&mut self, id: &str, vnodes: u32) {
        self.add_node_tokens(id, &node_tokens(id, vnodes));
    }

    /// Adds node `id` owning exactly `tokens` (as gossip carries them), replacing the tokens it
    /// had before.
    pub fn add_node_tokens(&mut self, id: &str, tokens: &[Token]) {
        self.remove_node(id);
        for t in tokens {
            self.tokens.insert((*t, id.to_string()));
        }
        let distinct = tokens.iter().collect::<BTreeSet<_>>().len() as u32;
        self.nodes.insert(id.to_string(), distinct);
        if distinct > 0 {
            self.placed += 1;
        }
    }

    /// Removes node `id` and its tokens; nothing happens if it is not in the ring.
    pub fn remove_node(&mut self, id: &str) {
        if self.nodes.remove(id).is_none() {
            return;
        }
        let before = self.tokens.len();
        self.tokens.retain(|(_, owner)| owner != id);
        if self.tokens.len() < before {
            self.placed -= 1;
        }
    }

    /// The arcs of the ring, each `(previous token, token]` with the token's owner; the first
    /// arc wraps around from the last token. One arc per distinct token position.
    pub fn arcs(&self) -> Vec<TokenRange> {
        let points: BTreeSet<Token> = self.tokens.iter().map(|(t, _)| *t).collect();
        arcs_between(&points)
    }

    /// The physical nodes, sorted by id.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.nodes.keys().cloned().collect()
    }

    /// True when the ring has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The number of physical nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when node `id` is in the ring.
    pub fn contains(&self, id: &str) -> bool {
        self.nodes.contains_key(id)
    }

    /// The virtual-node count of `id`, 0 if it is not in the ring.
    pub fn vnodes(&self, id: &str) -> u32 {
        self.nodes.get(id).copied().unwrap_or(0)
    }

    /// Every token and its owner, in ring order.
    pub fn tokens(&self) -> impl Iterator<Item = (Token, &str)> {
        self.tokens.iter().map(|(t, id)| (*t, id.as_str()))
    }

    /// The first `n` distinct physical nodes clockwise from the key's token: the key's primary
    /// first, then its other replicas. Fewer when the ring has fewer nodes.
    pub fn preference_list(&self, key: &[u8], n: usize) -> Vec<NodeId> {
        self.preference_list_for_token(key_token(key), n)
    }

    /// [`Ring::preference_list`] for a token rather than a key (for ranges of the ring, as
    /// anti-entropy needs).
    pub fn preference_list_for_token(&self, token: Token, n: usize) -> Vec<NodeId> {
        let want = n.min(self.placed);
        let mut picked: Vec<NodeId> = Vec::with_capacity(want);
        if want == 0 {
            return picked;
        }
        // The first token >= `token` (the empty id sorts before every other), then wrap around.
        let from = (token, NodeId::new());
        let clockwise = self.tokens.range(&from..).chain(self.tokens.range(..&from));
        for (_, id) in clockwise {
            if !picked.contains(id) {
                picked.push(id.clone());
                if picked.len() == want {
                    break;
                }
            }
        }
        picked
    }

    /// Every node that owns a token, in ring order from the key's token (distinct): the
    /// preference list extended to the whole ring, for a sloppy quorum that skips unhealthy
    /// nodes and continues with the next ones.
    pub fn walk(&self, key: &[u8]) -> Vec<NodeId> {
        self.preference_list(key, usize::MAX)
    }

    /// The share of the token space for which each node is the primary. The shares of the nodes
    /// that own tokens sum to 1 (up to rounding); a node without tokens owns 0. Empty for an
    /// empty ring.
    pub fn ownership(&self) -> BTreeMap<NodeId, f64> {
        let mut owned: BTreeMap<NodeId, u128> =
            self.nodes.keys().map(|id| (id.clone(), 0)).collect();
        let (Some((first, _)), Some((last, _))) = (self.tokens.first(), self.tokens.last()) else {
            return owned.into_keys().map(|id| (id, 0.0)).collect();
        };
        // A token owns the points after the previous token, up to and including itself; the
        // first token also owns the wrap-around stretch after the last one.
        let mut previous: Option<Token> = None;
        for (token, id) in &self.tokens {
            let span = match previous {
                None => (1u128 << 64) - u128::from(*last) + u128::from(*first),
                Some(p) => u128::from(*token - p),
            };
            if let Some(total) = owned.get_mut(id) {
                *total += span;
            }
            previous = Some(*token);
        }
        let circle = (1u128 << 64) as f64;
        owned
            .into_iter()
            .map(|(id, span)| (id, span as f64 / circle))
            .collect()
    }

    /// A ring with the given tokens, for tests that need exact positions.
    #[cfg(test)]
    pub(crate) fn with_tokens(tokens: &[(Token, &str)]) -> Ring {
        let mut ring = Ring::new();
        for (token, id) in tokens {
            ring.tokens.insert((*token, id.to_string()));
            *ring.nodes.entry(id.to_string()).or_insert(0) += 1;
        }
        ring.placed = ring.nodes.len();
        ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<NodeId> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn key_token_is_xxh3_64() {
        // The published XXH3-64 value of the empty input, and a fixed string checked against it.
        assert_eq!(key_token(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(vnode_token("n1", 7), xxh3_64(b"n1#7"));
    }

    #[test]
    fn preference_list_walks_clockwise_and_wraps() {
        let ring = Ring::with_tokens(&[(100, "a"), (200, "b"), (300, "a"), (400, "c")]);
        let cases: &[(Token, usize, &[&str])] = &[
            (0, 3, &["a", "b", "c"]),
            (100, 3, &["a", "b", "c"]), // a token exactly at the key's point owns it
            (101, 3, &["b", "a", "c"]),
            (250, 2, &["a", "c"]),
            (350, 3, &["c", "a", "b"]),
            (401, 3, &["a", "b", "c"]), // past the last token: wrap to the first
            (u64::MAX, 1, &["a"]),
            (150, 10, &["b", "a", "c"]), // n larger than the ring
            (150, 0, &[]),
        ];
        for (token, n, want) in cases {
            assert_eq!(
                ring.preference_list_for_token(*token, *n),
                ids(want),
                "token {token} n {n}"
            );
        }
    }

    #[test]
    fn token_collision_orders_by_node_id() {
        let ring = Ring::with_tokens(&[(10, "b"), (10, "a"), (20, "c")]);
        assert_eq!(ring.preference_list_for_token(5, 3), ids(&["a", "b", "c"]));
        assert_eq!(ring.ownership()["b"], 0.0);
    }

    #[test]
    fn ownership_of_exact_tokens() {
        let q = 1u64 << 62;
        let ring = Ring::with_tokens(&[(q, "a"), (2 * q, "b"), (3 * q, "a")]);
        let own = ring.ownership();
        // a: (3q, 2^64) wrapped to [0, q] = 2q, plus (2q, 3q] = q: 3/4. b: (q, 2q]: 1/4.
        assert_eq!(own["a"], 0.75);
        assert_eq!(own["b"], 0.25);
        let single = Ring::with_tokens(&[(7, "solo")]);
        assert_eq!(single.ownership()["solo"], 1.0);
        assert!(Ring::new().ownership().is_empty());
    }

    #[test]
    fn empty_ring_and_zero_vnodes() {
        let mut ring = Ring::new();
        assert!(ring.is_empty());
        assert_eq!(ring.preference_list(b"k", 3), Vec::<NodeId>::new());
        ring.add_node("idle", 0);
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.preference_list(b"k", 3), Vec::<NodeId>::new());
        ring.add_node("busy", 4);
        assert_eq!(ring.walk(b"k"), ids(&["busy"]));
        assert_eq!(ring.ownership()["idle"], 0.0);
        assert_eq!(ring.ownership()["busy"], 1.0);
    }

    #[test]
    fn add_replaces_and_remove_deletes_tokens() {
        let mut ring = Ring::new();
        ring.add_node("n1", 10);
        ring.add_node("n2", 10);
        ring.add_node("n1", 3);
        assert_eq!(ring.vnodes("n1"), 3);
        assert_eq!(ring.tokens().filter(|(_, id)| *id == "n1").count(), 3);
        assert_eq!(ring.tokens().count(), 13);
        ring.remove_node("n1");
        ring.remove_node("absent");
        assert_eq!(ring.nodes(), ids(&["n2"]));
        assert_eq!(ring.vnodes("n1"), 0);
        assert_eq!(ring.tokens().count(), 10);
        let mut only_n2 = Ring::new();
        only_n2.add_node("n2", 10);
        assert_eq!(ring, only_n2);
    }

    #[test]
    fn same_members_give_the_same_ring_in_any_order() {
        let members = [("n1", 150), ("n2", 100), ("n3", 150), ("n4", 7), ("n5", 0)];
        let mut forward = Ring::new();
        for (id, v) in members {
            forward.add_node(id, v);
        }
        let mut backward = Ring::new();
        for (id, v) in members.iter().rev() {
            backward.add_node(id, *v);
        }
        // With detours: a node added twice with another count, and a stranger added and removed.
        let mut detour = Ring::new();
        detour.add_node("n3", 1);
        detour.add_node("stranger", 50);
        for (id, v) in members.iter().rev() {
            detour.add_node(id, *v);
        }
        detour.remove_node("stranger");
        assert_eq!(forward, backward);
        assert_eq!(forward, detour);
        for key in [&b"a"[..], b"user:42", b""] {
            assert_eq!(forward.walk(key), detour.walk(key));
        }
    }
}
