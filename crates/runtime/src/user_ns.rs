//! User namespaces. See <https://man7.org/linux/man-pages/man7/user_namespaces.7.html>.
//!
//! The init is cloned straight into a new user namespace together with the others (so they
//! are owned by it) and waits; the parent writes its `uid_map` and `gid_map` (a privileged
//! parent may map any host ids, and leaves `setgroups` allowed; an unprivileged one must
//! first write `deny` there and may only map ids it owns). Then the init becomes root of the
//! namespace (`setresuid(0)`, as runc's nsexec does): from there on the files it creates are
//! owned by the mapped root, which the filesystems it mounts (tmpfs for /dev, devpts, …)
//! require — an unmapped owner makes `mkdir` fail with `EOVERFLOW`.
//!
//! What a user namespace changes further down: `mknod` is not allowed (devices are bind
//! mounts of the host's nodes, [`crate::rootfs::devices`]); sysfs needs a network namespace
//! the user namespace owns, and mqueue an IPC one (otherwise the host's are bind-mounted, as
//! runc does); a remount keeps the flags the kernel locked on the mount it came from.
//!
//! Every id in the maps is checked before anything is created: no overlapping ranges, at most
//! 340 lines (the kernel's limit), sizes above zero, and container root mapped.
//! [`subordinate_ids`] reads `/etc/subuid`-style files for callers that choose mappings.
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Linux, LinuxIdMapping};

use crate::namespaces::NamespacePlan;
use crate::sync::{Failure, at};
use crate::{RuntimeError, Step};

/// The kernel's limit on lines in an id map (since Linux 4.15).
const MAX_MAP_LINES: usize = 340;

/// One range of a map: `container`..`container + size` is `host`..`host + size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the namespace.
    pub container: u32,
    /// First id on the host.
    pub host: u32,
    /// How many.
    pub size: u32,
}

impl IdRange {
    fn from_spec(mapping: &LinuxIdMapping) -> Self {
        IdRange {
            container: mapping.container_id(),
            host: mapping.host_id(),
            size: mapping.size(),
        }
    }

    /// The host id of `container`, if this range maps it.
    pub fn host_of(&self, container: u32) -> Option<u32> {
        let offset = container.checked_sub(self.container)?;
        (offset < self.size).then(|| self.host + offset)
    }
}

/// What the parent and the init do about user namespaces.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserNamespacePlan {
    /// A new user namespace is created (the parent writes the maps).
    pub new_user: bool,
    /// The init joins or creates a user namespace (it becomes its root).
    pub in_user_namespace: bool,
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
    /// `setgroups(2)` stays allowed (a privileged parent writes the maps).
    pub set_groups: bool,
}

fn invalid(field: &'static str, reason: String) -> RuntimeError {
    RuntimeError::InvalidSpec { field, reason }
}

/// Checks one map: sizes, line count, no overlap inside or outside, 32-bit ends.
fn check_map(field: &'static str, map: &[IdRange]) -> Result<(), RuntimeError> {
    if map.len() > MAX_MAP_LINES {
        return Err(invalid(
            field,
            format!(
                "{} ranges, the kernel takes at most {MAX_MAP_LINES}",
                map.len()
            ),
        ));
    }
    for (i, range) in map.iter().enumerate() {
        if range.size == 0 {
            return Err(invalid(field, format!("range {i} has size 0")));
        }
        let ends =
            [range.container, range.host].map(|start| u64::from(start) + u64::from(range.size));
        if ends.iter().any(|&end| end > u64::from(u32::MAX)) {
            return Err(invalid(
                field,
                format!("range {i} goes past the largest id {}", u32::MAX - 1),
            ));
        }
        for (j, other) in map.iter().enumerate().take(i) {
            let overlaps = |a: u32, b: u32| {
                u64::from(a) < u64::from(b) + u64::from(other.size)
                    && u64::from(b) < u64::from(a) + u64::from(range.size)
            };
            if overlaps(range.container, other.container) {
                return Err(invalid(
                    field,
                    format!("ranges {j} and {i} overlap inside the container"),
                ));
            }
            if overlaps(range.host, other.host) {
                return Err(invalid(
                    field,
                    format!("ranges {j} and {i} overlap on the host"),
                ));
            }
        }
    }
    Ok(())
}

