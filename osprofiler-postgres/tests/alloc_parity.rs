//! Free when off: with no active trace, a traced client allocates exactly what the raw client
//! does for the same calls. One test in this file: it counts allocations process-wide.

mod common;

#[global_allocator]
static GLOBAL: osprofiler_testkit::Counting = osprofiler_testkit::Counting;

#[test]
fn traced_client_allocates_like_the_raw_one_without_a_trace() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = common::connect().await;
        let traced = osprofiler_postgres::Traced::new(&client).database("test");
        let stmt = client.prepare("SELECT $1::int4").await.unwrap();
        osprofiler_testkit::assert_alloc_parity(
            "tokio-postgres query + execute",
            300,
            async |i| {
                client.query(&stmt, &[&(i as i32)]).await.unwrap();
                client.execute("SELECT 1", &[]).await.unwrap();
            },
            async |i| {
                traced.query(&stmt, &[&(i as i32)]).await.unwrap();
                traced.execute("SELECT 1", &[]).await.unwrap();
            },
        )
        .await;
    });
}
