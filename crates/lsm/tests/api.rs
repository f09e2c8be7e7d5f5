//! Bad input, limits, tombstone TTL, statistics and lifecycle.

use std::sync::Arc;
use std::time::Duration;

use distkv_lsm::{
    BloomConfig, Db, Error, ManualClock, Options, SyncPolicy, WriteBatch, WriteOptions,
};

fn small() -> Options {
    Options {
        memtable_bytes: 16 * 1024,
        max_memtable_memory: 128 * 1024,
        sync: SyncPolicy::Never,
        ..Options::default()
    }
}

#[test]
fn bad_input_gets_typed_errors_and_the_database_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_key_bytes: 100,
        max_value_bytes: 1000,
        max_batch_bytes: 4000,
        ..small()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    assert!(matches!(db.put(b"", b"v"), Err(Error::EmptyKey)));
    assert!(matches!(db.get(b""), Err(Error::EmptyKey)));
    assert!(matches!(db.delete(b""), Err(Error::EmptyKey)));
    assert!(matches!(
        db.put(&[b'k'; 101], b"v"),
        Err(Error::KeyTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        db.put(b"k", &[0; 1001]),
        Err(Error::ValueTooLarge {
            len: 1001,
            max: 1000
        })
    ));
    let mut b = WriteBatch::new();
    for i in 0..10 {
        b.put(format!("k{i}").as_bytes(), &[0; 900]);
    }
    let err = db.write(b, &WriteOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::BatchTooLarge { max: 4000, .. }),
        "{err}"
    );
    assert!(err.is_invalid_argument());
    // A batch with one bad entry is refused whole.
    let mut b = WriteBatch::new();
    b.put(b"good", b"v").put(b"", b"v");
    assert!(matches!(
        db.write(b, &WriteOptions::default()),
        Err(Error::EmptyKey)
    ));
    assert_eq!(db.get(b"good").unwrap(), None);
    // Limits are inclusive and the database still works.
    db.put(&[b'k'; 100], &[1; 1000]).unwrap();
    assert_eq!(db.get(&[b'k'; 100]).unwrap().unwrap().len(), 1000);
    assert_eq!(
        Error::KeyTooLarge { len: 101, max: 100 }.to_string(),
        "key is 101 bytes, the limit is 100"
    );
}

