# docker-py's images.build / APIClient.build against berthd (tests/it/build.rs runs it:
# python3 build_docker_py.py DOCKER_HOST WORKDIR). Prints "ok" when every check passed.
import io
import os
import sys
import tarfile

import docker

host, work = sys.argv[1], sys.argv[2]
client = docker.DockerClient(base_url=host, version="1.44", timeout=120)
api = client.api


def ctx(name, files):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    for path, data in files.items():
        p = os.path.join(d, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(data)
    return d


def streams(logs):
    return "".join(c.get("stream", "") for c in logs)


def ids():
    return set(c["Id"] for c in api.containers(all=True))


def run_out(image, *cmd):
    out = client.containers.run(image, list(cmd), remove=True, network_mode="none")
    return out.decode()


before = ids()

# A path context: tag, buildargs, target, labels, the streamed lines and the returned image.
d = ctx(
    "py-path",
    {
        "Dockerfile": "FROM busybox AS base\nARG WHO=nobody\nENV WHO=$WHO\n"
        "COPY data.txt /data.txt\nRUN echo \"hi $WHO\" > /hi\nCMD [\"cat\", \"/hi\"]\n"
        "FROM base AS other\nRUN echo never > /never\n",
        "data.txt": "data\n",
    },
)
image, logs = client.images.build(
    path=d,
    tag="py-path:v1",
    buildargs={"WHO": "python"},
    target="base",
    labels={"made.by": "docker-py"},
    rm=True,
)
text = streams(logs)
assert "Step 1/" in text and " : RUN echo" in text, text
assert " ---> Running in " in text, text
assert "Successfully built " + image.short_id.split(":")[1] in text, text
assert "Successfully tagged py-path:v1" in text, text
assert "never" not in text, "a stage --target does not need was built: " + text
assert "py-path:v1" in image.tags, image.tags
assert image.labels.get("made.by") == "docker-py", image.labels
assert image.attrs["Config"]["Cmd"] == ["cat", "/hi"], image.attrs["Config"]
assert "WHO=python" in image.attrs["Config"]["Env"], image.attrs["Config"]
assert run_out("py-path:v1") == "hi python\n"
assert ids() == before, "rm=True left step containers: %s" % (ids() - before)

# Built again: every step from the cache, the same image; nocache builds it anew.
again, logs = client.images.build(
    path=d, tag="py-path:v1", buildargs={"WHO": "python"}, target="base",
    labels={"made.by": "docker-py"},
)
text = streams(logs)
assert again.id == image.id, (again.id, image.id)
assert text.count(" ---> Using cache") >= 4, text
fresh, logs = client.images.build(
    path=d, buildargs={"WHO": "python"}, target="base", labels={"made.by": "docker-py"},
    nocache=True,
)
assert "Using cache" not in streams(logs)
assert fresh.id != image.id

# rm=False (docker-py's default) keeps every step's container as dockerd does (ARG, ENV,
# RUN, CMD: not COPY), each the one its " ---> Running in" line names; forcerm removes them.
before = ids()
_, logs = client.images.build(path=d, target="base", nocache=True, rm=False)
kept = ids() - before
running = [c["stream"].split()[-1] for c in logs if c.get("stream", "").startswith(" ---> Running in ")]
assert len(kept) == 4 and len(running) == 4, (kept, running)
assert all(any(k.startswith(r) for k in kept) for r in running), (kept, running)
for k in kept:
    api.remove_container(k, force=True)
_, logs = client.images.build(path=d, target="base", nocache=True, rm=False, forcerm=True)
assert ids() == before, ids() - before

# network_mode: none has only loopback.
d2 = ctx("py-net", {"Dockerfile": "FROM busybox\nRUN ls /sys/class/net > /nets\n"})
img, _ = client.images.build(path=d2, network_mode="none", nocache=True)
assert run_out(img.id, "cat", "/nets") == "lo\n", run_out(img.id, "cat", "/nets")

# A Dockerfile outside the context (docker-py puts it into the tar under another name).
outside = os.path.join(work, "py-outside.Dockerfile")
with open(outside, "w") as f:
    f.write("FROM busybox\nCOPY data.txt /from-outside\n")
img, _ = client.images.build(path=d, dockerfile=outside, tag="py-outside")
assert run_out("py-outside", "cat", "/from-outside") == "data\n"

# fileobj: a Dockerfile alone.
img, logs = client.images.build(
    fileobj=io.BytesIO(b"FROM busybox\nLABEL from=fileobj\nCMD [\"echo\", \"fileobj\"]\n"),
    tag="py-fileobj",
)
assert img.labels.get("from") == "fileobj", img.labels
assert run_out("py-fileobj") == "fileobj\n"

# custom_context: a tar of our own, plain and gzip.
for encoding in (None, "gzip"):
    buf = io.BytesIO()
    mode = "w:gz" if encoding else "w"
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data in (
            ("Dockerfile", b"FROM busybox\nCOPY hello /hello\n"),
            ("hello", b"custom context\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    img, _ = client.images.build(
        fileobj=buf, custom_context=True, encoding=encoding, tag="py-custom"
    )
    assert run_out("py-custom", "cat", "/hello") == "custom context\n"

# APIClient.build: the raw decoded stream.
chunks = list(api.build(path=d2, tag="py-api", decode=True, network_mode="none"))
assert any("aux" in c and c["aux"]["ID"].startswith("sha256:") for c in chunks), chunks
assert any(c.get("stream", "").startswith("Successfully tagged py-api:latest") for c in chunks)
assert api.inspect_image("py-api")["Id"] == [c for c in chunks if "aux" in c][0]["aux"]["ID"]

# A failing RUN raises BuildError with the RUN's message; nothing is tagged, nothing left.
before = ids()
d3 = ctx("py-fail", {"Dockerfile": "FROM busybox\nRUN echo about to fail && exit 3\n"})
try:
    client.images.build(path=d3, tag="py-fail", rm=True)
    sys.exit("a failing RUN did not raise BuildError")
except docker.errors.BuildError as e:
    msg = str(e)
    assert "The command '/bin/sh -c echo about to fail && exit 3' returned a non-zero code: 3" in msg, msg
    log = streams(e.build_log)
    assert "about to fail" in log, log
try:
    client.images.get("py-fail")
    sys.exit("a failed build tagged its image")
except docker.errors.ImageNotFound:
    pass
assert ids() == before, ids() - before

# A bad Dockerfile is an APIError before any line.
d4 = ctx("py-bad", {"Dockerfile": "FROM busybox\nNOPE x\n"})
try:
    client.images.build(path=d4)
    sys.exit("an unknown instruction was accepted")
except docker.errors.BuildError as e:
    assert "unknown instruction: NOPE" in str(e), str(e)
except docker.errors.APIError as e:
    assert "unknown instruction: NOPE" in str(e), str(e)

for tag in ("py-path:v1", "py-outside", "py-fileobj", "py-custom", "py-api"):
    client.images.remove(tag, force=True)
print("ok")
