#!/usr/bin/env python3
"""Docker's JSON shapes, as golden key sets for tests/it/shape.rs.

    shapes.py collect HOST OUT.json   run the scenario against an engine (DOCKER_HOST-style
                                      HOST, e.g. a private dockerd's unix:///tmp/x/d.sock) with
                                      the docker CLI and save every body it answers
    shapes.py golden OUT.json DIR     write DIR/<object>.json: {"paths": {path: [kinds]},
                                      "ignore": [prefixes]} from a dockerd's bodies
    shapes.py diff A.json B.json      the paths whose kinds differ between two engines

A path is `.Key.Key[]...`, map keys chosen by the engine (names, IDs, ports, labels: the
paths in DYNAMIC, written into each golden file) are `*`; a kind is null, str, num, bool, obj
or list. tests/it/shape.rs checks berth's body both ways: each of its paths must be in the
golden file with the same kinds, and each golden path must be in it, except paths inside a
list or a dynamic map (their presence depends on the data). The golden files are dockerd 20.10's answers at
API 1.41 (the newest it serves), moved to API 1.44 by ADJUST below, each change with the
version-history line that makes it. CI compares berth with them (tests/it/shape.rs), so it
needs no dockerd.
"""
import json, os, subprocess, sys, time

# Maps whose keys are data, not schema.
DYNAMIC = {".Config.Labels", ".Config.Volumes", ".Config.ExposedPorts", ".NetworkSettings.Networks",
           ".NetworkSettings.Ports", ".HostConfig.PortBindings", ".GraphDriver.Data", ".Labels",
           ".Options", ".Containers", ".networks", ".memory_stats.stats", ".RegistryConfig.IndexConfigs",
           ".Runtimes", ".IPAM.Options", ".Actor.Attributes", ".ContainerConfig.Labels",
           ".ContainerConfig.Volumes", ".ContainerConfig.ExposedPorts", ".HostConfig.LogConfig.Config",
           ".Mounts[].Labels"}


def kind(v):
    if v is None: return "null"
    if isinstance(v, bool): return "bool"
    if isinstance(v, (int, float)): return "num"
    if isinstance(v, str): return "str"
    if isinstance(v, list): return "list"
    return "obj"


def dyn(path):
    # `.Containers[]` (a list) keeps its keys; `.Containers` (network inspect, a map) does not.
    bare = path.lstrip("[]")
    for d in DYNAMIC:
        if bare == d or bare.endswith(d):
            return True
    return False


def walk(v, path, out):
    out.setdefault(path, set()).add(kind(v))
    if isinstance(v, dict):
        for k, x in v.items():
            walk(x, path + "." + ("*" if dyn(path) else k), out)
    elif isinstance(v, list):
        for x in v:
            walk(x, path + "[]", out)


def docs(body):
    body = body.strip()
    try:
        return [json.loads(body)]
    except ValueError:
        return [json.loads(line) for line in body.splitlines() if line.strip()]


def shape(body):
    out = {}
    for d in docs(body):
        walk(d, "", out)
    return out


def api(sock, path, seconds=None):
    args = ["curl", "-s", "--unix-socket", sock, "http://x" + path]
    if seconds:
        args = ["timeout", str(seconds)] + args
    return subprocess.run(args, capture_output=True).stdout.decode()


