//! `--change` instructions (`import -c`, later `commit -c`): Dockerfile lines that edit an
//! image's run config.
//!
//! Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER,
//! VOLUME and WORKDIR here; anything else is `<instruction> is not a valid change command`
//! (with the instruction lowercase, as Docker's parser reports it). All changes are parsed and
//! applied to a copy before anything is stored, so a bad one changes nothing.

use std::collections::HashMap;

use serde_json::Value;

use crate::config::RunConfig;
use crate::error::ImageError;

/// Applies Dockerfile-style change lines to `config`, in order.
pub fn apply_changes(config: &RunConfig, changes: &[String]) -> Result<RunConfig, ImageError> {
    let mut config = config.clone();
    // ENTRYPOINT resets CMD unless a CMD came earlier in the same set of changes.
    let mut cmd_set = false;
    for change in changes {
        for line in change.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            apply_line(&mut config, line, &mut cmd_set)?;
        }
    }
    Ok(config)
}

/// `ENV`: each pair replaces the variable's entry, or is added after the others.
fn set_env(env: &mut Vec<String>, pairs: Vec<(String, String)>) {
    for (key, value) in pairs {
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|existing| {
            existing
                .split_once('=')
                .map_or(existing.as_str(), |(k, _)| k)
                == key
        }) {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }
}

/// `VOLUME`'s paths: a JSON list or words; none may be empty.
fn volume_paths(rest: &str) -> Result<Vec<String>, &'static str> {
    let paths = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(paths) => paths,
        Err(_) => rest.split_whitespace().map(str::to_owned).collect(),
    };
    if paths.iter().any(|path| path.trim().is_empty()) {
        return Err("VOLUME specified can not be an empty string");
    }
    Ok(paths)
}

/// `ONBUILD`'s trigger line (instruction upper-cased); triggers Docker refuses are refused.
fn onbuild_trigger(rest: &str) -> Result<String, &'static str> {
    let (trigger, trigger_args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let trigger = trigger.to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        "FROM" | "MAINTAINER" => {
            return Err("this instruction isn't allowed as an ONBUILD trigger");
        }
        _ => {}
    }
    Ok(format!("{trigger} {}", trigger_args.trim())
        .trim_end()
        .to_owned())
}

fn apply_line(config: &mut RunConfig, line: &str, cmd_set: &mut bool) -> Result<(), ImageError> {
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let instruction = word.to_ascii_uppercase();
    let malformed = |problem: &'static str| ImageError::MalformedChange {
        instruction: instruction.clone(),
        line: line.to_owned(),
        problem,
    };
    let require_args = || {
        if rest.is_empty() {
            Err(malformed("requires at least one argument"))
        } else {
            Ok(())
        }
    };
    match instruction.as_str() {
        "CMD" => {
            require_args()?;
            config.cmd = Some(exec_or_shell_form(rest));
            *cmd_set = true;
        }
        "ENTRYPOINT" => {
            require_args()?;
            config.entrypoint = Some(exec_or_shell_form(rest));
            if !*cmd_set {
                config.cmd = None;
            }
        }
        "ENV" => {
            require_args()?;
            let pairs = name_value_pairs(rest).map_err(malformed)?;
            set_env(config.env.get_or_insert_with(Vec::new), pairs);
        }
        "LABEL" => {
            require_args()?;
            let pairs = name_value_pairs(rest).map_err(malformed)?;
            config.labels.get_or_insert_with(HashMap::new).extend(pairs);
        }
        "EXPOSE" => {
            require_args()?;
            let ports = config.exposed_ports.get_or_insert_with(HashMap::new);
            for spec in rest.split_whitespace() {
                for port in expand_port_spec(spec).map_err(malformed)? {
                    ports.insert(port, Value::Object(serde_json::Map::new()));
                }
            }
        }
        "VOLUME" => {
            require_args()?;
            let paths = volume_paths(rest).map_err(malformed)?;
            let volumes = config.volumes.get_or_insert_with(HashMap::new);
            for path in paths {
                volumes.insert(path, Value::Object(serde_json::Map::new()));
            }
        }
        "WORKDIR" => {
            require_args()?;
            config.working_dir = Some(
                match (rest.starts_with('/'), config.working_dir.as_deref()) {
                    (false, Some(previous)) => format!("{}/{rest}", previous.trim_end_matches('/')),
                    (false, None) => format!("/{rest}"),
                    (true, _) => rest.to_owned(),
                },
            );
        }
        "USER" => {
            require_args()?;
            config.user = Some(rest.to_owned());
        }
        "STOPSIGNAL" => {
            require_args()?;
            if !is_signal_name(rest) {
                return Err(malformed("invalid signal"));
            }
            config.stop_signal = Some(rest.to_owned());
        }
        "ONBUILD" => {
            require_args()?;
            let trigger = onbuild_trigger(rest).map_err(malformed)?;
            config.on_build.get_or_insert_with(Vec::new).push(trigger);
        }
        "HEALTHCHECK" => return Err(ImageError::UnsupportedChange { instruction }),
        _ => {
            return Err(ImageError::InvalidChangeCommand {
                command: word.to_ascii_lowercase(),
            });
        }
    }
    Ok(())
}

