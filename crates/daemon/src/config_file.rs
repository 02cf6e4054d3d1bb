//! `/etc/berth/daemon.json`: the daemon's configuration file, in Docker's `daemon.json` format.
//!
//! The file is one JSON object whose keys are the daemon's long flag names (plural for the
//! flags that repeat: `hosts`, `insecure-registries`, `registry-mirrors`, `log-opts`,
//! `default-ulimits`, `default-address-pools`, `runtimes`). As with Docker:
//!
//! - a key berth does not know is an error at start ("the following directives don't match
//!   any configuration option: …"), naming every such key;
//! - a key given both as a flag and in the file is an error at start ("the following
//!   directives are specified both as a flag and in the configuration file: …");
//! - an empty file, or a missing file at the default path, is no configuration;
//! - `SIGHUP` re-reads the file and applies the keys Docker reloads ([`Reloadable`]).
//!
//! Errors name the line: JSON syntax errors carry serde's line and column, a value of the
//! wrong type names its key and the key's line.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Where the daemon reads its configuration unless `--config-file` says otherwise.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";

/// Every key berth accepts, in Docker's spelling.
pub const KNOWN_KEYS: &[&str] = &[
    "add-runtime",
    "bip",
    "bridge",
    "cgroup-parent",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "data-root",
    "debug",
    "default-address-pools",
    "default-ulimits",
    "exec-root",
    "group",
    "hosts",
    "insecure-registries",
    "ipv6",
    "fixed-cidr-v6",
    "live-restore",
    "log-driver",
    "log-level",
    "log-opts",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "nft-table",
    "registry-mirrors",
    "resolv-conf",
    "runtimes",
];

/// A configuration file that cannot be used; the daemon does not start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (an explicit `--config-file` that is missing included).
    #[error("unable to configure the berth daemon with file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON, or not an object.
    #[error("unable to configure the berth daemon with file {path}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// serde's reason, with the line and column.
        reason: String,
    },
    /// Keys berth does not know.
    #[error(
        "unable to configure the berth daemon with file {path}: the following directives don't match any configuration option: {keys}"
    )]
    UnknownKeys {
        /// The file.
        path: PathBuf,
        /// The keys, comma-separated.
        keys: String,
    },
    /// Keys given as flags too.
    #[error(
        "unable to configure the berth daemon with file {path}: the following directives are specified both as a flag and in the configuration file: {conflicts}"
    )]
    Conflict {
        /// The file.
        path: PathBuf,
        /// `key: (from flag: X, from file: Y)`, comma-separated.
        conflicts: String,
    },
    /// A key's value has the wrong type or is out of range.
    #[error(
        "unable to configure the berth daemon with file {path}: invalid value for {key:?} at line {line}: {reason}"
    )]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The key's line in the file (1-based).
        line: usize,
        /// Why.
        reason: String,
    },
}

/// One of `default-address-pools`: Docker's `{"base": "10.10.0.0/16", "size": 24}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPool {
    /// The range pools are carved from.
    pub base: String,
    /// The prefix length of each network's subnet.
    pub size: u8,
}

/// One of `default-ulimits`: Docker's `{"Name": "nofile", "Soft": 1024, "Hard": 2048}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    /// The limit's name (`nofile`, `nproc`, …).
    #[serde(rename = "Name")]
    pub name: String,
    /// The soft limit.
    #[serde(rename = "Soft")]
    pub soft: i64,
    /// The hard limit.
    #[serde(rename = "Hard")]
    pub hard: i64,
}

/// One of `runtimes`: Docker's `{"path": "/usr/bin/crun"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RuntimeEntry {
    /// The runtime binary.
    pub path: PathBuf,
    /// Arguments Docker passes first; accepted, not supported by berth: refused if given.
    #[serde(default, rename = "runtimeArgs")]
    pub runtime_args: Vec<String>,
}

