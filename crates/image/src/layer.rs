//! Layers: applying a layer tarball to a directory, safely, and staging a new layer snapshot.
//!
//! A layer tar is untrusted input that berth unpacks as root, so extraction must not write
//! outside the layer directory:
//! - paths are made relative (a leading `/` is dropped) and any `..` component is refused;
//! - every entry is written relative to its parent directory's descriptor, found from the
//!   previous entry's by descriptor ([`DirChain`]): a missing parent is created, a symlink (or
//!   anything else that is not a directory) refuses the entry, so a symlink placed by an earlier
//!   entry is never followed — and trees of any depth unpack, paths far past `PATH_MAX`
//!   included;
//! - files are created with `O_CREAT|O_EXCL|O_NOFOLLOW` after removing what was there, and
//!   timestamps of symlinks are set without following them;
//! - a hard link must point at an existing non-directory inside the layer.
//!
//! Entries keep their mode (with setuid/setgid/sticky), owner, mtime and `SCHILY.xattr.*`
//! extended attributes. Character and block devices and FIFOs are created with mknod (the
//! `tar` crate would write them as empty regular files). OCI whiteouts become overlayfs
//! whiteouts: `.wh.<name>` a 0:0 character device `<name>`, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` attribute on its directory.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use berth_fs::tree::{self, DirChain};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use sha2::Digest as _;
use tar::EntryType;

use crate::content::{ContentStore, IngestWriter, PendingBlob};
use crate::error::ImageError;
use crate::persist;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// `layers/<chain>/meta.json`: what a layer snapshot is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerMeta {
    /// Digest of the uncompressed layer tar.
    pub diff_id: String,
    /// Chain id of the layer below, if any.
    pub parent: Option<String>,
    /// Sum of the sizes of the layer's regular files, in bytes.
    pub size: u64,
}

/// Unpacks the tar stream `reader` into `root` (which must exist) and returns the layer's size
/// (sum of regular file sizes). Reads exactly up to the end-of-archive marker.
pub fn apply_tar(reader: &mut dyn Read, root: &Path) -> Result<u64, ImageError> {
    apply_tar_as(reader, root, nix::unistd::geteuid().is_root())
}

/// [`apply_tar`], saying whether the unpack may chown and create device nodes.
fn apply_tar_as(reader: &mut dyn Read, root: &Path, privileged: bool) -> Result<u64, ImageError> {
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| ImageError::fs("open directory", root)(errno.into()))?;
    let mut archive = tar::Archive::new(reader);
    let mut applier = Applier {
        root,
        root_fd: root_fd.as_fd(),
        chain: DirChain::new(root_fd.as_fd()),
        targets: DirChain::new(root_fd.as_fd()),
        privileged,
        size: 0,
        directories: Vec::new(),
        buffer: Vec::new(),
    };
    let read_error = |source| ImageError::ReadArchive { source };
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        applier.apply(&mut entry)?;
    }
    applier.finish_directories()?;
    Ok(applier.size)
}

struct Applier<'a> {
    /// The layer directory (for messages).
    root: &'a Path,
    root_fd: BorrowedFd<'a>,
    /// The parents of the entry being written, open.
    chain: DirChain<'a>,
    /// The parents of hard link targets.
    targets: DirChain<'a>,
    /// Only root may chown to other users; an unprivileged unpack keeps its own ids.
    privileged: bool,
    size: u64,
    /// Directories get their mode and mtime at the end: creating children changes the mtime,
    /// and a read-only mode would stop an unprivileged unpack from creating them.
    directories: Vec<(Vec<OsString>, u32, u64)>,
    /// The copy buffer for file contents, allocated once (not per file: a layer has
    /// thousands of small files).
    buffer: Vec<u8>,
}

/// What the tar header says about ownership, mode and time.
struct Attributes {
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: u64,
}

/// A relative path's components.
fn parts(relative: &Path) -> Vec<&OsStr> {
    relative.iter().collect()
}

