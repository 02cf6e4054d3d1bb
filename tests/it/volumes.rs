//! Volumes, binds, tmpfs, `--volumes-from`, the `volume` commands and `cp`, through `berth`
//! and the real docker CLI; and the path-safety cases of `cp` and mounts.
use std::path::{Path, PathBuf};

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "volumes_named_anonymous_and_bind",
        volumes_named_anonymous_and_bind,
    ),
    (
        "volumes_mount_flag_tmpfs_and_modes",
        volumes_mount_flag_tmpfs_and_modes,
    ),
    ("volumes_cli_lifecycle", volumes_cli_lifecycle),
    ("volumes_local_driver_options", volumes_local_driver_options),
    (
        "volumes_from_share_writes_at_once",
        volumes_from_share_writes_at_once,
    ),
    (
        "volumes_image_volume_is_prepopulated",
        volumes_image_volume_is_prepopulated,
    ),
    ("volumes_docker_cli", volumes_docker_cli),
    ("volumes_bad_input_one_line", volumes_bad_input_one_line),
    (
        "volumes_in_use_survive_a_daemon_restart",
        volumes_in_use_survive_a_daemon_restart,
    ),
    ("cp_both_ways_berth", cp_both_ways_berth),
    ("cp_docker_cli", cp_docker_cli),
    ("cp_docker_py_archive", cp_docker_py_archive),
    ("cp_bad_input_one_line", cp_bad_input_one_line),
    (
        "cp_security_into_symlinked_path",
        cp_security_into_symlinked_path,
    ),
    (
        "cp_security_out_of_symlinked_path",
        cp_security_out_of_symlinked_path,
    ),
    ("cp_security_hostile_tar", cp_security_hostile_tar),
    (
        "volumes_security_mount_target_symlink",
        volumes_security_mount_target_symlink,
    ),
    (
        "volumes_security_bind_source_swapped",
        volumes_security_bind_source_swapped,
    ),
];

/// A fresh host directory under the test root.
fn host_dir(env: &TestEnv, name: &str) -> PathBuf {
    let d = env.root.join("vol-host").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn volume_names(env: &TestEnv) -> Vec<String> {
    env.berth(&["volume", "ls", "-q"])
        .ok()
        .lines()
        .map(String::from)
        .collect()
}

fn volumes_named_anonymous_and_bind(env: &TestEnv) {
    // Named: created on demand, outlives its containers.
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "volnamed1:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    assert!(volume_names(env).contains(&"volnamed1".to_string()));
    let out = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "volnamed1:/data:ro",
            "busybox",
            "cat",
            "/data/f",
        ])
        .ok();
    assert_eq!(out, "kept");
    // Anonymous: listed, removed by `rm -v`.
    env.berth(&[
        "run", "-d", "--name", "volanon1", "-v", "/anon", "busybox", "sleep", "300",
    ])
    .ok();
    let name = env.inspect("volanon1", "{{range .Mounts}}{{.Name}}{{end}}");
    assert_eq!(name.len(), 64, "{name}");
    assert!(volume_names(env).contains(&name));
    let shown = env.inspect(
        "volanon1",
        "{{range .Mounts}}{{.Type}} {{.Destination}} {{.Driver}} {{.RW}} {{.Source}}{{end}}",
    );
    assert!(
        shown.starts_with("volume /anon local true ") && shown.ends_with("/_data"),
        "{shown}"
    );
    env.berth(&["rm", "-f", "-v", "volanon1"]).ok();
    assert!(!volume_names(env).contains(&name), "rm -v keeps {name}");
    // `run --rm` removes anonymous volumes too, and keeps named ones.
    let before = volume_names(env).len();
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "/tmpanon",
        "-v",
        "volnamed1:/n",
        "busybox",
        "true",
    ])
    .ok();
    assert_eq!(volume_names(env).len(), before);

    // Bind: both ways, read-only refused, several -v at once, :z accepted.
    let host = host_dir(env, "bind1");
    std::fs::write(host.join("from-host"), "h\n").unwrap();
    let bind = format!("{}:/b:z", s(&host));
    let ro = format!("{}:/r:ro", s(&host));
    let out = env
        .berth(&[
            "run", "--rm", "-v", &bind, "-v", &ro, "-v", "volnamed1:/n", "busybox", "sh", "-c",
            "cat /b/from-host; echo c > /b/from-ctr; cat /n/f; touch /r/x 2>/dev/null || echo ro-refused",
        ])
        .ok();
    assert_eq!(out, "h\nkept\nro-refused");
    assert_eq!(
        std::fs::read_to_string(host.join("from-ctr")).unwrap(),
        "c\n"
    );
    // inspect: Mode, RW, Propagation of binds and named volumes.
    env.berth(&[
        "create",
        "--name",
        "volinsp1",
        "-v",
        &ro,
        "-v",
        "volnamed1:/n",
        "busybox",
    ])
    .ok();
    let m = env.inspect(
        "volinsp1",
        "{{range .Mounts}}{{.Type}},{{.Name}},{{.Destination}},{{.Mode}},{{.RW}},{{.Propagation}};{{end}}",
    );
    assert!(m.contains("bind,,/r,ro,false,rprivate;"), "{m}");
    assert!(m.contains("volume,volnamed1,/n,z,true,;"), "{m}");
    env.berth(&["rm", "volinsp1"]).ok();
    env.berth(&["volume", "rm", "volnamed1"]).ok();
}

