//! The rings a node routes by, built from its member table: a leaf that the membership
//! component writes and the coordinator's transport reads (addresses) without either
//! importing the other.

use std::collections::HashMap;
use std::sync::Arc;

use distkv_cluster::{Membership as MemberTable, NodeId, Ring};

/// The rings requests use, rebuilt whenever a record changes.
#[derive(Clone, Debug, Default)]
pub struct Rings {
    /// Members that hold their ranges (normal, leaving): reads, and writes' quorum.
    pub read: Arc<Ring>,
    /// After pending joins and leaves: writes also go to these replicas.
    pub pending: Arc<Ring>,
    /// Every member's address, by id.
    pub addresses: Arc<HashMap<NodeId, String>>,
}

impl Rings {
    /// The rings of `table`.
    pub fn of(table: &MemberTable) -> Rings {
        Rings {
            read: Arc::new(table.ring()),
            pending: Arc::new(table.pending_ring()),
            addresses: Arc::new(
                table
                    .members()
                    .map(|m| (m.id.clone(), m.address.clone()))
                    .collect(),
            ),
        }
    }
}
