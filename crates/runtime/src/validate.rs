//! The runtime spec's MUSTs that a spec can break as a whole, checked before anything is
//! created, and what berth refuses rather than ignores (each error names the spec field):
//!
//! - `ociVersion`: a 1.x version no newer than [`OCI_VERSION_MAX`];
//! - each namespace type at most once; `hostname`/`domainname` only with a UTS namespace of
//!   the container's own, masked and read-only paths and a read-only root only with a mount
//!   namespace (runc's rules: otherwise they would change the host);
//! - `process.apparmorProfile` and `process.selinuxLabel` only where the host runs AppArmor or
//!   SELinux (then they are applied to the program's `execve`, [`ExecLabel`]); a mount label
//!   is refused (berth does not label mounts);
//! - settings berth does not implement: `linux.intelRdt`, `linux.personality` other than
//!   plain `LINUX`, `linux.memoryPolicy`, `linux.netDevices`, `linux.timeOffsets`,
//!   `process.ioPriority`, `process.scheduler`, `process.execCPUAffinity`.
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, LinuxPersonalityDomain, Spec};

use crate::RuntimeError;
use crate::Step;
use crate::sync::{Failure, at_io};

/// The oldest runtime spec berth reads.
pub(crate) const OCI_VERSION_MIN: &str = "1.0.0";
/// The newest runtime spec berth implements (its `features` and `state` say so).
pub(crate) const OCI_VERSION_MAX: &str = "1.2.1";

/// What passed the checks and must be carried out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checked {
    pub exec_label: Option<ExecLabel>,
}

/// A security label for the program, written to `/proc/self/attr/…/exec` so that the kernel
/// applies it at `execve` (as runc does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecLabel {
    /// An AppArmor profile name.
    AppArmor(String),
    /// An SELinux process label.
    SeLinux(String),
}

impl ExecLabel {
    /// Writes the label (after pivot_root: the container's /proc).
    pub(crate) fn apply(&self) -> Result<(), Failure> {
        let (paths, text): (&[&str], String) = match self {
            ExecLabel::AppArmor(profile) => (
                &["/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"],
                format!("exec {profile}"),
            ),
            ExecLabel::SeLinux(label) => (&["/proc/self/attr/exec"], label.clone()),
        };
        let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
        for path in paths {
            match std::fs::write(path, &text) {
                Ok(()) => return Ok(()),
                Err(err) => last = err,
            }
        }
        Err(at_io(Step::SecurityLabel, Path::new(paths[0]))(last))
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec {
        field,
        reason: reason.into(),
    }
}

fn unsupported(field: &str, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Unsupported {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// `MAJOR.MINOR.PATCH` of a semantic version, and whether it is a pre-release.
fn parse_version(version: &str) -> Option<((u64, u64, u64), bool)> {
    let (core, pre) = match version.split_once(['-', '+']) {
        Some((core, _)) => (core, version.as_bytes().get(core.len()) == Some(&b'-')),
        None => (version, false),
    };
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some(((major, minor, patch), pre))
}

/// Refuses an `ociVersion` berth does not implement.
pub(crate) fn check_version(version: &str) -> Result<(), RuntimeError> {
    let field = "ociVersion";
    let Some((core, _pre)) = parse_version(version) else {
        return Err(invalid(field, format!("{version:?} is not a version")));
    };
    let (max, _) = parse_version(OCI_VERSION_MAX).expect("a valid constant");
    if core.0 != max.0 {
        return Err(invalid(
            field,
            format!(
                "{version} is not a 1.x runtime spec (berth implements {OCI_VERSION_MIN} to {OCI_VERSION_MAX})"
            ),
        ));
    }
    // A pre-release (`1.0.2-dev`) comes before its version: fine when that one is.
    if core > max {
        return Err(invalid(
            field,
            format!("{version} is newer than berth implements ({OCI_VERSION_MAX})"),
        ));
    }
    Ok(())
}

/// Whether the host runs AppArmor.
fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y")
        && Path::new("/sys/kernel/security/apparmor").exists()
}

/// Whether the host runs SELinux (selinuxfs is mounted).
fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Every check of the module doc; returns what must be applied.
pub(crate) fn check(spec: &Spec) -> Result<Checked, RuntimeError> {
    check_version(spec.version())?;
    let linux = spec.linux().clone().unwrap_or_default();
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    for (i, ns) in namespaces.iter().enumerate() {
        if namespaces[..i].iter().any(|other| other.typ() == ns.typ()) {
            return Err(invalid(
                "linux.namespaces",
                format!("{:?} is listed twice", ns.typ()),
            ));
        }
    }
    let has = |typ: LinuxNamespaceType| namespaces.iter().any(|ns| ns.typ() == typ);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(invalid(
            "hostname",
            "unable to set hostname without a private UTS namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|d| !d.is_empty()) && !has(LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "domainname",
            "unable to set domainname without a private UTS namespace",
        ));
    }
    if !has(LinuxNamespaceType::Mount) {
        let masked = linux.masked_paths().as_ref().is_some_and(|p| !p.is_empty());
        let readonly = linux
            .readonly_paths()
            .as_ref()
            .is_some_and(|p| !p.is_empty());
        if masked || readonly {
            return Err(invalid(
                if masked {
                    "linux.maskedPaths"
                } else {
                    "linux.readonlyPaths"
                },
                "unable to restrict sys entries without a private MNT namespace",
            ));
        }
        if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
            return Err(invalid(
                "root.readonly",
                "unable to make the root read-only without a private MNT namespace",
            ));
        }
    }
    check_unsupported(spec, &linux)?;
    Ok(Checked {
        exec_label: exec_label(spec, &linux)?,
    })
}

