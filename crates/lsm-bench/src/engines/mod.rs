//! One adapter per engine, each mapping [`crate::engine::BenchEngine`] onto the
//! engine's own API with the shared [`crate::engine::EngineSettings`].

#[cfg(feature = "distkv")]
pub mod distkv;
pub mod fjall;
#[cfg(test)]
pub mod memory;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How often an adapter without a blocking "wait for compactions" call polls for idleness.
const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How many idle polls in a row count as idle: a compaction may be scheduled a moment
/// after the previous one finishes, so one idle observation is not enough.
const IDLE_POLLS_REQUIRED: u32 = 5;

/// Upper bound on waiting for background work, so a stuck engine fails the run
/// instead of hanging it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Polls `busy` until it reports idle `IDLE_POLLS_REQUIRED` times in a row.
pub(crate) fn wait_until_idle(engine: &str, mut busy: impl FnMut() -> Result<bool>) -> Result<()> {
    let started = Instant::now();
    let mut idle_in_a_row = 0;
    while idle_in_a_row < IDLE_POLLS_REQUIRED {
        if busy()? {
            idle_in_a_row = 0;
        } else {
            idle_in_a_row += 1;
        }
        if started.elapsed() > IDLE_TIMEOUT {
            bail!("{engine}: background work still running after {IDLE_TIMEOUT:?}");
        }
        std::thread::sleep(IDLE_POLL_INTERVAL);
    }
    Ok(())
}
