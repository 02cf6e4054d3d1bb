//! Output formatting as docker does it: Go templates (with docker's extra functions), `table`
//! templates aligned like Go's tabwriter, human sizes and durations.
use std::sync::Arc;

use gotmpl::{MissingKey, Template, Value};

pub use berth_api::convention::human_duration;
use berth_api::convention::significant;

use crate::CliError;

/// Converts template data back to JSON (for the `json` function).
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::json!(i),
        Value::Uint(u) => serde_json::json!(u),
        Value::Float(f) => serde_json::json!(f),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
        }
        #[allow(unreachable_patterns)]
        _ => serde_json::Value::Null,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Nil => String::new(),
        other => other.to_string(),
    }
}

fn s(v: impl Into<String>) -> Value {
    Value::String(Arc::from(v.into()))
}

/// A compiled template with its source (execution errors point into the source, as Go's do).
pub struct Tmpl {
    template: Template,
    source: String,
}

/// Compiles a docker-style template.
pub fn template(src: &str) -> Result<Tmpl, CliError> {
    let template = Template::new("")
        .missing_key(MissingKey::Error)
        .func("json", |a| {
            Ok(s(a
                .first()
                .map(|v| to_json(v).to_string())
                .unwrap_or_default()))
        })
        .func("join", |a| {
            let sep = a.get(1).map(text).unwrap_or_default();
            let items: Vec<String> = match a.first() {
                Some(Value::List(l)) => l.iter().map(text).collect(),
                Some(v) => vec![text(v)],
                None => vec![],
            };
            Ok(s(items.join(&sep)))
        })
        .func("split", |a| {
            let (t, sep) = (
                a.first().map(text).unwrap_or_default(),
                a.get(1).map(text).unwrap_or_default(),
            );
            Ok(Value::List(
                t.split(sep.as_str()).map(s).collect::<Vec<_>>().into(),
            ))
        })
        .func("upper", |a| {
            Ok(s(a.first().map(text).unwrap_or_default().to_uppercase()))
        })
        .func("lower", |a| {
            Ok(s(a.first().map(text).unwrap_or_default().to_lowercase()))
        })
        .func("title", |a| {
            let t = a.first().map(text).unwrap_or_default();
            let mut c = t.chars();
            Ok(s(c
                .next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()))
        })
        .func("truncate", |a| {
            let t = a.first().map(text).unwrap_or_default();
            let n = match a.get(1) {
                Some(Value::Int(i)) => *i as usize,
                Some(Value::Uint(u)) => *u as usize,
                _ => t.len(),
            };
            Ok(s(t.chars().take(n).collect::<String>()))
        })
        .func("pad", |a| {
            let t = a.first().map(text).unwrap_or_default();
            let n = |i: usize| match a.get(i) {
                Some(Value::Int(v)) => *v as usize,
                Some(Value::Uint(v)) => *v as usize,
                _ => 0,
            };
            Ok(s(format!("{}{}{}", " ".repeat(n(1)), t, " ".repeat(n(2)))))
        })
        .func("println", |a| {
            Ok(s(format!(
                "{}\n",
                a.iter().map(text).collect::<Vec<_>>().join(" ")
            )))
        })
        .parse(src)
        .map_err(|e| CliError::msg(format!("template parsing error: {e}")))?;
    Ok(Tmpl {
        template,
        source: src.to_string(),
    })
}

/// Go's message for a missing key: `template: :LINE:COL: executing "" at <.Chain>: map has
/// no entry for key "Key"`, locating the first field chain in the source that names the key.
fn missing_key_message(source: &str, key: &str) -> String {
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let chain_start = i;
        let mut names = Vec::new();
        while i < bytes.len() && bytes[i] == b'.' {
            let start = i + 1;
            i = start;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            names.push(&source[start..i]);
        }
        if names.contains(&key) {
            let line_start = source[..chain_start].rfind('\n').map_or(0, |n| n + 1);
            let line = source[..chain_start].matches('\n').count() + 1;
            let col = chain_start - line_start;
            let chain = &source[chain_start..i];
            return format!(
                "template: :{line}:{col}: executing \"\" at <{chain}>: map has no entry for key \"{key}\""
            );
        }
        i = if names.is_empty() { i + 1 } else { i };
    }
    format!("template: map has no entry for key \"{key}\"")
}

