//! Free when off: with no active trace, the traced connection allocates exactly what sea-orm's
//! own does for the same calls (SQLite in memory): the wrapper hands back sea-orm's boxed
//! future instead of boxing one of its own. One test in this file: it counts allocations
//! process-wide.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

#[global_allocator]
static GLOBAL: osprofiler_testkit::Counting = osprofiler_testkit::Counting;

#[test]
fn traced_connection_allocates_like_the_raw_one_without_a_trace() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let traced = osprofiler_sea_orm::Traced::new(db.clone());
        async fn round(c: &impl ConnectionTrait, i: i64) {
            let q = Statement::from_sql_and_values(DbBackend::Sqlite, "SELECT ? + 1", [i.into()]);
            c.query_all_raw(q).await.unwrap();
            let one = Statement::from_string(DbBackend::Sqlite, "SELECT 1");
            c.query_one_raw(one).await.unwrap();
            c.execute_unprepared("SELECT 1").await.unwrap();
        }
        osprofiler_testkit::assert_alloc_parity(
            "sea-orm query_all + query_one + execute_unprepared",
            300,
            async |i| round(&db, i).await,
            async |i| round(&traced, i).await,
        )
        .await;
    });
}
