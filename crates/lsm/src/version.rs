//! Versions and the manifest: which table files are live, at which level.
//!
//! A [`Version`] is an immutable list of tables per level. Flushes and compactions describe their
//! result as a [`VersionEdit`], append it to the manifest and sync it, and only then install the
//! new version and mark replaced tables obsolete (their files are deleted when the last reader lets
//! go). After a crash at any moment the manifest therefore names a consistent set of files; files
//! it does not name are leftovers and are removed on open.
//!
//! The manifest is a record log (see `log`) of edits; its first record is a full snapshot. On
//! open a new manifest is written with one snapshot record and `CURRENT` is switched to it
//! atomically (write `CURRENT.tmp`, sync, rename, sync the directory).
//!
//! Edit encoding: a sequence of `tag varint` fields:
//! `1 log_number`, `2 next_file_number`, `3 last_sequence`, `4 level number` (delete file),
//! `5 level number size` (add file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::coding::{Reader, put_varint};
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::log::{LogWriter, TailMode, read_log};
use crate::sst::reader::Table;
use crate::types::compare_internal;

/// A change to the set of live files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VersionEdit {
    /// WAL files numbered below this are no longer needed.
    pub(crate) log_number: Option<u64>,
    pub(crate) next_file_number: Option<u64>,
    pub(crate) last_sequence: Option<u64>,
    pub(crate) deleted: Vec<(usize, u64)>,
    /// (level, file number, file size)
    pub(crate) added: Vec<(usize, u64, u64)>,
}

const TAG_LOG_NUMBER: u64 = 1;
const TAG_NEXT_FILE: u64 = 2;
const TAG_LAST_SEQ: u64 = 3;
const TAG_DELETE: u64 = 4;
const TAG_ADD: u64 = 5;

impl VersionEdit {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for (tag, v) in [
            (TAG_LOG_NUMBER, self.log_number),
            (TAG_NEXT_FILE, self.next_file_number),
            (TAG_LAST_SEQ, self.last_sequence),
        ] {
            if let Some(v) = v {
                put_varint(&mut b, tag);
                put_varint(&mut b, v);
            }
        }
        for &(level, number) in &self.deleted {
            put_varint(&mut b, TAG_DELETE);
            put_varint(&mut b, level as u64);
            put_varint(&mut b, number);
        }
        for &(level, number, size) in &self.added {
            put_varint(&mut b, TAG_ADD);
            put_varint(&mut b, level as u64);
            put_varint(&mut b, number);
            put_varint(&mut b, size);
        }
        b
    }

    pub(crate) fn decode(buf: &[u8]) -> Option<Self> {
        let mut r = Reader::new(buf);
        let mut e = VersionEdit::default();
        while !r.is_empty() {
            match r.varint()? {
                TAG_LOG_NUMBER => e.log_number = Some(r.varint()?),
                TAG_NEXT_FILE => e.next_file_number = Some(r.varint()?),
                TAG_LAST_SEQ => e.last_sequence = Some(r.varint()?),
                TAG_DELETE => e.deleted.push((r.varint()? as usize, r.varint()?)),
                TAG_ADD => e
                    .added
                    .push((r.varint()? as usize, r.varint()?, r.varint()?)),
                _ => return None,
            }
        }
        Some(e)
    }
}

/// The live tables, per level. L0 is ordered newest first (by largest sequence number) and its
/// tables may overlap; deeper levels are ordered by key and do not overlap.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) levels: Vec<Vec<Arc<Table>>>,
}

impl Version {
    pub(crate) fn empty(num_levels: usize) -> Self {
        Version {
            levels: vec![Vec::new(); num_levels],
        }
    }

    /// The version after `edit`, with `opened` supplying the tables it adds.
    pub(crate) fn apply(&self, edit: &VersionEdit, opened: &[Arc<Table>]) -> Result<Version> {
        let mut levels = self.levels.clone();
        for &(level, number) in &edit.deleted {
            if let Some(l) = levels.get_mut(level) {
                l.retain(|t| t.number() != number);
            }
        }
        for &(level, number, _) in &edit.added {
            let t = opened
                .iter()
                .find(|t| t.number() == number)
                .ok_or(Error::InvalidOptions(
                    "edit adds a table that was not opened",
                ))?;
            levels
                .get_mut(level)
                .ok_or(Error::InvalidOptions(
                    "edit names a level beyond num_levels",
                ))?
                .push(Arc::clone(t));
        }
        levels[0].sort_by(|a, b| {
            b.properties()
                .max_seq
                .cmp(&a.properties().max_seq)
                .then(b.number().cmp(&a.number()))
        });
        for l in levels.iter_mut().skip(1) {
            l.sort_by(|a, b| compare_internal(a.smallest(), b.smallest()));
        }
        Ok(Version { levels })
    }

