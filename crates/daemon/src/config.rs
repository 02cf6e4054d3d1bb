//! `berth daemon` flags, merged with the configuration file ([`crate::config_file`]), and
//! where the daemon keeps things.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_distribution::client::{Insecure, RegistryOptions};

use crate::config_file::{
    self, AddressPool, ConfigError, DEFAULT_CONFIG_FILE, FileConfig, Reloadable, Ulimit,
};
use crate::error::DaemonError;

/// Where the daemon listens and keeps its state: the flags, over the configuration file, over
/// the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// `-H`/`hosts`: `unix:///run/berth/berth.sock`, `tcp://127.0.0.1:2375`, `fd://` (every
    /// socket systemd passed) or `fd://NAME`. Empty: the sockets systemd passed, if any, else
    /// the default socket.
    pub hosts: Vec<String>,
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
    /// `-G/--group`: the unix sockets' group. `None`: `berth` when that group exists.
    pub group: Option<String>,
    /// `--bip`: the default bridge's address and prefix (`10.5.0.1/16`), instead of a subnet
    /// from the pool.
    pub bip: Option<String>,
    /// `--ipv6` with `--fixed-cidr-v6`: the default bridge's IPv6 subnet (dual-stack).
    pub default_bridge_ipv6: Option<String>,
    /// `--ipv6` (flag or daemon.json): the default bridge is dual-stack, with
    /// `--fixed-cidr-v6`'s subnet or one from the IPv6 pools.
    pub ipv6: bool,
    /// `--default-address-pool`: where networks without `--subnet` get theirs (IPv4
    /// entries) and `--ipv6` networks without an IPv6 subnet get theirs (IPv6 entries).
    pub default_address_pools: Vec<AddressPool>,
    /// `--default-ulimit`, by name: added to each container's own `--ulimit`s at start.
    pub default_ulimits: BTreeMap<String, Ulimit>,
    /// The settings `SIGHUP` reloads from the configuration file.
    pub reloadable: Reloadable,
    /// `--config-file` (default `/etc/berth/daemon.json`).
    pub config_file: PathBuf,
    /// Whether `--config-file` was given (then the file must exist).
    pub config_file_required: bool,
    /// The daemon.json keys given as flags, with their values (a reload checks them again).
    pub flag_keys: Vec<(String, String)>,
    /// `--userns-remap default|USER[:GROUP]` (see [`crate::userns`]).
    pub userns_remap: Option<String>,
    /// `--registry-hub` (`BERTH_REGISTRY_HUB`): where `docker.io` names go instead of Docker Hub.
    pub registry_hub: Option<String>,
    /// `--cpu-rt-period`/`--cpu-rt-runtime` (daemon.json `cpu-rt-period`, `cpu-rt-runtime`):
    /// the real-time budget of the containers' cgroup parent, as dockerd's.
    pub cpu_rt: berth_cgroups::RtBudget,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            hosts: Vec::new(),
            data_root: PathBuf::from("/var/lib/berth"),
            exec_root: PathBuf::from("/run/berth"),
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            log_level: None,
            bridge: "berth0".into(),
            nft_table: "berth".into(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            runtimes: Vec::new(),
            cgroup_parent: "/berth".into(),
            group: None,
            bip: None,
            default_bridge_ipv6: None,
            ipv6: false,
            default_address_pools: Vec::new(),
            default_ulimits: BTreeMap::new(),
            reloadable: Reloadable::default(),
            config_file: PathBuf::from(DEFAULT_CONFIG_FILE),
            config_file_required: false,
            flag_keys: Vec::new(),
            userns_remap: None,
            registry_hub: None,
            cpu_rt: berth_cgroups::RtBudget::default(),
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
    /// `fd://` (every socket systemd passed, `None`) or `fd://NAME` (those named so, or the
    /// descriptor number).
    Fd(Option<String>),
}

impl ListenAddress {
    /// Parses one `-H` value.
    pub fn parse(host: &str) -> Result<ListenAddress, DaemonError> {
        let invalid = || DaemonError::InvalidHost {
            host: host.to_owned(),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid());
            }
            Ok(ListenAddress::Unix(PathBuf::from(path)))
        } else if let Some(address) = host.strip_prefix("tcp://") {
            if !address.contains(':') {
                return Err(invalid());
            }
            Ok(ListenAddress::Tcp(address.trim_end_matches('/').to_owned()))
        } else if let Some(name) = host.strip_prefix("fd://") {
            Ok(ListenAddress::Fd(
                (!name.is_empty()).then(|| name.to_owned()),
            ))
        } else if host.starts_with('/') {
            Ok(ListenAddress::Unix(PathBuf::from(host)))
        } else {
            Err(invalid())
        }
    }
}

