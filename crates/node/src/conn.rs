//! Accepting connections: plain TCP, or TLS when the node has a certificate.
//!
//! Handshakes run in tasks of their own (bounded by [`HANDSHAKE_TIMEOUT`], as is the wait for
//! a plaintext client's first byte), so a slow or silent client never holds up the accept loop
//! nor keeps a connection slot for long. With TLS on there is no plaintext path: a connection
//! whose first byte is not a TLS handshake record is closed, after being told why in its own
//! protocol (gRPC's UNAUTHENTICATED, HTTP/1's `400`).
//!
//! Every listener of a node shares one [`Accept`]: one budget of connections, and one signal
//! that fails the reads and writes of every open connection when the node stops waiting for
//! requests in flight.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::stream::{Counted, Stream};

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS record of type "handshake" starts with this byte.
const TLS_HANDSHAKE: u8 = 0x16;

/// An accepted connection: plain or TLS, with what the server needs to know about it, its
/// bytes counted, and its place among the connections allowed at once.
pub struct Conn {
    stream: Counted<Arc<crate::counters::NetworkCounters>>,
    info: ConnInfo,
    /// Completes when the node closes every connection.
    closing: Pin<Box<dyn Future<Output = ()> + Send>>,
    closed: bool,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Conn {
    fn new(
        stream: Stream,
        info: ConnInfo,
        network: Arc<crate::counters::NetworkCounters>,
        mut close: watch::Receiver<bool>,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Conn {
        Conn {
            stream: Counted::new(stream, network),
            info,
            closing: Box::pin(async move {
                // Also when the sender is gone: the server is no more.
                let _ = close.wait_for(|c| *c).await;
            }),
            closed: false,
            _slot: slot,
        }
    }

    /// What the connection's requests learn about it.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// The stream, once checked open: fails after the node closed its connections, and until
    /// then registers for the signal.
    fn open_stream(
        &mut self,
        cx: &mut Context<'_>,
    ) -> io::Result<Pin<&mut Counted<Arc<crate::counters::NetworkCounters>>>> {
        if !self.closed && self.closing.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the node closed the connection: it is shutting down",
            ));
        }
        Ok(Pin::new(&mut self.stream))
    }
}

impl crate::stream::Tally for Arc<crate::counters::NetworkCounters> {
    fn received(&self, bytes: u64) {
        self.bytes_received.inc_by(bytes);
    }

    fn sent(&self, bytes: u64) {
        self.bytes_sent.inc_by(bytes);
    }
}

/// What a request learns about its connection (in the request's extensions).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: Option<std::net::SocketAddr>,
    /// The connection is TLS.
    pub tls: bool,
    /// Its client showed a certificate of the cluster's CA: it may be a peer node.
    pub peer_verified: bool,
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().open_stream(cx)?.poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().open_stream(cx)?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .open_stream(cx)?
            .poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// How a node's listeners accept connections; clones share the budget and the signal.
#[derive(Clone)]
pub struct Accept {
    /// TLS: the server configuration and what tells peers from clients.
    tls: Option<(tokio_rustls::TlsAcceptor, Arc<distkv_tls::PeerVerifier>)>,
    /// Connections open at once on all listeners (TLS handshakes included); at the limit the
    /// listeners stop accepting until one closes, and further clients wait in the kernel's
    /// backlog.
    slots: Arc<tokio::sync::Semaphore>,
    network: Arc<crate::counters::NetworkCounters>,
    close: watch::Receiver<bool>,
    warned_at: Arc<parking_lot::Mutex<Option<std::time::Instant>>>,
}

/// Closes every connection of an [`Accept`] (and of its clones) when sent `true` or dropped.
pub type CloseAll = watch::Sender<bool>;

