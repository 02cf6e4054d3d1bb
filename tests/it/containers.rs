//! `run` and its flags: what a container sees from the inside, exit codes, bad input.
use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "run_prints_output_and_exits_zero",
        run_prints_output_and_exits_zero,
    ),
    ("run_exit_codes_follow_docker", run_exit_codes_follow_docker),
    (
        "run_container_sees_its_own_namespaces",
        run_container_sees_its_own_namespaces,
    ),
    (
        "run_env_workdir_user_hostname",
        run_env_workdir_user_hostname,
    ),
    ("run_entrypoint_and_env_file", run_entrypoint_and_env_file),
    (
        "run_stdin_reaches_the_process",
        run_stdin_reaches_the_process,
    ),
    ("run_tty_is_a_real_terminal", run_tty_is_a_real_terminal),
    ("run_signals_are_forwarded", run_signals_are_forwarded),
    (
        "run_security_defaults_and_options",
        run_security_defaults_and_options,
    ),
    ("run_read_only_and_ulimit", run_read_only_and_ulimit),
    ("run_init_reaps_and_forwards", run_init_reaps_and_forwards),
    ("external_runtime_runc", external_runtime_runc),
    (
        "oci_cli_follows_runcs_contract",
        oci_cli_follows_runcs_contract,
    ),
    (
        "run_resource_limits_reach_the_cgroup",
        run_resource_limits_reach_the_cgroup,
    ),
    ("run_network_none_and_host", run_network_none_and_host),
    (
        "run_labels_and_stop_signal_in_inspect",
        run_labels_and_stop_signal_in_inspect,
    ),
    (
        "bad_input_is_refused_and_leaves_nothing",
        bad_input_is_refused_and_leaves_nothing,
    ),
    (
        "import_with_changes_and_rmi_refusal",
        import_with_changes_and_rmi_refusal,
    ),
];

fn run_prints_output_and_exits_zero(env: &TestEnv) {
    let r = env.berth(&["run", "--rm", "busybox", "echo", "hello", "world"]);
    assert_eq!(r.ok(), "hello world");
    // --rm removed it
    assert!(
        !env.berth(&["ps", "-a", "--format", "{{.Command}}"])
            .stdout
            .contains("echo hello world")
    );
}

fn run_exit_codes_follow_docker(env: &TestEnv) {
    assert_eq!(
        env.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])
            .code,
        3
    );
    let r = env.berth(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.contains("executable file not found"), "{r:?}");
    let r = env.berth(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(r.code, 126, "{r:?}");
    // A missing image is pulled: from a loopback port nothing listens on (never Docker Hub).
    let r = env.berth(&["run", "--rm", "127.0.0.1:1/nosuchimage:latest", "true"]);
    assert_eq!(r.code, 125, "{r:?}");
    let r = env.berth(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "nosuchimage:latest",
        "true",
    ]);
    assert_eq!(r.code, 125, "{r:?}");
    // A child killed by a signal: the shell reports 128 + signal, as Docker passes it on.
    let r = env.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "sleep 10 & kill -9 $!; wait $!",
    ]);
    assert_eq!(r.code, 137, "{r:?}");
}

fn run_container_sees_its_own_namespaces(env: &TestEnv) {
    let out = env
        .berth(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /sys/class/net; ls /dev",
        ])
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the process is PID 1: {out}");
    assert!(lines[1].starts_with("sh -c"), "{out}");
    assert_eq!(
        lines[2..4],
        ["eth0", "lo"],
        "eth0 on the default bridge, and loopback: {out}"
    );
    for dev in [
        "null", "zero", "urandom", "tty", "pts", "shm", "mqueue", "ptmx",
    ] {
        assert!(out.contains(dev), "/dev/{dev} missing: {out}");
    }
    let mounts = env
        .berth(&["run", "--rm", "busybox", "cat", "/proc/mounts"])
        .ok();
    assert!(mounts.contains("overlay / overlay"), "{mounts}");
    assert!(mounts.contains("/sys sysfs ro"), "{mounts}");
    let etc = env.berth(&["run", "--rm", "-h", "box1", "busybox", "sh", "-c", "cat /etc/hostname; grep -c localhost /etc/hosts; test -f /etc/resolv.conf && echo resolv"]).ok();
    assert_eq!(etc, "box1\n2\nresolv");
}

