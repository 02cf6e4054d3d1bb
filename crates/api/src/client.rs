//! A typed async client for the Docker Engine API, as the docker CLI speaks it.
//!
//! Transport: HTTP/1.1 (hyper 1) over a unix socket, or TCP for `-H tcp://…`. Connections are
//! kept alive in a small pool: a request takes an idle connection whose previous response is
//! finished, or opens a new one, so long-polls (`wait`), streams (`logs -f`) and quick calls
//! (`start`, `resize`) can run side by side as the docker CLI runs them.
//!
//! Protocol, as docker 28 does it:
//! - [`Client::connect`] sends `HEAD /_ping` (unversioned) and picks the lower of the daemon's
//!   `API-Version` header and [`crate::API_VERSION`]; every other path is then `/v<version>/…`.
//! - A non-2xx answer becomes [`ClientError::Daemon`] with the status and the JSON `message`,
//!   displayed as docker does: `Error response from daemon: <message>`.
//! - Bodies stream: [`JsonLines`] for progress and events, [`Demux`] for stdcopy frames (logs,
//!   non-tty attach/exec), or the raw [`Incoming`] body.
//! - Uploads ([`Client::upload`]) send any `AsyncRead` as a chunked body (image import, build).
//! - [`Client::hijack`] sends `Connection: Upgrade` / `Upgrade: tcp` on a connection of its own,
//!   expects `101 Switching Protocols` and returns the raw duplex stream; shutting down its write
//!   side is stdin EOF for the container.
use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use berth_errdefs::{Classify, ErrorKind};
use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::stdcopy::{self, StreamType};

/// The body type of every request the client sends.
pub type RequestBody = UnsyncBoxBody<Bytes, io::Error>;

/// The `Host` header docker sends over a unix socket (the name is not resolved).
const HOST_HEADER: &str = "api.moby.localhost";

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `-H`/`DOCKER_HOST` names a scheme berth cannot speak.
    #[error("invalid host {host:?}: use unix://PATH or tcp://HOST:PORT")]
    InvalidHost {
        /// The host as given.
        host: String,
    },
    /// Nothing answers at the host.
    #[error("Cannot connect to the berth daemon at {host}. Is the berth daemon running?")]
    Connect {
        /// The host, as `unix://…` or `tcp://…`.
        host: String,
        /// Why connecting failed.
        #[source]
        source: io::Error,
    },
    /// The HTTP exchange failed (connection reset, malformed response).
    #[error("error during connect: {source}")]
    Http {
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The daemon answered with an error status.
    #[error("Error response from daemon: {message}")]
    Daemon {
        /// The HTTP status.
        status: u16,
        /// The daemon's `message`, or the body text when it is not JSON.
        message: String,
    },
    /// Reading a streamed body failed.
    #[error("error reading from the daemon: {source}")]
    Read {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A JSON body could not be encoded or decoded.
    #[error("invalid JSON from the daemon: {source}")]
    Json {
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// The daemon did not switch protocols for attach/exec.
    #[error("the daemon did not upgrade the connection (HTTP {status})")]
    NotUpgraded {
        /// The status it answered with.
        status: u16,
    },
    /// A request could not be built (a path with invalid characters).
    #[error("invalid request {path}: {source}")]
    Request {
        /// The path.
        path: String,
        /// http's error.
        #[source]
        source: hyper::http::Error,
    },
}

impl Classify for ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            ClientError::InvalidHost { .. } | ClientError::Request { .. } => {
                ErrorKind::InvalidArgument
            }
            ClientError::Connect { .. } | ClientError::Http { .. } | ClientError::Read { .. } => {
                ErrorKind::Unavailable
            }
            ClientError::Json { .. } | ClientError::NotUpgraded { .. } => ErrorKind::Internal,
            ClientError::Daemon { status, .. } => kind_of_status(*status),
        }
    }
}

