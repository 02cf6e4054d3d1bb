#!/usr/bin/env python3
"""bollard's published integration tests (issue 14, item 11), against the engine at DOCKER_HOST.

bollard's own `tests/` (the crate as published on crates.io, version pinned in
`tests/clients/bollard/Cargo.toml`) are built and run unchanged. They pull their images from
`$REGISTRY_HTTP_ADDR/…`; this script provides that offline:

- a `berth registry serve` on 127.0.0.1 (a port the kernel picks), stopped at the end;
- the images the tests name, made from the host's static busybox (scripts/deps.sh), imported
  through the engine's API (`POST /images/create?fromSrc=-`, so dockerd takes the same trees),
  pushed to that registry and removed again, so the tests pull them:
  `hello-world:linux` (`/hello` prints Docker's greeting), `alpine` (a shell),
  `fussybeaver/uhttpd` (`/usr/sbin/run_uhttpd` runs busybox httpd; `/etc/config/uhttpd`).

Each test binary runs with one thread (the tests use fixed container names) under a time
limit. Prints one line per test and a summary; with `--expect FILE` (one `binary::test` a
line), exits 1 when a listed test did not pass; `--record FILE` writes the passing tests.

    BERTH=target/debug/berth DOCKER_HOST=unix:///path/to.sock tests/clients/bollard.py \
        --expect tests/clients/bollard/expected-passes.txt

The build goes to `target/bollard` (source copy and target dir, kept: CI builds it once).
"""
import argparse, http.client, io, json, os, re, shutil, socket, subprocess, sys, tarfile
import tempfile, time, urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST = os.path.join(REPO, "tests/clients/bollard/Cargo.toml")
WORK = os.path.join(REPO, "target/bollard")
API = "/v1.41"

