//! Connections to other nodes: one reusable HTTP/2 channel per peer address.
//!
//! Channels are created lazily and shared by every request to that peer; tonic reconnects a
//! broken channel on the next call, so a restarted peer is reached again without bookkeeping
//! of its own. Dialling a peer that is down is not repeated on every call, though: after a
//! call finds a peer unreachable, calls to it fail at once for a backoff period that doubles
//! with each further failure (from [`BACKOFF_MIN`] up to [`BACKOFF_MAX`]) and starts again
//! from the minimum once the peer has gone [`BACKOFF_RESET`] without failing. Every call
//! carries a timeout, and a peer that is down fails fast or times out without holding up
//! calls to other peers. Channels unused for a while are dropped by [`Peers::evict_idle`].

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use distkv_proto::internal::replica_client::ReplicaClient;
use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::error::{NodeError, PeerFailure, Result};
use crate::stream::{Counted, Stream};

/// The first backoff after a peer was found unreachable.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A peer that has not failed for this long starts again from [`BACKOFF_MIN`].
pub const BACKOFF_RESET: Duration = Duration::from_secs(30);

/// When calls to an unreachable peer may dial it again.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    failed_at: Instant,
    wait: Duration,
}

/// The message limit of a `Peers` made without [`Peers::with_max_message`].
const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

pub struct Peers {
    channels: Mutex<HashMap<String, (Channel, Instant)>>,
    backoff: Mutex<HashMap<String, Backoff>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    /// With TLS on: how this node dials its peers (showing its own certificate and checking
    /// theirs against its CA). No plaintext channel is made then.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Calls that timed out.
    timeouts: AtomicU64,
    /// Connections made to peers and the bytes that went over them.
    traffic: Arc<Traffic>,
    /// Largest message sent to or accepted from a peer (-max-message-size).
    max_message: usize,
}

impl Peers {
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        Peers {
            channels: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            connect_timeout,
            request_timeout,
            tls: None,
            timeouts: AtomicU64::new(0),
            traffic: Arc::default(),
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }

    /// Sends and accepts peer messages of up to `bytes` (gRPC's default is 4 MiB, less than a
    /// value of the largest size with its versions).
    pub fn with_max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    fn client(&self, ch: Channel) -> ReplicaClient<Channel> {
        ReplicaClient::new(ch)
            .max_decoding_message_size(self.max_message)
            .max_encoding_message_size(self.max_message)
    }

