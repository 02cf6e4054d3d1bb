//! Who may read a container's files: Docker's modes (dockerd 20.10.9 and later).
//!
//! A container's record and OCI spec hold its environment (`-e PASSWORD=…`), its log holds
//! whatever it printed: none of it is for other users of the host.
//!
//! | path | mode | dockerd |
//! | --- | --- | --- |
//! | `<data_root>` | `0701` | `/var/lib/docker` `0701` |
//! | `<data_root>/containers`, `containers/<id>` | `0710` | the same |
//! | `config.v2.json` | `0600` | the same |
//! | `<id>-json.log[.N]`, `local-logs/container.log[.N.gz]` | `0640` (the monitor creates it) | the same |
//! | `local-logs` | `0710` | |
//! | `hostname`, `hosts`, `resolv.conf` | `0644`: read by the container's users | the same |
//! | `<run_root>` | `0711` | `/var/run/docker` `0700`; berth's API socket lives in it, so its group must pass |
//! | `<run_root>/containers`, run dirs | `0700` | `/run/containerd/…` bundles |
//! | `config.json`, `monitor.json` | `0600` | |
//!
//! A daemon started on an older berth's files tightens them ([`tighten_existing`]); a mode an
//! administrator made stricter is kept.
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The data root.
pub const DATA_ROOT_MODE: u32 = 0o701;
/// The run root (see the module doc for why it is not `0700`).
pub const RUN_ROOT_MODE: u32 = 0o711;
/// `<data_root>/containers` and each container's data dir.
pub const DATA_DIR_MODE: u32 = 0o710;
/// `<run_root>/containers` and each run dir.
pub const RUN_DIR_MODE: u32 = 0o700;
/// Records, OCI specs, monitor configs.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// json-file logs.
pub const LOG_FILE_MODE: u32 = berth_monitor::logfile::LOG_FILE_MODE;

/// Creates `dir` (and missing parents) and leaves it with at most `mode`.
pub fn ensure_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
    {
        Ok(()) => tighten(dir, mode),
        Err(e) => Err(e),
    }
}

/// Removes from `path`'s mode what `mode` does not grant (never widens it; a missing file is
/// left missing).
pub fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    let current = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Ok(()),
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if current & !mode == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))
}

/// Tightens what an older berth left: every container's data dir, record and logs, every run
/// dir with its spec and monitor config. Failures are logged; the daemon still starts.
pub fn tighten_existing(data_root: &Path, run_root: &Path) {
    let log = |path: &Path, r: std::io::Result<()>| {
        if let Err(error) = r {
            tracing::warn!(path = %path.display(), %error, "tightening the mode failed");
        }
    };
    let containers = data_root.join("containers");
    log(&containers, tighten(&containers, DATA_DIR_MODE));
    for dir in subdirs(&containers) {
        log(&dir, tighten(&dir, DATA_DIR_MODE));
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let name = name.to_string_lossy();
            let mode = if name == "config.v2.json" || name == "hostconfig.json" {
                PRIVATE_FILE_MODE
            } else if name.contains("-json.log") {
                LOG_FILE_MODE
            } else {
                continue;
            };
            log(&f.path(), tighten(&f.path(), mode));
        }
    }
    let runs = run_root.join("containers");
    log(&runs, tighten(&runs, RUN_DIR_MODE));
    for dir in subdirs(&runs) {
        log(&dir, tighten(&dir, RUN_DIR_MODE));
        for name in [
            berth_monitor::protocol::SPEC_FILE,
            berth_monitor::protocol::CONFIG_FILE,
            berth_monitor::protocol::EXIT_FILE,
        ] {
            let f = dir.join(name);
            log(&f, tighten(&f, PRIVATE_FILE_MODE));
        }
    }
}

fn subdirs(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn an_old_install_is_tightened_and_a_stricter_mode_kept() {
        let t = tempfile::tempdir().unwrap();
        let (data, run) = (t.path().join("data"), t.path().join("run"));
        let c = data.join("containers/abc");
        let r = run.join("containers/abc");
        for d in [&c, &r] {
            std::fs::create_dir_all(d).unwrap();
        }
        for f in [
            c.join("config.v2.json"),
            c.join("abc-json.log"),
            c.join("abc-json.log.1"),
            c.join("hosts"),
            r.join("config.json"),
            r.join("monitor.json"),
        ] {
            std::fs::write(&f, "x").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        for d in [&c, &r, &data.join("containers"), &run.join("containers")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(
            c.join("abc-json.log.1"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        tighten_existing(&data, &run);
        assert_eq!(mode(&data.join("containers")), 0o710);
        assert_eq!(mode(&c), 0o710);
        assert_eq!(mode(&c.join("config.v2.json")), 0o600);
        assert_eq!(mode(&c.join("abc-json.log")), 0o640);
        assert_eq!(mode(&c.join("abc-json.log.1")), 0o600, "stricter kept");
        assert_eq!(
            mode(&c.join("hosts")),
            0o644,
            "the container's users read it"
        );
        assert_eq!(mode(&run.join("containers")), 0o700);
        assert_eq!(mode(&r), 0o700);
        assert_eq!(mode(&r.join("config.json")), 0o600);
        assert_eq!(mode(&r.join("monitor.json")), 0o600);
    }

    #[test]
    fn dirs_are_made_with_their_mode() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        ensure_dir(&d, 0o710).unwrap();
        assert_eq!(mode(&d), 0o710);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        ensure_dir(&d, 0o710).unwrap();
        assert_eq!(mode(&d), 0o710);
    }
}
