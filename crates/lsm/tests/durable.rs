//! The non-blocking write path ([`Db::write_nowait`] and its [`Durable`] future) and reads
//! answered from memory ([`Db::get_cached`]).

mod common;

use std::time::Duration;

use common::block_on;

use distkv_lsm::{Cached, Db, Durable, Options, Submitted, SyncPolicy, WriteBatch, WriteOptions};

fn synced_options() -> Options {
    Options {
        sync: SyncPolicy::EveryCommit,
        ..Options::default()
    }
}

fn put_batch(k: &[u8], v: &[u8]) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(k, v);
    b
}

fn applied(s: Submitted) -> Durable {
    match s {
        Submitted::Applied(d) => d,
        Submitted::WouldStall(_) => panic!("an idle engine stalled a write"),
    }
}

#[test]
fn a_nowait_write_is_visible_at_once_and_durable_when_its_future_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), synced_options()).unwrap();
    let syncs_before = db.stats().counters.wal_syncs;
    let durable = applied(
        db.write_nowait(put_batch(b"k", b"v"), &WriteOptions::default())
            .unwrap(),
    );
    // Visible before the sync: the write was applied on this thread.
    assert_eq!(db.get(b"k").unwrap().unwrap().as_ref(), b"v");
    block_on(durable, Duration::from_secs(10)).unwrap();
    assert!(db.stats().counters.wal_syncs > syncs_before);
    // Once resolved, a fresh one for the same state is done at once.
    assert!(db.durable_now().is_done());
}

#[test]
fn without_a_sync_policy_or_option_nothing_waits() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let d = applied(
        db.write_nowait(put_batch(b"k", b"v"), &WriteOptions::default())
            .unwrap(),
    );
    assert!(d.is_done());
    // ...but a write that asks for a sync gets one.
    let syncs = db.stats().counters.wal_syncs;
    let d = applied(
        db.write_nowait(put_batch(b"k2", b"v"), &WriteOptions { sync: true })
            .unwrap(),
    );
    block_on(d, Duration::from_secs(10)).unwrap();
    assert!(db.stats().counters.wal_syncs > syncs);
}

#[test]
fn concurrent_writers_awaiting_and_blocking_all_become_durable() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), synced_options()).unwrap();
    on_threads(&db, 8, |db, t| {
        for i in 0..100 {
            let k = format!("t{t}-{i:03}");
            if t % 2 == 0 {
                // Behind a writer that holds the WAL (preempted, with more threads
                // than cores) a non-blocking write may come back: it is written as
                // blocking then, as the node does.
                match db
                    .write_nowait(put_batch(k.as_bytes(), b"x"), &WriteOptions::default())
                    .unwrap()
                {
                    Submitted::Applied(d) => block_on(d, Duration::from_secs(30)).unwrap(),
                    Submitted::WouldStall(b) => db.write(b, &WriteOptions::default()).unwrap(),
                }
            } else {
                db.write(put_batch(k.as_bytes(), b"x"), &WriteOptions::default())
                    .unwrap();
            }
        }
    });
    assert!(db.stats().counters.wal_syncs >= 1);
    assert_eq!(keys_after_reopen(db, dir.path()), 800);
}

/// Only non-blocking writers: every sync is the sync thread's, which writers wake without a
/// lock when it is idle and leave alone when it is busy. A request it missed would leave a
/// writer waiting for good (the 30 s deadline fails the test); every write must survive.
#[test]
fn awaiting_writers_alone_are_all_synced_by_the_sync_thread() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), synced_options()).unwrap();
    on_threads(&db, 8, |db, t| {
        for i in 0..300 {
            let k = format!("t{t}-{i:03}");
            let mut batch = put_batch(k.as_bytes(), b"x");
            loop {
                match db.write_nowait(batch, &WriteOptions::default()).unwrap() {
                    Submitted::Applied(d) => {
                        block_on(d, Duration::from_secs(30)).unwrap();
                        break;
                    }
                    // Behind a writer switching memtables: try again, still without
                    // blocking, so no sync round runs on this thread.
                    Submitted::WouldStall(b) => {
                        batch = b;
                        std::thread::yield_now();
                    }
                }
            }
        }
    });
    assert_eq!(keys_after_reopen(db, dir.path()), 2400);
}

