//! Integration tests of the builder with others: docker-py's `images.build`, a real dockerd
//! loading what berth built, `ADD` of URLs from a loopback server, a context larger than the
//! disk, a daemon stopped in the middle of a `RUN`.

use std::process::Command;
use std::time::Duration;

use crate::Test;
use crate::build::{berth_build, context, mounts_under};
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    ("build_docker_py_images_build", build_docker_py_images_build),
    (
        "build_daemon_killed_mid_run_removes_the_step_at_start",
        build_daemon_killed_mid_run_removes_the_step_at_start,
    ),
];

/// Issue 13: docker-py's `images.build` and `APIClient.build` (path, fileobj and custom
/// contexts, tag, buildargs, target, nocache, rm/forcerm, labels, network_mode, a Dockerfile
/// outside the context, the streamed lines and the returned image; a failing `RUN` raises
/// `BuildError` with its message). The script is `build_docker_py.py`.
fn build_docker_py_images_build(env: &TestEnv) {
    let has_py = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_py {
        crate::skip("docker-py is not installed (scripts/deps.sh installs it)");
    }
    let work = env.root.join("build/docker-py");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let script = work.join("build_docker_py.py");
    std::fs::write(&script, include_str!("build_docker_py.py")).unwrap();
    let mut c = Command::new("python3");
    c.arg(&script).arg(env.host()).arg(&work);
    let out = crate::hardening::run_within(c, Duration::from_secs(300))
        .expect("the docker-py build script took more than 300 s");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim().ends_with("ok"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The processes whose cgroup path names `id`.
fn processes_of(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        if cgroup.contains(id) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Issue 13: a daemon killed while a `RUN sleep` step runs. The step's container (its
/// process, mount, cgroup, record and scratch) is removed at the next daemon start, and the
/// builder builds again.
fn build_daemon_killed_mid_run_removes_the_step_at_start(env: &TestEnv) {
    use std::io::BufRead;
    let before = env.berth(&["ps", "-aq", "--no-trunc"]).ok();
    let mounts_before = mounts_under(env);
    let dir = context(
        env,
        "killed",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo started && sleep 120\n",
        )],
    );
    let mut child = env.berth_spawn(&[
        "build",
        "--no-cache",
        "-t",
        "bt-killed",
        dir.to_str().unwrap(),
    ]);
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.lines().any(|l| l == "started") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the build ended early: {seen}"
        );
        seen.push_str(&line);
    }
    let now = env.berth(&["ps", "-aq", "--no-trunc"]).ok();
    let step: Vec<&str> = now
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .collect();
    assert_eq!(step.len(), 1, "one step container: {now}");
    let id = step[0].to_owned();
    assert!(!processes_of(&id).is_empty(), "the step runs in its cgroup");
    env.stop_daemon(libc::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
    env.start_daemon();
    let after = env.berth(&["ps", "-aq", "--no-trunc"]).ok();
    let container_dir = env.data_root.join("containers").join(&id);
    let run_dir = env.run_root.join("containers").join(&id);
    let gone = env.eventually(10, || processes_of(&id).is_empty());
    assert_eq!(
        after, before,
        "the interrupted step's container is gone at start"
    );
    assert!(
        gone,
        "the step's processes are gone: {:?}",
        processes_of(&id)
    );
    assert!(!container_dir.exists(), "{} stays", container_dir.display());
    assert!(!run_dir.exists(), "{} stays", run_dir.display());
    assert_eq!(
        mounts_under(env),
        mounts_before,
        "the step's rootfs mount stays"
    );
    let cgroups: Vec<_> = std::fs::read_dir(format!(
        "/sys/fs/cgroup/{}",
        crate::harness::cgroup_parent()
    ))
    .map(|rd| {
        rd.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    })
    .unwrap_or_else(|_| Vec::new());
    assert!(
        !cgroups.iter().any(|c| c.contains(&id)),
        "its cgroup stays: {cgroups:?}"
    );
    for sub in ["builder/tmp", "builder/steps"] {
        let left = std::fs::read_dir(env.data_root.join(sub)).unwrap().count();
        assert_eq!(left, 0, "{sub} is not empty");
    }
    assert_ne!(
        env.berth(&["image", "inspect", "bt-killed"]).code,
        0,
        "nothing tagged"
    );
    // The builder works after it.
    let again = context(
        env,
        "killed-after",
        &[("Dockerfile", "FROM busybox\nRUN echo fine > /f\n")],
    );
    berth_build(env, &again, &["-t", "bt-killed-after"]).ok();
    env.berth(&["rmi", "bt-killed-after"]).ok();
}
