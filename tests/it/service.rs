//! berth as a system service: daemon.json, systemd socket activation and readiness, the
//! socket's group and the permission message for other users, the start-up guards (one daemon
//! per data root, live and stale sockets, overlay support), hello-world offline, and the Debian
//! package (install, run, upgrade with a running container, remove, purge).
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Test;
use crate::harness::{Run, TestEnv, berth_exe, cgroup_parent, remove_network_state};

/// The tests of this module.
pub const TESTS: &[Test] = &[
    (
        "service_config_file_errors_refuse_to_start",
        config_file_errors_refuse_to_start,
    ),
    (
        "service_sighup_reloads_and_info_shows_the_config",
        sighup_reloads_and_info_shows_the_config,
    ),
    (
        "service_socket_activation_and_readiness",
        socket_activation_and_readiness,
    ),
    ("service_units_verify", units_verify),
    (
        "service_group_members_only_and_the_permission_message",
        group_members_only_and_the_permission_message,
    ),
    (
        "service_one_daemon_per_data_root_and_socket",
        one_daemon_per_data_root_and_socket,
    ),
    (
        "service_data_root_without_overlay_is_refused_at_start",
        data_root_without_overlay_is_refused_at_start,
    ),
    ("service_hello_world_offline", hello_world_offline),
    (
        "service_run_rm_rootfs_is_volatile",
        run_rm_rootfs_is_volatile,
    ),
    (
        "service_system_reset_removes_everything",
        reset::removes_everything,
    ),
    (
        "service_monitor_protocol_versions",
        monitor_version::older_spoken_unknown_refused,
    ),
    (
        "service_package_install_upgrade_remove_purge",
        package_install_upgrade_remove_purge,
    ),
    (
        "service_bip_and_default_ulimits_apply",
        bip_and_default_ulimits_apply,
    ),
];