fn run_env_workdir_user_hostname(env: &TestEnv) {
    let out = env
        .berth(&[
            "run",
            "--rm",
            "-e",
            "FOO=bar",
            "--env",
            "X=1",
            "-w",
            "/tmp/work",
            "-u",
            "1000:1000",
            "--hostname",
            "myhost",
            "busybox",
            "sh",
            "-c",
            "echo $FOO $X; pwd; id -u; id -g; hostname; echo $HOSTNAME",
        ])
        .ok();
    assert_eq!(out, "bar 1\n/tmp/work\n1000\n1000\nmyhost\nmyhost");
    let out = env
        .berth(&["run", "--rm", "-u", "nobody", "busybox", "id"])
        .ok();
    assert!(out.starts_with("uid=65534(nobody)"), "{out}");
    let r = env.berth(&["run", "--rm", "-u", "nosuchuser", "busybox", "id"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("unable to find user nosuchuser"), "{r:?}");
}

fn run_entrypoint_and_env_file(env: &TestEnv) {
    let f = env.root.join("envfile");
    std::fs::write(&f, "# comment\nA=from_file\nB=two words\n").unwrap();
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--env-file",
            f.to_str().unwrap(),
            "--entrypoint",
            "/bin/sh",
            "busybox",
            "-c",
            "echo $A; echo $B",
        ])
        .ok();
    assert_eq!(out, "from_file\ntwo words");
}

/// Runs `cmd` under `script(1)`, so the CLI has a real terminal; returns its output and code.
fn in_terminal(env: &TestEnv, cmd: &str, input: &[u8]) -> (String, i32) {
    use std::io::Write;
    let full = format!(
        "stty cols 90 rows 30; BERTH_HOST={} {} {cmd}",
        env.host(),
        crate::harness::berth_exe().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &full, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = stdin.write_all(&input);
        std::thread::sleep(std::time::Duration::from_secs(3));
    });
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn run_tty_is_a_real_terminal(env: &TestEnv) {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::skip("script(1) is not installed");
    }
    let (out, code) = in_terminal(
        env,
        "run -t --rm busybox sh -c 'test -t 0 && echo is-a-tty; stty size; echo $TERM'",
        b"",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is-a-tty"), "{out:?}");
    assert!(
        out.contains("30 90"),
        "the container's pty has the terminal's size: {out:?}"
    );
    assert!(out.contains("xterm"), "{out:?}");
    // interactive shell: input reaches it, its exit code comes back
    let (out, code) = in_terminal(
        env,
        "run -it --rm busybox sh",
        b"echo typed-$((40+2))\rexit 3\r",
    );
    assert!(out.contains("typed-42"), "{out:?}");
    assert_eq!(code, 3, "{out:?}");
    // detach keys leave the container running
    let (_, code) = in_terminal(env, "run -it --name detachme busybox sh", b"\x10\x11");
    assert_eq!(code, 0);
    assert_eq!(env.inspect("detachme", "{{.State.Running}}"), "true");
    env.berth(&["rm", "-f", "detachme"]).ok();
}