/// Runs `work(db, t)` on `n` threads at once (t = 0..n) and waits for them all.
fn on_threads(db: &Db, n: usize, work: impl Fn(&Db, usize) + Send + Sync + 'static) {
    let work = std::sync::Arc::new(work);
    let threads: Vec<_> = (0..n)
        .map(|t| {
            let (db, work) = (db.clone(), std::sync::Arc::clone(&work));
            std::thread::spawn(move || work(&db, t))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Closes `db`, opens its directory again and counts its keys.
fn keys_after_reopen(db: Db, dir: &std::path::Path) -> usize {
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir, synced_options()).unwrap();
    db.range(..).unwrap().count()
}

/// A simulated machine crash keeps exactly the writes that were acknowledged durable: a
/// write whose `Durable` resolved is there after reopening, one whose `Durable` failed with
/// `Closed` (its sync had not started: its records never left the process) is not.
#[test]
fn a_crash_keeps_exactly_the_writes_whose_sync_finished() {
    let dir = tempfile::tempdir().unwrap();
    let mut lost = 0;
    for round in 0..10 {
        let db = Db::open(dir.path(), synced_options()).unwrap();
        let pending: Vec<(String, Durable)> = (0..200)
            .map(|i| {
                let k = format!("r{round}-{i:03}");
                let d = applied(
                    db.write_nowait(put_batch(k.as_bytes(), b"x"), &WriteOptions::default())
                        .unwrap(),
                );
                (k, d)
            })
            .collect();
        db.crash();
        let outcomes: Vec<(String, bool)> = pending
            .into_iter()
            .map(|(k, d)| match block_on(d, Duration::from_secs(10)) {
                Ok(()) => (k, true),
                Err(distkv_lsm::Error::Closed) => (k, false),
                Err(e) => panic!("{k}: {e}"),
            })
            .collect();
        assert!(matches!(
            db.write(put_batch(b"late", b"v"), &WriteOptions::default()),
            Err(distkv_lsm::Error::Closed)
        ));
        drop(db);
        let db = Db::open(dir.path(), synced_options()).unwrap();
        for (k, acknowledged) in outcomes {
            let present = db.get(k.as_bytes()).unwrap().is_some();
            assert_eq!(
                present, acknowledged,
                "{k}: acknowledged {acknowledged}, present {present}"
            );
            lost += usize::from(!acknowledged);
        }
        db.close().unwrap();
    }
    assert!(lost > 0, "no crash caught a write before its sync");
}

/// With syncs held (a simulation's mode), nothing is synced until `sync_held` runs a round:
/// async and blocking writers wait for it, and a crash loses exactly what was applied since.
#[test]
fn held_syncs_run_only_when_asked_and_a_crash_loses_what_came_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), synced_options()).unwrap();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    db.hold_syncs({
        let asked = std::sync::Arc::clone(&asked);
        move || {
            asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let first: Vec<Durable> = (0..10)
        .map(|i| {
            let k = format!("first-{i}");
            applied(
                db.write_nowait(put_batch(k.as_bytes(), b"x"), &WriteOptions::default())
                    .unwrap(),
            )
        })
        .collect();
    // A blocking writer does not run the round itself either.
    let blocking = {
        let db = db.clone();
        std::thread::spawn(move || db.write(put_batch(b"blocking", b"x"), &WriteOptions::default()))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db.get(b"blocking").unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the blocking write was never applied"
        );
        std::thread::yield_now();
    }
    assert!(
        first.iter().all(|d| !d.is_done()),
        "a held sync ran by itself"
    );
    assert!(
        asked.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "no writer's request for a sync reached the hook"
    );
    assert!(
        !blocking.is_finished(),
        "a blocking writer synced while syncs were held"
    );
    assert_eq!(db.stats().counters.wal_syncs, 0);

    db.sync_held().unwrap();
    assert!(first.iter().all(Durable::is_done));
    blocking.join().unwrap().unwrap();
    assert_eq!(db.stats().counters.wal_syncs, 1);
    // Nothing applied since: no round, no fdatasync.
    db.sync_held().unwrap();
    assert_eq!(db.stats().counters.wal_syncs, 1);

    let later = applied(
        db.write_nowait(put_batch(b"later", b"x"), &WriteOptions::default())
            .unwrap(),
    );
    db.crash();
    assert!(matches!(
        block_on(later, Duration::from_secs(10)),
        Err(distkv_lsm::Error::Closed)
    ));
    assert!(matches!(db.sync_held(), Err(distkv_lsm::Error::Closed)));
    drop(db);
    let db = Db::open(dir.path(), synced_options()).unwrap();
    for i in 0..10 {
        assert!(
            db.get(format!("first-{i}").as_bytes()).unwrap().is_some(),
            "first-{i}"
        );
    }
    assert!(db.get(b"blocking").unwrap().is_some());
    assert!(
        db.get(b"later").unwrap().is_none(),
        "a write applied after the last held sync survived the crash"
    );
}

#[test]
fn dropping_a_durable_leaves_the_write_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), synced_options()).unwrap();
    let d = applied(
        db.write_nowait(put_batch(b"k", b"v"), &WriteOptions::default())
            .unwrap(),
    );
    drop(d);
    // A later barrier covers it.
    block_on(db.durable_now(), Duration::from_secs(10)).unwrap();
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), synced_options()).unwrap();
    assert_eq!(db.get(b"k").unwrap().unwrap().as_ref(), b"v");
}

