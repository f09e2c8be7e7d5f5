//! Model-based test: random operations against the engine and a `BTreeMap` oracle, across
//! flushes, compactions and reopens, for every compaction style.

use std::collections::BTreeMap;
use std::ops::Bound;

use distkv_lsm::{CompactionStyle, Db, Options, SyncPolicy, WriteBatch, WriteOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    /// A put through `write_nowait`, visible before its durability is awaited.
    PutNowait(u8, Vec<u8>),
    Delete(u8),
    Get(u8),
    Scan(u8, u8),
    Prefix(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Flush,
    Compact(u8, u8),
    Reopen,
    SnapshotCheck(u8, Vec<u8>),
    /// A checkpoint holds exactly the model's contents, and later writes do not reach it.
    Checkpoint(u8),
}

fn key(k: u8) -> Vec<u8> {
    // Shared prefixes exercise prefix compression; the numeric part spreads keys over blocks.
    format!("key{:03}", k % 60).into_bytes()
}

fn ordered(a: u8, b: u8) -> (Vec<u8>, Vec<u8>) {
    let (a, b) = (key(a), key(b));
    if a <= b { (a, b) } else { (b, a) }
}

fn op() -> impl Strategy<Value = Op> {
    let value = prop::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        30 => (any::<u8>(), value.clone()).prop_map(|(k, v)| Op::Put(k, v)),
        10 => (any::<u8>(), value.clone()).prop_map(|(k, v)| Op::PutNowait(k, v)),
        10 => any::<u8>().prop_map(Op::Delete),
        15 => any::<u8>().prop_map(Op::Get),
        6 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Scan(a, b)),
        3 => (0u8..10).prop_map(Op::Prefix),
        8 => prop::collection::vec((any::<u8>(), prop::option::of(value.clone())), 1..8)
            .prop_map(Op::Batch),
        4 => Just(Op::Flush),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Compact(a, b)),
        2 => Just(Op::Reopen),
        2 => (any::<u8>(), value).prop_map(|(k, v)| Op::SnapshotCheck(k, v)),
        1 => any::<u8>().prop_map(Op::Checkpoint),
    ]
}

fn options(style: CompactionStyle) -> Options {
    Options {
        memtable_bytes: 4096,
        max_memtable_memory: 64 * 1024,
        block_bytes: 256,
        target_file_bytes: 64 * 1024,
        level1_bytes: 8 * 1024,
        level_size_multiplier: 2,
        l0_compaction_trigger: 2,
        compaction: style,
        sync: SyncPolicy::Never,
        tombstone_ttl: std::time::Duration::ZERO,
        ..Options::default()
    }
}

