//! The connection to one DistKV node and the requests it can carry.
//!
//! Any node can coordinate any request (Dynamo §4.1: a client may talk to any node, which then
//! routes to the key's preference list), so a client holds one channel to one node. The channel
//! is opened eagerly by [`Client::connect`], like the original's blocking dial, so a wrong
//! address fails at once with the address in the message. Every request carries the configured
//! timeout as its gRPC deadline.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use distkv_flags::format_go_duration;
use distkv_proto::distkv as pb;
use distkv_proto::distkv::admin_service_client::AdminServiceClient;
use distkv_proto::distkv::dist_kv_client::DistKvClient;
use tonic::transport::{Channel, Endpoint};

use crate::convert;
use crate::error::{ClientError, Operation, Result, error_chain};
use crate::types::{
    BackupInfo, BatchResult, ClusterStatus, Consistency, GetResult, PutResult, RepairResult,
    RingInfo, ScanOptions, ScanPage,
};

/// The server a client talks to unless told otherwise.
pub const DEFAULT_SERVER: &str = "localhost:8080";
/// The connect and per-request timeout unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The name a server certificate must carry unless told otherwise (the original's default).
pub const DEFAULT_TLS_SERVER_NAME: &str = "localhost";
/// The largest gRPC message the client sends or accepts: room for a page of large values or a
/// key with several large siblings (the engine accepts values up to 256 MiB).
pub const MAX_MESSAGE_BYTES: usize = 512 * 1024 * 1024;

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `host:port` of any node; a full URI (`http://host:port`) is accepted too.
    pub server: String,
    /// Bounds connecting and every request.
    pub timeout: Duration,
    /// TLS settings; `None` for plaintext.
    pub tls: Option<TlsConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            server: DEFAULT_SERVER.to_string(),
            timeout: DEFAULT_TIMEOUT,
            tls: None,
        }
    }
}

/// TLS settings, as the original client's `-tls-*` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM CA certificate that signed the server's certificate; `None` trusts the system's
    /// roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM client private key, for mutual TLS; needs `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry.
    pub server_name: String,
    /// Skip verifying the server's certificate chain and name (the server must still hold the
    /// key of the certificate it shows). For tests only.
    pub insecure_skip_verify: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_file: None,
            cert_file: None,
            key_file: None,
            server_name: DEFAULT_TLS_SERVER_NAME.to_string(),
            insecure_skip_verify: false,
        }
    }
}

impl TlsConfig {
    /// The rustls configuration (through `distkv-tls`, shared with the nodes).
    fn to_rustls(&self) -> Result<std::sync::Arc<rustls::ClientConfig>> {
        distkv_tls::ClientTls {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            server_name: None,
            insecure_skip_verify: self.insecure_skip_verify,
        }
        .client_config()
        .map_err(ClientError::from)
    }
}

/// A connection to one DistKV node. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    server: String,
    timeout: Duration,
    /// The TLS settings, if any (for hints when the server hangs up).
    tls: Option<TlsConfig>,
    kv: DistKvClient<Channel>,
    admin: AdminServiceClient<Channel>,
}

