//! Serving a node: the gRPC services on one listener, the background workers, and a graceful
//! stop. The server takes a bound listener and a shutdown future, and owns every task it starts.

use std::future::Future;
use std::sync::Arc;

use distkv_proto::distkv::admin_service_server::AdminServiceServer;
use distkv_proto::distkv::dist_kv_server::DistKvServer;
use distkv_proto::internal::replica_server::ReplicaServer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::node::Node;
use crate::service::{admin::AdminServiceImpl, kv::KvService, replica::ReplicaService};

/// Largest gRPC message accepted or sent (values are capped lower by `-max-value-size`).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Serves `node` on `listener` until `shutdown` completes; then stops accepting, lets requests in
/// flight finish, stops the workers, and flushes and closes storage.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<DistKvServer<KvService>>()
        .await;
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

    let local = listener.local_addr()?;
    tracing::info!(node = node.id(), %local, "serving");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(
            DistKvServer::new(KvService::new(Arc::clone(&node)))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(AdminServiceServer::new(AdminServiceImpl::new(Arc::clone(
            &node,
        ))))
        .add_service(
            ReplicaServer::new(ReplicaService::new(Arc::clone(&node)))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a response split over two writes waits for the client's
            // delayed ACK: 40 ms per request.
            tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(std::time::Duration::from_secs(60))),
            shutdown,
        )
        .await?;
    tracing::info!(node = node.id(), "stopped accepting; shutting down");
    node.begin_shutdown();
    while workers.join_next().await.is_some() {}
    node.shutdown().await?;
    tracing::info!(node = node.id(), "shut down cleanly");
    Ok(())
}