impl DaemonConfig {
    /// `default-ulimits` as the API's `Ulimits` entries.
    pub fn api_default_ulimits(&self) -> Vec<berth_api::models::ResourcesUlimits> {
        self.default_ulimits
            .values()
            .map(|u| berth_api::models::ResourcesUlimits {
                name: Some(u.name.clone()),
                soft: Some(u.soft),
                hard: Some(u.hard),
            })
            .collect()
    }

    /// The listen addresses `hosts` names (none: whatever systemd passed, else the default
    /// socket; the server decides).
    pub fn listen_addresses(&self) -> Result<Vec<ListenAddress>, DaemonError> {
        self.hosts.iter().map(|h| ListenAddress::parse(h)).collect()
    }

    /// `<exec_root>/berth.pid`.
    pub fn pid_file(&self) -> PathBuf {
        self.exec_root.join("berth.pid")
    }

    /// The log level the subscriber should use: `--log-level`, else `debug` with `debug`, else
    /// `info`.
    pub fn effective_log_level(&self) -> &str {
        match (&self.log_level, self.reloadable.debug) {
            (Some(level), _) => level,
            (None, true) => "debug",
            (None, false) => "info",
        }
    }

    /// Re-reads the configuration file for `SIGHUP`: the reloadable settings it now gives,
    /// with the flags still winning (a key given both ways is refused, as at start).
    pub fn reload(&self) -> Result<Reloadable, DaemonError> {
        let file = config_file::load(&self.config_file, self.config_file_required)?;
        check_conflicts(&self.config_file, &self.flag_keys, &file)?;
        let mut reloadable = file.reloadable;
        apply_reloadable_flags(&mut reloadable, &self.reloadable, &self.flag_keys);
        check_log_defaults(&reloadable)?;
        Ok(reloadable)
    }
}

/// Keeps the values of reloadable keys given as flags (flags win over a reloaded file).
fn apply_reloadable_flags(into: &mut Reloadable, flags: &Reloadable, given: &[(String, String)]) {
    let has = |key: &str| given.iter().any(|(k, _)| k == key);
    if has("debug") {
        into.debug = flags.debug;
    }
    if has("insecure-registries") {
        into.insecure_registries
            .clone_from(&flags.insecure_registries);
    }
    if has("registry-mirrors") {
        into.registry_mirrors.clone_from(&flags.registry_mirrors);
    }
    if has("log-driver") {
        into.log_driver.clone_from(&flags.log_driver);
    }
    if has("log-opts") {
        into.log_opts.clone_from(&flags.log_opts);
    }
    if has("max-concurrent-downloads") {
        into.max_concurrent_downloads = flags.max_concurrent_downloads;
    }
    if has("max-concurrent-uploads") {
        into.max_concurrent_uploads = flags.max_concurrent_uploads;
    }
}

/// Refuses keys given both as flags and in the file, in Docker's words.
fn check_conflicts(
    path: &Path,
    flag_keys: &[(String, String)],
    file: &FileConfig,
) -> Result<(), DaemonError> {
    let raw: Option<serde_json::Map<String, serde_json::Value>> = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let conflicts: Vec<String> = flag_keys
        .iter()
        .filter(|(key, _)| file.keys.contains(key))
        .map(|(key, flag)| {
            let from_file = raw
                .as_ref()
                .and_then(|m| m.get(key))
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            format!("{key}: (from flag: {flag}, from file: {from_file})")
        })
        .collect();
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(ConfigError::Conflict {
        path: path.to_owned(),
        conflicts: conflicts.join(", "),
    }
    .into())
}

