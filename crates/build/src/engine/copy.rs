//! `COPY` and `ADD`: the files a step reads, with Docker's rules, written straight into a
//! layer tar (no container).
//!
//! - A source is a path in the context (or in a stage's or image's tree for `--from`), or a
//!   `filepath.Match` pattern; a pattern that matches nothing, a missing path or a path that
//!   climbs out of the context is an error. Symlinks in the middle of a source are resolved
//!   inside the tree; a source that is itself a symlink is followed when its target is in the
//!   tree, else copied as the link (never followed out).
//! - A directory source copies its contents; several sources (or a pattern matching several)
//!   need a destination that ends with `/`; a destination ending with `/` (or naming a
//!   directory of the image) receives the sources by name, else a single file is written at it.
//! - Files and the directories they bring are owned by `0:0` or `--chown` (names resolved with
//!   the image's `/etc/passwd` and `/etc/group`), with their own modes or `--chmod`; missing
//!   parent directories are made `0755`; existing ones keep their metadata (the layer carries
//!   them unchanged, so the overlay does not reset them).
//! - `ADD` unpacks a local tar (plain, gzip, bzip2, xz, zstd) into the destination and
//!   fetches URLs (`--checksum` checked) into a file of mode 0600.
//!
//! The digest of what is read (names, types, modes, link targets, bytes; not mtimes) keys the
//! cache; the tar is written only when the cache has no image for it.
use std::collections::{BTreeMap, BTreeSet};
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::context::{Compression, detect, entry_path};
use super::error::BuildError;
use super::layered::{Layers, lookup_id};
use crate::PatternMatcher;

/// A tree files are copied from: the context or an exported stage/image.
#[derive(Debug)]
pub(crate) struct Tree<'a> {
    /// Its directory on the host.
    pub dir: &'a Path,
    /// Its root for in-root resolution.
    pub root: &'a berth_fs::Root,
    /// Known file digests by relative path (the context's, computed while unpacking).
    pub digests: Option<&'a std::collections::HashMap<PathBuf, String>>,
    /// Whether it is the build context (for the wording of errors).
    pub is_context: bool,
}

/// What is written: one entry of the new layer.
#[derive(Debug, Clone)]
enum Body {
    Dir,
    File { host: PathBuf, size: u64 },
    Inline(Vec<u8>),
    Symlink(PathBuf),
}

#[derive(Debug, Clone)]
struct Entry {
    /// Path in the image, relative (`app/x`).
    path: String,
    body: Body,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

/// A source as found: its host path (or inline bytes) and what it is.
#[derive(Debug)]
enum Found {
    Path {
        host: PathBuf,
        rel: PathBuf,
        meta: Metadata,
    },
    Inline {
        name: String,
        data: Vec<u8>,
    },
    /// A local archive `ADD` unpacks.
    Archive {
        host: PathBuf,
        rel: PathBuf,
    },
}

/// A local archive to unpack: its host path, the destination (relative) and the owner
/// `--chown` forces on its entries.
type Archive = (PathBuf, String, Option<(u64, u64)>);

/// The whole step, ready to hash and write.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    entries: Vec<Entry>,
    /// Archives to unpack at `dest` (path in the image, relative), with the owner override.
    archives: Vec<Archive>,
    /// `file:`, `dir:` or `multi:` and the digest: what the history line names.
    pub(crate) source_digest: String,
}

/// A `COPY`/`ADD` as the engine asks for it.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub instruction: &'static str,
    pub sources: &'a [String],
    pub inline: Vec<(String, Vec<u8>)>,
    pub dest: &'a str,
    pub workdir: &'a str,
    pub chown: Option<&'a str>,
    pub chmod: Option<&'a str>,
    pub exclude: &'a [String],
    /// `ADD`: unpack local archives.
    pub unpack: bool,
    /// Files fetched for `ADD <url>`: (file name, host path), read as they are.
    pub fetched: Vec<(String, PathBuf)>,
}

fn step_err(instruction: &'static str, message: impl Into<String>) -> BuildError {
    BuildError::copy(instruction, message)
}

fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The source as a path relative to the tree, or `None` if it climbs out.
fn source_rel(source: &str) -> Option<PathBuf> {
    let mut parts: Vec<&str> = Vec::new();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.iter().collect())
}

impl Tree<'_> {
    /// The host path of `rel` with symlinks in its parents resolved inside the tree (the
    /// final component not followed).
    fn host(&self, rel: &Path) -> io::Result<(PathBuf, PathBuf)> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let canonical = self.root.canonical(parent)?;
        let mut inside: PathBuf = canonical
            .strip_prefix("/")
            .unwrap_or(&canonical)
            .to_path_buf();
        if let Some(name) = rel.file_name() {
            inside.push(name);
        }
        Ok((self.dir.join(&inside), inside))
    }

    /// Follows a source that is a symlink, when its target is inside the tree.
    fn follow(&self, host: PathBuf, rel: PathBuf, meta: Metadata) -> (PathBuf, PathBuf, Metadata) {
        if !meta.file_type().is_symlink() {
            return (host, rel, meta);
        }
        match self.root.canonical(&rel) {
            Ok(target) => {
                let inside = target.strip_prefix("/").unwrap_or(&target).to_path_buf();
                let target_host = self.dir.join(&inside);
                match std::fs::symlink_metadata(&target_host) {
                    Ok(m) if !m.file_type().is_symlink() => (target_host, inside, m),
                    _ => (host, rel, meta),
                }
            }
            Err(_) => (host, rel, meta),
        }
    }

    fn digest_of(&self, rel: &Path, host: &Path) -> io::Result<String> {
        if let Some(d) = self.digests.and_then(|d| d.get(rel)) {
            return Ok(d.clone());
        }
        hash_file(host)
    }
}

/// The sha256 (hex) of a file's bytes.
fn hash_file(host: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(host)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Sources matching a pattern, component by component (a matched directory is copied whole).
fn glob(tree: &Tree<'_>, pattern: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    let comps: Vec<String> = pattern
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let mut next = Vec::new();
        for base in &current {
            if !has_wildcards(comp) {
                let p = base.join(comp);
                if std::fs::symlink_metadata(tree.dir.join(&p)).is_ok() {
                    next.push(p);
                }
                continue;
            }
            let matcher = PatternMatcher::new(&[comp.as_str()])
                .map_err(|e| BuildError::invalid(format!("{e}: {}", pattern.display())))?;
            let Ok(list) = std::fs::read_dir(tree.dir.join(base)) else {
                continue;
            };
            let mut names: Vec<String> = list
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                if matcher.matches_exact(&name).unwrap_or(false) {
                    let p = base.join(&name);
                    let is_dir = std::fs::metadata(tree.dir.join(&p)).is_ok_and(|m| m.is_dir());
                    if last || is_dir {
                        next.push(p);
                    }
                }
            }
        }
        current = next;
    }
    Ok(current)
}

fn is_archive(host: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(host) else {
        return false;
    };
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    head.truncate(n);
    match detect(&head) {
        Compression::None => head.len() >= 262 && &head[257..262] == b"ustar",
        _ => true,
    }
}

/// Finds every source of the step.
fn find(tree: Option<&Tree<'_>>, req: &Request<'_>) -> Result<Vec<Found>, BuildError> {
    let inst = req.instruction;
    let mut found = Vec::new();
    for source in req.sources {
        let tree = tree.ok_or_else(|| step_err(inst, "no build context"))?;
        let Some(rel) = source_rel(source.trim_start_matches('/')) else {
            return Err(step_err(
                inst,
                format!("forbidden path outside the build context: {source} ()"),
            ));
        };
        let paths = if has_wildcards(source) {
            let matched = glob(tree, &rel)?;
            if matched.is_empty() {
                return Err(step_err(inst, "no source files were specified"));
            }
            matched
        } else {
            vec![rel]
        };
        for rel in paths {
            let not_found = || {
                let what = if tree.is_context {
                    "file not found in build context or excluded by .dockerignore"
                } else {
                    "file not found in the stage or image"
                };
                step_err(inst, format!("{what}: stat {source}: file does not exist"))
            };
            let (host, inside) = tree.host(&rel).map_err(|_| not_found())?;
            let meta = std::fs::symlink_metadata(&host).map_err(|_| not_found())?;
            let (host, inside, meta) = tree.follow(host, inside, meta);
            if req.unpack && meta.is_file() && is_archive(&host) {
                found.push(Found::Archive { host, rel: inside });
            } else {
                found.push(Found::Path {
                    host,
                    rel: inside,
                    meta,
                });
            }
        }
    }
    for (name, data) in &req.inline {
        found.push(Found::Inline {
            name: name.clone(),
            data: data.clone(),
        });
    }
    for (name, host) in &req.fetched {
        let meta = std::fs::metadata(host).map_err(BuildError::io("stat", host))?;
        found.push(Found::Path {
            host: host.clone(),
            rel: PathBuf::from(name),
            meta,
        });
    }
    Ok(found)
}

