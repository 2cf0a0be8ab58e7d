//! Staging of provisional traces, retention and deletion in Redis (127.0.0.1:6379; scripts/test
//! starts it, and every test fails naming it when it is missing).
//!
//! Tests that count what a sweep or a prune did have a database of their own (3 to 8),
//! emptied first: a sweep or a prune works on a whole database. (Other tests use 11 and 12,
//! and the end-to-end tail keep tests 10 and 13 to 15.) The others use database 0 with fresh
//! base ids.

use osprofiler_collectors::RedisDriver;
use osprofiler_core::dispatch::{self, Dispatch};
use osprofiler_core::headers::{TraceData, signed_pack, signed_unpack};
use osprofiler_core::listing::{ListFilter, PartialSummary};
use osprofiler_core::message::Message;
use osprofiler_core::notifier::{
    Notifier, QueueNotifier, QueueOptions, Reader, TraceState, Writer,
};
use osprofiler_core::sampling::{Provisional, Sampler};
use osprofiler_core::{self as osp, Trace};
use osprofiler_testkit::{poll_until, python};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

const NEEDED: &str = "Redis at 127.0.0.1:6379 is needed (scripts/test starts it)";

fn url(db: u8) -> String {
    format!("redis://127.0.0.1:6379/{db}")
}

/// A raw connection to database `db`.
fn raw(db: u8) -> redis::Connection {
    redis::Client::open(url(db))
        .unwrap()
        .get_connection()
        .expect(NEEDED)
}

/// Database `db`, emptied (only these tests use it).
fn fresh(db: u8) -> redis::Connection {
    let mut c = raw(db);
    let _: () = redis::cmd("FLUSHDB").query(&mut c).expect(NEEDED);
    c
}

