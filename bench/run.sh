#!/usr/bin/env bash
# Builds jirasync and the benchmark in release mode and prints the table of issue 6.
# Needs the local RabbitMQ and Postgres (and pgbench). Arguments go to the benchmark:
#   bash bench/run.sh --messages 4000 --concurrency 64 --issues 200 --users 20
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin jirasync --example bench
exec target/release/examples/bench "$@"
