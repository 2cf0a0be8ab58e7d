//! The `db` point conformance suite: one set of scenarios, run by every DB adapter's
//! `tests/conformance.rs` against every database it supports, each asserting the same start and
//! stop info — the table in `osprofiler_core::db` — so that the adapters cannot drift apart.
//!
//! An adapter implements [`Adapter`] (how its library runs each scenario's statement) and
//! calls [`run`]; what its library cannot report is declared in [`Caps`] and checked too (a
//! point without `rows` where the library gives none, never a wrong count).

use crate::{Collector, table};
use osprofiler_core::db::fingerprint::{fingerprint_id, format_id, normalize};
use osprofiler_core::db::{Dialect, sanitize};
use osprofiler_core::dispatch::Dispatch;
use serde_json::{Map, Value, json};
use std::future::Future;

/// What an adapter's library lets it report; every `false` is one of the library-imposed
/// exceptions named in `osprofiler_core::db`.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Row counts on stop messages (diesel's hook has none).
    pub rows: bool,
    /// The database's error code (diesel's hook has none: it records its error kind).
    pub error_code: bool,
    /// Futures that can be dropped mid-call (not sync diesel).
    pub cancel: bool,
}

impl Caps {
    /// Everything.
    pub const ALL: Caps = Caps {
        rows: true,
        error_code: true,
        cancel: true,
    };
}

/// One adapter on one database, as the scenarios drive it. Statements come with the
/// database's placeholders (`$1` or `?`); every method runs inside the scenario's trace except
/// [`Adapter::setup`].
#[allow(async_fn_in_trait)]
pub trait Adapter {
    /// `postgresql`, `mysql` or `sqlite`.
    fn system(&self) -> &'static str;
    /// What the library reports.
    fn caps(&self) -> Caps;
    /// Runs set-up SQL (several statements) untraced.
    async fn setup(&mut self, sql: &str);
    /// A query with one bound text value; the rows it returned.
    async fn select(&mut self, sql: &str, name: &str) -> usize;
    /// A query without bound values; the rows it returned.
    async fn select_raw(&mut self, sql: &str) -> usize;
    /// Several statements run as one raw text (`batch_execute`, `raw_sql`,
    /// `execute_unprepared`).
    async fn batch(&mut self, sql: &str);
    /// A statement with a bound text and a bound integer; the rows it affected.
    async fn update(&mut self, sql: &str, name: &str, id: i64) -> u64;
    /// A statement that fails; its error's text.
    async fn fail(&mut self, sql: &str) -> String;
    /// Starts `sql` (polls its future once) and drops it before it finishes.
    async fn cancel(&mut self, sql: &str);
    /// `insert` (bound integer and text) in a transaction, committed or rolled back.
    async fn transaction(&mut self, insert: &str, id: i64, commit: bool);
    /// `insert` in a savepoint rolled back, inside a transaction committed.
    async fn savepoint(&mut self, insert: &str, id: i64);
    /// Streams the rows of `sql`; how many came.
    async fn stream(&mut self, sql: &str) -> usize;
}

/// Polls `fut` once, then drops it: a call started and abandoned (for [`Adapter::cancel`]).
pub async fn poll_once<F: Future>(fut: F) {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let _ = fut.as_mut().poll(cx);
        std::task::Poll::Ready(())
    })
    .await;
}

/// The `db` info every point of `system` carries: the target the conformance tests give their
/// adapters (PostgreSQL and MariaDB: database `test` on the local server; SQLite: `main`).
pub fn target(system: &str) -> Map<String, Value> {
    let v = match system {
        "postgresql" => {
            json!({"system": "postgresql", "namespace": "test", "server": "127.0.0.1:5432"})
        }
        "mysql" => json!({"system": "mysql", "namespace": "test", "server": "127.0.0.1:3306"}),
        "sqlite" => json!({"system": "sqlite", "namespace": "main"}),
        other => panic!("no conformance target for {other}"),
    };
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A query of a few seconds on `system`, to be cancelled.
fn slow_query(system: &str) -> &'static str {
    match system {
        "postgresql" => "SELECT pg_sleep(0.3)",
        "mysql" => "SELECT SLEEP(0.3)",
        _ => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) \
             SELECT count(*) FROM c"
        }
    }
}

