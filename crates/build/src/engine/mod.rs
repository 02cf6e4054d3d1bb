//! The engine: runs a Dockerfile against a context and makes an image, as Docker's legacy
//! builder does (one image per step, each the parent of the next, so `history` reads as
//! Docker's), faster: metadata steps and `COPY`/`ADD` need no container, `RUN` runs in a
//! container of berth's and is committed in one pass, independent stages build concurrently
//! and every step is cached (see [`cache`](self::cache)).
//!
//! A build, in order: unpack the context (`context`), parse and plan the Dockerfile (the
//! language half of this crate), check every base image, then build the planned stages wave
//! by wave (`dispatch`), tag the target stage's image and save the cache. Progress goes out as
//! the legacy builder's JSON stream (`Step 2/5 : RUN …`, ` ---> Running in …`, ` ---> 1a2b…`);
//! the stages of one wave run at once, their lines are shown stage after stage.
//!
//! ```text
//! <data_root>/builder/
//!   cache.json           the cache index (see `cache`)
//!   mounts/<hex>/        RUN --mount=type=cache directories, by id (kept across builds)
//!   steps/<container id> one empty file per step container alive now: a daemon stopped in
//!                        the middle of a step removes them at its next start
//!   tmp/<random>/        one build's scratch: its context, the trees of --from stages and
//!                        images, fetched ADD files; removed when the build ends, emptied at open
//! ```
//!
//! Nothing a failed or cancelled build made stays but the cache records (and images) of the
//! steps that succeeded: step containers are removed whatever happens, the scratch directory
//! goes, no tag moves.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_container::ContainerService;
use berth_errdefs::Classify;
use berth_image::ImageStore;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{BuildOptions, BuildPlan, Dockerfile, Platform};

mod cache;
mod context;
mod copy;
mod dispatch;
mod error;
mod history;
mod layered;
mod prune;

pub use cache::CacheRecord;
pub use error::BuildError;
pub use prune::{CacheUsage, PruneOptions, PruneReport};

/// How the builder is set up.
#[derive(Debug, Clone)]
pub struct BuilderConfig {
    /// The data root; the builder keeps its state in `<data_root>/builder`.
    pub data_root: PathBuf,
    /// At most this many bytes of context (`BERTH_BUILD_CONTEXT_LIMIT`); the free disk space
    /// is the limit in any case.
    pub context_limit: Option<u64>,
}

/// The builder service.
#[derive(Debug)]
pub struct Builder {
    images: Arc<ImageStore>,
    containers: Arc<ContainerService>,
    /// Pulls missing base images (and every one with `pull`); without it only the store's.
    registry: Option<Arc<berth_distribution::client::Distribution>>,
    root: PathBuf,
    cache: cache::Cache,
    context_limit: Option<u64>,
}

/// What `POST /build` asks for.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// `t`: names to tag the image with.
    pub tags: Vec<String>,
    /// `dockerfile`: its path in the context (`Dockerfile` when empty).
    pub dockerfile: String,
    /// `buildargs`.
    pub build_args: BTreeMap<String, String>,
    /// `target`.
    pub target: Option<String>,
    /// `nocache`.
    pub no_cache: bool,
    /// `pull`: pull every base image, not only the missing ones.
    pub pull: bool,
    /// `rm` (default true): remove step containers after a successful step.
    pub remove: bool,
    /// `forcerm`: remove them always.
    pub force_remove: bool,
    /// `q`: only the image id.
    pub quiet: bool,
    /// `labels`: set on the image.
    pub labels: BTreeMap<String, String>,
    /// `networkmode`: the network of `RUN` steps (`default`, `bridge`, `none`, `host`, …).
    pub network_mode: String,
    /// `extrahosts`: `host:ip` lines for `RUN` steps.
    pub extra_hosts: Vec<String>,
    /// `shmsize` in bytes.
    pub shm_size: Option<i64>,
    /// `cachefrom`: images whose steps may be reused (no other cache then).
    pub cache_from: Vec<String>,
    /// `platform`.
    pub platform: Option<String>,
    /// `remote`: the context's URL instead of a body.
    pub remote: Option<String>,
    /// `X-Registry-Config`: the client's credentials by registry, for pulling base images.
    pub registry_auths: HashMap<String, berth_distribution::client::AuthConfig>,
}

