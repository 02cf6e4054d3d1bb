//! The monitor's single-threaded event loop.
//!
//! One `poll(2)` over: the SIGCHLD self-pipe, the listening socket, the container's output
//! (pipes or pty master) and input, each exec's stdio, and every client connection. Nothing
//! blocks: output to a client goes through a bounded buffer (a client that falls
//! [`MAX_CLIENT_BUFFER`] behind is dropped), input to a process through a pending buffer that
//! pauses reading from clients while full.
//!
//! Lifecycle: created (init blocked before exec) → `Start` → running → the init is reaped →
//! its output is drained (until EOF, at most [`DRAIN_TIMEOUT`]) → finalize (log tail, OOM,
//! runtime cleanup, `exit.json`, answer waiters, close streams) → clients flushed (at most
//! [`CLOSE_TIMEOUT`]) → `monitor.sock` and `monitor.pid` removed → exit 0.
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use berth_runtime::Spec;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::engine::Engine;
use crate::error::MonitorError;
use crate::logfile::{LogFile, Stream, rfc3339_nano};
use crate::protocol::{
    CONFIG_FILE, EXIT_FILE, EXIT_FRAME, ExitStatus, MonitorConfig, PID_FILE, PROTOCOL_VERSION,
    Request, Response, SOCKET_FILE, SPEC_FILE, Status, encode_frame,
};
use crate::stdio::{self, HostStdio, ReadOutcome};
use crate::{oom, sys};

/// A client this far behind on output is dropped rather than slowing the container.
pub const MAX_CLIENT_BUFFER: usize = 1024 * 1024;
/// After a process exits, wait at most this long for the end of its output.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// After the container exits, wait at most this long for clients to take their last bytes.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// A partial log line is written as its own entry after this long without a newline.
pub const PARTIAL_LINE_AGE: Duration = Duration::from_secs(1);
/// A request line longer than this is refused.
const MAX_REQUEST: usize = 1024 * 1024;
/// One read from any fd (also the largest frame).
const READ_BUFFER: usize = 32 * 1024;

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Reading its request line.
    Request,
    /// Waiting for the container's exit.
    Waiter,
    /// Streaming the container's output (and taking input).
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Streaming an exec's output (and taking its input).
    Exec { pid: i32 },
    /// Answered; closes once its output is written.
    Done,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    stream: UnixStream,
    request: Vec<u8>,
    out: Vec<u8>,
    role: Role,
    read_closed: bool,
    close_when_flushed: bool,
    dead: bool,
}

impl Conn {
    fn push(&mut self, bytes: &[u8]) {
        if self.dead {
            return;
        }
        if self.out.len() + bytes.len() > MAX_CLIENT_BUFFER {
            self.dead = true;
            return;
        }
        self.out.extend_from_slice(bytes);
        self.flush();
    }

    fn push_frame(&mut self, stream: u8, payload: &[u8]) {
        if self.dead {
            return;
        }
        if self.out.len() + payload.len() + 8 > MAX_CLIENT_BUFFER {
            self.dead = true;
            return;
        }
        encode_frame(&mut self.out, stream, payload);
        self.flush();
    }

    fn respond(&mut self, response: &Response) {
        let mut line = serde_json::to_vec(response).expect("responses always serialize");
        line.push(b'\n');
        self.push(&line);
    }

    /// Answers and closes.
    fn respond_and_close(&mut self, response: &Response) {
        self.role = Role::Done;
        self.close_when_flushed = true;
        self.respond(response);
    }

