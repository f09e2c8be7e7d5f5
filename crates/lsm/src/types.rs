//! Internal keys: a user key followed by an 8-byte trailer holding the sequence number and kind.
//!
//! Internal keys order by user key ascending, then by sequence number descending, so that the
//! newest version of a key comes first and a seek to `(key, snapshot)` lands on the newest version
//! visible at that snapshot. The trailer is `seqno << 8 | kind`, stored little-endian.

use std::cmp::Ordering;

/// A write's position in the total order of writes to one database.
pub type SeqNo = u64;

/// The largest sequence number (56 bits: the low byte of the trailer holds the kind).
pub const MAX_SEQNO: SeqNo = (1 << 56) - 1;

pub(crate) const TRAILER_LEN: usize = 8;

/// What an entry records about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ValueKind {
    /// A tombstone; its value holds the deletion time in milliseconds (little-endian u64).
    Delete = 0,
    /// A value.
    Put = 1,
}

/// The kind byte used in seek targets: larger than every real kind, so a target with sequence
/// number `s` sorts before every entry of the same key with sequence number `s`.
pub(crate) const KIND_SEEK: u8 = 0xff;

impl ValueKind {
    pub(crate) fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            _ => None,
        }
    }
}

pub(crate) fn trailer(seq: SeqNo, kind: u8) -> u64 {
    (seq << 8) | u64::from(kind)
}

/// Appends the internal key for `(user_key, seq, kind)` to `buf`.
pub(crate) fn encode_internal_key(buf: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: u8) {
    buf.extend_from_slice(user_key);
    buf.extend_from_slice(&trailer(seq, kind).to_le_bytes());
}

pub(crate) fn internal_key(user_key: &[u8], seq: SeqNo, kind: u8) -> Vec<u8> {
    let mut buf = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    encode_internal_key(&mut buf, user_key, seq, kind);
    buf
}

/// The user key part of an internal key. Internal keys shorter than a trailer only exist in
/// corrupt files, and those are rejected when a block is parsed.
#[inline]
pub(crate) fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(TRAILER_LEN)]
}

#[inline]
pub(crate) fn trailer_of(ikey: &[u8]) -> u64 {
    let n = ikey.len();
    if n < TRAILER_LEN {
        return 0;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&ikey[n - TRAILER_LEN..]);
    u64::from_le_bytes(t)
}

#[inline]
pub(crate) fn seq_of(ikey: &[u8]) -> SeqNo {
    trailer_of(ikey) >> 8
}

#[inline]
pub(crate) fn kind_of(ikey: &[u8]) -> Option<ValueKind> {
    ValueKind::from_u8(trailer_of(ikey) as u8)
}

/// Byte-wise order of two slices, comparing 8 bytes at a time: short keys (the common case)
/// are decided in a register compare or two instead of a call to `memcmp`.
#[inline]
pub(crate) fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x.copy_from_slice(&a[i..i + 8]);
        y.copy_from_slice(&b[i..i + 8]);
        let (x, y) = (u64::from_be_bytes(x), u64::from_be_bytes(y));
        if x != y {
            return x.cmp(&y);
        }
        i += 8;
    }
    a[i..].cmp(&b[i..])
}

/// Orders internal keys: user key ascending, then trailer (sequence number) descending.
#[inline]
pub(crate) fn compare_internal(a: &[u8], b: &[u8]) -> Ordering {
    compare_bytes(user_key(a), user_key(b)).then_with(|| trailer_of(b).cmp(&trailer_of(a)))
}

/// Tombstone values carry their deletion time so compaction can honour the tombstone TTL.
pub(crate) fn tombstone_value(now_millis: u64) -> [u8; 8] {
    now_millis.to_le_bytes()
}

pub(crate) fn tombstone_time(value: &[u8]) -> u64 {
    crate::coding::u64_at(value, 0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn compare_bytes_agrees_with_slice_order(
            a in prop::collection::vec(any::<u8>(), 0..40),
            b in prop::collection::vec(any::<u8>(), 0..40),
            shared in 0usize..20,
        ) {
            let mut b2 = a[..shared.min(a.len())].to_vec();
            b2.extend_from_slice(&b);
            prop_assert_eq!(compare_bytes(&a, &b), a.as_slice().cmp(b.as_slice()));
            prop_assert_eq!(compare_bytes(&a, &b2), a.as_slice().cmp(b2.as_slice()));
        }
    }

    #[test]
    fn newer_versions_sort_first_and_user_keys_ascend() {
        let a5 = internal_key(b"a", 5, 1);
        let a7 = internal_key(b"a", 7, 1);
        let ab1 = internal_key(b"ab", 1, 1);
        assert_eq!(compare_internal(&a7, &a5), Ordering::Less);
        assert_eq!(compare_internal(&a5, &ab1), Ordering::Less);
        // A seek target for snapshot 7 sorts before the entry written at 7.
        let seek7 = internal_key(b"a", 7, KIND_SEEK);
        assert_eq!(compare_internal(&seek7, &a7), Ordering::Less);
        assert_eq!(seq_of(&a7), 7);
        assert_eq!(kind_of(&a7), Some(ValueKind::Put));
        assert_eq!(user_key(&ab1), b"ab");
    }
}
