//! The members of the cluster: the table every node keeps and gossips, and the rings built
//! from it.
//!
//! **Guarantees.** Merging member tables converges: for each node id the table keeps the larger
//! record under one total order, and the larger heartbeat of a record, so nodes that exchange
//! tables in any order and any number of times agree. A node's own record is never replaced by
//! an older one, and a newer rumour about it is refuted rather than believed, except an admin's
//! removal ([`MemberState::Left`]). The rings are pure functions of the table
//! ([`Membership::ring`], [`Membership::pending_ring`]), so nodes that agree on the table agree
//! on where keys live.
//!
//! **How.** Dynamo 4.8, with the split Cassandra makes between a node's *state* and its
//! *heartbeat*. Every record carries `(generation, version)`: the generation changes when the
//! node restarts (it picks a larger one each time: its start time), and the version is bumped by
//! every change to the record's content (state, address, tokens), by the node itself or by an
//! admin action about it. Records compare by `(generation, version)`, then, so that two
//! different changes made from the same version still converge, by state (the graver wins:
//! left, leaving, normal, joining), address and tokens. The heartbeat is a counter the owner
//! bumps every heartbeat interval; it is not part of the order and merges by maximum within a
//! generation, so that a heartbeat spreading through the cluster never drags the record's
//! tokens along with it. A heartbeat that advances is proof that its node was alive a moment
//! ago: it is what the failure detector listens to.
//!
//! A record's [`MemberState`] is what the node says of its place in the ring: joining (taking
//! over its ranges, not yet serving reads), normal, leaving (handing its ranges off, still
//! serving reads), left. Whether it is *up* is not in the record: each node judges that itself
//! from the heartbeats it hears ([`crate::failure`]), as Cassandra does, so a node that comes
//! back is up again wherever its heartbeat arrives and no verdict can get stuck.
//!
//! **Left out.** When to gossip and with whom ([`crate::gossip`]); removing `Left` records for
//! good.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::NodeId;
use crate::ring::{Ring, Token};

/// What a node says of its place in the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    /// Taking over its ranges: written to, not yet read from.
    Joining,
    /// Owns its ranges.
    Normal,
    /// Handing its ranges to their next owners: still read from.
    Leaving,
    /// Out of the ring (decommissioned, or removed by an admin).
    Left,
}

impl MemberState {
    /// The wire value: 0 joining, 1 normal, 2 leaving, 3 left.
    pub fn as_u32(self) -> u32 {
        match self {
            MemberState::Joining => 0,
            MemberState::Normal => 1,
            MemberState::Leaving => 2,
            MemberState::Left => 3,
        }
    }

    /// The state of a wire value; `None` for an unknown one.
    pub fn from_u32(v: u32) -> Option<MemberState> {
        match v {
            0 => Some(MemberState::Joining),
            1 => Some(MemberState::Normal),
            2 => Some(MemberState::Leaving),
            3 => Some(MemberState::Left),
            _ => None,
        }
    }

    /// Holds data that reads may need (in the read ring).
    pub fn serves_reads(self) -> bool {
        matches!(self, MemberState::Normal | MemberState::Leaving)
    }
}

/// How a member is doing as far as one node can tell: its state and that node's failure
/// detector together. This is what `status` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeStatus {
    /// Heartbeats arrive.
    Alive,
    /// Heartbeats are late; still tried by requests.
    Suspect,
    /// Heartbeats stopped long ago; requests route around it (hints hold its writes).
    Dead,
    /// Out of the ring.
    Left,
    /// Up and taking over its ranges.
    Joining,
    /// Up and handing its ranges off.
    Leaving,
}

impl NodeStatus {
    /// The wire value (as `distkv.NodeStatus`): 0 alive, 1 suspect, 2 dead, 3 left, 4 joining,
    /// 5 leaving.
    pub fn as_u32(self) -> u32 {
        match self {
            NodeStatus::Alive => 0,
            NodeStatus::Suspect => 1,
            NodeStatus::Dead => 2,
            NodeStatus::Left => 3,
            NodeStatus::Joining => 4,
            NodeStatus::Leaving => 5,
        }
    }

