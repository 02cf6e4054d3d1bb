//! Docker's behaviour where clients look (issue 14): healthchecks, kill/stop/wait/restart
//! semantics, supplementary groups, legacy links, published ports, the endpoints berth does
//! not serve. Through `berth`, the API, and the real docker CLI.
use std::path::Path;
use std::process::Command;

use crate::Test;
use crate::harness::{TestEnv, tar_dir};

pub const TESTS: &[Test] = &[
    (
        "compat_health_probes_status_ps_filter_events",
        compat_health_probes_status_ps_filter_events,
    ),
    (
        "compat_health_from_image_and_no_healthcheck",
        compat_health_from_image_and_no_healthcheck,
    ),
    (
        "compat_health_bad_values_create_nothing",
        compat_health_bad_values_create_nothing,
    ),
    (
        "compat_kill_returns_once_stopped",
        compat_kill_returns_once_stopped,
    ),
    (
        "compat_user_kill_and_stop_end_restarts",
        compat_user_kill_and_stop_end_restarts,
    ),
    (
        "compat_wait_conditions_and_restart_always",
        compat_wait_conditions_and_restart_always,
    ),
    ("compat_run_rm_failed_start", compat_run_rm_failed_start),
    (
        "compat_supplementary_groups_and_group_add",
        compat_supplementary_groups_and_group_add,
    ),
    (
        "compat_swarm_plugins_and_unknown_routes",
        compat_swarm_plugins_and_unknown_routes,
    ),
    (
        "compat_publish_time_wait_port_and_first_address",
        compat_publish_time_wait_port_and_first_address,
    ),
    ("compat_legacy_links", compat_legacy_links),
    ("compat_volume_mount_events", compat_volume_mount_events),
    (
        "compat_network_connect_events",
        compat_network_connect_events,
    ),
];

/// The number of containers, stopped ones included.
fn container_count(env: &TestEnv) -> usize {
    env.berth(&["ps", "-aq"]).ok().lines().count()
}

/// Now, as `events --since/--until` take it.
fn unix_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Seconds into the day of an RFC 3339 UTC time (`…T10:00:01.5Z` → 36001.5).
fn day_secs(t: &str) -> Option<f64> {
    let clock = t.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn compat_health_probes_status_ps_filter_events(env: &TestEnv) {
    let since = unix_now();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "hc1",
        "--health-cmd",
        "test -f /tmp/ok && echo fine",
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "120",
    ])
    .ok();
    let status = || env.inspect("hc1", "{{.State.Health.Status}}");
    assert!(
        env.eventually(10, || status() == "unhealthy"),
        "never unhealthy: {}",
        env.inspect("hc1", "{{json .State.Health}}")
    );
    let streak: i64 = env
        .inspect("hc1", "{{.State.Health.FailingStreak}}")
        .parse()
        .unwrap();
    assert!(streak >= 2, "{streak}");
    assert!(env.berth(&["ps"]).ok().contains("(unhealthy)"));
    env.berth(&["exec", "hc1", "touch", "/tmp/ok"]).ok();
    assert!(env.eventually(10, || status() == "healthy"));
    let ps = env.berth(&["ps", "--filter", "name=hc1"]).ok();
    assert!(ps.contains("(healthy)"), "{ps}");
    assert_eq!(
        env.berth(&["ps", "-q", "--filter", "health=healthy"]).ok(),
        env.inspect("hc1", "{{.Id}}")[..12]
    );
    assert_eq!(
        env.berth(&[
            "ps",
            "-q",
            "--filter",
            "health=unhealthy",
            "--filter",
            "name=hc1"
        ])
        .ok(),
        ""
    );
    let bad = env.berth(&["ps", "--filter", "health=great"]);
    assert!(
        bad.stderr
            .contains("Unrecognised filter value for health: great"),
        "{bad:?}"
    );
    // The log: at most 5 entries, each with its times, exit code and output.
    let log: serde_json::Value =
        serde_json::from_str(&env.inspect("hc1", "{{json .State.Health.Log}}")).unwrap();
    let log = log.as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{log:?}");
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 0, "{last}");
    assert_eq!(last["Output"], "fine\n", "{last}");
    // What a probe costs: one exec, start to end.
    let costs: Vec<f64> = log
        .iter()
        .filter_map(|e| {
            Some((day_secs(e["End"].as_str()?)? - day_secs(e["Start"].as_str()?)?) * 1000.0)
        })
        .collect();
    println!("  healthcheck probe cost (ms, start to end): {costs:?}");
    let until = unix_now();
    let events = env
        .berth(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "container=hc1",
            "--format",
            "{{.Action}}",
        ])
        .ok();
    assert!(events.contains("health_status: unhealthy"), "{events}");
    assert!(events.contains("health_status: healthy"), "{events}");
    // Stopped, the probe loop ends and the health reads unhealthy, as dockerd reports it.
    env.berth(&["stop", "-t", "1", "hc1"]).ok();
    assert_eq!(status(), "unhealthy");
    let probes = env.inspect("hc1", "{{len .State.Health.Log}}");
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(env.inspect("hc1", "{{len .State.Health.Log}}"), probes);
    // A restart starts over: starting, then healthy again (the file is in the container).
    env.berth(&["start", "hc1"]).ok();
    assert!(env.eventually(10, || status() == "healthy"));
    env.berth(&["rm", "-f", "hc1"]).ok();
}

