//! OCI hooks ([runtime spec, "POSIX-platform Hooks"][hooks]): programs the runtime runs at
//! fixed points of a container's life, each with the container's state as JSON on stdin.
//!
//! | hook | when | where it runs | a failure |
//! | --- | --- | --- | --- |
//! | `prestart` (deprecated), `createRuntime` | `create`: the namespaces and mounts exist, before pivot_root | the caller (runtime namespace), pid = the init | fails `create`, nothing is left |
//! | `createContainer` | `create`, after them, before pivot_root | the init (container namespaces; path resolved in the runtime's mount namespace) | fails `create` |
//! | `startContainer` | `start`, before the program runs | the init, after pivot_root | fails `start`, the init exits |
//! | `poststart` | `start`, once the program runs | the caller | a warning |
//! | `poststop` | `delete` | the caller | a warning |
//!
//! A hook gets `args` as its argv (its path when there are none) and exactly `env` as its
//! environment (the caller's when `env` is absent, as runc's Go `exec.Cmd` does); `timeout`
//! seconds after it started it is killed and counts as failed. Its stdout and stderr (the
//! first 4 KiB) go into the error message.
//!
//! [hooks]: https://github.com/opencontainers/runtime-spec/blob/main/config.md#posix-platform-hooks
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Hooks, Spec};

use crate::RuntimeError;

/// How much of a hook's output an error message keeps.
const OUTPUT_LIMIT: usize = 4096;

/// The kinds of hooks, named as the spec's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    /// The spec's field, e.g. `hooks.createRuntime`.
    pub(crate) fn field(self) -> &'static str {
        match self {
            HookKind::Prestart => "hooks.prestart",
            HookKind::CreateRuntime => "hooks.createRuntime",
            HookKind::CreateContainer => "hooks.createContainer",
            HookKind::StartContainer => "hooks.startContainer",
            HookKind::Poststart => "hooks.poststart",
            HookKind::Poststop => "hooks.poststop",
        }
    }

    /// Whether the hook's path resolves in the runtime's mount namespace (so it can be
    /// checked before anything is created).
    fn resolves_on_host(self) -> bool {
        self != HookKind::StartContainer
    }
}

/// One hook, converted by the parent so the child only makes system calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookPlan {
    pub path: PathBuf,
    path_c: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    timeout: Option<Duration>,
}

fn cstring(field: &'static str, value: &str) -> Result<CString, RuntimeError> {
    CString::new(value).map_err(|_| RuntimeError::InvalidSpec {
        field,
        reason: format!("{value:?} contains a NUL byte"),
    })
}

impl HookPlan {
    fn new(kind: HookKind, hook: &Hook) -> Result<Self, RuntimeError> {
        let field = kind.field();
        let invalid = |reason: String| RuntimeError::InvalidSpec { field, reason };
        let path = hook.path();
        if !path.is_absolute() {
            return Err(invalid(format!("path {} is not absolute", path.display())));
        }
        if kind.resolves_on_host() {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => return Err(invalid(format!("{} is not a file", path.display()))),
                Err(err) => return Err(invalid(format!("{}: {err}", path.display()))),
            }
        }
        let timeout = match hook.timeout() {
            None => None,
            Some(seconds) if seconds > 0 => Some(Duration::from_secs(seconds.unsigned_abs())),
            Some(seconds) => {
                return Err(invalid(format!(
                    "timeout {seconds} of {} must be greater than zero",
                    path.display()
                )));
            }
        };
        let path_text = path.to_string_lossy();
        let args = match hook.args() {
            Some(args) if !args.is_empty() => args.clone(),
            _ => vec![path_text.clone().into_owned()],
        };
        let env = match hook.env() {
            Some(env) => env
                .iter()
                .map(|e| cstring(field, e))
                .collect::<Result<_, _>>()?,
            None => std::env::vars_os()
                .filter_map(|(key, value)| {
                    let mut entry = key.into_encoded_bytes();
                    entry.push(b'=');
                    entry.extend_from_slice(value.as_encoded_bytes());
                    CString::new(entry).ok()
                })
                .collect(),
        };
        Ok(HookPlan {
            path: path.clone(),
            path_c: cstring(field, &path_text)?,
            argv: args
                .iter()
                .map(|a| cstring(field, a))
                .collect::<Result<_, _>>()?,
            env,
            timeout,
        })
    }
}

