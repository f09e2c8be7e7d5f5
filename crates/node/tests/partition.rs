//! A network partition between real nodes, in network namespaces this test creates.
//!
//! Topology: three node namespaces and one client namespace, each attached to two bridges that
//! live in a namespace of their own: a *cluster* network (10.77.0.0/24, what nodes advertise
//! and dial each other on) and a *client* network (10.78.0.0/24, what the test dials). Cutting
//! node3's link to the cluster bridge partitions it from the other nodes while the test can
//! still reach it. Nothing touches the host's own interfaces, routes or firewall; every
//! namespace (and with it every link) is deleted when the test ends, even when it fails.
//!
//! The scenario: write at ALL; cut node3 off; write the same key at ONE on both sides; heal;
//! with hints held back (a one-hour interval) and no reads until the end, only anti-entropy can
//! converge the replicas, and the two concurrent versions must survive on every replica as
//! siblings, which a write with their context then resolves.
//!
//! It needs root and iproute2's `ip`. Without them it says so and passes, unless
//! `REQUIRE_NETNS_TEST=1` (as CI sets), when it fails.

mod common;

use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use distkv_proto::distkv::dist_kv_client::DistKvClient;
use distkv_proto::distkv::{self as pb, ConsistencyLevel};
use distkv_proto::internal::{self, replica_client::ReplicaClient};

const PORT: u16 = 7000;
const DEADLINE: Duration = Duration::from_secs(60);

