//! `berth daemon` flags and where the daemon keeps things.
use std::path::{Path, PathBuf};

use berth_api::DEFAULT_SOCKET;

use crate::error::DaemonError;

/// Where the daemon listens and keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// `unix:///run/berth/berth.sock` or `tcp://127.0.0.1:2375`.
    pub host: String,
    /// Persistent state, e.g. `/var/lib/berth`.
    pub data_root: PathBuf,
    /// Runtime state (socket, pid file, monitors), e.g. `/run/berth`.
    pub exec_root: PathBuf,
    /// The berth binary, re-executed for monitors.
    pub exe: PathBuf,
    /// `--log-level`, for the binary's subscriber (the daemon only emits events).
    pub log_level: Option<String>,
    /// `-b/--bridge`: the default bridge device (`berth0`); `none` for no default bridge.
    pub bridge: String,
    /// `--nft-table`: berth's nftables table (family `ip`).
    pub nft_table: String,
    /// `--resolv-conf`: the resolver configuration containers' resolv.conf and the embedded
    /// DNS servers' upstreams come from (`/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// `--add-runtime NAME=PATH`: OCI runtimes containers may name in `HostConfig.Runtime`
    /// (besides `runc` when installed). Nothing else runs.
    pub runtimes: Vec<(String, PathBuf)>,
    /// `--cgroup-parent`: where containers' cgroups are made (`/berth`).
    pub cgroup_parent: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            host: format!("unix://{DEFAULT_SOCKET}"),
            data_root: PathBuf::from("/var/lib/berth"),
            exec_root: PathBuf::from("/run/berth"),
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            log_level: None,
            bridge: "berth0".into(),
            nft_table: "berth".into(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            runtimes: Vec::new(),
            cgroup_parent: "/berth".into(),
        }
    }
}

/// Where to listen, parsed from `-H`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl DaemonConfig {
    /// The listen address `host` names.
    pub fn listen_address(&self) -> Result<ListenAddress, DaemonError> {
        let invalid = || DaemonError::InvalidHost {
            host: self.host.clone(),
        };
        if let Some(path) = self.host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid());
            }
            Ok(ListenAddress::Unix(PathBuf::from(path)))
        } else if let Some(address) = self.host.strip_prefix("tcp://") {
            if !address.contains(':') {
                return Err(invalid());
            }
            Ok(ListenAddress::Tcp(address.trim_end_matches('/').to_owned()))
        } else if self.host.starts_with('/') {
            Ok(ListenAddress::Unix(PathBuf::from(&self.host)))
        } else {
            Err(invalid())
        }
    }

    /// `<exec_root>/berth.pid`.
    pub fn pid_file(&self) -> PathBuf {
        self.exec_root.join("berth.pid")
    }
}

/// `berth daemon`'s flags (clap), turned into a [`DaemonConfig`] by [`parse_args`].
#[derive(Debug, clap::Parser)]
#[command(
    name = "berth daemon",
    about = "The berth daemon: serves the Docker Engine API",
    disable_version_flag = true
)]
struct DaemonFlags {
    /// Where to listen: unix:///path or tcp://host:port.
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    host: Option<String>,
    /// Persistent state (images, containers, volumes, networks).
    #[arg(long = "data-root", value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// Runtime state (socket, pid file, monitors); at most 18 bytes long.
    #[arg(long = "exec-root", value_name = "DIR")]
    exec_root: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace).
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// The default bridge device; `none` for no default bridge.
    #[arg(short = 'b', long = "bridge", value_name = "NAME")]
    bridge: Option<String>,
    /// berth's nftables table (family `ip`).
    #[arg(long = "nft-table", value_name = "TABLE")]
    nft_table: Option<String>,
    /// The resolver configuration for containers and the embedded DNS servers' upstreams.
    #[arg(long = "resolv-conf", value_name = "FILE")]
    resolv_conf: Option<PathBuf>,
    /// An OCI runtime containers may name (`HostConfig.Runtime`); repeatable.
    #[arg(long = "add-runtime", value_name = "NAME=PATH", value_parser = runtime_spec)]
    add_runtime: Vec<(String, PathBuf)>,
    /// The cgroup under which containers' cgroups are made.
    #[arg(long = "cgroup-parent", value_name = "CGROUP")]
    cgroup_parent: Option<String>,
}

/// `--add-runtime NAME=/absolute/path`.
fn runtime_spec(spec: &str) -> Result<(String, PathBuf), DaemonError> {
    match spec.split_once('=') {
        Some((name, path)) if !name.is_empty() && Path::new(path).is_absolute() => {
            Ok((name.to_owned(), PathBuf::from(path)))
        }
        _ => Err(DaemonError::InvalidRuntime {
            spec: spec.to_owned(),
        }),
    }
}

