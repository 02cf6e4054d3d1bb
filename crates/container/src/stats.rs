//! `docker stats` samples from the container's cgroup.
use std::time::Duration;

use std::collections::HashMap;

use berth_api::models::{
    ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
    ContainerMemoryStats, ContainerNetworkStats, ContainerPidsStats, ContainerStatsResponse,
    ContainerThrottlingData,
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

/// One sample of the cgroup, in Docker's shapes: the whole `memory.stat` as
/// `memory_stats.stats` (and `max_usage` on v1), CFS `throttling_data`, and `blkio_stats` as
/// dockerd fills it per version: on v1 every list present (empty when the kernel has no
/// entries), on v2 only `io_service_bytes_recursive` (`read`/`write` per device) and the rest
/// absent (`null` on the wire, `berth_api::shape::stats`).
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
    let t = s.cpu_throttling;
    let cpu = ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(s.cpu_usage_ns),
            percpu_usage: (!s.percpu_usage_ns.is_empty()).then(|| s.percpu_usage_ns.clone()),
            usage_in_kernelmode: Some(s.cpu_system_ns),
            usage_in_usermode: Some(s.cpu_user_ns),
        }),
        system_cpu_usage: Some(system_cpu_ns()),
        online_cpus: Some(online_cpus()),
        throttling_data: Some(ContainerThrottlingData {
            periods: Some(t.periods),
            throttled_periods: Some(t.throttled_periods),
            throttled_time: Some(t.throttled_time_ns),
        }),
    };
    let v1 = cg.version() == berth_cgroups::CgroupVersion::V1;
    let mut stat: HashMap<String, u64> = s.memory_stat.iter().cloned().collect();
    // Docker's CLI subtracts it from usage: keep it there even where the kernel had no file.
    let inactive = if v1 {
        "total_inactive_file"
    } else {
        "inactive_file"
    };
    stat.entry(inactive.to_string())
        .or_insert(s.memory_inactive_file);
    let mem = ContainerMemoryStats {
        usage: Some(s.memory_usage),
        limit: Some(s.memory_limit),
        max_usage: if v1 {
            s.memory_max_usage.or(Some(0))
        } else {
            None
        },
        stats: Some(stat),
        ..Default::default()
    };
    let pids = ContainerPidsStats {
        current: Some(s.pids_current),
        limit: (s.pids_limit > 0).then_some(s.pids_limit),
    };
    let entries: Vec<ContainerBlkioStatEntry> = s
        .blkio_service_bytes
        .iter()
        .map(|e| ContainerBlkioStatEntry {
            major: Some(e.major),
            minor: Some(e.minor),
            op: Some(e.op.clone()),
            value: Some(e.value),
        })
        .collect();
    let blk = if v1 {
        ContainerBlkioStats {
            io_service_bytes_recursive: Some(entries),
            io_serviced_recursive: Some(Vec::new()),
            io_queue_recursive: Some(Vec::new()),
            io_service_time_recursive: Some(Vec::new()),
            io_wait_time_recursive: Some(Vec::new()),
            io_merged_recursive: Some(Vec::new()),
            io_time_recursive: Some(Vec::new()),
            sectors_recursive: Some(Vec::new()),
        }
    } else {
        ContainerBlkioStats {
            io_service_bytes_recursive: (!entries.is_empty()).then_some(entries),
            ..Default::default()
        }
    };
    (cpu, mem, pids, blk)
}

/// Per-interface counters of the network namespace of `pid` (its `/proc/PID/net/dev`), the
/// loopback left out, as dockerd's `networks`; `None` when it has no other interface (as
/// dockerd sends none for `--network none`).
fn network_stats(pid: i64) -> Option<HashMap<String, ContainerNetworkStats>> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let out = parse_net_dev(&text);
    (!out.is_empty()).then_some(out)
}

/// `/proc/net/dev`: two header lines, then `name: rx(bytes packets errs drop fifo frame
/// compressed multicast) tx(bytes packets errs drop …)`.
fn parse_net_dev(text: &str) -> HashMap<String, ContainerNetworkStats> {
    let mut out = HashMap::new();
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let v: Vec<u64> = counters
            .split_ascii_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        if name == "lo" || v.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            ContainerNetworkStats {
                rx_bytes: Some(v[0]),
                rx_packets: Some(v[1]),
                rx_errors: Some(v[2]),
                rx_dropped: Some(v[3]),
                tx_bytes: Some(v[8]),
                tx_packets: Some(v[9]),
                tx_errors: Some(v[10]),
                tx_dropped: Some(v[11]),
                ..Default::default()
            },
        );
    }
    out
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
        let pid = life.borrow().pid;
        let networks = berth_fs::blocking(move || network_stats(pid))
            .await
            .ok()
            .flatten();
        let resp = ContainerStatsResponse {
            id: Some(id.clone()),
            name: Some(name.clone()),
            os_type: None,
            read: Some(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            preread: Some(prev.0.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            cpu_stats: Some(cpu),
            precpu_stats: Some(prev.1.0.clone()),
            memory_stats: Some(mem),
            pids_stats: Some(pids),
            blkio_stats: Some(blk),
            num_procs: Some(0),
            networks,
            storage_stats: None,
        };
        if tx.send(resp).await.is_err() || !stream {
            return;
        }
        prev = cur;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_per_interface_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1296      16    1    2    0     0          0         0      726       9    3    4    0     0       0          0
";
        let stats = parse_net_dev(text);
        assert_eq!(stats.len(), 1);
        let eth0 = &stats["eth0"];
        assert_eq!(eth0.rx_bytes, Some(1296));
        assert_eq!(eth0.rx_packets, Some(16));
        assert_eq!(eth0.rx_errors, Some(1));
        assert_eq!(eth0.rx_dropped, Some(2));
        assert_eq!(eth0.tx_bytes, Some(726));
        assert_eq!(eth0.tx_packets, Some(9));
        assert_eq!(eth0.tx_errors, Some(3));
        assert_eq!(eth0.tx_dropped, Some(4));
    }
}
