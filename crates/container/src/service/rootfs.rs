//! The container's root filesystem as a whole: `diff` (changes) and `export`.

use std::sync::Arc;

use super::{ContainerService, Result, blocking};

impl ContainerService {
    /// A container's id and the overlay dirs of its root filesystem.
    pub(super) async fn rootfs_of(
        &self,
        reference: &str,
    ) -> Result<(String, berth_image::RootfsDirs)> {
        let (id, dirs, _) = self.rootfs_and_mapping(reference).await?;
        Ok((id, dirs))
    }

    /// [`Self::rootfs_of`], with the user-namespace mapping the root was made for.
    async fn rootfs_and_mapping(
        &self,
        reference: &str,
    ) -> Result<(
        String,
        berth_image::RootfsDirs,
        Option<berth_image::IdMapping>,
    )> {
        let entry = self.lookup(reference)?;
        let (id, image_id) = {
            let rec = entry.rec.lock().await;
            (rec.id.clone(), rec.image_id.clone())
        };
        let dirs = self.images.rootfs(&id, &image_id)?;
        let map = self.images.rootfs_mapping(&id);
        Ok((id, dirs, map))
    }

    /// `GET /containers/{id}/changes`: what the container changed in its root filesystem.
    pub async fn changes(
        &self,
        reference: &str,
    ) -> Result<Vec<berth_api::models::FilesystemChange>> {
        use berth_api::models::{ChangeType, FilesystemChange};
        let (_, dirs) = self.rootfs_of(reference).await?;
        let changes = blocking(move || berth_image::changes(&dirs)).await??;
        // The files berth bind-mounts (and so creates in the upper dir) are not the
        // container's doing; Docker keeps them in a hidden init layer and never reports them.
        // A directory reported changed only because of them goes too.
        const MOUNT_TARGETS: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];
        let kept: Vec<berth_image::Change> = changes
            .iter()
            .filter(|c| !MOUNT_TARGETS.contains(&c.path.as_str()))
            .cloned()
            .collect();
        let changes: Vec<berth_image::Change> = kept
            .iter()
            .filter(|c| {
                c.kind != berth_image::ChangeKind::Modified
                    || !MOUNT_TARGETS
                        .iter()
                        .any(|t| t.starts_with(&format!("{}/", c.path)))
                    || kept
                        .iter()
                        .any(|o| o.path.starts_with(&format!("{}/", c.path)))
            })
            .cloned()
            .collect();
        Ok(changes
            .into_iter()
            .map(|c| FilesystemChange {
                path: c.path,
                kind: match c.kind {
                    berth_image::ChangeKind::Modified => ChangeType::_0,
                    berth_image::ChangeKind::Added => ChangeType::_1,
                    berth_image::ChangeKind::Deleted => ChangeType::_2,
                },
            })
            .collect())
    }

    /// `GET /containers/{id}/export`: the container's root filesystem as a tar stream, written
    /// by a blocking task as the reader consumes it. A remapped container's owners are written
    /// as it sees them (as dockerd's), so the archive is the same as an unremapped one's.
    pub async fn export(&self, reference: &str) -> Result<ExportStream> {
        let (id, dirs, map) = self.rootfs_and_mapping(reference).await?;
        let (writer, reader) = tokio::io::duplex(256 * 1024);
        let failed = Arc::new(std::sync::Mutex::new(None));
        let failure = Arc::clone(&failed);
        // Not awaited: the task streams into the reader the daemon sends out.
        tokio::task::spawn_blocking(move || {
            let mut out = tokio_util::io::SyncIoBridge::new(writer);
            if let Err(e) = berth_image::export_mapped(&dirs, map.as_ref(), &mut out) {
                tracing::warn!(container_id = %id, "export failed: {e}");
                // Before the writer goes: the reader's EOF then reads as this error, and the
                // client sees the response end in a failure, never as a complete archive.
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            }
            drop(out);
        });
        Ok(ExportStream { reader, failed })
    }
}

/// The tar stream of `export`: its end is an error when the export failed part way.
#[derive(Debug)]
pub struct ExportStream {
    reader: tokio::io::DuplexStream,
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

impl tokio::io::AsyncRead for ExportStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.reader).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = polled
            && buf.filled().len() == before
            && let Some(message) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            return std::task::Poll::Ready(Err(std::io::Error::other(message)));
        }
        polled
    }
}
