//! Integration tests: `berth build` and the docker CLI's legacy builder against berth's
//! `POST /build` (base image: the bootstrapped busybox).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Test;
use crate::harness::{Run, TestEnv, docker_exe};

pub const TESTS: &[Test] = &[
    (
        "build_berth_and_docker_cli_with_cache_hits",
        build_berth_and_docker_cli_with_cache_hits,
    ),
    (
        "build_multi_stage_dockerignore_build_arg_target",
        build_multi_stage_dockerignore_build_arg_target,
    ),
    (
        "build_instructions_land_in_the_image",
        build_instructions_land_in_the_image,
    ),
    (
        "build_failing_run_tags_nothing_and_leaves_nothing",
        build_failing_run_tags_nothing_and_leaves_nothing,
    ),
    ("build_cache_in_df_and_pruned", build_cache_in_df_and_pruned),
    (
        "build_api_contexts_and_parameters",
        build_api_contexts_and_parameters,
    ),
    (
        "build_client_leaving_cancels_it",
        build_client_leaving_cancels_it,
    ),
    (
        "build_from_stdin_quiet_iidfile",
        build_from_stdin_quiet_iidfile,
    ),
    (
        "build_onbuild_triggers_run_in_a_child",
        build_onbuild_triggers_run_in_a_child,
    ),
    (
        "build_api_refuses_bad_context_tars",
        build_api_refuses_bad_context_tars,
    ),
];

/// A fresh context directory `name` under the test root with `files` (path, content).
pub(crate) fn context(env: &TestEnv, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.root.join("build").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    dir
}

/// `docker build ARGS` (legacy builder unless `buildkit_unset`) in `dir`, with `stdin`.
pub(crate) fn docker_build(
    env: &TestEnv,
    dir: &Path,
    args: &[&str],
    legacy: bool,
    stdin: &[u8],
) -> Run {
    use std::io::Write;
    let exe = docker_exe()
        .unwrap_or_else(|| crate::skip("the docker CLI is not installed (scripts/deps.sh)"));
    let mut c = Command::new(exe);
    c.arg("build")
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", env.host())
        .env("DOCKER_CONFIG", env.root.join("docker-config"))
        .env_remove("DOCKER_API_VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if legacy {
        c.env("DOCKER_BUILDKIT", "0");
    } else {
        c.env_remove("DOCKER_BUILDKIT");
    }
    let mut child = c.spawn().expect("spawn docker");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let o = child.wait_with_output().expect("wait docker");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub(crate) fn berth_build(env: &TestEnv, dir: &Path, args: &[&str]) -> Run {
    let mut all: Vec<&str> = vec!["build"];
    all.extend_from_slice(args);
    let d = dir.to_string_lossy().into_owned();
    all.push(&d);
    env.berth(&all)
}

pub(crate) fn image_id(env: &TestEnv, name: &str) -> String {
    env.inspect(name, "{{.Id}}")
}

pub(crate) fn short(id: &str) -> &str {
    &id.trim_start_matches("sha256:")[..12]
}

/// What of the test root is mounted now (nothing a build made may stay).
pub(crate) fn mounts_under(env: &TestEnv) -> usize {
    let root = env.root.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root))
        .count()
}

const SIMPLE: &str = "FROM busybox\nENV GREETING=hello\nWORKDIR /app\nCOPY . /app/\nRUN echo \"$GREETING from run\" > /app/out && cat /app/data.txt\nCMD [\"cat\", \"/app/out\"]\n";

