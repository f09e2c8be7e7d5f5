//! # distkv-tls
//!
//! TLS for every DistKV connection, with rustls (TLS 1.2 and 1.3 only, the ring provider):
//! the server side of a node (clients and peers dialing it), and the client side of both the
//! CLI and a node dialing its peers. It turns the original's flags into rustls configurations:
//!
//! - [`ServerTls`] from `-tls-cert-file`, `-tls-key-file`, `-tls-ca-file` and
//!   `-tls-client-auth`, whose five values keep the meaning of Go's `tls.ClientAuthType`:
//!   `NoClientCert`, `RequestClientCert` (asked for, not required, not verified),
//!   `RequireAnyClientCert` (required, not verified), `VerifyClientCertIfGiven` (not required,
//!   verified against the CA when given) and `RequireAndVerifyClientCert` (required and
//!   verified). Unlike the original, an unknown value is an error, not `NoClientCert`. Under
//!   every mode the server asks for a certificate (optionally where the mode does not require
//!   one): [`PeerVerifier`] then tells peer nodes, whose certificate chains to the CA, from
//!   clients. Without a CA file nothing is a peer: a cluster of several nodes needs one.
//! - [`ClientTls`] from the client's `-tls-ca-file`, `-tls-cert-file`, `-tls-key-file`,
//!   `-tls-server-name` and `-tls-insecure-skip-verify` (which still checks that the server
//!   holds the key of the certificate it shows; it skips only the chain and name checks).
//! - [`connector`] plugs a client configuration into a tonic endpoint.
//!
//! Certificates are checked by webpki: chain to the CA, validity period (an expired
//! certificate is refused), names (DNS and IP SANs). Every error names the file and the
//! problem.
//!
//! Left out: certificate reloading without a restart, revocation lists, OCSP.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// What can be wrong with a TLS setup; each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoPrivateKey { path: PathBuf },
    #[error("{path}: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("CA file {path}: {reason}")]
    BadCa { path: PathBuf, reason: String },
    #[error(
        "-tls-client-auth: unknown value {0:?} (one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
    )]
    UnknownClientAuth(String),
    #[error("-tls-client-auth={0} verifies client certificates: it needs -tls-ca-file")]
    ClientAuthNeedsCa(ClientAuth),
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = TlsError> = std::result::Result<T, E>;

/// How a server treats client certificates (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    pub const ALL: [ClientAuth; 5] = [
        ClientAuth::NoClientCert,
        ClientAuth::RequestClientCert,
        ClientAuth::RequireAnyClientCert,
        ClientAuth::VerifyClientCertIfGiven,
        ClientAuth::RequireAndVerifyClientCert,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::RequestClientCert => "RequestClientCert",
            ClientAuth::RequireAnyClientCert => "RequireAnyClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ClientAuth {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<ClientAuth> {
        ClientAuth::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| TlsError::UnknownClientAuth(s.to_string()))
    }
}

/// A node's TLS settings: its certificate (shown to clients and, when it dials them, to its
/// peers), the CA it trusts, and what it asks of clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// A client's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientTls {
    /// The CA that signed the server's certificate; `None` trusts the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A certificate and key to show the server (mutual TLS).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry; `None`: the host being dialed.
    pub server_name: Option<String>,
    /// Accept any server certificate (its key possession is still checked). For tests only.
    pub insecure_skip_verify: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The certificates of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        e => TlsError::BadPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

/// Certificates expiring within this many days get a warning at start.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What is wrong, at `now` (Unix seconds), with the validity period of the first (leaf)
/// certificate of `path`: expired, not valid yet, or expiring within
/// [`EXPIRY_WARNING_DAYS`]. `None` when it is fine.
pub fn validity_problem(path: &Path, now: i64) -> Result<Option<String>> {
    let certs = load_certs(path)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&certs[0]).map_err(|e| TlsError::BadPem {
            path: path.to_path_buf(),
            reason: format!("not an X.509 certificate: {e}"),
        })?;
    let validity = cert.validity();
    let (from, until) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let days_left = (until - now).div_euclid(86_400);
    // YYYY-MM-DD, UTC.
    let from_date = validity.not_before.to_datetime().date();
    let until_date = validity.not_after.to_datetime().date();
    Ok(if now > until {
        Some(format!(
            "certificate {} expired on {until_date}: clients and peers refuse it",
            path.display()
        ))
    } else if now < from {
        Some(format!(
            "certificate {} is not valid before {from_date}: clients and peers refuse it (is the clock right?)",
            path.display()
        ))
    } else if days_left < EXPIRY_WARNING_DAYS {
        Some(format!(
            "certificate {} expires on {until_date}, in {days_left} days",
            path.display()
        ))
    } else {
        None
    })
}

