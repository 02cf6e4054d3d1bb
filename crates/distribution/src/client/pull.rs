//! `pull`: a tag, a digest or every tag of a repository into the image store.
//!
//! [`Distribution::prepare_pull`] resolves what to fetch before anything is answered (the
//! manifest, through an index to the platform's, and the config), so that a missing image or
//! a refused login is an error status, as Docker answers them. [`PreparedPull::run`] then
//! fetches the missing layers, at most `--max-concurrent-downloads` at once, each one's bytes
//! going straight into [`ImageStore::stage_pulled_layer`] on a blocking thread (stored as they
//! came, hashed, decompressed, hashed, unpacked), and publishes the image when all are there.
//! A connection that drops mid-layer resumes with a `Range` request from the last byte
//! received; failures without progress retry with doubling waits, then end the pull with one
//! line. If a layer fails the others stop, and nothing staged survives.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_api::progress::JsonMessage;
use berth_image::manifest::Platform;
use berth_image::{
    ImageConfig, ImageError, ImageStore, LayerEncoding, PullLayer, PulledImage, Reference,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::auth::AuthConfig;
use super::error::ClientError;
use super::progress::{Counter, Progress, short};
use super::session::{FetchedManifest, Session};
use super::{Distribution, parse_reference};
use crate::protocol::{Digest, ErrorCode, ManifestKind, ParsedManifest};

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    /// `name[:tag|@digest]` as given (`busybox`, `127.0.0.1:5000/a/b:1`).
    pub reference: String,
    /// Every tag of the repository (`pull -a`).
    pub all_tags: bool,
    /// `os[/arch[/variant]]`; the host's `linux/<arch>` when not given.
    pub platform: Option<String>,
    /// Credentials (`X-Registry-Auth`).
    pub auth: AuthConfig,
}

/// An image resolved on the registry: what its manifests and config say.
#[derive(Debug)]
struct Resolved {
    /// What was asked for (tag or digest).
    target: String,
    /// The digest of the manifest the tag names (an index's, for a multi-platform image):
    /// the RepoDigest.
    digest: Digest,
    config_bytes: Vec<u8>,
    layers: Vec<PullLayer>,
}

/// A pull whose first target is resolved, ready to fetch.
#[derive(Debug)]
pub struct PreparedPull {
    images: Arc<ImageStore>,
    session: Arc<Session>,
    /// The repository, normalized, without tag.
    name: Reference,
    platform: Platform,
    /// Whether `--platform` was given (a single-platform image must then match it).
    explicit_platform: bool,
    targets: Vec<String>,
    first: Option<Resolved>,
    all_tags: bool,
    downloads: usize,
    retry: (std::time::Duration, u32),
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullSummary {
    /// Each image pulled: its reference (familiar) and id.
    pub images: Vec<(String, String)>,
    /// Whether anything is new (an image, or a tag moved).
    pub updated: bool,
}

/// `os[/arch[/variant]]`.
pub(crate) fn parse_platform(value: Option<&str>) -> Result<(Platform, bool), ClientError> {
    let host = || Platform {
        architecture: berth_image::host_architecture().to_owned(),
        os: "linux".to_owned(),
        variant: None,
    };
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok((host(), false));
    };
    let invalid = || ClientError::InvalidPlatform {
        platform: value.to_owned(),
    };
    let parts: Vec<&str> = value.split('/').collect();
    if parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(invalid());
    }
    let mut platform = host();
    platform.os = parts[0].to_ascii_lowercase();
    if let Some(arch) = parts.get(1) {
        platform.architecture = match arch.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".to_owned(),
            "aarch64" => "arm64".to_owned(),
            other => other.to_owned(),
        };
    }
    platform.variant = parts.get(2).map(|v| v.to_ascii_lowercase());
    Ok((platform, true))
}

/// `os/arch[/variant]`.
fn platform_text(platform: &Platform) -> String {
    let mut text = format!("{}/{}", platform.os, platform.architecture);
    if let Some(variant) = &platform.variant {
        text.push('/');
        text.push_str(variant);
    }
    text
}

/// Whether an index entry's platform is the one wanted (a variant only when asked for one).
fn platform_matches(entry: &Platform, wanted: &Platform) -> bool {
    entry.os == wanted.os
        && entry.architecture == wanted.architecture
        && wanted
            .variant
            .as_ref()
            .is_none_or(|v| entry.variant.as_deref() == Some(v.as_str()))
}

