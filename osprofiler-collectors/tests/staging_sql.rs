//! Staging of provisional traces, retention and deletion in the SQL collector (issue 23), on
//! SQLite (a temporary file), PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306): a
//! pending trace is hidden from every listing but `--pending`, keeps before and after its
//! points show it, a sweep removes it after the window and its late points (ours or written
//! straight into `data`, as Python's driver writes) in the second window, prune deletes only
//! traces whose newest message is older than the cutoff, and a database without
//! `trace_staging` (Python's layout) reads as before. A missing service fails the test naming
//! it.
//!
//! The PostgreSQL and MariaDB databases are shared with other tests (sweeps there count every
//! test's traces): the tests of a backend run one at a time (`SERIAL`) and check the states of
//! their own traces.

use osprofiler_collectors::SqlDriver;
use osprofiler_core::dispatch::{self, Dispatch};
use osprofiler_core::listing::ListFilter;
use osprofiler_core::message::Message;
use osprofiler_core::notifier::{
    Notifier, QueueNotifier, QueueOptions, Reader, TraceState, Writer,
};
use osprofiler_core::sampling::Sampler;
use osprofiler_core::{self as osp, Trace};
use osprofiler_testkit::{captured_trace, captured_trace_with};
use sqlx::AssertSqlSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const PG: &str = "postgresql://postgres@127.0.0.1:5432/test";
const MY: &str = "mysql://root@127.0.0.1:3306/test";

/// Short, so that tests sweep after sleeping a little longer.
const WINDOW: Duration = Duration::from_millis(1000);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn hint(cs: &str) -> &'static str {
    if cs.starts_with("postgresql") {
        "PostgreSQL at 127.0.0.1:5432 (database test; scripts/test starts it)"
    } else if cs.starts_with("mysql") {
        "MariaDB at 127.0.0.1:3306 (database test; scripts/test starts it)"
    } else {
        "SQLite"
    }
}

/// A notifier that keeps every message and says it stages, so that a sampler starts
/// provisional traces on it.
#[derive(Default)]
struct Staged(Mutex<Vec<Message>>);

impl Notifier for Staged {
    fn notify(&self, message: Message) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }

    fn stages(&self) -> bool {
        true
    }
}

/// A provisional trace (started by a tail-keep sampler), root `wsgi` with a `db` point inside
/// (one failing when `error`): its base id and messages, all provisional.
fn provisional(error: bool) -> (String, Vec<Message>) {
    let cap = Arc::new(Staged::default());
    let scope = Dispatch::new(cap.clone()).enabled(true);
    let base = dispatch::with_default(&scope, || {
        let root = Sampler::new()
            .keep_slow(Duration::from_secs(3600))
            .start_point("key", "wsgi", osp::Info::new);
        assert!(root.is_active(), "the sampler started no provisional trace");
        let base = root.profiler().unwrap().base_id().to_string();
        let saved = root.enter().unwrap();
        let mut db = Trace::new("db", || osp::info!({"db": {"statement": "SELECT 1"}}));
        if error {
            db.error_with("OperationalError", "no such table");
        }
        db.finish();
        saved.restore();
        drop(root);
        base
    });
    let msgs = std::mem::take(&mut *cap.0.lock().unwrap());
    assert_eq!(msgs.len(), 4);
    assert!(msgs.iter().all(Message::is_provisional));
    (base, msgs)
}

/// A trace stored for good (no staging).
fn plain() -> (String, Vec<Message>) {
    captured_trace(|| drop(Trace::new("cli", osp::Info::new)))
}

/// A point written for `base` by a service that does not stage (as Python's would be).
fn unflagged_point(base: &str) -> Vec<Message> {
    let (_, msgs) = captured_trace_with(Some(base), || drop(Trace::new("py", osp::Info::new)));
    assert!(!msgs.iter().any(Message::is_provisional));
    msgs
}

fn listed(d: &dyn Reader, id: &str) -> bool {
    d.list_traces().unwrap().iter().any(|t| t.base_id == id)
}

fn error_listed(d: &dyn Reader, id: &str) -> bool {
    d.list_error_traces()
        .unwrap()
        .iter()
        .any(|t| t.base_id == id)
}

