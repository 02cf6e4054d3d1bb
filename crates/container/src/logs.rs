//! Reading the logs the monitor writes: json-file (`<id>-json.log`, rotated to `.1`, `.2`, …)
//! and local (`local-logs/container.log`, length-framed protobuf entries, rotated to `.1.gz`,
//! … — see `berth_monitor::logdriver`).
use std::fs::File;
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

/// The log files of a container, oldest first, each with its inode (how a reader knows a
/// file after a rotation renamed it).
fn chain(log: &Path) -> Vec<(PathBuf, u64)> {
    numbered_chain(log)
        .into_iter()
        .map(|(_, path, ino)| (path, ino))
        .collect()
}

/// [`chain`] with each file's number (`.N`; 0 for the log itself). A rotation renames `.N`
/// to `.N+1` from the oldest down, so while it runs one name may be missing: the listing
/// goes on past one missing name and stops at the second.
fn numbered_chain(log: &Path) -> Vec<(u32, PathBuf, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut rotated = Vec::new();
    let mut missing = 0;
    for n in 1..1000 {
        let p = PathBuf::from(format!("{}.{n}", log.display()));
        match std::fs::metadata(&p) {
            Ok(m) => {
                missing = 0;
                rotated.push((n, p, m.ino()));
            }
            Err(_) if missing == 0 => missing += 1,
            Err(_) => break,
        }
    }
    rotated.reverse();
    if let Ok(m) = std::fs::metadata(log) {
        rotated.push((0, log.to_path_buf(), m.ino()));
    }
    rotated
}

/// Opens `path` if it is still the file with inode `ino` (a rotation may have renamed
/// another one there since it was listed).
fn open_if(path: &Path, ino: u64) -> Option<File> {
    use std::os::unix::fs::MetadataExt;
    let f = File::open(path).ok()?;
    (f.metadata().ok()?.ino() == ino).then_some(f)
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

/// The most lines one read hands over: memory per reader is bounded by this, whatever the
/// size of the log.
const BATCH_LINES: usize = 256;
/// Bytes read backwards at a time when looking for a tail.
const BACK_BLOCK: u64 = 64 * 1024;

/// Whether a reader has caught up with the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// More is there to read now.
    More,
    /// At the end of the newest file.
    CaughtUp,
}

/// A reader of a container's log across its rotated files. It follows the file it reads by
/// its open descriptor, not by its name: a rotation that renames it (any number of times)
/// does not make it skip a line; only at the end of its file does it move to the next one.
#[derive(Debug)]
struct Reader {
    log: PathBuf,
    options: LogsOptions,
    /// The file being read and its inode; `None` before the log exists.
    file: Option<(BufReader<File>, u64)>,
    /// Where in it the next line starts.
    pos: u64,
    /// The start of a line the writer has not finished yet.
    partial: Vec<u8>,
}

