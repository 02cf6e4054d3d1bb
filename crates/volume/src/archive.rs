//! Tar streams out of and into a [`Root`]: what `docker cp` and the `/containers/{id}/archive`
//! endpoints move, and how image content pre-populates a new volume.
//!
//! Reading walks directories by descriptor (`openat(O_NOFOLLOW)` from the parent's descriptor),
//! so a symlink inside the tree is archived as a symlink and never followed out. Writing
//! resolves each entry's parent inside the root ([`Root::mkdir_all`], `RESOLVE_IN_ROOT`),
//! refuses entries whose name climbs out of the destination, and creates the final component
//! relative to the parent's descriptor without following it.
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{
    FileStat, Mode, SFlag, UtimensatFlags, fchmod, fstat, fstatat, futimens, mkdirat, mknodat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use serde::{Deserialize, Serialize};

use crate::VolumeError;
use berth_fs::{Root, clean};

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
/// tar stream whose entries are named from `rebase` (e.g. `hosts`, `data/`, `data/x`).
pub fn write_tar<W: Write>(
    root: &Root,
    path: &str,
    rebase: &str,
    owner: &str,
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
            writer.walk(dir, &name).map_err(io_err)?;
        }
        libc::S_IFREG => {
            let file = openat(
                fd.as_fd(),
                ".",
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            // O_PATH files cannot be reopened through "."; go through the root again.
            .or_else(|_| {
                root.open_at(target, OFlag::O_RDONLY | OFlag::O_NOFOLLOW, Mode::empty())
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
            })
            .map_err(|e| io_err(e.into()))?;
            writer.file(&name, &st, file).map_err(io_err)?;
        }
        _ => writer.special(&name, &st).map_err(io_err)?,
    }
    writer.builder.into_inner().map_err(io_err)
}

struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    /// (dev, ino) of files with more than one link → the entry name written first.
    links: HashMap<(u64, u64), PathBuf>,
}