/// What a build sends while it runs.
#[derive(Debug)]
pub enum BuildEvent {
    /// One line of the JSON progress stream.
    Line(Bytes),
    /// The end: the image id, or why it failed (not yet in the stream).
    Done(Result<String, BuildError>),
}

/// Pulls `reference` with `auth` (the client's credentials for its registry), its progress
/// lines in the build's stream.
async fn pull_image(
    registry: &berth_distribution::client::Distribution,
    reference: &str,
    auth: berth_distribution::client::AuthConfig,
    events: &mpsc::Sender<BuildEvent>,
) -> Result<(), BuildError> {
    use berth_distribution::client::{Progress, PullRequest};
    let request = PullRequest {
        reference: reference.to_owned(),
        all_tags: false,
        platform: None,
        auth,
    };
    let prepared = registry
        .prepare_pull(&request)
        .await
        .map_err(|source| BuildError::Pull { source })?;
    // The progress sink is synchronous: lines go through an unbounded channel to the stream.
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let forward = {
        let events = events.clone();
        tokio::spawn(async move {
            while let Some(message) = receiver.recv().await {
                let _ = events.send(BuildEvent::Line(message)).await;
            }
        })
    };
    let progress = Progress::new(move |message: berth_api::progress::JsonMessage| {
        let _ = sender.send(Bytes::from(message.to_line()));
    });
    let pulled = prepared.run(&progress).await;
    drop(progress);
    let _ = forward.await;
    pulled
        .map(|_| ())
        .map_err(|source| BuildError::Pull { source })
}

/// The short form of an image id (`sha256:` dropped, 12 hex).
pub(crate) fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// One line of the stream.
pub(crate) fn line(text: impl Into<String>) -> Bytes {
    Bytes::from(berth_api::progress::JsonMessage::stream(text).to_line())
}

/// Everything one build shares between its stages.
#[derive(Debug)]
pub(crate) struct Run {
    pub builder: Arc<Builder>,
    pub req: BuildRequest,
    pub df: Dockerfile,
    pub plan: BuildPlan,
    pub context: Option<context::Context>,
    pub scratch: PathBuf,
    /// Stage index → the image it made (`None`: nothing, `FROM scratch` alone).
    pub results: Mutex<HashMap<usize, Option<String>>>,
    /// Image id → its files, unpacked for `COPY --from` and `RUN --mount=from=`.
    pub trees: tokio::sync::Mutex<HashMap<String, Arc<context::Context>>>,
    pub cancel: CancellationToken,
    /// With `--cache-from`: the only images a cache hit may give.
    pub allowed: Option<HashSet<String>>,
    /// Stage index → the number of its `FROM` step.
    pub first_step: HashMap<usize, usize>,
    pub total_steps: usize,
    /// The `LABEL` step `labels` adds to the target stage.
    pub label_step: Option<crate::Instruction>,
}

impl Builder {
    /// The same builder, pulling base images through `registry` as dockerd's builder does: a
    /// missing one always, every one with `pull`.
    #[must_use]
    pub fn with_registry(
        mut self,
        registry: Arc<berth_distribution::client::Distribution>,
    ) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Opens the builder's state under `<data_root>/builder`: the cache index, and an empty
    /// scratch area (what a crashed build left is removed).
    pub fn open(
        config: &BuilderConfig,
        images: Arc<ImageStore>,
        containers: Arc<ContainerService>,
    ) -> Result<Builder, BuildError> {
        let root = config.data_root.join("builder");
        for dir in [
            root.clone(),
            root.join("tmp"),
            root.join("mounts"),
            root.join("steps"),
        ] {
            std::fs::create_dir_all(&dir).map_err(BuildError::io("create directory", &dir))?;
        }
        let tmp = root.join("tmp");
        for entry in std::fs::read_dir(&tmp)
            .map_err(BuildError::io("read directory", &tmp))?
            .flatten()
        {
            if let Err(error) = berth_fs::tree::remove_tree(&entry.path()) {
                tracing::warn!(path = %entry.path().display(), %error, "removing a build's leftovers failed");
            }
        }
        let cache = cache::Cache::open(&root)?;
        Ok(Builder {
            images,
            containers,
            registry: None,
            root,
            cache,
            context_limit: config.context_limit,
        })
    }

