//! Container commands: run, create, start, attach, exec, logs, ps, inspect, and the lifecycle verbs.
use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::filters::filters_json;
use crate::format;
use crate::http::{Body, Client};
use crate::inspect::{self, InspectArgs};
use crate::opts::{self, CreateFlags};
use crate::stream::{self, Ended};
use crate::{CliError, CmdResult, tty};

/// `run`'s own flags beside the create flags.
#[derive(Debug, Args, Clone)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Proxy received signals to the process.
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    flags: CreateFlags,
}

/// `create`.
#[derive(Debug, Args, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    #[command(flatten)]
    flags: CreateFlags,
}

/// `ps`.
#[derive(Debug, Args, Clone)]
pub struct PsArgs {
    /// Show all containers.
    #[arg(short = 'a', long)]
    all: bool,
    /// Show the latest created container.
    #[arg(short = 'l', long)]
    latest: bool,
    /// Show n last created containers.
    #[arg(short = 'n', long = "last")]
    last: Option<i64>,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Display total file sizes.
    #[arg(short = 's', long)]
    size: bool,
    /// Filter output based on conditions provided.
    #[arg(short = 'f', long)]
    filter: Vec<String>,
    /// Format output using a Go template.
    #[arg(long)]
    format: Option<String>,
}

/// `logs`.
#[derive(Debug, Args, Clone)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end.
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps.
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Show logs since a timestamp or relative time.
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative time.
    #[arg(long)]
    until: Option<String>,
    /// Show extra details.
    #[arg(long)]
    details: bool,
    container: String,
}