/// A driver on database `db` indexing error traces, staging with `window`.
fn staging(db: u8, window: Duration) -> RedisDriver {
    let d = RedisDriver::open(&url(db), true).unwrap();
    d.stage(window).unwrap();
    d
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh id of a provisional trace's form (see `sampling::is_provisional_id`).
fn new_provisional_id() -> String {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[6] = 0x8f;
    bytes[7] = 0x5b;
    let id = uuid::Uuid::from_bytes(bytes).to_string();
    assert!(osprofiler_core::sampling::is_provisional_id(&id), "{id}");
    id
}

/// A notifier that stages (so that provisional callees record), capturing what it gets.
#[derive(Default)]
struct Capture(Mutex<Vec<Message>>);

impl Notifier for Capture {
    fn notify(&self, message: Message) {
        self.0.lock().unwrap().push(message);
    }

    fn stages(&self) -> bool {
        true
    }
}

/// The messages of a `wsgi` point around a `db` point (failed when `error`) in trace `base`,
/// as a callee records them: provisional when `provisional` (its caller said so).
fn points(base: &str, provisional: bool, error: bool) -> Vec<Message> {
    let cap = Arc::new(Capture::default());
    let scope = Dispatch::new(cap.clone()).enabled(true);
    dispatch::with_default(&scope, || {
        let h = signed_pack(
            &TraceData {
                base_id: base.into(),
                parent_id: Some("caller".into()),
            },
            "key",
        );
        let mut v = signed_unpack(&h.x_trace_info, &h.x_trace_hmac, &["key"]).unwrap();
        if provisional {
            v.provisional = Some(Provisional { keep_errors: true });
        }
        v.init().expect("profiling on");
        {
            let _wsgi = Trace::new("wsgi", || osp::info!({"request": {"path": "/staged"}}));
            let mut db = Trace::new("db", || osp::info!({"db": {"statement": "SELECT 1"}}));
            if error {
                db.error_with("OperationalError", "boom");
            }
        }
        osp::clean();
    });
    let msgs = std::mem::take(&mut *cap.0.lock().unwrap());
    assert_eq!(msgs.len(), 4);
    assert!(msgs.iter().all(|m| m.is_provisional() == provisional));
    msgs
}

/// A partial summary of trace `id`'s four messages.
fn summary(id: &str) -> PartialSummary {
    PartialSummary {
        messages: 4,
        points: 2,
        ..PartialSummary::empty(id)
    }
}

fn store(d: &RedisDriver, msgs: &[Message]) {
    d.notify(msgs)
        .unwrap_or_else(|e| panic!("store in {NEEDED}: {e}"));
}

fn listed(d: &RedisDriver, id: &str) -> bool {
    d.list_traces().unwrap().iter().any(|t| t.base_id == id)
}

fn listed_error(d: &RedisDriver, id: &str) -> bool {
    d.list_error_traces()
        .unwrap()
        .iter()
        .any(|t| t.base_id == id)
}

fn listed_by_list(d: &RedisDriver, id: &str, include_pending: bool) -> bool {
    let filter = ListFilter {
        include_pending,
        ..ListFilter::default()
    };
    d.list(&filter).unwrap().iter().any(|t| t.base_id == id)
}

fn pttl(c: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(c).unwrap()
}

fn exists(c: &mut redis::Connection, key: &str) -> bool {
    redis::cmd("EXISTS").arg(key).query::<i64>(c).unwrap() == 1
}

/// What Python OSProfiler's driver does with a message: `LPUSH osprofiler_opt:<base_id>`.
fn python_style_push(c: &mut redis::Connection, base: &str, timestamp: &str, name: &str) {
    let m = serde_json::json!({
        "name": name, "base_id": base, "trace_id": new_id(), "parent_id": base,
        "timestamp": timestamp, "info": {"host": "py"}, "project": "p", "service": "s",
    });
    let _: () = redis::cmd("LPUSH")
        .arg(format!("osprofiler_opt:{base}"))
        .arg(m.to_string())
        .query(c)
        .unwrap();
}

#[test]
fn a_pending_trace_is_hidden_until_kept_and_stays_shown() {
    let window = Duration::from_secs(60);
    let d = staging(0, window);
    let mut c = raw(0);
    let (p, q, n) = (new_id(), new_id(), new_id());

    store(&d, &points(&p, true, true));
    store(&d, &points(&n, false, false));
    assert_eq!(
        d.trace_messages(&p).unwrap().len(),
        4,
        "stored as any trace"
    );
    assert_eq!(d.trace_state(&p).unwrap(), TraceState::Pending);
    assert!(!listed(&d, &p) && !listed_error(&d, &p));
    assert!(!listed_by_list(&d, &p, false));
    assert!(listed_by_list(&d, &p, true), "shown with include_pending");
    // The safety net: a pending trace's keys expire within three windows.
    for k in ["osprofiler_opt:", "osprofiler_error:", "osprofiler_state:"] {
        let ttl = pttl(&mut c, &format!("{k}{p}"));
        assert!(ttl > 0 && ttl <= 3 * 60_000, "{k}{p}: {ttl}");
    }
    // A trace stored for good next to it: shown, no record, no expiry.
    assert_eq!(d.trace_state(&n).unwrap(), TraceState::Stored);
    assert!(listed(&d, &n) && listed_by_list(&d, &n, false));
    assert!(!exists(&mut c, &format!("osprofiler_state:{n}")));
    assert_eq!(pttl(&mut c, &format!("osprofiler_opt:{n}")), -1);

    d.keep(&[&p]).unwrap();
    d.keep(&[&p]).unwrap(); // idempotent
    assert_eq!(d.trace_state(&p).unwrap(), TraceState::Stored);
    assert!(listed(&d, &p) && listed_error(&d, &p) && listed_by_list(&d, &p, false));
    for k in ["osprofiler_opt:", "osprofiler_error:", "osprofiler_state:"] {
        assert_eq!(pttl(&mut c, &format!("{k}{p}")), -1, "{k}{p} persisted");
    }
    // Late provisional points of a kept trace: shown, never hidden again.
    store(&d, &points(&p, true, false));
    assert_eq!(d.trace_messages(&p).unwrap().len(), 8);
    assert_eq!(d.trace_state(&p).unwrap(), TraceState::Stored);
    assert!(listed(&d, &p));
    assert_eq!(pttl(&mut c, &format!("osprofiler_opt:{p}")), -1);

    // A keep that comes before any point.
    d.keep(&[&q]).unwrap();
    store(&d, &points(&q, true, false));
    assert_eq!(d.trace_state(&q).unwrap(), TraceState::Stored);
    assert!(listed(&d, &q));
    assert_eq!(pttl(&mut c, &format!("osprofiler_opt:{q}")), -1);

    for id in [&p, &q, &n] {
        assert!(d.delete_trace(id).unwrap() > 0);
    }
}

#[test]
fn a_store_without_staging_reads_as_before() {
    // A reader that never staged (Python's store, the CLI): traces are shown.
    let writer = RedisDriver::open(&url(0), true).unwrap();
    let reader = RedisDriver::open(&url(0), true).unwrap();
    let id = new_id();
    // Provisional messages written by a driver that does not stage are stored for good.
    store(&writer, &points(&id, true, true));
    assert_eq!(reader.trace_state(&id).unwrap(), TraceState::Stored);
    assert!(listed(&reader, &id) && listed_error(&reader, &id));
    assert_eq!(reader.delete_trace(&id).unwrap(), 4);
}

#[test]
fn sweep_drops_pending_traces_then_removes_their_late_points() {
    let window = Duration::from_millis(400);
    let mut c = fresh(3);
    let d = staging(3, window);
    let (a, n, k, k2) = (new_id(), new_id(), new_id(), new_id());
    store(&d, &points(&a, true, true));
    store(&d, &points(&n, false, true));
    store(&d, &points(&k, true, false));
    d.keep(&[&k, &k2]).unwrap();
    store(&d, &points(&k2, true, false));
    // Summaries of the pending trace go with it.
    let part = summary(&a);
    d.write_summaries(&[part]).unwrap();
    assert!(pttl(&mut c, &format!("osprofiler_summary:{a}")) > 0);

    assert_eq!(d.sweep().unwrap(), 0, "nothing is due yet");
    assert_eq!(d.trace_messages(&a).unwrap().len(), 4);

    std::thread::sleep(window + Duration::from_millis(50));
    assert_eq!(d.sweep().unwrap(), 1, "only the pending trace expires");
    assert_eq!(d.sweep().unwrap(), 0, "and is counted once");
    assert!(d.trace_messages(&a).unwrap().is_empty());
    assert_eq!(d.trace_state(&a).unwrap(), TraceState::Dropped);
    for k in [
        "osprofiler_opt:",
        "osprofiler_error:",
        "osprofiler_summary:",
    ] {
        assert!(!exists(&mut c, &format!("{k}{a}")), "{k}{a} deleted");
    }
    for id in [&n, &k, &k2] {
        assert_eq!(d.trace_messages(id).unwrap().len(), 4, "{id} untouched");
        assert_eq!(d.trace_state(id).unwrap(), TraceState::Stored);
        assert!(listed(&d, id));
    }

    // Late points in the second window, ours and a Python service's: hidden, then removed.
    store(&d, &points(&a, true, false));
    python_style_push(&mut c, &a, "2030-01-01T00:00:00.000000", "late-start");
    assert_eq!(d.trace_messages(&a).unwrap().len(), 5);
    assert_eq!(d.trace_state(&a).unwrap(), TraceState::Dropped);
    assert!(!listed(&d, &a) && !listed_by_list(&d, &a, false));
    assert_eq!(d.sweep().unwrap(), 0);
    assert!(d.trace_messages(&a).unwrap().is_empty());

    // After the second window the record goes too.
    std::thread::sleep(window + Duration::from_millis(50));
    assert_eq!(d.sweep().unwrap(), 0);
    assert_eq!(d.trace_state(&a).unwrap(), TraceState::Stored);
    assert!(!exists(&mut c, &format!("osprofiler_state:{a}")));
    for z in ["osprofiler_staging", "osprofiler_dropped"] {
        let n: i64 = redis::cmd("ZCARD").arg(z).query(&mut c).unwrap();
        assert_eq!(n, 0, "{z} empty");
    }
    for id in [&n, &k, &k2] {
        assert_eq!(d.trace_messages(id).unwrap().len(), 4, "{id} untouched");
    }
}

/// Runs `sweepers` sweeps of database 4 at once, each twice; their counts.
fn sweep_concurrently(sweepers: usize, window: Duration) -> Vec<u64> {
    let barrier = Arc::new(Barrier::new(sweepers));
    (0..sweepers)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let d = staging(4, window);
                barrier.wait();
                d.sweep().unwrap() + d.sweep().unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect()
}

/// More traces than one script call of a sweep handles (200), so that the sweepers' calls
/// interleave: each trace is counted once, and every dropped one's late points are removed.
#[test]
fn concurrent_sweepers_count_each_trace_once() {
    let window = Duration::from_millis(500);
    let mut c = fresh(4);
    let d = staging(4, window);
    let mut batch = Vec::new();
    let ids: Vec<String> = (0..750).map(|_| new_id()).collect();
    for id in &ids {
        batch.extend(points(id, true, false));
    }
    store(&d, &batch);
    std::thread::sleep(window + Duration::from_millis(50));
    let counts = sweep_concurrently(4, window);
    assert_eq!(counts.iter().sum::<u64>(), ids.len() as u64, "{counts:?}");
    for id in &ids {
        assert!(d.trace_messages(id).unwrap().is_empty());
        assert_eq!(d.trace_state(id).unwrap(), TraceState::Dropped);
    }

    // Late points of every dropped trace (a Python service's: no script, no record touched):
    // removed by sweeps that run at once, none counted again.
    for id in &ids {
        python_style_push(&mut c, id, "2030-01-01T00:00:00.000000", "late");
    }
    assert!(d.list_traces().unwrap().is_empty(), "hidden while dropped");
    assert_eq!(sweep_concurrently(4, window), [0; 4]);
    for id in &ids {
        assert!(!exists(&mut c, &format!("osprofiler_opt:{id}")), "{id}");
    }
    let dropped: i64 = redis::cmd("ZCARD")
        .arg("osprofiler_dropped")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        dropped,
        ids.len() as i64,
        "remembered for the second window"
    );

    // After the second window every record is forgotten, with no key left but none.
    std::thread::sleep(window + Duration::from_millis(50));
    assert_eq!(sweep_concurrently(4, window), [0; 4]);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert!(
        keys.is_empty(),
        "{} keys left: {:?}",
        keys.len(),
        &keys[..keys.len().min(5)]
    );
}

