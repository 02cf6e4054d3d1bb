//! cgroup limits: Docker's `HostConfig` resource fields as OCI `linux.resources`, and as the
//! `berth-cgroups` values `docker update` applies to a running container.
use berth_api::models::{HostConfig, ThrottleDevice};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxPids,
    LinuxResources, LinuxThrottleDevice, LinuxThrottleDeviceBuilder, LinuxWeightDeviceBuilder,
};

use super::invalid;
use crate::ContainerError;

/// The four throttle lists of a host config, by Docker's flag name.
pub(super) fn throttles(hc: &HostConfig) -> [(&'static str, &[ThrottleDevice]); 4] {
    fn list(l: &Option<Vec<ThrottleDevice>>) -> &[ThrottleDevice] {
        l.as_deref().unwrap_or(&[])
    }
    [
        ("--device-read-bps", list(&hc.blkio_device_read_bps)),
        ("--device-write-bps", list(&hc.blkio_device_write_bps)),
        ("--device-read-iops", list(&hc.blkio_device_read_iops)),
        ("--device-write-iops", list(&hc.blkio_device_write_iops)),
    ]
}

/// A device's major and minor number (a `stat` of its path, as dockerd takes them).
fn device_numbers(path: &str) -> Result<(i64, i64), ContainerError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|e| {
        invalid(format!(
            "error gathering device information while adding custom device {path:?}: {e}"
        ))
    })?;
    if !meta.file_type().is_block_device() {
        return Err(invalid(format!("{path} is not a block device")));
    }
    let rdev = meta.rdev();
    Ok((i64::from(libc_major(rdev)), i64::from(libc_minor(rdev))))
}

/// `major(3)` of a `dev_t`.
fn libc_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

/// `minor(3)` of a `dev_t`.
fn libc_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

/// OCI `linux.resources.blockIO` of `--blkio-weight`, `--blkio-weight-device` and the
/// `--device-{read,write}-{bps,iops}` throttles (devices named by path: `stat`s, so called
/// from a blocking task); `None` when none is set. The runtime writes them to the v1 `blkio`
/// or the v2 `io` controller.
pub fn block_io(hc: &HostConfig) -> Result<Option<LinuxBlockIo>, ContainerError> {
    let mut b = LinuxBlockIo::default();
    let mut set = false;
    if let Some(w) = hc.blkio_weight.filter(|w| *w > 0) {
        b.set_weight(Some(w));
        set = true;
    }
    let mut weights = Vec::new();
    for d in hc.blkio_weight_device.iter().flatten() {
        let (major, minor) = device_numbers(d.path.as_deref().unwrap_or(""))?;
        let mut w = LinuxWeightDeviceBuilder::default()
            .major(major)
            .minor(minor);
        if let Some(weight) = d.weight.and_then(|w| u16::try_from(w).ok()) {
            w = w.weight(weight);
        }
        weights.push(w.build().map_err(|e| invalid(e.to_string()))?);
    }
    if !weights.is_empty() {
        b.set_weight_device(Some(weights));
        set = true;
    }
    let mut lists: [Vec<LinuxThrottleDevice>; 4] = Default::default();
    for ((_, list), out) in throttles(hc).into_iter().zip(lists.iter_mut()) {
        for d in list {
            let (major, minor) = device_numbers(d.path.as_deref().unwrap_or(""))?;
            let t = LinuxThrottleDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .rate(u64::try_from(d.rate.unwrap_or(0)).unwrap_or(0))
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            out.push(t);
        }
    }
    let [read_bps, write_bps, read_iops, write_iops] = lists;
    for (list, setter) in [
        (
            read_bps,
            LinuxBlockIo::set_throttle_read_bps_device as fn(&mut _, _) -> &mut _,
        ),
        (write_bps, LinuxBlockIo::set_throttle_write_bps_device),
        (read_iops, LinuxBlockIo::set_throttle_read_iops_device),
        (write_iops, LinuxBlockIo::set_throttle_write_iops_device),
    ] {
        if !list.is_empty() {
            setter(&mut b, Some(list));
            set = true;
        }
    }
    Ok(set.then_some(b))
}