    /// The status of a wire value; `None` for an unknown one.
    pub fn from_u32(v: u32) -> Option<NodeStatus> {
        match v {
            0 => Some(NodeStatus::Alive),
            1 => Some(NodeStatus::Suspect),
            2 => Some(NodeStatus::Dead),
            3 => Some(NodeStatus::Left),
            4 => Some(NodeStatus::Joining),
            5 => Some(NodeStatus::Leaving),
            _ => None,
        }
    }

    /// The name `status` prints.
    pub fn name(self) -> &'static str {
        match self {
            NodeStatus::Alive => "ALIVE",
            NodeStatus::Suspect => "SUSPECT",
            NodeStatus::Dead => "DEAD",
            NodeStatus::Left => "LEFT",
            NodeStatus::Joining => "JOINING",
            NodeStatus::Leaving => "LEAVING",
        }
    }
}

/// What the cluster knows about one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    /// Where peers and clients reach it (`host:port`).
    pub address: String,
    /// Changes at every restart of the node; larger is newer.
    pub generation: u64,
    /// Bumped by every change to the record's content within a generation.
    pub version: u64,
    /// Bumped by the node itself every heartbeat interval (merged by maximum).
    pub heartbeat: u64,
    pub state: MemberState,
    /// Its tokens on the ring, sorted.
    pub tokens: Arc<[Token]>,
}

impl Member {
    /// A new record at `generation`, version 1, heartbeat 0.
    pub fn new(
        id: impl Into<NodeId>,
        address: impl Into<String>,
        generation: u64,
        state: MemberState,
        mut tokens: Vec<Token>,
    ) -> Member {
        tokens.sort_unstable();
        tokens.dedup();
        Member {
            id: id.into(),
            address: address.into(),
            generation,
            version: 1,
            heartbeat: 0,
            state,
            tokens: tokens.into(),
        }
    }

    /// The total order records merge by (see the module doc); the heartbeat is not part of it.
    fn precedence(&self, other: &Member) -> Ordering {
        (
            self.generation,
            self.version,
            self.state,
            &self.address,
            &self.tokens,
        )
            .cmp(&(
                other.generation,
                other.version,
                other.state,
                &other.address,
                &other.tokens,
            ))
    }

    /// The digest gossip compares.
    pub fn digest(&self) -> Digest {
        Digest {
            id: self.id.clone(),
            generation: self.generation,
            version: self.version,
            heartbeat: self.heartbeat,
        }
    }
}

/// What one node knows of a record, without its content: enough for a peer to tell which of
/// the two is newer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub id: NodeId,
    pub generation: u64,
    pub version: u64,
    pub heartbeat: u64,
}

/// A piece of gossip: a whole record, or only a newer heartbeat of a record the receiver has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    Record(Member),
    Heartbeat {
        id: NodeId,
        generation: u64,
        heartbeat: u64,
    },
}

