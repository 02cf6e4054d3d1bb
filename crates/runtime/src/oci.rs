//! `berth oci …`: runc's command-line contract, so containerd, podman or the OCI runtime
//! validation suite can drive berth as their runtime.
//!
//! State lives under the root directory (default `/run/berth/oci`):
//!
//! ```text
//! <root>/<id>/state.json   id, init pid and start time, bundle, annotations, and what
//!                          `start` and `delete` need from the spec as it was at `create`
//!                          (the runtime spec: later edits of config.json do not count):
//!                          the poststart and poststop hooks, the cgroup path, and the
//!                          rootfs of a container without a mount namespace (whose mounts
//!                          `delete` removes from the host)
//! <root>/<id>/exec.fifo    exists while the container is "created": the init blocks
//!                          opening it for writing; `start` opens it for reading, reads
//!                          `0` (or `E` and why the startContainer hooks failed) and
//!                          removes it
//! ```
//!
//! `berth oci features` prints what berth implements ([`crate::features`]).
//!
//! `create` returns once the init is set up; the init outlives it (it is re-parented) with
//! the caller's stdio, or a pty whose master went to `--console-socket`. Must be called from
//! a single-threaded process.
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use oci_spec::runtime::Hooks;

use crate::ProcessIo as InitIo;
use crate::hooks::{HookKind, HookPlans};
use crate::init::{InitPlan, StartGate, spawn};
use crate::state::{ContainerState, Identity, OCI_VERSION};
use crate::{InitStdio, RuntimeError, parse_signal};

/// Default state root.
const DEFAULT_ROOT: &str = "/run/berth/oci";

/// What `create` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredState {
    id: String,
    pid: i32,
    /// Field 22 of /proc/<pid>/stat, to tell our init from a later process with its pid.
    start_time: u64,
    bundle: PathBuf,
    #[serde(default)]
    annotations: HashMap<String, String>,
    /// The poststart and poststop hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hooks: Option<Hooks>,
    /// `linux.cgroupsPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cgroups_path: Option<String>,
    /// The rootfs, when the container shares the host's mount namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shared_mount_rootfs: Option<PathBuf>,
}

