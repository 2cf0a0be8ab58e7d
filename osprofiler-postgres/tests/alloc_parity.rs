//! Free when off: with no active trace, a traced client allocates exactly what the raw client
//! does for the same calls. One test in this file: it counts allocations process-wide.

#[global_allocator]
static GLOBAL: osprofiler_testkit::Counting = osprofiler_testkit::Counting;

#[test]
fn traced_client_allocates_like_the_raw_one_without_a_trace() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect("host=127.0.0.1 port=5432 user=postgres dbname=test", tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}"));
        tokio::spawn(conn);
        let traced = osprofiler_postgres::Traced::new(&client).database("test");
        let stmt = client.prepare("SELECT $1::int4").await.unwrap();
        const N: usize = 200;
        // Warm up both paths (statement caches, buffers).
        for i in 0..300 {
            client.query(&stmt, &[&i]).await.unwrap();
            traced.query(&stmt, &[&i]).await.unwrap();
            client.execute("SELECT 1", &[]).await.unwrap();
            traced.execute("SELECT 1", &[]).await.unwrap();
        }
        // Per call, interleaved so that the driver's occasional buffer growth hits both
        // sides alike; the wrapper adds no allocation, so the distributions must be the same.
        let mut raw = Vec::with_capacity(N);
        let mut wrapped = Vec::with_capacity(N);
        for i in 0..N as i32 {
            let a = osprofiler_testkit::allocations();
            client.query(&stmt, &[&i]).await.unwrap();
            client.execute("SELECT 1", &[]).await.unwrap();
            let b = osprofiler_testkit::allocations();
            traced.query(&stmt, &[&i]).await.unwrap();
            traced.execute("SELECT 1", &[]).await.unwrap();
            let c = osprofiler_testkit::allocations();
            raw.push(b - a);
            wrapped.push(c - b);
        }
        raw.sort_unstable();
        wrapped.sort_unstable();
        println!(
            "allocations per query+execute pair over {N} pairs: raw min/median/mode {}/{}/{}, traced (no trace) {}/{}/{}",
            raw[0], raw[N / 2], osprofiler_testkit::mode(&raw), wrapped[0], wrapped[N / 2], osprofiler_testkit::mode(&wrapped)
        );
        assert!(raw[0] > 0, "the counter sees the driver's allocations");
        assert_eq!(wrapped[N / 2], raw[N / 2], "median per call");
        assert_eq!(osprofiler_testkit::mode(&wrapped), osprofiler_testkit::mode(&raw), "most common count per call");
    });
}