/// OCI `linux.resources` for a host config (without device rules).
pub fn resources(hc: &HostConfig) -> LinuxResources {
    let mut r = LinuxResources::default();
    let mut memory: Option<LinuxMemory> = None;
    let limit = hc.memory.unwrap_or(0);
    if limit > 0 {
        let m = memory.get_or_insert_with(Default::default);
        m.set_limit(Some(limit));
        // Docker's default swap is as much again as the memory limit.
        // (A limit so large that twice it overflows leaves swap unlimited.)
        m.set_swap(Some(match hc.memory_swap.unwrap_or(0) {
            0 => limit.checked_mul(2).unwrap_or(-1),
            s => s,
        }));
    }
    if let Some(res) = hc.memory_reservation.filter(|v| *v > 0) {
        memory
            .get_or_insert_with(Default::default)
            .set_reservation(Some(res));
    }
    // Docker's -1 (or no value) leaves the kernel's swappiness; out-of-range values were
    // refused by `validate` at create.
    if let Some(v) = hc
        .memory_swappiness
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v <= 100)
    {
        memory
            .get_or_insert_with(Default::default)
            .set_swappiness(Some(v));
    }
    if hc.oom_kill_disable == Some(true) {
        memory
            .get_or_insert_with(Default::default)
            .set_disable_oom_killer(Some(true));
    }
    r.set_memory(memory);
    let mut cpu = LinuxCpu::default();
    let mut cpu_set = false;
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        cpu.set_period(Some(100_000));
        cpu.set_quota(Some(n * 100_000 / 1_000_000_000));
        cpu_set = true;
    } else if let Some(q) = hc.cpu_quota.filter(|q| *q > 0) {
        cpu.set_quota(Some(q));
        cpu.set_period(Some(
            hc.cpu_period
                .filter(|p| *p > 0)
                .and_then(|p| u64::try_from(p).ok())
                .unwrap_or(100_000),
        ));
        cpu_set = true;
    }
    if let Some(s) = hc
        .cpu_shares
        .filter(|s| *s > 0)
        .and_then(|s| u64::try_from(s).ok())
    {
        cpu.set_shares(Some(s));
        cpu_set = true;
    }
    if let Some(c) = hc.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
        cpu.set_cpus(Some(c.clone()));
        cpu_set = true;
    }
    if let Some(m) = hc.cpuset_mems.as_ref().filter(|m| !m.is_empty()) {
        cpu.set_mems(Some(m.clone()));
        cpu_set = true;
    }
    if let Some(p) = hc
        .cpu_realtime_period
        .filter(|p| *p > 0)
        .and_then(|p| u64::try_from(p).ok())
    {
        cpu.set_realtime_period(Some(p));
        cpu_set = true;
    }
    if let Some(rt) = hc.cpu_realtime_runtime.filter(|r| *r != 0) {
        cpu.set_realtime_runtime(Some(rt));
        cpu_set = true;
    }
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(p);
        r.set_pids(Some(pids));
    }
    r
}

/// The `berth-cgroups` limits of a host config (`docker update` on a running container).
pub fn cgroup_resources(hc: &HostConfig) -> berth_cgroups::Resources {
    let r = resources(hc);
    let memory = r.memory().unwrap_or_default();
    let cpu = r.cpu().clone().unwrap_or_default();
    berth_cgroups::Resources {
        memory: memory.limit(),
        memory_swap: memory.swap(),
        memory_reservation: memory.reservation(),
        cpu_quota: cpu.quota(),
        cpu_period: cpu.period(),
        cpu_shares: cpu.shares(),
        cpuset_cpus: cpu.cpus().clone(),
        pids_limit: r.pids().map(|p| p.limit()),
        memory_swappiness: memory.swappiness(),
        oom_kill_disable: memory.disable_oom_killer(),
        cpuset_mems: cpu.mems().clone(),
        cpu_realtime_period: cpu.realtime_period(),
        cpu_realtime_runtime: cpu.realtime_runtime(),
        ..Default::default()
    }
}

/// `--device-cgroup-rule` values as OCI device cgroup rules (allowed, after the defaults).
/// Docker's syntax: `TYPE MAJOR:MINOR ACCESS`, type `a`, `b` or `c`, `*` for any number,
/// access one to three of `rwm`; anything else is refused in dockerd's words.
pub fn device_cgroup_rules(hc: &HostConfig) -> Result<Vec<LinuxDeviceCgroup>, ContainerError> {
    hc.device_cgroup_rules
        .iter()
        .flatten()
        .map(|rule| {
            parse_device_rule(rule)
                .ok_or_else(|| invalid(format!("invalid device cgroup rule format: '{rule}'")))
        })
        .collect()
}

