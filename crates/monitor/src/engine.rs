//! How the monitor creates, starts, signals and execs into its container: with berth's own
//! runtime in process, or with an external OCI runtime binary (runc's command-line contract).
//!
//! External runtime files in the run dir (the bundle):
//!
//! ```text
//! <run_dir>/rootfs          the overlay the monitor mounts on the host (when configured)
//! <run_dir>/oci/            the runtime's --root (its state)
//! <run_dir>/oci.log         the runtime's JSON log (where its error messages are read from)
//! <run_dir>/init.pid        --pid-file of create
//! <run_dir>/console.sock    --console-socket, while a TTY is being set up
//! <run_dir>/exec-N.json     an exec's process, while `exec` runs
//! ```
//!
//! The container init reparents to the monitor when `create` exits (the monitor is a child
//! subreaper), and so do detached exec processes, so `waitpid` works for both runtimes.
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_runtime::{PendingInit, Process, RuntimeError, Spec};
use nix::mount::{MntFlags, MsFlags};
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::error::MonitorError;
use crate::protocol::{ExecRequest, MonitorConfig, RuntimeKind};
use crate::stdio::HostStdio;
use crate::sys;

/// The container's runtime, as the monitor drives it.
#[derive(Debug)]
pub enum Engine {
    /// berth's own runtime; `pending` until `Start`.
    Builtin {
        /// Container id (for errors).
        id: String,
        /// The init, blocked before exec.
        pending: Option<PendingInit>,
        /// Host-side runtime settings (the seccomp cache), reused by exec.
        options: berth_runtime::RuntimeOptions,
    },
    /// An OCI runtime binary.
    External(ExternalRuntime),
}

impl Engine {
    /// Creates the container init (not started); returns the engine, the init's pid and the
    /// monitor's side of its stdio.
    pub fn create(
        config: &MonitorConfig,
        spec: &Spec,
    ) -> Result<(Engine, i32, HostStdio), MonitorError> {
        match &config.runtime {
            RuntimeKind::Builtin => {
                let (host, child) =
                    HostStdio::for_runtime(config.tty, config.console_size, config.open_stdin)?;
                let options = runtime_options(&config.run_dir);
                let pending = berth_runtime::create_with(
                    spec,
                    &config.run_dir,
                    config.rootfs.as_ref(),
                    child,
                    &options,
                )
                .map_err(|source| MonitorError::Runtime {
                    id: config.id.clone(),
                    source,
                })?;
                let pid = pending.pid();
                let host = match host.finish() {
                    Ok(host) => host,
                    Err(e) => {
                        // Dropped without start, the init exits: reap it.
                        drop(pending);
                        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                        return Err(e);
                    }
                };
                let engine = Engine::Builtin {
                    id: config.id.clone(),
                    pending: Some(pending),
                    options,
                };
                Ok((engine, pid, host))
            }
            RuntimeKind::External(binary) => {
                let mut external = ExternalRuntime::new(binary, config);
                match external.create(config) {
                    Ok((pid, host)) => Ok((Engine::External(external), pid, host)),
                    Err(e) => {
                        external.cleanup();
                        Err(e)
                    }
                }
            }
        }
    }

    /// Lets the init exec its process.
    pub fn start(&mut self) -> Result<(), MonitorError> {
        match self {
            Engine::Builtin { id, pending, .. } => match pending.take() {
                Some(init) => init.start().map_err(|source| MonitorError::Runtime {
                    id: id.clone(),
                    source,
                }),
                None => Ok(()),
            },
            Engine::External(external) => external.start(),
        }
    }

    /// Sends `signal` to the init.
    pub fn kill(&self, init_pid: i32, signal: i32) -> Result<(), MonitorError> {
        match self {
            Engine::Builtin { .. } => {
                sys::send_signal(init_pid, signal).map_err(|source| MonitorError::Signal {
                    pid: init_pid,
                    signal,
                    source,
                })
            }
            Engine::External(external) => external.kill(signal),
        }
    }

    /// Runs a process in the running container; returns its pid and the monitor's side of
    /// its stdio.
    pub fn exec(
        &mut self,
        init_pid: i32,
        spec: &Spec,
        request: &ExecRequest,
    ) -> Result<(i32, HostStdio), MonitorError> {
        let tty = request.process.terminal().unwrap_or(false);
        match self {
            Engine::Builtin { id, options, .. } => {
                let (host, child) =
                    HostStdio::for_runtime(tty, request.console_size, request.attach_stdin)?;
                let pid =
                    berth_runtime::exec_with(init_pid, spec, &request.process, child, options)
                        .map_err(|source| MonitorError::Runtime {
                            id: id.clone(),
                            source,
                        })?;
                match host.finish() {
                    Ok(host) => Ok((pid, host)),
                    Err(e) => {
                        let _ = sys::send_signal(pid, libc::SIGKILL);
                        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                        Err(e)
                    }
                }
            }
            Engine::External(external) => external.exec(request, tty),
        }
    }

