#!/usr/bin/env python3
"""save/load benchmark: a ~206 MB debian bookworm minbase image, berth vs a private dockerd.

Usage (root): bench/archive.py [--runs N] [--rootfs DIR] [--no-docker] [--berth PATH]
(builds the release binary first unless --berth is given)

The root filesystem comes from `debootstrap --variant=minbase bookworm` (cached in
/var/tmp/berth-bench/bookworm, mirror from /etc/apt), or from --rootfs; if debootstrap fails,
a synthetic ~206 MB tree stands in. It is imported into both engines as one image, then, median
of N runs each:
  save: `save -o FILE IMAGE` (the file removed between runs)
  load: `load -i FILE` into an engine lacking the image (removed with rmi before each run,
        then, with --host-fs, --settle seconds of rest: ext4 without a journal, as here, skips
        inodes freed in the last 30 s when it allocates new ones, so a load right after an rmi
        of the same ~10k files measures that scan more than the engine)
Both engines keep their data (and the archives) on a fresh ext4 file system (4 GB image,
loop-mounted, with a journal) unless --host-fs: on a shared disk whose ext4 has no journal and
much churn from other work, inode allocation dominates any load and the figures mean little.
Runs its own berth daemon and its own dockerd (private sockets and roots under /tmp, no bridge,
no iptables); never touches /var/run/docker.sock or docker0.
"""
import argparse, json, os, random, re, shutil, statistics, subprocess, sys, time

from common import DOCKER_CLI, build_release, default_berth, sh, start_berth, start_dockerd

BERTH = default_berth()
CACHE = "/var/tmp/berth-bench/bookworm"
IMAGE = "bench/debian:bookworm"


def timed(args, env, runs, setup=None):
    samples = []
    for _ in range(runs):
        if setup:
            setup()
        t = time.perf_counter()
        sh(args, env=env)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), samples


def mirror():
    for path in ["/etc/apt/sources.list", "/etc/apt/sources.list.d/debian.sources"]:
        try:
            text = open(path).read()
        except OSError:
            continue
        m = re.search(r"(?:URIs:|deb)\s+(https?://\S+/debian)\b", text)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def synthetic(dest, size=206_000_000):
    """A stand-in tree: files of mixed sizes, mostly incompressible, about `size` bytes."""
    rng = random.Random(42)
    total, n = 0, 0
    while total < size:
        d = os.path.join(dest, "usr", f"d{n // 100}")
        os.makedirs(d, exist_ok=True)
        length = rng.choice([200, 2_000, 20_000, 200_000, 2_000_000])
        with open(os.path.join(d, f"f{n}"), "wb") as f:
            f.write(os.urandom(length // 2) + b"\0" * (length - length // 2))
        total += length
        n += 1
    os.makedirs(os.path.join(dest, "bin"), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(dest, "bin/sh"))


def rootfs(path):
    if path:
        return path, "given"
    if os.path.isdir(os.path.join(CACHE, "usr")):
        return CACHE, "debootstrap minbase bookworm (cached)"
    tmp = CACHE + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    r = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", tmp, mirror()],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode == 0:
        os.rename(tmp, CACHE)
        return CACHE, "debootstrap minbase bookworm"
    print(f"debootstrap failed ({r.stderr.decode()[-200:]}); using a synthetic tree", file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    synth = CACHE + "-synthetic"
    if not os.path.isdir(synth):
        synthetic(synth)
    return synth, "synthetic"


def bench(name, cli, env, tmp, runs, results, settle):
    out = f"{tmp}/{name.split()[0]}.tar"
    def rm_out():
        if os.path.exists(out):
            os.remove(out)
    save, save_samples = timed([cli, "save", "-o", out, IMAGE], env, runs, setup=rm_out)
    size = os.path.getsize(out)
    def rmi():
        sh([cli, "rmi", IMAGE], env=env)
        subprocess.run(["sync"])
        time.sleep(settle)
    load, load_samples = timed([cli, "load", "-i", out], env, runs, setup=rmi)
    results[name] = {
        "save (s)": round(save, 3),
        "load into an engine lacking the image (s)": round(load, 3),
        "archive size (MB)": round(size / 1e6, 1),
        "save samples": [round(s, 3) for s in save_samples],
        "load samples": [round(s, 3) for s in load_samples],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rootfs", help="use this tree instead of debootstrap's")
    ap.add_argument("--no-docker", action="store_true", help="skip the dockerd comparison")
    ap.add_argument("--settle", type=float, help="seconds between rmi and a timed load (default 31 with --host-fs, else 0)")
    ap.add_argument("--host-fs", action="store_true", help="keep data under /tmp, not on a fresh ext4")
    ap.add_argument("--berth", help="the berth binary (default: build and use target/release/berth)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if a.settle is None:
        a.settle = 31 if a.host_fs else 0
    global BERTH
    if a.berth:
        BERTH = a.berth
    else:
        build_release()
    tree, origin = rootfs(a.rootfs)
    tmp = f"/tmp/bz{os.getpid()}"  # short: unix socket paths must fit 108 bytes
    os.makedirs(tmp)
    work, fs_image = tmp, None
    if not a.host_fs:
        fs_image = f"/var/tmp/berth-bench/scratch-{os.getpid()}.img"
        subprocess.run(["truncate", "-s", "4G", fs_image], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", fs_image], check=True)
        work = f"{tmp}/fs"
        os.makedirs(work)
        subprocess.run(["mount", "-o", "loop", fs_image, work], check=True)
    tarball = f"{work}/rootfs.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", tree, "-cf", tarball, "."], check=True)
    # The engines' data on `work` (the fresh file system), their sockets and run roots in
    # directories of their own under `tmp` (never the mount point, which they remove).
    berth, dockerd, results = None, None, {}
    try:
        berth = start_berth(BERTH, f"{tmp}/b", data_root=f"{work}/data", bootstrap=False)
        env = berth.env
        with open(tarball, "rb") as f:
            sh([BERTH, "import", "-", IMAGE], env=env, stdin=f)
        image_size = sh([BERTH, "image", "inspect", "-f", "{{.Size}}", IMAGE], env=env)
        bench("berth (berth CLI)", BERTH, env, work, a.runs, results, a.settle)
        if os.path.exists(DOCKER_CLI):
            bench("berth (docker CLI)", DOCKER_CLI, env, work, a.runs, results, a.settle)
        if not a.no_docker and shutil.which("dockerd") and os.path.exists(DOCKER_CLI):
            dockerd = start_dockerd(f"{tmp}/d", data_root=f"{work}/docker-data")
            with open(tarball, "rb") as f:
                sh([DOCKER_CLI, "import", "-", IMAGE], env=dockerd.env, stdin=f)
            bench("docker (dockerd 20.10)", DOCKER_CLI, dockerd.env, work, a.runs, results, a.settle)
    finally:
        if berth:
            berth.stop()
        if dockerd:
            dockerd.stop()
        if fs_image:
            subprocess.run(["umount", work], capture_output=True)
            os.remove(fs_image)
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"runs": a.runs, "settle (s)": a.settle, "file system": "host /tmp" if a.host_fs else "fresh ext4 (loop)", "rootfs": origin, "image size (bytes)": int(image_size), "results": results}
    print(json.dumps(report, indent=2))
    base = results.get("docker (dockerd 20.10)")
    if base:
        print("\nberth CLI → berth vs docker CLI → dockerd:")
        for k in ("save (s)", "load into an engine lacking the image (s)"):
            v = results["berth (berth CLI)"][k]
            print(f"  {k}: {v:.3f} vs {base[k]:.3f} = {v / base[k]:.2f}x")


if __name__ == "__main__":
    main()
