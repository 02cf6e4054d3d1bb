//! An image's file system read from its layer directories without mounting them: upper
//! layers hide lower ones, a 0:0 character device (whiteout) hides a name, an opaque
//! directory hides everything below it in lower layers. Symlinks are resolved inside the
//! image's root. What `COPY --chown` (names from `/etc/passwd`, `/etc/group`), `COPY`'s
//! destination and `WORKDIR` need to know about the image a step starts from.
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Symlinks followed on one path at most (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// The layers of an image, topmost first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layers {
    dirs: Vec<PathBuf>,
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// The parts of an absolute or relative path, `.`/`..` applied lexically.
fn parts(path: &str) -> Vec<String> {
    berth_fs::root::clean(path)
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Layers {
    pub(crate) fn new(dirs: Vec<PathBuf>) -> Layers {
        Layers { dirs }
    }

    /// The entry at `path` (symlinks not followed anywhere): the host path of its topmost
    /// copy and its metadata; `None` when the image has no such entry.
    pub(crate) fn lstat(&self, path: &str) -> Option<(PathBuf, Metadata)> {
        let comps = parts(path);
        if comps.is_empty() {
            let top = self.dirs.first()?;
            return std::fs::symlink_metadata(top)
                .ok()
                .map(|m| (top.clone(), m));
        }
        for layer in &self.dirs {
            let mut cur = layer.clone();
            let mut opaque = false;
            let mut found = None;
            for (i, comp) in comps.iter().enumerate() {
                let next = cur.join(comp);
                match std::fs::symlink_metadata(&next) {
                    Err(_) => break,
                    Ok(m) if is_whiteout(&m) => return None,
                    Ok(m) if i + 1 == comps.len() => {
                        found = Some((next, m));
                        break;
                    }
                    Ok(m) if m.is_dir() => {
                        if is_opaque(&next) {
                            opaque = true;
                        }
                        cur = next;
                    }
                    // A file or symlink where a directory was asked for hides lower layers.
                    Ok(_) => return None,
                }
            }
            if found.is_some() {
                return found;
            }
            if opaque {
                return None;
            }
        }
        None
    }

    /// `path` with every symlink resolved inside the root; the final component too when
    /// `follow_last`. Missing components are kept as given.
    pub(crate) fn resolve(&self, path: &str, follow_last: bool) -> String {
        let mut pending: Vec<String> = parts(path).into_iter().rev().collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            let last = pending.is_empty();
            let candidate = format!(
                "/{}",
                [resolved.as_slice(), std::slice::from_ref(&part)]
                    .concat()
                    .join("/")
            );
            let link = if last && !follow_last {
                None
            } else {
                match self.lstat(&candidate) {
                    Some((host, m)) if m.file_type().is_symlink() && links < MAX_SYMLINKS => {
                        std::fs::read_link(host).ok()
                    }
                    _ => None,
                }
            };
            match link {
                Some(target) => {
                    links += 1;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    for p in target.split('/').rev() {
                        pending.push(p.to_owned());
                    }
                }
                None => match part.as_str() {
                    "" | "." => {}
                    ".." => {
                        resolved.pop();
                    }
                    _ => resolved.push(part),
                },
            }
        }
        format!("/{}", resolved.join("/"))
    }

    /// The bytes of the regular file at `path` (symlinks followed), if there is one.
    pub(crate) fn read(&self, path: &str) -> Option<Vec<u8>> {
        let (host, m) = self.lstat(&self.resolve(path, true))?;
        if !m.is_file() {
            return None;
        }
        std::fs::read(host).ok()
    }
}

/// A user or group name or number resolved against `/etc/passwd` or `/etc/group` text:
/// `(uid or gid, primary gid for a user)`.
pub(crate) fn lookup_id(db: Option<&[u8]>, name: &str) -> Option<(u32, Option<u32>)> {
    let text = String::from_utf8_lossy(db?);
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 3 && fields[0] == name {
            let id = fields[2].parse().ok()?;
            let gid = fields.get(3).and_then(|g| g.parse().ok());
            return Some((id, gid));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_layers_hide_lower_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::create_dir_all(lower.join("var/run")).unwrap();
        std::fs::write(
            lower.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nbob:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(lower.join("etc/gone"), "x").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(
            upper.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nann:x:7:8::/:/bin/sh\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("../etc", upper.join("link")).unwrap();
        let layers = Layers::new(vec![upper, lower]);
        let passwd = layers.read("/etc/passwd").unwrap();
        assert_eq!(lookup_id(Some(&passwd), "ann"), Some((7, Some(8))));
        assert_eq!(lookup_id(Some(&passwd), "bob"), None);
        assert!(layers.lstat("/etc/gone").is_some());
        assert!(layers.lstat("/var/run").unwrap().1.is_dir());
        assert_eq!(layers.resolve("/link/passwd", false), "/etc/passwd");
        assert!(layers.read("/link/passwd").is_some());
        assert!(layers.lstat("/nope").is_none());
    }
}
