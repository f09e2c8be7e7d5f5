//! The open loop's clock: hands each worker its requests' intended start times, on time.
//!
//! Start `i` (0, 1, 2, ...) is due `i / rate` seconds after the run starts and belongs to worker
//! `i % workers`, so every worker keeps `workers / rate` between its starts and the workers'
//! schedules interleave evenly. A worker still busy with an earlier request finds the start
//! waiting when it is done, and its latency counts from the intended start: a server that falls
//! behind is charged for the time requests waited (no coordinated omission).
//!
//! The starts come from a thread of their own that sleeps with the operating system's fine
//! timers. tokio's timers fire on a millisecond wheel, and only when a worker thread turns it:
//! a sleep until a start fired 1 to 2 ms late on an idle machine, which the open loop then
//! counted as the server's latency (0.2 ms reads measured as 1.4 ms at 1,000 requests a
//! second). Here a start reaches its worker within the thread's wake-up time of being due.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// How long the pacer sleeps at most before it looks at the stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Where a worker receives its intended start times; closed once the run's last start is out.
pub(crate) type Starts = mpsc::UnboundedReceiver<Instant>;

/// Starts the pacing thread for `workers` workers sharing `rate` requests a second from
/// `started` until `deadline` (or until `stop` is set): every start due before the deadline is
/// handed out. Returns each worker's receiver and the thread, which ends with the run.
pub(crate) fn start(
    started: Instant,
    rate: f64,
    workers: usize,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(Vec<Starts>, JoinHandle<()>)> {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers.max(1))
        .map(|_| mpsc::unbounded_channel())
        .unzip();
    let thread = std::thread::Builder::new()
        .name("bench-pacer".into())
        .spawn(move || {
            'starts: for i in 0u64.. {
                // From the start each time, so that rounding never accumulates.
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                if due >= deadline {
                    break;
                }
                // In slices, so that a stop is seen soon even at a low rate.
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break 'starts;
                    }
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    std::thread::sleep((due - now).min(STOP_CHECK));
                }
                // A worker that is gone (the run is stopping) takes no more starts.
                let _ = senders[(i % senders.len() as u64) as usize].send(due);
            }
        })?;
    Ok((receivers, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_start_before_the_deadline_reaches_its_worker_in_order_and_never_early() {
        let (rate, workers) = (2_000.0, 4);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(100);
        let stop = Arc::new(AtomicBool::new(false));
        let (receivers, thread) = start(started, rate, workers, deadline, stop).unwrap();
        let mut total = 0;
        for (w, mut rx) in receivers.into_iter().enumerate() {
            let mut k = 0u64;
            while let Some(intended) = rx.recv().await {
                // Worker w's k-th start is the run's start w + k * workers.
                let i = w as u64 + k * workers as u64;
                let expected = started + Duration::from_secs_f64(i as f64 / rate);
                assert_eq!(intended, expected, "worker {w}, start {k}");
                assert!(intended < deadline);
                // Handed out once due, not before: received no earlier than intended.
                assert!(Instant::now() >= intended);
                k += 1;
                total += 1;
            }
        }
        // Starts 0..200 are due before the deadline (100 ms at 2,000 a second).
        assert_eq!(total, 200);
        thread.join().unwrap();
    }

    #[tokio::test]
    async fn stopping_ends_the_starts() {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(3600);
        let stop = Arc::new(AtomicBool::new(false));
        let (mut receivers, thread) =
            start(started, 1_000.0, 1, deadline, Arc::clone(&stop)).unwrap();
        let rx = &mut receivers[0];
        assert!(rx.recv().await.is_some());
        stop.store(true, Ordering::Relaxed);
        // The thread ends and closes the channel, well before the deadline.
        while rx.recv().await.is_some() {}
        thread.join().unwrap();
    }
}