impl ClientError {
    /// The daemon's HTTP status, when the error is its answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The error class Docker clients infer from a status.
fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        304 => ErrorKind::NotModified,
        400 => ErrorKind::InvalidArgument,
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        501 => ErrorKind::NotImplemented,
        503 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Results of this module.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Host {
    /// Parses `unix:///path`, `tcp://host:port` (or `http://`) or a bare absolute path.
    pub fn parse(host: &str) -> Result<Host> {
        if let Some(path) = host.strip_prefix("unix://") {
            if !path.is_empty() {
                return Ok(Host::Unix(PathBuf::from(path)));
            }
        } else if let Some(addr) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            let addr = addr.trim_end_matches('/');
            if !addr.is_empty() {
                return Ok(Host::Tcp(addr.to_string()));
            }
        } else if host.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(host)));
        }
        Err(ClientError::InvalidHost {
            host: host.to_string(),
        })
    }

    /// The host to use: the `-H` flag, else `BERTH_HOST`, else `DOCKER_HOST` (empty values
    /// count as unset), else `default`. The flag says whether the choice was explicit (an
    /// explicit host never auto-starts a daemon).
    pub fn resolve(
        flag: Option<&str>,
        berth_host: Option<&str>,
        docker_host: Option<&str>,
        default: &str,
    ) -> Result<(Host, bool)> {
        let explicit = [flag, berth_host, docker_host]
            .into_iter()
            .flatten()
            .find(|h| !h.is_empty());
        Ok((
            Host::parse(explicit.unwrap_or(default))?,
            explicit.is_some(),
        ))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// A connected socket of either kind.
#[derive(Debug)]
enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Query parameters, encoded as Go's `url.Values.Encode` does (sorted by key), which is what
/// the docker CLI sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// No parameters.
    pub fn new() -> Self {
        Query::default()
    }

    /// Adds `key=value`.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.pairs.push((key.to_string(), value.into()));
        self
    }

    /// Adds `key=1` when `on` (docker's encoding of true flags; false ones are left out).
    pub fn flag(self, key: &str, on: bool) -> Self {
        if on { self.set(key, "1") } else { self }
    }

    /// Adds `key=value` when there is a value.
    pub fn opt(self, key: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// `?k=v&…`, or an empty string.
    pub fn encode(&self) -> String {
        let mut sorted: Vec<&(String, String)> = self.pairs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::new();
        for (i, (key, value)) in sorted.into_iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            percent_encode(key, &mut out);
            out.push('=');
            percent_encode(value, &mut out);
        }
        out
    }
}

/// Go's `url.QueryEscape`: unreserved characters stay, space is `+`, the rest `%XX`.
fn percent_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

/// The lower of two `major.minor` API versions.
pub fn negotiate_version(ours: &str, daemons: &str) -> String {
    fn parts(v: &str) -> Option<(u32, u32)> {
        let (major, minor) = v.trim().split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    }
    match (parts(ours), parts(daemons)) {
        (Some(a), Some(b)) if b < a => daemons.trim().to_string(),
        _ => ours.to_string(),
    }
}

/// What `HEAD /_ping` told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// The daemon's `API-Version` header.
    pub api_version: Option<String>,
    /// Its `OSType` header.
    pub os_type: Option<String>,
}

/// The empty request body.
pub fn empty_body() -> RequestBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A request body of fixed bytes.
pub fn full_body(bytes: impl Into<Bytes>) -> RequestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A chunked request body streamed from a reader.
pub fn reader_body(reader: impl AsyncRead + Send + 'static) -> RequestBody {
    let frames = ReaderStream::with_capacity(reader, 64 * 1024).map_ok(Frame::data);
    StreamBody::new(frames).boxed_unsync()
}

/// A client for one daemon. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    host: Host,
    version: String,
    idle: Arc<Mutex<VecDeque<http1::SendRequest<RequestBody>>>>,
}

impl Client {
    /// Connects, pings and negotiates the API version. The connection used for the ping stays
    /// open for the next request.
    pub async fn connect(host: Host) -> Result<Client> {
        let mut client = Client::unversioned(host);
        let ping = client.ping().await?;
        if let Some(v) = &ping.api_version {
            client.version = negotiate_version(crate::API_VERSION, v);
        }
        Ok(client)
    }

    /// A client that has not pinged: it uses [`crate::API_VERSION`] and opens its first
    /// connection lazily.
    pub fn unversioned(host: Host) -> Client {
        Client {
            host,
            version: crate::API_VERSION.to_string(),
            idle: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// Where it connects.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The API version in its paths.
    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// `HEAD /_ping`: is the daemon there, and which API does it speak.
    pub async fn ping(&self) -> Result<Ping> {
        let resp = self
            .send(Method::HEAD, "/_ping".to_string(), None, empty_body())
            .await?;
        let resp = check(resp).await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Ping {
            api_version: header("api-version"),
            os_type: header("ostype"),
        })
    }

    /// The full request path for an API path like `/containers/json`.
    pub fn versioned(&self, path: &str, query: &Query) -> String {
        format!("/v{}{}{}", self.version, path, query.encode())
    }

    /// Sends a request; a non-2xx answer becomes [`ClientError::Daemon`].
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        content_type: Option<&str>,
        body: RequestBody,
    ) -> Result<Response<Incoming>> {
        let resp = self
            .send(method, self.versioned(path, query), content_type, body)
            .await?;
        check(resp).await
    }

