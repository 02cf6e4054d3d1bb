//! Tar streams out of and into a [`Root`]: what `docker cp` and the `/containers/{id}/archive`
//! endpoints move, and how image content pre-populates a new volume.
//!
//! Reading walks directories by descriptor, iteratively ([`berth_fs::tree::walk`]: any depth,
//! paths longer than `PATH_MAX`), so a symlink inside the tree is archived as a symlink and
//! never followed out, and opens each file only once it is checked to be the regular file
//! the walk listed ([`berth_fs::tree::open_regular`]: a file swapped for a FIFO or a device
//! is refused, never opened, so a copy never blocks). Writing finds each entry's parent from
//! the previous one's by descriptor ([`DirChain`], symlinks among the parents resolved inside
//! the root with `RESOLVE_IN_ROOT`), refuses entries whose name climbs out of the
//! destination, and creates the final component relative to the parent's descriptor without
//! following it.
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{
    FileStat, Mode, SFlag, UtimensatFlags, fchmod, fstat, fstatat, futimens, mkdirat, mknodat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use serde::{Deserialize, Serialize};

use berth_fs::tree::{self, DirChain, Visit};
use berth_fs::{IdMapping, Root, clean};

use crate::VolumeError;

/// What `HEAD /containers/{id}/archive` reports in `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    /// Base name of the path as asked for.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Go's `os.FileMode` bits (type bits high, permissions low).
    pub mode: u32,
    /// Modification time, RFC 3339 with nanoseconds.
    pub mtime: String,
    /// For a symlink, the absolute path it resolves to inside the root; else empty.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.FileMode` for a `st_mode`.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut mode = st_mode & 0o777;
    match st_mode & libc::S_IFMT {
        libc::S_IFDIR => mode |= 1 << 31,
        libc::S_IFLNK => mode |= 1 << 27,
        libc::S_IFBLK => mode |= 1 << 26,
        libc::S_IFCHR => mode |= (1 << 26) | (1 << 21),
        libc::S_IFIFO => mode |= 1 << 25,
        libc::S_IFSOCK => mode |= 1 << 24,
        _ => {}
    }
    if st_mode & libc::S_ISUID != 0 {
        mode |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        mode |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        mode |= 1 << 20;
    }
    mode
}

fn rfc3339(secs: i64, nanos: i64) -> String {
    chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The final component of `path` as Docker names tar entries: `.` for `dir/.`, `/` for `/`.
pub fn base_name(path: &str) -> String {
    if path.ends_with("/.") || path == "." {
        return ".".into();
    }
    let cleaned = clean(path);
    match cleaned.rsplit('/').next() {
        Some("") | None => "/".into(),
        Some(b) => b.to_string(),
    }
}

/// Whether the path as asked for means "follow the last symlink" (ends in `/` or `/.`).
pub fn follows_last(path: &str) -> bool {
    path.ends_with('/') || path.ends_with("/.")
}

/// Stats `path` inside `root` the way `docker cp` expects (Docker's `statPath`).
pub fn stat(root: &Root, path: &str, owner: &str) -> Result<PathStat, VolumeError> {
    let target = Path::new(path);
    let st = root
        .open_path(target, follows_last(path))
        .and_then(|fd| Ok(fstat(&fd)?))
        .map_err(|e| not_found_or(e, path, owner, "stat"))?;
    let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        root.canonical(target)
            .map_err(|e| VolumeError::io("resolve", path, e))?
            .display()
            .to_string()
    } else {
        String::new()
    };
    Ok(PathStat {
        name: base_name(path),
        size: st.st_size,
        mode: go_file_mode(st.st_mode),
        mtime: rfc3339(st.st_mtime, st.st_mtime_nsec),
        link_target,
    })
}

fn not_found_or(e: io::Error, path: &str, owner: &str, op: &'static str) -> VolumeError {
    if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) {
        VolumeError::PathNotFound {
            path: path.to_string(),
            container: owner.to_string(),
        }
    } else {
        VolumeError::io(op, path, e)
    }
}

