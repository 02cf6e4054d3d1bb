//! The daemon side of the monitor protocol (`berth_monitor::protocol`), over tokio: the real
//! [`Monitor`].
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use berth_monitor::protocol::{self, Ready, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::ContainerError;
use crate::monitor::{BoxFuture, Conversation, Monitor};

/// Monitors as processes: `berth monitor <run_dir>` run from a sealed copy of berth, spoken
/// to over their unix sockets.
#[derive(Debug)]
pub struct MonitorClient {
    /// The `berth` executable (for error messages).
    exe: PathBuf,
    /// `exe` as a descriptor no one can write through; monitors run from it.
    sealed: OwnedFd,
    /// Monitors whose protocol this berth cannot speak, by socket: nothing is sent to them.
    refused: Mutex<HashMap<PathBuf, Refused>>,
}

impl MonitorClient {
    /// Seals `exe` (see [`berth_runtime::sealed_executable`]) for the monitors to run from.
    pub fn new(exe: &Path) -> Result<Self, ContainerError> {
        let sealed =
            berth_runtime::sealed_executable(exe).map_err(|source| ContainerError::Io {
                op: "seal for monitors",
                path: exe.to_path_buf(),
                source,
            })?;
        Ok(Self {
            exe: exe.to_path_buf(),
            sealed,
            refused: Mutex::new(HashMap::new()),
        })
    }
}

impl Monitor for MonitorClient {
    fn spawn<'a>(&'a self, run_dir: &'a Path) -> BoxFuture<'a, Result<Ready, ContainerError>> {
        Box::pin(spawn(&self.exe, &self.sealed, run_dir))
    }

    fn call<'a>(
        &'a self,
        socket: &'a Path,
        req: &'a Request,
    ) -> BoxFuture<'a, Result<(Response, Conversation), ContainerError>> {
        Box::pin(async move {
            match self.refusal(socket) {
                Some(refused) => Err(refused),
                None => call(socket, req).await,
            }
        })
    }

    fn refusal(&self, socket: &Path) -> Option<ContainerError> {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        refused.get(socket).map(Refused::error)
    }

    fn hello<'a>(&'a self, socket: &'a Path) -> BoxFuture<'a, Result<u32, ContainerError>> {
        Box::pin(async move {
            if let Some(refused) = self.refusal(socket) {
                return Err(refused);
            }
            let hello = Request::Hello {
                version: protocol::PROTOCOL_VERSION,
            };
            let mut conv = send(socket, &hello).await?;
            let mut answer = String::new();
            conv.reader
                .read_line(&mut answer)
                .await
                .map_err(monitor_gone)?;
            if answer.is_empty() {
                return Err(monitor_gone(std::io::ErrorKind::UnexpectedEof.into()));
            }
            protocol::monitor_version(&answer).map_err(|speaks| {
                let refused = Refused::of(socket, speaks);
                let error = refused.error();
                let mut map = self.refused.lock().unwrap_or_else(|p| p.into_inner());
                map.insert(socket.to_path_buf(), refused);
                error
            })
        })
    }

    fn begin_wait<'a>(
        &'a self,
        socket: &'a Path,
    ) -> BoxFuture<'a, Result<Conversation, ContainerError>> {
        Box::pin(async move {
            match self.refusal(socket) {
                Some(refused) => Err(refused),
                None => begin_wait(socket).await,
            }
        })
    }

    fn end_refused(&self, socket: &Path) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.remove(socket).is_none() {
            return false;
        }
        drop(refused);
        let Some(pid) = socket.parent().and_then(monitor_pid) else {
            return false;
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .is_ok()
    }
}

/// The pid of the monitor of `run_dir` (`monitor.pid`), if that process is still it: its
/// command line is `berth monitor <run_dir>` (not a process that took a recycled pid).
pub fn monitor_pid(run_dir: &Path) -> Option<i32> {
    use std::os::unix::ffi::OsStrExt;
    let pid = std::fs::read_to_string(run_dir.join(protocol::PID_FILE))
        .ok()?
        .trim()
        .parse::<i32>()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let named = args.get(1) == Some(&&b"monitor"[..])
        && args
            .get(2)
            .is_some_and(|dir| Path::new(std::ffi::OsStr::from_bytes(dir)) == run_dir);
    named.then_some(pid)
}