    /// An edit that recreates this version from nothing.
    pub(crate) fn snapshot_edit(&self) -> VersionEdit {
        let mut e = VersionEdit::default();
        for (level, tables) in self.levels.iter().enumerate() {
            for t in tables {
                e.added.push((level, t.number(), t.file_size()));
            }
        }
        e
    }

    pub(crate) fn tables(&self) -> impl Iterator<Item = &Arc<Table>> {
        self.levels.iter().flatten()
    }
}

pub(crate) fn manifest_name(number: u64) -> String {
    format!("MANIFEST-{number:06}")
}

pub(crate) fn table_name(number: u64) -> String {
    format!("{number:06}.sst")
}

pub(crate) fn wal_name(number: u64) -> String {
    format!("{number:06}.log")
}

/// Appends edits to the current manifest.
pub(crate) struct Manifest {
    writer: LogWriter,
    dir: PathBuf,
}

impl Manifest {
    /// Writes a new manifest holding `snapshot` and points `CURRENT` at it.
    pub(crate) fn create(dir: &Path, number: u64, snapshot: &VersionEdit) -> Result<Self> {
        let path = dir.join(manifest_name(number));
        // Never pre-zeroed: replay treats a complete manifest record with a bad checksum as
        // corruption (dropping a synced edit could lose files), so a torn write must not be able
        // to leave a full-length record over zeros.
        let mut writer = LogWriter::create(&path, number, false, 0)?.never_prezero();
        writer.append([snapshot.encode().as_slice()], true)?;
        writer.sync()?;
        let tmp = dir.join("CURRENT.tmp");
        std::fs::write(&tmp, format!("{}\n", manifest_name(number))).at(&tmp)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .at(&tmp)?;
        let current = dir.join("CURRENT");
        std::fs::rename(&tmp, &current).at(&current)?;
        sync_dir(dir)?;
        Ok(Manifest {
            writer,
            dir: dir.to_path_buf(),
        })
    }

    /// Appends `edit` and syncs it. The directory is synced first when the edit adds tables,
    /// so that no durable edit can name a table whose directory entry a power loss undid.
    pub(crate) fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        if !edit.added.is_empty() {
            sync_dir(&self.dir)?;
        }
        self.writer.append([edit.encode().as_slice()], true)?;
        self.writer.sync()
    }

    pub(crate) fn len(&self) -> u64 {
        self.writer.len()
    }

    pub(crate) fn number(&self) -> u64 {
        self.writer.log_number()
    }
}

/// Syncs a directory so that renames and new files in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).at(dir)
}

/// The state recorded by a manifest.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub(crate) log_number: u64,
    pub(crate) next_file_number: u64,
    pub(crate) last_sequence: u64,
    /// (level, number, size) of every live table.
    pub(crate) files: Vec<(usize, u64, u64)>,
}

/// Reads `CURRENT` and replays the manifest it names. `Ok(None)` when there is no `CURRENT`.
pub(crate) fn recover(dir: &Path) -> Result<Option<Recovered>> {
    let current = dir.join("CURRENT");
    let name = match std::fs::read_to_string(&current) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&current, e)),
    };
    let name = name.trim_end_matches('\n');
    let number = name
        .strip_prefix("MANIFEST-")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| {
            Error::corruption(
                &current,
                0,
                CorruptionKind::Malformed("CURRENT names no manifest"),
            )
        })?;
    let path = dir.join(name);
    let mut rec = Recovered::default();
    let mut live: Vec<(usize, u64, u64)> = Vec::new();
    let end = read_log(&path, number, TailMode::Strict, |payload, offset| {
        let edit = VersionEdit::decode(payload).ok_or_else(|| {
            Error::corruption(&path, offset, CorruptionKind::Malformed("version edit"))
        })?;
        if let Some(v) = edit.log_number {
            rec.log_number = v;
        }
        if let Some(v) = edit.next_file_number {
            rec.next_file_number = v;
        }
        if let Some(v) = edit.last_sequence {
            rec.last_sequence = v;
        }
        live.retain(|&(l, n, _)| !edit.deleted.contains(&(l, n)));
        live.extend_from_slice(&edit.added);
        Ok(())
    })?;
    if end.valid_len == 0 {
        return Err(Error::corruption(
            &path,
            0,
            CorruptionKind::Truncated("empty manifest"),
        ));
    }
    if end.torn_tail {
        tracing::warn!(manifest = %path.display(), at = end.valid_len, "dropped a torn manifest tail");
    }
    rec.next_file_number = rec.next_file_number.max(number + 1);
    rec.files = live;
    Ok(Some(rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_round_trip() {
        let e = VersionEdit {
            log_number: Some(4),
            next_file_number: Some(9),
            last_sequence: Some(1 << 40),
            deleted: vec![(0, 3), (1, 5)],
            added: vec![(1, 7, 12345)],
        };
        assert_eq!(VersionEdit::decode(&e.encode()), Some(e));
        assert_eq!(VersionEdit::decode(&[99, 1]), None);
    }
}
