//! A replica's local copy of the data: sibling sets of versions in the storage engine, and a
//! token-ordered index of them.
//!
//! Each key's value in the engine is its encoded [`Siblings`]. Writes arriving from coordinators,
//! read repair, hinted handoff, streaming and anti-entropy are all merges: read the stored set,
//! merge the incoming one (commutative, associative, idempotent), write the result back if it
//! changed. A striped lock serializes merges of the same key so that no concurrent merge is
//! lost.
//!
//! **No hand-off per operation.** A read that the engine can answer from memory (memtables,
//! filters, block cache) and a write it can apply without a stall run on the calling task:
//! the write is applied under the key's lock in microseconds, the lock is released, and the
//! task then awaits the engine's [`distkv_lsm::Durable`] future, which the engine's sync thread
//! resolves after the group commit's `fdatasync`. No thread is parked per write. Reads that
//! need the disk, writes the engine would stall, and bulk work (streaming, scans, repair) go
//! to tokio's blocking pool, which the server bounds; there too the writes are applied
//! ([`distkv_lsm::Db::write_applied`]) and their durability is awaited back on the task, so no
//! blocking thread waits for a group commit either.
//!
//! A merge that changes nothing still awaits the durability of what it read (another writer's
//! version may be applied but not yet synced), so that no replica acknowledges a write that a
//! crash could still take away.
//!
//! **The token index.** Keys are stored in key order (scans need it), but replication works in
//! token ranges of the ring. Every write also updates an index entry
//!
//! ```text
//! 0xFF | token (u64, big-endian) | key   ->   digest (u64 LE) | tombstone_ms (u64 LE)
//! ```
//!
//! in the same atomic batch, where `digest` is the xxh3 of the encoded versions (equal on two
//! replicas exactly when they hold the same versions) and `tombstone_ms` is the newest
//! timestamp of a key whose versions are all tombstones (0 for a live key). Keys are UTF-8
//! strings, and no UTF-8 string starts with byte 0xFF or 0xFE, so the index (and the marker
//! `0xFE index-v1` that says it is complete) never mixes with user keys. Streaming a range and
//! building a Merkle tree are sequential reads of the index; garbage collection of old
//! tombstones finds its candidates there without reading values.
//!
//! A data directory written before the index existed gets it built once at open.
//!
//! Size: the store's async face ([`Store`]) and the engine work it runs under each key's lock
//! (`StoreInner`) are one contract and stay in one file; the token index (`index.rs`) and the
//! tests are apart.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use distkv_cluster::{ConflictMode, Dot, RangeSet, Siblings, VectorClock, key_token};
use distkv_lsm::{Cached, Db, Durable, Options, Submitted, WriteBatch, WriteOptions};
use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::error::{NodeError, Result};

mod index;

pub use index::{Cursor, INDEX_KEY_OVERHEAD, IndexEntry, versions_digest};
pub(crate) use index::{INDEX_MARKER, USER_KEYS_END, index_key, index_value, parse_index};

const LOCK_STRIPES: usize = 1024;
/// A page of the keys in some ranges, in token order, for streaming.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangePage {
    /// Each key with its versions.
    pub entries: Vec<(String, Siblings)>,
    /// Bytes of keys and encoded versions in the page.
    pub bytes: u64,
    /// Where the next page starts; `None` when this page ends the ranges.
    pub next: Option<Cursor>,
}

/// Index entries read at a time while filling a [`RangePage`].
const RANGE_PAGE_KEYS: usize = 256;

/// The local store of one node.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    db: Db,
    locks: Vec<Mutex<()>>,
    mode: ConflictMode,
    /// Tombstones older than this grace may go (0: never)...
    gc_grace_ms: AtomicU64,
    /// ...as this clock tells their age (the node's, or a simulation's)...
    gc_clock: RwLock<Arc<dyn Clock>>,
    /// ...once a round of anti-entropy that started after them has reached every replica.
    gc_full_round_ms: AtomicU64,
}

