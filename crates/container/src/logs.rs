//! Reading the logs the monitor writes: json-file (`<id>-json.log`, rotated to `.1`, `.2`, …)
//! and local (`local-logs/container.log`, length-framed protobuf entries, rotated to `.1.gz`,
//! … — see `berth_monitor::logdriver`).
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_api::stdcopy::StreamType;
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::life::Life;
use crate::store::Status;

/// `logs` options.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Keep streaming until the container stops.
    pub follow: bool,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only entries at or after this Unix time (seconds, fractional).
    pub since: Option<f64>,
    /// Only entries before this Unix time.
    pub until: Option<f64>,
    /// Prefix each line with its RFC3339Nano time and a space.
    pub timestamps: bool,
    /// Only the last N lines (None = all).
    pub tail: Option<usize>,
}

/// One piece of log output.
#[derive(Debug, Clone)]
pub struct LogChunk {
    /// stdout or stderr.
    pub stream: StreamType,
    /// The bytes, already prefixed with a timestamp if asked.
    pub data: Bytes,
}

/// A log stream: whether the container has a TTY (raw framing) and the chunks.
#[derive(Debug)]
pub struct LogStream {
    /// True when the container has a TTY: the daemon sends raw bytes, not frames.
    pub tty: bool,
    /// The chunks; the channel closes at the end.
    pub rx: mpsc::Receiver<LogChunk>,
}

/// How a log file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON lines.
    JsonFile,
    /// moby's `local`: protobuf entries framed by their length.
    Local,
}

/// One json-file line.
#[derive(Debug, Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

/// A parsed entry ready to send.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// stdout/stderr.
    pub stream: StreamType,
    /// The text (with its newline).
    pub text: String,
    /// RFC3339Nano.
    pub time: String,
    /// Unix seconds (fractional).
    pub unix: f64,
}

fn parse_line(line: &str) -> Option<LogLine> {
    let e: Entry = serde_json::from_str(line).ok()?;
    let unix = chrono::DateTime::parse_from_rfc3339(&e.time)
        .map(|t| t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
        .unwrap_or(0.0);
    let stream = if e.stream == "stderr" {
        StreamType::Stderr
    } else {
        StreamType::Stdout
    };
    Some(LogLine {
        stream,
        text: e.log,
        time: e.time,
        unix,
    })
}

/// The log files of a container, oldest first (local's rotated files are gzipped).
fn files(log: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for n in 1..100 {
        let p = PathBuf::from(format!("{}.{n}", log.display()));
        let gz = PathBuf::from(format!("{}.{n}.gz", log.display()));
        if p.exists() {
            rotated.push(p);
        } else if gz.exists() {
            rotated.push(gz);
        } else {
            break;
        }
    }
    rotated.reverse();
    rotated.push(log.to_path_buf());
    rotated
}

fn wanted(l: &LogLine, o: &LogsOptions) -> bool {
    let stream_ok = match l.stream {
        StreamType::Stderr => o.stderr,
        _ => o.stdout,
    };
    stream_ok && o.since.is_none_or(|s| l.unix >= s) && o.until.is_none_or(|u| l.unix < u)
}

fn chunk(l: LogLine, timestamps: bool) -> LogChunk {
    let data = if timestamps {
        format!("{} {}", l.time, l.text)
    } else {
        l.text
    };
    LogChunk {
        stream: l.stream,
        data: Bytes::from(data),
    }
}

/// Reads the backlog (honouring since/until/tail), returning the lines and where the current
/// file ended (for follow).
pub fn read_backlog(log: &Path, format: Format, o: &LogsOptions) -> (Vec<LogLine>, u64) {
    if format == Format::Local {
        return read_local_backlog(log, o);
    }
    let mut lines = Vec::new();
    let mut end = 0;
    for f in files(log) {
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        let mut r = BufReader::new(file);
        let mut buf = String::new();
        loop {
            buf.clear();
            match r.read_line(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) if !buf.ends_with('\n') => break,
                Ok(n) => {
                    if f == log {
                        end += n as u64;
                    }
                    if let Some(l) = parse_line(buf.trim_end_matches('\n')).filter(|l| wanted(l, o))
                    {
                        lines.push(l);
                    }
                }
            }
        }
    }
    if let Some(t) = o.tail {
        let skip = lines.len().saturating_sub(t);
        lines.drain(..skip);
    }
    (lines, end)
}

fn read_local_backlog(log: &Path, o: &LogsOptions) -> (Vec<LogLine>, u64) {
    let mut lines = Vec::new();
    let mut end = 0;
    for f in files(log) {
        let bytes = if f.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            match std::fs::File::open(&f)
                .and_then(|file| flate2::read::GzDecoder::new(file).read_to_end(&mut out))
            {
                Ok(_) => out,
                Err(_) => continue,
            }
        } else {
            std::fs::read(&f).unwrap_or_default()
        };
        let (entries, used) = decode_local(&bytes);
        if f == log {
            end = used as u64;
        }
        lines.extend(entries.into_iter().filter(|l| wanted(l, o)));
    }
    if let Some(t) = o.tail {
        let skip = lines.len().saturating_sub(t);
        lines.drain(..skip);
    }
    (lines, end)
}

/// Decodes whole `local` entries from `bytes`; returns them and how many bytes they took.
fn decode_local(bytes: &[u8]) -> (Vec<LogLine>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while bytes.len() >= pos + 4 {
        let len = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        if bytes.len() < pos + 8 + len {
            break;
        }
        if let Some(line) = decode_entry(&bytes[pos + 4..pos + 4 + len]) {
            out.push(line);
        }
        pos += 8 + len;
    }
    (out, pos)
}