fn volumes_mount_flag_tmpfs_and_modes(env: &TestEnv) {
    let host = host_dir(env, "mount1");
    std::fs::write(host.join("x"), "x\n").unwrap();
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,source={},target=/b,readonly", s(&host)),
            "--mount",
            "type=volume,source=volmount1,target=/v",
            "--mount",
            "type=tmpfs,target=/t,tmpfs-size=1048576",
            "--tmpfs",
            "/t2:size=2m",
            "busybox",
            "sh",
            "-c",
            "cat /b/x; touch /b/y 2>/dev/null || echo ro; echo v > /v/f; grep -E ' /t | /t2 ' /proc/mounts | cut -d' ' -f1-3",
        ])
        .ok();
    assert_eq!(out, "x\nro\ntmpfs /t tmpfs\ntmpfs /t2 tmpfs", "{out}");
    assert!(volume_names(env).contains(&"volmount1".to_string()));
    env.berth(&["volume", "rm", "volmount1"]).ok();
    // A --mount bind source must exist (unlike -v, which creates it).
    let r = env.berth(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/nonexistent-berth-src,target=/b",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(
        r.stderr
            .contains("bind source path does not exist: /nonexistent-berth-src"),
        "{r:?}"
    );
    let created = env.root.join("vol-host/created-by-v");
    let _ = std::fs::remove_dir_all(&created);
    env.berth(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/c", s(&created)),
        "busybox",
        "true",
    ])
    .ok();
    assert!(created.is_dir());
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn volumes_cli_lifecycle(env: &TestEnv) {
    assert_eq!(
        env.berth(&["volume", "create", "--label", "team=a", "volcli1"])
            .ok(),
        "volcli1"
    );
    assert_eq!(env.berth(&["volume", "create", "volcli2"]).ok(), "volcli2");
    let anon = env.berth(&["volume", "create"]).ok();
    assert_eq!(anon.len(), 64);
    let ls = env.berth(&["volume", "ls"]).ok();
    assert!(ls.starts_with("DRIVER"), "{ls}");
    assert!(ls.contains("local") && ls.contains("volcli1"), "{ls}");
    let by_label = env
        .berth(&["volume", "ls", "-q", "--filter", "label=team=a"])
        .ok();
    assert_eq!(by_label, "volcli1");
    let by_name = env
        .berth(&["volume", "ls", "-q", "--filter", "name=volcli"])
        .ok();
    assert_eq!(by_name, "volcli1\nvolcli2");
    let fmt = env
        .berth(&[
            "volume",
            "ls",
            "--filter",
            "name=volcli1",
            "--format",
            "{{.Name}}:{{.Driver}}:{{.Labels}}",
        ])
        .ok();
    assert_eq!(fmt, "volcli1:local:team=a");
    let inspect = env
        .berth(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels.team}}",
            "volcli1",
        ])
        .ok();
    assert_eq!(inspect, "volcli1 local local a");
    let json = env.berth(&["volume", "inspect", "volcli1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        v[0]["Mountpoint"]
            .as_str()
            .unwrap()
            .ends_with("/volumes/volcli1/_data")
    );
    assert!(v[0]["CreatedAt"].as_str().unwrap().contains('T'));
    // In use: refused, even with -f; dangling filters follow.
    env.berth(&[
        "create",
        "--name",
        "voluser1",
        "-v",
        "volcli1:/d",
        "busybox",
    ])
    .ok();
    let r = env.berth(&["volume", "rm", "volcli1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .trim()
            .starts_with("Error response from daemon: remove volcli1: volume is in use - ["),
        "{r:?}"
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{r:?}");
    assert_eq!(env.berth(&["volume", "rm", "-f", "volcli1"]).code, 1);
    let dangling = env
        .berth(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            "dangling=true",
            "--filter",
            "name=volcli",
        ])
        .ok();
    assert_eq!(dangling, "volcli2");
    let used = env
        .berth(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            "dangling=false",
            "--filter",
            "name=volcli",
        ])
        .ok();
    assert_eq!(used, "volcli1");
    // Prune: anonymous unused ones only; -a all unused.
    let out = env.berth(&["volume", "prune", "-f"]).ok();
    assert!(out.contains(&anon), "{out}");
    assert!(volume_names(env).contains(&"volcli2".to_string()));
    let out = env
        .berth(&["volume", "prune", "-a", "-f", "--filter", "label!=keep"])
        .ok();
    assert!(out.contains("volcli2") && !out.contains("volcli1"), "{out}");
    env.berth(&["rm", "voluser1"]).ok();
    env.berth(&["volume", "rm", "volcli1"]).ok();
    let r = env.berth(&["volume", "inspect", "volcli1"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: get volcli1: no such volume"
    );
    // rm -f of a missing volume is fine.
    env.berth(&["volume", "rm", "-f", "volcli1"]).ok();
    // Creating and removing volumes are events.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let events = env
        .berth(&[
            "events",
            "--since",
            &(now - 120).to_string(),
            "--until",
            &(now + 1).to_string(),
            "--filter",
            "type=volume",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ])
        .ok();
    assert!(events.contains("create volcli1"), "{events}");
    assert!(events.contains("destroy volcli1"), "{events}");
}

fn volumes_local_driver_options(env: &TestEnv) {
    env.berth(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=4m",
        "voltmpfs1",
    ])
    .ok();
    let out = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "voltmpfs1:/t",
            "busybox",
            "sh",
            "-c",
            "grep ' /t ' /proc/mounts | cut -d' ' -f3; echo x > /t/x; cat /t/x",
        ])
        .ok();
    assert_eq!(out, "tmpfs\nx");
    env.berth(&["volume", "rm", "voltmpfs1"]).ok();
    // o=bind of a host directory.
    let host = host_dir(env, "devbind");
    std::fs::write(host.join("h"), "host").unwrap();
    env.berth(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &format!("device={}", s(&host)),
        "-o",
        "o=bind",
        "volbind1",
    ])
    .ok();
    let out = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "volbind1:/d",
            "busybox",
            "sh",
            "-c",
            "cat /d/h; echo c > /d/c",
        ])
        .ok();
    assert_eq!(out, "host");
    assert_eq!(std::fs::read_to_string(host.join("c")).unwrap(), "c\n");
    env.berth(&["volume", "rm", "volbind1"]).ok();
    assert!(
        host.join("h").exists(),
        "removing the volume must not remove the device"
    );
    // --mount with volume options: an anonymous tmpfs volume, gone (and unmounted) with --rm.
    let before = volume_names(env).len();
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,target=/o,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=1m",
            "busybox",
            "sh",
            "-c",
            "grep ' /o ' /proc/mounts | cut -d' ' -f3",
        ])
        .ok();
    assert_eq!(out, "tmpfs");
    assert_eq!(volume_names(env).len(), before);
    let r = env.berth(&["volume", "create", "-d", "nosuchdriver", "volbad"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("plugin \"nosuchdriver\" not found"),
        "{r:?}"
    );
}

