//! `berth system reset`: with a daemon serving, a container running on a user network and a
//! volume, it asks first (no answer changes nothing), then with `-f` stops the daemon and the
//! container and removes the cgroups, the bridge, the nft table, the mounts, the run root and
//! the data root, one line for each.
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Private, run, sh};
use crate::harness::{Run, TestEnv, berth_exe};

/// `berth system reset ARGS` with the daemon's own flags, `stdin` written to it.
fn reset(daemon: &Private, args: &[&str], stdin: &str) -> Run {
    let daemon_args: Vec<_> = daemon
        .command(&berth_exe(), &[])
        .get_args()
        .skip(1)
        .map(|a| a.to_owned())
        .collect();
    let mut child = Command::new(berth_exe())
        .args(["system", "reset"])
        .args(args)
        .args(daemon_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth system reset");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether the cgroup exists in the v2 hierarchy or in any v1 controller's.
fn cgroup_exists(parent: &str) -> bool {
    let root = Path::new("/sys/fs/cgroup");
    root.join(parent).is_dir()
        || std::fs::read_dir(root)
            .map(|d| d.flatten().any(|c| c.path().join(parent).is_dir()))
            .unwrap_or(false)
}

fn nft_table_exists(table: &str) -> bool {
    sh(&format!("nft list table ip {table} >/dev/null 2>&1")).code == 0
}

pub(super) fn removes_everything(env: &TestEnv) {
    let mut daemon = Private::new(env, "sr", "{}");
    // A cgroup parent of this test's own: the reset removes it.
    daemon.cgroup_parent = format!("berth-reset-{}", std::process::id());
    daemon.start(&[]);
    daemon.berth(&["image", "bootstrap", "busybox"]).ok();
    let network = format!("sr{}", std::process::id());
    let network_id = daemon.berth(&["network", "create", &network]).ok();
    let bridge = format!("br-{}", &network_id[..12]);
    assert!(Path::new("/sys/class/net").join(&bridge).exists());
    daemon.berth(&["volume", "create", "srvol"]).ok();
    let id = daemon
        .berth(&[
            "run",
            "-d",
            "--network",
            &network,
            "-v",
            "srvol:/data",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok();
    let init: i32 = daemon
        .berth(&["inspect", "--format", "{{.State.Pid}}", &id])
        .ok()
        .parse()
        .expect("pid");
    assert!(cgroup_exists(&format!("{}/{id}", daemon.cgroup_parent)));
    assert!(nft_table_exists(&daemon.table));

    // Asked, and not confirmed: nothing changes.
    let r = reset(&daemon, &[], "n\n");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("Are you sure you want to continue? [y/N]"),
        "{r:?}"
    );
    assert_eq!(
        daemon
            .berth(&["inspect", "--format", "{{.State.Status}}", &id])
            .ok(),
        "running"
    );

    let started = Instant::now();
    let r = reset(&daemon, &["-f"], "");
    println!(
        "    measured: berth system reset -f: {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(r.code, 0, "{r:?}");
    let daemon_pid = daemon.pid();
    let dir = daemon.dir.display().to_string();
    for line in [
        format!("stopped the berth daemon (pid {daemon_pid})"),
        format!("stopped container {}", &id[..12]),
        format!("removed cgroup {}", daemon.cgroup_parent),
        format!("removed bridge {bridge}"),
        format!("removed nft table ip {}", daemon.table),
        format!("removed {dir}/r"),
        format!("removed {dir}/data"),
    ] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(&line)),
            "{line:?} in {}",
            r.stdout
        );
    }
    let mut child = daemon.child.take().expect("the daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the daemon still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !Path::new(&format!("/proc/{init}")).exists(),
        "the container's process is gone"
    );
    assert!(
        !cgroup_exists(&daemon.cgroup_parent),
        "cgroup parent removed"
    );
    assert!(!Path::new("/sys/class/net").join(&bridge).exists());
    assert!(!nft_table_exists(&daemon.table));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.lines().any(|l| l.contains(&dir)),
        "mounts left under {dir}"
    );
    assert!(!daemon.dir.join("data").exists() && !daemon.dir.join("r").exists());
    let iptables = run(Command::new("iptables").args(["-w", "5", "-S", "FORWARD"]));
    assert!(!iptables.stdout.contains(&bridge), "{}", iptables.stdout);

    // Nothing left: a second reset has nothing to say.
    let r = reset(&daemon, &["-f"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "", "{r:?}");
}
