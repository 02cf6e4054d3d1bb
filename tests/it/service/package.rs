//! The Debian package on this machine: built by `scripts/package.sh` (dpkg-deb) from the
//! suite's berth and from a second, distinct build of it (`target/upgrade/berth`, built by
//! `scripts/test.sh` with another `BERTH_BUILD_VERSION`), checked by lintian; install (the
//! postinst builds hello-world, no daemon runs), a container run by the
//! on-demand daemon (no systemd as PID 1 here), an upgrade to the second build with a
//! container running, remove (containers stopped, host state gone, data kept), purge (data,
//! run root, configuration and group gone).
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run, sh};
use crate::harness::{Run, TestEnv, berth_exe, remove_network_state};

/// The link `deb-systemd-helper enable berth.socket` makes (with or without systemd running).
const SOCKET_ENABLED: &str = "/etc/systemd/system/sockets.target.wants/berth.socket";

/// The second build the upgrade installs (`scripts/test.sh` makes it).
fn upgrade_exe() -> PathBuf {
    std::env::var_os("BERTH_TEST_UPGRADE_EXE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/upgrade/berth"),
        PathBuf::from,
    )
}

/// `berth version`'s client version of a binary.
fn version_of(exe: &Path) -> String {
    let r = run(Command::new(exe).arg("--version"));
    r.stdout
        .strip_prefix("berth version ")
        .and_then(|v| v.split(',').next())
        .unwrap_or_default()
        .to_owned()
}

/// Packages `exe` with `scripts/package.sh` (gzip: fast), returns the .deb's path.
fn package(exe: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let r = run(Command::new(root.join("scripts/package.sh"))
        .env("BERTH_EXE", exe)
        .env("BERTH_DEB_COMPRESSION", "gzip")
        .env_remove("BERTH_DEB_VERSION"));
    assert_eq!(r.code, 0, "{r:?}");
    root.join(r.stdout.trim())
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
    let next = upgrade_exe();
    if !next.exists() {
        crate::skip(
            "no second build to upgrade to (scripts/test.sh builds target/upgrade/berth with BERTH_BUILD_VERSION)",
        )
    }
    let installed = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "berth"]));
    if installed.stdout.contains("ok installed")
        || Path::new("/run/berth/berth.sock").exists()
        || sh("getent group berth").code == 0
    {
        crate::skip("berth is installed or running on this machine: not touching it");
    }
    let (first_version, next_version) = (version_of(&berth_exe()), version_of(&next));
    assert!(
        !first_version.is_empty() && first_version != next_version,
        "two distinct builds: {first_version:?}, {next_version:?}"
    );
    let started = std::time::Instant::now();
    let deb = package(&berth_exe());
    let newer = package(&next);
    println!(
        "    measured: both packages built in {} ms ({}, {})",
        started.elapsed().as_millis(),
        deb.display(),
        newer.display()
    );
    lint(&deb);
    let table = format!("bpk{}", std::process::id());
    let parent = format!("berth-pkg-{}", std::process::id());
    let guard = Purge(table.clone());
    let dir = env.root.join("pkg");
    std::fs::create_dir_all(&dir).expect("mkdir");

    let r = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert_eq!(r.code, 0, "{r:?}");
    installed_as_expected();
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
            r#"{{"group": "berth", "live-restore": true, "bridge": "none", "nft-table": "{table}", "cgroup-parent": "{parent}"}}"#
        ),
    )
    .expect("configure");
    // No systemd as PID 1: the CLI starts the daemon on demand, as before the package.
    let r = berth(&["run", "--rm", "--network", "none", "hello-world"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello from berth!"), "{r:?}");
    assert!(
        !r.stderr.contains("Unable to find image"),
        "postinst built hello-world: {r:?}"
    );
    let socket = std::fs::metadata("/run/berth/berth.sock").expect("socket");
    let berth_gid = sh("getent group berth | cut -d: -f3")
        .stdout
        .trim()
        .parse::<u32>();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(Ok(socket.gid()), berth_gid, "the socket's group is berth");
    assert_eq!(server_version(), first_version);

    upgrade_keeps_a_running_container(&newer, &next_version);
    remove_stops_everything_and_keeps_data(&table, &parent);

    // purge: data, run root, configuration and group go.
    let r = run(Command::new("dpkg").args(["-P", "berth"]));
    assert_eq!(r.code, 0, "{r:?}");
    for gone in ["/var/lib/berth", "/run/berth", "/etc/berth"] {
        assert!(!Path::new(gone).exists(), "{gone} purged");
    }
    assert_ne!(sh("getent group berth").code, 0, "group removed on purge");
    assert!(
        !Path::new(SOCKET_ENABLED).exists(),
        "socket's enablement purged"
    );
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What `dpkg -i` must leave: the package's files (as its md5sums say), the group, the
/// socket enabled, and no daemon running (postinst built hello-world without one).
fn installed_as_expected() {
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
        "/usr/share/man/man1/berth-system-reset.1.gz",
        "/usr/share/man/man8/berth-daemon.8.gz",
        "/usr/share/doc/berth/copyright",
    ] {
        assert!(Path::new(file).exists(), "{file} installed");
    }
    let r = run(Command::new("dpkg").args(["-V", "berth"]));
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "md5sums match: {r:?}");
    assert_eq!(sh("getent group berth").code, 0, "postinst made the group");
    assert!(
        !Path::new("/run/berth/berth.pid").exists(),
        "postinst started no daemon"
    );
    assert!(
        Path::new(SOCKET_ENABLED).exists(),
        "the socket is enabled for when systemd runs"
    );
}

