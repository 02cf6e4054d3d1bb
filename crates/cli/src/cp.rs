//! `cp`: files and directories between a container and the host (or a tar stream on stdio),
//! with the rules of docker's CLI for where things land and how they are renamed. The daemon
//! side is `HEAD`/`GET`/`PUT /containers/{id}/archive`.
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use clap::Args;
use serde_json::Value;

use crate::format;
use crate::http::{Body, Client, encode};
use crate::{CliError, CmdResult};

/// `cp` arguments.
#[derive(Debug, Args, Clone)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short = 'a', long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Suppress progress output during copy.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH or `-`.
    src: String,
    /// CONTAINER:DEST_PATH or DEST_PATH or `-`.
    dest: String,
}

/// A `cp` operand: a container path or a local one.
enum Operand {
    Container(String, String),
    Local(String),
}

fn split(arg: &str) -> Operand {
    if arg.starts_with('/') || arg.starts_with('.') || arg == "-" {
        return Operand::Local(arg.to_string());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => {
            Operand::Container(c.to_string(), p.to_string())
        }
        _ => Operand::Local(arg.to_string()),
    }
}

/// Go's `os.FileMode` bits docker's stat uses.
const MODE_DIR: u64 = 1 << 31;
const MODE_SYMLINK: u64 = 1 << 27;

#[derive(Debug, Clone)]
struct Stat {
    mode: u64,
    link_target: String,
}

fn decode_stat(header: Option<&str>) -> Option<Stat> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header?.trim())
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some(Stat {
        mode: v["mode"].as_u64().unwrap_or(0),
        link_target: v["linkTarget"].as_str().unwrap_or("").to_string(),
    })
}

/// HEAD the path; `Ok(None)` when it does not exist.
fn stat(c: &Client, container: &str, path: &str) -> Result<Option<Stat>, CliError> {
    let r = c.send(
        "HEAD",
        &format!("/containers/{}/archive", encode(container)),
        &[("path", path.to_string())],
        Body::Empty,
        false,
    )?;
    if r.status == 404 {
        // The container itself missing is an error; a missing path is an answer.
        let inspect = c.send(
            "GET",
            &format!("/containers/{}/json", encode(container)),
            &[],
            Body::Empty,
            false,
        )?;
        inspect.check()?;
        return Ok(None);
    }
    let r = r.check()?;
    Ok(decode_stat(r.header("x-docker-container-path-stat")))
}

/// The last component of `path` as docker names it (`.` for `dir/.`).
fn base(path: &str) -> String {
    if path.ends_with("/.") || path == "." {
        return ".".into();
    }
    Path::new(path.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into())
}

fn parent(path: &str) -> String {
    let p = Path::new(path.trim_end_matches('/'));
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.display().to_string(),
        _ => "/".into(),
    }
}

fn join_link(dir_of: &str, target: &str) -> String {
    if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{}/{target}", parent(dir_of))
    }
}

/// Runs `berth cp`.
pub fn run(c: &Client, a: CpArgs) -> CmdResult {
    match (split(&a.src), split(&a.dest)) {
        (Operand::Container(..), Operand::Container(..)) => {
            Err(CliError::msg("copying between containers is not supported"))
        }
        (Operand::Local(_), Operand::Local(_)) => {
            Err(CliError::msg("must specify at least one container source"))
        }
        (Operand::Container(ctr, path), Operand::Local(dest)) => {
            copy_from(c, &a, &ctr, &path, &dest)
        }
        (Operand::Local(src), Operand::Container(ctr, path)) => copy_to(c, &a, &src, &ctr, &path),
    }
}

