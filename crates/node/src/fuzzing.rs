//! Entry points for fuzzing the decoders of bytes a node reads back from its own files: the
//! member table ([`crate::members_file`]), hints, the token index entries beside every key, and
//! a join's or decommission's saved stream plan. (Stored versions and causal contexts are the
//! `distkv-cluster` targets, the engine's files the `distkv-lsm` ones.)
//!
//! Each entry takes arbitrary bytes and must return whatever they are: a typed error or `None`,
//! never a panic or an allocation sized by a length the input claims; what a decoder accepts
//! re-encodes to what it read.
//!
//! The libFuzzer targets in `fuzz/` call these with the `fuzzing` feature; this crate's tests
//! replay the checked-in corpus (`fuzz/corpus/<target>/`) and [`seeds`] through them on stable.

use distkv_cluster::{Dot, Member, MemberState, Membership, Siblings, VectorClock, Version};
use distkv_proto::internal;

use crate::hints::{decode_hint, encode_hint};
use crate::members_file;
use crate::storage::{index_key, index_value, parse_index};
use crate::streaming::plan::{plan_from_proto, plan_to_proto};

/// A target: the name of its corpus directory and libFuzzer target, and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// The targets.
pub const TARGETS: &[Target] = &[
    ("member_table", member_table),
    ("hint", hint),
    ("token_index", token_index),
    ("stream_plan", stream_plan),
];

/// A member table file's bytes.
pub fn member_table(data: &[u8]) {
    let Ok(members) = members_file::decode(data) else {
        return;
    };
    for m in &members {
        let back = crate::transport::convert::member_from_proto(
            crate::transport::convert::member_to_proto(m),
        )
        .expect("a decoded member converts back");
        assert_eq!(&back, m);
    }
}

/// A hint's stored value.
pub fn hint(data: &[u8]) {
    if let Some((key, versions)) = decode_hint(data) {
        assert_eq!(
            encode_hint(&key, &versions),
            data,
            "an accepted hint is canonical"
        );
    }
}

/// A token index entry: the first byte says how many of the rest are its key, the others are
/// its value.
pub fn token_index(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (k, v) = rest.split_at((n as usize).min(rest.len()));
    if let Some(e) = parse_index(k, v) {
        assert_eq!(
            index_key(e.token, &e.key),
            k,
            "an accepted index key is canonical"
        );
    }
}

/// A saved stream plan.
pub fn stream_plan(data: &[u8]) {
    if let Ok(p) = <internal::StreamPlan as prost::Message>::decode(data) {
        let plan = plan_from_proto(p);
        assert_eq!(plan_from_proto(plan_to_proto(&plan)), plan);
    }
}

/// Valid inputs for every target, made by the node's own encoders.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut table = Membership::new(Member::new(
        "n1",
        "127.0.0.1:7001",
        1_700_000_000_000,
        MemberState::Normal,
        vec![11, 22, 33],
    ));
    table.merge([Member::new(
        "n2",
        "127.0.0.1:7002",
        1_700_000_000_001,
        MemberState::Joining,
        vec![44, 55],
    )]);
    let versions = Siblings::from_version(Version {
        dot: Dot::new("n1", 9),
        context: [("n2", 3)].into_iter().collect::<VectorClock>(),
        value: Some(b"value".to_vec()),
        timestamp_ms: 1_700_000_000_000,
    });
    let mut index = vec![9];
    index.extend(index_key(42, "user:1"));
    index.extend(index_value(&versions));
    let plan = internal::StreamPlan {
        kind: "join".into(),
        tasks: vec![internal::StreamTask {
            peer: "n2".into(),
            ranges: vec![internal::TokenRange { start: 5, end: 50 }],
            alternates: vec!["n3".into()],
            has_cursor: true,
            cursor_token: 7,
            cursor_key: "user:1".into(),
            done: false,
            keys: 10,
            bytes: 1000,
        }],
    };
    vec![
        ("member_table", members_file::encode("n1", &table)),
        ("hint", encode_hint("user:1", &versions)),
        ("token_index", index),
        ("stream_plan", prost::Message::encode_to_vec(&plan)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    distkv_fuzz_corpus::corpus_tests!("distkv_node");

    #[test]
    fn seeds_decode() {
        for (target, input) in seeds() {
            let ok = match target {
                "member_table" => members_file::decode(&input).is_ok_and(|m| m.len() == 2),
                "hint" => decode_hint(&input).is_some(),
                "token_index" => parse_index(&input[1..10], &input[10..]).is_some(),
                _ => <internal::StreamPlan as prost::Message>::decode(&input[..]).is_ok(),
            };
            assert!(ok, "the {target} seed decodes");
        }
    }
}
