#!/usr/bin/env python3
"""berth build benchmarks: a demo build cold and fully cached, a 100 MB context of which
.dockerignore excludes 90%, and 4 independent stages.

Usage (root): bench/build.py [--runs N] [--docker] [--berth PATH]

Runs its own berth daemon (private socket and roots under /tmp, no default bridge) and, with
--docker, its own dockerd 20.10 (unix:///tmp/dkb/docker.sock, --bridge=none, no iptables) for
side-by-side figures; RUN steps use --network none on both. Never touches
/var/run/docker.sock or docker0. The demo build is `FROM busybox`, `COPY` of a 5 MB
directory (50 files), two `RUN`s. Cold is `--no-cache` (every step executed), cached is the
same build again (every step a cache hit). Prints medians in seconds, as JSON.
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, time

from common import DOCKER_CLI, default_berth, sh, start_berth, start_dockerd

WORK = "/tmp/berth-bench-build"

DEMO = """FROM busybox
COPY data /data
RUN cat /data/* | wc -c > /size
RUN echo built > /built && ls /data | wc -l > /count
CMD ["cat", "/size"]
"""

STAGE = """FROM busybox AS s{i}
RUN sleep 1 && echo {i} > /out{i}
"""


def contexts():
    rng = random.Random(7)
    shutil.rmtree(WORK, ignore_errors=True)
    demo = os.path.join(WORK, "demo")
    os.makedirs(os.path.join(demo, "data"))
    for n in range(50):
        with open(os.path.join(demo, "data", f"f{n}"), "wb") as f:
            f.write(rng.randbytes(100 * 1024))
    with open(os.path.join(demo, "Dockerfile"), "w") as f:
        f.write(DEMO)
    big = os.path.join(WORK, "big")
    os.makedirs(os.path.join(big, "keep"))
    os.makedirs(os.path.join(big, "ignored"))
    for n in range(10):
        with open(os.path.join(big, "keep", f"k{n}"), "wb") as f:
            f.write(rng.randbytes(1024 * 1024))
    for n in range(90):
        with open(os.path.join(big, "ignored", f"i{n}"), "wb") as f:
            f.write(rng.randbytes(1024 * 1024))
    with open(os.path.join(big, ".dockerignore"), "w") as f:
        f.write("ignored\n")
    with open(os.path.join(big, "Dockerfile"), "w") as f:
        f.write("FROM busybox\nCOPY keep /keep\n")
    stages = os.path.join(WORK, "stages")
    os.makedirs(stages)
    text = "".join(STAGE.format(i=i) for i in range(4))
    text += "FROM busybox\n" + "".join(f"COPY --from=s{i} /out{i} /\n" for i in range(4))
    with open(os.path.join(stages, "Dockerfile"), "w") as f:
        f.write(text)
    return demo, big, stages


def timed(args, env, cwd):
    t = time.perf_counter()
    out = sh(args, env=env, cwd=cwd)
    return time.perf_counter() - t, out


def bench(d, cli, runs, ctx):
    """Figures for one daemon driven by `cli` (berth's or docker's)."""
    demo, big, stages = ctx
    build = [cli, "build", "--network", "none"]
    r = {}
    cold, cached = [], []
    for i in range(runs):
        t, out = timed(build + ["--no-cache", "-t", "demo", "."], d.env, demo)
        assert "Using cache" not in out, out
        cold.append(t)
        t, out = timed(build + ["-t", "demo", "."], d.env, demo)
        assert out.count("Using cache") == 4, out
        cached.append(t)
    r["demo cold (s)"] = round(statistics.median(cold), 3)
    r["demo cached (s)"] = round(statistics.median(cached), 3)
    r["demo cold samples (s)"] = [round(x, 3) for x in cold]
    r["demo cached samples (s)"] = [round(x, 3) for x in cached]
    t, out = timed(build + ["--no-cache", "-t", "big", "."], d.env, big)
    sent = [l for l in out.splitlines() if l.startswith("Sending build context")]
    r["100 MB context, 90% ignored (s)"] = round(t, 3)
    r["100 MB context: sent"] = sent[0].split("daemon")[-1].strip() if sent else "(not shown)"
    t, _ = timed(build + ["--no-cache", "-t", "stages", "."], d.env, stages)
    r["4 stages of `sleep 1` (s)"] = round(t, 3)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--docker", action="store_true")
    ap.add_argument("--berth", default=default_berth())
    a = ap.parse_args()
    ctx = contexts()
    results = {}
    b = start_berth(a.berth, "/tmp/bbb")
    b.env["DOCKER_BUILDKIT"] = "0"
    try:
        results["berth (berth build)"] = bench(b, a.berth, a.runs, ctx)
        if a.docker:
            results["berth (docker CLI, legacy builder)"] = bench(b, DOCKER_CLI, a.runs, ctx)
            cid = sh([a.berth, "create", "busybox", "true"], env=b.env)
            busybox = subprocess.run([a.berth, "export", cid], env=b.env, capture_output=True,
                                     check=True).stdout
            sh([a.berth, "rm", cid], env=b.env)
    finally:
        b.stop()
    if a.docker:
        d = start_dockerd("/tmp/dkb", busybox=busybox)
        try:
            results["dockerd 20.10 (docker CLI, legacy builder)"] = bench(d, DOCKER_CLI, a.runs, ctx)
        finally:
            d.stop()
        ours = results["berth (berth build)"]
        theirs = results["dockerd 20.10 (docker CLI, legacy builder)"]
        results["ratio dockerd/berth"] = {
            k: round(theirs[k] / ours[k], 1)
            for k in ["demo cold (s)", "demo cached (s)"] if ours[k] > 0
        }
    shutil.rmtree(WORK, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
