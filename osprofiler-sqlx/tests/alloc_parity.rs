//! Free when off: with no active trace, the traced pool allocates exactly what the raw pool
//! does for the same calls (SQLite in memory). One test in this file: it counts allocations
//! process-wide.

#[global_allocator]
static GLOBAL: osprofiler_testkit::Counting = osprofiler_testkit::Counting;

#[test]
fn traced_pool_allocates_like_the_raw_one_without_a_trace() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let traced = osprofiler_sqlx::Traced::new(pool.clone());
        osprofiler_testkit::assert_alloc_parity(
            "sqlx fetch_all + execute",
            300,
            async |i| {
                sqlx::query("SELECT ?1 + 1")
                    .bind(i)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                sqlx::query("SELECT 1").execute(&pool).await.unwrap();
            },
            async |i| {
                sqlx::query("SELECT ?1 + 1")
                    .bind(i)
                    .fetch_all(&traced)
                    .await
                    .unwrap();
                sqlx::query("SELECT 1").execute(&traced).await.unwrap();
            },
        )
        .await;
    });
}
