//! `rdma` controller: `rdma.max`, one `DEVICE hca_handle=N hca_object=M` write per device
//! (the same file on v1 and v2).

use std::path::Path;

use crate::{CgroupError, Resources, fs};

/// Writes the limits of every device.
pub(crate) fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
    for limit in &resources.rdma {
        let mut line = limit.device.clone();
        if let Some(handles) = limit.hca_handles {
            line.push_str(&format!(" hca_handle={handles}"));
        }
        if let Some(objects) = limit.hca_objects {
            line.push_str(&format!(" hca_object={objects}"));
        }
        fs::write_setting(dir, "rdma.max", &line, "rdma")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;
    use crate::RdmaLimit;

    #[test]
    fn one_line_per_device() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("rdma.max"), "").unwrap();
        let resources = Resources {
            rdma: vec![RdmaLimit {
                device: "mlx5_0".into(),
                hca_handles: Some(3),
                hca_objects: None,
            }],
            ..Default::default()
        };
        apply(tmp.path(), &resources).unwrap();
        assert_eq!(
            stdfs::read_to_string(tmp.path().join("rdma.max")).unwrap(),
            "mlx5_0 hca_handle=3"
        );
    }
}
