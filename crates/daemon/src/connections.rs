//! Accepting and serving API connections so that no client can starve the others.
//!
//! - **Idle and slow connections time out.** hyper's `header_read_timeout` runs whenever a
//!   connection waits for a request head: a client that sends its headers too slowly, or a
//!   keep-alive connection idle between requests, is closed after [`HEADER_READ_TIMEOUT`]. It
//!   does not run while a response streams (`logs -f`, `events`) nor once a connection was
//!   hijacked (attach, exec): hyper hands those over and no longer watches them.
//! - **Descriptors are shed before they run out.** Every connection is registered; past
//!   [`Limits::max_connections`] (a share of the daemon's descriptor limit, leaving the rest
//!   to containers, exec pipes, monitor sockets and files), and whenever `accept` fails with
//!   `EMFILE`/`ENFILE`, the oldest connections are asked to shut down gracefully: an idle one
//!   closes at once, a busy one after its response. A flood of idle connections thus never
//!   keeps `_ping` or `exec` from being answered.
//! - **`accept` errors back off** (from 10 ms, doubling up to 1 s) instead of spinning or
//!   failing other work, and are logged once per episode, not once per try.
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// How long a connection may wait for (the rest of) a request head: slow clients and idle
/// keep-alive connections are closed after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest pause after a failed `accept`.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Something that accepts connections (a unix or TCP listener).
pub trait Accept: Send + 'static {
    /// The connection type (a socket: [`has_pending_bytes`] peeks at it).
    type Io: AsyncRead + AsyncWrite + std::os::fd::AsRawFd + Unpin + Send + 'static;
    /// Accepts one connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&mut self) -> io::Result<Self::Io> {
        tokio::net::UnixListener::accept(self)
            .await
            .map(|(io, _)| io)
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> io::Result<Self::Io> {
        let (io, _) = tokio::net::TcpListener::accept(self).await?;
        let _ = io.set_nodelay(true);
        Ok(io)
    }
}

/// How many connections the daemon keeps open at most, and how long one may idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Past this many open connections, the oldest are shed.
    pub max_connections: usize,
    /// How long a connection may wait for (the rest of) a request head.
    pub header_read_timeout: Duration,
}

impl Limits {
    /// Half of the soft `RLIMIT_NOFILE` (the other half is for everything else the daemon
    /// opens), at least 16; [`HEADER_READ_TIMEOUT`].
    pub fn from_nofile(soft: u64) -> Limits {
        let half = usize::try_from(soft / 2).unwrap_or(usize::MAX);
        Limits {
            max_connections: half.max(16),
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }

    /// From the daemon's current soft descriptor limit.
    pub fn current() -> Limits {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        Limits::from_nofile(soft)
    }
}

/// Raises the soft `RLIMIT_NOFILE` of this process to its hard limit (as Go programs,
/// dockerd among them, do at start); returns the (old, new) soft limits.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, hard.max(soft)))
}

/// The open connections, oldest first, each with the handle that asks it to shut down.
#[derive(Debug, Default)]
struct Registry {
    next: u64,
    open: BTreeMap<u64, Arc<Notify>>,
}

/// Shared by the accept loop and the connection tasks.
#[derive(Debug, Default, Clone)]
struct Connections(Arc<Mutex<Registry>>);

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self) -> (u64, Arc<Notify>) {
        let mut registry = self.lock();
        let id = registry.next;
        registry.next += 1;
        let notify = Arc::new(Notify::new());
        registry.open.insert(id, Arc::clone(&notify));
        (id, notify)
    }

    fn forget(&self, id: u64) {
        self.lock().open.remove(&id);
    }

    fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// Asks the `count` oldest connections to shut down (each is asked once: a busy one
    /// finishes its response and then closes).
    fn shed(&self, count: usize) -> usize {
        let mut registry = self.lock();
        let oldest: Vec<u64> = registry.open.keys().take(count).copied().collect();
        for id in &oldest {
            if let Some(notify) = registry.open.remove(id) {
                notify.notify_one();
            }
        }
        oldest.len()
    }

    /// Asks every connection to shut down.
    fn shed_all(&self) {
        let mut registry = self.lock();
        for (_, notify) in std::mem::take(&mut registry.open) {
            notify.notify_one();
        }
    }
}

/// Whether `accept` failed for want of descriptors or memory (as opposed to one client's
/// connection failing).
fn out_of_resources(error: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
}

