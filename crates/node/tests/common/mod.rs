//! A cluster of real `distkv-server` processes on 127.0.0.1 with ephemeral ports, for end-to-end
//! tests. Every process is killed when the `Cluster` is dropped, also when a test fails.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use distkv_proto::distkv::admin_service_client::AdminServiceClient;
use distkv_proto::distkv::dist_kv_client::DistKvClient;
use distkv_proto::distkv::{self as pb, ConsistencyLevel};
use distkv_proto::internal::replica_client::ReplicaClient;
use tonic::transport::Channel;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Node {
    pub id: String,
    pub address: String,
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub child: Option<Child>,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    _root: tempfile::TempDir,
}

/// A `distkv-server` command that inherits none of the runner's `DISTKV_*` variables, so what a
/// test starts depends only on what the test passes.
pub fn server_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_distkv-server"));
    without_distkv_variables(&mut command);
    command
}

/// Keeps the runner's `DISTKV_*` variables from `command` (and the server it starts).
pub fn without_distkv_variables(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DISTKV_") {
            command.env_remove(name);
        }
    }
    command
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, failing the test after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Cluster {
    /// Starts `n` nodes that join through the first one, and waits until every node sees
    /// every other alive.
    pub async fn start(n: usize, extra: &[&str]) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            nodes: Vec::new(),
            _root: root,
        };
        for _ in 0..n {
            c.define(extra);
        }
        for i in 0..n {
            c.spawn(i);
        }
        c.wait_converged().await;
        c
    }

    /// Defines node `node{len+1}` (seeded with the first node) without starting it.
    fn define(&mut self, extra: &[&str]) -> usize {
        let i = self.nodes.len();
        let id = format!("node{}", i + 1);
        let address = format!("127.0.0.1:{}", free_port());
        let dir = self._root.path().join(&id);
        let mut args = vec![
            format!("-node-id={id}"),
            format!("-address={address}"),
            format!("-data-dir={}", dir.display()),
            "-gossip-interval=100ms".to_string(),
            "-heartbeat-interval=100ms".to_string(),
            "-suspect-timeout=1s".to_string(),
            "-dead-timeout=3s".to_string(),
            "-hint-interval=200ms".to_string(),
            "-request-timeout=2s".to_string(),
            "-virtual-nodes=64".to_string(),
            "-log-level=info".to_string(),
        ];
        if i > 0 {
            args.push(format!("-seed-nodes={}", self.nodes[0].address));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        self.nodes.push(Node {
            id,
            address,
            dir,
            args,
            child: None,
        });
        i
    }

    /// Starts one more node, seeded with the first; returns its index. Does not wait.
    pub fn add_node(&mut self, extra: &[&str]) -> usize {
        let i = self.define(extra);
        self.spawn(i);
        i
    }

    /// The log of node `i` so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(format!("{}.log", self.nodes[i].dir.display())).unwrap_or_default()
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(format!("{}.log", node.dir.display())).unwrap();
        let child = server_command()
            .args(&node.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Sends SIGTERM to node `i` and waits (bounded) for it to exit; returns its exit status.
    pub async fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        self.stop_with(i, libc::SIGTERM).await
    }

    /// Sends `signal` to node `i` and waits (bounded) for it to exit; returns its exit status.
    pub async fn stop_with(&mut self, i: usize, signal: i32) -> std::process::ExitStatus {
        let mut c = self.nodes[i].child.take().expect("node is running");
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(c.id() as i32, signal) };
        eventually("node stops on SIGTERM", || {
            let status = c.try_wait().unwrap();
            async move { status }
        })
        .await
    }

    /// Restarts node `i` with the same flags and waits until the cluster has converged again:
    /// every node sees every member ALIVE (so every node has heard the restarted one).
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_converged().await;
    }

    /// Waits until every running node sees every running member ALIVE (joined, heartbeats
    /// heard) and every stopped one as not alive.
    pub async fn wait_converged(&self) {
        let running: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id.clone())
            .collect();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let addr = node.address.clone();
            let running = running.clone();
            eventually(&format!("{} sees {running:?} alive", node.id), || {
                let addr = addr.clone();
                let running = running.clone();
                async move {
                    let s = status(&addr).await?;
                    let alive: Vec<String> = s
                        .nodes
                        .iter()
                        .filter(|n| n.status == pb::NodeStatus::Alive as i32)
                        .map(|n| n.node_id.clone())
                        .collect();
                    running.iter().all(|r| alive.contains(r)).then_some(())
                }
            })
            .await;
        }
    }

    /// Waits until every running node sees node `i` with `status`.
    pub async fn wait_status(&self, i: usize, status_wanted: pb::NodeStatus) {
        let id = self.nodes[i].id.clone();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let addr = node.address.clone();
            let id = id.clone();
            eventually(&format!("{} sees {id} {status_wanted:?}", node.id), || {
                let addr = addr.clone();
                let id = id.clone();
                async move {
                    let s = status(&addr).await?;
                    s.nodes
                        .iter()
                        .any(|n| n.node_id == id && n.status == status_wanted as i32)
                        .then_some(())
                }
            })
            .await;
        }
    }

    pub async fn kv(&self, i: usize) -> DistKvClient<Channel> {
        DistKvClient::new(connect(&self.nodes[i].address).await.unwrap())
    }

    pub async fn admin(&self, i: usize) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(connect(&self.nodes[i].address).await.unwrap())
    }

    pub async fn replica(&self, i: usize) -> ReplicaClient<Channel> {
        ReplicaClient::new(connect(&self.nodes[i].address).await.unwrap())
    }

    pub fn index_of(&self, id: &str) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// The cluster status as the node at `address` reports it; `None` when it does not answer.
pub async fn status(address: &str) -> Option<pb::ClusterStatusResponse> {
    let mut admin = AdminServiceClient::new(connect(address).await.ok()?);
    Some(
        admin
            .get_cluster_status(pb::ClusterStatusRequest {})
            .await
            .ok()?
            .into_inner(),
    )
}

/// The body of a plain `GET path` to the node's HTTP endpoints; `None` when it does not answer.
pub async fn http_get(address: &str, path: &str) -> Option<String> {
    let (status, body) = http_get_status(address, path).await?;
    (status == 200).then_some(body)
}

/// The HTTP status and body of `GET path`; `None` when the node does not answer.
pub async fn http_get_status(address: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(address).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

pub async fn connect(address: &str) -> Result<Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
}

pub fn level(l: Option<ConsistencyLevel>) -> (i32, bool) {
    match l {
        Some(l) => (l as i32, true),
        None => (0, false),
    }
}

pub async fn put(
    c: &mut DistKvClient<Channel>,
    key: &str,
    value: &str,
    l: Option<ConsistencyLevel>,
) -> pb::PutResponse {
    let (consistency_level, consistency_set) = level(l);
    c.put(pb::PutRequest {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        consistency_level,
        consistency_set,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

pub async fn put_with_context(
    c: &mut DistKvClient<Channel>,
    key: &str,
    value: &str,
    context: Vec<u8>,
) -> pb::PutResponse {
    c.put(pb::PutRequest {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        context,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

pub async fn get(
    c: &mut DistKvClient<Channel>,
    key: &str,
    l: Option<ConsistencyLevel>,
) -> pb::GetResponse {
    let (consistency_level, consistency_set) = level(l);
    c.get(pb::GetRequest {
        key: key.into(),
        consistency_level,
        consistency_set,
    })
    .await
    .unwrap()
    .into_inner()
}