/// Loads a busybox image whose config carries `healthcheck`, tagged `name`.
fn image_with_healthcheck(env: &TestEnv, name: &str, healthcheck: serde_json::Value) {
    let dir = env
        .root
        .join(format!("hcimg-{}", name.replace([':', '/'], "-")));
    let _ = std::fs::remove_dir_all(&dir);
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::create_dir_all(tree.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", tree.join("bin/busybox")).unwrap();
    for applet in ["sh", "test", "sleep", "touch", "true", "false"] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(applet)).unwrap();
    }
    let archive = dir.join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    tar_dir(&tree, &archive.join("layer.tar"));
    let sha = |p: &Path| {
        let out = Command::new("sha256sum").arg(p).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let diff_id = sha(&archive.join("layer.tar"));
    let config = serde_json::json!({
        "architecture": match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        },
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["sleep", "120"], "Env": ["PATH=/bin"], "Healthcheck": healthcheck},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    });
    let config_path = archive.join("config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let config_hex = sha(&config_path);
    std::fs::rename(&config_path, archive.join(format!("{config_hex}.json"))).unwrap();
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [name],
        "Layers": ["layer.tar"],
    }]);
    std::fs::write(
        archive.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let tar = dir.join("image.tar");
    tar_dir(&archive, &tar);
    env.berth(&["load", "-i", tar.to_str().unwrap()]).ok();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn compat_health_from_image_and_no_healthcheck(env: &TestEnv) {
    image_with_healthcheck(
        env,
        "hcimage:1",
        serde_json::json!({"Test": ["CMD-SHELL", "test -f /tmp/up"], "Interval": 100_000_000, "Retries": 1}),
    );
    // From the image, through the docker CLI.
    docker!(env, "run", "-d", "--name", "hc2", "hcimage:1").ok();
    assert!(
        env.eventually(10, || env.inspect("hc2", "{{.State.Health.Status}}")
            == "unhealthy")
    );
    docker!(env, "exec", "hc2", "touch", "/tmp/up").ok();
    assert!(env.eventually(10, || {
        docker!(env, "ps", "--filter", "name=hc2", "--format", "{{.Status}}")
            .ok()
            .ends_with("(healthy)")
    }));
    assert_eq!(
        docker!(
            env,
            "inspect",
            "-f",
            "{{.State.Health.Status}} {{.Config.Healthcheck.Test}}",
            "hc2"
        )
        .ok(),
        "healthy [CMD-SHELL test -f /tmp/up]"
    );
    assert_eq!(
        docker!(env, "ps", "-q", "--filter", "health=healthy").ok(),
        env.inspect("hc2", "{{.Id}}")[..12]
    );
    // The container's own command replaces the image's, the image's interval stays.
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "hc3",
        "--health-cmd",
        "true",
        "--health-start-period",
        "1m",
        "--health-start-interval",
        "50ms",
        "hcimage:1"
    )
    .ok();
    assert_eq!(
        docker!(
            env,
            "inspect",
            "-f",
            "{{.Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}} {{.Config.Healthcheck.StartInterval}}",
            "hc3"
        )
        .ok(),
        "[CMD-SHELL true] 100ms 50ms"
    );
    assert!(
        env.eventually(10, || env.inspect("hc3", "{{.State.Health.Status}}")
            == "healthy")
    );
    // --no-healthcheck: no probes, no State.Health, no suffix, health=none.
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "hc4",
        "--no-healthcheck",
        "hcimage:1"
    )
    .ok();
    assert_eq!(
        docker!(
            env,
            "inspect",
            "-f",
            "{{.Config.Healthcheck.Test}} {{.State.Health}}",
            "hc4"
        )
        .ok(),
        "[NONE] <nil>"
    );
    let ps = docker!(env, "ps", "--filter", "name=hc4", "--format", "{{.Status}}").ok();
    assert!(ps.starts_with("Up ") && !ps.contains('('), "{ps}");
    assert_eq!(
        docker!(
            env,
            "ps",
            "-q",
            "--filter",
            "health=none",
            "--filter",
            "name=hc4"
        )
        .ok(),
        env.inspect("hc4", "{{.Id}}")[..12]
    );
    env.berth(&["rm", "-f", "hc2", "hc3", "hc4"]).ok();
    env.berth(&["rmi", "hcimage:1"]).ok();
}

