//! The node's own replica, as the coordinator sees it ([`LocalReplica`]): its store, its hint
//! store, and the dots of the writes it coordinates, which never repeat across restarts (a
//! block of counters is reserved in the hint store ahead of use, and a start begins past both
//! the reservation and the clock).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use distkv_cluster::{Dot, NodeId, Siblings};
use parking_lot::Mutex;

use super::{LocalReplica, WriteContext};
use crate::clock::{Clock, SystemClock};
use crate::error::Result;
use crate::hints::HintStore;
use crate::storage::Store;

/// Keys of this node's own bookkeeping in the hint store (no `\0`, so never a hint).
const DOT_HWM_KEY: &[u8] = b"meta:dot-high-water-mark";
/// Dots reserved durably at a time.
const DOT_RESERVE: u64 = 100_000;

/// The node's own replica: its store, its hints and the dots of the writes it coordinates.
pub struct StoreReplica {
    id: NodeId,
    store: Store,
    hints: HintStore,
    dots: Dots,
    clock: Arc<dyn Clock>,
}

impl StoreReplica {
    /// Opens the dot counter kept in `hints` (it never repeats a dot, across restarts); versions
    /// are stamped with the system clock.
    pub fn open(id: NodeId, store: Store, hints: HintStore) -> Result<Self> {
        Self::with_clock(id, store, hints, Arc::new(SystemClock))
    }

    /// [`Self::open`] with versions stamped, and the dot counter started, by `clock`.
    pub fn with_clock(
        id: NodeId,
        store: Store,
        hints: HintStore,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let dots = Dots::open(&hints, clock.now_ms())?;
        Ok(StoreReplica {
            id,
            store,
            hints,
            dots,
            clock,
        })
    }
}

impl LocalReplica for StoreReplica {
    fn id(&self) -> &str {
        &self.id
    }

    fn next_dot(&self) -> Result<Dot> {
        Ok(Dot {
            node: self.id.clone(),
            counter: self.dots.next(&self.hints)?,
        })
    }

    fn apply(
        &self,
        key: &str,
        dot: Dot,
        context: &WriteContext,
        value: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let store = self.store.clone();
        let (key, context) = (key.to_string(), context.clone());
        let now = self.clock.now_ms();
        async move {
            let context = match context {
                WriteContext::Given(c) => Some(c),
                // What this replica holds when the write is applied, under the key's lock:
                // every write acknowledged before the client sent this one (this node
                // coordinated it); a write racing this one that is not applied yet stays
                // beside it as a sibling.
                WriteContext::Coordinator => None,
            };
            store.apply_write(key, dot, context, value, now).await
        }
    }

    fn keep_hint(
        &self,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.hints.add_async(target, key, versions)
    }
}

/// The counters of a node's dots: past the wall clock at start (in microseconds) and past what
/// an earlier run reserved, which is kept in the hint store a block ahead of use.
struct Dots {
    counter: AtomicU64,
    reserved: Mutex<u64>,
}

impl Dots {
    /// Starts past `now_ms` (in microseconds) and past what an earlier run reserved.
    fn open(hints: &HintStore, now_ms: u64) -> Result<Dots> {
        let hwm = match hints.db().get(DOT_HWM_KEY)? {
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0),
            None => 0,
        };
        let start = hwm.max(now_ms * 1000);
        let dots = Dots {
            counter: AtomicU64::new(start),
            reserved: Mutex::new(start),
        };
        dots.reserve(hints, start)?;
        Ok(dots)
    }

    fn reserve(&self, hints: &HintStore, upto: u64) -> Result<()> {
        let mut reserved = self.reserved.lock();
        if upto >= *reserved {
            let next = upto + DOT_RESERVE;
            hints.db().put_opt(
                DOT_HWM_KEY,
                next.to_string().as_bytes(),
                &distkv_lsm::WriteOptions { sync: true },
            )?;
            *reserved = next;
        }
        Ok(())
    }

    /// A counter never used before by this node, across restarts.
    fn next(&self, hints: &HintStore) -> Result<u64> {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        if counter >= *self.reserved.lock() {
            self.reserve(hints, counter)?;
        }
        Ok(counter)
    }
}
