//! Integration tests: the crashes, hangs and faults of the hardening issue (issue 10), each a
//! reproducer that once worked against berth: containers outliving a killed monitor, deep
//! directory trees, files swapped for FIFOs under `cp`, idle connections exhausting the
//! daemon's descriptors, and a full disk under a chatty container's log.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[(
    "hardening_container_dies_with_its_monitor",
    hardening_container_dies_with_its_monitor,
)];

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
