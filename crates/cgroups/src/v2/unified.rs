//! `unified`: raw cgroup v2 files the OCI spec names (`memory.high` → `50000000`), written
//! as given. A name must be a file of the cgroup directory (`<controller>.<file>`, no `/`);
//! one the kernel lacks is refused naming it.

use std::path::Path;

use crate::{CgroupError, Resources, fs};

/// The controller a unified file belongs to (`memory` of `memory.high`).
pub(crate) fn controller_of(file: &str) -> Result<&str, CgroupError> {
    let invalid = || CgroupError::NotSupported {
        setting: "unified",
        reason: format!("{file:?} is not a cgroup file name (<controller>.<file>)"),
    };
    if file.contains('/') || file.starts_with('.') {
        return Err(invalid());
    }
    match file.split_once('.') {
        Some((controller, rest)) if !controller.is_empty() && !rest.is_empty() => Ok(controller),
        _ => Err(invalid()),
    }
}

/// Writes every unified file.
pub(crate) fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError> {
    for (file, value) in &resources.unified {
        controller_of(file)?;
        fs::write_setting(dir, file, value, "unified")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_checked() {
        assert_eq!(controller_of("memory.high").unwrap(), "memory");
        assert_eq!(controller_of("io.bfq.weight").unwrap(), "io");
        for bad in ["../x.y", "memory", ".x", "memory.", "a/b.c"] {
            assert!(controller_of(bad).is_err(), "{bad}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let missing = Resources {
            unified: vec![("memory.nope".into(), "1".into())],
            ..Default::default()
        };
        let err = apply(tmp.path(), &missing).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unified: this host's kernel has no"),
            "{err}"
        );
    }
}
