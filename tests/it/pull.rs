//! Integration tests of the daemon as a registry client: `berth pull/push/login/logout/search`
//! and the docker CLI's against berthd, with `berth registry serve` on 127.0.0.1 as the
//! registry. Images are built here (commit of a busybox container).
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::Test;
use crate::harness::TestEnv;
use crate::registry::{Distribution, Registry};

pub const TESTS: &[Test] = &[
    ("pull_push_round_trip", pull_push_round_trip),
    (
        "pull_build_pulls_a_missing_base",
        pull_build_pulls_a_missing_base,
    ),
    ("pull_push_docker_cli", pull_push_docker_cli),
    ("pull_login_bearer_auth", pull_login_bearer_auth),
    ("pull_bad_input", pull_bad_input),
    (
        "pull_hub_names_stay_on_the_machine",
        pull_hub_names_stay_on_the_machine,
    ),
    (
        "pull_push_distribution_registry",
        pull_push_distribution_registry,
    ),
    ("pull_basic_auth", pull_basic_auth),
    ("pull_refuses_corrupt_bytes", pull_refuses_corrupt_bytes),
    (
        "pull_resumes_a_dropped_connection",
        pull_resumes_a_dropped_connection,
    ),
];

/// Commits a busybox container that wrote `content` into `/data/file` as `name`.
fn commit_image(env: &TestEnv, container: &str, name: &str, content: &str) {
    env.berth(&[
        "run",
        "--name",
        container,
        "busybox",
        "sh",
        "-c",
        &format!("mkdir -p /data && echo {content} > /data/file"),
    ])
    .ok();
    env.berth(&["commit", container, name]).ok();
    env.berth(&["rm", container]).ok();
}

/// `build` of a Dockerfile whose base image is only on a registry pulls it first (its
/// progress in the build's output), as dockerd's builder does; `--pull` pulls it again.
fn pull_build_pulls_a_missing_base(env: &TestEnv) {
    let registry = Registry::start(env, "client-build", &[]);
    let base = format!("{}/build/base:1", registry.addr);
    commit_image(env, "pull-build", &base, "from-the-registry");
    env.berth(&["push", &base]).ok();
    env.berth(&["rmi", &base]).ok();
    let dir = env.root.join("pull-build-ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nRUN cat /data/file > /copied\n"),
    )
    .unwrap();
    let ctx = dir.to_string_lossy().into_owned();
    let out = env.berth(&["build", "-t", "pulled-base:1", &ctx]).ok();
    assert!(out.contains("Pulling from build/base"), "{out}");
    assert!(out.contains("Successfully tagged pulled-base:1"), "{out}");
    env.berth(&["image", "inspect", &base]).ok();
    let run = env
        .berth(&["run", "--rm", "pulled-base:1", "cat", "/copied"])
        .ok();
    assert_eq!(run.trim(), "from-the-registry");
    let again = env
        .berth(&["build", "--pull", "-t", "pulled-base:1", &ctx])
        .ok();
    assert!(again.contains("Image is up to date"), "{again}");
    for image in ["pulled-base:1", base.as_str()] {
        env.berth(&["rmi", image]).ok();
    }
}

/// The `TAG: digest: sha256:… size: N` line of a push: the digest.
fn pushed_digest(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.contains(": digest: sha256:"))
        .unwrap_or_else(|| panic!("no digest line in {stdout:?}"));
    line.split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap()
        .to_owned()
}