/// A point: its start message's `db` info and its stop message's info (without `host`).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// `info.db` of the start message.
    pub start: Value,
    /// `info` of the stop message, `host` removed.
    pub stop: Value,
}

/// The `db` points of a trace, in the order they started.
pub fn points(msgs: &[Value]) -> Vec<Point> {
    msgs.iter()
        .filter(|m| m["name"] == "db-start")
        .map(|s| {
            let stop = msgs
                .iter()
                .find(|m| m["name"] == "db-stop" && m["trace_id"] == s["trace_id"])
                .expect("every db point stops");
            let mut info = stop["info"].clone();
            if let Some(o) = info.as_object_mut() {
                o.remove("host");
            }
            Point {
                start: s["info"]["db"].clone(),
                stop: info,
            }
        })
        .collect()
}

/// Runs `f` inside a fresh trace, in `scope`, and returns its `db` points, each with its
/// statement's shape keys taken out of `start` (checked by [`shape_of`]).
async fn traced_shapes<F: Future>(
    c: &Collector,
    scope: &Dispatch,
    f: F,
) -> Vec<(Point, Map<String, Value>)> {
    let mut got = points(&c.traced_run(scope, async { drop(f.await) }).await);
    got.iter_mut()
        .map(|p| {
            let shape = shape_of(&mut p.start);
            (p.clone(), shape)
        })
        .collect()
}

