//! The parent ↔ child protocol of `create` and `exec`.
//!
//! Two close-on-exec pipes connect the caller and the child it clones:
//! - *control* (parent → child): `G` once the parent has placed the child in its cgroup (only
//!   sent when the child waits for it), `S` to start; EOF means "give up, exit".
//! - *report* (child → parent): `R` when setup is done and the child blocks before exec;
//!   `E` + JSON [`Failure`] when a setup step failed; `X` + JSON [`ExecFailure`] when the
//!   process could not be executed. A successful `execve` closes the pipe, so EOF after `R`
//!   (or, for `exec`, EOF right away) means the process runs.
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{RuntimeError, Step};

pub(crate) const READY: u8 = b'R';
pub(crate) const SETUP_FAILED: u8 = b'E';
pub(crate) const EXEC_FAILED: u8 = b'X';
pub(crate) const GO: u8 = b'G';
pub(crate) const START: u8 = b'S';
/// `P` + the pid (4 bytes, native order): the exec helper names the process it cloned.
pub(crate) const PID: u8 = b'P';
/// The init stopped before pivot_root for the caller's prestart and createRuntime hooks.
pub(crate) const HOOKS: u8 = b'H';
/// The caller ran them: go on.
pub(crate) const CONTINUE: u8 = b'C';

/// A failed setup step in the child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Failure {
    pub step: Step,
    pub path: PathBuf,
    pub errno: i32,
    /// Said instead of the errno's text (a hook's exit status and output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Failure {
    pub(crate) fn new(step: Step, path: &Path, errno: nix::Error) -> Self {
        Failure {
            step,
            path: path.to_owned(),
            errno: errno as i32,
            detail: None,
        }
    }

    /// A failure told in words (`detail`), not by an errno.
    pub(crate) fn detailed(step: Step, path: &Path, detail: String) -> Self {
        Failure {
            step,
            path: path.to_owned(),
            errno: libc::EIO,
            detail: Some(detail),
        }
    }

    pub(crate) fn io(step: Step, path: &Path, err: &io::Error) -> Self {
        Failure {
            step,
            path: path.to_owned(),
            errno: err.raw_os_error().unwrap_or(libc::EIO),
            detail: None,
        }
    }

    pub(crate) fn into_error(self) -> RuntimeError {
        let source = match self.detail {
            Some(detail) => io::Error::other(detail),
            None => io::Error::from_raw_os_error(self.errno),
        };
        RuntimeError::Init {
            step: self.step,
            path: self.path,
            source,
        }
    }
}

/// Shorthand for `map_err` on nix results in the child.
pub(crate) fn at(step: Step, path: &Path) -> impl FnOnce(nix::Error) -> Failure + '_ {
    move |errno| Failure::new(step, path, errno)
}

/// The child's side of [`berth_cgroups::SelfJoin::join`]: the failure names the `tasks` file.
pub(crate) fn join_cgroup(join: Option<&berth_cgroups::SelfJoin>) -> Result<(), Failure> {
    let Some(join) = join else { return Ok(()) };
    join.join().map_err(|error| match error {
        berth_cgroups::CgroupError::Write { path, source, .. } => {
            Failure::io(Step::JoinCgroup, &path, &source)
        }
        other => Failure::detailed(Step::JoinCgroup, Path::new(""), other.to_string()),
    })
}

/// Shorthand for `map_err` on std results in the child.
pub(crate) fn at_io(step: Step, path: &Path) -> impl FnOnce(io::Error) -> Failure + '_ {
    move |err| Failure::io(step, path, &err)
}

/// The process could not be executed (Docker's message and exit code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExecFailure {
    pub message: String,
    pub exit_code: i32,
}

impl ExecFailure {
    pub(crate) fn into_error(self) -> RuntimeError {
        RuntimeError::Exec {
            message: self.message,
            exit_code: self.exit_code,
        }
    }
}

/// A `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::nix("create pipe", "", e))
}

