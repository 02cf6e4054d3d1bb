//! v1 `cpu` controller: `cpu.shares` (relative weight) and CFS bandwidth
//! (`cpu.cfs_period_us`, `cpu.cfs_quota_us`; -1 is no quota).

use std::path::Path;

use crate::controller::Limit;
use crate::{CgroupError, Resources, fs};

/// The v1 cpu controller.
pub(crate) struct Cpu;

impl Limit for Cpu {
    const NAME: &'static str = "cpu";

    fn wanted(resources: &Resources) -> bool {
        resources.cpu_shares.is_some_and(|s| s > 0)
            || resources.cpu_period.is_some_and(|p| p > 0)
            || resources.cpu_quota.is_some_and(|q| q != 0)
    }

    fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
        if let Some(shares) = resources.cpu_shares.filter(|&s| s > 0) {
            fs::write_limit(dir, "cpu.shares", &shares.to_string(), Self::NAME)?;
        }
        // The period first: the kernel checks a new quota against the current period.
        if let Some(period) = resources.cpu_period.filter(|&p| p > 0) {
            fs::write_limit(dir, "cpu.cfs_period_us", &period.to_string(), Self::NAME)?;
        }
        if let Some(quota) = resources.cpu_quota.filter(|&q| q != 0) {
            let quota = if quota < 0 { -1 } else { quota };
            fs::write_limit(dir, "cpu.cfs_quota_us", &quota.to_string(), Self::NAME)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn writes_shares_period_and_quota() {
        let tmp = tempfile::tempdir().unwrap();
        for file in ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"] {
            stdfs::write(tmp.path().join(file), "0\n").unwrap();
        }
        let resources = Resources {
            cpu_shares: Some(512),
            cpu_period: Some(50_000),
            cpu_quota: Some(25_000),
            ..Default::default()
        };
        assert!(Cpu::wanted(&resources));
        Cpu::apply(tmp.path(), &resources).unwrap();
        let read = |f: &str| stdfs::read_to_string(tmp.path().join(f)).unwrap();
        assert_eq!(read("cpu.shares"), "512");
        assert_eq!(read("cpu.cfs_period_us"), "50000");
        assert_eq!(read("cpu.cfs_quota_us"), "25000");
        Cpu::apply(
            tmp.path(),
            &Resources {
                cpu_quota: Some(-5),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(read("cpu.cfs_quota_us"), "-1");
        assert!(!Cpu::wanted(&Resources {
            cpu_shares: Some(0),
            ..Default::default()
        }));
    }
}