/// Points written straight to the store (as Python's driver does: `LPUSH` and the error
/// marker, no record) of a trace whose id has a provisional trace's form, before its first
/// staged batch lands: hidden from every listing, pending, until kept. A uuid4 trace written
/// the same way is shown at once.
#[test]
fn provisional_ids_without_a_record_are_hidden_until_kept() {
    let d = staging(0, Duration::from_secs(60));
    // A reader that never staged (the CLI) hides them too.
    let reader = RedisDriver::open(&url(0), true).unwrap();
    let mut c = raw(0);
    let (p, plain) = (new_provisional_id(), new_id());
    for id in [&p, &plain] {
        python_style_push(&mut c, id, "2030-01-01T00:00:00.000000", "wsgi-start");
        let marker = serde_json::json!({"base_id": id, "timestamp": "2030-01-01T00:00:00.000000"});
        let _: () = redis::cmd("SET")
            .arg(format!("osprofiler_error:{id}"))
            .arg(marker.to_string())
            .query(&mut c)
            .unwrap();
        assert!(!exists(&mut c, &format!("osprofiler_state:{id}")));
    }
    for r in [&d, &reader] {
        assert_eq!(r.trace_state(&p).unwrap(), TraceState::Pending);
        assert!(!listed(r, &p) && !listed_error(r, &p));
        assert!(!listed_by_list(r, &p, false));
        assert!(listed_by_list(r, &p, true), "shown with include_pending");
        assert_eq!(r.trace_messages(&p).unwrap().len(), 1, "stored");

        assert_eq!(r.trace_state(&plain).unwrap(), TraceState::Stored);
        assert!(listed(r, &plain) && listed_error(r, &plain));
        assert!(listed_by_list(r, &plain, false));
    }

    // Its first staged batch: pending as before.
    store(&d, &points(&p, true, false));
    assert_eq!(d.trace_state(&p).unwrap(), TraceState::Pending);
    assert!(!listed(&d, &p));

    d.keep(&[&p]).unwrap();
    for r in [&d, &reader] {
        assert_eq!(r.trace_state(&p).unwrap(), TraceState::Stored);
        assert!(listed(r, &p) && listed_error(r, &p));
        assert!(listed_by_list(r, &p, false));
    }
    assert_eq!(d.trace_messages(&p).unwrap().len(), 5);

    // A keep that comes before any point, then points written straight: shown.
    let q = new_provisional_id();
    d.keep(&[&q]).unwrap();
    python_style_push(&mut c, &q, "2030-01-01T00:00:00.000000", "wsgi-start");
    assert_eq!(reader.trace_state(&q).unwrap(), TraceState::Stored);
    assert!(listed(&reader, &q));

    for id in [&p, &plain, &q] {
        assert!(d.delete_trace(id).unwrap() > 0);
    }
}