fn roots(path: &Path) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(path)? {
        store.add(cert).map_err(|e| TlsError::BadCa {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(store)
}

fn native_roots() -> RootCertStore {
    let mut store = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = store.add(cert);
    }
    store
}

impl ServerTls {
    /// The rustls server configuration (ALPN h2 and http/1.1: gRPC and the HTTP endpoints
    /// share the port).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let certs = load_certs(&self.cert_file)?;
        let key = load_key(&self.key_file)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let verifier: Arc<dyn ClientCertVerifier> = match self.client_auth {
            // Certificates are asked for even here, and not checked by the handshake: peers
            // show theirs, and the node checks them against the CA before it takes a call on
            // the node-to-node service (`PeerVerifier`). Clients may send none.
            ClientAuth::NoClientCert | ClientAuth::RequestClientCert => {
                Arc::new(AnyClientCert { mandatory: false })
            }
            ClientAuth::RequireAnyClientCert => Arc::new(AnyClientCert { mandatory: true }),
            auth @ (ClientAuth::VerifyClientCertIfGiven
            | ClientAuth::RequireAndVerifyClientCert) => {
                let ca = self
                    .ca_file
                    .as_ref()
                    .ok_or(TlsError::ClientAuthNeedsCa(auth))?;
                let b =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
                let b = if auth == ClientAuth::VerifyClientCertIfGiven {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                b.build().map_err(|e| TlsError::BadCa {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?
            }
        };
        let builder = builder.with_client_cert_verifier(verifier);
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::BadPem {
                path: self.key_file.clone(),
                reason: format!("does not match {}: {e}", self.cert_file.display()),
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// What tells a peer node from a client: a certificate that chains to `-tls-ca-file` and
    /// allows client authentication. Without a CA file no certificate makes a peer (the
    /// system's roots would let any holder of a public certificate in).
    pub fn peer_verifier(&self) -> Result<PeerVerifier> {
        let Some(ca) = &self.ca_file else {
            return Ok(PeerVerifier { verifier: None });
        };
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                .build()
                .map_err(|e| TlsError::BadCa {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
        Ok(PeerVerifier {
            verifier: Some(verifier),
        })
    }

    /// The client configuration a node uses to dial its peers: it shows its own certificate
    /// and verifies theirs against its CA (the system's roots without one).
    pub fn peer_client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        ClientTls {
            ca_file: self.ca_file.clone(),
            cert_file: Some(self.cert_file.clone()),
            key_file: Some(self.key_file.clone()),
            server_name: None,
            insecure_skip_verify: false,
        }
        .client_config()
    }

    /// Checks that the files exist and make a working configuration.
    pub fn validate(&self) -> Result<()> {
        self.server_config()?;
        if self.client_auth.verifies() && self.ca_file.is_none() {
            return Err(TlsError::ClientAuthNeedsCa(self.client_auth));
        }
        Ok(())
    }
}

impl ClientTls {
    /// The rustls client configuration (ALPN h2).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert {
                    provider: provider(),
                }))
        } else {
            let store = match &self.ca_file {
                Some(ca) => roots(ca)?,
                None => native_roots(),
            };
            builder.with_root_certificates(store)
        };
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(|e| TlsError::BadPem {
                    path: key.clone(),
                    reason: format!("does not match {}: {e}", cert.display()),
                })?,
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(TlsError::Config(
                    "a client certificate (-tls-cert-file) needs its key (-tls-key-file)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(TlsError::Config(
                    "a client key (-tls-key-file) needs its certificate (-tls-cert-file)".into(),
                ));
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Checks the certificate a connection's client showed, after the handshake (which proved the
/// client holds its key): nodes accept calls on their node-to-node service only from clients
/// whose certificate passes.
pub struct PeerVerifier {
    /// `None` without a CA file: nothing passes.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerVerifier")
    }
}

impl PeerVerifier {
    /// Whether `chain` (end entity first, as the client sent it) is a valid certificate of
    /// the CA, now. Always false without a CA file.
    pub fn verifies(&self, chain: &[CertificateDer<'_>]) -> bool {
        let (Some(verifier), Some((end_entity, intermediates))) =
            (&self.verifier, chain.split_first())
        else {
            return false;
        };
        verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok()
    }
}

/// Accepts any client certificate (NoClientCert, RequestClientCert, RequireAnyClientCert),
/// checking only that the client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts any server certificate (`-tls-insecure-skip-verify`), checking only that the
/// server holds its key.
#[derive(Debug)]
struct AnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The stream a [`Connector`] yields.
pub type TlsIo = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A connector for `tonic::transport::Endpoint::connect_with_connector`: dials `host:port`
/// over TCP (no delay) and runs the TLS handshake, expecting the server to carry
/// `server_name` (default: the host dialed). The endpoint's URI is `http://host:port`: TLS is
/// done here, not by tonic.
#[derive(Clone)]
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
    server_name: Option<String>,
}

/// See [`Connector`].
pub fn connector(config: Arc<rustls::ClientConfig>, server_name: Option<String>) -> Connector {
    Connector {
        tls: tokio_rustls::TlsConnector::from(config),
        server_name,
    }
}

impl tower::Service<http::Uri> for Connector {
    type Response = TlsIo;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<TlsIo>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dial = self.dial(uri);
        Box::pin(async move { Ok(hyper_util::rt::TokioIo::new(dial.await?)) })
    }
}

/// A TLS connection a [`Connector`] made.
pub type TlsStream = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

impl Connector {
    /// Dials `uri`'s host and port over TCP (no delay) and runs the TLS handshake: the
    /// connection as a tokio stream, for callers that wrap it before handing it to hyper.
    pub fn dial(
        &self,
        uri: http::Uri,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<TlsStream>> + Send>>
    {
        let tls = self.tls.clone();
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let (host, port) = host_and_port(&uri, 443)?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(server_name.unwrap_or(host))
                .map_err(|e| std::io::Error::other(format!("bad TLS server name: {e}")))?;
            tls.connect(name, tcp).await
        })
    }
}

