//! `berth oci …`: runc's command-line contract, so containerd, podman or the OCI runtime
//! validation suite can drive berth as their runtime.
//!
//! State lives under the root directory (default `/run/berth/oci`):
//!
//! ```text
//! <root>/<id>/state.json   id, init pid and start time, bundle, annotations
//! <root>/<id>/exec.fifo    exists while the container is "created": the init blocks
//!                          opening it for writing; `start` opens it for reading, reads
//!                          one byte and removes it
//! ```
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

use crate::ProcessIo as InitIo;
use crate::init::{InitPlan, StartGate, spawn};
use crate::{InitStdio, RuntimeError, cleanup, parse_signal};

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
}

/// The OCI state (`state` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciState {
    oci_version: String,
    id: String,
    status: String,
    pid: i32,
    bundle: PathBuf,
    annotations: HashMap<String, String>,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Create {
        id: String,
        bundle: PathBuf,
        pid_file: Option<PathBuf>,
        console_socket: Option<PathBuf>,
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
    },
    Delete {
        id: String,
        force: bool,
    },
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
        .ok_or("usage: berth oci [--root DIR] <create|start|state|kill|delete> ...")?;
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
            Command::Create {
                id: one_id(&positional)?,
                bundle,
                pid_file: flags.get("pid-file").map(PathBuf::from),
                console_socket: flags.get("console-socket").map(PathBuf::from),
            }
        }
        "start" => Command::Start {
            id: one_id(&split_flags(rest, &[])?.1)?,
        },
        "state" => Command::State {
            id: one_id(&split_flags(rest, &[])?.1)?,
        },
        "kill" => {
            let (_, positional) = split_flags(rest, &[])?;
            let signal = match positional.get(1) {
                Some(name) => {
                    parse_signal(name).ok_or_else(|| format!("unknown signal {name:?}"))?
                }
                None => libc::SIGTERM,
            };
            Command::Kill {
                id: one_id(&positional)?,
                signal,
            }
        }
        "delete" => {
            let (flags, positional) = split_flags(rest, &[])?;
            Command::Delete {
                id: one_id(&positional)?,
                force: flags.contains_key("force") || flags.contains_key("f"),
            }
        }
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

fn create(
    root: &Path,
    id: &str,
    bundle: &Path,
    pid_file: Option<&Path>,
    console_socket: Option<&Path>,
) -> Result<(), RuntimeError> {
    let bundle = std::fs::canonicalize(bundle)
        .map_err(|e| RuntimeError::host("resolve bundle", bundle, e))?;
    let spec = load_spec(&bundle)?;
    let plan = InitPlan::new(&spec, &bundle, None, Some(&root.join(".seccomp-cache")))?;
    let dir = state_dir(root, id)?;
    std::fs::create_dir_all(root).map_err(|e| RuntimeError::host("create state root", root, e))?;
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::ContainerExists { id: id.to_owned() });
        }
        Err(err) => return Err(RuntimeError::host("create state dir", dir, err)),
    }
    let result = (|| {
        let fifo = dir.join("exec.fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
            .map_err(|e| RuntimeError::nix("mkfifo", &fifo, e))?;
        // mkfifo applied the umask; the init may run as any user and must open it for writing.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &fifo,
            Mode::from_bits_truncate(0o622),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| RuntimeError::nix("chmod", &fifo, e))?;
        let fifo_handle = nix::fcntl::open(&fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| RuntimeError::nix("open", &fifo, e))?;
        let io = match console_socket {
            Some(socket) => {
                let stream = std::os::unix::net::UnixStream::connect(socket)
                    .map_err(|e| RuntimeError::host("connect console socket", socket, e))?;
                InitIo::Console {
                    socket: OwnedFd::from(stream),
                    size: console_size(&spec),
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
        };
        let pending = spawn(plan, io, StartGate::Fifo(fifo_handle))?;
        let pid = pending.pid();
        let state = StoredState {
            id: id.to_owned(),
            pid,
            start_time: start_time(pid).unwrap_or(0),
            bundle: bundle.clone(),
            annotations: spec.annotations().clone().unwrap_or_default(),
        };
        let json = serde_json::to_vec(&state).map_err(|source| RuntimeError::Json {
            path: dir.join("state.json"),
            source,
        })?;
        write_atomically(&dir.join("state.json"), &json)?;
        if let Some(pid_file) = pid_file {
            write_atomically(pid_file, pid.to_string().as_bytes())?;
        }
        // The init now waits on the fifo, not on the control pipe, so dropping it is fine.
        drop(pending);
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
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
    loop {
        let mut fds = [nix::poll::PollFd::new(
            reader.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::Error::EINTR) => {
                if start_time(state.pid) != Some(state.start_time) {
                    return Err(RuntimeError::InitDied { pid: state.pid });
                }
            }
            Ok(_) => {
                let mut byte = [0u8];
                match nix::unistd::read(&reader, &mut byte) {
                    Ok(1) => break,
                    Ok(_) | Err(nix::Error::EAGAIN) => {
                        if start_time(state.pid) != Some(state.start_time) {
                            return Err(RuntimeError::InitDied { pid: state.pid });
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(RuntimeError::nix("read", &fifo, e)),
                }
            }
            Err(e) => return Err(RuntimeError::nix("poll", &fifo, e)),
        }
    }
    std::fs::remove_file(&fifo).map_err(|e| RuntimeError::host("remove", &fifo, e))
}

fn state_json(root: &Path, id: &str) -> Result<String, RuntimeError> {
    let (dir, state) = load(root, id)?;
    let status = status(&dir, &state);
    let oci = OciState {
        oci_version: "1.2.0".to_owned(),
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

fn kill(root: &Path, id: &str, signal: i32) -> Result<(), RuntimeError> {
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
    if let Ok(spec) = load_spec(&state.bundle) {
        cleanup(&spec)?;
    }
    std::fs::remove_dir_all(&dir).map_err(|e| RuntimeError::host("remove state", dir, e))
}

/// `berth oci <create|start|state|kill|delete> …`, runc's command-line contract; returns the
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
        } => create(
            root,
            id,
            bundle,
            pid_file.as_deref(),
            console_socket.as_deref(),
        ),
        Command::Start { id } => start(root, id),
        Command::State { id } => state_json(root, id).map(|json| println!("{json}")),
        Command::Kill { id, signal } => kill(root, id, *signal),
        Command::Delete { id, force } => delete(root, id, *force),
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
                console_socket: Some("/s".into())
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
                signal: libc::SIGTERM
            }
        );
        assert_eq!(
            parse_args(&args("kill c KILL")).expect("parse").command,
            Command::Kill {
                id: "c".into(),
                signal: libc::SIGKILL
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
            kill(root.path(), "dead", libc::SIGTERM),
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
