//! Wall-clock time as a seam: what stamps versions and seeds a node's dot counters. A node
//! uses [`SystemClock`]; a simulation passes a clock that follows its own simulated time, so
//! that a seed replays to the same versions.

/// Milliseconds since the Unix epoch, as some clock sees them.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that starts at a fixed instant and follows tokio's clock from the moment it was
/// made: on a paused runtime it moves only as simulated time does.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    epoch_ms: u64,
    started: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(epoch_ms: u64) -> Self {
        TokioClock {
            epoch_ms,
            started: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.started.elapsed().as_millis() as u64
    }
}
