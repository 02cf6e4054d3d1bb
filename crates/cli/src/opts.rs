//! `run`/`create` flags and their translation into Docker's create body, with docker's parsing
//! of sizes, CPUs, ulimits, restart policies, env files, ports and mounts.
use std::collections::HashMap;

use berth_api::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig,
    HostConfigLogConfig, NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum,
};
use clap::Args;

use crate::CliError;

/// The flags `run` and `create` share.
#[derive(Debug, Args, Default, Clone)]
pub struct CreateFlags {
    /// Attach to STDIN, STDOUT or STDERR.
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name.
    #[arg(long)]
    pub domainname: Option<String>,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Restart policy to apply when a container exits.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Memory limit.
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap.
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS period.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS quota.
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited).
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Security Options.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Ulimit options.
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Connect a container to a network.
    #[arg(long = "network", visible_alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container.
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address.
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address.
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container MAC address.
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Set meta data on a container.
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels.
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Runtime to use for this container.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Logging driver for the container.
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options.
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Publish a container's port(s) to the host.
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports.
    #[arg(long)]
    pub expose: Vec<String>,
    /// Bind mount a volume.
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container.
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s).
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Mount a tmpfs directory.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// Size of /dev/shm.
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Sysctl options.
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Tune host's OOM preferences (-1000 to 1000).
    #[arg(long = "oom-score-adj")]
    pub oom_score_adj: Option<i64>,
    /// Tune container memory swappiness (0 to 100).
    #[arg(long = "memory-swappiness", allow_negative_numbers = true)]
    pub memory_swappiness: Option<i64>,
    /// Disable OOM Killer.
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Limit CPU real-time period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<i64>,
    /// Limit CPU real-time runtime in microseconds.
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    /// Add a rule to the cgroup allowed devices list.
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// IPC mode to use.
    #[arg(long)]
    pub ipc: Option<String>,
    /// PID namespace to use.
    #[arg(long)]
    pub pid: Option<String>,
    /// UTS namespace to use.
    #[arg(long)]
    pub uts: Option<String>,
    /// Add link to another container (name[:alias]).
    #[arg(long = "link")]
    pub link: Vec<String>,
    /// Command to run to check health.
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h).
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries", allow_hyphen_values = true)]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries
    /// countdown (ms|s|m|h).
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h).
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// User namespace to use (`host` opts out of the daemon's --userns-remap).
    #[arg(long)]
    pub userns: Option<String>,
    /// Add additional groups to join.
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Pull image before running ("always", "missing", "never").
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress the pull output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The image, then the command and its arguments. One list, so that everything after
    /// the image belongs to the command (`run busybox sh -c …`: `-c` is not `--cpu-shares`).
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub image_and_command: Vec<String>,
}

impl CreateFlags {
    /// The image.
    pub fn image(&self) -> &str {
        self.image_and_command
            .first()
            .map(String::as_str)
            .unwrap_or("")
    }
    /// The command after the image.
    pub fn command(&self) -> &[String] {
        self.image_and_command.get(1..).unwrap_or(&[])
    }
}

fn flag_err(value: &str, flag: &str, why: impl std::fmt::Display) -> CliError {
    CliError::msg(format!(
        "invalid argument \"{value}\" for \"{flag}\" flag: {why}"
    ))
    .with_code(125)
}

/// docker's RAMInBytes: `512m`, `1g`, `1024` (binary units, case-insensitive, optional `b`).
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|r| !r.is_empty() && r.chars().last().is_some_and(|c| c.is_ascii_alphabetic()))
        .unwrap_or(&t);
    let (num, mult): (&str, i64) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    if n < 0.0 {
        return Err(format!("invalid size: '{s}'"));
    }
    Ok((n * mult as f64) as i64)
}

/// `--cpus 1.5` → nano CPUs.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("failed to parse {s} as a rational number"))?;
    if !(v.is_finite()) || v < 0.0 {
        return Err(format!("failed to parse {s} as a rational number"));
    }
    Ok((v * 1e9).round() as i64)
}

/// `nofile=1024:2048`.
pub fn parse_ulimit(s: &str) -> Result<ResourcesUlimits, String> {
    let (name, vals) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (a, b),
        None => (vals, vals),
    };
    let soft: i64 = soft
        .parse()
        .map_err(|_| format!("invalid ulimit soft value: {soft}"))?;
    let hard: i64 = hard
        .parse()
        .map_err(|_| format!("invalid ulimit hard value: {hard}"))?;
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

