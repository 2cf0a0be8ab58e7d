//! A service of the tail-keep end-to-end tests (`tests/tests/tail_keep.rs`), configured like a
//! real one: `[profiler]` options from `OSPROFILER_*` variables
//! ([`ProfilerConfig::from_env`]), the collector and the process-wide sampler from
//! [`osprofiler_collectors::init_from_conf`], the server layer from
//! [`OsProfilerLayer::from_conf`].
//!
//! Usage: `tail_service api <service> <worker_url> <python_url>` or
//! `tail_service worker <service>`. Prints its port on stdout, then serves until its stdin is
//! closed (then it flushes the notifier and exits) or it is killed.
//!
//! - `api`: `GET /order?slow=1&fail=1&late=1` calls the worker (`GET <worker_url>/work` with the same
//!   query) and then the Python service (`GET <python_url>/`), through a reqwest client with
//!   [`TraceMiddleware`]; answers 200, or 500 when a downstream call failed. The body is the
//!   base id of the request's trace (empty when untraced).
//! - `worker`: `GET /work` records a `work` point of its own, sleeps 150 ms when `slow=1`,
//!   answers 500 when `fail=1`, else 200; with `late=1` it records a `late_work` point 300 ms
//!   after answering (late async work of the same trace).

use axum::{Router, extract::State, http::StatusCode, http::Uri, routing::get};
use osprofiler_core::{self as osp, Info, ProfilerConfig, TraceFutureExt};
use osprofiler_http::{OsProfilerLayer, TraceMiddleware};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Warnings of the library (a collector that cannot stage, ...) go to stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("tail_service: {}: {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

struct Api {
    client: reqwest_middleware::ClientWithMiddleware,
    worker: String,
    python: String,
}

fn flag(uri: &Uri, name: &str) -> bool {
    uri.query().unwrap_or("").split('&').any(|kv| {
        kv.split_once('=')
            .is_some_and(|(k, v)| k == name && v == "1")
    })
}

fn base_id() -> String {
    osp::get()
        .map(|p| p.base_id().to_string())
        .unwrap_or_default()
}

async fn order(State(api): State<Arc<Api>>, uri: Uri) -> (StatusCode, String) {
    let query = uri.query().unwrap_or("");
    let mut ok = true;
    for url in [
        format!("{}/work?{query}", api.worker),
        format!("{}/", api.python),
    ] {
        match api.client.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.bytes().await;
            }
            _ => ok = false,
        }
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, base_id())
}

async fn work(uri: Uri) -> (StatusCode, String) {
    // A point of the worker's own, inside its `wsgi` point.
    let point = osp::Trace::new("work", || {
        let mut info = Info::new();
        info.insert("job".into(), "order".into());
        info
    });
    if flag(&uri, "slow") {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    point.finish();
    if flag(&uri, "late") {
        // Late async work: a point recorded 300 ms after the response, in the same trace.
        tokio::spawn(
            async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                osp::Trace::new("late_work", Info::new).finish();
            }
            .in_current_trace(),
        );
    }
    let status = if flag(&uri, "fail") {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (status, base_id())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = log::set_logger(&StderrLog).map(|()| log::set_max_level(log::LevelFilter::Warn));
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: tail_service api <service> <worker_url> <python_url> | worker <service>";
    let (role, service) = match (args.get(1), args.get(2)) {
        (Some(r), Some(s)) => (r.as_str(), s.as_str()),
        _ => panic!("{usage}"),
    };
    let conf = ProfilerConfig::from_env().expect("OSPROFILER_* variables");
    let guard = osprofiler_collectors::init_from_conf(&conf, "tail", service, None)
        .unwrap_or_else(|e| panic!("tail_service {service}: init_from_conf: {e}"));
    let app = match role {
        "api" => {
            let client = reqwest_middleware::ClientBuilder::new(
                reqwest::Client::builder().no_proxy().build().unwrap(),
            )
            .with(TraceMiddleware::new())
            .build();
            let api = Arc::new(Api {
                client,
                worker: args.get(3).expect(usage).trim_end_matches('/').to_owned(),
                python: args.get(4).expect(usage).trim_end_matches('/').to_owned(),
            });
            Router::new().route("/order", get(order)).with_state(api)
        }
        "worker" => Router::new().route("/work", get(work)),
        _ => panic!("{usage}"),
    }
    .layer(OsProfilerLayer::from_conf(&conf));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    // Serve until stdin closes (the test dropped its end), then flush what is queued.
    let stdin_closed = async {
        let mut buf = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stdin_closed)
        .await
        .unwrap();
    guard.flush(Duration::from_secs(5));
    drop(guard);
}