    /// Removes what the runtime made on the host, after the container exited.
    pub fn cleanup(&mut self, spec: &Spec) -> Result<(), MonitorError> {
        match self {
            Engine::Builtin { id, .. } => {
                berth_runtime::cleanup(spec).map_err(|source| MonitorError::Runtime {
                    id: id.clone(),
                    source,
                })
            }
            Engine::External(external) => {
                external.cleanup();
                Ok(())
            }
        }
    }
}

/// An external OCI runtime binary driving one container.
#[derive(Debug)]
pub struct ExternalRuntime {
    binary: PathBuf,
    id: String,
    bundle: PathBuf,
    state_root: PathBuf,
    log_path: PathBuf,
    /// Where the monitor mounted the rootfs, to unmount after exit.
    mounted_rootfs: Option<PathBuf>,
    next_exec: u32,
}

impl ExternalRuntime {
    fn new(binary: &Path, config: &MonitorConfig) -> Self {
        ExternalRuntime {
            binary: binary.to_path_buf(),
            id: config.id.clone(),
            bundle: config.run_dir.clone(),
            state_root: config.run_dir.join("oci"),
            log_path: config.run_dir.join("oci.log"),
            mounted_rootfs: None,
            next_exec: 0,
        }
    }

    fn command(&self, subcommand: &'static str) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--root")
            .arg(&self.state_root)
            .arg("--log")
            .arg(&self.log_path)
            .arg("--log-format")
            .arg("json")
            .arg(subcommand)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    fn create(&mut self, config: &MonitorConfig) -> Result<(i32, HostStdio), MonitorError> {
        if let Some(overlay) = &config.rootfs {
            let target = self.bundle.join("rootfs");
            mount_overlay(overlay, &target)?;
            self.mounted_rootfs = Some(target);
        }
        let pid_file = self.bundle.join("init.pid");
        let mut command = self.command("create");
        command
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        let host = if config.tty {
            let master = self.run_with_console(command, "create")?;
            let host = HostStdio::from_pty_master(master, config.open_stdin).map_err(|source| {
                MonitorError::Stdio {
                    what: "pty master",
                    source,
                }
            })?;
            if let Some((rows, cols)) = config.console_size {
                // Best effort: a wrong size only affects layout.
                let _ = crate::stdio::resize(&host, rows, cols);
            }
            host
        } else {
            let (host, child) = HostStdio::pipes(config.open_stdin)?;
            command
                .arg(&self.id)
                .stdin(Stdio::from(child.stdin))
                .stdout(Stdio::from(child.stdout))
                .stderr(Stdio::from(child.stderr));
            self.run(command, "create")?;
            host
        };
        let pid = read_pid_file(&pid_file)?;
        Ok((pid, host))
    }

    fn start(&mut self) -> Result<(), MonitorError> {
        let mut command = self.command("start");
        command.arg(&self.id);
        self.run(command, "start")
    }

    fn kill(&self, signal: i32) -> Result<(), MonitorError> {
        let mut command = self.command("kill");
        command.arg(&self.id).arg(signal.to_string());
        self.run(command, "kill")
    }

    fn exec(&mut self, request: &ExecRequest, tty: bool) -> Result<(i32, HostStdio), MonitorError> {
        self.next_exec += 1;
        let process_file = self.bundle.join(format!("exec-{}.json", self.next_exec));
        let pid_file = self.bundle.join(format!("exec-{}.pid", self.next_exec));
        let result = self.exec_with_files(request, tty, &process_file, &pid_file);
        let _ = std::fs::remove_file(&process_file);
        let _ = std::fs::remove_file(&pid_file);
        result
    }

    fn exec_with_files(
        &mut self,
        request: &ExecRequest,
        tty: bool,
        process_file: &Path,
        pid_file: &Path,
    ) -> Result<(i32, HostStdio), MonitorError> {
        let mut process = request.process.clone();
        if let (true, Some((rows, cols))) = (tty, request.console_size) {
            // The runtime sizes the pty before the process runs; resizing the master after
            // `exec` returns would race with the process reading its size.
            let size = oci_spec::runtime::BoxBuilder::default()
                .height(u64::from(rows))
                .width(u64::from(cols))
                .build()
                .expect("a box of two numbers always builds");
            process.set_console_size(Some(size));
        }
        write_process_file(&process, process_file)?;
        let mut command = self.command("exec");
        command
            .arg("--process")
            .arg(process_file)
            .arg("--detach")
            .arg("--pid-file")
            .arg(pid_file);
        let host = if tty {
            let master = self.run_with_console(command, "exec")?;
            let host =
                HostStdio::from_pty_master(master, request.attach_stdin).map_err(|source| {
                    MonitorError::Stdio {
                        what: "pty master",
                        source,
                    }
                })?;
            if let Some((rows, cols)) = request.console_size {
                let _ = crate::stdio::resize(&host, rows, cols);
            }
            host
        } else {
            let (host, child) = HostStdio::pipes(request.attach_stdin)?;
            command
                .arg(&self.id)
                .stdin(Stdio::from(child.stdin))
                .stdout(Stdio::from(child.stdout))
                .stderr(Stdio::from(child.stderr));
            self.run(command, "exec")?;
            host
        };
        Ok((read_pid_file(pid_file)?, host))
    }

    fn cleanup(&mut self) {
        // Best effort throughout: the container is gone either way, and a leftover is better
        // than a monitor that never writes exit.json.
        let mut command = self.command("delete");
        command.arg("--force").arg(&self.id);
        let _ = command.status();
        if let Some(target) = self.mounted_rootfs.take() {
            let _ = nix::mount::umount2(&target, MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.state_root);
        let _ = std::fs::remove_file(&self.log_path);
        let _ = std::fs::remove_file(self.bundle.join("init.pid"));
        let _ = std::fs::remove_file(self.bundle.join("console.sock"));
    }

    /// Runs a subcommand to completion; a failure carries the runtime's own message.
    fn run(&self, mut command: Command, subcommand: &'static str) -> Result<(), MonitorError> {
        let _ = std::fs::remove_file(&self.log_path);
        let status = command
            .status()
            .map_err(|source| MonitorError::SpawnExternal {
                binary: self.binary.clone(),
                command: subcommand,
                source,
            })?;
        // Drop the child's stdio ends before anything waits for EOF on them.
        drop(command);
        if status.success() {
            return Ok(());
        }
        Err(self.failure(subcommand))
    }

    /// Runs a subcommand with `--console-socket` and returns the pty master it sends.
    fn run_with_console(
        &self,
        mut command: Command,
        subcommand: &'static str,
    ) -> Result<OwnedFd, MonitorError> {
        let _ = std::fs::remove_file(&self.log_path);
        let socket_path = self.bundle.join("console.sock");
        let _ = std::fs::remove_file(&socket_path);
        let bind_error = |source| MonitorError::Bind {
            path: socket_path.clone(),
            source,
        };
        // Any exec root: the runtime connects through this process's descriptor of the
        // bundle when the path is too long for a socket address (see `sockpath`).
        let name = crate::sockpath::SocketName::new(&socket_path).map_err(bind_error)?;
        let listener = UnixListener::bind(name.path()).map_err(bind_error)?;
        let result = self.receive_console(&listener, &mut command, subcommand, &name.for_others());
        let _ = std::fs::remove_file(&socket_path);
        result
    }

    fn receive_console(
        &self,
        listener: &UnixListener,
        command: &mut Command,
        subcommand: &'static str,
        socket_path: &Path,
    ) -> Result<OwnedFd, MonitorError> {
        let spawn_err = |source| MonitorError::SpawnExternal {
            binary: self.binary.clone(),
            command: subcommand,
            source,
        };
        listener.set_nonblocking(true).map_err(spawn_err)?;
        // The container id is the last argument, after every option.
        command
            .arg("--console-socket")
            .arg(socket_path)
            .arg(&self.id);
        let mut child = command.spawn().map_err(spawn_err)?;
        let mut master = None;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    master = sys::receive_fd(&stream);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if child.try_wait().map_err(spawn_err)?.is_some() {
                        break;
                    }
                    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                    let _ = nix::poll::poll(&mut fds, PollTimeout::from(20u8));
                }
                Err(e) => return Err(spawn_err(e)),
            }
        }
        let status = child.wait().map_err(spawn_err)?;
        if !status.success() {
            return Err(self.failure(subcommand));
        }
        master.ok_or_else(|| MonitorError::External {
            binary: self.binary.clone(),
            command: subcommand,
            message: "no pty master received on the console socket".to_string(),
        })
    }

    /// The error for a failed subcommand, from the runtime's log; exec failures become
    /// `RuntimeError::Exec` with Docker's wording and 126/127.
    fn failure(&self, subcommand: &'static str) -> MonitorError {
        let message = last_error_message(&self.log_path)
            .unwrap_or_else(|| "failed without a message".to_string());
        if let Some((message, exit_code)) = exec_failure_in(&message) {
            return MonitorError::Runtime {
                id: self.id.clone(),
                source: RuntimeError::Exec { message, exit_code },
            };
        }
        MonitorError::External {
            binary: self.binary.clone(),
            command: subcommand,
            message,
        }
    }
}