fn header(st: &FileStat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

impl<W: Write> TarWriter<W> {
    fn dir(&mut self, name: &Path, st: &FileStat) -> io::Result<()> {
        let mut h = header(st, tar::EntryType::Directory);
        let mut n = name.as_os_str().to_owned();
        if !n.as_bytes().ends_with(b"/") {
            n.push("/");
        }
        self.builder.append_data(&mut h, Path::new(&n), io::empty())
    }

    fn symlink(&mut self, name: &Path, st: &FileStat, target: &Path) -> io::Result<()> {
        let mut h = header(st, tar::EntryType::Symlink);
        self.builder.append_link(&mut h, name, target)
    }

    fn file(&mut self, name: &Path, st: &FileStat, fd: OwnedFd) -> io::Result<()> {
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let mut h = header(st, tar::EntryType::Link);
                let first = first.clone();
                return self.builder.append_link(&mut h, name, first);
            }
            self.links.insert(key, name.to_owned());
        }
        let mut h = header(st, tar::EntryType::Regular);
        h.set_size(st.st_size.max(0) as u64);
        // A file that shrinks while read would break the stream: read exactly the size stated.
        let file = File::from(fd).take(st.st_size.max(0) as u64);
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
        let mut h = header(st, kind);
        let major = libc::major(st.st_rdev);
        let minor = libc::minor(st.st_rdev);
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
        self.builder.append_data(&mut h, name, io::empty())
    }

    fn walk(&mut self, dir: OwnedFd, name: &Path) -> io::Result<()> {
        let mut children: Vec<OsString> = Vec::new();
        let list = nix::dir::Dir::from_fd(nix::unistd::dup(dir.as_fd())?)?;
        for entry in list {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                children.push(OsStr::from_bytes(n).to_owned());
            }
        }
        children.sort();
        for child in children {
            let st = fstatat(dir.as_fd(), child.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
            let path = name.join(&child);
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => {
                    let sub = openat(
                        dir.as_fd(),
                        child.as_os_str(),
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )?;
                    self.dir(&path, &st)?;
                    self.walk(sub, &path)?;
                }
                libc::S_IFLNK => {
                    let target = readlinkat(dir.as_fd(), child.as_os_str())?;
                    self.symlink(&path, &st, Path::new(&target))?;
                }
                libc::S_IFREG => {
                    let fd = openat(
                        dir.as_fd(),
                        child.as_os_str(),
                        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )?;
                    self.file(&path, &st, fd)?;
                }
                _ => self.special(&path, &st)?,
            }
        }
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
    let mut parent_cache: Option<(PathBuf, OwnedFd)> = None;
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    let mut copy_buf = vec![0u8; 1 << 20];
    for entry in archive.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let raw = entry.path_bytes().into_owned();
        let parts = entry_parts(&raw)?;
        let Some((name, parents)) = parts.split_last() else {
            continue;
        };
        let kind = entry.header().entry_type();
        if opts.skip_whiteouts && name.as_bytes().starts_with(b".wh.") {
            continue;
        }
        let mut parent_path = dest_path.clone();
        parent_path.extend(parents);
        let full = parent_path.join(name);
        let parent = match &parent_cache {
            Some((p, fd)) if *p == parent_path => fd,
            _ => {
                let fd = root
                    .mkdir_all(&parent_path, 0o755)
                    .map_err(|e| VolumeError::io("mkdir", parent_path.display().to_string(), e))?;
                &parent_cache.insert((parent_path.clone(), fd)).1
            }
        };
        let h = entry.header();
        let (uid, gid) = match opts.chown {
            Some(ids) => ids,
            None => (
                h.uid().map_err(bad_tar)? as u32,
                h.gid().map_err(bad_tar)? as u32,
            ),
        };
        let (major, minor) = (
            h.device_major().ok().flatten().unwrap_or(0),
            h.device_minor().ok().flatten().unwrap_or(0),
        );
        let place = Placement {
            parent: parent.as_fd(),
            name: name.as_os_str(),
            shown: full.display().to_string(),
            uid,
            gid,
            mode: h.mode().map_err(bad_tar)? & 0o7777,
            mtime: h.mtime().map_err(bad_tar)?,
        };
        let existing = fstatat(place.parent, place.name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        let existing_dir = existing
            .as_ref()
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        if kind.is_dir() {
            if existing.is_some() && !existing_dir {
                refuse_replace(opts, "non-directory", "directory", &full, &raw)?;
                place.unlink()?;
            }
            place.directory(existing_dir)?;
            dir_times.push((full.clone(), place.mtime));
            continue;
        }
        // A whiteout (0/0 character device) of a layer being skipped.
        if opts.skip_whiteouts && kind == tar::EntryType::Char && major == 0 && minor == 0 {
            continue;
        }
        if existing.is_some() {
            if existing_dir {
                refuse_replace(opts, "directory", "non-directory", &full, &raw)?;
                remove_all_at(place.parent, place.name).map_err(place.err("remove"))?;
            } else {
                place.unlink()?;
            }
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                place.regular(&mut entry, &mut copy_buf)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                place.symlink(&target)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                hard_link(root, &dest_path, &place, &raw, &target)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                place.node(kind, major, minor)?;
            }
            // PAX/GNU extension headers are consumed by the tar crate; others are skipped.
            _ => {}
        }
    }
    // Directory times last: writing inside a directory changes its mtime.
    set_dir_times(root, dir_times);
    Ok(())
}

/// Sets the directories' times, deepest (last extracted) first; failures only cost a time.
fn set_dir_times(root: &Root, dir_times: Vec<(PathBuf, u64)>) {
    for (path, mtime) in dir_times.into_iter().rev() {
        if let Ok(fd) = root.open_at(
            &path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ) {
            let t = TimeSpec::new(mtime as i64, 0);
            let _ = futimens(&fd, &t, &t);
        }
    }
}

/// A hard link to `target`, an entry extracted before (a path from `dest`), resolved inside
/// the root; linked by descriptor, so it can never name a file outside.
fn hard_link(
    root: &Root,
    dest: &Path,
    place: &Placement<'_>,
    raw: &[u8],
    target: &[u8],
) -> Result<(), VolumeError> {
    let mut source = dest.to_path_buf();
    source.extend(entry_parts(target)?);
    let src = root
        .open_path(&source, false)
        .map_err(|e| VolumeError::BadArchive {
            message: format!(
                "invalid hardlink {:?} -> {:?}: {e}",
                String::from_utf8_lossy(raw),
                String::from_utf8_lossy(target)
            ),
        })?;
    linkat(
        src.as_fd(),
        "",
        place.parent,
        place.name,
        AtFlags::AT_EMPTY_PATH,
    )
    .map_err(place.errno("link"))
}

/// A tar stream that does not parse.
fn bad_tar(e: io::Error) -> VolumeError {
    VolumeError::BadArchive {
        message: format!("invalid tar stream: {e}"),
    }
}

