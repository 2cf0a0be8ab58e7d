//! Every driver against its real back end: SQLite (memory and file), PostgreSQL
//! (127.0.0.1:5432), MariaDB (127.0.0.1:3306) and Redis (127.0.0.1:6379). What is written is
//! read back unchanged, reports equal the core's report of the same messages, listings find the
//! trace, error listings find only error traces.

use osprofiler_collectors::{MongoDriver, RedisDriver, SqlDriver};
use osprofiler_core::notifier::{Driver, Reader, Writer};
use osprofiler_core::{self as osp, ProfilerConfig, Trace, message::Message, report::Report};
use osprofiler_testkit::{captured_trace, captured_trace_with, error_trace};
use serde_json::Value;

const PG: &str = "postgresql://postgres@127.0.0.1:5432/test";
const MY: &str = "mysql://root@127.0.0.1:3306/test";
const REDIS: &str = "redis://127.0.0.1:6379";
const MONGO: &str = "mongodb://127.0.0.1:27017";

/// A trace without errors (its statement mentions "etype" to fool a text search).
fn ok_trace() -> (String, Vec<Message>) {
    captured_trace(|| {
        drop(Trace::new(
            "db",
            || osp::info!({"db": {"statement": "SELECT '\"etype\": 1'"}}),
        ));
    })
}

fn values(msgs: &[Message]) -> Vec<Value> {
    msgs.iter().map(Message::to_value).collect()
}

fn service_hint(name: &str) -> &'static str {
    match name {
        "postgresql" => "PostgreSQL at 127.0.0.1:5432 (database test)",
        "mysql" => "MariaDB at 127.0.0.1:3306 (database test)",
        "redis" => "Redis at 127.0.0.1:6379",
        "mongodb" => "MongoDB at 127.0.0.1:27017 (scripts/test starts SecantusDB there)",
        _ => "SQLite",
    }
}

