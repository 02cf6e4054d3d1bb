//! Terminals as Docker gives them: each container's own devpts instance, its pty allocated
//! inside it (`tty` prints `/dev/pts/0`), exec's TTY decided by exec-create, detach keys.
use std::io::{Read, Write};
use std::path::Path;

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "terminal_run_pty_is_in_the_containers_devpts",
        terminal_run_pty_is_in_the_containers_devpts,
    ),
    (
        "terminal_exec_pty_is_in_the_containers_devpts",
        terminal_exec_pty_is_in_the_containers_devpts,
    ),
    (
        "terminal_exec_tty_follows_exec_create",
        terminal_exec_tty_follows_exec_create,
    ),
    (
        "terminal_detach_keys_on_run_attach_exec",
        terminal_detach_keys_on_run_attach_exec,
    ),
    (
        "terminal_bad_detach_keys_are_refused",
        terminal_bad_detach_keys_are_refused,
    ),
];

fn require_script() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::skip("script(1) is not installed");
    }
}

/// Runs `exe cmd` (a shell command line) in a fresh pty made by script(1), typing `input`
/// after half a second; returns its output and exit code.
fn in_terminal(env: &TestEnv, exe: &Path, cmd: &str, input: &[u8]) -> (String, i32) {
    let full = format!(
        "stty cols 90 rows 30; DOCKER_HOST={host} BERTH_HOST={host} DOCKER_CONFIG={config} {exe} {cmd}",
        host = env.host(),
        config = env.root.join("docker-config").display(),
        exe = exe.display(),
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &full, "/dev/null"])
        .env_remove("DOCKER_API_VERSION")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(800));
        let _ = stdin.write_all(&input);
        std::thread::sleep(std::time::Duration::from_secs(3));
    });
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn berth_exe() -> std::path::PathBuf {
    crate::harness::berth_exe()
}

fn docker_exe() -> std::path::PathBuf {
    crate::harness::docker_exe().unwrap_or_else(|| crate::skip("the docker CLI is not installed"))
}

/// The st_dev of the host's /dev/pts.
fn host_devpts_dev() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/dev/pts/ptmx")
        .unwrap()
        .dev()
        .to_string()
}

/// Inside the container: the tty's name, the device of the pty on fd 0, the device of its
/// /dev/pts, what /dev/pts holds and how devpts is mounted.
const PROBE: &str = "tty; stat -L -c 'fd0=%d' /proc/self/fd/0; stat -c 'pts=%d' /dev/pts; \
                     echo; ls /dev/pts | tr '\\n' ,; echo; grep ' /dev/pts ' /proc/self/mountinfo";

fn check_probe(out: &str, slave: &str) {
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {out:?}"))
            .trim()
            .to_string()
    };
    assert!(
        out.lines().any(|l| l.trim() == slave),
        "tty names the container's own pty {slave}: {out:?}"
    );
    let fd0 = line("fd0=");
    assert_eq!(fd0, line("pts="), "the pty lives in the container's devpts");
    assert_ne!(fd0, host_devpts_dev(), "no host pty: {out:?}");
    let mountinfo = out
        .lines()
        .find(|l| l.contains(" - devpts "))
        .unwrap_or_else(|| panic!("no devpts mount in {out:?}"));
    for option in ["mode=620", "ptmxmode=666", "gid=5"] {
        assert!(mountinfo.contains(option), "{option} in {mountinfo:?}");
    }
}

fn terminal_run_pty_is_in_the_containers_devpts(env: &TestEnv) {
    require_script();
    let (out, code) = in_terminal(
        env,
        &berth_exe(),
        &format!("run -t --rm busybox sh -c \"{PROBE}\""),
        b"",
    );
    assert_eq!(code, 0, "{out}");
    check_probe(&out, "/dev/pts/0");
    assert!(out.contains("\n0,ptmx,"), "only its own pty: {out:?}");
    // The real docker CLI sees the same.
    let (out, code) = in_terminal(env, &docker_exe(), "run -t --rm busybox tty", b"");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "/dev/pts/0");
    // /dev/console is the container's pty too, as runc binds it.
    let (out, code) = in_terminal(
        env,
        &berth_exe(),
        "run -t --rm busybox sh -c 'stat -c %t:%T /dev/console /dev/pts/0'",
        b"",
    );
    assert_eq!(code, 0, "{out}");
    let nodes: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(nodes.len(), 2, "{out:?}");
    assert_eq!(nodes[0], nodes[1], "{out:?}");
}

