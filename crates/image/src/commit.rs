//! `commit`: a container's writable layer becomes a new image layer.
//!
//! The overlay upper dir holds exactly what the container changed: new and modified files,
//! whiteouts (0:0 character devices) for deleted names and `trusted.overlay.opaque=y` on
//! directories that replaced a lower one. One walk over it (in name order, so the same tree
//! gives the same digest) writes both results at once: the layer tar, hashed as it is written
//! to the ingest area (whiteouts become OCI `.wh.` entries), and the layer's read-only
//! snapshot, whose files are written from the same reads (whiteouts stay overlay whiteouts). No
//! tar is unpacked again. The container is expected to be frozen meanwhile (`-p`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_fs::tree::{self, DirChain, Visit};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use crate::config::RunConfig;
use crate::content::ContentStore;
use crate::error::ImageError;
use crate::layer::{self, StagedLayer, StagingDir};
use crate::tarwrite::{TarWriter, Written};

/// The digest of an empty layer tar (1024 zero bytes); a commit without changes adds no layer.
pub const EMPTY_LAYER_DIGEST: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// What `commit` makes of a container.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The container whose writable layer is committed.
    pub container_id: String,
    /// The container's config (image defaults merged), the base of the new image's config.
    pub config: RunConfig,
    /// `--change` lines applied on top.
    pub changes: Vec<String>,
    /// `REPO[:TAG]` to tag the image with; none leaves it dangling.
    pub reference: Option<String>,
    /// `-a`.
    pub author: Option<String>,
    /// `-m`.
    pub comment: Option<String>,
    /// The history line (Docker: the container's command).
    pub created_by: String,
    /// Paths (relative to the root) the engine created for its own bind mounts, left out.
    pub exclude: Vec<PathBuf>,
}

fn open_dir(path: &Path) -> Result<OwnedFd, ImageError> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| ImageError::fs("open directory", path)(errno.into()))
}

/// Walks `upper` once: writes the layer tar into a new pending blob and the same tree as a
/// snapshot into a new staging directory. The walk is iterative and by descriptor on both
/// sides (the upper dir and the snapshot), so an upper dir of any depth commits whole.
#[cfg(test)]
pub(crate) fn stage_upper(
    content: &ContentStore,
    ingest: &Path,
    upper: &Path,
    exclude: &[PathBuf],
) -> Result<StagedLayer, ImageError> {
    stage_upper_mapped(content, ingest, upper, exclude, None)
}

/// [`stage_upper`] of a container in a user namespace (`--userns-remap`): the tar and the
/// snapshot carry the ids the container sees (`map`'s host ids shifted back), so the layer is
/// the same as an unremapped container's (dockerd's graph driver diffs with its id maps).
pub(crate) fn stage_upper_mapped(
    content: &ContentStore,
    ingest: &Path,
    upper: &Path,
    exclude: &[PathBuf],
    map: Option<&crate::IdMapping>,
) -> Result<StagedLayer, ImageError> {
    let writer = content.start()?;
    let (dir, diff) = StagingDir::create(ingest)?;
    let upper_fd = open_dir(upper)?;
    let diff_fd = open_dir(&diff)?;
    let mut walk = UpperWalk {
        tar: TarWriter::new(writer),
        upper,
        diff: &diff,
        diff_fd: diff_fd.as_fd(),
        exclude,
        privileged: nix::unistd::geteuid().is_root(),
        size: 0,
        map,
    };
    let root = tree::open_dir(diff_fd.as_fd(), OsStr::new("."))
        .map_err(ImageError::fs("open directory", &diff))?;
    tree::walk(upper_fd, Path::new(""), SnapshotDir::root(root), &mut walk)?;
    let UpperWalk { tar, size, .. } = walk;
    let writer = tar.finish()?;
    layer::sync_snapshot(&diff)?;
    let blob = writer.finish()?;
    tracing::debug!(
        digest = blob.digest(),
        tar_size = blob.size(),
        size,
        "commit layer staged"
    );
    Ok(StagedLayer { dir, blob, size })
}

