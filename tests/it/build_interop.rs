//! Integration tests of the builder with others: docker-py's `images.build`, a real dockerd
//! loading what berth built, `ADD` of URLs from a loopback server, a context larger than the
//! disk, a daemon stopped in the middle of a `RUN`.

use std::process::Command;
use std::time::Duration;

use crate::Test;
use crate::build::{
    berth_build, build_until_started, context, docker_build, image_id, mounts_under, raw_tar,
};
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    ("build_docker_py_images_build", build_docker_py_images_build),
    (
        "build_add_url_from_a_loopback_server",
        build_add_url_from_a_loopback_server,
    ),
    (
        "build_lines_are_dockerd_legacy_builders",
        build_lines_are_dockerd_legacy_builders,
    ),
    (
        "build_save_loads_and_runs_in_dockerd",
        build_save_loads_and_runs_in_dockerd,
    ),
    (
        "build_context_larger_than_the_disk_fails_cleanly",
        build_context_larger_than_the_disk_fails_cleanly,
    ),
    (
        "build_daemon_killed_mid_run_removes_the_step_at_start",
        build_daemon_killed_mid_run_removes_the_step_at_start,
    ),
];

/// Issue 13: docker-py's `images.build` and `APIClient.build` (path, fileobj and custom
/// contexts, tag, buildargs, target, nocache, rm/forcerm, labels, network_mode, a Dockerfile
/// outside the context, the streamed lines and the returned image; a failing `RUN` raises
/// `BuildError` with its message). The script is `build_docker_py.py`.
fn build_docker_py_images_build(env: &TestEnv) {
    let has_py = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_py {
        crate::skip("docker-py is not installed (scripts/deps.sh installs it)");
    }
    let work = env.root.join("build/docker-py");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let script = work.join("build_docker_py.py");
    std::fs::write(&script, include_str!("build_docker_py.py")).unwrap();
    let mut c = Command::new("python3");
    c.arg(&script).arg(env.host()).arg(&work);
    let out = crate::hardening::run_within(c, Duration::from_secs(300))
        .expect("the docker-py build script took more than 300 s");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim().ends_with("ok"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The processes whose cgroup path names `id`.
fn processes_of(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        if cgroup.contains(id) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Issue 13: a daemon killed while a `RUN sleep` step runs. The step's container (its
/// process, mount, cgroup, record and scratch) is removed at the next daemon start, and the
/// builder builds again.
fn build_daemon_killed_mid_run_removes_the_step_at_start(env: &TestEnv) {
    let before = env.berth(&["ps", "-aq", "--no-trunc"]).ok();
    let mounts_before = mounts_under(env);
    let mut child = build_until_started(env, "killed", 120);
    let now = env.berth(&["ps", "-aq", "--no-trunc"]).ok();
    let step: Vec<&str> = now
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .collect();
    assert_eq!(step.len(), 1, "one step container: {now}");
    let id = step[0].to_owned();
    assert!(!processes_of(&id).is_empty(), "the step runs in its cgroup");
    env.stop_daemon(libc::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
    env.start_daemon();
    let after = env.berth(&["ps", "-aq", "--no-trunc"]).ok();
    let container_dir = env.data_root.join("containers").join(&id);
    let run_dir = env.run_root.join("containers").join(&id);
    let gone = env.eventually(10, || processes_of(&id).is_empty());
    assert_eq!(
        after, before,
        "the interrupted step's container is gone at start"
    );
    assert!(
        gone,
        "the step's processes are gone: {:?}",
        processes_of(&id)
    );
    assert!(!container_dir.exists(), "{} stays", container_dir.display());
    assert!(!run_dir.exists(), "{} stays", run_dir.display());
    assert_eq!(
        mounts_under(env),
        mounts_before,
        "the step's rootfs mount stays"
    );
    let cgroups: Vec<_> = std::fs::read_dir(format!(
        "/sys/fs/cgroup/{}",
        crate::harness::cgroup_parent()
    ))
    .map(|rd| {
        rd.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    })
    .unwrap_or_else(|_| Vec::new());
    assert!(
        !cgroups.iter().any(|c| c.contains(&id)),
        "its cgroup stays: {cgroups:?}"
    );
    for sub in ["builder/tmp", "builder/steps"] {
        let left = std::fs::read_dir(env.data_root.join(sub)).unwrap().count();
        assert_eq!(left, 0, "{sub} is not empty");
    }
    assert_ne!(
        env.berth(&["image", "inspect", "bt-killed"]).code,
        0,
        "nothing tagged"
    );
    // The builder works after it.
    let again = context(
        env,
        "killed-after",
        &[("Dockerfile", "FROM busybox\nRUN echo fine > /f\n")],
    );
    berth_build(env, &again, &["-t", "bt-killed-after"]).ok();
    env.berth(&["rmi", "bt-killed-after"]).ok();
}

/// A loopback HTTP server of the test's own: `GET /<name>` answers `files[name]` with a
/// `Last-Modified` of 2020-01-02 03:04:05 UTC, anything else 404 with the body "no such file".
/// Serves until the returned guard is dropped; answers with its port.
struct FileServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    fn start(files: Vec<(String, Vec<u8>)>) -> FileServer {
        use std::io::{BufRead, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let found = files.iter().find(|(n, _)| path == format!("/{n}"));
                let mut stream = stream;
                let _ = match found {
                    Some((_, body)) => stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Thu, 02 Jan 2020 03:04:05 GMT\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(body)),
                    None => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\nConnection: close\r\n\r\nno such file\n",
                    ),
                };
            }
        });
        FileServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The error line of a build through the API (`errorDetail`'s message), or panics.
fn api_build_error(env: &TestEnv, dir: &std::path::Path, dockerfile: &str) -> String {
    let tar = raw_tar(&[("Dockerfile", dockerfile, None)]);
    let path = dir.join("ctx.tar");
    std::fs::write(&path, tar).unwrap();
    let (status, body) = env.api(
        "POST",
        "/build?networkmode=none",
        Some(&format!("@{}", path.display())),
    );
    assert_eq!(status, 200, "{body}");
    let last = body
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(v["error"], v["errorDetail"]["message"], "{last}");
    v["errorDetail"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no errorDetail: {body}"))
        .to_owned()
}

/// Issue 13: `ADD <url>` from a loopback server: the name comes from the URL, the mtime from
/// `Last-Modified` (as Docker), mode 0600 unless `--chmod`, `--chown`, `--checksum` checked;
/// a 404, a refused connection and a wrong checksum fail the step in Docker's words as an
/// `errorDetail`; a remote tar URL is a context (`docker build http://…/ctx.tar`).
fn build_add_url_from_a_loopback_server(env: &TestEnv) {
    use sha2::Digest;
    let content = b"hello from the url\n".to_vec();
    let ctx_tar = raw_tar(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY hello /hello\nCMD [\"cat\", \"/hello\"]\n",
            None,
        ),
        ("hello", "remote context\n", None),
    ]);
    let server = FileServer::start(vec![
        ("f.txt".to_owned(), content.clone()),
        ("ctx.tar".to_owned(), ctx_tar),
    ]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let sum = hex::encode(sha2::Sha256::digest(&content));
    let dockerfile = format!(
        "FROM busybox\nADD {base}/f.txt /d/\nADD --chmod=640 --chown=1:2 {base}/f.txt /e/g.txt\n\
         ADD --checksum=sha256:{sum} {base}/f.txt /c/\n\
         RUN stat -c '%n %Y %a %u %g' /d/f.txt /e/g.txt /c/f.txt > /stat && cat /d/f.txt\n"
    );
    let dir = context(env, "add-url", &[("Dockerfile", &dockerfile)]);
    let out = berth_build(env, &dir, &["--network", "none", "-t", "bt-add-url"]).ok();
    assert!(out.contains("hello from the url"), "{out}");
    let stat = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "bt-add-url",
            "cat",
            "/stat",
        ])
        .ok();
    assert_eq!(
        stat,
        "/d/f.txt 1577934245 600 0 0\n/e/g.txt 1577934245 640 1 2\n/c/f.txt 1577934245 600 0 0",
        "name from the URL, mtime from Last-Modified, --chmod, --chown"
    );
    // Built again: the same bytes are a cache hit.
    let again = berth_build(env, &dir, &["--network", "none", "-t", "bt-add-url"]).ok();
    assert!(again.matches("Using cache").count() >= 4, "{again}");
    // Failures, in Docker's words, as the stream's errorDetail.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let wrong = "0".repeat(64);
    let cases = [
        (
            format!("FROM busybox\nADD {base}/missing /d/\n"),
            format!(
                "ADD failed: failed to GET {base}/missing with status 404 Not Found: no such file"
            ),
        ),
        (
            format!("FROM busybox\nADD http://127.0.0.1:{refused}/x /d/\n"),
            format!(
                "ADD failed: Get \"http://127.0.0.1:{refused}/x\": dial tcp 127.0.0.1:{refused}: connect: connection refused"
            ),
        ),
        (
            format!("FROM busybox\nADD --checksum=sha256:{wrong} {base}/f.txt /d/\n"),
            format!("ADD failed: digest mismatch sha256:{sum}: sha256:{wrong}"),
        ),
    ];
    let containers_before = env.berth(&["ps", "-aq"]).ok();
    for (df, want) in &cases {
        assert_eq!(&api_build_error(env, &dir, df), want, "{df}");
        // And the docker CLI shows it.
        std::fs::write(dir.join("Dockerfile"), df).unwrap();
        let r = docker_build(env, &dir, &["--network", "none", "."], true, b"");
        assert_ne!(r.code, 0, "{df}");
        assert!(r.stderr.contains(want.as_str()), "{df}: {}", r.stderr);
    }
    assert_eq!(env.berth(&["ps", "-aq"]).ok(), containers_before);
    let tmp = env.data_root.join("builder/tmp");
    assert!(
        env.eventually(10, || std::fs::read_dir(&tmp).unwrap().count() == 0),
        "no scratch stays"
    );
    // A remote tar context.
    let r = docker_build(
        env,
        &dir,
        &["-t", "bt-remote-ctx", &format!("{base}/ctx.tar")],
        true,
        b"",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        env.berth(&["run", "--rm", "--network", "none", "bt-remote-ctx"])
            .ok(),
        "remote context"
    );
    let id = image_id(env, "bt-remote-ctx");
    assert!(id.starts_with("sha256:"), "{id}");
    env.berth(&["rmi", "bt-add-url", "bt-remote-ctx"]).ok();
}

/// Every file and directory under `dir` (relative), but the builder's cache index.
fn tree_of(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if rel.starts_with("containers")
                || rel.starts_with("network")
                || rel == "builder/cache.json"
            {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
            out.insert(rel);
        }
    }
    out
}

