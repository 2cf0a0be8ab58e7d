//! `Reader::list` on the stores that keep per-trace summaries (SQLite, PostgreSQL,
//! MySQL/MariaDB, Redis): partials written by two services add up, a trace written without
//! summaries (as Python writes) is computed from its messages, and a trace whose first stored
//! entry is garbage is still listed. Needs the lead's PostgreSQL, MariaDB and Redis.
//!
//! The tests change the process-wide identity (the service stamped on messages): they run
//! one at a time (`SERIAL`).

use osprofiler_collectors::{RedisDriver, SqlDriver};
use osprofiler_core::dispatch::{self, Dispatch};
use osprofiler_core::listing::{self, ListFilter, TraceListing};
use osprofiler_core::notifier::{Driver, QueueNotifier, QueueOptions, Reader, Writer};
use osprofiler_core::{self as osp, Trace};
use osprofiler_testkit::WithoutSummaries;
use std::sync::{Arc, Mutex};
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

const PG: &str = "postgresql://postgres@127.0.0.1:5432/test";
const MY: &str = "mysql://root@127.0.0.1:3306/test";
/// A database of its own, so that listing sees only what these tests wrote... and others'.
const REDIS: &str = "redis://127.0.0.1:6379/11";

fn start(w: Arc<dyn Writer>) -> (Arc<QueueNotifier>, Dispatch) {
    let n = QueueNotifier::start(w, QueueOptions::default()).unwrap();
    let d = Dispatch::new(n.clone());
    (n, d)
}

/// A trace across two services: `api` (wsgi → rpc) and `worker` (handler → 2 db, one failing),
/// each with its own notifier on `store`. Returns its base id.
fn two_service_trace(api: &Dispatch, worker: &Dispatch) -> String {
    osp::identity::set_identity(Some("p"), Some("api"), None);
    dispatch::with_default(api, || {
        let p = osp::init("key", None, None).unwrap();
        let root = Trace::new("wsgi", osp::Info::new);
        let rpc = Trace::new("rpc", osp::Info::new);
        let caller = osp::get().unwrap().id().to_string();
        let base = p.base_id().to_string();
        osp::identity::set_identity(Some("p"), Some("worker"), None);
        let (b, w) = (base.clone(), worker.clone());
        std::thread::spawn(move || {
            dispatch::with_default(&w, || {
                osp::init("key", Some(&b), Some(&caller));
                let handler = Trace::new("handler", osp::Info::new);
                Trace::new("db", osp::Info::new).finish();
                let mut failing = Trace::new("db", osp::Info::new);
                failing.error_with("IntegrityError", "duplicate");
                failing.finish();
                handler.finish();
                osp::clean();
            })
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(50)); // a duration worth filtering on
        rpc.finish();
        root.finish();
        osp::clean();
        base
    })
}

/// A trace of one point by `service`.
fn small_trace(d: &Dispatch, service: &str) -> String {
    osp::identity::set_identity(Some("p"), Some(service), None);
    dispatch::with_default(d, || {
        let p = osp::init("key", None, None).unwrap();
        Trace::new("cli", osp::Info::new).finish();
        osp::clean();
        p.base_id().to_string()
    })
}

/// What `list` gives for `ids`, by base id.
fn listed(d: &dyn Driver, filter: &ListFilter, ids: &[&str]) -> Vec<TraceListing> {
    let mut l: Vec<TraceListing> = d
        .list(filter)
        .unwrap()
        .into_iter()
        .filter(|t| ids.contains(&t.base_id.as_str()))
        .collect();
    l.sort_by_key(|t| ids.iter().position(|i| *i == t.base_id));
    l
}

/// Runs the scenario on a store; `garbage` stores an unparsable entry as the trace's first.
fn scenario(open: impl Fn() -> Arc<dyn Driver>, garbage: impl Fn(&str)) -> Vec<String> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (api_n, api) = start(open());
    let (worker_n, worker) = start(open());
    let store = open();
    let (plain_n, plain) = start(Arc::new(WithoutSummaries(open())));

    let shared = two_service_trace(&api, &worker);
    let python = small_trace(&plain, "pysvc");
    let mixed = small_trace(&api, "api");
    let broken = small_trace(&plain, "api");
    for n in [&api_n, &worker_n, &plain_n] {
        assert!(n.flush_for(Duration::from_secs(10)));
    }
    // A Python service adds a point to `mixed`, without a summary.
    osp::identity::set_identity(Some("p"), Some("pysvc"), None);
    dispatch::with_default(&plain, || {
        osp::init("key", Some(&mixed), Some(&mixed));
        Trace::new("late", osp::Info::new).finish();
        osp::clean();
    });
    assert!(plain_n.flush_for(Duration::from_secs(10)));
    garbage(&broken);

    let ids = [&*shared, &*python, &*mixed, &*broken];
    let all = listed(&*store, &ListFilter::default(), &ids);
    assert_eq!(all.len(), 4, "{all:#?}");
    // Each as computed from its stored messages.
    for l in &all {
        let computed = listing::listing_of(&l.base_id, &store.trace_messages(&l.base_id).unwrap());
        assert_eq!(*l, computed);
    }
    let s = &all[0];
    assert_eq!(s.root.as_deref(), Some("wsgi"));
    assert_eq!(s.services, ["api", "worker"]);
    assert_eq!((s.points, s.db_statements, s.errors), (5, 2, 1));
    assert_eq!(s.error_type.as_deref(), Some("IntegrityError"));
    assert!(s.duration_ms >= 50.0 && s.db_ms > 0.0, "{s:?}");
    assert_eq!(
        (all[1].root.as_deref(), &all[1].services[..]),
        (Some("cli"), &["pysvc".to_string()][..])
    );
    assert_eq!(
        (all[2].points, &all[2].services[..]),
        (2, &["api".to_string(), "pysvc".to_string()][..])
    );
    assert_eq!(
        all[3].points, 1,
        "a garbage first entry does not hide the trace"
    );

    let only = |f: ListFilter| -> Vec<String> {
        listed(&*store, &f, &ids)
            .into_iter()
            .map(|t| t.base_id)
            .collect()
    };
    let worker_only = ListFilter {
        service: Some("worker".into()),
        ..ListFilter::default()
    };
    assert_eq!(only(worker_only), std::slice::from_ref(&shared));
    let errors = ListFilter {
        errors_only: true,
        ..ListFilter::default()
    };
    assert_eq!(only(errors), std::slice::from_ref(&shared));
    let slow = ListFilter {
        min_duration_ms: Some(50.0),
        ..ListFilter::default()
    };
    assert_eq!(only(slow), std::slice::from_ref(&shared));
    drop((api_n, worker_n, plain_n));
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn sqlite_summaries() {
    let path = std::env::temp_dir().join(format!("osp-list-{}.db", uuid::Uuid::new_v4()));
    let cs = format!("sqlite://{}", path.display());
    let open = || Arc::new(SqlDriver::open(&cs).unwrap()) as Arc<dyn Driver>;
    let ids = scenario(open, |id| garbage_row(&path, id));
    // Two partials (one per service) for the shared trace, none for Python's.
    let conn = rusqlite_count(&path, &ids[0]);
    assert_eq!(conn, 2);
    assert_eq!(rusqlite_count(&path, &ids[1]), 0);
    // A reader opened read-only lists the same.
    let ro = SqlDriver::open_read_only(&cs).unwrap();
    assert_eq!(ro.list(&ListFilter::default()).unwrap().len(), 4);
    let _ = std::fs::remove_file(&path);
}

/// Rows of `trace_summaries` for `id` (through the driver's own sqlx).
fn rusqlite_count(path: &std::path::Path, id: &str) -> i64 {
    sql(
        path,
        &format!("SELECT COUNT(*) FROM trace_summaries WHERE base_id = '{id}'"),
    )
}

/// Runs `q` on the SQLite file; the first column of the first row, if a number.
fn sql(path: &std::path::Path, q: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Row};
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(q.to_owned()))
            .fetch_all(&mut c)
            .await
            .unwrap();
        rows.first()
            .and_then(|r| r.try_get::<i64, _>(0).ok())
            .unwrap_or(0)
    })
}

