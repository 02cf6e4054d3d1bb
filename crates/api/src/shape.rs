//! Docker's wire shape where the typed models cannot say it.
//!
//! The models ([`crate::models`]) skip every `None` field, but dockerd (Go structs without
//! `omitempty`) sends many of those keys as `null`, and sends `null` (a nil map or slice) where
//! berth's records hold an empty one. Clients read the difference: docker-py and Testcontainers
//! index `Config.Entrypoint` or `HostConfig.CapAdd` without a default, `jq` pipelines test
//! `.Config.Volumes == null`. Each function here turns one object, already serialized, into
//! dockerd's key set at API 1.44; the golden key sets in `tests/compat/golden/` (taken from
//! dockerd 20.10, adjusted for 1.44) check them.
//!
//! Keys newer than API 1.44 that the models carry (`GwPriority`, 1.48; `EnableIPv4`, 1.47;
//! `os_type` in stats) are dropped, as a 1.44 daemon never sends them.
use serde_json::{Map, Value};

/// A key set to `null` when absent.
fn null_if_absent(obj: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        obj.entry(*k).or_insert(Value::Null);
    }
}

/// A key set to `""` when absent.
fn empty_if_absent(obj: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        obj.entry(*k)
            .or_insert_with(|| Value::String(String::new()));
    }
}

/// A key set to `false` when absent.
fn false_if_absent(obj: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        obj.entry(*k).or_insert(Value::Bool(false));
    }
}

/// A key holding an empty (or absent) map or list becomes `null` (Go's nil map or slice).
fn null_if_empty(obj: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        let empty = match obj.get(*k) {
            None => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(_) => false,
        };
        if empty {
            obj.insert((*k).to_string(), Value::Null);
        }
    }
}

fn object<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    value.get_mut(key).and_then(Value::as_object_mut)
}

/// A container's `Config` (inspect) or an image's `Config`: Go's `container.Config`.
pub fn container_config(config: &mut Value) {
    let Some(c) = config.as_object_mut() else {
        return;
    };
    empty_if_absent(
        c,
        &["Hostname", "Domainname", "User", "WorkingDir", "Image"],
    );
    false_if_absent(
        c,
        &[
            "AttachStdin",
            "AttachStdout",
            "AttachStderr",
            "Tty",
            "OpenStdin",
            "StdinOnce",
        ],
    );
    null_if_absent(c, &["Env", "Cmd", "Entrypoint", "OnBuild"]);
    null_if_empty(c, &["Volumes"]);
}

/// A container's `HostConfig`: the slices and pointers dockerd leaves nil.
fn host_config(hc: &mut Value) {
    let Some(h) = hc.as_object_mut() else {
        return;
    };
    null_if_absent(
        h,
        &[
            "Binds",
            "CapAdd",
            "CapDrop",
            "DeviceCgroupRules",
            "DeviceRequests",
            "ExtraHosts",
            "GroupAdd",
            "Links",
            "SecurityOpt",
            "VolumesFrom",
            "MemorySwappiness",
            "PidsLimit",
        ],
    );
    // Unset in the request: dockerd keeps nil, berth's records default them.
    if h.get("MemorySwappiness").and_then(Value::as_i64) == Some(-1) {
        h.insert("MemorySwappiness".into(), Value::Null);
    }
    if h.get("PidsLimit").and_then(Value::as_i64) == Some(0) {
        h.insert("PidsLimit".into(), Value::Null);
    }
}

/// One `EndpointSettings` of `NetworkSettings.Networks`.
fn endpoint(ep: &mut Value) {
    let Some(e) = ep.as_object_mut() else {
        return;
    };
    null_if_absent(
        e,
        &["IPAMConfig", "Links", "Aliases", "DriverOpts", "DNSNames"],
    );
    e.remove("GwPriority");
}

fn networks(settings: Option<&mut Map<String, Value>>) {
    if let Some(Value::Object(nets)) = settings.and_then(|s| s.get_mut("Networks")) {
        nets.values_mut().for_each(endpoint);
    }
}

/// Networks whose endpoints carry the container's short ID as an alias below API 1.45.
fn user_defined(network: &str) -> bool {
    !matches!(network, "bridge" | "host" | "none" | "default") && !network.starts_with("container:")
}

