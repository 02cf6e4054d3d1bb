//! berth's nftables table: NAT, published ports and isolation, rebuilt whole from state.
//!
//! berth owns exactly two tables, one name in two families (`ip berth` and `ip6 berth` by
//! default; the name is a parameter so tests do not touch a real daemon's). Every change
//! replaces both in a single `nft` transaction (`add table; delete table; add table; chains;
//! rules`, per family), so the kernel sees the old or the new rules and nothing in between,
//! and no other table is ever touched. The `ip6` table has the same chains: DNAT of ports
//! published on IPv6 (never for `::1`, which the userland proxy serves), masquerade of
//! dual-stack networks' IPv6 subnets, and the same isolation drops. A port published on
//! `[::1]` alone has no DNAT rule: the proxy serves it.
//!
//! ```text
//! table ip berth
//!   chain prerouting   nat    hook prerouting  dstnat: fib daddr type local → jump ports
//!   chain output       nat    hook output      dstnat: fib daddr type local → jump ports
//!   chain ports        one DNAT rule per published port
//!   chain postrouting  nat    hook postrouting srcnat:
//!       ip saddr SUBNET oifname != BRIDGE masquerade       (egress; not for --internal)
//!       oifname BRIDGE ip saddr 127.0.0.0/8 masquerade     (127.0.0.1:PORT → container)
//!       oifname BRIDGE ip saddr SUBNET ct status dnat masquerade   (hairpin)
//!   chain forward      filter hook forward:
//!       iifname BRIDGE oifname {other bridges} drop        (isolation between networks)
//!       internal: iifname BRIDGE oifname != BRIDGE drop, and the reverse
//! ```
//!
//! Localhost access works because the bridges have `route_localnet=1`: DNAT of a packet
//! from 127.0.0.1 to a container address is then routable, and the masquerade gives it the
//! bridge address as source, so replies come back. This keeps published ports in the kernel
//! (no userland proxy), at full speed.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::addr::{Ipv4Net, Ipv6Net};
use crate::error::NetworkError;
use crate::ports::Protocol;

/// What the table needs to know about one bridge network.
#[derive(Debug, Clone)]
pub(crate) struct BridgeRules {
    pub device: String,
    pub subnet: Ipv4Net,
    /// The IPv6 subnet of a dual-stack network.
    pub subnet6: Option<Ipv6Net>,
    pub internal: bool,
}

