//! Docker's logging drivers on the daemon's side: which driver and options a container gets
//! (its own, else the daemon's defaults: `--log-driver`/`--log-opt` or daemon.json), their validation in Docker's
//! words, and what the monitor is told ([`berth_monitor::logdriver::LogDriver`]).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use berth_api::models::HostConfigLogConfig;
use berth_monitor::logdriver::{JournaldConfig, LogDriver, SyslogConfig};

/// journald's native socket.
pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// Docker's answer to `logs` on a driver that keeps nothing to read.
pub const NOT_READABLE: &str = "configured logging driver does not support reading";

/// The daemon-wide default (`berth daemon --log-driver --log-opt`, daemon.json's
/// `log-driver`/`log-opts`; the daemon's `Reloadable` holds it, `SIGHUP` reloads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDefaults {
    /// The driver.
    pub driver: String,
    /// Its options.
    pub opts: HashMap<String, String>,
}

impl Default for LogDefaults {
    fn default() -> Self {
        LogDefaults {
            driver: "json-file".into(),
            opts: HashMap::new(),
        }
    }
}

const DRIVERS: &[&str] = &["json-file", "local", "none", "syslog", "journald"];

/// Options every driver takes (Docker's `logger.ValidateLogOpts`).
const COMMON: &[&str] = &["mode", "max-buffer-size"];

fn known_opts(driver: &str) -> &'static [&'static str] {
    match driver {
        "json-file" => &[
            "max-file",
            "max-size",
            "compress",
            "labels",
            "labels-regex",
            "env",
            "env-regex",
            "tag",
        ],
        "local" => &["max-file", "max-size", "compress"],
        "syslog" => &[
            "env",
            "env-regex",
            "labels",
            "labels-regex",
            "syslog-address",
            "syslog-facility",
            "syslog-tls-ca-cert",
            "syslog-tls-cert",
            "syslog-tls-key",
            "syslog-tls-skip-verify",
            "tag",
            "syslog-format",
        ],
        "journald" => &["env", "env-regex", "labels", "labels-regex", "tag"],
        _ => &[],
    }
}

const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "", "", "", "", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
];

