//! The HTTP serving loop: accept, serve each connection with hyper, close the
//! ones that stall, cap how many are open, and drain on shutdown.
//!
//! Limits (`[server]`):
//! - `header_timeout`: from the first byte of a request until its whole header
//!   has arrived; a client that sends half a header is disconnected.
//! - `idle_timeout`: how long a keep-alive connection may wait between
//!   requests (and a new connection for its first byte); also how long a
//!   request may go without a byte either way (a body that stops coming).
//! - `max_connections`: connections open at once. One more is answered at once
//!   with a problem+json 503 and closed, so a flood of idle connections cannot
//!   use up the file descriptors that real requests need.
//!
//! Both timeouts are enforced here rather than by hyper's
//! `header_read_timeout`, whose clock starts when hyper waits for a header, so
//! it would also close every idle keep-alive connection after the header
//! timeout.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::HttpBody;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};

use crate::api::Problem;
use crate::config::ServerConfig;

/// Connection limits, from `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_config(s: &ServerConfig) -> Limits {
        Limits {
            header_timeout: s.header_timeout,
            idle_timeout: s.idle_timeout,
            max_connections: s.max_connections,
        }
    }
}

/// Connections over the cap being answered at once; beyond this they are
/// closed without an answer, so refusing costs bounded memory too.
const MAX_REFUSING: usize = 256;
/// How long a refused connection gets to send its header and read its 503.
const REFUSE_FOR: Duration = Duration::from_secs(2);
/// At most one warning this often while connections are refused.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Serve `app` on `listener` until `shutdown` completes, then stop accepting,
/// close idle connections, and return once the requests in flight are answered.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let busy_answer = Arc::new(busy_answer(limits.max_connections));
    // Warn at most this often while connections are refused.
    let mut warned: Option<tokio::time::Instant> = None;
    let mut refused: u64 = 0;
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::error!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refused += 1;
            if warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused,
                    "connection limit reached (server.max_connections); new connections are answered 503"
                );
                warned = Some(tokio::time::Instant::now());
                refused = 0;
            }
            if let Ok(p) = refusing.clone().try_acquire_owned() {
                let answer = busy_answer.clone();
                tokio::spawn(async move {
                    refuse(stream, &answer).await;
                    drop(p);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            builder: builder.clone(),
            limits,
            stop: stop_rx.clone(),
            peer,
        };
        tokio::spawn(async move {
            conn.run(stream).await;
            drop(permit);
        });
    }
    drop(listener);
    drop(stop_rx);
    // Every connection finishes its request in flight, then closes.
    let _ = stop_tx.send(());
    stop_tx.closed().await;
    Ok(())
}

/// Errors of one connection, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The whole HTTP/1.1 answer to a connection over the cap.
fn busy_answer(max: usize) -> Vec<u8> {
    let body = serde_json::to_string(&Problem::unavailable(format!(
        "the server has {max} connections open (server.max_connections); retry shortly"
    )))
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        crate::api::problem::PROBLEM_JSON,
        body.len()
    )
    .into_bytes()
}

/// Answer 503 once the request's header is in (a client that gets an answer
/// before it has sent its request may take it for a broken connection), then
/// wait briefly for the client to close: closing with its request unread
/// would reset the connection, and the client could lose the answer.
async fn refuse(mut stream: TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(REFUSE_FOR, async {
        let mut head = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        while stream.read(&mut chunk).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

struct Connection {
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
    stop: watch::Receiver<()>,
    /// The client's address, for handlers that record it (the console's
    /// audit trail) as axum's `ConnectInfo`.
    peer: std::net::SocketAddr,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(Watched {
            io: stream,
            activity: activity.clone(),
        });
        let service = TowerToHyperService::new(Tracked {
            app: self.app.clone(),
            activity: activity.clone(),
            peer: self.peer,
        });
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                    return;
                }
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                phase = activity.stalled(&self.limits) => {
                    tracing::debug!(waiting_for = phase, "closing a stalled HTTP connection");
                    return;
                }
            }
        }
    }
}

const IDLE: u8 = 0;
const HEADER: u8 = 1;
const BUSY: u8 = 2;

/// Where one connection is: waiting for a request, receiving its header, or
/// serving it. Changes a few times per request, each waking the watchdog.
#[derive(Default)]
struct Activity {
    phase: AtomicU8,
    in_flight: AtomicUsize,
    changed: Notify,
    /// Reads and writes that moved bytes.
    progress: AtomicU64,
}

impl Activity {
    fn set(&self, from: u8, to: u8) {
        if self
            .phase
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: while idle, they start a request header.
    fn received(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
        if self.phase.load(Ordering::Acquire) == IDLE {
            self.set(IDLE, HEADER);
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if self.phase.swap(BUSY, Ordering::AcqRel) != BUSY {
            self.changed.notify_one();
        }
        InFlight(self.clone())
    }

    /// Completes when the connection has stayed idle for `idle_timeout`, in
    /// a header for `header_timeout`, or in a request without moving a byte
    /// for `idle_timeout`; says which.
    async fn stalled(&self, limits: &Limits) -> &'static str {
        loop {
            let (limit, what) = match self.phase.load(Ordering::Acquire) {
                IDLE => (limits.idle_timeout, "a request (server.idle_timeout)"),
                HEADER => (limits.header_timeout, "a header (server.header_timeout)"),
                _ => (limits.idle_timeout, "progress (server.idle_timeout)"),
            };
            let seen = self.progress.load(Ordering::Relaxed);
            tokio::select! {
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(limit) => {
                    // A request that is still moving bytes is not stalled.
                    if self.phase.load(Ordering::Acquire) != BUSY
                        || self.progress.load(Ordering::Relaxed) == seen
                    {
                        return what;
                    }
                }
            }
        }
    }
}

/// A request being served; the connection is idle again when the last ends
/// (its response written or the client gone).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.set(BUSY, IDLE);
        }
    }
}

/// The router, marking the connection busy while a request is served.
#[derive(Clone)]
struct Tracked {
    app: Router,
    activity: Arc<Activity>,
    peer: std::net::SocketAddr,
}

impl<B> tower::Service<http::Request<B>> for Tracked
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let in_flight = self.activity.begin();
        let fut = tower::ServiceExt::oneshot(self.app.clone(), req);
        Box::pin(async move {
            let res = fut.await;
            drop(in_flight);
            res
        })
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.progress.fetch_add(1, Ordering::Relaxed);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.progress.fetch_add(1, Ordering::Relaxed);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
