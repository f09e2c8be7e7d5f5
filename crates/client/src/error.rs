//! Errors of the client.
//!
//! Two kinds of failure reach a caller. The server may refuse a request: it answers normally with
//! `success = false` and a message (the original's convention, which ours keeps), and the client
//! turns that into a variant per operation that carries the server's words (`PutFailed`, ...).
//! Or the request never gets a proper answer: the connection fails, the deadline passes, or the
//! server returns a gRPC error status; those variants name the server's address.
//!
//! `Display` gives one line in the original client's words (`put failed: <message>`), fit to
//! print after `Error: `.

use std::fmt;
use std::time::Duration;

use distkv_flags::format_go_duration;

/// Result alias for the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// The request an error belongs to; its `Display` is the original client's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Put,
    Get,
    Delete,
    BatchPut,
    Scan,
    ClusterStatus,
    Ring,
    AddNode,
    RemoveNode,
    Rebalance,
    Decommission,
    Repair,
    Backup,
    Metrics,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Put => "put",
            Operation::Get => "get",
            Operation::Delete => "delete",
            Operation::BatchPut => "batch put",
            Operation::Scan => "scan",
            Operation::ClusterStatus => "get status",
            Operation::Ring => "get ring",
            Operation::AddNode => "add node",
            Operation::RemoveNode => "remove node",
            Operation::Rebalance => "rebalance",
            Operation::Decommission => "decommission",
            Operation::Repair => "repair",
            Operation::Backup => "backup",
            Operation::Metrics => "get metrics",
        })
    }
}

/// What can go wrong talking to a DistKV server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address cannot be made into a URI.
    #[error("invalid server address {server:?}: {reason}")]
    InvalidAddress { server: String, reason: String },
    /// The TLS settings do not work: a file missing or unreadable, a certificate without its
    /// key, a key that does not match.
    #[error("TLS: {0}")]
    Tls(#[from] distkv_tls::TlsError),
    /// No connection could be made within the timeout.
    #[error("failed to connect to server {server}: {detail}")]
    Connect { server: String, detail: String },
    /// The connection failed during a request.
    #[error("{op} failed: server {server} is unavailable: {detail}")]
    Unavailable {
        op: Operation,
        server: String,
        detail: String,
    },
    /// The server did not answer within the timeout.
    #[error("{op} failed: no answer from server {server} within {}", format_go_duration(*timeout))]
    Timeout {
        op: Operation,
        server: String,
        timeout: Duration,
    },
    /// The server does not implement the request (an older DistKV, such as the Go original,
    /// has no Scan or GetRing).
    #[error("{op} failed: server {server} does not support this request")]
    Unsupported { op: Operation, server: String },
    /// The server answered with a gRPC error status.
    #[error("{op} failed: server {server} returned {code}: {message}")]
    Status {
        op: Operation,
        server: String,
        /// The gRPC status code's name, e.g. `Internal`.
        code: String,
        message: String,
    },
    /// The server refused the put.
    #[error("put failed: {message}")]
    PutFailed { key: String, message: String },
    /// The server could not read the key.
    #[error("get failed: {message}")]
    GetFailed { key: String, message: String },
    /// The server refused the delete.
    #[error("delete failed: {message}")]
    DeleteFailed { key: String, message: String },
    /// A scan's page token did not advance, so following it would loop forever.
    #[error("scan failed: server returned the same page token {page_token:?} twice")]
    ScanStalled { page_token: String },
    /// The server refused to add the node.
    #[error("add node failed: {message}")]
    AddNodeFailed { node_id: String, message: String },
    /// The server refused to remove the node.
    #[error("remove node failed: {message}")]
    RemoveNodeFailed { node: String, message: String },
    /// The server refused to rebalance.
    #[error("rebalance failed: {message}")]
    RebalanceFailed { message: String },
    /// The node could not decommission.
    #[error("decommission failed: {message}")]
    DecommissionFailed { message: String },
    /// The node answered that it does not serve requests (yet).
    #[error("node not ready (HTTP {status}): {detail}")]
    NotReady { status: u16, detail: String },
    /// An HTTP request to the node's port got an answer other than 200.
    #[error("GET {path} from server {server} failed (HTTP {status}): {detail}")]
    HttpStatus {
        server: String,
        path: String,
        status: u16,
        detail: String,
    },
    /// The repair did not complete.
    #[error("repair failed: {message}")]
    RepairFailed { message: String },
    /// The node could not write the backup.
    #[error("backup failed: {message}")]
    BackupFailed { message: String },
}

