//! The HTTP endpoints beside gRPC on a node's port, over a real server process: `/health`,
//! `/ready`, `/metrics` (the families operators chart), `/status` (JSON), the status page, and
//! the optional `-http-address` listener.

mod common;

use common::{Cluster, eventually, http_get, http_get_status, put};
use distkv_proto::distkv::ConsistencyLevel::*;
use tonic_health::pb::health_check_response::ServingStatus;

/// What gRPC's health service of the node at `address` says of `service` ("" for the node).
async fn grpc_health(address: &str, service: &str) -> ServingStatus {
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(common::connect(address).await.unwrap());
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(r.status).unwrap()
}

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
    // Counters that must have moved: the put reached its quorum, and bytes crossed the wire.
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    assert!(value("distkv_quorum_successes_total") >= 1.0);
    assert!(value("distkv_network_received_bytes_total") > 0.0);
    assert!(value("distkv_network_sent_bytes_total") > 0.0);
    // Every series the Grafana dashboard charts is one the node exports (a family with no
    // sample yet shows as its TYPE line).
    let dashboard = include_str!("../../../deploy/monitoring/grafana/dashboards/distkv.json");
    let charted: std::collections::BTreeSet<&str> = dashboard
        .match_indices("distkv_")
        .map(|(at, _)| {
            let rest = &dashboard[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert!(charted.len() > 20, "{charted:?}");
    for name in charted {
        let family = ["_total", "_bucket"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            metrics.contains(name) || metrics.contains(&format!("# TYPE {family} ")),
            "the dashboard charts {name}, which /metrics lacks"
        );
    }
    // The standard process metrics, under their standard names: a counter registered as
    // process_cpu_seconds is exposed as process_cpu_seconds_total.
    if cfg!(target_os = "linux") {
        for line in [
            "# TYPE process_cpu_seconds counter\n",
            "# TYPE process_resident_memory_bytes gauge\n",
            "# TYPE process_virtual_memory_bytes gauge\n",
            "# TYPE process_open_fds gauge\n",
            "# TYPE process_max_fds gauge\n",
            "# TYPE process_threads gauge\n",
            "# TYPE process_start_time_seconds gauge\n",
            "\nprocess_cpu_seconds_total ",
        ] {
            assert!(
                metrics.contains(line),
                "/metrics lacks {line:?}:\n{metrics}"
            );
        }
        assert!(value("process_cpu_seconds_total") > 0.0);
        assert!(value("process_threads") >= 1.0);
        assert!(value("process_open_fds") >= 1.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_resident_memory_bytes") > 0.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // The node started during this test.
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - common::DEADLINE.as_secs_f64() * 4.0,
            "started {started}, now {now}"
        );
    }
    // The put went to the other two replicas over connections this node opened.
    assert!(value("distkv_network_peer_connections_total") >= 2.0);
    assert!(value("distkv_network_peer_sent_bytes_total") > 0.0);
    assert!(value("distkv_network_peer_received_bytes_total") > 0.0);

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
async fn distkv_bench_reads_the_servers_cpu_from_metrics() {
    use distkv_client::bench::{BenchConfig, run_bench};
    let c = Cluster::start(1, &["-replicas=1", "-read-quorum=1", "-write-quorum=1"]).await;
    let a = &c.nodes[0].address;
    let config = BenchConfig {
        // Twice the same node: read once.
        servers: vec![a.clone(), a.clone()],
        concurrency: 4,
        keys: 200,
        duration: std::time::Duration::from_millis(1500),
        ..BenchConfig::default()
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let report = run_bench(&config, false, &stop).await.unwrap();
    assert_eq!(report.errors(), 0, "{:?}", report.first_error);
    assert!(report.total_ops() > 0);
    let server = &report.server;
    assert_eq!(server.nodes.len(), 1, "{server:?}");
    let node = &server.nodes[0];
    assert_eq!(node.error, None);
    assert_eq!(node.server, *a);
    let before = node.cpu_seconds_before.unwrap();
    let after = node.cpu_seconds_after.unwrap();
    // 1.5 s of requests cost the node CPU time (the kernel counts it in 10 ms ticks).
    assert!(after > before, "{node:?}");
    assert_eq!(server.cpu_seconds(), Ok(after - before));
    let per_op = server.cpu_us_per_op(report.total_ops()).unwrap();
    assert_eq!(per_op, (after - before) * 1e6 / report.total_ops() as f64);
    assert!(server.threads_max().is_some_and(|t| t >= 1), "{server:?}");
    let text = distkv_client::bench::report::render_text(&config, &report);
    assert!(text.contains(" µs/op ("), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&distkv_client::bench::report::render_json(&config, &report)).unwrap();
    // serde_json reads floats back to within an ulp or two.
    let json_per_op = json["server_cpu_us_per_op"].as_f64().unwrap();
    assert!((json_per_op - per_op).abs() <= per_op * 1e-12, "{json}");
    assert_eq!(json["server_cpu_error"], serde_json::Value::Null);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_get_404_and_unknown_grpc_methods_unimplemented() {
    let c = Cluster::start(1, &["-replicas=1", "-read-quorum=1", "-write-quorum=1"]).await;
    let a = &c.nodes[0].address;
    // The status counts keys, not the entries behind them.
    let mut kv = c.kv(0).await;
    for i in 0..10 {
        assert!(put(&mut kv, &format!("k{i}"), "v", None).await.success);
    }
    let metrics = common::status(a).await.unwrap().metrics.unwrap();
    assert_eq!(metrics.total_keys, 10);
    let (status, body) = http_get_status(a, "/nope").await.unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("no such path: /nope"), "{body}");
    assert_eq!(
        grpc_health(a, "distkv.DistKV").await,
        ServingStatus::Serving
    );
    // A method no service has: gRPC's UNIMPLEMENTED, not an HTTP error.
    let mut grpc = tonic::client::Grpc::new(common::connect(a).await.unwrap());
    grpc.ready().await.unwrap();
    let e = grpc
        .unary(
            tonic::Request::new(distkv_proto::distkv::RingRequest {}),
            "/distkv.DistKV/NoSuchMethod".parse().unwrap(),
            tonic_prost::ProstCodec::<
                distkv_proto::distkv::RingRequest,
                distkv_proto::distkv::RingResponse,
            >::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_is_live_but_not_ready_over_http_and_grpc_health() {
    // Its only seed never answers, so the node waits to join for as long as the test runs.
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", common::free_port());
    let silent_seed = format!("127.0.0.1:{}", common::free_port());
    let mut child = common::server_command()
        .args([
            "-node-id=joiner",
            &format!("-address={address}"),
            &format!("-data-dir={}", dir.path().display()),
            &format!("-seed-nodes={silent_seed}"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut child);
    eventually("the joining node answers /health", || {
        let address = address.clone();
        async move { http_get(&address, "/health").await }
    })
    .await;
    let (status, body) = http_get_status(&address, "/ready").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("joining"), "{body}");
    assert_eq!(grpc_health(&address, "").await, ServingStatus::NotServing);
}
