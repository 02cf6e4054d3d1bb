//! `berth build` and `berth builder prune`.
//!
//! The context directory is sent as a tar, streamed while it is walked (never held in
//! memory), without what `.dockerignore` (or `<Dockerfile>.dockerignore`) excludes; owners are
//! zeroed as docker's CLI does. A Dockerfile outside the context (or from stdin) travels in
//! the tar under a random name. The daemon's answer is the legacy builder's stream: on a
//! terminal each step is shown with its time (and cached steps marked), piped it is printed
//! as it comes.
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use berth_api::progress::JsonMessage;
use berth_build::PatternMatcher;
use berth_build::dockerignore::{self, MatchInfo};
use clap::{Args, Subcommand};

use crate::http::{Body, Client};
use crate::{CliError, CmdResult};

/// `berth build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: `PATH/Dockerfile`; `-` reads it from stdin).
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Do not use the cache.
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image.
    #[arg(long)]
    pull: bool,
    /// Set metadata for the image (`KEY=VALUE`); repeatable.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// The network of RUN steps (`default`, `none`, `host`, …).
    #[arg(long, default_value = "default")]
    network: String,
    /// Add a custom host-to-IP mapping (`host:ip`).
    #[arg(long = "add-host")]
    add_hosts: Vec<String>,
    /// Size of /dev/shm of RUN steps (bytes, or with a unit: `64m`).
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Images to take the cache from.
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// Set the platform (only the host's).
    #[arg(long)]
    platform: Option<String>,
    /// Remove intermediate containers after a successful build.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    rm: bool,
    /// Always remove intermediate containers.
    #[arg(long = "force-rm")]
    force_rm: bool,
    /// Write the image ID to the file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Suppress the build output and print the image ID on success.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// The context: a directory, `-` (a tar or a Dockerfile on stdin) or an http(s) URL.
    context: String,
}

/// `berth builder …`.
#[derive(Debug, Subcommand)]
pub enum BuilderGroup {
    /// Remove build cache.
    Prune(PruneArgs),
    /// Build an image from a Dockerfile.
    Build(Box<BuildArgs>),
}

/// `berth builder prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones.
    #[arg(short = 'a', long)]
    all: bool,
    /// Provide filter values (e.g. `until=24h`).
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Amount of disk space to keep for cache.
    #[arg(long = "keep-storage")]
    keep_storage: Option<String>,
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
}

/// Runs `berth builder …`.
pub fn run_group(c: &Client, cmd: BuilderGroup) -> CmdResult {
    match cmd {
        BuilderGroup::Prune(a) => prune(c, a),
        BuilderGroup::Build(a) => build(c, *a),
    }
}

fn prune(c: &Client, a: PruneArgs) -> CmdResult {
    if !a.force
        && !crate::confirm::confirm(
            "WARNING! This will remove all dangling build cache.\nAre you sure you want to continue?",
        )
    {
        return Ok(0);
    }
    let filters = berth_api::filters::Filters::from_flags(&a.filters)
        .map_err(|e| CliError::msg(e.to_string()))?;
    let mut query = vec![("filters", filters.to_json())];
    if a.all {
        query.push(("all", "1".into()));
    }
    if let Some(k) = &a.keep_storage {
        let bytes = crate::opts::parse_bytes(k).map_err(CliError::msg)?;
        query.push(("keep-storage", bytes.to_string()));
    }
    let report: serde_json::Value = c.post::<()>("/build/prune", &query, None)?.json()?;
    let deleted = report["CachesDeleted"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted build cache objects:");
        for d in deleted {
            println!("{}", d.as_str().unwrap_or_default());
        }
        println!();
    }
    let reclaimed = report["SpaceReclaimed"].as_u64().unwrap_or(0);
    println!(
        "Total reclaimed space: {}",
        berth_api::convention::human_size(reclaimed as f64, 4)
    );
    Ok(0)
}

/// What the context tar is made of.
struct ContextSpec {
    dir: Option<PathBuf>,
    /// A Dockerfile travelling in the tar under `name` (from stdin or outside the context).
    extra_dockerfile: Option<(String, Vec<u8>)>,
}