/// Fills in the daemon's default driver and, when the container's driver is the default
/// one, each default option it does not set itself (dockerd's `mergeAndVerifyLogConfig`).
pub fn merge_defaults(log: &mut HostConfigLogConfig, defaults: &LogDefaults) {
    if log.typ.as_deref().is_none_or(str::is_empty) {
        log.typ = Some(defaults.driver.clone());
    }
    let opts = log.config.get_or_insert_with(HashMap::new);
    if log.typ.as_deref() == Some(defaults.driver.as_str()) {
        for (key, value) in &defaults.opts {
            opts.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
}

/// [`merge_defaults`], then [`validate`] the result.
pub fn resolve(log: &mut HostConfigLogConfig, defaults: &LogDefaults) -> Result<(), String> {
    merge_defaults(log, defaults);
    let driver = log.typ.clone().unwrap_or_default();
    validate(&driver, log.config.get_or_insert_with(HashMap::new))
}

/// Docker's checks of a driver and its options; each error one line in Docker's words.
pub fn validate(driver: &str, opts: &HashMap<String, String>) -> Result<(), String> {
    if !DRIVERS.contains(&driver) {
        return Err(format!(
            "logger: no log driver named '{driver}' is registered"
        ));
    }
    let mut keys: Vec<&String> = opts.keys().collect();
    keys.sort();
    for key in keys {
        let value = &opts[key];
        if !COMMON.contains(&key.as_str()) && !known_opts(driver).contains(&key.as_str()) {
            return Err(format!("unknown log opt '{key}' for {driver} log driver"));
        }
        match key.as_str() {
            "mode" if !matches!(value.as_str(), "" | "blocking" | "non-blocking") => {
                return Err(format!("logger: logging mode not supported: {value}"));
            }
            "max-buffer-size" if opts.get("mode").map(String::as_str) != Some("non-blocking") => {
                return Err(
                    "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
                        .into(),
                );
            }
            "max-size" | "max-buffer-size" if parse_size(value).is_none() => {
                return Err(format!("invalid size: '{value}'"));
            }
            "max-file" if value.parse::<u32>().map_or(true, |n| n < 1) => {
                return Err(format!("strconv.Atoi: parsing \"{value}\": invalid syntax"));
            }
            "compress" if value.parse::<bool>().is_err() => {
                return Err(format!(
                    "error reading compress log option: strconv.ParseBool: parsing \"{value}\": invalid syntax"
                ));
            }
            "syslog-address" => {
                syslog_address(value)?;
            }
            "syslog-facility" => {
                facility(value)?;
            }
            "syslog-format"
                if !matches!(value.as_str(), "" | "rfc3164" | "rfc5424" | "rfc5424micro") =>
            {
                return Err(format!("Invalid syslog format: {value}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `20m`, `1g`, `100k`, `512` → bytes (decimal units, as Docker's `--log-opt max-size`).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1000u64),
        'm' => (&s[..s.len() - 1], 1000 * 1000),
        'g' => (&s[..s.len() - 1], 1000 * 1000 * 1000),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// `proto://address` of `syslog-address`: (proto, address); a bare `host:port` gets 514.
fn syslog_address(value: &str) -> Result<(String, String), String> {
    let Some((proto, rest)) = value.split_once("://") else {
        return Err(format!(
            "syslog-address should be in form proto://address, got {value}"
        ));
    };
    match proto {
        "unix" | "unixgram" => Ok((proto.to_string(), rest.to_string())),
        "udp" | "tcp" => {
            let has_port = rest.rsplit_once(':').is_some_and(|(host, port)| {
                !port.is_empty() && (!host.contains(':') || host.ends_with(']'))
            });
            let address = if has_port {
                rest.to_string()
            } else {
                format!("{rest}:514")
            };
            Ok((proto.to_string(), address))
        }
        "tcp+tls" => Err("syslog over TLS is not supported by berth".into()),
        _ => Err(format!("unsupported scheme: '{proto}'")),
    }
}

fn facility(value: &str) -> Result<u8, String> {
    if value.is_empty() {
        return Ok(3);
    }
    if let Ok(n) = value.parse::<u8>()
        && n <= 23
    {
        return Ok(n);
    }
    FACILITIES
        .iter()
        .position(|f| !f.is_empty() && *f == value)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| "invalid syslog facility".to_string())
}

/// What a container's log tag is: `tag` with Docker's template fields, else the short id.
fn tag(opts: &HashMap<String, String>, who: &Who<'_>) -> String {
    let template = opts
        .get("tag")
        .filter(|t| !t.is_empty())
        .map_or("{{.ID}}", String::as_str);
    template
        .replace("{{.ID}}", &who.id[..12.min(who.id.len())])
        .replace("{{.FullID}}", who.id)
        .replace("{{.Name}}", who.name)
        .replace("{{.ImageName}}", who.image)
        .replace("{{.ImageID}}", &who.image_id[..12.min(who.image_id.len())])
        .replace("{{.ImageFullID}}", who.image_id)
        .replace("{{.DaemonName}}", "docker")
}

/// The container a log is for.
#[derive(Debug)]
pub struct Who<'a> {
    /// Full id.
    pub id: &'a str,
    /// Name without the leading `/`.
    pub name: &'a str,
    /// Image as given.
    pub image: &'a str,
    /// Image id (`sha256:` stripped).
    pub image_id: &'a str,
}

/// The driver the monitor runs, from a container's (resolved) log config. A destination that
/// is not there fails here, as Docker's "failed to initialize logging driver".
pub fn monitor_driver(
    log: Option<&HostConfigLogConfig>,
    who: &Who<'_>,
    journald_socket: &Path,
) -> Result<LogDriver, String> {
    let driver = log.and_then(|l| l.typ.as_deref()).unwrap_or("json-file");
    let empty = HashMap::new();
    let opts = log.and_then(|l| l.config.as_ref()).unwrap_or(&empty);
    Ok(match driver {
        "" | "json-file" => LogDriver::JsonFile,
        "local" => LogDriver::Local {
            compress: opts.get("compress").is_none_or(|c| c != "false"),
        },
        "none" => LogDriver::None,
        "syslog" => {
            let (proto, address) = match opts.get("syslog-address").filter(|a| !a.is_empty()) {
                Some(address) => syslog_address(address)?,
                None => ("unix".to_string(), "/dev/log".to_string()),
            };
            LogDriver::Syslog(SyslogConfig {
                proto,
                address,
                facility: facility(opts.get("syslog-facility").map_or("", String::as_str))?,
                tag: tag(opts, who),
                format: opts.get("syslog-format").cloned().unwrap_or_default(),
            })
        }
        "journald" => {
            if !journald_socket.exists() {
                return Err(
                    "failed to initialize logging driver: journald is not enabled on this host"
                        .into(),
                );
            }
            LogDriver::Journald(JournaldConfig {
                socket: journald_socket.to_path_buf(),
                id: who.id.to_string(),
                name: who.name.to_string(),
                image: who.image.to_string(),
                tag: tag(opts, who),
            })
        }
        other => {
            return Err(format!(
                "logger: no log driver named '{other}' is registered"
            ));
        }
    })
}

/// Whether `logs` can read the driver's output back.
pub fn readable(log: Option<&HostConfigLogConfig>) -> bool {
    matches!(
        log.and_then(|l| l.typ.as_deref()).unwrap_or("json-file"),
        "" | "json-file" | "local"
    )
}

/// Whether the driver is `local` (protobuf entries).
pub fn is_local(log: Option<&HostConfigLogConfig>) -> bool {
    log.and_then(|l| l.typ.as_deref()) == Some("local")
}

/// `LogPath` in inspect: as dockerd, json-file's path, else empty.
pub fn inspect_log_path(json_file: &Path, log: Option<&HostConfigLogConfig>) -> String {
    if readable(log) && !is_local(log) {
        json_file.display().to_string()
    } else {
        String::new()
    }
}

/// The log file of a container: json-file's `<id>-json.log`, local's
/// `local-logs/container.log` (both in the container's data dir, as dockerd keeps them).
pub fn log_file(data_dir: &Path, id: &str, log: Option<&HostConfigLogConfig>) -> PathBuf {
    if is_local(log) {
        data_dir.join("local-logs").join("container.log")
    } else {
        data_dir.join(format!("{id}-json.log"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[(&str, &str)]) -> HashMap<String, String> {
        list.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn drivers_and_options_are_checked_in_dockers_words() {
        assert_eq!(
            validate("foo", &opts(&[])),
            Err("logger: no log driver named 'foo' is registered".into())
        );
        assert_eq!(
            validate("json-file", &opts(&[("foo", "1")])),
            Err("unknown log opt 'foo' for json-file log driver".into())
        );
        assert!(validate("local", &opts(&[("max-size", "10m"), ("max-file", "3")])).is_ok());
        assert!(
            validate(
                "syslog",
                &opts(&[("syslog-address", "udp://127.0.0.1:5140")])
            )
            .is_ok()
        );
        assert_eq!(
            validate("syslog", &opts(&[("syslog-address", "127.0.0.1")])),
            Err("syslog-address should be in form proto://address, got 127.0.0.1".into())
        );
        assert_eq!(
            validate("syslog", &opts(&[("syslog-facility", "nope")])),
            Err("invalid syslog facility".into())
        );
        assert_eq!(
            validate("none", &opts(&[("max-size", "1m")])),
            Err("unknown log opt 'max-size' for none log driver".into())
        );
        assert_eq!(
            validate("json-file", &opts(&[("mode", "fast")])),
            Err("logger: logging mode not supported: fast".into())
        );
    }

    #[test]
    fn the_daemon_default_fills_in() {
        let defaults = LogDefaults {
            driver: "local".into(),
            opts: opts(&[("max-size", "1m")]),
        };
        let mut log = HostConfigLogConfig::default();
        resolve(&mut log, &defaults).unwrap();
        assert_eq!(log.typ.as_deref(), Some("local"));
        assert_eq!(log.config.as_ref().unwrap()["max-size"], "1m");
        let mut log = HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: None,
        };
        resolve(&mut log, &defaults).unwrap();
        assert!(
            log.config.unwrap().is_empty(),
            "another driver's options stay out"
        );
        let mut log = HostConfigLogConfig {
            typ: None,
            config: Some(opts(&[("max-file", "2")])),
        };
        resolve(&mut log, &defaults).unwrap();
        let config = log.config.unwrap();
        assert_eq!(config["max-file"], "2", "the container's own option stays");
        assert_eq!(
            config["max-size"], "1m",
            "the default's other options are added"
        );
    }

    #[test]
    fn syslog_addresses_and_tags() {
        assert_eq!(
            syslog_address("udp://127.0.0.1").unwrap(),
            ("udp".into(), "127.0.0.1:514".into())
        );
        assert_eq!(
            syslog_address("unix:///dev/log").unwrap(),
            ("unix".into(), "/dev/log".into())
        );
        let who = Who {
            id: "0123456789abcdef",
            name: "web",
            image: "busybox",
            image_id: "fedcba9876543210",
        };
        assert_eq!(tag(&opts(&[]), &who), "0123456789ab");
        assert_eq!(
            tag(&opts(&[("tag", "{{.Name}}/{{.ImageName}}")]), &who),
            "web/busybox"
        );
        let missing = Path::new("/nonexistent/journal.sock");
        let journald = HostConfigLogConfig {
            typ: Some("journald".into()),
            config: None,
        };
        assert_eq!(
            monitor_driver(Some(&journald), &who, missing),
            Err("failed to initialize logging driver: journald is not enabled on this host".into())
        );
    }
}