impl UserNamespacePlan {
    pub(crate) fn new(linux: &Linux, namespaces: &NamespacePlan) -> Result<Self, RuntimeError> {
        let uid_map: Vec<IdRange> = linux
            .uid_mappings()
            .iter()
            .flatten()
            .map(IdRange::from_spec)
            .collect();
        let gid_map: Vec<IdRange> = linux
            .gid_mappings()
            .iter()
            .flatten()
            .map(IdRange::from_spec)
            .collect();
        let mut plan = UserNamespacePlan {
            new_user: namespaces.new_user,
            in_user_namespace: namespaces.new_user || namespaces.joins_user(),
            set_groups: true,
            ..Default::default()
        };
        if !namespaces.new_user {
            if !uid_map.is_empty() || !gid_map.is_empty() {
                return Err(invalid(
                    "linux.uidMappings",
                    "id mappings need a new user namespace in linux.namespaces".to_owned(),
                ));
            }
            return Ok(plan);
        }
        if uid_map.is_empty() || gid_map.is_empty() {
            return Err(invalid(
                "linux.uidMappings",
                "a new user namespace needs linux.uidMappings and linux.gidMappings".to_owned(),
            ));
        }
        check_map("linux.uidMappings", &uid_map)?;
        check_map("linux.gidMappings", &gid_map)?;
        if !uid_map.iter().any(|r| r.host_of(0).is_some()) {
            return Err(invalid(
                "linux.uidMappings",
                "uid 0 of the container is not mapped".to_owned(),
            ));
        }
        if !gid_map.iter().any(|r| r.host_of(0).is_some()) {
            return Err(invalid(
                "linux.gidMappings",
                "gid 0 of the container is not mapped".to_owned(),
            ));
        }
        if !Uid::effective().is_root() {
            check_owned(
                "linux.uidMappings",
                &uid_map,
                Uid::effective().as_raw(),
                "/etc/subuid",
            )?;
            check_owned(
                "linux.gidMappings",
                &gid_map,
                Gid::effective().as_raw(),
                "/etc/subgid",
            )?;
            plan.set_groups = false;
        }
        plan.uid_map = uid_map;
        plan.gid_map = gid_map;
        Ok(plan)
    }

    /// The host uid and gid of the container's root (for permission checks of the rootfs).
    pub(crate) fn host_root(&self) -> Option<(u32, u32)> {
        let uid = self.uid_map.iter().find_map(|r| r.host_of(0))?;
        let gid = self.gid_map.iter().find_map(|r| r.host_of(0))?;
        Some((uid, gid))
    }

    /// Writes the maps of the init `pid` (in the parent, while the init waits).
    pub(crate) fn write_maps(&self, pid: i32) -> Result<(), RuntimeError> {
        if !self.set_groups {
            write_proc(pid, "setgroups", "deny")?;
        }
        write_proc(pid, "uid_map", &map_text(&self.uid_map))?;
        write_proc(pid, "gid_map", &map_text(&self.gid_map))
    }

    /// In the init, once in the namespace: become its root.
    pub(crate) fn become_root(&self) -> Result<(), Failure> {
        let root = Path::new("");
        let zero_gid = Gid::from_raw(0);
        let zero_uid = Uid::from_raw(0);
        nix::unistd::setresgid(zero_gid, zero_gid, zero_gid).map_err(at(Step::SetUser, root))?;
        if self.set_groups {
            nix::unistd::setgroups(&[]).map_err(at(Step::SetUser, root))?;
        }
        nix::unistd::setresuid(zero_uid, zero_uid, zero_uid).map_err(at(Step::SetUser, root))
    }
}

fn map_text(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
        .collect()
}

fn write_proc(pid: i32, file: &str, text: &str) -> Result<(), RuntimeError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, text).map_err(|e| RuntimeError::host("write id map", path, e))
}

/// An unprivileged caller may map only its own id and the ranges `/etc/subuid` (or
/// `/etc/subgid`) grants it (what newuidmap would allow).
fn check_owned(
    field: &'static str,
    map: &[IdRange],
    own: u32,
    file: &str,
) -> Result<(), RuntimeError> {
    let user = nix::unistd::User::from_uid(Uid::from_raw(own))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| own.to_string());
    let granted = subordinate_ids(Path::new(file), &user, own).unwrap_or_default();
    for range in map {
        let own_id = range.size == 1 && range.host == own;
        let inside = granted.iter().any(|(start, count)| {
            u64::from(range.host) >= u64::from(*start)
                && u64::from(range.host) + u64::from(range.size)
                    <= u64::from(*start) + u64::from(*count)
        });
        if !own_id && !inside {
            return Err(invalid(
                field,
                format!(
                    "host ids {}-{} are not granted to {user} in {file}",
                    range.host,
                    u64::from(range.host) + u64::from(range.size) - 1
                ),
            ));
        }
    }
    Ok(())
}

