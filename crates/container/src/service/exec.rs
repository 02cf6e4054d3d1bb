//! `exec`: processes started in a running container through its monitor, and their state.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::models::{EventMessageTypeEnum, ExecConfig, ExecInspectResponse, ExecStartConfig};
use berth_api::stdcopy::StreamType;
use berth_monitor::protocol::{self, Request, Response};

use super::attach::{OnExit, pump};
use super::{BoxConn, ContainerService, Result, blocking, conflict, invalid};
use crate::monitor::{Conversation, Monitor, call_ok};
use crate::store::{self, Record};
use crate::{ContainerError, EventBus, spec};

/// A started exec, ready to be run on the hijacked connection.
#[derive(Debug)]
pub struct ExecSession {
    /// The exec has a TTY.
    pub tty: bool,
    pub(super) exec: Arc<ExecEntry>,
    pub(super) socket: PathBuf,
    pub(super) request: protocol::ExecRequest,
    pub(super) detach_keys: Vec<u8>,
    pub(super) events: EventBus,
    pub(super) attrs: HashMap<String, String>,
    pub(super) monitor: Arc<dyn Monitor>,
}

/// Writes a last message to an exec's client and closes its stream. The client may be
/// gone already: then there is no one to tell, and the errors are dropped.
async fn tell_and_close(conn: Option<BoxConn>, bytes: Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    if let Some(mut c) = conn {
        let _ = c.write_all(&bytes).await;
        let _ = c.shutdown().await;
    }
}

impl ExecSession {
    /// Pumps the exec's stdio over `conn` until it exits (None for a detached exec), recording
    /// the exit code before closing the stream.
    pub async fn run(self, conn: Option<BoxConn>) {
        let stdin = self.request.attach_stdin && conn.is_some();
        let req = Request::Exec(Box::new(self.request.clone()));
        let (pid, conv) = match self.monitor.call(&self.socket, &req).await {
            Ok((Response::ExecStarted { pid }, conv)) => (pid, conv),
            Ok((resp, _)) => {
                let (message, code) = match resp {
                    Response::Error { message, exit_code } => (message, exit_code.unwrap_or(126)),
                    other => (format!("unexpected monitor response {other:?}"), 126),
                };
                self.exec.finish(i64::from(code));
                let msg = format!("OCI runtime exec failed: {message}\r\n");
                let bytes = if self.tty {
                    msg.into_bytes()
                } else {
                    berth_api::stdcopy::frame(StreamType::Stdout, msg.as_bytes())
                };
                return tell_and_close(conn, bytes).await;
            }
            Err(e) => {
                self.exec.finish(126);
                let msg = format!("{e}\r\n");
                let bytes = berth_api::stdcopy::frame(StreamType::Stderr, msg.as_bytes());
                return tell_and_close(conn, bytes).await;
            }
        };
        {
            let mut st = self.exec.state.lock().unwrap_or_else(|p| p.into_inner());
            st.running = true;
            st.pid = i64::from(pid);
        }
        let mut attrs = self.attrs.clone();
        attrs.insert("execID".into(), self.exec.id.clone());
        self.events.publish(
            EventMessageTypeEnum::CONTAINER,
            &format!("exec_start: {}", self.exec.cmdline()),
            &self.exec.container_id,
            attrs.clone(),
        );
        self.pump_to_exit(conn, conv, stdin).await;
        attrs.insert("exitCode".into(), self.exec.exit_code().to_string());
        self.events.publish(
            EventMessageTypeEnum::CONTAINER,
            "exec_die",
            &self.exec.container_id,
            attrs,
        );
    }

