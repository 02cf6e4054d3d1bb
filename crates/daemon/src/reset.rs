//! `berth system reset`: everything berth made on this host goes, and each removal is said.
//!
//! In order: the daemon that holds the data root is stopped (SIGTERM, its pid from
//! `berth.lock`) and the lock taken, so none starts meanwhile; every container's monitor is
//! killed (its container dies with it: `PR_SET_PDEATHSIG`) and what is left in the containers'
//! cgroups is killed, then the cgroups and their parents are removed; the networks' host state
//! goes through the network service's own teardown (DNS servers, bridges, iptables accepts,
//! the nft table); mounts under the run and data roots are detached (deepest first); then the
//! run root (a socket systemd listens on is left to systemd) and the data root are removed.
//!
//! `--keep-data` (the package's `prerm remove`) does all but the last: nothing runs and no host
//! state is left, but images, volumes and containers' records stay for a later install, and
//! `purge` removes them. The same configuration as the daemon's (flags, `daemon.json`) says
//! where things are.
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_cgroups::Cgroup;
use berth_container::{monitor_client, store};
use berth_network::{NetworkConfig, NetworkService};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::DaemonConfig;
use crate::error::DaemonError;
use crate::guard;

/// How long the daemon and the monitors get to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// What `berth system reset` was asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResetOptions {
    /// Keep the data root (images, volumes, containers' records).
    pub keep_data: bool,
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError {
    let path = path.to_owned();
    move |source| DaemonError::Io { op, path, source }
}

/// Says one removal (a closed stdout does not stop the reset).
fn say(out: &mut dyn Write, line: std::fmt::Arguments<'_>) {
    let _ = writeln!(out, "{line}");
}

/// Removes berth's containers, host state and (unless `keep_data`) its data, as the module
/// says, writing one line per thing removed to `out`.
pub fn reset(
    config: &DaemonConfig,
    options: ResetOptions,
    out: &mut dyn Write,
) -> Result<(), DaemonError> {
    let data_exists = config.data_root.is_dir();
    let _lock = if data_exists {
        Some(stop_daemon(&config.data_root, out)?)
    } else {
        None
    };
    stop_monitors(&config.exec_root, out);
    remove_cgroups(config, out);
    if data_exists {
        remove_network_state(config, out)?;
    }
    for root in [&config.exec_root, &config.data_root] {
        for mount in mounts_under(root) {
            match nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) => say(out, format_args!("unmounted {}", mount.display())),
                Err(errno) => tracing::warn!(path = %mount.display(), %errno, "unmount failed"),
            }
        }
    }
    remove_run_root(&config.exec_root, out)?;
    if data_exists && !options.keep_data {
        std::fs::remove_dir_all(&config.data_root)
            .map_err(io_error("remove", &config.data_root))?;
        say(out, format_args!("removed {}", config.data_root.display()));
    }
    Ok(())
}

