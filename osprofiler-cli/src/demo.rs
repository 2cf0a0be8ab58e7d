//! `osprofiler demo`: two services, one trace, no set-up.
//!
//! The `api` service (in this process) and the `worker` service (a child process running
//! `osprofiler demo-worker`) listen on loopback. A traced request to the API makes it query its
//! SQLite database through the sqlx, sea-orm and diesel adapters and call the worker over HTTP
//! with signed trace headers; the worker does the same on its own database, with a
//! transaction. Both processes send their points to one collector (the embedded SQLite file by
//! default), and the demo prints the stored trace as a tree.
//!
//! The API has the faults a profiler should find: it lists an order's 20 lines and then reads
//! each line's product with a query of its own (an N+1), and it reads the order's customer
//! twice with the same value (a duplicate). The worker runs one slow statement (a stock
//! forecast of about 40 ms in a release build), which holds the whole request up behind the
//! HTTP hop (the critical path). `osprofiler trace analyze` names all three.

use crate::CliError;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use diesel::{Connection as _, RunQueryDsl as _};
use osprofiler_core::{self as osp, ProfilerConfig};
use osprofiler_http::{OsProfilerLayer, TraceMiddleware};
use sea_orm::{ConnectionTrait as _, TransactionSession as _, TransactionTrait as _};
use serde_json::Value;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The key both demo services sign and verify trace headers with.
pub const DEMO_KEY: &str = "demo-key";

/// What a demo run produced.
#[derive(Debug)]
pub struct DemoRun {
    /// The trace's id.
    pub base_id: String,
    /// The stored trace's report, read back from the collector.
    pub report: Value,
}

fn conf(connection_string: &str) -> ProfilerConfig {
    ProfilerConfig::builder()
        .enabled(true)
        .trace_sql(true)
        .hmac_keys([DEMO_KEY])
        .connection_string(connection_string)
        .build()
}

fn fail(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError(format!("demo: {what}: {e}"))
}

/// One service's databases: the same SQLite file through each adapter.
struct Dbs {
    sqlx: osprofiler_sqlx::Traced<sqlx::SqlitePool>,
    sea: osprofiler_sea_orm::Traced<sea_orm::DatabaseConnection>,
    diesel: Arc<Mutex<diesel::SqliteConnection>>,
}

async fn open_dbs(file: &FsPath, schema: &[&str]) -> Result<Dbs, CliError> {
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("demo")
        .to_owned();
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = sqlx::SqlitePool::connect_with(opts)
        .await
        .map_err(|e| fail("open the sqlx pool", e))?;
    // Schema and data set up before any trace exists: no points.
    for stmt in schema {
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.to_string()))
            .execute(&pool)
            .await
            .map_err(|e| fail("create the demo schema", e))?;
    }
    let sea = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", file.display()))
        .await
        .map_err(|e| fail("open the sea-orm connection", e))?;
    let url = file.display().to_string();
    let mut diesel = diesel::SqliteConnection::establish(&url)
        .map_err(|e| fail("open the diesel connection", e))?;
    osprofiler_diesel::instrument_with(
        &mut diesel,
        osp::db::DbTarget::new("sqlite").namespace(name.clone()),
    );
    Ok(Dbs {
        sqlx: osprofiler_sqlx::Traced::new(pool).database(name.clone()),
        sea: osprofiler_sea_orm::Traced::new(sea).database(name),
        diesel: Arc::new(Mutex::new(diesel)),
    })
}

