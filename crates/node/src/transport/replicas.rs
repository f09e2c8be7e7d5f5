//! The coordinator's replica calls in a running node: [`GrpcTransport`] reaches the local
//! replica with a direct call into its [`Store`](crate::storage::Store) and the others over the
//! `Replica` gRPC service, one shared HTTP/2 channel per peer ([`Peers`]). The node's own replica is
//! [`crate::coordinator::replica::StoreReplica`].
//!
//! Size: the replica calls and the batcher that carries them are one piece (a call's answer is
//! its slot in a batch), so they share the file.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distkv_cluster::{NodeId, Siblings};
use distkv_proto::internal;
use distkv_proto::internal::replica_client::ReplicaClient;
use parking_lot::Mutex;
use tonic::transport::Channel;

use super::batching::{CallQueues, Gathered, Queued, Turn};
use super::convert::{read_from_proto, write_to_proto};
use super::grpc::GrpcTransport;
use super::{REPAIR_READ_DELAY, ReplicaTransport, Write};
use crate::error::{BadMessage, NodeError, PeerFailure, Result};
use crate::peers::Peers;

/// What sends replica writes and reads: the peers' channels and their call queues.
pub(super) struct Batcher {
    peers: Arc<Peers>,
    writes: CallQueues<(String, Vec<u8>), ()>,
    reads: CallQueues<String, Siblings>,
    /// Reads for read repair only, gathered for up to [`REPAIR_READ_DELAY`].
    repair_reads: Gathered<String, Siblings>,
    /// Peers that answered a batch call with "unimplemented" (an older release), and when:
    /// single calls only, for [`SINGLE_ONLY_FOR`] (a rolling upgrade may bring batches).
    single_only: Mutex<HashMap<String, Instant>>,
    /// Bytes of requests one batch call carries at most: half the peer message limit.
    batch_bytes: usize,
    local: NodeId,
}

/// How long a peer that does not know batch calls gets single calls before it is tried again.
const SINGLE_ONLY_FOR: Duration = Duration::from_secs(60);
/// Requests one batch call carries at most.
const MAX_BATCH: usize = 256;

/// How a call reaches its replica.
enum Route {
    Local,
    Remote {
        client: ReplicaClient<Channel>,
        address: String,
    },
}

impl Batcher {
    pub(super) fn new(peers: Arc<Peers>, local: NodeId) -> Self {
        Batcher {
            batch_bytes: peers.max_message() / 2,
            peers,
            writes: CallQueues::default(),
            reads: CallQueues::default(),
            repair_reads: Gathered::default(),
            single_only: Mutex::new(HashMap::new()),
            local,
        }
    }
}

impl GrpcTransport {
    fn peers(&self) -> &Arc<Peers> {
        &self.batcher.peers
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
        let client = self.peers().replica(&address)?;
        Ok(Route::Remote { client, address })
    }
}

impl GrpcTransport {
    /// `to`'s versions of `key`: the local store directly, a peer in its read batches, or,
    /// for read repair only (`repair`), in its gathered repair reads.
    fn read_from(
        &self,
        to: &str,
        key: &str,
        repair: bool,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        let route = self.route(to);
        let (store, batcher) = (self.store.clone(), Arc::clone(&self.batcher));
        let key = key.to_string();
        async move {
            match route? {
                Route::Local => store.read(key).await,
                Route::Remote { client, address } if repair => {
                    batcher.repair_read(client, address, key).await
                }
                Route::Remote { client, address } => {
                    batcher.call::<Reads>(client, address, key).await
                }
            }
        }
    }
}

