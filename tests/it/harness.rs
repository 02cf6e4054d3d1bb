//! The integration-test environment: one berth daemon of our own (own socket, data root and run
//! root under a temp dir), the busybox image bootstrapped into it, and helpers to run the
//! `berth` and `docker` CLIs against it. Everything is torn down and checked for leaks at the end.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether a default daemon's bridge `berth0` was on the host before the run: if not, none may
/// be after it (a test's extra daemon without `--bridge` would leave one).
static DEFAULT_BRIDGE_AT_START: OnceLock<bool> = OnceLock::new();

/// The test daemon's `BERTH_LOAD_SIZE_LIMIT` (bytes).
pub const LOAD_SIZE_LIMIT: u64 = 16 * 1024 * 1024;

/// The berth binary under test: this build's, or `BERTH_TEST_BERTH` (e.g. an older build, to
/// show a test failing on the code before a fix).
pub fn berth_exe() -> PathBuf {
    std::env::var_os("BERTH_TEST_BERTH")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth")), PathBuf::from)
}

/// The real docker CLI, when present.
pub fn docker_exe() -> Option<PathBuf> {
    ["/usr/local/bin/docker", "/usr/bin/docker"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Skips a test that needs the docker CLI where it is not installed.
fn no_docker() -> PathBuf {
    crate::skip("the docker CLI is not installed (scripts/deps.sh installs docker.io)")
}

/// A running test daemon.
#[derive(Debug)]
pub struct TestEnv {
    /// Temp dir holding everything.
    pub root: PathBuf,
    /// Data root.
    pub data_root: PathBuf,
    /// Run root.
    pub run_root: PathBuf,
    /// The socket.
    pub socket: PathBuf,
    /// The daemon's default bridge and nft table (`bt<pid>`), so a run never touches
    /// another berth's.
    pub bridge: String,
    daemon: std::sync::Mutex<Option<Child>>,
    cgroups_before: Vec<PathBuf>,
    /// berth's parent cgroup dirs that did not exist before the run (removed at teardown).
    parents_missing_before: Vec<PathBuf>,
}

/// The cgroup parent of this run's containers (`--cgroup-parent`), so runs on the same host
/// never see each other's cgroups.
pub fn cgroup_parent() -> String {
    format!("berth-it-{}", std::process::id())
}

/// This run's cgroup parent dir in every cgroup hierarchy of this host.
fn berth_cgroup_parents() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/sys/fs/cgroup").join(cgroup_parent())];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        out.extend(rd.flatten().map(|e| e.path().join(cgroup_parent())));
    }
    out
}

/// This run's containers' cgroup dirs on this host right now.
fn berth_cgroups() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for parent in berth_cgroup_parents() {
        if let Ok(rd) = std::fs::read_dir(&parent) {
            out.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    out
}

/// The result of a CLI run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// Asserts success and returns trimmed stdout.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code, 0,
            "command failed: stdout={:?} stderr={:?}",
            self.stdout, self.stderr
        );
        self.stdout.trim().to_string()
    }
}

impl TestEnv {
    /// Starts a daemon in a fresh temp dir and bootstraps busybox.
    pub fn start() -> TestEnv {
        DEFAULT_BRIDGE_AT_START.get_or_init(|| Path::new("/sys/class/net/berth0").exists());
        // Short: monitor sockets live at <root>/run/containers/<64 hex>/monitor.sock, and a unix
        // socket path must fit in 108 bytes.
        let root = PathBuf::from(format!("/tmp/bit{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create test root");
        let env = TestEnv {
            data_root: root.join("data"),
            run_root: root.join("run"),
            socket: root.join("run/berth.sock"),
            bridge: format!("bt{}", std::process::id()),
            root,
            daemon: std::sync::Mutex::new(None),
            cgroups_before: berth_cgroups(),
            parents_missing_before: berth_cgroup_parents()
                .into_iter()
                .filter(|p| !p.exists())
                .collect(),
        };
        env.start_daemon();
        let r = env.berth(&["image", "bootstrap", "busybox"]);
        assert_eq!(r.code, 0, "bootstrap failed: {r:?}");
        env
    }

    /// `unix://…` for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The daemon's resolver configuration: no upstream servers, so the embedded DNS answers
    /// unknown names itself (NXDOMAIN) and tests send no query off the host.
    fn resolv_conf(&self) -> PathBuf {
        let path = self.root.join("resolv.conf");
        std::fs::write(
            &path,
            "# berth integration tests: no upstream resolvers
",
        )
        .expect("write resolv.conf");
        path
    }

    /// An empty daemon.json for the test daemon.
    pub fn empty_config(&self) -> PathBuf {
        let path = self.root.join("daemon.json");
        std::fs::write(&path, "{}\n").expect("write daemon.json");
        path
    }

    /// Starts (or restarts) the daemon and waits until it answers.
    pub fn start_daemon(&self) {
        self.start_daemon_with(&[]);
    }

    /// [`TestEnv::start_daemon`] with extra daemon flags.
    pub fn start_daemon_with(&self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("daemon.log"))
            .expect("daemon log");
        let mut command = Command::new(berth_exe());
        // (Not for another build under test: an older one may not know the flag.)
        let runc = ["/usr/sbin/runc", "/usr/bin/runc"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .filter(|_| std::env::var_os("BERTH_TEST_BERTH").is_none());
        if let Some(runc) = runc {
            // security.rs runs a configured runtime by this name.
            command
                .arg("daemon")
                .arg("--add-runtime")
                .arg(format!("test-runc={runc}"));
        } else {
            command.arg("daemon");
        }
        let child = command
            .args(["-H", &self.host(), "--data-root"])
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.run_root)
            .args(["--log-level", "debug"])
            .args(["--bridge", &self.bridge, "--nft-table", &self.bridge])
            .args(["--cgroup-parent", &cgroup_parent()])
            .arg("--resolv-conf")
            .arg(self.resolv_conf())
            .args(extra)
            // The host's /etc/berth/daemon.json (an installed package's) is not this daemon's.
            .arg("--config-file")
            .arg(self.empty_config())
            // Small enough that archive.rs's compression bombs stop quickly.
            .env("BERTH_LOAD_SIZE_LIMIT", LOAD_SIZE_LIMIT.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        *self.daemon.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not come up; log:\n{}", self.daemon_log());
    }

    /// Sends `signal` to the daemon and reaps it.
    pub fn stop_daemon(&self, signal: i32) {
        if let Some(mut c) = self.daemon.lock().unwrap().take() {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(c.id() as i32, signal) };
            let _ = c.wait();
        }
    }

