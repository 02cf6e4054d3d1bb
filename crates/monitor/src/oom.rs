//! Whether the kernel OOM-killed something in the container's cgroup.
//!
//! cgroup v2 counts kills in `<root>/<path>/memory.events` (`oom_kill N`); v1 in
//! `<root>/memory/<path>/memory.oom_control` (same key). A unified hierarchy is recognised by
//! `<root>/cgroup.controllers`. Read before the cgroup is removed.
use std::path::Path;

/// Whether the cgroup at `cgroups_path` (as in the OCI spec) under `cgroup_root` (normally
/// `/sys/fs/cgroup`) saw an OOM kill. Unreadable files count as no.
pub fn oom_killed(cgroup_root: &Path, cgroups_path: &Path) -> bool {
    let relative = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    let file = if cgroup_root.join("cgroup.controllers").exists() {
        cgroup_root.join(relative).join("memory.events")
    } else {
        cgroup_root
            .join("memory")
            .join(relative)
            .join("memory.oom_control")
    };
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    text.lines()
        .filter_map(|line| line.strip_prefix("oom_kill "))
        .any(|count| count.trim().parse::<u64>().is_ok_and(|n| n > 0))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn reads_v1_and_v2_counters() {
        let v1 = tempfile::tempdir().expect("tempdir");
        let dir = v1.path().join("memory/berth/c1");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(
            dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .expect("write");
        assert!(!oom_killed(v1.path(), Path::new("/berth/c1")));
        fs::write(
            dir.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .expect("write");
        assert!(oom_killed(v1.path(), Path::new("/berth/c1")));
        assert!(!oom_killed(v1.path(), Path::new("/berth/missing")));

        let v2 = tempfile::tempdir().expect("tempdir");
        fs::write(v2.path().join("cgroup.controllers"), "memory pids\n").expect("write");
        let dir = v2.path().join("berth/c2");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .expect("write");
        assert!(oom_killed(v2.path(), Path::new("/berth/c2")));
        fs::write(dir.join("memory.events"), "oom 1\noom_kill 0\n").expect("write");
        assert!(!oom_killed(v2.path(), Path::new("berth/c2")));
    }
}
