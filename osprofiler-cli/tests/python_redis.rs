//! Interop through Redis (127.0.0.1:6379) with Python OSProfiler 4.4.0: Python's CLI shows a
//! trace our services stored exactly as ours does, and our CLI shows and lists a trace that
//! Python code stored.

use osprofiler_testkit::{python, python_tool};
use serde_json::Value;
use std::process::{Command, Output};

const REDIS: &str = "redis://127.0.0.1:6379";

fn run(cmd: &mut Command) -> String {
    let out: Output = cmd.output().expect("start the command");
    assert!(
        out.status.success(),
        "{cmd:?} failed (Redis at 127.0.0.1:6379 and the Python oracle are needed):\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ours(args: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args(args)
        .args(["--connection-string", REDIS]))
}

/// Runs our demo with its points sent to Redis; returns the trace id.
fn rust_trace_in_redis() -> String {
    let dir = std::env::temp_dir().join(format!("osp-pyredis-{}", uuid::Uuid::new_v4()));
    let out = run(Command::new(env!("CARGO_BIN_EXE_osprofiler")).args([
        "demo",
        "--connection-string",
        REDIS,
        "--dir",
        dir.to_str().unwrap(),
    ]));
    let _ = std::fs::remove_dir_all(&dir);
    out.lines()
        .find_map(|l| l.strip_prefix("trace ")?.split_whitespace().next())
        .unwrap_or_else(|| panic!("no trace id in the demo's output:\n{out}"))
        .to_owned()
}

fn pythons_show(id: &str) -> Value {
    let text = run(Command::new(python_tool("osprofiler")).args([
        "trace",
        "show",
        id,
        "--json",
        "--connection-string",
        REDIS,
    ]));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("Python printed no JSON ({e}):\n{text}"))
}

#[test]
fn python_cli_shows_a_rust_trace_as_ours_does() {
    let id = rust_trace_in_redis();
    let ours: Value = serde_json::from_str(&ours(&["trace", "show", &id, "--json"])).unwrap();
    let theirs = pythons_show(&id);
    assert_eq!(ours, theirs);
    assert_eq!(theirs["stats"]["db"]["count"], 32);
}

#[test]
fn our_cli_shows_and_lists_a_python_trace() {
    let script = r#"
import sys
from osprofiler import notifier, profiler
notifier.set(notifier.create(sys.argv[1], project="pyproj", service="pysvc", host="pyhost", conf={}))
profiler.init("key")
with profiler.Trace("wsgi", info={"request": {"path": "/py", "method": "GET", "query": "", "scheme": "http"}}):
    with profiler.Trace("db", info={"db": {"statement": "SELECT 'from python'"}}):
        pass
    try:
        with profiler.Trace("db", info={"db": {"statement": "SELEC broken"}}):
            raise ValueError("bad sql")
    except ValueError:
        pass
print(profiler.get().get_base_id())
"#;
    let id = run(Command::new(python()).args(["-c", script, REDIS]))
        .trim()
        .to_owned();
    let shown = ours(&["trace", "show", &id]);
    assert!(shown.contains("SELECT 'from python'"), "{shown}");
    assert!(
        shown.contains("[pysvc@") && shown.contains("ERROR ValueError"),
        "{shown}"
    );
    let ours_json: Value = serde_json::from_str(&ours(&["trace", "show", &id, "--json"])).unwrap();
    assert_eq!(ours_json, pythons_show(&id));
    let rust_id = rust_trace_in_redis();
    let list = ours(&["trace", "list"]);
    assert!(
        list.lines().any(|l| l.starts_with(&id)),
        "Python's trace not listed: {list}"
    );
    assert!(
        list.lines().any(|l| l.starts_with(&rust_id)),
        "our trace not listed: {list}"
    );
}