impl<'a> Applier<'a> {
    fn shown(&self, relative: &Path) -> PathBuf {
        self.root.join(relative)
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ImageError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw_path: PathBuf = entry
            .path()
            .map_err(|source| ImageError::ReadArchive { source })?
            .into_owned();
        let relative = sanitize(&raw_path)?;
        let header = entry.header();
        // Like Go's archive/tar (which wrote most layers out there), an empty numeric field
        // reads as 0.
        let attributes = Attributes {
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            mode: header.mode().unwrap_or(0) & 0o7777,
            mtime: header.mtime().unwrap_or(0),
        };

        let components = parts(&relative);
        let Some((name, parents)) = components.split_last() else {
            return self.apply_root(kind, &raw_path, &attributes);
        };
        let name: &OsStr = name;

        if let Some(done) = self.apply_whiteout(parents, name, &relative, &raw_path) {
            return done;
        }

        let shown = self.shown(&relative);
        let xattrs = pax_xattrs(entry)?;
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                self.create_file(entry, parents, name, &raw_path, &attributes)?;
            }
            EntryType::Directory => self.create_dir(parents, name, &raw_path, &attributes)?,
            EntryType::Symlink => {
                let target = link_name(entry, &raw_path)?;
                self.prepare_target(parents, name, &raw_path, false)?;
                let parent = self.parent(parents, &raw_path)?;
                nix::unistd::symlinkat(target.as_os_str(), parent, name)
                    .map_err(|errno| ImageError::fs("create symlink", &shown)(errno.into()))?;
                self.chown_at(parents, name, &raw_path, &attributes)?;
                self.mtime_at(parents, name, &raw_path, attributes.mtime)?;
            }
            EntryType::Link => {
                return self.create_hard_link(entry, parents, name, &relative, &raw_path);
            }
            EntryType::Char | EntryType::Block if !self.privileged => {
                return Err(unsafe_entry(
                    &raw_path,
                    "device nodes can only be unpacked with privileges",
                ));
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.create_node(entry, kind, parents, name, &raw_path, &attributes)?;
            }
            _ => return Err(unsafe_entry(&raw_path, "unsupported entry type")),
        }
        if !xattrs.is_empty() {
            let parent = self.parent(parents, &raw_path)?;
            let path = tree::fd_path(parent, Some(name));
            for (key, value) in xattrs {
                set_xattr(&path, &key, &value)?;
            }
        }
        Ok(())
    }

    /// `./` itself: only a directory can describe the layer root.
    fn apply_root(
        &mut self,
        kind: EntryType,
        raw_path: &Path,
        attributes: &Attributes,
    ) -> Result<(), ImageError> {
        if kind != EntryType::Directory {
            return Err(unsafe_entry(raw_path, "entry would replace the layer root"));
        }
        self.directories
            .push((Vec::new(), attributes.mode, attributes.mtime));
        if self.privileged {
            nix::unistd::fchown(
                self.root_fd,
                Some(Uid::from_raw(id(attributes.uid))),
                Some(Gid::from_raw(id(attributes.gid))),
            )
            .map_err(|errno| ImageError::fs("chown", self.root)(errno.into()))?;
        }
        Ok(())
    }

    /// An opaque-directory marker or a whiteout: `Some` with the outcome when `name` is one.
    fn apply_whiteout(
        &mut self,
        parents: &[&OsStr],
        name: &OsStr,
        relative: &Path,
        raw_path: &Path,
    ) -> Option<Result<(), ImageError>> {
        let text = name.to_str()?;
        if text == OPAQUE_WHITEOUT {
            let shown = self.shown(relative.parent().unwrap_or(Path::new("")));
            let marked = self.parent(parents, raw_path).and_then(|dir| {
                let path = tree::fd_path(dir, None);
                xattr::set_deref(&path, OVERLAY_OPAQUE_XATTR, b"y")
                    .map_err(ImageError::fs("mark opaque directory", shown))
            });
            return Some(marked);
        }
        let hidden = text.strip_prefix(WHITEOUT_PREFIX)?;
        if hidden.starts_with(WHITEOUT_PREFIX) {
            return Some(Ok(())); // aufs metadata (.wh..wh.plnk), meaningless here
        }
        let hidden = OsStr::new(hidden);
        let shown = self.shown(&relative.with_file_name(hidden));
        let made = self
            .prepare_target(parents, hidden, raw_path, false)
            .and_then(|_| self.parent(parents, raw_path))
            .and_then(|parent| {
                nix::sys::stat::mknodat(parent, hidden, SFlag::S_IFCHR, Mode::empty(), 0)
                    .map_err(|errno| ImageError::fs("create whiteout", shown)(errno.into()))
            });
        Some(made)
    }

    fn create_dir(
        &mut self,
        parents: &[&OsStr],
        name: &OsStr,
        raw_path: &Path,
        attributes: &Attributes,
    ) -> Result<(), ImageError> {
        let shown = self.shown(raw_path);
        let exists = self.prepare_target(parents, name, raw_path, true)?;
        let parent = self.parent(parents, raw_path)?;
        if !exists {
            nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o700))
                .map_err(|errno| ImageError::fs("create directory", &shown)(errno.into()))?;
        }
        self.chown_at(parents, name, raw_path, attributes)?;
        let mut dir_parts: Vec<OsString> = parents.iter().map(|p| (*p).to_owned()).collect();
        dir_parts.push(name.to_owned());
        self.directories
            .push((dir_parts, attributes.mode, attributes.mtime));
        Ok(())
    }

    fn create_hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parents: &[&OsStr],
        name: &OsStr,
        relative: &Path,
        raw_path: &Path,
    ) -> Result<(), ImageError> {
        let shown = self.shown(relative);
        let target = sanitize(&link_name(entry, raw_path)?)?;
        self.check_link_target(&target, raw_path)?;
        if target == relative {
            return Ok(()); // a link to itself: the file is already there
        }
        self.prepare_target(parents, name, raw_path, false)?;
        let target_parts = parts(&target);
        let Some((target_name, target_parents)) = target_parts.split_last() else {
            return Err(unsafe_entry(raw_path, "hard link to the layer root"));
        };
        let source = self
            .targets
            .dir(target_parents, None)
            .map_err(|_| unsafe_entry(raw_path, "hard link target does not exist in the layer"))?;
        let parent = self
            .chain
            .dir(parents, None)
            .map_err(ImageError::fs("open directory", &shown))?;
        // linkat without AT_SYMLINK_FOLLOW: links a symlink itself, never its target.
        nix::unistd::linkat(source, *target_name, parent, name, AtFlags::empty())
            .map_err(|errno| ImageError::fs("create hard link", &shown)(errno.into()))
    }

    fn create_node<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        kind: EntryType,
        parents: &[&OsStr],
        name: &OsStr,
        raw_path: &Path,
        attributes: &Attributes,
    ) -> Result<(), ImageError> {
        let shown = self.shown(raw_path);
        let read_error = |source| ImageError::ReadArchive { source };
        self.prepare_target(parents, name, raw_path, false)?;
        let header = entry.header();
        let (file_type, device) = match kind {
            EntryType::Fifo => (SFlag::S_IFIFO, 0),
            _ => {
                let major = header.device_major().map_err(read_error)?.unwrap_or(0);
                let minor = header.device_minor().map_err(read_error)?.unwrap_or(0);
                let file_type = if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (
                    file_type,
                    nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
                )
            }
        };
        let mode = Mode::from_bits_truncate(attributes.mode);
        let parent = self.parent(parents, raw_path)?;
        nix::sys::stat::mknodat(parent, name, file_type, mode, device)
            .map_err(|errno| ImageError::fs("create device node", &shown)(errno.into()))?;
        self.chown_at(parents, name, raw_path, attributes)?;
        // mknod applies the umask; chmod sets the mode exactly (the node was just created by
        // us: it is no symlink to follow).
        let parent = self.parent(parents, raw_path)?;
        nix::sys::stat::fchmodat(parent, name, mode, FchmodatFlags::FollowSymlink)
            .map_err(|errno| ImageError::fs("chmod", &shown)(errno.into()))?;
        self.mtime_at(parents, name, raw_path, attributes.mtime)
    }

    /// The directory `parents` (made when missing); a symlink or non-directory on the way
    /// refuses the entry.
    fn parent(
        &mut self,
        parents: &[&OsStr],
        raw_path: &Path,
    ) -> Result<BorrowedFd<'_>, ImageError> {
        let root = self.root;
        self.chain
            .dir(parents, Some(0o755))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => unsafe_entry(raw_path, "a parent directory is a symlink"),
                Some(libc::ENOTDIR) => unsafe_entry(raw_path, "a parent is not a directory"),
                _ => {
                    let mut shown = root.to_path_buf();
                    shown.extend(parents);
                    ImageError::fs("create directory", shown)(e)
                }
            })
    }

    fn create_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parents: &[&OsStr],
        name: &OsStr,
        raw_path: &Path,
        attributes: &Attributes,
    ) -> Result<(), ImageError> {
        let mut shown = self.root.to_path_buf();
        shown.extend(parents);
        shown.push(name);
        self.prepare_target(parents, name, raw_path, false)?;
        let parent = self.parent(parents, raw_path)?;
        let fd = nix::fcntl::openat(
            parent,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|errno| ImageError::fs("create file", &shown)(errno.into()))?;
        let mut file = fs::File::from(fd);
        let expected = entry.size();
        if self.buffer.is_empty() {
            self.buffer = vec![0u8; 128 * 1024];
        }
        let buffer = &mut self.buffer[..];
        let mut copied = 0u64;
        loop {
            let n = match entry.read(buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ImageError::ReadArchive { source }),
            };
            file.write_all(&buffer[..n])
                .map_err(ImageError::fs("write", &shown))?;
            copied += n as u64;
        }
        if copied != expected {
            let source = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is truncated", raw_path.display()),
            );
            return Err(ImageError::ReadArchive { source });
        }
        if self.privileged {
            std::os::unix::fs::fchown(&file, Some(id(attributes.uid)), Some(id(attributes.gid)))
                .map_err(ImageError::fs("chown", &shown))?;
        }
        // After chown, which clears setuid/setgid.
        file.set_permissions(fs::Permissions::from_mode(attributes.mode))
            .map_err(ImageError::fs("chmod", &shown))?;
        file.set_modified(unix_time(attributes.mtime))
            .map_err(ImageError::fs("set mtime", &shown))?;
        self.size += expected;
        Ok(())
    }

    /// Checks (creating missing directories) every parent of the entry, then clears the way
    /// for it: an existing directory stays when `keep_dir`, anything else goes. Returns
    /// whether a (kept) directory is there.
    fn prepare_target(
        &mut self,
        parents: &[&OsStr],
        name: &OsStr,
        raw_path: &Path,
        keep_dir: bool,
    ) -> Result<bool, ImageError> {
        let root = self.root;
        let shown = || {
            let mut shown = root.to_path_buf();
            shown.extend(parents);
            shown.push(name);
            shown
        };
        let parent = self.parent(parents, raw_path)?;
        let existing = match nix::sys::stat::fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::Error::ENOENT) => return Ok(false),
            Err(errno) => return Err(ImageError::fs("inspect", shown())(errno.into())),
        };
        if tree::is_type(&existing, libc::S_IFDIR) {
            if keep_dir {
                return Ok(true);
            }
            tree::remove_all_at(parent, name)
                .map_err(ImageError::fs("replace directory", shown()))?;
            // Hard link targets may have been below it.
            self.targets.reset();
        } else {
            nix::unistd::unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
                .map_err(|errno| ImageError::fs("replace", shown())(errno.into()))?;
        }
        Ok(false)
    }

    /// A hard link target: must already exist in this layer, not be a directory, and be
    /// reachable without symlinks.
    fn check_link_target(&mut self, target: &Path, raw_path: &Path) -> Result<(), ImageError> {
        let target_parts = parts(target);
        let Some((name, parents)) = target_parts.split_last() else {
            return Err(unsafe_entry(raw_path, "hard link to the layer root"));
        };
        let missing = || unsafe_entry(raw_path, "hard link target does not exist in the layer");
        let parent = match self.targets.dir(parents, None) {
            Ok(parent) => parent,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Err(unsafe_entry(
                    raw_path,
                    "hard link target is not a file inside the layer",
                ));
            }
            Err(_) => return Err(missing()),
        };
        match nix::sys::stat::fstatat(parent, *name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if !tree::is_type(&st, libc::S_IFDIR) => Ok(()),
            Ok(_) => Err(unsafe_entry(
                raw_path,
                "hard link target is not a file inside the layer",
            )),
            Err(_) => Err(missing()),
        }
    }

    fn chown_at(
        &mut self,
        parents: &[&OsStr],
        name: &OsStr,
        raw_path: &Path,
        attributes: &Attributes,
    ) -> Result<(), ImageError> {
        if !self.privileged {
            return Ok(());
        }
        let root = self.root;
        let parent = self.parent(parents, raw_path)?;
        nix::unistd::fchownat(
            parent,
            name,
            Some(Uid::from_raw(id(attributes.uid))),
            Some(Gid::from_raw(id(attributes.gid))),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|errno| ImageError::fs("chown", root.join(raw_path))(errno.into()))
    }

    fn mtime_at(
        &mut self,
        parents: &[&OsStr],
        name: &OsStr,
        raw_path: &Path,
        mtime: u64,
    ) -> Result<(), ImageError> {
        let root = self.root;
        let parent = self.parent(parents, raw_path)?;
        let time = TimeSpec::new(
            libc::time_t::try_from(mtime).unwrap_or(libc::time_t::MAX),
            0,
        );
        nix::sys::stat::utimensat(parent, name, &time, &time, UtimensatFlags::NoFollowSymlink)
            .map_err(|errno| ImageError::fs("set mtime", root.join(raw_path))(errno.into()))
    }

    /// Gives each directory its mode and mtime, children before parents (so a restrictive
    /// parent mode cannot block them), each found by descriptor. A directory a later entry
    /// replaced is skipped.
    fn finish_directories(&mut self) -> Result<(), ImageError> {
        self.directories.sort();
        let mut chain = DirChain::new(self.root_fd);
        for (dir_parts, mode, mtime) in self.directories.iter().rev() {
            let time = TimeSpec::new(
                libc::time_t::try_from(*mtime).unwrap_or(libc::time_t::MAX),
                0,
            );
            let mode = Mode::from_bits_truncate(*mode);
            let mut shown = self.root.to_path_buf();
            shown.extend(dir_parts);
            let set = |fd: BorrowedFd<'_>| -> Result<(), ImageError> {
                nix::sys::stat::fchmod(fd, mode)
                    .map_err(|errno| ImageError::fs("chmod", &shown)(errno.into()))?;
                nix::sys::stat::futimens(fd, &time, &time)
                    .map_err(|errno| ImageError::fs("set mtime", &shown)(errno.into()))
            };
            let Some((name, parents)) = dir_parts.split_last() else {
                set(self.root_fd)?;
                continue;
            };
            let parents: Vec<&OsStr> = parents.iter().map(OsString::as_os_str).collect();
            let Ok(parent) = chain.dir(&parents, None) else {
                continue;
            };
            match tree::open_dir(parent, name) {
                Ok(dir) => set(dir.as_fd())?,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) => {}
                Err(e) => return Err(ImageError::fs("open directory", &shown)(e)),
            }
        }
        Ok(())
    }
}