fn parse_chmod(inst: &'static str, chmod: &str) -> Result<u32, BuildError> {
    u32::from_str_radix(chmod, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| step_err(inst, format!("invalid chmod parameter: {chmod}")))
}

/// `--chown=user[:group]`: numbers, or names looked up in the image.
pub(crate) fn parse_chown(
    inst: &'static str,
    chown: &str,
    layers: &Layers,
) -> Result<(u64, u64), BuildError> {
    let (user, group) = match chown.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (chown, None),
    };
    let passwd = layers.read("/etc/passwd");
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => lookup_id(passwd.as_deref(), user).ok_or_else(|| {
            step_err(
                inst,
                format!(
                    "unable to convert uid/gid chown string to host mapping: can't find uid for user {user}: no such user: {user}"
                ),
            )
        })?,
    };
    let gid = match group {
        None => primary.unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = layers.read("/etc/group");
                lookup_id(groups.as_deref(), g)
                    .ok_or_else(|| {
                        step_err(
                            inst,
                            format!(
                                "unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}"
                            ),
                        )
                    })?
                    .0
            }
        },
    };
    Ok((u64::from(uid), u64::from(gid)))
}

fn mtime_of(meta: &Metadata) -> u64 {
    u64::try_from(meta.mtime()).unwrap_or(0)
}

