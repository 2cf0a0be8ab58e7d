#!/usr/bin/env bash
# Runs the core criterion benches and the same operations on Python OSProfiler 4.4.0, and
# prints both side by side. Usage: benches/compare.sh  (from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_python_oracle
out=$(mktemp)
cargo bench -p osprofiler-benches --bench core -- --noplot 2>&1 | tee "$out" >&2
py=$("$OSP_PYTHON" benches/python_bench.py)
python3 - "$out" <<PY
import re, sys
text = open(sys.argv[1]).read()
unit = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6}
rust = {}
for m in re.finditer(r"^(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", text, re.M):
    rust[m.group(1)] = float(m.group(2)) * unit[m.group(3)]
py = dict((l.split()[0], float(l.split()[1])) for l in """$py""".strip().splitlines())
print(f"{'operation':<28}{'Rust (ns)':>12}{'Python (ns)':>14}{'speed-up':>10}")
for k in sorted(set(rust) | set(py)):
    r, p = rust.get(k), py.get(k)
    ratio = f"{p / r:.0f}x" if r and p else "-"
    print(f"{k:<28}{(f'{r:.2f}' if r else '-'):>12}{(f'{p:.0f}' if p else '-'):>14}{ratio:>10}")
PY