/// How long a connection asked to shut down may still take to start serving a request that
/// sits unread on its socket: a client whose connection was shed before its task read it (the
/// daemon was busy accepting a flood) is answered; a slow-header client is not kept long.
const SHED_GRACE: Duration = Duration::from_millis(500);

/// Whether bytes wait unread on the socket `fd` (a request the connection's task has not read
/// yet). `MSG_PEEK|MSG_DONTWAIT`: nothing is consumed and nothing blocks.
fn has_pending_bytes(fd: std::os::fd::RawFd) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    let mut byte = [0u8; 1];
    matches!(
        recv(fd, &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT),
        Ok(n) if n > 0
    )
}

/// A failure of one incoming connection only: try the next one at once.
fn connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Serves `app` on connections from `listener` until `stop` resolves; then stops accepting,
/// asks every connection to finish, and waits at most `drain` for them.
pub async fn serve<L, F>(mut listener: L, app: Router, limits: Limits, stop: F, drain: Duration)
where
    L: Accept,
    F: Future<Output = ()> + Send,
{
    let connections = Connections::default();
    // Every connection task holds a receiver; the sender sees them all gone at the end.
    let (alive_tx, _) = watch::channel(());
    let mut stop = std::pin::pin!(stop);
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let io = match accepted {
            Ok(io) => {
                if !backoff.is_zero() {
                    tracing::info!("accepting connections again");
                    backoff = Duration::ZERO;
                }
                io
            }
            Err(error) if connection_error(&error) => continue,
            Err(error) => {
                let starved = out_of_resources(&error);
                if backoff.is_zero() {
                    tracing::warn!(
                        %error,
                        open = connections.len(),
                        "cannot accept connections; shedding the oldest and backing off"
                    );
                }
                if starved {
                    // Make room: idle connections close at once.
                    connections.shed((connections.len() / 8).max(8));
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                continue;
            }
        };
        let open = connections.len();
        if open >= limits.max_connections {
            connections.shed(open + 1 - limits.max_connections);
        }
        let (id, shutdown) = connections.register();
        let registry = connections.clone();
        let app = app.clone();
        let alive = alive_tx.subscribe();
        tokio::spawn(async move {
            serve_connection(io, app, limits.header_read_timeout, shutdown).await;
            registry.forget(id);
            drop(alive);
        });
    }
    tracing::info!("stopping: no new connections");
    drop(listener);
    connections.shed_all();
    if tokio::time::timeout(drain, alive_tx.closed())
        .await
        .is_err()
    {
        tracing::info!("closing connections still open");
    }
}

/// Serves one connection until it ends (or is handed over by an upgrade). When `shutdown`
/// is notified, a connection without a request in progress is closed at once (idle between
/// requests, never sent a byte, or stuck in a head its client does not finish); one with a
/// response in progress finishes it first; one with bytes waiting unread on its socket (a
/// request that arrived while the daemon was busy) gets [`SHED_GRACE`] to start it, then is
/// answered and closed, or dropped. (hyper's own graceful shutdown would keep a connection that
/// never completed a request open until its header timeout.)
async fn serve_connection<Io>(
    io: Io,
    app: Router,
    header_read_timeout: Duration,
    shutdown: Arc<Notify>,
) where
    Io: AsyncRead + AsyncWrite + std::os::fd::AsRawFd + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    use std::sync::atomic::Ordering;
    let fd = io.as_raw_fd();
    // Requests whose response has not been written in full yet.
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&in_flight);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = InFlight::new(Arc::clone(&counter));
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await?;
            // The guard lives as long as the body: hyper drops it once it is written (or the
            // connection went away).
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &guard;
                    frame
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut asked = false;
    // Set when shed while a request was arriving: the connection is dropped at this instant
    // unless the request started by then.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let grace_over = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::trace!(%error, "connection ended with an error");
                }
                return;
            }
            () = shutdown.notified(), if !asked => {
                asked = true;
                if in_flight.load(Ordering::Acquire) > 0 {
                    connection.as_mut().graceful_shutdown();
                } else if has_pending_bytes(fd) {
                    deadline = Some(tokio::time::Instant::now() + SHED_GRACE);
                } else {
                    // Dropping the connection closes it.
                    return;
                }
            }
            () = grace_over => {
                if in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                deadline = None;
                connection.as_mut().graceful_shutdown();
            }
        }
        if deadline.is_some() && in_flight.load(Ordering::Acquire) > 0 {
            deadline = None;
            connection.as_mut().graceful_shutdown();
        }
    }
}

