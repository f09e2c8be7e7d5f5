//! Entry points for fuzzing the decoders of bytes that reach this crate from disk and the
//! network: a key's stored versions ([`Siblings::decode`], what every replica keeps, sends and
//! hints) and vector clocks ([`VectorClock::decode`], the causal context clients hand back).
//!
//! Each entry takes arbitrary bytes and must return whatever they are: a [`crate::DecodeError`]
//! for damage, never a panic or an allocation sized by a count the input claims. What a decoder
//! accepts must be canonical (it re-encodes to the same bytes) and behave under the operations
//! the node applies to it (merging with itself changes nothing, resolving does not panic).
//!
//! The libFuzzer targets in `fuzz/` call these with the `fuzzing` feature; this crate's tests
//! replay the checked-in corpus (`fuzz/corpus/<target>/`) and [`seeds`] through them on stable.

use crate::vclock::Causality;
use crate::{ConflictMode, Dot, Siblings, VectorClock, Version};

/// A target: the name of its corpus directory and libFuzzer target, and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// The targets.
pub const TARGETS: &[Target] = &[("siblings", siblings), ("vclock", vclock)];

/// A key's stored versions, as a replica reads them from its store or a peer's message.
pub fn siblings(data: &[u8]) {
    let Ok(s) = Siblings::decode(data) else {
        return;
    };
    assert_eq!(s.encode(), data, "accepted versions are canonical");
    assert_eq!(
        s.merge(&s),
        s,
        "merging versions with themselves changes nothing"
    );
    for mode in [ConflictMode::Siblings, ConflictMode::LastWriteWins] {
        let _ = s.resolve(mode);
    }
    let _ = (s.live(), s.is_deleted(), s.winner(), s.context());
}

/// A causal context, as a client sends it back with a write.
pub fn vclock(data: &[u8]) {
    let Ok(c) = VectorClock::decode(data) else {
        return;
    };
    // Canonical, but for the empty clock written out whole (version byte, no entries), which
    // reads as the empty clock as well (the clock property test makes the same exception).
    if data != [1, 0] {
        assert_eq!(c.encode(), data, "an accepted clock is canonical");
    }
    assert_eq!(c.compare(&c), Causality::Equal);
    assert_eq!(c.merge(&c), c);
}

/// Valid inputs for every target, made by this crate's own encoders.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let clock: VectorClock = [("n1", 3), ("n2", 1), ("node-three", 7)]
        .into_iter()
        .collect();
    let version = |node: &str, counter, value: Option<&[u8]>| Version {
        dot: Dot::new(node, counter),
        context: clock.clone(),
        value: value.map(<[u8]>::to_vec),
        timestamp_ms: 1_700_000_000_000 + counter,
    };
    let one = Siblings::from_version(version("n1", 4, Some(b"value")));
    let two = one.merge(&Siblings::from_version(version("n2", 2, None)));
    vec![
        ("vclock", clock.encode()),
        ("vclock", VectorClock::new().encode()),
        ("siblings", one.encode()),
        ("siblings", two.encode()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    distkv_fuzz_corpus::corpus_tests!("distkv_cluster");

    #[test]
    fn seeds_decode() {
        for (target, input) in seeds() {
            match target {
                "siblings" => assert!(Siblings::decode(&input).is_ok()),
                _ => assert!(VectorClock::decode(&input).is_ok()),
            }
        }
    }
}
