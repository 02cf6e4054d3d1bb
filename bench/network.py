#!/usr/bin/env python3
"""berth networking figures.

Usage (root): bench/network.py [--runs N] [--containers N] [--seconds S] [--berth PATH]

1. Setup cost: `run --rm busybox true` on the default bridge vs `--network none`
   (median of N interleaved runs each; the difference is what networking adds).
2. Scale: N containers (default 100) started on one bridge; then every container pings
   every other one once (bounded: one ping per pair, 1 s timeout each), failures counted.
3. Throughput: iperf3 (Debian's, see scripts/deps.sh) from the host to a server in a
   container's network namespace, directly to the container address and through a
   published port on 127.0.0.1 (DNAT + route_localnet + masquerade); the ratio is reported.

Runs its own berth daemon (private socket and roots under /tmp, its own bridge and nft table,
all removed at the end). Traffic goes only to loopback and to the containers it starts.
"""
import argparse, datetime, json, os, shutil, signal, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_berth():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release/berth")


def sh(args, env=None, check=True):
    r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {r.stderr.decode()}")
    return r.stdout.decode().strip()


class Daemon:
    def __init__(self, berth):
        tag = f"bn{os.getpid()}"
        self.berth, self.tag = berth, tag
        self.root = f"/tmp/{tag}"
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)
        self.sock = f"{self.root}/s.sock"
        self.env = dict(os.environ, BERTH_HOST=f"unix://{self.sock}")
        self.log = open(f"{self.root}/daemon.log", "w")
        self.proc = subprocess.Popen(
            [berth, "daemon", "-H", f"unix://{self.sock}", "--data-root", f"{self.root}/d",
             "--exec-root", f"{self.root}/r", "-b", tag, "--nft-table", tag],
            stdout=self.log, stderr=self.log)
        for _ in range(200):
            if os.path.exists(self.sock):
                break
            time.sleep(0.05)
        self.run("image", "bootstrap", "busybox")

    def run(self, *args, check=True):
        return sh([self.berth, *args], env=self.env, check=check)

    def close(self):
        ids = self.run("ps", "-aq", check=False).split()
        if ids:
            self.run("rm", "-f", *ids, check=False)
        self.run("network", "prune", "-f", check=False)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        sh(["ip", "link", "del", self.tag], check=False)
        sh(["nft", "delete", "table", "ip", self.tag], check=False)
        sh(["nft", "delete", "table", "ip6", self.tag], check=False)
        rules = sh(["iptables", "-w", "5", "-S", "FORWARD"], check=False)
        for line in rules.splitlines():
            if self.tag in line.split():
                sh(["iptables", "-w", "5", "-D", "FORWARD", *line.split()[2:]], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def setup_cost(d, runs):
    for mode in ("bridge", "none"):
        d.run("run", "--rm", "--network", mode, "busybox", "true")  # warm
    samples = {"bridge": [], "none": []}
    for _ in range(runs):
        for mode in ("none", "bridge"):
            t = time.perf_counter()
            d.run("run", "--rm", "--network", mode, "busybox", "true")
            samples[mode].append((time.perf_counter() - t) * 1000)
    none = statistics.median(samples["none"])
    bridge = statistics.median(samples["bridge"])
    return {
        "run --rm busybox true, --network none (ms)": round(none, 2),
        "run --rm busybox true, default bridge (ms)": round(bridge, 2),
        "networking adds (ms)": round(bridge - none, 2),
    }


def scale(d, n):
    t = time.perf_counter()
    ids = [d.run("run", "-d", "busybox", "sleep", "3600") for _ in range(n)]
    started = time.perf_counter() - t
    ips = [d.run("inspect", "-f", "{{.NetworkSettings.IPAddress}}", i) for i in ids]
    assert all(ips) and len(set(ips)) == n, "every container has its own address"
    failures = 0
    t = time.perf_counter()
    for i, cid in enumerate(ids):
        others = " ".join(ip for j, ip in enumerate(ips) if j != i)
        script = f"f=0; for ip in {others}; do ping -c 1 -W 1 $ip >/dev/null 2>&1 || f=$((f+1)); done; echo $f"
        failures += int(d.run("exec", cid, "sh", "-c", script))
    pinged = time.perf_counter() - t
    d.run("rm", "-f", *ids)
    return {
        "containers on one bridge": n,
        f"start {n} containers (s)": round(started, 2),
        "pairs pinged": n * (n - 1),
        "ping failures": failures,
        "all-pairs ping (s)": round(pinged, 2),
    }


def iperf(args, seconds):
    out = sh(["iperf3", "-J", "-t", str(seconds), *args])
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def throughput(d, seconds):
    if not shutil.which("iperf3"):
        return {"throughput": "iperf3 not installed (scripts/deps.sh installs it)"}
    host_port = sh(["python3", "-c", "import socket; s=socket.socket(); s.bind(('',0)); print(s.getsockname()[1])"])
    cid = d.run("run", "-d", "-p", f"127.0.0.1:{host_port}:5201", "busybox", "sleep", "3600")
    pid = d.run("inspect", "-f", "{{.State.Pid}}", cid)
    ip = d.run("inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid)
    # The server runs in the container's network namespace (the busybox image has no iperf3).
    server = subprocess.Popen(["nsenter", "-t", pid, "-n", "iperf3", "-s", "-p", "5201"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        direct = iperf(["-c", ip, "-p", "5201"], seconds)
        published = iperf(["-c", "127.0.0.1", "-p", host_port], seconds)
    finally:
        server.terminate()
        server.wait()
        d.run("rm", "-f", cid)
    return {
        "iperf3 host -> container IP (Gbit/s)": round(direct, 2),
        "iperf3 host -> 127.0.0.1 published port (Gbit/s)": round(published, 2),
        "published / direct": round(published / direct, 3),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--containers", type=int, default=100)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--berth", default=default_berth())
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    d = Daemon(a.berth)
    results = {"date": datetime.date.today().isoformat(), "berth": a.berth}
    try:
        results.update(setup_cost(d, a.runs))
        results.update(scale(d, a.containers))
        results.update(throughput(d, a.seconds))
    finally:
        d.close()
    print(json.dumps(results, indent=2))
    out = os.path.join(ROOT, "bench", f"results-network-{results['date']}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
