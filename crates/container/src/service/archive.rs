//! `HEAD`, `GET` and `PUT /containers/{id}/archive`: stat, copy out, copy in (`docker cp`).
//!
//! Every path is resolved inside the container's root with `openat2(RESOLVE_IN_ROOT)`
//! ([`berth_volume::Root`]), so a symlink the container planted (`/x -> /`, `../../..`) can
//! only ever lead back into the container. The root seen is the container's whole view,
//! volumes and binds included:
//!
//! - a running container: its own root, `/proc/<pid>/root` (its mount namespace, its mounts);
//! - a stopped one: a private mount namespace on a thread of its own, holding the overlay and
//!   the container's binds and volumes (each mounted from an `O_PATH` descriptor). When the
//!   thread ends the namespace goes and every mount with it: nothing can leak onto the host.
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_image::RootfsDirs;
pub use berth_volume::archive::PathStat;
use berth_volume::archive::{self as tar_io, ExtractOptions};
use berth_volume::mounts::{MountKind, MountPoint};
use berth_volume::{Root, VolumeError};
use bytes::Bytes;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use tokio::sync::{mpsc, oneshot};

use super::{ContainerService, Entry, Result, mounts};
use crate::ContainerError;
use crate::store::Record;

/// A tar stream out of a container, in chunks.
pub type ArchiveStream = mpsc::Receiver<io::Result<Bytes>>;
/// A tar stream into a container, in chunks (the request body).
pub type ArchiveBody = mpsc::Receiver<Bytes>;

/// Options of `PUT /containers/{id}/archive`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// Refuse to replace a directory with a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Own everything by the container's user (`docker cp -a`).
    pub copy_uid_gid: bool,
}

/// Chunk size of streams out (and of the client's writes in).
const CHUNK: usize = 1 << 20;

/// What a container's filesystem looks like from outside.
#[derive(Debug, Clone)]
struct View {
    /// The container's name, for messages.
    name: String,
    /// The init's pid when running.
    pid: Option<i64>,
    rootfs: RootfsDirs,
    /// Mount points with their host sources resolved (volumes mounted).
    mounts: Vec<MountPoint>,
    readonly_rootfs: bool,
    /// Where a stopped container's root is mounted (inside a private namespace).
    scratch: PathBuf,
    /// `Config.User` resolved to ids, for `copyUIDGID`.
    user_ids: Option<(u32, u32)>,
    /// The user-namespace mapping of its root (`--userns-remap`): archives carry container
    /// ids, files are written with host ids (as dockerd's `UIDMaps` on `cp`).
    map: Option<berth_image::IdMapping>,
}

impl ContainerService {
    async fn view_of(&self, reference: &str, rec: &Record) -> Result<View> {
        let images = self.images.clone();
        let (id, image_id) = (rec.id.clone(), rec.image_id.clone());
        let (rootfs, map) = super::blocking(move || {
            images
                .rootfs(&id, &image_id)
                .map(|dirs| (dirs, images.rootfs_mapping(&id)))
        })
        .await??;
        // A volume with device options is mounted on the host first: off the async threads.
        let (volumes, mut mounts) = (self.volumes.clone(), rec.mount_points.clone());
        let mounts = super::blocking(move || -> Result<Vec<MountPoint>> {
            for m in mounts.iter_mut() {
                if m.kind == MountKind::Volume {
                    m.source = volumes.mount(&m.name)?.display().to_string();
                }
            }
            Ok(mounts)
        })
        .await??;
        let user = rec.config.user.clone().unwrap_or_default();
        let user_ids = if user.is_empty() {
            None
        } else {
            let rootfs = rootfs.clone();
            super::blocking(move || crate::spec::resolve_user(&user, &rootfs))
                .await?
                .ok()
                .map(|u| (u.uid, u.gid))
        };
        Ok(View {
            name: reference.to_string(),
            pid: (rec.state.status.is_alive() && rec.state.pid > 0).then_some(rec.state.pid),
            rootfs,
            mounts,
            readonly_rootfs: rec.host_config.readonly_rootfs.unwrap_or(false),
            scratch: self
                .cfg
                .run_root
                .join("archive")
                .join(hex::encode(rand::random::<[u8; 8]>())),
            user_ids,
            map,
        })
    }

