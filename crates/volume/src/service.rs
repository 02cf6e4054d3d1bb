//! The volume service: local volumes on disk, who uses them, and their host mounts.
//!
//! Layout (owned by this module):
//! ```text
//! <data_root>/volumes/<name>/volume.json   the record (schema version inside; atomic writes)
//! <data_root>/volumes/<name>/_data         the content, bind-mounted into containers
//! <data_root>/volumes/.tmp-*               a create in progress (renamed into place when done)
//! <data_root>/volumes/.trash-*             a remove in progress (reaped at start-up)
//! ```
//! With `--userns-remap` the volumes are Docker's remapped ones: under
//! `<data_root>/<uid>.<gid>/volumes` (the mapped root's `<uid>.<gid>`, 0710 to its group),
//! each new `_data` owned by the mapped root, so a container's root may write to it.
//!
//! A volume created with `-o type=…,device=…` (tmpfs, or `o=bind` of a host path) is mounted
//! on its `_data` when a container first needs it and unmounted when the last one is removed
//! (or the volume is). References are kept in memory: the container service re-acquires them
//! for every container it loads.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_api::filters::Filters;
use berth_fs::IdMapping;
use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::VolumeError;
use crate::mounts::valid_volume_name;

/// Schema version of `volume.json`.
pub const RECORD_VERSION: u32 = 1;
/// The label Docker puts on anonymous volumes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// A volume as the API shows it (`GET /volumes/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// Name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Always `local`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// The `_data` directory.
    #[serde(rename = "Mountpoint")]
    pub mountpoint: String,
    /// RFC 3339.
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    /// Labels.
    #[serde(rename = "Labels")]
    pub labels: HashMap<String, String>,
    /// Always `local`.
    #[serde(rename = "Scope")]
    pub scope: String,
    /// Driver options (`type`, `device`, `o`).
    #[serde(rename = "Options")]
    pub options: HashMap<String, String>,
    /// Size and reference count, in `system df` and `volume ls` with usage.
    #[serde(rename = "UsageData", skip_serializing_if = "Option::is_none", default)]
    pub usage_data: Option<Usage>,
}

/// A volume's disk use and how many containers reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes of its content (-1 when unknown).
    #[serde(rename = "Size")]
    pub size: i64,
    /// Containers using it.
    #[serde(rename = "RefCount")]
    pub ref_count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    version: u32,
    name: String,
    driver: String,
    created_at: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    options: HashMap<String, String>,
}

#[derive(Debug, Default)]
struct Inner {
    volumes: BTreeMap<String, Record>,
    users: HashMap<String, BTreeSet<String>>,
}

/// Local volumes under `<data_root>/volumes`.
#[derive(Debug)]
pub struct VolumeService {
    root: PathBuf,
    /// Owner of every new `_data`: the mapped root under `--userns-remap`.
    owner: Option<(u32, u32)>,
    inner: Mutex<Inner>,
}

/// What `prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Names removed.
    pub deleted: Vec<String>,
    /// Bytes freed.
    pub space: u64,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> VolumeError + 'a {
    move |e| VolumeError::io(op, path, e)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The bytes under `path`, not following symlinks, each inode counted once (0 when it cannot
/// be read). Walked iteratively by descriptor: a volume's tree may be of any depth.
pub fn dir_size(path: &Path) -> u64 {
    use std::collections::HashSet;
    use std::ffi::OsStr;
    use std::os::fd::BorrowedFd;

    use berth_fs::tree::{self, Visit};
    use nix::sys::stat::FileStat;

    struct Sizes {
        total: u64,
        seen: HashSet<(u64, u64)>,
    }
    impl Visit for Sizes {
        type Dir = ();
        type Error = ();
        fn walk_error(&self, _: &'static str, _: &Path, _: std::io::Error) {}
        fn enter(
            &mut self,
            _: &mut (),
            _: BorrowedFd<'_>,
            _: &OsStr,
            _: &Path,
            _: &FileStat,
            _: BorrowedFd<'_>,
        ) -> Result<Option<()>, ()> {
            Ok(Some(()))
        }
        fn entry(
            &mut self,
            _: &mut (),
            _: BorrowedFd<'_>,
            _: &OsStr,
            _: &Path,
            st: &FileStat,
        ) -> Result<(), ()> {
            if self.seen.insert((st.st_dev, st.st_ino)) {
                self.total += st.st_size.max(0) as u64;
            }
            Ok(())
        }
        fn leave(&mut self, _: (), _: &Path) -> Result<(), ()> {
            Ok(())
        }
    }
    let Ok(root) = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) else {
        return 0;
    };
    let mut sizes = Sizes {
        total: 0,
        seen: HashSet::new(),
    };
    // What was counted before a failure still counts (as the recursive version did).
    let _ = tree::walk(root, Path::new(""), (), &mut sizes);
    sizes.total
}

/// Whether `path` is a mount point, from /proc/self/mountinfo.
fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp == want)
}