/// Renders `tmpl` over JSON data.
pub fn render(tmpl: &Tmpl, data: &serde_json::Value) -> Result<String, CliError> {
    let v = gotmpl::ser::to_value(data).map_err(|e| CliError::msg(format!("template: {e}")))?;
    let out = tmpl.template.execute_to_string(&v).map_err(|e| match e {
        gotmpl::TemplateError::MissingKey { key, .. } => {
            CliError::msg(missing_key_message(&tmpl.source, &key))
        }
        other => CliError::msg(format!("template: {other}")),
    })?;
    // Missing keys are errors, so `<no value>` can only come from a JSON null: docker renders
    // the typed struct, where that is a nil pointer and prints `<nil>`.
    Ok(if out.contains("<no value>") {
        out.replace("<no value>", "<nil>")
    } else {
        out
    })
}

/// Prints rows aligned as Go's tabwriter(minwidth 10, padding 3) does for docker's tables.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let w = (widths[i] + 3).max(10);
                line.push_str(c);
                line.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    print!("{out}");
}

/// A `--format` value: docker's `table …`, `json`, or a plain template.
pub enum Format {
    /// The command's default table.
    Default,
    /// `table {{…}}\t{{…}}`: a header row from field names, then rows.
    Table(Tmpl, Vec<String>),
    /// `json`: one JSON object per line.
    Json,
    /// A plain template per item.
    Plain(Tmpl),
}

/// Parses `--format`; `headers` maps template field names to docker's column titles.
pub fn parse_format(f: Option<&str>, headers: &dyn Fn(&str) -> String) -> Result<Format, CliError> {
    match f {
        None | Some("") | Some("table") => Ok(Format::Default),
        Some("json") | Some("{{json .}}") => Ok(Format::Json),
        Some(t) if t.starts_with("table ") => {
            let body = t["table ".len()..].replace("\\t", "\t");
            let heads = body
                .split('\t')
                .map(|cell| {
                    let name = cell
                        .trim()
                        .trim_start_matches("{{")
                        .trim_end_matches("}}")
                        .trim()
                        .trim_start_matches('.')
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    headers(&name)
                })
                .collect();
            Ok(Format::Table(template(&body)?, heads))
        }
        Some(t) => Ok(Format::Plain(template(
            &t.replace("\\t", "\t").replace("\\n", "\n"),
        )?)),
    }
}

/// Renders items under a parsed format; `default` makes the default table rows.
pub fn print_items(
    fmt: &Format,
    items: &[serde_json::Value],
    default: &dyn Fn() -> Vec<Vec<String>>,
) -> Result<(), CliError> {
    match fmt {
        Format::Default => print_table(&default()),
        Format::Json => {
            for i in items {
                println!("{i}");
            }
        }
        Format::Table(t, heads) => {
            let mut rows = vec![heads.clone()];
            for i in items {
                rows.push(render(t, i)?.split('\t').map(String::from).collect());
            }
            print_table(&rows);
        }
        Format::Plain(t) => {
            let mut out = String::new();
            for i in items {
                out.push_str(&render(t, i)?);
                out.push('\n');
            }
            print!("{out}");
        }
    }
    Ok(())
}

/// docker's HumanSizeWithPrecision(size, 3): decimal units, 3 significant digits (`1.98MB`).
pub fn human_size(bytes: f64) -> String {
    berth_api::convention::human_size(bytes, 3)
}

/// go-units BytesSize: binary units (`572KiB`, `23.54GiB`).
pub fn bytes_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", significant(v, 4), UNITS[i])
}

