//! Core hot-path costs: what a hook costs when off, an emitted point, `#[trace]`, header
//! packing and verification. Run: `cargo bench -p osprofiler-benches --bench core`.
#![allow(missing_docs)] // criterion_group! generates undocumented items
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use osprofiler_core::db::{DbEvent, DbTracer, Sql, SqlText};
use osprofiler_core::headers::{TraceData, signed_pack, signed_unpack};

use osprofiler_benches::{plain_fn, traced_fn};
use osprofiler_core::{self as osp, Trace, notifier};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let n = osprofiler_benches::install_discard();

    let mut g = c.benchmark_group("point");
    osp::clean();
    g.bench_function("is_active_check", |b| {
        b.iter(|| black_box(osp::is_active()))
    });
    g.bench_function("no_trace", |b| {
        b.iter(|| {
            drop(Trace::new(
                black_box("db"),
                || osp::info!({"statement": "SELECT 1"}),
            ))
        })
    });
    osp::init("SECRET_KEY", None, None).unwrap();
    osp::set_enabled(false);
    g.bench_function("disabled", |b| {
        b.iter(|| {
            drop(Trace::new(
                black_box("db"),
                || osp::info!({"statement": "SELECT 1"}),
            ))
        })
    });
    osp::set_enabled(true);
    g.bench_function("enabled_start_stop", |b| {
        b.iter(|| {
            osp::start(black_box("db"), osp::Info::new);
            osp::stop(osp::Info::new);
        })
    });
    g.bench_function("enabled_guard", |b| {
        b.iter(|| drop(Trace::new(black_box("db"), osp::Info::new)))
    });
    // The same with a notifier that discards at once: the cost of the point without the queue.
    osp::clean();
    notifier::set(std::sync::Arc::new(notifier::NoopNotifier));
    osp::init("SECRET_KEY", None, None).unwrap();
    g.bench_function("enabled_noop_notifier", |b| {
        b.iter(|| {
            osp::start(black_box("db"), osp::Info::new);
            osp::stop(osp::Info::new);
        })
    });
    osp::clean();
    notifier::set(n.clone());
    osp::init("SECRET_KEY", None, None).unwrap();
    g.finish();

    // A `db` point in a trace, as an adapter opens and stops it: a static text (tokio-postgres
    // shares its text alike) and a copied one (sqlx, sea-orm), `trace_sql` off and on. The
    // request thread only: the no-op notifier drops the messages unread (the worker writes
    // the info, fingerprint included; see the `fingerprint` group of `benches/sql.rs`).
    osp::clean();
    notifier::set(std::sync::Arc::new(notifier::NoopNotifier));
    osp::init("SECRET_KEY", None, None).unwrap();
    let mut g = c.benchmark_group("db_point");
    let tracer = DbTracer::new("postgresql").database("test");
    let stat = |_: bool| Some(Sql::new(SqlText::Static("SELECT 1"), 0));
    let sql = String::from("SELECT id, name FROM users WHERE id = $1");
    let owned = |_: bool| Some(Sql::new(sql.as_str().into(), 1));
    for on in [false, true] {
        osp::set_trace_sql(on);
        let mode = if on { "trace_sql" } else { "no_trace_sql" };
        g.bench_function(format!("static_{mode}"), |b| {
            b.iter(|| tracer.start(black_box(DbEvent::Query(&stat))).ok(1))
        });
        g.bench_function(format!("copied_{mode}"), |b| {
            b.iter(|| tracer.start(black_box(DbEvent::Query(&owned))).ok(1))
        });
    }
    osp::set_trace_sql(false);
    g.finish();
    osp::clean();
    notifier::set(n.clone());
    osp::init("SECRET_KEY", None, None).unwrap();

    let mut g = c.benchmark_group("macro");
    g.bench_function("plain_fn_baseline", |b| {
        b.iter(|| plain_fn(black_box(1), black_box("abc")))
    });
    g.bench_function("trace_fn_traced", |b| {
        b.iter(|| traced_fn(black_box(1), black_box("abc")))
    });
    osp::clean();
    g.bench_function("trace_fn_no_trace", |b| {
        b.iter(|| traced_fn(black_box(1), black_box("abc")))
    });
    g.finish();

    let mut g = c.benchmark_group("headers");
    let data = TraceData {
        base_id: "11111111-1111-4111-8111-111111111111".into(),
        parent_id: Some("22222222-2222-4222-8222-222222222222".into()),
    };
    g.bench_function("pack", |b| {
        b.iter(|| signed_pack(black_box(&data), black_box("SECRET_KEY")))
    });
    let p = osp::init(
        "SECRET_KEY",
        Some(&data.base_id),
        Some("22222222-2222-4222-8222-222222222222"),
    )
    .unwrap();
    let _point = Trace::new("http", osp::Info::new);
    g.bench_function("trace_headers", |b| b.iter(osp::trace_headers));
    drop(_point);
    drop(p);
    osp::clean();
    let h = signed_pack(&data, "old-key");
    let keys = ["new-key", "old-key"];
    g.bench_function("verify_2_keys", |b| {
        b.iter(|| {
            signed_unpack(
                black_box(&h.x_trace_info),
                black_box(&h.x_trace_hmac),
                &keys,
            )
        })
    });
    let prepared = osp::headers::HmacKeys::new(keys);
    // The common case once a rotation is done: callers sign with the first (new) key.
    let h_new = signed_pack(&data, "new-key");
    g.bench_function("verify_2_prepared_keys_first_matches", |b| {
        b.iter(|| {
            prepared.verify(
                black_box(&h_new.x_trace_info),
                black_box(&h_new.x_trace_hmac),
            )
        })
    });
    g.bench_function("verify_2_keys_prepared", |b| {
        b.iter(|| prepared.verify(black_box(&h.x_trace_info), black_box(&h.x_trace_hmac)))
    });
    g.finish();

    osprofiler_benches::assert_delivered_all(&n);
    let stats = osp::notifier::Notifier::stats(&*n);
    eprintln!("notifier after benches: {stats:?}");
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
