//! sqlx with osprofiler: one traced request making four queries on SQLite (in memory), the
//! points collected in memory and printed as a tree.
//!
//! Run: `cargo run -p osprofiler-sqlx --features sqlite --example sqlx`
use osprofiler_core::notifier::{QueueNotifier, QueueOptions};
use osprofiler_core::{self as osp, memory::MemoryCollector, report::Report};
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Where points go: here memory (a service uses osprofiler_collectors::init_from_conf).
    let memory = MemoryCollector::new();
    let notifier = QueueNotifier::start(memory.clone(), QueueOptions::default())?;
    osp::notifier::set(notifier.clone());
    osp::set_trace_sql(true); // the statements too (`trace_sqlalchemy` in [profiler])

    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    let db = osprofiler_sqlx::Traced::new(pool).database("main"); // the one line

    let base_id = osp::trace_scope(async {
        let p = osp::init("SECRET_KEY", None, None).expect("profiling is on");
        sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password TEXT)")
            .execute(&db)
            .await?;
        // No bound values: the password literal is replaced by `?` in the point.
        sqlx::query("INSERT INTO users (name, password) VALUES ('alice', 'hunter2')")
            .execute(&db)
            .await?;
        let mut tx = db.begin().await?;
        sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
            .bind("Alice")
            .bind(1)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        let n = sqlx::query("SELECT id, name FROM users")
            .fetch_all(&db)
            .await?
            .len();
        assert_eq!(n, 1);
        Ok::<_, sqlx::Error>(p.base_id().to_string())
    })
    .await?;

    notifier.flush_for(Duration::from_secs(5));
    let report = Report::build(&memory.trace(&base_id));
    print!("{}", Report::render_tree_of(report.to_value()));
    assert_eq!(report.to_value()["stats"]["db"]["count"], 6);
    assert!(!format!("{:?}", memory.trace(&base_id)).contains("hunter2"));
    Ok(())
}
