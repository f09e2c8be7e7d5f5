//! The `distkv-client` and `distkv-bench` binaries as a user runs them: exit status, stdout and
//! stderr for input that needs no server, and for a server that is not there.

use std::process::{Command, Output};

fn client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distkv-client"))
        .args(args)
        .output()
        .expect("run distkv-client")
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distkv-bench"))
        .args(args)
        .output()
        .expect("run distkv-bench")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

#[test]
fn help_needs_no_server() {
    // Port 1 on loopback: nothing listens there.
    let out = client(&["-server", "127.0.0.1:1", "help"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), distkv_client::cli::help::USAGE);
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn help_flag() {
    let out = client(&["-help"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), distkv_client::cli::help::USAGE);
}

#[test]
fn unknown_command() {
    let out = client(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!(
            "Unknown command: frobnicate\n{}",
            distkv_client::cli::help::USAGE
        )
    );
}

#[test]
fn wrong_argument_count() {
    let out = client(&["put", "only-a-key"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "Usage: distkv-client put <key> <value>\n"
    );
}

#[test]
fn bad_consistency() {
    let out = client(&["-consistency=sometimes", "get", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "Error: invalid consistency level \"sometimes\": expected one, quorum or all\n"
    );
}

#[test]
fn unknown_flag_exits_2() {
    let out = client(&["-nope", "get", "k"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "Error: flag provided but not defined: -nope\nRun 'distkv-client help' for usage.\n"
    );
}

#[test]
fn unreachable_server() {
    let out = client(&["-server", "127.0.0.1:1", "-timeout", "500ms", "get", "k"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("Error: failed to connect to server 127.0.0.1:1: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn bench_help() {
    let out = bench(&["-h"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    for flag in [
        "--server",
        "--concurrency",
        "--keys",
        "--value-size",
        "--read-ratio",
        "--duration",
        "--consistency",
        "--warmup",
        "--seed",
        "--progress",
        "--output",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from:\n{stdout}");
    }
}

#[test]
fn bench_bad_read_ratio() {
    let out = bench(&["-read-ratio=2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: -read-ratio must be between 0 and 1, got 2\n"
    );
}

#[test]
fn bench_unreachable_server() {
    let out = bench(&["-server=127.0.0.1:1", "-timeout=500ms", "-duration=1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("Error: failed to connect to server 127.0.0.1:1: "),
        "{stderr}"
    );
}

#[test]
fn silent_server_times_out() {
    // A socket that completes TCP handshakes (the kernel does, from the backlog) but never
    // speaks: the request must end at the timeout with a message naming the server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = listener.local_addr().expect("local address").to_string();
    let started = std::time::Instant::now();
    let out = client(&["-server", &address, "-timeout", "300ms", "get", "k"]);
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!("Error: get failed: no answer from server {address} within 300ms\n")
    );
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
    drop(listener);
}

#[test]
fn bench_counts_failed_requests_against_a_silent_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = listener.local_addr().expect("local address").to_string();
    let server = format!("-server={address}");
    let out = bench(&[
        &server,
        "-timeout=200ms",
        "-duration=1s",
        "-concurrency=2",
        "-warmup=false",
        "-o=json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let errors = report["errors"].as_u64().unwrap();
    assert!(errors >= 2, "{report}");
    assert_eq!(report["total_ops"].as_u64(), Some(errors));
    assert_eq!(report["reads"]["ok"], 0);
    assert_eq!(report["writes"]["ok"], 0);
    assert_eq!(report["warmup"], serde_json::Value::Null);
    assert_eq!(report["concurrency"], 2);
    let first_error = report["first_error"].as_str().unwrap();
    assert!(
        first_error.ends_with(&format!("no answer from server {address} within 200ms")),
        "{first_error}"
    );
    // Its /metrics never answers either: the server CPU is unknown, and says why.
    assert_eq!(report["server_cpu_us_per_op"], serde_json::Value::Null);
    assert_eq!(report["server_cpu_seconds"], serde_json::Value::Null);
    assert_eq!(report["server_threads_max"], serde_json::Value::Null);
    assert_eq!(
        report["server_cpu_error"],
        format!("get metrics failed: no answer from server {address} within 200ms")
    );
    assert_eq!(report["server_nodes"][0]["server"], address);
    drop(listener);
}
