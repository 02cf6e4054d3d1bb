//! The lifecycle verbs, logs, exec, top, stats, events, restart policies, and containers that
//! outlive a daemon killed with SIGKILL.
use std::time::Duration;

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    ("detached_container_lifecycle", detached_container_lifecycle),
    ("create_start_attach_and_wait", create_start_attach_and_wait),
    ("logs_follow_tail_timestamps", logs_follow_tail_timestamps),
    ("exec_runs_in_the_container", exec_runs_in_the_container),
    ("pause_unpause_kill_restart", pause_unpause_kill_restart),
    ("stop_escalates_to_sigkill", stop_escalates_to_sigkill),
    ("restart_policy_on_failure", restart_policy_on_failure),
    ("top_stats_events", top_stats_events),
    ("ps_filters_and_formats", ps_filters_and_formats),
    ("ps_and_inspect_report_sizes", ps_and_inspect_report_sizes),
    (
        "rm_running_needs_force_and_rm_many",
        rm_running_needs_force_and_rm_many,
    ),
    (
        "start_after_forced_rmi_runs_as_docker",
        start_after_forced_rmi_runs_as_docker,
    ),
    (
        "diff_lists_added_changed_deleted",
        diff_lists_added_changed_deleted,
    ),
    (
        "export_then_import_round_trips",
        export_then_import_round_trips,
    ),
    (
        "cli_starts_the_daemon_when_none_answers",
        cli_starts_the_daemon_when_none_answers,
    ),
    (
        "containers_survive_daemon_sigkill",
        containers_survive_daemon_sigkill,
    ),
];

fn detached_container_lifecycle(env: &TestEnv) {
    let id = env
        .berth(&[
            "run",
            "-d",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "echo started; sleep 300",
        ])
        .ok();
    assert_eq!(id.len(), 64, "run -d prints the full id: {id}");
    assert_eq!(env.inspect("web", "{{.Id}}"), id);
    assert_eq!(env.inspect("web", "{{.Name}}"), "/web");
    assert_eq!(
        env.inspect("web", "{{.State.Status}} {{.State.Running}}"),
        "running true"
    );
    let pid: i32 = env.inspect("web", "{{.State.Pid}}").parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(env.inspect("web", "{{.Config.Hostname}}"), &id[..12]);
    let cfg = env.inspect("web", "{{json .Config}}");
    assert!(cfg.contains("\"Image\":\"busybox\""), "{cfg}");
    assert!(env.eventually(5, || env.berth(&["logs", "web"]).stdout == "started\n"));
    let ps = env.berth(&["ps"]).ok();
    assert!(
        ps.contains(&id[..12]) && ps.contains("web") && ps.contains("Up "),
        "{ps}"
    );
    assert_eq!(
        env.berth(&["ps", "-q", "--filter", "name=web"]).ok(),
        &id[..12]
    );
    env.berth(&["stop", "-t", "1", "web"]).ok();
    assert_eq!(env.inspect("web", "{{.State.Status}}"), "exited");
    let code = env.inspect("web", "{{.State.ExitCode}}");
    assert!(code == "143" || code == "137", "{code}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .map(|c| !c.contains("sleep"))
                .unwrap_or(true)
    );
    env.berth(&["rename", "web", "web2"]).ok();
    assert_eq!(env.inspect("web2", "{{.Name}}"), "/web2");
    assert_eq!(env.berth(&["rm", "web2"]).ok(), "web2");
    assert_ne!(env.berth(&["inspect", "web2"]).code, 0);
}

fn create_start_attach_and_wait(env: &TestEnv) {
    let id = env
        .berth(&[
            "create",
            "--name",
            "later",
            "busybox",
            "sh",
            "-c",
            "echo from-start; exit 5",
        ])
        .ok();
    assert_eq!(env.inspect("later", "{{.State.Status}}"), "created");
    let r = env.berth(&["start", "-a", "later"]);
    assert_eq!(r.stdout, "from-start\n", "{r:?}");
    assert_eq!(r.code, 5);
    assert_eq!(env.berth(&["wait", &id]).ok(), "5");
    env.berth(&["rm", "later"]).ok();

    // attach to a running container sees its output, and its exit code
    env.berth(&[
        "run",
        "-d",
        "--name",
        "attachme",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo attached-output; exit 4",
    ])
    .ok();
    let r = env.berth(&["attach", "attachme"]);
    assert!(r.stdout.contains("attached-output"), "{r:?}");
    assert_eq!(r.code, 4);
    env.berth(&["rm", "attachme"]).ok();
}