fn exec_label(
    spec: &Spec,
    linux: &oci_spec::runtime::Linux,
) -> Result<Option<ExecLabel>, RuntimeError> {
    let process = spec.process().as_ref();
    let profile = process
        .and_then(|p| p.apparmor_profile().clone())
        .filter(|p| !p.is_empty());
    let label = process
        .and_then(|p| p.selinux_label().clone())
        .filter(|l| !l.is_empty());
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err(if selinux_enabled() {
            unsupported("linux.mountLabel", "berth does not label mounts")
        } else {
            unsupported(
                "linux.mountLabel",
                "selinux label is specified in config, but selinux is disabled or not supported",
            )
        });
    }
    match (profile, label) {
        (Some(_), Some(_)) => Err(unsupported(
            "process.selinuxLabel",
            "an AppArmor profile and an SELinux label together",
        )),
        (Some(profile), None) if apparmor_enabled() => Ok(Some(ExecLabel::AppArmor(profile))),
        (Some(_), None) => Err(unsupported(
            "process.apparmorProfile",
            "apparmor profile is specified in config, but AppArmor is not enabled on this host",
        )),
        (None, Some(label)) if selinux_enabled() => Ok(Some(ExecLabel::SeLinux(label))),
        (None, Some(_)) => Err(unsupported(
            "process.selinuxLabel",
            "selinux label is specified in config, but selinux is disabled or not supported",
        )),
        (None, None) => Ok(None),
    }
}

