#!/usr/bin/env python3
"""Registry client benchmark: push and pull of a multi-layer image, berth vs a private dockerd.

Usage: bench/pull.py [--runs N] [--no-docker] [--out FILE]
(uses target/release/berth; build it first with `cargo build --release --bin berth`)

The image: the cached debootstrap minbase bookworm tree of bench/archive.py
(/var/tmp/berth-bench/bookworm, ~206 MB) imported as the base layer, plus two committed layers
of 24 MB each (8 MB random bytes + 16 MB of text), so three layers, ~250 MB unpacked. Without
the cached tree, a synthetic base of 100 MB is used.

Every engine and registry is private: `berth registry serve` on 127.0.0.1 (a fresh root for each
push), a berth daemon and a dockerd with their own sockets, roots, `--bridge none`, no
iptables. Figures, median of N runs:
  push (cold):  the first push of the committed image (berth compresses the layers then, once);
  push:         a push of the same image to a fresh registry (nothing on it);
  pull:         `pull` into an engine that has none of the image's layers (rmi of everything
                first), through the berth CLI and through the docker CLI against berthd.
dockerd gets the identical image through `berth save | docker load` and does the same.
"""
import argparse, datetime, json, os, shutil, signal, socket, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release/berth")
DOCKER_CLI = "/usr/local/bin/docker"
CACHE = "/var/tmp/berth-bench/bookworm"


def sh(cmd, env=None, stdin=None, check=True):
    r = subprocess.run(cmd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.decode()[-500:]}")
    return r.stdout.decode().strip()


def timed(cmd, env):
    t = time.monotonic()
    sh(cmd, env=env)
    return time.monotonic() - t


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cmd, env, tries=300):
    for _ in range(tries):
        if subprocess.run(cmd, env=env, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"{cmd} never answered")


