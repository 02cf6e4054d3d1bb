//! What a container changed (`docker diff`): its overlay upper dir read against the layers
//! below it. A 0:0 character device in the upper dir is overlayfs' whiteout (deleted); an
//! entry that also exists in a lower layer was changed; anything else was added.
//!
//! The upper dir is walked iteratively by descriptor ([`berth_fs::tree::walk`]), with the
//! matching directory of every lower layer open beside it, so a tree of any depth is listed
//! whole (or the listing fails).
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use berth_fs::tree::{self, Visit};
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, fstatat};

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

fn open_dir(path: &Path) -> Result<OwnedFd, ImageError> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|errno| ImageError::Filesystem {
        operation: "open directory",
        path: path.to_owned(),
        source: errno.into(),
    })
}

/// The changes of a container's root, sorted by path.
pub fn changes(dirs: &RootfsDirs) -> Result<Vec<Change>, ImageError> {
    let upper = open_dir(&dirs.upperdir)?;
    // A lower layer without the directory has nothing below it either.
    let lowers = dirs
        .lowerdirs
        .iter()
        .map(|l| open_dir(l).ok())
        .collect::<Vec<_>>();
    let mut changes = Changes {
        upper: &dirs.upperdir,
        out: Vec::new(),
    };
    tree::walk(upper, Path::new(""), lowers, &mut changes)?;
    let mut out = changes.out;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

struct Changes<'a> {
    upper: &'a Path,
    out: Vec<Change>,
}

impl Changes<'_> {
    fn record(&mut self, lowers: &[Option<OwnedFd>], name: &OsStr, path: &Path, st: &FileStat) {
        let whiteout = tree::is_type(st, libc::S_IFCHR) && st.st_rdev == 0;
        let kind = if whiteout {
            ChangeKind::Deleted
        } else if lowers
            .iter()
            .flatten()
            .any(|lower| fstatat(lower.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok())
        {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        self.out.push(Change {
            path: format!("/{}", path.display()),
            kind,
        });
    }
}

/// The state of each directory: the same directory in every lower layer, where it is one.
impl Visit for Changes<'_> {
    type Dir = Vec<Option<OwnedFd>>;
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
        lowers: &mut Self::Dir,
        _: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &FileStat,
        _: BorrowedFd<'_>,
    ) -> Result<Option<Self::Dir>, ImageError> {
        self.record(lowers, name, path, st);
        Ok(Some(
            lowers
                .iter()
                .map(|lower| {
                    lower
                        .as_ref()
                        .and_then(|fd| tree::open_dir(fd.as_fd(), name).ok())
                })
                .collect(),
        ))
    }

    fn entry(
        &mut self,
        lowers: &mut Self::Dir,
        _: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &FileStat,
    ) -> Result<(), ImageError> {
        self.record(lowers, name, path, st);
        Ok(())
    }

    fn leave(&mut self, _: Self::Dir, _: &Path) -> Result<(), ImageError> {
        Ok(())
    }
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
