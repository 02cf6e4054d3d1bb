//! v2 `io` controller, for stats only: `io.stat` has one line per device,
//! `8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0`.

use std::path::Path;

use crate::controller::Report;
use crate::{CgroupError, Stats, fs};

/// The v2 io controller.
pub(crate) struct Io;

impl Report for Io {
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
        if let Some(content) = fs::read(&dir.join("io.stat"))? {
            (stats.blkio_read_bytes, stats.blkio_write_bytes) = parse_io_stat(&content);
        }
        Ok(())
    }
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
    fn sums_devices() {
        let content = "8:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n\
                       259:0 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(content), (4106, 532));
        assert_eq!(parse_io_stat(""), (0, 0));
    }
}