/// The host (without an IPv6 address's brackets) and port of `uri`; `default_port` when it
/// names none.
pub fn host_and_port(uri: &http::Uri, default_port: u16) -> std::io::Result<(String, u16)> {
    let host = uri
        .host()
        .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, uri.port_u16().unwrap_or(default_port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_names_round_trip_and_unknown_ones_are_errors() {
        for a in ClientAuth::ALL {
            assert_eq!(a.name().parse::<ClientAuth>().unwrap(), a);
        }
        let e = "requireandverify".parse::<ClientAuth>().unwrap_err();
        assert!(e.to_string().contains("unknown value \"requireandverify\""));
    }

    #[test]
    fn validity_problems_are_named_with_the_dates() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let from = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(); // 2026-01-01
        params.not_before = from;
        params.not_after = from + time::Duration::days(365);
        let cert = params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        let day = 86_400;
        let start = from.unix_timestamp();
        assert_eq!(validity_problem(&path, start + 100 * day).unwrap(), None);
        let soon = validity_problem(&path, start + 350 * day).unwrap().unwrap();
        assert!(soon.ends_with("in 15 days"), "{soon}");
        let expired = validity_problem(&path, start + 400 * day).unwrap().unwrap();
        assert!(expired.contains("expired on 2027-01-01:"), "{expired}");
        let early = validity_problem(&path, start - day).unwrap().unwrap();
        assert!(early.contains("not valid before 2026-01-01:"), "{early}");
        assert!(soon.contains("expires on 2027-01-01,"), "{soon}");
    }

    #[test]
    fn missing_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = load_certs(&missing).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read {}", missing.display()))
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem").unwrap();
        assert_eq!(
            load_certs(&empty).unwrap_err().to_string(),
            format!("{} holds no PEM certificate", empty.display())
        );
        assert_eq!(
            load_key(&empty).unwrap_err().to_string(),
            format!("{} holds no PEM private key", empty.display())
        );
    }
}
