//! Every network collector goes down and comes back under traced load: requests keep being
//! traced while it is unreachable (a TCP proxy in front of the real server cuts every
//! connection and refuses new ones), none of them waits on it, and when it is back everything
//! that fit in the queue is delivered — read back trace by trace from the server itself.
//!
//! PostgreSQL, MariaDB, Redis, MongoDB (SecantusDB), RabbitMQ (`messaging://`), OpenSearch
//! (also hung for real: SIGSTOP, then SIGCONT) and an in-process OTLP receiver. Each test has
//! its own notifier, installed with a scoped dispatch: they run in parallel.

use osprofiler_collectors::{
    ElasticsearchDriver, MessagingDriver, MongoDriver, RedisDriver, SqlDriver,
};
use osprofiler_core::dispatch::{self, Dispatch};
use osprofiler_core::message::Message;
use osprofiler_core::notifier::{DriverError, QueueNotifier, QueueOptions, Reader, Writer};
use osprofiler_core::{self as osp, ProfilerConfig, Trace};
use osprofiler_testkit::proxy::Proxy;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The collector's driver, counting the deliveries the worker starts: a test waits for one
/// started during the outage (it fails, or hangs with the server) instead of for a time.
struct Attempts {
    inner: Arc<dyn Writer>,
    started: Mutex<u64>,
    cv: Condvar,
}

impl Attempts {
    fn count(&self) -> u64 {
        *self.started.lock().unwrap()
    }

    /// Waits until more than `n` deliveries have started; false after `timeout`.
    fn wait_past(&self, n: u64, timeout: Duration) -> bool {
        let (_g, t) = self
            .cv
            .wait_timeout_while(self.started.lock().unwrap(), timeout, |s| *s <= n)
            .unwrap();
        !t.timed_out()
    }
}

impl Writer for Attempts {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        *self.started.lock().unwrap() += 1;
        self.cv.notify_all();
        self.inner.notify(batch)
    }
}

/// `n` traced requests, each a `wsgi` point with a `db` point inside; their base ids, and the
/// longest any of them took. A request every 3 ms: the load goes on while the worker delivers,
/// fails and retries (the pause shapes the load; nothing waits on it).
fn traced_load(n: usize, traces: &mut Vec<String>, slowest: &mut Duration) {
    for _ in 0..n {
        let t0 = Instant::now();
        let p = osp::init("SECRET_KEY", None, None).unwrap();
        {
            let _wsgi = Trace::new("wsgi", osp::Info::new);
            drop(Trace::new(
                "db",
                || osp::info!({"db": {"statement": "SELECT 1"}}),
            ));
        }
        osp::clean();
        *slowest = (*slowest).max(t0.elapsed());
        traces.push(p.base_id().to_string());
        std::thread::sleep(Duration::from_millis(3));
    }
}

/// Traced load before, during and after an outage of the collector behind `proxy`;
/// `stored(base_id)` counts what the server holds of a trace afterwards.
fn outage(
    name: &str,
    connection_string: &str,
    proxy: &Proxy,
    per_phase: usize,
    stored: impl Fn(&str) -> usize,
) {
    outage_by(
        name,
        connection_string,
        || proxy.down(),
        || proxy.up(),
        per_phase,
        stored,
    );
}

/// [`outage`] with the fault made by `down` and ended by `up`.
fn outage_by(
    name: &str,
    connection_string: &str,
    down: impl Fn(),
    up: impl Fn(),
    per_phase: usize,
    stored: impl Fn(&str) -> usize,
) {
    static IDENTITY: std::sync::Once = std::sync::Once::new();
    IDENTITY.call_once(|| osp::identity::set_identity(Some("proj"), Some("svc"), None));
    let conf = ProfilerConfig::builder()
        .enabled(true)
        .connection_string(connection_string)
        .socket_timeout(0.5)
        .build();
    // What init_from_conf makes, installed in this test's scope instead of process-wide.
    let driver = Arc::new(Attempts {
        inner: osprofiler_collectors::open(connection_string, &conf)
            .unwrap_or_else(|e| panic!("{name}: {e}")),
        started: Mutex::new(0),
        cv: Condvar::new(),
    });
    let n = QueueNotifier::start(driver.clone(), QueueOptions::default()).unwrap();
    let scope = Dispatch::new(n.clone()).enabled(true);
    let (mut traces, mut slowest) = (Vec::new(), Duration::ZERO);
    let load = |k: usize, traces: &mut Vec<String>, slowest: &mut Duration| {
        dispatch::with_default(&scope, || traced_load(k, traces, slowest))
    };
    load(per_phase, &mut traces, &mut slowest);
    assert!(
        n.flush_for(Duration::from_secs(20)),
        "{name}: delivered while up"
    );
    down();
    let before = driver.count();
    load(per_phase * 2, &mut traces, &mut slowest);
    // The worker tries while the collector is down (and fails, or hangs with the server).
    assert!(
        driver.wait_past(before, Duration::from_secs(30)),
        "{name}: no delivery tried during the outage"
    );
    let during = n.stats();
    up();
    load(per_phase, &mut traces, &mut slowest);
    assert!(
        n.flush_for(Duration::from_secs(60)),
        "{name}: everything delivered once the collector is back"
    );
    let stats = n.stats();
    assert!(
        during.delivered < during.queued,
        "{name}: messages waited during the outage: {during:?}"
    );
    assert_eq!(
        stats.dropped_full + stats.dropped_failed,
        0,
        "{name}: {stats:?}"
    );
    assert!(
        slowest < Duration::from_millis(100),
        "{name}: a traced request waited on the collector: {slowest:?}"
    );
    drop(scope);
    n.shutdown();
    for t in &traces {
        assert_eq!(
            stored(t),
            4,
            "{name}: trace {t}: wsgi and db, start and stop"
        );
    }
}