def collect(host, out):
    sock = host.removeprefix("unix://")
    env = dict(os.environ, DOCKER_HOST=host)
    docker = lambda *a: subprocess.run(["docker", *a], env=env, capture_output=True, text=True)
    for c in ("sh_created", "sh_run", "sh_none", "sh_exited"):
        docker("rm", "-f", c)
    docker("network", "rm", "shnet")
    docker("volume", "rm", "-f", "shvol", "shimpl", "shmnt")
    t0 = int(time.time())
    docker("network", "create", "--subnet", "10.231.7.0/24", "shnet")
    docker("volume", "create", "shvol")
    docker("create", "--name", "sh_created", "busybox", "sleep", "100")
    docker("run", "-d", "--name", "sh_run", "--network", "shnet", "-v", "shvol:/data",
           "-p", "127.0.0.1::80", "busybox", "sleep", "1000")
    docker("run", "-d", "--name", "sh_none", "--network", "none", "-v", "shimpl:/data",
           "--mount", "source=shmnt,target=/m", "busybox", "sleep", "1000")
    docker("run", "--name", "sh_exited", "--network", "none", "busybox", "true")
    time.sleep(1)
    v = "/v1.41"
    bodies = {
        "container_created": api(sock, v + "/containers/sh_created/json"),
        "container_running": api(sock, v + "/containers/sh_run/json"),
        "container_exited": api(sock, v + "/containers/sh_exited/json"),
        "image": api(sock, v + "/images/busybox/json"),
        "images": api(sock, v + "/images/json"),
        "network": api(sock, v + "/networks/shnet"),
        "volume": api(sock, v + "/volumes/shvol"),
        "volumes": api(sock, v + "/volumes"),
        "ps": api(sock, v + "/containers/json?all=1"),
        "df": api(sock, v + "/system/df"),
        "info": api(sock, v + "/info"),
        "version": api(sock, v + "/version"),
        "stats": api(sock, v + "/containers/sh_run/stats?stream=false"),
        "stats_none": api(sock, v + "/containers/sh_none/stats?stream=false"),
    }
    docker("kill", "sh_none")
    time.sleep(0.5)
    bodies["events"] = api(sock, v + f"/events?since={t0}&until={int(time.time()) + 1}")
    for c in ("sh_created", "sh_run", "sh_none", "sh_exited"):
        docker("rm", "-f", c)
    docker("network", "rm", "shnet")
    docker("volume", "rm", "-f", "shvol", "shimpl", "shmnt")
    json.dump(bodies, open(out, "w"), indent=1)


# API 1.41 (dockerd 20.10) -> 1.44 (docker-engine-api-version-history.md), and what this
# machine decides rather than the API. Each: object -> (paths to drop, paths to add, ignored
# prefixes).
NET = ".NetworkSettings.Networks.*"
ADJUST = {
    # 1.42: KernelMemory(TCP) omitted when not set. 1.44: DNSNames added (null on the default
    # bridge). Config.NetworkDisabled is omitempty (set here by dockerd's --bridge=none).
    "container_created": ({".HostConfig.KernelMemory", ".HostConfig.KernelMemoryTCP"},
                          {NET + ".DNSNames": ["null", "list"], NET + ".DNSNames[]": ["str"]},
                          [".Config.NetworkDisabled"]),
    "container_running": ({".HostConfig.KernelMemory", ".HostConfig.KernelMemoryTCP"},
                          {NET + ".DNSNames": ["null", "list"], NET + ".DNSNames[]": ["str"]},
                          [".Config.NetworkDisabled"]),
    "container_exited": ({".HostConfig.KernelMemory", ".HostConfig.KernelMemoryTCP"},
                         {NET + ".DNSNames": ["null", "list"], NET + ".DNSNames[]": ["str"]},
                         [".Config.NetworkDisabled"]),
    # 1.44: VirtualSize omitted. Container is omitempty from 25.0 (empty for images that were
    # not committed).
    "image": ({".VirtualSize", ".Container"}, {}, []),
    # 1.43: RepoTags/RepoDigests [] instead of null (or <none>). 1.44: VirtualSize omitted.
    "images": ({"[].VirtualSize"}, {"[].RepoDigests": ["list"]}, []),
    # IPAM.Config's Gateway: dockerd leaves out the one it chose for a given subnet until it
    # restarts, then lists it (moby#26799, moby#49520); berth always lists it. The options:
    # what each driver fills in.
    "network": (set(), {".IPAM.Config[].Gateway": ["str"]}, [".Options"]),
    "ps": (set(), {"[]" + NET + ".DNSNames": ["null", "list"], "[]" + NET + ".DNSNames[]": ["str"]}, []),
    # 1.42: BuilderSize removed. 1.44: VirtualSize omitted. SizeRw is omitempty (the sample's
    # containers wrote nothing; a container that wrote has it).
    "df": ({".BuilderSize", ".Images[].VirtualSize"},
           {".Images[].RepoDigests": ["list"], ".Containers[].SizeRw": ["num"],
            ".Containers[]" + NET + ".DNSNames": ["null", "list"],
            ".Containers[]" + NET + ".DNSNames[]": ["str"]}, []),
    # KernelMemory(TCP): cgroup v1 hosts only (1.42). The v1-only memory counters' names are
    # the kernel's.
    "info": (set(), {}, [".KernelMemory", ".KernelMemoryTCP", ".Plugins", ".DriverStatus",
                          ".SecurityOptions", ".Runtimes", ".RegistryConfig.IndexConfigs"]),
    "version": (set(), {}, [".Components", ".Platform"]),
    # Entries are there when the cgroup saw I/O: their shape is Docker's BlkioStatEntry.
    "stats": (set(), {".blkio_stats.io_service_bytes_recursive[]": ["obj"],
                      ".blkio_stats.io_service_bytes_recursive[].major": ["num"],
                      ".blkio_stats.io_service_bytes_recursive[].minor": ["num"],
                      ".blkio_stats.io_service_bytes_recursive[].op": ["str"],
                      ".blkio_stats.io_service_bytes_recursive[].value": ["num"]},
              [".memory_stats.stats"]),
    "stats_none": (set(), {".blkio_stats.io_service_bytes_recursive[]": ["obj"],
                           ".blkio_stats.io_service_bytes_recursive[].major": ["num"],
                           ".blkio_stats.io_service_bytes_recursive[].minor": ["num"],
                           ".blkio_stats.io_service_bytes_recursive[].op": ["str"],
                           ".blkio_stats.io_service_bytes_recursive[].value": ["num"]},
                   [".memory_stats.stats"]),
}


