//! Serving a node: the gRPC services and the HTTP endpoints on one listener (plain or TLS,
//! [`crate::conn`]), the background workers, and a graceful stop. The server takes a bound
//! listener and a shutdown future, and owns every task it starts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use distkv_proto::distkv::admin_service_server::AdminServiceServer;
use distkv_proto::distkv::dist_kv_server::DistKvServer;
use distkv_proto::internal::replica_server::ReplicaServer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::conn;
use crate::node::Node;
use crate::service::{admin::AdminServiceImpl, kv::KvService, replica::ReplicaService};

/// Serves `node` on `listener` until `shutdown` completes; then stops accepting, stops the
/// background work, lets requests in flight finish (for at most twice `-request-timeout` plus a
/// second), stops the workers, and flushes and closes storage.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(distkv_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // Older grpcurl and grpc-go clients still ask the v1alpha reflection service.
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(distkv_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let mut workers = JoinSet::new();
    workers.spawn(Arc::clone(&node.membership).run(node.shutdown_signal()));
    workers.spawn(evict_idle_peers(Arc::clone(&node)));
    workers.spawn(Arc::clone(&node).hint_loop());
    workers.spawn(Arc::clone(&node.streaming).run());
    workers.spawn(Arc::clone(&node.rounds).run(node.shutdown_signal()));
    workers.spawn(report_health(Arc::clone(&node), health_reporter));

    // gRPC services and the HTTP routes on one router: one port, one certificate.
    let max_message = node.config().max_message_bytes;
    let mut grpc = tonic::service::Routes::builder();
    grpc.add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(
            DistKvServer::new(KvService::new(Arc::clone(&node)))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        )
        .add_service(
            AdminServiceServer::new(AdminServiceImpl::new(Arc::clone(&node)))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        )
        .add_service(tonic::service::interceptor::InterceptedService::new(
            ReplicaServer::new(ReplicaService::new(Arc::clone(&node)))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
            peers_only,
        ));
    let http = crate::http::router(Arc::clone(&node));
    let app = grpc
        .routes()
        .into_axum_router()
        .merge(http.clone())
        .fallback(crate::http::not_found);
    let tls = match &node.config().tls {
        Some(t) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            if let Some(problem) = distkv_tls::validity_problem(&t.cert_file, now)? {
                tracing::warn!("{problem}");
            }
            Some((t.server_config()?, Arc::new(t.peer_verifier()?)))
        }
        None => None,
    };
    // Both listeners share the budgets: connections, requests in flight, and the signal that
    // closes every connection.
    let (accept, close_all) = conn::Accept::new(
        tls,
        node.config().max_connections,
        Arc::clone(&node.network),
    );
    // Requests in flight on the whole node (all listeners), refused past it at once: twice
    // -max-concurrent-requests plus room for node-to-node calls (client requests within that
    // are refused past -max-concurrent-requests with "server busy"). With at most
    // -max-connections connections and 256 streams on each, memory for messages in flight is
    // bounded by the requests admitted times -max-message-size.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        node.config().max_concurrent_requests * 2 + 256,
    ));

    let local = listener.local_addr()?;
    tracing::info!(
        node = node.id(),
        %local,
        tls = accept.is_tls(),
        "serving gRPC and HTTP"
    );
    if !accept.is_tls() {
        tracing::warn!("serving WITHOUT TLS (insecure): every connection is plaintext");
    }
    // An extra listener for HTTP only, when asked for (-http-address).
    let (http_stop, http_stopped) = tokio::sync::watch::channel(false);
    let extra = match &node.config().http_address {
        Some(address) => {
            let l = TcpListener::bind(address)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on -http-address {address}: {e}"))?;
            tracing::info!(address = %l.local_addr()?, "serving HTTP");
            let incoming = conn::incoming(l, accept.clone());
            let mut stopped = http_stopped;
            Some(tokio::spawn(crate::serve::serve(
                incoming,
                http.fallback(crate::http::not_found),
                LIMITS,
                Arc::clone(&in_flight),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )))
        }
        None => None,
    };
    // On the signal: stop accepting, tell the background work and long operations to stop,
    // and give requests in flight a bounded time to finish.
    let (signalled, mut signal_seen) = tokio::sync::watch::channel(false);
    let stopping = Arc::clone(&node);
    let shutdown = async move {
        shutdown.await;
        stopping.begin_shutdown();
        let _ = signalled.send(true);
    };
    let drain = node.config().request_timeout * 2 + std::time::Duration::from_secs(1);
    let serving = crate::serve::serve(
        conn::incoming(listener, accept),
        app,
        LIMITS,
        in_flight,
        shutdown,
    );
    let drained = async {
        let _ = signal_seen.wait_for(|s| *s).await;
        tokio::time::sleep(drain).await;
    };
    tokio::pin!(drained);
    let mut expired = false;
    tokio::select! {
        () = serving => {}
        () = &mut drained => {
            tracing::warn!(?drain, "requests still in flight after the drain time: closing their connections");
            let _ = close_all.send(true);
            expired = true;
        }
    }
    let _ = http_stop.send(true);
    if let Some(mut h) = extra {
        let done = !expired
            && tokio::select! {
                _ = &mut h => true,
                () = &mut drained => {
                    tracing::warn!(?drain, "HTTP requests still in flight after the drain time: closing their connections");
                    let _ = close_all.send(true);
                    false
                }
            };
        if !done {
            // Its connections are closed: it ends at once.
            let _ = h.await;
        }
    }
    // Whatever is still open (connections idle since the signal) fails from now on.
    let _ = close_all.send(true);
    tracing::info!(node = node.id(), "stopped accepting; shutting down");
    node.begin_shutdown();
    while workers.join_next().await.is_some() {}
    node.shutdown().await?;
    tracing::info!(node = node.id(), "shut down cleanly");
    Ok(())
}