/// A directory of the snapshot being written, and the mode and mtime it gets once everything
/// below it was written (writing inside a directory changes its mtime; a read-only mode would
/// stop an unprivileged commit from writing into it).
struct SnapshotDir {
    fd: OwnedFd,
    finish: Option<(u32, i64)>,
}

impl SnapshotDir {
    fn root(fd: OwnedFd) -> SnapshotDir {
        SnapshotDir { fd, finish: None }
    }
}

struct UpperWalk<'a, W: Write> {
    tar: TarWriter<W>,
    upper: &'a Path,
    diff: &'a Path,
    diff_fd: BorrowedFd<'a>,
    exclude: &'a [PathBuf],
    privileged: bool,
    size: u64,
    map: Option<&'a crate::IdMapping>,
}

impl<W: Write> UpperWalk<'_, W> {
    fn chown_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        st: &FileStat,
        path: &Path,
    ) -> Result<(), ImageError> {
        if !self.privileged {
            return Ok(());
        }
        nix::unistd::fchownat(
            dir,
            name,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|errno| ImageError::fs("chown", self.diff.join(path))(errno.into()))
    }

    fn mtime_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        st: &FileStat,
        path: &Path,
    ) -> Result<(), ImageError> {
        // Whole seconds, as the tar header has them.
        let time = TimeSpec::new(st.st_mtime, 0);
        nix::sys::stat::utimensat(dir, name, &time, &time, UtimensatFlags::NoFollowSymlink)
            .map_err(|errno| ImageError::fs("set mtime", self.diff.join(path))(errno.into()))
    }

    /// A hard link in the snapshot to the file first written as `first` (found by descriptor:
    /// the path may be longer than PATH_MAX).
    fn link(
        &self,
        first: &Path,
        target: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
    ) -> Result<(), ImageError> {
        let parts: Vec<&OsStr> = first.iter().collect();
        let Some((first_name, parents)) = parts.split_last() else {
            return Err(ImageError::fs("create hard link", self.diff.join(path))(
                std::io::Error::from_raw_os_error(libc::EINVAL),
            ));
        };
        let mut chain = DirChain::new(self.diff_fd);
        let source = chain
            .dir(parents, None)
            .map_err(ImageError::fs("create hard link", self.diff.join(path)))?;
        nix::unistd::linkat(source, *first_name, target, name, AtFlags::empty())
            .map_err(|errno| ImageError::fs("create hard link", self.diff.join(path))(errno.into()))
    }
}

