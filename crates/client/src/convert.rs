//! The edge between protobuf and domain types: everything that touches `distkv_proto` structs
//! besides the RPC calls themselves lives here.

use std::collections::BTreeMap;

use distkv_proto::distkv as pb;

use crate::types::{
    AntiEntropyStats, ClusterHealth, ClusterMetrics, ClusterStatus, Consistency, GetResult,
    NodeState, NodeStatus, OperationInfo, RingInfo, RingNode, Sibling, StorageMetrics, VectorClock,
};

/// The request fields `(consistency_level, consistency_set)` for an optional level.
pub(crate) fn consistency_fields(level: Option<Consistency>) -> (i32, bool) {
    match level {
        None => (pb::ConsistencyLevel::One as i32, false),
        Some(level) => {
            let level = match level {
                Consistency::One => pb::ConsistencyLevel::One,
                Consistency::Quorum => pb::ConsistencyLevel::Quorum,
                Consistency::All => pb::ConsistencyLevel::All,
            };
            (level as i32, true)
        }
    }
}

pub(crate) fn clock(clock: Option<pb::VectorClock>) -> VectorClock {
    clock
        .map(|c| c.clocks.into_iter().collect::<BTreeMap<_, _>>())
        .unwrap_or_default()
}

pub(crate) fn node_state(raw: i32) -> NodeState {
    match pb::NodeStatus::try_from(raw) {
        Ok(pb::NodeStatus::Alive) => NodeState::Alive,
        Ok(pb::NodeStatus::Suspect) => NodeState::Suspect,
        Ok(pb::NodeStatus::Dead) => NodeState::Dead,
        Ok(pb::NodeStatus::Left) => NodeState::Left,
        Ok(pb::NodeStatus::Joining) => NodeState::Joining,
        Ok(pb::NodeStatus::Leaving) => NodeState::Leaving,
        Err(_) => NodeState::Unknown(raw),
    }
}

/// A found `GetResponse` as a domain result. The caller has already checked `error_message`.
pub(crate) fn get_result(resp: pb::GetResponse) -> GetResult {
    if !resp.found {
        return GetResult {
            context: resp.context,
            ..GetResult::default()
        };
    }
    let mut siblings: Vec<Sibling> = resp
        .siblings
        .into_iter()
        .map(|s| Sibling {
            value: s.value,
            clock: clock(s.vector_clock),
            timestamp_ms: s.timestamp_ms,
        })
        .collect();
    let winner_clock = clock(resp.vector_clock);
    if siblings.is_empty() {
        // A server without siblings (the original) sends only the winner.
        siblings.push(Sibling {
            value: resp.value.clone(),
            clock: winner_clock,
            timestamp_ms: 0,
        });
    }
    GetResult {
        found: true,
        value: resp.value,
        siblings,
        context: resp.context,
    }
}

pub(crate) fn cluster_status(resp: pb::ClusterStatusResponse) -> ClusterStatus {
    let mut nodes: Vec<NodeStatus> = resp
        .nodes
        .into_iter()
        .map(|n| NodeStatus {
            node_id: n.node_id,
            address: n.address,
            status: node_state(n.status),
            last_seen: n.last_seen,
        })
        .collect();
    // The original printed nodes in its map's random order; ours are sorted.
    nodes.sort_by(|a, b| (&a.node_id, &a.address).cmp(&(&b.node_id, &b.address)));
    let health = resp.health.unwrap_or_default();
    let metrics = resp.metrics.unwrap_or_default();
    ClusterStatus {
        nodes,
        health: ClusterHealth {
            total_nodes: health.total_nodes,
            alive_nodes: health.alive_nodes,
            dead_nodes: health.dead_nodes,
            availability_percentage: health.availability_percentage,
        },
        metrics: ClusterMetrics {
            total_keys: metrics.total_keys,
            total_requests: metrics.total_requests,
            avg_latency_ms: metrics.avg_latency_ms,
            qps: metrics.qps,
        },
        storage: resp.storage.map(|s| StorageMetrics {
            reads: s.reads,
            writes: s.writes,
            sstables_per_level: s.sstables_per_level,
            compactions: s.compactions,
            cache_hit_rate: s.cache_hit_rate,
            memory_bytes: s.memory_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            sstable_bytes: s.sstable_bytes,
            write_amplification: s.write_amplification,
        }),
        operations: resp
            .operations
            .into_iter()
            .map(|o| OperationInfo {
                id: o.id,
                kind: o.kind,
                state: o.state,
                steps_total: o.steps_total,
                steps_done: o.steps_done,
                keys: o.keys,
                bytes: o.bytes,
                started: o.started,
                finished: o.finished,
                detail: o.detail,
            })
            .collect(),
        anti_entropy: resp.anti_entropy.map(|a| AntiEntropyStats {
            rounds: a.rounds,
            keys_compared: a.keys_compared,
            keys_repaired: a.keys_repaired,
            last_round: a.last_round,
            tombstones_purged: a.tombstones_purged,
        }),
    }
}