fn run(command: &mut Command) -> Run {
    let out = command.stdin(Stdio::null()).output().expect("run");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn sh(script: &str) -> Run {
    run(Command::new("sh").args(["-c", script]))
}

/// A daemon of one test: its own directory (short: the exec root holds monitor sockets), no
/// default bridge, an nft table of its own; stopped and cleaned up when dropped.
struct Private {
    dir: PathBuf,
    table: String,
    config: PathBuf,
    /// The suite's cgroup parent, unless a test needs one of its own.
    cgroup_parent: String,
    /// The default bridge: `none`, unless a test needs one (then named as the table).
    bridge: String,
    child: Option<Child>,
}

impl Private {
    fn new(env: &TestEnv, tag: &str, config: &str) -> Private {
        let dir = env.root.join(tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the daemon's dir");
        let config_path = dir.join("daemon.json");
        std::fs::write(&config_path, config).expect("write daemon.json");
        Private {
            table: format!("{tag}{}", std::process::id()),
            dir,
            config: config_path,
            cgroup_parent: cgroup_parent(),
            bridge: "none".into(),
            child: None,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// `berth daemon` with this daemon's roots and `extra` flags (not spawned).
    fn command(&self, program: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .arg("daemon")
            .arg("--config-file")
            .arg(&self.config)
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("r"))
            .args(["--bridge", &self.bridge, "--nft-table", &self.table])
            .args(["--cgroup-parent", &self.cgroup_parent])
            .args(extra)
            .stdin(Stdio::null());
        command
    }

    /// Starts the daemon on its socket (plus `extra` flags) and waits until it answers.
    fn start(&mut self, extra: &[&str]) {
        let log = std::fs::File::create(self.dir.join("log")).expect("log");
        let child = self
            .command(&berth_exe(), &[&["-H", &self.host()][..], extra].concat())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn the daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(Instant::now() < deadline, "no daemon: {}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn berth(&self, args: &[&str]) -> Run {
        run(Command::new(berth_exe())
            .env("BERTH_HOST", self.host())
            .env_remove("DOCKER_HOST")
            .args(args))
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.berth(&["ps", "-aq"]).stdout;
            for id in ids.split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]);
            }
        }
        self.stop();
        let _ = remove_network_state(&self.table, &self.table);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A daemon that must refuse to start: its exit code and stderr.
fn refused(daemon: &Private, extra: &[&str]) -> Run {
    let mut command = daemon.command(&berth_exe(), extra);
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the daemon started but should have been refused");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn config_file_errors_refuse_to_start(env: &TestEnv) {
    for (config, extra, wanted) in [
        (
            r#"{"debug": true, "storage-driver": "vfs", "bogus": 1}"#,
            &[][..],
            "the following directives don't match any configuration option: bogus, storage-driver",
        ),
        (
            r#"{"debug": false, "group": "root"}"#,
            &["-D"][..],
            "the following directives are specified both as a flag and in the configuration file: debug: (from flag: true, from file: false)",
        ),
        (
            "{\n  \"debug\": true\n  \"group\": \"root\"\n}",
            &[][..],
            "at line 3 column 3",
        ),
        (
            "{\n  \"group\": \"root\",\n  \"max-concurrent-downloads\": \"many\"\n}",
            &[][..],
            "invalid value for \"max-concurrent-downloads\" at line 3",
        ),
        (
            r#"{"group": "no-such-group-here"}"#,
            &[][..],
            "group \"no-such-group-here\" not found",
        ),
    ] {
        let daemon = Private::new(env, "sc", config);
        let r = refused(&daemon, extra);
        assert_ne!(r.code, 0, "{config}: {r:?}");
        assert!(r.stderr.contains(wanted), "{config}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
        assert!(
            !daemon.dir.join("data").exists(),
            "nothing made for a refused configuration"
        );
    }
    let daemon = Private::new(env, "sc", "{}");
    let r = run(Command::new(berth_exe()).args([
        "daemon",
        "--config-file",
        "/nonexistent/daemon.json",
    ]));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("/nonexistent/daemon.json"),
        "{}",
        r.stderr
    );
    drop(daemon);
}

fn info(daemon: &Private, template: &str) -> String {
    daemon.berth(&["info", "--format", template]).ok()
}

fn sighup_reloads_and_info_shows_the_config(env: &TestEnv) {
    let mut daemon = Private::new(
        env,
        "sh",
        r#"{"debug": false, "registry-mirrors": ["https://a.example"],
            "insecure-registries": ["10.1.2.3:5000"], "live-restore": true,
            "log-opts": {"max-size": "1m"}, "max-concurrent-downloads": 2}"#,
    );
    daemon.start(&["--log-driver", "json-file"]);
    daemon.berth(&["image", "bootstrap", "hello-world"]).ok();
    let log_config = |name: &str| {
        daemon
            .berth(&["create", "--name", name, "--network", "none", "hello-world"])
            .ok();
        daemon
            .berth(&[
                "inspect",
                "--format",
                "{{json .HostConfig.LogConfig}}",
                name,
            ])
            .ok()
    };
    assert_eq!(
        log_config("l1"),
        r#"{"Config":{"max-size":"1m"},"Type":"json-file"}"#
    );
    let shown =
        "{{.Debug}} {{json .RegistryConfig.Mirrors}} {{.LoggingDriver}} {{.LiveRestoreEnabled}}";
    assert_eq!(
        info(&daemon, shown),
        r#"false ["https://a.example"] json-file true"#
    );
    assert_eq!(
        info(
            &daemon,
            "{{(index .RegistryConfig.IndexConfigs \"10.1.2.3:5000\").Secure}}"
        ),
        "false"
    );
    let human = daemon.berth(&["info"]).ok();
    assert!(human.contains("Debug Mode: false"), "{human}");
    assert!(human.contains("  https://a.example"), "{human}");
    assert!(human.contains("  10.1.2.3:5000"), "{human}");
    let hup = |pid: u32| {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    };

    std::fs::write(
        &daemon.config,
        r#"{"debug": true, "registry-mirrors": ["https://b.example"], "log-opts": {"max-file": "3"}}"#,
    )
    .expect("rewrite");
    hup(daemon.pid());
    assert!(
        env.eventually(10, || info(&daemon, shown)
            == r#"true ["https://b.example"] json-file true"#),
        "reloaded: {}",
        info(&daemon, shown)
    );
    // New containers get the new log defaults.
    assert_eq!(
        log_config("l2"),
        r#"{"Config":{"max-file":"3"},"Type":"json-file"}"#
    );
    // debug: the log level follows.
    assert!(
        env.eventually(5, || daemon
            .log()
            .contains("DEBUG berth_daemon::server: debug logging on")),
        "{}",
        daemon.log()
    );

    // A file that does not parse, or names a flag's key, changes nothing; the daemon serves on.
    for bad in [r#"{"debug": fals"#, r#"{"log-driver": "json-file"}"#] {
        std::fs::write(&daemon.config, bad).expect("rewrite");
        hup(daemon.pid());
        assert!(
            env.eventually(10, || daemon
                .log()
                .matches("configuration not reloaded")
                .count()
                >= if bad.contains("fals") { 1 } else { 2 }),
            "{}",
            daemon.log()
        );
        assert_eq!(
            info(&daemon, shown),
            r#"true ["https://b.example"] json-file true"#
        );
    }
}

/// Waits for `wanted` on a notify socket.
fn notified(socket: &UnixDatagram, wanted: &str) -> Vec<String> {
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = message.lines().any(|l| l == wanted);
        seen.push(message);
        if done {
            break;
        }
    }
    seen
}

/// Kilobytes of the process's resident set.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn socket_activation_and_readiness(env: &TestEnv) {
    let Some(activate) = [
        "/usr/bin/systemd-socket-activate",
        "/bin/systemd-socket-activate",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists()) else {
        crate::skip("systemd-socket-activate is not installed (scripts/deps.sh installs systemd)")
    };
    let mut daemon = Private::new(env, "sa", "{}");
    let notify_path = daemon.dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    // The second round names the socket with -H too: served from systemd's descriptor, not
    // refused as taken nor bound again.
    let host = daemon.host();
    for (round, extra) in [
        ("cold, hello-world bootstrapped on first use", vec![]),
        (
            "cold, image present, -H naming the socket",
            vec!["-H", host.as_str()],
        ),
    ] {
        let _ = std::fs::remove_file(daemon.socket());
        let mut command = Command::new(activate);
        command
            .arg("-l")
            .arg(daemon.socket())
            .args(["-E", "NOTIFY_SOCKET"])
            .env("NOTIFY_SOCKET", &notify_path)
            .arg(berth_exe());
        let daemon_args = daemon.command(&berth_exe(), &extra);
        command.args(daemon_args.get_args());
        let log = std::fs::File::create(daemon.dir.join("log")).expect("log");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn systemd-socket-activate");
        let pid = child.id();
        daemon.child = Some(child);
        assert!(
            env.eventually(10, || daemon.socket().exists()),
            "{}",
            daemon.log()
        );
        // Nothing runs berth yet: the socket waits for the first client.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
        assert!(
            !exe.ends_with("berth"),
            "{exe:?} started before a client came"
        );

        let started = Instant::now();
        let r = daemon.berth(&["run", "--rm", "--network", "none", "hello-world"]);
        let elapsed = started.elapsed();
        assert_eq!(r.code, 0, "{r:?}\n{}", daemon.log());
        assert!(r.stdout.contains("Hello from berth!"), "{r:?}");
        let seen = notified(&notify, "READY=1");
        assert!(
            seen.iter().any(|m| m.lines().any(|l| l == "READY=1")),
            "{seen:?}"
        );
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
        assert_eq!(exe, berth_exe(), "the daemon took the socket over");
        assert!(daemon.log().contains("activated=true"), "{}", daemon.log());
        println!(
            "    measured: socket-activated `berth run --rm hello-world` ({round}): {} ms; idle daemon RSS after it: {} KiB",
            elapsed.as_millis(),
            rss_kib(pid)
        );
        daemon.stop();
        let seen = notified(&notify, "STOPPING=1");
        assert!(seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");
        // systemd owns the socket file: the daemon leaves it.
        assert!(daemon.socket().exists());
    }
    // -H fd:// with no socket passed is an error that says so.
    let r = refused(&daemon, &["-H", "fd://"]);
    assert!(r.stderr.contains("systemd passed no such socket"), "{r:?}");
}

fn units_verify(_env: &TestEnv) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let service = std::fs::read_to_string(root.join("packaging/berth.service")).expect("read");
    // The unit names /usr/bin/berth; verify checks that the command exists.
    let service = service.replace("/usr/bin/berth", &berth_exe().display().to_string());
    std::fs::write(dir.path().join("berth.service"), service).expect("write");
    std::fs::copy(
        root.join("packaging/berth.socket"),
        dir.path().join("berth.socket"),
    )
    .expect("copy");
    let r = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("berth.socket"))
        .arg(dir.path().join("berth.service")));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr.trim(), "", "no warnings");
    let socket = std::fs::read_to_string(root.join("packaging/berth.socket")).expect("read");
    for line in [
        "ListenStream=/run/berth/berth.sock",
        "SocketMode=0660",
        "SocketGroup=berth",
    ] {
        assert!(socket.lines().any(|l| l == line), "{line}");
    }
}