/// One rule of [`device_cgroup_rules`] (dockerd's `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`).
fn parse_device_rule(rule: &str) -> Option<LinuxDeviceCgroup> {
    let mut parts = rule.split(' ');
    let (typ, numbers, access) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let typ = match typ {
        "a" => LinuxDeviceType::A,
        "b" => LinuxDeviceType::B,
        "c" => LinuxDeviceType::C,
        _ => return None,
    };
    let number = |n: &str| -> Option<Option<i64>> {
        if n == "*" {
            Some(None)
        } else if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            n.parse().ok().map(Some)
        } else {
            None
        }
    };
    let (major, minor) = numbers.split_once(':')?;
    let (major, minor) = (number(major)?, number(minor)?);
    if access.is_empty() || access.len() > 3 || !access.bytes().all(|b| b"rwm".contains(&b)) {
        return None;
    }
    let mut d = LinuxDeviceCgroup::default();
    d.set_allow(true);
    d.set_typ(Some(typ));
    d.set_major(major);
    d.set_minor(minor);
    d.set_access(Some(access.to_owned()));
    Some(d)
}

/// The resource values dockerd checks beyond the common limits, in its words: real-time
/// bandwidth, memory nodes, device rules (swappiness: `config::validate_memory`).
pub(super) fn validate(hc: &HostConfig) -> Result<(), ContainerError> {
    let (period, runtime) = (
        hc.cpu_realtime_period.unwrap_or(0),
        hc.cpu_realtime_runtime.unwrap_or(0),
    );
    if period < 0 {
        return Err(invalid(format!(
            "invalid value {period} for cpu real-time period"
        )));
    }
    if period != 0 && runtime != 0 && runtime > period {
        return Err(invalid(
            "cpu real-time runtime cannot be higher than cpu real-time period",
        ));
    }
    if let Some(mems) = hc.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        check_mems(mems, &online_nodes())?;
    }
    device_cgroup_rules(hc)?;
    Ok(())
}

/// The memory nodes the host has (`/sys/devices/system/node/online`; a kernel without NUMA
/// has node 0 only).
fn online_nodes() -> String {
    std::fs::read_to_string("/sys/devices/system/node/online")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "0".to_owned())
}

/// dockerd's `IsCpusetMemsAvailable`, in its words.
fn check_mems(requested: &str, available: &str) -> Result<(), ContainerError> {
    let wanted = parse_list(requested)
        .ok_or_else(|| invalid(format!("Invalid value {requested} for cpuset mems")))?;
    let have = parse_list(available).unwrap_or_default();
    if wanted.iter().any(|n| !have.contains(n)) {
        return Err(invalid(format!(
            "Requested memory nodes are not available - requested {requested}, available: {available}"
        )));
    }
    Ok(())
}