impl Accept {
    pub fn new(
        tls: Option<(Arc<rustls::ServerConfig>, Arc<distkv_tls::PeerVerifier>)>,
        max_connections: usize,
        network: Arc<crate::counters::NetworkCounters>,
    ) -> (Accept, CloseAll) {
        let (close_all, close) = watch::channel(false);
        let accept = Accept {
            tls: tls.map(|(config, verifier)| (tokio_rustls::TlsAcceptor::from(config), verifier)),
            slots: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            network,
            close,
            warned_at: Arc::default(),
        };
        (accept, close_all)
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// The connections accepted on `listener` (TLS ones once their handshake is done), until the
/// stream is dropped.
pub fn incoming(listener: TcpListener, accept: Accept) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel::<io::Result<Conn>>(64);
    let Accept {
        tls,
        slots,
        network,
        close,
        warned_at,
    } = accept;
    tokio::spawn(async move {
        loop {
            let slot = tokio::select! {
                s = Arc::clone(&slots).acquire_owned() => match s {
                    Ok(s) => s,
                    Err(_) => return,
                },
                () = tx.closed() => return,
            };
            let accepted = tokio::select! {
                r = listener.accept() => r,
                // The server stopped taking connections.
                () = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            network.connections_accepted.inc();
            // Without TCP_NODELAY a response split over two writes waits for the peer's
            // delayed ACK: 40 ms per request.
            let _ = stream.set_nodelay(true);
            let tx = tx.clone();
            let network = Arc::clone(&network);
            let close = close.clone();
            let Some((acceptor, verifier)) = tls.clone() else {
                tokio::spawn(async move {
                    // A client that sends nothing gives its slot back soon.
                    let mut first = [0u8; 1];
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    let info = ConnInfo {
                        remote: Some(peer),
                        tls: false,
                        peer_verified: false,
                    };
                    let conn = Conn::new(Stream::Plain(stream), info, network, close, slot);
                    let _ = tx.send(Ok(conn)).await;
                });
                continue;
            };
            let warned_at = Arc::clone(&warned_at);
            tokio::spawn(async move {
                let failure = match tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    handshake(acceptor, stream),
                )
                .await
                {
                    Ok(Ok(tls)) => {
                        let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
                        let info = ConnInfo {
                            remote: Some(peer),
                            tls: true,
                            peer_verified: verifier.verifies(chain),
                        };
                        let conn =
                            Conn::new(Stream::TlsServer(Box::new(tls)), info, network, close, slot);
                        let _ = tx.send(Ok(conn)).await;
                        return;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".to_string(),
                };
                network.tls_handshake_failures.inc();
                // A misconfigured client or peer retries all the time: one warning every
                // 30 seconds, the rest at debug level (all of them are counted).
                let warn = {
                    let mut at = warned_at.lock();
                    let due = at.is_none_or(|t| t.elapsed() >= Duration::from_secs(30));
                    if due {
                        *at = Some(std::time::Instant::now());
                    }
                    due
                };
                if warn {
                    tracing::warn!(%peer, error = %failure, "TLS handshake failed");
                } else {
                    tracing::debug!(%peer, error = %failure, "TLS handshake failed");
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    mut stream: TcpStream,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 8];
    let n = stream.peek(&mut first).await?;
    if n > 0 && first[0] != TLS_HANDSHAKE {
        refuse_plaintext(&mut stream, &first[..n]).await;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a plaintext client on a TLS port",
        ));
    }
    acceptor.accept(stream).await
}

/// The start of an HTTP/2 connection (a plaintext gRPC client).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// What a plaintext client is told.
const NEEDS_TLS: &str =
    "this DistKV node requires TLS: use https:// (or -tls-enabled with distkv-client)";
/// gRPC's UNAUTHENTICATED: the request lacks valid credentials (here, transport security).
const GRPC_UNAUTHENTICATED: &str = "16";
/// How long a refused plaintext connection may stay open.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(2);

/// Tells a plaintext client on a TLS port why it is refused, in its own protocol: a gRPC
/// client gets an UNAUTHENTICATED status with the reason on each request it sends, an HTTP/1
/// client (curl, a browser) a `400`. Anything else is just closed.
async fn refuse_plaintext(stream: &mut TcpStream, first: &[u8]) {
    if H2_PREFACE.starts_with(first) || first.starts_with(&H2_PREFACE[..4]) {
        let _ = tokio::time::timeout(REFUSAL_DEADLINE, refuse_h2(stream)).await;
        return;
    }
    // An HTTP/1 request starts with its method: upper-case letters, then a space.
    let word = first.split(|b| *b == b' ').next().unwrap_or_default();
    if !word.is_empty() && word.len() < first.len() && word.iter().all(u8::is_ascii_uppercase) {
        let body = format!("{NEEDS_TLS}\n");
        let reply = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
    // Read what the client still sends until it closes (bounded): closing a socket with unread
    // data resets the connection, and the client could lose the reply.
    let drain = async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = tokio::io::AsyncReadExt::read(stream, &mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Answers every gRPC request of a plaintext HTTP/2 connection with a trailers-only
/// UNAUTHENTICATED response naming the reason, then closes the connection.
async fn refuse_h2(stream: &mut TcpStream) -> Result<(), h2::Error> {
    // Strict limits: the client is unauthenticated and gets one answer.
    let mut conn = h2::server::Builder::new()
        .max_header_list_size(16 * 1024)
        .max_concurrent_streams(4)
        .initial_window_size(16 * 1024)
        .handshake::<_, bytes::Bytes>(stream)
        .await?;
    // After the first answer the connection is told to wind down (GOAWAY); requests already
    // sent are answered too, then accept() ends.
    while let Some(request) = conn.accept().await {
        let (_, mut respond) = request?;
        let response = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", GRPC_UNAUTHENTICATED)
            .header("grpc-message", NEEDS_TLS)
            .body(())
            .expect("a static response is valid");
        respond.send_response(response, true)?;
        conn.graceful_shutdown();
    }
    Ok(())
}

/// Open files kept beside the connections: storage (tables, WAL, manifest), connections to
/// peers, logs and the rest.
pub const RESERVED_FILES: u64 = 1024;

/// Raises the process's soft limit on open files to its hard limit (as servers do: the soft
/// default of 1024 is meant for interactive programs). Returns a warning when
/// `max_connections` plus [`RESERVED_FILES`] is still above the limit: accepting that many
/// connections could leave storage unable to open a file.
#[cfg(unix)]
pub fn raise_open_files_limit(max_connections: usize) -> io::Result<Option<String>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given. Failing leaves the limit as is.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    let needed = max_connections as u64 + RESERVED_FILES;
    let current: u64 = limit.rlim_cur;
    Ok((limit.rlim_cur != libc::RLIM_INFINITY && current < needed).then(|| {
        format!(
            "the open-files limit is {current}, below -max-connections ({max_connections}) plus {RESERVED_FILES} for storage and peers: raise it (ulimit -n, LimitNOFILE= in systemd, ulimits in compose) or lower -max-connections"
        )
    }))
}