/// [`traced_shapes`] without the shapes.
async fn traced<F: Future>(c: &Collector, scope: &Dispatch, f: F) -> Vec<Point> {
    traced_shapes(c, scope, f)
        .await
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// Takes `fingerprint`, `normalized` and `values` out of a start's `db` info, checking the
/// rules every point follows: a statement (`query`, `prepare`) has a fingerprint, 16 lowercase
/// hex digits; `normalized` comes with `statement`, is its normalized text and names the
/// fingerprint; `values` is 16 hex digits; other calls have none of them.
pub fn shape_of(start: &mut Value) -> Map<String, Value> {
    let hex16 = |v: &Value| {
        v.as_str().is_some_and(|s| {
            s.len() == 16
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    };
    let db = start.as_object_mut().expect("db info is an object");
    let mut shape = Map::new();
    for key in ["fingerprint", "normalized", "values"] {
        if let Some(v) = db.remove(key) {
            shape.insert(key.into(), v);
        }
    }
    let statement = matches!(db["api"].as_str(), Some("query" | "prepare"));
    assert_eq!(
        shape.contains_key("fingerprint"),
        statement,
        "a fingerprint on every statement, on nothing else: {db:?} {shape:?}"
    );
    if statement {
        assert!(hex16(&shape["fingerprint"]), "{shape:?}");
    }
    if let Some(v) = shape.get("values") {
        assert!(hex16(v), "{shape:?}");
    }
    assert_eq!(
        shape.contains_key("normalized"),
        db.contains_key("statement"),
        "normalized text exactly with trace_sql: {db:?} {shape:?}"
    );
    if let (Some(Value::String(n)), Some(Value::String(st))) =
        (shape.get("normalized"), db.get("statement"))
    {
        let dialect = Dialect::of_system(db["system"].as_str().unwrap_or_default());
        assert_eq!(n, &normalize(st, dialect), "{db:?}");
        assert_eq!(shape["fingerprint"], format_id(fingerprint_id(n)));
    }
    shape
}

/// Runs every scenario on `adapter` and asserts the info of every point. `name` labels the
/// failures (`"sqlx on PostgreSQL"`). Each run has its own collector and sets `trace_sql` and
/// `trace_sql_params` in its own scope: runs of one test binary go in parallel.
pub async fn run<A: Adapter>(name: &str, adapter: &mut A) {
    let c = Collector::new();
    let (plain, sql, params) = (
        c.dispatch(),
        c.dispatch().trace_sql(true),
        c.dispatch().trace_sql(true).trace_sql_params(true),
    );
    let system = adapter.system();
    let caps = adapter.caps();
    let p = |n: usize| {
        if system == "postgresql" {
            format!("${n}")
        } else {
            "?".to_owned()
        }
    };
    let start = |api: &str, extra: Value| {
        let mut m = target(system);
        m.insert("api".into(), api.into());
        if let Value::Object(e) = extra {
            m.extend(e);
        }
        Value::Object(m)
    };
    let rows = |n: u64| {
        if caps.rows {
            json!({"db": {"rows": n}})
        } else {
            json!({})
        }
    };
    let t = table();
    adapter
        .setup(&format!(
            "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name VARCHAR(40)); \
             INSERT INTO {t} (id, name) VALUES (1, 'alice'), (2, 'bob'), (3, 'carol')"
        ))
        .await;

    let dialect = Dialect::of_system(system);
    let id_of = |sql: &str| format_id(fingerprint_id(&normalize(sql, dialect)));
    let select = format!("SELECT id, name FROM {t} WHERE name = {}", p(1));
    let got = traced_shapes(&c, &plain, async {
        assert_eq!(adapter.select(&select, "alice").await, 1)
    })
    .await;
    assert_eq!(
        got[0].0,
        Point {
            start: start("query", json!({})),
            stop: rows(1)
        },
        "{name}: a query, trace_sql off: no statement"
    );
    assert_eq!(
        got[0].1["fingerprint"],
        id_of(&select),
        "{name}: its fingerprint, trace_sql off"
    );
    let off_digest = got[0].1["values"].clone();
    assert!(
        off_digest.is_string(),
        "{name}: its bound values digested, trace_sql off: {got:?}"
    );

    let got = traced(&c, &sql, async {
        assert_eq!(adapter.select(&select, "alice").await, 1)
    })
    .await;
    assert_eq!(
        got,
        [Point {
            start: start("query", json!({ "statement": select })),
            stop: rows(1)
        }],
        "{name}: a query with a bound value keeps its text"
    );

    let mut digests = Vec::new();
    for value in ["alice", "bob", "alice"] {
        let got = traced_shapes(&c, &params, adapter.select(&select, value)).await;
        let bound = got[0].0.start["params"].as_str().unwrap_or_default();
        assert!(
            bound.contains(value),
            "{name}: trace_sql_params records the bound value: {got:?}"
        );
        digests.push(got[0].1["values"].clone());
    }
    assert!(digests[0].is_string(), "{name}: values digest with params");
    assert_ne!(
        digests[0], digests[1],
        "{name}: other values, another digest"
    );
    assert_eq!(digests[0], digests[2], "{name}: same values, same digest");
    assert_eq!(
        digests[0], off_digest,
        "{name}: the same digest whatever trace_sql and trace_sql_params say"
    );

    let raw = format!("SELECT id, name FROM {t} WHERE name = 'hunter2' OR id = 2");
    let mut shapes = Vec::new();
    for scope in [&plain, &sql] {
        let got = traced_shapes(&c, scope, async {
            assert_eq!(adapter.select_raw(&raw).await, 1)
        })
        .await;
        shapes.push(got);
    }
    let (off, on) = (&shapes[0], &shapes[1]);
    assert!(
        off[0].1["values"].is_string(),
        "{name}: a raw statement's values digest, trace_sql off: {off:?}"
    );
    assert_eq!(
        (&off[0].1["fingerprint"], &off[0].1["values"]),
        (&on[0].1["fingerprint"], &on[0].1["values"]),
        "{name}: the same with trace_sql"
    );
    assert_eq!(on[0].1["fingerprint"], id_of(&raw));
    let got = vec![on[0].0.clone()];
    assert_eq!(
        got,
        [Point {
            start: start(
                "query",
                json!({ "statement": format!("SELECT id, name FROM {t} WHERE name = ? OR id = ?") })
            ),
            stop: rows(1)
        }],
        "{name}: a query without bound values loses its literals"
    );

    let batch = format!(
        "UPDATE {t} SET name = 'hunter3' WHERE id = 99; DELETE FROM {t} WHERE name = 'hunter4'"
    );
    let got = traced(&c, &sql, adapter.batch(&batch)).await;
    assert_eq!(got.len(), 1, "{name}: {got:?}");
    assert_eq!(
        got[0].start,
        start(
            "query",
            json!({ "statement": format!("UPDATE {t} SET name = ? WHERE id = ?; DELETE FROM {t} WHERE name = ?") })
        ),
        "{name}: raw statements lose their literals"
    );
    assert!(
        got[0].stop == json!({}) || got[0].stop == rows(0),
        "{name}: a batch stops without an error, its rows (if the library counts them) 0: {:?}",
        got[0].stop
    );

    let update = format!("UPDATE {t} SET name = {} WHERE id <= {}", p(1), p(2));
    let got = traced(&c, &sql, async {
        assert_eq!(adapter.update(&update, "dave", 2).await, 2)
    })
    .await;
    assert_eq!(
        got,
        [Point {
            start: start("query", json!({ "statement": update })),
            stop: rows(2)
        }],
        "{name}: an update records the rows it affected"
    );

    let missing = "SELECT * FROM osp_no_such_table";
    let got = traced(&c, &sql, async {
        let text = adapter.fail(missing).await;
        assert!(text.contains("osp_no_such_table"), "{name}: {text}");
    })
    .await;
    assert_eq!(got.len(), 1, "{name}: {got:?}");
    assert_eq!(
        got[0].start,
        start("query", json!({ "statement": missing }))
    );
    let stop = &got[0].stop;
    assert!(
        stop["etype"].as_str().is_some_and(|e| !e.is_empty()),
        "{name}: etype: {stop}"
    );
    assert!(
        stop["message"]
            .as_str()
            .is_some_and(|m| m.contains("osp_no_such_table")),
        "{name}: message: {stop}"
    );
    assert!(
        stop["db"]["original_exception"]
            .as_str()
            .is_some_and(|m| m.contains("osp_no_such_table")),
        "{name}: original_exception: {stop}"
    );
    let mut db_keys: Vec<&str> = stop["db"]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    db_keys.sort_unstable();
    match (system, caps.error_code) {
        ("postgresql", true) => assert_eq!(stop["db"]["sqlstate"], "42P01", "{name}: {stop}"),
        ("mysql", true) => assert_eq!(stop["db"]["sqlstate"], "42S02", "{name}: {stop}"),
        ("sqlite", true) => assert_eq!(stop["db"]["code"], "1", "{name}: SQLITE_ERROR: {stop}"),
        _ => assert!(
            stop["db"]["code"].is_string(),
            "{name}: the library's error kind: {stop}"
        ),
    }
    assert_eq!(
        stop.as_object().map(|o| o.len()),
        Some(3),
        "{name}: etype, message and db: {stop}"
    );
    assert_eq!(db_keys.len(), 2, "{name}: {db_keys:?}");

    if caps.cancel {
        let slow = slow_query(system);
        let got = traced(&c, &sql, adapter.cancel(slow)).await;
        assert_eq!(
            got,
            [Point {
                start: start(
                    "query",
                    json!({ "statement": sanitize(slow, Dialect::of_system(system)) })
                ),
                stop: json!({"cancelled": true})
            }],
            "{name}: a call dropped before it finished"
        );
    }

    let insert = format!("INSERT INTO {t} (id, name) VALUES ({}, {})", p(1), p(2));
    for commit in [true, false] {
        let got = traced(
            &c,
            &sql,
            adapter.transaction(&insert, 10 + i64::from(commit), commit),
        )
        .await;
        let end = if commit { "commit" } else { "rollback" };
        assert_eq!(
            got,
            [
                Point {
                    start: start("begin", json!({"depth": 1})),
                    stop: json!({})
                },
                Point {
                    start: start("query", json!({ "statement": insert })),
                    stop: rows(1)
                },
                Point {
                    start: start(end, json!({"depth": 1})),
                    stop: json!({})
                },
            ],
            "{name}: a transaction, then {end}"
        );
    }

    let got = traced(&c, &sql, adapter.savepoint(&insert, 20)).await;
    assert_eq!(
        got,
        [
            Point {
                start: start("begin", json!({"depth": 1})),
                stop: json!({})
            },
            Point {
                start: start("savepoint", json!({"depth": 2})),
                stop: json!({})
            },
            Point {
                start: start("query", json!({ "statement": insert })),
                stop: rows(1)
            },
            Point {
                start: start("rollback_to_savepoint", json!({"depth": 2})),
                stop: json!({})
            },
            Point {
                start: start("commit", json!({"depth": 1})),
                stop: json!({})
            },
        ],
        "{name}: a savepoint rolled back inside a committed transaction"
    );

    let all = format!("SELECT id FROM {t} ORDER BY id");
    let got = traced(&c, &sql, async {
        assert_eq!(adapter.stream(&all).await, 4)
    })
    .await;
    assert_eq!(
        got,
        [Point {
            start: start("query", json!({ "statement": all })),
            stop: rows(4)
        }],
        "{name}: a streamed result counts its rows to the end"
    );

    adapter.setup(&format!("DROP TABLE {t}")).await;
}
