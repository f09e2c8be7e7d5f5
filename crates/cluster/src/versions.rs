//! Versioned values: every write of a key is a [`Version`] named by a [`Dot`]; a replica keeps
//! the versions no other version has seen, as [`Siblings`].
//!
//! **Guarantees.** Over causally valid histories (below), [`Siblings::merge`] is commutative,
//! associative and idempotent, so replicas that exchange their sets in any order, any number of
//! times, end up with the same set. Merging never drops a version unless a version in the result
//! was written by a client that had seen it: two clients that write without seeing each other
//! both survive as siblings, even through the same coordinator. A write made with the context of
//! a read replaces exactly the versions that read returned (and what they had replaced). Under
//! [`ConflictMode::LastWriteWins`] a set holds exactly one version once written, and merging then
//! resolving is commutative, associative and idempotent whatever the history. The byte format is canonical: [`Siblings::decode`]
//! accepts only what [`Siblings::encode`] produces, and never panics.
//!
//! **How.** Dynamo 4.4, with the dotted version vectors of Riak (Preguiça, Baquero, Almeida et
//! al., "Dotted Version Vectors: Logical Clocks for Optimistic Replication", 2010). Dynamo gives every version a vector clock and lets the
//! coordinator increment its own entry; two clients writing through the same coordinator then get
//! clocks that look ordered although neither saw the other, and one write is silently lost. Here
//! a version carries two things instead: its [`Dot`], a unique name for the write (the
//! coordinator's id and a counter that node never reuses), and its `context`, the vector clock of
//! what the client had read. Version `y` has *seen* version `x` when
//! `y.context.get(x.dot.node) >= x.dot.counter`. A merge takes the union of two sets by dot and
//! drops every version some other version has seen. A client reads a set and gets its
//! [`Siblings::context`], the join of every version's [`Version::clock`] (its context with its own
//! dot); writing with that context supersedes the whole set. A blind write (empty context) sees
//! nothing and joins the set as a sibling.
//!
//! Note the rule looks at `y.context`, not `y.clock()`: `y`'s own dot says nothing about other
//! writes of the same coordinator. With `clock()`, a blind write coordinated by node A with
//! counter 7 would wrongly drop a concurrent sibling with dot (A, 5).
//!
//! **What the node layer must do** for a history to be causally valid, because a vector context
//! `{A: 7}` stands for "every write A coordinated for this key up to counter 7":
//!
//! 1. The counters of one node are at least 1 and strictly increase across all its writes,
//!    restarts included; a dot is never reused.
//! 2. The coordinator merges the new version into its own stored set for the key
//!    ([`Siblings::write`]) and replicates that whole merged set, not the lone new version. Then
//!    every replica holding dot (A, c) also holds, or has seen superseded, every earlier write of
//!    A that is still a sibling; otherwise a client reading (A, 7) from one replica would
//!    supersede a concurrent (A, 5) it never saw. Read repair, hinted handoff and anti-entropy
//!    send whole sets as well.
//! 3. The context a client writes with is the [`Siblings::context`] of a set it read (or empty).
//!
//! Same dot means same write. Should two copies of one dot ever differ (only invalid input does
//! that), they are joined so the result does not depend on the order: contexts by pointwise
//! maximum, value and timestamp by the larger `(timestamp_ms, value)`.
//!
//! **Last-write-wins** orders versions by `(timestamp_ms, dot.node, dot.counter)` and keeps the
//! largest, tombstones included (a later delete wins). Causality plays no part in that order, and
//! it must not: with clocks that disagree with causality, "the causally later or else the newer"
//! is not transitive and replicas would disagree on the winner depending on the order they
//! merged in. So a write in this mode stores an empty context (no version ever supersedes another
//! by causality, a merge is a plain union and resolving takes the maximum of a total order), and
//! its timestamp is raised above every version the coordinator holds, so a write always replaces
//! what its coordinator had, even when the coordinator's clock is behind. A version the
//! coordinator did not hold can still win over a later write if its timestamp is larger: that is
//! the usual price of trusting clocks.
//!
//! **Format** of [`Siblings::encode`] (the `versions` bytes replicas exchange and store):
//!
//! ```text
//! u8       format version, 1
//! varint   number of versions
//! versions, sorted by dot (node id, then counter), dots distinct, none seen by another:
//!   varint length, then the dot's node id (UTF-8)
//!   varint dot counter (>= 1)
//!   varint timestamp_ms
//!   varint number of context entries, then per entry (sorted by node id, distinct,
//!          counters >= 1): varint length, node id (UTF-8), varint counter
//!   u8     0 = tombstone, 1 = value
//!   if 1:  varint length, then the value bytes
//! ```
//!
//! Varints are LEB128 in shortest form; nothing may follow the last version. The format has no
//! checksum of its own: stored, it sits inside a storage-engine block with a CRC32C; in flight,
//! inside a gRPC message.
//!
//! **Left out.** Garbage collection of tombstones (a tombstone stays until a write that saw it
//! supersedes it); pruning of contexts; per-key counters (the node chooses counters).

