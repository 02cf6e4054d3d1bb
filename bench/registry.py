#!/usr/bin/env python3
"""Registry server benchmark: berth's registry vs Debian's docker-registry (distribution 2.8).

Usage: bench/registry.py [--runs N] [--size MB] [--out FILE]
(uses target/release/berth; build it first with `cargo build --release`)

Each registry gets its own root in a temp dir and listens on 127.0.0.1 only. Figures:
  blob GET:  one blob of --size MB (random bytes) is uploaded (POST, then PUT ?digest= with the
             body), read once to warm the page cache, then fetched N times with
             `curl -o /dev/null`; the median transfer rate (curl's speed_download) is reported.
  upload:    the time of that upload (hash, write, fsync, rename), one sample.
  idle RSS:  VmRSS of a freshly started server, 1 s after it answered one `/v2/` ping.
Goals (issue 12): >= 1 GB/s for the cached 200 MB blob, idle RSS <= 10 MiB.
"""
import argparse, datetime, hashlib, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

from common import ROOT, default_berth, rss_kib, stop_process as stop

BERTH = default_berth()
DISTRIBUTION = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited: {proc.returncode}")
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url + "/v2/"],
                           stdout=subprocess.PIPE)
        if r.stdout.decode() == "200":
            return
        time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def start_berth(work):
    port = free_port()
    proc = subprocess.Popen([BERTH, "registry", "serve", "--addr", f"127.0.0.1:{port}",
                             "--root", os.path.join(work, "berth-root"), "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "berth.log"), "w"))
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def start_distribution(work):
    port = free_port()
    config = os.path.join(work, "distribution.yml")
    with open(config, "w") as f:
        f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {os.path.join(work, 'distribution-root')}\n"
                f"http:\n  addr: 127.0.0.1:{port}\n  secret: bench\n")
    proc = subprocess.Popen([DISTRIBUTION, "serve", config], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "distribution.log"), "w"))
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def curl(args):
    r = subprocess.run(["curl", "-s", "-S"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit(f"curl {' '.join(args)}: {r.stderr.decode()}")
    return r.stdout.decode()


def upload(url, blob, digest):
    headers = curl(["-D", "-", "-o", "/dev/null", "-X", "POST", f"{url}/v2/bench/blob/blobs/uploads/"])
    location = next(l.split(":", 1)[1].strip() for l in headers.splitlines()
                    if l.lower().startswith("location:"))
    if location.startswith("/"):
        location = url + location
    sep = "&" if "?" in location else "?"
    t = time.perf_counter()
    code = curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                 "--data-binary", f"@{blob}", f"{location}{sep}digest={digest}"])
    elapsed = time.perf_counter() - t
    if code != "201":
        raise SystemExit(f"upload to {url} answered {code}")
    return elapsed


def fetch_rates(url, digest, runs, size):
    target = f"{url}/v2/bench/blob/blobs/{digest}"
    curl(["-o", "/dev/null", target])  # warm the page cache
    samples = []
    for _ in range(runs):
        out = curl(["-o", "/dev/null", "-w", "%{speed_download} %{size_download}", target])
        rate, got = out.split()
        if int(got) != size:
            raise SystemExit(f"{url}: got {got} bytes, expected {size}")
        samples.append(float(rate) / 1e9)
    return samples


def idle_rss(start, work):
    proc, url = start(work)
    time.sleep(1)
    kib = rss_kib(proc.pid)
    stop(proc)
    return kib / 1024


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--size", type=int, default=200, help="blob size in MB")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if not os.path.exists(BERTH):
        raise SystemExit(f"{BERTH} missing: cargo build --release")
    servers = [("berth registry serve", start_berth)]
    if os.path.exists(DISTRIBUTION):
        servers.append(("docker-registry 2.8", start_distribution))
    size = args.size * 1_000_000
    results = {}
    with tempfile.TemporaryDirectory(prefix="berth-bench-registry-") as work:
        blob = os.path.join(work, "blob")
        h = hashlib.sha256()
        with open(blob, "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(left, 1 << 20))
                h.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        digest = "sha256:" + h.hexdigest()
        for name, start in servers:
            server_work = os.path.join(work, name.split()[0])
            os.makedirs(server_work)
            rss = idle_rss(start, server_work)
            proc, url = start(server_work)
            try:
                upload_s = upload(url, blob, digest)
                rates = fetch_rates(url, digest, args.runs, size)
                busy_rss = rss_kib(proc.pid) / 1024
            finally:
                stop(proc)
            results[name] = {
                "blob GET median (GB/s)": round(statistics.median(rates), 3),
                "blob GET samples (GB/s)": [round(r, 3) for r in rates],
                "upload (s)": round(upload_s, 3),
                "idle RSS (MiB)": round(rss, 2),
                "RSS after serving (MiB)": round(busy_rss, 2),
            }
    report = {
        "date": datetime.date.today().isoformat(),
        "blob size (MB)": args.size,
        "runs": args.runs,
        "load average": os.getloadavg()[0],
        "results": results,
    }
    print(f"{'':28} {'GET median':>12} {'upload':>8} {'idle RSS':>9}")
    for name, r in results.items():
        print(f"{name:28} {r['blob GET median (GB/s)']:>9.2f} GB/s {r['upload (s)']:>6.2f} s "
              f"{r['idle RSS (MiB)']:>6.1f} MiB")
    out = args.out or os.path.join(ROOT, "bench", f"results-registry-{report['date']}.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"written to {out}")


if __name__ == "__main__":
    sys.exit(main())
