//! Vector clocks: what a writer had seen, and the opaque context handed to clients.
//!
//! **Guarantees.** A [`VectorClock`] maps node ids to counters; a missing entry is 0, and the map
//! never stores a 0, so two clocks that compare [`Causality::Equal`] are also `==` and hash the
//! same. [`VectorClock::merge`] is the pointwise maximum (commutative, associative, idempotent);
//! [`VectorClock::compare`] is the causal partial order; [`VectorClock::encode`] has exactly one
//! byte string per clock and [`VectorClock::decode`] never panics on garbage.
//!
//! **How.** Dynamo 4.4. A clock `a` happened before `b` when every counter of `a` is at most the
//! one of `b` and the clocks differ; when each has a counter larger than the other's, the two are
//! concurrent. In DistKV clocks are causal contexts: the join of the clocks of the versions a
//! client read (see [`crate::versions`]), which it sends back with its next write so that the
//! write supersedes exactly what was read.
//!
//! **Format** of [`VectorClock::encode`] (the `context` bytes of the client API):
//!
//! ```text
//! empty clock:  no bytes at all (a client that sends no context has seen nothing)
//! otherwise:    u8       format version, 1
//!               varint   number of entries (at least 1)
//!               entries, sorted by node id, ids distinct, counters >= 1:
//!                 varint length, then the node id (UTF-8)
//!                 varint counter
//! ```
//!
//! Varints are LEB128 in shortest form. Decoding also accepts `[1, 0]` (version 1, zero entries)
//! as the empty clock. There is no checksum: the context is small, it travels inside gRPC
//! messages, and a damaged one can at worst make a write supersede too little or too much of
//! what the client saw, which is what a client sending a wrong context could do anyway.
//!
//! **Left out.** Pruning old entries (Dynamo truncates clocks past a size threshold): entries
//! are per coordinator node, so a clock has at most one entry per node that ever coordinated a
//! write to the key.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::NodeId;
use crate::codec::{Reader, put_bytes, put_varint};
use crate::error::DecodeError;

/// The format version written by [`VectorClock::encode`].
pub const VCLOCK_FORMAT_VERSION: u8 = 1;

/// A vector clock: a counter per node, 0 for nodes it does not name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VectorClock(BTreeMap<NodeId, u64>);

/// How two clocks are ordered: `a.compare(&b)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    /// `a` happened before `b`: `b` has seen everything `a` has, and more.
    Before,
    /// `a` happened after `b`.
    After,
    /// Same counters.
    Equal,
    /// Neither has seen all of the other.
    Concurrent,
}

impl VectorClock {
    /// The empty clock: nothing seen.
    pub fn new() -> Self {
        VectorClock(BTreeMap::new())
    }

    /// The counter of `node`, 0 if absent.
    pub fn get(&self, node: &str) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    /// Sets the counter of `node`; 0 removes the entry.
    pub fn set(&mut self, node: &str, counter: u64) {
        if counter == 0 {
            self.0.remove(node);
        } else {
            self.0.insert(node.to_string(), counter);
        }
    }

    /// Raises the counter of `node` to at least `counter`.
    pub fn observe(&mut self, node: &str, counter: u64) {
        if counter > self.get(node) {
            self.0.insert(node.to_string(), counter);
        }
    }

    /// Number of nodes with a non-zero counter.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty clock.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pointwise maximum of the two clocks.
    pub fn merge(&self, other: &VectorClock) -> VectorClock {
        let mut out = self.clone();
        out.merge_in(other);
        out
    }

    /// [`VectorClock::merge`] in place.
    pub fn merge_in(&mut self, other: &VectorClock) {
        for (node, &counter) in &other.0 {
            self.observe(node, counter);
        }
    }

