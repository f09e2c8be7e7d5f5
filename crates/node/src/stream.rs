//! The byte streams a node speaks over: TCP, plain or TLS, accepted or dialled, with the bytes
//! that cross them counted where the caller says ([`Tally`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP connection, plain or TLS, from either end.
pub enum Stream {
    Plain(TcpStream),
    /// Accepted by this node.
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Dialled by this node.
    TlsClient(Box<distkv_tls::TlsStream>),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Io for S {}

impl Stream {
    fn io(&mut self) -> Pin<&mut dyn Io> {
        match self {
            Stream::Plain(s) => Pin::new(s),
            Stream::TlsServer(s) => Pin::new(&mut **s),
            Stream::TlsClient(s) => Pin::new(&mut **s),
        }
    }

    fn io_ref(&self) -> &dyn Io {
        match self {
            Stream::Plain(s) => s,
            Stream::TlsServer(s) => &**s,
            Stream::TlsClient(s) => &**s,
        }
    }
}

/// Where a [`Counted`] stream adds up its bytes.
pub trait Tally {
    fn received(&self, bytes: u64);
    fn sent(&self, bytes: u64);
}

/// A [`Stream`] that counts the bytes read from and written to it.
pub struct Counted<T> {
    stream: Stream,
    tally: T,
}

impl<T: Tally> Counted<T> {
    pub fn new(stream: Stream, tally: T) -> Self {
        Counted { stream, tally }
    }
}

impl<T: Tally + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = this.stream.io().poll_read(cx, buf);
        this.tally.received((buf.filled().len() - before) as u64);
        r
    }
}

impl<T: Tally + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = this.stream.io().poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.tally.sent(n as u64);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = this.stream.io().poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            this.tally.sent(n as u64);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.io_ref().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream.io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream.io().poll_shutdown(cx)
    }
}
