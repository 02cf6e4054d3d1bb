//! Root tests of berth-cgroups on the real host (cgroup v1 here; pure v2 hosts are covered
//! by fixtures in the unit tests), `#[ignore]`d unless asked for (see `berth_testing`). Each
//! test makes its own parent cgroup `/berth-test-<pid>-<n>` and removes it, its processes and its children
//! on the way out, even when an assertion fails.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use berth_cgroups::{Cgroup, CgroupError, CgroupVersion, Resources};
use berth_errdefs::{Classify, ErrorKind};

const ROOT: &str = "/sys/fs/cgroup";
const V1_CONTROLLERS: [&str; 8] = [
    "memory", "cpu", "cpuacct", "pids", "freezer", "cpuset", "blkio", "devices",
];

/// A test's cgroup under a unique parent, with the processes it started; dropping it
/// kills them, destroys the cgroup and removes the parent from every hierarchy.
struct Fixture {
    parent: String,
    cgroup: Cgroup,
    children: Vec<Child>,
}

impl Fixture {
    fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let parent = format!(
            "berth-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let cgroup = Cgroup::new(Path::new(ROOT), &format!("/{parent}/ctr"));
        Fixture {
            parent,
            cgroup,
            children: Vec::new(),
        }
    }

    fn dir(&self, controller: &str) -> PathBuf {
        Path::new(ROOT)
            .join(controller)
            .join(&self.parent)
            .join("ctr")
    }

