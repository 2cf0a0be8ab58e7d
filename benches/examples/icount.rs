//! The core hot paths one at a time, for instruction counts (`benches/icount.py` runs each case
//! under `valgrind --tool=callgrind --toggle-collect='*counted_loop*'` and checks the counts
//! recorded in `benches/README.md`). The same operations as `benches/core.rs`, whose criterion
//! timings move by ±30% between runs on a shared VM; instruction counts do not.
//!
//! Usage: `icount <case> <iterations>` (`icount list` prints the cases, `icount sizes` the
//! size of a message). Outside valgrind, `ICOUNT_TIME=1` prints the time per call and
//! `ICOUNT_QUEUE=<capacity>` sets the queue's size (default 2^20), for timing experiments. Only `counted_loop`
//! is counted: set-up and a warm-up of the same length run outside it. Points go to a queue
//! whose driver discards them (or to a notifier that drops them at once: `*_noop` cases), so
//! the count is the traced thread's own work.
#![allow(missing_docs)]

use osprofiler_benches::{counted_loop, install_discard, warm_up};
use osprofiler_benches::{plain_fn, traced_fn};
use osprofiler_core::db::{DbEvent, DbTracer, Sql, SqlText};
use osprofiler_core::headers::{HmacKeys, TraceData, signed_pack, signed_unpack};
use osprofiler_core::{self as osp, Trace, notifier};
use std::hint::black_box;
use std::sync::Arc;

const CASES: &[&str] = &[
    "point_no_trace",
    "point_disabled",
    "point_enabled",
    "point_enabled_guard",
    "point_enabled_noop",
    "plain_fn",
    "trace_fn_no_trace",
    "trace_fn_traced",
    "db_point_static",
    "db_point_static_trace_sql",
    "db_point_copied",
    "db_point_copied_trace_sql",
    "pack",
    "trace_headers",
    "verify_2_keys",
    "verify_2_keys_prepared",
];

fn data() -> TraceData {
    TraceData {
        base_id: "11111111-1111-4111-8111-111111111111".into(),
        parent_id: Some("22222222-2222-4222-8222-222222222222".into()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sizes") {
        eprintln!(
            "Message {}",
            std::mem::size_of::<osprofiler_core::message::Message>()
        );
        return;
    }
    if args.first().map(String::as_str) == Some("list") {
        CASES.iter().for_each(|c| println!("{c}"));
        return;
    }
    let [case, n] = &args[..] else {
        eprintln!("usage: icount <case> <iterations> | icount list");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("iterations");
    // `ICOUNT_QUEUE=<capacity>` and `ICOUNT_TIME=1` (print ns per call over the counted
    // loop): for timing experiments outside valgrind.
    let queue = match std::env::var("ICOUNT_QUEUE") {
        Ok(c) => osprofiler_benches::install_discard_with(c.parse().expect("ICOUNT_QUEUE")),
        Err(_) => install_discard(),
    };
    let noop = || notifier::set(Arc::new(notifier::NoopNotifier));
    let sql = String::from("SELECT id, name FROM users WHERE id = $1");
    let tracer = DbTracer::new("postgresql").database("test");
    let stat = |_: bool| Some(Sql::new(SqlText::Static("SELECT 1"), 0));
    let owned = |_: bool| Some(Sql::new(sql.as_str().into(), 1));
    let d = data();
    let signed_old = signed_pack(&d, "old-key");
    let keys = ["new-key", "old-key"];
    let prepared = HmacKeys::new(keys);

    // Set-up per case: what is active, and the operation.
    let in_trace = !matches!(
        case.as_str(),
        "point_no_trace"
            | "trace_fn_no_trace"
            | "plain_fn"
            | "pack"
            | "verify_2_keys"
            | "verify_2_keys_prepared"
    );
    if case == "point_enabled_noop" || case.starts_with("db_point") {
        noop();
    }
    let _root = in_trace.then(|| {
        osp::init(
            "SECRET_KEY",
            Some(&d.base_id),
            Some("22222222-2222-4222-8222-222222222222"),
        )
        .unwrap()
    });
    if case == "point_disabled" {
        osp::set_enabled(false);
    }
    osp::set_trace_sql(case.ends_with("_trace_sql"));
    let _http = (case == "trace_headers").then(|| Trace::new("http", osp::Info::new));

    let mut op: Box<dyn FnMut() + '_> = match case.as_str() {
        "point_no_trace" | "point_disabled" => Box::new(|| {
            drop(Trace::new(
                black_box("db"),
                || osp::info!({"statement": "SELECT 1"}),
            ))
        }),
        "point_enabled" | "point_enabled_noop" => Box::new(|| {
            osp::start(black_box("db"), osp::Info::new);
            osp::stop(osp::Info::new);
        }),
        "point_enabled_guard" => Box::new(|| drop(Trace::new(black_box("db"), osp::Info::new))),
        "plain_fn" => Box::new(|| {
            black_box(plain_fn(black_box(1), black_box("abc")));
        }),
        "trace_fn_no_trace" | "trace_fn_traced" => Box::new(|| {
            black_box(traced_fn(black_box(1), black_box("abc")));
        }),
        "db_point_static" | "db_point_static_trace_sql" => {
            Box::new(|| tracer.start(black_box(DbEvent::Query(&stat))).ok(1))
        }
        "db_point_copied" | "db_point_copied_trace_sql" => {
            Box::new(|| tracer.start(black_box(DbEvent::Query(&owned))).ok(1))
        }
        "pack" => Box::new(|| {
            drop(black_box(signed_pack(
                black_box(&d),
                black_box("SECRET_KEY"),
            )))
        }),
        "trace_headers" => Box::new(|| drop(black_box(osp::trace_headers()))),
        "verify_2_keys" => Box::new(|| {
            drop(black_box(signed_unpack(
                black_box(&signed_old.x_trace_info),
                black_box(&signed_old.x_trace_hmac),
                &keys,
            )))
        }),
        "verify_2_keys_prepared" => Box::new(|| {
            drop(black_box(prepared.verify(
                black_box(&signed_old.x_trace_info),
                black_box(&signed_old.x_trace_hmac),
            )))
        }),
        other => {
            eprintln!("unknown case {other}; cases: {}", CASES.join(", "));
            std::process::exit(2);
        }
    };
    warm_up(n, &mut op);
    let t = std::time::Instant::now();
    counted_loop(n, &mut op);
    if std::env::var_os("ICOUNT_TIME").is_some() {
        println!("{case}: {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
    }
    drop(op);
    drop(_http);
    osp::set_enabled(true);
    osprofiler_benches::assert_delivered_all(&queue);
}
