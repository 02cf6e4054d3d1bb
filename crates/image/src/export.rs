//! `docker export`: a container's root filesystem as one flat tar, read from its overlay
//! layers without mounting them. Upper layers hide lower ones entry by entry; a 0:0 character
//! device (whiteout) hides a name, and an opaque directory hides everything below it.
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::tarwrite::TarWriter;
use crate::{ImageError, RootfsDirs};

fn fs_err(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Filesystem {
        operation,
        path,
        source,
    }
}

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// One name of a merged directory: where its topmost copy is, and, for a directory, the
/// layers whose directories of that name merge into it (until a non-directory stops them).
#[derive(Debug)]
struct Merged {
    source: PathBuf,
    merge: Vec<PathBuf>,
    merging: bool,
}

/// The merged entries of directory `rel`, seen through `layers` (topmost first).
fn merged(layers: &[PathBuf], rel: &Path) -> Result<BTreeMap<String, Merged>, ImageError> {
    let mut seen: BTreeMap<String, Merged> = BTreeMap::new();
    let mut hidden: Vec<String> = Vec::new();
    for layer in layers {
        let dir = layer.join(rel);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(fs_err("read directory", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata().map_err(fs_err("stat", &entry.path()))?;
            let lower_dir = meta.is_dir() && !is_whiteout(&meta);
            if let Some(m) = seen.get_mut(&name) {
                if m.merging {
                    if lower_dir {
                        m.merge.push(layer.clone());
                    } else {
                        m.merging = false;
                    }
                }
                continue;
            }
            if hidden.contains(&name) {
                continue;
            }
            if is_whiteout(&meta) {
                hidden.push(name);
                continue;
            }
            let merge = if meta.is_dir() {
                vec![layer.clone()]
            } else {
                Vec::new()
            };
            let merging = meta.is_dir() && !is_opaque(&entry.path());
            seen.insert(
                name,
                Merged {
                    source: entry.path(),
                    merge,
                    merging,
                },
            );
        }
        if is_opaque(&dir) {
            break;
        }
    }
    Ok(seen)
}

fn walk<W: Write>(
    tar: &mut TarWriter<W>,
    layers: &[PathBuf],
    rel: &Path,
) -> Result<(), ImageError> {
    for (name, m) in merged(layers, rel)? {
        let rel_path = rel.join(&name);
        let meta = std::fs::symlink_metadata(&m.source).map_err(fs_err("stat", &m.source))?;
        tar.append(&m.source, &meta, &rel_path, None)?;
        if !m.merge.is_empty() {
            walk(tar, &m.merge, &rel_path)?;
        }
    }
    Ok(())
}

/// Writes the merged root filesystem of `dirs` to `out` as a tar stream: owners, modes,
/// mtimes, extended attributes, hard links, device nodes and FIFOs as they are.
pub fn export(dirs: &RootfsDirs, out: &mut dyn Write) -> Result<(), ImageError> {
    let mut layers = vec![dirs.upperdir.clone()];
    layers.extend(dirs.lowerdirs.iter().cloned());
    let mut tar = TarWriter::new(std::io::BufWriter::with_capacity(256 * 1024, out));
    walk(&mut tar, &layers, Path::new(""))?;
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
