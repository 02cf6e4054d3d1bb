//! The last steps before the container's program runs, shared by the init and `exec`:
//! oom_score_adj, rlimits, umask, working directory, user and groups, capabilities,
//! no_new_privs, seccomp, waiting for `start`, then `execve`.
//!
//! Seccomp order: a profile may forbid any system call berth makes, so everything that
//! touches files or /proc (oom_score_adj, the working directory, marking inherited descriptors
//! close-on-exec, finding the program) happens before the filter is loaded. With
//! no_new_privs the filter is the last step before `execve` (after the start gate and the
//! startContainer hooks). Without it, loading needs CAP_SYS_ADMIN, so, as in runc, it is
//! loaded before capabilities are dropped, and only these follow it: `prctl` (bounding set,
//! keepcaps, ambient), `setgroups`, `setresgid`, `setresuid`, `capget`/`capset`, the gate's
//! `read`/`write` on its pipe or `openat`+`write`+`close` of the exec fifo, the hooks' and
//! `--init`'s `fork` (`clone` without namespace flags), `wait4`, `poll`, `kill`, and `execve`:
//! each allowed by Docker's and containerd's default profiles and by the older profiles
//! (runtime-tools' default, Docker before 20.10) that lack `close_range`.
//!
//! With [`ProcessPlan::die_with_parent`] the step after the gate is
//! `PR_SET_PDEATHSIG(SIGKILL)` ([prctl(2)](https://man7.org/linux/man-pages/man2/prctl.2.html)):
//! the kernel clears it when credentials change, so it must come after `setresuid`. The signal
//! is tied to the parent at the time of the call, so the process then checks that its parent
//! (the monitor) is still there: a parent that died a moment before would have left the
//! process reparented to a parent that never dies. Inside a new pid namespace `getppid()` is 0
//! whoever the parent is, so the check is the report pipe instead: the monitor reads it until
//! the `execve`, and its death closes the read end. `--init`'s program, forked after the
//! filter, sets it again (`prctl`, `getppid`).
pub(crate) mod exec;

use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxSeccomp, PosixRlimitType, Process};

use crate::capabilities::CapabilityPlan;
use crate::sync::{ExecFailure, Failure, at, at_io};
use crate::{RuntimeError, Step};

/// The process to run, converted and validated by the parent so the child only makes
/// system calls.
pub(crate) struct ProcessPlan {
    pub arg0: String,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    pub path_var: String,
    pub cwd: PathBuf,
    pub uid: Uid,
    pub gid: Gid,
    pub additional_gids: Vec<Gid>,
    pub umask: Option<u32>,
    pub rlimits: Vec<(Resource, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub no_new_privileges: bool,
    pub capabilities: Option<CapabilityPlan>,
    pub seccomp: Option<crate::seccomp::Program>,
    /// `--init`: PID 1 stays a small reaper that forwards signals; the program runs as its child.
    pub init: bool,
    /// `SIGKILL` when the parent (the monitor) dies; see the module doc.
    pub die_with_parent: bool,
    /// Whether `setgroups(2)` may be called: not in a user namespace whose
    /// `/proc/<pid>/setgroups` is `deny` (then only an empty list of additional groups works).
    pub set_groups: bool,
    /// `berth oci create --preserve-fds N`: descriptors 3 to 3 + N − 1 reach the program.
    pub preserved_fds: u32,
}

impl std::fmt::Debug for ProcessPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPlan")
            .field("argv", &self.argv)
            .field("cwd", &self.cwd)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("seccomp", &self.seccomp.is_some())
            .finish_non_exhaustive()
    }
}

fn cstring(field: &'static str, value: &str) -> Result<CString, RuntimeError> {
    CString::new(value).map_err(|_| RuntimeError::InvalidSpec {
        field,
        reason: format!("{value:?} contains a NUL byte"),
    })
}

fn resource(typ: PosixRlimitType) -> Result<Resource, RuntimeError> {
    Ok(match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    })
}

