//! seccomp(2): Docker's default profile as data, and compiling an OCI `LinuxSeccomp` into a
//! libseccomp filter. See <https://man7.org/linux/man-pages/man2/seccomp.2.html>.
//!
//! The profile mirrors moby's `profiles/seccomp/default.json`: default action `ERRNO(EPERM)`,
//! an allow-list, argument rules for `personality`, `clone`, `clone3` and `socket`, groups
//! allowed per architecture, and groups allowed only when the container holds a capability
//! (so `--cap-add SYS_ADMIN` also unlocks `mount`, `unshare`, …). Syscall names the installed
//! libseccomp does not know are skipped, as runc does.
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::RuntimeError;

/// Syscalls Docker's default profile allows unconditionally.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Allowed on kernels ≥ 4.8, where ptrace can no longer bypass seccomp (Docker's `minKernel`).
const ALLOWED_PTRACE: &[&str] = &[
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];

/// Values of `personality(2)`'s first argument Docker allows (linux, linux32, query, …).
const PERSONALITY_VALUES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// `CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
/// CLONE_NEWCGROUP`: without CAP_SYS_ADMIN, `clone` may not create namespaces.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`: Docker's profile refuses vsock sockets.
const AF_VSOCK: u64 = 40;

/// Syscall groups allowed only when the container has the capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

fn allow(names: &[&str]) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|name| (*name).to_owned()).collect());
    rule.set_action(LinuxSeccompAction::ScmpActAllow);
    rule
}

fn arg(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    let builder = match value_two {
        Some(value_two) => builder.value_two(value_two),
        None => builder,
    };
    builder
        .build()
        .expect("every field is set or has a default")
}

/// Docker's default seccomp profile for a container holding `caps` (names like `CAP_CHOWN`;
/// the `CAP_` prefix is optional). Rebuild it after `--cap-add`/`--cap-drop`.
pub fn default_seccomp(caps: &[String]) -> LinuxSeccomp {
    let has = |wanted: &str| {
        caps.iter().any(|cap| {
            let cap = cap.to_ascii_uppercase();
            cap == wanted || format!("CAP_{cap}") == wanted
        })
    };
    let mut rules = vec![allow(ALLOWED), allow(ALLOWED_PTRACE)];
    for value in PERSONALITY_VALUES {
        let mut rule = allow(&["personality"]);
        rule.set_args(Some(vec![arg(
            0,
            LinuxSeccompOperator::ScmpCmpEq,
            *value,
            None,
        )]));
        rules.push(rule);
    }
    let mut socket = allow(&["socket"]);
    socket.set_args(Some(vec![arg(
        0,
        LinuxSeccompOperator::ScmpCmpNe,
        AF_VSOCK,
        None,
    )]));
    rules.push(socket);
    if cfg!(target_arch = "x86_64") || cfg!(target_arch = "x86") {
        rules.push(allow(&["arch_prctl", "modify_ldt"]));
    }
    if cfg!(target_arch = "aarch64") || cfg!(target_arch = "arm") {
        rules.push(allow(&[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ]));
    }
    for (cap, names) in BY_CAPABILITY {
        if has(cap) {
            rules.push(allow(names));
        }
    }
    if !has("CAP_SYS_ADMIN") {
        let mut clone = allow(&["clone"]);
        clone.set_args(Some(vec![arg(
            0,
            LinuxSeccompOperator::ScmpCmpMaskedEq,
            CLONE_NAMESPACE_FLAGS,
            Some(0),
        )]));
        rules.push(clone);
        // ENOSYS, not EPERM: glibc then falls back to clone(2), which the rule above filters.
        let mut clone3 = LinuxSyscall::default();
        clone3.set_names(vec!["clone3".to_owned()]);
        clone3.set_action(LinuxSeccompAction::ScmpActErrno);
        clone3.set_errno_ret(Some(libc::ENOSYS as u32));
        rules.push(clone3);
    }
    let architectures = if cfg!(target_arch = "aarch64") || cfg!(target_arch = "arm") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    };
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(libc::EPERM as u32));
    profile.set_architectures(Some(architectures));
    profile.set_syscalls(Some(rules));
    profile
}

fn scmp_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    default_errno: u32,
) -> Result<ScmpAction, RuntimeError> {
    let errno = i32::try_from(errno_ret.unwrap_or(default_errno)).unwrap_or(libc::EPERM);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(u16::try_from(errno_ret.unwrap_or(0)).unwrap_or(0))
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(RuntimeError::InvalidSpec {
                field: "linux.seccomp",
                reason: "SCMP_ACT_NOTIFY is not supported".to_owned(),
            });
        }
    })
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn compare(arg: &LinuxSeccompArg) -> ScmpArgCompare {
    let index = u32::try_from(arg.index()).unwrap_or(u32::MAX);
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI puts the mask in `value` and the expected result in `valueTwo`.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(
                index,
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            );
        }
    };
    ScmpArgCompare::new(index, op, arg.value())
}