UHTTPD_CONFIG = """
config uhttpd main
\tlist listen_http\t0.0.0.0:80
\toption home\t\t/www
"""
# The start of what docker.io/library/hello-world's /hello prints (bollard reads line 2).
HELLO = """
Hello from Docker!
This message shows that your installation appears to be working correctly.
"""


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api(method, path, body=None, headers=None):
    host = os.environ["DOCKER_HOST"]
    assert host.startswith("unix://"), "DOCKER_HOST must be unix://…"
    conn = UnixHTTP(host[len("unix://"):])
    conn.request(method, API + path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    # Streamed progress: an error shows up as a JSON line with "error".
    for line in data.splitlines():
        if line.strip().startswith(b"{") and b'"error"' in line:
            raise RuntimeError(f"{method} {path}: {line[:300]!r}")
    return data


def tree_tar(files):
    """A tar of busybox with its applets, plus `files` ({path: (mode, text)})."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        def add_dir(name):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            t.addfile(info)
        for d in ["bin", "etc", "tmp", "usr", "usr/sbin", "www", "etc/config"]:
            add_dir(d)
        t.add("/bin/busybox", "bin/busybox")
        for applet in ["sh", "cat", "echo", "printf", "ls", "sleep", "true", "id", "httpd",
                       "touch", "env", "ps", "top"]:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            t.addfile(info)
        for name, (mode, text) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


IMAGES = {
    "hello-world:linux": ({"hello": (0o755, "#!/bin/sh\ncat <<'EOF'\n" + HELLO + "EOF\n")},
                          ['CMD ["/hello"]']),
    "alpine:latest": ({"etc/alpine-release": (0o644, "3.20.0\n")}, ['CMD ["/bin/sh"]']),
    "fussybeaver/uhttpd:latest": (
        {"usr/sbin/run_uhttpd": (0o755, "#!/bin/sh\nexec /bin/httpd \"$@\"\n"),
         "etc/config/uhttpd": (0o644, UHTTPD_CONFIG),
         "www/index.html": (0o644, "<html>uhttpd</html>\n")},
        ['CMD ["/usr/sbin/run_uhttpd", "-f", "-p", "80", "-h", "/www"]', "EXPOSE 80"]),
}


def push_images(registry):
    auth = "eyJ1c2VybmFtZSI6ImJvbGxhcmQifQ=="  # base64 {"username":"bollard"}
    for ref, (files, changes) in IMAGES.items():
        repo, tag = ref.rsplit(":", 1)
        name = f"{registry}/{repo}"
        q = urllib.parse.urlencode([("fromSrc", "-"), ("repo", name), ("tag", tag)]
                                   + [("changes", c) for c in changes])
        api("POST", f"/images/create?{q}", tree_tar(files), {"Content-Type": "application/x-tar"})
        api("POST", f"/images/{name}/push?tag={tag}", b"", {"X-Registry-Auth": auth})
        api("DELETE", f"/images/{name}:{tag}?force=1")


def start_registry(berth, root):
    proc = subprocess.Popen([berth, "registry", "serve", "--addr", "127.0.0.1:0", "--root", root],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    m = re.match(r"berth registry: listening on https?://(\S+)$", line)
    if not m:
        proc.kill()
        sys.exit(f"registry did not start: {line!r}")
    return proc, m.group(1)


def source():
    """A copy of the published crate (fetched by cargo from crates.io) in target/bollard/src."""
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--manifest-path", MANIFEST]))
    pkg = next(p for p in meta["packages"] if p["name"] == "bollard")
    src = os.path.dirname(pkg["manifest_path"])
    dst = os.path.join(WORK, "src")
    stamp = os.path.join(dst, ".bollard-version")
    if not (os.path.exists(stamp) and open(stamp).read() == pkg["version"]):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        # Outside berth's workspace (target/ is under it): a workspace of its own.
        with open(os.path.join(dst, "Cargo.toml"), "a") as f:
            f.write("\n[workspace]\n")
        with open(stamp, "w") as f:
            f.write(pkg["version"])
    return dst, pkg["version"]


def build(src):
    """Builds the test binaries (bollard's default features, its own Cargo.lock)."""
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(WORK, "target"),
               CARGO_INCREMENTAL="0")
    out = subprocess.run(["cargo", "test", "--tests", "--no-run", "--locked",
                          "--message-format=json"], cwd=src, env=env,
                         stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit("building bollard's tests failed")
    bins = {}
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["kind"] == ["test"]:
            bins[msg["target"]["name"]] = msg["executable"]
    return bins


# Not run: what needs more than this machine gives, or would reach past the daemon under test.
SKIP = {
    # Connects to /var/run/docker.sock, whatever DOCKER_HOST says.
    "version_test": ["test_downversioning"],
    # A host's Podman socket, if any: not the daemon under test.
    "podman_test": ["podman_integration::"],
    # Docker Hub (vieux/sshfs, index.docker.io search): no internet here.
    "plugin_test": ["integration_test_get_plugin_privileges", "integration_test_plugin_"],
    "image_test": ["integration_test_search_images"],
}


def run_tests(bins, registry, limit):
    env = dict(os.environ, REGISTRY_HTTP_ADDR=registry, RUST_BACKTRACE="0")
    results, outputs = {}, {}
    for name, exe in sorted(bins.items()):
        try:
            skips = [a for t in SKIP.get(name, []) for a in ("--skip", t)]
            out = subprocess.run([exe, "--test-threads=1", *skips], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=limit).stdout
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) \
                else (e.stdout or "")
            out += f"\n{name}: timed out after {limit} s\n"
        for m in re.finditer(r"^test (\S+) \.\.\. (ok|FAILED|ignored)", out, re.M):
            results[f"{name}::{m.group(1)}"] = m.group(2)
        outputs[name] = out
    return results, outputs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expect")
    ap.add_argument("--record")
    ap.add_argument("--limit", type=int, default=120, help="seconds per test binary")
    args = ap.parse_args()
    berth = os.environ.get("BERTH") or shutil.which("berth")
    start = time.time()
    src, version = source()
    bins = build(src)
    built = time.time()
    tmp = tempfile.mkdtemp(prefix="bollard-registry-")
    registry, addr = start_registry(berth, tmp)
    try:
        push_images(addr)
        results, outputs = run_tests(bins, addr, args.limit)
    finally:
        registry.terminate()
        registry.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    for test, status in sorted(results.items()):
        print(f"{status:7} {test}")
    ok = sorted(t for t, s in results.items() if s == "ok")
    bad = sorted(t for t, s in results.items() if s == "FAILED")
    print(f"bollard {version}: {len(ok)} ok, {len(bad)} failing, of {len(results)} "
          f"(build {built - start:.0f} s, run {time.time() - built:.0f} s)")
    if args.record:
        with open(args.record, "w") as f:
            f.write("".join(t + "\n" for t in ok))
    if args.expect:
        want = [l.strip() for l in open(args.expect) if l.strip() and not l.startswith("#")]
        lost = [t for t in want if results.get(t) != "ok"]
        # The whole output of a test binary with a regression (without libtest's "N passed"
        # summary: scripts/test.sh sums those).
        for name in sorted({t.split("::")[0] for t in lost}):
            sys.stdout.write("".join(l for l in outputs.get(name, "").splitlines(True)
                                     if not l.startswith("test result:")))
        for t in lost:
            print(f"REGRESSED {t}: {results.get(t, 'not run')}")
        if lost:
            sys.exit(1)


if __name__ == "__main__":
    main()
