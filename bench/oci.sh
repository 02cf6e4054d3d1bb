#!/usr/bin/env bash
# `berth oci` against runc on the same bundle (issue 16's figures): one create + start +
# delete --force of `true` per run, measured with hyperfine; then the same with a user
# namespace (uid/gid 0 -> 100000, 65536 ids), for the start overhead of user namespaces.
#
# usage: bench/oci.sh [BERTH] [RUNS]     (BERTH defaults to target/release/berth)
# Run it as root, on a quiet machine (take /tmp/berth-root-tests.lock on a shared one).
# On cgroup v1 the first cgroup.procs write after an idle spell waits for an RCU grace period
# (~9 ms here): runs right after another attach are faster, which hyperfine's back-to-back
# runs favour. bench/results-oci-2026-12-06.json has interleaved figures too.
set -euo pipefail
berth=$(realpath "${1:-target/release/berth}")
runs=${2:-50}
work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

bundle() { # DIR USERNS(0|1)
  local dir=$1
  mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" "$dir/rootfs/tmp"
  cp /bin/busybox "$dir/rootfs/bin/"
  ln -sf busybox "$dir/rootfs/bin/true"
  (cd "$dir" && runc spec)
  python3 - "$dir/config.json" "$2" <<'EOF'
import json, sys
path, userns = sys.argv[1], sys.argv[2] == "1"
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["true"]
if userns:
    spec["linux"]["namespaces"].append({"type": "user"})
    m = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["uidMappings"] = m
    spec["linux"]["gidMappings"] = m
json.dump(spec, open(path, "w"))
EOF
}

bundle "$work/plain" 0
bundle "$work/userns" 1

cycle() { # RUNTIME-COMMAND ROOT BUNDLE
  echo "$1 --root $2 create --bundle $3 bench </dev/null >/dev/null 2>&1 && $1 --root $2 start bench && $1 --root $2 delete --force bench"
}

hyperfine --runs "$runs" --warmup 5 -N --export-json "$work/plain.json" \
  -n "berth oci" "sh -c '$(cycle "$berth oci" "$work/berth-root" "$work/plain")'" \
  -n "runc" "sh -c '$(cycle runc "$work/runc-root" "$work/plain")'"
hyperfine --runs "$runs" --warmup 5 -N \
  -n "berth oci, user namespace" "sh -c '$(cycle "$berth oci" "$work/berth-root" "$work/userns")'" \
  -n "berth oci, no user namespace" "sh -c '$(cycle "$berth oci" "$work/berth-root" "$work/plain")'" \
  -n "runc, user namespace" "sh -c '$(cycle runc "$work/runc-root" "$work/userns")'"
