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
# Nothing a test does may leave the machine: daemons started by tests send `docker.io` names
# to a dead loopback port instead of Docker Hub.
export BERTH_REGISTRY_HUB=${BERTH_REGISTRY_HUB:-http://127.0.0.1:9}
# The package test (tests/it/service/package.rs) upgrades the suite's berth to a second,
# distinct build: the same sources built with another BERTH_BUILD_VERSION (only the top crate
# and the link are redone, twice: for it, then back for the suite).
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
BERTH_BUILD_VERSION="$version+up1" cargo build -q --bin berth
mkdir -p target/upgrade
cp target/debug/berth target/upgrade/berth
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Root tests are #[ignore]d (a plain `cargo test` lists them as ignored, never as passed):
# --include-ignored runs them, BERTH_TEST_ROOT=1 lets them (berth_testing::require_root).
BERTH_TEST_ROOT=1 cargo test --workspace --no-fail-fast -- --include-ignored 2>&1 | tee "$log" || status=$?
# Fuzzing, bounded: FUZZ_SECONDS per target (4 targets), BERTH_FUZZ=0 to skip. Each target
# counts as one test in the closing line.
if [ "${BERTH_FUZZ:-1}" != 0 ]; then
  fuzz_log=$(mktemp)
  FUZZ_SECONDS=${FUZZ_SECONDS:-45} ./scripts/fuzz.sh 2>&1 | tee "$fuzz_log" || status=1
  echo "fuzz: $(grep -c ' \.\.\. ok$' "$fuzz_log" || true) passed, $(grep -c ' \.\.\. FAILED' "$fuzz_log" || true) failed" | tee -a "$log"
  rm -f "$fuzz_log"
fi
# One closing line for the whole run: the sum over every test binary. `skipped` counts the
# integration harness's tests that this machine cannot run (each says why above).
sum() { grep -hoE "[0-9]+ $1" "$log" | grep -oE '[0-9]+' | paste -sd+ - | bc; }
passed=$(sum passed)
failed=$(sum failed)
skipped=$(sum skipped)
echo
echo "total: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
exit "$status"
