//! The node's side of gossip: the [`Membership`] component ([`gossip`]) drives
//! [`distkv_cluster::Gossiper`] with real time over a [`GossipTransport`](crate::transport::GossipTransport),
//! keeps the rings every request uses, and remembers the member table across restarts. This
//! module holds what it is built from: the [`Rings`], the status view of a member, the gossip
//! settings of a configuration, and the local record a node starts with.
//!
//! On start, the node's own record decides what it does (see [`initial_state`]): a node that
//! was a member carries on under a new generation; a new node with seeds joins (streams its
//! ranges in first, [`crate::streaming`]); a new node without seeds starts a cluster.

use std::time::Duration;

use distkv_cluster::{
    DetectorConfig, GossipConfig, Member, MemberState, NodeId, NodeStatus, Token, node_tokens,
};

use crate::config::NodeConfig;

pub mod gossip;

pub use crate::rings::Rings;
pub use gossip::Membership;

/// Where the member table is kept between runs.
pub use crate::members_file::MEMBERS_FILE;

/// A member as `status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    pub id: NodeId,
    pub address: String,
    pub status: NodeStatus,
    pub state: MemberState,
    pub generation: u64,
    pub heartbeat: u64,
    pub tokens: usize,
    /// Unix seconds when its heartbeat last advanced, as this node heard it.
    pub last_seen_secs: i64,
}

/// The gossip settings of a node's configuration, in milliseconds.
pub fn gossip_config(cfg: &NodeConfig) -> GossipConfig {
    let ms = |d: Duration| d.as_millis() as u64;
    GossipConfig {
        heartbeat_interval_ms: ms(cfg.heartbeat_interval),
        gossip_interval_ms: ms(cfg.gossip_interval),
        fanout: cfg.gossip_fanout,
        detector: DetectorConfig {
            suspect_timeout_ms: ms(cfg.suspect_timeout),
            dead_timeout_ms: ms(cfg.dead_timeout),
            // A few rounds of silence are normal; never suspect sooner.
            min_suspect_ms: 3 * ms(cfg.gossip_interval.max(cfg.heartbeat_interval)),
            phi_threshold: 8.0,
        },
    }
}

/// The local record to start with, from the table saved by the last run (if any): a member
/// carries on (joining or leaving where it left off); a node an admin removed, or a new node
/// with seeds, joins; a new node without seeds starts a cluster.
pub fn initial_state(cfg: &NodeConfig, saved: Option<&Member>, now_ms: u64) -> Member {
    let has_seeds = cfg.seeds.iter().any(|s| *s != cfg.advertise_address);
    let state = match saved.map(|m| m.state) {
        Some(MemberState::Normal) => MemberState::Normal,
        Some(MemberState::Leaving) => MemberState::Leaving,
        Some(MemberState::Joining | MemberState::Left) => MemberState::Joining,
        None if has_seeds => MemberState::Joining,
        None => MemberState::Normal,
    };
    let tokens: Vec<Token> = match saved {
        Some(m) if !m.tokens.is_empty() => {
            if m.tokens.len() != cfg.virtual_nodes as usize {
                tracing::warn!(
                    kept = m.tokens.len(),
                    flag = cfg.virtual_nodes,
                    "keeping the tokens this node already owns; -virtual-nodes applies to new nodes only"
                );
            }
            m.tokens.to_vec()
        }
        _ => node_tokens(&cfg.node_id, cfg.virtual_nodes),
    };
    // A generation larger than any earlier one, even if the clock went back.
    let generation = now_ms.max(saved.map_or(0, |m| m.generation + 1));
    Member::new(
        cfg.node_id.clone(),
        cfg.advertise_address.clone(),
        generation,
        state,
        tokens,
    )
}

#[cfg(test)]
mod tests;
