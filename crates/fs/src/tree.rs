//! Directory trees walked by descriptor, without recursion.
//!
//! A container decides how deep its trees are: deeper than a thread's stack allows any
//! recursive walker, and with paths far longer than `PATH_MAX` (4096 bytes), which no path
//! string can name. So every walker here keeps an explicit stack of directory descriptors and
//! names each entry relative to its parent's descriptor (`*at` calls, never following a
//! symlink); only messages and archive entry names are built as strings. Calls that have no
//! `*at` form (extended attributes) go through `/proc/self/fd/<dir>/<name>`, which the kernel
//! resolves from the descriptor as well ([`fd_path`]).
//!
//! A walk holds one descriptor per level of the tree: a process whose soft `RLIMIT_NOFILE`
//! is lower than a tree is deep gets `EMFILE`, an error, never a partial result.
//!
//! Files a walk reads are opened with [`open_regular`]: `O_PATH|O_NOFOLLOW` first (which
//! opens nothing: no FIFO blocks, no device driver runs), checked to be the very regular file
//! the walk listed, and only then reopened for reading, non-blocking. A file swapped for a
//! FIFO, a device or a symlink between listing and opening is refused.
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// Whether `st` is of the file type `kind` (`libc::S_IFDIR`, …).
pub fn is_type(st: &FileStat, kind: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

/// Whether two stats are of the same file (device and inode).
pub fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// `/proc/self/fd/<fd>`, or `/proc/self/fd/<fd>/<name>`: a short path the kernel resolves from
/// the descriptor, for the few calls that take only paths (extended attributes). The final
/// component is not followed by the `l*` calls (`lgetxattr`, `lsetxattr`, …).
pub fn fd_path(fd: BorrowedFd<'_>, name: Option<&OsStr>) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if let Some(name) = name {
        path.push(name);
    }
    path
}

/// The names in directory `dir` (not `.` and `..`), sorted bytewise.
pub fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    // A descriptor of its own: reading a directory moves its offset.
    let own = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in nix::dir::Dir::from_fd(own)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Opens the directory `name` in `dir` for listing, never through a symlink.
pub fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// The error for a file that is no longer what a walk listed.
pub fn changed(name: &OsStr, what: &str) -> io::Error {
    io::Error::other(format!(
        "{} changed while it was read: {what}",
        name.to_string_lossy()
    ))
}

/// Opens the regular file `name` in `dir` for reading, refusing anything but the regular file
/// `expected` describes (see the module doc). The result blocks as a regular file does.
pub fn open_regular(dir: BorrowedFd<'_>, name: &OsStr, expected: &FileStat) -> io::Result<File> {
    let handle = openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    reopen_regular(handle.as_fd(), name, expected)
}

