//! Root integration tests: real containers from a busybox rootfs on overlayfs.
//!
//! Root tests (`#[ignore]`d; see `berth_testing`), one at a time ([`crate::SERIAL`]).
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_runtime::{
    InitStdio, OverlayMount, RuntimeError, RuntimeOptions, Spec, base_spec, create_with, exec_with,
};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::SERIAL;

const APPLETS: &[&str] = &[
    "sh", "true", "echo", "cat", "id", "hostname", "ls", "sleep", "grep", "ip", "touch", "mkdir",
    "pwd",
];

/// A busybox rootfs as the lower layer, plus upper/work dirs and a bundle, in a temp dir.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let lower = dir.path().join("lower");
        for sub in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
            fs::create_dir_all(lower.join(sub)).expect("mkdir");
        }
        fs::copy("/bin/busybox", lower.join("bin/busybox")).expect("copy busybox");
        for applet in APPLETS {
            symlink("busybox", lower.join("bin").join(applet)).expect("symlink");
        }
        fs::write(
            lower.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n",
        )
        .expect("passwd");
        fs::write(lower.join("etc/group"), "root:x:0:\nuser:x:1000:\n").expect("group");
        fs::write(lower.join("etc/hostname"), "").expect("hostname");
        for sub in ["upper", "work", "bundle/rootfs"] {
            fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        Fixture { dir }
    }

    fn overlay(&self) -> OverlayMount {
        OverlayMount {
            lowerdirs: vec![self.dir.path().join("lower")],
            upperdir: self.dir.path().join("upper"),
            workdir: self.dir.path().join("work"),
            volatile: false,
        }
    }

    /// Keeps the compiled seccomp program in the temp dir, not in /run/berth.
    fn options(&self) -> RuntimeOptions {
        RuntimeOptions {
            seccomp_cache: Some(self.dir.path().join("seccomp")),
            die_with_parent: false,
        }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
}

fn spec(args: &[&str]) -> Spec {
    let mut spec = base_spec();
    let mut process = spec.process().clone().expect("process");
    process.set_args(Some(args.iter().map(|a| (*a).to_owned()).collect()));
    process.set_env(Some(vec!["PATH=/bin".to_owned(), "HOME=/root".to_owned()]));
    spec.set_process(Some(process));
    spec.set_hostname(Some("berth-test".to_owned()));
    spec
}

/// stdin from /dev/null; stdout and stderr into one pipe; returns the pipe's read end.
fn stdio() -> (InitStdio, OwnedFd) {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    let null = OwnedFd::from(fs::File::open("/dev/null").expect("null"));
    let stdio = InitStdio {
        stdin: null,
        stdout: write.try_clone().expect("dup"),
        stderr: write,
        console: false,
    };
    (stdio, read)
}

/// Kills and reaps a container init when a test ends, passed or not.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.0), nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(self.0), None);
    }
}

