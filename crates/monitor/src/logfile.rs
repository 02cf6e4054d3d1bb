//! The container's log in Docker's json-file format, with rotation.
//!
//! Each line of output becomes one JSON object on its own line, exactly as Docker's json-file
//! driver writes it (so `docker logs` tooling and log shippers parse it unchanged):
//!
//! ```text
//! {"log":"hello\n","stream":"stdout","time":"2026-11-28T13:51:03.123456789Z"}
//! ```
//!
//! A line without its newline yet is held per stream and written as its own entry when it
//! reaches [`MAX_LINE`] bytes, when it is older than the caller's limit ([`LogFile::flush_stale`])
//! or at exit ([`LogFile::flush_partials`]).
//!
//! On disk, next to each other: `<log>` (current), `<log>.1` (newest rotated) … `<log>.<N-1>`.
//! When `<log>` reaches `max_size` it is renamed to `<log>.1` (older ones shift up, the oldest
//! beyond `max_files` is overwritten) and a new `<log>` is started. The file is append-only and
//! never fsynced per line: a crash may lose the tail, never corrupt earlier entries.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::error::MonitorError;

/// A partial line is cut into an entry of its own at this size (Docker's buffer size).
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's stdout (and all of a TTY's output).
    Stdout,
    /// The process's stderr.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// A line still waiting for its newline.
#[derive(Debug, Default)]
struct Partial {
    bytes: Vec<u8>,
    since: Option<Instant>,
}

/// An open json-file log.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    partials: [Partial; 2],
    /// Encoded entries not yet written (one write per chunk of output, not per line).
    pending: Vec<u8>,
}

impl LogFile {
    /// Opens (appending to) the log at `path`; rotates at `max_size` bytes (0 = never),
    /// keeping `max_files` files in all (0 counts as 1).
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> Result<Self, MonitorError> {
        let file = open_append(path)?;
        let size = file
            .metadata()
            .map_err(|source| MonitorError::OpenLog {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            partials: Default::default(),
            pending: Vec::new(),
        })
    }

    /// Logs a chunk of output: complete lines become entries, the rest is held.
    pub fn write(
        &mut self,
        stream: Stream,
        data: &[u8],
        now: SystemTime,
        now_mono: Instant,
    ) -> Result<(), MonitorError> {
        let time = rfc3339_nano(now);
        let mut rest = data;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(newline + 1);
            let partial = &mut self.partials[stream.index()];
            if partial.bytes.is_empty() {
                self.emit(stream, line, &time)?;
            } else {
                let mut joined = std::mem::take(&mut partial.bytes);
                partial.since = None;
                joined.extend_from_slice(line);
                self.emit(stream, &joined, &time)?;
                // Keep the allocation for the next partial line.
                joined.clear();
                self.partials[stream.index()].bytes = joined;
            }
            rest = tail;
        }
        if !rest.is_empty() {
            let partial = &mut self.partials[stream.index()];
            partial.bytes.extend_from_slice(rest);
            partial.since.get_or_insert(now_mono);
            while self.partials[stream.index()].bytes.len() >= MAX_LINE {
                let chunk: Vec<u8> = self.partials[stream.index()]
                    .bytes
                    .drain(..MAX_LINE)
                    .collect();
                self.emit(stream, &chunk, &time)?;
            }
            if self.partials[stream.index()].bytes.is_empty() {
                self.partials[stream.index()].since = None;
            }
        }
        self.write_pending()
    }

    /// Writes out held partial lines older than `max_age`.
    pub fn flush_stale(
        &mut self,
        now: SystemTime,
        now_mono: Instant,
        max_age: std::time::Duration,
    ) -> Result<(), MonitorError> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let stale = self.partials[stream.index()]
                .since
                .is_some_and(|since| now_mono.duration_since(since) >= max_age);
            if stale {
                self.flush_partial(stream, now)?;
            }
        }
        self.write_pending()
    }

    /// Writes out every held partial line (at exit).
    pub fn flush_partials(&mut self, now: SystemTime) -> Result<(), MonitorError> {
        self.flush_partial(Stream::Stdout, now)?;
        self.flush_partial(Stream::Stderr, now)?;
        self.write_pending()
    }

    /// When the oldest held partial line started waiting.
    pub fn oldest_partial(&self) -> Option<Instant> {
        self.partials.iter().filter_map(|p| p.since).min()
    }

    fn flush_partial(&mut self, stream: Stream, now: SystemTime) -> Result<(), MonitorError> {
        let bytes = std::mem::take(&mut self.partials[stream.index()].bytes);
        self.partials[stream.index()].since = None;
        if !bytes.is_empty() {
            self.emit(stream, &bytes, &rfc3339_nano(now))?;
        }
        Ok(())
    }

    fn emit(&mut self, stream: Stream, line: &[u8], time: &str) -> Result<(), MonitorError> {
        self.pending.extend_from_slice(b"{\"log\":");
        escape_json_bytes(&mut self.pending, line);
        self.pending.extend_from_slice(b",\"stream\":\"");
        self.pending.extend_from_slice(stream.name().as_bytes());
        self.pending.extend_from_slice(b"\",\"time\":\"");
        self.pending.extend_from_slice(time.as_bytes());
        self.pending.extend_from_slice(b"\"}\n");
        if self.max_size > 0 && self.size + self.pending.len() as u64 >= self.max_size {
            self.write_pending()?;
            self.rotate()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), MonitorError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.pending)
            .map_err(|source| MonitorError::WriteLog {
                path: self.path.clone(),
                source,
            })?;
        self.size += self.pending.len() as u64;
        self.pending.clear();
        if self.pending.capacity() > 64 * 1024 {
            // A burst of long lines should not pin memory for the container's lifetime.
            self.pending.shrink_to(4096);
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), MonitorError> {
        let numbered = |n: u32| {
            let mut name = self.path.as_os_str().to_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if self.max_files > 1 {
            for n in (1..self.max_files - 1).rev() {
                rename_if_exists(&numbered(n), &numbered(n + 1))?;
            }
            rename_if_exists(&self.path, &numbered(1))?;
            self.file = open_append(&self.path)?;
        } else {
            self.file
                .set_len(0)
                .map_err(|source| MonitorError::RotateLog {
                    path: self.path.clone(),
                    source,
                })?;
        }
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, MonitorError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|source| MonitorError::OpenLog {
            path: path.to_path_buf(),
            source,
        })
}

