//! sqlx against real databases — PostgreSQL, SQLite (in memory and in a file) and MariaDB:
//! the exact points of a select, an insert with parameters, a failing statement, transactions
//! committed and rolled back, streams read fully and dropped early, with trace_sql off, on,
//! and on with params.
use futures_util::StreamExt;
use osprofiler_core as osp;
use osprofiler_sqlx::Traced;
use osprofiler_testkit::*;
use serde_json::{Value, json};

/// trace_sql is process-wide: these tests take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn postgres() -> Traced<sqlx::PgPool> {
    let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
        });
    Traced::new(pool).database("test").server("127.0.0.1:5432")
}

async fn mariadb() -> Traced<sqlx::MySqlPool> {
    let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
        .await
        .unwrap_or_else(|e| {
            panic!("MariaDB at 127.0.0.1:3306 (user root, database test) is required: {e}")
        });
    Traced::new(pool).database("test").server("127.0.0.1:3306")
}

async fn sqlite_memory() -> Traced<sqlx::SqlitePool> {
    // One connection: every connection to :memory: is a database of its own.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    Traced::new(pool).database("main")
}

async fn sqlite_file() -> Traced<sqlx::SqlitePool> {
    let path = std::env::temp_dir().join(format!("osp-{}.db", uuid::Uuid::new_v4().simple()));
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    Traced::new(sqlx::SqlitePool::connect_with(opts).await.unwrap()).database("main")
}

/// The same scenario on every database; `p(n)` is the n-th placeholder of its dialect.
macro_rules! scenario {
    ($name:ident, $connect:expr, $system:expr, $p:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let _s = SERIAL.lock().await;
            collector();
            let db = $connect.await;
            let p: fn(usize) -> String = $p;
            let t = table();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name VARCHAR(40))"
            )))
            .execute(db.inner())
            .await
            .unwrap();
            let insert = format!("INSERT INTO {t} (id, name) VALUES ({}, {})", p(1), p(2));
            let select = format!("SELECT id, name FROM {t} ORDER BY id");

            // trace_sql off, on, on with params.
            for (n, (sql, params)) in [(false, false), (true, false), (true, true)]
                .into_iter()
                .enumerate()
            {
                osp::set_trace_sql(sql);
                osp::set_trace_sql_params(params);
                let msgs = traced_run(async {
                    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                        .bind(n as i32)
                        .bind("secret-value")
                        .execute(&db)
                        .await
                        .unwrap();
                    let rows = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
                        .fetch_all(&db)
                        .await
                        .unwrap();
                    assert_eq!(rows.len(), n + 1);
                })
                .await;
                let points = db_points(&msgs);
                assert_eq!(points.len(), 2, "{msgs:#?}");
                assert_eq!((points[0].0.as_str(), &points[0].2), ("execute", &json!(1)));
                assert_eq!(
                    (points[1].0.as_str(), &points[1].2),
                    ("fetch_all", &json!(n + 1))
                );
                let start = &msgs.iter().find(|m| m["name"] == "db-start").unwrap()["info"]["db"];
                assert_eq!(start["system"], $system);
                assert_eq!(
                    points[0].1.as_deref(),
                    sql.then_some(insert.as_str()),
                    "statement only with trace_sql"
                );
                let starts: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-start").collect();
                assert_eq!(
                    starts[0]["info"]["db"].get("params").is_some(),
                    params,
                    "params only with trace_sql_params"
                );
                // The bound value itself, also where sqlx has encoded it to the wire format
                // (PostgreSQL, MySQL): decoded back for db.params.
                assert_eq!(
                    serde_json::to_string(&msgs)
                        .unwrap()
                        .contains("secret-value"),
                    params,
                    "the bound text only with trace_sql_params"
                );
                if params && $system != "sqlite" {
                    let p = starts[0]["info"]["db"]["params"].as_str().unwrap();
                    assert_eq!(p, format!(r#"[{n}, "secret-value"]"#));
                }
            }
            osp::set_trace_sql(true);
            osp::set_trace_sql_params(false);

            // A failing statement: the error is recorded and returned unchanged.
            let msgs = traced_run(async {
                let e = sqlx::query("SELECT * FROM no_such_table_here")
                    .fetch_all(&db)
                    .await
                    .unwrap_err();
                assert!(e.as_database_error().is_some());
            })
            .await;
            let stop = msgs.iter().find(|m| m["name"] == "db-stop").unwrap();
            assert_eq!(stop["info"]["etype"], "sqlx_core::error::Error");
            assert!(
                stop["info"]["db"]["original_exception"]
                    .as_str()
                    .unwrap()
                    .contains("no_such_table_here")
            );

            // Transactions: committed and rolled back; begin/commit/rollback are points.
            let msgs = traced_run(async {
                let mut tx = db.begin().await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                    .bind(10)
                    .bind("a")
                    .execute(&mut tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                let mut tx = db.begin().await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                    .bind(11)
                    .bind("b")
                    .execute(&mut tx)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
            })
            .await;
            let apis: Vec<String> = db_points(&msgs).into_iter().map(|p| p.0).collect();
            assert_eq!(
                apis,
                ["begin", "execute", "commit", "begin", "execute", "rollback"]
            );
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {t} WHERE id >= 10"
            )))
            .fetch_one(db.inner())
            .await
            .unwrap();
            assert_eq!(count, 1);

            // Streams: read fully, then dropped early (cancelled).
            let msgs = traced_run(async {
                let all: Vec<_> = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
                    .fetch(&db)
                    .collect()
                    .await;
                assert_eq!(all.len(), 4);
                let mut s = sqlx::query(sqlx::AssertSqlSafe(select.clone())).fetch(&db);
                s.next().await.unwrap().unwrap();
                drop(s);
            })
            .await;
            let stops: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-stop").collect();
            assert_eq!(stops.len(), 2);
            assert_eq!(
                stops[0]["info"]["db"],
                serde_json::json!({"rows": 4}),
                "the stop message has the rows only (the call is on the start)"
            );
            assert_eq!(stops[1]["info"]["cancelled"], true);
            assert!(stops[1]["info"].get("db").is_none());

            // Raw SQL is sanitized.
            let msgs = traced_run(async {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "UPDATE {t} SET name = 'hunter2' WHERE id = 0"
                )))
                .execute(&db)
                .await
                .unwrap();
            })
            .await;
            assert_eq!(
                db_points(&msgs)[0].1.as_deref(),
                Some(format!("UPDATE {t} SET name = ? WHERE id = ?").as_str())
            );
            assert!(!serde_json::to_string(&msgs).unwrap().contains("hunter2"));

            osp::set_trace_sql(false);
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
                .execute(db.inner())
                .await
                .unwrap();
        }
    };
}

