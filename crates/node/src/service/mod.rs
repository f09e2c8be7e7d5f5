//! gRPC services: the original's `distkv.DistKV` and `distkv.AdminService`, and the internal
//! `distkv.internal.Replica`. Handlers only convert between protobuf and domain types and call
//! the node; proto types go no further.

pub mod admin;
pub mod kv;
pub mod replica;

pub use crate::transport::convert::consistency;
