//! `docker stats` samples from the container's cgroup.
use std::time::Duration;

use berth_api::models::{
    ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
    ContainerMemoryStats, ContainerPidsStats, ContainerStatsResponse,
};
use tokio::sync::{mpsc, watch};

use crate::life::Life;

/// Host CPU time in nanoseconds (the `cpu` line of /proc/stat), as Docker's system_cpu_usage.
fn system_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks * 10_000_000
}

fn online_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

fn sample(
    cg: &berth_cgroups::Cgroup,
    alive: bool,
) -> (
    ContainerCpuStats,
    ContainerMemoryStats,
    ContainerPidsStats,
    ContainerBlkioStats,
) {
    let s = if alive {
        cg.stats().unwrap_or_default()
    } else {
        Default::default()
    };
    let cpu = ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(s.cpu_usage_ns),
            percpu_usage: (!s.percpu_usage_ns.is_empty()).then(|| s.percpu_usage_ns.clone()),
            usage_in_kernelmode: Some(s.cpu_system_ns),
            usage_in_usermode: Some(s.cpu_user_ns),
        }),
        system_cpu_usage: Some(system_cpu_ns()),
        online_cpus: Some(online_cpus()),
        throttling_data: None,
    };
    let mem = ContainerMemoryStats {
        usage: Some(s.memory_usage),
        limit: Some(s.memory_limit),
        stats: Some(std::collections::HashMap::from([
            ("inactive_file".to_string(), s.memory_inactive_file),
            ("total_inactive_file".to_string(), s.memory_inactive_file),
        ])),
        ..Default::default()
    };
    let pids = ContainerPidsStats {
        current: Some(s.pids_current),
        limit: (s.pids_limit > 0).then_some(s.pids_limit),
    };
    let blk = ContainerBlkioStats {
        io_service_bytes_recursive: Some(vec![
            ContainerBlkioStatEntry {
                major: Some(0),
                minor: Some(0),
                op: Some("read".into()),
                value: Some(s.blkio_read_bytes),
            },
            ContainerBlkioStatEntry {
                major: Some(0),
                minor: Some(0),
                op: Some("write".into()),
                value: Some(s.blkio_write_bytes),
            },
        ]),
        ..Default::default()
    };
    (cpu, mem, pids, blk)
}

/// Sends samples: with `stream`, one a second until the receiver goes away; otherwise one
/// sample whose `precpu_stats` was taken a moment earlier (so CPU % can be computed).
pub async fn run(
    id: String,
    name: String,
    cg: berth_cgroups::Cgroup,
    life: watch::Receiver<Life>,
    stream: bool,
    tx: mpsc::Sender<ContainerStatsResponse>,
) {
    let take = |cg: berth_cgroups::Cgroup, alive: bool| async move {
        berth_fs::blocking(move || (chrono::Utc::now(), sample(&cg, alive)))
            .await
            .ok()
    };
    let alive = || life.borrow().status.is_alive();
    let Some(mut prev) = take(cg.clone(), alive()).await else {
        return;
    };
    let interval = if stream {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(250)
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tx.closed() => return,
        }
        let Some(cur) = take(cg.clone(), alive()).await else {
            return;
        };
        let (t, (cpu, mem, pids, blk)) = cur.clone();
        let resp = ContainerStatsResponse {
            id: Some(id.clone()),
            name: Some(name.clone()),
            os_type: Some("linux".into()),
            read: Some(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            preread: Some(prev.0.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            cpu_stats: Some(cpu),
            precpu_stats: Some(prev.1.0.clone()),
            memory_stats: Some(mem),
            pids_stats: Some(pids),
            blkio_stats: Some(blk),
            num_procs: Some(0),
            networks: None,
            storage_stats: None,
        };
        if tx.send(resp).await.is_err() || !stream {
            return;
        }
        prev = cur;
    }
}