fn pull_push_round_trip(env: &TestEnv) {
    let registry = Registry::start(env, "client", &[]);
    let addr = registry.addr.clone();
    let image = format!("{addr}/round/app:v1");
    commit_image(env, "pull-rt", &image, "round-trip");

    // Push: the digest line, and the blobs are on the registry.
    let push = env.berth(&["push", &image]);
    let out = push.ok();
    assert!(
        out.contains(&format!("The push refers to repository [{addr}/round/app]")),
        "{out}"
    );
    let digest = pushed_digest(&out);
    assert!(
        registry.blob_files().len() >= 3,
        "{:?}",
        registry.blob_files()
    );

    // rmi, pull, run: the committed file is back.
    env.berth(&["rmi", &image]).ok();
    let pull = env.berth(&["pull", &image]);
    let out = pull.ok();
    assert!(out.contains("v1: Pulling from round/app"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {image}")),
        "{out}"
    );
    assert_eq!(out.lines().last().unwrap(), image);
    let run = env.berth(&["run", "--rm", &image, "cat", "/data/file"]);
    assert_eq!(run.ok(), "round-trip");
    // RepoDigests recorded, and shown by images --digests.
    let digests = env.inspect(&image, "{{json .RepoDigests}}");
    assert_eq!(digests, format!("[\"{addr}/round/app@{digest}\"]"));
    let listed = env
        .berth(&["images", "--digests", &format!("{addr}/round/app")])
        .ok();
    assert!(listed.contains(&digest), "{listed}");

    // Pulling again changes nothing.
    let again = env.berth(&["pull", &image]).ok();
    assert!(
        again.contains(&format!("Status: Image is up to date for {image}")),
        "{again}"
    );

    // The pulled image pushed elsewhere: the same manifest digest, its layers mounted or
    // already there, nothing recompressed.
    let copy = format!("{addr}/round/copy:v1");
    env.berth(&["tag", &image, &copy]).ok();
    let out = env.berth(&["push", &copy]).ok();
    assert_eq!(pushed_digest(&out), digest, "{out}");
    assert!(
        out.contains("Mounted from round/app") || out.contains("Layer already exists"),
        "{out}"
    );
    // Pull by digest.
    env.berth(&["rmi", &image, &copy]).ok();
    let by_digest = format!("{addr}/round/app@{digest}");
    let out = env.berth(&["pull", "-q", &by_digest]).ok();
    assert_eq!(out, by_digest);

    // A second image on the same base: its base layers "Already exists".
    let second = format!("{addr}/round/app:v2");
    commit_image(env, "pull-rt2", &second, "second");
    env.berth(&["push", "-q", &second]).ok();
    env.berth(&["rmi", &second]).ok();
    let out = env.berth(&["pull", &second]).ok();
    assert!(out.contains("Already exists"), "{out}");
    // pull -a: every tag.
    let all = env
        .berth(&["pull", "-a", &format!("{addr}/round/app")])
        .ok();
    assert!(
        all.contains("v1: Pulling from round/app") && all.contains("v2: Pulling from round/app"),
        "{all}"
    );

    missing_image_runs(env, &second);
    search_and_inspect(env, &addr, &image, &digest);

    for name in [&image, &second, &copy] {
        let _ = env.berth(&["rmi", name]);
    }
}

/// `run` of a missing image pulls it; `--pull never` does not; `--pull always` does.
fn missing_image_runs(env: &TestEnv, second: &str) {
    let second = second.to_owned();
    // run of a missing image pulls it; --pull never does not.
    env.berth(&["rmi", &second]).ok();
    let never = env.berth(&["run", "--rm", "--pull", "never", &second, "true"]);
    assert_eq!(never.code, 125, "{never:?}");
    assert!(never.stderr.contains("No such image"), "{never:?}");
    let run = env.berth(&["run", "--rm", &second, "cat", "/data/file"]);
    assert_eq!(run.ok(), "second");
    assert!(
        run.stderr
            .contains(&format!("Unable to find image '{second}' locally")),
        "{run:?}"
    );
    let always = env.berth(&[
        "run",
        "--rm",
        "--pull",
        "always",
        &second,
        "cat",
        "/data/file",
    ]);
    assert_eq!(always.ok(), "second");
    assert!(always.stderr.contains("Image is up to date"), "{always:?}");
}

/// `search` of berth's registry, and `GET /distribution/{name}/json`.
fn search_and_inspect(env: &TestEnv, addr: &str, image: &str, digest: &str) {
    // search finds the repositories of berth's registry.
    let found = env
        .berth(&["search", "--format", "{{.Name}}", &format!("{addr}/round")])
        .ok();
    assert!(found.lines().any(|l| l.ends_with("round/app")), "{found}");
    let limited = env
        .berth(&[
            "search",
            "--limit",
            "1",
            "--format",
            "{{.Name}}",
            &format!("{addr}/round"),
        ])
        .ok();
    assert_eq!(limited.lines().count(), 1, "{limited}");

    // The distribution endpoint describes the manifest without pulling.
    let (status, body) = env.api("GET", &format!("/distribution/{image}/json"), None);
    assert_eq!(status, 200, "{body}");
    let inspect: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(inspect["Descriptor"]["digest"], digest);
    assert_eq!(inspect["Platforms"][0]["os"], "linux");
}

fn pull_push_docker_cli(env: &TestEnv) {
    if env.docker(&["version"]).is_none() {
        crate::skip("the docker CLI is not installed");
    }
    let registry = Registry::start(env, "client-docker", &[]);
    let addr = registry.addr.clone();
    let image = format!("{addr}/dock/app:1");
    commit_image(env, "pull-dock", &image, "from-docker");
    let push = env.docker(&["push", &image]).unwrap();
    let out = push.ok();
    let digest = pushed_digest(&out);
    env.docker(&["rmi", &image]).unwrap().ok();
    // docker run of a missing image: the docker CLI pulls through berthd.
    let run = env
        .docker(&["run", "--rm", &image, "cat", "/data/file"])
        .unwrap();
    assert_eq!(run.ok(), "from-docker");
    assert!(run.stderr.contains("Unable to find image"), "{run:?}");
    assert!(run.stderr.contains("Pull complete"), "{run:?}");
    let pull = env.docker(&["pull", &image]).unwrap().ok();
    assert!(pull.contains(&format!("Digest: {digest}")), "{pull}");
    let digests = env
        .docker(&["image", "inspect", "-f", "{{index .RepoDigests 0}}", &image])
        .unwrap()
        .ok();
    assert_eq!(digests, format!("{addr}/dock/app@{digest}"));
    // An unknown repository and an unknown tag: docker's words, exit 1.
    let missing = env
        .docker(&["pull", &format!("{addr}/dock/app:nope")])
        .unwrap();
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains(&format!("manifest for {addr}/dock/app:nope not found")),
        "{missing:?}"
    );
    let search = env
        .docker(&["search", &format!("{addr}/dock")])
        .unwrap()
        .ok();
    assert!(search.contains("dock/app"), "{search}");
    env.docker(&["rmi", &image]).unwrap().ok();
}

