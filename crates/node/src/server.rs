//! Serving a node: the gRPC services and the HTTP endpoints on one listener (plain or TLS,
//! [`crate::conn`]), the background workers, and a graceful stop. The server takes a bound
//! listener and a shutdown future, and owns every task it starts.

use std::future::Future;
use std::sync::Arc;

use distkv_proto::distkv::admin_service_server::AdminServiceServer;
use distkv_proto::distkv::dist_kv_server::DistKvServer;
use distkv_proto::internal::replica_server::ReplicaServer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::conn;
use crate::node::Node;
use crate::service::{admin::AdminServiceImpl, kv::KvService, replica::ReplicaService};

/// Serves `node` on `listener` until `shutdown` completes; then stops accepting, lets requests in
/// flight finish, stops the workers, and flushes and closes storage.
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
    workers.spawn(Arc::clone(&node).gossip_loop());
    workers.spawn(Arc::clone(&node).hint_loop());
    workers.spawn(Arc::clone(&node).lifecycle_loop());
    workers.spawn(Arc::clone(&node).anti_entropy_loop());
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
        .add_service(
            ReplicaServer::new(ReplicaService::new(Arc::clone(&node)))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message),
        );
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
            Some(t.server_config()?)
        }
        None => None,
    };

    let local = listener.local_addr()?;
    tracing::info!(
        node = node.id(),
        %local,
        tls = tls.is_some(),
        "serving gRPC and HTTP"
    );
    if tls.is_none() {
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
            let incoming = conn::incoming(l, tls.clone(), Arc::clone(&node.network));
            let mut stopped = http_stopped;
            Some(tokio::spawn(
                tonic::transport::Server::builder()
                    .accept_http1(true)
                    .add_routes(tonic::service::Routes::from(
                        http.fallback(crate::http::not_found),
                    ))
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    }),
            ))
        }
        None => None,
    };
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(app))
        .serve_with_incoming_shutdown(
            conn::incoming(listener, tls, Arc::clone(&node.network)),
            shutdown,
        )
        .await?;
    let _ = http_stop.send(true);
    if let Some(h) = extra {
        let _ = h.await;
    }
    tracing::info!(node = node.id(), "stopped accepting; shutting down");
    node.begin_shutdown();
    while workers.join_next().await.is_some() {}
    node.shutdown().await?;
    tracing::info!(node = node.id(), "shut down cleanly");
    Ok(())
}

/// Keeps gRPC's health service (`grpc.health.v1`, for load balancers and Kubernetes' gRPC
/// probes) in step with `/ready`: `NOT_SERVING` while the node joins, `SERVING` once it serves.
async fn report_health(node: Arc<Node>, reporter: tonic_health::server::HealthReporter) {
    let mut state = node.local_state_watch();
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
