//! v1 `blkio` controller: weights (`blkio.weight`, `blkio.weight_device`, `blkio.leaf_weight*`
//! with CFQ; `blkio.bfq.weight*` with BFQ: whichever the kernel has) and throttles
//! (`blkio.throttle.{read,write}_{bps,iops}_device`, one `MAJ:MIN RATE` write per device);
//! `blkio.throttle.io_service_bytes` for stats.

use std::path::Path;

use crate::controller::{Limit, Report};
use crate::{BlockIo, CgroupError, Resources, Stats, fs};

/// The v1 blkio controller.
pub(crate) struct Blkio;

impl Limit for Blkio {
    const NAME: &'static str = "blkio";

    fn wanted(resources: &Resources) -> bool {
        resources.block_io.is_some()
    }

    fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
        let Some(io) = &resources.block_io else {
            return Ok(());
        };
        apply_weights(dir, io)?;
        for (file, list, setting) in [
            (
                "blkio.throttle.read_bps_device",
                &io.read_bps,
                "blockIO.throttleReadBpsDevice",
            ),
            (
                "blkio.throttle.write_bps_device",
                &io.write_bps,
                "blockIO.throttleWriteBpsDevice",
            ),
            (
                "blkio.throttle.read_iops_device",
                &io.read_iops,
                "blockIO.throttleReadIOPSDevice",
            ),
            (
                "blkio.throttle.write_iops_device",
                &io.write_iops,
                "blockIO.throttleWriteIOPSDevice",
            ),
        ] {
            for device in list {
                let line = format!("{}:{} {}", device.major, device.minor, device.rate);
                fs::write_setting(dir, file, &line, setting)?;
            }
        }
        Ok(())
    }
}

/// Writes `value` to the CFQ file, or the BFQ one where the kernel has only that.
fn write_weight(
    dir: &Path,
    cfq: &str,
    bfq: &str,
    value: &str,
    setting: &'static str,
) -> Result<(), CgroupError> {
    if dir.join(cfq).exists() {
        fs::write(&dir.join(cfq), value)
    } else if dir.join(bfq).exists() {
        fs::write(&dir.join(bfq), value)
    } else {
        Err(CgroupError::NotSupported {
            setting,
            reason: format!(
                "this host's block I/O schedulers take no weights ({} has neither {cfq} nor {bfq})",
                dir.display()
            ),
        })
    }
}

fn apply_weights(dir: &Path, io: &BlockIo) -> Result<(), CgroupError> {
    if let Some(weight) = io.weight {
        let value = weight.to_string();
        write_weight(
            dir,
            "blkio.weight",
            "blkio.bfq.weight",
            &value,
            "blockIO.weight",
        )?;
    }
    if let Some(leaf) = io.leaf_weight {
        let value = leaf.to_string();
        fs::write_setting(dir, "blkio.leaf_weight", &value, "blockIO.leafWeight")?;
    }
    for device in &io.weight_devices {
        let id = format!("{}:{}", device.major, device.minor);
        if let Some(weight) = device.weight {
            write_weight(
                dir,
                "blkio.weight_device",
                "blkio.bfq.weight_device",
                &format!("{id} {weight}"),
                "blockIO.weightDevice",
            )?;
        }
        if let Some(leaf) = device.leaf_weight {
            fs::write_setting(
                dir,
                "blkio.leaf_weight_device",
                &format!("{id} {leaf}"),
                "blockIO.weightDevice.leafWeight",
            )?;
        }
    }
    Ok(())
}

impl Report for Blkio {
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        if let Some(content) = fs::read(&dir.join("blkio.throttle.io_service_bytes"))? {
            (stats.blkio_read_bytes, stats.blkio_write_bytes) = parse_service_bytes(&content);
            stats.blkio_service_bytes = content
                .lines()
                .filter_map(|line| {
                    let mut fields = line.split_ascii_whitespace();
                    let (major, minor) = crate::device_numbers(fields.next()?)?;
                    let op = fields.next()?.to_owned();
                    let value = fields.next()?.parse().ok()?;
                    Some(crate::BlkioEntry {
                        major,
                        minor,
                        op,
                        value,
                    })
                })
                .collect();
        }
        Ok(())
    }
}

/// Sums the `Read` and `Write` lines over all devices.
fn parse_service_bytes(content: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for line in content.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(_device), Some(op), Some(bytes)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(bytes) = bytes.parse::<u64>() else {
            continue;
        };
        match op {
            "Read" => read = read.saturating_add(bytes),
            "Write" => write = write.saturating_add(bytes),
            _ => {}
        }
    }
    (read, write)
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn sums_read_and_write_over_devices() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(
            tmp.path().join("blkio.throttle.io_service_bytes"),
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\n\
             8:16 Read 100\n8:16 Write 1\n8:16 Total 101\nTotal 12389\n",
        )
        .unwrap();
        let mut stats = Stats::default();
        Blkio::report(tmp.path(), &mut stats).unwrap();
        assert_eq!(
            (stats.blkio_read_bytes, stats.blkio_write_bytes),
            (4196, 8193)
        );
    }

    #[test]
    fn weights_and_throttles() {
        let tmp = tempfile::tempdir().unwrap();
        for file in [
            "blkio.bfq.weight",
            "blkio.bfq.weight_device",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_iops_device",
        ] {
            stdfs::write(tmp.path().join(file), "").unwrap();
        }
        let resources = Resources {
            block_io: Some(BlockIo {
                weight: Some(300),
                weight_devices: vec![crate::WeightDevice {
                    major: 8,
                    minor: 0,
                    weight: Some(500),
                    leaf_weight: None,
                }],
                read_bps: vec![crate::ThrottleDevice {
                    major: 8,
                    minor: 0,
                    rate: 1 << 20,
                }],
                write_iops: vec![crate::ThrottleDevice {
                    major: 8,
                    minor: 16,
                    rate: 100,
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(Blkio::wanted(&resources));
        Blkio::apply(tmp.path(), &resources).unwrap();
        let read = |f: &str| stdfs::read_to_string(tmp.path().join(f)).unwrap();
        // BFQ only: its files take the weights.
        assert_eq!(read("blkio.bfq.weight"), "300");
        assert_eq!(read("blkio.bfq.weight_device"), "8:0 500");
        assert_eq!(read("blkio.throttle.read_bps_device"), "8:0 1048576");
        assert_eq!(read("blkio.throttle.write_iops_device"), "8:16 100");
    }

    #[test]
    fn weights_without_a_weighing_scheduler_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let resources = Resources {
            block_io: Some(BlockIo {
                weight: Some(300),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = Blkio::apply(tmp.path(), &resources).unwrap_err();
        assert!(err.to_string().starts_with("blockIO.weight: "), "{err}");
        let leaf = Resources {
            block_io: Some(BlockIo {
                leaf_weight: Some(300),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = Blkio::apply(tmp.path(), &leaf).unwrap_err();
        assert!(err.to_string().starts_with("blockIO.leafWeight: "), "{err}");
    }

    #[test]
    fn empty_accounting_is_zero() {
        assert_eq!(parse_service_bytes("Total 0\n"), (0, 0));
    }
}
