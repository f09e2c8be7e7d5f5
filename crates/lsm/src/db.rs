//! The database: the write path (group commit), the read path, and the background workers.
//!
//! # State
//! The readable state is a [`SuperVersion`]: the active memtable, the immutable memtables and the
//! current [`Version`] of table files, behind an `Arc` that readers clone and then read without
//! locks. Writers change it by building the next one and swapping it in under a short write lock.
//!
//! # Writes
//! A writer applies its batch on its own thread, under the WAL lock: it assigns the batch's
//! sequence numbers, appends it to the WAL, inserts it into the memtable and publishes the new
//! last sequence number (a few microseconds). A reader uses the published sequence number as its
//! snapshot, so it sees whole batches or nothing.
//!
//! Durability is a separate step (group commit): a batch that must be synced gets a [`Durable`]
//! for its last sequence number, which resolves once an `fdatasync` that started after the
//! append has finished. One sync covers every batch appended before it began, so concurrent
//! writers share it. [`Db::write`] waits for it on the caller's thread (running the sync itself
//! when none is under way); [`Db::write_nowait`] hands the wait to the caller as a future,
//! resolved by the `distkv-wal-sync` thread, so an async caller parks no thread per write.
//! Because the WAL is a log, a batch is durable only after every batch appended before it is: a
//! write that read an unsynced one (a read-modify-write) is never durable without it.
//!
//! A batch is visible to readers before it is durable. A reader may therefore see a write whose
//! sync is still running; if the machine crashes before it ends, that write (never acknowledged
//! to its writer) is gone.
//!
//! # Backpressure
//! When the active memtable is full the leader switches to a new one and a new WAL file. When the
//! immutable memtables reach `max_memtable_memory`, or L0 reaches `l0_stop_trigger` files, the
//! leader waits for the background workers; past `l0_slowdown_trigger` each group is delayed by a
//! millisecond. Memory for memtables is therefore bounded.
//!
//! # Recovery
//! Open reads the manifest, opens the tables it names, replays WAL files not yet flushed, writes
//! what they held to an L0 table, records the result in a new manifest, and only then deletes the
//! replayed logs and any file the manifest does not name.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::batch::{WriteBatch, for_each_entry};
use crate::cache::new_block_cache;
use crate::compaction::{self, CompactionTask, FileSummary};
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::iter::{BoxedIter, DbIterator, InternalIterator, MergingIterator};
use crate::log::{LogWriter, TailMode, read_log};
use crate::memtable::MemTable;
use crate::options::{CompactionStyle, Options, SyncPolicy, WriteOptions};
use crate::sst::bloom;
use crate::sst::builder::{BuildOptions, TableBuilder};
use crate::sst::reader::{LevelIter, Table, TableContext};
use crate::stats::{LevelStats, Stats, StatsInner};
use crate::types::{self, SeqNo, ValueKind};
use crate::version::{self, Manifest, Version, VersionEdit};

/// The readable state of the engine at one moment.
struct SuperVersion {
    mem: Arc<MemTable>,
    /// Newest first.
    imms: Vec<Arc<MemTable>>,
    version: Arc<Version>,
}

/// The WAL and sequence numbers, owned by the current leader.
struct WalState {
    writer: LogWriter,
    last_seq: SeqNo,
    last_sync: Instant,
    dirty: bool,
}

/// Group commit: how far the WAL is synced, who waits for more, and whether a sync runs.
///
/// Writers touch it as little as they can: how far the WAL is synced and how far syncing is
/// asked for are also kept in atomics ([`Shared::synced_seq`], [`Shared::sync_requested`]),
/// so that asking for a sync while the sync thread is busy, and seeing one's write durable,
/// take no lock. Under load many writers and the sync thread would otherwise queue on this
/// mutex several times per write.
#[derive(Default)]
struct SyncState {
    /// Every batch with sequence numbers at or below this is durable (mirrored, only ever
    /// raised under this lock, in [`Shared::synced_seq`]).
    synced: SeqNo,
    /// A sync round is running (on the sync thread or a blocking writer).
    syncing: bool,
    /// A sync failed: every waiter gets this error, and no sync is tried again.
    failed: Option<Error>,
    /// The engine is closing: the sync thread ends once nothing is requested.
    stop: bool,
    /// Futures waiting, by (sequence number, waiter id).
    waiters: BTreeMap<(SeqNo, u64), Waker>,
    next_waiter: u64,
}

impl SyncState {
    /// Records that everything up to `seq` is durable, in this state and in its `mirror`, and
    /// takes out the waiters it covers, all under the lock: a writer that sees the mirror
    /// covering its batch leaves its waiter (if any) to this, and need not take the lock to
    /// remove it. Returns the wakers to wake (outside the lock).
    fn advance(&mut self, seq: SeqNo, mirror: &AtomicU64) -> Vec<Waker> {
        self.synced = self.synced.max(seq);
        mirror.store(self.synced, Ordering::Release);
        let later = self.waiters.split_off(&(self.synced + 1, 0));
        std::mem::replace(&mut self.waiters, later)
            .into_values()
            .collect()
    }

    fn fail(&mut self, e: &Error) -> Vec<Waker> {
        self.failed.get_or_insert_with(|| duplicate(e));
        std::mem::take(&mut self.waiters).into_values().collect()
    }
}

/// What [`Db::write_nowait`] did with a batch.
#[must_use]
pub enum Submitted {
    /// Applied and visible; durable once the [`Durable`] resolves.
    Applied(Durable),
    /// Not applied: the engine must wait for a flush or compaction before taking it (a write
    /// stall), which would block the caller. Write it with [`Db::write`] on a thread that may
    /// block.
    WouldStall(WriteBatch),
}

/// The durability of an applied batch: a future (and a blocking [`Durable::wait`]) that
/// resolves once the batch is synced as the sync policy and its [`WriteOptions`] ask, or fails
/// when the sync fails. Dropping it does not undo the write.
#[must_use]
pub struct Durable {
    shared: Arc<Shared>,
    /// The sequence number to see synced; 0 when nothing needs syncing.
    seq: SeqNo,
    /// Set once registered as a waiter.
    waiter: Option<u64>,
}

impl Durable {
    /// Whether the batch is already durable (or its sync failed: see [`Durable::wait`]).
    pub fn is_done(&self) -> bool {
        if self.shared.synced_seq.load(Ordering::Acquire) >= self.seq {
            return true;
        }
        let st = self.shared.sync.lock();
        st.synced >= self.seq || st.failed.is_some()
    }

    /// Blocks until the batch is durable, running the sync on this thread when no other sync
    /// is under way.
    pub fn wait(self) -> Result<()> {
        let s = &*self.shared;
        loop {
            {
                let mut st = s.sync.lock();
                if st.synced >= self.seq {
                    return Ok(());
                }
                if let Some(e) = &st.failed {
                    return Err(duplicate(e));
                }
                if s.crashed.load(Ordering::Acquire) {
                    return Err(Error::Closed);
                }
                if st.syncing || s.syncs_held.load(Ordering::Acquire) {
                    s.synced_cv.wait(&mut st);
                    continue;
                }
            }
            s.sync_round();
        }
    }
}

impl std::future::Future for Durable {
    type Output = Result<()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        let this = &mut *self;
        // Durable already: no lock. A waiter registered before is taken out by the advance
        // that raised the mirror past it, so there is nothing for `drop` to remove.
        if this.shared.synced_seq.load(Ordering::Acquire) >= this.seq {
            this.waiter = None;
            return std::task::Poll::Ready(Ok(()));
        }
        let mut st = this.shared.sync.lock();
        if st.synced >= this.seq {
            this.waiter = None;
            return std::task::Poll::Ready(Ok(()));
        }
        if let Some(e) = &st.failed {
            // A failure takes out every waiter too.
            this.waiter = None;
            return std::task::Poll::Ready(Err(duplicate(e)));
        }
        let id = match this.waiter {
            Some(id) => id,
            None => {
                st.next_waiter += 1;
                this.waiter = Some(st.next_waiter);
                st.next_waiter
            }
        };
        st.waiters.insert((this.seq, id), cx.waker().clone());
        std::task::Poll::Pending
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        if let Some(id) = self.waiter {
            self.shared.sync.lock().waiters.remove(&(self.seq, id));
        }
    }
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").field("seq", &self.seq).finish()
    }
}

/// Coordination with the background workers.
#[derive(Default)]
struct Background {
    stop: bool,
    error: Option<String>,
    compaction_running: bool,
    /// Bumped after every flush and compaction so waiters can tell progress from spurious wakeups.
    progress: u64,
}

