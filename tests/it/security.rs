//! Integration tests: the escapes of the hardening issue, each an attack that once worked
//! (sysctls reaching the host, exec reaching the host's root through /proc, an image's /dev
//! symlink writing into a host directory, any host path run as a runtime).

use std::path::{Path, PathBuf};

use crate::Test;
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[
    (
        "security_sysctls_never_reach_the_host",
        security_sysctls_never_reach_the_host,
    ),
    (
        "security_exec_never_exposes_the_host_root",
        security_exec_never_exposes_the_host_root,
    ),
    (
        "security_dev_symlink_stays_inside_the_root",
        security_dev_symlink_stays_inside_the_root,
    ),
    (
        "security_only_configured_runtimes_run",
        security_only_configured_runtimes_run,
    ),
];

fn host_sysctl(key: &str) -> String {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

/// Puts a host sysctl back if a failing run changed it, so a red test leaves the host as it was.
struct RestoreSysctl(&'static str, String);

impl Drop for RestoreSysctl {
    fn drop(&mut self) {
        let path = Path::new("/proc/sys").join(self.0.replace('.', "/"));
        let _ = std::fs::write(path, &self.1);
    }
}

// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn security_sysctls_never_reach_the_host(env: &TestEnv) {
    // A global sysctl: refused in runc's words, through the CLI and the API; the host keeps its
    // value.
    let before = host_sysctl("kernel.core_uses_pid");
    let _restore = RestoreSysctl("kernel.core_uses_pid", before.clone());
    let flipped = if before == "0" { "1" } else { "0" };
    let arg = format!("kernel.core_uses_pid={flipped}");
    let r = env.berth(&["run", "--rm", "--sysctl", &arg, "busybox", "true"]);
    assert_ne!(r.code, 0, "a global sysctl was accepted: {r:?}");
    assert!(
        r.stderr
            .contains("sysctl \"kernel.core_uses_pid\" is not in a separate kernel namespace"),
        "{r:?}"
    );
    assert_eq!(host_sysctl("kernel.core_uses_pid"), before);
    let body = format!(
        r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{"Sysctls":{{"kernel.core_uses_pid":"{flipped}"}}}}}}"#
    );
    let (status, answer) = env.api("POST", "/containers/create?name=sysctl-api", Some(&body));
    if status == 201 {
        // Refused at start at the latest, as runc would.
        let started = env.berth(&["start", "sysctl-api"]);
        env.berth(&["rm", "-f", "sysctl-api"]).ok();
        assert_ne!(started.code, 0, "{started:?}");
    } else {
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer.contains("is not in a separate kernel namespace"),
            "{answer}"
        );
    }
    assert_eq!(host_sysctl("kernel.core_uses_pid"), before);

    // Namespaced sysctls are applied inside the container, not on the host.
    let port_start = host_sysctl("net.ipv4.ip_unprivileged_port_start");
    let _restore_port = RestoreSysctl("net.ipv4.ip_unprivileged_port_start", port_start.clone());
    let shm_rmid = host_sysctl("kernel.shm_rmid_forced");
    let _restore_shm = RestoreSysctl("kernel.shm_rmid_forced", shm_rmid.clone());
    let shm_flipped = if shm_rmid == "0" { "1" } else { "0" };
    let out = env
        .berth(&[
            "run",
            "--rm",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=555",
            "--sysctl",
            &format!("kernel.shm_rmid_forced={shm_flipped}"),
            "busybox",
            "cat",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
            "/proc/sys/kernel/shm_rmid_forced",
        ])
        .ok();
    assert_eq!(out, format!("555\n{shm_flipped}"));
    assert_eq!(
        host_sysctl("net.ipv4.ip_unprivileged_port_start"),
        port_start
    );
    assert_eq!(host_sysctl("kernel.shm_rmid_forced"), shm_rmid);

    // Namespaced, but the container shares the host's namespace: refused.
    let r = env.berth(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=555",
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(
            "sysctl \"net.ipv4.ip_unprivileged_port_start\" not allowed in host network namespace"
        ),
        "{r:?}"
    );
    let r = env.berth(&[
        "run",
        "--rm",
        "--ipc",
        "host",
        "--sysctl",
        &format!("kernel.shm_rmid_forced={shm_flipped}"),
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(
            "sysctl \"kernel.shm_rmid_forced\" is not allowed in the hosts ipc namespace"
        ),
        "{r:?}"
    );
    assert_eq!(
        host_sysctl("net.ipv4.ip_unprivileged_port_start"),
        port_start
    );
    assert_eq!(host_sysctl("kernel.shm_rmid_forced"), shm_rmid);
    // A key that tries to climb out of /proc/sys.
    let r = env.berth(&[
        "run",
        "--rm",
        "--sysctl",
        "net/../../kernel/core_uses_pid=1",
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert_eq!(host_sysctl("kernel.core_uses_pid"), before);
    assert!(env.berth(&["ps", "-aq"]).ok().is_empty());
}

/// A directory on the host that only a process outside the container can name.
fn host_only_dir(env: &TestEnv, name: &str) -> PathBuf {
    let dir = env.root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("marker"), "host\n").unwrap();
    dir
}

fn monitor_pid(env: &TestEnv, name: &str) -> i32 {
    let id = env.inspect(name, "{{.Id}}");
    let pid = std::fs::read_to_string(env.run_root.join("containers").join(id).join("monitor.pid"))
        .unwrap();
    pid.trim().parse().unwrap()
}

fn security_exec_never_exposes_the_host_root(env: &TestEnv) {
    // A container with CAP_SYS_PTRACE watches /proc for a process whose root is the host's and
    // writes through it. Every exec'd process must already be in the container's mount
    // namespace when it appears in the container's pid namespace.
    let dir = host_only_dir(env, "exec-escape");
    let script = format!(
        "while :; do for p in /proc/[0-9]*; do \
           if [ -e \"$p/root{d}/marker\" ]; then echo escaped > \"$p/root{d}/escaped\"; fi; \
           if [ -e \"$p/cwd{d}/marker\" ]; then echo escaped > \"$p/cwd{d}/escaped\"; fi; \
         done; done",
        d = dir.display()
    );
    env.berth(&[
        "run",
        "-d",
        "--name",
        "ptracer",
        "--cap-add",
        "SYS_PTRACE",
        "busybox",
        "sh",
        "-c",
        &script,
    ])
    .ok();
    for _ in 0..20 {
        env.berth(&["exec", "ptracer", "true"]).ok();
        if dir.join("escaped").exists() {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let escaped = dir.join("escaped").exists();
    // The processes that set containers up never run a writable host binary: the monitor (and
    // so every process it forks into a container) runs berth from a read-only mount.
    let monitor = monitor_pid(env, "ptracer");
    let exe = PathBuf::from(format!("/proc/{monitor}/exe"));
    let flags = nix_statvfs_flags(&exe);
    env.berth(&["rm", "-f", "ptracer"]).ok();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        !escaped,
        "a container wrote on the host through an exec'd process"
    );
    assert!(
        flags & libc::ST_RDONLY != 0,
        "the monitor's executable is a writable host file"
    );
}

fn nix_statvfs_flags(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: an all-zero statvfs is a valid value of the plain C struct the call fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid, writable statvfs for the call.
    let ret = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(ret, 0, "statvfs {}", path.display());
    st.f_flag
}

fn security_dev_symlink_stays_inside_the_root(env: &TestEnv) {
    // An image whose /dev (and /dev/pts, /dev/shm, /dev/mqueue) lead to host directories: the
    // runtime must make its nodes, links and mounts inside the container, never there.
    let dir = host_only_dir(env, "dev-escape");
    let (dev, shm) = (dir.join("dev"), dir.join("shm"));
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::create_dir_all(&shm).unwrap();
    let (dev_link, shm_link) = (dev.clone(), shm.clone());
    env.image_from_tree("devlink:1", move |tree| {
        std::os::unix::fs::symlink(&dev_link, tree.join("dev")).unwrap();
        std::os::unix::fs::symlink(&shm_link, tree.join("shm")).unwrap();
    });
    let tree_with_dev_dir = |tree: &Path, shm: &Path| {
        std::fs::create_dir_all(tree.join("dev")).unwrap();
        std::os::unix::fs::symlink(shm, tree.join("dev/shm")).unwrap();
        std::os::unix::fs::symlink(shm, tree.join("dev/pts")).unwrap();
        std::os::unix::fs::symlink(shm, tree.join("dev/mqueue")).unwrap();
        std::os::unix::fs::symlink(shm, tree.join("dev/console")).unwrap();
    };
    let shm_for_image = shm.clone();
    env.image_from_tree("devlink:2", move |tree| {
        tree_with_dev_dir(tree, &shm_for_image)
    });
    for image in ["devlink:1", "devlink:2"] {
        let r = env.berth(&[
            "run",
            "--rm",
            image,
            "sh",
            "-c",
            "echo ok > /dev/null; echo ran",
        ]);
        assert_eq!(r.ok(), "ran", "{image}");
        let r = env.berth(&["run", "--rm", "-t", image, "true"]);
        assert_eq!(r.code, 0, "{image} with a terminal: {r:?}");
    }
    let left = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    };
    let (in_dev, in_shm) = (left(&dev), left(&shm));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // procfs through a symlink is refused as runc refuses it.
    let proc_link = dir.join("proc");
    std::fs::create_dir_all(&proc_link).unwrap();
    let proc_target = proc_link.clone();
    env.image_from_tree("proclink:1", move |tree| {
        std::os::unix::fs::symlink(&proc_target, tree.join("proc")).unwrap();
    });
    let r = env.berth(&["run", "--rm", "proclink:1", "true"]);
    let in_proc = left(&proc_link);
    env.berth(&["rmi", "devlink:1", "devlink:2", "proclink:1"])
        .ok();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        in_dev.is_empty(),
        "berth wrote into a host /dev target: {in_dev:?}"
    );
    assert!(
        in_shm.is_empty(),
        "berth wrote into a host directory: {in_shm:?}"
    );
    assert!(!mounts.contains(&dir.display().to_string()));
    assert_ne!(r.code, 0, "proc was mounted through a symlink: {r:?}");
    assert!(r.stderr.contains("ordinary directory"), "{r:?}");
    assert!(in_proc.is_empty(), "{in_proc:?}");
}

