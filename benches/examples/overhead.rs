//! The DB adapters' overhead over the raw libraries, for `benches/interleaved.sh`: raw and
//! traced calls alternated and timed one by one (wall-clock time on this VM drifts by ±15%
//! between criterion runs; drifts hit both sides of a pair alike). The single-mode loops can
//! also be run under `valgrind --tool=callgrind --toggle-collect='*counted_loop*'`.
//!
//! Usage: `overhead <adapter> <query> <mode> <iterations>`
//! - adapter: `postgres` (tokio-postgres), `sqlx-pg`, `sqlx-sqlite`, `diesel-pg`,
//!   `diesel-sqlite`, `sea-orm-pg`, `sea-orm-sqlite`
//! - query: `select_1` or `select_100`; `select_bound` (`SELECT $1::int4` with one bound
//!   integer; `postgres` and `sqlx-pg` only)
//! - mode: `raw`, `no_trace`, `in_trace`, `trace_sql` (one loop, for callgrind), or
//!   `ab-no_trace`, `ab-in_trace`, `ab-trace_sql`: raw and traced calls alternated and timed,
//!   printing the paired difference with a 95% confidence interval
//!
//! Only `counted_loop` is counted (callgrind `--toggle-collect`): set-up and a warm-up of the
//! same length run outside it. Points go to a queue whose driver discards them, so the count is
//! the request thread's own work; building the messages' JSON happens on the notifier's thread.
#![allow(missing_docs)]

