//! A process's standard streams as the monitor holds them.
//!
//! Without a TTY: stdout and stderr are pipes whose read ends the monitor keeps; stdin is a pipe
//! whose write end it keeps when input is wanted, else `/dev/null`. With a TTY: one pty of the
//! container's own devpts (never the host's), opened inside the container by the runtime, which
//! sends the master back over a socket; the slave is all three streams of the process and the
//! monitor keeps the master (reading output, writing input, resizing). The monitor's ends are non-blocking and
//! close-on-exec; it never keeps a child end, so end of output is seen as EOF (or EIO on a pty).
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use berth_runtime::{InitStdio, ProcessIo};
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};

use crate::error::MonitorError;
use crate::sys;

/// Input waiting for a process's stdin beyond this is not read from clients (backpressure).
pub const STDIN_HIGH_WATER: usize = 64 * 1024;

/// The monitor's side of one process's stdio.
#[derive(Debug)]
pub struct HostStdio {
    /// Where input goes (pipe write end or a dup of the pty master); `None` once closed or when
    /// the process has no input.
    pub stdin: Option<File>,
    /// Input not yet accepted by `stdin`.
    pub stdin_pending: Vec<u8>,
    /// Close stdin once `stdin_pending` is written.
    pub stdin_close_requested: bool,
    /// Output read ends: stdout (or the pty master) and stderr; `None` once at EOF.
    pub outputs: [Option<File>; 2],
    /// A dup of the pty master for resizing, when there is a TTY.
    pub pty: Option<OwnedFd>,
}

/// The monitor's side of a process's streams until the runtime has set the process up.
#[derive(Debug)]
pub enum PendingStdio {
    /// Pipes, ready now.
    Ready(HostStdio),
    /// The pty master arrives on this socket.
    Console {
        /// Our end of the console socket pair.
        socket: std::os::unix::net::UnixStream,
        /// Whether input goes to the pty.
        with_stdin: bool,
    },
}

impl PendingStdio {
    /// Once the runtime reported the process set up: the monitor's side of its streams. The
    /// master was sent before that report, so it is waiting on the socket (never blocks).
    pub fn finish(self) -> Result<HostStdio, MonitorError> {
        match self {
            PendingStdio::Ready(host) => Ok(host),
            PendingStdio::Console { socket, with_stdin } => {
                let err = |source| MonitorError::Stdio {
                    what: "console socket",
                    source,
                };
                socket.set_nonblocking(true).map_err(err)?;
                let master = sys::receive_fd(&socket).ok_or_else(|| {
                    err(io::Error::other(
                        "no pty master received on the console socket",
                    ))
                })?;
                HostStdio::from_pty_master(master, with_stdin).map_err(|source| {
                    MonitorError::Stdio {
                        what: "pty master",
                        source,
                    }
                })
            }
        }
    }
}

/// What reading an output stream gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes.
    Data(usize),
    /// Nothing right now.
    WouldBlock,
    /// The stream ended (and was closed).
    Eof,
}

impl HostStdio {
    /// Pipes for a process without a TTY; returns the monitor's side and the process's side.
    pub fn pipes(with_stdin: bool) -> Result<(HostStdio, InitStdio), MonitorError> {
        Self::new_pipes(with_stdin)
    }

