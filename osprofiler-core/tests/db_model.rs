//! The `db` point model every adapter shares: `DbTracer::run` stopping a point with rows, an
//! error or as cancelled; the SQL text policy (no text without `trace_sql`; literals replaced
//! when nothing is bound, unless kept; params only with `trace_sql_params` and binds); and a
//! DB error answering `Message::error_type` though it is lazy info.
//!
//! The fingerprint is recorded always, the normalized text with `trace_sql`, the values digest
//! where the values are seen (raw statements' literals; bound values an adapter hands over as
//! `BoundValues`), and only in a trace with a key.
//!
//! `one_model_for_every_adapter` sets the process-wide `trace_sql` switches; the other test
//! has a dispatch scope of its own.

use osprofiler_core::db::fingerprint::{fingerprint, format_id};
use osprofiler_core::db::{DbError, DbEvent, DbTracer, Dialect, Sql, SqlText};
use osprofiler_core::notifier::{DriverError, Reader, TraceSummary, Writer};
use osprofiler_core::{self as osp, message::Message};
use osprofiler_testkit::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// The `db` start info of the one point `f` opens, and its stop info (without `host`).
async fn point<F: Future<Output = ()>>(f: F) -> (Value, Value) {
    let msgs = traced_run(f).await;
    let strip = |m: &Value| {
        let mut info = m["info"].clone();
        info.as_object_mut().unwrap().remove("host");
        info
    };
    (
        one(&msgs, "db-start")["info"]["db"].clone(),
        strip(one(&msgs, "db-stop")),
    )
}

/// A driver that answers what the messages it is given say about errors.
#[derive(Default)]
struct ErrorTypes(Mutex<Vec<Option<String>>>);

impl Writer for ErrorTypes {
    fn name(&self) -> &str {
        "error-types"
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        let mut seen = self.0.lock().unwrap();
        seen.extend(batch.iter().map(|m| m.error_type().map(str::to_owned)));
        Ok(())
    }
}