/// `filters` keys `volume ls` accepts.
const LIST_FILTERS: [&str; 4] = ["dangling", "name", "label", "driver"];
/// `filters` keys `volume prune` accepts.
const PRUNE_FILTERS: [&str; 3] = ["all", "label", "label!"];

impl VolumeService {
    /// Opens (creating) `<data_root>/volumes`, loads every volume, reaps unfinished work.
    pub fn open(data_root: &Path) -> Result<Self, VolumeError> {
        Self::open_mapped(data_root, None)
    }

    /// [`Self::open`] for a daemon with `--userns-remap` (`map`): as dockerd's remapped
    /// root, the volumes are `<data_root>/<uid>.<gid>/volumes` (the mapped root's ids; the
    /// directory 0710 to its group, so it may reach the volumes it mounts), and every new
    /// volume's `_data` is owned by the mapped root. Another mapping (or none) has its own.
    pub fn open_mapped(data_root: &Path, map: Option<&IdMapping>) -> Result<Self, VolumeError> {
        let (root, owner) = match map.and_then(|m| Some((m.key(), m.root()?))) {
            Some((key, (uid, gid))) => {
                let base = data_root.join(key);
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&base)
                    .map_err(io("create", &base))?;
                berth_fs::open_to_group(&base, gid)
                    .map_err(io("open to the remapped root", &base))?;
                (base.join("volumes"), Some((uid, gid)))
            }
            None => (data_root.join("volumes"), None),
        };
        std::fs::create_dir_all(&root).map_err(io("create", &root))?;
        let mut volumes = BTreeMap::new();
        for entry in std::fs::read_dir(&root)
            .map_err(io("read", &root))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(".tmp-") || name.starts_with(".trash-") {
                let _ = berth_fs::tree::remove_tree(&path);
                continue;
            }
            let record = std::fs::read(path.join("volume.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
            match record {
                Some(r) if r.name == name => {
                    volumes.insert(name, r);
                }
                _ => {
                    tracing::warn!(path = %path.display(), "ignoring a volume dir without a record")
                }
            }
        }
        Ok(VolumeService {
            root,
            owner,
            inner: Mutex::new(Inner {
                volumes,
                users: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `_data` dir of `name`.
    fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    fn to_api(&self, r: &Record, usage: Option<Usage>) -> Volume {
        Volume {
            name: r.name.clone(),
            driver: r.driver.clone(),
            mountpoint: self.data_dir(&r.name).display().to_string(),
            created_at: r.created_at.clone(),
            labels: r.labels.clone(),
            scope: "local".into(),
            options: r.options.clone(),
            usage_data: usage,
        }
    }

    /// `POST /volumes/create`: a new volume, or the existing one of that name. `name: None`
    /// makes an anonymous volume (a random 64-hex name and Docker's anonymous label).
    pub fn create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        options: HashMap<String, String>,
        mut labels: HashMap<String, String>,
    ) -> Result<Volume, VolumeError> {
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or("local");
        if driver != "local" {
            return Err(VolumeError::invalid(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !valid_volume_name(n) {
                    return Err(VolumeError::InvalidName { name: n.into() });
                }
                n.to_string()
            }
            None => {
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
                hex::encode(rand::random::<[u8; 32]>())
            }
        };
        validate_options(&options)?;
        let mut inner = self.lock();
        if let Some(r) = inner.volumes.get(&name) {
            return Ok(self.to_api(r, None));
        }
        let record = Record {
            version: RECORD_VERSION,
            name: name.clone(),
            driver: driver.into(),
            created_at: now(),
            labels,
            options,
        };
        // Made aside and renamed into place: a crash leaves a whole volume or a .tmp- dir.
        let tmp = self
            .root
            .join(format!(".tmp-{}", hex::encode(rand::random::<[u8; 8]>())));
        let made = (|| -> Result<(), VolumeError> {
            let data = tmp.join("_data");
            std::fs::create_dir_all(&data).map_err(io("create", &tmp))?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::chown(&data, Some(uid), Some(gid))
                    .map_err(io("chown", &data))?;
            }
            let bytes = serde_json::to_vec_pretty(&record)
                .map_err(|e| VolumeError::io("encode", &tmp, std::io::Error::other(e)))?;
            let file = tmp.join("volume.json");
            let mut f = std::fs::File::create(&file).map_err(io("create", &file))?;
            f.write_all(&bytes).map_err(io("write", &file))?;
            f.sync_all().map_err(io("sync", &file))?;
            let dst = self.root.join(&name);
            std::fs::rename(&tmp, &dst).map_err(io("rename", &dst))
        })();
        if let Err(e) = made {
            let _ = berth_fs::tree::remove_tree(&tmp);
            return Err(e);
        }
        let api = self.to_api(&record, None);
        inner.volumes.insert(name, record);
        Ok(api)
    }

    /// `GET /volumes/{name}`.
    pub fn inspect(&self, name: &str) -> Result<Volume, VolumeError> {
        let inner = self.lock();
        inner
            .volumes
            .get(name)
            .map(|r| self.to_api(r, None))
            .ok_or_else(|| VolumeError::NotFound { name: name.into() })
    }

    /// Whether `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.lock().volumes.contains_key(name)
    }

    /// `GET /volumes?filters=`.
    pub fn list(&self, filters: &Filters) -> Result<Vec<Volume>, VolumeError> {
        filters.validate(&LIST_FILTERS)?;
        let dangling = filters.bool("dangling")?;
        let inner = self.lock();
        let mut out = Vec::new();
        for r in inner.volumes.values() {
            let in_use = inner.users.get(&r.name).is_some_and(|u| !u.is_empty());
            if dangling.is_none_or(|dangling| dangling != in_use)
                && filters.any("name", |v| r.name.contains(v))
                && filters.any("driver", |v| r.driver == v)
                && filters.labels_match(&r.labels)
            {
                out.push(self.to_api(r, None));
            }
        }
        Ok(out)
    }

    /// Every volume with its size and reference count (for `system df`).
    pub fn usage(&self) -> Vec<Volume> {
        let (records, users): (Vec<Record>, HashMap<String, usize>) = {
            let inner = self.lock();
            (
                inner.volumes.values().cloned().collect(),
                inner
                    .users
                    .iter()
                    .map(|(k, v)| (k.clone(), v.len()))
                    .collect(),
            )
        };
        records
            .iter()
            .map(|r| {
                let usage = Usage {
                    size: dir_size(&self.data_dir(&r.name)) as i64,
                    ref_count: users.get(&r.name).copied().unwrap_or(0) as i64,
                };
                self.to_api(r, Some(usage))
            })
            .collect()
    }

    /// Records that `container` uses `name`.
    pub fn acquire(&self, name: &str, container: &str) {
        self.lock()
            .users
            .entry(name.into())
            .or_default()
            .insert(container.into());
    }

    /// Forgets that `container` uses `name`; the last user's release unmounts a mounted volume.
    pub fn release(&self, name: &str, container: &str) {
        let last = {
            let mut inner = self.lock();
            let users = inner.users.entry(name.into()).or_default();
            users.remove(container);
            let empty = users.is_empty();
            if empty {
                inner.users.remove(name);
            }
            empty
        };
        if last {
            self.unmount(name);
        }
    }

    /// Containers using `name`.
    pub fn users(&self, name: &str) -> Vec<String> {
        self.lock()
            .users
            .get(name)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The host directory to bind into a container for `name`, mounting the volume's device
    /// first when its options ask for one.
    pub fn mount(&self, name: &str) -> Result<PathBuf, VolumeError> {
        let record = self
            .lock()
            .volumes
            .get(name)
            .cloned()
            .ok_or_else(|| VolumeError::NotFound { name: name.into() })?;
        let data = self.data_dir(name);
        if record.options.is_empty() || is_mounted(&data) {
            return Ok(data);
        }
        mount_device(&record.options, &data)?;
        Ok(data)
    }

    fn unmount(&self, name: &str) {
        let data = self.data_dir(name);
        if is_mounted(&data)
            && let Err(error) = nix::mount::umount2(&data, MntFlags::MNT_DETACH)
        {
            tracing::warn!(path = %data.display(), %error, "could not unmount a volume");
        }
    }

    /// `DELETE /volumes/{name}?force=`: refused while any container uses it; `force` only
    /// ignores a missing volume.
    pub fn remove(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        let mut inner = self.lock();
        if !inner.volumes.contains_key(name) {
            return if force {
                Ok(())
            } else {
                Err(VolumeError::NotFound { name: name.into() })
            };
        }
        if let Some(users) = inner.users.get(name).filter(|u| !u.is_empty()) {
            return Err(VolumeError::InUse {
                name: name.into(),
                containers: users.iter().cloned().collect(),
            });
        }
        self.unmount(name);
        let dir = self.root.join(name);
        let trash = self
            .root
            .join(format!(".trash-{}", hex::encode(rand::random::<[u8; 8]>())));
        std::fs::rename(&dir, &trash).map_err(io("remove", &dir))?;
        inner.volumes.remove(name);
        drop(inner);
        if let Err(error) = berth_fs::tree::remove_tree(&trash) {
            tracing::warn!(path = %trash.display(), %error, "could not remove a volume's files");
        }
        Ok(())
    }

    /// `POST /volumes/prune`: unused volumes — anonymous ones only, unless `all=true`.
    pub fn prune(&self, filters: &Filters) -> Result<Pruned, VolumeError> {
        filters.validate(&PRUNE_FILTERS)?;
        let all = filters.bool("all")?.unwrap_or(false);
        let candidates: Vec<String> = {
            let inner = self.lock();
            inner
                .volumes
                .values()
                .filter(|r| inner.users.get(&r.name).is_none_or(|u| u.is_empty()))
                .filter(|r| all || r.labels.contains_key(ANONYMOUS_LABEL))
                .filter(|r| filters.labels_match(&r.labels))
                .map(|r| r.name.clone())
                .collect()
        };
        let mut pruned = Pruned::default();
        for name in candidates {
            let size = dir_size(&self.data_dir(&name));
            if self.remove(&name, false).is_ok() {
                pruned.deleted.push(name);
                pruned.space += size;
            }
        }
        Ok(pruned)
    }
}

/// Docker's local driver accepts `type`, `device`, `o` (and `size`, unused here).
fn validate_options(options: &HashMap<String, String>) -> Result<(), VolumeError> {
    for key in options.keys() {
        if !["type", "device", "o", "size"].contains(&key.as_str()) {
            return Err(VolumeError::invalid(format!("invalid option key: {key:?}")));
        }
    }
    if !options.is_empty() && !options.contains_key("device") && !options.contains_key("type") {
        return Err(VolumeError::invalid(
            "missing required option: \"device\"".to_string(),
        ));
    }
    let is_bind = options
        .get("o")
        .is_some_and(|o| o.split(',').any(|x| x == "bind" || x == "rbind"));
    if is_bind {
        let device = options.get("device").map(String::as_str).unwrap_or("");
        if !Path::new(device).is_absolute() || !Path::new(device).exists() {
            return Err(VolumeError::invalid(format!(
                "failed to mount local volume: mount {device}: no such file or directory"
            )));
        }
    }
    Ok(())
}

/// Mounts a volume's device on `target` as `mount -t TYPE -o O DEVICE TARGET` would; a bind
/// source is opened first and mounted from its descriptor, so a swapped symlink cannot
/// redirect it.
fn mount_device(options: &HashMap<String, String>, target: &Path) -> Result<(), VolumeError> {
    let fstype = options.get("type").cloned().unwrap_or_default();
    let device = options
        .get("device")
        .cloned()
        .unwrap_or_else(|| fstype.clone());
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options
        .get("o")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        match o {
            "" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data.push(other.to_string()),
        }
    }
    let data = data.join(",");
    let err = |e: nix::errno::Errno| {
        VolumeError::invalid(format!(
            "failed to mount local volume: mount {device}:{}, flags: {:#x}, data: {data}: {e}",
            target.display(),
            flags.bits()
        ))
    };
    if flags.contains(MsFlags::MS_BIND) {
        let src = nix::fcntl::open(
            Path::new(&device),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(err)?;
        let via = PathBuf::from(format!("/proc/self/fd/{}", src.as_raw_fd()));
        nix::mount::mount(
            Some(&via),
            target,
            None::<&str>,
            flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
            None::<&str>,
        )
        .map_err(err)?;
        if flags.contains(MsFlags::MS_RDONLY) {
            nix::mount::mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(err)?;
        }
        return Ok(());
    }
    nix::mount::mount(
        Some(device.as_str()),
        target,
        Some(fstype.as_str()),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )
    .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_remove_and_refcounts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let svc = VolumeService::open(dir.path()).expect("open");
        let v = svc
            .create(Some("data1"), None, HashMap::new(), HashMap::new())
            .expect("create");
        assert!(Path::new(&v.mountpoint).is_dir());
        let anon = svc
            .create(None, None, HashMap::new(), HashMap::new())
            .expect("anon");
        assert_eq!(anon.name.len(), 64);
        assert!(matches!(
            svc.create(Some("../x"), None, HashMap::new(), HashMap::new()),
            Err(VolumeError::InvalidName { .. })
        ));
        svc.acquire("data1", "c1");
        assert!(matches!(
            svc.remove("data1", true),
            Err(VolumeError::InUse { .. })
        ));
        let dangling = Filters::from_flags(["dangling=true"]).expect("filters");
        let names: Vec<String> = svc
            .list(&dangling)
            .expect("list")
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(names, vec![anon.name.clone()]);
        // Prune without all=true removes only the anonymous one.
        let pruned = svc.prune(&Filters::new()).expect("prune");
        assert_eq!(pruned.deleted, vec![anon.name]);
        svc.release("data1", "c1");
        svc.remove("data1", false).expect("remove");
        assert!(!dir.path().join("volumes/data1").exists());
        // A reopened service sees what is on disk.
        svc.create(Some("kept"), None, HashMap::new(), HashMap::new())
            .expect("create");
        let again = VolumeService::open(dir.path()).expect("reopen");
        assert!(again.exists("kept"));
    }
}