#[test]
fn prune_deletes_old_traces_only_and_retention_expires_keys() {
    let mut c = fresh(5);
    let d = staging(5, Duration::from_secs(60));
    let old = new_id();
    python_style_push(&mut c, &old, "2020-01-01T00:00:00.000000", "wsgi-start");
    python_style_push(&mut c, &old, "2020-01-01T00:00:01.000000", "wsgi-stop");
    let _: () = redis::cmd("SET")
        .arg(format!("osprofiler_error:{old}"))
        .arg("{}")
        .query(&mut c)
        .unwrap();
    d.keep(&[&old]).unwrap();
    // A newer message under an older one at the head (delivered late): kept.
    let mixed = new_id();
    python_style_push(&mut c, &mixed, "2030-01-01T00:00:00.000000", "wsgi-stop");
    python_style_push(&mut c, &mixed, "2020-01-01T00:00:00.000000", "wsgi-start");
    let unreadable = new_id();
    let _: () = redis::cmd("LPUSH")
        .arg(format!("osprofiler_opt:{unreadable}"))
        .arg("not json")
        .query(&mut c)
        .unwrap();
    let fresh_one = new_id();
    store(&d, &points(&fresh_one, false, true));
    let pending_old = new_id();
    store(&d, &points(&pending_old, true, false));
    python_style_push(&mut c, &pending_old, "2020-01-01T00:00:00.000000", "x");
    let cutoff = SystemTime::now() - Duration::from_secs(3600);
    // Every message of `pending_old` but the pushed one is recent: kept.
    assert_eq!(d.prune(cutoff).unwrap(), 1);
    for k in [
        "osprofiler_opt:",
        "osprofiler_error:",
        "osprofiler_summary:",
        "osprofiler_state:",
    ] {
        assert!(!exists(&mut c, &format!("{k}{old}")), "{k}{old} deleted");
    }
    for id in [&mixed, &unreadable, &fresh_one, &pending_old] {
        assert!(!d.trace_messages(id).unwrap().is_empty(), "{id} kept");
    }
    assert_eq!(d.prune(cutoff).unwrap(), 0);
    // Everything older than a cutoff in the future: all but the unreadable one.
    let later = SystemTime::now() + Duration::from_secs(3600 * 24 * 365 * 10);
    assert_eq!(d.prune(later).unwrap(), 3);
    assert!(!exists(&mut c, &format!("osprofiler_state:{pending_old}")));
    let staged: i64 = redis::cmd("ZCARD")
        .arg("osprofiler_staging")
        .query(&mut c)
        .unwrap();
    assert_eq!(staged, 0, "the pruned pending trace's record went too");

    // With a retention, every write of a trace not pending sets its keys to expire after it.
    let age = Duration::from_secs(3600);
    d.retain(age).unwrap();
    let r = new_id();
    store(&d, &points(&r, false, true));
    let part = summary(&r);
    d.write_summaries(&[part]).unwrap();
    for k in [
        "osprofiler_opt:",
        "osprofiler_error:",
        "osprofiler_summary:",
    ] {
        let ttl = pttl(&mut c, &format!("{k}{r}"));
        assert!(ttl > 3_590_000 && ttl <= 3_600_000, "{k}{r}: {ttl}");
    }
    // A pending trace keeps its safety net; kept, it expires after the retention.
    let p = new_id();
    store(&d, &points(&p, true, false));
    let ttl = pttl(&mut c, &format!("osprofiler_opt:{p}"));
    assert!(ttl > 0 && ttl <= 180_000, "pending: {ttl}");
    d.keep(&[&p]).unwrap();
    for k in ["osprofiler_opt:", "osprofiler_state:"] {
        let ttl = pttl(&mut c, &format!("{k}{p}"));
        assert!(ttl > 3_590_000 && ttl <= 3_600_000, "{k}{p} kept: {ttl}");
    }
}

