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
