//! A container's mounts as Docker's API describes them (`Binds`, `Mounts`, `Volumes`,
//! `VolumesFrom`), parsed into [`MountPoint`]s the container record keeps.
//!
//! Parsing is pure: creating the volumes a mount point names and finding host paths is the
//! caller's step (the container service, with [`crate::VolumeService`]).
use std::collections::HashMap;
use std::path::Path;

use berth_api::models::{Mount, MountType as ApiMountType};
use serde::{Deserialize, Serialize};

use crate::VolumeError;
use berth_fs::clean;

/// What a mount point mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path.
    Bind,
    /// A volume (named or anonymous).
    Volume,
    /// A fresh tmpfs.
    Tmpfs,
}

impl MountKind {
    /// Docker's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// One mount of a container, as the record keeps it and `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// Bind, volume or tmpfs.
    pub kind: MountKind,
    /// Volume name; empty for binds, tmpfs and anonymous volumes not created yet.
    #[serde(default)]
    pub name: String,
    /// Host path: the bind source, or the volume's data dir once resolved.
    #[serde(default)]
    pub source: String,
    /// Path inside the container (clean, absolute).
    pub destination: String,
    /// `local` for volumes.
    #[serde(default)]
    pub driver: String,
    /// The mode string as given (`ro,z`), Docker's `Mode`.
    #[serde(default)]
    pub mode: String,
    /// Writable.
    pub rw: bool,
    /// `rprivate` for binds.
    #[serde(default)]
    pub propagation: String,
    /// Copy the image's content at the destination into a new, empty volume.
    #[serde(default)]
    pub copy_data: bool,
    /// An anonymous volume made for this container (`rm -v` removes it).
    #[serde(default)]
    pub anonymous: bool,
    /// A `-v` bind whose missing host directory is created (Docker's old behaviour).
    #[serde(default)]
    pub create_source: bool,
    /// tmpfs options (`size=…`, `mode=…`).
    #[serde(default)]
    pub tmpfs_options: Vec<String>,
    /// For volumes created by `--mount`: driver options and labels.
    #[serde(default)]
    pub driver_opts: HashMap<String, String>,
    /// For volumes created by `--mount`: labels.
    #[serde(default)]
    pub labels: HashMap<String, String>,
}

impl MountPoint {
    fn new(kind: MountKind, destination: String) -> Self {
        MountPoint {
            kind,
            name: String::new(),
            source: String::new(),
            destination,
            driver: String::new(),
            mode: String::new(),
            rw: true,
            propagation: String::new(),
            copy_data: false,
            anonymous: false,
            create_source: false,
            tmpfs_options: Vec::new(),
            driver_opts: HashMap::new(),
            labels: HashMap::new(),
        }
    }

    /// An anonymous volume at `destination` (from `-v /path` or an image's `VOLUME`).
    pub fn anonymous(destination: &str) -> Result<Self, VolumeError> {
        let dst = destination_of(destination, destination)?;
        let mut m = MountPoint::new(MountKind::Volume, dst);
        m.driver = "local".into();
        m.copy_data = true;
        m.anonymous = true;
        Ok(m)
    }

    /// Docker's `MountPoint` for `inspect`.
    pub fn to_api(&self) -> berth_api::models::MountPoint {
        berth_api::models::MountPoint {
            typ: Some(self.kind.as_str().into()),
            name: Some(self.name.clone()),
            source: Some(self.source.clone()),
            destination: Some(self.destination.clone()),
            driver: Some(self.driver.clone()),
            mode: Some(self.mode.clone()),
            rw: Some(self.rw),
            propagation: Some(self.propagation.clone()),
        }
    }
}

fn destination_of(dst: &str, spec: &str) -> Result<String, VolumeError> {
    if !dst.starts_with('/') {
        return Err(VolumeError::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config: mount path must be absolute"
        )));
    }
    let cleaned = clean(dst);
    if cleaned == "/" {
        return Err(VolumeError::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config: destination can't be '/'"
        )));
    }
    Ok(cleaned)
}