fn check_unsupported(spec: &Spec, linux: &oci_spec::runtime::Linux) -> Result<(), RuntimeError> {
    if linux.intel_rdt().is_some() {
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(2) == Some("resctrl")));
        return Err(unsupported(
            "linux.intelRdt",
            if mounted {
                "berth does not manage resctrl groups"
            } else {
                "resctrl is not mounted on this host"
            },
        ));
    }
    if let Some(personality) = linux.personality() {
        let plain = personality.domain() == LinuxPersonalityDomain::PerLinux
            && personality.flags().as_ref().is_none_or(|f| f.is_empty());
        if !plain {
            return Err(unsupported(
                "linux.personality",
                "only the plain LINUX domain, without flags",
            ));
        }
    }
    let refused = [
        ("linux.memoryPolicy", linux.memory_policy().is_some()),
        (
            "linux.netDevices",
            linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
        ),
        (
            "linux.timeOffsets",
            linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()),
        ),
    ];
    let process = spec.process().as_ref();
    let refused_process = [
        (
            "process.ioPriority",
            process.is_some_and(|p| p.io_priority().is_some()),
        ),
        (
            "process.scheduler",
            process.is_some_and(|p| p.scheduler().is_some()),
        ),
        (
            "process.execCPUAffinity",
            process.is_some_and(|p| p.exec_cpu_affinity().is_some()),
        ),
    ];
    for (field, set) in refused.into_iter().chain(refused_process) {
        if set {
            return Err(unsupported(field, "not supported by berth"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_berth_implements_pass() {
        for ok in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1", "1.0.0-rc5"] {
            check_version(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn other_versions_are_refused_naming_the_field() {
        for bad in [
            "2.0.0",
            "0.9.0",
            "1.3.0",
            "1.2.2",
            "1.3.0-rc.1",
            "",
            "one",
            "1.2",
        ] {
            let err = check_version(bad).expect_err(bad).to_string();
            assert!(
                err.starts_with("invalid runtime spec: ociVersion: "),
                "{bad}: {err}"
            );
        }
    }

    fn spec_without(typ: LinuxNamespaceType) -> Spec {
        let mut spec = crate::spec::base_spec_for(false);
        let mut linux = spec.linux().clone().expect("linux");
        let namespaces = linux
            .namespaces()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|ns| ns.typ() != typ)
            .collect();
        linux.set_namespaces(Some(namespaces));
        spec.set_linux(Some(linux));
        spec
    }

    #[test]
    fn host_namespaces_refuse_what_would_change_the_host() {
        let mut spec = spec_without(LinuxNamespaceType::Uts);
        spec.set_hostname(Some("box".into()));
        let err = check(&spec).expect_err("hostname").to_string();
        assert!(err.contains("hostname: unable to set hostname"), "{err}");
        let spec = spec_without(LinuxNamespaceType::Mount);
        let err = check(&spec).expect_err("masked paths").to_string();
        assert!(
            err.contains("linux.maskedPaths: unable to restrict sys entries"),
            "{err}"
        );
        let mut spec = spec_without(LinuxNamespaceType::Mount);
        let mut linux = spec.linux().clone().expect("linux");
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        spec.set_linux(Some(linux));
        check(&spec).expect("no mount namespace is allowed");
    }

    #[test]
    fn labels_the_host_cannot_apply_are_refused() {
        let mut spec = crate::spec::base_spec_for(false);
        let mut process = spec.process().clone().expect("process");
        process.set_selinux_label(Some("system_u:system_r:container_t:s0".into()));
        spec.set_process(Some(process));
        if !selinux_enabled() {
            let err = check(&spec).expect_err("no selinux").to_string();
            assert!(
                err.starts_with("process.selinuxLabel: selinux label"),
                "{err}"
            );
        }
        let mut spec = crate::spec::base_spec_for(false);
        let mut process = spec.process().clone().expect("process");
        process.set_apparmor_profile(Some("docker-default".into()));
        spec.set_process(Some(process));
        match check(&spec) {
            Ok(checked) => {
                assert!(apparmor_enabled());
                assert_eq!(
                    checked.exec_label,
                    Some(ExecLabel::AppArmor("docker-default".into()))
                );
            }
            Err(err) => {
                assert!(!apparmor_enabled());
                assert!(
                    err.to_string().starts_with("process.apparmorProfile: "),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn duplicate_namespaces_and_unsupported_settings_are_refused() {
        let mut spec = crate::spec::base_spec_for(false);
        let mut linux = spec.linux().clone().expect("linux");
        let mut namespaces = linux.namespaces().clone().expect("ns");
        namespaces.push(namespaces[0].clone());
        linux.set_namespaces(Some(namespaces));
        spec.set_linux(Some(linux));
        assert!(
            check(&spec)
                .expect_err("dup")
                .to_string()
                .contains("listed twice")
        );
        let mut spec = crate::spec::base_spec_for(false);
        let mut linux = spec.linux().clone().expect("linux");
        linux.set_intel_rdt(Some(Default::default()));
        spec.set_linux(Some(linux));
        let err = check(&spec).expect_err("rdt").to_string();
        assert!(err.starts_with("linux.intelRdt: "), "{err}");
    }
}
