//! Integration tests: `berth oci` as a conformant OCI runtime (issue 16). Each test builds its
//! bundles from `runc spec` with a busybox rootfs and drives `berth oci`, side by side with
//! runc where that shows the contract; the seccomp test also goes through the daemon.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "oci_seccomp_profile_without_close_range",
        oci_seccomp_profile_without_close_range,
    ),
    (
        "oci_hooks_run_at_their_points",
        oci_hooks_run_at_their_points,
    ),
    (
        "oci_failing_hooks_leave_nothing",
        oci_failing_hooks_leave_nothing,
    ),
    ("oci_user_namespace", oci_user_namespace),
    (
        "oci_every_root_propagation_creates",
        oci_every_root_propagation_creates,
    ),
    (
        "oci_resources_applied_or_refused",
        oci_resources_applied_or_refused,
    ),
    (
        "oci_daemon_resource_flags_reach_the_cgroup",
        oci_daemon_resource_flags_reach_the_cgroup,
    ),
    (
        "oci_daemon_resource_flags_refused_in_dockers_words",
        oci_daemon_resource_flags_refused_in_dockers_words,
    ),
    ("oci_validation_and_lifecycle", oci_validation_and_lifecycle),
    (
        "oci_init_holds_nothing_of_the_caller_and_features",
        oci_init_holds_nothing_of_the_caller_and_features,
    ),
];

const APPLETS: &[&str] = &[
    "sh", "true", "cat", "echo", "id", "sleep", "grep", "ls", "readlink", "mount", "test",
];

/// A bundle (`runc spec` + busybox rootfs) and a state root for `berth oci`, in a temp dir
/// every user can traverse (a user namespace's root must reach the rootfs).
struct Oci {
    dir: tempfile::TempDir,
}

/// What a `berth oci` call printed.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    /// Where its stdout went: a container `create` made goes on writing there.
    stdout_path: PathBuf,
}

impl Oci {
    fn new() -> Oci {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let oci = Oci { dir };
        let rootfs = oci.bundle().join("rootfs");
        for sub in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(sub)).unwrap();
        }
        // Writable by a user namespace's root too.
        std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let made = Command::new("runc")
            .arg("spec")
            .current_dir(oci.bundle())
            .status();
        if !made.is_ok_and(|s| s.success()) {
            crate::skip("`runc spec` does not work here (scripts/deps.sh installs runc)");
        }
        let mut spec = oci.spec();
        spec["process"]["terminal"] = json!(false);
        // The tests write into the rootfs.
        spec["root"]["readonly"] = json!(false);
        oci.set_spec(&spec);
        oci
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn spec(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.bundle().join("config.json")).unwrap()).unwrap()
    }

    fn set_spec(&self, spec: &Value) {
        std::fs::write(
            self.bundle().join("config.json"),
            serde_json::to_vec_pretty(spec).unwrap(),
        )
        .unwrap();
    }

    /// Sets `process.args`.
    fn args(&self, args: &[&str]) {
        let mut spec = self.spec();
        spec["process"]["args"] = json!(args);
        self.set_spec(&spec);
    }

    /// `runtime --root … ARGS`, its output captured in files (`create` hands its stdio to
    /// the container, whose pipes would stay open).
    fn run(&self, runtime: &Path, state_root: &Path, args: &[&str]) -> Out {
        static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self.dir.path().join(format!("out-{call}"));
        let err = self.dir.path().join(format!("err-{call}"));
        let status = Command::new(runtime)
            .args(if runtime == crate::harness::berth_exe() {
                &["oci"][..]
            } else {
                &[][..]
            })
            .arg("--root")
            .arg(state_root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        Out {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(err).unwrap_or_default(),
            stdout_path: out,
        }
    }

    fn oci(&self, args: &[&str]) -> Out {
        self.run(&crate::harness::berth_exe(), &self.state_root(), args)
    }

    fn runc(&self, args: &[&str]) -> Out {
        self.run(Path::new("runc"), &self.dir.path().join("runc"), args)
    }

    fn create(&self, id: &str) -> Out {
        let bundle = self.bundle();
        self.oci(&["create", "--bundle", bundle.to_str().unwrap(), id])
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.oci(&["state", id]).stdout).unwrap_or_default()
    }

    /// create + start, wait for the program to exit, delete; returns what it printed (the
    /// container's stdout is `create`'s).
    fn run_to_end(&self, id: &str) -> Out {
        let created = self.create(id);
        assert_eq!(created.code, 0, "create {id}: {created:?}");
        let started = self.oci(&["start", id]);
        assert_eq!(started.code, 0, "start {id}: {started:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.state(id)["status"] != "stopped" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let printed = std::fs::read_to_string(&created.stdout_path).unwrap_or_default();
        let stderr_path = created.stdout_path.with_file_name(
            created
                .stdout_path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace("out-", "err-"),
        );
        let container_stderr = std::fs::read_to_string(stderr_path).unwrap_or_default();
        let deleted = self.oci(&["delete", id]);
        assert_eq!(deleted.code, 0, "delete {id}: {deleted:?}");
        Out {
            code: 0,
            stdout: printed,
            stderr: format!("{}{container_stderr}", started.stderr),
            stdout_path: created.stdout_path,
        }
    }

    /// `runc run` of the same bundle: what runc makes of it.
    fn runc_run(&self, id: &str) -> Out {
        let bundle = self.bundle();
        self.runc(&["run", "--bundle", bundle.to_str().unwrap(), id])
    }

    /// Asserts that nothing of container `id` is left: no state, no mount under the bundle,
    /// no process running from it, no cgroup `path`.
    fn assert_nothing_left(&self, id: &str, cgroup: Option<&str>) {
        assert_ne!(self.oci(&["state", id]).code, 0, "{id}: state is left");
        assert!(
            !self.state_root().join(id).exists(),
            "{id}: state dir is left"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let bundle = self.bundle();
        assert!(
            !mounts.contains(bundle.to_str().unwrap()),
            "{id}: a mount under {} is left",
            bundle.display()
        );
        if let Some(path) = cgroup {
            for controller in ["memory", "pids", "cpu", "blkio", "devices"] {
                let dir = Path::new("/sys/fs/cgroup")
                    .join(controller)
                    .join(path.trim_start_matches('/'));
                assert!(!dir.exists(), "{id}: cgroup {} is left", dir.display());
            }
        }
        assert!(
            processes_of(&self.bundle()).is_empty(),
            "{id}: processes are left"
        );
    }
}

/// Pids whose root directory is `bundle`/rootfs (a container of this bundle).
fn processes_of(bundle: &Path) -> Vec<i32> {
    let rootfs = bundle.join("rootfs");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|root| root == rootfs)
        })
        .collect()
}