impl Client {
    /// Connects to `config.server`, waiting at most `config.timeout`.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let ClientConfig {
            server,
            timeout,
            tls,
        } = config;
        if server.trim().is_empty() {
            return Err(ClientError::InvalidAddress {
                server,
                reason: "the address is empty".to_string(),
            });
        }
        let uri = if server.contains("://") {
            server.clone()
        } else {
            // TLS is done by the connector below, not by tonic: the scheme stays http.
            format!("http://{server}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| ClientError::InvalidAddress {
                server: server.clone(),
                reason: error_chain(&e),
            })?
            // Each request carries its own deadline (`-timeout`, or none for the long admin
            // operations), so the channel has none.
            .connect_timeout(timeout);
        let connect = async {
            match &tls {
                Some(t) => {
                    let name = (!t.server_name.is_empty()).then(|| t.server_name.clone());
                    endpoint
                        .connect_with_connector(distkv_tls::connector(t.to_rustls()?, name))
                        .await
                        .map_err(|e| ClientError::Connect {
                            server: server.clone(),
                            detail: client_cert_hint(error_chain(&e), t),
                        })
                }
                None => endpoint.connect().await.map_err(|e| ClientError::Connect {
                    server: server.clone(),
                    detail: plaintext_hint(error_chain(&e)),
                }),
            }
        };
        let channel = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(ClientError::Connect {
                    server,
                    detail: format!("timed out after {}", format_go_duration(timeout)),
                });
            }
        };
        Ok(Client {
            kv: DistKvClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            admin: AdminServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            tls,
            server,
            timeout,
        })
    }

    /// The address this client was connected to, as given.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// This connection with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// A request for an operation that takes as long as the data it moves (decommission,
    /// removenode, repair, rebalance): no deadline beyond a day. Progress shows in
    /// [`Client::cluster_status`] meanwhile.
    fn long_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(LONG_OPERATION_TIMEOUT);
        request
    }

    fn status_error(&self, op: Operation, status: tonic::Status) -> ClientError {
        let e = ClientError::from_status(op, &self.server, self.timeout, status);
        // A server that hangs up at once most likely refused the connection's security: a
        // TLS server a plaintext client, or a mutual-TLS server a client without a valid
        // certificate. Say so.
        let hint = |m: String| match &self.tls {
            None => plaintext_hint(m),
            Some(t) => client_cert_hint(m, t),
        };
        match e {
            ClientError::Status {
                op,
                server,
                code,
                message,
            } => ClientError::Status {
                op,
                server,
                code,
                message: hint(message),
            },
            ClientError::Unavailable { op, server, detail } => ClientError::Unavailable {
                op,
                server,
                detail: hint(detail),
            },
            e => e,
        }
    }

    /// Stores `value` under `key`. With `context` from an earlier [`Client::get`], the new
    /// value supersedes exactly the versions that get returned (Dynamo §4.4); without it, the
    /// server treats the write as causally after nothing in particular.
    pub async fn put(
        &self,
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        consistency: Option<Consistency>,
        context: Option<Vec<u8>>,
    ) -> Result<PutResult> {
        let key = key.into();
        let (consistency_level, consistency_set) = convert::consistency_fields(consistency);
        let request = self.request(pb::PutRequest {
            key: key.clone(),
            value: value.into(),
            consistency_level,
            vector_clock: None,
            context: context.unwrap_or_default(),
            consistency_set,
        });
        let response = self
            .kv
            .clone()
            .put(request)
            .await
            .map_err(|s| self.status_error(Operation::Put, s))?
            .into_inner();
        if !response.success {
            return Err(ClientError::PutFailed {
                key,
                message: server_message(response.error_message),
            });
        }
        Ok(PutResult {
            clock: convert::clock(response.vector_clock),
            context: response.context,
        })
    }

    /// Reads `key`. A missing key is `found: false`, not an error.
    pub async fn get(
        &self,
        key: impl Into<String>,
        consistency: Option<Consistency>,
    ) -> Result<GetResult> {
        let key = key.into();
        let (consistency_level, consistency_set) = convert::consistency_fields(consistency);
        let request = self.request(pb::GetRequest {
            key: key.clone(),
            consistency_level,
            consistency_set,
        });
        let response = self
            .kv
            .clone()
            .get(request)
            .await
            .map_err(|s| self.status_error(Operation::Get, s))?
            .into_inner();
        if !response.error_message.is_empty() {
            return Err(ClientError::GetFailed {
                key,
                message: response.error_message,
            });
        }
        Ok(convert::get_result(response))
    }

    /// Deletes `key`; `context` as for [`Client::put`].
    pub async fn delete(
        &self,
        key: impl Into<String>,
        consistency: Option<Consistency>,
        context: Option<Vec<u8>>,
    ) -> Result<()> {
        let key = key.into();
        let (consistency_level, consistency_set) = convert::consistency_fields(consistency);
        let request = self.request(pb::DeleteRequest {
            key: key.clone(),
            consistency_level,
            context: context.unwrap_or_default(),
            consistency_set,
        });
        let response = self
            .kv
            .clone()
            .delete(request)
            .await
            .map_err(|s| self.status_error(Operation::Delete, s))?
            .into_inner();
        if !response.success {
            return Err(ClientError::DeleteFailed {
                key,
                message: server_message(response.error_message),
            });
        }
        Ok(())
    }

    /// Stores several pairs in one request. When a key appears twice the later value wins.
    /// A partial failure is reported in the result, not as an error.
    pub async fn batch_put(
        &self,
        items: Vec<(String, Vec<u8>)>,
        consistency: Option<Consistency>,
    ) -> Result<BatchResult> {
        let (consistency_level, consistency_set) = convert::consistency_fields(consistency);
        let items: HashMap<String, Vec<u8>> = items.into_iter().collect();
        let request = self.request(pb::BatchPutRequest {
            items,
            consistency_level,
            consistency_set,
        });
        let response = self
            .kv
            .clone()
            .batch_put(request)
            .await
            .map_err(|s| self.status_error(Operation::BatchPut, s))?
            .into_inner();
        let mut failed_keys = response.failed_keys;
        failed_keys.sort();
        Ok(BatchResult {
            success: response.success,
            error_message: response.error_message,
            failed_keys,
        })
    }

    /// Reads one page of a key range or prefix, in key order.
    pub async fn scan(&self, options: ScanOptions) -> Result<ScanPage> {
        let (consistency_level, consistency_set) = convert::consistency_fields(options.consistency);
        let request = self.request(pb::ScanRequest {
            start_key: options.start.unwrap_or_default(),
            end_key: options.end.unwrap_or_default(),
            prefix: options.prefix.unwrap_or_default(),
            limit: options.limit.unwrap_or(0),
            page_token: options.page_token.unwrap_or_default(),
            consistency_level,
            consistency_set,
        });
        let response = self
            .kv
            .clone()
            .scan(request)
            .await
            .map_err(|s| self.status_error(Operation::Scan, s))?
            .into_inner();
        Ok(ScanPage {
            items: response
                .items
                .into_iter()
                .filter(|kv| !kv.is_deleted)
                .map(|kv| (kv.key, kv.value))
                .collect(),
            next_page_token: Some(response.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    /// Reads every page of a scan, starting at `options.page_token`, and returns all pairs in
    /// key order. Use [`Client::scan`] to process a large range page by page instead.
    pub async fn scan_all(&self, mut options: ScanOptions) -> Result<Vec<(String, Vec<u8>)>> {
        let mut items = Vec::new();
        loop {
            let page = self.scan(options.clone()).await?;
            items.extend(page.items);
            match page.next_page_token {
                None => return Ok(items),
                Some(token) => {
                    check_progress(options.page_token.as_deref(), &token)?;
                    options.page_token = Some(token);
                }
            }
        }
    }

    /// The cluster's membership, health and metrics as the connected node sees them.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        let response = self
            .admin
            .clone()
            .get_cluster_status(self.request(pb::ClusterStatusRequest {}))
            .await
            .map_err(|s| self.status_error(Operation::ClusterStatus, s))?
            .into_inner();
        Ok(convert::cluster_status(response))
    }

    /// The hash ring and the N/R/W settings as the connected node sees them.
    pub async fn ring(&self) -> Result<RingInfo> {
        let response = self
            .admin
            .clone()
            .get_ring(self.request(pb::RingRequest {}))
            .await
            .map_err(|s| self.status_error(Operation::Ring, s))?
            .into_inner();
        Ok(convert::ring(response))
    }

    /// Asks the cluster to add a node with `virtual_nodes` tokens on the ring.
    pub async fn add_node(
        &self,
        node_id: impl Into<String>,
        address: impl Into<String>,
        virtual_nodes: u32,
    ) -> Result<()> {
        let node_id = node_id.into();
        let request = self.request(pb::AddNodeRequest {
            node_id: node_id.clone(),
            node_address: address.into(),
            virtual_nodes: i32::try_from(virtual_nodes).unwrap_or(i32::MAX),
        });
        let response = self
            .admin
            .clone()
            .add_node(request)
            .await
            .map_err(|s| self.status_error(Operation::AddNode, s))?
            .into_inner();
        if !response.success {
            return Err(ClientError::AddNodeFailed {
                node_id,
                message: server_message(response.error_message),
            });
        }
        Ok(())
    }

    /// Asks the cluster to remove a node, named by address or node id.
    pub async fn remove_node(&self, node: impl Into<String>) -> Result<()> {
        let node = node.into();
        let request = self.long_request(pb::RemoveNodeRequest {
            node_address: node.clone(),
        });
        let response = self
            .admin
            .clone()
            .remove_node(request)
            .await
            .map_err(|s| self.status_error(Operation::RemoveNode, s))?
            .into_inner();
        if !response.success {
            return Err(ClientError::RemoveNodeFailed {
                node,
                message: server_message(response.error_message),
            });
        }
        Ok(())
    }

    /// Asks the node to move keys to their current owners; returns how many keys moved.
    pub async fn rebalance(&self, force: bool) -> Result<u64> {
        let response = self
            .admin
            .clone()
            .rebalance(self.long_request(pb::RebalanceRequest { force }))
            .await
            .map_err(|s| self.status_error(Operation::Rebalance, s))?
            .into_inner();
        if !response.success {
            return Err(ClientError::RebalanceFailed {
                message: server_message(response.error_message),
            });
        }
        Ok(u64::try_from(response.keys_moved).unwrap_or(0))
    }

    /// Asks the connected node to stream its ranges to their next owners and leave the
    /// cluster; answers when it has left. Returns the keys it moved.
    pub async fn decommission(&self) -> Result<u64> {
        let response = self
            .admin
            .clone()
            .decommission(self.long_request(pb::DecommissionRequest {}))
            .await
            .map_err(|s| self.status_error(Operation::Decommission, s))?
            .into_inner();
        if !response.success {
            return Err(ClientError::DecommissionFailed {
                message: server_message(response.error_message),
            });
        }
        Ok(response.keys_moved)
    }

    /// Asks the node's `/ready` endpoint (over HTTP on the same port, with the same TLS
    /// settings) whether it serves requests: its HTTP status code and body.
    pub async fn ready(&self) -> Result<(u16, String)> {
        self.http_get(Operation::ClusterStatus, "/ready").await
    }

    /// The node's Prometheus metrics: the body of its `/metrics` endpoint (OpenMetrics text,
    /// over HTTP on the same port, with the same TLS settings). Any answer but 200 is a
    /// [`ClientError::HttpStatus`].
    pub async fn metrics(&self) -> Result<String> {
        let path = "/metrics";
        match self.http_get(Operation::Metrics, path).await? {
            (200, body) => Ok(body),
            (status, body) => Err(ClientError::HttpStatus {
                server: self.server.clone(),
                path: path.to_string(),
                status,
                detail: body.lines().next().unwrap_or("").to_string(),
            }),
        }
    }

    /// `GET path` over HTTP/1.1 on the node's port (gRPC and HTTP share it), with the same
    /// TLS settings as the gRPC channel, bounded by the timeout: the status code and the body.
    async fn http_get(&self, op: Operation, path: &str) -> Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self
            .server
            .rsplit_once(':')
            .map_or(self.server.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.server
        );
        let connect_error = |e: std::io::Error| ClientError::Connect {
            server: self.server.clone(),
            detail: e.to_string(),
        };
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(&self.server)
                .await
                .map_err(connect_error)?;
            let mut raw = Vec::new();
            match &self.tls {
                None => {
                    let mut s = tcp;
                    s.write_all(request.as_bytes())
                        .await
                        .map_err(connect_error)?;
                    s.read_to_end(&mut raw).await.map_err(connect_error)?;
                }
                Some(t) => {
                    let mut config = (*t.to_rustls()?).clone();
                    config.alpn_protocols = vec![b"http/1.1".to_vec()];
                    let name = if t.server_name.is_empty() {
                        host.clone()
                    } else {
                        t.server_name.clone()
                    };
                    let name = rustls::pki_types::ServerName::try_from(name).map_err(|e| {
                        ClientError::Connect {
                            server: self.server.clone(),
                            detail: format!("bad TLS server name: {e}"),
                        }
                    })?;
                    let mut s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                        .connect(name, tcp)
                        .await
                        .map_err(connect_error)?;
                    s.write_all(request.as_bytes())
                        .await
                        .map_err(connect_error)?;
                    // A peer closing TLS without close_notify still ends the response.
                    if let Err(e) = s.read_to_end(&mut raw).await
                        && raw.is_empty()
                    {
                        return Err(connect_error(e));
                    }
                }
            }
            let (code, body) = parse_http_response(&raw).ok_or_else(|| ClientError::Connect {
                server: self.server.clone(),
                detail: format!("no HTTP answer from {path}"),
            })?;
            Ok((code, String::from_utf8_lossy(&body).trim().to_string()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Timeout {
                    op,
                    server: self.server.clone(),
                    timeout: self.timeout,
                })
            })
    }

    /// Runs anti-entropy on the connected node now, with every replica it shares ranges with.
    pub async fn repair(&self) -> Result<RepairResult> {
        let response = self
            .admin
            .clone()
            .repair(self.long_request(pb::RepairRequest {}))
            .await
            .map_err(|s| self.status_error(Operation::Repair, s))?
            .into_inner();
        if !response.success {
            return Err(ClientError::RepairFailed {
                message: server_message(response.error_message),
            });
        }
        Ok(RepairResult {
            peers: response.peers,
            keys_compared: response.keys_compared,
            keys_repaired: response.keys_repaired,
        })
    }

    /// Asks the connected node for a backup of its data, named `name` (empty: the node's UTC
    /// time); it is written on the node, in `<data-dir>/backups/<name>`.
    pub async fn backup(&self, name: impl Into<String>) -> Result<BackupInfo> {
        let response = self
            .admin
            .clone()
            .backup(self.long_request(pb::BackupRequest { name: name.into() }))
            .await
            .map_err(|s| self.status_error(Operation::Backup, s))?
            .into_inner();
        if !response.success {
            return Err(ClientError::BackupFailed {
                message: server_message(response.error_message),
            });
        }
        Ok(BackupInfo {
            name: response.name,
            path: response.path,
            node_id: response.node_id,
            created: response.created,
            files: response.files,
            bytes: response.bytes,
        })
    }
}

