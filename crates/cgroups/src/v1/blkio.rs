//! v1 `blkio` controller, for stats only: `blkio.throttle.io_service_bytes` lists bytes per
//! device and operation (`8:0 Read 4096`) and ends with a `Total` line.

use std::path::Path;

use crate::controller::Report;
use crate::{CgroupError, Stats, fs};

/// The v1 blkio controller.
pub(crate) struct Blkio;

impl Report for Blkio {
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        if let Some(content) = fs::read(&dir.join("blkio.throttle.io_service_bytes"))? {
            (stats.blkio_read_bytes, stats.blkio_write_bytes) = parse_service_bytes(&content);
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
    fn empty_accounting_is_zero() {
        assert_eq!(parse_service_bytes("Total 0\n"), (0, 0));
    }
}
