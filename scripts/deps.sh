#!/usr/bin/env bash
# Installs the Debian packages berth needs to build, run and test (idempotent).
set -euo pipefail
pkgs=(bc busybox-static libseccomp-dev pkg-config nftables iptables iproute2 procps curl runc hyperfine python3 iperf3
      debootstrap debian-archive-keyring zstd libcap2-bin)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# docker-py, for the cp/archive tests (put_archive/get_archive against berth).
if ! python3 -c 'import docker' 2>/dev/null; then
  dpkg-query -W -f='${Status}' python3-pip 2>/dev/null | grep -q "ok installed" || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-pip >/dev/null
  }
  pip3 install --break-system-packages -q docker
fi