impl Store {
    pub fn open(dir: &Path, opts: Options, mode: ConflictMode) -> Result<Store> {
        let db = Db::open(dir, opts)?;
        let inner = StoreInner {
            db,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            mode,
            gc_grace_ms: AtomicU64::new(0),
            gc_clock: RwLock::new(Arc::new(SystemClock)),
            gc_full_round_ms: AtomicU64::new(0),
        };
        if inner.db.get(INDEX_MARKER)?.is_none() {
            let n = inner.rebuild_index()?;
            if n > 0 {
                tracing::info!(keys = n, "built the token index of an older data directory");
            }
        }
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Sets the tombstone grace period (0: tombstones are kept for ever), and the clock that
    /// tells a tombstone's age: the one that stamps versions on this node.
    pub fn set_gc_grace(&self, grace_ms: u64, clock: Arc<dyn Clock>) {
        *self.inner.gc_clock.write() = clock;
        self.inner.gc_grace_ms.store(grace_ms, Ordering::Relaxed);
    }

    /// Records that a round of anti-entropy that started at `started_ms` reached every
    /// replica this node shares ranges with.
    pub fn full_round_done(&self, started_ms: u64) {
        self.inner
            .gc_full_round_ms
            .fetch_max(started_ms, Ordering::Relaxed);
    }

    /// Tombstones with a newest timestamp below this are gone for good: purged here, left out
    /// of anti-entropy comparisons, and not stored again when one arrives. It is the older of
    /// "now less the grace period" and the start of the last round of anti-entropy that
    /// reached every replica, so a tombstone is only dropped after it was offered to all of
    /// them; 0 (nothing is dropped) until such a round has run.
    pub fn gc_horizon(&self) -> u64 {
        self.inner.gc_horizon()
    }

    /// The stored versions of `key` (empty when it has none). May include a version whose
    /// sync is still running (it is acknowledged to nobody until it is synced).
    pub async fn read(&self, key: String) -> Result<Siblings> {
        if let Some(found) = self.inner.read_cached(&key)? {
            return Ok(found);
        }
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.read(&key)).await
    }