#[test]
fn delete_trace_deletes_everything_of_one_trace() {
    let d = staging(0, Duration::from_secs(60));
    let mut c = raw(0);
    let (a, b) = (new_id(), new_id());
    store(&d, &points(&a, false, true));
    store(&d, &points(&b, true, true));
    assert_eq!(d.delete_trace(&a).unwrap(), 4);
    assert_eq!(d.delete_trace(&a).unwrap(), 0);
    assert!(!exists(&mut c, &format!("osprofiler_error:{a}")));
    assert_eq!(d.delete_trace(&b).unwrap(), 4);
    assert_eq!(d.trace_state(&b).unwrap(), TraceState::Stored);
    for k in ["osprofiler_opt:", "osprofiler_error:", "osprofiler_state:"] {
        assert!(!exists(&mut c, &format!("{k}{b}")), "{k}{b} deleted");
    }
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg("osprofiler_staging")
        .arg(&b)
        .query(&mut c)
        .unwrap();
    assert_eq!(score, None);
}

/// Python OSProfiler 4.4.0's own driver writes points of a pending trace (it ignores the
/// staging): hidden with the rest, removed by the sweep, and so are those it writes in the
/// second window, after the sweep dropped the trace.
#[test]
fn python_points_of_a_pending_trace_are_hidden_then_swept() {
    let window = Duration::from_secs(2);
    let mut c = fresh(6);
    let d = staging(6, window);
    let id = new_id();
    let script = r#"
import sys
from osprofiler import notifier, profiler
notifier.set(notifier.create(sys.argv[1], project="pyproj", service="pysvc", host="pyhost", conf={}))
profiler.init("key", base_id=sys.argv[2], parent_id=sys.argv[3])
with profiler.Trace("db", info={"db": {"statement": "SELECT 'from python'"}}):
    pass
"#;
    let python_writes = || {
        let out = std::process::Command::new(python())
            .args(["-c", script, &url(6), &id, "caller"])
            .output()
            .expect("run the Python OSProfiler oracle");
        assert!(
            out.status.success(),
            "Python OSProfiler could not write to {NEEDED}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let t0 = Instant::now();
    store(&d, &points(&id, true, false));
    python_writes();
    let msgs = d.trace_messages(&id).unwrap();
    assert_eq!(msgs.len(), 6, "ours and Python's, in one list");
    assert!(msgs.iter().any(|m| m["service"] == "pysvc"));
    assert_eq!(d.trace_state(&id).unwrap(), TraceState::Pending);
    assert!(!listed(&d, &id) && !listed_by_list(&d, &id, false));
    assert!(listed_by_list(&d, &id, true));

    std::thread::sleep(
        (t0 + window + Duration::from_millis(100)).saturating_duration_since(Instant::now()),
    );
    assert_eq!(d.sweep().unwrap(), 1);
    let dropped_at = Instant::now();
    assert!(d.trace_messages(&id).unwrap().is_empty());
    assert_eq!(d.trace_state(&id).unwrap(), TraceState::Dropped);

    python_writes();
    assert!(
        dropped_at.elapsed() < window,
        "Python took longer than the staging window: the test cannot tell"
    );
    assert_eq!(d.trace_messages(&id).unwrap().len(), 2);
    assert_eq!(d.trace_state(&id).unwrap(), TraceState::Dropped);
    assert!(!listed(&d, &id));
    assert_eq!(d.sweep().unwrap(), 0);
    assert!(d.trace_messages(&id).unwrap().is_empty());
    assert!(!exists(&mut c, &format!("osprofiler_opt:{id}")));

    std::thread::sleep(
        (dropped_at + window + Duration::from_millis(100))
            .saturating_duration_since(Instant::now()),
    );
    assert_eq!(d.sweep().unwrap(), 0);
    assert_eq!(d.trace_state(&id).unwrap(), TraceState::Stored);
    assert!(d.trace_messages(&id).unwrap().is_empty());
}

/// Through the notifier: a sampler's provisional traces, the failed one kept by the worker,
/// the other swept by it.
#[test]
fn a_queue_notifier_keeps_failed_traces_and_sweeps_the_others() {
    let window = Duration::from_millis(500);
    let _c = fresh(7);
    let driver = Arc::new(RedisDriver::open(&url(7), true).unwrap());
    let notifier = QueueNotifier::start(
        driver.clone(),
        QueueOptions {
            keep_traces: true,
            staging_window: window,
            ..QueueOptions::default()
        },
    )
    .unwrap();
    let scope = Dispatch::new(notifier.clone()).enabled(true);
    let sampler = Sampler::new()
        .keep_slow(Duration::from_secs(60))
        .keep_errors(true);
    let run = |fail: bool| {
        dispatch::with_default(&scope, || {
            let point = sampler.start_point("key", "wsgi", osp::Info::new);
            let ctx = point.profiler().expect("a provisional trace");
            osp::scope::with_trace(Some(ctx.clone()), || {
                let mut db = Trace::new("db", || osp::info!({"db": {"statement": "SELECT 1"}}));
                if fail {
                    db.error_with("OperationalError", "boom");
                }
            });
            drop(point);
            ctx.base_id().to_string()
        })
    };
    let failed = run(true);
    let ok = run(false);
    assert!(notifier.flush_for(Duration::from_secs(5)), "{NEEDED}");
    assert!(
        poll_until(Duration::from_secs(5), || listed(&driver, &failed)
            && listed_error(&driver, &failed)),
        "the failed trace is kept"
    );
    assert_eq!(driver.trace_messages(&failed).unwrap().len(), 4);
    assert!(!listed(&driver, &ok));
    assert!(
        poll_until(Duration::from_secs(10), || driver
            .trace_messages(&ok)
            .unwrap()
            .is_empty()),
        "the other trace is swept"
    );
    assert!(!listed(&driver, &ok));
    assert!(poll_until(Duration::from_secs(5), || notifier
        .stats()
        .provisional
        .expired
        == 1));
    let p = notifier.stats().provisional;
    assert_eq!((p.started, p.kept, p.dropped, p.expired), (2, 1, 1, 1));
    assert_eq!(driver.trace_messages(&failed).unwrap().len(), 4);
    notifier.shutdown();
}

/// Redis forgets its scripts (`SCRIPT FLUSH`, a restart, a new primary): the next keep and
/// sweep load them again, and a batch never needs them loaded.
#[test]
fn scripts_flushed_are_loaded_again() {
    let d = staging(8, Duration::from_secs(60));
    let mut c = raw(8);
    let (a, b) = (new_id(), new_id());
    store(&d, &points(&a, true, false));
    d.keep(&[&a]).unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    store(&d, &points(&b, true, false));
    assert_eq!(d.trace_messages(&b).unwrap().len(), 4, "stored once");
    assert_eq!(d.trace_state(&b).unwrap(), TraceState::Pending);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    d.keep(&[&b]).unwrap();
    assert_eq!(d.trace_state(&b).unwrap(), TraceState::Stored);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    d.sweep().unwrap();
    for id in [&a, &b] {
        assert_eq!(d.delete_trace(id).unwrap(), 4);
    }
}
