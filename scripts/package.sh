#!/usr/bin/env bash
# Builds the Debian package target/debian/berth_<version>_<arch>.deb with dpkg-deb from a
# staging tree: the (stripped) berth binary, berth.service and berth.socket, shell completions
# (bash, zsh, fish) and man pages generated from the CLI's own definitions, the default
# /etc/berth/daemon.json (a conffile), the copyright file, a one-entry changelog, lintian's
# overrides (packaging/lintian-overrides) and the maintainer scripts of packaging/debian. Name, version, description, dependencies and the file list come from
# `[package.metadata.deb]` in Cargo.toml; shared-library dependencies from dpkg-shlibdeps.
# Prints the package's path.
#   BERTH_DEB_VERSION=0.1.1-1 scripts/package.sh   another version (default: <the binary's>-1)
#   BERTH_EXE=path scripts/package.sh              package that binary instead of a release build
#   BERTH_DEB_COMPRESSION=gzip scripts/package.sh  dpkg-deb's -Z (default xz; the tests use gzip)
set -euo pipefail
cd "$(dirname "$0")/.."
exe=${BERTH_EXE:-}
if [ -z "$exe" ]; then
  cargo build --release -q
  exe=target/release/berth
fi
out=target/package
rm -rf "$out"
mkdir -p "$out/completions" "$out/man" "$out/debian" target/debian
# The binary as the package holds it: stripped as dh_strip does.
install -m 0755 "$exe" "$out/berth"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$out/berth"
"$out/berth" completion bash >"$out/completions/berth"
"$out/berth" completion zsh >"$out/completions/_berth"
"$out/berth" completion fish >"$out/completions/berth.fish"
"$out/berth" __man "$out/man" >/dev/null
gzip -9n "$out"/man/*
# The assets' sources name target/release/berth: the stripped copy stands for it.
cargo metadata --no-deps --format-version 1 --offline >"$out/metadata.json"
tree="$out/debian/berth"
# The package's version is the binary's (`BERTH_BUILD_VERSION` at build time, else the crate's).
built=$("$out/berth" --version | sed -n 's/^berth version \([^,]*\),.*/\1/p')
# Reproducible: every file's time (and the changelog's date) is the last commit's (or now,
# outside git); the copyright's years run from the first commit's to the last's.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
first=$(git log --reverse --format=%ct 2>/dev/null | sed -n 1p || true)
years=$(date -u -d "@${first:-$epoch}" +%Y)
last=$(date -u -d "@$epoch" +%Y)
[ "$years" = "$last" ] || years="$years-$last"
python3 - "$out" "$tree" "${BERTH_DEB_VERSION:-$built-1}" "$epoch" "$years" <<'EOF'
import glob, gzip, json, os, shutil, sys, time

out, tree, version = sys.argv[1], sys.argv[2], sys.argv[3]
epoch, years = int(sys.argv[4]), sys.argv[5]
meta = json.load(open(os.path.join(out, "metadata.json")))
pkg = next(p for p in meta["packages"] if p["name"] == "berth")
deb = pkg["metadata"]["deb"]
for src, dest, mode in deb["assets"]:
    src = src.replace("target/release/berth", os.path.join(out, "berth"))
    src = src.replace("target/package/", out + "/")
    files = sorted(glob.glob(src))
    if not files:
        sys.exit(f"package.sh: no file matches the asset {src}")
    for f in files:
        d = os.path.join(tree, dest.lstrip("/"))
        os.makedirs(d, exist_ok=True)
        target = os.path.join(d, os.path.basename(f)) if dest.endswith("/") else d
        # Hard links for the files made above (the binary is 50 MB), copies of the sources.
        if f.startswith(out + "/"):
            os.link(f, target)
        else:
            shutil.copyfile(f, target)
        os.chmod(target, int(mode, 8))
doc = os.path.join(tree, "usr/share/doc", deb["name"])
os.makedirs(doc, exist_ok=True)
# Machine-readable (DEP 5); the years are the git history's.
license_text = {
    "Apache-2.0": " On Debian systems, the full text of the Apache License, Version 2.0 can be\n"
    " found in /usr/share/common-licenses/Apache-2.0.\n",
}.get(pkg["license"], "")
with open(os.path.join(doc, "copyright"), "w") as f:
    f.write(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {deb['name']}\n\n"
        "Files: *\n"
        f"Copyright: {years} {deb['copyright']}\n"
        f"License: {pkg['license']}\n{license_text}"
    )
