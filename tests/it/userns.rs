//! `berth daemon --userns-remap` (issue 16 item 3, daemon side): a private daemon started with
//! `--userns-remap default` runs containers in a user namespace of `berthremap`'s subordinate
//! range; `--userns=host` opts out. Volumes, `cp`, `export` and `commit` of a remapped
//! container shift ids as dockerd's do; the daemon's `--cpu-rt-runtime` gives the cgroup
//! parent a real-time budget.
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "userns_remap_default_maps_container_root",
        userns_remap_default_maps_container_root,
    ),
    (
        "userns_remap_volumes_belong_to_the_mapped_root",
        userns_remap_volumes_belong_to_the_mapped_root,
    ),
    ("userns_remap_cp_shifts_ids", userns_remap_cp_shifts_ids),
    (
        "userns_remap_export_and_commit_are_portable",
        userns_remap_export_and_commit_are_portable,
    ),
    (
        "daemon_cpu_rt_runtime_budgets_the_parent",
        daemon_cpu_rt_runtime_budgets_the_parent,
    ),
];

/// A daemon of its own (as hardening.rs's `SecondDaemon`), with extra flags.
struct RemapDaemon {
    dir: PathBuf,
    host: String,
    table: String,
    child: Option<Child>,
}

impl RemapDaemon {
    fn start(env: &TestEnv, extra: &[&str]) -> RemapDaemon {
        Self::start_under(env, extra, &crate::harness::cgroup_parent())
    }

    /// [`Self::start`] with the containers' cgroups under `cgroup_parent`.
    fn start_under(env: &TestEnv, extra: &[&str], cgroup_parent: &str) -> RemapDaemon {
        let dir = PathBuf::from(format!("/tmp/bu{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let table = format!("bu{}", std::process::id());
        let host = format!("unix://{}", dir.join("s").display());
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new(crate::harness::berth_exe())
            .args([
                "daemon",
                "-H",
                &host,
                "--bridge",
                "none",
                "--nft-table",
                &table,
            ])
            .args(["--cgroup-parent", cgroup_parent])
            .arg("--data-root")
            .arg(dir.join("d"))
            .arg("--exec-root")
            .arg(&dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        let daemon = RemapDaemon {
            child: Some(child),
            dir,
            host,
            table,
        };
        let socket = daemon.dir.join("s");
        let up = env.eventually(20, || UnixStream::connect(&socket).is_ok());
        assert!(up, "daemon did not come up: {}", daemon.log());
        let boot = daemon.berth(&["image", "bootstrap", "busybox"]);
        assert!(boot.status.success(), "bootstrap: {boot:?}");
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn berth(&self, args: &[&str]) -> Output {
        Command::new(crate::harness::berth_exe())
            .args(args)
            .env("BERTH_HOST", &self.host)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    /// `berth ARGS` with `input` on its stdin.
    fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(crate::harness::berth_exe())
            .args(args)
            .env("BERTH_HOST", &self.host)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run berth");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("wait berth")
    }

    /// `berth ARGS` that must succeed; its stdout as bytes.
    fn bytes(&self, args: &[&str]) -> Vec<u8> {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out.stdout
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RemapDaemon {
    fn drop(&mut self) {
        let ids = self.berth(&["ps", "-aq"]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.berth(&args);
        }
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        let _ = crate::harness::remove_network_state(&self.table, &self.table);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The subordinate uid range `berthremap` has in `file` (start).
fn remap_start(file: &str) -> u32 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some("berthremap")).then(|| f.next()?.parse().ok())?
        })
        .expect("berthremap has a range")
}

fn userns_remap_default_maps_container_root(env: &TestEnv) {
    let d = RemapDaemon::start(env, &["--userns-remap", "default"]);
    let (uid, gid) = (remap_start("/etc/subuid"), remap_start("/etc/subgid"));
    let info = d.ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(info.contains("name=userns"), "{info}");
    // Root inside; a file it makes is owned on the host by the range's first id.
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "mapped",
        "busybox",
        "sh",
        "-c",
        "id; touch /made; sleep 60",
    ]);
    let out = d.ok(&["exec", "mapped", "id"]);
    assert!(out.starts_with("uid=0(root) gid=0(root)"), "{out}");
    let map = d.ok(&["exec", "mapped", "cat", "/proc/self/uid_map"]);
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields, ["0", &uid.to_string(), "65536"], "{map}");
    let made = d.dir.join("d/image/containers").join(&id).join("diff/made");
    assert!(env.eventually(5, || made.exists()), "{}", made.display());
    let meta = std::fs::metadata(&made).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    // The image's files are owned by the mapped root too (a copy of each layer per mapping).
    let ls = d.ok(&["exec", "mapped", "stat", "-c", "%u:%g", "/bin/busybox"]);
    assert_eq!(ls, "0:0");
    // --userns=host opts out: real root, the host's layers.
    let out = d.ok(&[
        "run",
        "--rm",
        "--userns=host",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    // Privileged needs --userns=host, in dockerd's words.
    let r = d.berth(&["create", "--privileged", "busybox", "true"]);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr)
            .contains("privileged mode is incompatible with user namespaces")
    );
    d.ok(&["rm", "-f", "mapped"]);
    // Start time with and without the remap (the layer copies already exist).
    let time = |extra: &[&str]| {
        let mut best = u128::MAX;
        for _ in 0..5 {
            let mut args = vec!["run", "--rm"];
            args.extend(extra);
            args.extend(["busybox", "true"]);
            let t = Instant::now();
            d.ok(&args);
            best = best.min(t.elapsed().as_micros());
        }
        best
    };
    let (mapped, host) = (time(&[]), time(&["--userns=host"]));
    eprintln!(
        "run --rm busybox true: best of 5 {mapped} us with --userns-remap, {host} us with --userns=host"
    );
}

/// `(uid, gid)` of `path` on the host.
fn owner(path: &Path) -> (u32, u32) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (meta.uid(), meta.gid())
}

