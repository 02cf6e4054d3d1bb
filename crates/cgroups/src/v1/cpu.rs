//! v1 `cpu` controller: `cpu.shares` (relative weight), CFS bandwidth
//! (`cpu.cfs_period_us`, `cpu.cfs_quota_us`; -1 is no quota; `cpu.cfs_burst_us`), real-time
//! bandwidth (`cpu.rt_period_us`, `cpu.rt_runtime_us`: only with `CONFIG_RT_GROUP_SCHED`, and
//! a runtime needs as much left in the parent) and `cpu.idle`.

use std::path::Path;

use crate::controller::{Limit, Report};
use crate::{CgroupError, Resources, Stats, Throttling, fs};

/// The v1 cpu controller.
pub(crate) struct Cpu;

impl Report for Cpu {
    /// `cpu.stat`: `nr_periods`, `nr_throttled`, `throttled_time` (ns).
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        if let Some(content) = fs::read(&dir.join("cpu.stat"))? {
            let value = |key| fs::keyed_value(&content, key).unwrap_or(0);
            stats.cpu_throttling = Throttling {
                periods: value("nr_periods"),
                throttled_periods: value("nr_throttled"),
                throttled_time_ns: value("throttled_time"),
            };
        }
        Ok(())
    }
}

impl Limit for Cpu {
    const NAME: &'static str = "cpu";

    fn wanted(resources: &Resources) -> bool {
        resources.cpu_shares.is_some_and(|s| s > 0)
            || resources.cpu_period.is_some_and(|p| p > 0)
            || resources.cpu_quota.is_some_and(|q| q != 0)
            || resources.cpu_realtime_period.is_some()
            || resources.cpu_realtime_runtime.is_some()
            || resources.cpu_idle.is_some()
            || resources.cpu_burst.is_some()
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
        if let Some(burst) = resources.cpu_burst {
            fs::write_setting(dir, "cpu.cfs_burst_us", &burst.to_string(), "cpu.burst")?;
        }
        // The period first, as for CFS.
        if let Some(period) = resources.cpu_realtime_period {
            let value = period.to_string();
            fs::write_setting(dir, "cpu.rt_period_us", &value, "cpu.realtimePeriod")?;
        }
        if let Some(runtime) = resources.cpu_realtime_runtime {
            let value = runtime.to_string();
            fs::write_setting(dir, "cpu.rt_runtime_us", &value, "cpu.realtimeRuntime")?;
        }
        if let Some(idle) = resources.cpu_idle {
            fs::write_setting(dir, "cpu.idle", &idle.to_string(), "cpu.idle")?;
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

    #[test]
    fn realtime_idle_and_burst() {
        let tmp = tempfile::tempdir().unwrap();
        for file in ["cpu.rt_period_us", "cpu.rt_runtime_us", "cpu.idle"] {
            stdfs::write(tmp.path().join(file), "0\n").unwrap();
        }
        let resources = Resources {
            cpu_realtime_period: Some(1_000_000),
            cpu_realtime_runtime: Some(950_000),
            cpu_idle: Some(1),
            ..Default::default()
        };
        assert!(Cpu::wanted(&resources));
        Cpu::apply(tmp.path(), &resources).unwrap();
        let read = |f: &str| stdfs::read_to_string(tmp.path().join(f)).unwrap();
        assert_eq!(read("cpu.rt_period_us"), "1000000");
        assert_eq!(read("cpu.rt_runtime_us"), "950000");
        assert_eq!(read("cpu.idle"), "1");
        // No cpu.cfs_burst_us in this "kernel": refused, naming the setting.
        let err = Cpu::apply(
            tmp.path(),
            &Resources {
                cpu_burst: Some(1000),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("cpu.burst: "), "{err}");
    }
}