/// Runs a diesel statement on the blocking pool, inside the caller's trace.
async fn diesel_exec(db: &Dbs, sql: &'static str) -> Result<usize, String> {
    let conn = db.diesel.clone();
    osp::spawn_blocking_traced(move || {
        let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
        diesel::sql_query(sql).execute(&mut *c)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

fn client() -> reqwest_middleware::ClientWithMiddleware {
    let inner = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_default();
    reqwest_middleware::ClientBuilder::new(inner)
        .with(TraceMiddleware::new())
        .build()
}

/// Serves `app` on a loopback port until `shutdown` completes; returns the address and the
/// server's task.
async fn serve(
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), CliError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| fail("listen on 127.0.0.1", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| fail("listen on 127.0.0.1", e))?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok((addr, task))
}

// ----- the worker service (child process) -----

const WORKER_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS stock (item TEXT PRIMARY KEY, qty INTEGER NOT NULL, reserved INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS reservations (id INTEGER PRIMARY KEY, item TEXT NOT NULL)",
    "INSERT OR IGNORE INTO stock (item, qty) VALUES ('widget', 42), ('gadget', 7)",
];

/// The worker's slow statement: a forecast that counts through 300,000 rows (about 40 ms in a
/// release build).
const FORECAST: &str = "WITH RECURSIVE days(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM days WHERE n < 300000) SELECT count(*) FROM days";

async fn stock(State(db): State<Arc<Dbs>>, Path(item): Path<String>) -> Result<String, String> {
    let qty: Option<i64> = sqlx::query_scalar("SELECT qty FROM stock WHERE item = ?")
        .bind(&item)
        .fetch_optional(&db.sqlx)
        .await
        .map_err(|e| e.to_string())?;
    diesel_exec(
        &db,
        "UPDATE stock SET reserved = reserved + 1 WHERE item = 'widget'",
    )
    .await?;
    let _forecast: i64 = sqlx::query_scalar(FORECAST)
        .fetch_one(&db.sqlx)
        .await
        .map_err(|e| e.to_string())?;
    let tx = db.sea.begin().await.map_err(|e| e.to_string())?;
    tx.execute_unprepared("INSERT INTO reservations (item) VALUES ('widget')")
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(format!("{item}: {}", qty.unwrap_or(0)))
}

/// `osprofiler demo-worker`: serves the worker until `POST /shutdown`, printing
/// `PORT <n>` on stdout once it listens; flushes its points before exiting.
pub async fn worker_main(connection_string: &str, dir: &FsPath) -> Result<(), CliError> {
    let guard =
        osprofiler_collectors::init_from_conf(&conf(connection_string), "demo", "worker", None)
            .map_err(|e| CliError(e.to_string()))?;
    let db = Arc::new(open_dbs(&dir.join("worker.db"), WORKER_SCHEMA).await?);
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::mpsc::channel::<()>(1);
    let app = Router::new()
        .route("/stock/{item}", get(stock))
        .with_state(db)
        .layer(OsProfilerLayer::new([DEMO_KEY]))
        .route(
            "/shutdown",
            post(move || {
                let tx = shutdown_tx.clone();
                async move {
                    let _ = tx.send(()).await;
                    "bye"
                }
            }),
        );
    let (addr, task) = serve(app, async move {
        let _ = shutdown_rx.recv().await;
    })
    .await?;
    println!("PORT {}", addr.port());
    let _ = task.await;
    if !guard.flush(Duration::from_secs(10)) {
        return Err(CliError(
            "demo worker: could not deliver its points to the collector".into(),
        ));
    }
    Ok(())
}

// ----- the API service (this process) -----

const API_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL, seen INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    "INSERT OR IGNORE INTO orders (id, item, qty) VALUES (1, 'widget', 3)",
    "INSERT OR IGNORE INTO customers (id, name) VALUES (1, 'ada'), (2, 'grace')",
    "CREATE TABLE IF NOT EXISTS products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS order_lines (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, product_id INTEGER NOT NULL, qty INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO products (id, name, price) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20) SELECT x, 'part-' || x, 3 * x FROM n",
    "INSERT OR IGNORE INTO order_lines (id, order_id, product_id, qty) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20) SELECT x, 1, x, 1 + x % 3 FROM n",
];

/// How many lines order 1 has: the N+1 loop runs this many per-row queries.
pub const ORDER_LINES: usize = 20;

/// The order's customer: called twice per request with the same id (a duplicate query).
async fn customer_name(db: &Dbs, id: i64) -> Result<String, String> {
    sqlx::query_scalar("SELECT name FROM customers WHERE id = ?")
        .bind(id)
        .fetch_one(&db.sqlx)
        .await
        .map_err(|e| e.to_string())
}

#[derive(Clone)]
struct Api {
    db: Arc<Dbs>,
    worker: String,
    client: reqwest_middleware::ClientWithMiddleware,
}

async fn order(State(api): State<Api>, Path(id): Path<i64>) -> Result<String, String> {
    let item: String = sqlx::query_scalar("SELECT item FROM orders WHERE id = ?")
        .bind(id)
        .fetch_one(&api.db.sqlx)
        .await
        .map_err(|e| e.to_string())?;
    let customer = customer_name(&api.db, 1).await?;
    // The lines, then each line's product with a query of its own: the N+1 to find.
    let lines: Vec<(i64, i64)> =
        sqlx::query_as("SELECT product_id, qty FROM order_lines WHERE order_id = ? ORDER BY id")
            .bind(id)
            .fetch_all(&api.db.sqlx)
            .await
            .map_err(|e| e.to_string())?;
    let mut total = 0;
    for (product, qty) in &lines {
        let price: i64 = sqlx::query_scalar("SELECT price FROM products WHERE id = ?")
            .bind(product)
            .fetch_one(&api.db.sqlx)
            .await
            .map_err(|e| e.to_string())?;
        total += price * qty;
    }
    // The same customer again, for the invoice: the duplicate to find.
    let invoice_to = customer_name(&api.db, 1).await?;
    let customers = api
        .db
        .sea
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT id, name FROM customers ORDER BY id",
        ))
        .await
        .map_err(|e| e.to_string())?;
    diesel_exec(&api.db, "UPDATE orders SET seen = seen + 1 WHERE id = 1").await?;
    let stock = api
        .client
        .get(format!("{}/stock/{item}", api.worker))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "order {id} for {customer} (invoice to {invoice_to}): {item}, {} lines, total {total} \
         ({} customers; stock {stock})",
        lines.len(),
        customers.len()
    ))
}

