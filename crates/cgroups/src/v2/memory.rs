//! v2 `memory` controller: `memory.max`, `memory.swap.max` (swap alone, where Docker's
//! `memory_swap` is memory + swap), `memory.low` for the reservation, and
//! `memory.current`, `memory.stat`, `memory.events` for stats.

use std::path::Path;

use crate::controller::{Limit, Report};
use crate::{CgroupError, Resources, Stats, fs};

/// The v2 memory controller.
pub(crate) struct Memory;

/// Docker's 0 means "not set".
fn set(value: Option<i64>) -> Option<i64> {
    value.filter(|&v| v != 0)
}

/// v2 spells "unlimited" `max`.
fn bytes(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

impl Limit for Memory {
    const NAME: &'static str = "memory";

    fn wanted(resources: &Resources) -> bool {
        set(resources.memory).is_some()
            || set(resources.memory_swap).is_some()
            || set(resources.memory_reservation).is_some()
    }

    fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
        let memory = set(resources.memory);
        if let Some(memory) = memory {
            fs::write_limit(dir, "memory.max", &bytes(memory), Self::NAME)?;
        }
        let swap = match (set(resources.memory_swap), memory) {
            (Some(total), _) if total < 0 => Some("max".to_string()),
            // The caller validates memory_swap ≥ memory; a smaller value means no swap.
            (Some(total), Some(memory)) if memory > 0 => {
                Some(total.saturating_sub(memory).max(0).to_string())
            }
            // Without a memory limit, "memory + swap" has no swap part to compute.
            _ => None,
        };
        if let Some(swap) = swap {
            // Absent when the kernel does not account swap (Docker warns and goes on).
            fs::write_if_present(&dir.join("memory.swap.max"), &swap)?;
        }
        if let Some(reservation) = set(resources.memory_reservation) {
            fs::write_limit(dir, "memory.low", &bytes(reservation), Self::NAME)?;
        }
        Ok(())
    }
}

impl Report for Memory {
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        stats.memory_usage = fs::read_u64(&dir.join("memory.current"))?;
        let limit = match fs::read(&dir.join("memory.max"))? {
            Some(content) if content.trim() == "max" => crate::host_mem_total(),
            Some(content) => crate::cap_to_host_memory(content.trim().parse().unwrap_or(0)),
            None => 0,
        };
        stats.memory_limit = limit;
        stats.memory_inactive_file = fs::read_keyed(&dir.join("memory.stat"), "inactive_file")?;
        if let Some(content) = fs::read(&dir.join("memory.stat"))? {
            stats.memory_stat = crate::keyed_list(&content);
        }
        Ok(())
    }
}

/// Whether the kernel's OOM killer killed a process of the cgroup.
pub(crate) fn oom_killed(dir: &Path) -> Result<bool, CgroupError> {
    Ok(fs::read_keyed(&dir.join("memory.events"), "oom_kill")? > 0)
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    fn fixture() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for file in ["memory.max", "memory.swap.max", "memory.low"] {
            stdfs::write(tmp.path().join(file), "max\n").unwrap();
        }
        tmp
    }

    fn read(dir: &Path, file: &str) -> String {
        stdfs::read_to_string(dir.join(file)).unwrap()
    }

    #[test]
    fn swap_is_the_difference() {
        let tmp = fixture();
        let resources = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            memory_reservation: Some(16 << 20),
            ..Default::default()
        };
        Memory::apply(tmp.path(), &resources).unwrap();
        assert_eq!(read(tmp.path(), "memory.max"), "67108864");
        assert_eq!(read(tmp.path(), "memory.swap.max"), "67108864");
        assert_eq!(read(tmp.path(), "memory.low"), "16777216");
    }

    #[test]
    fn equal_memory_and_swap_means_no_swap_and_minus_one_is_max() {
        let tmp = fixture();
        let resources = Resources {
            memory: Some(1 << 20),
            memory_swap: Some(1 << 20),
            ..Default::default()
        };
        Memory::apply(tmp.path(), &resources).unwrap();
        assert_eq!(read(tmp.path(), "memory.swap.max"), "0");
        let resources = Resources {
            memory: Some(-1),
            memory_swap: Some(-1),
            ..Default::default()
        };
        Memory::apply(tmp.path(), &resources).unwrap();
        assert_eq!(read(tmp.path(), "memory.max"), "max");
        assert_eq!(read(tmp.path(), "memory.swap.max"), "max");
    }

    #[test]
    fn reports_current_max_and_inactive_file() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("memory.current"), "2097152\n").unwrap();
        stdfs::write(tmp.path().join("memory.max"), "67108864\n").unwrap();
        stdfs::write(
            tmp.path().join("memory.stat"),
            "anon 1\nfile 2\ninactive_file 4096\nactive_file 9\n",
        )
        .unwrap();
        let mut stats = Stats::default();
        Memory::report(tmp.path(), &mut stats).unwrap();
        assert_eq!(
            (
                stats.memory_usage,
                stats.memory_limit,
                stats.memory_inactive_file
            ),
            (2 << 20, 64 << 20, 4096)
        );
        stdfs::write(tmp.path().join("memory.max"), "max\n").unwrap();
        Memory::report(tmp.path(), &mut stats).unwrap();
        assert_eq!(stats.memory_limit, crate::host_mem_total());
    }

    #[test]
    fn oom_kill_from_events() {
        let tmp = tempfile::tempdir().unwrap();
        let events = tmp.path().join("memory.events");
        stdfs::write(
            &events,
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\noom_group_kill 0\n",
        )
        .unwrap();
        assert!(!oom_killed(tmp.path()).unwrap());
        stdfs::write(
            &events,
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert!(oom_killed(tmp.path()).unwrap());
    }
}
