//! The record log shared by the WAL and the manifest.
//!
//! A log file is a sequence of records, each
//!
//! ```text
//! +-----------+----------+-----------------+-------------------+
//! | crc32c u32| len u32  | log_number u64  | payload (len)     |
//! +-----------+----------+-----------------+-------------------+
//! ```
//!
//! all little-endian, where the CRC32C covers `len`, `log_number` and the payload. The log number
//! is the file's own number: a recycled file (an old WAL renamed and overwritten from the start)
//! still holds records of its previous life after the new tail, and those carry another number,
//! so replay stops there. Once a log is synced it is extended in pre-zeroed chunks, so that
//! steady-state syncs overwrite allocated blocks and need no metadata update; zeros end replay.
//!
//! Replay distinguishes a torn tail from corruption: when a record is short or fails its checksum,
//! the rest of the file is searched for any valid record of this log. None means the write was torn
//! by a crash and the log ends here; one means acknowledged data follows a damaged record, and
//! replay fails with [`Error::Corruption`] naming the file and offset.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::coding::{checksum_matches, u32_at, u64_at};
use crate::error::{CorruptionKind, Error, IoContext, Result};

pub(crate) const HEADER_LEN: usize = 16;
/// Synced files grow by writing this many zero bytes ahead of the tail.
const PREZERO_CHUNK: u64 = 1 << 20;
/// Mapped files reserve blocks this far ahead of the tail.
const RESERVE_CHUNK: u64 = 4 << 20;

fn record_crc(len_and_number: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len_and_number), payload)
}

/// Appends records to a log file.
///
/// Appends that are not synced right away are stored through a shared memory mapping of the
/// file when it has one: the bytes land in the kernel's page cache without a system call, so they
/// survive a crash of the process (not of the machine), exactly like a `write` that is not
/// synced. Blocks under the mapping are reserved with `fallocate` ahead of the tail, so a full
/// disk is an error from `fallocate`, never a `SIGBUS`. Appends that will be synced
/// ([`Self::append`] with `will_sync`) wait in a buffer of the writer's own until a sync
/// writes them with one `pwrite` into pre-zeroed blocks: a group commit of many batches costs
/// one write call, not one each. A sync taken with [`Self::begin_sync`] takes the buffer along
/// and writes it where it runs, outside the writer's lock, so a slow disk holds up the sync,
/// not the writers appending meanwhile. Such an append is not acknowledged before its sync
/// anyway, so holding it in the process until then loses nothing a crash would not. Both paths
/// share the page cache, and `fdatasync` makes both durable. The file never has a hole behind
/// a record that is not synced: such an append first waits for a sync's write in flight and
/// writes what is still held.
pub(crate) struct LogWriter {
    /// Shared with a sync running outside the writer's lock ([`Self::begin_sync`]).
    file: Arc<File>,
    path: PathBuf,
    log_number: u64,
    offset: u64,
    /// Bytes known to be written (data or zeros): synced writes below it change no metadata.
    zeroed: u64,
    /// Bytes of the mapping backed by reserved blocks: stores below it cannot fault.
    reserved: u64,
    prezero: bool,
    /// Whether a sync turns on pre-zeroing (off for the manifest).
    prezero_after_sync: bool,
    map: Option<memmap2::MmapMut>,
    buf: Vec<u8>,
    /// Records appended for a sync and not written yet: they start at `offset - held.len()`.
    held: Vec<u8>,
    /// Held records a [`PendingSync`] took and has not written yet.
    in_flight: Arc<InFlight>,
    /// Set by [`Self::abandon`]: nothing more reaches the file.
    abandoned: bool,
}

/// Writes of held records taken by syncs and not finished.
#[derive(Default)]
struct InFlight {
    writes: parking_lot::Mutex<usize>,
    idle: parking_lot::Condvar,
}

impl InFlight {
    fn start(&self) {
        *self.writes.lock() += 1;
    }