fn logs_follow_tail_timestamps(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; done; echo err >&2; sleep 1; echo late",
    ])
    .ok();
    let mut follow = env.berth_spawn(&["logs", "-f", "chatty"]);
    let out = {
        use std::io::Read;
        let mut s = String::new();
        follow
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        let _ = follow.wait();
        s
    };
    assert_eq!(
        out, "line1\nline2\nline3\nlate\n",
        "logs -f ends when the container exits"
    );
    let r = env.berth(&["logs", "chatty"]);
    assert_eq!(r.stderr, "err\n");
    assert_eq!(
        env.berth(&["logs", "--tail", "1", "chatty"]).stdout,
        "late\n"
    );
    let ts = env.berth(&["logs", "-t", "--tail", "1", "chatty"]).ok();
    assert!(ts.ends_with(" late") && ts.starts_with("20"), "{ts}");
    assert_eq!(
        env.berth(&["logs", "--until", "2000-01-01T00:00:00Z", "chatty"])
            .stdout,
        ""
    );
    env.berth(&["rm", "chatty"]).ok();
}

fn exec_runs_in_the_container(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "ex",
        "--hostname",
        "exhost",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    assert_eq!(env.berth(&["exec", "ex", "hostname"]).ok(), "exhost");
    assert_eq!(
        env.berth(&[
            "exec",
            "-e",
            "V=x",
            "-w",
            "/tmp",
            "-u",
            "1000",
            "ex",
            "sh",
            "-c",
            "echo $V; pwd; id -u"
        ])
        .ok(),
        "x\n/tmp\n1000"
    );
    assert_eq!(env.berth(&["exec", "ex", "sh", "-c", "exit 9"]).code, 9);
    let r = env.berth(&["exec", "ex", "nosuchcmd"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert_eq!(
        env.berth_stdin(&["exec", "-i", "ex", "cat"], b"via-stdin")
            .ok(),
        "via-stdin"
    );
    env.berth(&["exec", "-d", "ex", "sh", "-c", "echo bg > /tmp/bg"])
        .ok();
    assert!(
        env.eventually(5, || env.berth(&["exec", "ex", "cat", "/tmp/bg"]).stdout
            == "bg\n")
    );
    let top = env.berth(&["exec", "ex", "ps"]).ok();
    assert!(
        top.contains("sleep 300"),
        "exec sees the container's processes: {top}"
    );
    env.berth(&["stop", "-t", "0", "ex"]).ok();
    let r = env.berth(&["exec", "ex", "true"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is not running"), "{r:?}");
    env.berth(&["rm", "ex"]).ok();
}

fn pause_unpause_kill_restart(env: &TestEnv) {
    // PID 1 only gets the signals it handles (as with Docker), so the init traps USR1.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "pz",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' USR1; while :; do sleep 0.1; done",
    ])
    .ok();
    env.berth(&["pause", "pz"]).ok();
    assert_eq!(
        env.inspect("pz", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    assert!(
        env.berth(&["ps", "--filter", "status=paused", "--format", "{{.Status}}"])
            .ok()
            .ends_with("(Paused)")
    );
    env.berth(&["unpause", "pz"]).ok();
    assert_eq!(env.inspect("pz", "{{.State.Status}}"), "running");
    let pid1 = env.inspect("pz", "{{.State.Pid}}");
    env.berth(&["restart", "-t", "1", "pz"]).ok();
    assert_eq!(env.inspect("pz", "{{.State.Status}}"), "running");
    assert_ne!(env.inspect("pz", "{{.State.Pid}}"), pid1);
    env.berth(&["kill", "-s", "USR1", "pz"]).ok();
    assert!(env.eventually(5, || env.inspect("pz", "{{.State.Status}}") == "exited"));
    assert_eq!(env.inspect("pz", "{{.State.ExitCode}}"), "7");
    let r = env.berth(&["kill", "pz"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is not running"), "{r:?}");
    env.berth(&["rm", "pz"]).ok();
}

fn stop_escalates_to_sigkill(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; sleep 300",
    ])
    .ok();
    let t = std::time::Instant::now();
    env.berth(&["stop", "-t", "1", "stubborn"]).ok();
    assert!(t.elapsed() < Duration::from_secs(8));
    assert_eq!(env.inspect("stubborn", "{{.State.ExitCode}}"), "137");
    env.berth(&["rm", "stubborn"]).ok();
}

fn restart_policy_on_failure(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ])
    .ok();
    assert!(
        env.eventually(15, || env
            .inspect("flaky", "{{.RestartCount}} {{.State.Status}}")
            == "2 exited"),
        "{}",
        env.inspect("flaky", "{{.RestartCount}} {{.State.Status}}")
    );
    assert_eq!(
        env.inspect("flaky", "{{.HostConfig.RestartPolicy.Name}}"),
        "on-failure"
    );
    env.berth(&["rm", "flaky"]).ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "forever",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ])
    .ok();
    assert!(env.eventually(15, || {
        env.inspect("forever", "{{.RestartCount}}")
            .parse::<i32>()
            .unwrap_or(0)
            >= 2
    }));
    env.berth(&["stop", "-t", "1", "forever"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(
        env.inspect("forever", "{{.State.Status}}"),
        "running",
        "a stopped 'always' container stays stopped"
    );
    env.berth(&["rm", "-f", "forever"]).ok();
}

fn top_stats_events(env: &TestEnv) {
    let since = chrono_now_secs();
    env.berth(&[
        "run", "-d", "--name", "tops", "--memory", "32m", "busybox", "sleep", "300",
    ])
    .ok();
    let top = env.berth(&["top", "tops"]).ok();
    assert!(top.contains("PID") && top.contains("sleep 300"), "{top}");
    let top = env.berth(&["top", "tops", "-o", "pid,comm"]).ok();
    assert!(top.contains("COMMAND") && top.contains("sleep"), "{top}");
    let stats = env
        .berth(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}} {{.PIDs}}",
            "tops",
        ])
        .ok();
    assert!(
        stats.starts_with("tops ") && stats.contains("32MiB") && stats.ends_with(" 1"),
        "{stats}"
    );
    env.berth(&["rm", "-f", "tops"]).ok();
    let until = chrono_now_secs() + 1;
    let ev = env
        .berth(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "container=tops",
        ])
        .ok();
    for action in ["create", "start", "die", "destroy"] {
        assert!(
            ev.contains(&format!("container {action} ")),
            "event {action} missing: {ev}"
        );
    }
}

