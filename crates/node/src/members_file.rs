//! The member table a node keeps in `<data-dir>/members.pb`, so that a restarted node finds
//! its cluster again without seeds and carries on in the state it was in (its tokens above all:
//! a node that forgot them would take new ones and move the ownership of keys).
//!
//! # Format (version 1)
//!
//! ```text
//! magic "DKVM" | format u8 = 1 | crc32c u32 of the payload | payload length u32 | payload
//! ```
//!
//! Integers are little-endian; the payload is a `distkv.internal.MembershipState` message.
//! The file is replaced whole: written beside it, synced, renamed over it, and the directory
//! synced, so a crash leaves the old table or the new one. A damaged file is therefore a real
//! fault, and the node refuses to start with an error naming it ([`MembersFileError`]) rather
//! than start with tokens it made up. Files of releases before the format (the bare message,
//! written without a sync) are still read; one that does not decode is ignored with a warning,
//! as those releases did, since a crash could leave it torn.

use std::io::Write;
use std::path::Path;

use distkv_cluster::{Member, Membership};
use distkv_proto::internal;

pub use crate::error::MembersFileError;
use crate::transport::convert::{member_from_proto, member_to_proto};

/// The member table's file name in the data directory.
pub const MEMBERS_FILE: &str = "members.pb";

const MAGIC: &[u8; 4] = b"DKVM";
const FORMAT: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 4 + 4;

/// The file's bytes for the members of `table`, sent by `local_id`.
pub fn encode(local_id: &str, table: &Membership) -> Vec<u8> {
    let state = internal::MembershipState {
        sender_id: local_id.to_string(),
        members: table.members().map(member_to_proto).collect(),
    };
    let payload = prost::Message::encode_to_vec(&state);
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.push(FORMAT);
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&payload);
    bytes
}

/// The members in a file's bytes. Members this release cannot make sense of (a state it does
/// not know) are left out, as gossip leaves them out.
pub fn decode(bytes: &[u8]) -> Result<Vec<Member>, MembersFileError> {
    let payload = match bytes.strip_prefix(MAGIC) {
        Some(rest) => checked_payload(rest)?,
        None => bytes,
    };
    let state = <internal::MembershipState as prost::Message>::decode(payload)?;
    Ok(state
        .members
        .into_iter()
        .filter_map(|m| member_from_proto(m).ok())
        .collect())
}

fn checked_payload(rest: &[u8]) -> Result<&[u8], MembersFileError> {
    let truncated = MembersFileError::Truncated {
        len: rest.len() + MAGIC.len(),
        header: HEADER_LEN,
    };
    let (&format, rest) = rest.split_first().ok_or(truncated)?;
    if format != FORMAT {
        return Err(MembersFileError::UnsupportedFormat {
            found: format,
            supported: FORMAT,
        });
    }
    let (Some(stored), Some(claimed)) = (u32_at(rest, 0), u32_at(rest, 4)) else {
        return Err(MembersFileError::Truncated {
            len: rest.len() + MAGIC.len() + 1,
            header: HEADER_LEN,
        });
    };
    let payload = &rest[8..];
    if payload.len() as u64 != u64::from(claimed) {
        return Err(MembersFileError::Length {
            claimed: claimed.into(),
            held: payload.len(),
        });
    }
    let computed = crc32c::crc32c(payload);
    // Fuzzing builds (`--cfg fuzzing`) take any checksum, to reach the table's decoding.
    if stored != computed && !cfg!(fuzzing) {
        return Err(MembersFileError::Checksum { stored, computed });
    }
    Ok(payload)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The member table saved in `dir` by an earlier run: `None` when there is none (or only an
/// unreadable one of an older release).
pub fn load(dir: &Path) -> Result<Option<Vec<Member>>, MembersFileError> {
    let path = dir.join(MEMBERS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MembersFileError::Io { path, source }),
    };
    match decode(&bytes) {
        Ok(members) => Ok(Some(members)),
        Err(e) if !bytes.starts_with(MAGIC) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable member table of an older release");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Replaces the member table in `dir` with `table`'s, durably.
pub fn save(dir: &Path, local_id: &str, table: &Membership) -> Result<(), MembersFileError> {
    let path = dir.join(MEMBERS_FILE);
    let tmp = path.with_extension("tmp");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MembersFileError::Io { path, source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(&encode(local_id, table))
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use distkv_cluster::MemberState;

    fn table() -> Membership {
        let mut t = Membership::new(Member::new(
            "n1",
            "127.0.0.1:1",
            5,
            MemberState::Normal,
            vec![1, 2, 3],
        ));
        t.merge([Member::new(
            "n2",
            "127.0.0.1:2",
            6,
            MemberState::Leaving,
            vec![4],
        )]);
        t
    }

    #[test]
    fn a_saved_table_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none(), "no file, no table");
        save(dir.path(), "n1", &table()).unwrap();
        let members = load(dir.path()).unwrap().unwrap();
        let expected: Vec<Member> = table().members().cloned().collect();
        assert_eq!(members, expected);
        assert!(!dir.path().join("members.tmp").exists());
    }

    #[test]
    fn damage_is_an_error_naming_it() {
        let good = encode("n1", &table());
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            decode(&flipped),
            Err(MembersFileError::Checksum { .. })
        ));
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(MembersFileError::Length { .. })
        ));
        assert!(matches!(
            decode(&good[..6]),
            Err(MembersFileError::Truncated { .. })
        ));
        let mut future = good.clone();
        future[4] = 2;
        assert!(matches!(
            decode(&future),
            Err(MembersFileError::UnsupportedFormat { found: 2, .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MEMBERS_FILE), &flipped).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn a_table_of_an_older_release_is_read_and_a_torn_one_ignored() {
        let state = internal::MembershipState {
            sender_id: "n1".into(),
            members: table().members().map(member_to_proto).collect(),
        };
        let legacy = prost::Message::encode_to_vec(&state);
        assert_eq!(decode(&legacy).unwrap().len(), 2);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MEMBERS_FILE), b"\xff\xff\xff").unwrap();
        assert!(load(dir.path()).unwrap().is_none());
    }
}
