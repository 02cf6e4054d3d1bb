//! `berth daemon --userns-remap` (issue 16 item 3, daemon side): a private daemon started with
//! `--userns-remap default` runs containers in a user namespace of `berthremap`'s subordinate
//! range; `--userns=host` opts out.
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[(
    "userns_remap_default_maps_container_root",
    userns_remap_default_maps_container_root,
)];

/// A daemon of its own (as hardening.rs's `SecondDaemon`), with extra flags.
struct RemapDaemon {
    dir: PathBuf,
    host: String,
    table: String,
    child: Option<Child>,
}

impl RemapDaemon {
    fn start(env: &TestEnv, extra: &[&str]) -> RemapDaemon {
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
            .args(["--cgroup-parent", &crate::harness::cgroup_parent()])
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
