//! sea-orm against real databases (SQLite in memory and in a file, PostgreSQL): entity finds,
//! inserts with parameters, a failing statement, transactions committed and rolled back,
//! streams read fully and dropped early, with trace_sql off, on, and on with params.
use futures_util::StreamExt;
use osprofiler_core::{self as osp, dispatch::DispatchFutureExt};
use osprofiler_sea_orm::Traced;
use osprofiler_testkit::*;
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};

mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "osp_sea_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The scenario, with a collector of its own and `trace_sql` set in its own scopes: the
/// scenarios of this file run in parallel (SQLite in memory, in a file, PostgreSQL).
async fn scenario(db: DatabaseConnection, system: &str) {
    let c = Collector::new();
    let db = Traced::new(db).database("test");
    db.inner()
        .execute_unprepared("DROP TABLE IF EXISTS osp_sea_users")
        .await
        .unwrap();
    db.inner()
        .execute_unprepared(
            "CREATE TABLE osp_sea_users (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL)",
        )
        .await
        .unwrap();

    for (n, (sql, params)) in [(false, false), (true, false), (true, true)]
        .into_iter()
        .enumerate()
    {
        let scope = c.dispatch().trace_sql(sql).trace_sql_params(params);
        let msgs = c
            .traced_run(&scope, async {
                user::ActiveModel {
                    id: Set(n as i32),
                    name: Set("secret-value".into()),
                }
                .insert(&db)
                .await
                .unwrap();
                let all = user::Entity::find().all(&db).await.unwrap();
                assert_eq!(all.len(), n + 1);
            })
            .await;
        let points = db_points(&msgs);
        let apis: Vec<&str> = points.iter().map(|p| p.0.as_str()).collect();
        assert!(
            apis.len() >= 2 && apis.iter().all(|a| *a == "query"),
            "{apis:?}"
        );
        assert_eq!(points.last().unwrap().2, json!(n + 1));
        let start = &msgs.iter().find(|m| m["name"] == "db-start").unwrap()["info"]["db"];
        assert_eq!(start["system"], system);
        assert_eq!(
            points.iter().all(|p| p.1.is_some()),
            sql,
            "statement only with trace_sql"
        );
        if sql {
            assert!(points[0].1.as_deref().unwrap().contains("INSERT INTO"));
        }
        assert_eq!(
            serde_json::to_string(&msgs)
                .unwrap()
                .contains("secret-value"),
            params,
            "values only with trace_sql_params"
        );
    }
    let sql = c.dispatch().trace_sql(true);

    // A failing statement.
    let msgs = c
        .traced_run(&sql, async {
            assert!(
                db.execute_unprepared("SELECT * FROM no_such_table_here")
                    .await
                    .is_err()
            );
        })
        .await;
    let stop = msgs.iter().find(|m| m["name"] == "db-stop").unwrap();
    assert_eq!(stop["info"]["etype"], "sea_orm::error::DbErr");
    assert!(
        stop["info"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_table_here")
    );

    // Transactions: the closure form commits or rolls back, and the transaction stays traced.
    let msgs = c
        .traced_run(&sql, async {
            db.transaction::<_, (), DbErr>(|tx| {
                Box::pin(async move {
                    user::ActiveModel {
                        id: Set(10),
                        name: Set("a".into()),
                    }
                    .insert(tx)
                    .await?;
                    Ok(())
                })
            })
            .await
            .unwrap();
            let r = db
                .transaction::<_, (), DbErr>(|tx| {
                    Box::pin(async move {
                        user::ActiveModel {
                            id: Set(11),
                            name: Set("b".into()),
                        }
                        .insert(tx)
                        .await?;
                        Err(DbErr::Custom("changed my mind".into()))
                    })
                })
                .await;
            assert!(r.is_err());
        })
        .await;
    let apis: Vec<String> = db_points(&msgs).into_iter().map(|p| p.0).collect();
    assert_eq!(apis.first().map(String::as_str), Some("begin"));
    assert!(
        apis.contains(&"commit".to_owned()) && apis.contains(&"rollback".to_owned()),
        "{apis:?}"
    );
    assert_eq!(apis.iter().filter(|a| *a == "begin").count(), 2);
    let ids: Vec<i32> = user::Entity::find()
        .all(db.inner())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert!(ids.contains(&10) && !ids.contains(&11));

    // Streams: read fully, then dropped early.
    let msgs = c
        .traced_run(&sql, async {
            let all: Vec<_> = user::Entity::find()
                .stream(&db)
                .await
                .unwrap()
                .collect()
                .await;
            assert_eq!(all.len(), 4);
            let mut s = user::Entity::find().stream(&db).await.unwrap();
            s.next().await.unwrap().unwrap();
            drop(s);
        })
        .await;
    let stops: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-stop").collect();
    assert_eq!(stops.len(), 2, "{msgs:#?}");
    assert_eq!(stops[0]["info"]["db"]["rows"], 4);
    assert_eq!(stops[1]["info"]["cancelled"], true);

    db.inner()
        .execute_unprepared("DROP TABLE osp_sea_users")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory() {
    let opts = sea_orm::ConnectOptions::new("sqlite::memory:")
        .max_connections(1)
        .to_owned();
    scenario(sea_orm::Database::connect(opts).await.unwrap(), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_a_file() {
    let path = std::env::temp_dir().join(format!("osp-sea-{}.db", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    scenario(sea_orm::Database::connect(url).await.unwrap(), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql() {
    let db = sea_orm::Database::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
        });
    scenario(db, "postgresql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_traced_tasks_share_one_connection() {
    let c = Collector::new();
    let db = sea_orm::Database::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at 127.0.0.1:5432 (user postgres, database test) is required: {e}")
        });
    let db = std::sync::Arc::new(Traced::new(db));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let db = db.clone();
        tasks.push(tokio::spawn(
            osp::trace_scope(async move {
                let p = osp::init("k", None, None).unwrap();
                let outer = osp::Trace::new("rpc", osp::Info::new);
                let stmt = sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!("SELECT {i} + 1"),
                );
                db.query_all_raw(stmt).await.unwrap();
                (p.base_id().to_string(), outer.id().unwrap().to_string())
            })
            .with_dispatch(c.dispatch()),
        ));
    }
    for t in tasks {
        let (base, outer) = t.await.unwrap();
        let msgs = c.messages_of(&base);
        let starts: Vec<&Value> = msgs.iter().filter(|m| m["name"] == "db-start").collect();
        assert_eq!(starts.len(), 1, "{base}");
        assert_eq!(
            starts[0]["parent_id"],
            outer.as_str(),
            "{base}: no cross-talk"
        );
    }
}