/// Every hook of a spec, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HookPlans {
    pub prestart: Vec<HookPlan>,
    pub create_runtime: Vec<HookPlan>,
    pub create_container: Vec<HookPlan>,
    pub start_container: Vec<HookPlan>,
    pub poststart: Vec<HookPlan>,
    pub poststop: Vec<HookPlan>,
}

impl HookPlans {
    /// Converts and checks `spec.hooks`: absolute paths, present on the host where they
    /// resolve there, positive timeouts.
    pub(crate) fn new(spec: &Spec) -> Result<Self, RuntimeError> {
        match spec.hooks() {
            Some(hooks) => Self::from_hooks(hooks),
            None => Ok(HookPlans::default()),
        }
    }

    #[allow(deprecated)] // `prestart` is deprecated in the spec, and still run.
    pub(crate) fn from_hooks(hooks: &Hooks) -> Result<Self, RuntimeError> {
        let convert = |kind: HookKind, list: &Option<Vec<Hook>>| {
            list.iter()
                .flatten()
                .map(|hook| HookPlan::new(kind, hook))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(HookPlans {
            prestart: convert(HookKind::Prestart, hooks.prestart())?,
            create_runtime: convert(HookKind::CreateRuntime, hooks.create_runtime())?,
            create_container: convert(HookKind::CreateContainer, hooks.create_container())?,
            start_container: convert(HookKind::StartContainer, hooks.start_container())?,
            poststart: convert(HookKind::Poststart, hooks.poststart())?,
            poststop: convert(HookKind::Poststop, hooks.poststop())?,
        })
    }

    /// Whether the init must stop before pivot_root for the caller's hooks.
    pub(crate) fn runtime_hooks_at_create(&self) -> bool {
        !self.prestart.is_empty() || !self.create_runtime.is_empty()
    }
}

/// A hook that failed: which one and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookFailure {
    pub kind: HookKind,
    pub path: PathBuf,
    pub reason: String,
}

impl HookFailure {
    pub(crate) fn into_error(self) -> RuntimeError {
        RuntimeError::Hook {
            hook: self.kind.field(),
            path: self.path,
            reason: self.reason,
        }
    }
}

