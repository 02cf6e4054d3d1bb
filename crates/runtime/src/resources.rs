//! `linux.resources` as berth-cgroups applies them (all but the device rules, see
//! [`crate::init::CgroupPlan`]). Values out of the spec's ranges are refused here, naming
//! the field; what the host's cgroups cannot do is refused by berth-cgroups before anything
//! is created, and named by [`crate::init::CgroupPlan::error`].
use berth_cgroups::{BlockIo, Resources};
use oci_spec::runtime::{LinuxBlockIo, LinuxMemory, LinuxResources};

use crate::RuntimeError;

/// `linux.resources` (all but devices) as berth-cgroups applies them; out-of-range values
/// are refused here, naming the field.
pub(crate) fn from_spec(res: &LinuxResources) -> Result<Resources, RuntimeError> {
    let mut resources = Resources::default();
    if let Some(memory) = res.memory() {
        set_memory(&mut resources, memory)?;
    }
    if let Some(cpu) = res.cpu() {
        resources.cpu_quota = cpu.quota();
        resources.cpu_period = cpu.period();
        resources.cpu_shares = cpu.shares();
        resources.cpuset_cpus = cpu.cpus().clone();
        resources.cpuset_mems = cpu.mems().clone();
        resources.cpu_realtime_runtime = cpu.realtime_runtime();
        resources.cpu_realtime_period = cpu.realtime_period();
        resources.cpu_idle = cpu.idle();
        resources.cpu_burst = cpu.burst();
    }
    if let Some(pids) = res.pids() {
        resources.pids_limit = Some(pids.limit());
    }
    if let Some(io) = res.block_io() {
        resources.block_io = Some(block_io(io)?);
    }
    set_others(&mut resources, res)?;
    Ok(resources)
}

fn invalid(field: &'static str, reason: String) -> RuntimeError {
    RuntimeError::InvalidSpec { field, reason }
}

fn set_memory(resources: &mut Resources, memory: &LinuxMemory) -> Result<(), RuntimeError> {
    resources.memory = memory.limit();
    resources.memory_swap = memory.swap();
    resources.memory_reservation = memory.reservation();
    resources.kernel_memory = memory.kernel();
    resources.kernel_memory_tcp = memory.kernel_tcp();
    resources.oom_kill_disable = memory.disable_oom_killer();
    if let Some(swappiness) = memory.swappiness() {
        if swappiness > 100 {
            return Err(invalid(
                "linux.resources.memory.swappiness",
                format!("{swappiness} is not in 0-100"),
            ));
        }
        resources.memory_swappiness = Some(swappiness);
    }
    if memory.use_hierarchy() == Some(false) {
        return Err(RuntimeError::Unsupported {
            field: "linux.resources.memory.useHierarchy".into(),
            reason: "the kernel keeps memory accounting hierarchical".into(),
        });
    }
    Ok(())
}

fn block_io(io: &LinuxBlockIo) -> Result<BlockIo, RuntimeError> {
    let weight_ok = |w: Option<u16>| w.is_none_or(|w| (10..=1000).contains(&w));
    let weights_ok = weight_ok(io.weight())
        && weight_ok(io.leaf_weight())
        && io
            .weight_device()
            .iter()
            .flatten()
            .all(|d| weight_ok(d.weight()) && weight_ok(d.leaf_weight()));
    if !weights_ok {
        return Err(invalid(
            "linux.resources.blockIO",
            "weights are 10-1000".to_owned(),
        ));
    }
    let throttles = |list: &Option<Vec<oci_spec::runtime::LinuxThrottleDevice>>| {
        list.iter()
            .flatten()
            .map(|d| berth_cgroups::ThrottleDevice {
                major: d.major(),
                minor: d.minor(),
                rate: d.rate(),
            })
            .collect()
    };
    Ok(BlockIo {
        weight: io.weight(),
        leaf_weight: io.leaf_weight(),
        weight_devices: io
            .weight_device()
            .iter()
            .flatten()
            .map(|d| berth_cgroups::WeightDevice {
                major: d.major(),
                minor: d.minor(),
                weight: d.weight(),
                leaf_weight: d.leaf_weight(),
            })
            .collect(),
        read_bps: throttles(io.throttle_read_bps_device()),
        write_bps: throttles(io.throttle_write_bps_device()),
        read_iops: throttles(io.throttle_read_iops_device()),
        write_iops: throttles(io.throttle_write_iops_device()),
    })
}

/// Huge pages, network, rdma, unified.
fn set_others(resources: &mut Resources, res: &LinuxResources) -> Result<(), RuntimeError> {
    for limit in res.hugepage_limits().iter().flatten() {
        let bytes = u64::try_from(limit.limit()).map_err(|_| {
            invalid(
                "linux.resources.hugepageLimits",
                format!("limit {} is negative", limit.limit()),
            )
        })?;
        resources
            .hugepage_limits
            .push(berth_cgroups::HugepageLimit {
                page_size: limit.page_size().clone(),
                limit: bytes,
            });
    }
    if let Some(network) = res.network() {
        resources.net_class_id = network.class_id();
        resources.net_priorities = network
            .priorities()
            .iter()
            .flatten()
            .map(|p| (p.name().clone(), p.priority()))
            .collect();
    }
    let mut rdma: Vec<_> = res
        .rdma()
        .iter()
        .flatten()
        .map(|(device, limit)| berth_cgroups::RdmaLimit {
            device: device.clone(),
            hca_handles: limit.hca_handles(),
            hca_objects: limit.hca_objects(),
        })
        .collect();
    rdma.sort_by(|a, b| a.device.cmp(&b.device));
    resources.rdma = rdma;
    let mut unified: Vec<(String, String)> = res
        .unified()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    unified.sort();
    resources.unified = unified;
    Ok(())
}