/// Each entry of a tar stream (name without a leading `./` or trailing `/`) with the owner
/// its header carries.
fn tar_owners(bytes: &[u8]) -> BTreeMap<String, (u64, u64)> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for entry in archive.entries().expect("tar") {
        let entry = entry.expect("tar entry");
        let h = entry.header();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        out.insert(name, (h.uid().expect("uid"), h.gid().expect("gid")));
    }
    out
}

/// A tar of one file `name` owned by `ids` (what `docker cp -` sends).
fn one_file_tar(name: &str, ids: (u64, u64), body: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_uid(ids.0);
    h.set_gid(ids.1);
    h.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut h, name, body).expect("tar");
    builder.into_inner().expect("tar")
}

/// As dockerd's remapped root: volumes under `<data_root>/<uid>.<gid>/volumes`, a new
/// volume's `_data` owned by the mapped root (the container's root writes to it), image
/// content copied into an empty volume with the owners the container sees (shifted on
/// disk), an existing bind source left as it is, a missing one made for the mapped root.
fn userns_remap_volumes_belong_to_the_mapped_root(env: &TestEnv) {
    let d = RemapDaemon::start(env, &["--userns-remap", "default"]);
    let (uid, gid) = (remap_start("/etc/subuid"), remap_start("/etc/subgid"));
    d.ok(&["volume", "create", "vol"]);
    let mountpoint = d.ok(&["volume", "inspect", "vol", "--format", "{{.Mountpoint}}"]);
    let expected = d.dir.join(format!("d/{uid}.{gid}/volumes/vol/_data"));
    assert_eq!(Path::new(&mountpoint), expected);
    assert_eq!(owner(&expected), (uid, gid));
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "vol:/v",
        "busybox",
        "sh",
        "-c",
        "touch /v/made && stat -c %u:%g /v/made",
    ]);
    assert_eq!(out, "0:0");
    assert_eq!(owner(&expected.join("made")), (uid, gid));
    // Copy-up: an image whose /data and /data/f belong to other users (made unremapped).
    d.ok(&[
        "run",
        "--name",
        "maker",
        "--userns=host",
        "busybox",
        "sh",
        "-c",
        "mkdir /data && touch /data/f && chown 1000:1000 /data && chown 1001:1002 /data/f",
    ]);
    d.ok(&["commit", "maker", "owned:1"]);
    let bind = d.dir.join("bind");
    std::fs::create_dir(&bind).unwrap();
    let missing = d.dir.join("missing/below");
    let binds = format!("{}:/b", bind.display());
    let made = format!("{}:/m", missing.display());
    let out = d.ok(&[
        "run", "--rm", "-v", "cu:/data", "-v", &binds, "-v", &made, "owned:1", "stat", "-c",
        "%u:%g", "/data", "/data/f", "/b",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["1000:1000", "1001:1002", "65534:65534"]
    );
    let cu = d.ok(&["volume", "inspect", "cu", "--format", "{{.Mountpoint}}"]);
    assert_eq!(owner(Path::new(&cu)), (uid + 1000, gid + 1000));
    assert_eq!(owner(&Path::new(&cu).join("f")), (uid + 1001, gid + 1002));
    // Binds are never chowned; a missing source is made for the mapped root (dockerd's
    // MkdirAllAndChownNew), its parent too.
    assert_eq!(owner(&bind), (0, 0));
    assert_eq!(owner(&missing), (uid, gid));
    assert_eq!(owner(missing.parent().unwrap()), (uid, gid));
}

