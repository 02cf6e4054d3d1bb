"""What every bench script shares: running commands, starting a private berth daemon or a
private dockerd 20.10, waiting for them, reading a process's memory, and removing the host
state a bench daemon leaves (its bridge, nft table, FORWARD accepts, cgroup parent).

Every daemon started here is private: its own socket and roots under the caller's directory,
its own bridge (or none), nft table and cgroup parent, all removed by `Daemon.stop()`. Nothing
here touches /var/run/docker.sock, docker0 or the installed berth's bridge and table.
"""
import os, shutil, signal, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"


def default_berth():
    """target/release/berth, or under $CARGO_TARGET_DIR."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "release/berth")


def build_release():
    """`cargo build --release` of the workspace (the scripts measure the release binary)."""
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)


def sh(args, env=None, check=True, stdin=None, cwd=None, shell=False):
    """Runs a command, returns its stdout (stripped); a failure ends the bench."""
    r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=stdin, cwd=cwd, shell=shell)
    if check and r.returncode != 0:
        shown = args if shell else " ".join(args)
        raise SystemExit(f"{shown} failed: {r.stderr.decode()[-2000:]} {r.stdout.decode()[-500:]}")
    return r.stdout.decode().strip()


def status_kib(pid, field):
    """A `/proc/PID/status` field in KiB (`VmRSS`, `RssAnon`, ...), 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def pss_kib(pid):
    """Proportional set size (shared pages divided among their users), 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_socket(path, proc, timeout=30):
    """Until `path` exists; the daemon exiting first ends the bench."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"daemon exited: {proc.returncode}")
        time.sleep(0.01)
    raise SystemExit(f"{path}: the daemon did not come up")


def wait_for(cmd, env=None, tries=300):
    """Until `cmd` succeeds (0.1 s apart)."""
    for _ in range(tries):
        if subprocess.run(cmd, env=env, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"{cmd} never answered")


