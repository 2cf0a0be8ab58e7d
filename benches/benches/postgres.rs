//! tokio-postgres: raw client vs traced client with no trace vs in a trace vs with trace_sql,
//! on PostgreSQL over loopback (127.0.0.1:5432, user postgres, database test).
//! Run: `cargo bench -p osprofiler-benches --bench postgres`.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use osprofiler_core as osp;
use osprofiler_core::db::{DbEvent, DbTracer, Sql, SqlText};
use osprofiler_postgres::Traced;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let n = osprofiler_benches::install_discard();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test",
            tokio_postgres::NoTls,
        )
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required");
        tokio::spawn(conn);
        client
    });
    let traced = Traced::new(&client)
        .database("test")
        .server("127.0.0.1:5432");
    let one = rt.block_on(client.prepare("SELECT 1")).unwrap();
    let hundred = rt
        .block_on(client.prepare("SELECT g, 'row ' || g FROM generate_series(1, 100) g"))
        .unwrap();

    let tracer = DbTracer::new("postgresql");
    let mut g = c.benchmark_group("wrapper");
    g.bench_function("db_point_no_trace", |b| {
        let source = |_: bool| Some(Sql::new(SqlText::Static("SELECT 1"), 0));
        b.iter(|| drop(tracer.start(black_box(DbEvent::Query(&source)))))
    });
    g.finish();

    for (name, stmt) in [("select_1", &one), ("select_100_rows", &hundred)] {
        let mut g = c.benchmark_group(format!("postgres_{name}"));
        g.bench_function("raw", |b| {
            b.iter(|| rt.block_on(client.query(stmt, &[])).unwrap())
        });
        osp::clean();
        g.bench_function("traced_no_trace", |b| {
            b.iter(|| rt.block_on(traced.query(stmt, &[])).unwrap())
        });
        let _p = osp::init("k", None, None).unwrap();
        g.bench_function("traced_in_trace", |b| {
            b.iter(|| rt.block_on(traced.query(stmt, &[])).unwrap())
        });
        let text = if name == "select_1" {
            "SELECT 1"
        } else {
            "SELECT g, 'row ' || g FROM generate_series(1, 100) g"
        };
        let ts = rt.block_on(traced.prepare(text)).unwrap();
        osp::set_trace_sql(true);
        g.bench_function("traced_trace_sql", |b| {
            b.iter(|| rt.block_on(traced.query(&ts, &[])).unwrap())
        });
        osp::set_trace_sql(false);
        osp::clean();
        g.finish();
    }
    osprofiler_benches::assert_delivered_all(&n);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
