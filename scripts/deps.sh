#!/usr/bin/env bash
# Installs the Debian packages berth needs to build, run and test (idempotent).
set -euo pipefail
# debootstrap: `image bootstrap debian:…` and bench/archive.py's debian image. docker.io: dockerd
# 20.10 for the save/load interop tests (tests/it/archive.rs, skipped without it) and the benches;
# only ever run privately (own socket and roots, no bridge), so its service is never started.
# skopeo, docker-registry (distribution 2.8, run privately on a loopback port), apache2-utils
# (htpasswd) and openssl (a self-signed certificate): the registry tests (tests/it/registry.rs)
# and bench/registry.py. g++: libFuzzer for scripts/fuzz.sh; util-linux: prlimit, setpriv (the
# hardening tests, fuzzing as nobody). systemd: systemd-socket-activate and systemd-analyze (the
# service tests, tests/it/service.rs; systemd need not be PID 1); dpkg-dev: dpkg-shlibdeps for
# the package's dependencies (scripts/package.sh); lintian: the package test checks the .deb
# (tests/it/service/package.rs). docker-compose (1.29, with Debian's
# python3-docker): the compose scenario of tests/clients/compose.py (tests/it/clients.rs).
pkgs=(bc busybox-static libseccomp-dev pkg-config nftables iptables iproute2 procps curl runc hyperfine python3 iperf3
      debootstrap debian-archive-keyring zstd libcap2-bin docker.io skopeo docker-registry apache2-utils openssl
      g++ util-linux systemd dpkg-dev lintian docker-compose)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No package's service may start (docker.io's would take docker0 and the default socket).
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  apt-get install -y -qq "${missing[@]}" >/dev/null
  [ -n "$made_policy" ] && rm -f "$policy"
  if [[ " ${missing[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
  fi
  # docker-registry's service would listen on :5000; the tests start their own.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  fi
fi
# docker-py (PyPI, pinned: Debian bookworm's python3-docker is 5.0.3), for the cp/archive tests
# (put_archive/get_archive against berth) and the build tests (images.build, APIClient.build).
if ! python3 -c 'import docker' 2>/dev/null; then
  dpkg-query -W -f='${Status}' python3-pip 2>/dev/null | grep -q "ok installed" || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-pip >/dev/null
  }
  pip3 install --break-system-packages -q docker==7.1.0
fi
# scripts/package.sh builds the Debian package with dpkg-deb from a staging tree (no cargo-deb:
# the package test runs in every test run), strip from binutils (a dependency of dpkg-dev).