/// Issue 13: a context larger than the free disk (a data root on a small tmpfs) fails in one
/// clear line and leaves nothing (no context, scratch or layer); so does a `COPY` whose layer
/// the disk cannot hold; the builder works after both.
fn build_context_larger_than_the_disk_fails_cleanly(env: &TestEnv) {
    use crate::hardening::{SecondDaemon, TinyTmpfs};
    let tmpfs = TinyTmpfs::mount(
        std::path::PathBuf::from(format!("/tmp/bcd{}", std::process::id())),
        "48m",
    );
    let daemon = SecondDaemon::start(env, "c", &[], Some(&tmpfs.0));
    let dir = env.root.join("build/too-big");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nCOPY . /big/\n").unwrap();
    let free = tmpfs.free();
    let before = tree_of(&tmpfs.0);
    let write_big = |size: u64| {
        let mut f = std::fs::File::create(dir.join("big")).unwrap();
        let chunk = vec![7u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            std::io::Write::write_all(&mut f, &chunk[..n]).unwrap();
            left -= n as u64;
        }
    };
    let check_clean = |what: &str| {
        let settled = env.eventually(10, || tree_of(&tmpfs.0) == before);
        let now = tree_of(&tmpfs.0);
        assert!(
            settled,
            "{what} left: {:?} (gone: {:?})",
            now.difference(&before).collect::<Vec<_>>(),
            before.difference(&now).collect::<Vec<_>>()
        );
        assert!(
            tmpfs.free() + (1 << 20) >= free,
            "{what}: space was not given back"
        );
    };
    // More than the disk holds.
    write_big(free + (8 << 20));
    let out = daemon.berth(&["build", "-t", "too-big", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a context larger than the disk was built"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("build context is larger than the space left for it"),
        "{stderr}"
    );
    check_clean("a context larger than the disk");
    // A context that fits, but not twice: the COPY's layer cannot be written.
    write_big(free * 3 / 5);
    let out = daemon.berth(&["build", "-t", "too-big", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a layer larger than the disk was made"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0]
            .to_ascii_lowercase()
            .contains("no space left on device")
            || lines[0].contains("layer is larger than the"),
        "{stderr}"
    );
    check_clean("a layer larger than the disk");
    assert_ne!(
        daemon.berth(&["image", "inspect", "too-big"]).status.code(),
        Some(0)
    );
    // The builder works after.
    std::fs::remove_file(dir.join("big")).unwrap();
    std::fs::write(dir.join("small"), "small\n").unwrap();
    let out = daemon.berth(&["build", "-t", "small", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    drop(daemon);
    drop(tmpfs);
}

/// A private dockerd (its own data and exec roots, socket, cgroup parent; no bridge, no
/// iptables), stopped and removed with what it made when dropped.
struct PrivateDockerd {
    dir: std::path::PathBuf,
    child: std::process::Child,
    cgroup: String,
}

impl PrivateDockerd {
    fn start(env: &TestEnv) -> Option<PrivateDockerd> {
        let exe = std::path::Path::new("/usr/sbin/dockerd");
        crate::harness::docker_exe()?;
        if !exe.exists() {
            return None;
        }
        let dir = std::path::PathBuf::from(format!("/tmp/bdk{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cgroup = format!("bdk{}", std::process::id());
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new(exe)
            .arg("-H")
            .arg(format!("unix://{}", dir.join("s").display()))
            .arg("--data-root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("pid"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .arg(format!("--cgroup-parent=/{cgroup}"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .ok()?;
        let d = PrivateDockerd { dir, child, cgroup };
        let up = env.eventually(30, || {
            d.docker(&["version", "--format", "{{.Server.Version}}"])
                .status
                .success()
        });
        assert!(
            up,
            "dockerd did not come up: {}",
            std::fs::read_to_string(d.dir.join("log")).unwrap_or_default()
        );
        Some(d)
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new(crate::harness::docker_exe().unwrap())
            .args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.join("s").display()),
            )
            .env("DOCKER_CONFIG", self.dir.join("config"))
            .env_remove("DOCKER_API_VERSION")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run docker")
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.status.success(), "docker {args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        for sub in ["root", "exec"] {
            let _ = Command::new("umount")
                .arg("-R")
                .arg(self.dir.join(sub))
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(hierarchy.path().join(&self.cgroup));
        }
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{}", self.cgroup));
    }
}

/// Issue 13: an image built by berth, `berth save`d, loads into a real dockerd 20.10 with the
/// same id and layers, and runs there with the same config (Cmd, Env, history); and back:
/// dockerd's `save` of it loads into berth as the same image.
fn build_save_loads_and_runs_in_dockerd(env: &TestEnv) {
    let Some(dockerd) = PrivateDockerd::start(env) else {
        crate::skip(
            "dockerd (/usr/sbin/dockerd, scripts/deps.sh's docker.io) or the docker CLI is absent",
        );
    };
    let dir = context(
        env,
        "to-docker",
        &[
            (
                "Dockerfile",
                "FROM busybox\nENV GREETING=hello PATH=/usr/bin:/bin\nWORKDIR /app\nCOPY data.txt /app/\n\
                 RUN echo \"$GREETING from berth\" > /app/out\nLABEL made.by=berth\nEXPOSE 8080\n\
                 CMD [\"sh\", \"-c\", \"cat /app/out /app/data.txt\"]\n",
            ),
            ("data.txt", "some data\n"),
        ],
    );
    berth_build(env, &dir, &["--network", "none", "-t", "bt-to-docker:v1"]).ok();
    let id = image_id(env, "bt-to-docker:v1");
    std::fs::create_dir_all(env.root.join("build")).unwrap();
    let tar = env.root.join("build/to-docker.tar");
    env.berth(&["save", "-o", tar.to_str().unwrap(), "bt-to-docker:v1"])
        .ok();
    let loaded = dockerd.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: bt-to-docker:v1"), "{loaded}");
    let fmt = "{{.Id}}|{{json .Config.Cmd}}|{{json .Config.Env}}|{{.Config.WorkingDir}}|{{json .Config.Labels}}|{{json .Config.ExposedPorts}}|{{json .RootFS.Layers}}";
    let theirs = dockerd.ok(&["image", "inspect", "--format", fmt, "bt-to-docker:v1"]);
    let ours = env.inspect("bt-to-docker:v1", fmt);
    assert_eq!(
        theirs, ours,
        "dockerd reads the image as berth does (id = config digest, layers)"
    );
    assert!(theirs.starts_with(&id), "{theirs}");
    let history = |out: String| out.lines().count();
    let theirs_h = history(dockerd.ok(&["history", "-q", "--no-trunc", "bt-to-docker:v1"]));
    let ours_h = history(
        env.berth(&["history", "-q", "--no-trunc", "bt-to-docker:v1"])
            .ok(),
    );
    assert_eq!(theirs_h, ours_h, "history lines");
    let created_by = "{{.CreatedBy}}";
    assert_eq!(
        dockerd.ok(&[
            "history",
            "--no-trunc",
            "--format",
            created_by,
            "bt-to-docker:v1"
        ]),
        env.berth(&[
            "history",
            "--no-trunc",
            "--format",
            created_by,
            "bt-to-docker:v1"
        ])
        .ok()
    );
    let ran = dockerd.ok(&["run", "--rm", "--network", "none", "bt-to-docker:v1"]);
    assert_eq!(ran, "hello from berth\nsome data");
    // And back: dockerd's save of it is the same image in berth.
    let back = env.root.join("build/from-docker.tar");
    dockerd.ok(&["tag", "bt-to-docker:v1", "bt-from-docker:v1"]);
    dockerd.ok(&["save", "-o", back.to_str().unwrap(), "bt-from-docker:v1"]);
    env.berth(&["load", "-i", back.to_str().unwrap()]).ok();
    assert_eq!(image_id(env, "bt-from-docker:v1"), id);
    env.berth(&["rmi", "bt-to-docker:v1", "bt-from-docker:v1"])
        .ok();
    drop(dockerd);
}

/// The docker CLI's stdout of a legacy build, ids made `<id>`, without the context line.
fn shape(stdout: &str) -> Vec<String> {
    let ids = |line: &str| {
        line.split(' ')
            .map(|w| {
                if w.len() == 12 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                    "<id>"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    stdout
        .lines()
        .filter(|l| !l.starts_with("Sending build context"))
        .map(ids)
        .collect()
}

/// Issue 13: the docker CLI prints the same lines for a build against berth as against
/// dockerd 20.10's legacy builder, cold and cached: metadata steps, `WORKDIR` and `ARG`
/// show ` ---> Running in <id>` / `Removing intermediate container <id>` (a real container,
/// created and removed), `COPY` does not, cached steps show ` ---> Using cache`.
fn build_lines_are_dockerd_legacy_builders(env: &TestEnv) {
    let Some(dockerd) = PrivateDockerd::start(env) else {
        crate::skip(
            "dockerd (/usr/sbin/dockerd, scripts/deps.sh's docker.io) or the docker CLI is absent",
        );
    };
    // The same busybox on both sides.
    std::fs::create_dir_all(env.root.join("build")).unwrap();
    let tar = env.root.join("build/lines-busybox.tar");
    env.berth(&["save", "-o", tar.to_str().unwrap(), "busybox"])
        .ok();
    dockerd.ok(&["load", "-i", tar.to_str().unwrap()]);
    let dir = context(
        env,
        "lines",
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG V=1\nENV A=$V\nLABEL x=y\nWORKDIR /w\nCOPY f /w/\n\
                 RUN echo ran\nEXPOSE 80\nUSER 1\nCMD [\"sh\"]\n",
            ),
            ("f", "f\n"),
        ],
    );
    let on_dockerd = |extra: &[&str]| {
        let mut args = vec!["build", "--network", "none"];
        args.extend_from_slice(extra);
        args.push(".");
        let o = Command::new(crate::harness::docker_exe().unwrap())
            .args(&args)
            .current_dir(&dir)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", dockerd.dir.join("s").display()),
            )
            .env("DOCKER_CONFIG", dockerd.dir.join("config"))
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_API_VERSION")
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let on_berth = |extra: &[&str]| {
        let mut args = vec!["--network", "none"];
        args.extend_from_slice(extra);
        args.push(".");
        let r = docker_build(env, &dir, &args, true, b"");
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout
    };
    let containers_before = env.berth(&["ps", "-aq"]).ok();
    for (what, extra) in [("cold", &["--no-cache"][..]), ("cached", &[][..])] {
        let theirs = on_dockerd(extra);
        let ours = on_berth(extra);
        assert_eq!(
            shape(&ours),
            shape(&theirs),
            "{what}: berth\n{ours}\ndockerd\n{theirs}"
        );
    }
    assert_eq!(
        env.berth(&["ps", "-aq"]).ok(),
        containers_before,
        "step containers removed"
    );
    // rm=0 keeps every step's container, as dockerd does: they are real ones.
    let kept = on_berth(&["--no-cache", "--rm=false"]);
    let ids: Vec<&str> = kept
        .lines()
        .filter_map(|l| l.strip_prefix(" ---> Running in "))
        .collect();
    assert_eq!(ids.len(), 8, "{kept}");
    let all = env.berth(&["ps", "-aq"]).ok();
    for id in &ids {
        assert!(
            all.lines().any(|l| l.starts_with(id)),
            "{id} is not a container: {all}"
        );
        env.berth(&["rm", id]).ok();
    }
    drop(dockerd);
}