/// The OCI seccomp profile berth's daemon gives a container (Docker's default), read from
/// the run dir of a container started for the purpose.
fn daemon_profile(env: &TestEnv) -> Value {
    let id = env
        .berth(&["run", "-d", "busybox", "sleep", "30"])
        .ok()
        .trim()
        .to_owned();
    let config = env
        .run_root
        .join("containers")
        .join(&id)
        .join("config.json");
    let spec: Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    env.berth(&["rm", "-f", &id]).ok();
    spec["linux"]["seccomp"].clone()
}

/// `profile` without `close_range` (as profiles before Docker 20.10 and runtime-tools' are).
fn without_close_range(mut profile: Value) -> Value {
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != "close_range");
        }
    }
    profile
}

fn oci_seccomp_profile_without_close_range(env: &TestEnv) {
    let profile = without_close_range(daemon_profile(env));
    assert!(!profile.to_string().contains("close_range"));
    let oci = Oci::new();
    for (no_new_privileges, init_annotation) in [(false, false), (true, false), (true, true)] {
        let mut spec = oci.spec();
        spec["linux"]["seccomp"] = profile.clone();
        spec["process"]["noNewPrivileges"] = json!(no_new_privileges);
        // runc's template denies every device in the cgroup: the standard nodes stay usable.
        spec["process"]["args"] = json!([
            "sh",
            "-c",
            "echo > /dev/null && echo works; ls /proc/self/fd | wc -l"
        ]);
        if init_annotation {
            spec["annotations"] = json!({"org.berth.init": "true"});
        }
        oci.set_spec(&spec);
        let out = oci.run_to_end("seccomp");
        assert!(
            out.stdout.starts_with("works\n"),
            "no_new_privs {no_new_privileges}, --init {init_annotation}: {out:?}"
        );
        // Only stdio (and ls's own directory) are open: nothing of the runtime leaked.
        assert_eq!(
            out.stdout.lines().nth(1).map(str::trim),
            Some("4"),
            "{out:?}"
        );
        let runc = oci.runc_run("seccomp-runc");
        assert!(runc.stdout.starts_with("works\n"), "runc: {runc:?}");
    }
    // The same profile through the daemon (Docker's profile format takes these fields).
    let file = env.root.join("no-close-range.json");
    std::fs::write(&file, serde_json::to_vec(&profile).unwrap()).unwrap();
    let opt = format!("seccomp={}", file.display());
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox",
            "echo",
            "daemon works",
        ])
        .ok();
    assert_eq!(out, "daemon works");
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--init",
            "--security-opt",
            &opt,
            "--security-opt",
            "no-new-privileges",
            "busybox",
            "echo",
            "init works",
        ])
        .ok();
    assert_eq!(out, "init works");
}

