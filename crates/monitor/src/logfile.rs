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
//!
//! **A full disk.** Encoded entries wait in a buffer until written. A write that stops short
//! (`ENOSPC` after part of a batch) is cut back to the last whole entry (`ftruncate`), so no
//! half-written entry is ever fused with its retry; what was not written stays buffered and is
//! retried every [`RETRY_INTERVAL`]. The buffer is bounded by `max_buffer` (Docker's
//! `max-buffer-size`, [`DEFAULT_MAX_BUFFER`]): in [`LogMode::Blocking`] (Docker's default)
//! the monitor stops reading the container's output while it is full ([`LogFile::is_full`]),
//! so the container blocks on its pipe as it would on a full pipe; in
//! [`LogMode::NonBlocking`] entries that do not fit are dropped and counted
//! ([`LogFile::dropped`]).
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::MonitorError;
use crate::logdriver::{Forwarder, LogDriver};

/// A partial line is cut into an entry of its own at this size (Docker's buffer size).
pub const MAX_LINE: usize = 16 * 1024;

/// The most encoded entries held unwritten (Docker's default `max-buffer-size`, 1 MB).
pub const DEFAULT_MAX_BUFFER: usize = 1024 * 1024;

/// How often entries that could not be written (a full disk) are tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// What happens to output the log cannot take yet (Docker's `mode` log option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogMode {
    /// The container waits (its output is not read) until the log has room.
    #[default]
    Blocking,
    /// Entries that do not fit in the buffer are dropped and counted.
    NonBlocking,
}

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

/// An entry's time: json-file's text, computed once per chunk of output; else the instant.
enum EntryTime {
    Text(String),
    At(SystemTime),
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
    /// The log file (`json-file`, `local`); none for the other drivers.
    file: Option<File>,
    driver: LogDriver,
    /// Where `syslog` and `journald` send entries.
    forwarder: Option<Forwarder>,
    size: u64,
    max_size: u64,
    max_files: u32,
    partials: [Partial; 2],
    /// Encoded entries not yet written (one write per chunk of output, not per line); only
    /// whole entries.
    pending: Vec<u8>,
    mode: LogMode,
    max_buffer: usize,
    /// Entries dropped for want of room ([`LogMode::NonBlocking`]).
    dropped: u64,
    /// After a failed write: not before this instant again.
    retry_at: Option<Instant>,
}

impl LogFile {
    /// Opens (appending to) the log at `path`; rotates at `max_size` bytes (0 = never),
    /// keeping `max_files` files in all (0 counts as 1).
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> Result<Self, MonitorError> {
        Self::open_driver(&LogDriver::JsonFile, path, max_size, max_files)
    }

