//! A container's mount points: parsed at create from `Binds`, `Mounts`, `VolumesFrom` and the
//! config's (and image's) `Volumes`; the volumes they name created and referenced; image
//! content copied into new, empty volumes; and at start turned into OCI mount entries.
use std::path::{Path, PathBuf};

use berth_api::models::{ContainerConfig, HostConfig};
use berth_image::RootfsDirs;
use berth_volume::archive::{self, ExtractOptions};
use berth_volume::mounts::{self, MountKind, MountPoint};
use berth_volume::{Root, VolumeService};
use oci_spec::runtime::Mount;

use super::{ContainerService, Result};
use crate::{ContainerError, spec};

impl ContainerService {
    /// The mount points a new container asks for, parsed (nothing created yet).
    pub(super) fn requested_mounts(
        &self,
        config: &ContainerConfig,
        hc: &HostConfig,
    ) -> Result<Vec<MountPoint>> {
        let mut points: Vec<MountPoint> = Vec::new();
        for b in hc.binds.iter().flatten() {
            points.push(mounts::parse_bind(b)?);
        }
        for m in hc.mounts.iter().flatten() {
            points.push(mounts::parse_mount(m)?);
        }
        mounts::check_duplicates(&points)?;
        for spec in hc.volumes_from.iter().flatten() {
            let (other, rw) = mounts::parse_volumes_from(spec)?;
            let entry = self.lookup(&other)?;
            let theirs = entry
                .rec
                .try_lock()
                .map(|r| r.mount_points.clone())
                .map_err(|_| ContainerError::Conflict {
                    message: format!("container {other} is busy, try again"),
                })?;
            for mut m in theirs {
                if points.iter().any(|p| p.destination == m.destination) {
                    continue;
                }
                if let Some(rw) = rw {
                    m.rw = rw && m.rw;
                    m.mode = if rw { "rw".into() } else { "ro".into() };
                }
                // Theirs: removing this container must not remove it.
                m.anonymous = false;
                m.copy_data = false;
                points.push(m);
            }
        }
        for dst in config.volumes.iter().flatten() {
            let m = MountPoint::anonymous(dst)?;
            if !points.iter().any(|p| p.destination == m.destination) {
                points.push(m);
            }
        }
        Ok(points)
    }
}