/// Makes an archive path relative to the layer root; refuses `..`.
fn sanitize(path: &Path) -> Result<PathBuf, ImageError> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(unsafe_entry(path, "path contains '..'")),
        }
    }
    Ok(relative)
}

fn unsafe_entry(path: &Path, reason: &'static str) -> ImageError {
    ImageError::UnsafeArchiveEntry {
        entry: path.to_path_buf(),
        reason,
    }
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, raw_path: &Path) -> Result<PathBuf, ImageError> {
    match entry.link_name() {
        Ok(Some(name)) => Ok(Cow::into_owned(name)),
        Ok(None) => Err(unsafe_entry(raw_path, "link without a target")),
        Err(source) => Err(ImageError::ReadArchive { source }),
    }
}

fn pax_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<Vec<(String, Vec<u8>)>, ImageError> {
    let read_error = |source| ImageError::ReadArchive { source };
    let mut xattrs = Vec::new();
    if let Some(extensions) = entry.pax_extensions().map_err(read_error)? {
        for extension in extensions {
            let extension = extension.map_err(read_error)?;
            let Ok(key) = extension.key() else { continue };
            if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                xattrs.push((name.to_owned(), extension.value_bytes().to_vec()));
            }
        }
    }
    Ok(xattrs)
}

/// Sets an xattr without following symlinks. Like Docker, a file system or namespace that
/// does not take the attribute (ENOTSUP, or EPERM for `user.*` on a symlink) is not fatal.
pub(crate) fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<(), ImageError> {
    match xattr::set(path, name, value) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {
            tracing::warn!(path = %path.display(), xattr = name, error = %e, "extended attribute not applied");
            Ok(())
        }
        result => result.map_err(ImageError::fs("set extended attribute", path)),
    }
}