/// Everything the handle and the workers share.
struct Shared {
    dir: PathBuf,
    opts: Options,
    state: RwLock<Arc<SuperVersion>>,
    visible_seq: AtomicU64,
    next_file: AtomicU64,
    wal: Mutex<WalState>,
    /// Set while a writer switches memtables under the `wal` lock: non-waiting writers go
    /// elsewhere rather than wait for it.
    switching: AtomicBool,
    /// Lock order: `wal` before `sync` when both are held.
    sync: Mutex<SyncState>,
    /// `SyncState::synced`, readable without the lock.
    synced_seq: AtomicU64,
    /// The highest sequence number a writer waits to see synced; raised without the lock.
    sync_requested: AtomicU64,
    /// Set by the sync thread, under the `sync` lock, before it looks at `sync_requested` one
    /// last time and waits; a writer that raises `sync_requested` and then finds it set takes
    /// the lock and wakes it. (Both sides store, then load the other's, sequentially
    /// consistent: at least one sees the other, so no request is left unsynced.)
    sync_idle: AtomicBool,
    /// Set by [`Db::crash`]: no sync runs again.
    crashed: AtomicBool,
    /// Set by [`Db::hold_syncs`]: a sync round runs only when [`Db::sync_held`] asks...
    syncs_held: AtomicBool,
    /// ...and this is called whenever a sync is asked for meanwhile.
    sync_hook: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Wakes the sync thread when a sync is requested.
    sync_cv: Condvar,
    /// Wakes blocking writers when a sync round ends.
    synced_cv: Condvar,
    /// Held while a manifest edit is written and its version installed.
    manifest: Mutex<Manifest>,
    /// Held by whoever runs a compaction (the worker or `compact_range`).
    compaction_lock: Mutex<()>,
    bg: Mutex<Background>,
    bg_cv: Condvar,
    recycled_wals: Mutex<Vec<PathBuf>>,
    /// Held by a checkpoint (two into the same place would share the partial directory).
    checkpoint_lock: Mutex<()>,
    /// Set while the tables' indexes and filters leave the block cache less than its floor.
    over_memory: AtomicBool,
    ctx: TableContext,
    stats: Arc<StatsInner>,
}

/// An open database. Cheap to clone; all clones share one engine, which closes when the last
/// clone is dropped or [`Db::close`] is called.
#[derive(Clone)]
pub struct Db {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
    _lock: File,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.handle.shared.dir)
            .finish()
    }
}

/// What [`Db::checkpoint`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The checkpoint's directory.
    pub path: PathBuf,
    /// Table files in it.
    pub tables: usize,
    /// Their total size.
    pub bytes: u64,
    /// Every write with a sequence number up to the last one acknowledged before the call is
    /// in it; this is the sequence number it continues from (writes made during the call may
    /// be below it and missing).
    pub sequence: SeqNo,
}

/// A consistent read-only view of the database at one moment.
pub struct Snapshot {
    sv: Arc<SuperVersion>,
    seq: SeqNo,
    shared: Arc<Shared>,
}

impl Snapshot {
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.shared.get_at(&self.sv, self.seq, key)
    }

    pub fn range<'a>(&self, range: impl RangeBounds<&'a [u8]>) -> Result<DbIterator> {
        Ok(self
            .shared
            .iter_at(Arc::clone(&self.sv), self.seq, bounds(range)))
    }

    /// The sequence number this snapshot reads at.
    pub fn sequence(&self) -> SeqNo {
        self.seq
    }
}