/// A hook that appends its name, its namespaces and its stdin to `log`.
fn logging_hook(name: &str, log: &Path, timeout: Option<u64>) -> Value {
    let script = format!(
        "echo {name} mnt=$(readlink /proc/self/ns/mnt) $(cat) >> {}",
        log.display()
    );
    let mut hook = json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["A=1"]});
    if let Some(timeout) = timeout {
        hook["timeout"] = json!(timeout);
    }
    hook
}

fn oci_hooks_run_at_their_points(_env: &TestEnv) {
    let oci = Oci::new();
    let log = oci.dir.path().join("hooks.log");
    // startContainer runs inside the container: its path and what it writes are there.
    let inner = oci.bundle().join("rootfs/bin/start-hook");
    std::fs::write(
        &inner,
        "#!/bin/sh\necho startContainer mnt=$(readlink /proc/self/ns/mnt) $(cat) >> /start.log\n",
    )
    .unwrap();
    std::fs::set_permissions(&inner, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut spec = oci.spec();
    spec["process"]["args"] = json!(["sh", "-c", "cat /start.log; sleep 30"]);
    spec["annotations"] = json!({"org.example": "hooks"});
    spec["hooks"] = json!({
        "prestart": [logging_hook("prestart", &log, Some(5))],
        "createRuntime": [logging_hook("createRuntime", &log, Some(5))],
        "createContainer": [logging_hook("createContainer", &log, None)],
        "startContainer": [{"path": "/bin/start-hook"}],
        "poststart": [logging_hook("poststart", &log, None)],
        "poststop": [logging_hook("poststop", &log, None)],
    });
    oci.set_spec(&spec);
    let created = oci.create("hooks");
    assert_eq!(created.code, 0, "{created:?}");
    let pid = oci.state("hooks")["pid"].as_i64().unwrap();
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let container_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let state_of =
        |line: &str| -> Value { serde_json::from_str(&line[line.find('{').unwrap()..]).unwrap() };
    for (line, name, mnt) in [
        (lines[0], "prestart", &host_mnt),
        (lines[1], "createRuntime", &host_mnt),
        (lines[2], "createContainer", &container_mnt),
    ] {
        assert!(
            line.starts_with(&format!("{name} mnt={}", mnt.display())),
            "{name} runs in the wrong mount namespace: {line}"
        );
        let state = state_of(line);
        assert_eq!(state["status"], "creating", "{line}");
        assert_eq!(state["id"], "hooks");
        assert_eq!(state["pid"], pid, "{line}");
        assert_eq!(state["annotations"]["org.example"], "hooks");
        assert_eq!(state["bundle"], oci.bundle().to_str().unwrap());
    }
    assert_eq!(oci.oci(&["start", "hooks"]).code, 0);
    assert!(wait_for(|| std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .count()
        == 4));
    let text = std::fs::read_to_string(&log).unwrap();
    let poststart = text.lines().nth(3).unwrap();
    assert!(
        poststart.starts_with(&format!("poststart mnt={}", host_mnt.display())),
        "{text}"
    );
    assert_eq!(state_of(poststart)["status"], "running");
    let start_log = std::fs::read_to_string(oci.bundle().join("rootfs/start.log")).unwrap();
    assert!(
        start_log.starts_with(&format!("startContainer mnt={}", container_mnt.display())),
        "{start_log}"
    );
    let start_state: Value =
        serde_json::from_str(&start_log[start_log.find('{').unwrap()..]).unwrap();
    assert_eq!(start_state["status"], "created");
    assert_eq!(start_state["pid"], pid);
    assert_eq!(oci.oci(&["delete", "--force", "hooks"]).code, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    let poststop = text.lines().nth(4).expect("poststop ran at delete");
    assert_eq!(state_of(poststop)["status"], "stopped");
    oci.assert_nothing_left("hooks", None);
}

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn oci_failing_hooks_leave_nothing(_env: &TestEnv) {
    let oci = Oci::new();
    oci.args(&["sleep", "30"]);
    let cgroup = format!("/berth-oci-hooks-{}", std::process::id());
    let failing = |field: &str, hook: Value| {
        let mut spec = oci.spec();
        spec["linux"]["cgroupsPath"] = json!(cgroup);
        spec["hooks"] = json!({ field: [hook] });
        oci.set_spec(&spec);
        let started = Instant::now();
        let out = oci.create("failing");
        (out, started.elapsed())
    };
    let fail = json!({"path": "/bin/sh", "args": ["sh", "-c", "echo no way >&2; exit 3"]});
    for field in ["prestart", "createRuntime", "createContainer"] {
        let (out, _) = failing(field, fail.clone());
        assert_ne!(out.code, 0, "{field}: {out:?}");
        assert!(
            out.stderr.contains(&format!("hooks.{field}")),
            "{field}: {out:?}"
        );
        assert!(
            out.stderr.contains("exit status 3, output: no way"),
            "{field}: {out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
        oci.assert_nothing_left("failing", Some(&cgroup));
    }
    let slow = json!({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1});
    let (out, took) = failing("createRuntime", slow);
    assert!(
        out.stderr
            .contains("hooks.createRuntime /bin/sleep: timed out"),
        "{out:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "killed at its timeout: {took:?}"
    );
    oci.assert_nothing_left("failing", Some(&cgroup));
    let (out, _) = failing("createRuntime", json!({"path": "/nonexistent/hook"}));
    assert!(
        out.stderr
            .contains("invalid runtime spec: hooks.createRuntime: /nonexistent/hook"),
        "{out:?}"
    );
    oci.assert_nothing_left("failing", Some(&cgroup));
    // A failing startContainer hook fails start; the container stops.
    let (out, _) = failing("startContainer", fail.clone());
    assert_eq!(out.code, 0, "{out:?}");
    let started = oci.oci(&["start", "failing"]);
    assert_ne!(started.code, 0);
    assert!(
        started.stderr.contains("hooks.startContainer /bin/sh"),
        "{started:?}"
    );
    assert!(wait_for(|| oci.state("failing")["status"] == "stopped"));
    assert_eq!(oci.oci(&["delete", "failing"]).code, 0);
    oci.assert_nothing_left("failing", Some(&cgroup));
    // A failing poststart hook is a warning: the container runs.
    let (out, _) = failing("poststart", fail);
    assert_eq!(out.code, 0, "{out:?}");
    let started = oci.oci(&["start", "failing"]);
    assert_eq!(started.code, 0, "{started:?}");
    assert!(
        started.stderr.contains("warning: hooks.poststart"),
        "{started:?}"
    );
    assert_eq!(oci.state("failing")["status"], "running");
    assert_eq!(oci.oci(&["delete", "--force", "failing"]).code, 0);
    oci.assert_nothing_left("failing", Some(&cgroup));
}

fn oci_user_namespace(_env: &TestEnv) {
    let oci = Oci::new();
    let mut spec = oci.spec();
    spec["process"]["args"] = json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; ls /dev/null /dev/pts/ptmx; \
         for m in /proc /sys /dev/pts /dev/mqueue; do grep -q \" $m \" /proc/self/mountinfo && echo mounted $m; done; \
         touch /tmp/x"
    ]);
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    spec["linux"]["uidMappings"] = map.clone();
    spec["linux"]["gidMappings"] = map;
    oci.set_spec(&spec);
    let out = oci.run_to_end("userns");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"0"), "root inside: {out:?}");
    let uid_map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(uid_map, ["0", "200000", "65536"], "{out:?}");
    assert!(out.stdout.contains("/dev/null"), "{out:?}");
    assert!(out.stdout.contains("/dev/pts/ptmx"), "{out:?}");
    for mount in ["/proc", "/sys", "/dev/pts", "/dev/mqueue"] {
        assert!(
            out.stdout.contains(&format!("mounted {mount}\n")),
            "{mount}: {out:?}"
        );
    }
    // The file the container's root made is the mapped root's on the host.
    let meta = std::fs::metadata(oci.bundle().join("rootfs/tmp/x"))
        .unwrap_or_else(|e| panic!("/tmp/x: {e}: {out:?}"));
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 200000);
    let runc = oci.runc_run("userns-runc");
    assert!(runc.stdout.starts_with("0\n"), "runc: {runc:?}");
    // Bad maps are refused naming the field, and nothing is left.
    let mut bad = spec.clone();
    bad["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": 200000, "size": 100},
        {"containerID": 50, "hostID": 300000, "size": 100}
    ]);
    oci.set_spec(&bad);
    let out = oci.create("badmap");
    assert!(
        out.stderr
            .contains("linux.uidMappings: ranges 0 and 1 overlap inside the container"),
        "{out:?}"
    );
    oci.assert_nothing_left("badmap", None);
    let mut unmapped_root = spec;
    unmapped_root["linux"]["gidMappings"] =
        json!([{"containerID": 1, "hostID": 200000, "size": 10}]);
    oci.set_spec(&unmapped_root);
    let out = oci.create("badmap");
    assert!(out.stderr.contains("linux.gidMappings: gid 0"), "{out:?}");
    oci.assert_nothing_left("badmap", None);
}