os.chmod(os.path.join(doc, "copyright"), 0o644)
# A one-entry Debian changelog (policy 12.7): this build, dated as the last commit.
entry = (
    f"{deb['name']} ({version}) unstable; urgency=medium\n\n"
    f"  * Package of berth {version.rsplit('-', 1)[0]}, built by scripts/package.sh.\n\n"
    f" -- {deb['maintainer']}  "
    + time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))
    + "\n"
)
with gzip.GzipFile(os.path.join(doc, "changelog.Debian.gz"), "wb", 9, mtime=epoch) as f:
    f.write(entry.encode())
os.chmod(os.path.join(doc, "changelog.Debian.gz"), 0o644)
# Lintian's overrides: one reason per tag (packaging/lintian-overrides).
overrides = os.path.join(tree, "usr/share/lintian/overrides")
os.makedirs(overrides, exist_ok=True)
shutil.copyfile("packaging/lintian-overrides", os.path.join(overrides, deb["name"]))
os.chmod(os.path.join(overrides, deb["name"]), 0o644)
control = os.path.join(tree, "DEBIAN")
os.makedirs(control, exist_ok=True)
scripts = deb["maintainer-scripts"]
for name in ("preinst", "postinst", "prerm", "postrm"):
    src = os.path.join(scripts, name)
    if os.path.exists(src):
        shutil.copyfile(src, os.path.join(control, name))
        os.chmod(os.path.join(control, name), 0o755)
conffiles = []
for root, _, names in os.walk(os.path.join(tree, "etc")):
    conffiles += ["/" + os.path.relpath(os.path.join(root, n), tree) for n in names]
if conffiles:
    with open(os.path.join(control, "conffiles"), "w") as f:
        f.write("".join(c + "\n" for c in sorted(conffiles)))
# What dpkg-gencontrol would write, but for ${shlibs:Depends}: filled in by the shell below.
extended = " ".join(deb["extended-description"].split())
words, lines, line = extended.split(" "), [], ""
for w in words:
    if line and len(line) + 1 + len(w) > 79:
        lines.append(line)
        line = w
    else:
        line = f"{line} {w}" if line else w
lines.append(line)
fields = {
    "Package": deb["name"],
    "Version": version,
    "Architecture": "@ARCH@",
    "Section": deb["section"],
    "Priority": deb["priority"],
    "Maintainer": deb["maintainer"],
    "Installed-Size": "@SIZE@",
    "Depends": deb["depends"],
    "Recommends": deb.get("recommends", ""),
    "Description": pkg["description"] + "\n" + "\n".join(" " + l for l in lines),
}
with open(os.path.join(out, "control.in"), "w") as f:
    f.write("".join(f"{k}: {v}\n" for k, v in fields.items() if v))
EOF
arch=$(dpkg --print-architecture)
# dpkg-shlibdeps reads debian/control of the directory it runs in.
printf 'Source: berth\n\nPackage: berth\nArchitecture: any\n' >"$out/debian/control"
shlibs=$(cd "$out" && dpkg-shlibdeps -O debian/berth/usr/bin/berth | sed -n 's/^shlibs:Depends=//p')
# Installed-Size: KiB, each file rounded up, as dpkg-gencontrol counts.
size=$(find "$tree" -path "$tree/DEBIAN" -prune -o -type f -printf '%s\n' | awk '{ s += int(($1 + 1023) / 1024) } END { print s }')
dirs=$(find "$tree" -path "$tree/DEBIAN" -prune -o -type d -print | wc -l)
# `$auto` in Cargo.toml's depends: the shared libraries' packages, sorted with the others.
depends=$(sed -n 's/^Depends: //p' "$out/control.in" | sed "s/\$auto/$shlibs/" | tr ',' '\n' |
  sed 's/^ *//' | sed '/^$/d' | sort -u | paste -sd, - | sed 's/,/, /g')
sed -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$((size + dirs))/" -e "s/^Depends: .*/Depends: $depends/" \
  "$out/control.in" >"$tree/DEBIAN/control"
(cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
  xargs -d '\n' md5sum >DEBIAN/md5sums)
chmod 0644 "$tree/DEBIAN/control" "$tree/DEBIAN/md5sums" "$tree"/DEBIAN/conffiles 2>/dev/null || true
find "$tree" -type d -exec chmod 0755 {} +
# Reproducible: every file's time is the last commit's (or now, outside git).
find "$tree" -exec touch -h -d "@$epoch" {} +
version=$(sed -n 's/^Version: //p' "$tree/DEBIAN/control")
deb="target/debian/berth_${version}_${arch}.deb"
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Z"${BERTH_DEB_COMPRESSION:-xz}" \
  --build "$tree" "$deb" >/dev/null
echo "$deb"