fn bounds<'a>(range: impl RangeBounds<&'a [u8]>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let own = |b: Bound<&&[u8]>| match b {
        Bound::Included(k) => Bound::Included(k.to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}

/// The smallest key greater than every key starting with `prefix`, if there is one.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl Db {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).at(&dir)?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked(dir)),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let stats = Arc::new(StatsInner::default());
        let ctx = TableContext {
            cache: Arc::new(new_block_cache(opts.block_cache_bytes)),
            stats: Arc::clone(&stats),
        };
        let shared = recover(&dir, opts, ctx, stats)?;
        shared.fit_block_cache(&shared.current().version);
        let shared = Arc::new(shared);
        let mut threads = Vec::new();
        for (name, work) in [
            ("distkv-flush", flush_worker as fn(&Shared)),
            ("distkv-compact", compaction_worker as fn(&Shared)),
            ("distkv-wal-sync", sync_worker as fn(&Shared)),
        ] {
            let s = Arc::clone(&shared);
            let t = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    // A panic in background work must not leave writers waiting for progress
                    // that never comes: it stops writes with an error instead.
                    let run = std::panic::AssertUnwindSafe(|| work(&s));
                    if std::panic::catch_unwind(run).is_err() {
                        s.set_background_error(&Error::Background(format!(
                            "the {name} thread panicked"
                        )));
                    }
                })
                .map_err(|e| Error::io(&dir, e))?;
            threads.push(t);
        }
        Ok(Db {
            handle: Arc::new(Handle {
                shared,
                threads: Mutex::new(threads),
                closed: AtomicBool::new(false),
                _lock: lock,
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    fn check_open(&self) -> Result<()> {
        if self.handle.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_opt(key, value, &WriteOptions::default())
    }

    pub fn put_opt(&self, key: &[u8], value: &[u8], opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::with_capacity(WriteBatch::entry_bytes(key.len(), value.len()));
        b.put(key, value);
        self.write(b, opts)
    }

    pub fn delete(&self, key: &[u8]) -> Result<()> {
        self.delete_opt(key, &WriteOptions::default())
    }

    pub fn delete_opt(&self, key: &[u8], opts: &WriteOptions) -> Result<()> {
        let mut b = WriteBatch::with_capacity(WriteBatch::entry_bytes(key.len(), 0));
        b.delete(key);
        self.write(b, opts)
    }

    /// Applies a batch atomically and returns once it is durable as the sync policy and `opts`
    /// ask. Blocks while the engine stalls writes (flushes or compactions behind) and while the
    /// WAL syncs.
    pub fn write(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<()> {
        self.check_open()?;
        let s = self.shared();
        s.validate_batch(&batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let r = match self.submit(batch, opts.sync, true) {
            Ok(Submitted::Applied(durable)) => durable.wait(),
            Ok(Submitted::WouldStall(_)) => unreachable!("a write that may wait never stalls out"),
            Err(e) => Err(e),
        };
        s.stats.write_latency.record(started.elapsed());
        r
    }

    /// [`Db::write`] without the wait for the sync: blocks while the engine makes room for the
    /// batch (a stall, a memtable switch), applies it, and returns its [`Durable`] to await (or
    /// [`Durable::wait`] on) before acknowledging it. For a thread that may block for room but
    /// should not be parked for a sync other writers' group commit will make anyway.
    pub fn write_applied(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<Durable> {
        self.check_open()?;
        let s = self.shared();
        s.validate_batch(&batch)?;
        if batch.is_empty() {
            return Ok(Durable {
                shared: Arc::clone(&self.handle.shared),
                seq: 0,
                waiter: None,
            });
        }
        let started = Instant::now();
        let r = match self.submit(batch, opts.sync, true) {
            Ok(Submitted::Applied(durable)) => Ok(durable),
            Ok(Submitted::WouldStall(_)) => unreachable!("a write that may wait never stalls out"),
            Err(e) => Err(e),
        };
        s.stats.write_latency.record(started.elapsed());
        r
    }

    /// Applies a batch atomically on this thread without blocking for long: no sync, no stall,
    /// no file created. The batch is visible to reads when this returns; [`Submitted::Applied`]
    /// holds a [`Durable`] to await before acknowledging it. When the engine would have to wait
    /// first (for background work, for a full memtable to be switched, which syncs the WAL and
    /// starts a new one, or for a writer doing that switch), nothing is applied and the batch
    /// comes back in [`Submitted::WouldStall`]: write it with [`Db::write`] where blocking is
    /// allowed.
    pub fn write_nowait(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<Submitted> {
        self.check_open()?;
        let s = self.shared();
        s.validate_batch(&batch)?;
        if batch.is_empty() {
            return Ok(Submitted::Applied(self.durable_now()));
        }
        self.submit(batch, opts.sync, false)
    }

    /// A [`Durable`] for everything visible now that must be synced: every batch under the
    /// `EveryCommit` policy, otherwise the batches written with [`WriteOptions::sync`]. A caller
    /// that acknowledges what it read, without writing, awaits this so that it never
    /// acknowledges a write whose sync is still to come.
    pub fn durable_now(&self) -> Durable {
        let s = self.shared();
        let seq = if s.opts.sync == SyncPolicy::EveryCommit {
            s.visible_seq.load(Ordering::Acquire)
        } else {
            s.sync_requested.load(Ordering::SeqCst)
        };
        s.request_sync(seq);
        Durable {
            shared: Arc::clone(&self.handle.shared),
            seq,
            waiter: None,
        }
    }

    fn submit(&self, batch: WriteBatch, sync: bool, may_wait: bool) -> Result<Submitted> {
        let s = self.shared();
        let seq = match s.apply(batch, sync, may_wait)? {
            Ok(seq) => seq,
            Err(batch) => return Ok(Submitted::WouldStall(batch)),
        };
        Ok(Submitted::Applied(Durable {
            shared: Arc::clone(&self.handle.shared),
            seq,
            waiter: None,
        }))
    }

    /// The value of `key` if the memtables, the tables' filters and the block cache can answer
    /// without reading the disk; [`Cached::NeedsIo`] otherwise (then use [`Db::get`] where
    /// blocking is allowed).
    pub fn get_cached(&self, key: &[u8]) -> Result<Cached> {
        self.check_open()?;
        let s = self.shared();
        s.validate_key(key)?;
        let sv = s.current();
        let seq = s.visible_seq.load(Ordering::Acquire);
        match s.lookup(&sv, seq, key, false)? {
            Probe::NeedsIo => Ok(Cached::NeedsIo),
            found => Ok(Cached::Hit(s.found_value(found))),
        }
    }

    /// The value of `key`, or `None` if it has none.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.check_open()?;
        let s = self.shared();
        s.validate_key(key)?;
        let started = Instant::now();
        // The state first, then the sequence number (as RocksDB does): the other order could
        // pair an old sequence number with a state where a flush or compaction already dropped
        // the version it should see.
        let sv = s.current();
        let seq = s.visible_seq.load(Ordering::Acquire);
        let r = s.get_at(&sv, seq, key);
        s.stats.get_latency.record(started.elapsed());
        r
    }

    /// A consistent view that later writes do not change.
    pub fn snapshot(&self) -> Snapshot {
        let s = &self.handle.shared;
        let sv = s.current();
        let seq = s.visible_seq.load(Ordering::Acquire);
        Snapshot {
            sv,
            seq,
            shared: Arc::clone(s),
        }
    }

    /// Iterates the live keys in `range` in order, over a snapshot taken now.
    pub fn range<'a>(&self, range: impl RangeBounds<&'a [u8]>) -> Result<DbIterator> {
        self.check_open()?;
        let s = self.shared();
        let sv = s.current();
        let seq = s.visible_seq.load(Ordering::Acquire);
        Ok(s.iter_at(sv, seq, bounds(range)))
    }

    /// Iterates the live keys that start with `prefix`.
    pub fn prefix(&self, prefix: &[u8]) -> Result<DbIterator> {
        self.check_open()?;
        let s = self.shared();
        let sv = s.current();
        let seq = s.visible_seq.load(Ordering::Acquire);
        let upper = prefix_successor(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        Ok(s.iter_at(sv, seq, (Bound::Included(prefix.to_vec()), upper)))
    }

    /// Writes the active memtable to an SSTable and waits until every memtable is flushed.
    pub fn flush(&self) -> Result<()> {
        self.check_open()?;
        self.shared().flush_all()
    }

    /// Compacts every table holding keys in `range` down to the deepest level with data, so that
    /// shadowed versions and expired tombstones in that range are gone afterwards.
    pub fn compact_range<'a>(&self, range: impl RangeBounds<&'a [u8]>) -> Result<()> {
        self.check_open()?;
        let s = self.shared();
        s.flush_all()?;
        s.compact_range(bounds(range))
    }

    /// Blocks until no compaction is due or running.
    pub fn wait_for_compactions(&self) -> Result<()> {
        self.check_open()?;
        let s = self.shared();
        let mut bg = s.bg.lock();
        loop {
            if let Some(e) = &bg.error {
                return Err(Error::Background(e.clone()));
            }
            let due = compaction::pick(&s.summaries(&s.current().version), &s.opts).is_some();
            if !bg.compaction_running && !due {
                return Ok(());
            }
            s.bg_cv.notify_all();
            s.bg_cv.wait_for(&mut bg, Duration::from_millis(50));
        }
    }

    /// Writes a consistent copy of the database to `dest`, which must not exist: every write
    /// acknowledged before the call, and perhaps some made during it, in whole batches.
    ///
    /// The memtables are flushed first; the copy is then the current set of tables, hard-linked
    /// (copied where `dest` is on another file system), and a fresh manifest naming them. It is
    /// built in `<dest>.partial` and renamed into place when complete and synced, so a crash
    /// never leaves a half-written checkpoint under `dest`. [`Db::open`] opens it like any
    /// database. The database stays fully usable meanwhile; linked files cost no space until
    /// compaction replaces them in the database.
    pub fn checkpoint(&self, dest: impl AsRef<Path>) -> Result<Checkpoint> {
        self.check_open()?;
        self.shared().checkpoint(dest.as_ref())
    }

    pub fn stats(&self) -> Stats {
        self.shared().stats()
    }

    /// The directory of this database.
    pub fn path(&self) -> &Path {
        &self.shared().dir
    }

    /// Stops the background workers and syncs the WAL. Later calls on any clone return
    /// [`Error::Closed`]. Dropping the last clone closes too.
    pub fn close(&self) -> Result<()> {
        self.handle.close()
    }

    /// For simulations: the machine dies now. What the process held and had not written is
    /// lost — with [`SyncPolicy::EveryCommit`], every write whose sync had not started, none
    /// of them acknowledged — and no sync runs again: writers waiting for one get
    /// [`Error::Closed`], and so does every later call. A flush or compaction under way ends
    /// first (as if the power failed just after it). Open the directory again to recover.
    ///
    /// Appends that are not synced at once (the interval and never policies) went to the
    /// page cache through the WAL's mapping and stay in the file: they survive, as they would
    /// a crash of the process but not of the machine.
    #[doc(hidden)]
    pub fn crash(&self) {
        self.handle.crash()
    }

    /// For simulations: from now on no sync of the WAL runs by itself (not on the sync thread,
    /// not on a writer blocked in [`Db::write`], not on the interval timer); writers wait until
    /// [`Db::sync_held`] runs one, and `on_request` is called (on the writer's thread) each
    /// time a writer asks for a sync beyond what was asked before. With [`SyncPolicy::EveryCommit`] a simulation then decides
    /// when each group commit happens, on its own thread and clock, and a [`Db::crash`] between
    /// two of them loses exactly what was applied since the last (as a machine crash would), so
    /// a seed replays exactly. Closing still syncs. A memtable switch syncs too (it starts a new
    /// WAL file): give a simulation a memtable its writes do not fill.
    #[doc(hidden)]
    pub fn hold_syncs(&self, on_request: impl Fn() + Send + Sync + 'static) {
        let s = self.shared();
        let _ = s.sync_hook.set(Box::new(on_request));
        s.syncs_held.store(true, Ordering::Release);
    }

    /// For simulations: how many entries (each put or delete of a batch) are applied and not
    /// yet synced; a [`Db::crash`] now would lose them.
    #[doc(hidden)]
    pub fn unsynced_entries(&self) -> u64 {
        let s = self.shared();
        s.visible_seq
            .load(Ordering::Acquire)
            .saturating_sub(s.synced_seq.load(Ordering::Acquire))
    }

    /// For simulations holding syncs ([`Db::hold_syncs`]): runs one sync round on this thread
    /// now, covering every batch applied before it, and wakes the writers it made durable.
    /// Returns the error of a sync that failed (the engine then takes no more writes).
    #[doc(hidden)]
    pub fn sync_held(&self) -> Result<()> {
        self.check_open()?;
        let s = self.shared();
        if s.visible_seq.load(Ordering::Acquire) > s.synced_seq.load(Ordering::Acquire) {
            s.sync_round();
        }
        match &s.sync.lock().failed {
            Some(e) => Err(duplicate(e)),
            None => Ok(()),
        }
    }
}

impl Handle {
    /// Tells the flush, compaction and sync workers to stop, and waits until they have.
    fn stop_workers(&self) {
        let s = &self.shared;
        {
            let mut bg = s.bg.lock();
            bg.stop = true;
            s.bg_cv.notify_all();
        }
        {
            let mut st = s.sync.lock();
            st.stop = true;
            s.sync_cv.notify_all();
        }
        for t in self.threads.lock().drain(..) {
            if t.join().is_err() {
                tracing::error!("a background worker panicked");
            }
        }
    }

    fn crash(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let s = &self.shared;
        s.crashed.store(true, Ordering::Release);
        self.stop_workers();
        // A round running on a blocking writer's thread ends (its write reached the disk, or
        // failed): either is a state a crash can leave.
        {
            let mut st = s.sync.lock();
            while st.syncing {
                s.synced_cv.wait(&mut st);
            }
        }
        s.wal.lock().writer.abandon();
        let wake = s.sync.lock().fail(&Error::Closed);
        s.synced_cv.notify_all();
        wake.into_iter().for_each(Waker::wake);
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let s = &self.shared;
        self.stop_workers();
        // Wait for any writer in flight, then make the WAL durable; waiters resolve either way.
        let mut wal = s.wal.lock();
        if s.opts.sync != SyncPolicy::Never || wal.dirty {
            if let Err(e) = wal.writer.sync() {
                let wake = s.sync.lock().fail(&e);
                s.synced_cv.notify_all();
                wake.into_iter().for_each(Waker::wake);
                return Err(e);
            }
            wal.dirty = false;
        }
        s.synced_under_lock(&wal);
        Ok(())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the database failed");
        }
    }
}

impl Shared {
    fn current(&self) -> Arc<SuperVersion> {
        Arc::clone(&self.state.read())
    }

    fn wal_map_bytes(&self) -> u64 {
        wal_map_bytes(&self.opts)
    }

    fn validate_key(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if key.len() > self.opts.max_key_bytes {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: self.opts.max_key_bytes,
            });
        }
        Ok(())
    }

    fn validate_batch(&self, b: &WriteBatch) -> Result<()> {
        if b.max_key_len() == usize::MAX {
            return Err(Error::EmptyKey);
        }
        if b.max_key_len() > self.opts.max_key_bytes {
            return Err(Error::KeyTooLarge {
                len: b.max_key_len(),
                max: self.opts.max_key_bytes,
            });
        }
        if b.max_value_len() > self.opts.max_value_bytes {
            return Err(Error::ValueTooLarge {
                len: b.max_value_len(),
                max: self.opts.max_value_bytes,
            });
        }
        if b.size_bytes() > self.opts.max_batch_bytes {
            return Err(Error::BatchTooLarge {
                bytes: b.size_bytes(),
                max: self.opts.max_batch_bytes,
            });
        }
        Ok(())
    }

    // ---- write path ----

    /// Applies a batch under the WAL lock: sequence numbers, WAL append, memtable, publish.
    /// Returns the sequence number to see synced before the batch is durable (0: none needed),
    /// or the batch when applying it would have to wait and `may_wait` is false.
    fn apply(
        &self,
        mut batch: WriteBatch,
        sync: bool,
        may_wait: bool,
    ) -> Result<std::result::Result<SeqNo, WriteBatch>> {
        // A writer switching memtables holds the WAL for file creation and syncs
        // (milliseconds): a non-waiting writer goes elsewhere rather than wait behind it.
        if !may_wait && self.switching.load(Ordering::Acquire) {
            return Ok(Err(batch));
        }
        let mut wal = self.wal.lock();
        if !self.make_room(&mut wal, may_wait)? {
            return Ok(Err(batch));
        }
        // Only tombstones need the time; skip the clock read for put-only batches.
        let now = if batch.has_deletes() {
            self.opts.clock.now_millis()
        } else {
            0
        };
        let first_seq = wal.last_seq + 1;
        batch.seal(first_seq, now);
        let last_seq = first_seq + batch.len() as u64 - 1;
        let need_sync = sync || self.opts.sync == SyncPolicy::EveryCommit;
        let interval_due =
            matches!(self.opts.sync, SyncPolicy::Interval(d) if wal.last_sync.elapsed() >= d);
        // A failed append leaves the WAL in an unknown state (the record may be on disk in
        // part, and the sequence numbers must not be reused): stop taking writes, as RocksDB
        // does, until the database is reopened and replays what the WAL really holds.
        let written = match wal.writer.append([batch.payload()], need_sync) {
            Ok(n) => n,
            Err(e) => {
                self.set_background_error(&e);
                return Err(e);
            }
        };
        wal.dirty = true;
        let mem = Arc::clone(&self.state.read().mem);
        let (mut puts, mut deletes) = (0, 0);
        // The batch was encoded by us and validated; it decodes.
        for_each_entry(batch.payload(), |e| match e.kind {
            ValueKind::Put => {
                puts += 1;
                mem.insert(e.key, e.seq, e.kind, e.value);
            }
            ValueKind::Delete => {
                deletes += 1;
                mem.insert(e.key, e.seq, e.kind, &types::tombstone_value(now));
            }
        })
        .ok_or(Error::Background("a sealed batch failed to decode".into()))?;
        wal.last_seq = last_seq;
        self.visible_seq.store(last_seq, Ordering::Release);
        drop(wal);
        let st = &self.stats;
        st.add(&st.wal_bytes_written, written);
        st.add(&st.user_bytes_written, batch.size_bytes() as u64);
        st.add(&st.puts, puts);
        st.add(&st.deletes, deletes);
        st.add(&st.batches, 1);
        if need_sync {
            self.request_sync(last_seq);
            Ok(Ok(last_seq))
        } else {
            if interval_due {
                // The interval policy's sync runs off the write path.
                self.request_sync(last_seq);
            }
            Ok(Ok(0))
        }
    }

    /// Asks the sync thread to sync the WAL up to `seq` (nothing for 0 or what is synced).
    fn request_sync(&self, seq: SeqNo) {
        if seq <= self.synced_seq.load(Ordering::Acquire) {
            return;
        }
        if self.sync_requested.fetch_max(seq, Ordering::SeqCst) >= seq {
            // Asked for already, by a writer that saw to the wake-up.
            return;
        }
        if self.syncs_held.load(Ordering::Acquire) {
            // A simulation runs the sync when it decides to.
            if let Some(hook) = self.sync_hook.get() {
                hook();
            }
            return;
        }
        if self.sync_idle.load(Ordering::SeqCst) {
            // Under the lock: the sync thread is either waiting (and is woken) or has not
            // yet looked at `sync_requested` (and sees this request).
            let _st = self.sync.lock();
            self.sync_cv.notify_one();
        }
    }

    /// Runs one sync of the WAL, covering every batch appended before it starts, unless one is
    /// running already. Wakes the waiters it makes durable.
    fn sync_round(&self) {
        {
            let mut st = self.sync.lock();
            if st.syncing || st.failed.is_some() || self.crashed.load(Ordering::Acquire) {
                return;
            }
            st.syncing = true;
        }
        // The round takes the records appended for it and writes them (one `pwrite` for the
        // whole group) and syncs without the WAL lock: writers go on appending meanwhile.
        let (seq, pending) = {
            let mut wal = self.wal.lock();
            wal.dirty = false;
            wal.last_sync = Instant::now();
            (wal.last_seq, wal.writer.begin_sync())
        };
        let result = pending.run();
        let wake = {
            let mut st = self.sync.lock();
            st.syncing = false;
            match &result {
                Ok(()) => st.advance(seq, &self.synced_seq),
                Err(e) => st.fail(e),
            }
        };
        match result {
            Ok(()) => self.stats.add(&self.stats.wal_syncs, 1),
            // The WAL's state on disk is unknown: stop taking writes.
            Err(e) => self.set_background_error(&e),
        }
        self.synced_cv.notify_all();
        // The sync thread may have waited for this round to end.
        self.sync_cv.notify_one();
        for w in wake {
            w.wake();
        }
    }

    /// Records a sync made under the WAL lock (when switching WAL files or closing).
    fn synced_under_lock(&self, wal: &WalState) {
        let wake = self.sync.lock().advance(wal.last_seq, &self.synced_seq);
        self.synced_cv.notify_all();
        for w in wake {
            w.wake();
        }
    }

    /// Switches to a new memtable when the active one is full, waiting for flushes and
    /// compactions when they fall too far behind.
    /// Returns false, having waited for nothing, when it would have to wait and `may_wait` is
    /// false.
    fn make_room(&self, wal: &mut WalState, may_wait: bool) -> Result<bool> {
        let mut slowed = false;
        loop {
            let sv = self.current();
            {
                let bg = self.bg.lock();
                if let Some(e) = &bg.error {
                    return Err(Error::Background(e.clone()));
                }
                if bg.stop {
                    return Err(Error::Closed);
                }
            }
            let l0 = sv.version.levels[0].len();
            if l0 >= self.opts.l0_slowdown_trigger && !slowed && l0 < self.opts.l0_stop_trigger {
                if !may_wait {
                    return Ok(false);
                }
                slowed = true;
                self.stats.add(&self.stats.write_slowdowns, 1);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let full = sv.mem.approx_bytes() >= self.opts.memtable_bytes;
            let too_many_imms = sv.imms.len() >= self.opts.max_immutable_memtables();
            let l0_stop = l0 >= self.opts.l0_stop_trigger;
            if (full && too_many_imms) || l0_stop {
                if !may_wait {
                    return Ok(false);
                }
                self.stall_until_progress()?;
                continue;
            }
            if full {
                if !may_wait {
                    return Ok(false);
                }
                self.switching.store(true, Ordering::Release);
                let switched = self.switch_memtable(wal, &sv);
                self.switching.store(false, Ordering::Release);
                switched?;
            }
            return Ok(true);
        }
    }

    /// Keeps memtables, block cache and the open tables' indexes and filters within
    /// `max_memory`: the cache gives way as indexes and filters grow (down to
    /// [`MIN_BLOCK_CACHE_BYTES`]) and takes its room back as they shrink. Past that floor the
    /// total is over the limit, which the statistics show and a warning says once.
    fn fit_block_cache(&self, version: &Version) {
        let pinned: usize = version.tables().map(|t| t.pinned_bytes()).sum();
        let room = self
            .opts
            .max_memory
            .saturating_sub(self.opts.max_memtable_memory)
            .saturating_sub(pinned);
        let floor = MIN_BLOCK_CACHE_BYTES.min(self.opts.block_cache_bytes);
        let capacity = self.opts.block_cache_bytes.min(room.max(floor)) as u64;
        if capacity != self.ctx.cache.capacity() {
            self.ctx.cache.set_capacity(capacity);
        }
        let over = room < floor;
        if over != self.over_memory.swap(over, Ordering::Relaxed) && over {
            tracing::warn!(
                index_and_filter_bytes = pinned,
                max_memory = self.opts.max_memory,
                "the tables' indexes and filters leave the block cache at its floor: memory is over max_memory (raise it, or use fewer bloom bits per key)"
            );
        }
    }

    /// Waits until a background job makes progress; fails when the background work has failed
    /// or the engine is closing, since no progress will come then.
    fn stall_until_progress(&self) -> Result<()> {
        let started = Instant::now();
        self.stats.add(&self.stats.write_stalls, 1);
        let mut bg = self.bg.lock();
        let seen = bg.progress;
        self.bg_cv.notify_all();
        while bg.progress == seen && bg.error.is_none() && !bg.stop {
            self.bg_cv.wait_for(&mut bg, Duration::from_millis(100));
        }
        self.stats.add(
            &self.stats.write_stall_micros,
            started.elapsed().as_micros() as u64,
        );
        // No progress will come: callers looping on this must not spin.
        if let Some(e) = &bg.error {
            return Err(Error::Background(e.clone()));
        }
        if bg.stop {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Starts a new WAL and memtable; the old memtable joins the immutable ones.
    fn switch_memtable(&self, wal: &mut WalState, sv: &SuperVersion) -> Result<()> {
        let number = self.next_file.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(version::wal_name(number));
        let recycled = self.recycled_wals.lock().pop();
        let writer = match recycled {
            Some(old) => LogWriter::recycle(&old, &path, number, self.wal_map_bytes())?,
            None => LogWriter::create(
                &path,
                number,
                self.opts.sync == SyncPolicy::EveryCommit,
                self.wal_map_bytes(),
            )?,
        };
        version::sync_dir(&self.dir)?;
        if self.opts.sync != SyncPolicy::Never || wal.dirty {
            wal.writer.sync()?;
            self.synced_under_lock(wal);
        }
        wal.writer = writer;
        wal.dirty = false;
        {
            // Read the state again under the lock: a flush may have retired an immutable memtable
            // since `sv` was taken.
            let mut state = self.state.write();
            debug_assert!(Arc::ptr_eq(&state.mem, &sv.mem));
            let mut imms = Vec::with_capacity(state.imms.len() + 1);
            imms.push(Arc::clone(&state.mem));
            imms.extend(state.imms.iter().cloned());
            *state = Arc::new(SuperVersion {
                mem: Arc::new(MemTable::new(number)),
                imms,
                version: Arc::clone(&state.version),
            });
        }
        // Notify under the lock so a worker between its check and its wait cannot miss it.
        let _bg = self.bg.lock();
        self.bg_cv.notify_all();
        Ok(())
    }

    /// Flushes every memtable holding writes made before the call, and waits for them (not
    /// for memtables filled meanwhile, which could keep it waiting under steady writes).
    fn flush_all(&self) -> Result<()> {
        // The WAL number of the newest memtable to wait for; `None` when nothing is unflushed.
        let target = {
            let mut wal = self.wal.lock();
            let sv = self.current();
            if sv.mem.is_empty() {
                sv.imms.first().map(|m| m.wal_number())
            } else {
                loop {
                    let sv = self.current();
                    if sv.imms.len() < self.opts.max_immutable_memtables() {
                        let frozen = sv.mem.wal_number();
                        self.switch_memtable(&mut wal, &sv)?;
                        break Some(frozen);
                    }
                    self.stall_until_progress()?;
                }
            }
        };
        let Some(target) = target else {
            return Ok(());
        };
        let mut bg = self.bg.lock();
        loop {
            if let Some(e) = &bg.error {
                return Err(Error::Background(e.clone()));
            }
            if bg.stop {
                return Err(Error::Closed);
            }
            if self.current().imms.iter().all(|m| m.wal_number() > target) {
                return Ok(());
            }
            self.bg_cv.notify_all();
            self.bg_cv.wait_for(&mut bg, Duration::from_millis(50));
        }
    }

    fn checkpoint(&self, dest: &Path) -> Result<Checkpoint> {
        let _one = self.checkpoint_lock.lock();
        if dest.exists() {
            return Err(Error::io(
                dest,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the checkpoint directory already exists",
                ),
            ));
        }
        let name = dest.file_name().ok_or_else(|| {
            Error::io(
                dest,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a checkpoint needs a directory name",
                ),
            )
        })?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).at(&parent)?;
        let mut partial_name = name.to_os_string();
        partial_name.push(".partial");
        let partial = parent.join(partial_name);
        // Left by a crash during an earlier checkpoint to the same place.
        match std::fs::remove_dir_all(&partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&partial, e)),
        }
        std::fs::create_dir(&partial).at(&partial)?;
        let written = self.write_checkpoint(&partial);
        if written.is_err() {
            // Its hard links would keep obsolete tables on disk.
            let _ = std::fs::remove_dir_all(&partial);
        }
        let (tables, bytes, sequence) = written?;
        std::fs::rename(&partial, dest).at(dest)?;
        version::sync_dir(&parent)?;
        Ok(Checkpoint {
            path: dest.to_path_buf(),
            tables,
            bytes,
            sequence,
        })
    }

    /// Flushes, then links the current tables into `dir` with a manifest naming them. Returns
    /// the tables, their bytes and the sequence number.
    fn write_checkpoint(&self, dir: &Path) -> Result<(usize, u64, SeqNo)> {
        self.flush_all()?;
        // The state first, then the sequence number (as in `get`). Holding the state pins its
        // tables: a compaction that replaces one meanwhile cannot delete its file.
        let sv = self.current();
        let sequence = self.visible_seq.load(Ordering::Acquire);
        let mut bytes = 0;
        let mut tables = 0;
        for t in sv.version.tables() {
            let file = version::table_name(t.number());
            link_or_copy(&self.dir.join(&file), &dir.join(&file))?;
            bytes += t.file_size();
            tables += 1;
        }
        let number = self.next_file.fetch_add(1, Ordering::SeqCst);
        let mut edit = sv.version.snapshot_edit();
        // No WAL belongs to the checkpoint: everything it holds is in its tables.
        edit.log_number = Some(number + 1);
        edit.next_file_number = Some(number + 1);
        edit.last_sequence = Some(sequence);
        drop(Manifest::create(dir, number, &edit)?);
        Ok((tables, bytes, sequence))
    }

    // ---- read path ----

    fn get_at(&self, sv: &SuperVersion, seq: SeqNo, key: &[u8]) -> Result<Option<Bytes>> {
        let found = self.lookup(sv, seq, key, true)?;
        Ok(self.found_value(found))
    }

    /// The value a finished lookup found, counted in the statistics.
    fn found_value(&self, found: Probe) -> Option<Bytes> {
        let st = &self.stats;
        st.add(&st.gets, 1);
        let value = match found {
            Probe::Found(ValueKind::Put, v) => Some(v),
            _ => None,
        };
        if let Some(v) = &value {
            st.add(&st.gets_found, 1);
            st.add(&st.user_bytes_read, v.len() as u64);
        }
        value
    }

    /// Finds the newest entry of `key` at or below `seq`. Without `io`, stops with
    /// [`Probe::NeedsIo`] where a data block would have to be read from disk.
    fn lookup(&self, sv: &SuperVersion, seq: SeqNo, key: &[u8], io: bool) -> Result<Probe> {
        if let Some((kind, v)) = sv.mem.get(key, seq) {
            return Ok(Probe::Found(kind, v));
        }
        for m in &sv.imms {
            if let Some((kind, v)) = m.get(key, seq) {
                return Ok(Probe::Found(kind, v));
            }
        }
        let hash = bloom::hash_key(key);
        for t in &sv.version.levels[0] {
            if t.covers(key) {
                match t.get(key, hash, seq, io)? {
                    Probe::Absent => {}
                    found => return Ok(found),
                }
            }
        }
        for level in &sv.version.levels[1..] {
            let i = level.partition_point(|t| types::user_key(t.largest()) < key);
            if let Some(t) = level.get(i)
                && t.covers(key)
            {
                match t.get(key, hash, seq, io)? {
                    Probe::Absent => {}
                    found => return Ok(found),
                }
            }
        }
        Ok(Probe::Absent)
    }

    fn iter_at(
        &self,
        sv: Arc<SuperVersion>,
        seq: SeqNo,
        (lower, upper): (Bound<Vec<u8>>, Bound<Vec<u8>>),
    ) -> DbIterator {
        let mut children: Vec<BoxedIter> = Vec::new();
        children.push(Box::new(sv.mem.iter()));
        for m in &sv.imms {
            children.push(Box::new(m.iter()));
        }
        for t in &sv.version.levels[0] {
            children.push(Box::new(t.iter(true)));
        }
        for level in &sv.version.levels[1..] {
            if !level.is_empty() {
                children.push(Box::new(LevelIter::new(level.clone(), true)));
            }
        }
        DbIterator::new(
            MergingIterator::new(children),
            seq,
            lower,
            upper,
            sv,
            Some(Arc::clone(&self.stats)),
        )
    }

    // ---- background work ----

    fn set_background_error(&self, e: &Error) {
        tracing::error!(error = %e, "background work failed; writes are stopped");
        let mut bg = self.bg.lock();
        bg.error.get_or_insert_with(|| e.to_string());
        self.bg_cv.notify_all();
    }

    fn bump_progress(&self) {
        let mut bg = self.bg.lock();
        bg.progress += 1;
        self.bg_cv.notify_all();
    }

    fn new_table_path(&self) -> (u64, PathBuf) {
        let number = self.next_file.fetch_add(1, Ordering::SeqCst);
        (number, self.dir.join(version::table_name(number)))
    }

    fn open_table(&self, number: u64) -> Result<Arc<Table>> {
        let path = self.dir.join(version::table_name(number));
        Ok(Arc::new(Table::open(&path, number, self.ctx.clone())?))
    }

    /// Writes the oldest immutable memtable to L0. Returns false when there was none.
    fn flush_one(&self) -> Result<bool> {
        let Some(imm) = self.current().imms.last().cloned() else {
            return Ok(false);
        };
        let table = if imm.is_empty() {
            None
        } else {
            let (number, path) = self.new_table_path();
            let mut it = imm.iter();
            it.seek_to_first();
            let mut b = TableBuilder::create(&path, BuildOptions::from_options(&self.opts))?;
            let mut last_user: Option<Vec<u8>> = None;
            while it.valid() {
                let user = types::user_key(it.key());
                // Older versions in the same memtable are shadowed; readers that need them still
                // hold the memtable itself.
                if last_user.as_deref() != Some(user) {
                    b.add(it.key(), it.value())?;
                    last_user = Some(user.to_vec());
                }
                it.next();
            }
            let (size, _) = b.finish()?;
            self.stats.add(&self.stats.flush_bytes_written, size);
            Some((number, size))
        };
        let mut manifest = self.manifest.lock();
        let sv = self.current();
        let mut edit = VersionEdit {
            // The WAL of the next-oldest memtable is the oldest one still needed.
            log_number: Some(
                sv.imms
                    .iter()
                    .rev()
                    .nth(1)
                    .map_or(sv.mem.wal_number(), |m| m.wal_number()),
            ),
            next_file_number: Some(self.next_file.load(Ordering::SeqCst)),
            last_sequence: Some(self.visible_seq.load(Ordering::Acquire)),
            ..Default::default()
        };
        let mut opened = Vec::new();
        if let Some((number, size)) = table {
            edit.added.push((0, number, size));
            opened.push(self.open_table(number)?);
        }
        let next = sv.version.apply(&edit, &opened)?;
        manifest.append(&edit)?;
        {
            let mut state = self.state.write();
            let cur = Arc::clone(&state);
            let imms = cur
                .imms
                .iter()
                .filter(|m| !Arc::ptr_eq(m, &imm))
                .cloned()
                .collect();
            *state = Arc::new(SuperVersion {
                mem: Arc::clone(&cur.mem),
                imms,
                version: Arc::new(next),
            });
            self.fit_block_cache(&state.version);
        }
        self.maybe_rotate_manifest(&mut manifest)?;
        drop(manifest);
        self.retire_wal(imm.wal_number());
        self.stats.add(&self.stats.flushes, 1);
        Ok(true)
    }

    fn retire_wal(&self, number: u64) {
        let path = self.dir.join(version::wal_name(number));
        let mut recycled = self.recycled_wals.lock();
        // Recycling (overwriting instead of appending) only speeds up synced commits.
        if self.opts.sync == SyncPolicy::EveryCommit && recycled.len() < self.opts.wal_recycle_files
        {
            recycled.push(path);
        } else if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not delete an obsolete WAL");
        }
    }

    /// Starts a fresh manifest once the current one has grown large.
    fn maybe_rotate_manifest(&self, manifest: &mut Manifest) -> Result<()> {
        if manifest.len() < 64 << 20 {
            return Ok(());
        }
        let sv = self.current();
        let number = self.next_file.fetch_add(1, Ordering::SeqCst);
        let mut edit = sv.version.snapshot_edit();
        edit.log_number = Some(
            sv.imms
                .last()
                .map_or(sv.mem.wal_number(), |m| m.wal_number()),
        );
        edit.next_file_number = Some(self.next_file.load(Ordering::SeqCst));
        edit.last_sequence = Some(self.visible_seq.load(Ordering::Acquire));
        let old = manifest.number();
        *manifest = Manifest::create(&self.dir, number, &edit)?;
        let _ = std::fs::remove_file(self.dir.join(version::manifest_name(old)));
        Ok(())
    }

    fn summaries(&self, v: &Version) -> Vec<Vec<FileSummary>> {
        v.levels
            .iter()
            .map(|l| {
                l.iter()
                    .map(|t| FileSummary {
                        number: t.number(),
                        size: t.file_size(),
                        smallest: types::user_key(t.smallest()).to_vec(),
                        largest: types::user_key(t.largest()).to_vec(),
                    })
                    .collect()
            })
            .collect()
    }

    /// Runs one compaction if one is due. Returns false when none was.
    fn compact_once(&self) -> Result<bool> {
        let _guard = self.compaction_lock.lock();
        let v = Arc::clone(&self.current().version);
        let Some(task) = compaction::pick(&self.summaries(&v), &self.opts) else {
            return Ok(false);
        };
        self.run_compaction(&v, &task)?;
        Ok(true)
    }

    fn find_tables(v: &Version, level: usize, numbers: &[u64]) -> Vec<Arc<Table>> {
        numbers
            .iter()
            .filter_map(|n| v.levels[level].iter().find(|t| t.number() == *n).cloned())
            .collect()
    }

    /// Executes `task` against version `v`; the caller holds the compaction lock.
    fn run_compaction(&self, v: &Version, task: &CompactionTask) -> Result<()> {
        let inputs = Self::find_tables(v, task.input_level, &task.inputs);
        let lower = if task.output_level != task.input_level {
            Self::find_tables(v, task.output_level, &task.output_inputs)
        } else {
            Vec::new()
        };
        let mut edit = VersionEdit::default();
        for t in &inputs {
            edit.deleted.push((task.input_level, t.number()));
        }
        for t in &lower {
            edit.deleted.push((task.output_level, t.number()));
        }
        let mut opened = Vec::new();
        if task.trivial_move {
            for t in &inputs {
                edit.added
                    .push((task.output_level, t.number(), t.file_size()));
                opened.push(Arc::clone(t));
            }
            self.stats.add(&self.stats.trivial_moves, 1);
        } else {
            let outputs = self.merge_tables(task, &inputs, &lower)?;
            for (number, size) in outputs {
                edit.added.push((task.output_level, number, size));
                opened.push(self.open_table(number)?);
            }
        }
        edit.next_file_number = Some(self.next_file.load(Ordering::SeqCst));
        {
            let mut manifest = self.manifest.lock();
            let cur = self.current();
            let next = cur.version.apply(&edit, &opened)?;
            manifest.append(&edit)?;
            let mut state = self.state.write();
            let cur = Arc::clone(&state);
            *state = Arc::new(SuperVersion {
                mem: Arc::clone(&cur.mem),
                imms: cur.imms.clone(),
                version: Arc::new(next),
            });
            self.fit_block_cache(&state.version);
        }
        if !task.trivial_move {
            for t in inputs.iter().chain(&lower) {
                t.mark_obsolete();
            }
        }
        self.stats.add(&self.stats.compactions, 1);
        Ok(())
    }

    /// Merges the input tables into new output tables; returns (number, size) of each.
    fn merge_tables(
        &self,
        task: &CompactionTask,
        inputs: &[Arc<Table>],
        lower: &[Arc<Table>],
    ) -> Result<Vec<(u64, u64)>> {
        let mut children: Vec<BoxedIter> = Vec::new();
        if task.input_level == 0 {
            for t in inputs {
                children.push(Box::new(t.iter(false)));
            }
        } else {
            children.push(Box::new(LevelIter::new(inputs.to_vec(), false)));
        }
        if !lower.is_empty() {
            children.push(Box::new(LevelIter::new(lower.to_vec(), false)));
        }
        let bytes_in: u64 = inputs.iter().chain(lower).map(|t| t.file_size()).sum();
        self.stats.add(&self.stats.compaction_bytes_read, bytes_in);
        let mut it = MergingIterator::new(children);
        it.seek_to_first();
        let now = self.opts.clock.now_millis();
        let ttl = self.opts.tombstone_ttl.as_millis() as u64;
        let build = BuildOptions::from_options(&self.opts);
        let mut outputs = Vec::new();
        let mut builder: Option<(u64, TableBuilder)> = None;
        let mut last_user: Option<Vec<u8>> = None;
        let mut dropped = 0u64;
        while it.valid() {
            let ikey = it.key();
            let user = types::user_key(ikey);
            if last_user.as_deref() == Some(user) {
                it.next();
                continue;
            }
            last_user = Some(user.to_vec());
            if task.bottommost
                && types::kind_of(ikey) == Some(ValueKind::Delete)
                && now.saturating_sub(types::tombstone_time(it.value())) >= ttl
            {
                dropped += 1;
                it.next();
                continue;
            }
            if builder.is_none() {
                let (number, path) = self.new_table_path();
                builder = Some((number, TableBuilder::create(&path, build)?));
            }
            if let Some((_, b)) = &mut builder {
                b.add(ikey, it.value())?;
                if b.estimated_size() >= self.opts.target_file_bytes
                    && let Some((number, b)) = builder.take()
                {
                    let (size, _) = b.finish()?;
                    outputs.push((number, size));
                }
            }
            it.next();
        }
        if let Some(e) = it.take_error() {
            return Err(e);
        }
        if let Some((number, b)) = builder.take() {
            let (size, _) = b.finish()?;
            outputs.push((number, size));
        }
        let written: u64 = outputs.iter().map(|(_, s)| s).sum();
        self.stats
            .add(&self.stats.compaction_bytes_written, written);
        self.stats.add(&self.stats.tombstones_dropped, dropped);
        Ok(outputs)
    }

    fn compact_range(&self, (lower, upper): (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Result<()> {
        let lo: Vec<u8> = match lower {
            Bound::Included(k) | Bound::Excluded(k) => k,
            Bound::Unbounded => Vec::new(),
        };
        let hi: Option<Vec<u8>> = match upper {
            Bound::Included(k) | Bound::Excluded(k) => Some(k),
            Bound::Unbounded => None,
        };
        let in_range = |s: &FileSummary| {
            s.largest.as_slice() >= lo.as_slice()
                && hi
                    .as_ref()
                    .is_none_or(|h| s.smallest.as_slice() <= h.as_slice())
        };
        let _guard = self.compaction_lock.lock();
        let bg_busy = |this: &Self| -> Result<()> {
            let bg = this.bg.lock();
            if let Some(e) = &bg.error {
                return Err(Error::Background(e.clone()));
            }
            Ok(())
        };
        bg_busy(self)?;
        if self.opts.compaction == CompactionStyle::SizeTiered {
            let v = Arc::clone(&self.current().version);
            let sums = self.summaries(&v);
            let runs: Vec<u64> = sums[0].iter().map(|f| f.number).collect();
            if runs.len() > 1 || sums[0].iter().any(in_range) {
                let task = CompactionTask {
                    input_level: 0,
                    output_level: 0,
                    inputs: runs,
                    output_inputs: Vec::new(),
                    trivial_move: false,
                    bottommost: sums[1..].iter().all(|l| l.is_empty()),
                };
                self.run_compaction(&v, &task)?;
            }
            return Ok(());
        }
        let deepest = {
            let v = &self.current().version;
            v.levels
                .iter()
                .rposition(|l| !l.is_empty())
                .unwrap_or(0)
                .max(1)
        };
        for level in 0..deepest {
            let v = Arc::clone(&self.current().version);
            let sums = self.summaries(&v);
            let mut inputs: Vec<&FileSummary> =
                sums[level].iter().filter(|s| in_range(s)).collect();
            if inputs.is_empty() {
                continue;
            }
            if level == 0 {
                // L0 files overlap and are ordered by age: moving some of them below older ones
                // would let stale data shadow newer data. Take all of L0.
                inputs = sums[0].iter().collect();
            }
            let lo2 = inputs
                .iter()
                .map(|s| s.smallest.as_slice())
                .min()
                .unwrap_or(&[]);
            let hi2 = inputs
                .iter()
                .map(|s| s.largest.as_slice())
                .max()
                .unwrap_or(&[]);
            let below: Vec<u64> = sums[level + 1]
                .iter()
                .filter(|s| s.smallest.as_slice() <= hi2 && s.largest.as_slice() >= lo2)
                .map(|s| s.number)
                .collect();
            let bottommost = sums[level + 2..].iter().all(|l| {
                l.iter()
                    .all(|s| s.smallest.as_slice() > hi2 || s.largest.as_slice() < lo2)
            });
            let task = CompactionTask {
                input_level: level,
                output_level: level + 1,
                inputs: inputs.iter().map(|s| s.number).collect(),
                output_inputs: below,
                trivial_move: false,
                bottommost,
            };
            self.run_compaction(&v, &task)?;
        }
        // Rewrite the deepest level in place where it still holds tombstones, so those whose TTL
        // has passed are dropped.
        let v = Arc::clone(&self.current().version);
        let sums = self.summaries(&v);
        // All files of the range, not only those with tombstones: outputs must not straddle a file
        // left in place.
        let in_range_files: Vec<&Arc<Table>> = v.levels[deepest]
            .iter()
            .zip(&sums[deepest])
            .filter(|(_, s)| in_range(s))
            .map(|(t, _)| t)
            .collect();
        if in_range_files
            .iter()
            .any(|t| t.properties().num_deletes > 0)
        {
            let task = CompactionTask {
                input_level: deepest,
                output_level: deepest,
                inputs: in_range_files.iter().map(|t| t.number()).collect(),
                output_inputs: Vec::new(),
                trivial_move: false,
                bottommost: sums[deepest + 1..].iter().all(|l| l.is_empty()),
            };
            self.run_compaction(&v, &task)?;
        }
        drop(_guard);
        self.bump_progress();
        Ok(())
    }

    fn stats(&self) -> Stats {
        let sv = self.current();
        let levels: Vec<LevelStats> = sv
            .version
            .levels
            .iter()
            .map(|l| LevelStats {
                files: l.len(),
                bytes: l.iter().map(|t| t.file_size()).sum(),
            })
            .collect();
        let memtable_bytes =
            sv.mem.approx_bytes() + sv.imms.iter().map(|m| m.approx_bytes()).sum::<usize>();
        let table_index_bytes: usize = sv.version.tables().map(|t| t.pinned_bytes()).sum();
        let block_cache_bytes = self.ctx.cache.weight();
        let bg = self.bg.lock();
        Stats {
            counters: self.stats.counters(),
            get_latency: self.stats.get_latency.snapshot(),
            write_latency: self.stats.write_latency.snapshot(),
            sst_bytes: levels.iter().map(|l| l.bytes).sum(),
            sst_entries: sv
                .version
                .tables()
                .map(|t| t.properties().num_entries)
                .sum(),
            levels,
            memtable_entries: (sv.mem.len() + sv.imms.iter().map(|m| m.len()).sum::<usize>())
                as u64,
            memtable_bytes,
            immutable_memtables: sv.imms.len(),
            block_cache_bytes,
            block_cache_capacity: self.ctx.cache.capacity(),
            table_index_bytes,
            memory_bytes: memtable_bytes as u64 + block_cache_bytes + table_index_bytes as u64,
            memory_limit: self.opts.max_memory as u64,
            last_sequence: self.visible_seq.load(Ordering::Acquire),
            compaction_running: bg.compaction_running,
        }
    }
}

/// The block cache never shrinks below this (or its configured size, if smaller) to make room
/// for the tables' indexes and filters.
const MIN_BLOCK_CACHE_BYTES: usize = 8 << 20;

/// Size of the memory mapping of a WAL: a memtable's worth of records and some slack (the
/// memtable counts more bytes per entry than the WAL holds); larger tails use `pwrite`.
fn wal_map_bytes(opts: &Options) -> u64 {
    opts.memtable_bytes as u64 + (1 << 20)
}

/// Copies an error for every writer waiting for a failed sync.
fn duplicate(e: &Error) -> Error {
    match e {
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::Corruption {
            file,
            offset,
            reason,
        } => Error::Corruption {
            file: file.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        Error::EmptyKey => Error::EmptyKey,
        Error::KeyTooLarge { len, max } => Error::KeyTooLarge {
            len: *len,
            max: *max,
        },
        Error::ValueTooLarge { len, max } => Error::ValueTooLarge {
            len: *len,
            max: *max,
        },
        Error::BatchTooLarge { bytes, max } => Error::BatchTooLarge {
            bytes: *bytes,
            max: *max,
        },
        Error::InvalidOptions(s) => Error::InvalidOptions(s),
        Error::Locked(p) => Error::Locked(p.clone()),
        Error::Closed => Error::Closed,
        Error::Background(s) => Error::Background(s.clone()),
    }
}

fn flush_worker(s: &Shared) {
    loop {
        {
            let mut bg = s.bg.lock();
            loop {
                if bg.stop || bg.error.is_some() {
                    return;
                }
                if !s.current().imms.is_empty() {
                    break;
                }
                let tick = match s.opts.sync {
                    SyncPolicy::Interval(d) => d,
                    _ => Duration::from_millis(500),
                };
                if s.bg_cv.wait_for(&mut bg, tick).timed_out()
                    && let SyncPolicy::Interval(d) = s.opts.sync
                {
                    drop(bg);
                    sync_if_due(s, d);
                    bg = s.bg.lock();
                }
            }
        }
        match s.flush_one() {
            Ok(_) => s.bump_progress(),
            Err(e) => {
                s.set_background_error(&e);
                return;
            }
        }
    }
}

fn sync_if_due(s: &Shared, interval: Duration) {
    let due = {
        let wal = s.wal.lock();
        wal.dirty && wal.last_sync.elapsed() >= interval
    };
    if due {
        s.sync_round();
    }
}

/// Runs the syncs that writers ask for ([`Db::write_nowait`] and the interval policy); waiting
/// writers that run their own ([`Durable::wait`]) and this thread share the rounds.
fn sync_worker(s: &Shared) {
    loop {
        {
            let mut st = s.sync.lock();
            loop {
                s.sync_idle.store(true, Ordering::SeqCst);
                let requested = s.sync_requested.load(Ordering::SeqCst);
                let held = s.syncs_held.load(Ordering::Acquire);
                if (requested > st.synced && !st.syncing && st.failed.is_none() && !held) || st.stop
                {
                    break;
                }
                s.sync_cv.wait(&mut st);
            }
            s.sync_idle.store(false, Ordering::SeqCst);
            let requested = s.sync_requested.load(Ordering::SeqCst);
            let crashed = s.crashed.load(Ordering::Acquire);
            if st.stop && (requested <= st.synced || st.failed.is_some() || crashed) {
                return;
            }
            if st.syncing {
                // Stopping while a writer's round runs: wait for it, then look again.
                s.synced_cv.wait(&mut st);
                continue;
            }
        }
        s.sync_round();
    }
}

fn compaction_worker(s: &Shared) {
    loop {
        {
            let mut bg = s.bg.lock();
            if bg.stop || bg.error.is_some() {
                return;
            }
            bg.compaction_running = true;
        }
        let r = s.compact_once();
        let mut bg = s.bg.lock();
        bg.compaction_running = false;
        match r {
            Ok(true) => {
                bg.progress += 1;
                s.bg_cv.notify_all();
            }
            Ok(false) => {
                s.bg_cv.notify_all();
                if bg.stop {
                    return;
                }
                let seen = bg.progress;
                while bg.progress == seen && !bg.stop {
                    s.bg_cv.wait_for(&mut bg, Duration::from_millis(500));
                }
            }
            Err(e) => {
                drop(bg);
                s.set_background_error(&e);
                return;
            }
        }
    }
}

/// Hard-links `from` to `to`, or copies and syncs it when they are on different file systems.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            std::fs::copy(from, to).at(to)?;
            File::open(to).and_then(|f| f.sync_all()).at(to)
        }
        Err(e) => Err(Error::io(to, e)),
    }
}