    fn read(&self, controller: &str, file: &str) -> String {
        fs::read_to_string(self.dir(controller).join(file))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Starts `script` under `sh`, blocked on reading a line from stdin, and moves it into
    /// the cgroup; `release` lets it go on, so it runs (and allocates) inside the cgroup.
    fn spawn_blocked(&mut self, script: &str) -> (i32, ChildStdin, ChildStdout) {
        let mut child = Command::new("/bin/busybox")
            .args(["sh", "-c", &format!("read go; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        self.children.push(child);
        self.cgroup.add_pid(pid).unwrap();
        (pid, stdin, stdout)
    }

    fn child(&mut self) -> &mut Child {
        self.children.last_mut().unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.cgroup.thaw();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let destroyed = self.cgroup.destroy();
        for controller in V1_CONTROLLERS {
            let _ = fs::remove_dir(Path::new(ROOT).join(controller).join(&self.parent));
        }
        if !thread::panicking() {
            destroyed.unwrap();
            for controller in V1_CONTROLLERS {
                let parent = Path::new(ROOT).join(controller).join(&self.parent);
                assert!(!parent.exists(), "{} left behind", parent.display());
            }
        }
    }
}

fn release(stdin: &mut ChildStdin) {
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
}

/// Waits until `pid` runs `comm` (its `exec` happened inside the cgroup).
fn wait_for_comm(pid: i32, comm: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        != comm
    {
        assert!(Instant::now() < deadline, "pid {pid} never became {comm}");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn v1_lifecycle_limits_freeze_stats_destroy() {
    berth_testing::require_root();
    assert_eq!(Cgroup::detect(Path::new(ROOT)), CgroupVersion::V1);
    let mut fixture = Fixture::new();
    let resources = Resources {
        memory: Some(64 << 20),
        memory_swap: Some(128 << 20),
        memory_reservation: Some(32 << 20),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpu_shares: Some(512),
        cpuset_cpus: Some("0".into()),
        pids_limit: Some(64),
        ..Default::default()
    };
    fixture.cgroup.create(&resources).unwrap();

    assert_eq!(fixture.read("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(
        fixture.read("memory", "memory.memsw.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(
        fixture.read("memory", "memory.soft_limit_in_bytes"),
        "33554432"
    );
    assert_eq!(fixture.read("cpu", "cpu.shares"), "512");
    assert_eq!(fixture.read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(fixture.read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(fixture.read("pids", "pids.max"), "64");
    assert_eq!(fixture.read("cpuset", "cpuset.cpus"), "0");
    let host_mems = fs::read_to_string(Path::new(ROOT).join("cpuset/cpuset.mems")).unwrap();
    assert_eq!(fixture.read("cpuset", "cpuset.mems"), host_mems.trim());
    let devices = fixture.read("devices", "devices.list");
    for rule in ["c 1:3 rwm", "c 136:* rwm", "c 10:200 rwm", "b *:* m"] {
        assert!(
            devices.lines().any(|l| l == rule),
            "{rule} missing from {devices}"
        );
    }
    assert!(!devices.contains("a *:* rwm"), "{devices}");

    let (pid, mut stdin, _stdout) = fixture.spawn_blocked("exec /usr/bin/sleep 30");
    let proc_cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for controller in V1_CONTROLLERS {
        let line = format!(":{controller}:/{}/ctr", fixture.parent);
        assert!(
            proc_cgroup.lines().any(|l| l.ends_with(&line)),
            "{line} not in {proc_cgroup}"
        );
    }
    assert_eq!(fixture.cgroup.pids().unwrap(), vec![pid]);
    release(&mut stdin);
    wait_for_comm(pid, "sleep");

    fixture.cgroup.freeze().unwrap();
    assert!(fixture.cgroup.frozen().unwrap());
    assert_eq!(fixture.read("freezer", "freezer.state"), "FROZEN");
    fixture.cgroup.thaw().unwrap();
    assert!(!fixture.cgroup.frozen().unwrap());
    assert_eq!(fixture.read("freezer", "freezer.state"), "THAWED");

    let stats = fixture.cgroup.stats().unwrap();
    assert!(stats.cpu_usage_ns > 0, "{stats:?}");
    assert!(!stats.percpu_usage_ns.is_empty(), "{stats:?}");
    assert!(stats.memory_usage > 0, "{stats:?}");
    assert_eq!(stats.memory_limit, 64 << 20);
    assert_eq!((stats.pids_current, stats.pids_limit), (1, 64));

    // Lowering: the limit must go before memsw; raising past memsw: memsw first.
    let lower = Resources {
        memory: Some(32 << 20),
        memory_swap: Some(48 << 20),
        pids_limit: Some(0),
        ..Default::default()
    };
    fixture.cgroup.update(&lower).unwrap();
    assert_eq!(fixture.read("memory", "memory.limit_in_bytes"), "33554432");
    assert_eq!(
        fixture.read("memory", "memory.memsw.limit_in_bytes"),
        "50331648"
    );
    assert_eq!(fixture.read("pids", "pids.max"), "max");
    let raise = Resources {
        memory: Some(256 << 20),
        memory_swap: Some(512 << 20),
        ..Default::default()
    };
    fixture.cgroup.update(&raise).unwrap();
    assert_eq!(fixture.read("memory", "memory.limit_in_bytes"), "268435456");
    assert_eq!(
        fixture.read("memory", "memory.memsw.limit_in_bytes"),
        "536870912"
    );
    assert!(!fixture.cgroup.oom_killed());

    fixture.child().kill().unwrap();
    fixture.child().wait().unwrap();
    fixture.cgroup.destroy().unwrap();
    for controller in V1_CONTROLLERS {
        assert!(
            !fixture.dir(controller).exists(),
            "{controller} cgroup left behind"
        );
    }
    assert_eq!(fixture.cgroup.pids().unwrap(), Vec::<i32>::new());
    assert_eq!(
        fixture.cgroup.stats().unwrap(),
        berth_cgroups::Stats::default()
    );
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn v1_oom_kill_is_reported() {
    berth_testing::require_root();
    let mut fixture = Fixture::new();
    let limit = Resources {
        memory: Some(16 << 20),
        memory_swap: Some(16 << 20),
        ..Default::default()
    };
    fixture.cgroup.create(&limit).unwrap();
    // dd fills a 64 MiB buffer from /dev/zero: four times the limit.
    let (_pid, mut stdin, _stdout) =
        fixture.spawn_blocked("exec /bin/busybox dd if=/dev/zero of=/dev/null bs=64M count=1");
    release(&mut stdin);
    let status = fixture.child().wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(fixture.cgroup.oom_killed());
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn v1_lowering_memory_below_usage_is_a_conflict() {
    berth_testing::require_root();
    let mut fixture = Fixture::new();
    fixture
        .cgroup
        .create(&Resources {
            memory: Some(256 << 20),
            ..Default::default()
        })
        .unwrap();
    // The shell keeps a 24 MB variable (anonymous memory; this host has no swap).
    let (_pid, mut stdin, stdout) = fixture.spawn_blocked(
        "v=$(/bin/busybox head -c 24000000 /dev/zero | /bin/busybox tr '\\0' a); echo ready; read done",
    );
    release(&mut stdin);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let usage = fixture.cgroup.stats().unwrap().memory_usage;
    assert!(usage > 24_000_000, "usage {usage}");

    let err = fixture
        .cgroup
        .update(&Resources {
            memory: Some(8 << 20),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, CgroupError::Write { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("memory.limit_in_bytes"), "{err}");
    assert_eq!(fixture.read("memory", "memory.limit_in_bytes"), "268435456");
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn v1_destroy_waits_for_exiting_processes_and_nested_cgroups() {
    berth_testing::require_root();
    let mut fixture = Fixture::new();
    fixture.cgroup.create(&Resources::default()).unwrap();
    let (_pid, _stdin, _stdout) = fixture.spawn_blocked("exec /usr/bin/sleep 30");
    // A cgroup the container made inside its own.
    fs::create_dir(fixture.dir("pids").join("nested")).unwrap();
    // The process leaves only 100 ms into destroy, which must keep retrying until then.
    let mut child = fixture.children.pop().unwrap();
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        child.kill().unwrap();
        child.wait().unwrap();
    });
    let started = Instant::now();
    let destroyed = fixture.cgroup.destroy();
    let waited = started.elapsed();
    killer.join().unwrap();
    destroyed.unwrap();
    assert!(
        waited >= Duration::from_millis(100),
        "destroy returned after {waited:?}"
    );
    for controller in V1_CONTROLLERS {
        assert!(
            !fixture.dir(controller).exists(),
            "{controller} cgroup left behind"
        );
    }
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn v1_create_cost() {
    berth_testing::require_root();
    let fixture = Fixture::new();
    // The first container under a parent also makes the parent; measure the ones after.
    fixture.cgroup.create(&Resources::default()).unwrap();
    let resources = Resources {
        memory: Some(64 << 20),
        pids_limit: Some(100),
        ..Default::default()
    };
    let mut total = Duration::ZERO;
    const N: u32 = 20;
    for i in 0..N {
        let cgroup = Cgroup::new(Path::new(ROOT), &format!("/{}/bench{i}", fixture.parent));
        let started = Instant::now();
        cgroup.create(&resources).unwrap();
        total += started.elapsed();
        cgroup.destroy().unwrap();
    }
    eprintln!("create: {:?} on average over {N}", total / N);
}

/// A whole disk of this host (`MAJ`, `MIN`), for the blkio files.
fn whole_disk() -> Option<(i64, i64)> {
    let text = fs::read_to_string("/proc/partitions").ok()?;
    text.lines().skip(2).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (major, minor, name) = (fields.first()?, fields.get(1)?, fields.get(3)?);
        (*minor == "0" && !name.starts_with("loop") && !name.starts_with("ram"))
            .then(|| Some((major.parse().ok()?, 0)))
            .flatten()
    })
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn v1_oci_settings_are_applied_or_refused() {
    berth_testing::require_root();
    assert_eq!(Cgroup::detect(Path::new(ROOT)), CgroupVersion::V1);
    let fixture = Fixture::new();
    let cpu_dir = Path::new(ROOT).join("cpu");
    let has = |file: &str| cpu_dir.join(file).exists();
    let disk = whole_disk();
    let resources = Resources {
        memory_swappiness: Some(17),
        oom_kill_disable: Some(true),
        kernel_memory_tcp: Some(16 << 20),
        cpuset_mems: Some("0".into()),
        cpu_idle: has("cpu.idle").then_some(0),
        cpu_burst: has("cpu.cfs_burst_us").then_some(1000),
        block_io: disk.map(|(major, minor)| berth_cgroups::BlockIo {
            read_bps: vec![berth_cgroups::ThrottleDevice {
                major,
                minor,
                rate: 1 << 20,
            }],
            write_iops: vec![berth_cgroups::ThrottleDevice {
                major,
                minor,
                rate: 100,
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    fixture.cgroup.create(&resources).unwrap();
    assert_eq!(fixture.read("memory", "memory.swappiness"), "17");
    assert!(
        fixture
            .read("memory", "memory.oom_control")
            .contains("oom_kill_disable 1")
    );
    assert_eq!(
        fixture.read("memory", "memory.kmem.tcp.limit_in_bytes"),
        "16777216"
    );
    assert_eq!(fixture.read("cpuset", "cpuset.mems"), "0");
    if let Some((major, minor)) = disk {
        assert_eq!(
            fixture.read("blkio", "blkio.throttle.read_bps_device"),
            format!("{major}:{minor} 1048576")
        );
        assert_eq!(
            fixture.read("blkio", "blkio.throttle.write_iops_device"),
            format!("{major}:{minor} 100")
        );
    }
    if has("cpu.cfs_burst_us") {
        assert_eq!(fixture.read("cpu", "cpu.cfs_burst_us"), "1000");
    }
    // Kernels since 6.1 take a kernel memory limit and keep none: refused, naming it.
    let kernel = Resources {
        kernel_memory: Some(64 << 20),
        ..Default::default()
    };
    match fixture.cgroup.update(&kernel) {
        Ok(()) => assert_eq!(
            fixture.read("memory", "memory.kmem.limit_in_bytes"),
            "67108864"
        ),
        Err(err) => {
            assert!(err.to_string().starts_with("memory.kernel: "), "{err}");
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        }
    }
    // A scheduler without weights (none here has blkio.weight) refuses them.
    let weight = Resources {
        block_io: Some(berth_cgroups::BlockIo {
            weight: Some(500),
            ..Default::default()
        }),
        ..Default::default()
    };
    let weighed = fixture.dir("blkio").join("blkio.weight").exists()
        || fixture.dir("blkio").join("blkio.bfq.weight").exists();
    match fixture.cgroup.update(&weight) {
        Ok(()) => assert!(weighed),
        Err(err) => {
            assert!(!weighed);
            assert!(err.to_string().starts_with("blockIO.weight: "), "{err}");
        }
    }
    // Unified files are cgroup v2's.
    let unified = Resources {
        unified: vec![("memory.high".into(), "1".into())],
        ..Default::default()
    };
    let err = fixture.cgroup.update(&unified).unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::NotSupported {
                setting: "unified",
                ..
            }
        ),
        "{err}"
    );
}

/// Spawns `sleep 30` (forked, as the runtime does), moved into the fixture's cgroup by the
/// child itself before its exec (`SelfJoin`, as the runtime's init and exec helper do) or,
/// without `self_join`, by pid once it runs; returns its pid.
fn spawn_joined(fixture: &mut Fixture, self_join: bool) -> i32 {
    use std::os::unix::process::CommandExt;
    let join = if self_join {
        fixture.cgroup.self_join().unwrap()
    } else {
        None
    };
    let mut command = Command::new("/bin/busybox");
    command.args(["sleep", "30"]);
    // SAFETY: the closure runs in the forked child before exec; `join` only writes to fds
    // it already holds (no allocation, no lock) unless it fails.
    unsafe {
        command.pre_exec(move || match &join {
            Some(join) => join.join().map_err(std::io::Error::other),
            None => Ok(()),
        });
    }
    let child = command.spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    fixture.children.push(child);
    if !self_join {
        fixture.cgroup.add_pid(pid).unwrap();
    }
    pid
}

#[test]
#[ignore = "needs root: BERTH_TEST_ROOT=1, --include-ignored (scripts/test.sh)"]
fn v1_a_child_moves_itself_in_without_the_rcu_wait_of_a_move_by_pid() {
    berth_testing::require_root();
    let mut fixture = Fixture::new();
    fixture.cgroup.create(&Resources::default()).unwrap();
    // Every controller: the child's /proc/<pid>/cgroup names the cgroup.
    let pid = spawn_joined(&mut fixture, true);
    wait_for_comm(pid, "busybox");
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let wanted = format!(":/{}/ctr", fixture.parent);
    for controller in V1_CONTROLLERS {
        let line = cgroups
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .unwrap_or("")
                    .split(',')
                    .any(|c| c == controller)
            })
            .unwrap_or_else(|| panic!("{controller} missing in {cgroups}"));
        assert!(line.ends_with(&wanted), "{controller}: {line}");
    }
    assert!(fixture.cgroup.pids().unwrap().contains(&pid));
    // The cost: after an idle spell a move by pid waits for an RCU grace period (~9-13 ms
    // here), a move of oneself does not. Fork, exec and move, interleaved, medians of seven.
    let (mut by_pid, mut by_self) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        for (self_join, samples) in [(true, &mut by_self), (false, &mut by_pid)] {
            thread::sleep(Duration::from_millis(100));
            let t = Instant::now();
            spawn_joined(&mut fixture, self_join);
            samples.push(t.elapsed());
        }
    }
    by_pid.sort();
    by_self.sort();
    eprintln!("moved by itself {by_self:?}; by pid {by_pid:?}");
    assert!(
        by_self[3] + Duration::from_millis(3) < by_pid[3],
        "moving itself (median {:?}) is not well under a move by pid ({:?})",
        by_self[3],
        by_pid[3]
    );
}