    /// Streams until the exec's exit frame and records its code before the client's stream
    /// closes (the client inspects the exec right after): the code is recorded by the reader
    /// of the monitor's frames, synchronously, before it ends the client's output.
    async fn pump_to_exit(&self, conn: Option<BoxConn>, conv: Conversation, stdin: bool) {
        let exec = self.exec.clone();
        let record: OnExit = Box::new(move |code| exec.finish(i64::from(code)));
        match conn {
            Some(c) => {
                let (rd, wr) = tokio::io::split(c);
                let keys = self.detach_keys.clone();
                pump(conv, rd, wr, self.tty, stdin, keys, Some(record)).await;
            }
            None => drain_exec(conv, record).await,
        }
        // The monitor closed without an exit frame: the container went away.
        if self
            .exec
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running
        {
            self.exec.finish(137);
        }
    }
}

pub(super) async fn drain_exec(conv: Conversation, record: OnExit) {
    use tokio::io::AsyncReadExt;
    let Conversation { mut reader, writer } = conv;
    let _keep_stdin_open = writer;
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    while reader.read_exact(&mut header).await.is_ok() {
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(len, 0);
        if reader.read_exact(&mut buf).await.is_err() {
            break;
        }
        if header[0] == protocol::EXIT_FRAME
            && let Ok(b) = <[u8; 4]>::try_from(&buf[..])
        {
            record(i32::from_be_bytes(b));
            return;
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct ExecState {
    pub(super) started: bool,
    pub(super) running: bool,
    pub(super) exit_code: Option<i64>,
    pub(super) pid: i64,
}

/// One exec instance.
#[derive(Debug)]
pub(crate) struct ExecEntry {
    pub(super) id: String,
    pub(super) container_id: String,
    pub(super) config: ExecConfig,
    pub(super) state: std::sync::Mutex<ExecState>,
}

impl ExecEntry {
    pub(super) fn finish(&self, code: i64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.running = false;
        st.exit_code = Some(code);
    }
    pub(super) fn exit_code(&self) -> i64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .exit_code
            .unwrap_or(0)
    }
    pub(super) fn cmdline(&self) -> String {
        self.config.cmd.clone().unwrap_or_default().join(" ")
    }
}

impl ContainerService {
    /// `POST /containers/{id}/exec`; returns the exec id.
    pub async fn exec_create(&self, reference: &str, config: ExecConfig) -> Result<String> {
        let entry = self.lookup(reference)?;
        let rec = entry.rec.lock().await;
        rec.state.status.can_exec(&rec.id)?;
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(invalid("No exec command specified"));
        }
        if let Some(keys) = config.detach_keys.as_deref() {
            // Docker's words (daemon/exec.go), nothing created.
            berth_api::convention::detach_keys(Some(keys))
                .map_err(|_| invalid(format!("Invalid escape keys ({keys}) provided")))?;
        }
        let id = store::new_id();
        let exec = Arc::new(ExecEntry {
            id: id.clone(),
            container_id: rec.id.clone(),
            config,
            state: Default::default(),
        });
        let cmd = exec.cmdline();
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), exec);
        self.publish(
            &rec,
            &format!("exec_create: {cmd}"),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    pub(super) fn exec_entry(&self, exec_id: &str) -> Result<Arc<ExecEntry>> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(exec_id)
            .cloned()
            .ok_or_else(|| ContainerError::ExecNotFound {
                id: exec_id.to_string(),
            })
    }

    /// `POST /exec/{id}/start`: starts the process; the daemon then runs the session.
    pub async fn exec_start(&self, exec_id: &str, config: ExecStartConfig) -> Result<ExecSession> {
        let exec = self.exec_entry(exec_id)?;
        let entry = self.lookup(&exec.container_id)?;
        let rec = entry.rec.lock().await.clone();
        rec.state.status.can_exec_start(&rec.id)?;
        let base = entry
            .process
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| conflict(format!("Container {} is not running", rec.id)))?;
        let c = &exec.config;
        // As dockerd: exec-create's Tty decides (the start request's is the client's business).
        let tty = c.tty.unwrap_or(false);
        let size = spec::console_size(config.console_size.as_ref().or(c.console_size.as_ref()));
        let process = self.exec_process(&rec, &base, c, tty, size).await?;
        {
            let mut st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.started {
                return Err(conflict(format!(
                    "Error: Exec command {exec_id} is already running"
                )));
            }
            st.started = true;
        }
        Ok(ExecSession {
            tty,
            exec: exec.clone(),
            socket: entry.paths.socket(),
            request: protocol::ExecRequest {
                process,
                attach_stdin: c.attach_stdin.unwrap_or(false),
                console_size: size,
            },
            // As dockerd's CopyStreams: the keys are looked for only on a TTY's input.
            detach_keys: if tty {
                berth_api::convention::detach_keys(c.detach_keys.as_deref()).unwrap_or_default()
            } else {
                Vec::new()
            },
            events: self.events.clone(),
            attrs: Self::attrs(&rec),
            monitor: self.monitor.clone(),
        })
    }

    /// The exec's process: the container's, with the exec's command, env, cwd, user,
    /// terminal and (`--privileged`) capabilities.
    async fn exec_process(
        &self,
        rec: &Record,
        base: &berth_runtime::Process,
        c: &ExecConfig,
        tty: bool,
        size: Option<(u16, u16)>,
    ) -> Result<berth_runtime::Process> {
        let mut process = base.clone();
        process.set_args(Some(c.cmd.clone().unwrap_or_default()));
        process.set_terminal(Some(tty));
        let mut env: Vec<String> = process.env().clone().unwrap_or_default();
        for kv in c.env.iter().flatten() {
            let k = kv.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(k));
            env.push(kv.clone());
        }
        if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        process.set_env(Some(env));
        if let Some(w) = c.working_dir.as_ref().filter(|w| !w.is_empty()) {
            process.set_cwd(PathBuf::from(w));
        }
        if let Some(u) = c.user.clone().filter(|u| !u.is_empty()) {
            let rootfs = self.images.rootfs(&rec.id, &rec.image_id)?;
            // passwd and group of every layer: disk reads, off the async threads.
            let group_add = rec.host_config.group_add.clone().unwrap_or_default();
            let user = blocking(move || {
                let mut user = spec::resolve_user(&u, &rootfs)?;
                spec::add_groups(&mut user, &group_add, &rootfs)?;
                Ok::<_, ContainerError>(user)
            })
            .await??;
            process.set_user(spec::oci_user(&user));
        }
        if c.privileged.unwrap_or(false) {
            process.set_capabilities(Some(spec::process_capabilities(&spec::all_capabilities())?));
        }
        if let Some(size) = size {
            process.set_console_size(Some(spec::console_box(size)?));
        }
        Ok(process)
    }

    /// `GET /exec/{id}/json`.
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        let exec = self.exec_entry(exec_id)?;
        let st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
        let c = &exec.config;
        let cmd = c.cmd.clone().unwrap_or_default();
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            detach_keys: Some(c.detach_keys.clone().unwrap_or_default()),
            id: Some(exec.id.clone()),
            running: Some(st.running),
            exit_code: st.exit_code,
            process_config: Some(berth_api::models::ProcessConfig {
                privileged: Some(c.privileged.unwrap_or(false)),
                user: Some(c.user.clone().unwrap_or_default()),
                tty: Some(c.tty.unwrap_or(false)),
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: Some(c.attach_stdin.unwrap_or(false)),
            open_stderr: Some(c.attach_stderr.unwrap_or(false)),
            open_stdout: Some(c.attach_stdout.unwrap_or(false)),
            container_id: Some(exec.container_id.clone()),
            pid: Some(st.pid),
        })
    }

    /// `POST /exec/{id}/resize?h=&w=`.
    pub async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let exec = self.exec_entry(exec_id)?;
        let pid = exec.state.lock().unwrap_or_else(|p| p.into_inner()).pid as i32;
        let entry = self.lookup(&exec.container_id)?;
        call_ok(
            &*self.monitor,
            &entry.paths.socket(),
            &Request::ExecResize { pid, height, width },
        )
        .await
    }
}
