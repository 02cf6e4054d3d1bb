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
    (
        "hardening_deep_trees_copy_commit_export_and_diff_whole",
        hardening_deep_trees_copy_commit_export_and_diff_whole,
    ),
    (
        "hardening_deep_image_volume_populates",
        hardening_deep_image_volume_populates,
    ),
    (
        "hardening_cp_of_a_file_swapped_for_a_fifo_never_hangs",
        hardening_cp_of_a_file_swapped_for_a_fifo_never_hangs,
    ),
    (
        "hardening_full_disk_keeps_log_lines_whole_and_the_monitor_small",
        hardening_full_disk_keeps_log_lines_whole_and_the_monitor_small,
    ),
];

/// The full id of container `name`.
pub(crate) fn container_id(env: &TestEnv, name: &str) -> String {
    env.inspect(name, "{{.Id}}")
}

/// The monitor's pid of container `name`.
pub(crate) fn monitor_pid(env: &TestEnv, name: &str) -> i32 {
    let id = container_id(env, name);
    let path = env.run_root.join("containers").join(id).join("monitor.pid");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// Container `id`'s cgroup directories, in every hierarchy.
pub(crate) fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let parent = crate::harness::cgroup_parent();
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup").join(&parent).join(id)];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(rd.flatten().map(|e| e.path().join(&parent).join(id)));
    }
    dirs
}

/// The pids in container `id`'s cgroup (its first hierarchy that has any).
pub(crate) fn cgroup_pids(id: &str) -> Vec<i32> {
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
pub(crate) fn alive(pid: i32) -> bool {
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

pub(crate) fn sigkill(pid: i32) {
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
pub(crate) struct SecondDaemon {
    /// Its files; also its exec root unless it was given one.
    pub(crate) dir: PathBuf,
    /// The exec root.
    pub(crate) exec_root: PathBuf,
    host: String,
    table: String,
    /// The wrapper and the daemon's command line (for a restart).
    argv: Vec<std::ffi::OsString>,
    child: Option<Child>,
}

impl SecondDaemon {
    /// Starts `berth daemon` under `wrapper` (e.g. `prlimit --nofile=…`), with its data root
    /// at `data_root` (default `<dir>/d`); bootstraps busybox into it.
    pub(crate) fn start(
        env: &TestEnv,
        tag: &str,
        wrapper: &[&str],
        data_root: Option<&Path>,
    ) -> SecondDaemon {
        Self::start_with(env, tag, wrapper, data_root, None)
    }

    /// [`SecondDaemon::start`] with an exec root of the test's choice.
    pub(crate) fn start_with(
        env: &TestEnv,
        tag: &str,
        wrapper: &[&str],
        data_root: Option<&Path>,
        exec_root: Option<&Path>,
    ) -> SecondDaemon {
        Self::start_full(env, tag, wrapper, data_root, exec_root, &[])
    }

    /// [`SecondDaemon::start`] with extra daemon flags (`--registry-mirror …`).
    pub(crate) fn start_flags(
        env: &TestEnv,
        tag: &str,
        data_root: Option<&Path>,
        flags: &[&str],
    ) -> SecondDaemon {
        Self::start_full(env, tag, &[], data_root, None, flags)
    }

    fn start_full(
        env: &TestEnv,
        tag: &str,
        wrapper: &[&str],
        data_root: Option<&Path>,
        exec_root: Option<&Path>,
        flags: &[&str],
    ) -> SecondDaemon {
        let dir = PathBuf::from(format!("/tmp/b{tag}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let table = format!("b{tag}{}", std::process::id());
        let host = format!("unix://{}", dir.join("s").display());
        let mut argv: Vec<std::ffi::OsString> = wrapper.iter().map(Into::into).collect();
        if !argv.is_empty() {
            argv.push("--".into());
        }
        argv.push(crate::harness::berth_exe().into());
        for a in [
            "daemon",
            "-H",
            &host,
            "--bridge",
            "none",
            "--nft-table",
            &table,
        ] {
            argv.push(a.into());
        }
        argv.push("--cgroup-parent".into());
        argv.push(crate::harness::cgroup_parent().into());
        argv.push("--data-root".into());
        argv.push(
            data_root
                .map_or_else(|| dir.join("d"), Path::to_path_buf)
                .into(),
        );
        argv.push("--exec-root".into());
        argv.push(exec_root.unwrap_or(&dir).into());
        argv.extend(flags.iter().map(Into::into));
        let mut daemon = SecondDaemon {
            child: None,
            exec_root: exec_root.map_or_else(|| dir.clone(), Path::to_path_buf),
            argv,
            dir,
            host,
            table,
        };
        daemon.spawn(env);
        let boot = daemon.berth(&["image", "bootstrap", "busybox"]);
        assert!(boot.status.success(), "bootstrap: {boot:?}");
        daemon
    }

    /// Runs the daemon and waits until it answers.
    fn spawn(&mut self, env: &TestEnv) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        self.child = Some(child);
        let socket = self.dir.join("s");
        let up = env.eventually(20, || UnixStream::connect(&socket).is_ok());
        assert!(up, "second daemon did not come up: {}", self.log());
    }

    /// Sends `signal` to the daemon and reaps it (its containers keep running).
    pub(crate) fn kill(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, signal) };
            let _ = child.wait();
        }
    }

    /// Starts the daemon again after [`SecondDaemon::kill`], with the same command line.
    pub(crate) fn respawn(&mut self, env: &TestEnv) {
        self.spawn(env);
    }

    /// Its nft table.
    pub(crate) fn table(&self) -> String {
        self.table.clone()
    }

    /// A client of it, for other threads (a restart keeps its address).
    pub(crate) fn client(&self) -> Client {
        Client {
            host: self.host.clone(),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("s")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        self.client().command(args)
    }

    pub(crate) fn berth(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run berth")
    }
}

/// The `berth` CLI aimed at a [`SecondDaemon`].
#[derive(Clone)]
pub(crate) struct Client {
    host: String,
}

impl Client {
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::harness::berth_exe());
        c.args(args)
            .env("BERTH_HOST", &self.host)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null());
        c
    }

    pub(crate) fn berth(&self, args: &[&str]) -> Output {
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
        let _ = std::fs::remove_dir_all(&self.exec_root);
    }
}

