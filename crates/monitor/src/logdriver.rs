//! Docker's logging drivers as the monitor writes them: `json-file` and `local` (files the
//! daemon reads back, [`crate::logfile`]), `none`, and the forwarding drivers `syslog` and
//! `journald`, which send each entry to a socket and keep nothing to read back.
//!
//! `local` is moby's format: each entry is a protobuf `LogEntry` (`source` = 1, `time_nano` =
//! 2, `line` = 3 without its newline, `partial` = 4) framed by its length as a big-endian u32
//! before and after; rotated files are gzip-compressed (`container.log.1.gz`, …).
use std::io::{self, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::logfile::Stream;

/// The container's logging driver, as the daemon resolved it (`--log-driver`, `--log-opt`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "driver")]
pub enum LogDriver {
    /// Docker's default: JSON lines in `log_path`.
    #[default]
    JsonFile,
    /// moby's `local`: protobuf entries in `log_path`, rotated files compressed.
    Local {
        /// Compress rotated files (`compress`, default true).
        compress: bool,
    },
    /// Nothing is kept.
    None,
    /// Each line to a syslog server.
    Syslog(SyslogConfig),
    /// Each line to journald's native socket.
    Journald(JournaldConfig),
}

impl LogDriver {
    /// Whether the driver writes `log_path`.
    pub fn writes_file(&self) -> bool {
        matches!(self, LogDriver::JsonFile | LogDriver::Local { .. })
    }
}

/// Where and how syslog entries go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyslogConfig {
    /// `unix`, `unixgram`, `udp` or `tcp`.
    pub proto: String,
    /// A socket path (unix) or `host:port`.
    pub address: String,
    /// The facility number (`daemon` = 3 by default).
    pub facility: u8,
    /// The tag (`tag`, default the short container id).
    pub tag: String,
    /// `rfc5424` for RFC 5424 messages; else the BSD format.
    pub format: String,
}

/// Fields journald entries carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournaldConfig {
    /// journald's native socket.
    pub socket: PathBuf,
    /// Full container id.
    pub id: String,
    /// Container name (without the leading `/`).
    pub name: String,
    /// Image name as given.
    pub image: String,
    /// `SYSLOG_IDENTIFIER` and `CONTAINER_TAG` (`tag`, default the short id).
    pub tag: String,
}

/// A forwarding driver's connection.
#[derive(Debug)]
pub enum Forwarder {
    /// Syslog over a datagram socket (unix or udp, connected).
    SyslogDatagram(SyslogConfig, Datagram),
    /// Syslog over a stream (tcp, or unix when the server is a stream socket): one message a
    /// line.
    SyslogStream(SyslogConfig, Box<dyn WriteDebug>),
    /// journald's native protocol, one datagram per entry.
    Journald(JournaldConfig, UnixDatagram),
}

/// A stream to write messages to.
pub trait WriteDebug: Write + std::fmt::Debug + Send {}
impl<T: Write + std::fmt::Debug + Send> WriteDebug for T {}

/// A connected datagram socket.
#[derive(Debug)]
pub enum Datagram {
    /// A unix datagram socket.
    Unix(UnixDatagram),
    /// UDP.
    Udp(std::net::UdpSocket),
}

impl Forwarder {
    /// Connects to the driver's destination.
    pub fn connect(driver: &LogDriver) -> io::Result<Option<Forwarder>> {
        match driver {
            LogDriver::Syslog(config) => syslog_connect(config).map(Some),
            LogDriver::Journald(config) => {
                let socket = UnixDatagram::unbound()?;
                socket.connect(&config.socket)?;
                Ok(Some(Forwarder::Journald(config.clone(), socket)))
            }
            _ => Ok(None),
        }
    }

    /// Sends one entry (a line with or without its newline); a failure loses only this entry.
    pub fn send(&mut self, stream: Stream, line: &[u8], now: SystemTime) -> io::Result<()> {
        let partial = !line.ends_with(b"\n");
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        match self {
            Forwarder::SyslogDatagram(config, socket) => {
                let message = syslog_message(config, stream, text, now);
                match socket {
                    Datagram::Unix(s) => s.send(&message).map(drop),
                    Datagram::Udp(s) => s.send(&message).map(drop),
                }
            }
            Forwarder::SyslogStream(config, out) => {
                let mut message = syslog_message(config, stream, text, now);
                message.push(b'\n');
                out.write_all(&message)
            }
            Forwarder::Journald(config, socket) => socket
                .send(&journald_entry(config, stream, text, partial))
                .map(drop),
        }
    }
}