    /// [`LogFile::open`] for any driver: the file drivers open `path`, the forwarding ones
    /// connect to their destination (a failure is the container's start error, as Docker's
    /// "failed to initialize logging driver"), `none` keeps nothing.
    pub fn open_driver(
        driver: &LogDriver,
        path: &Path,
        max_size: u64,
        max_files: u32,
    ) -> Result<Self, MonitorError> {
        let file = if driver.writes_file() {
            Some(open_append(path)?)
        } else {
            None
        };
        let forwarder = Forwarder::connect(driver).map_err(|source| MonitorError::OpenLog {
            path: path.to_path_buf(),
            source,
        })?;
        let size = match &file {
            Some(file) => file
                .metadata()
                .map_err(|source| MonitorError::OpenLog {
                    path: path.to_path_buf(),
                    source,
                })?
                .len(),
            None => 0,
        };
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            driver: driver.clone(),
            forwarder,
            size,
            max_size,
            max_files: max_files.max(1),
            partials: Default::default(),
            pending: Vec::new(),
            mode: LogMode::Blocking,
            max_buffer: DEFAULT_MAX_BUFFER,
            dropped: 0,
            retry_at: None,
        })
    }

    /// Sets what happens to output the log cannot take yet, and how much it holds (at least
    /// one whole entry's worth).
    pub fn set_buffering(&mut self, mode: LogMode, max_buffer: usize) {
        self.mode = mode;
        self.max_buffer = max_buffer.max(2 * MAX_LINE);
    }

    /// In blocking mode: the buffer is full, stop reading the container's output until
    /// [`LogFile::retry`] made room.
    pub fn is_full(&self) -> bool {
        self.mode == LogMode::Blocking && self.pending.len() >= self.max_buffer
    }

    /// Entries dropped so far for want of room (non-blocking mode).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes of encoded entries waiting to be written.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// When unwritten entries are due to be tried again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at.filter(|_| !self.pending.is_empty())
    }

    /// Writes what is buffered if a retry is due at `now`.
    pub fn retry(&mut self, now: Instant) -> Result<(), MonitorError> {
        match self.retry_at() {
            Some(at) if at <= now => {
                self.retry_at = None;
                self.write_pending_at(now)
            }
            _ => Ok(()),
        }
    }

    /// Logs a chunk of output: complete lines become entries, the rest is held.
    pub fn write(
        &mut self,
        stream: Stream,
        data: &[u8],
        now: SystemTime,
        now_mono: Instant,
    ) -> Result<(), MonitorError> {
        let time = self.time_of(now);
        let mut rest = data;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(newline + 1);
            let partial = &mut self.partials[stream.index()];
            if partial.bytes.is_empty() {
                self.emit(stream, line, &time);
            } else {
                let mut joined = std::mem::take(&mut partial.bytes);
                partial.since = None;
                joined.extend_from_slice(line);
                self.emit(stream, &joined, &time);
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
                self.emit(stream, &chunk, &time);
            }
            if self.partials[stream.index()].bytes.is_empty() {
                self.partials[stream.index()].since = None;
            }
        }
        self.write_pending_at(now_mono)
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
                self.flush_partial(stream, now);
            }
        }
        self.write_pending_at(now_mono)
    }

    /// Writes out every held partial line (at exit).
    pub fn flush_partials(&mut self, now: SystemTime) -> Result<(), MonitorError> {
        self.flush_partial(Stream::Stdout, now);
        self.flush_partial(Stream::Stderr, now);
        // The last chance: try now, whatever the retry schedule says.
        self.retry_at = None;
        self.write_pending_at(Instant::now())
    }

    /// When the oldest held partial line started waiting.
    pub fn oldest_partial(&self) -> Option<Instant> {
        self.partials.iter().filter_map(|p| p.since).min()
    }

    fn flush_partial(&mut self, stream: Stream, now: SystemTime) {
        let bytes = std::mem::take(&mut self.partials[stream.index()].bytes);
        self.partials[stream.index()].since = None;
        if !bytes.is_empty() {
            let time = self.time_of(now);
            self.emit(stream, &bytes, &time);
        }
    }

    /// An entry's time as the driver records it.
    fn time_of(&self, now: SystemTime) -> EntryTime {
        match self.driver {
            LogDriver::JsonFile => EntryTime::Text(rfc3339_nano(now)),
            _ => EntryTime::At(now),
        }
    }

    /// Encodes one entry into the buffer (or, in non-blocking mode with the buffer full,
    /// drops and counts it); a forwarding driver sends it now.
    fn emit(&mut self, stream: Stream, line: &[u8], time: &EntryTime) {
        let start = self.pending.len();
        let time = match (time, &self.driver) {
            (EntryTime::Text(text), LogDriver::JsonFile) => text.as_str(),
            (EntryTime::At(at), LogDriver::Local { .. }) => {
                let nanos = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
                crate::logdriver::encode_local(&mut self.pending, stream, line, nanos);
                self.drop_if_over(start);
                return;
            }
            (EntryTime::At(at), _) => {
                if let Some(forwarder) = self.forwarder.as_mut() {
                    // Best effort, as Docker's forwarding drivers: a lost datagram is lost.
                    let _ = forwarder.send(stream, line, *at);
                }
                return;
            }
            (EntryTime::Text(_), _) => return,
        };
        self.pending.extend_from_slice(b"{\"log\":");
        escape_json_bytes(&mut self.pending, line);
        self.pending.extend_from_slice(b",\"stream\":\"");
        self.pending.extend_from_slice(stream.name().as_bytes());
        self.pending.extend_from_slice(b"\",\"time\":\"");
        self.pending.extend_from_slice(time.as_bytes());
        self.pending.extend_from_slice(b"\"}\n");
        self.drop_if_over(start);
    }

    /// In non-blocking mode, drops the entry encoded from `start` if it overflows the buffer.
    fn drop_if_over(&mut self, start: usize) {
        if self.mode == LogMode::NonBlocking && self.pending.len() > self.max_buffer {
            self.pending.truncate(start);
            self.dropped += 1;
        }
    }

    /// Writes the buffered entries, rotating at entry boundaries; unless a retry after a
    /// failure is not due yet at `now`.
    fn write_pending_at(&mut self, now: Instant) -> Result<(), MonitorError> {
        if self.retry_at.is_some_and(|at| at > now) {
            return Ok(());
        }
        while !self.pending.is_empty() {
            let batch = self.batch_len();
            if let Err(source) = self.write_batch(batch) {
                self.retry_at = Some(now + RETRY_INTERVAL);
                return Err(MonitorError::WriteLog {
                    path: self.path.clone(),
                    source,
                });
            }
            if self.max_size > 0 && self.size >= self.max_size {
                self.rotate()?;
            }
        }
        self.retry_at = None;
        if self.pending.capacity() > 64 * 1024 {
            // A burst of long lines should not pin memory for the container's lifetime.
            self.pending.shrink_to(4096);
        }
        Ok(())
    }

    /// How much of the buffer goes into the current file: all of it, or (with rotation) the
    /// entries up to and including the one that reaches `max_size`.
    fn batch_len(&self) -> usize {
        if self.max_size == 0 || self.size + self.pending.len() as u64 <= self.max_size {
            return self.pending.len();
        }
        let room = usize::try_from(self.max_size.saturating_sub(self.size)).unwrap_or(usize::MAX);
        if matches!(self.driver, LogDriver::Local { .. }) {
            // The entry that reaches max_size is the batch's last.
            let mut end = 0;
            for frame in local_frames(&self.pending) {
                end = frame;
                if end >= room {
                    break;
                }
            }
            return end.max(1).min(self.pending.len());
        }
        let from = room.saturating_sub(1).min(self.pending.len() - 1);
        self.pending[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.pending.len(), |i| from + i + 1)
    }

    /// Writes the first `len` bytes of the buffer (whole entries) and drops them from it. On
    /// failure after part of it, the file is cut back to the last whole entry written, and
    /// only the entries written whole leave the buffer.
    fn write_batch(&mut self, len: usize) -> std::io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            self.pending.drain(..len);
            return Ok(());
        };
        let mut written = 0;
        let failure = loop {
            if written == len {
                break None;
            }
            match file.write(&self.pending[written..len]) {
                Ok(0) => break Some(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let binary = matches!(self.driver, LogDriver::Local { .. });
        let whole = match failure {
            None => len,
            Some(_) if binary => local_frames(&self.pending[..written]).last().unwrap_or(0),
            Some(_) => self.pending[..written]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1),
        };
        if whole != written
            && let Err(e) = file.set_len(self.size + whole as u64)
        {
            // Never leave half an entry for the retry to be fused with: if it cannot be cut
            // away, end it with a line of its own before the retry.
            self.size += written as u64;
            self.pending.drain(..whole);
            self.pending.insert(0, b'\n');
            return Err(e);
        }
        self.size += whole as u64;
        self.pending.drain(..whole);
        match failure {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    fn rotate(&mut self) -> Result<(), MonitorError> {
        let numbered = |n: u32| {
            let mut name = self.path.as_os_str().to_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if let (LogDriver::Local { compress: true }, true) = (&self.driver, self.max_files > 1) {
            let gz = |n: u32| {
                let mut name = numbered(n).into_os_string();
                name.push(".gz");
                PathBuf::from(name)
            };
            for n in (1..self.max_files - 1).rev() {
                rename_if_exists(&gz(n), &gz(n + 1))?;
            }
            rename_if_exists(&self.path, &numbered(1))?;
            self.file = Some(open_append(&self.path)?);
            self.size = 0;
            return crate::logdriver::compress_rotated(&numbered(1), &gz(1)).map_err(|source| {
                MonitorError::RotateLog {
                    path: numbered(1),
                    source,
                }
            });
        }
        if self.max_files > 1 {
            for n in (1..self.max_files - 1).rev() {
                rename_if_exists(&numbered(n), &numbered(n + 1))?;
            }
            rename_if_exists(&self.path, &numbered(1))?;
            self.file = Some(open_append(&self.path)?);
        } else if let Some(file) = &self.file {
            file.set_len(0).map_err(|source| MonitorError::RotateLog {
                path: self.path.clone(),
                source,
            })?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Where each whole `local` entry of `buf` ends (its frames are length, entry, length).
fn local_frames(buf: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let head: [u8; 4] = buf.get(pos..pos + 4)?.try_into().ok()?;
        let end = pos + 8 + u32::from_be_bytes(head) as usize;
        (end <= buf.len()).then(|| {
            pos = end;
            end
        })
    })
}

/// A log file's mode (dockerd's): the owner writes, its group reads, no one else.
pub const LOG_FILE_MODE: u32 = 0o640;

fn open_append(path: &Path) -> Result<File, MonitorError> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(LOG_FILE_MODE)
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

    /// Runs `f` with a directory on a tmpfs of `size` bytes, in a mount namespace of a thread
    /// of its own (gone with the thread); `None` without the privilege to mount.
    fn on_tiny_tmpfs<T: Send>(size: &str, f: impl FnOnce(&Path) -> T + Send) -> Option<T> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: skipping the full-disk test");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        std::thread::scope(|s| {
            s.spawn(|| {
                use nix::mount::{MsFlags, mount};
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare");
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .expect("private");
                let options = format!("size={size}");
                mount(
                    Some("tmpfs"),
                    &path,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    Some(options.as_str()),
                )
                .expect("tmpfs");
                f(&path)
            })
            .join()
            .expect("thread")
        })
        .into()
    }

    /// Issue 10, item 13: a disk that fills up while the container writes never leaves a
    /// half-written entry fused with its retry, the buffer stays bounded (blocking: full, so
    /// the monitor stops reading; non-blocking: entries dropped and counted), and once there
    /// is room again every buffered entry is written, in order.
    #[test]
    fn a_full_disk_keeps_entries_whole_and_the_buffer_bounded() {
        for mode in [LogMode::Blocking, LogMode::NonBlocking] {
            let checked = on_tiny_tmpfs("256k", |dir| {
                let path = dir.join("c-json.log");
                // Most of the space goes to a file removed later ("freeing space").
                std::fs::write(dir.join("filler"), vec![0u8; 160 * 1024]).expect("filler");
                let mut log = LogFile::open(&path, 0, 1).expect("open");
                log.set_buffering(mode, 64 * 1024);
                let t0 = Instant::now();
                let mut failed_at = None;
                let mut sent = 0u32;
                for n in 0..4000u32 {
                    if log.is_full() {
                        // What the monitor does: stop reading the container's output.
                        break;
                    }
                    let line = format!("line {n:05} {}\n", "x".repeat(100));
                    if log
                        .write(Stream::Stdout, line.as_bytes(), at(1, 0), t0)
                        .is_err()
                    {
                        failed_at.get_or_insert(n);
                    }
                    sent = n + 1;
                    assert!(
                        log.buffered() <= 64 * 1024 + 200,
                        "buffer grew: {}",
                        log.buffered()
                    );
                }
                assert!(failed_at.is_some(), "the disk never filled");
                // Every line on disk is a whole entry (no fused retries).
                let on_disk = entries(&path);
                assert!(!on_disk.is_empty());
                // Free the space; the retry writes what is buffered.
                std::fs::remove_file(dir.join("filler")).expect("free");
                log.retry(t0 + RETRY_INTERVAL).expect("retry");
                assert_eq!(log.buffered(), 0);
                let all = entries(&path);
                let numbers: Vec<u32> = all
                    .iter()
                    .map(|e| {
                        e["log"].as_str().expect("log")[5..10]
                            .parse()
                            .expect("number")
                    })
                    .collect();
                (mode, sent, numbers, log.dropped())
            });
            let Some((mode, sent, numbers, dropped)) = checked else {
                return;
            };
            let mut sorted = numbers.clone();
            sorted.dedup();
            assert_eq!(sorted, numbers, "{mode:?}: no entry twice");
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "{mode:?}: in order"
            );
            match mode {
                LogMode::Blocking => {
                    assert_eq!(dropped, 0);
                    assert_eq!(
                        numbers,
                        (0..sent).collect::<Vec<_>>(),
                        "blocking: none lost"
                    );
                }
                LogMode::NonBlocking => {
                    assert!(dropped > 0, "non-blocking: nothing dropped");
                    assert_eq!(numbers.len() as u64 + dropped, u64::from(sent));
                }
            }
        }
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
