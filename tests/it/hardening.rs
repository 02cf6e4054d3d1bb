//! Integration tests: the crashes, hangs and faults of the hardening issue (issue 10), each a
//! reproducer that once worked against berth: containers outliving a killed monitor, deep
//! directory trees, files swapped for FIFOs under `cp`, idle connections exhausting the
//! daemon's descriptors, and a full disk under a chatty container's log.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "hardening_container_dies_with_its_monitor",
        hardening_container_dies_with_its_monitor,
    ),
    (
        "hardening_idle_connections_never_starve_the_api",
        hardening_idle_connections_never_starve_the_api,
    ),
];

/// The full id of container `name`.
fn container_id(env: &TestEnv, name: &str) -> String {
    env.inspect(name, "{{.Id}}")
}

/// The monitor's pid of container `name`.
fn monitor_pid(env: &TestEnv, name: &str) -> i32 {
    let id = container_id(env, name);
    let path = env.run_root.join("containers").join(id).join("monitor.pid");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// Container `id`'s cgroup directories, in every hierarchy.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let parent = crate::harness::cgroup_parent();
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup").join(&parent).join(id)];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(rd.flatten().map(|e| e.path().join(&parent).join(id)));
    }
    dirs
}

/// The pids in container `id`'s cgroup (its first hierarchy that has any).
fn cgroup_pids(id: &str) -> Vec<i32> {
    for dir in cgroup_dirs(id) {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if !pids.is_empty() {
                return pids;
            }
        }
    }
    Vec::new()
}

/// Whether `pid` still runs: not gone, not a zombie, and not exiting (`PF_EXITING`: a pid
/// namespace's init that was killed waits in the kernel until every process of its namespace
/// was reaped, but runs no code of its own any more).
fn alive(pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    // After the command: state, ppid, pgrp, session, tty, tpgid, flags.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = fields.first().is_some_and(|s| *s == "Z" || *s == "X");
    let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    !zombie && flags & PF_EXITING == 0
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is a monitor of this test.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Issue 10, item 11: `kill -9` of a container's monitor takes the container's processes with
/// it (its init, an exec'd process, and with `--init` the reaper and its program), within a
/// second, instead of leaving them running unobserved.
fn hardening_container_dies_with_its_monitor(env: &TestEnv) {
    for (name, extra) in [("pdeath-plain", None), ("pdeath-init", Some("--init"))] {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend(extra);
        args.extend(["busybox", "sleep", "1000"]);
        env.berth(&args).ok();
        env.berth(&["exec", "-d", name, "sleep", "2000"]).ok();
        let id = container_id(env, name);
        let mut pids = Vec::new();
        // Init (and with --init its program) plus the exec'd sleep.
        let want = if extra.is_some() { 3 } else { 2 };
        assert!(
            env.eventually(10, || {
                pids = cgroup_pids(&id);
                pids.len() >= want
            }),
            "{name}: processes in the cgroup: {pids:?}"
        );
        let monitor = monitor_pid(env, name);
        sigkill(monitor);
        let started = Instant::now();
        let gone = env.eventually(5, || pids.iter().all(|p| !alive(*p)));
        let took = started.elapsed();
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        // Whatever the daemon records for the lost monitor, nothing of the container may run.
        for p in &left {
            sigkill(*p);
        }
        let _ = env.berth(&["rm", "-f", name]);
        // Recording a lost monitor's container (and removing its cgroup) is the container
        // service's part of item 11, not this test's: remove what it leaves.
        for dir in cgroup_dirs(&id) {
            let _ = std::fs::remove_dir(dir);
        }
        assert!(
            gone,
            "{name}: still running after the monitor died: {left:?}"
        );
        assert!(
            took < Duration::from_secs(1),
            "{name}: took {took:?} to die with the monitor"
        );
    }
}

/// A second daemon of a test's own (no default bridge, an nft table of its own, this run's
/// cgroup parent), removed with everything it made when dropped.
struct SecondDaemon {
    /// Short: it is also the exec root (monitor socket paths must fit 108 bytes).
    dir: PathBuf,
    host: String,
    table: String,
    child: Option<Child>,
}

impl SecondDaemon {
    /// Starts `berth daemon` under `wrapper` (e.g. `prlimit --nofile=…`), with its data root
    /// at `data_root` (default `<dir>/d`); bootstraps busybox into it.
    fn start(env: &TestEnv, tag: &str, wrapper: &[&str], data_root: Option<&Path>) -> SecondDaemon {
        let dir = PathBuf::from(format!("/tmp/b{tag}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let table = format!("b{tag}{}", std::process::id());
        let host = format!("unix://{}", dir.join("s").display());
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg("--").arg(crate::harness::berth_exe());
                c
            }
            None => Command::new(crate::harness::berth_exe()),
        };
        command
            .args([
                "daemon",
                "-H",
                &host,
                "--bridge",
                "none",
                "--nft-table",
                &table,
            ])
            .args(["--cgroup-parent", &crate::harness::cgroup_parent()])
            .arg("--data-root")
            .arg(data_root.map_or_else(|| dir.join("d"), Path::to_path_buf))
            .arg("--exec-root")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let daemon = SecondDaemon {
            child: Some(command.spawn().expect("spawn daemon")),
            dir,
            host,
            table,
        };
        let socket = daemon.dir.join("s");
        let up = env.eventually(20, || UnixStream::connect(&socket).is_ok());
        assert!(up, "second daemon did not come up: {}", daemon.log());
        let boot = daemon.berth(&["image", "bootstrap", "busybox"]);
        assert!(boot.status.success(), "bootstrap: {boot:?}");
        daemon
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("s")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::harness::berth_exe());
        c.args(args)
            .env("BERTH_HOST", &self.host)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null());
        c
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run berth")
    }
}

