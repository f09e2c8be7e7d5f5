//! The coordinator's seams in a running node: [`GrpcTransport`] reaches the local replica with a
//! direct call into its [`Store`] and the others over the `Replica` gRPC service, one shared
//! HTTP/2 channel per peer ([`Peers`]); [`StoreReplica`] is the node's own replica (its store,
//! its hints, its dots).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use distkv_cluster::{Consistency, Dot, NodeId, Siblings};
use distkv_proto::internal;
use distkv_proto::internal::replica_client::ReplicaClient;
use parking_lot::{Mutex, RwLock};
use tonic::transport::Channel;

use super::{LocalReplica, Transport, Write, WriteContext};
use crate::error::{NodeError, Result};
use crate::hints::HintStore;
use crate::membership::Rings;
use crate::peers::Peers;
use crate::storage::Store;

/// Keys of this node's own bookkeeping in the hint store (no `\0`, so never a hint).
const DOT_HWM_KEY: &[u8] = b"meta:dot-high-water-mark";
/// Dots reserved durably at a time.
const DOT_RESERVE: u64 = 100_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Keeps `versions` as a hint for `target` in `hints` (a synced write: on the blocking pool).
async fn add_hint(hints: HintStore, target: String, key: String, versions: Siblings) -> Result<()> {
    tokio::task::spawn_blocking(move || hints.add(&target, &key, &versions))
        .await
        .map_err(|_| NodeError::ShuttingDown)?
}

/// Replicas over gRPC; the local one by direct calls.
pub struct GrpcTransport {
    local: NodeId,
    store: Store,
    hints: HintStore,
    peers: Arc<Peers>,
    /// The node's rings, for its members' addresses.
    rings: Arc<RwLock<Rings>>,
}

/// How a call reaches its replica.
enum Route {
    Local,
    Remote {
        client: ReplicaClient<Channel>,
        address: String,
    },
}

impl GrpcTransport {
    pub fn new(
        local: NodeId,
        store: Store,
        hints: HintStore,
        peers: Arc<Peers>,
        rings: Arc<RwLock<Rings>>,
    ) -> Self {
        GrpcTransport {
            local,
            store,
            hints,
            peers,
            rings,
        }
    }

    fn route(&self, to: &str) -> Result<Route> {
        if to == self.local {
            return Ok(Route::Local);
        }
        let address = self
            .rings
            .read()
            .addresses
            .get(to)
            .cloned()
            .ok_or_else(|| NodeError::UnknownNode(to.to_string()))?;
        let client = self.peers.replica(&address)?;
        Ok(Route::Remote { client, address })
    }
}

impl Transport for GrpcTransport {
    fn write(
        &self,
        to: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        // The remote form is encoded now, so the versions are not copied for it.
        let call = self.route(to).map(|route| match route {
            Route::Local => Err(versions.clone()),
            Route::Remote { client, address } => Ok((client, address, versions.encode())),
        });
        let (store, peers) = (self.store.clone(), Arc::clone(&self.peers));
        let (key, coordinator) = (key.to_string(), self.local.clone());
        async move {
            match call? {
                Err(versions) => store.merge(key, versions).await.map(drop),
                Ok((mut client, address, versions)) => client
                    .write(internal::ReplicaWriteRequest {
                        key,
                        versions,
                        coordinator,
                    })
                    .await
                    .map(drop)
                    .map_err(|s| peers.error(&address, s)),
            }
        }
    }

    fn read(&self, to: &str, key: &str) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let route = self.route(to);
        let (store, peers) = (self.store.clone(), Arc::clone(&self.peers));
        let key = key.to_string();
        async move {
            match route? {
                Route::Local => store.read(key).await,
                Route::Remote {
                    mut client,
                    address,
                } => {
                    let reply = client
                        .read(internal::ReplicaReadRequest { key })
                        .await
                        .map_err(|s| peers.error(&address, s))?
                        .into_inner();
                    if !reply.found {
                        return Ok(Siblings::new());
                    }
                    Siblings::decode(&reply.versions)
                        .map_err(|e| NodeError::bad_reply(&address, format!("versions: {e}")))
                }
            }
        }
    }

    fn hint(
        &self,
        via: &str,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let route = self.route(via);
        let (hints, peers) = (self.hints.clone(), Arc::clone(&self.peers));
        let (target, key) = (target.to_string(), key.to_string());
        let versions = versions.clone();
        async move {
            match route? {
                Route::Local => add_hint(hints, target, key, versions).await,
                Route::Remote {
                    mut client,
                    address,
                } => client
                    .store_hint(internal::StoreHintRequest {
                        target_node: target,
                        key,
                        versions: versions.encode(),
                    })
                    .await
                    .map(drop)
                    .map_err(|s| peers.error(&address, s)),
            }
        }
    }

    fn forward(
        &self,
        to: &str,
        write: &Write,
        timeout: Duration,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let route = self.route(to);
        let peers = Arc::clone(&self.peers);
        let to = to.to_string();
        let request = coordinate_request(write);
        async move {
            let (mut client, address) = match route? {
                Route::Remote { client, address } => (client, address),
                // The coordinator forwards only to other replicas.
                Route::Local => {
                    return Err(NodeError::BadMessage(format!(
                        "a write cannot be forwarded to this node itself ({to})"
                    )));
                }
            };
            let mut call = tonic::Request::new(request);
            call.set_timeout(timeout);
            let reply = client
                .coordinate(call)
                .await
                .map_err(|s| peers.error(&address, s))?
                .into_inner();
            if !reply.error_message.is_empty() {
                return Err(NodeError::Coordinator {
                    peer: to,
                    message: reply.error_message,
                });
            }
            Siblings::decode(&reply.versions)
                .map_err(|e| NodeError::bad_reply(&address, format!("versions: {e}")))
        }
    }
}

