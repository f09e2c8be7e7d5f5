//! The members of the cluster: the table every node keeps and gossips, and the ring built from it.
//!
//! **Guarantees.** Merging member tables converges: for each node id the table keeps the larger
//! record under one total order, so nodes that exchange tables in any order and any number of
//! times agree. A node's own record is never replaced by an older one, and a newer record that
//! calls it suspect or dead is refuted rather than believed. The ring is a pure function of the
//! table ([`Membership::ring`]), so nodes that agree on the table agree on where keys live.
//!
//! **How.** Dynamo 4.8. Every record carries `(generation, version)`: the generation changes
//! when the node restarts (the node layer picks a larger one each time, say its start time), and
//! the version is bumped by every change to the record, by the node itself or by another node or
//! an admin action about it. Records compare by `(generation, version)`, then, so that two
//! different changes made from the same version still converge, by status (the graver wins:
//! left, dead, suspect, alive), address and vnode count. `last_seen_secs` is not part of the
//! order: it is gossip evidence of liveness, and merges by maximum without counting as a change.
//!
//! When another node suspects this one and gossips a newer record saying so, the local node
//! answers as SWIM does with incarnation numbers: it keeps its status and bumps its own version
//! past the rumour, so the refutation wins wherever it spreads. It does accept [`NodeStatus::Left`]
//! (an admin removed it), which only a restart with a new generation undoes.
//!
//! **Left out.** When to gossip and with whom, and the failure detector that calls
//! [`Membership::set_status`] (the node layer drives both with its timers); seed lists; removing
//! `Left` records for good.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::NodeId;
use crate::ring::Ring;

/// How a member is doing, as far as this node knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    /// Answering.
    Alive,
    /// Missed recent heartbeats; still in the ring.
    Suspect,
    /// Considered down; still in the ring (Dynamo treats outages as temporary), skipped by the
    /// sloppy quorum.
    Dead,
    /// Removed by an admin: out of the ring.
    Left,
}

impl NodeStatus {
    /// The wire value: 0 alive, 1 suspect, 2 dead, 3 left.
    pub fn as_u32(self) -> u32 {
        match self {
            NodeStatus::Alive => 0,
            NodeStatus::Suspect => 1,
            NodeStatus::Dead => 2,
            NodeStatus::Left => 3,
        }
    }

    /// The status of a wire value; `None` for an unknown one.
    pub fn from_u32(v: u32) -> Option<NodeStatus> {
        match v {
            0 => Some(NodeStatus::Alive),
            1 => Some(NodeStatus::Suspect),
            2 => Some(NodeStatus::Dead),
            3 => Some(NodeStatus::Left),
            _ => None,
        }
    }

    /// True for a member that may take requests now (alive or merely suspect).
    pub fn is_reachable(self) -> bool {
        matches!(self, NodeStatus::Alive | NodeStatus::Suspect)
    }
}

/// What the cluster knows about one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    /// Where peers and clients reach it (`host:port`).
    pub address: String,
    /// Its token count on the ring.
    pub vnodes: u32,
    pub status: NodeStatus,
    /// Changes at every restart of the node; larger is newer.
    pub generation: u64,
    /// Bumped by every change to this record within a generation.
    pub version: u64,
    /// Unix seconds when someone last heard from the node (merged by maximum).
    pub last_seen_secs: i64,
}

impl Member {
    /// A new alive member at generation `generation`, version 1.
    pub fn new(
        id: impl Into<NodeId>,
        address: impl Into<String>,
        vnodes: u32,
        generation: u64,
    ) -> Member {
        Member {
            id: id.into(),
            address: address.into(),
            vnodes,
            status: NodeStatus::Alive,
            generation,
            version: 1,
            last_seen_secs: 0,
        }
    }

    /// The total order records merge by (see the module doc).
    fn precedence(&self, other: &Member) -> Ordering {
        (
            self.generation,
            self.version,
            self.status.as_u32(),
            &self.address,
            self.vnodes,
        )
            .cmp(&(
                other.generation,
                other.version,
                other.status.as_u32(),
                &other.address,
                other.vnodes,
            ))
    }
}

/// The member table of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    local_id: NodeId,
    members: BTreeMap<NodeId, Member>,
}

