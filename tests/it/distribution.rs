//! Integration tests of the registry client under conditions of its own daemon: a data root
//! that fills up mid-pull, `--registry-mirror` for `docker.io` names, an insecure registry on a
//! non-loopback address (a network namespace the test makes, 198.18.0.0/30 of the benchmark
//! range), and the builder pulling a base image with the client's credentials
//! (`X-Registry-Config`). Every registry is one the test starts; nothing leaves the machine.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::Test;
use crate::hardening::{SecondDaemon, TinyTmpfs};
use crate::harness::{TestEnv, berth_exe};
use crate::registry::Registry;

pub const TESTS: &[Test] = &[
    (
        "pull_full_disk_leaves_nothing",
        pull_full_disk_leaves_nothing,
    ),
    ("pull_registry_mirror", pull_registry_mirror),
    (
        "pull_insecure_registry_off_loopback",
        pull_insecure_registry_off_loopback,
    ),
    (
        "pull_build_uses_registry_config",
        pull_build_uses_registry_config,
    ),
];

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    )
}

/// `berth ARGS` against `daemon`, which must succeed; its stdout.
fn ok(daemon: &SecondDaemon, args: &[&str]) -> String {
    let output = daemon.berth(args);
    assert!(output.status.success(), "berth {args:?}: {output:?}");
    text(&output).0
}

/// Commits `layers` layers of `mib` MiB of random bytes each on busybox as `image`, pushes it
/// and removes it from the test daemon.
fn random_layers_image(env: &TestEnv, image: &str, layers: usize, mib: usize) {
    let mut base = "busybox".to_owned();
    for i in 0..layers {
        let container = format!("dist-layers-{i}");
        env.berth(&[
            "run",
            "--name",
            &container,
            &base,
            "sh",
            "-c",
            &format!("head -c {} /dev/urandom > /random{i}", mib << 20),
        ])
        .ok();
        let step = format!("{image}-step{i}");
        env.berth(&["commit", &container, &step]).ok();
        env.berth(&["rm", &container]).ok();
        base = step;
    }
    env.berth(&["tag", &base, image]).ok();
    env.berth(&["push", "-q", image]).ok();
    env.berth(&["rmi", image]).ok();
    for i in (0..layers).rev() {
        env.berth(&["rmi", &format!("{image}-step{i}")]).ok();
    }
}

/// The image store's visible and staging state: layers, blobs, image records, ingest files.
fn store_state(store: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["layers", "blobs/sha256", "images", "ingest"] {
        let mut names: Vec<String> = std::fs::read_dir(store.join(dir))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        out.extend(names);
    }
    out
}

/// Issue 12: the disk filling mid-pull. Three layers of 8 MiB random bytes, pulled at once
/// into a data root with ~30 MiB free (each fits alone, the three do not): one line with
/// Docker's words, no layer, blob, record or ingest file left; with the space freed, the same
/// pull succeeds.
fn pull_full_disk_leaves_nothing(env: &TestEnv) {
    let registry = Registry::start(env, "dist-full", &[]);
    let image = format!("{}/full/app:1", registry.addr);
    random_layers_image(env, &image, 3, 8);
    let tmpfs = TinyTmpfs::mount(
        PathBuf::from(format!("/tmp/bfull{}", std::process::id())),
        "96m",
    );
    let daemon = SecondDaemon::start(env, "pf", &[], Some(&tmpfs.0));
    let store = tmpfs.0.join("image");
    let before = store_state(&store);
    let filler = tmpfs.0.join("filler");
    let free = tmpfs.free();
    std::fs::write(&filler, vec![0u8; (free - (30 << 20)) as usize]).unwrap();
    let pull = daemon.berth(&["pull", &image]);
    let (stdout, stderr) = text(&pull);
    let after = store_state(&store);
    let images = ok(&daemon, &["images", "-q"]);
    std::fs::remove_file(&filler).unwrap();
    let again = daemon.berth(&["pull", "-q", &image]);
    let content = daemon.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "ls",
        "/random0",
        "/random1",
        "/random2",
    ]);
    drop(daemon);
    drop(tmpfs);
    assert!(!pull.status.success(), "the pull fit: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.to_lowercase().contains("no space left on device"),
        "{stderr}"
    );
    assert_eq!(after, before, "the failed pull left something");
    assert_eq!(images.lines().count(), 1, "only busybox: {images}");
    assert!(again.status.success(), "{again:?}");
    assert!(content.status.success(), "{content:?}");
}

