//! Integration tests of the builder with others: docker-py's `images.build`, a real dockerd
//! loading what berth built, `ADD` of URLs from a loopback server, a context larger than the
//! disk, a daemon stopped in the middle of a `RUN`.

use std::process::Command;
use std::time::Duration;

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[("build_docker_py_images_build", build_docker_py_images_build)];

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
