//! End to end over real server processes on 127.0.0.1: replication at each consistency level,
//! a killed node, hinted handoff, read repair, siblings, parallel clients, durability across
//! SIGKILL of every node, scans, and bad input.

mod common;

use common::{Cluster, eventually, get, put, put_with_context};
use distkv_proto::distkv::{self as pb, ConsistencyLevel::*};
use distkv_proto::internal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_on_one_node_get_from_another_at_every_level() {
    let c = Cluster::start(3, &[]).await;
    let mut a = c.kv(0).await;
    let mut b = c.kv(2).await;
    for (i, l) in [Some(One), Some(Quorum), Some(All), None]
        .into_iter()
        .enumerate()
    {
        let key = format!("k{i}");
        let r = put(&mut a, &key, &format!("v{i}"), l).await;
        assert!(r.success, "{}", r.error_message);
        // W + R > N at QUORUM, ALL and the defaults (R = W = 2 of 3): the read through another
        // node sees the write at once. At ONE it may have to wait for the other replicas.
        let got = if l == Some(One) {
            eventually("value visible on another node", || {
                let mut b = b.clone();
                let key = key.clone();
                async move {
                    let g = get(&mut b, &key, l).await;
                    (g.found && g.value == format!("v{i}").into_bytes()).then_some(g)
                }
            })
            .await
        } else {
            let g = get(&mut b, &key, l).await;
            assert_eq!(g.value, format!("v{i}").into_bytes(), "at {l:?}: {g:?}");
            g
        };
        assert_eq!(got.siblings.len(), 1);
        assert!(got.error_message.is_empty());
    }
    // A write at ALL is on every replica before it is acknowledged.
    assert!(put(&mut a, "all", "x", Some(All)).await.success);
    for i in 0..3 {
        let mut r = c.replica(i).await;
        let local = r
            .read(internal::ReplicaReadRequest { key: "all".into() })
            .await
            .unwrap()
            .into_inner();
        assert!(
            local.found,
            "node{} lacks a write acknowledged at ALL",
            i + 1
        );
    }
    // Read-your-write at ONE through another node, right away, in a healthy cluster.
    for i in 0..20 {
        let key = format!("one-{i}");
        assert!(put(&mut a, &key, "v", Some(One)).await.success);
        let g = get(&mut b, &key, Some(One)).await;
        assert!(
            g.found,
            "{key} written at ONE not found at ONE on another node"
        );
    }
    let missing = get(&mut b, "never-written", Some(Quorum)).await;
    assert!(!missing.found);
    assert!(missing.error_message.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_keeps_quorum_working_and_catches_up_through_hints() {
    let mut c = Cluster::start(3, &[]).await;
    c.kill(2);
    let mut a = c.kv(0).await;
    let w = put(&mut a, "during-outage", "v1", Some(Quorum)).await;
    assert!(w.success, "{}", w.error_message);
    let r = get(&mut a, "during-outage", Some(Quorum)).await;
    assert_eq!(r.value, b"v1");
    let w = put(&mut a, "one", "v", Some(One)).await;
    assert!(w.success, "{}", w.error_message);
    let r = get(&mut a, "one", Some(One)).await;
    assert_eq!(r.value, b"v", "{}", r.error_message);
    let mut b = c.kv(1).await;
    let r = get(&mut b, "during-outage", Some(One)).await;
    assert_eq!(r.value, b"v1", "{}", r.error_message);
    let all = put(&mut a, "all", "v", Some(All)).await;
    assert!(!all.success);
    assert!(
        all.error_message
            .contains("quorum not reached: needed 3, got 2"),
        "{}",
        all.error_message
    );
    let all = get(&mut a, "during-outage", Some(All)).await;
    assert!(
        all.error_message.contains("quorum not reached: needed 3"),
        "{}",
        all.error_message
    );

    // Back up: the hints held for it are delivered and it serves the writes it missed.
    c.restart(2).await;
    let r3 = c.replica(2).await;
    eventually("restarted node received its hints", || {
        let mut r3 = r3.clone();
        async move {
            let v = r3
                .read(internal::ReplicaReadRequest {
                    key: "during-outage".into(),
                })
                .await
                .ok()?
                .into_inner();
            v.found.then_some(())
        }
    })
    .await;
    let mut c3 = c.kv(2).await;
    let g = get(&mut c3, "during-outage", Some(All)).await;
    assert_eq!(g.value, b"v1", "{}", g.error_message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_repair_fixes_a_stale_replica() {
    // Hints are held back (long interval) so that only read repair can fix the stale replica.
    let mut c = Cluster::start(3, &["-hint-interval=1h"]).await;
    let mut a = c.kv(0).await;
    assert!(put(&mut a, "rr", "old", Some(All)).await.success);
    c.kill(2);
    assert!(put(&mut a, "rr", "new", Some(Quorum)).await.success);
    c.restart(2).await;
    let mut r3 = c.replica(2).await;
    let stale = r3
        .read(internal::ReplicaReadRequest { key: "rr".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(stale.found, "the restarted replica kept its old version");
    let g = get(&mut a, "rr", Some(All)).await;
    assert_eq!(g.value, b"new", "{}", g.error_message);
    assert_eq!(g.siblings.len(), 1);
    // The repair lands off the request path.
    eventually("stale replica repaired", || {
        let mut r3 = r3.clone();
        async move {
            let local = r3
                .read(internal::ReplicaReadRequest { key: "rr".into() })
                .await
                .ok()?
                .into_inner();
            let versions = distkv_cluster::Siblings::decode(&local.versions).ok()?;
            let values: Vec<_> = versions.live().iter().map(|v| v.value.clone()).collect();
            (values == vec![Some(b"new".to_vec())]).then_some(())
        }
    })
    .await;
}

/// Waits until a read at ALL through `client` returns `key` as exactly two siblings, the values
/// `want` (in any order); returns that read.
async fn two_siblings(
    client: &distkv_proto::distkv::dist_kv_client::DistKvClient<tonic::transport::Channel>,
    key: &str,
    want: [&[u8]; 2],
) -> pb::GetResponse {
    let both = eventually("both siblings visible", || {
        let mut c = client.clone();
        async move {
            let g = get(&mut c, key, Some(All)).await;
            (g.siblings.len() == 2).then_some(g)
        }
    })
    .await;
    let mut values: Vec<&[u8]> = both.siblings.iter().map(|s| s.value.as_slice()).collect();
    values.sort();
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(values, want, "{key}: {both:?}");
    both
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_become_siblings_and_a_put_with_context_resolves_them() {
    let c = Cluster::start(3, &[]).await;
    let mut a = c.kv(0).await;
    let mut b = c.kv(1).await;
    assert!(put(&mut a, "doc", "base", Some(All)).await.success);
    let base = get(&mut a, "doc", Some(All)).await;
    // Two writers that both read `base` write concurrently.
    let w1 = put_with_context(&mut a, "doc", "from-a", base.context.clone()).await;
    let w2 = put_with_context(&mut b, "doc", "from-b", base.context.clone()).await;
    assert!(w1.success && w2.success);
    let both = two_siblings(&a, "doc", [b"from-a", b"from-b"]).await;
    // The deterministic winner for old clients is one of them, the same on every node.
    let other = get(&mut b, "doc", Some(All)).await;
    assert_eq!(both.value, other.value);
    // A put with the context of that read supersedes both.
    let merged = put_with_context(&mut b, "doc", "merged", both.context.clone()).await;
    assert!(merged.success);
    let g = get(&mut a, "doc", Some(All)).await;
    assert_eq!(g.siblings.len(), 1);
    assert_eq!(g.value, b"merged");
    // Sequential writes without a context overwrite, as the original's clients expect.
    assert!(put(&mut a, "doc", "plain-1", Some(Quorum)).await.success);
    assert!(put(&mut a, "doc", "plain-2", Some(Quorum)).await.success);
    let g = get(&mut a, "doc", Some(Quorum)).await;
    assert_eq!((g.value.as_slice(), g.siblings.len()), (&b"plain-2"[..], 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_clients_write_a_hundred_keys_each_in_parallel() {
    let c = Cluster::start(3, &["-wal-sync=never"]).await;
    let mut tasks = Vec::new();
    for client in 0..10 {
        let mut kv = c.kv(client % 3).await;
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let r = put(
                    &mut kv,
                    &format!("c{client}-k{i}"),
                    &format!("v{client}-{i}"),
                    None,
                )
                .await;
                assert!(r.success, "{}", r.error_message);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut kv = c.kv(1).await;
    for client in 0..10 {
        for i in 0..100 {
            let g = get(&mut kv, &format!("c{client}-k{i}"), None).await;
            assert_eq!(g.value, format!("v{client}-{i}").into_bytes());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_of_every_node() {
    let mut c = Cluster::start(3, &[]).await;
    let mut a = c.kv(0).await;
    for i in 0..200 {
        let r = put(&mut a, &format!("durable-{i}"), &format!("v{i}"), None).await;
        assert!(r.success, "{}", r.error_message);
    }
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    c.wait_converged().await;
    let mut b = c.kv(1).await;
    for i in 0..200 {
        let g = get(&mut b, &format!("durable-{i}"), Some(All)).await;
        assert_eq!(
            g.value,
            format!("v{i}").into_bytes(),
            "durable-{i}: {}",
            g.error_message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_is_ordered_and_paged_across_the_cluster() {
    let c = Cluster::start(3, &[]).await;
    let mut a = c.kv(0).await;
    for i in 0..57 {
        assert!(
            put(&mut a, &format!("scan/{i:03}"), &format!("{i}"), None)
                .await
                .success
        );
    }
    assert!(put(&mut a, "other", "x", None).await.success);
    let del = a
        .delete(pb::DeleteRequest {
            key: "scan/010".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(del.success, "{}", del.error_message);
    let mut b = c.kv(2).await;
    let mut keys = Vec::new();
    let mut token = String::new();
    loop {
        let page = b
            .scan(pb::ScanRequest {
                prefix: "scan/".into(),
                limit: 7,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.items.len() <= 7);
        keys.extend(page.items.into_iter().map(|kv| kv.key));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let want: Vec<String> = (0..57)
        .filter(|&i| i != 10)
        .map(|i| format!("scan/{i:03}"))
        .collect();
    assert_eq!(keys, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_pages_are_cut_by_bytes_to_fit_a_message() {
    // A page's budget is a quarter of -max-message-size (here 312,500 bytes): 100,000-byte
    // values come two to a page, whatever the limit asks, and every key still comes once.
    let c = Cluster::start(
        2,
        &[
            "-replicas=2",
            "-max-value-size=100000",
            "-max-key-size=100",
            "-max-message-size=1250000",
        ],
    )
    .await;
    let mut a = c.kv(0).await;
    let value = "v".repeat(100_000);
    for i in 0..9 {
        let r = put(&mut a, &format!("big/{i}"), &value, Some(All)).await;
        assert!(r.success, "{}", r.error_message);
    }
    let mut keys = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = a
            .scan(pb::ScanRequest {
                prefix: "big/".into(),
                limit: 1000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!((1..=2).contains(&page.items.len()), "{}", page.items.len());
        keys.extend(page.items.into_iter().map(|kv| kv.key));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(keys, (0..9).map(|i| format!("big/{i}")).collect::<Vec<_>>());
    assert!(pages >= 5, "{pages} pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let c = Cluster::start(
        1,
        &[
            "-replicas=1",
            "-read-quorum=1",
            "-write-quorum=1",
            "-max-value-size=1000",
            "-max-key-size=100",
            "-max-batch-items=3",
            "-max-message-size=1100000",
        ],
    )
    .await;
    let mut a = c.kv(0).await;
    // A message over -max-message-size is refused before it is decoded, and says why.
    let huge = (0..1200)
        .map(|i| (format!("h{i}"), vec![b'x'; 1000]))
        .collect();
    let e = a
        .batch_put(pb::BatchPutRequest {
            items: huge,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("too large"), "{e:?}");
    let r = put(&mut a, "", "v", None).await;
    assert!(!r.success);
    assert_eq!(r.error_message, "key must not be empty");
    let big = "x".repeat(1001);
    let r = put(&mut a, "k", &big, None).await;
    assert_eq!(r.error_message, "value is 1001 bytes, the limit is 1000");
    let g = get(&mut a, "", None).await;
    assert_eq!(g.error_message, "key must not be empty");
    let long_key = "k".repeat(101);
    let r = put(&mut a, &long_key, "v", None).await;
    assert_eq!(r.error_message, "key is 101 bytes, the limit is 100");
    let g = get(&mut a, &long_key, None).await;
    assert_eq!(g.error_message, "key is 101 bytes, the limit is 100");
    let too_many = (0..4).map(|i| (format!("b{i}"), b"v".to_vec())).collect();
    let b = a
        .batch_put(pb::BatchPutRequest {
            items: too_many,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!b.success);
    assert_eq!(b.error_message, "batch has 4 items, the limit is 3");
    assert!(
        !get(&mut a, "b0", None).await.found,
        "a refused batch wrote nothing"
    );
    let bad_ctx = put_with_context(&mut a, "k", "v", vec![0xff, 0xfe]).await;
    assert!(
        bad_ctx.error_message.contains("invalid causal context"),
        "{}",
        bad_ctx.error_message
    );
    let mut items = std::collections::HashMap::new();
    items.insert("ok".to_string(), b"v".to_vec());
    items.insert(String::new(), b"v".to_vec());
    let b = a
        .batch_put(pb::BatchPutRequest {
            items,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!b.success);
    assert_eq!(b.failed_keys, vec![String::new()]);
    assert_eq!(get(&mut a, "ok", None).await.value, b"v");
    let s = a
        .scan(pb::ScanRequest {
            prefix: "k".into(),
            ..Default::default()
        })
        .await;
    assert!(s.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_key_and_value_allowed_travel_between_replicas() {
    // Default limits: 64 KiB keys, 4 MiB values; every replica must take them, and a read
    // through another node must bring them back (peer messages carry them with versions).
    let c = Cluster::start(3, &[]).await;
    let key = "k".repeat(64 * 1024);
    let value = "v".repeat(4 * 1024 * 1024);
    let mut a = c.kv(0).await;
    let r = put(&mut a, &key, &value, Some(All)).await;
    assert!(r.success, "{}", r.error_message);
    let b = c.kv(2).await;
    let g = b
        .max_decoding_message_size(64 << 20)
        .get(pb::GetRequest {
            key: key.clone(),
            consistency_level: All as i32,
            consistency_set: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(g.found, "{}", g.error_message);
    assert_eq!(g.value.len(), value.len());
    let r = put(&mut a, &format!("{key}k"), "v", None).await;
    assert_eq!(r.error_message, "key is 65537 bytes, the limit is 65536");
}

#[test]
fn invalid_configuration_is_one_line_and_a_nonzero_exit() {
    let out = common::server_command()
        .args(["-replicas=3", "-read-quorum=5", "-data-dir=/nonexistent/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("R must be between 1 and N, got R=5, N=3"),
        "{err}"
    );
    let out = common::server_command()
        .args(["-no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A bad value in the environment names the variable; exit 1, as any bad configuration.
    let out = common::server_command()
        .env("DISTKV_REPLICAS", "three")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable DISTKV_REPLICAS"),
        "{err}"
    );
    // -print-config checks what a start would check, and says so.
    let out = common::server_command()
        .args(["-print-config", "-replicas=3", "-read-quorum=5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("R must be between 1 and N"), "{err}");
    let out = common::server_command()
        .args([
            "-print-config",
            "-replicas=1",
            "-read-quorum=1",
            "-write-quorum=1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let toml = String::from_utf8_lossy(&out.stdout);
    assert!(toml.contains("replicas = 1  # flag\n"), "{toml}");
    assert!(
        toml.ends_with("# valid: a node starts with these settings\n"),
        "{toml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sigint_and_sighup_stop_gracefully_with_exit_zero_and_keep_data() {
    let mut c = Cluster::start(1, &["-replicas=1", "-read-quorum=1", "-write-quorum=1"]).await;
    for (round, signal) in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP]
        .into_iter()
        .enumerate()
    {
        let mut a = c.kv(0).await;
        let key = format!("k{round}");
        assert!(put(&mut a, &key, "v", None).await.success);
        let status = c.stop_with(0, signal).await;
        assert!(status.success(), "signal {signal}: {status:?}");
        assert!(c.log(0).contains("shut down cleanly"), "signal {signal}");
        c.restart(0).await;
        let mut a = c.kv(0).await;
        assert_eq!(get(&mut a, &key, None).await.value, b"v");
    }
}

/// A key whose N=2 replicas are node1 and node2 (node3 is the next node on the ring).
fn key_on_node1_and_node2() -> String {
    let mut ring = distkv_cluster::Ring::new();
    for id in ["node1", "node2", "node3"] {
        ring.add_node(id, 64);
    }
    (0..)
        .map(|i| format!("sloppy-{i}"))
        .find(|k| {
            let mut p = ring.preference_list(k.as_bytes(), 2);
            p.sort();
            p == ["node1", "node2"]
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_quorum_refuses_what_sloppy_quorum_hands_to_a_stand_in() {
    let key = key_on_node1_and_node2();
    let q = ["-replicas=2", "-read-quorum=1", "-write-quorum=2"];
    // Strict (the default): with node2 down only one replica can ack.
    let mut strict = Cluster::start(3, &q).await;
    strict.kill(1);
    let mut a = strict.kv(0).await;
    let r = put(&mut a, &key, "v", None).await;
    assert!(!r.success);
    assert!(
        r.error_message
            .contains("quorum not reached: needed 2, got 1"),
        "{}",
        r.error_message
    );
    drop(strict);

    // Sloppy: node3 stands in for node2 and later hands the write over.
    let mut flags = q.to_vec();
    flags.push("-sloppy-quorum");
    let mut sloppy = Cluster::start(3, &flags).await;
    sloppy.kill(1);
    let mut a = sloppy.kv(0).await;
    let r = put(&mut a, &key, "v", None).await;
    assert!(r.success, "{}", r.error_message);
    sloppy.restart(1).await;
    let r2 = sloppy.replica(1).await;
    eventually("the stand-in delivered the write to node2", || {
        let mut r2 = r2.clone();
        let key = key.clone();
        async move {
            let v = r2
                .read(internal::ReplicaReadRequest { key })
                .await
                .ok()?
                .into_inner();
            v.found.then_some(())
        }
    })
    .await;
}

/// A peer that is alive but silent (SIGSTOP: connections open, nothing answers) is the worst
/// case for a coordinator: nothing fails fast. QUORUM still answers as soon as the two live
/// replicas do, and ALL fails with the quorum error once the request timeout (2 s) has passed,
/// not later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_never_holds_a_request_past_its_timeout() {
    let c = Cluster::start(3, &[]).await;
    let mut a = c.kv(0).await;
    assert!(put(&mut a, "warm", "v", Some(All)).await.success);
    let pid = c.nodes[2].child.as_ref().unwrap().id() as i32;
    // SAFETY: signals to our own child; SIGCONT is sent before the test ends.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let started = std::time::Instant::now();
    let w = put(&mut a, "q", "v", Some(Quorum)).await;
    let quorum_took = started.elapsed();
    let started = std::time::Instant::now();
    let all = put(&mut a, "all", "v", Some(All)).await;
    let all_took = started.elapsed();
    let g = get(&mut a, "q", Some(Quorum)).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(w.success, "{}", w.error_message);
    assert_eq!(g.value, b"v", "{}", g.error_message);
    assert!(
        quorum_took < std::time::Duration::from_secs(2),
        "QUORUM waited {quorum_took:?} for the silent replica"
    );
    assert!(!all.success);
    assert!(
        all.error_message
            .contains("quorum not reached: needed 3, got 2"),
        "{}",
        all.error_message
    );
    assert!(
        all_took < std::time::Duration::from_millis(3500),
        "ALL took {all_took:?}, the request timeout is 2 s"
    );
}

#[test]
fn an_unknown_flag_is_named_as_go_names_it_and_exits_2() {
    let out = common::server_command()
        .args(["-node-id=x", "-bogus=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next(),
        Some("flag provided but not defined: -bogus"),
        "{stderr}"
    );
}

/// Overload is refused at once, with the limit named, and never queued without bound: with
/// one request allowed in flight and that one waiting on a silent replica, the next is told
/// the server is busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_concurrency_limit_are_refused_at_once() {
    let c = Cluster::start(3, &["-max-concurrent-requests=1"]).await;
    let pid = c.nodes[2].child.as_ref().unwrap().id() as i32;
    // SAFETY: signals to our own child; SIGCONT is sent before the test ends.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let mut a = c.kv(0).await;
    let mut slow = a.clone();
    // A write at ALL waits for the stopped replica until the request timeout (2 s).
    let stuck = tokio::spawn(async move { put(&mut slow, "slow", "v", Some(All)).await });
    let address = c.nodes[0].address.clone();
    eventually("the slow request is in flight", || {
        let address = address.clone();
        async move {
            let m = common::http_get(&address, "/metrics").await?;
            m.contains("distkv_requests_in_flight 1.0").then_some(())
        }
    })
    .await;
    let busy = put(&mut a, "fast", "v", Some(One)).await;
    assert_eq!(
        busy.error_message,
        "server busy: 1 requests in flight (-max-concurrent-requests); retry later"
    );
    let stuck = stuck.await.unwrap();
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(!stuck.success);
    // Once the slot is free, requests are served again.
    assert!(put(&mut a, "fast", "v", Some(One)).await.success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_give_their_places_back() {
    use tokio::io::AsyncReadExt;
    let c = Cluster::start(1, &["-max-connections=16"]).await;
    let address = c.nodes[0].address.clone();
    let mut silent = Vec::new();
    for _ in 0..16 {
        silent.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    // With every place taken, a new client waits (in the kernel's backlog)...
    let waiting = tokio::spawn({
        let address = address.clone();
        async move { common::http_get(&address, "/health").await }
    });
    // ...until the node closes the connections that sent nothing (after 10 s each).
    for mut s in silent {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(common::DEADLINE, s.read(&mut buf))
            .await
            .expect("the node never closed a silent connection");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "a silent connection got {read:?}"
        );
    }
    let served = tokio::time::timeout(common::DEADLINE, waiting)
        .await
        .expect("the waiting client was never served")
        .unwrap();
    assert!(
        served.is_some(),
        "/health did not answer once places were free"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_writes_without_context_overwrite_through_any_node() {
    let c = Cluster::start(3, &[]).await;
    let mut clients = [c.kv(0).await, c.kv(1).await, c.kv(2).await];
    // Through one node, at QUORUM: its coordinator holds each write before it answers, and
    // takes what it holds as the next one's context.
    for i in 0..5 {
        let value = format!("same-node-{i}");
        let w = put(&mut clients[1], "seq", &value, Some(Quorum)).await;
        assert!(w.success, "{}", w.error_message);
        let g = get(&mut clients[0], "seq", Some(Quorum)).await;
        assert_eq!(
            (g.value.as_slice(), g.siblings.len()),
            (value.as_bytes(), 1),
            "after {value}: {g:?}"
        );
    }
    // Through every node in turn, at ALL: every replica holds each write once it is
    // acknowledged, so whichever coordinates the next one overwrites it.
    for round in 0..2 {
        for (i, client) in clients.iter_mut().enumerate() {
            let value = format!("v{round}-{i}");
            let w = put(client, "seq", &value, Some(All)).await;
            assert!(w.success, "{}", w.error_message);
            let g = get(client, "seq", Some(Quorum)).await;
            assert_eq!(
                (g.value.as_slice(), g.siblings.len()),
                (value.as_bytes(), 1),
                "after {value}: {g:?}"
            );
        }
    }
    // Deletes without a context too: the key reads as absent everywhere.
    let mut a = c.kv(1).await;
    let d = a
        .delete(pb::DeleteRequest {
            key: "seq".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(d.success, "{}", d.error_message);
    for client in clients.iter_mut() {
        assert!(!get(client, "seq", Some(All)).await.found);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_missed_a_write_keeps_it_as_a_sibling_of_its_own() {
    // Hints are not delivered during the test, so the restarted node stays behind.
    let mut c = Cluster::start(3, &["-hint-interval=1h"]).await;
    c.kill(1);
    let mut a = c.kv(0).await;
    let w = put(&mut a, "doc", "while-n2-was-down", Some(Quorum)).await;
    assert!(w.success, "{}", w.error_message);
    c.restart(1).await;
    let mut n2 = c.replica(1).await;
    let held = n2
        .read(internal::ReplicaReadRequest { key: "doc".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!held.found, "the restarted node already holds the write");
    // A write without a context through n2 (a replica, so it coordinates): n2 did not hold the
    // earlier write, so the two are kept side by side.
    let mut through_n2 = c.kv(1).await;
    let w = put(&mut through_n2, "doc", "through-n2", Some(One)).await;
    assert!(w.success, "{}", w.error_message);
    two_siblings(&a, "doc", [b"through-n2", b"while-n2-was-down"]).await;
    // Once read repair has given every replica both, a write without a context overwrites
    // both, whichever replica coordinates it.
    for i in 0..3 {
        let r = c.replica(i).await;
        eventually("read repair gave every replica both versions", || {
            let mut r = r.clone();
            async move {
                let v = r
                    .read(internal::ReplicaReadRequest { key: "doc".into() })
                    .await
                    .ok()?
                    .into_inner();
                let versions = distkv_cluster::Siblings::decode(&v.versions).ok()?;
                (versions.live().len() == 2).then_some(())
            }
        })
        .await;
    }
    let w = put(&mut a, "doc", "resolved", Some(All)).await;
    assert!(w.success, "{}", w.error_message);
    let g = get(&mut a, "doc", Some(All)).await;
    assert_eq!(
        (g.value.as_slice(), g.siblings.len()),
        (&b"resolved"[..], 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_acknowledged_while_a_node_is_killed_mid_flight_survive() {
    // One node with every write synced: writes are applied on the request's task and
    // acknowledged when the engine's sync thread has synced them. Kill it while 16 writers
    // are in flight; everything acknowledged before the kill must be there after the restart.
    let mut c = Cluster::start(
        1,
        &[
            "-replicas=1",
            "-read-quorum=1",
            "-write-quorum=1",
            "-wal-sync=always",
        ],
    )
    .await;
    let acked = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..16 {
        let mut client = c.kv(0).await;
        let (acked, stop) = (acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let key = format!("w{w}-{i}");
                let r = client
                    .put(pb::PutRequest {
                        key: key.clone(),
                        value: key.as_bytes().to_vec(),
                        ..Default::default()
                    })
                    .await;
                match r {
                    Ok(r) if r.get_ref().success => acked.lock().push(key),
                    _ => return,
                }
            }
        }));
    }
    eventually("writers made progress", || {
        let n = acked.lock().len();
        async move { (n >= 500).then_some(()) }
    })
    .await;
    c.kill(0);
    // What was acknowledged before the kill: writers may still record replies in flight.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().clone();
    c.restart(0).await;
    let mut client = c.kv(0).await;
    for key in &acked {
        let g = get(&mut client, key, None).await;
        assert_eq!(
            (g.found, g.value.as_slice()),
            (true, key.as_bytes()),
            "{key} was acknowledged before the kill: {}",
            g.error_message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_aware_client_sends_each_key_to_its_first_replica_and_falls_back() {
    use distkv_client::{ClientConfig, ClusterClient};
    // Four nodes, two replicas a key: most keys have nodes that are not their replicas.
    let mut c = Cluster::start(4, &["-replicas=2", "-read-quorum=1", "-write-quorum=1"]).await;
    let client = ClusterClient::connect(ClientConfig {
        server: c.nodes[0].address.clone(),
        ..ClientConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(client.connect_nodes().await, 4);
    let id_at = |address: &str| {
        c.nodes[c.nodes.iter().position(|n| n.address == address).unwrap()]
            .id
            .clone()
    };
    let router = client
        .router()
        .expect("a DistKV node tells its ring's tokens");
    assert_eq!(router.addresses().len(), 4);
    // A blind write of a new key is coordinated where it lands: its context names that
    // node alone, the key's first replica (with -write-quorum=1 the seed would otherwise
    // coordinate the keys it holds, and forward the others).
    for i in 0..20 {
        let key = format!("routed-{i}");
        let first = id_at(router.replicas(&key).next().unwrap());
        let written = client.put(key.as_str(), "v", None, None).await.unwrap();
        assert_eq!(written.clock.keys().collect::<Vec<_>>(), [&first], "{key}");
        let got = client.get(key.as_str(), None).await.unwrap();
        assert_eq!(got.value, b"v");
    }
    // A key whose first replica is killed: the routed call finds it unreachable and the
    // request goes to the seed, which has it coordinated by the other replica.
    let (key, victim) = (0..)
        .map(|i| format!("fallback-{i}"))
        .find_map(|key| {
            let first = router.replicas(&key).next().unwrap();
            (first != c.nodes[0].address).then(|| {
                (
                    key.clone(),
                    c.nodes.iter().position(|n| n.address == first).unwrap(),
                )
            })
        })
        .unwrap();
    let victim_id = c.nodes[victim].id.clone();
    c.kill(victim);
    let written = client.put(key.as_str(), "after", None, None).await.unwrap();
    assert!(
        !written.clock.contains_key(&victim_id),
        "{:?}",
        written.clock
    );
    assert_eq!(
        client.get(key.as_str(), None).await.unwrap().value,
        b"after"
    );
}
