//! tokio-postgres against a real PostgreSQL, beyond the conformance suite (`conformance.rs`):
//! streams dropped early, prepared statements that remember their text, no points without a
//! trace, and concurrent tasks on one client.
mod common;
use common::*;
use futures_util::StreamExt;
use osprofiler_core::{self as osp, dispatch::DispatchFutureExt};
use osprofiler_testkit::*;
use serde_json::Value;
use std::sync::Arc;

#[tokio::test]
async fn streams_stop_at_the_end_or_as_cancelled_when_dropped() {
    let c = Collector::new();
    let db = traced().await;
    let msgs = c
        .traced_run(&c.dispatch(), async {
            let stream = db
                .query_raw("SELECT generate_series(1, 50)", std::iter::empty::<i32>())
                .await
                .unwrap();
            let rows: Vec<_> = stream.collect().await;
            assert_eq!(rows.len(), 50);
            let mut stream = Box::pin(
                db.query_raw("SELECT generate_series(1, 1000)", std::iter::empty::<i32>())
                    .await
                    .unwrap(),
            );
            stream.next().await.unwrap().unwrap();
            drop(stream);
        })
        .await;
    let stops: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-stop").collect();
    assert_eq!(stops.len(), 2);
    assert_eq!(stops[0]["info"]["db"]["rows"], 50);
    assert_eq!(stops[1]["info"]["cancelled"], true);
}

#[tokio::test]
async fn raw_sql_is_sanitized_and_prepared_statements_remember_their_text() {
    let c = Collector::new();
    let db = traced().await;
    let msgs = c
        .traced_run(&c.dispatch().trace_sql(true), async {
            db.batch_execute("SELECT 'password123', 42").await.unwrap();
            let st = db.prepare("SELECT $1::text").await.unwrap();
            db.query_one(&st, &[&"x"]).await.unwrap();
            db.query_one(&st, &[&"y"]).await.unwrap();
        })
        .await;
    let points = db_points(&msgs);
    assert_eq!(
        points[0].1.as_deref(),
        Some("SELECT ?, ?"),
        "literals sanitized"
    );
    assert!(
        !serde_json::to_string(&msgs)
            .unwrap()
            .contains("password123")
    );
    assert_eq!(
        (points[1].0.as_str(), points[1].1.as_deref()),
        ("prepare", Some("SELECT $1::text"))
    );
    assert_eq!(points[2].1.as_deref(), Some("SELECT $1::text"));
    assert_eq!(points[3].1.as_deref(), Some("SELECT $1::text"));
}

#[tokio::test]
async fn no_trace_means_no_points() {
    // A collector of this test's own: whatever it gets, this test sent.
    let c = Collector::new();
    let db = traced().await;
    async {
        db.query("SELECT 1", &[]).await.unwrap();
        db.execute("SELECT 1", &[]).await.unwrap();
    }
    .with_dispatch(c.dispatch())
    .await;
    c.flush();
    assert_eq!(c.memory.messages(), Vec::<Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_traced_tasks_share_one_client() {
    let c = Collector::new();
    let db = Arc::new(traced().await);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let db = db.clone();
        tasks.push(tokio::spawn(
            osp::trace_scope(async move {
                let p = osp::init("k", None, None).unwrap();
                let outer = osp::Trace::new("rpc", osp::Info::new);
                db.query_one("SELECT $1::int4 + 1", &[&i]).await.unwrap();
                // Still running while the other tasks send theirs: queries in flight together.
                db.query("SELECT pg_sleep(0.001)", &[]).await.unwrap();
                (p.base_id().to_string(), outer.id().unwrap().to_string())
            })
            .with_dispatch(c.dispatch()),
        ));
    }
    for t in tasks {
        let (base, outer) = t.await.unwrap();
        let msgs = c.messages_of(&base);
        let starts: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-start").collect();
        assert_eq!(starts.len(), 2, "{base}");
        assert!(
            starts.iter().all(|m| m["parent_id"] == outer.as_str()),
            "{base}: db points under this task's rpc point"
        );
    }
}
