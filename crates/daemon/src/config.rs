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

/// Parses the arguments after `berth daemon`: `-H|--host H`, `--data-root D`, `--exec-root R`,
/// `--log-level L`, `-b|--bridge NAME|none`, `--nft-table T`, `--resolv-conf FILE`, each also
/// as `--flag=value`.
pub fn parse_args(args: &[String]) -> Result<DaemonConfig, DaemonError> {
    let mut config = DaemonConfig::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with('-') => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| DaemonError::MissingFlagValue {
                    flag: flag.to_owned(),
                })
        };
        match flag {
            "-H" | "--host" => config.host = value()?,
            "--data-root" => config.data_root = PathBuf::from(value()?),
            "--exec-root" => config.exec_root = PathBuf::from(value()?),
            "--log-level" | "-l" => config.log_level = Some(value()?),
            "-b" | "--bridge" => config.bridge = value()?,
            "--nft-table" => config.nft_table = value()?,
            "--resolv-conf" => config.resolv_conf = PathBuf::from(value()?),
            "--cgroup-parent" => config.cgroup_parent = value()?,
            "--add-runtime" => {
                let spec = value()?;
                match spec.split_once('=') {
                    Some((name, path)) if !name.is_empty() && Path::new(path).is_absolute() => {
                        config.runtimes.push((name.to_owned(), PathBuf::from(path)));
                    }
                    _ => {
                        return Err(DaemonError::InvalidRuntime { spec });
                    }
                }
            }
            _ => {
                return Err(DaemonError::UnknownFlag {
                    flag: arg.to_owned(),
                });
            }
        }
    }
    config.listen_address()?;
    // <exec_root>/containers/<64 hex>/monitor.sock must fit in sun_path (107 bytes + NUL).
    let fixed = "/containers/".len() + 64 + "/monitor.sock".len();
    let max = 107 - fixed;
    let len = config.exec_root.as_os_str().len();
    if len > max {
        return Err(DaemonError::ExecRootTooLong {
            path: config.exec_root.display().to_string(),
            max,
        });
    }
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
    fn bad_flags_are_errors() {
        assert!(matches!(
            parse_args(&args(&["--bogus"])),
            Err(DaemonError::UnknownFlag { .. })
        ));
        assert!(matches!(
            parse_args(&args(&["--data-root"])),
            Err(DaemonError::MissingFlagValue { .. })
        ));
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