fn run_signals_are_forwarded(env: &TestEnv) {
    let child = env.berth_spawn(&[
        "run",
        "--rm",
        "--name",
        "sigfwd",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    assert!(env.eventually(5, || {
        env.berth(&["inspect", "-f", "{{.State.Running}}", "sigfwd"])
            .stdout
            .trim()
            == "true"
    }));
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("got-term"));
}

fn run_stdin_reaches_the_process(env: &TestEnv) {
    let r = env.berth_stdin(
        &["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done"],
        b"line one\nline two\n",
    );
    assert_eq!(r.ok(), "line one\nline two\ndone");
}

fn run_security_defaults_and_options(env: &TestEnv) {
    let status = env
        .berth(&["run", "--rm", "busybox", "cat", "/proc/self/status"])
        .ok();
    assert!(
        status.contains("CapEff:\t00000000a80425fb"),
        "docker's 14 default caps: {status}"
    );
    assert!(
        status.contains("Seccomp:\t2"),
        "default seccomp profile: {status}"
    );
    let r = env.berth(&["run", "--rm", "busybox", "cat", "/proc/kcore"]);
    assert_eq!(r.stdout, "", "/proc/kcore is masked");
    let r = env.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/panic",
    ]);
    assert_ne!(r.code, 0, "/proc/sys is read-only");
    let dropped = env.berth(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "chown",
        "1:1",
        "/tmp",
    ]);
    assert_ne!(dropped.code, 0, "chown without CAP_CHOWN must fail");
    let added = env.berth(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        "busybox",
        "ip",
        "link",
        "set",
        "lo",
        "down",
    ]);
    assert_eq!(added.code, 0, "{added:?}");
    let status = env
        .berth(&[
            "run",
            "--rm",
            "--privileged",
            "busybox",
            "cat",
            "/proc/self/status",
        ])
        .ok();
    assert!(
        status.contains("Seccomp:\t0"),
        "privileged has no seccomp: {status}"
    );
    assert!(!status.contains("CapEff:\t00000000a80425fb"), "{status}");
    let status = env
        .berth(&[
            "run",
            "--rm",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "cat",
            "/proc/self/status",
        ])
        .ok();
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t0"), "{status}");
    let profile = env.root.join("deny-mkdir.json");
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#).unwrap();
    let opt = format!("seccomp={}", profile.display());
    let r = env.berth(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/tmp/x",
    ]);
    assert_ne!(r.code, 0, "custom profile denies mkdir: {r:?}");
}

fn run_init_reaps_and_forwards(env: &TestEnv) {
    // With --init the program is not PID 1, and a signal reaches it through the init.
    let out = env
        .berth(&["run", "--rm", "--init", "busybox", "sh", "-c", "echo $$"])
        .ok();
    assert_ne!(out, "1", "the program runs under an init");
    env.berth(&[
        "run", "-d", "--init", "--name", "inited", "busybox", "sleep", "300",
    ])
    .ok();
    env.berth(&["stop", "-t", "5", "inited"]).ok();
    assert_eq!(
        env.inspect("inited", "{{.State.ExitCode}}"),
        "143",
        "SIGTERM reached sleep"
    );
    env.berth(&["rm", "inited"]).ok();
}