    fn new_pipes(with_stdin: bool) -> Result<(HostStdio, InitStdio), MonitorError> {
        let (out_r, out_w) = host_pipe("stdout pipe")?;
        let (err_r, err_w) = host_pipe("stderr pipe")?;
        let (input, child_stdin) = if with_stdin {
            let (in_r, in_w) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| MonitorError::Stdio {
                    what: "stdin pipe",
                    source: errno.into(),
                })?;
            set_nonblocking(&in_w).map_err(|source| MonitorError::Stdio {
                what: "stdin pipe",
                source,
            })?;
            (Some(File::from(in_w)), in_r)
        } else {
            let null = File::open("/dev/null").map_err(|source| MonitorError::Stdio {
                what: "/dev/null",
                source,
            })?;
            (None, OwnedFd::from(null))
        };
        let child = InitStdio {
            stdin: child_stdin,
            stdout: out_w,
            stderr: err_w,
            console: false,
        };
        let host = HostStdio {
            stdin: input,
            stdin_pending: Vec::new(),
            stdin_close_requested: false,
            outputs: [Some(File::from(out_r)), Some(File::from(err_r))],
            pty: None,
        };
        Ok((host, child))
    }

    /// The streams of a process of berth's own runtime: with a TTY, a socket pair whose far
    /// end the runtime takes (it opens the pty in the container's own devpts and sends the
    /// master back, see [`berth_runtime::ProcessIo::Console`]); without, pipes.
    pub fn for_runtime(
        tty: bool,
        console_size: Option<(u16, u16)>,
        with_stdin: bool,
    ) -> Result<(PendingStdio, ProcessIo), MonitorError> {
        if !tty {
            let (host, child) = Self::new_pipes(with_stdin)?;
            return Ok((PendingStdio::Ready(host), ProcessIo::Stdio(child)));
        }
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|source| MonitorError::Stdio {
                what: "console socket",
                source,
            })?;
        let io = ProcessIo::Console {
            socket: OwnedFd::from(theirs),
            size: console_size,
        };
        Ok((
            PendingStdio::Console {
                socket: ours,
                with_stdin,
            },
            io,
        ))
    }

    /// The monitor's side for a pty master received from elsewhere (an external runtime's
    /// console socket).
    pub fn from_pty_master(master: OwnedFd, with_stdin: bool) -> io::Result<HostStdio> {
        set_cloexec(&master)?;
        set_nonblocking(&master)?;
        let input = if with_stdin {
            Some(File::from(master.try_clone()?))
        } else {
            None
        };
        Ok(HostStdio {
            stdin: input,
            stdin_pending: Vec::new(),
            stdin_close_requested: false,
            pty: Some(master.try_clone()?),
            outputs: [Some(File::from(master)), None],
        })
    }

    /// Whether this is a TTY.
    pub fn is_tty(&self) -> bool {
        self.pty.is_some()
    }

    /// Whether every output stream reached its end.
    pub fn outputs_done(&self) -> bool {
        self.outputs.iter().all(Option::is_none)
    }

    /// Reads once from output `index` into `buf`; closes it at EOF (or EIO: pty slave gone).
    pub fn read_output(&mut self, index: usize, buf: &mut [u8]) -> ReadOutcome {
        let Some(file) = self.outputs[index].as_mut() else {
            return ReadOutcome::Eof;
        };
        match file.read(buf) {
            Ok(0) => {
                self.outputs[index] = None;
                ReadOutcome::Eof
            }
            Ok(n) => ReadOutcome::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => ReadOutcome::WouldBlock,
            Err(_) => {
                self.outputs[index] = None;
                ReadOutcome::Eof
            }
        }
    }

    /// Queues input for the process and writes what it accepts now.
    pub fn queue_input(&mut self, data: &[u8]) {
        if self.stdin.is_some() {
            self.stdin_pending.extend_from_slice(data);
            self.flush_input();
        }
    }

    /// Whether more input may be read from clients now.
    pub fn accepts_input(&self) -> bool {
        self.stdin_pending.len() < STDIN_HIGH_WATER
    }

    /// Closes stdin once pending input is written (client's EOF). A pty's input is never
    /// closed: that would also end the output.
    pub fn close_input(&mut self) {
        if self.is_tty() {
            return;
        }
        self.stdin_close_requested = true;
        self.flush_input();
    }

    /// Writes pending input; drops it (and closes stdin) if the process closed its end.
    pub fn flush_input(&mut self) {
        let Some(file) = self.stdin.as_mut() else {
            self.stdin_pending.clear();
            return;
        };
        while !self.stdin_pending.is_empty() {
            match file.write(&self.stdin_pending) {
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.stdin = None;
                    self.stdin_pending.clear();
                    return;
                }
            }
        }
        if self.stdin_close_requested {
            self.stdin = None;
        }
        if self.stdin_pending.capacity() > STDIN_HIGH_WATER * 2 {
            self.stdin_pending.shrink_to(4096);
        }
    }
}

