//! Docker's default runtime spec (moby `oci/defaults.go` plus what runc adds for every
//! container): namespaces, the standard mounts, 14 capabilities, masked and read-only /proc
//! paths, the standard device nodes and their cgroup rules, and the default seccomp profile.
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, Linux, LinuxCapabilities, LinuxDevice, LinuxDeviceCgroup,
    LinuxDeviceType, LinuxNamespace, LinuxNamespaceType, LinuxResources, Mount, Process, Root,
    Spec, User,
};

use crate::seccomp::default_seccomp;

/// Docker's default capabilities, in Docker's order.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths Docker hides from containers.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The device nodes every container gets: (path, major, minor).
pub(crate) const DEFAULT_DEVICES: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

pub(crate) fn default_capability_names() -> Vec<String> {
    DEFAULT_CAPABILITIES
        .iter()
        .map(|cap| (*cap).to_owned())
        .collect()
}

/// Parses `CAP_CHOWN` / `chown` into oci-spec's capability.
pub(crate) fn parse_capability(name: &str) -> Option<Capability> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    serde_json::from_value(serde_json::Value::String(format!("CAP_{bare}"))).ok()
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(PathBuf::from(destination));
    mount.set_typ(Some(typ.to_owned()));
    mount.set_source(Some(PathBuf::from(source)));
    mount.set_options(Some(options.iter().map(|o| (*o).to_owned()).collect()));
    mount
}

fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns
}

fn device_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow);
    rule.set_typ(Some(typ));
    rule.set_major(major);
    rule.set_minor(minor);
    rule.set_access(Some(access.to_owned()));
    rule
}

/// Whether `cgroup_root` (normally `/sys/fs/cgroup`) is a pure cgroup v2 mount.
pub(crate) fn is_cgroup2_root(cgroup_root: &Path) -> bool {
    nix::sys::statfs::statfs(cgroup_root)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Docker's default spec: namespaces, mounts, capabilities, masked and read-only paths,
/// devices, seccomp profile; process and root left for the caller to fill.
pub fn base_spec() -> Spec {
    base_spec_for(is_cgroup2_root(Path::new("/sys/fs/cgroup")))
}

pub(crate) fn base_spec_for(cgroup2: bool) -> Spec {
    let process = default_process();

    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Mount),
        namespace(LinuxNamespaceType::Network),
        namespace(LinuxNamespaceType::Uts),
        namespace(LinuxNamespaceType::Pid),
        namespace(LinuxNamespaceType::Ipc),
    ];
    if cgroup2 {
        namespaces.push(namespace(LinuxNamespaceType::Cgroup));
    }

    let (devices, resources) = default_devices();

    let mut linux = Linux::default();
    linux.set_namespaces(Some(namespaces));
    linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|p| (*p).to_owned()).collect()));
    linux.set_readonly_paths(Some(
        READONLY_PATHS.iter().map(|p| (*p).to_owned()).collect(),
    ));
    linux.set_devices(Some(devices));
    linux.set_resources(Some(resources));
    linux.set_seccomp(Some(default_seccomp(&default_capability_names())));
    linux.set_cgroups_path(None);

    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(false));

    let mut spec = Spec::default();
    spec.set_version("1.2.0".to_owned());
    spec.set_hostname(None);
    spec.set_process(Some(process));
    spec.set_root(Some(root));
    spec.set_mounts(Some(default_mounts()));
    spec.set_linux(Some(linux));
    spec
}

/// Docker's default process: no arguments yet, `PATH`, `/`, the default capabilities.
fn default_process() -> Process {
    let caps: Capabilities = DEFAULT_CAPABILITIES
        .iter()
        .map(|name| parse_capability(name).expect("default capabilities are known"))
        .collect();
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(caps.clone()));
    capabilities.set_effective(Some(caps.clone()));
    capabilities.set_permitted(Some(caps));
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);

    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_user(User::default());
    process.set_args(None);
    process.set_env(Some(vec![berth_fs::DEFAULT_PATH_ENV.to_owned()]));
    process.set_cwd(PathBuf::from("/"));
    process.set_capabilities(Some(capabilities));
    process.set_rlimits(None);
    process.set_no_new_privileges(None);
    process
}

