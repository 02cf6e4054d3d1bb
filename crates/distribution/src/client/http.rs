//! The one HTTP client of berth's daemon: registries (pull, push, login, search) and `import
//! URL` go through it. hyper's pooled client over rustls (ring), so connections are reused
//! across requests and layers, HTTP/2 is spoken where a TLS server offers it (ALPN), and plain
//! HTTP is there for registries that speak nothing else (loopback, `--insecure-registry`).
//!
//! Certificates are checked against the system's roots (`/etc/ssl/certs`, read once through
//! `rustls-native-certs`, at the first request: a daemon that never pulls never reads them,
//! and its start does not pay the ~150 files), plus a registry's own CA certificates from
//! `<certs dir>/<host[:port]>/*.crt` (Docker's `/etc/docker/certs.d` convention; berth's is
//! `/etc/berth/certs.d`). An insecure registry gets TLS without verification: the pool for
//! those connections is separate, so a verified connection is never reused unverified or the
//! other way round.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyDataStream, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HOST, LOCATION, USER_AGENT};
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::error::ClientError;

/// The body of every request the client sends.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

/// How long a connection may take to establish.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait for a response's headers, or for the next piece of its body.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Redirects followed by [`HttpClient::get`] (and blob downloads).
pub(crate) const MAX_REDIRECTS: usize = 5;
/// The `User-Agent` of every request.
pub(crate) const AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

type Pool = Client<HttpsConnector<HttpConnector>, Body>;

/// The daemon's HTTP client (cheap to clone: the pools are shared).
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where per-registry CA certificates live.
    certs_dir: Option<PathBuf>,
    /// The roots and pools, made at the first request (the TLS setup's error, if it failed).
    pools: OnceLock<Result<Pools, String>>,
}

/// The system's roots and the pools over them.
struct Pools {
    /// Certificates verified against the system's roots.
    verified: Pool,
    /// TLS without verification (insecure registries only).
    unverified: Pool,
    /// Pools of registries that have CA certificates of their own, by `host[:port]`.
    per_host: Mutex<HashMap<String, Pool>>,
    roots: Arc<rustls::RootCertStore>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roots = match self.inner.pools.get() {
            Some(Ok(pools)) => Some(pools.roots.len()),
            _ => None,
        };
        f.debug_struct("HttpClient")
            .field("roots", &roots)
            .field("certs_dir", &self.inner.certs_dir)
            .finish_non_exhaustive()
    }
}

/// Whether to check the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Against the system's roots (and the registry's own CA certificates).
    Verify,
    /// Not at all (an insecure registry).
    Skip,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // ring, as everywhere in berth (aws-lc-rs is a long C build).
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pool(config: rustls::ClientConfig) -> Pool {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector)
}

fn client_config(roots: Arc<rustls::RootCertStore>) -> Result<rustls::ClientConfig, rustls::Error> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Pools {
    /// Reads the system's roots and makes the two shared pools.
    fn load() -> Result<Self, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "reading the system's CA certificates");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system CA certificates loaded");
        let roots = Arc::new(roots);
        let verified = pool(client_config(Arc::clone(&roots))?);
        let unverified = pool(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
                .with_no_client_auth(),
        );
        Ok(Self {
            verified,
            unverified,
            per_host: Mutex::new(HashMap::new()),
            roots,
        })
    }
}

impl HttpClient {
    /// A client trusting the system's roots and the CA certificates under `certs_dir`. The
    /// roots are read at the first request, not here.
    pub fn new(certs_dir: Option<&Path>) -> Result<Self, ClientError> {
        Ok(Self {
            inner: Arc::new(Inner {
                certs_dir: certs_dir.map(Path::to_owned),
                pools: OnceLock::new(),
            }),
        })
    }

    /// The roots and pools, read and made now if this is the first request (in a blocking
    /// task: reading the roots is ~150 small files).
    async fn pools(&self) -> Result<&Pools, ClientError> {
        if self.inner.pools.get().is_none() {
            let inner = Arc::clone(&self.inner);
            // A failed join (the task panicked) leaves the cell empty: `load_pools` retries.
            let _ = tokio::task::spawn_blocking(move || {
                inner
                    .pools
                    .get_or_init(|| Pools::load().map_err(|e| e.to_string()));
            })
            .await;
        }
        self.load_pools()
    }

