//! Every conversion between the node's domain types and the generated protobuf types of the
//! node-to-node protocol and of what the node persists with it (the member table, streaming
//! plans): the gRPC transport and the replica service call these, nothing else sees a proto
//! type. (Free functions rather than `From` impls: both sides of each are foreign types here.)
//! Decoding what a peer or a file says is fallible and names what was wrong.

use distkv_cluster::gossip::{Ack, Ack2, GossipDigest, Syn};
use distkv_cluster::{Member, MemberState, TokenRange, Update};
use distkv_proto::internal;

use crate::error::{BadMessage, Result};

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
}
