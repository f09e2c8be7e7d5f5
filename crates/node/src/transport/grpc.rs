//! The node's calls to peers over the `Replica` gRPC service ([`GrpcTransport`]): the
//! background calls of anti-entropy, hinted handoff, streaming, gossip and scans here, the
//! coordinator's replica calls in [`super::replicas`]. The only place they meet proto types.

use std::sync::Arc;
use std::time::Duration;

use distkv_cluster::gossip::{Ack, Ack2, Syn};
use distkv_cluster::{NodeId, Siblings, TokenRange};
use distkv_proto::internal;

use super::convert::range_to_proto;
use super::convert::{ack_from_proto, ack2_to_proto, syn_to_proto};
use super::{GossipTransport, HandoffTransport, RepairTransport, ScanTransport, StreamTransport};
use parking_lot::RwLock;

use super::replicas::Batcher;
use crate::error::{NodeError, Result};
use crate::hints::HintStore;
use crate::peers::Peers;
use crate::rings::Rings;
use crate::storage::{Cursor, RangePage, Store};

/// The node's one way to its peers over gRPC: the replica calls of the coordinator
/// ([`ReplicaTransport`](super::ReplicaTransport), in [`super::replicas`]: the local replica by
/// direct calls, the others batched) and the background calls of anti-entropy, hinted
/// handoff, streaming, gossip and scans, each with a deadline of `timeout` (tree building,
/// key listings and batches of hints take longer than a replica call). Cheap to clone: every
/// component holds a clone.
#[derive(Clone)]
pub struct GrpcTransport {
    pub(super) peers: Arc<Peers>,
    /// This node (the sender of handoff batches, the local replica).
    pub(super) local: NodeId,
    timeout: Duration,
    pub(super) store: Store,
    pub(super) hints: HintStore,
    /// The node's rings, for its members' addresses.
    pub(super) rings: Arc<RwLock<Rings>>,
    pub(super) batcher: Arc<Batcher>,
}

impl GrpcTransport {
    /// Calls to `peers` from the node `local`, whose replica is `store` and `hints`, finding
    /// members' addresses in `rings`; background calls get `timeout`.
    pub fn new(
        local: NodeId,
        store: Store,
        hints: HintStore,
        peers: Arc<Peers>,
        rings: Arc<RwLock<Rings>>,
        timeout: Duration,
    ) -> Self {
        GrpcTransport {
            batcher: Arc::new(Batcher::new(Arc::clone(&peers), local.clone())),
            peers,
            local,
            timeout,
            store,
            hints,
            rings,
        }
    }

    fn request<M>(&self, message: M) -> tonic::Request<M> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(self.timeout);
        req
    }
}

fn ranges_to_proto(ranges: &[TokenRange]) -> Vec<internal::TokenRange> {
    ranges.iter().copied().map(range_to_proto).collect()
}

impl RepairTransport for GrpcTransport {
    async fn merkle_hashes(
        &self,
        peer: &str,
        session: u64,
        ranges: &[TokenRange],
        level: usize,
        nodes: &[usize],
    ) -> Result<Vec<u64>> {
        let mut client = self.peers.background(peer)?;
        let req = self.request(internal::MerkleHashesRequest {
            session,
            ranges: ranges_to_proto(ranges),
            level: level as u32,
            nodes: nodes.iter().map(|n| *n as u32).collect(),
        });
        let reply = client
            .merkle_hashes(req)
            .await
            .map_err(|s| self.peers.error(peer, s))?;
        Ok(reply.into_inner().hashes)
    }

    async fn merkle_keys(
        &self,
        peer: &str,
        session: u64,
        ranges: &[TokenRange],
        leaves: &[usize],
    ) -> Result<Vec<(String, u64)>> {
        let mut client = self.peers.background(peer)?;
        let req = self.request(internal::MerkleKeysRequest {
            session,
            ranges: ranges_to_proto(ranges),
            leaves: leaves.iter().map(|n| *n as u32).collect(),
        });
        let reply = client
            .merkle_keys(req)
            .await
            .map_err(|s| self.peers.error(peer, s))?;
        Ok(reply
            .into_inner()
            .keys
            .into_iter()
            .map(|k| (k.key, k.digest))
            .collect())
    }

    async fn fetch(&self, peer: &str, keys: &[String]) -> Result<Vec<(String, Siblings)>> {
        let mut client = self.peers.background(peer)?;
        let req = self.request(internal::FetchKeysRequest {
            keys: keys.to_vec(),
        });
        let entries = client
            .fetch_keys(req)
            .await
            .map_err(|s| self.peers.error(peer, s))?
            .into_inner()
            .entries;
        entries
            .into_iter()
            .map(|e| {
                let versions =
                    Siblings::decode(&e.versions).map_err(|err| NodeError::bad_reply(peer, err))?;
                Ok((e.key, versions))
            })
            .collect()
    }

    async fn send(&self, peer: &str, entries: &[(String, Siblings)]) -> Result<()> {
        self.handoff(peer, entries).await
    }

    async fn oldest_hint(&self, peer: &str) -> Result<Option<u64>> {
        let mut client = self.peers.background(peer)?;
        let reply = client
            .oldest_hint(self.request(internal::OldestHintRequest {}))
            .await
            .map_err(|s| self.peers.error(peer, s))?
            .into_inner();
        Ok(reply.holds_hints.then_some(reply.oldest_version_ms))
    }
}

