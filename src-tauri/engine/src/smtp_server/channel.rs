//! The session's byte stream: plain until STARTTLS, then TLS over the same connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

pub(crate) enum Channel<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Only while the handshake owns the stream, and after it failed.
    Gone,
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "the connection is closed")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Channel<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Channel::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Channel::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Channel::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Channel<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Channel::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Channel::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Channel::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Channel::Plain(s) => Pin::new(s).poll_flush(cx),
            Channel::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Channel::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Channel::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Channel::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Channel::Gone => Poll::Ready(Ok(())),
        }
    }
}
