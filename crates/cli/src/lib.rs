//! The `berth` command line: docker's commands and flags, spoken to the daemon over the Docker
//! Engine API. One thin module per command group; flags are parsed with clap (derive).
#![forbid(unsafe_code)]

mod archive;
mod build;
mod confirm;
mod container;
mod cp;
mod df;
pub mod docs;
mod filters;
mod format;
mod http;
mod image;
mod inspect;
mod network;
mod opts;
pub mod progress;
mod registry;
mod stream;
mod system;
mod tty;
mod volume;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

pub use format::{Tmpl as FormatTemplate, render as render_format, template as compile_format};
pub use http::{Client, Host};

/// The default daemon socket.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// An error shown to the user as one line, with the exit code it implies.
#[derive(Debug)]
pub struct CliError {
    /// The line.
    pub message: String,
    /// HTTP status when it came from the daemon.
    pub status: Option<u16>,
    /// Exit code to use.
    pub code: i32,
}

impl CliError {
    /// A plain error.
    pub fn msg(m: impl Into<String>) -> Self {
        CliError {
            message: m.into(),
            status: None,
            code: 1,
        }
    }
    /// An error answer from the daemon.
    pub fn daemon(status: u16, message: String) -> Self {
        CliError {
            message: format!("Error response from daemon: {message}"),
            status: Some(status),
            code: 1,
        }
    }
    /// An I/O error talking to the daemon.
    pub fn io(e: std::io::Error) -> Self {
        CliError::msg(format!("error during connect: {e}"))
    }
    /// Connecting to the daemon failed: what is wrong, with the kernel's reason. No daemon
    /// there (no socket, nobody listening) is docker's "Is the daemon running?"; a socket the
    /// user may not open says so, as docker does.
    pub fn connect(host: &Host, e: std::io::Error) -> Self {
        let group = socket_group(host);
        let host = host.display();
        CliError::msg(match e.kind() {
            std::io::ErrorKind::NotFound
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::TimedOut => {
                format!(
                    "Cannot connect to the berth daemon at {host}. Is the berth daemon running?"
                )
            }
            // One line that says how to fix it (the socket is 0660, group `berth`).
            std::io::ErrorKind::PermissionDenied => format!(
                "permission denied while trying to connect to the berth daemon socket at {host}: add yourself to the '{group}' group"
            ),
            _ => format!("error during connect to the berth daemon at {host}: {e}"),
        })
    }
    /// With another exit code.
    pub fn with_code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
}

/// The group that may use a unix socket: the socket's own (or its directory's) group, unless
/// that is root's; else `berth`, the group the daemon gives its socket by default.
fn socket_group(host: &Host) -> String {
    use std::os::unix::fs::MetadataExt;
    let Host::Unix(path) = host else {
        return "berth".into();
    };
    let gid = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(path.parent().unwrap_or(Path::new("/"))))
        .map(|m| m.gid())
        .unwrap_or(0);
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    group_name(&groups, gid)
        .filter(|_| gid != 0)
        .unwrap_or_else(|| "berth".into())
}