/// `cp` into a remapped container writes the archive's (container) ids shifted on disk, and
/// `cp` out gives the container's ids back, running or stopped.
fn userns_remap_cp_shifts_ids(env: &TestEnv) {
    let d = RemapDaemon::start(env, &["--userns-remap", "default"]);
    let (uid, gid) = (remap_start("/etc/subuid"), remap_start("/etc/subgid"));
    let id = d.ok(&["run", "-d", "--name", "cpc", "busybox", "sleep", "60"]);
    let upper = d.dir.join("d/image/containers").join(&id).join("diff");
    for (state, name) in [("running", "in-run"), ("stopped", "in-stop")] {
        if state == "stopped" {
            d.ok(&["stop", "-t", "0", "cpc"]);
        }
        for (ids, file) in [
            ((0, 0), format!("{name}-root")),
            ((1000, 1001), name.into()),
        ] {
            let tar = one_file_tar(&file, ids, b"x");
            let out = d.berth_stdin(&["cp", "-", "cpc:/"], &tar);
            assert!(out.status.success(), "{state}: {out:?}");
            let on_disk = owner(&upper.join(&file));
            assert_eq!(
                on_disk,
                (uid + ids.0 as u32, gid + ids.1 as u32),
                "{state} {file}"
            );
            let back = tar_owners(&d.bytes(&["cp", &format!("cpc:/{file}"), "-"]));
            assert_eq!(back.get(file.as_str()), Some(&ids), "{state}: {back:?}");
        }
        // The image's files come out as the container's root's.
        let back = tar_owners(&d.bytes(&["cp", "cpc:/bin/busybox", "-"]));
        assert_eq!(back.get("busybox"), Some(&(0, 0)), "{state}: {back:?}");
        if state == "running" {
            let seen = d.ok(&[
                "exec",
                "cpc",
                "stat",
                "-c",
                "%u:%g",
                "/in-run",
                "/in-run-root",
            ]);
            assert_eq!(
                seen.split_whitespace().collect::<Vec<_>>(),
                ["1000:1001", "0:0"]
            );
        }
    }
}