/// `GET /containers/{id}/json`.
pub fn container_inspect(value: &mut Value) {
    if let Some(c) = value.get_mut("Config") {
        container_config(c);
    }
    let short_id: Option<String> = value
        .get("Id")
        .and_then(Value::as_str)
        .map(|id| id.chars().take(12).collect());
    if let (Some(short), Some(Value::Object(nets))) =
        (short_id, value.pointer_mut("/NetworkSettings/Networks"))
    {
        // API 1.44 (moby's inspect below 1.45): the short ID joins the aliases on every
        // user-defined network.
        for (_, ep) in nets.iter_mut().filter(|(n, _)| user_defined(n)) {
            if let Some(e) = ep.as_object_mut() {
                let aliases = e
                    .entry("Aliases")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if aliases.is_null() {
                    *aliases = Value::Array(Vec::new());
                }
                if let Value::Array(list) = aliases
                    && !list.iter().any(|a| a.as_str() == Some(short.as_str()))
                {
                    list.push(Value::String(short.clone()));
                }
            }
        }
    }
    if let Some(h) = value.get_mut("HostConfig") {
        host_config(h);
    }
    networks(object(value, "NetworkSettings"));
    if let Some(obj) = value.as_object_mut() {
        null_if_absent(obj, &["ExecIDs"]);
    }
}

/// One entry of `GET /containers/json` (and of `system df`'s `Containers`).
pub fn container_summary(value: &mut Value) {
    networks(object(value, "NetworkSettings"));
    if let Some(obj) = value.as_object_mut() {
        // Go's `omitempty` on the sizes: a container that wrote nothing has no `SizeRw`.
        for key in ["SizeRw", "SizeRootFs"] {
            if obj.get(key).and_then(Value::as_i64) == Some(0) {
                obj.remove(key);
            }
        }
    }
}

/// `GET /images/{name}/json`.
pub fn image_inspect(value: &mut Value) {
    if let Some(c) = value.get_mut("Config") {
        container_config(c);
        if let Some(obj) = c.as_object_mut() {
            null_if_empty(obj, &["Labels"]);
        }
    }
    if let Some(obj) = value.as_object_mut() {
        obj.remove("VirtualSize");
        // Deprecated, still sent at 1.44: the committing container's config, zero for images
        // that were not committed (berth keeps none).
        let mut container = obj
            .remove("ContainerConfig")
            .unwrap_or_else(|| Value::Object(Map::new()));
        container_config(&mut container);
        if let Some(c) = container.as_object_mut() {
            null_if_empty(c, &["Labels"]);
        }
        obj.insert("ContainerConfig".into(), container);
    }
}

/// One entry of `GET /images/json` (and of `system df`'s `Images`).
pub fn image_summary(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        null_if_empty(obj, &["Labels"]);
        obj.remove("VirtualSize");
    }
}

/// `GET /volumes/{name}` and each of `GET /volumes`' (and `system df`'s) `Volumes`.
pub fn volume(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        null_if_empty(obj, &["Labels", "Options"]);
    }
}

/// `GET /networks/{id}`.
pub fn network(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        obj.remove("EnableIPv4");
    }
}

/// Each of `GET /networks`: dockerd lists no endpoints there (`Containers` is `{}`).
pub fn network_summary(value: &mut Value) {
    network(value);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("Containers".into(), Value::Object(Map::new()));
    }
}

/// `GET /system/df`.
pub fn system_df(value: &mut Value) {
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    for (key, shape) in [
        ("Containers", container_summary as fn(&mut Value)),
        ("Images", image_summary),
        ("Volumes", volume),
    ] {
        if let Some(Value::Array(items)) = obj.get_mut(key) {
            items.iter_mut().for_each(shape);
        }
    }
    null_if_empty(obj, &["BuildCache"]);
    obj.remove("BuilderSize");
}

/// The `blkio_stats` lists: dockerd sends all of them (`null` where cgroup v2 has none).
const BLKIO_LISTS: [&str; 8] = [
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
];

/// One `GET /containers/{id}/stats` sample.
pub fn stats(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        obj.remove("os_type");
        obj.entry("storage_stats")
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(blkio) = object(value, "blkio_stats") {
        null_if_absent(blkio, &BLKIO_LISTS);
    }
}

