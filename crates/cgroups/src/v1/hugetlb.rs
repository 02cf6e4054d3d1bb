//! `hugetlb` controller: one limit file per page size, `hugetlb.<size>.limit_in_bytes` on
//! v1 and `hugetlb.<size>.max` on v2 (sizes as the kernel names them: `2MB`, `1GB`).

use std::path::Path;

use crate::{CgroupError, CgroupVersion, Resources, fs};

/// Writes every huge page limit.
pub(crate) fn apply(
    dir: &Path,
    resources: &Resources,
    version: CgroupVersion,
) -> Result<(), CgroupError> {
    for limit in &resources.hugepage_limits {
        let size = &limit.page_size;
        if size.is_empty() || size.contains('/') {
            return Err(CgroupError::NotSupported {
                setting: "hugepageLimits",
                reason: format!("{size:?} is not a page size"),
            });
        }
        let file = match version {
            CgroupVersion::V1 => format!("hugetlb.{size}.limit_in_bytes"),
            CgroupVersion::V2 => format!("hugetlb.{size}.max"),
        };
        fs::write_setting(dir, &file, &limit.limit.to_string(), "hugepageLimits")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;
    use crate::HugepageLimit;

    #[test]
    fn one_file_per_page_size_and_version() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("hugetlb.2MB.limit_in_bytes"), "").unwrap();
        stdfs::write(tmp.path().join("hugetlb.2MB.max"), "").unwrap();
        let resources = Resources {
            hugepage_limits: vec![HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 20,
            }],
            ..Default::default()
        };
        apply(tmp.path(), &resources, CgroupVersion::V1).unwrap();
        apply(tmp.path(), &resources, CgroupVersion::V2).unwrap();
        let read = |f: &str| stdfs::read_to_string(tmp.path().join(f)).unwrap();
        assert_eq!(read("hugetlb.2MB.limit_in_bytes"), "4194304");
        assert_eq!(read("hugetlb.2MB.max"), "4194304");
        let unknown = Resources {
            hugepage_limits: vec![HugepageLimit {
                page_size: "3MB".into(),
                limit: 1,
            }],
            ..Default::default()
        };
        let err = apply(tmp.path(), &unknown, CgroupVersion::V1).unwrap_err();
        assert!(err.to_string().starts_with("hugepageLimits: "), "{err}");
    }
}
