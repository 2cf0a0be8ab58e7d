//! The quickstart: an axum + sqlx service already instrumented with `tracing`. Its
//! `#[instrument]` spans, tower-http's request span and its DB calls form one OSProfiler tree,
//! stored in the embedded SQLite collector and printed.
//!
//! Run: `cargo run -p osprofiler-tracing --example axum_sqlx`
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Router, routing::get};
use osprofiler_core::report::{Report, ReportOptions};
use osprofiler_core::{self as osp, ProfilerConfig};
use osprofiler_http::{OsProfilerLayer, TraceMiddleware};
use osprofiler_sqlx::Traced;
use sqlx::SqlitePool;
use std::time::Duration;
use tower_http::trace::TraceLayer;
use tracing::instrument;
use tracing_subscriber::filter::{LevelFilter, Targets};
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One subscriber: logs as before, and spans inside OSProfiler traces become points.
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(LevelFilter::INFO))
        .with(
            osprofiler_tracing::layer().with_filter(
                Targets::new()
                    .with_default(LevelFilter::DEBUG)
                    .with_target("hyper", LevelFilter::OFF),
            ),
        )
        .init();

    // The [profiler] options; points go to an SQLite file (the embedded default collector).
    let db_file = std::env::temp_dir().join(format!("osp-axum-sqlx-{}.db", std::process::id()));
    let conf = ProfilerConfig::builder()
        .enabled(true)
        .hmac_keys(["SECRET_KEY"])
        .trace_sql(true)
        .connection_string(format!("sqlite://{}", db_file.display()))
        .build();
    let collector = osprofiler_collectors::init_from_conf(&conf, "demo", "users-api", None)?;

    // The service: sqlx behind `Traced`, tower-http's TraceLayer inside OsProfilerLayer.
    let pool = SqlitePool::connect("sqlite::memory:").await?;
    sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (7, 'alice')")
        .execute(&pool)
        .await?;
    let app = Router::new()
        .route("/users/{id}", get(get_user))
        .with_state(Traced::new(pool))
        .layer(TraceLayer::new_for_http())
        .layer(OsProfilerLayer::from_conf(&conf));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/users/7", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A caller inside a trace, as another service would call it: signed headers.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TraceMiddleware::new())
        .build();
    let base_id = osp::trace_scope(async {
        let p = osp::init("SECRET_KEY", None, None).expect("profiling is on");
        let name = client.get(&url).send().await?.text().await?;
        assert_eq!(name, "alice");
        Ok::<_, Box<dyn std::error::Error>>(p.base_id().to_string())
    })
    .await?;

    // Read the trace back from the collector and show it.
    tokio::time::sleep(Duration::from_millis(100)).await; // the request span closes after the body
    collector.flush(Duration::from_secs(5));
    let driver = osprofiler_collectors::open_reader(&conf.connection_string, &conf)?;
    let report = Report::build_owned(driver.trace_messages(&base_id)?, ReportOptions::default());
    print!("{}", Report::render_tree_of(report.to_value()));
    let _ = std::fs::remove_file(&db_file);

    // http -> wsgi -> span (tower-http request) -> span (get_user) -> repository -> db
    let mut node = report.to_value();
    for name in ["http", "wsgi", "span", "span", "repository", "db"] {
        node = &node["children"][0];
        assert_eq!(node["info"]["name"], name, "{node:#}");
    }
    Ok(())
}