    /// The daemon's pid (0 when it is not running).
    pub fn daemon_pid(&self) -> i32 {
        self.daemon
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |c| c.id() as i32)
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    fn cmd(&self, exe: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(exe);
        c.args(args)
            .env("DOCKER_HOST", self.host())
            .env("BERTH_HOST", self.host())
            .env("DOCKER_CONFIG", self.root.join("docker-config"))
            .env_remove("DOCKER_API_VERSION")
            .stdin(Stdio::null());
        c
    }

    /// Runs `berth ARGS` against the test daemon.
    pub fn berth(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(&berth_exe(), args).output().expect("run berth"))
    }

    /// Runs `berth ARGS` with `input` on stdin.
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut c = self
            .cmd(&berth_exe(), args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        Run::from(c.wait_with_output().expect("wait berth"))
    }

    /// Spawns `berth ARGS` without waiting.
    pub fn berth_spawn(&self, args: &[&str]) -> Child {
        self.cmd(&berth_exe(), args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth")
    }

    /// Runs the real `docker ARGS` against the test daemon; skips the test when docker is
    /// absent (so always `Some`).
    pub fn docker(&self, args: &[&str]) -> Option<Run> {
        let exe = docker_exe().unwrap_or_else(no_docker);
        Some(Run::from(
            self.cmd(&exe, args).output().expect("run docker"),
        ))
    }

    /// Runs the real docker with stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Option<Run> {
        use std::io::Write;
        let exe = docker_exe().unwrap_or_else(no_docker);
        let mut c = self
            .cmd(&exe, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn docker");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        Some(Run::from(c.wait_with_output().expect("wait docker")))
    }

    /// An API request over the daemon's socket with curl: (HTTP status, body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-m",
            "30",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
        ])
        .arg("--unix-socket")
        .arg(&self.socket);
        if let Some(body) = body {
            c.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        }
        let out = c
            .arg(format!("http://localhost{path}"))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// Imports a busybox root filesystem as image `name`, after `customize` changed its tree
    /// (a directory on the host, removed afterwards).
    pub fn image_from_tree(&self, name: &str, customize: impl FnOnce(&Path)) {
        let dir = self
            .root
            .join(format!("tree-{}", name.replace([':', '/'], "-")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
        for applet in ["sh", "cat", "echo", "ls", "true", "sleep", "tty", "id"] {
            std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
        }
        customize(&dir);
        let tar = dir.with_extension("tar");
        tar_dir(&dir, &tar);
        self.berth(&["import", tar.to_str().unwrap(), name]).ok();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_file(&tar).unwrap();
    }

    /// `inspect -f TEMPLATE NAME`.
    pub fn inspect(&self, name: &str, template: &str) -> String {
        self.berth(&["inspect", "-f", template, name]).ok()
    }

    /// Polls `f` until it is true or `secs` pass.
    pub fn eventually(&self, secs: u64, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Removes what the daemon keeps across restarts on the host (its default bridge, its nft
    /// table, its iptables accept rules), then reports anything of it still there.
    fn remove_network_state(&self) -> Vec<String> {
        remove_network_state(&self.bridge, &self.bridge)
    }

    /// Removes every container, stops the daemon, and reports what leaked.
    pub fn teardown(&self) -> Vec<String> {
        let ids = self.berth(&["ps", "-aq"]).stdout;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().copied());
            let _ = self.berth(&args);
        }
        let mut leaks = Vec::new();
        let networks = self
            .berth(&["network", "ls", "--format", "{{.Name}}"])
            .stdout;
        for n in networks
            .split_whitespace()
            .filter(|n| !["bridge", "host", "none"].contains(n))
        {
            leaks.push(format!("network: {n}"));
        }
        let _ = self.berth(&["network", "prune", "-f"]);
        // The kernel deletes a veth pair when its container's namespace goes, shortly after.
        let on_bridge = || {
            let out = Command::new("ip")
                .args(["-o", "link", "show", "master", &self.bridge])
                .output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        if !self.eventually(10, || on_bridge().is_empty()) {
            leaks.push(format!("veths on {}: {}", self.bridge, on_bridge()));
        }
        self.stop_daemon(libc::SIGTERM);
        leaks.extend(self.remove_network_state());
        if DEFAULT_BRIDGE_AT_START.get() == Some(&false)
            && Path::new("/sys/class/net/berth0").exists()
        {
            leaks.push("default bridge berth0 (a daemon started without --bridge)".into());
            leaks.extend(remove_network_state("berth0", "berth"));
        }
        // Devices and namespaces the network tests make carry this process's id.
        let pid = std::process::id().to_string();
        let (links, netns) = (
            Command::new("ip").args(["-o", "link"]).output(),
            Command::new("ip").args(["netns", "list"]).output(),
        );
        for (what, out) in [("link", links), ("netns", netns)] {
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            // The name: `5: vo1234@if4: <…>` for links, `bo1234 (id: 0)` for namespaces.
            let names = text.lines().filter_map(|l| {
                let word = if what == "link" {
                    l.split_whitespace().nth(1)?
                } else {
                    l.split_whitespace().next()?
                };
                Some(word.trim_end_matches(':').split('@').next()?.to_string())
            });
            for name in names.filter(|n| n.ends_with(&pid)) {
                leaks.push(format!("{what}: {name}"));
            }
        }
        let root = self.root.display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for l in mounts.lines().filter(|l| l.contains(&root)) {
            leaks.push(format!("mount: {l}"));
        }
        for p in berth_cgroups() {
            if !self.cgroups_before.contains(&p) {
                leaks.push(format!("cgroup: {}", p.display()));
            }
        }
        // Leave the host as we found it: the parents berth made for this run go too.
        for p in &self.parents_missing_before {
            let _ = std::fs::remove_dir(p);
        }
        let out = Command::new("pgrep").args(["-fa", &root]).output();
        if let Ok(o) = out {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                leaks.push(format!("process: {l}"));
            }
        }
        if leaks.is_empty() && std::env::var_os("BERTH_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
        leaks
    }
}

/// Writes the contents of `dir` as a tar archive at `tar` (with `tar -C dir -cf tar .`).
pub fn tar_dir(dir: &Path, tar: &Path) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar of {}", dir.display());
}

/// Removes a berth daemon's host network state: bridge `bridge`, nft table `table`, and the
/// iptables FORWARD accepts for the bridge; returns what is still there after.
pub fn remove_network_state(bridge: &str, table: &str) -> Vec<String> {
    let _ = Command::new("ip").args(["link", "del", bridge]).output();
    for family in ["ip", "ip6"] {
        let _ = Command::new("nft")
            .args(["delete", "table", family, table])
            .output();
    }
    // iptables, and ip6tables for a dual-stack default bridge.
    let rules = |program: &str| {
        Command::new(program)
            .args(["-w", "5", "-S", "FORWARD"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let ours = |l: &&str| l.split_whitespace().any(|w| w == bridge);
    for program in ["iptables", "ip6tables"] {
        for line in rules(program).lines().filter(ours) {
            let args: Vec<&str> = line.split_whitespace().skip(2).collect();
            let _ = Command::new(program)
                .args(["-w", "5", "-D", "FORWARD"])
                .args(&args)
                .output();
        }
    }
    let mut leaks = Vec::new();
    if Path::new("/sys/class/net").join(bridge).exists() {
        leaks.push(format!("bridge: {bridge}"));
    }
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for family in ["ip", "ip6"] {
        if tables
            .lines()
            .any(|l| l.trim() == format!("table {family} {table}"))
        {
            leaks.push(format!("nft table: {family} {table}"));
        }
    }
    for program in ["iptables", "ip6tables"] {
        for line in rules(program).lines().filter(ours) {
            leaks.push(format!("{program} rule: {line}"));
        }
    }
    leaks
}
