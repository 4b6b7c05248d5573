#!/usr/bin/env bash
# Every test: unit, integration (multi-process, C ABI under sanitizers),
# doc tests, benches in test mode, and a demo run whose totals must be exact.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-targets
cargo test --doc
cargo run --release -- demo --duration 3 --interval 1 --workers 3 --rate 30000
