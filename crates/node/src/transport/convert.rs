//! Every conversion between the node's domain types and the generated protobuf types of the
//! node-to-node protocol and of what the node persists with it (the member table, streaming
//! plans): the gRPC transport and the replica service call these, nothing else sees a proto
//! type. (Free functions rather than `From` impls: both sides of each are foreign types here.)
//! Decoding what a peer or a file says is fallible and names what was wrong.

use distkv_cluster::gossip::{Ack, Ack2, GossipDigest, Syn};
use distkv_cluster::{Consistency, Member, MemberState, TokenRange, Update, VectorClock};
use distkv_proto::distkv::ConsistencyLevel;
use distkv_proto::internal;

use super::{Write, WriteContext};
use crate::error::{BadMessage, NodeError, Result};

pub fn member_to_proto(m: &Member) -> internal::Member {
    internal::Member {
        node_id: m.id.clone(),
        address: m.address.clone(),
        generation: m.generation,
        version: m.version,
        heartbeat: m.heartbeat,
        state: m.state.as_u32(),
        tokens: m.tokens.to_vec(),
    }
}

pub fn member_from_proto(m: internal::Member) -> Result<Member> {
    let state = MemberState::from_u32(m.state).ok_or(BadMessage::UnknownMemberState(m.state))?;
    if m.node_id.is_empty() {
        return Err(BadMessage::MemberWithoutId.into());
    }
    let mut member = Member::new(m.node_id, m.address, m.generation, state, m.tokens);
    member.version = m.version;
    member.heartbeat = m.heartbeat;
    Ok(member)
}

pub fn digest_to_proto(d: GossipDigest) -> internal::GossipDigest {
    internal::GossipDigest {
        node_id: d.id,
        generation: d.generation,
        version: d.version,
        heartbeat: d.heartbeat,
        fingerprint: d.fingerprint,
    }
}

pub fn digest_from_proto(d: internal::GossipDigest) -> GossipDigest {
    GossipDigest {
        id: d.node_id,
        generation: d.generation,
        version: d.version,
        heartbeat: d.heartbeat,
        fingerprint: d.fingerprint,
    }
}

pub fn update_to_proto(u: Update) -> internal::GossipUpdate {
    use internal::gossip_update::Update as U;
    internal::GossipUpdate {
        update: Some(match u {
            Update::Record(m) => U::Record(member_to_proto(&m)),
            Update::Heartbeat {
                id,
                generation,
                heartbeat,
            } => U::Heartbeat(internal::HeartbeatUpdate {
                node_id: id,
                generation,
                heartbeat,
            }),
        }),
    }
}

pub fn updates_from_proto(updates: Vec<internal::GossipUpdate>) -> Result<Vec<Update>> {
    use internal::gossip_update::Update as U;
    updates
        .into_iter()
        .map(|u| match u.update {
            Some(U::Record(m)) => member_from_proto(m).map(Update::Record),
            Some(U::Heartbeat(h)) => Ok(Update::Heartbeat {
                id: h.node_id,
                generation: h.generation,
                heartbeat: h.heartbeat,
            }),
            None => Err(BadMessage::EmptyGossipUpdate.into()),
        })
        .collect()
}

pub fn syn_to_proto(syn: Syn) -> internal::GossipSynRequest {
    internal::GossipSynRequest {
        from: syn.from,
        digests: syn.digests.into_iter().map(digest_to_proto).collect(),
    }
}

pub fn syn_from_proto(r: internal::GossipSynRequest) -> Syn {
    Syn {
        from: r.from,
        digests: r.digests.into_iter().map(digest_from_proto).collect(),
    }
}

pub fn ack_to_proto(a: Ack) -> internal::GossipAckResponse {
    internal::GossipAckResponse {
        from: a.from,
        updates: a.updates.into_iter().map(update_to_proto).collect(),
        wanted: a.wanted.into_iter().map(digest_to_proto).collect(),
    }
}

pub fn ack_from_proto(a: internal::GossipAckResponse) -> Result<Ack> {
    Ok(Ack {
        from: a.from,
        updates: updates_from_proto(a.updates)?,
        wanted: a.wanted.into_iter().map(digest_from_proto).collect(),
    })
}

pub fn ack2_to_proto(a: Ack2) -> internal::GossipAck2Request {
    internal::GossipAck2Request {
        from: a.from,
        updates: a.updates.into_iter().map(update_to_proto).collect(),
    }
}

pub fn ack2_from_proto(a: internal::GossipAck2Request) -> Result<Ack2> {
    Ok(Ack2 {
        from: a.from,
        updates: updates_from_proto(a.updates)?,
    })
}