/// `berth daemon`'s flags (clap), turned into a [`DaemonConfig`] by [`parse_args`].
#[derive(Debug, clap::Parser)]
#[command(
    name = "berth daemon",
    about = "The berth daemon: serves the Docker Engine API",
    disable_version_flag = true
)]
struct DaemonFlags {
    /// The configuration file (Docker's daemon.json format).
    #[arg(long = "config-file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Where to listen: unix:///path, tcp://host:port or fd:// (systemd); repeatable.
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    host: Vec<String>,
    /// Persistent state (images, containers, volumes, networks).
    #[arg(long = "data-root", value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// Runtime state (socket, pid file, monitors); at most 18 bytes long.
    #[arg(long = "exec-root", value_name = "DIR")]
    exec_root: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace).
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
    /// Debug mode (log level debug unless --log-level says otherwise).
    #[arg(short = 'D', long = "debug")]
    debug: bool,
    /// Group for the unix sockets (default: berth, when it exists).
    #[arg(short = 'G', long = "group", value_name = "GROUP")]
    group: Option<String>,
    /// The default bridge device; `none` for no default bridge.
    #[arg(short = 'b', long = "bridge", value_name = "NAME")]
    bridge: Option<String>,
    /// The default bridge's address (CIDR).
    #[arg(long = "bip", value_name = "CIDR")]
    bip: Option<String>,
    /// IPv6 on the default bridge (needs --fixed-cidr-v6).
    #[arg(long = "ipv6")]
    ipv6: bool,
    /// The default bridge's IPv6 subnet (with --ipv6).
    #[arg(long = "fixed-cidr-v6", value_name = "CIDR")]
    fixed_cidr_v6: Option<String>,
    /// Address pool for networks: base=CIDR,size=N; repeatable.
    #[arg(long = "default-address-pool", value_name = "POOL", value_parser = address_pool)]
    default_address_pool: Vec<AddressPool>,
    /// A registry reached over plain HTTP; repeatable.
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    insecure_registry: Vec<String>,
    /// A registry mirror (http:// or https:// URL); repeatable.
    #[arg(long = "registry-mirror", value_name = "URL")]
    registry_mirror: Vec<String>,
    /// Containers' default log driver.
    #[arg(long = "log-driver", value_name = "DRIVER")]
    log_driver: Option<String>,
    /// Containers' default log driver options (KEY=VALUE); repeatable.
    #[arg(long = "log-opt", value_name = "KEY=VALUE", value_parser = key_value)]
    log_opt: Vec<(String, String)>,
    /// Containers' default ulimits (NAME=SOFT[:HARD]); repeatable.
    #[arg(long = "default-ulimit", value_name = "ULIMIT", value_parser = ulimit)]
    default_ulimit: Vec<Ulimit>,
    /// Parallel layer downloads of a pull.
    #[arg(long = "max-concurrent-downloads", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_downloads: Option<u32>,
    /// Parallel layer uploads of a push.
    #[arg(long = "max-concurrent-uploads", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent_uploads: Option<u32>,
    /// Accepted for Docker's sake: containers always survive a daemon restart.
    #[arg(long = "live-restore")]
    live_restore: bool,
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
    /// User/group for the containers' user namespace (`default`: berthremap).
    #[arg(long = "userns-remap", value_name = "default|USER[:GROUP]")]
    userns_remap: Option<String>,
    /// The registry `docker.io` names are pulled from, pushed to, logged in to and searched
    /// at instead of Docker Hub (http(s) URL): an air-gapped site's own registry.
    #[arg(long = "registry-hub", value_name = "URL", env = "BERTH_REGISTRY_HUB")]
    registry_hub: Option<String>,
    /// Limit the CPU real-time period in microseconds for the parent cgroup for all
    /// containers (not supported with cgroups v2).
    #[arg(long = "cpu-rt-period", value_name = "int")]
    cpu_rt_period: Option<i64>,
    /// Limit the CPU real-time runtime in microseconds for the parent cgroup for all
    /// containers (not supported with cgroups v2).
    #[arg(long = "cpu-rt-runtime", value_name = "int")]
    cpu_rt_runtime: Option<i64>,
}

/// `berth daemon`'s clap definition, for completions and man pages.
pub fn command() -> clap::Command {
    <DaemonFlags as clap::CommandFactory>::command()
}

/// Each flag's argument id and its daemon.json key.
const FLAG_KEYS: &[(&str, &str)] = &[
    ("host", "hosts"),
    ("data_root", "data-root"),
    ("exec_root", "exec-root"),
    ("log_level", "log-level"),
    ("debug", "debug"),
    ("group", "group"),
    ("bridge", "bridge"),
    ("bip", "bip"),
    ("ipv6", "ipv6"),
    ("fixed_cidr_v6", "fixed-cidr-v6"),
    ("default_address_pool", "default-address-pools"),
    ("insecure_registry", "insecure-registries"),
    ("registry_mirror", "registry-mirrors"),
    ("log_driver", "log-driver"),
    ("log_opt", "log-opts"),
    ("default_ulimit", "default-ulimits"),
    ("max_concurrent_downloads", "max-concurrent-downloads"),
    ("max_concurrent_uploads", "max-concurrent-uploads"),
    ("live_restore", "live-restore"),
    ("nft_table", "nft-table"),
    ("resolv_conf", "resolv-conf"),
    ("add_runtime", "add-runtime"),
    ("cgroup_parent", "cgroup-parent"),
    ("cpu_rt_period", "cpu-rt-period"),
    ("cpu_rt_runtime", "cpu-rt-runtime"),
];

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