fn chrono_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ps_filters_and_formats(env: &TestEnv) {
    env.berth(&["run", "--name", "done0", "busybox", "true"])
        .ok();
    env.berth(&["run", "-d", "--name", "alive0", "busybox", "sleep", "300"])
        .ok();
    let names = env.berth(&["ps", "--format", "{{.Names}}"]).ok();
    assert!(names.contains("alive0") && !names.contains("done0"));
    let exited = env
        .berth(&["ps", "-a", "--filter", "exited=0", "--format", "{{.Names}}"])
        .ok();
    assert!(
        exited.contains("done0") && !exited.contains("alive0"),
        "{exited}"
    );
    let st = env
        .berth(&[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--filter",
            "name=done0",
            "--format",
            "{{.Status}}",
        ])
        .ok();
    assert!(st.starts_with("Exited (0) "), "{st}");
    assert_eq!(
        env.berth(&["ps", "-l", "--format", "{{.Names}}"]).ok(),
        "alive0"
    );
    assert_eq!(env.berth(&["ps", "-n", "2", "-q"]).ok().lines().count(), 2);
    let anc = env
        .berth(&[
            "ps",
            "-a",
            "--filter",
            "ancestor=busybox",
            "--format",
            "{{.Names}}",
        ])
        .ok();
    assert!(anc.contains("done0") && anc.contains("alive0"));
    let full = env
        .berth(&["ps", "--no-trunc", "-q", "--filter", "name=alive0"])
        .ok();
    assert_eq!(full.len(), 64);
    let table = env
        .berth(&["ps", "--format", "table {{.Names}}\t{{.Image}}"])
        .ok();
    assert!(table.starts_with("NAMES"), "{table}");
    env.berth(&["rm", "-f", "done0", "alive0"]).ok();
}

