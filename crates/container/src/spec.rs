//! From a container record to an OCI runtime spec.
//!
//! The base is `berth_runtime::base_spec()` (Docker's defaults); this module layers the
//! container's process (entrypoint + cmd, env, user, cwd, terminal), hostname, files, resources,
//! capabilities, security options and namespaces on top. It edits the spec as OCI JSON, which is
//! the format the runtime reads from `config.json` anyway.
use std::collections::HashMap;
use std::path::Path;

use berth_api::models::{ContainerConfig, HostConfig};
use berth_image::{ImageConfig, RootfsDirs};
use serde_json::{Value, json};

use crate::ContainerError;

/// Default PATH when neither image nor user sets one (Docker's).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn invalid(message: impl Into<String>) -> ContainerError {
    ContainerError::InvalidArgument {
        message: message.into(),
    }
}

/// Merges the image's defaults into the create-time config, as Docker stores it.
pub fn merge_image_defaults(config: &mut ContainerConfig, image: &ImageConfig) {
    let Some(ic) = image.config.as_ref() else {
        if config.env.is_none() {
            config.env = Some(vec![DEFAULT_PATH.to_string()]);
        }
        return;
    };
    // Env: image first, the user's values override same keys.
    let mut env: Vec<String> = ic.env.clone().unwrap_or_default();
    for kv in config.env.take().unwrap_or_default() {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    config.env = Some(env);
    // An entrypoint given at create replaces the image's and drops its cmd (Docker's rule).
    let entrypoint_given = config.entrypoint.is_some();
    if !entrypoint_given {
        config.entrypoint = ic.entrypoint.clone();
    } else if config.entrypoint.as_deref() == Some(&[String::new()]) {
        config.entrypoint = None;
    }
    if config.cmd.as_ref().is_none_or(|c| c.is_empty()) && !entrypoint_given {
        config.cmd = ic.cmd.clone();
    }
    if config.working_dir.as_deref().unwrap_or("").is_empty() {
        config.working_dir = ic.working_dir.clone().filter(|w| !w.is_empty());
    }
    if config.user.as_deref().unwrap_or("").is_empty() {
        config.user = ic.user.clone().filter(|u| !u.is_empty());
    }
    if config.stop_signal.is_none() {
        config.stop_signal = ic.stop_signal.clone();
    }
    if let Some(labels) = &ic.labels {
        let mine = config.labels.get_or_insert_with(HashMap::new);
        for (k, v) in labels {
            mine.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(ports) = &ic.exposed_ports {
        let mine = config.exposed_ports.get_or_insert_with(Vec::new);
        for p in ports.keys() {
            if !mine.contains(p) {
                mine.push(p.clone());
            }
        }
    }
    if let Some(vols) = &ic.volumes {
        let mine = config.volumes.get_or_insert_with(Vec::new);
        for v in vols.keys() {
            if !mine.contains(v) {
                mine.push(v.clone());
            }
        }
    }
}

/// The command line: entrypoint then cmd. Empty is Docker's `No command specified`.
pub fn command_line(config: &ContainerConfig) -> Result<Vec<String>, ContainerError> {
    let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
    argv.extend(config.cmd.clone().unwrap_or_default());
    if argv.is_empty() {
        return Err(invalid("No command specified"));
    }
    Ok(argv)
}

/// A user resolved against the container's /etc/passwd and /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Home directory (for HOME).
    pub home: String,
}

/// Reads `rel` (e.g. `etc/passwd`) from the topmost layer that has it.
fn read_rootfs_file(rootfs: &RootfsDirs, rel: &str) -> Option<String> {
    std::iter::once(&rootfs.upperdir)
        .chain(rootfs.lowerdirs.iter())
        .find_map(|d| {
            let p = d.join(rel);
            // Never follow a symlink the image planted: read only regular files.
            let meta = std::fs::symlink_metadata(&p).ok()?;
            meta.is_file()
                .then(|| std::fs::read_to_string(&p).ok())
                .flatten()
        })
}

/// Resolves Docker's `user[:group]` (names or numbers) inside the container.
pub fn resolve_user(spec: &str, rootfs: &RootfsDirs) -> Result<ResolvedUser, ContainerError> {
    let passwd = read_rootfs_file(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_rootfs_file(rootfs, "etc/group").unwrap_or_default();
    resolve_user_in(spec, &passwd, &group)
}

/// [`resolve_user`] over file contents.
pub fn resolve_user_in(
    spec: &str,
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser, ContainerError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let found = entries
        .iter()
        .find(|f| f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user));
    let (uid, mut gid, name, home) = match (found, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse::<u32>()
                .map_err(|_| invalid(format!("bad uid in passwd for {user}")))?,
            f[3].parse::<u32>().unwrap_or(0),
            f[0].to_string(),
            f[5].to_string(),
        ),
        (None, Ok(n)) => (n, n, String::new(), "/".to_string()),
        (None, Err(_)) => {
            return Err(invalid(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )));
        }
    };
    // A uid with no passwd entry gets gid 0 unless a group is given, as in Docker.
    if found.is_none() {
        gid = 0;
    }
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = grp {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let mut additional_gids = Vec::new();
    if !name.is_empty() {
        for f in &groups {
            if f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
                && g != gid
                && !additional_gids.contains(&g)
            {
                additional_gids.push(g);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// Every capability this kernel knows and berth itself holds (its bounding set: a sandboxed
/// host may lack some), as `CAP_…` names.
pub fn all_capabilities() -> Vec<String> {
    let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let bounding: u64 = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    KNOWN_CAPABILITIES
        .iter()
        .enumerate()
        .take(last + 1)
        .filter(|(i, _)| bounding >> i & 1 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// Capability names by number.
const KNOWN_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn normalize_cap(name: &str) -> Result<String, ContainerError> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if all_capabilities().contains(&full) {
        Ok(full)
    } else {
        Err(invalid(format!("unknown capability: \"{full}\"")))
    }
}

/// The capability set after `--privileged`, `--cap-add` and `--cap-drop`.
pub fn capabilities(hc: &HostConfig) -> Result<Vec<String>, ContainerError> {
    if hc.privileged.unwrap_or(false) {
        return Ok(all_capabilities());
    }
    let add: Vec<String> = hc
        .cap_add
        .iter()
        .flatten()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let drop: Vec<String> = hc
        .cap_drop
        .iter()
        .flatten()
        .map(|c| normalize_cap(c))
        .collect::<Result<_, _>>()?;
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all_capabilities()
    } else {
        berth_runtime::DEFAULT_CAPABILITIES
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    caps.retain(|c| !drop.contains(c));
    for c in add {
        if c != "ALL" && !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// Converts a Docker seccomp profile (the JSON `--security-opt seccomp=FILE` sends) to OCI's.
pub fn docker_seccomp_to_oci(profile: &str, caps: &[String]) -> Result<Value, ContainerError> {
    let p: Value = serde_json::from_str(profile)
        .map_err(|e| invalid(format!("decoding seccomp profile failed: {e}")))?;
    let mut archs: Vec<Value> = Vec::new();
    if let Some(list) = p.get("architectures").and_then(Value::as_array) {
        archs.extend(list.iter().cloned());
    }
    for m in p
        .get("archMap")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(a) = m.get("architecture") {
            archs.push(a.clone());
        }
        for s in m
            .get("subArchitectures")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            archs.push(s.clone());
        }
    }
    let has_caps = |v: Option<&Value>| -> (bool, bool) {
        let list: Vec<&str> = v
            .and_then(|v| v.get("caps"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let all = list.iter().all(|c| caps.iter().any(|h| h == c));
        let any = list.iter().any(|c| caps.iter().any(|h| h == c));
        (all, any)
    };
    let mut syscalls = Vec::new();
    for s in p
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !has_caps(s.get("includes")).0 {
            continue;
        }
        if has_caps(s.get("excludes")).1 {
            continue;
        }
        let mut names: Vec<Value> = s
            .get("names")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(n) = s.get("name") {
            names.push(n.clone());
        }
        let mut out = json!({"names": names, "action": s.get("action").cloned().unwrap_or(json!("SCMP_ACT_ALLOW"))});
        if let Some(e) = s.get("errnoRet") {
            out["errnoRet"] = e.clone();
        }
        if let Some(a) = s.get("args").filter(|a| !a.is_null()) {
            out["args"] = a.clone();
        }
        syscalls.push(out);
    }
    let mut oci = json!({
        "defaultAction": p.get("defaultAction").cloned().unwrap_or(json!("SCMP_ACT_ERRNO")),
        "architectures": archs,
        "syscalls": syscalls,
    });
    if let Some(e) = p.get("defaultErrnoRet") {
        oci["defaultErrnoRet"] = e.clone();
    }
    Ok(oci)
}

/// Inputs to [`build`] beside the record.
#[derive(Debug)]
pub struct BuildInputs<'a> {
    /// Container id.
    pub id: &'a str,
    /// Final process args.
    pub argv: Vec<String>,
    /// Merged container config.
    pub config: &'a ContainerConfig,
    /// Host config.
    pub host_config: &'a HostConfig,
    /// Resolved user.
    pub user: ResolvedUser,
    /// `<data_dir>` with hostname, hosts, resolv.conf.
    pub data_dir: &'a Path,
    /// Network namespace to join (`--network container:X`), if any.
    pub join_netns: Option<String>,
    /// The cgroup the container's cgroup is made under.
    pub cgroup_parent: &'a str,
    /// OCI entries of the container's binds, volumes and tmpfs mounts, parents first.
    pub mounts: Vec<Value>,
}

/// Parses Docker's `--ulimit` names.
fn rlimit_type(name: &str) -> Result<&'static str, ContainerError> {
    Ok(match name {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        "as" => "RLIMIT_AS",
        _ => return Err(invalid(format!("invalid ulimit type: {name}"))),
    })
}

/// cgroup path of a container.
pub fn cgroups_path(parent: &str, id: &str) -> String {
    format!("/{}/{id}", parent.trim_matches('/'))
}

/// OCI `linux.resources` for a host config.
pub fn resources(hc: &HostConfig) -> Value {
    let mut r = json!({});
    let memory = hc.memory.unwrap_or(0);
    if memory > 0 {
        let mut m = json!({"limit": memory});
        match hc.memory_swap.unwrap_or(0) {
            0 => m["swap"] = json!(memory * 2),
            s => m["swap"] = json!(s),
        }
        r["memory"] = m;
    }
    if let Some(res) = hc.memory_reservation.filter(|v| *v > 0) {
        r["memory"]["reservation"] = json!(res);
    }
    let mut cpu = json!({});
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        cpu["period"] = json!(100_000u64);
        cpu["quota"] = json!(n * 100_000 / 1_000_000_000);
    } else if let Some(q) = hc.cpu_quota.filter(|q| *q > 0) {
        cpu["quota"] = json!(q);
        cpu["period"] = json!(hc.cpu_period.filter(|p| *p > 0).unwrap_or(100_000));
    }
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu["shares"] = json!(s);
    }
    if let Some(c) = hc.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
        cpu["cpus"] = json!(c);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        r["cpu"] = cpu;
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        r["pids"] = json!({"limit": p});
    }
    r
}

/// Checks resource values as Docker does; the messages are Docker's.
pub fn validate_host_config(hc: &HostConfig) -> Result<(), ContainerError> {
    if let Some(m) = hc.memory.filter(|m| *m != 0) {
        if m < 6 * 1024 * 1024 {
            return Err(invalid("Minimum memory limit allowed is 6MB"));
        }
        if let Some(s) = hc.memory_swap.filter(|s| *s > 0)
            && s < m
        {
            return Err(invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
    }
    if let Some(n) = hc.nano_cpus.filter(|n| *n != 0) {
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as i64;
        if n < 10_000_000 || n > ncpu * 1_000_000_000 {
            return Err(invalid(format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            )));
        }
    }
    if hc.pids_limit.is_some_and(|p| p < -1) {
        return Err(invalid("invalid PIDs limit"));
    }
    let auto_remove = hc.auto_remove.unwrap_or(false);
    if let Some(rp) = &hc.restart_policy {
        use berth_api::models::RestartPolicyNameEnum as R;
        let name = rp.name.unwrap_or(R::EMPTY);
        if auto_remove && !matches!(name, R::EMPTY | R::NO) {
            return Err(invalid(
                "can't create 'AutoRemove' container with restart policy",
            ));
        }
        if rp.maximum_retry_count.unwrap_or(0) < 0 {
            return Err(invalid(
                "invalid restart policy: maximum retry count cannot be negative",
            ));
        }
        if rp.maximum_retry_count.unwrap_or(0) > 0 && name != R::ON_FAILURE {
            return Err(invalid(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'",
            ));
        }
    }
    for u in hc.ulimits.iter().flatten() {
        rlimit_type(u.name.as_deref().unwrap_or(""))?;
    }
    // The runtime checks again at start (a `container:X` network may be the host's); this
    // answers the common cases at create, in the runtime's words.
    let namespaces = berth_runtime::sysctl::SysctlNamespaces {
        ipc: hc.ipc_mode.as_deref() != Some("host"),
        uts: hc.uts_mode.as_deref() != Some("host"),
        network: if hc.network_mode.as_deref() == Some("host") {
            berth_runtime::sysctl::NetworkNamespace::Host
        } else {
            berth_runtime::sysctl::NetworkNamespace::Private
        },
    };
    for key in hc.sysctls.iter().flatten().map(|(key, _)| key) {
        berth_runtime::sysctl::check(key, namespaces).map_err(invalid)?;
    }
    for opt in hc.security_opt.iter().flatten() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match k {
            "no-new-privileges" if matches!(v, "" | "true" | "false") => {}
            "seccomp" | "apparmor" | "label" => {}
            _ => return Err(invalid(format!("invalid --security-opt: {opt:?}"))),
        }
    }
    // Network modes are checked against the network service by the container service.
    Ok(())
}

/// Builds the OCI spec (as JSON) of a container run.
pub fn build(inputs: BuildInputs<'_>) -> Result<Value, ContainerError> {
    let BuildInputs {
        id,
        argv,
        config,
        host_config: hc,
        user,
        data_dir,
        join_netns,
        cgroup_parent,
        mounts: extra_mounts,
    } = inputs;
    let mut spec =
        serde_json::to_value(berth_runtime::base_spec()).map_err(|e| ContainerError::Internal {
            message: format!("encode base spec: {e}"),
        })?;
    let privileged = hc.privileged.unwrap_or(false);
    let tty = config.tty.unwrap_or(false);
    let hostname = config
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());

    // Environment: the merged config env, then HOSTNAME, TERM and HOME as Docker adds them.
    let mut env: Vec<String> = config.env.clone().unwrap_or_default();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "HOSTNAME") {
        env.insert(
            usize::from(has(&env, "PATH")),
            format!("HOSTNAME={hostname}"),
        );
    }
    if tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", user.home));
    }

    let caps = capabilities(hc)?;
    let mut process = json!({
        "terminal": tty,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": argv,
        "env": env,
        "cwd": config.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into()),
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
    });
    if !user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(user.additional_gids);
    }
    if let Some(size) = hc
        .console_size
        .as_ref()
        .filter(|s| s.len() == 2 && s[0] > 0)
    {
        process["consoleSize"] = json!({"height": size[0], "width": size[1]});
    }
    let mut rlimits = Vec::new();
    for u in hc.ulimits.iter().flatten() {
        let name = u.name.as_deref().unwrap_or("");
        rlimits.push(json!({"type": rlimit_type(name)?, "soft": u.soft.unwrap_or(0), "hard": u.hard.unwrap_or(0)}));
    }
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }
    if let Some(adj) = hc.oom_score_adj.filter(|a| *a != 0) {
        process["oomScoreAdj"] = json!(adj);
    }

    let mut seccomp: Option<Value> = if privileged {
        None
    } else {
        Some(
            serde_json::to_value(berth_runtime::default_seccomp(&caps)).map_err(|e| {
                ContainerError::Internal {
                    message: format!("encode seccomp: {e}"),
                }
            })?,
        )
    };
    for opt in hc.security_opt.iter().flatten() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match (k, v) {
            ("no-new-privileges", "" | "true") => process["noNewPrivileges"] = json!(true),
            ("seccomp", "unconfined") => seccomp = None,
            ("seccomp", profile) if profile.trim_start().starts_with('{') => {
                seccomp = Some(docker_seccomp_to_oci(profile, &caps)?);
            }
            ("seccomp", path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(format!("opening seccomp profile ({path}) failed: {e}"))
                })?;
                seccomp = Some(docker_seccomp_to_oci(&text, &caps)?);
            }
            _ => {}
        }
    }
    spec["process"] = process;
    if hc.init.unwrap_or(false) {
        spec["annotations"][berth_runtime::INIT_ANNOTATION] = json!("true");
    }
    spec["root"] = json!({"path": "rootfs", "readonly": hc.readonly_rootfs.unwrap_or(false)});
    spec["hostname"] = json!(hostname);
    if let Some(d) = config.domainname.as_ref().filter(|d| !d.is_empty()) {
        spec["domainname"] = json!(d);
    }

    // Files berth writes for the container, bind-mounted over the image's.
    let mounts = spec["mounts"]
        .as_array_mut()
        .ok_or_else(|| ContainerError::Internal {
            message: "base spec has no mounts".into(),
        })?;
    if let Some(size) = hc.shm_size.filter(|s| *s > 0) {
        for m in mounts.iter_mut() {
            if m["destination"] == "/dev/shm" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "nodev",
                    "mode=1777",
                    format!("size={size}")
                ]);
            }
        }
    }
    if privileged {
        for m in mounts.iter_mut() {
            if (m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup")
                && let Some(opts) = m["options"].as_array_mut()
            {
                opts.retain(|o| o != "ro");
            }
        }
    }
    for f in ["hostname", "hosts", "resolv.conf"] {
        mounts.push(json!({
            "destination": format!("/etc/{f}"),
            "type": "bind",
            "source": data_dir.join(f),
            "options": ["rbind", "rprivate"],
        }));
    }
    mounts.extend(extra_mounts);
    for (dst, opts) in hc.tmpfs.iter().flatten() {
        let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
        o.extend(opts.split(',').filter(|s| !s.is_empty()).map(String::from));
        mounts.push(json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": o}));
    }

    // Namespaces: host modes remove the entry; container:X joins.
    let linux = spec["linux"]
        .as_object_mut()
        .ok_or_else(|| ContainerError::Internal {
            message: "base spec has no linux section".into(),
        })?;
    if let Some(ns) = linux.get_mut("namespaces").and_then(Value::as_array_mut) {
        let net_mode = hc.network_mode.as_deref().unwrap_or("default");
        ns.retain(|n| {
            let t = n["type"].as_str().unwrap_or("");
            !(t == "network" && net_mode == "host"
                || t == "ipc" && hc.ipc_mode.as_deref() == Some("host")
                || t == "pid" && hc.pid_mode.as_deref() == Some("host")
                || t == "uts" && hc.uts_mode.as_deref() == Some("host"))
        });
        if let Some(path) = join_netns {
            for n in ns.iter_mut() {
                if n["type"] == "network" {
                    n["path"] = json!(path);
                }
            }
        }
    }
    linux.insert("cgroupsPath".into(), json!(cgroups_path(cgroup_parent, id)));
    let mut res = resources(hc);
    if privileged {
        res["devices"] = json!([{"allow": true, "access": "rwm"}]);
        linux.insert("maskedPaths".into(), json!([]));
        linux.insert("readonlyPaths".into(), json!([]));
    } else if let Some(devs) = linux.get("resources").and_then(|r| r.get("devices")) {
        res["devices"] = devs.clone();
    }
    linux.insert("resources".into(), res);
    if let Some(s) = hc.sysctls.as_ref().filter(|s| !s.is_empty()) {
        linux.insert("sysctl".into(), json!(s));
    }
    match seccomp {
        Some(s) => {
            linux.insert("seccomp".into(), s);
        }
        None => {
            linux.remove("seccomp");
        }
    }
    Ok(spec)
}

/// Writes /etc/hostname, /etc/hosts and /etc/resolv.conf for a container into `dir`.
pub fn write_etc_files(dir: &Path, hostname: &str, hc: &HostConfig) -> Result<(), ContainerError> {
    let host_net = hc.network_mode.as_deref() == Some("host");
    let io = |op: &'static str, p: std::path::PathBuf| {
        move |source| ContainerError::Io {
            op,
            path: p,
            source,
        }
    };
    let hosts = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let mut h = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        );
        for e in hc.extra_hosts.iter().flatten() {
            if let Some((name, ip)) = e.split_once(':') {
                h.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        h
    };
    let mut resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if let Some(dns) = hc.dns.as_ref().filter(|d| !d.is_empty()) {
        resolv = dns.iter().map(|d| format!("nameserver {d}\n")).collect();
        for s in hc.dns_search.iter().flatten() {
            resolv.push_str(&format!("search {s}\n"));
        }
    }
    for (name, body) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, body).map_err(io("write", p.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:u:/home/user:/bin/sh\nnobody:x:65534:65534:n:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:user\nuser:x:1000:\nwheel:x:10:root,user\n";

    #[test]
    fn users_resolve_like_docker() {
        let u = resolve_user_in("user", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/user"));
        assert_eq!(u.additional_gids, vec![100, 10]);
        let u = resolve_user_in("1000:10", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        let u = resolve_user_in("4242", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        let u = resolve_user_in("root:wheel", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (0, 10));
        let e = resolve_user_in("nosuch", PASSWD, GROUP).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user nosuch: no matching entries in passwd file"
        );
        assert!(resolve_user_in("user:nogroup", PASSWD, GROUP).is_err());
    }

    #[test]
    fn image_defaults_merge() {
        let image = ImageConfig {
            config: Some(berth_image::RunConfig {
                env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
                cmd: Some(vec!["sh".into()]),
                working_dir: Some("/w".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = ContainerConfig {
            env: Some(vec!["A=2".into(), "B=3".into()]),
            ..Default::default()
        };
        merge_image_defaults(&mut c, &image);
        assert_eq!(c.env.unwrap(), vec!["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.cmd.unwrap(), vec!["sh"]);
        assert_eq!(c.working_dir.as_deref(), Some("/w"));

        let mut c = ContainerConfig {
            entrypoint: Some(vec!["/bin/echo".into()]),
            ..Default::default()
        };
        merge_image_defaults(&mut c, &image);
        assert_eq!(c.cmd, None, "an explicit entrypoint drops the image's cmd");
        assert_eq!(command_line(&c).unwrap(), vec!["/bin/echo"]);
    }

    #[test]
    fn capabilities_add_and_drop() {
        let hc = HostConfig {
            cap_add: Some(vec!["net_admin".into()]),
            cap_drop: Some(vec!["CAP_CHOWN".into(), "MKNOD".into()]),
            ..Default::default()
        };
        let caps = capabilities(&hc).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(!caps.contains(&"CAP_MKNOD".to_string()));
        let hc = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["KILL".into()]),
            ..Default::default()
        };
        assert_eq!(capabilities(&hc).unwrap(), vec!["CAP_KILL"]);
        let hc = HostConfig {
            cap_add: Some(vec!["BOGUS".into()]),
            ..Default::default()
        };
        assert!(capabilities(&hc).is_err());
    }

    #[test]
    fn resource_values_are_validated() {
        let hc = HostConfig {
            memory: Some(1024),
            ..Default::default()
        };
        assert_eq!(
            validate_host_config(&hc).unwrap_err().to_string(),
            "Minimum memory limit allowed is 6MB"
        );
        let hc = HostConfig {
            nano_cpus: Some(1_000_000_000_000),
            ..Default::default()
        };
        assert!(
            validate_host_config(&hc)
                .unwrap_err()
                .to_string()
                .starts_with("Range of CPUs is from 0.01")
        );
        let hc = HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(10),
            ..Default::default()
        };
        validate_host_config(&hc).unwrap();
        let r = resources(&hc);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["pids"]["limit"], 10);
    }

    #[test]
    fn docker_seccomp_profiles_convert() {
        let p = r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                        {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#;
        let o = docker_seccomp_to_oci(p, &["CAP_KILL".into()]).unwrap();
        assert_eq!(
            o["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        assert_eq!(o["syscalls"].as_array().unwrap().len(), 1);
        assert_eq!(o["syscalls"][0]["errnoRet"], 1);
        assert!(docker_seccomp_to_oci("{nope", &[]).is_err());
    }
}