/// The status code and body of a whole HTTP/1.1 response (read to the connection's close),
/// with a chunked body decoded; `None` when it is not one.
fn parse_http_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    if !status_line.starts_with("HTTP/") {
        return None;
    }
    let code = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    if !chunked {
        return Some((code, body.to_vec()));
    }
    // Each chunk: its size in hex (maybe with extensions after `;`), CRLF, the bytes, CRLF;
    // a chunk of size 0 ends the body.
    let mut decoded = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&rest[..eol]).ok()?;
        let size_hex = size_field.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some((code, decoded));
        }
        decoded.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// The deadline of the long admin operations.
pub const LONG_OPERATION_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A connection error of a plaintext client, with a hint when the server may want TLS (it
/// closes a plaintext connection at once).
fn plaintext_hint(detail: String) -> String {
    // A DistKV node says so itself (HTTP/2 GOAWAY, INADEQUATE_SECURITY, with this reason).
    if detail.contains("node requires TLS") {
        return "the server requires TLS and refused this plaintext connection: use -tls-enabled \
                (and -tls-ca-file for a private CA)"
            .to_string();
    }
    if closed_at_once(&detail) {
        format!(
            "{detail} (the server closed the connection: does it require TLS? try -tls-enabled)"
        )
    } else {
        detail
    }
}

fn closed_at_once(detail: &str) -> bool {
    let d = detail.to_lowercase();
    [
        "connection reset",
        "connection closed",
        "broken pipe",
        "unexpected eof",
        "operation was canceled",
    ]
    .iter()
    .any(|m| d.contains(m))
}

/// A TLS client's error, with a hint when a mutual-TLS server may have refused it.
fn client_cert_hint(detail: String, tls: &TlsConfig) -> String {
    if !closed_at_once(&detail) && !detail.contains("CertificateRequired") {
        return detail;
    }
    if tls.cert_file.is_none() {
        format!(
            "{detail} (the server may require a client certificate: -tls-cert-file and -tls-key-file)"
        )
    } else {
        format!(
            "{detail} (the server may not accept this client certificate: is it signed by the server's -tls-ca-file, and still valid?)"
        )
    }
}

/// A failed response's message, or a stand-in when the server sent none.
fn server_message(message: String) -> String {
    if message.is_empty() {
        "the server gave no reason".to_string()
    } else {
        message
    }
}

/// Refuses a page token that repeats the one just used: following it would loop forever.
pub(crate) fn check_progress(previous: Option<&str>, next: &str) -> Result<()> {
    if previous == Some(next) {
        return Err(ClientError::ScanStalled {
            page_token: next.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses_are_parsed_with_or_without_chunks() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(parse_http_response(plain), Some((200, b"hello".to_vec())));
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\nwait\r\nB;ext=1\r\n, not ready\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_response(chunked),
            Some((503, b"wait, not ready".to_vec()))
        );
        let empty = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_http_response(empty), Some((404, Vec::new())));
        // Not HTTP (an HTTP/2-only server's settings frame), cut short, or a bad chunk size.
        assert_eq!(parse_http_response(b"\x00\x00\x12\x04\x00\r\n\r\n"), None);
        assert_eq!(parse_http_response(b"HTTP/1.1 200 OK\r\ncontent-"), None);
        let truncated = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nshort";
        assert_eq!(parse_http_response(truncated), None);
        let bad = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(parse_http_response(bad), None);
    }

    #[test]
    fn defaults_match_the_original_client() {
        let config = ClientConfig::default();
        assert_eq!(config.server, "localhost:8080");
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(config.tls, None);
        assert_eq!(TlsConfig::default().server_name, "localhost");
    }

    #[test]
    fn repeated_page_token_is_refused() {
        assert!(check_progress(None, "a").is_ok());
        assert!(check_progress(Some("a"), "b").is_ok());
        assert!(matches!(
            check_progress(Some("b"), "b"),
            Err(ClientError::ScanStalled { page_token }) if page_token == "b"
        ));
    }

    #[test]
    fn empty_server_message_gets_a_stand_in() {
        assert_eq!(server_message(String::new()), "the server gave no reason");
        assert_eq!(server_message("disk full".into()), "disk full");
    }

    #[tokio::test]
    async fn empty_address_is_refused_before_dialing() {
        let err = Client::connect(ClientConfig {
            server: " ".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ClientError::InvalidAddress { .. }), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_names_the_server() {
        // Port 1 on loopback: nothing listens there, so the dial is refused at once.
        let err = Client::connect(ClientConfig {
            server: "127.0.0.1:1".into(),
            timeout: Duration::from_secs(2),
            tls: None,
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("failed to connect to server 127.0.0.1:1: "),
            "{err}"
        );
    }

    #[tokio::test]
    async fn missing_ca_file_is_named() {
        let err = Client::connect(ClientConfig {
            server: "127.0.0.1:1".into(),
            timeout: Duration::from_secs(1),
            tls: Some(TlsConfig {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("TLS: cannot read /nonexistent/ca.pem: "),
            "{err}"
        );
    }

    #[tokio::test]
    async fn certificate_without_key_is_refused() {
        let dir = std::env::temp_dir();
        let err = Client::connect(ClientConfig {
            server: "127.0.0.1:1".into(),
            timeout: Duration::from_secs(1),
            tls: Some(TlsConfig {
                ca_file: None,
                cert_file: Some(dir.join("cert.pem")),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "TLS: a client certificate (-tls-cert-file) needs its key (-tls-key-file)"
        );
    }
}
