//! Connections to other nodes: one reusable HTTP/2 channel per peer address.
//!
//! Channels are created lazily and shared by every request to that peer; tonic reconnects a
//! broken channel on the next call (with backoff inside hyper's connector), so a restarted peer
//! is reached again without any bookkeeping here. Every call carries the request timeout, and a
//! peer that is down fails fast or times out without holding up calls to other peers. Channels
//! unused for `idle` are dropped by [`Peers::evict_idle`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use distkv_proto::internal::replica_client::ReplicaClient;
use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::error::{NodeError, Result};

pub struct Peers {
    channels: Mutex<HashMap<String, (Channel, Instant)>>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Peers {
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        Peers {
            channels: Mutex::new(HashMap::new()),
            connect_timeout,
            request_timeout,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// A client for the replica service of the node at `address`.
    pub fn replica(&self, address: &str) -> Result<ReplicaClient<Channel>> {
        let mut channels = self.channels.lock();
        if let Some((ch, used)) = channels.get_mut(address) {
            *used = Instant::now();
            return Ok(ReplicaClient::new(ch.clone()));
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| NodeError::Peer {
                peer: address.to_string(),
                message: format!("bad address: {e}"),
            })?
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let ch = endpoint.connect_lazy();
        channels.insert(address.to_string(), (ch.clone(), Instant::now()));
        Ok(ReplicaClient::new(ch))
    }

    /// Drops channels not used for `idle`.
    pub fn evict_idle(&self, idle: Duration) {
        self.channels
            .lock()
            .retain(|_, (_, used)| used.elapsed() < idle);
    }

    pub fn len(&self) -> usize {
        self.channels.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Turns a failed peer call into a node error naming the peer.
pub fn peer_error(address: &str, status: tonic::Status) -> NodeError {
    let message = match status.code() {
        tonic::Code::Unavailable => format!("unreachable: {}", status.message()),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => "timed out".to_string(),
        _ => status.message().to_string(),
    };
    NodeError::Peer {
        peer: address.to_string(),
        message,
    }
}
