#!/usr/bin/env bash
# Builds jirasync and the benchmark in release mode and prints the table of docs/performance.md.
# Needs the local RabbitMQ and Postgres, pgbench and wrk (installed here when missing).
# Arguments go to the benchmark:
#   bash bench/run.sh --messages 4000 --concurrency 64 --issues 200 --users 20 \
#     --big-issues 1000000 --reconcile-issues 100000 --steady-rate 200 --steady-seconds 10 \
#     --push-rate 20 --push-rate-high 200 --push-seconds 10 --push-backlog 10000 --capture-check 1 \
#     --cloud-check 1 --cloud-reconcile-issues 100000 --drain-limit 1 --sustained-seconds 30
# A 0 skips a row: --big-issues 0 row (7), --reconcile-issues 0 (8), --steady-rate 0 (9),
# --push-rate 0 / --push-rate-high 0 one rate of (10), --push-backlog 0 (11), --capture-check 0 (12),
# --cloud-check 0 (13), --cloud-reconcile-issues 0 (14), --drain-limit 0 (15), --sustained-seconds 0 (16).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  echo "installing wrk (the HTTP load generator of the ingress row)" >&2
  apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
command -v pgbench >/dev/null || apt-get install -y postgresql-client >/dev/null
cargo build --release --locked --bin jirasync --example bench
exec target/release/examples/bench "$@"