/// What merging one update did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// A record was added or its content replaced (or the local node refuted a rumour).
    pub record_changed: bool,
    /// The member's heartbeat advanced (or it restarted): it was alive a moment ago.
    pub heartbeat_advanced: bool,
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
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// The digests of every record, sorted by id.
    pub fn digests(&self) -> Vec<Digest> {
        self.members.values().map(Member::digest).collect()
    }

    /// Merges one piece of gossip.
    pub fn apply(&mut self, update: Update) -> Applied {
        match update {
            Update::Record(r) => self.merge_record(r),
            Update::Heartbeat {
                id,
                generation,
                heartbeat,
            } => self.merge_heartbeat(&id, generation, heartbeat),
        }
    }

    /// Merges records (for tables loaded from disk, and tests).
    pub fn merge(&mut self, records: impl IntoIterator<Item = Member>) -> bool {
        let mut changed = false;
        for r in records {
            changed |= self.merge_record(r).record_changed;
        }
        changed
    }

    fn merge_record(&mut self, r: Member) -> Applied {
        if r.id == self.local_id {
            return Applied {
                record_changed: self.merge_local(r),
                heartbeat_advanced: false,
            };
        }
        match self.members.get_mut(&r.id) {
            None => {
                self.members.insert(r.id.clone(), r);
                Applied {
                    record_changed: true,
                    heartbeat_advanced: true,
                }
            }
            Some(mine) => {
                let mut applied = Applied::default();
                if r.generation > mine.generation
                    || (r.generation == mine.generation && r.heartbeat > mine.heartbeat)
                {
                    applied.heartbeat_advanced = true;
                }
                let heartbeat = if r.generation == mine.generation {
                    mine.heartbeat.max(r.heartbeat)
                } else if r.generation > mine.generation {
                    r.heartbeat
                } else {
                    mine.heartbeat
                };
                if r.precedence(mine) == Ordering::Greater {
                    *mine = r;
                    applied.record_changed = true;
                }
                mine.heartbeat = heartbeat;
                applied
            }
        }
    }

    fn merge_heartbeat(&mut self, id: &str, generation: u64, heartbeat: u64) -> Applied {
        match self.members.get_mut(id) {
            Some(m) if id != self.local_id && m.generation == generation => {
                let advanced = heartbeat > m.heartbeat;
                m.heartbeat = m.heartbeat.max(heartbeat);
                Applied {
                    record_changed: false,
                    heartbeat_advanced: advanced,
                }
            }
            _ => Applied::default(),
        }
    }

    fn merge_local(&mut self, r: Member) -> bool {
        let Some(mine) = self.members.get_mut(&self.local_id) else {
            return false;
        };
        if r.state == MemberState::Left
            && r.generation < mine.generation
            && matches!(mine.state, MemberState::Normal | MemberState::Leaving)
        {
            // Removed by an admin while it was down, and restarted since: its data is stale
            // and its ranges have new owners, so it joins again (streaming its ranges in)
            // rather than serving as if nothing happened.
            mine.state = MemberState::Joining;
            mine.version = mine.version.max(r.version) + 1;
            return true;
        }
        if r.precedence(mine) != Ordering::Greater {
            return false;
        }
        if r.state == MemberState::Left && r.generation == mine.generation {
            // An admin removed this node while it runs: accepted.
            let heartbeat = mine.heartbeat;
            *mine = r;
            mine.heartbeat = heartbeat;
        } else {
            // Someone holds a newer record of us that we did not write: outbid it and keep
            // what we know of ourselves. A record of a later generation than ours (a clock
            // that went back, or another process with our id) is outbid by a generation past
            // it, so that our heartbeat is not compared with one from another life.
            if r.generation > mine.generation {
                mine.generation = r.generation + 1;
                mine.version = 1;
            } else {
                mine.version = r.version + 1;
            }
        }
        true
    }

    /// True when we hold `id` as left in an earlier generation than `generation`: a node
    /// removed while it was down, restarted since. Gossip then hands it our record of the
    /// removal, which makes it join again (see `merge_local`).
    pub fn refused_restart(&self, id: &str, generation: u64) -> bool {
        self.members
            .get(id)
            .is_some_and(|m| m.state == MemberState::Left && m.generation < generation)
    }

    /// Bumps the local heartbeat.
    pub fn beat(&mut self) {
        if let Some(me) = self.members.get_mut(&self.local_id) {
            me.heartbeat += 1;
        }
    }

    /// Changes the local node's state; false when it already had it.
    pub fn set_local_state(&mut self, state: MemberState) -> bool {
        let Some(me) = self.members.get_mut(&self.local_id) else {
            return false;
        };
        if me.state == state {
            return false;
        }
        me.state = state;
        me.version += 1;
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
                let heartbeat = mine.heartbeat;
                *mine = Member {
                    generation,
                    version,
                    heartbeat,
                    ..m
                };
            }
        }
    }

    /// Admin RemoveNode: marks the member left (out of the ring). False when it is unknown or
    /// already left.
    pub fn mark_left(&mut self, id: &str) -> bool {
        match self.members.get_mut(id) {
            Some(m) if m.state != MemberState::Left => {
                m.state = MemberState::Left;
                m.version += 1;
                true
            }
            _ => false,
        }
    }

    /// The ring reads use: every member that holds its ranges (normal or leaving).
    pub fn ring(&self) -> Ring {
        self.ring_of(|s| s.serves_reads())
    }

    /// The ring once pending changes are done: joining members in, leaving ones out. Writes go
    /// to the replicas of both rings, so that a joining node gets the writes of the ranges it
    /// is taking over and the next owners of a leaving node's ranges get theirs.
    pub fn pending_ring(&self) -> Ring {
        self.ring_of(|s| matches!(s, MemberState::Normal | MemberState::Joining))
    }

    fn ring_of(&self, include: impl Fn(MemberState) -> bool) -> Ring {
        let mut ring = Ring::new();
        for m in self.members.values() {
            if include(m.state) {
                ring.add_node_tokens(&m.id, &m.tokens);
            }
        }
        ring
    }

    /// The member at `address`: the first by id that has not left, else the first that has.
    pub fn find_by_address(&self, address: &str) -> Option<&Member> {
        let mut at = self.members.values().filter(|m| m.address == address);
        let first = at.clone().next();
        at.find(|m| m.state != MemberState::Left).or(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: &str, generation: u64, version: u64, state: MemberState) -> Member {
        Member {
            id: id.to_string(),
            address: format!("{id}:7000"),
            generation,
            version,
            heartbeat: 0,
            state,
            tokens: vec![1, 2].into(),
        }
    }

    fn table() -> Membership {
        let mut t = Membership::new(member("n1", 1, 1, MemberState::Normal));
        t.merge([
            member("n2", 1, 1, MemberState::Normal),
            member("n3", 1, 1, MemberState::Normal),
        ]);
        t
    }

    #[test]
    fn wire_values_round_trip() {
        for s in [
            MemberState::Joining,
            MemberState::Normal,
            MemberState::Leaving,
            MemberState::Left,
        ] {
            assert_eq!(MemberState::from_u32(s.as_u32()), Some(s));
        }
        assert_eq!(MemberState::from_u32(4), None);
        for v in 0..6 {
            assert_eq!(NodeStatus::from_u32(v).map(NodeStatus::as_u32), Some(v));
        }
        assert_eq!(NodeStatus::from_u32(6), None);
        assert_eq!(NodeStatus::Alive.as_u32(), 0);
        assert_eq!(NodeStatus::Dead.name(), "DEAD");
    }

    #[test]
    fn merge_keeps_the_newer_record() {
        let mut t = table();
        // Older and equal records change nothing.
        assert!(!t.merge([
            member("n2", 0, 9, MemberState::Left),
            member("n2", 1, 1, MemberState::Normal)
        ]));
        // Newer version, then newer generation.
        assert!(t.merge([member("n2", 1, 2, MemberState::Leaving)]));
        assert_eq!(t.get("n2").map(|m| m.state), Some(MemberState::Leaving));
        assert!(t.merge([member("n2", 2, 1, MemberState::Normal)]));
        assert_eq!(
            t.get("n2").map(|m| (m.generation, m.state)),
            Some((2, MemberState::Normal))
        );
        // Same (generation, version), different states: the graver one wins everywhere.
        assert!(t.merge([member("n3", 1, 2, MemberState::Leaving)]));
        assert!(t.merge([member("n3", 1, 2, MemberState::Left)]));
        assert!(!t.merge([member("n3", 1, 2, MemberState::Leaving)]));
        assert_eq!(t.get("n3").map(|m| m.state), Some(MemberState::Left));
        // New members are added.
        assert!(t.merge([member("n4", 1, 1, MemberState::Joining)]));
        let ids: Vec<_> = t.members().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["n1", "n2", "n3", "n4"]);
    }

    #[test]
    fn heartbeats_merge_by_maximum_within_a_generation_and_do_not_change_records() {
        let mut t = table();
        let hb = |generation, heartbeat| Update::Heartbeat {
            id: "n2".into(),
            generation,
            heartbeat,
        };
        assert_eq!(
            t.apply(hb(1, 5)),
            Applied {
                record_changed: false,
                heartbeat_advanced: true
            }
        );
        assert_eq!(t.apply(hb(1, 3)), Applied::default());
        // A heartbeat of another generation is not ours to merge.
        assert_eq!(t.apply(hb(2, 9)), Applied::default());
        assert_eq!(t.get("n2").map(|m| m.heartbeat), Some(5));
        // A record with an older heartbeat keeps the newer one; a restart resets it.
        let mut stale = member("n2", 1, 2, MemberState::Normal);
        stale.heartbeat = 1;
        let applied = t.apply(Update::Record(stale));
        assert!(applied.record_changed && !applied.heartbeat_advanced);
        assert_eq!(t.get("n2").map(|m| m.heartbeat), Some(5));
        let restarted = member("n2", 2, 1, MemberState::Normal);
        assert!(t.apply(Update::Record(restarted)).heartbeat_advanced);
        assert_eq!(t.get("n2").map(|m| m.heartbeat), Some(0));
        // Nobody else's heartbeat for the local node is merged.
        assert_eq!(
            t.apply(Update::Heartbeat {
                id: "n1".into(),
                generation: 1,
                heartbeat: 100
            }),
            Applied::default()
        );
        t.beat();
        assert_eq!(t.local().heartbeat, 1);
    }

    #[test]
    fn local_record_is_never_replaced_by_older_and_rumours_are_refuted() {
        let mut t = table();
        assert!(t.set_local_state(MemberState::Leaving));
        assert!(!t.set_local_state(MemberState::Leaving));
        assert_eq!(t.local().version, 2);
        assert!(!t.merge([member("n1", 1, 2, MemberState::Joining)]));
        // A newer record about us that we did not write: we keep ours and outbid it.
        assert!(t.merge([member("n1", 1, 9, MemberState::Normal)]));
        assert_eq!(
            (t.local().state, t.local().version),
            (MemberState::Leaving, 10)
        );
        // An admin removal of this generation is accepted.
        assert!(t.merge([member("n1", 1, 11, MemberState::Left)]));
        assert_eq!(t.local().state, MemberState::Left);
    }

    #[test]
    fn a_node_removed_while_down_joins_again_after_its_restart() {
        let mut t = Membership::new(member("n1", 5, 1, MemberState::Normal));
        // Older records that do not say "left" change nothing.
        assert!(!t.merge([member("n1", 4, 30, MemberState::Normal)]));
        assert!(t.merge([member("n1", 4, 30, MemberState::Left)]));
        assert_eq!(
            (t.local().state, t.local().generation, t.local().version),
            (MemberState::Joining, 5, 31)
        );
        // Once joining (or left on its own), an old removal means nothing more.
        assert!(!t.merge([member("n1", 4, 30, MemberState::Left)]));
    }

    #[test]
    fn a_removal_in_an_earlier_generation_is_known() {
        let mut t = table();
        t.mark_left("n2");
        assert!(t.refused_restart("n2", 2));
        assert!(!t.refused_restart("n2", 1));
        assert!(!t.refused_restart("n3", 2));
    }

    #[test]
    fn a_rumour_from_a_later_generation_is_outbid_by_a_new_generation() {
        let mut t = table();
        assert!(t.merge([member("n1", 7, 3, MemberState::Normal)]));
        assert_eq!((t.local().generation, t.local().version), (8, 1));
    }

    #[test]
    fn admin_changes_bump_versions() {
        let mut t = table();
        assert!(t.mark_left("n2"));
        assert!(!t.mark_left("n2"));
        assert!(!t.mark_left("n9"));
        assert_eq!(
            t.get("n2").map(|m| (m.state, m.version)),
            Some((MemberState::Left, 2))
        );
        // AddNode of a left member brings it back with a version above the old record.
        t.upsert(member("n2", 1, 1, MemberState::Normal));
        assert_eq!(
            t.get("n2").map(|m| (m.state, m.version)),
            Some((MemberState::Normal, 3))
        );
    }

    #[test]
    fn rings_follow_states() {
        let mut t = table();
        let mut joining = member("n4", 1, 1, MemberState::Joining);
        joining.tokens = vec![7].into();
        t.merge([joining]);
        t.merge([member("n3", 1, 2, MemberState::Leaving)]);
        t.mark_left("n2");
        assert_eq!(t.ring().nodes(), ["n1", "n3"]);
        assert_eq!(t.pending_ring().nodes(), ["n1", "n4"]);
        let mut want = Ring::new();
        want.add_node_tokens("n1", &[1, 2]);
        want.add_node_tokens("n3", &[1, 2]);
        assert_eq!(t.ring(), want);
    }

    #[test]
    fn find_by_address_prefers_members_that_have_not_left() {
        let mut t = table();
        let mut successor = member("n5", 1, 1, MemberState::Normal);
        successor.address = "n2:7000".to_string();
        t.merge([successor]);
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

    fn update() -> impl Strategy<Value = Update> {
        let record = (
            "n[2-5]",
            0u64..3,
            0u64..4,
            0u64..5,
            0u32..4,
            "[ab]",
            prop::collection::vec(0u64..4, 0..3),
        )
            .prop_map(
                |(id, generation, version, heartbeat, state, host, tokens)| {
                    let mut m = Member::new(
                        id,
                        format!("{host}:1"),
                        generation,
                        MemberState::from_u32(state).unwrap_or(MemberState::Normal),
                        tokens,
                    );
                    m.version = version;
                    m.heartbeat = heartbeat;
                    Update::Record(m)
                },
            );
        let heartbeat = ("n[2-5]", 0u64..3, 0u64..5).prop_map(|(id, generation, heartbeat)| {
            Update::Heartbeat {
                id,
                generation,
                heartbeat,
            }
        });
        prop_oneof![3 => record, 1 => heartbeat]
    }

    proptest! {
        /// Gossip in any order and any grouping converges to the same table.
        #[test]
        fn merge_converges_in_any_order(
            updates in prop::collection::vec(update(), 0..24),
            split in any::<prop::sample::Index>(),
        ) {
            let fresh = || Membership::new(member("n1", 1, 1, MemberState::Normal));
            let mut forward = fresh();
            for u in &updates {
                forward.apply(u.clone());
            }
            // Heartbeats of records not yet known are lost, so a receiver that gets a record
            // after its heartbeat needs the heartbeat again: gossip repeats itself, which the
            // final full exchange below stands for.
            let everything = |t: &Membership| -> Vec<Update> {
                t.members().cloned().map(Update::Record).collect()
            };
            let mut reversed = fresh();
            for u in updates.iter().rev() {
                reversed.apply(u.clone());
            }
            let at = split.index(updates.len() + 1);
            let (mut a, mut b) = (fresh(), fresh());
            for u in &updates[..at] {
                a.apply(u.clone());
            }
            for u in &updates[at..] {
                b.apply(u.clone());
            }
            for t in [&mut forward, &mut reversed, &mut a, &mut b] {
                for u in &updates {
                    t.apply(u.clone());
                }
            }
            for u in everything(&b) {
                a.apply(u);
            }
            for u in everything(&a) {
                b.apply(u);
            }
            prop_assert_eq!(&forward, &reversed);
            prop_assert_eq!(&forward, &a);
            prop_assert_eq!(&a, &b);
            // Merging what we already have changes nothing.
            for u in everything(&a) {
                prop_assert!(!a.apply(u).record_changed);
            }
        }
    }
}