/// Writes `path` (a file, or a directory and everything below it) from `root` to `out` as a
/// tar stream whose entries are named from `rebase` (e.g. `hosts`, `data/`, `data/x`). With
/// `map` (a container of `--userns-remap`), owners are written as the container sees them.
pub fn write_tar<W: Write>(
    root: &Root,
    path: &str,
    rebase: &str,
    owner: &str,
    map: Option<&IdMapping>,
    out: W,
) -> Result<W, VolumeError> {
    let target = Path::new(path);
    let fd = root
        .open_at(
            target,
            OFlag::O_PATH
                | if follows_last(path) {
                    OFlag::empty()
                } else {
                    OFlag::O_NOFOLLOW
                },
            Mode::empty(),
        )
        .map_err(|e| not_found_or(e, path, owner, "open"))?;
    let st = fstat(&fd).map_err(|e| VolumeError::io("stat", path, e.into()))?;
    let mut writer = TarWriter {
        builder: tar::Builder::new(out),
        links: HashMap::new(),
        map,
    };
    let io_err = |e: io::Error| VolumeError::io("archive", path, e);
    let name = PathBuf::from(rebase.trim_start_matches('/'));
    let name = if name.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        name
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => {
            let link = readlinkat(fd.as_fd(), "").map_err(|e| io_err(e.into()))?;
            writer
                .symlink(&name, &st, Path::new(&link))
                .map_err(io_err)?;
        }
        libc::S_IFDIR => {
            // Reopen readable: an O_PATH descriptor cannot list a directory.
            let dir = openat(
                fd.as_fd(),
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err(e.into()))?;
            writer.dir(&name, &st).map_err(io_err)?;
            tree::walk(dir, &name, (), &mut writer).map_err(|(at, e)| {
                VolumeError::io("archive", Path::new(path).join(at).display().to_string(), e)
            })?;
        }
        libc::S_IFREG => {
            // The file held, not its path again: what was checked is what is read.
            let file = tree::reopen_regular(fd.as_fd(), name.as_os_str(), &st).map_err(io_err)?;
            writer.file(&name, &st, file).map_err(io_err)?;
        }
        _ => writer.special(&name, &st).map_err(io_err)?,
    }
    writer.builder.into_inner().map_err(io_err)
}

struct TarWriter<'m, W: Write> {
    builder: tar::Builder<W>,
    /// (dev, ino) of files with more than one link → the entry name written first.
    links: HashMap<(u64, u64), PathBuf>,
    /// The container's mapping: headers carry container ids (moby's `UIDMaps` on `cp`).
    map: Option<&'m IdMapping>,
}

impl<W: Write> TarWriter<'_, W> {
    fn header(&self, st: &FileStat, kind: tar::EntryType) -> io::Result<tar::Header> {
        let (uid, gid) = match self.map {
            Some(map) => map.to_container(st.st_uid, st.st_gid)?,
            None => (st.st_uid, st.st_gid),
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        Ok(h)
    }

    fn dir(&mut self, name: &Path, st: &FileStat) -> io::Result<()> {
        let mut h = self.header(st, tar::EntryType::Directory)?;
        let mut n = name.as_os_str().to_owned();
        if !n.as_bytes().ends_with(b"/") {
            n.push("/");
        }
        self.builder.append_data(&mut h, Path::new(&n), io::empty())
    }

    fn symlink(&mut self, name: &Path, st: &FileStat, target: &Path) -> io::Result<()> {
        let mut h = self.header(st, tar::EntryType::Symlink)?;
        self.builder.append_link(&mut h, name, target)
    }

    fn file(&mut self, name: &Path, st: &FileStat, file: File) -> io::Result<()> {
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let mut h = self.header(st, tar::EntryType::Link)?;
                let first = first.clone();
                return self.builder.append_link(&mut h, name, first);
            }
            self.links.insert(key, name.to_owned());
        }
        let mut h = self.header(st, tar::EntryType::Regular)?;
        h.set_size(st.st_size.max(0) as u64);
        // A file that shrinks while read would break the stream: read exactly the size stated.
        let file = file.take(st.st_size.max(0) as u64);
        let mut padded = io::BufReader::with_capacity(
            1 << 16,
            PadTo {
                inner: file,
                left: st.st_size.max(0) as u64,
            },
        );
        self.builder.append_data(&mut h, name, &mut padded)
    }

    fn special(&mut self, name: &Path, st: &FileStat) -> io::Result<()> {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFCHR => tar::EntryType::Char,
            libc::S_IFBLK => tar::EntryType::Block,
            libc::S_IFIFO => tar::EntryType::Fifo,
            // Sockets are not archived (as Docker).
            _ => return Ok(()),
        };
        let mut h = self.header(st, kind)?;
        let major = libc::major(st.st_rdev);
        let minor = libc::minor(st.st_rdev);
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
        self.builder.append_data(&mut h, name, io::empty())
    }
}