/// Runs `hooks` in order with `state` on stdin; stops at the first failure.
pub(crate) fn run_all(kind: HookKind, hooks: &[HookPlan], state: &[u8]) -> Result<(), HookFailure> {
    for hook in hooks {
        run(hook, state).map_err(|reason| HookFailure {
            kind,
            path: hook.path.clone(),
            reason,
        })?;
    }
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// One hook: spawn, feed stdin, collect output, wait (killing it at the timeout).
fn run(hook: &HookPlan, state: &[u8]) -> Result<(), String> {
    let io_error = |e: io::Error| format!("{e}");
    let (stdin_read, stdin_write) = pipe().map_err(io_error)?;
    let (out_read, out_write) = pipe().map_err(io_error)?;
    let (error_read, error_write) = pipe().map_err(io_error)?;
    let pid = crate::sys::spawn(
        &hook.path_c,
        &hook.argv,
        &hook.env,
        crate::sys::SpawnFds {
            stdin: stdin_read.as_fd(),
            stdout: out_write.as_fd(),
            stderr: out_write.as_fd(),
            exec_error: error_write.as_fd(),
        },
    )
    .map_err(io_error)?;
    drop((stdin_read, out_write, error_write));
    let deadline = hook.timeout.map(|t| Instant::now() + t);
    let outcome = exchange(pid, stdin_write, &out_read, state, deadline);
    let status = match outcome {
        Ok(status) => status,
        Err(reason) => {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            crate::init::reap(pid);
            return Err(reason);
        }
    };
    let mut errno = [0u8; 4];
    if let Ok(4) = nix::unistd::read(&error_read, &mut errno) {
        let error = io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
        return Err(format!("exec: {error}"));
    }
    let output = status.1;
    let shown = String::from_utf8_lossy(&output);
    let shown = shown.trim();
    let with_output = |what: String| {
        if shown.is_empty() {
            what
        } else {
            format!("{what}, output: {shown}")
        }
    };
    match status.0 {
        WaitStatus::Exited(_, 0) => Ok(()),
        WaitStatus::Exited(_, code) => Err(with_output(format!("exit status {code}"))),
        WaitStatus::Signaled(_, signal, _) => Err(with_output(format!("killed by {signal}"))),
        other => Err(with_output(format!("ended with {other:?}"))),
    }
}

/// Writes `state` to the hook's stdin and reads its output until it exits or `deadline`
/// passes (then the error says so; the caller kills it).
fn exchange(
    pid: i32,
    stdin: OwnedFd,
    output: &OwnedFd,
    state: &[u8],
    deadline: Option<Instant>,
) -> Result<(WaitStatus, Vec<u8>), String> {
    let io_error = |e: io::Error| format!("{e}");
    set_nonblocking(&stdin).map_err(io_error)?;
    set_nonblocking(output).map_err(io_error)?;
    let mut stdin = Some(stdin);
    let mut written = 0usize;
    let mut collected = Vec::new();
    let mut output_open = true;
    let timed_out = || {
        deadline.map_or(Ok(()), |deadline| {
            if Instant::now() >= deadline {
                Err("timed out".to_owned())
            } else {
                Ok(())
            }
        })
    };
    // The tick bounds how late an exit without closed pipes (a hook that left a daemon
    // holding its stdout) is noticed.
    let tick = |deadline: Option<Instant>| {
        let left = deadline.map_or(Duration::from_millis(10), |d| {
            d.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(10))
        });
        PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO)
    };
    loop {
        if written == state.len() {
            // EOF for the hook's stdin.
            stdin = None;
        }
        let mut fds = Vec::with_capacity(2);
        if output_open {
            fds.push(PollFd::new(output.as_fd(), PollFlags::POLLIN));
        }
        if let Some(fd) = &stdin {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLOUT));
        }
        if fds.is_empty() {
            return wait_until(pid, deadline).map(|status| (status, collected));
        }
        match poll(&mut fds, tick(deadline)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(errno) => return Err(io_error(errno.into())),
        }
        let ready: Vec<PollFlags> = fds
            .iter()
            .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let mut index = 0;
        if output_open {
            if !ready[index].is_empty() {
                output_open = drain(output, &mut collected);
            }
            index += 1;
        }
        if let Some(fd) = &stdin
            && !ready[index].is_empty()
        {
            match nix::unistd::write(fd, &state[written..]) {
                Ok(n) => written += n,
                Err(nix::Error::EAGAIN | nix::Error::EINTR) => {}
                // The hook does not read its stdin (EPIPE): fine.
                Err(_) => written = state.len(),
            }
        }
        if let Some(status) = try_wait(pid)? {
            drain(output, &mut collected);
            return Ok((status, collected));
        }
        timed_out()?;
    }
}

/// Reads what `fd` has; returns whether it is still open.
fn drain(fd: &OwnedFd, collected: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(collected.len());
                collected.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => return true,
            Err(_) => return false,
        }
    }
}

fn try_wait(pid: i32) -> Result<Option<WaitStatus>, String> {
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) | Err(nix::Error::EINTR) => Ok(None),
        Ok(status) => Ok(Some(status)),
        Err(errno) => Err(format!("wait: {errno}")),
    }
}

