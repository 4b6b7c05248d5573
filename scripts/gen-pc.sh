#!/usr/bin/env bash
# Writes a pkg-config file for the C library: scripts/gen-pc.sh [PREFIX]
# (default /usr/local) → $CARGO_TARGET_DIR/release/nodestats.pc (default
# target/release/). Libs.private lists the system libraries the static
# library needs, as rustc reports them (--print native-static-libs).
#
# Install, e.g.:
#   cargo build --release --lib --no-default-features
#   scripts/gen-pc.sh /usr/local
#   install -Dm644 target/release/libnodestats.a  /usr/local/lib/libnodestats.a
#   install -Dm755 target/release/libnodestats.so /usr/local/lib/libnodestats.so
#   install -Dm644 include/nodestats.h            /usr/local/include/nodestats.h
#   install -Dm644 target/release/nodestats.pc    /usr/local/lib/pkgconfig/nodestats.pc
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${1:-/usr/local}
out_dir=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$out_dir"

field() { sed -n "/^\[package\]/,/^\[/s/^$1 *= *\"\([^\"]*\)\".*/\1/p" Cargo.toml | head -n1; }
version=$(field version)
description=$(field description)

# rustc prints e.g. "note: native-static-libs: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc";
# -lc is implied by every C compiler driver.
native=$(cargo rustc --quiet --release --lib --no-default-features --crate-type staticlib \
           -- --print native-static-libs 2>&1 |
         sed -n 's/.*native-static-libs: //p' | tail -n1)
if [ -z "$native" ]; then
  echo "could not get native-static-libs from rustc" >&2
  exit 1
fi
libs_private=$(printf '%s\n' $native | grep -vx -- '-lc' | tr '\n' ' ' | sed 's/ $//')

cat > "$out_dir/nodestats.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: nodestats
Description: $description
Version: $version
Libs: -L\${libdir} -lnodestats
Libs.private: $libs_private
Cflags: -I\${includedir}
PC
echo "wrote $out_dir/nodestats.pc (prefix $prefix)"