/// A user and a group made for one test, removed when dropped.
struct Users {
    group: String,
    member: String,
    outsider: String,
}

impl Users {
    fn new() -> Users {
        let id = std::process::id();
        let users = Users {
            group: format!("bgrp{id}"),
            member: format!("bmem{id}"),
            outsider: format!("bout{id}"),
        };
        let r = run(Command::new("groupadd").arg(&users.group));
        assert_eq!(r.code, 0, "{r:?}");
        for (user, extra) in [
            (&users.member, vec!["-G", &users.group]),
            (&users.outsider, vec![]),
        ] {
            let r = run(Command::new("useradd")
                .args(["-M", "-N", "-s", "/usr/sbin/nologin"])
                .args(extra)
                .arg(user));
            assert_eq!(r.code, 0, "{r:?}");
        }
        users
    }

    fn as_user(&self, user: &str, program: &Path, args: &[&str]) -> Run {
        run(Command::new("setpriv")
            .args(["--reuid", user, "--regid", "users", "--init-groups"])
            .arg(program)
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("BERTH_HOST")
            .env("HOME", "/tmp"))
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for user in [&self.member, &self.outsider] {
            let _ = run(Command::new("userdel").arg(user));
        }
        let _ = run(Command::new("groupdel").arg(&self.group));
    }
}

