//! berth's own OCI runtime: namespaces, rootfs (overlayfs, pivot_root, /proc, /dev, …),
//! cgroups (via `berth-cgroups`), capabilities, seccomp, rlimits, user, exec.
//!
//! The runtime spec ([`Spec`], from `oci-spec`) is the contract: the container service
//! builds one from [`base_spec`] (Docker's defaults) and the user's options, and the monitor
//! calls [`create`] then [`PendingInit::start`], and [`exec`] for `docker exec`.
//!
//! Lifecycle of a container init:
//!
//! 1. [`create`] validates and converts the spec in the caller, creates the cgroup, and
//!    clones the init straight into its new namespaces;
//! 2. the init mounts its root filesystem and `spec.mounts`, pivots into it, applies masked
//!    and read-only paths, sysctls, hostname, rlimits, user, capabilities and seccomp, then
//!    blocks;
//! 3. [`PendingInit::start`] releases it: it resolves `argv[0]` on the container's `PATH` and
//!    execs, or reports Docker's exec error ([`RuntimeError::Exec`]);
//! 4. the caller reaps it; [`cleanup`] removes its cgroup.
//!
//! `berth oci` ([`oci_main`]) offers the same through runc's command line.
//!
//! Every `unsafe` is in the private `sys` module (one call per block, each with its
//! `// SAFETY:`); the crate root denies it everywhere else.
#![warn(missing_docs)]
// Raw system calls live in `sys` only.
#![deny(unsafe_code)]

mod capabilities;
mod console;
mod error;
mod exe;
mod features;
mod hooks;
mod init;
mod namespaces;
mod oci;
mod process;
mod resources;
mod rootfs;
mod seccomp;
mod spec;
mod state;
mod sync;
#[allow(unsafe_code)]
mod sys;
pub mod sysctl;
mod tenant;
mod user_ns;
mod validate;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub use error::{RuntimeError, Step};
pub use exe::{harden_process, reexec_sealed, running_executable_is_writable, sealed_executable};

/// Spec annotation asking for `--init`: PID 1 is a small reaper that forwards signals to the
/// container's program (berth's built-in runtime only).
pub const INIT_ANNOTATION: &str = "org.berth.init";
pub use init::{PendingInit, create, create_with};
pub use oci::oci_main;
pub use oci_spec::runtime::{Process, Spec};
pub use rootfs::mount::mount_overlayfs;
pub use seccomp::default_seccomp;
pub use spec::{DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, base_spec};
pub use tenant::{exec, exec_with};
pub use user_ns::{IdRange, subordinate_ids};

/// An overlay root filesystem the init mounts at `spec.root.path` inside its own mount
/// namespace (so it vanishes with the container: nothing to unmount on the host).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OverlayMount {
    /// Read-only layers, topmost first.
    pub lowerdirs: Vec<PathBuf>,
    /// The container's writable layer.
    pub upperdir: PathBuf,
    /// overlayfs' work directory (same filesystem as upperdir).
    pub workdir: PathBuf,
    /// Mount with overlayfs' `volatile`: no sync reaches the upper file system, not even the
    /// one at unmount, which otherwise waits for every dirty page of that file system (a
    /// container's exit took ~0.8 s beside a 1.5 GB write). For a container removed when it
    /// exits (`--rm`), whose writable layer no crash needs to keep. A kernel without the
    /// option (before 5.10) gets a plain mount.
    #[serde(default)]
    pub volatile: bool,
}

/// The standard streams of a container process.
#[derive(Debug)]
pub struct InitStdio {
    /// stdin.
    pub stdin: OwnedFd,
    /// stdout.
    pub stdout: OwnedFd,
    /// stderr.
    pub stderr: OwnedFd,
    /// The three are one pty slave: make it the controlling terminal (setsid + TIOCSCTTY).
    pub console: bool,
}