fn build_berth_and_docker_cli_with_cache_hits(env: &TestEnv) {
    let dir = context(
        env,
        "simple",
        &[("Dockerfile", SIMPLE), ("data.txt", "some data\n")],
    );
    let first = berth_build(env, &dir, &["-t", "bt-simple", "-t", "bt-simple:v2"]);
    let out = first.ok();
    assert!(out.contains("Step 1/6 : FROM busybox"), "{out}");
    assert!(out.contains("Step 5/6 : RUN echo"), "{out}");
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(
        out.contains("some data"),
        "the RUN's output is shown: {out}"
    );
    let id = image_id(env, "bt-simple");
    assert_eq!(image_id(env, "bt-simple:v2"), id);
    assert!(
        out.contains(&format!("Successfully built {}", short(&id))),
        "{out}"
    );
    assert!(
        out.contains("Successfully tagged bt-simple:latest"),
        "{out}"
    );
    assert!(out.contains("Successfully tagged bt-simple:v2"), "{out}");
    assert!(
        !out.contains("Using cache"),
        "a first build hits nothing: {out}"
    );
    assert_eq!(
        env.berth(&["run", "--rm", "bt-simple"]).ok(),
        "hello from run"
    );
    let history = env
        .berth(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            "bt-simple",
        ])
        .ok();
    assert!(
        history.contains("/bin/sh -c #(nop)  CMD [\"cat\" \"/app/out\"]"),
        "{history}"
    );
    assert!(
        history.contains("RUN /bin/sh -c echo") || history.contains("/bin/sh -c echo"),
        "{history}"
    );

    // Nothing changed: every step is a cache hit and the id is the same.
    let second = berth_build(env, &dir, &["-t", "bt-simple"]).ok();
    assert_eq!(second.matches(" ---> Using cache").count(), 5, "{second}");
    assert!(!second.contains("Running in"), "{second}");
    assert!(
        second.contains(&format!("Successfully built {}", short(&id))),
        "{second}"
    );

    docker_cli_builds_the_same(env, &dir, &id);

    // A changed file misses from the COPY on; a changed mtime alone does not.
    std::fs::write(dir.join("data.txt"), "other data\n").unwrap();
    let third = berth_build(env, &dir, &["-t", "bt-simple"]).ok();
    assert_eq!(third.matches(" ---> Using cache").count(), 2, "{third}");
    assert!(third.contains("other data"), "{third}");
    let touched = Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(dir.join("data.txt"))
        .status()
        .unwrap();
    assert!(touched.success());
    let fourth = docker_build(env, &dir, &["-t", "bt-simple", "."], true, b"");
    assert_eq!(
        fourth.stdout.matches(" ---> Using cache").count(),
        5,
        "{fourth:?}"
    );
    for tag in ["bt-simple", "bt-simple:v2", "bt-simple-docker"] {
        env.berth(&["rmi", tag]).ok();
    }
}

