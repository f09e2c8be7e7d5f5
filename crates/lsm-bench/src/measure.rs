//! What the harness measures outside the engines: bytes written to the storage layer,
//! bytes on disk, and the machine the run happened on.
//!
//! Write amplification comes from `/proc/self/io`, which the kernel keeps for the whole
//! process (all threads, the engines' background threads included), so it covers WAL,
//! tables, manifests and compaction output alike for every engine without trusting any
//! engine's own bookkeeping. Two of its counters matter:
//!
//! - `wchar`, the bytes passed to `write`-family calls: what the engine asked to write.
//!   This is the write amplification the report leads with. None of the three engines
//!   writes through `mmap`, which `wchar` would miss.
//! - `write_bytes`, the bytes of page cache the process dirtied. It also shows what syncs
//!   cost (a page rewritten after each sync counts again), but it counts whole folios:
//!   on kernels with large folios, one small write into a large, already-written-back
//!   folio (say, a preallocated 2 MiB WAL) is charged for the whole folio, thousands of
//!   times what reaches the device. So it is reported beside, not instead.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// The process's write counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteCounters {
    /// Bytes passed to `write`-family system calls (`wchar`).
    pub syscall_bytes: u64,
    /// Bytes of page cache dirtied (`write_bytes`).
    pub dirtied_bytes: u64,
}

impl WriteCounters {
    /// The counters now, or `None` where `/proc/self/io` is unavailable.
    pub fn read() -> Option<Self> {
        let io = fs::read_to_string("/proc/self/io").ok()?;
        Some(Self {
            syscall_bytes: parse_io_field(&io, "wchar")?,
            dirtied_bytes: parse_io_field(&io, "write_bytes")?,
        })
    }

    /// What was written between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            syscall_bytes: self.syscall_bytes.saturating_sub(earlier.syscall_bytes),
            dirtied_bytes: self.dirtied_bytes.saturating_sub(earlier.dirtied_bytes),
        }
    }
}

fn parse_io_field(io: &str, field: &str) -> Option<u64> {
    io.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == field).then(|| value.trim().parse().ok())?
    })
}

/// Disk usage of everything under `path`, like `du -s --block-size=1`: allocated blocks,
/// not apparent sizes, and hard links counted once per visit.
pub fn disk_usage(path: &Path) -> Result<u64> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
            let entry = entry?;
            total += match disk_usage(&entry.path()) {
                Ok(bytes) => bytes,
                // Engines delete obsolete files in the background; a file gone between
                // listing and stat no longer uses space.
                Err(e) if is_not_found(&e) => 0,
                Err(e) => return Err(e),
            };
        }
    }
    Ok(total)
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
}

/// The machine a run happened on, for the report.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    /// UTC date of the run, `YYYY-MM-DD`.
    pub date: String,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                (name.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        let days = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() / 86_400)
            .unwrap_or(0);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib: memory_kib as f64 / (1024.0 * 1024.0),
            kernel,
            date: civil_date(days as i64),
        }
    }
}

/// `YYYY-MM-DD` for a count of days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_date_matches_known_days() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(19_723), "2024-01-01");
        assert_eq!(civil_date(20_513), "2026-03-01");
    }

    #[test]
    fn parses_proc_io() {
        let io =
            "rchar: 10\nwchar: 20\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io_field(io, "write_bytes"), Some(4096));
        assert_eq!(parse_io_field(io, "cancelled_write_bytes"), Some(0));
        assert_eq!(parse_io_field(io, "nothing"), None);
    }

    #[test]
    fn write_counters_see_this_process_write() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let before = WriteCounters::read().context("no /proc/self/io")?;
        fs::write(dir.path().join("f"), vec![1u8; 1 << 20])?;
        let delta = WriteCounters::read()
            .context("no /proc/self/io")?
            .since(before);
        // Other tests run in parallel threads of this process, so only a lower bound holds.
        assert!(delta.syscall_bytes >= 1 << 20, "{delta:?}");
        Ok(())
    }

    #[test]
    fn disk_usage_counts_allocated_blocks() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let empty = disk_usage(dir.path())?;
        fs::create_dir(dir.path().join("sub"))?;
        fs::write(dir.path().join("sub/file"), vec![7u8; 64 * 1024])?;
        let used = disk_usage(dir.path())?;
        assert!(used >= empty + 64 * 1024, "{used} < {empty} + 64 KiB");
        Ok(())
    }
}
