//! gRPC services: the original's `distkv.DistKV` and `distkv.AdminService`, and the internal
//! `distkv.internal.Replica`. Handlers only convert between protobuf and domain types and call
//! the node; proto types go no further.

pub mod admin;
pub mod kv;
pub mod replica;

use distkv_cluster::Consistency;
use distkv_proto::distkv::ConsistencyLevel;

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
