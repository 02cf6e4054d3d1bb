//! mount(2) for the container: the overlay root, `spec.mounts` (filesystems and bind mounts),
//! the cgroup filesystem, masked and read-only paths.
//! See <https://man7.org/linux/man-pages/man2/mount.2.html>.
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

use berth_fs::Root;
use nix::fcntl::OFlag;

use crate::OverlayMount;
use crate::Step;
use crate::rootfs::path::{fd_path, mount_target};
use crate::sync::{Failure, at, at_io};

/// overlayfs options longer than this risk the one-page limit of mount(2)'s data argument.
const MAX_MOUNT_DATA: usize = 3000;

/// fstab-style options split into mount flags and filesystem data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// Flags to set.
    pub flags: MsFlags,
    /// Propagation changes applied after mounting, in order.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options (`mode=755,size=65536k`).
    pub data: String,
    /// `bind` or `rbind`.
    pub bind: bool,
}

/// Parses mount options the way runc does (unknown words are filesystem data).
pub(crate) fn parse_options(options: &[String]) -> MountOptions {
    let mut parsed = MountOptions {
        flags: MsFlags::empty(),
        propagation: Vec::new(),
        data: String::new(),
        bind: false,
    };
    let mut data: Vec<&str> = Vec::new();
    for option in options {
        let (set, clear) = match option.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                parsed.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                parsed.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                parsed
                    .propagation
                    .push(propagation(option).expect("listed above"));
                continue;
            }
            other => {
                data.push(other);
                continue;
            }
        };
        parsed.flags.insert(set);
        parsed.flags.remove(clear);
    }
    parsed.data = data.join(",");
    parsed
}

/// Mount propagation flags for `shared`, `rslave`, ….
pub(crate) fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// What a `spec.mounts` entry mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountKind {
    /// A host file or directory.
    Bind { source: PathBuf },
    /// The cgroup filesystem (the container's own cgroups, read-only).
    Cgroup,
    /// Any other filesystem.
    Filesystem { fstype: String, source: String },
}

/// One prepared `spec.mounts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountPlan {
    /// Path inside the container.
    pub destination: PathBuf,
    pub kind: MountKind,
    pub options: MountOptions,
}

impl MountPlan {
    /// Prepares `mount`; relative bind sources are relative to `bundle`. A bind mount takes
    /// no filesystem data (the kernel would ignore it): an option berth does not know there
    /// (a misspelt propagation, runc's recursive `rro`…) is refused rather than dropped.
    pub(crate) fn new(
        entry: &oci_spec::runtime::Mount,
        bundle: &Path,
    ) -> Result<Self, crate::RuntimeError> {
        let options = parse_options(entry.options().as_deref().unwrap_or_default());
        let fstype = entry.typ().clone().unwrap_or_default();
        let source = entry.source().clone().unwrap_or_default();
        let kind = if options.bind || fstype == "bind" {
            if !options.data.is_empty() {
                return Err(crate::RuntimeError::InvalidSpec {
                    field: "mounts.options",
                    reason: format!(
                        "unknown option {:?} for the bind mount at {}",
                        options.data,
                        entry.destination().display()
                    ),
                });
            }
            MountKind::Bind {
                source: bundle.join(source),
            }
        } else if fstype == "cgroup" || fstype == "cgroup2" {
            MountKind::Cgroup
        } else {
            MountKind::Filesystem {
                fstype,
                source: source.to_string_lossy().into_owned(),
            }
        };
        Ok(MountPlan {
            destination: entry.destination().clone(),
            kind,
            options,
        })
    }
}

