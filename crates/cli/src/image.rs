//! Image commands: images, rmi, tag, import, history, inspect, and berth's offline bootstrap.
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::format;
use crate::http::{Body, Client};
use crate::{CliError, CmdResult};

/// `images`.
#[derive(Debug, Args, Clone)]
pub struct ImagesArgs {
    /// Show all images.
    #[arg(short = 'a', long)]
    all: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Filter output based on conditions provided.
    #[arg(short = 'f', long)]
    filter: Vec<String>,
    /// Format output using a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Repository to list.
    repository: Option<String>,
}

/// `import`.
#[derive(Debug, Args, Clone)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image.
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Set platform.
    #[arg(long)]
    platform: Option<String>,
    /// A file, `-` for stdin, or a URL.
    source: String,
    /// REPOSITORY[:TAG].
    reference: Option<String>,
}

/// `commit`.
#[derive(Debug, Args, Clone)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short = 'a', long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Commit message.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Pause container during commit.
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pause: bool,
    /// The container.
    container: String,
    /// REPOSITORY[:TAG].
    reference: Option<String>,
}

/// `rmi`.
#[derive(Debug, Args, Clone)]
pub struct RmiArgs {
    /// Force removal of the image.
    #[arg(short = 'f', long)]
    force: bool,
    /// Do not delete untagged parents.
    #[arg(long = "no-prune")]
    no_prune: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

/// `history`.
#[derive(Debug, Args, Clone)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only show image IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Format output using a Go template.
    #[arg(long)]
    format: Option<String>,
    image: String,
}

