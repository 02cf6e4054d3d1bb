//! `berth oci features`: what this runtime implements, in the runtime spec's "Features
//! Structure" (the JSON `runc features` prints), so an engine can ask before it builds a spec.
//! Everything listed is applied; what is absent is refused when asked for.
use std::path::Path;

use oci_spec::runtime::{
    ApparmorBuilder, Arch, CgroupBuilder, Features, FeaturesBuilder, IDMapBuilder, IntelRdtBuilder,
    LinuxFeatureBuilder, LinuxNamespaceType, LinuxSeccompAction, MountExtensionsBuilder,
    SeccompBuilder, SelinuxBuilder,
};

use crate::RuntimeError;
use crate::validate::{OCI_VERSION_MAX, OCI_VERSION_MIN};

/// The mount options `spec.mounts` may carry (besides filesystem data for non-bind mounts).
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

fn capability_names() -> Vec<String> {
    let mut names: Vec<String> = caps::all().iter().map(ToString::to_string).collect();
    names.sort();
    names
}

/// The features document.
pub(crate) fn features() -> Result<Features, RuntimeError> {
    let linux = linux_features()?;
    FeaturesBuilder::default()
        .oci_version_min(OCI_VERSION_MIN)
        .oci_version_max(OCI_VERSION_MAX)
        .hooks(
            [
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop",
            ]
            .map(String::from)
            .to_vec(),
        )
        .mount_options(
            MOUNT_OPTIONS
                .iter()
                .map(|o| (*o).to_owned())
                .collect::<Vec<_>>(),
        )
        .linux(linux)
        .build()
        .map_err(build)
}

fn build(e: oci_spec::OciSpecError) -> RuntimeError {
    RuntimeError::InvalidSpec {
        field: "features",
        reason: e.to_string(),
    }
}

/// The seccomp actions, operators and architectures `crate::seccomp` compiles.
fn seccomp_features() -> Result<oci_spec::runtime::Seccomp, RuntimeError> {
    SeccompBuilder::default()
        .enabled(true)
        .actions(vec![
            LinuxSeccompAction::ScmpActAllow,
            LinuxSeccompAction::ScmpActErrno,
            LinuxSeccompAction::ScmpActKill,
            LinuxSeccompAction::ScmpActKillProcess,
            LinuxSeccompAction::ScmpActKillThread,
            LinuxSeccompAction::ScmpActLog,
            LinuxSeccompAction::ScmpActTrace,
            LinuxSeccompAction::ScmpActTrap,
        ])
        .operators(
            [
                "SCMP_CMP_EQ",
                "SCMP_CMP_GE",
                "SCMP_CMP_GT",
                "SCMP_CMP_LE",
                "SCMP_CMP_LT",
                "SCMP_CMP_MASKED_EQ",
                "SCMP_CMP_NE",
            ]
            .map(String::from)
            .to_vec(),
        )
        .archs(vec![
            Arch::ScmpArchAarch64,
            Arch::ScmpArchArm,
            Arch::ScmpArchX32,
            Arch::ScmpArchX86,
            Arch::ScmpArchX86_64,
        ])
        .known_flags(Vec::<String>::new())
        .supported_flags(Vec::<String>::new())
        .build()
        .map_err(build)
}

fn linux_features() -> Result<oci_spec::runtime::LinuxFeature, RuntimeError> {
    let v2 =
        berth_cgroups::Cgroup::detect(crate::cgroup_root()) == berth_cgroups::CgroupVersion::V2;
    LinuxFeatureBuilder::default()
        .namespaces(vec![
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::User,
            LinuxNamespaceType::Uts,
        ])
        .capabilities(capability_names())
        .cgroup(
            CgroupBuilder::default()
                .v1(!v2)
                .v2(v2)
                .systemd(false)
                .systemd_user(false)
                .rdma(false)
                .build()
                .map_err(build)?,
        )
        .seccomp(seccomp_features()?)
        .apparmor(
            ApparmorBuilder::default()
                .enabled(
                    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                        .is_ok_and(|v| v.trim() == "Y"),
                )
                .build()
                .map_err(build)?,
        )
        .selinux(
            SelinuxBuilder::default()
                .enabled(Path::new("/sys/fs/selinux/enforce").exists())
                .build()
                .map_err(build)?,
        )
        .intel_rdt(
            IntelRdtBuilder::default()
                .enabled(false)
                .build()
                .map_err(build)?,
        )
        .mount_extensions(
            MountExtensionsBuilder::default()
                .idmap(
                    IDMapBuilder::default()
                        .enabled(false)
                        .build()
                        .map_err(build)?,
                )
                .build()
                .map_err(build)?,
        )
        .build()
        .map_err(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_name_versions_hooks_and_namespaces() {
        let json = serde_json::to_value(features().expect("features")).expect("json");
        assert_eq!(json["ociVersionMin"], "1.0.0");
        assert_eq!(json["ociVersionMax"], OCI_VERSION_MAX);
        assert_eq!(json["hooks"].as_array().map(Vec::len), Some(6));
        assert!(
            json["mountOptions"]
                .as_array()
                .is_some_and(|o| o.contains(&"rslave".into()))
        );
        let namespaces = json["linux"]["namespaces"].as_array().expect("namespaces");
        assert!(namespaces.contains(&"user".into()) && !namespaces.contains(&"time".into()));
        assert!(
            json["linux"]["capabilities"]
                .as_array()
                .is_some_and(|c| c.contains(&"CAP_SYS_ADMIN".into()))
        );
        assert_eq!(json["linux"]["seccomp"]["enabled"], true);
        assert_eq!(json["linux"]["intelRdt"]["enabled"], false);
    }
}
