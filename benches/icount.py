#!/usr/bin/env python3
"""Instruction counts of the hot paths, checked against the counts recorded in benches/README.md.

Each case runs one operation in the examples' `counted_loop` under
`valgrind --tool=callgrind --toggle-collect='*counted_loop*'`: only the calls in that loop, on
the thread running it, are counted (set-up, a warm-up of the same length and the notifier's
worker thread are not), three times, keeping the smallest count. Counts divided by the
iterations are repeatable to a fraction of a percent where times on a shared VM move by ±30%,
so a 5% regression shows.

Usage (from anywhere in the repository; needs valgrind, and PostgreSQL at 127.0.0.1:5432 for
the `diesel-pg` and `postgres` cases, as scripts/test starts it):

    benches/icount.py            # measure, compare with the recorded counts, fail on > +5%
    benches/icount.py --record   # measure and write the counts into benches/README.md
    benches/icount.py --only db_point   # the cases whose name contains a text

A count more than 5% below the recorded one passes, with a note to record the new count (so the
next regression is measured from there).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "benches", "README.md")
BEGIN = "<!-- icount:begin (benches/icount.py --record writes this table) -->"
END = "<!-- icount:end -->"
TOLERANCE = 0.05
# Measured and shown, not gated: sqlx's SQLite connection answers from its own worker thread,
# and how often the caller's runtime polls before the answer is there differs between whole
# runs of the same code (17k or 23k instructions a query, bimodal, more often the higher one
# when the machine is busy).
UNGATED = {f"adapter/sqlx-sqlite/{m}" for m in ("raw", "in_trace", "trace_sql")}
EXAMPLES = ["icount", "overhead", "http_overhead", "tracing_overhead"]


def cases():
    """(name, example, args, iterations, calls per iteration, what it is)"""
    out = []
    core = {
        "point_no_trace": "a point, no trace active",
        "point_disabled": "a point, profiling disabled",
        "point_enabled": "an enabled point: `start` + `stop` into the queue",
        "point_enabled_guard": "an enabled point: `Trace` guard",
        "point_enabled_noop": "an enabled point, no-op notifier (no queue)",
        "plain_fn": "plain fn call (the macro's baseline)",
        "trace_fn_no_trace": "`#[trace]` fn call, no trace",
        "trace_fn_traced": "`#[trace]` fn call, traced",
        "db_point_static": "`db` point, static SQL, no `trace_sql`",
        "db_point_static_trace_sql": "`db` point, static SQL, `trace_sql`",
        "db_point_copied": "`db` point, copied SQL, no `trace_sql`",
        "db_point_copied_trace_sql": "`db` point, copied SQL, `trace_sql`",
        "pack": "`signed_pack`",
        "trace_headers": "`trace_headers()` (cached key)",
        "verify_2_keys": "verify, 2 keys as strings, 2nd matches",
        "verify_2_keys_prepared": "verify, 2 prepared keys (`HmacKeys`), 2nd matches",
    }
    for name, what in core.items():
        out.append((f"core/{name}", "icount", [name], 2000, 1, what))
    # Not sqlx-pg: its pool's polls make whole processes differ by 8-17% (bimodal, with the
    # same code); the sqlx adapter's code is counted on SQLite.
    for adapter in ["diesel-sqlite", "sqlx-sqlite", "postgres", "diesel-pg"]:
        for mode, what in [("raw", "raw library"), ("in_trace", "traced, in a trace"),
                           ("trace_sql", "traced with `trace_sql`")]:
            out.append((f"adapter/{adapter}/{mode}", "overhead", [adapter, "select_1", mode],
                        1000, 1, f"{adapter} `SELECT 1`, {what}"))
    for mode, what in [("raw-plain-loop", "the bare service, request without headers"),
                       ("raw-loop", "the bare service, signed request"),
                       ("server-untraced-loop", "server layer, request without headers"),
                       ("server-traced-loop", "server layer, signed request (verify + `wsgi` point)"),
                       ("client-loop", "client layer in a trace (`http` point + signed headers)")]:
        out.append((f"http/{mode.removesuffix('-loop')}", "http_overhead", [mode], 500, 1, what))
    for mode, what in [("count-in_trace-raw", "`#[trace]` call in a trace (registry dispatch)"),
                       ("count-in_trace-traced", "`tracing` span in a trace, osprofiler layer"),
                       ("count-no_trace-raw", "`tracing` span, `Registry` with no layer"),
                       ("count-no_trace-identity", "`tracing` span, `Registry` + a no-op layer"),
                       ("count-no_trace-traced", "`tracing` span, osprofiler layer, no trace")]:
        # Blocks of 100 calls each.
        out.append((f"tracing/{mode.removeprefix('count-')}", "tracing_overhead", [mode], 30,
                    100, what))
    return out


def build():
    cmd = ["cargo", "build", "--release", "-q", "-p", "osprofiler-benches"]
    for e in EXAMPLES:
        cmd += ["--example", e]
    subprocess.run(cmd, cwd=ROOT, check=True)


def target_dir():
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout
    return re.search(r'"target_directory":"([^"]+)"', meta).group(1)


def measure(binary, args, iterations, per_iteration, runs=3):
    """The smallest count of `runs` runs: the async cases (sqlx's pool, a runtime's polls)
    sometimes take an extra round of polls, which only ever adds instructions."""
    return min(measure_once(binary, args, iterations, per_iteration) for _ in range(runs))


def measure_once(binary, args, iterations, per_iteration):
    with tempfile.NamedTemporaryFile(prefix="callgrind.", delete=True) as out:
        p = subprocess.run(
            ["valgrind", "--tool=callgrind", "--toggle-collect=*counted_loop*",
             f"--callgrind-out-file={out.name}", binary, *args, str(iterations)],
            capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"icount: {os.path.basename(binary)} {' '.join(args)} failed "
                 f"(exit {p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}")
    m = re.search(r"Collected\s*:\s*(\d+)", p.stderr)
    if not m:
        sys.exit(f"icount: no callgrind summary for {' '.join(args)}:\n{p.stderr[-3000:]}")
    return int(m.group(1)) / (iterations * per_iteration)


def recorded():
    text = open(README).read()
    if BEGIN not in text:
        return {}
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    counts = {}
    for line in table.splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|[^|]*\|\s*([\d,]+)\s*\|", line)
        if m:
            counts[m.group(1)] = int(m.group(2).replace(",", ""))
    return counts


def record(results):
    rows = ["| case | what | instructions per call |", "|---|---|---:|"]
    rows += [f"| `{name}` | {what} | {round(count):,} |" for name, what, count in results]
    block = BEGIN + "\n" + "\n".join(rows) + "\n" + END
    text = open(README).read()
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        sys.exit(f"icount: {README} has no `{BEGIN}` marker to write the table under")
    open(README, "w").write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--record", action="store_true", help="write the counts into benches/README.md")
    ap.add_argument("--only", default="", help="only the cases whose name contains this text")
    ap.add_argument("--no-build", action="store_true", help="use the examples as built")
    a = ap.parse_args()
    if subprocess.run(["valgrind", "--version"], capture_output=True).returncode != 0:
        sys.exit("icount: valgrind is not installed (apt-get install valgrind)")
    if not a.no_build:
        build()
    bins = os.path.join(target_dir(), "release", "examples")
    before = recorded()
    if not before and not a.record:
        sys.exit(f"icount: no recorded counts in {README}; run benches/icount.py --record")
    results, failed, lower = [], [], []
    print(f"{'case':<40}{'recorded':>12}{'now':>12}{'change':>9}")
    for name, example, args, n, per, what in cases():
        if a.only not in name:
            continue
        count = measure(os.path.join(bins, example), args, n, per)
        results.append((name, what, count))
        old = before.get(name)
        change = f"{(count - old) / old:+.1%}" if old else "new"
        note = "  (not gated)" if name in UNGATED else ""
        print(f"{name:<40}{(f'{old:,}' if old else '-'):>12}{round(count):>12,}{change:>9}{note}",
              flush=True)
        if name in UNGATED:
            continue
        if old and count > old * (1 + TOLERANCE):
            failed.append(f"{name}: {old:,} -> {round(count):,} ({change})")
        elif old and count < old * (1 - TOLERANCE):
            lower.append(name)
        elif not old and not a.record:
            failed.append(f"{name}: no recorded count (run benches/icount.py --record)")
    if a.record:
        if a.only:
            kept = {n: (n, w, c) for n, w, c in results}
            merged = []
            for name, _e, _a, _n, _p, what in cases():
                if name in kept:
                    merged.append(kept[name])
                elif name in before:
                    merged.append((name, what, before[name]))
            results = merged
        record(results)
        print(f"icount: recorded {len(results)} counts in benches/README.md")
        return
    if lower:
        print(f"icount: {len(lower)} case(s) more than 5% below the recorded count "
              f"({', '.join(lower)}): run benches/icount.py --record to measure from there")
    if failed:
        print("icount: instruction counts grew by more than 5% over benches/README.md:\n  "
              + "\n  ".join(failed), file=sys.stderr)
        sys.exit(1)
    print(f"icount: {len(results)} cases within +5% of the recorded counts")


if __name__ == "__main__":
    main()
