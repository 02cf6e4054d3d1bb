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
    std::fs::write(dir.join("data/hello"), "from image").unwrap();
    std::fs::write(dir.join("data/sub/deep"), "deep").unwrap();
    let tar = env.root.join("vol-img.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
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
