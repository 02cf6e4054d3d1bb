//! `berth network …`: create, ls, inspect, rm, prune, connect, disconnect.
use std::collections::BTreeMap;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::filters::filters_json;
use crate::format;
use crate::http::Client;
use crate::inspect::{inspect, inspect_args};
use crate::{CliError, CmdResult};

/// `berth network …`.
#[derive(Debug, Subcommand)]
pub enum NetworkGroup {
    /// Create a network.
    Create {
        /// Driver to manage the network (bridge, macvlan).
        #[arg(short = 'd', long = "driver", default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format.
        #[arg(long)]
        subnet: Vec<String>,
        /// IPv4 gateway for the subnet.
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate container IPs from a sub-range.
        #[arg(long = "ip-range")]
        ip_range: Vec<String>,
        /// Restrict external access to the network.
        #[arg(long)]
        internal: bool,
        /// Enable manual container attachment.
        #[arg(long)]
        attachable: bool,
        /// Enable IPv6 networking (give an IPv6 --subnet too).
        #[arg(long)]
        ipv6: bool,
        /// Set driver specific options (key=value).
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// Set metadata on a network (key=value).
        #[arg(long)]
        label: Vec<String>,
        /// Network name.
        name: String,
    },
    /// List networks.
    #[command(visible_alias = "list")]
    Ls {
        /// Provide filter values (e.g. "driver=bridge").
        #[arg(short = 'f', long)]
        filter: Vec<String>,
        /// Format output using a Go template.
        #[arg(long)]
        format: Option<String>,
        /// Do not truncate the output.
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Only display network IDs.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Display detailed information on one or more networks.
    Inspect {
        /// Format output using a Go template.
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Verbose output (accepted, ignored).
        #[arg(short = 'v', long)]
        verbose: bool,
        /// Networks.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more networks.
    #[command(visible_alias = "remove")]
    Rm {
        /// Do not error if the network does not exist.
        #[arg(short = 'f', long)]
        force: bool,
        /// Networks.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove all unused networks.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values.
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Connect a container to a network.
    Connect {
        /// IPv4 address.
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address.
        #[arg(long)]
        ip6: Option<String>,
        /// Add network-scoped alias for the container.
        #[arg(long)]
        alias: Vec<String>,
        /// MAC address.
        #[arg(long = "mac-address")]
        mac_address: Option<String>,
        /// Network.
        network: String,
        /// Container.
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Force the container to disconnect from a network.
        #[arg(short = 'f', long)]
        force: bool,
        /// Network.
        network: String,
        /// Container.
        container: String,
    },
}

fn key_values(list: &[String], what: &str) -> Result<BTreeMap<String, String>, CliError> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None if what == "label" => Ok((kv.clone(), String::new())),
            None => Err(CliError::msg(format!(
                "invalid {what} {kv:?}: expected key=value"
            ))),
        })
        .collect()
}

