#!/usr/bin/env python3
"""berth build benchmarks: a demo build cold and fully cached, a 100 MB context of which
.dockerignore excludes 90%, and 4 independent stages.

Usage (root): bench/build.py [--runs N] [--docker] [--berth PATH]

Runs its own berth daemon (private socket and roots under /tmp, no default bridge) and, with
--docker, its own dockerd 20.10 (unix:///tmp/dkb.sock, --bridge=none, no iptables) for
side-by-side figures; RUN steps use --network none on both. Never touches
/var/run/docker.sock or docker0. The demo build is `FROM busybox`, `COPY` of a 5 MB
directory (50 files), two `RUN`s. Cold is `--no-cache` (every step executed), cached is the
same build again (every step a cache hit). Prints medians in seconds, as JSON.
"""
import argparse, json, os, random, shutil, signal, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"
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


def sh(args, env=None, check=True, stdin=None, cwd=None):
    r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=stdin, cwd=cwd)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {r.stderr.decode()} {r.stdout.decode()}")
    return r.stdout.decode().strip()


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


class Daemon:
    def __init__(self, name, env, proc, cleanup):
        self.name, self.env, self.proc, self.cleanup = name, env, proc, cleanup

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.cleanup()


def wait_socket(path, proc):
    for _ in range(600):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited: {proc.returncode}")
        time.sleep(0.05)
    raise SystemExit("daemon did not come up")


def start_berth(berth):
    root = "/tmp/bbb"
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    sock = f"{root}/run/berth.sock"
    proc = subprocess.Popen([berth, "daemon", "-H", f"unix://{sock}", "--data-root", f"{root}/data",
                             "--exec-root", f"{root}/run", "--bridge", "none"],
                            stdout=subprocess.DEVNULL, stderr=open(f"{root}/daemon.log", "w"))
    wait_socket(sock, proc)
    env = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}",
               DOCKER_BUILDKIT="0", DOCKER_CONFIG=f"{root}/docker-config")
    d = Daemon("berth", env, proc, lambda: shutil.rmtree(root, ignore_errors=True))
    sh([berth, "image", "bootstrap", "busybox"], env=env)
    return d


def start_dockerd(busybox_tar):
    for p in ["/tmp/dkb-root", "/tmp/dkb-exec"]:
        shutil.rmtree(p, ignore_errors=True)
    proc = subprocess.Popen(["dockerd", "-H", "unix:///tmp/dkb.sock", "--data-root", "/tmp/dkb-root",
                             "--exec-root", "/tmp/dkb-exec", "--pidfile", "/tmp/dkb.pid",
                             "--bridge=none", "--iptables=false", "--ip6tables=false"],
                            stdout=subprocess.DEVNULL, stderr=open("/tmp/dkb.log", "w"))
    wait_socket("/tmp/dkb.sock", proc)
    env = dict(os.environ, DOCKER_HOST="unix:///tmp/dkb.sock", DOCKER_BUILDKIT="0",
               DOCKER_CONFIG="/tmp/dkb-config")

    def cleanup():
        subprocess.run(["umount", "-R", "/tmp/dkb-root"], stderr=subprocess.DEVNULL)
        for p in ["/tmp/dkb-root", "/tmp/dkb-exec", "/tmp/dkb-config"]:
            shutil.rmtree(p, ignore_errors=True)
    d = Daemon("dockerd", env, proc, cleanup)
    for _ in range(100):
        if sh([DOCKER_CLI, "version"], env=env, check=False):
            break
        time.sleep(0.1)
    with open(busybox_tar, "rb") as f:
        sh([DOCKER_CLI, "import", "-c", 'CMD ["sh"]', "-", "busybox:latest"], env=env, stdin=f)
    return d


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
    ap.add_argument("--berth", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release/berth"))
    a = ap.parse_args()
    ctx = contexts()
    results = {}
    b = start_berth(a.berth)
    try:
        results["berth (berth build)"] = bench(b, a.berth, a.runs, ctx)
        if a.docker:
            results["berth (docker CLI, legacy builder)"] = bench(b, DOCKER_CLI, a.runs, ctx)
            cid = sh([a.berth, "create", "busybox", "true"], env=b.env)
            busybox_tar = "/tmp/berth-bench-busybox.tar"
            with open(busybox_tar, "wb") as f:
                subprocess.run([a.berth, "export", cid], env=b.env, stdout=f, check=True)
            sh([a.berth, "rm", cid], env=b.env)
    finally:
        b.stop()
    if a.docker:
        d = start_dockerd(busybox_tar)
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
