#!/usr/bin/env python3
"""docker-py (7.x) scenarios of the project's own (issue 14, item 11), against the engine at
DOCKER_HOST: what client code does with the high-level API. Offline: only the local busybox
image (tagged here as the names the scenarios use). Prints one line per test and
`docker-py: N passed, M failed`; exits 1 if one failed. Each test is bounded by the client's
timeout (60 s).

    DOCKER_HOST=unix:///path/to.sock tests/clients/dockerpy.py
"""
import io, json, os, sys, tarfile, time, traceback

import docker

P = f"dp{os.getpid()}"
client = docker.from_env(timeout=60)
TESTS = []


def test(f):
    TESTS.append(f)
    return f


def run(cmd, **kw):
    return client.containers.run("busybox", cmd, remove=True, **kw)


@test
def ping_version_info():
    assert client.ping()
    v = client.version()
    assert v["ApiVersion"] and any(c["Name"] == "Engine" for c in v.get("Components", []))
    info = client.info()
    assert info["DefaultRuntime"] in info["Runtimes"]


@test
def run_output_and_exit_code():
    assert run(["echo", "hello"]) == b"hello\n"
    try:
        run(["sh", "-c", "echo bad >&2; exit 3"], stderr=True)
        raise AssertionError("no ContainerError")
    except docker.errors.ContainerError as e:
        assert e.exit_status == 3 and b"bad" in e.stderr


@test
def detached_logs_wait_attrs():
    c = client.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2"], detach=True, name=f"{P}_logs")
    try:
        assert c.wait(timeout=30)["StatusCode"] == 0
        assert c.logs(stdout=True, stderr=False) == b"one\n"
        assert c.logs(stdout=False, stderr=True) == b"two\n"
        c.reload()
        assert c.status == "exited" and c.attrs["Config"]["Entrypoint"] is None
        assert c.attrs["HostConfig"]["CapAdd"] is None and c.attrs["State"]["ExitCode"] == 0
    finally:
        c.remove(force=True)


@test
def exec_run_stream_and_env():
    c = client.containers.run("busybox", ["sleep", "100"], detach=True, name=f"{P}_exec")
    try:
        r = c.exec_run(["sh", "-c", "echo $X"], environment={"X": "y"})
        assert r.exit_code == 0 and r.output == b"y\n"
        r = c.exec_run(["sh", "-c", "exit 5"])
        assert r.exit_code == 5
        r = c.exec_run(["id", "-u"], user="65534")
        assert r.output.strip() == b"65534"
    finally:
        c.remove(force=True)


@test
def archive_put_and_get():
    c = client.containers.run("busybox", ["sleep", "100"], detach=True, name=f"{P}_arch")
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = b"payload"
            info = tarfile.TarInfo("f.txt")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        assert c.put_archive("/tmp", buf.getvalue())
        bits, stat = c.get_archive("/tmp/f.txt")
        raw = b"".join(bits)
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            assert t.extractfile("f.txt").read() == b"payload"
        assert stat["name"] == "f.txt" and stat["size"] == 7
    finally:
        c.remove(force=True)


@test
def stats_one_shot_and_stream():
    c = client.containers.run("busybox", ["sleep", "100"], detach=True, name=f"{P}_stats")
    try:
        s = c.stats(stream=False)
        assert s["memory_stats"]["usage"] > 0 and "blkio_stats" in s and "pids_stats" in s
        gen = c.stats(stream=True, decode=True)
        first, second = next(gen), next(gen)
        assert second["precpu_stats"]["cpu_usage"]["total_usage"] >= 0 and first["read"] != second["read"]
    finally:
        c.remove(force=True)


@test
def images_build_tag_list_remove():
    df = b"FROM busybox\nLABEL berth.test=1\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n"
    img, logs = client.images.build(fileobj=io.BytesIO(df), tag=f"{P}-img:1", rm=True)
    try:
        assert img.labels.get("berth.test") == "1"
        assert any(f"{P}-img:1" in i.tags for i in client.images.list())
        assert run(None, **{}) if False else client.containers.run(f"{P}-img:1", remove=True) == b"built\n"
        img.tag(f"{P}-img", "2")
        assert f"{P}-img:2" in client.images.get(f"{P}-img:1").tags
    finally:
        for t in ("1", "2"):
            try:
                client.images.remove(f"{P}-img:{t}", force=True)
            except docker.errors.ImageNotFound:
                pass


@test
def image_not_found_error():
    try:
        client.images.get("berth-no-such-image:nope")
        raise AssertionError("no ImageNotFound")
    except docker.errors.ImageNotFound:
        pass
    try:
        client.containers.get("berth-no-such-container")
        raise AssertionError("no NotFound")
    except docker.errors.NotFound:
        pass