/// A kernel list (`0-2,4`) as its numbers; `None` when malformed.
fn parse_list(list: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (u32, u32) = (lo.parse().ok()?, hi.parse().ok()?);
                if lo > hi || hi - lo > 4096 {
                    return None;
                }
                out.extend(lo..=hi);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_io_takes_devices_by_number() {
        assert!(block_io(&HostConfig::default()).unwrap().is_none());
        // /dev/loop0 or any block device of this host; a path that is not one is refused.
        let Some(dev) = ["/dev/loop0", "/dev/sda", "/dev/vda", "/dev/nvme0n1"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            return;
        };
        let throttle = |path: &str| ThrottleDevice {
            path: Some(path.into()),
            rate: Some(1_048_576),
        };
        let hc = HostConfig {
            blkio_weight: Some(300),
            blkio_device_read_bps: Some(vec![throttle(dev)]),
            blkio_device_write_iops: Some(vec![throttle(dev)]),
            ..Default::default()
        };
        let b = block_io(&hc).unwrap().unwrap();
        assert_eq!(b.weight(), Some(300));
        let read = b.throttle_read_bps_device().clone().unwrap();
        assert_eq!(read[0].rate(), 1_048_576);
        assert!(b.throttle_write_iops_device().is_some());
        assert!(b.throttle_write_bps_device().is_none());
        let bad = HostConfig {
            blkio_device_read_bps: Some(vec![throttle("/etc/passwd")]),
            ..Default::default()
        };
        assert!(
            block_io(&bad)
                .unwrap_err()
                .to_string()
                .contains("not a block device")
        );
    }

    #[test]
    fn limits_map_to_oci_and_cgroups() {
        let hc = HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(10),
            ..Default::default()
        };
        let r = resources(&hc);
        assert_eq!(r.memory().and_then(|m| m.limit()), Some(64 << 20));
        assert_eq!(r.memory().and_then(|m| m.swap()), Some(128 << 20));
        assert_eq!(r.cpu().as_ref().and_then(|c| c.quota()), Some(50_000));
        assert_eq!(r.pids().map(|p| p.limit()), Some(10));
        let c = cgroup_resources(&hc);
        assert_eq!(
            (c.memory, c.cpu_period, c.pids_limit),
            (Some(64 << 20), Some(100_000), Some(10))
        );
        let huge = resources(&HostConfig {
            memory: Some(i64::MAX),
            ..Default::default()
        });
        assert_eq!(huge.memory().and_then(|m| m.swap()), Some(-1));
        let none = resources(&HostConfig::default());
        assert!(none.memory().is_none() && none.cpu().is_none() && none.pids().is_none());
        let quota = resources(&HostConfig {
            cpu_quota: Some(20_000),
            cpu_period: Some(50_000),
            memory_reservation: Some(1 << 20),
            ..Default::default()
        });
        assert_eq!(quota.cpu().as_ref().and_then(|c| c.period()), Some(50_000));
        assert_eq!(quota.memory().and_then(|m| m.limit()), None);
        assert_eq!(quota.memory().and_then(|m| m.reservation()), Some(1 << 20));
    }

    #[test]
    fn oci_extras_map_and_bad_values_are_refused_in_dockers_words() {
        let hc = HostConfig {
            memory_swappiness: Some(10),
            oom_kill_disable: Some(true),
            cpuset_mems: Some("0".into()),
            cpu_realtime_period: Some(1_000_000),
            cpu_realtime_runtime: Some(10_000),
            ..Default::default()
        };
        validate(&hc).unwrap();
        let c = cgroup_resources(&hc);
        assert_eq!(c.memory_swappiness, Some(10));
        assert_eq!(c.oom_kill_disable, Some(true));
        assert_eq!(c.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(
            (c.cpu_realtime_period, c.cpu_realtime_runtime),
            (Some(1_000_000), Some(10_000))
        );
        // -1 is "unset", as the docker CLI's default.
        let unset = resources(&HostConfig {
            memory_swappiness: Some(-1),
            ..Default::default()
        });
        assert!(unset.memory().is_none());
        let refused = |hc: HostConfig| validate(&hc).unwrap_err().to_string();
        assert_eq!(
            refused(HostConfig {
                cpu_realtime_period: Some(1000),
                cpu_realtime_runtime: Some(2000),
                ..Default::default()
            }),
            "cpu real-time runtime cannot be higher than cpu real-time period"
        );
        assert_eq!(
            refused(HostConfig {
                device_cgroup_rules: Some(vec!["c 1:3 rwx".into()]),
                ..Default::default()
            }),
            "invalid device cgroup rule format: 'c 1:3 rwx'"
        );
        assert_eq!(
            check_mems("0-1", "0").unwrap_err().to_string(),
            "Requested memory nodes are not available - requested 0-1, available: 0"
        );
        assert_eq!(
            check_mems("x", "0").unwrap_err().to_string(),
            "Invalid value x for cpuset mems"
        );
    }

    #[test]
    fn device_rules_parse_as_docker_does() {
        let rules = device_cgroup_rules(&HostConfig {
            device_cgroup_rules: Some(vec![
                "c 1:3 mr".into(),
                "b *:* rwm".into(),
                "a 7:* w".into(),
            ]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].typ(), Some(LinuxDeviceType::C));
        assert_eq!((rules[0].major(), rules[0].minor()), (Some(1), Some(3)));
        assert_eq!(rules[0].access().as_deref(), Some("mr"));
        assert!(rules[0].allow());
        assert_eq!((rules[1].major(), rules[1].minor()), (None, None));
        assert_eq!((rules[2].major(), rules[2].minor()), (Some(7), None));
        for bad in [
            "c 1:3",
            "x 1:3 r",
            "c 1-3 r",
            "c 1:3 rwmr",
            "c  1:3 r",
            "c 1:3 q",
        ] {
            assert!(parse_device_rule(bad).is_none(), "{bad}");
        }
    }
}