fn copy_from(c: &Client, a: &CpArgs, ctr: &str, path: &str, dest: &str) -> CmdResult {
    let mut src = path.to_string();
    if a.follow_link
        && let Some(st) = stat(c, ctr, &src)?
        && st.mode & MODE_SYMLINK != 0
    {
        src = join_link(&src, &st.link_target);
    }
    if stat(c, ctr, &src)?.is_none() {
        return Err(CliError::daemon(
            404,
            format!("Could not find the file {src} in container {ctr}"),
        ));
    }
    let mut r = c
        .send(
            "GET",
            &format!("/containers/{}/archive", encode(ctr)),
            &[("path", src.clone())],
            Body::Empty,
            false,
        )?
        .check()?;
    let src_stat = decode_stat(r.header("x-docker-container-path-stat"));
    if dest == "-" {
        let mut out = io::stdout().lock();
        io::copy(&mut r, &mut out).map_err(CliError::io)?;
        out.flush().map_err(CliError::io)?;
        return Ok(0);
    }
    let src_is_dir = src_stat.as_ref().is_some_and(|s| s.mode & MODE_DIR != 0);
    let dest_path = Path::new(dest);
    let dest_meta = std::fs::metadata(dest_path).ok();
    let src_base = base(&src);
    // Where to extract, and what the top entry becomes (docker's PrepareArchiveCopy).
    let (dir, rename): (PathBuf, Option<String>) = match &dest_meta {
        Some(m) if m.is_dir() => (dest_path.to_path_buf(), None),
        Some(_) if src_is_dir => {
            return Err(CliError::msg(format!(
                "cannot copy directory to file: {dest}"
            )));
        }
        Some(_) => (parent_local(dest_path), Some(base(dest))),
        None => {
            if dest.ends_with('/') && !src_is_dir {
                return Err(CliError::msg(format!(
                    "destination directory {dest} does not exist"
                )));
            }
            let p = parent_local(dest_path);
            if !p.is_dir() {
                return Err(CliError::msg(format!(
                    "invalid output path: directory {:?} does not exist",
                    p.display().to_string()
                )));
            }
            (p, Some(base(dest)))
        }
    };
    // Big reads from the socket; the tar reader's small ones come out of this buffer.
    let mut counted = io::BufReader::with_capacity(1 << 20, Counter { inner: r, n: 0 });
    extract_local(&mut counted, &dir, &src_base, rename.as_deref())?;
    let counted = counted.into_inner();
    if !a.quiet {
        eprintln!(
            "Successfully copied {} to {dest}",
            format::human_size(counted.n as f64)
        );
    }
    Ok(0)
}