    /// The causal order of `self` relative to `other`.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        let mut self_ahead = false;
        let mut other_ahead = false;
        for node in self.0.keys().chain(other.0.keys()) {
            match self.get(node).cmp(&other.get(node)) {
                Ordering::Greater => self_ahead = true,
                Ordering::Less => other_ahead = true,
                Ordering::Equal => {}
            }
        }
        match (self_ahead, other_ahead) {
            (false, false) => Causality::Equal,
            (false, true) => Causality::Before,
            (true, false) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// True when `self` has seen everything `other` has: every counter at least as large.
    pub fn descends(&self, other: &VectorClock) -> bool {
        other.0.iter().all(|(node, &c)| self.get(node) >= c)
    }

    /// The entries, sorted by node id.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &u64)> {
        self.0.iter()
    }

    /// A clock from a map (as in the protobuf `map<string, uint64>`); zero counters are dropped.
    pub fn from_map(m: BTreeMap<String, u64>) -> Self {
        VectorClock(m.into_iter().filter(|(_, c)| *c != 0).collect())
    }

    /// The entries as a map.
    pub fn into_map(self) -> BTreeMap<String, u64> {
        self.0
    }

    /// The bytes of this clock in the format described in the module doc.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        if self.is_empty() {
            return buf;
        }
        buf.push(VCLOCK_FORMAT_VERSION);
        self.encode_body(&mut buf);
        buf
    }

    /// Decodes [`VectorClock::encode`]'s bytes; refuses anything else with the offset at fault.
    pub fn decode(b: &[u8]) -> Result<VectorClock, DecodeError> {
        if b.is_empty() {
            return Ok(VectorClock::new());
        }
        let mut r = Reader::new(b);
        let version = r.u8("format version")?;
        if version != VCLOCK_FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        let clock = Self::decode_body(&mut r)?;
        r.finish()?;
        Ok(clock)
    }

    /// Entry count and entries, without the version byte (shared with the sibling format).
    pub(crate) fn encode_body(&self, buf: &mut Vec<u8>) {
        put_varint(buf, self.0.len() as u64);
        for (node, &counter) in &self.0 {
            put_bytes(buf, node.as_bytes());
            put_varint(buf, counter);
        }
    }

    pub(crate) fn decode_body(r: &mut Reader<'_>) -> Result<VectorClock, DecodeError> {
        // An entry takes at least 2 bytes: an empty id's length and a counter.
        let count = r.count("clock entry count", 2)?;
        let mut map = BTreeMap::new();
        let mut previous: Option<String> = None;
        for _ in 0..count {
            let at = r.pos();
            let node = r.string("clock node id")?;
            if previous.as_ref().is_some_and(|p| *p >= node) {
                return Err(r.malformed(at, "clock entries not sorted by node id"));
            }
            let at = r.pos();
            let counter = r.varint("clock counter")?;
            if counter == 0 {
                return Err(r.malformed(at, "clock counter is 0"));
            }
            previous = Some(node.clone());
            map.insert(node, counter);
        }
        Ok(VectorClock(map))
    }
}

