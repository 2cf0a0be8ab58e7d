//! Free when off: with no active trace, a connection with the OSProfiler instrumentation
//! allocates exactly what a plain one does for the same calls (SQLite in memory). One test in
//! this file: it counts allocations process-wide.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

#[global_allocator]
static GLOBAL: osprofiler_testkit::Counting = osprofiler_testkit::Counting;

#[test]
fn instrumented_connection_allocates_like_a_plain_one_without_a_trace() {
    let mut plain = SqliteConnection::establish(":memory:").unwrap();
    let mut traced = SqliteConnection::establish(":memory:").unwrap();
    osprofiler_diesel::instrument(&mut traced);
    fn round(c: &mut SqliteConnection, i: i64) {
        diesel::sql_query("SELECT ? + 1")
            .bind::<diesel::sql_types::BigInt, _>(i)
            .execute(c)
            .unwrap();
        c.batch_execute("SELECT 1; SELECT 2").unwrap();
        c.transaction(|c| diesel::sql_query("SELECT 1").execute(c))
            .unwrap();
    }
    osprofiler_testkit::assert_alloc_parity_sync(
        "diesel execute + batch_execute + transaction",
        300,
        |i| round(&mut plain, i),
        |i| round(&mut traced, i),
    );
}
