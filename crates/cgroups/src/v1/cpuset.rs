//! v1 `cpuset` controller. A new v1 cpuset starts with empty `cpuset.cpus` and
//! `cpuset.mems`, and no task can join it until both are set, so each new level gets its
//! parent's values. Levels berth creates also get `cgroup.clone_children = 1`, which makes
//! the kernel copy them into later children (each container then costs two reads).

use std::path::Path;

pub(crate) use crate::cpuset::Cpuset;
use crate::cpuset::{CPUS, MEMS};
use crate::{CgroupError, fs};

/// Makes sure `dir` (inside the hierarchy mounted at `mount`) has cpus and mems, copying
/// them down from the nearest initialized ancestor. Returns `dir`'s (cpus, mems).
pub(crate) fn initialize(dir: &Path, mount: &Path) -> Result<(String, String), CgroupError> {
    let cpus = read_trimmed(&dir.join(CPUS))?;
    let mems = read_trimmed(&dir.join(MEMS))?;
    if (!cpus.is_empty() && !mems.is_empty()) || dir == mount {
        return Ok((cpus, mems));
    }
    let Some(parent) = dir.parent() else {
        return Ok((cpus, mems));
    };
    if parent != mount {
        // An intermediate level berth created: let the kernel initialize its future children.
        fs::write_if_present(&parent.join("cgroup.clone_children"), "1")?;
    }
    let (parent_cpus, parent_mems) = initialize(parent, mount)?;
    let cpus = if cpus.is_empty() {
        fs::write(&dir.join(CPUS), &parent_cpus)?;
        parent_cpus
    } else {
        cpus
    };
    let mems = if mems.is_empty() {
        fs::write(&dir.join(MEMS), &parent_mems)?;
        parent_mems
    } else {
        mems
    };
    Ok((cpus, mems))
}

fn read_trimmed(path: &Path) -> Result<String, CgroupError> {
    Ok(fs::read(path)?
        .map(|s| s.trim().to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;
    use crate::Resources;
    use crate::controller::Limit;

    /// A cpuset mount with `berth/<id>` levels the "kernel" populated with empty values.
    fn fixture() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join(CPUS), "0-3\n").unwrap();
        stdfs::write(tmp.path().join(MEMS), "0\n").unwrap();
        for level in ["berth", "berth/abc"] {
            let dir = tmp.path().join(level);
            stdfs::create_dir(&dir).unwrap();
            stdfs::write(dir.join(CPUS), "\n").unwrap();
            stdfs::write(dir.join(MEMS), "\n").unwrap();
            stdfs::write(dir.join("cgroup.clone_children"), "0\n").unwrap();
        }
        tmp
    }

    #[test]
    fn copies_cpus_and_mems_down_every_level() {
        let tmp = fixture();
        let leaf = tmp.path().join("berth/abc");
        let (cpus, mems) = initialize(&leaf, tmp.path()).unwrap();
        assert_eq!((cpus.as_str(), mems.as_str()), ("0-3", "0"));
        let read = |p: &str| stdfs::read_to_string(tmp.path().join(p)).unwrap();
        assert_eq!(read("berth/cpuset.cpus"), "0-3");
        assert_eq!(read("berth/cpuset.mems"), "0");
        assert_eq!(read("berth/abc/cpuset.cpus"), "0-3");
        assert_eq!(read("berth/abc/cpuset.mems"), "0");
        assert_eq!(read("berth/cgroup.clone_children"), "1");
        // The leaf's own clone_children is left alone.
        assert_eq!(read("berth/abc/cgroup.clone_children"), "0\n");
    }

    #[test]
    fn initialized_leaf_costs_no_writes() {
        let tmp = fixture();
        let leaf = tmp.path().join("berth/abc");
        stdfs::write(leaf.join(CPUS), "1\n").unwrap();
        stdfs::write(leaf.join(MEMS), "0\n").unwrap();
        initialize(&leaf, tmp.path()).unwrap();
        assert_eq!(
            stdfs::read_to_string(tmp.path().join("berth/cpuset.cpus")).unwrap(),
            "\n"
        );
    }

    #[test]
    fn applies_requested_cpus() {
        let tmp = fixture();
        let leaf = tmp.path().join("berth/abc");
        let resources = Resources {
            cpuset_cpus: Some("1".into()),
            ..Default::default()
        };
        assert!(Cpuset::wanted(&resources));
        Cpuset::apply(&leaf, &resources).unwrap();
        assert_eq!(stdfs::read_to_string(leaf.join(CPUS)).unwrap(), "1");
    }
}