/// The docker CLI's legacy builder against the context `build_berth_…` built: the same
/// stream, the same image (cached), `--iidfile` and `-q` (default builder: legacy without buildx).
fn docker_cli_builds_the_same(env: &TestEnv, dir: &Path, id: &str) {
    let iid = env.root.join("build/iid");
    let d = docker_build(
        env,
        dir,
        &[
            "-t",
            "bt-simple-docker",
            "--iidfile",
            iid.to_str().unwrap(),
            ".",
        ],
        true,
        b"",
    );
    assert_eq!(d.code, 0, "{d:?}");
    assert!(
        d.stdout.contains("Sending build context to Docker daemon"),
        "{d:?}"
    );
    assert!(
        d.stdout
            .contains("Step 4/6 : COPY . /app/\n ---> Using cache\n"),
        "{d:?}"
    );
    assert!(
        d.stdout
            .contains("Successfully tagged bt-simple-docker:latest"),
        "{d:?}"
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let q = docker_build(env, dir, &["-q", "."], false, b"");
    assert_eq!(q.code, 0, "{q:?}");
    assert_eq!(q.stdout.trim(), id, "{q:?}");
}

fn build_from_stdin_quiet_iidfile(env: &TestEnv) {
    // `berth build -q -` with a Dockerfile on stdin: the id alone, and --iidfile.
    let iid2 = env.root.join("build/iid2");
    let q = env.berth_stdin(
        &[
            "build",
            "-q",
            "--iidfile",
            iid2.to_str().unwrap(),
            "-t",
            "bt-stdin",
            "-",
        ],
        b"FROM busybox\nRUN echo from stdin > /s\n",
    );
    let stdin_id = q.ok();
    assert!(
        stdin_id.starts_with("sha256:") && !stdin_id.contains('\n'),
        "{q:?}"
    );
    assert_eq!(std::fs::read_to_string(&iid2).unwrap(), stdin_id);
    assert_eq!(
        env.berth(&["run", "--rm", "bt-stdin", "cat", "/s"]).ok(),
        "from stdin"
    );
    env.berth(&["rmi", "bt-stdin"]).ok();
}

fn build_multi_stage_dockerignore_build_arg_target(env: &TestEnv) {
    let dockerfile = "\
ARG BASE=busybox
FROM $BASE AS builder
ARG MSG=default
WORKDIR /src
COPY . .
RUN echo \"built $MSG\" > /src/made && ls -a /src > /src/listing

FROM busybox AS unused
RUN exit 1

FROM busybox
COPY --from=builder /src/made /src/listing /out/
CMD [\"cat\", \"/out/made\"]
";
    let dir = context(
        env,
        "multi",
        &[
            ("Dockerfile", dockerfile),
            (".dockerignore", "secret\n*.log\n!keep.log\n"),
            ("secret/key", "do not send"),
            ("drop.log", "x"),
            ("keep.log", "y"),
            ("src.txt", "z"),
        ],
    );
    let out = berth_build(env, &dir, &["-t", "bt-multi", "--build-arg", "MSG=by-arg"]).ok();
    assert!(
        !out.contains("RUN exit 1"),
        "an unneeded stage is not built: {out}"
    );
    assert_eq!(env.berth(&["run", "--rm", "bt-multi"]).ok(), "built by-arg");
    let listing = env
        .berth(&["run", "--rm", "bt-multi", "cat", "/out/listing"])
        .ok();
    let names: Vec<&str> = listing.lines().collect();
    assert!(
        names.contains(&"keep.log") && names.contains(&"src.txt"),
        "{listing}"
    );
    assert!(
        names.contains(&".dockerignore") && names.contains(&"Dockerfile"),
        "{listing}"
    );
    assert!(
        !names.contains(&"secret") && !names.contains(&"drop.log"),
        "{listing}"
    );
    // The builder stage's files are not in the final image.
    let r = env.berth(&["run", "--rm", "bt-multi", "ls", "/src"]);
    assert_ne!(r.code, 0, "{r:?}");

    // --target stops at a stage; a Dockerfile.dockerignore beside -f wins over .dockerignore.
    std::fs::write(dir.join("other.Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.join("other.Dockerfile.dockerignore"), "src.txt\n").unwrap();
    let t = berth_build(
        env,
        &dir,
        &[
            "-t",
            "bt-multi-builder",
            "--target",
            "builder",
            "-f",
            dir.join("other.Dockerfile").to_str().unwrap(),
        ],
    )
    .ok();
    assert!(!t.contains("Step 7/"), "stops at the target: {t}");
    let listing = env
        .berth(&["run", "--rm", "bt-multi-builder", "cat", "/src/listing"])
        .ok();
    assert!(listing.lines().any(|l| l == "secret"), "{listing}");
    assert!(!listing.lines().any(|l| l == "src.txt"), "{listing}");
    assert_eq!(
        env.berth(&["run", "--rm", "bt-multi-builder", "cat", "/src/made"])
            .ok(),
        "built default"
    );

    // The docker CLI applies the same .dockerignore and build args.
    let d = docker_build(
        env,
        &dir,
        &["-t", "bt-multi-docker", "--build-arg", "MSG=docker", "."],
        true,
        b"",
    );
    assert_eq!(d.code, 0, "{d:?}");
    assert_eq!(
        env.berth(&["run", "--rm", "bt-multi-docker"]).ok(),
        "built docker"
    );
    let listing = env
        .berth(&["run", "--rm", "bt-multi-docker", "cat", "/out/listing"])
        .ok();
    assert!(
        !listing.lines().any(|l| l == "secret" || l == "drop.log"),
        "{listing}"
    );
    for tag in ["bt-multi", "bt-multi-builder", "bt-multi-docker"] {
        env.berth(&["rmi", tag]).ok();
    }
}

fn build_instructions_land_in_the_image(env: &TestEnv) {
    let dockerfile = "\
FROM busybox
WORKDIR /w
COPY --chown=1000:1001 --chmod=640 f.txt ./
ADD arch.tar /unpacked/
RUN <<EOT
set -e
stat -c '%u:%g %a' /w/f.txt > /w/owner
cat /unpacked/inner.txt > /w/inner
EOT
RUN --mount=type=cache,target=/cache echo x >> /cache/n && wc -l < /cache/n > /w/cachecount
RUN --mount=type=tmpfs,target=/scratch touch /scratch/a && ls /scratch > /w/tmpfs
RUN --mount=type=bind,source=f.txt,target=/bound.txt cat /bound.txt > /w/bound
RUN --network=none [\"sh\", \"-c\", \"ls /sys/class/net > /w/nets\"]
USER 1000:1001
SHELL [\"/bin/sh\", \"-ec\"]
HEALTHCHECK --interval=5s --retries=2 CMD true
STOPSIGNAL SIGUSR1
EXPOSE 8080/udp
VOLUME /data
ENV A=1 B=\"two words\"
CMD echo \"$B\"
";
    let dir = context(
        env,
        "instr",
        &[("Dockerfile", dockerfile), ("f.txt", "file\n")],
    );
    let inner = env.root.join("build/instr-tar");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(inner.join("inner.txt"), "from the tar\n").unwrap();
    crate::harness::tar_dir(&inner, &dir.join("arch.tar"));
    berth_build(env, &dir, &["-t", "bt-instr"]).ok();
    let cat = |f: &str| env.berth(&["run", "--rm", "bt-instr", "cat", f]).ok();
    assert_eq!(cat("/w/owner"), "1000:1001 640");
    assert_eq!(cat("/w/inner"), "from the tar");
    assert_eq!(cat("/w/cachecount"), "1");
    assert_eq!(cat("/w/tmpfs"), "a");
    assert_eq!(cat("/w/bound"), "file");
    assert_eq!(cat("/w/nets"), "lo");
    let r = env.berth(&[
        "run",
        "--rm",
        "bt-instr",
        "ls",
        "/scratch",
        "/bound.txt",
        "/cache",
    ]);
    assert!(
        r.stdout.trim().is_empty(),
        "mounts leave nothing in the image: {r:?}"
    );
    assert_eq!(env.berth(&["run", "--rm", "bt-instr"]).ok(), "two words");
    let config = env.inspect("bt-instr", "{{json .Config}}");
    let c: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(c["User"], "1000:1001", "{config}");
    assert_eq!(c["WorkingDir"], "/w", "{config}");
    assert_eq!(
        c["Shell"],
        serde_json::json!(["/bin/sh", "-ec"]),
        "{config}"
    );
    assert_eq!(c["StopSignal"], "SIGUSR1", "{config}");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"]),
        "{config}"
    );
    assert_eq!(c["Healthcheck"]["Retries"], 2, "{config}");
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64, "{config}");
    assert!(c["ExposedPorts"]["8080/udp"].is_object(), "{config}");
    assert!(c["Volumes"]["/data"].is_object(), "{config}");
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["/bin/sh", "-ec", "echo \"$B\""]),
        "{config}"
    );
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "B=two words"),
        "{config}"
    );

    // The cache mount survives the build; the step after it is cached when nothing changed.
    let again = berth_build(env, &dir, &["-t", "bt-instr"]).ok();
    assert!(!again.contains("Running in"), "{again}");
    let fresh = berth_build(env, &dir, &["-t", "bt-instr", "--no-cache"]).ok();
    assert!(!fresh.contains("Using cache"), "{fresh}");
    assert_eq!(
        cat("/w/cachecount"),
        "2",
        "the cache mount kept its content"
    );

    env.berth(&["rmi", "bt-instr"]).ok();
}

