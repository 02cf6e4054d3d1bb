//! The `cpuset` limits: the same files, `cpuset.cpus` and `cpuset.mems`, on v1 and v2 (v1
//! also needs new levels filled in first: `v1::cpuset::initialize`).

use std::path::Path;

use crate::controller::Limit;
use crate::{CgroupError, Resources, fs};

/// The cpuset controller (v1 and v2).
pub(crate) struct Cpuset;

pub(crate) const CPUS: &str = "cpuset.cpus";
pub(crate) const MEMS: &str = "cpuset.mems";

impl Limit for Cpuset {
    const NAME: &'static str = "cpuset";

    fn wanted(resources: &Resources) -> bool {
        resources
            .cpuset_cpus
            .as_deref()
            .is_some_and(|c| !c.is_empty())
            || resources
                .cpuset_mems
                .as_deref()
                .is_some_and(|m| !m.is_empty())
    }

    fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
        if let Some(cpus) = resources.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
            fs::write_limit(dir, CPUS, cpus, Self::NAME)?;
        }
        if let Some(mems) = resources.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
            fs::write_limit(dir, MEMS, mems, Self::NAME)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn missing_file_means_controller_not_enabled() {
        let tmp = tempfile::tempdir().unwrap();
        let resources = Resources {
            cpuset_cpus: Some("0-1".into()),
            ..Default::default()
        };
        let err = Cpuset::apply(tmp.path(), &resources).unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::Unsupported {
                    controller: "cpuset",
                    ..
                }
            ),
            "{err}"
        );
        stdfs::write(tmp.path().join("cpuset.cpus"), "\n").unwrap();
        Cpuset::apply(tmp.path(), &resources).unwrap();
        assert_eq!(
            stdfs::read_to_string(tmp.path().join("cpuset.cpus")).unwrap(),
            "0-1"
        );
    }
}
