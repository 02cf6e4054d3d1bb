//! The `/etc` files berth writes for a container and bind-mounts over the image's.
use std::path::Path;

use berth_api::models::HostConfig;

use crate::ContainerError;

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