/// Threads of the runtime's blocking pool at most (the server's runtime is built with it):
/// engine reads that need the disk, stalled writes and bulk work queue for them.
pub const BLOCKING_THREADS: usize = 8;

/// The HTTP/2 settings of every connection (see [`crate::serve`] for the node-wide budget).
const LIMITS: crate::serve::Limits = crate::serve::Limits {
    max_concurrent_streams: 256,
    max_header_list_bytes: 64 * 1024,
    // Bounded by the streams allowed anyway.
    max_pending_accept_reset_streams: 256,
    keepalive_interval: std::time::Duration::from_secs(30),
    keepalive_timeout: std::time::Duration::from_secs(20),
};

/// Lets only peer nodes call the node-to-node service: with TLS on, a call must come over a
/// connection whose client showed a certificate of the cluster's CA (a client certificate of
/// another CA, or none, is refused whatever `-tls-client-auth` allows for clients).
#[allow(clippy::result_large_err)]
fn peers_only(request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    match request.extensions().get::<conn::ConnInfo>() {
        Some(info) if info.tls && !info.peer_verified => Err(tonic::Status::unauthenticated(
            "node-to-node calls need a certificate from the cluster's CA",
        )),
        Some(_) => Ok(request),
        None => Err(tonic::Status::unauthenticated(
            "node-to-node calls need a connection the node accepted",
        )),
    }
}

/// Drops the connections to peers that have not been used for five minutes, every minute.
async fn evict_idle_peers(node: Arc<Node>) {
    let mut stop = node.shutdown_signal();
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => node.peers().evict_idle(Duration::from_secs(300)),
            _ = stop.changed() => return,
        }
    }
}

/// Keeps gRPC's health service (`grpc.health.v1`, for load balancers and Kubernetes' gRPC
/// probes) in step with `/ready`: `NOT_SERVING` while the node joins, `SERVING` once it serves.
async fn report_health(node: Arc<Node>, reporter: tonic_health::server::HealthReporter) {
    let mut state = node.membership.local_state_watch();
    let mut stop = node.shutdown_signal();
    let mut reported = None;
    loop {
        let serving = node.check_serving().is_ok();
        if reported != Some(serving) {
            if serving {
                reporter.set_serving::<DistKvServer<KvService>>().await;
                reporter
                    .set_service_status("", tonic_health::ServingStatus::Serving)
                    .await;
            } else {
                reporter.set_not_serving::<DistKvServer<KvService>>().await;
                reporter
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
            }
            reported = Some(serving);
        }
        // The flag follows the state change by a moment: look again shortly after.
        tokio::select! {
            _ = state.changed() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}