/// The walk below a directory being archived; errors carry the entry's path.
impl<W: Write> Visit for TarWriter<'_, W> {
    type Dir = ();
    type Error = (PathBuf, io::Error);

    fn walk_error(&self, _op: &'static str, path: &Path, source: io::Error) -> Self::Error {
        (path.to_owned(), source)
    }

    fn enter(
        &mut self,
        _: &mut (),
        _: BorrowedFd<'_>,
        _: &OsStr,
        path: &Path,
        st: &FileStat,
        _: BorrowedFd<'_>,
    ) -> Result<Option<()>, Self::Error> {
        self.dir(path, st).map_err(|e| (path.to_owned(), e))?;
        Ok(Some(()))
    }

    fn entry(
        &mut self,
        _: &mut (),
        at: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &FileStat,
    ) -> Result<(), Self::Error> {
        let fail = |e: io::Error| (path.to_owned(), e);
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                let target = readlinkat(at, name).map_err(|e| fail(e.into()))?;
                self.symlink(path, st, Path::new(&target)).map_err(fail)
            }
            libc::S_IFREG => {
                let file = tree::open_regular(at, name, st).map_err(fail)?;
                self.file(path, st, file).map_err(fail)
            }
            _ => self.special(path, st).map_err(fail),
        }
    }

    fn leave(&mut self, _: (), _: &Path) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Reads exactly `left` bytes: the inner reader's, then zeros if it ends early.
struct PadTo<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for PadTo<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let mut n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            buf[..max].fill(0);
            n = max;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// How [`extract`] applies a stream.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Owner for everything written, instead of the entries' own.
    pub chown: Option<(u32, u32)>,
    /// Skip overlayfs whiteouts (character devices 0:0) and `.wh.` files.
    pub skip_whiteouts: bool,
    /// The container's mapping (`--userns-remap`): the entries' ids (or `chown`'s) are the
    /// container's, written shifted to the host's (moby's `UIDMaps` on `cp`).
    pub map: Option<IdMapping>,
}

/// The components of a tar entry name under the destination, or an error if it climbs out.
fn entry_parts(raw: &[u8]) -> Result<Vec<OsString>, VolumeError> {
    let mut parts: Vec<OsString> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(VolumeError::BadArchive {
                        message: format!(
                            "archive entry {:?} is outside of the destination",
                            String::from_utf8_lossy(raw)
                        ),
                    });
                }
            }
            p => parts.push(OsStr::from_bytes(p).to_owned()),
        }
    }
    Ok(parts)
}

