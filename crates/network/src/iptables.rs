//! Accept rules for berth's bridges in iptables' `filter FORWARD` chain.
//!
//! A host where Docker runs has `iptables -P FORWARD DROP` (in iptables-nft's `ip filter`
//! table). An accept in berth's own nft table cannot override a drop in another table, so
//! where that chain exists berth also inserts, per bridge:
//!
//! ```text
//! -I FORWARD -i BRIDGE -j ACCEPT
//! -I FORWARD -o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//! -I FORWARD -o BRIDGE -m conntrack --ctstate DNAT -j ACCEPT     (published ports)
//! ```
//!
//! Isolation and `--internal` still hold: berth's own forward chain drops that traffic, and
//! a drop in any table wins. The rules are inserted even when the chain does not exist yet
//! (iptables then creates it, with policy ACCEPT), so a DROP policy set later still lets
//! berth's traffic through. The rules go with the network. A dual-stack network gets the
//! same rules from `ip6tables` (table `ip6 filter`), where Docker's `ip6tables` puts its
//! DROP policy.

use std::process::Command;

use crate::error::NetworkError;

fn rules(bridge: &str) -> [Vec<&str>; 3] {
    [
        vec!["-i", bridge, "-j", "ACCEPT"],
        vec![
            "-o",
            bridge,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ],
        vec![
            "-o",
            bridge,
            "-m",
            "conntrack",
            "--ctstate",
            "DNAT",
            "-j",
            "ACCEPT",
        ],
    ]
}

/// The two firewalls: `iptables` (IPv4, nft family `ip`) and `ip6tables` (`ip6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    fn program(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    fn nft_family(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
}

/// Whether the `filter FORWARD` chain of `family` exists (checked through nft, which
/// creates nothing).
fn forward_chain_exists(family: Family) -> bool {
    Command::new("nft")
        .args(["list", "chain", family.nft_family(), "filter", "FORWARD"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn iptables_installed(family: Family) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join(family.program()).is_file())
    })
}

fn iptables(family: Family, args: &[&str]) -> Result<bool, NetworkError> {
    let out = Command::new(family.program())
        .args(["-w", "5"])
        .args(args)
        .output()
        .map_err(|source| NetworkError::Spawn {
            program: family.program(),
            source,
        })?;
    Ok(out.status.success())
}

/// Inserts the accept rules for `bridge` unless present, always: a host firewall (or a
/// Docker installed later) may create the chain with a DROP policy at any time, and rules
/// put there now keep berth's forwarding working then. Returns whether rules are in place:
/// `false` on a host without an `iptables` binary, where no iptables policy can drop.
pub(crate) fn allow(family: Family, bridge: &str) -> Result<bool, NetworkError> {
    if !iptables_installed(family) {
        return Ok(false);
    }
    for rule in rules(bridge) {
        let mut check = vec!["-C", "FORWARD"];
        check.extend(&rule);
        if !iptables(family, &check)? {
            let mut insert = vec!["-I", "FORWARD"];
            insert.extend(&rule);
            if !iptables(family, &insert)? {
                return Err(NetworkError::Firewall {
                    program: family.program(),
                    stderr: format!("could not insert FORWARD rule {}", rule.join(" ")),
                });
            }
        }
    }
    Ok(true)
}

/// Removes the accept rules for `bridge` (every copy), if the chain exists.
pub(crate) fn revoke(family: Family, bridge: &str) -> Result<(), NetworkError> {
    if !iptables_installed(family) || !forward_chain_exists(family) {
        return Ok(());
    }
    for rule in rules(bridge) {
        let mut delete = vec!["-D", "FORWARD"];
        delete.extend(&rule);
        // Bounded: one deletion per copy, and nobody inserts hundreds of copies.
        for _ in 0..16 {
            if !iptables(family, &delete)? {
                break;
            }
        }
    }
    Ok(())
}
