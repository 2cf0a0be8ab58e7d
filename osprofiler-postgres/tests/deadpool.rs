//! `Traced::new(object)` over deadpool-postgres pool objects (feature `deadpool`), against a
//! real PostgreSQL: queries and transactions through a pooled object are points.
use osprofiler_testkit::*;

#[tokio::test]
async fn pooled_objects_are_traced_clients() {
    collector();
    let mut cfg = deadpool_postgres::Config::new();
    cfg.host = Some("127.0.0.1".into());
    cfg.port = Some(5432);
    cfg.user = Some("postgres".into());
    cfg.dbname = Some("test".into());
    let pool = cfg
        .create_pool(
            Some(deadpool_postgres::Runtime::Tokio1),
            tokio_postgres::NoTls,
        )
        .unwrap();
    let object = pool.get().await.unwrap_or_else(|e| {
        panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
    });
    let mut db = osprofiler_postgres::Traced::new(object).database("test");
    let t = table();
    let msgs = traced_run(async {
        let n: i32 = db.query_one("SELECT 41 + 1", &[]).await.unwrap().get(0);
        assert_eq!(n, 42);
        db.batch_execute(&format!("CREATE TEMP TABLE {t} (id int4)"))
            .await
            .unwrap();
        let tx = db.transaction().await.unwrap();
        tx.execute(&format!("INSERT INTO {t} VALUES ($1)"), &[&7i32])
            .await
            .unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    let apis: Vec<String> = db_points(&msgs).into_iter().map(|p| p.0).collect();
    assert_eq!(apis, ["query", "query", "begin", "query", "commit"]);
    // The object goes back to the pool when the wrapper is dropped.
    drop(db);
    assert_eq!(pool.status().available, 1);
}