/// The ranges (`start`, `count`) a `/etc/subuid`-style file grants the user `name` (or
/// `uid`, which such files may use instead of the name).
pub fn subordinate_ids(file: &Path, name: &str, uid: u32) -> std::io::Result<Vec<(u32, u32)>> {
    let text = std::fs::read_to_string(file)?;
    Ok(parse_subordinate(&text, name, uid))
}

fn parse_subordinate(text: &str, name: &str, uid: u32) -> Vec<(u32, u32)> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let (who, start, count) = (fields.next()?, fields.next()?, fields.next()?);
            if who != name && who != uid {
                return None;
            }
            Some((start.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

/// Refuses a rootfs the container's root cannot reach: every directory on the way needs a
/// search (x) bit for the mapped root, which is no owner of host files.
pub(crate) fn check_reachable(rootfs: &Path, uid: u32, gid: u32) -> Result<(), RuntimeError> {
    use std::os::unix::fs::MetadataExt;
    for dir in rootfs.ancestors() {
        let meta = std::fs::metadata(dir).map_err(|e| RuntimeError::host("stat rootfs", dir, e))?;
        let mode = meta.mode();
        let bit = if meta.uid() == uid {
            0o100
        } else if meta.gid() == gid {
            0o010
        } else {
            0o001
        };
        if mode & bit == 0 {
            return Err(invalid(
                "root.path",
                format!(
                    "{} (mode {:o}, owner {}:{}) cannot be searched by the container's root (host uid {uid}, gid {gid})",
                    dir.display(),
                    mode & 0o7777,
                    meta.uid(),
                    meta.gid()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(container: u32, host: u32, size: u32) -> IdRange {
        IdRange {
            container,
            host,
            size,
        }
    }

    #[test]
    fn maps_are_checked() {
        check_map("f", &[range(0, 100_000, 65_536)]).expect("one range");
        check_map("f", &[range(0, 1000, 1), range(1, 100_000, 65_535)]).expect("two");
        let err = check_map("f", &[range(0, 100_000, 10), range(5, 200_000, 10)]).unwrap_err();
        assert!(
            err.to_string().contains("overlap inside the container"),
            "{err}"
        );
        let err = check_map("f", &[range(0, 100_000, 10), range(10, 100_005, 10)]).unwrap_err();
        assert!(err.to_string().contains("overlap on the host"), "{err}");
        let err = check_map("f", &[range(0, 1, 0)]).unwrap_err();
        assert!(err.to_string().contains("size 0"), "{err}");
        let err = check_map("f", &[range(0, u32::MAX - 1, 2)]).unwrap_err();
        assert!(err.to_string().contains("largest id"), "{err}");
        let many: Vec<IdRange> = (0..341).map(|i| range(i, 1000 + i, 1)).collect();
        assert!(check_map("f", &many).is_err());
    }

    #[test]
    fn host_of_maps_inside_the_range() {
        let r = range(0, 100_000, 65_536);
        assert_eq!(r.host_of(0), Some(100_000));
        assert_eq!(r.host_of(65_535), Some(165_535));
        assert_eq!(r.host_of(65_536), None);
        assert_eq!(range(1, 5, 1).host_of(0), None);
    }

    #[test]
    fn subordinate_files_parse_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:10\nbad line\n";
        assert_eq!(
            parse_subordinate(text, "alice", 1000),
            vec![(100_000, 65_536)]
        );
        assert_eq!(
            parse_subordinate(text, "carol", 1001),
            vec![(200_000, 1000)]
        );
        assert!(parse_subordinate(text, "dave", 7).is_empty());
    }

    #[test]
    fn an_unsearchable_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = dir.path().join("bundle/rootfs");
        std::fs::create_dir_all(&rootfs).expect("mkdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::set_permissions(
            dir.path().join("bundle"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod");
        let err = check_reachable(&rootfs, 100_000, 100_000).unwrap_err();
        assert!(err.to_string().contains("cannot be searched"), "{err}");
        std::fs::set_permissions(
            dir.path().join("bundle"),
            std::fs::Permissions::from_mode(0o711),
        )
        .expect("chmod");
        check_reachable(&rootfs, 100_000, 100_000).expect("reachable");
    }
}
