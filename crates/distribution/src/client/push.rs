//! `push`: a local tag (or every tag of a repository) to its registry.
//!
//! Per layer, the cheapest way that works: a blob the repository already has (`HEAD`) is
//! skipped ("Layer already exists"); a blob another repository of the same registry holds is
//! mounted ("Mounted from …"); a blob the store keeps (pulled, or compressed by an earlier
//! push) is sent as is, so the digests are the ones it had; only a layer with none of those
//! is compressed, once, on every core, while it uploads, and the result kept. At most
//! `--max-concurrent-uploads` layers move at once; the config follows, then the manifest,
//! last, written as Docker writes it (so the same image gets the same digest).

use std::sync::Arc;

use berth_api::progress::JsonMessage;
use berth_image::manifest::{MEDIA_DOCKER_CONFIG, MEDIA_OCI_CONFIG};
use berth_image::{LayerBlob, LayerEncoding, PushImage, PushLayer, Reference};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use super::auth::AuthConfig;
use super::error::ClientError;
use super::http;
use super::progress::{Counter, Progress, short};
use super::session::{Mount, Session};
use super::{Distribution, parse_reference};

/// What to push.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    /// `name[:tag]`; without a tag, every tag of the repository.
    pub reference: String,
    /// Credentials (`X-Registry-Auth`).
    pub auth: AuthConfig,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushSummary {
    /// Per tag pushed: the tag, the manifest digest, its size.
    pub pushed: Vec<(String, String, usize)>,
}

/// Upload chunks of a stored blob.
const CHUNK: usize = 1024 * 1024;

#[derive(Serialize)]
struct ManifestDescriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    size: u64,
    digest: &'a str,
}

#[derive(Serialize)]
struct ManifestDocument<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: ManifestDescriptor<'a>,
    layers: Vec<ManifestDescriptor<'a>>,
}

/// The manifest of an image whose layers went as `blobs`: Docker's schema 2 when every blob
/// has a Docker media type (zstd has none: then OCI), laid out as Docker's
/// `json.MarshalIndent(m, "", "   ")` writes it. Returns the media type and the bytes.
pub(crate) fn manifest_bytes(
    config_digest: &str,
    config_size: u64,
    blobs: &[LayerBlob],
) -> (&'static str, Vec<u8>) {
    let encodings: Vec<LayerEncoding> = blobs
        .iter()
        .map(|b| b.encoding().unwrap_or(LayerEncoding::Gzip))
        .collect();
    let docker = encodings.iter().all(|e| e.docker_media_type().is_some());
    let (media_type, config_type) = if docker {
        (
            berth_image::manifest::MEDIA_DOCKER_MANIFEST,
            MEDIA_DOCKER_CONFIG,
        )
    } else {
        (berth_image::manifest::MEDIA_OCI_MANIFEST, MEDIA_OCI_CONFIG)
    };
    let document = ManifestDocument {
        schema_version: 2,
        media_type,
        config: ManifestDescriptor {
            media_type: config_type,
            size: config_size,
            digest: config_digest,
        },
        layers: blobs
            .iter()
            .zip(&encodings)
            .map(|(blob, encoding)| ManifestDescriptor {
                media_type: if docker {
                    encoding
                        .docker_media_type()
                        .unwrap_or(encoding.oci_media_type())
                } else {
                    encoding.oci_media_type()
                },
                size: blob.size,
                digest: &blob.digest,
            })
            .collect(),
    };
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut bytes,
        serde_json::ser::PrettyFormatter::with_indent(b"   "),
    );
    document
        .serialize(&mut serializer)
        .expect("manifests always serialize");
    (media_type, bytes)
}

