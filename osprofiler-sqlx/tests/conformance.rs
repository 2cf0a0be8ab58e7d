//! The `db` point conformance suite (osprofiler-testkit) on sqlx: PostgreSQL, MariaDB and
//! SQLite.
use futures_util::StreamExt;
use osprofiler_sqlx::Traced;
use osprofiler_testkit::conformance::{self, Adapter, Caps, poll_once};
use sqlx::{AssertSqlSafe, Pool};

struct Sqlx<DB: sqlx::Database>(Traced<Pool<DB>>);

macro_rules! adapter {
    ($db:ty, $system:expr) => {
        impl Adapter for Sqlx<$db> {
            fn system(&self) -> &'static str {
                $system
            }
            fn caps(&self) -> Caps {
                Caps::ALL
            }
            async fn setup(&mut self, sql: &str) {
                sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                    .execute(self.0.inner())
                    .await
                    .unwrap();
            }
            async fn select(&mut self, sql: &str, name: &str) -> usize {
                sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .bind(name.to_owned())
                    .fetch_all(&self.0)
                    .await
                    .unwrap()
                    .len()
            }
            async fn select_raw(&mut self, sql: &str) -> usize {
                sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&self.0)
                    .await
                    .unwrap()
                    .len()
            }
            async fn batch(&mut self, sql: &str) {
                sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                    .execute(&self.0)
                    .await
                    .unwrap();
            }
            async fn update(&mut self, sql: &str, name: &str, id: i64) -> u64 {
                sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .bind(name.to_owned())
                    .bind(id)
                    .execute(&self.0)
                    .await
                    .unwrap()
                    .rows_affected()
            }
            async fn fail(&mut self, sql: &str) -> String {
                sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&self.0)
                    .await
                    .unwrap_err()
                    .to_string()
            }
            async fn cancel(&mut self, sql: &str) {
                poll_once(sqlx::query(AssertSqlSafe(sql.to_owned())).fetch_all(&self.0)).await;
            }
            async fn transaction(&mut self, insert: &str, id: i64, commit: bool) {
                let mut tx = self.0.begin().await.unwrap();
                sqlx::query(AssertSqlSafe(insert.to_owned()))
                    .bind(id)
                    .bind("t")
                    .execute(&mut tx)
                    .await
                    .unwrap();
                if commit {
                    tx.commit().await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
            }
            async fn savepoint(&mut self, insert: &str, id: i64) {
                let mut tx = self.0.begin().await.unwrap();
                let mut sp = tx.begin().await.unwrap();
                sqlx::query(AssertSqlSafe(insert.to_owned()))
                    .bind(id)
                    .bind("t")
                    .execute(&mut sp)
                    .await
                    .unwrap();
                sp.rollback().await.unwrap();
                tx.commit().await.unwrap();
            }
            async fn stream(&mut self, sql: &str) -> usize {
                let q = sqlx::query(AssertSqlSafe(sql.to_owned()));
                let mut rows = q.fetch(&self.0);
                let mut n = 0;
                while let Some(r) = rows.next().await {
                    r.unwrap();
                    n += 1;
                }
                n
            }
        }
    };
}

adapter!(sqlx::Postgres, "postgresql");
adapter!(sqlx::MySql, "mysql");
adapter!(sqlx::Sqlite, "sqlite");

#[tokio::test]
async fn postgresql() {
    let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
        });
    let db = Traced::new(pool).database("test").server("127.0.0.1:5432");
    conformance::run("sqlx on PostgreSQL", &mut Sqlx(db)).await;
}

#[tokio::test]
async fn mariadb() {
    let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
        .await
        .unwrap_or_else(|e| {
            panic!("MariaDB at 127.0.0.1:3306 (user root, database test) is required: {e}")
        });
    let db = Traced::new(pool).database("test").server("127.0.0.1:3306");
    conformance::run("sqlx on MariaDB", &mut Sqlx(db)).await;
}

#[tokio::test]
async fn sqlite() {
    // One connection: every connection to :memory: is a database of its own.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    conformance::run(
        "sqlx on SQLite",
        &mut Sqlx(Traced::new(pool).database("main")),
    )
    .await;
}
