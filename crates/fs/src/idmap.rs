//! A user-namespace mapping (`--userns-remap`): container ids to host ids and back. The image
//! store names its layer copies by it, the volume crate shifts `cp` archives with it, and
//! export and commit shift a container's ids back (an image is portable: container ids).
use std::io;

/// A user-namespace mapping: `(container, host, size)` ranges for uids and gids.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMapping {
    /// uid ranges.
    pub uids: Vec<(u32, u32, u32)>,
    /// gid ranges.
    pub gids: Vec<(u32, u32, u32)>,
}

/// The host id of container id `id` in `ranges`.
pub fn host_of(ranges: &[(u32, u32, u32)], id: u32) -> Option<u32> {
    ranges.iter().find_map(|&(container, host, size)| {
        (id >= container && id - container < size).then(|| host + (id - container))
    })
}

/// The container id of host id `id` in `ranges`.
pub fn container_of(ranges: &[(u32, u32, u32)], id: u32) -> Option<u32> {
    ranges.iter().find_map(|&(container, host, size)| {
        (id >= host && id - host < size).then(|| container + (id - host))
    })
}

impl IdMapping {
    /// The host uid and gid of the container's root.
    pub fn root(&self) -> Option<(u32, u32)> {
        Some((host_of(&self.uids, 0)?, host_of(&self.gids, 0)?))
    }

    /// `<uid>.<gid>` of the container's root: names the layer copies and the remapped volume
    /// root (Docker's per-mapping directory name).
    pub fn key(&self) -> String {
        let (uid, gid) = self.root().unwrap_or((0, 0));
        format!("{uid}.{gid}")
    }

    /// Container ids → host ids, or moby's error for an id outside the ranges.
    pub fn to_host(&self, uid: u32, gid: u32) -> io::Result<(u32, u32)> {
        let miss =
            |id| io::Error::other(format!("Container ID {id} cannot be mapped to a host ID"));
        Ok((
            host_of(&self.uids, uid).ok_or_else(|| miss(uid))?,
            host_of(&self.gids, gid).ok_or_else(|| miss(gid))?,
        ))
    }

    /// Host ids → container ids, or moby's error for an id outside the ranges.
    pub fn to_container(&self, uid: u32, gid: u32) -> io::Result<(u32, u32)> {
        let miss =
            |id| io::Error::other(format!("Host ID {id} cannot be mapped to a container ID"));
        Ok((
            container_of(&self.uids, uid).ok_or_else(|| miss(uid))?,
            container_of(&self.gids, gid).ok_or_else(|| miss(gid))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_through_ranges_both_ways() {
        let map = IdMapping {
            uids: vec![(0, 100_000, 1000), (1000, 300_000, 10)],
            gids: vec![(0, 200_000, 65536)],
        };
        assert_eq!(map.root(), Some((100_000, 200_000)));
        assert_eq!(map.key(), "100000.200000");
        assert_eq!(host_of(&map.uids, 999), Some(100_999));
        assert_eq!(host_of(&map.uids, 1005), Some(300_005));
        assert_eq!(host_of(&map.uids, 1010), None);
        assert_eq!(map.to_host(1005, 7).unwrap(), (300_005, 200_007));
        assert_eq!(map.to_container(300_005, 200_007).unwrap(), (1005, 7));
        assert_eq!(
            map.to_host(1010, 0).unwrap_err().to_string(),
            "Container ID 1010 cannot be mapped to a host ID"
        );
        assert_eq!(
            map.to_container(0, 200_000).unwrap_err().to_string(),
            "Host ID 0 cannot be mapped to a container ID"
        );
    }
}
