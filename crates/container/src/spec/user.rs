//! `--user` resolved against the container's own `/etc/passwd` and `/etc/group`.
use berth_image::RootfsDirs;

use super::invalid;
use crate::ContainerError;

/// A user resolved against the container's /etc/passwd and /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// Home directory (for HOME).
    pub home: String,
}

/// Reads `rel` (e.g. `etc/passwd`) from the topmost layer that has it.
fn read_rootfs_file(rootfs: &RootfsDirs, rel: &str) -> Option<String> {
    std::iter::once(&rootfs.upperdir)
        .chain(rootfs.lowerdirs.iter())
        .find_map(|d| {
            let p = d.join(rel);
            // Never follow a symlink the image planted: read only regular files.
            let meta = std::fs::symlink_metadata(&p).ok()?;
            meta.is_file()
                .then(|| std::fs::read_to_string(&p).ok())
                .flatten()
        })
}

/// Resolves Docker's `user[:group]` (names or numbers) inside the container.
pub fn resolve_user(spec: &str, rootfs: &RootfsDirs) -> Result<ResolvedUser, ContainerError> {
    let passwd = read_rootfs_file(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_rootfs_file(rootfs, "etc/group").unwrap_or_default();
    resolve_user_in(spec, &passwd, &group)
}

/// [`resolve_user`] over file contents.
pub fn resolve_user_in(
    spec: &str,
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser, ContainerError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let found = entries
        .iter()
        .find(|f| f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user));
    let (uid, mut gid, name, home) = match (found, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse::<u32>()
                .map_err(|_| invalid(format!("bad uid in passwd for {user}")))?,
            f[3].parse::<u32>().unwrap_or(0),
            f[0].to_string(),
            f[5].to_string(),
        ),
        (None, Ok(n)) => (n, n, String::new(), "/".to_string()),
        (None, Err(_)) => {
            return Err(invalid(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )));
        }
    };
    // A uid with no passwd entry gets gid 0 unless a group is given, as in Docker.
    if found.is_none() {
        gid = 0;
    }
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = grp {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let mut additional_gids = Vec::new();
    if !name.is_empty() {
        for f in &groups {
            if f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
                && g != gid
                && !additional_gids.contains(&g)
            {
                additional_gids.push(g);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:u:/home/user:/bin/sh\nnobody:x:65534:65534:n:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:user\nuser:x:1000:\nwheel:x:10:root,user\n";

    #[test]
    fn users_resolve_like_docker() {
        let u = resolve_user_in("user", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/user"));
        assert_eq!(u.additional_gids, vec![100, 10]);
        let u = resolve_user_in("1000:10", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        let u = resolve_user_in("4242", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
        let u = resolve_user_in("root:wheel", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (0, 10));
        let e = resolve_user_in("nosuch", PASSWD, GROUP).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user nosuch: no matching entries in passwd file"
        );
        assert!(resolve_user_in("user:nogroup", PASSWD, GROUP).is_err());
    }
}