const PROPAGATIONS: [&str; 6] = [
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// Whether `name` is a valid local volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn valid_volume_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Parses one `-v` / `Binds` entry: `/ctr`, `NAME:/ctr[:mode]` or `/host:/ctr[:mode]`.
pub fn parse_bind(spec: &str) -> Result<MountPoint, VolumeError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [dst] => return MountPoint::anonymous(dst),
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        _ => {
            return Err(VolumeError::invalid(format!(
                "invalid volume specification: '{spec}'"
            )));
        }
    };
    if src.is_empty() || dst.is_empty() {
        return Err(VolumeError::invalid(format!(
            "invalid volume specification: '{spec}'"
        )));
    }
    let dst = destination_of(dst, spec)?;
    let mut rw = true;
    let mut propagation = None;
    let mut nocopy = false;
    let mut seen_rw = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" | "rw" if !seen_rw => {
                seen_rw = true;
                rw = m == "rw";
            }
            "z" | "Z" | "consistent" | "cached" | "delegated" => {}
            "nocopy" => nocopy = true,
            p if PROPAGATIONS.contains(&p) && propagation.is_none() => propagation = Some(p),
            _ => return Err(VolumeError::invalid(format!("invalid mode: {mode}"))),
        }
    }
    if src.starts_with('/') {
        if nocopy {
            return Err(VolumeError::invalid(format!("invalid mode: {mode}")));
        }
        let mut m = MountPoint::new(MountKind::Bind, dst);
        m.source = clean(src);
        m.mode = mode.to_string();
        m.rw = rw;
        m.propagation = propagation.unwrap_or("rprivate").to_string();
        m.create_source = true;
        return Ok(m);
    }
    if propagation.is_some() {
        return Err(VolumeError::invalid(format!("invalid mode: {mode}")));
    }
    if !valid_volume_name(src) {
        return Err(VolumeError::InvalidName {
            name: src.to_string(),
        });
    }
    let mut m = MountPoint::new(MountKind::Volume, dst);
    m.name = src.to_string();
    m.driver = "local".into();
    m.mode = if mode.is_empty() {
        "z".into()
    } else {
        mode.to_string()
    };
    m.rw = rw;
    m.copy_data = !nocopy;
    Ok(m)
}

