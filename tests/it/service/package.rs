//! The Debian package on this machine: install, a container run by the on-demand daemon (no
//! systemd as PID 1 here), an upgrade to a newer version with a container running, remove
//! (data kept), purge (data, run root, configuration and group gone).
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run, sh};
use crate::harness::{Run, TestEnv, cgroup_parent, remove_network_state};

/// The package to test: `BERTH_TEST_DEB`, else the newest `target/debian/berth_*.deb`.
fn package() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BERTH_TEST_DEB") {
        return Some(PathBuf::from(path));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

/// The same package as a newer version (`<version>+up1`), repacked with dpkg-deb.
fn newer(deb: &Path, dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    let r = run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    assert_eq!(r.code, 0, "{r:?}");
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).expect("control");
    let text: String = text
        .lines()
        .map(|l| match l.strip_prefix("Version: ") {
            Some(v) => format!("Version: {v}+up1\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&control, text).expect("write control");
    let out = dir.join("berth-newer.deb");
    let r = run(Command::new("dpkg-deb")
        .args(["-Zgzip", "-b"])
        .arg(&tree)
        .arg(&out));
    assert_eq!(r.code, 0, "{r:?}");
    let _ = std::fs::remove_dir_all(&tree);
    out
}

/// The installed berth, as root, with the default socket (no `-H`, no `DOCKER_HOST`).
fn berth(args: &[&str]) -> Run {
    run(Command::new("/usr/bin/berth")
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("BERTH_HOST"))
}

/// Undoes whatever the test left if it fails half-way.
struct Purge(String);

impl Drop for Purge {
    fn drop(&mut self) {
        if Path::new("/usr/bin/berth").exists() {
            let ids = berth(&["ps", "-aq"]).stdout;
            for id in ids.split_whitespace() {
                let _ = berth(&["rm", "-f", id]);
            }
        }
        stop_daemon();
        let _ = run(Command::new("dpkg").args(["-P", "berth"]));
        let _ = remove_network_state(&self.0, &self.0);
    }
}

/// Stops the on-demand daemon (its pid file) and waits for it to go.
fn stop_daemon() {
    let Ok(pid) = std::fs::read_to_string("/run/berth/berth.pid") else {
        return;
    };
    let Ok(pid) = pid.trim().parse::<i32>() else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    for _ in 0..200 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

pub(super) fn install_upgrade_remove_purge(env: &TestEnv) {
    let Some(deb) = package() else {
        crate::skip("no package built (scripts/package.sh builds target/debian/berth_*.deb)")
    };
    let installed = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "berth"]));
    if installed.stdout.contains("ok installed")
        || Path::new("/run/berth/berth.sock").exists()
        || sh("getent group berth").code == 0
    {
        crate::skip("berth is installed or running on this machine: not touching it");
    }
    let table = format!("bpk{}", std::process::id());
    let guard = Purge(table.clone());
    let dir = env.root.join("pkg");
    std::fs::create_dir_all(&dir).expect("mkdir");

    let r = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert_eq!(r.code, 0, "{r:?}");
    for file in [
        "/usr/bin/berth",
        "/lib/systemd/system/berth.service",
        "/lib/systemd/system/berth.socket",
        "/etc/berth/daemon.json",
        "/usr/share/bash-completion/completions/berth",
        "/usr/share/zsh/vendor-completions/_berth",
        "/usr/share/fish/vendor_completions.d/berth.fish",
        "/usr/share/man/man1/berth.1.gz",
        "/usr/share/man/man1/berth-run.1.gz",
        "/usr/share/man/man8/berth-daemon.8.gz",
    ] {
        assert!(Path::new(file).exists(), "{file} installed");
    }
    assert_eq!(sh("getent group berth").code, 0, "postinst made the group");
    let size = run(Command::new("dpkg-query").args(["-W", "-f=${Installed-Size}", "berth"]));
    println!(
        "    measured: installed size {} KiB ({})",
        size.stdout,
        deb.display()
    );

    // This machine is shared: no default bridge, an nft table and cgroup parent of the test's.
    std::fs::write(
        "/etc/berth/daemon.json",
        format!(
            r#"{{"group": "berth", "live-restore": true, "bridge": "none", "nft-table": "{table}", "cgroup-parent": "{}"}}"#,
            cgroup_parent()
        ),
    )
    .expect("configure");
    // No systemd as PID 1: the CLI starts the daemon on demand, as before the package.
    let r = berth(&["run", "--rm", "--network", "none", "hello-world"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello from berth!"), "{r:?}");
    let socket = std::fs::metadata("/run/berth/berth.sock").expect("socket");
    let berth_gid = sh("getent group berth | cut -d: -f3")
        .stdout
        .trim()
        .parse::<u32>();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(Ok(socket.gid()), berth_gid, "the socket's group is berth");

    upgrade_keeps_a_running_container(&deb, &dir);

    // remove: the program goes, the data stays.
    let r = run(Command::new("dpkg").args(["-r", "berth"]));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!Path::new("/usr/bin/berth").exists());
    assert!(
        Path::new("/var/lib/berth/image").is_dir(),
        "data kept on remove"
    );
    assert!(
        !Path::new("/run/berth/berth.pid").exists(),
        "remove stopped the daemon"
    );
    // purge: data, run root, configuration and group go.
    let r = run(Command::new("dpkg").args(["-P", "berth"]));
    assert_eq!(r.code, 0, "{r:?}");
    for gone in ["/var/lib/berth", "/run/berth", "/etc/berth"] {
        assert!(!Path::new(gone).exists(), "{gone} purged");
    }
    assert_ne!(sh("getent group berth").code, 0, "group removed on purge");
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Installs a newer version while a container runs, restarts the daemon under it, and
/// manages the container (logs, exec, stop, exit code) from the new daemon.
fn upgrade_keeps_a_running_container(deb: &Path, dir: &Path) {
    berth(&["image", "bootstrap", "busybox"]).ok();
    berth(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo before; sleep 1000",
    ])
    .ok();
    let old_daemon = std::fs::read_to_string("/run/berth/berth.pid").expect("pid");

    // Upgrade with the container running, then restart the daemon under the new package.
    let newer = newer(deb, dir);
    let r = run(Command::new("dpkg")
        .args(["-i", "--force-confold"])
        .arg(&newer));
    assert_eq!(r.code, 0, "{r:?}");
    // postinst stopped the old daemon (no systemd here); the next command starts the new one.
    let old_pid = old_daemon.trim();
    assert!(
        !Path::new(&format!("/proc/{old_pid}")).exists(),
        "the upgrade stopped daemon {old_pid}"
    );
    assert_eq!(
        berth(&["inspect", "--format", "{{.State.Status}}", "survivor"]).ok(),
        "running"
    );
    let new_daemon = std::fs::read_to_string("/run/berth/berth.pid").expect("pid");
    assert_ne!(old_daemon, new_daemon, "a new daemon serves");
    assert!(berth(&["logs", "survivor"]).ok().contains("before"));
    assert_eq!(berth(&["exec", "survivor", "echo", "hi"]).ok(), "hi");
    berth(&["stop", "-t", "1", "survivor"]).ok();
    assert_eq!(
        berth(&["inspect", "--format", "{{.State.ExitCode}}", "survivor"]).ok(),
        "137"
    );
    berth(&["rm", "survivor"]).ok();
}