/// Applies the tar stream `input` under the directory `dest` inside `root`.
pub fn extract<R: Read>(
    root: &Root,
    dest: &str,
    input: R,
    opts: &ExtractOptions,
) -> Result<(), VolumeError> {
    let dest_path = PathBuf::from(clean(dest));
    let mut archive = tar::Archive::new(input);
    let start = root
        .mkdir_all(&dest_path, 0o755)
        .map_err(|e| VolumeError::io("mkdir", dest_path.display().to_string(), e))?;
    // Each entry's parent from the previous one's, by descriptor: any depth, any length.
    let mut chain = DirChain::in_root(root, start.as_fd(), &dest_path);
    // Hard link targets, looked up the same way.
    let mut targets = DirChain::in_root(root, start.as_fd(), &dest_path);
    let mut dir_times: Vec<(Vec<OsString>, u64)> = Vec::new();
    let mut copy_buf = vec![0u8; 1 << 20];
    for entry in archive.entries().map_err(bad_stream)? {
        let mut entry = entry.map_err(bad_stream)?;
        let raw = entry.path_bytes().into_owned();
        let parts = entry_parts(&raw)?;
        let Some((name, parents)) = parts.split_last() else {
            continue;
        };
        if opts.skip_whiteouts && name.as_bytes().starts_with(b".wh.") {
            continue;
        }
        let mut parent_path = dest_path.clone();
        parent_path.extend(parents);
        let parent_parts: Vec<&OsStr> = parents.iter().map(OsString::as_os_str).collect();
        let parent = chain
            .dir(&parent_parts, Some(0o755))
            .map_err(|e| VolumeError::io("mkdir", parent_path.display().to_string(), e))?;
        let target = Target::of(&entry, parent, name, &parent_path, &raw, opts)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            target.place_dir(opts)?;
            dir_times.push((parts.clone(), target.mtime));
            continue;
        }
        if opts.skip_whiteouts && kind == tar::EntryType::Char && is_whiteout_node(&entry) {
            continue;
        }
        target.clear_for_non_dir(opts)?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                target.write_regular(&mut entry, &mut copy_buf)?;
            }
            tar::EntryType::Symlink => target.write_symlink(&entry)?,
            tar::EntryType::Link => target.write_hard_link(&entry, &mut targets)?,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                target.write_node(&entry, kind)?;
            }
            // PAX/GNU extension headers are consumed by the tar crate; others are skipped.
            _ => {}
        }
    }
    set_dir_times(root, start.as_fd(), &dest_path, dir_times);
    Ok(())
}

/// A numeric header field as Go's archive/tar (dockerd) reads it: all NULs or spaces is 0
/// (bollard's `Header::new_gnu()` headers leave uid and gid so); anything else unparsable is
/// refused.
fn numeric(value: io::Result<u64>, raw: &[u8]) -> Result<u64, VolumeError> {
    match value {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        Err(e) => Err(bad_stream(e)),
    }
}

fn bad_stream(e: io::Error) -> VolumeError {
    VolumeError::BadArchive {
        message: format!("invalid tar stream: {e}"),
    }
}

/// A character device 0:0: how overlayfs writes a whiteout.
fn is_whiteout_node<R: Read>(entry: &tar::Entry<'_, R>) -> bool {
    let h = entry.header();
    h.device_major().ok().flatten().unwrap_or(0) == 0
        && h.device_minor().ok().flatten().unwrap_or(0) == 0
}

/// Directory times last: writing inside a directory changes its mtime. Children before
/// parents (reverse order), each found from the previous one's parents by descriptor.
fn set_dir_times(
    root: &Root,
    start: BorrowedFd<'_>,
    dest_path: &Path,
    mut dir_times: Vec<(Vec<OsString>, u64)>,
) {
    dir_times.sort();
    let mut chain = DirChain::in_root(root, start, dest_path);
    for (parts, mtime) in dir_times.into_iter().rev() {
        let Some((name, parents)) = parts.split_last() else {
            continue;
        };
        let parents: Vec<&OsStr> = parents.iter().map(OsString::as_os_str).collect();
        if let Ok(parent) = chain.dir(&parents, None) {
            let t = TimeSpec::new(mtime as i64, 0);
            // Best effort, as tar does: a time that cannot be set changes no content.
            let _ = utimensat(
                parent,
                name.as_os_str(),
                &t,
                &t,
                UtimensatFlags::NoFollowSymlink,
            );
        }
    }
}

/// Where one entry goes (`name` in the directory `parent`) and what it says about itself.
struct Target<'a> {
    parent: BorrowedFd<'a>,
    name: &'a OsStr,
    /// The entry's path, for messages.
    shown: String,
    raw: &'a [u8],
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
    existing: Option<FileStat>,
}

