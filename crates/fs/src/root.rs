//! A directory used as `/`: every path below it is resolved by the kernel with
//! `openat2(RESOLVE_IN_ROOT)` ([openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html)),
//! so `..` stops at the root and absolute symlinks restart at the root, atomically — no check
//! and then use of a path that a container could swap in between (CVE-2018-15664).
//!
//! Paths are never joined as strings onto a host path: callers get file descriptors, and name
//! the final component relative to its parent's descriptor (`*at` calls, no following).
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{FileStat, Mode, fstat, mkdirat};

/// More symlinks than this on one path is a loop (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// A directory every path is resolved inside of.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    display: PathBuf,
}

/// `path` lexically cleaned and absolute: `.` and empty parts dropped, `..` applied, never above `/`.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `path` relative to the root (`.` for the root itself), for the `*at` calls.
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

impl Root {
    /// Opens the host directory `path` as a root (the host path itself is trusted).
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            display: path.to_owned(),
        })
    }

    /// The root's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The host path the root was opened from (for messages only).
    pub fn display(&self) -> &Path {
        &self.display
    }

    /// Opens `path` (taken from the root, absolute or not) with `flags`; symlinks, `..` and
    /// absolute targets all stay inside the root. With `O_NOFOLLOW` a final symlink is not
    /// followed.
    pub fn open_at(&self, path: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
        let rel = relative(path);
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        // The kernel answers EAGAIN when a rename raced the lookup; it asks for a retry.
        let mut tries = 0;
        loop {
            match openat2(self.fd.as_fd(), rel.as_path(), how) {
                Err(Errno::EAGAIN) if tries < 32 => tries += 1,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// An `O_PATH` descriptor of `path`; the final symlink is followed only when `follow`.
    pub fn open_path(&self, path: &Path, follow: bool) -> io::Result<OwnedFd> {
        let mut flags = OFlag::O_PATH;
        if !follow {
            flags |= OFlag::O_NOFOLLOW;
        }
        self.open_at(path, flags, Mode::empty())
    }

    /// lstat(2) of `path` inside the root.
    pub fn lstat(&self, path: &Path) -> io::Result<FileStat> {
        let fd = self.open_path(path, false)?;
        Ok(fstat(&fd)?)
    }

    /// stat(2) of `path` inside the root (the final symlink followed).
    pub fn stat(&self, path: &Path) -> io::Result<FileStat> {
        let fd = self.open_path(path, true)?;
        Ok(fstat(&fd)?)
    }

    /// Creates the directory `path` and its missing parents (mode `mode`), each step resolved
    /// inside the root; returns an `O_PATH` descriptor of it.
    pub fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        if let Ok(fd) = self.open_at(path, flags, Mode::empty()) {
            return Ok(fd);
        }
        let mut dir = self.open_at(Path::new("/"), flags, Mode::empty())?;
        let mut prefix = PathBuf::from("/");
        for part in relative(path).components() {
            let Component::Normal(name) = part else {
                continue;
            };
            prefix.push(name);
            match self.open_at(&prefix, flags, Mode::empty()) {
                Ok(fd) => dir = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    match mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(mode)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    dir = self.open_at(&prefix, flags, Mode::empty())?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(dir)
    }

    /// The path `path` names once every symlink in it is resolved inside the root (the final
    /// one too), as an absolute path in the root's terms. Missing components are kept as given.
    pub fn canonical(&self, path: &Path) -> io::Result<PathBuf> {
        let mut pending: Vec<Vec<u8>> = relative(path)
            .components()
            .rev()
            .map(|c| c.as_os_str().as_bytes().to_vec())
            .collect();
        let mut resolved = PathBuf::from("/");
        let mut links = 0;
        while let Some(part) = pending.pop() {
            match part.as_slice() {
                b"." => continue,
                b".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = resolved.join(OsStr::from_bytes(&part));
            let fd = match self.open_path(&candidate, false) {
                Ok(fd) => fd,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    resolved = candidate;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let st = fstat(&fd)?;
            if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                resolved = candidate;
                continue;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = nix::fcntl::readlinkat(fd.as_fd(), "")?;
            let target = Path::new(&target);
            if target.is_absolute() {
                resolved = PathBuf::from("/");
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => pending.push(n.as_bytes().to_vec()),
                    Component::ParentDir => pending.push(b"..".to_vec()),
                    _ => {}
                }
            }
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn clean_never_leaves_the_root() {
        assert_eq!(clean("a/../../b/./c/"), "/b/c");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("../../etc/passwd"), "/etc/passwd");
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root_path = dir.path().join("root");
        std::fs::create_dir_all(root_path.join("etc")).expect("mkdir");
        std::fs::write(root_path.join("etc/passwd"), "inside").expect("write");
        std::fs::write(dir.path().join("secret"), "outside").expect("write");
        symlink("/", root_path.join("toroot")).expect("symlink");
        symlink("../../..", root_path.join("up")).expect("symlink");
        symlink("../secret", root_path.join("etc/escape")).expect("symlink");
        let root = Root::open(&root_path).expect("open");
        for p in ["/toroot/etc/passwd", "up/etc/passwd", "/../../etc/passwd"] {
            let fd = root
                .open_at(Path::new(p), OFlag::O_RDONLY, Mode::empty())
                .expect(p);
            let text = std::fs::read_to_string(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&fd)
            ))
            .expect("read");
            assert_eq!(text, "inside", "{p}");
        }
        assert!(
            root.open_at(Path::new("/etc/escape"), OFlag::O_RDONLY, Mode::empty())
                .is_err()
        );
        assert_eq!(
            root.canonical(Path::new("/up/etc/passwd"))
                .expect("canonical"),
            PathBuf::from("/etc/passwd")
        );
        let made = root.mkdir_all(Path::new("/toroot/new/dir"), 0o755);
        assert!(made.is_ok());
        assert!(root_path.join("new/dir").is_dir());
        assert!(!dir.path().join("new").exists());
    }
}