    /// GET, decoding a JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str, query: &Query) -> Result<T> {
        let resp = self
            .request(Method::GET, path, query, None, empty_body())
            .await?;
        decode(resp).await
    }

    /// POST a JSON body, decoding a JSON answer.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
        body: &B,
    ) -> Result<T> {
        let json = serde_json::to_vec(body).map_err(|source| ClientError::Json { source })?;
        let resp = self
            .request(
                Method::POST,
                path,
                query,
                Some("application/json"),
                full_body(json),
            )
            .await?;
        decode(resp).await
    }

    /// A request whose answer body does not matter (start, kill, resize, …); the body is read to
    /// the end so the connection can be reused.
    pub async fn call(&self, method: Method, path: &str, query: &Query) -> Result<()> {
        let resp = self
            .request(method, path, query, None, empty_body())
            .await?;
        collect(resp).await.map(drop)
    }

    /// POST with a reader sent as a chunked body (image import, build contexts).
    pub async fn upload(
        &self,
        path: &str,
        query: &Query,
        content_type: &str,
        reader: impl AsyncRead + Send + 'static,
    ) -> Result<Response<Incoming>> {
        self.request(
            Method::POST,
            path,
            query,
            Some(content_type),
            reader_body(reader),
        )
        .await
    }

    /// POST that hijacks the connection (attach, exec start): `Connection: Upgrade`,
    /// `Upgrade: tcp`, then the raw duplex stream after `101`. `body` is sent with it (exec
    /// start's JSON); use [`empty_body`] for none.
    pub async fn hijack(
        &self,
        path: &str,
        query: &Query,
        content_type: Option<&str>,
        body: RequestBody,
    ) -> Result<Hijacked> {
        let socket = self.open_socket().await?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(socket))
            .await
            .map_err(|source| ClientError::Http { source })?;
        tokio::spawn(conn.with_upgrades());
        let uri = self.versioned(path, query);
        let request = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::HOST, HOST_HEADER)
            .header(header::USER_AGENT, user_agent())
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp")
            .header(header::CONTENT_TYPE, content_type.unwrap_or("text/plain"))
            .body(body)
            .map_err(|source| ClientError::Request { path: uri, source })?;
        let resp = sender
            .send_request(request)
            .await
            .map_err(|source| ClientError::Http { source })?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status().as_u16();
            check(resp).await?;
            return Err(ClientError::NotUpgraded { status });
        }
        let multiplexed = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"application/vnd.docker.multiplexed-stream");
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|source| ClientError::Http { source })?;
        Ok(Hijacked {
            io: TokioIo::new(upgraded),
            multiplexed,
        })
    }

    async fn open_socket(&self) -> Result<Socket> {
        let connected = match &self.host {
            Host::Unix(path) => UnixStream::connect(path).await.map(Socket::Unix),
            Host::Tcp(addr) => TcpStream::connect(addr.as_str()).await.map(Socket::Tcp),
        };
        connected.map_err(|source| ClientError::Connect {
            host: self.host.to_string(),
            source,
        })
    }

    /// An idle pooled connection, or a new one.
    async fn sender(&self) -> Result<http1::SendRequest<RequestBody>> {
        {
            let mut idle = self.idle.lock().expect("the pool lock is never poisoned");
            while let Some(sender) = idle.pop_front() {
                if sender.is_ready() {
                    return Ok(sender);
                }
                if !sender.is_closed() {
                    // Still busy with an unread response body: keep it for later.
                    idle.push_back(sender);
                    break;
                }
            }
        }
        let socket = self.open_socket().await?;
        let (sender, conn) = http1::handshake(TokioIo::new(socket))
            .await
            .map_err(|source| ClientError::Http { source })?;
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn send(
        &self,
        method: Method,
        uri: String,
        content_type: Option<&str>,
        body: RequestBody,
    ) -> Result<Response<Incoming>> {
        let mut sender = self.sender().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::HOST, HOST_HEADER)
            .header(header::USER_AGENT, user_agent());
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let request = request
            .body(body)
            .map_err(|source| ClientError::Request { path: uri, source })?;
        let resp = sender
            .send_request(request)
            .await
            .map_err(|source| ClientError::Http { source })?;
        let mut idle = self.idle.lock().expect("the pool lock is never poisoned");
        // Back to the pool at once: it becomes ready again when this response's body is done.
        if idle.len() < 4 {
            idle.push_back(sender);
        }
        Ok(resp)
    }
}