#[test]
fn invalid_options_and_a_second_opener_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Db::open(
        dir.path(),
        Options {
            max_memtable_memory: 1024 * 1024,
            memtable_bytes: 1024 * 1024,
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
    let db = Db::open(dir.path(), small()).unwrap();
    let err = Db::open(dir.path(), small()).unwrap_err();
    assert!(matches!(err, Error::Locked(_)), "{err}");
    db.close().unwrap();
    assert!(matches!(db.get(b"k"), Err(Error::Closed)));
    drop(db);
    Db::open(dir.path(), small()).unwrap();
}

#[test]
fn tombstones_are_dropped_only_at_the_bottom_and_after_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let opts = Options {
        tombstone_ttl: Duration::from_secs(3600),
        clock: clock.clone(),
        ..small()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    for i in 0..100 {
        db.put(format!("k{i:03}").as_bytes(), b"v").unwrap();
    }
    db.flush().unwrap();
    for i in 0..50 {
        db.delete(format!("k{i:03}").as_bytes()).unwrap();
    }
    db.compact_range(..).unwrap();
    // Values under the tombstones are gone; the young tombstones stay.
    let s = db.stats();
    assert_eq!(s.sst_entries, 100, "50 values + 50 tombstones");
    assert_eq!(db.range(..).unwrap().count(), 50);
    clock.advance(Duration::from_secs(3599));
    db.compact_range(..).unwrap();
    assert_eq!(db.stats().sst_entries, 100);
    clock.advance(Duration::from_secs(2));
    db.compact_range(..).unwrap();
    let s = db.stats();
    assert_eq!(s.sst_entries, 50);
    assert_eq!(s.counters.tombstones_dropped, 50);
    assert_eq!(db.get(b"k010").unwrap(), None);
    assert_eq!(db.range(..).unwrap().count(), 50);
}

#[test]
fn stats_report_levels_cache_and_bloom_false_positives_within_twice_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        bloom: BloomConfig::FalsePositiveRate(0.01),
        ..small()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    for i in 0..20_000 {
        db.put(format!("present-{i}").as_bytes(), b"value").unwrap();
    }
    db.flush().unwrap();
    db.wait_for_compactions().unwrap();
    for i in 0..20_000 {
        // Inside the tables' key ranges, so only the bloom filter can skip them.
        assert_eq!(
            db.get(format!("present-{i}-absent").as_bytes()).unwrap(),
            None
        );
    }
    for i in 0..1000 {
        assert!(db.get(format!("present-{i}").as_bytes()).unwrap().is_some());
    }
    let s = db.stats();
    let fpr = s.bloom_false_positive_rate();
    assert!(fpr > 0.0 && fpr <= 0.02, "measured bloom FPR {fpr}");
    assert!(s.sst_files() > 0 && s.sst_bytes > 0);
    assert_eq!(s.levels.len(), 7);
    assert!(s.counters.cache_hits + s.counters.cache_misses > 0);
    assert!(s.cache_hit_rate() > 0.0);
    assert!(s.write_amplification() > 1.0);
    assert_eq!(s.counters.gets, 21_000);
    assert_eq!(s.counters.gets_found, 1000);
    assert!(s.get_latency.p99 >= s.get_latency.p50 && s.get_latency.count == 21_000);
    assert!(s.memory_bytes > 0 && s.memory_bytes <= s.memory_limit);
}

#[test]
fn the_block_cache_gives_way_to_indexes_and_filters_within_max_memory() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_bytes: 64 * 1024,
        max_memtable_memory: 256 * 1024,
        block_cache_bytes: 16 << 20,
        // Half a MiB beside memtables and cache: the filters of 400,000 keys need more.
        max_memory: (256 << 10) + (16 << 20) + (512 << 10),
        bloom: BloomConfig::BitsPerKey(20.0),
        ..small()
    };
    let within_limit = |db: &Db| {
        db.wait_for_compactions().unwrap();
        let s = db.stats();
        assert!(s.table_index_bytes > 512 << 10, "{s:?}");
        // The cache splits its capacity over shards, rounding each share up: a few bytes.
        let budget = s.block_cache_capacity + s.table_index_bytes as u64 + (256 << 10);
        assert!(budget.abs_diff(s.memory_limit) < 4096, "{s:?}");
        assert!(s.block_cache_capacity < 16 << 20);
        assert!(s.memory_bytes <= s.memory_limit, "{s:?}");
        s.block_cache_capacity
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(db.stats().block_cache_capacity, 16 << 20);
    for chunk in 0..40 {
        let mut batch = WriteBatch::new();
        for i in 0..10_000 {
            batch.put(format!("key-{chunk:02}-{i:05}").as_bytes(), b"value");
        }
        db.write(batch, &WriteOptions::default()).unwrap();
    }
    db.flush().unwrap();
    let before = within_limit(&db);
    for i in (0..400_000).step_by(997) {
        let key = format!("key-{:02}-{:05}", i / 10_000, i % 10_000);
        assert_eq!(
            db.get(key.as_bytes()).unwrap().as_deref(),
            Some(&b"value"[..])
        );
    }
    db.close().unwrap();
    drop(db);
    // Opening again sizes the cache for the tables it finds.
    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(within_limit(&db), before);
}

#[test]
fn interval_sync_policy_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            sync: SyncPolicy::Interval(Duration::from_millis(20)),
            ..small()
        },
    )
    .unwrap();
    db.put(b"k", b"v").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db.stats().counters.wal_syncs == 0 {
        assert!(std::time::Instant::now() < deadline, "no background sync");
        std::thread::yield_now();
    }
}