/// The optional fields of `/`'s line in the container's mountinfo (`shared:N`, `master:N`,
/// `unbindable`).
fn oci_every_root_propagation_creates(_env: &TestEnv) {
    let oci = Oci::new();
    let shared_dir = oci.dir.path().join("shared");
    std::fs::create_dir(&shared_dir).unwrap();
    let base = oci.spec();
    for (value, expected) in [
        ("shared", "shared:"),
        ("rshared", "shared:"),
        ("slave", "slave"),
        ("rslave", "slave"),
        ("private", ""),
        ("rprivate", ""),
        ("unbindable", "unbindable"),
        ("runbindable", "unbindable"),
    ] {
        let mut spec = base.clone();
        spec["linux"]["rootfsPropagation"] = json!(value);
        spec["process"]["args"] = json!(["cat", "/proc/self/mountinfo"]);
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind",
            "source": shared_dir.to_str().unwrap(),
            "options": ["rbind", if value.contains("shared") { "rshared" } else { "rslave" }]
        }));
        oci.set_spec(&spec);
        let out = oci.run_to_end(&format!("prop-{value}"));
        // The mount point is field 5.
        let line_of = |point: &str| {
            out.stdout
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(point))
                .unwrap_or_default()
                .to_owned()
        };
        let root_line = line_of("/");
        assert!(!root_line.is_empty(), "{value}: {out:?}");
        // Fields 7.. up to " - " are the optional ones.
        let optional = root_line
            .split(" - ")
            .next()
            .unwrap_or_default()
            .split(' ')
            .skip(6)
            .collect::<Vec<_>>()
            .join(" ");
        match expected {
            "" => assert!(optional.is_empty(), "{value}: {root_line}"),
            // A slave of the host's `/` (master:N), or private where that one is private.
            "slave" => assert!(
                optional.is_empty() || optional.starts_with("master:"),
                "{value}: {root_line}"
            ),
            tag => assert!(optional.contains(tag), "{value}: {root_line}"),
        }
        // A slave of a private host mount is private: only "shared" shows for sure.
        let data_line = line_of("/data");
        assert_eq!(
            data_line.contains("shared:"),
            value.contains("shared"),
            "{value}: /data is {data_line}"
        );
        oci.assert_nothing_left(&format!("prop-{value}"), None);
    }
    let mut spec = oci.spec();
    spec["linux"]["rootfsPropagation"] = json!("sideways");
    oci.set_spec(&spec);
    let out = oci.create("prop-bad");
    assert_eq!(
        out.stderr.trim(),
        "berth oci: invalid runtime spec: linux.rootfsPropagation: unknown propagation \"sideways\""
    );
    oci.assert_nothing_left("prop-bad", None);
}