use std::collections::BTreeMap;

use crate::NodeId;
use crate::codec::{Reader, put_bytes, put_varint};
use crate::error::DecodeError;
use crate::vclock::VectorClock;

/// The format version written by [`Siblings::encode`].
pub const SIBLINGS_FORMAT_VERSION: u8 = 1;

/// The unique name of one write: the coordinating node and a counter it never reuses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    pub node: NodeId,
    pub counter: u64,
}

impl Dot {
    pub fn new(node: impl Into<NodeId>, counter: u64) -> Dot {
        Dot {
            node: node.into(),
            counter,
        }
    }
}

/// One write of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The write's unique id: coordinator node and a counter unique for that node.
    pub dot: Dot,
    /// What the writer had seen: the causal context it sent.
    pub context: VectorClock,
    /// `None` is a tombstone (a delete).
    pub value: Option<Vec<u8>>,
    /// The coordinator's wall clock at the write, for last-write-wins and display.
    pub timestamp_ms: u64,
}

impl Version {
    /// The context with this version's own dot added: everything a reader of this version has
    /// seen.
    pub fn clock(&self) -> VectorClock {
        let mut clock = self.context.clone();
        clock.observe(&self.dot.node, self.dot.counter);
        clock
    }

    /// True for a delete.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// True when this version's writer had seen `other`: `other` is in its causal past.
    pub fn saw(&self, other: &Version) -> bool {
        self.dot != other.dot && self.context.get(&other.dot.node) >= other.dot.counter
    }

    /// The key last-write-wins orders by.
    fn lww_key(&self) -> (u64, &Dot) {
        (self.timestamp_ms, &self.dot)
    }
}

/// How concurrent versions are resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConflictMode {
    /// Keep every concurrent version; clients see siblings and resolve them by writing.
    #[default]
    Siblings,
    /// Keep only the version with the latest timestamp (ties broken by dot).
    LastWriteWins,
}

/// The versions of a key that no other version has seen, sorted by dot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Siblings(Vec<Version>);

impl Siblings {
    /// No versions: the key was never written (or nothing is known of it).
    pub fn new() -> Self {
        Siblings(Vec::new())
    }

    /// A set with one version.
    pub fn from_version(v: Version) -> Self {
        Siblings(vec![v])
    }

    /// The versions, sorted by dot.
    pub fn versions(&self) -> &[Version] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The union of both sets by dot, without the versions another version in the union saw.
    pub fn merge(&self, other: &Siblings) -> Siblings {
        let mut union: BTreeMap<&Dot, Version> = BTreeMap::new();
        for v in self.0.iter().chain(&other.0) {
            match union.get_mut(&v.dot) {
                None => {
                    union.insert(&v.dot, v.clone());
                }
                Some(existing) if existing == v => {}
                Some(existing) => *existing = join_same_write(existing, v),
            }
        }
        let all: Vec<Version> = union.into_values().collect();
        let seen = seen_by_another(&all);
        let kept = all
            .into_iter()
            .zip(seen)
            .filter_map(|(v, seen)| (!seen).then_some(v))
            .collect();
        Siblings(kept)
    }

