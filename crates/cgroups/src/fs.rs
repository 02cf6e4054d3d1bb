//! Small helpers for cgroup files: each maps I/O errors to [`CgroupError`] with the path,
//! and reads treat a missing file as "nothing to report" where the callers want that.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::CgroupError;

/// Writes `value` to a cgroup file, which must exist (cgroup files cannot be created).
/// `O_TRUNC` is ignored by cgroupfs but keeps plain-file fixtures readable.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Like [`write`], but a missing file (a feature the kernel lacks, such as swap accounting)
/// is skipped: returns whether the file was written.
pub(crate) fn write_if_present(path: &Path, value: &str) -> Result<bool, CgroupError> {
    match write_raw(path, value) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CgroupError::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        }),
    }
}

/// Writes `value` to `dir/file` for a limit the caller asked for: a missing file in an
/// existing directory means the kernel does not offer `controller` there.
pub(crate) fn write_limit(
    dir: &Path,
    file: &str,
    value: &str,
    controller: &'static str,
) -> Result<(), CgroupError> {
    let path = dir.join(file);
    match write_raw(&path, value) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.is_dir() => {
            Err(CgroupError::Unsupported { controller, path })
        }
        Err(source) => Err(CgroupError::Write {
            path,
            value: value.to_string(),
            source,
        }),
    }
}

/// Writes `value` to `dir/file` for the OCI `setting`: a missing file means the host cannot
/// apply it ([`CgroupError::NotSupported`], naming the setting and the file).
pub(crate) fn write_setting(
    dir: &Path,
    file: &str,
    value: &str,
    setting: &'static str,
) -> Result<(), CgroupError> {
    let path = dir.join(file);
    match write_raw(&path, value) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(CgroupError::NotSupported {
            setting,
            reason: format!("this host's kernel has no {}", path.display()),
        }),
        Err(source) => Err(CgroupError::Write {
            path,
            value: value.to_string(),
            source,
        }),
    }
}

/// The refusal of `setting` on a host without `controller`.
pub(crate) fn no_controller(setting: &'static str, controller: &str) -> CgroupError {
    CgroupError::NotSupported {
        setting,
        reason: format!("this host has no {controller} cgroup controller"),
    }
}

/// The raw write, for callers that must look at the errno before wrapping it.
pub(crate) fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    file.write_all(value.as_bytes())
}

/// Reads a cgroup file; `None` when it does not exist.
pub(crate) fn read(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(content) => Ok(Some(content)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Io {
            op: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a single-number file; missing, empty or `max` read as 0 (stats report zero, not
/// an error, for what the kernel does not track).
pub(crate) fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    Ok(read(path)?
        .and_then(|content| content.trim().parse().ok())
        .unwrap_or(0))
}

/// The value of `key` in a flat-keyed file (`key value` per line: `memory.stat`,
/// `cpu.stat`, `cgroup.events`, `memory.oom_control`).
pub(crate) fn keyed_value(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        if name == key {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Reads `key` from a flat-keyed file; 0 when the file or key is missing.
pub(crate) fn read_keyed(path: &Path, key: &str) -> Result<u64, CgroupError> {
    Ok(read(path)?
        .and_then(|content| keyed_value(&content, key))
        .unwrap_or(0))
}

/// Creates `dir` (and missing parents); returns whether `dir` itself was new. The common
/// case, parents present, costs one `mkdir`.
pub(crate) fn make_dir(dir: &Path) -> Result<bool, CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent).map_err(|source| CgroupError::Io {
                    op: "create",
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            match fs::create_dir(dir) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(source) => Err(CgroupError::Io {
                    op: "create",
                    path: dir.to_path_buf(),
                    source,
                }),
            }
        }
        Err(source) => Err(CgroupError::Io {
            op: "create",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes a cgroup directory; a missing one is fine. While it is busy (its last processes
/// are still exiting, or the container made child cgroups) it removes child directories and
/// retries with short sleeps until `deadline`.
pub(crate) fn remove_dir(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let mut pause = Duration::from_millis(1);
    loop {
        let err = match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        let busy = matches!(
            err.kind(),
            io::ErrorKind::ResourceBusy | io::ErrorKind::DirectoryNotEmpty
        );
        let now = Instant::now();
        if !busy || now >= deadline {
            return Err(CgroupError::Io {
                op: "remove",
                path: dir.to_path_buf(),
                source: err,
            });
        }
        remove_child_dirs(dir, deadline)?;
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Removes the cgroups nested in `dir` (cgroupfs files vanish with their directory, so
/// only directories need removing).
fn remove_child_dirs(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Io {
                op: "list",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_dir(&entry.path(), deadline)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_value_finds_exact_keys_only() {
        let stat = "cache 10\ntotal_inactive_file 4096\ninactive_file 7\n";
        assert_eq!(keyed_value(stat, "inactive_file"), Some(7));
        assert_eq!(keyed_value(stat, "total_inactive_file"), Some(4096));
        assert_eq!(keyed_value(stat, "rss"), None);
    }

    #[test]
    fn read_u64_treats_missing_and_max_as_zero() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pids.max");
        assert_eq!(read_u64(&file).unwrap(), 0);
        fs::write(&file, "max\n").unwrap();
        assert_eq!(read_u64(&file).unwrap(), 0);
        fs::write(&file, "64\n").unwrap();
        assert_eq!(read_u64(&file).unwrap(), 64);
    }

    #[test]
    fn write_needs_an_existing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("memory.max");
        let err = write(&file, "1").unwrap_err();
        assert!(matches!(err, CgroupError::Write { .. }), "{err}");
        assert!(!write_if_present(&file, "1").unwrap());
        let err = write_limit(tmp.path(), "memory.max", "1", "memory").unwrap_err();
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
        fs::write(&file, "max\n").unwrap();
        write(&file, "1048576").unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "1048576");
    }

    #[test]
    fn make_dir_creates_parents_and_reports_new() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("berth/abc");
        assert!(make_dir(&dir).unwrap());
        assert!(!make_dir(&dir).unwrap());
        assert!(dir.is_dir());
    }

    #[test]
    fn remove_dir_takes_children_and_tolerates_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("abc");
        fs::create_dir_all(dir.join("nested/deeper")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        remove_dir(&dir, deadline).unwrap();
        assert!(!dir.exists());
        remove_dir(&dir, deadline).unwrap();
    }

    #[test]
    fn remove_dir_gives_up_at_the_deadline() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("abc");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("stuck"), "").unwrap();
        let started = Instant::now();
        let err = remove_dir(&dir, started + Duration::from_millis(30)).unwrap_err();
        assert!(matches!(err, CgroupError::Io { op: "remove", .. }), "{err}");
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(dir.exists());
    }
}