pub(crate) fn unix_time(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Tar ids are 64-bit; anything that does not fit a uid_t maps to nobody.
pub(crate) fn id(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(65534)
}

/// A new layer, unpacked and hashed, waiting in the ingest area to be installed.
#[derive(Debug)]
pub(crate) struct StagedLayer {
    /// `ingest/layer-<random>`, holding `diff/`; removed on drop unless installed.
    pub(crate) dir: StagingDir,
    /// The layer tarball.
    pub(crate) blob: PendingBlob,
    /// Sum of regular file sizes.
    pub(crate) size: u64,
}

/// A directory removed on drop unless [`StagingDir::keep`] was called.
#[derive(Debug)]
pub(crate) struct StagingDir {
    path: PathBuf,
}

impl StagingDir {
    /// `ingest/layer-<random>/diff/`, empty; the whole staging dir goes when dropped.
    pub(crate) fn create(ingest: &Path) -> Result<(Self, PathBuf), ImageError> {
        let path = ingest.join(format!("layer-{}", persist::random_suffix()));
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(ImageError::fs("create directory", &path))?;
        let dir = StagingDir { path };
        let diff = dir.path.join("diff");
        DirBuilder::new()
            .mode(0o755)
            .create(&diff)
            .map_err(ImageError::fs("create directory", &diff))?;
        Ok((dir, diff))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory was moved into place: nothing to remove.
    pub(crate) fn keep(mut self) {
        self.path = PathBuf::new();
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty()
            && let Err(e) = persist::remove_tree(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove staging directory");
        }
    }
}

/// Reads `stream` (an uncompressed layer tar) once: unpacks it into a new staging directory
/// and stores it as a pending blob, hashing it on the way. With `expected_diff_id` (from a
/// config that lists the layer), content with another digest is refused.
pub(crate) fn stage_layer(
    content: &ContentStore,
    ingest: &Path,
    stream: &mut dyn Read,
    expected_diff_id: Option<&str>,
) -> Result<StagedLayer, ImageError> {
    let mut writer = content.start()?;
    let (dir, diff) = StagingDir::create(ingest)?;

    // Every byte of the stream is stored twice (blob and snapshot): refuse a stream that
    // would take more than half of the space left, before it fills the disk.
    let limit = available_space(ingest)? / 2;
    let mut limited = SizeLimit {
        inner: stream,
        remaining: limit,
        exceeded: false,
    };
    let mut tee = TeeReader {
        inner: &mut limited,
        sink: &mut writer,
        sink_error: None,
    };
    let applied = apply_tar(&mut tee, &diff).and_then(|size| {
        // Hash what follows the end-of-archive marker too: the diff id covers the whole stream.
        io::copy(&mut tee, &mut io::sink()).map_err(|source| ImageError::ReadArchive { source })?;
        Ok(size)
    });
    let sink_error = tee.sink_error.take();
    if limited.exceeded {
        return Err(ImageError::LayerTooLarge { limit });
    }
    let size = match (applied, sink_error) {
        (Ok(size), None) => size,
        (_, Some(sink_error)) => return Err(ImageError::fs("write", writer.path())(sink_error)),
        (Err(e), None) => return Err(e),
    };
    sync_snapshot(&diff)?;
    let blob = writer.finish()?;
    if let Some(expected) = expected_diff_id {
        blob.verify(expected, None)?;
    }
    tracing::debug!(
        digest = blob.digest(),
        tar_size = blob.size(),
        size,
        "layer staged"
    );
    Ok(StagedLayer { dir, blob, size })
}

/// A layer that came as a registry blob (compressed or plain), unpacked and verified, waiting
/// in the ingest area to be installed. Dropping it removes what it staged.
#[derive(Debug)]
pub struct StagedPull {
    pub(crate) dir: StagingDir,
    /// The blob exactly as it came (for a plain layer, the tar: its digest is the diff id).
    pub(crate) blob: PendingBlob,
    /// The digest of the uncompressed tar.
    pub(crate) diff_id: String,
    /// Bytes of the uncompressed tar.
    pub(crate) tar_size: u64,
    /// Sum of regular file sizes.
    pub(crate) size: u64,
}

impl StagedPull {
    /// The digest of the blob as it came.
    pub fn digest(&self) -> &str {
        self.blob.digest()
    }

    /// The blob's size.
    pub fn blob_size(&self) -> u64 {
        self.blob.size()
    }

    /// The diff id the content hashed to.
    pub fn diff_id(&self) -> &str {
        &self.diff_id
    }

    /// Bytes of the uncompressed tar.
    pub fn tar_size(&self) -> u64 {
        self.tar_size
    }
}

/// Reads a registry blob `raw` once: its bytes go to a pending blob (hashed: the blob digest),
/// through the decompressor its magic bytes call for (gzip, zstd, none), are hashed again (the
/// diff id) and unpacked into a new staging directory as they come. Two threads share the
/// work: this one unpacks while a helper receives, stores and decompresses the next bytes.
/// Nothing is checked against expectations here; the caller compares digests and sizes.
pub(crate) fn stage_blob(
    content: &ContentStore,
    ingest: &Path,
    raw: &mut (dyn Read + Send),
) -> Result<StagedPull, ImageError> {
    let mut writer = content.start()?;
    let (dir, diff) = StagingDir::create(ingest)?;
    // The blob and the snapshot are written; the expansion is bounded as an import's is.
    let limit = available_space(ingest)? / 2;
    let writer_path = writer.path().to_owned();
    let (received, unpacked) = std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        let writer = &mut writer;
        let receiving = scope.spawn(move || receive_blob(raw, writer, &sender));
        let mut decoded = ChannelReader {
            receiver,
            current: Vec::new(),
            offset: 0,
        };
        let mut limited = SizeLimit {
            inner: &mut decoded,
            remaining: limit,
            exceeded: false,
        };
        let mut hashing = HashingReader {
            inner: &mut limited,
            hasher: sha2::Sha256::new(),
            count: 0,
        };
        let applied = apply_tar(&mut hashing, &diff).and_then(|size| {
            io::copy(&mut hashing, &mut io::sink())
                .map_err(|source| ImageError::ReadArchive { source })?;
            Ok(size)
        });
        let (hasher, count) = (hashing.hasher, hashing.count);
        let exceeded = limited.exceeded;
        // The receiver stops at its next send once this side is gone.
        drop(decoded);
        let received = receiving
            .join()
            .unwrap_or_else(|_| Err(Received::Failed(io::Error::other("blob reader panicked"))));
        let unpacked = if exceeded {
            Err(ImageError::LayerTooLarge { limit })
        } else {
            applied.map(|size| (size, hasher, count))
        };
        (received, unpacked)
    });
    // The helper's failure (input, decompression, disk) explains the unpacking's.
    let (size, hasher, tar_size) = match (received, unpacked) {
        (Err(Received::Disk(source)), _) => {
            return Err(ImageError::fs("write", writer_path)(source));
        }
        (Err(Received::Failed(source)), _) => return Err(ImageError::ReadArchive { source }),
        (Ok(()), Err(e)) => return Err(e),
        (Ok(()), Ok(done)) => done,
    };
    // Not synced here: the pull syncs once for all its layers before any is installed
    // (`install_pulled`); a sync per layer flushed the file system once per layer.
    let blob = writer.finish_unsynced()?;
    let diff_id = format!("sha256:{}", hex::encode(hasher.finalize()));
    tracing::debug!(
        digest = blob.digest(),
        diff_id,
        blob_size = blob.size(),
        tar_size,
        size,
        "pulled layer staged"
    );
    Ok(StagedPull {
        dir,
        blob,
        diff_id,
        tar_size,
        size,
    })
}