fn rm_running_needs_force_and_rm_many(env: &TestEnv) {
    env.berth(&["run", "-d", "--name", "rmx1", "busybox", "sleep", "300"])
        .ok();
    env.berth(&["run", "-d", "--name", "rmx2", "busybox", "sleep", "300"])
        .ok();
    let r = env.berth(&["rm", "rmx1"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("stop the container before removing or force remove"),
        "{r:?}"
    );
    assert_eq!(env.berth(&["rm", "-f", "rmx1", "rmx2"]).ok(), "rmx1\nrmx2");
    assert_eq!(env.berth(&["ps", "-aq", "--filter", "name=rmx"]).ok(), "");
}

/// As in Docker: `rmi` of an image a container uses is refused, `rmi -f` only untags it, and
/// the container still starts (it needs its root, not its image's name).
fn start_after_forced_rmi_runs_as_docker(env: &TestEnv) {
    // A private one-file image, so removing it disturbs no other test.
    let dir = env.root.join("doomed");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/true")).unwrap();
    std::fs::write(dir.join("marker"), b"doomed").unwrap();
    let tar = env.root.join("doomed.tar");
    crate::harness::tar_dir(&dir, &tar);
    env.berth(&[
        "import",
        "-c",
        "CMD [\"/bin/true\"]",
        tar.to_str().unwrap(),
        "doomed:1",
    ])
    .ok();
    env.berth(&["create", "--name", "orphan", "doomed:1"]).ok();
    let r = env.berth(&["rmi", "doomed:1"]);
    assert_ne!(r.code, 0, "refused while a container uses it: {r:?}");
    env.berth(&["rmi", "-f", "doomed:1"]).ok();
    assert_ne!(
        env.berth(&["image", "inspect", "doomed:1"]).code,
        0,
        "untagged"
    );
    env.berth(&["start", "-a", "orphan"]).ok();
    assert_eq!(env.inspect("orphan", "{{.State.Status}}"), "exited");
    assert_eq!(env.inspect("orphan", "{{.State.ExitCode}}"), "0");
    env.berth(&["rm", "orphan"]).ok();
}

/// As root with no daemon answering on the default socket, the CLI starts one itself.
fn cli_starts_the_daemon_when_none_answers(_env: &TestEnv) {
    use std::path::Path;
    let (sock, run, data) = (
        Path::new("/run/berth/berth.sock"),
        Path::new("/run/berth"),
        Path::new("/var/lib/berth"),
    );
    if std::os::unix::net::UnixStream::connect(sock).is_ok() || run.exists() || data.exists() {
        crate::skip("a berth daemon or its state is already on this machine");
    }
    // The daemon makes its default bridge `berth0` and nft table `berth`; they go after.
    let bridge_before = Path::new("/sys/class/net/berth0").exists();
    let out = std::process::Command::new(crate::harness::berth_exe())
        .args(["version", "--format", "{{.Server.ApiVersion}}"])
        .env_remove("BERTH_HOST")
        .env_remove("DOCKER_HOST")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let pid: Option<i32> = std::fs::read_to_string(run.join("berth.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok());
    if let Some(pid) = pid {
        // SAFETY: kill(2) on the daemon this test started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let _ = std::fs::remove_dir_all(run);
    let _ = std::fs::remove_dir_all(data);
    if !bridge_before {
        let left = crate::harness::remove_network_state("berth0", "berth");
        assert!(left.is_empty(), "{left:?}");
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1.44",
        "{out:?}"
    );
    assert!(pid.is_some(), "the daemon wrote its pid file");
}

fn diff_lists_added_changed_deleted(env: &TestEnv) {
    env.berth(&[
        "run",
        "--name",
        "differ",
        "busybox",
        "sh",
        "-c",
        "mkdir /newdir; echo x > /etc/motd; rm /bin/true; echo u >> /etc/passwd",
    ])
    .ok();
    assert_eq!(
        env.berth(&["diff", "differ"]).ok(),
        "C /bin\nD /bin/true\nC /etc\nA /etc/motd\nC /etc/passwd\nA /newdir"
    );
    if let Some(r) = env.docker(&["diff", "differ"]) {
        assert_eq!(
            r.ok(),
            "C /bin\nD /bin/true\nC /etc\nA /etc/motd\nC /etc/passwd\nA /newdir"
        );
    }
    env.berth(&["run", "--name", "untouched", "busybox", "true"])
        .ok();
    assert_eq!(env.berth(&["diff", "untouched"]).ok(), "");
    env.berth(&["rm", "differ", "untouched"]).ok();
}

fn export_then_import_round_trips(env: &TestEnv) {
    env.berth(&[
        "run",
        "--name",
        "exp",
        "busybox",
        "sh",
        "-c",
        "echo kept > /etc/marker; rm /bin/true; ln -s /etc/marker /linked",
    ])
    .ok();
    let tar = env.root.join("exp.tar");
    env.berth(&["export", "-o", tar.to_str().unwrap(), "exp"])
        .ok();
    let list = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&tar)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.contains("etc/marker") && list.contains("bin/busybox"),
        "{list}"
    );
    assert!(
        !list
            .lines()
            .any(|l| l.ends_with(" bin/true") || l.contains(" bin/true ->")),
        "deleted files stay out: {list}"
    );
    assert!(list.contains("linked -> /etc/marker"), "{list}");
    env.berth(&[
        "import",
        "-c",
        "CMD [\"cat\", \"/linked\"]",
        tar.to_str().unwrap(),
        "reimported:1",
    ])
    .ok();
    assert_eq!(env.berth(&["run", "--rm", "reimported:1"]).ok(), "kept");
    assert_ne!(
        env.berth(&["run", "--rm", "reimported:1", "test", "-e", "/bin/true"])
            .code,
        0
    );
    if let Some(r) = env.docker(&["export", "exp"]) {
        assert_eq!(r.code, 0);
        assert!(r.stdout.contains("kept"), "docker export streams the tar");
    }
    env.berth(&["rm", "exp"]).ok();
    env.berth(&["rmi", "reimported:1"]).ok();
}

fn containers_survive_daemon_sigkill(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "echo before; while true; do sleep 1; done",
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "dies-while-away",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 42",
    ])
    .ok();
    let pid = env.inspect("survivor", "{{.State.Pid}}");
    env.stop_daemon(libc::SIGKILL);
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "container outlives the daemon"
    );
    std::thread::sleep(Duration::from_secs(3));
    env.start_daemon();
    assert_eq!(
        env.inspect("survivor", "{{.State.Status}} {{.State.Pid}}"),
        format!("running {pid}")
    );
    assert_eq!(
        env.inspect("dies-while-away", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 42"
    );
    assert!(
        env.berth(&["logs", "survivor"])
            .stdout
            .starts_with("before\n")
    );
    assert_eq!(
        env.berth(&["exec", "survivor", "echo", "still-here"]).ok(),
        "still-here"
    );
    env.berth(&["stop", "-t", "1", "survivor"]).ok();
    assert_eq!(env.inspect("survivor", "{{.State.Status}}"), "exited");
    // A clean restart keeps them too.
    env.berth(&["start", "survivor"]).ok();
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon();
    assert_eq!(env.inspect("survivor", "{{.State.Status}}"), "running");
    env.berth(&["rm", "-f", "survivor", "dies-while-away"]).ok();
}

