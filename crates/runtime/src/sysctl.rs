//! Kernel parameters (`linux.sysctl`, Docker's `--sysctl`). See
//! <https://docs.kernel.org/admin-guide/sysctl/>.
//!
//! Most of /proc/sys is global: a value written from inside a container changes the host
//! (`kernel.core_pattern=|/x` runs `/x` as root on the host at the next crash). Only the
//! parameters that a namespace of the container's own scopes are allowed, with runc's rules
//! and messages: the System V IPC and POSIX message queue ones with a private ipc namespace,
//! `net.*` outside the host's network namespace, `kernel.domainname` with a private uts
//! namespace. They are written by the init, inside those namespaces, before /proc/sys is made
//! read-only, through a descriptor of the container's own /proc/sys.
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// System V IPC parameters, scoped by the ipc namespace.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The network namespace a container runs in, as far as sysctls care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkNamespace {
    /// The host's own (`--network host`, or no network namespace in the spec).
    Host,
    /// One of its own or another container's.
    Private,
}

/// The namespaces that decide which sysctls a container may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysctlNamespaces {
    /// A private ipc namespace (new or joined).
    pub ipc: bool,
    /// A private uts namespace.
    pub uts: bool,
    /// The network namespace.
    pub network: NetworkNamespace,
}

/// Whether `key` may be set in a container with `namespaces`; `Err` holds runc's message.
pub fn check(key: &str, namespaces: SysctlNamespaces) -> Result<(), String> {
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        if namespaces.ipc {
            return path_of(key).map(drop);
        }
        return Err(format!(
            "sysctl {key:?} is not allowed in the hosts ipc namespace"
        ));
    }
    if key.starts_with("net.") {
        if namespaces.network == NetworkNamespace::Host {
            return Err(format!(
                "sysctl {key:?} not allowed in host network namespace"
            ));
        }
        return path_of(key).map(drop);
    }
    if namespaces.uts {
        match key {
            "kernel.domainname" => return Ok(()),
            "kernel.hostname" => {
                return Err(format!(
                    "sysctl {key:?} is not allowed as it conflicts with the OCI \"hostname\" field"
                ));
            }
            _ => {}
        }
    }
    Err(format!(
        "sysctl {key:?} is not in a separate kernel namespace"
    ))
}

/// The file of `key` relative to /proc/sys. Dots separate levels and a `/` stands for a dot
/// inside a level (`net.ipv4.conf.eth0/100.forwarding` is `net/ipv4/conf/eth0.100/forwarding`),
/// as sysctl(8) and runc read them. A level that is empty, `.` or `..` is refused: the path
/// must name a file below the key's own prefix, nothing else.
pub(crate) fn path_of(key: &str) -> Result<PathBuf, String> {
    let swapped: String = key
        .chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            other => other,
        })
        .collect();
    let invalid = || format!("sysctl {key:?} is not a valid sysctl name");
    if swapped
        .split('/')
        .any(|level| matches!(level, "" | "." | ".."))
    {
        return Err(invalid());
    }
    let path = PathBuf::from(swapped);
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid());
    }
    Ok(path)
}

/// Writes `value` to `relative` (from [`path_of`]) under the /proc/sys of the calling process,
/// resolved beneath it without following any symlink or leaving its mount.
pub(crate) fn write(proc_sys: &OwnedFd, relative: &Path, value: &str) -> std::io::Result<()> {
    let how = OpenHow::new()
        .flags(OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    let file = nix::fcntl::openat2(proc_sys.as_fd(), relative, how)?;
    nix::unistd::write(&file, value.as_bytes())?;
    Ok(())
}

/// Opens the calling process's /proc/sys; refuses anything but procfs there.
pub(crate) fn open_proc_sys() -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        "/proc/sys",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let fs = nix::sys::statfs::fstatfs(&fd)?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(std::io::Error::from_raw_os_error(libc::EXDEV));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE: SysctlNamespaces = SysctlNamespaces {
        ipc: true,
        uts: true,
        network: NetworkNamespace::Private,
    };
    const HOST: SysctlNamespaces = SysctlNamespaces {
        ipc: false,
        uts: false,
        network: NetworkNamespace::Host,
    };

    #[test]
    fn namespaced_sysctls_pass_with_their_namespace() {
        for key in [
            "kernel.shmmax",
            "kernel.sem",
            "fs.mqueue.msg_max",
            "net.ipv4.ip_forward",
            "net.ipv4.conf.eth0/100.forwarding",
            "kernel.domainname",
        ] {
            assert_eq!(check(key, PRIVATE), Ok(()), "{key}");
        }
    }

    #[test]
    fn global_sysctls_are_refused_in_runcs_words() {
        assert_eq!(
            check("kernel.core_pattern", PRIVATE),
            Err("sysctl \"kernel.core_pattern\" is not in a separate kernel namespace".into())
        );
        assert!(check("vm.overcommit_memory", PRIVATE).is_err());
        assert!(check("fs.file-max", PRIVATE).is_err());
        assert_eq!(
            check("kernel.hostname", PRIVATE),
            Err(
                "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field"
                    .into()
            )
        );
    }

    #[test]
    fn host_namespaces_refuse_their_sysctls() {
        assert_eq!(
            check("net.ipv4.ip_forward", HOST),
            Err("sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace".into())
        );
        assert_eq!(
            check("kernel.shmmax", HOST),
            Err("sysctl \"kernel.shmmax\" is not allowed in the hosts ipc namespace".into())
        );
        assert!(check("kernel.domainname", HOST).is_err());
    }

    #[test]
    fn keys_never_climb_out_of_their_prefix() {
        assert_eq!(
            path_of("net.ipv4.conf.eth0/100.forwarding"),
            Ok(PathBuf::from("net/ipv4/conf/eth0.100/forwarding"))
        );
        for key in [
            "net.//.kernel.core_pattern",
            "net..kernel",
            "net./..",
            "net.",
            "net.ipv4..x",
        ] {
            assert!(check(key, PRIVATE).is_err(), "{key}");
        }
    }
}
