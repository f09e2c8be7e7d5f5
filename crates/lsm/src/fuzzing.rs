//! Entry points for fuzzing every decoder of bytes this engine reads back from disk: WAL and
//! manifest records, write batches, SSTable blocks, and whole table files (footer, block handles,
//! properties, filter, index, compressed and plain data blocks, internal keys).
//!
//! Each entry takes arbitrary bytes and must return whatever they are: damage is a typed error
//! ([`crate::Error::Corruption`] or a decoder's `None`/`Err`), never a panic, a hang, or an
//! allocation sized by a length the input claims. Where a decoder accepts its input, the entry
//! also checks what must then hold (a replayed log ends inside its bytes and replays the same
//! records again from that end, a decoded edit re-encodes to itself, an iterated block or
//! table yields no more entries than it has bytes).
//!
//! The libFuzzer targets in `fuzz/` call these with the `fuzzing` feature; this crate's tests
//! replay the checked-in corpus (`fuzz/corpus/<target>/`) and [`seeds`] through them on stable,
//! so `cargo test` runs every input the fuzzer ever kept.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{WriteBatch, for_each_entry};
use crate::iter::InternalIterator;
use crate::log::{LogWriter, TailMode, replay};
use crate::sst::block::{Block, BlockBuilder};
use crate::sst::builder::{BuildOptions, TableBuilder};
use crate::sst::reader::{Table, TableContext};
use crate::sst::{BlockHandle, Properties, bloom};
use crate::types::{self, KIND_SEEK, ValueKind};
use crate::version::VersionEdit;

/// A target: the name of its corpus directory and libFuzzer target, and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// The targets.
pub const TARGETS: &[Target] = &[
    ("wal", wal),
    ("manifest", manifest),
    ("write_batch", write_batch),
    ("sst_block", sst_block),
    ("sst_table", sst_table),
    ("sst_meta", sst_meta),
];

/// A WAL file's bytes (log number 1): replayed as recovery does, each record as a write batch.
pub fn wal(data: &[u8]) {
    log_file(data, write_batch);
}

/// A manifest's bytes (log number 1): replayed as recovery does, each record as a version edit.
pub fn manifest(data: &[u8]) {
    log_file(data, |payload| {
        if let Some(edit) = VersionEdit::decode(payload) {
            assert_eq!(
                VersionEdit::decode(&edit.encode()).as_ref(),
                Some(&edit),
                "a decoded edit re-encodes to itself"
            );
        }
    });
}

fn log_file(data: &[u8], mut each: impl FnMut(&[u8])) {
    let path = Path::new("fuzz.log");
    for mode in [TailMode::DropTorn, TailMode::Strict] {
        let mut records = Vec::new();
        let Ok(end) = replay(data, path, 1, mode, |payload, offset| {
            each(payload);
            records.push((payload.to_vec(), offset));
            Ok(())
        }) else {
            continue;
        };
        let valid = usize::try_from(end.valid_len).expect("a length in memory");
        assert!(valid <= data.len(), "the log ends inside its bytes");
        // What replay kept replays alike on its own: a torn tail dropped stays dropped.
        let mut again = Vec::new();
        let end_again = replay(&data[..valid], path, 1, mode, |payload, offset| {
            again.push((payload.to_vec(), offset));
            Ok(())
        })
        .expect("the valid prefix of a log replays");
        assert_eq!(records, again, "the valid prefix holds the same records");
        assert_eq!(end_again.valid_len, end.valid_len);
        assert!(!end_again.torn_tail, "the valid prefix has no torn tail");
    }
}

/// A write batch payload, as recovery decodes it from a WAL record.
pub fn write_batch(payload: &[u8]) {
    let mut entries = 0u64;
    let mut last_seq = None;
    let header = for_each_entry(payload, |e| {
        entries += 1;
        if let Some(last) = last_seq {
            assert!(e.seq > last, "sequence numbers rise within a batch");
        }
        last_seq = Some(e.seq);
        if e.kind == ValueKind::Delete {
            assert!(e.value.is_empty(), "a delete carries no value");
        }
    });
    if let Some(header) = header {
        assert_eq!(
            entries,
            u64::from(header.count),
            "a whole batch has its count"
        );
        let _ = crate::batch::commit_millis(payload);
    }
}

/// A data or index block's contents (after its trailer was checked): parsed, iterated and
/// searched as reads do.
pub fn sst_block(data: &[u8]) {
    let Ok(block) = Block::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let block = Arc::new(block);
    let mut keys = Vec::new();
    let mut it = block.iter();
    it.seek_to_first();
    while it.valid() {
        assert!(
            keys.len() <= data.len(),
            "a block yields fewer entries than bytes"
        );
        keys.push(it.key().to_vec());
        let _ = (it.value(), it.value_bytes());
        it.next();
    }
    let _ = it.take_error();
    for target in keys
        .iter()
        .map(Vec::as_slice)
        .chain([&b""[..], b"\xff\xff\xff"])
    {
        let mut it = block.iter();
        it.seek(target);
        if it.valid() {
            let _ = (types::user_key(it.key()), types::seq_of(it.key()));
        }
        let _ = it.take_error();
    }
}

