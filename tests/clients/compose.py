#!/usr/bin/env python3
"""The docker-compose 1.29 scenario (issue 14, item 11) against the engine at DOCKER_HOST:
build, healthcheck-gated depends_on, named volume, user network, published port, scale,
logs, exec, down -v leaving nothing. Prints one line per step and `compose: N passed, M
failed`; exits 1 if a step failed. Every command is bounded (STEP_TIMEOUT seconds).

    DOCKER_HOST=unix:///path/to.sock tests/clients/compose.py
"""
import json, os, subprocess, sys, urllib.request

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compose")
PROJECT = f"bc{os.getpid()}"
STEP_TIMEOUT = 120


def run(*args, check_output=True):
    r = subprocess.run(args, cwd=HERE, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    return r.returncode, r.stdout + r.stderr


def compose(*args):
    return run("docker-compose", "-p", PROJECT, *args)


def docker_ids(kind):
    rc, out = run("docker", kind, "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}")
    return out.split() if rc == 0 else ["?"]


def main():
    results = []

    def step(name, ok, detail=""):
        results.append(ok)
        print(f"compose {name} ... {'ok' if ok else 'FAILED'}" + ("" if ok else f"\n{detail}"), flush=True)

    try:
        rc, out = compose("up", "-d")
        step("up -d (build, healthy depends_on)", rc == 0, out)
        rc, out = compose("ps")
        step("ps: both up, web healthy", rc == 0 and "(healthy)" in out and out.count(" Up ") >= 2, out)
        rc, out = compose("logs", "--no-color", "client")
        step("logs: client reached web by name", "berth-compose-ok" in out, out)
        rc1, _ = compose("exec", "-T", "web", "sh", "-c", "echo kept > /data/x")
        rc2, out = compose("exec", "-T", "web", "cat", "/data/x")
        step("exec into the named volume", rc1 == 0 and rc2 == 0 and out.strip() == "kept", out)
        rc, out = compose("port", "web", "8080")
        body = ""
        if rc == 0 and ":" in out:
            try:
                body = urllib.request.urlopen(f"http://{out.strip()}/", timeout=5).read().decode()
            except OSError as e:
                body = str(e)
        step("published port answers", "berth-compose-ok" in body, out + body)
        rc, out = compose("up", "-d", "--scale", "client=2")
        _, ps = compose("ps", "-q", "client")
        step("scale client=2", rc == 0 and len(ps.split()) == 2, out + ps)
        rc, out = run("docker", "inspect", "--format", "{{json .State.Health.Status}}", f"{PROJECT}_web_1")
        step("inspect health", rc == 0 and json.loads(out.strip() or "null") == "healthy", out)
    finally:
        rc, out = compose("down", "-v", "--rmi", "local")
        left = docker_ids("volume") + docker_ids("network")
        rc_ps, ps = run("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}")
        step("down -v leaves nothing", rc == 0 and not left and not ps.split(), out + " ".join(left) + ps)
    passed = sum(results)
    print(f"compose: {passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