fn in_list(d: &dyn Reader, id: &str, include_pending: bool) -> bool {
    let filter = ListFilter {
        include_pending,
        ..ListFilter::default()
    };
    d.list(&filter).unwrap().iter().any(|t| t.base_id == id)
}

/// Shown by every listing (or by none).
fn shown(d: &dyn Reader, id: &str) -> bool {
    let l = listed(d, id);
    assert_eq!(
        in_list(d, id, false),
        l,
        "list and list_traces disagree on {id}"
    );
    l
}

// Plain SQL on the same database, as another program (Python's driver) would run it.

/// Runs `statement` (`?` placeholders) with text binds; returns the rows affected, or for a
/// statement starting with `SELECT COUNT` the count.
fn sql(cs: &str, statement: &str, binds: &[&str]) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let count = statement.starts_with("SELECT COUNT");
    let fail = |e: sqlx::Error| -> i64 { panic!("{}: {statement}: {e}", hint(cs)) };
    rt.block_on(async {
        if let Some(rest) = cs.strip_prefix("postgresql://") {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&format!("postgresql://{rest}"))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", hint(cs)));
            let mut n = 0;
            let s: String = statement
                .split('?')
                .enumerate()
                .map(|(i, part)| {
                    if i == 0 {
                        part.to_owned()
                    } else {
                        n += 1;
                        format!("${n}{part}")
                    }
                })
                .collect();
            let mut q = sqlx::query(AssertSqlSafe(s));
            for b in binds {
                q = q.bind(*b);
            }
            if count {
                use sqlx::Row;
                q.fetch_one(&mut c)
                    .await
                    .map_or_else(fail, |r| r.get::<i64, _>(0))
            } else {
                q.execute(&mut c)
                    .await
                    .map_or_else(fail, |r| r.rows_affected() as i64)
            }
        } else if cs.starts_with("mysql://") {
            use sqlx::Connection;
            let mut c = sqlx::MySqlConnection::connect(cs)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", hint(cs)));
            let mut q = sqlx::query(AssertSqlSafe(statement.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            if count {
                use sqlx::Row;
                q.fetch_one(&mut c)
                    .await
                    .map_or_else(fail, |r| r.get::<i64, _>(0))
            } else {
                q.execute(&mut c)
                    .await
                    .map_or_else(fail, |r| r.rows_affected() as i64)
            }
        } else {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(cs)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", hint(cs)));
            let mut q = sqlx::query(AssertSqlSafe(statement.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            if count {
                use sqlx::Row;
                q.fetch_one(&mut c)
                    .await
                    .map_or_else(fail, |r| r.get::<i64, _>(0))
            } else {
                q.execute(&mut c)
                    .await
                    .map_or_else(fail, |r| r.rows_affected() as i64)
            }
        }
    })
}

/// Inserts one row into `data` as Python's SQLAlchemy driver does (no staging of any kind).
fn python_row(cs: &str, base: &str, timestamp: &str) {
    python_row_with(cs, base, timestamp, r#"{"info": {"host": "pyhost"}}"#);
}

/// [`python_row`] of a failed point (an `etype` in its info).
fn python_error_row(cs: &str, base: &str, timestamp: &str) {
    python_row_with(
        cs,
        base,
        timestamp,
        r#"{"info": {"host": "pyhost", "etype": "OperationalError", "message": "boom"}}"#,
    );
}

fn python_row_with(cs: &str, base: &str, timestamp: &str, data: &str) {
    let json = if cs.starts_with("postgresql") {
        "CAST(? AS JSON)"
    } else {
        "?"
    };
    let trace_id = uuid::Uuid::new_v4().to_string();
    let n = sql(
        cs,
        &format!(
            "INSERT INTO data (timestamp, base_id, parent_id, trace_id, project, host, service, \
             name, data) VALUES (?, ?, ?, ?, 'pyproj', 'pyhost', 'pysvc', 'pyrpc-start', {json})"
        ),
        &[timestamp, base, base, &trace_id, data],
    );
    assert_eq!(n, 1);
}

fn staging_rows(cs: &str, base: &str) -> i64 {
    sql(
        cs,
        "SELECT COUNT(*) FROM trace_staging WHERE base_id = ?",
        &[base],
    )
}

fn now_timestamp() -> String {
    ago_timestamp(Duration::ZERO)
}

fn ago_timestamp(ago: Duration) -> String {
    osprofiler_core::clock::format_timestamp(osprofiler_core::clock::system_micros(
        SystemTime::now() - ago,
    ))
}

/// A fresh id of the provisional form (`8f5b` third group), as a sampler makes them.
fn provisional_id() -> String {
    let mut id = uuid::Uuid::new_v4().to_string();
    id.replace_range(14..18, "8f5b");
    assert!(osprofiler_core::sampling::is_provisional_id(&id));
    id
}

/// Dropped by its record, or its record forgotten already (a sweep after the second window):
/// a provisional trace's id without a record reads as pending.
fn dropped_or_forgotten(cs: &str, d: &dyn Reader, id: &str) {
    match d.trace_state(id).unwrap() {
        TraceState::Dropped => {}
        TraceState::Pending => assert_eq!(staging_rows(cs, id), 0, "{}: {id} pending", hint(cs)),
        TraceState::Stored => panic!("{}: {id} stored", hint(cs)),
    }
}

/// The whole life of provisional traces on one store: `cs` writes (staging), `read` reads.
fn staging_scenario(cs: &str, read: &str) {
    let hint = hint(cs);
    let w = SqlDriver::open(cs).unwrap_or_else(|e| panic!("{hint}: {e}"));
    w.stage(WINDOW).unwrap();
    let store = |m: &[Message]| w.notify(m).unwrap_or_else(|e| panic!("{hint}: {e}"));

    // A provisional trace, a failing one, a trace stored for good.
    let (pending, pending_msgs) = provisional(false);
    let (failing, failing_msgs) = provisional(true);
    let (stored, stored_msgs) = plain();
    store(&pending_msgs);
    store(&failing_msgs);
    store(&stored_msgs);
    // Within the window a sweep leaves them.
    w.sweep().unwrap();
    let r = SqlDriver::open_read_only(read).unwrap_or_else(|e| panic!("{hint}: {e}"));
    for d in [&w, &r] {
        assert_eq!(d.trace_state(&pending).unwrap(), TraceState::Pending);
        assert_eq!(d.trace_state(&failing).unwrap(), TraceState::Pending);
        assert_eq!(d.trace_state(&stored).unwrap(), TraceState::Stored);
        assert_eq!(d.trace_state("no-such-trace").unwrap(), TraceState::Stored);
        assert!(!shown(d, &pending), "{hint}: a pending trace is listed");
        assert!(!shown(d, &failing));
        assert!(
            !error_listed(d, &failing),
            "{hint}: a pending trace in the error list"
        );
        assert!(shown(d, &stored));
        assert!(
            in_list(d, &pending, true),
            "{hint}: --pending does not list it"
        );
        assert!(in_list(d, &failing, true));
        // Its messages are stored: `trace show --pending` shows them.
        assert_eq!(d.trace_messages(&pending).unwrap().len(), 4);
    }

    // Kept before any point: shown when they come.
    let (early, early_msgs) = provisional(false);
    w.keep(&[&early]).unwrap();
    w.keep(&[&early]).unwrap(); // idempotent
    assert_eq!(r.trace_state(&early).unwrap(), TraceState::Stored);
    store(&early_msgs);
    assert_eq!(r.trace_state(&early).unwrap(), TraceState::Stored);
    assert!(shown(&r, &early));

    // Kept after its first points; its late provisional points shown too.
    let (late, late_msgs) = provisional(true);
    store(&late_msgs[..2]);
    assert!(!shown(&r, &late));
    w.keep(&[&late, &late]).unwrap();
    assert!(shown(&r, &late));
    store(&late_msgs[2..]);
    assert_eq!(r.trace_state(&late).unwrap(), TraceState::Stored);
    assert!(shown(&r, &late));
    assert!(
        error_listed(&r, &late),
        "{hint}: a kept failing trace not in the error list"
    );
    assert_eq!(r.trace_messages(&late).unwrap().len(), 4);

    // A point written by a service that does not stage (Python's): hidden with the trace.
    store(&unflagged_point(&pending));
    python_row(cs, &pending, &now_timestamp());
    assert!(!shown(&r, &pending));
    assert_eq!(r.trace_messages(&pending).unwrap().len(), 7);

    // Past it: removed, every writer's points, and dropped.
    std::thread::sleep(WINDOW + Duration::from_millis(100));
    let dropped_at = std::time::Instant::now();
    let expired = w.sweep().unwrap();
    // A sweep after the second window forgets a dropped trace: on a loaded machine that may
    // come before the checks below expect.
    let dropped = |id: &str| {
        let state = r.trace_state(id).unwrap();
        if dropped_at.elapsed() < WINDOW {
            assert_eq!(state, TraceState::Dropped, "{hint}: {id}");
        } else {
            dropped_or_forgotten(cs, &r, id);
        }
    };
    assert!(expired >= 2, "{hint}: sweep expired {expired}");
    for id in [&pending, &failing] {
        assert_eq!(r.trace_state(id).unwrap(), TraceState::Dropped, "{hint}");
        assert!(
            r.trace_messages(id).unwrap().is_empty(),
            "{hint}: {id} not removed"
        );
        assert!(!in_list(&r, id, true));
    }
    // Idempotent: a second sweep expires nothing of ours.
    w.sweep().unwrap();
    dropped(&pending);
    // Kept traces and the stored one untouched.
    for (id, n) in [(&stored, stored_msgs.len()), (&early, 4), (&late, 4)] {
        assert_eq!(r.trace_messages(id).unwrap().len(), n, "{hint}: {id}");
        assert!(shown(&r, id));
    }

    // Late points in the second window (ours and Python's): hidden, then removed by a sweep.
    store(&pending_msgs[2..]);
    python_row(cs, &pending, &now_timestamp());
    dropped(&pending);
    assert!(!shown(&r, &pending));
    assert_eq!(r.trace_messages(&pending).unwrap().len(), 3);
    w.sweep().unwrap();
    assert!(
        r.trace_messages(&pending).unwrap().is_empty(),
        "{hint}: late points stay"
    );
    dropped(&pending);

    // After the second window: the records go (a provisional trace's id without a record
    // reads as pending: points coming now are hidden, and swept a window later).
    std::thread::sleep(WINDOW + Duration::from_millis(100));
    w.sweep().unwrap();
    for id in [&pending, &failing] {
        assert_eq!(r.trace_state(id).unwrap(), TraceState::Pending);
        assert_eq!(staging_rows(cs, id), 0, "{hint}: the record of {id} stays");
        assert!(!in_list(&r, id, true));
    }

    // delete_trace: everything of one trace, record included.
    let (gone, gone_msgs) = provisional(false);
    store(&gone_msgs);
    assert_eq!(staging_rows(cs, &gone), 1);
    assert_eq!(Writer::delete_trace(&w, &gone).unwrap(), 4);
    assert_eq!(staging_rows(cs, &gone), 0);
    assert_eq!(Writer::delete_trace(&w, &gone).unwrap(), 0);
    for id in [&stored, &early, &late] {
        assert!(Writer::delete_trace(&w, id).unwrap() > 0);
        assert!(r.trace_messages(id).unwrap().is_empty());
    }
    assert_eq!(staging_rows(cs, &early), 0);
}

/// Prune: only traces whose newest message is older than the cutoff, with their records.
fn prune_scenario(cs: &str) {
    let hint = hint(cs);
    let w = SqlDriver::open(cs).unwrap_or_else(|e| panic!("{hint}: {e}"));
    w.stage(WINDOW).unwrap();
    w.retain(Duration::from_secs(3600)).unwrap();
    // Timestamps of 2001 (nothing else stored has them): one trace all old (kept, with a
    // record), one with an old and a new message, one new.
    let old = uuid::Uuid::new_v4().to_string();
    let mixed = uuid::Uuid::new_v4().to_string();
    python_row(cs, &old, "2001-01-01T00:00:00.000001");
    python_row(cs, &old, "2001-02-01T00:00:00.000000");
    w.keep(&[&old]).unwrap();
    python_row(cs, &mixed, "2001-01-01T00:00:00.000001");
    python_row(cs, &mixed, &now_timestamp());
    let (new, new_msgs) = plain();
    w.notify(&new_msgs).unwrap();
    // A keep of a trace whose messages never came, older than the cutoff: goes too.
    let orphan = uuid::Uuid::new_v4().to_string();
    w.keep(&[&orphan]).unwrap();
    let cutoff_us = osprofiler_core::clock::parse_timestamp("2001-06-01T00:00:00").unwrap();
    let cutoff = SystemTime::UNIX_EPOCH + Duration::from_micros(cutoff_us as u64);
    let n = w.prune(cutoff).unwrap();
    assert!(n >= 1, "{hint}: pruned {n}");
    assert!(
        w.trace_messages(&old).unwrap().is_empty(),
        "{hint}: old trace stays"
    );
    assert_eq!(
        staging_rows(cs, &old),
        0,
        "{hint}: old trace's record stays"
    );
    assert_eq!(
        w.trace_messages(&mixed).unwrap().len(),
        2,
        "{hint}: pruned a live trace"
    );
    assert_eq!(w.trace_messages(&new).unwrap().len(), new_msgs.len());
    assert_eq!(
        staging_rows(cs, &orphan),
        1,
        "the orphan keep is newer than the cutoff"
    );
    assert_eq!(w.prune(cutoff).unwrap(), 0, "{hint}: pruned twice");
    if cs.starts_with("sqlite") {
        // A private database: a cutoff past now deletes every trace, and the orphan keep.
        let n = w.prune(SystemTime::now() + Duration::from_secs(1)).unwrap();
        assert!(n >= 2, "{n}");
        assert!(w.trace_messages(&mixed).unwrap().is_empty());
        assert!(w.trace_messages(&new).unwrap().is_empty());
    }
    for id in [&mixed, &new, &orphan] {
        Writer::delete_trace(&w, id).unwrap();
    }
    assert_eq!(staging_rows(cs, &orphan), 0);
}

/// Through a notifier: a tail-keep sampler's fast request is swept, its slow and failing ones
/// are kept by the notifier's worker.
fn notifier_scenario(cs: &str) {
    let hint = hint(cs);
    let w = Arc::new(SqlDriver::open(cs).unwrap_or_else(|e| panic!("{hint}: {e}")));
    let n = QueueNotifier::start(
        w.clone(),
        QueueOptions {
            keep_traces: true,
            staging_window: WINDOW,
            ..QueueOptions::default()
        },
    )
    .unwrap();
    let d = Dispatch::new(n.clone()).enabled(true);
    let sampler = Sampler::new().keep_slow(Duration::from_millis(100));
    let request = |slow: bool, fail: bool| -> String {
        dispatch::with_default(&d, || {
            let root = sampler.start_point("key", "wsgi", osp::Info::new);
            assert!(root.is_active());
            let base = root.profiler().unwrap().base_id().to_string();
            let saved = root.enter().unwrap();
            let mut db = Trace::new("db", osp::Info::new);
            if fail {
                db.error_with("OperationalError", "boom");
            }
            db.finish();
            if slow {
                std::thread::sleep(Duration::from_millis(150));
            }
            saved.restore();
            drop(root);
            base
        })
    };
    let fast = request(false, false);
    let slow = request(true, false);
    let failing = request(false, true);
    assert!(n.flush(Duration::from_secs(10)), "{hint}: not delivered");
    let ok = |f: &dyn Fn() -> bool| {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(std::time::Instant::now() < until, "{hint}: timed out");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    ok(&|| w.trace_state(&slow).unwrap() == TraceState::Stored);
    ok(&|| w.trace_state(&failing).unwrap() == TraceState::Stored);
    assert!(shown(&*w, &slow) && shown(&*w, &failing));
    assert!(error_listed(&*w, &failing));
    assert!(!shown(&*w, &fast));
    // The worker sweeps every quarter window: the fast one goes.
    ok(&|| w.trace_messages(&fast).unwrap().is_empty());
    dropped_or_forgotten(cs, &*w, &fast);
    let stats = n.stats().provisional;
    assert_eq!((stats.started, stats.kept), (3, 2), "{hint}: {stats:?}");
    assert!(stats.expired >= 1);
    for id in [&slow, &failing] {
        assert_eq!(w.trace_messages(id).unwrap().len(), 4);
        Writer::delete_trace(&*w, id).unwrap();
    }
}

/// Points written straight into `data` (as Python's driver writes them) for a provisional
/// trace's id before any record of it: hidden from every listing and pending until a keep;
/// a record-less fragment with no message newer than the window is removed by a sweep. A
/// uuid4 trace without a record is shown and untouched.
fn fragment_scenario(cs: &str) {
    let hint = hint(cs);
    let w = SqlDriver::open(cs).unwrap_or_else(|e| panic!("{hint}: {e}"));
    w.stage(WINDOW).unwrap();
    let r = SqlDriver::open_read_only(cs).unwrap_or_else(|e| panic!("{hint}: {e}"));

    // Before the origin's batch: a callee's points, one failed.
    let early = provisional_id();
    python_row(cs, &early, &now_timestamp());
    python_error_row(cs, &early, &now_timestamp());
    let plain = uuid::Uuid::new_v4().to_string();
    python_row(cs, &plain, &now_timestamp());
    python_error_row(cs, &plain, &now_timestamp());
    for d in [&w, &r] {
        assert_eq!(staging_rows(cs, &early), 0);
        assert_eq!(
            d.trace_state(&early).unwrap(),
            TraceState::Pending,
            "{hint}"
        );
        assert!(
            !shown(d, &early),
            "{hint}: a record-less fragment is listed"
        );
        assert!(
            !error_listed(d, &early),
            "{hint}: a record-less fragment in the error list"
        );
        assert!(
            in_list(d, &early, true),
            "{hint}: --pending does not list it"
        );
        assert_eq!(d.trace_messages(&early).unwrap().len(), 2);
        assert_eq!(d.trace_state(&plain).unwrap(), TraceState::Stored);
        assert!(
            shown(d, &plain),
            "{hint}: a uuid4 trace without a record hidden"
        );
        assert!(error_listed(d, &plain));
    }
    // The origin's keep: shown.
    w.keep(&[&early]).unwrap();
    assert_eq!(r.trace_state(&early).unwrap(), TraceState::Stored);
    assert!(shown(&r, &early), "{hint}: a kept fragment hidden");
    assert!(error_listed(&r, &early));

    // Older than the window: a fragment never recorded goes, unless it has a newer message
    // (still being written), a record, or a uuid4 id.
    let old = WINDOW * 3;
    let stranded = provisional_id();
    python_row(cs, &stranded, &ago_timestamp(old));
    python_error_row(cs, &stranded, &ago_timestamp(old));
    let growing = provisional_id();
    python_row(cs, &growing, &ago_timestamp(old));
    python_row(cs, &growing, &now_timestamp());
    let kept = provisional_id();
    python_row(cs, &kept, &ago_timestamp(old));
    w.keep(&[&kept]).unwrap();
    let old_plain = uuid::Uuid::new_v4().to_string();
    python_row(cs, &old_plain, &ago_timestamp(old));
    assert!(!shown(&r, &stranded) && !shown(&r, &growing));
    w.sweep().unwrap();
    assert!(
        r.trace_messages(&stranded).unwrap().is_empty(),
        "{hint}: a stranded fragment stays"
    );
    assert!(!in_list(&r, &stranded, true));
    assert_eq!(r.trace_messages(&growing).unwrap().len(), 2, "{hint}");
    assert_eq!(r.trace_messages(&kept).unwrap().len(), 1, "{hint}");
    assert_eq!(r.trace_messages(&old_plain).unwrap().len(), 1, "{hint}");
    assert_eq!(r.trace_messages(&early).unwrap().len(), 2, "{hint}");
    assert!(shown(&r, &kept) && shown(&r, &old_plain) && !shown(&r, &growing));
    w.sweep().unwrap(); // idempotent
    assert_eq!(r.trace_messages(&growing).unwrap().len(), 2, "{hint}");
    for id in [&early, &plain, &growing, &kept, &old_plain] {
        assert!(Writer::delete_trace(&w, id).unwrap() > 0, "{hint}: {id}");
    }
}

fn temp_sqlite() -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("osp-staging-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let cs = format!("sqlite://{}", dir.join("traces.db").display());
    (dir, cs)
}

#[test]
fn sqlite_staging() {
    let (dir, cs) = temp_sqlite();
    staging_scenario(&cs, &cs);
    fragment_scenario(&cs);
    prune_scenario(&cs);
    notifier_scenario(&cs);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn postgresql_staging() {
    let _serial = serial();
    staging_scenario(PG, PG);
    fragment_scenario(PG);
    prune_scenario(PG);
    notifier_scenario(PG);
}

#[test]
fn mysql_staging() {
    let _serial = serial();
    staging_scenario(MY, MY);
    fragment_scenario(MY);
    prune_scenario(MY);
    notifier_scenario(MY);
}

/// Python OSProfiler's own table (its SQLAlchemy driver creating and filling an SQLite file):
/// read as always, nothing created by the reader; then a Rust service stages in it, and the
/// points Python writes for a pending trace are hidden and swept.
#[test]
fn sqlite_database_python_created() {
    let (dir, cs) = temp_sqlite();
    let path = cs.trim_start_matches("sqlite://").to_owned();
    let python_trace = |base: &str| {
        let script = r#"
import sys
from osprofiler import notifier, profiler
from osprofiler.drivers.sqlalchemy_driver import SQLAlchemyDriver
d = SQLAlchemyDriver("sqlite:///" + sys.argv[1], project="pyproj", service="pysvc", host="pyhost")
notifier.set(d.notify)
profiler.init("key", base_id=sys.argv[2], parent_id=sys.argv[2])
with profiler.Trace("pyrpc", info={"x": 1}):
    pass
d._conn.commit()  # SQLAlchemy 2 connections do not commit by themselves
"#;
        let out = std::process::Command::new(osprofiler_testkit::python())
            .args(["-c", script, &path, base])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let py = uuid::Uuid::new_v4().to_string();
    python_trace(&py);
    let tables = || {
        sql(
            &cs,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'trace_staging'",
            &[],
        )
    };
    let r = SqlDriver::open_read_only(&cs).unwrap();
    assert_eq!(r.trace_state(&py).unwrap(), TraceState::Stored);
    assert!(shown(&r, &py));
    assert!(in_list(&r, &py, true));
    assert_eq!(r.trace_messages(&py).unwrap().len(), 2);
    assert_eq!(tables(), 0, "a reader created trace_staging");
    // Python's points of a provisional trace, before anything was staged: hidden, pending.
    let fragment = provisional_id();
    python_trace(&fragment);
    assert_eq!(r.trace_state(&fragment).unwrap(), TraceState::Pending);
    assert!(!shown(&r, &fragment), "a provisional fragment listed");
    assert!(in_list(&r, &fragment, true));
    assert_eq!(tables(), 0, "a reader created trace_staging");

    // A writer that stages but stored nothing provisional creates nothing either.
    let w = SqlDriver::open(&cs).unwrap();
    w.stage(WINDOW).unwrap();
    let (stored, stored_msgs) = plain();
    w.notify(&stored_msgs).unwrap();
    assert!(shown(&r, &stored));
    assert_eq!(tables(), 0);

    // A provisional trace continued by the Python service: its points are hidden too.
    let (pending, pending_msgs) = provisional(false);
    w.notify(&pending_msgs).unwrap();
    python_trace(&pending);
    assert_eq!(tables(), 1);
    assert!(!shown(&r, &pending));
    assert!(shown(&r, &py));
    assert_eq!(r.trace_messages(&pending).unwrap().len(), 6);
    assert!(!shown(&r, &fragment));
    std::thread::sleep(WINDOW + Duration::from_millis(100));
    assert_eq!(w.sweep().unwrap(), 1);
    assert!(r.trace_messages(&pending).unwrap().is_empty());
    // The fragment never recorded, older than the window: removed too.
    assert!(r.trace_messages(&fragment).unwrap().is_empty());
    // Python writes again in the second window: removed by the next sweep.
    python_trace(&pending);
    assert!(!shown(&r, &pending));
    w.sweep().unwrap();
    assert!(r.trace_messages(&pending).unwrap().is_empty());
    assert_eq!(r.trace_messages(&py).unwrap().len(), 2);
    drop((r, w));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A PostgreSQL or MariaDB database with our `data` table and no `trace_staging` (as Python
/// or a service that never staged leaves it) reads as always, and a reader creates nothing.
fn server_without_staging(admin: &str, db_url: impl Fn(&str) -> String) {
    let name = format!("osp_nostaging_{}", uuid::Uuid::new_v4().simple());
    sql(admin, &format!("CREATE DATABASE {name}"), &[]);
    let cs = db_url(&name);
    let (base, msgs) = plain();
    let w = SqlDriver::open(&cs).unwrap();
    w.notify(&msgs).unwrap();
    let r = SqlDriver::open_read_only(&cs).unwrap();
    assert_eq!(r.trace_state(&base).unwrap(), TraceState::Stored);
    assert!(shown(&r, &base));
    assert_eq!(r.trace_messages(&base).unwrap().len(), msgs.len());
    // Python's points of a provisional trace: hidden, pending; a uuid4 one's shown.
    let fragment = provisional_id();
    python_row(&cs, &fragment, &now_timestamp());
    python_error_row(&cs, &fragment, &now_timestamp());
    let py = uuid::Uuid::new_v4().to_string();
    python_row(&cs, &py, &now_timestamp());
    for d in [&w, &r] {
        assert_eq!(d.trace_state(&fragment).unwrap(), TraceState::Pending);
        assert!(!shown(d, &fragment), "{cs}: a provisional fragment listed");
        assert!(!error_listed(d, &fragment));
        assert!(in_list(d, &fragment, true));
        assert_eq!(d.trace_state(&py).unwrap(), TraceState::Stored);
        assert!(shown(d, &py));
    }
    let tables = sql(
        &cs,
        &format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'trace_staging' \
             AND {} = '{name}'",
            if cs.starts_with("mysql") {
                "table_schema"
            } else {
                "table_catalog"
            }
        ),
        &[],
    );
    assert_eq!(tables, 0, "a reader created trace_staging");
    drop((r, w));
    sql(admin, &format!("DROP DATABASE {name}"), &[]);
}

#[test]
fn postgresql_database_without_staging() {
    server_without_staging(PG, |n| format!("postgresql://postgres@127.0.0.1:5432/{n}"));
}

#[test]
fn mysql_database_without_staging() {
    server_without_staging(MY, |n| format!("mysql://root@127.0.0.1:3306/{n}"));
}

/// Two services sweeping one store while two others write provisional traces and keeps: no
/// error (no deadlock), every kept trace whole, every other one removed in the end.
fn concurrent_scenario(cs: &str) {
    let hint = hint(cs);
    let open = || {
        let d = SqlDriver::open(cs).unwrap_or_else(|e| panic!("{hint}: {e}"));
        d.stage(WINDOW).unwrap();
        Arc::new(d)
    };
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let d = open();
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut dropped = Vec::new();
                let mut i = 0;
                while std::time::Instant::now() < until {
                    let (id, msgs) = provisional(false);
                    d.notify(&msgs[..2]).unwrap();
                    if i % 2 == 0 {
                        d.keep(&[&id]).unwrap();
                        kept.push(id.clone());
                    } else {
                        dropped.push(id.clone());
                    }
                    d.notify(&msgs[2..]).unwrap();
                    i += 1;
                }
                (kept, dropped)
            })
        })
        .collect();
    let sweepers: Vec<_> = (0..2)
        .map(|_| {
            let d = open();
            std::thread::spawn(move || {
                let mut n = 0;
                while std::time::Instant::now() < until {
                    n += d.sweep().unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                }
                n
            })
        })
        .collect();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for w in writers {
        let (k, d) = w
            .join()
            .unwrap_or_else(|_| panic!("{hint}: a writer failed"));
        kept.extend(k);
        dropped.extend(d);
    }
    for s in sweepers {
        s.join()
            .unwrap_or_else(|_| panic!("{hint}: a sweeper failed"));
    }
    let d = open();
    std::thread::sleep(WINDOW + Duration::from_millis(100));
    d.sweep().unwrap();
    assert!(!kept.is_empty() && !dropped.is_empty());
    for id in &kept {
        assert_eq!(d.trace_messages(id).unwrap().len(), 4, "{hint}: kept {id}");
        assert_eq!(d.trace_state(id).unwrap(), TraceState::Stored);
        Writer::delete_trace(&*d, id).unwrap();
    }
    for id in &dropped {
        assert!(
            d.trace_messages(id).unwrap().is_empty(),
            "{hint}: {id} stays"
        );
        // Dropped, or forgotten already when dropped early on.
        dropped_or_forgotten(cs, &*d, id);
    }
}

#[test]
fn sqlite_concurrent_sweeps() {
    let (dir, cs) = temp_sqlite();
    concurrent_scenario(&cs);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn postgresql_concurrent_sweeps() {
    let _serial = serial();
    concurrent_scenario(PG);
}

#[test]
fn mysql_concurrent_sweeps() {
    let _serial = serial();
    concurrent_scenario(MY);
}
