//! v1 `net_cls` (`net_cls.classid`) and `net_prio` (`net_prio.ifpriomap`, one `IFACE PRIO`
//! write per interface). cgroup v2 has neither: the runtime refuses them there.

use std::path::Path;

use crate::{CgroupError, Resources, fs};

/// Writes the class id (into the net_cls directory `dir`).
pub(crate) fn apply_class(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
    if let Some(class) = resources.net_class_id {
        fs::write_setting(
            dir,
            "net_cls.classid",
            &class.to_string(),
            "network.classID",
        )?;
    }
    Ok(())
}

/// Writes the priorities (into the net_prio directory `dir`).
pub(crate) fn apply_priorities(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
    for (interface, priority) in &resources.net_priorities {
        fs::write_setting(
            dir,
            "net_prio.ifpriomap",
            &format!("{interface} {priority}"),
            "network.priorities",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn class_and_priorities() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("net_cls.classid"), "0").unwrap();
        stdfs::write(tmp.path().join("net_prio.ifpriomap"), "").unwrap();
        let resources = Resources {
            net_class_id: Some(0x100001),
            net_priorities: vec![("eth0".into(), 5)],
            ..Default::default()
        };
        apply_class(tmp.path(), &resources).unwrap();
        apply_priorities(tmp.path(), &resources).unwrap();
        let read = |f: &str| stdfs::read_to_string(tmp.path().join(f)).unwrap();
        assert_eq!(read("net_cls.classid"), "1048577");
        assert_eq!(read("net_prio.ifpriomap"), "eth0 5");
    }
}
