//! v1 `freezer` controller: writing `FROZEN` to `freezer.state` starts freezing; the state
//! reads `FREEZING` until every task is stopped, then `FROZEN`. `THAWED` resumes them.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::{CgroupError, fs};

const STATE: &str = "freezer.state";

/// How long a freeze may take before it is abandoned (a task stuck in uninterruptible sleep
/// can hold it in `FREEZING`).
pub(crate) const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);

/// Freezes the cgroup at `dir` and waits until the kernel reports it frozen; on timeout it
/// thaws it again and fails.
pub(crate) fn freeze(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    let path = dir.join(STATE);
    let started = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        // Re-writing FROZEN retries the tasks that could not be frozen on the last pass.
        fs::write(&path, "FROZEN")?;
        let state = fs::read(&path)?.unwrap_or_default();
        let state = state.trim();
        if state == "FROZEN" {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            fs::write(&path, "THAWED")?;
            return Err(CgroupError::FreezeTimeout {
                path: dir.to_path_buf(),
                state: state.to_string(),
                waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            });
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Thaws the cgroup at `dir`.
pub(crate) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    fs::write(&dir.join(STATE), "THAWED")
}

/// Whether the cgroup at `dir` is frozen (a missing cgroup is not).
pub(crate) fn frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(fs::read(&dir.join(STATE))?.is_some_and(|s| s.trim() == "FROZEN"))
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn freeze_and_thaw_write_the_state() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join(STATE), "THAWED\n").unwrap();
        assert!(!frozen(tmp.path()).unwrap());
        freeze(tmp.path(), FREEZE_TIMEOUT).unwrap();
        assert!(frozen(tmp.path()).unwrap());
        thaw(tmp.path()).unwrap();
        assert_eq!(
            stdfs::read_to_string(tmp.path().join(STATE)).unwrap(),
            "THAWED"
        );
        assert!(!frozen(tmp.path()).unwrap());
    }

    #[test]
    fn freeze_of_a_missing_cgroup_fails_with_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let err = freeze(&tmp.path().join("gone"), FREEZE_TIMEOUT).unwrap_err();
        assert!(err.to_string().contains("gone/freezer.state"), "{err}");
    }
}