impl Distribution {
    /// The local tags a push sends: the one named, or every tag of the repository. An image
    /// missing locally is the request's error (Docker's words).
    pub async fn push_targets(&self, request: &PushRequest) -> Result<Vec<Reference>, ClientError> {
        let reference = parse_reference(&request.reference)?;
        if reference.digest().is_some() {
            return Err(ClientError::InvalidReference {
                reference: request.reference.clone(),
                source: berth_image::ReferenceError::Format,
            });
        }
        let images = Arc::clone(&self.images);
        let name = reference.name();
        let tags: Vec<Reference> = if reference.tag().is_some() {
            let wanted = reference.clone();
            let found =
                berth_fs::blocking(move || images.resolve(&wanted.to_string()).is_ok()).await?;
            if found {
                vec![reference.clone()]
            } else {
                Vec::new()
            }
        } else {
            let records = berth_fs::blocking(move || images.list()).await?;
            let mut tags: Vec<Reference> = records
                .iter()
                .flat_map(|r| r.repo_tags.iter())
                .filter_map(|t| Reference::parse(t).ok())
                .filter(|r| r.name() == name)
                .collect();
            tags.sort_by_key(Reference::to_string);
            tags.dedup();
            tags
        };
        if tags.is_empty() {
            return Err(ClientError::NoLocalTag {
                name: reference.familiar(),
            });
        }
        Ok(tags)
    }