/// Counts a request as in progress until dropped.
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn new(counter: Arc<std::sync::atomic::AtomicUsize>) -> InFlight {
        counter.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlight(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_leave_room_for_everything_else() {
        assert_eq!(Limits::from_nofile(1024).max_connections, 512);
        assert_eq!(Limits::from_nofile(10).max_connections, 16);
    }

    #[test]
    fn shedding_takes_the_oldest_once() {
        let connections = Connections::default();
        let handles: Vec<_> = (0..5).map(|_| connections.register()).collect();
        assert_eq!(connections.shed(2), 2);
        assert_eq!(connections.len(), 3);
        let remaining: Vec<u64> = connections.lock().open.keys().copied().collect();
        assert_eq!(remaining, [handles[2].0, handles[3].0, handles[4].0]);
        connections.forget(handles[3].0);
        connections.shed_all();
        assert_eq!(connections.len(), 0);
    }

    /// A router with a quick answer and a response that streams for `stream` seconds.
    fn app() -> Router {
        use axum::routing::get;
        Router::new().route("/_ping", get(|| async { "OK" })).route(
            "/stream",
            get(|| async {
                let chunks = futures_util::stream::unfold(0u32, |n| async move {
                    if n == 15 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok::<_, std::convert::Infallible>(format!("{n}\n")), n + 1))
                });
                Body::from_stream(chunks)
            }),
        )
    }

    /// Reads until EOF or `within`; returns what was read and whether EOF came.
    async fn read_until_eof(
        stream: &mut tokio::net::UnixStream,
        within: Duration,
    ) -> (String, bool) {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Err(_) => return (String::from_utf8_lossy(&out).into(), false),
            }
        }
    }

    #[tokio::test]
    async fn idle_and_slow_connections_time_out_streams_do_not() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("s");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let limits = Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_millis(300),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app(),
            limits,
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_secs(1),
        ));
        let connect = || tokio::net::UnixStream::connect(&socket);

        // Idle from the start: closed.
        let mut idle = connect().await.expect("connect");
        assert!(
            read_until_eof(&mut idle, Duration::from_secs(3)).await.1,
            "idle connection kept"
        );
        // Headers that never end: closed.
        let mut slow = connect().await.expect("connect");
        slow.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        assert!(
            read_until_eof(&mut slow, Duration::from_secs(3)).await.1,
            "slow headers kept"
        );
        // Idle between two requests of a keep-alive connection: closed after the answer.
        let mut keep = connect().await.expect("connect");
        keep.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (answer, eof) = read_until_eof(&mut keep, Duration::from_secs(3)).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("OK"),
            "{answer}"
        );
        assert!(eof, "idle keep-alive connection kept");
        // A response streaming for longer than the timeout is not cut.
        let mut streaming = connect().await.expect("connect");
        streaming
            .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let (body, eof) = read_until_eof(&mut streaming, Duration::from_secs(5)).await;
        assert!(eof && body.contains("\n14\n"), "stream cut short: {body:?}");

        stop_tx.send(()).expect("stop");
        server.await.expect("server");
    }

    #[tokio::test]
    async fn past_the_limit_the_oldest_idle_connections_make_room() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("s");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
        let limits = Limits {
            max_connections: 4,
            header_read_timeout: Duration::from_secs(60),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app(),
            limits,
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_secs(1),
        ));
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(
                tokio::net::UnixStream::connect(&socket)
                    .await
                    .expect("connect"),
            );
            // Accepted in this order.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut client = tokio::net::UnixStream::connect(&socket)
            .await
            .expect("connect");
        client
            .write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let (answer, _) = read_until_eof(&mut client, Duration::from_secs(3)).await;
        assert!(answer.ends_with("OK"), "{answer}");
        // The oldest made room; the others stay (the timeout is long).
        assert!(read_until_eof(&mut idle[0], Duration::from_secs(1)).await.1);
        assert!(
            !read_until_eof(&mut idle[3], Duration::from_millis(200))
                .await
                .1
        );
        stop_tx.send(()).expect("stop");
        server.await.expect("server");
    }

    #[test]
    fn resource_errors_are_told_from_connection_errors() {
        let emfile = io::Error::from_raw_os_error(nix::errno::Errno::EMFILE as i32);
        assert!(out_of_resources(&emfile));
        assert!(!connection_error(&emfile));
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert!(connection_error(&aborted));
        assert!(!out_of_resources(&aborted));
    }
}
