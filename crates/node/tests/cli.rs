//! The `distkv-client` binary against a real 3-node cluster: the original's commands and output,
//! scan, ring, JSON output and errors. The client binary is built with the workspace and found
//! next to the server binary.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Cluster;

fn client_bin() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_distkv-server")).with_file_name("distkv-client");
    assert!(
        p.exists(),
        "{} is missing: build the workspace (cargo test --workspace) first",
        p.display()
    );
    p
}

fn run(server: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(client_bin())
        .arg(format!("-server={server}"))
        .arg("-timeout=5s")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_commands_work_against_a_cluster() {
    let c = Cluster::start(3, &[]).await;
    let (a, b, z) = (
        c.nodes[0].address.clone(),
        c.nodes[1].address.clone(),
        c.nodes[2].address.clone(),
    );
    assert_eq!(
        run(&a, &["put", "user:123", "John Doe"]),
        (
            0,
            "Successfully stored key 'user:123'\n".into(),
            String::new()
        )
    );
    assert_eq!(
        run(&z, &["get", "user:123"]).1,
        "Key: user:123\nValue: John Doe\n"
    );
    assert_eq!(run(&b, &["get", "nope"]).1, "Key 'nope' not found\n");
    assert_eq!(
        run(&a, &["batch", "b1", "one", "b2", "two"]).1,
        "Successfully stored 2 key-value pairs\n"
    );
    assert_eq!(
        run(&b, &["delete", "b1"]).1,
        "Successfully deleted key 'b1'\n"
    );
    assert_eq!(
        run(&z, &["-consistency=all", "get", "b1"]).1,
        "Key 'b1' not found\n"
    );
    let (code, out, _) = run(&a, &["scan", "-prefix", "b"]);
    assert_eq!((code, out.as_str()), (0, "b2 = two\n"));
    let (code, status, _) = run(&a, &["status"]);
    assert_eq!(code, 0);
    assert!(
        status.starts_with(
            "=== Cluster Status ===\nHealth: 3 total nodes, 3 alive, 0 dead (100.0% availability)\n"
        ),
        "{status}"
    );
    assert_eq!(
        status.matches(" - ALIVE - Last seen: ").count(),
        3,
        "{status}"
    );
    assert!(status.contains("=== Storage Metrics ==="), "{status}");
    let (_, ring, _) = run(&a, &["ring"]);
    assert!(ring.contains("Replication: N=3, R=2, W=2"), "{ring}");
    let (_, json, _) = run(&a, &["-o", "json", "get", "user:123"]);
    assert!(
        json.contains("\"found\":true") && json.contains("John Doe"),
        "{json}"
    );
    // Errors: one clear line and exit 1.
    let (code, _, err) = run(&a, &["put", "", "v"]);
    assert_eq!(code, 1);
    assert!(err.contains("key must not be empty"), "{err}");
    let (code, _, err) = run("127.0.0.1:1", &["-timeout=500ms", "get", "k"]);
    assert_eq!(code, 1);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    let (code, out, _) = run("127.0.0.1:1", &["help"]);
    assert_eq!(code, 0);
    assert!(out.contains("put"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_within_two_seconds_of_start_on_an_empty_data_dir() {
    let started = Instant::now();
    let c = Cluster::start(1, &["-replicas=1", "-read-quorum=1", "-write-quorum=1"]).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "first answer after {took:?}");
    let (code, _, err) = run(&c.nodes[0].address, &["put", "k", "v"]);
    assert_eq!(code, 0, "{err}");
}