/// Walks a directory source iteratively: its entries, relative to it, in name order.
fn walk(
    host: &Path,
    exclude: Option<&PatternMatcher>,
) -> Result<Vec<(PathBuf, PathBuf, Metadata)>, BuildError> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = host.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(BuildError::io("read directory", &dir))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let child = rel.join(&name);
            if let Some(m) = exclude
                && m.matches(&child.to_string_lossy()).unwrap_or(false)
            {
                continue;
            }
            let path = host.join(&child);
            let meta = std::fs::symlink_metadata(&path).map_err(BuildError::io("stat", &path))?;
            if meta.is_dir() {
                subdirs.push(child.clone());
            }
            out.push((child, path, meta));
        }
        for d in subdirs.into_iter().rev() {
            stack.push(d);
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else if name.is_empty() {
        base.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

/// Plans the step: where each source goes, as what, and the digest of it all.
#[allow(clippy::too_many_lines)] // One pass over Docker's rules, in the order the docs give them.
pub(crate) fn plan(
    tree: Option<&Tree<'_>>,
    req: &Request<'_>,
    layers: &Layers,
) -> Result<Plan, BuildError> {
    let inst = req.instruction;
    let found = find(tree, req)?;
    let owner = match req.chown {
        Some(c) if !c.is_empty() => Some(parse_chown(inst, c, layers)?),
        _ => None,
    };
    let (uid, gid) = owner.unwrap_or((0, 0));
    let chmod = match req.chmod {
        Some(c) if !c.is_empty() => Some(parse_chmod(inst, c)?),
        _ => None,
    };
    let exclude = if req.exclude.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(req.exclude).map_err(|e| BuildError::invalid(e.to_string()))?)
    };
    // The destination, absolute, with symlinks of the image resolved.
    let raw_dest = if req.dest.starts_with('/') {
        req.dest.to_owned()
    } else {
        format!("{}/{}", req.workdir.trim_end_matches('/'), req.dest)
    };
    let ends_with_slash = req.dest.ends_with('/') || req.dest.ends_with("/.") || req.dest == ".";
    let dest_resolved = layers.resolve(&raw_dest, true);
    let dest_is_image_dir = layers
        .lstat(&dest_resolved)
        .is_some_and(|(_, m)| m.is_dir());
    let dest_is_dir = ends_with_slash || dest_is_image_dir;
    let many = found.len() > 1 || req.sources.iter().any(|s| has_wildcards(s)) && found.len() > 1;
    if many && !dest_is_dir {
        return Err(step_err(
            inst,
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ));
    }
    let single_dir =
        found.len() == 1 && matches!(&found[0], Found::Path { meta, .. } if meta.is_dir());
    let dir_target =
        dest_is_dir || single_dir || found.iter().any(|f| matches!(f, Found::Archive { .. }));
    let dest_rel = |path: &str| {
        berth_fs::root::clean(path)
            .trim_start_matches('/')
            .to_owned()
    };
    let dest_dir = if dir_target {
        dest_rel(&dest_resolved)
    } else {
        let parent = Path::new(&raw_dest)
            .parent()
            .map_or("/".into(), |p| p.to_string_lossy().into_owned());
        let name = Path::new(&raw_dest)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = layers.resolve(&parent, true);
        dest_rel(&join(&parent, &name))
    };

    let mut plan = Plan::default();
    let mut hasher = Sha256::new();
    let mut kinds = BTreeSet::new();
    let add = |plan: &mut Plan, hasher: &mut Sha256, e: Entry, src_rel: &str, digest: &str| {
        let kind = match &e.body {
            Body::Dir => "d".to_owned(),
            Body::File { .. } | Body::Inline(_) => format!("f{digest}"),
            Body::Symlink(t) => format!("l{}", t.display()),
        };
        hasher.update(format!("{src_rel}\0{kind}\0{:o}\0{}:{}\n", e.mode, e.uid, e.gid).as_bytes());
        plan.entries.push(e);
    };
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    for f in &found {
        match f {
            Found::Inline { name, data } => {
                kinds.insert("file");
                let path = if dir_target {
                    join(&dest_dir, name)
                } else {
                    dest_dir.clone()
                };
                let digest = hex::encode(Sha256::digest(data));
                let e = Entry {
                    path,
                    body: Body::Inline(data.clone()),
                    mode: chmod.unwrap_or(0o644),
                    uid,
                    gid,
                    mtime: now,
                };
                add(&mut plan, &mut hasher, e, name, &digest);
            }
            Found::Archive { host, rel } => {
                kinds.insert("file");
                let digest = tree
                    .map_or_else(|| Ok(String::new()), |t| t.digest_of(rel, host))
                    .map_err(BuildError::io("read", host))?;
                hasher.update(format!("archive\0{}\0{digest}\n", rel.display()).as_bytes());
                plan.archives.push((host.clone(), dest_dir.clone(), owner));
            }
            Found::Path { host, rel, meta } => {
                let name = rel
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if meta.is_dir() {
                    kinds.insert("dir");
                    let base = if single_dir || !dest_is_dir {
                        dest_dir.clone()
                    } else {
                        join(&dest_dir, "")
                    };
                    // The directory's contents go into the destination (not the directory).
                    for (child, path, m) in walk(host, exclude.as_ref())? {
                        let target = join(&base, &child.to_string_lossy());
                        let src_rel = child.to_string_lossy().into_owned();
                        let ft = m.file_type();
                        let (body, digest) = if ft.is_dir() {
                            (Body::Dir, String::new())
                        } else if ft.is_symlink() {
                            let t = std::fs::read_link(&path)
                                .map_err(BuildError::io("read link", &path))?;
                            (Body::Symlink(t), String::new())
                        } else if ft.is_file() {
                            let d = tree
                                .map(|t| t.digest_of(&rel.join(&child), &path))
                                .transpose()
                                .map_err(BuildError::io("read", &path))?
                                .unwrap_or_default();
                            (
                                Body::File {
                                    host: path.clone(),
                                    size: m.len(),
                                },
                                d,
                            )
                        } else {
                            continue;
                        };
                        let mode = match (&body, chmod) {
                            (Body::Symlink(_), _) => 0o777,
                            (_, Some(c)) => c,
                            _ => m.permissions().mode() & 0o7777,
                        };
                        let e = Entry {
                            path: target,
                            body,
                            mode,
                            uid,
                            gid,
                            mtime: mtime_of(&m),
                        };
                        add(&mut plan, &mut hasher, e, &src_rel, &digest);
                    }
                    // The destination directory itself.
                    let mode = chmod.unwrap_or(0o755);
                    if !dest_dir.is_empty() && layers.lstat(&format!("/{dest_dir}")).is_none() {
                        let e = Entry {
                            path: dest_dir.clone(),
                            body: Body::Dir,
                            mode,
                            uid,
                            gid,
                            mtime: mtime_of(meta),
                        };
                        add(&mut plan, &mut hasher, e, ".", "");
                    }
                } else {
                    kinds.insert("file");
                    let path = if dir_target {
                        join(&dest_dir, &name)
                    } else {
                        dest_dir.clone()
                    };
                    let ft = meta.file_type();
                    let (body, digest) = if ft.is_symlink() {
                        let t =
                            std::fs::read_link(host).map_err(BuildError::io("read link", host))?;
                        (Body::Symlink(t), String::new())
                    } else {
                        let d = match tree {
                            Some(t) if host.starts_with(t.dir) => t.digest_of(rel, host),
                            _ => hash_file(host),
                        }
                        .map_err(BuildError::io("read", host))?;
                        (
                            Body::File {
                                host: host.clone(),
                                size: meta.len(),
                            },
                            d,
                        )
                    };
                    let mode = match (&body, chmod) {
                        (Body::Symlink(_), _) => 0o777,
                        (_, Some(c)) => c,
                        _ => meta.permissions().mode() & 0o7777,
                    };
                    let e = Entry {
                        path,
                        body,
                        mode,
                        uid,
                        gid,
                        mtime: mtime_of(meta),
                    };
                    add(&mut plan, &mut hasher, e, &name, &digest);
                }
            }
        }
    }
    let digest = hex::encode(hasher.finalize());
    let kind = if kinds.len() > 1 || found.len() > 1 {
        "multi"
    } else if kinds.contains("dir") {
        "dir"
    } else {
        "file"
    };
    plan.source_digest = format!("{kind}:{digest}");
    add_parents(&mut plan, layers, owner, now);
    Ok(plan)
}