    /// `HEAD /containers/{id}/archive?path=`.
    pub async fn archive_stat(&self, reference: &str, path: &str) -> Result<PathStat> {
        let entry: Arc<Entry> = self.lookup(reference)?;
        let rec = entry.rec.lock().await;
        let view = self.view_of(reference, &rec).await?;
        // A stopped container stays stopped while its root is mounted for us (as Docker
        // holds the container's lock): a start would mount the same layers a second time.
        let _held = view.pid.is_none().then_some(rec);
        let path = path.to_string();
        run_in_view(view, move |root, view| {
            Ok(tar_io::stat(root, &path, &view.name)?)
        })
        .await
    }

    /// `GET /containers/{id}/archive?path=`: the stat, then the tar stream.
    pub async fn archive_get(
        &self,
        reference: &str,
        path: &str,
    ) -> Result<(PathStat, ArchiveStream)> {
        let entry: Arc<Entry> = self.lookup(reference)?;
        let me = self.me.upgrade().ok_or(ContainerError::Stopped {
            what: "the container service",
        })?;
        let (reference, path) = (reference.to_string(), path.to_string());
        let (stat_tx, stat_rx) = oneshot::channel::<Result<PathStat>>();
        // Whoever answers first: the stat, or the error that came before it.
        let stat_tx = Arc::new(std::sync::Mutex::new(Some(stat_tx)));
        let answer = move |slot: &std::sync::Mutex<Option<oneshot::Sender<Result<PathStat>>>>,
                           r: Result<PathStat>| {
            if let Some(tx) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                // The request may have been dropped: then nobody waits for the answer.
                let _ = tx.send(r);
            }
        };
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        tokio::spawn(async move {
            // A stopped container stays stopped while the copy streams (see `archive_stat`).
            let rec = entry.rec.lock().await;
            let view = match me.view_of(&reference, &rec).await {
                Ok(v) => v,
                Err(e) => return answer(&stat_tx, Err(e)),
            };
            let _held = view.pid.is_none().then_some(rec);
            let inner = Arc::clone(&stat_tx);
            let done = run_in_view(view, move |root, view| {
                let stat = match tar_io::stat(root, &path, &view.name) {
                    Ok(s) => s,
                    Err(e) => {
                        answer(&inner, Err(ContainerError::from(e)));
                        return Ok(());
                    }
                };
                answer(&inner, Ok(stat));
                let out = ChannelWriter {
                    tx: tx.clone(),
                    buf: Vec::with_capacity(CHUNK),
                };
                let base = tar_io::base_name(&path);
                match tar_io::write_tar(root, &path, &base, &view.name, view.map.as_ref(), out) {
                    Ok(mut w) => {
                        // Fails only when the client is gone, which ends the copy anyway.
                        let _ = w.flush();
                    }
                    Err(e) => {
                        // The error travels as the stream's end (headers are out); if the
                        // client is gone there is no one left to tell.
                        let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                    }
                }
                Ok(())
            })
            .await;
            if let Err(error) = done {
                tracing::warn!(%error, "archive stream failed");
                answer(&stat_tx, Err(error));
            }
        });
        let stat = stat_rx.await.map_err(|_| ContainerError::Stopped {
            what: "archive reader",
        })??;
        Ok((stat, rx))
    }

    /// `PUT /containers/{id}/archive?path=`: applies the tar stream `body` (plain, gzip or zstd)
    /// under the directory `path`.
    pub async fn archive_put(
        &self,
        reference: &str,
        path: &str,
        options: PutOptions,
        body: ArchiveBody,
    ) -> Result<()> {
        let entry: Arc<Entry> = self.lookup(reference)?;
        let rec = entry.rec.lock().await;
        let view = self.view_of(reference, &rec).await?;
        let _held = view.pid.is_none().then_some(rec);
        let path = path.to_string();
        run_in_view(view, move |root, view| {
            let st = root
                .stat(Path::new(&path))
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENOENT | libc::ENOTDIR) => VolumeError::PathNotFound {
                        path: path.clone(),
                        container: view.name.clone(),
                    },
                    _ => VolumeError::io("stat", &path, e),
                })?;
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(VolumeError::BadArchive {
                    message: "extraction point is not a directory".into(),
                }
                .into());
            }
            let real = root
                .canonical(Path::new(&path))
                .map_err(|e| VolumeError::io("resolve", &path, e))?;
            match mounts::covering(&view.mounts, &real.display().to_string()) {
                Some(m) if !m.rw => {
                    return Err(VolumeError::ReadOnly {
                        message: "mounted volume is marked read-only".into(),
                    }
                    .into());
                }
                None if view.readonly_rootfs => {
                    return Err(VolumeError::ReadOnly {
                        message: "container rootfs is marked read-only".into(),
                    }
                    .into());
                }
                _ => {}
            }
            let opts = ExtractOptions {
                no_overwrite_dir_non_dir: options.no_overwrite_dir_non_dir,
                chown: if options.copy_uid_gid {
                    view.user_ids
                } else {
                    None
                },
                skip_whiteouts: false,
                map: view.map.clone(),
            };
            let mut input = ChannelReader {
                rx: body,
                cur: Bytes::new(),
            };
            // Compressed as Docker takes it too (gzip; zstd), or a plain tar.
            let mut tar =
                berth_image::decompressed(&mut input).map_err(|e| VolumeError::BadArchive {
                    message: e.to_string(),
                })?;
            tar_io::extract(root, &real.display().to_string(), &mut tar, &opts)?;
            drop(tar);
            // The archive ends before the body does (tar's end blocks, a client's padding):
            // read the rest, so the client's upload completes before the answer.
            let _ = io::copy(&mut input, &mut io::sink()); // what is left is not ours to judge
            Ok(())
        })
        .await
    }
}