@test
def networks_dns_and_connect():
    net = client.networks.create(f"{P}_net", driver="bridge",
                                 ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"10.231.{100 + os.getpid() % 100}.0/24")]))
    a = client.containers.run("busybox", ["sleep", "100"], detach=True, name=f"{P}_a", network=net.name)
    b = client.containers.run("busybox", ["sleep", "100"], detach=True, name=f"{P}_b")
    try:
        net.connect(b, aliases=["bee"])
        r = a.exec_run(["ping", "-c", "1", "-W", "2", "bee"])
        assert r.exit_code == 0, r.output
        net.reload()
        assert len(net.containers) == 2
        net.disconnect(b)
        b.reload()
        assert net.name not in b.attrs["NetworkSettings"]["Networks"]
    finally:
        a.remove(force=True)
        b.remove(force=True)
        net.remove()


@test
def volumes_create_mount_remove():
    v = client.volumes.create(f"{P}_vol", labels={"k": "v"})
    try:
        run(["sh", "-c", "echo kept > /v/x"], volumes={v.name: {"bind": "/v", "mode": "rw"}})
        assert run(["cat", "/v/x"], volumes={v.name: {"bind": "/v", "mode": "ro"}}) == b"kept\n"
        v.reload()
        assert v.attrs["Labels"] == {"k": "v"} and v.attrs["Driver"] == "local"
    finally:
        v.remove(force=True)


@test
def ports_published_and_listed():
    c = client.containers.run("busybox", ["httpd", "-f", "-p", "80"], detach=True, name=f"{P}_port",
                              ports={"80/tcp": ("127.0.0.1", None)})
    try:
        c.reload()
        binding = c.ports["80/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 0
        listed = client.api.containers(filters={"name": f"{P}_port"})[0]["Ports"]
        assert any(p.get("PublicPort") == int(binding["HostPort"]) for p in listed)
    finally:
        c.remove(force=True)


@test
def healthcheck_state():
    c = client.containers.run("busybox", ["sleep", "100"], detach=True, name=f"{P}_health",
                              healthcheck={"test": ["CMD", "true"], "interval": 200_000_000, "retries": 3})
    try:
        for _ in range(50):
            c.reload()
            if c.attrs["State"]["Health"]["Status"] == "healthy":
                break
            time.sleep(0.2)
        assert c.attrs["State"]["Health"]["Status"] == "healthy"
        assert client.containers.list(filters={"health": "healthy", "name": f"{P}_health"})
    finally:
        c.remove(force=True)


@test
def kill_stop_restart_wait():
    c = client.containers.run("busybox", ["sleep", "100"], detach=True, name=f"{P}_life")
    try:
        c.kill()
        assert c.wait(timeout=30)["StatusCode"] == 137
        c.start()
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited"
        c.restart(timeout=1)
        c.reload()
        assert c.status == "running"
    finally:
        c.remove(force=True)


@test
def events_stream():
    since = int(time.time()) - 1
    c = client.containers.run("busybox", ["true"], detach=True, name=f"{P}_ev")
    c.wait(timeout=30)
    c.remove()
    until = int(time.time()) + 1
    actions = [(e["Type"], e["Action"]) for e in client.events(since=since, until=until, decode=True,
                                                               filters={"container": f"{P}_ev"})]
    for want in ("create", "start", "die", "destroy"):
        assert ("container", want) in actions, actions


@test
def prune_and_df():
    client.containers.run("busybox", ["true"], name=f"{P}_prune")
    df = client.df()
    assert any(c["Names"] == [f"/{P}_prune"] for c in df["Containers"])
    r = client.containers.prune(filters={"label!": "keep"})
    assert any(cid for cid in r.get("ContainersDeleted") or [])


@test
def attach_socket_and_tty_logs():
    c = client.containers.run("busybox", ["sh", "-c", "echo tty-out"], detach=True, tty=True, name=f"{P}_tty")
    try:
        c.wait(timeout=30)
        assert c.logs() == b"tty-out\r\n"
    finally:
        c.remove(force=True)


@test
def swarm_off_answers():
    try:
        client.services.list()
        raise AssertionError("services listed without swarm")
    except docker.errors.APIError as e:
        assert e.status_code == 503 and "not a swarm manager" in str(e)


def main():
    passed = failed = 0
    for t in TESTS:
        start = time.time()
        try:
            t()
            passed += 1
            print(f"docker-py {t.__name__} ... ok ({time.time() - start:.1f} s)", flush=True)
        except Exception:
            failed += 1
            print(f"docker-py {t.__name__} ... FAILED\n{traceback.format_exc()}", flush=True)
    print(f"docker-py: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