/// With `noOverwriteDirNonDir`, an entry may not replace a directory with a non-directory or
/// the reverse (Docker's `cp` refuses both).
fn refuse_replace(
    opts: &ExtractOptions,
    existing: &str,
    new: &str,
    full: &Path,
    raw: &[u8],
) -> Result<(), VolumeError> {
    if !opts.no_overwrite_dir_non_dir {
        return Ok(());
    }
    Err(VolumeError::BadArchive {
        message: format!(
            "cannot overwrite {existing} {:?} with {new} {:?}",
            full.display().to_string(),
            String::from_utf8_lossy(raw)
        ),
    })
}

/// Where one extracted entry goes (`name` in the directory `parent`, shown as `shown` in
/// errors), and the owner, mode and time it gets.
struct Placement<'a> {
    parent: BorrowedFd<'a>,
    name: &'a OsStr,
    shown: String,
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
}

impl Placement<'_> {
    fn err(&self, op: &'static str) -> impl Fn(io::Error) -> VolumeError + '_ {
        move |e| VolumeError::io(op, self.shown.clone(), e)
    }

    fn errno(&self, op: &'static str) -> impl Fn(Errno) -> VolumeError + '_ {
        move |e| VolumeError::io(op, self.shown.clone(), e.into())
    }

    fn owner(&self) -> (Option<Uid>, Option<Gid>) {
        (Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)))
    }

    fn unlink(&self) -> Result<(), VolumeError> {
        unlinkat(self.parent, self.name, UnlinkatFlags::NoRemoveDir).map_err(self.errno("unlink"))
    }

    /// Makes the directory (unless it exists), owned and moded as the entry says; its time
    /// is set at the end of the extraction.
    fn directory(&self, exists: bool) -> Result<(), VolumeError> {
        if !exists {
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
        let (uid, gid) = self.owner();
        fchown(&fd, uid, gid).map_err(self.errno("chown"))?;
        fchmod(&fd, Mode::from_bits_truncate(self.mode)).map_err(self.errno("chmod"))
    }

    /// A new regular file (never through an existing name) with the entry's content.
    fn regular(&self, content: &mut dyn Read, buf: &mut [u8]) -> Result<(), VolumeError> {
        let fd = openat(
            self.parent,
            self.name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(self.errno("create"))?;
        let mut file = File::from(fd);
        copy_with(content, &mut file, buf).map_err(self.err("write"))?;
        let (uid, gid) = self.owner();
        fchown(&file, uid, gid).map_err(self.errno("chown"))?;
        fchmod(&file, Mode::from_bits_truncate(self.mode)).map_err(self.errno("chmod"))?;
        let t = TimeSpec::new(self.mtime as i64, 0);
        futimens(&file, &t, &t).map_err(self.errno("utimes"))
    }

    /// A symlink to `target`, stored as given: every later lookup resolves it in the root.
    fn symlink(&self, target: &[u8]) -> Result<(), VolumeError> {
        symlinkat(OsStr::from_bytes(target), self.parent, self.name)
            .map_err(self.errno("symlink"))?;
        let (uid, gid) = self.owner();
        fchownat(
            self.parent,
            self.name,
            uid,
            gid,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(self.errno("chown"))?;
        let t = TimeSpec::new(self.mtime as i64, 0);
        let _ = utimensat(
            self.parent,
            self.name,
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        );
        Ok(())
    }

    /// A device node or FIFO.
    fn node(&self, kind: tar::EntryType, major: u32, minor: u32) -> Result<(), VolumeError> {
        let sflag = match kind {
            tar::EntryType::Char => SFlag::S_IFCHR,
            tar::EntryType::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        mknodat(
            self.parent,
            self.name,
            sflag,
            Mode::from_bits_truncate(self.mode),
            libc::makedev(major, minor),
        )
        .map_err(self.errno("mknod"))?;
        let (uid, gid) = self.owner();
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

/// Removes `name` under `dir` and everything below it, never following a symlink.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?;
        return Ok(());
    }
    let sub = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for entry in nix::dir::Dir::from_fd(nix::unistd::dup(sub.as_fd())?)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            children.push(OsStr::from_bytes(n).to_owned());
        }
    }
    for child in children {
        remove_all_at(sub.as_fd(), &child)?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().expect("tempdir");
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
        let bytes = write_tar(&root, "/data", "data", "c", Vec::new()).expect("tar");
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