/// Stops the daemon holding the data root, if one does, and takes the root's lock.
fn stop_daemon(data_root: &Path, out: &mut dyn Write) -> Result<guard::DataRootLock, DaemonError> {
    let pid = match guard::lock_data_root(data_root) {
        Ok(lock) => return Ok(lock),
        Err(DaemonError::DataRootInUse { pid, .. }) => pid.parse::<i32>().ok(),
        Err(other) => return Err(other),
    };
    if let Some(pid) = pid {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match guard::lock_data_root(data_root) {
            Ok(lock) => {
                if let Some(pid) = pid {
                    say(out, format_args!("stopped the berth daemon (pid {pid})"));
                }
                return Ok(lock);
            }
            Err(DaemonError::DataRootInUse { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(DaemonError::DataRootInUse { .. }) => {
                return Err(DaemonError::DaemonDidNotStop {
                    pid: pid.unwrap_or(0),
                });
            }
            Err(other) => return Err(other),
        }
    }
}

/// Kills every container's monitor (`<exec_root>/containers/<id>/monitor.pid`) and waits for
/// them to go; their containers die with them.
fn stop_monitors(exec_root: &Path, out: &mut dyn Write) {
    let Ok(dirs) = std::fs::read_dir(exec_root.join("containers")) else {
        return;
    };
    let mut killed = Vec::new();
    for dir in dirs.flatten() {
        let Some(pid) = monitor_client::monitor_pid(&dir.path()) else {
            continue;
        };
        if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
            let id = dir.file_name().to_string_lossy().into_owned();
            say(
                out,
                format_args!(
                    "stopped container {} (monitor pid {pid})",
                    id.get(..12).unwrap_or(&id)
                ),
            );
            killed.push(pid);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while killed
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills what is left in every container's cgroup (the records say under which parent) and
/// removes the cgroups, then the parents.
fn remove_cgroups(config: &DaemonConfig, out: &mut dyn Write) {
    let root = Path::new(CGROUP_ROOT);
    let mut parents = BTreeSet::from([config.cgroup_parent.clone()]);
    let mut cgroups = Vec::new();
    for record in store::load_all(&config.data_root) {
        cgroups.push(berth_container::spec::cgroups_path(
            &record.cgroup_parent,
            &record.id,
        ));
        parents.insert(record.cgroup_parent);
    }
    // Containers whose record is gone but whose cgroup is not (a v2 host lists them).
    for parent in &parents {
        let dir = root.join(parent.trim_matches('/'));
        if let Ok(children) = std::fs::read_dir(&dir) {
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                let path = format!(
                    "/{}/{}",
                    parent.trim_matches('/'),
                    child.file_name().to_string_lossy()
                );
                if !cgroups.contains(&path) {
                    cgroups.push(path);
                }
            }
        }
    }
    for path in cgroups {
        let cgroup = Cgroup::new(root, &path);
        let pids = cgroup.pids().unwrap_or_default();
        let killed = cgroup
            .unified_dir()
            .is_some_and(|dir| std::fs::write(dir.join("cgroup.kill"), "1").is_ok());
        if !killed {
            for pid in &pids {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
        }
        if let Err(error) = cgroup.destroy() {
            tracing::warn!(cgroup = %path, %error, "removing a container's cgroup failed");
        }
    }
    for parent in parents {
        let existed = cgroup_exists(root, &parent);
        let cgroup = Cgroup::new(root, &parent);
        match cgroup.destroy() {
            Ok(()) if existed => say(out, format_args!("removed cgroup {parent}")),
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(cgroup = %parent, %error, "removing a cgroup parent failed")
            }
        }
    }
}

/// Whether the cgroup `path` exists in some hierarchy (v2, or a v1 controller's).
fn cgroup_exists(root: &Path, path: &str) -> bool {
    let relative = path.trim_matches('/');
    if root.join(relative).is_dir() {
        return true;
    }
    std::fs::read_dir(root).is_ok_and(|controllers| {
        controllers
            .flatten()
            .any(|c| c.path().join(relative).is_dir())
    })
}

/// The network service's configuration, as the daemon builds it.
pub(crate) fn network_config(config: &DaemonConfig) -> Result<NetworkConfig, DaemonError> {
    let mut net_config = NetworkConfig::new(&config.data_root, &config.exec_root);
    net_config.default_bridge = if config.bridge == "none" {
        String::new()
    } else {
        config.bridge.clone()
    };
    net_config.nft_table = config.nft_table.clone();
    net_config.default_bridge_ipv6 = match &config.default_bridge_ipv6 {
        Some(cidr) => Some(berth_network::Ipv6Net::parse_masked(cidr)?),
        None => None,
    };
    net_config.default_bridge_bip = config.bip.as_deref().map(parse_bip).transpose()?;
    net_config.default_bridge_ipv6_pooled = config.ipv6 && config.default_bridge_ipv6.is_none();
    net_config.resolv_conf = config.resolv_conf.clone();
    for pool in &config.default_address_pools {
        if let Ok(base) = berth_network::Ipv6Net::parse_masked(&pool.base) {
            net_config
                .ipv6_pools
                .push(berth_network::Ipv6Pool::new(base, pool.size)?);
        } else {
            let base = berth_network::Ipv4Net::parse_masked(&pool.base)?;
            net_config
                .ipv4_pools
                .push(berth_network::Ipv4Pool::new(base, pool.size)?);
        }
    }
    Ok(net_config)
}

/// `--bip 10.5.0.1/16`: the default bridge's address (gateway) and its subnet. The address
/// must be a host address of the subnet.
fn parse_bip(bip: &str) -> Result<(std::net::Ipv4Addr, berth_network::Ipv4Net), DaemonError> {
    let bad = || DaemonError::InvalidParameter {
        param: "bip",
        value: bip.to_owned(),
    };
    let (addr, _) = bip.split_once('/').ok_or_else(bad)?;
    let gateway: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let subnet = berth_network::Ipv4Net::parse_masked(bip).map_err(|_| bad())?;
    let host =
        subnet.prefix() >= 31 || (gateway != subnet.network() && gateway != subnet.broadcast());
    if !host {
        return Err(bad());
    }
    Ok((gateway, subnet))
}

/// Tears the networks' host state down with the network service's own code, and says which
/// devices and which table went.
fn remove_network_state(config: &DaemonConfig, out: &mut dyn Write) -> Result<(), DaemonError> {
    let links = || -> BTreeSet<String> {
        std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let table_exists = |table: &str| {
        std::process::Command::new("nft")
            .args(["list", "table", "ip", table])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let before = links();
    let had_table = table_exists(&config.nft_table);
    // Opening re-applies what a daemon would (bridges, rules): the teardown then removes
    // exactly what the service knows it makes.
    let service = NetworkService::open(network_config(config)?)?;
    let opened = links();
    service.teardown()?;
    let after = links();
    for gone in opened.difference(&after).filter(|l| before.contains(*l)) {
        say(out, format_args!("removed bridge {gone}"));
    }
    if had_table && !table_exists(&config.nft_table) {
        say(
            out,
            format_args!("removed nft table ip {}", config.nft_table),
        );
    }
    Ok(())
}

/// Mount points at or under `root`, deepest first (from `/proc/self/mountinfo`).
fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(root))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts.dedup();
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&raw[i + 1..i + 4], 8)
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the run root, but a socket someone still listens on (systemd's `berth.socket`):
/// then the rest of the root goes and the socket stays.
fn remove_run_root(exec_root: &Path, out: &mut dyn Write) -> Result<(), DaemonError> {
    let Ok(entries) = std::fs::read_dir(exec_root) else {
        return Ok(());
    };
    let mut kept = false;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_socket = entry
            .file_type()
            .is_ok_and(|t| std::os::unix::fs::FileTypeExt::is_socket(&t));
        if is_socket && std::os::unix::net::UnixStream::connect(&path).is_ok() {
            kept = true;
            continue;
        }
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(io_error("remove", &path))?;
    }
    if !kept {
        std::fs::remove_dir(exec_root).map_err(io_error("remove", exec_root))?;
    }
    say(out, format_args!("removed {}", exec_root.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/run/a\040b"), "/run/a b");
        assert_eq!(unescape_mount_path(r"/run/plain"), "/run/plain");
        assert_eq!(unescape_mount_path(r"/x\134y"), r"/x\y");
    }

    #[test]
    fn a_run_root_with_nothing_listening_goes_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("run");
        std::fs::create_dir_all(root.join("containers/abc")).expect("mkdir");
        std::fs::write(root.join("berth.pid"), "1\n").expect("write");
        drop(std::os::unix::net::UnixListener::bind(root.join("stale.sock")).expect("bind"));
        let mut out = Vec::new();
        remove_run_root(&root, &mut out).expect("removed");
        assert!(!root.exists());
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            format!("removed {}\n", root.display())
        );
    }

    #[test]
    fn a_socket_still_listened_on_stays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("run");
        std::fs::create_dir_all(root.join("containers")).expect("mkdir");
        let _listener =
            std::os::unix::net::UnixListener::bind(root.join("berth.sock")).expect("bind");
        remove_run_root(&root, &mut Vec::new()).expect("removed");
        assert!(root.join("berth.sock").exists());
        assert!(!root.join("containers").exists());
    }
}