/// Why the receiving side of [`stage_blob`] stopped.
enum Received {
    /// Writing the blob failed.
    Disk(io::Error),
    /// Reading or decompressing the input failed.
    Failed(io::Error),
}

/// The receiving side of [`stage_blob`]: reads `raw` to its end into `writer`, decompresses
/// it and sends the uncompressed bytes in 1 MiB pieces. Stops quietly when the unpacking
/// side hangs up (it failed and says why).
fn receive_blob(
    raw: &mut (dyn Read + Send),
    writer: &mut IngestWriter,
    sender: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
) -> Result<(), Received> {
    const PIECE: usize = 1024 * 1024;
    let mut tee = TeeReader {
        inner: raw,
        sink: writer,
        sink_error: None,
    };
    let outcome = (|| -> io::Result<bool> {
        let mut decoded = crate::import::decompressed(&mut tee)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        loop {
            let mut piece = vec![0u8; PIECE];
            let mut filled = 0;
            while filled < PIECE {
                match decoded.read(&mut piece[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                return Ok(true);
            }
            piece.truncate(filled);
            if sender.send(Ok(piece)).is_err() {
                return Ok(false);
            }
        }
    })();
    let outcome = outcome.and_then(|finished| {
        // What follows the compressed stream belongs to the blob (and its digest) too.
        if finished {
            io::copy(&mut tee, &mut io::sink())?;
        }
        Ok(())
    });
    if let Some(error) = tee.sink_error.take() {
        let _ = sender.send(Err(io::Error::other("the layer blob could not be written")));
        return Err(Received::Disk(error));
    }
    outcome.map_err(|error| {
        let _ = sender.send(Err(io::Error::new(error.kind(), error.to_string())));
        Received::Failed(error)
    })
}

/// Reads what [`receive_blob`] sends.
struct ChannelReader {
    receiver: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    offset: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.current.len() {
            match self.receiver.recv() {
                Ok(piece) => {
                    self.current = piece?;
                    self.offset = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.offset);
        buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// Hashes and counts what is read through it.
struct HashingReader<'a> {
    inner: &'a mut dyn Read,
    hasher: sha2::Sha256,
    count: u64,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Up to this many entries, a snapshot is synced file by file rather than with `syncfs`.
const SMALL_SNAPSHOT: usize = 64;

/// The unpacked files (and the blobs beside them) must be on disk before a layer can become
/// visible: syncs the tree under `diff`. Done before the store's lock is taken. A small tree
/// (hello-world's one file, a small `commit`) has its files and directories synced one by
/// one: `syncfs` would also wait for every other dirty page of the file system (a build
/// writing next to the data root made hello-world's first run take half a second); a larger
/// one is synced with one `syncfs`.
pub(crate) fn sync_snapshot(diff: &Path) -> Result<(), ImageError> {
    match small_tree(diff, SMALL_SNAPSHOT) {
        Some(entries) => {
            for (path, is_dir) in entries {
                sync_entry(&path, is_dir).map_err(ImageError::fs("fsync", &path))?;
            }
            Ok(())
        }
        None => {
            let handle = fs::File::open(diff).map_err(ImageError::fs("open", diff))?;
            nix::unistd::syncfs(&handle)
                .map_err(|errno| ImageError::fs("syncfs", diff)(errno.into()))
        }
    }
}

/// The regular files and directories under `root` (itself included; `true` for a directory),
/// or `None` if there are more than `limit` entries or the tree cannot be read (`syncfs` then
/// covers it). Other entries (symbolic links, devices, FIFOs) need no sync of their own: they
/// are metadata, written with their directory's.
fn small_tree(root: &Path, limit: usize) -> Option<Vec<(PathBuf, bool)>> {
    let mut found = vec![(root.to_path_buf(), true)];
    let mut next = 0;
    let mut seen = 1;
    while next < found.len() {
        let (dir, is_dir) = found[next].clone();
        next += 1;
        if !is_dir {
            continue;
        }
        for entry in fs::read_dir(&dir).ok()? {
            let entry = entry.ok()?;
            seen += 1;
            if seen > limit {
                return None;
            }
            let kind = entry.file_type().ok()?;
            if kind.is_dir() || kind.is_file() {
                found.push((entry.path(), kind.is_dir()));
            }
        }
    }
    Some(found)
}

/// `fsync` of one staged file or directory, opened without following a link and without
/// blocking.
fn sync_entry(path: &Path, is_dir: bool) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    if is_dir {
        flags |= libc::O_DIRECTORY;
    }
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?
        .sync_all()
}

/// Free bytes (as root sees them) on the file system holding `path`.
fn available_space(path: &Path) -> Result<u64, ImageError> {
    let stat = nix::sys::statvfs::statvfs(path)
        .map_err(|errno| ImageError::fs("statvfs", path)(errno.into()))?;
    Ok(stat.blocks_free().saturating_mul(stat.fragment_size()))
}

/// Fails the read once more than `remaining` bytes came through.
struct SizeLimit<'a> {
    inner: &'a mut dyn Read,
    remaining: u64,
    exceeded: bool,
}

impl Read for SizeLimit<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.remaining.checked_sub(n as u64) {
            Some(left) => {
                self.remaining = left;
                Ok(n)
            }
            None => {
                self.exceeded = true;
                Err(io::Error::other("layer size limit reached"))
            }
        }
    }
}

/// Copies everything read from `inner` into `sink`. A write failure is kept aside so it is
/// reported as the disk error it is, not as a bad archive.
struct TeeReader<'a> {
    inner: &'a mut dyn Read,
    sink: &'a mut IngestWriter,
    sink_error: Option<io::Error>,
}