/// Parses one `--mount` / `HostConfig.Mounts` entry.
pub fn parse_mount(mount: &Mount) -> Result<MountPoint, VolumeError> {
    let kind = mount.typ.unwrap_or(ApiMountType::VOLUME);
    let kind_name = kind.to_string();
    let cfg_err = |msg: String| {
        VolumeError::invalid(format!(
            "invalid mount config for type \"{kind_name}\": {msg}"
        ))
    };
    let target = mount.target.clone().unwrap_or_default();
    if target.is_empty() {
        return Err(cfg_err("field Target must not be empty".into()));
    }
    let dst = destination_of(&target, &target).map_err(|e| cfg_err(e.to_string()))?;
    let source = mount.source.clone().unwrap_or_default();
    let rw = !mount.read_only.unwrap_or(false);
    match kind {
        ApiMountType::BIND => {
            if source.is_empty() {
                return Err(cfg_err("field Source must not be empty".into()));
            }
            if !source.starts_with('/') {
                return Err(cfg_err(format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            let create = mount
                .bind_options
                .as_ref()
                .and_then(|b| b.create_mountpoint)
                .unwrap_or(false);
            if !create && !Path::new(&source).exists() {
                return Err(cfg_err(format!(
                    "bind source path does not exist: {source}"
                )));
            }
            let mut m = MountPoint::new(MountKind::Bind, dst);
            m.source = clean(&source);
            m.rw = rw;
            m.create_source = create;
            m.propagation = mount
                .bind_options
                .as_ref()
                .and_then(|b| b.propagation)
                .map(|p| p.to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rprivate".into());
            Ok(m)
        }
        ApiMountType::VOLUME => {
            let mut m = MountPoint::new(MountKind::Volume, dst);
            if source.is_empty() {
                m.anonymous = true;
            } else if !valid_volume_name(&source) {
                return Err(VolumeError::InvalidName { name: source });
            }
            m.name = source;
            m.rw = rw;
            m.driver = "local".into();
            let opts = mount.volume_options.clone().unwrap_or_default();
            m.copy_data = !opts.no_copy.unwrap_or(false);
            m.labels = opts.labels.unwrap_or_default();
            if let Some(dc) = opts.driver_config {
                if let Some(name) = dc.name.filter(|n| !n.is_empty() && n != "local") {
                    return Err(VolumeError::invalid(format!(
                        "error looking up volume plugin {name}: plugin \"{name}\" not found"
                    )));
                }
                m.driver_opts = dc.options.unwrap_or_default();
            }
            Ok(m)
        }
        ApiMountType::TMPFS => {
            if !source.is_empty() {
                return Err(cfg_err("field Source must not be specified".into()));
            }
            let mut m = MountPoint::new(MountKind::Tmpfs, dst);
            m.rw = rw;
            if let Some(t) = &mount.tmpfs_options {
                if let Some(size) = t.size_bytes.filter(|s| *s > 0) {
                    m.tmpfs_options.push(format!("size={size}"));
                }
                if let Some(mode) = t.mode.filter(|m| *m > 0) {
                    m.tmpfs_options.push(format!("mode={mode:o}"));
                }
            }
            Ok(m)
        }
        other => Err(VolumeError::invalid(format!(
            "mount type {other} is not supported"
        ))),
    }
}

/// Parses a `--volumes-from` entry: `CONTAINER[:ro|:rw]` → (container, Some(rw) when given).
pub fn parse_volumes_from(spec: &str) -> Result<(String, Option<bool>), VolumeError> {
    match spec.split_once(':') {
        None => Ok((spec.to_string(), None)),
        Some((c, "ro")) => Ok((c.to_string(), Some(false))),
        Some((c, "rw")) => Ok((c.to_string(), Some(true))),
        Some((_, mode)) => Err(VolumeError::invalid(format!(
            "invalid mode for volumes-from: {mode}"
        ))),
    }
}

/// Refuses two mount points on one destination (Docker's `Duplicate mount point`).
pub fn check_duplicates(mounts: &[MountPoint]) -> Result<(), VolumeError> {
    let mut seen = std::collections::HashSet::new();
    for m in mounts {
        if !seen.insert(m.destination.as_str()) {
            return Err(VolumeError::invalid(format!(
                "Duplicate mount point: {}",
                m.destination
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_like_docker() {
        let m = parse_bind("/host/dir:/data:ro,z").expect("bind");
        assert_eq!(m.kind, MountKind::Bind);
        assert_eq!(
            (m.source.as_str(), m.destination.as_str()),
            ("/host/dir", "/data")
        );
        assert!(!m.rw);
        assert_eq!(m.propagation, "rprivate");
        let v = parse_bind("data:/srv/").expect("volume");
        assert_eq!(
            (v.kind, v.name.as_str(), v.mode.as_str()),
            (MountKind::Volume, "data", "z")
        );
        assert_eq!(v.destination, "/srv");
        let a = parse_bind("/only").expect("anon");
        assert!(a.anonymous);
        assert!(parse_bind("data:relative").is_err());
        assert!(parse_bind("data:/x:bogus").is_err());
        assert!(parse_bind("/h:/").is_err());
        assert!(matches!(
            parse_bind("../etc:/x"),
            Err(VolumeError::InvalidName { .. })
        ));
        assert!(matches!(
            parse_bind("a/b:/x"),
            Err(VolumeError::InvalidName { .. })
        ));
    }

    #[test]
    fn volume_names_are_checked() {
        assert!(valid_volume_name("my-vol_1.x"));
        for bad in ["a", "../x", "a/b", ".x", "", "x y"] {
            assert!(!valid_volume_name(bad), "{bad}");
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let a = parse_bind("a1:/x").expect("a");
        let b = parse_bind("/h:/x/").expect("b");
        assert!(check_duplicates(&[a, b]).is_err());
    }
}