/// Opens the state on disk: manifest, tables, WAL replay, a fresh manifest, and cleanup.
fn recover(dir: &Path, opts: Options, ctx: TableContext, stats: Arc<StatsInner>) -> Result<Shared> {
    let recovered = version::recover(dir)?;
    let listing = list_dir(dir)?;
    let rec = match recovered {
        Some(r) => r,
        None => {
            if listing.iter().any(|(_, kind, _)| *kind == FileKind::Table) {
                return Err(Error::corruption(
                    dir.join("CURRENT"),
                    0,
                    CorruptionKind::Malformed("CURRENT is missing but table files exist"),
                ));
            }
            version::Recovered {
                next_file_number: 1,
                ..Default::default()
            }
        }
    };
    let mut next_file = rec.next_file_number;
    for (number, _, _) in &listing {
        next_file = next_file.max(number + 1);
    }
    // Open every live table.
    let mut opened = Vec::new();
    for &(level, number, size) in &rec.files {
        if level >= opts.num_levels {
            return Err(Error::InvalidOptions(
                "the database has more levels than num_levels",
            ));
        }
        let path = dir.join(version::table_name(number));
        let t = Table::open(&path, number, ctx.clone())?;
        if t.file_size() != size {
            return Err(Error::corruption(
                &path,
                t.file_size(),
                CorruptionKind::Truncated("table size differs from the manifest"),
            ));
        }
        opened.push(Arc::new(t));
    }
    let snapshot = VersionEdit {
        added: rec.files.clone(),
        ..Default::default()
    };
    let mut version = Version::empty(opts.num_levels).apply(&snapshot, &opened)?;
    let mut last_seq = rec.last_sequence;

    // Replay WALs not yet flushed, oldest first, into L0 tables.
    let mut wals: Vec<u64> = listing
        .iter()
        .filter(|(n, kind, _)| *kind == FileKind::Wal && *n >= rec.log_number)
        .map(|(n, _, _)| *n)
        .collect();
    wals.sort_unstable();
    let build = BuildOptions::from_options(&opts);
    let mut mem = Arc::new(MemTable::new(0));
    let mut new_tables: Vec<(u64, u64)> = Vec::new();
    let mut flush_mem = |mem: &Arc<MemTable>, next_file: &mut u64| -> Result<()> {
        if mem.is_empty() {
            return Ok(());
        }
        let number = *next_file;
        *next_file += 1;
        let mut b = TableBuilder::create(&dir.join(version::table_name(number)), build)?;
        let mut it = mem.iter();
        it.seek_to_first();
        let mut last_user: Option<Vec<u8>> = None;
        while it.valid() {
            let user = types::user_key(it.key());
            if last_user.as_deref() != Some(user) {
                b.add(it.key(), it.value())?;
                last_user = Some(user.to_vec());
            }
            it.next();
        }
        let (size, _) = b.finish()?;
        new_tables.push((number, size));
        Ok(())
    };
    for &number in &wals {
        let path = dir.join(version::wal_name(number));
        let end = read_log(&path, number, TailMode::DropTorn, |payload, offset| {
            let millis = crate::batch::commit_millis(payload);
            for_each_entry(payload, |e| {
                let value: &[u8] = match e.kind {
                    ValueKind::Put => e.value,
                    ValueKind::Delete => &types::tombstone_value(millis),
                };
                mem.insert(e.key, e.seq, e.kind, value);
                last_seq = last_seq.max(e.seq);
            })
            .ok_or_else(|| {
                Error::corruption(&path, offset, CorruptionKind::Malformed("write batch"))
            })?;
            Ok(())
        })?;
        if end.torn_tail {
            tracing::warn!(wal = %path.display(), at = end.valid_len, "dropped a torn WAL tail");
        }
        if mem.approx_bytes() >= opts.memtable_bytes {
            flush_mem(&mem, &mut next_file)?;
            mem = Arc::new(MemTable::new(0));
        }
    }
    flush_mem(&mem, &mut next_file)?;
    let mut edit = VersionEdit::default();
    let mut replay_tables = Vec::new();
    for &(number, size) in &new_tables {
        edit.added.push((0, number, size));
        let path = dir.join(version::table_name(number));
        replay_tables.push(Arc::new(Table::open(&path, number, ctx.clone())?));
    }
    version = version.apply(&edit, &replay_tables)?;

    // A fresh WAL, then a fresh manifest that makes the replayed logs obsolete.
    let wal_number = next_file;
    let manifest_number = next_file + 1;
    next_file += 2;
    let wal_path = dir.join(version::wal_name(wal_number));
    // Pre-zeroing pays off only when every commit syncs.
    let writer = LogWriter::create(
        &wal_path,
        wal_number,
        opts.sync == SyncPolicy::EveryCommit,
        wal_map_bytes(&opts),
    )?;
    let mut snap = version.snapshot_edit();
    snap.log_number = Some(wal_number);
    snap.next_file_number = Some(next_file);
    snap.last_sequence = Some(last_seq);
    let manifest = Manifest::create(dir, manifest_number, &snap)?;

    // Remove what the new manifest does not name.
    let live: std::collections::HashSet<u64> = version.tables().map(|t| t.number()).collect();
    for (number, kind, path) in list_dir(dir)? {
        let obsolete = match kind {
            FileKind::Table => !live.contains(&number),
            FileKind::Wal => number != wal_number,
            FileKind::Manifest => number != manifest_number,
            FileKind::Temp => true,
        };
        if obsolete && let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an obsolete file");
        }
    }
    version::sync_dir(dir)?;

    let mem = Arc::new(MemTable::new(wal_number));
    Ok(Shared {
        dir: dir.to_path_buf(),
        state: RwLock::new(Arc::new(SuperVersion {
            mem,
            imms: Vec::new(),
            version: Arc::new(version),
        })),
        visible_seq: AtomicU64::new(last_seq),
        next_file: AtomicU64::new(next_file),
        switching: AtomicBool::new(false),
        wal: Mutex::new(WalState {
            writer,
            last_seq,
            last_sync: Instant::now(),
            dirty: false,
        }),
        sync: Mutex::new(SyncState {
            synced: last_seq,
            ..SyncState::default()
        }),
        synced_seq: AtomicU64::new(last_seq),
        sync_requested: AtomicU64::new(0),
        sync_idle: AtomicBool::new(false),
        crashed: AtomicBool::new(false),
        syncs_held: AtomicBool::new(false),
        sync_hook: std::sync::OnceLock::new(),
        sync_cv: Condvar::new(),
        synced_cv: Condvar::new(),
        manifest: Mutex::new(manifest),
        compaction_lock: Mutex::new(()),
        bg: Mutex::new(Background::default()),
        bg_cv: Condvar::new(),
        recycled_wals: Mutex::new(Vec::new()),
        checkpoint_lock: Mutex::new(()),
        over_memory: AtomicBool::new(false),
        ctx,
        stats,
        opts,
    })
}