/// The last `error`-level message in an OCI runtime's JSON log.
fn last_error_message(log_path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log_path).ok()?;
    text.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["level"] == "error" || entry["level"] == "fatal")
        .filter_map(|entry| entry["msg"].as_str().map(str::to_string))
        .next()
}

/// Recognises "cannot execute" in a runtime's message: Docker's wording (from `exec: "…` on)
/// and 127 for not found, 126 for not executable.
fn exec_failure_in(message: &str) -> Option<(String, i32)> {
    let start = message.find("exec: \"")?;
    let wording = message[start..].trim_end().to_string();
    let code = if wording.contains("permission denied") || wording.contains("is a directory") {
        126
    } else if wording.contains("not found") || wording.contains("no such file or directory") {
        127
    } else {
        126
    };
    Some((wording, code))
}

fn mount_overlay(overlay: &berth_runtime::OverlayMount, target: &Path) -> Result<(), MonitorError> {
    std::fs::create_dir_all(target).map_err(|source| MonitorError::RunDirFile {
        op: "create",
        path: target.to_path_buf(),
        source,
    })?;
    let lower: Vec<String> = overlay
        .lowerdirs
        .iter()
        .map(|dir| dir.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        overlay.upperdir.display(),
        overlay.workdir.display()
    );
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|source| MonitorError::Mount {
        op: "mount",
        path: target.to_path_buf(),
        source,
    })
}