fn compat_health_bad_values_create_nothing(env: &TestEnv) {
    let before = container_count(env);
    for (flags, message) in [
        (
            &["--health-interval", "500us"][..],
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            &["--health-timeout", "10ns"][..],
            "Timeout in Healthcheck cannot be less than 1ms",
        ),
        (
            &["--health-start-period", "1us"][..],
            "StartPeriod in Healthcheck cannot be less than 1ms",
        ),
        (
            &["--health-start-interval", "2ns"][..],
            "StartInterval in Healthcheck cannot be less than 1ms",
        ),
    ] {
        let mut args = vec!["run", "-d", "--health-cmd", "true"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let r = env.docker(&args).unwrap();
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains(message), "{flags:?}: {r:?}");
        let r = env.berth(&args);
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains(message), "{flags:?}: {r:?}");
    }
    for (flag, message) in [
        (
            "--health-interval=-1s",
            "--health-interval cannot be negative",
        ),
        ("--health-retries=-1", "--health-retries cannot be negative"),
    ] {
        let r = env.berth(&["run", "-d", flag, "busybox", "true"]);
        assert_eq!(r.code, 125, "{r:?}");
        assert!(r.stderr.contains(message), "{r:?}");
    }
    let r = env.berth(&[
        "run",
        "-d",
        "--no-healthcheck",
        "--health-cmd",
        "true",
        "busybox",
    ]);
    assert!(
        r.stderr
            .contains("--no-healthcheck conflicts with --health-* options"),
        "{r:?}"
    );
    // The API refuses what a client sends past its CLI's checks.
    let (code, body) = env.api(
        "POST",
        "/v1.44/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"Healthcheck":{"Test":["CMD","true"],"Retries":-1}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body.trim(),
        r#"{"message":"Retries in Healthcheck cannot be negative"}"#
    );
    assert_eq!(
        container_count(env),
        before,
        "a refused create made a container"
    );
}

fn compat_kill_returns_once_stopped(env: &TestEnv) {
    // A loop of kill → inspect → rm must never see the container running (dockerd's kill
    // with SIGKILL waits for the exit).
    for i in 0..5 {
        let name = format!("kl{i}");
        env.berth(&["run", "-d", "--name", &name, "busybox", "sleep", "60"])
            .ok();
        let (code, body) = env.api(
            "POST",
            &format!("/v1.44/containers/{name}/kill?signal=SIGKILL"),
            None,
        );
        assert_eq!(code, 204, "{body}");
        assert_eq!(
            env.inspect(&name, "{{.State.Running}} {{.State.ExitCode}}"),
            "false 137"
        );
        env.berth(&["rm", &name]).ok();
    }
    // docker kill (no signal: SIGKILL) too.
    docker!(env, "run", "-d", "--name", "kl5", "busybox", "sleep", "60").ok();
    docker!(env, "kill", "kl5").ok();
    docker!(env, "rm", "kl5").ok();
}

