//! The API's shape (issue 14, item 9): berth's JSON bodies against dockerd's key sets, taken
//! once from a private dockerd 20.10 and moved to API 1.44 (`tests/compat/shapes.py`, which
//! also says how to take them again). A key dockerd sends as `null` must come as `null`, not
//! missing and not `{}`/`[]`, and the other way round; no key dockerd does not send.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "shape_bodies_match_dockerd_golden",
        shape_bodies_match_dockerd_golden,
    ),
    (
        "shape_events_match_dockerd_and_implicit_volume_create",
        shape_events_match_dockerd_and_implicit_volume_create,
    ),
    (
        "shape_stats_stream_and_networks",
        shape_stats_stream_and_networks,
    ),
];

/// One golden file: dockerd's paths and kinds, the map paths whose keys are data, and the
/// paths not compared (what the host or the driver decides, each said in shapes.py).
struct Golden {
    paths: BTreeMap<String, BTreeSet<String>>,
    dynamic: Vec<String>,
    ignore: Vec<String>,
}

fn golden(name: &str) -> Golden {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/compat/golden/{name}.json"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let paths = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, kinds)| (p.clone(), strings(kinds).into_iter().collect()))
        .collect();
    Golden {
        paths,
        dynamic: strings(&doc["dynamic"]),
        ignore: strings(&doc["ignore"]),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "num",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "obj",
    }
}

/// shapes.py's `walk`: every path of `v` with the kinds found there.
fn walk(v: &Value, path: &str, dynamic: &[String], out: &mut BTreeMap<String, BTreeSet<String>>) {
    out.entry(path.to_owned())
        .or_default()
        .insert(kind(v).to_owned());
    // Whether a map or list had entries: where dockerd's sample had none (`null`), a filled
    // one is data (labels, build cache records of other tests), an empty one a shape error.
    let mark = match v {
        Value::Object(m) => Some(if m.is_empty() { EMPTY } else { FILLED }),
        Value::Array(a) => Some(if a.is_empty() { EMPTY } else { FILLED }),
        _ => None,
    };
    if let Some(mark) = mark {
        out.entry(path.to_owned())
            .or_default()
            .insert(mark.to_owned());
    }
    match v {
        Value::Object(map) => {
            let bare = path.trim_start_matches("[]");
            let is_dyn = dynamic
                .iter()
                .any(|d| bare == d || bare.ends_with(d.as_str()));
            for (k, x) in map {
                let key = if is_dyn { "*" } else { k.as_str() };
                walk(x, &format!("{path}.{key}"), dynamic, out);
            }
        }
        Value::Array(items) => {
            for x in items {
                walk(x, &format!("{path}[]"), dynamic, out);
            }
        }
        _ => {}
    }
}

/// The marks `walk` adds to a path whose map or list had entries, or had none.
const FILLED: &str = "filled";
const EMPTY: &str = "empty";

/// Whether `path` lies inside a map or list of which dockerd's sample had no entries (it was
/// `null`, `{}` or `[]` there): those entries are data dockerd's sample did not have, so their
/// shape cannot be compared.
fn inside_unsampled(path: &str, golden: &BTreeMap<String, BTreeSet<String>>) -> bool {
    path.char_indices()
        .filter(|&(i, c)| i > 0 && (c == '.' || c == '['))
        .any(|(i, _)| {
            let parent = &path[..i];
            golden.contains_key(parent)
                && !golden.keys().any(|p| {
                    p.len() > i && p.starts_with(parent) && matches!(p.as_bytes()[i], b'.' | b'[')
                })
        })
}

fn under(path: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| {
        path == p || path.starts_with(&format!("{p}.")) || path.starts_with(&format!("{p}["))
    })
}

