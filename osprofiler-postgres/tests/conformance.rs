//! The `db` point conformance suite (osprofiler-testkit) on tokio-postgres.
mod common;
use futures_util::StreamExt;
use osprofiler_postgres::Traced;
use osprofiler_testkit::conformance::{self, Adapter, Caps, poll_once};

struct TokioPostgres(Traced<tokio_postgres::Client>);

impl Adapter for TokioPostgres {
    fn system(&self) -> &'static str {
        "postgresql"
    }
    fn caps(&self) -> Caps {
        Caps::ALL
    }
    async fn setup(&mut self, sql: &str) {
        self.0.inner().batch_execute(sql).await.unwrap();
    }
    async fn select(&mut self, sql: &str, name: &str) -> usize {
        self.0.query(sql, &[&name]).await.unwrap().len()
    }
    async fn select_raw(&mut self, sql: &str) -> usize {
        self.0.query(sql, &[]).await.unwrap().len()
    }
    async fn batch(&mut self, sql: &str) {
        self.0.batch_execute(sql).await.unwrap();
    }
    async fn update(&mut self, sql: &str, name: &str, id: i64) -> u64 {
        let id = i32::try_from(id).unwrap();
        self.0.execute(sql, &[&name, &id]).await.unwrap()
    }
    async fn fail(&mut self, sql: &str) -> String {
        let e = self.0.query(sql, &[]).await.unwrap_err();
        osprofiler_postgres::error_info(&e).message
    }
    async fn cancel(&mut self, sql: &str) {
        poll_once(self.0.query(sql, &[])).await;
    }
    async fn transaction(&mut self, insert: &str, id: i64, commit: bool) {
        let id = i32::try_from(id).unwrap();
        let tx = self.0.transaction().await.unwrap();
        tx.execute(insert, &[&id, &"t"]).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
    }
    async fn savepoint(&mut self, insert: &str, id: i64) {
        let id = i32::try_from(id).unwrap();
        let mut tx = self.0.transaction().await.unwrap();
        let sp = tx.transaction().await.unwrap();
        sp.execute(insert, &[&id, &"t"]).await.unwrap();
        sp.rollback().await.unwrap();
        tx.commit().await.unwrap();
    }
    async fn stream(&mut self, sql: &str) -> usize {
        let rows = self.0.query_raw(sql, Vec::<i32>::new()).await.unwrap();
        let mut rows = std::pin::pin!(rows);
        let mut n = 0;
        while let Some(r) = rows.next().await {
            r.unwrap();
            n += 1;
        }
        n
    }
}

#[tokio::test]
async fn postgresql() {
    conformance::run(
        "tokio-postgres on PostgreSQL",
        &mut TokioPostgres(common::traced().await),
    )
    .await;
}
