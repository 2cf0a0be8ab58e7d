//! sqlx against real databases, beyond the conformance suite (`conformance.rs`): bound values
//! decoded for `db.params` (PostgreSQL, MariaDB), an SQLite file with streams read fully and
//! dropped early, concurrent tasks on one pool.
use futures_util::StreamExt;
use osprofiler_core::{self as osp, dispatch::DispatchFutureExt};
use osprofiler_sqlx::Traced;
use osprofiler_testkit::*;
use serde_json::{Value, json};

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

async fn sqlite_file() -> Traced<sqlx::SqlitePool> {
    let path = std::env::temp_dir().join(format!("osp-{}.db", uuid::Uuid::new_v4().simple()));
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    Traced::new(sqlx::SqlitePool::connect_with(opts).await.unwrap()).database("main")
}

/// Bound values are shown as values where sqlx has already encoded them to the wire format
/// (PostgreSQL, MySQL): decoded back for `db.params`.
macro_rules! params_test {
    ($name:ident, $connect:expr, $p:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            // trace_sql and trace_sql_params on for this test only: its own scope.
            let c = Collector::new();
            let db = $connect.await;
            let p: fn(usize) -> String = $p;
            let sql = format!("SELECT {} AS n, {} AS s", p(1), p(2));
            let scope = c.dispatch().trace_sql(true).trace_sql_params(true);
            let msgs = c
                .traced_run(&scope, async {
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(7i32)
                        .bind("secret-value")
                        .fetch_all(&db)
                        .await
                        .unwrap();
                })
                .await;
            let start = one(&msgs, "db-start");
            assert_eq!(
                start["info"]["db"]["params"],
                json!(r#"[7, "secret-value"]"#)
            );
        }
    };
}

params_test!(postgresql_params, postgres(), |n| format!("${n}::text"));
params_test!(mariadb_params, mariadb(), |_| "?".to_owned());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_streams_read_fully_or_dropped_early() {
    let c = Collector::new();
    let db = sqlite_file().await;
    let select = "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3";
    let msgs = c
        .traced_run(&c.dispatch(), async {
            let all: Vec<_> = sqlx::query(select).fetch(&db).collect().await;
            assert_eq!(all.len(), 3);
            let mut s = sqlx::query(select).fetch(&db);
            s.next().await.unwrap().unwrap();
            drop(s);
        })
        .await;
    let stops: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-stop").collect();
    assert_eq!(stops.len(), 2);
    assert_eq!(stops[0]["info"]["db"], json!({"rows": 3}));
    assert_eq!(stops[1]["info"]["cancelled"], true);
    assert!(stops[1]["info"].get("db").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_traced_tasks_share_one_pool() {
    let c = Collector::new();
    let db = std::sync::Arc::new(postgres().await);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let db = db.clone();
        // Each task in its own trace scope, all in this test's dispatch.
        tasks.push(tokio::spawn(
            osp::trace_scope(async move {
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
            })
            .with_dispatch(c.dispatch()),
        ));
    }
    for t in tasks {
        let (base, outer) = t.await.unwrap();
        let msgs = c.messages_of(&base);
        let starts: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-start").collect();
        let apis: Vec<&str> = starts
            .iter()
            .map(|m| m["info"]["db"]["api"].as_str().unwrap())
            .collect();
        assert_eq!(apis, ["query", "acquire", "query"], "{base}");
        assert!(
            starts.iter().all(|m| m["parent_id"] == outer.as_str()),
            "{base}: no cross-talk"
        );
    }
}
