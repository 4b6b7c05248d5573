#!/usr/bin/env bash
# Regenerates the prost types of the Prometheus protobuf exposition,
# src/prom/protobuf/{io.prometheus.client,google.protobuf}.rs, from
# proto/io/prometheus/client/metrics.proto (upstream prometheus/client_model)
# with protox and prost-build (pure Rust: no protoc). tests/proto_gen.rs,
# run by `cargo test`, fails when the checked-in files are out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
NODESTATS_GEN_PROTO=write cargo test --quiet --test proto_gen