/// The export and the committed layer of a remapped container carry the container's ids:
/// the same headers as an unremapped container's, and the committed image runs the same
/// without the remap.
fn userns_remap_export_and_commit_are_portable(env: &TestEnv) {
    let d = RemapDaemon::start(env, &["--userns-remap", "default"]);
    let script =
        "echo hi > /f && mkdir /d && touch /d/g && chown 1000:1000 /d && chown 1001:1002 /d/g";
    d.ok(&["run", "--name", "mapped", "busybox", "sh", "-c", script]);
    d.ok(&[
        "run",
        "--name",
        "plain",
        "--userns=host",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let mapped = tar_owners(&d.bytes(&["export", "mapped"]));
    let plain = tar_owners(&d.bytes(&["export", "plain"]));
    for name in ["f", "d", "d/g", "bin/busybox", "etc/passwd"] {
        assert!(mapped.contains_key(name), "{name}: {mapped:?}");
    }
    assert_eq!(mapped.get("d/g"), Some(&(1001, 1002)));
    assert_eq!(mapped.get("f"), Some(&(0, 0)));
    assert_eq!(mapped, plain, "export of a remapped container differs");
    d.ok(&["commit", "mapped", "portable:mapped"]);
    d.ok(&["commit", "plain", "portable:plain"]);
    let stat = ["stat", "-c", "%u:%g", "/f", "/d", "/d/g", "/bin/busybox"];
    let want = ["0:0", "1000:1000", "1001:1002", "0:0"];
    for (image, extra) in [
        ("portable:mapped", Some("--userns=host")),
        ("portable:mapped", None),
        ("portable:plain", None),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(extra);
        args.push(image);
        args.extend(stat);
        let out = d.ok(&args);
        assert_eq!(
            out.split_whitespace().collect::<Vec<_>>(),
            want,
            "{image} {extra:?}"
        );
    }
    // The layer commit made is the unremapped one's, byte for byte in its headers: the saved
    // images' top layers list the same owners.
    let top_layer = |image: &str| {
        let saved = d.bytes(&["save", image]);
        let mut archive = tar::Archive::new(&saved[..]);
        let mut layers: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut manifest = Vec::new();
        for entry in archive.entries().expect("tar") {
            let mut entry = entry.expect("entry");
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut body).expect("read");
            if name == "manifest.json" {
                manifest = body;
            } else {
                layers.insert(name, body);
            }
        }
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest");
        let top = manifest[0]["Layers"]
            .as_array()
            .and_then(|l| l.last())
            .and_then(|l| l.as_str())
            .expect("layers")
            .to_owned();
        tar_owners(&layers[&top])
    };
    assert_eq!(top_layer("portable:mapped"), top_layer("portable:plain"));
}

/// The daemon's `--cpu-rt-period`/`--cpu-rt-runtime` (dockerd's): the containers' cgroup
/// parent and its ancestors get the real-time budget before a container starts, so a
/// container's own `--cpu-rt-runtime` fits under it.
fn daemon_cpu_rt_runtime_budgets_the_parent(env: &TestEnv) {
    let cpu = Path::new("/sys/fs/cgroup/cpu");
    if !cpu.join("cpu.rt_runtime_us").exists() {
        crate::skip("this kernel has no real-time group scheduling (no cpu.rt_runtime_us)");
    }
    let top = crate::harness::cgroup_parent();
    let parent = format!("{top}/rt{}", std::process::id());
    let read = |dir: &Path| {
        std::fs::read_to_string(dir.join("cpu.rt_runtime_us"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let top_before = read(&cpu.join(&top));
    {
        let d = RemapDaemon::start_under(
            env,
            &["--cpu-rt-period", "1000000", "--cpu-rt-runtime", "95000"],
            &parent,
        );
        let id = d.ok(&[
            "run",
            "-d",
            "--cpu-rt-period",
            "1000000",
            "--cpu-rt-runtime",
            "10000",
            "busybox",
            "sleep",
            "60",
        ]);
        assert_eq!(read(&cpu.join(&top)), "95000");
        assert_eq!(read(&cpu.join(&parent)), "95000");
        assert_eq!(read(&cpu.join(&parent).join(&id)), "10000");
        // More than the parent's budget is the kernel's refusal, naming the file.
        let r = d.berth(&[
            "run",
            "--rm",
            "--cpu-rt-runtime",
            "200000",
            "busybox",
            "true",
        ]);
        assert!(!r.status.success());
        assert!(
            String::from_utf8_lossy(&r.stderr).contains("cpu.rt_runtime_us"),
            "{r:?}"
        );
        d.ok(&["rm", "-f", &id]);
    }
    // Give the budget back (deepest first) and remove the parent the daemon made.
    let dir = cpu.join(&parent);
    let released = env.eventually(5, || {
        std::fs::write(dir.join("cpu.rt_runtime_us"), "0").is_ok()
    });
    assert!(released, "the parent's budget could not be released");
    // The daemon made its parent in every hierarchy.
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }
    std::fs::write(
        cpu.join(&top).join("cpu.rt_runtime_us"),
        if top_before.is_empty() {
            "0"
        } else {
            &top_before
        },
    )
    .expect("restore the budget");
}
