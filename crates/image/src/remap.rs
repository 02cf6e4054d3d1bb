//! Layers for `--userns-remap`: a copy of a layer's tree with every owner shifted into a
//! subordinate id range, made once per layer and mapping (`layers/<hex>/diff-<uid>.<gid>`,
//! beside `diff`; it goes with the layer), so containers of that mapping stack the copies.
//!
//! A copy rather than an idmapped mount: overlay over idmapped lower layers needs the runtime
//! to build each lower mount in the container's user namespace (a change on the container
//! start path for every container), while a copy costs disk once and nothing per start.
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ImageError;

pub use berth_fs::IdMapping;
use berth_fs::idmap::host_of;

/// `st` with its owner as the container sees it (`map`'s host ids shifted back): what a tar
/// of a remapped container's files carries, so the archive or layer is the same as one of an
/// unremapped container's (Docker's `UIDMaps`/`GIDMaps` on export, commit and `cp`).
pub(crate) fn unshift(
    st: &nix::sys::stat::FileStat,
    map: Option<&IdMapping>,
    path: &Path,
) -> Result<nix::sys::stat::FileStat, ImageError> {
    let mut st = *st;
    if let Some(map) = map {
        let (uid, gid) = map
            .to_container(st.st_uid, st.st_gid)
            .map_err(ImageError::fs("archive", path))?;
        st.st_uid = uid;
        st.st_gid = gid;
    }
    Ok(st)
}

fn unmappable(path: &Path, what: &str, id: u32) -> ImageError {
    ImageError::Filesystem {
        operation: "remap owner of",
        path: path.to_owned(),
        source: std::io::Error::other(format!(
            "Container {what} {id} cannot be mapped to a host ID"
        )),
    }
}

/// [`berth_fs::open_to_group`], as an image error.
pub(crate) fn open_to_group(dir: &Path, gid: u32) -> Result<(), ImageError> {
    berth_fs::open_to_group(dir, gid).map_err(ImageError::fs("open to the remapped root", dir))
}

/// Makes `<layer>/diff-<key>` from `<layer>/diff` unless it exists; returns it.
pub(crate) fn ensure_copy(layer: &Path, map: &IdMapping) -> Result<PathBuf, ImageError> {
    let target = layer.join(format!("diff-{}", map.key()));
    if let Some((_, gid)) = map.root() {
        open_to_group(layer, gid)?;
    }
    if target.is_dir() {
        return Ok(target);
    }
    let source = layer.join("diff");
    let tmp = layer.join(format!(
        ".diff-{}.{}.{}",
        map.key(),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    let made = copy_shifted(&source, &tmp, map).and_then(|()| {
        std::fs::rename(&tmp, &target).or_else(|e| {
            // Another create made it first: theirs is as good.
            if target.is_dir() {
                Ok(())
            } else {
                Err(ImageError::fs("rename", &tmp)(e))
            }
        })
    });
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    made.map(|()| target)
}

/// `cp -a` (modes, links, times, xattrs such as overlay's opaque marks), then every entry's
/// owner shifted as `map` says (read from the source, so hard links are shifted once), with
/// set-id bits restored (a chown clears them).
fn copy_shifted(source: &Path, tmp: &Path, map: &IdMapping) -> Result<(), ImageError> {
    let out = Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(source)
        .arg(tmp)
        .output()
        .map_err(ImageError::fs("run cp for", tmp))?;
    if !out.status.success() {
        return Err(ImageError::Filesystem {
            operation: "copy layer to",
            path: tmp.to_owned(),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        });
    }
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let (src, dst) = (source.join(&rel), tmp.join(&rel));
        let meta = std::fs::symlink_metadata(&src).map_err(ImageError::fs("stat", &src))?;
        let uid =
            host_of(&map.uids, meta.uid()).ok_or_else(|| unmappable(&src, "ID", meta.uid()))?;
        let gid = host_of(&map.gids, meta.gid())
            .ok_or_else(|| unmappable(&src, "group ID", meta.gid()))?;
        std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
            .map_err(ImageError::fs("chown", &dst))?;
        let ft = meta.file_type();
        if !ft.is_symlink() && meta.mode() & 0o6000 != 0 {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(ImageError::fs("chmod", &dst))?;
        }
        if ft.is_dir() {
            for entry in std::fs::read_dir(&src).map_err(ImageError::fs("read directory", &src))? {
                let entry = entry.map_err(ImageError::fs("read directory", &src))?;
                stack.push(rel.join(entry.file_name()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_shifts_owners_keeps_modes_and_links() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path();
        let diff = layer.join("diff");
        std::fs::create_dir_all(diff.join("bin")).unwrap();
        std::fs::write(diff.join("bin/su"), b"x").unwrap();
        std::fs::set_permissions(diff.join("bin/su"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        std::fs::hard_link(diff.join("bin/su"), diff.join("bin/su2")).unwrap();
        std::os::unix::fs::lchown(diff.join("bin"), Some(2), Some(3)).unwrap();
        std::os::unix::fs::symlink("su", diff.join("bin/link")).unwrap();
        let map = IdMapping {
            uids: vec![(0, 100_000, 65536)],
            gids: vec![(0, 100_000, 65536)],
        };
        let copy = ensure_copy(layer, &map).unwrap();
        assert_eq!(copy, layer.join("diff-100000.100000"));
        let m = |p: &str| std::fs::symlink_metadata(copy.join(p)).unwrap();
        assert_eq!((m("bin").uid(), m("bin").gid()), (100_002, 100_003));
        assert_eq!(
            (m("bin/su").uid(), m("bin/su").mode() & 0o7777),
            (100_000, 0o4755)
        );
        assert_eq!(m("bin/su").ino(), m("bin/su2").ino());
        assert_eq!(m("bin/link").uid(), 100_000);
        // The source is untouched, and a second call reuses the copy.
        assert_eq!(std::fs::metadata(diff.join("bin/su")).unwrap().uid(), 0);
        assert_eq!(ensure_copy(layer, &map).unwrap(), copy);
        let names: Vec<_> = std::fs::read_dir(layer)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