impl Distribution {
    /// Resolves a pull before answering: the reference, the registry's manifest (through an
    /// index, to `platform`'s) and config. Errors here are the request's.
    ///
    /// A `docker.io` name is tried on each `--registry-mirror` first: whatever goes wrong there
    /// (unreachable, the image missing) falls back to the next mirror and then to the hub, as
    /// dockerd does, so the error of a pull that fails everywhere is the hub's.
    pub async fn prepare_pull(&self, request: &PullRequest) -> Result<PreparedPull, ClientError> {
        let reference = parse_reference(&request.reference)?;
        let name = parse_reference(&reference.name())?;
        let (mirrors, direct): (Vec<_>, Vec<_>) = self
            .options
            .endpoints(name.domain(), true)
            .await
            .into_iter()
            .partition(|endpoint| endpoint.mirror);
        for mirror in mirrors {
            let base = mirror.base.clone();
            match self.prepare_pull_among(request, vec![mirror]).await {
                Ok(prepared) => return Ok(prepared),
                Err(error) => {
                    tracing::debug!(mirror = %base, %error, "mirror failed; trying the next endpoint");
                }
            }
        }
        self.prepare_pull_among(request, direct).await
    }

    /// [`Distribution::prepare_pull`] from the first of `endpoints` that answers.
    async fn prepare_pull_among(
        &self,
        request: &PullRequest,
        endpoints: Vec<super::endpoint::Endpoint>,
    ) -> Result<PreparedPull, ClientError> {
        let reference = parse_reference(&request.reference)?;
        let (platform, explicit_platform) = parse_platform(request.platform.as_deref())?;
        let name = parse_reference(&reference.name())?;
        let session = Arc::new(
            self.session_among(&name, &["pull"], &[], &request.auth, endpoints)
                .await?,
        );
        let mut prepared = PreparedPull {
            images: Arc::clone(&self.images),
            session,
            name,
            platform,
            explicit_platform,
            targets: Vec::new(),
            first: None,
            all_tags: request.all_tags,
            downloads: self.options.max_concurrent_downloads,
            retry: (self.options.retry_delay, self.options.max_attempts),
        };
        if request.all_tags {
            if reference.tag().is_some() || reference.digest().is_some() {
                return Err(ClientError::InvalidReference {
                    reference: request.reference.clone(),
                    source: berth_image::ReferenceError::Format,
                });
            }
            let mut tags = prepared
                .session
                .tags(prepared.name.path())
                .await
                .map_err(|e| prepared.translate(e, None))?;
            tags.sort();
            prepared.targets = tags;
        } else {
            let target = match (reference.digest(), reference.tag()) {
                (Some(digest), _) => digest.to_owned(),
                (None, Some(tag)) => tag.to_owned(),
                (None, None) => berth_image::DEFAULT_TAG.to_owned(),
            };
            prepared.first = Some(prepared.resolve(&target).await?);
            prepared.targets = vec![target];
        }
        Ok(prepared)
    }
}

impl PreparedPull {
    /// The reference a target makes (familiar): `name:tag` or `name@digest`.
    fn reference_of(&self, target: &str) -> Result<Reference, ClientError> {
        reference_of(&self.name, target)
    }

    /// A registry error about the manifest, as Docker words it.
    fn translate(&self, error: ClientError, target: Option<&str>) -> ClientError {
        translate(&self.name, error, target)
    }

    /// A manifest of the repository, parsed.
    async fn manifest(
        &self,
        target: &str,
    ) -> Result<(FetchedManifest, ParsedManifest), ClientError> {
        let fetched = self
            .session
            .get_manifest(self.name.path(), target)
            .await
            .map_err(|e| self.translate(e, Some(target)))?;
        let parsed = ParsedManifest::parse(fetched.content_type.as_deref(), &fetched.bytes)
            .map_err(|e| ClientError::InvalidDocument {
                what: "manifest",
                reference: format!("{}@{}", self.name.familiar_name(), fetched.digest),
                reason: e.to_string(),
            })?;
        Ok((fetched, parsed))
    }