impl ReplicaTransport for GrpcTransport {
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
        let (store, batcher) = (self.store.clone(), Arc::clone(&self.batcher));
        let key = key.to_string();
        async move {
            match call? {
                Err(versions) => store.merge(key, versions).await.map(drop),
                Ok((client, address, versions)) => {
                    batcher
                        .call::<Writes>(client, address, (key, versions))
                        .await
                }
            }
        }
    }

    fn read(&self, to: &str, key: &str) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        self.read_from(to, key, false)
    }

    fn repair_read(
        &self,
        to: &str,
        key: &str,
    ) -> impl Future<Output = Result<Siblings>> + Send + 'static {
        self.read_from(to, key, true)
    }

    fn hint(
        &self,
        via: &str,
        target: &str,
        key: &str,
        versions: &Siblings,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let route = self.route(via);
        let (hints, peers) = (self.hints.clone(), Arc::clone(self.peers()));
        let (target, key) = (target.to_string(), key.to_string());
        let versions = versions.clone();
        async move {
            match route? {
                Route::Local => hints.add_async(&target, &key, &versions).await,
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
        let peers = Arc::clone(self.peers());
        let to = to.to_string();
        let request = write_to_proto(write);
        async move {
            let (mut client, address) = match route? {
                Route::Remote { client, address } => (client, address),
                // The coordinator forwards only to other replicas.
                Route::Local => {
                    return Err(BadMessage::ForwardToSelf { node: to }.into());
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

/// One kind of replica call that a busy peer gets in batches.
trait Kind: Sized + Send + Sync + 'static {
    /// One request, and its answer.
    type Q: Send + 'static;
    type A: Send + 'static;

    fn queues(b: &Batcher) -> &CallQueues<Self::Q, Self::A>;

    /// About how many bytes `request` takes in a batch call.
    fn size(request: &Self::Q) -> usize;

    /// `request` alone, as a single call.
    fn one(
        b: &Batcher,
        client: ReplicaClient<Channel>,
        address: &str,
        request: Self::Q,
    ) -> impl Future<Output = Result<Self::A>> + Send;

    /// `batch` as one call, answering each request; [`Unsent`] (the batch back, with
    /// whether the peer lacks batch calls) when the call failed for a reason single calls
    /// may not share: an older release without it, or a message over a size limit.
    fn many(
        b: &Batcher,
        client: ReplicaClient<Channel>,
        address: &str,
        batch: Batch<Self>,
    ) -> impl Future<Output = std::result::Result<(), Unsent<Self>>> + Send;
}

/// Queued requests of kind `K`.
type Batch<K> = Vec<Queued<<K as Kind>::Q, <K as Kind>::A>>;
/// A batch a peer did not take, and whether it has no batch calls at all.
struct Unsent<K: Kind>(Batch<K>, bool);

/// Replica writes: (key, encoded versions) → stored.
struct Writes;
/// Replica reads: key → versions.
struct Reads;

impl Batcher {
    /// Sends `request` to the peer at `address`: alone when the peer has a free slot for
    /// its kind, else in the batch that leaves when a slot frees.
    async fn call<K: Kind>(
        self: Arc<Self>,
        client: ReplicaClient<Channel>,
        address: String,
        request: K::Q,
    ) -> Result<K::A> {
        let mut request = Some(request);
        let turn = K::queues(&self).enqueue(&address, || request.take().expect("taken once"));
        match (turn, request) {
            (Turn::Queued(answer), _) => super::batching::answer(answer).await,
            (Turn::SendNow, Some(request)) => {
                // The slot is given back (and what queued meanwhile sent) even if this call
                // is dropped half-way.
                let slot = Slot::<K> {
                    batcher: Arc::clone(&self),
                    client: client.clone(),
                    address: address.clone(),
                    kind: std::marker::PhantomData,
                };
                let result = K::one(&self, client, &address, request).await;
                drop(slot);
                result
            }
            (Turn::SendNow, None) => unreachable!("a request sent now is not queued"),
        }
    }

    /// Sends batches in one slot of the peer at `address` until none is queued.
    async fn drain<K: Kind>(
        self: Arc<Self>,
        client: ReplicaClient<Channel>,
        address: String,
        first: Vec<Queued<K::Q, K::A>>,
    ) {
        let mut queued = first;
        loop {
            self.send_all::<K>(&client, &address, queued).await;
            match K::queues(&self).finished(&address) {
                Some(next) => queued = next,
                None => return,
            }
        }
    }

    /// Sends `queued` in calls of at most MAX_BATCH requests and about `batch_bytes` each.
    async fn send_all<K: Kind>(
        &self,
        client: &ReplicaClient<Channel>,
        address: &str,
        queued: Vec<Queued<K::Q, K::A>>,
    ) {
        let mut rest = queued.into_iter().peekable();
        while rest.peek().is_some() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(next) = rest.peek() {
                let size = K::size(&next.request);
                if !batch.is_empty()
                    && (batch.len() == MAX_BATCH || bytes + size > self.batch_bytes)
                {
                    break;
                }
                bytes += size;
                batch.extend(rest.next());
            }
            self.send_batch::<K>(client.clone(), address, batch).await;
        }
    }

    /// A read of `key` from the peer at `address` for read repair only: it joins the next
    /// batch of reads to that peer when one is in flight, else waits up to
    /// [`REPAIR_READ_DELAY`] for others to the same peer and leaves with them in one
    /// call, rather than costing a call of its own (both ends of a lone call cost about as
    /// much as the client's request that caused it).
    async fn repair_read(
        self: Arc<Self>,
        client: ReplicaClient<Channel>,
        address: String,
        key: String,
    ) -> Result<Siblings> {
        // A peer with a read call in flight gets one more soon: ride along in it.
        let key = match self.reads.join_if_busy(&address, key) {
            Ok(answer) => return super::batching::answer(answer).await,
            Err(key) => key,
        };
        let (answer, first) = self.repair_reads.add(&address, key);
        if first {
            let batcher = Arc::clone(&self);
            tokio::spawn(async move {
                tokio::time::sleep(REPAIR_READ_DELAY).await;
                let gathered = batcher.repair_reads.take(&address);
                batcher.send_all::<Reads>(&client, &address, gathered).await;
            });
        }
        super::batching::answer(answer).await
    }

    /// True while the peer at `address` gets single calls only.
    fn single_only(&self, address: &str) -> bool {
        let mut single_only = self.single_only.lock();
        match single_only.get(address) {
            Some(since) if since.elapsed() < SINGLE_ONLY_FOR => true,
            Some(_) => {
                single_only.remove(address);
                false
            }
            None => false,
        }
    }

    /// Sends `batch` as one call (as single calls to a peer that has no batch calls, or when
    /// the batch call failed for a reason of its own) and answers each of its requests.
    async fn send_batch<K: Kind>(
        &self,
        client: ReplicaClient<Channel>,
        address: &str,
        batch: Vec<Queued<K::Q, K::A>>,
    ) {
        let batch = if batch.len() > 1 && !self.single_only(address) {
            match K::many(self, client.clone(), address, batch).await {
                Ok(()) => return,
                Err(Unsent(batch, no_batches)) => {
                    if no_batches {
                        self.single_only
                            .lock()
                            .insert(address.to_string(), Instant::now());
                    }
                    batch
                }
            }
        } else {
            batch
        };
        let sends = batch.into_iter().map(|queued| {
            let client = client.clone();
            async move {
                let (request, answer) = queued.split();
                answer.finish(K::one(self, client, address, request).await);
            }
        });
        futures::future::join_all(sends).await;
    }
}

/// A request's slot with a peer: given back when dropped, when the requests queued
/// meanwhile leave in it as the next batch.
struct Slot<K: Kind> {
    batcher: Arc<Batcher>,
    client: ReplicaClient<Channel>,
    address: String,
    kind: std::marker::PhantomData<K>,
}

impl<K: Kind> Drop for Slot<K> {
    fn drop(&mut self) {
        let Some(batch) = K::queues(&self.batcher).finished(&self.address) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let (batcher, client) = (Arc::clone(&self.batcher), self.client.clone());
                runtime.spawn(batcher.drain::<K>(client, self.address.clone(), batch));
            }
            // No runtime (the node is gone): the queued requests fail.
            Err(_) => drop(batch),
        }
    }
}

/// The failure of every request of a batch whose call failed with `status`.
fn batch_failed<Q, A>(b: &Batcher, address: &str, status: tonic::Status, batch: Vec<Queued<Q, A>>) {
    let failures: Vec<PeerFailure> = batch
        .iter()
        .map(|_| PeerFailure::from_status(&status))
        .collect();
    // Once, for the timeout count and the peer's backoff.
    drop(b.peers.error(address, status));
    for (queued, failure) in batch.into_iter().zip(failures) {
        queued.finish(Err(NodeError::Peer {
            peer: address.to_string(),
            failure,
        }));
    }
}

/// A batch call that failed with `status`: handed back to go one call at a time when the
/// peer may take single calls ([`unsent`]), failed request by request otherwise.
fn batch_error<K: Kind>(
    b: &Batcher,
    address: &str,
    status: tonic::Status,
    batch: Batch<K>,
) -> std::result::Result<(), Unsent<K>> {
    if unsent(&status) {
        let no_batches = status.code() == tonic::Code::Unimplemented;
        return Err(Unsent(batch, no_batches));
    }
    batch_failed(b, address, status, batch);
    Ok(())
}

/// True when a batch call failed for a reason single calls may not share: the peer has no
/// batch calls (an older release), or a message went over a size limit (a batch of reads
/// whose answers together are too large). Not for an unreachable or silent peer.
fn unsent(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unimplemented | Code::OutOfRange | Code::ResourceExhausted
    )
}

/// An answer that does not fit the batch it answers.
fn batch_misanswered<Q, A>(address: &str, answers: usize, batch: Vec<Queued<Q, A>>) {
    let reason = format!("{answers} answers to {} requests", batch.len());
    for queued in batch {
        queued.finish(Err(NodeError::bad_reply(address, &reason)));
    }
}

/// A replica's refusal of one request of a batch.
fn refused(address: &str, message: String) -> NodeError {
    NodeError::Peer {
        peer: address.to_string(),
        failure: PeerFailure::Refused {
            code: tonic::Code::Internal,
            message,
        },
    }
}

impl Kind for Writes {
    type Q = (String, Vec<u8>);
    type A = ();

    fn queues(b: &Batcher) -> &CallQueues<Self::Q, Self::A> {
        &b.writes
    }

    fn size((key, versions): &Self::Q) -> usize {
        key.len() + versions.len() + 16
    }

    async fn one(
        b: &Batcher,
        mut client: ReplicaClient<Channel>,
        address: &str,
        (key, versions): Self::Q,
    ) -> Result<()> {
        client
            .write(internal::ReplicaWriteRequest {
                key,
                versions,
                coordinator: b.local.clone(),
            })
            .await
            .map(drop)
            .map_err(|s| b.peers.error(address, s))
    }

    async fn many(
        b: &Batcher,
        mut client: ReplicaClient<Channel>,
        address: &str,
        batch: Batch<Self>,
    ) -> std::result::Result<(), Unsent<Self>> {
        let writes = batch
            .iter()
            .map(|q| internal::ReplicaWriteRequest {
                key: q.request.0.clone(),
                versions: q.request.1.clone(),
                coordinator: b.local.clone(),
            })
            .collect();
        match client
            .write_batch(internal::ReplicaWriteBatch { writes })
            .await
        {
            Ok(ack) => {
                let errors = ack.into_inner().errors;
                if errors.len() != batch.len() {
                    batch_misanswered(address, errors.len(), batch);
                    return Ok(());
                }
                for (queued, error) in batch.into_iter().zip(errors) {
                    let result = if error.is_empty() {
                        Ok(())
                    } else {
                        Err(refused(address, error))
                    };
                    queued.finish(result);
                }
            }
            Err(status) => return batch_error(b, address, status, batch),
        }
        Ok(())
    }
}

impl Kind for Reads {
    type Q = String;
    type A = Siblings;

    fn queues(b: &Batcher) -> &CallQueues<Self::Q, Self::A> {
        &b.reads
    }

    fn size(key: &String) -> usize {
        key.len() + 8
    }

    async fn one(
        b: &Batcher,
        mut client: ReplicaClient<Channel>,
        address: &str,
        key: String,
    ) -> Result<Siblings> {
        let reply = client
            .read(internal::ReplicaReadRequest { key })
            .await
            .map_err(|s| b.peers.error(address, s))?
            .into_inner();
        read_from_proto(address, reply)
    }

    async fn many(
        b: &Batcher,
        mut client: ReplicaClient<Channel>,
        address: &str,
        batch: Batch<Self>,
    ) -> std::result::Result<(), Unsent<Self>> {
        let keys = batch.iter().map(|q| q.request.clone()).collect();
        match client.read_batch(internal::ReplicaReadBatch { keys }).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                if reply.replies.len() != batch.len() || reply.errors.len() != batch.len() {
                    batch_misanswered(address, reply.replies.len(), batch);
                    return Ok(());
                }
                let answers = reply.replies.into_iter().zip(reply.errors);
                for (queued, (answer, error)) in batch.into_iter().zip(answers) {
                    let result = if error.is_empty() {
                        read_from_proto(address, answer)
                    } else {
                        Err(refused(address, error))
                    };
                    queued.finish(result);
                }
            }
            Err(status) => return batch_error(b, address, status, batch),
        }
        Ok(())
    }
}