    /// The set after applying `mode`: unchanged for siblings; for last-write-wins only the
    /// version with the largest `(timestamp_ms, dot)`, tombstone or not.
    pub fn resolve(&self, mode: ConflictMode) -> Siblings {
        match mode {
            ConflictMode::Siblings => self.clone(),
            ConflictMode::LastWriteWins => self
                .0
                .iter()
                .max_by(|a, b| a.lww_key().cmp(&b.lww_key()))
                .map(|winner| Siblings::from_version(winner.clone()))
                .unwrap_or_default(),
        }
    }

    /// The versions that hold a value (not tombstones).
    pub fn live(&self) -> Vec<&Version> {
        self.0.iter().filter(|v| !v.is_tombstone()).collect()
    }

    /// True when no version holds a value: never written, or deleted.
    pub fn is_deleted(&self) -> bool {
        self.0.iter().all(Version::is_tombstone)
    }

    /// One value for clients that do not handle siblings: the live version with the largest
    /// `(timestamp_ms, dot.node, dot.counter)`. `None` when deleted.
    pub fn winner(&self) -> Option<&Version> {
        self.0
            .iter()
            .filter(|v| !v.is_tombstone())
            .max_by(|a, b| a.lww_key().cmp(&b.lww_key()))
    }

    /// What a client that read this set has seen: the join of every version's clock. Sent back
    /// with its next write, it supersedes all of them.
    pub fn context(&self) -> VectorClock {
        let mut clock = VectorClock::new();
        for v in &self.0 {
            clock.merge_in(&v.clock());
        }
        clock
    }

    /// This set after a write, resolved per `mode`. With siblings the new version supersedes
    /// exactly what `context` covers; with last-write-wins it replaces the whole set, its
    /// timestamp raised above every version here and its context left empty (see the module
    /// doc). `dot` must be fresh; a value of `None` writes a tombstone.
    pub fn write(
        &self,
        dot: Dot,
        context: &VectorClock,
        value: Option<Vec<u8>>,
        timestamp_ms: u64,
        mode: ConflictMode,
    ) -> Siblings {
        debug_assert!(dot.counter >= 1, "dot counters start at 1");
        let new = match mode {
            ConflictMode::Siblings => Version {
                dot,
                context: context.clone(),
                value,
                timestamp_ms,
            },
            ConflictMode::LastWriteWins => {
                let newest_here = self.0.iter().map(|v| v.timestamp_ms.saturating_add(1));
                Version {
                    dot,
                    context: VectorClock::new(),
                    value,
                    timestamp_ms: newest_here.fold(timestamp_ms, u64::max),
                }
            }
        };
        self.merge(&Siblings::from_version(new)).resolve(mode)
    }

