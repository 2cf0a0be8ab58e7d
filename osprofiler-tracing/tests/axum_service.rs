//! An axum + sqlx service instrumented with `tracing`: tower-http's request span is a child of
//! the `wsgi` point, `#[instrument]` spans nest under it, the DB adapter's points under the
//! instrumented function that made them; a failing query fails the spans it went through.
//! One global subscriber: one test in this file.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Router, routing::get};
use osprofiler_core as osp;
use osprofiler_http::{OsProfilerLayer, TraceMiddleware};
use osprofiler_sqlx::Traced;
use osprofiler_testkit::{all_stopped, one, stop_of, wait_for_messages};
use serde_json::Value;
use sqlx::SqlitePool;
use tower_http::trace::TraceLayer;
use tracing::instrument;
use tracing_subscriber::prelude::*;

type Db = Traced<SqlitePool>;

#[instrument(skip(db))]
async fn get_user(State(db): State<Db>, Path(id): Path<i64>) -> Result<String, StatusCode> {
    find_name(&db, id)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

#[instrument(skip(db), err, fields(osprofiler.point = "repository"))]
async fn find_name(db: &Db, id: i64) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
}

fn start_of<'a>(msgs: &'a [Value], function: &str) -> &'a Value {
    msgs.iter()
        .find(|m| m["info"]["function"]["name"] == function)
        .unwrap_or_else(|| panic!("no point of {function} in {msgs:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrumented_axum_sqlx_service_forms_one_tree() {
    osprofiler_testkit::collector();
    tracing_subscriber::registry()
        .with(osprofiler_tracing::layer())
        .init();

    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (7, 'alice')")
        .execute(&pool)
        .await
        .unwrap();
    let app = Router::new()
        .route("/users/{id}", get(get_user))
        .with_state(Traced::new(pool))
        .layer(TraceLayer::new_for_http())
        .layer(OsProfilerLayer::new(["k"]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/users", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TraceMiddleware::new())
        .build();

    let request = |id: u32| {
        let (client, url) = (client.clone(), url.clone());
        osp::trace_scope(async move {
            let p = osp::init("k", None, None).unwrap();
            let status = client
                .get(format!("{url}/{id}"))
                .send()
                .await
                .unwrap()
                .status();
            // tower-http's span closes when the response body is done, just after: wait for
            // every point to stop (a blocking wait, off the runtime's threads).
            let base = p.base_id().to_string();
            let msgs = tokio::task::spawn_blocking(move || {
                wait_for_messages(&base, std::time::Duration::from_secs(10), all_stopped)
            })
            .await
            .unwrap();
            (status, msgs)
        })
    };

    let (status, msgs) = request(7).await;
    assert_eq!(status, 200);
    let http = one(&msgs, "http-start");
    let wsgi = one(&msgs, "wsgi-start");
    let request_span = start_of(&msgs, "tower_http::trace::make_span::request");
    let handler = start_of(&msgs, "axum_service::get_user");
    let repository = one(&msgs, "repository-start");
    let db = one(&msgs, "db-start");
    assert_eq!(wsgi["parent_id"], http["trace_id"]);
    assert_eq!(
        request_span["parent_id"], wsgi["trace_id"],
        "TraceLayer's span under wsgi"
    );
    assert_eq!(request_span["info"]["fields"]["method"], "GET");
    assert_eq!(handler["parent_id"], request_span["trace_id"]);
    assert_eq!(handler["info"]["fields"]["id"], "7"); // a pattern argument: Debug text
    assert_eq!(repository["parent_id"], handler["trace_id"]);
    assert_eq!(
        db["parent_id"], repository["trace_id"],
        "the adapter's point under find_name"
    );
    for start in [request_span, handler, repository] {
        assert!(stop_of(&msgs, start)["info"].get("etype").is_none());
    }
    // Every start has its stop: 6 points, and the report built from them is one chain.
    assert_eq!(msgs.len(), 12, "{msgs:#?}");
    let report = osprofiler_core::report::Report::build(&msgs);
    let mut node = report.to_value();
    for name in ["http", "wsgi", "span", "span", "repository", "db"] {
        assert_eq!(
            node["children"].as_array().map(Vec::len),
            Some(1),
            "{node:#}"
        );
        node = &node["children"][0];
        assert_eq!(node["info"]["name"], name, "{node:#}");
    }

    // A query that finds nothing: find_name (`err`: an ERROR event with the error) and the
    // request span (tower-http's ERROR event for the 500) stop as errors.
    let (status, msgs) = request(999).await;
    assert_eq!(status, 500);
    let repository = one(&msgs, "repository-start");
    let failed = stop_of(&msgs, repository);
    assert_eq!(failed["info"]["etype"], "Error");
    assert!(
        failed["info"]["message"]
            .as_str()
            .unwrap()
            .contains("no rows"),
        "{failed}"
    );
    let request_span = start_of(&msgs, "tower_http::trace::make_span::request");
    assert!(stop_of(&msgs, request_span)["info"]["etype"].is_string());
    // The statement itself succeeded (no row is not a DB error): the db point is not failed.
    let db_stop = stop_of(&msgs, one(&msgs, "db-start"));
    assert!(db_stop["info"].get("etype").is_none(), "{db_stop}");
}