/// Each element of a JSON array through `shape`.
pub fn each(value: &mut Value, shape: fn(&mut Value)) {
    if let Value::Array(items) = value {
        items.iter_mut().for_each(shape);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn inspect_fills_dockers_nulls() {
        let mut v = json!({
            "Config": {"Cmd": ["sh"], "Volumes": {}},
            "HostConfig": {"MemorySwappiness": -1, "PidsLimit": 0, "CapAdd": ["NET_ADMIN"]},
            "NetworkSettings": {"Networks": {"n": {"GwPriority": 0, "NetworkID": "x"}}}
        });
        container_inspect(&mut v);
        assert_eq!(v["Config"]["Entrypoint"], Value::Null);
        assert_eq!(v["Config"]["Volumes"], Value::Null);
        assert_eq!(v["Config"]["User"], "");
        assert_eq!(v["Config"]["Cmd"], json!(["sh"]));
        assert_eq!(v["HostConfig"]["CapAdd"], json!(["NET_ADMIN"]));
        assert_eq!(v["HostConfig"]["CapDrop"], Value::Null);
        assert_eq!(v["HostConfig"]["MemorySwappiness"], Value::Null);
        assert_eq!(v["HostConfig"]["PidsLimit"], Value::Null);
        assert_eq!(v["ExecIDs"], Value::Null);
        let ep = &v["NetworkSettings"]["Networks"]["n"];
        assert_eq!(ep["Aliases"], Value::Null);
        assert!(ep.get("GwPriority").is_none());
    }

    #[test]
    fn set_values_stay() {
        let mut v = json!({"HostConfig": {"MemorySwappiness": 60, "PidsLimit": 100},
                           "Config": {"Volumes": {"/data": {}}, "Labels": {"a": "b"}}});
        container_inspect(&mut v);
        assert_eq!(v["HostConfig"]["MemorySwappiness"], 60);
        assert_eq!(v["HostConfig"]["PidsLimit"], 100);
        assert_eq!(v["Config"]["Volumes"], json!({"/data": {}}));
        assert_eq!(v["Config"]["Labels"], json!({"a": "b"}));
    }

    #[test]
    fn stats_blkio_lists_are_all_sent_and_os_type_is_not() {
        // cgroup v2: only io_service_bytes_recursive known; dockerd sends the rest as null.
        let mut v = json!({"os_type": "linux", "blkio_stats": {"io_service_bytes_recursive": []}});
        stats(&mut v);
        assert!(v.get("os_type").is_none());
        assert_eq!(v["storage_stats"], json!({}));
        for key in BLKIO_LISTS {
            assert!(v["blkio_stats"].get(key).is_some(), "{key}");
        }
        assert_eq!(v["blkio_stats"]["io_service_bytes_recursive"], json!([]));
        assert_eq!(v["blkio_stats"]["sectors_recursive"], Value::Null);
    }

    #[test]
    fn volumes_networks_and_summaries() {
        let mut vol = json!({"Name": "v", "Labels": {}, "Options": {"o": "x"}});
        volume(&mut vol);
        assert_eq!(vol["Labels"], Value::Null);
        assert_eq!(vol["Options"], json!({"o": "x"}));
        let mut net = json!({"Name": "n", "EnableIPv4": true, "Containers": {"a": {}}});
        network_summary(&mut net);
        assert!(net.get("EnableIPv4").is_none());
        assert_eq!(net["Containers"], json!({}));
        let mut ps = json!([{"SizeRw": 0, "SizeRootFs": 5}, {"SizeRw": 3}]);
        each(&mut ps, container_summary);
        assert!(ps[0].get("SizeRw").is_none());
        assert_eq!(ps[0]["SizeRootFs"], 5);
        assert_eq!(ps[1]["SizeRw"], 3);
        let mut df = json!({"BuildCache": [], "BuilderSize": 0, "Images": [{"Labels": {}}]});
        system_df(&mut df);
        assert_eq!(df["BuildCache"], Value::Null);
        assert!(df.get("BuilderSize").is_none());
        assert_eq!(df["Images"][0]["Labels"], Value::Null);
    }

    #[test]
    fn inspect_aliases_carry_the_short_id_on_user_networks() {
        let id = "0123456789abcdef0123";
        let mut v = json!({"Id": id, "NetworkSettings": {"Networks": {
            "bridge": {}, "mine": {"Aliases": ["web"]}, "other": {"Aliases": null}}}});
        container_inspect(&mut v);
        let nets = &v["NetworkSettings"]["Networks"];
        assert_eq!(nets["bridge"]["Aliases"], Value::Null);
        assert_eq!(nets["mine"]["Aliases"], json!(["web", "0123456789ab"]));
        assert_eq!(nets["other"]["Aliases"], json!(["0123456789ab"]));
    }
}