/// overlayfs' data argument, with paths relative to `base` when given.
pub(crate) fn overlay_data(overlay: &OverlayMount, base: Option<&Path>) -> String {
    let show = |path: &Path| {
        let shown = base
            .and_then(|base| path.strip_prefix(base).ok())
            .unwrap_or(path);
        // overlayfs splits lowerdir on ':' and options on ','; a backslash escapes both.
        let mut escaped = String::new();
        for c in shown.to_string_lossy().chars() {
            if matches!(c, ':' | ',' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        escaped
    };
    let lower: Vec<String> = overlay.lowerdirs.iter().map(|dir| show(dir)).collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        show(&overlay.upperdir),
        show(&overlay.workdir)
    )
}

/// The deepest directory containing every layer dir, upper and work dir.
fn common_parent(overlay: &OverlayMount) -> Option<PathBuf> {
    let mut dirs = overlay
        .lowerdirs
        .iter()
        .chain([&overlay.upperdir, &overlay.workdir]);
    let mut common = dirs.next()?.parent()?.to_owned();
    for dir in dirs {
        while !dir.starts_with(&common) {
            common = common.parent()?.to_owned();
        }
    }
    Some(common)
}

/// Mounts `overlay` at `target`. When the options would not fit in one page, mounts from the
/// layers' common parent with relative paths (the child process's cwd is its own).
pub(crate) fn mount_overlay(overlay: &OverlayMount, target: &Path) -> Result<(), Failure> {
    let mut data = overlay_data(overlay, None);
    if data.len() > MAX_MOUNT_DATA
        && let Some(base) = common_parent(overlay)
    {
        nix::unistd::chdir(&base).map_err(at(Step::MountOverlay, &base))?;
        data = overlay_data(overlay, Some(&base));
    }
    if data.len() > MAX_MOUNT_DATA {
        return Err(Failure::new(Step::MountOverlay, target, nix::Error::E2BIG));
    }
    let volatile = overlay.volatile && data.len() + VOLATILE.len() <= MAX_MOUNT_DATA;
    if volatile {
        // A volatile mount leaves this mark, and overlayfs refuses a work dir that has it
        // (it cannot tell a clean unmount from a crash): a second run of the same writable
        // layer (none today: `--rm` removes the container at its first exit) would fail.
        let _ = std::fs::remove_dir_all(overlay.workdir.join("work/incompat/volatile"));
    }
    mount_overlayfs(target, &data, volatile).map_err(at(Step::MountOverlay, target))
}

/// overlayfs' `volatile` option, appended to the mount data.
const VOLATILE: &str = ",volatile";

/// Mounts an overlay with the options `data` at `target`; with `volatile`, with overlayfs'
/// `volatile` option (no sync reaches the upper file system, not even the one at unmount)
/// where the kernel has it, else (before 5.10) a plain mount.
pub fn mount_overlayfs(target: &Path, data: &str, volatile: bool) -> nix::Result<()> {
    let plain = |data: &str| {
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data),
        )
    };
    if volatile {
        match plain(&format!("{data}{VOLATILE}")) {
            // An older kernel does not know the option.
            Err(nix::Error::EINVAL) => {}
            other => return other,
        }
    }
    plain(data)
}

/// Host facts the mounts need, read before pivot_root.
#[derive(Debug, Clone)]
pub(crate) struct CgroupHost {
    /// Normally `/sys/fs/cgroup`.
    pub root: PathBuf,
    /// The container has its own cgroup namespace.
    pub namespaced: bool,
    /// The mounts are made in a user namespace: the kernel locks the flags of mounts that
    /// came from the host, and some filesystems cannot be mounted (see [`crate::user_ns`]).
    pub user_namespace: bool,
}

/// Mount flags the kernel locked on the mount `target` is on (from the host, seen from a user
/// namespace): a remount must keep them or fails with EPERM. The atime kind is locked too.
pub(crate) fn locked_flags(target: &Path) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let Ok(stat) = nix::sys::statvfs::statvfs(target) else {
        return MsFlags::empty();
    };
    let flags = stat.flags();
    let pairs = [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    pairs
        .into_iter()
        .filter(|(st, _)| flags.contains(*st))
        .fold(MsFlags::empty(), |acc, (_, ms)| acc | ms)
}

/// `flags` for a bind remount of `target`: in a user namespace, with the locked flags of
/// the mount kept.
fn remount_flags(flags: MsFlags, target: &Path, user_namespace: bool) -> MsFlags {
    if !user_namespace {
        return flags;
    }
    let atime = MsFlags::MS_NOATIME
        | MsFlags::MS_NODIRATIME
        | MsFlags::MS_RELATIME
        | MsFlags::MS_STRICTATIME;
    let locked = locked_flags(target);
    let mut flags = flags
        | (locked
            & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC));
    if (flags & atime).is_empty() {
        flags |= locked & atime;
    }
    flags
}