/// [`open_regular`] for a file already held by an `O_PATH` descriptor.
pub fn reopen_regular(
    handle: BorrowedFd<'_>,
    name: &OsStr,
    expected: &FileStat,
) -> io::Result<File> {
    let st = fstat(handle)?;
    if !is_type(&st, libc::S_IFREG) {
        return Err(changed(name, "not a regular file"));
    }
    if !same_file(&st, expected) {
        return Err(changed(name, "another file"));
    }
    let file = nix::fcntl::open(
        &fd_path(handle, None),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    if !same_file(&fstat(&file)?, &st) {
        return Err(changed(name, "another file"));
    }
    let flags = OFlag::from_bits_truncate(nix::fcntl::fcntl(&file, FcntlArg::F_GETFL)?);
    nix::fcntl::fcntl(&file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(File::from(file))
}

/// Removes `name` in `dir` and everything below it, never following a symlink, with one
/// descriptor per level of depth.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if !is_type(&st, libc::S_IFDIR) {
        return Ok(unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?);
    }
    // Each level: its descriptor, and the name it has in the level above.
    let mut stack: Vec<(OwnedFd, OsString)> = vec![(open_dir(dir, name)?, name.to_owned())];
    while let Some((top, _)) = stack.last() {
        let mut descended = None;
        for child in list(top.as_fd())? {
            match unlinkat(top.as_fd(), child.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::EISDIR) => {
                    descended = Some((open_dir(top.as_fd(), &child)?, child));
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        match descended {
            Some(level) => stack.push(level),
            None => {
                let Some((_, done)) = stack.pop() else { break };
                let parent = stack.last().map_or(dir, |(fd, _)| fd.as_fd());
                match unlinkat(parent, done.as_os_str(), UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Removes the file or tree at host path `path` (an engine-owned path, e.g. a staging
/// directory): [`remove_all_at`] from its parent. No error when it is gone already.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = match nix::fcntl::open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    match remove_all_at(dir.as_fd(), name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// What a walk does with the entries of a tree; see [`walk`].
pub trait Visit {
    /// What the visitor keeps per open directory (e.g. the matching directory of a copy).
    type Dir;
    /// The visitor's error.
    type Error;

    /// Turns a failure of the walk itself (listing, stat, open) at `path` into an error.
    fn walk_error(&self, op: &'static str, path: &Path, source: io::Error) -> Self::Error;

    /// A directory `name` in `at` (its parent, whose state is `parent`), opened as `dir`:
    /// returns the state for it to walk into it, or `None` to skip what is below it.
    fn enter(
        &mut self,
        parent: &mut Self::Dir,
        at: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &FileStat,
        dir: BorrowedFd<'_>,
    ) -> Result<Option<Self::Dir>, Self::Error>;

    /// Any other entry `name` in `at`.
    fn entry(
        &mut self,
        parent: &mut Self::Dir,
        at: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &FileStat,
    ) -> Result<(), Self::Error>;

    /// Everything below the directory at `path` was visited (also called for the root).
    fn leave(&mut self, dir: Self::Dir, path: &Path) -> Result<(), Self::Error>;
}

struct Frame<D> {
    fd: OwnedFd,
    /// Children not visited yet, last first.
    pending: Vec<OsString>,
    path: PathBuf,
    state: D,
}

/// Walks the tree below the directory `root` (named `root_path` in entry paths, e.g. `""` or
/// `data`), in pre-order with sorted names, iteratively. Entries that vanish while the walk
/// runs are skipped; a directory replaced between listing and opening is an error.
pub fn walk<V: Visit>(
    root: OwnedFd,
    root_path: &Path,
    root_state: V::Dir,
    visitor: &mut V,
) -> Result<(), V::Error> {
    let mut pending =
        list(root.as_fd()).map_err(|e| visitor.walk_error("list directory", root_path, e))?;
    pending.reverse();
    let mut stack = vec![Frame {
        fd: root,
        pending,
        path: root_path.to_owned(),
        state: root_state,
    }];
    loop {
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        let Some(name) = top.pending.pop() else {
            let Some(done) = stack.pop() else {
                return Ok(());
            };
            visitor.leave(done.state, &done.path)?;
            continue;
        };
        let path = top.path.join(&name);
        let st = match fstatat(
            top.fd.as_fd(),
            name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(visitor.walk_error("stat", &path, e.into())),
        };
        if !is_type(&st, libc::S_IFDIR) {
            visitor.entry(&mut top.state, top.fd.as_fd(), &name, &path, &st)?;
            continue;
        }
        let dir = match open_dir(top.fd.as_fd(), &name) {
            Ok(dir) => dir,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(visitor.walk_error("open directory", &path, e)),
        };
        let opened = fstat(&dir).map_err(|e| visitor.walk_error("stat", &path, e.into()))?;
        if !same_file(&opened, &st) {
            let e = changed(&name, "another directory");
            return Err(visitor.walk_error("open directory", &path, e));
        }
        let Some(state) = visitor.enter(
            &mut top.state,
            top.fd.as_fd(),
            &name,
            &path,
            &st,
            dir.as_fd(),
        )?
        else {
            continue;
        };
        let mut pending =
            list(dir.as_fd()).map_err(|e| visitor.walk_error("list directory", &path, e))?;
        pending.reverse();
        stack.push(Frame {
            fd: dir,
            pending,
            path,
            state,
        });
    }
}

/// How [`DirChain`] treats a symlink among the parents of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Refuse it (`ELOOP`): layer unpacking, where no entry may go through a symlink.
    Refuse,
    /// Resolve it inside [`crate::Root`] (`cp` into a container, where a parent may be a
    /// symlink of the container's own): the path up to it is looked up with
    /// `RESOLVE_IN_ROOT`, so this alone is limited to `PATH_MAX`.
    InRoot,
}

/// The directories along one path below a root, kept open so that the next path with the same
/// parents is found without a lookup: unpacking a tar stream (whose entries come in tree
/// order) opens each directory once, by descriptor, however deep it is.
#[derive(Debug)]
pub struct DirChain<'r> {
    root: BorrowedFd<'r>,
    /// The container root symlinks resolve in, and the path of the chain's start there.
    in_root: Option<(&'r crate::Root, PathBuf)>,
    /// The components below the root and each one's open descriptor.
    chain: Vec<(OsString, OwnedFd)>,
}

impl<'r> DirChain<'r> {
    /// A chain starting at directory `root` (not followed further up).
    pub fn new(root: BorrowedFd<'r>) -> DirChain<'r> {
        DirChain {
            root,
            in_root: None,
            chain: Vec::new(),
        }
    }

    /// A chain in `root` (a container's), whose parent symlinks resolve inside it, starting
    /// at its directory `start` (a descriptor), which is `start_path` in it.
    pub fn in_root(
        root: &'r crate::Root,
        start: BorrowedFd<'r>,
        start_path: &Path,
    ) -> DirChain<'r> {
        DirChain {
            root: start,
            in_root: Some((root, start_path.to_owned())),
            chain: Vec::new(),
        }
    }

    /// The directory at `parts` below the chain's start, creating missing directories with
    /// mode `create` when given. A non-directory on the way is `ENOTDIR`; a symlink is `ELOOP`
    /// unless the chain resolves symlinks in its [`crate::Root`].
    pub fn dir(&mut self, parts: &[&OsStr], create: Option<u32>) -> io::Result<BorrowedFd<'_>> {
        let common = self
            .chain
            .iter()
            .zip(parts)
            .take_while(|((have, _), want)| have.as_os_str() == **want)
            .count();
        self.chain.truncate(common);
        for part in &parts[common..] {
            let parent = self.chain.last().map_or(self.root, |(_, fd)| fd.as_fd());
            let fd = match fstatat(parent, *part, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if is_type(&st, libc::S_IFDIR) => open_dir(parent, part)?,
                Ok(st) if is_type(&st, libc::S_IFLNK) => match &self.in_root {
                    None => return Err(io::Error::from_raw_os_error(libc::ELOOP)),
                    Some((root, start_path)) => {
                        let mut path = start_path.clone();
                        path.extend(self.chain.iter().map(|(name, _)| name));
                        path.push(part);
                        root.open_at(&path, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?
                    }
                },
                Ok(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                Err(Errno::ENOENT) if create.is_some() => {
                    let mode = Mode::from_bits_truncate(create.unwrap_or(0o755));
                    match mkdirat(parent, *part, mode) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    open_dir(parent, part)?
                }
                Err(e) => return Err(e.into()),
            };
            self.chain.push(((*part).to_owned(), fd));
        }
        Ok(self.chain.last().map_or(self.root, |(_, fd)| fd.as_fd()))
    }

    /// Forgets every open directory (after something in the tree was removed or replaced).
    pub fn reset(&mut self) {
        self.chain.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A chain `d/d/…/d` of `depth` directories below `root`, made by descriptor (its paths
    /// are far longer than PATH_MAX), with a file `f` at the bottom.
    fn deep_tree(root: &Path, depth: usize) {
        let mut dir = nix::fcntl::open(root, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
            .expect("open");
        for _ in 0..depth {
            mkdirat(dir.as_fd(), "d", Mode::from_bits_truncate(0o755)).expect("mkdir");
            dir = open_dir(dir.as_fd(), OsStr::new("d")).expect("open");
        }
        let f = openat(
            dir.as_fd(),
            "f",
            OFlag::O_CREAT | OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o644),
        )
        .expect("create");
        nix::unistd::write(&f, b"bottom").expect("write");
    }

    struct Count {
        dirs: usize,
        files: usize,
        deepest: usize,
        order: Vec<PathBuf>,
    }

    impl Visit for Count {
        type Dir = usize;
        type Error = io::Error;
        fn walk_error(&self, _: &'static str, _: &Path, e: io::Error) -> io::Error {
            e
        }
        fn enter(
            &mut self,
            depth: &mut usize,
            _: BorrowedFd<'_>,
            _: &OsStr,
            path: &Path,
            _: &FileStat,
            _: BorrowedFd<'_>,
        ) -> io::Result<Option<usize>> {
            self.dirs += 1;
            self.deepest = self.deepest.max(*depth + 1);
            if self.order.len() < 8 {
                self.order.push(path.to_owned());
            }
            Ok(Some(*depth + 1))
        }
        fn entry(
            &mut self,
            _: &mut usize,
            at: BorrowedFd<'_>,
            name: &OsStr,
            path: &Path,
            st: &FileStat,
        ) -> io::Result<()> {
            self.files += 1;
            if self.order.len() < 8 {
                self.order.push(path.to_owned());
            }
            if is_type(st, libc::S_IFREG) {
                let mut text = String::new();
                io::Read::read_to_string(&mut open_regular(at, name, st)?, &mut text)?;
                assert_eq!(text, "bottom");
            }
            Ok(())
        }
        fn leave(&mut self, _: usize, _: &Path) -> io::Result<()> {
            Ok(())
        }
    }

    /// A scratch directory on tmpfs where there is one: deep trees cost thousands of inodes,
    /// which a busy disk makes slow.
    fn scratch() -> tempfile::TempDir {
        tempfile::Builder::new()
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("tempdir")
    }

    #[test]
    fn walks_and_removes_trees_deeper_than_path_max_without_recursion() {
        let dir = scratch();
        // 2,100 levels: 4,200 bytes of path, more than PATH_MAX and than a recursive walker
        // on a small stack survives.
        deep_tree(dir.path(), 2100);
        let root = nix::fcntl::open(
            dir.path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .expect("open");
        let mut count = Count {
            dirs: 0,
            files: 0,
            deepest: 0,
            order: Vec::new(),
        };
        // On a thread with a small stack: nothing here may grow with the depth.
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn_scoped(s, || walk(root, Path::new(""), 0, &mut count))
                .expect("spawn")
                .join()
                .expect("join")
                .expect("walk");
        });
        assert_eq!((count.dirs, count.files, count.deepest), (2100, 1, 2100));
        assert_eq!(count.order[..2], [PathBuf::from("d"), PathBuf::from("d/d")]);
        remove_tree(&dir.path().join("d")).expect("remove");
        assert_eq!(
            list(
                nix::fcntl::open(dir.path(), OFlag::O_RDONLY, Mode::empty())
                    .expect("open")
                    .as_fd()
            )
            .expect("list"),
            Vec::<OsString>::new()
        );
    }

    #[test]
    fn regular_files_only_and_never_a_fifo_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("file"), "x").expect("write");
        nix::unistd::mkfifo(&dir.path().join("fifo"), Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        symlink("file", dir.path().join("link")).expect("symlink");
        let root = nix::fcntl::open(
            dir.path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .expect("open");
        let file_st = fstatat(root.as_fd(), "file", AtFlags::AT_SYMLINK_NOFOLLOW).expect("stat");
        assert!(open_regular(root.as_fd(), OsStr::new("file"), &file_st).is_ok());
        // The walk listed a regular file; what is there now is a FIFO (no writer: a blocking
        // open would never return), a symlink, or another file.
        for name in ["fifo", "link"] {
            let err = open_regular(root.as_fd(), OsStr::new(name), &file_st).expect_err(name);
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        std::fs::write(dir.path().join("other"), "y").expect("write");
        let err = open_regular(root.as_fd(), OsStr::new("other"), &file_st).expect_err("other");
        assert!(err.to_string().contains("another file"), "{err}");
    }

    #[test]
    fn chains_reuse_parents_and_refuse_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        symlink("/", dir.path().join("a/up")).expect("symlink");
        std::fs::write(dir.path().join("a/file"), "x").expect("write");
        let root = nix::fcntl::open(
            dir.path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .expect("open");
        let mut chain = DirChain::new(root.as_fd());
        let os = |s: &'static str| OsStr::new(s);
        chain
            .dir(&[os("a"), os("b"), os("c")], Some(0o755))
            .expect("made");
        assert!(dir.path().join("a/b/c").is_dir());
        let err = chain
            .dir(&[os("a"), os("up"), os("x")], Some(0o755))
            .expect_err("symlink");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        let err = chain
            .dir(&[os("a"), os("file"), os("x")], Some(0o755))
            .expect_err("file");
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
        assert!(!Path::new("/x").exists());
    }
}
