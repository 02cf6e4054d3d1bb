//! Linux namespaces of the container. See
//! <https://man7.org/linux/man-pages/man7/namespaces.7.html>.
//!
//! - **mnt**: the container's own mount table; its rootfs, /proc, /dev… live and die there.
//! - **pid**: the init is PID 1. `clone` (not `unshare`) is used because a new pid namespace
//!   only applies to children; joining one (`path`) works the same way: the parent points its
//!   `pid_for_children` at it around the clone, then back at its own.
//! - **net**, **ipc**, **uts**: fresh, or joined by `path` (`--network container:X`).
//! - **cgroup**: unshared by the init only after the parent moved it into its cgroup, so the
//!   namespace's root is the container's cgroup.
//! - **user**: id maps are written by the parent while the child waits.
//! - **time** namespaces are not supported (clone(2) cannot create them).
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::sync::{Failure, at};
use crate::sys::{CloneResult, clone_process};
use crate::{RuntimeError, Step};

/// Clone flag and /proc/<pid>/ns name of a namespace type.
pub(crate) fn describe(
    typ: LinuxNamespaceType,
) -> Result<(CloneFlags, &'static str), RuntimeError> {
    Ok(match typ {
        LinuxNamespaceType::Mount => (CloneFlags::CLONE_NEWNS, "mnt"),
        LinuxNamespaceType::Cgroup => (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
        LinuxNamespaceType::Uts => (CloneFlags::CLONE_NEWUTS, "uts"),
        LinuxNamespaceType::Ipc => (CloneFlags::CLONE_NEWIPC, "ipc"),
        LinuxNamespaceType::User => (CloneFlags::CLONE_NEWUSER, "user"),
        LinuxNamespaceType::Pid => (CloneFlags::CLONE_NEWPID, "pid"),
        LinuxNamespaceType::Network => (CloneFlags::CLONE_NEWNET, "net"),
        LinuxNamespaceType::Time => {
            return Err(RuntimeError::InvalidSpec {
                field: "linux.namespaces",
                reason: "time namespaces are not supported".to_owned(),
            });
        }
    })
}

/// The order namespaces are joined in: user first (it owns the others), then mnt, so from
/// the next step on the process's root and cwd are the container's, never the host's (the
/// other namespace files are open already).
fn join_rank(flag: CloneFlags) -> u8 {
    match flag {
        CloneFlags::CLONE_NEWUSER => 0,
        CloneFlags::CLONE_NEWNS => 1,
        _ => 2,
    }
}

/// An opened namespace file to setns into.
#[derive(Debug)]
pub(crate) struct Join {
    pub flag: CloneFlags,
    pub file: OwnedFd,
    pub path: PathBuf,
}

impl Join {
    pub(crate) fn open(flag: CloneFlags, path: &Path) -> Result<Self, RuntimeError> {
        let file = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| RuntimeError::nix("open namespace", path, e))?;
        Ok(Join {
            flag,
            file,
            path: path.to_owned(),
        })
    }

    pub(crate) fn enter(&self) -> Result<(), Failure> {
        setns(&self.file, self.flag).map_err(at(Step::JoinNamespace, &self.path))
    }
}

/// What the init does with namespaces.
#[derive(Debug)]
pub(crate) struct NamespacePlan {
    /// New namespaces created by clone.
    pub clone_flags: CloneFlags,
    /// A new cgroup namespace, unshared after joining the cgroup.
    pub new_cgroup: bool,
    /// A new user namespace (the parent writes its id maps).
    pub new_user: bool,
    /// Existing namespaces to join, in join order (pid excluded).
    pub joins: Vec<Join>,
    /// An existing pid namespace the parent clones into.
    pub join_pid: Option<Join>,
    /// The container has a mount namespace (new or joined).
    pub has_mount: bool,
}

impl NamespacePlan {
    pub(crate) fn new(namespaces: &[LinuxNamespace]) -> Result<Self, RuntimeError> {
        let mut plan = NamespacePlan::default();
        for ns in namespaces {
            let (flag, _) = describe(ns.typ())?;
            if flag == CloneFlags::CLONE_NEWNS {
                plan.has_mount = true;
            }
            match ns.path() {
                Some(path) if flag == CloneFlags::CLONE_NEWPID => {
                    plan.join_pid = Some(Join::open(flag, path)?)
                }
                Some(path) => plan.joins.push(Join::open(flag, path)?),
                None if flag == CloneFlags::CLONE_NEWCGROUP => plan.new_cgroup = true,
                None => {
                    plan.new_user |= flag == CloneFlags::CLONE_NEWUSER;
                    plan.clone_flags |= flag;
                }
            }
        }
        plan.joins.sort_by_key(|join| join_rank(join.flag));
        Ok(plan)
    }