    /// Pushes `targets` (from [`Distribution::push_targets`]), reporting to `progress`.
    pub async fn push(
        &self,
        targets: &[Reference],
        auth: &AuthConfig,
        progress: &Progress,
    ) -> Result<PushSummary, ClientError> {
        let Some(first) = targets.first() else {
            return Ok(PushSummary { pushed: Vec::new() });
        };
        progress.status(format!(
            "The push refers to repository [{}]",
            first.familiar_name()
        ));
        let mut pushed = Vec::new();
        let mut session: Option<Session> = None;
        for target in targets {
            let images = Arc::clone(&self.images);
            let wanted = target.to_string();
            let image = berth_fs::blocking(move || images.push_image(&wanted)).await??;
            // Mount sources: other repositories of this registry known to hold a layer.
            let sources: Vec<String> = image
                .layers
                .iter()
                .flat_map(|l| l.blobs.iter())
                .flat_map(|b| b.sources.iter())
                .filter_map(|s| Reference::parse(s).ok())
                .filter(|r| r.domain() == target.domain() && r.path() != target.path())
                .map(|r| r.path().to_owned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .take(8)
                .collect();
            if session.is_none() {
                session = Some(
                    self.session(target, &["pull", "push"], &sources, auth)
                        .await?,
                );
            }
            let session = session.as_ref().expect("opened above");
            let (tag, digest, size) = self.push_image(session, target, &image, progress).await?;
            progress.status(format!("{tag}: digest: {digest} size: {size}"));
            progress.send(JsonMessage::aux(serde_json::json!({
                "Tag": tag, "Digest": digest, "Size": size,
            })));
            let images = Arc::clone(&self.images);
            let id = image.id.clone();
            let digest_reference = parse_reference(&format!("{}@{digest}", target.name()))?;
            berth_fs::blocking(move || images.add_reference(&id, &digest_reference)).await??;
            pushed.push((tag, digest, size));
        }
        Ok(PushSummary { pushed })
    }

    /// One tag: layers, config, manifest. Returns the tag, the manifest's digest and size.
    async fn push_image(
        &self,
        session: &Session,
        target: &Reference,
        image: &PushImage,
        progress: &Progress,
    ) -> Result<(String, String, usize), ClientError> {
        let repository = target.path();
        for layer in &image.layers {
            progress.layer(&short(&layer.diff_id), "Preparing");
        }
        let uploads = self.options.max_concurrent_uploads;
        for layer in image.layers.iter().skip(uploads) {
            progress.layer(&short(&layer.diff_id), "Waiting");
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(uploads));
        let jobs = image.layers.iter().map(|layer| {
            let permits = Arc::clone(&permits);
            async move {
                let _permit = permits
                    .acquire()
                    .await
                    .map_err(|_| ClientError::Cancelled)?;
                self.push_layer(session, target, layer, progress).await
            }
        });
        let blobs = futures_util::future::try_join_all(jobs).await?;
        let config_digest = image.id.as_str();
        if session
            .blob_exists(repository, config_digest)
            .await?
            .is_none()
        {
            let location = session.start_upload(repository).await?;
            let size = image.config_bytes.len() as u64;
            session
                .put_blob(
                    &location,
                    config_digest,
                    size,
                    http::full(image.config_bytes.clone()),
                )
                .await
                .map_err(|e| upload_error("config", config_digest, e))?;
        }
        let (media_type, bytes) =
            manifest_bytes(config_digest, image.config_bytes.len() as u64, &blobs);
        let tag = target.tag().unwrap_or(berth_image::DEFAULT_TAG).to_owned();
        let size = bytes.len();
        let digest = session
            .put_manifest(repository, &tag, media_type, Bytes::from(bytes))
            .await?;
        Ok((tag, digest, size))
    }

    /// One layer, the cheapest way that works; the blob that now carries it there.
    async fn push_layer(
        &self,
        session: &Session,
        target: &Reference,
        layer: &PushLayer,
        progress: &Progress,
    ) -> Result<LayerBlob, ClientError> {
        let id = short(&layer.diff_id);
        let repository = target.path();
        let here = target.name();
        let known: Vec<&LayerBlob> = layer
            .blobs
            .iter()
            .filter(|b| b.encoding().is_some())
            .collect();
        let record = |blob: &LayerBlob| {
            let mut blob = blob.clone();
            blob.sources = vec![here.clone()];
            blob
        };
        let remember = |blob: LayerBlob| async move {
            let images = Arc::clone(&self.images);
            let diff_id = layer.diff_id.clone();
            let saved = blob.clone();
            berth_fs::blocking(move || images.record_layer_blob(&diff_id, &saved)).await??;
            Ok::<LayerBlob, ClientError>(blob)
        };
        // Already there?
        for blob in &known {
            let listed_here = blob.sources.contains(&here);
            if (listed_here || blob.stored)
                && session
                    .blob_exists(repository, &blob.digest)
                    .await?
                    .is_some()
            {
                progress.layer(&id, "Layer already exists");
                return remember(record(blob)).await;
            }
        }
        // In another repository of this registry?
        for blob in &known {
            for source in blob.sources.iter().rev() {
                let Ok(from) = Reference::parse(source) else {
                    continue;
                };
                if from.domain() != target.domain() || from.path() == repository {
                    continue;
                }
                match session.mount(repository, &blob.digest, from.path()).await {
                    Ok(Mount::Mounted) => {
                        progress.layer(&id, &format!("Mounted from {}", from.path()));
                        return remember(record(blob)).await;
                    }
                    Ok(Mount::Upload(location)) => session.cancel_upload(&location).await,
                    Err(error) => {
                        tracing::debug!(%error, digest = %blob.digest, "mount refused");
                    }
                }
            }
        }
        let location = session.start_upload(repository).await?;
        let blob = match layer.stored_blob() {
            Some(stored) => {
                self.upload_stored(session, &location, stored, &id, progress)
                    .await
                    .map_err(|e| upload_error("layer", &stored.digest, e))?;
                record(stored)
            }
            None => {
                let blob = self
                    .upload_compressed(session, &location, &layer.diff_id, &id, progress)
                    .await?;
                record(&blob)
            }
        };
        progress.layer(&id, "Pushed");
        remember(blob).await
    }

    /// Sends a blob the store keeps, in one `PUT`.
    async fn upload_stored(
        &self,
        session: &Session,
        location: &str,
        blob: &LayerBlob,
        id: &str,
        progress: &Progress,
    ) -> Result<(), ClientError> {
        let images = Arc::clone(&self.images);
        let digest = blob.digest.clone();
        let (file, size) = berth_fs::blocking(move || images.open_blob(&digest)).await??;
        let counter = Arc::new(Counter::new(progress.clone(), id, "Pushing", size));
        let (sender, receiver) = mpsc::channel::<std::io::Result<Bytes>>(4);
        let reading = tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let mut file = file;
            let mut sent = 0u64;
            loop {
                let mut buffer = vec![0u8; CHUNK];
                let n = match file.read(&mut buffer) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = sender.blocking_send(Err(e));
                        return;
                    }
                };
                buffer.truncate(n);
                sent += n as u64;
                counter.update(sent);
                if sender.blocking_send(Ok(Bytes::from(buffer))).is_err() {
                    return;
                }
            }
        });
        let body = http::streamed(http::receiver_stream(receiver));
        let result = session.put_blob(location, &blob.digest, size, body).await;
        if result.is_err() {
            session.cancel_upload(location).await;
        }
        reading.await?;
        result
    }

    /// Compresses a layer while it uploads (a chunked `PATCH`), keeps the result; the blob.
    async fn upload_compressed(
        &self,
        session: &Session,
        location: &str,
        diff_id: &str,
        id: &str,
        progress: &Progress,
    ) -> Result<LayerBlob, ClientError> {
        let (sender, receiver) = mpsc::channel::<std::io::Result<Bytes>>(8);
        let images = Arc::clone(&self.images);
        let layer = diff_id.to_owned();
        let counter = Counter::new(progress.clone(), id, "Pushing", 0);
        let compressing = tokio::task::spawn_blocking(move || {
            let mut sink = ChannelWriter {
                sender: &sender,
                sent: 0,
                counter: &counter,
            };
            let result = images.compress_layer(&layer, &mut sink);
            if let Err(error) = &result {
                let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
            }
            result
        });
        let body = http::streamed(http::receiver_stream(receiver));
        let patched = session.patch_blob(location, body).await;
        let compressed = compressing.await?;
        let blob = match (compressed, patched) {
            (Err(error), _) => {
                session.cancel_upload(location).await;
                return Err(upload_error("layer", diff_id, ClientError::from(error)));
            }
            (Ok(_), Err(error)) => {
                session.cancel_upload(location).await;
                return Err(upload_error("layer", diff_id, error));
            }
            (Ok(blob), Ok(next)) => {
                session
                    .finish_upload(&next, &blob.digest)
                    .await
                    .map_err(|e| upload_error("layer", &blob.digest, e))?;
                blob
            }
        };
        Ok(blob)
    }
}

