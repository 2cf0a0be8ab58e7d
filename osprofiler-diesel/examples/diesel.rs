//! diesel with osprofiler: one traced request making queries on SQLite (in memory) through an
//! instrumented connection, the points collected in memory and printed as a tree.
//!
//! Run: `cargo run -p osprofiler-diesel --features sqlite --example diesel`
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use osprofiler_core::notifier::{QueueNotifier, QueueOptions};
use osprofiler_core::{self as osp, memory::MemoryCollector, report::Report};
use std::time::Duration;

#[derive(QueryableByName)]
struct User {
    #[diesel(sql_type = Text)]
    name: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let memory = MemoryCollector::new();
    let notifier = QueueNotifier::start(memory.clone(), QueueOptions::default())?;
    osp::notifier::set(notifier.clone());
    osp::set_trace_sql(true);

    let mut conn = SqliteConnection::establish(":memory:")?;
    osprofiler_diesel::instrument_with(
        &mut conn,
        osp::db::DbTarget::new("sqlite").namespace("main"),
    ); // the one line

    let p = osp::init("SECRET_KEY", None, None).expect("profiling is on");
    conn.batch_execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password TEXT)")?;
    // No bound values: the password literal is replaced by `?` in the point.
    diesel::sql_query("INSERT INTO users (name, password) VALUES ('alice', 'hunter2')")
        .execute(&mut conn)?;
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        diesel::sql_query("UPDATE users SET name = ? WHERE id = ?")
            .bind::<Text, _>("Alice")
            .bind::<Integer, _>(1)
            .execute(c)?;
        Ok(())
    })?;
    let users: Vec<User> = diesel::sql_query("SELECT name FROM users").load(&mut conn)?;
    assert_eq!(users[0].name, "Alice");
    osp::clean();

    let base_id = p.base_id().to_string();
    notifier.flush_for(Duration::from_secs(5));
    let report = Report::build(&memory.trace(&base_id));
    print!("{}", Report::render_tree_of(report.to_value()));
    assert_eq!(report.to_value()["stats"]["db"]["count"], 6);
    assert!(!format!("{:?}", memory.trace(&base_id)).contains("hunter2"));
    Ok(())
}