/// Runs `f` on a thread of its own with the container's root; the result comes back here.
async fn run_in_view<T: Send + 'static>(
    view: View,
    f: impl FnOnce(&Root, &View) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("berth-archive".into())
        .spawn(move || {
            let result = match &view.pid {
                Some(pid) => {
                    let path = PathBuf::from(format!("/proc/{pid}/root"));
                    act_as_mapped_root(view.map.as_ref())
                        .and_then(|()| Root::open(&path).map_err(super::io_err("open the root", &path)))
                        .and_then(|root| f(&root, &view))
                }
                None => {
                    // The namespace is this thread's alone and dies with it; the scratch dir
                    // is only ever a mount point inside it.
                    let r = mount_stopped(&view).and_then(|root| f(&root, &view));
                    if let Err(error) = std::fs::remove_dir(&view.scratch) {
                        tracing::debug!(path = %view.scratch.display(), %error, "removing the copy's scratch dir failed");
                    }
                    r
                }
            };
            // Nobody waits any more when the request was dropped: nothing to answer.
            let _ = tx.send(result);
        });
    if let Err(source) = spawned {
        return Err(ContainerError::Io {
            op: "spawn a thread for",
            path: PathBuf::from("archive"),
            source,
        });
    }
    rx.await.map_err(|_| ContainerError::Stopped {
        what: "archive thread",
    })?
}

/// A running remapped container's root is an overlay its user namespace mounted: the host's
/// root, unmapped there, can create nothing in it (EOVERFLOW). This thread (its own, ended
/// after the copy) takes the mapped root's filesystem ids, which the namespace maps, and
/// raises again the capabilities that change clears (it keeps CAP_CHOWN, CAP_DAC_OVERRIDE…
/// over every namespace below the host's), so files are written with the archive's ids.
fn act_as_mapped_root(map: Option<&berth_image::IdMapping>) -> Result<()> {
    let Some((uid, gid)) = map.and_then(berth_image::IdMapping::root) else {
        return Ok(());
    };
    nix::unistd::setfsgid(nix::unistd::Gid::from_raw(gid));
    nix::unistd::setfsuid(nix::unistd::Uid::from_raw(uid));
    let caps_err = |e: caps::errors::CapsError| ContainerError::Io {
        op: "raise capabilities for",
        path: PathBuf::from("archive"),
        source: io::Error::other(e.to_string()),
    };
    let permitted = caps::read(None, caps::CapSet::Permitted).map_err(caps_err)?;
    caps::set(None, caps::CapSet::Effective, &permitted).map_err(caps_err)
}

