//! From a container record to an OCI runtime spec.
//!
//! The base is `berth_runtime::base_spec()` (Docker's defaults); [`build`] layers the
//! container's process (entrypoint + cmd, env, user, cwd, terminal), hostname, files,
//! resources, capabilities, security options and namespaces on top. Everything is edited
//! through `oci_spec::runtime`'s typed model (the one the runtime reads `config.json` into),
//! so a misnamed field does not compile.
//!
//! [`build`] is pure: what needs the disk (the user's passwd entry, a seccomp profile given as
//! a path) is read before, by [`resolve_user`] and [`seccomp::choice`], in blocking tasks.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use berth_api::models::{ContainerConfig, HostConfig};
use oci_spec::runtime::{
    Box as ConsoleBox, BoxBuilder as ConsoleBoxBuilder, LinuxCapabilities, LinuxDeviceCgroup,
    LinuxNamespaceType, Mount, PosixRlimitBuilder, PosixRlimitType, Process, Spec, User,
};

use crate::ContainerError;

mod caps;
mod config;
mod etc_files;
mod resources;
pub mod seccomp;
mod user;
mod userns;

pub use caps::{all_capabilities, capabilities, capability_set};
pub use config::{DEFAULT_PATH, command_line, merge_image_defaults, validate_host_config};
pub use etc_files::write_etc_files;
pub use resources::{block_io, cgroup_resources, device_cgroup_rules, resources};
pub use seccomp::{SeccompChoice, docker_seccomp_to_oci};
pub use user::{ResolvedUser, add_groups, additional_groups_in, resolve_user, resolve_user_in};
pub use userns::{apply_user_namespace, remapped};

fn invalid(message: impl Into<String>) -> ContainerError {
    ContainerError::InvalidArgument {
        message: message.into(),
    }
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
    pub mounts: Vec<Mount>,
    /// The seccomp filter chosen by `--security-opt` (see [`seccomp::choice`]).
    pub seccomp: SeccompChoice,
    /// `linux.resources.blockIO` (see [`block_io`]: devices are `stat`ed before the build).
    pub block_io: Option<oci_spec::runtime::LinuxBlockIo>,
}

/// Checks a `--ulimit`/`--default-ulimit` name (`nofile`, `nproc`, …), in Docker's words.
pub fn check_ulimit_name(name: &str) -> Result<(), ContainerError> {
    rlimit_type(name).map(|_| ())
}

/// The container's `--ulimit`s plus the daemon's `default-ulimits` for the names it does
/// not set, as dockerd merges them when it starts a container. The host config as it is
/// (no copy) when nothing is added.
pub fn with_default_ulimits<'a>(
    hc: &'a berth_api::models::HostConfig,
    defaults: &[berth_api::models::ResourcesUlimits],
) -> std::borrow::Cow<'a, berth_api::models::HostConfig> {
    let own = hc.ulimits.as_deref().unwrap_or_default();
    let added: Vec<_> = defaults
        .iter()
        .filter(|d| !own.iter().any(|u| u.name == d.name))
        .cloned()
        .collect();
    if added.is_empty() {
        return std::borrow::Cow::Borrowed(hc);
    }
    let mut merged = hc.clone();
    merged.ulimits = Some(own.iter().cloned().chain(added).collect());
    std::borrow::Cow::Owned(merged)
}

/// Parses Docker's `--ulimit` names.
fn rlimit_type(name: &str) -> Result<PosixRlimitType, ContainerError> {
    use PosixRlimitType as R;
    Ok(match name {
        "core" => R::RlimitCore,
        "cpu" => R::RlimitCpu,
        "data" => R::RlimitData,
        "fsize" => R::RlimitFsize,
        "locks" => R::RlimitLocks,
        "memlock" => R::RlimitMemlock,
        "msgqueue" => R::RlimitMsgqueue,
        "nice" => R::RlimitNice,
        "nofile" => R::RlimitNofile,
        "nproc" => R::RlimitNproc,
        "rss" => R::RlimitRss,
        "rtprio" => R::RlimitRtprio,
        "rttime" => R::RlimitRttime,
        "sigpending" => R::RlimitSigpending,
        "stack" => R::RlimitStack,
        "as" => R::RlimitAs,
        _ => return Err(invalid(format!("invalid ulimit type: {name}"))),
    })
}

/// cgroup path of a container.
pub fn cgroups_path(parent: &str, id: &str) -> String {
    format!("/{}/{id}", parent.trim_matches('/'))
}