impl Reader for ErrorTypes {
    fn trace_messages(&self, _: &str) -> Result<Vec<Value>, DriverError> {
        Ok(Vec::new())
    }
    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(Vec::new())
    }
    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn one_model_for_every_adapter() {
    collector();
    let tracer = DbTracer::new("postgresql").database("test");
    let bound = |with_params: bool| {
        Some(
            Sql::new(
                SqlText::Static("SELECT name FROM t WHERE pw = $1 AND n = 7"),
                1,
            )
            .params(with_params.then(|| "[\"hunter2\"]".to_owned())),
        )
    };
    let raw = |_: bool| Some(Sql::new("SELECT 'hunter2', 7".into(), 0));
    let ok = |n: usize| async move { Ok::<Vec<u8>, std::io::Error>(vec![0; n]) };

    let shape = "SELECT name FROM t WHERE pw = ? AND n = ?";
    let id = format_id(fingerprint(shape, Dialect::Postgres).id);
    let raw_id = format_id(fingerprint("SELECT 'x', 1", Dialect::Postgres).id);

    // trace_sql off: no statement, its fingerprint, rows counted; no values digest (the bound
    // values are not read).
    let (start, stop) = point(async {
        tracer
            .run(
                DbEvent::Query(&bound),
                ok(2),
                osp::db::rows::len,
                |_| unreachable!(),
            )
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        start,
        json!({"api": "query", "system": "postgresql", "namespace": "test", "fingerprint": id})
    );
    assert_eq!(stop, json!({"db": {"rows": 2}}));

    // trace_sql on: bound statements keep their text, raw ones lose their literals; params
    // need trace_sql_params and binds.
    osp::set_trace_sql(true);
    let run = |source: &'static (dyn Fn(bool) -> Option<Sql> + Sync), tracer: DbTracer| async move {
        point(async move {
            tracer
                .run(
                    DbEvent::Query(&source),
                    ok(1),
                    osp::db::rows::len,
                    |_| unreachable!(),
                )
                .await
                .unwrap();
        })
        .await
        .0
    };
    let bound: &'static (dyn Fn(bool) -> Option<Sql> + Sync) = Box::leak(Box::new(bound));
    let raw: &'static (dyn Fn(bool) -> Option<Sql> + Sync) = Box::leak(Box::new(raw));
    let raw2: &'static (dyn Fn(bool) -> Option<Sql> + Sync) = Box::leak(Box::new(|_: bool| {
        Some(Sql::new("select  'other' , 8 -- x".into(), 0))
    }));
    let start = run(bound, tracer.clone()).await;
    assert_eq!(
        (&start["fingerprint"], &start["normalized"]),
        (&json!(id), &json!(shape))
    );
    assert!(start.get("values").is_none(), "bound values not seen");
    // A raw statement's literals are its values: digested, keyed, never shown.
    let (a, b) = (
        run(raw, tracer.clone()).await,
        run(raw2, tracer.clone()).await,
    );
    assert_eq!(
        (&a["fingerprint"], &a["normalized"]),
        (&json!(raw_id), &json!("SELECT ?, ?"))
    );
    assert_eq!(a["fingerprint"], b["fingerprint"]);
    assert_eq!(a["values"].as_str().unwrap().len(), 16);
    assert_ne!(a["values"], b["values"]);
    assert_eq!(a["values"], run(raw, tracer.clone()).await["values"]);
    osp::set_trace_sql(false);
    let a_off = run(raw, tracer.clone()).await;
    assert_eq!(
        (&a_off["fingerprint"], &a_off["values"]),
        (&a["fingerprint"], &a["values"])
    );
    assert!(a_off.get("normalized").is_none() && a_off.get("statement").is_none());
    osp::set_trace_sql(true);
    assert_eq!(
        run(bound, tracer.clone()).await["statement"],
        "SELECT name FROM t WHERE pw = $1 AND n = 7"
    );
    assert_eq!(run(raw, tracer.clone()).await["statement"], "SELECT ?, ?");
    assert_eq!(
        run(raw, tracer.clone().keep_literals(true)).await["statement"],
        "SELECT 'hunter2', 7"
    );
    assert!(run(bound, tracer.clone()).await.get("params").is_none());
    osp::set_trace_sql_params(true);
    let with_params = run(bound, tracer.clone()).await;
    assert_eq!(with_params["params"], "[\"hunter2\"]");
    assert!(
        with_params.get("values").is_none(),
        "params text alone makes no digest: the adapter hands the values over"
    );
    // An adapter that hands its bound values over gets a digest whatever the switches say.
    let handed = |v: &'static str| -> &'static (dyn Fn(bool) -> Option<Sql> + Sync) {
        Box::leak(Box::new(move |_: bool| {
            Some(
                Sql::new(SqlText::Static("SELECT name FROM t WHERE pw = $1"), 1)
                    .values(Some(osp::db::BoundValues::owned(v))),
            )
        }))
    };
    let d1 = run(handed("hunter2"), tracer.clone()).await["values"].clone();
    osp::set_trace_sql_params(false);
    osp::set_trace_sql(false);
    let d1_off = run(handed("hunter2"), tracer.clone()).await["values"].clone();
    let d2_off = run(handed("hunter3"), tracer.clone()).await["values"].clone();
    osp::set_trace_sql(true);
    osp::set_trace_sql_params(true);
    assert_eq!(d1.as_str().map(str::len), Some(16));
    assert_eq!(
        d1, d1_off,
        "the same values, the same digest, trace_sql off or on"
    );
    assert_ne!(d1_off, d2_off, "other values, another digest");
    assert!(
        run(raw, tracer.clone()).await.get("params").is_none(),
        "nothing bound, nothing to show"
    );
    osp::set_trace_sql_params(false);
    osp::set_trace_sql(false);

    // An error: etype, message, the database's own text and codes.
    let (_, stop) = point(async {
        let fut = async { Err::<(), _>("relation \"nope\" does not exist") };
        let r = tracer
            .run(DbEvent::Query(&bound), fut, osp::db::rows::none, |e| {
                DbError {
                    original_exception: Some(e.to_string()),
                    sqlstate: Some("42P01".into()),
                    ..DbError::new("my::Error", format!("db error: {e}"))
                }
            })
            .await;
        assert!(r.is_err(), "the caller gets the error unchanged");
    })
    .await;
    assert_eq!(
        stop,
        json!({"etype": "my::Error", "message": "db error: relation \"nope\" does not exist",
               "db": {"original_exception": "relation \"nope\" does not exist", "sqlstate": "42P01"}})
    );

    // A future dropped before it finished.
    let (_, stop) = point(async {
        let fut = tracer.run(
            DbEvent::Query(&bound),
            std::future::pending::<Result<(), ()>>(),
            osp::db::rows::none,
            |_| unreachable!(),
        );
        let _ = tokio::time::timeout(std::time::Duration::from_millis(1), fut).await;
    })
    .await;
    assert_eq!(stop, json!({"cancelled": true}));

    // Transaction control carries its depth and no statement.
    osp::set_trace_sql(true);
    let (start, stop) = point(async {
        tracer
            .run(
                DbEvent::Rollback { depth: 2 },
                async { Ok::<(), ()>(()) },
                osp::db::rows::none,
                |_| unreachable!(),
            )
            .await
            .unwrap();
    })
    .await;
    osp::set_trace_sql(false);
    assert_eq!(
        start,
        json!({"api": "rollback_to_savepoint", "system": "postgresql", "namespace": "test", "depth": 2})
    );
    assert_eq!(stop, json!({}));

    // With no trace active nothing is read: the source is never called.
    let called = std::sync::atomic::AtomicBool::new(false);
    let spy = |_: bool| {
        called.store(true, std::sync::atomic::Ordering::Relaxed);
        None
    };
    osp::set_trace_sql(true);
    let point = tracer.start(DbEvent::Query(&spy));
    osp::set_trace_sql(false);
    assert!(!point.is_active());
    assert!(!called.load(std::sync::atomic::Ordering::Relaxed));

    // A driver asks a message whether it records an error, and the message answers, eager or
    // lazy.
    let types = Arc::new(ErrorTypes::default());
    let notifier =
        osp::notifier::QueueNotifier::start(types.clone(), osp::notifier::QueueOptions::default())
            .unwrap();
    osp::notifier::set(notifier.clone());
    let p = osp::init("k", None, None).unwrap();
    tracer
        .start(DbEvent::Query(&bound))
        .err(DbError::new("Lazy", "x".into()));
    let mut t = osp::Trace::new("rpc", osp::Info::new);
    t.error_with("Eager", "y");
    drop(t);
    osp::clean();
    drop(p);
    assert!(notifier.flush_for(std::time::Duration::from_secs(5)));
    let seen = types.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [None, Some("Lazy".into()), None, Some("Eager".into())],
        "db start, db stop, rpc start, rpc stop"
    );
}

