//! Root integration tests: a real monitor process (`berth-monitor-test`) running busybox
//! containers, driven over its socket as the daemon drives it.
//!
//! Root tests (`#[ignore]`d; see `berth_testing`). Each test runs twice: with the external runtime
//! (`/usr/sbin/runc`, when installed) and with berth's own runtime. Each builds a busybox
//! rootfs in a temp dir and checks that nothing is left behind: no process, mount, socket,
//! pid file or cgroup.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_monitor::protocol::{
    EXIT_FILE, EXIT_FRAME, ExitStatus, MonitorConfig, PID_FILE, PROTOCOL_VERSION, Ready,
    RuntimeKind, SOCKET_FILE, SPEC_FILE,
};
use oci_spec::runtime::{RootBuilder, Spec};
use serde_json::{Value, json};

const RUNC: &str = "/usr/sbin/runc";
const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "hostname", "stty", "tty", "true", "ls", "tr",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Runc,
    Builtin,
}

/// Fails the test unless it can run here: root tests asked for ([`berth_testing`]), and for
/// the external runtime, `runc` installed (`scripts/deps.sh` installs it).
fn require(kind: Kind) {
    berth_testing::require_root();
    if kind == Kind::Runc {
        assert!(
            Path::new(RUNC).exists(),
            "{RUNC} is not installed (scripts/deps.sh installs it)"
        );
    }
}

/// Options of one test container.
struct Options {
    args: Vec<&'static str>,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    console_size: Option<(u16, u16)>,
    log_max_size: u64,
    log_driver: berth_monitor::logdriver::LogDriver,
    memory_limit: Option<i64>,
    /// Run on an overlay of the busybox tree (lower) with upper and work dirs.
    overlay: bool,
}