fn syslog_connect(config: &SyslogConfig) -> io::Result<Forwarder> {
    let config_ = config.clone();
    match config.proto.as_str() {
        "udp" => {
            let socket = std::net::UdpSocket::bind(if config.address.starts_with('[') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            })?;
            socket.connect(&config.address)?;
            Ok(Forwarder::SyslogDatagram(config_, Datagram::Udp(socket)))
        }
        "tcp" => {
            let stream = std::net::TcpStream::connect(&config.address)?;
            Ok(Forwarder::SyslogStream(config_, Box::new(stream)))
        }
        "unixgram" => {
            let socket = UnixDatagram::unbound()?;
            socket.connect(&config.address)?;
            Ok(Forwarder::SyslogDatagram(config_, Datagram::Unix(socket)))
        }
        // `unix`: a datagram socket if the server is one, else a stream (as Go's log/syslog).
        _ => {
            let socket = UnixDatagram::unbound()?;
            match socket.connect(&config.address) {
                Ok(()) => Ok(Forwarder::SyslogDatagram(config_, Datagram::Unix(socket))),
                Err(_) => {
                    let stream = UnixStream::connect(&config.address)?;
                    Ok(Forwarder::SyslogStream(config_, Box::new(stream)))
                }
            }
        }
    }
}

/// One syslog message as Docker's driver formats it: severity `info` for stdout, `err` for
/// stderr; BSD format (`<PRI>Mmm dd hh:mm:ss tag[pid]: msg`) unless `rfc5424`.
pub fn syslog_message(
    config: &SyslogConfig,
    stream: Stream,
    text: &[u8],
    now: SystemTime,
) -> Vec<u8> {
    let severity = match stream {
        Stream::Stdout => 6,
        Stream::Stderr => 3,
    };
    let priority = u16::from(config.facility) * 8 + severity;
    let pid = std::process::id();
    let time = chrono::DateTime::<chrono::Utc>::from(now);
    let head = if config.format.starts_with("rfc5424") {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "-".into());
        format!(
            "<{priority}>1 {} {host} {} {pid} {} - ",
            time.format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            config.tag,
            config.tag
        )
    } else if config.proto.starts_with("unix") {
        format!(
            "<{priority}>{} {}[{pid}]: ",
            time.format("%b %e %H:%M:%S"),
            config.tag
        )
    } else {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        format!(
            "<{priority}>{} {host} {}[{pid}]: ",
            time.format("%Y-%m-%dT%H:%M:%SZ"),
            config.tag
        )
    };
    let mut message = head.into_bytes();
    message.extend_from_slice(text);
    message
}

/// One journald entry in the native protocol: `KEY=value` lines; a value with a newline in
/// the binary form (`KEY\n`, its length as a little-endian u64, the value, `\n`).
pub fn journald_entry(
    config: &JournaldConfig,
    stream: Stream,
    text: &[u8],
    partial: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |key: &str, value: &[u8]| {
        if value.contains(&b'\n') {
            out.extend_from_slice(key.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
            out.push(b'\n');
        } else {
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value);
            out.push(b'\n');
        }
    };
    field("MESSAGE", text);
    field(
        "CONTAINER_ID",
        config.id.get(..12).unwrap_or(&config.id).as_bytes(),
    );
    field("CONTAINER_ID_FULL", config.id.as_bytes());
    field("CONTAINER_NAME", config.name.as_bytes());
    field("CONTAINER_TAG", config.tag.as_bytes());
    field("IMAGE_NAME", config.image.as_bytes());
    field("SYSLOG_IDENTIFIER", config.tag.as_bytes());
    field(
        "PRIORITY",
        match stream {
            Stream::Stdout => b"6",
            Stream::Stderr => b"3",
        },
    );
    if partial {
        field("CONTAINER_PARTIAL_MESSAGE", b"true");
    }
    out
}