impl Reader {
    /// A reader at the oldest line, or (with `tail`) at the first of the last `tail` lines
    /// that pass the filters, found by reading the files backwards from the end.
    fn open(log: &Path, options: &LogsOptions) -> Self {
        let mut reader = Self {
            log: log.to_path_buf(),
            options: options.clone(),
            file: None,
            pos: 0,
            partial: Vec::new(),
        };
        let files = chain(log);
        let start = match options.tail {
            Some(n) => tail_start(&files, n, options),
            None => files.first().map(|(p, ino)| (p.clone(), *ino, 0)),
        };
        if let Some((path, ino, offset)) = start
            && let Some(mut f) = open_if(&path, ino)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            reader.file = Some((BufReader::new(f), ino));
            reader.pos = offset;
        }
        reader
    }

    /// Reads up to [`BATCH_LINES`] wanted lines.
    fn read_batch(&mut self) -> (Vec<LogLine>, Progress) {
        let mut out = Vec::new();
        let mut scanned = 0;
        while out.len() < BATCH_LINES && scanned < 64 * BATCH_LINES {
            scanned += 1;
            match self.next_line() {
                Some(Some(line)) => {
                    if let Some(l) = parse_line(&line).filter(|l| wanted(l, &self.options)) {
                        out.push(l);
                    }
                }
                Some(None) => {}
                None => return (out, Progress::CaughtUp),
            }
        }
        (out, Progress::More)
    }

    /// The next complete line (`Some(None)` for one that is not UTF-8 or a step to the next
    /// file), or `None` at the end of the newest file.
    fn next_line(&mut self) -> Option<Option<String>> {
        if self.file.is_none() {
            let (path, ino) = chain(&self.log).into_iter().next()?;
            let f = open_if(&path, ino)?;
            self.file = Some((BufReader::new(f), ino));
            self.pos = 0;
        }
        let (reader, ino) = self.file.as_mut()?;
        match reader.read_until(b'\n', &mut self.partial) {
            Ok(n) if n > 0 && self.partial.ends_with(b"\n") => {
                self.pos += self.partial.len() as u64;
                let line = std::mem::take(&mut self.partial);
                let text = String::from_utf8(line).ok();
                return Some(text.map(|t| t.trim_end_matches('\n').to_owned()));
            }
            Ok(_) => {}
            Err(_) => self.partial.clear(),
        }
        // At the end of this file for now. A newer file means the writer moved on: what this
        // one holds is all it will ever hold.
        if let Some((f, ino)) = open_next(&self.log, *ino) {
            self.file = Some((BufReader::new(f), ino));
            self.pos = 0;
            // An entry the writer never finished cannot be completed any more.
            self.partial.clear();
            return Some(None);
        }
        // Still the newest file: truncated under us (max-file=1 rotates in place)?
        if let Some((reader, _)) = &self.file
            && reader
                .get_ref()
                .metadata()
                .is_ok_and(|m| m.len() < self.pos)
            && let Some((reader, _)) = self.file.as_mut()
            && reader.seek(SeekFrom::Start(0)).is_ok()
        {
            self.pos = 0;
            self.partial.clear();
            return Some(None);
        }
        None
    }
}

/// The file that comes after the one with inode `current`, opened; `None` while `current`
/// is the newest (or a rotation is still moving names). Files are found by inode and by
/// number: a rotation that renames them between the listing and the open, or is halfway
/// through its renames (the next number missing), makes it list again, never skip to a
/// newer file.
fn open_next(log: &Path, current: u64) -> Option<(File, u64)> {
    for attempt in 0..50 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let files = numbered_chain(log);
        match files.iter().position(|(_, _, i)| *i == current) {
            Some(i) => {
                let (n, _, _) = files[i];
                let (next_n, path, next) = files.get(i + 1)?;
                if n == 0 {
                    // The log itself, yet a newer file listed after it: mid-rotation.
                    continue;
                }
                if *next_n == n - 1
                    && let Some(f) = open_if(path, *next)
                {
                    return Some((f, *next));
                }
            }
            // Gone (rotated past max-file) while read: after a few listings (a rotation
            // in progress hides a name for a moment), every file left is newer.
            None if attempt >= 5 => {
                let (_, path, first) = files.first()?;
                if let Some(f) = open_if(path, *first) {
                    return Some((f, *first));
                }
            }
            None => {}
        }
    }
    None
}

/// Where the last `n` wanted lines begin: a file of `files` (oldest first), its inode, and
/// an offset in it. Reads backwards from the end, a block at a time: memory stays bounded
/// by the block and the longest line, whatever the size of the log.
fn tail_start(files: &[(PathBuf, u64)], n: usize, o: &LogsOptions) -> Option<(PathBuf, u64, u64)> {
    if n == 0 {
        // After the last complete line of the newest file.
        let (path, ino) = files.last()?;
        let mut f = open_if(path, *ino)?;
        let end = complete_end(&mut f);
        return Some((path.clone(), *ino, end));
    }
    let mut found = 0;
    for (path, ino) in files.iter().rev() {
        let Some(mut f) = open_if(path, *ino) else {
            continue;
        };
        if let Some(offset) = scan_back(&mut f, n, o, &mut found) {
            return Some((path.clone(), *ino, offset));
        }
    }
    files.first().map(|(p, ino)| (p.clone(), *ino, 0))
}