#[test]
fn a_trace_without_a_key_has_no_values_digest_and_adapters_copy_nothing() {
    let c = Collector::new();
    let tracer = DbTracer::new("postgresql");
    let handed = std::sync::atomic::AtomicUsize::new(0);
    let source = |_: bool| {
        // What an adapter does: hand the values over only when they will be digested.
        let values = osp::db::values_recorded().then(|| {
            handed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            osp::db::BoundValues::owned(7_i64)
        });
        Some(Sql::new(SqlText::Static("SELECT a FROM t WHERE id = $1"), 1).values(values))
    };
    let raw = |_: bool| Some(Sql::new(SqlText::Static("SELECT 'x'"), 0));
    let mut infos = Vec::new();
    for key in ["", "key"] {
        let id = osp::dispatch::with_default(&c.dispatch(), || {
            let p = osp::init(key, None, None).unwrap();
            tracer.start(DbEvent::Query(&source)).ok(1);
            tracer.start(DbEvent::Query(&raw)).ok(1);
            osp::clean();
            p.base_id().to_string()
        });
        let msgs = c.messages_of(&id);
        let starts: Vec<Value> = msgs
            .iter()
            .filter(|m| m["name"] == "db-start")
            .map(|m| m["info"]["db"].clone())
            .collect();
        infos.push(starts);
    }
    let (keyless, keyed) = (&infos[0], &infos[1]);
    assert!(
        keyless.iter().all(|d| d.get("values").is_none()),
        "{keyless:?}"
    );
    assert!(
        keyless.iter().all(|d| d["fingerprint"].is_string()),
        "{keyless:?}"
    );
    assert!(keyed.iter().all(|d| d["values"].is_string()), "{keyed:?}");
    assert_eq!(
        handed.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "values handed over in the keyed trace only"
    );
    assert!(!osp::db::values_recorded(), "no trace here");
}