/// The name of group `gid` in an `/etc/group` file.
fn group_name(etc_group: &str, gid: u32) -> Option<String> {
    etc_group.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2)?.parse::<u32>().ok()? == gid).then(|| fields[0].to_owned())
    })
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Result of a command: its exit code.
pub type CmdResult = Result<i32, CliError>;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    disable_help_subcommand = true,
    disable_version_flag = true,
    about = "A container engine that speaks Docker's API"
)]
struct Cli {
    /// Daemon socket to connect to.
    #[arg(short = 'H', long = "host", global = true)]
    host: Option<String>,
    /// Enable debug output.
    #[arg(short = 'D', long = "debug", global = true)]
    debug: bool,
    /// Print the version and exit.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Container(Box<container::ContainerCmd>),
    /// Manage containers.
    #[command(name = "container")]
    ContainerGroup {
        #[command(subcommand)]
        cmd: container::ContainerGroup,
    },
    #[command(flatten)]
    Image(image::ImageCmd),
    /// Manage images.
    #[command(name = "image")]
    ImageGroup {
        #[command(subcommand)]
        cmd: image::ImageGroup,
    },
    /// Manage networks.
    #[command(name = "network")]
    NetworkGroup {
        #[command(subcommand)]
        cmd: network::NetworkGroup,
    },
    /// Copy files/folders between a container and the local filesystem.
    Cp(cp::CpArgs),
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Manage builds.
    #[command(name = "builder")]
    BuilderGroup {
        #[command(subcommand)]
        cmd: build::BuilderGroup,
    },
    /// Manage volumes.
    #[command(name = "volume")]
    VolumeGroup {
        #[command(subcommand)]
        cmd: volume::VolumeGroup,
    },
    #[command(flatten)]
    Registry(registry::RegistryCmd),
    #[command(flatten)]
    System(system::SystemCmd),
    /// Manage berth.
    #[command(name = "system")]
    SystemGroup {
        #[command(subcommand)]
        cmd: system::SystemGroup,
    },
    /// Generate the autocompletion script for the specified shell (bash, zsh, fish).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The command line's clap definition, for completions and man pages ([`docs`]).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The CLI's entry point; `args` includes the program name. Returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind as K;
            let code = match e.kind() {
                K::DisplayHelp
                | K::DisplayVersion
                | K::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ if is_run_like(&args) => 125,
                _ => 1,
            };
            let _ = e.print();
            return code;
        }
    };
    if cli.version {
        println!("berth version {}, API 1.44", berth_api::version());
        return 0;
    }
    let Some(command) = cli.command else {
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return 0;
    };
    if let Command::Completion { shell } = command {
        docs::print_completion(&mut self::command(), shell);
        return 0;
    }
    let explicit = cli
        .host
        .clone()
        .or_else(|| std::env::var("BERTH_HOST").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty()));
    let run_like = is_run_like(&args);
    let host = match Host::parse(explicit.as_deref().unwrap_or(DEFAULT_HOST)) {
        Ok(h) => h,
        Err(e) => return report(&e, run_like),
    };
    let client = Client { host };
    if explicit.is_none()
        && let Err(e) = ensure_daemon(&client)
    {
        return report(&e, run_like);
    }
    let result = match command {
        Command::Container(c) => container::run(&client, *c),
        Command::ContainerGroup { cmd } => container::run_group(&client, cmd),
        Command::Image(c) => image::run(&client, c),
        Command::ImageGroup { cmd } => image::run_group(&client, cmd),
        Command::NetworkGroup { cmd } => network::run_group(&client, cmd),
        Command::Cp(a) => cp::run(&client, a),
        Command::Build(a) => build::build(&client, a),
        Command::BuilderGroup { cmd } => build::run_group(&client, cmd),
        Command::VolumeGroup { cmd } => volume::run_group(&client, cmd),
        Command::Registry(c) => registry::run(&client, c),
        Command::System(c) => system::run(&client, c),
        Command::SystemGroup { cmd } => system::run_group(&client, cmd),
        Command::Completion { .. } => Ok(0),
    };
    let _ = std::io::stdout().flush();
    match result {
        Ok(code) => code,
        Err(e) => report(&e, run_like),
    }
}

fn is_run_like(args: &[String]) -> bool {
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        match a.as_str() {
            // Global flags that take a value: skip it too.
            "-H" | "--host" => {
                rest.next();
            }
            a if a.starts_with('-') => {}
            a => return a == "run" || a == "create",
        }
    }
    false
}

fn report(e: &CliError, run_like: bool) -> i32 {
    if run_like {
        eprintln!("berth: {}", e.message);
        eprintln!("\nRun 'berth run --help' for more information");
    } else {
        eprintln!("{}", e.message);
    }
    e.code
}

/// With the default socket and no daemon answering, root starts one (`berth daemon`).
fn ensure_daemon(client: &Client) -> Result<(), CliError> {
    let refused = match client.connect() {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let Host::Unix(sock) = &client.host else {
        return Ok(());
    };
    // Only a missing daemon is started; any other failure (a socket this user may not
    // open) is reported with its cause.
    let missing = matches!(
        refused.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
    );
    if !missing || !nix::unistd::geteuid().is_root() {
        return Err(CliError::connect(&client.host, refused));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::msg(format!("cannot find the berth binary: {e}")))?;
    let run_root = sock.parent().unwrap_or(Path::new("/run/berth"));
    std::fs::create_dir_all(run_root)
        .map_err(|e| CliError::msg(format!("create {}: {e}", run_root.display())))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_root.join("daemon.log"))
        .map_err(|e| CliError::msg(format!("open daemon log: {e}")))?;
    let log2 = log.try_clone().map_err(|e| CliError::msg(e.to_string()))?;
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe)
        .arg("daemon")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::msg(format!("cannot start the berth daemon: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if client.connect().is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(CliError::connect(
        &client.host,
        std::io::Error::from(std::io::ErrorKind::TimedOut),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_says_which_group() {
        let groups = "root:x:0:\nstaff:x:50:\nberth:x:997:alice\n";
        assert_eq!(group_name(groups, 997).as_deref(), Some("berth"));
        assert_eq!(group_name(groups, 50).as_deref(), Some("staff"));
        assert_eq!(group_name(groups, 12), None);
        let host = Host::Unix("/nonexistent/dir/berth.sock".into());
        let error = CliError::connect(
            &host,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(
            error.message,
            "permission denied while trying to connect to the berth daemon socket at unix:///nonexistent/dir/berth.sock: add yourself to the 'berth' group"
        );
    }
}