/// Appends one `local` entry: length, protobuf `LogEntry`, length.
pub fn encode_local(out: &mut Vec<u8>, stream: Stream, line: &[u8], time_nano: i64) {
    let partial = !line.ends_with(b"\n");
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let mut entry = Vec::with_capacity(text.len() + 32);
    let source: &[u8] = match stream {
        Stream::Stdout => b"stdout",
        Stream::Stderr => b"stderr",
    };
    // field 1, wire type 2 (length-delimited): source
    entry.push(0x0a);
    varint(&mut entry, source.len() as u64);
    entry.extend_from_slice(source);
    // field 2, wire type 0 (varint): time_nano
    entry.push(0x10);
    varint(&mut entry, time_nano as u64);
    // field 3, wire type 2: line
    entry.push(0x1a);
    varint(&mut entry, text.len() as u64);
    entry.extend_from_slice(text);
    if partial {
        // field 4, wire type 0: partial
        entry.extend_from_slice(&[0x20, 0x01]);
    }
    let len = u32::try_from(entry.len()).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&entry);
    out.extend_from_slice(&len);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Compresses a rotated `local` log `from` into `to` (gzip, with the log files' mode),
/// through a temporary file, and removes `from`.
pub fn compress_rotated(from: &Path, to: &Path) -> io::Result<()> {
    let mut tmp = to.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut input = std::fs::File::open(from)?;
        let output = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(crate::logfile::LOG_FILE_MODE)
                .open(&tmp)?
        };
        let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::fast());
        io::copy(&mut input, &mut encoder)?;
        encoder.finish()?;
    }
    std::fs::rename(&tmp, to)?;
    std::fs::remove_file(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_entries_are_length_framed_protobuf() {
        let mut out = Vec::new();
        encode_local(&mut out, Stream::Stderr, b"hi\n", 300);
        let body = [
            0x0a, 6, b's', b't', b'd', b'e', b'r', b'r', 0x10, 0xac, 0x02, 0x1a, 2, b'h', b'i',
        ];
        let mut want = vec![0, 0, 0, body.len() as u8];
        want.extend_from_slice(&body);
        want.extend_from_slice(&[0, 0, 0, body.len() as u8]);
        assert_eq!(out, want);
        let mut partial = Vec::new();
        encode_local(&mut partial, Stream::Stdout, b"x", 1);
        assert_eq!(
            &partial[partial.len() - 6..partial.len() - 4],
            &[0x20, 0x01]
        );
    }

    #[test]
    fn journald_fields_use_the_binary_form_for_newlines() {
        let config = JournaldConfig {
            socket: PathBuf::from("/nonexistent"),
            id: "0123456789abcdef".into(),
            name: "web".into(),
            image: "busybox".into(),
            tag: "0123456789ab".into(),
        };
        let entry = journald_entry(&config, Stream::Stdout, b"a\nb", false);
        assert!(entry.starts_with(b"MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\n"));
        let text = String::from_utf8_lossy(&entry);
        assert!(text.contains("\nCONTAINER_NAME=web\n"), "{text}");
        assert!(text.contains("\nPRIORITY=6\n"), "{text}");
        assert!(
            text.contains("\nSYSLOG_IDENTIFIER=0123456789ab\n"),
            "{text}"
        );
        let entry = journald_entry(&config, Stream::Stderr, b"x", true);
        let text = String::from_utf8_lossy(&entry);
        assert!(text.contains("PRIORITY=3\n") && text.contains("CONTAINER_PARTIAL_MESSAGE=true\n"));
    }

    #[test]
    fn syslog_messages_carry_priority_and_tag() {
        let config = SyslogConfig {
            proto: "udp".into(),
            address: "127.0.0.1:514".into(),
            facility: 3,
            tag: "web".into(),
            format: String::new(),
        };
        let m = String::from_utf8(syslog_message(
            &config,
            Stream::Stdout,
            b"hello",
            SystemTime::now(),
        ))
        .unwrap();
        assert!(m.starts_with("<30>"), "{m}");
        assert!(
            m.ends_with(&format!(" web[{}]: hello", std::process::id())),
            "{m}"
        );
        let m = String::from_utf8(syslog_message(
            &config,
            Stream::Stderr,
            b"x",
            SystemTime::now(),
        ))
        .unwrap();
        assert!(m.starts_with("<27>"), "{m}");
    }
}