/// Reads a file of container `path`'s cgroup in a v1 controller.
fn cgroup_file(controller: &str, path: &str, file: &str) -> String {
    std::fs::read_to_string(
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(path.trim_start_matches('/'))
            .join(file),
    )
    .unwrap_or_else(|e| format!("<{e}>"))
}

fn oci_resources_applied_or_refused(_env: &TestEnv) {
    if berth_cgroups_v2() {
        crate::skip("the cgroup v1 checks need a v1 host (v2 is covered by fixture trees)");
    }
    let oci = Oci::new();
    oci.args(&["sleep", "30"]);
    let cgroup = format!("/berth-oci-res-{}", std::process::id());
    let block = block_device();
    let mut spec = oci.spec();
    spec["linux"]["cgroupsPath"] = json!(cgroup);
    spec["linux"]["resources"] = json!({
        "memory": {"limit": 64 << 20, "swappiness": 10, "disableOOMKiller": true},
        "cpu": {"shares": 512, "cpus": "0", "mems": "0"},
        "blockIO": {
            "throttleReadBpsDevice": [{"major": block.0, "minor": block.1, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": block.0, "minor": block.1, "rate": 100}]
        },
        "pids": {"limit": 50}
    });
    oci.set_spec(&spec);
    let out = oci.create("res");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        cgroup_file("memory", &cgroup, "memory.swappiness").trim(),
        "10"
    );
    assert!(cgroup_file("memory", &cgroup, "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(cgroup_file("cpuset", &cgroup, "cpuset.mems").trim(), "0");
    let device = format!("{}:{}", block.0, block.1);
    assert_eq!(
        cgroup_file("blkio", &cgroup, "blkio.throttle.read_bps_device").trim(),
        format!("{device} 1048576")
    );
    assert_eq!(
        cgroup_file("blkio", &cgroup, "blkio.throttle.write_iops_device").trim(),
        format!("{device} 100")
    );
    assert_eq!(oci.oci(&["delete", "--force", "res"]).code, 0);
    oci.assert_nothing_left("res", Some(&cgroup));
    // What this host's cgroups lack is refused, naming the setting, and nothing is left.
    let blkio = Path::new("/sys/fs/cgroup/blkio");
    let weighs = blkio.join("blkio.weight").exists() || blkio.join("blkio.bfq.weight").exists();
    let mut refusals = vec![(
        "linux.resources.memory.swappiness",
        json!({"memory": {"swappiness": 101}}),
    )];
    if !weighs {
        refusals.push((
            "linux.resources.blockIO.weight",
            json!({"blockIO": {"weight": 300}}),
        ));
    }
    let kmem = Path::new("/sys/fs/cgroup/memory/memory.kmem.limit_in_bytes");
    let kernel_ignores_kmem = kmem.exists() && kernel_version() >= (6, 1);
    if kernel_ignores_kmem || !kmem.exists() {
        refusals.push((
            "linux.resources.memory.kernel",
            json!({"memory": {"kernel": 67108864}}),
        ));
    }
    for (field, resources) in refusals.into_iter().chain([
        (
            "linux.resources.hugepageLimits",
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1048576}]}),
        ),
        (
            "linux.resources.network",
            json!({"network": {"classID": 1}}),
        ),
        (
            "linux.resources.rdma",
            json!({"rdma": {"mlx5_0": {"hcaHandles": 1}}}),
        ),
        (
            "linux.resources.unified",
            json!({"unified": {"memory.high": "1000000"}}),
        ),
    ]) {
        let mut spec = oci.spec();
        spec["linux"]["resources"] = resources;
        oci.set_spec(&spec);
        let out = oci.create("res-bad");
        assert_ne!(out.code, 0, "{field}: {out:?}");
        assert!(out.stderr.contains(field), "{field}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        oci.assert_nothing_left("res-bad", Some(&cgroup));
    }
}