/// The internal request that hands `write` to another replica to coordinate.
fn coordinate_request(write: &Write) -> internal::CoordinateRequest {
    let (consistency_level, consistency_set) = match write.level {
        None => (0, false),
        Some(Consistency::One) => (0, true),
        Some(Consistency::Quorum) => (1, true),
        Some(Consistency::All) => (2, true),
    };
    internal::CoordinateRequest {
        key: write.key.clone(),
        is_delete: write.value.is_none(),
        value: write.value.clone().unwrap_or_default(),
        context: match &write.context {
            WriteContext::Given(c) => c.encode(),
            WriteContext::Coordinator => Vec::new(),
        },
        consistency_level,
        consistency_set,
        coordinator_context: write.context == WriteContext::Coordinator,
    }
}

/// The node's own replica: its store, its hints and the dots of the writes it coordinates.
pub struct StoreReplica {
    id: NodeId,
    store: Store,
    hints: HintStore,
    dots: Dots,
}

impl StoreReplica {
    /// Opens the dot counter kept in `hints` (it never repeats a dot, across restarts).
    pub fn open(id: NodeId, store: Store, hints: HintStore) -> Result<Self> {
        let dots = Dots::open(&hints)?;
        Ok(StoreReplica {
            id,
            store,
            hints,
            dots,
        })
    }
}

impl LocalReplica for StoreReplica {
    fn id(&self) -> &str {
        &self.id
    }

    fn next_dot(&self) -> Result<Dot> {
        Ok(Dot {
            node: self.id.clone(),
            counter: self.dots.next(&self.hints)?,
        })
    }

    fn apply(
        &self,
        key: &str,
        dot: Dot,
        context: &WriteContext,
        value: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let store = self.store.clone();
        let (key, context) = (key.to_string(), context.clone());
        async move {
            let context = match context {
                WriteContext::Given(c) => c,
                // What this replica holds as the request arrives: every write acknowledged
                // before the client sent this one (this node coordinated it), and not a write
                // that is racing this one, which stays beside it as a sibling.
                WriteContext::Coordinator => store.read(key.clone()).await?.context(),
            };
            store.apply_write(key, dot, context, value, now_ms()).await
        }
    }

    fn keep_hint(
        &self,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        add_hint(
            self.hints.clone(),
            target.to_string(),
            key.to_string(),
            versions.clone(),
        )
    }
}

/// The counters of a node's dots: past the wall clock at start (in microseconds) and past what
/// an earlier run reserved, which is kept in the hint store a block ahead of use.
struct Dots {
    counter: AtomicU64,
    reserved: Mutex<u64>,
}

impl Dots {
    fn open(hints: &HintStore) -> Result<Dots> {
        let hwm = match hints.db().get(DOT_HWM_KEY)? {
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0),
            None => 0,
        };
        let start = hwm.max(now_ms() * 1000);
        let dots = Dots {
            counter: AtomicU64::new(start),
            reserved: Mutex::new(start),
        };
        dots.reserve(hints, start)?;
        Ok(dots)
    }

    fn reserve(&self, hints: &HintStore, upto: u64) -> Result<()> {
        let mut reserved = self.reserved.lock();
        if upto >= *reserved {
            let next = upto + DOT_RESERVE;
            hints.db().put_opt(
                DOT_HWM_KEY,
                next.to_string().as_bytes(),
                &distkv_lsm::WriteOptions { sync: true },
            )?;
            *reserved = next;
        }
        Ok(())
    }

    /// A counter never used before by this node, across restarts.
    fn next(&self, hints: &HintStore) -> Result<u64> {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        if counter >= *self.reserved.lock() {
            self.reserve(hints, counter)?;
        }
        Ok(counter)
    }
}
