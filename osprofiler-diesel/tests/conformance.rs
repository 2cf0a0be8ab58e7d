//! The `db` point conformance suite (osprofiler-testkit) on diesel: PostgreSQL and SQLite.
//! diesel's instrumentation hook reports no row counts and no SQLSTATE, and sync calls cannot
//! be dropped mid-call: those are the exceptions its `Caps` declare.
use diesel::connection::{DefaultLoadingMode, SimpleConnection};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use osprofiler_core::db::DbTarget;
use osprofiler_testkit::conformance::{self, Adapter, Caps};

struct Diesel<C>(C, &'static str);

#[derive(QueryableByName)]
#[allow(dead_code)]
struct Row {
    #[diesel(sql_type = Integer)]
    id: i32,
}

macro_rules! adapter {
    ($conn:ty) => {
        impl Diesel<$conn> {
            fn insert(conn: &mut $conn, sql: &str, id: i64) -> QueryResult<usize> {
                diesel::sql_query(sql)
                    .bind::<Integer, _>(i32::try_from(id).unwrap())
                    .bind::<Text, _>("t")
                    .execute(conn)
            }
        }

        impl Adapter for Diesel<$conn> {
            fn system(&self) -> &'static str {
                self.1
            }
            fn caps(&self) -> Caps {
                Caps {
                    rows: false,
                    error_code: false,
                    cancel: false,
                }
            }
            async fn setup(&mut self, sql: &str) {
                self.0.batch_execute(sql).unwrap();
            }
            async fn select(&mut self, sql: &str, name: &str) -> usize {
                diesel::sql_query(sql)
                    .bind::<Text, _>(name)
                    .load::<Row>(&mut self.0)
                    .unwrap()
                    .len()
            }
            async fn select_raw(&mut self, sql: &str) -> usize {
                diesel::sql_query(sql)
                    .load::<Row>(&mut self.0)
                    .unwrap()
                    .len()
            }
            async fn batch(&mut self, sql: &str) {
                self.0.batch_execute(sql).unwrap();
            }
            async fn update(&mut self, sql: &str, name: &str, id: i64) -> u64 {
                diesel::sql_query(sql)
                    .bind::<Text, _>(name)
                    .bind::<Integer, _>(i32::try_from(id).unwrap())
                    .execute(&mut self.0)
                    .unwrap() as u64
            }
            async fn fail(&mut self, sql: &str) -> String {
                diesel::sql_query(sql)
                    .execute(&mut self.0)
                    .unwrap_err()
                    .to_string()
            }
            async fn cancel(&mut self, _: &str) {
                unreachable!("sync diesel cannot drop a call midway")
            }
            async fn transaction(&mut self, sql: &str, id: i64, commit: bool) {
                let r = self.0.transaction::<(), diesel::result::Error, _>(|c| {
                    Self::insert(c, sql, id)?;
                    if commit {
                        Ok(())
                    } else {
                        Err(diesel::result::Error::RollbackTransaction)
                    }
                });
                assert_eq!(r.is_ok(), commit);
            }
            async fn savepoint(&mut self, sql: &str, id: i64) {
                self.0
                    .transaction::<(), diesel::result::Error, _>(|c| {
                        let inner = c.transaction::<(), diesel::result::Error, _>(|c| {
                            Self::insert(c, sql, id)?;
                            Err(diesel::result::Error::RollbackTransaction)
                        });
                        assert!(inner.is_err());
                        Ok(())
                    })
                    .unwrap();
            }
            async fn stream(&mut self, sql: &str) -> usize {
                diesel::sql_query(sql)
                    .load_iter::<Row, DefaultLoadingMode>(&mut self.0)
                    .unwrap()
                    .map(Result::unwrap)
                    .count()
            }
        }
    };
}

adapter!(PgConnection);
adapter!(SqliteConnection);

#[tokio::test]
async fn postgresql() {
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let mut conn = PgConnection::establish(url).unwrap_or_else(|e| {
        panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
    });
    osprofiler_diesel::instrument_with(&mut conn, osprofiler_diesel::target_of_url(url));
    conformance::run("diesel on PostgreSQL", &mut Diesel(conn, "postgresql")).await;
}

#[tokio::test]
async fn sqlite() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    osprofiler_diesel::instrument_with(&mut conn, DbTarget::new("sqlite").namespace("main"));
    conformance::run("diesel on SQLite", &mut Diesel(conn, "sqlite")).await;
}
