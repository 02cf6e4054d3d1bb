//! cgroup limits: Docker's `HostConfig` resource fields as OCI `linux.resources`, and as the
//! `berth-cgroups` values `docker update` applies to a running container.
use berth_api::models::HostConfig;
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

/// OCI `linux.resources` for a host config (without device rules).
pub fn resources(hc: &HostConfig) -> LinuxResources {
    let mut r = LinuxResources::default();
    let mut memory: Option<LinuxMemory> = None;
    let limit = hc.memory.unwrap_or(0);
    if limit > 0 {
        let m = memory.get_or_insert_with(Default::default);
        m.set_limit(Some(limit));
        // Docker's default swap is as much again as the memory limit.
        m.set_swap(Some(match hc.memory_swap.unwrap_or(0) {
            0 => limit * 2,
            s => s,
        }));
    }
    if let Some(res) = hc.memory_reservation.filter(|v| *v > 0) {
        memory
            .get_or_insert_with(Default::default)
            .set_reservation(Some(res));
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
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