/// Lazily unmounts everything at or below `path` (deepest first).
fn unmount_below(path: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(path))
        .collect();
    points.reverse();
    for point in points {
        let _ = Command::new("umount").arg("-l").arg(point).status();
    }
}

/// (major, minor) of the running kernel.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}

fn berth_cgroups_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// major:minor of a block device of this host (the one / is on, or its disk).
fn block_device() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/partitions").unwrap();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                f.get(3)?.to_string(),
            ))
        })
        // Whole disks: minor 0 of their major (vda, sda, nvme0n1).
        .find(|(_, minor, name): &(u64, u64, String)| *minor == 0 && !name.starts_with("loop"))
        .map(|(major, minor, _)| (major, minor))
        .unwrap_or_else(|| crate::skip("no block device in /proc/partitions"))
}

fn oci_validation_and_lifecycle(_env: &TestEnv) {
    let oci = Oci::new();
    oci.args(&["sleep", "30"]);
    let refused = |edit: &dyn Fn(&mut Value), field: &str| {
        let before = oci.spec();
        let mut spec = before.clone();
        edit(&mut spec);
        oci.set_spec(&spec);
        let out = oci.create("refused");
        oci.set_spec(&before);
        assert_ne!(out.code, 0, "{field}: {out:?}");
        assert!(out.stderr.contains(field), "{field}: {out:?}");
        oci.assert_nothing_left("refused", None);
    };
    refused(&|s| s["ociVersion"] = json!("2.0.0"), "ociVersion");
    refused(&|s| s["ociVersion"] = json!("1.9.0"), "ociVersion");
    if !Path::new("/sys/kernel/security/apparmor").exists() {
        refused(
            &|s| s["process"]["apparmorProfile"] = json!("docker-default"),
            "process.apparmorProfile",
        );
    }
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        refused(
            &|s| s["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0"),
            "process.selinuxLabel",
        );
    }
    refused(
        &|s| {
            s["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|ns| ns["type"] != "uts")
        },
        "hostname",
    );
    // No mount namespace: accepted (the container chroots into the rootfs), and what it
    // mounted on the host goes at delete.
    let mut spec = oci.spec();
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|ns| ns["type"] != "mount");
    spec["linux"]["maskedPaths"] = json!([]);
    spec["linux"]["readonlyPaths"] = json!([]);
    spec["root"]["readonly"] = json!(false);
    spec["process"]["args"] = json!([
        "sh",
        "-c",
        "ls /bin/busybox && test -e /proc/self/status && echo chrooted"
    ]);
    oci.set_spec(&spec);
    let out = oci.run_to_end("nomnt");
    assert!(out.stdout.contains("chrooted"), "{out:?}");
    oci.assert_nothing_left("nomnt", None);
    let runc = oci.runc_run("nomnt-runc");
    assert!(runc.stdout.contains("chrooted"), "runc: {runc:?}");
    // runc, without a mount namespace, leaves its mounts on the host.
    unmount_below(&oci.bundle());
    // Lifecycle as runc reports it.
    oci.args(&["sleep", "30"]);
    assert_eq!(oci.create("life").code, 0);
    assert_eq!(oci.state("life")["status"], "created");
    assert_eq!(oci.oci(&["start", "life"]).code, 0);
    assert_eq!(oci.state("life")["status"], "running");
    let out = oci.oci(&["delete", "life"]);
    assert!(out.stderr.contains("container is running"), "{out:?}");
    assert_eq!(oci.oci(&["kill", "life", "KILL"]).code, 0);
    assert!(wait_for(|| oci.state("life")["status"] == "stopped"));
    assert_eq!(oci.state("life")["pid"], 0);
    assert_ne!(
        oci.oci(&["kill", "life"]).code,
        0,
        "a stopped container cannot be killed"
    );
    assert_eq!(oci.oci(&["delete", "life"]).code, 0);
    oci.assert_nothing_left("life", None);
}