/// Equal lists, reported by their first difference (not by printing thousands of messages).
fn same(got: &[Value], want: &[Value], driver: &str) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{driver}: {} messages read back, {} sent; first difference at {i}:\n got  {:?}\n want {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

/// What a driver reads back: the messages in sending order, except Redis, which gives them
/// newest first as Python does.
fn as_stored(driver: &dyn Driver, msgs: &[Message]) -> Vec<Value> {
    let mut v = values(msgs);
    if driver.name() == "redis" {
        v.reverse();
    }
    v
}

/// The checks every driver must pass; returns the traces it stored.
fn round_trip(driver: &dyn Driver) -> Vec<String> {
    let hint = service_hint(driver.name());
    let (bad, bad_msgs) = error_trace(None);
    let (good, good_msgs) = ok_trace();
    driver
        .notify(&bad_msgs)
        .unwrap_or_else(|e| panic!("store in {hint}: {e}"));
    driver
        .notify(&good_msgs)
        .unwrap_or_else(|e| panic!("store in {hint}: {e}"));

    let back = driver.trace_messages(&bad).expect("read back");
    same(&back, &as_stored(driver, &bad_msgs), driver.name());
    assert_eq!(
        driver.get_report(&bad).unwrap(),
        Report::build(&as_stored(driver, &bad_msgs))
    );
    let report = driver.get_report(&bad).unwrap().into_value();
    assert_eq!(report["children"][0]["info"]["name"], "wsgi");
    let exceptions: Vec<&str> = report["children"][0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["info"]["exception"].as_str().unwrap())
        .collect();
    assert_eq!(exceptions.len(), 2);
    assert!(exceptions.contains(&"OperationalError") && exceptions.contains(&"None"));

    let listed = driver.list_traces().unwrap();
    let first_ts = bad_msgs[0].timestamp();
    assert!(
        listed
            .iter()
            .any(|t| t.base_id == bad && t.timestamp == first_ts),
        "{} list_traces lacks {bad} at {first_ts}",
        driver.name()
    );
    assert!(listed.iter().any(|t| t.base_id == good));
    let errors = driver.list_error_traces().unwrap();
    assert!(
        errors.iter().any(|t| t.base_id == bad),
        "{} error list",
        driver.name()
    );
    assert!(
        !errors.iter().any(|t| t.base_id == good),
        "{} lists an ok trace as error",
        driver.name()
    );
    assert!(driver.trace_messages("no-such-trace").unwrap().is_empty());
    vec![bad, good]
}

/// More rows than one INSERT statement takes, in one batch; returns the trace.
fn big_batch(driver: &dyn Driver) -> String {
    let (base, msgs) = captured_trace(|| {
        for i in 0..1500 {
            drop(Trace::new("db", || osp::info!({"i": i})));
        }
    });
    assert_eq!(msgs.len(), 3000);
    driver.notify(&msgs).unwrap();
    let back = driver.trace_messages(&base).unwrap();
    same(&back, &as_stored(driver, &msgs), driver.name());
    base
}

/// Deletes what a test stored in a server that keeps it (and checks deletion works).
fn clean_up(traces: &[String], delete: impl Fn(&str) -> u64, driver: &dyn Driver) {
    for t in traces {
        assert!(delete(t) > 0, "{} kept nothing of {t}", driver.name());
        assert!(driver.trace_messages(t).unwrap().is_empty());
        assert!(
            !driver
                .list_traces()
                .unwrap()
                .iter()
                .any(|s| &s.base_id == t)
        );
    }
}

#[test]
fn sqlite_in_memory() {
    let d = SqlDriver::open("sqlite://:memory:").unwrap();
    let mut traces = round_trip(&d);
    traces.push(big_batch(&d));
    clean_up(&traces, |t| d.delete_trace(t).unwrap(), &d);
}

#[test]
fn sqlite_file_uses_wal_and_keeps_data_across_opens() {
    let dir = std::env::temp_dir().join(format!("osp-sqlite-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("traces.db");
    let cs = format!("sqlite://{}", path.display());
    let (base, msgs) = {
        let d = SqlDriver::open(&cs).unwrap();
        round_trip(&d);
        big_batch(&d);
        let (base, msgs) = ok_trace();
        d.notify(&msgs).unwrap();
        assert!(
            dir.join("traces.db-wal").exists(),
            "SQLite file not in WAL mode"
        );
        (base, msgs)
    };
    let reopened = SqlDriver::open(&cs).unwrap();
    assert_eq!(reopened.trace_messages(&base).unwrap(), values(&msgs));
    drop(reopened);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn postgresql() {
    let d = SqlDriver::open(PG).unwrap();
    let mut traces = round_trip(&d);
    traces.push(big_batch(&d));
    clean_up(&traces, |t| d.delete_trace(t).unwrap(), &d);
}

#[test]
fn mysql_on_mariadb() {
    let d = SqlDriver::open(MY).unwrap();
    let traces = round_trip(&d);
    clean_up(&traces, |t| d.delete_trace(t).unwrap(), &d);
}

#[test]
fn mongodb_layout_is_pythons() {
    let d = MongoDriver::open(MONGO, true).unwrap();
    let mut traces = round_trip(&d);
    traces.push(big_batch(&d));

    // Document level, with the official client: Python's layout.
    let (base, msgs) = error_trace(None);
    d.notify(&msgs).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (docs, marker) = rt.block_on(async {
        let db = mongodb::Client::with_uri_str(MONGO)
            .await
            .unwrap()
            .database("osprofiler");
        let mut cur = db
            .collection::<mongodb::bson::Document>("profiler")
            .find(mongodb::bson::doc! {"base_id": &base})
            .await
            .unwrap();
        let mut docs = Vec::new();
        while cur.advance().await.unwrap() {
            docs.push(cur.deserialize_current().unwrap());
        }
        let marker = db
            .collection::<mongodb::bson::Document>("profiler_error")
            .find_one(mongodb::bson::doc! {"base_id": &base})
            .await
            .unwrap();
        (docs, marker)
    });
    assert_eq!(docs.len(), msgs.len());
    let keys: Vec<&str> = docs[0].keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "_id",
            "name",
            "base_id",
            "trace_id",
            "parent_id",
            "timestamp",
            "info",
            "project",
            "service"
        ]
    );
    assert_eq!(docs[0].get_str("project").unwrap(), "proj");
    assert!(docs[0].get_document("info").unwrap().contains_key("host"));
    let marker = marker.expect("the error trace is marked in profiler_error");
    let last_error = msgs
        .iter()
        .rev()
        .find(|m| m.error_type().is_some())
        .unwrap();
    assert_eq!(marker.get_str("timestamp").unwrap(), last_error.timestamp());
    traces.push(base);
    clean_up(&traces, |t| d.delete_trace(t).unwrap(), &d);
}

#[test]
fn redis_layout_is_pythons() {
    let d = RedisDriver::open(REDIS, true).unwrap();
    let mut traces = round_trip(&d);
    traces.push(big_batch(&d));

    // Byte level: one list per trace, newest first, Python-style JSON; the error marker.
    let (base, msgs) = error_trace(None);
    d.notify(&msgs).unwrap();
    let client = redis::Client::open(REDIS).unwrap();
    let mut c = client
        .get_connection()
        .expect("Redis at 127.0.0.1:6379 is needed");
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("osprofiler_opt:{base}"))
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    let expected: Vec<String> = msgs.iter().rev().map(Message::to_json).collect();
    assert_eq!(raw, expected);
    assert!(
        raw.iter()
            .any(|r| r.contains(r#""path": "/v1/\u00fcn\u00efcode""#))
    );
    let marker: String = redis::cmd("GET")
        .arg(format!("osprofiler_error:{base}"))
        .query(&mut c)
        .unwrap();
    let failed_stop = msgs.iter().find(|m| m.error_type().is_some()).unwrap();
    assert_eq!(
        marker,
        format!(
            r#"{{"base_id": "{base}", "timestamp": "{}"}}"#,
            failed_stop.timestamp()
        )
    );
    traces.push(base);
    clean_up(&traces, |t| d.delete_trace(t).unwrap(), &d);
    assert!(
        !d.list_error_traces()
            .unwrap()
            .iter()
            .any(|s| traces.contains(&s.base_id))
    );
}

#[test]
fn redis_without_filter_error_trace_sets_no_marker() {
    let d = RedisDriver::open(REDIS, false).unwrap();
    let (base, msgs) = error_trace(None);
    d.notify(&msgs).unwrap();
    assert!(
        !d.list_error_traces()
            .unwrap()
            .iter()
            .any(|t| t.base_id == base)
    );
    assert_eq!(d.trace_messages(&base).unwrap().len(), msgs.len());
    clean_up(&[base], |t| d.delete_trace(t).unwrap(), &d);
}

#[test]
fn redis_lists_a_trace_whatever_its_first_entry_is() {
    let d = RedisDriver::open(REDIS, false).unwrap();
    let client = redis::Client::open(REDIS).unwrap();
    let mut c = client
        .get_connection()
        .expect("Redis at 127.0.0.1:6379 is needed");
    let (base, msgs) = ok_trace();
    // The first stored entry (the list's tail: Python pushes newest first) is not JSON; the
    // second trace's has no timestamp; the third holds nothing readable at all.
    let key = |b: &str| format!("osprofiler_opt:{b}");
    let _: () = redis::cmd("RPUSH")
        .arg(key(&base))
        .arg("{not json")
        .query(&mut c)
        .unwrap();
    d.notify(&msgs).unwrap();
    let no_ts = format!("no-ts-{}", uuid_like(&base));
    let _: () = redis::cmd("RPUSH")
        .arg(key(&no_ts))
        .arg(r#"{"base_id": "x", "timestamp": 5}"#)
        .arg(r#"{"base_id": "x", "timestamp": "2020-01-01T00:00:00.000001"}"#)
        .query(&mut c)
        .unwrap();
    let nothing = format!("nothing-{}", uuid_like(&base));
    let _: () = redis::cmd("RPUSH")
        .arg(key(&nothing))
        .arg("\u{1}")
        .query(&mut c)
        .unwrap();
    let listed = d.list_traces().unwrap();
    let find = |b: &str| {
        listed
            .iter()
            .find(|s| s.base_id == b)
            .map(|s| s.timestamp.clone())
    };
    let earliest = msgs.iter().map(Message::timestamp).min().unwrap();
    assert_eq!(find(&base), Some(earliest));
    assert_eq!(find(&no_ts).as_deref(), Some("2020-01-01T00:00:00.000001"));
    assert_eq!(find(&nothing).as_deref(), Some(""));
    // The report counts the unreadable entry.
    assert_eq!(d.get_report(&base).unwrap().unreadable(), 1);
    for b in [&base, &no_ts, &nothing] {
        let _: () = redis::cmd("DEL").arg(key(b)).query(&mut c).unwrap();
    }
}

fn uuid_like(base: &str) -> String {
    base.chars().rev().take(12).collect()
}

fn open_err(cs: &str) -> String {
    match osprofiler_collectors::open(cs, &ProfilerConfig::default()) {
        Ok(d) => panic!("{cs} opened a {} driver", d.name()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn connection_strings_pick_drivers_and_bad_ones_are_named() {
    let conf = ProfilerConfig::default();
    for (cs, name) in [
        ("sqlite://:memory:", "sqlite"),
        (PG, "postgresql"),
        (
            "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
            "postgresql",
        ),
        ("postgres://postgres@127.0.0.1/test", "postgresql"),
        (MY, "mysql"),
        ("mysql+pymysql://root@127.0.0.1/test", "mysql"),
        (REDIS, "redis"),
        ("elasticsearch://127.0.0.1:9200", "elasticsearch"),
        ("elasticsearch+https://u:p@es.example", "elasticsearch"),
    ] {
        let d = osprofiler_collectors::open(cs, &conf).unwrap_or_else(|e| panic!("{cs}: {e}"));
        assert_eq!(d.name(), name, "{cs}");
    }
    let e = open_err("sqlite:///no/such/dir/x.db");
    assert!(e.contains("sqlite:///no/such/dir/x.db"), "{e}");
    let e = open_err("redis://:secret@127.0.0.1:notaport");
    assert!(e.contains("redis") && !e.contains("secret"), "{e}");
    let e = open_err("jaeger://127.0.0.1:6831");
    assert!(e.contains("otlp://"), "{e}");
    let e = open_err("elasticsearch://u:secret@127.0.0.1:9200?index=Bad");
    assert!(e.contains("index=\"Bad\"") && !e.contains("secret"), "{e}");
    let e = osprofiler_collectors::open_reader("postgresql://postgres@127.0.0.1:1/test", &conf)
        .expect("network drivers connect lazily")
        .list_traces()
        .unwrap_err();
    assert!(e.to_string().contains("postgresql"), "{e}");
}

#[test]
fn redis_down_then_up_gets_every_queued_message() {
    use osprofiler_core::notifier::{Notifier, QueueNotifier, QueueOptions};
    use std::time::Duration;
    let port = osprofiler_testkit::free_port();
    let driver = std::sync::Arc::new(
        RedisDriver::open(&format!("redis://127.0.0.1:{port}"), false).unwrap(),
    );
    let n = QueueNotifier::start(driver.clone(), QueueOptions::default()).unwrap();

    // Down at start: messages are taken at once and wait.
    let (first, msgs) = ok_trace();
    for m in msgs {
        n.notify(m);
    }
    assert!(!n.flush_for(Duration::from_millis(300)));
    assert!(n.stats().driver_errors >= 1);

    // Up: delivered without anyone asking.
    let server = osprofiler_testkit::servers::redis(port, &[]);
    assert!(
        n.flush_for(Duration::from_secs(10)),
        "not delivered after Redis came up"
    );
    assert_eq!(driver.trace_messages(&first).unwrap().len(), 2);

    // Restarted (the connection the driver holds is dead): reconnects by itself.
    drop(server);
    let server = osprofiler_testkit::servers::redis(port, &[]);
    let (second, msgs) = ok_trace();
    for m in msgs {
        n.notify(m);
    }
    assert!(
        n.flush_for(Duration::from_secs(10)),
        "not delivered after a Redis restart"
    );
    assert_eq!(driver.trace_messages(&second).unwrap().len(), 2);
    assert_eq!(n.stats().dropped_full + n.stats().dropped_failed, 0);
    drop(server);
}

/// Delivers `bad` (which the collector refuses) and `good` through a queue notifier: the
/// invalid messages are dropped and counted after bounded retries, the valid ones in the same
/// batch delivered, and nothing waits.
fn rejected_messages_are_dropped_alone(driver: std::sync::Arc<dyn Driver>, bad: Vec<Message>) {
    use osprofiler_core::notifier::{Notifier as _, QueueNotifier, QueueOptions};
    let (good, good_msgs) = ok_trace();
    let n = QueueNotifier::start(driver.clone(), QueueOptions::default()).unwrap();
    let bad_count = bad.len() as u64;
    for m in bad.into_iter().chain(good_msgs) {
        n.notify(m);
    }
    assert!(
        n.flush_for(std::time::Duration::from_secs(10)),
        "{}: the rejected messages do not hold up the queue",
        driver.name()
    );
    let stats = n.stats();
    assert_eq!(
        stats.dropped_failed,
        bad_count,
        "{}: {stats:?}",
        driver.name()
    );
    assert_eq!(driver.trace_messages(&good).unwrap().len(), 2);
}

#[test]
fn postgresql_rejects_a_base_id_too_long_for_its_column_alone() {
    let d = std::sync::Arc::new(SqlDriver::open(PG).unwrap());
    let long = "x".repeat(300);
    let (_, bad) = captured_trace_with(Some(&long), || drop(Trace::new("db", osp::Info::new)));
    rejected_messages_are_dropped_alone(d, bad);
}

#[test]
fn redis_rejects_a_trace_whose_key_holds_another_type_alone() {
    let d = std::sync::Arc::new(RedisDriver::open(REDIS, false).unwrap());
    let id = format!("osp-wrongtype-{}", uuid::Uuid::new_v4());
    let mut c = redis::Client::open(REDIS)
        .unwrap()
        .get_connection()
        .expect("Redis at 127.0.0.1:6379 is needed");
    let _: () = redis::cmd("SET")
        .arg(format!("osprofiler_opt:{id}"))
        .arg("not a list")
        .query(&mut c)
        .unwrap();
    let (_, bad) = captured_trace_with(Some(&id), || drop(Trace::new("db", osp::Info::new)));
    rejected_messages_are_dropped_alone(d, bad);
    let _: () = redis::cmd("DEL")
        .arg(format!("osprofiler_opt:{id}"))
        .query(&mut c)
        .unwrap();
}

#[test]
fn drivers_from_conf_follow_filter_error_trace_at_run_time() {
    let conf = ProfilerConfig::default();
    let d = RedisDriver::from_conf(REDIS, &conf).unwrap();
    let mut c = redis::Client::open(REDIS)
        .unwrap()
        .get_connection()
        .expect("Redis at 127.0.0.1:6379 is needed");
    let marked = |c: &mut redis::Connection, id: &str| -> bool {
        redis::cmd("EXISTS")
            .arg(format!("osprofiler_error:{id}"))
            .query(c)
            .unwrap()
    };
    osp::set_filter_error_trace(false);
    let (off, msgs) = error_trace(None);
    d.notify(&msgs).unwrap();
    osp::set_filter_error_trace(true);
    let (on, msgs) = error_trace(None);
    d.notify(&msgs).unwrap();
    osp::set_filter_error_trace(false);
    assert!(!marked(&mut c, &off), "switch off: no error marker");
    assert!(marked(&mut c, &on), "switched on at run time: marked");
    for id in [off, on] {
        d.delete_trace(&id).unwrap();
    }
}