/// A monitor whose protocol this berth cannot speak.
#[derive(Debug)]
struct Refused {
    /// The container (12 hex).
    id: String,
    /// The monitor's pid (`?` when unknown).
    pid: String,
    /// What it speaks.
    speaks: protocol::VersionError,
}

impl Refused {
    /// The container's id and the monitor's pid come from its run dir
    /// (`<run_root>/containers/<id>/monitor.sock`, `monitor.pid`).
    fn of(socket: &Path, speaks: protocol::VersionError) -> Refused {
        let run_dir = socket.parent().unwrap_or(socket);
        let id = run_dir
            .file_name()
            .map(|n| n.to_string_lossy().chars().take(12).collect())
            .unwrap_or_default();
        let pid = std::fs::read_to_string(run_dir.join(protocol::PID_FILE))
            .ok()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "?".to_owned());
        Refused { id, pid, speaks }
    }

    fn error(&self) -> ContainerError {
        ContainerError::MonitorVersion {
            id: self.id.clone(),
            pid: self.pid.clone(),
            speaks: self.speaks.clone(),
        }
    }
}
fn monitor_gone(source: std::io::Error) -> ContainerError {
    ContainerError::MonitorUnreachable { source }
}

/// Connects and sends one request line.
async fn send(socket: &Path, req: &Request) -> Result<Conversation, ContainerError> {
    // Any exec root: a socket path too long for an address is reached through a descriptor
    // of its run dir, held until connected.
    let name = berth_monitor::sockpath::SocketName::new(socket).map_err(monitor_gone)?;
    let stream = UnixStream::connect(name.path())
        .await
        .map_err(monitor_gone)?;
    drop(name);
    let (rd, mut writer) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(|source| ContainerError::Encode {
        what: "monitor request",
        source,
    })?;
    line.push(b'\n');
    writer.write_all(&line).await.map_err(monitor_gone)?;
    Ok(Conversation {
        reader: BufReader::new(rd),
        writer,
    })
}

/// Sends `req` and reads the one-line response.
async fn call(socket: &Path, req: &Request) -> Result<(Response, Conversation), ContainerError> {
    let mut conv = send(socket, req).await?;
    let mut resp = String::new();
    let n = conv
        .reader
        .read_line(&mut resp)
        .await
        .map_err(monitor_gone)?;
    if n == 0 {
        return Err(monitor_gone(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        )));
    }
    let resp: Response =
        serde_json::from_str(&resp).map_err(|source| ContainerError::MonitorDecode { source })?;
    Ok((resp, conv))
}

/// Opens the `Wait` conversation without waiting for its answer.
async fn begin_wait(socket: &Path) -> Result<Conversation, ContainerError> {
    send(socket, &Request::Wait).await
}

/// Spawns `exe monitor <run_dir>` from `sealed`, a descriptor of `exe` no one can write
/// through, and waits for its ready line. The child is reaped in the background; the monitor
/// itself outlives the daemon.
async fn spawn(exe: &Path, sealed: &OwnedFd, run_dir: &Path) -> Result<Ready, ContainerError> {
    // The descriptor is close-on-exec: execve resolves /proc/self/fd/N before closing it.
    let program = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(sealed));
    let mut child = tokio::process::Command::new(program)
        .arg0("berth")
        .arg("monitor")
        .arg(run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| ContainerError::Io {
            op: "spawn monitor",
            path: exe.to_path_buf(),
            source,
        })?;
    let stdout = child.stdout.take().ok_or(ContainerError::MonitorExited)?;
    tokio::spawn(async move {
        // Reaping only: the monitor's exit status means nothing here (it reports the
        // container's through exit.json and the Wait conversation).
        let _ = child.wait().await;
    });
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).await.map_err(monitor_gone)?;
    if line.is_empty() {
        return Err(ContainerError::MonitorExited);
    }
    serde_json::from_str(&line).map_err(|source| ContainerError::MonitorDecode { source })
}