fn external_runtime_runc(env: &TestEnv) {
    if !["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .any(|p| std::path::Path::new(p).exists())
    {
        crate::skip("runc is not installed (scripts/deps.sh installs it)");
    };
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "busybox",
            "sh",
            "-c",
            "echo via-runc; echo $$",
        ])
        .ok();
    assert_eq!(out, "via-runc\n1");
    env.berth(&[
        "run",
        "-d",
        "--name",
        "byrunc",
        "--runtime",
        "runc",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    assert_eq!(env.berth(&["exec", "byrunc", "echo", "in"]).ok(), "in");
    env.berth(&["rm", "-f", "byrunc"]).ok();
}

fn oci_cli_follows_runcs_contract(env: &TestEnv) {
    use std::process::Command;
    let bundle = env.root.join("bundle");
    let rootfs = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("busybox")).unwrap();
    for app in ["sh", "sleep", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join(app)).unwrap();
    }
    let spec = Command::new("runc")
        .arg("spec")
        .current_dir(&bundle)
        .status();
    if !spec.is_ok_and(|s| s.success()) {
        crate::skip("`runc spec` does not work here");
    }
    let cfg = bundle.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["process"]["terminal"] = serde_json::json!(false);
    v["process"]["args"] = serde_json::json!(["sleep", "300"]);
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let root = env.root.join("oci-root");
    // `oci create` hands its own stdio to the container (runc's pass-through), so nothing of
    // ours may be a pipe the test waits on.
    let oci = |args: &[&str]| {
        Command::new(crate::harness::berth_exe())
            .arg("oci")
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .code()
            .unwrap_or(-1)
    };
    let state = || {
        let o = Command::new(crate::harness::berth_exe())
            .arg("oci")
            .arg("--root")
            .arg(&root)
            .args(["state", "ocitest"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()
    };
    let b = bundle.to_str().unwrap();
    assert_eq!(oci(&["create", "--bundle", b, "ocitest"]), 0);
    assert_eq!(state()["status"], "created");
    assert_ne!(
        oci(&["create", "--bundle", b, "ocitest"]),
        0,
        "a duplicate id is refused"
    );
    assert_eq!(oci(&["start", "ocitest"]), 0);
    assert_eq!(state()["status"], "running");
    assert!(state()["pid"].as_i64().unwrap_or(0) > 0);
    assert_eq!(oci(&["kill", "ocitest", "KILL"]), 0);
    assert!(env.eventually(5, || state()["status"] == "stopped"));
    assert_eq!(oci(&["delete", "ocitest"]), 0);
    assert_ne!(oci(&["state", "ocitest"]), 0);
}

fn run_read_only_and_ulimit(env: &TestEnv) {
    let r = env.berth(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Read-only file system"), "{r:?}");
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:2048",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn",
        ])
        .ok();
    assert_eq!(out, "1024\n2048");
}

fn run_resource_limits_reach_the_cgroup(env: &TestEnv) {
    let id = env
        .berth(&[
            "run",
            "-d",
            "--name",
            "limits",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "busybox",
            "sleep",
            "60",
        ])
        .ok();
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory").exists()
        && !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cg = crate::harness::cgroup_parent();
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    if v1 {
        assert_eq!(
            read(&format!(
                "/sys/fs/cgroup/memory/{cg}/{id}/memory.limit_in_bytes"
            )),
            "67108864"
        );
        assert_eq!(
            read(&format!("/sys/fs/cgroup/cpu/{cg}/{id}/cpu.cfs_quota_us")),
            "50000"
        );
        assert_eq!(
            read(&format!("/sys/fs/cgroup/pids/{cg}/{id}/pids.max")),
            "50"
        );
    } else {
        assert_eq!(
            read(&format!("/sys/fs/cgroup/{cg}/{id}/memory.max")),
            "67108864"
        );
        assert_eq!(read(&format!("/sys/fs/cgroup/{cg}/{id}/pids.max")), "50");
    }
    assert_eq!(
        env.inspect(
            "limits",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"
        ),
        "67108864 500000000 50"
    );
    env.berth(&["update", "--memory", "128m", "limits"]).ok();
    if v1 {
        assert_eq!(
            read(&format!(
                "/sys/fs/cgroup/memory/{cg}/{id}/memory.limit_in_bytes"
            )),
            "134217728"
        );
    }
    env.berth(&["rm", "-f", "limits"]).ok();
    assert!(
        env.eventually(5, || !std::path::Path::new(&format!(
            "/sys/fs/cgroup/memory/{cg}/{id}"
        ))
        .exists()
            && !std::path::Path::new(&format!("/sys/fs/cgroup/{cg}/{id}")).exists()),
        "cgroup removed with the container"
    );
}

fn run_network_none_and_host(env: &TestEnv) {
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok();
    assert_eq!(out, "lo");
    let host_ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok();
    for i in host_ifaces.iter().filter(|i| !i.starts_with("veth")) {
        assert!(out.contains(i.as_str()), "host network shows {i}: {out}");
    }
}