impl StoredState {
    fn identity(&self) -> Identity {
        Identity {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// The stored hooks, checked again (a hook removed meanwhile fails when run).
    fn hook_plans(&self) -> HookPlans {
        let mut hooks = Hooks::default();
        if let Some(stored) = &self.hooks {
            hooks.set_poststart(stored.poststart().clone());
            hooks.set_poststop(stored.poststop().clone());
        }
        // A hook whose file went away since `create` fails when run, as a warning.
        HookPlans::from_hooks(&hooks).unwrap_or_default()
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Create {
        id: String,
        bundle: PathBuf,
        pid_file: Option<PathBuf>,
        console_socket: Option<PathBuf>,
        /// `--preserve-fds N`: descriptors 3 to 3 + N − 1 are passed to the program.
        preserve_fds: u32,
    },
    Start {
        id: String,
    },
    State {
        id: String,
    },
    Kill {
        id: String,
        signal: i32,
        /// `--all`: every process of the container's cgroup.
        all: bool,
    },
    Delete {
        id: String,
        force: bool,
    },
    Features,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Invocation {
    root: PathBuf,
    command: Command,
}

/// Splits `--flag value` / `--flag=value`; returns (flags, positional).
fn split_flags(
    args: &[String],
    with_value: &[&str],
) -> Result<(HashMap<String, String>, Vec<String>), String> {
    let mut flags = HashMap::new();
    let mut positional = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(name) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-').filter(|n| !n.is_empty()))
        else {
            positional.push(arg.clone());
            continue;
        };
        if let Some((name, value)) = name.split_once('=') {
            flags.insert(name.to_owned(), value.to_owned());
        } else if with_value.contains(&name) {
            let value = iter
                .next()
                .ok_or_else(|| format!("flag --{name} needs a value"))?;
            flags.insert(name.to_owned(), value.clone());
        } else {
            flags.insert(name.to_owned(), String::new());
        }
    }
    Ok((flags, positional))
}

fn parse_args(args: &[String]) -> Result<Invocation, String> {
    let mut root = PathBuf::from(DEFAULT_ROOT);
    let mut rest = args;
    // Global flags (containerd passes --root, --log, --log-format, --systemd-cgroup).
    while let Some(arg) = rest.first() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let takes_value = matches!(name, "--root" | "--log" | "--log-format" | "--criu");
        if !name.starts_with('-') {
            break;
        }
        let value = match (takes_value, inline) {
            (true, Some(value)) => {
                rest = &rest[1..];
                value
            }
            (true, None) => {
                let value = rest
                    .get(1)
                    .ok_or_else(|| format!("flag {name} needs a value"))?
                    .clone();
                rest = &rest[2..];
                value
            }
            (false, _) => {
                rest = &rest[1..];
                String::new()
            }
        };
        if name == "--root" {
            root = PathBuf::from(value);
        }
    }
    let (command, rest) = rest
        .split_first()
        .ok_or("usage: berth oci [--root DIR] <create|start|state|kill|delete|features> ...")?;
    let one_id = |positional: &[String]| -> Result<String, String> {
        positional
            .first()
            .cloned()
            .ok_or_else(|| format!("{command}: container id required"))
    };
    let command = match command.as_str() {
        "create" => {
            let (flags, positional) = split_flags(
                rest,
                &["bundle", "b", "pid-file", "console-socket", "preserve-fds"],
            )?;
            let bundle = flags
                .get("bundle")
                .or_else(|| flags.get("b"))
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            let preserve_fds = match flags.get("preserve-fds") {
                Some(n) => n
                    .parse()
                    .map_err(|_| format!("--preserve-fds {n:?} is not a number"))?,
                None => 0,
            };
            Command::Create {
                id: one_id(&positional)?,
                bundle,
                pid_file: flags.get("pid-file").map(PathBuf::from),
                console_socket: flags.get("console-socket").map(PathBuf::from),
                preserve_fds,
            }
        }
        "start" => Command::Start {
            id: one_id(&split_flags(rest, &[])?.1)?,
        },
        "state" => Command::State {
            id: one_id(&split_flags(rest, &[])?.1)?,
        },
        "kill" => {
            let (flags, positional) = split_flags(rest, &[])?;
            let signal = match positional.get(1) {
                Some(name) => {
                    parse_signal(name).ok_or_else(|| format!("unknown signal {name:?}"))?
                }
                None => libc::SIGTERM,
            };
            Command::Kill {
                id: one_id(&positional)?,
                signal,
                all: flags.contains_key("all") || flags.contains_key("a"),
            }
        }
        "delete" => {
            let (flags, positional) = split_flags(rest, &[])?;
            Command::Delete {
                id: one_id(&positional)?,
                force: flags.contains_key("force") || flags.contains_key("f"),
            }
        }
        "features" => Command::Features,
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(Invocation { root, command })
}

/// Start time of `pid` (field 22 of /proc/<pid>/stat), or `None` when it is gone or a zombie.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn state_dir(root: &Path, id: &str) -> Result<PathBuf, RuntimeError> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(RuntimeError::InvalidSpec {
            field: "id",
            reason: format!("invalid container id {id:?}"),
        });
    }
    Ok(root.join(id))
}

fn load(root: &Path, id: &str) -> Result<(PathBuf, StoredState), RuntimeError> {
    let dir = state_dir(root, id)?;
    let path = dir.join("state.json");
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(RuntimeError::ContainerNotFound { id: id.to_owned() });
        }
        Err(err) => return Err(RuntimeError::host("read state", path, err)),
    };
    let state =
        serde_json::from_slice(&text).map_err(|source| RuntimeError::Json { path, source })?;
    Ok((dir, state))
}

fn status(dir: &Path, state: &StoredState) -> &'static str {
    if start_time(state.pid) != Some(state.start_time) {
        "stopped"
    } else if dir.join("exec.fifo").exists() {
        "created"
    } else {
        "running"
    }
}

/// Replaces a state file ([`berth_fs::write_atomic`]; not fsynced: the state describes
/// processes, which do not survive a crash of the machine either).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    berth_fs::write_atomic(path, bytes, berth_fs::Durability::Volatile)
        .map_err(|e| RuntimeError::host(e.op, e.path, e.source))
}