/// Runs `berth network …`.
pub fn run_group(c: &Client, g: NetworkGroup) -> CmdResult {
    match g {
        NetworkGroup::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            internal,
            attachable,
            ipv6,
            opt,
            label,
            name,
        } => {
            let config = ipam_config(&subnet, &gateway, &ip_range)?;
            let body = json!({
                "Name": name,
                "Driver": driver,
                "IPAM": { "Driver": "default", "Config": config, "Options": {} },
                "Internal": internal,
                "Attachable": attachable,
                "EnableIPv6": ipv6,
                "Options": key_values(&opt, "option")?,
                "Labels": key_values(&label, "label")?,
            });
            let v: Value = c.post("/networks/create", &[], Some(&body))?.json()?;
            println!("{}", v["Id"].as_str().unwrap_or(""));
            Ok(0)
        }
        NetworkGroup::Ls {
            filter,
            format,
            no_trunc,
            quiet,
        } => ls(c, &filter, format.as_deref(), no_trunc, quiet),
        NetworkGroup::Inspect {
            format,
            verbose: _,
            names,
        } => inspect(c, inspect_args(format, names, "network")),
        NetworkGroup::Rm { force, names } => {
            let mut code = 0;
            for n in names {
                match c.delete(&format!("/networks/{n}"), &[]) {
                    Ok(_) => println!("{n}"),
                    Err(e) if force && e.status == Some(404) => {}
                    Err(e) => {
                        eprintln!("{}", e.message);
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        NetworkGroup::Prune { force, filter } => prune(c, force, &filter),
        NetworkGroup::Connect {
            ip,
            ip6,
            alias,
            mac_address,
            network,
            container,
        } => {
            let mut endpoint = json!({});
            if ip.is_some() || ip6.is_some() {
                endpoint["IPAMConfig"] = json!({
                    "IPv4Address": ip.unwrap_or_default(),
                    "IPv6Address": ip6.unwrap_or_default(),
                });
            }
            if !alias.is_empty() {
                endpoint["Aliases"] = json!(alias);
            }
            if let Some(mac) = mac_address {
                endpoint["MacAddress"] = json!(mac);
            }
            let body = json!({ "Container": container, "EndpointConfig": endpoint });
            c.post(&format!("/networks/{network}/connect"), &[], Some(&body))?;
            Ok(0)
        }
        NetworkGroup::Disconnect {
            force,
            network,
            container,
        } => {
            let body = json!({ "Container": container, "Force": force });
            c.post(&format!("/networks/{network}/disconnect"), &[], Some(&body))?;
            Ok(0)
        }
    }
}

/// `network ls`.
fn ls(
    c: &Client,
    filter: &[String],
    format: Option<&str>,
    no_trunc: bool,
    quiet: bool,
) -> CmdResult {
    let q = if filter.is_empty() {
        vec![]
    } else {
        vec![("filters", filters_json(filter)?)]
    };
    let list: Vec<Value> = c.get("/networks", &q)?;
    let id = |v: &Value| format::short_id(v["Id"].as_str().unwrap_or(""), no_trunc);
    if quiet {
        for v in &list {
            println!("{}", id(v));
        }
        return Ok(0);
    }
    let items: Vec<Value> = list
        .iter()
        .map(|v| {
            let labels = v["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            json!({
                "ID": id(v),
                "Name": v["Name"],
                "Driver": v["Driver"],
                "Scope": v["Scope"],
                "IPv6": v["EnableIPv6"],
                "Internal": v["Internal"],
                "Labels": labels,
                "CreatedAt": v["Created"],
            })
        })
        .collect();
    let fmt = format::parse_format(format, &|n| match n {
        "ID" => "NETWORK ID".into(),
        other => other.to_uppercase(),
    })?;
    format::print_items(&fmt, &items, &|| {
        let mut rows = vec![vec![
            "NETWORK ID".to_string(),
            "NAME".into(),
            "DRIVER".into(),
            "SCOPE".into(),
        ]];
        for i in &items {
            rows.push(
                ["ID", "Name", "Driver", "Scope"]
                    .iter()
                    .map(|k| i[*k].as_str().unwrap_or("").to_string())
                    .collect(),
            );
        }
        rows
    })?;
    Ok(0)
}

/// `network prune`.
fn prune(c: &Client, force: bool, filter: &[String]) -> CmdResult {
    if !force
        && !crate::confirm::confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?",
        )
    {
        return Ok(0);
    }
    let q = if filter.is_empty() {
        vec![]
    } else {
        vec![("filters", filters_json(filter)?)]
    };
    let v: Value = c.post::<()>("/networks/prune", &q, None)?.json()?;
    let deleted: Vec<&str> = v["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for d in deleted {
            println!("{d}");
        }
    }
    Ok(0)
}

/// `IPAM.Config` of `network create`: one entry per `--subnet`, with the `--gateway` and
/// `--ip-range` of the same position.
fn ipam_config(
    subnet: &[String],
    gateway: &[String],
    ip_range: &[String],
) -> Result<Vec<Value>, CliError> {
    if gateway.len() > subnet.len() || ip_range.len() > subnet.len() {
        return Err(CliError::msg(
            "every --gateway and --ip-range needs a matching --subnet",
        ));
    }
    Ok(subnet
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut m = json!({ "Subnet": s });
            if let Some(g) = gateway.get(i) {
                m["Gateway"] = json!(g);
            }
            if let Some(r) = ip_range.get(i) {
                m["IPRange"] = json!(r);
            }
            m
        })
        .collect())
}
