#!/usr/bin/env bash
# The DB adapters' overhead measured by interleaving: raw and traced calls alternate in one
# loop and are timed one by one, so the machine's drifts (±15% on this 2-core VM) hit both
# alike; the paired differences give the overhead with a 95% confidence interval.
# Needs PostgreSQL at 127.0.0.1:5432 (database test). Usage: benches/interleaved.sh [pairs]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
cargo build --release -q -p osprofiler-benches --example overhead
for adapter in postgres sqlx-pg sqlx-sqlite diesel-pg diesel-sqlite sea-orm-pg sea-orm-sqlite; do
  for query in select_1 select_100; do
    for mode in ab-no_trace ab-trace_sql; do
      printf '%-15s %-11s ' "$adapter" "$query"
      target/release/examples/overhead "$adapter" "$query" "$mode" "$n"
    done
  done
done