fn user_agent() -> String {
    format!("berth/{}", crate::BERTH_VERSION)
}

/// Passes a 2xx (or 304, "nothing to do") answer; turns others into [`ClientError::Daemon`].
pub async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.is_success() || status.is_informational() || status == StatusCode::NOT_MODIFIED {
        return Ok(resp);
    }
    let body = collect(resp).await?;
    Err(ClientError::Daemon {
        status: status.as_u16(),
        message: error_message(status, &body),
    })
}

/// The message of an error body: the JSON `message`, else the trimmed text, else the status.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return e.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text.to_string()
    }
}

/// The whole body.
pub async fn collect(resp: Response<Incoming>) -> Result<Bytes> {
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|source| ClientError::Http { source })
}

/// The whole body decoded as JSON.
pub async fn decode<T: DeserializeOwned>(resp: Response<Incoming>) -> Result<T> {
    let body = collect(resp).await?;
    serde_json::from_slice(&body).map_err(|source| ClientError::Json { source })
}

/// A response body as an `AsyncRead`.
pub fn body_reader(resp: Response<Incoming>) -> impl AsyncRead + Send + Unpin {
    StreamReader::new(
        resp.into_body()
            .into_data_stream()
            .map_err(io::Error::other),
    )
}

/// A JSON-lines body (progress, events, stats), one value per line.
#[derive(Debug)]
pub struct JsonLines {
    body: Incoming,
    buf: BytesMut,
    done: bool,
}

impl JsonLines {
    /// Reads `resp`'s body line by line.
    pub fn new(resp: Response<Incoming>) -> Self {
        JsonLines {
            body: resp.into_body(),
            buf: BytesMut::new(),
            done: false,
        }
    }

    /// The next value; `None` at the end of the body. Blank lines are skipped.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(
                    serde_json::from_slice(&line).map_err(|source| ClientError::Json { source }),
                );
            }
            if self.done {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let line = self.buf.split();
                return Some(
                    serde_json::from_slice(&line).map_err(|source| ClientError::Json { source }),
                );
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(source)) => return Some(Err(ClientError::Http { source })),
                None => self.done = true,
            }
        }
    }
}

/// Reads stdcopy frames (`[stream,0,0,0,len]` + payload) from a stream.
#[derive(Debug)]
pub struct Demux<R> {
    reader: R,
}

impl<R: AsyncRead + Unpin> Demux<R> {
    /// Frames from `reader`.
    pub fn new(reader: R) -> Self {
        Demux { reader }
    }

    /// The next frame; `None` at a clean end of stream (between frames).
    pub async fn next_frame(&mut self) -> Option<Result<(StreamType, Bytes)>> {
        let mut head = [0u8; stdcopy::HEADER_LEN];
        let mut filled = 0;
        while filled < head.len() {
            match self.reader.read(&mut head[filled..]).await {
                Ok(0) if filled == 0 => return None,
                Ok(0) => return Some(Err(truncated())),
                Ok(n) => filled += n,
                Err(source) => return Some(Err(ClientError::Read { source })),
            }
        }
        let Some((stream, len)) = stdcopy::parse_header(&head) else {
            return Some(Err(ClientError::Read {
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown stream {} in a multiplexed stream", head[0]),
                ),
            }));
        };
        let mut payload = BytesMut::zeroed(len);
        if let Err(source) = self.reader.read_exact(&mut payload).await {
            return Some(Err(if source.kind() == io::ErrorKind::UnexpectedEof {
                truncated()
            } else {
                ClientError::Read { source }
            }));
        }
        Some(Ok((stream, payload.freeze())))
    }
}

fn truncated() -> ClientError {
    ClientError::Read {
        source: io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "multiplexed stream ended inside a frame",
        ),
    }
}

