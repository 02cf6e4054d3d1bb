//! `inspect` of any object (`berth inspect`, `container|image|network inspect`): the
//! objects by name, printed as docker prints them (JSON array or a template per object).
use clap::Args;
use serde_json::Value;

use crate::format;
use crate::http::Client;
use crate::{CliError, CmdResult};

/// `inspect`.
#[derive(Debug, Args, Clone)]
pub struct InspectArgs {
    /// Format output using a Go template.
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Display total file sizes.
    #[arg(short = 's', long)]
    size: bool,
    /// Only this type of object.
    #[arg(long = "type")]
    typ: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

/// Inspect arguments for a typed inspect (`image inspect`).
pub fn inspect_args(format: Option<String>, names: Vec<String>, typ: &str) -> InspectArgs {
    InspectArgs {
        format,
        size: false,
        typ: Some(typ.to_string()),
        names,
    }
}

/// Generic inspect: containers, then images (or only `--type`).
pub fn inspect(c: &Client, a: InspectArgs) -> CmdResult {
    let mut items = Vec::new();
    let mut code = 0;
    let size = if a.size {
        vec![("size", "1".to_string())]
    } else {
        vec![]
    };
    for n in &a.names {
        let kinds: Vec<&str> = match a.typ.as_deref() {
            Some("container") => vec!["container"],
            Some("image") => vec!["image"],
            Some("network") => vec!["network"],
            Some("volume") => vec!["volume"],
            Some(t) => {
                return Err(CliError::msg(format!(
                    "\"{t}\" is not a valid value for --type"
                )));
            }
            None => vec!["container", "image", "volume"],
        };
        let mut found = None;
        let mut last_err = None;
        for k in &kinds {
            let path = match *k {
                "container" => format!("/containers/{n}/json"),
                "network" => format!("/networks/{n}"),
                "volume" => format!("/volumes/{n}"),
                _ => format!("/images/{n}/json"),
            };
            match c.get::<Value>(&path, &size) {
                Ok(v) => {
                    found = Some(v);
                    break;
                }
                Err(e) if e.status == Some(404) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        match found {
            Some(v) => items.push(v),
            None => {
                code = 1;
                match a.typ.as_deref() {
                    Some(_) => eprintln!("{}", last_err.map(|e| e.message).unwrap_or_default()),
                    None => eprintln!("Error: No such object: {n}"),
                }
            }
        }
    }
    match a.format.as_deref() {
        Some(f) if !f.is_empty() && f != "json" => {
            let t = format::template(&f.replace("\\t", "\t").replace("\\n", "\n"))?;
            let mut out = String::new();
            for i in &items {
                out.push_str(&format::render(&t, i)?);
                out.push('\n');
            }
            print!("{out}");
        }
        _ => {
            format::print_inspect_json(&items)?;
        }
    }
    Ok(code)
}