    /// Removes the step containers a stopped daemon left (their mounts, cgroups and scratch go
    /// with them): the ones `steps/` still names. Run once at start, before any build.
    pub async fn remove_interrupted_steps(&self) {
        let dir = self.root.join("steps");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        for id in names {
            match self.containers.remove(&id, true, true).await {
                Ok(()) => {
                    tracing::info!(container_id = %id, "removed an interrupted build step's container")
                }
                Err(error) if error.kind() == berth_errdefs::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(container_id = %id, %error, "removing an interrupted build step's container failed");
                    continue;
                }
            }
            let _ = std::fs::remove_file(dir.join(&id));
        }
    }

    /// Notes that step container `id` exists until [`Builder::step_gone`] (a daemon stopped
    /// meanwhile removes it at its next start).
    pub(crate) fn step_made(&self, id: &str) {
        let path = self.root.join("steps").join(id);
        if let Err(error) = std::fs::File::create(&path) {
            tracing::warn!(path = %path.display(), %error, "noting a build step's container failed");
        }
    }

    /// Step container `id` was removed (or is kept on purpose, `rm=0`).
    pub(crate) fn step_gone(&self, id: &str) {
        let _ = std::fs::remove_file(self.root.join("steps").join(id));
    }

    /// Checks what a build can be refused for before its context is read: tags, platform,
    /// network mode.
    pub fn check(&self, req: &BuildRequest) -> Result<(), BuildError> {
        for tag in &req.tags {
            berth_image::Reference::parse(tag).map_err(|problem| {
                BuildError::invalid(format!("invalid reference format: {tag}: {problem}"))
            })?;
        }
        if let Some(p) = req.platform.as_deref().filter(|p| !p.is_empty()) {
            let platform = Platform::parse(p).map_err(BuildError::invalid)?;
            let host = Platform::host();
            if platform.os != host.os || platform.architecture != host.architecture {
                return Err(BuildError::invalid(format!(
                    "platform {p} is not supported: this builder builds for {}/{}",
                    host.os, host.architecture
                )));
            }
        }
        Ok(())
    }

    /// Runs a build: `body` is the context tar (ignored with `remote`). Every progress line,
    /// then the outcome, goes to `events`; a closed `events` (the client left) cancels the
    /// build.
    pub async fn build(
        self: &Arc<Self>,
        req: BuildRequest,
        body: Box<dyn Read + Send>,
        events: mpsc::Sender<BuildEvent>,
    ) {
        let scratch = self.root.join("tmp").join(random_name());
        let mut leftovers = None;
        let outcome = self
            .build_in(req, body, &events, &scratch, &mut leftovers)
            .await;
        // The cache is saved before the client hears the end (a build that succeeded is
        // cached across a restart that follows it)...
        let saved = {
            let builder = Arc::clone(self);
            berth_fs::blocking(move || builder.cache.save()).await
        };
        if let Ok(Err(error)) | Err(error) = saved.map_err(BuildError::from) {
            tracing::warn!(%error, "saving the build cache failed");
        }
        if let Err(error) = &outcome {
            tracing::info!(%error, kind = ?error.kind(), "build failed");
        }
        let _ = events.send(BuildEvent::Done(outcome)).await;
        drop(events);
        // ... and the scratch (the context, the trees of `--from` images) is removed after:
        // the client does not wait for it; what a stopped daemon leaves, `open` removes.
        let _ = berth_fs::blocking(move || {
            drop(leftovers);
            if scratch.exists()
                && let Err(error) = berth_fs::tree::remove_tree(&scratch)
            {
                tracing::warn!(path = %scratch.display(), %error, "removing a build's scratch directory failed");
            }
        })
        .await;
    }

    async fn build_in(
        self: &Arc<Self>,
        req: BuildRequest,
        body: Box<dyn Read + Send>,
        events: &mpsc::Sender<BuildEvent>,
        scratch: &Path,
        leftovers: &mut Option<Run>,
    ) -> Result<String, BuildError> {
        self.check(&req)?;
        std::fs::create_dir(scratch).map_err(BuildError::io("create directory", scratch))?;
        let context = self.receive_context(&req, body, scratch).await?;
        let dockerfile_path = if req.dockerfile.is_empty() {
            "Dockerfile".to_owned()
        } else {
            req.dockerfile.clone()
        };
        let text = read_dockerfile(&context, &dockerfile_path)?;
        let df = Dockerfile::parse(&text)?;
        let opts = BuildOptions {
            build_args: req.build_args.clone(),
            target: req.target.clone().filter(|t| !t.is_empty()),
            ..BuildOptions::default()
        };
        let plan = df.plan(&opts)?;
        self.check_images(&plan, &req, events).await?;
        let allowed = self.cache_from_images(&req.cache_from).await?;
        let label_step = label_instruction(&req.labels)?;
        let mut first_step = HashMap::new();
        let mut next = df.meta_args.len() + 1;
        for stage in &plan.stages {
            first_step.insert(stage.index, next);
            next += 1 + df.stages[stage.index].instructions.len();
        }
        let total_steps = next - 1 + usize::from(label_step.is_some());
        let cancel = CancellationToken::new();
        let run = Arc::new(Run {
            builder: Arc::clone(self),
            req,
            df,
            plan,
            context: Some(context),
            scratch: scratch.to_path_buf(),
            results: Mutex::new(HashMap::new()),
            trees: tokio::sync::Mutex::new(HashMap::new()),
            cancel: cancel.clone(),
            allowed,
            first_step,
            total_steps,
            label_step,
        });
        let result = self.run_stages(&run, events).await;
        // The context and trees are removed by the caller, after the answer (they may be large).
        *leftovers = Arc::try_unwrap(run).ok();
        result
    }

    /// Builds every planned stage, wave by wave; the target's image is tagged.
    async fn run_stages(
        self: &Arc<Self>,
        run: &Arc<Run>,
        events: &mpsc::Sender<BuildEvent>,
    ) -> Result<String, BuildError> {
        // One channel per stage, plus one for the global ARG steps; a forwarder shows them in
        // plan order (a stage's lines wait while an earlier stage of its wave still runs).
        let (head_tx, head_rx) = mpsc::unbounded_channel();
        let mut receivers = vec![head_rx];
        let mut senders = HashMap::new();
        for stage in &run.plan.stages {
            let (tx, rx) = mpsc::unbounded_channel();
            receivers.push(rx);
            senders.insert(stage.index, tx);
        }
        let forwarder = tokio::spawn(forward(
            receivers,
            events.clone(),
            run.req.quiet,
            run.cancel.clone(),
        ));
        for (i, meta) in run.df.meta_args.iter().enumerate() {
            let _ = head_tx.send(line(format!(
                "Step {}/{} : {}\n",
                i + 1,
                run.total_steps,
                meta.original
            )));
        }
        drop(head_tx);
        let mut outcome: Result<(), BuildError> = Ok(());
        for wave in run.plan.waves() {
            let mut tasks = Vec::new();
            for index in wave {
                let out = senders.remove(&index).expect("a channel per planned stage");
                let run = Arc::clone(run);
                tasks.push((
                    index,
                    tokio::spawn(async move { dispatch::stage(&run, index, &out).await }),
                ));
            }
            for (index, task) in tasks {
                match task.await.map_err(BuildError::from).and_then(|r| r) {
                    Ok(image) => {
                        run.results
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(index, image);
                    }
                    Err(error) => {
                        if outcome.is_ok() {
                            outcome = Err(error);
                        }
                        // The other stages of the wave stop at their next step.
                        run.cancel.cancel();
                    }
                }
            }
            if outcome.is_err() {
                break;
            }
        }
        drop(senders);
        let buffered = forwarder.await.unwrap_or_default();
        if run.cancel.is_cancelled() && outcome.is_ok() {
            outcome = Err(BuildError::Cancelled);
        }
        if let Err(error) = outcome {
            // `-q` shows what happened only when it failed.
            for l in buffered {
                let _ = events.send(BuildEvent::Line(l)).await;
            }
            return Err(error);
        }
        let image = run
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&run.plan.target)
            .cloned()
            .flatten()
            .ok_or_else(|| {
                BuildError::invalid("No image was generated. Is your Dockerfile empty?")
            })?;
        self.finish(run, image, events).await
    }

    /// Tags the image and sends the closing lines (`Successfully built …`).
    async fn finish(
        &self,
        run: &Run,
        image: String,
        events: &mpsc::Sender<BuildEvent>,
    ) -> Result<String, BuildError> {
        let unused = run.df.unused_build_args(&run.req.build_args);
        let mut tail = Vec::new();
        if !unused.is_empty() && !run.req.quiet {
            tail.push(line(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused.join(" ")
            )));
        }
        tail.push(Bytes::from(
            berth_api::progress::JsonMessage {
                aux: Some(serde_json::json!({ "ID": image })),
                ..Default::default()
            }
            .to_line(),
        ));
        for tag in &run.req.tags {
            let (images, id, t) = (Arc::clone(&self.images), image.clone(), tag.clone());
            berth_fs::blocking(move || images.tag(&id, &t)).await??;
        }
        if run.req.quiet {
            tail.push(line(format!("{image}\n")));
        } else {
            tail.push(line(format!("Successfully built {}\n", short(&image))));
            for tag in &run.req.tags {
                let familiar = berth_image::Reference::parse(tag)
                    .map(|r| r.with_default_tag().familiar())
                    .unwrap_or_else(|_| tag.clone());
                tail.push(line(format!("Successfully tagged {familiar}\n")));
            }
        }
        for l in tail {
            if events.send(BuildEvent::Line(l)).await.is_err() {
                break;
            }
        }
        Ok(image)
    }

    async fn receive_context(
        &self,
        req: &BuildRequest,
        body: Box<dyn Read + Send>,
        scratch: &Path,
    ) -> Result<context::Context, BuildError> {
        let dir = scratch.join("context");
        let limit = context::space_limit(&self.root, self.context_limit);
        if let Some(url) = req.remote.as_deref().filter(|u| !u.is_empty()) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(BuildError::invalid(format!(
                    "unable to prepare context: remote context {url} is not supported (only http(s) URLs of tar archives or Dockerfiles)"
                )));
            }
            let file = scratch.join("remote");
            fetch_to(url, &file, None).await?;
            let (dir2, file2, dockerfile) = (dir.clone(), file.clone(), req.dockerfile.clone());
            return berth_fs::blocking(move || {
                let mut head = [0u8; 512];
                let n = std::fs::File::open(&file2)
                    .and_then(|mut f| f.read(&mut head))
                    .unwrap_or(0);
                let is_tar = context::detect(&head[..n]) != context::Compression::None
                    || (n >= 262 && &head[257..262] == b"ustar");
                if is_tar {
                    let mut f =
                        std::fs::File::open(&file2).map_err(BuildError::io("open", &file2))?;
                    context::unpack(&mut f, &dir2, limit)
                } else {
                    // A plain Dockerfile: the context is that file alone.
                    let mut tar = tar::Builder::new(Vec::new());
                    let data = std::fs::read(&file2).map_err(BuildError::io("read", &file2))?;
                    let mut h = tar::Header::new_gnu();
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    let name = if dockerfile.is_empty() {
                        "Dockerfile".to_owned()
                    } else {
                        dockerfile
                    };
                    tar.append_data(&mut h, name, &data[..])
                        .map_err(BuildError::io("write", &file2))?;
                    let bytes = tar.into_inner().map_err(BuildError::io("write", &file2))?;
                    context::unpack(&mut &bytes[..], &dir2, limit)
                }
            })
            .await?;
        }
        berth_fs::blocking(move || {
            let mut body = body;
            let unpacked = context::unpack(&mut body, &dir, limit);
            if unpacked.is_err() {
                // Read the rest of the upload so the client reads the answer, not a broken pipe.
                let _ = std::io::copy(&mut body.take(4 << 30), &mut std::io::sink());
            }
            unpacked
        })
        .await?
    }

    /// Every base image and `--from` image of the plan is in the store: a missing one is
    /// pulled (every one with `pull`), its progress in the build's stream, as dockerd does.
    async fn check_images(
        &self,
        plan: &BuildPlan,
        req: &BuildRequest,
        events: &mpsc::Sender<BuildEvent>,
    ) -> Result<(), BuildError> {
        let pull = req.pull;
        let mut refs = Vec::new();
        for stage in &plan.stages {
            if let crate::Base::Image(r) = &stage.base {
                refs.push(r.clone());
            }
            refs.extend(stage.images.iter().cloned());
        }
        refs.dedup();
        for r in refs {
            let images = Arc::clone(&self.images);
            let wanted = r.clone();
            let found = berth_fs::blocking(move || images.resolve(&wanted)).await?;
            let missing = match found {
                Ok(_) => false,
                Err(e) if e.kind() == berth_errdefs::ErrorKind::NotFound => true,
                Err(e) => return Err(BuildError::from(e)),
            };
            match &self.registry {
                Some(registry) if missing || pull => {
                    let auth =
                        berth_distribution::client::auth_for_reference(&req.registry_auths, &r);
                    pull_image(registry, &r, auth, events).await?;
                }
                None if missing => return Err(BuildError::ImageNotFound { reference: r }),
                _ => {}
            }
        }
        Ok(())
    }

    async fn cache_from_images(
        &self,
        refs: &[String],
    ) -> Result<Option<HashSet<String>>, BuildError> {
        if refs.is_empty() {
            return Ok(None);
        }
        let images = Arc::clone(&self.images);
        let refs = refs.to_vec();
        Ok(Some(
            berth_fs::blocking(move || {
                let mut allowed = HashSet::new();
                for r in refs {
                    let mut next = images.resolve(&r).ok();
                    while let Some(record) = next {
                        if !allowed.insert(record.id.clone()) {
                            break;
                        }
                        next = record
                            .parent
                            .as_deref()
                            .and_then(|p| images.resolve(p).ok());
                    }
                }
                allowed
            })
            .await?,
        ))
    }
}