/// An upload's failure, saying what was being sent (a refusal of credentials stays one).
fn upload_error(what: &'static str, digest: &str, error: ClientError) -> ClientError {
    match error {
        ClientError::Unauthorized { .. } => error,
        _ => ClientError::Upload {
            what,
            digest: digest.to_owned(),
            reason: error.to_string(),
        },
    }
}

/// Hands what a compression writes to an upload's body, counting it.
struct ChannelWriter<'a> {
    sender: &'a mpsc::Sender<std::io::Result<Bytes>>,
    sent: u64,
    counter: &'a Counter,
}

impl std::io::Write for ChannelWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sender
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped")
            })?;
        self.sent += buf.len() as u64;
        self.counter.update(self.sent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_written_as_docker_writes_them() {
        let blob = LayerBlob {
            digest: format!("sha256:{}", "a".repeat(64)),
            media_type: berth_image::manifest::MEDIA_OCI_LAYER_GZIP.into(),
            size: 2,
            stored: true,
            sources: Vec::new(),
        };
        let config = format!("sha256:{}", "c".repeat(64));
        let (media_type, bytes) = manifest_bytes(&config, 1469, std::slice::from_ref(&blob));
        assert_eq!(media_type, berth_image::manifest::MEDIA_DOCKER_MANIFEST);
        let expected = format!(
            "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n   \"config\": {{\n      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n      \"size\": 1469,\n      \"digest\": \"{config}\"\n   }},\n   \"layers\": [\n      {{\n         \"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\",\n         \"size\": 2,\n         \"digest\": \"{}\"\n      }}\n   ]\n}}",
            blob.digest
        );
        assert_eq!(String::from_utf8(bytes).expect("utf8"), expected);
        let mut zstd = blob;
        zstd.media_type = berth_image::manifest::MEDIA_OCI_LAYER_ZSTD.into();
        let (media_type, bytes) = manifest_bytes(&config, 1, &[zstd]);
        assert_eq!(media_type, berth_image::manifest::MEDIA_OCI_MANIFEST);
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(
            text.contains(MEDIA_OCI_CONFIG) && text.contains("tar+zstd"),
            "{text}"
        );
    }
}
