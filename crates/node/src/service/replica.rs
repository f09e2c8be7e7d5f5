//! `distkv.internal.Replica`: what nodes ask of each other.

use std::sync::Arc;

use distkv_cluster::{RangeSet, Siblings, TokenRange};
use distkv_proto::internal::{self as pb, replica_server::Replica};
use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::storage::Cursor;
use crate::transport::GossipAnswer;
use crate::transport::convert::{
    ack_to_proto, ack2_from_proto, range_from_proto, syn_from_proto, write_from_proto,
};

pub struct ReplicaService {
    node: Arc<Node>,
}

impl ReplicaService {
    pub fn new(node: Arc<Node>) -> Self {
        ReplicaService { node }
    }
}

fn decode(bytes: &[u8]) -> Result<Siblings, Status> {
    Siblings::decode(bytes).map_err(|e| Status::invalid_argument(format!("versions: {e}")))
}

/// A replica's answer to a read of versions `v`.
fn read_response(v: &Siblings) -> pb::ReplicaReadResponse {
    pb::ReplicaReadResponse {
        found: !v.is_empty(),
        versions: if v.is_empty() { Vec::new() } else { v.encode() },
    }
}

#[tonic::async_trait]
impl Replica for ReplicaService {
    async fn write(
        &self,
        req: Request<pb::ReplicaWriteRequest>,
    ) -> Result<Response<pb::ReplicaWriteResponse>, Status> {
        let r = req.into_inner();
        let incoming = decode(&r.versions)?;
        let merged = self
            .node
            .store()
            .merge(r.key, incoming)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::ReplicaWriteResponse {
            versions: merged.encode(),
        }))
    }

    async fn write_batch(
        &self,
        req: Request<pb::ReplicaWriteBatch>,
    ) -> Result<Response<pb::ReplicaWriteBatchAck>, Status> {
        let writes = req.into_inner().writes;
        let mut errors = vec![String::new(); writes.len()];
        let mut entries = Vec::with_capacity(writes.len());
        let mut at = Vec::with_capacity(writes.len());
        for (i, w) in writes.into_iter().enumerate() {
            match Siblings::decode(&w.versions) {
                Ok(incoming) => {
                    entries.push((w.key, incoming));
                    at.push(i);
                }
                Err(e) => errors[i] = format!("versions: {e}"),
            }
        }
        let results = self.node.store().merge_each(entries).await;
        for (i, result) in at.into_iter().zip(results) {
            if let Err(e) = result {
                errors[i] = e.to_string();
            }
        }
        Ok(Response::new(pb::ReplicaWriteBatchAck { errors }))
    }

    async fn read(
        &self,
        req: Request<pb::ReplicaReadRequest>,
    ) -> Result<Response<pb::ReplicaReadResponse>, Status> {
        let r = req.into_inner();
        let v = self
            .node
            .store()
            .read(r.key)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(read_response(&v)))
    }

    async fn read_batch(
        &self,
        req: Request<pb::ReplicaReadBatch>,
    ) -> Result<Response<pb::ReplicaReadBatchReply>, Status> {
        let keys = req.into_inner().keys;
        let mut reply = pb::ReplicaReadBatchReply {
            replies: Vec::with_capacity(keys.len()),
            errors: Vec::with_capacity(keys.len()),
        };
        // Keys in memory answer at once; those on disk are read side by side on the blocking
        // pool, not one after the other.
        let store = self.node.store();
        let reads = futures::future::join_all(keys.into_iter().map(|key| store.read(key))).await;
        for read in reads {
            let (answer, error) = match read {
                Ok(v) => (read_response(&v), String::new()),
                Err(e) => (pb::ReplicaReadResponse::default(), e.to_string()),
            };
            reply.replies.push(answer);
            reply.errors.push(error);
        }
        Ok(Response::new(reply))
    }

    async fn scan(
        &self,
        req: Request<pb::ReplicaScanRequest>,
    ) -> Result<Response<pb::ReplicaScanResponse>, Status> {
        let r = req.into_inner();
        let limit = (r.limit as usize).clamp(1, 10_000);
        let budget = self.node.scan_budget();
        let max_bytes = match r.max_bytes {
            0 => budget,
            n => usize::try_from(n).unwrap_or(budget).min(budget),
        };
        let (entries, more) = self
            .node
            .store()
            .scan(r.start, r.end, limit, max_bytes)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::ReplicaScanResponse {
            entries: entries
                .into_iter()
                .map(|(key, v)| pb::ReplicaEntry {
                    key,
                    versions: v.encode(),
                })
                .collect(),
            more,
        }))
    }

    async fn gossip_syn(
        &self,
        req: Request<pb::GossipSynRequest>,
    ) -> Result<Response<pb::GossipAckResponse>, Status> {
        let syn = syn_from_proto(req.into_inner());
        let ack = self.node.membership.on_syn(syn);
        Ok(Response::new(ack_to_proto(ack)))
    }

    async fn gossip_ack2(
        &self,
        req: Request<pb::GossipAck2Request>,
    ) -> Result<Response<pb::GossipAck2Response>, Status> {
        let ack2 = ack2_from_proto(req.into_inner()).map_err(|e| e.to_status())?;
        self.node.membership.on_ack2(ack2);
        Ok(Response::new(pb::GossipAck2Response {}))
    }

    async fn fetch_range(
        &self,
        req: Request<pb::FetchRangeRequest>,
    ) -> Result<Response<pb::FetchRangeResponse>, Status> {
        let r = req.into_inner();
        let ranges: Vec<TokenRange> = r.ranges.iter().map(range_from_proto).collect();
        let after = r.has_cursor.then_some(Cursor {
            token: r.after_token,
            key: r.after_key,
        });
        let max_bytes = (r.max_bytes as usize).clamp(4096, 16 << 20);
        let page = self
            .node
            .store()
            .range_page(RangeSet::new(&ranges), after, max_bytes)
            .await
            .map_err(|e| e.to_status())?;
        let done = page.next.is_none();
        let next = page.next.unwrap_or(Cursor {
            token: 0,
            key: String::new(),
        });
        Ok(Response::new(pb::FetchRangeResponse {
            entries: page
                .entries
                .into_iter()
                .map(|(key, v)| pb::ReplicaEntry {
                    key,
                    versions: v.encode(),
                })
                .collect(),
            done,
            next_token: next.token,
            next_key: next.key,
        }))
    }

    async fn fetch_keys(
        &self,
        req: Request<pb::FetchKeysRequest>,
    ) -> Result<Response<pb::FetchKeysResponse>, Status> {
        let keys = req.into_inner().keys;
        if keys.len() > 10_000 {
            return Err(Status::invalid_argument("at most 10000 keys per request"));
        }
        let entries = self
            .node
            .store()
            .read_many(keys)
            .await
            .map_err(|e| e.to_status())?
            .into_iter()
            .map(|(key, v)| pb::ReplicaEntry {
                key,
                versions: v.encode(),
            })
            .collect();
        Ok(Response::new(pb::FetchKeysResponse { entries }))
    }

    async fn merkle_hashes(
        &self,
        req: Request<pb::MerkleHashesRequest>,
    ) -> Result<Response<pb::MerkleHashesResponse>, Status> {
        let r = req.into_inner();
        let ranges: Vec<TokenRange> = r.ranges.iter().map(range_from_proto).collect();
        let nodes: Vec<usize> = r.nodes.iter().map(|n| *n as usize).collect();
        let (hashes, entries) = self
            .node
            .anti_entropy
            .server()
            .hashes(r.session, ranges, r.level as usize, &nodes)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::MerkleHashesResponse { hashes, entries }))
    }

    async fn merkle_keys(
        &self,
        req: Request<pb::MerkleKeysRequest>,
    ) -> Result<Response<pb::MerkleKeysResponse>, Status> {
        let r = req.into_inner();
        let ranges: Vec<TokenRange> = r.ranges.iter().map(range_from_proto).collect();
        let leaves: Vec<usize> = r.leaves.iter().map(|n| *n as usize).collect();
        let keys = self
            .node
            .anti_entropy
            .server()
            .leaf_keys(ranges, leaves)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::MerkleKeysResponse {
            keys: keys
                .into_iter()
                .map(|(key, digest)| pb::KeyDigest { key, digest })
                .collect(),
        }))
    }

    async fn pull_ranges(
        &self,
        req: Request<pb::PullRangesRequest>,
    ) -> Result<Response<pb::PullRangesResponse>, Status> {
        let r = req.into_inner();
        let ranges: Vec<TokenRange> = r.ranges.iter().map(range_from_proto).collect();
        // The pull belongs to the node, not to this call: it finishes even if the caller
        // goes away.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let node = Arc::clone(&self.node);
        self.node.spawn_task(async move {
            let _ = tx.send(node.pull_ranges("rereplicate", ranges, r.sources).await);
        });
        let (keys, bytes) = rx
            .await
            .map_err(|_| Status::unavailable("shutting down"))?
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::PullRangesResponse { keys, bytes }))
    }

    async fn store_hint(
        &self,
        req: Request<pb::StoreHintRequest>,
    ) -> Result<Response<pb::StoreHintResponse>, Status> {
        let r = req.into_inner();
        let versions = decode(&r.versions)?;
        let node = Arc::clone(&self.node);
        crate::blocking::spawn(move || node.hints().add(&r.target_node, &r.key, &versions))
            .await
            .map_err(|_| Status::unavailable("shutting down"))?
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::StoreHintResponse {}))
    }

    async fn oldest_hint(
        &self,
        _req: Request<pb::OldestHintRequest>,
    ) -> Result<Response<pb::OldestHintResponse>, Status> {
        let oldest = self
            .node
            .hints()
            .oldest_version_ms_async()
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::OldestHintResponse {
            holds_hints: oldest.is_some(),
            oldest_version_ms: oldest.unwrap_or(0),
        }))
    }

    async fn coordinate(
        &self,
        req: Request<pb::CoordinateRequest>,
    ) -> Result<Response<pb::CoordinateResponse>, Status> {
        let r = req.into_inner();
        let result = async {
            self.node.validate_key(&r.key)?;
            let w = write_from_proto(r)?;
            self.node
                .coordinate_write_here(&w.key, w.value, &w.context, w.level, true)
                .await
        }
        .await;
        Ok(Response::new(match result {
            Ok(v) => pb::CoordinateResponse {
                versions: v.encode(),
                error_message: String::new(),
            },
            Err(e) => pb::CoordinateResponse {
                versions: Vec::new(),
                error_message: e.to_string(),
            },
        }))
    }

    async fn handoff(
        &self,
        req: Request<pb::HandoffBatch>,
    ) -> Result<Response<pb::HandoffAck>, Status> {
        let r = req.into_inner();
        let mut entries = Vec::with_capacity(r.writes.len());
        for w in r.writes {
            entries.push((w.key, decode(&w.versions)?));
        }
        let accepted = entries.len() as u32;
        self.node
            .store()
            .merge_many(entries)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::HandoffAck { accepted }))
    }
}