impl Read for TeeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.sink.write_all(&buf[..n]) {
            let message = e.to_string();
            self.sink_error = Some(e);
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_small_snapshot_is_synced_file_by_file_a_large_one_by_syncfs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("hello"), b"hi").expect("write");
        std::fs::create_dir(root.join("etc")).expect("mkdir");
        std::fs::write(root.join("etc/passwd"), b"root").expect("write");
        std::os::unix::fs::symlink("/nowhere", root.join("link")).expect("symlink");
        // Opening a FIFO to sync it would block: it is left to its directory's sync.
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let mut entries = super::small_tree(root, 8).expect("small");
        entries.sort();
        let names: Vec<(String, bool)> = entries
            .iter()
            .map(|(p, d)| (p.strip_prefix(root).unwrap().display().to_string(), *d))
            .collect();
        assert_eq!(
            names,
            [
                (String::new(), true),
                ("etc".to_owned(), true),
                ("etc/passwd".to_owned(), false),
                ("hello".to_owned(), false)
            ]
        );
        super::sync_snapshot(root).expect("synced");
        assert_eq!(super::small_tree(root, 4), None, "over the limit");
        for i in 0..super::SMALL_SNAPSHOT {
            std::fs::write(root.join(format!("f{i}")), b"").expect("write");
        }
        assert_eq!(super::small_tree(root, super::SMALL_SNAPSHOT), None);
        super::sync_snapshot(root).expect("synced with syncfs");
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_is_not_trusted_any_more() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let mut builder = tar::Builder::new(Vec::new());
        let mut entry = |kind: EntryType, name: &str, link: Option<&Path>| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(0o755);
            header.set_size(0);
            match link {
                Some(link) => builder.append_link(&mut header, name, link),
                None => builder.append_data(&mut header, name, io::empty()),
            }
            .expect("append");
        };
        entry(EntryType::Directory, "a/", None);
        entry(EntryType::Regular, "a/f", None);
        entry(EntryType::Symlink, "a", Some(outside.path()));
        entry(EntryType::Regular, "a/g", None);
        let bytes = builder.into_inner().expect("finish");
        let err = apply_tar(&mut &bytes[..], dir.path()).expect_err("through the symlink");
        assert!(
            err.to_string().contains("a parent directory is a symlink"),
            "{err}"
        );
        assert!(!outside.path().join("g").exists());
    }

    #[test]
    fn device_nodes_need_privileges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::Char);
        header.set_mode(0o666);
        header.set_size(0);
        header.set_device_major(1).expect("major");
        header.set_device_minor(3).expect("minor");
        builder
            .append_data(&mut header, "dev/null", io::empty())
            .expect("append");
        let bytes = builder.into_inner().expect("finish");
        let err = apply_tar_as(&mut &bytes[..], dir.path(), false).expect_err("unprivileged");
        assert_eq!(
            err.to_string(),
            "refusing archive entry \"dev/null\": device nodes can only be unpacked with privileges"
        );
        assert!(!dir.path().join("dev/null").exists());
    }

    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn header(path: &str, kind: EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        // Raw bytes: the tar crate refuses to write absolute paths, which archives can have.
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        header
    }

    fn file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let header = header(path, EntryType::Regular, 0o644, data.len() as u64);
        builder.append(&header, data).expect("append");
    }

    fn link(builder: &mut tar::Builder<Vec<u8>>, path: &str, kind: EntryType, target: &str) {
        let mut header = header(path, kind, 0o777, 0);
        builder
            .append_link(&mut header, path, target)
            .expect("append link");
    }

    /// Writes raw header bytes, bypassing the tar crate's own path checks, as a hostile
    /// archive would.
    fn raw_entry(
        builder: &mut tar::Builder<Vec<u8>>,
        path: &str,
        kind: EntryType,
        target: &str,
        data: &[u8],
    ) {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).expect("append");
    }

    fn unpack(bytes: &[u8]) -> (tempfile::TempDir, Result<u64, ImageError>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let result = apply_tar(&mut &bytes[..], dir.path());
        (dir, result)
    }

    #[test]
    fn unpacks_files_dirs_links_and_metadata() {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append(&header("./", EntryType::Directory, 0o755, 0), &[][..])
            .expect("root");
        builder
            .append(&header("/abs/", EntryType::Directory, 0o750, 0), &[][..])
            .expect("dir");
        file(&mut builder, "/abs/file", b"hello");
        file(&mut builder, "implicit/parents/file", b"x");
        builder
            .append(&header("setuid", EntryType::Regular, 0o4755, 2), &b"hi"[..])
            .expect("file");
        link(&mut builder, "abs/sym", EntryType::Symlink, "/etc/passwd");
        link(&mut builder, "abs/hard", EntryType::Link, "/abs/file");
        file(&mut builder, "replaced", b"old");
        file(&mut builder, "replaced", b"newer");
        let (dir, result) = unpack(&builder.into_inner().expect("finish"));
        let size = result.expect("unpack");
        assert_eq!(size, 5 + 1 + 2 + 3 + 5);
        let root = dir.path();
        assert_eq!(fs::read(root.join("abs/file")).expect("read"), b"hello");
        let meta = fs::metadata(root.join("abs")).expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o750);
        assert_eq!(meta.mtime(), 1_600_000_000);
        assert_eq!(
            fs::metadata(root.join("setuid")).expect("stat").mode() & 0o7777,
            0o4755
        );
        assert_eq!(
            fs::metadata(root.join("abs/file")).expect("stat").mtime(),
            1_600_000_000
        );
        assert_eq!(
            fs::read_link(root.join("abs/sym")).expect("readlink"),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs::symlink_metadata(root.join("abs/sym"))
                .expect("lstat")
                .mtime(),
            1_600_000_000
        );
        let (a, b) = (
            fs::metadata(root.join("abs/file")).expect("stat"),
            fs::metadata(root.join("abs/hard")).expect("stat"),
        );
        assert_eq!(a.ino(), b.ino());
        assert_eq!(fs::read(root.join("replaced")).expect("read"), b"newer");
        assert_eq!(
            fs::metadata(root.join("implicit/parents"))
                .expect("stat")
                .mode()
                & 0o777,
            0o755
        );
    }

    #[test]
    fn refuses_escapes() {
        let mut dotdot = tar::Builder::new(Vec::new());
        raw_entry(&mut dotdot, "../x", EntryType::Regular, "", b"evil");
        let mut nested_dotdot = tar::Builder::new(Vec::new());
        raw_entry(
            &mut nested_dotdot,
            "a/../../x",
            EntryType::Regular,
            "",
            b"evil",
        );
        let mut through_symlink = tar::Builder::new(Vec::new());
        link(&mut through_symlink, "link", EntryType::Symlink, "/");
        file(&mut through_symlink, "link/etc/x", b"evil");
        let mut relative_symlink = tar::Builder::new(Vec::new());
        link(&mut relative_symlink, "up", EntryType::Symlink, "../../..");
        file(&mut relative_symlink, "up/x", b"evil");
        let mut hardlink_out = tar::Builder::new(Vec::new());
        raw_entry(
            &mut hardlink_out,
            "passwd",
            EntryType::Link,
            "/etc/passwd",
            b"",
        );
        let mut hardlink_dotdot = tar::Builder::new(Vec::new());
        raw_entry(
            &mut hardlink_dotdot,
            "h",
            EntryType::Link,
            "../outside",
            b"",
        );
        let mut hardlink_via_symlink = tar::Builder::new(Vec::new());
        link(&mut hardlink_via_symlink, "etc", EntryType::Symlink, "/etc");
        raw_entry(
            &mut hardlink_via_symlink,
            "h",
            EntryType::Link,
            "etc/passwd",
            b"",
        );
        for (name, builder) in [
            ("dotdot", dotdot),
            ("nested dotdot", nested_dotdot),
            ("through symlink", through_symlink),
            ("relative symlink", relative_symlink),
            ("hardlink out", hardlink_out),
            ("hardlink dotdot", hardlink_dotdot),
            ("hardlink via symlink", hardlink_via_symlink),
        ] {
            let outside = tempfile::tempdir().expect("tempdir");
            let layer = outside.path().join("a/b/layer");
            fs::create_dir_all(&layer).expect("mkdir");
            let bytes = builder.into_inner().expect("finish");
            let err = apply_tar(&mut &bytes[..], &layer).expect_err(name);
            assert!(
                matches!(err, ImageError::UnsafeArchiveEntry { .. }),
                "{name}: {err}"
            );
            assert!(
                !outside.path().join("x").exists() && !outside.path().join("a/x").exists(),
                "{name}"
            );
        }
    }

    #[test]
    fn truncated_and_corrupt_archives_fail() {
        let mut builder = tar::Builder::new(Vec::new());
        file(&mut builder, "big", &vec![7u8; 10_000]);
        file(&mut builder, "after", b"x");
        let bytes = builder.into_inner().expect("finish");
        let (_dir, result) = unpack(&bytes[..3000]);
        assert!(
            matches!(result, Err(ImageError::ReadArchive { .. })),
            "{result:?}"
        );
        let mut corrupt = bytes.clone();
        corrupt[100] ^= 0xff; // inside the first header: checksum no longer matches
        let (_dir, result) = unpack(&corrupt);
        assert!(
            matches!(result, Err(ImageError::ReadArchive { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn stage_layer_hashes_the_whole_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["blobs", "ingest"] {
            fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let content = ContentStore::new(dir.path().join("blobs"), dir.path().join("ingest"));
        let mut builder = tar::Builder::new(Vec::new());
        file(&mut builder, "f", b"data");
        let mut bytes = builder.into_inner().expect("finish");
        bytes.extend_from_slice(&[0u8; 4096]); // padding after the end marker, as tar(1) writes
        let wrong = crate::content::sha256_digest(b"something else");
        let err = stage_layer(
            &content,
            &dir.path().join("ingest"),
            &mut &bytes[..],
            Some(&wrong),
        )
        .expect_err("mismatch");
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert_eq!(
            fs::read_dir(dir.path().join("ingest")).expect("ls").count(),
            0
        );
        let expected = crate::content::sha256_digest(&bytes);
        let staged = stage_layer(
            &content,
            &dir.path().join("ingest"),
            &mut &bytes[..],
            Some(&expected),
        )
        .expect("stage");
        assert_eq!(staged.blob.digest(), crate::content::sha256_digest(&bytes));
        assert_eq!(staged.blob.size(), bytes.len() as u64);
        assert_eq!(staged.size, 4);
        assert_eq!(
            fs::read(staged.dir.path().join("diff/f")).expect("read"),
            b"data"
        );
        drop(staged);
        assert_eq!(
            fs::read_dir(dir.path().join("ingest")).expect("ls").count(),
            0
        );

        let err = stage_layer(
            &content,
            &dir.path().join("ingest"),
            &mut &bytes[..700],
            None,
        )
        .expect_err("truncated");
        assert!(matches!(err, ImageError::ReadArchive { .. }), "{err}");
        assert_eq!(
            fs::read_dir(dir.path().join("ingest")).expect("ls").count(),
            0,
            "nothing left behind"
        );
    }
}