class Registry:
    """A `berth registry serve` with a fresh root."""

    def __init__(self, tmp, name):
        self.root = f"{tmp}/reg-{name}"
        port = free_port()
        self.addr = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen([BERTH, "registry", "serve", "--addr", self.addr, "--root", self.root],
                                     stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/reg-{name}.log", "w"))
        wait_for(["curl", "-sf", "-o", "/dev/null", f"http://{self.addr}/v2/"], None)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def build_image(env, tmp, name):
    """The base tree imported, then two committed layers."""
    tree = CACHE if os.path.isdir(os.path.join(CACHE, "usr")) else None
    if tree is None:
        tree = f"{tmp}/synthetic"
        os.makedirs(f"{tree}/data")
        with open(f"{tree}/data/blob", "wb") as f:
            f.write(os.urandom(50 << 20) + b"text line\n" * (5 << 20))
        shutil.copytree("/bin", f"{tree}/bin", symlinks=True)
    subprocess.run(f"tar --numeric-owner -C {tree} -cf {tmp}/base.tar .", shell=True, check=True)
    with open(f"{tmp}/base.tar", "rb") as f:
        sh([BERTH, "import", "-", f"{name}-base"], env=env, stdin=f)
    os.remove(f"{tmp}/base.tar")
    image = f"{name}-base"
    for i in (1, 2):
        script = (f"mkdir -p /layer{i} && head -c 8388608 /dev/urandom > /layer{i}/random && "
                  f"seq 1 2000000 > /layer{i}/text && seq 2000000 4000000 >> /layer{i}/text")
        sh([BERTH, "run", "--name", f"bench-l{i}", image, "sh", "-c", script], env=env)
        sh([BERTH, "commit", f"bench-l{i}", f"{name}-l{i}"], env=env)
        sh([BERTH, "rm", f"bench-l{i}"], env=env)
        image = f"{name}-l{i}"
    return image, tree


def forget_all(cli, env):
    """Removes every image, so a pull has none of the layers (children first: a parent with
    children is refused, so repeat until none is left)."""
    for _ in range(10):
        ids = sh([cli, "images", "-a", "-q", "--no-trunc"], env=env).split()
        if not ids:
            return
        for image in dict.fromkeys(ids):
            sh([cli, "rmi", "-f", image], env=env, check=False)
    raise SystemExit(f"{cli}: images left after rmi: {ids}")


def bench_engine(label, cli, env, image, tmp, runs, results):
    """push cold (first) and warm to fresh registries, and pulls into an empty engine."""
    pushes, pulls = [], []
    first = None
    for run in range(runs + 1):
        registry = Registry(tmp, f"{label[:5]}{run}")
        target = f"{registry.addr}/bench/app:1"
        sh([cli, "tag", image, target], env=env)
        t = timed([cli, "push", target], env)
        if run == 0:
            first = t
        else:
            pushes.append(t)
        sh([cli, "rmi", target], env=env)
        if run > 0:
            # Pull into an engine that has none of the layers: keep a saved copy to restore.
            forget_all(cli, env)
            pulls.append(timed([cli, "pull", target], env))
            sh([cli, "tag", target, image], env=env)
            sh([cli, "rmi", target], env=env)
        registry.stop()
    results[label] = {
        "push, first (s)": round(first, 3),
        "push (s)": round(statistics.median(pushes), 3),
        "pull into an empty engine (s)": round(statistics.median(pulls), 3),
        "push samples": [round(s, 3) for s in pushes],
        "pull samples": [round(s, 3) for s in pulls],
    }
    print(label, json.dumps(results[label]), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not os.path.exists(BERTH):
        raise SystemExit(f"{BERTH} missing: cargo build --release --bin berth")
    tmp = f"/tmp/bpl{os.getpid()}"
    os.makedirs(tmp)
    sock = f"{tmp}/run/berth.sock"
    env = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=f"{tmp}/dc")
    daemon = subprocess.Popen([BERTH, "daemon", "-H", f"unix://{sock}", "--data-root", f"{tmp}/data",
                               "--exec-root", f"{tmp}/run", "--bridge", "none", "--nft-table", f"bpl{os.getpid()}",
                               "--cgroup-parent", f"/bpl{os.getpid()}"],
                              stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/daemon.log", "w"))
    dockerd, results = None, {}
    try:
        wait_for([BERTH, "version"], env)
        image, tree = build_image(env, tmp, "benchimg")
        size = int(sh([BERTH, "image", "inspect", "-f", "{{.Size}}", image], env=env))
        layers = len(json.loads(sh([BERTH, "image", "inspect", "-f", "{{json .RootFS.Layers}}", image], env=env)))
        sh([BERTH, "save", "-o", f"{tmp}/image.tar", image], env=env)
        bench_engine("berth (berth CLI)", BERTH, env, image, tmp, a.runs, results)
        if os.path.exists(DOCKER_CLI):
            bench_engine("berth (docker CLI)", DOCKER_CLI, env, image, tmp, a.runs, results)
        dockerd_bin = shutil.which("dockerd")
        if not a.no_docker and dockerd_bin and os.path.exists(DOCKER_CLI):
            dsock = f"{tmp}/docker.sock"
            denv = dict(os.environ, DOCKER_HOST=f"unix://{dsock}", DOCKER_CONFIG=f"{tmp}/dc")
            dockerd = subprocess.Popen([dockerd_bin, "-H", f"unix://{dsock}", "--data-root", f"{tmp}/docker-data",
                                        "--exec-root", f"{tmp}/docker-exec", "--pidfile", f"{tmp}/docker.pid",
                                        "--bridge", "none", "--iptables=false", "--ip6tables=false"],
                                       stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/dockerd.log", "w"))
            wait_for([DOCKER_CLI, "version"], denv)
            sh([DOCKER_CLI, "load", "-i", f"{tmp}/image.tar"], env=denv)
            bench_engine("docker (dockerd)", DOCKER_CLI, denv, image, tmp, a.runs, results)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait()
        if dockerd:
            dockerd.send_signal(signal.SIGTERM)
            dockerd.wait()
        subprocess.run(["umount", "-R", f"{tmp}/docker-data"], capture_output=True)
        # The daemon keeps its nftables table after it exits; this one is the bench's own.
        for family in ("ip", "ip6"):
            subprocess.run(["nft", "delete", "table", family, f"bpl{os.getpid()}"], capture_output=True)
        subprocess.run(f"rmdir /sys/fs/cgroup/bpl{os.getpid()} /sys/fs/cgroup/*/bpl{os.getpid()}",
                       shell=True, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"date": datetime.date.today().isoformat(), "runs": a.runs, "base": tree,
              "layers": layers, "image size (bytes)": size, "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    base = results.get("docker (dockerd)")
    if base:
        print("\nberth CLI → berthd vs docker CLI → dockerd:")
        for k in ("push, first (s)", "push (s)", "pull into an empty engine (s)"):
            v = results["berth (berth CLI)"][k]
            print(f"  {k}: {v:.3f} vs {base[k]:.3f} = {v / base[k]:.2f}x")


if __name__ == "__main__":
    main()