impl GrpcTransport {
    /// The handoff call: the peer merges `entries`.
    async fn handoff(&self, peer: &str, entries: &[(String, Siblings)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut client = self.peers.background(peer)?;
        let req = self.request(internal::HandoffBatch {
            sender_id: self.local.clone(),
            writes: entries
                .iter()
                .map(|(k, v)| internal::HintedWrite {
                    key: k.clone(),
                    versions: v.encode(),
                })
                .collect(),
        });
        client
            .handoff(req)
            .await
            .map_err(|s| self.peers.error(peer, s))?;
        Ok(())
    }
}

impl HandoffTransport for GrpcTransport {
    async fn deliver(&self, peer: &str, entries: &[(String, Siblings)]) -> Result<()> {
        self.handoff(peer, entries).await
    }

    async fn keep_hints(
        &self,
        peer: &str,
        target: &NodeId,
        hints: &[(String, Siblings)],
    ) -> Result<()> {
        let mut client = self.peers.background(peer)?;
        for (key, versions) in hints {
            let req = self.request(internal::StoreHintRequest {
                target_node: target.clone(),
                key: key.clone(),
                versions: versions.encode(),
            });
            client
                .store_hint(req)
                .await
                .map_err(|s| self.peers.error(peer, s))?;
        }
        Ok(())
    }
}

impl StreamTransport for GrpcTransport {
    async fn fetch_range(
        &self,
        peer: &str,
        ranges: &[TokenRange],
        after: Option<Cursor>,
        max_bytes: usize,
    ) -> Result<RangePage> {
        let mut client = self.peers.background(peer)?;
        let req = self.request(internal::FetchRangeRequest {
            ranges: ranges_to_proto(ranges),
            has_cursor: after.is_some(),
            after_token: after.as_ref().map_or(0, |c| c.token),
            after_key: after.map_or(String::new(), |c| c.key),
            max_bytes: max_bytes.min(u32::MAX as usize) as u32,
        });
        let reply = client
            .fetch_range(req)
            .await
            .map_err(|s| self.peers.error(peer, s))?
            .into_inner();
        let mut page = RangePage {
            entries: Vec::with_capacity(reply.entries.len()),
            bytes: 0,
            next: (!reply.done).then_some(Cursor {
                token: reply.next_token,
                key: reply.next_key,
            }),
        };
        for e in reply.entries {
            page.bytes += (e.key.len() + e.versions.len()) as u64;
            let versions =
                Siblings::decode(&e.versions).map_err(|err| NodeError::bad_reply(peer, err))?;
            page.entries.push((e.key, versions));
        }
        Ok(page)
    }

    /// Dialled even while the peer is backed off; a range takes as long as it takes, so the
    /// deadline is an hour.
    async fn ask_to_pull(
        &self,
        peer: &str,
        ranges: &[TokenRange],
        sources: Vec<NodeId>,
        reason: &str,
    ) -> Result<(u64, u64)> {
        let mut client = self.peers.replica(peer)?;
        let mut req = tonic::Request::new(internal::PullRangesRequest {
            ranges: ranges_to_proto(ranges),
            sources,
            reason: reason.to_string(),
        });
        req.set_timeout(Duration::from_secs(3600));
        let r = client
            .pull_ranges(req)
            .await
            .map_err(|s| self.peers.error(peer, s))?
            .into_inner();
        Ok((r.keys, r.bytes))
    }
}

impl GossipTransport for GrpcTransport {
    async fn syn(&self, peer: &str, syn: Syn, timeout: Duration, dial_anyway: bool) -> Result<Ack> {
        let mut client = if dial_anyway {
            self.peers.replica(peer)?
        } else {
            self.peers.background(peer)?
        };
        let mut req = tonic::Request::new(syn_to_proto(syn));
        req.set_timeout(timeout);
        let ack = client
            .gossip_syn(req)
            .await
            .map_err(|s| self.peers.error(peer, s))?
            .into_inner();
        ack_from_proto(ack).map_err(|e| NodeError::bad_reply(peer, e))
    }

    async fn ack2(&self, peer: &str, ack2: Ack2, timeout: Duration) -> Result<()> {
        let mut client = self.peers.background(peer)?;
        let mut req = tonic::Request::new(ack2_to_proto(ack2));
        req.set_timeout(timeout);
        client
            .gossip_ack2(req)
            .await
            .map_err(|s| self.peers.error(peer, s))?;
        Ok(())
    }

    fn heard_from(&self, address: &str) {
        self.peers.heard_from(address);
    }
}

impl ScanTransport for GrpcTransport {
    /// Dialled even while the peer is backed off (a client's request), with the channel's
    /// deadline (the request timeout).
    async fn scan(
        &self,
        peer: &str,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(String, Siblings)>, bool)> {
        let mut client = self.peers.replica(peer)?;
        let reply = client
            .scan(internal::ReplicaScanRequest {
                start,
                end,
                limit: limit as u32,
                max_bytes: max_bytes as u64,
            })
            .await
            .map_err(|s| self.peers.error(peer, s))?
            .into_inner();
        let mut out = Vec::with_capacity(reply.entries.len());
        for e in reply.entries {
            let v = Siblings::decode(&e.versions)
                .map_err(|err| NodeError::bad_reply(peer, format!("versions: {err}")))?;
            out.push((e.key, v));
        }
        Ok((out, reply.more))
    }
}