/// Puts an unparsable row before the trace's others (lowest id).
fn garbage_row(path: &std::path::Path, id: &str) {
    sql(
        path,
        &format!(
            "INSERT INTO data (id, timestamp, base_id, name, data) VALUES \
             ((SELECT MIN(id) - 1000000 FROM data), 'garbage', '{id}', NULL, 'not json')"
        ),
    );
}

#[test]
fn postgresql_summaries() {
    let open = || Arc::new(SqlDriver::open(PG).unwrap()) as Arc<dyn Driver>;
    let ids = scenario(open, |_| {});
    let d = SqlDriver::open(PG).unwrap();
    for id in ids {
        d.delete_trace(&id).unwrap();
    }
}

#[test]
fn mysql_summaries() {
    let open = || Arc::new(SqlDriver::open(MY).unwrap()) as Arc<dyn Driver>;
    let ids = scenario(open, |_| {});
    let d = SqlDriver::open(MY).unwrap();
    for id in ids {
        d.delete_trace(&id).unwrap();
    }
}

#[test]
fn redis_summaries() {
    let client = redis::Client::open(REDIS).unwrap();
    let open = || Arc::new(RedisDriver::open(REDIS, false).unwrap()) as Arc<dyn Driver>;
    let ids = scenario(open, |id| {
        let mut c = client.get_connection().unwrap();
        // The oldest entry is the list's last.
        let _: () = redis::cmd("RPUSH")
            .arg(format!("osprofiler_opt:{id}"))
            .arg("{not json")
            .query(&mut c)
            .unwrap();
    });
    let mut c = client.get_connection().unwrap();
    let partials: i64 = redis::cmd("LLEN")
        .arg(format!("osprofiler_summary:{}", ids[0]))
        .query(&mut c)
        .unwrap();
    assert_eq!(partials, 2);
    let none: i64 = redis::cmd("EXISTS")
        .arg(format!("osprofiler_summary:{}", ids[1]))
        .query(&mut c)
        .unwrap();
    assert_eq!(none, 0);
    let d = RedisDriver::open(REDIS, false).unwrap();
    for id in ids {
        d.delete_trace(&id).unwrap();
    }
}
