#!/usr/bin/env python3
"""berth benchmarks: start latency, exec, mass removal, memory. Median of N runs each.

Usage (root): bench/run.py [--runs N] [--docker]   (builds the release binary first)

Runs its own berth daemon on a private socket and roots under /tmp, and, with --docker and a
dockerd binary present, its own dockerd (private socket, no bridge, no iptables) for a
side-by-side ratio. Never touches /var/run/docker.sock or docker0.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "target/release/berth")
DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"


def sh(args, env=None, check=True, stdin=None):
    r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {r.stderr.decode()}")
    return r.stdout.decode().strip()


def timed(args, env=None, runs=10, setup=None, teardown=None):
    samples = []
    for _ in range(runs):
        if setup:
            setup()
        t = time.perf_counter()
        sh(args, env=env)
        samples.append((time.perf_counter() - t) * 1000)
        if teardown:
            teardown()
    return statistics.median(samples)


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Engine:
    def __init__(self, name, cli, env):
        self.name, self.cli, self.env = name, cli, env

    def run(self, *args, check=True):
        return sh([self.cli, *args], env=self.env, check=check)


def bench_engine(e, runs, results):
    r = {}
    e.run("run", "--rm", "busybox", "true")  # warm caches
    r["run --rm busybox true (ms)"] = timed([e.cli, "run", "--rm", "busybox", "true"], e.env, runs)
    ids = []
    def run_d():
        t = time.perf_counter()
        ids.append(e.run("run", "-d", "busybox", "sleep", "1000"))
        return (time.perf_counter() - t) * 1000
    r["run -d (ms)"] = statistics.median([run_d() for _ in range(runs)])
    target = ids[0]
    r["exec true (ms)"] = timed([e.cli, "exec", target, "true"], e.env, runs)
    e.run("rm", "-f", *ids)
    rm_samples = []
    for _ in range(max(3, runs // 3)):
        ids = [e.run("run", "-d", "busybox", "sleep", "1000") for _ in range(30)]
        t = time.perf_counter()
        e.run("rm", "-f", *ids)
        rm_samples.append(time.perf_counter() - t)
    r["rm -f of 30 running (s)"] = statistics.median(rm_samples)
    results[e.name] = r


BRIDGE, NFT_TABLE, CGROUP_PARENT = "berthbench0", "berthbench", "/berth-bench"


def remove_host_state():
    """The bench daemon's bridge, nft table, FORWARD accepts and cgroup parent."""
    for family in ("ip", "ip6"):
        subprocess.run(["nft", "delete", "table", family, NFT_TABLE], capture_output=True)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    for rule in rules.splitlines():
        if BRIDGE in rule and rule.startswith("-A "):
            subprocess.run(["iptables", "-D", *rule.split()[1:]], capture_output=True)
    for controller in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", controller, CGROUP_PARENT.lstrip("/"))
        for root, dirs, _ in sorted(os.walk(path, topdown=False), key=lambda w: -len(w[0])):
            try:
                os.rmdir(root)
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--docker", action="store_true", help="also start a private dockerd for comparison")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    tmp = f"/tmp/bb{os.getpid()}"  # short: unix socket paths must fit 108 bytes
    os.makedirs(tmp)
    sock = f"{tmp}/run/berth.sock"
    env = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=f"{tmp}/dc")
    # Its own bridge, nft table and cgroup parent, removed at the end (never the installed ones).
    daemon = subprocess.Popen([BERTH, "daemon", "-H", f"unix://{sock}", "--data-root", f"{tmp}/data", "--exec-root", f"{tmp}/run",
                               "-b", BRIDGE, "--nft-table", NFT_TABLE, "--cgroup-parent", CGROUP_PARENT],
                              stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/daemon.log", "w"))
    dockerd = None
    results, memory = {}, {}
    try:
        for _ in range(500):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        time.sleep(0.3)
        memory["berth daemon idle RSS (MiB)"] = rss_kib(daemon.pid) / 1024
        memory["berth daemon idle PSS (MiB)"] = pss_kib(daemon.pid) / 1024
        sh([BERTH, "image", "bootstrap", "busybox"], env=env)
        bench_engine(Engine("berth (berth CLI)", BERTH, env), a.runs, results)
        bench_engine(Engine("berth (docker CLI)", DOCKER_CLI, env), a.runs, results)
        # memory per running container: PSS of every berth process beside the daemon
        ids = [sh([BERTH, "run", "-d", "busybox", "sleep", "1000"], env=env) for _ in range(20)]
        time.sleep(0.5)
        mons = sh(["pgrep", "-f", f"monitor {tmp}/run/"], check=False).split()
        total = sum(pss_kib(int(p)) for p in mons)
        memory["monitors running"] = len(mons)
        memory["PSS per running container (MiB)"] = total / 1024 / max(1, len(ids))
        memory["berth daemon RSS with 20 containers (MiB)"] = rss_kib(daemon.pid) / 1024
        sh([BERTH, "rm", "-f", *ids], env=env)
        dockerd_bin = shutil.which("dockerd")
        if a.docker and dockerd_bin:
            dsock = f"{tmp}/docker.sock"
            denv = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_CONFIG=f"{tmp}/dc")
            dockerd = subprocess.Popen([dockerd_bin, "-H", f"unix://{dsock}", "--data-root", f"{tmp}/docker-data",
                                        "--exec-root", f"{tmp}/docker-exec", "--pidfile", f"{tmp}/docker.pid",
                                        "--bridge", "none", "--iptables=false", "--ip6tables=false"],
                                       stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/dockerd.log", "w"))
            for _ in range(300):
                if subprocess.run([DOCKER_CLI, "version"], env=denv, capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            rootfs = f"{tmp}/bb"
            os.makedirs(f"{rootfs}/bin")
            shutil.copy("/bin/busybox", f"{rootfs}/bin/busybox")
            for app in ("sh", "true", "sleep"):
                os.symlink("busybox", f"{rootfs}/bin/{app}")
            tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True).stdout
            subprocess.run([DOCKER_CLI, "import", "-", "busybox:latest"], input=tar, env=denv, check=True, capture_output=True)
            time.sleep(1)
            memory["dockerd idle RSS (MiB)"] = rss_kib(dockerd.pid) / 1024
            bench_engine(Engine("docker (dockerd)", DOCKER_CLI, denv), a.runs, results)
    finally:
        sh([BERTH, "rm", "-f", *sh([BERTH, "ps", "-aq"], env=env, check=False).split()], env=env, check=False)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait()
        if dockerd:
            sh([DOCKER_CLI, "rm", "-f", *sh([DOCKER_CLI, "ps", "-aq"], env=denv, check=False).split()], env=denv, check=False)
            dockerd.send_signal(signal.SIGTERM)
            dockerd.wait()
        subprocess.run(["umount", "-R", f"{tmp}/docker-data"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        remove_host_state()
    print(json.dumps({"runs": a.runs, "latency": results, "memory": memory}, indent=2))
    base = results.get("docker (dockerd)")
    if base:
        print("\nratios berth/docker:")
        for k, v in results["berth (berth CLI)"].items():
            print(f"  {k}: {v:.2f} vs {base[k]:.2f} = {v / base[k]:.3f}")


if __name__ == "__main__":
    main()