    /// [`Self::pools`], loaded on the calling thread if no one did yet.
    fn load_pools(&self) -> Result<&Pools, ClientError> {
        self.inner
            .pools
            .get_or_init(|| Pools::load().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|reason| ClientError::TlsSetup {
                reason: reason.clone(),
            })
    }

    /// The pool for requests to `uri` with `tls`.
    fn pool_for(&self, pools: &Pools, uri: &Uri, tls: Tls) -> Result<Pool, ClientError> {
        if tls == Tls::Skip || uri.scheme_str() != Some("https") {
            return Ok(match tls {
                Tls::Skip => pools.unverified.clone(),
                Tls::Verify => pools.verified.clone(),
            });
        }
        let (Some(dir), Some(authority)) = (&self.inner.certs_dir, uri.authority()) else {
            return Ok(pools.verified.clone());
        };
        let host = authority.as_str().to_owned();
        let mut per_host = pools
            .per_host
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pool) = per_host.get(&host) {
            return Ok(pool.clone());
        }
        let extra = registry_cas(&dir.join(&host))?;
        if extra.is_empty() {
            return Ok(pools.verified.clone());
        }
        let mut roots = (*pools.roots).clone();
        roots.add_parsable_certificates(extra);
        let config = client_config(Arc::new(roots)).map_err(|e| ClientError::TlsSetup {
            reason: e.to_string(),
        })?;
        let made = pool(config);
        per_host.insert(host, made.clone());
        Ok(made)
    }

    /// Sends `request` and waits (at most [`READ_TIMEOUT`]) for the response's headers.
    pub async fn send(
        &self,
        mut request: Request<Body>,
        tls: Tls,
    ) -> Result<Response<Incoming>, ClientError> {
        let pools = self.pools().await?;
        let pool = self.pool_for(pools, request.uri(), tls)?;
        if !request.headers().contains_key(USER_AGENT) {
            request
                .headers_mut()
                .insert(USER_AGENT, hyper::header::HeaderValue::from_static(AGENT));
        }
        let url = request.uri().to_string();
        let method = request.method().clone();
        match tokio::time::timeout(READ_TIMEOUT, pool.request(request)).await {
            Err(_) => Err(ClientError::Connect {
                method: method.to_string(),
                url,
                reason: "timed out waiting for the response".to_owned(),
                tls: false,
            }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(connect_error(&method, &url, &error)),
        }
    }

    /// `import URL`: GETs `url` (http or https), following redirects; anything but a 200 is
    /// an error.
    pub async fn get(&self, url: &str) -> Result<Download, ClientError> {
        let mut uri = check_url(url)?;
        for _ in 0..=MAX_REDIRECTS {
            let request = Request::get(uri.clone())
                .header(HOST, host_header(&uri))
                .body(empty())
                .map_err(|e| ClientError::InvalidUrl {
                    url: url.to_owned(),
                    reason: e.to_string(),
                })?;
            let response = self.send(request, Tls::Verify).await?;
            match response.status().as_u16() {
                200 => {
                    let length = response
                        .headers()
                        .get(hyper::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    let last_modified = response
                        .headers()
                        .get(hyper::header::LAST_MODIFIED)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    return Ok(Download {
                        body: response.into_body(),
                        length,
                        last_modified,
                    });
                }
                301 | 302 | 303 | 307 | 308 => {
                    let target = absolute_location(&uri.to_string(), &response, "redirect")?;
                    uri = check_url(&target)?;
                }
                status => {
                    let reason = response
                        .extensions()
                        .get::<hyper::ext::ReasonPhrase>()
                        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
                        .or_else(|| response.status().canonical_reason().map(str::to_owned))
                        .unwrap_or_default();
                    // What the server said (at most 64 KiB), for a builder's error line.
                    let body = match read_body(response.into_body(), 64 << 10).await {
                        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim().to_owned(),
                        _ => String::new(),
                    };
                    return Err(ClientError::DownloadStatus {
                        url: uri.to_string(),
                        status,
                        reason,
                        body,
                    });
                }
            }
        }
        Err(ClientError::InvalidUrl {
            url: url.to_owned(),
            reason: "too many redirects".to_owned(),
        })
    }
}

/// The CA certificates (`*.crt`) of one registry's directory; none when it does not exist.
fn registry_cas(dir: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    use rustls::pki_types::pem::PemObject;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ClientError::TlsSetup {
                reason: format!("{}: {e}", dir.display()),
            });
        }
    };
    let mut certs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("crt") {
            continue;
        }
        let read = CertificateDer::pem_file_iter(&path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ClientError::TlsSetup {
                reason: format!("{}: {e}", path.display()),
            })?;
        certs.extend(read);
    }
    Ok(certs)
}

