//! The protocol between the daemon and a monitor, over `<run_dir>/monitor.sock`.
//!
//! A client connects, writes one [`Request`] as a JSON line, and reads one [`Response`] JSON
//! line. After an `Ok` to `Attach` or `ExecStarted` to `Exec`, the connection becomes a stream:
//! monitor → client carries frames `[stream, 0, 0, 0, len u32 BE] payload` (stream 1 stdout,
//! 2 stderr; a TTY's output is all stream 1), and for exec a last frame of stream
//! [`EXIT_FRAME`] whose 4-byte BE payload is the exit code; client → monitor carries raw stdin.
//! A client's write half-close means stdin EOF. The monitor closes the stream once the process
//! exited and its output was flushed.
//!
//! The protocol is versioned ([`PROTOCOL_VERSION`]) so a newer daemon can drive older monitors.
//! A daemon that finds a running monitor it did not start (after a restart or an upgrade)
//! first sends [`Request::Hello`]; the monitor answers [`Response::Hello`] with the version it
//! speaks. Version 1 monitors predate the handshake and answer it with an `Error` naming the
//! unknown `hello` variant: that answer means version 1. [`monitor_version`] reads the answer:
//! a version between [`OLDEST_PROTOCOL_VERSION`] and [`PROTOCOL_VERSION`] is spoken in that
//! version; anything else (a newer monitor, a line that is not an answer of ours) is refused,
//! never guessed at. Monitors this daemon spawned speak its own version (same binary).
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Bumped on every change of the protocol: 2 added [`Request::Hello`].
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest version this berth still speaks (the monitors of the previous release).
pub const OLDEST_PROTOCOL_VERSION: u32 = 1;
/// Stream id of the exec exit-code frame.
pub const EXIT_FRAME: u8 = 4;
/// File names inside a run dir.
pub const CONFIG_FILE: &str = "monitor.json";
/// The monitor's socket.
pub const SOCKET_FILE: &str = "monitor.sock";
/// The monitor's pid.
pub const PID_FILE: &str = "monitor.pid";
/// Written atomically when the container exited: an [`ExitStatus`].
pub const EXIT_FILE: &str = "exit.json";
/// The OCI runtime spec of the container.
pub const SPEC_FILE: &str = "config.json";

/// How the monitor starts the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeKind {
    /// berth's own runtime, in process.
    Builtin,
    /// An external OCI runtime binary (runc's CLI contract).
    External(PathBuf),
}

/// Everything a monitor needs, written by the daemon to `<run_dir>/monitor.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// Protocol version the daemon speaks.
    pub version: u32,
    /// Container id (64 hex).
    pub id: String,
    /// The run dir (also the OCI bundle: `config.json` is here).
    pub run_dir: PathBuf,
    /// The overlay root the init mounts (builtin runtime), or the external runtime expects
    /// mounted at the bundle's rootfs (the monitor mounts and unmounts it then).
    pub rootfs: Option<berth_runtime::OverlayMount>,
    /// The log file's path (`json-file`, `local`).
    pub log_path: PathBuf,
    /// The logging driver (`json-file` when absent, as older daemons wrote no field).
    #[serde(default)]
    pub log_driver: crate::logdriver::LogDriver,
    /// Rotate the log at this size (bytes); 0 = never.
    pub log_max_size: u64,
    /// Keep this many log files in all.
    pub log_max_files: u32,
    /// What happens to output the log cannot take yet (`--log-opt mode=`).
    #[serde(default)]
    pub log_mode: crate::logfile::LogMode,
    /// The most bytes of log entries held unwritten (`--log-opt max-buffer-size=`); default
    /// [`crate::logfile::DEFAULT_MAX_BUFFER`].
    #[serde(default)]
    pub log_max_buffer_size: Option<u64>,
    /// Allocate a pty.
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client's stdin ends.
    pub stdin_once: bool,
    /// Initial pty size (height, width).
    pub console_size: Option<(u16, u16)>,
    /// Which runtime starts the container.
    pub runtime: RuntimeKind,
    /// The `RLIMIT_NOFILE` (soft, hard) the daemon was started with (it raises its own): the
    /// monitor takes it back before creating the container, whose processes inherit it.
    #[serde(default)]
    pub nofile_limit: Option<(u64, u64)>,
}