use diesel::RunQueryDsl as _;
use osprofiler_benches::{counted_loop, interleaved, warm_up};
use osprofiler_core as osp;
use sea_orm::ConnectionTrait as _;

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const HUNDRED_PG: &str = "SELECT g, 'row ' || g FROM generate_series(1, 100) g";
const HUNDRED_SQLITE: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT x FROM c";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [adapter, query, mode, n] = &args[..] else {
        eprintln!(
            "usage: overhead <adapter> <select_1|select_100> <raw|no_trace|in_trace|trace_sql> <iterations>"
        );
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("iterations");
    let hundred = query == "select_100";
    let bound = query == "select_bound";
    let raw = mode == "raw";
    type Op<'a> = Box<dyn FnMut() + 'a>;
    let _notifier = osprofiler_benches::install_discard();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let (mut raw_op, mut traced_op): (Op<'_>, Op<'_>) = match adapter.as_str() {
        "postgres" => {
            let client = rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(
                    "host=127.0.0.1 port=5432 user=postgres dbname=test",
                    tokio_postgres::NoTls,
                )
                .await
                .expect("PostgreSQL at 127.0.0.1:5432");
                tokio::spawn(conn);
                client
            });
            let client: &'static tokio_postgres::Client = Box::leak(Box::new(client));
            let traced = osprofiler_postgres::Traced::new(client).database("test");
            let sql = match (hundred, bound) {
                (true, _) => HUNDRED_PG,
                (_, true) => "SELECT $1::int4",
                _ => "SELECT 1",
            };
            let stmt = rt.block_on(traced.prepare(sql)).unwrap();
            let rt = &rt;
            let plain = stmt.inner().clone();
            let params: &'static [&'static (dyn tokio_postgres::types::ToSql + Sync)] =
                if bound { &[&7i32] } else { &[] };
            (
                Box::new(move || {
                    rt.block_on(client.query(&plain, params)).unwrap();
                }),
                Box::new(move || {
                    rt.block_on(traced.query(&stmt, params)).unwrap();
                }),
            )
        }
        "sqlx-pg" | "sqlx-sqlite" => {
            let pg = adapter == "sqlx-pg";
            let sql: &'static str = match (pg, hundred, bound) {
                (true, true, _) => HUNDRED_PG,
                (false, true, _) => HUNDRED_SQLITE,
                (true, _, true) => "SELECT $1::int4",
                _ => "SELECT 1",
            };
            // The same pair of closures over either pool type.
            macro_rules! pair {
                ($pool:expr) => {{
                    let pool = $pool;
                    let traced = osprofiler_sqlx::Traced::new(pool.clone());
                    let rt = &rt;
                    let raw: Op<'_> = Box::new(move || {
                        let q = sqlx::query(sql);
                        let q = if bound { q.bind(7i32) } else { q };
                        rt.block_on(q.fetch_all(&pool)).unwrap();
                    });
                    let wrapped: Op<'_> = Box::new(move || {
                        let q = sqlx::query(sql);
                        let q = if bound { q.bind(7i32) } else { q };
                        rt.block_on(q.fetch_all(&traced)).unwrap();
                    });
                    (raw, wrapped)
                }};
            }
            if pg {
                pair!(
                    rt.block_on(
                        sqlx::postgres::PgPoolOptions::new()
                            .max_connections(1)
                            .connect(PG)
                    )
                    .expect("PostgreSQL at 127.0.0.1:5432")
                )
            } else {
                pair!(
                    rt.block_on(
                        sqlx::sqlite::SqlitePoolOptions::new()
                            .max_connections(1)
                            .connect("sqlite::memory:"),
                    )
                    .unwrap()
                )
            }
        }
        "diesel-sqlite" | "diesel-pg" => {
            use diesel::Connection as _;
            // One connection (two would be two server processes, which this 2-core VM
            // schedules differently) with one instrumentation installed once, switched per
            // call: off for the raw side (returns at once), on for the traced side.
            struct Switched {
                on: std::sync::Arc<std::sync::atomic::AtomicBool>,
                inner: osprofiler_diesel::OsProfilerInstrumentation,
            }
            impl diesel::connection::Instrumentation for Switched {
                fn on_connection_event(
                    &mut self,
                    event: diesel::connection::InstrumentationEvent<'_>,
                ) {
                    if self.on.load(std::sync::atomic::Ordering::Relaxed) {
                        self.inner.on_connection_event(event);
                    }
                }
            }
            macro_rules! pair {
                ($conn:ty, $url:expr, $sql:expr) => {{
                    let mut c = <$conn>::establish($url).expect("the database");
                    let on = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    c.set_instrumentation(Switched {
                        on: on.clone(),
                        inner: osprofiler_diesel::OsProfilerInstrumentation::new()
                            .target(osprofiler_diesel::target_of_url($url)),
                    });
                    let conn = std::rc::Rc::new(std::cell::RefCell::new(c));
                    let conn2 = conn.clone();
                    let on2 = on.clone();
                    let sql = $sql;
                    let raw: Op<'_> = Box::new(move || {
                        on.store(false, std::sync::atomic::Ordering::Relaxed);
                        diesel::sql_query(sql)
                            .execute(&mut *conn.borrow_mut())
                            .unwrap();
                    });
                    let wrapped: Op<'_> = Box::new(move || {
                        on2.store(true, std::sync::atomic::Ordering::Relaxed);
                        diesel::sql_query(sql)
                            .execute(&mut *conn2.borrow_mut())
                            .unwrap();
                    });
                    (raw, wrapped)
                }};
            }
            if adapter == "diesel-pg" {
                pair!(
                    diesel::PgConnection,
                    PG,
                    if hundred { HUNDRED_PG } else { "SELECT 1" }
                )
            } else {
                // In memory no server is involved, and a swap would cost more than the query:
                // a plain connection and an instrumented one.
                let mut plain = diesel::SqliteConnection::establish(":memory:").unwrap();
                let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
                osprofiler_diesel::instrument(&mut conn);
                let sql = if hundred { HUNDRED_SQLITE } else { "SELECT 1" };
                let raw: Op<'_> = Box::new(move || {
                    diesel::sql_query(sql).execute(&mut plain).unwrap();
                });
                let wrapped: Op<'_> = Box::new(move || {
                    diesel::sql_query(sql).execute(&mut conn).unwrap();
                });
                (raw, wrapped)
            }
        }
        "sea-orm-sqlite" | "sea-orm-pg" => {
            let pg = adapter == "sea-orm-pg";
            let db = rt
                .block_on(sea_orm::Database::connect(if pg {
                    PG
                } else {
                    "sqlite::memory:"
                }))
                .expect("the database");
            let traced = osprofiler_sea_orm::Traced::new(db.clone());
            let sql = match (pg, hundred) {
                (true, true) => HUNDRED_PG,
                (false, true) => HUNDRED_SQLITE,
                _ => "SELECT 1",
            };
            let backend = if pg {
                sea_orm::DbBackend::Postgres
            } else {
                sea_orm::DbBackend::Sqlite
            };
            let stmt = sea_orm::Statement::from_string(backend, sql);
            let stmt2 = stmt.clone();
            let rt = &rt;
            (
                Box::new(move || {
                    rt.block_on(db.query_all_raw(stmt.clone())).unwrap();
                }),
                Box::new(move || {
                    rt.block_on(traced.query_all_raw(stmt2.clone())).unwrap();
                }),
            )
        }
        other => panic!("unknown adapter {other}"),
    };

    let _trace = match mode.trim_start_matches("ab-") {
        "raw" | "no_trace" => None,
        "in_trace" => osp::init("k", None, None),
        "trace_sql" => {
            osp::set_trace_sql(true);
            osp::init("k", None, None)
        }
        other => panic!("unknown mode {other}"),
    };
    if let Some(m) = mode.strip_prefix("ab-") {
        return interleaved(m, n, &mut *raw_op, &mut *traced_op);
    }
    let op = if raw { &mut *raw_op } else { &mut *traced_op };
    warm_up(n, op);
    counted_loop(n, op);
}