fn volumes_from_share_writes_at_once(env: &TestEnv) {
    env.berth(&[
        "create",
        "--name",
        "voldata1",
        "-v",
        "/shared",
        "-v",
        "volfromnamed:/named",
        "busybox",
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "volfromA",
        "--volumes-from",
        "voldata1",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "volfromB",
        "--volumes-from",
        "voldata1:ro",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let users = env
        .berth(&[
            "ps",
            "-a",
            "--filter",
            "volume=volfromnamed",
            "--format",
            "{{.Names}}",
        ])
        .ok();
    let mut users: Vec<&str> = users.lines().collect();
    users.sort();
    assert_eq!(users, ["voldata1", "volfromA", "volfromB"]);
    env.berth(&[
        "exec",
        "volfromA",
        "sh",
        "-c",
        "echo one > /shared/f; echo two > /named/g",
    ])
    .ok();
    let out = env
        .berth(&[
            "exec",
            "volfromB",
            "sh",
            "-c",
            "cat /shared/f /named/g; touch /shared/x 2>/dev/null || echo ro",
        ])
        .ok();
    assert_eq!(out, "one\ntwo\nro");
    let rw = env.inspect("volfromB", "{{range .Mounts}}{{.RW}}{{end}}");
    assert_eq!(rw, "falsefalse");
    // The data container's anonymous volume is its own: removing A and B with -v keeps it.
    env.berth(&["rm", "-f", "-v", "volfromA", "volfromB"]).ok();
    let anon = env.inspect(
        "voldata1",
        "{{range .Mounts}}{{if eq .Destination \"/shared\"}}{{.Name}}{{end}}{{end}}",
    );
    assert!(volume_names(env).contains(&anon));
    env.berth(&["rm", "-v", "voldata1"]).ok();
    assert!(!volume_names(env).contains(&anon));
    env.berth(&["volume", "rm", "volfromnamed"]).ok();
}

fn volumes_image_volume_is_prepopulated(env: &TestEnv) {
    let dir = env.root.join("vol-img");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("data/sub")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/cat")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/stat")).unwrap();
    std::fs::write(dir.join("data/hello"), "from image").unwrap();
    std::fs::write(dir.join("data/sub/deep"), "deep").unwrap();
    std::fs::set_permissions(
        dir.join("data"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    std::os::unix::fs::chown(dir.join("data"), Some(1000), Some(1000)).unwrap();
    let tar = env.root.join("vol-img.tar");
    crate::harness::tar_dir(&dir, &tar);
    env.berth(&["import", "-c", "VOLUME /data", s(&tar), "volimage:v1"])
        .ok();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "volimg1",
        "volimage:v1",
        "sh",
        "-c",
        "echo new > /data/new; sleep 300",
    ])
    .ok();
    let m = env.inspect(
        "volimg1",
        "{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}",
    );
    assert_eq!(m, "volume /data");
    let out = env
        .berth(&[
            "exec",
            "volimg1",
            "sh",
            "-c",
            "cat /data/hello /data/sub/deep",
        ])
        .ok();
    assert_eq!(out, "from imagedeep");
    let owner = env
        .berth(&["exec", "volimg1", "stat", "-c", "%u:%g %a", "/data"])
        .ok();
    assert_eq!(owner, "1000:1000 1777");
    // A named volume at the same path is pre-populated too, once (while empty).
    let out = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "volimgnamed:/data",
            "volimage:v1",
            "cat",
            "/data/hello",
        ])
        .ok();
    assert_eq!(out, "from image");
    env.berth(&["rm", "-f", "-v", "volimg1"]).ok();
    env.berth(&["volume", "rm", "volimgnamed"]).ok();
    env.berth(&["rmi", "volimage:v1"]).ok();
}