fn terminal_exec_pty_is_in_the_containers_devpts(env: &TestEnv) {
    require_script();
    env.berth(&["run", "-d", "--name", "tty-exec", "busybox", "sleep", "300"])
        .ok();
    let (out, code) = in_terminal(
        env,
        &berth_exe(),
        &format!("exec -t tty-exec sh -c \"{PROBE}\""),
        b"",
    );
    assert_eq!(code, 0, "{out}");
    check_probe(&out, "/dev/pts/0");
    let (out, code) = in_terminal(env, &docker_exe(), "exec -it tty-exec tty", b"");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "/dev/pts/0");
    // Without -t: no terminal.
    let r = env.berth(&["exec", "tty-exec", "tty"]);
    assert_eq!(r.stdout.trim(), "not a tty", "{r:?}");
    env.berth(&["rm", "-f", "tty-exec"]).ok();
    // A container with a TTY has /dev/pts/0; an exec's is the next one.
    env.berth(&[
        "run",
        "-dt",
        "--name",
        "tty-exec2",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let (out, code) = in_terminal(env, &berth_exe(), "exec -t tty-exec2 tty", b"");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "/dev/pts/1");
    env.berth(&["rm", "-f", "tty-exec2"]).ok();
}

/// A hijacked request over the daemon's socket; returns everything after the headers.
fn hijack(env: &TestEnv, path: &str, body: &str) -> Vec<u8> {
    let (head, rest) = hijack_raw(env, path, body);
    assert!(head.contains(" 101 "), "{head}");
    rest
}

/// [`hijack`]'s status and headers, and its body as text.
fn hijack_response(env: &TestEnv, path: &str, body: &str) -> (String, String) {
    let (head, rest) = hijack_raw(env, path, body);
    (head, String::from_utf8_lossy(&rest).into_owned())
}

fn hijack_raw(env: &TestEnv, path: &str, body: &str) -> (String, Vec<u8>) {
    let mut s = std::os::unix::net::UnixStream::connect(&env.socket).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    // A refusal is an ordinary response on a kept-alive connection: read its Content-Length;
    // an upgraded stream is read to its end.
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        all.extend_from_slice(&buf[..n]);
        if let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&all[..end]).into_owned();
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            let done = match length {
                Some(length) => all.len() >= end + 4 + length,
                None => n == 0,
            };
            if done {
                return (head, all[end + 4..].to_vec());
            }
        }
        assert!(n > 0, "no headers in {:?}", String::from_utf8_lossy(&all));
    }
}