/// Image commands at the top level.
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// List images.
    Images(ImagesArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag { source: String, target: String },
    /// Import the contents from a tarball to create a filesystem image.
    Import(ImportArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(crate::archive::SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(crate::archive::LoadArgs),
}

/// `berth image …`.
#[derive(Debug, Subcommand)]
pub enum ImageGroup {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Create a tag.
    Tag { source: String, target: String },
    /// Import a tarball.
    Import(ImportArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Display detailed information on one or more images.
    Inspect {
        /// Format output using a Go template.
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove unused images.
    Prune {
        /// Remove all unused images, not just dangling ones.
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values (e.g. "until=<timestamp>", "label=k=v").
        #[arg(long)]
        filter: Vec<String>,
    },
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(crate::archive::SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(crate::archive::LoadArgs),
    /// Build a base image offline: `busybox` from the host's static busybox.
    Bootstrap {
        /// What to build: `busybox`, `hello-world`, or `debian:<suite>` (debootstrap).
        name: String,
        /// The Debian mirror (default: the host's apt sources).
        #[arg(long)]
        mirror: Option<String>,
    },
}

/// Runs a top-level image command.
pub fn run(c: &Client, cmd: ImageCmd) -> CmdResult {
    match cmd {
        ImageCmd::Images(a) => images(c, a),
        ImageCmd::Rmi(a) => rmi(c, a),
        ImageCmd::Tag { source, target } => tag(c, &source, &target),
        ImageCmd::Import(a) => import(c, a),
        ImageCmd::History(a) => history(c, a),
        ImageCmd::Commit(a) => commit(c, a),
        ImageCmd::Save(a) => crate::archive::save(c, a),
        ImageCmd::Load(a) => crate::archive::load(c, a),
    }
}

/// Runs `berth image …`.
pub fn run_group(c: &Client, g: ImageGroup) -> CmdResult {
    match g {
        ImageGroup::Ls(a) => images(c, a),
        ImageGroup::Rm(a) => rmi(c, a),
        ImageGroup::Tag { source, target } => tag(c, &source, &target),
        ImageGroup::Import(a) => import(c, a),
        ImageGroup::History(a) => history(c, a),
        ImageGroup::Inspect { format, images } => {
            crate::inspect::inspect(c, crate::inspect::inspect_args(format, images, "image"))
        }
        ImageGroup::Prune { all, force, filter } => prune(c, all, force, filter),
        ImageGroup::Save(a) => crate::archive::save(c, a),
        ImageGroup::Load(a) => crate::archive::load(c, a),
        ImageGroup::Bootstrap { name, mirror } => bootstrap(c, &name, mirror),
    }
}

fn split_ref(r: &str) -> (String, String) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (r.to_string(), "latest".to_string()),
    }
}

/// `commit CONTAINER [REPOSITORY[:TAG]]`: prints the new image's id.
pub fn commit(c: &Client, a: CommitArgs) -> CmdResult {
    let mut q = vec![
        ("container", a.container.clone()),
        ("pause", a.pause.to_string()),
    ];
    if let Some(r) = &a.reference {
        let (repo, tag) = split_ref(r);
        q.push(("repo", repo));
        q.push(("tag", tag));
    }
    if let Some(m) = &a.message {
        q.push(("comment", m.clone()));
    }
    if let Some(author) = &a.author {
        q.push(("author", author.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    let v: Value = c.post::<()>("/commit", &q, None)?.json()?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

fn tag(c: &Client, source: &str, target: &str) -> CmdResult {
    let (repo, t) = split_ref(target);
    c.post_empty(
        &format!("/images/{source}/tag"),
        &[("repo", repo), ("tag", t)],
    )?;
    Ok(0)
}

fn images(c: &Client, a: ImagesArgs) -> CmdResult {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let mut q = vec![("all", if a.all { "1".to_string() } else { "0".into() })];
    if !filters.is_empty() {
        q.push(("filters", crate::filters::filters_json(&filters)?));
    }
    let list: Vec<Value> = c.get("/images/json", &q)?;
    let mut items = Vec::new();
    for i in &list {
        let id = i["Id"].as_str().unwrap_or("");
        let tags: Vec<String> = i["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        let tags = if tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            tags
        };
        let created = i["Created"].as_i64().unwrap_or(0);
        for t in tags {
            let (repo, tag) = t
                .rsplit_once(':')
                .map(|(r, t)| (r.to_string(), t.to_string()))
                .unwrap_or((t.clone(), "<none>".into()));
            items.push(json!({
                "ID": format::short_id(id, a.no_trunc),
                "Repository": repo,
                "Tag": tag,
                "Digest": i["RepoDigests"].as_array().and_then(|d| d.first()).and_then(|d| d.as_str()).and_then(|d| d.split_once('@')).map(|(_, d)| d.to_string()).unwrap_or_else(|| "<none>".into()),
                "CreatedSince": format::ago(created),
                "CreatedAt": chrono::DateTime::from_timestamp(created, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()).unwrap_or_default(),
                "Size": format::human_size(i["Size"].as_f64().unwrap_or(0.0)),
                "Containers": i["Containers"],
            }));
        }
    }
    if a.quiet {
        // One line per repository:tag row, as docker prints them (an image tagged twice
        // shows twice).
        for i in &items {
            println!("{}", i["ID"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    let fmt = format::parse_format(a.format.as_deref(), &|n| match n {
        "ID" => "IMAGE ID".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        other => other.to_uppercase(),
    })?;
    format::print_items(&fmt, &items, &|| {
        let mut head = vec!["REPOSITORY", "TAG"];
        if a.digests {
            head.push("DIGEST");
        }
        head.extend(["IMAGE ID", "CREATED", "SIZE"]);
        let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
        for i in &items {
            let mut keys = vec!["Repository", "Tag"];
            if a.digests {
                keys.push("Digest");
            }
            keys.extend(["ID", "CreatedSince", "Size"]);
            rows.push(
                keys.iter()
                    .map(|k| i[*k].as_str().unwrap_or("").to_string())
                    .collect(),
            );
        }
        rows
    })?;
    Ok(0)
}

fn rmi(c: &Client, a: RmiArgs) -> CmdResult {
    let mut code = 0;
    for img in &a.images {
        let q = vec![
            ("force", if a.force { "1".to_string() } else { "0".into() }),
            (
                "noprune",
                if a.no_prune {
                    "1".to_string()
                } else {
                    "0".into()
                },
            ),
        ];
        match c
            .delete(&format!("/images/{img}"), &q)
            .and_then(|r| r.json::<Vec<Value>>())
        {
            Ok(items) => {
                for i in items {
                    if let Some(u) = i["Untagged"].as_str() {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = i["Deleted"].as_str() {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// Reads a JSON-lines progress stream, printing status lines; returns the last message.
fn progress(mut resp: crate::http::Response, quiet: bool) -> Result<Value, CliError> {
    let mut last = Value::Null;
    let mut drew = false;
    while let Some(line) = resp.next_line().map_err(CliError::io)? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| CliError::msg(format!("bad progress message: {e}")))?;
        if let Some(e) = v["errorDetail"]["message"].as_str().or(v["error"].as_str()) {
            return Err(CliError::msg(e.to_string()));
        }
        if !quiet && let Some(s) = v["stream"].as_str() {
            eprint!("{s}");
        }
        if !quiet && v.get("progressDetail").is_some() {
            let current = v["progressDetail"]["current"].as_f64().unwrap_or(0.0);
            let total = v["progressDetail"]["total"].as_f64();
            let status = v["status"].as_str().unwrap_or_default();
            let amount = match total {
                Some(total) => format!(
                    "{}/{}",
                    format::human_size(current),
                    format::human_size(total)
                ),
                None => format::human_size(current),
            };
            print!("\r\x1b[2K{status} {amount}");
            let _ = std::io::Write::flush(&mut std::io::stdout());
            drew = true;
            continue;
        }
        last = v;
    }
    if drew {
        print!("\r\x1b[2K");
    }
    Ok(last)
}

fn import(c: &Client, a: ImportArgs) -> CmdResult {
    let mut q = vec![("fromSrc", "-".to_string())];
    if let Some(r) = &a.reference {
        let (repo, tag) = split_ref(r);
        q.push(("repo", repo));
        q.push(("tag", tag));
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    let resp = if a.source == "-" {
        let mut stdin = std::io::stdin().lock();
        c.send(
            "POST",
            "/images/create",
            &q,
            Body::Stream(&mut stdin, "application/x-tar"),
            false,
        )?
    } else if a.source.starts_with("http://") || a.source.starts_with("https://") {
        q[0] = ("fromSrc", a.source.clone());
        c.send("POST", "/images/create", &q, Body::Empty, false)?
    } else {
        let mut f = std::fs::File::open(&a.source)
            .map_err(|e| CliError::msg(format!("open {}: {e}", a.source)))?;
        c.send(
            "POST",
            "/images/create",
            &q,
            Body::Stream(&mut f, "application/x-tar"),
            false,
        )?
    };
    let last = progress(resp.check()?, !crate::tty::stdout_is_tty())?;
    if let Some(s) = last["status"].as_str() {
        println!("{s}");
    }
    Ok(0)
}

fn history(c: &Client, a: HistoryArgs) -> CmdResult {
    let list: Vec<Value> = c.get(&format!("/images/{}/history", a.image), &[])?;
    if a.quiet {
        for h in &list {
            println!(
                "{}",
                format::short_id(h["Id"].as_str().unwrap_or(""), a.no_trunc)
            );
        }
        return Ok(0);
    }
    let items: Vec<Value> = list
        .iter()
        .map(|h| {
            let mut by = h["CreatedBy"].as_str().unwrap_or("").to_string();
            if !a.no_trunc && by.chars().count() > 45 {
                by = by.chars().take(44).collect::<String>() + "…";
            }
            let id = h["Id"].as_str().unwrap_or("<missing>");
            json!({
                "ID": if id == "<missing>" { id.to_string() } else { format::short_id(id, a.no_trunc) },
                "CreatedSince": format::ago(h["Created"].as_i64().unwrap_or(0)),
                "CreatedBy": by,
                "Size": format::human_size(h["Size"].as_f64().unwrap_or(0.0)),
                "Comment": h["Comment"],
            })
        })
        .collect();
    let fmt = format::parse_format(a.format.as_deref(), &|n| match n {
        "ID" => "IMAGE".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedBy" => "CREATED BY".into(),
        other => other.to_uppercase(),
    })?;
    format::print_items(&fmt, &items, &|| {
        let mut rows = vec![
            ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ];
        for i in &items {
            rows.push(
                ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
                    .iter()
                    .map(|k| i[*k].as_str().unwrap_or("").to_string())
                    .collect(),
            );
        }
        rows
    })?;
    Ok(0)
}

fn prune(c: &Client, all: bool, force: bool, mut filters: Vec<String>) -> CmdResult {
    let warning = if all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !force && !crate::confirm::confirm(&format!("{warning}\nAre you sure you want to continue?"))
    {
        return Ok(0);
    }
    filters.push(format!("dangling={}", !all));
    let f = crate::filters::filters_json(&filters)?;
    let v: Value = c.post_empty("/images/prune", &[("filters", f)])?.json()?;
    let deleted = v["ImagesDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for d in deleted {
            if let Some(u) = d["Untagged"].as_str() {
                println!("untagged: {u}");
            }
            if let Some(x) = d["Deleted"].as_str() {
                println!("deleted: {x}");
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        format::human_size(v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
    Ok(0)
}

/// `run`/`create` of an image berth builds itself (`hello-world`) that is not there yet:
/// builds it (offline) and says so. `Ok(false)` for any other image.
pub(crate) fn bootstrap_builtin(c: &Client, reference: &str) -> Result<bool, CliError> {
    let name = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("library/"))
        .unwrap_or(reference);
    if name != "hello-world:latest" {
        return Ok(false);
    }
    eprintln!("Bootstrapping hello-world (built in, offline)");
    let q = [
        ("name", "hello-world".to_owned()),
        ("tag", "latest".to_owned()),
    ];
    let mut resp = c
        .send("POST", "/berth/images/bootstrap", &q, Body::Empty, false)?
        .check()?;
    while let Some(line) = resp.next_line().map_err(CliError::io)? {
        let v: Value = serde_json::from_str(line.trim()).unwrap_or_default();
        if let Some(e) = v["errorDetail"]["message"].as_str() {
            return Err(CliError::msg(e.to_string()).with_code(125));
        }
    }
    Ok(true)
}

fn bootstrap(c: &Client, name: &str, mirror: Option<String>) -> CmdResult {
    let (n, tag) = split_ref(name);
    let tty = crate::tty::stdout_is_tty();
    let mut q = vec![("name", n), ("tag", tag)];
    if let Some(mirror) = mirror {
        q.push(("mirror", mirror));
    }
    let mut resp = c
        .send("POST", "/berth/images/bootstrap", &q, Body::Empty, false)?
        .check()?;
    let mut id = String::new();
    while let Some(line) = resp.next_line().map_err(CliError::io)? {
        let v: Value = match serde_json::from_str(line.trim()) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if let Some(e) = v["errorDetail"]["message"].as_str().or(v["error"].as_str()) {
            return Err(CliError::msg(e.to_string()));
        }
        if let Some(s) = v["status"].as_str()
            && tty
        {
            eprintln!("{s}");
        }
        if let Some(i) = v["aux"]["ID"].as_str() {
            id = i.to_string();
        }
    }
    println!("{id}");
    Ok(0)
}
