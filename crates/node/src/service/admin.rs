//! `distkv.AdminService`: membership changes and cluster status.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use distkv_cluster::NodeStatus;
use distkv_proto::distkv::{self as pb, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::ops::{OpInfo, OpState};

pub struct AdminServiceImpl {
    node: Arc<Node>,
}

impl AdminServiceImpl {
    pub fn new(node: Arc<Node>) -> Self {
        AdminServiceImpl { node }
    }
}

fn status_to_proto(s: NodeStatus) -> pb::NodeStatus {
    match s {
        NodeStatus::Alive => pb::NodeStatus::Alive,
        NodeStatus::Suspect => pb::NodeStatus::Suspect,
        NodeStatus::Dead => pb::NodeStatus::Dead,
        NodeStatus::Left => pb::NodeStatus::Left,
        NodeStatus::Joining => pb::NodeStatus::Joining,
        NodeStatus::Leaving => pb::NodeStatus::Leaving,
    }
}

fn op_to_proto(o: OpInfo) -> pb::Operation {
    pb::Operation {
        id: o.id,
        kind: o.kind.to_string(),
        state: o.state.name().to_string(),
        steps_total: o.steps_total,
        steps_done: o.steps_done,
        keys: o.keys,
        bytes: o.bytes,
        started: o.started_secs,
        finished: o.finished_secs,
        detail: o.detail,
    }
}

#[tonic::async_trait]
impl AdminService for AdminServiceImpl {
    async fn add_node(
        &self,
        req: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::AddNodeResponse>, Status> {
        let r = req.into_inner();
        let fail = |m: &str| {
            Ok(Response::new(pb::AddNodeResponse {
                success: false,
                error_message: m.to_string(),
            }))
        };
        if let Err(e) = self.node.check_serving() {
            return fail(&e.to_string());
        }
        if r.node_id.is_empty() || r.node_address.is_empty() {
            return fail("node_id and node_address are required");
        }
        if r.virtual_nodes < 0 || r.virtual_nodes > 4096 {
            return fail(
                "virtual_nodes must be between 0 and 4096 (it is ignored: a node chooses its own tokens)",
            );
        }
        // A running node owns its record and its tokens; adding it means introducing it: one
        // gossip exchange with it, after which it knows this cluster. Only a node that waits
        // to join (started with seeds it could not reach) is introduced; it then streams its
        // ranges in as any joining node. A node that started without seeds serves a cluster
        // of its own and is refused (merging two clusters' data is not a join).
        match self
            .node
            .membership
            .introduce(&r.node_id, &r.node_address)
            .await
        {
            Ok(()) => {
                tracing::info!(
                    node = r.node_id,
                    address = r.node_address,
                    "node introduced by admin request"
                );
                Ok(Response::new(pb::AddNodeResponse {
                    success: true,
                    error_message: String::new(),
                }))
            }
            Err(e) => fail(&e.to_string()),
        }
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let r = req.into_inner();
        if let Err(e) = self.node.check_serving() {
            return Ok(Response::new(pb::RemoveNodeResponse {
                success: false,
                error_message: e.to_string(),
            }));
        }
        // The original's field says "address"; an id works too. The re-replication belongs
        // to the node: it finishes even if the caller goes away.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let node = Arc::clone(&self.node);
        self.node.spawn_task(async move {
            let _ = tx.send(node.remove_node(&r.node_address).await);
        });
        let result = rx
            .await
            .unwrap_or(Err(crate::error::NodeError::ShuttingDown));
        let reply = match result {
            Ok((id, keys)) => {
                tracing::info!(
                    node = id,
                    keys,
                    "node removed by admin request; its ranges are re-replicated"
                );
                pb::RemoveNodeResponse {
                    success: true,
                    error_message: String::new(),
                }
            }
            Err(e) => pb::RemoveNodeResponse {
                success: false,
                error_message: e.to_string(),
            },
        };
        Ok(Response::new(reply))
    }

    async fn rebalance(
        &self,
        _req: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        if let Err(e) = self.node.check_serving() {
            return Ok(Response::new(pb::RebalanceResponse {
                success: false,
                error_message: e.to_string(),
                keys_moved: 0,
            }));
        }
        // Data follows the ring when nodes join, leave or are removed; what a rebalance adds
        // is making every range this node shares whole on both sides: a repair.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let node = Arc::clone(&self.node);
        self.node.spawn_task(async move {
            let _ = tx.send(node.rounds.repair_all("rebalance").await);
        });
        let result = rx
            .await
            .unwrap_or(Err(crate::error::NodeError::ShuttingDown));
        Ok(Response::new(match result {
            Ok((stats, _)) => pb::RebalanceResponse {
                success: true,
                error_message: String::new(),
                keys_moved: i32::try_from(stats.repaired).unwrap_or(i32::MAX),
            },
            Err(e) => pb::RebalanceResponse {
                success: false,
                error_message: e.to_string(),
                keys_moved: 0,
            },
        }))
    }

    async fn decommission(
        &self,
        _req: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::DecommissionResponse>, Status> {
        let op = match self.node.start_decommission() {
            Ok(op) => op,
            Err(e) => {
                return Ok(Response::new(pb::DecommissionResponse {
                    success: false,
                    error_message: e.to_string(),
                    keys_moved: 0,
                }));
            }
        };
        let info = op.wait().await;
        Ok(Response::new(pb::DecommissionResponse {
            success: info.state == OpState::Done,
            error_message: if info.state == OpState::Done {
                String::new()
            } else {
                info.detail
            },
            keys_moved: info.keys,
        }))
    }

    async fn repair(
        &self,
        _req: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::RepairResponse>, Status> {
        if let Err(e) = self.node.check_serving() {
            return Ok(Response::new(pb::RepairResponse {
                success: false,
                error_message: e.to_string(),
                ..Default::default()
            }));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let node = Arc::clone(&self.node);
        self.node.spawn_task(async move {
            let result = node.rounds.repair_all("repair").await;
            // Tombstones past the grace go after a repair too (the only purge when the
            // background rounds are off).
            if result.is_ok()
                && let Err(e) = node.rounds.purge_old_tombstones().await
            {
                tracing::warn!(error = %e, "tombstone purge after repair failed");
            }
            let _ = tx.send(result);
        });
        let result = rx
            .await
            .unwrap_or(Err(crate::error::NodeError::ShuttingDown));
        Ok(Response::new(match result {
            Ok((stats, peers)) => pb::RepairResponse {
                success: true,
                error_message: String::new(),
                keys_compared: stats.compared,
                keys_repaired: stats.repaired,
                peers: peers as u32,
            },
            Err(e) => pb::RepairResponse {
                success: false,
                error_message: e.to_string(),
                ..Default::default()
            },
        }))
    }

    async fn backup(
        &self,
        req: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupResponse>, Status> {
        let name = req.into_inner().name;
        Ok(Response::new(match self.node.backup(Some(name)).await {
            Ok(b) => pb::BackupResponse {
                success: true,
                error_message: String::new(),
                name: b.name,
                path: b.path.display().to_string(),
                node_id: b.node_id,
                created: b.created,
                files: u32::try_from(b.files).unwrap_or(u32::MAX),
                bytes: b.bytes,
            },
            Err(e) => pb::BackupResponse {
                success: false,
                error_message: e.to_string(),
                ..Default::default()
            },
        }))
    }

    async fn get_cluster_status(
        &self,
        _req: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        // A joining node does not speak for the cluster yet (its view is still forming);
        // its progress is in the error, and other nodes show it JOINING.
        self.node.check_serving().map_err(|e| e.to_status())?;
        Ok(Response::new(cluster_status(&self.node)))
    }

    async fn get_ring(
        &self,
        _req: Request<pb::RingRequest>,
    ) -> Result<Response<pb::RingResponse>, Status> {
        self.node.check_serving().map_err(|e| e.to_status())?;
        Ok(Response::new(ring_info(&self.node)))
    }
}

/// The cluster as this node sees it, with its own metrics (the status RPC and `/status`).
pub fn cluster_status(node: &Node) -> pb::ClusterStatusResponse {
    let members = node.membership.member_views();
    let nodes: Vec<pb::NodeStatusInfo> = members
        .iter()
        .map(|m| pb::NodeStatusInfo {
            node_id: m.id.clone(),
            address: m.address.clone(),
            status: status_to_proto(m.status) as i32,
            last_seen: m.last_seen_secs,
            generation: m.generation,
            heartbeat: m.heartbeat,
            tokens: m.tokens as u32,
        })
        .collect();
    let in_cluster: Vec<_> = members
        .iter()
        .filter(|m| m.status != NodeStatus::Left)
        .collect();
    let total = in_cluster.len() as i32;
    let alive = in_cluster
        .iter()
        .filter(|m| {
            matches!(
                m.status,
                NodeStatus::Alive | NodeStatus::Joining | NodeStatus::Leaving
            )
        })
        .count() as i32;
    let dead = in_cluster
        .iter()
        .filter(|m| m.status == NodeStatus::Dead)
        .count() as i32;
    let m = &node.metrics;
    let requests = m.requests.load(Ordering::Relaxed);
    let micros = m.request_micros.load(Ordering::Relaxed);
    let stats = node.store().db().stats();
    let secs = node.uptime().as_secs_f64().max(1e-3);
    pb::ClusterStatusResponse {
        nodes,
        health: Some(pb::ClusterHealth {
            total_nodes: total,
            alive_nodes: alive,
            dead_nodes: dead,
            availability_percentage: if total == 0 {
                0.0
            } else {
                f64::from(alive) * 100.0 / f64::from(total)
            },
        }),
        metrics: Some(pb::ClusterMetrics {
            // An estimate: every stored key has one entry for its versions and one in the
            // token index; entries not yet compacted away (overwritten, deleted) count too.
            total_keys: ((stats.sst_entries + stats.memtable_entries) / 2) as i64,
            total_requests: requests as i64,
            avg_latency_ms: if requests == 0 {
                0.0
            } else {
                micros as f64 / requests as f64 / 1000.0
            },
            qps: requests as f64 / secs,
        }),
        storage: Some(pb::StorageMetrics {
            reads: stats.counters.gets,
            writes: stats.counters.puts + stats.counters.deletes,
            sstables_per_level: stats.levels.iter().map(|l| l.files as u32).collect(),
            compactions: stats.counters.compactions,
            cache_hit_rate: stats.cache_hit_rate(),
            memory_bytes: stats.memory_bytes,
            memory_limit_bytes: stats.memory_limit,
            sstable_bytes: stats.sst_bytes,
            write_amplification: stats.write_amplification(),
        }),
        operations: node
            .operations()
            .list()
            .into_iter()
            .map(op_to_proto)
            .collect(),
        anti_entropy: Some(pb::AntiEntropyStats {
            rounds: m.ae_rounds.load(Ordering::Relaxed),
            keys_compared: m.ae_keys_compared.load(Ordering::Relaxed),
            keys_repaired: m.ae_keys_repaired.load(Ordering::Relaxed),
            last_round: m.ae_last_round_secs.load(Ordering::Relaxed) as i64,
            tombstones_purged: m.tombstones_purged.load(Ordering::Relaxed),
        }),
    }
}

/// The ring as this node sees it (the ring RPC and `/status`).
pub fn ring_info(node: &Node) -> pb::RingResponse {
    let ring = node.membership.ring();
    let ownership = ring.ownership();
    let mut tokens: std::collections::HashMap<&str, Vec<u64>> = std::collections::HashMap::new();
    for (token, id) in ring.tokens() {
        tokens.entry(id).or_default().push(token);
    }
    let members = node.membership.member_views();
    let q = node.config().quorum;
    let nodes = members
        .iter()
        .filter(|m| m.status != NodeStatus::Left)
        .map(|m| pb::RingNode {
            node_id: m.id.clone(),
            address: m.address.clone(),
            virtual_nodes: ring.vnodes(&m.id),
            ownership: ownership.get(&m.id).copied().unwrap_or(0.0),
            status: status_to_proto(m.status) as i32,
            tokens: tokens.remove(m.id.as_str()).unwrap_or_default(),
        })
        .collect();
    pb::RingResponse {
        nodes,
        replicas: q.n as u32,
        read_quorum: q.r as u32,
        write_quorum: q.w as u32,
    }
}