/// "5 minutes ago" from a Unix time.
pub fn ago(unix: i64) -> String {
    format!(
        "{} ago",
        human_duration(chrono::Utc::now().timestamp() - unix)
    )
}

/// Docker's display of a 64-hex id: 12 chars unless --no-trunc.
pub fn short_id(id: &str, no_trunc: bool) -> String {
    let id = id
        .strip_prefix("sha256:")
        .filter(|_| !no_trunc)
        .unwrap_or(id);
    if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

/// Prints a prune answer as docker does: the removed ids under `heading`, then the space won.
pub fn print_prune_result(answer: &serde_json::Value, deleted_key: &str, heading: &str) {
    let deleted: Vec<&str> = answer[deleted_key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
        .collect();
    if !deleted.is_empty() {
        println!("{heading}:");
        for d in deleted {
            println!("{d}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size(answer["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
}

/// Prints `value` as `docker inspect` does: JSON indented by four spaces.
pub fn print_inspect_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    value
        .serialize(&mut ser)
        .map_err(|e| CliError::msg(e.to_string()))?;
    println!("{}", String::from_utf8_lossy(&buf));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_match_go_units() {
        assert_eq!(human_size(1_980_000.0), "1.98MB");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1234567890.0), "1.23GB");
        assert_eq!(human_size(1_983_000.0), "1.98MB");
        assert_eq!(bytes_size(572.0 * 1024.0), "572KiB");
        assert_eq!(bytes_size(64.0 * 1024.0 * 1024.0), "64MiB");
        assert_eq!(bytes_size(0.0), "0B");
    }

    #[test]
    fn templates_have_dockers_functions_and_fail_on_unknown_fields() {
        let d = serde_json::json!({"Id": "abc", "Config": {"Env": ["A=1", "B=2"], "Labels": {"x": "y"}}, "Name": "/n"});
        let t =
            template("{{.Id}} {{join .Config.Env \",\"}} {{json .Config.Labels}} {{upper .Name}}")
                .unwrap();
        assert_eq!(render(&t, &d).unwrap(), "abc A=1,B=2 {\"x\":\"y\"} /N");
        let t = template("{{.Nope}}").unwrap();
        assert!(render(&t, &d).is_err());
    }

    #[test]
    fn templates_render_like_docker_on_nulls_and_missing_keys() {
        let d = serde_json::json!({"State": {"Pid": 42, "Error": null}, "Config": {"Cmd": ["sh", "-c"], "Labels": {}}});
        let t = template("{{.State.Pid}} {{.State.Error}} {{.Config.Cmd}}").unwrap();
        assert_eq!(render(&t, &d).unwrap(), "42 <nil> [sh -c]");
        let err = render(&template("{{.Nope}}").unwrap(), &d).unwrap_err();
        assert_eq!(
            err.message,
            "template: :1:2: executing \"\" at <.Nope>: map has no entry for key \"Nope\""
        );
        assert_eq!(
            missing_key_message("{{.Id}}\n  {{.Config.Nope}}", "Nope"),
            "template: :2:4: executing \"\" at <.Config.Nope>: map has no entry for key \"Nope\""
        );
        let t = template("{{truncate .S 3}}|{{pad .S 1 2}}|{{title .S}}|{{split .L \",\"}}|{{lower \"AB\"}}{{println}}")
            .unwrap();
        let d = serde_json::json!({"S": "hello", "L": "a,b"});
        assert_eq!(render(&t, &d).unwrap(), "hel| hello  |Hello|[a b]|ab\n");
    }

    #[test]
    fn table_format_takes_headers_from_fields() {
        let f = parse_format(Some("table {{.ID}}\\t{{.Names}}"), &|n| n.to_uppercase()).unwrap();
        match f {
            Format::Table(_, h) => assert_eq!(h, vec!["ID", "NAMES"]),
            _ => panic!("not a table"),
        }
    }
}
