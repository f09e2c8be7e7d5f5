//! # distkv-client
//!
//! The client side of DistKV: a library to talk to a cluster, the `distkv-client` command line
//! (module [`cli`]) and the `distkv-bench` load generator (module [`bench`](mod@bench)).
//!
//! A [`Client`] holds a gRPC channel to one node; any node coordinates any request (Dynamo §4.1),
//! so one address is enough. Requests speak the original Go DistKV's protocol plus our
//! additions: a per-request [`Consistency`] that the server honours (sent with
//! `consistency_set`, so that `None` still means "the server's default"), siblings and causal
//! contexts on reads and writes (Dynamo §4.4), ordered scans, and the ring and storage metrics.
//! Against the Go original the basic requests work; the new ones fail with
//! [`ClientError::Unsupported`].
//!
//! ```no_run
//! use distkv_client::{Client, ClientConfig, Consistency};
//!
//! # async fn example() -> Result<(), distkv_client::ClientError> {
//! let client = Client::connect(ClientConfig::default()).await?;
//! client.put("user:1", "ada", Some(Consistency::Quorum), None).await?;
//! let got = client.get("user:1", None).await?;
//! if got.siblings.len() > 1 {
//!     // Concurrent writes: resolve them by writing back with the context.
//!     client.put("user:1", "ada lovelace", None, Some(got.context)).await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Protobuf types stay inside this crate: the API takes and returns the domain types of
//! [`types`], and errors are [`ClientError`] variants with structured fields.
//!
//! A [`ClusterClient`] routes by key: it learns the ring from its node and sends each get, put
//! and delete straight to a replica of the key ([`routing`]), falling back to its node.
//!
//! Left out: connection pools, and retries beyond that fallback (see
//! [`ClientError::is_retryable`]).

pub mod bench;
pub mod cli;
mod client;
mod convert;
mod error;
pub mod routing;
pub mod types;

pub use client::{
    Client, ClientConfig, DEFAULT_SERVER, DEFAULT_TIMEOUT, DEFAULT_TLS_SERVER_NAME,
    LONG_OPERATION_TIMEOUT, MAX_MESSAGE_BYTES, TlsConfig,
};
pub use error::{ClientError, Operation, Result};
pub use routing::{ClusterClient, Router};
pub use types::{
    AntiEntropyStats, BatchResult, ClusterHealth, ClusterMetrics, ClusterStatus, Consistency,
    GetResult, InvalidConsistency, NodeState, NodeStatus, OperationInfo, PutResult, RepairResult,
    RingInfo, RingNode, ScanOptions, ScanPage, Sibling, StorageMetrics, VectorClock,
};
