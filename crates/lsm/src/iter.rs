//! Iterators: the internal iterator trait, the merge of many sources, and the user-facing
//! [`DbIterator`] that hides versions and tombstones.
//!
//! Every source (memtables, tables, levels) yields internal keys in [`compare_internal`] order.
//! [`MergingIterator`] interleaves them; because entries of one user key are ordered newest first
//! and sources hold disjoint sequence numbers, the first entry of each user key at or below the
//! snapshot is the visible one. A source that fails (a corrupt block) stops the merge with its
//! error instead of silently dropping out.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::types::{self, KIND_SEEK, SeqNo, ValueKind, compare_internal};

/// An iterator over internal keys in order.
pub(crate) trait InternalIterator: Send {
    fn valid(&self) -> bool;
    fn seek_to_first(&mut self);
    /// Positions at the first entry at or after `target` (an internal key).
    fn seek(&mut self, target: &[u8]);
    fn next(&mut self);
    /// The current internal key; only meaningful while `valid()`.
    fn key(&self) -> &[u8];
    fn value(&self) -> &[u8];
    /// The current value without copying where the source allows it.
    fn value_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.value())
    }
    /// The error that made this iterator invalid, if one did.
    fn take_error(&mut self) -> Option<Error>;
}

pub(crate) type BoxedIter = Box<dyn InternalIterator>;

/// Merges sorted sources into one sorted stream.
///
/// Sources are few (memtables, L0 files, one per level), so the minimum is found by a linear scan;
/// ties (equal internal keys cannot occur across sources) are broken by source order.
pub(crate) struct MergingIterator {
    children: Vec<BoxedIter>,
    current: Option<usize>,
    error: Option<Error>,
}

impl MergingIterator {
    pub(crate) fn new(children: Vec<BoxedIter>) -> Self {
        MergingIterator {
            children,
            current: None,
            error: None,
        }
    }

    fn collect_errors(&mut self) {
        if self.error.is_some() {
            return;
        }
        for c in &mut self.children {
            if let Some(e) = c.take_error() {
                self.error = Some(e);
                return;
            }
        }
    }

    fn find_smallest(&mut self) {
        self.collect_errors();
        if self.error.is_some() {
            self.current = None;
            return;
        }
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate() {
            if !c.valid() {
                continue;
            }
            best = match best {
                Some(b) if compare_internal(self.children[b].key(), c.key()).is_le() => Some(b),
                _ => Some(i),
            };
        }
        self.current = best;
    }
}

impl InternalIterator for MergingIterator {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) {
        for c in &mut self.children {
            c.seek_to_first();
        }
        self.find_smallest();
    }

    fn seek(&mut self, target: &[u8]) {
        for c in &mut self.children {
            c.seek(target);
        }
        self.find_smallest();
    }

    fn next(&mut self) {
        if let Some(i) = self.current {
            let child = &mut self.children[i];
            child.next();
            if !child.valid()
                && let Some(e) = child.take_error()
            {
                self.error = Some(e);
            }
            self.find_smallest();
        }
    }

    fn key(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].key())
    }

    fn value(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].value())
    }

    fn value_bytes(&self) -> Bytes {
        self.current
            .map_or_else(Bytes::new, |i| self.children[i].value_bytes())
    }

    fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }
}

/// Forward iterator over the live keys of a consistent snapshot, within a key range.
///
/// Yields `(key, value)` pairs in key order. The iterator pins the memtables and table files it
/// reads, so flushes and compactions that run meanwhile neither change what it sees nor delete
/// files under it. After an error it yields that error once and then ends.
pub struct DbIterator {
    inner: MergingIterator,
    snapshot: SeqNo,
    upper: Bound<Vec<u8>>,
    lower: Bound<Vec<u8>>,
    started: bool,
    done: bool,
    /// Keeps the sources' owner (memtables and version) alive for the iterator's lifetime.
    _pin: Arc<dyn Send + Sync>,
    stats: Option<Arc<crate::stats::StatsInner>>,
}

impl DbIterator {
    pub(crate) fn new(
        inner: MergingIterator,
        snapshot: SeqNo,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        pin: Arc<dyn Send + Sync>,
        stats: Option<Arc<crate::stats::StatsInner>>,
    ) -> Self {
        DbIterator {
            inner,
            snapshot,
            upper,
            lower,
            started: false,
            done: false,
            _pin: pin,
            stats,
        }
    }

    fn start(&mut self) {
        self.started = true;
        match &self.lower {
            Bound::Unbounded => self.inner.seek_to_first(),
            Bound::Included(k) => {
                let t = types::internal_key(k, self.snapshot, KIND_SEEK);
                self.inner.seek(&t);
            }
            Bound::Excluded(k) => {
                // Every version of `k` sorts before (k, 0, kind 0) or equals it; seek past them.
                let t = types::internal_key(k, 0, 0);
                self.inner.seek(&t);
                while self.inner.valid() && types::user_key(self.inner.key()) == k.as_slice() {
                    self.inner.next();
                }
            }
        }
    }

    fn past_upper(&self, key: &[u8]) -> bool {
        match &self.upper {
            Bound::Unbounded => false,
            Bound::Included(u) => key > u.as_slice(),
            Bound::Excluded(u) => key >= u.as_slice(),
        }
    }

    fn advance(&mut self) -> Option<Result<(Bytes, Bytes)>> {
        if !self.started {
            self.start();
        }
        loop {
            if !self.inner.valid() {
                return self.inner.take_error().map(Err);
            }
            let ikey = self.inner.key();
            let seq = types::seq_of(ikey);
            if seq > self.snapshot {
                self.inner.next();
                continue;
            }
            let user = types::user_key(ikey);
            if self.past_upper(user) {
                return None;
            }
            let user = Bytes::copy_from_slice(user);
            let kind = types::kind_of(ikey);
            let value = self.inner.value_bytes();
            // Skip older versions of this key.
            self.inner.next();
            while self.inner.valid() && types::user_key(self.inner.key()) == user.as_ref() {
                self.inner.next();
            }
            match kind {
                Some(ValueKind::Put) => return Some(Ok((user, value))),
                Some(ValueKind::Delete) => continue,
                None => {
                    return Some(Err(Error::Background(
                        "entry with an unknown kind in an iterator".into(),
                    )));
                }
            }
        }
    }
}

impl Iterator for DbIterator {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.advance();
        match &item {
            None | Some(Err(_)) => self.done = true,
            Some(Ok((k, v))) => {
                if let Some(s) = &self.stats {
                    s.record_iter_item(k.len() + v.len());
                }
            }
        }
        item
    }
}
