//! v2 `cpu` controller: `cpu.max` (`<quota> <period>`, quota `max` for none), `cpu.weight`
//! (1–10000, converted from v1 shares the way Docker and runc do), and `cpu.stat` usage.

use std::path::Path;

use crate::controller::{Limit, Report};
use crate::{CgroupError, Resources, Stats, fs};

/// The v2 cpu controller.
pub(crate) struct Cpu;

/// The kernel's default CFS period, used when only a quota is given.
const DEFAULT_PERIOD_US: u64 = 100_000;

/// Docker's conversion of v1 shares (2–262144) to a v2 weight (1–10000).
pub(crate) fn weight_from_shares(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

impl Limit for Cpu {
    const NAME: &'static str = "cpu";

    fn wanted(resources: &Resources) -> bool {
        resources.cpu_shares.is_some_and(|s| s > 0)
            || resources.cpu_period.is_some_and(|p| p > 0)
            || resources.cpu_quota.is_some_and(|q| q != 0)
            || resources.cpu_idle.is_some()
            || resources.cpu_burst.is_some()
    }

    fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
        if let Some(shares) = resources.cpu_shares.filter(|&s| s > 0) {
            fs::write_limit(
                dir,
                "cpu.weight",
                &weight_from_shares(shares).to_string(),
                Self::NAME,
            )?;
        }
        let period = resources.cpu_period.filter(|&p| p > 0);
        let max = match (resources.cpu_quota.filter(|&q| q != 0), period) {
            (Some(quota), period) if quota > 0 => {
                Some(format!("{quota} {}", period.unwrap_or(DEFAULT_PERIOD_US)))
            }
            (_, Some(period)) => Some(format!("max {period}")),
            (Some(_unlimited), None) => Some("max".to_string()),
            (None, None) => None,
        };
        if let Some(max) = max {
            fs::write_limit(dir, "cpu.max", &max, Self::NAME)?;
        }
        if let Some(burst) = resources.cpu_burst {
            fs::write_setting(dir, "cpu.max.burst", &burst.to_string(), "cpu.burst")?;
        }
        if let Some(idle) = resources.cpu_idle {
            fs::write_setting(dir, "cpu.idle", &idle.to_string(), "cpu.idle")?;
        }
        Ok(())
    }
}

impl Report for Cpu {
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        if let Some(content) = fs::read(&dir.join("cpu.stat"))? {
            let usec = |key| {
                fs::keyed_value(&content, key)
                    .unwrap_or(0)
                    .saturating_mul(1000)
            };
            stats.cpu_usage_ns = usec("usage_usec");
            stats.cpu_user_ns = usec("user_usec");
            stats.cpu_system_ns = usec("system_usec");
            stats.cpu_throttling = crate::Throttling {
                periods: fs::keyed_value(&content, "nr_periods").unwrap_or(0),
                throttled_periods: fs::keyed_value(&content, "nr_throttled").unwrap_or(0),
                throttled_time_ns: usec("throttled_usec"),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn shares_convert_like_docker() {
        assert_eq!(weight_from_shares(2), 1);
        assert_eq!(weight_from_shares(1024), 39);
        assert_eq!(weight_from_shares(512), 20);
        assert_eq!(weight_from_shares(262_144), 10_000);
        assert_eq!(weight_from_shares(1), 1);
        assert_eq!(weight_from_shares(1 << 30), 10_000);
    }

    fn apply(resources: Resources) -> (String, String) {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("cpu.max"), "max 100000\n").unwrap();
        stdfs::write(tmp.path().join("cpu.weight"), "100\n").unwrap();
        Cpu::apply(tmp.path(), &resources).unwrap();
        let read = |f: &str| stdfs::read_to_string(tmp.path().join(f)).unwrap();
        (read("cpu.max"), read("cpu.weight"))
    }

    #[test]
    fn cpu_max_forms() {
        let quota_and_period = Resources {
            cpu_quota: Some(50_000),
            cpu_period: Some(200_000),
            ..Default::default()
        };
        assert_eq!(apply(quota_and_period).0, "50000 200000");
        let quota_only = Resources {
            cpu_quota: Some(50_000),
            ..Default::default()
        };
        assert_eq!(apply(quota_only).0, "50000 100000");
        let period_only = Resources {
            cpu_period: Some(20_000),
            ..Default::default()
        };
        assert_eq!(apply(period_only).0, "max 20000");
        let unlimited = Resources {
            cpu_quota: Some(-1),
            ..Default::default()
        };
        assert_eq!(apply(unlimited).0, "max");
        let shares = Resources {
            cpu_shares: Some(512),
            ..Default::default()
        };
        assert_eq!(
            apply(shares),
            ("max 100000\n".to_string(), "20".to_string())
        );
    }

    #[test]
    fn reports_usage_in_nanoseconds() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(
            tmp.path().join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\nnr_throttled 0\n",
        )
        .unwrap();
        let mut stats = Stats::default();
        Cpu::report(tmp.path(), &mut stats).unwrap();
        assert_eq!(
            (stats.cpu_usage_ns, stats.cpu_user_ns, stats.cpu_system_ns),
            (1_500_000, 1_000_000, 500_000)
        );
        assert!(stats.percpu_usage_ns.is_empty());
    }
}
