//! A builder's `RUN` step: a container created from a config, its output streamed while it
//! runs, its writable layer committed as one more image layer with the builder's history line.
//! The builder removes the container afterwards (`rm`), whatever happened.
use std::future::Future;
use std::path::PathBuf;

use berth_api::models::ContainerCreateBody;
use berth_image::{CommitRequest, ImageRecord, RunConfig};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::commit::ENGINE_FILES;
use super::{AttachOptions, ContainerService, Result, WaitCondition, blocking};
use crate::ContainerError;

/// How a step's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepExit {
    /// The process exited with this code.
    Exited(i64),
    /// The caller cancelled the step; the container was killed.
    Cancelled,
}

impl ContainerService {
    /// Creates a build step's container (not started). Its name is generated; the caller
    /// removes it with [`ContainerService::remove`] once done.
    pub async fn create_step(&self, body: ContainerCreateBody) -> Result<String> {
        Ok(self.create(None, body).await?.id)
    }

    /// Starts a step container and waits for it to exit, sending what it writes (stdout and
    /// stderr, in order) to `output`. If `cancel` resolves first the container is killed.
    pub async fn run_step(
        &self,
        id: &str,
        output: mpsc::Sender<Bytes>,
        cancel: impl Future<Output = ()>,
    ) -> Result<StepExit> {
        let waiter = self.wait(id, WaitCondition::NextExit).await?;
        let attachment = self
            .attach(
                id,
                AttachOptions {
                    stdout: true,
                    stderr: true,
                    stream: true,
                    ..AttachOptions::default()
                },
            )
            .await?;
        let tty = attachment.tty;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(attachment.run(Box::new(theirs)));
        let pump = pump_output(ours, tty, output);
        self.start(id).await?;
        tokio::pin!(cancel);
        let finished = async {
            pump.await;
            waiter.result().await
        };
        tokio::select! {
            response = finished => Ok(StepExit::Exited(response.status_code)),
            () = &mut cancel => {
                if let Err(error) = self.kill(id, Some("KILL".into())).await {
                    tracing::debug!(container_id = id, %error, "killing a cancelled build step");
                }
                Ok(StepExit::Cancelled)
            }
        }
    }

    /// Commits a step container's writable layer on top of its image: `config` becomes the
    /// new image's defaults and `created_by` its history line. `exclude` lists paths (relative
    /// to the root) made only for the step's own mounts, left out with the engine's files.
    pub async fn commit_step(
        &self,
        id: &str,
        config: RunConfig,
        created_by: String,
        exclude: Vec<PathBuf>,
    ) -> Result<ImageRecord> {
        let mut paths: Vec<PathBuf> = ENGINE_FILES.iter().map(PathBuf::from).collect();
        paths.extend(exclude);
        let request = CommitRequest {
            container_id: self.lookup(id)?.id.clone(),
            config,
            changes: Vec::new(),
            reference: None,
            author: None,
            comment: None,
            created_by,
            exclude: paths,
        };
        let images = self.images.clone();
        blocking(move || images.commit(&request))
            .await?
            .map_err(|source| ContainerError::Image { source })
    }
}

/// Reads the attach stream (framed unless `tty`) and forwards the payloads.
async fn pump_output(mut stream: tokio::io::DuplexStream, tty: bool, output: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; 32 * 1024];
    if tty {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0
                || output
                    .send(Bytes::copy_from_slice(&buf[..n]))
                    .await
                    .is_err()
            {
                break;
            }
        }
        return;
    }
    let mut header = [0u8; 8];
    loop {
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let mut len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        while len > 0 {
            let want = len.min(buf.len());
            if stream.read_exact(&mut buf[..want]).await.is_err() {
                return;
            }
            len -= want;
            // A gone receiver only means nobody shows the output: keep draining.
            let _ = output.send(Bytes::copy_from_slice(&buf[..want])).await;
        }
    }
}
