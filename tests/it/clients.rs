//! Real clients' scenarios against berth (issue 14, item 11): docker-compose 1.29
//! (`tests/clients/compose.py`) and docker-py (`tests/clients/dockerpy.py`), each a script
//! that prints a line per step and exits non-zero if one failed. Their pass counts beside
//! dockerd 20.10's on the same machine are in `tests/clients/RESULTS.md`. bollard's published
//! integration tests (`tests/clients/bollard.py`: the crate's own `tests/`, built from its
//! crates.io source into `target/bollard`, pulling images from a `berth registry serve` on
//! 127.0.0.1) must keep passing the tests listed in `tests/clients/bollard/expected-passes.txt`.
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    ("clients_compose_scenario", clients_compose_scenario),
    ("clients_docker_py_scenarios", clients_docker_py_scenarios),
    (
        "clients_bollard_published_tests",
        clients_bollard_published_tests,
    ),
    (
        "clients_bollard_found_differences",
        clients_bollard_found_differences,
    ),
];

/// Runs `script` with `DOCKER_HOST` on the test daemon, bounded by `limit`; its output.
fn run_script(env: &TestEnv, interpreter: &str, script: &str, limit: Duration) -> (bool, String) {
    run_script_with(env, interpreter, script, &[], limit)
}

/// [`run_script`] with arguments after the script.
fn run_script_with(
    env: &TestEnv,
    interpreter: &str,
    script: &str,
    args: &[&str],
    limit: Duration,
) -> (bool, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let config = env.root.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let out = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .arg(interpreter)
        .arg(&path)
        .args(args)
        .env("DOCKER_HOST", env.host())
        .env("BERTH", crate::harness::berth_exe())
        .env("DOCKER_CONFIG", &config)
        .output()
        .expect("run the client script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn clients_compose_scenario(env: &TestEnv) {
    if !have("docker-compose", &["version"]) || crate::harness::docker_exe().is_none() {
        crate::skip("docker-compose or the docker CLI is not installed (scripts/deps.sh)");
    }
    let (ok, out) = run_script(env, "python3", "compose.py", Duration::from_secs(300));
    println!("{out}");
    assert!(ok, "the docker-compose scenario failed:\n{out}");
}

fn clients_docker_py_scenarios(env: &TestEnv) {
    if !have("python3", &["-c", "import docker"]) {
        crate::skip("docker-py is not installed (scripts/deps.sh)");
    }
    let (ok, out) = run_script(env, "python3", "dockerpy.py", Duration::from_secs(300));
    println!("{out}");
    assert!(ok, "the docker-py scenarios failed:\n{out}");
}

/// bollard's own tests (from crates.io) against the test daemon: none of the tests listed as
/// passing may fail. Bounded: the build (cold: see `tests/clients/RESULTS.md`) and the run
/// (120 s per test binary) within 25 minutes. `BERTH_BOLLARD=0` skips it.
fn clients_bollard_published_tests(env: &TestEnv) {
    if std::env::var_os("BERTH_BOLLARD").is_some_and(|v| v == "0") {
        crate::skip("BERTH_BOLLARD=0");
    }
    if !have("cargo", &["--version"]) {
        crate::skip("cargo is not installed");
    }
    let expected =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/bollard/expected-passes.txt");
    let (ok, out) = run_script_with(
        env,
        "python3",
        "bollard.py",
        &["--expect", expected.to_str().unwrap()],
        Duration::from_secs(1500),
    );
    println!("{out}");
    assert!(ok, "bollard's published tests regressed:\n{out}");
}

/// What bollard's tests found berth doing unlike dockerd 20.10, each through the API as bollard
/// sends it: a resize of a container without a TTY is a no-op (200), `PUT …/archive` takes a
/// gzip-compressed tar, a container that changed nothing has `null` changes. (The fourth,
/// `X-Registry-Auth` with `null` fields, is berth-distribution's `null_fields_as_bollard_sends_them`.)
fn clients_bollard_found_differences(env: &TestEnv) {
    let name = "bollard_diff";
    env.berth(&["run", "-d", "-i", "--name", name, "busybox", "sh"])
        .ok();
    let (code, body) = env.api(
        "POST",
        &format!("/containers/{name}/resize?h=50&w=50"),
        None,
    );
    assert_eq!(code, 200, "resize without a TTY: {body}");

    let dir = env.root.join("bollard-gz");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("readme.txt"), "Hello from Bollard!").unwrap();
    let gz = env.root.join("bollard.tar.gz");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-czf")
        .arg(&gz)
        .arg("readme.txt")
        .status()
        .expect("tar");
    assert!(tar.success());
    let upload = format!("@{}", gz.display());
    let (code, body) = env.api(
        "PUT",
        &format!("/containers/{name}/archive?path=/tmp"),
        Some(&upload),
    );
    assert_eq!(code, 200, "gzip archive: {body}");
    assert_eq!(
        env.berth(&["exec", name, "cat", "/tmp/readme.txt"]).ok(),
        "Hello from Bollard!"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&gz).unwrap();

    let quiet = "bollard_quiet";
    // An image without /dev, /proc, /sys or /etc (as bollard's test hello-world): the mount
    // points berth makes are not the container's changes (Docker's hidden init layer).
    env.image_from_tree("bollard-bare", |_| {});
    env.berth(&["run", "--name", quiet, "bollard-bare", "true"])
        .ok();
    let (code, body) = env.api("GET", &format!("/containers/{quiet}/changes"), None);
    assert_eq!((code, body.trim()), (200, "null"), "no changes");
    env.berth(&["rm", "-f", name, quiet]).ok();
    env.berth(&["rmi", "bollard-bare"]).ok();
}