/// JSON array → exec form; anything else → `/bin/sh -c <text>`, as a Dockerfile does.
fn exec_or_shell_form(rest: &str) -> Vec<String> {
    if rest.starts_with('[')
        && let Ok(args) = serde_json::from_str::<Vec<String>>(rest)
    {
        return args;
    }
    vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.to_owned()]
}

/// `K=V K2="v 2"`, or the legacy single pair `K some value`.
fn name_value_pairs(rest: &str) -> Result<Vec<(String, String)>, &'static str> {
    let words = shell_words(rest).ok_or("unterminated quote")?;
    let first_has_equals = words.first().is_some_and(|word| word.contains('='));
    if !first_has_equals {
        // Legacy form: the name, then everything after it verbatim.
        let (name, value) = rest
            .split_once(char::is_whitespace)
            .ok_or("must have two arguments")?;
        return Ok(vec![(name.to_owned(), value.trim().to_owned())]);
    }
    words
        .into_iter()
        .map(|word| {
            let (name, value) = word
                .split_once('=')
                .ok_or("can't find = in an argument. Must be of the form: name=value")?;
            if name.is_empty() {
                return Err("names can not be blank");
            }
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Splits on whitespace outside quotes; removes quotes and backslash escapes. `None` when a
/// quote is not closed.
fn shell_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        c => word.push(c),
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// `80`, `443/udp`, `8000-8002/tcp` → `["80/tcp"]`, … .
fn expand_port_spec(spec: &str) -> Result<Vec<String>, &'static str> {
    let (ports, protocol) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let protocol = protocol.to_ascii_lowercase();
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err("invalid proto");
    }
    let parse = |port: &str| {
        port.parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or("invalid containerPort")
    };
    let (start, end) = match ports.split_once('-') {
        Some((start, end)) => (parse(start)?, parse(end)?),
        None => {
            let port = parse(ports)?;
            (port, port)
        }
    };
    if end < start {
        return Err("invalid port range");
    }
    Ok((start..=end)
        .map(|port| format!("{port}/{protocol}"))
        .collect())
}