/// A response body being downloaded (`import URL`).
#[derive(Debug)]
pub struct Download {
    body: Incoming,
    /// `Content-Length`, when the server sent one.
    pub length: Option<u64>,
    /// `Last-Modified`, as the server wrote it.
    pub last_modified: Option<String>,
}

impl Download {
    /// The body's bytes as they arrive. An error ends it: the connection failed, the body
    /// was shorter than its `Content-Length`, or nothing arrived for two minutes.
    pub fn into_stream(self) -> impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static {
        body_stream(self.body)
    }
}

/// A response body as a stream of chunks, each awaited at most [`READ_TIMEOUT`].
pub(crate) fn body_stream(
    body: Incoming,
) -> impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static {
    let chunks: BodyDataStream<Incoming> = body.into_data_stream();
    Box::pin(futures_util::stream::unfold(
        Some(chunks),
        |chunks| async move {
            let mut chunks = chunks?;
            match tokio::time::timeout(READ_TIMEOUT, chunks.next()).await {
                Err(_) => Some((
                    Err(io::Error::new(io::ErrorKind::TimedOut, "download stalled")),
                    None,
                )),
                Ok(None) => None,
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(chunks))),
                Ok(Some(Err(error))) => Some((Err(io::Error::other(error)), None)),
            }
        },
    ))
}

/// Reads a whole (small) response body, refusing more than `limit` bytes.
pub(crate) async fn read_body(
    body: Incoming,
    limit: usize,
) -> Result<Result<Vec<u8>, usize>, io::Error> {
    let mut stream = body_stream(body);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Ok(Err(out.len() + chunk.len()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Ok(out))
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body streamed from `chunks`.
pub fn streamed<S>(chunks: S) -> Body
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    StreamBody::new(chunks.map(|chunk| chunk.map(Frame::data))).boxed_unsync()
}

/// The items of `receiver` as a stream (an upload's body fed by a blocking thread).
pub(crate) fn receiver_stream(
    receiver: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// `host[:port]` as the `Host` header carries it.
pub(crate) fn host_header(uri: &Uri) -> String {
    uri.authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default()
}

/// An http(s) URL berth may fetch from.
pub fn check_url(url: &str) -> Result<Uri, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("only http:// and https:// URLs can be fetched")),
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid("missing or unsupported host"));
    };
    let text = authority.as_str();
    if authority.host().is_empty() || text.contains('@') {
        return Err(invalid("missing or unsupported host"));
    }
    // `http` accepts any text after the colon as a port.
    if let Some((_, port)) = text.rsplit_once(':')
        && !text.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(invalid("invalid port"));
    }
    Ok(uri)
}

/// The `Location` of an answer to `url` (a redirect, an upload answer), absolute; `what` the
/// answer is names it when the header is missing.
pub(crate) fn absolute_location(
    url: &str,
    response: &Response<Incoming>,
    what: &str,
) -> Result<String, ClientError> {
    let target = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ClientError::Registry {
            status: response.status().as_u16(),
            code: None,
            message: format!("{what} without a Location"),
        })?;
    let base: Uri =
        url.parse()
            .map_err(|e: hyper::http::uri::InvalidUri| ClientError::InvalidUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
    Ok(resolve_location(&base, target))
}

