//! Capabilities: the kernel's, Docker's default set, `--privileged`, `--cap-add/--cap-drop`.
use std::str::FromStr;

use berth_api::models::HostConfig;
use oci_spec::runtime::{Capabilities, Capability};

use super::invalid;
use crate::ContainerError;

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

/// The typed set of `CAP_…` names (as [`capabilities`] returns them).
pub fn capability_set(names: &[String]) -> Result<Capabilities, ContainerError> {
    names
        .iter()
        .map(|name| {
            let bare = name.strip_prefix("CAP_").unwrap_or(name);
            Capability::from_str(bare)
                .map_err(|_| invalid(format!("unknown capability: \"{name}\"")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_known_capability_has_a_typed_name() {
        let names: Vec<String> = KNOWN_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            capability_set(&names).unwrap().len(),
            KNOWN_CAPABILITIES.len()
        );
        assert!(capability_set(&["CAP_NOPE".into()]).is_err());
    }
}
