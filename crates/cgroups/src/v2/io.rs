//! v2 `io` controller: weights (`io.bfq.weight` where BFQ is the scheduler, in blkio's
//! 10–1000 scale; else `io.weight`, 1–10000, converted as runc does), and throttles (`io.max`,
//! one `MAJ:MIN rbps=… wbps=… riops=… wiops=…` line per device); `io.stat` for stats. There is
//! no leaf weight in v2: refused.

use std::collections::BTreeMap;
use std::path::Path;

use crate::controller::{Limit, Report};
use crate::{BlockIo, CgroupError, Resources, Stats, fs};

/// The v2 io controller.
pub(crate) struct Io;

/// blkio's weight (10–1000) on io.weight's scale (1–10000), as runc converts it.
pub(crate) fn io_weight(blkio_weight: u16) -> u64 {
    let weight = u64::from(blkio_weight.clamp(10, 1000));
    1 + (weight - 10) * 9999 / 990
}

impl Limit for Io {
    const NAME: &'static str = "io";

    fn wanted(resources: &Resources) -> bool {
        resources.block_io.is_some()
    }

    fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
        let Some(io) = &resources.block_io else {
            return Ok(());
        };
        if io.leaf_weight.is_some() || io.weight_devices.iter().any(|d| d.leaf_weight.is_some()) {
            return Err(CgroupError::NotSupported {
                setting: "blockIO.leafWeight",
                reason: "cgroup v2 has no leaf weights".into(),
            });
        }
        let bfq = dir.join("io.bfq.weight").exists();
        let weight_file = if bfq { "io.bfq.weight" } else { "io.weight" };
        let scaled = |w: u16| {
            if bfq { u64::from(w) } else { io_weight(w) }
        };
        if let Some(weight) = io.weight {
            fs::write_setting(
                dir,
                weight_file,
                &scaled(weight).to_string(),
                "blockIO.weight",
            )?;
        }
        for device in &io.weight_devices {
            if let Some(weight) = device.weight {
                let line = format!("{}:{} {}", device.major, device.minor, scaled(weight));
                fs::write_setting(dir, weight_file, &line, "blockIO.weightDevice")?;
            }
        }
        for (device, line) in max_lines(io) {
            let _ = device;
            fs::write_setting(dir, "io.max", &line, "blockIO.throttle")?;
        }
        Ok(())
    }
}

/// The `io.max` lines of the throttles, one per device.
fn max_lines(io: &BlockIo) -> BTreeMap<(i64, i64), String> {
    let mut lines: BTreeMap<(i64, i64), String> = BTreeMap::new();
    for (key, list) in [
        ("rbps", &io.read_bps),
        ("wbps", &io.write_bps),
        ("riops", &io.read_iops),
        ("wiops", &io.write_iops),
    ] {
        for device in list {
            let line = lines
                .entry((device.major, device.minor))
                .or_insert_with(|| format!("{}:{}", device.major, device.minor));
            line.push_str(&format!(" {key}={}", device.rate));
        }
    }
    lines
}

impl Report for Io {
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        if let Some(content) = fs::read(&dir.join("io.stat"))? {
            (stats.blkio_read_bytes, stats.blkio_write_bytes) = parse_io_stat(&content);
            stats.blkio_service_bytes = per_device(&content);
        }
        Ok(())
    }
}

/// `read` and `write` bytes per device (`MAJ:MIN rbytes=… wbytes=… …` lines), as Docker
/// reports them on v2.
fn per_device(content: &str) -> Vec<crate::BlkioEntry> {
    let mut out = Vec::new();
    for line in content.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some((major, minor)) = fields.next().and_then(crate::device_numbers) else {
            continue;
        };
        let (mut read, mut write) = (0, 0);
        for (key, value) in fields.filter_map(|f| f.split_once('=')) {
            match key {
                "rbytes" => read = value.parse().unwrap_or(0),
                "wbytes" => write = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        for (op, value) in [("read", read), ("write", write)] {
            let op = op.to_owned();
            out.push(crate::BlkioEntry {
                major,
                minor,
                op,
                value,
            });
        }
    }
    out
}

/// Sums `rbytes` and `wbytes` over all devices.
fn parse_io_stat(content: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for (key, value) in content
        .split_ascii_whitespace()
        .filter_map(|field| field.split_once('='))
    {
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "rbytes" => read = read.saturating_add(value),
            "wbytes" => write = write.saturating_add(value),
            _ => {}
        }
    }
    (read, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_convert_and_throttles_join_per_device() {
        assert_eq!(io_weight(10), 1);
        assert_eq!(io_weight(500), 4950);
        assert_eq!(io_weight(1000), 10000);
        let tmp = tempfile::tempdir().unwrap();
        for file in ["io.weight", "io.max"] {
            std::fs::write(tmp.path().join(file), "").unwrap();
        }
        let throttle = |major, minor, rate| crate::ThrottleDevice { major, minor, rate };
        let io = BlockIo {
            weight: Some(500),
            read_bps: vec![throttle(8, 0, 100)],
            write_iops: vec![throttle(8, 0, 7), throttle(8, 16, 9)],
            ..Default::default()
        };
        assert_eq!(
            max_lines(&io).into_values().collect::<Vec<_>>(),
            ["8:0 rbps=100 wiops=7", "8:16 wiops=9"]
        );
        let resources = Resources {
            block_io: Some(io),
            ..Default::default()
        };
        Io::apply(tmp.path(), &resources).unwrap();
        let read = |f: &str| std::fs::read_to_string(tmp.path().join(f)).unwrap();
        assert_eq!(read("io.weight"), "4950");
        // A plain file keeps the last line; the kernel keeps one per device.
        assert_eq!(read("io.max"), "8:16 wiops=9");
        // BFQ takes blkio's scale.
        std::fs::write(tmp.path().join("io.bfq.weight"), "").unwrap();
        Io::apply(tmp.path(), &resources).unwrap();
        assert_eq!(read("io.bfq.weight"), "500");
        let leaf = Resources {
            block_io: Some(BlockIo {
                leaf_weight: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = Io::apply(tmp.path(), &leaf).unwrap_err();
        assert!(err.to_string().starts_with("blockIO.leafWeight: "), "{err}");
    }

    #[test]
    fn sums_devices() {
        let content = "8:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n\
                       259:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(content), (4106, 532));
        assert_eq!(parse_io_stat(""), (0, 0));
    }
}
