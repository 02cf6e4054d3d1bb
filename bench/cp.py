#!/usr/bin/env python3
"""`cp` throughput: a 100 MB directory of 1,000 files copied into and out of a running
container, against `tar -cf - . | tar -xf -` between two directories of the same disk.
Median of N runs each, page cache warm for every contender alike.

Usage (root): bench/cp.py [--runs N] [--docker] [--berth PATH]
  --berth  the berth binary (default: $CARGO_TARGET_DIR or ./target, release profile);
           build it first with `cargo build --release`.
  --docker also measure the docker CLI against a private dockerd 20.10 (bench/common.py:
           unix:///tmp/dkv/docker.sock, roots under /tmp/dkv, --bridge=none, no iptables),
           stopped after. Never touches /var/run/docker.sock or docker0.

The goal it checks: berth's cp in and out ≥ 80% of the tar-pipe throughput.
"""
import argparse, json, os, resource, shutil, statistics, subprocess, time

from common import DOCKER_CLI, busybox_tar, default_berth, sh, start_berth, start_dockerd
FILES, FILE_SIZE = 1000, 100 * 1024


DAEMON_PID = None


def cpu_now():
    """CPU seconds of finished children plus the berth daemon so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = ru.ru_utime + ru.ru_stime
    if DAEMON_PID:
        with open(f"/proc/{DAEMON_PID}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


CPU = []


def timed(args, env=None, shell=False):
    c = cpu_now()
    t = time.perf_counter()
    sh(args, env=env, shell=shell)
    CPU.append(cpu_now() - c)
    return time.perf_counter() - t


def make_dataset(path):
    os.makedirs(path)
    for i in range(FILES):
        sub = os.path.join(path, f"d{i % 10}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i:04}"), "wb") as f:
            f.write(os.urandom(FILE_SIZE))


def tar_pipe(src, tmp, i):
    dst = f"{tmp}/tt{i}"
    os.makedirs(dst)
    t = timed(f"tar -C {src} -cf - . | tar -C {dst} -xf -", shell=True)
    shutil.rmtree(dst)
    return t


def bench_cp(name, cli, env, ctr, src, tmp, runs, results):
    """cp in (host → running container) and out (container → host), fresh names each run,
    each run right after a tar|tar of the same data, so the ratio compares like with like on
    a machine whose load changes."""
    ins, outs, base, r_in, r_out = [], [], [], [], []
    cpu_base, cpu_in, cpu_out = [], [], []
    for i in range(runs + 1):  # the first run warms caches and is dropped
        t_base = tar_pipe(src, tmp, i)
        cpu_base.append(CPU[-1])
        t_in = timed([cli, "cp", "-q", src, f"{ctr}:/in{i}"], env)
        cpu_in.append(CPU[-1])
        out = f"{tmp}/out-{i}"
        t_out = timed([cli, "cp", "-q", f"{ctr}:/in{i}", out], env)
        cpu_out.append(CPU[-1])
        sh([cli, "exec", ctr, "rm", "-rf", f"/in{i}"], env)
        shutil.rmtree(out)
        if i:
            ins.append(t_in)
            outs.append(t_out)
            base.append(t_base)
            r_in.append(t_base / t_in)
            r_out.append(t_base / t_out)
    results[name] = {
        "tar | tar (s)": statistics.median(base),
        "in (s)": statistics.median(ins),
        "out (s)": statistics.median(outs),
        "in vs tar|tar": statistics.median(r_in),
        "out vs tar|tar": statistics.median(r_out),
        # CPU seconds (CLI + berth daemon; the engine's own daemon is not counted for dockerd).
        "tar | tar CPU (s)": statistics.median(cpu_base[1:]),
        "in CPU (s)": statistics.median(cpu_in[1:]),
        "out CPU (s)": statistics.median(cpu_out[1:]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--docker", action="store_true")
    ap.add_argument("--berth", default=default_berth())
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    berth = a.berth
    tmp = f"/tmp/bc{os.getpid()}"  # short: unix socket paths must fit 108 bytes
    os.makedirs(tmp)
    b, dockerd = None, None
    results = {}
    global DAEMON_PID
    try:
        src = f"{tmp}/src"
        make_dataset(src)
        size = int(sh(["du", "-sb", src]).split()[0])
        b = start_berth(berth, f"{tmp}/b")
        DAEMON_PID = b.pid
        b.run("run", "-d", "--name", "cpbench", "busybox", "sleep", "100000")
        bench_cp("berth CLI -> berth", berth, b.env, "cpbench", src, tmp, a.runs, results)
        if os.path.exists(DOCKER_CLI):
            bench_cp("docker CLI -> berth", DOCKER_CLI, b.env, "cpbench", src, tmp, a.runs, results)
        if a.docker and shutil.which("dockerd"):
            dockerd = start_dockerd("/tmp/dkv", image="cpbench-busybox:latest",
                                    busybox=busybox_tar(tmp, apps=("sh", "sleep", "rm")))
            dockerd.run("run", "-d", "--network", "none", "--name", "cpbench", "cpbench-busybox",
                        "sleep", "100000")
            DAEMON_PID = None
            bench_cp("docker CLI -> dockerd 20.10", DOCKER_CLI, dockerd.env, "cpbench", src, tmp, a.runs, results)
    finally:
        if b:
            b.remove_all_containers()
            b.stop()
        if dockerd:
            dockerd.remove_all_containers()
            dockerd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"runs": a.runs, "bytes": size, "files": FILES, "results": {}}
    for name, r in results.items():
        report["results"][name] = {k: round(v, 3) for k, v in r.items()}
        for k in ("tar | tar (s)", "in (s)", "out (s)"):
            report["results"][name][k.replace("(s)", "MB/s")] = round(size / r[k] / 1e6, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
