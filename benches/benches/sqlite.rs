//! The DB adapters on SQLite in memory (no network, so differences are the wrappers' own):
//! raw vs traced with no trace vs traced in a trace vs traced with trace_sql, for `SELECT 1`
//! and a 100-row select. Run: `cargo bench -p osprofiler-benches --bench sqlite`.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, criterion_group, criterion_main};
use diesel::prelude::*;
use osprofiler_core as osp;
use sea_orm::ConnectionTrait;
use std::time::Duration;

const HUNDRED: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT x FROM c";

/// Runs `f` four ways: raw, traced with no trace, in a trace, in a trace with trace_sql.
fn four_ways(c: &mut Criterion, group: &str, mut raw: impl FnMut(), mut traced: impl FnMut()) {
    let mut g = c.benchmark_group(group);
    osp::clean();
    g.bench_function("raw", |b| b.iter(&mut raw));
    g.bench_function("traced_no_trace", |b| b.iter(&mut traced));
    osp::init("k", None, None).unwrap();
    g.bench_function("traced_in_trace", |b| b.iter(&mut traced));
    osp::set_trace_sql(true);
    g.bench_function("traced_trace_sql", |b| b.iter(&mut traced));
    osp::set_trace_sql(false);
    osp::clean();
    g.finish();
}

fn bench(c: &mut Criterion) {
    let n = osprofiler_benches::install_discard();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // sqlx
    let pool = rt
        .block_on(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect("sqlite::memory:"),
        )
        .unwrap();
    let traced = osprofiler_sqlx::Traced::new(pool.clone());
    for (name, sql) in [
        ("sqlx_select_1", "SELECT 1"),
        ("sqlx_select_100_rows", HUNDRED),
    ] {
        four_ways(
            c,
            name,
            || drop(rt.block_on(sqlx::query(sql).fetch_all(&pool)).unwrap()),
            || drop(rt.block_on(sqlx::query(sql).fetch_all(&traced)).unwrap()),
        );
    }

    // diesel
    #[derive(QueryableByName)]
    struct X {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        #[allow(dead_code)]
        x: i32,
    }
    let mut raw_conn = SqliteConnection::establish(":memory:").unwrap();
    let mut traced_conn = SqliteConnection::establish(":memory:").unwrap();
    osprofiler_diesel::instrument_with(&mut traced_conn, osp::db::DbTarget::new("sqlite"));
    for (name, sql) in [
        ("diesel_select_1", "SELECT 1 AS x"),
        ("diesel_select_100_rows", HUNDRED),
    ] {
        let raw = std::cell::RefCell::new(&mut raw_conn);
        let tr = std::cell::RefCell::new(&mut traced_conn);
        four_ways(
            c,
            name,
            || drop(diesel::sql_query(sql).load::<X>(*raw.borrow_mut()).unwrap()),
            || drop(diesel::sql_query(sql).load::<X>(*tr.borrow_mut()).unwrap()),
        );
    }

    // sea-orm
    let opts = sea_orm::ConnectOptions::new("sqlite::memory:")
        .max_connections(1)
        .to_owned();
    let db = rt.block_on(sea_orm::Database::connect(opts)).unwrap();
    let traced_db = osprofiler_sea_orm::Traced::new(db.clone());
    for (name, sql) in [
        ("sea_orm_select_1", "SELECT 1"),
        ("sea_orm_select_100_rows", HUNDRED),
    ] {
        let stmt = || sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, sql);
        four_ways(
            c,
            name,
            || drop(rt.block_on(db.query_all_raw(stmt())).unwrap()),
            || drop(rt.block_on(traced_db.query_all_raw(stmt())).unwrap()),
        );
    }
    osprofiler_benches::assert_delivered_all(&n);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2)).sample_size(40);
    targets = bench
}
criterion_main!(benches);