/// `--log-opt KEY=VALUE`.
fn key_value(spec: &str) -> Result<(String, String), String> {
    match spec.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{spec:?}: expected KEY=VALUE")),
    }
}

/// `--default-address-pool base=10.10.0.0/16,size=24`.
fn address_pool(spec: &str) -> Result<AddressPool, String> {
    let (mut base, mut size) = (None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("base", v)) => base = Some(v.to_owned()),
            Some(("size", v)) => size = v.parse::<u8>().ok(),
            _ => return Err(format!("{spec:?}: expected base=CIDR,size=N")),
        }
    }
    match (base, size) {
        (Some(base), Some(size))
            if crate::config_file::valid_address_pool(&AddressPool {
                base: base.clone(),
                size,
            }) =>
        {
            Ok(AddressPool { base, size })
        }
        _ => Err(format!("{spec:?}: expected base=CIDR,size=N")),
    }
}

/// `--default-ulimit nofile=1024:2048` (Docker's `NAME=SOFT[:HARD]`).
fn ulimit(spec: &str) -> Result<Ulimit, String> {
    let bad = || format!("{spec:?}: expected NAME=SOFT[:HARD]");
    let (name, limits) = spec.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    if name.is_empty() || soft > hard {
        return Err(bad());
    }
    berth_container::spec::check_ulimit_name(name).map_err(|e| e.to_string())?;
    Ok(Ulimit {
        name: name.to_owned(),
        soft,
        hard,
    })
}

/// Parses the arguments after `berth daemon` (see `berth daemon --help`; each flag also as
/// `--flag=value`), reads the configuration file, and checks the result. `--help` is an
/// error of kind `DisplayHelp` (print it, exit 0).
pub fn parse_args(args: &[String]) -> Result<DaemonConfig, DaemonError> {
    let command = <DaemonFlags as clap::CommandFactory>::command();
    let matches = command
        .try_get_matches_from(
            std::iter::once("berth daemon").chain(args.iter().map(String::as_str)),
        )
        .map_err(|source| DaemonError::Flags { source })?;
    config_from(&matches)
}

/// `berth system reset`'s own flags.
#[derive(Debug, clap::Args)]
struct ResetFlags {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
    /// Keep the data root (images, volumes, containers' records): only stop containers and
    /// remove host state (the package's `remove` does this; `purge` removes the data).
    #[arg(long = "keep-data")]
    keep_data: bool,
}

/// `berth system reset`'s clap definition: its own flags and the daemon's, which say where
/// berth keeps things (the same `daemon.json` is read).
pub fn reset_command() -> clap::Command {
    let command = <DaemonFlags as clap::CommandFactory>::command();
    <ResetFlags as clap::Args>::augment_args(command)
        .name("reset")
        .bin_name("berth system reset")
        .about(
            "Stop and remove all containers, and remove all images, volumes, networks, build \
             cache and berth's host state (nft table, bridges, cgroups, mounts)",
        )
}

/// Parses the arguments after `berth system reset`: (the daemon's configuration, `--force`,
/// what to keep). `--help` is an error of kind `DisplayHelp`, as for [`parse_args`].
pub fn parse_reset_args(
    args: &[String],
) -> Result<(DaemonConfig, bool, crate::reset::ResetOptions), DaemonError> {
    let matches = reset_command()
        .try_get_matches_from(
            std::iter::once("berth system reset").chain(args.iter().map(String::as_str)),
        )
        .map_err(|source| DaemonError::Flags { source })?;
    let reset = <ResetFlags as clap::FromArgMatches>::from_arg_matches(&matches)
        .map_err(|source| DaemonError::Flags { source })?;
    let config = config_from(&matches)?;
    let options = crate::reset::ResetOptions {
        keep_data: reset.keep_data,
    };
    Ok((config, reset.force, options))
}