    fn finish(&self) {
        let mut writes = self.writes.lock();
        *writes -= 1;
        if *writes == 0 {
            self.idle.notify_all();
        }
    }

    /// Waits until every write taken so far has finished (written or failed).
    fn wait_idle(&self) {
        let mut writes = self.writes.lock();
        while *writes > 0 {
            self.idle.wait(&mut writes);
        }
    }
}

/// A writer keeps a buffer of held records this large between syncs at most; a larger one
/// (left by a big batch) is given back.
const HELD_KEEP: usize = 1 << 20;

impl LogWriter {
    /// Creates a new log file (fails if it exists). With `map_bytes > 0` the file is sized to
    /// that and mapped, and unsynced appends within it are stores into the mapping.
    pub(crate) fn create(
        path: &Path,
        log_number: u64,
        prezero: bool,
        map_bytes: u64,
    ) -> Result<Self> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .at(path)?;
        let mut w = Self::with_file(file, path, log_number, 0, prezero);
        w.map_file(map_bytes)?;
        Ok(w)
    }

    /// Reuses an obsolete log file under a new name and number; its old records are overwritten
    /// from the start and ignored by replay because their log number differs.
    pub(crate) fn recycle(
        old: &Path,
        path: &Path,
        log_number: u64,
        map_bytes: u64,
    ) -> Result<Self> {
        std::fs::rename(old, path).at(path)?;
        let file = File::options().read(true).write(true).open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        let mut w = Self::with_file(file, path, log_number, len, true);
        w.map_file(map_bytes)?;
        Ok(w)
    }

    fn with_file(file: File, path: &Path, log_number: u64, zeroed: u64, prezero: bool) -> Self {
        LogWriter {
            file: Arc::new(file),
            path: path.to_path_buf(),
            log_number,
            offset: 0,
            zeroed,
            reserved: 0,
            prezero,
            prezero_after_sync: true,
            map: None,
            buf: Vec::new(),
            held: Vec::new(),
            in_flight: Arc::default(),
            abandoned: false,
        }
    }

    /// Never grows the file with zeros ahead of the tail, even once synced.
    pub(crate) fn never_prezero(mut self) -> Self {
        self.prezero = false;
        self.prezero_after_sync = false;
        self
    }

    fn map_file(&mut self, map_bytes: u64) -> Result<()> {
        if map_bytes == 0 {
            return Ok(());
        }
        let len = self.file.metadata().at(&self.path)?.len();
        if len < map_bytes {
            self.file.set_len(map_bytes).at(&self.path)?;
        }
        // SAFETY: the file is private to this engine (the directory is locked) and is never
        // truncated while mapped; stores only go below `reserved`, which is backed by blocks.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(map_bytes as usize)
                .map_mut(&*self.file)
        }
        .at(&self.path)?;
        self.map = Some(map);
        Ok(())
    }

    pub(crate) fn log_number(&self) -> u64 {
        self.log_number
    }

    /// Bytes of records written so far.
    pub(crate) fn len(&self) -> u64 {
        self.offset
    }

    /// Reserves disk blocks for the file up to beyond `end`.
    fn reserve(&mut self, end: u64) -> Result<()> {
        if end <= self.reserved {
            return Ok(());
        }
        let target = end.div_ceil(RESERVE_CHUNK) * RESERVE_CHUNK + RESERVE_CHUNK;
        let from = self.reserved;
        // SAFETY: plain system call on an open descriptor.
        let rc = unsafe {
            libc::fallocate(
                std::os::fd::AsRawFd::as_raw_fd(&*self.file),
                libc::FALLOC_FL_KEEP_SIZE,
                from as libc::off_t,
                (target - from) as libc::off_t,
            )
        };
        if rc != 0 {
            return Err(Error::io(&self.path, std::io::Error::last_os_error()));
        }
        self.reserved = target;
        Ok(())
    }

    /// Appends one record per payload. `will_sync` says a sync follows before anyone relies on
    /// them: the records are then held in memory and written by that sync, with every other
    /// record appended for it. Not durable until [`Self::sync`] (or a [`PendingSync`] from
    /// [`Self::begin_sync`]) has run.
    pub(crate) fn append<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
        will_sync: bool,
    ) -> Result<u64> {
        let buf = if will_sync {
            &mut self.held
        } else {
            // Records held for a sync go first: the file never has a hole before this one.
            self.in_flight.wait_idle();
            self.write_held()?;
            self.buf.clear();
            &mut self.buf
        };
        let before = buf.len();
        for payload in payloads {
            let start = buf.len();
            buf.extend_from_slice(&[0; 4]);
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&self.log_number.to_le_bytes());
            let crc = record_crc(&buf[start + 4..start + HEADER_LEN], payload);
            buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(payload);
        }
        let n = (buf.len() - before) as u64;
        if will_sync {
            self.offset += n;
            return Ok(n);
        }
        let end = self.offset + n;
        let map_len = self.map.as_ref().map_or(0, |m| m.len() as u64);
        if end <= map_len {
            self.reserve(end)?;
            if let Some(map) = &mut self.map {
                map[self.offset as usize..end as usize].copy_from_slice(&self.buf);
            }
            self.offset = end;
            self.zeroed = self.zeroed.max(end);
        } else {
            // Beyond the mapping: `pwrite`, first growing the file with zeros when pre-zeroing.
            let zeros = self.plan_write(self.offset, n);
            write_records(&self.file, &self.path, &self.buf, self.offset, zeros)?;
            self.offset = end;
        }
        Ok(n)
    }

    /// Where `len` bytes written at `at` need zeros written first (pre-zeroing ahead of the
    /// tail), as (offset, length); counts both as written from now on.
    fn plan_write(&mut self, at: u64, len: u64) -> Option<(u64, u64)> {
        let end = at + len;
        let mut zeros = None;
        if self.prezero && end > self.zeroed {
            let target = end.div_ceil(PREZERO_CHUNK) * PREZERO_CHUNK + PREZERO_CHUNK;
            let from = self.zeroed.max(at);
            zeros = Some((from, target - from));
            self.zeroed = target;
        }
        self.zeroed = self.zeroed.max(end);
        zeros
    }

    /// Takes the records held for a sync (none: `None`), to be written where the caller says.
    fn take_held(&mut self) -> Option<HeldWrite> {
        if self.held.is_empty() {
            return None;
        }
        let next = Vec::with_capacity(self.held.len().min(HELD_KEEP));
        let bytes = std::mem::replace(&mut self.held, next);
        let at = self.offset - bytes.len() as u64;
        let zeros = self.plan_write(at, bytes.len() as u64);
        self.in_flight.start();
        Some(HeldWrite {
            bytes,
            at,
            zeros,
            in_flight: Arc::clone(&self.in_flight),
        })
    }

    /// Writes the records held for a sync here and now. On failure the caller stops the log:
    /// what part of them reached the file is unknown.
    fn write_held(&mut self) -> Result<()> {
        match self.take_held() {
            Some(w) => w.write(&self.file, &self.path),
            None => Ok(()),
        }
    }

    /// The machine dies (a simulation's crash): the records held for a sync that has not
    /// taken them never leave the process, and nothing more is written, not even on drop.
    /// Records a sync already took are written by it or not at all, as a crash may leave them.
    pub(crate) fn abandon(&mut self) {
        self.held.clear();
        self.abandoned = true;
    }

    /// Makes every appended record durable (stores through the mapping included: they are the
    /// same page-cache pages), a sync's write in flight included. A log that is synced once is
    /// likely synced again, so from then on synced appends grow it in pre-zeroed chunks.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.in_flight.wait_idle();
        self.begin_sync().run()
    }

    /// The sync of every record appended so far, to run without the writer: it takes the held
    /// records along and writes them before its `fdatasync`. Appends made while it runs may or
    /// may not be covered by it (they are by the next one). Run it (or drop it, which writes
    /// without syncing) before the next sync of this writer is taken.
    pub(crate) fn begin_sync(&mut self) -> PendingSync {
        self.prezero |= self.prezero_after_sync;
        let write = self.take_held();
        PendingSync {
            file: Arc::clone(&self.file),
            path: self.path.clone(),
            write,
        }
    }
}

