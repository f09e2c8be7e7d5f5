//! Accepting connections: plain TCP, or TLS when the node has a certificate.
//!
//! Handshakes run in tasks of their own (bounded by [`HANDSHAKE_TIMEOUT`]), so a slow or
//! silent client never holds up the accept loop. With TLS on there is no plaintext path: a
//! connection whose first byte is not a TLS handshake record is closed, and one that speaks
//! HTTP/1 is first told why in a `400` response that curl and browsers show.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS record of type "handshake" starts with this byte.
const TLS_HANDSHAKE: u8 = 0x16;

/// An accepted connection.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            Conn::Plain(s) => s.connect_info(),
            Conn::Tls(s) => s.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connections accepted on `listener` (TLS ones once their handshake is done), until the
/// stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    metrics: Arc<crate::metrics::NetworkCounters>,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel::<io::Result<Conn>>(64);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let warned_at: Arc<parking_lot::Mutex<Option<std::time::Instant>>> = Arc::default();
    tokio::spawn(async move {
        loop {
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
            metrics.connections_accepted.inc();
            // Without TCP_NODELAY a response split over two writes waits for the peer's
            // delayed ACK: 40 ms per request.
            let _ = stream.set_nodelay(true);
            let Some(acceptor) = acceptor.clone() else {
                if tx.send(Ok(Conn::Plain(stream))).await.is_err() {
                    return;
                }
                continue;
            };
            let tx = tx.clone();
            let metrics = Arc::clone(&metrics);
            let warned_at = Arc::clone(&warned_at);
            tokio::spawn(async move {
                let failure = match tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    handshake(acceptor, stream),
                )
                .await
                {
                    Ok(Ok(conn)) => {
                        let _ = tx.send(Ok(conn)).await;
                        return;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".to_string(),
                };
                metrics.tls_handshake_failures.inc();
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

async fn handshake(acceptor: tokio_rustls::TlsAcceptor, mut stream: TcpStream) -> io::Result<Conn> {
    let mut first = [0u8; 8];
    let n = stream.peek(&mut first).await?;
    if n > 0 && first[0] != TLS_HANDSHAKE {
        refuse_plaintext(&mut stream, &first[..n]).await;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a plaintext client on a TLS port",
        ));
    }
    let tls = acceptor.accept(stream).await?;
    Ok(Conn::Tls(Box::new(tls)))
}

/// The start of an HTTP/2 connection (a plaintext gRPC client).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// What a plaintext client is told.
const NEEDS_TLS: &str =
    "this DistKV node requires TLS: use https:// (or -tls-enabled with distkv-client)";
/// gRPC's UNAUTHENTICATED: the request lacks valid credentials (here, transport security).
const GRPC_UNAUTHENTICATED: &str = "16";
/// How long a refused plaintext connection may stay open.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(5);

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
    let mut conn = h2::server::handshake(stream).await?;
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
