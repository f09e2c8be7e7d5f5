//! A replica's local copy of the data: sibling sets of versions in the storage engine.
//!
//! Each key's value in the engine is its encoded [`Siblings`]. Writes arriving from coordinators,
//! read repair and hinted handoff are all merges: read the stored set, merge the incoming one
//! (commutative, associative, idempotent), write the result back if it changed. A striped lock
//! serializes merges of the same key so that no concurrent merge is lost. Engine calls are
//! blocking, so they run on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use distkv_cluster::{ConflictMode, Dot, Siblings, VectorClock};
use distkv_lsm::{Db, Options, WriteOptions};
use parking_lot::Mutex;

use crate::error::{NodeError, Result};

const LOCK_STRIPES: usize = 1024;

/// The local store of one node.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    db: Db,
    locks: Vec<Mutex<()>>,
    mode: ConflictMode,
}

impl Store {
    pub fn open(dir: &Path, opts: Options, mode: ConflictMode) -> Result<Store> {
        let db = Db::open(dir, opts)?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                db,
                locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
                mode,
            }),
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The stored versions of `key` (empty when it has none).
    pub async fn read(&self, key: String) -> Result<Siblings> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.read(&key)).await
    }

    /// Merges `incoming` into the stored versions of `key`; returns the result.
    pub async fn merge(&self, key: String, incoming: Siblings) -> Result<Siblings> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.merge(&key, &incoming)).await
    }

    /// Applies a new write coordinated here: under the key's lock, the stored versions take the
    /// new version (which supersedes exactly what `context` covers) and the result is stored and
    /// returned. Holding the lock while the dot is applied keeps every version this node
    /// coordinated for the key in its own copy, which is what makes its dots safe to compare.
    pub async fn apply_write(
        &self,
        key: String,
        dot: Dot,
        context: VectorClock,
        value: Option<Vec<u8>>,
        timestamp_ms: u64,
    ) -> Result<Siblings> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let _guard = inner.stripe(&key).lock();
            let current = inner.read(&key)?;
            let next = current.write(dot, &context, value, timestamp_ms, inner.mode);
            inner
                .db
                .put_opt(key.as_bytes(), &next.encode(), &WriteOptions::default())?;
            Ok(next)
        })
        .await
    }

    /// Up to `limit` keys in `[start, end)` (`end` empty = unbounded) with their versions,
    /// tombstones included; and whether more follow.
    pub async fn scan(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
    ) -> Result<(Vec<(String, Siblings)>, bool)> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.scan(&start, &end, limit)).await
    }

    pub fn flush(&self) -> Result<()> {
        Ok(self.inner.db.flush()?)
    }

    pub fn close(&self) -> Result<()> {
        Ok(self.inner.db.close()?)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| NodeError::ShuttingDown)?
}

impl StoreInner {
    fn decode(key: &str, bytes: &[u8]) -> Result<Siblings> {
        Siblings::decode(bytes).map_err(|e| NodeError::CorruptVersions {
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    fn read(&self, key: &str) -> Result<Siblings> {
        match self.db.get(key.as_bytes())? {
            Some(bytes) => Self::decode(key, &bytes),
            None => Ok(Siblings::new()),
        }
    }

    fn stripe(&self, key: &str) -> &Mutex<()> {
        let h = distkv_cluster::key_token(key.as_bytes()) as usize;
        &self.locks[h % self.locks.len()]
    }

    fn merge(&self, key: &str, incoming: &Siblings) -> Result<Siblings> {
        let _guard = self.stripe(key).lock();
        let current = self.read(key)?;
        let merged = current.merge(incoming).resolve(self.mode);
        if merged != current {
            self.db
                .put_opt(key.as_bytes(), &merged.encode(), &WriteOptions::default())?;
        }
        Ok(merged)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<(Vec<(String, Siblings)>, bool)> {
        let iter = if end.is_empty() {
            self.db.range(start..)?
        } else {
            self.db.range(start..end)?
        };
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            if out.len() == limit {
                return Ok((out, true));
            }
            let key = String::from_utf8_lossy(&k).into_owned();
            let versions = Self::decode(&key, &v)?;
            out.push((key, versions));
        }
        Ok((out, false))
    }
}