fn write_process_file(process: &Process, path: &Path) -> Result<(), MonitorError> {
    let file = File::create(path).map_err(|source| MonitorError::RunDirFile {
        op: "create",
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::to_writer(file, process).map_err(|source| MonitorError::RunDirFile {
        op: "write",
        path: path.to_path_buf(),
        source: source.into(),
    })
}

fn read_pid_file(path: &Path) -> Result<i32, MonitorError> {
    let text = std::fs::read_to_string(path).map_err(|source| MonitorError::RunDirFile {
        op: "read",
        path: path.to_path_buf(),
        source,
    })?;
    text.trim().parse().map_err(|_| MonitorError::RunDirFile {
        op: "parse",
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a pid"),
    })
}

/// Runtime settings for a container whose run dir is `<exec_root>/containers/<id>`: compiled
/// seccomp filters are cached in `<exec_root>/seccomp`, so each daemon keeps its own; the
/// container's processes die with the monitor.
fn runtime_options(run_dir: &std::path::Path) -> berth_runtime::RuntimeOptions {
    let exec_root = run_dir.parent().and_then(std::path::Path::parent);
    berth_runtime::RuntimeOptions {
        seccomp_cache: exec_root.map(|root| root.join("seccomp")),
        // The monitor is the container's parent: if it dies (kill -9), the container goes
        // with it rather than running on unobserved.
        die_with_parent: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_messages_map_to_docker_exec_failures() {
        let not_found = "runc create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH";
        assert_eq!(
            exec_failure_in(not_found),
            Some((
                "exec: \"nosuch\": executable file not found in $PATH".to_string(),
                127
            ))
        );
        let denied = "unable to start container process: exec: \"/etc/passwd\": permission denied";
        assert_eq!(exec_failure_in(denied).map(|f| f.1), Some(126));
        assert_eq!(exec_failure_in("cgroup: no such file or directory"), None);
    }

    #[test]
    fn last_error_comes_from_the_json_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("oci.log");
        std::fs::write(
            &log,
            "{\"level\":\"info\",\"msg\":\"hello\"}\nnot json\n{\"level\":\"error\",\"msg\":\"first\"}\n{\"level\":\"error\",\"msg\":\"boom\"}\n",
        )
        .expect("write");
        assert_eq!(last_error_message(&log).as_deref(), Some("boom"));
        assert_eq!(last_error_message(&dir.path().join("missing")), None);
    }

    #[test]
    fn pid_files_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("init.pid");
        std::fs::write(&file, "4242").expect("write");
        assert_eq!(read_pid_file(&file).expect("pid"), 4242);
        std::fs::write(&file, "x").expect("write");
        assert!(read_pid_file(&file).is_err());
    }
}
