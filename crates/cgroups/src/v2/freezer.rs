//! v2 freezer, built into every non-root cgroup: writing `1` to `cgroup.freeze` starts
//! freezing; `cgroup.events` reads `frozen 1` once every task is stopped. `0` thaws.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::{CgroupError, fs};

/// How long a freeze may take before it is abandoned.
pub(crate) const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);

/// Freezes the cgroup at `dir` and waits for `cgroup.events` to say so; on timeout it
/// thaws it again and fails.
pub(crate) fn freeze(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    fs::write(&dir.join("cgroup.freeze"), "1")?;
    let started = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        if frozen(dir)? {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            fs::write(&dir.join("cgroup.freeze"), "0")?;
            return Err(CgroupError::FreezeTimeout {
                path: dir.to_path_buf(),
                state: "frozen 0".to_string(),
                waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            });
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Thaws the cgroup at `dir`.
pub(crate) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    fs::write(&dir.join("cgroup.freeze"), "0")
}

/// Whether the cgroup at `dir` is frozen (a missing cgroup is not).
pub(crate) fn frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(fs::read_keyed(&dir.join("cgroup.events"), "frozen")? == 1)
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn freeze_waits_for_events_then_thaw() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("cgroup.freeze"), "0\n").unwrap();
        stdfs::write(tmp.path().join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        freeze(tmp.path(), FREEZE_TIMEOUT).unwrap();
        assert_eq!(
            stdfs::read_to_string(tmp.path().join("cgroup.freeze")).unwrap(),
            "1"
        );
        thaw(tmp.path()).unwrap();
        assert_eq!(
            stdfs::read_to_string(tmp.path().join("cgroup.freeze")).unwrap(),
            "0"
        );
    }

    #[test]
    fn freeze_that_never_completes_times_out_and_thaws() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("cgroup.freeze"), "0\n").unwrap();
        stdfs::write(tmp.path().join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let started = Instant::now();
        let err = freeze(tmp.path(), Duration::from_millis(20)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert!(
            matches!(err, CgroupError::FreezeTimeout { waited_ms: 20, .. }),
            "{err}"
        );
        assert_eq!(
            stdfs::read_to_string(tmp.path().join("cgroup.freeze")).unwrap(),
            "0"
        );
    }
}
