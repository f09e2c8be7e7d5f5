//! Readers, iterators and snapshots running through flushes and compactions see consistent
//! states: every batch whole or not at all, and nothing written after they started.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use distkv_lsm::{Db, Options, SyncPolicy, WriteBatch, WriteOptions};

const KEYS_PER_GROUP: u64 = 20;
const GROUPS: u64 = 8;

fn options() -> Options {
    Options {
        memtable_bytes: 8 * 1024,
        max_memtable_memory: 64 * 1024,
        target_file_bytes: 64 * 1024,
        level1_bytes: 32 * 1024,
        l0_compaction_trigger: 2,
        sync: SyncPolicy::Never,
        block_cache_bytes: 64 * 1024,
        ..Options::default()
    }
}

fn key(group: u64, i: u64) -> Vec<u8> {
    format!("g{group}/k{i:03}").into_bytes()
}

/// Each batch sets every key of one group to the same generation, padded so flushes happen.
fn group_batch(group: u64, generation: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    for i in 0..KEYS_PER_GROUP {
        b.put(
            &key(group, i),
            format!("{generation:08}{}", "x".repeat(40)).as_bytes(),
        );
    }
    b
}

fn generation(v: &[u8]) -> u64 {
    std::str::from_utf8(&v[..8]).unwrap().parse().unwrap()
}

#[test]
fn readers_see_whole_batches_through_flushes_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    for g in 0..GROUPS {
        db.write(group_batch(g, 0), &WriteOptions::default())
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for w in 0..2u64 {
        let (db, stop, written) = (db.clone(), stop.clone(), written.clone());
        threads.push(thread::spawn(move || {
            let mut generation = 1;
            while !stop.load(Ordering::Relaxed) && generation < 3000 {
                let g = (generation * 3 + w) % GROUPS;
                db.write(group_batch(g, generation), &WriteOptions::default())
                    .unwrap();
                written.fetch_add(1, Ordering::Relaxed);
                generation += 1;
            }
        }));
    }
    let mut checks = 0u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while written.load(Ordering::Relaxed) < 4000 {
        // A writer that panicked never reaches the count: fail instead of spinning forever.
        assert!(
            threads.iter().all(|t| !t.is_finished()) || written.load(Ordering::Relaxed) >= 4000,
            "a writer thread stopped early"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "writers made too little progress"
        );
        // A scan of one group: all keys carry one generation.
        let g = checks % GROUPS;
        let prefix = format!("g{g}/");
        let gens: Vec<u64> = db
            .prefix(prefix.as_bytes())
            .unwrap()
            .map(|r| generation(&r.unwrap().1))
            .collect();
        assert_eq!(gens.len() as u64, KEYS_PER_GROUP);
        assert!(
            gens.windows(2).all(|w| w[0] == w[1]),
            "torn batch in a scan: {gens:?}"
        );
        // A snapshot read key by key agrees with itself too, even as files change under it.
        let snap = db.snapshot();
        let gens: Vec<u64> = (0..KEYS_PER_GROUP)
            .map(|i| generation(&snap.get(&key(g, i)).unwrap().unwrap()))
            .collect();
        assert!(
            gens.windows(2).all(|w| w[0] == w[1]),
            "torn batch in a snapshot: {gens:?}"
        );
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let s = db.stats();
    assert!(s.counters.flushes > 5, "flushes: {}", s.counters.flushes);
    assert!(
        s.counters.compactions > 0,
        "compactions: {}",
        s.counters.compactions
    );
    assert!(checks > 10);
}

#[test]
fn an_open_iterator_keeps_its_snapshot_while_files_are_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    for i in 0..2000u32 {
        db.put(format!("k{i:05}").as_bytes(), b"old").unwrap();
    }
    db.flush().unwrap();
    let mut it = db.range(..).unwrap();
    // Consume a little, then rewrite everything and compact the old files away.
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.1.as_ref(), b"old");
    for i in 0..2000u32 {
        if i % 2 == 0 {
            db.put(format!("k{i:05}").as_bytes(), b"new").unwrap();
        } else {
            db.delete(format!("k{i:05}").as_bytes()).unwrap();
        }
    }
    db.compact_range(..).unwrap();
    let rest: Vec<_> = it.map(|r| r.unwrap()).collect();
    assert_eq!(rest.len(), 1999);
    assert!(rest.iter().all(|(_, v)| v.as_ref() == b"old"));
    // The files the iterator held are gone now that it is dropped.
    let live = db.range(..).unwrap().count();
    assert_eq!(live, 1000);
    assert!(db.stats().counters.tables_deleted > 0);
}

#[test]
fn concurrent_synced_writers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            sync: SyncPolicy::EveryCommit,
            ..options()
        },
    )
    .unwrap();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let db = db.clone();
            thread::spawn(move || {
                for i in 0..100 {
                    db.put(format!("t{t}-{i}").as_bytes(), b"v").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = db.stats().counters;
    assert_eq!(c.puts, 1600);
    // Group commit: fewer syncs than writes (each write needs one, groups share them).
    assert!(c.wal_syncs < 1600, "wal syncs {}", c.wal_syncs);
    for t in 0..16 {
        for i in 0..100 {
            assert!(db.get(format!("t{t}-{i}").as_bytes()).unwrap().is_some());
        }
    }
}
