//! diesel-async against the real PostgreSQL (feature `async`): queries and transactions on an
//! `AsyncPgConnection` are points in the calling task's trace, with the SQL when trace_sql is
//! on; the URL's password never appears.
use diesel::sql_types::Integer;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use osprofiler_core as osp;
use osprofiler_testkit::*;

#[tokio::test]
async fn async_pg_connection_calls_are_points() {
    collector();
    let url = "postgres://postgres:not-the-password@127.0.0.1:5432/test";
    let mut conn = AsyncPgConnection::establish(url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
    });
    osprofiler_diesel::instrument_async(&mut conn, osprofiler_diesel::target_of_url(url));
    let t = table();
    diesel::sql_query(format!("CREATE TABLE {t} (id int4)"))
        .execute(&mut conn)
        .await
        .unwrap();
    let insert = format!("INSERT INTO {t} VALUES ($1)");
    osp::set_trace_sql(true);
    let msgs = traced_run(async {
        diesel::sql_query(&insert)
            .bind::<Integer, _>(1)
            .execute(&mut conn)
            .await
            .unwrap();
        let insert = insert.clone();
        conn.transaction::<_, diesel::result::Error, _>(async move |c| {
            diesel::sql_query(&insert)
                .bind::<Integer, _>(2)
                .execute(c)
                .await?;
            Ok(())
        })
        .await
        .unwrap();
    })
    .await;
    osp::set_trace_sql(false);
    let points = db_points(&msgs);
    let got: Vec<(&str, Option<&str>)> = points
        .iter()
        .map(|p| (p.0.as_str(), p.1.as_deref()))
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], ("query", Some(insert.as_str())));
    assert_eq!(
        (got[1].0, got[2], got[3].0),
        ("begin", ("query", Some(insert.as_str())), "commit")
    );
    let start = msgs.iter().find(|m| m["name"] == "db-start").unwrap();
    assert_eq!(start["info"]["db"]["system"], "postgresql");
    assert_eq!(start["info"]["db"]["namespace"], "test");
    assert!(
        !serde_json::to_string(&msgs)
            .unwrap()
            .contains("not-the-password")
    );
    diesel::sql_query(format!("DROP TABLE {t}"))
        .execute(&mut conn)
        .await
        .unwrap();
}