/// `no`, `always`, `unless-stopped`, `on-failure[:N]`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy, String> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    let n = match name {
        "" | "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => return Err(format!("invalid restart policy '{name}'")),
    };
    let max = match count {
        Some(c) => {
            if n != RestartPolicyNameEnum::ON_FAILURE {
                return Err(format!(
                    "restart count format is not valid, usage: 'on-failure:N' or 'on-failure' ({s})"
                ));
            }
            c.parse::<i64>()
                .map_err(|_| format!("restart count format is not valid: {c}"))?
        }
        None => 0,
    };
    Ok(RestartPolicy {
        name: Some(n),
        maximum_retry_count: Some(max),
    })
}

/// Reads `KEY=value` lines (and bare `KEY`, taken from our environment), skipping comments.
pub fn read_kv_file(path: &str) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::msg(format!("open {path}: {e}")).with_code(125))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        out.push(env_entry(l));
    }
    Ok(out)
}

/// `-e KEY` takes KEY from the local environment, as docker does.
fn env_entry(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        match std::env::var(e) {
            Ok(v) => format!("{e}={v}"),
            Err(_) => e.to_string(),
        }
    }
}

/// One `-p` spec → (`80/tcp`, binding).
pub fn parse_publish(s: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, p),
        None => (s, "tcp"),
    };
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [c, h] => ("", *h, *c),
        [c, h, i] => (*i, *h, *c),
        _ => return Err(format!("invalid port format: {s}")),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let range = |r: &str| -> Result<(u16, u16), String> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: u16 = a
            .parse()
            .map_err(|_| format!("invalid containerPort: {r}"))?;
        let b: u16 = b
            .parse()
            .map_err(|_| format!("invalid containerPort: {r}"))?;
        Ok((a, b))
    };
    let (c0, c1) = range(ctr)?;
    let hr = if host.is_empty() {
        None
    } else {
        Some(range(host).map_err(|_| format!("invalid hostPort: {host}"))?)
    };
    let mut out = Vec::new();
    for (i, port) in (c0..=c1).enumerate() {
        let hp = match hr {
            Some((h0, h1)) if h0 == h1 => h0.to_string(),
            Some((h0, _)) => (h0 + i as u16).to_string(),
            None => String::new(),
        };
        out.push((
            format!("{port}/{proto}"),
            PortBinding {
                host_ip: Some(ip.to_string()),
                host_port: Some(hp),
            },
        ));
    }
    Ok(out)
}

/// Splits a user's `--entrypoint` like docker: one string, one element.
fn entrypoint(e: &Option<String>) -> Option<Vec<String>> {
    e.as_ref().map(|s| {
        if s.is_empty() {
            vec![String::new()]
        } else {
            vec![s.clone()]
        }
    })
}

/// Builds the create body from the flags.
pub fn create_body(f: &CreateFlags) -> Result<(ContainerCreateBody, Option<String>), CliError> {
    let mut env = Vec::new();
    for path in &f.env_file {
        env.extend(read_kv_file(path)?);
    }
    env.extend(f.env.iter().map(|e| env_entry(e)));
    let labels = labels(f)?;
    let (exposed, bindings) = ports(f)?;
    let network = f.network.clone().unwrap_or_else(|| "default".into());
    let attach_all = f.attach.is_empty();
    // `-v /path` alone is an anonymous volume: docker sends it in Config.Volumes.
    let anon_volumes: Vec<String> = f
        .volume
        .iter()
        .filter(|v| !v.contains(':'))
        .cloned()
        .collect();
    let host_config = host_config(f, &network, bindings)?;
    let networking_config = networking_config(f, &network);
    let want = |s: &str| attach_all || f.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
    let body = ContainerCreateBody {
        hostname: f.hostname.clone(),
        domainname: f.domainname.clone(),
        user: f.user.clone(),
        attach_stdin: Some(f.interactive && want("stdin")),
        attach_stdout: Some(want("stdout")),
        attach_stderr: Some(want("stderr")),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(f.tty),
        open_stdin: Some(f.interactive),
        stdin_once: Some(f.interactive),
        env: (!env.is_empty()).then_some(env),
        cmd: (!f.command().is_empty()).then(|| f.command().to_vec()),
        image: Some(f.image().to_string()),
        working_dir: f.workdir.clone(),
        volumes: (!anon_volumes.is_empty()).then_some(anon_volumes),
        entrypoint: entrypoint(&f.entrypoint),
        labels: Some(labels),
        stop_signal: f.stop_signal.clone(),
        stop_timeout: f.stop_timeout,
        healthcheck: healthcheck(f)?,
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    };
    Ok((body, f.name.clone()))
}

