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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;

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
            mknod(&upper.join("etc/gone"), SFlag::S_IFCHR, Mode::empty(), 0).expect("whiteout");
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