    /// The bytes of this set in the format described in the module doc.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = vec![SIBLINGS_FORMAT_VERSION];
        put_varint(&mut buf, self.0.len() as u64);
        for v in &self.0 {
            put_bytes(&mut buf, v.dot.node.as_bytes());
            put_varint(&mut buf, v.dot.counter);
            put_varint(&mut buf, v.timestamp_ms);
            v.context.encode_body(&mut buf);
            match &v.value {
                None => buf.push(0),
                Some(value) => {
                    buf.push(1);
                    put_bytes(&mut buf, value);
                }
            }
        }
        buf
    }

    /// Decodes [`Siblings::encode`]'s bytes; refuses anything else with the offset at fault.
    pub fn decode(b: &[u8]) -> Result<Siblings, DecodeError> {
        let mut r = Reader::new(b);
        let version = r.u8("format version").map_err(|_| DecodeError::Empty)?;
        if version != SIBLINGS_FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        // A version takes at least 5 bytes: node length, counter, timestamp, context count, kind.
        let count = r.count("version count", 5)?;
        let mut versions: Vec<Version> = Vec::with_capacity(count);
        let mut starts: Vec<usize> = Vec::with_capacity(count);
        for _ in 0..count {
            let start = r.pos();
            let node = r.string("dot node id")?;
            let at = r.pos();
            let counter = r.varint("dot counter")?;
            if counter == 0 {
                return Err(r.malformed(at, "dot counter is 0"));
            }
            let dot = Dot { node, counter };
            if versions.last().is_some_and(|last| last.dot >= dot) {
                return Err(r.malformed(start, "versions not sorted by dot"));
            }
            let timestamp_ms = r.varint("timestamp")?;
            let context = VectorClock::decode_body(&mut r)?;
            let at = r.pos();
            let value = match r.u8("value kind")? {
                0 => None,
                1 => Some(r.bytes("value")?.to_vec()),
                _ => return Err(r.malformed(at, "value kind is neither 0 nor 1")),
            };
            versions.push(Version {
                dot,
                context,
                value,
                timestamp_ms,
            });
            starts.push(start);
        }
        r.finish()?;
        if let Some(i) = seen_by_another(&versions).iter().position(|seen| *seen) {
            return Err(r.malformed(starts[i], "version seen by another version"));
        }
        Ok(Siblings(versions))
    }
}

/// For each version of `all` (distinct dots), whether another version in `all` saw it.
///
/// Linear in the total size of the contexts rather than quadratic in the number of versions, so
/// that a key with many siblings (or a hostile encoding) stays cheap: per node, it keeps the two
/// largest counters any context holds, and which version holds the largest.
fn seen_by_another(all: &[Version]) -> Vec<bool> {
    // node -> (largest counter, index of the version holding it, second largest counter)
    let mut top: BTreeMap<&str, (u64, usize, u64)> = BTreeMap::new();
    for (i, y) in all.iter().enumerate() {
        for (node, &counter) in y.context.iter() {
            let entry = top.entry(node.as_str()).or_insert((0, usize::MAX, 0));
            if counter > entry.0 {
                *entry = (counter, i, entry.0);
            } else if counter > entry.2 {
                entry.2 = counter;
            }
        }
    }
    all.iter()
        .enumerate()
        .map(|(i, x)| match top.get(x.dot.node.as_str()) {
            None => false,
            Some(&(largest, holder, second)) => {
                let by_others = if holder == i { second } else { largest };
                by_others >= x.dot.counter
            }
        })
        .collect()
}