/// Entries for the parents of every entry: existing ones with the image's metadata, missing
/// ones `0755` and owned as the copied files.
fn add_parents(plan: &mut Plan, layers: &Layers, owner: Option<(u64, u64)>, now: u64) {
    let mut have: BTreeSet<String> = plan.entries.iter().map(|e| e.path.clone()).collect();
    let mut parents: BTreeMap<String, Entry> = BTreeMap::new();
    let targets: Vec<String> = plan
        .entries
        .iter()
        .map(|e| e.path.clone())
        .chain(plan.archives.iter().map(|a| format!("{}/x", a.1)))
        .collect();
    for path in targets {
        let mut p = Path::new(&path).parent();
        while let Some(dir) = p {
            let s = dir.to_string_lossy().into_owned();
            if s.is_empty() || have.contains(&s) {
                break;
            }
            have.insert(s.clone());
            let entry = match layers.lstat(&format!("/{s}")) {
                Some((_, m)) if m.is_dir() => Entry {
                    path: s.clone(),
                    body: Body::Dir,
                    mode: m.permissions().mode() & 0o7777,
                    uid: u64::from(m.uid()),
                    gid: u64::from(m.gid()),
                    mtime: mtime_of(&m),
                },
                _ => {
                    let (uid, gid) = owner.unwrap_or((0, 0));
                    Entry {
                        path: s.clone(),
                        body: Body::Dir,
                        mode: 0o755,
                        uid,
                        gid,
                        mtime: now,
                    }
                }
            };
            parents.insert(s, entry);
            p = dir.parent();
        }
    }
    plan.entries.extend(parents.into_values());
    plan.entries.sort_by(|a, b| a.path.cmp(&b.path));
}