fn load_spec(bundle: &Path) -> Result<Spec, RuntimeError> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| RuntimeError::host("read", &path, e))?;
    serde_json::from_slice(&text).map_err(|source| RuntimeError::Json { path, source })
}

/// `process.consoleSize` of a spec, as (rows, columns).
fn console_size(spec: &Spec) -> Option<(u16, u16)> {
    let size = spec.process().as_ref()?.console_size()?;
    Some((
        u16::try_from(size.height()).ok()?,
        u16::try_from(size.width()).ok()?,
    ))
}

/// Where `create` writes its results and what it passes on.
#[derive(Debug, Clone, Copy)]
struct CreateOptions<'a> {
    pid_file: Option<&'a Path>,
    console_socket: Option<&'a Path>,
    preserve_fds: u32,
}

fn create(
    root: &Path,
    id: &str,
    bundle: &Path,
    options: CreateOptions<'_>,
) -> Result<(), RuntimeError> {
    let CreateOptions {
        pid_file,
        console_socket,
        preserve_fds,
    } = options;
    let bundle = std::fs::canonicalize(bundle)
        .map_err(|e| RuntimeError::host("resolve bundle", bundle, e))?;
    let mut spec = load_spec(&bundle)?;
    // Like runc, a container without `linux.cgroupsPath` gets the cgroup `/<id>`: its
    // resources apply, and `kill --all` and `delete` find its processes.
    if let Some(linux) = spec.linux_mut()
        && linux.cgroups_path().is_none()
    {
        linux.set_cgroups_path(Some(PathBuf::from(format!("/{id}"))));
    }
    state_dir(root, id)?;
    let mut plan = InitPlan::new(&spec, &bundle, None, Some(&root.join(".seccomp-cache")))?;
    plan.identity.id = id.to_owned();
    plan.process.preserved_fds = preserve_fds;
    let dir = state_dir(root, id)?;
    std::fs::create_dir_all(root).map_err(|e| RuntimeError::host("create state root", root, e))?;
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::ContainerExists { id: id.to_owned() });
        }
        Err(err) => return Err(RuntimeError::host("create state dir", dir, err)),
    }
    let shared_mount_rootfs =
        (!plan.rootfs.own_mount_namespace).then(|| plan.rootfs.rootfs.clone());
    let mut state = StoredState {
        id: id.to_owned(),
        pid: 0,
        start_time: 0,
        bundle: bundle.clone(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        hooks: spec.hooks().clone(),
        cgroups_path: plan.cgroup.as_ref().map(|c| c.path.clone()),
        shared_mount_rootfs: shared_mount_rootfs.clone(),
    };
    let result = (|| {
        let fifo_handle = make_exec_fifo(&dir.join("exec.fifo"))?;
        let io = init_io(console_socket, console_size(&spec))?;
        let pending = spawn(plan, io, StartGate::Fifo(fifo_handle))?;
        let pid = pending.pid();
        state.pid = pid;
        state.start_time = start_time(pid).unwrap_or(0);
        let json = serde_json::to_vec(&state).map_err(|source| RuntimeError::Json {
            path: dir.join("state.json"),
            source,
        })?;
        let written =
            write_atomically(&dir.join("state.json"), &json).and_then(|()| match pid_file {
                Some(pid_file) => write_atomically(pid_file, pid.to_string().as_bytes()),
                None => Ok(()),
            });
        if let Err(err) = written {
            // Nothing may stay behind: not the init, nor its cgroup.
            drop(pending);
            crate::init::kill_and_reap(pid);
            return Err(err);
        }
        // The init now waits on the fifo, not on the control pipe, so dropping it is fine.
        drop(pending);
        Ok(())
    })();
    if let Err(err) = result {
        if let Some(rootfs) = &shared_mount_rootfs {
            crate::rootfs::unmount_below(rootfs);
        }
        if let Some(path) = &state.cgroups_path {
            let _ = berth_cgroups::Cgroup::new(crate::cgroup_root(), path).destroy();
        }
        let _ = std::fs::remove_dir_all(&dir);
        return Err(err);
    }
    Ok(())
}