impl ProcessPlan {
    /// Converts `process`; `seccomp` is the container's profile.
    pub(crate) fn new(
        process: &Process,
        seccomp: Option<&LinuxSeccomp>,
        seccomp_cache: Option<&Path>,
    ) -> Result<Self, RuntimeError> {
        let args = process.args().as_deref().unwrap_or_default();
        let Some(arg0) = args.first() else {
            return Err(RuntimeError::InvalidSpec {
                field: "process.args",
                reason: "no command given".to_owned(),
            });
        };
        let argv = args
            .iter()
            .map(|a| cstring("process.args", a))
            .collect::<Result<_, _>>()?;
        let env_list = process.env().as_deref().unwrap_or_default();
        let env = env_list
            .iter()
            .map(|e| cstring("process.env", e))
            .collect::<Result<_, _>>()?;
        let path_var = env_list
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(berth_fs::DEFAULT_PATH)
            .to_owned();
        let user = process.user();
        let rlimits = process
            .rlimits()
            .iter()
            .flatten()
            .map(|r| Ok((resource(r.typ())?, r.soft(), r.hard())))
            .collect::<Result<_, RuntimeError>>()?;
        let cwd = process.cwd();
        if !cwd.is_absolute() {
            return Err(RuntimeError::InvalidSpec {
                field: "process.cwd",
                reason: format!("{} is not absolute", cwd.display()),
            });
        }
        Ok(ProcessPlan {
            arg0: arg0.clone(),
            argv,
            env,
            path_var,
            cwd: cwd.clone(),
            uid: Uid::from_raw(user.uid()),
            gid: Gid::from_raw(user.gid()),
            additional_gids: user
                .additional_gids()
                .iter()
                .flatten()
                .map(|g| Gid::from_raw(*g))
                .collect(),
            umask: user.umask(),
            rlimits,
            oom_score_adj: process.oom_score_adj(),
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            capabilities: process
                .capabilities()
                .as_ref()
                .map(CapabilityPlan::new)
                .transpose()?,
            seccomp: seccomp
                .map(|profile| crate::seccomp::compile(profile, seccomp_cache))
                .transpose()?,
            init: false,
            die_with_parent: false,
            set_groups: true,
            preserved_fds: 0,
        })
    }

    fn load_seccomp(&self) -> Result<(), Failure> {
        if let Some(program) = &self.seccomp {
            crate::sys::load_seccomp_program(&program.instructions)
                .map_err(at_io(Step::Seccomp, Path::new("")))?;
        }
        Ok(())
    }

    /// Applies everything, calls `gate` (which returns once the process may run), then
    /// execs. Returns only on failure. With `lookup_first`, a program that cannot be found
    /// is returned before the gate (`berth oci create` fails, as runc's does); otherwise it is
    /// returned after the gate, as Docker reports it at start. `report` is the write end of
    /// the pipe the parent reads until the `execve` (see [`ProcessPlan::die_with_parent`]).
    pub(crate) fn run(
        &self,
        report: BorrowedFd<'_>,
        lookup_first: bool,
        gate: impl FnOnce() -> Result<(), Failure>,
    ) -> Result<ExecFailure, Failure> {
        self.prepare()?;
        let program = exec::lookup(Path::new("/"), &self.arg0, &self.path_var);
        if lookup_first && let Err(failure) = program {
            return Ok(failure);
        }
        if !self.no_new_privileges {
            self.load_seccomp()?;
        }
        self.switch_user()?;
        if self.no_new_privileges {
            nix::sys::prctl::set_no_new_privs()
                .map_err(at(Step::NoNewPrivileges, Path::new("")))?;
        }
        gate()?;
        if self.die_with_parent {
            die_with_parent(report, None)?;
        }
        if self.no_new_privileges {
            self.load_seccomp()?;
        }
        if self.init {
            let reaper = nix::unistd::getpid();
            if let Some(child) =
                crate::sys::fork_for_init().map_err(at_io(Step::ForkInit, Path::new("")))?
            {
                crate::sys::run_as_init(child);
            }
            // fork(2) clears the signal in the child. Its parent is now the reaper, which dies
            // with the monitor (and, in a pid namespace of its own, takes every process of the
            // namespace with it); with the host's pid namespace the program needs its own.
            if self.die_with_parent {
                die_with_parent(report, Some(reaper))?;
            }
        }
        match program {
            Ok(program) => Ok(exec::execute(&self.arg0, &program, &self.argv, &self.env)),
            Err(failure) => Ok(failure),
        }
    }