/// Where a user namespace cannot mount a filesystem of its own (sysfs without a network
/// namespace it owns, mqueue without an IPC one), the host's is bind-mounted, as runc does.
fn host_fallback(fstype: &str) -> Option<&'static str> {
    match fstype {
        "sysfs" => Some("/sys"),
        "mqueue" => Some("/dev/mqueue"),
        _ => None,
    }
}

/// Filesystems that must be mounted on a real directory, never through a symlink: a
/// container's procfs or sysfs elsewhere than it believes would leave the real /proc/sys,
/// /proc/kcore… unmasked (runc refuses the same).
const ORDINARY_DIRECTORY_ONLY: [&str; 2] = ["proc", "sysfs"];

/// Mounts one `spec.mounts` entry inside `root`. The target is resolved inside the root and
/// mounted through its descriptor; after each mount the target is opened again, so flags and
/// propagation apply to the new mount, not to what it covers.
pub(crate) fn mount_entry(
    root: &Root,
    plan: &MountPlan,
    cgroup: &CgroupHost,
) -> Result<(), Failure> {
    let destination = plan.destination.as_path();
    let target_error = at_io(Step::CreateMountTarget, destination);
    let options = &plan.options;
    match &plan.kind {
        MountKind::Bind { source } => {
            // The source is opened once and mounted from its descriptor: a symlink swapped in
            // after the check cannot redirect the mount elsewhere.
            let fd = nix::fcntl::open(
                source.as_path(),
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(at(Step::Mount, source))?;
            let is_file = nix::sys::stat::fstat(&fd)
                .map(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR)
                .map_err(at(Step::Mount, source))?;
            let target = mount_target(root, destination, is_file).map_err(target_error)?;
            let bind_flags = options.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
            mount(
                Some(fd_path(&fd).as_path()),
                &fd_path(&target),
                None::<&str>,
                bind_flags,
                None::<&str>,
            )
            .map_err(at(Step::Mount, destination))?;
            // A bind mount ignores every other flag; they take a remount.
            let extra = options.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
            if !extra.is_empty() {
                remount_bind(root, destination, extra, cgroup.user_namespace)?;
            }
        }
        MountKind::Cgroup => {
            let target = mount_target(root, destination, false).map_err(target_error)?;
            mount_cgroup(root, destination, &target, options.flags, cgroup)?;
        }
        MountKind::Filesystem { fstype, source } => {
            if ORDINARY_DIRECTORY_ONLY.contains(&fstype.as_str()) {
                refuse_symlink(root, destination)?;
            }
            let target = mount_target(root, destination, false).map_err(target_error)?;
            let data = (!options.data.is_empty()).then_some(options.data.as_str());
            let mounted = mount(
                Some(source.as_str()),
                &fd_path(&target),
                Some(fstype.as_str()),
                options.flags,
                data,
            );
            match (mounted, host_fallback(fstype)) {
                (Ok(()), _) => {}
                (Err(nix::Error::EPERM), Some(host)) if cgroup.user_namespace => {
                    mount(
                        Some(host),
                        &fd_path(&target),
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&str>,
                    )
                    .map_err(at(Step::Mount, destination))?;
                    let extra = options.flags - MsFlags::MS_REMOUNT;
                    if !extra.is_empty() {
                        remount_bind(root, destination, extra, true)?;
                    }
                }
                (Err(errno), _) => return Err(Failure::new(Step::Mount, destination, errno)),
            }
        }
    }
    if !options.propagation.is_empty() {
        let mounted = reopen(root, destination)?;
        for flags in &options.propagation {
            mount(
                None::<&str>,
                &fd_path(&mounted),
                None::<&str>,
                *flags,
                None::<&str>,
            )
            .map_err(at(Step::MountPropagation, destination))?;
        }
    }
    Ok(())
}

/// Remounts the bind mount at `destination` with `flags` (kept locked flags in a user
/// namespace).
fn remount_bind(
    root: &Root,
    destination: &Path,
    flags: MsFlags,
    user_namespace: bool,
) -> Result<(), Failure> {
    let mounted = reopen(root, destination)?;
    let path = fd_path(&mounted);
    let flags = remount_flags(flags, &path, user_namespace);
    mount(
        None::<&str>,
        &path,
        None::<&str>,
        flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
        None::<&str>,
    )
    .map_err(at(Step::RemountBind, destination))
}

/// The mount target `destination` opened again (after something was mounted on it).
fn reopen(root: &Root, destination: &Path) -> Result<OwnedFd, Failure> {
    root.open_path(destination, true)
        .map_err(at_io(Step::Mount, destination))
}

/// Refuses to mount `fstype` at `destination` when the last component exists and is not a
/// directory (a symlink above all).
fn refuse_symlink(root: &Root, destination: &Path) -> Result<(), Failure> {
    match root.lstat(destination) {
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => Err(Failure::new(
            Step::MountOnNonDirectory,
            destination,
            nix::Error::ENOTDIR,
        )),
        _ => Ok(()),
    }
}

/// One line of /proc/self/cgroup: hierarchy controllers and the process's path in it.
fn own_cgroups() -> io::Result<Vec<(String, String)>> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?.to_owned();
            let path = parts.next()?.to_owned();
            Some((controllers, path))
        })
        .collect())
}