/// The `LABEL` step of `labels` (Docker appends it to the Dockerfile).
fn label_instruction(
    labels: &BTreeMap<String, String>,
) -> Result<Option<crate::Instruction>, BuildError> {
    if labels.is_empty() {
        return Ok(None);
    }
    let text: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}={}", crate::text::go_quote(k), crate::text::go_quote(v)))
        .collect();
    let df = Dockerfile::parse(&format!("FROM scratch\nLABEL {}\n", text.join(" ")))?;
    Ok(df.stages[0].instructions.first().cloned())
}

fn read_dockerfile(context: &context::Context, path: &str) -> Result<String, BuildError> {
    let rel = path.trim_start_matches('/');
    let not_found = || BuildError::DockerfileNotFound {
        path: path.to_owned(),
    };
    let fd = context
        .root
        .open_at(
            Path::new(rel),
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|_| not_found())?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(64 << 20)
        .read_to_string(&mut text)
        .map_err(|_| not_found())?;
    Ok(text)
}

pub(crate) fn random_name() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

/// Downloads `url` into `path`; with `checksum` (`sha256:<hex>`) the bytes must match. The
/// file's mtime is the response's `Last-Modified` (the epoch without one), as Docker sets it.
/// Returns the sha256 (hex) of what was written. Errors read as Docker's (`failed to GET …
/// with status 404 Not Found: <body>`, `Get "…": dial tcp …: connect: connection refused`).
pub(crate) async fn fetch_to(
    url: &str,
    path: &Path,
    checksum: Option<&str>,
) -> Result<String, BuildError> {
    use futures_util::StreamExt;
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let failed = |message: String| BuildError::invalid(message);
    // berth's one HTTP client (hyper + rustls, the system's roots), as `import URL` uses it.
    let download = async {
        berth_distribution::client::HttpClient::new(None)?
            .get(url)
            .await
    }
    .await
    .map_err(|e| failed(fetch_error(url, &e)))?;
    let modified = download
        .last_modified
        .as_deref()
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .and_then(|t| u64::try_from(t.timestamp()).ok())
        .unwrap_or(0);
    let mut stream = download.into_stream();
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(BuildError::io("create", path))?;
    let mut hasher = sha2::Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| failed(format!("failed to GET {url}: {e}")))?;
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(BuildError::io("write", path))?;
    }
    file.flush().await.map_err(BuildError::io("write", path))?;
    let file = file.into_std().await;
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(modified);
    berth_fs::blocking(move || {
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(when)
                .set_modified(when),
        )
    })
    .await?
    .map_err(BuildError::io("set the mtime of", path))?;
    let digest = hex::encode(hasher.finalize());
    if let Some(expected) = checksum {
        let want = expected.strip_prefix("sha256:").ok_or_else(|| {
            BuildError::invalid(format!("invalid checksum digest format: {expected}"))
        })?;
        if want != digest {
            return Err(BuildError::copy(
                "ADD",
                format!("digest mismatch sha256:{digest}: {expected}"),
            ));
        }
    }
    Ok(digest)
}