/// The offset just past the last complete line of `f` (0 when it has none).
fn complete_end(f: &mut File) -> u64 {
    use std::io::Read;
    let mut pos = f.metadata().map_or(0, |m| m.len());
    while pos > 0 {
        let from = pos.saturating_sub(BACK_BLOCK);
        let mut block = vec![0u8; (pos - from) as usize];
        if f.seek(SeekFrom::Start(from)).is_err() || f.read_exact(&mut block).is_err() {
            return 0;
        }
        if let Some(i) = block.iter().rposition(|b| *b == b'\n') {
            return from + i as u64 + 1;
        }
        pos = from;
    }
    0
}

/// Scans `f` backwards, counting wanted complete lines into `found`; the offset of the line
/// that makes `n`, if this file holds it.
fn scan_back(f: &mut File, n: usize, o: &LogsOptions, found: &mut usize) -> Option<u64> {
    use std::io::Read;
    let len = f.metadata().ok()?.len();
    // The bytes [pos, line_end) not yet split into lines; complete lines only: a trailing
    // entry without its newline is still being written.
    let mut pos = len;
    let mut carry: Vec<u8> = Vec::new();
    let mut seen_end = false;
    loop {
        let from = pos.saturating_sub(BACK_BLOCK);
        let mut block = vec![0u8; (pos - from) as usize];
        f.seek(SeekFrom::Start(from)).ok()?;
        f.read_exact(&mut block).ok()?;
        block.extend_from_slice(&carry);
        let mut end = block.len();
        if !seen_end {
            // Drop an unfinished last entry.
            match block.iter().rposition(|b| *b == b'\n') {
                Some(i) => {
                    end = i + 1;
                    seen_end = true;
                }
                None if from == 0 => return None,
                None => {
                    // All of this block is the unfinished entry.
                    carry.clear();
                    pos = from;
                    continue;
                }
            }
        }
        // Lines ending before `end`: each starts after the previous newline.
        while end > 0 {
            let start = block[..end - 1]
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|i| i + 1);
            let line_start = match start {
                Some(s) => s,
                None if from == 0 => 0,
                None => break,
            };
            let line = &block[line_start..end - 1];
            if let Some(l) = std::str::from_utf8(line).ok().and_then(parse_line)
                && wanted(&l, o)
            {
                *found += 1;
                if *found == n {
                    return Some(from + line_start as u64);
                }
            }
            end = line_start;
        }
        if from == 0 {
            return None;
        }
        block.truncate(end);
        carry = block;
        pos = from;
    }
}

/// One rotated `local` file, opened: its descriptor, whether it is gzipped, its inode and
/// its first entry (a compressed copy has another inode but the same first entry).
#[derive(Debug)]
struct Rotated {
    file: File,
    gz: bool,
    ino: u64,
    first: Option<Vec<u8>>,
}

impl Rotated {
    fn open(path: &Path, gz: bool) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let file = File::open(path).ok()?;
        let ino = file.metadata().ok()?.ino();
        let first = if gz {
            first_frame(flate2::read::GzDecoder::new(&file))
        } else {
            first_frame(&file)
        };
        Some(Self {
            file,
            gz,
            ino,
            first,
        })
    }

    fn is(&self, ino: u64, first: Option<&[u8]>) -> bool {
        self.ino == ino || (first.is_some() && self.first.as_deref() == first)
    }

    /// Its entries (the whole file, decompressed).
    fn entries(mut self) -> Vec<LogLine> {
        let mut bytes = Vec::new();
        let read = self.file.seek(SeekFrom::Start(0)).and_then(|_| {
            if self.gz {
                flate2::read::GzDecoder::new(&self.file).read_to_end(&mut bytes)
            } else {
                self.file.read_to_end(&mut bytes)
            }
        });
        match read {
            Ok(_) => decode_local(&bytes).0,
            Err(_) => Vec::new(),
        }
    }
}

