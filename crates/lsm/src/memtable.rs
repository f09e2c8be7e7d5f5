//! The memtable: a concurrent skiplist of internal keys that takes writes before they are flushed.
//!
//! Writers insert without locks (crossbeam's epoch-based skiplist); readers see an entry once the
//! database publishes its sequence number, which happens only after the whole batch is inserted,
//! so batches are atomic to readers. `approx_bytes` counts keys, values and per-entry overhead and
//! decides when the memtable is full.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use crossbeam_skiplist::map::Entry;

use crate::iter::InternalIterator;
use crate::types::{self, KIND_SEEK, SeqNo, ValueKind, compare_internal};

/// Bytes of bookkeeping per entry beyond key and value (skiplist node, `Bytes` headers).
const ENTRY_OVERHEAD: usize = 80;

/// Internal keys up to this length are stored inside the skiplist node.
const INLINE_KEY: usize = 38;

/// An encoded internal key ordered by [`compare_internal`]. Short keys live inline, so a search
/// touches one cache line per node instead of chasing a pointer to the key bytes.
#[derive(Debug, Clone)]
pub(crate) enum MemKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl MemKey {
    fn new(ikey: &[u8]) -> Self {
        if ikey.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..ikey.len()].copy_from_slice(ikey);
            MemKey::Inline {
                len: ikey.len() as u8,
                bytes,
            }
        } else {
            MemKey::Heap(ikey.into())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            MemKey::Inline { len, bytes } => &bytes[..*len as usize],
            MemKey::Heap(b) => b,
        }
    }
}

/// A borrowed internal key, the lookup form of [`MemKey`].
#[repr(transparent)]
pub(crate) struct IKey([u8]);

impl IKey {
    pub(crate) fn new(b: &[u8]) -> &IKey {
        // SAFETY: IKey is a transparent wrapper around [u8].
        unsafe { &*(b as *const [u8] as *const IKey) }
    }
}

impl Borrow<IKey> for MemKey {
    fn borrow(&self) -> &IKey {
        IKey::new(self.as_bytes())
    }
}

impl PartialEq for IKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for IKey {}
impl PartialOrd for IKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for IKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal(&self.0, &other.0)
    }
}
impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for MemKey {}
impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal(self.as_bytes(), other.as_bytes())
    }
}

/// A sorted in-memory table of internal keys.
pub(crate) struct MemTable {
    map: SkipMap<MemKey, Bytes>,
    approx_bytes: AtomicUsize,
    /// Number of the WAL file that holds this memtable's writes.
    wal_number: u64,
    max_seq: AtomicU64,
}

impl MemTable {
    pub(crate) fn new(wal_number: u64) -> Self {
        MemTable {
            map: SkipMap::new(),
            approx_bytes: AtomicUsize::new(0),
            wal_number,
            max_seq: AtomicU64::new(0),
        }
    }

    pub(crate) fn wal_number(&self) -> u64 {
        self.wal_number
    }

    pub(crate) fn insert(&self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let mut buf = [0u8; INLINE_KEY];
        let ikey = if key.len() + types::TRAILER_LEN <= INLINE_KEY {
            let n = key.len();
            buf[..n].copy_from_slice(key);
            buf[n..n + types::TRAILER_LEN]
                .copy_from_slice(&types::trailer(seq, kind as u8).to_le_bytes());
            MemKey::new(&buf[..n + types::TRAILER_LEN])
        } else {
            MemKey::new(&types::internal_key(key, seq, kind as u8))
        };
        let n = key.len() + types::TRAILER_LEN + value.len() + ENTRY_OVERHEAD;
        self.map.insert(ikey, Bytes::copy_from_slice(value));
        self.approx_bytes.fetch_add(n, AtomicOrdering::Relaxed);
        self.max_seq.fetch_max(seq, AtomicOrdering::Relaxed);
    }

    /// The newest entry for `key` with sequence number at most `snapshot`.
    pub(crate) fn get(&self, key: &[u8], snapshot: SeqNo) -> Option<(ValueKind, Bytes)> {
        let probe = types::internal_key(key, snapshot, KIND_SEEK);
        let entry = self.map.lower_bound(Bound::Included(IKey::new(&probe)))?;
        let ikey = entry.key().as_bytes();
        if types::user_key(ikey) != key {
            return None;
        }
        Some((types::kind_of(ikey)?, entry.value().clone()))
    }

    pub(crate) fn approx_bytes(&self) -> usize {
        self.approx_bytes.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries (every version and tombstone).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn iter(self: &Arc<Self>) -> MemTableIter {
        MemTableIter {
            entry: None,
            table: Arc::clone(self),
        }
    }
}

/// An iterator over a memtable that keeps it alive.
pub(crate) struct MemTableIter {
    // Declared before `table` so it is dropped first: it borrows from the table's skiplist.
    entry: Option<Entry<'static, MemKey, Bytes>>,
    table: Arc<MemTable>,
}

impl MemTableIter {
    fn set(&mut self, entry: Option<Entry<'_, MemKey, Bytes>>) {
        // SAFETY: the entry borrows from `self.table.map`, which lives on the heap behind the Arc
        // held in `self.table` and is never moved or dropped while `self` exists; `entry` is
        // dropped before `table` (field order).
        self.entry = entry.map(|e| unsafe {
            std::mem::transmute::<Entry<'_, MemKey, Bytes>, Entry<'static, MemKey, Bytes>>(e)
        });
    }
}

impl InternalIterator for MemTableIter {
    fn valid(&self) -> bool {
        self.entry.is_some()
    }

