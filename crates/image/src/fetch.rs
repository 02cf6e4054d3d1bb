//! `import <URL>`: an HTTP GET for the tarball, through hyper's client — the one HTTP client
//! berth's daemon uses (the registry client will use it too; the CLI keeps its own small
//! blocking one). Plain `http://` for now: `https://` is refused with a clear error until TLS
//! arrives with the registry work. Redirects are followed a few times; the body is handed to
//! the caller as a stream of chunks as they arrive (length-delimited or chunked, decoded by
//! hyper; a body cut short is an error, never a shorter archive).
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyDataStream, BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONNECTION, HOST, HeaderValue, LOCATION, USER_AGENT};
use hyper_util::rt::TokioIo;

use crate::error::ImageError;

const MAX_REDIRECTS: usize = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait for the response headers or for the next piece of the body.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A response body being downloaded.
#[derive(Debug)]
pub struct Download {
    body: Incoming,
    /// `Content-Length`, when the server sent one.
    pub length: Option<u64>,
}

impl Download {
    /// The body's bytes as they arrive. An error ends it: the connection failed, the body
    /// was shorter than its `Content-Length`, or nothing arrived for two minutes.
    pub fn into_stream(self) -> impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static {
        let chunks: BodyDataStream<Incoming> = self.body.into_data_stream();
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
}

/// `http://host[:port]/path`: (host, port, path).
fn parse_url(url: &str) -> Result<(String, u16, String), ImageError> {
    let invalid = |reason: &'static str| ImageError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    if url.starts_with("https://") {
        return Err(invalid("https is not supported; serve the file over http"));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// URLs can be imported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid("missing or unsupported host"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port = port.parse().map_err(|_| invalid("bad port"))?;
            (host, port)
        }
        _ => (authority, 80),
    };
    Ok((host.to_owned(), port, path.to_owned()))
}

/// Whether `url` is one berth can fetch from.
pub(crate) fn check_url(url: &str) -> Result<(), ImageError> {
    parse_url(url).map(|_| ())
}

/// GETs `url`, following redirects; an answer other than 200 is an error.
pub async fn get(url: &str) -> Result<Download, ImageError> {
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let (host, port, path) = parse_url(&url)?;
        let host_header = if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let failed = |source: io::Error| ImageError::Fetch {
            url: url.clone(),
            source,
        };
        let response = request(&host, port, &host_header, &path)
            .await
            .map_err(failed)?;
        let status = response.status().as_u16();
        match status {
            200 => {
                let length = response
                    .headers()
                    .get(hyper::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                return Ok(Download {
                    body: response.into_body(),
                    length,
                });
            }
            301 | 302 | 303 | 307 | 308 => {
                let target = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| failed(io::Error::other("redirect without a location")))?;
                url = if target.starts_with('/') {
                    format!("http://{host_header}{target}")
                } else {
                    target.to_owned()
                };
            }
            _ => return Err(ImageError::FetchStatus { url, status }),
        }
    }
    Err(ImageError::Fetch {
        url,
        source: io::Error::other("too many redirects"),
    })
}

/// One GET on a new connection (`Connection: close`); the response's headers.
async fn request(
    host: &str,
    port: u16,
    host_header: &str,
    path: &str,
) -> io::Result<hyper::Response<Incoming>> {
    let timed_out =
        |what: &str| io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"));
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)),
    )
    .await
    .map_err(|_| timed_out("connect"))??;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    // The connection is driven by its own task until the body is read (or dropped).
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "import download connection ended");
        }
    });
    let request = hyper::Request::get(path)
        .header(HOST, host_header)
        .header(USER_AGENT, HeaderValue::from_static("berth"))
        .header(ACCEPT, HeaderValue::from_static("*/*"))
        .header(CONNECTION, HeaderValue::from_static("close"))
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    tokio::time::timeout(READ_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| timed_out("waiting for the response"))?
        .map_err(io::Error::other)
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
    fn urls_parse_and_https_is_refused() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/a/b.tar").expect("url"),
            ("127.0.0.1".into(), 8080, "/a/b.tar".into())
        );
        assert_eq!(
            parse_url("http://example.com").expect("url"),
            ("example.com".into(), 80, "/".into())
        );
        assert!(parse_url("https://example.com/x").is_err());
        assert!(parse_url("ftp://example.com/x").is_err());
        assert!(parse_url("http://h:notaport/").is_err());
    }

    #[tokio::test]
    async fn bodies_by_length_chunks_and_redirect() {
        let port = serve(vec![
            b"HTTP/1.1 302 Found\r\nLocation: /real\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec(),
        ]);
        let url = format!("http://127.0.0.1:{port}/x");
        let download = get(&url).await.expect("redirected");
        assert_eq!(download.length, Some(5));
        assert_eq!(body(download).await.expect("read"), b"hello");
        let download = get(&url).await.expect("chunked");
        assert_eq!(download.length, None);
        assert_eq!(body(download).await.expect("read"), b"abcde");
        let err = get(&url).await.expect_err("404");
        assert!(
            matches!(err, ImageError::FetchStatus { status: 404, .. }),
            "{err}"
        );
        let short = get(&url).await.expect("headers");
        assert!(body(short).await.is_err(), "a body cut short is an error");
    }
}