/// The `local` driver's rotated files, oldest first, each opened as it is listed: `.N.gz`
/// (or `.N` while the monitor is compressing it, or with `compress=false`). A rotation
/// renames them from the oldest down while this lists them upwards, so one name may be
/// missing for a moment (the listing goes on past one), and a file may be seen twice (at
/// `N` and then `N+1`, or as `.1` and then `.2.gz`): kept once, at its first sighting. A file
/// is never missed: opened at the name it had when listed, it stays readable.
fn local_rotated(log: &Path) -> Vec<Rotated> {
    let mut rotated: Vec<Rotated> = Vec::new();
    let mut missing = 0;
    for n in 1..1000 {
        let plain = PathBuf::from(format!("{}.{n}", log.display()));
        let gz = PathBuf::from(format!("{}.{n}.gz", log.display()));
        let Some(r) = Rotated::open(&plain, false).or_else(|| Rotated::open(&gz, true)) else {
            if missing == 0 {
                missing += 1;
                continue;
            }
            break;
        };
        missing = 0;
        if !rotated.iter().any(|o| o.is(r.ino, r.first.as_deref())) {
            rotated.push(r);
        }
    }
    rotated.reverse();
    rotated
}

/// The first whole frame of `r` (a `local` log's first entry, time included): what names a
/// file across its rotation, since compressing it gives the copy another inode.
fn first_frame(mut r: impl Read) -> Option<Vec<u8>> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes(head) as usize;
    let mut rest = vec![0u8; len.checked_add(4)?];
    r.read_exact(&mut rest).ok()?;
    let mut frame = head.to_vec();
    frame.extend(rest);
    Some(frame)
}

/// A follower of a `local` log, by descriptor as [`Reader`] follows json-file: it reads the
/// file it has open to its end even after a rotation renamed (or compressed and unlinked)
/// it, then the rotated files that came after it, found by inode or first entry, then the
/// new log. No entry is missed or repeated across rotations, however slow the reader.
#[derive(Debug)]
struct LocalReader {
    log: PathBuf,
    /// The log file being read and its inode.
    file: Option<(File, u64)>,
    /// Bytes read from it that do not make a whole entry yet.
    pending: Vec<u8>,
}

impl LocalReader {
    /// Opens the log, and reads every rotated file older than it: the backlog.
    fn open(log: &Path) -> (Self, Vec<LogLine>) {
        let mut reader = Self {
            log: log.to_path_buf(),
            file: None,
            pending: Vec::new(),
        };
        let mut out = Vec::new();
        if let Some((f, ino)) = Self::open_current(log) {
            reader.file = Some((f, ino));
            out = reader.rotated_between(None);
        }
        (reader, out)
    }

    fn open_current(log: &Path) -> Option<(File, u64)> {
        use std::os::unix::fs::MetadataExt;
        let f = File::open(log).ok()?;
        let ino = f.metadata().ok()?.ino();
        Some((f, ino))
    }

    /// The first frame of the open file (read at offset 0, whatever has been read of it).
    fn open_first_frame(&self) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let (f, _) = self.file.as_ref()?;
        let mut head = [0u8; 4];
        f.read_exact_at(&mut head, 0).ok()?;
        let len = u32::from_be_bytes(head) as usize;
        let mut frame = vec![0u8; len.checked_add(8)?];
        f.read_exact_at(&mut frame, 0).ok()?;
        Some(frame)
    }

    /// The entries of the rotated files after the one `after` names (inode and first frame;
    /// `None`: from the oldest) and before the open file.
    fn rotated_between(&self, after: Option<(u64, Option<Vec<u8>>)>) -> Vec<LogLine> {
        let (open_ino, open_frame) = (
            self.file.as_ref().map_or(0, |(_, i)| *i),
            self.open_first_frame(),
        );
        let mut files = local_rotated(&self.log);
        let start = match &after {
            None => 0,
            Some((ino, frame)) => files
                .iter()
                .position(|r| r.is(*ino, frame.as_deref()))
                // Not listed: rotated out past max-file; every file left is newer.
                .map_or(0, |i| i + 1),
        };
        let end = files
            .iter()
            .position(|r| r.is(open_ino, open_frame.as_deref()))
            .unwrap_or(files.len())
            .max(start);
        files.truncate(end);
        files.drain(start..).flat_map(Rotated::entries).collect()
    }

    /// Everything whole there is now: the rest of the open file; if the log was rotated
    /// since, the files that came after it and the new log.
    fn read_available(&mut self) -> Vec<LogLine> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        if self.file.is_none() {
            let (r, backlog) = Self::open(&self.log);
            *self = r;
            out = backlog;
        }
        for _ in 0..1000 {
            out.extend(self.drain());
            let Some((_, ino)) = &self.file else {
                break;
            };
            let ino = *ino;
            let current = std::fs::metadata(&self.log).map(|m| m.ino()).ok();
            if current.is_none_or(|c| c == ino) {
                break;
            }
            // Rotated: what the writer put in before it moved on is there now.
            out.extend(self.drain());
            let done = (ino, self.open_first_frame());
            self.pending.clear();
            let Some(next) = Self::open_current(&self.log) else {
                break;
            };
            self.file = Some(next);
            out.extend(self.rotated_between(Some(done)));
        }
        out
    }

    /// The whole entries the open file has gained.
    fn drain(&mut self) -> Vec<LogLine> {
        let Some((f, _)) = self.file.as_mut() else {
            return Vec::new();
        };
        if f.read_to_end(&mut self.pending).is_err() {
            return Vec::new();
        }
        let (entries, used) = decode_local(&self.pending);
        self.pending.drain(..used);
        entries
    }
}