#[test]
fn a_checkpoint_is_a_consistent_copy_that_outlives_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    for i in 0..2000u32 {
        db.put(format!("k{i:05}").as_bytes(), &[b'v'; 100]).unwrap();
    }
    db.delete(b"k00007").unwrap(); // still in the memtable: the checkpoint flushes it
    let path = out.path().join("nested/cp1");
    let cp = db.checkpoint(&path).unwrap();
    assert_eq!(cp.path, path);
    assert!(cp.tables > 0 && cp.bytes > 0, "{cp:?}");
    assert!(!out.path().join("nested/cp1.partial").exists());

    // A second checkpoint to the same place is refused, naming it.
    let err = db.checkpoint(&path).unwrap_err();
    assert!(err.to_string().contains("cp1"), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");

    // Later writes and compactions that delete the original tables do not touch it.
    for i in 0..2000u32 {
        db.put(format!("k{i:05}").as_bytes(), b"new").unwrap();
    }
    db.compact_range(&b""[..]..).unwrap();
    db.close().unwrap();
    drop(db);

    let copy = Db::open(&path, small()).unwrap();
    let items: Vec<_> = copy.range(..).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(items.len(), 1999);
    assert!(items.iter().all(|(_, v)| v.as_ref() == [b'v'; 100]));
    assert_eq!(copy.get(b"k00007").unwrap(), None);
    // It is a database of its own: it takes writes and keeps them across a reopen.
    copy.put(b"k00007", b"restored").unwrap();
    copy.close().unwrap();
    drop(copy);
    let copy = Db::open(&path, small()).unwrap();
    assert_eq!(
        copy.get(b"k00007").unwrap().as_deref(),
        Some(&b"restored"[..])
    );
}

#[test]
fn a_checkpoint_taken_under_concurrent_writes_holds_whole_batches() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // Small memtables: flushes and compactions run all the time during the checkpoints.
    let db = Db::open(
        dir.path(),
        Options {
            memtable_bytes: 4096,
            l0_compaction_trigger: 2,
            ..small()
        },
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU32::new(0));
    let writer = {
        let (db, stop, acked) = (db.clone(), Arc::clone(&stop), Arc::clone(&acked));
        std::thread::spawn(move || {
            let mut round = 1u32;
            while !stop.load(Ordering::Relaxed) {
                // Every batch writes the same round number under both keys, plus filler.
                let mut b = WriteBatch::new();
                b.put(b"a", &round.to_be_bytes())
                    .put(b"b", &round.to_be_bytes())
                    .put(format!("filler{}", round % 500).as_bytes(), &[0; 64]);
                db.write(b, &WriteOptions::default()).unwrap();
                acked.store(round, Ordering::Release);
                round += 1;
            }
        })
    };
    for n in 0..20 {
        // Wait for some writes, then note what has been acknowledged before the checkpoint.
        let seen = acked.load(Ordering::Acquire);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while acked.load(Ordering::Acquire) < seen + 50 {
            assert!(std::time::Instant::now() < deadline, "the writer stopped");
            std::thread::yield_now();
        }
        let before = acked.load(Ordering::Acquire);
        let path = out.path().join(format!("cp{n}"));
        db.checkpoint(&path).unwrap();
        let copy = Db::open(&path, small()).unwrap();
        let (a, b) = (copy.get(b"a").unwrap(), copy.get(b"b").unwrap());
        assert_eq!(a, b, "checkpoint {n} split a batch");
        let round = u32::from_be_bytes(a.expect("round written").as_ref().try_into().unwrap());
        assert!(
            round >= before,
            "checkpoint {n} holds round {round}, {before} was acknowledged"
        );
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        db.stats().counters.compactions > 0,
        "no compaction ran meanwhile"
    );
}