pub(crate) fn ring(resp: pb::RingResponse) -> RingInfo {
    let mut nodes: Vec<RingNode> = resp
        .nodes
        .into_iter()
        .map(|n| RingNode {
            node_id: n.node_id,
            address: n.address,
            virtual_nodes: n.virtual_nodes,
            ownership: n.ownership,
            status: node_state(n.status),
            tokens: n.tokens,
        })
        .collect();
    nodes.sort_by(|a, b| (&a.node_id, &a.address).cmp(&(&b.node_id, &b.address)));
    RingInfo {
        nodes,
        replicas: resp.replicas,
        read_quorum: resp.read_quorum,
        write_quorum: resp.write_quorum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb_clock(entries: &[(&str, u64)]) -> Option<pb::VectorClock> {
        Some(pb::VectorClock {
            clocks: entries.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
        })
    }

    #[test]
    fn consistency_is_marked_set_only_when_chosen() {
        assert_eq!(consistency_fields(None), (0, false));
        assert_eq!(consistency_fields(Some(Consistency::One)), (0, true));
        assert_eq!(consistency_fields(Some(Consistency::Quorum)), (1, true));
        assert_eq!(consistency_fields(Some(Consistency::All)), (2, true));
    }

    #[test]
    fn node_states_map_from_the_wire() {
        assert_eq!(node_state(0), NodeState::Alive);
        assert_eq!(node_state(1), NodeState::Suspect);
        assert_eq!(node_state(2), NodeState::Dead);
        assert_eq!(node_state(3), NodeState::Left);
        assert_eq!(node_state(4), NodeState::Joining);
        assert_eq!(node_state(5), NodeState::Leaving);
        assert_eq!(node_state(42), NodeState::Unknown(42));
    }

    #[test]
    fn get_without_siblings_yields_the_winner_as_the_only_sibling() {
        let result = get_result(pb::GetResponse {
            value: b"v".to_vec(),
            found: true,
            vector_clock: pb_clock(&[("b", 2), ("a", 1)]),
            ..Default::default()
        });
        assert!(result.found);
        assert_eq!(result.value, b"v");
        assert_eq!(
            result.siblings,
            vec![Sibling {
                value: b"v".to_vec(),
                clock: BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)]),
                timestamp_ms: 0,
            }]
        );
    }

    #[test]
    fn get_keeps_siblings_in_server_order() {
        let result = get_result(pb::GetResponse {
            value: b"y".to_vec(),
            found: true,
            siblings: vec![
                pb::Sibling {
                    value: b"y".to_vec(),
                    vector_clock: pb_clock(&[("n2", 1)]),
                    timestamp_ms: 20,
                },
                pb::Sibling {
                    value: b"x".to_vec(),
                    vector_clock: pb_clock(&[("n1", 1)]),
                    timestamp_ms: 10,
                },
            ],
            context: vec![1, 2, 3],
            ..Default::default()
        });
        let values: Vec<&[u8]> = result.siblings.iter().map(|s| &s.value[..]).collect();
        assert_eq!(values, [&b"y"[..], &b"x"[..]]);
        assert_eq!(result.siblings[1].timestamp_ms, 10);
        assert_eq!(result.context, [1, 2, 3]);
    }

    #[test]
    fn not_found_has_no_siblings() {
        let result = get_result(pb::GetResponse {
            value: b"stale".to_vec(),
            found: false,
            ..Default::default()
        });
        assert_eq!(result, GetResult::default());
    }

    #[test]
    fn status_nodes_are_sorted_and_missing_parts_default() {
        let node = |id: &str, status| pb::NodeStatusInfo {
            node_id: id.into(),
            address: format!("{id}:1"),
            status,
            last_seen: 7,
            ..Default::default()
        };
        let status = cluster_status(pb::ClusterStatusResponse {
            nodes: vec![node("n3", 2), node("n1", 0), node("n2", 1)],
            ..Default::default()
        });
        let ids: Vec<&str> = status.nodes.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!(ids, ["n1", "n2", "n3"]);
        assert_eq!(status.nodes[2].status, NodeState::Dead);
        assert_eq!(status.health, ClusterHealth::default());
        assert_eq!(status.storage, None);
    }

    #[test]
    fn ring_nodes_are_sorted() {
        let node = |id: &str| pb::RingNode {
            node_id: id.into(),
            address: "a".into(),
            virtual_nodes: 150,
            ownership: 0.5,
            status: 0,
            tokens: Vec::new(),
        };
        let ring = ring(pb::RingResponse {
            nodes: vec![node("b"), node("a")],
            replicas: 3,
            read_quorum: 2,
            write_quorum: 2,
        });
        assert_eq!(ring.nodes[0].node_id, "a");
        assert_eq!(
            (ring.replicas, ring.read_quorum, ring.write_quorum),
            (3, 2, 2)
        );
    }
}
