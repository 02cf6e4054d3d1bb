//! A small blocking HTTP/1.1 client for the daemon's unix socket (or TCP).
//!
//! The CLI is a short-lived process whose start time counts toward `berth run`'s latency, so it
//! speaks the few shapes it needs directly over a blocking socket: JSON requests, streamed and
//! chunked responses, chunked uploads, and the `Upgrade: tcp` hijack of attach/exec.
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::CliError;

/// API path prefix.
const PREFIX: &str = "/v1.44";

/// Where the daemon listens.
#[derive(Debug, Clone)]
pub enum Host {
    /// `unix:///run/berth/berth.sock`.
    Unix(PathBuf),
    /// `tcp://host:port`.
    Tcp(String),
}

impl Host {
    /// Parses `unix://PATH`, `tcp://ADDR` or a bare path.
    pub fn parse(s: &str) -> Result<Host, CliError> {
        if let Some(p) = s.strip_prefix("unix://") {
            Ok(Host::Unix(PathBuf::from(p)))
        } else if let Some(a) = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
        {
            Ok(Host::Tcp(a.trim_end_matches('/').to_string()))
        } else if s.starts_with('/') {
            Ok(Host::Unix(PathBuf::from(s)))
        } else {
            Err(CliError::msg(format!(
                "unsupported host {s:?}: use unix://PATH or tcp://HOST:PORT"
            )))
        }
    }

    /// As the user would write it.
    pub fn display(&self) -> String {
        match self {
            Host::Unix(p) => format!("unix://{}", p.display()),
            Host::Tcp(a) => format!("tcp://{a}"),
        }
    }
}

/// A connected socket of either kind.
#[derive(Debug)]
pub enum Stream {
    /// Unix socket.
    Unix(UnixStream),
    /// TCP.
    Tcp(TcpStream),
}

impl Stream {
    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }
    /// Half-closes the write side (stdin EOF for a hijacked stream).
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
    /// Closes both directions.
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a response body is delimited.
#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    Eof,
}

/// A response whose body is read on demand.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    reader: BufReader<Stream>,
    framing: Framing,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The whole body.
    pub fn bytes(mut self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.read_to_end(&mut v)?;
        Ok(v)
    }

    /// The raw stream after a 101 (with any bytes already buffered).
    pub fn into_upgraded(self) -> BufReader<Stream> {
        self.reader
    }

    /// Fails with the daemon's message unless the status is 2xx (or 304).
    pub fn check(self) -> Result<Response, CliError> {
        if (200..300).contains(&self.status) || self.status == 304 {
            return Ok(self);
        }
        let status = self.status;
        let json = self.header("content-type") == Some("application/json");
        let body = self.bytes().map_err(CliError::io)?;
        let message = if json {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string())
        } else {
            String::from_utf8_lossy(&body).trim().to_string()
        };
        Err(CliError::daemon(status, message))
    }

    /// Decodes a JSON body.
    pub fn json<T: DeserializeOwned>(self) -> Result<T, CliError> {
        let b = self.bytes().map_err(CliError::io)?;
        serde_json::from_slice(&b)
            .map_err(|e| CliError::msg(format!("bad response from daemon: {e}")))
    }

    /// Reads the next line of a JSON-lines body (None at the end).
    pub fn next_line(&mut self) -> io::Result<Option<String>> {
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.read(&mut byte)? {
                0 => {
                    return Ok(
                        (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
                    );
                }
                _ if byte[0] == b'\n' => {
                    return Ok(Some(String::from_utf8_lossy(&out).into_owned()));
                }
                _ => out.push(byte[0]),
            }
        }
    }
}

impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.framing {
            Framing::Length(0) => Ok(0),
            Framing::Length(n) => {
                let max = (*n).min(buf.len() as u64) as usize;
                let r = self.reader.read(&mut buf[..max])?;
                *n -= r as u64;
                Ok(r)
            }
            Framing::Eof => self.reader.read(buf),
            Framing::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.reader.read_line(&mut line)?;
                    if line.trim().is_empty() {
                        line.clear();
                        self.reader.read_line(&mut line)?;
                    }
                    let size =
                        u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                            .map_err(|_| {
                                io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                            })?;
                    if size == 0 {
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let max = (*left).min(buf.len() as u64) as usize;
                let r = self.reader.read(&mut buf[..max])?;
                if r == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left -= r as u64;
                Ok(r)
            }
        }
    }
}

/// A request body.
pub enum Body<'a> {
    /// No body.
    Empty,
    /// JSON bytes.
    Json(Vec<u8>),
    /// A stream sent chunked (tar uploads).
    Stream(&'a mut dyn Read, &'static str),
}