fn rename_if_exists(from: &Path, to: &Path) -> Result<(), MonitorError> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(MonitorError::RotateLog {
            path: from.to_path_buf(),
            source,
        }),
    }
}

/// Appends `s` as a JSON string the way Docker's json-file driver does: `<`, `>`, `&` and
/// control characters as `\u00XX` (but `\n`, `\r` short), invalid UTF-8 bytes as `\ufffd`,
/// U+2028/U+2029 escaped.
///
/// ```
/// let mut out = Vec::new();
/// berth_monitor::logfile::escape_json_bytes(&mut out, b"a\t<b>\xff\n");
/// assert_eq!(out, br#""a\u0009\u003cb\u003e\ufffd\n""#);
/// ```
pub fn escape_json_bytes(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            if b >= 0x20 && !matches!(b, b'\\' | b'"' | b'<' | b'>' | b'&') {
                i += 1;
                continue;
            }
            out.extend_from_slice(&s[start..i]);
            match b {
                b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            i += 1;
            start = i;
            continue;
        }
        match decode_utf8_char(&s[i..]) {
            Some((c, len)) => {
                if c == '\u{2028}' || c == '\u{2029}' {
                    out.extend_from_slice(&s[start..i]);
                    out.extend_from_slice(if c == '\u{2028}' {
                        b"\\u2028"
                    } else {
                        b"\\u2029"
                    });
                    start = i + len;
                }
                i += len;
            }
            None => {
                out.extend_from_slice(&s[start..i]);
                out.extend_from_slice(b"\\ufffd");
                i += 1;
                start = i;
            }
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Decodes one UTF-8 character at the start of `s` (which starts with a non-ASCII byte).
fn decode_utf8_char(s: &[u8]) -> Option<(char, usize)> {
    let len = match s[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let bytes = s.get(..len)?;
    let c = std::str::from_utf8(bytes).ok()?.chars().next()?;
    Some((c, len))
}

/// Formats a time as Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped), as
/// Docker writes log times and container timestamps.
pub fn rfc3339_nano(time: SystemTime) -> String {
    let time: chrono::DateTime<chrono::Utc> = time.into();
    let mut text = time.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = chrono::Timelike::nanosecond(&time) % 1_000_000_000;
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn escaped(s: &[u8]) -> String {
        let mut out = Vec::new();
        escape_json_bytes(&mut out, s);
        String::from_utf8(out).expect("escaping yields UTF-8")
    }

    fn entries(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .expect("read log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }

    #[test]
    fn time_is_rfc3339_nano_without_trailing_zeros() {
        assert_eq!(
            rfc3339_nano(at(1_795_873_863, 123_456_789)),
            "2026-11-28T13:51:03.123456789Z"
        );
        assert_eq!(
            rfc3339_nano(at(1_795_873_863, 120_000_000)),
            "2026-11-28T13:51:03.12Z"
        );
        assert_eq!(rfc3339_nano(at(1_795_873_863, 0)), "2026-11-28T13:51:03Z");
    }

    #[test]
    fn escapes_like_docker() {
        assert_eq!(escaped(b"hi\n"), r#""hi\n""#);
        assert_eq!(escaped(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(escaped(b"\t\r\x1b[0m\x00"), r#""\u0009\r\u001b[0m\u0000""#);
        assert_eq!(escaped(b"<a&b>"), r#""\u003ca\u0026b\u003e""#);
        assert_eq!(escaped("é€😀".as_bytes()), "\"é€😀\"");
        assert_eq!(escaped(b"x\xffy\xc3"), r#""x\ufffdy\ufffd""#);
        assert_eq!(escaped("a\u{2028}b".as_bytes()), r#""a\u2028b""#);
        // Whatever the bytes, the result parses as JSON.
        let all: Vec<u8> = (0..=255u8).collect();
        let parsed: String = serde_json::from_str(&escaped(&all)).expect("valid JSON");
        assert!(parsed.starts_with("\u{0}\u{1}"));
        assert!(parsed.contains('\u{fffd}'));
    }

    #[test]
    fn splits_lines_and_holds_partials() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let mut log = LogFile::open(&path, 0, 1).expect("open");
        let t0 = Instant::now();
        let now = at(1_795_873_863, 5);
        log.write(Stream::Stdout, b"one\ntwo\nthr", now, t0)
            .expect("write");
        log.write(Stream::Stderr, b"err\n", now, t0).expect("write");
        assert_eq!(log.oldest_partial(), Some(t0));
        log.write(Stream::Stdout, b"ee\nfour", now, t0)
            .expect("write");
        let got = entries(&path);
        let logs: Vec<(&str, &str)> = got
            .iter()
            .map(|e| {
                (
                    e["log"].as_str().expect("log"),
                    e["stream"].as_str().expect("stream"),
                )
            })
            .collect();
        assert_eq!(
            logs,
            [
                ("one\n", "stdout"),
                ("two\n", "stdout"),
                ("err\n", "stderr"),
                ("three\n", "stdout")
            ]
        );
        assert_eq!(got[0]["time"], "2026-11-28T13:51:03.000000005Z");

        // Not stale yet, then stale.
        log.flush_stale(now, t0, Duration::from_secs(1))
            .expect("flush");
        assert_eq!(entries(&path).len(), 4);
        log.flush_stale(now, t0 + Duration::from_secs(2), Duration::from_secs(1))
            .expect("flush");
        let got = entries(&path);
        assert_eq!(got.len(), 5);
        assert_eq!(got[4]["log"], "four");
        assert_eq!(log.oldest_partial(), None);

        log.write(Stream::Stderr, b"tail", now, t0).expect("write");
        log.flush_partials(now).expect("flush");
        assert_eq!(entries(&path)[5]["log"], "tail");
        assert_eq!(entries(&path)[5]["stream"], "stderr");
    }

    #[test]
    fn long_partial_is_cut_at_max_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let mut log = LogFile::open(&path, 0, 1).expect("open");
        let data = vec![b'x'; MAX_LINE * 2 + 10];
        log.write(Stream::Stdout, &data, SystemTime::now(), Instant::now())
            .expect("write");
        let got = entries(&path);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["log"].as_str().map(str::len), Some(MAX_LINE));
        log.write(Stream::Stdout, b"\n", SystemTime::now(), Instant::now())
            .expect("write");
        assert_eq!(entries(&path)[2]["log"], format!("{}\n", "x".repeat(10)));
    }

    #[test]
    fn rotates_keeping_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        // Each entry is ~70 bytes: two entries per file.
        let mut log = LogFile::open(&path, 100, 3).expect("open");
        for n in 0..7 {
            log.write(
                Stream::Stdout,
                format!("line{n}\n").as_bytes(),
                SystemTime::now(),
                Instant::now(),
            )
            .expect("write");
        }
        let names = |p: &Path| -> Vec<String> {
            entries(p)
                .iter()
                .map(|e| e["log"].as_str().expect("log").to_string())
                .collect()
        };
        assert_eq!(names(&dir.path().join("log.2")), ["line2\n", "line3\n"]);
        assert_eq!(names(&dir.path().join("log.1")), ["line4\n", "line5\n"]);
        assert_eq!(names(&path), ["line6\n"]);
        assert!(!dir.path().join("log.3").exists());
    }

    #[test]
    fn single_file_rotation_truncates_and_appends_to_existing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(
            &path,
            "{\"log\":\"old\\n\",\"stream\":\"stdout\",\"time\":\"x\"}\n",
        )
        .expect("seed");
        let mut log = LogFile::open(&path, 0, 1).expect("open");
        log.write(Stream::Stdout, b"new\n", SystemTime::now(), Instant::now())
            .expect("write");
        assert_eq!(entries(&path).len(), 2, "appends to an existing log");

        let mut log = LogFile::open(&path, 120, 1).expect("open");
        log.write(Stream::Stdout, b"a\n", SystemTime::now(), Instant::now())
            .expect("write");
        log.write(Stream::Stdout, b"b\n", SystemTime::now(), Instant::now())
            .expect("write");
        assert!(!dir.path().join("log.1").exists());
        assert_eq!(entries(&path)[0]["log"], "b\n");
    }
}