/// The configuration the matched daemon flags and the configuration file make.
fn config_from(matches: &clap::ArgMatches) -> Result<DaemonConfig, DaemonError> {
    let flags = <DaemonFlags as clap::FromArgMatches>::from_arg_matches(matches)
        .map_err(|source| DaemonError::Flags { source })?;
    let flag_keys: Vec<(String, String)> = FLAG_KEYS
        .iter()
        .filter(|(id, _)| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|(id, key)| {
            let raw: Vec<String> = matches
                .get_raw(id)
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let shown = if raw.is_empty() {
                "true".to_owned()
            } else {
                raw.join(",")
            };
            ((*key).to_owned(), shown)
        })
        .collect();
    let config_file_required = flags.config_file.is_some();
    let config_file = flags
        .config_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE));
    let file = config_file::load(&config_file, config_file_required)?;
    check_conflicts(&config_file, &flag_keys, &file)?;
    let config = merge(flags, file, config_file, config_file_required, flag_keys);
    check(&config)?;
    Ok(config)
}

/// Flags over file over defaults (a key is never in both: [`check_conflicts`] ran).
fn merge(
    flags: DaemonFlags,
    file: FileConfig,
    config_file: PathBuf,
    config_file_required: bool,
    flag_keys: Vec<(String, String)>,
) -> DaemonConfig {
    let defaults = DaemonConfig::default();
    let nonempty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let mut reloadable = file.reloadable;
    reloadable.debug |= flags.debug;
    if let Some(v) = nonempty(flags.insecure_registry) {
        reloadable.insecure_registries = v;
    }
    if let Some(v) = nonempty(flags.registry_mirror) {
        reloadable.registry_mirrors = v;
    }
    reloadable.log_driver = flags.log_driver.or(reloadable.log_driver);
    if !flags.log_opt.is_empty() {
        reloadable.log_opts = flags.log_opt.into_iter().collect();
    }
    reloadable.max_concurrent_downloads = flags
        .max_concurrent_downloads
        .or(reloadable.max_concurrent_downloads);
    reloadable.max_concurrent_uploads = flags
        .max_concurrent_uploads
        .or(reloadable.max_concurrent_uploads);
    DaemonConfig {
        hosts: nonempty(flags.host).or(file.hosts).unwrap_or_default(),
        data_root: flags
            .data_root
            .or(file.data_root)
            .unwrap_or(defaults.data_root),
        exec_root: flags
            .exec_root
            .or(file.exec_root)
            .unwrap_or(defaults.exec_root),
        exe: defaults.exe,
        log_level: flags.log_level.or(file.log_level),
        bridge: flags.bridge.or(file.bridge).unwrap_or(defaults.bridge),
        nft_table: flags
            .nft_table
            .or(file.nft_table)
            .unwrap_or(defaults.nft_table),
        resolv_conf: flags
            .resolv_conf
            .or(file.resolv_conf)
            .unwrap_or(defaults.resolv_conf),
        runtimes: if flags.add_runtime.is_empty() {
            file.runtimes.unwrap_or_default()
        } else {
            flags.add_runtime
        },
        cgroup_parent: flags
            .cgroup_parent
            .or(file.cgroup_parent)
            .unwrap_or(defaults.cgroup_parent),
        group: flags.group.or(file.group),
        bip: flags.bip.or(file.bip),
        // As dockerd: the subnet counts only with IPv6 on.
        default_bridge_ipv6: (flags.ipv6 || file.ipv6.unwrap_or(false))
            .then(|| flags.fixed_cidr_v6.or(file.fixed_cidr_v6))
            .flatten(),
        ipv6: flags.ipv6 || file.ipv6.unwrap_or(false),
        default_address_pools: if flags.default_address_pool.is_empty() {
            file.default_address_pools.unwrap_or_default()
        } else {
            flags.default_address_pool
        },
        default_ulimits: if flags.default_ulimit.is_empty() {
            file.default_ulimits.unwrap_or_default()
        } else {
            flags
                .default_ulimit
                .into_iter()
                .map(|u| (u.name.clone(), u))
                .collect()
        },
        reloadable,
        config_file,
        config_file_required,
        flag_keys,
        userns_remap: flags.userns_remap.filter(|v| !v.is_empty()),
        registry_hub: flags.registry_hub.filter(|v| !v.is_empty()),
        cpu_rt: berth_cgroups::RtBudget {
            period: flags.cpu_rt_period.or(file.cpu_rt_period),
            runtime: flags.cpu_rt_runtime.or(file.cpu_rt_runtime),
        },
    }
}

