//! Pulling one task's ranges from a peer into the local store, page by page, over a
//! [`StreamTransport`]: gRPC in a node, [`MemPeers`](crate::twin::MemPeers) in the
//! tests below (real engines in temporary directories). The node's bookkeeping around each
//! page (progress, the persisted plan, the throttle) is the caller's [`PullHooks`].

use std::future::Future;

use crate::error::{NodeError, Result};
use crate::storage::Store;
use crate::transport::StreamTransport;

use super::StreamTask;

/// Bytes of versions per streamed page.
pub(crate) const PAGE_BYTES: usize = 1 << 20;

/// What a pull asks of the node running it.
pub trait PullHooks: Send {
    /// The address of a source (`None`: it is skipped).
    fn address_of(&self, source: &str) -> Option<String>;

    /// Asked after each page that did not finish the task: true ends the pull.
    fn stopping(&self) -> bool;

    /// Runs after each page was merged and counted into `task`, with the page's keys and
    /// bytes; an error ends the pull.
    fn after_page(
        &mut self,
        task: &StreamTask,
        keys: u64,
        bytes: u64,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Pulls `task`'s ranges into `store` from the first of its sources that answers (its peer,
/// then its alternates), from its cursor on. Every page is merged, then counted into the
/// task (keys, bytes, cursor, done) and handed to `hooks`. A source that fails gives way to
/// the next, which carries on from the cursor.
pub async fn pull<T: StreamTransport>(
    transport: &T,
    store: &Store,
    task: &mut StreamTask,
    hooks: &mut impl PullHooks,
) -> Result<()> {
    let sources: Vec<String> = std::iter::once(task.peer.clone())
        .chain(task.alternates.iter().cloned())
        .collect();
    let mut last_error = None;
    for source in sources {
        let Some(address) = hooks.address_of(&source) else {
            continue;
        };
        let result: Result<()> = async {
            loop {
                let page = transport
                    .fetch_range(&address, &task.ranges, task.cursor.clone(), PAGE_BYTES)
                    .await?;
                let n = page.entries.len() as u64;
                store.merge_many(page.entries).await?;
                task.keys += n;
                task.bytes += page.bytes;
                match page.next {
                    Some(next) => task.cursor = Some(next),
                    None => task.done = true,
                }
                hooks.after_page(task, n, page.bytes).await?;
                if task.done {
                    return Ok(());
                }
                if hooks.stopping() {
                    return Err(NodeError::ShuttingDown);
                }
            }
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(NodeError::ShuttingDown) => return Err(NodeError::ShuttingDown),
            Err(e) => {
                tracing::warn!(source, error = %e, "streaming from a source failed; trying the next");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or(NodeError::NoSource))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use distkv_cluster::{
        ConflictMode, Dot, RangeSet, Siblings, TokenRange, VectorClock, key_token,
    };

    use super::*;
    use crate::repair::RepairServer;
    use crate::storage::Cursor;
    use crate::twin::MemPeers;

    const B: &str = "127.0.0.1:2";
    const C: &str = "127.0.0.1:3";

    fn store(dir: &std::path::Path) -> Store {
        Store::open(dir, distkv_lsm::Options::default(), ConflictMode::Siblings).unwrap()
    }

    /// A value of about 1 KiB, so that a few thousand keys take several pages.
    fn version(i: u64) -> Siblings {
        Siblings::new().write(
            Dot::new("b", i + 1),
            &VectorClock::new(),
            Some(vec![b'x'; 1000 + (i % 7) as usize]),
            1_000 + i,
            ConflictMode::Siblings,
        )
    }

    struct World {
        _dirs: Vec<tempfile::TempDir>,
        local: Store,
        peers: MemPeers,
        keys: Vec<(String, Siblings)>,
    }

    /// A local store and sources B and C holding the same `n` keys.
    async fn world(n: u64) -> World {
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let keys: Vec<(String, Siblings)> =
            (0..n).map(|i| (format!("key-{i}"), version(i))).collect();
        let peers = MemPeers::default();
        for (dir, address) in dirs[1..].iter().zip([B, C]) {
            let s = store(dir.path());
            s.merge_many(keys.clone()).await.unwrap();
            peers.add(address, Arc::new(RepairServer::new(s)));
        }
        World {
            local: store(dirs[0].path()),
            _dirs: dirs,
            peers,
            keys,
        }
    }

    fn task(ranges: Vec<TokenRange>, alternates: &[&str]) -> StreamTask {
        StreamTask {
            ranges,
            ..StreamTask::new(
                "b".into(),
                alternates.iter().map(|a| a.to_string()).collect(),
            )
        }
    }

    /// Sources b and c at B and C; after page `down_after`, the addresses in `take_down` stop
    /// answering; `stop` says the node is stopping.
    #[derive(Default)]
    struct Hooks {
        peers: MemPeers,
        pages: Vec<(u64, u64, Option<Cursor>)>,
        down_after: usize,
        take_down: Vec<&'static str>,
        stop: bool,
    }

    impl PullHooks for Hooks {
        fn address_of(&self, id: &str) -> Option<String> {
            match id {
                "b" => Some(B.into()),
                "c" => Some(C.into()),
                _ => None,
            }
        }

        fn stopping(&self) -> bool {
            self.stop
        }

        async fn after_page(&mut self, task: &StreamTask, keys: u64, bytes: u64) -> Result<()> {
            let next = if task.done { None } else { task.cursor.clone() };
            self.pages.push((keys, bytes, next));
            if self.pages.len() == self.down_after {
                for a in &self.take_down {
                    self.peers.set_down(a, true);
                }
            }
            Ok(())
        }
    }

    fn hooks(w: &World) -> Hooks {
        Hooks {
            peers: w.peers.clone(),
            ..Hooks::default()
        }
    }

    #[tokio::test]
    async fn a_pull_brings_exactly_the_keys_of_its_ranges_page_by_page() {
        let w = world(3_000).await;
        let half = TokenRange::new(u64::MAX / 4, u64::MAX / 4 * 3);
        let mut t = task(vec![half], &[]);
        let mut h = hooks(&w);
        pull(&w.peers, &w.local, &mut t, &mut h).await.unwrap();
        let pages = h.pages;
        assert!(t.done);
        assert!(pages.len() > 1, "1,500 keys of 1 KiB are more than a page");
        let cursors: Vec<Cursor> = pages.iter().filter_map(|p| p.2.clone()).collect();
        assert_eq!(
            cursors.len(),
            pages.len() - 1,
            "every page but the last says where to go on"
        );
        for window in cursors.windows(2) {
            assert!(window[0] < window[1], "each page starts after the last one");
        }
        let inside = w
            .keys
            .iter()
            .filter(|(k, _)| half.contains(key_token(k.as_bytes())))
            .count();
        assert_eq!(t.keys, inside as u64);
        assert_eq!(t.keys, pages.iter().map(|p| p.0).sum::<u64>());
        assert_eq!(t.bytes, pages.iter().map(|p| p.1).sum::<u64>());
        for (key, versions) in &w.keys {
            let here = w.local.read(key.clone()).await.unwrap();
            if half.contains(key_token(key.as_bytes())) {
                assert_eq!(&here, versions, "{key} is in the range");
            } else {
                assert!(here.is_empty(), "{key} is not");
            }
        }
    }

    #[tokio::test]
    async fn a_source_that_fails_midway_gives_way_to_the_next_from_the_cursor() {
        let w = world(3_000).await;
        let mut t = task(vec![TokenRange::new(0, 0)], &["c"]);
        let mut h = Hooks {
            down_after: 2,
            take_down: vec![B],
            ..hooks(&w)
        };
        pull(&w.peers, &w.local, &mut t, &mut h).await.unwrap();
        assert!(t.done);
        assert_eq!(t.keys, 3_000, "no key was fetched twice");
        for (key, versions) in &w.keys {
            assert_eq!(&w.local.read(key.clone()).await.unwrap(), versions, "{key}");
        }
        let all = RangeSet::new(&[TokenRange::new(0, 0)]);
        let (index, _) = w.local.index_page(all, None, 10_000).await.unwrap();
        assert_eq!(index.len(), 3_000);
    }

    #[tokio::test]
    async fn a_pull_with_no_source_answering_fails_with_the_last_error_and_keeps_its_cursor() {
        let w = world(3_000).await;
        let mut t = task(vec![TokenRange::new(0, 0)], &["c", "unknown"]);
        let mut h = Hooks {
            down_after: 1,
            take_down: vec![B, C],
            ..hooks(&w)
        };
        let err = pull(&w.peers, &w.local, &mut t, &mut h).await.unwrap_err();
        assert!(
            matches!(&err, NodeError::Peer { peer, .. } if peer == C),
            "the last source tried: {err}"
        );
        assert!(!t.done);
        assert!(
            t.cursor.is_some(),
            "the first page's progress is kept for a resume"
        );
        let resumed_from = t.keys;
        // A source back: the same task resumes where it stopped.
        w.peers.set_down(B, false);
        pull(&w.peers, &w.local, &mut t, &mut hooks(&w))
            .await
            .unwrap();
        assert_eq!(t.keys, 3_000);
        assert!(resumed_from > 0 && resumed_from < 3_000);
    }

    #[tokio::test]
    async fn a_pull_stops_between_pages_when_the_node_stops() {
        let w = world(3_000).await;
        let mut t = task(vec![TokenRange::new(0, 0)], &["c"]);
        let mut h = Hooks {
            stop: true,
            ..hooks(&w)
        };
        let err = pull(&w.peers, &w.local, &mut t, &mut h).await.unwrap_err();
        assert!(matches!(err, NodeError::ShuttingDown), "{err}");
        assert!(!t.done && t.keys > 0 && t.keys < 3_000);
        assert_eq!(w.peers.calls().pages, 1, "no other source was tried");
    }
}