impl<'a> Target<'a> {
    fn of<R: Read>(
        entry: &tar::Entry<'_, R>,
        parent: BorrowedFd<'a>,
        name: &'a OsStr,
        parent_path: &Path,
        raw: &'a [u8],
        opts: &ExtractOptions,
    ) -> Result<Self, VolumeError> {
        let h = entry.header();
        let (uid, gid) = match opts.chown {
            Some(ids) => ids,
            None => (
                numeric(h.uid(), &h.as_old().uid)? as u32,
                numeric(h.gid(), &h.as_old().gid)? as u32,
            ),
        };
        let (uid, gid) = match &opts.map {
            Some(map) => map.to_host(uid, gid).map_err(|e| VolumeError::BadArchive {
                message: e.to_string(),
            })?,
            None => (uid, gid),
        };
        Ok(Target {
            parent,
            name,
            shown: parent_path.join(name).display().to_string(),
            raw,
            uid,
            gid,
            mode: numeric(h.mode().map(u64::from), &h.as_old().mode)? as u32 & 0o7777,
            mtime: numeric(h.mtime(), &h.as_old().mtime)?,
            existing: fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok(),
        })
    }

    fn err(&self, op: &'static str) -> impl Fn(io::Error) -> VolumeError + '_ {
        move |e| VolumeError::io(op, self.shown.clone(), e)
    }

    fn errno(&self, op: &'static str) -> impl Fn(nix::Error) -> VolumeError + '_ {
        move |e| VolumeError::io(op, self.shown.clone(), e.into())
    }

    fn existing_dir(&self) -> bool {
        self.existing
            .as_ref()
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }

    fn ids(&self) -> (Option<Uid>, Option<Gid>) {
        (Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)))
    }

    /// A directory: made (or kept) and given its owner and mode; its time comes at the end.
    fn place_dir(&self, opts: &ExtractOptions) -> Result<(), VolumeError> {
        if self.existing.is_some() && !self.existing_dir() {
            if opts.no_overwrite_dir_non_dir {
                return Err(VolumeError::BadArchive {
                    message: format!(
                        "cannot overwrite non-directory {:?} with directory {:?}",
                        self.shown,
                        String::from_utf8_lossy(self.raw)
                    ),
                });
            }
            unlinkat(self.parent, self.name, UnlinkatFlags::NoRemoveDir)
                .map_err(self.errno("unlink"))?;
        }
        if !self.existing_dir() {
            mkdirat(self.parent, self.name, Mode::from_bits_truncate(0o700))
                .map_err(self.errno("mkdir"))?;
        }
        let fd = openat(
            self.parent,
            self.name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(self.errno("open"))?;
        let (uid, gid) = self.ids();
        fchown(&fd, uid, gid).map_err(self.errno("chown"))?;
        fchmod(&fd, Mode::from_bits_truncate(self.mode)).map_err(self.errno("chmod"))
    }

    /// Makes room for a non-directory: whatever is at the name goes.
    fn clear_for_non_dir(&self, opts: &ExtractOptions) -> Result<(), VolumeError> {
        if self.existing.is_none() {
            return Ok(());
        }
        if !self.existing_dir() {
            return unlinkat(self.parent, self.name, UnlinkatFlags::NoRemoveDir)
                .map_err(self.errno("unlink"));
        }
        if opts.no_overwrite_dir_non_dir {
            return Err(VolumeError::BadArchive {
                message: format!(
                    "cannot overwrite directory {:?} with non-directory {:?}",
                    self.shown,
                    String::from_utf8_lossy(self.raw)
                ),
            });
        }
        tree::remove_all_at(self.parent, self.name).map_err(self.err("remove"))
    }

    fn write_regular<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        copy_buf: &mut [u8],
    ) -> Result<(), VolumeError> {
        let fd = openat(
            self.parent,
            self.name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(self.errno("create"))?;
        let mut file = File::from(fd);
        copy_with(entry, &mut file, copy_buf).map_err(self.err("write"))?;
        let (uid, gid) = self.ids();
        fchown(&file, uid, gid).map_err(self.errno("chown"))?;
        fchmod(&file, Mode::from_bits_truncate(self.mode)).map_err(self.errno("chmod"))?;
        let t = TimeSpec::new(self.mtime as i64, 0);
        futimens(&file, &t, &t).map_err(self.errno("utimes"))
    }

    fn write_symlink<R: Read>(&self, entry: &tar::Entry<'_, R>) -> Result<(), VolumeError> {
        let target = entry
            .link_name_bytes()
            .map(|b| b.into_owned())
            .unwrap_or_default();
        // The target is stored as given: every later lookup resolves it in the root.
        symlinkat(OsStr::from_bytes(&target), self.parent, self.name)
            .map_err(self.errno("symlink"))?;
        let (uid, gid) = self.ids();
        fchownat(
            self.parent,
            self.name,
            uid,
            gid,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(self.errno("chown"))?;
        let t = TimeSpec::new(self.mtime as i64, 0);
        // Best effort, as tar does: some filesystems keep no symlink times.
        let _ = utimensat(
            self.parent,
            self.name,
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        );
        Ok(())
    }

    fn write_hard_link<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        targets: &mut DirChain<'_>,
    ) -> Result<(), VolumeError> {
        let target = entry
            .link_name_bytes()
            .map(|b| b.into_owned())
            .unwrap_or_default();
        let invalid = |e: io::Error| VolumeError::BadArchive {
            message: format!(
                "invalid hardlink {:?} -> {:?}: {e}",
                String::from_utf8_lossy(self.raw),
                String::from_utf8_lossy(&target)
            ),
        };
        let target_parts = entry_parts(&target)?;
        let Some((target_name, target_parents)) = target_parts.split_last() else {
            return Err(invalid(io::Error::from_raw_os_error(libc::EISDIR)));
        };
        let target_parents: Vec<&OsStr> = target_parents.iter().map(OsString::as_os_str).collect();
        let source = targets.dir(&target_parents, None).map_err(invalid)?;
        // Without AT_SYMLINK_FOLLOW: a symlink is linked itself, never followed.
        linkat(
            source,
            target_name.as_os_str(),
            self.parent,
            self.name,
            AtFlags::empty(),
        )
        .map_err(self.errno("link"))
    }

    fn write_node<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        kind: tar::EntryType,
    ) -> Result<(), VolumeError> {
        let sflag = match kind {
            tar::EntryType::Char => SFlag::S_IFCHR,
            tar::EntryType::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        let h = entry.header();
        let major = h.device_major().ok().flatten().unwrap_or(0);
        let minor = h.device_minor().ok().flatten().unwrap_or(0);
        mknodat(
            self.parent,
            self.name,
            sflag,
            Mode::from_bits_truncate(self.mode),
            libc::makedev(major, minor),
        )
        .map_err(self.errno("mknod"))?;
        let (uid, gid) = self.ids();
        fchownat(
            self.parent,
            self.name,
            uid,
            gid,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(self.errno("chown"))
    }
}

/// `io::copy` with a large buffer: file contents go in few, big writes.
fn copy_with(from: &mut dyn Read, to: &mut File, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        // On tmpfs where there is one: the deep trees below cost thousands of inodes, which a
        // busy disk makes slow.
        let dir = tempfile::Builder::new()
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("data/sub")).expect("mkdir");
        std::fs::write(root.join("data/a"), "aaa").expect("write");
        std::fs::write(root.join("data/sub/b"), "bbbb").expect("write");
        symlink("/etc/passwd", root.join("data/link")).expect("symlink");
        let r = Root::open(&root).expect("open");
        (dir, r)
    }