/// The settings `SIGHUP` reloads (Docker's reloadable set berth has).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reloadable {
    /// `debug`: log at debug level.
    pub debug: bool,
    /// `insecure-registries`.
    pub insecure_registries: Vec<String>,
    /// `registry-mirrors`.
    pub registry_mirrors: Vec<String>,
    /// `log-driver`: containers' default log driver (`json-file` when unset).
    pub log_driver: Option<String>,
    /// `log-opts`: containers' default log options.
    pub log_opts: BTreeMap<String, String>,
    /// `max-concurrent-downloads`.
    pub max_concurrent_downloads: Option<u32>,
    /// `max-concurrent-uploads`.
    pub max_concurrent_uploads: Option<u32>,
}

impl Reloadable {
    /// The daemon's default logging driver and options: `log-driver`/`log-opts` (from
    /// daemon.json or the `--log-driver`/`--log-opt` flags), else `json-file` without options.
    pub fn log_defaults(&self) -> berth_container::log_driver::LogDefaults {
        let builtin = berth_container::log_driver::LogDefaults::default();
        berth_container::log_driver::LogDefaults {
            driver: self.log_driver.clone().unwrap_or(builtin.driver),
            opts: self
                .log_opts
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// A new container's log configuration with the daemon's defaults, as Docker merges them
    /// ([`berth_container::log_driver::merge_defaults`]): no driver named means the default
    /// driver, and when the driver is the default one, each default option the container does
    /// not set is added.
    pub fn apply_log_defaults(&self, body: &mut berth_api::models::ContainerCreateBody) {
        if self.log_driver.is_none() && self.log_opts.is_empty() {
            return;
        }
        let host_config = body.host_config.get_or_insert_with(Default::default);
        let log = host_config.log_config.get_or_insert_with(Default::default);
        berth_container::log_driver::merge_defaults(log, &self.log_defaults());
    }
}

/// The reloadable settings in force, shared by the handlers (`/info`) and the `SIGHUP` reload.
pub type SharedSettings = std::sync::Arc<std::sync::RwLock<Reloadable>>;

/// What a configuration file says: each key present, typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConfig {
    /// The keys present (for the conflict check against flags).
    pub keys: Vec<String>,
    /// `data-root`.
    pub data_root: Option<PathBuf>,
    /// `exec-root`.
    pub exec_root: Option<PathBuf>,
    /// `hosts`.
    pub hosts: Option<Vec<String>>,
    /// `group`.
    pub group: Option<String>,
    /// `bridge`.
    pub bridge: Option<String>,
    /// `bip`.
    pub bip: Option<String>,
    /// `ipv6`: IPv6 on the default bridge (with `fixed-cidr-v6`).
    pub ipv6: Option<bool>,
    /// `fixed-cidr-v6`: the default bridge's IPv6 subnet.
    pub fixed_cidr_v6: Option<String>,
    /// `default-address-pools`.
    pub default_address_pools: Option<Vec<AddressPool>>,
    /// `default-ulimits`, by name.
    pub default_ulimits: Option<BTreeMap<String, Ulimit>>,
    /// `live-restore` (accepted; berth always restores).
    pub live_restore: Option<bool>,
    /// `log-level`.
    pub log_level: Option<String>,
    /// `cgroup-parent`.
    pub cgroup_parent: Option<String>,
    /// `cpu-rt-period`.
    pub cpu_rt_period: Option<i64>,
    /// `cpu-rt-runtime`.
    pub cpu_rt_runtime: Option<i64>,
    /// `nft-table`.
    pub nft_table: Option<String>,
    /// `resolv-conf`.
    pub resolv_conf: Option<PathBuf>,
    /// `runtimes` (and `add-runtime`, berth's flag spelling).
    pub runtimes: Option<Vec<(String, PathBuf)>>,
    /// The reloadable keys.
    pub reloadable: Reloadable,
}

/// Reads `path`. A missing file is no configuration when `required` is false (the default
/// path); an explicit `--config-file` must exist.
pub fn load(path: &Path, required: bool) -> Result<FileConfig, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => {
            Ok(FileConfig::default())
        }
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Parses a configuration file's text (`path` is for messages).
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    let syntax = |reason: String| ConfigError::Syntax {
        path: path.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(syntax(
            "the configuration must be a JSON object at line 1".into(),
        ));
    };
    let mut unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN_KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(ConfigError::UnknownKeys {
            path: path.to_owned(),
            keys: unknown.join(", "),
        });
    }
    let file = Keys { path, text, map };
    let mut config = FileConfig {
        keys: file.map.keys().cloned().collect(),
        data_root: file.get("data-root")?,
        exec_root: file.get("exec-root")?,
        hosts: file.get("hosts")?,
        group: file.get("group")?,
        bridge: file.get("bridge")?,
        bip: file.get("bip")?,
        ipv6: file.get("ipv6")?,
        fixed_cidr_v6: file.get("fixed-cidr-v6")?,
        default_address_pools: file.get("default-address-pools")?,
        default_ulimits: file.get("default-ulimits")?,
        live_restore: file.get("live-restore")?,
        log_level: file.get("log-level")?,
        cgroup_parent: file.get("cgroup-parent")?,
        cpu_rt_period: file.get("cpu-rt-period")?,
        cpu_rt_runtime: file.get("cpu-rt-runtime")?,
        nft_table: file.get("nft-table")?,
        resolv_conf: file.get("resolv-conf")?,
        runtimes: file.runtimes()?,
        reloadable: Reloadable {
            debug: file.get("debug")?.unwrap_or(false),
            insecure_registries: file.get("insecure-registries")?.unwrap_or_default(),
            registry_mirrors: file.get("registry-mirrors")?.unwrap_or_default(),
            log_driver: file.get("log-driver")?,
            log_opts: file.get("log-opts")?.unwrap_or_default(),
            max_concurrent_downloads: file.get("max-concurrent-downloads")?,
            max_concurrent_uploads: file.get("max-concurrent-uploads")?,
        },
    };
    file.check(&mut config)?;
    Ok(config)
}

