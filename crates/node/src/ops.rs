//! Long-running jobs of a node (join, decommission, re-replication, repair) and their
//! progress, for `status`, the logs and the client's progress bar; and the throttle that
//! keeps data streaming from crowding out requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
// tokio's clock: a throttled stream waits in simulated time where tokio's clock is paused.
use tokio::time::Instant;

/// Finished operations kept for `status`.
const KEEP_FINISHED: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpState {
    Running,
    Done,
    Failed,
}

impl OpState {
    pub fn name(self) -> &'static str {
        match self {
            OpState::Running => "running",
            OpState::Done => "done",
            OpState::Failed => "failed",
        }
    }
}

/// A snapshot of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpInfo {
    pub id: u64,
    pub kind: &'static str,
    pub state: OpState,
    pub steps_total: u32,
    pub steps_done: u32,
    pub keys: u64,
    pub bytes: u64,
    pub started_secs: i64,
    pub finished_secs: i64,
    pub detail: String,
}

/// Every operation of the node, the running ones and the last few finished.
#[derive(Default)]
pub struct Operations {
    next_id: AtomicU64,
    ops: Mutex<Vec<Arc<Mutex<OpInfo>>>>,
}

/// The handle a running operation reports its progress through.
#[derive(Clone)]
pub struct Op {
    info: Arc<Mutex<OpInfo>>,
    finished: Arc<tokio::sync::Notify>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Operations {
    /// Starts tracking a new operation.
    pub fn start(&self, kind: &'static str, detail: impl Into<String>) -> Op {
        let info = Arc::new(Mutex::new(OpInfo {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            kind,
            state: OpState::Running,
            steps_total: 0,
            steps_done: 0,
            keys: 0,
            bytes: 0,
            started_secs: now_secs(),
            finished_secs: 0,
            detail: detail.into(),
        }));
        let mut ops = self.ops.lock();
        ops.push(Arc::clone(&info));
        let finished_notify = Arc::new(tokio::sync::Notify::new());
        // Forget the oldest finished ones beyond the limit.
        let finished = ops
            .iter()
            .filter(|o| o.lock().state != OpState::Running)
            .count();
        if finished > KEEP_FINISHED {
            let mut excess = finished - KEEP_FINISHED;
            ops.retain(|o| {
                if excess > 0 && o.lock().state != OpState::Running {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
        Op {
            info,
            finished: finished_notify,
        }
    }

    /// Every tracked operation, oldest first.
    pub fn list(&self) -> Vec<OpInfo> {
        self.ops.lock().iter().map(|o| o.lock().clone()).collect()
    }

    /// True while an operation of `kind` runs.
    pub fn running(&self, kind: &str) -> bool {
        self.ops.lock().iter().any(|o| {
            let o = o.lock();
            o.kind == kind && o.state == OpState::Running
        })
    }
}

impl Op {
    pub fn set_steps(&self, total: usize) {
        self.info.lock().steps_total = total as u32;
    }

    pub fn step_done(&self) {
        let mut i = self.info.lock();
        i.steps_done = (i.steps_done + 1).min(i.steps_total.max(i.steps_done + 1));
    }

    pub fn add(&self, keys: u64, bytes: u64) {
        let mut i = self.info.lock();
        i.keys += keys;
        i.bytes += bytes;
    }

    pub fn set_detail(&self, detail: impl Into<String>) {
        self.info.lock().detail = detail.into();
    }

    pub fn info(&self) -> OpInfo {
        self.info.lock().clone()
    }

    /// Marks the operation finished, with the error's text on failure.
    pub fn finish<T, E: std::fmt::Display>(&self, result: &Result<T, E>) {
        {
            let mut i = self.info.lock();
            i.finished_secs = now_secs();
            match result {
                Ok(_) => i.state = OpState::Done,
                Err(e) => {
                    i.state = OpState::Failed;
                    i.detail = e.to_string();
                }
            }
        }
        self.finished.notify_waiters();
    }

    /// Waits until the operation has finished; returns how it ended.
    pub async fn wait(&self) -> OpInfo {
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let info = self.info();
            if info.state != OpState::Running {
                return info;
            }
            notified.await;
        }
    }
}

/// A token bucket over bytes: streaming calls [`Throttle::consume`] for every page it moves
/// and waits when it runs ahead of the rate. A rate of 0 means unlimited.
pub struct Throttle {
    bytes_per_sec: u64,
    /// When the bytes consumed so far will have been paid for.
    paid_until: Instant,
}

impl Throttle {
    pub fn new(bytes_per_sec: u64) -> Throttle {
        // The bucket starts full: a second's worth may go at once.
        let now = Instant::now();
        Throttle {
            bytes_per_sec,
            paid_until: now.checked_sub(Duration::from_secs(1)).unwrap_or(now),
        }
    }

    /// How long to wait after moving `bytes` more, at `now`.
    pub fn delay_for(&mut self, bytes: u64, now: Instant) -> Duration {
        if self.bytes_per_sec == 0 {
            return Duration::ZERO;
        }
        // Unused time does not pile up into a burst larger than a second's worth.
        let floor = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        let start = self.paid_until.max(floor);
        self.paid_until = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        self.paid_until.saturating_duration_since(now)
    }

    pub async fn consume(&mut self, bytes: u64) {
        let wait = self.delay_for(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_holds_the_rate_and_allows_a_short_burst() {
        let mut t = Throttle::new(1_000_000);
        let start = Instant::now();
        // A second's worth goes at once (the bucket starts a second back)...
        assert_eq!(t.delay_for(1_000_000, start), Duration::ZERO);
        // ...then each megabyte costs a second.
        assert_eq!(t.delay_for(1_000_000, start), Duration::from_secs(1));
        assert_eq!(t.delay_for(500_000, start), Duration::from_millis(1500));
        // Unlimited never waits.
        let mut free = Throttle::new(0);
        assert_eq!(free.delay_for(u64::MAX, start), Duration::ZERO);
    }

    #[test]
    fn operations_report_progress_and_keep_a_bounded_history() {
        let ops = Operations::default();
        let op = ops.start("join", "from 2 sources");
        op.set_steps(2);
        op.add(10, 1000);
        op.step_done();
        assert!(ops.running("join"));
        let info = op.info();
        assert_eq!((info.steps_done, info.steps_total, info.keys), (1, 2, 10));
        op.finish::<(), String>(&Ok(()));
        assert!(!ops.running("join"));
        let failed = ops.start("repair", "");
        failed.finish::<(), String>(&Err("peer n2: timed out".into()));
        assert_eq!(failed.info().state, OpState::Failed);
        assert_eq!(failed.info().detail, "peer n2: timed out");
        for _ in 0..40 {
            ops.start("repair", "").finish::<(), String>(&Ok(()));
        }
        // Pruned when the next one starts: the one finished since is still listed.
        assert_eq!(ops.list().len(), KEEP_FINISHED + 1);
        assert!(ops.list().iter().all(|o| o.kind == "repair"));
    }
}