/// One protobuf `LogEntry`: source (1), time_nano (2), line (3), partial (4).
fn decode_entry(mut b: &[u8]) -> Option<LogLine> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let (mut source, mut nanos, mut line, mut partial) = (&b""[..], 0i64, &b""[..], false);
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match key & 7 {
            0 => {
                let v = varint(&mut b)?;
                match key >> 3 {
                    2 => nanos = v as i64,
                    4 => partial = v != 0,
                    _ => {}
                }
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                let (field, rest) = (b.get(..n)?, b.get(n..)?);
                b = rest;
                match key >> 3 {
                    1 => source = field,
                    3 => line = field,
                    _ => {}
                }
            }
            1 => b = b.get(8..)?,
            5 => b = b.get(4..)?,
            _ => return None,
        }
    }
    let time = chrono::DateTime::from_timestamp(
        nanos.div_euclid(1_000_000_000),
        u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    )?;
    let mut text = String::from_utf8_lossy(line).into_owned();
    if !partial {
        text.push('\n');
    }
    Some(LogLine {
        stream: if source == b"stderr" {
            StreamType::Stderr
        } else {
            StreamType::Stdout
        },
        text,
        time: time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        unix: nanos as f64 / 1e9,
    })
}

/// Streams logs into `tx`: the backlog, then (with follow) new lines until the container stops.
pub async fn stream(
    log: PathBuf,
    format: Format,
    o: LogsOptions,
    mut life: watch::Receiver<Life>,
    tx: mpsc::Sender<LogChunk>,
) {
    let (lines, mut offset) = {
        let (log, o) = (log.clone(), o.clone());
        berth_fs::blocking(move || read_backlog(&log, format, &o))
            .await
            .unwrap_or_default()
    };
    for l in lines {
        if tx.send(chunk(l, o.timestamps)).await.is_err() {
            return;
        }
    }
    if !o.follow {
        return;
    }
    let mut ino = std::fs::metadata(&log)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap_or(0);
    loop {
        let alive = {
            let l = life.borrow_and_update();
            !l.removed && (l.status.is_alive() || l.status == Status::Restarting)
        };
        // Read what is new since the last position (a rotation starts a new file).
        let (new_lines, new_offset, new_ino) = {
            let (log, o) = (log.clone(), o.clone());
            berth_fs::blocking(move || read_from(&log, format, offset, ino, &o))
                .await
                .unwrap_or((Vec::new(), offset, ino))
        };
        offset = new_offset;
        ino = new_ino;
        for l in new_lines {
            if tx.send(chunk(l, o.timestamps)).await.is_err() {
                return;
            }
        }
        if !alive {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = life.changed() => {}
            _ = tx.closed() => return,
        }
    }
}

fn read_from(
    log: &Path,
    format: Format,
    offset: u64,
    ino: u64,
    o: &LogsOptions,
) -> (Vec<LogLine>, u64, u64) {
    let Ok(mut f) = std::fs::File::open(log) else {
        return (Vec::new(), offset, ino);
    };
    let cur_ino = f
        .metadata()
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap_or(0);
    let start = if cur_ino == ino { offset } else { 0 };
    if f.seek(SeekFrom::Start(start)).is_err() {
        return (Vec::new(), offset, ino);
    }
    if format == Format::Local {
        let mut bytes = Vec::new();
        if f.read_to_end(&mut bytes).is_err() {
            return (Vec::new(), offset, ino);
        }
        let (entries, used) = decode_local(&bytes);
        let out = entries.into_iter().filter(|l| wanted(l, o)).collect();
        return (out, start + used as u64, cur_ino);
    }
    let mut r = BufReader::new(f);
    let mut out = Vec::new();
    let mut pos = start;
    let mut buf = String::new();
    loop {
        buf.clear();
        match r.read_line(&mut buf) {
            Ok(n) if n > 0 && buf.ends_with('\n') => {
                pos += n as u64;
                if let Some(l) = parse_line(buf.trim_end_matches('\n')).filter(|l| wanted(l, o)) {
                    out.push(l);
                }
            }
            _ => break,
        }
    }
    (out, pos, cur_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LogsOptions {
        LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }
    }

    #[test]
    fn backlog_reads_rotated_files_in_order_with_tail_and_filters() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("c-json.log");
        std::fs::write(
            format!("{}.1", log.display()),
            "{\"log\":\"one\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:01Z\"}\n",
        )
        .unwrap();
        std::fs::write(
            &log,
            concat!(
                "{\"log\":\"two\\n\",\"stream\":\"stderr\",\"time\":\"2026-01-01T00:00:02Z\"}\n",
                "{\"log\":\"three\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:03Z\"}\n",
                "{\"log\":\"partial"
            ),
        )
        .unwrap();
        let (lines, _) = read_backlog(&log, Format::JsonFile, &opts());
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["one\n", "two\n", "three\n"]);
        let (lines, _) = read_backlog(
            &log,
            Format::JsonFile,
            &LogsOptions {
                tail: Some(1),
                ..opts()
            },
        );
        assert_eq!(lines[0].text, "three\n");
        let (lines, _) = read_backlog(
            &log,
            Format::JsonFile,
            &LogsOptions {
                stdout: false,
                ..opts()
            },
        );
        assert_eq!(lines.len(), 1);
        let since = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:02Z")
            .unwrap()
            .timestamp() as f64;
        let (lines, _) = read_backlog(
            &log,
            Format::JsonFile,
            &LogsOptions {
                since: Some(since),
                until: Some(since + 0.5),
                ..opts()
            },
        );
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "two\n");
        let c = chunk(lines[0].clone(), true);
        assert_eq!(&c.data[..], b"2026-01-01T00:00:02Z two\n");
    }
}
