//! v1 `memory` controller: `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` (memory +
//! swap; absent when the kernel does not account swap), `memory.soft_limit_in_bytes`,
//! `memory.swappiness`, `memory.oom_control` (also read for stats), `memory.kmem.limit_in_bytes`
//! (kernels since 6.1 accept and ignore writes there: read back, and refused when ignored) and
//! `memory.kmem.tcp.limit_in_bytes`; usage and `memory.stat` for stats.

use std::io;
use std::path::Path;

use crate::controller::{Limit, Report};
use crate::{CgroupError, Resources, Stats, fs};

/// The v1 memory controller.
pub(crate) struct Memory;

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";

/// Docker's 0 means "not set"; -1 is "unlimited", which the kernel also spells -1.
fn set(value: Option<i64>) -> Option<i64> {
    value.filter(|&v| v != 0)
}

impl Limit for Memory {
    const NAME: &'static str = "memory";

    fn wanted(resources: &Resources) -> bool {
        set(resources.memory).is_some()
            || set(resources.memory_swap).is_some()
            || set(resources.memory_reservation).is_some()
            || resources.memory_swappiness.is_some()
            || resources.oom_kill_disable.is_some()
            || resources.kernel_memory.is_some()
            || resources.kernel_memory_tcp.is_some()
    }

    fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
        apply_limits(dir, resources)?;
        if let Some(swappiness) = resources.memory_swappiness {
            fs::write_setting(
                dir,
                "memory.swappiness",
                &swappiness.to_string(),
                "memory.swappiness",
            )?;
        }
        if let Some(disable) = resources.oom_kill_disable {
            let value = if disable { "1" } else { "0" };
            fs::write_setting(dir, "memory.oom_control", value, "memory.disableOOMKiller")?;
        }
        if let Some(kernel) = resources.kernel_memory {
            apply_kernel(dir, kernel)?;
        }
        if let Some(tcp) = resources.kernel_memory_tcp {
            fs::write_setting(
                dir,
                "memory.kmem.tcp.limit_in_bytes",
                &tcp.to_string(),
                "memory.kernelTCP",
            )?;
        }
        Ok(())
    }
}

/// `memory.kmem.limit_in_bytes`, read back: since Linux 6.1 the kernel takes the write and
/// keeps no limit, which would leave the setting silently ignored.
fn apply_kernel(dir: &Path, kernel: i64) -> Result<(), CgroupError> {
    const FILE: &str = "memory.kmem.limit_in_bytes";
    fs::write_setting(dir, FILE, &kernel.to_string(), "memory.kernel")?;
    if kernel < 0 {
        return Ok(());
    }
    let kept = fs::read(&dir.join(FILE))?
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(-1);
    // The kernel rounds a limit down to whole pages.
    if kept > kernel || kept < kernel - 65536 {
        return Err(CgroupError::NotSupported {
            setting: "memory.kernel",
            reason: format!(
                "this host's kernel no longer enforces kernel memory limits ({} reads {kept} after writing {kernel})",
                dir.join(FILE).display()
            ),
        });
    }
    Ok(())
}

/// The memory and memory + swap limits and the soft limit.
fn apply_limits(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
    let limit = set(resources.memory);
    let memsw = set(resources.memory_swap);
    match (limit, memsw) {
        (Some(limit), Some(memsw)) => apply_both(dir, limit, memsw)?,
        (Some(limit), None) => fs::write_limit(dir, LIMIT, &limit.to_string(), Memory::NAME)?,
        (None, Some(memsw)) => {
            fs::write_if_present(&dir.join(MEMSW_LIMIT), &memsw.to_string())?;
        }
        (None, None) => {}
    }
    if let Some(reservation) = set(resources.memory_reservation) {
        fs::write_limit(
            dir,
            "memory.soft_limit_in_bytes",
            &reservation.to_string(),
            Memory::NAME,
        )?;
    }
    Ok(())
}

/// The kernel keeps memsw ≥ limit at every step: when raising, memsw must go first; when
/// lowering, the limit. Try the limit first and, if the current memsw is in the way
/// (EINVAL), swap the order.
fn apply_both(dir: &Path, limit: i64, memsw: i64) -> Result<(), CgroupError> {
    let limit_path = dir.join(LIMIT);
    let limit_value = limit.to_string();
    let memsw_path = dir.join(MEMSW_LIMIT);
    let memsw_value = memsw.to_string();
    match fs::write_raw(&limit_path, &limit_value) {
        Ok(()) => {
            fs::write_if_present(&memsw_path, &memsw_value)?;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            if fs::write_if_present(&memsw_path, &memsw_value)? {
                fs::write(&limit_path, &limit_value)
            } else {
                Err(CgroupError::Write {
                    path: limit_path,
                    value: limit_value,
                    source: e,
                })
            }
        }
        Err(_) => fs::write_limit(dir, LIMIT, &limit_value, Memory::NAME),
    }
}

impl Report for Memory {
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        stats.memory_usage = fs::read_u64(&dir.join("memory.usage_in_bytes"))?;
        stats.memory_limit = crate::cap_to_host_memory(fs::read_u64(&dir.join(LIMIT))?);
        stats.memory_inactive_file =
            fs::read_keyed(&dir.join("memory.stat"), "total_inactive_file")?;
        if let Some(content) = fs::read(&dir.join("memory.stat"))? {
            stats.memory_stat = crate::keyed_list(&content);
        }
        stats.memory_max_usage = fs::read(&dir.join("memory.max_usage_in_bytes"))?
            .and_then(|content| content.trim().parse().ok());
        Ok(())
    }
}

