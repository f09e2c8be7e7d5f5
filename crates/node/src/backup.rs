//! Backups of one node's data, taken while it serves.
//!
//! A backup is a directory `<data-dir>/backups/<name>/`:
//!
//! ```text
//! storage/      a checkpoint of the store (the engine's `Db::checkpoint`)
//! hints/        a checkpoint of the hint store (writes still owed to other replicas)
//! members.pb    the member table, as the node last saved it
//! NODE_ID       the node's id
//! BACKUP.json   what the backup holds: name, node, time, files and bytes, sequence numbers
//! ```
//!
//! The checkpoints hard-link the engine's table files, so a backup takes about as long as a
//! memtable flush and costs disk space only as compaction replaces the files it shares. It is
//! assembled in `<name>.partial` and renamed into place when complete and synced: a directory
//! under `backups/` without that suffix is always whole. Copy it elsewhere (another disk,
//! object storage) to survive the loss of the volume.
//!
//! Each node's backup holds what that node stores; together the backups of all nodes, taken at
//! about the same time, hold every write acknowledged before the first of them (each write is
//! on W replicas or in a hint). To restore a node, stop it, replace its `storage/` and
//! `hints/` by the backup's and start it: read repair, hinted handoff and anti-entropy bring it
//! up to date with the rest of the cluster. As with any replica that was away, a backup older
//! than `-tombstone-gc-grace` must not be restored into a running cluster (docs/operations.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use distkv_cluster::NodeId;
use parking_lot::Mutex;
use serde::Serialize;

use crate::error::{BackupError, NodeError, Result};
use crate::hints::HintStore;
use crate::members_file::MEMBERS_FILE;
use crate::storage::Store;

/// Where a node keeps its backups, under its data directory.
pub const BACKUPS_DIR: &str = "backups";
/// The description of a backup, in JSON, inside it.
pub const DESCRIPTION_FILE: &str = "BACKUP.json";
/// Longest backup name.
pub const MAX_NAME_LEN: usize = 100;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupInfo {
    pub name: String,
    pub path: PathBuf,
    pub node_id: String,
    /// Unix seconds.
    pub created: i64,
    /// Table files in the two checkpoints.
    pub files: usize,
    pub bytes: u64,
}

