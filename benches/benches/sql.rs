//! Sanitizing SQL text without bound values (the notifier's worker does it when it serializes a
//! `db` point): a 1 KiB statement per dialect, literals of every kind, comments with quotes.
//! Run: `cargo bench -p osprofiler-benches --bench sql`.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use osprofiler_benches::statement_1kib;
use osprofiler_core::db::fingerprint::{fingerprint, format_id, normalize};
use osprofiler_core::db::{Dialect, sanitize};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sanitize_1kib");
    for (name, dialect) in [
        ("postgres", Dialect::Postgres),
        ("mysql", Dialect::MySql),
        ("sqlite", Dialect::Sqlite),
    ] {
        let sql = statement_1kib(dialect);
        let clean = sanitize(&sql, dialect);
        assert!(
            ["login", "DEAD", "2026", "1000"]
                .iter()
                .all(|lit| !clean.contains(lit))
                && clean.contains("it's"),
            "{name}: every literal replaced, comments kept: {clean}"
        );
        g.throughput(Throughput::Bytes(sql.len() as u64));
        g.bench_function(name, |b| b.iter(|| sanitize(black_box(&sql), dialect)));
    }
    g.finish();

    // Fingerprints (the worker computes one per db point): a cache hit, what every statement
    // seen before costs, and a miss (normalizing and hashing a new statement).
    let mut g = c.benchmark_group("fingerprint");
    g.bench_function("hit_select_1", |b| {
        b.iter(|| fingerprint(black_box("SELECT 1"), Dialect::Postgres))
    });
    let short = "SELECT id, name, email FROM users WHERE id = $1 AND deleted_at IS NULL";
    g.bench_function("hit_72_bytes", |b| {
        b.iter(|| fingerprint(black_box(short), Dialect::Postgres))
    });
    g.bench_function("format_id", |b| {
        b.iter(|| format_id(black_box(0x0123_4567_89ab_cdef)))
    });
    for (name, dialect) in [
        ("postgres", Dialect::Postgres),
        ("mysql", Dialect::MySql),
        ("sqlite", Dialect::Sqlite),
    ] {
        let sql = statement_1kib(dialect);
        g.throughput(Throughput::Bytes(sql.len() as u64));
        g.bench_function(format!("hit_1kib_{name}"), |b| {
            b.iter(|| fingerprint(black_box(&sql), dialect))
        });
        g.bench_function(format!("normalize_1kib_{name}"), |b| {
            b.iter(|| normalize(black_box(&sql), dialect))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
