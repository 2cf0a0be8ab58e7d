//! diesel against real databases (SQLite in memory and in a file, PostgreSQL): the exact points
//! of a select, an insert with parameters, a failing statement, transactions committed and
//! rolled back, with trace_sql off, on, and on with params; r2d2 pools; sync calls from async
//! code through spawn_blocking_traced.
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use osprofiler_core::{self as osp, dispatch::DispatchFutureExt};
use osprofiler_testkit::*;
use serde_json::Value;

#[derive(QueryableByName, Debug)]
struct Named {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The same scenario on every database; `p(n)` is the n-th placeholder of its dialect. Its
/// traces go to the test's own collector `c`, with `trace_sql` and `trace_sql_params` set in
/// their own scopes: the tests of this file run in parallel.
macro_rules! scenario {
    ($c:expr, $conn:expr, $system:expr, $p:expr) => {{
        let c: &Collector = $c;
        let conn = $conn;
        let system: &str = $system;
        let p: fn(usize) -> String = $p;

        let t = table();
        diesel::sql_query(format!(
            "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name VARCHAR(40))"
        ))
        .execute(conn)
        .unwrap();
        let insert = format!("INSERT INTO {t} (id, name) VALUES ({}, {})", p(1), p(2));
        let select = format!("SELECT name FROM {t} WHERE id >= {}", p(1));
        for (n, (sql, params)) in [(false, false), (true, false), (true, true)]
            .into_iter()
            .enumerate()
        {
            let scope = c.dispatch().trace_sql(sql).trace_sql_params(params);
            let msgs = c.traced_run_sync(&scope, || {
                diesel::sql_query(&insert)
                    .bind::<Integer, _>(n as i32)
                    .bind::<Text, _>("secret-value")
                    .execute(conn)
                    .unwrap();
                let rows: Vec<Named> = diesel::sql_query(&select)
                    .bind::<Integer, _>(0)
                    .load(conn)
                    .unwrap();
                assert_eq!(rows.len(), n + 1);
                assert_eq!(rows[0].name, "secret-value");
            });
            let points = db_points(&msgs);
            let apis: Vec<&str> = points.iter().map(|p| p.0.as_str()).collect();
            assert_eq!(apis, ["query", "query"], "{msgs:#?}");
            let start = &msgs.iter().find(|m| m["name"] == "db-start").unwrap()["info"]["db"];
            assert_eq!(start["system"], system);
            assert_eq!(
                points[0].1.as_deref(),
                sql.then_some(insert.as_str()),
                "SQL without binds, only with trace_sql"
            );
            assert_eq!(
                serde_json::to_string(&msgs)
                    .unwrap()
                    .contains("secret-value"),
                params,
                "binds only with trace_sql_params"
            );
        }
        let sql = c.dispatch().trace_sql(true);

        let msgs = c.traced_run_sync(&sql, || {
            assert!(
                diesel::sql_query("SELECT * FROM no_such_table_here")
                    .execute(conn)
                    .is_err()
            );
        });
        let stop = msgs.iter().find(|m| m["name"] == "db-stop").unwrap();
        assert_eq!(stop["info"]["etype"], "diesel::result::Error");
        assert!(
            stop["info"]["db"]["original_exception"]
                .as_str()
                .unwrap()
                .contains("no_such_table_here")
        );

        let msgs = c.traced_run_sync(&sql, || {
            conn.transaction::<_, diesel::result::Error, _>(|c| {
                diesel::sql_query(&insert)
                    .bind::<Integer, _>(10)
                    .bind::<Text, _>("a")
                    .execute(c)?;
                Ok(())
            })
            .unwrap();
            let r = conn.transaction::<(), diesel::result::Error, _>(|c| {
                diesel::sql_query(&insert)
                    .bind::<Integer, _>(11)
                    .bind::<Text, _>("b")
                    .execute(c)?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            assert!(r.is_err());
        });
        let points = db_points(&msgs);
        let got: Vec<(&str, Option<&str>)> = points
            .iter()
            .map(|p| (p.0.as_str(), p.1.as_deref()))
            .collect();
        assert_eq!(got.len(), 6, "{got:?}");
        assert_eq!(
            (got[0].0, got[2].0, got[3].0, got[5].0),
            ("begin", "commit", "begin", "rollback")
        );
        assert_eq!(
            (got[1], got[4]),
            (
                ("query", Some(insert.as_str())),
                ("query", Some(insert.as_str()))
            )
        );
        assert_eq!(got[0].1, None, "transaction control has no statement");
        diesel::sql_query(format!("DROP TABLE {t}"))
            .execute(conn)
            .unwrap();
    }};
}

#[test]
fn sqlite_in_memory() {
    let c = Collector::new();
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    osprofiler_diesel::instrument_with(
        &mut conn,
        osp::db::DbTarget::new("sqlite").namespace("main"),
    );
    scenario!(&c, &mut conn, "sqlite", |_| "?".to_owned());
}

#[test]
fn sqlite_in_a_file_with_default_instrumentation() {
    let c = Collector::new();
    osprofiler_diesel::install_default().unwrap();
    let path =
        std::env::temp_dir().join(format!("osp-diesel-{}.db", uuid::Uuid::new_v4().simple()));
    let url = path.display().to_string();
    // Establishing is itself a point when a trace is active.
    let mut conn = None;
    let msgs = c.traced_run_sync(&c.dispatch(), || {
        conn = Some(SqliteConnection::establish(&url).unwrap())
    });
    let points = db_points(&msgs);
    assert_eq!(points[0].0, "connect");
    let mut conn = conn.unwrap();
    scenario!(&c, &mut conn, "sqlite", |_| "?".to_owned());
}

#[test]
fn postgresql_with_r2d2_and_no_password_in_points() {
    let c = Collector::new();
    let url = "postgres://postgres:not-a-real-password@127.0.0.1:5432/test";
    let manager = diesel::r2d2::ConnectionManager::<PgConnection>::new(url);
    let pool = diesel::r2d2::Pool::builder()
        .max_size(2)
        .connection_customizer(Box::new(osprofiler_diesel::Customizer::new(
            osprofiler_diesel::target_of_url(url),
        )))
        .build(manager)
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
        });
    let mut conn = pool.get().unwrap();
    let msgs = c.traced_run_sync(&c.dispatch(), || {
        diesel::sql_query("SELECT 1").execute(&mut conn).unwrap();
    });
    let start = &msgs.iter().find(|m| m["name"] == "db-start").unwrap()["info"]["db"];
    assert_eq!(
        (start["server"].as_str(), start["namespace"].as_str()),
        (Some("127.0.0.1:5432"), Some("test"))
    );
    assert!(
        !serde_json::to_string(&msgs)
            .unwrap()
            .contains("not-a-real-password")
    );
    scenario!(&c, &mut *conn, "postgresql", |n| format!("${n}"));
}

#[test]
fn sync_diesel_from_async_code_stays_in_the_trace() {
    let c = Collector::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (base, rpc) = rt.block_on(
        osp::trace_scope(async {
            let p = osp::init("k", None, None).unwrap();
            let rpc = osp::Trace::new("rpc", osp::Info::new);
            osp::spawn_blocking_traced(|| {
                let mut conn = SqliteConnection::establish(":memory:").unwrap();
                osprofiler_diesel::instrument(&mut conn);
                diesel::sql_query("SELECT 1").execute(&mut conn).unwrap();
            })
            .await
            .unwrap();
            (p.base_id().to_string(), rpc.id().unwrap().to_string())
        })
        .with_dispatch(c.dispatch()),
    );
    let msgs = c.messages_of(&base);
    let q = msgs.iter().rfind(|m| m["name"] == "db-start").unwrap();
    assert_eq!(q["parent_id"], rpc.as_str());
    // `instrument` on an open connection names its system (from the backend).
    assert_eq!(q["info"]["db"]["system"], "sqlite", "{q}");
}

#[test]
fn a_hundred_concurrent_traced_tasks_share_one_r2d2_pool() {
    let c = Collector::new();
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let pool = diesel::r2d2::Pool::builder()
        .max_size(4)
        .connection_customizer(Box::new(osprofiler_diesel::Customizer::new(
            osprofiler_diesel::target_of_url(url),
        )))
        .build(diesel::r2d2::ConnectionManager::<PgConnection>::new(url))
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..100 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(
                osp::trace_scope(async move {
                    let p = osp::init("k", None, None).unwrap();
                    let outer = osp::Trace::new("rpc", osp::Info::new);
                    osp::spawn_blocking_traced(move || {
                        let mut conn = pool.get().unwrap();
                        diesel::sql_query(format!("SELECT {i} + 1"))
                            .execute(&mut conn)
                            .unwrap();
                    })
                    .await
                    .unwrap();
                    (p.base_id().to_string(), outer.id().unwrap().to_string())
                })
                // spawn_blocking_traced carries it to the blocking pool.
                .with_dispatch(c.dispatch()),
            ));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (base, outer) in results {
        let msgs = c.messages_of(&base);
        // A connection the pool opens inside the task adds its own points (connect and diesel's
        // set-up statements); all of them, and the query, belong to this task's rpc point.
        let starts: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-start").collect();
        assert!(
            starts.iter().any(|m| m["info"]["db"]["api"] == "query"),
            "{base}"
        );
        assert!(
            starts.iter().all(|m| m["parent_id"] == outer.as_str()),
            "{base}: no cross-talk"
        );
    }
}