#[test]
fn closing_resolves_the_writes_waiting_for_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), synced_options()).unwrap();
    let pending: Vec<Durable> = (0..50)
        .map(|i| {
            applied(
                db.write_nowait(
                    put_batch(format!("k{i}").as_bytes(), b"v"),
                    &WriteOptions::default(),
                )
                .unwrap(),
            )
        })
        .collect();
    db.close().unwrap();
    for d in pending {
        block_on(d, Duration::from_secs(10)).unwrap();
    }
    assert!(matches!(
        db.write_nowait(put_batch(b"late", b"v"), &WriteOptions::default()),
        Err(distkv_lsm::Error::Closed)
    ));
}

#[test]
fn get_cached_answers_from_memory_and_asks_for_io_on_a_cold_block() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        for i in 0..1000 {
            db.put(format!("key-{i:04}").as_bytes(), b"on disk")
                .unwrap();
        }
        db.flush().unwrap();
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), opts).unwrap();
    db.put(b"key-in-memtable", b"in memory").unwrap();
    assert_eq!(
        db.get_cached(b"key-in-memtable").unwrap(),
        Cached::Hit(Some(bytes::Bytes::from_static(b"in memory")))
    );
    // Outside every table's key range: absent without a read.
    assert_eq!(db.get_cached(b"zzz").unwrap(), Cached::Hit(None));
    // A freshly opened table's blocks are not cached...
    assert_eq!(db.get_cached(b"key-0500").unwrap(), Cached::NeedsIo);
    // ...until a read that may block brings the block in.
    assert_eq!(db.get(b"key-0500").unwrap().unwrap().as_ref(), b"on disk");
    assert_eq!(
        db.get_cached(b"key-0500").unwrap(),
        Cached::Hit(Some(bytes::Bytes::from_static(b"on disk")))
    );
    // Bad keys are refused as by get.
    assert!(matches!(
        db.get_cached(b""),
        Err(distkv_lsm::Error::EmptyKey)
    ));
}

#[test]
fn a_nowait_write_never_switches_a_full_memtable() {
    // Switching a full memtable syncs the WAL and creates the next one: file work that a
    // writer which must not block leaves to one that may.
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_bytes: 4096,
        ..synced_options()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let value = [7u8; 256];
    let mut written = 0;
    let batch = loop {
        match db
            .write_nowait(
                put_batch(format!("k{written:04}").as_bytes(), &value),
                &WriteOptions::default(),
            )
            .unwrap()
        {
            Submitted::Applied(d) => block_on(d, Duration::from_secs(10)).unwrap(),
            Submitted::WouldStall(batch) => break batch,
        }
        written += 1;
        assert!(
            written < 1000,
            "a 4 KiB memtable took {written} writes of 256 bytes"
        );
    };
    // The memtable was full (4 KiB of 256-byte values, with their keys and overhead).
    assert!(
        (10..=16).contains(&written),
        "{written} writes before the switch"
    );
    assert_eq!(db.stats().counters.flushes, 0, "nothing was switched");
    // The batch came back unapplied; a writer that may block switches and applies it.
    assert!(
        db.get(format!("k{written:04}").as_bytes())
            .unwrap()
            .is_none()
    );
    db.write(batch, &WriteOptions::default()).unwrap();
    assert_eq!(
        db.get(format!("k{written:04}").as_bytes())
            .unwrap()
            .unwrap()
            .as_ref(),
        value
    );
    // With a fresh memtable, non-blocking writes are applied again.
    let d = applied(
        db.write_nowait(put_batch(b"after", &value), &WriteOptions::default())
            .unwrap(),
    );
    block_on(d, Duration::from_secs(10)).unwrap();
    // Everything written is there, before and after the switch.
    for i in 0..=written {
        assert!(
            db.get(format!("k{i:04}").as_bytes()).unwrap().is_some(),
            "k{i:04}"
        );
    }
}