fn host_pipe(what: &'static str) -> Result<(OwnedFd, OwnedFd), MonitorError> {
    let (read, write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| MonitorError::Stdio {
            what,
            source: errno.into(),
        })?;
    set_nonblocking(&read).map_err(|source| MonitorError::Stdio { what, source })?;
    Ok((read, write))
}

/// Makes a descriptor non-blocking.
pub fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags))?;
    Ok(())
}

fn set_cloexec(fd: &impl AsFd) -> io::Result<()> {
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Sets the window size of a TTY stdio; an error when there is no TTY.
pub fn resize(stdio: &HostStdio, rows: u16, cols: u16) -> io::Result<()> {
    match &stdio.pty {
        Some(master) => sys::set_window_size(master.as_fd(), rows, cols),
        None => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the process has no TTY",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_carry_output_and_input_then_eof() {
        let (mut host, child) = HostStdio::pipes(true).expect("stdio");
        assert!(!child.console);
        let mut child_out = File::from(child.stdout);
        child_out.write_all(b"out").expect("write");
        let mut buf = [0u8; 16];
        assert_eq!(host.read_output(0, &mut buf), ReadOutcome::Data(3));
        assert_eq!(&buf[..3], b"out");
        assert_eq!(host.read_output(1, &mut buf), ReadOutcome::WouldBlock);
        drop(child_out);
        assert_eq!(host.read_output(0, &mut buf), ReadOutcome::Eof);
        assert!(!host.outputs_done());
        drop(child.stderr);
        assert_eq!(host.read_output(1, &mut buf), ReadOutcome::Eof);
        assert!(host.outputs_done());

        host.queue_input(b"in");
        host.close_input();
        assert!(
            host.stdin.is_none(),
            "closed after the pending input was written"
        );
        let mut child_in = File::from(child.stdin);
        let mut got = Vec::new();
        child_in.read_to_end(&mut got).expect("read");
        assert_eq!(got, b"in");
    }

    #[test]
    fn without_stdin_the_child_reads_dev_null() {
        let (mut host, child) = HostStdio::pipes(false).expect("stdio");
        host.queue_input(b"ignored");
        assert!(host.stdin_pending.is_empty());
        let mut got = Vec::new();
        File::from(child.stdin)
            .read_to_end(&mut got)
            .expect("read /dev/null");
        assert!(got.is_empty());
    }

    #[test]
    fn pty_gives_one_slave_for_all_streams_and_resizes() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut host = HostStdio::from_pty_master(pty.master, true).expect("pty");
        let child = InitStdio {
            stdin: pty.slave.try_clone().expect("dup"),
            stdout: pty.slave.try_clone().expect("dup"),
            stderr: pty.slave,
            console: true,
        };
        assert!(host.is_tty());
        assert!(host.outputs[1].is_none());
        resize(&host, 40, 120).expect("resize");
        File::from(child.stdout)
            .write_all(b"x")
            .expect("write slave");
        let mut buf = [0u8; 16];
        let mut got = host.read_output(0, &mut buf);
        for _ in 0..100 {
            if got != ReadOutcome::WouldBlock {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            got = host.read_output(0, &mut buf);
        }
        assert_eq!(got, ReadOutcome::Data(1));
        drop(child.stdin);
        drop(child.stderr);
        // Every slave fd closed: the master reads EIO, which counts as the end.
        assert_eq!(host.read_output(0, &mut buf), ReadOutcome::Eof);
        host.close_input();
        assert!(host.stdin.is_some(), "a pty's input is never closed on EOF");
        let (pipes, _child) = HostStdio::pipes(false).expect("pipes");
        assert!(resize(&pipes, 1, 1).is_err());
    }
}