fn random_name() -> String {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the context tar into `out`: the directory walked in name order, `.dockerignore`
/// applied, owners zeroed. Returns nothing; the byte count is the reader's.
fn write_context(
    spec: &ContextSpec,
    matcher: Option<&PatternMatcher>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    if let Some(dir) = &spec.dir {
        // Iterative walk: (relative path, what its parent matched).
        let mut stack: Vec<(PathBuf, MatchInfo)> = vec![(PathBuf::new(), MatchInfo::default())];
        while let Some((rel, parent_info)) = stack.pop() {
            let mut names: Vec<_> = std::fs::read_dir(dir.join(&rel))?
                .flatten()
                .map(|e| e.file_name())
                .collect();
            names.sort();
            let mut subdirs = Vec::new();
            for name in names {
                let child = rel.join(&name);
                let host = dir.join(&child);
                let meta = std::fs::symlink_metadata(&host)?;
                let (excluded, info) = match matcher {
                    Some(m) => m
                        .matches_with_parent(&child.to_string_lossy(), &parent_info)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
                    None => (false, MatchInfo::default()),
                };
                if meta.is_dir() {
                    let walk_in = !excluded
                        || matcher
                            .is_some_and(|m| m.may_have_exceptions_below(&child.to_string_lossy()));
                    if !excluded {
                        append(&mut b, &child, &host, &meta)?;
                    }
                    if walk_in {
                        subdirs.push((child, info));
                    }
                    continue;
                }
                if !excluded {
                    append(&mut b, &child, &host, &meta)?;
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
    }
    if let Some((name, data)) = &spec.extra_dockerfile {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(chrono::Utc::now().timestamp().max(0).unsigned_abs());
        b.append_data(&mut h, name, &data[..])?;
    }
    b.finish()
}

fn append(
    b: &mut tar::Builder<&mut dyn Write>,
    rel: &Path,
    host: &Path,
    meta: &std::fs::Metadata,
) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(meta.mtime().max(0).unsigned_abs());
    let ft = meta.file_type();
    if ft.is_dir() {
        h.set_size(0);
        b.append_data(&mut h, rel, io::empty())
    } else if ft.is_symlink() {
        let target = std::fs::read_link(host)?;
        h.set_size(0);
        b.append_link(&mut h, rel, target)
    } else if ft.is_file() {
        let f = File::open(host)?;
        b.append_data(&mut h, rel, f.take(meta.len()))
    } else {
        // Sockets, FIFOs and devices are not sent (docker skips them too).
        Ok(())
    }
}

/// Counts what passes through.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn build_query(
    a: &BuildArgs,
    dockerfile: &str,
    remote: Option<&str>,
) -> Result<Vec<(&'static str, String)>, CliError> {
    let mut q: Vec<(&str, String)> = Vec::new();
    for t in &a.tags {
        q.push(("t", t.clone()));
    }
    q.push(("dockerfile", dockerfile.to_owned()));
    let mut args = serde_json::Map::new();
    for kv in &a.build_args {
        match kv.split_once('=') {
            Some((k, v)) => {
                args.insert(k.to_owned(), v.into());
            }
            None => {
                args.insert(
                    kv.clone(),
                    std::env::var(kv).map_or(serde_json::Value::Null, Into::into),
                );
            }
        }
    }
    q.push(("buildargs", serde_json::Value::Object(args).to_string()));
    let mut labels = serde_json::Map::new();
    for kv in &a.labels {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        labels.insert(k.to_owned(), v.into());
    }
    q.push(("labels", serde_json::Value::Object(labels).to_string()));
    if let Some(t) = &a.target {
        q.push(("target", t.clone()));
    }
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    q.push(("nocache", flag(a.no_cache)));
    q.push(("pull", flag(a.pull)));
    q.push(("rm", flag(a.rm)));
    q.push(("forcerm", flag(a.force_rm)));
    q.push(("q", flag(a.quiet)));
    q.push(("networkmode", a.network.clone()));
    if !a.add_hosts.is_empty() {
        q.push(("extrahosts", a.add_hosts.join(",")));
    }
    if let Some(s) = &a.shm_size {
        let bytes = crate::opts::parse_bytes(s).map_err(CliError::msg)?;
        q.push(("shmsize", bytes.to_string()));
    }
    if !a.cache_from.is_empty() {
        q.push((
            "cachefrom",
            serde_json::to_string(&a.cache_from).unwrap_or_default(),
        ));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    if let Some(r) = remote {
        q.push(("remote", r.to_owned()));
    }
    q.push(("version", "1".into()));
    Ok(q)
}

fn is_tar(head: &[u8]) -> bool {
    let compressed = head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z'])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    compressed || (head.len() >= 262 && &head[257..262] == b"ustar")
}

/// Runs `berth build`.
#[allow(clippy::too_many_lines)] // The three kinds of context, then the stream.
pub fn build(c: &Client, a: BuildArgs) -> CmdResult {
    let remote = a.context.starts_with("http://") || a.context.starts_with("https://");
    let tty = crate::tty::stdout_is_tty();
    let sent = Arc::new(AtomicU64::new(0));
    let (mut body, dockerfile_name, writer): (
        Box<dyn Read + Send>,
        String,
        Option<std::thread::JoinHandle<io::Result<()>>>,
    ) = if remote {
        (
            Box::new(io::empty()),
            a.file.clone().unwrap_or_else(|| "Dockerfile".into()),
            None,
        )
    } else if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            return Err(CliError::msg(
                "invalid argument: can't use stdin for both build context and dockerfile",
            ));
        }
        let mut stdin = io::stdin().lock();
        let head = stdin.fill_buf().map_err(CliError::io)?.to_vec();
        let mut all = Vec::new();
        if is_tar(&head) {
            stdin.read_to_end(&mut all).map_err(CliError::io)?;
            (
                Box::new(io::Cursor::new(all)),
                a.file.clone().unwrap_or_else(|| "Dockerfile".into()),
                None,
            )
        } else {
            // A Dockerfile alone: the context is that file.
            stdin.read_to_end(&mut all).map_err(CliError::io)?;
            let spec = ContextSpec {
                dir: None,
                extra_dockerfile: Some(("Dockerfile".into(), all)),
            };
            let mut tar = Vec::new();
            write_context(&spec, None, &mut tar).map_err(CliError::io)?;
            (Box::new(io::Cursor::new(tar)), "Dockerfile".into(), None)
        }
    } else {
        let dir = PathBuf::from(&a.context);
        let meta = std::fs::metadata(&dir).map_err(|e| {
            CliError::msg(format!(
                "unable to prepare context: path {:?} not found: {e}",
                a.context
            ))
        })?;
        if !meta.is_dir() {
            return Err(CliError::msg(format!(
                "unable to prepare context: context must be a directory: {}",
                a.context
            )));
        }
        // Where the Dockerfile is: in the context (sent as it is), or outside/stdin (added).
        let (dockerfile_rel, extra) = match a.file.as_deref() {
            Some("-") => {
                let mut text = Vec::new();
                io::stdin().read_to_end(&mut text).map_err(CliError::io)?;
                (None, Some((format!(".dockerfile.{}", random_name()), text)))
            }
            Some(f) => {
                let path = Path::new(f);
                let abs = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    std::env::current_dir().map_err(CliError::io)?.join(path)
                };
                let ctx_abs = std::fs::canonicalize(&dir).map_err(CliError::io)?;
                let df_abs = std::fs::canonicalize(&abs).map_err(|e| CliError::msg(format!("unable to prepare context: unable to evaluate symlinks in Dockerfile path: {e}")))?;
                match df_abs.strip_prefix(&ctx_abs) {
                    Ok(rel) => (Some(rel.to_string_lossy().into_owned()), None),
                    Err(_) => {
                        let text = std::fs::read(&df_abs).map_err(CliError::io)?;
                        (None, Some((format!(".dockerfile.{}", random_name()), text)))
                    }
                }
            }
            None => {
                if !dir.join("Dockerfile").exists() && !dir.join("dockerfile").exists() {
                    return Err(CliError::msg(format!(
                        "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                        dir.join("Dockerfile").display()
                    )));
                }
                (Some("Dockerfile".to_owned()), None)
            }
        };
        let ignore_base = dockerfile_rel.as_deref().map(Path::new);
        let mut patterns = Vec::new();
        for candidate in dockerignore::ignore_file_candidates(&dir, ignore_base) {
            if let Ok(text) = std::fs::read_to_string(&candidate) {
                patterns = dockerignore::parse_ignore_file(&text);
                break;
            }
        }
        let patterns = dockerignore::keep_build_files(patterns, dockerfile_rel.as_deref());
        let matcher = if patterns.is_empty() {
            None
        } else {
            Some(
                PatternMatcher::new(&patterns)
                    .map_err(|e| CliError::msg(format!("error checking context: {e}")))?,
            )
        };
        let name = extra
            .as_ref()
            .map(|(n, _)| n.clone())
            .or(dockerfile_rel.clone())
            .unwrap_or_default();
        let spec = ContextSpec {
            dir: Some(dir),
            extra_dockerfile: extra,
        };
        let (reader, mut pipe) = io::pipe().map_err(CliError::io)?;
        let handle = std::thread::spawn(move || {
            let r = write_context(&spec, matcher.as_ref(), &mut pipe);
            drop(pipe);
            r
        });
        (Box::new(reader), name, Some(handle))
    };
    let query = build_query(&a, &dockerfile_name, remote.then_some(a.context.as_str()))?;
    let mut counted = Counting {
        inner: &mut body,
        count: Arc::clone(&sent),
    };
    let started = Instant::now();
    let (name, value) = crate::registry::registry_config_header()?;
    let resp = c.send_with_headers(
        "POST",
        "/build",
        &query,
        Body::Stream(&mut counted, "application/x-tar"),
        false,
        &[(name, value)],
    );
    drop(counted);
    if let Some(handle) = writer {
        match handle.join() {
            Ok(Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => {
                return Err(CliError::msg(format!("error checking context: {e}")));
            }
            _ => {}
        }
    }
    let resp = resp?.check()?;
    if !a.quiet && !remote {
        println!(
            "Sending build context to berth daemon  {}",
            berth_api::convention::human_size(sent.load(Ordering::Relaxed) as f64, 4)
        );
    }
    let mut shown = Shown::new(tty && !a.quiet);
    let mut reader = BufReader::new(resp);
    let mut line = String::new();
    let mut image: Option<String> = None;
    let mut quiet_id: Option<String> = None;
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(CliError::io)? == 0 {
            break;
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let m: JsonMessage = serde_json::from_str(text)
            .map_err(|e| CliError::msg(format!("bad progress message from daemon: {e}")))?;
        if let Some(message) = m.error_message() {
            shown.finish();
            let code = m
                .error_detail
                .as_ref()
                .and_then(|d| d.code)
                .filter(|c| *c != 0)
                .unwrap_or(1);
            return Err(
                CliError::msg(message.to_owned()).with_code(i32::try_from(code).unwrap_or(1))
            );
        }
        if let Some(aux) = &m.aux
            && let Some(id) = aux.get("ID").and_then(|v| v.as_str())
        {
            image = Some(id.to_owned());
        }
        // A base image's pull, as the docker CLI shows it when piped: each status line, without
        // the byte counts of the bars.
        if let Some(status) = &m.status
            && !a.quiet
            && m.progress.is_none()
        {
            match &m.id {
                Some(id) => shown.stream(&format!("{id}: {status}\n")),
                None => shown.stream(&format!("{status}\n")),
            }
        }
        if let Some(s) = &m.stream {
            if a.quiet {
                quiet_id = Some(s.trim().to_owned());
            } else {
                shown.stream(s);
            }
        }
    }
    shown.finish();
    let image = image
        .or(quiet_id)
        .ok_or_else(|| CliError::msg("the build ended without an image"))?;
    if a.quiet {
        println!("{image}");
    }
    if let Some(path) = &a.iidfile {
        std::fs::write(path, &image)
            .map_err(|e| CliError::msg(format!("write image ID to {}: {e}", path.display())))?;
    }
    if tty && !a.quiet {
        println!("Built in {:.2}s", started.elapsed().as_secs_f64());
    }
    Ok(0)
}

/// The stream as the user sees it: as it comes, or on a terminal with each step's time.
struct Shown {
    tty: bool,
    step: Option<(String, Instant, bool)>,
    out: io::Stdout,
}

impl Shown {
    fn new(tty: bool) -> Self {
        Shown {
            tty,
            step: None,
            out: io::stdout(),
        }
    }

    fn stream(&mut self, s: &str) {
        let mut out = self.out.lock();
        if !self.tty {
            let _ = out.write_all(s.as_bytes());
            let _ = out.flush();
            return;
        }
        for piece in s.split_inclusive('\n') {
            if let Some(rest) = piece.strip_prefix("Step ") {
                drop(out);
                self.finish();
                out = self.out.lock();
                let _ = write!(out, "\x1b[1mStep {}\x1b[0m", rest);
                self.step = Some((rest.trim_end().to_owned(), Instant::now(), false));
            } else if piece.trim() == "---> Using cache" {
                if let Some(step) = &mut self.step {
                    step.2 = true;
                }
                let _ = out.write_all(piece.as_bytes());
            } else {
                let _ = out.write_all(piece.as_bytes());
            }
        }
        let _ = out.flush();
    }

    /// Closes the current step with its time.
    fn finish(&mut self) {
        if let Some((_, started, cached)) = self.step.take() {
            let mut out = self.out.lock();
            let what = if cached {
                "CACHED".to_owned()
            } else {
                format!("{:.2}s", started.elapsed().as_secs_f64())
            };
            let _ = writeln!(out, "\x1b[2m     [{what}]\x1b[0m");
            let _ = out.flush();
        }
    }
}