def golden(raw_file, outdir):
    raw = json.load(open(raw_file))
    for name, body in raw.items():
        if name == "events" or not body.strip():
            continue
        paths = {p: sorted(k) for p, k in shape(body).items()}
        drop, add, ignore = ADJUST.get(name, (set(), {}, []))
        for p in list(paths):
            if any(p == d or p.startswith(d + ".") or p.startswith(d + "[") for d in drop):
                del paths[p]
            elif any(p == i or p.startswith(i + ".") or p.startswith(i + "[") for i in ignore):
                del paths[p]
        paths.update(add)
        doc = {"source": "dockerd 20.10.24, API 1.41, adjusted to 1.44 (tests/compat/shapes.py)",
               "dynamic": sorted(DYNAMIC), "ignore": ignore, "paths": dict(sorted(paths.items()))}
        with open(os.path.join(outdir, name + ".json"), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=False)
            f.write("\n")
    # Events: the attribute keys of each (Type, Action).
    ev = {}
    for d in docs(raw["events"]):
        key = f"{d['Type']} {d['Action'].split(':')[0]}"
        ev.setdefault(key, set()).update(d["Actor"]["Attributes"])
    with open(os.path.join(outdir, "events.json"), "w") as f:
        json.dump({k: sorted(v) for k, v in sorted(ev.items())}, f, indent=1)
        f.write("\n")


def diff(a_file, b_file):
    a, b = json.load(open(a_file)), json.load(open(b_file))
    for name in a:
        if name == "events" or not a[name].strip():
            continue
        sa, sb = shape(a[name]), shape(b.get(name, "{}"))
        for p in sorted(set(sa) | set(sb)):
            if sa.get(p) != sb.get(p):
                print(f"{name:18} {p:60} {sorted(sa.get(p, [])) or '-'} {sorted(sb.get(p, [])) or '-'}")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"collect": collect, "golden": golden, "diff": diff}[cmd](*args)
