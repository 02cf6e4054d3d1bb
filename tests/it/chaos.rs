//! Integration test: the daemon killed with SIGKILL at random moments (during `start` among
//! them) while clients create, start, exec, read logs and remove containers, then restarted;
//! a few rounds. Afterwards everything acknowledged holds and nothing is orphaned (issue 10,
//! "Keep it held"). The randomness is seeded (`BERTH_CHAOS_SEED`, printed) and every wait is
//! bounded, so a failure can be replayed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::Test;
use crate::hardening::{Client, SecondDaemon, alive, cgroup_pids};
use crate::harness::TestEnv;

pub const TESTS: &[Test] = &[(
    "hardening_chaos_daemon_killed_under_load",
    hardening_chaos_daemon_killed_under_load,
)];

/// Rounds of kill and restart; client threads.
const ROUNDS: usize = 6;
const CLIENTS: usize = 3;
/// Lines each finite container writes before it exits.
const LINES: usize = 20;

/// splitmix64: small, seedable, good enough to pick moments and operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a client was told about a container.
#[derive(Clone, Debug)]
enum Kind {
    /// `run -d` of a script writing `LINES` lines then exiting with the code.
    Finite(i32),
    /// `run -d … sleep`, with a published port (nft rules of its own).
    Long,
}

#[derive(Clone, Debug)]
struct Acked {
    id: String,
    kind: Kind,
    /// `rm -f` answered success.
    removed: bool,
    /// `rm -f` was sent but got no answer (the daemon died under it): it may have happened.
    maybe_removed: bool,
}

/// Everything the clients were told, and every wrong answer they got.
#[derive(Default)]
struct Ledger {
    containers: BTreeMap<String, Acked>,
    wrong: Vec<String>,
    /// Counts of acknowledged operations, for the record.
    ops: BTreeMap<&'static str, usize>,
}

fn script(name: &str, code: i32) -> String {
    format!("i=0; while [ $i -lt {LINES} ]; do echo {name} $i; i=$((i+1)); done; exit {code}")
}

/// The lines a finite container named `name` writes, in order.
fn expected_lines(name: &str) -> Vec<String> {
    (0..LINES).map(|i| format!("{name} {i}")).collect()
}

/// One client's loop: random operations on containers of its own until `stop`.
fn client(daemon: &Client, seed: u64, me: usize, stop: &AtomicBool, ledger: &Mutex<Ledger>) {
    let mut rng = Rng(seed ^ (me as u64 + 1).wrapping_mul(0x1234_5678_9ABC_DEF1));
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let mine: Vec<(String, Acked)> = ledger
            .lock()
            .unwrap()
            .containers
            .iter()
            .filter(|(n, a)| n.starts_with(&format!("ch{me}x")) && !a.removed)
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        let pick = |rng: &mut Rng, long: bool| {
            let some: Vec<&(String, Acked)> = mine
                .iter()
                .filter(|(_, a)| matches!(a.kind, Kind::Long) == long)
                .collect();
            (!some.is_empty()).then(|| some[rng.below(some.len() as u64) as usize].clone())
        };
        match rng.below(10) {
            0..=2 => {
                let name = format!("ch{me}x{k}");
                let code = 1 + rng.below(60) as i32;
                let out = daemon.berth(&[
                    "run",
                    "-d",
                    "--network",
                    "chaos",
                    "--name",
                    &name,
                    "busybox",
                    "sh",
                    "-c",
                    &script(&name, code),
                ]);
                acked_run(ledger, &name, &out, Kind::Finite(code));
            }
            3..=4 => {
                let name = format!("ch{me}x{k}");
                let out = daemon.berth(&[
                    "run",
                    "-d",
                    "--network",
                    "chaos",
                    "-p",
                    "127.0.0.1::80",
                    "--name",
                    &name,
                    "busybox",
                    "sleep",
                    "1000",
                ]);
                acked_run(ledger, &name, &out, Kind::Long);
            }
            5..=6 => {
                if let Some((name, _)) = pick(&mut rng, true) {
                    let code = 10 + rng.below(20) as i32;
                    let out = daemon.berth(&[
                        "exec",
                        &name,
                        "sh",
                        "-c",
                        &format!("echo exec-{code}; exit {code}"),
                    ]);
                    check_exec(ledger, &name, code, &out);
                }
            }
            7 => {
                if let Some((name, _)) = pick(&mut rng, false) {
                    check_logs(daemon, ledger, &name);
                }
            }
            _ => {
                let long = rng.below(2) == 0;
                let target = pick(&mut rng, long);
                if let Some((name, _)) = target {
                    let out = daemon.berth(&["rm", "-f", &name]);
                    let mut l = ledger.lock().unwrap();
                    let ok = out.status.success();
                    if ok {
                        *l.ops.entry("rm").or_default() += 1;
                    }
                    if let Some(a) = l.containers.get_mut(&name) {
                        a.removed |= ok;
                        a.maybe_removed |= !ok;
                    }
                }
            }
        }
    }
}