    #[test]
    fn round_trip_keeps_files_dirs_and_links() {
        let (dir, root) = tree();
        let bytes = write_tar(&root, "/data", "data", "c", None, Vec::new()).expect("tar");
        std::fs::create_dir_all(dir.path().join("root/copy")).expect("mkdir");
        extract(&root, "/copy", &bytes[..], &ExtractOptions::default()).expect("extract");
        let copy = dir.path().join("root/copy/data");
        assert_eq!(std::fs::read_to_string(copy.join("a")).expect("a"), "aaa");
        assert_eq!(
            std::fs::read_to_string(copy.join("sub/b")).expect("b"),
            "bbbb"
        );
        assert_eq!(
            std::fs::read_link(copy.join("link")).expect("link"),
            PathBuf::from("/etc/passwd")
        );
    }

    /// bollard's tests build headers with `Header::new_gnu()` and set only path, size and
    /// mode: uid, gid and mtime stay all NULs, which Go's archive/tar (dockerd) reads as 0.
    #[test]
    fn empty_numeric_fields_read_as_zero() {
        let (dir, root) = tree();
        let mut h = tar::Header::new_gnu();
        h.set_path("readme.txt").expect("path");
        h.set_size(5);
        h.set_mode(0o744);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"hello"[..]).expect("append");
        let bytes = b.into_inner().expect("tar");
        if !nix::unistd::geteuid().is_root() {
            return; // (extracting as uid 0 needs root; scripts/test.sh runs as root)
        }
        let opts = ExtractOptions::default();
        extract(&root, "/data", &bytes[..], &opts).expect("extract");
        let path = dir.path().join("root/data/readme.txt");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "hello");
        let mut bad = tar::Header::new_gnu();
        bad.set_path("x").expect("path");
        bad.set_size(0);
        bad.as_old_mut().mode.copy_from_slice(b"0000zz7\0");
        bad.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&bad, &b""[..]).expect("append");
        let bytes = b.into_inner().expect("tar");
        assert!(
            extract(&root, "/data", &bytes[..], &opts).is_err(),
            "garbage is refused"
        );
    }

    #[test]
    fn entries_climbing_out_are_refused() {
        let (dir, root) = tree();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`; write the name by hand as a hostile client would.
        h.as_old_mut().name[..13].copy_from_slice(b"../../escaped");
        h.set_cksum();
        b.append(&h, &b"bad"[..]).expect("append");
        let bytes = b.into_inner().expect("tar");
        let err = extract(&root, "/data", &bytes[..], &ExtractOptions::default());
        assert!(err.is_err());
        assert!(!dir.path().join("escaped").exists());
        assert!(!dir.path().join("root/escaped").exists());
    }

    /// Issue 10, item 7: a tree deeper than PATH_MAX allows to name goes out and back in
    /// whole, on a thread whose stack would not survive recursion over it.
    #[test]
    fn trees_deeper_than_path_max_round_trip_without_recursion() {
        // 2 bytes a level: deeper than PATH_MAX (4096) can name.
        const DEPTH: usize = 2100;
        let (dir, root) = tree();
        let mut fd = nix::fcntl::open(
            &dir.path().join("root/data"),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .expect("open");
        for _ in 0..DEPTH {
            mkdirat(fd.as_fd(), "d", Mode::from_bits_truncate(0o755)).expect("mkdir");
            fd = tree::open_dir(fd.as_fd(), OsStr::new("d")).expect("open");
        }
        let bottom = openat(
            fd.as_fd(),
            "bottom",
            OFlag::O_CREAT | OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o644),
        )
        .expect("create");
        nix::unistd::write(&bottom, b"deep").expect("write");
        std::fs::create_dir_all(dir.path().join("root/copy")).expect("mkdir");
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn_scoped(s, || {
                    let bytes =
                        write_tar(&root, "/data", "data", "c", None, Vec::new()).expect("tar");
                    let names = tar::Archive::new(&bytes[..])
                        .entries()
                        .expect("entries")
                        .count();
                    // data/, a, sub/, sub/b, link, DEPTH directories and the bottom file.
                    assert_eq!(names, 5 + DEPTH + 1);
                    extract(&root, "/copy", &bytes[..], &ExtractOptions::default())
                        .expect("extract");
                })
                .expect("spawn")
                .join()
                .expect("join");
        });
        let mut fd = nix::fcntl::open(
            &dir.path().join("root/copy/data"),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .expect("open");
        for _ in 0..DEPTH {
            fd = tree::open_dir(fd.as_fd(), OsStr::new("d")).expect("copied level");
        }
        let st = fstatat(fd.as_fd(), "bottom", AtFlags::AT_SYMLINK_NOFOLLOW).expect("bottom");
        assert_eq!(st.st_size, 4);
        tree::remove_tree(&dir.path().join("root")).expect("remove");
    }

    #[test]
    fn stat_reports_go_modes_and_link_targets() {
        let (_dir, root) = tree();
        let s = stat(&root, "/data", "c").expect("stat");
        assert_eq!(s.mode & (1 << 31), 1 << 31);
        let l = stat(&root, "/data/link", "c").expect("stat");
        assert_eq!(l.link_target, "/etc/passwd");
        assert!(matches!(
            stat(&root, "/nope", "c"),
            Err(VolumeError::PathNotFound { .. })
        ));
        assert_eq!(base_name("/data/."), ".");
        assert_eq!(base_name("/data/"), "data");
    }
}
