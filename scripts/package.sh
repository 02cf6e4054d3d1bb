#!/usr/bin/env bash
# Builds the Debian package target/debian/berth_<version>-1_<arch>.deb: the release binary,
# berth.service and berth.socket, shell completions (bash, zsh, fish) and man pages generated
# from the CLI's own definitions, the default /etc/berth/daemon.json, and the maintainer
# scripts of packaging/debian. Prints the package's path.
#   BERTH_DEB_VERSION=0.1.1 scripts/package.sh   another version (the upgrade test)
#   BERTH_EXE=path scripts/package.sh            package that binary instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install --locked -q cargo-deb
exe=${BERTH_EXE:-}
if [ -z "$exe" ]; then
  cargo build --release -q
  exe=target/release/berth
elif [ "$(realpath "$exe")" != "$(realpath -m target/release/berth)" ]; then
  mkdir -p target/release
  install -m 0755 "$exe" target/release/berth
fi
out=target/package
rm -rf "$out"
mkdir -p "$out/completions" "$out/man"
"$exe" completion bash >"$out/completions/berth"
"$exe" completion zsh >"$out/completions/_berth"
"$exe" completion fish >"$out/completions/berth.fish"
"$exe" __man "$out/man" >/dev/null
gzip -9n "$out"/man/*
version_args=()
if [ -n "${BERTH_DEB_VERSION:-}" ]; then
  version_args=(--deb-version "$BERTH_DEB_VERSION")
fi
mkdir -p target/debian
cargo deb --no-build -q "${version_args[@]}" -o target/debian/ | tail -1
