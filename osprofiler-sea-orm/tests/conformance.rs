//! The `db` point conformance suite (osprofiler-testkit) on sea-orm: PostgreSQL, MariaDB and
//! SQLite.
use futures_util::StreamExt;
use osprofiler_sea_orm::Traced;
use osprofiler_testkit::conformance::{self, Adapter, Caps, poll_once};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, Statement, StreamTrait, TransactionSession,
    TransactionTrait,
};

struct SeaOrm(Traced<DatabaseConnection>, &'static str);

impl SeaOrm {
    fn stmt(&self, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
        Statement::from_sql_and_values(ConnectionTrait::get_database_backend(&self.0), sql, values)
    }
    fn raw(&self, sql: &str) -> Statement {
        Statement::from_string(ConnectionTrait::get_database_backend(&self.0), sql)
    }
}

impl Adapter for SeaOrm {
    fn system(&self) -> &'static str {
        self.1
    }
    fn caps(&self) -> Caps {
        Caps::ALL
    }
    async fn setup(&mut self, sql: &str) {
        self.0.inner().execute_unprepared(sql).await.unwrap();
    }
    async fn select(&mut self, sql: &str, name: &str) -> usize {
        let stmt = self.stmt(sql, vec![name.into()]);
        self.0.query_all_raw(stmt).await.unwrap().len()
    }
    async fn select_raw(&mut self, sql: &str) -> usize {
        self.0.query_all_raw(self.raw(sql)).await.unwrap().len()
    }
    async fn batch(&mut self, sql: &str) {
        self.0.execute_unprepared(sql).await.unwrap();
    }
    async fn update(&mut self, sql: &str, name: &str, id: i64) -> u64 {
        let stmt = self.stmt(sql, vec![name.into(), id.into()]);
        self.0.execute_raw(stmt).await.unwrap().rows_affected()
    }
    async fn fail(&mut self, sql: &str) -> String {
        self.0
            .query_all_raw(self.raw(sql))
            .await
            .unwrap_err()
            .to_string()
    }
    async fn cancel(&mut self, sql: &str) {
        poll_once(self.0.query_all_raw(self.raw(sql))).await;
    }
    async fn transaction(&mut self, insert: &str, id: i64, commit: bool) {
        let stmt = self.stmt(insert, vec![id.into(), "t".into()]);
        let tx = self.0.begin().await.unwrap();
        tx.execute_raw(stmt).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
    }
    async fn savepoint(&mut self, insert: &str, id: i64) {
        let stmt = self.stmt(insert, vec![id.into(), "t".into()]);
        let tx = self.0.begin().await.unwrap();
        let sp = tx.begin().await.unwrap();
        sp.execute_raw(stmt).await.unwrap();
        sp.rollback().await.unwrap();
        tx.commit().await.unwrap();
    }
    async fn stream(&mut self, sql: &str) -> usize {
        let stmt = self.raw(sql);
        let mut rows = self.0.stream_raw(stmt).await.unwrap();
        let mut n = 0;
        while let Some(r) = rows.next().await {
            r.unwrap();
            n += 1;
        }
        n
    }
}

async fn connect(url: &str, what: &str) -> DatabaseConnection {
    sea_orm::Database::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{what} is required: {e}"))
}

#[tokio::test]
async fn postgresql() {
    let db = connect(
        "postgres://postgres@127.0.0.1:5432/test",
        "PostgreSQL at 127.0.0.1:5432 (user postgres, database test)",
    )
    .await;
    let db = Traced::new(db).database("test").server("127.0.0.1:5432");
    conformance::run("sea-orm on PostgreSQL", &mut SeaOrm(db, "postgresql")).await;
}

#[tokio::test]
async fn mariadb() {
    let db = connect(
        "mysql://root@127.0.0.1:3306/test",
        "MariaDB at 127.0.0.1:3306 (user root, database test)",
    )
    .await;
    let db = Traced::new(db).database("test").server("127.0.0.1:3306");
    conformance::run("sea-orm on MariaDB", &mut SeaOrm(db, "mysql")).await;
}

#[tokio::test]
async fn sqlite() {
    let opts = sea_orm::ConnectOptions::new("sqlite::memory:")
        .max_connections(1)
        .to_owned();
    let db = sea_orm::Database::connect(opts).await.unwrap();
    let db = Traced::new(db).database("main");
    conformance::run("sea-orm on SQLite", &mut SeaOrm(db, "sqlite")).await;
}