impl DaemonConfig {
    /// The registry client's options: the registry settings (flags or daemon.json) checked.
    pub fn registry_options(&self) -> Result<RegistryOptions, DaemonError> {
        let invalid = |reason: String| DaemonError::InvalidRegistryFlag { reason };
        let r = &self.reloadable;
        let defaults = RegistryOptions::default();
        let count = |n: Option<u32>, default: usize| n.map_or(default, |n| n as usize);
        let options = RegistryOptions {
            insecure: r
                .insecure_registries
                .iter()
                .map(|value| Insecure::parse(value))
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
            mirrors: r.registry_mirrors.clone(),
            hub: self.registry_hub.clone(),
            max_concurrent_downloads: count(
                r.max_concurrent_downloads,
                defaults.max_concurrent_downloads,
            ),
            max_concurrent_uploads: count(
                r.max_concurrent_uploads,
                defaults.max_concurrent_uploads,
            ),
            ..defaults
        };
        options.validate().map_err(invalid)?;
        Ok(options)
    }
}

/// The listen addresses and the registry settings parse (any exec root works: monitor
/// sockets are reached through their directory's descriptor).
fn check(config: &DaemonConfig) -> Result<(), DaemonError> {
    config.listen_addresses()?;
    config.registry_options()?;
    check_log_defaults(&config.reloadable)?;
    Ok(())
}

