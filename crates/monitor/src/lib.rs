//! The per-container monitor: one small single-threaded process per container run.
//!
//! The daemon writes a [`protocol::MonitorConfig`] to `<run_dir>/monitor.json` and the OCI spec
//! to `<run_dir>/config.json`, then spawns `berth monitor <run_dir>` with its stdout on a pipe.
//! The monitor creates the container init (blocked before exec) with berth's runtime or an
//! external OCI runtime, binds `<run_dir>/monitor.sock`, writes one [`protocol::Ready`] JSON
//! line to its stdout and points stdout at `/dev/null`, then serves the [`protocol`] until the
//! container exited: it holds the container's stdio (pipes or pty master), writes the
//! json-file log ([`logfile`]), streams attach and exec I/O, and records the exit.
//!
//! It outlives the daemon: it starts its own session, handles (and so survives) SIGHUP,
//! SIGINT, SIGTERM and SIGPIPE, and is a child subreaper so exec'd grandchildren are its to
//! reap. A restarted daemon reconnects through the socket; a finished container leaves
//! `exit.json`.
//!
//! Run dir files this crate reads or writes:
//!
//! ```text
//! monitor.json   MonitorConfig (daemon → monitor)
//! config.json    OCI runtime spec (daemon → monitor)
//! monitor.sock   the protocol socket (removed at exit)
//! monitor.pid    the monitor's pid (removed at exit)
//! exit.json      ExitStatus, written atomically once the container exited
//! ```
#![warn(missing_docs)]
// Raw system calls live in `sys` only.
#![deny(unsafe_code)]

pub mod error;
pub mod logdriver;
pub mod logfile;
pub mod protocol;
pub mod sockpath;

mod engine;
mod monitor;
mod oom;
mod stdio;
#[allow(unsafe_code)]
mod sys;

use std::io::Write;
use std::path::Path;

pub use error::MonitorError;
pub use monitor::Monitor;
use protocol::Ready;

/// The monitor's entry point (`berth monitor <run_dir>`); returns the process exit code:
/// 0 once the container exited and was recorded, 1 if it could not be created.
pub fn run(run_dir: &Path) -> i32 {
    // Everything the monitor forks into a container is non-dumpable until it execs.
    berth_runtime::harden_process();
    match Monitor::new(run_dir, berth_runtime::cgroup_root()) {
        Ok(monitor) => {
            report_ready(&Ready {
                pid: monitor.init_pid(),
                error: None,
            });
            match monitor.serve() {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth-monitor: {e}");
                    1
                }
            }
        }
        Err(e) => {
            let error = match e.exec_failure() {
                // The command cannot run (an external runtime checks at create): record the
                // exit Docker reports (126/127) as well, in Docker's wording.
                Some((message, exit_code)) => {
                    let exit = protocol::ExitStatus {
                        exit_code,
                        finished_at: logfile::rfc3339_nano(std::time::SystemTime::now()),
                        oom_killed: false,
                        error: Some(message.clone()),
                    };
                    if let Err(e) = monitor::write_exit_file(run_dir, &exit) {
                        eprintln!("berth-monitor: {e}");
                    }
                    message
                }
                None => e.to_string(),
            };
            report_ready(&Ready {
                pid: 0,
                error: Some(error),
            });
            1
        }
    }
}

/// Writes the one `Ready` line, then detaches stdout from the daemon's pipe (so a dead
/// daemon's pipe can never block or kill the monitor).
fn report_ready(ready: &Ready) {
    let mut line = serde_json::to_vec(ready).expect("Ready always serializes");
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    // The daemon may be gone already; the monitor carries on regardless.
    let _ = stdout.write_all(&line);
    let _ = stdout.flush();
    drop(stdout);
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
}