impl Membership {
    /// A table that knows only the local node.
    pub fn new(local: Member) -> Self {
        Membership {
            local_id: local.id.clone(),
            members: BTreeMap::from([(local.id.clone(), local)]),
        }
    }

    /// The local node's id.
    pub fn local_id(&self) -> &str {
        &self.local_id
    }

    /// The local node's record.
    pub fn local(&self) -> &Member {
        &self.members[&self.local_id]
    }

    pub fn get(&self, id: &str) -> Option<&Member> {
        self.members.get(id)
    }

    /// Every record, sorted by id.
    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// Merges records received from a peer. Returns true when a record was added or replaced,
    /// or the local node refuted a rumour about itself; a raised `last_seen_secs` alone does
    /// not count.
    pub fn merge(&mut self, remote: Vec<Member>) -> bool {
        let mut changed = false;
        for r in remote {
            if r.id == self.local_id {
                changed |= self.merge_local(r);
                continue;
            }
            match self.members.get_mut(&r.id) {
                None => {
                    self.members.insert(r.id.clone(), r);
                    changed = true;
                }
                Some(mine) => {
                    let last_seen_secs = mine.last_seen_secs.max(r.last_seen_secs);
                    if r.precedence(mine) == Ordering::Greater {
                        *mine = r;
                        changed = true;
                    }
                    mine.last_seen_secs = last_seen_secs;
                }
            }
        }
        changed
    }

    fn merge_local(&mut self, r: Member) -> bool {
        let Some(mine) = self.members.get_mut(&self.local_id) else {
            return false;
        };
        if r.precedence(mine) != Ordering::Greater {
            return false;
        }
        if r.status == NodeStatus::Left {
            let last_seen_secs = mine.last_seen_secs.max(r.last_seen_secs);
            *mine = r;
            mine.last_seen_secs = last_seen_secs;
        } else {
            // Someone holds a newer record of us (most likely calling us suspect or dead):
            // outbid it and keep what we know of ourselves.
            mine.generation = mine.generation.max(r.generation);
            mine.version = r.version + 1;
        }
        true
    }

    /// Admin AddNode: inserts the record, or replaces an existing one with this content and a
    /// version above both, so the change wins wherever it spreads.
    pub fn upsert(&mut self, m: Member) {
        match self.members.get_mut(&m.id) {
            None => {
                self.members.insert(m.id.clone(), m);
            }
            Some(mine) => {
                let generation = mine.generation.max(m.generation);
                let version = mine.version.max(m.version) + 1;
                let last_seen_secs = mine.last_seen_secs.max(m.last_seen_secs);
                *mine = Member {
                    generation,
                    version,
                    last_seen_secs,
                    ..m
                };
            }
        }
    }

    /// Admin RemoveNode: marks the member left (out of the ring). False when it is unknown or
    /// already left.
    pub fn mark_left(&mut self, id: &str) -> bool {
        match self.members.get_mut(id) {
            Some(m) if m.status != NodeStatus::Left => {
                m.status = NodeStatus::Left;
                m.version += 1;
                true
            }
            _ => false,
        }
    }

    /// The failure detector's verdict. Bumps the version when the status changes and returns
    /// whether it did. Becoming alive also records `now_secs` as last seen. A left member stays
    /// left (only [`Membership::upsert`] or a restart brings it back).
    pub fn set_status(&mut self, id: &str, status: NodeStatus, now_secs: i64) -> bool {
        let Some(m) = self.members.get_mut(id) else {
            return false;
        };
        if m.status == status || m.status == NodeStatus::Left {
            return false;
        }
        m.status = status;
        m.version += 1;
        if status == NodeStatus::Alive {
            m.last_seen_secs = m.last_seen_secs.max(now_secs);
        }
        true
    }

    /// Records that `id` was heard from at `now_secs`, without a version change. False when
    /// unknown.
    pub fn touch(&mut self, id: &str, now_secs: i64) -> bool {
        match self.members.get_mut(id) {
            Some(m) => {
                m.last_seen_secs = m.last_seen_secs.max(now_secs);
                true
            }
            None => false,
        }
    }

    /// The ring of every member that has not left, each with its vnode count.
    pub fn ring(&self) -> Ring {
        let mut ring = Ring::new();
        for m in self.members.values() {
            if m.status != NodeStatus::Left {
                ring.add_node(&m.id, m.vnodes);
            }
        }
        ring
    }

