//! `docker export`: a container's root filesystem as one flat tar, read from its overlay
//! layers without mounting them. Upper layers hide lower ones entry by entry; a 0:0 character
//! device (whiteout) hides a name, and an opaque directory hides everything below it.
//!
//! The merged tree is walked iteratively by descriptor (one directory descriptor per layer
//! merging at each level), so a container's tree of any depth is exported whole; anything
//! that cannot be read fails the export instead of leaving a partial archive.
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_fs::tree;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, fstatat};

use crate::tarwrite::TarWriter;
use crate::{IdMapping, ImageError, RootfsDirs};

fn fs_err(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Filesystem {
        operation,
        path,
        source,
    }
}

fn is_whiteout(st: &FileStat) -> bool {
    tree::is_type(st, libc::S_IFCHR) && st.st_rdev == 0
}

/// Whether the directory `name` of `at` (or `at` itself) is marked opaque.
fn is_opaque(at: BorrowedFd<'_>, name: Option<&OsStr>) -> bool {
    let value = match name {
        Some(name) => xattr::get(tree::fd_path(at, Some(name)), "trusted.overlay.opaque"),
        None => xattr::get_deref(tree::fd_path(at, None), "trusted.overlay.opaque"),
    };
    matches!(value, Ok(Some(v)) if v == b"y")
}

/// One name of a merged directory: the layer of its topmost copy and its stat there, and, for
/// a directory, the layers whose directories of that name merge into it (until a
/// non-directory stops them), topmost first.
#[derive(Debug)]
struct Merged {
    source: usize,
    st: FileStat,
    merge: Vec<usize>,
    merging: bool,
}

/// The merged entries of one directory, seen through `layers` (its descriptors in each layer
/// that merges there, topmost first).
fn merged(layers: &[OwnedFd], path: &Path) -> Result<BTreeMap<OsString, Merged>, ImageError> {
    let mut seen: BTreeMap<OsString, Merged> = BTreeMap::new();
    let mut hidden: Vec<OsString> = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let at = layer.as_fd();
        for name in tree::list(at).map_err(fs_err("read directory", path))? {
            let st = match fstatat(at, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed while the export reads it (a running container).
                Err(nix::Error::ENOENT) => continue,
                Err(errno) => return Err(fs_err("stat", &path.join(&name))(errno.into())),
            };
            let is_dir = tree::is_type(&st, libc::S_IFDIR);
            if let Some(m) = seen.get_mut(&name) {
                if m.merging {
                    if is_dir {
                        m.merge.push(index);
                    } else {
                        m.merging = false;
                    }
                }
                continue;
            }
            if hidden.contains(&name) {
                continue;
            }
            if is_whiteout(&st) {
                hidden.push(name);
                continue;
            }
            let merging = is_dir && !is_opaque(at, Some(&name));
            seen.insert(
                name,
                Merged {
                    source: index,
                    st,
                    merge: if is_dir { vec![index] } else { Vec::new() },
                    merging,
                },
            );
        }
        if is_opaque(at, None) {
            break;
        }
    }
    Ok(seen)
}

/// A merged directory being written: its layers' descriptors and its entries not yet written.
struct Frame {
    layers: Vec<OwnedFd>,
    pending: Vec<(OsString, Merged)>,
    path: PathBuf,
}

impl Frame {
    fn new(layers: Vec<OwnedFd>, path: PathBuf) -> Result<Frame, ImageError> {
        let mut pending: Vec<(OsString, Merged)> = merged(&layers, &path)?.into_iter().collect();
        pending.reverse();
        Ok(Frame {
            layers,
            pending,
            path,
        })
    }
}

/// Writes the merged tree below the layers' roots, iteratively (see the module doc).
fn walk<W: Write>(
    tar: &mut TarWriter<W>,
    roots: Vec<OwnedFd>,
    map: Option<&IdMapping>,
) -> Result<(), ImageError> {
    let mut stack = vec![Frame::new(roots, PathBuf::new())?];
    while let Some(top) = stack.last_mut() {
        let Some((name, m)) = top.pending.pop() else {
            stack.pop();
            continue;
        };
        let path = top.path.join(&name);
        let at = top.layers[m.source].as_fd();
        let st = crate::remap::unshift(&m.st, map, &path)?;
        tar.append(at, &name, &st, &path, None)?;
        if m.merge.is_empty() {
            continue;
        }
        let mut layers = Vec::with_capacity(m.merge.len());
        for index in &m.merge {
            let dir = tree::open_dir(top.layers[*index].as_fd(), &name)
                .map_err(fs_err("open directory", &path))?;
            layers.push(dir);
        }
        let frame = Frame::new(layers, path)?;
        stack.push(frame);
    }
    Ok(())
}

/// Writes the merged root filesystem of `dirs` to `out` as a tar stream: owners, modes,
/// mtimes, extended attributes, hard links, device nodes and FIFOs as they are.
pub fn export(dirs: &RootfsDirs, out: &mut dyn Write) -> Result<(), ImageError> {
    export_mapped(dirs, None, out)
}

/// [`export`] of a container in a user namespace (`--userns-remap`): owners are written as
/// the container sees them (`map`'s host ids shifted back), as dockerd's export does, so the
/// archive is the same as an unremapped container's.
pub fn export_mapped(
    dirs: &RootfsDirs,
    map: Option<&IdMapping>,
    out: &mut dyn Write,
) -> Result<(), ImageError> {
    let mut roots = Vec::new();
    for layer in std::iter::once(&dirs.upperdir).chain(&dirs.lowerdirs) {
        let fd = nix::fcntl::open(
            layer,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|errno| fs_err("open directory", layer)(errno.into()))?;
        roots.push(fd);
    }
    let mut tar = TarWriter::new(std::io::BufWriter::with_capacity(256 * 1024, out));
    walk(&mut tar, roots, map)?;
    tar.finish()?
        .flush()
        .map_err(fs_err("archive", &dirs.upperdir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_hides_lower_and_whiteouts_delete() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/a"), "lower").unwrap();
        std::fs::write(lower.join("etc/b"), "lower").unwrap();
        std::fs::write(lower.join("gone"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/a", lower.join("link")).unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/a"), "upper").unwrap();
        std::fs::write(upper.join("new"), "n").unwrap();
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
        let mut buf = Vec::new();
        export(&dirs, &mut buf).unwrap();
        let mut archive = tar::Archive::new(&buf[..]);
        let mut got = BTreeMap::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            let mut body = String::new();
            if e.header().entry_type().is_file() {
                std::io::Read::read_to_string(&mut e, &mut body).unwrap();
            } else if e.header().entry_type().is_symlink() {
                body = format!("-> {}", e.link_name().unwrap().unwrap().display());
            }
            got.insert(path, body);
        }
        let want: BTreeMap<String, String> = [
            ("etc/", ""),
            ("etc/a", "upper"),
            ("etc/b", "lower"),
            ("link", "-> /etc/a"),
            ("new", "n"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