/// The parsed object, with the text for line numbers.
struct Keys<'a> {
    path: &'a Path,
    text: &'a str,
    map: Map<String, Value>,
}

impl Keys<'_> {
    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.path.to_owned(),
            key: key.to_owned(),
            line: key_line(self.text, key),
            reason: reason.into(),
        }
    }

    /// The key's value as `T`, if present.
    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.map.get(key) else {
            return Ok(None);
        };
        T::deserialize(value)
            .map(Some)
            .map_err(|e| self.invalid(key, e.to_string()))
    }

    /// `runtimes` (Docker's object) and `add-runtime` (berth's `NAME=PATH` list), merged.
    fn runtimes(&self) -> Result<Option<Vec<(String, PathBuf)>>, ConfigError> {
        let docker: Option<BTreeMap<String, RuntimeEntry>> = self.get("runtimes")?;
        let flags: Option<Vec<String>> = self.get("add-runtime")?;
        if docker.is_none() && flags.is_none() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for (name, entry) in docker.unwrap_or_default() {
            if !entry.runtime_args.is_empty() {
                return Err(self.invalid("runtimes", "runtimeArgs are not supported by berth"));
            }
            if !entry.path.is_absolute() {
                return Err(self.invalid("runtimes", format!("{name}: path must be absolute")));
            }
            out.push((name, entry.path));
        }
        for spec in flags.unwrap_or_default() {
            match spec.split_once('=') {
                Some((name, path)) if !name.is_empty() && Path::new(path).is_absolute() => {
                    out.push((name.to_owned(), PathBuf::from(path)));
                }
                _ => {
                    return Err(self.invalid(
                        "add-runtime",
                        format!("{spec:?}: expected NAME=/absolute/path"),
                    ));
                }
            }
        }
        Ok(Some(out))
    }

    /// Checks on values that parsed but make no sense.
    fn check(&self, config: &mut FileConfig) -> Result<(), ConfigError> {
        if let Some(bip) = &config.bip
            && !is_cidr(bip)
        {
            return Err(self.invalid("bip", format!("{bip:?} is not an IPv4 CIDR address")));
        }
        for pool in config.default_address_pools.iter().flatten() {
            if !valid_address_pool(pool) {
                return Err(self.invalid(
                    "default-address-pools",
                    format!("invalid pool {}/{}", pool.base, pool.size),
                ));
            }
        }
        for mirror in &config.reloadable.registry_mirrors {
            if !(mirror.starts_with("http://") || mirror.starts_with("https://")) {
                return Err(self.invalid(
                    "registry-mirrors",
                    format!("invalid mirror: {mirror:?}: an http:// or https:// URL"),
                ));
            }
        }
        for (key, value) in [
            (
                "max-concurrent-downloads",
                config.reloadable.max_concurrent_downloads,
            ),
            (
                "max-concurrent-uploads",
                config.reloadable.max_concurrent_uploads,
            ),
        ] {
            if value == Some(0) {
                return Err(self.invalid(key, "must be at least 1"));
            }
        }
        for (name, limit) in config.default_ulimits.iter_mut().flatten() {
            if limit.name != *name || limit.soft > limit.hard {
                return Err(self.invalid(
                    "default-ulimits",
                    format!("{name}: Name must match the key and Soft must not exceed Hard"),
                ));
            }
        }
        Ok(())
    }
}

