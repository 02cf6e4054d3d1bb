//! Integration tests of `berth registry serve` and `berth registry gc`: the real docker CLI
//! through a private dockerd 20.10 (push, pull, login, search), skopeo both ways, Debian's
//! `docker-registry` (distribution 2.8) as the reference the stored bytes and digests are
//! compared with, TLS, a SIGKILL in the middle of an upload, garbage collection, and hostile
//! input. Every registry listens on 127.0.0.1 only; every image is built here.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Test;
use crate::archive::{Dockerd, TestImage};
use crate::harness::{TestEnv, berth_exe, tar_dir};

pub const TESTS: &[Test] = &[
    (
        "registry_docker_push_pull_search",
        registry_docker_push_pull_search,
    ),
    ("registry_docker_login_push", registry_docker_login_push),
    (
        "registry_skopeo_and_reference_registry",
        registry_skopeo_and_reference_registry,
    ),
    ("registry_tls", registry_tls),
    (
        "registry_survives_sigkill_mid_upload",
        registry_survives_sigkill_mid_upload,
    ),
    ("registry_gc", registry_gc),
    ("registry_refuses_bad_input", registry_refuses_bad_input),
];

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A `berth registry serve` of the test's own, on a port the kernel picked.
pub(crate) struct Registry {
    child: Option<Child>,
    dir: PathBuf,
    args: Vec<String>,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    scheme: &'static str,
}

impl Registry {
    pub(crate) fn start(env: &TestEnv, name: &str, args: &[&str]) -> Registry {
        let dir = env.root.join(format!("registry-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut registry = Registry {
            child: None,
            dir,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            addr: "127.0.0.1:0".to_owned(),
            scheme: "http",
        };
        registry.spawn();
        registry
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Starts the server (again, on the same port once it has one) and waits for its
    /// "listening on" line.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("registry.log"))
            .unwrap();
        let mut child = Command::new(berth_exe())
            .args(["registry", "serve", "--addr", &self.addr, "--root"])
            .arg(self.root())
            .args(&self.args)
            .env("BERTH_LOG", "berth_distribution=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn berth registry serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("berth registry: listening on ")
            .unwrap_or_else(|| panic!("no listening line: {line:?}; log: {}", self.log()));
        let (scheme, addr) = url.split_once("://").unwrap();
        self.scheme = if scheme == "https" { "https" } else { "http" };
        self.addr = addr.to_owned();
        self.child = Some(child);
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    fn signal(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, signal) };
            let _ = child.wait();
        }
    }

    /// Every file under the root, with its size (the registry's whole visible state).
    fn files(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut pending = vec![self.root()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if entry.file_type().unwrap().is_dir() {
                    pending.push(path);
                } else {
                    let rel = path.strip_prefix(self.root()).unwrap();
                    out.push((rel.display().to_string(), entry.metadata().unwrap().len()));
                }
            }
        }
        out.sort();
        out
    }

    pub(crate) fn blob_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root().join("blobs/sha256"))
            .unwrap()
            .flatten()
            .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian's `docker-registry` (distribution 2.8) on a loopback port, with its own config and
/// storage.
pub(crate) struct Distribution {
    child: Child,
    dir: PathBuf,
    pub(crate) addr: String,
}

impl Distribution {
    pub(crate) fn start(env: &TestEnv) -> Option<Distribution> {
        Self::start_with(env, "")
    }

