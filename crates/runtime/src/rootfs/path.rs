//! Resolving container paths inside the root filesystem without leaving it.
//!
//! A container image can hold symlinks such as `/etc/hosts -> /../../host/etc/passwd`. Mount
//! targets are therefore resolved component by component, as the kernel would if the rootfs
//! were `/` (the userspace equivalent of `openat2(RESOLVE_IN_ROOT)`, as in runc's
//! securejoin): `..` stops at the root and absolute symlink targets restart at the root.
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// More symlinks than this on one path is a loop (the kernel's limit is 40).
const MAX_SYMLINKS: usize = 255;

/// `root` joined with `unsafe_path`, every symlink resolved inside `root`. Components that
/// do not exist yet are appended as they are.
pub(crate) fn secure_join(root: &Path, unsafe_path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(unsafe_path);
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let metadata = match std::fs::symlink_metadata(root.join(&candidate)) {
            Ok(metadata) => metadata,
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                resolved = candidate;
                continue;
            }
            Err(err) => return Err(err),
        };
        if !metadata.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let target = std::fs::read_link(root.join(&candidate))?;
        if target.is_absolute() {
            resolved = PathBuf::new();
        }
        for part in components(&target).into_iter().rev() {
            pending.push_front(part);
        }
    }
    Ok(root.join(resolved))
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn plain_paths_join() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
        let joined = secure_join(root.path(), Path::new("/etc/hosts")).expect("join");
        assert_eq!(joined, root.path().join("etc/hosts"));
        let missing = secure_join(root.path(), Path::new("/a/b/../c")).expect("join");
        assert_eq!(missing, root.path().join("a/c"));
    }

    #[test]
    fn dotdot_and_absolute_symlinks_stay_inside() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
        symlink("/../../../../etc/passwd", root.path().join("etc/hosts")).expect("symlink");
        symlink("../../../../../", root.path().join("up")).expect("symlink");
        assert_eq!(
            secure_join(root.path(), Path::new("/etc/hosts")).expect("join"),
            root.path().join("etc/passwd")
        );
        assert_eq!(
            secure_join(root.path(), Path::new("/up/tmp")).expect("join"),
            root.path().join("tmp")
        );
        assert_eq!(
            secure_join(root.path(), Path::new("/../../x")).expect("join"),
            root.path().join("x")
        );
    }

    #[test]
    fn relative_symlinks_resolve_from_their_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("usr/lib")).expect("mkdir");
        symlink("usr/lib", root.path().join("lib")).expect("symlink");
        assert_eq!(
            secure_join(root.path(), Path::new("/lib/x.so")).expect("join"),
            root.path().join("usr/lib/x.so")
        );
    }

    #[test]
    fn symlink_loops_fail() {
        let root = tempfile::tempdir().expect("tempdir");
        symlink("b", root.path().join("a")).expect("symlink");
        symlink("a", root.path().join("b")).expect("symlink");
        let err = secure_join(root.path(), Path::new("/a")).expect_err("loop");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }
}