fn parent_local(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

struct Counter<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Extracts a tar stream under `dir`, renaming the top entry `from` to `to` when asked; no
/// entry may leave `dir` (no `..`, no absolute names, no writing through a symlink).
fn extract_local(
    input: &mut dyn Read,
    dir: &Path,
    from: &str,
    to: Option<&str>,
) -> Result<(), CliError> {
    let root = dir
        .canonicalize()
        .map_err(|e| CliError::msg(format!("{}: {e}", dir.display())))?;
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(CliError::io)? {
        let mut entry = entry.map_err(CliError::io)?;
        let name = entry.path().map_err(CliError::io)?.into_owned();
        let mut rel = PathBuf::new();
        // `dir/.` copies the contents: every entry goes under the new name.
        if from == "."
            && let Some(to) = to
        {
            rel.push(to);
        }
        for (i, comp) in name.components().enumerate() {
            match comp {
                Component::Normal(n) => {
                    if i == 0
                        && let Some(to) = to
                        && n.to_string_lossy() == from
                    {
                        rel.push(to);
                    } else {
                        rel.push(n);
                    }
                }
                Component::CurDir => {}
                _ => {
                    return Err(CliError::msg(format!(
                        "invalid archive entry {}",
                        name.display()
                    )));
                }
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = root.join(&rel);
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p).map_err(CliError::io)?;
            let real = p.canonicalize().map_err(CliError::io)?;
            if !real.starts_with(&root) {
                return Err(CliError::msg(format!(
                    "invalid archive entry {}: outside of {}",
                    name.display(),
                    root.display()
                )));
            }
        }
        entry
            .unpack(&target)
            .map_err(|e| CliError::msg(format!("extract {}: {e}", target.display())))?;
    }
    Ok(())
}

/// Writes the tar of `src` (a directory's tree, or one file, named `top` in the archive) into
/// `writer` on a thread of its own; the thread returns the bytes written.
fn tar_into(
    writer: io::PipeWriter,
    src: PathBuf,
    top: String,
    src_is_dir: bool,
) -> std::thread::JoinHandle<io::Result<u64>> {
    std::thread::spawn(move || -> io::Result<u64> {
        // Big writes into the pipe: the uploader sends 1 MiB chunks.
        let writer = io::BufWriter::with_capacity(1 << 20, writer);
        let mut counted = CountWriter {
            inner: writer,
            n: 0,
        };
        {
            let mut b = tar::Builder::new(&mut counted);
            b.follow_symlinks(false);
            if src_is_dir {
                b.append_dir_all(&top, &src)?;
            } else {
                b.append_path_with_name(&src, &top)?;
            }
            b.finish()?;
        }
        counted.flush()?;
        Ok(counted.n)
    })
}

fn copy_to(c: &Client, a: &CpArgs, src: &str, ctr: &str, path: &str) -> CmdResult {
    let mut dest = path.to_string();
    let mut dst_stat = stat(c, ctr, &dest)?;
    if let Some(st) = &dst_stat
        && st.mode & MODE_SYMLINK != 0
    {
        dest = join_link(&dest, &st.link_target);
        dst_stat = stat(c, ctr, &dest)?;
    }
    let dst_is_dir = dst_stat.as_ref().is_some_and(|s| s.mode & MODE_DIR != 0);
    let mut query = vec![("noOverwriteDirNonDir", "true".to_string())];
    if a.archive {
        query.push(("copyUIDGID", "true".into()));
    }
    let put = |dir: &str, body: &mut dyn Read| -> Result<(), CliError> {
        let mut q = query.clone();
        q.push(("path", dir.to_string()));
        c.send(
            "PUT",
            &format!("/containers/{}/archive", encode(ctr)),
            &q,
            Body::Stream(body, "application/x-tar"),
            false,
        )?
        .check()?;
        Ok(())
    };
    if src == "-" {
        if !dst_is_dir {
            return Err(CliError::msg(format!(
                "destination \"{ctr}:{path}\" must be a directory"
            )));
        }
        let mut stdin = io::stdin().lock();
        put(&dest, &mut stdin)?;
        return Ok(0);
    }
    let mut src_path = PathBuf::from(src);
    let meta = std::fs::symlink_metadata(&src_path)
        .map_err(|e| CliError::msg(format!("lstat {src}: {}", io_text(&e))))?;
    if a.follow_link && meta.file_type().is_symlink() {
        src_path = src_path
            .canonicalize()
            .map_err(|e| CliError::msg(format!("stat {src}: {}", io_text(&e))))?;
    }
    let src_is_dir = std::fs::symlink_metadata(&src_path)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    let contents_only = src_is_dir && src.ends_with("/.");
    let (dir, top) = if dst_is_dir {
        (
            dest.clone(),
            if contents_only { ".".into() } else { base(src) },
        )
    } else if dst_stat.is_some() {
        if src_is_dir {
            return Err(CliError::msg(format!(
                "cannot copy directory to file: {ctr}:{path}"
            )));
        }
        (parent(&dest), base(&dest))
    } else {
        if dest.ends_with('/') && !src_is_dir {
            return Err(CliError::msg(format!(
                "destination directory {ctr}:{path} does not exist"
            )));
        }
        (parent(&dest), base(&dest))
    };
    let (reader, writer) = io::pipe().map_err(CliError::io)?;
    let producer = tar_into(writer, src_path, top, src_is_dir);
    let mut reader = reader;
    let sent = put(&dir, &mut reader);
    drop(reader);
    let produced = producer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("tar writer panicked")));
    sent?;
    let n = produced.map_err(|e| CliError::msg(format!("archive {src}: {e}")))?;
    if !a.quiet {
        eprintln!(
            "Successfully copied {} to {ctr}:{path}",
            format::human_size(n as f64)
        );
    }
    Ok(0)
}

fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

struct CountWriter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for CountWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_split_like_docker() {
        assert!(matches!(split("c1:/etc"), Operand::Container(c, p) if c == "c1" && p == "/etc"));
        assert!(matches!(split("/tmp/a:b"), Operand::Local(_)));
        assert!(matches!(split("./x:y"), Operand::Local(_)));
        assert!(matches!(split("-"), Operand::Local(_)));
        assert_eq!(base("/a/b/"), "b");
        assert_eq!(base("/a/b/."), ".");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
    }
}
