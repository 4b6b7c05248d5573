#!/usr/bin/env bash
# Writes the pkg-config files of the C library, without building it:
#   scripts/gen-pc.sh [PREFIX [OUT_DIR]]
# PREFIX is where the library will be installed (default /usr/local);
# OUT_DIR defaults to $CARGO_TARGET_DIR/release (target/release/).
#
# Two files, because pkg-config cannot choose between a .so and a .a of the
# same name (`--static` only adds Libs.private; the linker still takes the
# .so):
#   nodestats.pc         the shared library (-lnodestats)
#   nodestats-static.pc  the static library, by path, with the system
#                        libraries it needs
# scripts/install.sh runs this and installs both.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${1:-/usr/local}
out_dir=${2:-${CARGO_TARGET_DIR:-target}/release}
mkdir -p "$out_dir"

field() { sed -n "/^\[package\]/,/^\[/s/^$1 *= *\"\([^\"]*\)\".*/\1/p" Cargo.toml | head -n1; }
version=$(field version)
description=$(field description)

# The system libraries a Rust static library needs are the standard
# library's; rustc names them only when it links a static library, so link
# an empty one (milliseconds; nodestats itself is not rebuilt). E.g.
# "-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"; -lc is implied by every C
# compiler driver. tests/ffi.rs links a program with exactly these.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
: > "$scratch/empty.rs"
native=$(rustc --crate-type staticlib --crate-name empty --print native-static-libs \
           -o "$scratch/libempty.a" "$scratch/empty.rs" 2>&1 |
         sed -n 's/.*native-static-libs: //p' | tail -n1)
if [ -z "$native" ]; then
  echo "could not get native-static-libs from rustc" >&2
  exit 1
fi
native=$(printf '%s\n' $native | grep -vx -- '-lc' | tr '\n' ' ' | sed 's/ $//')

header() {
  cat <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

PC
}

{
  header
  cat <<PC
Name: nodestats
Description: $description
Version: $version
Libs: -L\${libdir} -lnodestats
Libs.private: $native
Cflags: -I\${includedir}
PC
} > "$out_dir/nodestats.pc"

{
  header
  cat <<PC
Name: nodestats-static
Description: $description (static library)
Version: $version
Libs: \${libdir}/libnodestats.a $native
Cflags: -I\${includedir}
PC
} > "$out_dir/nodestats-static.pc"

echo "wrote $out_dir/nodestats.pc and nodestats-static.pc (prefix $prefix)"
