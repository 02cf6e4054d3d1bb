//! Registry commands: `pull`, `push`, `login`, `logout`, `search`, and the pull `run` and
//! `create` make of a missing image. Credentials live in `~/.docker/config.json` (or
//! `$DOCKER_CONFIG/config.json`) as the docker CLI keeps them (`auths.<server>.auth`, base64 of
//! `user:password`), so either CLI uses the other's login.
use std::io::{BufRead, Write};
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::format;
use crate::http::{Body, Client};
use crate::progress::{Renderer, display};
use crate::{CliError, CmdResult};

/// Docker Hub's name in references, and its key in `config.json`.
const HUB: &str = "docker.io";
const HUB_KEY: &str = "https://index.docker.io/v1/";

/// `pull`.
#[derive(Debug, Args, Clone)]
pub struct PullArgs {
    /// Download all tagged images in the repository.
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    platform: Option<String>,
    /// Skip image verification (accepted, as docker's; nothing to skip).
    #[arg(long = "disable-content-trust", hide = true)]
    disable_content_trust: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

/// `push`.
#[derive(Debug, Args, Clone)]
pub struct PushArgs {
    /// Push all tags of an image to the repository.
    #[arg(short = 'a', long = "all-tags")]
    all_tags: bool,
    /// Suppress verbose output.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Skip image signing (accepted, as docker's).
    #[arg(long = "disable-content-trust", hide = true)]
    disable_content_trust: bool,
    /// NAME[:TAG]
    name: String,
}

/// `login`.
#[derive(Debug, Args, Clone)]
pub struct LoginArgs {
    /// Username.
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password.
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Take the password from stdin.
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    /// SERVER (Docker Hub when not given).
    server: Option<String>,
}

/// `search`.
#[derive(Debug, Args, Clone)]
pub struct SearchArgs {
    /// Filter output based on conditions provided.
    #[arg(short = 'f', long)]
    filter: Vec<String>,
    /// Pretty-print search using a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Max number of search results.
    #[arg(long)]
    limit: Option<i64>,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// TERM
    term: String,
}

/// The registry commands.
#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Authenticate to a registry.
    Login(LoginArgs),
    /// Log out from a registry.
    Logout {
        /// SERVER (Docker Hub when not given).
        server: Option<String>,
    },
    /// Search Docker Hub (or a registry, `HOST:PORT/TERM`) for images.
    Search(SearchArgs),
}

/// Runs a registry command.
pub fn run(c: &Client, cmd: RegistryCmd) -> CmdResult {
    match cmd {
        RegistryCmd::Pull(a) => pull(c, &a),
        RegistryCmd::Push(a) => push(c, &a),
        RegistryCmd::Login(a) => login(c, a),
        RegistryCmd::Logout { server } => logout(server.as_deref()),
        RegistryCmd::Search(a) => search(c, &a),
    }
}

/// The registry of a reference (docker's rule: a first component with `.` or `:`, or
/// `localhost`).
fn domain_of(name: &str) -> &str {
    match name.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            if first == "index.docker.io" {
                HUB
            } else {
                first
            }
        }
        _ => HUB,
    }
}

/// `(repository, tag or digest)` of a reference; `None` when it has neither.
fn split_reference(reference: &str) -> (String, Option<String>) {
    if let Some((name, digest)) = reference.split_once('@') {
        return (name.to_owned(), Some(digest.to_owned()));
    }
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (
            reference[..slash + i].to_owned(),
            Some(reference[slash + i + 1..].to_owned()),
        ),
        None => (reference.to_owned(), None),
    }
}

/// The fully qualified form docker prints (`docker.io/library/busybox:latest`).
fn qualified(repository: &str, tag: &str) -> String {
    let domain = domain_of(repository);
    let path = if domain == HUB {
        let path = repository
            .strip_prefix("docker.io/")
            .or_else(|| repository.strip_prefix("index.docker.io/"))
            .unwrap_or(repository);
        if path.contains('/') {
            format!("{HUB}/{path}")
        } else {
            format!("{HUB}/library/{path}")
        }
    } else {
        repository.to_owned()
    };
    let separator = if tag.contains(':') { '@' } else { ':' };
    format!("{path}{separator}{tag}")
}

/// Where the docker CLI keeps its configuration.
fn config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".docker")
        });
    dir.join("config.json")
}

fn read_config() -> Result<Map<String, Value>, CliError> {
    let path = config_path();
    match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| CliError::msg(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(CliError::msg(format!("{}: {e}", path.display()))),
    }
}