/// Writes a tagged message; errors are ignored because the reader may be gone.
pub(crate) fn send<T: Serialize>(fd: BorrowedFd<'_>, tag: u8, body: &T) {
    let mut message = vec![tag];
    if serde_json::to_writer(&mut message, body).is_err() {
        return;
    }
    let mut rest = &message[..];
    while !rest.is_empty() {
        match nix::unistd::write(fd, rest) {
            Ok(written) => rest = &rest[written..],
            Err(nix::Error::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// Sends [`PID`] and `pid`; errors are ignored because the reader may be gone.
pub(crate) fn send_pid(fd: BorrowedFd<'_>, pid: i32) {
    let mut message = [PID; 5];
    message[1..].copy_from_slice(&pid.to_ne_bytes());
    let _ = nix::unistd::write(fd, &message);
}

pub(crate) fn send_byte(fd: BorrowedFd<'_>, byte: u8) -> io::Result<()> {
    nix::unistd::write(fd, &[byte])
        .map(|_| ())
        .map_err(io::Error::from)
}

/// Reads one byte; `None` on EOF.
pub(crate) fn read_byte(fd: BorrowedFd<'_>) -> io::Result<Option<u8>> {
    let mut byte = [0u8];
    loop {
        match nix::unistd::read(fd, &mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(byte[0])),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// What the child reported after the parent waited on the report pipe.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Report {
    Ready,
    /// The init waits for the caller's createRuntime hooks.
    Hooks,
    /// EOF: the pipe closed without a message (exec succeeded, or the child died).
    Closed,
    SetupFailed(Failure),
    ExecFailed(ExecFailure),
    /// The exec helper's clone (the pipe stays open: the process holds it too).
    Pid(i32),
}

/// Reads the next report from the child.
pub(crate) fn read_report(fd: &OwnedFd) -> Result<Report, RuntimeError> {
    let tag = read_byte(fd.as_fd())
        .map_err(|e| RuntimeError::host("read from container process", "", e))?;
    let Some(tag) = tag else {
        return Ok(Report::Closed);
    };
    if tag == READY {
        return Ok(Report::Ready);
    }
    if tag == HOOKS {
        return Ok(Report::Hooks);
    }
    if tag == PID {
        let mut pid = [0u8; 4];
        let mut filled = 0;
        while filled < pid.len() {
            match nix::unistd::read(fd, &mut pid[filled..]) {
                Ok(0) => return Ok(Report::Closed),
                Ok(n) => filled += n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(RuntimeError::nix("read from container process", "", e)),
            }
        }
        return Ok(Report::Pid(i32::from_ne_bytes(pid)));
    }
    let mut body = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(RuntimeError::nix("read from container process", "", e)),
        }
    }
    let json_err = |source| RuntimeError::Json {
        path: PathBuf::from("<sync pipe>"),
        source,
    };
    match tag {
        SETUP_FAILED => Ok(Report::SetupFailed(
            serde_json::from_slice(&body).map_err(json_err)?,
        )),
        EXEC_FAILED => Ok(Report::ExecFailed(
            serde_json::from_slice(&body).map_err(json_err)?,
        )),
        _ => Err(RuntimeError::host(
            "read from container process",
            "",
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected sync byte {tag}"),
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_travel_through_the_pipe() {
        let (read, write) = pipe().expect("pipe");
        let failure = Failure {
            step: Step::Mount,
            path: "/proc".into(),
            errno: libc::EPERM,
            detail: None,
        };
        send(write.as_fd(), SETUP_FAILED, &failure);
        drop(write);
        assert_eq!(
            read_report(&read).expect("report"),
            Report::SetupFailed(failure)
        );
    }

    #[test]
    fn exec_failures_and_ready_and_eof() {
        let (read, write) = pipe().expect("pipe");
        send_byte(write.as_fd(), READY).expect("write");
        let exec = ExecFailure {
            message: "exec: \"x\": permission denied".into(),
            exit_code: 126,
        };
        send(write.as_fd(), EXEC_FAILED, &exec);
        drop(write);
        assert_eq!(read_report(&read).expect("ready"), Report::Ready);
        assert_eq!(read_report(&read).expect("exec"), Report::ExecFailed(exec));
        let (read, write) = pipe().expect("pipe");
        drop(write);
        assert_eq!(read_report(&read).expect("eof"), Report::Closed);
    }
}