fn exec_create(env: &TestEnv, container: &str, tty: bool) -> String {
    let body =
        format!(r#"{{"AttachStdout":true,"AttachStderr":true,"Tty":{tty},"Cmd":["echo","hi"]}}"#);
    let (status, out) = env.api(
        "POST",
        &format!("/containers/{container}/exec"),
        Some(&body),
    );
    assert_eq!(status, 201, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["Id"].as_str().unwrap().to_string()
}

fn terminal_exec_tty_follows_exec_create(env: &TestEnv) {
    env.berth(&[
        "run",
        "-d",
        "--name",
        "tty-create",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    // Create says Tty, start says not: a TTY (raw stream, \r\n from the pty's onlcr).
    let id = exec_create(env, "tty-create", true);
    let raw = hijack(env, &format!("/exec/{id}/start"), r#"{"Tty":false}"#);
    assert_eq!(raw, b"hi\r\n", "{:?}", String::from_utf8_lossy(&raw));
    // Create says no Tty, start says Tty: multiplexed, no translation.
    let id = exec_create(env, "tty-create", false);
    let raw = hijack(env, &format!("/exec/{id}/start"), r#"{"Tty":true}"#);
    assert_eq!(raw, b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n");
    // The docker CLI with -t and a pipe for stdout: still the pty's \r\n, as with dockerd.
    let r = env
        .docker(&["exec", "-t", "tty-create", "echo", "hi"])
        .unwrap();
    assert_eq!(r.stdout, "hi\r\n", "{r:?}");
    let r = env.docker(&["exec", "tty-create", "echo", "hi"]).unwrap();
    assert_eq!(r.stdout, "hi\n", "{r:?}");
    env.berth(&["rm", "-f", "tty-create"]).ok();
}

fn running(env: &TestEnv, name: &str) -> bool {
    env.inspect(name, "{{.State.Running}}") == "true"
}

fn terminal_detach_keys_on_run_attach_exec(env: &TestEnv) {
    require_script();
    // --detach-keys on run (berth and docker).
    for exe in [berth_exe(), docker_exe()] {
        let (out, code) = in_terminal(
            env,
            &exe,
            "run -it --name tty-dk --detach-keys ctrl-a,x busybox sh",
            b"\x01x",
        );
        assert_eq!(code, 0, "{out}");
        assert!(running(env, "tty-dk"), "{exe:?} detached: {out:?}");
        // docker's own `attach` and `exec` report a detach as the error "read escape
        // sequence" (exit 1), whatever the daemon; berth's exit 0.
        let detached = |out: &str, code: i32| {
            assert!(
                code == 0 || (exe == docker_exe() && out.contains("read escape sequence")),
                "{exe:?}: {code} {out:?}"
            );
        };
        // The default keys on attach.
        let (out, code) = in_terminal(env, &exe, "attach tty-dk", b"\x10\x11");
        detached(&out, code);
        assert!(running(env, "tty-dk"), "{out:?}");
        // The client config's detachKeys.
        let config = env.root.join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("config.json"), r#"{"detachKeys":"ctrl-e"}"#).unwrap();
        let (out, code) = in_terminal(env, &exe, "attach tty-dk", b"\x05");
        std::fs::remove_file(config.join("config.json")).unwrap();
        detached(&out, code);
        assert!(running(env, "tty-dk"), "{out:?}");
        // exec -it: detaching leaves the exec's process running.
        let (out, code) = in_terminal(
            env,
            &exe,
            "exec -it --detach-keys ctrl-b tty-dk sh -c 'echo started; exec sleep 123'",
            b"\x02",
        );
        detached(&out, code);
        assert!(out.contains("started"), "{out:?}");
        let ps = env.berth(&["exec", "tty-dk", "ps"]).ok();
        assert!(ps.contains("sleep 123"), "{ps}");
        env.berth(&["rm", "-f", "tty-dk"]).ok();
    }
}

fn terminal_bad_detach_keys_are_refused(env: &TestEnv) {
    let count = || env.berth(&["ps", "-aq"]).ok().lines().count();
    let before = count();
    let r = env.berth(&["run", "-i", "--detach-keys", "ctrl-1", "busybox", "true"]);
    assert_eq!(r.code, 125, "{r:?}");
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("Invalid detach keys (ctrl-1) provided"),
        "{r:?}"
    );
    assert_eq!(count(), before, "nothing created");
    env.berth(&["run", "-d", "--name", "tty-bad", "busybox", "sleep", "300"])
        .ok();
    // The daemon refuses them on attach (400, which docker's CLI reports as it does for
    // dockerd) and on exec create, in dockerd's words.
    let (head, body) = hijack_response(
        env,
        "/containers/tty-bad/attach?stream=1&detachKeys=foo",
        "",
    );
    assert!(head.contains(" 400 "), "{head}");
    assert!(
        body.contains("Invalid detach keys (foo) provided"),
        "{body}"
    );
    let r = env
        .docker(&["attach", "--detach-keys", "foo", "tty-bad"])
        .unwrap();
    assert!(r.stderr.contains("received 400"), "{r:?}");
    let r = env.berth(&["attach", "--detach-keys", "foo", "tty-bad"]);
    assert!(
        r.stderr.contains("Invalid detach keys (foo) provided"),
        "{r:?}"
    );
    let r = env
        .docker(&["exec", "--detach-keys", "ctrl-", "tty-bad", "true"])
        .unwrap();
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("Invalid escape keys (ctrl-) provided"),
        "{r:?}"
    );
    env.berth(&["rm", "-f", "tty-bad"]).ok();
}
