//! Logging drivers as Docker has them: none, local, json-file, syslog, journald; `logs` on
//! drivers it cannot read; bad drivers and options refused before anything is created.
use std::path::PathBuf;
use std::time::Duration;

use crate::Test;
use crate::hardening::container_id;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "logging_none_keeps_nothing_and_logs_refuses",
        logging_none_keeps_nothing_and_logs_refuses,
    ),
    (
        "logging_local_is_framed_rotated_compressed_and_read_back",
        logging_local_is_framed_rotated_compressed_and_read_back,
    ),
    (
        "logging_syslog_over_udp_and_unix",
        logging_syslog_over_udp_and_unix,
    ),
    (
        "logging_journald_without_journal_is_a_clear_error",
        logging_journald_without_journal_is_a_clear_error,
    ),
    (
        "logging_bad_driver_or_option_creates_nothing",
        logging_bad_driver_or_option_creates_nothing,
    ),
    ("logging_daemon_wide_defaults", logging_daemon_wide_defaults),
    (
        "logging_local_slow_follower_misses_no_rotated_line",
        logging_local_slow_follower_misses_no_rotated_line,
    ),
];

const NOT_READABLE: &str = "configured logging driver does not support reading";

fn wait_exit(env: &TestEnv, name: &str) {
    env.berth(&["wait", name]).ok();
}

fn logging_none_keeps_nothing_and_logs_refuses(env: &TestEnv) {
    env.berth(&[
        "run",
        "--name",
        "log-none",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hi",
    ])
    .ok();
    let r = env.berth(&["logs", "log-none"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains(NOT_READABLE), "{r:?}");
    let r = env.docker(&["logs", "log-none"]).unwrap();
    assert_ne!(r.code, 0);
    assert_eq!(
        r.stderr.trim(),
        format!("Error response from daemon: {NOT_READABLE}")
    );
    let id = container_id(env, "log-none");
    let dir = env.data_root.join("containers").join(&id);
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files.iter().any(|f| f.contains("log")),
        "no log file: {files:?}"
    );
    assert_eq!(
        env.inspect("log-none", "{{.HostConfig.LogConfig.Type}}"),
        "none"
    );
    env.berth(&["rm", "log-none"]).ok();
    // json-file, the default, reads back.
    let out = env.berth(&["run", "--name", "log-json", "busybox", "echo", "hi"]);
    assert_eq!(out.ok(), "hi");
    assert_eq!(env.berth(&["logs", "log-json"]).ok(), "hi");
    assert_eq!(
        env.inspect("log-json", "{{.HostConfig.LogConfig.Type}}"),
        "json-file"
    );
    env.berth(&["rm", "log-json"]).ok();
}

/// The entries of an uncompressed local log: (source, line, partial).
fn local_entries(bytes: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let entry = &bytes[pos + 4..pos + 4 + len];
        let trailer = u32::from_be_bytes(bytes[pos + 4 + len..pos + 8 + len].try_into().unwrap());
        assert_eq!(
            trailer as usize, len,
            "the length frames the entry on both sides"
        );
        // field 1 (source), length-delimited
        assert_eq!(entry[0], 0x0a);
        let source_len = entry[1] as usize;
        let source = String::from_utf8_lossy(&entry[2..2 + source_len]).into_owned();
        // field 2 (time_nano): a varint
        let mut i = 2 + source_len;
        assert_eq!(entry[i], 0x10);
        i += 1;
        while entry[i] & 0x80 != 0 {
            i += 1;
        }
        i += 1;
        assert_eq!(entry[i], 0x1a, "field 3, the line");
        let line_len = entry[i + 1] as usize;
        let line = String::from_utf8_lossy(&entry[i + 2..i + 2 + line_len]).into_owned();
        out.push((source, line));
        pos += 8 + len;
    }
    out
}

