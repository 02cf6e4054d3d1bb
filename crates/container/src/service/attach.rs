//! `attach`, `logs` and `resize`: a container's stdio, live (through its monitor) or replayed
//! from its json-file log.

use berth_monitor::protocol::{self, Request, Response};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::entry::PendingAttach;
use super::{BoxConn, ContainerService, Result, blocking, invalid};
use crate::ContainerError;
use crate::logs::{LogChunk, LogStream, LogsOptions};
use crate::monitor::{Conversation, call_ok};

/// `attach` options.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Forward the client's input to the container's stdin.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
    /// Stream live output.
    pub stream: bool,
    /// Replay the logs first.
    pub logs: bool,
    /// Detach key sequence, e.g. `ctrl-p,ctrl-q`.
    pub detach_keys: Option<String>,
}

/// The monitor connection an attachment reads from: ready now, or handed over at start.
#[derive(Debug)]
pub(super) enum AttachSource {
    Ready(Conversation),
    Pending(oneshot::Receiver<Conversation>),
    /// Nothing to stream (stream=false): only the log replay, if any.
    None,
}

/// A validated attach request, ready to be run on the hijacked connection.
#[derive(Debug)]
pub struct Attachment {
    /// The container has a TTY (raw stream) or not (multiplexed).
    pub tty: bool,
    pub(super) options: AttachOptions,
    pub(super) source: AttachSource,
    pub(super) backlog: Vec<LogChunk>,
    /// Looked for on the input of a TTY only, as dockerd's `CopyStreams`.
    pub(super) detach_keys: Vec<u8>,
}

impl Attachment {
    /// Pumps output to `conn` (framed unless TTY) and input from it, until the container exits
    /// or the client detaches; then closes `conn`.
    pub async fn run(self, conn: BoxConn) {
        use tokio::io::AsyncWriteExt;
        let (client_rd, mut client_wr) = tokio::io::split(conn);
        for c in &self.backlog {
            let bytes = if self.tty {
                c.data.to_vec()
            } else {
                berth_api::stdcopy::frame(c.stream, &c.data)
            };
            if client_wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let conv = match self.source {
            AttachSource::Ready(c) => c,
            AttachSource::Pending(rx) => match rx.await {
                Ok(c) => c,
                Err(_) => {
                    // Closing a client's stream: if it is gone already, so much the better.
                    let _ = client_wr.shutdown().await;
                    return;
                }
            },
            AttachSource::None => {
                // As above: the end of the stream; a client already gone needs no end.
                let _ = client_wr.shutdown().await;
                return;
            }
        };
        pump(
            conv,
            client_rd,
            client_wr,
            self.tty,
            self.options.stdin,
            self.detach_keys,
            None,
        )
        .await;
    }
}

/// Copies monitor frames to the client and client bytes to the monitor. Returns the exit code
/// carried by an exit frame, if one came.
/// What a session does with its exit code, called synchronously as the exit frame is read.
pub(super) type OnExit = Box<dyn FnOnce(i32) + Send>;

pub(super) async fn pump(
    conv: Conversation,
    mut client_rd: tokio::io::ReadHalf<BoxConn>,
    mut client_wr: tokio::io::WriteHalf<BoxConn>,
    tty: bool,
    stdin: bool,
    detach_keys: Vec<u8>,
    on_exit: Option<OnExit>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Conversation {
        mut reader,
        mut writer,
    } = conv;
    let output = async move {
        let mut on_exit = on_exit;
        let mut header = [0u8; 8];
        let mut buf = Vec::new();
        loop {
            if reader.read_exact(&mut header).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            buf.resize(len, 0);
            if reader.read_exact(&mut buf).await.is_err() {
                break;
            }
            if header[0] == protocol::EXIT_FRAME {
                if let (Some(record), Ok(b)) = (on_exit.take(), <[u8; 4]>::try_from(&buf[..])) {
                    // Recorded here, before the client's stream can end: a client that
                    // inspects the exec as soon as its output closes sees the code.
                    record(i32::from_be_bytes(b));
                }
                continue;
            }
            let res = if tty {
                client_wr.write_all(&buf).await
            } else {
                match client_wr.write_all(&header).await {
                    Ok(()) => client_wr.write_all(&buf).await,
                    Err(e) => Err(e),
                }
            };
            if res.is_err() {
                break;
            }
        }
        // The end of the output: errors here mean the client went first.
        let _ = client_wr.flush().await;
        let _ = client_wr.shutdown().await;
    };
    let input = async move {
        if !stdin {
            // Keep the write half open: the monitor reads a half-close as stdin EOF.
            std::future::pending::<()>().await;
        }
        let mut buf = vec![0u8; 16 * 1024];
        let mut matched = 0usize;
        loop {
            let n = match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut out = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if !detach_keys.is_empty() && b == detach_keys[matched] {
                    matched += 1;
                    if matched == detach_keys.len() {
                        // Detaching: the bytes before the keys go if the monitor still reads.
                        let _ = writer.write_all(&out).await;
                        return true;
                    }
                    continue;
                }
                out.extend_from_slice(&detach_keys[..matched]);
                matched = 0;
                out.push(b);
            }
            if writer.write_all(&out).await.is_err() {
                break;
            }
        }
        // Stdin EOF for the monitor; if it is gone, the output side ends too.
        let _ = writer.shutdown().await;
        // Stdin is done; output goes on until the process exits.
        std::future::pending::<()>().await;
        false
    };
    tokio::select! {
        _ = output => {}
        _detached = input => {}
    }
}