    /// The platform's image manifest of `parsed` (itself, when it is not an index).
    async fn platform_manifest(
        &self,
        parsed: ParsedManifest,
    ) -> Result<ParsedManifest, ClientError> {
        if !parsed.kind.is_index() {
            return Ok(parsed);
        }
        let wanted = &self.platform;
        let entry = parsed
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform_matches(p, wanted))
                    && ManifestKind::from_media_type(&d.media_type).is_some_and(|k| !k.is_index())
            })
            .ok_or_else(|| ClientError::NoMatchingPlatform {
                platform: platform_text(wanted),
            })?;
        let (_, child) = self.manifest(&entry.digest).await?;
        if child.kind.is_index() {
            return Err(ClientError::InvalidDocument {
                what: "manifest",
                reference: entry.digest.clone(),
                reason: "an index where the platform's image manifest should be".to_owned(),
            });
        }
        Ok(child)
    }

    /// Resolves `target` to the platform's image manifest and config.
    async fn resolve(&self, target: &str) -> Result<Resolved, ClientError> {
        let (top, parsed) = self.manifest(target).await?;
        let parsed = self.platform_manifest(parsed).await?;
        let config_descriptor =
            parsed
                .config
                .clone()
                .ok_or_else(|| ClientError::InvalidDocument {
                    what: "manifest",
                    reference: top.digest.to_string(),
                    reason: "no config".to_owned(),
                })?;
        let config_bytes = self
            .session
            .get_blob_bytes(self.name.path(), &config_descriptor.digest)
            .await
            .map_err(|e| self.translate(e, Some(target)))?;
        let config: ImageConfig =
            serde_json::from_slice(&config_bytes).map_err(|e| ClientError::InvalidDocument {
                what: "config",
                reference: config_descriptor.digest.clone(),
                reason: e.to_string(),
            })?;
        if !config.os.is_empty() && config.os != "linux" {
            return Err(ClientError::InvalidDocument {
                what: "image",
                reference: self.reference_of(target)?.familiar(),
                reason: format!(
                    "image operating system \"{}\" cannot be used on this platform",
                    config.os
                ),
            });
        }
        if self.explicit_platform
            && !parsed.kind.is_index()
            && !config.architecture.is_empty()
            && config.architecture != self.platform.architecture
        {
            return Err(ClientError::InvalidDocument {
                what: "image",
                reference: self.reference_of(target)?.familiar(),
                reason: format!(
                    "the image's platform ({}/{}) does not match the specified platform ({})",
                    config.os,
                    config.architecture,
                    platform_text(&self.platform)
                ),
            });
        }
        let diff_ids = config.diff_ids();
        if diff_ids.len() != parsed.layers.len() {
            return Err(ClientError::InvalidDocument {
                what: "image",
                reference: self.reference_of(target)?.familiar(),
                reason: format!(
                    "layers from manifest don't match image configuration ({} layers, {} diff ids)",
                    parsed.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (layer, diff_id) in parsed.layers.iter().zip(diff_ids) {
            if LayerEncoding::of_media_type(&layer.media_type).is_none() {
                return Err(ClientError::InvalidDocument {
                    what: "manifest",
                    reference: top.digest.to_string(),
                    reason: format!(
                        "unsupported media type {:?} for layer {}",
                        layer.media_type, layer.digest
                    ),
                });
            }
            if !berth_image::is_valid_digest(&diff_id) || !diff_id.starts_with("sha256:") {
                return Err(ClientError::InvalidDocument {
                    what: "config",
                    reference: config_descriptor.digest.clone(),
                    reason: format!("invalid diff id {diff_id:?}"),
                });
            }
            layers.push(PullLayer {
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
                size: layer.size,
                diff_id,
            });
        }
        Ok(Resolved {
            target: target.to_owned(),
            digest: top.digest,
            config_bytes,
            layers,
        })
    }

    /// Fetches what is missing and publishes each image, reporting to `progress`.
    pub async fn run(mut self, progress: &Progress) -> Result<PullSummary, ClientError> {
        let mut summary = PullSummary {
            images: Vec::new(),
            updated: false,
        };
        let targets = std::mem::take(&mut self.targets);
        for target in targets {
            progress.send(JsonMessage::status(
                format!("Pulling from {}", self.name.path()),
                Some(&target),
            ));
            let resolved = match self.first.take() {
                Some(resolved) if resolved.target == target => resolved,
                _ => self.resolve(&target).await?,
            };
            let (reference, id, updated) = self.fetch(resolved, progress).await?;
            summary.updated |= updated;
            summary.images.push((reference, id));
        }
        let shown = match (&summary.images[..], self.all_tags) {
            ([(reference, _)], false) => reference.clone(),
            _ => self.name.familiar_name(),
        };
        progress.status(if summary.updated {
            format!("Status: Downloaded newer image for {shown}")
        } else {
            format!("Status: Image is up to date for {shown}")
        });
        Ok(summary)
    }

    /// One image: layers fetched and staged, then published.
    async fn fetch(
        &self,
        resolved: Resolved,
        progress: &Progress,
    ) -> Result<(String, String, bool), ClientError> {
        let diff_ids: Vec<String> = resolved.layers.iter().map(|l| l.diff_id.clone()).collect();
        let present = {
            let images = Arc::clone(&self.images);
            berth_fs::blocking(move || images.present_layers(&diff_ids))
                .await
                .map_err(|e| ClientError::Task {
                    reason: e.to_string(),
                })?
        };
        let missing: Vec<usize> = (0..resolved.layers.len())
            .filter(|i| !present[*i])
            .collect();
        for (i, layer) in resolved.layers.iter().enumerate() {
            let status = if present[i] {
                "Already exists"
            } else {
                "Pulling fs layer"
            };
            progress.layer(&short(&layer.digest), status);
        }
        for &i in missing.iter().skip(self.downloads) {
            progress.layer(&short(&resolved.layers[i].digest), "Waiting");
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(self.downloads));
        let cancel = Arc::new(AtomicBool::new(false));
        let downloads = missing.iter().map(|&i| {
            let layer = resolved.layers[i].clone();
            let permits = Arc::clone(&permits);
            let cancel = Arc::clone(&cancel);
            async move {
                let _permit = permits
                    .acquire()
                    .await
                    .map_err(|_| ClientError::Cancelled)?;
                let result = self.download(&layer, &cancel, progress).await;
                // The first failure stops the others; theirs ("invalid tar archive: cancelled"
                // through the unpacker) are its consequence, so the user is told the cause.
                if result.is_err() && cancel.swap(true, Ordering::SeqCst) {
                    return Err(ClientError::Cancelled);
                }
                result.map(|staged| (i, staged))
            }
        });
        // Every download ends (a failure stops the others) before the outcome is known, so
        // nothing is left staging behind an error.
        let results = futures_util::future::join_all(downloads).await;
        let mut staged: Vec<Option<berth_image::StagedPull>> =
            (0..resolved.layers.len()).map(|_| None).collect();
        let mut first_error = None;
        for result in results {
            match result {
                Ok((i, layer)) => staged[i] = Some(layer),
                Err(ClientError::Cancelled) => {}
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        if cancel.load(Ordering::SeqCst) {
            return Err(ClientError::Cancelled);
        }
        let reference = self.reference_of(&resolved.target)?;
        let digest_reference = parse_reference(&format!("{}@{}", self.name, resolved.digest))?;
        let image = PulledImage {
            config_bytes: resolved.config_bytes,
            layers: resolved.layers.into_iter().zip(staged).collect(),
            repository: self.name.name(),
            tag: reference.digest().is_none().then(|| reference.clone()),
            digest_reference: Some(digest_reference),
        };
        let images = Arc::clone(&self.images);
        let outcome = berth_fs::blocking(move || images.install_pulled(image))
            .await
            .map_err(|e| ClientError::Task {
                reason: e.to_string(),
            })??;
        progress.status(format!("Digest: {}", resolved.digest));
        Ok((reference.familiar(), outcome.record.id, outcome.updated))
    }

    /// One layer: its blob streamed into the store, staged.
    async fn download(
        &self,
        layer: &PullLayer,
        cancel: &Arc<AtomicBool>,
        progress: &Progress,
    ) -> Result<berth_image::StagedPull, ClientError> {
        let id = short(&layer.digest);
        let failure = Arc::new(Mutex::new(None));
        let fetch = BlobFetch {
            session: Arc::clone(&self.session),
            repository: self.name.path().to_owned(),
            digest: layer.digest.clone(),
            size: layer.size,
            offset: 0,
            body: None,
            failures: 0,
            attempts: 0,
            cancel: Arc::clone(cancel),
            counter: Counter::new(progress.clone(), &id, "Downloading", layer.size),
            progress: progress.clone(),
            id: id.clone(),
            failure: Arc::clone(&failure),
            retry: self.retry,
            done: false,
        };
        let stream = futures_util::stream::unfold(fetch, |mut fetch| async move {
            fetch.next_chunk().await.map(|chunk| (chunk, fetch))
        });
        let stream: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>> = Box::pin(stream);
        let handle = tokio::runtime::Handle::current();
        let images = Arc::clone(&self.images);
        let wanted = layer.clone();
        let staged = tokio::task::spawn_blocking(move || {
            let mut reader = SyncIoBridge::new_with_handle(StreamReader::new(stream), handle);
            images.stage_pulled_layer(&wanted, &mut reader)
        })
        .await
        .map_err(|e| ClientError::Task {
            reason: e.to_string(),
        })?;
        let recorded = failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let staged = match (staged, recorded) {
            (Err(_), Some(error)) => return Err(error),
            (Err(ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. }), None) => {
                return Err(ClientError::LayerDigest {
                    digest: layer.digest.clone(),
                });
            }
            (Err(error), None) => return Err(error.into()),
            (Ok(staged), _) => staged,
        };
        let tar_size = staged.tar_size();
        progress.counts(&id, "Extracting", tar_size, tar_size);
        progress.layer(&id, "Pull complete");
        Ok(staged)
    }
}

/// The bytes of one blob, resumed across dropped connections.
struct BlobFetch {
    session: Arc<Session>,
    repository: String,
    digest: String,
    size: u64,
    /// Bytes received so far.
    offset: u64,
    body: Option<Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>>,
    /// Failures since the last byte received.
    failures: u32,
    /// Requests made, all told.
    attempts: u32,
    cancel: Arc<AtomicBool>,
    counter: Counter,
    progress: Progress,
    id: String,
    /// Why the transfer gave up, for the pull's error (the unpacking only sees a read error).
    failure: Arc<Mutex<Option<ClientError>>>,
    /// First backoff and attempts without progress.
    retry: (std::time::Duration, u32),
    done: bool,
}

/// Requests for one blob, at most (a registry that sends a few bytes per connection).
const MAX_REQUESTS: u32 = 100;

impl BlobFetch {
    fn fail(&mut self, error: ClientError) -> Option<io::Result<Bytes>> {
        self.done = true;
        let message = error.to_string();
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(error);
        Some(Err(io::Error::other(message)))
    }

    /// After a failure: wait and go on, or give up.
    async fn retry_after(&mut self, reason: String) -> Option<Option<io::Result<Bytes>>> {
        self.failures += 1;
        self.body = None;
        let (delay, max_attempts) = self.retry;
        if self.failures >= max_attempts || self.attempts >= MAX_REQUESTS {
            return Some(self.fail(ClientError::LayerDownload {
                digest: self.digest.clone(),
                reason: format!("{reason} (after {} attempts)", self.failures),
            }));
        }
        let wait = delay * 2u32.saturating_pow(self.failures - 1);
        tracing::debug!(digest = %self.digest, offset = self.offset, %reason, ?wait, "retrying a layer download");
        self.progress.send(JsonMessage::status(
            format!(
                "Retrying in {} second{}",
                wait.as_secs().max(1),
                if wait.as_secs() > 1 { "s" } else { "" }
            ),
            Some(&self.id),
        ));
        tokio::time::sleep(wait).await;
        None
    }

    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            if self.cancel.load(Ordering::SeqCst) {
                self.done = true;
                return Some(Err(io::Error::other("cancelled")));
            }
            let Some(body) = self.body.as_mut() else {
                if self.offset >= self.size {
                    self.done = true;
                    self.progress.layer(&self.id, "Verifying Checksum");
                    self.progress.layer(&self.id, "Download complete");
                    return None;
                }
                self.attempts += 1;
                match self
                    .session
                    .get_blob(&self.repository, &self.digest, self.offset)
                    .await
                {
                    Ok((response, start)) => {
                        let stream = super::http::body_stream(response.into_body());
                        let skip = self.offset - start;
                        self.body = Some(if skip > 0 {
                            // The registry ignored the range: skip what is already here.
                            skip_bytes(stream, skip)
                        } else {
                            Box::pin(stream)
                        });
                    }
                    Err(error) if error.is_transient() => {
                        if let Some(out) = self.retry_after(error.to_string()).await {
                            return out;
                        }
                    }
                    Err(error) => return self.fail(error),
                }
                continue;
            };
            match body.next().await {
                Some(Ok(chunk)) => {
                    let len = chunk.len() as u64;
                    if self.offset + len > self.size {
                        return self.fail(ClientError::LayerDownload {
                            digest: self.digest.clone(),
                            reason: format!(
                                "the registry sent more than the manifest's {} bytes",
                                self.size
                            ),
                        });
                    }
                    if len > 0 {
                        self.failures = 0;
                    }
                    self.offset += len;
                    self.counter.update(self.offset);
                    return Some(Ok(chunk));
                }
                Some(Err(error)) => {
                    if let Some(out) = self
                        .retry_after(format!(
                            "connection lost after {} of {} bytes: {error}",
                            self.offset, self.size
                        ))
                        .await
                    {
                        return out;
                    }
                }
                None if self.offset < self.size => {
                    if let Some(out) = self
                        .retry_after(format!(
                            "connection closed after {} of {} bytes",
                            self.offset, self.size
                        ))
                        .await
                    {
                        return out;
                    }
                }
                None => self.body = None,
            }
        }
    }
}

/// A registry error about `name`'s manifest `target`, as Docker words it.
pub(crate) fn translate(name: &Reference, error: ClientError, target: Option<&str>) -> ClientError {
    let familiar = |target: Option<&str>| {
        target
            .and_then(|t| reference_of(name, t).ok())
            .map_or_else(|| name.familiar_name(), |r| r.familiar())
    };
    match (&error, error.registry_code()) {
        (ClientError::Registry { message, .. }, Some(ErrorCode::ManifestUnknown)) => {
            ClientError::ManifestUnknown {
                reference: familiar(target),
                message: message.clone(),
            }
        }
        (
            ClientError::Registry {
                status: 404,
                code: None,
                ..
            },
            None,
        ) => ClientError::ManifestUnknown {
            reference: familiar(target),
            message: "manifest unknown".to_owned(),
        },
        (
            ClientError::Registry {
                code: Some(code),
                message,
                ..
            },
            Some(ErrorCode::Denied | ErrorCode::NameUnknown | ErrorCode::Unauthorized),
        ) => ClientError::PullDenied {
            name: name.familiar_name(),
            detail: format!("{}: {message}", code.to_ascii_lowercase().replace('_', " ")),
        },
        _ => error,
    }
}

/// The reference a target makes (familiar): `name:tag` or `name@digest`.
fn reference_of(name: &Reference, target: &str) -> Result<Reference, ClientError> {
    let text = if target.contains(':') {
        format!("{name}@{target}")
    } else {
        format!("{name}:{target}")
    };
    parse_reference(&text)
}

/// `stream` without its first `skip` bytes.
fn skip_bytes(
    stream: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    skip: u64,
) -> Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>> {
    let mut left = skip;
    Box::pin(stream.filter_map(move |chunk| {
        let out = match chunk {
            Ok(mut chunk) if left > 0 => {
                let drop = left.min(chunk.len() as u64);
                left -= drop;
                let rest = chunk.split_off(usize::try_from(drop).unwrap_or(chunk.len()));
                (!rest.is_empty()).then_some(Ok(rest))
            }
            other => Some(other),
        };
        std::future::ready(out)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let (default, explicit) = parse_platform(None).expect("default");
        assert!(!explicit);
        assert_eq!(default.os, "linux");
        let (p, explicit) = parse_platform(Some("linux/arm64/v8")).expect("arm");
        assert!(explicit);
        assert_eq!(platform_text(&p), "linux/arm64/v8");
        assert_eq!(
            parse_platform(Some("linux/x86_64"))
                .expect("x")
                .0
                .architecture,
            "amd64"
        );
        for bad in ["linux/", "a/b/c/d", "linux/amd 64"] {
            assert!(parse_platform(Some(bad)).is_err(), "{bad}");
        }
        let entry = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
        };
        let mut wanted = entry.clone();
        wanted.variant = None;
        assert!(platform_matches(&entry, &wanted));
        wanted.variant = Some("v7".into());
        assert!(!platform_matches(&entry, &wanted));
        wanted.architecture = "amd64".into();
        wanted.variant = None;
        assert!(!platform_matches(&entry, &wanted));
    }
}
