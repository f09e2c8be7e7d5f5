//! The HTTP endpoints beside gRPC on a node's port, over a real server process: `/health`,
//! `/ready`, `/metrics` (the families operators chart), `/status` (JSON), the status page, and
//! the optional `-http-address` listener.

mod common;

use common::{Cluster, eventually, http_get, put};
use distkv_proto::distkv::ConsistencyLevel::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_status_and_the_page() {
    let c = Cluster::start(3, &[]).await;
    let a = &c.nodes[0].address;
    let mut kv = c.kv(0).await;
    assert!(put(&mut kv, "k", "v", Some(Quorum)).await.success);

    let health: serde_json::Value =
        serde_json::from_str(&http_get(a, "/health").await.unwrap()).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["node"], "node1");
    let ready: serde_json::Value =
        serde_json::from_str(&http_get(a, "/ready").await.unwrap()).unwrap();
    assert_eq!(ready["status"], "ready");

    let metrics = http_get(a, "/metrics").await.unwrap();
    for family in [
        "distkv_requests_total{op=\"put\"} 1",
        "distkv_request_duration_seconds_bucket{",
        "distkv_storage_sstables{level=\"0\"}",
        "distkv_storage_cache_hit_ratio",
        "distkv_storage_write_amplification",
        "distkv_storage_memory_bytes",
        "distkv_quorum_failures_total",
        "distkv_read_repairs_total",
        "distkv_hints_stored_total",
        "distkv_hints_pending",
        "distkv_siblings_returned_total",
        "distkv_nodes{status=\"ALIVE\"} 3",
        "distkv_gossip_messages_sent_total",
        "distkv_gossip_status_changes_total",
        "distkv_network_connections_accepted_total",
        "distkv_network_received_bytes_total",
        "distkv_network_peer_timeouts_total",
        "distkv_anti_entropy_keys_repaired_total",
        "# EOF",
    ] {
        assert!(
            metrics.contains(family),
            "/metrics lacks {family}:\n{metrics}"
        );
    }

    let status: serde_json::Value =
        serde_json::from_str(&http_get(a, "/status").await.unwrap()).unwrap();
    assert_eq!(status["node"]["id"], "node1");
    assert_eq!(status["node"]["state"], "NORMAL");
    assert_eq!(status["health"]["alive_nodes"], 3);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(status["ring"]["replicas"], 3);
    let owned: f64 = status["ring"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["ownership"].as_f64().unwrap())
        .sum();
    assert!((owned - 1.0).abs() < 1e-9, "{owned}");
    assert!(status["requests"]["total"].as_u64().unwrap() >= 1);

    let page = http_get(a, "/").await.unwrap();
    assert!(page.starts_with("<!doctype html>"));
    for part in [
        "id=\"nodes\"",
        "id=\"ring\"",
        "id=\"tput\"",
        "id=\"lat\"",
        "id=\"sst\"",
        "fetch(\"/status\"",
    ] {
        assert!(page.contains(part), "the page lacks {part}");
    }
    // Nothing is fetched from elsewhere.
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_http_listener_serves_the_same_endpoints() {
    let extra = format!("127.0.0.1:{}", common::free_port());
    let flag = format!("-http-address={extra}");
    let _c = Cluster::start(
        1,
        &["-replicas=1", "-read-quorum=1", "-write-quorum=1", &flag],
    )
    .await;
    let h = eventually("the -http-address listener answers", || {
        let extra = extra.clone();
        async move { http_get(&extra, "/health").await }
    })
    .await;
    assert!(h.contains("\"status\":\"ok\""), "{h}");
    assert!(
        http_get(&extra, "/metrics")
            .await
            .unwrap()
            .contains("distkv_up 1")
    );
}
