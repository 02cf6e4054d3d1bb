//! v1 `devices` controller: each rule is one write to `devices.allow` or `devices.deny`
//! (the kernel takes one rule per write), applied in order. A new cgroup starts with its
//! parent's rules, so an empty rule list keeps the parent's (normally: allow all).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::{CgroupError, DeviceRule};

/// Writes `rules` in order, keeping each of the two files open across its rules.
pub(crate) fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let mut allow: Option<File> = None;
    let mut deny: Option<File> = None;
    for rule in rules {
        let (slot, name) = if rule.allow {
            (&mut allow, "devices.allow")
        } else {
            (&mut deny, "devices.deny")
        };
        let path = dir.join(name);
        let file =
            match slot {
                Some(file) => file,
                None => slot.insert(OpenOptions::new().write(true).open(&path).map_err(
                    |source| CgroupError::Io {
                        op: "open",
                        path: path.clone(),
                        source,
                    },
                )?),
            };
        // One write() per rule, newline-terminated (the kernel accepts the newline).
        let line = format!("{rule}\n");
        file.write_all(line.as_bytes())
            .map_err(|source| CgroupError::Write {
                path,
                value: rule.to_string(),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn rules_go_to_their_files_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("devices.allow"), "").unwrap();
        stdfs::write(tmp.path().join("devices.deny"), "").unwrap();
        apply(tmp.path(), &DeviceRule::docker_defaults()).unwrap();
        assert_eq!(
            stdfs::read_to_string(tmp.path().join("devices.deny")).unwrap(),
            "a\n"
        );
        let allowed = stdfs::read_to_string(tmp.path().join("devices.allow")).unwrap();
        let lines: Vec<&str> = allowed.lines().collect();
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], "c *:* m");
        assert_eq!(lines[9], "c 5:2 rwm");
        assert!(lines.contains(&"c 136:* rwm"));
    }

    #[test]
    fn no_rules_touch_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        apply(tmp.path(), &[]).unwrap();
        assert_eq!(stdfs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
