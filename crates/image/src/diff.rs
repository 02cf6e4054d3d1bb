//! What a container changed (`docker diff`): its overlay upper dir read against the layers
//! below it. A 0:0 character device in the upper dir is overlayfs' whiteout (deleted); an
//! entry that also exists in a lower layer was changed; anything else was added.
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::{ImageError, RootfsDirs};

/// Docker's change kinds, with the numbers its API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// `C`: changed.
    Modified = 0,
    /// `A`: added.
    Added = 1,
    /// `D`: deleted.
    Deleted = 2,
}

/// One changed path, absolute inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// e.g. `/tmp/x`.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// The changes of a container's root, sorted by path.
pub fn changes(dirs: &RootfsDirs) -> Result<Vec<Change>, ImageError> {
    let mut out = Vec::new();
    walk(dirs, Path::new(""), &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(dirs: &RootfsDirs, rel: &Path, out: &mut Vec<Change>) -> Result<(), ImageError> {
    let dir = dirs.upperdir.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(|source| ImageError::Filesystem {
        operation: "read directory",
        path: dir.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| ImageError::Filesystem {
            operation: "read directory",
            path: dir.clone(),
            source,
        })?;
        let rel_path = rel.join(entry.file_name());
        let meta = entry.metadata().map_err(|source| ImageError::Filesystem {
            operation: "stat",
            path: entry.path(),
            source,
        })?;
        let path = format!("/{}", rel_path.display());
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        let kind = if whiteout {
            ChangeKind::Deleted
        } else if dirs
            .lowerdirs
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(&rel_path)).is_ok())
        {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        out.push(Change { path, kind });
        if meta.is_dir() {
            walk(dirs, &rel_path, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_dir_entries_are_added_changed_or_deleted() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), "root").unwrap();
        std::fs::write(lower.join("gone"), "x").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/passwd"), "root\nuser").unwrap();
        std::fs::create_dir_all(upper.join("new/sub")).unwrap();
        nix::sys::stat::mknod(
            &upper.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let dirs = RootfsDirs {
            lowerdirs: vec![lower],
            upperdir: upper,
            workdir: t.path().join("work"),
        };
        let got: Vec<(String, ChangeKind)> = changes(&dirs)
            .unwrap()
            .into_iter()
            .map(|c| (c.path, c.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/etc".to_string(), ChangeKind::Modified),
                ("/etc/passwd".to_string(), ChangeKind::Modified),
                ("/gone".to_string(), ChangeKind::Deleted),
                ("/new".to_string(), ChangeKind::Added),
                ("/new/sub".to_string(), ChangeKind::Added),
            ]
        );
    }
}