/// The first line the monitor writes on its stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    /// Pid of the container init (0 on error).
    pub pid: i32,
    /// Set when the container could not be created.
    pub error: Option<String>,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code (128 + signal when killed by a signal).
    pub exit_code: i32,
    /// RFC3339Nano UTC time of the exit.
    pub finished_at: String,
    /// The kernel OOM-killed it.
    pub oom_killed: bool,
    /// An error that prevented it from running, if any.
    pub error: Option<String>,
}

/// A process to exec in the running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The OCI process (args, env, cwd, user, capabilities, terminal, …).
    pub process: berth_runtime::Process,
    /// Forward the client's stdin.
    pub attach_stdin: bool,
    /// Initial pty size (height, width), when `process.terminal`.
    pub console_size: Option<(u16, u16)>,
}

/// A request from the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Which protocol version do you speak? → `Hello` (version 1 monitors: `Error`).
    Hello {
        /// The version the daemon speaks.
        version: u32,
    },
    /// Let the init exec. → `Started` or `Error`.
    Start,
    /// Stream output (and take input). → `Ok`, then the stream.
    Attach {
        /// Forward input to the container's stdin.
        stdin: bool,
        /// Send stdout.
        stdout: bool,
        /// Send stderr.
        stderr: bool,
    },
    /// Block until the container exits. → `Exited`.
    Wait,
    /// Resize the container's pty. → `Ok`.
    Resize {
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
    /// Send a signal to the init. → `Ok` or `Error`.
    Kill {
        /// Signal number.
        signal: i32,
    },
    /// Where the container is. → `State`.
    State,
    /// Run a process in the container. → `ExecStarted` or `Error`, then the stream.
    Exec(Box<ExecRequest>),
    /// Resize an exec's pty. → `Ok`.
    ExecResize {
        /// The exec's pid, from `ExecStarted`.
        pid: i32,
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
}

/// The container's status as the monitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Init waiting for `Start`.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited,
}

/// A response from the monitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The monitor's protocol version (the answer to `Hello`).
    Hello {
        /// The version the monitor speaks.
        version: u32,
    },
    /// Done.
    Ok,
    /// The init is running.
    Started {
        /// Init pid.
        pid: i32,
        /// RFC3339Nano start time.
        started_at: String,
    },
    /// The container exited.
    Exited(ExitStatus),
    /// State report.
    State {
        /// Status.
        status: Status,
        /// Init pid.
        pid: i32,
        /// RFC3339Nano start time, once started.
        started_at: Option<String>,
        /// Exit, once exited.
        exit: Option<ExitStatus>,
    },
    /// The exec runs with this pid.
    ExecStarted {
        /// Pid of the exec'd process.
        pid: i32,
    },
    /// Failed; `exit_code` is 126/127 for exec failures, as Docker reports them.
    Error {
        /// One line for the user.
        message: String,
        /// 126 or 127 when the process could not be executed.
        exit_code: Option<i32>,
    },
}

/// A monitor's answer to `Hello` that this berth cannot speak to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// It speaks a version this berth does not.
    #[error(
        "speaks monitor protocol version {version}, and this berth speaks versions {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"
    )]
    Unsupported {
        /// The monitor's version.
        version: u32,
    },
    /// It answered something that is not an answer of any version this berth knows.
    #[error(
        "answers in a monitor protocol this berth (versions {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}) does not know: {answer:?}"
    )]
    Unknown {
        /// The start of the answer.
        answer: String,
    },
}

/// The error a version 1 monitor answers `Hello` with starts so.
const V1_HELLO_ANSWER: &str = "invalid request: unknown variant `hello`";

/// The version a monitor speaks, from its answer line to [`Request::Hello`].
///
/// ```
/// use berth_monitor::protocol::{VersionError, monitor_version};
///
/// assert_eq!(monitor_version(r#"{"result":"hello","version":2}"#), Ok(2));
/// // A version 1 monitor does not know the request.
/// let v1 = r#"{"result":"error","message":"invalid request: unknown variant `hello`, expected one of `start`","exit_code":null}"#;
/// assert_eq!(monitor_version(v1), Ok(1));
/// assert_eq!(
///     monitor_version(r#"{"result":"hello","version":9}"#),
///     Err(VersionError::Unsupported { version: 9 })
/// );
/// assert!(matches!(monitor_version("HELLO 3"), Err(VersionError::Unknown { .. })));
/// ```
pub fn monitor_version(answer: &str) -> Result<u32, VersionError> {
    match serde_json::from_str::<Response>(answer) {
        Ok(Response::Hello { version })
            if (OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) =>
        {
            Ok(version)
        }
        Ok(Response::Hello { version }) => Err(VersionError::Unsupported { version }),
        Ok(Response::Error { message, .. }) if message.starts_with(V1_HELLO_ANSWER) => Ok(1),
        _ => Err(VersionError::Unknown {
            answer: answer.trim().chars().take(80).collect(),
        }),
    }
}