    /// The stored versions of each of `keys` that has any.
    pub async fn read_many(&self, keys: Vec<String>) -> Result<Vec<(String, Siblings)>> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                let v = inner.read(&k)?;
                if !v.is_empty() {
                    out.push((k, v));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Merges `incoming` into the stored versions of `key`; returns the result once it is
    /// durable under the sync policy.
    pub async fn merge(&self, key: String, incoming: Siblings) -> Result<Siblings> {
        self.change(key, move |inner, current| inner.merged(current, &incoming))
            .await
    }

    /// Under the key's lock, turns the stored versions into `change`'s result and stores it
    /// (unless `change` says nothing changed); returns it once durable. Runs on this task when
    /// the engine has the key in memory and takes the write without a stall, on the blocking
    /// pool otherwise.
    async fn change(
        &self,
        key: String,
        change: impl Fn(&StoreInner, &Siblings) -> (Siblings, bool) + Send + 'static,
    ) -> Result<Siblings> {
        if let Some((next, durable)) = self.inner.change_nowait(&key, &change)? {
            durable.await?;
            return Ok(next);
        }
        let inner = Arc::clone(&self.inner);
        let (next, _, durable) = blocking(move || inner.change(&key, &change)).await?;
        durable.await?;
        Ok(next)
    }

    /// Merges each entry's versions into its key's, as [`Store::merge`] does; answers per
    /// entry, in order, once all are durable. The writes are applied one after the other and
    /// share the group commit that makes them durable.
    pub async fn merge_each(&self, entries: Vec<(String, Siblings)>) -> Vec<Result<()>> {
        enum Applied {
            /// Applied in memory: durable with the group commit.
            Durable(Durable),
            /// Not in memory, or the engine would stall: merged on the blocking pool (which
            /// returns its durability, not waiting for the sync there).
            Blocking(tokio::task::JoinHandle<Result<Durable>>),
            Failed(NodeError),
        }
        let mut applied = Vec::with_capacity(entries.len());
        for (key, incoming) in entries {
            let change =
                move |inner: &StoreInner, current: &Siblings| inner.merged(current, &incoming);
            applied.push(match self.inner.change_nowait(&key, &change) {
                Ok(Some((_, durable))) => Applied::Durable(durable),
                Ok(None) => {
                    let inner = Arc::clone(&self.inner);
                    Applied::Blocking(crate::blocking::spawn(move || {
                        inner.change(&key, &change).map(|(_, _, durable)| durable)
                    }))
                }
                Err(e) => Applied::Failed(e),
            });
        }
        let mut results = Vec::with_capacity(applied.len());
        for a in applied {
            results.push(match a {
                Applied::Durable(durable) => durable.await.map_err(NodeError::from),
                Applied::Blocking(task) => match task.await {
                    Ok(Ok(durable)) => durable.await.map_err(NodeError::from),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(NodeError::ShuttingDown),
                },
                Applied::Failed(e) => Err(e),
            });
        }
        results
    }

    /// Merges many keys' versions; returns how many keys changed here, once all are durable.
    pub async fn merge_many(&self, entries: Vec<(String, Siblings)>) -> Result<usize> {
        let inner = Arc::clone(&self.inner);
        let (changed, durable) = blocking(move || {
            let mut changed = 0;
            let mut last = None;
            for (k, v) in entries {
                let (_, stored, durable) = inner.merge(&k, &v)?;
                changed += usize::from(stored);
                last = Some(durable);
            }
            Ok((changed, last))
        })
        .await?;
        durable_all(durable).await?;
        Ok(changed)
    }

    /// Applies a new write coordinated here: under the key's lock, the stored versions take the
    /// new version (which supersedes exactly what `context` covers) and the result is stored and
    /// returned. Holding the lock while the dot is applied keeps every version this node
    /// coordinated for the key in its own copy, which is what makes its dots safe to compare.
    /// `context` `None` supersedes what the key holds when the write is applied (a blind write
    /// coordinated here).
    pub async fn apply_write(
        &self,
        key: String,
        dot: Dot,
        context: Option<VectorClock>,
        value: Option<Vec<u8>>,
        timestamp_ms: u64,
    ) -> Result<Siblings> {
        self.change(key, move |inner, current| {
            let held;
            let context = match &context {
                Some(c) => c,
                None => {
                    held = current.context();
                    &held
                }
            };
            let next = current.write(
                dot.clone(),
                context,
                value.clone(),
                timestamp_ms,
                inner.mode,
            );
            (next, true)
        })
        .await
    }

    /// Keys `[start, end)` in order with their versions: at most `limit` of them and,
    /// past the first, at most `max_bytes` of stored keys and versions; and whether there are
    /// more.
    pub async fn scan(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(String, Siblings)>, bool)> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.scan(&start, &end, limit, max_bytes)).await
    }

    /// Index entries in `ranges`, in token order, after `after` (exclusive), at most `limit`;
    /// and whether the ranges hold more.
    pub async fn index_page(
        &self,
        ranges: RangeSet,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<(Vec<IndexEntry>, bool)> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.index_page(&ranges, after.as_ref(), limit)).await
    }

    /// The keys in `ranges` after `after` (from the start without one), in token order, with
    /// their versions: as many as fit in `max_bytes` of keys and encoded versions, and at
    /// least one batch of index entries (so a page always makes progress).
    pub async fn range_page(
        &self,
        ranges: RangeSet,
        mut after: Option<Cursor>,
        max_bytes: usize,
    ) -> Result<RangePage> {
        let mut page = RangePage::default();
        loop {
            let (index, more) = self
                .index_page(ranges.clone(), after.clone(), RANGE_PAGE_KEYS)
                .await?;
            if let Some(last) = index.last() {
                after = Some(Cursor {
                    token: last.token,
                    key: last.key.clone(),
                });
            }
            let keys: Vec<String> = index.into_iter().map(|e| e.key).collect();
            let inner = Arc::clone(&self.inner);
            let read = blocking(move || {
                let mut out = Vec::with_capacity(keys.len());
                for key in keys {
                    // The stored bytes are the versions' canonical encoding: their length is
                    // what the page costs, without encoding them again.
                    if let Some(bytes) = inner.db.get(key.as_bytes())? {
                        let versions = StoreInner::decode(&key, &bytes)?;
                        if !versions.is_empty() {
                            out.push((key.len() + bytes.len(), key, versions));
                        }
                    }
                }
                Ok(out)
            });
            for (bytes, key, versions) in read.await? {
                page.bytes += bytes as u64;
                page.entries.push((key, versions));
            }
            if !more {
                return Ok(page);
            }
            if page.bytes >= max_bytes as u64 {
                page.next = Some(after.unwrap_or(Cursor {
                    token: 0,
                    key: String::new(),
                }));
                return Ok(page);
            }
        }
    }

    /// Calls `f` on every index entry in `ranges`, in token order (blocking; for Merkle trees).
    pub fn for_each_indexed(&self, ranges: &RangeSet, f: impl FnMut(IndexEntry)) -> Result<()> {
        self.inner.for_each_indexed(ranges, f)
    }

    /// Deletes keys whose versions are all tombstones older than `before_ms`, if they still
    /// are (checked under the key's lock); returns how many were deleted.
    pub async fn purge_tombstones(&self, keys: Vec<String>, before_ms: u64) -> Result<usize> {
        let inner = Arc::clone(&self.inner);
        let (purged, durable) = blocking(move || {
            let mut purged = 0;
            let mut last = None;
            for key in keys {
                let _guard = inner.stripe(&key).lock();
                let current = inner.read(&key)?;
                let newest = current.versions().iter().map(|v| v.timestamp_ms).max();
                if current.is_deleted()
                    && !current.is_empty()
                    && newest.is_some_and(|t| t < before_ms)
                {
                    let mut b = WriteBatch::new();
                    b.delete(key.as_bytes())
                        .delete(&index_key(key_token(key.as_bytes()), &key));
                    last = Some(inner.db.write_applied(b, &WriteOptions::default())?);
                    purged += 1;
                }
            }
            Ok((purged, last))
        })
        .await?;
        durable_all(durable).await?;
        Ok(purged)
    }

    /// Deletes `keys` (data and index entries); returns how many existed.
    pub async fn delete_keys(&self, keys: Vec<String>) -> Result<usize> {
        let inner = Arc::clone(&self.inner);
        let (deleted, durable) = blocking(move || {
            let mut deleted = 0;
            let mut last = None;
            for key in keys {
                let _guard = inner.stripe(&key).lock();
                if inner.db.get(key.as_bytes())?.is_none() {
                    continue;
                }
                let mut b = WriteBatch::new();
                b.delete(key.as_bytes())
                    .delete(&index_key(key_token(key.as_bytes()), &key));
                last = Some(inner.db.write_applied(b, &WriteOptions::default())?);
                deleted += 1;
            }
            Ok((deleted, last))
        })
        .await?;
        durable_all(durable).await?;
        Ok(deleted)
    }

    /// Deletes every key held here; returns how many.
    pub async fn delete_all(&self) -> Result<usize> {
        let all = RangeSet::new(&[distkv_cluster::TokenRange::new(0, 0)]);
        let mut deleted = 0;
        loop {
            let (page, _) = self.index_page(all.clone(), None, 4096).await?;
            if page.is_empty() {
                return Ok(deleted);
            }
            deleted += self
                .delete_keys(page.into_iter().map(|e| e.key).collect())
                .await?;
        }
    }

    pub fn flush(&self) -> Result<()> {
        Ok(self.inner.db.flush()?)
    }

    pub fn close(&self) -> Result<()> {
        Ok(self.inner.db.close()?)
    }

    /// The simulation's machine crash ([`distkv_lsm::Db::crash`]): what was not synced is lost.
    #[cfg(test)]
    pub(crate) fn crash(&self) {
        self.inner.db.crash();
    }
}

