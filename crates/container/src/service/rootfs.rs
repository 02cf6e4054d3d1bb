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
        let changes = without_init_layer(changes);
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

/// What Docker keeps in a container's hidden init layer (`daemon/initlayer`): mount points
/// and files berth makes in the upper dir too, never the container's doing, so never reported.
const INIT_LAYER: [&str; 10] = [
    "/dev/pts",
    "/dev/shm",
    "/dev/console",
    "/proc",
    "/sys",
    "/.dockerenv",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/mtab",
];

/// `changes` without the init layer's paths. A directory holding one (`/dev`, `/etc`) goes too,
/// unless the container changed something else in it: then it is reported modified, as the
/// init layer already had it.
fn without_init_layer(changes: Vec<berth_image::Change>) -> Vec<berth_image::Change> {
    let under = |path: &str, dir: &str| path.starts_with(&format!("{dir}/"));
    let kept: Vec<berth_image::Change> = changes
        .into_iter()
        .filter(|c| !INIT_LAYER.contains(&c.path.as_str()))
        .collect();
    kept.iter()
        .filter_map(|c| {
            if !INIT_LAYER.iter().any(|t| under(t, &c.path)) {
                return Some(c.clone());
            }
            kept.iter().any(|o| under(&o.path, &c.path)).then(|| {
                let mut c = c.clone();
                if c.kind == berth_image::ChangeKind::Added {
                    c.kind = berth_image::ChangeKind::Modified;
                }
                c
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use berth_image::{Change, ChangeKind};

    use super::*;

    fn change(path: &str, kind: ChangeKind) -> Change {
        Change {
            path: path.into(),
            kind,
        }
    }

    #[test]
    fn init_layer_paths_are_not_changes() {
        let made = |p| change(p, ChangeKind::Added);
        // An image without /dev, /proc, /sys or /etc: only what berth made.
        let berth_made = vec![
            made("/dev"),
            made("/dev/pts"),
            made("/dev/shm"),
            made("/etc"),
            made("/etc/hosts"),
            made("/proc"),
            made("/sys"),
        ];
        assert_eq!(without_init_layer(berth_made), Vec::new());
        // The container wrote /etc/motd and /tmp/x: those stay; /etc is modified.
        let mixed = vec![
            made("/etc"),
            made("/etc/hostname"),
            made("/etc/motd"),
            change("/tmp", ChangeKind::Modified),
            made("/tmp/x"),
        ];
        assert_eq!(
            without_init_layer(mixed),
            vec![
                change("/etc", ChangeKind::Modified),
                made("/etc/motd"),
                change("/tmp", ChangeKind::Modified),
                made("/tmp/x"),
            ]
        );
    }
}