    /// The member at `address`: the first by id that has not left, else the first that has.
    pub fn find_by_address(&self, address: &str) -> Option<&Member> {
        let mut at = self.members.values().filter(|m| m.address == address);
        let first = at.clone().next();
        at.find(|m| m.status != NodeStatus::Left).or(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: &str, generation: u64, version: u64, status: NodeStatus) -> Member {
        Member {
            id: id.to_string(),
            address: format!("{id}:7000"),
            vnodes: 8,
            status,
            generation,
            version,
            last_seen_secs: 0,
        }
    }

    fn table() -> Membership {
        let mut t = Membership::new(member("n1", 1, 1, NodeStatus::Alive));
        t.merge(vec![
            member("n2", 1, 1, NodeStatus::Alive),
            member("n3", 1, 1, NodeStatus::Alive),
        ]);
        t
    }

    #[test]
    fn status_wire_values() {
        for (s, v) in [
            (NodeStatus::Alive, 0),
            (NodeStatus::Suspect, 1),
            (NodeStatus::Dead, 2),
            (NodeStatus::Left, 3),
        ] {
            assert_eq!(s.as_u32(), v);
            assert_eq!(NodeStatus::from_u32(v), Some(s));
        }
        assert_eq!(NodeStatus::from_u32(4), None);
    }

    #[test]
    fn merge_keeps_the_newer_record() {
        let mut t = table();
        // Older and equal records change nothing.
        assert!(!t.merge(vec![
            member("n2", 0, 9, NodeStatus::Dead),
            member("n2", 1, 1, NodeStatus::Alive)
        ]));
        // Newer version, then newer generation.
        assert!(t.merge(vec![member("n2", 1, 2, NodeStatus::Suspect)]));
        assert_eq!(
            t.get("n2").map(|m| (m.status, m.version)),
            Some((NodeStatus::Suspect, 2))
        );
        assert!(t.merge(vec![member("n2", 2, 1, NodeStatus::Alive)]));
        assert_eq!(
            t.get("n2").map(|m| (m.generation, m.status)),
            Some((2, NodeStatus::Alive))
        );
        // Same (generation, version), different verdicts: the graver status wins everywhere.
        assert!(t.merge(vec![member("n3", 1, 2, NodeStatus::Suspect)]));
        assert!(t.merge(vec![member("n3", 1, 2, NodeStatus::Dead)]));
        assert!(!t.merge(vec![member("n3", 1, 2, NodeStatus::Suspect)]));
        assert_eq!(t.get("n3").map(|m| m.status), Some(NodeStatus::Dead));
        // New members are added.
        assert!(t.merge(vec![member("n4", 1, 1, NodeStatus::Alive)]));
        let ids: Vec<_> = t.members().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["n1", "n2", "n3", "n4"]);
    }

    #[test]
    fn last_seen_merges_by_max_without_counting_as_change() {
        let mut t = table();
        let mut heard = member("n2", 1, 1, NodeStatus::Alive);
        heard.last_seen_secs = 50;
        assert!(!t.merge(vec![heard.clone()]));
        assert_eq!(t.get("n2").map(|m| m.last_seen_secs), Some(50));
        heard.last_seen_secs = 10;
        heard.version = 2;
        assert!(t.merge(vec![heard]));
        assert_eq!(
            t.get("n2").map(|m| (m.version, m.last_seen_secs)),
            Some((2, 50))
        );
    }

    #[test]
    fn local_record_is_never_replaced_by_older_and_rumours_are_refuted() {
        let mut t = table();
        t.upsert(member("n1", 1, 5, NodeStatus::Alive));
        assert_eq!(t.local().version, 6);
        assert!(!t.merge(vec![member("n1", 1, 3, NodeStatus::Dead)]));
        assert_eq!(t.local().status, NodeStatus::Alive);
        // A newer rumour that we are dead: we stay alive and outbid it.
        assert!(t.merge(vec![member("n1", 1, 9, NodeStatus::Dead)]));
        assert_eq!(
            (t.local().status, t.local().version),
            (NodeStatus::Alive, 10)
        );
        // An admin removal is accepted.
        assert!(t.merge(vec![member("n1", 1, 11, NodeStatus::Left)]));
        assert_eq!(t.local().status, NodeStatus::Left);
    }