/// Runs `command`, killing it after `limit`; `None` if it had to be killed. Its output is read
/// as it comes (a full pipe must not look like a hang).
pub(crate) fn run_within(mut command: Command, limit: Duration) -> Option<Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
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
                    if open.len().is_multiple_of(4) {
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

/// Deeper than PATH_MAX (4096 bytes) can name, with two bytes a level: deeper than the issue's
/// 1,700 (`cp`) and 1,990 (`run`) levels.
const DEPTH: usize = 2100;

/// The entries of a tar stream below `top`: (count, the deepest entry's number of
/// components, the content of the entry whose name ends in `/f`, if any).
fn tar_summary(bytes: &[u8], top: &str) -> (usize, usize, Option<Vec<u8>>) {
    let mut archive = tar::Archive::new(bytes);
    let (mut count, mut deepest, mut bottom) = (0, 0, None);
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").into_owned();
        if !path.starts_with(top) {
            continue;
        }
        count += 1;
        deepest = deepest.max(path.components().count());
        if path.ends_with("f") && entry.header().entry_type().is_file() {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read");
            bottom = Some(data);
        }
    }
    (count, deepest, bottom)
}

/// The daemon still answers (it was not killed by the operation before).
fn daemon_answers(env: &TestEnv) {
    let (status, body) = env.api("GET", "/_ping", None);
    assert_eq!((status, body.as_str()), (200, "OK"), "the daemon is gone");
}