/// As dockerd: a bad default log driver or option (from `--log-driver`/`--log-opt` or
/// daemon.json's `log-driver`/`log-opts`) is refused at start-up and at a reload, not at the
/// first container.
fn check_log_defaults(settings: &Reloadable) -> Result<(), DaemonError> {
    let defaults = settings.log_defaults();
    berth_container::log_driver::validate(&defaults.driver, &defaults.opts)
        .map_err(|message| DaemonError::InvalidLogConfig { message })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arguments, with an empty configuration file (the host's is not read).
    fn args(list: &[&str]) -> Vec<String> {
        ["--config-file", "/dev/null"]
            .iter()
            .chain(list)
            .map(|s| (*s).to_owned())
            .collect()
    }

    /// `args` with `text` as the configuration file.
    fn with_file(text: &str, list: &[&str]) -> Result<DaemonConfig, DaemonError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, text).expect("write");
        let mut all = vec!["--config-file".to_owned(), path.display().to_string()];
        all.extend(list.iter().map(|s| (*s).to_owned()));
        parse_args(&all)
    }

    #[test]
    fn defaults() {
        let config = parse_args(&args(&[])).expect("no flags");
        assert!(config.hosts.is_empty());
        assert_eq!(config.effective_log_level(), "info");
        assert_eq!(config.data_root, PathBuf::from("/var/lib/berth"));
        assert_eq!(config.exec_root, PathBuf::from("/run/berth"));
        assert_eq!(config.pid_file(), PathBuf::from("/run/berth/berth.pid"));
        assert_eq!(config.group, None);
        assert!(config.flag_keys.is_empty());
    }

    #[test]
    fn cpu_rt_budget_from_flags_or_file_not_both() {
        assert!(!parse_args(&args(&[])).expect("none").cpu_rt.is_set());
        let flags = parse_args(&args(&[
            "--cpu-rt-period=1000000",
            "--cpu-rt-runtime",
            "950",
        ]))
        .expect("flags");
        assert_eq!(
            flags.cpu_rt,
            berth_cgroups::RtBudget {
                period: Some(1_000_000),
                runtime: Some(950)
            }
        );
        let file = with_file(r#"{"cpu-rt-runtime": 95000}"#, &[]).expect("file");
        assert_eq!(file.cpu_rt.runtime, Some(95_000));
        assert_eq!(file.cpu_rt.period, None);
        // As every key: in the file and as a flag is a conflict.
        assert!(with_file(r#"{"cpu-rt-runtime": 1}"#, &["--cpu-rt-runtime=2"]).is_err());
        assert!(with_file(r#"{"cpu-rt-period": "x"}"#, &[]).is_err());
    }

    #[test]
    fn default_bridge_ipv6_needs_both_flags() {
        let with = parse_args(&args(&["--ipv6", "--fixed-cidr-v6", "fd00:db8:1::/64"])).unwrap();
        assert_eq!(with.default_bridge_ipv6.as_deref(), Some("fd00:db8:1::/64"));
        let cidr_only = parse_args(&args(&["--fixed-cidr-v6", "fd00:db8:1::/64"])).unwrap();
        assert_eq!(
            cidr_only.default_bridge_ipv6, None,
            "ignored without --ipv6, as dockerd"
        );
        assert_eq!(
            parse_args(&args(&["--ipv6"])).unwrap().default_bridge_ipv6,
            None
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
        assert_eq!(config.hosts, vec!["unix:///tmp/b.sock"]);
        assert_eq!(config.data_root, PathBuf::from("/d"));
        assert_eq!(config.exec_root, PathBuf::from("/r"));
        assert_eq!(config.log_level.as_deref(), Some("debug"));

        let config = parse_args(&args(&["--host=tcp://127.0.0.1:2375"])).expect("tcp");
        assert_eq!(
            config.listen_addresses().expect("valid"),
            vec![ListenAddress::Tcp("127.0.0.1:2375".into())]
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
        assert_eq!(
            parse_args(&args(&[])).expect("defaults").cgroup_parent,
            "/berth"
        );
    }

    #[test]
    fn registry_options_from_flags() {
        let config = parse_args(&args(&[
            "--insecure-registry",
            "10.0.0.0/8",
            "--insecure-registry=reg.example:5000",
            "--registry-mirror",
            "https://mirror.example",
            "--max-concurrent-downloads=7",
            "--registry-hub",
            "http://127.0.0.1:9",
        ]))
        .expect("valid");
        let options = config.registry_options().expect("options");
        assert_eq!(options.insecure.len(), 2);
        assert_eq!(options.mirrors, vec!["https://mirror.example".to_owned()]);
        assert_eq!(options.hub.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(
            (
                options.max_concurrent_downloads,
                options.max_concurrent_uploads
            ),
            (7, 5)
        );
        for bad in [
            &["--insecure-registry", "http://reg"][..],
            &["--registry-mirror", "mirror.example"],
        ] {
            let error = parse_args(&args(bad)).expect_err("refused");
            assert!(
                error.to_string().starts_with("invalid registry option"),
                "{error}"
            );
        }
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
        assert!(parse_args(&args(&["--exec-root", "/a/very/long/exec/root/dir"])).is_ok());
        assert!(matches!(
            parse_args(&args(&["-H", "ftp://x"])),
            Err(DaemonError::InvalidHost { .. })
        ));
        assert!(matches!(
            parse_args(&args(&["-H", "tcp://nohostport"])),
            Err(DaemonError::InvalidHost { .. })
        ));
    }

    #[test]
    fn file_values_apply_and_flags_fill_the_rest() {
        let config = with_file(
            r#"{"data-root": "/srv/b", "hosts": ["fd://", "tcp://127.0.0.1:2375"], "debug": true,
                "group": "staff", "registry-mirrors": ["https://m.example"]}"#,
            &["--exec-root", "/r", "--insecure-registry", "10.0.0.1:5000"],
        )
        .expect("valid");
        assert_eq!(config.data_root, PathBuf::from("/srv/b"));
        assert_eq!(config.exec_root, PathBuf::from("/r"));
        assert_eq!(
            config.listen_addresses().expect("valid"),
            vec![
                ListenAddress::Fd(None),
                ListenAddress::Tcp("127.0.0.1:2375".into())
            ]
        );
        assert_eq!(config.group.as_deref(), Some("staff"));
        assert!(config.reloadable.debug);
        assert_eq!(config.effective_log_level(), "debug");
        assert_eq!(
            config.reloadable.registry_mirrors,
            vec!["https://m.example"]
        );
        assert_eq!(config.reloadable.insecure_registries, vec!["10.0.0.1:5000"]);
    }

    #[test]
    fn a_key_in_both_places_is_refused_as_docker_does() {
        let error = with_file(
            r#"{"debug": false, "data-root": "/srv/b", "group": "g"}"#,
            &["-D", "--data-root=/other", "--bridge=none"],
        )
        .expect_err("conflict");
        assert_eq!(
            error.to_string().split_once(": ").map(|(_, rest)| rest),
            Some(
                "the following directives are specified both as a flag and in the configuration file: data-root: (from flag: /other, from file: /srv/b), debug: (from flag: true, from file: false)"
            ),
            "{error}"
        );
        let error = with_file(
            r#"{"hosts": ["unix:///a.sock"]}"#,
            &["-H", "unix:///b.sock"],
        )
        .expect_err("conflict");
        assert!(
            error
                .to_string()
                .contains("hosts: (from flag: unix:///b.sock"),
            "{error}"
        );
    }

    #[test]
    fn unknown_and_malformed_files_are_refused() {
        let error = with_file(r#"{"storage-driver": "vfs"}"#, &[]).expect_err("unknown");
        assert!(
            error.to_string().ends_with(
                "the following directives don't match any configuration option: storage-driver"
            ),
            "{error}"
        );
        let error = with_file("{\n\"debug\": true\n\"group\": \"x\"}", &[]).expect_err("syntax");
        assert!(error.to_string().contains("line 3"), "{error}");
        assert!(matches!(
            parse_args(&["--config-file".into(), "/nonexistent/daemon.json".into()]),
            Err(DaemonError::Config { .. })
        ));
    }

    #[test]
    fn every_new_flag() {
        let config = parse_args(&args(&[
            "-G",
            "staff",
            "--bip=10.5.0.1/16",
            "--default-address-pool",
            "base=10.100.0.0/16,size=24",
            "--registry-mirror=https://m",
            "--log-driver=json-file",
            "--log-opt",
            "max-size=1m",
            "--default-ulimit",
            "nofile=100:200",
            "--max-concurrent-downloads=2",
            "--max-concurrent-uploads=7",
            "--live-restore",
        ]))
        .expect("valid");
        assert_eq!(config.group.as_deref(), Some("staff"));
        assert_eq!(config.bip.as_deref(), Some("10.5.0.1/16"));
        assert_eq!(config.default_address_pools[0].size, 24);
        let v6 = parse_args(&args(&[
            "--default-address-pool",
            "base=fd00:db8:80::/48,size=64",
        ]))
        .expect("an IPv6 pool");
        assert_eq!(v6.default_address_pools[0].base, "fd00:db8:80::/48");
        let net = crate::reset::network_config(&v6).expect("network config");
        assert_eq!(net.ipv6_pools.len(), 1);
        assert_eq!(net.ipv6_pools[0].size, 64);
        assert_eq!(config.default_ulimits["nofile"].soft, 100);
        assert_eq!(config.reloadable.log_opts["max-size"], "1m");
        assert_eq!(config.reloadable.max_concurrent_downloads, Some(2));
        assert_eq!(config.reloadable.max_concurrent_uploads, Some(7));
        assert_eq!(config.flag_keys.len(), 10);
        for bad in [
            &["--default-ulimit", "nofile=3:2"][..],
            &["--default-address-pool", "base=10.0.0.0/8"],
            &["--default-address-pool", "base=10.0.0.0/8,size=33"],
            &["--default-address-pool", "base=fd00:db8::/48,size=40"],
            &["--max-concurrent-downloads=0"],
            &["--log-opt", "novalue"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_log_defaults_are_refused_from_flags_file_and_reload() {
        let err = parse_args(&args(&["--log-driver", "nope"])).expect_err("unknown driver");
        assert_eq!(
            err.to_string(),
            "logger: no log driver named 'nope' is registered"
        );
        let err = parse_args(&args(&["--log-driver=local", "--log-opt", "tag=x"]))
            .expect_err("json-file's option on local");
        assert_eq!(
            err.to_string(),
            "unknown log opt 'tag' for local log driver"
        );
        assert!(with_file(r#"{"log-opts": {"max-size": "huge"}}"#, &[]).is_err());
        let config = with_file(r#"{"log-driver": "local"}"#, &[]).expect("valid");
        assert_eq!(config.reloadable.log_defaults().driver, "local");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, "{}").expect("write");
        let config =
            parse_args(&["--config-file".into(), path.display().to_string()]).expect("valid");
        std::fs::write(&path, r#"{"log-driver": "gelf-ish"}"#).expect("write");
        assert!(
            config.reload().is_err(),
            "a bad reload keeps the old settings"
        );
    }

    #[test]
    fn reload_keeps_flags_and_rereads_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, r#"{"debug": false}"#).expect("write");
        let config = parse_args(&[
            "--config-file".into(),
            path.display().to_string(),
            "--log-driver=json-file".into(),
        ])
        .expect("valid");
        assert!(!config.reloadable.debug);
        std::fs::write(
            &path,
            r#"{"debug": true, "registry-mirrors": ["https://m"], "log-opts": {"max-file": "2"}}"#,
        )
        .expect("write");
        let reloaded = config.reload().expect("reload");
        assert!(reloaded.debug);
        assert_eq!(reloaded.registry_mirrors, vec!["https://m"]);
        assert_eq!(reloaded.log_driver.as_deref(), Some("json-file"));
        assert_eq!(reloaded.log_opts["max-file"], "2");
        std::fs::write(&path, r#"{"log-driver": "local"}"#).expect("write");
        assert!(
            config.reload().is_err(),
            "a flag's key in the file is refused"
        );
        std::fs::write(&path, r#"{"debug": tru"#).expect("write");
        assert!(config.reload().is_err());
    }
}