/// The docker CLI's `Healthcheck` from `--health-*` and `--no-healthcheck` (none when no
/// flag is given: the image's applies).
fn healthcheck(f: &CreateFlags) -> Result<Option<HealthConfig>, CliError> {
    let duration = |value: &Option<String>, flag: &str| -> Result<i64, CliError> {
        value
            .as_deref()
            .map(|v| {
                berth_api::time::parse_go_duration(v)
                    .map_err(|e| flag_err(v, &format!("--{flag}"), e))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let interval = duration(&f.health_interval, "health-interval")?;
    let timeout = duration(&f.health_timeout, "health-timeout")?;
    let start_period = duration(&f.health_start_period, "health-start-period")?;
    let start_interval = duration(&f.health_start_interval, "health-start-interval")?;
    let retries = f.health_retries.unwrap_or(0);
    let cmd = f.health_cmd.clone().unwrap_or_default();
    let given = !cmd.is_empty()
        || [interval, timeout, start_period, start_interval, retries]
            .iter()
            .any(|v| *v != 0);
    let refuse = |m: &str| Err(CliError::msg(m).with_code(125));
    if f.no_healthcheck {
        if given {
            return refuse("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        }));
    }
    if !given {
        return Ok(None);
    }
    for (value, flag) in [
        (interval, "interval"),
        (timeout, "timeout"),
        (retries, "retries"),
        (start_period, "start-period"),
        (start_interval, "start-interval"),
    ] {
        if value < 0 {
            return refuse(&format!("--health-{flag} cannot be negative"));
        }
    }
    Ok(Some(HealthConfig {
        test: (!cmd.is_empty()).then(|| vec!["CMD-SHELL".into(), cmd]),
        interval: Some(interval),
        timeout: Some(timeout),
        start_period: Some(start_period),
        start_interval: Some(start_interval),
        retries: Some(retries),
    }))
}

/// A byte size flag (`-m 512m`).
fn byte_size(value: Option<&str>, flag: &str) -> Result<Option<i64>, CliError> {
    value
        .map(|m| parse_bytes(m).map_err(|e| flag_err(m, flag, e)))
        .transpose()
}

/// Repeated `KEY=VALUE` flags as a map; a value without `=` is refused with `reason`.
fn key_value_flags(
    values: &[String],
    flag: &str,
    reason: &str,
) -> Result<HashMap<String, String>, CliError> {
    let mut map = HashMap::new();
    for value in values {
        let (k, v) = value
            .split_once('=')
            .ok_or_else(|| flag_err(value, flag, reason))?;
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
}

/// The create body's `HostConfig`: resources, restart policy, mounts, ports, security, logs.
fn host_config(
    f: &CreateFlags,
    network: &str,
    bindings: HashMap<String, Option<Vec<PortBinding>>>,
) -> Result<HostConfig, CliError> {
    let memory = byte_size(f.memory.as_deref(), "-m, --memory")?;
    let memory_swap = f
        .memory_swap
        .as_deref()
        .map(|m| {
            if m == "-1" {
                Ok(-1)
            } else {
                parse_bytes(m).map_err(|e| flag_err(m, "--memory-swap", e))
            }
        })
        .transpose()?;
    let memory_reservation = byte_size(f.memory_reservation.as_deref(), "--memory-reservation")?;
    let shm_size = byte_size(f.shm_size.as_deref(), "--shm-size")?;
    let nano_cpus = f
        .cpus
        .as_deref()
        .map(|c| parse_cpus(c).map_err(|e| flag_err(c, "--cpus", e)))
        .transpose()?;
    let ulimits = f
        .ulimit
        .iter()
        .map(|u| parse_ulimit(u).map_err(|e| flag_err(u, "--ulimit", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let restart = parse_restart(&f.restart).map_err(|e| flag_err(&f.restart, "--restart", e))?;
    let security_opt = security_opts(&f.security_opt)?;
    let tmpfs = tmpfs_map(&f.tmpfs);
    let sysctls = key_value_flags(&f.sysctl, "--sysctl", "sysctl must be KEY=VALUE")?;
    let log_opts = key_value_flags(&f.log_opt, "--log-opt", "must be KEY=VALUE")?;
    // `-v /path` alone is an anonymous volume (in Config.Volumes): only binds go here.
    let binds: Vec<String> = f
        .volume
        .iter()
        .filter(|v| v.contains(':'))
        .cloned()
        .collect();
    let mut mounts = Vec::new();
    for m in &f.mount {
        mounts.push(parse_mount_flag(m).map_err(|e| flag_err(m, "--mount", e))?);
    }
    Ok(HostConfig {
        binds: (!binds.is_empty()).then_some(binds),
        mounts: (!mounts.is_empty()).then_some(mounts),
        network_mode: Some(network.to_owned()),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        restart_policy: Some(restart),
        auto_remove: Some(f.rm),
        volumes_from: (!f.volumes_from.is_empty()).then(|| f.volumes_from.clone()),
        cap_add: (!f.cap_add.is_empty()).then(|| f.cap_add.clone()),
        cap_drop: (!f.cap_drop.is_empty()).then(|| f.cap_drop.clone()),
        dns: (!f.dns.is_empty()).then(|| f.dns.clone()),
        dns_search: (!f.dns_search.is_empty()).then(|| f.dns_search.clone()),
        dns_options: (!f.dns_option.is_empty()).then(|| f.dns_option.clone()),
        extra_hosts: (!f.add_host.is_empty()).then(|| f.add_host.clone()),
        group_add: (!f.group_add.is_empty()).then(|| f.group_add.clone()),
        links: (!f.link.is_empty()).then(|| f.link.clone()),
        ipc_mode: f.ipc.clone(),
        pid_mode: f.pid.clone(),
        uts_mode: f.uts.clone(),
        userns_mode: f.userns.clone(),
        oom_score_adj: f.oom_score_adj,
        memory_swappiness: f.memory_swappiness.filter(|v| *v != -1),
        oom_kill_disable: f.oom_kill_disable.then_some(true),
        cpuset_mems: f.cpuset_mems.clone(),
        cpu_realtime_period: f.cpu_rt_period,
        cpu_realtime_runtime: f.cpu_rt_runtime,
        device_cgroup_rules: (!f.device_cgroup_rule.is_empty())
            .then(|| f.device_cgroup_rule.clone()),
        privileged: Some(f.privileged),
        publish_all_ports: Some(f.publish_all),
        readonly_rootfs: Some(f.read_only),
        security_opt: (!security_opt.is_empty()).then_some(security_opt),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        sysctls: (!sysctls.is_empty()).then_some(sysctls),
        shm_size,
        runtime: f.runtime.clone(),
        init: f.init.then_some(true),
        memory,
        memory_swap,
        memory_reservation,
        nano_cpus,
        cpu_shares: f.cpu_shares,
        cpu_period: f.cpu_period,
        cpu_quota: f.cpu_quota,
        cpuset_cpus: f.cpuset_cpus.clone(),
        pids_limit: f.pids_limit,
        ulimits: (!ulimits.is_empty()).then_some(ulimits),
        log_config: Some(HostConfigLogConfig {
            typ: Some(f.log_driver.clone().unwrap_or_default()),
            config: Some(log_opts),
        }),
        console_size: if f.tty {
            crate::tty::size().map(|(h, w)| vec![h as usize, w as usize])
        } else {
            Some(vec![0, 0])
        },
        ..Default::default()
    })
}

/// `--tmpfs DIR[:OPTIONS]` as HostConfig.Tmpfs.
fn tmpfs_map(flags: &[String]) -> HashMap<String, String> {
    flags
        .iter()
        .map(|t| {
            let (d, o) = t.split_once(':').unwrap_or((t, ""));
            (d.to_string(), o.to_string())
        })
        .collect()
}

/// Exposed ports and the bindings of published ones, as the create body carries them.
type PublishedPorts = (Vec<String>, HashMap<String, Option<Vec<PortBinding>>>);

/// `--label-file` then `--label`: `KEY[=VALUE]` each.
fn labels(f: &CreateFlags) -> Result<HashMap<String, String>, CliError> {
    let mut labels: HashMap<String, String> = HashMap::new();
    for path in &f.label_file {
        for l in read_kv_file(path)? {
            let (k, v) = l.split_once('=').unwrap_or((&l, ""));
            labels.insert(k.to_string(), v.to_string());
        }
    }
    for l in &f.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

/// `--security-opt`, with a `seccomp=FILE` profile read and inlined as docker's CLI does.
fn security_opts(opts: &[String]) -> Result<Vec<String>, CliError> {
    let mut security_opt = Vec::new();
    for o in opts {
        match o.split_once(['=', ':']) {
            Some(("seccomp", v)) if v != "unconfined" && !v.trim_start().starts_with('{') => {
                let text = std::fs::read_to_string(v).map_err(|e| {
                    CliError::msg(format!("opening seccomp profile ({v}) failed: {e}"))
                        .with_code(125)
                })?;
                let compact: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    CliError::msg(format!("decoding seccomp profile failed: {e}")).with_code(125)
                })?;
                security_opt.push(format!("seccomp={compact}"));
            }
            _ => security_opt.push(o.clone()),
        }
    }
    Ok(security_opt)
}

/// `-p` and `--expose`: the exposed ports, in order, and the host bindings of published ones.
fn ports(f: &CreateFlags) -> Result<PublishedPorts, CliError> {
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &f.publish {
        for (port, b) in parse_publish(p).map_err(|e| flag_err(p, "-p, --publish", e))? {
            if !exposed.contains(&port) {
                exposed.push(port.clone());
            }
            bindings
                .entry(port)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(b);
        }
    }
    for e in &f.expose {
        let port = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        if !exposed.contains(&port) {
            exposed.push(port);
        }
    }
    Ok((exposed, bindings))
}

/// `--ip`, `--mac-address` and `--network-alias`: the endpoint settings of `network`.
fn networking_config(f: &CreateFlags, network: &str) -> Option<NetworkingConfig> {
    if f.ip.is_some() || f.ip6.is_some() || f.mac_address.is_some() || !f.network_alias.is_empty() {
        let net = if network == "default" {
            "bridge".to_string()
        } else {
            network.to_owned()
        };
        Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                net,
                EndpointSettings {
                    ipam_config: (f.ip.is_some() || f.ip6.is_some()).then(|| EndpointIpamConfig {
                        ipv4_address: f.ip.clone(),
                        ipv6_address: f.ip6.clone(),
                        ..Default::default()
                    }),
                    mac_address: f.mac_address.clone(),
                    aliases: (!f.network_alias.is_empty()).then(|| f.network_alias.clone()),
                    ..Default::default()
                },
            )])),
        })
    } else {
        None
    }
}

/// Parses docker's `--mount type=…,source=…,target=…[,readonly][,…]` CSV.
fn parse_mount_flag(spec: &str) -> Result<berth_api::models::Mount, String> {
    use berth_api::models::{
        Mount, MountBindOptions, MountTmpfsOptions, MountType, MountVolumeOptions,
        MountVolumeOptionsDriverConfig,
    };
    let mut m = Mount {
        typ: Some(MountType::VOLUME),
        ..Default::default()
    };
    let mut bind = MountBindOptions::default();
    let mut vol = MountVolumeOptions::default();
    let mut tmpfs = MountTmpfsOptions::default();
    let mut driver_opts: HashMap<String, String> = HashMap::new();
    let truthy = |v: Option<&str>| -> Result<bool, String> {
        match v {
            None | Some("1" | "true") => Ok(true),
            Some("0" | "false") => Ok(false),
            Some(other) => Err(format!("invalid value {other:?}")),
        }
    };
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || v.ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"));
        match k.as_str() {
            "type" => {
                m.typ = Some(
                    need()?
                        .parse()
                        .map_err(|_| format!("invalid mount type {:?}", v.unwrap_or("")))?,
                )
            }
            "source" | "src" => m.source = Some(need()?.to_string()),
            "target" | "dst" | "destination" => m.target = Some(need()?.to_string()),
            "readonly" | "ro" => m.read_only = Some(truthy(v)?),
            "consistency" => {}
            "bind-propagation" => {
                bind.propagation = Some(need()?.parse().map_err(|e: String| e)?);
            }
            "bind-create-mountpoint" => bind.create_mountpoint = Some(truthy(v)?),
            "volume-nocopy" => vol.no_copy = Some(truthy(v)?),
            "volume-driver" => {
                vol.driver_config.get_or_insert_with(Default::default).name =
                    Some(need()?.to_string());
            }
            "volume-label" => {
                let (lk, lv) = need()?.split_once('=').unwrap_or((need()?, ""));
                vol.labels
                    .get_or_insert_with(HashMap::new)
                    .insert(lk.into(), lv.into());
            }
            "volume-opt" => {
                let (ok, ov) = need()?.split_once('=').unwrap_or((need()?, ""));
                driver_opts.insert(ok.into(), ov.into());
            }
            "tmpfs-size" => {
                tmpfs.size_bytes = Some(parse_bytes(need()?).map_err(|e| e.to_string())?);
            }
            "tmpfs-mode" => {
                tmpfs.mode =
                    Some(i64::from_str_radix(need()?, 8).map_err(|e| format!("tmpfs-mode: {e}"))?);
            }
            other => return Err(format!("unexpected key '{other}' in '{field}'")),
        }
    }
    if !driver_opts.is_empty() {
        let dc: &mut MountVolumeOptionsDriverConfig =
            vol.driver_config.get_or_insert_with(Default::default);
        dc.options = Some(driver_opts);
    }
    match m.typ {
        Some(MountType::BIND) => m.bind_options = Some(bind),
        Some(MountType::VOLUME) => m.volume_options = Some(vol),
        Some(MountType::TMPFS) => m.tmpfs_options = Some(tmpfs),
        _ => {}
    }
    if m.target.as_deref().unwrap_or("").is_empty() {
        return Err("target is required".into());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1GB"), Ok(1 << 30));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("1.5k"), Ok(1536));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1m").is_err());
    }

    #[test]
    fn cpus_restart_ulimits_parse() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert!(parse_cpus("x").is_err());
        let r = parse_restart("on-failure:3").unwrap();
        assert_eq!(
            (r.name, r.maximum_retry_count),
            (Some(RestartPolicyNameEnum::ON_FAILURE), Some(3))
        );
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("sometimes").is_err());
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (Some(1024), Some(2048)));
        assert!(parse_ulimit("nofile=10:5").is_err());
    }

    #[test]
    fn publish_specs_parse() {
        let p = parse_publish("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p[0].0, "80/udp");
        assert_eq!(p[0].1.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p[0].1.host_port.as_deref(), Some("8080"));
        let p = parse_publish("80").unwrap();
        assert_eq!(
            (p[0].0.as_str(), p[0].1.host_port.as_deref()),
            ("80/tcp", Some(""))
        );
        assert_eq!(parse_publish("8000-8001:80-81").unwrap().len(), 2);
        assert!(parse_publish("x:80").is_err());
    }

    #[test]
    fn flags_become_a_docker_create_body() {
        use clap::Parser;
        // `-h` is --hostname, as in `run`, so the wrapper has no help flag either.
        #[derive(Parser)]
        #[command(disable_help_flag = true)]
        struct T {
            #[command(flatten)]
            f: CreateFlags,
        }
        let t = T::try_parse_from([
            "run", "-it", "-e", "A=1", "--memory", "64m", "--cpus", "0.5", "--name", "x", "-p",
            "8080:80", "busybox", "sh", "-c", "echo hi",
        ])
        .unwrap();
        let (b, name) = create_body(&t.f).unwrap();
        assert_eq!(name.as_deref(), Some("x"));
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["Image"], "busybox");
        assert_eq!(v["Cmd"], serde_json::json!(["sh", "-c", "echo hi"]));
        assert_eq!(v["OpenStdin"], true);
        assert_eq!(v["StdinOnce"], true);
        assert_eq!(v["Tty"], true);
        assert_eq!(v["Env"], serde_json::json!(["A=1"]));
        assert_eq!(v["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(v["HostConfig"]["NanoCpus"], 500_000_000);
        assert_eq!(v["HostConfig"]["NetworkMode"], "default");
        assert_eq!(
            v["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
            "8080"
        );
        assert_eq!(v["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
        let t = T::try_parse_from(["run", "-m", "lots", "busybox"]).unwrap();
        let e = create_body(&t.f).unwrap_err();
        assert_eq!(
            e.message,
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"
        );
        assert_eq!(e.code, 125);
    }
}
