#!/usr/bin/env bash
# The whole test suite: format, lints, unit tests, and the root integration tests that run
# real containers (through the berth CLI and the real docker CLI) against a daemon of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh runs real containers: run it as root" >&2
  exit 1
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
BERTH_TEST_ROOT=1 cargo test --workspace
