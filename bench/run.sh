#!/usr/bin/env bash
# Builds jirasync and the benchmark in release mode and prints the table of docs/performance.md.
# Needs the local RabbitMQ and Postgres, pgbench and wrk (installed here when missing).
# Arguments go to the benchmark:
#   bash bench/run.sh --messages 4000 --concurrency 64 --issues 200 --users 20 \
#     --big-issues 1000000 --reconcile-issues 100000 --steady-rate 200 --steady-seconds 10
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  echo "installing wrk (the HTTP load generator of the ingress row)" >&2
  apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
command -v pgbench >/dev/null || apt-get install -y postgresql-client >/dev/null
cargo build --release --locked --bin jirasync --example bench
exec target/release/examples/bench "$@"