/// A whole table file: opened, iterated, and probed for every key it yields and some it does not.
pub fn sst_table(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("000001.sst");
    std::fs::write(&path, data).expect("the table file written");
    let ctx = TableContext {
        cache: Arc::new(crate::cache::new_block_cache(1 << 20)),
        stats: Arc::default(),
    };
    let Ok(table) = Table::open(&path, 1, ctx) else {
        return;
    };
    let table = Arc::new(table);
    let _ = (table.properties(), table.smallest(), table.largest());
    let mut keys = Vec::new();
    let mut it = table.iter(true);
    it.seek_to_first();
    while it.valid() {
        assert!(
            keys.len() <= data.len(),
            "a table yields fewer entries than bytes"
        );
        keys.push(types::user_key(it.key()).to_vec());
        let _ = (it.value(), types::kind_of(it.key()));
        it.next();
    }
    let _ = it.take_error();
    for key in keys.iter().map(Vec::as_slice).chain([&b""[..], b"absent"]) {
        let hash = bloom::hash_key(key);
        let _ = table.covers(key);
        for io in [false, true] {
            let _ = table.get(key, hash, u64::MAX >> 8, io);
        }
        let mut it = table.iter(false);
        it.seek(&types::internal_key(key, u64::MAX >> 8, KIND_SEEK));
        let _ = (it.valid(), it.take_error());
    }
}

/// The small decoders of a table's metadata: a block handle, the properties block, and a
/// filter probed with hashes taken from the input.
pub fn sst_meta(data: &[u8]) {
    if let Some(h) = BlockHandle::decode(data) {
        let mut b = Vec::new();
        h.encode_to(&mut b);
        assert_eq!(BlockHandle::decode(&b), Some(h));
    }
    if let Ok(p) = Properties::decode(data) {
        assert_eq!(Properties::decode(&p.encode()), Ok(p));
    }
    for chunk in data.chunks(8) {
        let mut h = [0u8; 8];
        h[..chunk.len()].copy_from_slice(chunk);
        let _ = bloom::may_contain(data, u64::from_le_bytes(h));
    }
}

/// Valid inputs for every target, made by the engine's own writers: the corpus the fuzzer
/// starts from, and what the replay tests run besides the checked-in files.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let batches: Vec<Vec<u8>> = (0..4u64)
        .map(|i| {
            let mut b = WriteBatch::new();
            for k in 0..i + 1 {
                b.put(format!("key:{k}").as_bytes(), &vec![b'v'; k as usize * 7]);
            }
            if i % 2 == 1 {
                b.delete(b"gone");
            }
            b.seal(100 * i + 1, 1_700_000_000_000 + i).to_vec()
        })
        .collect();
    for b in &batches {
        out.push(("write_batch", b.clone()));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = |name: &str, payloads: &[Vec<u8>], prezero: bool| {
        let path = dir.path().join(name);
        let mut w = LogWriter::create(&path, 1, prezero, 0).expect("a log");
        w.append(payloads.iter().map(Vec::as_slice), false)
            .expect("appended");
        w.sync().expect("synced");
        drop(w);
        std::fs::read(&path).expect("the log read back")
    };
    out.push(("wal", log("a.log", &batches, false)));
    out.push(("wal", log("b.log", &batches[..2], false)));
    let edits: Vec<Vec<u8>> = [
        VersionEdit {
            log_number: Some(3),
            next_file_number: Some(9),
            last_sequence: Some(400),
            ..Default::default()
        },
        VersionEdit {
            deleted: vec![(0, 4), (1, 5)],
            added: vec![(1, 7, 4096), (2, 8, 1 << 20)],
            ..Default::default()
        },
    ]
    .iter()
    .map(VersionEdit::encode)
    .collect();
    out.push(("manifest", log("MANIFEST-000001", &edits, false)));
    let mut block = BlockBuilder::new(4);
    for k in 0..20u64 {
        block.add(
            &types::internal_key(format!("k{k:03}").as_bytes(), 50 - k, 1),
            b"value",
        );
    }
    out.push(("sst_block", block.finish()));
    for compression in [crate::Compression::None, crate::Compression::Lz4] {
        let path = dir.path().join(format!("{compression:?}.sst"));
        let mut b = TableBuilder::create(
            &path,
            BuildOptions {
                block_bytes: 256,
                restart_interval: 4,
                compression,
                bloom_bits_per_key: Some(10.0),
            },
        )
        .expect("a table");
        for k in 0..40u64 {
            let kind = if k % 9 == 0 { 0 } else { 1 };
            let value = if kind == 0 {
                types::tombstone_value(7).to_vec()
            } else {
                vec![b'x'; 30]
            };
            b.add(
                &types::internal_key(format!("key{k:04}").as_bytes(), k + 1, kind),
                &value,
            )
            .expect("added");
        }
        b.finish().expect("finished");
        out.push((
            "sst_table",
            std::fs::read(&path).expect("the table read back"),
        ));
    }
    let mut meta = Vec::new();
    BlockHandle {
        offset: 4096,
        size: 300,
    }
    .encode_to(&mut meta);
    out.push(("sst_meta", meta));
    out.push((
        "sst_meta",
        Properties {
            num_entries: 3,
            smallest: b"a".to_vec(),
            largest: b"z".to_vec(),
            ..Default::default()
        }
        .encode(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    distkv_fuzz_corpus::corpus_tests!("distkv_lsm");

    #[test]
    fn seeds_decode_as_what_they_are() {
        for (target, input) in seeds() {
            match target {
                "write_batch" => assert!(for_each_entry(&input, |_| {}).is_some()),
                "wal" | "manifest" => {
                    let end = replay(
                        &input,
                        Path::new("seed"),
                        1,
                        TailMode::Strict,
                        |_, _| Ok(()),
                    )
                    .expect("a seed log replays");
                    assert!(end.valid_len > 0 && !end.torn_tail);
                }
                "sst_block" => assert!(Block::parse(Bytes::from(input)).is_ok()),
                _ => {}
            }
        }
    }
}
