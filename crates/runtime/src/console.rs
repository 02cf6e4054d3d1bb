//! The container's standard streams and terminal. See
//! <https://man7.org/linux/man-pages/man4/tty_ioctl.4.html>.
//!
//! With `InitStdio { console: true }` the three streams are one pty slave (the caller holds
//! the master); the process becomes a session leader and takes it as its controlling
//! terminal. For `berth oci create --console-socket`, the init opens a pty in the
//! container's own devpts after pivot_root and sends the master over the socket with
//! SCM_RIGHTS (runc's protocol: the payload is the name `/dev/ptmx`).
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::sys::stat::Mode;

use crate::sync::{Failure, at, at_io};
use crate::{InitStdio, Step};

/// Installs `stdio` as fds 0, 1, 2; makes the process a session leader and, for a console,
/// gives it its controlling terminal.
pub(crate) fn install(stdio: &InitStdio) -> Result<(), Failure> {
    let fd_path = Path::new("/proc/self/fd");
    // Move the three out of 0..=2 first, so installing one cannot clobber another.
    // (try_clone is F_DUPFD_CLOEXEC from 3 upwards.)
    let moved: Vec<OwnedFd> = [&stdio.stdin, &stdio.stdout, &stdio.stderr]
        .into_iter()
        .map(|fd| fd.try_clone().map_err(at_io(Step::Stdio, fd_path)))
        .collect::<Result<_, Failure>>()?;
    nix::unistd::dup2_stdin(&moved[0]).map_err(at(Step::Stdio, fd_path))?;
    nix::unistd::dup2_stdout(&moved[1]).map_err(at(Step::Stdio, fd_path))?;
    nix::unistd::dup2_stderr(&moved[2]).map_err(at(Step::Stdio, fd_path))?;
    nix::unistd::setsid().map_err(at(Step::Stdio, fd_path))?;
    if stdio.console {
        crate::sys::set_controlling_terminal(std::io::stdin().as_fd())
            .map_err(at_io(Step::Console, fd_path))?;
    }
    Ok(())
}

/// The host path of the terminal on fd 0 (for the /dev/console bind).
pub(crate) fn terminal_path() -> Result<PathBuf, Failure> {
    let fd0 = Path::new("/proc/self/fd/0");
    std::fs::read_link(fd0).map_err(at_io(Step::Console, fd0))
}

/// Opens a new pty in the container's devpts (`/dev/ptmx`, a link to `pts/ptmx` of the
/// container's own devpts instance), gives it `size`, sends its master over `socket`, returns
/// the slave (three times, as stdio) and the slave's path.
pub(crate) fn open_for_socket(
    socket: &OwnedFd,
    size: Option<(u16, u16)>,
) -> Result<(InitStdio, PathBuf), Failure> {
    let ptmx = Path::new("/dev/ptmx");
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(at(Step::Console, ptmx))?;
    nix::pty::grantpt(&master).map_err(at(Step::Console, ptmx))?;
    nix::pty::unlockpt(&master).map_err(at(Step::Console, ptmx))?;
    let name = PathBuf::from(nix::pty::ptsname_r(&master).map_err(at(Step::Console, ptmx))?);
    let slave = open(
        &name,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(at(Step::Console, &name))?;
    // An exec's process has no fds 0..=2 yet, so the two may have landed there: move them
    // above 2 (try_clone is F_DUPFD_CLOEXEC from 3), or installing the streams and dropping
    // these would close the new stdio.
    let slave = slave.try_clone().map_err(at_io(Step::Console, &name))?;
    if let Some((rows, cols)) = size {
        crate::sys::set_window_size(slave.as_fd(), rows, cols)
            .map_err(at_io(Step::Console, &name))?;
    }
    let master = master
        .as_fd()
        .try_clone_to_owned()
        .map_err(at_io(Step::Console, ptmx))?;
    let fds = [master.as_raw_fd()];
    let payload = [IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &payload,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(at(Step::Console, Path::new("console socket")))?;
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(at_io(Step::Console, &name));
    let stdio = InitStdio {
        stdin: dup(&slave)?,
        stdout: dup(&slave)?,
        stderr: slave,
        console: true,
    };
    Ok((stdio, name))
}
