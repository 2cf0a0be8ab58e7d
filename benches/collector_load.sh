#!/usr/bin/env bash
# The "Collectors under sustained load" table of benches/README.md: for each collector,
# benches/examples/collector_load.rs (Rust, as fast as one thread emits) and
# benches/python_collectors.py --seconds (Python OSProfiler 4.4.0) alternated ROUNDS times on
# the same server, then Rust at a steady --rate (the mean of its stored rates) to show that
# rate held with no drop. Prints the load average before each run.
#
# Needs the release example built (cargo build --release -p osprofiler-benches --example
# collector_load), the local services, and stores of the run's own (see collector_load.rs):
#   psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE bench_load' -c 'CREATE DATABASE bench_load_py'
#   rabbitmqctl add_vhost bench_load; rabbitmqctl set_permissions -p bench_load guest '.*' '.*' '.*'
# Python's PostgreSQL driver needs psycopg2 on PYTHONPATH (pip install --target DIR psycopg2-binary).
#
# Usage: benches/collector_load.sh [collector ...]   (sqlite postgresql redis mongodb
#        elasticsearch messaging; default all). SECS (10) and ROUNDS (2) from the environment.
set -u
cd "$(dirname "$0")/.."
B=${CARGO_TARGET_DIR:-target}/release/examples/collector_load
PY=${OSPROFILER_PYTHON:-.venv-osp/bin/python}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-2}

urls() {
  case $1 in
    sqlite) echo "sqlite:///tmp/bench_load.db sqlite:////tmp/bench_load_py.db" ;;
    postgresql) echo "postgresql://postgres@127.0.0.1:5432/bench_load postgresql://postgres@127.0.0.1:5432/bench_load_py" ;;
    redis) echo "redis://127.0.0.1:6379/11 redis://127.0.0.1:6379/11" ;;
    mongodb) echo "mongodb://127.0.0.1:27017 mongodb://127.0.0.1:27017" ;;
    elasticsearch) echo "elasticsearch://127.0.0.1:9200?index=bench-load elasticsearch://127.0.0.1:9200" ;;
    messaging) echo "messaging://guest:guest@127.0.0.1:5672/bench_load messaging://guest:guest@127.0.0.1:5672/bench_load" ;;
  esac
}

load() { echo "# load average $(cut -d' ' -f1-3 /proc/loadavg)"; }

for c in "${@:-sqlite postgresql redis mongodb elasticsearch messaging}"; do
  for name in $c; do
    read -r rust py <<<"$(urls "$name")"
    rates=()
    for _ in $(seq "$ROUNDS"); do
      load
      out=$("$B" "$rust" "$SECS")
      echo "$out" | grep -v '^RESULT'
      echo "$out" | grep '^RESULT'
      rates+=("$(echo "$out" | sed -n 's/^RESULT.* stored_pps=\([0-9]*\).*/\1/p')")
      load
      rm -f /tmp/bench_load_py.db
      "$PY" benches/python_collectors.py "$py" --seconds "$SECS"
      rm -f /tmp/bench_load_py.db
    done
    # The mean stored rate, two significant digits, offered steadily.
    rate=$(printf '%s\n' "${rates[@]}" | awk '{s += $1} END {r = s / NR; m = 10 ^ (length(int(r)) - 2); print int(r / m) * m}')
    load
    "$B" "$rust" "$SECS" --rate "$rate"
  done
done
