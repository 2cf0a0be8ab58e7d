//! tokio-postgres with osprofiler: one traced request making queries on PostgreSQL
//! (127.0.0.1:5432, user postgres, database test), the points collected in memory and printed
//! as a tree.
//!
//! Run: `cargo run -p osprofiler-postgres --example tokio_postgres`
use osprofiler_core::notifier::{QueueNotifier, QueueOptions};
use osprofiler_core::{self as osp, memory::MemoryCollector, report::Report};
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let memory = MemoryCollector::new();
    let notifier = QueueNotifier::start(memory.clone(), QueueOptions::default())?;
    osp::notifier::set(notifier.clone());
    osp::set_trace_sql(true);

    let (client, connection) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=test",
        tokio_postgres::NoTls,
    )
    .await
    .map_err(|e| format!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test): {e}"))?;
    tokio::spawn(connection);
    let mut db = osprofiler_postgres::Traced::new(client)
        .database("test")
        .server("127.0.0.1:5432"); // the one line

    let table = format!("osp_example_{}", std::process::id());
    let base_id = osp::trace_scope(async {
        let p = osp::init("SECRET_KEY", None, None).expect("profiling is on");
        db.batch_execute(&format!(
            "CREATE TEMP TABLE {table} (id int4 PRIMARY KEY, name text, password text)"
        ))
        .await?;
        // No bound values: the password literal is replaced by `?` in the point.
        db.execute(
            &format!("INSERT INTO {table} VALUES (1, 'alice', 'hunter2')"),
            &[],
        )
        .await?;
        let tx = db.transaction().await?;
        tx.execute(
            &format!("UPDATE {table} SET name = $1 WHERE id = $2"),
            &[&"Alice", &1i32],
        )
        .await?;
        tx.commit().await?;
        let rows = db.query(&format!("SELECT name FROM {table}"), &[]).await?;
        assert_eq!(rows.len(), 1);
        Ok::<_, tokio_postgres::Error>(p.base_id().to_string())
    })
    .await?;

    notifier.flush_for(Duration::from_secs(5));
    let report = Report::build(&memory.trace(&base_id));
    print!("{}", Report::render_tree_of(report.to_value()));
    assert_eq!(report.to_value()["stats"]["db"]["count"], 6);
    assert!(!format!("{:?}", memory.trace(&base_id)).contains("hunter2"));
    Ok(())
}