/// `logs` of a finite container while it may still run: a prefix of its lines, never a gap
/// or a stranger.
fn check_logs(daemon: &Client, ledger: &Mutex<Ledger>, name: &str) {
    let out = daemon.berth(&["logs", name]);
    if !out.status.success() {
        return;
    }
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    let want = expected_lines(name);
    let lines: Vec<&str> = got.lines().collect();
    let mut l = ledger.lock().unwrap();
    *l.ops.entry("logs").or_default() += 1;
    if lines.len() > want.len() || lines.iter().zip(&want).any(|(a, b)| a != b) {
        l.wrong.push(format!("logs {name} mid-run: {got:?}"));
    }
}

fn acked_run(ledger: &Mutex<Ledger>, name: &str, out: &std::process::Output, kind: Kind) {
    if !out.status.success() {
        return;
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut l = ledger.lock().unwrap();
    *l.ops.entry("run").or_default() += 1;
    l.containers.insert(
        name.to_owned(),
        Acked {
            id,
            kind,
            removed: false,
            maybe_removed: false,
        },
    );
}

/// An exec that answered with an exit code in its range answered the right one, with its
/// output; one that failed (the daemon went away under it) says so outside that range.
fn check_exec(ledger: &Mutex<Ledger>, name: &str, code: i32, out: &std::process::Output) {
    let got = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut l = ledger.lock().unwrap();
    if got == code {
        *l.ops.entry("exec").or_default() += 1;
        if stdout.trim() != format!("exec-{code}") {
            l.wrong
                .push(format!("exec {name}: exit {code} but output {stdout:?}"));
        }
    } else if (10..30).contains(&got) || (got == 0 && stdout.contains("exec-")) {
        l.wrong.push(format!(
            "exec {name}: exit {got}, wanted {code} (output {stdout:?}, stderr {:?})",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

/// The cgroup directories below this run's cgroup parent, in every hierarchy.
fn cgroups_below_parent() -> BTreeSet<PathBuf> {
    let parent = crate::harness::cgroup_parent();
    let mut tops = vec![PathBuf::from("/sys/fs/cgroup").join(&parent)];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        tops.extend(rd.flatten().map(|e| e.path().join(&parent)));
    }
    let mut found = BTreeSet::new();
    for top in tops {
        if let Ok(rd) = std::fs::read_dir(&top) {
            found.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    found
}

/// Processes in a cgroup below this run's cgroup parent.
fn processes_below_parent() -> BTreeSet<i32> {
    let needle = format!("/{}/", crate::harness::cgroup_parent());
    let mut pids = BTreeSet::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        if cgroup.contains(&needle) && alive(pid) {
            pids.insert(pid);
        }
    }
    pids
}

/// The veths attached to `bridge`.
fn veths_on(bridge: &str) -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|n| {
            n.trim_end_matches(':')
                .split('@')
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

fn nft_table(table: &str) -> String {
    Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn mounts_under(dir: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(dir))
        .map(str::to_owned)
        .collect()
}

/// Monitors of `daemon` (`berth monitor <run dir>` below its exec root).
fn monitors(daemon: &SecondDaemon) -> Vec<String> {
    let pattern = format!("monitor {}", daemon.exec_root.display());
    let out = Command::new("pgrep")
        .args(["-fa", &pattern])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines().map(str::to_owned).collect()
}

/// What the host holds of containers and networks, before the test.
struct Baseline {
    cgroups: BTreeSet<PathBuf>,
    processes: BTreeSet<i32>,
    nft: String,
}

/// Issue 10, "keep it held": three clients run, exec into, read the logs of and remove
/// containers (on a user network, with published ports) while the daemon is killed with
/// SIGKILL at random moments, once a round right after a `run -d` was sent (during start),
/// and restarted; four rounds and a last quiet kill. Then: every container a client was told
/// it created is there (or gone if its removal was acknowledged), every finite container
/// exited with its own code and logged every line, every acknowledged exec answered its own
/// code, no stopped container has processes, and after removing everything no monitor,
/// process, cgroup, mount, veth or nft rule is left.
// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
fn hardening_chaos_daemon_killed_under_load(env: &TestEnv) {
    let seed: u64 = std::env::var("BERTH_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00C0_FFEE);
    eprintln!("chaos seed: {seed} (BERTH_CHAOS_SEED to replay)");
    let mut rng = Rng(seed);
    let mut daemon = SecondDaemon::start(env, "k", &[], None);
    let before = Baseline {
        cgroups: cgroups_below_parent(),
        processes: processes_below_parent(),
        nft: String::new(),
    };
    let net = daemon.berth(&["network", "create", "--subnet", "10.231.7.0/24", "chaos"]);
    assert!(net.status.success(), "{net:?}");
    let bridge = format!("br-{}", &String::from_utf8_lossy(&net.stdout).trim()[..12]);
    assert!(
        PathBuf::from("/sys/class/net").join(&bridge).exists(),
        "no {bridge}"
    );
    let before = Baseline {
        nft: nft_table(&daemon.table()),
        ..before
    };
    let ledger = Mutex::new(Ledger::default());
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut during_start = Vec::new();
    std::thread::scope(|s| {
        // Clients need only the daemon's address, which a restart keeps.
        for me in 0..CLIENTS {
            let (client_of, ledger, stop) = (daemon.client(), &ledger, &stop);
            s.spawn(move || client(&client_of, seed, me, stop, ledger));
        }
        for round in 0..ROUNDS {
            std::thread::sleep(Duration::from_millis(800 + rng.below(1500)));
            // During start: a run is in flight when the daemon dies.
            let name = format!("chs{round}");
            // Within the time a start takes: once a run dir appears (this run's or a
            // client's), a monitor is being spawned.
            let runs = daemon.exec_root.join("containers");
            let run_dirs = || -> BTreeSet<std::ffi::OsString> {
                std::fs::read_dir(&runs)
                    .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
                    .unwrap_or_default()
            };
            let known = run_dirs();
            let child = daemon
                .command(&[
                    "run",
                    "-d",
                    "--network",
                    "chaos",
                    "-p",
                    "127.0.0.1::80",
                    "--name",
                    &name,
                    "busybox",
                    "sleep",
                    "1000",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn run");
            let deadline = Instant::now() + Duration::from_secs(5);
            while run_dirs().is_subset(&known) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(rng.below(30)));
            let down = Duration::from_millis(rng.below(400));
            daemon.kill(libc::SIGKILL);
            let out = child.wait_with_output().expect("wait run");
            acked_run(&ledger, &name, &out, Kind::Long);
            during_start.push((name, out.status.success()));
            std::thread::sleep(down);
            daemon.respawn(env);
        }
        std::thread::sleep(Duration::from_millis(1000));
        stop.store(true, Ordering::Relaxed);
    });
    // A last kill with nothing in flight: start-up reconciles a quiet state too.
    daemon.kill(libc::SIGKILL);
    daemon.respawn(env);
    let chaos_took = started.elapsed();
    let ledger = ledger.into_inner().unwrap();
    let mut wrong = ledger.wrong.clone();

    // Every acknowledged container is there, or gone if its removal was acknowledged.
    for (name, acked) in &ledger.containers {
        let id = daemon.berth(&["inspect", "--format", "{{.Id}}", name]);
        let exists = id.status.success();
        if acked.removed && exists {
            wrong.push(format!("{name}: removal acknowledged, still there"));
        }
        if !acked.removed && !acked.maybe_removed && !exists {
            wrong.push(format!("{name}: acknowledged ({}), lost", acked.id));
        }
        if !acked.removed && exists && String::from_utf8_lossy(&id.stdout).trim() != acked.id {
            wrong.push(format!("{name}: another id than acknowledged"));
        }
    }
    // Finite ones exit with their own code, having logged every line.
    for (name, acked) in &ledger.containers {
        let Kind::Finite(code) = acked.kind else {
            continue;
        };
        if acked.removed || acked.maybe_removed {
            continue;
        }
        let status = || {
            let out = daemon.berth(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                name,
            ]);
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let mut last = String::new();
        let done = env.eventually(20, || {
            last = status();
            last.starts_with("exited")
        });
        if !done || last != format!("exited {code}") {
            wrong.push(format!("{name}: state {last:?}, wanted \"exited {code}\""));
        }
        let logs = daemon.berth(&["logs", name]);
        let got: Vec<String> = String::from_utf8_lossy(&logs.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        if got != expected_lines(name) {
            wrong.push(format!("{name}: logs {got:?}"));
        }
    }
    // No container that is not running has processes (never "Created" with a live init).
    let all = daemon.berth(&["ps", "-aq", "--no-trunc"]);
    let ids: Vec<String> = String::from_utf8_lossy(&all.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    for id in &ids {
        let out = daemon.berth(&["inspect", "--format", "{{.State.Status}} {{.Name}}", id]);
        let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let pids = cgroup_pids(id);
        if !state.starts_with("running") && !pids.is_empty() {
            wrong.push(format!("{state}: not running, yet processes {pids:?}"));
        }
    }
    // Remove everything: nothing may be left of any of it.
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        let rm = daemon.berth(&args);
        if !rm.status.success() {
            wrong.push(format!("rm -f of all: {rm:?}"));
        }
    }
    let settled = env.eventually(10, || {
        monitors(&daemon).is_empty()
            && processes_below_parent() == before.processes
            && cgroups_below_parent() == before.cgroups
            && veths_on(&bridge).is_empty()
    });
    if !settled {
        wrong.push(format!(
            "orphans: monitors {:?}; processes {:?}; cgroups {:?}; veths {:?}",
            monitors(&daemon),
            processes_below_parent()
                .difference(&before.processes)
                .collect::<Vec<_>>(),
            cgroups_below_parent()
                .difference(&before.cgroups)
                .collect::<Vec<_>>(),
            veths_on(&bridge),
        ));
    }
    let nft = nft_table(&daemon.table());
    if nft != before.nft {
        wrong.push(format!("nft rules left:\n{nft}\nbefore:\n{}", before.nft));
    }
    let data = daemon.dir.display().to_string();
    let mounts = mounts_under(&data);
    if !mounts.is_empty() {
        wrong.push(format!("mounts left: {mounts:?}"));
    }
    let net_rm = daemon.berth(&["network", "rm", "chaos"]);
    if !net_rm.status.success() {
        wrong.push(format!("network rm: {net_rm:?}"));
    }
    // Whatever happened, the bridge and its rules go with the test.
    wrong.extend(
        crate::harness::remove_network_state(&bridge, &daemon.table())
            .into_iter()
            .map(|l| format!("left after network rm: {l}")),
    );
    eprintln!(
        "chaos: {chaos_took:?}; acknowledged {:?}; {} containers known, {} at the end; runs during a kill (name, acknowledged): {during_start:?}",
        ledger.ops,
        ledger.containers.len(),
        ids.len()
    );
    if !wrong.is_empty() {
        let log = daemon.log();
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        eprintln!("daemon warnings: {}", tail(&notable.join("\n"), 60));
    }
    drop(daemon);
    assert!(wrong.is_empty(), "seed {seed}: {wrong:#?}");
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