impl Options {
    fn new(args: &[&'static str]) -> Self {
        Options {
            args: args.to_vec(),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            console_size: None,
            log_max_size: 0,
            log_driver: berth_monitor::logdriver::LogDriver::JsonFile,
            memory_limit: None,
            overlay: false,
        }
    }
}

/// A container run by a monitor process, in its own temp dir.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    run_dir: PathBuf,
    log_path: PathBuf,
    id: String,
    monitor: Child,
    ready: Ready,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

impl Fixture {
    fn start(kind: Kind, options: &Options) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("bm")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        let run_dir = root.join("run");
        std::fs::create_dir(&run_dir).expect("run dir");
        let rootfs = if options.overlay {
            std::fs::create_dir(run_dir.join("rootfs")).expect("mount point");
            for dir in ["upper", "work"] {
                std::fs::create_dir(root.join(dir)).expect("overlay dir");
            }
            build_rootfs(&root.join("lower"));
            Some(berth_runtime::OverlayMount {
                lowerdirs: vec![root.join("lower")],
                upperdir: root.join("upper"),
                workdir: root.join("work"),
                volatile: false,
            })
        } else {
            build_rootfs(&run_dir.join("rootfs"));
            None
        };
        let id = format!(
            "bm{}x{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        write_spec(kind, &run_dir, &id, options);
        let log_path = root.join("container-json.log");
        let config = MonitorConfig {
            version: PROTOCOL_VERSION,
            id: id.clone(),
            run_dir: run_dir.clone(),
            rootfs,
            log_path: log_path.clone(),
            log_driver: options.log_driver.clone(),
            log_max_size: options.log_max_size,
            log_max_files: 3,
            log_mode: berth_monitor::logfile::LogMode::Blocking,
            log_max_buffer_size: None,
            tty: options.tty,
            open_stdin: options.open_stdin,
            stdin_once: options.stdin_once,
            console_size: options.console_size,
            runtime: match kind {
                Kind::Runc => RuntimeKind::External(PathBuf::from(RUNC)),
                Kind::Builtin => RuntimeKind::Builtin,
            },
            nofile_limit: None,
        };
        std::fs::write(
            run_dir.join("monitor.json"),
            serde_json::to_vec(&config).expect("config json"),
        )
        .expect("write monitor.json");
        let stderr = std::fs::File::create(root.join("monitor.stderr")).expect("stderr file");
        let mut monitor = Command::new(env!("CARGO_BIN_EXE_berth-monitor-test"))
            .arg(&run_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn monitor");
        let mut line = String::new();
        // Reading only the first line, then dropping the pipe as a dying daemon would.
        BufReader::new(monitor.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read Ready");
        let ready: Ready = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("Ready line {line:?}: {e}; {}", stderr_of(&root)));
        Fixture {
            _dir: dir,
            root,
            run_dir,
            log_path,
            id,
            monitor,
            ready,
        }
    }

    fn socket(&self) -> PathBuf {
        self.run_dir.join(SOCKET_FILE)
    }

    /// Sends a request; returns the connection (positioned after the response) and response.
    fn request(&self, request: Value) -> (UnixStream, Value) {
        let mut stream = UnixStream::connect(self.socket()).expect("connect monitor");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut line = serde_json::to_vec(&request).expect("json");
        line.push(b'\n');
        stream.write_all(&line).expect("send request");
        let response = read_line(&mut stream);
        let value = serde_json::from_slice(&response)
            .unwrap_or_else(|e| panic!("response {:?}: {e}", String::from_utf8_lossy(&response)));
        (stream, value)
    }

    fn call(&self, request: Value) -> Value {
        self.request(request).1
    }

    /// Waits for the monitor to exit and checks it left nothing behind.
    fn finish(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.monitor.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "monitor did not exit; {}",
                stderr_of(&self.root)
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.code(), Some(0), "{}", stderr_of(&self.root));
        let exit: ExitStatus = serde_json::from_slice(
            &std::fs::read(self.run_dir.join(EXIT_FILE)).expect("exit.json written"),
        )
        .expect("exit.json parses");
        assert!(!self.socket().exists(), "monitor.sock removed");
        assert!(!self.run_dir.join(PID_FILE).exists(), "monitor.pid removed");
        if self.ready.pid > 0 {
            assert_eq!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.ready.pid), None),
                Err(nix::errno::Errno::ESRCH),
                "container init is gone"
            );
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(
            !mounts.contains(self.root.to_str().expect("utf-8 path")),
            "no mount left under the test dir"
        );
        for controller in ["memory", "pids", "cpu", "devices"] {
            let cgroup = Path::new("/sys/fs/cgroup").join(controller).join(&self.id);
            assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
        }
        assert!(
            !Path::new(&format!("/sys/fs/cgroup/{}", self.id)).exists(),
            "v2 cgroup left"
        );
        if let Ok(leftover) = std::fs::read_dir(self.run_dir.join("oci")) {
            assert_eq!(leftover.count(), 0, "runtime state left");
        }
        exit
    }

    fn log_entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log_path)
            .expect("log file")
            .lines()
            .map(|line| serde_json::from_str(line).expect("log line is JSON"))
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            println!("{}", stderr_of(&self.root));
        }
        // A failed test must not leave a container behind.
        if self.monitor.try_wait().ok().flatten().is_none() {
            if self.ready.pid > 0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.ready.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.monitor.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.monitor.kill();
            let _ = self.monitor.wait();
        }
        let _ = Command::new(RUNC)
            .arg("--root")
            .arg(self.run_dir.join("oci"))
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

fn stderr_of(root: &Path) -> String {
    format!(
        "monitor stderr: {:?}",
        std::fs::read_to_string(root.join("monitor.stderr")).unwrap_or_default()
    )
}

fn build_rootfs(rootfs: &Path) {
    for dir in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(dir)).expect("mkdir rootfs");
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("symlink");
    }
}

fn write_spec(kind: Kind, run_dir: &Path, id: &str, options: &Options) {
    let mut spec = match kind {
        Kind::Runc => {
            let status = Command::new(RUNC)
                .args(["spec", "--bundle"])
                .arg(run_dir)
                .status()
                .expect("runc spec");
            assert!(status.success());
            Spec::load(run_dir.join(SPEC_FILE)).expect("load runc spec")
        }
        Kind::Builtin => berth_runtime::base_spec(),
    };
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(options.args.iter().map(|s| s.to_string()).collect()));
    process.set_terminal(Some(options.tty));
    process.set_cwd(PathBuf::from("/"));
    process.set_env(Some(vec![
        "PATH=/bin:/usr/bin:/sbin:/usr/sbin".to_string(),
        "TERM=xterm".to_string(),
    ]));
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(false)
            .build()
            .expect("root"),
    ));
    spec.set_hostname(Some("berthbox".to_string()));
    if let Some(limit) = options.memory_limit {
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_cgroups_path(Some(PathBuf::from(format!("/{id}"))));
        let mut resources = linux.resources().clone().unwrap_or_default();
        resources.set_memory(Some(
            oci_spec::runtime::LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .expect("memory"),
        ));
        linux.set_resources(Some(resources));
        spec.set_linux(Some(linux));
    }
    spec.save(run_dir.join(SPEC_FILE)).expect("save spec");
}