fn logging_local_is_framed_rotated_compressed_and_read_back(env: &TestEnv) {
    let script = "for i in $(seq 1 2000); do echo line-$i; done; echo oops >&2";
    let r = env.berth(&[
        "run",
        "-d",
        "--name",
        "log-local",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=20k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    r.ok();
    wait_exit(env, "log-local");
    let id = container_id(env, "log-local");
    let dir = env
        .data_root
        .join("containers")
        .join(&id)
        .join("local-logs");
    let current = std::fs::read(dir.join("container.log")).unwrap();
    let entries = local_entries(&current);
    assert_eq!(
        entries.last().unwrap(),
        &("stderr".to_string(), "oops".to_string()),
        "lines are kept without their newline"
    );
    for n in [1, 2] {
        let listing: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let gz = std::fs::read(dir.join(format!("container.log.{n}.gz")))
            .unwrap_or_else(|e| panic!("container.log.{n}.gz: {e}; {listing:?}"));
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "rotated files are gzip");
    }
    assert!(
        !dir.join("container.log.3.gz").exists(),
        "max-file=3 keeps three files"
    );
    assert_eq!(env.inspect("log-local", "{{.LogPath}}"), "");
    // Read back, in order, through the rotated files; both streams; tail; timestamps.
    let r = env.berth(&["logs", "log-local"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.last(), Some(&"line-2000"));
    let numbers: Vec<u32> = lines
        .iter()
        .map(|l| l.trim_start_matches("line-").parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "in order");
    assert!(numbers[0] > 1, "the oldest file was dropped");
    assert!(numbers.len() > entries.len(), "rotated files are read too");
    assert_eq!(r.stderr, "oops\n");
    let r = env
        .docker(&["logs", "--tail", "2", "-t", "log-local"])
        .unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    let tail: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(tail.len(), 1, "{r:?}");
    assert!(tail[0].ends_with(" line-2000"), "{r:?}");
    assert!(tail[0].starts_with("20"), "timestamped: {r:?}");
    assert!(r.stderr.ends_with(" oops\n"), "{r:?}");
    env.berth(&["rm", "log-local"]).ok();
}

fn logging_syslog_over_udp_and_unix(env: &TestEnv) {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let address = format!("udp://{}", udp.local_addr().unwrap());
    env.berth(&[
        "run",
        "--name",
        "log-syslog",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address={address}"),
        "--log-opt",
        "tag={{.Name}}",
        "busybox",
        "sh",
        "-c",
        "echo to-out; sleep 0.2; echo to-err >&2",
    ])
    .ok();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    for _ in 0..2 {
        let n = udp.recv(&mut buf).expect("a syslog datagram");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(got[0].starts_with("<30>"), "daemon.info: {got:?}");
    assert!(got[0].ends_with("]: to-out"), "{got:?}");
    assert!(got[0].contains(" log-syslog["), "tag: {got:?}");
    assert!(got[1].starts_with("<27>"), "daemon.err: {got:?}");
    assert!(got[1].ends_with("]: to-err"), "{got:?}");
    let r = env.docker(&["logs", "log-syslog"]).unwrap();
    assert!(r.stderr.contains(NOT_READABLE), "{r:?}");
    env.berth(&["rm", "log-syslog"]).ok();
    // A unix datagram socket, facility local3.
    let path = env.root.join("syslog.sock");
    let _ = std::fs::remove_file(&path);
    let unix = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    env.berth(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=unix://{}", path.display()),
        "--log-opt",
        "syslog-facility=local3",
        "--log-opt",
        "tag=unixtag",
        "busybox",
        "echo",
        "via-unix",
    ])
    .ok();
    let n = unix.recv(&mut buf).expect("a syslog datagram");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        message.starts_with(&format!("<{}>", 19 * 8 + 6)),
        "{message}"
    );
    assert!(message.contains(" unixtag["), "{message}");
    assert!(message.ends_with("]: via-unix"), "{message}");
    drop(unix);
    std::fs::remove_file(&path).unwrap();
}

fn logging_journald_without_journal_is_a_clear_error(env: &TestEnv) {
    if PathBuf::from("/run/systemd/journal/socket").exists() {
        crate::skip("this host runs journald: the error case cannot be shown");
    }
    let r = env.berth(&[
        "run",
        "--name",
        "log-journald",
        "--log-driver",
        "journald",
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("failed to initialize logging driver: journald is not enabled on this host"),
        "{r:?}"
    );
    assert_eq!(
        env.inspect("log-journald", "{{.State.Status}}"),
        "created",
        "as dockerd: the container exists, its start failed"
    );
    env.berth(&["rm", "log-journald"]).ok();
}

fn logging_bad_driver_or_option_creates_nothing(env: &TestEnv) {
    let count = || env.berth(&["ps", "-aq"]).ok().lines().count();
    let before = count();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--log-driver", "foo"],
            "logger: no log driver named 'foo' is registered",
        ),
        (
            &["--log-opt", "foo=bar"],
            "unknown log opt 'foo' for json-file log driver",
        ),
        (
            &[
                "--log-driver",
                "syslog",
                "--log-opt",
                "syslog-address=127.0.0.1",
            ],
            "syslog-address should be in form proto://address, got 127.0.0.1",
        ),
        (
            &["--log-driver", "local", "--log-opt", "mode=sometimes"],
            "logger: logging mode not supported: sometimes",
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let r = env.docker(&args).unwrap();
        assert_eq!(r.code, 125, "{r:?}");
        assert_eq!(
            r.stderr.lines().next().unwrap_or_default(),
            format!("docker: Error response from daemon: {message}"),
            "{r:?}"
        );
        let r = env.berth(&args);
        assert_eq!(r.code, 125, "{r:?}");
        assert!(
            r.stderr
                .lines()
                .next()
                .unwrap_or_default()
                .contains(message),
            "{r:?}"
        );
    }
    assert_eq!(count(), before, "nothing created");
}

fn logging_daemon_wide_defaults(env: &TestEnv) {
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon_with(&["--log-driver", "local", "--log-opt", "max-file=2"]);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        env.berth(&["run", "--name", "log-default", "busybox", "echo", "hi"])
            .ok();
        assert_eq!(
            env.inspect(
                "log-default",
                "{{.HostConfig.LogConfig.Type}} {{.HostConfig.LogConfig.Config}}"
            ),
            "local map[max-file:2]"
        );
        assert_eq!(env.berth(&["logs", "log-default"]).ok(), "hi");
        let id = container_id(env, "log-default");
        let local = env
            .data_root
            .join("containers")
            .join(id)
            .join("local-logs/container.log");
        assert!(local.exists(), "the local driver wrote {local:?}");
        // A container naming another driver gets none of the default's options.
        env.berth(&[
            "run",
            "--name",
            "log-other",
            "--log-driver",
            "json-file",
            "busybox",
            "true",
        ])
        .ok();
        assert_eq!(
            env.inspect(
                "log-other",
                "{{.HostConfig.LogConfig.Type}} {{.HostConfig.LogConfig.Config}}"
            ),
            "json-file map[]"
        );
        env.berth(&["rm", "log-default", "log-other"]).ok();
    }));
    env.stop_daemon(libc::SIGTERM);
    env.start_daemon();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    // A bad default: the daemon refuses to start, in Docker's words.
    // (Private paths and a time limit: should it start after all, it touches nothing else.)
    let root = env.root.join("bad-log-daemon");
    let out = std::process::Command::new("timeout")
        .arg("10")
        .arg(crate::harness::berth_exe())
        .args(["daemon", "--log-driver", "nope", "-b", "none", "-H"])
        .arg(format!("unix://{}/d.sock", root.display()))
        .arg("--data-root")
        .arg(root.join("data"))
        .arg("--exec-root")
        .arg(root.join("run"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("logger: no log driver named 'nope' is registered"),
        "{out:?}"
    );
}

/// Issue 14: the `local` driver's follower follows rotations by descriptor, as json-file's
/// does (`hardening_slow_follower_misses_no_rotated_line`): a `logs -f` reader slower than
/// the container, across many compressing rotations, gets every line once, in order.
fn logging_local_slow_follower_misses_no_rotated_line(env: &TestEnv) {
    crate::faults::slow_follower_gets_every_line(
        env,
        "local-rotating",
        &["--log-driver", "local"],
        |dir| std::fs::read_dir(dir.join("local-logs")).map_or(0, |rd| rd.flatten().count()),
    );
}