scenario!(postgresql, postgres(), "postgresql", |n| format!("${n}"));
scenario!(sqlite_in_memory, sqlite_memory(), "sqlite", |_| "?"
    .to_owned());
scenario!(sqlite_in_a_file, sqlite_file(), "sqlite", |_| "?"
    .to_owned());
scenario!(mariadb_mysql, mariadb(), "mysql", |_| "?".to_owned());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_traced_tasks_share_one_pool() {
    let _s = SERIAL.lock().await;
    collector();
    let db = std::sync::Arc::new(postgres().await);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let db = db.clone();
        tasks.push(tokio::spawn(osp::trace_scope(async move {
            let p = osp::init("k", None, None).unwrap();
            let outer = osp::Trace::new("rpc", osp::Info::new);
            sqlx::query("SELECT $1::int4 + 1")
                .bind(i)
                .fetch_one(&*db)
                .await
                .unwrap();
            let mut conn = db.acquire().await.unwrap();
            sqlx::query("SELECT 1").execute(&mut conn).await.unwrap();
            (p.base_id().to_string(), outer.id().unwrap().to_string())
        })));
    }
    for t in tasks {
        let (base, outer) = t.await.unwrap();
        let msgs = messages_of(&base);
        let starts: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-start").collect();
        let apis: Vec<&str> = starts
            .iter()
            .map(|m| m["info"]["db"]["api"].as_str().unwrap())
            .collect();
        assert_eq!(apis, ["fetch_one", "acquire", "execute"], "{base}");
        assert!(
            starts.iter().all(|m| m["parent_id"] == outer.as_str()),
            "{base}: no cross-talk"
        );
    }
}