/// Stream id of stdout frames.
pub const STDOUT_FRAME: u8 = 1;
/// Stream id of stderr frames.
pub const STDERR_FRAME: u8 = 2;
/// Length of a frame header.
pub const FRAME_HEADER_LEN: usize = 8;

/// Appends one frame `[stream, 0, 0, 0, len u32 BE] payload` to `out`.
///
/// ```
/// use berth_monitor::protocol::{STDOUT_FRAME, decode_frame_header, encode_frame};
///
/// let mut out = Vec::new();
/// encode_frame(&mut out, STDOUT_FRAME, b"hi\n");
/// let header: [u8; 8] = out[..8].try_into().expect("8 bytes");
/// assert_eq!(decode_frame_header(header), (STDOUT_FRAME, 3));
/// assert_eq!(&out[8..], b"hi\n");
/// ```
pub fn encode_frame(out: &mut Vec<u8>, stream: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("frames carry at most one read buffer");
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Splits a frame header into (stream, payload length).
pub fn decode_frame_header(header: [u8; FRAME_HEADER_LEN]) -> (u8, u32) {
    (
        header[0],
        u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut out = Vec::new();
        encode_frame(&mut out, STDERR_FRAME, b"oops\n");
        encode_frame(&mut out, EXIT_FRAME, &127i32.to_be_bytes());
        assert_eq!(&out[..8], &[2, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&out[8..13], b"oops\n");
        let header: [u8; 8] = out[13..21].try_into().expect("8 bytes");
        assert_eq!(decode_frame_header(header), (EXIT_FRAME, 4));
        assert_eq!(&out[21..], &[0, 0, 0, 127]);
    }

    #[test]
    fn requests_and_config_parse_from_daemon_json() {
        let req: Request =
            serde_json::from_str(r#"{"op":"attach","stdin":true,"stdout":true,"stderr":false}"#)
                .expect("attach");
        assert!(matches!(
            req,
            Request::Attach {
                stdin: true,
                stdout: true,
                stderr: false
            }
        ));
        let req: Request = serde_json::from_str(
            r#"{"op":"exec","process":{"user":{"uid":0,"gid":0},"args":["hostname"],"cwd":"/"},"attach_stdin":false,"console_size":null}"#,
        )
        .expect("exec");
        let Request::Exec(exec) = req else {
            panic!("not an exec: {req:?}")
        };
        assert_eq!(
            exec.process.args().as_deref(),
            Some(&["hostname".to_string()][..])
        );
        let config: MonitorConfig = serde_json::from_str(
            r#"{"version":1,"id":"abc","run_dir":"/run/berth/abc","rootfs":null,
                "log_path":"/var/lib/berth/c/abc-json.log","log_max_size":20000000,
                "log_max_files":5,"tty":false,"open_stdin":true,"stdin_once":true,
                "console_size":[24,80],"runtime":{"External":"/usr/sbin/runc"}}"#,
        )
        .expect("config");
        assert_eq!(config.console_size, Some((24, 80)));
        assert_eq!(
            config.runtime,
            RuntimeKind::External(PathBuf::from("/usr/sbin/runc"))
        );
        let resp = serde_json::to_string(&Response::Error {
            message: "x".into(),
            exit_code: Some(127),
        })
        .expect("json");
        assert_eq!(resp, r#"{"result":"error","message":"x","exit_code":127}"#);
        let resp = serde_json::to_string(&Response::Exited(ExitStatus {
            exit_code: 0,
            finished_at: "t".into(),
            oom_killed: false,
            error: None,
        }))
        .expect("json");
        assert_eq!(
            resp,
            r#"{"result":"exited","exit_code":0,"finished_at":"t","oom_killed":false,"error":null}"#
        );
    }
}