    /// For `exec`: the namespaces of the running init `pid` that the spec gave it.
    pub(crate) fn of_process(
        pid: i32,
        namespaces: &[LinuxNamespace],
    ) -> Result<Self, RuntimeError> {
        let mut plan = NamespacePlan::default();
        for ns in namespaces {
            let (flag, name) = describe(ns.typ())?;
            let join = Join::open(flag, &PathBuf::from(format!("/proc/{pid}/ns/{name}")))?;
            if flag == CloneFlags::CLONE_NEWPID {
                plan.join_pid = Some(join);
            } else {
                plan.has_mount |= flag == CloneFlags::CLONE_NEWNS;
                plan.joins.push(join);
            }
        }
        plan.joins.sort_by_key(|join| join_rank(join.flag));
        Ok(plan)
    }
}

impl Default for NamespacePlan {
    fn default() -> Self {
        NamespacePlan {
            clone_flags: CloneFlags::empty(),
            new_cgroup: false,
            new_user: false,
            joins: Vec::new(),
            join_pid: None,
            has_mount: false,
        }
    }
}

impl NamespacePlan {
    /// Whether an existing user namespace is joined.
    pub(crate) fn joins_user(&self) -> bool {
        self.joins
            .iter()
            .any(|j| j.flag == CloneFlags::CLONE_NEWUSER)
    }

    /// setns into every namespace in `joins` (in the child).
    pub(crate) fn enter(&self) -> Result<(), Failure> {
        self.joins.iter().try_for_each(Join::enter)
    }
}

/// `clone` with the calling process's `pid_for_children` pointed at `target`, restored in
/// the parent afterwards: how a child lands in an existing pid namespace without a double
/// fork. (The child must not restore: our pid namespace is an ancestor of its own.)
pub(crate) fn clone_into(
    target: Option<&Join>,
    flags: CloneFlags,
) -> Result<CloneResult, RuntimeError> {
    let clone = || clone_process(flags.bits()).map_err(|e| RuntimeError::host("clone", "", e));
    let Some(target) = target else { return clone() };
    let own = Join::open(CloneFlags::CLONE_NEWPID, Path::new("/proc/self/ns/pid"))?;
    setns(&target.file, CloneFlags::CLONE_NEWPID)
        .map_err(|e| RuntimeError::nix("join pid namespace", &target.path, e))?;
    let result = clone();
    if matches!(result, Ok(CloneResult::Child)) {
        return result;
    }
    // Our own active pid namespace is always a valid target; if restoring failed anyway,
    // later children would land in the container, so report it.
    setns(&own.file, CloneFlags::CLONE_NEWPID)
        .map_err(|e| RuntimeError::nix("restore pid namespace", &own.path, e))?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_namespaces_become_clone_flags() {
        let spec = crate::spec::base_spec_for(true);
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .expect("ns");
        let plan = NamespacePlan::new(&namespaces).expect("plan");
        assert!(plan.clone_flags.contains(
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET
        ));
        assert!(
            !plan.clone_flags.contains(CloneFlags::CLONE_NEWCGROUP),
            "cgroup ns is unshared later"
        );
        assert!(plan.new_cgroup && plan.has_mount && !plan.new_user);
        assert!(plan.joins.is_empty() && plan.join_pid.is_none());
    }

    #[test]
    fn paths_are_joined_user_first_then_mount() {
        let ns = |typ, path: &str| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            ns.set_path(Some(PathBuf::from(path)));
            ns
        };
        let namespaces = vec![
            ns(LinuxNamespaceType::Mount, "/proc/self/ns/mnt"),
            ns(LinuxNamespaceType::Network, "/proc/self/ns/net"),
            ns(LinuxNamespaceType::User, "/proc/self/ns/user"),
            ns(LinuxNamespaceType::Pid, "/proc/self/ns/pid"),
        ];
        let plan = NamespacePlan::new(&namespaces).expect("plan");
        let order: Vec<CloneFlags> = plan.joins.iter().map(|j| j.flag).collect();
        assert_eq!(
            order,
            [
                CloneFlags::CLONE_NEWUSER,
                CloneFlags::CLONE_NEWNS,
                CloneFlags::CLONE_NEWNET
            ]
        );
        assert!(plan.join_pid.is_some());
        assert!(plan.clone_flags.is_empty());
    }

    #[test]
    fn missing_namespace_file_is_a_host_error() {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Network);
        ns.set_path(Some(PathBuf::from("/nonexistent/ns")));
        assert!(matches!(
            NamespacePlan::new(&[ns]),
            Err(RuntimeError::Host { .. })
        ));
    }
}
