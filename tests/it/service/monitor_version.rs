//! The monitor protocol's versions across a daemon restart: a container's monitor socket is
//! replaced by a fake one while the daemon is down. A monitor that answers the handshake with
//! a version this berth does not speak is refused in one line and its container left running
//! (not taken for lost and killed); a version 1 monitor (before the handshake: it answers
//! `hello` with its "unknown variant" error) is spoken to, and the container managed through
//! it to its exit.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Private;
use crate::harness::TestEnv;

/// What a version 1 monitor answers a request it does not know (serde's words).
const V1_UNKNOWN_HELLO: &str = r#"{"result":"error","message":"invalid request: unknown variant `hello`, expected one of `start`, `attach`, `wait`, `resize`, `kill`, `state`, `exec`, `exec_resize` at line 1 column 13","exit_code":null}"#;

/// How the fake monitor answers.
#[derive(Clone, Copy)]
enum Speaks {
    /// Every request gets `{"result":"hello","version":N}`.
    Version(u32),
    /// `hello` gets version 1's error; everything else goes to the real monitor.
    One,
}

/// A socket in place of a monitor's, served by threads of the test until dropped.
struct FakeMonitor {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl FakeMonitor {
    fn serve(path: &Path, speaks: Speaks, real: &Path) -> FakeMonitor {
        let listener = UnixListener::bind(path).expect("bind the fake monitor socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let (stopped, real) = (Arc::clone(&stop), real.to_owned());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let real = real.clone();
                        std::thread::spawn(move || answer(conn, speaks, &real));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeMonitor {
            path: path.to_owned(),
            stop,
        }
    }
}

impl Drop for FakeMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One connection: the first line is the request.
fn answer(conn: UnixStream, speaks: Speaks, real: &Path) {
    let _ = conn.set_nonblocking(false);
    let mut reader = BufReader::new(conn.try_clone().expect("dup"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut conn = conn;
    match speaks {
        Speaks::Version(version) => {
            let _ = writeln!(conn, r#"{{"result":"hello","version":{version}}}"#);
        }
        Speaks::One if line.contains(r#""op":"hello""#) => {
            let _ = writeln!(conn, "{V1_UNKNOWN_HELLO}");
        }
        Speaks::One => {
            // The real monitor does the rest: the line, what was read past it, then both
            // directions as they come.
            let Ok(mut upstream) = UnixStream::connect(real) else {
                return;
            };
            let _ = upstream.write_all(line.as_bytes());
            let _ = upstream.write_all(reader.buffer());
            let mut down = upstream.try_clone().expect("dup");
            let mut back = conn.try_clone().expect("dup");
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut down, &mut back);
                let _ = back.shutdown(std::net::Shutdown::Both);
            });
            let mut rest = reader.into_inner();
            let mut buf = [0u8; 8192];
            while let Ok(n) = rest.read(&mut buf) {
                if n == 0 || upstream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = upstream.shutdown(std::net::Shutdown::Write);
        }
    }
}

fn inspect(daemon: &Private, template: &str, id: &str) -> String {
    daemon.berth(&["inspect", "--format", template, id]).ok()
}

/// `rm -f` of a container whose monitor is refused kills the container and the monitor and
/// removes it at once (it used to wait 30 s for an exit no one would report).
fn rm_f_is_prompt(daemon: &Private, id: &str, init: &str, monitor: &str) {
    assert_eq!(inspect(daemon, "{{.State.Status}}", id), "running");
    assert!(
        inspect(daemon, "{{.State.Error}}", id).contains("cannot manage it"),
        "refused"
    );
    let started = Instant::now();
    let r = daemon.berth(&["rm", "-f", id]);
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(took < Duration::from_secs(5), "rm -f took {took:?}");
    let r = daemon.berth(&["inspect", id]);
    assert_ne!(r.code, 0, "removed: {r:?}");
    for pid in [init, monitor] {
        let gone = (0..200).any(|_| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            });
            if alive {
                std::thread::sleep(Duration::from_millis(10));
            }
            !alive
        });
        assert!(gone, "process {pid} was killed");
    }
}

pub(super) fn older_spoken_unknown_refused(env: &TestEnv) {
    let mut daemon = Private::new(env, "mv", "{}");
    daemon.start(&[]);
    daemon.berth(&["image", "bootstrap", "busybox"]).ok();
    let id = daemon
        .berth(&[
            "run",
            "-d",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo up; sleep 1000",
        ])
        .ok();
    // A second one, to be removed with `rm -f` while its monitor is refused.
    let doomed = daemon
        .berth(&["run", "-d", "--network", "none", "busybox", "sleep", "1000"])
        .ok();
    let init = inspect(&daemon, "{{.State.Pid}}", &id);
    let doomed_init = inspect(&daemon, "{{.State.Pid}}", &doomed);
    let run_dir = daemon.dir.join("r/containers").join(&id);
    let socket = run_dir.join("monitor.sock");
    let real = run_dir.join("real.sock");
    let doomed_dir = daemon.dir.join("r/containers").join(&doomed);
    let doomed_monitor = std::fs::read_to_string(doomed_dir.join("monitor.pid"))
        .expect("monitor.pid")
        .trim()
        .to_owned();
    daemon.stop();
    std::fs::rename(&socket, &real).expect("move the monitor's socket aside");
    std::fs::rename(
        doomed_dir.join("monitor.sock"),
        doomed_dir.join("real.sock"),
    )
    .expect("move the monitor's socket aside");

    // A monitor of a protocol this berth does not speak: refused, left running.
    let fake = FakeMonitor::serve(&socket, Speaks::Version(99), &real);
    let doomed_fake = FakeMonitor::serve(
        &doomed_dir.join("monitor.sock"),
        Speaks::Version(99),
        &doomed_dir.join("real.sock"),
    );
    daemon.start(&[]);
    rm_f_is_prompt(&daemon, &doomed, &doomed_init, &doomed_monitor);
    drop(doomed_fake);
    assert_eq!(inspect(&daemon, "{{.State.Status}}", &id), "running");
    let error = inspect(&daemon, "{{.State.Error}}", &id);
    assert!(
        error.contains(
            "speaks monitor protocol version 99, and this berth speaks versions 1 to 2: the container is left running but this daemon cannot manage it"
        ),
        "{error}"
    );
    assert!(
        Path::new(&format!("/proc/{init}")).exists(),
        "the container was not killed"
    );
    let r = daemon.berth(&["stop", "-t", "1", &id]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("cannot manage it"), "{r:?}");
    assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {r:?}");
    let refusals = daemon
        .log()
        .lines()
        .filter(|l| {
            l.contains("ERROR")
                && l.contains(&id[..12])
                && l.contains("speaks monitor protocol version 99")
        })
        .count();
    assert_eq!(refusals, 1, "{}", daemon.log());
    daemon.stop();
    drop(fake);

    // A version 1 monitor: recognised, and the container managed through it.
    let fake = FakeMonitor::serve(&socket, Speaks::One, &real);
    daemon.start(&[]);
    assert_eq!(inspect(&daemon, "{{.State.Status}}", &id), "running");
    assert_eq!(inspect(&daemon, "{{.State.Error}}", &id), "");
    assert!(daemon.berth(&["logs", &id]).ok().contains("up"));
    assert_eq!(daemon.berth(&["exec", &id, "echo", "hi"]).ok(), "hi");
    daemon.berth(&["stop", "-t", "1", &id]).ok();
    assert_eq!(inspect(&daemon, "{{.State.ExitCode}}", &id), "137");
    assert!(!Path::new(&format!("/proc/{init}")).exists());
    drop(fake);
}