fn wait_exit(pid: i32) -> i32 {
    match waitpid(Pid::from_raw(pid), None).expect("waitpid") {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

fn read_all(fd: OwnedFd) -> String {
    let mut out = String::new();
    fs::File::from(fd)
        .read_to_string(&mut out)
        .expect("read output");
    out
}

/// Runs `spec` to completion: (exit code, stdout+stderr).
fn run(spec: &Spec, fixture: &Fixture) -> Result<(i32, String), RuntimeError> {
    let (stdio, output) = stdio();
    let pending = create_with(
        spec,
        &fixture.bundle(),
        Some(&fixture.overlay()),
        stdio,
        &fixture.options(),
    )?;
    let pid = pending.pid();
    let started = pending.start();
    let code = wait_exit(pid);
    started?;
    Ok((code, read_all(output)))
}

fn run_ok(args: &[&str]) -> (i32, String) {
    let fixture = Fixture::new();
    run(&spec(args), &fixture).expect("container runs")
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn exit_codes_come_back() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(run_ok(&["true"]).0, 0);
    assert_eq!(run_ok(&["sh", "-c", "exit 7"]).0, 7);
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn init_is_pid_1_with_its_hostname_and_only_loopback() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (code, out) = run_ok(&["sh", "-c", "echo $$; hostname; ls /sys/class/net"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "1\nberth-test\nlo\n");
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn docker_capabilities_and_seccomp() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (code, out) = run_ok(&[
        "sh",
        "-c",
        "grep -E '^(CapEff|CapBnd|CapInh|Seccomp):' /proc/self/status",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapInh:\t0000000000000000"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // Denied by the profile without CAP_SYS_ADMIN: EPERM from seccomp (mount is not allowed).
    let (code, _) = run_ok(&["sh", "-c", "mkdir /m && busybox mount -t tmpfs t /m"]);
    assert_ne!(code, 0);
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn masked_and_readonly_paths() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (code, out) = run_ok(&[
        "sh",
        "-c",
        "cat /proc/kcore | wc -c; echo 1 > /proc/sys/kernel/ns_last_pid && echo wrote",
    ]);
    assert_ne!(out.lines().last(), Some("wrote"), "{out}");
    assert!(
        out.starts_with("0\n")
            || out.contains("\n0\n")
            || out.lines().next().is_some_and(|l| l.trim() == "0"),
        "{out} ({code})"
    );
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn readonly_root_refuses_writes() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = Fixture::new();
    let mut spec = spec(&[
        "sh",
        "-c",
        "touch /x && echo wrote; touch /dev/shm/y && echo tmpfs-ok",
    ]);
    let mut root = spec.root().clone().expect("root");
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    let (_, out) = run(&spec, &fixture).expect("runs");
    assert!(!out.contains("wrote"), "{out}");
    assert!(out.contains("tmpfs-ok"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn exec_errors_match_docker() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cases = [
        (
            "nosuch",
            "exec: \"nosuch\": executable file not found in $PATH",
            127,
        ),
        (
            "/etc/passwd",
            "exec: \"/etc/passwd\": permission denied",
            126,
        ),
        ("/tmp", "exec: \"/tmp\": is a directory", 126),
        (
            "/nonexistent",
            "exec: \"/nonexistent\": stat /nonexistent: no such file or directory",
            127,
        ),
    ];
    for (arg0, message, code) in cases {
        let fixture = Fixture::new();
        match run(&spec(&[arg0]), &fixture) {
            Err(RuntimeError::Exec {
                message: got,
                exit_code,
            }) => {
                assert_eq!((got.as_str(), exit_code), (message, code));
            }
            other => panic!("{arg0}: expected an exec error, got {other:?}"),
        }
    }
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn user_and_groups() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = Fixture::new();
    let mut spec = spec(&[
        "sh",
        "-c",
        "id -u; id -g; id -G; grep CapEff /proc/self/status",
    ]);
    let mut process = spec.process().clone().expect("process");
    let mut user = process.user().clone();
    user.set_uid(1000);
    user.set_gid(1000);
    user.set_additional_gids(Some(vec![1000, 10]));
    process.set_user(user);
    spec.set_process(Some(process));
    let (code, out) = run(&spec, &fixture).expect("runs");
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["1000", "1000", "1000 10"], "{out}");
    // Docker: a non-root user keeps no effective capabilities.
    assert_eq!(lines[3], "CapEff:\t0000000000000000", "{out}");
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn setup_failures_name_the_step_and_leave_nothing() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = Fixture::new();
    let mut spec = spec(&["true"]);
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let mut bad = oci_spec::runtime::Mount::default();
    bad.set_destination("/data".into());
    bad.set_typ(Some("bind".into()));
    bad.set_source(Some("/nonexistent/source".into()));
    bad.set_options(Some(vec!["rbind".into()]));
    mounts.push(bad);
    spec.set_mounts(Some(mounts));
    let (stdio, _output) = stdio();
    let err = create_with(
        &spec,
        &fixture.bundle(),
        Some(&fixture.overlay()),
        stdio,
        &fixture.options(),
    )
    .expect_err("bad mount");
    let message = err.to_string();
    assert!(message.contains("mount /nonexistent/source"), "{message}");
    // The child was reaped: no children left.
    assert_eq!(
        waitpid(
            Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG)
        )
        .err(),
        Some(nix::Error::ECHILD)
    );
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn exec_joins_a_running_container() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = Fixture::new();
    let spec = spec(&["sleep", "10"]);
    let (init_stdio, _init_output) = stdio();
    let pending = create_with(
        &spec,
        &fixture.bundle(),
        Some(&fixture.overlay()),
        init_stdio,
        &fixture.options(),
    )
    .expect("create");
    let init = pending.pid();
    let _kill_init = KillOnDrop(init);
    pending.start().expect("start");

    let run_exec = |args: &[&str]| {
        let mut process = spec.process().clone().expect("process");
        process.set_args(Some(args.iter().map(|a| (*a).to_owned()).collect()));
        let (exec_stdio, output) = stdio();
        let started = Instant::now();
        let pid = exec_with(init, &spec, &process, exec_stdio, &fixture.options())?;
        let elapsed = started.elapsed();
        let code = wait_exit(pid);
        Ok::<_, RuntimeError>((code, read_all(output), elapsed))
    };
    let (code, out, elapsed) =
        run_exec(&["sh", "-c", "hostname; cat /proc/1/cmdline; echo; echo $$"]).expect("exec");
    println!("exec took {elapsed:?}");
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "berth-test");
    assert_eq!(lines[1], "sleep\u{0}10\u{0}");
    assert_ne!(lines[2], "1", "exec'd process is not the init");
    let err = run_exec(&["nosuch"]).expect_err("not found");
    assert!(
        matches!(err, RuntimeError::Exec { exit_code: 127, .. }),
        "{err}"
    );
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn start_time_median_of_20() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = Fixture::new();
    let spec = spec(&["/bin/true"]);
    let mut times = Vec::new();
    for _ in 0..20 {
        let devnull = || {
            OwnedFd::from(
                fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .expect("null"),
            )
        };
        let stdio = InitStdio {
            stdin: devnull(),
            stdout: devnull(),
            stderr: devnull(),
            console: false,
        };
        let started = Instant::now();
        let pending = create_with(
            &spec,
            &fixture.bundle(),
            Some(&fixture.overlay()),
            stdio,
            &fixture.options(),
        )
        .expect("create");
        let pid = pending.pid();
        pending.start().expect("start");
        assert_eq!(wait_exit(pid), 0);
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "create+start+wait of /bin/true: median {:?} (min {:?}, max {:?})",
        times[10], times[0], times[19]
    );
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn rootfs_paths_stay_on_the_overlay() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = Fixture::new();
    let (code, out) = run(&spec(&["sh", "-c", "echo hi > /root/f; pwd"]), &fixture).expect("runs");
    assert_eq!((code, out.as_str()), (0, "/\n"));
    // The write landed in the upper dir; the host mount table has nothing left.
    assert_eq!(
        fs::read_to_string(fixture.dir.path().join("upper/root/f")).expect("upper"),
        "hi\n"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&fixture.dir.path().to_string_lossy().into_owned()));
    assert!(Path::new("/proc/self").exists());
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn cgroup_limits_apply_and_cleanup_removes_them() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = Fixture::new();
    let cgroup_path = format!("/berth-runtime-test/{}", std::process::id());
    let mut spec = spec(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    let mut linux = spec.linux().clone().expect("linux");
    linux.set_cgroups_path(Some(PathBuf::from(&cgroup_path)));
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut pids = oci_spec::runtime::LinuxPids::default();
    pids.set_limit(42);
    resources.set_pids(Some(pids));
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    let result = run(&spec, &fixture);
    berth_runtime::cleanup(&spec).expect("cleanup");
    let (code, out) = result.expect("runs");
    assert_eq!((code, out.as_str()), (0, "42\n"));
    let host = berth_runtime::cgroup_root();
    assert!(
        !host
            .join("pids")
            .join(cgroup_path.trim_start_matches('/'))
            .exists()
    );
    assert!(!host.join(cgroup_path.trim_start_matches('/')).exists());
    // The parent the test named is ours to remove too.
    for hierarchy in std::fs::read_dir(host).expect("cgroup root").flatten() {
        let _ = std::fs::remove_dir(hierarchy.path().join("berth-runtime-test"));
    }
    let _ = std::fs::remove_dir(host.join("berth-runtime-test"));
}

/// The hooks of a spec handed to `create_with` run too (the monitor's path): createRuntime in
/// the caller before `create_with` returns, poststart once `start` did; a failing
/// createRuntime hook fails `create_with` and leaves no process.
#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn hooks_run_through_create_and_start() {
    berth_testing::require_root();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = Fixture::new();
    let log = fixture.dir.path().join("hooks.log");
    let hook = |name: &str| {
        let mut hook = oci_spec::runtime::Hook::default();
        hook.set_path("/bin/sh".into());
        hook.set_args(Some(vec![
            "sh".into(),
            "-c".into(),
            format!("echo {name} $(cat) >> {}", log.display()),
        ]));
        hook
    };
    let mut spec = spec(&["true"]);
    let mut hooks = oci_spec::runtime::Hooks::default();
    hooks.set_create_runtime(Some(vec![hook("createRuntime")]));
    hooks.set_poststart(Some(vec![hook("poststart")]));
    spec.set_hooks(Some(hooks));
    let (code, _) = run(&spec, &fixture).expect("runs");
    assert_eq!(code, 0);
    let text = fs::read_to_string(&log).expect("hooks ran");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("createRuntime {"), "{text}");
    assert!(lines[0].contains("\"status\":\"creating\""), "{text}");
    assert!(
        lines[0].contains("\"id\":\"bundle\""),
        "the bundle's name: {text}"
    );
    assert!(lines[1].starts_with("poststart {"), "{text}");
    assert!(lines[1].contains("\"status\":\"running\""), "{text}");

    let mut failing = oci_spec::runtime::Hook::default();
    failing.set_path("/bin/false".into());
    let mut hooks = oci_spec::runtime::Hooks::default();
    hooks.set_create_runtime(Some(vec![failing]));
    spec.set_hooks(Some(hooks));
    let (stdio, _output) = stdio();
    let err = create_with(
        &spec,
        &fixture.bundle(),
        Some(&fixture.overlay()),
        stdio,
        &fixture.options(),
    )
    .expect_err("a failing createRuntime hook fails create");
    assert_eq!(
        err.to_string(),
        "hooks.createRuntime /bin/false: exit status 1"
    );
    // Its init was reaped: no child of this process is left.
    assert_eq!(
        waitpid(
            Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG)
        ),
        Err(nix::Error::ECHILD)
    );
}