    #[test]
    fn admin_and_detector_changes_bump_versions() {
        let mut t = table();
        assert!(t.set_status("n2", NodeStatus::Suspect, 100));
        assert!(!t.set_status("n2", NodeStatus::Suspect, 101));
        assert_eq!(
            t.get("n2").map(|m| (m.version, m.last_seen_secs)),
            Some((2, 0))
        );
        assert!(t.set_status("n2", NodeStatus::Alive, 102));
        assert_eq!(
            t.get("n2").map(|m| (m.version, m.last_seen_secs)),
            Some((3, 102))
        );
        assert!(!t.set_status("n9", NodeStatus::Dead, 1));
        assert!(t.mark_left("n2"));
        assert!(!t.mark_left("n2"));
        assert!(!t.mark_left("n9"));
        assert!(!t.set_status("n2", NodeStatus::Alive, 103));
        assert_eq!(
            t.get("n2").map(|m| (m.status, m.version)),
            Some((NodeStatus::Left, 4))
        );
        // AddNode of a left member brings it back with a version above the old record.
        t.upsert(member("n2", 1, 1, NodeStatus::Alive));
        assert_eq!(
            t.get("n2").map(|m| (m.status, m.version)),
            Some((NodeStatus::Alive, 5))
        );
        assert!(t.touch("n3", 77));
        assert!(!t.touch("n9", 77));
        assert_eq!(
            t.get("n3").map(|m| (m.version, m.last_seen_secs)),
            Some((1, 77))
        );
    }

    #[test]
    fn ring_skips_left_members_only() {
        let mut t = table();
        t.set_status("n2", NodeStatus::Dead, 0);
        t.mark_left("n3");
        assert_eq!(t.ring().nodes(), ["n1", "n2"]);
        let mut want = Ring::new();
        want.add_node("n1", 8);
        want.add_node("n2", 8);
        assert_eq!(t.ring(), want);
    }

    #[test]
    fn find_by_address_prefers_members_that_have_not_left() {
        let mut t = table();
        let mut successor = member("n5", 1, 1, NodeStatus::Alive);
        successor.address = "n2:7000".to_string();
        t.merge(vec![successor]);
        assert_eq!(
            t.find_by_address("n2:7000").map(|m| m.id.as_str()),
            Some("n2")
        );
        t.mark_left("n2");
        assert_eq!(
            t.find_by_address("n2:7000").map(|m| m.id.as_str()),
            Some("n5")
        );
        t.mark_left("n5");
        assert_eq!(
            t.find_by_address("n2:7000").map(|m| m.id.as_str()),
            Some("n2")
        );
        assert_eq!(t.find_by_address("nowhere:1"), None);
    }

    fn record() -> impl Strategy<Value = Member> {
        (
            "n[2-5]",
            0u64..3,
            0u64..4,
            0u32..4,
            "[ab]",
            1u32..3,
            0i64..100,
        )
            .prop_map(
                |(id, generation, version, status, host, vnodes, seen)| Member {
                    id,
                    address: format!("{host}:1"),
                    vnodes,
                    status: NodeStatus::from_u32(status).unwrap_or(NodeStatus::Alive),
                    generation,
                    version,
                    last_seen_secs: seen,
                },
            )
    }

    proptest! {
        /// Gossip in any order and any grouping converges to the same table.
        #[test]
        fn merge_converges_in_any_order(
            records in prop::collection::vec(record(), 0..24),
            split in any::<prop::sample::Index>(),
        ) {
            let fresh = || Membership::new(member("n1", 1, 1, NodeStatus::Alive));
            let mut one_by_one = fresh();
            for r in &records {
                one_by_one.merge(vec![r.clone()]);
            }
            let mut reversed = fresh();
            reversed.merge(records.iter().rev().cloned().collect());
            // Two peers each learn part, then exchange tables both ways.
            let at = split.index(records.len() + 1);
            let (mut a, mut b) = (fresh(), fresh());
            a.merge(records[..at].to_vec());
            b.merge(records[at..].to_vec());
            a.merge(b.members());
            b.merge(a.members());
            prop_assert_eq!(&one_by_one, &reversed);
            prop_assert_eq!(&one_by_one, &a);
            prop_assert_eq!(&a, &b);
            // Merging what we already have changes nothing.
            prop_assert!(!a.merge(a.members()));
        }
    }
}