/// Makes `DEPTH` levels of `d` below `top` (a directory of a container, seen through
/// `/proc/<pid>/root`), then `f`, by descriptor as a process in the container could (a shell's
/// `cd` refuses paths past PATH_MAX).
fn make_deep(top: &Path) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    std::fs::create_dir(top).unwrap();
    let mut dir = std::fs::File::open(top).unwrap();
    for _ in 0..DEPTH {
        // SAFETY: mkdirat(2) on a descriptor we own, with a NUL-terminated name.
        let made = unsafe { libc::mkdirat(dir.as_raw_fd(), c"d".as_ptr(), 0o755) };
        assert_eq!(made, 0);
        // SAFETY: openat(2) likewise; the result is checked.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c"d".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        assert!(fd >= 0);
        // SAFETY: a new descriptor only this function owns.
        dir = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    // SAFETY: as above.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c"f".as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o644,
        )
    };
    assert!(fd >= 0);
    // SAFETY: as above.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    std::io::Write::write_all(&mut f, b"bottom\n").unwrap();
}

/// `cp CONTAINER:PATH -`'s archive.
fn cp_out(env: &TestEnv, source: &str) -> Output {
    Command::new(crate::harness::berth_exe())
        .args(["cp", source, "-"])
        .env("BERTH_HOST", env.host())
        .output()
        .unwrap()
}

