//! Blocking work (the disk, building a Merkle tree, encoding a status page) off the async
//! worker threads, through one seam: [`spawn`] is tokio's `spawn_blocking` in a node.
//!
//! A simulation runs a whole cluster on one thread with tokio's paused clock. The blocking
//! pool's threads would finish their work at moments the simulation does not choose, so that
//! now and then two tasks ready in the same simulated instant run in a different order and a
//! seed does not replay exactly. There, [`inline_on_this_thread`] makes [`spawn`] run the work
//! as an ordinary task of the current-thread runtime instead: it blocks that thread while it
//! runs (which holds simulated time still, as a running blocking task does) and is scheduled
//! like every other task.

use std::cell::Cell;

thread_local! {
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on tokio's blocking pool (or, in a simulation, as a task of its runtime).
pub fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    if INLINE.with(Cell::get) {
        tokio::spawn(async move { f() })
    } else {
        tokio::task::spawn_blocking(f)
    }
}

/// For simulations on a current-thread runtime driven from this thread: while the guard lives,
/// [`spawn`] called on this thread runs its work as a task of that runtime.
#[cfg(test)]
pub fn inline_on_this_thread() -> InlineGuard {
    INLINE.with(|c| c.set(true));
    InlineGuard(())
}

/// Ends [`inline_on_this_thread`] when dropped.
#[cfg(test)]
pub struct InlineGuard(());

#[cfg(test)]
impl Drop for InlineGuard {
    fn drop(&mut self) {
        INLINE.with(|c| c.set(false));
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn work_runs_on_the_blocking_pool_unless_inlined() {
        let pool = super::spawn(|| std::thread::current().id()).await.unwrap();
        assert_ne!(pool, std::thread::current().id());
        let inlined = {
            let _inline = super::inline_on_this_thread();
            super::spawn(|| std::thread::current().id())
        };
        assert_eq!(inlined.await.unwrap(), std::thread::current().id());
        // The guard is gone: the pool again.
        let after = super::spawn(|| std::thread::current().id()).await.unwrap();
        assert_ne!(after, std::thread::current().id());
    }
}