fn group_members_only_and_the_permission_message(env: &TestEnv) {
    let users = Users::new();
    let mut daemon = Private::new(env, "sg", "{}");
    std::fs::set_permissions(&daemon.dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    daemon.start(&["--group", &users.group]);
    let meta = std::fs::metadata(daemon.socket()).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let gid = run(Command::new("getent").args(["group", &users.group]))
        .ok()
        .split(':')
        .nth(2)
        .and_then(|g| g.parse::<u32>().ok())
        .expect("gid");
    assert_eq!(meta.gid(), gid);

    let host = daemon.host();
    let member = users.as_user(
        &users.member,
        &berth_exe(),
        &["-H", &host, "version", "--format", "{{.Server.Version}}"],
    );
    assert_eq!(member.code, 0, "{member:?}");
    assert!(!member.stdout.trim().is_empty());

    let outsider = users.as_user(&users.outsider, &berth_exe(), &["-H", &host, "ps"]);
    assert_eq!(outsider.code, 1, "{outsider:?}");
    assert_eq!(
        outsider.stderr,
        format!(
            "permission denied while trying to connect to the berth daemon socket at {host}: add yourself to the '{}' group\n",
            users.group
        )
    );
    if let Some(docker) = crate::harness::docker_exe() {
        let r = users.as_user(&users.outsider, &docker, &["-H", &host, "ps"]);
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("permission denied"), "{r:?}");
    }
}