    /// Dials peers over TLS with `config`.
    pub fn with_tls(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The largest message sent to or accepted from a peer.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// A client for background work (gossip, hints, streaming) with the node at `address`:
    /// fails at once while the peer is in its backoff period. Client requests use
    /// [`Peers::replica`] instead: they skip nodes the failure detector holds down, and must
    /// not fail because of a backoff that a restart of the peer has made stale.
    pub fn background(&self, address: &str) -> Result<ReplicaClient<Channel>> {
        if let Some(b) = self.backoff.lock().get(address)
            && b.failed_at.elapsed() < b.wait
        {
            return Err(NodeError::Peer {
                peer: address.to_string(),
                failure: PeerFailure::BackingOff(b.wait - b.failed_at.elapsed()),
            });
        }
        self.replica(address)
    }

    /// Ends the backoff of the peer at `address`: it was just heard from.
    pub fn heard_from(&self, address: &str) {
        self.backoff.lock().remove(address);
    }

    /// A client for the replica service of the node at `address`.
    pub fn replica(&self, address: &str) -> Result<ReplicaClient<Channel>> {
        let mut channels = self.channels.lock();
        if let Some((ch, used)) = channels.get_mut(address) {
            *used = Instant::now();
            return Ok(self.client(ch.clone()));
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| NodeError::Peer {
                peer: address.to_string(),
                failure: PeerFailure::BadAddress(e.to_string()),
            })?
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let ch = endpoint.connect_with_connector_lazy(Dialer {
            tls: self
                .tls
                .as_ref()
                .map(|config| distkv_tls::connector(config.clone(), None)),
            traffic: Arc::clone(&self.traffic),
        });
        channels.insert(address.to_string(), (ch.clone(), Instant::now()));
        Ok(self.client(ch))
    }

    /// Drops channels not used for `idle`.
    pub fn evict_idle(&self, idle: Duration) {
        self.channels
            .lock()
            .retain(|_, (_, used)| used.elapsed() < idle);
    }

    /// Calls to peers that timed out so far.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.channels.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Peers {
    /// Turns a failed call to the peer at `address` into a node error naming it, and starts or
    /// extends the peer's backoff when it could not be reached.
    pub fn error(&self, address: &str, status: tonic::Status) -> NodeError {
        let failure = PeerFailure::from_status(&status);
        if matches!(failure, PeerFailure::TimedOut) {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(failure, PeerFailure::Unreachable(_)) {
            let mut backoff = self.backoff.lock();
            let next = match backoff.get(address) {
                Some(b) if b.failed_at.elapsed() < BACKOFF_RESET => (b.wait * 2).min(BACKOFF_MAX),
                _ => BACKOFF_MIN,
            };
            backoff.insert(
                address.to_string(),
                Backoff {
                    failed_at: Instant::now(),
                    wait: next,
                },
            );
        }
        NodeError::Peer {
            peer: address.to_string(),
            failure,
        }
    }
}

impl PeerFailure {
    /// How a failed call's status reads as a peer failure.
    pub fn from_status(status: &tonic::Status) -> PeerFailure {
        match status.code() {
            tonic::Code::Unavailable => PeerFailure::Unreachable(status.message().to_string()),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => PeerFailure::TimedOut,
            code => PeerFailure::Refused {
                code,
                message: status.message().to_string(),
            },
        }
    }
}

/// Connections this node made to its peers, and the bytes it sent and received on them.
#[derive(Debug, Default)]
pub struct Traffic {
    pub connections: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

impl Peers {
    /// Connections made to peers and the bytes over them, since start.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }
}

/// Dials a peer (TCP without delay, then TLS when the node uses it) and counts what goes over
/// the connection.
#[derive(Clone)]
struct Dialer {
    tls: Option<distkv_tls::Connector>,
    traffic: Arc<Traffic>,
}

impl tower::Service<http::Uri> for Dialer {
    type Response = hyper_util::rt::TokioIo<Counted<Arc<Traffic>>>;
    type Error = io::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        let traffic = Arc::clone(&self.traffic);
        Box::pin(async move {
            let io = match tls {
                Some(tls) => Stream::TlsClient(Box::new(tls.dial(uri).await?)),
                None => {
                    let (host, port) = distkv_tls::host_and_port(&uri, 80)?;
                    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                    tcp.set_nodelay(true)?;
                    Stream::Plain(tcp)
                }
            };
            traffic.connections.fetch_add(1, Ordering::Relaxed);
            Ok(hyper_util::rt::TokioIo::new(Counted::new(io, traffic)))
        })
    }
}

impl crate::stream::Tally for Arc<Traffic> {
    fn received(&self, bytes: u64) {
        self.received.fetch_add(bytes, Ordering::Relaxed);
    }

    fn sent(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_peer_is_backed_off_and_other_failures_are_not() {
        let peers = Peers::new(Duration::from_secs(1), Duration::from_secs(1));
        let e = peers.error("a:1", tonic::Status::unavailable("connection refused"));
        assert_eq!(e.to_string(), "peer a:1: unreachable: connection refused");
        let Err(NodeError::Peer {
            failure: PeerFailure::BackingOff(left),
            ..
        }) = peers.background("a:1")
        else {
            panic!("a peer just found unreachable is backed off");
        };
        assert!(left <= BACKOFF_MIN);
        // Client requests still dial it.
        assert!(peers.replica("a:1").is_ok());
        // Each further failure doubles the wait, up to the maximum.
        for _ in 0..10 {
            peers.error("a:1", tonic::Status::unavailable("refused"));
        }
        assert_eq!(peers.backoff.lock()["a:1"].wait, BACKOFF_MAX);
        // A timeout or an error answer from the peer proves nothing about reachability.
        let e = peers.error("b:1", tonic::Status::deadline_exceeded("late"));
        assert_eq!(e.to_string(), "peer b:1: timed out");
        peers.error("b:1", tonic::Status::internal("disk full"));
        assert!(peers.background("b:1").is_ok());
        // Hearing from a peer ends its backoff.
        peers.heard_from("a:1");
        assert!(peers.background("a:1").is_ok());
    }
}