/// Creates the volumes `points` name (referenced by container `id`), copies image content into
/// new ones and makes missing `-v` bind sources (owned by `owner`, the mapped root under
/// `--userns-remap`, as dockerd's `MkdirAllAndChownNew`; existing sources are never
/// chowned); all or nothing.
pub(super) fn materialize(
    volumes: &VolumeService,
    id: &str,
    mut points: Vec<MountPoint>,
    rootfs: &RootfsDirs,
    owner: Option<(u32, u32)>,
) -> Result<Vec<MountPoint>> {
    let mut made: Vec<String> = Vec::new();
    let result = (|| -> Result<()> {
        for m in points.iter_mut() {
            match m.kind {
                MountKind::Volume => {
                    let existed = !m.name.is_empty() && volumes.exists(&m.name);
                    let name = (!m.name.is_empty()).then_some(m.name.as_str());
                    let v = volumes.create(
                        name,
                        Some("local"),
                        m.driver_opts.clone(),
                        m.labels.clone(),
                    )?;
                    if !existed && m.anonymous {
                        made.push(v.name.clone());
                    }
                    m.name = v.name.clone();
                    m.source = v.mountpoint.clone();
                    volumes.acquire(&m.name, id);
                    if m.copy_data && v.options.is_empty() {
                        copy_image_content(rootfs, &m.destination, Path::new(&v.mountpoint))?;
                    }
                }
                MountKind::Bind if m.create_source && !Path::new(&m.source).exists() => {
                    create_source(Path::new(&m.source), owner).map_err(|e| {
                        ContainerError::InvalidArgument {
                            message: format!(
                                "error while creating mount source path '{}': {e}",
                                m.source
                            ),
                        }
                    })?;
                }
                _ => {}
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        release_mounts(volumes, id, &points, false);
        for name in made {
            if let Err(error) = volumes.remove(&name, true) {
                tracing::warn!(volume = %name, %error, "removing a volume made for a failed create failed");
            }
        }
        return Err(e);
    }
    Ok(points)
}

/// Makes the missing directories of a bind source, each then owned by `owner` when given.
fn create_source(source: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let missing: Vec<&Path> = source.ancestors().take_while(|p| !p.exists()).collect();
    std::fs::create_dir_all(source)?;
    if let Some((uid, gid)) = owner {
        for dir in missing {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

/// Drops `id`'s references; with `remove_anonymous`, removes its anonymous volumes too.
pub(super) fn release_mounts(
    volumes: &VolumeService,
    id: &str,
    points: &[MountPoint],
    remove_anonymous: bool,
) {
    for m in points.iter().filter(|m| m.kind == MountKind::Volume) {
        if m.name.is_empty() {
            continue;
        }
        volumes.release(&m.name, id);
        if remove_anonymous
            && m.anonymous
            && let Err(error) = volumes.remove(&m.name, true)
        {
            tracing::info!(volume = %m.name, %error, "anonymous volume kept");
        }
    }
}

/// Whether the directory `dir` is empty (or missing).
fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut rd| rd.next().is_none())
}

/// Copies what the image has at `destination` into the new volume at `data`, as Docker does
/// for an empty volume: the layers bottom to top, whiteouts applied.
fn copy_image_content(rootfs: &RootfsDirs, destination: &str, data: &Path) -> Result<()> {
    if !is_empty_dir(data) {
        return Ok(());
    }
    let target = Root::open(data).map_err(super::io_err("open volume", data))?;
    for layer in rootfs.lowerdirs.iter().rev() {
        let Ok(root) = Root::open(layer) else {
            continue;
        };
        let Ok(st) = root.stat(Path::new(destination)) else {
            continue;
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            continue;
        }
        // The volume's root takes the owner and mode of the image's directory (as Docker).
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::chown(data, Some(st.st_uid), Some(st.st_gid))
            .map_err(super::io_err("chown", data))?;
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(st.st_mode & 0o7777))
            .map_err(super::io_err("chmod", data))?;
        let (reader, writer) = std::io::pipe().map_err(super::io_err("pipe for", data))?;
        let src = format!("{}/.", destination.trim_end_matches('/'));
        let producer = std::thread::spawn(move || {
            archive::write_tar(&root, &src, ".", "image", None, writer).map(drop)
        });
        let opts = ExtractOptions {
            skip_whiteouts: true,
            ..Default::default()
        };
        let applied = archive::extract(&target, "/", reader, &opts);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(berth_volume::VolumeError::invalid(
                "copying image content panicked",
            ))
        });
        applied?;
        produced?;
    }
    Ok(())
}

/// The OCI `mounts` entries of a container's mount points, parents before children.
pub(super) fn oci_mounts(volumes: &VolumeService, points: &[MountPoint]) -> Result<Vec<Mount>> {
    let mut sorted: Vec<&MountPoint> = points.iter().collect();
    sorted.sort_by_key(|m| m.destination.matches('/').count());
    let mut out = Vec::new();
    for m in sorted {
        let rw = if m.rw { "rw" } else { "ro" };
        match m.kind {
            MountKind::Bind | MountKind::Volume => {
                let source = if m.kind == MountKind::Volume {
                    volumes.mount(&m.name)?
                } else {
                    PathBuf::from(&m.source)
                };
                let propagation = if m.propagation.is_empty() {
                    "rprivate"
                } else {
                    m.propagation.as_str()
                };
                out.push(spec::mount(
                    PathBuf::from(&m.destination),
                    "bind",
                    source,
                    vec!["rbind".into(), rw.into(), propagation.into()],
                ));
            }
            MountKind::Tmpfs => {
                let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
                opts.extend(m.tmpfs_options.iter().cloned());
                opts.push(rw.into());
                out.push(spec::mount(
                    PathBuf::from(&m.destination),
                    "tmpfs",
                    PathBuf::from("tmpfs"),
                    opts,
                ));
            }
        }
    }
    Ok(out)
}

/// The mount point that holds `path` (the deepest destination containing it), if any.
pub(super) fn covering<'a>(points: &'a [MountPoint], path: &str) -> Option<&'a MountPoint> {
    points
        .iter()
        .filter(|m| {
            path == m.destination
                || path
                    .strip_prefix(m.destination.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|m| m.destination.len())
}