fn one_daemon_per_data_root_and_socket(env: &TestEnv) {
    let holder = std::fs::read_to_string(env.run_root.join("berth.pid"))
        .expect("the test daemon's pid")
        .trim()
        .to_owned();
    // The test daemon's data root, from another socket and run root.
    let other = Private::new(env, "sd", "{}");
    let r = run(Command::new(berth_exe())
        .args(["daemon", "--config-file"])
        .arg(&other.config)
        .args([
            "-H",
            &other.host(),
            "--bridge",
            "none",
            "--nft-table",
            &other.table,
        ])
        .arg("--data-root")
        .arg(&env.data_root)
        .arg("--exec-root")
        .arg(other.dir.join("r")));
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.trim(),
        format!(
            "berth daemon: the data root {} is in use by another berth daemon (pid {holder}); stop it first or choose another --data-root",
            env.data_root.display()
        )
    );
    assert!(!other.socket().exists());

    // The test daemon's socket, with another data root: refused, and it keeps serving.
    let r = refused(&other, &["-H", &env.host()]);
    assert!(
        r.stderr
            .contains("another berth daemon is already listening on"),
        "{r:?}"
    );
    assert_eq!(env.berth(&["version", "--format", "ok"]).ok(), "ok");

    // A stale socket (nobody listens) is replaced.
    let mut stale = Private::new(env, "ss", "{}");
    drop(UnixListener::bind(stale.socket()).expect("bind"));
    assert!(stale.socket().exists());
    stale.start(&[]);
    assert_eq!(stale.berth(&["version", "--format", "ok"]).ok(), "ok");
    // The lock file names the holder.
    let lock = std::fs::read_to_string(stale.dir.join("data/berth.lock")).expect("lock");
    assert_eq!(lock.trim(), stale.pid().to_string());
}

fn data_root_without_overlay_is_refused_at_start(env: &TestEnv) {
    let daemon = Private::new(env, "so", "{}");
    let d = daemon.dir.display().to_string();
    // An overlay mount as the data root's filesystem (overlayfs cannot be an upper layer), in
    // a mount namespace of this script only: nothing is left on the host.
    let mut command = daemon.command(&berth_exe(), &["-H", &daemon.host()]);
    let args: Vec<String> = command
        .get_args()
        .map(|a| {
            a.to_string_lossy()
                .replace(&format!("{d}/data"), &format!("{d}/m/data"))
        })
        .collect();
    command.stdout(Stdio::null());
    let script = format!(
        "mkdir -p {d}/l {d}/u {d}/w {d}/m && mount --make-rprivate / && \
         mount -t overlay overlay -o lowerdir={d}/l,upperdir={d}/u,workdir={d}/w {d}/m && \
         mkdir -p {d}/m/data && exec {} {}",
        berth_exe().display(),
        args.join(" ")
    );
    let r = run(Command::new("unshare").args(["-m", "sh", "-c", &script]));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "the data root {d}/m/data is on a filesystem without overlay support"
        )),
        "{r:?}"
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{r:?}");
    assert!(!daemon.socket().exists(), "refused before listening");
}

