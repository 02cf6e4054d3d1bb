//! `import <URL>`: a small blocking HTTP/1.1 GET for the tarball (plain `http://`; berth has
//! no TLS stack, so `https://` is refused with a clear error). Redirects are followed a few
//! times; the body is read as it arrives (length-delimited, chunked, or until close).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::error::ImageError;

const MAX_REDIRECTS: usize = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A response body being downloaded.
#[derive(Debug)]
pub struct Download {
    body: Body,
    /// `Content-Length`, when the server sent one.
    pub length: Option<u64>,
}

#[derive(Debug)]
enum Body {
    Length(io::Take<BufReader<TcpStream>>),
    Chunked(Chunked),
    UntilClose(BufReader<TcpStream>),
}

#[derive(Debug)]
struct Chunked {
    inner: BufReader<TcpStream>,
    remaining: u64,
    done: bool,
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
pub fn get(url: &str) -> Result<Download, ImageError> {
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let (host, port, path) = parse_url(&url)?;
        let failed = |source: io::Error| ImageError::Fetch {
            url: url.clone(),
            source,
        };
        let address =
            std::net::ToSocketAddrs::to_socket_addrs(&(host.trim_matches(['[', ']']), port))
                .map_err(failed)?
                .next()
                .ok_or_else(|| failed(io::Error::other("no address for host")))?;
        let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(failed)?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(failed)?;
        let mut writer = stream.try_clone().map_err(failed)?;
        let host_header = if port == 80 {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: berth\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        writer.write_all(request.as_bytes()).map_err(failed)?;
        let mut reader = BufReader::with_capacity(256 * 1024, stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).map_err(failed)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| failed(io::Error::other("not an HTTP response")))?;
        let mut length = None;
        let mut chunked = false;
        let mut location = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).map_err(failed)? == 0 {
                return Err(failed(io::Error::other("connection closed in the headers")));
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().ok(),
                    "transfer-encoding" => {
                        chunked = value.to_ascii_lowercase().contains("chunked");
                    }
                    "location" => location = Some(value.to_owned()),
                    _ => {}
                }
            }
        }
        match status {
            200 => {}
            301 | 302 | 303 | 307 | 308 => {
                let target = location
                    .ok_or_else(|| failed(io::Error::other("redirect without a location")))?;
                url = if target.starts_with('/') {
                    format!("http://{host_header}{target}")
                } else {
                    target
                };
                continue;
            }
            _ => {
                return Err(ImageError::FetchStatus {
                    url: url.clone(),
                    status,
                });
            }
        }
        let body = if chunked {
            Body::Chunked(Chunked {
                inner: reader,
                remaining: 0,
                done: false,
            })
        } else if let Some(length) = length {
            Body::Length(reader.take(length))
        } else {
            Body::UntilClose(reader)
        };
        return Ok(Download {
            body,
            length: if chunked { None } else { length },
        });
    }
    Err(ImageError::Fetch {
        url,
        source: io::Error::other("too many redirects"),
    })
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.body {
            Body::Length(body) => {
                let limit = body.limit();
                let n = body.read(buf)?;
                if n == 0 && limit > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "download ended before Content-Length",
                    ));
                }
                Ok(n)
            }
            Body::Chunked(body) => body.read(buf),
            Body::UntilClose(body) => body.read(buf),
        }
    }
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            self.remaining = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if self.remaining == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "download ended inside a chunk",
            ));
        }
        self.remaining -= n as u64;
        if self.remaining == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn bodies_by_length_chunks_and_redirect() {
        let port = serve(vec![
            b"HTTP/1.1 302 Found\r\nLocation: /real\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec(),
        ]);
        let url = format!("http://127.0.0.1:{port}/x");
        let mut body = String::new();
        let mut download = get(&url).expect("redirected");
        assert_eq!(download.length, Some(5));
        download.read_to_string(&mut body).expect("read");
        assert_eq!(body, "hello");
        body.clear();
        get(&url)
            .expect("chunked")
            .read_to_string(&mut body)
            .expect("read");
        assert_eq!(body, "abcde");
        let err = get(&url).expect_err("404");
        assert!(
            matches!(err, ImageError::FetchStatus { status: 404, .. }),
            "{err}"
        );
        let mut short = Vec::new();
        assert!(get(&url).expect("headers").read_to_end(&mut short).is_err());
    }
}