fn header(kind: tar::EntryType, e: &Entry, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(e.mode);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(e.mtime);
    h.set_size(size);
    h
}

/// Writes the planned layer as a tar into `out`.
pub(crate) fn write(plan: &Plan, out: &mut dyn Write) -> Result<(), BuildError> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    let werr = |e: io::Error| BuildError::io("write layer", "<tar>")(e);
    for e in &plan.entries {
        match &e.body {
            Body::Dir => {
                let mut h = header(tar::EntryType::Directory, e, 0);
                b.append_data(&mut h, format!("{}/", e.path), io::empty())
                    .map_err(werr)?;
            }
            Body::File { host, size } => {
                let file = std::fs::File::open(host).map_err(BuildError::io("open", host))?;
                let mut h = header(tar::EntryType::Regular, e, *size);
                b.append_data(&mut h, &e.path, file.take(*size))
                    .map_err(werr)?;
            }
            Body::Inline(data) => {
                let mut h = header(tar::EntryType::Regular, e, data.len() as u64);
                b.append_data(&mut h, &e.path, &data[..]).map_err(werr)?;
            }
            Body::Symlink(target) => {
                let mut h = header(tar::EntryType::Symlink, e, 0);
                b.append_link(&mut h, &e.path, target).map_err(werr)?;
            }
        }
    }
    for (host, dest, owner) in &plan.archives {
        unpack_archive(&mut b, host, dest, *owner)?;
    }
    b.finish().map_err(werr)?;
    Ok(())
}

