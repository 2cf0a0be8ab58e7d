//! Interop through MongoDB (127.0.0.1:27017; `scripts/test` starts SecantusDB there when no
//! MongoDB answers) with Python OSProfiler 4.4.0's MongoDB driver (pymongo): Python's CLI shows
//! a trace our demo stored exactly as ours does, ours shows and lists a trace Python stored,
//! and error traces are listed by both CLIs.

use osprofiler_core::{self as osp, ProfilerConfig, Trace};
use osprofiler_testkit::{python, python_tool};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

const MONGO: &str = "mongodb://127.0.0.1:27017";

fn run(cmd: &mut Command) -> String {
    let out: Output = cmd.output().expect("start the command");
    assert!(
        out.status.success(),
        "{cmd:?} failed (MongoDB at 127.0.0.1:27017 and the Python oracle with pymongo are needed; \
         scripts/test provides both):\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ours(args: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args(args)
        .args(["--connection-string", MONGO]))
}

fn pythons(args: &[&str]) -> String {
    run(Command::new(python_tool("osprofiler"))
        .args(args)
        .args(["--connection-string", MONGO]))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("no JSON ({e}):\n{text}"))
}

#[test]
fn python_shows_our_demo_and_we_show_pythons_trace() {
    // Ours to Python: the demo (two processes, three adapters) stores in MongoDB.
    let dir = std::env::temp_dir().join(format!("osp-pymongo-{}", uuid::Uuid::new_v4()));
    let out = run(Command::new(env!("CARGO_BIN_EXE_osprofiler")).args([
        "demo",
        "--connection-string",
        MONGO,
        "--dir",
        dir.to_str().unwrap(),
    ]));
    let _ = std::fs::remove_dir_all(&dir);
    let rust_id = out
        .lines()
        .find_map(|l| l.strip_prefix("trace ")?.split_whitespace().next())
        .unwrap_or_else(|| panic!("no trace id in the demo's output:\n{out}"))
        .to_owned();
    let theirs = json(&pythons(&["trace", "show", &rust_id, "--json"]));
    assert_eq!(json(&ours(&["trace", "show", &rust_id, "--json"])), theirs);
    assert_eq!(theirs["stats"]["db"]["count"], 32);

    // Python to ours: Python's MongoDB driver stores a trace.
    let script = r#"
import sys
from osprofiler import notifier, profiler
notifier.set(notifier.create(sys.argv[1], project="pyproj", service="pysvc", host="pyhost", conf={}))
profiler.init("key")
with profiler.Trace("wsgi", info={"request": {"path": "/py", "method": "GET", "query": "", "scheme": "http"}}):
    with profiler.Trace("db", info={"db": {"statement": "SELECT 'from python'"}}):
        pass
print(profiler.get().get_base_id())
"#;
    let py_id = run(Command::new(python()).args(["-c", script, MONGO]))
        .trim()
        .to_owned();
    let shown = ours(&["trace", "show", &py_id]);
    assert!(
        shown.contains("SELECT 'from python'") && shown.contains("[pysvc@"),
        "{shown}"
    );
    assert_eq!(
        json(&ours(&["trace", "show", &py_id, "--json"])),
        json(&pythons(&["trace", "show", &py_id, "--json"]))
    );
    let list = ours(&["trace", "list", "--all"]);
    for id in [&rust_id, &py_id] {
        assert!(
            list.lines().any(|l| l.starts_with(id.as_str())),
            "{id} not listed: {list}"
        );
    }
    let list = pythons(&["trace", "list"]);
    assert!(list.contains(&rust_id), "Python's list lacks ours: {list}");
}

#[test]
fn an_error_trace_is_listed_by_both_clis() {
    let conf = ProfilerConfig::builder()
        .enabled(true)
        .filter_error_trace(true)
        .connection_string(MONGO)
        .build();
    let guard = osprofiler_collectors::init_from_conf(&conf, "proj", "api", None).unwrap();
    let p = osp::init("SECRET_KEY", None, None).unwrap();
    {
        let mut t = Trace::new("db", || osp::info!({"db": {"statement": "SELEC 1"}}));
        t.error_with("OperationalError", "syntax error");
    }
    osp::clean();
    assert!(guard.flush(Duration::from_secs(10)));
    let id = p.base_id().to_string();
    let listed = ours(&["trace", "list", "--error-trace", "--all"]);
    assert!(listed.contains(&id), "ours: {listed}");
    let listed = pythons(&["trace", "list", "--error-trace", "1"]);
    assert!(listed.contains(&id), "Python's: {listed}");
}
