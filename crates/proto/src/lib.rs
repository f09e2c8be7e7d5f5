//! Generated gRPC types of DistKV.
//!
//! `distkv` is the client-facing API, wire-compatible with the original Go DistKV
//! (`proto/distkv.proto`); `internal` is the node-to-node protocol. These types stay at the
//! edges: the node and the client convert them to domain types at once.

#[allow(clippy::all, missing_docs)]
pub mod distkv {
    tonic::include_proto!("distkv");

    #[allow(clippy::all, missing_docs)]
    pub mod internal {
        tonic::include_proto!("distkv.internal");
    }
}

pub use distkv::internal;

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("distkv_descriptor");