impl Drop for SecondDaemon {
    fn drop(&mut self) {
        let ids = self.berth(&["ps", "-aq"]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.berth(&args);
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        let _ = crate::harness::remove_network_state(&self.table, &self.table);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `command`, killing it after `limit`; `None` if it had to be killed.
fn run_within(mut command: Command, limit: Duration) -> Option<Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A unix stream connection that does not wait when the listener's backlog is full.
fn connect_nonblocking(path: &Path) -> Option<UnixStream> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a new descriptor this function owns.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain old data; all zeros is a valid value.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < address.sun_path.len());
    for (dst, src) in address.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the address is a valid sockaddr_un of the given size.
    let connected = unsafe {
        libc::connect(
            fd,
            (&raw const address).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    (connected == 0).then_some(stream)
}

/// The number of open descriptors of `pid`.
fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |rd| rd.count())
}

/// Issue 10, item 8: a flood of idle connections (and of connections whose headers never
/// end), kept up for the whole test at twice the daemon's descriptor limit, must not keep
/// `_ping` and `exec` from answering within seconds. The daemon runs with a low
/// `RLIMIT_NOFILE` (512, soft = hard, so raising it does not help).
fn hardening_idle_connections_never_starve_the_api(env: &TestEnv) {
    const LIMIT: usize = 512;
    let nofile = format!("--nofile={LIMIT}:{LIMIT}");
    let daemon = SecondDaemon::start(env, "i", &["prlimit", &nofile], None);
    let run = daemon.berth(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "flooded",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert!(run.status.success(), "{run:?}");
    let socket = daemon.socket();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, peak, socket) = (Arc::clone(&stop), Arc::clone(&peak), socket.clone());
        std::thread::spawn(move || {
            let mut open: Vec<UnixStream> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // Forget the connections the daemon closed; keep twice its limit open.
                open.retain_mut(|c| {
                    let mut byte = [0u8; 1];
                    !matches!(c.read(&mut byte), Ok(0))
                        && !matches!(&c.read(&mut byte), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
                });
                while open.len() < 2 * LIMIT {
                    let Some(mut c) = connect_nonblocking(&socket) else {
                        break;
                    };
                    // Every fourth one starts a request whose headers never end.
                    if open.len() % 4 == 0 {
                        use std::io::Write;
                        let _ = c.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n");
                    }
                    open.push(c);
                }
                peak.fetch_max(open.len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Let the flood fill the daemon's descriptor table.
    let filled = env.eventually(10, || fd_count(daemon.pid()) >= LIMIT - 16);
    let daemon_fds = fd_count(daemon.pid());
    let mut pings = Vec::new();
    for _ in 0..3 {
        let mut curl = Command::new("curl");
        curl.args(["-s", "-m", "20", "--unix-socket"])
            .arg(&socket)
            .arg("http://localhost/_ping");
        let started = Instant::now();
        let out = run_within(curl, Duration::from_secs(25));
        pings.push((
            started.elapsed(),
            out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()),
        ));
    }
    let started = Instant::now();
    let exec = run_within(
        daemon.command(&["exec", "flooded", "echo", "still here"]),
        Duration::from_secs(25),
    );
    let exec_took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "idle connections open at the peak: {peak}; daemon descriptors: {daemon_fds} (limit {LIMIT}, filled: {filled}); pings: {pings:?}; exec: {exec_took:?}"
    );
    for (took, answer) in &pings {
        assert_eq!(
            answer.as_deref(),
            Some("OK"),
            "no answer to _ping in {took:?}"
        );
        assert!(*took < Duration::from_secs(5), "_ping took {took:?}");
    }
    let exec = exec.unwrap_or_else(|| panic!("exec did not answer within 25 s"));
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout).trim(),
        "still here",
        "{exec:?}"
    );
    assert!(
        exec_took < Duration::from_secs(10),
        "exec took {exec_took:?}"
    );
    assert!(
        peak >= LIMIT,
        "the flood never exceeded the daemon's limit: {peak}"
    );
    drop(daemon);
}