fn read_line(stream: &mut UnixStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        let n = stream.read(&mut byte).expect("read response");
        assert_eq!(n, 1, "connection closed before a full response line");
        if byte[0] == b'\n' {
            return line;
        }
        line.push(byte[0]);
    }
}

/// Reads frames until the monitor closes the stream: (stream id, payload) each.
fn read_frames(stream: &mut UnixStream) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        let mut header = [0u8; 8];
        match stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return frames,
            Err(e) => panic!("read frame: {e}"),
        }
        let (id, len) = berth_monitor::protocol::decode_frame_header(header);
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload).expect("frame payload");
        frames.push((id, payload));
    }
}

fn collect(frames: &[(u8, Vec<u8>)], id: u8) -> String {
    let bytes: Vec<u8> = frames
        .iter()
        .filter(|(stream, _)| *stream == id)
        .flat_map(|(_, payload)| payload.clone())
        .collect();
    String::from_utf8(bytes).expect("utf-8 output")
}

fn exec_request(args: &[&str]) -> Value {
    json!({"op": "exec", "attach_stdin": false, "console_size": null, "process": {
        "user": {"uid": 0, "gid": 0}, "args": args, "cwd": "/",
        "env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"], "terminal": false
    }})
}

// ---- the scenarios ----

fn echo_then_exit(kind: Kind) {
    require(kind);
    let mut fixture = Fixture::start(
        kind,
        &Options::new(&["sh", "-c", "echo hi; echo oops >&2; exit 3"]),
    );
    assert!(fixture.ready.pid > 0, "{:?}", fixture.ready);
    assert_eq!(fixture.call(json!({"op": "state"}))["status"], "created");
    let (mut attach, ok) =
        fixture.request(json!({"op": "attach", "stdin": false, "stdout": true, "stderr": true}));
    assert_eq!(ok["result"], "ok");
    let (mut stdout_only, ok) =
        fixture.request(json!({"op": "attach", "stdin": false, "stdout": true, "stderr": false}));
    assert_eq!(ok["result"], "ok");
    let (mut waiter, _) = {
        let mut stream = UnixStream::connect(fixture.socket()).expect("connect");
        stream.write_all(b"{\"op\":\"wait\"}\n").expect("send wait");
        (stream, ())
    };
    let started = fixture.call(json!({"op": "start"}));
    assert_eq!(started["result"], "started", "{started}");
    assert_eq!(started["pid"], fixture.ready.pid);
    let frames = read_frames(&mut attach);
    assert_eq!(collect(&frames, 1), "hi\n");
    assert_eq!(collect(&frames, 2), "oops\n");
    let frames = read_frames(&mut stdout_only);
    assert_eq!(
        frames,
        [(1, b"hi\n".to_vec())],
        "only the streams asked for"
    );
    let exited: Value = serde_json::from_slice(&read_line(&mut waiter)).expect("wait response");
    assert_eq!(exited["result"], "exited");
    assert_eq!(exited["exit_code"], 3);

    let entries = fixture.log_entries();
    let lines: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["log"].as_str().expect("log"),
                e["stream"].as_str().expect("stream"),
            )
        })
        .collect();
    assert!(lines.contains(&("hi\n", "stdout")), "{lines:?}");
    assert!(lines.contains(&("oops\n", "stderr")), "{lines:?}");
    assert!(entries[0]["time"].as_str().expect("time").ends_with('Z'));
    let exit = fixture.finish();
    assert_eq!(exit.exit_code, 3);
    assert_eq!(exit.error, None);
    assert!(!exit.oom_killed);
}

fn stdin_through_attach(kind: Kind) {
    require(kind);
    let mut options = Options::new(&["cat"]);
    options.open_stdin = true;
    options.stdin_once = true;
    let mut fixture = Fixture::start(kind, &options);
    let (mut attach, ok) =
        fixture.request(json!({"op": "attach", "stdin": true, "stdout": true, "stderr": true}));
    assert_eq!(ok["result"], "ok");
    assert_eq!(fixture.call(json!({"op": "start"}))["result"], "started");
    attach.write_all(b"hello\nworld").expect("send stdin");
    attach.shutdown(Shutdown::Write).expect("half-close");
    let frames = read_frames(&mut attach);
    assert_eq!(collect(&frames, 1), "hello\nworld");
    let exit = fixture.finish();
    assert_eq!(exit.exit_code, 0);
}

