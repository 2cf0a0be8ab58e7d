//! Helpers of this crate's tests (the shared ones are in osprofiler-testkit).
#![allow(dead_code)]

/// A client connected to the test PostgreSQL (127.0.0.1:5432, user postgres, database test).
pub async fn connect() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=test",
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| {
        panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
    });
    tokio::spawn(conn);
    client
}

/// The traced client with the target the tests expect.
pub async fn traced() -> osprofiler_postgres::Traced<tokio_postgres::Client> {
    osprofiler_postgres::Traced::new(connect().await)
        .database("test")
        .server("127.0.0.1:5432")
}