/// Builds (but does not load) the filter for `profile`. The no_new_privs attribute is left
/// off: the caller decides about no_new_privs from the spec, and loads the filter while it
/// still holds CAP_SYS_ADMIN when no_new_privs is not set.
pub(crate) fn build_filter(profile: &LinuxSeccomp) -> Result<ScmpFilterContext, RuntimeError> {
    let seccomp_err = |what: &str| {
        let what = what.to_owned();
        move |source| RuntimeError::Seccomp { what, source }
    };
    let default_errno = profile.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default_action = scmp_action(profile.default_action(), None, default_errno)?;
    let mut filter = ScmpFilterContext::new(default_action).map_err(seccomp_err("new filter"))?;
    filter
        .set_ctl_nnp(false)
        .map_err(seccomp_err("disable no_new_privs attribute"))?;
    for arch in profile.architectures().iter().flatten() {
        let arch = scmp_arch(*arch);
        if arch == ScmpArch::Native {
            continue;
        }
        filter
            .add_arch(arch)
            .map_err(seccomp_err(&format!("add architecture {arch:?}")))?;
    }
    for rule in profile.syscalls().iter().flatten() {
        let action = scmp_action(rule.action(), rule.errno_ret(), default_errno)?;
        if action == default_action {
            // libseccomp refuses rules that repeat the default action; they change nothing.
            continue;
        }
        let args = rule.args().as_deref().unwrap_or_default();
        let mut indices: Vec<usize> = args.iter().map(LinuxSeccompArg::index).collect();
        indices.sort_unstable();
        indices.dedup();
        // Conditions on distinct arguments are ANDed in one rule; several conditions on the
        // same argument are alternatives (Docker's personality rules), so one rule each.
        let groups: Vec<Vec<ScmpArgCompare>> = if indices.len() == args.len() {
            vec![args.iter().map(compare).collect()]
        } else {
            args.iter().map(|arg| vec![compare(arg)]).collect()
        };
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            for conditions in &groups {
                let added = if conditions.is_empty() {
                    filter.add_rule(action, syscall)
                } else {
                    filter.add_rule_conditional(action, syscall, conditions)
                };
                added.map_err(seccomp_err(name))?;
            }
        }
    }
    Ok(filter)
}

/// A compiled filter: classic BPF, ready for seccomp(2).
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub instructions: Vec<libc::sock_filter>,
}

