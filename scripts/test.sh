#!/usr/bin/env bash
# Every test: unit, integration (multi-process, corrupt segments, C ABI
# under sanitizers, Prometheus end to end), doc tests, benches in test
# mode, and a demo run whose totals must be exact.
set -euo pipefail
cd "$(dirname "$0")/.."

# The end-to-end test runs a real Prometheus server and promtool.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  else
    echo "scripts/test.sh: install the Debian package 'prometheus' (needs root)" >&2
    exit 1
  fi
fi

# The node-registry tests (tests/cluster.rs) start real Redis servers.
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "scripts/test.sh: install the Debian package 'redis-server' (needs root)" >&2
    exit 1
  fi
fi

# tests/registry.rs: a Redis Cluster made with redis-cli (Debian package
# redis-tools, which redis-server pulls in), sentinels run as
# `redis-server --sentinel` (no separate package), and a private CA and
# server certificate for the TLS test made with the openssl command.
for tool in redis-cli:redis-tools openssl:openssl; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool##*:}" >/dev/null
    else
      echo "scripts/test.sh: install the Debian package '${tool##*:}' (needs root)" >&2
      exit 1
    fi
  fi
done

# tests/openmetrics.rs reads /metrics with a strict OpenMetrics parser:
# Python's prometheus_client (pip where Python allows it, else Debian's).
om_parser() { python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; }
if ! om_parser && command -v python3 >/dev/null; then
  python3 -m pip install --quiet prometheus_client >/dev/null 2>&1 || true
fi
if ! om_parser; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-prometheus-client >/dev/null
  fi
  if ! om_parser; then
    echo "scripts/test.sh: install Python's prometheus_client (pip) or python3-prometheus-client (Debian)" >&2
    exit 1
  fi
fi

# The tests that run the `nodestats` binary (package nodestats-cli) find it
# in target/debug/: build it first (cargo test builds only its test harness).
cargo build -p nodestats-cli
cargo test --all-targets --no-fail-fast
cargo test --doc
cargo run --release -- demo --duration 3 --interval 1 --workers 3 --rate 30000 --listen ""
