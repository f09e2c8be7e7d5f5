//! Writes keys, reads them back, scans a prefix, deletes some, reopens, and reports what the
//! engine did. `cargo run --release -p distkv-lsm --example quickstart -- [DIR] [KEYS]`

use std::time::Instant;

use distkv_lsm::{Db, Options, SyncPolicy, WriteBatch, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data/quickstart".into());
    let keys: u64 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(500_000);
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let db = Db::open(&dir, opts.clone())?;

    let started = Instant::now();
    let mut batch = WriteBatch::new();
    for i in 0..keys {
        batch.put(
            format!("user:{i:010}").as_bytes(),
            format!("value-{i}").as_bytes(),
        );
        if batch.len() == 1000 {
            db.write(std::mem::take(&mut batch), &WriteOptions::default())?;
        }
    }
    db.write(batch, &WriteOptions { sync: true })?;
    let write_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    for i in (0..keys).step_by(7) {
        let key = format!("user:{i:010}");
        let value = db.get(key.as_bytes())?.ok_or("a written key is missing")?;
        if value.as_ref() != format!("value-{i}").as_bytes() {
            return Err(format!("wrong value for {key}").into());
        }
    }
    let reads = keys.div_ceil(7);
    let read_secs = started.elapsed().as_secs_f64();

    let scanned = db.prefix(b"user:00000001")?.count();
    for i in (0..keys).step_by(2) {
        db.delete(format!("user:{i:010}").as_bytes())?;
    }
    db.flush()?;
    db.close()?;
    drop(db);

    let db = Db::open(&dir, opts)?;
    let live = db.range(..)?.filter(|r| r.is_ok()).count() as u64;
    if live != keys / 2 {
        return Err(format!("after reopen {live} keys are live, expected {}", keys / 2).into());
    }
    let s = db.stats();
    println!("DistKV storage engine quickstart ({dir})");
    println!(
        "  wrote {keys} keys in {write_secs:.2}s ({:.0} writes/s)",
        keys as f64 / write_secs
    );
    println!(
        "  read back {reads} keys in {read_secs:.2}s ({:.0} reads/s), all correct",
        reads as f64 / read_secs
    );
    println!("  prefix scan 'user:00000001': {scanned} keys");
    println!("  deleted every other key, reopened: {live} live keys");
    println!(
        "  SSTables per level: {:?}",
        s.levels.iter().map(|l| l.files).collect::<Vec<_>>()
    );
    println!(
        "  on-disk tables: {:.1} MiB",
        s.sst_bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}
