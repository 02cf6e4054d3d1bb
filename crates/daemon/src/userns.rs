//! `--userns-remap default|USER[:GROUP]`, as dockerd's: containers run in a user namespace
//! whose ids are the user's subordinate ranges in `/etc/subuid` and `/etc/subgid`.
//!
//! `default` is the user `berthremap` (dockerd's `dockremap`): created as a system user when
//! missing, and given a 65536-id range after the highest one the files grant when it has
//! none (dockerd does the same with `usermod --add-subuids`). Several ranges of a user are
//! mapped one after the other, as dockerd maps them.
use std::path::Path;

use berth_image::IdMapping;

use crate::error::DaemonError;

/// The user `default` names.
pub const DEFAULT_REMAP_USER: &str = "berthremap";

/// Where the ids come from (host files; tests point them at fixtures).
#[derive(Debug, Clone)]
pub struct IdFiles<'a> {
    /// `/etc/passwd`.
    pub passwd: &'a Path,
    /// `/etc/group`.
    pub group: &'a Path,
    /// `/etc/subuid`.
    pub subuid: &'a Path,
    /// `/etc/subgid`.
    pub subgid: &'a Path,
}

impl IdFiles<'static> {
    /// The host's.
    pub fn host() -> Self {
        IdFiles {
            passwd: Path::new("/etc/passwd"),
            group: Path::new("/etc/group"),
            subuid: Path::new("/etc/subuid"),
            subgid: Path::new("/etc/subgid"),
        }
    }
}

fn error(message: impl Into<String>) -> DaemonError {
    DaemonError::UsernsRemap {
        message: message.into(),
    }
}

