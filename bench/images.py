#!/usr/bin/env python3
"""berth image benchmarks: commit of a 50 MB change, import of a ~206 MB rootfs tar.

Usage (root): bench/images.py [--runs N] [--docker] [--rootfs-tar PATH] [--berth PATH]

Runs its own berth daemon (private socket and roots under /tmp) and, with --docker, its own
dockerd 20.10 (unix:///tmp/dki/docker.sock, --bridge=none, no iptables) for side-by-side figures.
Never touches /var/run/docker.sock or docker0. Without --rootfs-tar, a synthetic rootfs
(about 9,000 files, 206 MB, a Debian-like size mix) is made once under /tmp.
Prints medians in seconds, as JSON.
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, tarfile, time

from common import default_berth, sh, start_berth, start_dockerd

SYNTH_TAR = "/tmp/berth-bench-rootfs.tar"


def synthetic_rootfs(path, total=196 * 1024 * 1024):
    """A rootfs-like tree: many small files, some large ones, dirs, symlinks."""
    if os.path.exists(path):
        return path
    rng = random.Random(42)
    tree = "/tmp/berth-bench-rootfs"
    shutil.rmtree(tree, ignore_errors=True)
    written, n = 0, 0
    while written < total:
        d = os.path.join(tree, "usr", f"d{n // 60}", f"s{n % 7}")
        os.makedirs(d, exist_ok=True)
        size = int(rng.lognormvariate(8.5, 1.6))
        size = min(size, 4 * 1024 * 1024, total - written)
        with open(os.path.join(d, f"f{n}"), "wb") as f:
            f.write(rng.randbytes(size))
        if n % 20 == 0:
            os.symlink(f"f{n}", os.path.join(d, f"l{n}"))
        written += size
        n += 1
    sh(["tar", "-C", tree, "-cf", path + ".tmp", "."])
    os.rename(path + ".tmp", path)
    shutil.rmtree(tree)
    return path


def bench(d, runs, rootfs_tar):
    r = {}
    d.run("run", "--name", "big", "--network", "none", "busybox", "sh", "-c",
          "dd if=/dev/urandom of=/big bs=1M count=50 2>/dev/null")
    samples = []
    for i in range(runs):
        t = time.perf_counter()
        d.run("commit", "big", f"bench-commit:{i}")
        samples.append(time.perf_counter() - t)
        d.run("rmi", f"bench-commit:{i}")
    r["commit 50 MB (s)"] = round(statistics.median(samples), 3)
    r["commit samples (s)"] = [round(x, 3) for x in samples]
    d.run("rm", "-f", "big")
    # Each run imports different content (one extra file), and nothing is deleted until the
    # end: a re-import of the same layer, or a delete of the previous one, would have ext4
    # scan its recently deleted inodes on every create, which measures the file system.
    # ext4 without a journal (this machine's) skips inodes deleted in the last 30 s when it
    # allocates, scanning for them on every create: let earlier deletes (ours, the other
    # engine's, anyone's) age first, or the figure measures them.
    time.sleep(40)
    samples = []
    variant = "/tmp/berth-bench-variant.tar"
    for i in range(runs):
        shutil.copyfile(rootfs_tar, variant)
        marker = f"/tmp/berth-bench-run-{d.name}-{i}-{time.time_ns()}"
        with open(marker, "w") as f:
            f.write(marker)
        with tarfile.open(variant, "a") as t:
            t.add(marker, arcname="etc/bench-run")
        os.unlink(marker)
        sh(["sync"])
        with open(variant, "rb") as f:
            t = time.perf_counter()
            d.run("import", "-", f"bench-import:{i}", stdin=f)
            samples.append(time.perf_counter() - t)
    for i in range(runs):
        d.run("rmi", f"bench-import:{i}")
    os.unlink(variant)
    r[f"import {os.path.getsize(rootfs_tar) // 1_000_000} MB tar (s)"] = round(statistics.median(samples), 3)
    r["import samples (s)"] = [round(x, 3) for x in samples]
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--docker", action="store_true")
    ap.add_argument("--rootfs-tar")
    ap.add_argument("--berth", default=default_berth())
    a = ap.parse_args()
    rootfs_tar = a.rootfs_tar or synthetic_rootfs(SYNTH_TAR)
    results = {}
    b = start_berth(a.berth, "/tmp/bbi")
    try:
        results["berth"] = bench(b, a.runs, rootfs_tar)
        if a.docker:
            cid = b.run("create", "busybox", "true")
            busybox = subprocess.run([b.cli, "export", cid], env=b.env, capture_output=True,
                                     check=True).stdout
            b.run("rm", cid)
    finally:
        b.stop()
    if a.docker:
        d = start_dockerd("/tmp/dki", busybox=busybox)
        try:
            results["dockerd 20.10"] = bench(d, a.runs, rootfs_tar)
        finally:
            d.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