fn sys_err(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> ContainerError {
    move |source| ContainerError::Sys { op, source }
}

/// In a new private mount namespace (this thread only): the container's overlay root at
/// `view.scratch`, then its binds and volumes on top, each from an `O_PATH` descriptor.
fn mount_stopped(view: &View) -> Result<Root> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(sys_err("unshare"))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys_err("make mounts private"))?;
    std::fs::create_dir_all(&view.scratch).map_err(super::io_err("create", &view.scratch))?;
    let mut data = overlay_data(&view.rootfs, None);
    // Many layers: from their common parent, with relative paths, so the options fit in a
    // page. unshare(CLONE_NEWNS) gave this thread a cwd of its own, so chdir is ours alone.
    if data.len() > 4000
        && let Some(base) = common_parent(&view.rootfs)
    {
        nix::unistd::chdir(&base).map_err(sys_err("chdir to the layers"))?;
        data = overlay_data(&view.rootfs, Some(&base));
    }
    nix::mount::mount(
        Some("overlay"),
        &view.scratch,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(sys_err("mount the container's root"))?;
    let root = Root::open(&view.scratch).map_err(super::io_err("open", &view.scratch))?;
    let mut sorted: Vec<&MountPoint> = view
        .mounts
        .iter()
        .filter(|m| m.kind != MountKind::Tmpfs)
        .collect();
    sorted.sort_by_key(|m| m.destination.matches('/').count());
    for m in sorted {
        bind_into(&root, m)?;
    }
    Ok(root)
}

/// overlayfs' options for `rootfs`, paths relative to `base` when given (`:` and `,` escaped).
fn overlay_data(rootfs: &RootfsDirs, base: Option<&Path>) -> String {
    let show = |p: &Path| {
        let p = base.and_then(|b| p.strip_prefix(b).ok()).unwrap_or(p);
        let mut out = String::new();
        for c in p.to_string_lossy().chars() {
            if matches!(c, ':' | ',' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    let lower: Vec<String> = rootfs.lowerdirs.iter().map(|p| show(p)).collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        show(&rootfs.upperdir),
        show(&rootfs.workdir)
    )
}

/// The deepest directory holding every layer, the upper and the work dir.
fn common_parent(rootfs: &RootfsDirs) -> Option<PathBuf> {
    let mut dirs = rootfs
        .lowerdirs
        .iter()
        .chain([&rootfs.upperdir, &rootfs.workdir]);
    let mut common = dirs.next()?.parent()?.to_path_buf();
    for d in dirs {
        while !d.starts_with(&common) {
            common = common.parent()?.to_path_buf();
        }
    }
    Some(common)
}

fn bind_into(root: &Root, m: &MountPoint) -> Result<()> {
    let src = nix::fcntl::open(
        Path::new(&m.source),
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_err("open a mount source"))?;
    let is_dir = nix::sys::stat::fstat(&src)
        .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(sys_err("stat a mount source"))?;
    let dest = Path::new(&m.destination);
    let target = if is_dir {
        root.mkdir_all(dest, 0o755)
    } else {
        let parent = dest.parent().unwrap_or(Path::new("/"));
        root.mkdir_all(parent, 0o755).and_then(|_| {
            root.open_at(
                dest,
                OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o644),
            )
        })
    }
    .map_err(super::io_err(
        "create mount point",
        Path::new(&m.destination),
    ))?;
    let from = format!("/proc/self/fd/{}", src.as_fd().as_raw_fd());
    let to = format!("/proc/self/fd/{}", target.as_fd().as_raw_fd());
    nix::mount::mount(
        Some(from.as_str()),
        to.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys_err("bind a mount"))?;
    if !m.rw {
        let top = root
            .open_path(dest, false)
            .map_err(super::io_err("open mount", Path::new(&m.destination)))?;
        let top = format!("/proc/self/fd/{}", top.as_fd().as_raw_fd());
        nix::mount::mount(
            None::<&str>,
            top.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(sys_err("remount read-only"))?;
    }
    Ok(())
}

/// Writes into a channel in chunks of up to [`CHUNK`] bytes.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

/// Reads a channel of chunks as one stream.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_escape_and_go_relative() {
        let rootfs = RootfsDirs {
            lowerdirs: vec![
                PathBuf::from("/d/layers/a:b/diff"),
                PathBuf::from("/d/layers/c/diff"),
            ],
            upperdir: PathBuf::from("/d/containers/x/diff"),
            workdir: PathBuf::from("/d/containers/x/work"),
        };
        assert_eq!(
            overlay_data(&rootfs, None),
            "lowerdir=/d/layers/a\\:b/diff:/d/layers/c/diff,upperdir=/d/containers/x/diff,workdir=/d/containers/x/work"
        );
        let base = common_parent(&rootfs).expect("common");
        assert_eq!(base, PathBuf::from("/d"));
        assert!(overlay_data(&rootfs, Some(&base)).starts_with("lowerdir=layers/a\\:b/diff:"));
    }
}
