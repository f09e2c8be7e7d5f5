//! # distkv-node
//!
//! A DistKV node: the original's gRPC API (`distkv.DistKV`, `distkv.AdminService`) over a
//! replicated store. [`node::Node`] coordinates requests with quorums, versions them with
//! dotted vector clocks, hands off writes for unreachable replicas and repairs stale ones;
//! [`server::serve`] puts it on the network. The pure rules (ring, clocks, quorum rounds,
//! membership) live in `distkv-cluster`; the bytes on disk in `distkv-lsm`.

pub mod backup;
pub mod blocking;
pub mod clock;
pub mod config;
pub mod conn;
pub mod coordinator;
pub mod counters;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod handoff;
pub mod hints;
pub mod http;
pub mod members_file;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod ops;
pub mod peers;
pub mod repair;
pub mod rings;
pub mod serve;
pub mod server;
pub mod service;
pub mod settings;
pub mod storage;
pub mod stream;
pub mod streaming;
pub mod transport;
pub mod twin;

pub use config::{Flags, NodeConfig};
pub use error::{NodeError, Result};
pub use node::Node;
