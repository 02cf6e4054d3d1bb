//! Real clients' scenarios against berth (issue 14, item 11): docker-compose 1.29
//! (`tests/clients/compose.py`) and docker-py (`tests/clients/dockerpy.py`), each a script
//! that prints a line per step and exits non-zero if one failed. Their pass counts beside
//! dockerd 20.10's on the same machine are in `tests/clients/RESULTS.md`.
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    ("clients_compose_scenario", clients_compose_scenario),
    ("clients_docker_py_scenarios", clients_docker_py_scenarios),
];

/// Runs `script` with `DOCKER_HOST` on the test daemon, bounded by `limit`; its output.
fn run_script(env: &TestEnv, interpreter: &str, script: &str, limit: Duration) -> (bool, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let config = env.root.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let out = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .arg(interpreter)
        .arg(&path)
        .env("DOCKER_HOST", env.host())
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