impl<'a> FromIterator<(&'a str, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (&'a str, u64)>>(iter: I) -> Self {
        let mut clock = VectorClock::new();
        for (node, counter) in iter {
            clock.observe(node, counter);
        }
        clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vc(entries: &[(&str, u64)]) -> VectorClock {
        entries.iter().copied().collect()
    }

    #[test]
    fn compare_table() {
        let cases = [
            (vc(&[]), vc(&[]), Causality::Equal),
            (vc(&[]), vc(&[("a", 1)]), Causality::Before),
            (vc(&[("a", 2)]), vc(&[("a", 1)]), Causality::After),
            (
                vc(&[("a", 1), ("b", 2)]),
                vc(&[("a", 1), ("b", 2)]),
                Causality::Equal,
            ),
            (
                vc(&[("a", 1)]),
                vc(&[("a", 1), ("b", 1)]),
                Causality::Before,
            ),
            (vc(&[("a", 2)]), vc(&[("b", 1)]), Causality::Concurrent),
            (
                vc(&[("a", 2), ("b", 1)]),
                vc(&[("a", 1), ("b", 2)]),
                Causality::Concurrent,
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.compare(&b), want, "{a:?} vs {b:?}");
            assert_eq!(
                a.descends(&b),
                matches!(want, Causality::After | Causality::Equal)
            );
        }
    }

    #[test]
    fn zero_counters_are_not_stored() {
        let mut c = vc(&[("a", 3)]);
        c.set("a", 0);
        assert_eq!(c, VectorClock::new());
        let m = BTreeMap::from([("a".to_string(), 0), ("b".to_string(), 2)]);
        assert_eq!(
            VectorClock::from_map(m).into_map(),
            BTreeMap::from([("b".to_string(), 2)])
        );
    }

    #[test]
    fn merge_is_pointwise_max() {
        let a = vc(&[("a", 3), ("b", 1)]);
        let b = vc(&[("b", 5), ("c", 2)]);
        assert_eq!(a.merge(&b), vc(&[("a", 3), ("b", 5), ("c", 2)]));
    }

    #[test]
    fn encoding_is_exact() {
        assert_eq!(VectorClock::new().encode(), Vec::<u8>::new());
        assert_eq!(
            vc(&[("a", 1), ("bc", 300)]).encode(),
            vec![1, 2, 1, b'a', 1, 2, b'b', b'c', 0xac, 0x02]
        );
    }

    #[test]
    fn decode_refuses_bad_bytes() {
        let cases: &[(&[u8], DecodeError)] = &[
            (&[2, 0], DecodeError::UnsupportedVersion { found: 2 }),
            (
                &[1],
                DecodeError::Truncated {
                    offset: 1,
                    what: "clock entry count",
                },
            ),
            (
                &[1, 1, 1, b'a'],
                DecodeError::Truncated {
                    offset: 4,
                    what: "clock counter",
                },
            ),
            (
                &[1, 2, 1, b'b', 1, 1, b'a', 1],
                DecodeError::Malformed {
                    offset: 5,
                    reason: "clock entries not sorted by node id",
                },
            ),
            (
                &[1, 2, 1, b'a', 1, 1, b'a', 1],
                DecodeError::Malformed {
                    offset: 5,
                    reason: "clock entries not sorted by node id",
                },
            ),
            (
                &[1, 1, 1, b'a', 0],
                DecodeError::Malformed {
                    offset: 4,
                    reason: "clock counter is 0",
                },
            ),
            (
                &[1, 1, 1, 0xff, 1],
                DecodeError::Malformed {
                    offset: 2,
                    reason: "string is not UTF-8",
                },
            ),
            (
                &[1, 0, 7],
                DecodeError::TrailingBytes {
                    offset: 2,
                    count: 1,
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(VectorClock::decode(bytes).as_ref(), Err(want), "{bytes:?}");
        }
        assert_eq!(VectorClock::decode(&[1, 0]), Ok(VectorClock::new()));
    }

    fn clock() -> impl Strategy<Value = VectorClock> {
        prop::collection::btree_map("[a-e]{1,3}", 0u64..1000, 0..6).prop_map(VectorClock::from_map)
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(c in clock()) {
            prop_assert_eq!(VectorClock::decode(&c.encode()), Ok(c));
        }

        #[test]
        fn decode_never_panics_and_accepts_only_canonical_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Ok(c) = VectorClock::decode(&bytes)
                && bytes != [1, 0]
            {
                prop_assert_eq!(c.encode(), bytes);
            }
        }

        #[test]
        fn merge_laws(a in clock(), b in clock(), c in clock()) {
            prop_assert_eq!(a.merge(&b), b.merge(&a));
            prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
            prop_assert_eq!(a.merge(&a), a.clone());
            let m = a.merge(&b);
            prop_assert!(m.descends(&a) && m.descends(&b));
        }

        #[test]
        fn compare_is_antisymmetric(a in clock(), b in clock()) {
            let flipped = match a.compare(&b) {
                Causality::Before => Causality::After,
                Causality::After => Causality::Before,
                other => other,
            };
            prop_assert_eq!(b.compare(&a), flipped);
            prop_assert_eq!(a.compare(&b) == Causality::Equal, a == b);
        }
    }
}