/// A process with nothing set: oci-spec's `Process::default()` carries runc's defaults
/// (an rlimit, `noNewPrivileges`, a TERM), which Docker's spec does not have.
fn bare_process() -> Process {
    let mut p = Process::default();
    p.set_terminal(None);
    p.set_console_size(None);
    p.set_user(User::default());
    p.set_args(None);
    p.set_command_line(None);
    p.set_env(None);
    p.set_cwd(PathBuf::from("/"));
    p.set_capabilities(None);
    p.set_rlimits(None);
    p.set_no_new_privileges(None);
    p.set_apparmor_profile(None);
    p.set_oom_score_adj(None);
    p.set_selinux_label(None);
    p.set_io_priority(None);
    p.set_scheduler(None);
    p.set_exec_cpu_affinity(None);
    p
}

/// The same set as bounding, effective and permitted capabilities (Docker's shape).
pub fn process_capabilities(caps: &[String]) -> Result<LinuxCapabilities, ContainerError> {
    let set = capability_set(caps)?;
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set));
    c.set_inheritable(None);
    c.set_ambient(None);
    Ok(c)
}

/// A console size from Docker's `[height, width]`, if it is one.
pub fn console_size<T: Copy + TryInto<u16>>(size: Option<&Vec<T>>) -> Option<(u16, u16)> {
    let s = size.filter(|s| s.len() == 2)?;
    let height: u16 = s[0].try_into().ok()?;
    let width: u16 = s[1].try_into().ok()?;
    (height > 0).then_some((height, width))
}

/// The OCI console size of a `(height, width)`.
pub fn console_box((height, width): (u16, u16)) -> Result<ConsoleBox, ContainerError> {
    Ok(ConsoleBoxBuilder::default()
        .height(u64::from(height))
        .width(u64::from(width))
        .build()?)
}

/// The OCI user of a resolved user.
pub fn oci_user(user: &ResolvedUser) -> User {
    let mut u = User::default();
    u.set_uid(user.uid);
    u.set_gid(user.gid);
    u.set_additional_gids((!user.additional_gids.is_empty()).then(|| user.additional_gids.clone()));
    u
}

/// The environment: the merged config env, then HOSTNAME, TERM and HOME as Docker adds them.
fn process_env(config: &ContainerConfig, hostname: &str, home: &str) -> Vec<String> {
    let mut env: Vec<String> = config.env.clone().unwrap_or_default();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "HOSTNAME") {
        env.insert(
            usize::from(has(&env, "PATH")),
            format!("HOSTNAME={hostname}"),
        );
    }
    if config.tty.unwrap_or(false) && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// The container's init process.
fn process(
    inputs: &BuildInputs<'_>,
    hostname: &str,
    caps: &[String],
) -> Result<Process, ContainerError> {
    let (config, hc) = (inputs.config, inputs.host_config);
    let mut p = bare_process();
    p.set_terminal(Some(config.tty.unwrap_or(false)));
    p.set_user(oci_user(&inputs.user));
    p.set_args(Some(inputs.argv.clone()));
    p.set_env(Some(process_env(config, hostname, &inputs.user.home)));
    p.set_cwd(PathBuf::from(
        config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
    ));
    p.set_capabilities(Some(process_capabilities(caps)?));
    p.set_console_size(
        console_size(hc.console_size.as_ref())
            .map(console_box)
            .transpose()?,
    );
    let mut rlimits = Vec::new();
    for u in hc.ulimits.iter().flatten() {
        // Docker's -1 (unlimited) is RLIM_INFINITY, all ones.
        rlimits.push(
            PosixRlimitBuilder::default()
                .typ(rlimit_type(u.name.as_deref().unwrap_or(""))?)
                .soft(u.soft.unwrap_or(0) as u64)
                .hard(u.hard.unwrap_or(0) as u64)
                .build()?,
        );
    }
    p.set_rlimits((!rlimits.is_empty()).then_some(rlimits));
    p.set_oom_score_adj(hc.oom_score_adj.filter(|a| *a != 0).map(|a| a as i32));
    for opt in hc.security_opt.iter().flatten() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        if k == "no-new-privileges" && matches!(v, "" | "true") {
            p.set_no_new_privileges(Some(true));
        }
    }
    Ok(p)
}

/// The spec's mounts: the base's (with `--shm-size` and `--privileged` applied), the `/etc`
/// files, the container's mount points, then `--tmpfs`.
fn mounts(base: Vec<Mount>, inputs: &BuildInputs<'_>) -> Vec<Mount> {
    let hc = inputs.host_config;
    let privileged = hc.privileged.unwrap_or(false);
    let mut mounts = base;
    for m in mounts.iter_mut() {
        let dst = m.destination().clone();
        if let Some(size) = hc.shm_size.filter(|s| *s > 0)
            && dst == Path::new("/dev/shm")
        {
            m.set_options(Some(
                ["nosuid", "noexec", "nodev", "mode=1777"]
                    .into_iter()
                    .map(String::from)
                    .chain([format!("size={size}")])
                    .collect(),
            ));
        }
        if privileged
            && (dst == Path::new("/sys") || dst == Path::new("/sys/fs/cgroup"))
            && let Some(opts) = m.options_mut()
        {
            opts.retain(|o| o != "ro");
        }
    }
    for f in ["hostname", "hosts", "resolv.conf"] {
        mounts.push(mount(
            PathBuf::from(format!("/etc/{f}")),
            "bind",
            inputs.data_dir.join(f),
            vec!["rbind".into(), "rprivate".into()],
        ));
    }
    mounts.extend(inputs.mounts.iter().cloned());
    for (dst, opts) in hc.tmpfs.iter().flatten() {
        let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
        o.extend(opts.split(',').filter(|s| !s.is_empty()).map(String::from));
        mounts.push(mount(PathBuf::from(dst), "tmpfs", "tmpfs".into(), o));
    }
    mounts
}