fn tty_output_and_resize(kind: Kind) {
    require(kind);
    let mut options = Options::new(&["sh", "-c", "stty size; tty; echo done"]);
    options.tty = true;
    options.console_size = Some((24, 80));
    let mut fixture = Fixture::start(kind, &options);
    let (mut attach, _) =
        fixture.request(json!({"op": "attach", "stdin": false, "stdout": true, "stderr": true}));
    let resized = fixture.call(json!({"op": "resize", "height": 33, "width": 101}));
    assert_eq!(resized["result"], "ok", "{resized}");
    assert_eq!(fixture.call(json!({"op": "start"}))["result"], "started");
    let frames = read_frames(&mut attach);
    assert!(frames.iter().all(|(id, _)| *id == 1), "a TTY is all stdout");
    let output = collect(&frames, 1);
    assert!(output.starts_with("33 101\r\n"), "{output:?}");
    match kind {
        // The pty is the container's own, allocated in its devpts.
        Kind::Builtin => assert!(output.contains("\r\n/dev/pts/0\r\n"), "{output:?}"),
        Kind::Runc => assert!(output.contains("/dev/"), "{output:?}"),
    }
    assert!(output.ends_with("done\r\n"), "{output:?}");
    let entries = fixture.log_entries();
    assert!(entries.iter().all(|e| e["stream"] == "stdout"));
    assert_eq!(entries[0]["log"], "33 101\r\n");
    assert_eq!(fixture.finish().exit_code, 0);
}

fn kill_sleep(kind: Kind) {
    require(kind);
    let mut fixture = Fixture::start(kind, &Options::new(&["sleep", "100"]));
    assert_eq!(fixture.call(json!({"op": "start"}))["result"], "started");
    // The daemon's death (its pipe gone, a terminal's SIGHUP, a stray SIGTERM or SIGINT)
    // must not end the monitor.
    let monitor = nix::unistd::Pid::from_raw(fixture.monitor.id() as i32);
    for signal in [
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGPIPE,
    ] {
        nix::sys::signal::kill(monitor, signal).expect("signal monitor");
    }
    let state = fixture.call(json!({"op": "state"}));
    assert_eq!(state["status"], "running");
    assert!(state["started_at"].is_string());
    let (mut waiter, _) = {
        let mut stream = UnixStream::connect(fixture.socket()).expect("connect");
        stream.write_all(b"{\"op\":\"wait\"}\n").expect("send wait");
        (stream, ())
    };
    let killed = fixture.call(json!({"op": "kill", "signal": 9}));
    assert_eq!(killed["result"], "ok", "{killed}");
    let exited: Value = serde_json::from_slice(&read_line(&mut waiter)).expect("wait");
    assert_eq!(exited["exit_code"], 137);
    let exit = fixture.finish();
    assert_eq!(exit.exit_code, 137);
}

fn exec_hostname_and_missing(kind: Kind) {
    require(kind);
    let mut fixture = Fixture::start(kind, &Options::new(&["sleep", "100"]));
    assert_eq!(fixture.call(json!({"op": "start"}))["result"], "started");

    let (mut stream, started) = fixture.request(exec_request(&["hostname"]));
    assert_eq!(started["result"], "exec_started", "{started}");
    assert!(started["pid"].as_i64().is_some_and(|pid| pid > 0));
    let frames = read_frames(&mut stream);
    assert_eq!(collect(&frames, 1), "berthbox\n");
    let last = frames.last().expect("frames");
    assert_eq!(last.0, EXIT_FRAME);
    assert_eq!(last.1, 0i32.to_be_bytes());

    let (mut stream, started) =
        fixture.request(exec_request(&["sh", "-c", "echo err >&2; exit 7"]));
    assert_eq!(started["result"], "exec_started", "{started}");
    let frames = read_frames(&mut stream);
    assert_eq!(collect(&frames, 2), "err\n");
    assert_eq!(frames.last().expect("exit frame").1, 7i32.to_be_bytes());

    let missing = fixture.call(exec_request(&["nosuch"]));
    assert_eq!(missing["result"], "error", "{missing}");
    assert_eq!(missing["exit_code"], 127, "{missing}");

    assert_eq!(
        fixture.call(json!({"op": "kill", "signal": 9}))["result"],
        "ok"
    );
    assert_eq!(fixture.finish().exit_code, 137);
}