    fn seek_to_first(&mut self) {
        let table = Arc::clone(&self.table);
        let e = table.map.front();
        self.set(e);
    }

    fn seek(&mut self, target: &[u8]) {
        let table = Arc::clone(&self.table);
        let e = table.map.lower_bound(Bound::Included(IKey::new(target)));
        self.set(e);
    }

    fn next(&mut self) {
        let next = self.entry.as_ref().and_then(|e| e.next());
        self.entry = next;
    }

    fn key(&self) -> &[u8] {
        self.entry.as_ref().map_or(&[], |e| e.key().as_bytes())
    }

    fn value(&self) -> &[u8] {
        self.entry.as_ref().map_or(&[], |e| e.value())
    }

    fn value_bytes(&self) -> Bytes {
        self.entry
            .as_ref()
            .map_or_else(Bytes::new, |e| e.value().clone())
    }

    fn take_error(&mut self) -> Option<crate::Error> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_sees_the_newest_version_at_a_snapshot() {
        let m = MemTable::new(1);
        m.insert(b"k", 1, ValueKind::Put, b"v1");
        m.insert(b"k", 3, ValueKind::Put, b"v3");
        m.insert(b"k", 5, ValueKind::Delete, b"");
        m.insert(b"j", 9, ValueKind::Put, b"j");
        assert_eq!(m.get(b"k", 0), None);
        assert_eq!(m.get(b"k", 2).unwrap().1, Bytes::from_static(b"v1"));
        assert_eq!(m.get(b"k", 4).unwrap().1, Bytes::from_static(b"v3"));
        assert_eq!(m.get(b"k", 9).unwrap().0, ValueKind::Delete);
        assert_eq!(m.get(b"kk", 9), None);
        assert!(m.approx_bytes() > 4 * ENTRY_OVERHEAD);
    }

    #[test]
    fn iterator_yields_internal_order() {
        let m = Arc::new(MemTable::new(1));
        m.insert(b"b", 2, ValueKind::Put, b"b2");
        m.insert(b"a", 1, ValueKind::Put, b"a1");
        m.insert(b"b", 4, ValueKind::Put, b"b4");
        let mut it = m.iter();
        it.seek_to_first();
        let mut got = Vec::new();
        while it.valid() {
            got.push((types::user_key(it.key()).to_vec(), it.value().to_vec()));
            it.next();
        }
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"a".to_vec(), b"a1".to_vec()),
            (b"b".to_vec(), b"b4".to_vec()),
            (b"b".to_vec(), b"b2".to_vec()),
        ];
        assert_eq!(got, want);
        it.seek(&types::internal_key(b"b", 3, KIND_SEEK));
        assert_eq!(it.value(), b"b2");
    }

    /// The first `unsafe` block of this module, alone: an `IKey` is the slice it was made from,
    /// inline and heap keys alike. `make miri` runs this under Miri (the skiplist cannot be:
    /// Miri reports undefined behaviour inside crossbeam-skiplist 0.1.3 for a plain insert and
    /// drop, under both of its borrow models).
    #[test]
    fn an_ikey_is_the_slice_it_was_made_from() {
        for key in [&b"k"[..], &[b'x'; 100]] {
            let bytes = types::internal_key(key, 3, 1);
            let owned = MemKey::new(&bytes);
            let borrowed: &IKey = owned.borrow();
            assert_eq!(&borrowed.0, &bytes[..]);
            assert_eq!(IKey::new(&bytes).cmp(borrowed), Ordering::Equal);
            let newer = types::internal_key(key, 4, 1);
            assert_eq!(IKey::new(&newer).cmp(borrowed), Ordering::Less);
        }
    }

    /// Both `unsafe` blocks (an `IKey` made from a slice, an entry whose borrow of the table is
    /// stretched to the iterator's life) under use that would break them if they were wrong:
    /// the iterator outlives every other handle of its table while another thread still
    /// inserts. `make miri` runs it under AddressSanitizer, which sees a use after free.
    #[test]
    fn an_iterator_keeps_its_table_alive_alone_while_writers_insert() {
        let m = Arc::new(MemTable::new(1));
        for i in 0..20u64 {
            m.insert(format!("k{i:02}").as_bytes(), i + 1, ValueKind::Put, b"v");
        }
        let mut it = m.iter();
        it.seek_to_first();
        let writer = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 20..40u64 {
                    m.insert(format!("k{i:02}").as_bytes(), i + 1, ValueKind::Put, b"w");
                }
            })
        };
        drop(m);
        let mut seen = Vec::new();
        while it.valid() {
            seen.push(types::user_key(it.key()).to_vec());
            assert!(it.value() == b"v" || it.value() == b"w");
            it.next();
        }
        writer.join().unwrap();
        assert!(
            seen.len() >= 20,
            "every key there before the iterator began"
        );
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in key order");
        // A lookup (through the `IKey` borrow) in the table the iterator alone holds now.
        let last = it.table.get(b"k39", u64::MAX >> 8).map(|(_, v)| v);
        assert_eq!(last, Some(Bytes::from_static(b"w")));
        // Dropped while on an entry: the entry must go before the table it borrows from.
        it.seek(&types::internal_key(b"k10", u64::MAX >> 8, KIND_SEEK));
        assert!(it.valid());
        drop(it);
    }
}
