//! dockerd's daemon-scoped `--cpu-rt-period`/`--cpu-rt-runtime`: a real-time budget for the
//! cgroup parent of the containers (v1 `cpu.rt_period_us`, `cpu.rt_runtime_us`), so that a
//! container's own `--cpu-rt-runtime` fits under it. The kernel gives a new cgroup no
//! real-time time at all; a child's budget must fit in its parent's, so the values are
//! written into every ancestor from the top down (as dockerd's `initCPURtController`).
use std::path::{Component, Path, PathBuf};

use crate::{Cgroup, CgroupError, CgroupVersion};

/// dockerd's refusal on a unified (v2) host.
pub const NOT_ON_V2: &str =
    "daemon-scoped cpu-rt-period and cpu-rt-runtime are not implemented for cgroup v2";
/// dockerd's refusal where the kernel lacks real-time group scheduling.
pub const NOT_IN_KERNEL: &str =
    "daemon-scoped cpu-rt-period and cpu-rt-runtime are not supported by the kernel";

/// A daemon-scoped real-time budget, in microseconds (0 or `None`: not set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtBudget {
    /// `cpu.rt_period_us`.
    pub period: Option<i64>,
    /// `cpu.rt_runtime_us`.
    pub runtime: Option<i64>,
}

impl RtBudget {
    /// Whether anything is set.
    pub fn is_set(&self) -> bool {
        self.period.unwrap_or(0) != 0 || self.runtime.unwrap_or(0) != 0
    }

    /// Whether the host under `root` (normally `/sys/fs/cgroup`) can take the budget: the
    /// daemon's start-up check, refused in dockerd's words.
    pub fn check(&self, root: &Path) -> Result<PathBuf, CgroupError> {
        let refused = |reason: &str| CgroupError::Refused {
            message: reason.to_owned(),
        };
        if Cgroup::detect(root) == CgroupVersion::V2 {
            return Err(refused(NOT_ON_V2));
        }
        let cpu = crate::v1::resolve_mount(root, "cpu").ok_or_else(|| refused(NOT_IN_KERNEL))?;
        if !cpu.join("cpu.rt_runtime_us").exists() || !cpu.join("cpu.rt_period_us").exists() {
            return Err(refused(NOT_IN_KERNEL));
        }
        Ok(cpu)
    }

    /// Writes the budget into the cgroup `parent` (e.g. `/berth`) and each of its ancestors,
    /// top down, creating them; nothing when unset.
    pub fn apply(&self, root: &Path, parent: &str) -> Result<(), CgroupError> {
        if !self.is_set() {
            return Ok(());
        }
        let mut dir = self.check(root)?;
        for part in Path::new(parent).components() {
            let Component::Normal(part) = part else {
                continue;
            };
            dir.push(part);
            std::fs::create_dir_all(&dir).map_err(|source| CgroupError::Io {
                op: "create",
                path: dir.clone(),
                source,
            })?;
            for (file, value) in [
                ("cpu.rt_period_us", self.period),
                ("cpu.rt_runtime_us", self.runtime),
            ] {
                let Some(value) = value.filter(|v| *v != 0) else {
                    continue;
                };
                crate::fs::write(&dir.join(file), &value.to_string())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_in_dockerds_words_and_written_top_down() {
        let t = tempfile::tempdir().unwrap();
        let budget = RtBudget {
            period: Some(1_000_000),
            runtime: Some(95_000),
        };
        assert!(!RtBudget::default().is_set());
        // No cpu hierarchy with real-time files: the kernel's refusal.
        assert_eq!(
            budget.check(t.path()).unwrap_err().to_string(),
            NOT_IN_KERNEL
        );
        // A unified hierarchy: v2's.
        let v2 = t.path().join("v2");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("cgroup.controllers"), "cpu").unwrap();
        assert_eq!(budget.check(&v2).unwrap_err().to_string(), NOT_ON_V2);
        // A v1 cpu hierarchy (plain files stand for the kernel's).
        let cpu = t.path().join("v1/cpu");
        std::fs::create_dir_all(&cpu).unwrap();
        for f in ["cpu.rt_runtime_us", "cpu.rt_period_us"] {
            std::fs::write(cpu.join(f), "0").unwrap();
        }
        // cgroupfs makes a new cgroup's files with it; plain directories need them made.
        for dir in ["b", "b/c"] {
            std::fs::create_dir_all(cpu.join(dir)).unwrap();
            for f in ["cpu.rt_runtime_us", "cpu.rt_period_us"] {
                std::fs::write(cpu.join(dir).join(f), "0").unwrap();
            }
        }
        budget.apply(&t.path().join("v1"), "/b/c").unwrap();
        for dir in ["b", "b/c"] {
            let read = |f: &str| std::fs::read_to_string(cpu.join(dir).join(f)).unwrap();
            assert_eq!(read("cpu.rt_runtime_us"), "95000", "{dir}");
            assert_eq!(read("cpu.rt_period_us"), "1000000", "{dir}");
        }
        // The hierarchy's root is the kernel's, never written.
        assert_eq!(
            std::fs::read_to_string(cpu.join("cpu.rt_runtime_us")).unwrap(),
            "0"
        );
    }
}