fn oci_init_holds_nothing_of_the_caller_and_features(_env: &TestEnv) {
    let oci = Oci::new();
    oci.args(&["sleep", "30"]);
    // The init is a clone of `berth oci create`: it holds nothing of its caller's (here a
    // lock file, inherited without close-on-exec), not even while it waits to be started.
    let lock_path = oci.dir.path().join("lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
    // SAFETY: F_SETFD on a descriptor this test owns; integers only.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let created = oci.create("fds");
    drop(lock);
    assert_eq!(created.code, 0, "{created:?}");
    let pid = oci.state("fds")["pid"].as_i64().unwrap();
    let held: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect();
    assert!(!held.contains(&lock_path), "the init holds {held:?}");
    assert_eq!(oci.oci(&["delete", "fds"]).code, 0);
    oci.assert_nothing_left("fds", None);
    // features: what berth implements, as runc prints it.
    let out = oci.oci(&["features"]);
    let features: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(features["ociVersionMin"], "1.0.0");
    assert!(
        features["hooks"]
            .as_array()
            .unwrap()
            .contains(&json!("createRuntime"))
    );
    assert!(
        features["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!("user"))
    );
    assert_eq!(features["linux"]["cgroup"]["v1"], !berth_cgroups_v2());
}

/// The container flags of issue 16 item 5 (`--memory-swappiness`, `--oom-kill-disable`,
/// `--oom-score-adj`, `--cpuset-mems`, `--device-cgroup-rule`), through `berth run` and the
/// docker CLI: the cgroup files say what was asked, inspect shows it, `update` changes what
/// Docker lets it change.
fn oci_daemon_resource_flags_reach_the_cgroup(env: &TestEnv) {
    if berth_cgroups_v2() {
        crate::skip("swappiness and oom_control are v1 files (v2 refuses them, naming them)");
    }
    let cg = crate::harness::cgroup_parent();
    let flags = [
        "-d",
        "--memory",
        "64m",
        "--memory-swappiness",
        "10",
        "--oom-kill-disable",
        "--oom-score-adj",
        "300",
        "--cpuset-mems",
        "0",
        "--device-cgroup-rule",
        "c 42:7 rm",
    ];
    for (client, name) in [("berth", "resflags-b"), ("docker", "resflags-d")] {
        let mut args = vec!["run", "--name", name];
        args.extend(flags);
        args.extend(["busybox", "sleep", "60"]);
        let id = if client == "berth" {
            env.berth(&args).ok()
        } else {
            env.docker(&args).expect("docker").ok()
        };
        let id = id.lines().last().unwrap_or_default().to_owned();
        let path = format!("/{cg}/{id}");
        assert_eq!(
            cgroup_file("memory", &path, "memory.swappiness").trim(),
            "10"
        );
        assert!(
            cgroup_file("memory", &path, "memory.oom_control").contains("oom_kill_disable 1"),
            "{client}"
        );
        assert_eq!(cgroup_file("cpuset", &path, "cpuset.mems").trim(), "0");
        assert!(
            cgroup_file("devices", &path, "devices.list")
                .lines()
                .any(|l| l == "c 42:7 rm"),
            "{client}: {}",
            cgroup_file("devices", &path, "devices.list")
        );
        let adj = env
            .berth(&["exec", name, "cat", "/proc/1/oom_score_adj"])
            .ok();
        assert_eq!(adj, "300", "{client}");
        assert_eq!(
            env.inspect(
                name,
                "{{.HostConfig.MemorySwappiness}} {{.HostConfig.OomKillDisable}} \
                 {{.HostConfig.OomScoreAdj}} {{.HostConfig.CpusetMems}} \
                 {{json .HostConfig.DeviceCgroupRules}}"
            ),
            "10 true 300 0 [\"c 42:7 rm\"]",
            "{client}"
        );
        env.berth(&["rm", "-f", name]).ok();
    }
    rt_flags_reach_the_cgroup(env, &cg);
}

/// `--cpu-rt-period`/`--cpu-rt-runtime` (only where the kernel has real-time group
/// scheduling): as with dockerd, the parent cgroup needs a real-time budget first (dockerd's
/// `--cpu-rt-runtime`; here the test gives it), and `update` changes it.
fn rt_flags_reach_the_cgroup(env: &TestEnv, cg: &str) {
    let parent = Path::new("/sys/fs/cgroup/cpu").join(cg);
    if !Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() || !parent.exists() {
        return;
    }
    let rt = ["--cpu-rt-period", "1000000", "--cpu-rt-runtime", "10000"];
    // Without a budget in the parent the kernel refuses it (EINVAL): an error naming the file.
    let mut args = vec!["run", "--rm", "--name", "rt-nobudget"];
    args.extend(rt);
    args.extend(["busybox", "true"]);
    let r = env.berth(&args);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("cpu.rt_runtime_us"), "{r:?}");
    std::fs::write(parent.join("cpu.rt_runtime_us"), "50000").unwrap();
    let mut args = vec!["run", "-d", "--name", "rt"];
    args.extend(rt);
    args.extend(["busybox", "sleep", "60"]);
    let id = env.berth(&args).ok();
    let path = format!("/{cg}/{id}");
    assert_eq!(
        cgroup_file("cpu", &path, "cpu.rt_runtime_us").trim(),
        "10000"
    );
    assert_eq!(
        cgroup_file("cpu", &path, "cpu.rt_period_us").trim(),
        "1000000"
    );
    env.docker(&[
        "update",
        "--cpu-rt-runtime",
        "20000",
        "--cpuset-mems",
        "0",
        "rt",
    ])
    .expect("docker")
    .ok();
    assert_eq!(
        cgroup_file("cpu", &path, "cpu.rt_runtime_us").trim(),
        "20000"
    );
    assert_eq!(
        env.inspect(
            "rt",
            "{{.HostConfig.CpuRealtimePeriod}} {{.HostConfig.CpuRealtimeRuntime}} {{.HostConfig.CpusetMems}}"
        ),
        "1000000 20000 0"
    );
    env.berth(&["rm", "-f", "rt"]).ok();
    // The budget goes back once the container's cgroup (which holds part of it) is gone.
    let released = env.eventually(5, || {
        std::fs::write(parent.join("cpu.rt_runtime_us"), "0").is_ok()
    });
    assert!(released, "the parent's real-time budget could not be reset");
}

/// Out-of-range values of those flags are refused at create in dockerd's words, through the
/// API and the CLI, and leave no container.
fn oci_daemon_resource_flags_refused_in_dockers_words(env: &TestEnv) {
    for (flags, words) in [
        (
            &["--memory-swappiness", "101"][..],
            "Invalid value: 101, valid memory swappiness range is 0-100",
        ),
        (
            &["--cpu-rt-period", "1000", "--cpu-rt-runtime", "2000"][..],
            "cpu real-time runtime cannot be higher than cpu real-time period",
        ),
        (
            &["--cpuset-mems", "0-4095"][..],
            "Requested memory nodes are not available - requested 0-4095",
        ),
        (
            &["--device-cgroup-rule", "x 1:2 r"][..],
            "invalid device cgroup rule format: 'x 1:2 r'",
        ),
    ] {
        let mut args = vec!["create", "--name", "refused"];
        args.extend(flags);
        args.extend(["busybox", "true"]);
        let r = env.berth(&args);
        assert_ne!(r.code, 0, "{flags:?}: {r:?}");
        assert!(r.stderr.contains(words), "{flags:?}: {r:?}");
        assert_ne!(env.berth(&["inspect", "refused"]).code, 0, "{flags:?}");
    }
    // Through the API too (-1 is "unset", as the docker CLI means it).
    let (status, body) = env.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"MemorySwappiness":-2}}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Invalid value: -2, valid memory swappiness range is 0-100"));
}