/// Starts the worker process (`exe demo-worker`) and waits for its port.
fn spawn_worker(
    exe: &FsPath,
    connection_string: &str,
    dir: &FsPath,
) -> Result<(std::process::Child, String), CliError> {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(exe)
        .args([
            "demo-worker",
            "--connection-string",
            connection_string,
            "--dir",
        ])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail("start the worker process", e))?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    match line.trim().strip_prefix("PORT ") {
        Some(port) => Ok((child, format!("http://127.0.0.1:{port}"))),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(CliError(
                "demo: the worker process did not start (see its error above)".into(),
            ))
        }
    }
}

/// Runs the demo: both services, one traced request, the trace read back from the collector.
/// `exe` is the `osprofiler` binary (it runs the worker); `dir` holds the services' databases.
pub async fn run(exe: &FsPath, connection_string: &str, dir: &FsPath) -> Result<DemoRun, CliError> {
    let lower = connection_string.to_ascii_lowercase();
    if lower.starts_with("sqlite://:memory:") || lower == "sqlite://" {
        return Err(CliError(
            "demo: an in-memory SQLite collector cannot be shared by the demo's two processes; \
             use a file (sqlite://osprofiler.db)"
                .into(),
        ));
    }
    if lower.starts_with("otlp://") {
        return Err(CliError(
            "demo: the otlp:// collector exports spans but cannot read them back for the tree; \
             send the demo to sqlite://, postgresql://, redis:// or messaging://"
                .into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail("create the demo directory", e))?;
    let guard =
        osprofiler_collectors::init_from_conf(&conf(connection_string), "demo", "api", None)
            .map_err(|e| CliError(e.to_string()))?;
    let (mut worker, worker_url) = spawn_worker(exe, connection_string, dir)?;
    let result = async {
        let db = Arc::new(open_dbs(&dir.join("api.db"), API_SCHEMA).await?);
        let api = Api {
            db,
            worker: worker_url.clone(),
            client: client(),
        };
        let app = Router::new()
            .route("/orders/{id}", get(order))
            .with_state(api)
            .layer(OsProfilerLayer::new([DEMO_KEY]));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr, task) = serve(app, async {
            let _ = stopped.await;
        })
        .await?;
        let api_url = format!("http://{addr}");

        // The caller: starts the trace and sends signed headers, as `openstack --profile` does.
        let (base_id, body) = osp::trace_scope(async {
            let p = osp::init(DEMO_KEY, None, None)
                .ok_or_else(|| CliError("profiling is disabled".into()))?;
            let headers =
                osp::trace_headers().ok_or_else(|| CliError("no trace headers".into()))?;
            let mut req = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default()
                .get(format!("{api_url}/orders/1"));
            for (k, v) in headers.pairs() {
                req = req.header(k, v);
            }
            let resp = req.send().await.map_err(|e| fail("call the API", e))?;
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(CliError(format!("demo: the API answered {status}: {body}")));
            }
            Ok::<_, CliError>((p.base_id().to_string(), body))
        })
        .await?;
        let _ = stop.send(());
        let _ = task.await;
        Ok::<_, CliError>((base_id, body))
    }
    .await;
    let _ = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_default()
        .post(format!("{worker_url}/shutdown"))
        .send()
        .await;
    let worker_ok = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|s| s.success());
    let (base_id, body) = result?;
    if !worker_ok {
        return Err(CliError(
            "demo: the worker process failed (see its error above)".into(),
        ));
    }
    if !guard.flush(Duration::from_secs(10)) {
        return Err(CliError(format!(
            "demo: could not deliver the points to {}",
            osprofiler_core::config::redact(connection_string)
        )));
    }
    let _ = body;
    let report = crate::load_report(&base_id, connection_string, Default::default())?;
    Ok(DemoRun { base_id, report })
}

/// A directory for the demo's databases under the system's temporary directory.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("osprofiler-demo-{}", std::process::id()))
}
