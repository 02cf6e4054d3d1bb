#!/usr/bin/env bash
# Installs the Debian packages berth needs to build, run and test (idempotent).
set -euo pipefail
# debootstrap: bench/archive.py's debian image. docker.io: dockerd 20.10 for the save/load
# interop tests (tests/it/archive.rs, skipped without it) and the benches; only ever run
# privately (own socket and roots, no bridge), so its system service is not left running.
pkgs=(bc busybox-static libseccomp-dev pkg-config nftables iptables iproute2 procps curl runc hyperfine python3 iperf3 debootstrap docker.io)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
  fi
fi
