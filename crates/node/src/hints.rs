//! Hinted handoff (Dynamo 4.6): writes meant for a replica that could not be reached are kept
//! here, durably, and delivered when it answers again.
//!
//! Hints live in a storage engine of their own (`<data-dir>/hints`), keyed by
//! `target \0 sequence`, so the hints for one node are one ordered range and survive restarts.
//! A hint's value is the key and the encoded versions. Delivering a hint twice is harmless:
//! replicas merge versions idempotently.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use distkv_cluster::Siblings;
use distkv_lsm::{Db, Options, SyncPolicy};

use crate::error::Result;

/// One held write.
#[derive(Debug, Clone)]
pub struct Hint {
    /// The hint's own key in the hint store (to remove it once delivered).
    pub id: Vec<u8>,
    pub key: String,
    pub versions: Siblings,
}

#[derive(Clone)]
pub struct HintStore {
    db: Db,
    next: Arc<AtomicU64>,
}

impl HintStore {
    pub fn open(dir: &Path) -> Result<HintStore> {
        let db = Db::open(
            dir,
            Options {
                sync: SyncPolicy::EveryCommit,
                memtable_bytes: 8 << 20,
                max_memtable_memory: 32 << 20,
                block_cache_bytes: 8 << 20,
                ..Options::default()
            },
        )?;
        // Continue after the largest sequence number on disk.
        let mut next = 0u64;
        for item in db.range(..)? {
            let (k, _) = item?;
            if !k.contains(&0) {
                continue;
            }
            if let Some(seq) = k.rsplit(|&b| b == 0).next().and_then(parse_seq) {
                next = next.max(seq + 1);
            }
        }
        Ok(HintStore {
            db,
            next: Arc::new(AtomicU64::new(next)),
        })
    }

    /// [`Self::add`] from async code: the synced write runs on the blocking pool.
    pub fn add_async(
        &self,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (hints, target, key, versions) = (
            self.clone(),
            target.to_string(),
            key.to_string(),
            versions.clone(),
        );
        async move {
            crate::blocking::spawn(move || hints.add(&target, &key, &versions))
                .await
                .map_err(|_| crate::error::NodeError::ShuttingDown)?
        }
    }

