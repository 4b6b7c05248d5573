#!/usr/bin/env bash
# Installs the C library built by
#   cargo build --release --lib --no-default-features
# into PREFIX, without building anything:
#   scripts/install.sh [--from DIR] [--keep-debug] PREFIX
#
#   PREFIX/include/nodestats.h
#   PREFIX/lib/libnodestats.so.VERSION      the shared library, with its
#   PREFIX/lib/libnodestats.so.SONAME       SONAME link (libnodestats.so.0.1)
#   PREFIX/lib/libnodestats.so              and the link `-lnodestats` finds
#   PREFIX/lib/libnodestats.a               the static library, see below
#   PREFIX/lib/pkgconfig/nodestats.pc       shared linking
#   PREFIX/lib/pkgconfig/nodestats-static.pc  static linking
#
# The static library cargo writes exports every Rust-internal symbol of
# nodestats and the standard library (about 3000) from any shared object
# it is linked into, and carries the standard library's debug info and
# LLVM bitcode (27 MB). The installed one is a single object linked from it
# (`ld -r`) in which only the `nodestats_*` symbols stay global, without
# debug info or bitcode (about 8 MB): a plugin that links it exports only
# its own symbols and the C API.
#
# --from DIR    where cargo put the library (default $CARGO_TARGET_DIR/release,
#               i.e. target/release; target/release-debug after
#               `cargo build --profile release-debug --lib --no-default-features`)
# --keep-debug  keep the debug info in the static library (with
#               release-debug: full debug info)
# DESTDIR       is prepended to every installed path (for packaging); the
#               pkg-config files name PREFIX.
set -euo pipefail
cd "$(dirname "$0")/.."

from=${CARGO_TARGET_DIR:-target}/release
keep_debug=
while [ $# -gt 0 ]; do
  case $1 in
    --from) from=$2; shift 2 ;;
    --keep-debug) keep_debug=1; shift ;;
    -*) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ]; then
  echo "usage: scripts/install.sh [--from DIR] [--keep-debug] PREFIX" >&2
  exit 2
fi
prefix=$(realpath -m "$1")
dest=${DESTDIR:-}$prefix

for f in libnodestats.a libnodestats.so; do
  if [ ! -f "$from/$f" ]; then
    echo "install.sh: no $from/$f; build it first:" >&2
    echo "  cargo build --release --lib --no-default-features" >&2
    exit 1
  fi
done

version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)
# build.rs names it; empty where the platform has no SONAME.
soname=$(objdump -p "$from/libnodestats.so" | sed -n 's/^ *SONAME *//p')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The static library: one relocatable object, only the C API global.
strip=(--remove-section=.llvmbc --remove-section=.llvmcmd)
[ -n "$keep_debug" ] || strip+=(--strip-debug)
"${LD:-ld}" -r --whole-archive "$from/libnodestats.a" -o "$work/all.o"
"${OBJCOPY:-objcopy}" "${strip[@]}" --wildcard --keep-global-symbol='nodestats_*' \
  "$work/all.o" "$work/nodestats.o"
"${AR:-ar}" rcs "$work/libnodestats.a" "$work/nodestats.o"

scripts/gen-pc.sh "$prefix" "$work" >/dev/null

install -Dm644 include/nodestats.h "$dest/include/nodestats.h"
install -Dm644 "$work/libnodestats.a" "$dest/lib/libnodestats.a"
if [ -n "$soname" ]; then
  install -Dm755 "$from/libnodestats.so" "$dest/lib/libnodestats.so.$version"
  ln -sfn "libnodestats.so.$version" "$dest/lib/$soname"
  ln -sfn "$soname" "$dest/lib/libnodestats.so"
else
  install -Dm755 "$from/libnodestats.so" "$dest/lib/libnodestats.so"
fi
install -Dm644 "$work/nodestats.pc" "$dest/lib/pkgconfig/nodestats.pc"
install -Dm644 "$work/nodestats-static.pc" "$dest/lib/pkgconfig/nodestats-static.pc"
echo "installed nodestats $version into $dest (pkg-config: nodestats, nodestats-static)"
