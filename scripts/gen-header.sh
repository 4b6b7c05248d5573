#!/usr/bin/env bash
# Regenerates include/nodestats.h from src/ffi/ with a pinned cbindgen.
#   scripts/gen-header.sh           write the header
#   scripts/gen-header.sh --verify  exit 1 if the committed header differs
# The version macros come from Cargo.toml (cbindgen.toml holds placeholders).
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.2
HEADER=include/nodestats.h

verify=false
case "${1:-}" in
  "") ;;
  --verify) verify=true ;;
  *) echo "usage: $0 [--verify]" >&2; exit 2 ;;
esac

if [ "$(cbindgen --version 2>/dev/null || true)" != "cbindgen $CBINDGEN_VERSION" ]; then
  echo "installing cbindgen $CBINDGEN_VERSION" >&2
  cargo install cbindgen --version "$CBINDGEN_VERSION" --locked --quiet
fi

version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)
if ! [[ "$version" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+) ]]; then
  echo "cannot read the package version from Cargo.toml (got '$version')" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s/@VERSION_MAJOR@/${BASH_REMATCH[1]}/" \
    -e "s/@VERSION_MINOR@/${BASH_REMATCH[2]}/" \
    -e "s/@VERSION_PATCH@/${BASH_REMATCH[3]}/" \
    -e "s/@VERSION@/${version}/" \
    cbindgen.toml > "$tmp/cbindgen.toml"

# The *Arg stand-ins are excluded on purpose (renamed to the enum types), and
# u64::MAX is written as UINT64_MAX: cbindgen warns about both.
cbindgen --quiet --config "$tmp/cbindgen.toml" --output "$tmp/nodestats.h" src/ffi/mod.rs

# One typing for C and C++: every enum type of the API is a uint32_t in
# both (cbindgen makes it a `uint32_t` enum in C++ only, so C code that
# passes or stores a plain integer would not compile as C++). The named
# constants stay in an enum `<type>_values`.
perl -0pi -e 's/enum (nodestats_\w+)\n#ifdef __cplusplus\n  : uint32_t\n#endif \/\/ __cplusplus\n \{/enum $1_values {/g;
              s/#ifndef __cplusplus\ntypedef uint32_t (nodestats_\w+);\n#endif \/\/ __cplusplus\n/typedef uint32_t $1;\n/g' \
  "$tmp/nodestats.h"

if $verify; then
  if ! diff -u "$HEADER" "$tmp/nodestats.h"; then
    echo "$HEADER is out of date: run scripts/gen-header.sh and commit it" >&2
    exit 1
  fi
  echo "$HEADER is up to date"
else
  cp "$tmp/nodestats.h" "$HEADER"
  echo "wrote $HEADER (nodestats $version, cbindgen $CBINDGEN_VERSION)"
fi
