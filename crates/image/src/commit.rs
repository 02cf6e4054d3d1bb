//! `commit`: a container's writable layer becomes a new image layer.
//!
//! The overlay upper dir holds exactly what the container changed: new and modified files,
//! whiteouts (0:0 character devices) for deleted names and `trusted.overlay.opaque=y` on
//! directories that replaced a lower one. One walk over it (in name order, so the same tree
//! gives the same digest) writes both results at once: the layer tar, hashed as it is written
//! to the ingest area (whiteouts become OCI `.wh.` entries), and the layer's read-only
//! snapshot, whose files are written from the same reads (whiteouts stay overlay whiteouts). No
//! tar is unpacked again. The container is expected to be frozen meanwhile (`-p`).

use std::ffi::OsString;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag};

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

/// Walks `upper` once: writes the layer tar into a new pending blob and the same tree as a
/// snapshot into a new staging directory.
pub(crate) fn stage_upper(
    content: &ContentStore,
    ingest: &Path,
    upper: &Path,
    exclude: &[PathBuf],
) -> Result<StagedLayer, ImageError> {
    let writer = content.start()?;
    let (dir, diff) = StagingDir::create(ingest)?;
    let mut walk = UpperWalk {
        tar: TarWriter::new(writer),
        upper,
        diff: &diff,
        exclude,
        privileged: nix::unistd::geteuid().is_root(),
        size: 0,
        dirs: Vec::new(),
    };
    walk.walk(Path::new(""))?;
    let UpperWalk {
        tar,
        size,
        mut dirs,
        ..
    } = walk;
    let writer = tar.finish()?;
    // Deepest first, so a read-only parent cannot block its children.
    dirs.sort_by_key(|(path, _, _)| std::cmp::Reverse(path.components().count()));
    for (path, mode, mtime) in &dirs {
        fs::set_permissions(path, fs::Permissions::from_mode(*mode))
            .map_err(ImageError::fs("chmod", path))?;
        layer::set_mtime_nofollow(path, *mtime)?;
    }
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

struct UpperWalk<'a, W: Write> {
    tar: TarWriter<W>,
    upper: &'a Path,
    diff: &'a Path,
    exclude: &'a [PathBuf],
    privileged: bool,
    size: u64,
    /// Snapshot directories: mode and mtime are set at the end.
    dirs: Vec<(PathBuf, u32, u64)>,
}

impl<W: Write> UpperWalk<'_, W> {
    fn walk(&mut self, rel: &Path) -> Result<(), ImageError> {
        let dir = self.upper.join(rel);
        let mut names: Vec<OsString> = fs::read_dir(&dir)
            .and_then(|entries| {
                entries
                    .map(|entry| entry.map(|e| e.file_name()))
                    .collect::<Result<_, _>>()
            })
            .map_err(ImageError::fs("read directory", &dir))?;
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            if self.exclude.contains(&rel) {
                continue;
            }
            self.entry(&rel)?;
        }
        Ok(())
    }

    fn entry(&mut self, rel: &Path) -> Result<(), ImageError> {
        let source = self.upper.join(rel);
        let target = self.diff.join(rel);
        let meta = fs::symlink_metadata(&source).map_err(ImageError::fs("stat", &source))?;
        let file_type = meta.file_type();
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        let mode = meta.mode() & 0o7777;
        if file_type.is_char_device() && meta.rdev() == 0 {
            self.tar.whiteout(rel)?;
            return mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0);
        }
        if file_type.is_socket() {
            return Ok(());
        }
        if file_type.is_dir() {
            self.tar.append(&source, &meta, rel, None)?;
            DirBuilder::new()
                .mode(0o700)
                .create(&target)
                .map_err(ImageError::fs("create directory", &target))?;
            self.chown(&target, &meta)?;
            copy_xattrs(&source, &target)?;
            if matches!(xattr::get(&source, OVERLAY_OPAQUE_XATTR), Ok(Some(v)) if v == b"y") {
                self.tar.opaque(rel)?;
                xattr::set(&target, OVERLAY_OPAQUE_XATTR, b"y")
                    .map_err(ImageError::fs("mark opaque directory", &target))?;
            }
            self.dirs.push((target, mode, mtime));
            return self.walk(rel);
        }
        if file_type.is_file() {
            if let Some(first) = self.tar.linked_name(&meta) {
                let first = self.diff.join(first);
                self.tar.append(&source, &meta, rel, None)?;
                return fs::hard_link(&first, &target)
                    .map_err(ImageError::fs("create hard link", &target));
            }
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&target)
                .map_err(ImageError::fs("create file", &target))?;
            let mut copy = BufWriter::with_capacity(256 * 1024, file);
            let written = self.tar.append(&source, &meta, rel, Some(&mut copy))?;
            debug_assert_eq!(written, Written::Entry);
            let file = copy
                .into_inner()
                .map_err(|e| ImageError::fs("write", &target)(e.into_error()))?;
            if self.privileged {
                std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
                    .map_err(ImageError::fs("chown", &target))?;
            }
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(ImageError::fs("chmod", &target))?;
            file.set_modified(layer::unix_time(mtime))
                .map_err(ImageError::fs("set mtime", &target))?;
            self.size += meta.len();
        } else if file_type.is_symlink() {
            self.tar.append(&source, &meta, rel, None)?;
            let link = fs::read_link(&source).map_err(ImageError::fs("read link", &source))?;
            std::os::unix::fs::symlink(&link, &target)
                .map_err(ImageError::fs("create symlink", &target))?;
            self.chown(&target, &meta)?;
        } else {
            self.tar.append(&source, &meta, rel, None)?;
            let kind = if file_type.is_char_device() {
                SFlag::S_IFCHR
            } else if file_type.is_block_device() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            mknod(&target, kind, Mode::from_bits_truncate(mode), meta.rdev())?;
            self.chown(&target, &meta)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(ImageError::fs("chmod", &target))?;
        }
        copy_xattrs(&source, &target)?;
        layer::set_mtime_nofollow(&target, mtime)
    }

    fn chown(&self, path: &Path, meta: &fs::Metadata) -> Result<(), ImageError> {
        if !self.privileged {
            return Ok(());
        }
        std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))
            .map_err(ImageError::fs("chown", path))
    }
}

fn mknod(path: &Path, kind: SFlag, mode: Mode, rdev: u64) -> Result<(), ImageError> {
    nix::sys::stat::mknod(path, kind, mode, rdev)
        .map_err(|errno| ImageError::fs("create device node", path)(errno.into()))
}

/// Copies extended attributes (not overlayfs' own) without following symlinks.
fn copy_xattrs(source: &Path, target: &Path) -> Result<(), ImageError> {
    let names = match xattr::list(source) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(ImageError::fs("list extended attributes", source)(e)),
    };
    for name in names {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        if let Some(value) =
            xattr::get(source, name).map_err(ImageError::fs("read extended attribute", source))?
        {
            layer::set_xattr(target, name, &value)?;
        }
    }
    Ok(())
}