/// Makes `<state dir>/exec.fifo` (writable by any user the init may run as); returns an
/// `O_PATH` handle the init reopens after pivot_root.
fn make_exec_fifo(fifo: &Path) -> Result<OwnedFd, RuntimeError> {
    nix::unistd::mkfifo(fifo, Mode::from_bits_truncate(0o622))
        .map_err(|e| RuntimeError::nix("mkfifo", fifo, e))?;
    // mkfifo applied the umask; the init may run as any user and must open it for writing.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        fifo,
        Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| RuntimeError::nix("chmod", fifo, e))?;
    nix::fcntl::open(fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| RuntimeError::nix("open", fifo, e))
}

/// The init's streams: ours (runc's pass-through), or a pty for `--console-socket` (of
/// `size`, the spec's `process.consoleSize`, when it gives one).
fn init_io(
    console_socket: Option<&Path>,
    size: Option<(u16, u16)>,
) -> Result<InitIo, RuntimeError> {
    Ok(match console_socket {
        Some(socket) => {
            let stream = std::os::unix::net::UnixStream::connect(socket)
                .map_err(|e| RuntimeError::host("connect console socket", socket, e))?;
            InitIo::Console {
                socket: OwnedFd::from(stream),
                size,
            }
        }
        None => {
            let dup = |fd: std::os::fd::BorrowedFd<'_>| {
                fd.try_clone_to_owned()
                    .map_err(|e| RuntimeError::host("dup stdio", "", e))
            };
            InitIo::Stdio(InitStdio {
                stdin: dup(std::io::stdin().as_fd())?,
                stdout: dup(std::io::stdout().as_fd())?,
                stderr: dup(std::io::stderr().as_fd())?,
                console: false,
            })
        }
    })
}

/// What `start` reads from the exec fifo: `0`, or `E` and why the init could not start.
fn read_start_answer(
    reader: &OwnedFd,
    fifo: &Path,
) -> Result<Option<Result<(), String>>, RuntimeError> {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match nix::unistd::read(reader, &mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&chunk[..n]);
                if answer == b"0" {
                    break;
                }
            }
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) if answer.is_empty() => return Ok(None),
            // `E…` is written at once, in one write.
            Err(nix::Error::EAGAIN) => break,
            Err(e) => return Err(RuntimeError::nix("read", fifo, e)),
        }
    }
    Ok(match answer.split_first() {
        None => None,
        Some((b'0', _)) => Some(Ok(())),
        Some((_, reason)) => Some(Err(String::from_utf8_lossy(reason).into_owned())),
    })
}