    fn flush(&mut self) {
        let mut written = 0;
        while written < self.out.len() {
            match self.stream.write(&self.out[written..]) {
                Ok(0) => {
                    self.dead = true;
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
        self.out.drain(..written);
        if self.out.is_empty() {
            if self.out.capacity() > 64 * 1024 {
                self.out.shrink_to(4096);
            }
            if self.close_when_flushed {
                self.dead = true;
            }
        }
    }

    fn close_when_flushed(&mut self) {
        self.role = Role::Done;
        self.close_when_flushed = true;
        self.flush();
    }
}

/// A process started with `Exec`.
#[derive(Debug)]
struct ExecProcess {
    pid: i32,
    conn: u64,
    io: HostStdio,
    exit: Option<(i32, Instant)>,
}

/// How the init ended, before finalizing.
#[derive(Debug)]
struct InitExit {
    code: i32,
    finished_at: String,
    at: Instant,
}

/// Something `poll` watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Sigchld,
    Listener,
    Output(usize),
    Input,
    ExecOutput(i32, usize),
    ExecInput(i32),
    Conn(u64),
}

/// One container's monitor.
#[derive(Debug)]
pub struct Monitor {
    config: MonitorConfig,
    run_dir: PathBuf,
    spec: Spec,
    engine: Engine,
    init_pid: i32,
    status: Status,
    started_at: Option<String>,
    start_failure: Option<(String, i32)>,
    init_exit: Option<InitExit>,
    exit: Option<ExitStatus>,
    listener: UnixListener,
    sigchld: File,
    io: HostStdio,
    log: LogFile,
    log_error_reported: bool,
    conns: Vec<Conn>,
    execs: Vec<ExecProcess>,
    next_conn: u64,
    buf: Vec<u8>,
    cgroup_root: PathBuf,
    close_deadline: Option<Instant>,
}

impl Monitor {
    /// Sets the process up (session, subreaper, signals), creates the container init and
    /// listens on `<run_dir>/monitor.sock`. `cgroup_root` is normally `/sys/fs/cgroup`.
    pub fn new(run_dir: &Path, cgroup_root: &Path) -> Result<Monitor, MonitorError> {
        let config = load_config(run_dir)?;
        let spec_path = run_dir.join(SPEC_FILE);
        let spec = Spec::load(&spec_path).map_err(|source| MonitorError::LoadSpec {
            path: spec_path,
            source,
        })?;

        // Not a process group leader when spawned by the daemon; if it fails we already are
        // a session leader, which is as good.
        let _ = nix::unistd::setsid();
        nix::sys::prctl::set_child_subreaper(true).map_err(|errno| MonitorError::Setup {
            step: "set child subreaper",
            source: errno.into(),
        })?;
        let (sigchld_read, sigchld_write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|errno| {
                MonitorError::Setup {
                    step: "self-pipe",
                    source: errno.into(),
                }
            })?;
        sys::install_signal_handlers(sigchld_write).map_err(|errno| MonitorError::Setup {
            step: "signal handlers",
            source: errno.into(),
        })?;

        if let Some((soft, hard)) = config.nofile_limit {
            // The daemon raised its own limit; the container gets the one it was started with.
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, soft, hard)
                .map_err(|errno| MonitorError::Setup {
                    step: "restore the open file limit",
                    source: errno.into(),
                })?;
        }
        let mut log = LogFile::open_driver(
            &config.log_driver,
            &config.log_path,
            config.log_max_size,
            config.log_max_files,
        )?;
        log.set_buffering(
            config.log_mode,
            config
                .log_max_buffer_size
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(crate::logfile::DEFAULT_MAX_BUFFER),
        );
        let socket_path = run_dir.join(SOCKET_FILE);
        let _ = std::fs::remove_file(&socket_path);
        // Any exec root: a path too long for a socket address is bound through its
        // directory's descriptor (see `sockpath`).
        let listener = crate::sockpath::SocketName::new(&socket_path)
            .and_then(|name| UnixListener::bind(name.path()))
            .map_err(|source| MonitorError::Bind {
                path: socket_path.clone(),
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| MonitorError::Bind {
                path: socket_path.clone(),
                source,
            })?;

        let created = write_pid_file(run_dir).and_then(|()| Engine::create(&config, &spec));
        let (engine, init_pid, io) = match created {
            Ok(created) => created,
            Err(e) => {
                let _ = std::fs::remove_file(&socket_path);
                let _ = std::fs::remove_file(run_dir.join(PID_FILE));
                return Err(e);
            }
        };
        Ok(Monitor {
            config,
            run_dir: run_dir.to_path_buf(),
            spec,
            engine,
            init_pid,
            status: Status::Created,
            started_at: None,
            start_failure: None,
            init_exit: None,
            exit: None,
            listener,
            sigchld: File::from(sigchld_read),
            io,
            log,
            log_error_reported: false,
            conns: Vec::new(),
            execs: Vec::new(),
            next_conn: 0,
            buf: vec![0; READ_BUFFER],
            cgroup_root: cgroup_root.to_path_buf(),
            close_deadline: None,
        })
    }

    /// The container init's pid.
    pub fn init_pid(&self) -> i32 {
        self.init_pid
    }

    /// Serves until the container exited and its clients were answered; then removes the
    /// socket and pid file.
    pub fn serve(mut self) -> Result<(), MonitorError> {
        crate::sys::release_free_heap();
        let result = self.event_loop();
        let _ = std::fs::remove_file(self.run_dir.join(SOCKET_FILE));
        let _ = std::fs::remove_file(self.run_dir.join(PID_FILE));
        result
    }

    fn event_loop(&mut self) -> Result<(), MonitorError> {
        loop {
            self.housekeeping();
            // Closing a finished client is what tells it the stream ended.
            self.conns.retain(|conn| !conn.dead);
            if self.finished() {
                return Ok(());
            }
            let ready = self.poll_once()?;
            for (token, events) in ready {
                self.dispatch(token, events);
            }
        }
    }

    fn poll_timeout(&self) -> PollTimeout {
        let now = Instant::now();
        let deadlines = [
            self.log.oldest_partial().map(|t| t + PARTIAL_LINE_AGE),
            self.log.retry_at(),
            self.init_exit
                .as_ref()
                .filter(|_| self.exit.is_none())
                .map(|e| e.at + DRAIN_TIMEOUT),
            self.execs
                .iter()
                .filter_map(|e| e.exit.map(|(_, at)| at + DRAIN_TIMEOUT))
                .min(),
            self.close_deadline,
        ];
        match deadlines.into_iter().flatten().min() {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let ms = deadline.saturating_duration_since(now).as_millis() + 1;
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    fn interests(&self) -> Vec<(Token, BorrowedFd<'_>, PollFlags)> {
        let mut list = vec![
            (Token::Sigchld, self.sigchld.as_fd(), PollFlags::POLLIN),
            (Token::Listener, self.listener.as_fd(), PollFlags::POLLIN),
        ];
        // A full log buffer (a full disk, blocking mode): the container's output is not read,
        // so the container blocks on its pipe until the log has room again.
        let read_output = !self.log.is_full();
        add_stdio_interests(
            &mut list,
            &self.io,
            read_output,
            Token::Output,
            Token::Input,
        );
        for exec in &self.execs {
            let pid = exec.pid;
            add_stdio_interests(
                &mut list,
                &exec.io,
                true,
                |i| Token::ExecOutput(pid, i),
                Token::ExecInput(pid),
            );
        }
        for conn in self.conns.iter().filter(|c| !c.dead) {
            let mut events = PollFlags::empty();
            let input_room = match conn.role {
                Role::Attach { stdin: true, .. } => self.io.accepts_input(),
                Role::Exec { pid } => self
                    .execs
                    .iter()
                    .find(|e| e.pid == pid)
                    .is_none_or(|e| e.io.accepts_input()),
                _ => true,
            };
            if !conn.read_closed && input_room {
                events |= PollFlags::POLLIN;
            }
            if !conn.out.is_empty() {
                events |= PollFlags::POLLOUT;
            }
            list.push((Token::Conn(conn.id), conn.stream.as_fd(), events));
        }
        list
    }

    fn poll_once(&self) -> Result<Vec<(Token, PollFlags)>, MonitorError> {
        let timeout = self.poll_timeout();
        let interests = self.interests();
        let mut fds: Vec<PollFd<'_>> = interests
            .iter()
            .map(|(_, fd, events)| PollFd::new(*fd, *events))
            .collect();
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(Vec::new()),
            Err(source) => {
                return Err(MonitorError::EventLoop { op: "poll", source });
            }
        }
        Ok(interests
            .iter()
            .zip(&fds)
            .filter_map(|((token, _, _), fd)| {
                fd.revents()
                    .filter(|r| !r.is_empty())
                    .map(|revents| (*token, revents))
            })
            .collect())
    }

    fn dispatch(&mut self, token: Token, events: PollFlags) {
        match token {
            Token::Sigchld => self.reap(),
            Token::Listener => self.accept(),
            Token::Output(index) => self.read_container_output(index),
            Token::Input => self.io.flush_input(),
            Token::ExecOutput(pid, index) => self.read_exec_output(pid, index),
            Token::ExecInput(pid) => {
                if let Some(exec) = self.execs.iter_mut().find(|e| e.pid == pid) {
                    exec.io.flush_input();
                }
            }
            Token::Conn(id) => self.conn_ready(id, events),
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.next_conn += 1;
                    self.conns.push(Conn {
                        id: self.next_conn,
                        stream,
                        request: Vec::new(),
                        out: Vec::new(),
                        role: Role::Request,
                        read_closed: false,
                        close_when_flushed: false,
                        dead: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn reap(&mut self) {
        let mut drain = [0u8; 64];
        while matches!(self.sigchld.read(&mut drain), Ok(n) if n > 0) {}
        loop {
            let (pid, code) = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (pid.as_raw(), 128 + signal as i32),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            if pid == self.init_pid && self.init_exit.is_none() {
                self.init_exit = Some(InitExit {
                    code,
                    finished_at: rfc3339_nano(SystemTime::now()),
                    at: Instant::now(),
                });
            } else if let Some(exec) = self.execs.iter_mut().find(|e| e.pid == pid) {
                exec.exit = Some((code, Instant::now()));
            }
        }
    }

    fn read_container_output(&mut self, index: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        if let ReadOutcome::Data(n) = self.io.read_output(index, &mut buf) {
            let data = &buf[..n];
            let stream = if index == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            if let Err(e) = self
                .log
                .write(stream, data, SystemTime::now(), Instant::now())
            {
                self.report_log_error(&e);
            }
            for conn in &mut self.conns {
                if let Role::Attach { stdout, stderr, .. } = conn.role {
                    let wanted = if index == 0 { stdout } else { stderr };
                    if wanted {
                        conn.push_frame(index as u8 + 1, data);
                    }
                }
            }
        }
        self.buf = buf;
    }

    fn read_exec_output(&mut self, pid: i32, index: usize) {
        let Some(exec) = self.execs.iter_mut().find(|e| e.pid == pid) else {
            return;
        };
        if let ReadOutcome::Data(n) = exec.io.read_output(index, &mut self.buf)
            && let Some(conn) = self.conns.iter_mut().find(|c| c.id == exec.conn)
        {
            conn.push_frame(index as u8 + 1, &self.buf[..n]);
        }
    }

    fn report_log_error(&mut self, error: &MonitorError) {
        // Logging must not stop the container; say so once on the monitor's stderr.
        if !self.log_error_reported {
            self.log_error_reported = true;
            eprintln!("berth-monitor: {error}");
        }
    }

    fn conn_ready(&mut self, id: u64, events: PollFlags) {
        let Some(index) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        if events.contains(PollFlags::POLLOUT) {
            self.conns[index].flush();
        }
        if events.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            && !self.conns[index].read_closed
        {
            self.conn_readable(index);
        } else if events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            self.conns[index].dead = true;
        }
    }

    fn conn_readable(&mut self, index: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        let read = self.conns[index].stream.read(&mut buf);
        match read {
            Ok(0) => self.conn_eof(index),
            Ok(n) => self.conn_data(index, &buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                self.conns[index].dead = true;
            }
        }
        self.buf = buf;
    }

    fn conn_eof(&mut self, index: usize) {
        let conn = &mut self.conns[index];
        conn.read_closed = true;
        match conn.role {
            Role::Request => conn.dead = true,
            Role::Attach { stdin: true, .. } => {
                if self.config.stdin_once {
                    self.io.close_input();
                }
            }
            Role::Exec { pid } => {
                if let Some(exec) = self.execs.iter_mut().find(|e| e.pid == pid) {
                    exec.io.close_input();
                }
            }
            Role::Attach { .. } | Role::Waiter | Role::Done => {}
        }
    }

    fn conn_data(&mut self, index: usize, data: &[u8]) {
        match self.conns[index].role {
            Role::Request => {
                let conn = &mut self.conns[index];
                conn.request.extend_from_slice(data);
                let Some(newline) = conn.request.iter().position(|&b| b == b'\n') else {
                    if conn.request.len() > MAX_REQUEST {
                        conn.respond_and_close(&Response::Error {
                            message: "request too long".to_string(),
                            exit_code: None,
                        });
                    }
                    return;
                };
                let rest = conn.request.split_off(newline + 1);
                let line = std::mem::take(&mut conn.request);
                match serde_json::from_slice::<Request>(&line) {
                    Ok(request) => self.handle_request(index, request, &rest),
                    Err(e) => self.conns[index].respond_and_close(&Response::Error {
                        message: format!("invalid request: {e}"),
                        exit_code: None,
                    }),
                }
            }
            Role::Attach { stdin: true, .. } => {
                if self.config.open_stdin {
                    self.io.queue_input(data);
                }
            }
            Role::Exec { pid } => {
                if let Some(exec) = self.execs.iter_mut().find(|e| e.pid == pid) {
                    exec.io.queue_input(data);
                }
            }
            // Nothing else takes input; reading only notices the client leaving.
            Role::Attach { .. } | Role::Waiter | Role::Done => {}
        }
    }

    fn handle_request(&mut self, index: usize, request: Request, rest: &[u8]) {
        match request {
            // Whichever version the daemon speaks, the monitor says its own: the daemon
            // decides whether it can speak it.
            Request::Hello { .. } => {
                self.conns[index].respond_and_close(&Response::Hello {
                    version: PROTOCOL_VERSION,
                });
            }
            Request::Start => {
                let response = self.start();
                self.conns[index].respond_and_close(&response);
            }
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                let conn = &mut self.conns[index];
                conn.role = Role::Attach {
                    stdin,
                    stdout,
                    stderr,
                };
                conn.respond(&Response::Ok);
                if self.exit.is_some() {
                    conn.close_when_flushed();
                } else if stdin && !rest.is_empty() && self.config.open_stdin {
                    self.io.queue_input(rest);
                }
            }
            Request::Wait => match &self.exit {
                Some(exit) => {
                    let response = Response::Exited(exit.clone());
                    self.conns[index].respond_and_close(&response);
                }
                None => self.conns[index].role = Role::Waiter,
            },
            Request::Resize { height, width } => {
                let response = match stdio::resize(&self.io, height, width) {
                    Ok(()) => Response::Ok,
                    Err(e) => error_response(format!("resize: {e}")),
                };
                self.conns[index].respond_and_close(&response);
            }
            Request::Kill { signal } => {
                let response = if self.init_exit.is_some() || self.exit.is_some() {
                    error_response("container is not running".to_string())
                } else {
                    match self.engine.kill(self.init_pid, signal) {
                        Ok(()) => Response::Ok,
                        Err(e) => error_response(e.to_string()),
                    }
                };
                self.conns[index].respond_and_close(&response);
            }
            Request::State => {
                let response = Response::State {
                    status: self.status,
                    pid: self.init_pid,
                    started_at: self.started_at.clone(),
                    exit: self.exit.clone(),
                };
                self.conns[index].respond_and_close(&response);
            }
            Request::Exec(exec) => self.exec(index, &exec, rest),
            Request::ExecResize { pid, height, width } => {
                let response = match self.execs.iter().find(|e| e.pid == pid) {
                    Some(exec) => match stdio::resize(&exec.io, height, width) {
                        Ok(()) => Response::Ok,
                        Err(e) => error_response(format!("resize exec {pid}: {e}")),
                    },
                    None => error_response(format!("no such exec process: {pid}")),
                };
                self.conns[index].respond_and_close(&response);
            }
        }
    }

    fn start(&mut self) -> Response {
        if self.status != Status::Created || self.start_failure.is_some() {
            return error_response(format!("container is {:?}, not created", self.status));
        }
        if self.init_exit.is_some() {
            return error_response("container init exited before start".to_string());
        }
        match self.engine.start() {
            Ok(()) => {
                let started_at = rfc3339_nano(SystemTime::now());
                self.status = Status::Running;
                self.started_at = Some(started_at.clone());
                Response::Started {
                    pid: self.init_pid,
                    started_at,
                }
            }
            Err(e) => {
                let response = match e.exec_failure() {
                    Some((message, exit_code)) => {
                        // Docker counts the container as exited with 126/127.
                        self.start_failure = Some((message.clone(), exit_code));
                        Response::Error {
                            message,
                            exit_code: Some(exit_code),
                        }
                    }
                    None => error_response(e.to_string()),
                };
                // The init cannot run its process: make sure it goes, so exit.json follows.
                let _ = nix::sys::signal::kill(Pid::from_raw(self.init_pid), Signal::SIGKILL);
                response
            }
        }
    }

    fn exec(&mut self, index: usize, request: &crate::protocol::ExecRequest, rest: &[u8]) {
        if self.status != Status::Running || self.init_exit.is_some() {
            let message = format!(
                "container {} is not running",
                self.config.id.get(..12).unwrap_or(&self.config.id)
            );
            self.conns[index].respond_and_close(&error_response(message));
            return;
        }
        match self.engine.exec(self.init_pid, &self.spec, request) {
            Ok((pid, mut io)) => {
                if request.attach_stdin && !rest.is_empty() {
                    io.queue_input(rest);
                }
                let conn = &mut self.conns[index];
                conn.role = Role::Exec { pid };
                conn.respond(&Response::ExecStarted { pid });
                self.execs.push(ExecProcess {
                    pid,
                    conn: conn.id,
                    io,
                    exit: None,
                });
            }
            Err(e) => {
                let response = match e.exec_failure() {
                    Some((message, exit_code)) => Response::Error {
                        message,
                        exit_code: Some(exit_code),
                    },
                    None => error_response(e.to_string()),
                };
                self.conns[index].respond_and_close(&response);
            }
        }
    }

    fn housekeeping(&mut self) {
        let now = Instant::now();
        let behind = self.log.buffered() > 0;
        match self.log.retry(now) {
            Err(e) => self.report_log_error(&e),
            // Caught up: a later episode is reported again.
            Ok(()) if behind && self.log.buffered() == 0 => self.log_error_reported = false,
            Ok(()) => {}
        }
        if let Err(e) = self
            .log
            .flush_stale(SystemTime::now(), now, PARTIAL_LINE_AGE)
        {
            self.report_log_error(&e);
        }
        let mut index = 0;
        while index < self.execs.len() {
            let exec = &self.execs[index];
            let done = exec
                .exit
                .filter(|(_, at)| exec.io.outputs_done() || now >= *at + DRAIN_TIMEOUT);
            match done {
                Some((code, _)) => {
                    let exec = self.execs.swap_remove(index);
                    if let Some(conn) = self.conns.iter_mut().find(|c| c.id == exec.conn) {
                        conn.push_frame(EXIT_FRAME, &code.to_be_bytes());
                        conn.close_when_flushed();
                    }
                }
                None => index += 1,
            }
        }
        let drained = self
            .init_exit
            .as_ref()
            .is_some_and(|e| self.io.outputs_done() || now >= e.at + DRAIN_TIMEOUT);
        if drained && self.exit.is_none() {
            self.finalize();
        }
    }

    fn finalize(&mut self) {
        let Some(init_exit) = self.init_exit.take() else {
            return;
        };
        if let Err(e) = self.log.flush_partials(SystemTime::now()) {
            self.report_log_error(&e);
        }
        let oom_killed = self
            .spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.cgroups_path().as_ref())
            .is_some_and(|path| oom::oom_killed(&self.cgroup_root, path));
        if let Err(e) = self.engine.cleanup(&self.spec) {
            eprintln!("berth-monitor: cleanup: {e}");
        }
        let (exit_code, error) = match self.start_failure.take() {
            Some((message, code)) => (code, Some(message)),
            None => (init_exit.code, None),
        };
        let exit = ExitStatus {
            exit_code,
            finished_at: init_exit.finished_at.clone(),
            oom_killed,
            error,
        };
        if let Err(e) = write_exit_file(&self.run_dir, &exit) {
            eprintln!("berth-monitor: {e}");
        }
        self.init_exit = Some(init_exit);
        self.status = Status::Exited;
        self.io.stdin = None;
        for conn in &mut self.conns {
            match conn.role {
                Role::Waiter => conn.respond_and_close(&Response::Exited(exit.clone())),
                Role::Attach { .. } => conn.close_when_flushed(),
                Role::Request | Role::Exec { .. } | Role::Done => {}
            }
        }
        self.exit = Some(exit);
        self.close_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
    }

    fn finished(&self) -> bool {
        let Some(deadline) = self.close_deadline else {
            return false;
        };
        let clients_done = self.execs.is_empty()
            && self
                .conns
                .iter()
                .all(|c| c.dead || !c.close_when_flushed && c.role == Role::Request);
        clients_done || Instant::now() >= deadline
    }
}

fn add_stdio_interests<'a>(
    list: &mut Vec<(Token, BorrowedFd<'a>, PollFlags)>,
    io: &'a HostStdio,
    read_output: bool,
    output: impl Fn(usize) -> Token,
    input: Token,
) {
    for (index, file) in io.outputs.iter().enumerate() {
        if let Some(file) = file.as_ref().filter(|_| read_output) {
            list.push((output(index), file.as_fd(), PollFlags::POLLIN));
        }
    }
    if let Some(stdin) = &io.stdin
        && !io.stdin_pending.is_empty()
    {
        list.push((input, stdin.as_fd(), PollFlags::POLLOUT));
    }
}

fn error_response(message: String) -> Response {
    Response::Error {
        message,
        exit_code: None,
    }
}

fn load_config(run_dir: &Path) -> Result<MonitorConfig, MonitorError> {
    let path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read(&path).map_err(|source| MonitorError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    let config: MonitorConfig =
        serde_json::from_slice(&text).map_err(|source| MonitorError::ParseConfig {
            path: path.clone(),
            source,
        })?;
    if config.version == 0 || config.version > PROTOCOL_VERSION {
        return Err(MonitorError::UnsupportedVersion {
            version: config.version,
            supported: PROTOCOL_VERSION,
        });
    }
    Ok(config)
}

fn write_pid_file(run_dir: &Path) -> Result<(), MonitorError> {
    let path = run_dir.join(PID_FILE);
    std::fs::write(&path, std::process::id().to_string()).map_err(|source| {
        MonitorError::RunDirFile {
            op: "write",
            path,
            source,
        }
    })
}

/// Writes `exit.json` atomically and durably ([`berth_fs::write_atomic`]).
pub(crate) fn write_exit_file(run_dir: &Path, exit: &ExitStatus) -> Result<(), MonitorError> {
    let body = serde_json::to_vec(exit).expect("exit status always serializes");
    berth_fs::write_atomic_private(
        &run_dir.join(EXIT_FILE),
        &body,
        berth_fs::Durability::Durable,
    )
    .map_err(|e| MonitorError::RunDirFile {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked_for_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = serde_json::json!({
            "version": 1, "id": "abc", "run_dir": dir.path(), "rootfs": null,
            "log_path": dir.path().join("log"), "log_max_size": 0, "log_max_files": 1,
            "tty": false, "open_stdin": false, "stdin_once": false, "console_size": null,
            "runtime": "Builtin"
        });
        std::fs::write(dir.path().join(CONFIG_FILE), config.to_string()).expect("write");
        let loaded = load_config(dir.path()).expect("load");
        assert_eq!(loaded.id, "abc");
        config["version"] = serde_json::json!(PROTOCOL_VERSION + 1);
        std::fs::write(dir.path().join(CONFIG_FILE), config.to_string()).expect("write");
        assert!(matches!(
            load_config(dir.path()),
            Err(MonitorError::UnsupportedVersion { .. })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE), "{").expect("write");
        assert!(matches!(
            load_config(dir.path()),
            Err(MonitorError::ParseConfig { .. })
        ));
        assert!(matches!(
            load_config(&dir.path().join("missing")),
            Err(MonitorError::ReadConfig { .. })
        ));
    }

    #[test]
    fn exit_file_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(EXIT_FILE), "garbage").expect("seed");
        let exit = ExitStatus {
            exit_code: 137,
            finished_at: "2026-11-28T13:51:03Z".into(),
            oom_killed: true,
            error: None,
        };
        write_exit_file(dir.path(), &exit).expect("write");
        let read: ExitStatus =
            serde_json::from_slice(&std::fs::read(dir.path().join(EXIT_FILE)).expect("read"))
                .expect("parse");
        assert_eq!(read, exit);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, [std::ffi::OsString::from(EXIT_FILE)]);
    }

    #[test]
    fn slow_clients_are_dropped_not_waited_for() {
        let (server, client) = UnixStream::pair().expect("pair");
        server.set_nonblocking(true).expect("nonblocking");
        let mut conn = Conn {
            id: 1,
            stream: server,
            request: Vec::new(),
            out: Vec::new(),
            role: Role::Attach {
                stdin: false,
                stdout: true,
                stderr: true,
            },
            read_closed: false,
            close_when_flushed: false,
            dead: false,
        };
        let chunk = vec![b'x'; READ_BUFFER];
        let mut frames = 0;
        while !conn.dead {
            conn.push_frame(1, &chunk);
            frames += 1;
            assert!(conn.out.len() <= MAX_CLIENT_BUFFER);
            assert!(frames < 1000, "never dropped");
        }
        drop(client);
    }

    #[test]
    fn responses_are_lines_and_close_after_flush() {
        let (server, mut client) = UnixStream::pair().expect("pair");
        server.set_nonblocking(true).expect("nonblocking");
        let mut conn = Conn {
            id: 1,
            stream: server,
            request: Vec::new(),
            out: Vec::new(),
            role: Role::Request,
            read_closed: false,
            close_when_flushed: false,
            dead: false,
        };
        conn.respond_and_close(&Response::Ok);
        assert!(conn.dead, "flushed at once, so closed");
        drop(conn);
        let mut got = String::new();
        client.read_to_string(&mut got).expect("read");
        assert_eq!(got, "{\"result\":\"ok\"}\n");
    }
}
