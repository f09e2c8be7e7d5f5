//! The token-ordered index the store keeps beside every key, in the same engine and batch:
//! `0xFF | token (big-endian) | key` → `xxh3 digest of the versions | newest tombstone time`.
//! Anti-entropy's trees, streaming's pages and range scans read it in token order.

use distkv_cluster::{Siblings, Token};
use xxhash_rust::xxh3::xxh3_64;

/// First byte of index entries.
pub(crate) const INDEX_PREFIX: u8 = 0xFF;
/// Says the index covers every key.
pub(crate) const INDEX_MARKER: &[u8] = b"\xFEindex-v1";
/// User keys sort below this.
pub(crate) const USER_KEYS_END: &[u8] = b"\xFE";

/// What the index knows of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub token: Token,
    pub key: String,
    /// xxh3 of the encoded versions.
    pub digest: u64,
    /// For a key whose versions are all tombstones, the newest timestamp; 0 otherwise.
    pub tombstone_ms: u64,
}

/// A position in token order: after `(token, key)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub token: Token,
    pub key: String,
}

/// The digest of a sibling set, as the index keeps it.
pub fn versions_digest(versions: &Siblings) -> u64 {
    xxh3_64(&versions.encode())
}

/// Bytes an index entry's key adds to the user's key (the prefix and the token); the engine's
/// key limit must leave room for them.
pub const INDEX_KEY_OVERHEAD: usize = 9;

pub(crate) fn index_key(token: Token, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(INDEX_KEY_OVERHEAD + key.len());
    k.push(INDEX_PREFIX);
    k.extend_from_slice(&token.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

pub(crate) fn index_value(versions: &Siblings) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&versions_digest(versions).to_le_bytes());
    let tombstone_ms = if versions.is_deleted() {
        versions
            .versions()
            .iter()
            .map(|v| v.timestamp_ms)
            .max()
            .unwrap_or(0)
            .max(1)
    } else {
        0
    };
    v[8..].copy_from_slice(&tombstone_ms.to_le_bytes());
    v
}

pub(crate) fn parse_index(k: &[u8], v: &[u8]) -> Option<IndexEntry> {
    if k.first() != Some(&INDEX_PREFIX) {
        return None;
    }
    let token = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
    let key = std::str::from_utf8(k.get(9..)?).ok()?.to_string();
    let digest = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
    let tombstone_ms = u64::from_le_bytes(v.get(8..16)?.try_into().ok()?);
    Some(IndexEntry {
        token,
        key,
        digest,
        tombstone_ms,
    })
}