/// Re-writes a local archive's entries under `dest` (`ADD` of a tar).
fn unpack_archive(
    b: &mut tar::Builder<&mut dyn Write>,
    host: &Path,
    dest: &str,
    owner: Option<(u64, u64)>,
) -> Result<(), BuildError> {
    let file = std::fs::File::open(host).map_err(BuildError::io("open", host))?;
    let stream =
        super::context::decompressed(Box::new(file)).map_err(BuildError::io("read", host))?;
    let mut archive = tar::Archive::new(stream);
    let bad = |e: io::Error| step_err("ADD", format!("unpacking {}: {e}", host.display()));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let rel = entry_path(&raw).map_err(|m| step_err("ADD", m))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let path = join(dest, &rel.to_string_lossy());
        let mut h = entry.header().clone();
        if let Some((uid, gid)) = owner {
            h.set_uid(uid);
            h.set_gid(gid);
        }
        let kind = h.entry_type();
        let werr = |e: io::Error| BuildError::io("write layer", "<tar>")(e);
        match kind {
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .unwrap_or_default()
                    .into_owned();
                b.append_link(&mut h, &path, target).map_err(werr)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .unwrap_or_default()
                    .into_owned();
                let target = entry_path(&target).map_err(|m| step_err("ADD", m))?;
                b.append_link(&mut h, &path, join(dest, &target.to_string_lossy()))
                    .map_err(werr)?;
            }
            tar::EntryType::Directory => {
                b.append_data(&mut h, format!("{path}/"), io::empty())
                    .map_err(werr)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                b.append_data(&mut h, &path, &mut entry).map_err(werr)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A layer that makes the directory `dir` (absolute, resolved) and its missing parents
/// (`0755`, root); parents the image has are carried with their metadata (`WORKDIR`).
pub(crate) fn mkdir_layer(layers: &Layers, dir: &str) -> Result<Vec<u8>, BuildError> {
    let rel = dir.trim_start_matches('/').to_owned();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let mut plan = Plan::default();
    if !rel.is_empty() {
        plan.entries.push(Entry {
            path: rel,
            body: Body::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: now,
        });
    }
    add_parents(&mut plan, layers, None, now);
    let mut out = Vec::new();
    write(&plan, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        root: berth_fs::Root,
    }

    fn fixture(files: &[(&str, &str)]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ctx");
        for (path, data) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if let Some(target) = data.strip_prefix("->") {
                std::os::unix::fs::symlink(target, &p).unwrap();
            } else if path.ends_with('/') {
                std::fs::create_dir_all(&p).unwrap();
            } else {
                std::fs::write(&p, data).unwrap();
            }
        }
        std::fs::create_dir_all(&dir).unwrap();
        let root = berth_fs::Root::open(&dir).unwrap();
        Fixture {
            _tmp: tmp,
            dir,
            root,
        }
    }

    fn paths(fx: &Fixture, sources: &[&str], dest: &str) -> Result<Vec<String>, BuildError> {
        let tree = Tree {
            dir: &fx.dir,
            root: &fx.root,
            digests: None,
            is_context: true,
        };
        let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
        let req = Request {
            instruction: "COPY",
            sources: &sources,
            inline: Vec::new(),
            dest,
            workdir: "/",
            chown: None,
            chmod: None,
            exclude: &[],
            unpack: false,
            fetched: Vec::new(),
        };
        let plan = plan(Some(&tree), &req, &Layers::default())?;
        Ok(plan
            .entries
            .iter()
            .map(|e| match &e.body {
                Body::Dir => format!("{}/", e.path),
                Body::Symlink(t) => format!("{} -> {}", e.path, t.display()),
                _ => e.path.clone(),
            })
            .collect())
    }

    #[test]
    fn docker_directory_semantics() {
        let fx = fixture(&[
            ("dir/a", "1"),
            ("dir/sub/b", "2"),
            ("f.txt", "x"),
            ("g.txt", "y"),
        ]);
        // A directory source copies its contents.
        assert_eq!(
            paths(&fx, &["dir"], "/app").unwrap(),
            ["app/", "app/a", "app/sub/", "app/sub/b"]
        );
        // A file to a path without a slash is written at that path.
        assert_eq!(paths(&fx, &["f.txt"], "/x").unwrap(), ["x"]);
        assert_eq!(paths(&fx, &["f.txt"], "/d/").unwrap(), ["d/", "d/f.txt"]);
        // Several sources need a trailing slash.
        let err = paths(&fx, &["f.txt", "g.txt"], "/d").unwrap_err();
        assert!(
            err.to_string()
                .contains("must be a directory and end with a /"),
            "{err}"
        );
        assert_eq!(
            paths(&fx, &["*.txt"], "/d/").unwrap(),
            ["d/", "d/f.txt", "d/g.txt"]
        );
        let err = paths(&fx, &["*.nope"], "/d/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "COPY failed: no source files were specified"
        );
        let err = paths(&fx, &["missing"], "/d/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "COPY failed: file not found in build context or excluded by .dockerignore: stat missing: file does not exist"
        );
        let err = paths(&fx, &["../x"], "/d/").unwrap_err();
        assert!(
            err.to_string()
                .contains("forbidden path outside the build context"),
            "{err}"
        );
    }

    #[test]
    fn symlinks_out_of_the_context_are_copied_as_links() {
        let fx = fixture(&[("out", "->/etc/passwd"), ("in", "->f"), ("f", "data")]);
        assert_eq!(paths(&fx, &["out"], "/x").unwrap(), ["x -> /etc/passwd"]);
        // A link to a file inside is followed.
        assert_eq!(paths(&fx, &["in"], "/y").unwrap(), ["y"]);
    }

    #[test]
    fn content_digest_ignores_mtimes_but_not_bytes() {
        let fx = fixture(&[("f", "data")]);
        let digest = |fx: &Fixture| {
            let tree = Tree {
                dir: &fx.dir,
                root: &fx.root,
                digests: None,
                is_context: true,
            };
            let sources = vec!["f".to_owned()];
            let req = Request {
                instruction: "COPY",
                sources: &sources,
                inline: Vec::new(),
                dest: "/f",
                workdir: "/",
                chown: None,
                chmod: None,
                exclude: &[],
                unpack: false,
                fetched: Vec::new(),
            };
            plan(Some(&tree), &req, &Layers::default())
                .unwrap()
                .source_digest
        };
        let before = digest(&fx);
        let t = nix::sys::time::TimeSpec::new(1000, 0);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &fx.dir.join("f"),
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::FollowSymlink,
        )
        .unwrap();
        assert_eq!(digest(&fx), before);
        std::fs::write(fx.dir.join("f"), "other").unwrap();
        assert_ne!(digest(&fx), before);
        assert!(before.starts_with("file:"));
    }
}