fn pull_login_bearer_auth(env: &TestEnv) {
    let htpasswd = env.root.join("client-htpasswd");
    let made = std::process::Command::new("htpasswd")
        .args(["-B", "-b", "-c"])
        .arg(&htpasswd)
        .args(["bob", "pa55word"])
        .output()
        .expect("htpasswd (apache2-utils)");
    assert!(made.status.success(), "{made:?}");
    let registry = Registry::start(
        env,
        "client-auth",
        &["--htpasswd", htpasswd.to_str().unwrap()],
    );
    let addr = registry.addr.clone();
    let image = format!("{addr}/secret/app:1");
    commit_image(env, "pull-auth", &image, "secret");
    let config = env.root.join("docker-config/config.json");
    let _ = std::fs::remove_file(&config);

    // No credentials: refused, nothing stored.
    let push = env.berth(&["push", &image]);
    assert_eq!(push.code, 1, "{push:?}");
    assert!(
        push.stderr.contains("unauthorized") || push.stderr.contains("denied"),
        "{push:?}"
    );
    assert!(registry.blob_files().is_empty());
    // A wrong password: one line, nothing written.
    let login = env.berth_stdin(
        &["login", "-u", "bob", "--password-stdin", &addr],
        b"wrong\n",
    );
    assert_eq!(login.code, 1, "{login:?}");
    assert!(login.stderr.contains("unauthorized"), "{login:?}");
    assert!(!config.exists());
    // The right one: stored as the docker CLI stores it.
    let login = env.berth_stdin(
        &["login", "-u", "bob", "--password-stdin", &addr],
        b"pa55word\n",
    );
    assert_eq!(login.ok(), "Login Succeeded");
    let stored: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    // base64 of user:password, as coreutils makes it.
    let encoded = std::process::Command::new("sh")
        .args(["-c", "printf %s bob:pa55word | base64 -w0"])
        .output()
        .unwrap();
    let expected = String::from_utf8(encoded.stdout).unwrap();
    assert_eq!(
        stored["auths"][addr.as_str()]["auth"],
        expected.as_str(),
        "{stored}"
    );
    // Push and pull with the stored credentials (bearer tokens from the registry).
    env.berth(&["push", &image]).ok();
    env.berth(&["rmi", &image]).ok();
    env.berth(&["pull", &image]).ok();
    // The docker CLI uses berth's login (same config.json) through berthd.
    if let Some(pull) = env.docker(&["pull", &image]) {
        assert!(pull.ok().contains("Image is up to date"));
    }
    // logout forgets; then pulls are refused with Docker's words.
    assert_eq!(
        env.berth(&["logout", &addr]).ok(),
        format!("Removing login credentials for {addr}")
    );
    let stored: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(stored["auths"].get(addr.as_str()).is_none(), "{stored}");
    env.berth(&["rmi", &image]).ok();
    let denied = env.berth(&["pull", &image]);
    assert_eq!(denied.code, 1, "{denied:?}");
    assert!(
        denied.stderr.contains("unauthorized") || denied.stderr.contains("pull access denied"),
        "{denied:?}"
    );
    // The docker CLI's login is berth's too.
    if let Some(login) = env.docker_stdin(
        &["login", "-u", "bob", "--password-stdin", &addr],
        b"pa55word\n",
    ) {
        assert!(login.ok().contains("Login Succeeded"));
        env.berth(&["pull", &image]).ok();
        env.berth(&["rmi", &image]).ok();
        env.berth(&["logout", &addr]).ok();
    }
    let _ = std::fs::remove_file(&config);
}

