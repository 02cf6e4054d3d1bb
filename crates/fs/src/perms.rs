//! Letting one group through a directory.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Lets group `gid` search `dir`: the directory's group becomes `gid` and the group gets
/// `--x` (others lose all), unless everyone, or already that group, may search it. How a
/// `--userns-remap` container's root, whose host ids are the mapping's, reaches its layers,
/// its root and its files below root-owned directories, as Docker's remapped roots do.
pub fn open_to_group(dir: &Path, gid: u32) -> io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    if meta.mode() & 0o001 != 0 || (meta.gid() == gid && meta.mode() & 0o010 != 0) {
        return Ok(());
    }
    std::os::unix::fs::chown(dir, None, Some(gid))?;
    std::fs::set_permissions(
        dir,
        std::fs::Permissions::from_mode(meta.mode() & 0o7700 | 0o010),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_dir_opens_to_the_group_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        let gid = std::fs::metadata(&path).unwrap().gid();
        open_to_group(&path, gid).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o710);
        // World-searchable: left as it is.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        open_to_group(&path, gid).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o755);
    }
}