/// `a.b.c.d/n`.
/// An entry of `default-address-pools`: an IPv4 base with a size up to 32, or an IPv6 base
/// with a size from its prefix length up to 128.
pub(crate) fn valid_address_pool(pool: &AddressPool) -> bool {
    if is_cidr(&pool.base) {
        return pool.size <= 32;
    }
    pool.base.split_once('/').is_some_and(|(addr, len)| {
        addr.parse::<std::net::Ipv6Addr>().is_ok()
            && len
                .parse::<u8>()
                .is_ok_and(|n| n <= 128 && (n..=128).contains(&pool.size))
    })
}

fn is_cidr(text: &str) -> bool {
    text.split_once('/').is_some_and(|(addr, len)| {
        addr.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 32)
    })
}

/// The 1-based line where `"key"` first appears as a key in `text` (1 if not found).
fn key_line(text: &str, key: &str) -> usize {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(found) = text[from..].find(&quoted) {
        let at = from + found;
        let after = text[at + quoted.len()..].trim_start();
        if after.starts_with(':') {
            return text[..at].matches('\n').count() + 1;
        }
        from = at + quoted.len();
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<FileConfig, ConfigError> {
        parse(Path::new("/etc/berth/daemon.json"), text)
    }

    #[test]
    fn every_key_parses() {
        let config = parse_text(
            r#"{
  "data-root": "/srv/berth",
  "exec-root": "/run/b2",
  "hosts": ["unix:///run/b2/berth.sock", "tcp://127.0.0.1:2375"],
  "group": "staff",
  "bridge": "br9",
  "bip": "10.9.0.1/16",
  "default-address-pools": [{"base": "10.100.0.0/16", "size": 24}, {"base": "fd00:db8:80::/48", "size": 64}],
  "insecure-registries": ["127.0.0.1:5000"],
  "registry-mirrors": ["https://mirror.example"],
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"},
  "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}},
  "max-concurrent-downloads": 4,
  "max-concurrent-uploads": 2,
  "debug": true,
  "live-restore": true,
  "runtimes": {"crun": {"path": "/usr/bin/crun"}}
}"#,
        )
        .expect("valid");
        assert_eq!(config.data_root, Some(PathBuf::from("/srv/berth")));
        assert_eq!(config.hosts.as_ref().map(Vec::len), Some(2));
        assert_eq!(config.group.as_deref(), Some("staff"));
        assert_eq!(config.bip.as_deref(), Some("10.9.0.1/16"));
        assert_eq!(config.default_address_pools.as_ref().unwrap()[0].size, 24);
        assert_eq!(
            config.default_address_pools.as_ref().unwrap()[1].base,
            "fd00:db8:80::/48"
        );
        assert_eq!(
            config.default_ulimits.as_ref().unwrap()["nofile"].hard,
            2048
        );
        assert_eq!(config.live_restore, Some(true));
        assert_eq!(
            config.runtimes,
            Some(vec![("crun".into(), PathBuf::from("/usr/bin/crun"))])
        );
        let r = &config.reloadable;
        assert!(r.debug);
        assert_eq!(r.insecure_registries, vec!["127.0.0.1:5000"]);
        assert_eq!(r.registry_mirrors, vec!["https://mirror.example"]);
        assert_eq!(r.log_opts["max-size"], "10m");
        assert_eq!(r.max_concurrent_downloads, Some(4));
        assert_eq!(r.max_concurrent_uploads, Some(2));
        assert_eq!(config.keys.len(), 17);
    }

    #[test]
    fn log_defaults_merge_as_docker_does() {
        use berth_api::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
        let settings = Reloadable {
            log_opts: [("max-size", "1m"), ("max-file", "2")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Reloadable::default()
        };
        let mut body = ContainerCreateBody::default();
        settings.apply_log_defaults(&mut body);
        let log = body
            .host_config
            .as_ref()
            .unwrap()
            .log_config
            .clone()
            .unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config.as_ref().unwrap()["max-size"], "1m");
        let mut body = ContainerCreateBody {
            host_config: Some(HostConfig {
                log_config: Some(HostConfigLogConfig {
                    typ: None,
                    config: Some([("max-size".to_owned(), "5k".to_owned())].into()),
                }),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        settings.apply_log_defaults(&mut body);
        let config = body
            .host_config
            .unwrap()
            .log_config
            .unwrap()
            .config
            .unwrap();
        assert_eq!(config["max-size"], "5k", "the container's own option wins");
        assert_eq!(config["max-file"], "2");
        let mut untouched = ContainerCreateBody::default();
        Reloadable::default().apply_log_defaults(&mut untouched);
        assert!(
            untouched.host_config.is_none(),
            "no defaults: the body is left alone"
        );
    }

    #[test]
    fn empty_files_are_no_configuration() {
        assert_eq!(parse_text("").expect("empty"), FileConfig::default());
        assert_eq!(parse_text(" \n").expect("blank"), FileConfig::default());
        assert_eq!(parse_text("{}").expect("{}"), FileConfig::default());
    }

    #[test]
    fn unknown_keys_are_all_named() {
        let error = parse_text(r#"{"debug": true, "storage-driver": "x", "bogus": 1}"#)
            .expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "unable to configure the berth daemon with file /etc/berth/daemon.json: the following directives don't match any configuration option: bogus, storage-driver"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = parse_text("{\n  \"debug\": true,\n  \"group\" \"berth\"\n}").expect_err("bad");
        let message = error.to_string();
        assert!(message.contains("line 3"), "{message}");
        let error = parse_text("[1]").expect_err("not an object");
        assert!(
            error.to_string().contains("must be a JSON object"),
            "{error}"
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_its_line() {
        let error =
            parse_text("{\n  \"group\": \"berth\",\n  \"debug\": \"yes\"\n}").expect_err("bad");
        match &error {
            ConfigError::InvalidValue { key, line, .. } => {
                assert_eq!((key.as_str(), *line), ("debug", 3));
            }
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().contains("\"debug\" at line 3"), "{error}");
    }

    #[test]
    fn nonsense_values_are_refused() {
        for text in [
            r#"{"bip": "10.0.0.1"}"#,
            r#"{"default-address-pools": [{"base": "10.0.0.0/8", "size": 40}]}"#,
            r#"{"default-address-pools": [{"base": "fd00:db8::/48", "size": 40}]}"#,
            r#"{"default-address-pools": [{"base": "fd00:db8::/48", "size": 129}]}"#,
            r#"{"registry-mirrors": ["mirror.example"]}"#,
            r#"{"max-concurrent-downloads": 0}"#,
            r#"{"default-ulimits": {"nofile": {"Name": "nproc", "Soft": 1, "Hard": 2}}}"#,
            r#"{"runtimes": {"x": {"path": "rel/bin"}}}"#,
            r#"{"add-runtime": ["nopath"]}"#,
        ] {
            assert!(
                matches!(parse_text(text), Err(ConfigError::InvalidValue { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn key_lines_skip_values_that_look_like_keys() {
        let text = "{\n \"group\": \"debug\",\n \"debug\": 1\n}";
        assert_eq!(key_line(text, "debug"), 3);
        assert_eq!(key_line(text, "group"), 2);
        assert_eq!(key_line(text, "missing"), 1);
    }

    #[test]
    fn missing_default_file_is_fine_missing_explicit_file_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("daemon.json");
        assert_eq!(load(&path, false).expect("optional"), FileConfig::default());
        assert!(matches!(load(&path, true), Err(ConfigError::Read { .. })));
        std::fs::write(&path, r#"{"debug": true}"#).expect("write");
        assert!(load(&path, true).expect("read").reloadable.debug);
    }
}