/// Waits for `pid` after its pipes closed, until `deadline`.
fn wait_until(pid: i32, deadline: Option<Instant>) -> Result<WaitStatus, String> {
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(status) = try_wait(pid)? {
            return Ok(status);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err("timed out".to_owned());
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// The calling process's pid as the runtime's pid namespace sees it: `/proc/self` of the
/// host's procfs (read before pivot_root), else `getpid`.
pub(crate) fn own_host_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|link| link.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| nix::unistd::getpid().as_raw())
}

/// Whether `path` is absent: for tests of the plan.
#[cfg(test)]
fn plan_error(kind: HookKind, hook: &Hook) -> String {
    HookPlan::new(kind, hook).expect_err("refused").to_string()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn hook(path: &Path, args: &[&str], timeout: Option<i64>) -> Hook {
        let mut hook = Hook::default();
        hook.set_path(path.to_owned());
        hook.set_args(Some(args.iter().map(|a| (*a).to_owned()).collect()));
        hook.set_env(Some(vec!["HOOK_ENV=yes".to_owned()]));
        hook.set_timeout(timeout);
        hook
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[test]
    fn a_hook_gets_state_args_and_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let body = format!("cat > {0}; echo \"$0 $1 $HOOK_ENV\" >> {0}", out.display());
        let plan = HookPlan::new(
            HookKind::Poststart,
            &hook(
                Path::new("/bin/sh"),
                &["sh", "-c", &body, "name", "arg"],
                Some(5),
            ),
        )
        .expect("plan");
        run_all(HookKind::Poststart, &[plan], b"{\"id\":\"x\"}").expect("runs");
        assert_eq!(
            std::fs::read_to_string(out).expect("out"),
            "{\"id\":\"x\"}name arg yes\n"
        );
    }

    #[test]
    fn failures_name_the_status_and_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = script(dir.path(), "fail", "echo broken >&2; exit 3");
        let plan = HookPlan::new(HookKind::CreateRuntime, &hook(&path, &[], None)).expect("plan");
        let failure = run_all(HookKind::CreateRuntime, &[plan], b"{}").expect_err("fails");
        assert_eq!(failure.reason, "exit status 3, output: broken");
        assert_eq!(
            failure.into_error().to_string(),
            format!(
                "hooks.createRuntime {}: exit status 3, output: broken",
                path.display()
            )
        );
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = script(dir.path(), "slow", "exec sleep 30");
        let plan =
            HookPlan::new(HookKind::CreateRuntime, &hook(&path, &[], Some(1))).expect("plan");
        let started = Instant::now();
        let failure = run_all(HookKind::CreateRuntime, &[plan], b"{}").expect_err("times out");
        assert_eq!(failure.reason, "timed out");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn bad_hooks_are_refused_before_anything_runs() {
        let missing = plan_error(
            HookKind::CreateRuntime,
            &hook(Path::new("/nonexistent/hook"), &[], None),
        );
        assert!(
            missing.starts_with("invalid runtime spec: hooks.createRuntime: /nonexistent/hook:"),
            "{missing}"
        );
        let relative = plan_error(HookKind::Poststop, &hook(Path::new("bin/true"), &[], None));
        assert!(
            relative.contains("hooks.poststop: path bin/true is not absolute"),
            "{relative}"
        );
        let zero = plan_error(
            HookKind::Prestart,
            &hook(Path::new("/bin/true"), &[], Some(0)),
        );
        assert!(zero.contains("must be greater than zero"), "{zero}");
        // startContainer resolves inside the container: only the form is checked.
        HookPlan::new(
            HookKind::StartContainer,
            &hook(Path::new("/only/in/the/container"), &[], None),
        )
        .expect("plan");
    }

    #[test]
    fn an_unexecutable_hook_fails_with_the_exec_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plain");
        std::fs::write(&path, "not a program").expect("write");
        let plan = HookPlan::new(HookKind::Poststop, &hook(&path, &[], None)).expect("plan");
        let failure = run_all(HookKind::Poststop, &[plan], b"{}").expect_err("fails");
        assert!(
            failure.reason.starts_with("exec: Permission denied"),
            "{}",
            failure.reason
        );
    }
}