fn compat_user_kill_and_stop_end_restarts(env: &TestEnv) {
    let settle = || std::thread::sleep(std::time::Duration::from_millis(700));
    // on-failure and always, killed or stopped by the user: not restarted.
    for (policy, verb) in [
        ("on-failure", "kill"),
        ("always", "kill"),
        ("on-failure", "stop"),
        ("always", "stop"),
        ("unless-stopped", "kill"),
    ] {
        let name = format!("rp-{policy}-{verb}");
        docker!(
            env,
            "run",
            "-d",
            "--name",
            &name,
            "--restart",
            policy,
            "busybox",
            "sleep",
            "60"
        )
        .ok();
        let r = if verb == "stop" {
            docker!(env, "stop", "-t", "1", &name)
        } else {
            docker!(env, "kill", &name)
        };
        r.ok();
        settle();
        assert_eq!(
            env.inspect(&name, "{{.State.Status}} {{.RestartCount}}"),
            "exited 0",
            "{policy} after {verb}"
        );
        // A start by the user restores the policy.
        docker!(env, "start", &name).ok();
        assert_eq!(env.inspect(&name, "{{.State.Status}}"), "running");
        docker!(env, "rm", "-f", &name).ok();
    }
    // A signal that is not the stop signal: the run's restarts stay, as in dockerd.
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "rp-hup",
        "--restart",
        "on-failure",
        "--stop-signal",
        "SIGUSR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' HUP; while true; do sleep 0.1; done"
    )
    .ok();
    docker!(env, "kill", "-s", "HUP", "rp-hup").ok();
    assert!(
        env.eventually(10, || env.inspect("rp-hup", "{{.RestartCount}}") == "1"),
        "not restarted after its own exit 3"
    );
    docker!(env, "rm", "-f", "rp-hup").ok();
    // Its own failure still restarts an on-failure container.
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "rp-self",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 3"
    )
    .ok();
    assert!(env.eventually(
        10,
        || env.inspect("rp-self", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
    ));
    docker!(env, "rm", "-f", "rp-self").ok();
}

/// `StatusCode` of a wait's answer.
fn status_code(body: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    v["StatusCode"].as_i64().unwrap_or(-1)
}

fn compat_wait_conditions_and_restart_always(env: &TestEnv) {
    // restart=always: wait returns the exit of the current run.
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "wa",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 3"
    )
    .ok();
    let t = std::time::Instant::now();
    assert_eq!(docker!(env, "wait", "wa").ok(), "3");
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    docker!(env, "rm", "-f", "wa").ok();
    // not-running on a created container answers at once; next-exit waits for the run
    // after it; removed waits for the rm.
    docker!(
        env, "create", "--name", "wc", "busybox", "sh", "-c", "exit 5"
    )
    .ok();
    let (code, body) = env.api(
        "POST",
        "/v1.44/containers/wc/wait?condition=not-running",
        None,
    );
    assert_eq!((code, status_code(&body)), (200, 0), "{body}");
    std::thread::scope(|s| {
        let next = s.spawn(|| {
            env.api(
                "POST",
                "/v1.44/containers/wc/wait?condition=next-exit",
                None,
            )
        });
        let removed =
            s.spawn(|| env.api("POST", "/v1.44/containers/wc/wait?condition=removed", None));
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!next.is_finished() && !removed.is_finished());
        docker!(env, "start", "wc").ok();
        let (code, body) = next.join().unwrap();
        assert_eq!((code, status_code(&body)), (200, 5), "{body}");
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!removed.is_finished(), "removed answered before the rm");
        docker!(env, "rm", "wc").ok();
        let (code, body) = removed.join().unwrap();
        assert_eq!((code, status_code(&body)), (200, 5), "{body}");
    });
    let (code, body) = env.api("POST", "/v1.44/containers/wc/wait?condition=bogus", None);
    assert_eq!(code, 400, "{body}");
}