/// Writes `bytes` at `at`, after `zeros` (offset, length) when given.
fn write_records(
    file: &File,
    path: &Path,
    bytes: &[u8],
    at: u64,
    zeros: Option<(u64, u64)>,
) -> Result<()> {
    if let Some((from, len)) = zeros {
        let zeros = vec![0u8; len as usize];
        file.write_all_at(&zeros, from).at(path)?;
    }
    file.write_all_at(bytes, at).at(path)
}

impl Drop for LogWriter {
    /// Records still held were never synced, so nobody was told they are durable; they are
    /// written anyway, as an append that is not synced would have been, so a writer dropped
    /// without a last sync loses no more than a crash of the machine would.
    fn drop(&mut self) {
        if self.abandoned {
            return;
        }
        if let Err(e) = self.write_held() {
            tracing::warn!(error = %e, "writing the log's last records failed");
        }
    }
}

/// An `fdatasync` of a log file, taken from its writer by [`LogWriter::begin_sync`], with the
/// held records it writes first.
pub(crate) struct PendingSync {
    file: Arc<File>,
    path: PathBuf,
    write: Option<HeldWrite>,
}

/// Held records taken by a sync, and where they go.
struct HeldWrite {
    bytes: Vec<u8>,
    at: u64,
    zeros: Option<(u64, u64)>,
    in_flight: Arc<InFlight>,
}