fn volumes_docker_cli(env: &TestEnv) {
    let Some(r) = env.docker(&["volume", "create", "--label", "x=y", "voldock1"]) else {
        return;
    };
    assert_eq!(r.ok(), "voldock1");
    let ls = env
        .docker(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .unwrap()
        .ok();
    assert!(ls.lines().any(|l| l == "voldock1 local"), "{ls}");
    let v = env
        .docker(&[
            "volume",
            "inspect",
            "--format",
            "{{.Name}} {{.Labels}}",
            "voldock1",
        ])
        .unwrap()
        .ok();
    assert_eq!(v, "voldock1 map[x:y]");
    let host = host_dir(env, "dockbind");
    std::fs::write(host.join("f"), "bound\n").unwrap();
    let out = env
        .docker(&[
            "run",
            "--rm",
            "-v",
            "voldock1:/v",
            "-v",
            &format!("{}:/b:ro", s(&host)),
            "-v",
            "/anon",
            "--mount",
            "type=tmpfs,target=/t",
            "busybox",
            "sh",
            "-c",
            "echo w > /v/w; cat /b/f; grep -c ' /t tmpfs' /proc/mounts",
        ])
        .unwrap()
        .ok();
    assert_eq!(out, "bound\n1");
    env.docker(&[
        "run",
        "-d",
        "--name",
        "voldockc",
        "-v",
        "voldock1:/v",
        "busybox",
        "sleep",
        "300",
    ])
    .unwrap()
    .ok();
    let mounts = env
        .docker(&["inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.Driver}} {{.Mode}} {{.RW}}{{end}}", "voldockc"])
        .unwrap()
        .ok();
    assert_eq!(mounts, "volume voldock1 /v local z true");
    let r = env.docker(&["volume", "rm", "voldock1"]).unwrap();
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("volume is in use"), "{r:?}");
    env.docker(&[
        "run",
        "-d",
        "--name",
        "voldockd",
        "--volumes-from",
        "voldockc",
        "busybox",
        "sleep",
        "300",
    ])
    .unwrap()
    .ok();
    env.docker(&["exec", "voldockc", "sh", "-c", "echo live > /v/live"])
        .unwrap()
        .ok();
    assert_eq!(
        env.docker(&["exec", "voldockd", "cat", "/v/live"])
            .unwrap()
            .ok(),
        "live"
    );
    env.docker(&["rm", "-f", "-v", "voldockc", "voldockd"])
        .unwrap()
        .ok();
    assert_eq!(
        env.docker(&["volume", "rm", "voldock1"]).unwrap().ok(),
        "voldock1"
    );
    let anon = env.docker(&["volume", "create"]).unwrap().ok();
    let out = env.docker(&["volume", "prune", "-f"]).unwrap().ok();
    assert!(out.contains(&anon), "{out}");
}

fn volumes_bad_input_one_line(env: &TestEnv) {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--rm", "-v", "../etc:/x", "busybox", "true"],
            "includes invalid characters for a local volume name",
        ),
        (
            &["run", "--rm", "-v", "a/b:/x", "busybox", "true"],
            "includes invalid characters for a local volume name",
        ),
        (
            &["run", "--rm", "-v", "volok:relative", "busybox", "true"],
            "invalid volume specification",
        ),
        (
            &["run", "--rm", "-v", "volok:/x:bogus", "busybox", "true"],
            "invalid mode: bogus",
        ),
        (
            &[
                "run",
                "--rm",
                "-v",
                "volok:/x",
                "-v",
                "volok2:/x",
                "busybox",
                "true",
            ],
            "Duplicate mount point: /x",
        ),
        (
            &[
                "run",
                "--rm",
                "--volumes-from",
                "nosuchctr",
                "busybox",
                "true",
            ],
            "No such container: nosuchctr",
        ),
    ];
    let before = volume_names(env);
    let containers = env.berth(&["ps", "-aq"]).ok();
    for (args, want) in cases {
        let r = env.berth(args);
        assert_eq!(r.code, 125, "{args:?}: {r:?}");
        let first = r.stderr.lines().next().unwrap_or("");
        assert!(first.contains(want), "{args:?}: {r:?}");
    }
    for bad in ["../x", "a/b", "x/../../y", ".."] {
        let r = env.berth(&["volume", "create", bad]);
        assert_eq!(r.code, 1, "{bad}: {r:?}");
        assert!(r.stderr.contains("includes invalid characters"), "{r:?}");
        assert_eq!(r.stderr.trim().lines().count(), 1);
    }
    // Nothing partial: no volume, no container, nothing outside the volumes dir.
    assert_eq!(volume_names(env), before);
    assert_eq!(env.berth(&["ps", "-aq"]).ok(), containers);
    assert!(!env.data_root.join("x").exists() && !env.data_root.join("y").exists());
}