    /// With `extra` appended to its configuration (an `auth:` section).
    pub(crate) fn start_with(env: &TestEnv, extra: &str) -> Option<Distribution> {
        let exe = Path::new("/usr/bin/docker-registry");
        if !exe.exists() {
            return None;
        }
        let dir = env.root.join("distribution");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: berth-tests\n{extra}",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(exe)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let distribution = Distribution { child, dir, addr };
        let up = env.eventually(20, || {
            curl(&[
                "-o",
                "/dev/null",
                &format!("http://{}/v2/", distribution.addr),
            ])
            .status
                == if extra.contains("htpasswd") { 401 } else { 200 }
        });
        assert!(up, "docker-registry did not come up");
        Some(distribution)
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free right now on 127.0.0.1 (for servers that cannot report the one they got).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What curl got.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Runs curl with `args` (the URL among them); the body goes to a temp file.
fn curl(args: &[&str]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-s", "-S", "-m", "60", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let headers = std::fs::read_to_string(&headers)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    // `-o` of a request with no body creates no file.
    let body = std::fs::read(&body).unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// Uploads `bytes` to `repo` in one request.
fn put_blob(registry: &Registry, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let reply = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", file.path().display()),
        "-H",
        "Content-Type: application/octet-stream",
        &registry.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")),
    ]);
    assert_eq!(reply.status, 201, "{reply:?}");
    digest
}

fn put_manifest(
    registry: &Registry,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Reply {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    curl(&[
        "-X",
        "PUT",
        "--data-binary",
        &format!("@{}", file.path().display()),
        "-H",
        &format!("Content-Type: {media_type}"),
        &registry.url(&format!("/v2/{repo}/manifests/{reference}")),
    ])
}

/// A busybox root filesystem tar (with the applets the tests run) for `docker import`.
fn busybox_rootfs(env: &TestEnv, name: &str) -> PathBuf {
    let dir = env.root.join(format!("rootfs-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "echo"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(dir.join("hello"), format!("hello from {name}\n")).unwrap();
    let tar = dir.with_extension("tar");
    tar_dir(&dir, &tar);
    std::fs::remove_dir_all(&dir).unwrap();
    tar
}

/// skopeo, when installed.
fn skopeo(args: &[&str]) -> Option<crate::harness::Run> {
    let exe = Path::new("/usr/bin/skopeo");
    if !exe.exists() {
        return None;
    }
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("skopeo");
    Some(crate::harness::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

// One end-to-end scenario against real clients: each step builds on the last.
#[allow(clippy::too_many_lines)]
fn registry_docker_push_pull_search(env: &TestEnv) {
    let Some(dockerd) = Dockerd::start(env) else {
        eprintln!("dockerd or the docker CLI not installed: skipping");
        return;
    };
    let registry = Registry::start(env, "docker", &[]);
    let addr = registry.addr.clone();
    let image = format!("{addr}/team/webtool:1");
    let rootfs = busybox_rootfs(env, "webtool");
    dockerd
        .docker(
            env,
            &[
                "import",
                "-c",
                "CMD [\"sh\"]",
                "-c",
                "LABEL org.opencontainers.image.description=\"A small web tool\"",
                rootfs.to_str().unwrap(),
                &image,
            ],
        )
        .ok();
    let push = dockerd.docker(env, &["push", &image]);
    let pushed = push.ok();
    let digest = pushed
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in push output: {pushed}; {}", registry.log()))
        .to_owned();
    // The registry serves exactly what dockerd computed.
    let reply = curl(&[
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json",
        &registry.url("/v2/team/webtool/manifests/1"),
    ]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Docker-Content-Digest"), digest);
    assert_eq!(sha256(&reply.body), digest);
    let manifest = reply.json();
    for blob in std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap()) {
        let d = blob["digest"].as_str().unwrap();
        let got = curl(&[&registry.url(&format!("/v2/team/webtool/blobs/{d}"))]);
        assert_eq!((got.status, sha256(&got.body)), (200, d.to_owned()));
        assert_eq!(got.body.len() as u64, blob["size"].as_u64().unwrap());
    }
    // A second push of the same image sends nothing ("Layer already exists").
    let again = dockerd.docker(env, &["push", &image]).ok();
    assert!(again.contains("Layer already exists"), "{again}");

    // Pull into an engine without the image, and run it.
    dockerd.docker(env, &["rmi", &image]).ok();
    let pulled = dockerd.docker(env, &["pull", &image]).ok();
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    let repo_digests = dockerd
        .docker(
            env,
            &["image", "inspect", "-f", "{{json .RepoDigests}}", &image],
        )
        .ok();
    assert!(repo_digests.contains(&digest), "{repo_digests}");
    let run = dockerd.docker(
        env,
        &["run", "--rm", "--network", "none", &image, "cat", "/hello"],
    );
    assert_eq!(run.ok(), "hello from webtool");

    // Search, through the unmodified docker CLI and dockerd.
    let other = format!("{addr}/tools/other:latest");
    dockerd.docker(env, &["tag", &image, &other]).ok();
    dockerd.docker(env, &["push", &other]).ok();
    let search = dockerd
        .docker(
            env,
            &[
                "search",
                "--format",
                "{{.Name}}|{{.Description}}|{{.StarCount}}",
                &format!("{addr}/webtool"),
            ],
        )
        .ok();
    assert_eq!(search, "team/webtool|A small web tool|0");
    let search = dockerd
        .docker(
            env,
            &[
                "search",
                "--format",
                "{{.Name}}",
                "--limit",
                "1",
                &format!("{addr}/o"),
            ],
        )
        .ok();
    assert_eq!(search.lines().count(), 1, "{search}");
    let search = dockerd
        .docker(
            env,
            &[
                "search",
                "--format",
                "{{.Name}}",
                &format!("{addr}/small web"),
            ],
        )
        .ok();
    // Both repositories hold the image described so; neither name matches.
    assert_eq!(
        search, "team/webtool\ntools/other",
        "descriptions match too"
    );
    let catalog = curl(&[&registry.url("/v2/_catalog")]).json();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["team/webtool", "tools/other"])
    );
    for name in [&image, &other] {
        dockerd.docker(env, &["rmi", name]).ok();
    }
    let _ = std::fs::remove_file(rootfs);
}

// One end-to-end scenario against real clients: each step builds on the last.
#[allow(clippy::too_many_lines)]
fn registry_docker_login_push(env: &TestEnv) {
    let Some(dockerd) = Dockerd::start(env) else {
        eprintln!("dockerd or the docker CLI not installed: skipping");
        return;
    };
    let htpasswd = env.root.join("registry-htpasswd");
    let made = Command::new("htpasswd")
        .args(["-B", "-b", "-c"])
        .arg(&htpasswd)
        .args(["alice", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils)");
    assert!(made.status.success(), "{made:?}");
    let mut registry = Registry::start(env, "auth", &["--htpasswd", htpasswd.to_str().unwrap()]);
    let addr = registry.addr.clone();
    let image = format!("{addr}/private/app:1");
    let rootfs = busybox_rootfs(env, "private");
    dockerd
        .docker(env, &["import", rootfs.to_str().unwrap(), &image])
        .ok();

    // /v2/ challenges.
    let ping = curl(&[&registry.url("/v2/")]);
    assert_eq!(ping.status, 401);
    assert_eq!(
        ping.header("WWW-Authenticate"),
        format!("Bearer realm=\"http://{addr}/token\",service=\"berth-registry\"")
    );
    // No credentials: the push is refused and nothing is stored.
    let push = dockerd.docker(env, &["push", &image]);
    assert_ne!(push.code, 0);
    assert!(
        push.stderr.contains("denied") || push.stderr.contains("unauthorized"),
        "{push:?}"
    );
    assert!(registry.blob_files().is_empty());
    // A wrong password: one line, exit 1.
    let login = env
        .docker_stdin(
            &[
                "-H",
                &dockerd.host,
                "login",
                "-u",
                "alice",
                "--password-stdin",
                &addr,
            ],
            b"wrong\n",
        )
        .unwrap();
    assert_eq!(login.code, 1, "{login:?}");
    assert!(login.stderr.contains("unauthorized"), "{login:?}");
    let login = env
        .docker_stdin(
            &[
                "-H",
                &dockerd.host,
                "login",
                "-u",
                "alice",
                "--password-stdin",
                &addr,
            ],
            b"s3cret\n",
        )
        .unwrap();
    assert!(login.stdout.contains("Login Succeeded"), "{login:?}");
    let pushed = dockerd.docker(env, &["push", &image]).ok();
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    dockerd.docker(env, &["rmi", &image]).ok();
    dockerd.docker(env, &["pull", &image]).ok();
    let search = dockerd
        .docker(
            env,
            &["search", "--format", "{{.Name}}", &format!("{addr}/app")],
        )
        .ok();
    assert_eq!(search, "private/app");
    // Logged out: no pull without --anonymous-pull …
    dockerd.docker(env, &["logout", &addr]).ok();
    dockerd.docker(env, &["rmi", &image]).ok();
    let pull = dockerd.docker(env, &["pull", &image]);
    assert_ne!(pull.code, 0, "{pull:?}");
    // … and with it, anonymous pulls (through an anonymous token) but still no push.
    registry.signal(libc::SIGTERM);
    registry.args.push("--anonymous-pull".to_owned());
    registry.spawn();
    dockerd.docker(env, &["pull", &image]).ok();
    let run = dockerd.docker(
        env,
        &["run", "--rm", "--network", "none", &image, "cat", "/hello"],
    );
    assert_eq!(run.ok(), "hello from private");
    let other = format!("{addr}/private/other:1");
    dockerd.docker(env, &["tag", &image, &other]).ok();
    let push = dockerd.docker(env, &["push", &other]);
    assert_ne!(push.code, 0, "{push:?}");
    assert!(push.stderr.contains("denied"), "{push:?}");
    dockerd.docker(env, &["rmi", &other]).ok();
    dockerd.docker(env, &["rmi", &image]).ok();
    // Basic credentials work with plain HTTP clients as well.
    let tags = curl(&[
        "-u",
        "alice:s3cret",
        &registry.url("/v2/private/app/tags/list"),
    ]);
    assert_eq!(tags.json()["tags"], serde_json::json!(["1"]));
    assert_eq!(
        curl(&[
            "-u",
            "alice:nope",
            &registry.url("/v2/private/app/tags/list")
        ])
        .status,
        401
    );
    let _ = std::fs::remove_file(rootfs);
    let _ = std::fs::remove_file(htpasswd);
}

// One end-to-end scenario against real clients: each step builds on the last.
#[allow(clippy::too_many_lines)]
fn registry_skopeo_and_reference_registry(env: &TestEnv) {
    let Some(distribution) = Distribution::start(env) else {
        eprintln!("docker-registry not installed: skipping");
        return;
    };
    if skopeo(&["--version"]).is_none() {
        eprintln!("skopeo not installed: skipping");
        return;
    }
    let registry = Registry::start(env, "skopeo", &[]);
    let dir = env.root.join("registry-skopeo-work");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let image = TestImage::new(env, "skopeo");
    let archive = dir.join("image.tar");
    std::fs::write(
        &archive,
        image.docker_archive(&["skopeo/img:1"], &|l: &[u8]| l.to_vec()),
    )
    .unwrap();
    let copy = |from: &str, to: &str, extra: &[&str]| {
        let mut args = vec!["copy", "--src-tls-verify=false", "--dest-tls-verify=false"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[from, to]);
        let run = skopeo(&args).unwrap();
        assert_eq!(
            run.code,
            0,
            "skopeo copy {from} {to}: {run:?}\n{}",
            registry.log()
        );
    };
    let berth = |path: &str| format!("docker://{}/{path}", registry.addr);
    let reference = |path: &str| format!("docker://{}/{path}", distribution.addr);

    // docker-archive → distribution → berth → distribution: the same manifest and blobs
    // everywhere.
    copy(
        &format!("docker-archive:{}", archive.display()),
        &reference("ref/img:1"),
        &[],
    );
    copy(&reference("ref/img:1"), &berth("copy/img:1"), &[]);
    copy(&berth("copy/img:1"), &reference("back/img:1"), &[]);
    let raw = |url: &str| {
        skopeo(&["inspect", "--raw", "--tls-verify=false", url])
            .unwrap()
            .ok()
    };
    let manifest = raw(&reference("ref/img:1"));
    assert_eq!(
        raw(&berth("copy/img:1")),
        manifest,
        "berth stores the reference's bytes"
    );
    assert_eq!(raw(&reference("back/img:1")), manifest);
    let digest = sha256(manifest.as_bytes());
    let from_berth = curl(&[
        "-I",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json",
        &registry.url("/v2/copy/img/manifests/1"),
    ]);
    let from_reference = curl(&[
        "-I",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json",
        &format!("http://{}/v2/ref/img/manifests/1", distribution.addr),
    ]);
    assert_eq!(from_berth.header("Docker-Content-Digest"), digest);
    assert_eq!(from_reference.header("Docker-Content-Digest"), digest);
    let doc: Value = serde_json::from_str(&manifest).unwrap();
    for blob in std::iter::once(&doc["config"]).chain(doc["layers"].as_array().unwrap()) {
        let d = blob["digest"].as_str().unwrap();
        let ours = curl(&[&registry.url(&format!("/v2/copy/img/blobs/{d}"))]);
        let theirs = curl(&[&format!(
            "http://{}/v2/ref/img/blobs/{d}",
            distribution.addr
        )]);
        assert_eq!(ours.status, 200);
        assert_eq!(ours.body, theirs.body, "{d}");
        assert_eq!(
            ours.header("Docker-Content-Digest"),
            theirs.header("Docker-Content-Digest")
        );
        assert_eq!(
            ours.header("Content-Length"),
            theirs.header("Content-Length")
        );
    }
    // The config is the test's own bytes.
    assert_eq!(doc["config"]["digest"].as_str().unwrap(), image.id());

    // berth → dir: and dir: → berth, and an OCI copy (an OCI manifest through both).
    let out = dir.join("out");
    copy(&berth("copy/img:1"), &format!("dir:{}", out.display()), &[]);
    assert_eq!(
        std::fs::read_to_string(out.join("manifest.json")).unwrap(),
        manifest
    );
    copy(
        &format!("dir:{}", out.display()),
        &berth("fromdir/img:2"),
        &[],
    );
    assert_eq!(raw(&berth("fromdir/img:2")), manifest);
    copy(
        &reference("ref/img:1"),
        &reference("ref/oci:1"),
        &["--format", "oci"],
    );
    copy(&reference("ref/oci:1"), &berth("copy/oci:1"), &[]);
    let oci = raw(&reference("ref/oci:1"));
    assert!(
        oci.contains("application/vnd.oci.image.manifest.v1+json"),
        "{oci}"
    );
    assert_eq!(raw(&berth("copy/oci:1")), oci);
    let back = dir.join("back.tar");
    copy(
        &berth("copy/oci:1"),
        &format!("docker-archive:{}:back/oci:1", back.display()),
        &[],
    );
    assert!(back.exists());
    // Each blob was stored once, whatever the repositories holding it, and nothing else.
    let mut referenced = std::collections::BTreeSet::new();
    for (repo, tag) in [("copy/img", "1"), ("fromdir/img", "2"), ("copy/oci", "1")] {
        let reply = curl(&[
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            &registry.url(&format!("/v2/{repo}/manifests/{tag}")),
        ]);
        assert_eq!(reply.status, 200, "{repo}:{tag}");
        referenced.insert(sha256(&reply.body));
        let doc = reply.json();
        for blob in std::iter::once(&doc["config"]).chain(doc["layers"].as_array().unwrap()) {
            referenced.insert(blob["digest"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        registry.blob_files(),
        referenced.into_iter().collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn registry_tls(env: &TestEnv) {
    let dir = env.root.join("registry-tls-certs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let registry = Registry::start(
        env,
        "tls",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(registry.scheme, "https");
    let cacert = cert.to_str().unwrap();
    let ping = curl(&["--cacert", cacert, &registry.url("/v2/")]);
    assert_eq!(ping.status, 200);
    assert_eq!(
        ping.header("Docker-Distribution-API-Version"),
        "registry/2.0"
    );
    let digest = sha256(b"over tls");
    let file = dir.join("blob");
    std::fs::write(&file, b"over tls").unwrap();
    let reply = curl(&[
        "--cacert",
        cacert,
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", file.display()),
        &registry.url(&format!("/v2/t/blobs/uploads/?digest={digest}")),
    ]);
    assert_eq!(reply.status, 201);
    let got = curl(&[
        "--cacert",
        cacert,
        &registry.url(&format!("/v2/t/blobs/{digest}")),
    ]);
    assert_eq!(got.body, b"over tls");
    // A client that does not trust the certificate, and one speaking plain HTTP, get nothing.
    assert_eq!(curl(&[&registry.url("/v2/")]).status, 0);
    assert_eq!(curl(&[&format!("http://{}/v2/", registry.addr)]).status, 0);
    // A key that does not parse: one line, exit 1.
    std::fs::write(dir.join("bad.pem"), "not a key").unwrap();
    let out = Command::new(berth_exe())
        .args(["registry", "serve", "--addr", "127.0.0.1:0", "--root"])
        .arg(dir.join("root"))
        .args(["--tls-cert", cacert, "--tls-key"])
        .arg(dir.join("bad.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TLS key"), "{stderr}");
    drop(registry);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends the head of a PATCH with `Content-Length: total` and `sent` body bytes, and leaves
/// the request unfinished.
fn partial_patch(registry: &Registry, location: &str, total: usize, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(&registry.addr).unwrap();
    write!(
        stream,
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n",
        registry.addr
    )
    .unwrap();
    stream.write_all(sent).unwrap();
    stream.flush().unwrap();
    stream
}

fn registry_survives_sigkill_mid_upload(env: &TestEnv) {
    let mut registry = Registry::start(env, "kill", &[]);
    let content: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256(&content);
    let session = curl(&["-X", "POST", &registry.url("/v2/k/blobs/uploads/")]);
    assert_eq!(session.status, 202);
    let location = session.header("Location");
    // Half the blob arrives, then the server is killed in the middle of the request.
    let half = content.len() / 2;
    let stream = partial_patch(&registry, &location, content.len(), &content[..half]);
    let received = env.eventually(10, || {
        std::fs::read_dir(registry.root().join("uploads"))
            .unwrap()
            .flatten()
            .any(|e| std::fs::metadata(e.path().join("data")).is_ok_and(|m| m.len() == half as u64))
    });
    assert!(received, "the first half reached the session file");
    registry.signal(libc::SIGKILL);
    drop(stream);
    // Nothing half-written is visible: no blob, before or after a restart.
    assert!(registry.blob_files().is_empty(), "{:?}", registry.files());
    registry.spawn();
    assert_eq!(
        curl(&["-I", &registry.url(&format!("/v2/k/blobs/{digest}"))]).status,
        404
    );
    // The session survived: resume where it stands.
    let status = curl(&[&registry.url(&location)]);
    assert_eq!(status.status, 204, "{status:?}");
    assert_eq!(status.header("Range"), format!("0-{}", half - 1));
    let rest = env.root.join("registry-kill-rest");
    std::fs::write(&rest, &content[half..]).unwrap();
    let patch = curl(&[
        "-X",
        "PATCH",
        "-H",
        &format!("Content-Range: {half}-{}", content.len() - 1),
        "--data-binary",
        &format!("@{}", rest.display()),
        &registry.url(&location),
    ]);
    assert_eq!(patch.status, 202, "{patch:?}");
    let done = curl(&[
        "-X",
        "PUT",
        &registry.url(&format!("{location}?digest={digest}")),
    ]);
    assert_eq!(done.status, 201, "{done:?}");
    let got = curl(&[&registry.url(&format!("/v2/k/blobs/{digest}"))]);
    assert_eq!(sha256(&got.body), digest);

    // Killed during a monolithic upload: nothing visible; the upload can simply be redone.
    let other: Vec<u8> = content.iter().rev().copied().collect();
    let other_digest = sha256(&other);
    let mut stream = TcpStream::connect(&registry.addr).unwrap();
    write!(
        stream,
        "POST /v2/k/blobs/uploads/?digest={other_digest} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        other.len()
    )
    .unwrap();
    stream.write_all(&other[..half]).unwrap();
    let blobs = registry.blob_files();
    let partial = env.eventually(10, || {
        std::fs::read_dir(registry.root().join("uploads"))
            .unwrap()
            .flatten()
            .any(|e| std::fs::metadata(e.path().join("data")).is_ok_and(|m| m.len() > 0))
    });
    assert!(partial);
    registry.signal(libc::SIGKILL);
    drop(stream);
    registry.spawn();
    assert_eq!(registry.blob_files(), blobs);
    assert_eq!(
        curl(&["-I", &registry.url(&format!("/v2/k/blobs/{other_digest}"))]).status,
        404
    );
    assert_eq!(put_blob(&registry, "k", &other), other_digest);

    // A blob whose bytes do not match its digest is refused and leaves nothing.
    let before = registry.files();
    std::fs::write(&rest, b"tampered").unwrap();
    let reply = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", rest.display()),
        &registry.url(&format!(
            "/v2/k/blobs/uploads/?digest={}",
            sha256(b"original")
        )),
    ]);
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (400, "DIGEST_INVALID")
    );
    let after: Vec<_> = registry
        .files()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("uploads/"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| !p.starts_with("uploads/"))
        .collect();
    assert_eq!(after, before);
    let _ = std::fs::remove_file(rest);
}

// One end-to-end scenario against real clients: each step builds on the last.
#[allow(clippy::too_many_lines)]
fn registry_gc(env: &TestEnv) {
    let registry = Registry::start(env, "gc", &[]);
    let config = put_blob(
        &registry,
        "app",
        br#"{"architecture":"amd64","os":"linux"}"#,
    );
    let shared = put_blob(&registry, "app", b"shared base layer");
    let only_old = put_blob(&registry, "app", b"layer only the old image has");
    let orphan = put_blob(&registry, "app", b"uploaded, never referenced");
    let manifest = |layers: &[&str]| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 37},
            "layers": layers.iter().map(|d| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": 1})).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    let media = "application/vnd.oci.image.manifest.v1+json";
    let old = manifest(&[&shared, &only_old]);
    let new = manifest(&[&shared]);
    assert_eq!(
        put_manifest(&registry, "app", "old", media, &old).status,
        201
    );
    assert_eq!(
        put_manifest(&registry, "app", "new", media, &new).status,
        201
    );
    let untagged = manifest(&[]);
    assert_eq!(
        put_manifest(&registry, "app", &sha256(&untagged), media, &untagged).status,
        201
    );
    let gc = |args: &[&str]| {
        let out = Command::new(berth_exe())
            .args(["registry", "gc", "--root"])
            .arg(registry.root())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Within the default grace period (1h) nothing goes.
    let report = gc(&[]);
    assert!(
        report.contains("0 manifests and 0 blobs deleted"),
        "{report}"
    );
    // Dry: reported, kept.
    let report = gc(&["--dry-run", "--grace", "0s"]);
    assert!(
        report.contains(&format!("blob eligible for deletion: {orphan}")),
        "{report}"
    );
    assert!(registry.blob_files().contains(&orphan));
    // Delete the old tag's manifest through the API, then collect while the server runs.
    let deleted = curl(&[
        "-X",
        "DELETE",
        &registry.url(&format!("/v2/app/manifests/{}", sha256(&old))),
    ]);
    assert_eq!(deleted.status, 202);
    let report = gc(&["--grace", "0s"]);
    let blobs = registry.blob_files();
    for gone in [&orphan, &only_old, &sha256(&old)] {
        assert!(!blobs.contains(gone), "{gone} collected: {report}");
    }
    for kept in [&config, &shared, &sha256(&new), &sha256(&untagged)] {
        assert!(blobs.contains(kept), "{kept} kept: {report}");
    }
    assert_eq!(
        curl(&[&registry.url(&format!("/v2/app/blobs/{only_old}"))]).status,
        404
    );
    let pulled = curl(&[
        "-H",
        &format!("Accept: {media}"),
        &registry.url("/v2/app/manifests/new"),
    ]);
    assert_eq!(pulled.body, new);
    assert_eq!(
        curl(&[&registry.url(&format!("/v2/app/blobs/{shared}"))]).body,
        b"shared base layer"
    );
    // -m: the untagged manifest goes too.
    let report = gc(&["-m", "--grace", "0s"]);
    assert!(
        report.contains(&format!("manifest deleted: app@{}", sha256(&untagged))),
        "{report}"
    );
    assert!(!registry.blob_files().contains(&sha256(&untagged)));
    // A directory that holds no registry is refused, and left as it was.
    let elsewhere = env.root.join("registry-gc-not-a-root");
    let out = Command::new(berth_exe())
        .args(["registry", "gc", "--root"])
        .arg(&elsewhere)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a registry root"));
    assert!(!elsewhere.exists());
    // The server goes on serving and accepting pushes after a collection.
    put_blob(&registry, "app", b"after gc");
    assert_eq!(
        put_manifest(&registry, "app", "old", media, &old).code(),
        "MANIFEST_BLOB_UNKNOWN"
    );
}

fn registry_refuses_bad_input(env: &TestEnv) {
    let registry = Registry::start(env, "bad", &[]);
    let canary = env.root.join("registry-canary");
    std::fs::write(&canary, b"untouched").unwrap();
    let config = put_blob(&registry, "ok", b"{}");
    let before = registry.files();
    let digest = sha256(b"x");
    // Names that could climb out of the root, or break the grammar.
    for path in [
        format!("/v2/..%2F..%2Fregistry-canary/blobs/uploads/?digest={digest}"),
        format!("/v2/ok/..%2f..%2f..%2fetc/blobs/uploads/?digest={digest}"),
        format!("/v2/%2e%2e/blobs/uploads/?digest={digest}"),
        format!("/v2/Upper/blobs/uploads/?digest={digest}"),
        format!("/v2/a%00b/blobs/uploads/?digest={digest}"),
    ] {
        let reply = curl(&[
            "--path-as-is",
            "-X",
            "POST",
            "--data-binary",
            "x",
            &registry.url(&path),
        ]);
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (400, "NAME_INVALID"),
            "{path}"
        );
    }
    let reply = curl(&["--path-as-is", &registry.url("/v2/../../etc/passwd")]);
    assert!(matches!(reply.status, 400 | 404), "{reply:?}");
    // A digest that is not one.
    let reply = curl(&[
        "-X",
        "POST",
        "--data-binary",
        "x",
        &registry.url("/v2/ok/blobs/uploads/?digest=sha256:..%2F..%2Fx"),
    ]);
    assert_eq!(reply.code(), "DIGEST_INVALID");
    // Manifests: too large, unknown media type, a missing blob.
    let media = "application/vnd.oci.image.manifest.v1+json";
    let huge = format!(
        "{{\"schemaVersion\":2,\"config\":{{\"digest\":\"{config}\",\"size\":2}},\"layers\":[],\"annotations\":{{\"x\":\"{}\"}}}}",
        "y".repeat(4 * 1024 * 1024)
    );
    let reply = put_manifest(&registry, "ok", "huge", media, huge.as_bytes());
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (413, "MANIFEST_INVALID")
    );
    let small = format!(
        "{{\"schemaVersion\":2,\"config\":{{\"digest\":\"{config}\",\"size\":2}},\"layers\":[]}}"
    );
    let reply = put_manifest(
        &registry,
        "ok",
        "odd",
        "application/x-not-a-manifest",
        small.as_bytes(),
    );
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (400, "MANIFEST_INVALID")
    );
    let missing = format!(
        "{{\"schemaVersion\":2,\"config\":{{\"digest\":\"{config}\",\"size\":2}},\"layers\":[{{\"digest\":\"{digest}\",\"size\":1}}]}}"
    );
    let reply = put_manifest(&registry, "ok", "missing", media, missing.as_bytes());
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    // A read-only registry refuses writes.
    let read_only = Registry::start(env, "bad-ro", &["--read-only"]);
    let reply = curl(&["-X", "POST", &read_only.url("/v2/ok/blobs/uploads/")]);
    assert_eq!((reply.status, reply.code().as_str()), (405, "UNSUPPORTED"));
    drop(read_only);
    // None of it changed anything.
    let after: Vec<_> = registry
        .files()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("uploads/"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _)| !p.starts_with("uploads/"))
        .collect();
    assert_eq!(after, before);
    assert!(
        std::fs::read_dir(registry.root().join("uploads"))
            .unwrap()
            .next()
            .is_none(),
        "refused uploads leave no session"
    );
    assert_eq!(std::fs::read(&canary).unwrap(), b"untouched");
    let mut text = String::new();
    std::fs::File::open(registry.dir.join("registry.log"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(!text.contains("panicked"), "{text}");
    let _ = std::fs::remove_file(canary);
}
