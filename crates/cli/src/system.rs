//! System commands: version, info, events, and the `system` group.
use std::io::Write;

use clap::Subcommand;
use serde_json::Value;

use crate::format;
use crate::http::{Body, Client};
use crate::{CliError, CmdResult};

/// System commands at the top level.
#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Show the berth version information.
    Version {
        /// Format output using a Go template.
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Display system-wide information.
    Info {
        /// Format output using a Go template.
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Get real time events from the server.
    Events {
        /// Show all events created since timestamp.
        #[arg(long)]
        since: Option<String>,
        /// Stream events until this timestamp.
        #[arg(long)]
        until: Option<String>,
        /// Filter output based on conditions provided.
        #[arg(short = 'f', long)]
        filter: Vec<String>,
        /// Format output using a Go template.
        #[arg(long)]
        format: Option<String>,
    },
}

/// `berth system …`.
#[derive(Debug, Subcommand)]
pub enum SystemGroup {
    #[command(flatten)]
    Cmd(SystemCmd),
    /// Show docker disk usage.
    Df(crate::df::DfArgs),
}

/// Runs `berth system …`.
pub fn run_group(c: &Client, g: SystemGroup) -> CmdResult {
    match g {
        SystemGroup::Cmd(cmd) => run(c, cmd),
        SystemGroup::Df(a) => crate::df::run(c, a),
    }
}

/// Runs a system command.
pub fn run(c: &Client, cmd: SystemCmd) -> CmdResult {
    match cmd {
        SystemCmd::Version { format } => version(c, format.as_deref()),
        SystemCmd::Info { format } => info(c, format.as_deref()),
        SystemCmd::Events {
            since,
            until,
            filter,
            format,
        } => events(c, since, until, &filter, format.as_deref()),
    }
}

fn version(c: &Client, fmt: Option<&str>) -> CmdResult {
    let server: Result<Value, CliError> = c.get("/version", &[]);
    let client = serde_json::json!({
        "Version": berth_api::version(),
        "ApiVersion": berth_api::API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH },
    });
    if let Some(f) = fmt {
        let data = serde_json::json!({"Client": client, "Server": server.as_ref().ok()});
        println!("{}", format::render(&format::template(f)?, &data)?);
        return server.map(|_| 0);
    }
    println!(
        "Client:\n Version:           {}\n API version:       {}\n OS/Arch:           {}/{}",
        client["Version"].as_str().unwrap_or(""),
        client["ApiVersion"].as_str().unwrap_or(""),
        client["Os"].as_str().unwrap_or(""),
        client["Arch"].as_str().unwrap_or("")
    );
    let s = server?;
    println!(
        "\nServer: {}\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  OS/Arch:          {}/{}\n  Kernel:           {}",
        s["Platform"]["Name"].as_str().unwrap_or("berth"),
        s["Version"].as_str().unwrap_or(""),
        s["ApiVersion"].as_str().unwrap_or(""),
        s["MinAPIVersion"].as_str().unwrap_or(""),
        s["Os"].as_str().unwrap_or(""),
        s["Arch"].as_str().unwrap_or(""),
        s["KernelVersion"].as_str().unwrap_or("")
    );
    Ok(0)
}

fn info(c: &Client, fmt: Option<&str>) -> CmdResult {
    let v: Value = c.get("/info", &[])?;
    if let Some(f) = fmt {
        println!("{}", format::render(&format::template(f)?, &v)?);
        return Ok(0);
    }
    let g = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    println!("Server:");
    println!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}",
        g("Containers"),
        g("ContainersRunning"),
        g("ContainersPaused"),
        g("ContainersStopped")
    );
    println!(" Images: {}", g("Images"));
    println!(" Server Version: {}", g("ServerVersion"));
    println!(" Storage Driver: {}", g("Driver"));
    println!(" Logging Driver: {}", g("LoggingDriver"));
    println!(
        " Cgroup Driver: {}\n Cgroup Version: {}",
        g("CgroupDriver"),
        g("CgroupVersion")
    );
    println!(" Default Runtime: {}", g("DefaultRuntime"));
    println!(
        " Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}",
        g("KernelVersion"),
        g("OperatingSystem"),
        g("OSType"),
        g("Architecture")
    );
    println!(
        " CPUs: {}\n Total Memory: {}",
        g("NCPU"),
        format::bytes_size(v["MemTotal"].as_f64().unwrap_or(0.0))
    );
    println!(
        " Name: {}\n ID: {}\n Docker Root Dir: {}",
        g("Name"),
        g("ID"),
        g("DockerRootDir")
    );
    println!(" Debug Mode: {}", g("Debug"));
    let registry = &v["RegistryConfig"];
    let mut insecure: Vec<String> = registry["IndexConfigs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, c)| c["Secure"] == Value::Bool(false))
        .map(|(name, _)| name.clone())
        .collect();
    insecure.extend(
        registry["InsecureRegistryCIDRs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_owned)),
    );
    println!(" Insecure Registries:");
    for entry in insecure {
        println!("  {entry}");
    }
    let mirrors: Vec<&str> = registry["Mirrors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !mirrors.is_empty() {
        println!(" Registry Mirrors:");
        for mirror in mirrors {
            println!("  {mirror}");
        }
    }
    println!(" Live Restore Enabled: {}", g("LiveRestoreEnabled"));
    Ok(0)
}

fn events(
    c: &Client,
    since: Option<String>,
    until: Option<String>,
    filter: &[String],
    fmt: Option<&str>,
) -> CmdResult {
    let mut q = Vec::new();
    let now = std::time::SystemTime::now();
    let timestamp = |flag: &str, value: &str| {
        berth_api::time::parse_timestamp(value, now)
            .map(|t| t.to_string())
            .map_err(|e| CliError::msg(format!("invalid value for \"{flag}\": {e}")))
    };
    if let Some(s) = since {
        q.push(("since", timestamp("since", &s)?));
    }
    if let Some(u) = until {
        q.push(("until", timestamp("until", &u)?));
    }
    if !filter.is_empty() {
        q.push(("filters", crate::filters::filters_json(filter)?));
    }
    let tmpl = match fmt {
        Some(f) if f != "json" => Some(format::template(f)?),
        _ => None,
    };
    let mut resp = c.send("GET", "/events", &q, Body::Empty, false)?.check()?;
    while let Some(line) = resp.next_line().map_err(CliError::io)? {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        if fmt == Some("json") {
            println!("{v}");
        } else if let Some(t) = &tmpl {
            println!("{}", format::render(t, &v)?);
        } else {
            let nanos = v["timeNano"].as_i64().unwrap_or(0);
            let t = chrono::DateTime::from_timestamp(
                nanos / 1_000_000_000,
                (nanos % 1_000_000_000) as u32,
            )
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
            .unwrap_or_default();
            let mut attrs: Vec<String> = v["Actor"]["Attributes"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            attrs.sort();
            println!(
                "{t} {} {} {} ({})",
                v["Type"].as_str().unwrap_or(""),
                v["Action"].as_str().unwrap_or(""),
                v["Actor"]["ID"].as_str().unwrap_or(""),
                attrs.join(", ")
            );
        }
        let _ = std::io::stdout().flush();
    }
    Ok(0)
}
