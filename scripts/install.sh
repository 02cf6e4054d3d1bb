#!/usr/bin/env bash
# Fresh Debian 12 → berth installed, daemon running, busybox image bootstrapped offline, and a
# first container run. Run as root from a checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release
install -m 0755 target/release/berth /usr/local/bin/berth
# The CLI starts the daemon itself when none answers and it runs as root.
berth image bootstrap busybox
berth run --rm busybox echo "hello from a berth container"