fn run_labels_and_stop_signal_in_inspect(env: &TestEnv) {
    env.berth(&[
        "create",
        "--name",
        "labelled",
        "-l",
        "app=web",
        "--label",
        "tier=1",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "3",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(
        env.inspect(
            "labelled",
            "{{.Config.Labels.app}} {{.Config.StopSignal}} {{.Config.StopTimeout}}"
        ),
        "web SIGUSR1 3"
    );
    assert_eq!(
        env.berth(&[
            "ps",
            "-a",
            "--filter",
            "label=app=web",
            "--format",
            "{{.Names}}"
        ])
        .ok(),
        "labelled"
    );
    env.berth(&["rm", "labelled"]).ok();
}

fn bad_input_is_refused_and_leaves_nothing(env: &TestEnv) {
    let before = std::fs::read_dir(env.data_root.join("containers"))
        .unwrap()
        .count();
    let r = env.berth(&["run", "--rm", "--memory", "1k", "busybox", "true"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(
        r.stderr.contains("Minimum memory limit allowed is 6MB"),
        "{r:?}"
    );
    let r = env.berth(&["run", "--rm", "--cpus", "99", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("Range of CPUs"), "{r:?}");
    let r = env.berth(&["run", "--rm", "--memory", "lots", "busybox", "true"]);
    assert_eq!(r.code, 125, "{r:?}");
    let r = env.berth(&["create", "--name", "bad/name", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("Invalid container name"), "{r:?}");
    env.berth(&["create", "--name", "taken", "busybox", "true"])
        .ok();
    let r = env.berth(&["create", "--name", "taken", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("is already in use"), "{r:?}");
    let r = env.berth(&["-H", "unix:///nonexistent/berth.sock", "ps"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?"
    );
    let r = env.berth(&["rm", "nosuchcontainer"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("No such container: nosuchcontainer"),
        "{r:?}"
    );
    env.berth(&["rm", "taken"]).ok();
    let after = std::fs::read_dir(env.data_root.join("containers"))
        .unwrap()
        .count();
    assert_eq!(before, after, "no half-created containers");
    // malformed JSON gets a 400 with the reason
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&env.socket)
        .args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{not json",
            "http://x/v1.44/containers/create",
        ])
        .output();
    if let Ok(o) = out {
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.trim_end().ends_with("400"), "{s}");
        assert!(s.contains("\"message\""), "{s}");
    }
}

fn import_with_changes_and_rmi_refusal(env: &TestEnv) {
    // A rootfs tarball: the busybox image's contents, exported by hand.
    let dir = env.root.join("imp");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/echo")).unwrap();
    let tar = env.root.join("imp.tar");
    crate::harness::tar_dir(&dir, &tar);
    let id = env
        .berth(&[
            "import",
            "-c",
            "ENV GREETING=hi",
            "-c",
            "CMD [\"sh\", \"-c\", \"echo $GREETING\"]",
            tar.to_str().unwrap(),
            "imported:v1",
        ])
        .ok();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(env.berth(&["run", "--rm", "imported:v1"]).ok(), "hi");
    let r = env.berth_stdin(
        &["import", "-", "imported:v2"],
        &std::fs::read(&tar).unwrap(),
    );
    r.ok();
    assert!(
        env.berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .ok()
            .contains("imported:v2")
    );
    env.berth(&["create", "--name", "user-of-v2", "imported:v2", "true"])
        .ok();
    let r = env.berth(&["rmi", "imported:v2"]);
    assert_ne!(r.code, 0, "an image a container uses is refused: {r:?}");
    assert!(r.stderr.contains("conflict"), "{r:?}");
    env.berth(&["rm", "user-of-v2"]).ok();
    env.berth(&["rmi", "imported:v2"]).ok();
    env.berth(&["rmi", "imported:v1"]).ok();
    let r = env.berth(&[
        "import",
        "-c",
        "BOGUS x",
        tar.to_str().unwrap(),
        "imported:bad",
    ]);
    assert_ne!(r.code, 0);
}