/// Parses the arguments after `berth daemon` (see `berth daemon --help`; each flag also as
/// `--flag=value`) and checks the listen address and the exec root's length. `--help` is an
/// error of kind `DisplayHelp` (print it, exit 0).
pub fn parse_args(args: &[String]) -> Result<DaemonConfig, DaemonError> {
    let flags = <DaemonFlags as clap::Parser>::try_parse_from(
        std::iter::once("berth daemon").chain(args.iter().map(String::as_str)),
    )
    .map_err(|source| DaemonError::Flags { source })?;
    let defaults = DaemonConfig::default();
    let config = DaemonConfig {
        host: flags.host.unwrap_or(defaults.host),
        data_root: flags.data_root.unwrap_or(defaults.data_root),
        exec_root: flags.exec_root.unwrap_or(defaults.exec_root),
        exe: defaults.exe,
        log_level: flags.log_level,
        bridge: flags.bridge.unwrap_or(defaults.bridge),
        nft_table: flags.nft_table.unwrap_or(defaults.nft_table),
        resolv_conf: flags.resolv_conf.unwrap_or(defaults.resolv_conf),
        runtimes: flags.add_runtime,
        cgroup_parent: flags.cgroup_parent.unwrap_or(defaults.cgroup_parent),
    };
    config.listen_address()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults() {
        let config = parse_args(&[]).expect("no flags");
        assert_eq!(config.host, "unix:///run/berth/berth.sock");
        assert_eq!(config.data_root, PathBuf::from("/var/lib/berth"));
        assert_eq!(config.exec_root, PathBuf::from("/run/berth"));
        assert_eq!(config.pid_file(), PathBuf::from("/run/berth/berth.pid"));
        assert_eq!(
            config.listen_address().expect("valid"),
            ListenAddress::Unix("/run/berth/berth.sock".into())
        );
    }

    #[test]
    fn flags_in_both_spellings() {
        let config = parse_args(&args(&[
            "-H",
            "unix:///tmp/b.sock",
            "--data-root=/d",
            "--exec-root",
            "/r",
            "--log-level=debug",
            "-b",
            "bt1",
            "--nft-table=bt1",
            "--resolv-conf",
            "/r.conf",
        ]))
        .expect("valid");
        assert_eq!(config.resolv_conf, PathBuf::from("/r.conf"));
        assert_eq!(config.bridge, "bt1");
        assert_eq!(config.nft_table, "bt1");
        assert_eq!(config.host, "unix:///tmp/b.sock");
        assert_eq!(config.data_root, PathBuf::from("/d"));
        assert_eq!(config.exec_root, PathBuf::from("/r"));
        assert_eq!(config.log_level.as_deref(), Some("debug"));

        let config = parse_args(&args(&["--host=tcp://127.0.0.1:2375"])).expect("tcp");
        assert_eq!(
            config.listen_address().expect("valid"),
            ListenAddress::Tcp("127.0.0.1:2375".into())
        );
    }

    #[test]
    fn every_flag_and_repeated_runtimes() {
        let config = parse_args(&args(&[
            "-l",
            "warn",
            "--cgroup-parent=/it",
            "--add-runtime",
            "crun=/usr/bin/crun",
            "--add-runtime=r2=/opt/r2",
            "--bridge=none",
        ]))
        .expect("valid");
        assert_eq!(config.log_level.as_deref(), Some("warn"));
        assert_eq!(config.cgroup_parent, "/it");
        assert_eq!(config.bridge, "none");
        assert_eq!(
            config.runtimes,
            vec![
                ("crun".to_owned(), PathBuf::from("/usr/bin/crun")),
                ("r2".to_owned(), PathBuf::from("/opt/r2")),
            ]
        );
        assert_eq!(parse_args(&[]).expect("defaults").cgroup_parent, "/berth");
    }

    #[test]
    fn bad_flags_are_errors() {
        let kind = |list: &[&str]| match parse_args(&args(list)) {
            Err(DaemonError::Flags { source }) => source.kind(),
            other => panic!("{list:?}: {other:?}"),
        };
        assert_eq!(kind(&["--bogus"]), clap::error::ErrorKind::UnknownArgument);
        assert_eq!(kind(&["--data-root"]), clap::error::ErrorKind::InvalidValue);
        assert_eq!(kind(&["--help"]), clap::error::ErrorKind::DisplayHelp);
        assert_eq!(
            kind(&["--add-runtime", "relative=bin/r"]),
            clap::error::ErrorKind::ValueValidation
        );
        // Any exec root: monitor sockets are reached through their run dir's descriptor.
        let long = format!("/{}", "x".repeat(100));
        assert_eq!(
            parse_args(&args(&["--exec-root", &long]))
                .unwrap()
                .exec_root,
            PathBuf::from(&long)
        );
        assert!(matches!(
            parse_args(&args(&["-H", "ftp://x"])),
            Err(DaemonError::InvalidHost { .. })
        ));
        assert!(matches!(
            parse_args(&args(&["-H", "tcp://nohostport"])),
            Err(DaemonError::InvalidHost { .. })
        ));
    }
}
