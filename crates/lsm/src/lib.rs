//! # distkv-lsm
//!
//! DistKV's storage engine: an LSM tree that keeps byte-string keys in order and survives crashes.
//!
//! Writes go to a write-ahead log (group commit: concurrent writers share one fdatasync) and then
//! to a concurrent skiplist memtable. A full memtable becomes immutable and a background thread
//! flushes it to an SSTable in L0; another thread compacts tables down the levels (leveled by
//! default; size-tiered and simple are selectable). Reads look in the memtables, then the tables
//! from newest to oldest, skipping tables by key range and bloom filter, with data blocks served
//! from a byte-bounded block cache. Readers take an immutable snapshot of the engine state (`Arc`)
//! and never hold a lock during I/O; table files are deleted only when no reader uses them.
//!
//! Every file carries checksums: WAL and manifest records, SSTable blocks and footers. Damage is
//! reported as [`Error::Corruption`] with the file and offset; a torn WAL tail left by a crash is
//! dropped, since it was never acknowledged.
//!
//! ```
//! use distkv_lsm::{Db, Options};
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path(), Options::default())?;
//! db.put(b"user:1", b"ada")?;
//! assert_eq!(db.get(b"user:1")?.as_deref(), Some(&b"ada"[..]));
//! for item in db.prefix(b"user:")? {
//!     let (key, value) = item?;
//!     println!("{key:?} = {value:?}");
//! }
//! db.close()?;
//! # Ok::<(), distkv_lsm::Error>(())
//! ```
//!
//! Limits: keys are 1 byte to `max_key_bytes` (default 64 KiB, at most 1 MiB), values up to
//! `max_value_bytes` (default 16 MiB, at most 256 MiB), batches up to `max_batch_bytes` (default
//! 64 MiB). Larger input is refused with a typed error.
//!
//! Left out: column families, merge operators, transactions, reverse iteration, direct I/O.

mod batch;
mod cache;
mod coding;
pub mod compaction;
mod db;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod iter;
mod log;
mod memtable;
mod options;
mod sst;
mod stats;
mod types;
mod version;

pub use batch::WriteBatch;
pub use db::{Cached, Checkpoint, Db, Durable, Snapshot, Submitted};
pub use error::{CorruptionKind, Error, Result};
pub use iter::DbIterator;
pub use options::{
    BloomConfig, Clock, CompactionStyle, Compression, MAX_BATCH_BYTES, MAX_KEY_BYTES,
    MAX_VALUE_BYTES, ManualClock, Options, SyncPolicy, SystemClock, WriteOptions,
};
pub use sst::Properties;
pub use stats::{Counters, LatencySummary, LevelStats, Stats};
pub use types::SeqNo;
