//! Query budgets with a real pool: `osprofiler_core::testing::capture_async` around code that
//! queries through `Traced`, as a user's endpoint test would (Django's `assertNumQueries`).

use osprofiler_core::testing::capture_async;
use osprofiler_sqlx::Traced;
use sqlx::SqlitePool;

async fn pool() -> Traced<SqlitePool> {
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    for stmt in [
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        "INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f')",
    ] {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    Traced::new(pool)
}

/// One query per row: what the budget should catch.
async fn names_one_by_one(db: &Traced<SqlitePool>) -> Vec<String> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM items ORDER BY id")
        .fetch_all(db)
        .await
        .unwrap();
    let mut names = Vec::new();
    for id in ids {
        names.push(
            sqlx::query_scalar("SELECT name FROM items WHERE id = ?")
                .bind(id)
                .fetch_one(db)
                .await
                .unwrap(),
        );
    }
    names
}

/// The same in one query.
async fn names_at_once(db: &Traced<SqlitePool>) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM items ORDER BY id")
        .fetch_all(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_budget_passes_one_query_and_catches_the_n_plus_one() {
    let db = pool().await;

    let good = capture_async(names_at_once(&db)).await;
    good.assert_max_statements(1);
    good.assert_no_n_plus_one();
    good.assert_no_duplicates();

    let bad = capture_async(names_one_by_one(&db)).await;
    assert_eq!(bad.db_statements(), 7);
    let a = bad.analysis();
    assert_eq!(a.n_plus_one.len(), 1);
    assert_eq!(a.n_plus_one[0].calls, 6);
    assert_eq!(
        a.n_plus_one[0].fingerprint.as_deref(),
        Some("SELECT name FROM items WHERE id = ?")
    );
    let err = std::panic::catch_unwind(|| bad.assert_no_n_plus_one()).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("6× SELECT name FROM items WHERE id = ?"),
        "{msg}"
    );
    let err = std::panic::catch_unwind(|| bad.assert_max_statements(3)).unwrap_err();
    assert!(
        err.downcast_ref::<String>()
            .unwrap()
            .starts_with("expected at most 3 statements, 7 ran:"),
    );

    // The same row read twice with the same value is a duplicate, told apart by the bound
    // values' digest (not by their text: nothing of them is kept).
    let twice = capture_async(async {
        for _ in 0..2 {
            let _: String = sqlx::query_scalar("SELECT name FROM items WHERE id = ?")
                .bind(3_i64)
                .fetch_one(&db)
                .await
                .unwrap();
        }
    })
    .await;
    let err = std::panic::catch_unwind(|| twice.assert_no_duplicates()).unwrap_err();
    assert!(
        err.downcast_ref::<String>()
            .unwrap()
            .contains("2× SELECT name FROM items WHERE id = ?"),
    );
}