    /// The steps that need files and /proc: before any seccomp filter.
    fn prepare(&self) -> Result<(), Failure> {
        if let Some(score) = self.oom_score_adj {
            let path = Path::new("/proc/self/oom_score_adj");
            std::fs::write(path, score.to_string()).map_err(at_io(Step::OomScoreAdj, path))?;
        }
        for (resource, soft, hard) in &self.rlimits {
            setrlimit(*resource, *soft, *hard).map_err(at(Step::Rlimit, Path::new("")))?;
        }
        if let Some(mask) = self.umask {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
        // Docker creates a missing working directory.
        if !self.cwd.exists() {
            std::fs::create_dir_all(&self.cwd).map_err(at_io(Step::Cwd, &self.cwd))?;
        }
        nix::unistd::chdir(&self.cwd).map_err(at(Step::Cwd, &self.cwd))?;
        // Nothing of the caller's may reach the program; what the gate still needs is
        // close-on-exec already, so it stays usable until `execve`.
        crate::sys::cloexec_from(3 + self.preserved_fds)
            .map_err(at_io(Step::CloseFds, Path::new("")))
    }

    /// Bounding set, groups, uid and gid, then the other capability sets.
    fn switch_user(&self) -> Result<(), Failure> {
        if let Some(caps) = &self.capabilities {
            caps.drop_bounding()?;
        }
        let user = Path::new("");
        let switching = !self.uid.is_root();
        if switching {
            nix::sys::prctl::set_keepcaps(true).map_err(at(Step::SetUser, user))?;
        }
        if self.set_groups {
            nix::unistd::setgroups(&self.additional_gids).map_err(at(Step::SetUser, user))?;
        }
        nix::unistd::setresgid(self.gid, self.gid, self.gid).map_err(at(Step::SetUser, user))?;
        nix::unistd::setresuid(self.uid, self.uid, self.uid).map_err(at(Step::SetUser, user))?;
        if switching {
            nix::sys::prctl::set_keepcaps(false).map_err(at(Step::SetUser, user))?;
        }
        if let Some(caps) = &self.capabilities {
            caps.apply()?;
        }
        Ok(())
    }
}

/// `PR_SET_PDEATHSIG(SIGKILL)`, then exits at once if the parent is already gone: when the
/// parent is `expected_parent` (same pid namespace) `getppid()` tells; else the parent no
/// longer reading `report` does (poll reports `POLLERR` on a pipe's write end without reader).
fn die_with_parent(
    report: BorrowedFd<'_>,
    expected_parent: Option<nix::unistd::Pid>,
) -> Result<(), Failure> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let step = at(Step::ParentDeathSignal, Path::new(""));
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(step)?;
    if let Some(parent) = expected_parent
        && nix::unistd::getppid() != parent
    {
        crate::sys::exit_now(1);
    }
    let mut fds = [PollFd::new(report, PollFlags::POLLOUT)];
    loop {
        match poll(&mut fds, PollTimeout::ZERO) {
            Err(nix::Error::EINTR) => continue,
            Err(errno) => return Err(at(Step::ParentDeathSignal, Path::new(""))(errno)),
            Ok(_) => break,
        }
    }
    let gone = fds[0]
        .revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP));
    if gone {
        crate::sys::exit_now(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(args: &[&str], env: &[&str]) -> Process {
        let mut process = crate::spec::base_spec_for(false)
            .process()
            .clone()
            .expect("process");
        process.set_args(Some(args.iter().map(|a| (*a).to_owned()).collect()));
        process.set_env(Some(env.iter().map(|e| (*e).to_owned()).collect()));
        process
    }

    #[test]
    fn plan_takes_path_from_env() {
        let plan = ProcessPlan::new(
            &process(&["sh", "-c", "true"], &["PATH=/bin", "A=1"]),
            None,
            None,
        )
        .expect("plan");
        assert_eq!(plan.path_var, "/bin");
        assert_eq!(plan.argv.len(), 3);
        let plan = ProcessPlan::new(&process(&["sh"], &[]), None, None).expect("plan");
        assert_eq!(plan.path_var, berth_fs::DEFAULT_PATH);
    }

    #[test]
    fn empty_args_and_nul_bytes_are_invalid() {
        assert!(matches!(
            ProcessPlan::new(&process(&[], &[]), None, None),
            Err(RuntimeError::InvalidSpec {
                field: "process.args",
                ..
            })
        ));
        assert!(matches!(
            ProcessPlan::new(&process(&["a\0b"], &[]), None, None),
            Err(RuntimeError::InvalidSpec {
                field: "process.args",
                ..
            })
        ));
    }

    #[test]
    fn rlimits_convert() {
        let mut p = process(&["sh"], &[]);
        let limit = oci_spec::runtime::PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(1024u64)
            .hard(4096u64)
            .build()
            .expect("complete");
        p.set_rlimits(Some(vec![limit]));
        let plan = ProcessPlan::new(&p, None, None).expect("plan");
        assert_eq!(plan.rlimits, vec![(Resource::RLIMIT_NOFILE, 1024, 4096)]);
    }
}