impl<W: Write> Visit for UpperWalk<'_, W> {
    type Dir = SnapshotDir;
    type Error = ImageError;

    fn walk_error(
        &self,
        operation: &'static str,
        path: &Path,
        source: std::io::Error,
    ) -> ImageError {
        ImageError::Filesystem {
            operation,
            path: self.upper.join(path),
            source,
        }
    }

    fn enter(
        &mut self,
        parent: &mut SnapshotDir,
        at: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &FileStat,
        dir: BorrowedFd<'_>,
    ) -> Result<Option<SnapshotDir>, ImageError> {
        if self.exclude.iter().any(|e| e == path) {
            return Ok(None);
        }
        let st = &crate::remap::unshift(st, self.map, &self.upper.join(path))?;
        let target = parent.fd.as_fd();
        let shown = self.diff.join(path);
        self.tar.append(at, name, st, path, None)?;
        nix::sys::stat::mkdirat(target, name, Mode::from_bits_truncate(0o700))
            .map_err(|errno| ImageError::fs("create directory", &shown)(errno.into()))?;
        self.chown_at(target, name, st, path)?;
        let created =
            tree::open_dir(target, name).map_err(ImageError::fs("open directory", &shown))?;
        // Directories' attributes through their descriptors (`*_deref` on /proc/self/fd/N).
        copy_xattrs(
            &tree::fd_path(dir, None),
            &tree::fd_path(created.as_fd(), None),
            true,
        )?;
        let opaque = xattr::get_deref(tree::fd_path(dir, None), OVERLAY_OPAQUE_XATTR);
        if matches!(opaque, Ok(Some(v)) if v == b"y") {
            self.tar.opaque(path)?;
            xattr::set_deref(
                tree::fd_path(created.as_fd(), None),
                OVERLAY_OPAQUE_XATTR,
                b"y",
            )
            .map_err(ImageError::fs("mark opaque directory", &shown))?;
        }
        Ok(Some(SnapshotDir {
            fd: created,
            finish: Some((st.st_mode & 0o7777, st.st_mtime)),
        }))
    }

    fn entry(
        &mut self,
        parent: &mut SnapshotDir,
        at: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &FileStat,
    ) -> Result<(), ImageError> {
        if self.exclude.iter().any(|e| e == path) {
            return Ok(());
        }
        let target = parent.fd.as_fd();
        let shown = self.diff.join(path);
        let mode = st.st_mode & 0o7777;
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFCHR && st.st_rdev == 0 {
            self.tar.whiteout(path)?;
            return nix::sys::stat::mknodat(target, name, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(|errno| ImageError::fs("create device node", &shown)(errno.into()));
        }
        // A whiteout's owner is never recorded; every other entry's is the container's.
        let st = &crate::remap::unshift(st, self.map, &self.upper.join(path))?;
        if kind == libc::S_IFSOCK {
            return Ok(());
        }
        if kind == libc::S_IFREG {
            if let Some(first) = self.tar.linked_name(st).map(Path::to_path_buf) {
                self.tar.append(at, name, st, path, None)?;
                return self.link(&first, target, name, path);
            }
            let fd = nix::fcntl::openat(
                target,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|errno| ImageError::fs("create file", &shown)(errno.into()))?;
            let mut copy = BufWriter::with_capacity(256 * 1024, File::from(fd));
            let written = self.tar.append(at, name, st, path, Some(&mut copy))?;
            debug_assert_eq!(written, Written::Entry);
            let file = copy
                .into_inner()
                .map_err(|e| ImageError::fs("write", &shown)(e.into_error()))?;
            if self.privileged {
                std::os::unix::fs::fchown(&file, Some(st.st_uid), Some(st.st_gid))
                    .map_err(ImageError::fs("chown", &shown))?;
            }
            nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(mode))
                .map_err(|errno| ImageError::fs("chmod", &shown)(errno.into()))?;
            self.size += u64::try_from(st.st_size).unwrap_or(0);
        } else if kind == libc::S_IFLNK {
            self.tar.append(at, name, st, path, None)?;
            let link = nix::fcntl::readlinkat(at, name).map_err(|errno| {
                ImageError::fs("read link", self.upper.join(path))(errno.into())
            })?;
            nix::unistd::symlinkat(link.as_os_str(), target, name)
                .map_err(|errno| ImageError::fs("create symlink", &shown)(errno.into()))?;
            self.chown_at(target, name, st, path)?;
        } else {
            self.tar.append(at, name, st, path, None)?;
            let sflag = match kind {
                libc::S_IFCHR => SFlag::S_IFCHR,
                libc::S_IFBLK => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            nix::sys::stat::mknodat(
                target,
                name,
                sflag,
                Mode::from_bits_truncate(mode),
                st.st_rdev,
            )
            .map_err(|errno| ImageError::fs("create device node", &shown)(errno.into()))?;
            self.chown_at(target, name, st, path)?;
            // mknod applies the umask; the node was just made by us (not a symlink).
            nix::sys::stat::fchmodat(
                target,
                name,
                Mode::from_bits_truncate(mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|errno| ImageError::fs("chmod", &shown)(errno.into()))?;
        }
        copy_xattrs(
            &tree::fd_path(at, Some(name)),
            &tree::fd_path(target, Some(name)),
            false,
        )?;
        self.mtime_at(target, name, st, path)
    }

    fn leave(&mut self, dir: SnapshotDir, path: &Path) -> Result<(), ImageError> {
        let Some((mode, mtime)) = dir.finish else {
            return Ok(());
        };
        let shown = self.diff.join(path);
        nix::sys::stat::fchmod(&dir.fd, Mode::from_bits_truncate(mode))
            .map_err(|errno| ImageError::fs("chmod", &shown)(errno.into()))?;
        let time = TimeSpec::new(mtime, 0);
        nix::sys::stat::futimens(&dir.fd, &time, &time)
            .map_err(|errno| ImageError::fs("set mtime", &shown)(errno.into()))
    }
}

/// Copies extended attributes (not overlayfs' own) without following symlinks; `deref` for
/// `/proc/self/fd/N` paths of directories.
fn copy_xattrs(source: &Path, target: &Path, deref: bool) -> Result<(), ImageError> {
    let listed = if deref {
        xattr::list_deref(source)
    } else {
        xattr::list(source)
    };
    let names = match listed {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(ImageError::fs("list extended attributes", source)(e)),
    };
    for name in names {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        let value = if deref {
            xattr::get_deref(source, name)
        } else {
            xattr::get(source, name)
        };
        if let Some(value) = value.map_err(ImageError::fs("read extended attribute", source))? {
            if deref {
                match xattr::set_deref(target, name, &value) {
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {}
                    other => other.map_err(ImageError::fs("set extended attribute", target))?,
                }
            } else {
                layer::set_xattr(target, name, &value)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    fn read_tar(bytes: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").display().to_string();
            let kind = entry.header().entry_type();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read");
            out.insert(name, (kind, data));
        }
        out
    }

    #[test]
    fn upper_dir_becomes_tar_and_snapshot_in_one_walk() {
        let root = nix::unistd::geteuid().is_root();
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["blobs", "ingest", "upper/etc", "upper/data/sub"] {
            fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let upper = dir.path().join("upper");
        fs::write(upper.join("etc/hosts"), b"engine file").expect("write");
        fs::write(upper.join("etc/app.conf"), b"conf").expect("write");
        fs::hard_link(upper.join("etc/app.conf"), upper.join("etc/app.link")).expect("link");
        fs::write(upper.join("data/sub/f"), vec![7u8; 300_000]).expect("write");
        std::os::unix::fs::symlink("/etc/app.conf", upper.join("conf")).expect("symlink");
        if root {
            nix::sys::stat::mknod(&upper.join("etc/gone"), SFlag::S_IFCHR, Mode::empty(), 0)
                .expect("whiteout");
            xattr::set(upper.join("data"), OVERLAY_OPAQUE_XATTR, b"y").expect("opaque");
        }
        let content = ContentStore::new(dir.path().join("blobs"), dir.path().join("ingest"));
        let staged = stage_upper(
            &content,
            &dir.path().join("ingest"),
            &upper,
            &[PathBuf::from("etc/hosts")],
        )
        .expect("stage");
        assert_eq!(staged.size, 300_000 + 4);
        let blob = fs::read(staged.blob.path()).expect("blob");
        assert_eq!(crate::content::sha256_digest(&blob), staged.blob.digest());
        let entries = read_tar(&blob);
        assert!(!entries.contains_key("etc/hosts"), "excluded");
        assert_eq!(entries["etc/app.conf"].1, b"conf");
        assert_eq!(entries["etc/app.link"].0, tar::EntryType::Link);
        assert_eq!(entries["conf"].0, tar::EntryType::Symlink);
        assert_eq!(entries["data/sub/f"].1.len(), 300_000);
        let snapshot = staged.dir.path().join("diff");
        assert_eq!(
            fs::read(snapshot.join("data/sub/f")).expect("read").len(),
            300_000
        );
        assert!(!snapshot.join("etc/hosts").exists());
        use std::os::unix::fs::MetadataExt;
        let a = fs::metadata(snapshot.join("etc/app.conf")).expect("stat");
        let b = fs::metadata(snapshot.join("etc/app.link")).expect("stat");
        assert_eq!(a.ino(), b.ino(), "hard links stay links in the snapshot");
        assert_ne!(
            a.ino(),
            fs::metadata(upper.join("etc/app.conf"))
                .expect("stat")
                .ino(),
            "the snapshot owns its files: the container may still write to its own"
        );
        if root {
            assert!(entries.contains_key("etc/.wh.gone"), "{:?}", entries.keys());
            assert!(entries.contains_key("data/.wh..wh..opq"));
            let gone = fs::symlink_metadata(snapshot.join("etc/gone")).expect("whiteout");
            assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
            assert_eq!(
                xattr::get(snapshot.join("data"), OVERLAY_OPAQUE_XATTR).expect("xattr"),
                Some(b"y".to_vec())
            );
        }
    }

    /// Issue 10, item 7: a container's tree deeper than PATH_MAX can name is committed, exported,
    /// listed by `diff` and unpacked again whole, on a thread whose stack would not survive
    /// recursion over it.
    #[test]
    fn trees_deeper_than_path_max_commit_export_diff_and_unpack_whole() {
        use std::os::fd::AsFd;
        const DEPTH: usize = 2100;
        // On tmpfs where there is one: thousands of inodes are slow on a busy disk.
        let dir = tempfile::Builder::new()
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("tempdir");
        for sub in ["blobs", "ingest", "upper", "lower", "unpacked"] {
            fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let upper = dir.path().join("upper");
        let mut fd = nix::fcntl::open(&upper, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
            .expect("open");
        for _ in 0..DEPTH {
            nix::sys::stat::mkdirat(fd.as_fd(), "d", Mode::from_bits_truncate(0o755))
                .expect("mkdir");
            fd = tree::open_dir(fd.as_fd(), OsStr::new("d")).expect("open");
        }
        let file = nix::fcntl::openat(
            fd.as_fd(),
            "bottom",
            OFlag::O_CREAT | OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o644),
        )
        .expect("create");
        nix::unistd::write(&file, b"deep").expect("write");
        nix::unistd::linkat(fd.as_fd(), "bottom", fd.as_fd(), "again", AtFlags::empty())
            .expect("link");
        let dirs = crate::RootfsDirs {
            lowerdirs: vec![dir.path().join("lower")],
            upperdir: upper.clone(),
            workdir: dir.path().join("work"),
        };
        let content = ContentStore::new(dir.path().join("blobs"), dir.path().join("ingest"));
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(s, || {
                    let staged = stage_upper(&content, &dir.path().join("ingest"), &upper, &[])
                        .expect("commit");
                    assert_eq!(staged.size, 4, "one inode of 4 bytes");
                    let blob = fs::read(staged.blob.path()).expect("blob");
                    let entries = tar::Archive::new(&blob[..]).entries().expect("tar").count();
                    assert_eq!(entries, DEPTH + 2, "every level, the file and its link");
                    let mut exported = Vec::new();
                    crate::export::export(&dirs, &mut exported).expect("export");
                    let entries = tar::Archive::new(&exported[..])
                        .entries()
                        .expect("tar")
                        .count();
                    assert_eq!(entries, DEPTH + 2);
                    let changes = crate::diff::changes(&dirs).expect("diff");
                    assert_eq!(changes.len(), DEPTH + 2);
                    let size =
                        crate::layer::apply_tar(&mut &blob[..], &dir.path().join("unpacked"))
                            .expect("unpack");
                    assert_eq!(size, 4);
                    // The snapshot too: written by descriptor beside the tar.
                    let snapshot = staged.dir.path().join("diff");
                    for root in [snapshot, dir.path().join("unpacked")] {
                        let mut fd =
                            nix::fcntl::open(&root, OFlag::O_RDONLY, Mode::empty()).expect("open");
                        for _ in 0..DEPTH {
                            fd = tree::open_dir(fd.as_fd(), OsStr::new("d")).expect("level");
                        }
                        let a = nix::sys::stat::fstatat(
                            fd.as_fd(),
                            "bottom",
                            AtFlags::AT_SYMLINK_NOFOLLOW,
                        )
                        .expect("bottom");
                        let b = nix::sys::stat::fstatat(
                            fd.as_fd(),
                            "again",
                            AtFlags::AT_SYMLINK_NOFOLLOW,
                        )
                        .expect("again");
                        assert_eq!((a.st_size, a.st_ino), (4, b.st_ino), "{}", root.display());
                    }
                })
                .expect("spawn")
                .join()
                .expect("join");
        });
    }

    #[test]
    fn an_empty_upper_dir_is_the_empty_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["blobs", "ingest", "upper"] {
            fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        let content = ContentStore::new(dir.path().join("blobs"), dir.path().join("ingest"));
        let staged = stage_upper(
            &content,
            &dir.path().join("ingest"),
            &dir.path().join("upper"),
            &[],
        )
        .expect("stage");
        assert_eq!(staged.blob.digest(), EMPTY_LAYER_DIGEST);
    }
}