/// Writes the configuration atomically (a temporary file renamed over it), mode 0600 as the
/// docker CLI writes it.
fn write_config(config: &Map<String, Value>) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config_path();
    let fail = |e: std::io::Error| CliError::msg(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let temp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let mut bytes = serde_json::to_vec_pretty(config).map_err(|e| CliError::msg(e.to_string()))?;
    bytes.push(b'\n');
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(e));
    }
    Ok(())
}

/// The `config.json` key of a registry (Docker Hub's is its v1 index URL).
fn config_key(registry: &str) -> String {
    let registry = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2");
    if registry.is_empty() || registry == HUB || registry == "index.docker.io" {
        HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// The stored credentials of `registry`, as an auth config (`{}` when none).
fn stored_auth(registry: &str) -> Result<Value, CliError> {
    let config = read_config()?;
    let key = config_key(registry);
    let Some(auths) = config.get("auths").and_then(Value::as_object) else {
        return Ok(json!({}));
    };
    let entry = auths
        .iter()
        .find(|(k, _)| config_key(k) == key)
        .map(|(_, v)| v.clone());
    let Some(entry) = entry else {
        return Ok(json!({}));
    };
    let mut auth = json!({ "serveraddress": key });
    if let Some(encoded) = entry["auth"].as_str()
        && let Some((user, password)) = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
    {
        auth["username"] = json!(user);
        auth["password"] = json!(password);
    }
    if let Some(token) = entry["identitytoken"].as_str() {
        auth["identitytoken"] = json!(token);
    }
    Ok(auth)
}

/// `X-Registry-Auth` for `registry`'s stored credentials.
fn auth_header(registry: &str) -> Result<(&'static str, String), CliError> {
    let auth = stored_auth(registry)?;
    let bytes = serde_json::to_vec(&auth).map_err(|e| CliError::msg(e.to_string()))?;
    Ok(("X-Registry-Auth", URL_SAFE.encode(bytes)))
}

/// `X-Registry-Config` for `POST /build`: every stored credential, by registry (base64url JSON,
/// as the docker CLI sends it), so the builder can pull base images from registries that
/// want them.
pub(crate) fn registry_config_header() -> Result<(&'static str, String), CliError> {
    let config = read_config()?;
    let mut auths = Map::new();
    if let Some(stored) = config.get("auths").and_then(Value::as_object) {
        for key in stored.keys() {
            auths.insert(config_key(key), stored_auth(key)?);
        }
    }
    let bytes = serde_json::to_vec(&auths).map_err(|e| CliError::msg(e.to_string()))?;
    Ok(("X-Registry-Config", URL_SAFE.encode(bytes)))
}

/// Pulls `reference` through the daemon, drawing progress on stdout (or stderr, for `run`);
/// `quiet` draws nothing. Returns the fully qualified reference pulled.
pub(crate) fn pull_image(
    c: &Client,
    reference: &str,
    all_tags: bool,
    platform: Option<&str>,
    quiet: bool,
    to_stderr: bool,
) -> Result<String, CliError> {
    let (repository, tag) = split_reference(reference);
    if all_tags && tag.is_some() {
        return Err(CliError::msg("tag can't be used with --all-tags/-a"));
    }
    let tag = if all_tags {
        None
    } else {
        Some(tag.unwrap_or_else(|| "latest".to_owned()))
    };
    let mut query = vec![("fromImage", repository.clone())];
    if let Some(tag) = &tag {
        query.push(("tag", tag.clone()));
    }
    if let Some(platform) = platform {
        query.push(("platform", platform.to_owned()));
    }
    let header = auth_header(domain_of(&repository))?;
    let response = c
        .send_with_headers(
            "POST",
            "/images/create",
            &query,
            Body::Empty,
            false,
            &[header],
        )?
        .check()?;
    if quiet {
        let mut sink = Renderer::new(std::io::sink(), false, 0);
        display(response, &mut sink)?;
    } else if to_stderr {
        let tty = rustix::termios::isatty(std::io::stderr());
        let mut renderer = Renderer::new(std::io::stderr(), tty, 0);
        display(response, &mut renderer)?;
    } else {
        display(response, &mut Renderer::stdout())?;
    }
    Ok(match &tag {
        Some(tag) => qualified(&repository, tag),
        None => qualified(&repository, "").trim_end_matches(':').to_owned(),
    })
}

fn pull(c: &Client, a: &PullArgs) -> CmdResult {
    let _ = a.disable_content_trust;
    let pulled = pull_image(
        c,
        &a.name,
        a.all_tags,
        a.platform.as_deref(),
        a.quiet,
        false,
    )?;
    println!("{pulled}");
    Ok(0)
}

fn push(c: &Client, a: &PushArgs) -> CmdResult {
    let _ = a.disable_content_trust;
    let (repository, tag) = split_reference(&a.name);
    if a.name.contains('@') {
        return Err(CliError::msg(format!(
            "invalid reference format: {} (push takes NAME[:TAG])",
            a.name
        )));
    }
    if a.all_tags && tag.is_some() {
        return Err(CliError::msg("tag can't be used with --all-tags/-a"));
    }
    let mut query = Vec::new();
    if !a.all_tags {
        query.push(("tag", tag.clone().unwrap_or_else(|| "latest".to_owned())));
    }
    let header = auth_header(domain_of(&repository))?;
    let path = format!("/images/{repository}/push");
    let response = c
        .send_with_headers("POST", &path, &query, Body::Empty, false, &[header])?
        .check()?;
    if a.quiet {
        let mut sink = Renderer::new(std::io::sink(), false, 0);
        display(response, &mut sink)?;
        // As docker: the reference pushed, fully qualified.
        match (a.all_tags, &tag) {
            (true, _) => println!("{}", qualified(&repository, "").trim_end_matches(':')),
            (false, tag) => println!(
                "{}",
                qualified(&repository, tag.as_deref().unwrap_or("latest"))
            ),
        }
    } else {
        display(response, &mut Renderer::stdout())?;
    }
    Ok(0)
}

/// Reads one line of stdin (without its newline).
fn read_line(prompt: Option<&str>) -> Result<String, CliError> {
    if let Some(prompt) = prompt {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::msg(format!("reading stdin: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn login(c: &Client, a: LoginArgs) -> CmdResult {
    let server = a.server.clone().unwrap_or_else(|| HUB_KEY.to_owned());
    let key = config_key(&server);
    if a.password.is_some() && a.password_stdin {
        return Err(CliError::msg(
            "--password and --password-stdin are mutually exclusive",
        ));
    }
    if a.password_stdin && a.username.is_none() {
        return Err(CliError::msg(
            "Must provide --username with --password-stdin",
        ));
    }
    if a.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let stored = stored_auth(&key)?;
    let username = match a.username {
        Some(user) => user,
        None if a.password.is_none() && stored["username"].is_string() => {
            eprintln!("Authenticating with existing credentials...");
            stored["username"].as_str().unwrap_or_default().to_owned()
        }
        None => read_line(Some("Username: "))?,
    };
    let password = if let Some(password) = a.password {
        password
    } else if a.password_stdin {
        let mut all = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut all)
            .map_err(|e| CliError::msg(format!("reading stdin: {e}")))?;
        all.trim_end_matches(['\n', '\r']).to_owned()
    } else if stored["username"].as_str() == Some(username.as_str())
        && let Some(password) = stored["password"].as_str()
    {
        password.to_owned()
    } else {
        read_line(Some("Password: "))?
    };
    if username.is_empty() {
        return Err(CliError::msg("Error: Non-null Username Required"));
    }
    if password.is_empty() {
        return Err(CliError::msg("Error: Password Required"));
    }
    let body = json!({ "username": username, "password": password, "serveraddress": key });
    let answer: Value = c.post("/auth", &[], Some(&body))?.json()?;
    let mut config = read_config()?;
    let auths = config
        .entry("auths")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| CliError::msg("config.json: auths is not an object"))?;
    let token = answer["IdentityToken"].as_str().unwrap_or_default();
    let entry = if token.is_empty() {
        json!({ "auth": STANDARD.encode(format!("{username}:{password}")) })
    } else {
        json!({ "auth": STANDARD.encode(format!("{username}:")), "identitytoken": token })
    };
    auths.insert(key, entry);
    write_config(&config)?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        config_path().display()
    );
    println!("{}", answer["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(0)
}

fn logout(server: Option<&str>) -> CmdResult {
    let key = config_key(server.unwrap_or(HUB_KEY));
    let mut config = read_config()?;
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .map(|auths| {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| config_key(k) == key)
                .cloned()
                .collect();
            for k in &keys {
                auths.remove(k);
            }
            !keys.is_empty()
        })
        .unwrap_or(false);
    if !removed {
        println!("Not logged in to {key}");
        return Ok(0);
    }
    println!("Removing login credentials for {key}");
    write_config(&config)?;
    Ok(0)
}

/// `--filter` values as the API's `filters` JSON.
fn search_filters(flags: &[String]) -> Result<Option<String>, CliError> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut map = Map::new();
    for flag in flags {
        let (key, value) = flag.split_once('=').ok_or_else(|| {
            CliError::msg(format!(
                "bad format of filter (expected name=value): {flag}"
            ))
        })?;
        map.entry(key.trim().to_lowercase())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|values| values.insert(value.trim().to_owned(), json!(true)));
    }
    Ok(Some(Value::Object(map).to_string()))
}

/// Docker's description column: 45 characters, then `…`.
fn truncate_description(text: &str, no_trunc: bool) -> String {
    let text = text.replace('\n', " ");
    if no_trunc || text.chars().count() <= 45 {
        return text;
    }
    let mut short: String = text.chars().take(44).collect();
    short.push('…');
    short
}

fn search(c: &Client, a: &SearchArgs) -> CmdResult {
    let mut query = vec![("term", a.term.clone())];
    if let Some(limit) = a.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(filters) = search_filters(&a.filter)? {
        query.push(("filters", filters));
    }
    let header = auth_header(domain_of(&a.term))?;
    let results: Vec<Value> = c
        .send_with_headers(
            "GET",
            "/images/search",
            &query,
            Body::Empty,
            false,
            &[header],
        )?
        .check()?
        .json()?;
    let items: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "Name": r["name"],
                "Description": truncate_description(r["description"].as_str().unwrap_or_default(), a.no_trunc),
                "StarCount": r["star_count"].as_u64().unwrap_or(0),
                "IsOfficial": r["is_official"].as_bool().unwrap_or(false),
                "IsAutomated": r["is_automated"].as_bool().unwrap_or(false),
            })
        })
        .collect();
    let headers = |field: &str| match field {
        "Name" => "NAME".to_owned(),
        "Description" => "DESCRIPTION".to_owned(),
        "StarCount" => "STARS".to_owned(),
        "IsOfficial" => "OFFICIAL".to_owned(),
        "IsAutomated" => "AUTOMATED".to_owned(),
        other => other.to_uppercase(),
    };
    let fmt = format::parse_format(a.format.as_deref(), &headers)?;
    format::print_items(&fmt, &items, &|| {
        let mut rows = vec![vec![
            "NAME".to_owned(),
            "DESCRIPTION".to_owned(),
            "STARS".to_owned(),
            "OFFICIAL".to_owned(),
        ]];
        for item in &items {
            rows.push(vec![
                item["Name"].as_str().unwrap_or_default().to_owned(),
                item["Description"].as_str().unwrap_or_default().to_owned(),
                item["StarCount"].to_string(),
                if item["IsOfficial"].as_bool() == Some(true) {
                    "[OK]".to_owned()
                } else {
                    String::new()
                },
            ]);
        }
        rows
    })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(split_reference("busybox"), ("busybox".into(), None));
        assert_eq!(
            split_reference("127.0.0.1:5000/a/b:v1"),
            ("127.0.0.1:5000/a/b".into(), Some("v1".into()))
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/a"),
            ("127.0.0.1:5000/a".into(), None)
        );
        assert_eq!(
            split_reference("a@sha256:00"),
            ("a".into(), Some("sha256:00".into()))
        );
        assert_eq!(
            qualified("busybox", "latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(qualified("me/app", "v1"), "docker.io/me/app:v1");
        assert_eq!(
            qualified("127.0.0.1:5000/app", "sha256:00"),
            "127.0.0.1:5000/app@sha256:00"
        );
        assert_eq!(domain_of("localhost/app"), "localhost");
        assert_eq!(domain_of("me/app"), HUB);
        assert_eq!(config_key("docker.io"), HUB_KEY);
        assert_eq!(config_key("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
    }

    #[test]
    fn descriptions_and_filters() {
        assert_eq!(truncate_description("short", false), "short");
        let long = "x".repeat(60);
        assert_eq!(truncate_description(&long, false).chars().count(), 45);
        assert_eq!(truncate_description(&long, true), long);
        assert_eq!(
            search_filters(&["stars=3".into(), "is-official=true".into()]).expect("ok"),
            Some(r#"{"is-official":{"true":true},"stars":{"3":true}}"#.to_owned())
        );
        assert!(search_filters(&["nope".into()]).is_err());
    }
}