/// Whether the kernel's OOM killer killed a process of the cgroup.
pub(crate) fn oom_killed(dir: &Path) -> Result<bool, CgroupError> {
    Ok(fs::read_keyed(&dir.join("memory.oom_control"), "oom_kill")? > 0)
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    fn fixture() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for file in [LIMIT, MEMSW_LIMIT, "memory.soft_limit_in_bytes"] {
            stdfs::write(tmp.path().join(file), "9223372036854771712\n").unwrap();
        }
        tmp
    }

    fn read(dir: &Path, file: &str) -> String {
        stdfs::read_to_string(dir.join(file)).unwrap()
    }

    #[test]
    fn writes_limit_swap_and_reservation() {
        let tmp = fixture();
        let resources = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            memory_reservation: Some(32 << 20),
            ..Default::default()
        };
        assert!(Memory::wanted(&resources));
        Memory::apply(tmp.path(), &resources).unwrap();
        assert_eq!(read(tmp.path(), LIMIT), "67108864");
        assert_eq!(read(tmp.path(), MEMSW_LIMIT), "134217728");
        assert_eq!(read(tmp.path(), "memory.soft_limit_in_bytes"), "33554432");
    }

    #[test]
    fn zero_means_unset_and_minus_one_unlimited() {
        let tmp = fixture();
        let untouched = Resources {
            memory: Some(0),
            ..Default::default()
        };
        assert!(!Memory::wanted(&untouched));
        Memory::apply(tmp.path(), &untouched).unwrap();
        assert_eq!(read(tmp.path(), LIMIT), "9223372036854771712\n");
        Memory::apply(
            tmp.path(),
            &Resources {
                memory: Some(-1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(read(tmp.path(), LIMIT), "-1");
    }

    #[test]
    fn swappiness_oom_and_kernel_tcp() {
        let tmp = fixture();
        for (file, content) in [
            ("memory.swappiness", "60\n"),
            ("memory.oom_control", "oom_kill_disable 0\n"),
            ("memory.kmem.tcp.limit_in_bytes", "9223372036854771712\n"),
            ("memory.kmem.limit_in_bytes", "9223372036854771712\n"),
        ] {
            stdfs::write(tmp.path().join(file), content).unwrap();
        }
        let resources = Resources {
            memory_swappiness: Some(10),
            oom_kill_disable: Some(true),
            kernel_memory_tcp: Some(1 << 20),
            ..Default::default()
        };
        assert!(Memory::wanted(&resources));
        Memory::apply(tmp.path(), &resources).unwrap();
        assert_eq!(read(tmp.path(), "memory.swappiness"), "10");
        assert_eq!(read(tmp.path(), "memory.oom_control"), "1");
        assert_eq!(
            read(tmp.path(), "memory.kmem.tcp.limit_in_bytes"),
            "1048576"
        );
        // A kernel that keeps what it was given enforces it (plain files do).
        let kernel = Resources {
            kernel_memory: Some(64 << 20),
            ..Default::default()
        };
        Memory::apply(tmp.path(), &kernel).unwrap();
        assert_eq!(read(tmp.path(), "memory.kmem.limit_in_bytes"), "67108864");
    }

    #[test]
    fn a_missing_swappiness_file_is_refused_naming_the_setting() {
        let tmp = fixture();
        let err = Memory::apply(
            tmp.path(),
            &Resources {
                memory_swappiness: Some(10),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("memory.swappiness: "), "{err}");
    }

    #[test]
    fn missing_swap_accounting_is_skipped() {
        let tmp = fixture();
        stdfs::remove_file(tmp.path().join(MEMSW_LIMIT)).unwrap();
        let resources = Resources {
            memory: Some(8 << 20),
            memory_swap: Some(16 << 20),
            ..Default::default()
        };
        Memory::apply(tmp.path(), &resources).unwrap();
        assert_eq!(read(tmp.path(), LIMIT), "8388608");
        assert!(!tmp.path().join(MEMSW_LIMIT).exists());
    }

    #[test]
    fn missing_limit_file_is_unsupported() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Memory::apply(
            tmp.path(),
            &Resources {
                memory: Some(1 << 30),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::Unsupported {
                    controller: "memory",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn reports_usage_limit_and_inactive_file() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("memory.usage_in_bytes"), "5242880\n").unwrap();
        stdfs::write(tmp.path().join(LIMIT), "67108864\n").unwrap();
        stdfs::write(
            tmp.path().join("memory.stat"),
            "cache 4096\ninactive_file 8192\ntotal_cache 4096\ntotal_inactive_file 12288\n",
        )
        .unwrap();
        let mut stats = Stats::default();
        Memory::report(tmp.path(), &mut stats).unwrap();
        assert_eq!(stats.memory_usage, 5 << 20);
        assert_eq!(stats.memory_limit, 64 << 20);
        assert_eq!(stats.memory_inactive_file, 12288);
    }

    #[test]
    fn unlimited_reports_host_memory() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join(LIMIT), "9223372036854771712\n").unwrap();
        let mut stats = Stats::default();
        Memory::report(tmp.path(), &mut stats).unwrap();
        assert_eq!(stats.memory_limit, crate::host_mem_total());
        assert!(stats.memory_limit > 0);
    }

    #[test]
    fn oom_kill_counter() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!oom_killed(tmp.path()).unwrap());
        let file = tmp.path().join("memory.oom_control");
        stdfs::write(&file, "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n").unwrap();
        assert!(!oom_killed(tmp.path()).unwrap());
        stdfs::write(&file, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert!(oom_killed(tmp.path()).unwrap());
    }
}
