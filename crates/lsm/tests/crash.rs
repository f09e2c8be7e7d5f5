//! Crash test: a child process writes with sync on every commit and is SIGKILLed at a random
//! moment, again and again. After each kill the database must open cleanly and hold every
//! acknowledged write, and the one batch in flight must be all there or not at all.
//!
//! A second run does the same with syncing off: a process crash (unlike a machine crash) must
//! not lose acknowledged writes either, since they are in the kernel's page cache (through
//! `write` or the WAL's memory mapping) before they are acknowledged.
//!
//! A third run writes through [`Db::write_nowait`] and acknowledges a batch only once its
//! [`distkv_lsm::Durable`] resolves: the path async callers use, where the sync runs on the
//! engine's own thread.
//!
//! `DISTKV_CRASH_CYCLES` sets the number of kills (default 4; the heavy suite runs 50) and
//! `DISTKV_CRASH_SEED` the seed of the kill timing (printed on failure).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use distkv_lsm::{Db, Options, SyncPolicy, WriteBatch, WriteOptions};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Keys deleted `DELETE_LAG` batches after they were written.
const DELETE_LAG: u64 = 10;

fn options(sync: bool) -> Options {
    Options {
        sync: if sync {
            SyncPolicy::EveryCommit
        } else {
            SyncPolicy::Never
        },
        // Small memtables and files so that kills land during flushes and compactions too.
        memtable_bytes: 16 * 1024,
        max_memtable_memory: 64 * 1024,
        target_file_bytes: 64 * 1024,
        level1_bytes: 64 * 1024,
        l0_compaction_trigger: 2,
        ..Options::default()
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:010}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i}-")
        .repeat(1 + (i % 7) as usize)
        .into_bytes()
}

/// Batch `i` puts key i, deletes key i - DELETE_LAG and sets `counter` to i.
fn batch(i: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(&key(i), &value(i));
    if i >= DELETE_LAG {
        b.delete(&key(i - DELETE_LAG));
    }
    b.put(b"counter", i.to_string().as_bytes());
    b
}

/// The child: open, continue from the counter, write batches until killed, printing each
/// acknowledged batch number.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("DISTKV_CRASH_CHILD_DIR") else {
        return;
    };
    let sync = std::env::var("DISTKV_CRASH_CHILD_SYNC").as_deref() == Ok("1");
    let nowait = std::env::var("DISTKV_CRASH_CHILD_NOWAIT").as_deref() == Ok("1");
    let db = Db::open(&dir, options(sync)).expect("child open");
    let start = db.get(b"counter").unwrap().map_or(0, |v| {
        std::str::from_utf8(&v).unwrap().parse::<u64>().unwrap() + 1
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "start {start}").unwrap();
    for i in start.. {
        if nowait {
            match db
                .write_nowait(batch(i), &WriteOptions { sync })
                .expect("child write")
            {
                distkv_lsm::Submitted::Applied(durable) => {
                    common::block_on(durable, Duration::from_secs(60)).expect("child sync");
                }
                distkv_lsm::Submitted::WouldStall(b) => {
                    db.write(b, &WriteOptions { sync }).expect("child write")
                }
            }
        } else {
            db.write(batch(i), &WriteOptions { sync })
                .expect("child write");
        }
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

/// Checks the database against what the children acknowledged. `acked` is the last
/// acknowledged batch; batch `acked + 1` may or may not have landed.
fn verify(dir: &Path, acked: Option<u64>, seed: u64, cycle: usize) -> u64 {
    let ctx = format!("seed {seed}, cycle {cycle}, last acked {acked:?}");
    let db = Db::open(dir, options(true)).unwrap_or_else(|e| panic!("reopen failed ({ctx}): {e}"));
    let counter = db
        .get(b"counter")
        .unwrap()
        .map(|v| std::str::from_utf8(&v).unwrap().parse::<u64>().unwrap());
    let last = match (acked, counter) {
        (None, None) => return 0,
        (Some(a), Some(c)) => {
            assert!(c == a || c == a + 1, "counter {c} ({ctx})");
            c
        }
        (None, Some(c)) => {
            assert_eq!(c, 0, "{ctx}");
            c
        }
        (Some(_), None) => panic!("acknowledged counter lost ({ctx})"),
    };
    // Exactly the keys of the last DELETE_LAG batches are live, with their values.
    let live: Vec<(Vec<u8>, Vec<u8>)> = db
        .prefix(b"key-")
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap_or_else(|e| panic!("scan failed ({ctx}): {e}"));
            (k.to_vec(), v.to_vec())
        })
        .collect();
    let first = (last + 1).saturating_sub(DELETE_LAG);
    let want: Vec<(Vec<u8>, Vec<u8>)> = (first..=last).map(|i| (key(i), value(i))).collect();
    assert_eq!(live, want, "{ctx}");
    for i in first..=last {
        assert_eq!(
            db.get(&key(i)).unwrap().unwrap().as_ref(),
            value(i).as_slice(),
            "{ctx}"
        );
    }
    db.close().unwrap();
    last + 1
}

#[test]
fn acknowledged_synced_writes_survive_sigkill() {
    sigkill_cycles(true, false);
}

#[test]
fn acknowledged_unsynced_writes_survive_sigkill_of_the_process() {
    sigkill_cycles(false, false);
}

#[test]
fn writes_acknowledged_when_their_durable_future_resolves_survive_sigkill() {
    sigkill_cycles(true, true);
}

fn sigkill_cycles(sync: bool, nowait: bool) {
    let cycles: usize = std::env::var("DISTKV_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("DISTKV_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!(
        "crash test (sync {sync}, nowait {nowait}): {cycles} cycles, DISTKV_CRASH_SEED={seed}"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Option<u64> = None;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("DISTKV_CRASH_CHILD_DIR", dir.path())
            .env("DISTKV_CRASH_CHILD_SYNC", if sync { "1" } else { "0" })
            .env("DISTKV_CRASH_CHILD_NOWAIT", if nowait { "1" } else { "0" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it write a random number of batches (or for a random time), then kill it.
        let target_acks: u64 = rng.random_range(1..if sync { 400 } else { 5_000 });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut acks_this_cycle = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ack ") {
                acked = Some(n.parse().unwrap());
                acks_this_cycle += 1;
                if acks_this_cycle >= target_acks || Instant::now() > deadline {
                    break;
                }
            }
        }
        // SIGKILL: no destructor, no close, possibly mid-write of the next batch.
        child.kill().unwrap();
        child.wait().unwrap();
        // The child ran on while we decided: every ack it printed before dying counts.
        for line in lines {
            if let Some(n) = line.unwrap().strip_prefix("ack ") {
                acked = Some(n.parse().unwrap());
                acks_this_cycle += 1;
            }
        }
        assert!(
            acks_this_cycle > 0,
            "child made no progress (seed {seed}, cycle {cycle})"
        );
        let next = verify(dir.path(), acked, seed, cycle);
        // The batch in flight may have landed; the next child continues after it.
        acked = Some(next - 1);
    }
}
