//! `berth oci` (runc's command-line contract) end to end, through the `berth-oci` example
//! binary that cargo builds alongside the tests. A root test (`#[ignore]`d; see `berth_testing`).
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// target/<profile>/examples/berth-oci, next to target/<profile>/deps/<this test>.
fn oci_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("examples/berth-oci")
}

fn oci(root: &Path, args: &[&str]) -> Output {
    Command::new(oci_binary())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run berth-oci")
}

/// `create` hands its stdio to the container init (as runc does), so capture into files:
/// pipes would stay open as long as the container runs.
fn oci_create(root: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
    let err_path = dir.join("create.err");
    let status = Command::new(oci_binary())
        .arg("--root")
        .arg(root)
        .arg("create")
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(dir.join("create.out")).expect("out file"))
        .stderr(fs::File::create(&err_path).expect("err file"))
        .status()
        .expect("run berth-oci");
    (
        status.success(),
        fs::read_to_string(err_path).unwrap_or_default(),
    )
}

/// Kills the test container if the test fails half-way.
struct KillOnDrop(PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(&self.0).map(|p| p.trim().parse::<i32>().unwrap_or(0))
            && pid > 0
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn state(root: &Path, id: &str) -> serde_json::Value {
    let out = oci(root, &["state", id]);
    assert!(
        out.status.success(),
        "state: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("state json")
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn create_start_state_kill_delete() {
    berth_testing::require_root();
    let _serial = crate::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        oci_binary().exists(),
        "{} not built (cargo test builds the examples)",
        oci_binary().display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("state");
    let bundle = dir.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    for sub in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        fs::create_dir_all(rootfs.join(sub)).expect("mkdir");
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy");
    for applet in ["sh", "sleep", "echo"] {
        symlink("busybox", rootfs.join("bin").join(applet)).expect("symlink");
    }
    let mut spec = berth_runtime::base_spec();
    let mut process = spec.process().clone().expect("process");
    process.set_args(Some(vec!["sleep".into(), "30".into()]));
    spec.set_process(Some(process));
    spec.set_annotations(Some(
        [("org.example.test".to_owned(), "yes".to_owned())].into(),
    ));
    fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&spec).expect("json"),
    )
    .expect("config");

    let pid_file = dir.path().join("pid");
    let _kill = KillOnDrop(pid_file.clone());
    let bundle_arg = bundle.to_str().expect("utf8");
    let pid_arg = pid_file.to_str().expect("utf8");
    let (ok, err) = oci_create(
        &root,
        dir.path(),
        &["--bundle", bundle_arg, "--pid-file", pid_arg, "c1"],
    );
    assert!(ok, "create: {err}");
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file")
        .parse()
        .expect("pid");
    let created = state(&root, "c1");
    assert_eq!(created["status"], "created");
    assert_eq!(created["pid"], pid);
    assert_eq!(created["annotations"]["org.example.test"], "yes");
    let (ok, err) = oci_create(&root, dir.path(), &["--bundle", bundle_arg, "c1"]);
    assert!(!ok && err.contains("already exists"), "duplicate id: {err}");

    let out = oci(&root, &["start", "c1"]);
    assert!(
        out.status.success(),
        "start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&root, "c1")["status"], "running");
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert_eq!(cmdline, "sleep\u{0}30\u{0}");
    assert!(
        !oci(&root, &["delete", "c1"]).status.success(),
        "running needs --force"
    );

    assert!(oci(&root, &["kill", "c1", "KILL"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while state(&root, "c1")["status"] != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(state(&root, "c1")["status"], "stopped");
    assert!(oci(&root, &["delete", "c1"]).status.success());
    assert!(!root.join("c1").exists());
    assert!(!oci(&root, &["state", "c1"]).status.success());
}