/// A `Location` (or `Link`) target, made absolute against the URL it answered.
pub(crate) fn resolve_location(base: &Uri, target: &str) -> String {
    if target.contains("://") {
        return target.to_owned();
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = host_header(base);
    if target.starts_with('/') {
        format!("{scheme}://{authority}{target}")
    } else {
        let path = base.path();
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{scheme}://{authority}{dir}/{target}")
    }
}

/// A failed request as one line: the TLS reason when there is one.
fn connect_error(
    method: &hyper::Method,
    url: &str,
    error: &hyper_util::client::legacy::Error,
) -> ClientError {
    let mut tls = false;
    let mut reason = error.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        let rustls_error = cause.downcast_ref::<rustls::Error>().or_else(|| {
            cause
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        reason = cause.to_string();
        // The connector may box the TLS error where no downcast reaches it: its text tells.
        let plain_http = rustls_error.map_or(reason == plain_http_answer().to_string(), |e| {
            *e == plain_http_answer()
        });
        if rustls_error.is_some() || plain_http {
            tls = true;
        }
        if plain_http {
            // Go's words, which Docker users know.
            reason = "http: server gave HTTP response to HTTPS client".to_owned();
        }
        source = cause.source();
    }
    ClientError::Connect {
        method: method.to_string(),
        url: url.to_owned(),
        reason,
        tls,
    }
}

/// How a TLS handshake fails when the server answers in plain text (an HTTP server on the
/// port): its first bytes are not a TLS record.
fn plain_http_answer() -> rustls::Error {
    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
}

/// Accepts any certificate: for insecure registries only.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    fn serve(responses: Vec<Vec<u8>>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for response in responses {
                let (mut stream, _) = listener.accept().expect("accept");
                let mut request = Vec::new();
                let mut buf = [0u8; 256];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(&response);
            }
        });
        port
    }

    async fn body(download: Download) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut stream = download.into_stream();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:8080/a/b.tar").is_ok());
        assert!(check_url("https://example.com").is_ok());
        assert!(check_url("ftp://example.com/x").is_err());
        assert!(check_url("http://user@h/x").is_err());
        assert!(check_url("http://h:notaport/").is_err());
        let base: Uri = "http://h:1/v2/a/blobs/x".parse().expect("uri");
        assert_eq!(resolve_location(&base, "/up/1"), "http://h:1/up/1");
        assert_eq!(resolve_location(&base, "y"), "http://h:1/v2/a/blobs/y");
        assert_eq!(
            resolve_location(&base, "https://other/z"),
            "https://other/z"
        );
    }

    #[tokio::test]
    async fn the_roots_are_read_at_the_first_request_not_at_creation() {
        // A daemon that never pulls never reads /etc/ssl/certs (its start and idle memory).
        let client = HttpClient::new(None).expect("client");
        assert!(format!("{client:?}").contains("roots: None"), "{client:?}");
        let port = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec(),
        ]);
        let download = client
            .get(&format!("http://127.0.0.1:{port}/x"))
            .await
            .expect("get");
        assert_eq!(body(download).await.expect("read"), b"ok");
        assert!(format!("{client:?}").contains("roots: Some("), "{client:?}");
    }

    #[tokio::test]
    async fn bodies_by_length_chunks_and_redirect() {
        // Each response on a connection of its own: the server closes after answering.
        let port = serve(vec![
            b"HTTP/1.1 302 Found\r\nLocation: /real\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nshort".to_vec(),
        ]);
        let client = HttpClient::new(None).expect("client");
        let url = format!("http://127.0.0.1:{port}/x");
        let download = client.get(&url).await.expect("redirected");
        assert_eq!(download.length, Some(5));
        assert_eq!(body(download).await.expect("read"), b"hello");
        let download = client.get(&url).await.expect("chunked");
        assert_eq!(download.length, None);
        assert_eq!(body(download).await.expect("read"), b"abcde");
        let err = client.get(&url).await.expect_err("404");
        assert!(
            matches!(err, ClientError::DownloadStatus { status: 404, .. }),
            "{err}"
        );
        let short = client.get(&url).await.expect("headers");
        assert!(body(short).await.is_err(), "a body cut short is an error");
        // Nobody listening any more: one line naming the URL.
        let err = client.get(&url).await.expect_err("refused");
        assert!(err.to_string().contains(&url), "{err}");
    }
}