/// Docker's default device nodes, and the device cgroup rules that allow them: deny all,
/// allow mknod of anything, and access to the standard nodes, ptys and /dev/console.
fn default_devices() -> (Vec<LinuxDevice>, LinuxResources) {
    let devices = DEFAULT_DEVICES
        .iter()
        .map(|(path, major, minor)| {
            let mut device = LinuxDevice::default();
            device.set_path(PathBuf::from(path));
            device.set_typ(LinuxDeviceType::C);
            device.set_major(*major);
            device.set_minor(*minor);
            device.set_file_mode(Some(0o666));
            device.set_uid(Some(0));
            device.set_gid(Some(0));
            device
        })
        .collect();

    let mut device_rules = vec![
        device_rule(false, LinuxDeviceType::A, None, None, "rwm"),
        device_rule(true, LinuxDeviceType::C, None, None, "m"),
        device_rule(true, LinuxDeviceType::B, None, None, "m"),
    ];
    for (_, major, minor) in DEFAULT_DEVICES {
        device_rules.push(device_rule(
            true,
            LinuxDeviceType::C,
            Some(major),
            Some(minor),
            "rwm",
        ));
    }
    device_rules.push(device_rule(
        true,
        LinuxDeviceType::C,
        Some(136),
        None,
        "rwm",
    ));
    device_rules.push(device_rule(
        true,
        LinuxDeviceType::C,
        Some(5),
        Some(2),
        "rwm",
    ));
    device_rules.push(device_rule(
        true,
        LinuxDeviceType::C,
        Some(5),
        Some(1),
        "rwm",
    ));
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(device_rules));
    (devices, resources)
}

/// Docker's default mounts: /proc, /dev (tmpfs), devpts, /sys, cgroups, mqueue, /dev/shm.
fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_dockers_fourteen() {
        let spec = base_spec_for(false);
        let caps = spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().clone())
            .expect("caps");
        assert_eq!(caps.bounding().as_ref().map(|c| c.len()), Some(14));
        assert_eq!(caps.effective(), caps.permitted());
        assert!(caps.inheritable().as_ref().is_none_or(|c| c.is_empty()));
        assert!(caps.ambient().as_ref().is_none_or(|c| c.is_empty()));
        assert!(
            caps.bounding()
                .as_ref()
                .expect("set")
                .contains(&Capability::NetBindService)
        );
    }

    #[test]
    fn cgroup_namespace_only_on_pure_v2() {
        let has_cgroup_ns = |spec: &Spec| {
            spec.linux()
                .as_ref()
                .and_then(|l| l.namespaces().clone())
                .expect("namespaces")
                .iter()
                .any(|ns| ns.typ() == LinuxNamespaceType::Cgroup)
        };
        assert!(!has_cgroup_ns(&base_spec_for(false)));
        assert!(has_cgroup_ns(&base_spec_for(true)));
    }

    #[test]
    fn mounts_and_paths_match_docker() {
        let spec = base_spec_for(false);
        let dests: Vec<_> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().clone())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm"
            ]
            .map(PathBuf::from)
        );
        let linux = spec.linux().as_ref().expect("linux");
        assert!(
            linux
                .masked_paths()
                .iter()
                .flatten()
                .any(|p| p == "/proc/kcore")
        );
        assert!(
            linux
                .readonly_paths()
                .iter()
                .flatten()
                .any(|p| p == "/proc/sys")
        );
        assert_eq!(linux.devices().as_ref().map(Vec::len), Some(6));
        assert!(linux.seccomp().is_some());
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = base_spec_for(false);
        let json = serde_json::to_string(&spec).expect("serialize");
        let back: Spec = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, spec);
    }

    #[test]
    fn capability_names_parse_with_or_without_prefix() {
        assert_eq!(parse_capability("chown"), Some(Capability::Chown));
        assert_eq!(
            parse_capability("CAP_SYS_ADMIN"),
            Some(Capability::SysAdmin)
        );
        assert_eq!(parse_capability("CAP_NOPE"), None);
    }
}