/// Compiles `profile` to BPF. libseccomp takes ~5 ms to build Docker's profile and ~15 ms to
/// compile it, so with `cache_dir` the program is kept there under a hash of the profile
/// (and of berth's and libseccomp's versions) and later containers load it from disk.
pub(crate) fn compile(
    profile: &LinuxSeccomp,
    cache_dir: Option<&Path>,
) -> Result<Program, RuntimeError> {
    let cache_file = cache_dir.map(|dir| dir.join(format!("{:016x}.bpf", cache_key(profile))));
    if let Some(file) = &cache_file
        && let Ok(bytes) = std::fs::read(file)
        && let Some(program) = decode(&bytes)
    {
        return Ok(program);
    }
    let filter = build_filter(profile)?;
    let memfd =
        nix::sys::memfd::memfd_create(c"berth-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| RuntimeError::nix("memfd_create", "", e))?;
    filter
        .export_bpf(&memfd)
        .map_err(|source| RuntimeError::Seccomp {
            what: "export BPF".to_owned(),
            source,
        })?;
    let mut file = std::fs::File::from(memfd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| RuntimeError::host("read BPF", "", e))?;
    let program = decode(&bytes).ok_or_else(|| RuntimeError::InvalidSpec {
        field: "linux.seccomp",
        reason: format!(
            "libseccomp produced {} bytes, not whole instructions",
            bytes.len()
        ),
    })?;
    if let (Some(dir), Some(file)) = (cache_dir, &cache_file) {
        // A cache that cannot be written only costs time: ignore failures.
        let _ = std::fs::create_dir_all(dir).and_then(|()| {
            berth_fs::write_atomic(file, &bytes, berth_fs::Durability::Volatile)
                .map_err(std::io::Error::from)
        });
    }
    Ok(program)
}

fn cache_key(profile: &LinuxSeccomp) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    std::env::consts::ARCH.hash(&mut hasher);
    let version = libseccomp::ScmpVersion::current()
        .map(|v| (v.major, v.minor, v.micro))
        .unwrap_or_default();
    version.hash(&mut hasher);
    serde_json::to_vec(profile)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

fn decode(bytes: &[u8]) -> Option<Program> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(crate::sys::BPF_INSTRUCTION_SIZE) {
        return None;
    }
    let instructions = bytes
        .chunks_exact(crate::sys::BPF_INSTRUCTION_SIZE)
        .map(|record| libc::sock_filter {
            code: u16::from_ne_bytes([record[0], record[1]]),
            jt: record[2],
            jf: record[3],
            k: u32::from_ne_bytes([record[4], record[5], record[6], record[7]]),
        })
        .collect();
    Some(Program { instructions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(profile: &LinuxSeccomp) -> Vec<String> {
        profile
            .syscalls()
            .iter()
            .flatten()
            .filter(|rule| {
                rule.action() == LinuxSeccompAction::ScmpActAllow && rule.args().is_none()
            })
            .flat_map(|rule| rule.names().clone())
            .collect()
    }

    #[test]
    fn default_profile_denies_with_eperm_and_allows_the_basics() {
        let profile = default_seccomp(&[]);
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(1));
        let allowed = names(&profile);
        for name in ["read", "write", "execve", "openat", "ptrace", "capset"] {
            assert!(allowed.iter().any(|n| n == name), "{name} allowed");
        }
        for name in ["mount", "unshare", "reboot", "kexec_load", "clone"] {
            assert!(
                !allowed.iter().any(|n| n == name),
                "{name} not unconditionally allowed"
            );
        }
    }

    #[test]
    fn sys_admin_unlocks_mount_and_plain_clone() {
        let without = default_seccomp(&["CAP_CHOWN".to_owned()]);
        let with = default_seccomp(&["sys_admin".to_owned()]);
        assert!(names(&with).iter().any(|n| n == "mount"));
        assert!(names(&with).iter().any(|n| n == "clone"));
        let clone3 = |p: &LinuxSeccomp| {
            p.syscalls().iter().flatten().any(|r| {
                r.names() == &["clone3".to_owned()]
                    && r.action() == LinuxSeccompAction::ScmpActErrno
            })
        };
        assert!(clone3(&without), "clone3 gets ENOSYS without CAP_SYS_ADMIN");
        assert!(!clone3(&with));
    }

    #[test]
    fn personality_rules_are_argument_checked() {
        let profile = default_seccomp(&[]);
        let values: Vec<u64> = profile
            .syscalls()
            .iter()
            .flatten()
            .filter(|rule| rule.names() == &["personality".to_owned()])
            .flat_map(|rule| rule.args().clone().unwrap_or_default())
            .map(|arg| arg.value())
            .collect();
        assert_eq!(values, PERSONALITY_VALUES);
    }

    #[test]
    fn default_profile_compiles() {
        let filter = build_filter(&default_seccomp(&crate::spec::default_capability_names()))
            .expect("the default profile compiles");
        assert!(filter.get_act_default().is_ok());
    }

    #[test]
    fn compiled_programs_are_cached_by_profile() {
        let cache = tempfile::tempdir().expect("tempdir");
        let profile = default_seccomp(&crate::spec::default_capability_names());
        let first = compile(&profile, Some(cache.path())).expect("compile");
        let files: Vec<_> = std::fs::read_dir(cache.path()).expect("read").collect();
        assert_eq!(files.len(), 1);
        let second = compile(&profile, Some(cache.path())).expect("cached");
        assert_eq!(first.instructions.len(), second.instructions.len());
        let other = compile(
            &default_seccomp(&["CAP_SYS_ADMIN".to_owned()]),
            Some(cache.path()),
        )
        .expect("compile");
        assert_ne!(other.instructions.len(), 0);
        assert_eq!(std::fs::read_dir(cache.path()).expect("read").count(), 2);
        // The first instruction loads the architecture word (BPF_LD|BPF_W|BPF_ABS at offset 4).
        assert_eq!(
            (first.instructions[0].code, first.instructions[0].k),
            (0x20, 4)
        );
    }

    #[test]
    fn notify_is_refused() {
        let mut profile = default_seccomp(&[]);
        let mut rule = LinuxSyscall::default();
        rule.set_names(vec!["mkdir".to_owned()]);
        rule.set_action(LinuxSeccompAction::ScmpActNotify);
        profile.set_syscalls(Some(vec![rule]));
        assert!(matches!(
            build_filter(&profile),
            Err(RuntimeError::InvalidSpec { .. })
        ));
    }
}