/// The differences between `body` and golden file `name`, one line each.
fn differences(name: &str, body: &str) -> Vec<String> {
    let g = golden(name);
    let mut have = BTreeMap::new();
    let docs: Vec<Value> = match serde_json::from_str(body) {
        Ok(v) => vec![v],
        Err(_) => body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}")))
            .collect(),
    };
    for d in &docs {
        walk(d, "", &g.dynamic, &mut have);
    }
    let mut out = Vec::new();
    for (path, kinds) in &have {
        if under(path, &g.ignore) || inside_unsampled(path, &g.paths) {
            continue;
        }
        let (filled, empty) = (kinds.contains(FILLED), kinds.contains(EMPTY));
        let mut kinds = kinds.clone();
        kinds.remove(FILLED);
        kinds.remove(EMPTY);
        if let Some(want) = g.paths.get(path)
            && filled
            && !empty
            && want.iter().all(|k| k == "null")
        {
            // dockerd's sample had none here; berth's has entries: data, not shape. An empty
            // map or list where dockerd sends `null` still differs (it is not `filled`).
            kinds.retain(|k| k != "obj" && k != "list");
        }
        match g.paths.get(path) {
            None => out.push(format!(
                "{name}: {path} {kinds:?}: dockerd sends no such key"
            )),
            Some(want) if !kinds.is_subset(want) => out.push(format!(
                "{name}: {path} is {kinds:?}, dockerd's is {want:?}"
            )),
            Some(_) => {}
        }
    }
    for (path, want) in &g.paths {
        // Inside a list or a data-keyed map, presence depends on the data.
        if path.contains("[]") || path.contains(".*") || have.contains_key(path) {
            continue;
        }
        out.push(format!(
            "{name}: {path} {want:?} missing (dockerd sends it)"
        ));
    }
    out
}

/// shapes.py's `collect` scenario, through the docker CLI, against the test daemon.
fn scenario(env: &TestEnv) {
    docker!(
        env,
        "network",
        "create",
        "--subnet",
        "10.231.7.0/24",
        "shnet"
    )
    .ok();
    docker!(env, "volume", "create", "shvol").ok();
    docker!(
        env,
        "create",
        "--name",
        "sh_created",
        "busybox",
        "sleep",
        "100"
    )
    .ok();
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "sh_run",
        "--network",
        "shnet",
        "-v",
        "shvol:/data",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sleep",
        "1000"
    )
    .ok();
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "sh_none",
        "--network",
        "none",
        "-v",
        "shimpl:/data",
        "--mount",
        "source=shmnt,target=/m",
        "busybox",
        "sleep",
        "1000"
    )
    .ok();
    docker!(
        env,
        "run",
        "--name",
        "sh_exited",
        "--network",
        "none",
        "busybox",
        "true"
    )
    .ok();
}

