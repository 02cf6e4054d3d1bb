#!/usr/bin/env bash
# Fresh Debian 12 → berth installed as a Debian package (/usr/bin/berth, berth.service and
# berth.socket, completions, man pages, /etc/berth/daemon.json, the `berth` group), busybox
# bootstrapped offline, and a first container run. Run as root from a checkout.
# Under systemd the package enables berth.socket (the first client starts the daemon); where
# systemd is not PID 1 (containers, CI) the CLI starts the daemon on demand, as before.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
deb=$(./scripts/package.sh)
# The berth the previous install.sh put in /usr/local/bin would shadow the package's.
if [ -f /usr/local/bin/berth ] && ! dpkg -S /usr/local/bin/berth >/dev/null 2>&1; then
  rm -f /usr/local/bin/berth
fi
apt-get install -y -qq "./$deb" >/dev/null
hash -r
berth image bootstrap busybox
berth run --rm busybox echo "hello from a berth container"