/// Makes (or reuses) directory `name` in the cgroup tmpfs and opens it as a mount target.
fn tmpfs_dir(tmpfs: &OwnedFd, name: &Path, shown: &Path) -> Result<OwnedFd, Failure> {
    // The tmpfs is fresh and ours: its entries are made relative to its descriptor.
    match nix::sys::stat::mkdirat(tmpfs, name, nix::sys::stat::Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(nix::Error::EEXIST) => {}
        Err(errno) => return Err(Failure::new(Step::CreateMountTarget, shown, errno)),
    }
    nix::fcntl::openat(
        tmpfs,
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(at(Step::CreateMountTarget, shown))
}

/// A `/proc/self/mountinfo` line's mount point, filesystem type and super options.
fn mountinfo_fields(line: &str) -> Option<(&str, &str, &str)> {
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    Some((
        *fields.get(4)?,
        *fields.get(sep + 1)?,
        *fields.get(sep + 3)?,
    ))
}

/// The container's own cgroup path in a host hierarchy of type `fstype` (`cgroup2`, or v1
/// `cgroup` with `super_options` naming its controllers), from `/proc/self/cgroup`'s lines.
fn own_subpath(own: &[(String, String)], fstype: &str, super_options: &str) -> Option<String> {
    match fstype {
        "cgroup2" => own
            .iter()
            .find(|(c, _)| c.is_empty())
            .map(|(_, p)| p.clone()),
        "cgroup" => {
            let opts: Vec<&str> = super_options.split(',').collect();
            own.iter()
                .find(|(controllers, _)| {
                    !controllers.is_empty() && controllers.split(',').all(|c| opts.contains(&c))
                })
                .map(|(_, p)| p.clone())
        }
        _ => None,
    }
}

/// `cpu` and `cpuacct` name the `cpu,cpuacct` hierarchy, as on the host: one symlink per
/// controller of a joint hierarchy `name`, in the fresh tmpfs.
fn link_aliases(tmpfs: &OwnedFd, name: &str, destination: &Path) -> Result<(), Failure> {
    if !name.contains(',') {
        return Ok(());
    }
    for alias in name.split(',') {
        match nix::unistd::symlinkat(name, tmpfs, alias) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(errno) => {
                return Err(Failure::new(
                    Step::CreateSymlink,
                    &destination.join(alias),
                    errno,
                ));
            }
        }
    }
    Ok(())
}

