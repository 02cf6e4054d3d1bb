//! v1 `pids` controller: `pids.max` (`max` is unlimited) and `pids.current`. The same files
//! exist in v2, so v2 reuses this.

use std::path::Path;

use crate::controller::{Limit, Report};
use crate::{CgroupError, Resources, Stats, fs};

/// The pids controller (identical in v1 and v2).
pub(crate) struct Pids;

impl Limit for Pids {
    const NAME: &'static str = "pids";

    fn wanted(resources: &Resources) -> bool {
        resources.pids_limit.is_some()
    }

    fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
        if let Some(limit) = resources.pids_limit {
            let value = if limit > 0 {
                limit.to_string()
            } else {
                "max".to_string()
            };
            fs::write_limit(dir, "pids.max", &value, Self::NAME)?;
        }
        Ok(())
    }
}

impl Report for Pids {
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        stats.pids_current = fs::read_u64(&dir.join("pids.current"))?;
        stats.pids_limit = fs::read_u64(&dir.join("pids.max"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn limit_and_unlimited() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pids.max");
        stdfs::write(&file, "max\n").unwrap();
        Pids::apply(
            tmp.path(),
            &Resources {
                pids_limit: Some(64),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(stdfs::read_to_string(&file).unwrap(), "64");
        Pids::apply(
            tmp.path(),
            &Resources {
                pids_limit: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(stdfs::read_to_string(&file).unwrap(), "max");
        Pids::apply(
            tmp.path(),
            &Resources {
                pids_limit: Some(-1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(stdfs::read_to_string(&file).unwrap(), "max");
    }

    #[test]
    fn reports_current_and_limit() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("pids.current"), "3\n").unwrap();
        stdfs::write(tmp.path().join("pids.max"), "max\n").unwrap();
        let mut stats = Stats::default();
        Pids::report(tmp.path(), &mut stats).unwrap();
        assert_eq!((stats.pids_current, stats.pids_limit), (3, 0));
        stdfs::write(tmp.path().join("pids.max"), "100\n").unwrap();
        Pids::report(tmp.path(), &mut stats).unwrap();
        assert_eq!(stats.pids_limit, 100);
    }
}