fn build_onbuild_triggers_run_in_a_child(env: &TestEnv) {
    let parent = context(
        env,
        "onbuild",
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD RUN echo child > /child\n",
        )],
    );
    berth_build(env, &parent, &["-t", "bt-onbuild"]).ok();
    let triggers: serde_json::Value =
        serde_json::from_str(&env.inspect("bt-onbuild", "{{json .Config.OnBuild}}")).unwrap();
    assert_eq!(triggers, serde_json::json!(["RUN echo child > /child"]));
    let child = context(env, "onbuild-child", &[("Dockerfile", "FROM bt-onbuild\n")]);
    let out = berth_build(env, &child, &["-t", "bt-onbuild-child"]).ok();
    assert!(out.contains("# Executing 1 build trigger"), "{out}");
    assert_eq!(
        env.berth(&["run", "--rm", "bt-onbuild-child", "cat", "/child"])
            .ok(),
        "child"
    );
    let config: serde_json::Value =
        serde_json::from_str(&env.inspect("bt-onbuild-child", "{{json .Config}}")).unwrap();
    assert!(
        config["OnBuild"].is_null() || config["OnBuild"] == serde_json::json!([]),
        "not inherited: {config}"
    );
    env.berth(&["rmi", "bt-onbuild-child", "bt-onbuild"]).ok();
}