/// Issue 12: `--registry-mirror` (and daemon.json `registry-mirrors`): a `docker.io` name is
/// pulled from the mirror, which holds it as `library/NAME`; a name the mirror lacks falls
/// back to the hub (here the harness's dead `--registry-hub`, so the error names it), as
/// dockerd does.
fn pull_registry_mirror(env: &TestEnv) {
    let mirror = Registry::start(env, "dist-mirror", &[]);
    random_layers_image(env, &format!("{}/library/mirrored:1", mirror.addr), 1, 1);
    let url = format!("http://{}", mirror.addr);
    let flag = SecondDaemon::start_flags(env, "mf", None, &["--registry-mirror", &url]);
    let config = env.root.join("dist-mirror.json");
    std::fs::write(&config, format!("{{\"registry-mirrors\": [\"{url}\"]}}\n")).unwrap();
    let file = SecondDaemon::start_flags(
        env,
        "mc",
        None,
        &["--config-file", config.to_str().unwrap()],
    );
    for daemon in [&flag, &file] {
        let pulled = ok(daemon, &["pull", "mirrored:1"]);
        assert!(
            pulled.contains("Downloaded newer image for mirrored:1"),
            "{pulled}"
        );
        assert!(
            ok(daemon, &["images", "--format", "{{.Repository}}:{{.Tag}}"])
                .lines()
                .any(|l| l == "mirrored:1")
        );
        let missing = daemon.berth(&["pull", "not-on-the-mirror:1"]);
        let (_, stderr) = text(&missing);
        assert!(!missing.status.success());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
    }
}

/// A network namespace with a veth pair: the host side 198.18.0.1/30, the namespace's
/// 198.18.0.2/30. Removed (with the pair) when dropped.
struct Netns {
    name: String,
    host_link: String,
}

impl Netns {
    fn create() -> Netns {
        let id = std::process::id();
        let netns = Netns {
            name: format!("bdn{id}"),
            host_link: format!("bdh{id}"),
        };
        let peer = format!("bdp{id}");
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &netns.name],
            vec![
                "link",
                "add",
                &netns.host_link,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "netns",
                &netns.name,
            ],
            vec!["addr", "add", "198.18.0.1/30", "dev", &netns.host_link],
            vec!["link", "set", &netns.host_link, "up"],
            vec![
                "-n",
                &netns.name,
                "addr",
                "add",
                "198.18.0.2/30",
                "dev",
                &peer,
            ],
            vec!["-n", &netns.name, "link", "set", &peer, "up"],
            vec!["-n", &netns.name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            let status = Command::new("ip").args(&step).status().unwrap();
            assert!(status.success(), "ip {step:?}");
        }
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `berth registry serve` inside `netns` on 198.18.0.2:5000, over `root`; stopped when dropped.
struct NetnsRegistry(Child);

impl NetnsRegistry {
    fn start(netns: &Netns, root: &Path) -> NetnsRegistry {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &netns.name])
            .arg(berth_exe())
            .args(["registry", "serve", "--addr", "198.18.0.2:5000", "--root"])
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("listening on"), "{line:?}");
        NetnsRegistry(child)
    }
}