/// What a lookup found in one place, or in the whole engine.
pub(crate) enum Probe {
    Found(ValueKind, Bytes),
    Absent,
    /// Answering needs a data block that is not in the block cache.
    NeedsIo,
}

/// The answer of [`Db::get_cached`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// The value (or its absence), found without reading the disk.
    Hit(Option<Bytes>),
    /// The answer needs a read from disk: ask [`Db::get`] on a thread that may block.
    NeedsIo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Table,
    Wal,
    Manifest,
    Temp,
}

/// The engine's files in `dir`: (number, kind, path).
fn list_dir(dir: &Path) -> Result<Vec<(u64, FileKind, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let parsed = if let Some(n) = name.strip_suffix(".sst") {
            n.parse().ok().map(|n| (n, FileKind::Table))
        } else if let Some(n) = name.strip_suffix(".log") {
            n.parse().ok().map(|n| (n, FileKind::Wal))
        } else if let Some(n) = name.strip_prefix("MANIFEST-") {
            n.parse().ok().map(|n| (n, FileKind::Manifest))
        } else if name == "CURRENT.tmp" {
            Some((0, FileKind::Temp))
        } else {
            None
        };
        if let Some((number, kind)) = parsed {
            out.push((number, kind, entry.path()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_handles_ff_bytes() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
