//! The real docker CLI (28.2) against berth: the same flows a Docker user types.
use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    ("docker_version_info_ping", docker_version_info_ping),
    (
        "docker_run_rm_output_and_exit_codes",
        docker_run_rm_output_and_exit_codes,
    ),
    (
        "docker_run_d_ps_inspect_logs_exec_stop_rm",
        docker_run_d_ps_inspect_logs_exec_stop_rm,
    ),
    ("docker_run_interactive_stdin", docker_run_interactive_stdin),
    ("docker_errors_are_one_line", docker_errors_are_one_line),
    ("docker_images_and_rmi", docker_images_and_rmi),
];

fn docker_version_info_ping(env: &TestEnv) {
    let v = docker!(
        env,
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}"
    );
    assert_eq!(v.ok(), "1.44 linux");
    let info = docker!(
        env,
        "info",
        "--format",
        "{{.Driver}} {{.CgroupDriver}} {{.OSType}} {{.NCPU}}"
    );
    let out = info.ok();
    assert!(out.starts_with("overlay2 cgroupfs linux "), "{out}");
    let full = docker!(env, "info");
    assert!(
        full.stdout.contains("Containers:") && full.stdout.contains("Cgroup Version:"),
        "{full:?}"
    );
}

fn docker_run_rm_output_and_exit_codes(env: &TestEnv) {
    assert_eq!(
        docker!(env, "run", "--rm", "busybox", "echo", "via docker").ok(),
        "via docker"
    );
    assert_eq!(
        docker!(env, "run", "--rm", "busybox", "sh", "-c", "exit 7").code,
        7
    );
    let r = docker!(env, "run", "--rm", "busybox", "nosuchcmd");
    assert_eq!(r.code, 127, "{r:?}");
    let r = docker!(
        env,
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2"
    );
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));
}

fn docker_run_d_ps_inspect_logs_exec_stop_rm(env: &TestEnv) {
    let id = docker!(
        env,
        "run",
        "-d",
        "--name",
        "dk1",
        "-e",
        "K=v",
        "busybox",
        "sh",
        "-c",
        "echo hello-docker; sleep 300"
    )
    .ok();
    assert_eq!(id.len(), 64);
    let ps = docker!(env, "ps", "--format", "{{.Names}} {{.Image}} {{.Status}}").ok();
    assert!(ps.lines().any(|l| l.starts_with("dk1 busybox Up")), "{ps}");
    assert_eq!(
        docker!(
            env,
            "inspect",
            "-f",
            "{{.State.Running}} {{.Name}} {{.Config.Image}}",
            "dk1"
        )
        .ok(),
        "true /dk1 busybox"
    );
    assert!(
        env.eventually(5, || env.docker(&["logs", "dk1"]).map(|r| r.stdout)
            == Some("hello-docker\n".into()))
    );
    assert_eq!(docker!(env, "exec", "dk1", "sh", "-c", "echo $K").ok(), "v");
    assert_eq!(docker!(env, "exec", "dk1", "sh", "-c", "exit 3").code, 3);
    docker!(env, "pause", "dk1").ok();
    assert_eq!(
        docker!(env, "inspect", "-f", "{{.State.Status}}", "dk1").ok(),
        "paused"
    );
    docker!(env, "unpause", "dk1").ok();
    let top = docker!(env, "top", "dk1").ok();
    assert!(top.contains("sleep 300"), "{top}");
    let stats = docker!(
        env,
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "dk1"
    )
    .ok();
    assert!(stats.starts_with("dk1 "), "{stats}");
    docker!(env, "stop", "-t", "1", "dk1").ok();
    assert_eq!(docker!(env, "wait", "dk1").ok(), "137");
    assert_eq!(docker!(env, "rm", "dk1").ok(), "dk1");
}

fn docker_run_interactive_stdin(env: &TestEnv) {
    let Some(r) = env.docker_stdin(
        &[
            "run",
            "-i",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "read x; echo got:$x",
        ],
        b"abc\n",
    ) else {
        return;
    };
    assert_eq!(r.ok(), "got:abc");
}

fn docker_errors_are_one_line(env: &TestEnv) {
    let r = docker!(env, "inspect", "nosuchthing");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("No such object: nosuchthing"), "{r:?}");
    let r = docker!(env, "rm", "nosuchcontainer");
    assert!(
        r.stderr.contains("No such container: nosuchcontainer"),
        "{r:?}"
    );
    docker!(env, "create", "--name", "dkdup", "busybox", "true").ok();
    let r = docker!(env, "create", "--name", "dkdup", "busybox", "true");
    assert!(r.stderr.contains("is already in use"), "{r:?}");
    docker!(env, "rm", "dkdup").ok();
}

fn docker_images_and_rmi(env: &TestEnv) {
    let images = docker!(env, "images", "--format", "{{.Repository}}:{{.Tag}}").ok();
    assert!(images.lines().any(|l| l == "busybox:latest"), "{images}");
    docker!(env, "tag", "busybox", "mybox:1").ok();
    let r = docker!(env, "rmi", "mybox:1");
    assert!(r.ok().contains("Untagged: mybox:1"));
}