fn build_failing_run_tags_nothing_and_leaves_nothing(env: &TestEnv) {
    let containers_before = env.berth(&["ps", "-aq"]).ok();
    let mounts_before = mounts_under(env);
    let dockerfile =
        "FROM busybox\nRUN echo first > /first\nRUN echo failing && exit 3\nCMD true\n";
    let dir = context(env, "fail", &[("Dockerfile", dockerfile)]);
    let b = berth_build(env, &dir, &["-t", "bt-fail"]);
    assert_eq!(b.code, 3, "{b:?}");
    assert!(b.stdout.contains("failing"), "{b:?}");
    assert!(
        b.stderr.contains(
            "The command '/bin/sh -c echo failing && exit 3' returned a non-zero code: 3"
        ),
        "{b:?}"
    );
    let d = docker_build(env, &dir, &["-t", "bt-fail", "."], true, b"");
    assert_eq!(d.code, 3, "{d:?}");
    assert!(
        d.stdout
            .contains("Step 2/4 : RUN echo first > /first\n ---> Using cache"),
        "the steps that succeeded are cached: {d:?}"
    );
    assert!(d.stderr.contains("returned a non-zero code: 3"), "{d:?}");
    // From stdin as docker sends it (a Dockerfile alone).
    let s = docker_build(
        env,
        &dir,
        &["-t", "bt-fail", "-"],
        true,
        dockerfile.as_bytes(),
    );
    assert_eq!(s.code, 3, "{s:?}");
    let r = env.berth(&["image", "inspect", "bt-fail"]);
    assert_ne!(r.code, 0, "no tag was made: {r:?}");
    assert_eq!(
        env.berth(&["ps", "-aq"]).ok(),
        containers_before,
        "no step container stays"
    );
    assert_eq!(mounts_under(env), mounts_before, "no mount stays");
    let tmp = env.data_root.join("builder/tmp");
    // Removed just after the answer.
    assert!(
        env.eventually(10, || std::fs::read_dir(&tmp).unwrap().count() == 0),
        "no scratch stays"
    );

    // Bad input: a syntax error names the line; a missing base image; COPY of a missing file.
    let cases: [(&str, &str); 4] = [
        ("FROM busybox\nFOO bar\n", "unknown instruction: FOO"),
        // Pulled, as dockerd does: the test daemons' Docker Hub is a dead loopback port.
        ("FROM no-such-image-here\n", "127.0.0.1:9"),
        ("FROM busybox\nCOPY nothere /x\n", "nothere"),
        ("FROM busybox\nCOPY ../x /x\n", "x"),
    ];
    for (text, want) in cases {
        let dir = context(env, "bad", &[("Dockerfile", text)]);
        let r = berth_build(env, &dir, &["-t", "bt-bad"]);
        assert_ne!(r.code, 0, "{text}: {r:?}");
        assert!(r.stderr.contains(want), "{text}: {r:?}");
        let d = docker_build(env, &dir, &["-t", "bt-bad", "."], true, b"");
        assert_ne!(d.code, 0, "{text}: {d:?}");
        assert!(d.stderr.contains(want), "{text}: {d:?}");
        assert_ne!(env.berth(&["image", "inspect", "bt-bad"]).code, 0);
    }
    assert_eq!(env.berth(&["ps", "-aq"]).ok(), containers_before);
    assert_eq!(mounts_under(env), mounts_before);
}