/// The raw duplex stream of an attach or exec after `101 Switching Protocols`.
#[derive(Debug)]
pub struct Hijacked {
    io: TokioIo<hyper::upgrade::Upgraded>,
    multiplexed: bool,
}

impl Hijacked {
    /// Whether output comes as stdcopy frames (no tty) rather than raw bytes (tty).
    pub fn is_multiplexed(&self) -> bool {
        self.multiplexed
    }
}

impl AsyncRead for Hijacked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Hijacked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    /// Half-closes the socket's write side: the container sees stdin EOF, output keeps coming.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixListener;

    /// A request as the fake daemon received it.
    #[derive(Debug, Clone)]
    struct Recorded {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Recorded {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    type Handler = Arc<dyn Fn(&Recorded) -> Vec<u8> + Send + Sync>;

    /// A fake daemon on a unix socket in a temp dir: it parses each request (Content-Length
    /// or chunked bodies), records it and writes the handler's raw answer.
    struct FakeDaemon {
        dir: tempfile::TempDir,
        requests: Arc<Mutex<Vec<Recorded>>>,
        connections: Arc<AtomicUsize>,
    }

    impl FakeDaemon {
        fn start(handler: impl Fn(&Recorded) -> Vec<u8> + Send + Sync + 'static) -> FakeDaemon {
            let dir = tempfile::tempdir().unwrap();
            let listener = UnixListener::bind(dir.path().join("d.sock")).unwrap();
            let requests = Arc::new(Mutex::new(Vec::new()));
            let connections = Arc::new(AtomicUsize::new(0));
            let handler: Handler = Arc::new(handler);
            let (reqs, conns) = (requests.clone(), connections.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    conns.fetch_add(1, Ordering::SeqCst);
                    let (handler, reqs) = (handler.clone(), reqs.clone());
                    tokio::spawn(async move {
                        let mut stream = BufReader::new(stream);
                        while let Some(req) = read_request(&mut stream).await {
                            reqs.lock().unwrap().push(req.clone());
                            let answer = handler(&req);
                            if stream.get_mut().write_all(&answer).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            FakeDaemon {
                dir,
                requests,
                connections,
            }
        }

        fn host(&self) -> Host {
            Host::Unix(self.dir.path().join("d.sock"))
        }

        fn requests(&self) -> Vec<Recorded> {
            self.requests.lock().unwrap().clone()
        }
    }

    async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<Recorded> {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next()?.to_string();
        let target = parts.next()?.to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await.ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':')?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut req = Recorded {
            method,
            target,
            headers,
            body: Vec::new(),
        };
        if req
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).await.ok()?;
                let n = usize::from_str_radix(size.trim(), 16).ok()?;
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk).await.ok()?;
                if n == 0 {
                    break;
                }
                req.body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(len) = req.header("content-length") {
            let mut body = vec![0; len.parse().ok()?];
            r.read_exact(&mut body).await.ok()?;
            req.body = body;
        }
        Some(req)
    }

    fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {status}\r\n");
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        out
    }

    fn ping_answer(version: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nApi-Version: {version}\r\nOstype: linux\r\nContent-Length: 2\r\n\r\n"
        )
        .into_bytes()
    }

    fn daemon_speaking(version: &'static str) -> FakeDaemon {
        FakeDaemon::start(move |req| {
            if req.target == "/_ping" {
                ping_answer(version)
            } else {
                answer(
                    "200 OK",
                    &[("Content-Type", "application/json")],
                    br#"{"Version":"0.1.0"}"#,
                )
            }
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ping_negotiates_down_and_keeps_the_connection() {
        let daemon = daemon_speaking("1.41");
        let client = Client::connect(daemon.host()).await.unwrap();
        assert_eq!(client.api_version(), "1.41");
        let v: serde_json::Value = client.get_json("/version", &Query::new()).await.unwrap();
        assert_eq!(v["Version"], "0.1.0");
        client
            .call(Method::POST, "/containers/x/start", &Query::new())
            .await
            .unwrap();
        let reqs = daemon.requests();
        let lines: Vec<String> = reqs
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        assert_eq!(
            lines,
            [
                "HEAD /_ping",
                "GET /v1.41/version",
                "POST /v1.41/containers/x/start"
            ]
        );
        assert_eq!(reqs[0].header("host"), Some("api.moby.localhost"));
        assert_eq!(
            daemon.connections.load(Ordering::SeqCst),
            1,
            "keep-alive reuses one connection"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ping_never_negotiates_above_our_version() {
        let daemon = daemon_speaking("1.47");
        let client = Client::connect(daemon.host()).await.unwrap();
        assert_eq!(client.api_version(), crate::API_VERSION);
        assert_eq!(client.versioned("/info", &Query::new()), "/v1.44/info");
    }

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate_version("1.44", "1.41"), "1.41");
        assert_eq!(negotiate_version("1.44", "1.45"), "1.44");
        assert_eq!(negotiate_version("1.44", "1.100"), "1.44");
        assert_eq!(negotiate_version("1.44", "1.9"), "1.9");
        assert_eq!(negotiate_version("1.44", "garbage"), "1.44");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn json_error_becomes_the_daemons_message() {
        let daemon = FakeDaemon::start(|req| {
            if req.target == "/_ping" {
                return ping_answer("1.44");
            }
            if req.target.contains("plain") {
                return answer("500 Internal Server Error", &[], b"boom\n");
            }
            answer(
                "404 Not Found",
                &[("Content-Type", "application/json")],
                br#"{"message":"No such container: nope"}"#,
            )
        });
        let client = Client::connect(daemon.host()).await.unwrap();
        let err = client
            .call(
                Method::DELETE,
                "/containers/nope",
                &Query::new().flag("force", true),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Error response from daemon: No such container: nope"
        );
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            daemon.requests()[1].target,
            "/v1.44/containers/nope?force=1"
        );
        let err = client
            .call(Method::GET, "/plain", &Query::new())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "Error response from daemon: boom");
        assert_eq!(err.kind(), ErrorKind::Internal);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_daemon_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::Unix(dir.path().join("none.sock"));
        let err = Client::connect(host.clone()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Cannot connect to the berth daemon at {host}. Is the berth daemon running?")
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn upload_sends_a_chunked_body() {
        let daemon = FakeDaemon::start(|req| {
            let status = format!("{{\"status\":\"sha256:{}\"}}\n", req.body.len());
            answer(
                "200 OK",
                &[("Content-Type", "application/json")],
                status.as_bytes(),
            )
        });
        let client = Client::unversioned(daemon.host());
        // Larger than one read of the body stream, so it goes out as several chunks.
        let tar: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let query = Query::new().set("fromSrc", "-").set("repo", "img:1");
        let resp = client
            .upload(
                "/images/create",
                &query,
                "application/x-tar",
                std::io::Cursor::new(tar.clone()),
            )
            .await
            .unwrap();
        let mut lines = JsonLines::new(resp);
        let last: serde_json::Value = lines.next().await.unwrap().unwrap();
        assert_eq!(last["status"], "sha256:200000");
        assert!(lines.next::<serde_json::Value>().await.is_none());
        let req = &daemon.requests()[0];
        assert_eq!(req.target, "/v1.44/images/create?fromSrc=-&repo=img%3A1");
        assert_eq!(req.header("transfer-encoding"), Some("chunked"));
        assert_eq!(req.header("content-type"), Some("application/x-tar"));
        assert_eq!(req.body, tar);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn json_lines_survive_chunk_boundaries() {
        let daemon = FakeDaemon::start(|_| {
            // Lines split across chunks, a blank line, and a last line without a newline.
            let parts: [&[u8]; 4] = [
                b"{\"status\":\"Down",
                b"loading\"}\n\n{\"progress\":",
                b"\"1/2\"}\n",
                b"{\"aux\":{\"ID\":\"sha256:ab\"}}",
            ];
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for p in parts {
                out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
                out.extend_from_slice(p);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        });
        let client = Client::unversioned(daemon.host());
        let resp = client
            .request(
                Method::POST,
                "/berth/images/bootstrap",
                &Query::new(),
                None,
                empty_body(),
            )
            .await
            .unwrap();
        let mut lines = JsonLines::new(resp);
        let mut got = Vec::new();
        while let Some(v) = lines.next::<serde_json::Value>().await {
            got.push(v.unwrap());
        }
        assert_eq!(
            got,
            [
                serde_json::json!({"status": "Downloading"}),
                serde_json::json!({"progress": "1/2"}),
                serde_json::json!({"aux": {"ID": "sha256:ab"}}),
            ]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hijack_upgrades_and_half_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = BufReader::new(stream);
            let req = read_request(&mut stream).await.unwrap();
            stream
                .get_mut()
                .write_all(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
                .await
                .unwrap();
            // Everything the client sends until its write side closes is stdin.
            let mut stdin = Vec::new();
            stream.read_to_end(&mut stdin).await.unwrap();
            let mut out = stdcopy::frame(StreamType::Stdout, &stdin);
            out.extend(stdcopy::frame(StreamType::Stderr, b"bye\n"));
            stream.get_mut().write_all(&out).await.unwrap();
            req
        });
        let client = Client::unversioned(Host::Unix(path));
        let query = Query::new()
            .flag("stream", true)
            .flag("stdin", true)
            .flag("stdout", true)
            .flag("stderr", true);
        let mut io = client
            .hijack("/containers/c1/attach", &query, None, empty_body())
            .await
            .unwrap();
        assert!(io.is_multiplexed());
        io.write_all(b"hello\n").await.unwrap();
        io.shutdown().await.unwrap();
        let mut demux = Demux::new(io);
        let first = demux.next_frame().await.unwrap().unwrap();
        assert_eq!(first, (StreamType::Stdout, Bytes::from_static(b"hello\n")));
        let second = demux.next_frame().await.unwrap().unwrap();
        assert_eq!(second, (StreamType::Stderr, Bytes::from_static(b"bye\n")));
        assert!(demux.next_frame().await.is_none());
        let req = server.await.unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.target,
            "/v1.44/containers/c1/attach?stderr=1&stdin=1&stdout=1&stream=1"
        );
        assert_eq!(req.header("connection"), Some("Upgrade"));
        assert_eq!(req.header("upgrade"), Some("tcp"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hijack_refused_reports_the_error() {
        let daemon = FakeDaemon::start(|_| {
            answer(
                "409 Conflict",
                &[("Content-Type", "application/json")],
                br#"{"message":"container c1 is not running"}"#,
            )
        });
        let client = Client::unversioned(daemon.host());
        let err = client
            .hijack(
                "/exec/e1/start",
                &Query::new(),
                Some("application/json"),
                full_body("{}"),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Error response from daemon: container c1 is not running"
        );
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn demux_reports_a_truncated_frame() {
        let mut bytes = stdcopy::frame(StreamType::Stdout, b"abcdef");
        bytes.truncate(10);
        let mut demux = Demux::new(std::io::Cursor::new(bytes));
        let err = demux.next_frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("ended inside a frame"), "{err}");
    }

    #[test]
    fn query_encodes_like_docker() {
        // From the docker 28.2 wire trace of `ps -s --filter status=running --filter name=my`.
        let filters = r#"{"name":{"my":true},"status":{"running":true}}"#;
        let q = Query::new()
            .flag("size", true)
            .set("filters", filters)
            .flag("all", false);
        assert_eq!(
            q.encode(),
            "?filters=%7B%22name%22%3A%7B%22my%22%3Atrue%7D%2C%22status%22%3A%7B%22running%22%3Atrue%7D%7D&size=1"
        );
        assert_eq!(Query::new().encode(), "");
        assert_eq!(
            Query::new().set("changes", "CMD [\"a b\"]").encode(),
            "?changes=CMD+%5B%22a+b%22%5D"
        );
        assert_eq!(
            Query::new()
                .opt("t", None::<String>)
                .opt("signal", Some("HUP"))
                .encode(),
            "?signal=HUP"
        );
    }

    #[test]
    fn hosts_resolve_in_docker_order() {
        let def = "unix:///run/berth/berth.sock";
        let (h, explicit) = Host::resolve(None, None, None, def).unwrap();
        assert_eq!(h, Host::Unix(PathBuf::from("/run/berth/berth.sock")));
        assert!(!explicit);
        let (h, explicit) =
            Host::resolve(None, Some(""), Some("tcp://127.0.0.1:2375"), def).unwrap();
        assert_eq!(h, Host::Tcp("127.0.0.1:2375".into()));
        assert!(explicit);
        let (h, _) =
            Host::resolve(Some("unix:///tmp/x.sock"), Some("tcp://a:1"), None, def).unwrap();
        assert_eq!(h.to_string(), "unix:///tmp/x.sock");
        let (h, _) = Host::resolve(None, Some("tcp://b:2"), Some("tcp://a:1"), def).unwrap();
        assert_eq!(h, Host::Tcp("b:2".into()));
        let err = Host::parse("ssh://me@box").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(Host::parse("unix://").is_err());
    }
}