impl HeldWrite {
    /// Writes the records (after their zeros), and tells writers waiting for it that it ended.
    fn write(self, file: &File, path: &Path) -> Result<()> {
        let written = write_records(file, path, &self.bytes, self.at, self.zeros);
        self.in_flight.finish();
        written
    }
}

impl PendingSync {
    /// Writes the records it took, then syncs the file.
    pub(crate) fn run(mut self) -> Result<()> {
        if let Some(w) = self.write.take() {
            w.write(&self.file, &self.path)?;
        }
        self.file.sync_data().at(&self.path)
    }
}

impl Drop for PendingSync {
    /// A sync dropped without running still writes its records (as an append that is not
    /// synced would have been), so the file has no hole and waiting writers go on.
    fn drop(&mut self) {
        if let Some(w) = self.write.take()
            && let Err(e) = w.write(&self.file, &self.path)
        {
            tracing::warn!(error = %e, "writing a dropped sync's records failed");
        }
    }
}

/// Where replay of a log ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogEnd {
    /// Offset just past the last valid record.
    pub(crate) valid_len: u64,
    /// True when bytes after `valid_len` were a torn record (dropped), false on a clean end.
    pub(crate) torn_tail: bool,
}

/// How replay treats a damaged last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TailMode {
    /// WAL: a damaged record with nothing valid after it is a torn write and is dropped. Files are
    /// pre-zeroed, so a torn record can have its full length on disk.
    DropTorn,
    /// Manifest: only a record cut short by the end of the file is torn; a complete record that
    /// fails its checksum is corruption, because dropping a synced edit would lose files.
    Strict,
}