impl Drop for NetnsRegistry {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Issue 12: a registry on a non-loopback address serving plain HTTP. Without
/// `--insecure-registry` the pull speaks HTTPS to it and fails with Docker's words; with
/// `--insecure-registry HOST:PORT`, or a CIDR holding the address, it is pulled over HTTP.
fn pull_insecure_registry_off_loopback(env: &TestEnv) {
    // Fill a registry root on loopback, then serve the same root inside the namespace.
    let root = env.root.join("dist-insecure-root");
    let _ = std::fs::remove_dir_all(&root);
    {
        let loopback = Registry::start(env, "dist-insecure", &[]);
        random_layers_image(env, &format!("{}/far/app:1", loopback.addr), 1, 1);
        let status = Command::new("cp")
            .arg("-a")
            .arg(env.root.join("registry-dist-insecure/root"))
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let netns = Netns::create();
    let registry = NetnsRegistry::start(&netns, &root);
    let image = "198.18.0.2:5000/far/app:1";

    let strict = SecondDaemon::start_flags(env, "is", None, &[]);
    let refused = strict.berth(&["pull", image]);
    drop(strict);
    let by_host =
        SecondDaemon::start_flags(env, "ih", None, &["--insecure-registry", "198.18.0.2:5000"]);
    let host_pull = by_host.berth(&["pull", "-q", image]);
    drop(by_host);
    let by_cidr =
        SecondDaemon::start_flags(env, "ic", None, &["--insecure-registry", "198.18.0.0/30"]);
    let cidr_pull = by_cidr.berth(&["pull", "-q", image]);
    let content = by_cidr.berth(&["run", "--rm", "--network", "none", image, "ls", "/random0"]);
    drop(by_cidr);
    drop(registry);
    drop(netns);
    let _ = std::fs::remove_dir_all(&root);

    let (_, stderr) = text(&refused);
    assert!(!refused.status.success(), "{refused:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("http: server gave HTTP response to HTTPS client"),
        "{stderr}"
    );
    assert!(host_pull.status.success(), "{host_pull:?}");
    assert_eq!(text(&host_pull).0, image);
    assert!(cidr_pull.status.success(), "{cidr_pull:?}");
    assert!(content.status.success(), "{content:?}");
}

/// Issue 12: `berth build` sends `X-Registry-Config` (every stored credential, as the docker
/// CLI does; the docker CLI's build is checked too), and the builder pulls a base image from a registry that wants credentials with
/// them; without a login the build fails with the registry's refusal.
fn pull_build_uses_registry_config(env: &TestEnv) {
    let htpasswd = env.root.join("dist-build-htpasswd");
    let made = Command::new("htpasswd")
        .args(["-B", "-b", "-c"])
        .arg(&htpasswd)
        .args(["dora", "d0rapw"])
        .output()
        .expect("htpasswd (apache2-utils)");
    assert!(made.status.success(), "{made:?}");
    let registry = Registry::start(
        env,
        "dist-build",
        &["--htpasswd", htpasswd.to_str().unwrap()],
    );
    let addr = registry.addr.clone();
    let base = format!("{addr}/private/base:1");
    let config = env.root.join("docker-config/config.json");
    let _ = std::fs::remove_file(&config);
    env.berth(&["login", "-u", "dora", "-p", "d0rapw", &addr])
        .ok();
    random_layers_image(env, &base, 1, 1);
    let context = env.root.join("dist-build-context");
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {base}\nRUN ls /random0 > /listed\n"),
    )
    .unwrap();
    let context_arg = context.to_str().unwrap();
    let built = env.berth(&["build", "-q", "-t", "dist-build-out", context_arg]);
    let listed = env.berth(&["run", "--rm", "dist-build-out", "cat", "/listed"]);
    env.berth(&["rmi", "dist-build-out"]);
    env.berth(&["rmi", &base]);
    // The docker CLI sends the same header from the same config.json.
    let by_docker = env.docker(&["build", "-q", "-t", "dist-build-out", context_arg]);
    if by_docker.is_some() {
        env.berth(&["rmi", "dist-build-out"]);
        env.berth(&["rmi", &base]);
    }
    env.berth(&["logout", &addr]).ok();
    let refused = env.berth(&["build", "-q", "-t", "dist-build-out", context_arg]);
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_dir_all(&context);
    assert_eq!(built.code, 0, "{built:?}");
    assert_eq!(listed.ok(), "/random0");
    if let Some(by_docker) = by_docker {
        assert_eq!(by_docker.code, 0, "{by_docker:?}");
    }
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("unauthorized") || refused.stderr.contains("denied"),
        "{refused:?}"
    );
}