/// How the log file of a container's driver is written.
fn log_format(log: Option<&berth_api::models::HostConfigLogConfig>) -> crate::logs::Format {
    if crate::log_driver::is_local(log) {
        crate::logs::Format::Local
    } else {
        crate::logs::Format::JsonFile
    }
}

impl ContainerService {
    /// `GET /containers/{id}/logs`.
    pub async fn logs(&self, reference: &str, options: LogsOptions) -> Result<LogStream> {
        let entry = self.lookup(reference)?;
        let (tty, log, format) = {
            let rec = entry.rec.lock().await;
            let log_config = rec.host_config.log_config.as_ref();
            if !crate::log_driver::readable(log_config) {
                return Err(invalid(crate::log_driver::NOT_READABLE));
            }
            (
                rec.config.tty.unwrap_or(false),
                crate::log_driver::log_file(&entry.paths.data_dir, &rec.id, log_config),
                log_format(log_config),
            )
        };
        let (tx, rx) = mpsc::channel(64);
        let life = entry.life.subscribe();
        tokio::spawn(crate::logs::stream(log, format, options, life, tx));
        Ok(LogStream { tty, rx })
    }

    /// `POST /containers/{id}/attach`: validates, then the daemon answers 101 and runs it.
    ///
    /// The live side is connected (or parked until the next start) under the record lock;
    /// the log replay (`logs=1`, up to the whole rotated log) is read afterwards, on a
    /// blocking thread, with the lock released.
    pub async fn attach(&self, reference: &str, options: AttachOptions) -> Result<Attachment> {
        let entry = self.lookup(reference)?;
        let keys =
            berth_api::convention::detach_keys(options.detach_keys.as_deref()).map_err(|_| {
                invalid(berth_api::convention::invalid_detach_keys(
                    options.detach_keys.as_deref().unwrap_or_default(),
                ))
            })?;
        let (tty, stdin, source, log) = {
            let rec = entry.rec.lock().await;
            let tty = rec.config.tty.unwrap_or(false);
            let stdin = options.stdin && rec.config.open_stdin.unwrap_or(false);
            let request = Request::Attach {
                stdin,
                stdout: options.stdout,
                stderr: options.stderr,
            };
            let source = if !options.stream {
                AttachSource::None
            } else if rec.state.status.is_alive() {
                match self.monitor.call(&entry.paths.socket(), &request).await? {
                    (Response::Ok, conv) => AttachSource::Ready(conv),
                    (other, _) => {
                        return Err(ContainerError::MonitorProtocol {
                            response: format!("{other:?}"),
                        });
                    }
                }
            } else {
                let (tx, rx) = oneshot::channel();
                entry
                    .pending_attach
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(PendingAttach { request, tx });
                AttachSource::Pending(rx)
            };
            self.publish(&rec, "attach", &[]);
            let log_config = rec.host_config.log_config.as_ref();
            let log = crate::log_driver::readable(log_config).then(|| {
                (
                    crate::log_driver::log_file(&entry.paths.data_dir, &rec.id, log_config),
                    log_format(log_config),
                )
            });
            (tty, stdin, source, log)
        };
        let backlog = if let (true, Some((log, format))) = (options.logs, log) {
            let o = LogsOptions {
                stdout: options.stdout,
                stderr: options.stderr,
                ..Default::default()
            };
            let (lines, _) = blocking(move || crate::logs::read_backlog(&log, format, &o)).await?;
            lines
                .into_iter()
                .map(|l| LogChunk {
                    stream: l.stream,
                    data: Bytes::from(l.text),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Attachment {
            tty,
            options: AttachOptions { stdin, ..options },
            source,
            backlog,
            detach_keys: if tty { keys } else { Vec::new() },
        })
    }

    /// `POST /containers/{id}/resize?h=&w=`.
    pub async fn resize(&self, reference: &str, height: u16, width: u16) -> Result<()> {
        let entry = self.lookup(reference)?;
        {
            let rec = entry.rec.lock().await;
            rec.state.status.require_alive(&rec.id)?;
            // Without a TTY there is nothing to size: Docker answers 200 too (containerd's
            // shim ignores a resize of a process without a console).
            if !rec.config.tty.unwrap_or(false) {
                return Ok(());
            }
        }
        call_ok(
            &*self.monitor,
            &entry.paths.socket(),
            &Request::Resize { height, width },
        )
        .await
    }
}
