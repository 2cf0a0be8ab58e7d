//! sea-orm with osprofiler: one traced request making queries on SQLite (in memory), the
//! points collected in memory and printed as a tree.
//!
//! Run: `cargo run -p osprofiler-sea-orm --features sqlx-sqlite --example sea_orm`
use osprofiler_core::notifier::{QueueNotifier, QueueOptions};
use osprofiler_core::{self as osp, memory::MemoryCollector, report::Report};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionSession, TransactionTrait};
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let memory = MemoryCollector::new();
    let notifier = QueueNotifier::start(memory.clone(), QueueOptions::default())?;
    osp::notifier::set(notifier.clone());
    osp::set_trace_sql(true);

    let opts = sea_orm::ConnectOptions::new("sqlite::memory:")
        .max_connections(1)
        .to_owned();
    let db = sea_orm::Database::connect(opts).await?;
    let db = osprofiler_sea_orm::Traced::new(db).database("main"); // the one line

    let base_id = osp::trace_scope(async {
        let p = osp::init("SECRET_KEY", None, None).expect("profiling is on");
        db.execute_unprepared(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password TEXT)",
        )
        .await?;
        // No bound values: the password literal is replaced by `?` in the point.
        db.execute_unprepared("INSERT INTO users (name, password) VALUES ('alice', 'hunter2')")
            .await?;
        let tx = db.begin().await?;
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "UPDATE users SET name = ? WHERE id = ?",
            ["Alice".into(), 1.into()],
        ))
        .await?;
        tx.commit().await?;
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT name FROM users",
            ))
            .await?;
        assert_eq!(rows.len(), 1);
        Ok::<_, sea_orm::DbErr>(p.base_id().to_string())
    })
    .await?;

    notifier.flush_for(Duration::from_secs(5));
    let report = Report::build(&memory.trace(&base_id));
    print!("{}", Report::render_tree_of(report.to_value()));
    assert_eq!(report.to_value()["stats"]["db"]["count"], 6);
    assert!(!format!("{:?}", memory.trace(&base_id)).contains("hunter2"));
    Ok(())
}