fn exec_with_stdin_and_tty(kind: Kind) {
    require(kind);
    let mut fixture = Fixture::start(kind, &Options::new(&["sleep", "100"]));
    assert_eq!(fixture.call(json!({"op": "start"}))["result"], "started");

    let mut request = exec_request(&["cat"]);
    request["attach_stdin"] = json!(true);
    let (mut stream, started) = fixture.request(request);
    assert_eq!(started["result"], "exec_started", "{started}");
    stream.write_all(b"piped input\n").expect("stdin");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let frames = read_frames(&mut stream);
    assert_eq!(collect(&frames, 1), "piped input\n");
    assert_eq!(frames.last().expect("exit").1, 0i32.to_be_bytes());

    let mut request = exec_request(&["sh", "-c", "stty size; read x; echo got-$x; exit 5"]);
    request["attach_stdin"] = json!(true);
    request["console_size"] = json!([20, 70]);
    request["process"]["terminal"] = json!(true);
    let (mut stream, started) = fixture.request(request);
    assert_eq!(started["result"], "exec_started", "{started}");
    let pid = started["pid"].as_i64().expect("pid");
    let resized = fixture.call(json!({"op": "exec_resize", "pid": pid, "height": 20, "width": 70}));
    assert_eq!(resized["result"], "ok", "{resized}");
    stream.write_all(b"abc\n").expect("stdin");
    let frames = read_frames(&mut stream);
    let (exit, output) = frames.split_last().expect("frames");
    assert_eq!(exit.0, EXIT_FRAME);
    assert_eq!(exit.1, 5i32.to_be_bytes());
    let output = collect(output, 1);
    assert!(output.contains("20 70\r\n"), "{output:?}");
    assert!(output.contains("got-abc\r\n"), "{output:?}");

    let missing = fixture.call(json!({"op": "exec_resize", "pid": 1, "height": 1, "width": 1}));
    assert_eq!(missing["result"], "error");
    assert_eq!(
        fixture.call(json!({"op": "kill", "signal": 9}))["result"],
        "ok"
    );
    assert_eq!(fixture.finish().exit_code, 137);
}

fn start_missing_command(kind: Kind) {
    require(kind);
    let mut fixture = Fixture::start(kind, &Options::new(&["nosuch"]));
    if fixture.ready.pid == 0 {
        // runc checks the command at create: the daemon sees the failure then.
        let error = fixture.ready.error.clone().expect("an error with pid 0");
        assert!(error.contains("executable file not found"), "{error}");
        assert!(!fixture.socket().exists());
        let status = fixture.monitor.wait().expect("wait monitor");
        assert_eq!(status.code(), Some(1));
        let exit: ExitStatus = serde_json::from_slice(
            &std::fs::read(fixture.run_dir.join(EXIT_FILE)).expect("exit.json"),
        )
        .expect("parse exit.json");
        assert_eq!(exit.exit_code, 127);
        assert!(
            exit.error
                .is_some_and(|e| e.starts_with("exec: \"nosuch\""))
        );
        return;
    }
    let started = fixture.call(json!({"op": "start"}));
    assert_eq!(started["result"], "error", "{started}");
    assert_eq!(started["exit_code"], 127);
    let exit = fixture.finish();
    assert_eq!(exit.exit_code, 127);
    assert!(exit.error.is_some_and(|e| e.contains("nosuch")));
}