fn collect(it: distkv_lsm::DbIterator) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| {
        let (k, v) = r.expect("iteration error");
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

fn run(style: CompactionStyle, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(dir.path(), options(style)).unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let checkpoints = tempfile::tempdir().unwrap();
    for (ops_done, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put(k, v) => {
                db.put(&key(k), &v).unwrap();
                model.insert(key(k), v);
            }
            Op::PutNowait(k, v) => {
                let mut b = WriteBatch::new();
                b.put(&key(k), &v);
                match db.write_nowait(b, &WriteOptions::default()).unwrap() {
                    distkv_lsm::Submitted::Applied(durable) => {
                        assert_eq!(db.get(&key(k)).unwrap().as_deref(), Some(v.as_slice()));
                        durable.wait().unwrap();
                    }
                    distkv_lsm::Submitted::WouldStall(b) => {
                        db.write(b, &WriteOptions::default()).unwrap()
                    }
                }
                model.insert(key(k), v);
            }
            Op::Delete(k) => {
                db.delete(&key(k)).unwrap();
                model.remove(&key(k));
            }
            Op::Get(k) => {
                let got = db.get(&key(k)).unwrap().map(|b| b.to_vec());
                assert_eq!(got, model.get(&key(k)).cloned(), "get {:?}", key(k));
            }
            Op::Scan(a, b) => {
                let (lo, hi) = ordered(a, b);
                let got = collect(db.range(lo.as_slice()..hi.as_slice()).unwrap());
                let want: Vec<_> = model
                    .range::<Vec<u8>, _>((Bound::Included(&lo), Bound::Excluded(&hi)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want, "scan {lo:?}..{hi:?}");
                let got = collect(
                    db.range((Bound::Excluded(lo.as_slice()), Bound::Unbounded))
                        .unwrap(),
                );
                let want: Vec<_> = model
                    .range::<Vec<u8>, _>((Bound::Excluded(&lo), Bound::Unbounded))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want, "scan ({lo:?}..");
            }
            Op::Prefix(p) => {
                let prefix = format!("key0{p}").into_bytes();
                let got = collect(db.prefix(&prefix).unwrap());
                let want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want);
            }
            Op::Batch(entries) => {
                let mut b = WriteBatch::new();
                for (k, v) in &entries {
                    match v {
                        Some(v) => {
                            b.put(&key(*k), v);
                        }
                        None => {
                            b.delete(&key(*k));
                        }
                    }
                }
                db.write(b, &WriteOptions::default()).unwrap();
                for (k, v) in entries {
                    match v {
                        Some(v) => model.insert(key(k), v),
                        None => model.remove(&key(k)),
                    };
                }
            }
            Op::Flush => db.flush().unwrap(),
            Op::Checkpoint(k) => {
                let path = checkpoints.path().join(format!("cp{ops_done}"));
                db.checkpoint(&path).unwrap();
                let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                db.put(&key(k), b"after the checkpoint").unwrap();
                model.insert(key(k), b"after the checkpoint".to_vec());
                let cp = Db::open(&path, options(style)).unwrap();
                assert_eq!(collect(cp.range(..).unwrap()), want);
                cp.close().unwrap();
            }
            Op::Compact(a, b) => {
                let (lo, hi) = ordered(a, b);
                db.compact_range(lo.as_slice()..=hi.as_slice()).unwrap();
            }
            Op::Reopen => {
                db.close().unwrap();
                drop(db);
                db = Db::open(dir.path(), options(style)).unwrap();
            }
            Op::SnapshotCheck(k, v) => {
                // A snapshot and an iterator taken now must not see a write made after them.
                let snap = db.snapshot();
                let it = db.range(..).unwrap();
                let before = model.get(&key(k)).cloned();
                db.put(&key(k), &v).unwrap();
                db.flush().unwrap();
                assert_eq!(snap.get(&key(k)).unwrap().map(|b| b.to_vec()), before);
                let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(collect(it), want);
                model.insert(key(k), v);
            }
        }
    }
    let all = collect(db.range(..).unwrap());
    let want: Vec<_> = model.into_iter().collect();
    assert_eq!(all, want);
    db.close().unwrap();
}

proptest! {
    // PROPTEST_CASES overrides the count (the heavy suite runs 1000).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn leveled_matches_the_model(ops in prop::collection::vec(op(), 1..200)) {
        run(CompactionStyle::Leveled, ops);
    }

    #[test]
    fn size_tiered_matches_the_model(ops in prop::collection::vec(op(), 1..200)) {
        run(CompactionStyle::SizeTiered, ops);
    }

    #[test]
    fn simple_matches_the_model(ops in prop::collection::vec(op(), 1..200)) {
        run(CompactionStyle::Simple, ops);
    }
}

/// Enough data to fill several levels, then every key checked after reopen.
#[test]
fn many_keys_survive_compaction_into_deep_levels() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_bytes: 32 * 1024,
        max_memtable_memory: 256 * 1024,
        target_file_bytes: 64 * 1024,
        level1_bytes: 128 * 1024,
        level_size_multiplier: 4,
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    let n = 30_000u32;
    for i in 0..n {
        let k = format!("{:08}", (i * 7919) % n);
        db.put(k.as_bytes(), format!("value-{i}").as_bytes())
            .unwrap();
    }
    db.flush().unwrap();
    db.wait_for_compactions().unwrap();
    let stats = db.stats();
    assert!(
        stats.levels[2].files > 0 || stats.levels[3].files > 0,
        "{:?}",
        stats.levels
    );
    assert!(stats.counters.compactions > 0);
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts).unwrap();
    let mut seen = 0;
    for (i, item) in db.range(..).unwrap().enumerate() {
        let (k, _) = item.unwrap();
        assert_eq!(k.as_ref(), format!("{i:08}").as_bytes());
        seen += 1;
    }
    assert_eq!(seen, n);
    for i in (0..n).step_by(97) {
        let k = format!("{:08}", (i * 7919) % n);
        assert_eq!(
            db.get(k.as_bytes()).unwrap().unwrap().as_ref(),
            format!("value-{i}").as_bytes()
        );
    }
}