/// Replays the records of the log numbered `log_number` at `path`, calling `f(payload, offset)`.
pub(crate) fn read_log(
    path: &Path,
    log_number: u64,
    mode: TailMode,
    f: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<LogEnd> {
    let data = std::fs::read(path).at(path)?;
    replay(&data, path, log_number, mode, f)
}

/// Replays the records in `data`, the contents of the log numbered `log_number` at `path` (named
/// in errors only), as [`read_log`] does.
pub(crate) fn replay(
    data: &[u8],
    path: &Path,
    log_number: u64,
    mode: TailMode,
    mut f: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<LogEnd> {
    let mut pos = 0usize;
    loop {
        match parse_record(data, pos, log_number) {
            Parsed::Record { payload, next } => {
                f(payload, pos as u64)?;
                pos = next;
            }
            Parsed::End => {
                return Ok(LogEnd {
                    valid_len: pos as u64,
                    torn_tail: false,
                });
            }
            Parsed::Bad(reason) => {
                let cut_short = matches!(reason, CorruptionKind::Truncated(_));
                if mode == TailMode::Strict && !cut_short {
                    return Err(Error::corruption(path, pos as u64, reason));
                }
                let later = (pos + 1..data.len().saturating_sub(HEADER_LEN - 1))
                    .any(|at| matches!(parse_record(data, at, log_number), Parsed::Record { .. }));
                if later {
                    return Err(Error::corruption(path, pos as u64, reason));
                }
                return Ok(LogEnd {
                    valid_len: pos as u64,
                    torn_tail: true,
                });
            }
        }
    }
}

enum Parsed<'a> {
    Record {
        payload: &'a [u8],
        next: usize,
    },
    /// End of file, or zeros, or a record of a previous life of a recycled file.
    End,
    Bad(CorruptionKind),
}

fn parse_record(data: &[u8], pos: usize, log_number: u64) -> Parsed<'_> {
    let rest = &data[pos.min(data.len())..];
    if rest.is_empty() {
        return Parsed::End;
    }
    if rest.len() < HEADER_LEN {
        return if rest.iter().all(|&b| b == 0) {
            Parsed::End
        } else {
            Parsed::Bad(CorruptionKind::Truncated("record header"))
        };
    }
    let (Some(stored), Some(len), Some(number)) =
        (u32_at(rest, 0), u32_at(rest, 4), u64_at(rest, 8))
    else {
        return Parsed::Bad(CorruptionKind::Truncated("record header"));
    };
    if stored == 0 && len == 0 && number == 0 {
        return Parsed::End;
    }
    if number != log_number {
        // A record from a recycled file's previous life ends the log; a damaged number is caught
        // by the search for later valid records in `read_log`.
        return if number < log_number && crc_ok(rest, len) {
            Parsed::End
        } else {
            Parsed::Bad(CorruptionKind::Malformed("record of another log"))
        };
    }
    let len = len as usize;
    if rest.len() - HEADER_LEN < len {
        return Parsed::Bad(CorruptionKind::Truncated("record payload"));
    }
    let payload = &rest[HEADER_LEN..HEADER_LEN + len];
    let computed = record_crc(&rest[4..HEADER_LEN], payload);
    if !checksum_matches(stored, computed) {
        return Parsed::Bad(CorruptionKind::ChecksumMismatch { stored, computed });
    }
    Parsed::Record {
        payload,
        next: pos + HEADER_LEN + len,
    }
}