pub fn range_to_proto(r: TokenRange) -> internal::TokenRange {
    internal::TokenRange {
        start: r.start,
        end: r.end,
    }
}

pub fn range_from_proto(r: &internal::TokenRange) -> TokenRange {
    TokenRange::new(r.start, r.end)
}

/// The request's consistency level, or `None` to use the server's R/W.
///
/// proto3 cannot tell an explicit `ONE` from an unset field, so a request counts as choosing a
/// level only when it also sets `consistency_set` (our clients do; the original's never did, and
/// their server ignored the level anyway).
pub fn consistency(level: i32, set: bool) -> Option<Consistency> {
    if !set {
        return None;
    }
    Some(match ConsistencyLevel::try_from(level) {
        Ok(ConsistencyLevel::One) => Consistency::One,
        Ok(ConsistencyLevel::All) => Consistency::All,
        _ => Consistency::Quorum,
    })
}

/// A consistency level as the original's messages carry it: the level and whether it is set.
pub fn consistency_to_proto(level: Option<Consistency>) -> (i32, bool) {
    match level {
        None => (ConsistencyLevel::One as i32, false),
        Some(Consistency::One) => (ConsistencyLevel::One as i32, true),
        Some(Consistency::Quorum) => (ConsistencyLevel::Quorum as i32, true),
        Some(Consistency::All) => (ConsistencyLevel::All as i32, true),
    }
}

/// The internal request that hands `write` to another replica to coordinate.
pub fn write_to_proto(write: &Write) -> internal::CoordinateRequest {
    let (consistency_level, consistency_set) = consistency_to_proto(write.level);
    internal::CoordinateRequest {
        key: write.key.clone(),
        is_delete: write.value.is_none(),
        value: write.value.clone().unwrap_or_default(),
        context: match &write.context {
            WriteContext::Given(c) => c.encode(),
            WriteContext::Coordinator => Vec::new(),
        },
        consistency_level,
        consistency_set,
        coordinator_context: write.context == WriteContext::Coordinator,
    }
}

/// The write a peer handed this node to coordinate; a context that does not decode is an
/// error naming it.
pub fn write_from_proto(r: internal::CoordinateRequest) -> Result<Write> {
    let context = if r.coordinator_context {
        WriteContext::Coordinator
    } else {
        WriteContext::Given(VectorClock::decode(&r.context).map_err(NodeError::BadContext)?)
    };
    Ok(Write {
        level: consistency(r.consistency_level, r.consistency_set),
        value: (!r.is_delete).then_some(r.value),
        key: r.key,
        context,
    })
}

/// A replica's answer to a read of `address`.
pub fn read_from_proto(
    address: &str,
    reply: internal::ReplicaReadResponse,
) -> Result<distkv_cluster::Siblings> {
    if !reply.found {
        return Ok(distkv_cluster::Siblings::new());
    }
    distkv_cluster::Siblings::decode(&reply.versions)
        .map_err(|e| NodeError::bad_reply(address, format!("versions: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_through_protobuf() {
        let mut m = Member::new("n2", "h:1", 7, MemberState::Leaving, vec![9, 4]);
        m.version = 3;
        m.heartbeat = 11;
        assert_eq!(member_from_proto(member_to_proto(&m)).unwrap(), m);
        let mut bad = member_to_proto(&m);
        bad.state = 9;
        assert!(member_from_proto(bad).is_err());
    }

    #[test]
    fn forwarded_writes_round_trip_through_protobuf() {
        let mut clock = VectorClock::new();
        clock.set("n1", 3);
        for level in [
            None,
            Some(Consistency::One),
            Some(Consistency::Quorum),
            Some(Consistency::All),
        ] {
            for (value, context) in [
                (Some(b"v".to_vec()), WriteContext::Coordinator),
                (None, WriteContext::Given(clock.clone())),
                (Some(Vec::new()), WriteContext::Given(VectorClock::new())),
            ] {
                let w = Write {
                    key: "k".into(),
                    value,
                    context,
                    level,
                };
                assert_eq!(write_from_proto(write_to_proto(&w)).unwrap(), w);
            }
        }
        let mut bad = write_to_proto(&Write {
            key: "k".into(),
            value: None,
            context: WriteContext::Given(clock),
            level: None,
        });
        bad.context = vec![0xff, 0xff];
        assert!(matches!(
            write_from_proto(bad),
            Err(NodeError::BadContext(_))
        ));
    }
}
