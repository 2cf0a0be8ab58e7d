//! Analysis of one 100,000-point trace (`osprofiler trace analyze`, the HTML page's summary):
//! a request with 1,000 RPC calls, each running 99 statements of 5 shapes with varying values
//! (N+1 runs, duplicates, overlapping intervals). Goal: ≤ 200 ms.
//! Run: `cargo bench -p osprofiler-benches --bench analysis`.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use osprofiler_core::analysis::{Analysis, AnalysisOptions};
use osprofiler_core::clock::format_timestamp;
use osprofiler_core::report::Report;
use serde_json::{Value, json};
use std::time::Duration;

const T0: i64 = 1_765_000_000_000_000;

fn msg(name: &str, id: &str, parent: &str, us: i64, service: &str, info: Value) -> Value {
    json!({"name": name, "base_id": "b", "trace_id": id, "parent_id": parent,
           "timestamp": format_timestamp(T0 + us), "project": "p", "service": service,
           "info": info})
}

/// 1 + 1,000 + 99,000 points.
fn trace() -> Vec<Value> {
    let mut m = Vec::with_capacity(200_002);
    m.push(msg(
        "wsgi-start",
        "root",
        "b",
        0,
        "api",
        json!({"host": "h"}),
    ));
    let mut t = 10;
    for r in 0..1_000 {
        let rpc = format!("rpc{r}");
        m.push(msg(
            "rpc-start",
            &rpc,
            "root",
            t,
            "api",
            json!({"host": "h"}),
        ));
        for q in 0..99 {
            let shape = q % 5;
            let db = json!({"host": "h", "db": {"api": "query", "system": "postgresql",
                "statement": format!("SELECT c{shape} FROM t{shape} WHERE id = $1"),
                "params": format!("[{}]", if shape == 0 { 1 } else { q })}});
            let id = format!("db{r}-{q}");
            m.push(msg("db-start", &id, &rpc, t + 1, "worker", db));
            m.push(msg(
                "db-stop",
                &id,
                &rpc,
                t + 9,
                "worker",
                json!({"host": "h", "db": {"rows": 1}}),
            ));
            t += 7; // overlaps the next one
        }
        t += 5;
        m.push(msg(
            "rpc-stop",
            &rpc,
            "root",
            t,
            "api",
            json!({"host": "h"}),
        ));
    }
    m.push(msg(
        "wsgi-stop",
        "root",
        "b",
        t + 10,
        "api",
        json!({"host": "h"}),
    ));
    m
}

fn bench(c: &mut Criterion) {
    let report = Report::build(&trace()).into_value();
    let opts = AnalysisOptions::default();
    let a = Analysis::of(&report, &opts);
    assert_eq!(a.points, 100_001);
    assert_eq!(a.db.statements, 99_000);
    assert_eq!(a.fingerprints.len(), 5);
    assert!(!a.duplicates.is_empty() && a.critical_path.len() > 1);
    c.bench_function("analysis_100k_points", |b| {
        b.iter(|| Analysis::of(black_box(&report), &opts))
    });
    // On a busy machine wall time includes waiting for a core: say the CPU time too.
    if let Some(before) = thread_cpu_ms() {
        let n = 20;
        for _ in 0..n {
            black_box(Analysis::of(black_box(&report), &opts));
        }
        if let Some(after) = thread_cpu_ms() {
            eprintln!(
                "analysis_100k_points: {:.0} ms of CPU time per analysis (this thread's utime + stime over {n} runs)",
                (after - before) / n as f64
            );
        }
    }
}

/// This thread's user + system CPU time in milliseconds (Linux: /proc/thread-self/stat, in
/// clock ticks of 10 ms).
fn thread_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command (which may contain spaces) end with ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    Some((utime + stime) * 10.0)
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
