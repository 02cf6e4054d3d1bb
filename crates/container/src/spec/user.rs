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
    // The groups listing the user by name, its primary one too; only when no group was
    // given (runc's `GetExecUser`: "supplementary group ids only make sense if in the
    // implicit form").
    let mut additional_gids = Vec::new();
    if !name.is_empty() && grp.is_none() {
        for f in &groups {
            if f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
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

/// Adds `--group-add` (`HostConfig.GroupAdd`: names from the container's /etc/group, or
/// numbers) to the user's supplementary groups, as Docker does at start and exec.
pub fn add_groups(
    user: &mut ResolvedUser,
    group_add: &[String],
    rootfs: &RootfsDirs,
) -> Result<(), ContainerError> {
    if group_add.is_empty() {
        return Ok(());
    }
    let group = read_rootfs_file(rootfs, "etc/group").unwrap_or_default();
    for g in additional_groups_in(group_add, &group)? {
        if !user.additional_gids.contains(&g) {
            user.additional_gids.push(g);
        }
    }
    Ok(())
}

/// The gids of `--group-add` values over a group file's content (runc's
/// `GetAdditionalGroups`): a name found in the file, else a number.
pub fn additional_groups_in(group_add: &[String], group: &str) -> Result<Vec<u32>, ContainerError> {
    let mut gids = Vec::new();
    for wanted in group_add {
        let found = group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 3)
            .find(|f| f[0] == wanted || f[2] == wanted)
            .and_then(|f| f[2].parse::<u32>().ok());
        let gid = match found {
            Some(g) => g,
            None => wanted.parse::<u32>().map_err(|_| {
                invalid(format!(
                    "Unable to find group {wanted}: no matching entries in group file"
                ))
            })?,
        };
        if !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    Ok(gids)
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
        let u = resolve_user_in("root", PASSWD, GROUP).unwrap();
        assert_eq!(u.additional_gids, vec![10]);
        let u = resolve_user_in("1000:10", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        assert!(
            u.additional_gids.is_empty(),
            "an explicit group has no others"
        );
        let u = resolve_user_in("user:users", PASSWD, GROUP).unwrap();
        assert_eq!((u.gid, u.additional_gids.len()), (100, 0));
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

    #[test]
    fn group_add_takes_names_and_numbers() {
        let add = |v: &[&str]| {
            additional_groups_in(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), GROUP)
        };
        assert_eq!(
            add(&["wheel", "4242", "users", "10"]).unwrap(),
            vec![10, 4242, 100]
        );
        assert_eq!(
            add(&["nosuch"]).unwrap_err().to_string(),
            "Unable to find group nosuch: no matching entries in group file"
        );
    }
}