/// A host file that must never appear (or change): escapes are checked against it.
fn sentinel(env: &TestEnv, name: &str) -> PathBuf {
    let p = PathBuf::from(format!("/tmp/berth-sentinel-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    let _ = env;
    p
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn cp_both_ways_berth(env: &TestEnv) {
    let host = host_dir(env, "cp1");
    std::fs::write(host.join("file.txt"), "hello cp\n").unwrap();
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/a"), "a\n").unwrap();
    std::fs::write(host.join("tree/sub/b"), "b\n").unwrap();
    std::os::unix::fs::symlink("a", host.join("tree/link")).unwrap();
    let bindsrc = host_dir(env, "cp1-bind");
    env.berth(&[
        "run",
        "-d",
        "--name",
        "volcp1",
        "-v",
        "volcpvol:/vol",
        "-v",
        &format!("{}:/bind", s(&bindsrc)),
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    // In: a file into a dir, a file to a new name, a directory, into a volume and a bind.
    env.berth(&["cp", s(&host.join("file.txt")), "volcp1:/tmp/"])
        .ok();
    env.berth(&["cp", s(&host.join("file.txt")), "volcp1:/tmp/renamed.txt"])
        .ok();
    env.berth(&["cp", s(&host.join("tree")), "volcp1:/vol/"])
        .ok();
    env.berth(&["cp", s(&host.join("tree")), "volcp1:/bind/newtree"])
        .ok();
    let out = env
        .berth(&["exec", "volcp1", "sh", "-c",
            "cat /tmp/file.txt /tmp/renamed.txt /vol/tree/a /vol/tree/sub/b /bind/newtree/sub/b; readlink /vol/tree/link"])
        .ok();
    assert_eq!(out, "hello cp\nhello cp\na\nb\nb\na");
    assert_eq!(
        std::fs::read_to_string(bindsrc.join("newtree/a")).unwrap(),
        "a\n"
    );
    // Out: a file, a directory, a dir's contents, from a volume.
    let outdir = host_dir(env, "cp1-out");
    env.berth(&["cp", "volcp1:/tmp/file.txt", s(&outdir)]).ok();
    env.berth(&["cp", "volcp1:/vol/tree", s(&outdir.join("t2"))])
        .ok();
    env.berth(&["cp", "volcp1:/vol/tree/.", s(&outdir.join("t3"))])
        .ok();
    assert_eq!(
        std::fs::read_to_string(outdir.join("file.txt")).unwrap(),
        "hello cp\n"
    );
    assert_eq!(
        std::fs::read_to_string(outdir.join("t2/sub/b")).unwrap(),
        "b\n"
    );
    assert_eq!(std::fs::read_to_string(outdir.join("t3/a")).unwrap(), "a\n");
    assert_eq!(
        std::fs::read_link(outdir.join("t2/link")).unwrap(),
        PathBuf::from("a")
    );
    // -L follows a symlink source; without it the link itself is copied.
    env.berth(&["exec", "volcp1", "ln", "-s", "/tmp/file.txt", "/tmp/l"])
        .ok();
    env.berth(&["cp", "volcp1:/tmp/l", s(&outdir.join("nolink"))])
        .ok();
    assert!(
        std::fs::symlink_metadata(outdir.join("nolink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    env.berth(&["cp", "-L", "volcp1:/tmp/l", s(&outdir.join("followed"))])
        .ok();
    assert_eq!(
        std::fs::read_to_string(outdir.join("followed")).unwrap(),
        "hello cp\n"
    );
    // `-` is a tar stream both ways.
    let out = std::process::Command::new(crate::harness::berth_exe())
        .args(["cp", "volcp1:/vol/tree", "-"])
        .env("BERTH_HOST", env.host())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut names: Vec<String> = tar::Archive::new(&out.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["tree/", "tree/a", "tree/link", "tree/sub/", "tree/sub/b"]
    );
    env.berth_stdin(&["cp", "-", "volcp1:/tmp"], &out.stdout)
        .ok();
    assert_eq!(
        env.berth(&["exec", "volcp1", "cat", "/tmp/tree/sub/b"])
            .ok(),
        "b"
    );
    // -a keeps ownership from the archive.
    let owned = host.join("owned");
    std::fs::write(&owned, "o").unwrap();
    std::os::unix::fs::chown(&owned, Some(1234), Some(4321)).unwrap();
    env.berth(&["cp", "-a", s(&owned), "volcp1:/tmp/"]).ok();
    assert_eq!(
        env.berth(&["exec", "volcp1", "stat", "-c", "%u:%g", "/tmp/owned"])
            .ok(),
        "1234:4321"
    );
    // A stopped container: in and out, volumes included, and nothing left mounted.
    env.berth(&["stop", "-t", "0", "volcp1"]).ok();
    env.berth(&["cp", s(&host.join("file.txt")), "volcp1:/vol/stopped.txt"])
        .ok();
    env.berth(&["cp", s(&host.join("file.txt")), "volcp1:/etc/stopped.txt"])
        .ok();
    env.berth(&["cp", "volcp1:/vol/stopped.txt", s(&outdir.join("s1"))])
        .ok();
    env.berth(&["cp", "volcp1:/bind/newtree/a", s(&outdir.join("s2"))])
        .ok();
    assert_eq!(
        std::fs::read_to_string(outdir.join("s1")).unwrap(),
        "hello cp\n"
    );
    assert_eq!(std::fs::read_to_string(outdir.join("s2")).unwrap(), "a\n");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("/archive/"),
        "a stopped container's cp leaked a mount"
    );
    env.berth(&["start", "volcp1"]).ok();
    assert_eq!(
        env.berth(&[
            "exec",
            "volcp1",
            "cat",
            "/vol/stopped.txt",
            "/etc/stopped.txt"
        ])
        .ok(),
        "hello cp\nhello cp"
    );
    env.berth(&["rm", "-f", "volcp1"]).ok();
    env.berth(&["volume", "rm", "volcpvol"]).ok();
}

fn cp_docker_cli(env: &TestEnv) {
    let Some(r) = env.docker(&[
        "run",
        "-d",
        "--name",
        "volcpd",
        "-v",
        "volcpdv:/v",
        "busybox",
        "sleep",
        "300",
    ]) else {
        return;
    };
    r.ok();
    let host = host_dir(env, "cpd");
    std::fs::write(host.join("f.txt"), "docker cp\n").unwrap();
    std::fs::create_dir_all(host.join("d/e")).unwrap();
    std::fs::write(host.join("d/e/g"), "g\n").unwrap();
    env.docker(&["cp", s(&host.join("f.txt")), "volcpd:/tmp/"])
        .unwrap()
        .ok();
    env.docker(&["cp", s(&host.join("d")), "volcpd:/v/"])
        .unwrap()
        .ok();
    env.docker(&["cp", "-a", s(&host.join("f.txt")), "volcpd:/v/new.txt"])
        .unwrap()
        .ok();
    assert_eq!(
        env.docker(&[
            "exec",
            "volcpd",
            "cat",
            "/tmp/f.txt",
            "/v/d/e/g",
            "/v/new.txt"
        ])
        .unwrap()
        .ok(),
        "docker cp\ng\ndocker cp"
    );
    let out = host_dir(env, "cpd-out");
    env.docker(&["cp", "volcpd:/v/d", s(&out)]).unwrap().ok();
    env.docker(&["cp", "volcpd:/etc/hostname", s(&out.join("hn"))])
        .unwrap()
        .ok();
    env.docker(&["exec", "volcpd", "ln", "-s", "/v/new.txt", "/tmp/ln"])
        .unwrap()
        .ok();
    env.docker(&["cp", "-L", "volcpd:/tmp/ln", s(&out.join("followed"))])
        .unwrap()
        .ok();
    assert_eq!(std::fs::read_to_string(out.join("d/e/g")).unwrap(), "g\n");
    assert_eq!(
        std::fs::read_to_string(out.join("followed")).unwrap(),
        "docker cp\n"
    );
    let hn = std::fs::read_to_string(out.join("hn")).unwrap();
    assert_eq!(hn.trim().len(), 12, "{hn}");
    // tar streams on stdio.
    let t = env.docker(&["cp", "volcpd:/v/d", "-"]).unwrap();
    assert_eq!(t.code, 0);
    let r = env.docker(&["cp", "volcpd:/nope", s(&out)]).unwrap();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Could not find the file /nope in container volcpd"),
        "{r:?}"
    );
    env.docker(&["stop", "-t", "0", "volcpd"]).unwrap().ok();
    env.docker(&["cp", s(&host.join("f.txt")), "volcpd:/v/stopped.txt"])
        .unwrap()
        .ok();
    env.docker(&["cp", "volcpd:/v/stopped.txt", s(&out.join("st"))])
        .unwrap()
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.join("st")).unwrap(),
        "docker cp\n"
    );
    env.docker(&["rm", "-f", "volcpd"]).unwrap().ok();
    env.docker(&["volume", "rm", "volcpdv"]).unwrap().ok();
}

fn cp_docker_py_archive(env: &TestEnv) {
    let has_py = std::process::Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_py {
        crate::skip("docker-py is not installed (scripts/deps.sh installs it)");
    }
    env.berth(&["run", "-d", "--name", "volcppy", "busybox", "sleep", "300"])
        .ok();
    let script = r#"
import io, sys, tarfile, docker
c = docker.DockerClient(base_url=sys.argv[1], version="1.44")
ctr = c.containers.get("volcppy")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"from python\n"
    info = tarfile.TarInfo("py.txt"); info.size = len(data); info.mode = 0o640
    t.addfile(info, io.BytesIO(data))
assert ctr.put_archive("/tmp", buf.getvalue())
bits, stat = ctr.get_archive("/tmp/py.txt")
raw = b"".join(bits)
with tarfile.open(fileobj=io.BytesIO(raw)) as t:
    got = t.extractfile("py.txt").read()
assert got == b"from python\n", got
assert stat["name"] == "py.txt" and stat["size"] == 12, stat
assert stat["mode"] == 0o640, stat
_, dstat = ctr.get_archive("/tmp")
assert dstat["mode"] & (1 << 31), dstat
try:
    ctr.get_archive("/nope")
    sys.exit("missing path should fail")
except docker.errors.NotFound as e:
    assert "Could not find the file /nope" in str(e), str(e)
print("ok")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &env.host()])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    env.berth(&["rm", "-f", "volcppy"]).ok();
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn cp_bad_input_one_line(env: &TestEnv) {
    let host = host_dir(env, "cpbad");
    std::fs::create_dir_all(host.join("adir")).unwrap();
    std::fs::write(host.join("adir/x"), "x").unwrap();
    std::fs::write(host.join("afile"), "f").unwrap();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "volcpbad",
        "-v",
        "volcpro:/ro:ro",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    env.berth(&["exec", "volcpbad", "touch", "/tmp/file"]).ok();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "cp".into(),
                s(&host.join("missing")).into(),
                "volcpbad:/tmp/".into(),
            ],
            "no such file or directory",
        ),
        (
            vec!["cp".into(), "volcpbad:/missing".into(), s(&host).into()],
            "Could not find the file /missing in container volcpbad",
        ),
        (
            vec![
                "cp".into(),
                s(&host.join("afile")).into(),
                "volcpbad:/no/such/dir/f".into(),
            ],
            "Could not find the file /no/such/dir in container volcpbad",
        ),
        (
            vec![
                "cp".into(),
                s(&host.join("adir")).into(),
                "volcpbad:/tmp/file".into(),
            ],
            "cannot copy directory",
        ),
        (
            vec![
                "cp".into(),
                s(&host.join("afile")).into(),
                "volcpbad:/ro/".into(),
            ],
            "mounted volume is marked read-only",
        ),
        (
            vec![
                "cp".into(),
                s(&host.join("afile")).into(),
                "nosuchctr:/tmp/".into(),
            ],
            "No such container: nosuchctr",
        ),
    ];
    for (args, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = env.berth(&args);
        assert_ne!(r.code, 0, "{args:?}: {r:?}");
        assert_eq!(r.stderr.trim().lines().count(), 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(want), "{args:?}: {r:?}");
    }
    // Nothing partial: the read-only volume is empty, /no does not exist, /tmp/file is a file.
    let out = env
        .berth(&[
            "exec",
            "volcpbad",
            "sh",
            "-c",
            "ls -A /ro | wc -l; test -e /no && echo no-exists; test -f /tmp/file && echo file",
        ])
        .ok();
    assert_eq!(out, "0\nfile");
    // A read-only root: refused before anything is written (403 on the wire, as Docker).
    env.berth(&[
        "run",
        "-d",
        "--name",
        "volcprofs",
        "--read-only",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let r = env.berth(&["cp", s(&host.join("afile")), "volcprofs:/tmp/"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: container rootfs is marked read-only"
    );
    env.berth(&["rm", "-f", "volcprofs"]).ok();
    // `berth inspect` finds volumes too.
    assert_eq!(env.inspect("volcpro", "{{.Driver}}"), "local");
    if let Some(r) = env.docker(&["cp", s(&host.join("afile")), "volcpbad:/ro/"]) {
        assert_eq!(r.code, 1);
        assert!(
            r.stderr.contains("mounted volume is marked read-only"),
            "{r:?}"
        );
    }
    env.berth(&["rm", "-f", "volcpbad"]).ok();
    env.berth(&["volume", "rm", "volcpro"]).ok();
}

fn cp_security_into_symlinked_path(env: &TestEnv) {
    let target = sentinel(env, "into");
    let name = target.file_name().unwrap().to_str().unwrap().to_string();
    let host = host_dir(env, "cpsec1");
    std::fs::write(host.join(&name), "payload\n").unwrap();
    env.berth(&["run", "-d", "--name", "volsec1", "busybox", "sh", "-c",
        "ln -s / /toroot; ln -s ../../../../../.. /up; mkdir -p /deep/a; ln -s ../../../../../../tmp /deep/a/t; sleep 300"])
        .ok();
    assert!(env.eventually(10, || {
        env.berth(&["exec", "volsec1", "test", "-L", "/deep/a/t"])
            .code
            == 0
    }));
    for dest in [
        "volsec1:/toroot/tmp/",
        "volsec1:/up/tmp/",
        "volsec1:/deep/a/t/",
    ] {
        env.berth(&["cp", s(&host.join(&name)), dest]).ok();
        assert!(!target.exists(), "cp to {dest} wrote to the host");
    }
    let inside = env
        .berth(&["exec", "volsec1", "cat", &format!("/tmp/{name}")])
        .ok();
    assert_eq!(inside, "payload");
    // Stopped, too (the root is then mounted by berth).
    env.berth(&["stop", "-t", "0", "volsec1"]).ok();
    env.berth(&["cp", s(&host.join(&name)), "volsec1:/up/tmp/"])
        .ok();
    assert!(!target.exists());
    if let Some(r) = env.docker(&["cp", s(&host.join(&name)), "volsec1:/toroot/tmp/"]) {
        r.ok();
        assert!(!target.exists());
    }
    env.berth(&["rm", "-f", "volsec1"]).ok();
}

fn cp_security_out_of_symlinked_path(env: &TestEnv) {
    let secret = sentinel(env, "secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let name = secret.file_name().unwrap().to_str().unwrap().to_string();
    env.berth(&["run", "-d", "--name", "volsec2", "busybox", "sh", "-c",
        &format!("ln -s ../../../../../../../tmp/{name} /rel; ln -s /tmp/{name} /abs; ln -s ../../../.. /up; ln -s / /toroot; ln -s /tmp /absdir; sleep 300")])
        .ok();
    assert!(env.eventually(
        10,
        || env.berth(&["exec", "volsec2", "test", "-L", "/up"]).code == 0
    ));
    let out = host_dir(env, "cpsec2");
    for (i, src) in [
        "volsec2:/rel",
        "volsec2:/abs",
        &format!("volsec2:/up/tmp/{name}"),
        &format!("volsec2:/toroot/tmp/{name}"),
        &format!("volsec2:/absdir/{name}"),
    ]
    .iter()
    .enumerate()
    {
        let dst = out.join(format!("o{i}"));
        let r = env.berth(&["cp", "-L", src, s(&dst)]);
        let got = std::fs::read_to_string(&dst).unwrap_or_default();
        assert!(
            !got.contains("host secret"),
            "{src} leaked the host file: {r:?}"
        );
        let r = env.berth(&["cp", src, "-"]);
        assert!(
            !r.stdout.contains("host secret"),
            "{src} leaked through a tar stream"
        );
    }
    // The container's own view is what cp sees: planting the file inside makes it readable.
    env.berth(&[
        "exec",
        "volsec2",
        "sh",
        "-c",
        &format!("echo inside > /tmp/{name}"),
    ])
    .ok();
    env.berth(&["cp", "-L", "volsec2:/rel", s(&out.join("in"))])
        .ok();
    assert_eq!(std::fs::read_to_string(out.join("in")).unwrap(), "inside\n");
    env.berth(&["stop", "-t", "0", "volsec2"]).ok();
    let r = env.berth(&["cp", &format!("volsec2:/up/tmp/{name}"), "-"]);
    assert!(!r.stdout.contains("host secret"));
    env.berth(&["rm", "-f", "volsec2"]).ok();
    std::fs::remove_file(&secret).unwrap();
}

fn tar_with(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        // Raw names: the tar crate's own helpers refuse `..`, a hostile client does not.
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        if *kind == tar::EntryType::Symlink {
            h.set_size(0);
            h.as_old_mut().linkname[..data.len()].copy_from_slice(data.as_bytes());
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn cp_security_hostile_tar(env: &TestEnv) {
    let t1 = sentinel(env, "dotdot");
    let t2 = sentinel(env, "vialink");
    let n1 = t1.file_name().unwrap().to_str().unwrap().to_string();
    let n2 = t2.file_name().unwrap().to_str().unwrap().to_string();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "volsec3",
        "-v",
        "volsec3v:/v",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    // `..` entries climbing out: refused, one line, nothing written.
    let dotdot = tar_with(&[(
        &format!("../../../../../../../../tmp/{n1}"),
        tar::EntryType::Regular,
        "x",
    )]);
    let r = env.berth_stdin(&["cp", "-", "volsec3:/v"], &dotdot);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("outside of the destination"), "{r:?}");
    assert!(!t1.exists());
    // An absolute symlink, then a file written through it: lands inside the container.
    let via = tar_with(&[
        ("escape", tar::EntryType::Symlink, "/tmp"),
        (
            &format!("escape/{n2}"),
            tar::EntryType::Regular,
            "through the link\n",
        ),
        ("up", tar::EntryType::Symlink, "../../../../../../../.."),
        (&format!("up/tmp/{n2}.2"), tar::EntryType::Regular, "up\n"),
    ]);
    env.berth_stdin(&["cp", "-", "volsec3:/v"], &via).ok();
    assert!(!t2.exists(), "a tar symlink redirected a write to the host");
    assert!(!PathBuf::from(format!("{}.2", t2.display())).exists());
    let out = env
        .berth(&[
            "exec",
            "volsec3",
            "cat",
            &format!("/tmp/{n2}"),
            &format!("/tmp/{n2}.2"),
        ])
        .ok();
    assert_eq!(out, "through the link\nup");
    // The volume's own host dir holds only what the tar named.
    if let Some(r) = env.docker_stdin(&["cp", "-", "volsec3:/v"], &dotdot) {
        assert_ne!(r.code, 0);
        assert!(!t1.exists());
    }
    env.berth(&["rm", "-f", "volsec3"]).ok();
    env.berth(&["volume", "rm", "volsec3v"]).ok();
}

fn volumes_security_mount_target_symlink(env: &TestEnv) {
    // The container plants `/data -> /tmp/<sentinel dir>` (a host path if followed outside the
    // root); a later start mounts a volume at /data: it must land inside the container.
    let target = sentinel(env, "mnt");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("host-file"), "host\n").unwrap();
    env.berth(&[
        "create",
        "--name",
        "volsec4",
        "-v",
        "volsec4v:/data",
        "busybox",
        "sh",
        "-c",
        "echo written > /data/w; ls /data",
    ])
    .ok();
    // Plant the symlink in the created container's writable layer, as a previous run could.
    let upper = env.inspect("volsec4", "{{.GraphDriver.Data.UpperDir}}");
    std::os::unix::fs::symlink(
        format!("../../../../../../../..{}", target.display()),
        Path::new(&upper).join("data"),
    )
    .unwrap();
    let _ = env.berth(&["start", "-a", "volsec4"]);
    assert!(
        !target.join("w").exists(),
        "a volume was mounted through a symlink onto the host"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&target.display().to_string()));
    assert_eq!(
        std::fs::read_to_string(target.join("host-file")).unwrap(),
        "host\n"
    );
    env.berth(&["rm", "-f", "volsec4"]).ok();
    env.berth(&["volume", "rm", "volsec4v"]).ok();
    std::fs::remove_dir_all(&target).unwrap();
}

fn volumes_security_bind_source_swapped(env: &TestEnv) {
    // The bind source is a symlink a racer keeps swapping between a directory and a file.
    // berth opens the source once and mounts that descriptor, so what it checked (a file or
    // a directory) is what it mounts: every run starts and sees one whole object. Resolving
    // the path twice (check, then mount) would now and then mount a file over a directory
    // target and fail to start.
    let base = host_dir(env, "swap");
    let (a, b) = (base.join("a"), base.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("id"), "A\n").unwrap();
    std::fs::write(&b, "B\n").unwrap();
    let link = base.join("link");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, link, a, b, base) = (
            stop.clone(),
            link.clone(),
            a.clone(),
            b.clone(),
            base.clone(),
        );
        std::thread::spawn(move || {
            let mut flip = false;
            let tmp = base.join("link.tmp");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(if flip { &a } else { &b }, &tmp).unwrap();
                std::fs::rename(&tmp, &link).unwrap();
                flip = !flip;
            }
        })
    };
    let spec = format!("{}:/m", s(&link));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..12 {
        let r = env.berth(&[
            "run",
            "--rm",
            "-v",
            &spec,
            "busybox",
            "sh",
            "-c",
            "if [ -d /m ]; then cat /m/id; else cat /m; fi",
        ]);
        seen.insert(r.stdout.trim().to_string());
        assert!(r.code == 0 && matches!(r.stdout.trim(), "A" | "B"), "{r:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    racer.join().unwrap();
    assert!(!seen.is_empty());
    // Nothing else was touched: the two objects are as they were.
    assert_eq!(std::fs::read_to_string(a.join("id")).unwrap(), "A\n");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "B\n");
}

fn volumes_in_use_survive_a_daemon_restart(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "volrestart",
        "-v",
        "volrestartv:/d",
        "busybox",
        "sh",
        "-c",
        "echo before > /d/f; sleep 300",
    ])
    .ok();
    env.stop_daemon(libc::SIGKILL);
    env.start_daemon();
    // The reference is rebuilt from the container record: still in use, still the same data.
    let r = env.berth(&["volume", "rm", "volrestartv"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("volume is in use"), "{r:?}");
    assert!(env.eventually(10, || {
        env.berth(&["exec", "volrestart", "cat", "/d/f"])
            .stdout
            .trim()
            == "before"
    }));
    let dangling = env
        .berth(&["volume", "ls", "-q", "--filter", "dangling=true"])
        .ok();
    assert!(!dangling.contains("volrestartv"));
    env.berth(&["rm", "-f", "volrestart"]).ok();
    env.berth(&["volume", "rm", "volrestartv"]).ok();
}
