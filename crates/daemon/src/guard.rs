//! What the daemon checks before it serves: that no other daemon uses its data root, and that
//! the data root's filesystem can hold overlay upper layers (said at start, not on the first
//! `run`).
//!
//! ```text
//! <data_root>/berth.lock        flock(2)ed by the daemon while it runs; holds its pid
//! <data_root>/overlay-checked   the device the overlay probe last succeeded on (see
//!                               [`check_overlay`])
//! ```
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::MsFlags;

use crate::error::DaemonError;

/// The data root's lock, held while the daemon runs (released when dropped or when the
/// process dies, however it dies).
#[derive(Debug)]
pub struct DataRootLock {
    _lock: Flock<File>,
}

/// `<data_root>/berth.lock`.
pub fn lock_path(data_root: &Path) -> PathBuf {
    data_root.join("berth.lock")
}

/// Takes `<data_root>/berth.lock` and writes this process's pid into it; a data root another
/// daemon holds is refused with that daemon's pid.
pub fn lock_data_root(data_root: &Path) -> Result<DataRootLock, DaemonError> {
    let path = lock_path(data_root);
    let io = |op: &'static str| {
        let path = path.clone();
        move |source| DaemonError::Io { op, path, source }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io("open"))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            let mut file: &File = &lock;
            file.set_len(0).map_err(io("truncate"))?;
            file.rewind().map_err(io("rewind"))?;
            file.write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(io("write"))?;
            Ok(DataRootLock { _lock: lock })
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            Err(DaemonError::DataRootInUse {
                path: data_root.to_owned(),
                pid: if pid.is_empty() { "unknown" } else { pid }.to_owned(),
            })
        }
        Err((_, errno)) => Err(io("lock")(std::io::Error::from(errno))),
    }
}

/// Mounts a small overlay whose upper and work directories are in the data root, in a
/// private mount namespace of a thread of its own (so nothing shows on the host, whatever
/// happens), and says why not if it fails. A daemon that may not make mount namespaces (not
/// root) skips the check.
pub fn check_overlay(data_root: &Path) -> Result<(), DaemonError> {
    // The probe's answer holds as long as the data root is on the same filesystem: a start
    // after a successful probe there skips it (a mount namespace, two mounts: 5 to 200 ms of
    // a cold start on a busy host).
    let marker = data_root.join(OVERLAY_CHECKED);
    let device = std::fs::metadata(data_root)
        .map(|m| std::os::unix::fs::MetadataExt::dev(&m).to_string())
        .ok();
    if device.is_some()
        && std::fs::read_to_string(&marker)
            .ok()
            .is_some_and(|d| Some(d.trim()) == device.as_deref())
    {
        return Ok(());
    }
    probe_in_a_thread(data_root)?;
    if let Some(device) = device {
        // Best effort: without the marker the next start probes again.
        let _ = berth_fs::write_atomic(
            &marker,
            format!("{device}\n").as_bytes(),
            berth_fs::Durability::Volatile,
        );
    }
    Ok(())
}

/// `<data_root>/overlay-checked`: the device number of the filesystem a successful overlay
/// probe ran on.
pub const OVERLAY_CHECKED: &str = "overlay-checked";

fn probe_in_a_thread(data_root: &Path) -> Result<(), DaemonError> {
    let data_root = data_root.to_owned();
    let checked = std::thread::Builder::new()
        .name("overlay-check".into())
        .spawn(move || overlay_probe(&data_root))
        .map_err(|source| DaemonError::Io {
            op: "spawn a thread for the overlay check of",
            path: PathBuf::from("data root"),
            source,
        })?
        .join();
    match checked {
        Ok(result) => result,
        Err(_) => Err(DaemonError::NoOverlay {
            path: PathBuf::from("data root"),
            reason: "the check panicked".into(),
        }),
    }
}

fn overlay_probe(data_root: &Path) -> Result<(), DaemonError> {
    match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS) {
        Ok(()) => {}
        Err(Errno::EPERM) => {
            tracing::debug!("not allowed to make a mount namespace: overlay check skipped");
            return Ok(());
        }
        Err(errno) => {
            return Err(DaemonError::Io {
                op: "unshare the mount namespace to check overlay support on",
                path: data_root.to_owned(),
                source: errno.into(),
            });
        }
    }
    let no_overlay = |reason: String| DaemonError::NoOverlay {
        path: data_root.to_owned(),
        reason,
    };
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| no_overlay(format!("cannot make mounts private: {e}")))?;
    let dir = data_root.join(format!(".overlay-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = (|| {
        for sub in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| no_overlay(format!("cannot create a test directory: {e}")))?;
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            dir.join("lower").display(),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        // `volatile`: the unmount then does not sync the data root's file system (it waited
        // for every dirty page there: 0.6 s of a first start beside a 1.5 GB write). A
        // kernel without the option (before 5.10) is probed with a plain mount.
        berth_runtime::mount_overlayfs(&dir.join("merged"), &data, true).map_err(|e| {
            let fs = filesystem_name(data_root);
            no_overlay(format!(
                "mounting an overlay with its upper layer on {fs} failed: {e}"
            ))
        })?;
        let _ = nix::mount::umount2(&dir.join("merged"), nix::mount::MntFlags::MNT_DETACH);
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The filesystem type of `path` as `/proc/self/mountinfo` names it (the longest mount point
/// that holds it), for the message.
fn filesystem_name(path: &Path) -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let mount_point = fields.nth(4)?;
            let fs_type = line.split(" - ").nth(1)?.split(' ').next()?;
            path.starts_with(mount_point)
                .then(|| (mount_point.len(), fs_type.to_owned()))
        })
        .max()
        .map_or_else(|| "this filesystem".to_owned(), |(_, fs)| fs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = lock_data_root(dir.path()).expect("first");
        let text = std::fs::read_to_string(lock_path(dir.path())).expect("read");
        assert_eq!(text.trim(), std::process::id().to_string());
        match lock_data_root(dir.path()) {
            Err(DaemonError::DataRootInUse { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string());
            }
            other => panic!("{other:?}"),
        }
        drop(held);
        lock_data_root(dir.path()).expect("free again");
    }

    #[test]
    fn filesystem_names_come_from_mountinfo() {
        let name = filesystem_name(Path::new("/proc/self"));
        assert_eq!(name, "proc");
    }
}
