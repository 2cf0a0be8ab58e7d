//! A request whose query failed (undefined table, SQLSTATE 42P01 on PostgreSQL through sqlx)
//! is an error trace for every collector: `trace list --error-trace` lists it, ours over Redis
//! and over SQLite and Python's over Redis — though the DB error is info the notifier's worker
//! writes, not a map given up front.

use osprofiler_core::{self as osp, ProfilerConfig};
use osprofiler_testkit::python_tool;
use std::process::Command;
use std::time::Duration;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("start the command");
    assert!(
        out.status.success(),
        "{cmd:?} failed (Redis at 127.0.0.1:6379 and the Python oracle are needed):\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn error_traces(cli: &mut Command, cs: &str) -> String {
    run(cli.args(["trace", "list", "--error-trace", "--connection-string", cs]))
}

/// Python's CLI declares `--error-trace` as an option taking a value (`type=bool`).
fn pythons_error_traces(cs: &str) -> String {
    run(Command::new(python_tool("osprofiler")).args([
        "trace",
        "list",
        "--error-trace",
        "1",
        "--connection-string",
        cs,
    ]))
}

/// A traced request with one good and one failing query, sent to `cs` with
/// `filter_error_trace`; its base id.
async fn failing_request(cs: &str, db: &osprofiler_sqlx::Traced<sqlx::PgPool>) -> String {
    let conf = ProfilerConfig::builder()
        .enabled(true)
        .filter_error_trace(true)
        .connection_string(cs)
        .build();
    let guard = osprofiler_collectors::init_from_conf(&conf, "proj", "api", None).unwrap();
    let base = osp::trace_scope(async {
        let p = osp::init("SECRET_KEY", None, None).unwrap();
        sqlx::query("SELECT 1").execute(db).await.unwrap();
        let e = sqlx::query("SELECT * FROM osp_no_such_table")
            .execute(db)
            .await
            .unwrap_err();
        assert_eq!(
            e.as_database_error().and_then(|d| d.code()).as_deref(),
            Some("42P01")
        );
        p.base_id().to_string()
    })
    .await;
    assert!(guard.flush(Duration::from_secs(10)), "delivered to {cs}");
    base
}

#[tokio::test]
async fn a_failed_query_makes_an_error_trace_for_every_collector_and_both_clis() {
    let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
        });
    let db = osprofiler_sqlx::Traced::new(pool);
    let ours = || Command::new(env!("CARGO_BIN_EXE_osprofiler"));

    let redis = "redis://127.0.0.1:6379";
    let id = failing_request(redis, &db).await;
    let listed = error_traces(&mut ours(), redis);
    assert!(listed.contains(&id), "our CLI over Redis: {listed}");
    let listed = pythons_error_traces(redis);
    assert!(listed.contains(&id), "Python's CLI over Redis: {listed}");

    let path = std::env::temp_dir().join(format!("osp-dberr-{}.db", uuid::Uuid::new_v4()));
    let sqlite = format!("sqlite://{}", path.display());
    let id = failing_request(&sqlite, &db).await;
    let listed = error_traces(&mut ours(), &sqlite);
    assert!(listed.contains(&id), "our CLI over SQLite: {listed}");
    let _ = std::fs::remove_file(&path);
}
