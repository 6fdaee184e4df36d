//! The listener both HTTP servers accept on: no Nagle delay, at most `max_connections` open at once (more wait in
//! the kernel's backlog until one closes), and a connection that moves no byte either way for `idle_timeout` is
//! closed, so that idle or stalled clients cannot hold the server's sockets.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How many connections a server keeps open, and how long one may stay silent.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// Longer than the longest request (waits and their timeout) and than the keep-alive of event streams.
    pub idle_timeout: Duration,
}

/// A [`TcpListener`] that applies [`ConnectionLimits`]; serve it with `axum::serve`.
#[derive(Debug)]
pub struct GuardedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
}

/// Binds `addr` with a listen backlog of 4,096 (tokio's default is 1,024): a burst of connections waits in the
/// kernel for `accept` instead of being dropped.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

impl GuardedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            idle_timeout: limits.idle_timeout,
        }
    }
}

/// The address a request's connection came from, as [`axum::extract::ConnectInfo`] hands it to handlers and middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so acquiring only waits.
        let permit = loop {
            if let Ok(permit) = self.permits.clone().acquire_owned().await {
                break permit;
            }
        };
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        // Answers are small and latency matters.
        let _ = stream.set_nodelay(true);
        (GuardedStream::new(stream, permit, self.idle_timeout), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: holds its place among the open connections until dropped, and fails with `TimedOut`
/// once it has been idle too long.
#[derive(Debug)]
pub struct GuardedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

impl GuardedStream {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        Self { stream, _permit: permit, idle_timeout, idle: Box::pin(tokio::time::sleep(idle_timeout)) }
    }

    /// Something moved: the idle clock starts again.
    fn touched(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// Called when the socket had nothing to do: an error once the idle time is over, else still pending.
    fn check_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.idle.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle"))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// What a write of the socket answered, with the idle clock kept.
    fn written(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(result) => {
                self.touched();
                Poll::Ready(result)
            }
            Poll::Pending => self.check_idle(cx),
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.touched();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.check_idle(cx),
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, data);
        this.written(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The connection limits as settings (flattened into each service's configuration).
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionSettings {
    /// Most HTTP connections open at once; keep it below the process's open-file limit.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub http_max_connections: usize,
    /// Seconds a connection may move no byte before it is closed.
    #[arg(long, env = "HTTP_IDLE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_idle_timeout_secs: u64,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self { http_max_connections: 16_384, http_idle_timeout_secs: 60 }
    }
}

impl ConnectionSettings {
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.http_max_connections,
            idle_timeout: Duration::from_secs(self.http_idle_timeout_secs),
        }
    }
}