/// Waits for the durability of the last of a series of writes applied one after the other on
/// one thread (the group commit syncs in order: it covers the earlier ones).
async fn durable_all(last: Option<Durable>) -> Result<()> {
    match last {
        Some(durable) => Ok(durable.await?),
        None => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    crate::blocking::spawn(f)
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

    /// The stored versions of `key` if the engine has them in memory; `None` if it must read
    /// the disk.
    fn read_cached(&self, key: &str) -> Result<Option<Siblings>> {
        match self.db.get_cached(key.as_bytes())? {
            Cached::Hit(Some(bytes)) => Self::decode(key, &bytes).map(Some),
            Cached::Hit(None) => Ok(Some(Siblings::new())),
            Cached::NeedsIo => Ok(None),
        }
    }

    /// [`Self::change`] without blocking: reads the key from memory only and applies the write
    /// without waiting for its sync; returns the new versions and their durability, or `None`
    /// (nothing applied) when the key must be read from disk or the engine would stall the
    /// write.
    fn change_nowait(
        &self,
        key: &str,
        change: &dyn Fn(&StoreInner, &Siblings) -> (Siblings, bool),
    ) -> Result<Option<(Siblings, Durable)>> {
        let _guard = self.stripe(key).lock();
        let Some(current) = self.read_cached(key)? else {
            return Ok(None);
        };
        let (next, write) = change(self, &current);
        if !write {
            // What was read may not be synced yet: it is acknowledged once it is.
            return Ok(Some((next, self.db.durable_now())));
        }
        Ok(self
            .store_nowait(key, &next)?
            .map(|durable| (next, durable)))
    }

    /// Under the key's lock, turns the stored versions into `change`'s result and stores it
    /// (blocking for the disk and for room, not for the sync), unless `change` says nothing
    /// changed; returns it, whether it was stored, and its durability to await before it is
    /// acknowledged (when nothing changed, that of what was read: it may not be synced yet).
    fn change(
        &self,
        key: &str,
        change: &dyn Fn(&StoreInner, &Siblings) -> (Siblings, bool),
    ) -> Result<(Siblings, bool, Durable)> {
        let _guard = self.stripe(key).lock();
        let current = self.read(key)?;
        let (next, write) = change(self, &current);
        let durable = if write {
            self.store(key, &next)?
        } else {
            self.db.durable_now()
        };
        Ok((next, write, durable))
    }

    /// The result of merging `incoming` into `current`, and whether it must be stored.
    fn merged(&self, current: &Siblings, incoming: &Siblings) -> (Siblings, bool) {
        let merged = current.merge(incoming).resolve(self.mode);
        let changed = merged != *current;
        if changed && current.is_empty() && merged.is_deleted() {
            // A tombstone past the horizon, arriving where the key is already gone (purged
            // here, or never written): storing it would only bring it back to be purged again.
            let newest = merged.versions().iter().map(|v| v.timestamp_ms).max();
            if newest.is_some_and(|t| t < self.gc_horizon()) {
                return (merged, false);
            }
        }
        (merged, changed)
    }

    fn gc_horizon(&self) -> u64 {
        let grace = self.gc_grace_ms.load(Ordering::Relaxed);
        let full = self.gc_full_round_ms.load(Ordering::Relaxed);
        if grace == 0 || full == 0 {
            return 0;
        }
        let now = self.gc_clock.read().now_ms();
        now.saturating_sub(grace).min(full)
    }

    fn stripe(&self, key: &str) -> &Mutex<()> {
        let h = key_token(key.as_bytes()) as usize;
        &self.locks[h % self.locks.len()]
    }

    /// The batch that stores the versions of `key` and its index entry.
    fn batch(key: &str, versions: &Siblings) -> (WriteBatch, usize) {
        let encoded = versions.encode();
        let mut b = WriteBatch::new();
        b.put(key.as_bytes(), &encoded).put(
            &index_key(key_token(key.as_bytes()), key),
            &index_value(versions),
        );
        (b, encoded.len())
    }

    /// Names the error of a write that was too large for the engine: many large concurrent
    /// versions of one key.
    fn write_error(
        e: distkv_lsm::Error,
        key: &str,
        versions: &Siblings,
        bytes: usize,
    ) -> NodeError {
        match e {
            distkv_lsm::Error::ValueTooLarge { max, .. } => NodeError::TooManyVersions {
                key: key.chars().take(100).collect(),
                versions: versions.versions().len(),
                bytes,
                max,
            },
            e => e.into(),
        }
    }

    /// Writes the versions of `key` and its index entry in one batch; returns its durability.
    fn store(&self, key: &str, versions: &Siblings) -> Result<Durable> {
        let (b, bytes) = Self::batch(key, versions);
        self.db
            .write_applied(b, &WriteOptions::default())
            .map_err(|e| Self::write_error(e, key, versions, bytes))
    }

    /// [`Self::store`] without waiting: the write is applied and its durability returned, or
    /// `None` (nothing written) when the engine would stall it.
    fn store_nowait(&self, key: &str, versions: &Siblings) -> Result<Option<Durable>> {
        let (b, bytes) = Self::batch(key, versions);
        match self.db.write_nowait(b, &WriteOptions::default()) {
            Ok(Submitted::Applied(durable)) => Ok(Some(durable)),
            Ok(Submitted::WouldStall(_)) => Ok(None),
            Err(e) => Err(Self::write_error(e, key, versions, bytes)),
        }
    }

    /// Merges; returns the result, whether it changed what was stored, and its durability.
    fn merge(&self, key: &str, incoming: &Siblings) -> Result<(Siblings, bool, Durable)> {
        self.change(key, &|inner, current| inner.merged(current, incoming))
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(String, Siblings)>, bool)> {
        let end = if end.is_empty() || end > USER_KEYS_END {
            USER_KEYS_END
        } else {
            end
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in self.db.range(start..end)? {
            let (k, v) = item?;
            if out.len() == limit || (!out.is_empty() && bytes + k.len() + v.len() > max_bytes) {
                return Ok((out, true));
            }
            bytes += k.len() + v.len();
            let key = String::from_utf8_lossy(&k).into_owned();
            let versions = Self::decode(&key, &v)?;
            out.push((key, versions));
        }
        Ok((out, false))
    }

    fn index_page(
        &self,
        ranges: &RangeSet,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<IndexEntry>, bool)> {
        let mut out = Vec::new();
        for &(lo, hi) in ranges.intervals() {
            if after.is_some_and(|c| c.token > hi) {
                continue;
            }
            let start = match after {
                Some(c) if c.token >= lo => Bound::Excluded(index_key(c.token, &c.key)),
                _ => Bound::Included(index_key(lo, "")),
            };
            let end = match hi.checked_add(1) {
                Some(next) => Bound::Excluded(index_key(next, "")),
                None => Bound::Unbounded,
            };
            let iter = self.db.range((
                start.as_ref().map(Vec::as_slice),
                end.as_ref().map(Vec::as_slice),
            ))?;
            for item in iter {
                let (k, v) = item?;
                if out.len() == limit {
                    return Ok((out, true));
                }
                if let Some(e) = parse_index(&k, &v) {
                    out.push(e);
                }
            }
        }
        Ok((out, false))
    }

    fn for_each_indexed(&self, ranges: &RangeSet, mut f: impl FnMut(IndexEntry)) -> Result<()> {
        for &(lo, hi) in ranges.intervals() {
            let start = index_key(lo, "");
            let end = hi.checked_add(1).map(|next| index_key(next, ""));
            let upper = match &end {
                Some(e) => Bound::Excluded(e.as_slice()),
                None => Bound::Unbounded,
            };
            for item in self.db.range((Bound::Included(start.as_slice()), upper))? {
                let (k, v) = item?;
                if let Some(e) = parse_index(&k, &v) {
                    f(e);
                }
            }
        }
        Ok(())
    }

    /// Writes the index entry of every user key, then the marker.
    fn rebuild_index(&self) -> Result<usize> {
        let mut n = 0;
        let mut batch = WriteBatch::new();
        for item in self.db.range(&b""[..]..USER_KEYS_END)? {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let versions = Self::decode(&key, &v)?;
            batch.put(
                &index_key(key_token(key.as_bytes()), &key),
                &index_value(&versions),
            );
            n += 1;
            if batch.size_bytes() > 4 << 20 {
                self.db
                    .write(std::mem::take(&mut batch), &WriteOptions::default())?;
            }
        }
        batch.put(INDEX_MARKER, b"1");
        self.db.write(batch, &WriteOptions { sync: true })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