fn start(root: &Path, id: &str) -> Result<(), RuntimeError> {
    let (dir, state) = load(root, id)?;
    let status = status(&dir, &state);
    if status != "created" {
        return Err(RuntimeError::WrongState {
            id: id.to_owned(),
            op: "start",
            status,
        });
    }
    let fifo = dir.join("exec.fifo");
    // Non-blocking open: a dead init would otherwise leave us waiting for a writer forever.
    let reader = nix::fcntl::open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::nix("open", &fifo, e))?;
    let answer = loop {
        let mut fds = [nix::poll::PollFd::new(
            reader.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::Error::EINTR) => {}
            Ok(_) => {
                if let Some(answer) = read_start_answer(&reader, &fifo)? {
                    break answer;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(RuntimeError::nix("poll", &fifo, e)),
        }
        if start_time(state.pid) != Some(state.start_time) {
            return Err(RuntimeError::InitDied { pid: state.pid });
        }
    };
    std::fs::remove_file(&fifo).map_err(|e| RuntimeError::host("remove", &fifo, e))?;
    if let Err(reason) = answer {
        return Err(RuntimeError::StartFailed {
            id: id.to_owned(),
            reason,
        });
    }
    let hooks = state.hook_plans();
    if !hooks.poststart.is_empty() {
        let json = state.identity().state_json("running", state.pid);
        if let Err(failure) = crate::hooks::run_all(HookKind::Poststart, &hooks.poststart, &json) {
            // The runtime spec: a failing poststart hook is a warning.
            eprintln!("berth oci: warning: {}", failure.into_error());
        }
    }
    Ok(())
}

fn state_json(root: &Path, id: &str) -> Result<String, RuntimeError> {
    let (dir, state) = load(root, id)?;
    let status = status(&dir, &state);
    let oci = ContainerState {
        oci_version: OCI_VERSION.to_owned(),
        id: state.id,
        status: status.to_owned(),
        pid: if status == "stopped" { 0 } else { state.pid },
        bundle: state.bundle,
        annotations: state.annotations,
    };
    serde_json::to_string_pretty(&oci).map_err(|source| RuntimeError::Json {
        path: dir.join("state.json"),
        source,
    })
}

fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
    let (dir, state) = load(root, id)?;
    let status = status(&dir, &state);
    if status == "stopped" {
        return Err(RuntimeError::WrongState {
            id: id.to_owned(),
            op: "kill",
            status,
        });
    }
    let signal = nix::sys::signal::Signal::try_from(signal)
        .map_err(|e| RuntimeError::nix("parse signal", "", e))?;
    if all && let Some(path) = &state.cgroups_path {
        let cgroup = berth_cgroups::Cgroup::new(crate::cgroup_root(), path);
        let pids = cgroup.pids().map_err(|source| RuntimeError::Cgroup {
            path: path.clone(),
            source,
        })?;
        for pid in pids {
            // A process that exited meanwhile is fine.
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
        return Ok(());
    }
    nix::sys::signal::kill(Pid::from_raw(state.pid), signal)
        .map_err(|e| RuntimeError::nix("kill", "", e))
}

fn delete(root: &Path, id: &str, force: bool) -> Result<(), RuntimeError> {
    let (dir, state) = load(root, id)?;
    let status = status(&dir, &state);
    // Like runc: a created container is killed by delete; a running one needs --force.
    if status == "running" && !force {
        return Err(RuntimeError::WrongState {
            id: id.to_owned(),
            op: "delete",
            status,
        });
    }
    if status != "stopped" {
        let _ = nix::sys::signal::kill(Pid::from_raw(state.pid), nix::sys::signal::Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while start_time(state.pid) == Some(state.start_time) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if let Some(rootfs) = &state.shared_mount_rootfs {
        crate::rootfs::unmount_below(rootfs);
    }
    let cgroups_path = match &state.cgroups_path {
        Some(path) => Some(path.clone()),
        // A state written before berth kept the path: the bundle's spec has it.
        None => load_spec(&state.bundle).ok().and_then(|spec| {
            spec.linux()
                .as_ref()
                .and_then(|l| l.cgroups_path().clone())
                .map(|p| p.to_string_lossy().into_owned())
        }),
    };
    if let Some(path) = &cgroups_path {
        berth_cgroups::Cgroup::new(crate::cgroup_root(), path)
            .destroy()
            .map_err(|source| RuntimeError::Cgroup {
                path: path.clone(),
                source,
            })?;
    }
    std::fs::remove_dir_all(&dir).map_err(|e| RuntimeError::host("remove state", &dir, e))?;
    let hooks = state.hook_plans();
    if !hooks.poststop.is_empty() {
        let json = state.identity().state_json("stopped", 0);
        if let Err(failure) = crate::hooks::run_all(HookKind::Poststop, &hooks.poststop, &json) {
            // The runtime spec: a failing poststop hook is a warning.
            eprintln!("berth oci: warning: {}", failure.into_error());
        }
    }
    Ok(())
}

fn print_features() -> Result<(), RuntimeError> {
    let features = crate::features::features()?;
    let json = serde_json::to_string_pretty(&features).map_err(|source| RuntimeError::Json {
        path: PathBuf::from("<features>"),
        source,
    })?;
    println!("{json}");
    Ok(())
}

/// `berth oci <create|start|state|kill|delete|features> …`, runc's command-line contract; returns the
/// process exit code.
pub fn oci_main(args: &[String]) -> i32 {
    let invocation = match parse_args(args) {
        Ok(invocation) => invocation,
        Err(message) => {
            eprintln!("berth oci: {message}");
            return 2;
        }
    };
    if matches!(invocation.command, Command::Create { .. }) {
        // The init runs berth until it execs the container's program: never the host's file.
        let error = crate::exe::reexec_sealed();
        if error.raw_os_error() != Some(libc::EALREADY) {
            eprintln!("berth oci: cannot run from a sealed copy of the executable: {error}");
            return 1;
        }
        crate::exe::harden_process();
    }
    let root = invocation.root.as_path();
    let result = match &invocation.command {
        Command::Create {
            id,
            bundle,
            pid_file,
            console_socket,
            preserve_fds,
        } => {
            // The init is a clone of this process: it must hold nothing of the caller's but
            // stdio and the preserved descriptors (a caller's lock file, a pipe it waits on…),
            // not even while it waits to be started.
            crate::sys::close_from(3 + preserve_fds);
            let options = CreateOptions {
                pid_file: pid_file.as_deref(),
                console_socket: console_socket.as_deref(),
                preserve_fds: *preserve_fds,
            };
            create(root, id, bundle, options)
        }
        Command::Start { id } => start(root, id),
        Command::State { id } => state_json(root, id).map(|json| println!("{json}")),
        Command::Kill { id, signal, all } => kill(root, id, *signal, *all),
        Command::Delete { id, force } => delete(root, id, *force),
        Command::Features => print_features(),
    };
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("berth oci: {err}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn create_flags_parse_like_runc() {
        let parsed = parse_args(&args(
            "--root /tmp/r --log /dev/null create --bundle /b --pid-file=/p --console-socket /s c1",
        ))
        .expect("parse");
        assert_eq!(parsed.root, Path::new("/tmp/r"));
        assert_eq!(
            parsed.command,
            Command::Create {
                id: "c1".into(),
                bundle: "/b".into(),
                pid_file: Some("/p".into()),
                console_socket: Some("/s".into()),
                preserve_fds: 0
            }
        );
        let parsed = parse_args(&args("create c2")).expect("parse");
        assert_eq!(parsed.root, Path::new(DEFAULT_ROOT));
        assert!(
            matches!(parsed.command, Command::Create { ref bundle, .. } if bundle == Path::new("."))
        );
    }

    #[test]
    fn kill_defaults_to_term_and_parses_names() {
        assert_eq!(
            parse_args(&args("kill c")).expect("parse").command,
            Command::Kill {
                id: "c".into(),
                signal: libc::SIGTERM,
                all: false
            }
        );
        assert_eq!(
            parse_args(&args("kill c KILL")).expect("parse").command,
            Command::Kill {
                id: "c".into(),
                signal: libc::SIGKILL,
                all: false
            }
        );
        assert!(parse_args(&args("kill c NOPE")).is_err());
        assert_eq!(
            parse_args(&args("delete -f c")).expect("parse").command,
            Command::Delete {
                id: "c".into(),
                force: true
            }
        );
        assert!(parse_args(&args("state")).is_err());
        assert!(parse_args(&args("frobnicate x")).is_err());
    }

    #[test]
    fn state_of_unknown_and_dead_containers() {
        let root = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            state_json(root.path(), "nope"),
            Err(RuntimeError::ContainerNotFound { .. })
        ));
        let dir = root.path().join("dead");
        std::fs::create_dir(&dir).expect("mkdir");
        let state = StoredState {
            id: "dead".into(),
            pid: i32::MAX,
            start_time: 1,
            bundle: "/b".into(),
            annotations: HashMap::new(),
            hooks: None,
            cgroups_path: None,
            shared_mount_rootfs: None,
        };
        std::fs::write(
            dir.join("state.json"),
            serde_json::to_vec(&state).expect("json"),
        )
        .expect("write");
        let json: serde_json::Value =
            serde_json::from_str(&state_json(root.path(), "dead").expect("state")).expect("parse");
        assert_eq!(json["status"], "stopped");
        assert_eq!(json["ociVersion"], "1.2.0");
        assert!(matches!(
            kill(root.path(), "dead", libc::SIGTERM, false),
            Err(RuntimeError::WrongState { .. })
        ));
        delete(root.path(), "dead", false).expect("delete stopped");
        assert!(!dir.exists());
    }

    #[test]
    fn own_process_is_alive_by_start_time() {
        let pid = std::process::id() as i32;
        assert!(start_time(pid).is_some());
        assert!(state_dir(Path::new("/r"), "../x").is_err());
    }
}