/// Where a container process's standard streams come from.
#[derive(Debug)]
pub enum ProcessIo {
    /// Given by the caller (pipes, `/dev/null`, or a pty the caller made).
    Stdio(InitStdio),
    /// A new pty in the container's own devpts: the process opens the container's
    /// `/dev/ptmx` (after its mounts, or after joining the container's mount namespace for
    /// `exec`), sizes it, sends the master over this connected unix socket (SCM_RIGHTS, runc's
    /// `--console-socket` protocol) and makes the slave its three streams and controlling
    /// terminal. No host pty is used.
    Console {
        /// The caller keeps the other end and receives the master on it.
        socket: OwnedFd,
        /// Initial size (rows, columns).
        size: Option<(u16, u16)>,
    },
}

impl From<InitStdio> for ProcessIo {
    fn from(stdio: InitStdio) -> Self {
        ProcessIo::Stdio(stdio)
    }
}

/// Host-side settings of [`create_with`] and [`exec_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Where compiled seccomp programs are kept between containers (compiling Docker's
    /// profile costs ~20 ms; loading a cached one ~0.1 ms). `None` compiles every time.
    pub seccomp_cache: Option<PathBuf>,
    /// The container's processes (its init, and every `exec`) get `SIGKILL` when the process
    /// that created them dies (`PR_SET_PDEATHSIG`, set as the last step before `execve`), so a
    /// container never outlives its monitor unnoticed. Off for `berth oci`, whose parent
    /// (`berth oci create`) exits once the container is created, as runc's does.
    pub die_with_parent: bool,
}

impl Default for RuntimeOptions {
    /// Caches under `/run/berth/seccomp`.
    fn default() -> Self {
        RuntimeOptions {
            seccomp_cache: Some(PathBuf::from("/run/berth/seccomp")),
            die_with_parent: false,
        }
    }
}

/// Parses a signal as users type it: `HUP`, `SIGHUP`, `sighup` or `1`; also `RTMIN+3`.
pub fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(number) = s.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&number).then_some(number);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(offset) = name.strip_prefix("RTMIN") {
        let offset: i32 = if offset.is_empty() {
            0
        } else {
            offset.strip_prefix('+')?.parse().ok()?
        };
        let signal = libc::SIGRTMIN() + offset;
        return (signal <= libc::SIGRTMAX()).then_some(signal);
    }
    if let Some(offset) = name.strip_prefix("RTMAX") {
        let offset: i32 = if offset.is_empty() {
            0
        } else {
            offset.strip_prefix('-')?.parse().ok()?
        };
        let signal = libc::SIGRTMAX() - offset;
        return (signal >= libc::SIGRTMIN()).then_some(signal);
    }
    let name = match name {
        // Names Go/Docker accept that nix spells differently.
        "IOT" => "ABRT",
        "POLL" => "IO",
        "CLD" => "CHLD",
        other => other,
    };
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|signal| signal as i32)
}

/// Removes what `create` made on the host (the cgroup) after the container exited.
pub fn cleanup(spec: &Spec) -> Result<(), RuntimeError> {
    match init::CgroupPlan::from_spec(spec)? {
        Some(cgroup) => cgroup.handle().destroy().map_err(|e| cgroup.error(e)),
        None => Ok(()),
    }
}

/// The cgroupfs mount point `create` and `exec` use.
pub fn cgroup_root() -> &'static Path {
    Path::new(init::CGROUP_ROOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_in_every_spelling() {
        for input in ["HUP", "SIGHUP", "sighup", "1", " hup "] {
            assert_eq!(parse_signal(input), Some(libc::SIGHUP), "{input}");
        }
        assert_eq!(parse_signal("KILL"), Some(9));
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("RTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(parse_signal("IOT"), Some(libc::SIGABRT));
        for bad in ["", "0", "65", "NOPE", "-1", "SIGRTMIN+99"] {
            assert_eq!(parse_signal(bad), None, "{bad}");
        }
    }

    #[test]
    fn cleanup_without_cgroup_does_nothing() {
        let spec = spec::base_spec_for(false);
        cleanup(&spec).expect("nothing to clean");
    }
}
