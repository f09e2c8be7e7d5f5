//! TLS end to end, over real server processes on 127.0.0.1 with certificates made by the test:
//! put and get over TLS and mutual TLS, a plaintext client against a TLS node, client
//! certificates required and verified (none, or one from another CA, refused), an expired
//! server certificate, a node whose certificate comes from another CA kept out of the cluster,
//! and TLS between the nodes of a cluster.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use distkv_client::{Client, ClientConfig, Consistency, TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use common::{DEADLINE, free_port};

/// A CA and what it signs, written as PEM files into a directory.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    name: String,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca = Ca {
            issuer,
            dir: dir.to_path_buf(),
            name: name.to_string(),
        };
        std::fs::write(ca.ca_file(), ca.issuer.pem()).unwrap();
        ca
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A leaf certificate for 127.0.0.1 and localhost; returns (cert file, key file).
    fn leaf(&self, name: &str, expired: bool) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name.to_string());
        if expired {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = self.dir.join(format!("{}-{name}-cert.pem", self.name));
        let key_file = self.dir.join(format!("{}-{name}-key.pem", self.name));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

struct Server {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, id: &str, args: &[String]) -> Server {
    let address = format!("127.0.0.1:{}", free_port());
    let log = dir.join(format!("{id}.log"));
    let child = common::server_command()
        .arg(format!("-node-id={id}"))
        .arg(format!("-address={address}"))
        .arg(format!("-data-dir={}", dir.join(id).display()))
        .args([
            "-replicas=1",
            "-read-quorum=1",
            "-write-quorum=1",
            "-gossip-interval=100ms",
            "-heartbeat-interval=100ms",
            "-suspect-timeout=1s",
            "-dead-timeout=3s",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let s = Server {
        child,
        address,
        log,
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(&s.address).is_err() {
        assert!(start.elapsed() < DEADLINE, "{id} does not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    s
}

/// Waits until the log at `path` says `text`; fails after [`DEADLINE`], showing the log.
async fn wait_for_log(path: &Path, text: &str) {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(text) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the log never said {text:?}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tls_flags(cert: &Path, key: &Path, ca: Option<&Path>, auth: &str) -> Vec<String> {
    let mut v = vec![
        "-tls-enabled".to_string(),
        format!("-tls-cert-file={}", cert.display()),
        format!("-tls-key-file={}", key.display()),
        format!("-tls-client-auth={auth}"),
    ];
    if let Some(ca) = ca {
        v.push(format!("-tls-ca-file={}", ca.display()));
    }
    v
}

async fn client(address: &str, tls: Option<TlsConfig>) -> Result<Client, String> {
    Client::connect(ClientConfig {
        server: address.to_string(),
        timeout: Duration::from_secs(5),
        tls,
    })
    .await
    .map_err(|e| e.to_string())
}

/// A put then a get through `address`; the error text on failure.
async fn round_trip(address: &str, tls: Option<TlsConfig>) -> Result<(), String> {
    let c = client(address, tls).await?;
    c.put("k", b"v".to_vec(), Some(Consistency::One), None)
        .await
        .map_err(|e| e.to_string())?;
    let g = c
        .get("k", Some(Consistency::One))
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(g.value, b"v");
    Ok(())
}

fn trusting(ca: &Ca) -> TlsConfig {
    TlsConfig {
        ca_file: Some(ca.ca_file()),
        server_name: "localhost".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_over_tls_and_a_plaintext_client_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "a");
    let (cert, key) = ca.leaf("server", false);
    let s = start(
        dir.path(),
        "n1",
        &tls_flags(&cert, &key, None, "NoClientCert"),
    );
    round_trip(&s.address, Some(trusting(&ca))).await.unwrap();
    // The server's name is checked: a name the certificate does not carry fails.
    let wrong_name = TlsConfig {
        server_name: "elsewhere.example".into(),
        ..trusting(&ca)
    };
    let e = round_trip(&s.address, Some(wrong_name)).await.unwrap_err();
    assert!(e.contains("failed to connect"), "{e}");
    // A plaintext client gets a clear error, not a hang, every time (the node answers in
    // HTTP/2 before it hangs up).
    for _ in 0..10 {
        let e = round_trip(&s.address, None).await.unwrap_err();
        assert!(
            e.contains("the server requires TLS and refused this plaintext connection"),
            "plaintext client: {e}"
        );
    }
    // So does curl over http:// (HTTP/1), in a 400 it shows.
    let mut conn = std::net::TcpStream::connect(&s.address).unwrap();
    std::io::Write::write_all(&mut conn, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut conn, &mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("this DistKV node requires TLS"), "{reply}");
    // Without the CA the server's certificate is not trusted, unless told to skip checks.
    let e = round_trip(
        &s.address,
        Some(TlsConfig {
            server_name: "localhost".into(),
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("unknown issuer"),
        "{e}"
    );
    round_trip(
        &s.address,
        Some(TlsConfig {
            insecure_skip_verify: true,
            ..Default::default()
        }),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "a");
    let other = Ca::new(dir.path(), "b");
    let (cert, key) = ca.leaf("server", false);
    let s = start(
        dir.path(),
        "n1",
        &[
            tls_flags(
                &cert,
                &key,
                Some(&ca.ca_file()),
                "RequireAndVerifyClientCert",
            ),
            // Every refused handshake with its reason (at info, one in 30 seconds).
            vec!["-log-level=debug".to_string()],
        ]
        .concat(),
    );
    let (client_cert, client_key) = ca.leaf("client", false);
    let with = |cert: &Path, key: &Path| TlsConfig {
        cert_file: Some(cert.to_path_buf()),
        key_file: Some(key.to_path_buf()),
        ..trusting(&ca)
    };
    round_trip(&s.address, Some(with(&client_cert, &client_key)))
        .await
        .unwrap();
    // Each refusal: the client's error names the cause (the server's alert) or says what to
    // check (when the connection closed before the alert was read); the server logs the
    // exact reason; and the server keeps serving.
    let (foreign_cert, foreign_key) = other.leaf("client", false);
    let (old_cert, old_key) = ca.leaf("old-client", true);
    let cases = [
        (
            trusting(&ca),
            "CertificateRequired",
            "peer sent no certificates",
        ),
        (
            with(&foreign_cert, &foreign_key),
            "UnknownCA",
            "UnknownIssuer",
        ),
        (
            with(&old_cert, &old_key),
            "CertificateExpired",
            "certificate expired",
        ),
    ];
    for (tls, alert, logged) in cases {
        let e = round_trip(&s.address, Some(tls)).await.unwrap_err();
        assert!(e.contains(alert) || e.contains("(the server may "), "{e}");
        wait_for_log(&s.log, logged).await;
        round_trip(&s.address, Some(with(&client_cert, &client_key)))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "a");
    let (cert, key) = ca.leaf("server", true);
    let s = start(
        dir.path(),
        "n1",
        &tls_flags(&cert, &key, None, "NoClientCert"),
    );
    let e = round_trip(&s.address, Some(trusting(&ca)))
        .await
        .unwrap_err();
    assert!(e.to_lowercase().contains("expired"), "{e}");
    // The node itself warns at start.
    wait_for_log(&s.log, "clients and peers refuse it").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_talk_over_mutual_tls_and_a_node_of_another_ca_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "a");
    let other = Ca::new(dir.path(), "b");
    let q = |n: usize| {
        vec![
            format!("-replicas={n}"),
            format!("-read-quorum={n}"),
            format!("-write-quorum={n}"),
        ]
    };
    let (c1, k1) = ca.leaf("n1", false);
    let auth = "RequireAndVerifyClientCert";
    let mut a1 = tls_flags(&c1, &k1, Some(&ca.ca_file()), auth);
    a1.extend(q(2));
    let n1 = start(dir.path(), "n1", &a1);
    let (c2, k2) = ca.leaf("n2", false);
    let mut a2 = tls_flags(&c2, &k2, Some(&ca.ca_file()), auth);
    a2.extend(q(2));
    a2.push(format!("-seed-nodes={}", n1.address));
    let n2 = start(dir.path(), "n2", &a2);
    let (cc, ck) = ca.leaf("client", false);
    let client_tls = TlsConfig {
        cert_file: Some(cc.clone()),
        key_file: Some(ck.clone()),
        ..trusting(&ca)
    };
    // Both replicas (N = W = 2) must take the write: replication goes over TLS too.
    let start_time = Instant::now();
    loop {
        match round_trip(&n2.address, Some(client_tls.clone())).await {
            Ok(()) => break,
            Err(e) => assert!(start_time.elapsed() < DEADLINE, "cluster never served: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A node with a certificate from another CA (which it trusts) never gets in.
    let (c3, k3) = other.leaf("n3", false);
    let mut a3 = tls_flags(&c3, &k3, Some(&other.ca_file()), auth);
    a3.extend(q(2));
    a3.push(format!("-seed-nodes={}", n1.address));
    let n3 = start(dir.path(), "n3", &a3);
    wait_for_log(&n3.log, "joining: waiting to hear from the cluster").await;
    let status = client(&n1.address, Some(client_tls))
        .await
        .unwrap()
        .cluster_status()
        .await
        .unwrap();
    let ids: Vec<&str> = status.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(ids, ["n1", "n2"]);
    // Both sides say why at the default log level: the outsider that its peer's certificate
    // is not trusted, the seed that a handshake failed.
    let n3_log = std::fs::read_to_string(&n3.log).unwrap();
    assert!(
        n3_log.contains("TLS with a peer failed") && n3_log.contains("UnknownIssuer"),
        "{n3_log}"
    );
    let n1_log = std::fs::read_to_string(&n1.log).unwrap();
    assert!(n1_log.contains("TLS handshake failed"), "{n1_log}");
}

/// Calls the node-to-node service at `address` over TLS as a client trusting `ca`, with no
/// certificate of its own.
async fn replica_read_without_certificate(address: &str, ca: &Ca) -> tonic::Status {
    let config = distkv_tls::ClientTls {
        ca_file: Some(ca.ca_file()),
        server_name: Some("localhost".into()),
        ..Default::default()
    }
    .client_config()
    .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_with_connector(distkv_tls::connector(config, Some("localhost".into())))
        .await
        .unwrap();
    distkv_proto::internal::replica_client::ReplicaClient::new(channel)
        .read(distkv_proto::internal::ReplicaReadRequest { key: "k".into() })
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_client_certificates_only_nodes_of_the_ca_reach_the_node_to_node_service() {
    // Clients need no certificate (NoClientCert), but nodes still tell peers from clients.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "a");
    let other = Ca::new(dir.path(), "b");
    let q = ["-replicas=2", "-read-quorum=2", "-write-quorum=2"].map(String::from);
    let node_args = |cert: &Path, key: &Path, ca_file: &Path, seed: Option<&str>| {
        let mut a = tls_flags(cert, key, Some(ca_file), "NoClientCert");
        a.extend(q.clone());
        a.extend(seed.map(|s| format!("-seed-nodes={s}")));
        a
    };
    let (c1, k1) = ca.leaf("n1", false);
    let n1 = start(dir.path(), "n1", &node_args(&c1, &k1, &ca.ca_file(), None));
    let (c2, k2) = ca.leaf("n2", false);
    let n2 = start(
        dir.path(),
        "n2",
        &node_args(&c2, &k2, &ca.ca_file(), Some(&n1.address)),
    );
    // The two nodes replicate (N = W = 2) over TLS, showing each other their certificates.
    let start_time = Instant::now();
    while let Err(e) = round_trip(&n2.address, Some(trusting(&ca))).await {
        assert!(start_time.elapsed() < DEADLINE, "cluster never served: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A client without a certificate reads and writes, but cannot speak as a node.
    let refused = replica_read_without_certificate(&n1.address, &ca).await;
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert_eq!(
        refused.message(),
        "node-to-node calls need a certificate from the cluster's CA"
    );
    // A node that trusts the cluster's CA but holds a certificate of another CA stays out.
    let (c3, k3) = other.leaf("n3", false);
    let n3 = start(
        dir.path(),
        "n3",
        &node_args(&c3, &k3, &ca.ca_file(), Some(&n1.address)),
    );
    wait_for_log(
        &n3.log,
        "node-to-node calls need a certificate from the cluster's CA",
    )
    .await;
    let status = client(&n1.address, Some(trusting(&ca)))
        .await
        .unwrap()
        .cluster_status()
        .await
        .unwrap();
    let ids: Vec<&str> = status.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(ids, ["n1", "n2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoints_are_served_over_tls_only_on_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "a");
    let (cert, key) = ca.leaf("server", false);
    let http_address = format!("127.0.0.1:{}", free_port());
    let mut args = tls_flags(&cert, &key, Some(&ca.ca_file()), "NoClientCert");
    args.push(format!("-http-address={http_address}"));
    let s = start(dir.path(), "n1", &args);
    for address in [&s.address, &http_address] {
        // /ready over TLS (what `distkv-client health` and the container health check use).
        let start_time = Instant::now();
        let (status, body) = loop {
            match client(address, Some(trusting(&ca))).await {
                Ok(c) => match c.ready().await {
                    Ok(r) => break r,
                    Err(e) => assert!(start_time.elapsed() < DEADLINE, "{address}: {e}"),
                },
                Err(e) => assert!(start_time.elapsed() < DEADLINE, "{address}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status, 200, "{address}: {body}");
        // /metrics over TLS, as distkv-bench reads the servers' CPU time.
        let metrics = client(address, Some(trusting(&ca)))
            .await
            .unwrap()
            .metrics()
            .await
            .unwrap();
        assert!(metrics.contains("\ndistkv_up 1"), "{address}: {metrics}");
        assert!(metrics.ends_with("# EOF"), "{address}: {metrics}");
        if cfg!(target_os = "linux") {
            assert!(
                metrics.contains("\nprocess_cpu_seconds_total "),
                "{address}: {metrics}"
            );
        }
        // Plain HTTP is refused with a reason, on the extra listener too.
        let mut conn = std::net::TcpStream::connect(address).unwrap();
        std::io::Write::write_all(&mut conn, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut conn, &mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 400"), "{address}: {reply}");
        assert!(
            !reply.contains("distkv_"),
            "{address}: metrics leaked: {reply}"
        );
    }
}