/// The mapping `--userns-remap VALUE` asks for (creating `berthremap` and its ranges for
/// `default`).
pub fn resolve(value: &str, files: &IdFiles<'_>) -> Result<IdMapping, DaemonError> {
    let (user, group) = match value.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (value, None),
    };
    if user.is_empty() {
        return Err(error("a user name is required"));
    }
    if user == "default" {
        if lookup(files.passwd, DEFAULT_REMAP_USER).is_none() {
            let out = std::process::Command::new("useradd")
                .args(["--system", "--no-create-home", "--shell", "/bin/false"])
                .arg(DEFAULT_REMAP_USER)
                .output()
                .map_err(|e| error(format!("useradd {DEFAULT_REMAP_USER}: {e}")))?;
            if !out.status.success() {
                return Err(error(format!(
                    "useradd {DEFAULT_REMAP_USER}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        for file in [files.subuid, files.subgid] {
            ensure_range(file, DEFAULT_REMAP_USER)?;
        }
        return mapping(DEFAULT_REMAP_USER, DEFAULT_REMAP_USER, files);
    }
    let (name, _) =
        entry(files.passwd, user).ok_or_else(|| error(format!("User {user:?} not found")))?;
    let group_name = match group {
        Some(g) => {
            entry(files.group, g)
                .ok_or_else(|| error(format!("Group {g:?} not found")))?
                .0
        }
        None => name.clone(),
    };
    mapping(&name, &group_name, files)
}

/// `(name, id)` of `who` (a name or a number) in a passwd/group-style file.
fn entry(file: &Path, who: &str) -> Option<(String, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let (name, _, id) = (f.next()?, f.next()?, f.next()?.parse::<u32>().ok()?);
        (name == who || id.to_string() == who).then(|| (name.to_owned(), id))
    })
}

fn lookup(file: &Path, who: &str) -> Option<u32> {
    entry(file, who).map(|(_, id)| id)
}

/// The ranges of the user `name` and group `group`, each list mapped from container id 0 on.
fn mapping(name: &str, group: &str, files: &IdFiles<'_>) -> Result<IdMapping, DaemonError> {
    let ranges = |file: &Path, who: &str, id: u32, what: &str| {
        let found = subordinate(file, who, id);
        if found.is_empty() {
            return Err(error(format!(
                "no {what} ranges found for {} {who:?}",
                if what == "subuid" { "user" } else { "group" }
            )));
        }
        let mut next = 0u32;
        Ok(found
            .into_iter()
            .map(|(host, size)| {
                let r = (next, host, size);
                next = next.saturating_add(size);
                r
            })
            .collect::<Vec<_>>())
    };
    let uid = lookup(files.passwd, name).unwrap_or(u32::MAX);
    let gid = lookup(files.group, group).unwrap_or(u32::MAX);
    Ok(IdMapping {
        uids: ranges(files.subuid, name, uid, "subuid")?,
        gids: ranges(files.subgid, group, gid, "subgid")?,
    })
}

/// Lets the mapped root pass through the data root to its layers (dockerd's remapped root:
/// 0710, group of the mapped root), unless everyone may already.
pub fn open_data_root(data_root: &Path, map: &IdMapping) -> Result<(), DaemonError> {
    let Some((_, gid)) = map.root() else {
        return Ok(());
    };
    berth_fs::open_to_group(data_root, gid)
        .map_err(|e| error(format!("{}: {e}", data_root.display())))
}

/// The `(start, count)` ranges a subuid/subgid-style file grants `name` (or its id).
fn subordinate(file: &Path, name: &str, id: u32) -> Vec<(u32, u32)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let id = id.to_string();
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            (who == name || who == id).then_some(())?;
            Some((start.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

/// Gives `name` a 65536-id range in `file` after every range there, unless it has one.
fn ensure_range(file: &Path, name: &str) -> Result<(), DaemonError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(error(format!("read {}: {e}", file.display()))),
    };
    let mut end = 100_000u64;
    for line in text.lines() {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next(), f.next(), f.next());
        if who == Some(name) {
            return Ok(());
        }
        if let (Some(Ok(s)), Some(Ok(c))) =
            (start.map(str::parse::<u64>), count.map(str::parse::<u64>))
        {
            end = end.max(s + c);
        }
    }
    let mut new = text;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!("{name}:{end}:65536\n"));
    berth_fs::write_atomic(file, new.as_bytes(), true)
        .map_err(|e| error(format!("write {}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(
        dir: &Path,
    ) -> (
        std::path::PathBuf,
        std::path::PathBuf,
        std::path::PathBuf,
        std::path::PathBuf,
    ) {
        let p = |n: &str| dir.join(n);
        std::fs::write(
            p("passwd"),
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(p("group"), "root:x:0:\nalice:x:1000:\nstaff:x:50:\n").unwrap();
        std::fs::write(p("subuid"), "alice:100000:65536\nalice:300000:10\n").unwrap();
        std::fs::write(p("subgid"), "alice:200000:65536\n50:400000:1000\n").unwrap();
        (p("passwd"), p("group"), p("subuid"), p("subgid"))
    }

    #[test]
    fn user_and_group_ranges_map_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (passwd, group, subuid, subgid) = fixture(dir.path());
        let files = IdFiles {
            passwd: &passwd,
            group: &group,
            subuid: &subuid,
            subgid: &subgid,
        };
        let map = resolve("alice", &files).unwrap();
        assert_eq!(map.uids, vec![(0, 100_000, 65536), (65536, 300_000, 10)]);
        assert_eq!(map.gids, vec![(0, 200_000, 65536)]);
        // A group by name, whose ranges are listed by gid.
        let map = resolve("1000:staff", &files).unwrap();
        assert_eq!(map.gids, vec![(0, 400_000, 1000)]);
        assert_eq!(
            resolve("bob", &files).unwrap_err().to_string(),
            "--userns-remap: User \"bob\" not found"
        );
        assert!(
            resolve("root", &files)
                .unwrap_err()
                .to_string()
                .contains("no subuid ranges found for user \"root\"")
        );
    }

    #[test]
    fn a_range_is_added_after_the_others_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, subuid, _) = fixture(dir.path());
        ensure_range(&subuid, "berthremap").unwrap();
        ensure_range(&subuid, "berthremap").unwrap();
        let text = std::fs::read_to_string(&subuid).unwrap();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("berthremap:"))
                .collect::<Vec<_>>(),
            vec!["berthremap:300010:65536"]
        );
    }
}