fn build_cache_in_df_and_pruned(env: &TestEnv) {
    let dir = context(
        env,
        "prune",
        &[
            ("Dockerfile", "FROM busybox\nCOPY f /f\nRUN cat /f > /g\n"),
            ("f", "prune me\n"),
        ],
    );
    berth_build(env, &dir, &["-t", "bt-prune"]).ok();
    let df = env
        .berth(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .ok();
    let count = df
        .lines()
        .find_map(|l| l.strip_prefix("Build Cache "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(count >= 2, "{df}");
    let (status, body) = env.api("POST", "/build/prune?all=1", None);
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        !report["CachesDeleted"].as_array().unwrap().is_empty(),
        "{body}"
    );
    let df = env
        .berth(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .ok();
    assert!(df.lines().any(|l| l == "Build Cache 0"), "{df}");
    let again = berth_build(env, &dir, &["-t", "bt-prune"]).ok();
    assert!(!again.contains("Using cache"), "{again}");
    // The cache survives a daemon restart.
    env.stop_daemon(15);
    env.start_daemon();
    let cached = berth_build(env, &dir, &["-t", "bt-prune"]).ok();
    assert_eq!(cached.matches("Using cache").count(), 2, "{cached}");
    let r = env.berth(&["builder", "prune", "-a", "-f"]).ok();
    assert!(r.contains("Total reclaimed space"), "{r}");
    env.berth(&["rmi", "bt-prune"]).ok();
}

/// A tar of `entries`: (name written as is, content, symlink target).
pub(crate) fn raw_tar(entries: &[(&str, &str, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content, link) in entries {
        let mut h = tar::Header::new_gnu();
        // Written into the header directly: `set_path` refuses `..` and absolute names.
        let bytes = name.as_bytes();
        h.as_gnu_mut().unwrap().name[..bytes.len()].copy_from_slice(bytes);
        h.set_mode(0o644);
        match link {
            Some(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(target).unwrap();
                h.set_size(0);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            None => {
                h.set_size(content.len() as u64);
                h.set_cksum();
                b.append(&h, content.as_bytes()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn build_api_contexts_and_parameters(env: &TestEnv) {
    let dockerfile = "FROM busybox\nCOPY . /c/\nRUN cat /etc/hosts > /hosts && df -k /dev/shm | tail -1 > /shm && ls /sys/class/net > /nets\nCMD [\"cat\", \"/c/f\"]\n";
    let tar = raw_tar(&[
        ("Dockerfile", dockerfile, None),
        ("f", "context file\n", None),
        ("out", "", Some("/etc/passwd")),
        ("up", "", Some("../../outside")),
    ]);
    let dir = env.root.join("build/api");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("ctx.tar");
    std::fs::write(&plain, &tar).unwrap();
    let gz = dir.join("ctx.tar.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, &tar).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let zst = dir.join("ctx.tar.zst");
    std::fs::write(&zst, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
    let query = "t=bt-api&t=bt-api:two&networkmode=none&extrahosts=h1:10.1.2.3&shmsize=16777216\
        &labels=%7B%22k%22%3A%22v%22%7D&rm=1&forcerm=1";
    let mut ids = Vec::new();
    for file in [&plain, &gz, &zst] {
        let (status, body) = env.api(
            "POST",
            &format!("/build?{query}"),
            Some(&format!("@{}", file.display())),
        );
        assert_eq!(status, 200, "{}: {body}", file.display());
        assert!(body.contains("Successfully tagged bt-api:two"), "{body}");
        assert!(!body.contains("errorDetail"), "{body}");
        ids.push(image_id(env, "bt-api"));
    }
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the same context, compressed or not, is one build: {ids:?}"
    );
    assert_eq!(env.berth(&["run", "--rm", "bt-api"]).ok(), "context file");
    let cat = |f: &str| env.berth(&["run", "--rm", "bt-api", "cat", f]).ok();
    assert!(
        cat("/hosts").contains("10.1.2.3\th1") || cat("/hosts").contains("10.1.2.3 h1"),
        "{}",
        cat("/hosts")
    );
    assert_eq!(
        cat("/shm").split_whitespace().nth(1),
        Some("16384"),
        "{}",
        cat("/shm")
    );
    assert_eq!(cat("/nets"), "lo");
    // Symlinks are copied as links, never followed out of the context.
    let links = env
        .berth(&[
            "run",
            "--rm",
            "bt-api",
            "sh",
            "-c",
            "readlink /c/out; readlink /c/up",
        ])
        .ok();
    assert_eq!(links, "/etc/passwd\n../../outside");
    assert_eq!(env.inspect("bt-api", "{{index .Config.Labels \"k\"}}"), "v");
    // A quiet build answers the id alone.
    let (status, body) = env.api(
        "POST",
        &format!("/build?{query}&q=1"),
        Some(&format!("@{}", plain.display())),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("{{\"stream\":\"{}\\n\"}}", ids[0])),
        "{body}"
    );
    assert!(!body.contains("Step 1/"), "{body}");

    env.berth(&["rmi", "bt-api", "bt-api:two"]).ok();
}

fn build_api_refuses_bad_context_tars(env: &TestEnv) {
    let dir = env.root.join("build/api-bad");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A context with `..` or an absolute name is refused; nothing is made or left.
    let containers_before = env.berth(&["ps", "-aq"]).ok();
    for bad in ["../evil", "/abs"] {
        let tar = raw_tar(&[
            ("Dockerfile", "FROM busybox\nCOPY . /\n", None),
            (bad, "x", None),
        ]);
        let path = dir.join("bad.tar");
        std::fs::write(&path, tar).unwrap();
        let (status, body) = env.api(
            "POST",
            "/build?t=bt-api-bad",
            Some(&format!("@{}", path.display())),
        );
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body.contains(bad.trim_start_matches("../").trim_start_matches('/')),
            "{bad}: {body}"
        );
        assert_ne!(env.berth(&["image", "inspect", "bt-api-bad"]).code, 0);
    }
    assert!(!env.root.join("outside").exists() && !env.data_root.join("builder/evil").exists());
    let tmp = env.data_root.join("builder/tmp");
    // Removed just after the answer.
    assert!(
        env.eventually(10, || std::fs::read_dir(&tmp).unwrap().count() == 0),
        "no scratch stays"
    );
    assert_eq!(env.berth(&["ps", "-aq"]).ok(), containers_before);
}

/// Spawns `berth build --no-cache -t bt-NAME` of a step that prints `started` and sleeps
/// `sleep_secs`, and returns once the step has printed it (it runs in its container then).
pub(crate) fn build_until_started(
    env: &TestEnv,
    name: &str,
    sleep_secs: u32,
) -> std::process::Child {
    use std::io::BufRead;
    let dockerfile = format!("FROM busybox\nRUN echo started && sleep {sleep_secs}\n");
    let dir = context(env, name, &[("Dockerfile", &dockerfile)]);
    let tag = format!("bt-{name}");
    let mut child = env.berth_spawn(&["build", "--no-cache", "-t", &tag, dir.to_str().unwrap()]);
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    // The step's own output (the `Step` line names it too).
    while !seen.lines().any(|l| l == "started") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the build ended early: {seen}"
        );
        seen.push_str(&line);
    }
    child
}

fn build_client_leaving_cancels_it(env: &TestEnv) {
    let containers_before = env.berth(&["ps", "-aq"]).ok();
    let mounts_before = mounts_under(env);
    let mut child = build_until_started(env, "leave", 60);
    assert!(
        env.berth(&["ps", "-aq"]).ok() != containers_before,
        "the step runs in a container"
    );
    let t = std::time::Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    let tmp = env.data_root.join("builder/tmp");
    assert!(
        env.eventually(20, || env.berth(&["ps", "-aq"]).ok() == containers_before
            && std::fs::read_dir(&tmp).unwrap().count() == 0),
        "the step container and scratch go when the client leaves"
    );
    assert!(t.elapsed().as_secs() < 20, "not waited for the sleep");
    assert_eq!(mounts_under(env), mounts_before);
    assert_ne!(
        env.berth(&["image", "inspect", "bt-leave"]).code,
        0,
        "nothing is tagged"
    );
}
