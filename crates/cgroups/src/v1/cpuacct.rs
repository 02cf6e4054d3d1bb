//! v1 `cpuacct` controller: CPU time used by the cgroup. `cpuacct.usage` and
//! `cpuacct.usage_percpu` are in nanoseconds; `cpuacct.stat` splits user and system time in
//! USER_HZ ticks.

use std::path::Path;

use crate::controller::Report;
use crate::{CgroupError, Stats, fs};

/// The v1 cpuacct controller.
pub(crate) struct CpuAcct;

/// Nanoseconds per USER_HZ tick. USER_HZ is part of Linux's user ABI and is 100 on every
/// architecture berth runs on, so no `sysconf(_SC_CLK_TCK)` call is needed.
const NS_PER_TICK: u64 = 1_000_000_000 / 100;

impl Report for CpuAcct {
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        stats.cpu_usage_ns = fs::read_u64(&dir.join("cpuacct.usage"))?;
        stats.percpu_usage_ns = fs::read(&dir.join("cpuacct.usage_percpu"))?
            .map(|content| parse_percpu(&content))
            .unwrap_or_default();
        if let Some(content) = fs::read(&dir.join("cpuacct.stat"))? {
            stats.cpu_user_ns = fs::keyed_value(&content, "user")
                .unwrap_or(0)
                .saturating_mul(NS_PER_TICK);
            stats.cpu_system_ns = fs::keyed_value(&content, "system")
                .unwrap_or(0)
                .saturating_mul(NS_PER_TICK);
        }
        Ok(())
    }
}

/// `cpuacct.usage_percpu`: one space-separated number per possible CPU.
fn parse_percpu(content: &str) -> Vec<u64> {
    content
        .split_ascii_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn reports_total_percpu_user_and_system() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("cpuacct.usage"), "406622769275\n").unwrap();
        stdfs::write(
            tmp.path().join("cpuacct.usage_percpu"),
            "211034004160 195588765115 \n",
        )
        .unwrap();
        stdfs::write(tmp.path().join("cpuacct.stat"), "user 36474\nsystem 4188\n").unwrap();
        let mut stats = Stats::default();
        CpuAcct::report(tmp.path(), &mut stats).unwrap();
        assert_eq!(stats.cpu_usage_ns, 406_622_769_275);
        assert_eq!(
            stats.percpu_usage_ns,
            vec![211_034_004_160, 195_588_765_115]
        );
        assert_eq!(stats.cpu_user_ns, 364_740_000_000);
        assert_eq!(stats.cpu_system_ns, 41_880_000_000);
    }

    #[test]
    fn missing_files_are_zero() {
        let tmp = tempfile::tempdir().unwrap();
        let mut stats = Stats::default();
        CpuAcct::report(tmp.path(), &mut stats).unwrap();
        assert_eq!(stats, Stats::default());
    }
}