fn compat_run_rm_failed_start(env: &TestEnv) {
    let before = container_count(env);
    let r = docker!(env, "run", "--rm", "busybox", "/no/such/binary");
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.contains("no such file or directory"), "{r:?}");
    assert!(env.eventually(5, || container_count(env) == before));
    let r = env.berth(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(env.eventually(5, || container_count(env) == before));
}

/// The numbers of `id -G`, sorted.
fn gids(out: &str) -> Vec<u32> {
    let mut v: Vec<u32> = out
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn compat_supplementary_groups_and_group_add(env: &TestEnv) {
    env.image_from_tree("groups:1", |dir| {
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(
            dir.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/group"),
            "root:x:0:root\nwheel:x:10:root,app\nstaff:x:50:app\naudio:x:63:\napp:x:1000:\n",
        )
        .unwrap();
    });
    // The image's /etc/group: the groups that list the user.
    let out = docker!(env, "run", "--rm", "--user", "app", "groups:1", "id", "-G").ok();
    assert_eq!(gids(&out), [10, 50, 1000], "{out}");
    let out = docker!(env, "run", "--rm", "groups:1", "id", "-G").ok();
    assert_eq!(gids(&out), [0, 10], "{out}");
    // An explicit group: no others from /etc/group, as runc decides.
    let out = docker!(
        env,
        "run",
        "--rm",
        "--user",
        "app:audio",
        "groups:1",
        "id",
        "-G"
    )
    .ok();
    assert_eq!(gids(&out), [63], "{out}");
    // --group-add by name and by number, at run and in exec.
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "grp",
        "--user",
        "app",
        "--group-add",
        "audio",
        "--group-add",
        "4242",
        "groups:1",
        "sleep",
        "60"
    )
    .ok();
    let out = docker!(env, "exec", "grp", "id", "-G").ok();
    assert_eq!(gids(&out), [10, 50, 63, 1000, 4242], "{out}");
    let out = docker!(env, "exec", "-u", "root", "grp", "id", "-G").ok();
    assert_eq!(gids(&out), [0, 10, 63, 4242], "{out}");
    // (busybox exits 1 for 4242, which has no name.)
    let out = env.berth(&["exec", "grp", "id", "-Gn"]).stdout;
    assert!(out.contains("audio") && out.contains("staff"), "{out}");
    env.berth(&["rm", "-f", "grp"]).ok();
    // A group that is neither in /etc/group nor a number: Docker's error.
    let r = docker!(
        env,
        "run",
        "--rm",
        "--group-add",
        "nosuch",
        "groups:1",
        "true"
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("Unable to find group nosuch: no matching entries in group file"),
        "{r:?}"
    );
    env.berth(&["rmi", "groups:1"]).ok();
}