fn hello_world_offline(env: &TestEnv) {
    let _ = env.berth(&["rmi", "hello-world"]);
    let r = env.berth(&["image", "bootstrap", "hello-world"]);
    assert_eq!(r.code, 0, "{r:?}");
    let size: u64 = env
        .berth(&["image", "inspect", "--format", "{{.Size}}", "hello-world"])
        .ok()
        .parse()
        .expect("size");
    assert!(size < 4096, "a tiny image: {size} bytes");
    let r = env.berth(&["run", "--rm", "hello-world"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("\nHello from berth!\n"), "{r:?}");
    // First use bootstraps it.
    env.berth(&["rmi", "hello-world"]).ok();
    let r = env.berth(&["run", "--rm", "hello-world"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello from berth!"), "{r:?}");
    assert!(
        r.stderr
            .contains("Unable to find image 'hello-world:latest' locally"),
        "{r:?}"
    );
    env.berth(&["rmi", "hello-world"]).ok();
}

/// The options of the container's root mount, as the container sees them.
fn root_mount_options(env: &TestEnv, args: &[&str]) -> String {
    let r = env.berth(
        &[
            &["run", "--network", "none"][..],
            args,
            &["busybox", "cat", "/proc/self/mountinfo"],
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_default()
        .to_owned()
}

/// A `--rm` container's overlay is volatile: its exit does not wait for the host file
/// system's dirty pages (overlayfs syncs the upper file system at unmount otherwise: ~0.8 s
/// with 1.5 GB being written beside the data root). Other containers keep durable layers.
fn run_rm_rootfs_is_volatile(env: &TestEnv) {
    let removed = root_mount_options(env, &["--rm"]);
    assert!(
        removed.contains(" overlay ") && removed.contains("volatile"),
        "{removed}"
    );
    let kept = root_mount_options(env, &["--name", "durable"]);
    assert!(
        kept.contains(" overlay ") && !kept.contains("volatile"),
        "{kept}"
    );
    env.berth(&["rm", "durable"]).ok();
}

fn package_install_upgrade_remove_purge(env: &TestEnv) {
    package::install_upgrade_remove_purge(env);
}

mod monitor_version;
mod package;
mod reset;

/// daemon.json's `bip` and `default-ulimits` take effect (both were accepted and ignored):
/// the default bridge has the given address and moves when it changes (no container being
/// attached), containers get the default ulimits their own `--ulimit`s do not set, and bad
/// values refuse the start in one line.
fn bip_and_default_ulimits_apply(env: &TestEnv) {
    let mut daemon = Private::new(
        env,
        "bip",
        r#"{"bip": "10.124.9.1/24",
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 2345, "Soft": 1234},
                                "nproc": {"Name": "nproc", "Hard": 700, "Soft": 600}}}"#,
    );
    daemon.bridge = daemon.table.clone();
    daemon.start(&[]);
    daemon.berth(&["image", "bootstrap", "busybox"]).ok();
    let ipam = "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}";
    assert_eq!(
        daemon
            .berth(&["network", "inspect", "-f", ipam, "bridge"])
            .ok(),
        "10.124.9.0/24 10.124.9.1"
    );
    let script = "ip -4 -o addr show eth0; ulimit -n; ulimit -Hn; ulimit -u";
    let out = daemon
        .berth(&["run", "--rm", "busybox", "sh", "-c", script])
        .ok();
    assert!(out.contains("inet 10.124.9.2/24"), "{out}");
    assert!(out.ends_with("1234\n2345\n600"), "{out}");
    let own = daemon
        .berth(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=100:200",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -u",
        ])
        .ok();
    assert_eq!(
        own, "100\n600",
        "a container's own --ulimit wins over the default"
    );

    // A new bip with no container attached: the bridge moves.
    daemon.stop();
    std::fs::write(&daemon.config, r#"{"bip": "10.124.10.1/24"}"#).unwrap();
    daemon.start(&[]);
    assert_eq!(
        daemon
            .berth(&["network", "inspect", "-f", ipam, "bridge"])
            .ok(),
        "10.124.10.0/24 10.124.10.1"
    );
    let addrs = sh(&format!("ip -4 -o addr show dev {}", daemon.bridge));
    assert!(
        addrs.stdout.contains("10.124.10.1/24") && !addrs.stdout.contains("10.124.9."),
        "{addrs:?}"
    );
    daemon.stop();

    std::fs::write(&daemon.config, "{}").unwrap();
    for (flags, says) in [
        (
            &["--bip", "10.124.9.0/24"][..],
            "invalid value for bip: \"10.124.9.0/24\"",
        ),
        (
            &["--default-ulimit", "nofiles=1:2"][..],
            "invalid ulimit type: nofiles",
        ),
    ] {
        let r = refused(&daemon, flags);
        assert!(r.code != 0 && r.stderr.contains(says), "{flags:?}: {r:?}");
    }
}