/// Two copies of the same dot that differ: join them so the result does not depend on which
/// copy came first.
fn join_same_write(a: &Version, b: &Version) -> Version {
    let (timestamp_ms, value) = std::cmp::max(
        (a.timestamp_ms, a.value.as_ref()),
        (b.timestamp_ms, b.value.as_ref()),
    );
    Version {
        dot: a.dot.clone(),
        context: a.context.merge(&b.context),
        value: value.cloned(),
        timestamp_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: ConflictMode = ConflictMode::Siblings;
    const LWW: ConflictMode = ConflictMode::LastWriteWins;

    fn vc(entries: &[(&str, u64)]) -> VectorClock {
        entries.iter().copied().collect()
    }

    fn version(
        node: &str,
        counter: u64,
        ctx: &[(&str, u64)],
        value: Option<&str>,
        ts: u64,
    ) -> Version {
        Version {
            dot: Dot::new(node, counter),
            context: vc(ctx),
            value: value.map(|v| v.as_bytes().to_vec()),
            timestamp_ms: ts,
        }
    }

    fn dots(s: &Siblings) -> Vec<(&str, u64)> {
        s.versions()
            .iter()
            .map(|v| (v.dot.node.as_str(), v.dot.counter))
            .collect()
    }

    #[test]
    fn clock_adds_the_dot_to_the_context() {
        let v = version("a", 3, &[("a", 1), ("b", 4)], Some("x"), 0);
        assert_eq!(v.clock(), vc(&[("a", 3), ("b", 4)]));
        let w = version("b", 2, &[("b", 4)], Some("x"), 0);
        assert_eq!(w.clock(), vc(&[("b", 4)]));
    }

    #[test]
    fn blind_writes_through_the_same_coordinator_stay_siblings() {
        let empty = VectorClock::new();
        let one = Siblings::new().write(Dot::new("a", 5), &empty, Some(b"x".to_vec()), 1, S);
        let two = one.write(Dot::new("a", 7), &empty, Some(b"y".to_vec()), 2, S);
        assert_eq!(dots(&two), vec![("a", 5), ("a", 7)]);
        assert_eq!(two.context(), vc(&[("a", 7)]));
    }

    #[test]
    fn write_with_read_context_replaces_what_was_read() {
        let empty = VectorClock::new();
        let s = Siblings::new()
            .write(Dot::new("a", 1), &empty, Some(b"x".to_vec()), 1, S)
            .write(Dot::new("b", 1), &empty, Some(b"y".to_vec()), 2, S);
        let read = s.context();
        // A third, concurrent write arrives after the read.
        let s = s.write(Dot::new("c", 1), &empty, Some(b"z".to_vec()), 3, S);
        let s = s.write(Dot::new("a", 2), &read, Some(b"xy".to_vec()), 4, S);
        assert_eq!(dots(&s), vec![("a", 2), ("c", 1)]);
        assert_eq!(s.versions()[0].context, vc(&[("a", 1), ("b", 1)]));
    }

    #[test]
    fn merge_unions_and_drops_what_was_seen() {
        let x = version("a", 1, &[], Some("x"), 1);
        let y = version("b", 1, &[("a", 1)], Some("y"), 2);
        let z = version("c", 1, &[], Some("z"), 3);
        let left = Siblings(vec![x.clone(), z.clone()]);
        let right = Siblings(vec![y.clone()]);
        assert_eq!(left.merge(&right), Siblings(vec![y.clone(), z.clone()]));
        assert_eq!(right.merge(&left), Siblings(vec![y, z]));
        assert_eq!(left.merge(&left), left);
        assert_eq!(left.merge(&Siblings::new()), left);
    }

    #[test]
    fn same_dot_copies_are_joined() {
        let narrow = version("a", 1, &[("b", 1)], Some("v"), 5);
        let wide = version("a", 1, &[("b", 1), ("c", 2)], Some("v"), 5);
        let joined =
            Siblings::from_version(narrow.clone()).merge(&Siblings::from_version(wide.clone()));
        assert_eq!(joined, Siblings::from_version(wide.clone()));
        let back = Siblings::from_version(wide.clone()).merge(&Siblings::from_version(narrow));
        assert_eq!(joined, back);
    }

    #[test]
    fn deletes_are_tombstones_until_superseded() {
        let empty = VectorClock::new();
        let s = Siblings::new().write(Dot::new("a", 1), &empty, Some(b"x".to_vec()), 1, S);
        let deleted = s.write(Dot::new("a", 2), &s.context(), None, 2, S);
        assert_eq!(dots(&deleted), vec![("a", 2)]);
        assert!(deleted.is_deleted());
        assert_eq!(deleted.winner(), None);
        assert!(deleted.live().is_empty());
        let revived = deleted.write(
            Dot::new("b", 1),
            &deleted.context(),
            Some(b"y".to_vec()),
            3,
            S,
        );
        assert_eq!(dots(&revived), vec![("b", 1)]);
        assert!(!revived.is_deleted());
        assert!(Siblings::new().is_deleted());
    }

    #[test]
    fn winner_is_latest_live_then_largest_dot() {
        let s = Siblings(vec![
            version("a", 1, &[], Some("old"), 10),
            version("b", 1, &[], Some("tie-b"), 20),
            version("c", 1, &[], Some("tie-c"), 20),
            version("d", 1, &[], None, 30),
        ]);
        assert_eq!(s.winner().map(|v| v.dot.clone()), Some(Dot::new("c", 1)));
        assert_eq!(s.live().len(), 3);
    }

    #[test]
    fn lww_keeps_the_largest_timestamp_and_a_later_delete_wins() {
        let s = Siblings(vec![
            version("a", 1, &[], Some("x"), 10),
            version("b", 1, &[("z", 4)], None, 30),
            version("c", 1, &[], Some("y"), 20),
        ]);
        let r = s.resolve(LWW);
        assert_eq!(r, Siblings::from_version(s.versions()[1].clone()));
        assert!(r.is_deleted());
        assert_eq!(r.merge(&s).resolve(LWW), r);
        assert_eq!(s.resolve(S), s);
        assert_eq!(Siblings::new().resolve(LWW), Siblings::new());
        // Equal timestamps: the larger dot wins.
        let tie = Siblings(vec![
            version("a", 9, &[], Some("x"), 5),
            version("b", 1, &[], Some("y"), 5),
        ]);
        assert_eq!(dots(&tie.resolve(LWW)), vec![("b", 1)]);
    }

    #[test]
    fn lww_write_replaces_what_the_coordinator_holds() {
        let empty = VectorClock::new();
        let s = Siblings::new().write(Dot::new("a", 1), &empty, Some(b"x".to_vec()), 10, LWW);
        let s = s.write(Dot::new("b", 1), &empty, Some(b"y".to_vec()), 20, LWW);
        assert_eq!(dots(&s), vec![("b", 1)]);
        // The coordinator's clock is behind (5 < 20): the write still wins, stamped 21, and
        // stores no context.
        let s = s.write(Dot::new("a", 2), &s.context(), Some(b"z".to_vec()), 5, LWW);
        let w = &s.versions()[0];
        assert_eq!((w.dot.clone(), w.timestamp_ms), (Dot::new("a", 2), 21));
        assert!(w.context.is_empty());
        // A version stamped later elsewhere beats it when the two meet.
        let elsewhere = Siblings::from_version(version("c", 1, &[], Some("w"), 99));
        assert_eq!(dots(&s.merge(&elsewhere).resolve(LWW)), vec![("c", 1)]);
    }

    #[test]
    fn encoding_is_exact() {
        assert_eq!(Siblings::new().encode(), vec![1, 0]);
        let s = Siblings(vec![
            version("a", 2, &[("b", 1)], Some("hi"), 300),
            version("b", 3, &[], None, 1),
        ]);
        #[rustfmt::skip]
        let want = vec![
            1, 2,
            1, b'a', 2, 0xac, 0x02, 1, 1, b'b', 1, 1, 2, b'h', b'i',
            1, b'b', 3, 1, 0, 0,
        ];
        assert_eq!(s.encode(), want);
        assert_eq!(Siblings::decode(&want), Ok(s));
    }

    #[test]
    fn decode_refuses_bad_bytes() {
        let cases: &[(&[u8], DecodeError)] = &[
            (&[], DecodeError::Empty),
            (&[9], DecodeError::UnsupportedVersion { found: 9 }),
            (
                &[1],
                DecodeError::Truncated {
                    offset: 1,
                    what: "version count",
                },
            ),
            (
                &[1, 2, 1, b'a', 1, 0, 0, 0],
                DecodeError::Truncated {
                    offset: 1,
                    what: "version count",
                },
            ),
            (
                &[1, 1, 1, b'a', 0, 0, 0, 0],
                DecodeError::Malformed {
                    offset: 4,
                    reason: "dot counter is 0",
                },
            ),
            (
                &[1, 1, 1, b'a', 1, 0, 0, 2],
                DecodeError::Malformed {
                    offset: 7,
                    reason: "value kind is neither 0 nor 1",
                },
            ),
            (
                &[1, 1, 1, b'a', 1, 0, 0, 1, 3, b'x'],
                DecodeError::Truncated {
                    offset: 8,
                    what: "value",
                },
            ),
            (
                &[1, 1, 1, b'a', 1, 0, 0, 0, 0],
                DecodeError::TrailingBytes {
                    offset: 8,
                    count: 1,
                },
            ),
            (
                &[1, 2, 1, b'b', 1, 0, 0, 0, 1, b'a', 1, 0, 0, 0],
                DecodeError::Malformed {
                    offset: 8,
                    reason: "versions not sorted by dot",
                },
            ),
            (
                &[1, 2, 1, b'a', 1, 0, 0, 0, 1, b'a', 1, 0, 0, 0],
                DecodeError::Malformed {
                    offset: 8,
                    reason: "versions not sorted by dot",
                },
            ),
            (
                // (b,1) has context {a: 1}: it saw (a,1), which may not be stored beside it.
                &[1, 2, 1, b'a', 1, 0, 0, 0, 1, b'b', 1, 0, 1, 1, b'a', 1, 0],
                DecodeError::Malformed {
                    offset: 2,
                    reason: "version seen by another version",
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(Siblings::decode(bytes).as_ref(), Err(want), "{bytes:?}");
        }
    }

    fn any_version() -> impl Strategy<Value = Version> {
        (
            "[a-c]",
            1u64..5,
            prop::collection::btree_map("[a-c]", 0u64..5, 0..3),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
            any::<u64>(),
        )
            .prop_map(|(node, counter, ctx, value, ts)| Version {
                dot: Dot::new(node, counter),
                context: VectorClock::from_map(ctx),
                value,
                timestamp_ms: ts,
            })
    }

    fn small_siblings() -> impl Strategy<Value = Siblings> {
        prop::collection::vec(any_version(), 0..5).prop_map(|vs| {
            vs.into_iter()
                .fold(Siblings::new(), |s, v| s.merge(&Siblings::from_version(v)))
        })
    }

    proptest! {
        /// The linear-time filter agrees with the definition: x is dropped when some other y
        /// saw it.
        #[test]
        fn seen_by_another_matches_the_pairwise_rule(
            versions in prop::collection::btree_map(("[a-c]", 1u64..6), any_version(), 0..10),
        ) {
            let all: Vec<Version> = versions
                .into_iter()
                .map(|((node, counter), v)| Version { dot: Dot::new(node, counter), ..v })
                .collect();
            let pairwise: Vec<bool> =
                all.iter().map(|x| all.iter().any(|y| y.saw(x))).collect();
            prop_assert_eq!(seen_by_another(&all), pairwise);
        }

        #[test]
        fn encode_decode_round_trip(s in small_siblings()) {
            prop_assert_eq!(Siblings::decode(&s.encode()), Ok(s));
        }

        #[test]
        fn decode_of_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(s) = Siblings::decode(&bytes) {
                prop_assert_eq!(s.encode(), bytes);
            }
        }

        #[test]
        fn decode_of_damaged_encoding_never_panics(
            s in small_siblings(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let original = s.encode();
            let mut bytes = original.clone();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            if let Ok(d) = Siblings::decode(&bytes) {
                prop_assert_eq!(d.encode(), bytes.clone());
            }
            // A proper prefix of an encoding is never one: its count names versions it lacks.
            let truncated = &original[..cut.index(original.len())];
            prop_assert!(Siblings::decode(truncated).is_err());
            // A damaged one cut short may happen to be a shorter valid encoding (the damage
            // lowered a count or a length): then it is one exactly, never a lenient read.
            let damaged = &bytes[..cut.index(bytes.len())];
            if let Ok(d) = Siblings::decode(damaged) {
                prop_assert_eq!(d.encode(), damaged.to_vec());
            }
        }
    }
}
