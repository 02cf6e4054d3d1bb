//! The container's configuration as Docker stores it: image defaults merged in at create, the
//! command line, and the host config's values checked in Docker's words.
use std::collections::HashMap;

use berth_api::models::{ContainerConfig, HostConfig};
use berth_image::ImageConfig;

use super::{invalid, rlimit_type};
use crate::ContainerError;

/// Default PATH when neither image nor user sets one (Docker's), as an env entry.
pub use berth_fs::DEFAULT_PATH_ENV as DEFAULT_PATH;

/// Merges the image's defaults into the create-time config, as Docker stores it.
pub fn merge_image_defaults(config: &mut ContainerConfig, image: &ImageConfig) {
    let Some(ic) = image.config.as_ref() else {
        if config.env.is_none() {
            config.env = Some(vec![DEFAULT_PATH.to_string()]);
        }
        return;
    };
    // Env: image first, the user's values override same keys.
    let mut env: Vec<String> = ic.env.clone().unwrap_or_default();
    for kv in config.env.take().unwrap_or_default() {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    config.env = Some(env);
    // An entrypoint given at create replaces the image's and drops its cmd (Docker's rule).
    let entrypoint_given = config.entrypoint.is_some();
    if !entrypoint_given {
        config.entrypoint = ic.entrypoint.clone();
    } else if config.entrypoint.as_deref() == Some(&[String::new()]) {
        config.entrypoint = None;
    }
    if config.cmd.as_ref().is_none_or(|c| c.is_empty()) && !entrypoint_given {
        config.cmd = ic.cmd.clone();
    }
    if config.working_dir.as_deref().unwrap_or("").is_empty() {
        config.working_dir = ic.working_dir.clone().filter(|w| !w.is_empty());
    }
    if config.user.as_deref().unwrap_or("").is_empty() {
        config.user = ic.user.clone().filter(|u| !u.is_empty());
    }
    if config.stop_signal.is_none() {
        config.stop_signal = ic.stop_signal.clone();
    }
    if let Some(labels) = &ic.labels {
        let mine = config.labels.get_or_insert_with(HashMap::new);
        for (k, v) in labels {
            mine.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(ports) = &ic.exposed_ports {
        let mine = config.exposed_ports.get_or_insert_with(Vec::new);
        for p in ports.keys() {
            if !mine.contains(p) {
                mine.push(p.clone());
            }
        }
    }
    if let Some(vols) = &ic.volumes {
        let mine = config.volumes.get_or_insert_with(Vec::new);
        for v in vols.keys() {
            if !mine.contains(v) {
                mine.push(v.clone());
            }
        }
    }
}

/// The command line: entrypoint then cmd. Empty is Docker's `No command specified`.
pub fn command_line(config: &ContainerConfig) -> Result<Vec<String>, ContainerError> {
    let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
    argv.extend(config.cmd.clone().unwrap_or_default());
    if argv.is_empty() {
        return Err(invalid("No command specified"));
    }
    Ok(argv)
}

/// Checks resource values as Docker does; the messages are Docker's.
pub fn validate_host_config(hc: &HostConfig) -> Result<(), ContainerError> {
    super::resources::validate(hc)?;
    if let Some(m) = hc.memory.filter(|m| *m != 0) {
        if m < 6 * 1024 * 1024 {
            return Err(invalid("Minimum memory limit allowed is 6MB"));
        }
        if let Some(s) = hc.memory_swap.filter(|s| *s > 0)
            && s < m
        {
            return Err(invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
    }
    validate_memory(hc)?;
    validate_cpu_and_io(hc)?;
    if let Some(n) = hc.nano_cpus.filter(|n| *n != 0) {
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as i64;
        if n < 10_000_000 || n > ncpu * 1_000_000_000 {
            return Err(invalid(format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            )));
        }
    }
    if hc.pids_limit.is_some_and(|p| p < -1) {
        return Err(invalid("invalid PIDs limit"));
    }
    let auto_remove = hc.auto_remove.unwrap_or(false);
    if let Some(rp) = &hc.restart_policy {
        use berth_api::models::RestartPolicyNameEnum as R;
        let name = rp.name.unwrap_or(R::EMPTY);
        if auto_remove && !matches!(name, R::EMPTY | R::NO) {
            return Err(invalid(
                "can't create 'AutoRemove' container with restart policy",
            ));
        }
        if rp.maximum_retry_count.unwrap_or(0) < 0 {
            return Err(invalid(
                "invalid restart policy: maximum retry count cannot be negative",
            ));
        }
        if rp.maximum_retry_count.unwrap_or(0) > 0 && name != R::ON_FAILURE {
            return Err(invalid(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'",
            ));
        }
    }
    for u in hc.ulimits.iter().flatten() {
        rlimit_type(u.name.as_deref().unwrap_or(""))?;
        let (soft, hard) = (u.soft.unwrap_or(0), u.hard.unwrap_or(0));
        if soft > hard {
            return Err(invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
    }
    if let Some(adj) = hc.oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
        return Err(invalid(format!(
            "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
        )));
    }
    if hc.shm_size.is_some_and(|s| s < 0) {
        return Err(invalid("SHM size can not be less than 0"));
    }
    if hc.storage_opt.as_ref().is_some_and(|o| !o.is_empty()) {
        // berth's writable layers are overlay directories without project quotas: a size
        // limit would be silently ignored, so it is refused, as dockerd refuses it there.
        return Err(invalid(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option",
        ));
    }
    // The runtime checks again at start (a `container:X` network may be the host's); this
    // answers the common cases at create, in the runtime's words.
    let namespaces = berth_runtime::sysctl::SysctlNamespaces {
        ipc: hc.ipc_mode.as_deref() != Some("host"),
        uts: hc.uts_mode.as_deref() != Some("host"),
        network: if hc.network_mode.as_deref() == Some("host") {
            berth_runtime::sysctl::NetworkNamespace::Host
        } else {
            berth_runtime::sysctl::NetworkNamespace::Private
        },
    };
    for key in hc.sysctls.iter().flatten().map(|(key, _)| key) {
        berth_runtime::sysctl::check(key, namespaces).map_err(invalid)?;
    }
    // A seccomp profile must be JSON (never a path): refused at create, not at start.
    super::seccomp::choice(hc)?;
    for opt in hc.security_opt.iter().flatten() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match k {
            "no-new-privileges" if matches!(v, "" | "true" | "false") => {}
            "seccomp" | "apparmor" | "label" => {}
            _ => return Err(invalid(format!("invalid --security-opt: {opt:?}"))),
        }
    }
    // Network modes are checked against the network service by the container service.
    Ok(())
}

/// The smallest memory limit or reservation the kernel is given (Docker's `linuxMinMemory`).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Memory values as dockerd checks them (`verifyPlatformContainerResources`), in its words.
fn validate_memory(hc: &HostConfig) -> Result<(), ContainerError> {
    let memory = hc.memory.unwrap_or(0);
    if let Some(r) = hc.memory_reservation.filter(|r| *r != 0) {
        if r < MIN_MEMORY {
            return Err(invalid("Minimum memory reservation allowed is 6MB"));
        }
        if memory > 0 && memory < r {
            return Err(invalid(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
    }
    if memory == 0 && hc.memory_swap.is_some_and(|s| s > 0) {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if hc.memory_swap.is_some_and(|s| s < -1) {
        return Err(invalid(format!(
            "invalid memory swap limit {}: use -1 for unlimited",
            hc.memory_swap.unwrap_or(0)
        )));
    }
    if let Some(v) = hc
        .memory_swappiness
        .filter(|v| *v != -1 && !(0..=100).contains(v))
    {
        return Err(invalid(format!(
            "Invalid value: {v}, valid memory swappiness range is 0-100"
        )));
    }
    Ok(())
}

/// CPU and block I/O values as dockerd checks them, in its words.
fn validate_cpu_and_io(hc: &HostConfig) -> Result<(), ContainerError> {
    if hc
        .cpu_period
        .is_some_and(|p| p != 0 && !(1000..=1_000_000).contains(&p))
    {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if hc.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    if hc.cpu_shares.is_some_and(|s| s < 0) {
        return Err(invalid("CPU shares can not be less than 0"));
    }
    let weight_ok = |w: u64| w == 0 || (10..=1000).contains(&w);
    let weights = hc.blkio_weight.map(u64::from).into_iter().chain(
        hc.blkio_weight_device
            .iter()
            .flatten()
            .map(|d| d.weight.unwrap_or(0) as u64),
    );
    for w in weights {
        if !weight_ok(w) {
            return Err(invalid("Range of blkio weight is from 10 to 1000"));
        }
    }
    for (what, list) in super::resources::throttles(hc) {
        for d in list {
            if d.rate.is_some_and(|r| r < 0) {
                return Err(invalid(format!(
                    "invalid value for {what}: rate must not be negative"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_image::ImageConfig;

    #[test]
    fn image_defaults_merge() {
        let image = ImageConfig {
            config: Some(berth_image::RunConfig {
                env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
                cmd: Some(vec!["sh".into()]),
                working_dir: Some("/w".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut c = ContainerConfig {
            env: Some(vec!["A=2".into(), "B=3".into()]),
            ..Default::default()
        };
        merge_image_defaults(&mut c, &image);
        assert_eq!(c.env.unwrap(), vec!["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.cmd.unwrap(), vec!["sh"]);
        assert_eq!(c.working_dir.as_deref(), Some("/w"));

        let mut c = ContainerConfig {
            entrypoint: Some(vec!["/bin/echo".into()]),
            ..Default::default()
        };
        merge_image_defaults(&mut c, &image);
        assert_eq!(c.cmd, None, "an explicit entrypoint drops the image's cmd");
        assert_eq!(command_line(&c).unwrap(), vec!["/bin/echo"]);
    }

    #[test]
    fn resource_values_are_validated() {
        let hc = HostConfig {
            memory: Some(1024),
            ..Default::default()
        };
        assert_eq!(
            validate_host_config(&hc).unwrap_err().to_string(),
            "Minimum memory limit allowed is 6MB"
        );
        let hc = HostConfig {
            nano_cpus: Some(1_000_000_000_000),
            ..Default::default()
        };
        assert!(
            validate_host_config(&hc)
                .unwrap_err()
                .to_string()
                .starts_with("Range of CPUs is from 0.01")
        );
        let hc = HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(10),
            ..Default::default()
        };
        validate_host_config(&hc).unwrap();
    }

    #[test]
    fn out_of_range_values_are_refused_in_dockers_words() {
        let refused = |hc: HostConfig| validate_host_config(&hc).unwrap_err().to_string();
        // The largest limit is accepted (its default swap would overflow: it is unlimited).
        validate_host_config(&HostConfig {
            memory: Some(i64::MAX),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            refused(HostConfig {
                memory: Some(i64::MIN),
                ..Default::default()
            }),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(
            refused(HostConfig {
                memory_swap: Some(-2),
                memory: Some(64 << 20),
                ..Default::default()
            }),
            "invalid memory swap limit -2: use -1 for unlimited"
        );
        assert!(
            refused(HostConfig {
                memory_swappiness: Some(101),
                ..Default::default()
            })
            .contains("valid memory swappiness range is 0-100")
        );
        assert_eq!(
            refused(HostConfig {
                blkio_weight: Some(5),
                ..Default::default()
            }),
            "Range of blkio weight is from 10 to 1000"
        );
        assert!(
            refused(HostConfig {
                cpu_period: Some(i64::MAX),
                ..Default::default()
            })
            .starts_with("CPU cfs period can not be less than 1ms")
        );
        assert!(
            refused(HostConfig {
                oom_score_adj: Some(1001),
                ..Default::default()
            })
            .contains("range for oom score adj is [-1000, 1000]")
        );
        assert_eq!(
            refused(HostConfig {
                storage_opt: Some([("size".to_owned(), "1G".to_owned())].into()),
                ..Default::default()
            }),
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
        );
    }
}