fn cleanup(env: &TestEnv) {
    env.berth(&["rm", "-f", "sh_created", "sh_run", "sh_none", "sh_exited"]);
    env.berth(&["network", "rm", "shnet"]);
    env.berth(&["volume", "rm", "-f", "shvol", "shimpl", "shmnt"]);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn get(env: &TestEnv, path: &str) -> String {
    let (code, body) = env.api("GET", &format!("/v1.44{path}"), None);
    assert_eq!(code, 200, "{path}: {body}");
    body
}

fn shape_bodies_match_dockerd_golden(env: &TestEnv) {
    scenario(env);
    let bodies = [
        ("container_created", "/containers/sh_created/json"),
        ("container_running", "/containers/sh_run/json"),
        ("container_exited", "/containers/sh_exited/json"),
        ("image", "/images/busybox/json"),
        ("images", "/images/json"),
        ("network", "/networks/shnet"),
        ("volume", "/volumes/shvol"),
        ("volumes", "/volumes"),
        ("ps", "/containers/json?all=1"),
        ("df", "/system/df"),
        ("info", "/info"),
        ("version", "/version"),
        ("stats", "/containers/sh_run/stats?stream=false"),
        ("stats_none", "/containers/sh_none/stats?stream=false"),
    ];
    let mut diffs = Vec::new();
    for (name, path) in bodies {
        diffs.extend(differences(name, &get(env, path)));
    }
    cleanup(env);
    assert!(
        diffs.is_empty(),
        "berth's bodies differ from dockerd's:\n{}",
        diffs.join("\n")
    );
}

/// The events of the scenario: each (type, action) dockerd sent comes with dockerd's attribute
/// keys, including a `volume create` for the volumes `-v name:/path` and `--mount` made, and a
/// network `connect`/`disconnect` for `none`.
fn shape_events_match_dockerd_and_implicit_volume_create(env: &TestEnv) {
    let since = unix_now() - 1;
    scenario(env);
    docker!(env, "kill", "sh_none").ok();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let until = unix_now() + 1;
    let body = get(env, &format!("/events?since={since}&until={until}"));
    cleanup(env);
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/golden/events.json");
    let want: BTreeMap<String, BTreeSet<String>> =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen = Vec::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line).unwrap();
        let action = e["Action"].as_str().unwrap_or("");
        let key = format!(
            "{} {}",
            e["Type"].as_str().unwrap_or(""),
            action.split(':').next().unwrap_or("")
        );
        let attrs = e["Actor"]["Attributes"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        seen.push(format!(
            "{key} {}",
            attrs.get("name").and_then(Value::as_str).unwrap_or("")
        ));
        got.entry(key).or_default().extend(attrs.keys().cloned());
    }
    for (key, attrs) in &want {
        // `attach` comes from the docker CLI's `run` without -d (present on both), the rest
        // from the daemon.
        let have = got
            .get(key)
            .unwrap_or_else(|| panic!("no {key} event; saw {seen:#?}"));
        assert_eq!(have, attrs, "{key}: attribute keys");
    }
    for implicit in ["volume create shimpl", "volume create shmnt"] {
        let made = body.lines().any(|l| {
            let e: Value = serde_json::from_str(l).unwrap_or_default();
            format!(
                "{} {} {}",
                e["Type"].as_str().unwrap_or(""),
                e["Action"].as_str().unwrap_or(""),
                e["Actor"]["ID"].as_str().unwrap_or("")
            ) == implicit
        });
        assert!(made, "no `{implicit}` event; saw {seen:#?}");
    }
    for none in ["network connect none", "network disconnect none"] {
        assert!(seen.iter().any(|s| s == none), "no `{none}`; saw {seen:#?}");
    }
    // dockerd's order at an exit: `die`, then the network's `disconnect` (sh_none's is the
    // last `none` one; sh_exited's came before).
    let die = seen.iter().position(|s| s == "container die sh_none");
    let disconnect = seen.iter().rposition(|s| s == "network disconnect none");
    assert!(die < disconnect, "die after disconnect: {seen:#?}");
}

/// `stats` streamed: every sample in the golden shape, `networks` per interface of the
/// container's namespace (eth0, counting the traffic it sent), none for `--network none`.
fn shape_stats_stream_and_networks(env: &TestEnv) {
    docker!(
        env,
        "network",
        "create",
        "--subnet",
        "10.231.8.0/24",
        "shstats"
    )
    .ok();
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "sh_stats",
        "--network",
        "shstats",
        "busybox",
        "sleep",
        "1000"
    )
    .ok();
    // Some traffic of its own to count: a ping to its gateway.
    env.berth(&[
        "exec",
        "sh_stats",
        "ping",
        "-c",
        "3",
        "-W",
        "1",
        "10.231.8.1",
    ]);
    let out = std::process::Command::new("timeout")
        .args(["3", "curl", "-s", "-N", "--unix-socket"])
        .arg(&env.socket)
        .arg("http://localhost/v1.44/containers/sh_stats/stats")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    env.berth(&["rm", "-f", "sh_stats"]);
    env.berth(&["network", "rm", "shstats"]);
    let samples: Vec<Value> = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        samples.len() >= 2,
        "stream gave {} samples: {body}",
        samples.len()
    );
    let diffs = differences("stats", &body);
    assert!(
        diffs.is_empty(),
        "streamed stats differ:\n{}",
        diffs.join("\n")
    );
    let last = samples.last().unwrap();
    let eth0 = &last["networks"]["eth0"];
    assert!(
        eth0["tx_packets"].as_u64().is_some_and(|n| n >= 3),
        "eth0 counts the pings it sent: {eth0}"
    );
    assert!(
        last["networks"].get("lo").is_none(),
        "no loopback: {}",
        last["networks"]
    );
    assert!(last["precpu_stats"]["cpu_usage"]["total_usage"].is_u64());
    assert!(
        last["pids_stats"]["current"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    );
}