fn compat_swarm_plugins_and_unknown_routes(env: &TestEnv) {
    let not_manager = r#"{"message":"This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."}"#;
    for (method, path) in [
        ("GET", "/v1.44/swarm"),
        ("GET", "/services"),
        ("GET", "/v1.44/services/abc"),
        ("GET", "/v1.44/nodes"),
        ("GET", "/v1.44/tasks"),
        ("GET", "/v1.44/secrets"),
        ("POST", "/v1.44/secrets/create"),
        ("GET", "/v1.44/configs"),
        ("DELETE", "/v1.44/configs/x"),
    ] {
        let (code, body) = env.api(method, path, None);
        assert_eq!((code, body.trim()), (503, not_manager), "{method} {path}");
    }
    assert_eq!(env.api("GET", "/v1.44/plugins", None), (200, "[]".into()));
    let (code, body) = env.api("GET", "/v1.44/plugins/x/json", None);
    assert_eq!(
        (code, body.trim()),
        (404, r#"{"message":"plugin \"x\" not found"}"#)
    );
    let (code, body) = env.api("GET", "/v1.44/no/such/route", None);
    assert_eq!(
        (code, body.trim()),
        (404, r#"{"message":"page not found"}"#)
    );
    let r = docker!(env, "service", "ls");
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("This node is not a swarm manager."),
        "{r:?}"
    );
    let r = docker!(env, "secret", "ls");
    assert!(
        r.stderr.contains("This node is not a swarm manager."),
        "{r:?}"
    );
    let out = docker!(env, "plugin", "ls").ok();
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
}

/// A loopback port whose server side is left in TIME_WAIT (the server closed first).
fn port_in_time_wait() -> u16 {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    drop(server);
    let _ = client.read(&mut [0u8; 1]);
    drop(client);
    drop(listener);
    port
}

fn compat_publish_time_wait_port_and_first_address(env: &TestEnv) {
    let port = port_in_time_wait();
    let (_, tw) = {
        let out = Command::new("ss")
            .args(["-tan", "state", "time-wait"])
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(
        tw.contains(&format!("127.0.0.1:{port}")),
        "not in TIME_WAIT: {tw}"
    );
    let publish = format!("{port}:80");
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "tw",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "mkdir -p /w && echo timewait > /w/index.html && exec httpd -f -p 80 -h /w"
    )
    .ok();
    let url = format!("http://127.0.0.1:{port}/");
    assert!(env.eventually(10, || {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", &url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "timewait"
    }));
    // The reservation stays exclusive: a second container cannot take the port.
    let r = docker!(
        env, "run", "-d", "--name", "tw2", "-p", &publish, "busybox", "sleep", "5"
    );
    assert_ne!(r.code, 0, "{r:?}");
    docker!(env, "rm", "-f", "tw", "tw2").ok();
    // The first container on a fresh network gets .2.
    docker!(
        env,
        "network",
        "create",
        "--subnet",
        "10.231.77.0/24",
        "cfresh"
    )
    .ok();
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "first",
        "--network",
        "cfresh",
        "busybox",
        "sleep",
        "60"
    )
    .ok();
    assert_eq!(
        env.inspect("first", "{{.NetworkSettings.Networks.cfresh.IPAddress}}"),
        "10.231.77.2"
    );
    docker!(env, "rm", "-f", "first").ok();
    docker!(env, "network", "rm", "cfresh").ok();
    docker!(env, "network", "create", "cfresh2").ok();
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "first2",
        "--network",
        "cfresh2",
        "busybox",
        "sleep",
        "60"
    )
    .ok();
    let ip = env.inspect("first2", "{{.NetworkSettings.Networks.cfresh2.IPAddress}}");
    assert!(ip.ends_with(".2"), "{ip}");
    docker!(env, "rm", "-f", "first2").ok();
    docker!(env, "network", "rm", "cfresh2").ok();
}

