#!/usr/bin/env bash
# Coverage-guided fuzzing of berth's untrusted-input parsers with libFuzzer, on the stable
# toolchain: the fuzz crate (fuzz/, also usable with `cargo fuzz`) is built with LLVM's
# SanitizerCoverage instrumentation (stable -C flags; no sanitizer, which would need nightly),
# and each target runs for FUZZ_SECONDS (default 30) from its corpus in fuzz/corpus/<target>/.
# New inputs found go to a scratch directory (the repository's corpus is only read); a crash
# fails the run and leaves its input in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [TARGET...]      FUZZ_SECONDS=60 scripts/fuzz.sh layer_tar
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(layer_tar reference go_template api_json)
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target: the flags reach the targets, not build scripts and proc macros.
cargo build --release --manifest-path fuzz/Cargo.toml --target "$host" --bins
bin=fuzz/target/$host/release
status=0
for target in "${targets[@]}"; do
  scratch=$(mktemp -d)
  mkdir -p "fuzz/artifacts/$target"
  run=("$bin/$target" "$scratch" "fuzz/corpus/$target" -max_total_time="$seconds"
       -rss_limit_mb=2048 -max_len=1048576 -timeout=20 -print_final_stats=1
       -artifact_prefix="fuzz/artifacts/$target/")
  # The layer unpacker runs as nobody: as root it would chown and mknod, which is what a
  # fuzzer should not do on a host (and what an escape would need).
  if [ "$target" = layer_tar ] && [ "$(id -u)" = 0 ]; then
    chmod 0777 "$scratch" "fuzz/artifacts/$target"
    run=(setpriv --reuid=65534 --regid=65534 --clear-groups -- "${run[@]}")
  fi
  echo "fuzz: $target for ${seconds}s"
  if "${run[@]}" 2>"$scratch.log"; then
    grep -E '^stat::(number_of_executed_units|new_units_added)' "$scratch.log" | sed "s/^/  $target /"
    echo "fuzz $target ... ok"
  else
    status=1
    tail -n 40 "$scratch.log"
    echo "fuzz $target ... FAILED (input in fuzz/artifacts/$target/)"
  fi
  rm -rf "$scratch" "$scratch.log"
done
exit "$status"