/// The namespaces and processes of one run; dropping it removes them all.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    nodes: Vec<Option<Child>>,
    _dir: tempfile::TempDir,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Creates the namespaces and both networks.
    fn build() -> Result<Lab, String> {
        let prefix = format!("dkv{}", std::process::id() % 100_000);
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            nodes: Vec::new(),
            _dir: tempfile::tempdir().map_err(|e| e.to_string())?,
        };
        let br = lab.ns("br");
        for name in ["br", "n1", "n2", "n3", "cl"] {
            let ns = lab.ns(name);
            ip(&["netns", "add", &ns])?;
            lab.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        for bridge in ["cbr", "kbr"] {
            ip(&["-n", &br, "link", "add", bridge, "type", "bridge"])?;
            ip(&["-n", &br, "link", "set", bridge, "up"])?;
        }
        // Cluster network: the three nodes. Client network: the nodes and the client.
        for (i, name) in ["n1", "n2", "n3", "cl"].iter().enumerate() {
            let ns = lab.ns(name);
            let n = i + 1;
            for (bridge, net, dev) in [("cbr", "10.77.0", "cl0"), ("kbr", "10.78.0", "kl0")] {
                if bridge == "cbr" && *name == "cl" {
                    continue;
                }
                let host_end = format!("{}{name}", &bridge[..1]);
                ip(&[
                    "-n", &br, "link", "add", &host_end, "type", "veth", "peer", "name", dev,
                    "netns", &ns,
                ])?;
                ip(&["-n", &br, "link", "set", &host_end, "master", bridge, "up"])?;
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{net}.{n}/24"),
                    "dev",
                    dev,
                ])?;
                ip(&["-n", &ns, "link", "set", dev, "up"])?;
            }
        }
        Ok(lab)
    }

    /// Starts node `n` (1-based) in its namespace.
    fn start_node(&mut self, n: usize) {
        let dir = self._dir.path().join(format!("node{n}"));
        let log = std::fs::File::create(self._dir.path().join(format!("node{n}.log"))).unwrap();
        let mut args: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            self.ns(&format!("n{n}")),
            env!("CARGO_BIN_EXE_distkv-server").into(),
            format!("-node-id=node{n}"),
            format!("-address=0.0.0.0:{PORT}"),
            format!("-advertise-address=10.77.0.{n}:{PORT}"),
            format!("-data-dir={}", dir.display()),
            "-gossip-interval=100ms".into(),
            "-heartbeat-interval=100ms".into(),
            "-suspect-timeout=1s".into(),
            "-dead-timeout=3s".into(),
            "-request-timeout=1s".into(),
            "-hint-interval=1h".into(),
            "-anti-entropy-interval=1s".into(),
            "-virtual-nodes=32".into(),
            "-log-level=info".into(),
        ];
        if n > 1 {
            args.push(format!("-seed-nodes=10.77.0.1:{PORT}"));
        }
        let child = common::without_distkv_variables(&mut Command::new("ip"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        while self.nodes.len() < n {
            self.nodes.push(None);
        }
        self.nodes[n - 1] = Some(child);
    }

    /// Cuts node `n` off the cluster network (it stays reachable on the client network).
    fn cut(&self, n: usize) -> Result<(), String> {
        ip(&[
            "-n",
            &self.ns("br"),
            "link",
            "set",
            &format!("cn{n}"),
            "down",
        ])
    }

    fn heal(&self, n: usize) -> Result<(), String> {
        ip(&["-n", &self.ns("br"), "link", "set", &format!("cn{n}"), "up"])
    }

    fn logs(&self) -> String {
        (1..=3)
            .map(|n| {
                let path = self._dir.path().join(format!("node{n}.log"));
                format!(
                    "--- node{n} ---\n{}",
                    std::fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.nodes.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `f` on a thread inside the namespace `ns`, with a runtime of its own, so that every
/// socket it opens lives there.
fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        // SAFETY: setns(2) on this thread only, with a valid namespace file descriptor.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn can_run() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root".into());
    }
    Command::new("ip")
        .arg("-V")
        .output()
        .map_err(|e| format!("no `ip` command: {e}"))?;
    Ok(())
}

async fn connect(n: usize) -> tonic::transport::Channel {
    let start = Instant::now();
    loop {
        let ep = tonic::transport::Endpoint::from_shared(format!("http://10.78.0.{n}:{PORT}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5));
        if let Ok(ch) = ep.connect().await {
            return ch;
        }
        assert!(start.elapsed() < DEADLINE, "node{n} does not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn put(
    n: usize,
    key: &str,
    value: &str,
    level: ConsistencyLevel,
    context: Vec<u8>,
) -> pb::PutResponse {
    DistKvClient::new(connect(n).await)
        .put(pb::PutRequest {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            consistency_level: level as i32,
            consistency_set: true,
            context,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The live values node `n` holds for `key` in its own store, sorted.
async fn local_values(n: usize, key: &str) -> Vec<String> {
    let v = ReplicaClient::new(connect(n).await)
        .read(internal::ReplicaReadRequest { key: key.into() })
        .await
        .unwrap()
        .into_inner();
    let mut values: Vec<String> = distkv_cluster::Siblings::decode(&v.versions)
        .map(|s| {
            s.versions()
                .iter()
                .filter_map(|v| {
                    v.value
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    values.sort();
    values
}

async fn sees_all_alive(n: usize) -> bool {
    let s = distkv_proto::distkv::admin_service_client::AdminServiceClient::new(connect(n).await)
        .get_cluster_status(pb::ClusterStatusRequest {})
        .await
        .map(|r| r.into_inner());
    s.is_ok_and(|s| {
        s.nodes.len() == 3
            && s.nodes
                .iter()
                .all(|x| x.status == pb::NodeStatus::Alive as i32)
    })
}

#[test]
fn a_partitioned_node_converges_by_anti_entropy_and_keeps_concurrent_writes_as_siblings() {
    if let Err(why) = can_run() {
        assert!(
            std::env::var("REQUIRE_NETNS_TEST").as_deref() != Ok("1"),
            "the partition test cannot run: {why}"
        );
        eprintln!("SKIPPED: the partition test needs root and iproute2 ({why})");
        return;
    }
    let mut lab = match Lab::build() {
        Ok(lab) => lab,
        Err(e) => panic!("cannot build the network namespaces: {e}"),
    };
    for n in 1..=3 {
        lab.start_node(n);
    }
    let client = lab.ns("cl");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        in_namespace(&client, async {
            for n in 1..=3 {
                eventually(&format!("node{n} sees three alive nodes"), || async move {
                    sees_all_alive(n).await.then_some(())
                })
                .await;
            }
            let r = put(1, "k", "before", ConsistencyLevel::All, Vec::new()).await;
            assert!(r.success, "{}", r.error_message);
        });
        lab.cut(3).unwrap();
        in_namespace(&client, async {
            // Both sides accept a write at ONE.
            let left = put(1, "k", "left-side", ConsistencyLevel::One, Vec::new()).await;
            assert!(left.success, "{}", left.error_message);
            let right = put(3, "k", "right-side", ConsistencyLevel::One, Vec::new()).await;
            assert!(right.success, "{}", right.error_message);
            assert_eq!(local_values(3, "k").await, ["right-side"]);
            // Each side sees the other dead.
            eventually("node1 sees node3 dead", || async {
                let s = distkv_proto::distkv::admin_service_client::AdminServiceClient::new(
                    connect(1).await,
                )
                .get_cluster_status(pb::ClusterStatusRequest {})
                .await
                .ok()?
                .into_inner();
                s.nodes
                    .iter()
                    .any(|x| x.node_id == "node3" && x.status == pb::NodeStatus::Dead as i32)
                    .then_some(())
            })
            .await;
        });
        lab.heal(3).unwrap();
        in_namespace(&client, async {
            // Anti-entropy (every second) merges both sides on every replica.
            for n in 1..=3 {
                eventually(
                    &format!("node{n} holds both concurrent writes"),
                    || async move {
                        let v = local_values(n, "k").await;
                        (v == ["left-side", "right-side"]).then_some(())
                    },
                )
                .await;
            }
            for n in 1..=3 {
                eventually(
                    &format!("node{n} sees three alive nodes again"),
                    || async move { sees_all_alive(n).await.then_some(()) },
                )
                .await;
            }
            // A reader sees both siblings; a write with their context resolves them. (A read
            // at ALL right after the heal may still find a connection to a peer being remade,
            // and fail as a client would see it: retried.)
            let g = eventually("a read at ALL through node2 succeeds", || async {
                let g = DistKvClient::new(connect(2).await)
                    .get(pb::GetRequest {
                        key: "k".into(),
                        consistency_level: ConsistencyLevel::All as i32,
                        consistency_set: true,
                    })
                    .await
                    .ok()?
                    .into_inner();
                g.error_message.is_empty().then_some(g)
            })
            .await;
            assert_eq!(g.siblings.len(), 2, "{g:?}");
            let r = put(2, "k", "resolved", ConsistencyLevel::All, g.context).await;
            assert!(r.success, "{}", r.error_message);
            for n in 1..=3 {
                assert_eq!(local_values(n, "k").await, ["resolved"]);
            }
        });
        // The requests that timed out during the cut, arriving with their resets when it
        // healed, must not have made a node drop the connection (h2's guard against floods).
        let logs = lab.logs();
        assert!(
            !logs.contains("reset pending-accept streams reached limit"),
            "a node dropped a peer's connection after the heal"
        );
    }));
    if let Err(e) = result {
        eprintln!("{}", lab.logs());
        std::panic::resume_unwind(e);
    }
}