/// A number, or a name made of uppercase letters, digits, `+` and `-` (`SIGTERM`, `RTMIN+3`).
fn is_signal_name(signal: &str) -> bool {
    if signal.bytes().all(|b| b.is_ascii_digit()) {
        return signal.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n));
    }
    let upper = signal.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    !name.is_empty()
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(lines: &[&str]) -> Result<RunConfig, ImageError> {
        let changes: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
        apply_changes(&RunConfig::default(), &changes)
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    #[test]
    fn applies_each_instruction() {
        let config = apply(&[
            r#"CMD ["sh"]"#,
            "ENV A=1 B=\"two words\" C=x\\ y",
            "env LEGACY some value here",
            "ENV A=replaced",
            "WORKDIR /app",
            "WORKDIR sub",
            "USER 1000:1000",
            "EXPOSE 80 443/udp 8000-8001",
            "LABEL maintainer=me \"with space\"=yes",
            r#"VOLUME ["/a", "/b"]"#,
            "VOLUME /c /d",
            "STOPSIGNAL SIGINT",
            "ONBUILD run echo hi",
        ])
        .expect("valid changes");
        assert_eq!(config.cmd, Some(strings(&["sh"])));
        assert_eq!(
            config.env,
            Some(strings(&[
                "A=replaced",
                "B=two words",
                "C=x y",
                "LEGACY=some value here"
            ]))
        );
        assert_eq!(config.working_dir.as_deref(), Some("/app/sub"));
        assert_eq!(config.user.as_deref(), Some("1000:1000"));
        let mut ports: Vec<_> = config.exposed_ports.expect("ports").into_keys().collect();
        ports.sort();
        assert_eq!(
            ports,
            strings(&["443/udp", "80/tcp", "8000/tcp", "8001/tcp"])
        );
        let labels = config.labels.expect("labels");
        assert_eq!(labels.get("maintainer").map(String::as_str), Some("me"));
        assert_eq!(labels.get("with space").map(String::as_str), Some("yes"));
        let mut volumes: Vec<_> = config.volumes.expect("volumes").into_keys().collect();
        volumes.sort();
        assert_eq!(volumes, strings(&["/a", "/b", "/c", "/d"]));
        assert_eq!(config.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(config.on_build, Some(strings(&["RUN echo hi"])));
    }

    #[test]
    fn shell_and_exec_forms() {
        let config = apply(&["CMD sh -c x"]).expect("valid");
        assert_eq!(config.cmd, Some(strings(&["/bin/sh", "-c", "sh -c x"])));
        let config = apply(&["CMD [not json"]).expect("valid");
        assert_eq!(config.cmd, Some(strings(&["/bin/sh", "-c", "[not json"])));
        let config = apply(&[r#"ENTRYPOINT ["/bin/app", "--flag"]"#]).expect("valid");
        assert_eq!(config.entrypoint, Some(strings(&["/bin/app", "--flag"])));
        // ENTRYPOINT after CMD keeps it; before, it would reset an inherited one.
        let config = apply(&["CMD [\"a\"]", "ENTRYPOINT e"]).expect("valid");
        assert_eq!(config.cmd, Some(strings(&["a"])));
        let base = RunConfig {
            cmd: Some(strings(&["inherited"])),
            ..RunConfig::default()
        };
        let config = apply_changes(&base, &["ENTRYPOINT e".to_owned()]).expect("valid");
        assert_eq!(config.cmd, None);
        // Several lines in one change, and comments.
        let config = apply(&["# comment\nUSER a\n\nWORKDIR /w"]).expect("valid");
        assert_eq!(
            (config.user.as_deref(), config.working_dir.as_deref()),
            (Some("a"), Some("/w"))
        );
    }

    #[test]
    fn rejects_bad_changes() {
        let invalid = [
            ("RUN echo hi", "run is not a valid change command"),
            ("FROM busybox", "from is not a valid change command"),
        ];
        for (line, message) in invalid {
            assert_eq!(apply(&[line]).expect_err(line).to_string(), message);
        }
        for line in [
            "CMD",
            "ENV",
            "ENV ONLYNAME",
            "ENV =x",
            "ENV A=1 B",
            "ENV A=\"unterminated",
            "EXPOSE http",
            "EXPOSE 70000",
            "EXPOSE 80/icmp",
            "EXPOSE 90-80",
            "VOLUME [\"\"]",
            "STOPSIGNAL 0",
            "STOPSIGNAL $%",
            "ONBUILD ONBUILD RUN x",
            "ONBUILD FROM x",
        ] {
            let err = apply(&[line]).expect_err(line);
            assert!(
                matches!(err, ImageError::MalformedChange { .. }),
                "{line}: {err}"
            );
        }
        assert!(matches!(
            apply(&["HEALTHCHECK NONE"]),
            Err(ImageError::UnsupportedChange { .. })
        ));
    }
}