/// Checks a backup name: 1 to 100 letters, digits, `.`, `_` and `-`, not starting with `.`,
/// and not ending in `.partial` (the suffix of backups being written).
pub fn validate_name(name: &str) -> std::result::Result<(), BackupError> {
    if name.is_empty() {
        return Err(BackupError::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(BackupError::NameTooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(BackupError::BadCharacter {
            name: name.to_string(),
            found,
        });
    }
    if name.starts_with('.') || name.ends_with(".partial") {
        return Err(BackupError::ReservedName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// The name of a backup taken at `now` without a name: its UTC time, like `20261201T091500Z`.
pub fn default_name(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%Y%m%dT%H%M%SZ").to_string()
}

#[derive(Serialize)]
struct Description<'a> {
    format: u32,
    name: &'a str,
    node_id: &'a str,
    created: String,
    created_unix: i64,
    distkv_version: &'static str,
    storage: Part,
    hints: Part,
}

#[derive(Serialize)]
struct Part {
    files: usize,
    bytes: u64,
    sequence: u64,
}

impl From<&distkv_lsm::Checkpoint> for Part {
    fn from(c: &distkv_lsm::Checkpoint) -> Self {
        Part {
            files: c.tables,
            bytes: c.bytes,
            sequence: c.sequence,
        }
    }
}

fn io_error(path: &Path, source: std::io::Error) -> NodeError {
    BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
    .into()
}

/// Removes what backups cut short by a crash left in `root` (`<name>.partial`): their hard
/// links would keep obsolete table files on disk. Called with the backup lock held, so none of
/// them is being written.
fn remove_partial_backups(root: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(root, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| io_error(root, e))?.path();
        if path.extension().is_some_and(|x| x == "partial") {
            tracing::info!(path = %path.display(), "removing a backup cut short earlier");
            std::fs::remove_dir_all(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(())
}

fn sync_path(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error(path, e))
}

/// The backups of one node: its two engines, where its data directory is, and the lock that
/// lets one backup be written at a time. Cheap to clone.
#[derive(Clone)]
pub struct Backups {
    store: Store,
    hints: HintStore,
    data_dir: PathBuf,
    node_id: NodeId,
    /// Held while a backup is written: two of the same name would share the partial
    /// directory.
    one_at_a_time: Arc<Mutex<()>>,
}

impl Backups {
    /// Backups of `node_id`'s `store` and `hints`, kept under `data_dir`.
    pub fn new(store: Store, hints: HintStore, data_dir: PathBuf, node_id: NodeId) -> Self {
        Backups {
            store,
            hints,
            data_dir,
            node_id,
            one_at_a_time: Arc::default(),
        }
    }

    /// Writes a backup named `name` (or the current UTC time), on the blocking pool. Refused
    /// when the name is not valid or a backup of that name exists.
    pub async fn write(&self, name: Option<String>) -> Result<BackupInfo> {
        let now = chrono::Utc::now();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => default_name(now),
        };
        validate_name(&name)?;
        let this = self.clone();
        crate::blocking::spawn(move || this.write_backup(&name, now))
            .await
            .map_err(|_| NodeError::ShuttingDown)?
    }

    fn write_backup(&self, name: &str, now: chrono::DateTime<chrono::Utc>) -> Result<BackupInfo> {
        let _one = self.one_at_a_time.lock();
        let data_dir = &self.data_dir;
        let root = data_dir.join(BACKUPS_DIR);
        let dest = root.join(name);
        if dest.exists() {
            return Err(BackupError::Exists {
                name: name.to_string(),
                path: dest,
            }
            .into());
        }
        remove_partial_backups(&root)?;
        let partial = root.join(format!("{name}.partial"));
        std::fs::create_dir_all(&partial).map_err(|e| io_error(&partial, e))?;
        // The backups directory may be new: its entry must survive a power cut too.
        sync_path(data_dir)?;
        let written = self.fill_backup(&partial, name, now);
        if written.is_err() {
            // Its hard links would keep obsolete table files on disk.
            let _ = std::fs::remove_dir_all(&partial);
        }
        let (storage, hints) = written?;
        if let Err(e) = std::fs::rename(&partial, &dest) {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(io_error(&dest, e));
        }
        sync_path(&root)?;
        let info = BackupInfo {
            name: name.to_string(),
            path: std::path::absolute(&dest).unwrap_or(dest),
            node_id: self.node_id.clone(),
            created: now.timestamp(),
            files: storage.tables + hints.tables,
            bytes: storage.bytes + hints.bytes,
        };
        tracing::info!(
            name,
            path = %info.path.display(),
            files = info.files,
            bytes = info.bytes,
            "backup written"
        );
        Ok(info)
    }

    /// Writes the backup's contents into `dir`: the two checkpoints, the member table, the
    /// node id and the description.
    fn fill_backup(
        &self,
        dir: &Path,
        name: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(distkv_lsm::Checkpoint, distkv_lsm::Checkpoint)> {
        let data_dir = &self.data_dir;
        let storage = self.store.db().checkpoint(dir.join("storage"))?;
        let hints = self.hints.db().checkpoint(dir.join("hints"))?;
        for file in [MEMBERS_FILE, "NODE_ID"] {
            let from = data_dir.join(file);
            let to = dir.join(file);
            match std::fs::copy(&from, &to) {
                Ok(_) => sync_path(&to)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&from, e)),
            }
        }
        let description = Description {
            format: 1,
            name,
            node_id: &self.node_id,
            created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            created_unix: now.timestamp(),
            distkv_version: env!("CARGO_PKG_VERSION"),
            storage: Part::from(&storage),
            hints: Part::from(&hints),
        };
        let json = serde_json::to_vec_pretty(&description).map_err(BackupError::Describe)?;
        let desc = dir.join(DESCRIPTION_FILE);
        std::fs::write(&desc, json).map_err(|e| io_error(&desc, e))?;
        sync_path(&desc)?;
        sync_path(dir)?;
        Ok((storage, hints))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("nightly-2026.12.01_a").is_ok());
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        for bad in ["", "../x", "a/b", "a b", ".hidden", "x.partial", "é"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        let long = validate_name(&"a".repeat(MAX_NAME_LEN + 1)).unwrap_err();
        assert!(
            matches!(long, BackupError::NameTooLong { len: 101, max: 100 }),
            "{long}"
        );
        assert!(long.to_string().contains("limit is 100"), "{long}");
    }

    #[test]
    fn backups_cut_short_are_removed_and_finished_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        for dir in [
            "a.partial/storage",
            "20261201T091500Z.partial",
            "nightly/storage",
        ] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        std::fs::write(root.path().join("a.partial/storage/000001.sst"), b"x").unwrap();
        remove_partial_backups(root.path()).unwrap();
        let mut left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["nightly"]);
        remove_partial_backups(&root.path().join("none-yet")).unwrap();
    }

    #[tokio::test]
    async fn a_backup_holds_both_engines_and_refuses_its_name_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("storage"),
            distkv_lsm::Options::default(),
            distkv_cluster::ConflictMode::Siblings,
        )
        .unwrap();
        let hints = HintStore::open(&dir.path().join("hints")).unwrap();
        let versions = distkv_cluster::Siblings::new().write(
            distkv_cluster::Dot::new("n1", 1),
            &distkv_cluster::VectorClock::new(),
            Some(b"v".to_vec()),
            1,
            distkv_cluster::ConflictMode::Siblings,
        );
        store
            .merge("k".to_string(), versions.clone())
            .await
            .unwrap();
        hints.add("n2", "k", &versions).unwrap();
        std::fs::write(dir.path().join("NODE_ID"), "n1").unwrap();
        let backups = Backups::new(store, hints, dir.path().to_path_buf(), "n1".into());

        let info = backups.write(Some("first".into())).await.unwrap();
        assert_eq!(info.node_id, "n1");
        let root = dir.path().join(BACKUPS_DIR).join("first");
        for part in ["storage", "hints", "NODE_ID", DESCRIPTION_FILE] {
            assert!(root.join(part).exists(), "{part} missing from the backup");
        }
        let restored = Store::open(
            &root.join("storage"),
            distkv_lsm::Options::default(),
            distkv_cluster::ConflictMode::Siblings,
        )
        .unwrap();
        assert_eq!(restored.read("k".to_string()).await.unwrap(), versions);
        assert_eq!(
            HintStore::open(&root.join("hints"))
                .unwrap()
                .count()
                .unwrap(),
            1
        );

        let again = backups.write(Some("first".into())).await.unwrap_err();
        assert!(
            matches!(again, NodeError::Backup(BackupError::Exists { .. })),
            "{again}"
        );
        let bad = backups.write(Some("../x".into())).await.unwrap_err();
        assert!(matches!(bad, NodeError::Backup(_)), "{bad}");
    }

    #[test]
    fn the_default_name_is_the_utc_time() {
        let t = chrono::DateTime::from_timestamp(1_796_116_500, 0).unwrap();
        assert_eq!(default_name(t), "20261201T091500Z");
        assert!(validate_name(&default_name(t)).is_ok());
    }
}