fn security_only_configured_runtimes_run(env: &TestEnv) {
    // Any host path given as the runtime would run as root: only configured names are accepted.
    let marker = env.root.join("evil-runtime-ran");
    let script = env.root.join("evil-runtime");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = script.to_str().unwrap();
    let expected = format!("Unknown runtime specified {path}");
    let r = env.berth(&["run", "--rm", "--runtime", path, "busybox", "true"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains(&expected), "{r:?}");
    if let Some(r) = env.docker(&["run", "--rm", "--runtime", path, "busybox", "true"]) {
        assert_ne!(r.code, 0, "{r:?}");
        assert!(r.stderr.contains(&expected), "{r:?}");
    }
    let body =
        format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{"Runtime":"{path}"}}}}"#);
    let (status, answer) = env.api("POST", "/containers/create", Some(&body));
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains(&expected), "{answer}");
    let r = env.berth(&["run", "--rm", "--runtime", "nosuch", "busybox", "true"]);
    assert!(
        r.stderr.contains("Unknown runtime specified nosuch"),
        "{r:?}"
    );
    assert!(
        !marker.exists(),
        "a runtime path that was never configured ran"
    );
    assert!(env.berth(&["ps", "-aq"]).ok().is_empty());
    // A runtime the daemon was started with (`--add-runtime`, see the harness) runs.
    if Path::new("/usr/sbin/runc").exists() || Path::new("/usr/bin/runc").exists() {
        let out = env
            .berth(&[
                "run",
                "--rm",
                "--runtime",
                "test-runc",
                "busybox",
                "echo",
                "via",
                "alias",
            ])
            .ok();
        assert_eq!(out, "via alias");
    }
    std::fs::remove_file(&script).unwrap();
}