/// Issue 10, item 7: a tree deeper than PATH_MAX in a container goes out through `cp` whole
/// (and back in), `commit` takes it whole (and the container is not left paused), `export`
/// includes all of it, and `diff` lists all of it; the daemon lives through each.
fn hardening_deep_trees_copy_commit_export_and_diff_whole(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "deep",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pid = env.inspect("deep", "{{.State.Pid}}");
        make_deep(&PathBuf::from(format!("/proc/{pid}/root/deep")));
        // Out of the running container.
        let tar = cp_out(env, "deep:/deep");
        daemon_answers(env);
        assert!(
            tar.status.success(),
            "cp out: {}",
            String::from_utf8_lossy(&tar.stderr)
        );
        let (count, deepest, bottom) = tar_summary(&tar.stdout, "deep");
        assert_eq!((count, deepest), (DEPTH + 2, DEPTH + 2), "cp out");
        assert_eq!(bottom.as_deref(), Some(&b"bottom\n"[..]));
        // And back in, to another directory.
        env.berth(&["exec", "deep", "mkdir", "/back"]).ok();
        let r = env.berth_stdin(&["cp", "-", "deep:/back"], &tar.stdout);
        daemon_answers(env);
        assert_eq!(r.code, 0, "cp in: {}", r.stderr);
        let again = cp_out(env, "deep:/back/deep");
        assert_eq!(tar_summary(&again.stdout, "deep").0, DEPTH + 2, "cp in");
        // (busybox `rm -rf` cannot remove it: its paths are too long for it.)

        // diff: every level.
        let diff = env.berth(&["diff", "deep"]);
        daemon_answers(env);
        let listed = diff.ok();
        let deep_lines = listed
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|p| p.starts_with("/deep"))
            })
            .count();
        assert_eq!(deep_lines, DEPTH + 2, "diff");

        // export: the whole tree, or a failure; never a partial archive with exit 0.
        let export = Command::new(crate::harness::berth_exe())
            .args(["export", "deep"])
            .env("BERTH_HOST", env.host())
            .output()
            .unwrap();
        daemon_answers(env);
        assert!(
            export.status.success(),
            "export: {}",
            String::from_utf8_lossy(&export.stderr)
        );
        let (_, deepest, bottom) = tar_summary(&export.stdout, "deep");
        assert_eq!(deepest, DEPTH + 2, "export");
        assert_eq!(bottom.as_deref(), Some(&b"bottom\n"[..]));

        // commit (pausing the container meanwhile): the new layer has the whole tree.
        let commit = env.berth(&["commit", "deep", "hardening/deep:1"]);
        daemon_answers(env);
        assert_eq!(commit.code, 0, "commit: {}", commit.stderr);
        assert_eq!(
            env.inspect("deep", "{{.State.Status}} {{.State.Paused}}"),
            "running false"
        );
        env.berth(&["create", "--name", "deep-copy", "hardening/deep:1"])
            .ok();
        let committed = cp_out(env, "deep-copy:/deep");
        let (count, _, bottom) = tar_summary(&committed.stdout, "deep");
        assert_eq!(count, DEPTH + 2, "the committed layer");
        assert_eq!(bottom.as_deref(), Some(&b"bottom\n"[..]));
    }));
    let _ = env.berth(&["rm", "-f", "deep-copy"]);
    let _ = env.berth(&["rm", "-f", "deep"]);
    let _ = env.berth(&["rmi", "hardening/deep:1"]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Issue 10, item 7: an image whose `VOLUME` holds a tree ~2,000 levels deep runs: the new
/// volume is filled with all of it, and the daemon lives. Twice: 1,990 levels (the issue's,
/// which imported but killed the daemon on `run`) and deeper than PATH_MAX.
fn hardening_deep_image_volume_populates(env: &TestEnv) {
    for depth in [1990, DEPTH] {
        deep_image_volume_populates(env, depth);
    }
}

fn deep_image_volume_populates(env: &TestEnv, depth: usize) {
    let mut builder = tar::Builder::new(Vec::new());
    let dir = |builder: &mut tar::Builder<Vec<u8>>, name: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        builder.append_data(&mut h, name, std::io::empty()).unwrap();
    };
    dir(&mut builder, "bin/");
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    builder
        .append_data(&mut h, "bin/busybox", &busybox[..])
        .unwrap();
    for applet in ["sh", "true", "cat"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        builder
            .append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let mut path = String::from("vol/");
    dir(&mut builder, &path);
    for _ in 0..depth {
        path.push_str("d/");
        dir(&mut builder, &path);
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(7);
    builder
        .append_data(&mut h, format!("{path}f"), &b"bottom\n"[..])
        .unwrap();
    let tar_path = env.root.join("deep-volume.tar");
    std::fs::write(&tar_path, builder.into_inner().unwrap()).unwrap();
    env.berth(&[
        "import",
        "-c",
        "VOLUME /vol",
        tar_path.to_str().unwrap(),
        "hardening/deepvol:1",
    ])
    .ok();
    std::fs::remove_file(&tar_path).unwrap();
    let run = env.berth(&[
        "run",
        "--name",
        "deepvol",
        "--network",
        "none",
        "hardening/deepvol:1",
        "true",
    ]);
    daemon_answers(env);
    let copied = cp_out(env, "deepvol:/vol");
    let _ = env.berth(&["rm", "-v", "-f", "deepvol"]);
    let _ = env.berth(&["rmi", "hardening/deepvol:1"]);
    assert_eq!(run.code, 0, "run ({depth} levels): {}", run.stderr);
    let (count, deepest, bottom) = tar_summary(&copied.stdout, "vol");
    assert_eq!(
        (count, deepest),
        (depth + 2, depth + 2),
        "the volume's content ({depth} levels)"
    );
    assert_eq!(bottom.as_deref(), Some(&b"bottom\n"[..]));
}

/// Exchanges two names atomically (`renameat2(RENAME_EXCHANGE)`), as a container process
/// racing a copy would; false once either is gone.
fn exchange(a: &Path, b: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = std::ffi::CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    r == 0
}

/// Issue 10, item 9: a file that turns into a FIFO (or a device) between the copy's listing
/// and its open never hangs the daemon's copy, and a device's content never passes as the
/// file's: `/data/f` is exchanged with a FIFO and with `/dev/zero`'s numbers as fast as the
/// kernel allows while `cp` copies it, 40 times, each bounded to 10 s.
// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn hardening_cp_of_a_file_swapped_for_a_fifo_never_hangs(env: &TestEnv) {
    env.berth(&[
        "run", "-d", "--network", "none", "--name", "swapper", "busybox", "sh", "-c",
        "mkdir /data && echo regular > /data/f && mkfifo /data/p && mknod /data/z c 1 5 && exec sleep 1000",
    ])
    .ok();
    let pid = env.inspect("swapper", "{{.State.Pid}}");
    let data = PathBuf::from(format!("/proc/{pid}/root/data"));
    assert!(env.eventually(10, || data.join("z").exists()), "setup");
    // A whole export, before anything is swapped: exports must match it or fail.
    let export = |env: &TestEnv| {
        let mut c = Command::new(crate::harness::berth_exe());
        c.args(["export", "swapper"]).env("BERTH_HOST", env.host());
        run_within(c, Duration::from_secs(10))
    };
    let whole = export(env).expect("export");
    assert!(whole.status.success(), "{whole:?}");
    let whole_entries = tar::Archive::new(&whole.stdout[..])
        .entries()
        .unwrap()
        .count();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, data) = (Arc::clone(&stop), data.clone());
        std::thread::spawn(move || {
            let (f, p, z) = (data.join("f"), data.join("p"), data.join("z"));
            while !stop.load(Ordering::Relaxed) {
                for other in [&p, &z] {
                    // Twice: back to a regular file each round.
                    if !exchange(&f, other) || !exchange(&f, other) {
                        return;
                    }
                }
            }
        })
    };
    let mut outcomes = Vec::new();
    for round in 0..40 {
        let source = if round % 2 == 0 {
            "swapper:/data"
        } else {
            "swapper:/data/f"
        };
        let started = Instant::now();
        let out = run_within(
            {
                let mut c = Command::new(crate::harness::berth_exe());
                c.args(["cp", source, "-"]).env("BERTH_HOST", env.host());
                c
            },
            Duration::from_secs(10),
        );
        let took = started.elapsed();
        match out {
            None => outcomes.push(format!("{source}: hung ({took:?})")),
            Some(out) => {
                if out.status.success() {
                    // Whatever the archive says `f` holds is the regular file's content.
                    let mut archive = tar::Archive::new(&out.stdout[..]);
                    for entry in archive.entries().expect("tar") {
                        let mut entry = entry.expect("entry");
                        let path = entry.path().expect("path").into_owned();
                        if path.ends_with("f") && entry.header().entry_type().is_file() {
                            let mut data = Vec::new();
                            entry.read_to_end(&mut data).expect("read");
                            if data != b"regular\n" {
                                outcomes.push(format!("{source}: f held {data:?}"));
                            }
                        }
                    }
                }
            }
        }
        if outcomes.iter().any(|o| o.contains("hung")) {
            break;
        }
    }
    // `export` reads the same files: it completes or fails, never hangs, and never exits 0
    // with a partial archive.
    for _ in 0..10 {
        match export(env) {
            None => {
                outcomes.push("export: hung".into());
                break;
            }
            Some(out) if out.status.success() => {
                let count = tar::Archive::new(&out.stdout[..])
                    .entries()
                    .map_or(0, |e| e.filter(Result::is_ok).count());
                if count != whole_entries {
                    outcomes.push(format!(
                        "export: exit 0 with {count} of {whole_entries} entries"
                    ));
                }
            }
            Some(_) => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    // The container goes at once, and the daemon still answers.
    let rm = run_within(
        {
            let mut c = Command::new(crate::harness::berth_exe());
            c.args(["rm", "-f", "swapper"])
                .env("BERTH_HOST", env.host());
            c
        },
        Duration::from_secs(20),
    );
    assert!(rm.is_some(), "rm -f hung");
    daemon_answers(env);
    assert!(outcomes.is_empty(), "{outcomes:?}");
}

/// A tmpfs of `size` mounted at a new directory, unmounted and removed when dropped.
pub(crate) struct TinyTmpfs(pub(crate) PathBuf);

impl TinyTmpfs {
    pub(crate) fn mount(path: PathBuf, size: &str) -> TinyTmpfs {
        std::fs::create_dir_all(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "berth-test"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        TinyTmpfs(path)
    }

    /// Bytes free on it.
    pub(crate) fn free(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.0)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap());
        fields.next().unwrap() * fields.next().unwrap()
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `VmRSS` of `pid` in KiB.
pub(crate) fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Issue 10, item 13 (the monitor's part): a container writing faster than a full disk can
/// take. No log line is ever a half-written entry fused with its retry, the monitor's memory
/// stays bounded (it stops reading the container's output while its buffer is full, as a
/// full pipe would), and once space is freed logging resumes with nothing lost or doubled.
// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn hardening_full_disk_keeps_log_lines_whole_and_the_monitor_small(env: &TestEnv) {
    let tmpfs = TinyTmpfs::mount(
        PathBuf::from(format!("/tmp/bld{}", std::process::id())),
        "24m",
    );
    let daemon = SecondDaemon::start(env, "l", &[], Some(&tmpfs.0));
    // Leave ~1 MiB free.
    let filler = tmpfs.0.join("filler");
    let free = tmpfs.free();
    std::fs::write(&filler, vec![0u8; (free.saturating_sub(1 << 20)) as usize]).unwrap();
    let payload = "x".repeat(100);
    let script = format!("i=0; while :; do echo \"{payload} $i\"; i=$((i+1)); done");
    let run = daemon.berth(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2m",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    assert!(run.status.success(), "{run:?}");
    let id = String::from_utf8_lossy(&run.stdout).trim().to_owned();
    let monitor: i32 =
        std::fs::read_to_string(daemon.dir.join("containers").join(&id).join("monitor.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    // The disk fills within a moment; then watch the monitor for 8 s.
    let full = env.eventually(20, || tmpfs.free() < 64 * 1024);
    let mut samples = Vec::new();
    for _ in 0..32 {
        samples.push(rss_kib(monitor));
        std::thread::sleep(Duration::from_millis(250));
    }
    // Free the space: logging resumes.
    std::fs::remove_file(&filler).unwrap();
    let log_dir = tmpfs.0.join("containers").join(&id);
    let log = log_dir.join(format!("{id}-json.log"));
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let before = size(&log) + size(&log.with_extension("log.1"));
    std::thread::sleep(Duration::from_secs(2));
    let resumed = env.eventually(10, || {
        size(&log) + size(&log.with_extension("log.1")) != before
    });
    // Stop it, then read what was kept (the rotated file, then the current) before `rm`.
    let _ = daemon.berth(&["kill", "chatty"]);
    let _ = daemon.berth(&["wait", "chatty"]);
    let mut lines = Vec::new();
    for file in [log.with_extension("log.1"), log.clone()] {
        if let Ok(text) = std::fs::read(&file) {
            lines.extend(
                text.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    let _ = daemon.berth(&["rm", "-f", "chatty"]);
    drop(daemon);
    drop(tmpfs);
    eprintln!(
        "disk full: {full}; monitor RSS (KiB) while full: first {}, max {}; resumed: {resumed}; {} entries kept",
        samples.first().copied().unwrap_or(0),
        samples.iter().max().copied().unwrap_or(0),
        lines.len()
    );
    assert!(full, "the disk never filled");
    assert!(!lines.is_empty(), "nothing logged");
    // Every line is one whole entry: JSON, `log` being one line of the container's output.
    let mut numbers = Vec::new();
    for line in &lines {
        let entry: serde_json::Value = serde_json::from_slice(line).unwrap_or_else(|e| {
            panic!(
                "not one whole entry ({e}): {:?}",
                String::from_utf8_lossy(line)
            )
        });
        let text = entry["log"].as_str().unwrap();
        let number = text
            .strip_prefix(&payload)
            .and_then(|t| t.strip_prefix(' '))
            .and_then(|t| t.strip_suffix('\n'))
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("fused or torn entry: {text:?}"));
        numbers.push(number);
    }
    // Nothing doubled, nothing lost in between (blocking mode: the container waited).
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "entries out of sequence around {:?}",
        numbers.windows(2).find(|w| w[1] != w[0] + 1)
    );
    let max = samples.iter().max().copied().unwrap_or(0);
    let first = samples.first().copied().unwrap_or(0);
    assert!(
        max < 16 * 1024 && max.saturating_sub(first) < 4 * 1024,
        "monitor RSS grew while the disk was full: {samples:?} KiB"
    );
    assert!(resumed, "logging did not resume once space was freed");
}
