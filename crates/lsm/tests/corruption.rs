//! Corruption: damaged WAL, SSTable and manifest bytes give a corruption error that names the
//! file, never a panic and never wrong data. The format fixture in `fixtures/v1` (written by an
//! earlier build) must keep opening with the same contents.
//!
//! Regenerate the fixture with `DISTKV_WRITE_FIXTURE=1 cargo test -p distkv-lsm --test corruption`.

use std::path::{Path, PathBuf};

use distkv_lsm::{Db, Error, Options, SyncPolicy};

const FLUSHED: u32 = 300;
const IN_WAL: u32 = 40;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn options() -> Options {
    Options {
        block_bytes: 512,
        sync: SyncPolicy::EveryCommit,
        ..Options::default()
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("fixture-key-{i:05}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    format!("value {i} ")
        .repeat(1 + (i % 5) as usize)
        .into_bytes()
}

/// Writes the fixture: `FLUSHED` keys in an SSTable, then `IN_WAL` more (and a delete) only in
/// the WAL, left as after a crash.
fn write_fixture(dir: &Path) {
    let db = Db::open(dir, options()).unwrap();
    for i in 0..FLUSHED {
        db.put(&key(i), &value(i)).unwrap();
    }
    db.flush().unwrap();
    for i in FLUSHED..FLUSHED + IN_WAL {
        db.put(&key(i), &value(i)).unwrap();
    }
    db.delete(&key(7)).unwrap();
    db.close().unwrap();
    drop(db);
    std::fs::remove_file(dir.join("LOCK")).unwrap();
    // Keep the fixture small: drop the recycled (obsolete) WAL and the pre-zeroed tail of the
    // live one, which replay treats the same as end of file.
    let manifest_wal = wal_files(dir).into_iter().max().unwrap();
    for wal in wal_files(dir) {
        if wal != manifest_wal {
            std::fs::remove_file(&wal).unwrap();
        }
    }
    let bytes = std::fs::read(&manifest_wal).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    std::fs::write(&manifest_wal, &bytes[..end]).unwrap();
}

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn expected(i: u32) -> Option<Vec<u8>> {
    (i != 7 && i < FLUSHED + IN_WAL).then(|| value(i))
}

/// A private copy of the fixture (opening a database rewrites its manifest).
fn copy_fixture() -> tempfile::TempDir {
    let src = fixture_dir();
    if std::env::var_os("DISTKV_WRITE_FIXTURE").is_some() && !src.join("CURRENT").exists() {
        std::fs::create_dir_all(&src).unwrap();
        write_fixture(&src);
    }
    let dst = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.path().join(entry.file_name())).unwrap();
    }
    dst
}

fn file_with(dir: &Path, pred: impl Fn(&str) -> bool) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| pred(p.file_name().unwrap().to_str().unwrap()))
        .expect("fixture file")
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn assert_corruption_naming(err: Error, file: &Path) {
    assert!(err.is_corruption(), "not a corruption error: {err}");
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        err.to_string().contains(name),
        "error does not name {name}: {err}"
    );
}

#[test]
fn fixture_opens_with_its_contents() {
    let dir = copy_fixture();
    let db = Db::open(dir.path(), options()).unwrap();
    for i in 0..FLUSHED + IN_WAL + 5 {
        assert_eq!(
            db.get(&key(i)).unwrap().map(|v| v.to_vec()),
            expected(i),
            "key {i}"
        );
    }
    let n = db
        .range(..)
        .unwrap()
        .inspect(|r| assert!(r.is_ok()))
        .count();
    assert_eq!(n as u32, FLUSHED + IN_WAL - 1);
}

#[test]
fn damaged_wal_record_before_the_tail_is_an_error_naming_the_file() {
    let dir = copy_fixture();
    let wal = file_with(dir.path(), |n| n.ends_with(".log"));
    flip(&wal, 30); // inside the first record's payload
    let err = Db::open(dir.path(), options()).unwrap_err();
    assert_corruption_naming(err, &wal);
}

#[test]
fn torn_wal_tail_loses_only_the_unfinished_record() {
    let dir = copy_fixture();
    let wal = file_with(dir.path(), |n| n.ends_with(".log"));
    let bytes = std::fs::read(&wal).unwrap();
    std::fs::write(&wal, &bytes[..bytes.len() - 3]).unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    // The last record was the delete of key 7: it is gone, everything before it is there.
    assert_eq!(db.get(&key(7)).unwrap().map(|v| v.to_vec()), Some(value(7)));
    for i in FLUSHED..FLUSHED + IN_WAL {
        assert_eq!(db.get(&key(i)).unwrap().map(|v| v.to_vec()), Some(value(i)));
    }
}

#[test]
fn damaged_manifest_is_an_error_naming_the_file() {
    let dir = copy_fixture();
    let manifest = file_with(dir.path(), |n| n.starts_with("MANIFEST-"));
    let len = std::fs::metadata(&manifest).unwrap().len() as usize;
    // Damage the last byte: a complete record that fails its checksum is not a torn tail.
    flip(&manifest, len - 1);
    let err = Db::open(dir.path(), options()).unwrap_err();
    assert_corruption_naming(err, &manifest);
}

#[test]
fn damaged_sstable_footer_is_an_error_naming_the_file() {
    let dir = copy_fixture();
    let sst = file_with(dir.path(), |n| n.ends_with(".sst"));
    let len = std::fs::metadata(&sst).unwrap().len() as usize;
    flip(&sst, len - 20);
    let err = Db::open(dir.path(), options()).unwrap_err();
    assert_corruption_naming(err, &sst);
}

/// Flip bytes across a whole SSTable: every outcome is either an error naming the table or
/// exactly the right data.
#[test]
fn damaged_sstable_bytes_never_yield_wrong_data() {
    let pristine = copy_fixture();
    let sst_name = file_with(pristine.path(), |n| n.ends_with(".sst"))
        .file_name()
        .unwrap()
        .to_owned();
    let len = std::fs::metadata(pristine.path().join(&sst_name))
        .unwrap()
        .len() as usize;
    let mut errors = 0;
    for offset in (0..len).step_by(len / 60 + 1) {
        let dir = copy_fixture();
        let sst = dir.path().join(&sst_name);
        flip(&sst, offset);
        let db = match Db::open(dir.path(), options()) {
            Ok(db) => db,
            Err(e) => {
                assert_corruption_naming(e, &sst);
                errors += 1;
                continue;
            }
        };
        let mut saw_error = false;
        for i in 0..FLUSHED + IN_WAL {
            match db.get(&key(i)) {
                Ok(v) => assert_eq!(
                    v.map(|v| v.to_vec()),
                    expected(i),
                    "offset {offset} key {i}"
                ),
                Err(e) => {
                    assert_corruption_naming(e, &sst);
                    saw_error = true;
                }
            }
        }
        let mut want = (0..FLUSHED + IN_WAL).filter_map(|i| expected(i).map(|v| (key(i), v)));
        for item in db.range(..).unwrap() {
            match item {
                Ok((k, v)) => {
                    assert_eq!(
                        Some((k.to_vec(), v.to_vec())),
                        want.next(),
                        "offset {offset}"
                    );
                }
                Err(e) => {
                    assert_corruption_naming(e, &sst);
                    saw_error = true;
                }
            }
        }
        errors += usize::from(saw_error);
    }
    assert!(
        errors > 50,
        "only {errors} of the damaged copies were noticed"
    );
}