fn crc_ok(rest: &[u8], len: u32) -> bool {
    let len = len as usize;
    if rest.len() - HEADER_LEN < len {
        return false;
    }
    u32_at(rest, 0)
        == Some(record_crc(
            &rest[4..HEADER_LEN],
            &rest[HEADER_LEN..HEADER_LEN + len],
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, number: u64, records: &[&[u8]], prezero: bool) {
        let mut w = LogWriter::create(path, number, prezero, 0).unwrap();
        for r in records {
            w.append([*r], false).unwrap();
        }
        w.sync().unwrap();
    }

    #[test]
    fn a_never_prezeroed_log_ends_at_its_last_record_even_after_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("MANIFEST");
        let mut w = LogWriter::create(&p, 3, false, 0).unwrap().never_prezero();
        for r in [&b"first"[..], b"second", b"third"] {
            w.append([r], true).unwrap();
            w.sync().unwrap();
        }
        let on_disk = std::fs::metadata(&p).unwrap().len();
        assert_eq!(on_disk, w.len());
        assert_eq!(on_disk, (3 * HEADER_LEN + 5 + 6 + 5) as u64);
    }

    fn read_all(path: &Path, number: u64) -> Result<(Vec<Vec<u8>>, LogEnd)> {
        let mut out = Vec::new();
        let end = read_log(path, number, TailMode::DropTorn, |p, _| {
            out.push(p.to_vec());
            Ok(())
        })?;
        Ok((out, end))
    }

    #[test]
    fn records_round_trip_with_and_without_prezeroing() {
        let dir = tempfile::tempdir().unwrap();
        for prezero in [false, true] {
            let p = dir.path().join(format!("{prezero}.log"));
            write(&p, 7, &[b"one", b"", b"three"], prezero);
            let (recs, end) = read_all(&p, 7).unwrap();
            assert_eq!(recs, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
            assert!(!end.torn_tail);
            assert_eq!(end.valid_len, 3 * HEADER_LEN as u64 + 8);
        }
    }

    #[test]
    fn mapped_and_written_appends_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("5.log");
        let mut w = LogWriter::create(&p, 5, false, 64 * 1024).unwrap();
        let big = vec![7u8; 40 * 1024];
        w.append([&b"mapped"[..]], false).unwrap();
        w.append([&b"synced"[..]], true).unwrap();
        w.sync().unwrap();
        w.append([&b"mapped again"[..]], false).unwrap();
        // Past the end of the mapping: falls back to pwrite.
        w.append([big.as_slice()], false).unwrap();
        w.append([big.as_slice()], false).unwrap();
        drop(w);
        let (recs, end) = read_all(&p, 5).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[0], b"mapped");
        assert_eq!(recs[1], b"synced");
        assert_eq!(recs[2], b"mapped again");
        assert_eq!(recs[4], big);
        assert!(!end.torn_tail);
    }

    #[test]
    fn records_for_a_sync_reach_the_file_together_when_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("9.log");
        let mut w = LogWriter::create(&p, 9, true, 64 * 1024).unwrap();
        for r in [&b"one"[..], b"two", b"three"] {
            w.append([r], true).unwrap();
        }
        assert_eq!(w.len(), (3 * HEADER_LEN + 3 + 3 + 5) as u64);
        // Held by the writer until the sync: nothing is in the file yet.
        assert!(read_all(&p, 9).unwrap().0.is_empty());
        let pending = w.begin_sync();
        // Taken by the sync, written where it runs (outside the writer's lock).
        w.append([&b"held meanwhile"[..]], true).unwrap();
        assert!(read_all(&p, 9).unwrap().0.is_empty());
        pending.run().unwrap();
        assert_eq!(read_all(&p, 9).unwrap().0.len(), 3);
        w.sync().unwrap();
        // An append that is not synced writes what is held before it: no hole in the file.
        w.append([&b"four"[..]], true).unwrap();
        w.append([&b"five"[..]], false).unwrap();
        let (recs, end) = read_all(&p, 9).unwrap();
        assert_eq!(
            recs,
            [
                &b"one"[..],
                b"two",
                b"three",
                b"held meanwhile",
                b"four",
                b"five"
            ]
        );
        assert_eq!(end.valid_len, w.len());
        // Held records of a writer dropped without a sync are written all the same.
        w.append([&b"six"[..]], true).unwrap();
        drop(w);
        assert_eq!(read_all(&p, 9).unwrap().0.len(), 7);
    }

    #[test]
    fn a_record_not_synced_waits_for_the_write_of_a_sync_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("4.log");
        let mut w = LogWriter::create(&p, 4, true, 64 * 1024).unwrap();
        w.append([&b"synced"[..]], true).unwrap();
        let pending = w.begin_sync();
        std::thread::scope(|scope| {
            let appender = scope.spawn(|| {
                // Waits for the sync's write: the record would land after a hole. Once it is
                // in, the file reads back whole.
                w.append([&b"mapped"[..]], false).unwrap();
                read_all(&p, 4).unwrap().0.len()
            });
            pending.run().unwrap();
            assert_eq!(appender.join().unwrap(), 2, "no hole behind the record");
        });
        let (recs, end) = read_all(&p, 4).unwrap();
        assert_eq!(recs, [&b"synced"[..], b"mapped"]);
        assert_eq!(end.valid_len, w.len());
        // A sync dropped without running writes what it took.
        w.append([&b"dropped"[..]], true).unwrap();
        drop(w.begin_sync());
        assert_eq!(read_all(&p, 4).unwrap().0.len(), 3);
    }

    #[test]
    fn a_big_held_group_does_not_keep_its_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("2.log");
        let mut w = LogWriter::create(&p, 2, true, 0).unwrap();
        let big = vec![1u8; 2 * HELD_KEEP];
        w.append([big.as_slice()], true).unwrap();
        w.sync().unwrap();
        assert!(w.held.capacity() <= HELD_KEEP);
        w.append([&b"small"[..]], true).unwrap();
        w.sync().unwrap();
        assert!(w.held.capacity() > 0, "a small group's buffer is kept");
        let (recs, _) = read_all(&p, 2).unwrap();
        assert_eq!(recs, [big.as_slice(), b"small"]);
    }

    #[test]
    fn torn_tail_is_dropped_and_mid_file_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("1.log");
        write(&p, 1, &[b"aaaa", b"bbbb", b"cccc"], false);
        let full = std::fs::read(&p).unwrap();

        // Cut in the middle of the last record: a torn tail.
        std::fs::write(&p, &full[..full.len() - 2]).unwrap();
        let (recs, end) = read_all(&p, 1).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(end.torn_tail);

        // Flip a payload byte of the first record: damage before valid data.
        let mut bad = full.clone();
        bad[HEADER_LEN] ^= 0x40;
        std::fs::write(&p, &bad).unwrap();
        let err = read_all(&p, 1).unwrap_err();
        assert!(err.is_corruption(), "{err}");
        assert!(err.to_string().contains("1.log"), "{err}");
        assert!(err.to_string().contains("offset 0"), "{err}");

        // Damage the length field of the middle record: still found, not silently truncated.
        let mut bad = full.clone();
        bad[HEADER_LEN + 4 + 4] ^= 0xff;
        std::fs::write(&p, &bad).unwrap();
        assert!(read_all(&p, 1).unwrap_err().is_corruption());

        // Strict mode: a complete last record with a bad checksum is corruption, a cut one is not.
        let mut bad = full.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        assert!(read_all(&p, 1).unwrap().1.torn_tail);
        let strict = read_log(&p, 1, TailMode::Strict, |_, _| Ok(()));
        assert!(strict.unwrap_err().is_corruption());
        std::fs::write(&p, &full[..n - 1]).unwrap();
        assert!(
            read_log(&p, 1, TailMode::Strict, |_, _| Ok(()))
                .unwrap()
                .torn_tail
        );
    }

    #[test]
    fn recycled_file_ends_at_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("3.log");
        write(&old, 3, &[b"old-1", b"old-2", b"old-3", b"old-4"], true);
        let new = dir.path().join("9.log");
        let mut w = LogWriter::recycle(&old, &new, 9, 0).unwrap();
        w.append([&b"new"[..]], true).unwrap();
        w.sync().unwrap();
        // The tail of the overwritten record looks torn; that is expected and not corruption.
        let (recs, _) = read_all(&new, 9).unwrap();
        assert_eq!(recs, vec![b"new".to_vec()]);
    }
}