/// The cgroup filesystem as runc shows it: cgroup2 itself in a cgroup namespace; otherwise
/// read-only binds of the container's own cgroup directories (one per v1 hierarchy, under a
/// tmpfs), so the container sees its limits and nothing of its siblings. `target` is the
/// prepared mount point, `destination` its path inside `root` (to reopen it once mounted).
fn mount_cgroup(
    root: &Root,
    destination: &Path,
    target: &OwnedFd,
    flags: MsFlags,
    host: &CgroupHost,
) -> Result<(), Failure> {
    let flags = flags - MsFlags::MS_RDONLY;
    let readonly = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let cgroup2 = crate::spec::is_cgroup2_root(&host.root);
    if cgroup2 && host.namespaced {
        return mount(
            Some("cgroup2"),
            &fd_path(target),
            Some("cgroup2"),
            flags | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(at(Step::Mount, destination));
    }
    let own = own_cgroups().map_err(at_io(Step::Mount, Path::new("/proc/self/cgroup")))?;
    let bind_ro = |source: &Path, target: &OwnedFd, shown: &Path| -> Result<(), Failure> {
        mount(
            Some(source),
            &fd_path(target),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(at(Step::Mount, shown))?;
        let mounted = reopen(root, shown)?;
        mount(
            None::<&str>,
            &fd_path(&mounted),
            None::<&str>,
            readonly | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(at(Step::RemountBind, shown))
    };
    if cgroup2 {
        let path = own
            .iter()
            .find(|(controllers, _)| controllers.is_empty())
            .map(|(_, p)| p.as_str())
            .unwrap_or("/");
        return bind_ro(
            &host.root.join(path.trim_start_matches('/')),
            target,
            destination,
        );
    }
    mount(
        Some("tmpfs"),
        &fd_path(target),
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )
    .map_err(at(Step::Mount, destination))?;
    let tmpfs = reopen(root, destination)?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(at_io(Step::Mount, Path::new("/proc/self/mountinfo")))?;
    for line in mountinfo.lines() {
        let Some((mount_point, fstype, super_options)) = mountinfo_fields(line) else {
            continue;
        };
        let mount_point = Path::new(mount_point);
        let Ok(name) = mount_point.strip_prefix(&host.root) else {
            continue;
        };
        if name.as_os_str().is_empty() || name.components().count() != 1 {
            continue;
        }
        let Some(subpath) = own_subpath(&own, fstype, super_options) else {
            continue;
        };
        let shown = destination.join(name);
        let sub = tmpfs_dir(&tmpfs, name, &shown)?;
        bind_ro(
            &mount_point.join(subpath.trim_start_matches('/')),
            &sub,
            &shown,
        )?;
        link_aliases(&tmpfs, &name.to_string_lossy(), destination)?;
    }
    mount(
        None::<&str>,
        &fd_path(&tmpfs),
        None::<&str>,
        flags | readonly | MsFlags::MS_REMOUNT,
        Some("mode=755"),
    )
    .map_err(at(Step::RemountBind, destination))
}

/// Hides `path` (after pivot_root): /dev/null over files, an empty read-only tmpfs over
/// directories; missing paths are fine.
pub(crate) fn mask_path(path: &Path) -> Result<(), Failure> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(Failure::io(Step::MaskPath, path, &err)),
    };
    let result = if metadata.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    result.map_err(at(Step::MaskPath, path))
}

/// Makes `path` read-only (after pivot_root); missing paths are fine.
pub(crate) fn readonly_path(path: &Path, user_namespace: bool) -> Result<(), Failure> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(nix::Error::ENOENT) => return Ok(()),
        Err(errno) => return Err(Failure::new(Step::ReadonlyPath, path, errno)),
    }
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let flags = remount_flags(flags, path, user_namespace) | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .map_err(at(Step::ReadonlyPath, path))
}

