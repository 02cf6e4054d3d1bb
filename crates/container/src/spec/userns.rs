//! `--userns-remap`: the daemon's subordinate id range as a container's user namespace.
use berth_image::IdMapping;
use oci_spec::runtime::{
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Spec,
};

use super::invalid;
use crate::ContainerError;

/// Puts the container in a new user namespace with `map`'s ranges.
pub fn apply_user_namespace(spec: &mut Spec, map: &IdMapping) -> Result<(), ContainerError> {
    let ranges = |r: &[(u32, u32, u32)]| -> Result<Vec<LinuxIdMapping>, ContainerError> {
        r.iter()
            .map(|&(container, host, size)| {
                LinuxIdMappingBuilder::default()
                    .container_id(container)
                    .host_id(host)
                    .size(size)
                    .build()
                    .map_err(|e| invalid(e.to_string()))
            })
            .collect()
    };
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let namespaces = linux.namespaces_mut().get_or_insert_with(Vec::new);
    if !namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User)
    {
        let mut user = LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        namespaces.insert(0, user);
    }
    linux.set_uid_mappings(Some(ranges(&map.uids)?));
    linux.set_gid_mappings(Some(ranges(&map.gids)?));
    Ok(())
}

/// Whether a container of this host config gets the daemon's remapping (`--userns=host`
/// opts out), and the modes Docker refuses with it, in its words.
pub fn remapped(
    hc: &berth_api::models::HostConfig,
    remap: Option<&IdMapping>,
) -> Result<Option<IdMapping>, ContainerError> {
    let host = match hc.userns_mode.as_deref().unwrap_or("") {
        "" => false,
        "host" => true,
        _ => return Err(invalid("invalid USER mode")),
    };
    let Some(map) = remap.filter(|_| !host) else {
        return Ok(None);
    };
    if hc.privileged.unwrap_or(false) {
        return Err(invalid(
            "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
        ));
    }
    Ok(Some(map.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::HostConfig;

    #[test]
    fn remap_applies_unless_host_and_refuses_privileged() {
        let map = IdMapping {
            uids: vec![(0, 100_000, 65536)],
            gids: vec![(0, 100_000, 65536)],
        };
        let hc = HostConfig::default();
        assert_eq!(remapped(&hc, Some(&map)).unwrap(), Some(map.clone()));
        assert_eq!(remapped(&hc, None).unwrap(), None);
        let host = HostConfig {
            userns_mode: Some("host".into()),
            privileged: Some(true),
            ..Default::default()
        };
        assert_eq!(remapped(&host, Some(&map)).unwrap(), None);
        let privileged = HostConfig {
            privileged: Some(true),
            ..Default::default()
        };
        assert!(
            remapped(&privileged, Some(&map))
                .unwrap_err()
                .to_string()
                .starts_with("privileged mode is incompatible with user namespaces")
        );
        let bad = HostConfig {
            userns_mode: Some("private".into()),
            ..Default::default()
        };
        assert_eq!(
            remapped(&bad, None).unwrap_err().to_string(),
            "invalid USER mode"
        );
        let mut spec = berth_runtime::base_spec();
        apply_user_namespace(&mut spec, &map).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(
            linux
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .any(|n| n.typ() == LinuxNamespaceType::User)
        );
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 100_000);
    }
}
