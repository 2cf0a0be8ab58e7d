//! tokio-postgres against a real PostgreSQL: the exact points of a select, an insert with
//! parameters, a failing statement, transactions committed and rolled back, streams read fully
//! and dropped early — with trace_sql off, on, and on with params.
mod common;
use common::*;
use futures_util::StreamExt;
use osprofiler_core as osp;
use osprofiler_testkit::*;
use serde_json::{Value, json};
use std::sync::Arc;

/// trace_sql is process-wide: these tests take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn select_and_insert_with_sql_off_on_and_with_params() {
    let _s = SERIAL.lock().await;
    collector();
    let db = traced().await;
    let t = table();
    db.inner()
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int4 PRIMARY KEY, name text)"
        ))
        .await
        .unwrap();

    for (sql, params) in [(false, false), (true, false), (true, true)] {
        osp::set_trace_sql(sql);
        osp::set_trace_sql_params(params);
        let id = i32::from(sql) + i32::from(params);
        let msgs = traced_run(async {
            db.execute(
                &format!("INSERT INTO {t} (id, name) VALUES ($1, $2)"),
                &[&id, &"secret"],
            )
            .await
            .unwrap();
            let rows = db
                .query(&format!("SELECT id, name FROM {t} ORDER BY id"), &[])
                .await
                .unwrap();
            assert_eq!(rows.len() as i32, id + 1);
        })
        .await;
        let points = db_points(&msgs);
        assert_eq!(points.len(), 2, "{msgs:#?}");
        assert_eq!((points[0].0.as_str(), &points[0].2), ("execute", &json!(1)));
        assert_eq!(
            (points[1].0.as_str(), &points[1].2),
            ("query", &json!(id + 1))
        );
        let start = &msgs.iter().find(|m| m["name"] == "db-start").unwrap()["info"]["db"];
        assert_eq!(
            (
                start["system"].as_str(),
                start["namespace"].as_str(),
                start["server"].as_str()
            ),
            (Some("postgresql"), Some("test"), Some("127.0.0.1:5432"))
        );
        if sql {
            assert_eq!(
                points[0].1.as_deref(),
                Some(format!("INSERT INTO {t} (id, name) VALUES ($1, $2)").as_str())
            );
        } else {
            assert!(
                points.iter().all(|p| p.1.is_none()),
                "no SQL unless trace_sql"
            );
        }
        let all = serde_json::to_string(&msgs).unwrap();
        assert_eq!(
            all.contains("secret"),
            params,
            "parameters only with trace_sql_params"
        );
    }
    osp::set_trace_sql(false);
    osp::set_trace_sql_params(false);
    db.inner()
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn failing_statement_records_the_error_and_returns_it_unchanged() {
    let _s = SERIAL.lock().await;
    collector();
    let db = traced().await;
    let msgs = traced_run(async {
        let err = db
            .query("SELECT * FROM no_such_table_here", &[])
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
        );
    })
    .await;
    let stop = msgs.iter().find(|m| m["name"] == "db-stop").unwrap();
    assert_eq!(stop["info"]["etype"], "tokio_postgres::error::Error");
    assert_eq!(stop["info"]["db"]["sqlstate"], "42P01");
    assert!(
        stop["info"]["db"]["original_exception"]
            .as_str()
            .unwrap()
            .contains("no_such_table_here")
    );
}

#[tokio::test]
async fn transactions_committed_and_rolled_back() {
    let _s = SERIAL.lock().await;
    collector();
    osp::set_trace_sql(true);
    let mut db = traced().await;
    let t = table();
    db.inner()
        .batch_execute(&format!("CREATE TABLE {t} (id int4)"))
        .await
        .unwrap();
    let base = osp::trace_scope(async {
        let p = osp::init("k", None, None).unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute(&format!("INSERT INTO {t} VALUES (1)"), &[])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute(&format!("INSERT INTO {t} VALUES (2)"), &[])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        p.base_id().to_string()
    })
    .await;
    osp::set_trace_sql(false);
    let points = db_points(&messages_of(&base));
    let apis: Vec<(&str, Option<&str>)> = points
        .iter()
        .map(|p| (p.0.as_str(), p.1.as_deref()))
        .collect();
    let ins1 = format!("INSERT INTO {t} VALUES (1)");
    let ins2 = format!("INSERT INTO {t} VALUES (2)");
    assert_eq!(
        apis,
        [
            ("begin", Some("BEGIN")),
            ("execute", Some(ins1.as_str())),
            ("commit", Some("COMMIT")),
            ("begin", Some("BEGIN")),
            ("execute", Some(ins2.as_str())),
            ("rollback", Some("ROLLBACK"))
        ]
    );
    let n: i64 = db
        .inner()
        .query_one(&format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    db.inner()
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn streams_stop_at_the_end_or_as_cancelled_when_dropped() {
    let _s = SERIAL.lock().await;
    collector();
    let db = traced().await;
    let msgs = traced_run(async {
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
    let _s = SERIAL.lock().await;
    collector();
    osp::set_trace_sql(true);
    let db = traced().await;
    let msgs = traced_run(async {
        db.batch_execute("SELECT 'password123', 42").await.unwrap();
        let st = db.prepare("SELECT $1::text").await.unwrap();
        db.query_one(&st, &[&"x"]).await.unwrap();
        db.query_one(&st, &[&"y"]).await.unwrap();
    })
    .await;
    osp::set_trace_sql(false);
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
    assert_eq!(points[1].0, "prepare");
    assert_eq!(points[2].1.as_deref(), Some("SELECT $1::text"));
    assert_eq!(points[3].1.as_deref(), Some("SELECT $1::text"));
}

#[tokio::test]
async fn no_trace_means_no_points() {
    let _s = SERIAL.lock().await;
    let c = collector();
    let db = traced().await;
    let before = {
        c.notifier.flush_for(std::time::Duration::from_secs(5));
        c.memory.messages().len()
    };
    db.query("SELECT 1", &[]).await.unwrap();
    db.execute("SELECT 1", &[]).await.unwrap();
    c.notifier.flush_for(std::time::Duration::from_secs(5));
    assert_eq!(c.memory.messages().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_traced_tasks_share_one_client() {
    let _s = SERIAL.lock().await;
    collector();
    let db = Arc::new(traced().await);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let db = db.clone();
        tasks.push(tokio::spawn(osp::trace_scope(async move {
            let p = osp::init("k", None, None).unwrap();
            let outer = osp::Trace::new("rpc", osp::Info::new);
            db.query_one("SELECT $1::int4 + 1", &[&i]).await.unwrap();
            db.query("SELECT pg_sleep(0.001)", &[]).await.unwrap();
            (p.base_id().to_string(), outer.id().unwrap().to_string())
        })));
    }
    for t in tasks {
        let (base, outer) = t.await.unwrap();
        let msgs = messages_of(&base);
        let starts: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-start").collect();
        assert_eq!(starts.len(), 2, "{base}");
        assert!(
            starts.iter().all(|m| m["parent_id"] == outer.as_str()),
            "{base}: db points under this task's rpc point"
        );
    }
}
