//! The standard process metrics, under the names Prometheus' own client libraries give them:
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_threads` and `process_start_time_seconds`.
//! Dashboards and `distkv-bench` (its server CPU per operation) read them as they would from
//! any other server.
//!
//! Linux only: they are read from `/proc` at each scrape (`/proc/self/stat` for CPU time,
//! threads, memory and the start time, `/proc/stat` for the boot time the start time counts
//! from, `/proc/self/fd` and `/proc/self/limits` for file descriptors), with the clock tick and
//! page size from `sysconf`. A file that cannot be read or parsed leaves out the series it
//! gives, not the scrape. On other systems the collector exports nothing.
//!
//! Left out: `process_network_*` and the Go runtime's `go_*` families.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

/// Exports the process metrics at each scrape; registered without the `distkv_` prefix.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    #[cfg(target_os = "linux")]
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        linux::Snapshot::read().encode(&mut enc)
    }

    #[cfg(not(target_os = "linux"))]
    fn encode(&self, _enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;

    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;

    /// What `/proc/self/stat` says of the process, in its own units.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Stat {
        /// CPU time in user mode, in clock ticks.
        pub user_ticks: u64,
        /// CPU time in kernel mode, in clock ticks.
        pub system_ticks: u64,
        pub threads: u64,
        /// When the process started, in clock ticks after boot.
        pub start_ticks: u64,
        pub virtual_bytes: u64,
        pub resident_pages: u64,
    }

    impl Stat {
        /// Parses the one line of `/proc/<pid>/stat` (proc(5)). The command name, field 2,
        /// is in parentheses and may hold spaces and parentheses itself, so the numbered
        /// fields are counted from the last `)`.
        pub fn parse(line: &str) -> Option<Stat> {
            let (_, rest) = line.rsplit_once(')')?;
            // rest[0] is field 3 (the state), so field n is rest[n - 3].
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
            Some(Stat {
                user_ticks: field(14)?,
                system_ticks: field(15)?,
                threads: field(20)?,
                start_ticks: field(22)?,
                virtual_bytes: field(23)?,
                resident_pages: field(24)?,
            })
        }
    }

    /// The boot time, in seconds since the epoch, from `/proc/stat`'s `btime` line.
    pub(super) fn parse_boot_time(proc_stat: &str) -> Option<u64> {
        proc_stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    }

    /// The soft limit on open files from `/proc/self/limits`; `None` when unlimited.
    pub(super) fn parse_max_fds(limits: &str) -> Option<u64> {
        limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// A `sysconf` value, `None` when the system does not know it.
    fn sysconf(name: libc::c_int) -> Option<u64> {
        // SAFETY: sysconf reads a system setting and touches no memory of ours.
        let value = unsafe { libc::sysconf(name) };
        u64::try_from(value).ok().filter(|&v| v > 0)
    }

    /// The process metrics at one moment; a series whose source failed is `None`.
    #[derive(Debug, Default, Clone, PartialEq)]
    pub(super) struct Snapshot {
        pub cpu_seconds: Option<f64>,
        pub resident_bytes: Option<u64>,
        pub virtual_bytes: Option<u64>,
        pub open_fds: Option<u64>,
        pub max_fds: Option<u64>,
        pub threads: Option<u64>,
        pub start_time_seconds: Option<f64>,
    }

    impl Snapshot {
        pub fn read() -> Snapshot {
            let stat = fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| Stat::parse(&s));
            let ticks_per_second = sysconf(libc::_SC_CLK_TCK);
            let page_bytes = sysconf(libc::_SC_PAGESIZE);
            let boot_time = fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| parse_boot_time(&s));
            let seconds = |ticks: u64| Some(ticks as f64 / ticks_per_second? as f64);
            Snapshot {
                cpu_seconds: stat.and_then(|s| seconds(s.user_ticks + s.system_ticks)),
                resident_bytes: stat.and_then(|s| Some(s.resident_pages * page_bytes?)),
                virtual_bytes: stat.map(|s| s.virtual_bytes),
                // The directory's own descriptor, open while it is read, is counted too (as
                // Prometheus' Go client does).
                open_fds: fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
                max_fds: fs::read_to_string("/proc/self/limits")
                    .ok()
                    .and_then(|s| parse_max_fds(&s)),
                threads: stat.map(|s| s.threads),
                start_time_seconds: stat
                    .and_then(|s| Some(boot_time? as f64 + seconds(s.start_ticks)?)),
            }
        }

        pub fn encode(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
            // Collectors give their help text as is (`register` adds the full stop).
            if let Some(v) = self.cpu_seconds {
                // Exposed as process_cpu_seconds_total: counters get the suffix on encoding.
                let c = ConstCounter::new(v);
                c.encode(enc.encode_descriptor(
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds.",
                    None,
                    c.metric_type(),
                )?)?;
            }
            let whole = [
                (
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    self.resident_bytes,
                ),
                (
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.",
                    self.virtual_bytes,
                ),
                (
                    "process_open_fds",
                    "Number of open file descriptors.",
                    self.open_fds,
                ),
                (
                    "process_max_fds",
                    "Maximum number of open file descriptors.",
                    self.max_fds,
                ),
                (
                    "process_threads",
                    "Number of OS threads in the process.",
                    self.threads,
                ),
            ];
            for (name, help, value) in whole {
                if let Some(v) = value {
                    let g = ConstGauge::new(v);
                    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
                }
            }
            if let Some(v) = self.start_time_seconds {
                let g = ConstGauge::new(v);
                g.encode(enc.encode_descriptor(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    None,
                    g.metric_type(),
                )?)?;
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use prometheus_client::registry::Registry;

        use super::*;

        #[test]
        fn stat_fields_are_counted_after_the_command_name() {
            // A command name with spaces and a parenthesis, as a thread may rename itself.
            let line = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                        123 45 0 0 20 0 17 0 98765 2147483648 5120 18446744073709551615 \
                        1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
            assert_eq!(
                Stat::parse(line),
                Some(Stat {
                    user_ticks: 123,
                    system_ticks: 45,
                    threads: 17,
                    start_ticks: 98765,
                    virtual_bytes: 2_147_483_648,
                    resident_pages: 5120,
                })
            );
            assert_eq!(Stat::parse("4242 (cut) S 1 2 3"), None);
            assert_eq!(Stat::parse(""), None);
        }

        #[test]
        fn boot_time_and_open_files_limit() {
            let proc_stat = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1700000000\nprocesses 7\n";
            assert_eq!(parse_boot_time(proc_stat), Some(1_700_000_000));
            assert_eq!(parse_boot_time("cpu 1\n"), None);
            let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                          Max cpu time              unlimited            unlimited            seconds   \n\
                          Max open files            1024                 524288               files     \n";
            assert_eq!(parse_max_fds(limits), Some(1024));
            assert_eq!(
                parse_max_fds(
                    "Max open files            unlimited            unlimited            files\n"
                ),
                None
            );
        }

        #[test]
        fn exposition_uses_the_standard_names() {
            let snapshot = Snapshot {
                cpu_seconds: Some(1.5),
                resident_bytes: Some(4096),
                virtual_bytes: Some(8192),
                open_fds: Some(12),
                max_fds: Some(1024),
                threads: Some(7),
                start_time_seconds: Some(1_700_000_000.25),
            };
            let mut registry = Registry::default();
            registry.register_collector(Box::new(Fixed(snapshot)));
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
            assert_eq!(
                text,
                "# HELP process_cpu_seconds Total user and system CPU time spent in seconds.\n\
                 # TYPE process_cpu_seconds counter\n\
                 process_cpu_seconds_total 1.5\n\
                 # HELP process_resident_memory_bytes Resident memory size in bytes.\n\
                 # TYPE process_resident_memory_bytes gauge\n\
                 process_resident_memory_bytes 4096\n\
                 # HELP process_virtual_memory_bytes Virtual memory size in bytes.\n\
                 # TYPE process_virtual_memory_bytes gauge\n\
                 process_virtual_memory_bytes 8192\n\
                 # HELP process_open_fds Number of open file descriptors.\n\
                 # TYPE process_open_fds gauge\n\
                 process_open_fds 12\n\
                 # HELP process_max_fds Maximum number of open file descriptors.\n\
                 # TYPE process_max_fds gauge\n\
                 process_max_fds 1024\n\
                 # HELP process_threads Number of OS threads in the process.\n\
                 # TYPE process_threads gauge\n\
                 process_threads 7\n\
                 # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
                 # TYPE process_start_time_seconds gauge\n\
                 process_start_time_seconds 1700000000.25\n\
                 # EOF\n"
            );
        }

        #[test]
        fn this_process_reads_plausibly() {
            let s = Snapshot::read();
            assert!(s.threads.is_some_and(|t| t >= 1), "{s:?}");
            assert!(s.open_fds.is_some_and(|n| n >= 1), "{s:?}");
            assert!(
                s.max_fds.is_some_and(|n| n >= s.open_fds.unwrap_or(0)),
                "{s:?}"
            );
            assert!(s.resident_bytes.is_some_and(|b| b > 0), "{s:?}");
            assert!(
                s.virtual_bytes.unwrap_or(0) >= s.resident_bytes.unwrap_or(u64::MAX),
                "{s:?}"
            );
            assert!(s.cpu_seconds.is_some_and(|c| c >= 0.0), "{s:?}");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            // Started before now, and not before this code was written.
            let started = s.start_time_seconds.unwrap();
            assert!(started > 1_700_000_000.0 && started <= now + 1.0, "{s:?}");
        }

        #[derive(Debug)]
        struct Fixed(Snapshot);

        impl prometheus_client::collector::Collector for Fixed {
            fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                self.0.encode(&mut enc)
            }
        }
    }
}