/// Remounts the container's `/` read-only (after pivot_root).
pub(crate) fn readonly_root(user_namespace: bool) -> Result<(), Failure> {
    let flags = remount_flags(MsFlags::MS_RDONLY, Path::new("/"), user_namespace)
        | MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(at(Step::ReadonlyRoot, Path::new("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn flags_and_data_split_like_runc() {
        let parsed = parse_options(&opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]));
        assert_eq!(parsed.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(parsed.data, "mode=755,size=65536k");
        assert!(!parsed.bind);
    }

    #[test]
    fn bind_options_and_propagation() {
        let parsed = parse_options(&opts(&["rbind", "ro", "rprivate", "rw"]));
        assert!(parsed.bind);
        assert_eq!(parsed.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(
            parsed.propagation,
            vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]
        );
    }

    #[test]
    fn mount_plans_classify_entries() {
        let spec = crate::spec::base_spec_for(false);
        let plans: Vec<MountPlan> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| MountPlan::new(m, Path::new("/b")).expect("valid"))
            .collect();
        assert!(
            matches!(plans[0].kind, MountKind::Filesystem { ref fstype, .. } if fstype == "proc")
        );
        assert_eq!(plans[4].kind, MountKind::Cgroup);
        let mut bind = oci_spec::runtime::Mount::default();
        bind.set_destination("/etc/hosts".into());
        bind.set_typ(Some("bind".into()));
        bind.set_source(Some("hosts".into()));
        bind.set_options(Some(opts(&["rbind", "ro"])));
        let plan = MountPlan::new(&bind, Path::new("/b")).expect("valid");
        assert_eq!(
            plan.kind,
            MountKind::Bind {
                source: "/b/hosts".into()
            }
        );
        assert!(plan.options.flags.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn unknown_bind_options_are_refused() {
        let mut bind = oci_spec::runtime::Mount::default();
        bind.set_destination("/data".into());
        bind.set_typ(Some("bind".into()));
        bind.set_source(Some("/srv".into()));
        bind.set_options(Some(opts(&["rbind", "rsharred"])));
        let err = MountPlan::new(&bind, Path::new("/b")).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid runtime spec: mounts.options: unknown option \"rsharred\" for the bind mount at /data"
        );
        bind.set_options(Some(opts(&["rbind", "rshared", "ro"])));
        let plan = MountPlan::new(&bind, Path::new("/b")).expect("valid");
        assert_eq!(
            plan.options.propagation,
            vec![MsFlags::MS_SHARED | MsFlags::MS_REC]
        );
    }

    #[test]
    fn locked_flags_of_a_mount_are_read() {
        // What /proc/self/mounts says of /proc, as mount flags.
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
        let options = mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some("/proc"))
            .and_then(|l| l.split(' ').nth(3))
            .expect("/proc is mounted");
        let parsed = parse_options(
            &options
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<String>>(),
        );
        let locked = locked_flags(Path::new("/proc"));
        let kinds = MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_NOATIME
            | MsFlags::MS_RELATIME;
        assert_eq!(locked & kinds, parsed.flags & kinds, "{options}");
        let kept = remount_flags(MsFlags::MS_RDONLY, Path::new("/proc"), true);
        assert!(kept.contains(MsFlags::MS_RDONLY | (locked & MsFlags::MS_NOSUID)));
        assert_eq!(
            remount_flags(MsFlags::MS_RDONLY, Path::new("/proc"), false),
            MsFlags::MS_RDONLY
        );
    }

    #[test]
    fn overlay_data_lists_layers_topmost_first() {
        let overlay = OverlayMount {
            lowerdirs: vec!["/l/2".into(), "/l/1".into()],
            upperdir: "/c/up".into(),
            workdir: "/c/work".into(),
            volatile: false,
        };
        assert_eq!(
            overlay_data(&overlay, None),
            "lowerdir=/l/2:/l/1,upperdir=/c/up,workdir=/c/work"
        );
    }

    #[test]
    fn long_overlay_data_goes_relative() {
        let base = PathBuf::from("/var/lib/berth/image/overlay/snapshots");
        let overlay = OverlayMount {
            lowerdirs: (0..60).map(|i| base.join(format!("{i:064}/fs"))).collect(),
            upperdir: base.join("c/up"),
            workdir: base.join("c/work"),
            volatile: false,
        };
        assert!(overlay_data(&overlay, None).len() > MAX_MOUNT_DATA);
        let common = common_parent(&overlay).expect("common parent");
        assert_eq!(common, base);
        let relative = overlay_data(&overlay, Some(&common));
        assert!(relative.starts_with(&format!("lowerdir={:064}/fs:", 0)));
        assert!(relative.len() < overlay_data(&overlay, None).len());
    }

    #[test]
    fn overlay_escapes_separators() {
        let overlay = OverlayMount {
            lowerdirs: vec!["/a:b".into()],
            upperdir: "/u,v".into(),
            workdir: "/w".into(),
            volatile: false,
        };
        assert_eq!(
            overlay_data(&overlay, None),
            "lowerdir=/a\\:b,upperdir=/u\\,v,workdir=/w"
        );
    }
}