def remove_host_state(bridge=None, nft_table=None, cgroup_parent=None):
    """A bench berth daemon's bridge, nft table, FORWARD accepts and cgroup parent (each only
    if named; never the installed daemon's)."""
    if nft_table:
        # An `ip6` table exists while a dual-stack network does.
        for family in ("ip", "ip6"):
            subprocess.run(["nft", "delete", "table", family, nft_table], capture_output=True)
    if bridge and bridge != "none":
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        for tool in ("iptables", "ip6tables"):
            rules = subprocess.run([tool, "-w", "5", "-S", "FORWARD"], capture_output=True,
                                   text=True).stdout
            for rule in rules.splitlines():
                if bridge in rule.split() and rule.startswith("-A "):
                    subprocess.run([tool, "-w", "5", "-D", *rule.split()[1:]], capture_output=True)
    if cgroup_parent:
        name = cgroup_parent.strip("/")
        for base in ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", c)
                                          for c in os.listdir("/sys/fs/cgroup")]:
            path = os.path.join(base, name)
            if not os.path.isdir(path):
                continue
            for root, _, _ in sorted(os.walk(path, topdown=False), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(root)
                except OSError:
                    pass


def stop_process(proc, timeout=30):
    """SIGTERM, then SIGKILL after `timeout` seconds; waits for the exit."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Daemon:
    """A running private engine: its CLI, the environment that points the CLIs at it, its
    process, and what `stop()` removes after it."""

    def __init__(self, name, cli, env, proc, cleanup, root=None):
        self.name, self.cli, self.env, self.proc, self.cleanup = name, cli, env, proc, cleanup
        self.root = root

    @property
    def pid(self):
        return self.proc.pid

    def run(self, *args, check=True, stdin=None, cwd=None):
        return sh([self.cli, *args], env=self.env, check=check, stdin=stdin, cwd=cwd)

    def remove_all_containers(self):
        ids = self.run("ps", "-aq", check=False).split()
        if ids:
            self.run("rm", "-f", *ids, check=False)

    def stop(self):
        stop_process(self.proc)
        self.cleanup()

    def ready(self, sock, prepare):
        """Waits for the daemon to answer on `sock`, runs `prepare()`, and returns itself;
        stops it (and removes what it made) if either fails."""
        try:
            wait_socket(sock, self.proc)
            wait_for([self.cli, "version"], self.env)
            prepare()
        except BaseException:
            self.stop()
            raise
        return self


def start_berth(berth, root, bridge="none", tag=None, extra=(), bootstrap=True, keep_root=False,
                data_root=None):
    """A berth daemon on `root`/run/berth.sock with its data under `root`/data (or `data_root`)
    and its run root under `root`/run; its own bridge (`bridge`, "none" for no default
    bridge), nft table and cgroup parent (both named `tag`, default: the root's name).
    `root` must be short (unix socket paths fit 108 bytes). With `bootstrap`, busybox is
    made from the host's busybox. `stop()` removes the daemon's host state and, unless
    `keep_root`, the root."""
    tag = tag or os.path.basename(root.rstrip("/"))
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    sock = f"{root}/run/berth.sock"
    data_root = data_root or f"{root}/data"
    env = dict(os.environ, BERTH_HOST=f"unix://{sock}", DOCKER_HOST=f"unix://{sock}",
               DOCKER_CONFIG=f"{root}/docker-config")
    cgroup_parent = f"/{tag}"
    proc = subprocess.Popen([berth, "daemon", "-H", f"unix://{sock}", "--data-root", data_root,
                             "--exec-root", f"{root}/run", "--bridge", bridge, "--nft-table", tag,
                             "--cgroup-parent", cgroup_parent, *extra],
                            stdout=subprocess.DEVNULL, stderr=open(f"{root}/daemon.log", "w"))

    def cleanup():
        remove_host_state(bridge=bridge, nft_table=tag, cgroup_parent=cgroup_parent)
        if not keep_root:
            shutil.rmtree(root, ignore_errors=True)

    d = Daemon("berth", berth, env, proc, cleanup, root=root)

    def prepare():
        if bootstrap:
            d.run("image", "bootstrap", "busybox")
    return d.ready(sock, prepare)


def busybox_tar(tmp, apps=("sh", "true", "sleep", "cat", "wc", "ls", "echo", "rm", "dd")):
    """A tar of a root with the host's /bin/busybox and links for `apps` (for a dockerd that
    cannot pull)."""
    rootfs = f"{tmp}/bb-rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    os.makedirs(f"{rootfs}/bin")
    shutil.copy("/bin/busybox", f"{rootfs}/bin/busybox")
    for app in apps:
        os.symlink("busybox", f"{rootfs}/bin/{app}")
    tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True).stdout
    shutil.rmtree(rootfs, ignore_errors=True)
    return tar


def start_dockerd(root, busybox=None, image="busybox:latest", data_root=None, keep_root=False):
    """A private dockerd (20.10 here) on `root`/docker.sock: its data under `root`/docker-data
    (or `data_root`), no bridge, no iptables, its own cgroup parent. With `busybox` (a tar, see `busybox_tar`),
    imported as `image`. `stop()` unmounts and removes its roots (and `root`, unless
    `keep_root`: a directory the caller shares with a berth daemon)."""
    dockerd = shutil.which("dockerd")
    if not dockerd:
        raise SystemExit("dockerd not installed")
    os.makedirs(root, exist_ok=True)
    sock = f"{root}/docker.sock"
    data_root = data_root or f"{root}/docker-data"
    exec_root = f"{root}/docker-exec"
    cgroup_parent = f"/{os.path.basename(root.rstrip('/'))}-docker"
    for p in (data_root, exec_root):
        shutil.rmtree(p, ignore_errors=True)
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=f"{root}/docker-config",
               DOCKER_BUILDKIT="0")
    proc = subprocess.Popen([dockerd, "-H", f"unix://{sock}", "--data-root", data_root,
                             "--exec-root", exec_root, "--pidfile", f"{root}/docker.pid",
                             "--cgroup-parent", cgroup_parent,
                             "--bridge=none", "--iptables=false", "--ip6tables=false"],
                            stdout=subprocess.DEVNULL, stderr=open(f"{root}/dockerd.log", "w"))

    def cleanup():
        subprocess.run(["umount", "-R", data_root], capture_output=True)
        remove_host_state(cgroup_parent=cgroup_parent)
        for p in (data_root, exec_root, f"{root}/docker-config"):
            shutil.rmtree(p, ignore_errors=True)
        if not keep_root:
            shutil.rmtree(root, ignore_errors=True)

    d = Daemon("dockerd", DOCKER_CLI, env, proc, cleanup, root=root)

    def prepare():
        if busybox is not None:
            subprocess.run([DOCKER_CLI, "import", "-c", 'CMD ["sh"]', "-", image], input=busybox,
                           env=env, check=True, capture_output=True)
    return d.ready(sock, prepare)