/// The daemon client.
#[derive(Debug, Clone)]
pub struct Client {
    /// Where it connects.
    pub host: Host,
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Client {
    /// Opens a connection.
    pub fn connect(&self) -> io::Result<Stream> {
        match &self.host {
            Host::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            Host::Tcp(a) => TcpStream::connect(a).map(Stream::Tcp),
        }
    }

    /// Sends a request and reads the response head.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Body<'_>,
        upgrade: bool,
    ) -> Result<Response, CliError> {
        self.send_with_headers(method, path, query, body, upgrade, &[])
    }

    /// [`Client::send`] with extra request headers (`X-Registry-Auth`).
    pub fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Body<'_>,
        upgrade: bool,
        headers: &[(&str, String)],
    ) -> Result<Response, CliError> {
        let stream = self
            .connect()
            .map_err(|e| CliError::connect(&self.host, e))?;
        let mut url = format!("{PREFIX}{path}");
        let mut first = true;
        for (k, v) in query {
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
        }
        let mut head = format!(
            "{method} {url} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: berth-cli/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if upgrade {
            head.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let mut w = stream.try_clone().map_err(CliError::io)?;
        match body {
            Body::Empty => {
                if method == "POST" || method == "PUT" {
                    head.push_str("Content-Length: 0\r\n");
                }
                head.push_str("\r\n");
                w.write_all(head.as_bytes()).map_err(CliError::io)?;
            }
            Body::Json(b) => {
                head.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                ));
                let mut all = head.into_bytes();
                all.extend_from_slice(&b);
                w.write_all(&all).map_err(CliError::io)?;
            }
            Body::Stream(r, ctype) => {
                head.push_str(&format!(
                    "Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n"
                ));
                w.write_all(head.as_bytes()).map_err(CliError::io)?;
                // Chunks of up to 1 MiB, each framed and written with one call: big uploads
                // (cp, load, import) go at the speed of the disk, not of small writes.
                const CHUNK: usize = 1 << 20;
                let mut frame: Vec<u8> = Vec::with_capacity(CHUNK + 16);
                let mut buf = vec![0u8; CHUNK];
                let mut sent = Ok(());
                loop {
                    let mut n = 0;
                    while n < CHUNK {
                        match r.read(&mut buf[n..]) {
                            Ok(0) => break,
                            Ok(k) => n += k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(CliError::io(e)),
                        }
                    }
                    frame.clear();
                    if n > 0 {
                        frame.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                        frame.extend_from_slice(&buf[..n]);
                        frame.extend_from_slice(b"\r\n");
                    }
                    if n < CHUNK {
                        frame.extend_from_slice(b"0\r\n\r\n");
                    }
                    // The daemon may answer (an error) before reading everything: stop
                    // sending and read its answer.
                    if let Err(e) = w.write_all(&frame) {
                        sent = Err(e);
                        break;
                    }
                    if n < CHUNK {
                        break;
                    }
                }
                if let Err(e) = sent {
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    if reader.read_line(&mut line).map_err(CliError::io)? == 0 {
                        return Err(CliError::io(e));
                    }
                    return finish(method, line, reader);
                }
            }
        }
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(CliError::io)?;
        finish(method, line, reader)
    }
    /// GET returning JSON.
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.send("GET", path, query, Body::Empty, false)?
            .check()?
            .json()
    }

    /// POST with an optional JSON body, checked.
    pub fn post<B: Serialize>(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Response, CliError> {
        let body = match body {
            Some(b) => Body::Json(serde_json::to_vec(b).map_err(|e| CliError::msg(e.to_string()))?),
            None => Body::Empty,
        };
        self.send("POST", path, query, body, false)?.check()
    }

    /// POST without a body, checked.
    pub fn post_empty(&self, path: &str, query: &[(&str, String)]) -> Result<Response, CliError> {
        self.post::<()>(path, query, None)
    }

    /// DELETE, checked.
    pub fn delete(&self, path: &str, query: &[(&str, String)]) -> Result<Response, CliError> {
        self.send("DELETE", path, query, Body::Empty, false)?
            .check()
    }

    /// A hijacked connection: 101 expected.
    pub fn hijack(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<BufReader<Stream>, CliError> {
        let body = match body {
            Some(b) => Body::Json(b),
            None => Body::Empty,
        };
        let resp = self.send("POST", path, query, body, true)?;
        if resp.status != 101 {
            resp.check()?;
            return Err(CliError::msg("unable to upgrade to tcp, received 200"));
        }
        Ok(resp.into_upgraded())
    }
}

/// Reads the rest of a response head after its status `line`.
fn finish(
    method: &str,
    mut line: String,
    mut reader: BufReader<Stream>,
) -> Result<Response, CliError> {
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CliError::msg(format!("bad response from daemon: {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(CliError::io)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let framing = if status == 101 || status == 204 || status == 304 || method == "HEAD" {
        if status == 101 {
            Framing::Eof
        } else {
            Framing::Length(0)
        }
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else {
        Framing::Eof
    };
    Ok(Response {
        status,
        headers,
        reader,
        framing,
    })
}
