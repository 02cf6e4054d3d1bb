#!/usr/bin/env python3
"""berth benchmarks: start latency, exec (with and without a tty), mass removal, a
healthcheck probe's cost, memory. Median of N runs each.

Usage (root): bench/run.py [--runs N] [--docker] [--berth PATH] [--out FILE]
(builds the release binary first unless --berth is given)

Runs its own berth daemon on a private socket and roots under /tmp (its own bridge, nft table
and cgroup parent, removed at the end), and, with --docker and a dockerd binary present, its
own dockerd (private socket, no bridge, no iptables) for a side-by-side ratio. Never touches
/var/run/docker.sock or docker0.
"""
import argparse, json, os, pty, re, statistics, subprocess, sys, time
from datetime import datetime

from common import (DOCKER_CLI, build_release, busybox_tar, default_berth, pss_kib, rss_kib, sh,
                    start_berth, start_dockerd)


def timed(args, env=None, runs=10):
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        sh(args, env=env)
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def exec_tty_ms(cli, env, target, runs):
    """`exec -t ID true` with a pseudo-terminal as the CLI's stdin, stdout and stderr (as at a
    terminal); only the CLI's own run is timed (`script` would add ~20 ms of its own)."""
    samples = []
    for _ in range(runs):
        master, slave = pty.openpty()
        try:
            t = time.perf_counter()
            r = subprocess.run([cli, "exec", "-t", target, "true"], env=env, stdin=slave,
                               stdout=slave, stderr=slave)
            samples.append((time.perf_counter() - t) * 1000)
        finally:
            os.close(slave)
            os.close(master)
        if r.returncode != 0:
            raise SystemExit(f"{cli} exec -t failed: {r.returncode}")
    return statistics.median(samples)


def bench_engine(d, cli, runs, results, name):
    r = {}
    run = lambda *a: sh([cli, *a], env=d.env)
    run("run", "--rm", "busybox", "true")  # warm caches
    r["run --rm busybox true (ms)"] = timed([cli, "run", "--rm", "busybox", "true"], d.env, runs)
    ids = []

    def run_d():
        t = time.perf_counter()
        ids.append(run("run", "-d", "busybox", "sleep", "1000"))
        return (time.perf_counter() - t) * 1000

    r["run -d (ms)"] = statistics.median([run_d() for _ in range(runs)])
    target = ids[0]
    r["exec true (ms)"] = timed([cli, "exec", target, "true"], d.env, runs)
    r["exec -t true (ms)"] = exec_tty_ms(cli, d.env, target, runs)
    run("rm", "-f", *ids)
    rm_samples = []
    for _ in range(max(3, runs // 3)):
        ids = [run("run", "-d", "busybox", "sleep", "1000") for _ in range(30)]
        t = time.perf_counter()
        run("rm", "-f", *ids)
        rm_samples.append(time.perf_counter() - t)
    r["rm -f of 30 running (s)"] = statistics.median(rm_samples)
    results[name] = r


def parse_time(s):
    """Docker's RFC 3339 timestamps (nanoseconds, `Z` or an offset), as seconds since the epoch."""
    m = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", s)
    if not m:
        raise SystemExit(f"not a timestamp: {s}")
    head, frac, tz = m.groups()
    tz = "+00:00" if tz == "Z" else tz
    return datetime.fromisoformat(head + tz).timestamp() + float(f"0.{frac or 0}")


def health_probe_ms(d, probes=5):
    """A healthcheck probe's cost as the daemon records it: End - Start of each entry of
    State.Health.Log (the exec of the probe command in the container, to its exit), median
    over the `probes` (at most 5: the log keeps the last five) probes of `true`."""
    cid = d.run("run", "-d", "--health-cmd", "true", "--health-interval", "200ms",
                "--health-start-period", "0s", "busybox", "sleep", "1000")
    try:
        deadline = time.monotonic() + 30
        log = []
        while time.monotonic() < deadline:
            state = json.loads(d.run("inspect", "-f", "{{json .State.Health}}", cid))
            log = (state or {}).get("Log") or []
            if len(log) >= probes:
                break
            time.sleep(0.2)
        durations = [(parse_time(e["End"]) - parse_time(e["Start"])) * 1000 for e in log]
        if not durations:
            raise SystemExit("no healthcheck probe was recorded")
        return statistics.median(durations), len(durations)
    finally:
        d.run("rm", "-f", cid)


def memory_figures(d, tmp, memory):
    # memory per running container: PSS of every monitor (the daemon is measured apart)
    ids = [d.run("run", "-d", "busybox", "sleep", "1000") for _ in range(20)]
    time.sleep(0.5)
    mons = sh(["pgrep", "-f", f"monitor {tmp}/run/"], check=False).split()
    total = sum(pss_kib(int(p)) for p in mons)
    memory["monitors running"] = len(mons)
    memory["PSS per running container (MiB)"] = total / 1024 / max(1, len(ids))
    memory["berth daemon RSS with 20 containers (MiB)"] = rss_kib(d.pid) / 1024
    d.run("rm", "-f", *ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--docker", action="store_true", help="also start a private dockerd for comparison")
    ap.add_argument("--berth", help="the berth binary (default: build and use target/release/berth)")
    ap.add_argument("--out", help="also write the JSON to this file")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not a.berth:
        build_release()
    berth = a.berth or default_berth()
    tmp = f"/tmp/bb{os.getpid()}"  # short: unix socket paths must fit 108 bytes
    results, memory, probes = {}, {}, {}
    b = start_berth(berth, tmp, bridge=f"bb{os.getpid()}", bootstrap=False, keep_root=True)
    dockerd = None
    try:
        time.sleep(0.3)
        memory["berth daemon idle RSS (MiB)"] = rss_kib(b.pid) / 1024
        memory["berth daemon idle PSS (MiB)"] = pss_kib(b.pid) / 1024
        b.run("image", "bootstrap", "busybox")
        bench_engine(b, berth, a.runs, results, "berth (berth CLI)")
        if os.path.exists(DOCKER_CLI):
            bench_engine(b, DOCKER_CLI, a.runs, results, "berth (docker CLI)")
        probe, n = health_probe_ms(b)
        probes["berth healthcheck probe `true`, End - Start (ms)"] = probe
        probes["berth healthcheck probes measured"] = n
        memory_figures(b, tmp, memory)
        b.remove_all_containers()
        if a.docker:
            dockerd = start_dockerd(tmp, busybox=busybox_tar(tmp), keep_root=True)
            time.sleep(1)
            memory["dockerd idle RSS (MiB)"] = rss_kib(dockerd.pid) / 1024
            bench_engine(dockerd, DOCKER_CLI, a.runs, results, "docker (dockerd)")
            probe, n = health_probe_ms(dockerd)
            probes["dockerd healthcheck probe `true`, End - Start (ms)"] = probe
            dockerd.remove_all_containers()
    finally:
        b.remove_all_containers()
        if dockerd:
            dockerd.remove_all_containers()
            dockerd.stop()
        b.stop()
        subprocess.run(["rm", "-rf", tmp])
    report = {"runs": a.runs, "latency": results, "healthcheck": probes, "memory": memory}
    text = json.dumps(report, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    base = results.get("docker (dockerd)")
    if base:
        print("\nratios berth/docker:")
        for k, v in results["berth (berth CLI)"].items():
            print(f"  {k}: {v:.2f} vs {base[k]:.2f} = {v / base[k]:.3f}")


if __name__ == "__main__":
    sys.exit(main())
