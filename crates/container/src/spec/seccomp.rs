//! `--security-opt seccomp=…`: Docker's profile format turned into OCI's `linux.seccomp`.
//!
//! Docker's CLI sends a profile file's content as JSON (`seccomp={...}`); the daemon accepts
//! only that (or `unconfined`): a path a client names is never opened.
use berth_api::models::HostConfig;
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSyscall};
use serde::Deserialize;

use super::invalid;
use crate::ContainerError;

/// Which seccomp filter a container runs under, from its `--security-opt`s (the last wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompChoice {
    /// Docker's default profile for the container's capabilities (none when privileged).
    Default,
    /// `seccomp=unconfined`.
    Unconfined,
    /// A Docker-format profile, as JSON text.
    Profile(String),
}

/// The seccomp choice of a host config's `--security-opt`s.
///
/// A profile travels as JSON (Docker's CLI reads a profile file on the client and sends its
/// content): the daemon never opens a path a client names, so `seccomp=/etc/shadow` is
/// refused as a profile that does not decode, in dockerd's words.
pub fn choice(hc: &HostConfig) -> Result<SeccompChoice, ContainerError> {
    let mut choice = SeccompChoice::Default;
    for opt in hc.security_opt.iter().flatten() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        if k != "seccomp" {
            continue;
        }
        choice = match v {
            "unconfined" => SeccompChoice::Unconfined,
            "builtin" | "" => SeccompChoice::Default,
            profile => {
                serde_json::from_str::<serde::de::IgnoredAny>(profile).map_err(|e| {
                    invalid(format!(
                        "Decoding seccomp profile failed: {}",
                        json_error(profile, &e)
                    ))
                })?;
                SeccompChoice::Profile(profile.to_owned())
            }
        };
    }
    Ok(choice)
}

/// A JSON error worded as Go's `encoding/json` words the common one (what dockerd answers).
fn json_error(text: &str, e: &serde_json::Error) -> String {
    match text.trim_start().chars().next() {
        Some(c) if c != '{' && c != '[' && e.line() == 1 && e.column() <= text.len() => {
            format!("invalid character '{c}' looking for beginning of value")
        }
        _ => e.to_string(),
    }
}

/// Docker's profile format (moby `profiles/seccomp`), the fields berth uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    #[serde(default = "default_errno_action")]
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<DockerArchMap>,
    #[serde(default)]
    syscalls: Vec<DockerSyscall>,
}

fn default_errno_action() -> LinuxSeccompAction {
    LinuxSeccompAction::ScmpActErrno
}

fn default_allow_action() -> LinuxSeccompAction {
    LinuxSeccompAction::ScmpActAllow
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArchMap {
    architecture: Option<Arch>,
    #[serde(default)]
    sub_architectures: Vec<Arch>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerSyscall {
    #[serde(default)]
    names: Vec<String>,
    name: Option<String>,
    #[serde(default = "default_allow_action")]
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: DockerFilter,
    #[serde(default)]
    excludes: DockerFilter,
}

#[derive(Debug, Default, Deserialize)]
struct DockerFilter {
    #[serde(default)]
    caps: Vec<String>,
}

/// Converts a Docker seccomp profile (the JSON `--security-opt seccomp=FILE` sends) to OCI's,
/// keeping the rules whose capability conditions `caps` meets.
pub fn docker_seccomp_to_oci(
    profile: &str,
    caps: &[String],
) -> Result<LinuxSeccomp, ContainerError> {
    let p: DockerProfile = serde_json::from_str(profile)
        .map_err(|e| invalid(format!("decoding seccomp profile failed: {e}")))?;
    let mut archs = p.architectures;
    for m in p.arch_map {
        archs.extend(m.architecture);
        archs.extend(m.sub_architectures);
    }
    let held = |c: &String| caps.contains(c);
    let mut syscalls = Vec::new();
    for s in p.syscalls {
        if !s.includes.caps.iter().all(held) || s.excludes.caps.iter().any(held) {
            continue;
        }
        let mut names = s.names;
        names.extend(s.name);
        let mut rule = LinuxSyscall::default();
        rule.set_names(names);
        rule.set_action(s.action);
        rule.set_errno_ret(s.errno_ret);
        rule.set_args(s.args);
        syscalls.push(rule);
    }
    let mut oci = LinuxSeccomp::default();
    oci.set_default_action(p.default_action);
    oci.set_default_errno_ret(p.default_errno_ret);
    oci.set_architectures(Some(archs));
    oci.set_syscalls(Some(syscalls));
    Ok(oci)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_seccomp_profiles_convert() {
        let p = r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                        {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#;
        let o = docker_seccomp_to_oci(p, &["CAP_KILL".into()]).unwrap();
        assert_eq!(
            o.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86][..])
        );
        let syscalls = o.syscalls().clone().unwrap_or_default();
        assert_eq!(syscalls.len(), 1);
        assert_eq!(syscalls[0].errno_ret(), Some(1));
        assert!(docker_seccomp_to_oci("{nope", &[]).is_err());
    }

    #[test]
    fn the_last_seccomp_option_wins() {
        let hc = |opts: &[&str]| HostConfig {
            security_opt: Some(opts.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        assert_eq!(choice(&hc(&[])).unwrap(), SeccompChoice::Default);
        assert_eq!(
            choice(&hc(&["seccomp={}", "seccomp=unconfined"])).unwrap(),
            SeccompChoice::Unconfined
        );
        assert_eq!(
            choice(&hc(&["seccomp:unconfined", "seccomp={\"a\":1}"])).unwrap(),
            SeccompChoice::Profile("{\"a\":1}".into())
        );
        assert!(choice(&hc(&["seccomp=/nonexistent/profile.json"])).is_err());
    }

    #[test]
    fn a_path_is_never_read() {
        let hc = HostConfig {
            security_opt: Some(vec!["seccomp=/etc/passwd".into()]),
            ..Default::default()
        };
        assert_eq!(
            choice(&hc).unwrap_err().to_string(),
            "Decoding seccomp profile failed: invalid character '/' looking for beginning of value"
        );
    }
}