/// The `local` driver's backlog (honouring since/until/tail), and the reader that goes on
/// where it ended (for follow).
fn read_local_backlog(log: &Path, o: &LogsOptions) -> (Vec<LogLine>, LocalReader) {
    let (mut reader, mut lines) = LocalReader::open(log);
    lines.extend(reader.drain());
    lines.retain(|l| wanted(l, o));
    if let Some(t) = o.tail {
        let skip = lines.len().saturating_sub(t);
        lines.drain(..skip);
    }
    (lines, reader)
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

/// Reads the whole backlog (honouring since/until/tail) into memory: the replay of
/// `attach --logs`. `logs` streams instead (see [`stream`]).
pub fn read_backlog(log: &Path, format: Format, o: &LogsOptions) -> (Vec<LogLine>, u64) {
    if format == Format::Local {
        let (lines, reader) = read_local_backlog(log, o);
        let end = reader
            .file
            .as_ref()
            .and_then(|(f, _)| f.metadata().ok())
            .map_or(0, |m| m.len() - reader.pending.len() as u64);
        return (lines, end);
    }
    let mut reader = Reader::open(log, o);
    let mut lines = Vec::new();
    loop {
        let (batch, progress) = reader.read_batch();
        lines.extend(batch);
        if progress == Progress::CaughtUp {
            return (lines, reader.pos);
        }
    }
}

/// Streams logs into `tx`: the backlog, then (with follow) new lines until the container
/// stops. Read a batch at a time off the async threads, so memory per client is bounded by
/// a batch and the channel, whatever the size of the log.
pub async fn stream(
    log: PathBuf,
    format: Format,
    o: LogsOptions,
    mut life: watch::Receiver<Life>,
    tx: mpsc::Sender<LogChunk>,
) {
    if format == Format::Local {
        return stream_local(log, o, life, tx).await;
    }
    let mut reader = {
        let (log, o) = (log.clone(), o.clone());
        match berth_fs::blocking(move || Reader::open(&log, &o)).await {
            Ok(r) => r,
            Err(_) => return,
        }
    };
    loop {
        let alive = {
            let l = life.borrow_and_update();
            !l.removed && (l.status.is_alive() || l.status == Status::Restarting)
        };
        // Everything there is now, a batch at a time.
        loop {
            let read = berth_fs::blocking(move || {
                let (lines, progress) = reader.read_batch();
                (reader, lines, progress)
            })
            .await;
            let Ok((r, lines, progress)) = read else {
                return;
            };
            reader = r;
            for l in lines {
                if tx.send(chunk(l, o.timestamps)).await.is_err() {
                    return;
                }
            }
            if progress == Progress::CaughtUp {
                break;
            }
        }
        if !o.follow || !alive {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = life.changed() => {}
            _ = tx.closed() => return,
        }
    }
}

/// Streams a `local` log (the json-file one goes through [`Reader`]): the backlog, then (with
/// follow) what comes, through a [`LocalReader`].
async fn stream_local(
    log: PathBuf,
    o: LogsOptions,
    mut life: watch::Receiver<Life>,
    tx: mpsc::Sender<LogChunk>,
) {
    let Ok((lines, mut reader)) = ({
        let (log, o) = (log.clone(), o.clone());
        berth_fs::blocking(move || read_local_backlog(&log, &o)).await
    }) else {
        return;
    };
    for l in lines {
        if tx.send(chunk(l, o.timestamps)).await.is_err() {
            return;
        }
    }
    if !o.follow {
        return;
    }
    loop {
        let alive = {
            let l = life.borrow_and_update();
            !l.removed && (l.status.is_alive() || l.status == Status::Restarting)
        };
        let read = berth_fs::blocking(move || {
            let lines = reader.read_available();
            (reader, lines)
        })
        .await;
        let Ok((r, new_lines)) = read else {
            return;
        };
        reader = r;
        for l in new_lines.into_iter().filter(|l| wanted(l, &o)) {
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

    fn entry(n: usize) -> String {
        format!(
            "{{\"log\":\"line {n}\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:01Z\"}}\n"
        )
    }

    fn numbers(lines: &[LogLine]) -> Vec<usize> {
        lines
            .iter()
            .map(|l| {
                l.text
                    .trim_end()
                    .trim_start_matches("line ")
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    /// What the monitor does at max-size: shift `.N` up, rename the log to `.1`, start anew.
    fn rotate(log: &Path, max_files: u32) {
        for n in (1..max_files - 1).rev() {
            let _ = std::fs::rename(
                format!("{}.{n}", log.display()),
                format!("{}.{}", log.display(), n + 1),
            );
        }
        std::fs::rename(log, format!("{}.1", log.display())).unwrap();
    }

    fn append(log: &Path, range: std::ops::Range<usize>) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        for n in range {
            f.write_all(entry(n).as_bytes()).unwrap();
        }
    }

    #[test]
    fn a_slow_reader_finishes_each_file_across_many_rotations() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("c-json.log");
        append(&log, 0..10);
        let mut reader = Reader::open(&log, &opts());
        let (first, _) = reader.read_batch();
        assert_eq!(numbers(&first), (0..10).collect::<Vec<_>>());
        // The reader is slow: three rotations happen before it reads again, and the file it
        // was reading got more lines before it was renamed.
        append(&log, 10..20);
        rotate(&log, 5);
        append(&log, 20..30);
        rotate(&log, 5);
        append(&log, 30..40);
        rotate(&log, 5);
        append(&log, 40..45);
        let mut got = Vec::new();
        loop {
            let (lines, progress) = reader.read_batch();
            got.extend(numbers(&lines));
            if progress == Progress::CaughtUp {
                break;
            }
        }
        assert_eq!(got, (10..45).collect::<Vec<_>>());
        // Rotated past max-file while read: what its descriptor holds still comes.
        let mut reader = Reader::open(&log, &opts());
        let _ = reader.read_batch();
        append(&log, 45..50);
        for _ in 0..6 {
            rotate(&log, 3);
            append(&log, 50..51);
        }
        let (lines, _) = reader.read_batch();
        assert_eq!(numbers(&lines)[..5], [45, 46, 47, 48, 49]);
    }

    /// A reader that reaches the end of its file while a rotation is halfway through its
    /// renames (one name missing) goes on with the file that followed it, not with the
    /// oldest listed, and never jumps over the missing one.
    #[test]
    fn a_rotation_halfway_through_its_renames_skips_nothing() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("c-json.log");
        let name = |n: u32| PathBuf::from(format!("{}.{n}", log.display()));
        // .4 (oldest: 0..10), .3 (10..20), .2 (20..30), .1 (30..40), the log (40..50).
        for (i, n) in [4, 3, 2, 1].into_iter().enumerate() {
            append(&name(n), i * 10..i * 10 + 10);
        }
        append(&log, 40..50);
        let mut reader = Reader::open(&log, &opts());
        let mut got = Vec::new();
        for _ in 0..10 {
            let line = reader.next_line().unwrap().unwrap();
            got.push(parse_line(&line).unwrap());
        }
        // A rotation halfway: .4 became .5, .3 became .4, .2 not renamed yet (no .3).
        std::fs::rename(name(4), name(5)).unwrap();
        std::fs::rename(name(3), name(4)).unwrap();
        let mut numbers_read = numbers(&got);
        let (lines, _) = reader.read_batch();
        numbers_read.extend(numbers(&lines));
        // The rotation ends.
        std::fs::rename(name(2), name(3)).unwrap();
        std::fs::rename(name(1), name(2)).unwrap();
        std::fs::rename(&log, name(1)).unwrap();
        append(&log, 50..55);
        loop {
            let (lines, progress) = reader.read_batch();
            numbers_read.extend(numbers(&lines));
            if progress == Progress::CaughtUp {
                break;
            }
        }
        assert_eq!(numbers_read, (0..55).collect::<Vec<_>>());
    }

    #[test]
    fn tails_are_read_backwards_across_files() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("c-json.log");
        append(&log, 0..3000);
        rotate(&log, 5);
        append(&log, 3000..3002);
        // An entry still being written is not a line yet.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .map(|mut f| std::io::Write::write_all(&mut f, b"{\"log\":\"part").unwrap())
            .unwrap();
        let tail = |n| {
            let (lines, _) = read_backlog(
                &log,
                Format::JsonFile,
                &LogsOptions {
                    tail: Some(n),
                    ..opts()
                },
            );
            numbers(&lines)
        };
        assert_eq!(tail(1), [3001]);
        assert_eq!(tail(2), [3000, 3001]);
        assert_eq!(tail(5), [2997, 2998, 2999, 3000, 3001]);
        assert_eq!(tail(0), Vec::<usize>::new());
        assert_eq!(tail(10_000).len(), 3002);
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

    /// What the monitor's `local` driver does at max-size with compression: shift the
    /// `.N.gz` up, rename the log to `.1`, start a new log, compress `.1` and remove it.
    fn rotate_local(log: &Path, max_files: u32) {
        let gz = |n: u32| PathBuf::from(format!("{}.{n}.gz", log.display()));
        for n in (1..max_files - 1).rev() {
            let _ = std::fs::rename(gz(n), gz(n + 1));
        }
        let one = PathBuf::from(format!("{}.1", log.display()));
        std::fs::rename(log, &one).unwrap();
        std::fs::File::create(log).unwrap();
        berth_monitor::logdriver::compress_rotated(&one, &gz(1)).unwrap();
    }

    fn append_local(log: &Path, range: std::ops::Range<usize>) {
        use std::io::Write;
        let mut out = Vec::new();
        for n in range {
            let line = format!("line {n}\n");
            berth_monitor::logdriver::encode_local(
                &mut out,
                berth_monitor::logfile::Stream::Stdout,
                line.as_bytes(),
                1_700_000_000_000_000_000 + n as i64,
            );
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap()
            .write_all(&out)
            .unwrap();
    }

    /// Issue 14: a `local` follower that falls behind several (compressing) rotations gets
    /// every entry once: the rest of the file it had open, the rotated files after it, then
    /// the new log; and one whose file was rotated out past max-file still gets what its
    /// descriptor holds, then the files left.
    #[test]
    fn a_slow_local_follower_misses_and_repeats_nothing_across_rotations() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("container.log");
        append_local(&log, 0..10);
        let (lines, mut reader) = read_local_backlog(&log, &opts());
        assert_eq!(numbers(&lines), (0..10).collect::<Vec<_>>());
        append_local(&log, 10..20);
        rotate_local(&log, 5);
        append_local(&log, 20..30);
        rotate_local(&log, 5);
        append_local(&log, 30..40);
        rotate_local(&log, 5);
        append_local(&log, 40..45);
        assert_eq!(
            numbers(&reader.read_available()),
            (10..45).collect::<Vec<_>>()
        );
        append_local(&log, 45..47);
        assert_eq!(numbers(&reader.read_available()), [45, 46]);
        assert!(reader.read_available().is_empty());
        // Rotated past max-file (5) while behind: its own file, then the four rotated ones
        // left and the log (the one with 50 went the way of the reader's).
        append_local(&log, 47..50);
        for k in 0..6 {
            rotate_local(&log, 5);
            append_local(&log, 50 + k..51 + k);
        }
        let got = numbers(&reader.read_available());
        assert_eq!(got, [47, 48, 49, 51, 52, 53, 54, 55]);
        // The backlog lists each file once, oldest first.
        let (lines, _) = read_local_backlog(&log, &opts());
        assert_eq!(numbers(&lines), [51, 52, 53, 54, 55]);
    }
}
