//! `distkv.internal.Replica`: what nodes ask of each other.

use std::sync::Arc;

use distkv_cluster::Siblings;
use distkv_proto::internal::{self as pb, replica_server::Replica};
use tonic::{Request, Response, Status};

use crate::node::{Node, member_from_proto, member_to_proto};

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
        Ok(Response::new(pb::ReplicaReadResponse {
            found: !v.is_empty(),
            versions: if v.is_empty() { Vec::new() } else { v.encode() },
        }))
    }

    async fn scan(
        &self,
        req: Request<pb::ReplicaScanRequest>,
    ) -> Result<Response<pb::ReplicaScanResponse>, Status> {
        let r = req.into_inner();
        let limit = (r.limit as usize).clamp(1, 10_000);
        let (entries, more) = self
            .node
            .store()
            .scan(r.start, r.end, limit)
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

    async fn membership(
        &self,
        req: Request<pb::MembershipState>,
    ) -> Result<Response<pb::MembershipState>, Status> {
        let r = req.into_inner();
        if let Some(sender) = r.members.iter().find(|m| m.node_id == r.sender_id) {
            self.node.peers().heard_from(&sender.address);
        }
        self.node
            .merge_members(r.members.into_iter().map(member_from_proto).collect());
        Ok(Response::new(pb::MembershipState {
            sender_id: self.node.id().to_string(),
            members: self.node.members().iter().map(member_to_proto).collect(),
        }))
    }

    async fn store_hint(
        &self,
        req: Request<pb::StoreHintRequest>,
    ) -> Result<Response<pb::StoreHintResponse>, Status> {
        let r = req.into_inner();
        let versions = decode(&r.versions)?;
        let node = Arc::clone(&self.node);
        tokio::task::spawn_blocking(move || node.hints().add(&r.target_node, &r.key, &versions))
            .await
            .map_err(|_| Status::unavailable("shutting down"))?
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::StoreHintResponse {}))
    }

    async fn coordinate(
        &self,
        req: Request<pb::CoordinateRequest>,
    ) -> Result<Response<pb::CoordinateResponse>, Status> {
        let r = req.into_inner();
        let result = async {
            self.node.validate_key(&r.key)?;
            let context = distkv_cluster::VectorClock::decode(&r.context)
                .map_err(|e| crate::error::NodeError::BadContext(e.to_string()))?;
            let value = (!r.is_delete).then_some(r.value);
            let level = crate::service::consistency(r.consistency_level, r.consistency_set);
            self.node
                .coordinate_write_here(&r.key, value, &context, level, true)
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
        let mut accepted = 0u32;
        for w in r.writes {
            let v = decode(&w.versions)?;
            self.node
                .store()
                .merge(w.key, v)
                .await
                .map_err(|e| e.to_status())?;
            accepted += 1;
        }
        Ok(Response::new(pb::HandoffAck { accepted }))
    }
}
