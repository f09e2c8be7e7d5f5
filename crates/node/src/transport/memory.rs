//! The in-process twin of the background calls: [`MemPeers`] reaches other nodes' components
//! in the same process by address (their [`RepairServer`], which holds their store, and their
//! hint store), so that anti-entropy sessions and hint delivery between real engines run in a
//! test without sockets. A peer can be taken down (its calls are refused, as by a closed port)
//! and every call is counted, per kind.

use std::collections::HashMap;
use std::sync::Arc;

use distkv_cluster::{NodeId, RangeSet, Siblings, TokenRange};
use parking_lot::Mutex;

use super::{HandoffTransport, RepairTransport, StreamTransport};
use crate::error::{NodeError, PeerFailure, Result};
use crate::hints::HintStore;
use crate::repair::RepairServer;
use crate::storage::{Cursor, RangePage};

#[derive(Default)]
struct Peer {
    server: Option<Arc<RepairServer>>,
    hints: Option<HintStore>,
    down: bool,
}

/// Calls made through a [`MemPeers`], by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    pub hashes: usize,
    pub keys: usize,
    pub fetches: usize,
    /// Sends of anti-entropy and deliveries of hints.
    pub sends: usize,
    /// Hints handed to a peer to keep.
    pub kept: usize,
    /// Range pages fetched.
    pub pages: usize,
}

/// The peers of a test, by address. Cloning shares them.
#[derive(Clone, Default)]
pub struct MemPeers {
    peers: Arc<Mutex<HashMap<String, Peer>>>,
    calls: Arc<Mutex<Calls>>,
}

impl MemPeers {
    /// Makes `server` (and the store it answers from) reachable at `address`.
    pub fn add(&self, address: &str, server: Arc<RepairServer>) {
        self.peers
            .lock()
            .entry(address.to_string())
            .or_default()
            .server = Some(server);
    }

    /// Makes `hints` the hint store of the node at `address`.
    pub fn add_hints(&self, address: &str, hints: HintStore) {
        self.peers
            .lock()
            .entry(address.to_string())
            .or_default()
            .hints = Some(hints);
    }

    /// Refuses (true) or delivers again (false) every call to `address`.
    pub fn set_down(&self, address: &str, down: bool) {
        self.peers
            .lock()
            .entry(address.to_string())
            .or_default()
            .down = down;
    }

    /// Calls made so far, by kind.
    pub fn calls(&self) -> Calls {
        *self.calls.lock()
    }

    /// What the peer at `address` has of `part`, once the call is counted; refused when it
    /// is down or has none.
    fn reach<P>(
        &self,
        address: &str,
        part: impl FnOnce(&Peer) -> Option<P>,
        count: impl FnOnce(&mut Calls),
    ) -> Result<P> {
        let peers = self.peers.lock();
        let unreachable = |why: &str| NodeError::Peer {
            peer: address.to_string(),
            failure: PeerFailure::Unreachable(why.to_string()),
        };
        let peer = peers
            .get(address)
            .ok_or_else(|| unreachable("no such peer"))?;
        if peer.down {
            return Err(unreachable("connection refused"));
        }
        let part = part(peer).ok_or_else(|| unreachable("no such peer"))?;
        count(&mut self.calls.lock());
        Ok(part)
    }

    fn server(&self, address: &str, count: impl FnOnce(&mut Calls)) -> Result<Arc<RepairServer>> {
        self.reach(address, |p| p.server.clone(), count)
    }
}

impl RepairTransport for MemPeers {
    async fn merkle_hashes(
        &self,
        peer: &str,
        session: u64,
        ranges: &[TokenRange],
        level: usize,
        nodes: &[usize],
    ) -> Result<Vec<u64>> {
        let server = self.server(peer, |c| c.hashes += 1)?;
        let (hashes, _) = server
            .hashes(session, ranges.to_vec(), level, nodes)
            .await?;
        Ok(hashes)
    }

    async fn merkle_keys(
        &self,
        peer: &str,
        _session: u64,
        ranges: &[TokenRange],
        leaves: &[usize],
    ) -> Result<Vec<(String, u64)>> {
        let server = self.server(peer, |c| c.keys += 1)?;
        server.leaf_keys(ranges.to_vec(), leaves.to_vec()).await
    }

    async fn fetch(&self, peer: &str, keys: &[String]) -> Result<Vec<(String, Siblings)>> {
        let server = self.server(peer, |c| c.fetches += 1)?;
        server.store().read_many(keys.to_vec()).await
    }

    async fn send(&self, peer: &str, entries: &[(String, Siblings)]) -> Result<()> {
        let server = self.server(peer, |c| c.sends += 1)?;
        server.store().merge_many(entries.to_vec()).await.map(drop)
    }
}

impl HandoffTransport for MemPeers {
    async fn deliver(&self, peer: &str, entries: &[(String, Siblings)]) -> Result<()> {
        self.send(peer, entries).await
    }

    async fn keep_hints(
        &self,
        peer: &str,
        target: &NodeId,
        hints: &[(String, Siblings)],
    ) -> Result<()> {
        let store = self.reach(peer, |p| p.hints.clone(), |c| c.kept += hints.len())?;
        for (key, versions) in hints {
            store.add(target, key, versions)?;
        }
        Ok(())
    }
}

impl StreamTransport for MemPeers {
    async fn fetch_range(
        &self,
        peer: &str,
        ranges: &[TokenRange],
        after: Option<Cursor>,
        max_bytes: usize,
    ) -> Result<RangePage> {
        let server = self.server(peer, |c| c.pages += 1)?;
        server
            .store()
            .range_page(RangeSet::new(ranges), after, max_bytes)
            .await
    }
}