/// lintian finds no error or warning (beyond `packaging/lintian-overrides`, each with its
/// reason) in the package.
fn lint(deb: &Path) {
    assert!(
        Command::new("lintian").arg("--version").output().is_ok(),
        "lintian is not installed (scripts/deps.sh installs it)"
    );
    let started = std::time::Instant::now();
    let r = run(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--no-tag-display-limit"])
        .arg(deb));
    assert_eq!(r.code, 0, "lintian: {}{}", r.stdout, r.stderr);
    println!(
        "    measured: lintian clean in {} ms",
        started.elapsed().as_millis()
    );
}

/// The daemon's version (`/version`).
fn server_version() -> String {
    berth(&["version", "--format", "{{.Server.Version}}"]).ok()
}

/// Installs the second build while a container runs; the next command starts the new daemon,
/// which manages the container (logs, exec, stop, exit code).
fn upgrade_keeps_a_running_container(newer: &Path, next_version: &str) {
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
    let init = berth(&["inspect", "--format", "{{.State.Pid}}", "survivor"]).ok();
    let old_daemon = std::fs::read_to_string("/run/berth/berth.pid").expect("pid");

    let r = run(Command::new("dpkg")
        .args(["-i", "--force-confold"])
        .arg(newer));
    assert_eq!(r.code, 0, "{r:?}");
    // postinst stopped the old daemon (no systemd here); the next command starts the new one.
    let old_pid = old_daemon.trim();
    assert!(
        !Path::new(&format!("/proc/{old_pid}")).exists(),
        "the upgrade stopped daemon {old_pid}"
    );
    assert_eq!(
        berth(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.Pid}}",
            "survivor"
        ])
        .ok(),
        format!("running {init}")
    );
    let new_daemon = std::fs::read_to_string("/run/berth/berth.pid").expect("pid");
    assert_ne!(old_daemon, new_daemon, "a new daemon serves");
    assert_eq!(server_version(), next_version, "the new build serves");
    let exe = std::fs::read_link(format!("/proc/{}/exe", new_daemon.trim())).expect("exe");
    assert_eq!(exe, Path::new("/usr/bin/berth"), "from the installed file");
    assert!(berth(&["logs", "survivor"]).ok().contains("before"));
    assert_eq!(berth(&["exec", "survivor", "echo", "hi"]).ok(), "hi");
    berth(&["stop", "-t", "1", "survivor"]).ok();
    assert_eq!(
        berth(&["inspect", "--format", "{{.State.ExitCode}}", "survivor"]).ok(),
        "137"
    );
    berth(&["rm", "survivor"]).ok();
}

/// `dpkg -r` with a container running on a user network: the container, the daemon, the
/// bridge, the nft table, the cgroups and the run root go; images and the record stay.
fn remove_stops_everything_and_keeps_data(table: &str, parent: &str) {
    let network = format!("pk{}", std::process::id());
    let network_id = berth(&["network", "create", &network]).ok();
    let bridge = format!("br-{}", &network_id[..12]);
    let id = berth(&[
        "run",
        "-d",
        "--network",
        &network,
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let init = berth(&["inspect", "--format", "{{.State.Pid}}", &id]).ok();
    assert!(Path::new("/sys/class/net").join(&bridge).exists());

    let r = run(Command::new("dpkg").args(["-r", "berth"]));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!Path::new("/usr/bin/berth").exists());
    assert!(
        !Path::new(&format!("/proc/{init}")).exists(),
        "remove stopped the container"
    );
    assert!(
        !Path::new("/run/berth/berth.pid").exists(),
        "remove stopped the daemon"
    );
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "{bridge} removed"
    );
    assert_ne!(
        sh(&format!("nft list table ip {table} >/dev/null 2>&1")).code,
        0,
        "nft table removed"
    );
    let cgroups = sh(&format!(
        "ls -d /sys/fs/cgroup/{parent} /sys/fs/cgroup/*/{parent} 2>/dev/null"
    ));
    assert_eq!(cgroups.stdout, "", "cgroup parent removed");
    assert!(!Path::new("/run/berth").exists(), "run root removed");
    assert!(
        Path::new("/var/lib/berth/image").is_dir()
            && Path::new("/var/lib/berth/containers").join(&id).is_dir(),
        "data kept on remove"
    );
}