/// A failed GET in the words of dockerd's `remotecontext.GetWithStatusError` (Go's
/// `net/http` errors).
fn fetch_error(url: &str, error: &berth_distribution::client::ClientError) -> String {
    use berth_distribution::client::ClientError;
    match error {
        ClientError::DownloadStatus {
            status,
            reason,
            body,
            ..
        } => format!("failed to GET {url} with status {status} {reason}: {body}"),
        ClientError::Connect { reason, .. } => {
            let authority = url
                .split_once("://")
                .map_or(url, |(_, rest)| rest)
                .split(['/', '?', '#'])
                .next()
                .unwrap_or("");
            let lower = reason.to_ascii_lowercase();
            let reason = if lower.contains("connection refused") {
                format!("dial tcp {authority}: connect: connection refused")
            } else {
                reason.clone()
            };
            format!("Get \"{url}\": {reason}")
        }
        other => other.to_string(),
    }
}

/// Forwards the stages' lines in plan order; with `quiet`, keeps them instead (returned, for
/// an error report). A gone client cancels the build.
async fn forward(
    receivers: Vec<mpsc::UnboundedReceiver<Bytes>>,
    events: mpsc::Sender<BuildEvent>,
    quiet: bool,
    cancel: CancellationToken,
) -> Vec<Bytes> {
    let mut kept = Vec::new();
    for mut rx in receivers {
        loop {
            let next = tokio::select! {
                next = rx.recv() => next,
                () = events.closed() => {
                    cancel.cancel();
                    // Drain without forwarding, so the stages can finish their cleanup.
                    while rx.recv().await.is_some() {}
                    None
                }
            };
            let Some(bytes) = next else { break };
            if quiet {
                kept.push(bytes);
            } else if events.send(BuildEvent::Line(bytes)).await.is_err() {
                cancel.cancel();
            }
        }
    }
    kept
}