/// `exec`.
#[derive(Debug, Args, Clone)]
pub struct ExecArgs {
    /// Detached mode.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep STDIN open.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    tty: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file")]
    env_file: Vec<String>,
    /// Username or UID.
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Working directory.
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Give extended privileges to the command.
    #[arg(long)]
    privileged: bool,
    /// Override the key sequence for detaching.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// `stats`.
#[derive(Debug, Args, Clone)]
pub struct StatsArgs {
    /// Show all containers.
    #[arg(short = 'a', long)]
    all: bool,
    /// Disable streaming stats and only pull the first result.
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Format output using a Go template.
    #[arg(long)]
    format: Option<String>,
    containers: Vec<String>,
}

/// `update`.
#[derive(Debug, Args, Clone)]
pub struct UpdateArgs {
    /// Memory limit.
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Swap limit.
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    cpus: Option<String>,
    /// CPU shares.
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// CPUs in which to allow execution.
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Pids limit.
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// MEMs in which to allow execution.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// CPU real-time period in microseconds.
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<i64>,
    /// CPU real-time runtime in microseconds.
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    /// Restart policy.
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Container commands at the top level.
#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Create and run a new container from an image.
    Run(RunArgs),
    /// Create a new container.
    Create(CreateArgs),
    /// Start one or more stopped containers.
    Start {
        /// Attach STDOUT/STDERR and forward signals.
        #[arg(short = 'a', long)]
        attach: bool,
        /// Attach container's STDIN.
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Override the key sequence for detaching.
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach local standard input, output, and error streams to a running container.
    Attach {
        /// Do not attach STDIN.
        #[arg(long = "no-stdin")]
        no_stdin: bool,
        /// Proxy all received signals to the process.
        #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
        sig_proxy: bool,
        /// Override the key sequence for detaching.
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        container: String,
    },
    /// Stop one or more running containers.
    Stop {
        /// Signal to send.
        #[arg(short = 's', long)]
        signal: Option<String>,
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", visible_alias = "timeout")]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers.
    Restart {
        /// Signal to send.
        #[arg(short = 's', long)]
        signal: Option<String>,
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", visible_alias = "timeout")]
        time: Option<i64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill one or more running containers.
    Kill {
        /// Signal to send.
        #[arg(short = 's', long)]
        signal: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers.
    Rm {
        /// Force the removal of a running container.
        #[arg(short = 'f', long)]
        force: bool,
        /// Remove anonymous volumes.
        #[arg(short = 'v', long)]
        volumes: bool,
        /// Remove the specified link.
        #[arg(short = 'l', long)]
        link: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Pause all processes within one or more containers.
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers.
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Block until one or more containers stop, then print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container.
    Rename { container: String, new_name: String },
    /// Update configuration of one or more containers.
    Update(UpdateArgs),
    /// List containers.
    Ps(PsArgs),
    /// Return low-level information on objects.
    Inspect(InspectArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// Display the running processes of a container.
    Top {
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Display a live stream of container resource usage statistics.
    Stats(StatsArgs),
    /// Export a container's filesystem as a tar archive.
    Export {
        /// Write to a file, instead of STDOUT.
        #[arg(short = 'o', long)]
        output: Option<String>,
        container: String,
    },
    /// Inspect changes to files or directories on a container's filesystem.
    Diff { container: String },
    /// List port mappings for the container.
    Port {
        container: String,
        port: Option<String>,
    },
}

/// `berth container …`.
#[derive(Debug, Subcommand)]
pub enum ContainerGroup {
    #[command(flatten)]
    Cmd(Box<ContainerCmd>),
    /// List containers.
    #[command(visible_alias = "list")]
    Ls(PsArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(crate::cp::CpArgs),
    /// Create a new image from a container's changes.
    Commit(crate::image::CommitArgs),
    /// Remove all stopped containers.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values.
        #[arg(long)]
        filter: Vec<String>,
    },
}

/// Runs `berth container …`.
pub fn run_group(c: &Client, g: ContainerGroup) -> CmdResult {
    match g {
        ContainerGroup::Cmd(cmd) => run(c, *cmd),
        ContainerGroup::Ls(a) => ps(c, a),
        ContainerGroup::Cp(a) => crate::cp::run(c, a),
        ContainerGroup::Commit(a) => crate::image::commit(c, a),
        ContainerGroup::Prune { force, filter } => prune(c, force, &filter),
    }
}

/// Runs a container command.
pub fn run(c: &Client, cmd: ContainerCmd) -> CmdResult {
    match cmd {
        ContainerCmd::Run(a) => run_container(c, a),
        ContainerCmd::Create(a) => {
            let (body, name) = opts::create_body(&a.flags)?;
            let id = create(c, &body, name.as_deref(), &a.flags)?;
            println!("{id}");
            Ok(0)
        }
        ContainerCmd::Start {
            attach,
            interactive,
            detach_keys,
            containers,
        } => {
            if attach || interactive {
                if containers.len() > 1 {
                    return Err(CliError::msg(
                        "you cannot start and attach multiple containers at once",
                    ));
                }
                return start_attached(c, &containers[0], interactive, detach_keys.as_deref());
            }
            post_each(c, &containers, "start", &[], "failed to start containers")
        }
        ContainerCmd::Attach {
            no_stdin,
            sig_proxy,
            detach_keys,
            container,
        } => attach(c, &container, no_stdin, sig_proxy, detach_keys.as_deref()),
        ContainerCmd::Stop {
            signal,
            time,
            containers,
        } => post_each(c, &containers, "stop", &stop_query(signal, time), ""),
        ContainerCmd::Restart {
            signal,
            time,
            containers,
        } => post_each(c, &containers, "restart", &stop_query(signal, time), ""),
        ContainerCmd::Kill { signal, containers } => {
            let q: Vec<(&str, String)> = signal.map(|s| vec![("signal", s)]).unwrap_or_default();
            post_each(c, &containers, "kill", &q, "")
        }
        ContainerCmd::Rm {
            force,
            volumes,
            link,
            containers,
        } => {
            // docker sends only the flags that are set, keys sorted.
            let q: Vec<(&str, String)> = [("force", force), ("link", link), ("v", volumes)]
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(k, _)| (k, "1".to_string()))
                .collect();
            each(
                &containers,
                |n| c.delete(&format!("/containers/{n}"), &q).map(|_| ()),
                "",
            )
        }
        ContainerCmd::Pause { containers } => post_each(c, &containers, "pause", &[], ""),
        ContainerCmd::Unpause { containers } => post_each(c, &containers, "unpause", &[], ""),
        ContainerCmd::Wait { containers } => wait(c, &containers),
        ContainerCmd::Rename {
            container,
            new_name,
        } => {
            c.post_empty(
                &format!("/containers/{container}/rename"),
                &[("name", new_name)],
            )?;
            Ok(0)
        }
        ContainerCmd::Update(a) => update(c, a),
        ContainerCmd::Ps(a) => ps(c, a),
        ContainerCmd::Inspect(a) => inspect::inspect(c, a),
        ContainerCmd::Logs(a) => logs(c, a),
        ContainerCmd::Exec(a) => exec(c, a),
        ContainerCmd::Top { container, ps_args } => top(c, &container, &ps_args),
        ContainerCmd::Stats(a) => stats(c, a),
        ContainerCmd::Export { output, container } => export(c, &container, output.as_deref()),
        ContainerCmd::Diff { container } => diff(c, &container),
        ContainerCmd::Port { container, port: p } => port(c, &container, p.as_deref()),
    }
}

/// `POST /containers/{name}/{verb}` for each container (see [`each`]).
fn post_each(
    c: &Client,
    containers: &[String],
    verb: &str,
    query: &[(&str, String)],
    summary: &str,
) -> CmdResult {
    each(
        containers,
        |n| {
            c.post_empty(&format!("/containers/{n}/{verb}"), query)
                .map(|_| ())
        },
        summary,
    )
}

/// `wait`: each container's exit code, one per line.
fn wait(c: &Client, containers: &[String]) -> CmdResult {
    let mut code = 0;
    for n in containers {
        match c
            .post_empty(&format!("/containers/{n}/wait"), &[])
            .and_then(|r| r.json::<Value>())
        {
            Ok(v) => println!("{}", v["StatusCode"].as_i64().unwrap_or(0)),
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn b(v: bool) -> String {
    if v { "1".into() } else { "0".into() }
}

fn stop_query(signal: Option<String>, time: Option<i64>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(s) = signal {
        q.push(("signal", s));
    }
    if let Some(t) = time {
        q.push(("t", t.to_string()));
    }
    q
}

/// Applies `f` to each name, printing it on success and the error otherwise (docker's style).
fn each(names: &[String], f: impl Fn(&str) -> Result<(), CliError>, summary: &str) -> CmdResult {
    let mut failed = Vec::new();
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("{e}");
                failed.push(n.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        if !summary.is_empty() {
            eprintln!("Error: {summary}: {}", failed.join(", "));
        }
        Ok(1)
    }
}

/// Creates a container; the image is pulled first as `--pull` says (`always`), or when it is
/// missing (`missing`, Docker's "Unable to find image … locally"), or never.
fn create(
    c: &Client,
    body: &berth_api::models::ContainerCreateBody,
    name: Option<&str>,
    f: &opts::CreateFlags,
) -> Result<String, CliError> {
    let image = f.image();
    let policy = f.pull.as_str();
    if !matches!(policy, "always" | "missing" | "never") {
        return Err(CliError::msg(format!(
            "invalid pull option: '{policy}': must be one of \"always\", \"missing\" or \"never\""
        ))
        .with_code(125));
    }
    let pull = || {
        crate::registry::pull_image(c, image, false, f.platform.as_deref(), f.quiet, true)
            .map_err(|e| e.with_code(125))
    };
    if policy == "always" {
        pull()?;
    }
    let mut q: Vec<(&str, String)> = name
        .map(|n| vec![("name", n.to_string())])
        .unwrap_or_default();
    if let Some(platform) = &f.platform {
        q.push(("platform", platform.clone()));
    }
    let json = serde_json::to_vec(body).map_err(|e| CliError::msg(e.to_string()))?;
    let mut resp = c.send(
        "POST",
        "/containers/create",
        &q,
        Body::Json(json.clone()),
        false,
    )?;
    if resp.status == 404 {
        let err = resp
            .check()
            .err()
            .unwrap_or_else(|| CliError::msg("No such image"));
        if policy != "missing" || !err.message.contains("No such image") {
            return Err(err.with_code(125));
        }
        let full =
            if image.contains('@') || image.rsplit('/').next().is_some_and(|l| l.contains(':')) {
                image.to_string()
            } else {
                format!("{image}:latest")
            };
        eprintln!("Unable to find image '{full}' locally");
        // hello-world is made here, offline, as `image bootstrap` makes it; the rest is pulled.
        if !crate::image::bootstrap_builtin(c, &full)? {
            pull()?;
        }
        resp = c.send("POST", "/containers/create", &q, Body::Json(json), false)?;
    }
    let v: Value = resp.check().map_err(|e| e.with_code(125))?.json()?;
    for w in v["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    Ok(v["Id"].as_str().unwrap_or_default().to_string())
}

/// Docker's mapping of start errors to exit codes.
fn start_error(e: CliError) -> CliError {
    let m = e.message.to_lowercase();
    let code = if m.contains("executable file not found") || m.contains("no such file or directory")
    {
        127
    } else if m.contains("permission denied") || m.contains("is a directory") {
        126
    } else {
        125
    };
    e.with_code(code)
}

/// Registers a waiter (its headers arrive before we start) and returns a thread yielding the code.
fn register_wait(
    c: &Client,
    id: &str,
    condition: &str,
) -> Result<std::thread::JoinHandle<i32>, CliError> {
    let resp = c
        .send(
            "POST",
            &format!("/containers/{id}/wait"),
            &[("condition", condition.to_string())],
            Body::Empty,
            false,
        )?
        .check()?;
    Ok(std::thread::spawn(move || {
        resp.json::<Value>()
            .ok()
            .and_then(|v| v["StatusCode"].as_i64())
            .unwrap_or(125) as i32
    }))
}

fn run_container(c: &Client, a: RunArgs) -> CmdResult {
    let f = &a.flags;
    let keys = if a.detach {
        None
    } else {
        stream::detach_keys(a.detach_keys.as_deref())?
    };
    let (mut body, name) = opts::create_body(f)?;
    if a.detach {
        // As docker's runContainer: a detached container has nothing attached.
        if !f.attach.is_empty() {
            return Err(CliError::msg("Conflicting options: -a and -d").with_code(125));
        }
        body.attach_stdin = Some(false);
        body.attach_stdout = Some(false);
        body.attach_stderr = Some(false);
        body.stdin_once = Some(false);
    }
    let id = create(c, &body, name.as_deref(), f)?;
    if a.detach {
        c.post_empty(&format!("/containers/{id}/start"), &[])
            .map_err(start_error)?;
        println!("{id}");
        return Ok(0);
    }
    let tty = f.tty;
    let stdin = f.interactive;
    let mut q = vec![("stream", "1".to_string())];
    let want = |s: &str| f.attach.is_empty() || f.attach.iter().any(|x| x.eq_ignore_ascii_case(s));
    if want("stdout") {
        q.push(("stdout", "1".into()));
    }
    if want("stderr") {
        q.push(("stderr", "1".into()));
    }
    if stdin {
        q.push(("stdin", "1".into()));
    }
    if let Some(k) = &keys {
        q.push(("detachKeys", k.clone()));
    }
    let conn = c.hijack(&format!("/containers/{id}/attach"), &q, None)?;
    let waiter = register_wait(c, &id, if f.rm { "removed" } else { "next-exit" })?;
    let raw = if tty && stdin && tty::stdin_is_tty() {
        tty::RawMode::enter()
    } else {
        None
    };
    if let Err(e) = c.post_empty(&format!("/containers/{id}/start"), &[]) {
        drop(raw);
        return Err(start_error(e));
    }
    if tty && tty::stdout_is_tty() {
        stream::follow_resizes(c, format!("/containers/{id}/resize"));
    }
    if !tty && a.sig_proxy {
        stream::proxy_signals(c, &id);
    }
    let ended = stream::session(conn, tty, stdin, stream::key_bytes(keys.as_deref()))
        .map_err(CliError::io)?;
    drop(raw);
    if ended == Ended::Detached {
        return Ok(0);
    }
    Ok(waiter.join().unwrap_or(125))
}

fn inspect_json(c: &Client, name: &str) -> Result<Value, CliError> {
    c.get(&format!("/containers/{name}/json"), &[])
}

fn start_attached(c: &Client, name: &str, interactive: bool, keys: Option<&str>) -> CmdResult {
    let keys = stream::detach_keys(keys)?;
    let info = inspect_json(c, name)?;
    let id = info["Id"].as_str().unwrap_or(name).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = interactive && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let q = attach_query(stdin, keys.as_deref());
    let conn = c.hijack(&format!("/containers/{id}/attach"), &q, None)?;
    let waiter = register_wait(c, &id, "next-exit")?;
    let raw = if tty && stdin && tty::stdin_is_tty() {
        tty::RawMode::enter()
    } else {
        None
    };
    c.post_empty(&format!("/containers/{id}/start"), &[])
        .map_err(start_error)?;
    if tty && tty::stdout_is_tty() {
        stream::follow_resizes(c, format!("/containers/{id}/resize"));
    }
    if !tty {
        stream::proxy_signals(c, &id);
    }
    let ended = stream::session(conn, tty, stdin, stream::key_bytes(keys.as_deref()))
        .map_err(CliError::io)?;
    drop(raw);
    if ended == Ended::Detached {
        return Ok(0);
    }
    Ok(waiter.join().unwrap_or(125))
}

/// The query of `POST /containers/{id}/attach` for a streaming attach.
fn attach_query(stdin: bool, detach_keys: Option<&str>) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("stream", "1".to_string()),
        ("stdout", "1".into()),
        ("stderr", "1".into()),
    ];
    if stdin {
        q.push(("stdin", "1".into()));
    }
    if let Some(k) = detach_keys {
        q.push(("detachKeys", k.to_owned()));
    }
    q
}

fn attach(
    c: &Client,
    name: &str,
    no_stdin: bool,
    sig_proxy: bool,
    keys: Option<&str>,
) -> CmdResult {
    let keys = stream::detach_keys(keys)?;
    let info = inspect_json(c, name)?;
    let id = info["Id"].as_str().unwrap_or(name).to_string();
    let state = &info["State"];
    if !state["Running"].as_bool().unwrap_or(false) {
        return Err(CliError::msg(
            "You cannot attach to a stopped container, start it first",
        ));
    }
    if state["Paused"].as_bool().unwrap_or(false) {
        return Err(CliError::msg(
            "You cannot attach to a paused container, unpause it first",
        ));
    }
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let q = attach_query(stdin, keys.as_deref());
    let waiter = register_wait(c, &id, "not-running")?;
    let conn = c.hijack(&format!("/containers/{id}/attach"), &q, None)?;
    let raw = if tty && stdin && tty::stdin_is_tty() {
        tty::RawMode::enter()
    } else {
        None
    };
    if tty && tty::stdout_is_tty() {
        stream::follow_resizes(c, format!("/containers/{id}/resize"));
    }
    if !tty && sig_proxy {
        stream::proxy_signals(c, &id);
    }
    let ended = stream::session(conn, tty, stdin, stream::key_bytes(keys.as_deref()))
        .map_err(CliError::io)?;
    drop(raw);
    if ended == Ended::Detached {
        return Ok(0);
    }
    Ok(waiter.join().unwrap_or(125))
}

fn exec(c: &Client, a: ExecArgs) -> CmdResult {
    let keys = stream::detach_keys(a.detach_keys.as_deref())?;
    let info = inspect_json(c, &a.container)?;
    let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(opts::read_kv_file(f)?);
    }
    env.extend(a.env.iter().cloned());
    let size = if a.tty {
        tty::size().map(|(h, w)| json!([h, w]))
    } else {
        None
    };
    let body = json!({
        "User": a.user.clone().unwrap_or_default(),
        "Privileged": a.privileged,
        "Tty": a.tty,
        "AttachStdin": a.interactive && !a.detach,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Detach": a.detach,
        "DetachKeys": keys.clone().unwrap_or_default(),
        "Env": env,
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Cmd": a.command,
        "ConsoleSize": size,
    });
    let v: Value = c
        .post(&format!("/containers/{id}/exec"), &[], Some(&body))?
        .json()?;
    let exec_id = v["Id"].as_str().unwrap_or_default().to_string();
    if a.detach {
        c.post(
            &format!("/exec/{exec_id}/start"),
            &[],
            Some(&json!({"Detach": true, "Tty": false})),
        )?;
        return Ok(0);
    }
    let start = json!({"Detach": false, "Tty": a.tty, "ConsoleSize": size});
    let conn = c.hijack(
        &format!("/exec/{exec_id}/start"),
        &[],
        Some(serde_json::to_vec(&start).map_err(|e| CliError::msg(e.to_string()))?),
    )?;
    let raw = if a.tty && a.interactive && tty::stdin_is_tty() {
        tty::RawMode::enter()
    } else {
        None
    };
    if a.tty && tty::stdout_is_tty() {
        stream::follow_resizes(c, format!("/exec/{exec_id}/resize"));
    }
    let ended = stream::session(
        conn,
        a.tty,
        a.interactive,
        stream::key_bytes(keys.as_deref()),
    )
    .map_err(CliError::io)?;
    drop(raw);
    if ended == Ended::Detached {
        return Ok(0);
    }
    let v: Value = c.get(&format!("/exec/{exec_id}/json"), &[])?;
    Ok(v["ExitCode"].as_i64().unwrap_or(0) as i32)
}

/// docker's `GetTimestamp` ([`berth_api::time::parse_timestamp`]) as the query value it sends.
fn timestamp(flag: &str, value: &str) -> Result<String, CliError> {
    berth_api::time::parse_timestamp(value, std::time::SystemTime::now())
        .map(|t| t.to_string())
        .map_err(|e| CliError::msg(format!("invalid value for \"{flag}\": {e}")))
}

fn logs(c: &Client, a: LogsArgs) -> CmdResult {
    let info = inspect_json(c, &a.container)?;
    let id = info["Id"].as_str().unwrap_or(&a.container).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let mut q = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".into()),
        ("tail", a.tail.clone()),
    ];
    if a.follow {
        q.push(("follow", "1".into()));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if a.details {
        q.push(("details", "1".into()));
    }
    if let Some(s) = &a.since {
        q.push(("since", timestamp("since", s)?));
    }
    if let Some(u) = &a.until {
        q.push(("until", timestamp("until", u)?));
    }
    let mut resp = c
        .send(
            "GET",
            &format!("/containers/{id}/logs"),
            &q,
            Body::Empty,
            false,
        )?
        .check()?;
    copy_output(&mut resp, tty)?;
    Ok(0)
}

/// Copies a log/attach body to stdout/stderr, demultiplexing unless TTY.
fn copy_output(r: &mut dyn std::io::Read, tty: bool) -> Result<(), CliError> {
    let out = std::io::stdout();
    let err = std::io::stderr();
    if tty {
        let mut buf = [0u8; 32 * 1024];
        loop {
            let n = r.read(&mut buf).map_err(CliError::io)?;
            if n == 0 {
                return Ok(());
            }
            let mut o = out.lock();
            let _ = o.write_all(&buf[..n]);
            let _ = o.flush();
        }
    }
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    while r.read_exact(&mut header).is_ok() {
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(len, 0);
        if r.read_exact(&mut buf).is_err() {
            break;
        }
        match header[0] {
            2 => {
                let mut e = err.lock();
                let _ = e.write_all(&buf);
                let _ = e.flush();
            }
            0 | 1 => {
                let mut o = out.lock();
                let _ = o.write_all(&buf);
                let _ = o.flush();
            }
            3 => {}
            n => return Err(CliError::msg(format!("Unrecognized input header: {n}"))),
        }
    }
    Ok(())
}

/// `ps -s`'s SIZE as the docker CLI shows it: the writable layer, and the virtual size beside
/// it when known (the daemon omits either when 0, as dockerd).
fn size_column(s: &Value) -> String {
    let rw = format::human_size(s["SizeRw"].as_f64().unwrap_or(0.0));
    match s["SizeRootFs"].as_f64().filter(|v| *v > 0.0) {
        Some(virt) => format!("{rw} (virtual {})", format::human_size(virt)),
        None => rw,
    }
}

fn ports_text(ports: &Value) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in ports.as_array().into_iter().flatten() {
        let priv_port = p["PrivatePort"].as_u64().unwrap_or(0);
        let typ = p["Type"].as_str().unwrap_or("tcp");
        match p["PublicPort"].as_u64() {
            Some(pubp) => {
                let ip = p["IP"].as_str().unwrap_or("0.0.0.0");
                let ip = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                out.push(format!("{ip}:{pubp}->{priv_port}/{typ}"));
            }
            None => out.push(format!("{priv_port}/{typ}")),
        }
    }
    out.join(", ")
}

/// The fields docker's ps templates see.
fn ps_fields(s: &Value, no_trunc: bool) -> Value {
    let id = s["Id"].as_str().unwrap_or("");
    let mut command = s["Command"].as_str().unwrap_or("").to_string();
    if !no_trunc && command.chars().count() > 20 {
        command = command.chars().take(19).collect::<String>() + "…";
    }
    let created = s["Created"].as_i64().unwrap_or(0);
    let names: Vec<String> = s["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    let labels: Vec<String> = s["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let image = s["Image"].as_str().unwrap_or("");
    let image = if image.starts_with("sha256:") && !no_trunc {
        format::short_id(image, false)
    } else {
        image.to_string()
    };
    json!({
        "ID": format::short_id(id, no_trunc),
        "Image": image,
        "Command": format!("\"{command}\""),
        "CreatedAt": chrono::DateTime::from_timestamp(created, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()).unwrap_or_default(),
        "RunningFor": format::ago(created),
        "Ports": ports_text(&s["Ports"]),
        "Status": s["Status"],
        "State": s["State"],
        "Size": size_column(s),
        "Names": names.join(","),
        "Labels": labels.join(","),
        "Mounts": "",
        "Networks": s["HostConfig"]["NetworkMode"],
    })
}

fn ps_header(name: &str) -> String {
    match name {
        "ID" => "CONTAINER ID".into(),
        "RunningFor" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        other => other.to_uppercase(),
    }
}

fn ps(c: &Client, a: PsArgs) -> CmdResult {
    // docker's query: only what is set, keys sorted.
    let mut q = Vec::new();
    if a.all {
        q.push(("all", "1".to_string()));
    }
    if !a.filter.is_empty() {
        q.push(("filters", filters_json(&a.filter)?));
    }
    let limit = if a.latest {
        Some(1)
    } else {
        a.last.filter(|n| *n > 0)
    };
    if let Some(l) = limit {
        q.push(("limit", l.to_string()));
    }
    if a.size {
        q.push(("size", "1".into()));
    }
    let list: Vec<Value> = c.get("/containers/json", &q)?;
    if a.quiet {
        let mut out = String::new();
        for s in &list {
            out.push_str(&format::short_id(
                s["Id"].as_str().unwrap_or(""),
                a.no_trunc,
            ));
            out.push('\n');
        }
        print!("{out}");
        return Ok(0);
    }
    let items: Vec<Value> = list.iter().map(|s| ps_fields(s, a.no_trunc)).collect();
    let fmt = format::parse_format(a.format.as_deref(), &ps_header)?;
    format::print_items(&fmt, &items, &|| {
        let mut rows = vec![
            vec![
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
        ];
        if a.size {
            rows[0].push("SIZE".into());
        }
        for i in &items {
            let mut r: Vec<String> = [
                "ID",
                "Image",
                "Command",
                "RunningFor",
                "Status",
                "Ports",
                "Names",
            ]
            .iter()
            .map(|k| i[*k].as_str().unwrap_or("").to_string())
            .collect();
            if a.size {
                r.push(i["Size"].as_str().unwrap_or("").to_string());
            }
            rows.push(r);
        }
        rows
    })?;
    Ok(0)
}

fn top(c: &Client, name: &str, ps_args: &[String]) -> CmdResult {
    let q: Vec<(&str, String)> = if ps_args.is_empty() {
        vec![]
    } else {
        vec![("ps_args", ps_args.join(" "))]
    };
    let v: Value = c.get(&format!("/containers/{name}/top"), &q)?;
    let mut rows = vec![
        v["Titles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t.as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>(),
    ];
    for p in v["Processes"].as_array().into_iter().flatten() {
        rows.push(
            p.as_array()
                .into_iter()
                .flatten()
                .map(|t| t.as_str().unwrap_or("").to_string())
                .collect(),
        );
    }
    format::print_table(&rows);
    Ok(0)
}

fn stats_fields(name_arg: &str, s: &Value, no_trunc: bool) -> Value {
    let cpu = &s["cpu_stats"];
    let pre = &s["precpu_stats"];
    let cpu_delta = cpu["cpu_usage"]["total_usage"].as_f64().unwrap_or(0.0)
        - pre["cpu_usage"]["total_usage"].as_f64().unwrap_or(0.0);
    let sys_delta = cpu["system_cpu_usage"].as_f64().unwrap_or(0.0)
        - pre["system_cpu_usage"].as_f64().unwrap_or(0.0);
    let ncpu = cpu["online_cpus"].as_f64().unwrap_or(1.0);
    let cpu_pct = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * ncpu * 100.0
    } else {
        0.0
    };
    let mem = &s["memory_stats"];
    let inactive = mem["stats"]["total_inactive_file"]
        .as_f64()
        .or_else(|| mem["stats"]["inactive_file"].as_f64())
        .unwrap_or(0.0);
    let usage = (mem["usage"].as_f64().unwrap_or(0.0) - inactive).max(0.0);
    let limit = mem["limit"].as_f64().unwrap_or(0.0);
    let mem_pct = if limit > 0.0 {
        usage / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    for (_, n) in s["networks"].as_object().into_iter().flatten() {
        rx += n["rx_bytes"].as_f64().unwrap_or(0.0);
        tx += n["tx_bytes"].as_f64().unwrap_or(0.0);
    }
    let (mut rd, mut wr) = (0.0, 0.0);
    for e in s["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().unwrap_or("").to_ascii_lowercase().as_str() {
            "read" => rd += e["value"].as_f64().unwrap_or(0.0),
            "write" => wr += e["value"].as_f64().unwrap_or(0.0),
            _ => {}
        }
    }
    let id = s["id"].as_str().unwrap_or("");
    json!({
        "Container": name_arg,
        "Name": s["name"].as_str().unwrap_or("").trim_start_matches('/'),
        "ID": format::short_id(id, no_trunc),
        "CPUPerc": format!("{cpu_pct:.2}%"),
        "MemUsage": format!("{} / {}", format::bytes_size(usage), format::bytes_size(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", format::human_size(rx), format::human_size(tx)),
        "BlockIO": format!("{} / {}", format::human_size(rd), format::human_size(wr)),
        "PIDs": s["pids_stats"]["current"].as_u64().unwrap_or(0),
    })
}

fn stats(c: &Client, a: StatsArgs) -> CmdResult {
    let names: Vec<String> = if a.containers.is_empty() {
        let list: Vec<Value> = c.get("/containers/json", &[("all", b(a.all))])?;
        list.iter()
            .filter_map(|s| s["Id"].as_str().map(String::from))
            .collect()
    } else {
        a.containers.clone()
    };
    let fmt = format::parse_format(a.format.as_deref(), &|n| match n {
        "CPUPerc" => "CPU %".into(),
        "MemUsage" => "MEM USAGE / LIMIT".into(),
        "MemPerc" => "MEM %".into(),
        "NetIO" => "NET I/O".into(),
        "BlockIO" => "BLOCK I/O".into(),
        "ID" => "CONTAINER ID".into(),
        "Container" => "CONTAINER".into(),
        other => other.to_uppercase(),
    })?;
    let live = !a.no_stream && tty::stdout_is_tty();
    loop {
        let mut items = Vec::new();
        let mut code = 0;
        for n in &names {
            match c.get::<Value>(&format!("/containers/{n}/stats"), &[("stream", "0".into())]) {
                Ok(s) => items.push(stats_fields(n, &s, a.no_trunc)),
                Err(e) => {
                    eprintln!("{e}");
                    code = 1;
                }
            }
        }
        if live {
            print!("\x1b[2J\x1b[H");
        }
        format::print_items(&fmt, &items, &|| {
            let mut rows = vec![
                [
                    "CONTAINER ID",
                    "NAME",
                    "CPU %",
                    "MEM USAGE / LIMIT",
                    "MEM %",
                    "NET I/O",
                    "BLOCK I/O",
                    "PIDS",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            ];
            for i in &items {
                rows.push(
                    [
                        "ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs",
                    ]
                    .iter()
                    .map(|k| match &i[*k] {
                        Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .collect(),
                );
            }
            rows
        })?;
        let _ = std::io::stdout().flush();
        if a.no_stream || code != 0 {
            return Ok(code);
        }
        std::thread::sleep(std::time::Duration::from_millis(750));
    }
}

fn export(c: &Client, name: &str, output: Option<&str>) -> CmdResult {
    let mut resp = c
        .send(
            "GET",
            &format!("/containers/{name}/export"),
            &[],
            Body::Empty,
            false,
        )?
        .check()?;
    match output {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .map_err(|e| CliError::msg(format!("failed to export container: {path}: {e}")))?;
            std::io::copy(&mut resp, &mut f).map_err(CliError::io)?;
        }
        None => {
            if tty::stdout_is_tty() {
                return Err(CliError::msg(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                ));
            }
            std::io::copy(&mut resp, &mut std::io::stdout().lock()).map_err(CliError::io)?;
        }
    }
    Ok(0)
}

fn diff(c: &Client, name: &str) -> CmdResult {
    // `null` when nothing changed (as dockerd answers).
    let changes: Option<Vec<Value>> = c.get(&format!("/containers/{name}/changes"), &[])?;
    let mut out = String::new();
    for ch in changes.iter().flatten() {
        let kind = match ch["Kind"].as_i64() {
            Some(1) => 'A',
            Some(2) => 'D',
            _ => 'C',
        };
        out.push_str(&format!("{kind} {}\n", ch["Path"].as_str().unwrap_or("")));
    }
    print!("{out}");
    Ok(0)
}

fn port(c: &Client, name: &str, filter: Option<&str>) -> CmdResult {
    let info = inspect_json(c, name)?;
    let mut found = false;
    for (k, v) in info["NetworkSettings"]["Ports"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if let Some(f) = filter {
            let want = if f.contains('/') {
                f.to_string()
            } else {
                format!("{f}/tcp")
            };
            if *k != want {
                continue;
            }
        }
        for b in v.as_array().into_iter().flatten() {
            found = true;
            let ip = b["HostIp"].as_str().unwrap_or("0.0.0.0");
            let ip = match ip {
                "" => "0.0.0.0".to_string(),
                ip if ip.contains(':') => format!("[{ip}]"),
                ip => ip.to_string(),
            };
            if filter.is_some() {
                println!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""));
            } else {
                println!("{k} -> {ip}:{}", b["HostPort"].as_str().unwrap_or(""));
            }
        }
    }
    if let (Some(f), false) = (filter, found) {
        return Err(CliError::msg(format!(
            "Error: No public port '{f}' published for {name}"
        )));
    }
    Ok(0)
}

fn update(c: &Client, a: UpdateArgs) -> CmdResult {
    let mut body = serde_json::Map::new();
    let bad = |v: &str, flag: &str, e: String| {
        CliError::msg(format!("invalid argument \"{v}\" for \"{flag}\" flag: {e}"))
    };
    if let Some(m) = &a.memory {
        body.insert(
            "Memory".into(),
            json!(opts::parse_bytes(m).map_err(|e| bad(m, "-m, --memory", e))?),
        );
    }
    if let Some(m) = &a.memory_swap {
        let v = if m == "-1" {
            -1
        } else {
            opts::parse_bytes(m).map_err(|e| bad(m, "--memory-swap", e))?
        };
        body.insert("MemorySwap".into(), json!(v));
    }
    if let Some(m) = &a.memory_reservation {
        body.insert(
            "MemoryReservation".into(),
            json!(opts::parse_bytes(m).map_err(|e| bad(m, "--memory-reservation", e))?),
        );
    }
    if let Some(cpus) = &a.cpus {
        body.insert(
            "NanoCpus".into(),
            json!(opts::parse_cpus(cpus).map_err(|e| bad(cpus, "--cpus", e))?),
        );
    }
    if let Some(s) = a.cpu_shares {
        body.insert("CpuShares".into(), json!(s));
    }
    if let Some(s) = &a.cpuset_cpus {
        body.insert("CpusetCpus".into(), json!(s));
    }
    if let Some(p) = a.pids_limit {
        body.insert("PidsLimit".into(), json!(p));
    }
    if let Some(m) = &a.cpuset_mems {
        body.insert("CpusetMems".into(), json!(m));
    }
    if let Some(p) = a.cpu_rt_period {
        body.insert("CpuRealtimePeriod".into(), json!(p));
    }
    if let Some(r) = a.cpu_rt_runtime {
        body.insert("CpuRealtimeRuntime".into(), json!(r));
    }
    if let Some(r) = &a.restart {
        body.insert(
            "RestartPolicy".into(),
            serde_json::to_value(opts::parse_restart(r).map_err(|e| bad(r, "--restart", e))?)
                .map_err(|e| CliError::msg(e.to_string()))?,
        );
    }
    let body = Value::Object(body);
    each(
        &a.containers,
        |n| {
            c.post(&format!("/containers/{n}/update"), &[], Some(&body))
                .map(|_| ())
        },
        "",
    )
}

fn prune(c: &Client, force: bool, filter: &[String]) -> CmdResult {
    if !force
        && !crate::confirm::confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )
    {
        return Ok(0);
    }
    let q: Vec<(&str, String)> = if filter.is_empty() {
        vec![]
    } else {
        vec![("filters", filters_json(filter)?)]
    };
    let v: Value = c.post_empty("/containers/prune", &q)?.json()?;
    format::print_prune_result(&v, "ContainersDeleted", "Deleted Containers");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_sent_as_docker_sends_them() {
        assert_eq!(
            timestamp("since", "2000-01-01T00:00:00Z").unwrap(),
            "946684800.000000000"
        );
        assert_eq!(
            timestamp("since", "1234567890").unwrap(),
            "1234567890.000000000"
        );
        let error = timestamp("since", "nonsense").unwrap_err();
        assert_eq!(
            error.message,
            "invalid value for \"since\": failed to parse value as time or duration: \"nonsense\""
        );
    }

    #[test]
    fn ps_command_is_quoted_and_truncated() {
        let s = json!({"Id": "0123456789abcdef", "Command": "sh -c echo hi; sleep 100", "Created": 0, "Names": ["/web"], "Image": "busybox", "Status": "Up"});
        let f = ps_fields(&s, false);
        assert_eq!(f["Command"], "\"sh -c echo hi; slee…\"");
        assert_eq!(f["ID"], "0123456789ab");
        assert_eq!(f["Names"], "web");
    }
}