fn log_rotation(kind: Kind) {
    require(kind);
    let mut options = Options::new(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    options.log_max_size = 2000;
    let mut fixture = Fixture::start(kind, &options);
    assert_eq!(fixture.call(json!({"op": "start"}))["result"], "started");
    assert_eq!(fixture.finish().exit_code, 0);
    let log_path = fixture.log_path.clone();
    let mut rotated = log_path.as_os_str().to_os_string();
    rotated.push(".2");
    assert!(Path::new(&rotated).exists(), "three files kept");
    let mut third = log_path.as_os_str().to_os_string();
    third.push(".3");
    assert!(!Path::new(&third).exists(), "no more than three files");
    let last: Vec<Value> = std::fs::read_to_string(&log_path)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(last.last().expect("entries")["log"], "line-199\n");
    // Rotation happens once a file reaches the limit: at most one entry beyond it.
    for path in [log_path.as_os_str().to_os_string(), rotated] {
        let size = std::fs::metadata(&path).expect("log file").len();
        assert!(size < 2000 + 200, "{path:?} is {size} bytes");
    }
}

fn journald_entries_reach_the_socket(kind: Kind) {
    require(kind);
    let dir = tempfile::Builder::new()
        .prefix("bj")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let socket_path = dir.path().join("journal.sock");
    let journal = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind");
    journal
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut options = Options::new(&["sh", "-c", "echo out; echo err >&2"]);
    options.log_driver =
        berth_monitor::logdriver::LogDriver::Journald(berth_monitor::logdriver::JournaldConfig {
            socket: socket_path.clone(),
            id: "0123456789abcdef0123".into(),
            name: "web".into(),
            image: "busybox".into(),
            tag: "webtag".into(),
        });
    let mut fixture = Fixture::start(kind, &options);
    assert_eq!(fixture.call(json!({"op": "start"}))["result"], "started");
    assert_eq!(fixture.finish().exit_code, 0);
    let mut entries = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..2 {
        let n = journal.recv(&mut buf).expect("a journal entry");
        entries.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    entries.sort();
    assert!(entries[0].starts_with("MESSAGE=err\n"), "{entries:?}");
    assert!(entries[0].contains("\nPRIORITY=3\n"), "{entries:?}");
    assert!(entries[1].starts_with("MESSAGE=out\n"), "{entries:?}");
    assert!(entries[1].contains("\nPRIORITY=6\n"), "{entries:?}");
    for e in &entries {
        assert!(e.contains("\nCONTAINER_ID=0123456789ab\n"), "{e}");
        assert!(e.contains("\nCONTAINER_NAME=web\n"), "{e}");
        assert!(e.contains("\nSYSLOG_IDENTIFIER=webtag\n"), "{e}");
    }
    assert!(!fixture.log_path.exists(), "journald keeps no file");
}

fn oom_is_recorded(kind: Kind) {
    require(kind);
    // The shell keeps an endless stream in a variable until the kernel kills it.
    let mut options = Options::new(&["sh", "-c", "x=$(tr '\\0' a < /dev/zero)"]);
    options.memory_limit = Some(16 * 1024 * 1024);
    let mut fixture = Fixture::start(kind, &options);
    assert_eq!(fixture.call(json!({"op": "start"}))["result"], "started");
    let exit = fixture.finish();
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.exit_code, 137, "{exit:?}");
}

fn overlay_rootfs(kind: Kind) {
    require(kind);
    let mut options = Options::new(&["sh", "-c", "echo data > /created; ls /bin/busybox"]);
    options.overlay = true;
    let mut fixture = Fixture::start(kind, &options);
    let (mut attach, _) =
        fixture.request(json!({"op": "attach", "stdin": false, "stdout": true, "stderr": true}));
    assert_eq!(fixture.call(json!({"op": "start"}))["result"], "started");
    let frames = read_frames(&mut attach);
    assert_eq!(collect(&frames, 1), "/bin/busybox\n", "{frames:?}");
    assert_eq!(fixture.finish().exit_code, 0);
    assert_eq!(
        std::fs::read_to_string(fixture.root.join("upper/created")).expect("upper has the file"),
        "data\n"
    );
    assert!(
        !fixture.root.join("lower/created").exists(),
        "lower untouched"
    );
}

macro_rules! both_runtimes {
    ($($scenario:ident),* $(,)?) => {
        mod runc {
            $(
                #[test]
                #[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
                fn $scenario() { super::$scenario(super::Kind::Runc) }
            )*
        }
        mod builtin {
            $(
                #[test]
                #[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
                fn $scenario() { super::$scenario(super::Kind::Builtin) }
            )*
        }
    };
}

both_runtimes!(
    echo_then_exit,
    stdin_through_attach,
    tty_output_and_resize,
    kill_sleep,
    exec_hostname_and_missing,
    exec_with_stdin_and_tty,
    start_missing_command,
    log_rotation,
    journald_entries_reach_the_socket,
    oom_is_recorded,
    overlay_rootfs,
);

/// Unprivileged: a monitor that cannot start says why on its Ready line and leaves nothing.
#[test]
fn ready_line_reports_a_bad_run_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("monitor.json"), "{\"version\":1}").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_berth-monitor-test"))
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run monitor");
    assert_eq!(output.status.code(), Some(1));
    let ready: Ready = serde_json::from_slice(&output.stdout).expect("one Ready line");
    assert_eq!(ready.pid, 0);
    assert!(
        ready
            .error
            .is_some_and(|e| e.contains("parse monitor config")),
        "{:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!dir.path().join(SOCKET_FILE).exists());
    assert!(!dir.path().join(PID_FILE).exists());
}