fn compat_legacy_links(env: &TestEnv) {
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "lk-db",
        "--hostname",
        "dbhost",
        "-e",
        "SECRET=s3",
        "--expose",
        "5432",
        "busybox",
        "sleep",
        "60"
    )
    .ok();
    let ip = env.inspect("lk-db", "{{.NetworkSettings.Networks.bridge.IPAddress}}");
    assert!(!ip.is_empty());
    docker!(
        env, "run", "-d", "--name", "lk-web", "--link", "lk-db:db", "busybox", "sleep", "60"
    )
    .ok();
    assert_eq!(
        env.inspect("lk-web", "{{json .HostConfig.Links}}"),
        r#"["/lk-db:/lk-web/db"]"#
    );
    let hosts = docker!(env, "exec", "lk-web", "cat", "/etc/hosts").ok();
    assert!(
        hosts.lines().any(|l| l == format!("{ip}\tdb dbhost lk-db")),
        "{hosts}"
    );
    let vars = docker!(env, "exec", "lk-web", "env").ok();
    for want in [
        format!("DB_PORT=tcp://{ip}:5432"),
        "DB_NAME=/lk-web/db".to_string(),
        format!("DB_PORT_5432_TCP=tcp://{ip}:5432"),
        format!("DB_PORT_5432_TCP_ADDR={ip}"),
        "DB_PORT_5432_TCP_PORT=5432".to_string(),
        "DB_PORT_5432_TCP_PROTO=tcp".to_string(),
        "DB_ENV_SECRET=s3".to_string(),
    ] {
        assert!(vars.lines().any(|l| l == want), "{want} missing: {vars}");
    }
    assert!(!vars.contains("DB_ENV_PATH"), "{vars}");
    let ping = docker!(env, "exec", "lk-web", "ping", "-c", "1", "-W", "2", "db");
    assert_eq!(ping.code, 0, "{ping:?}");
    // The link goes with DELETE …?link=1.
    let (code, body) = env.api("DELETE", "/v1.44/containers/lk-web/db?link=1", None);
    assert_eq!(code, 204, "{body}");
    assert_eq!(
        docker!(env, "inspect", "-f", "{{json .HostConfig.Links}}", "lk-web").ok(),
        "null"
    );
    let (code, _) = env.api("GET", "/v1.44/containers/lk-web/db", None);
    assert_eq!(code, 404);
    // A link to a missing container: Docker's error, nothing created.
    let before = container_count(env);
    let r = docker!(env, "run", "-d", "--link", "nosuch:db", "busybox", "true");
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("could not get container for nosuch: No such container: nosuch"),
        "{r:?}"
    );
    assert_eq!(container_count(env), before);
    // A stopped linked container: the start fails in Docker's words.
    docker!(env, "stop", "-t", "0", "lk-db").ok();
    docker!(
        env, "create", "--name", "lk-late", "--link", "lk-db:db", "busybox", "true"
    )
    .ok();
    let r = docker!(env, "start", "lk-late");
    assert!(
        r.stderr
            .contains("Cannot link to a non running container: /lk-db AS /lk-late/db"),
        "{r:?}"
    );
    docker!(env, "rm", "-f", "lk-web", "lk-db", "lk-late").ok();
}

fn compat_volume_mount_events(env: &TestEnv) {
    let since = unix_now();
    docker!(env, "run", "--rm", "-v", "cev:/data:ro", "busybox", "true").ok();
    let until = unix_now();
    let events = docker!(
        env,
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"destination\"}} {{index .Actor.Attributes \"read/write\"}} {{index .Actor.Attributes \"driver\"}}"
    )
    .ok();
    let lines: Vec<&str> = events.lines().collect();
    assert!(lines.contains(&"mount cev /data false local"), "{events}");
    assert!(lines.contains(&"unmount cev   local"), "{events}");
    docker!(env, "volume", "rm", "cev").ok();
}

fn compat_network_connect_events(env: &TestEnv) {
    docker!(env, "network", "create", "cev-net").ok();
    let net_id = docker!(env, "network", "inspect", "-f", "{{.Id}}", "cev-net").ok();
    let since = unix_now();
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "cev-c",
        "--network",
        "cev-net",
        "busybox",
        "sleep",
        "60"
    )
    .ok();
    let cid = env.inspect("cev-c", "{{.Id}}");
    docker!(env, "network", "connect", "bridge", "cev-c").ok();
    docker!(env, "network", "disconnect", "bridge", "cev-c").ok();
    docker!(env, "rm", "-f", "cev-c").ok();
    let until = unix_now();
    let events = docker!(
        env,
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}} {{.Actor.Attributes.container}} {{.Actor.ID}}"
    )
    .ok();
    // (Only this container's: `--since` counts in whole seconds.)
    let lines: Vec<&str> = events.lines().filter(|l| l.contains(&cid)).collect();
    let line = |action: &str, name: &str, id: &str| format!("{action} {name} bridge {cid} {id}");
    let bridge_id = docker!(env, "network", "inspect", "-f", "{{.Id}}", "bridge").ok();
    assert_eq!(
        lines,
        [
            line("connect", "cev-net", &net_id),
            line("connect", "bridge", &bridge_id),
            line("disconnect", "bridge", &bridge_id),
            line("disconnect", "cev-net", &net_id),
        ],
        "{events}"
    );
    docker!(env, "network", "rm", "cev-net").ok();
}