#[test]
fn postgresql() {
    let proxy = Proxy::start("127.0.0.1:5432");
    let direct = SqlDriver::open("postgresql://postgres@127.0.0.1:5432/test").unwrap();
    outage(
        "PostgreSQL (127.0.0.1:5432)",
        &format!("postgresql://postgres@127.0.0.1:{}/test", proxy.port),
        &proxy,
        40,
        |t| {
            let n = direct.trace_messages(t).unwrap().len();
            direct.delete_trace(t).unwrap();
            n
        },
    );
}

#[test]
fn mariadb() {
    let proxy = Proxy::start("127.0.0.1:3306");
    let direct = SqlDriver::open("mysql://root@127.0.0.1:3306/test").unwrap();
    outage(
        "MariaDB (127.0.0.1:3306)",
        &format!("mysql://root@127.0.0.1:{}/test", proxy.port),
        &proxy,
        40,
        |t| {
            let n = direct.trace_messages(t).unwrap().len();
            direct.delete_trace(t).unwrap();
            n
        },
    );
}

#[test]
fn redis() {
    let proxy = Proxy::start("127.0.0.1:6379");
    let direct = RedisDriver::open("redis://127.0.0.1:6379", false).unwrap();
    outage(
        "Redis (127.0.0.1:6379)",
        &format!("redis://127.0.0.1:{}", proxy.port),
        &proxy,
        40,
        |t| {
            let n = direct.trace_messages(t).unwrap().len();
            direct.delete_trace(t).unwrap();
            n
        },
    );
}

#[test]
fn mongodb() {
    let proxy = Proxy::start("127.0.0.1:27017");
    let direct = MongoDriver::open("mongodb://127.0.0.1:27017", false).unwrap();
    outage(
        "MongoDB (127.0.0.1:27017)",
        &format!("mongodb://127.0.0.1:{}/?directConnection=true", proxy.port),
        &proxy,
        40,
        |t| {
            let n = direct.trace_messages(t).unwrap().len();
            direct.delete_trace(t).unwrap();
            n
        },
    );
}

#[test]
fn rabbitmq() {
    let proxy = Proxy::start("127.0.0.1:5672");
    // Each read sweeps the whole queue: a lighter load.
    let direct = MessagingDriver::open("messaging://")
        .unwrap()
        .consuming(true);
    outage(
        "RabbitMQ (127.0.0.1:5672)",
        &format!("messaging://guest:guest@127.0.0.1:{}/", proxy.port),
        &proxy,
        8,
        |t| direct.trace_messages(t).unwrap().len(),
    );
}

#[test]
fn otlp() {
    use axum::Router;
    use axum::body::Bytes;
    use axum::routing::post;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    use std::sync::Arc;
    let spans: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let store = spans.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                let mut s = store.lock().unwrap();
                for span in req
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                {
                    s.push(span.trace_id.clone());
                }
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let proxy = Proxy::start(&addr.to_string());
    outage(
        "OTLP receiver",
        &format!("otlp://127.0.0.1:{}", proxy.port),
        &proxy,
        40,
        // A span per point: two per trace, each made of a start and a stop.
        |t| {
            let id = uuid::Uuid::parse_str(t).unwrap().as_bytes().to_vec();
            2 * spans.lock().unwrap().iter().filter(|s| **s == id).count()
        },
    );
}

/// OpenSearch behind the proxy (stopped, then back), and the server itself hung: the process
/// listening on 9200 stopped with SIGSTOP for a while, then continued.
#[test]
fn opensearch() {
    const HINT: &str = "OpenSearch (127.0.0.1:9200)";
    let index = format!("osp-outage-{}", uuid::Uuid::new_v4().simple());
    let direct =
        ElasticsearchDriver::open(&format!("elasticsearch://127.0.0.1:9200?index={index}"))
            .unwrap();
    let stored = |t: &str| direct.trace_messages(t).unwrap().len();
    let proxy = Proxy::start("127.0.0.1:9200");
    outage(
        HINT,
        &format!("elasticsearch://127.0.0.1:{}?index={index}", proxy.port),
        &proxy,
        40,
        stored,
    );
    let pid = osprofiler_testkit::pid_listening_on(9200)
        .unwrap_or_else(|| panic!("{HINT}: no process of this machine listens on 9200"));
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{HINT}: kill {sig} {pid}");
    };
    // SIGCONT also if an assertion fails while the server is stopped.
    struct Continue<'a>(&'a dyn Fn(&str));
    impl Drop for Continue<'_> {
        fn drop(&mut self) {
            (self.0)("-CONT");
        }
    }
    let _cont = Continue(&signal);
    outage_by(
        "OpenSearch hung (SIGSTOP)",
        &format!("elasticsearch://127.0.0.1:9200?index={index}"),
        || signal("-STOP"),
        || signal("-CONT"),
        40,
        stored,
    );
    osprofiler_testkit::curl_json(
        HINT,
        "DELETE",
        &format!("http://127.0.0.1:9200/{index}*"),
        None,
    );
}