/// An OCI mount entry.
pub fn mount(destination: PathBuf, typ: &str, source: PathBuf, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination);
    m.set_typ(Some(typ.to_owned()));
    m.set_source(Some(source));
    m.set_options(Some(options));
    m
}

/// The `linux` section: namespaces (host modes drop one, `container:X` joins), cgroup path,
/// resources, device rules, sysctls, masked paths and seccomp.
fn linux_section(
    spec: &mut Spec,
    inputs: &BuildInputs<'_>,
    caps: &[String],
) -> Result<(), ContainerError> {
    let hc = inputs.host_config;
    let privileged = hc.privileged.unwrap_or(false);
    let seccomp = match &inputs.seccomp {
        SeccompChoice::Default if privileged => None,
        SeccompChoice::Default => Some(berth_runtime::default_seccomp(caps)),
        SeccompChoice::Unconfined => None,
        SeccompChoice::Profile(text) => Some(docker_seccomp_to_oci(text, caps)?),
    };
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    if let Some(ns) = linux.namespaces_mut() {
        let host = |mode: &Option<String>| mode.as_deref() == Some("host");
        let net_host = hc.network_mode.as_deref() == Some("host");
        ns.retain(|n| !match n.typ() {
            LinuxNamespaceType::Network => net_host,
            LinuxNamespaceType::Ipc => host(&hc.ipc_mode),
            LinuxNamespaceType::Pid => host(&hc.pid_mode),
            LinuxNamespaceType::Uts => host(&hc.uts_mode),
            _ => false,
        });
        if let Some(path) = &inputs.join_netns {
            for n in ns.iter_mut() {
                if n.typ() == LinuxNamespaceType::Network {
                    n.set_path(Some(PathBuf::from(path)));
                }
            }
        }
    }
    linux.set_cgroups_path(Some(PathBuf::from(cgroups_path(
        inputs.cgroup_parent,
        inputs.id,
    ))));
    let mut res = resources(hc);
    res.set_block_io(inputs.block_io.clone());
    if privileged {
        let mut all = LinuxDeviceCgroup::default();
        all.set_allow(true);
        all.set_access(Some("rwm".into()));
        res.set_devices(Some(vec![all]));
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
    } else {
        // The base's rules, then `--device-cgroup-rule` (later rules win in the device cgroup).
        let mut devices = linux
            .resources()
            .as_ref()
            .and_then(|r| r.devices().clone())
            .unwrap_or_default();
        devices.extend(device_cgroup_rules(hc)?);
        res.set_devices(Some(devices));
    }
    linux.set_resources(Some(res));
    if let Some(s) = hc.sysctls.as_ref().filter(|s| !s.is_empty()) {
        linux.set_sysctl(Some(s.clone()));
    }
    linux.set_seccomp(seccomp);
    Ok(())
}

/// Builds the OCI spec of a container run.
pub fn build(inputs: BuildInputs<'_>) -> Result<Spec, ContainerError> {
    let (config, hc) = (inputs.config, inputs.host_config);
    let mut spec = berth_runtime::base_spec();
    let hostname = config
        .hostname
        .clone()
        .unwrap_or_else(|| inputs.id[..12].to_string());
    let caps = capabilities(hc)?;
    spec.set_process(Some(process(&inputs, &hostname, &caps)?));
    if hc.init.unwrap_or(false) {
        spec.annotations_mut()
            .get_or_insert_with(HashMap::new)
            .insert(berth_runtime::INIT_ANNOTATION.into(), "true".into());
    }
    let mut root = oci_spec::runtime::Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(hc.readonly_rootfs.unwrap_or(false)));
    spec.set_root(Some(root));
    spec.set_hostname(Some(hostname));
    if let Some(d) = config.domainname.as_ref().filter(|d| !d.is_empty()) {
        spec.set_domainname(Some(d.clone()));
    }
    let base_mounts = spec.mounts_mut().take().unwrap_or_default();
    spec.set_mounts(Some(mounts(base_mounts, &inputs)));
    linux_section(&mut spec, &inputs, &caps)?;
    Ok(spec)
}