impl ClientError {
    /// Whether the same request may succeed if sent again: the network or the deadline failed,
    /// not the request.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Unavailable { .. }
                | ClientError::Timeout { .. }
        )
    }

    /// Whether the server itself refused the request (it answered with `success = false`).
    pub fn is_rejected_by_server(&self) -> bool {
        matches!(
            self,
            ClientError::PutFailed { .. }
                | ClientError::GetFailed { .. }
                | ClientError::DeleteFailed { .. }
                | ClientError::AddNodeFailed { .. }
                | ClientError::RemoveNodeFailed { .. }
                | ClientError::RebalanceFailed { .. }
                | ClientError::DecommissionFailed { .. }
                | ClientError::RepairFailed { .. }
                | ClientError::BackupFailed { .. }
                | ClientError::NotReady { .. }
                | ClientError::HttpStatus { .. }
        )
    }

    /// Maps a gRPC status from a request to `server` to an error.
    pub(crate) fn from_status(
        op: Operation,
        server: &str,
        timeout: Duration,
        status: tonic::Status,
    ) -> Self {
        use tonic::Code;
        let server = server.to_string();
        match status.code() {
            Code::DeadlineExceeded => ClientError::Timeout {
                op,
                server,
                timeout,
            },
            // tonic reports its own client-side deadline as Cancelled "Timeout expired".
            Code::Cancelled if status.message().contains("Timeout expired") => {
                ClientError::Timeout {
                    op,
                    server,
                    timeout,
                }
            }
            Code::Unavailable => ClientError::Unavailable {
                op,
                server,
                detail: status_detail(&status),
            },
            // tonic's status for a connection that broke during the request (a server
            // killed or restarted, a reset): as unavailable as one that refused it. hyper
            // reports a request still waiting on a connection that closed as canceled.
            Code::Unknown if status.message().starts_with("transport error") => {
                ClientError::Unavailable {
                    op,
                    server,
                    detail: status_detail(&status),
                }
            }
            // hyper says only "operation was canceled"; what happened is in the source chain.
            Code::Cancelled if status_detail(&status).contains("connection closed") => {
                ClientError::Unavailable {
                    op,
                    server,
                    detail: status_detail(&status),
                }
            }
            Code::Unimplemented => ClientError::Unsupported { op, server },
            code => ClientError::Status {
                op,
                server,
                code: format!("{code:?}"),
                message: status_detail(&status),
            },
        }
    }
}

/// A status's message, with the transport error behind it when there is one.
fn status_detail(status: &tonic::Status) -> String {
    let mut detail = status.message().to_string();
    if let Some(source) = std::error::Error::source(status) {
        let chain = error_chain(source);
        if !chain.is_empty() && !detail.contains(&chain) {
            if detail.is_empty() {
                detail = chain;
            } else {
                detail = format!("{detail}: {chain}");
            }
        }
    }
    if detail.is_empty() {
        detail = "no details".to_string();
    }
    detail
}

/// An error and its sources as one line, `outer: inner: innermost`, skipping repeats (hyper and
/// tonic often wrap an error in one that prints the same text).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "localhost:8080";
    const TIMEOUT: Duration = Duration::from_secs(5);

    fn from(status: tonic::Status) -> ClientError {
        ClientError::from_status(Operation::Put, SERVER, TIMEOUT, status)
    }

    #[test]
    fn application_failures_read_like_the_original() {
        let err = ClientError::PutFailed {
            key: "k".into(),
            message: "quorum not reached: needed 2, got 1".into(),
        };
        assert_eq!(
            err.to_string(),
            "put failed: quorum not reached: needed 2, got 1"
        );
        assert!(err.is_rejected_by_server());
        assert!(!err.is_retryable());
    }

    #[test]
    fn connect_failure_names_the_server() {
        let err = ClientError::Connect {
            server: "127.0.0.1:1".into(),
            detail: "connection refused".into(),
        };
        assert_eq!(
            err.to_string(),
            "failed to connect to server 127.0.0.1:1: connection refused"
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn statuses_map_to_variants() {
        let err = from(tonic::Status::deadline_exceeded("slow"));
        assert!(matches!(err, ClientError::Timeout { .. }));
        assert_eq!(
            err.to_string(),
            "put failed: no answer from server localhost:8080 within 5s"
        );

        let err = from(tonic::Status::cancelled("Timeout expired"));
        assert!(matches!(err, ClientError::Timeout { .. }));

        let err = from(tonic::Status::unavailable("connection reset"));
        assert_eq!(
            err.to_string(),
            "put failed: server localhost:8080 is unavailable: connection reset"
        );
        assert!(err.is_retryable());

        // A connection that broke mid-request.
        let err = from(tonic::Status::unknown("transport error"));
        assert!(matches!(err, ClientError::Unavailable { .. }), "{err}");
        let err = from(tonic::Status::unknown("something else"));
        assert!(matches!(err, ClientError::Status { .. }), "{err}");
        // A request waiting on a connection that closed (the server was killed).
        let err = from(tonic::Status::cancelled(
            "operation was canceled: transport error: operation was canceled: connection closed",
        ));
        assert!(matches!(err, ClientError::Unavailable { .. }), "{err}");
        assert!(err.is_retryable());
        // The same as hyper reports it: the message says canceled, its source why.
        let mut status = tonic::Status::cancelled("operation was canceled");
        status.set_source(std::sync::Arc::new(std::io::Error::other(
            "transport error: operation was canceled: connection closed",
        )));
        let err = from(status);
        assert!(matches!(err, ClientError::Unavailable { .. }), "{err}");
        let err = from(tonic::Status::cancelled("the server gave up"));
        assert!(matches!(err, ClientError::Status { .. }), "{err}");

        let err = from(tonic::Status::unimplemented(""));
        assert_eq!(
            err.to_string(),
            "put failed: server localhost:8080 does not support this request"
        );

        let err = from(tonic::Status::internal("boom"));
        assert_eq!(
            err.to_string(),
            "put failed: server localhost:8080 returned Internal: boom"
        );
        assert!(!err.is_retryable());

        let err = from(tonic::Status::internal(""));
        assert_eq!(
            err.to_string(),
            "put failed: server localhost:8080 returned Internal: no details"
        );
    }

    #[test]
    fn operations_use_the_original_wording() {
        assert_eq!(Operation::BatchPut.to_string(), "batch put");
        assert_eq!(Operation::ClusterStatus.to_string(), "get status");
    }

    #[test]
    fn error_chain_skips_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner")]
        struct Inner(#[source] std::io::Error);
        let err = Outer(Inner(std::io::Error::other("inner")));
        assert_eq!(error_chain(&err), "outer: inner");
    }
}
