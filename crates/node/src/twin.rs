//! The in-process twin of the [transport](crate::transport) traits: [`MemPeers`] reaches other nodes' components
//! in the same process by address (their [`RepairServer`], which holds their store, and their
//! hint store), so that anti-entropy sessions and hint delivery between real engines run in a
//! test without sockets. A peer can be taken down (its calls are refused, as by a closed port)
//! and every call is counted, per kind.

#[cfg(test)]
pub mod house;

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use distkv_cluster::gossip::{Ack, Ack2, Syn};
use distkv_cluster::{NodeId, RangeSet, Siblings, TokenRange};
use parking_lot::Mutex;

use crate::error::{NodeError, PeerFailure, Result};
use crate::hints::HintStore;
use crate::repair::RepairServer;
use crate::storage::{Cursor, RangePage};
use crate::transport::{
    GossipAnswer, GossipTransport, HandoffTransport, RepairTransport, ScanTransport,
    StreamTransport,
};

#[derive(Default)]
struct Peer {
    server: Option<Arc<RepairServer>>,
    hints: Option<HintStore>,
    gossip: Option<Arc<dyn GossipAnswer>>,
    puller: Option<Arc<dyn PullAnswer>>,
    down: bool,
}

/// The side of a node that pulls ranges when a peer asks it to (a removal's
/// re-replication): its streaming component.
pub trait PullAnswer: Send + Sync {
    fn pull(
        &self,
        ranges: Vec<TokenRange>,
        sources: Vec<NodeId>,
        reason: String,
    ) -> futures::future::BoxFuture<'static, Result<(u64, u64)>>;
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
    /// Gossip messages delivered (syns and ack2s).
    pub gossip: usize,
    /// Pulls asked of a peer.
    pub pulls: usize,
    /// Scan pages asked for.
    pub scans: usize,
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

    /// Makes `answer` the gossip of the node at `address`.
    pub fn add_gossip(&self, address: &str, answer: Arc<dyn GossipAnswer>) {
        self.peers
            .lock()
            .entry(address.to_string())
            .or_default()
            .gossip = Some(answer);
    }

    /// Makes `answer` what pulls ranges at `address` when asked to.
    pub fn add_puller(&self, address: &str, answer: Arc<dyn PullAnswer>) {
        self.peers
            .lock()
            .entry(address.to_string())
            .or_default()
            .puller = Some(answer);
    }

    /// Forgets the node at `address` (its components are gone): calls to it are refused.
    pub fn remove(&self, address: &str) {
        self.peers.lock().remove(address);
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

    async fn oldest_hint(&self, peer: &str) -> Result<Option<u64>> {
        let hints = self.reach(peer, |p| p.hints.clone(), |_| {})?;
        hints.oldest_version_ms_async().await
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

    async fn ask_to_pull(
        &self,
        peer: &str,
        ranges: &[TokenRange],
        sources: Vec<NodeId>,
        reason: &str,
    ) -> Result<(u64, u64)> {
        let answer = self.reach(peer, |p| p.puller.clone(), |c| c.pulls += 1)?;
        answer
            .pull(ranges.to_vec(), sources, reason.to_string())
            .await
    }
}

impl GossipTransport for MemPeers {
    async fn syn(
        &self,
        peer: &str,
        syn: Syn,
        _timeout: Duration,
        _dial_anyway: bool,
    ) -> Result<Ack> {
        let answer = self.reach(peer, |p| p.gossip.clone(), |c| c.gossip += 1)?;
        Ok(answer.on_syn(syn))
    }

    async fn ack2(&self, peer: &str, ack2: Ack2, _timeout: Duration) -> Result<()> {
        let answer = self.reach(peer, |p| p.gossip.clone(), |c| c.gossip += 1)?;
        answer.on_ack2(ack2);
        Ok(())
    }
}

impl ScanTransport for MemPeers {
    async fn scan(
        &self,
        peer: &str,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(String, Siblings)>, bool)> {
        let server = self.server(peer, |c| c.scans += 1)?;
        server.store().scan(start, end, limit, max_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use distkv_cluster::{
        DetectorConfig, GossipConfig, Gossiper, Member, MemberState, Membership, Update,
    };
    use parking_lot::Mutex;

    use super::*;

    /// A bare gossiper as a peer's gossip.
    struct Bare(Mutex<Gossiper>);

    impl GossipAnswer for Bare {
        fn on_syn(&self, syn: Syn) -> Ack {
            self.0.lock().on_syn(0, syn)
        }

        fn on_ack2(&self, ack2: Ack2) {
            self.0.lock().on_ack2(0, ack2);
        }
    }

    fn gossiper(id: &str) -> Gossiper {
        let me = Member::new(id, format!("{id}:1"), 1, MemberState::Normal, vec![1, 2]);
        let cfg = GossipConfig {
            heartbeat_interval_ms: 1000,
            gossip_interval_ms: 1000,
            fanout: 3,
            detector: DetectorConfig {
                suspect_timeout_ms: 5_000,
                dead_timeout_ms: 20_000,
                min_suspect_ms: 2_000,
                phi_threshold: 8.0,
            },
        };
        Gossiper::new(cfg, Membership::new(me), Vec::new(), 7, 0)
    }

    #[tokio::test]
    async fn a_gossip_exchange_through_the_twin_teaches_both_sides_and_a_peer_down_refuses() {
        let peers = MemPeers::default();
        let b = Arc::new(Bare(Mutex::new(gossiper("b"))));
        peers.add_gossip("b:1", b.clone());
        let mut a = gossiper("a");
        let ack = peers
            .syn("b:1", a.syn(), Duration::from_secs(1), false)
            .await
            .unwrap();
        assert!(
            ack.updates
                .iter()
                .any(|u| matches!(u, Update::Record(m) if m.id == "b")),
            "b answers with its own record"
        );
        if let Some(ack2) = a.on_ack(0, ack) {
            peers
                .ack2("b:1", ack2, Duration::from_secs(1))
                .await
                .unwrap();
        }
        assert!(a.table().get("b").is_some(), "a learned b");
        assert!(b.0.lock().table().get("a").is_some(), "b learned a");
        assert_eq!(peers.calls().gossip, 2);

        peers.set_down("b:1", true);
        let err = peers
            .syn("b:1", a.syn(), Duration::from_secs(1), true)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                NodeError::Peer {
                    failure: PeerFailure::Unreachable(_),
                    ..
                }
            ),
            "{err}"
        );
    }
}