/// One DNAT: host address and port to container address and port (both of one family).
#[derive(Debug, Clone)]
pub(crate) struct PortRule {
    pub protocol: Protocol,
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

/// The two tables: `ip NAME` for IPv4 and `ip6 NAME` for IPv6 (the same rules, per family).
const FAMILIES: [&str; 2] = ["ip", "ip6"];

fn eq(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn ne(left: Value, right: Value) -> Value {
    json!({"match": {"op": "!=", "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

/// `ip saddr NET` / `ip6 saddr NET`: `family` is the table's (`ip` or `ip6`).
fn saddr_in(family: &str, addr: String, len: u8) -> Value {
    eq(
        json!({"payload": {"protocol": family, "field": "saddr"}}),
        json!({"prefix": {"addr": addr, "len": len}}),
    )
}

/// A subnet of one family as (address, prefix) for `family`'s table; `None` when the
/// network has no subnet of that family.
fn subnet_of(bridge: &BridgeRules, family: &str) -> Option<(String, u8)> {
    match family {
        "ip" => Some((bridge.subnet.network().to_string(), bridge.subnet.prefix())),
        _ => bridge
            .subnet6
            .map(|s| (s.network().to_string(), s.prefix())),
    }
}

/// Whether the `ip6` table is needed: some network is dual-stack. Without one, an IPv4-only
/// host loads exactly the `ip` table it always did.
pub(crate) fn needs_ip6(bridges: &[BridgeRules]) -> bool {
    bridges.iter().any(|b| b.subnet6.is_some())
}

/// The whole of both tables as one `nft -j` document (one transaction). The `ip6` table is
/// only loaded while a dual-stack network exists (else deleted, if left from one).
pub(crate) fn ruleset(table: &str, bridges: &[BridgeRules], ports: &[PortRule]) -> Value {
    let mut cmds = Vec::new();
    family_rules(&mut cmds, "ip", table, bridges, ports);
    if needs_ip6(bridges) {
        family_rules(&mut cmds, "ip6", table, bridges, ports);
    } else {
        cmds.push(json!({"add": {"table": {"family": "ip6", "name": table}}}));
        cmds.push(json!({"delete": {"table": {"family": "ip6", "name": table}}}));
    }
    json!({"nftables": cmds})
}

fn family_rules(
    cmds: &mut Vec<Value>,
    family: &str,
    table: &str,
    bridges: &[BridgeRules],
    ports: &[PortRule],
) {
    // `add` then `delete` makes the delete succeed whether or not the table existed.
    cmds.push(json!({"add": {"table": {"family": family, "name": table}}}));
    cmds.push(json!({"delete": {"table": {"family": family, "name": table}}}));
    cmds.push(json!({"add": {"table": {"family": family, "name": table}}}));
    let base_chain = |name: &str, kind: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {"family": family, "table": table, "name": name,
            "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
    };
    cmds.push(base_chain("prerouting", "nat", "prerouting", -100));
    cmds.push(base_chain("output", "nat", "output", -100));
    cmds.push(base_chain("postrouting", "nat", "postrouting", 100));
    cmds.push(base_chain("forward", "filter", "forward", 0));
    cmds.push(json!({"add": {"chain": {"family": family, "table": table, "name": "ports"}}}));
    let mut rule = |chain: &str, expr: Vec<Value>| {
        cmds.push(json!({"add": {"rule": {"family": family, "table": table, "chain": chain, "expr": expr}}}));
    };
    let local_daddr = eq(
        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        json!("local"),
    );
    for chain in ["prerouting", "output"] {
        rule(
            chain,
            vec![local_daddr.clone(), json!({"jump": {"target": "ports"}})],
        );
    }
    let v6 = family == "ip6";
    // A port published on `[::1]` only is the proxy's alone: no DNAT (the kernel would drop
    // the packet, IPv6 having no `route_localnet`).
    let proxied = |p: &PortRule| p.host_ip == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    for port in ports
        .iter()
        .filter(|p| p.container_ip.is_ipv6() == v6 && !proxied(p))
    {
        let mut expr = Vec::new();
        if v6 && port.host_ip.is_unspecified() {
            // [::1] is served by the userland proxy (see `ports::proxy_loopback6`).
            expr.push(ne(
                json!({"payload": {"protocol": "ip6", "field": "daddr"}}),
                json!("::1"),
            ));
        }
        if !port.host_ip.is_unspecified() {
            expr.push(eq(
                json!({"payload": {"protocol": family, "field": "daddr"}}),
                json!(port.host_ip.to_string()),
            ));
        }
        let proto = port.protocol.to_string();
        expr.push(eq(meta("l4proto"), json!(proto)));
        expr.push(eq(
            json!({"payload": {"protocol": proto, "field": "dport"}}),
            json!(port.host_port),
        ));
        expr.push(
            json!({"dnat": {"addr": port.container_ip.to_string(), "port": port.container_port}}),
        );
        rule("ports", expr);
    }
    for bridge in bridges {
        for (chain, expr) in bridge_rules(family, bridge, bridges) {
            rule(chain, expr);
        }
    }
}

/// The rules of one bridge in `family`'s table: masquerade of its outgoing traffic (unless
/// internal), of published ports reached from loopback or through DNAT, and the drops that
/// isolate it from the other bridges (and, internal, from everything else). As (chain,
/// expression) pairs. The drops are in both tables; the NAT rules only where the network
/// has a subnet of the family.
fn bridge_rules(
    family: &str,
    bridge: &BridgeRules,
    bridges: &[BridgeRules],
) -> Vec<(&'static str, Vec<Value>)> {
    let mut rules = Vec::new();
    let dev = json!(bridge.device);
    if let Some((addr, len)) = subnet_of(bridge, family) {
        if !bridge.internal {
            rules.push((
                "postrouting",
                vec![
                    saddr_in(family, addr.clone(), len),
                    ne(meta("oifname"), dev.clone()),
                    json!({"masquerade": null}),
                ],
            ));
        }
        let (lo, lo_len) = if family == "ip" {
            ("127.0.0.0".to_string(), 8)
        } else {
            ("::1".to_string(), 128)
        };
        rules.push((
            "postrouting",
            vec![
                eq(meta("oifname"), dev.clone()),
                saddr_in(family, lo, lo_len),
                json!({"masquerade": null}),
            ],
        ));
        rules.push((
            "postrouting",
            vec![
                eq(meta("oifname"), dev.clone()),
                saddr_in(family, addr, len),
                json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
                json!({"masquerade": null}),
            ],
        ));
    }
    let others: Vec<&str> = bridges
        .iter()
        .filter(|b| b.device != bridge.device)
        .map(|b| b.device.as_str())
        .collect();
    if !others.is_empty() {
        rules.push((
            "forward",
            vec![
                eq(meta("iifname"), dev.clone()),
                eq(meta("oifname"), json!({"set": others})),
                json!({"drop": null}),
            ],
        ));
    }
    if bridge.internal {
        rules.push((
            "forward",
            vec![
                eq(meta("iifname"), dev.clone()),
                ne(meta("oifname"), dev.clone()),
                json!({"drop": null}),
            ],
        ));
        rules.push((
            "forward",
            vec![
                eq(meta("oifname"), dev.clone()),
                ne(meta("iifname"), dev.clone()),
                json!({"drop": null}),
            ],
        ));
    }
    rules
}

/// Deleting the table (a no-op when it does not exist).
pub(crate) fn teardown(table: &str) -> Value {
    let cmds: Vec<Value> = FAMILIES
        .iter()
        .flat_map(|family| {
            [
                json!({"add": {"table": {"family": family, "name": table}}}),
                json!({"delete": {"table": {"family": family, "name": table}}}),
            ]
        })
        .collect();
    json!({"nftables": cmds})
}

/// Runs one `nft -j -f -` transaction.
/// Whether berth's table `table` is loaded (a firewall reload such as `nft flush ruleset`
/// removes it). Only nft's own "No such file or directory" answer means the table is gone:
/// a check that could not run (`EMFILE` when spawning, nft failing for another reason) is an
/// error, so the caller does not "restore" a table that is there.
pub(crate) fn table_exists(table: &str, with_ip6: bool) -> Result<bool, NetworkError> {
    for family in &FAMILIES[..if with_ip6 { 2 } else { 1 }] {
        if !family_table_exists(family, table)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn family_table_exists(family: &str, table: &str) -> Result<bool, NetworkError> {
    let output = Command::new("nft")
        .args(["list", "table", family, table])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| NetworkError::Spawn {
            program: "nft",
            source,
        })?;
    if output.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No such file or directory") {
        return Ok(false);
    }
    Err(NetworkError::Firewall {
        program: "nft",
        stderr: stderr.trim().to_owned(),
    })
}

pub(crate) fn apply(document: &Value) -> Result<(), NetworkError> {
    let spawn_err = |source| NetworkError::Spawn {
        program: "nft",
        source,
    };
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let text = document.to_string();
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .map_err(spawn_err)?;
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(NetworkError::Firewall {
            program: "nft",
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(doc: &Value, chain: &str) -> Vec<Value> {
        doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["add"]["rule"]["chain"] == chain && c["add"]["rule"]["family"] == "ip")
            .map(|c| c["add"]["rule"]["expr"].clone())
            .collect()
    }

    fn bridges() -> Vec<BridgeRules> {
        vec![
            BridgeRules {
                device: "berth0".into(),
                subnet: "172.18.0.0/16".parse().unwrap(),
                subnet6: Some("fd00:db8:9::/64".parse().unwrap()),
                internal: false,
            },
            BridgeRules {
                device: "br-a".into(),
                subnet: "172.19.0.0/16".parse().unwrap(),
                subnet6: None,
                internal: true,
            },
        ]
    }

    #[test]
    fn table_is_replaced_atomically_and_only_ours() {
        let doc = ruleset("berth-t", &bridges(), &[]);
        let cmds = doc["nftables"].as_array().unwrap();
        assert_eq!(cmds[0]["add"]["table"]["name"], "berth-t");
        assert_eq!(cmds[1]["delete"]["table"]["name"], "berth-t");
        for c in cmds {
            let (kind, inner) = c
                .as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .as_object()
                .unwrap()
                .iter()
                .next()
                .unwrap();
            let name = if kind == "table" {
                &inner["name"]
            } else {
                &inner["table"]
            };
            assert_eq!(name, "berth-t", "{c}");
        }
    }

    #[test]
    fn masquerade_only_for_non_internal_networks() {
        let doc = ruleset("berth", &bridges(), &[]);
        let post = rules_of(&doc, "postrouting");
        let egress: Vec<&Value> = post
            .iter()
            .filter(|e| e[1]["match"]["op"] == "!=" && e[2].get("masquerade").is_some())
            .collect();
        assert_eq!(egress.len(), 1);
        assert_eq!(
            egress[0][0]["match"]["right"]["prefix"]["addr"],
            "172.18.0.0"
        );
        assert_eq!(egress[0][1]["match"]["right"], "berth0");
        // localhost and hairpin masquerade for both bridges
        assert_eq!(post.len(), 1 + 2 * 2);
    }

    #[test]
    fn isolation_and_internal_drops() {
        let doc = ruleset("berth", &bridges(), &[]);
        let fwd = rules_of(&doc, "forward");
        assert!(fwd.iter().any(|e| e[0]["match"]["right"] == "berth0"
            && e[1]["match"]["right"]["set"] == json!(["br-a"])
            && e[2].get("drop").is_some()));
        assert!(fwd.iter().any(|e| e[0]["match"]["right"] == "br-a"
            && e[1]["match"]["op"] == "!="
            && e[1]["match"]["left"]["meta"]["key"] == "oifname"));
        assert_eq!(fwd.len(), 2 + 2);
    }

    fn rules6_of(doc: &Value, chain: &str) -> Vec<Value> {
        doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["add"]["rule"]["chain"] == chain && c["add"]["rule"]["family"] == "ip6")
            .map(|c| c["add"]["rule"]["expr"].clone())
            .collect()
    }

    #[test]
    fn no_ip6_table_without_a_dual_stack_network() {
        let mut v4 = bridges();
        v4[0].subnet6 = None;
        let doc = ruleset("berth", &v4, &[]);
        let ip6: Vec<&Value> = doc["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.to_string().contains("\"ip6\""))
            .collect();
        assert_eq!(ip6.len(), 2, "only add+delete of a leftover table: {ip6:?}");
        assert!(ip6[1].get("delete").is_some());
    }

    #[test]
    fn ipv6_rules_go_to_the_ip6_table() {
        let ports = [
            PortRule {
                protocol: Protocol::Tcp,
                host_ip: "::".parse().unwrap(),
                host_port: 8080,
                container_ip: "fd00:db8:9::2".parse().unwrap(),
                container_port: 80,
            },
            PortRule {
                protocol: Protocol::Tcp,
                host_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
                host_port: 8080,
                container_ip: "172.18.0.2".parse().unwrap(),
                container_port: 80,
            },
            // `-p [::1]:9090:80`: the proxy's alone, no DNAT.
            PortRule {
                protocol: Protocol::Tcp,
                host_ip: "::1".parse().unwrap(),
                host_port: 9090,
                container_ip: "fd00:db8:9::2".parse().unwrap(),
                container_port: 80,
            },
        ];
        let doc = ruleset("berth", &bridges(), &ports);
        let v6 = rules6_of(&doc, "ports");
        assert_eq!(v6.len(), 1, "{v6:?}");
        assert_eq!(v6[0][0]["match"]["op"], "!=", "::1 is left to the proxy");
        assert_eq!(
            v6[0][3]["dnat"],
            json!({"addr": "fd00:db8:9::2", "port": 80})
        );
        assert_eq!(rules_of(&doc, "ports").len(), 1);
        let post = rules6_of(&doc, "postrouting");
        // Egress, loopback and hairpin masquerade for the one dual-stack bridge only.
        assert_eq!(post.len(), 3);
        assert_eq!(post[0][0]["match"]["left"]["payload"]["protocol"], "ip6");
        assert_eq!(
            post[0][0]["match"]["right"]["prefix"]["addr"],
            "fd00:db8:9::"
        );
        // Isolation holds for IPv6 too.
        assert_eq!(rules6_of(&doc, "forward").len(), 2 + 2);
        let down = teardown("berth");
        assert_eq!(down["nftables"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn port_rules_dnat() {
        let ports = [
            PortRule {
                protocol: Protocol::Tcp,
                host_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
                host_port: 8080,
                container_ip: "172.18.0.2".parse().unwrap(),
                container_port: 80,
            },
            PortRule {
                protocol: Protocol::Udp,
                host_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                host_port: 5353,
                container_ip: "172.18.0.3".parse().unwrap(),
                container_port: 53,
            },
        ];
        let doc = ruleset("berth", &bridges(), &ports);
        let rules = rules_of(&doc, "ports");
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0].as_array().unwrap().len(),
            3,
            "no daddr match for 0.0.0.0"
        );
        assert_eq!(rules[0][1]["match"]["right"], 8080);
        assert_eq!(
            rules[0][2]["dnat"],
            json!({"addr": "172.18.0.2", "port": 80})
        );
        assert_eq!(rules[1][0]["match"]["right"], "127.0.0.1");
        assert_eq!(rules[1][1]["match"]["right"], "udp");
        assert_eq!(rules[1][2]["match"]["left"]["payload"]["protocol"], "udp");
        for chain in ["prerouting", "output"] {
            let jumps = rules_of(&doc, chain);
            assert_eq!(jumps[0][1]["jump"]["target"], "ports");
            assert_eq!(jumps[0][0]["match"]["right"], "local");
        }
    }
}
