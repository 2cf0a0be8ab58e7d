//! The `osprofiler` binary end to end: the demo stores a two-service trace in the embedded
//! SQLite collector, and `trace show` / `trace list` read it back in every format.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn osprofiler(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args(args)
        .env_remove("OSPROFILER_CONNECTION_STRING")
        .output()
        .expect("run osprofiler")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "osprofiler failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("osp-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the demo into `cs` and returns its base id (from the printed `trace <id> stored` line).
pub fn run_demo(cs: &str, dir: &Path) -> (String, String) {
    let out = ok(&osprofiler(&[
        "demo",
        "--connection-string",
        cs,
        "--dir",
        dir.to_str().unwrap(),
    ]));
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("trace ")?.split_whitespace().next())
        .unwrap_or_else(|| panic!("no trace id in demo output:\n{out}"))
        .to_owned();
    (id, out)
}

fn names(node: &Value) -> Vec<String> {
    node["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}@{}",
                c["info"]["name"].as_str().unwrap(),
                c["info"]["service"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn start_info(node: &Value) -> &Value {
    let name = node["info"]["name"].as_str().unwrap();
    &node["info"][format!("meta.raw_payload.{name}-start").as_str()]["info"]
}

#[test]
fn demo_stores_one_tree_across_two_processes_and_every_view_shows_it() {
    let tmp = temp_dir();
    let cs = format!("sqlite://{}", tmp.join("traces.db").display());
    let (id, printed) = run_demo(&cs, &tmp.join("dbs"));
    assert!(
        printed.contains("[api@") && printed.contains("[worker@"),
        "{printed}"
    );
    assert!(printed.contains("osprofiler trace show"), "{printed}");

    let json = ok(&osprofiler(&[
        "trace",
        "show",
        &id,
        "--json",
        "--connection-string",
        &cs,
    ]));
    let report: Value = serde_json::from_str(&json).unwrap();
    // caller -> api wsgi -> (sqlx × 24 (the N+1 and the duplicate), sea-orm, diesel,
    // http -> worker wsgi -> (sqlx, diesel, sqlx (slow), sea-orm tx))
    assert_eq!(names(&report), ["wsgi@api"]);
    let api = &report["children"][0];
    let mut expected = vec!["db@api"; 26];
    expected.push("http@api");
    assert_eq!(names(api), expected);
    let statements: Vec<&str> = api["children"].as_array().unwrap()[..26]
        .iter()
        .map(|n| start_info(n)["db"]["statement"].as_str().unwrap())
        .collect();
    let mut expected = vec![
        "SELECT item FROM orders WHERE id = ?",
        "SELECT name FROM customers WHERE id = ?",
        "SELECT product_id, qty FROM order_lines WHERE order_id = ? ORDER BY id",
    ];
    expected.extend(["SELECT price FROM products WHERE id = ?"; 20]);
    expected.extend([
        "SELECT name FROM customers WHERE id = ?",
        "SELECT id, name FROM customers ORDER BY id",
        "UPDATE orders SET seen = seen + ? WHERE id = ?",
    ]);
    assert_eq!(statements, expected);
    let http = &api["children"][26];
    assert_eq!(names(http), ["wsgi@worker"]);
    let worker = &http["children"][0];
    assert_eq!(
        names(worker),
        [
            "db@worker",
            "db@worker",
            "db@worker",
            "db@worker",
            "db@worker",
            "db@worker"
        ]
    );
    let worker_db: Vec<(&str, Option<&str>)> = worker["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let db = &start_info(n)["db"];
            (db["api"].as_str().unwrap(), db["statement"].as_str())
        })
        .collect();
    assert_eq!(
        worker_db,
        [
            ("query", Some("SELECT qty FROM stock WHERE item = ?")),
            (
                "query",
                Some("UPDATE stock SET reserved = reserved + ? WHERE item = ?")
            ),
            (
                "query",
                Some(
                    "WITH RECURSIVE days(n) AS (SELECT ? UNION ALL SELECT n + ? FROM days WHERE n < ?) SELECT count(*) FROM days"
                )
            ),
            ("begin", None),
            ("query", Some("INSERT INTO reservations (item) VALUES (?)")),
            ("commit", None),
        ],
        "one SQL policy for every adapter: no literal in any statement"
    );
    assert_eq!(report["stats"]["db"]["count"], 32);
    // The JSON is Python's layout: two-space indent, ", "-free separators.
    assert!(json.starts_with("{\n  \""), "{json:.40}");

    let list = ok(&osprofiler(&["trace", "list", "--connection-string", &cs]));
    assert!(list.lines().any(|l| l.starts_with(&id)), "{list}");
    let errors = ok(&osprofiler(&[
        "trace",
        "list",
        "--error-trace",
        "--connection-string",
        &cs,
    ]));
    assert!(
        !errors.contains(&id),
        "the demo trace has no error: {errors}"
    );

    let terminal = ok(&osprofiler(&[
        "trace",
        "show",
        &id,
        "--connection-string",
        &cs,
    ]));
    assert!(
        terminal.contains("SELECT item FROM orders WHERE id = ?"),
        "{terminal}"
    );
    assert!(terminal.contains("└─ wsgi"), "{terminal}");
    // It ends with the analysis in three lines.
    let last: Vec<&str> = terminal.lines().rev().take(3).collect();
    assert!(
        last[2].starts_with("duration ") && last[2].contains(" in 30 statements · errors: 0"),
        "{terminal}"
    );
    assert!(
        last[1].starts_with("slowest statement: ") && last[1].contains("WITH RECURSIVE days"),
        "{terminal}"
    );
    assert!(
        last[0].starts_with("N+1: 1 (20× under wsgi) · duplicates: 1 (2×) · critical path: "),
        "{terminal}"
    );

    // The analysis of the stored trace finds the demo's three faults: the N+1 over the order's
    // 20 lines, the customer read twice with the same value, and the slow forecast behind the
    // HTTP hop to the worker, which holds the request up. Begin and commit are not statements.
    let analysis: Value = serde_json::from_str(&ok(&osprofiler(&[
        "trace",
        "analyze",
        &id,
        "--json",
        "--connection-string",
        &cs,
    ])))
    .unwrap();
    assert_eq!(analysis["base_id"], id.as_str());
    // The library gives the same analysis of the same report.
    let library = osprofiler_core::analysis::Analysis::of(
        &report,
        &osprofiler_core::analysis::AnalysisOptions::default(),
    );
    assert_eq!(serde_json::to_value(&library).unwrap(), analysis);
    assert_eq!(analysis["points"], 35);
    assert_eq!(analysis["db"]["statements"], 30);
    assert_eq!(analysis["errors"], serde_json::json!([]));
    let share = analysis["db"]["share"].as_f64().unwrap();
    assert!(share > 0.3 && share <= 1.0, "{analysis}");
    let forecast = &analysis["fingerprints"][0];
    assert!(
        forecast["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("WITH RECURSIVE days(n) AS (SELECT ? UNION ALL"),
        "the slow statement costs the most: {analysis}"
    );
    assert_eq!(forecast["services"], serde_json::json!(["worker"]));
    assert_eq!(forecast["calls"], 1);
    let n1 = analysis["n_plus_one"].as_array().unwrap();
    assert_eq!(n1.len(), 1, "{analysis}");
    assert_eq!(
        (
            &n1[0]["fingerprint"],
            &n1[0]["calls"],
            &n1[0]["parent_name"]
        ),
        (
            &"SELECT price FROM products WHERE id = ?".into(),
            &20.into(),
            &"wsgi".into()
        )
    );
    assert_eq!(n1[0]["parent_id"], report["children"][0]["trace_id"]);
    let dups = analysis["duplicates"].as_array().unwrap();
    assert_eq!(dups.len(), 1, "{analysis}");
    assert_eq!(
        (&dups[0]["fingerprint"], &dups[0]["calls"]),
        (&"SELECT name FROM customers WHERE id = ?".into(), &2.into())
    );
    // The critical path runs from the API through the hop into the worker's slow statement,
    // which has the most self time on it.
    let path: Vec<String> = analysis["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["service"].as_str().unwrap()
            )
        })
        .collect();
    for hop in ["wsgi@api", "http@api", "wsgi@worker"] {
        assert!(path.contains(&hop.to_owned()), "{path:?}");
    }
    let heaviest = analysis["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["self_ms"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["self_ms"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(
        heaviest["trace_id"], http["children"][0]["children"][2]["trace_id"],
        "the forecast: {analysis}"
    );

    let dot = ok(&osprofiler(&[
        "trace",
        "show",
        &id,
        "--dot",
        "--connection-string",
        &cs,
    ]));
    assert!(dot.starts_with("digraph {\n"));
    assert_eq!(
        dot.matches(" -> ").count(),
        35,
        "35 points, each with an edge from its parent:\n{dot}"
    );
    assert!(dot.contains("label=\"api:wsgi - "), "{dot}");

    let html_path = tmp.join("trace.html");
    ok(&osprofiler(&[
        "trace",
        "show",
        &id,
        "--html",
        "--out",
        html_path.to_str().unwrap(),
        "--connection-string",
        &cs,
    ]));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains(&id) && html.contains("SELECT qty FROM stock WHERE item = ?"));
    assert!(
        !html.contains("<script src") && !html.contains("http://cdn"),
        "must work offline"
    );

    // A saved JSON report is shown again without the collector.
    let saved = tmp.join("report.json");
    std::fs::write(&saved, &json).unwrap();
    let again = ok(&osprofiler(&[
        "trace",
        "show",
        saved.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), report);

    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn errors_are_one_clear_line_and_exit_1() {
    let tmp = temp_dir();
    let cs = format!("sqlite://{}", tmp.join("empty.db").display());
    for (args, expect) in [
        (
            vec![
                "trace",
                "show",
                "0d6b7a4e-0000-4000-8000-000000000000",
                "--connection-string",
                &cs,
            ],
            "no SQLite database at",
        ),
        (
            vec!["trace", "list", "--connection-string", "nosuch://x"],
            "\"nosuch\"",
        ),
        (
            vec![
                "trace",
                "show",
                "x",
                "--connection-string",
                "redis://:pw@127.0.0.1:notaport",
            ],
            "redis",
        ),
        (
            vec!["trace", "show", "x", "--json", "--html"],
            "cannot be used with",
        ),
    ] {
        let out = osprofiler(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains(":pw@"), "password shown: {err}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Reading creates nothing: a mistyped SQLite path is an error, not a new empty database; a
/// database without the table says so; a trace not stored is "not found".
#[test]
fn reading_never_creates_storage() {
    let tmp = temp_dir();
    let typo = tmp.join("typo.db");
    let cs = format!("sqlite://{}", typo.display());
    for args in [
        vec!["trace", "list", "--connection-string", &cs],
        vec![
            "trace",
            "show",
            "0d6b7a4e-0000-4000-8000-000000000000",
            "--connection-string",
            &cs,
        ],
    ] {
        let out = osprofiler(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            err.contains(&format!("no SQLite database at {}", typo.display())),
            "{err}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // An SQLite file that is not a collector's: the table is missing, and stays so.
    let other = tmp.join("other.db");
    std::fs::write(&other, b"").unwrap();
    let out = osprofiler(&[
        "trace",
        "list",
        "--connection-string",
        &format!("sqlite://{}", other.display()),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no osprofiler table `data`"), "{err}");
    assert_eq!(
        std::fs::metadata(&other).unwrap().len(),
        0,
        "nothing written into it"
    );
    // A collector's database: a trace not there is "not found".
    let real = format!("sqlite://{}", tmp.join("real.db").display());
    osprofiler_collectors::SqlDriver::open(&real).unwrap();
    let out = osprofiler(&[
        "trace",
        "show",
        "0d6b7a4e-0000-4000-8000-000000000000",
        "--connection-string",
        &real,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let empty = ok(&osprofiler(&[
        "trace",
        "list",
        "--connection-string",
        &real,
    ]));
    assert_eq!(empty.lines().count(), 1, "only the header: {empty}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// A PostgreSQL role that may only read lists and shows traces (nothing is created).
#[test]
fn a_read_only_postgresql_role_can_list_and_show() {
    use osprofiler_core::notifier::Writer as _;
    const PG: &str = "PostgreSQL at 127.0.0.1:5432 (database test; scripts/test starts it)";
    let writer =
        osprofiler_collectors::SqlDriver::open("postgresql://postgres@127.0.0.1:5432/test")
            .unwrap_or_else(|e| panic!("{PG}: {e}"));
    let (id, msgs) = osprofiler_testkit::captured_trace(|| {
        osprofiler_core::Trace::new("db", osprofiler_core::Info::new).finish();
    });
    writer.notify(&msgs).unwrap_or_else(|e| panic!("{PG}: {e}"));
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("{PG}: psql (Debian package postgresql-client): {e}"));
        assert!(
            out.status.success(),
            "{PG}: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'osp_reader') \
         THEN CREATE ROLE osp_reader LOGIN; END IF; END $$; \
         REVOKE CREATE ON SCHEMA public FROM osp_reader; REVOKE CREATE ON SCHEMA public FROM PUBLIC; \
         GRANT SELECT ON data TO osp_reader",
    );
    let cs = "postgresql://osp_reader@127.0.0.1:5432/test";
    let listed = ok(&osprofiler(&[
        "trace",
        "list",
        "--all",
        "--connection-string",
        cs,
    ]));
    assert!(listed.contains(&id), "{listed}");
    let shown = ok(&osprofiler(&[
        "trace",
        "show",
        &id,
        "--json",
        "--connection-string",
        cs,
    ]));
    assert!(shown.contains("\"db\""), "{shown}");
    writer.delete_trace(&id).unwrap();
}

/// `--config-file`: the service's `[profiler]` connection_string, unless one is given.
#[test]
fn the_connection_string_can_come_from_the_services_config_file() {
    let tmp = temp_dir();
    let cs = format!("sqlite://{}", tmp.join("conf.db").display());
    let (id, out) = run_demo(&cs, &tmp.join("dbs"));
    assert!(
        out.contains(&format!("trace {id} stored in {cs}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "osprofiler trace show {id} --connection-string '{cs}' --json"
        )),
        "{out}"
    );
    let conf = tmp.join("nova.conf");
    std::fs::write(&conf, format!("[DEFAULT]\ndebug = true\n\n[profiler]\nenabled = true\nhmac_keys = k\nconnection_string = {cs}\n")).unwrap();
    let listed = ok(&osprofiler(&[
        "trace",
        "list",
        "--config-file",
        conf.to_str().unwrap(),
    ]));
    assert!(listed.contains(&id), "{listed}");
    // --connection-string wins over the file.
    let other = format!("sqlite://{}", tmp.join("none.db").display());
    let out = osprofiler(&[
        "trace",
        "list",
        "--config-file",
        conf.to_str().unwrap(),
        "--connection-string",
        &other,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no SQLite database"));
    let out = osprofiler(&["trace", "list", "--config-file", "/no/such/nova.conf"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config-file"));
    // A [profiler] section without connection_string: said, not guessed.
    let bare = tmp.join("bare.conf");
    std::fs::write(&bare, "[profiler]\nenabled = true\n").unwrap();
    let out = osprofiler(&["trace", "list", "--config-file", bare.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no connection_string"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn connection_string_comes_from_the_environment_as_in_python() {
    let tmp = temp_dir();
    let cs = format!("sqlite://{}", tmp.join("env.db").display());
    let (id, _) = run_demo(&cs, &tmp.join("dbs"));
    let out = Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args(["trace", "list"])
        .env("OSPROFILER_CONNECTION_STRING", &cs)
        .output()
        .unwrap();
    assert!(ok(&out).contains(&id));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn reading_over_messaging_leaves_the_trace_in_the_queue_unless_consumed() {
    let tmp = temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .current_dir(&tmp)
        .args(["demo", "--connection-string", "messaging://", "--dir"])
        .arg(tmp.join("dbs"))
        .env_remove("OSPROFILER_CONNECTION_STRING")
        .output()
        .unwrap();
    let text = ok(&out);
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("trace ")?.split_whitespace().next())
        .unwrap_or_else(|| panic!("no trace id (RabbitMQ at 127.0.0.1:5672 is needed):\n{text}"))
        .to_owned();
    let show = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_osprofiler"))
            .args(["trace", "show", &id, "--connection-string", "messaging://"])
            .args(extra)
            .output()
            .unwrap()
    };
    // The demo read it back, and so can we, twice: nothing was taken.
    for _ in 0..2 {
        let shown = ok(&show(&[]));
        assert!(
            shown.contains("[worker@") && shown.contains("SELECT qty FROM stock"),
            "{shown}"
        );
    }
    // Listed from one read of the queue, which keeps the trace.
    let listed = ok(&osprofiler(&[
        "trace",
        "list",
        "--all",
        "--json",
        "--connection-string",
        "messaging://",
    ]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["base_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    assert_eq!(
        (&row["root"], &row["services"]),
        (&"wsgi".into(), &serde_json::json!(["api", "worker"])),
        "{row}"
    );
    assert!(ok(&show(&[])).contains("[worker@"));
    // Asked to, it takes the trace off the queue, and says so first.
    let consumed = show(&["--consume"]);
    assert!(ok(&consumed).contains("[worker@"));
    assert!(String::from_utf8_lossy(&consumed.stderr).contains("off the profiler.info queue"));
    let gone = show(&[]);
    assert!(!gone.status.success(), "the trace was consumed");
    // --consume means nothing to a store that keeps what it has.
    let wrong = Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args([
            "trace",
            "show",
            &id,
            "--consume",
            "--connection-string",
            "sqlite://x.db",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--consume applies to messaging://"));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn trace_list_shows_the_newest_50_unless_told_otherwise() {
    use osprofiler_core::notifier::Writer as _;
    let tmp = temp_dir();
    let cs = format!("sqlite://{}", tmp.join("list.db").display());
    let driver = osprofiler_collectors::SqlDriver::open(&cs).unwrap();
    let mut ids = Vec::new();
    for _ in 0..60 {
        let (id, msgs) = osprofiler_testkit::captured_trace(|| {
            osprofiler_core::Trace::new("db", osprofiler_core::Info::new).finish();
        });
        driver.notify(&msgs).unwrap();
        ids.push(id);
    }
    let listed = |extra: &[&str]| {
        let mut args = vec!["trace", "list", "--connection-string", cs.as_str()];
        args.extend_from_slice(extra);
        let out = osprofiler(&args);
        let rows: Vec<String> = ok(&out)
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect();
        (rows, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (rows, note) = listed(&[]);
    assert_eq!(rows, ids[10..], "the newest 50, oldest of them first");
    assert!(note.contains("the newest 50 of 60 traces"), "{note}");
    assert_eq!(listed(&["--limit", "5"]).0, ids[55..]);
    let (rows, note) = listed(&["--all"]);
    assert_eq!(rows, ids);
    assert!(note.is_empty(), "{note}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn trace_list_columns_filters_sort_and_json() {
    use osprofiler_core::dispatch::{self, Dispatch};
    use osprofiler_core::notifier::{QueueNotifier, Writer as _};
    use osprofiler_core::{self as osp, Info, Trace};
    use std::sync::Arc;
    use std::time::Duration;
    let tmp = temp_dir();
    let cs = format!("sqlite://{}", tmp.join("listing.db").display());
    let sql = Arc::new(osprofiler_collectors::SqlDriver::open(&cs).unwrap());
    assert!(sql.stores_summaries());
    let with_summaries = QueueNotifier::start(sql.clone(), Default::default()).unwrap();
    let without = QueueNotifier::start(
        Arc::new(osprofiler_testkit::WithoutSummaries(sql.clone())),
        Default::default(),
    )
    .unwrap();
    let trace = |n: &Arc<QueueNotifier>, service: &str, f: &dyn Fn()| {
        osp::identity::set_identity(Some("p"), Some(service), None);
        dispatch::with_default(&Dispatch::new(n.clone()), || {
            let p = osp::init("key", None, None).unwrap();
            f();
            osp::clean();
            p.base_id().to_string()
        })
    };
    let slow = trace(&with_summaries, "api", &|| {
        let _root = Trace::new("wsgi", Info::new);
        for ms in [1, 40, 1] {
            let _db = Trace::new("db", Info::new);
            std::thread::sleep(Duration::from_millis(ms));
        }
    });
    std::thread::sleep(Duration::from_millis(5));
    let between = osp::clock::format_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64,
    );
    let failing = trace(&with_summaries, "worker", &|| {
        let mut t = Trace::new("rpc", Info::new);
        t.error_with("IntegrityError", "duplicate key");
    });
    let python = trace(&without, "pysvc", &|| Trace::new("cli", Info::new).finish());
    for n in [&with_summaries, &without] {
        assert!(n.flush_for(Duration::from_secs(10)));
    }

    let run = |extra: &[&str]| -> (String, String) {
        let mut args = vec!["trace", "list", "--connection-string", cs.as_str()];
        args.extend_from_slice(extra);
        let out = osprofiler(&args);
        (ok(&out), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let ids = |extra: &[&str]| -> Vec<String> {
        run(extra)
            .0
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect()
    };

    // --json: the documented keys, the columns' values.
    let json: Value = serde_json::from_str(&run(&["--json"]).0).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let keys = [
        "base_id",
        "db_ms",
        "db_statements",
        "duration_ms",
        "error_type",
        "errors",
        "points",
        "root",
        "services",
        "start",
    ];
    for r in rows {
        let mut got: Vec<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        got.sort();
        assert_eq!(got, keys);
    }
    let row = |id: &str| rows.iter().find(|r| r["base_id"] == id).unwrap();
    let s = row(&slow);
    assert_eq!(
        (&s["root"], &s["points"], &s["db_statements"]),
        (&"wsgi".into(), &4.into(), &3.into())
    );
    assert!(s["db_ms"].as_f64().unwrap() >= 40.0, "{s}");
    assert!(
        s["duration_ms"].as_f64().unwrap() >= s["db_ms"].as_f64().unwrap(),
        "{s}"
    );
    assert_eq!(s["services"], serde_json::json!(["api"]));
    assert_eq!((&s["errors"], &s["error_type"]), (&0.into(), &Value::Null));
    let f = row(&failing);
    assert_eq!(
        (&f["errors"], &f["error_type"]),
        (&1.into(), &"IntegrityError".into())
    );
    let p = row(&python);
    assert_eq!(
        (&p["root"], &p["services"]),
        (&"cli".into(), &serde_json::json!(["pysvc"]))
    );

    // The table: a header and one line per trace, oldest first.
    let (table, _) = run(&[]);
    let header = table.lines().next().unwrap();
    for col in [
        "base_id", "start", "duration", "root", "points", "db", "db time", "errors", "services",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let line = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_owned()
    };
    assert!(line(&failing).contains("1 IntegrityError"), "{table}");
    assert!(
        line(&slow).contains(" wsgi ") && line(&slow).ends_with("api"),
        "{table}"
    );
    assert_eq!(ids(&[]), [slow.clone(), failing.clone(), python.clone()]);

    // Filters, sort, limit.
    assert_eq!(
        ids(&["--service", "worker"]),
        std::slice::from_ref(&failing)
    );
    assert_eq!(ids(&["--errors"]), std::slice::from_ref(&failing));
    assert_eq!(ids(&["--error-trace"]), std::slice::from_ref(&failing));
    assert_eq!(ids(&["--min-duration", "40"]), std::slice::from_ref(&slow));
    assert_eq!(
        ids(&["--since", &between]),
        [failing.clone(), python.clone()]
    );
    assert_eq!(
        ids(&["--since", &format!("{between}Z")]),
        [failing.clone(), python.clone()]
    );
    assert_eq!(ids(&["--since", "1h"]).len(), 3);
    assert_eq!(
        ids(&["--sort", "duration", "--limit", "1"]),
        std::slice::from_ref(&slow)
    );
    let (_, note) = run(&["--limit", "2"]);
    assert!(note.contains("the newest 2 of 3 traces"), "{note}");
    assert_eq!(ids(&["--limit", "2"]), [failing.clone(), python.clone()]);
    let (_, note) = run(&["--since", "1h", "--limit", "1"]);
    assert!(
        note.contains("the newest 1 matching traces; there are more"),
        "{note}"
    );

    // A bad value is an error naming the flag.
    for (args, flag) in [
        (["--since", "yesterday"], "--since"),
        (["--min-duration", "-3"], "--min-duration"),
        (["--min-duration", "fast"], "--min-duration"),
        (["--sort", "size"], "--sort"),
        (["--limit", "many"], "--limit"),
    ] {
        let mut all = vec!["trace", "list", "--connection-string", cs.as_str()];
        all.extend_from_slice(&args);
        let out = osprofiler(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    drop((with_summaries, without));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn analyze_finds_the_n_plus_one_the_duplicate_and_the_slow_hop() {
    let tmp = temp_dir();
    let saved = common::saved_report(&tmp);
    let saved = saved.to_str().unwrap();

    let v: Value =
        serde_json::from_str(&ok(&osprofiler(&["trace", "analyze", saved, "--json"]))).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "base_id",
            "duration_ms",
            "points",
            "errors",
            "services",
            "db",
            "fingerprints",
            "n_plus_one",
            "duplicates",
            "critical_path"
        ]
    );
    assert_eq!(v["base_id"], common::BASE);
    assert_eq!(v["duration_ms"], 124.0);
    assert_eq!(v["points"], 28);
    assert_eq!(v["db"]["statements"], 24);
    assert_eq!(v["db"]["total_ms"], 3.7 + 20.0 * 1.5 + 3.0 + 61.5);
    assert_eq!(
        v["errors"],
        serde_json::json!([{"trace_id": "api-rpc", "name": "rpc", "service": "api",
                            "message": "notify: no reply in 5 ms"}])
    );
    // Most total time first: the slow statement behind the HTTP hop, then the per-row query.
    assert_eq!(v["fingerprints"][0]["fingerprint"], common::SLOW_SQL);
    assert_eq!(
        v["fingerprints"][0]["services"],
        serde_json::json!(["inventory"])
    );
    assert_eq!(v["fingerprints"][1]["fingerprint"], common::ROW_SQL);
    assert_eq!(v["fingerprints"][1]["calls"], 20);
    assert_eq!(v["fingerprints"][1]["rows"], 20);
    assert_eq!(
        v["n_plus_one"],
        serde_json::json!([{"id": "0000000000002002", "fingerprint": common::ROW_SQL,
            "parent_id": "api-req", "parent_name": "wsgi", "calls": 20, "total_ms": 30.0}])
    );
    assert_eq!(
        v["duplicates"],
        serde_json::json!([{"id": "0000000000003003", "fingerprint": common::DUP_SQL,
            "calls": 2, "total_ms": 3.0}])
    );
    let path: Vec<(&str, &str)> = v["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["trace_id"].as_str().unwrap(),
                p["service"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(path.contains(&("db-slow", "inventory")), "{path:?}");
    assert!(path.contains(&("api-http", "api")), "{path:?}");
    assert_eq!(path[0], ("api-req", "api"));
    let slow = v["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["trace_id"] == "db-slow")
        .unwrap();
    assert_eq!(slow["self_ms"], 61.5);

    // The threshold is the user's.
    let v: Value = serde_json::from_str(&ok(&osprofiler(&[
        "trace",
        "analyze",
        saved,
        "--json",
        "--n1-min-calls",
        "21",
    ])))
    .unwrap();
    assert_eq!(v["n_plus_one"], serde_json::json!([]));

    // The terminal summary says the same.
    let text = ok(&osprofiler(&["trace", "analyze", saved]));
    assert!(
        text.starts_with(&format!(
            "trace {}: 124.000 ms, 28 points, errors: 1\n",
            common::BASE
        )),
        "{text}"
    );
    assert!(text.contains("db: 24 statements in 98.200 ms, "), "{text}");
    assert!(text.contains("notify: no reply in 5 ms"), "{text}");
    assert!(
        text.contains(
            "! 20× 30.000 ms under wsgi (api-req): SELECT name, price FROM items WHERE id = ?"
        ),
        "{text}"
    );
    assert!(
        text.contains("! 2× 3.000 ms: SELECT id, name, email FROM customers WHERE id = ?"),
        "{text}"
    );
    assert!(
        text.contains("    61.500        db [inventory] db-slow"),
        "{text}"
    );

    // And `trace show` ends with it in three lines.
    let tree = ok(&osprofiler(&["trace", "show", saved]));
    let last: Vec<&str> = tree.lines().rev().take(3).collect();
    assert!(
        last[2].starts_with("duration 124.000 ms · db 98.200 ms ("),
        "{tree}"
    );
    assert!(last[2].ends_with(" in 24 statements · errors: 1"), "{tree}");
    assert_eq!(
        last[1],
        format!(
            "slowest statement: 61.500 ms in 1 call  {}",
            common::SLOW_SQL
        )
    );
    assert!(
        last[0].starts_with("N+1: 1 (20× under wsgi) · duplicates: 1 (2×) · critical path: "),
        "{tree}"
    );
    assert!(last[0].contains("most db@inventory 61.500 ms"), "{tree}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn analyze_errors_are_one_line() {
    let tmp = temp_dir();
    let cs = format!("sqlite://{}", tmp.join("none.db").display());
    let out = osprofiler(&[
        "trace",
        "analyze",
        "no-such-trace",
        "--connection-string",
        &cs,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("osprofiler: ") && err.contains("none.db"),
        "{err}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn stats_ranks_statements_and_endpoints_across_traces() {
    let tmp = temp_dir();
    let cs = format!("sqlite://{}", tmp.join("traces.db").display());
    let (first, _) = run_demo(&cs, &tmp.join("dbs"));
    let (second, _) = run_demo(&cs, &tmp.join("dbs"));
    let stats = |extra: &[&str]| -> Value {
        let mut args = vec!["stats", "--json", "--connection-string", cs.as_str()];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&osprofiler(&args))).unwrap()
    };

    let all = stats(&[]);
    assert_eq!(all["traces"], 2);
    let top = &all["statements"][0];
    assert!(
        top["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("WITH RECURSIVE days"),
        "the forecast costs the most over both traces: {all}"
    );
    assert_eq!((&top["calls"], &top["traces"]), (&2.into(), &2.into()));
    let slowest = top["slowest_base_id"].as_str().unwrap();
    assert!(slowest == first || slowest == second, "{top}");
    assert!(top["p95_ms"].as_f64().unwrap() <= top["max_ms"].as_f64().unwrap());
    let per_row = all["statements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["fingerprint"] == "SELECT price FROM products WHERE id = ?")
        .unwrap();
    assert_eq!(
        (&per_row["calls"], &per_row["rows"]),
        (&40.into(), &40.into())
    );
    let totals: Vec<f64> = all["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["total_ms"].as_f64().unwrap())
        .collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
    assert_eq!(all["endpoints"].as_array().unwrap().len(), 1, "{all}");
    let e = &all["endpoints"][0];
    assert_eq!(
        (&e["endpoint"], &e["service"], &e["calls"]),
        (&"wsgi GET /orders/{id}".into(), &"api".into(), &2.into())
    );
    assert_eq!(e["statements_per_call"], 30.0);

    // One service: its statements, and the requests it served.
    let worker = stats(&["--service", "worker"]);
    assert_eq!(worker["endpoints"][0]["endpoint"], "wsgi GET /stock/widget");
    for s in worker["statements"].as_array().unwrap() {
        assert_eq!(s["services"], serde_json::json!(["worker"]), "{s}");
    }
    assert_eq!(stats(&["--service", "nobody"])["traces"], 0);
    // Nothing started after a time in the future; a bad value names its flag.
    assert_eq!(stats(&["--since", "2999-01-01T00:00:00Z"])["traces"], 0);
    let out = osprofiler(&["stats", "--since", "soon", "--connection-string", &cs]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));

    // The terminal tables.
    let text = ok(&osprofiler(&[
        "stats",
        "--top",
        "3",
        "--connection-string",
        &cs,
    ]));
    assert!(text.starts_with("2 traces\n"), "{text}");
    assert!(text.contains("api: wsgi GET /orders/{id}"), "{text}");
    assert!(text.contains("more: --top N, or --json for all"), "{text}");

    // trace list counts the same statements as the analysis (begin and commit are not).
    let list: Value = serde_json::from_str(&ok(&osprofiler(&[
        "trace",
        "list",
        "--json",
        "--connection-string",
        &cs,
    ])))
    .unwrap();
    for t in list.as_array().unwrap() {
        assert_eq!(
            (&t["points"], &t["db_statements"]),
            (&35.into(), &30.into()),
            "{t}"
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}