    /// Keeps a write for `target`.
    pub fn add(&self, target: &str, key: &str, versions: &Siblings) -> Result<()> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = target.as_bytes().to_vec();
        id.push(0);
        id.extend_from_slice(format!("{seq:020}").as_bytes());
        self.db.put(&id, &encode_hint(key, versions))?;
        Ok(())
    }

    /// Up to `limit` hints for `target`, oldest first. Undecodable hints are skipped (and logged).
    pub fn pending(&self, target: &str, limit: usize) -> Result<Vec<Hint>> {
        let mut prefix = target.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.db.prefix(&prefix)? {
            let (id, value) = item?;
            match decode_hint(&value) {
                Some((key, versions)) => out.push(Hint {
                    id: id.to_vec(),
                    key,
                    versions,
                }),
                None => {
                    tracing::error!(target_node = target, "dropping an undecodable hint");
                    self.db.delete(&id)?;
                }
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Nodes that have hints waiting, sorted.
    pub fn targets(&self) -> Result<Vec<String>> {
        let mut targets: Vec<String> = Vec::new();
        for item in self.db.range(..)? {
            let (id, _) = item?;
            if let Some(pos) = id.iter().position(|&b| b == 0) {
                let t = String::from_utf8_lossy(&id[..pos]).into_owned();
                if targets.last() != Some(&t) {
                    targets.push(t);
                }
            }
        }
        Ok(targets)
    }

    /// The underlying engine (the node keeps a little bookkeeping here too, under keys without
    /// a `\0`, which are never hints).
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn remove(&self, id: &[u8]) -> Result<()> {
        Ok(self.db.delete(id)?)
    }

    /// Deletes every hint for `target`; returns how many there were.
    pub fn drop_target(&self, target: &str) -> Result<usize> {
        let mut prefix = target.as_bytes().to_vec();
        prefix.push(0);
        let mut batch = distkv_lsm::WriteBatch::new();
        let mut n = 0;
        for item in self.db.prefix(&prefix)? {
            let (id, _) = item?;
            batch.delete(&id);
            n += 1;
        }
        self.db.write(batch, &distkv_lsm::WriteOptions::default())?;
        Ok(n)
    }

    /// The oldest timestamp of any version in the hints held; `None` when none is held.
    /// Scans the store (a round of anti-entropy asks once; hints are few while nodes answer).
    pub fn oldest_version_ms(&self) -> Result<Option<u64>> {
        let mut oldest: Option<u64> = None;
        for item in self.db.range(..)? {
            let (id, value) = item?;
            if !id.contains(&0) {
                continue;
            }
            // An undecodable hint is dropped when its target's hints are next read; until
            // then it holds nothing back.
            let Some((_, versions)) = decode_hint(&value) else {
                continue;
            };
            let min = versions.versions().iter().map(|v| v.timestamp_ms).min();
            oldest = match (oldest, min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(oldest)
    }

    /// [`Self::oldest_version_ms`] from async code, on the blocking pool.
    pub async fn oldest_version_ms_async(&self) -> Result<Option<u64>> {
        let hints = self.clone();
        crate::blocking::spawn(move || hints.oldest_version_ms())
            .await
            .map_err(|_| crate::error::NodeError::ShuttingDown)?
    }

    /// Number of hints held (counts the store; meant for status, not hot paths).
    pub fn count(&self) -> Result<usize> {
        let mut n = 0;
        for item in self.db.range(..)? {
            let (id, _) = item?;
            n += usize::from(id.contains(&0));
        }
        Ok(n)
    }

    pub fn close(&self) -> Result<()> {
        Ok(self.db.close()?)
    }

    /// The simulation's machine crash ([`distkv_lsm::Db::crash`]): what was not synced is lost.
    #[cfg(test)]
    pub(crate) fn crash(&self) {
        self.db.crash();
    }
}

fn parse_seq(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A hint's stored value: the key's length (u32, little-endian), the key, its encoded versions.
pub(crate) fn encode_hint(key: &str, versions: &Siblings) -> Vec<u8> {
    let mut value = Vec::new();
    value.extend_from_slice(&(key.len() as u32).to_le_bytes());
    value.extend_from_slice(key.as_bytes());
    value.extend_from_slice(&versions.encode());
    value
}

/// [`encode_hint`]'s key and versions; `None` for anything else.
pub(crate) fn decode_hint(value: &[u8]) -> Option<(String, Siblings)> {
    let len = u32::from_le_bytes(value.get(..4)?.try_into().ok()?) as usize;
    let key = std::str::from_utf8(value.get(4..4 + len)?)
        .ok()?
        .to_string();
    let versions = Siblings::decode(value.get(4 + len..)?).ok()?;
    Some((key, versions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use distkv_cluster::{Dot, VectorClock, Version};

    fn versions(v: &str) -> Siblings {
        Siblings::from_version(Version {
            dot: Dot {
                node: "n1".into(),
                counter: 1,
            },
            context: VectorClock::new(),
            value: Some(v.as_bytes().to_vec()),
            timestamp_ms: 5,
        })
    }

    #[test]
    fn hints_survive_reopen_in_order_per_target() {
        let dir = tempfile::tempdir().unwrap();
        {
            let h = HintStore::open(dir.path()).unwrap();
            h.add("b", "k1", &versions("1")).unwrap();
            h.add("a", "k2", &versions("2")).unwrap();
            h.add("b", "k3", &versions("3")).unwrap();
            h.close().unwrap();
        }
        let h = HintStore::open(dir.path()).unwrap();
        assert_eq!(h.targets().unwrap(), vec!["a".to_string(), "b".to_string()]);
        let b = h.pending("b", 10).unwrap();
        assert_eq!(
            b.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(),
            ["k1", "k3"]
        );
        assert_eq!(b[1].versions, versions("3"));
        h.remove(&b[0].id).unwrap();
        assert_eq!(h.pending("b", 10).unwrap().len(), 1);
        h.add("b", "k4", &versions("4")).unwrap();
        let keys: Vec<_> = h
            .pending("b", 10)
            .unwrap()
            .into_iter()
            .map(|x| x.key)
            .collect();
        assert_eq!(keys, ["k3", "k4"]);
        assert_eq!(h.count().unwrap(), 3);
        assert_eq!(h.drop_target("b").unwrap(), 2);
        assert_eq!(h.targets().unwrap(), vec!["a".to_string()]);
    }
}
