//! `volume create|ls|inspect|rm|prune`.
use std::collections::HashMap;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::filters::filters_json;
use crate::format;
use crate::http::Client;
use crate::{CliError, CmdResult};

/// `berth volume …`.
#[derive(Debug, Subcommand)]
pub enum VolumeGroup {
    /// Create a volume.
    Create {
        /// Specify volume driver name.
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// Set driver specific options.
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// Set metadata for a volume.
        #[arg(long)]
        label: Vec<String>,
        /// Specify volume name.
        #[arg(long)]
        name: Option<String>,
        /// Volume name.
        volume: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only display volume names.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Provide filter values (e.g. "dangling=true").
        #[arg(short = 'f', long)]
        filter: Vec<String>,
        /// Format output using a Go template.
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more volumes.
    Inspect {
        /// Format output using a Go template.
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Volumes.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove one or more volumes.
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes.
        #[arg(short = 'f', long)]
        force: bool,
        /// Volumes.
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused local volumes.
    Prune {
        /// Remove all unused volumes, not just anonymous ones.
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values (e.g. "label=<label>").
        #[arg(long)]
        filter: Vec<String>,
    },
}

fn key_values(items: &[String]) -> HashMap<String, String> {
    items
        .iter()
        .map(|i| {
            let (k, v) = i.split_once('=').unwrap_or((i, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Runs `berth volume …`.
pub fn run_group(c: &Client, g: VolumeGroup) -> CmdResult {
    match g {
        VolumeGroup::Create {
            driver,
            opt,
            label,
            name,
            volume,
        } => {
            if name.is_some() && volume.is_some() && name != volume {
                return Err(CliError::msg(
                    "conflicting options: either specify --name or provide positional arg, not both",
                ));
            }
            let body = json!({
                "Name": name.or(volume).unwrap_or_default(),
                "Driver": driver,
                "DriverOpts": key_values(&opt),
                "Labels": key_values(&label),
            });
            let v: Value = c.post("/volumes/create", &[], Some(&body))?.json()?;
            println!("{}", v["Name"].as_str().unwrap_or(""));
            Ok(0)
        }
        VolumeGroup::Ls {
            quiet,
            filter,
            format,
        } => ls(c, quiet, &filter, format.as_deref()),
        VolumeGroup::Inspect { format, volumes } => inspect(c, format.as_deref(), &volumes),
        VolumeGroup::Rm { force, volumes } => {
            let mut code = 0;
            let q: Vec<(&str, String)> = if force {
                vec![("force", "1".to_string())]
            } else {
                vec![]
            };
            for n in &volumes {
                match c.delete(&format!("/volumes/{n}"), &q) {
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        code = 1;
                        eprintln!("{}", e.message);
                    }
                }
            }
            Ok(code)
        }
        VolumeGroup::Prune { all, force, filter } => {
            let question = if all {
                "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?"
            } else {
                "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?"
            };
            if !force && !crate::confirm::confirm(question) {
                return Ok(0);
            }
            let mut filter = filter;
            if all {
                filter.push("all=true".into());
            }
            let q: Vec<(&str, String)> = if filter.is_empty() {
                vec![]
            } else {
                vec![("filters", filters_json(&filter)?)]
            };
            let v: Value = c.post_empty("/volumes/prune", &q)?.json()?;
            format::print_prune_result(&v, "VolumesDeleted", "Deleted Volumes");
            Ok(0)
        }
    }
}

/// `volume ls`.
fn ls(c: &Client, quiet: bool, filter: &[String], format: Option<&str>) -> CmdResult {
    let q: Vec<(&str, String)> = if filter.is_empty() {
        vec![]
    } else {
        vec![("filters", filters_json(filter)?)]
    };
    let v: Value = c.get("/volumes", &q)?;
    let mut items: Vec<Value> = v["Volumes"].as_array().cloned().unwrap_or_default();
    items.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    if quiet {
        for i in &items {
            println!("{}", i["Name"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    let heads = |h: &str| match h {
        "Name" => "VOLUME NAME".to_string(),
        other => other.to_uppercase(),
    };
    let fmt = format::parse_format(format, &heads)?;
    // Templates see docker's field names (`.Name`, `.Driver`, `.Mountpoint`, …).
    let shaped: Vec<Value> = items
        .iter()
        .map(|i| {
            let labels = i["Labels"]
                .as_object()
                .map(|m| {
                    let mut l: Vec<String> = m
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect();
                    l.sort();
                    l.join(",")
                })
                .unwrap_or_default();
            let mut s = i.clone();
            s["Labels"] = json!(labels);
            s
        })
        .collect();
    format::print_items(&fmt, &shaped, &|| {
        let mut rows = vec![vec!["DRIVER".to_string(), "VOLUME NAME".to_string()]];
        for i in &items {
            rows.push(vec![
                i["Driver"].as_str().unwrap_or("").to_string(),
                i["Name"].as_str().unwrap_or("").to_string(),
            ]);
        }
        rows
    })?;
    Ok(0)
}

/// `volume inspect`.
fn inspect(c: &Client, format: Option<&str>, volumes: &[String]) -> CmdResult {
    let mut items = Vec::new();
    let mut code = 0;
    for n in volumes {
        match c.get::<Value>(&format!("/volumes/{n}"), &[]) {
            Ok(v) => items.push(v),
            Err(e) => {
                code = 1;
                eprintln!("{}", e.message);
            }
        }
    }
    match format {
        Some(f) if !f.is_empty() && f != "json" => {
            let t = format::template(&f.replace("\\t", "\t").replace("\\n", "\n"))?;
            for i in &items {
                println!("{}", format::render(&t, i)?);
            }
        }
        _ => {
            format::print_inspect_json(&items)?;
        }
    }
    Ok(code)
}
