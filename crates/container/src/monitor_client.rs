//! The daemon side of the monitor protocol (`berth_monitor::protocol`), over tokio.
use std::path::Path;
use std::process::Stdio;

use berth_monitor::protocol::{Ready, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::ContainerError;

/// A connection after its request was answered: the reader keeps any stream bytes that
/// arrived with the response line.
#[derive(Debug)]
pub struct Conversation {
    /// Monitor → daemon (frames after an attach/exec).
    pub reader: BufReader<OwnedReadHalf>,
    /// Daemon → monitor (stdin bytes after an attach/exec).
    pub writer: OwnedWriteHalf,
}

fn monitor_gone(e: std::io::Error) -> ContainerError {
    ContainerError::Internal {
        message: format!("container monitor is not answering: {e}"),
    }
}

/// Sends `req` and reads the one-line response.
pub async fn call(
    socket: &Path,
    req: &Request,
) -> Result<(Response, Conversation), ContainerError> {
    let stream = UnixStream::connect(socket).await.map_err(monitor_gone)?;
    let (rd, mut writer) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(|e| ContainerError::Internal {
        message: format!("encode monitor request: {e}"),
    })?;
    line.push(b'\n');
    writer.write_all(&line).await.map_err(monitor_gone)?;
    let mut reader = BufReader::new(rd);
    let mut resp = String::new();
    let n = reader.read_line(&mut resp).await.map_err(monitor_gone)?;
    if n == 0 {
        return Err(monitor_gone(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        )));
    }
    let resp: Response = serde_json::from_str(&resp).map_err(|e| ContainerError::Internal {
        message: format!("bad monitor response: {e}"),
    })?;
    Ok((resp, Conversation { reader, writer }))
}

/// Sends a request that expects `Ok`.
pub async fn call_ok(socket: &Path, req: &Request) -> Result<(), ContainerError> {
    match call(socket, req).await?.0 {
        Response::Ok => Ok(()),
        Response::Error { message, .. } => Err(ContainerError::Internal { message }),
        other => Err(ContainerError::Internal {
            message: format!("unexpected monitor response {other:?}"),
        }),
    }
}

/// Spawns `exe monitor <run_dir>` from `sealed`, a descriptor of `exe` no one can write
/// through, and waits for its ready line. The child is reaped in the background; the monitor
/// itself outlives the daemon.
pub async fn spawn(
    exe: &Path,
    sealed: &std::os::fd::OwnedFd,
    run_dir: &Path,
) -> Result<Ready, ContainerError> {
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
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ContainerError::Internal {
            message: "monitor stdout missing".into(),
        })?;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).await.map_err(monitor_gone)?;
    if line.is_empty() {
        return Err(ContainerError::Internal {
            message: "container monitor exited before it was ready".into(),
        });
    }
    serde_json::from_str(&line).map_err(|e| ContainerError::Internal {
        message: format!("bad monitor ready line {line:?}: {e}"),
    })
}