/// A trace Python wrote has no summary: `trace list` computes its columns from its messages;
/// and Python's CLI still lists a store holding our summaries (`osprofiler_summary:*`, a key
/// none of its scans match).
#[test]
fn a_python_trace_is_listed_with_its_columns_and_python_lists_past_our_summaries() {
    let script = r#"
import sys
from osprofiler import notifier, profiler
notifier.set(notifier.create(sys.argv[1], project="pyproj", service="pysvc", host="pyhost", conf={}))
profiler.init("key")
with profiler.Trace("wsgi", info={"request": {"path": "/py", "method": "GET", "query": "", "scheme": "http"}}):
    with profiler.Trace("db", info={"db": {"statement": "SELECT 1"}}):
        pass
    try:
        with profiler.Trace("db", info={"db": {"statement": "SELEC broken"}}):
            raise ValueError("bad sql")
    except ValueError:
        pass
print(profiler.get().get_base_id())
"#;
    let id = run(Command::new(python()).args(["-c", script, REDIS]))
        .trim()
        .to_owned();
    let rust_id = rust_trace_in_redis();
    let listed: Value = serde_json::from_str(&ours(&["trace", "list", "--all", "--json"])).unwrap();
    let row = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["base_id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
            .clone()
    };
    let py = row(&id);
    assert_eq!(py["root"], "wsgi", "{py}");
    assert_eq!(
        (&py["points"], &py["db_statements"]),
        (&3.into(), &2.into()),
        "{py}"
    );
    assert_eq!(
        (&py["errors"], &py["error_type"]),
        (&1.into(), &"ValueError".into()),
        "{py}"
    );
    assert_eq!(py["services"], serde_json::json!(["pysvc"]));
    // Ours, from the two demo services' summaries.
    let rust = row(&rust_id);
    assert_eq!(
        rust["services"],
        serde_json::json!(["api", "worker"]),
        "{rust}"
    );
    // 32 db points, of which begin and commit are not statements.
    assert_eq!(rust["db_statements"], 30, "{rust}");
    let summaries: i64 = redis::cmd("LLEN")
        .arg(format!("osprofiler_summary:{rust_id}"))
        .query(
            &mut redis::Client::open(REDIS)
                .unwrap()
                .get_connection()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(summaries, 2, "one partial per service");
    let theirs = run(Command::new(python_tool("osprofiler")).args([
        "trace",
        "list",
        "--connection-string",
        REDIS,
    ]));
    assert!(
        theirs.contains(&rust_id) && theirs.contains(&id),
        "{theirs}"
    );
    assert!(!theirs.contains("osprofiler_summary"), "{theirs}");
}

/// A trace Python OSProfiler recorded with its own SQLAlchemy tracing (`add_tracing`: points
/// with `db.statement` and `db.params`, no fingerprint) is analysed as ours are: the
/// fingerprint comes from the statement, the values from the params, so the per-row loop is an
/// N+1 and the repeated read a duplicate.
#[test]
fn a_python_sqlalchemy_trace_is_analysed() {
    let script = r#"
import sys
import sqlalchemy as sa
from osprofiler import notifier, profiler, sqlalchemy as osp_sa
notifier.set(notifier.create(sys.argv[1], project="pyproj", service="pysvc", host="pyhost", conf={}))
engine = sa.create_engine("sqlite://")
with engine.begin() as c:
    c.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
    c.execute(sa.text("INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f')"))
osp_sa.add_tracing(sa, engine, "db")
profiler.init("key")
with profiler.Trace("wsgi", info={"request": {"path": "/items", "method": "GET", "query": "", "scheme": "http"}}):
    with engine.connect() as c:
        ids = [r[0] for r in c.execute(sa.text("SELECT id FROM items ORDER BY id"))]
        for i in ids:
            c.execute(sa.text("SELECT name FROM items WHERE id = :id"), {"id": i}).all()
        for _ in range(2):
            c.execute(sa.text("SELECT count(*) FROM items WHERE name = :n"), {"n": "a"}).all()
print(profiler.get().get_base_id())
"#;
    let id = run(Command::new(python()).args(["-c", script, REDIS]))
        .trim()
        .to_owned();
    let a: Value = serde_json::from_str(&ours(&["trace", "analyze", &id, "--json"])).unwrap();
    assert_eq!(a["base_id"], id.as_str());
    assert_eq!(a["db"]["statements"], 9, "{a}");
    let n1 = a["n_plus_one"].as_array().unwrap();
    assert_eq!(n1.len(), 1, "{a}");
    assert_eq!(
        (
            &n1[0]["fingerprint"],
            &n1[0]["calls"],
            &n1[0]["parent_name"]
        ),
        (
            &"SELECT name FROM items WHERE id = ?".into(),
            &6.into(),
            &"wsgi".into()
        ),
        "{a}"
    );
    let dups = a["duplicates"].as_array().unwrap();
    assert_eq!(dups.len(), 1, "{a}");
    assert_eq!(
        (&dups[0]["fingerprint"], &dups[0]["calls"]),
        (
            &"SELECT count(*) FROM items WHERE name = ?".into(),
            &2.into()
        ),
        "{a}"
    );
    assert_eq!(a["fingerprints"].as_array().unwrap().len(), 3, "{a}");
    assert_eq!(a["services"][0]["service"], "pysvc");
    // Listed with the same count of statements.
    let list: Value = serde_json::from_str(&ours(&["trace", "list", "--json", "--all"])).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["base_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not listed"));
    assert_eq!(row["db_statements"], 9, "{row}");
}