/// The test daemons' `docker.io` goes to `BERTH_REGISTRY_HUB` (a dead loopback port, set by
/// the harness): a pull of a Docker Hub name is refused by 127.0.0.1:9, never sent out.
fn pull_hub_names_stay_on_the_machine(env: &TestEnv) {
    assert_eq!(
        std::env::var("BERTH_REGISTRY_HUB").as_deref(),
        Ok("http://127.0.0.1:9")
    );
    let run = env.berth(&["pull", "hello-from-the-hub:1"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("127.0.0.1:9"), "{run:?}");
    let run = env.berth(&["run", "--rm", "hello-from-the-hub:1"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("127.0.0.1:9"), "{run:?}");
}

fn pull_bad_input(env: &TestEnv) {
    let registry = Registry::start(env, "client-bad", &[]);
    let addr = registry.addr.clone();
    let before = env.berth(&["images", "-q", "--no-trunc"]).ok();
    let cases: &[(&[&str], &str)] = &[
        (&["pull", "upper/CASE"], "invalid reference format"),
        (&["pull", "a/../b"], "invalid reference format"),
        (&["pull", &format!("{addr}/nothere/app:1")], "not found"),
        (
            &["pull", "--platform", "linux/", &format!("{addr}/x:1")],
            "invalid platform",
        ),
        (
            &["pull", "-a", &format!("{addr}/x:1")],
            "tag can't be used with --all-tags",
        ),
        (
            &["push", &format!("{addr}/not/local:1")],
            "An image does not exist locally with the tag",
        ),
        (
            &["search", "--limit", "0", &format!("{addr}/x")],
            "limit 0 is outside the range of [1, 100]",
        ),
        (
            &["run", "--pull", "sometimes", "busybox", "true"],
            "invalid pull option",
        ),
    ];
    let cases: Vec<(Vec<&str>, &str)> = cases.iter().map(|(a, m)| (a.to_vec(), *m)).collect();
    for (args, message) in &cases {
        let run = env.berth(args);
        assert_ne!(run.code, 0, "{args:?}: {run:?}");
        assert!(run.stderr.contains(message), "{args:?}: {run:?}");
        // One line (`run` adds docker's "Run 'berth run --help'" hint after a blank line).
        let lines = run
            .stderr
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("Run '"))
            .count();
        assert_eq!(lines, 1, "{args:?}: {run:?}");
    }
    // A registry that is not there: one line naming the address.
    let gone = env.berth(&["pull", "127.0.0.1:1/x:1"]);
    assert_eq!(gone.code, 1, "{gone:?}");
    assert!(gone.stderr.contains("127.0.0.1:1"), "{gone:?}");
    // Nothing changed.
    assert_eq!(env.berth(&["images", "-q", "--no-trunc"]).ok(), before);
}

/// berth against Debian's `docker-registry` (distribution 2.8): push, pull by tag and digest,
/// and search through its `_catalog` (it has no `/v1/search`).
fn pull_push_distribution_registry(env: &TestEnv) {
    let Some(registry) = Distribution::start(env) else {
        crate::skip("docker-registry (Debian) is not installed");
    };
    let addr = registry.addr.clone();
    let image = format!("{addr}/dist/app:1");
    commit_image(env, "pull-dist", &image, "distribution");
    let digest = pushed_digest(&env.berth(&["push", &image]).ok());
    // Pushed again: every blob is already there.
    let again = env.berth(&["push", &image]).ok();
    assert!(again.contains("Layer already exists"), "{again}");
    assert_eq!(pushed_digest(&again), digest);
    env.berth(&["rmi", &image]).ok();
    let out = env.berth(&["pull", &image]).ok();
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    let run = env.berth(&["run", "--rm", &image, "cat", "/data/file"]);
    assert_eq!(run.ok(), "distribution");
    let by_digest = format!("{addr}/dist/app@{digest}");
    env.berth(&["rmi", &image]).ok();
    assert_eq!(env.berth(&["pull", "-q", &by_digest]).ok(), by_digest);
    let found = env
        .berth(&["search", "--format", "{{.Name}}", &format!("{addr}/dist")])
        .ok();
    assert!(found.lines().any(|l| l.ends_with("dist/app")), "{found}");
    platform_mismatches(env, &addr, &image, &digest);
    let missing = env.berth(&["pull", &format!("{addr}/dist/nothere:1")]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing.stderr.contains("pull access denied") || missing.stderr.contains("not found"),
        "{missing:?}"
    );
    let _ = env.berth(&["rmi", &by_digest]);
}

/// A loopback TCP proxy to `target` that, once, cuts the first connection whose answer has
/// carried more than `cut` bytes (with `corrupt`: flips that byte of every such answer
/// instead); the flag says whether it did.
fn flaky_proxy(target: String, cut: usize, corrupt: bool) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cut_done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cut_done);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let (mut from_client, mut to_server) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(Shutdown::Write);
            });
            let flag = Arc::clone(&flag);
            std::thread::spawn(move || {
                let (mut server, mut client) = (server, client);
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0;
                loop {
                    let n = match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    total += n;
                    if corrupt && total > cut && total - n <= cut {
                        buf[cut - (total - n)] ^= 0xff;
                        flag.store(true, Ordering::SeqCst);
                    } else if !corrupt && total > cut && !flag.swap(true, Ordering::SeqCst) {
                        let keep = n - (total - cut).min(n);
                        let _ = client.write_all(&buf[..keep]);
                        break;
                    }
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    (addr, cut_done)
}

/// A 2 MiB random layer committed and pushed as `image`; its image id.
fn random_layer_image(env: &TestEnv, container: &str, image: &str) -> String {
    env.berth(&[
        "run",
        "--name",
        container,
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data && head -c 2097152 /dev/urandom > /data/random && md5sum /data/random > /data/sum",
    ])
    .ok();
    env.berth(&["commit", container, image]).ok();
    env.berth(&["rm", container]).ok();
    let id = env.inspect(image, "{{.Id}}");
    env.berth(&["push", "-q", image]).ok();
    env.berth(&["rmi", image]).ok();
    id
}

/// A layer whose bytes do not match its digest: one line, and nothing of it kept (no image,
/// no blob, no ingest file).
fn pull_refuses_corrupt_bytes(env: &TestEnv) {
    let registry = Registry::start(env, "client-corrupt", &[]);
    random_layer_image(
        env,
        "pull-corrupt",
        &format!("{}/corrupt/app:1", registry.addr),
    );
    let store = env.data_root.join("image");
    let count = |dir: &str| std::fs::read_dir(store.join(dir)).map_or(0, Iterator::count);
    let blobs_before = count("blobs/sha256");
    let (proxy, corrupted) = flaky_proxy(registry.addr.clone(), 512 * 1024, true);
    let through = format!("{proxy}/corrupt/app:1");
    let pull = env.berth(&["pull", &through]);
    assert!(corrupted.load(Ordering::SeqCst), "{pull:?}");
    assert_eq!(pull.code, 1, "{pull:?}");
    assert_eq!(pull.stderr.trim().lines().count(), 1, "{pull:?}");
    // The digest check, or the decompressor (gzip's checksum, or a deflate stream the flipped
    // bytes made invalid), whichever sees it first (one pass).
    assert!(
        [
            "verification failed",
            "corrupt gzip",
            "corrupt deflate stream"
        ]
        .iter()
        .any(|m| pull.stderr.contains(m)),
        "{pull:?}"
    );
    assert!(env.berth(&["image", "inspect", &through]).code != 0);
    assert_eq!(count("blobs/sha256"), blobs_before);
    assert_eq!(count("ingest"), 0);
}

/// A layer download cut in the middle resumes (a `Range` request) and the image is whole.
fn pull_resumes_a_dropped_connection(env: &TestEnv) {
    let registry = Registry::start(env, "client-flaky", &[]);
    let image = format!("{}/flaky/app:1", registry.addr);
    let id = random_layer_image(env, "pull-flaky", &image);
    // Through the proxy: the 2 MiB layer's connection is cut after 512 KiB.
    let (proxy, cut) = flaky_proxy(registry.addr.clone(), 512 * 1024, false);
    let through = format!("{proxy}/flaky/app:1");
    let out = env.berth(&["pull", &through]).ok();
    assert!(cut.load(Ordering::SeqCst), "the proxy never cut: {out}");
    assert!(out.contains("Retrying in"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(env.inspect(&through, "{{.Id}}"), id);
    let check = env.berth(&["run", "--rm", &through, "md5sum", "-c", "/data/sum"]);
    assert!(check.ok().ends_with("OK"), "{check:?}");
    env.berth(&["rmi", &through]).ok();
}

/// Basic auth (Debian's docker-registry with `auth: htpasswd` challenges `Basic`): login, push,
/// pull with the stored credentials; without them, Docker's words.
fn pull_basic_auth(env: &TestEnv) {
    let htpasswd = env.root.join("basic-htpasswd");
    let made = std::process::Command::new("htpasswd")
        .args(["-B", "-b", "-c"])
        .arg(&htpasswd)
        .args(["carol", "c4rolpw"])
        .output()
        .expect("htpasswd (apache2-utils)");
    assert!(made.status.success(), "{made:?}");
    let extra = format!(
        "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
        htpasswd.display()
    );
    let Some(registry) = Distribution::start_with(env, &extra) else {
        crate::skip("docker-registry (Debian) is not installed");
    };
    let addr = registry.addr.clone();
    let image = format!("{addr}/basic/app:1");
    commit_image(env, "pull-basic", &image, "basic");
    let push = env.berth(&["push", &image]);
    assert_eq!(push.code, 1, "{push:?}");
    assert!(push.stderr.contains("unauthorized"), "{push:?}");
    let login = env.berth_stdin(
        &["login", "-u", "carol", "--password-stdin", &addr],
        b"nope\n",
    );
    assert_eq!(login.code, 1, "{login:?}");
    assert!(login.stderr.contains("unauthorized"), "{login:?}");
    let login = env.berth(&["login", "-u", "carol", "-p", "c4rolpw", &addr]);
    assert_eq!(login.ok(), "Login Succeeded");
    assert!(login.stderr.contains("--password-stdin"), "{login:?}");
    env.berth(&["push", &image]).ok();
    env.berth(&["rmi", &image]).ok();
    env.berth(&["pull", &image]).ok();
    assert_eq!(
        env.berth(&["run", "--rm", &image, "cat", "/data/file"])
            .ok(),
        "basic"
    );
    env.berth(&["logout", &addr]).ok();
    env.berth(&["rmi", &image]).ok();
    let denied = env.berth(&["pull", &image]);
    assert_eq!(denied.code, 1, "{denied:?}");
    assert!(
        denied.stderr.contains("unauthorized") || denied.stderr.contains("pull access denied"),
        "{denied:?}"
    );
    let _ = std::fs::remove_file(env.root.join("docker-config/config.json"));
}

/// `--platform` that the image is not for, and an index without the host's platform: one
/// line each, nothing pulled.
fn platform_mismatches(env: &TestEnv, addr: &str, image: &str, digest: &str) {
    let other = env.berth(&["pull", "--platform", "linux/arm64", image]);
    assert_eq!(other.code, 1, "{other:?}");
    assert!(
        other
            .stderr
            .contains("does not match the specified platform (linux/arm64)"),
        "{other:?}"
    );
    let (status, body) = env.api("GET", &format!("/distribution/{image}/json"), None);
    assert_eq!(status, 200, "{body}");
    let size = serde_json::from_str::<Value>(&body).unwrap()["Descriptor"]["size"].clone();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{digest}","size":{size},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
    );
    let put = std::process::Command::new("curl")
        .args(["-sf", "-X", "PUT", "-H"])
        .arg("Content-Type: application/vnd.docker.distribution.manifest.list.v2+json")
        .args(["--data-binary", &index])
        .arg(format!("http://{addr}/v2/dist/app/manifests/multi"))
        .output()
        .unwrap();
    assert!(put.status.success(), "{put:?}");
    let multi = env.berth(&["pull", &format!("{addr}/dist/app:multi")]);
    assert_eq!(multi.code, 1, "{multi:?}");
    assert!(
        multi
            .stderr
            .contains("no matching manifest for linux/amd64 in the manifest list entries"),
        "{multi:?}"
    );
    // Nothing of it was kept.
    assert!(
        env.berth(&["image", "inspect", &format!("{addr}/dist/app:multi")])
            .code
            != 0
    );
}