/// `ps -s` / `inspect -s` (berth and docker CLIs): `SizeRw` is the bytes the container wrote
/// (its writable layer), `SizeRootFs` that plus its image; without `-s` neither is sent.
fn ps_and_inspect_report_sizes(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "sized0",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /big && touch /written && sleep 300",
    ])
    .ok();
    assert!(env.eventually(10, || {
        env.berth(&["exec", "sized0", "test", "-f", "/written"])
            .code
            == 0
    }));
    let sizes = env
        .berth(&[
            "inspect",
            "-s",
            "-f",
            "{{.SizeRw}} {{.SizeRootFs}}",
            "sized0",
        ])
        .ok();
    let (rw, root_fs) = sizes.split_once(' ').expect("two numbers");
    let (rw, root_fs): (i64, i64) = (rw.parse().unwrap(), root_fs.parse().unwrap());
    let image: i64 = env
        .berth(&["image", "inspect", "-f", "{{.Size}}", "busybox"])
        .ok()
        .parse()
        .unwrap();
    assert!(
        (100_000..110_000).contains(&rw),
        "SizeRw counts the written file: {sizes}"
    );
    assert_eq!(
        root_fs,
        rw + image,
        "SizeRootFs = SizeRw + the image's size"
    );
    let plain: serde_json::Value =
        serde_json::from_str(&env.berth(&["inspect", "sized0"]).ok()).unwrap();
    assert!(
        plain[0].get("SizeRw").is_none() && plain[0].get("SizeRootFs").is_none(),
        "sizes only with -s"
    );
    let row = env
        .berth(&[
            "ps",
            "-s",
            "--filter",
            "name=sized0",
            "--format",
            "{{.Size}}",
        ])
        .ok();
    assert!(row.starts_with("100kB (virtual "), "berth ps -s: {row}");
    if let Some(r) = env.docker(&[
        "inspect",
        "-s",
        "-f",
        "{{.SizeRw}} {{.SizeRootFs}}",
        "sized0",
    ]) {
        assert_eq!(r.ok(), sizes, "docker inspect -s reads the same numbers");
        let row = env
            .docker(&[
                "ps",
                "-s",
                "--filter",
                "name=sized0",
                "--format",
                "{{.Size}}",
            ])
            .unwrap()
            .ok();
        assert!(row.contains(" (virtual "), "docker ps -s: {row}");
        assert!(!row.starts_with("0B"), "docker ps -s: {row}");
    } else {
        eprintln!("docker CLI not installed: the docker half is skipped");
    }
    env.berth(&["rm", "-f", "sized0"]).ok();
}
