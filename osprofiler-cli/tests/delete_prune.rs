//! The commands that change a store, and provisional traces, end to end on SQLite stores:
//! `trace delete` (refused for a trace written to less than a minute ago unless `--force`),
//! `prune --older-than` (whole traces whose newest point is older; `--dry-run` counts them),
//! and `--pending` on `trace list` / `trace show` for traces a service staged
//! (`trace_staging`, written here as the SQL collector writes it).
//!
//! Old traces are written as Python's SQL driver writes them (rows of `data` with text
//! timestamps in 2001).

use osprofiler_collectors::SqlDriver;
use osprofiler_core::notifier::Writer;
use osprofiler_core::{self as osp, Trace};
use serde_json::{Value, json};
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

/// The error line of a run that must fail with status `code`.
fn fails(out: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{err}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("osp-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A collector's SQLite store in `dir` with one trace of now (its base id and message count).
fn store(dir: &Path) -> (String, PathBuf, String, usize) {
    let path = dir.join("traces.db");
    let cs = format!("sqlite://{}", path.display());
    let (id, msgs) = osprofiler_testkit::captured_trace(|| {
        let _wsgi = Trace::new("wsgi", osp::Info::new);
        drop(Trace::new(
            "db",
            || osp::info!({"db": {"statement": "SELECT 1"}}),
        ));
    });
    SqlDriver::open(&cs).unwrap().notify(&msgs).unwrap();
    (cs, path, id, msgs.len())
}

/// Runs SQL statements on an SQLite file.
fn sql(path: &Path, statements: &[String]) {
    use sqlx::Connection as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        for s in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone()))
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    });
}

/// Text as an SQL literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Stores a trace as Python's SQL driver does: one `data` row per message, one point
/// starting at the first timestamp and stopping at the last.
fn python_trace(path: &Path, base_id: &str, times: [&str; 2]) {
    let point = uuid::Uuid::new_v4().to_string();
    let rows: Vec<String> = [("start", times[0]), ("stop", times[1])]
        .iter()
        .map(|(phase, ts)| {
            let m = json!({
                "name": format!("wsgi-{phase}"), "base_id": base_id, "trace_id": point,
                "parent_id": base_id, "timestamp": ts, "project": "py", "service": "api",
                "info": {"host": "py-host"},
            });
            format!(
                "INSERT INTO data (timestamp, base_id, parent_id, trace_id, project, host, \
                 service, name, data) VALUES ({}, {}, {}, {}, 'py', 'py-host', 'api', {}, {})",
                lit(ts),
                lit(base_id),
                lit(base_id),
                lit(&point),
                lit(&format!("wsgi-{phase}")),
                lit(&m.to_string())
            )
        })
        .collect();
    sql(path, &rows);
}

const OLD: [&str; 2] = ["2001-01-01T00:00:00.000000", "2001-01-01T00:00:00.250000"];

fn listed(cs: &str) -> String {
    ok(&osprofiler(&[
        "trace",
        "list",
        "--all",
        "--connection-string",
        cs,
    ]))
}

#[test]
fn trace_delete_refuses_a_trace_still_written_unless_forced() {
    let tmp = temp_dir();
    let (cs, path, young, young_msgs) = store(&tmp);
    let old = uuid::Uuid::new_v4().to_string();
    python_trace(&path, &old, OLD);

    // Written to just now: it may still be being written.
    let err = fails(
        &osprofiler(&["trace", "delete", &young, "--connection-string", &cs]),
        1,
    );
    assert!(
        err.contains(&format!("trace {young} was written to"))
            && err.contains("may still be being written; pass --force"),
        "{err}"
    );
    assert!(listed(&cs).contains(&young), "refused: nothing deleted");

    let out = ok(&osprofiler(&[
        "trace",
        "delete",
        &old,
        "--connection-string",
        &cs,
    ]));
    assert_eq!(out, format!("deleted trace {old} from {cs}: 2 messages\n"));
    let err = fails(
        &osprofiler(&["trace", "show", &old, "--connection-string", &cs]),
        1,
    );
    assert!(err.contains("not found"), "{err}");

    let out = ok(&osprofiler(&[
        "trace",
        "delete",
        &young,
        "--force",
        "--connection-string",
        &cs,
    ]));
    assert_eq!(
        out,
        format!("deleted trace {young} from {cs}: {young_msgs} messages\n")
    );
    assert!(!listed(&cs).contains(&young));

    // Not there (any more): an error naming it.
    let err = fails(
        &osprofiler(&["trace", "delete", &young, "--connection-string", &cs]),
        1,
    );
    assert!(
        err.contains(&format!("trace {young} not found in {cs}")),
        "{err}"
    );
    // A mistyped store is an error, not a new database.
    let typo = tmp.join("typo.db");
    let err = fails(
        &osprofiler(&[
            "trace",
            "delete",
            &old,
            "--connection-string",
            &format!("sqlite://{}", typo.display()),
        ]),
        1,
    );
    assert!(err.contains("no SQLite database at"), "{err}");
    assert!(!typo.exists());
    // A queue keeps nothing to delete.
    let err = fails(
        &osprofiler(&[
            "trace",
            "delete",
            &old,
            "--connection-string",
            "messaging://guest:pw@127.0.0.1:5672/",
        ]),
        1,
    );
    assert!(err.contains("cannot delete on messaging://"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");

    let help = ok(&osprofiler(&["trace", "delete", "--help"]));
    assert!(
        help.contains("--force") && help.contains("less than a minute"),
        "{help}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn prune_deletes_traces_whose_newest_point_is_old_and_dry_run_counts_them() {
    let tmp = temp_dir();
    let (cs, path, young, _) = store(&tmp);
    let (old, old2, still_written) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    python_trace(&path, &old, OLD);
    python_trace(&path, &old2, ["2002-03-01T00:00:00.000000"; 2]);
    // Started long ago, written to a moment ago: kept whole.
    let now = osprofiler_core::clock::format_timestamp(osprofiler_core::clock::system_micros(
        std::time::SystemTime::now(),
    ));
    python_trace(&path, &still_written, [OLD[0], &now]);

    for (age, says) in [
        ("30s", "less than 1m"),
        ("soon", "is not an age"),
        ("2024-05-01T10:00:00Z", "is not an age"),
    ] {
        let err = fails(
            &osprofiler(&["prune", "--older-than", age, "--connection-string", &cs]),
            2,
        );
        assert!(err.contains(says), "{age}: {err}");
    }

    let out = ok(&osprofiler(&[
        "prune",
        "--older-than",
        "7d",
        "--dry-run",
        "--connection-string",
        &cs,
    ]));
    assert!(
        out.starts_with(&format!("2 traces in {cs} with no point since "))
            && out.contains("prune would delete them (--dry-run: nothing deleted)"),
        "{out}"
    );
    let before = listed(&cs);
    assert!(before.contains(&old) && before.contains(&old2), "{before}");

    let out = ok(&osprofiler(&[
        "prune",
        "--older-than",
        "7d",
        "--connection-string",
        &cs,
    ]));
    assert!(
        out.starts_with(&format!("deleted 2 traces from {cs}: no point since ")),
        "{out}"
    );
    let after = listed(&cs);
    assert!(!after.contains(&old) && !after.contains(&old2), "{after}");
    assert!(
        after.contains(&young) && after.contains(&still_written),
        "{after}"
    );
    let out = ok(&osprofiler(&[
        "prune",
        "--older-than",
        "1m",
        "--connection-string",
        &cs,
    ]));
    assert!(out.starts_with("deleted 0 traces"), "{out}");

    let typo = tmp.join("typo.db");
    let err = fails(
        &osprofiler(&[
            "prune",
            "--older-than",
            "7d",
            "--connection-string",
            &format!("sqlite://{}", typo.display()),
        ]),
        1,
    );
    assert!(err.contains("no SQLite database at"), "{err}");
    assert!(!typo.exists());
    let help = ok(&osprofiler(&["prune", "--help"]));
    assert!(
        help.contains("--older-than") && help.contains("--dry-run"),
        "{help}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// A trace a service staged and did not keep (yet) is hidden; `--pending` shows it, marked.
/// The staging table is written here as the SQL collector lays it out.
#[test]
fn pending_traces_are_shown_only_with_pending() {
    let tmp = temp_dir();
    let (cs, path, stored, _) = store(&tmp);
    let (pending, _) = {
        let (id, msgs) = osprofiler_testkit::error_trace(None);
        SqlDriver::open(&cs).unwrap().notify(&msgs).unwrap();
        (id, msgs)
    };
    let since = osprofiler_core::clock::system_micros(std::time::SystemTime::now());
    sql(
        &path,
        &[
            "CREATE TABLE IF NOT EXISTS trace_staging (base_id VARCHAR(255) PRIMARY KEY, \
             state CHAR(1) NOT NULL, since_us BIGINT NOT NULL)"
                .into(),
            format!(
                "INSERT INTO trace_staging (base_id, state, since_us) VALUES ({}, 'p', {since})",
                lit(&pending)
            ),
        ],
    );

    let list = listed(&cs);
    assert!(list.contains(&stored) && !list.contains(&pending), "{list}");
    let list = ok(&osprofiler(&[
        "trace",
        "list",
        "--all",
        "--pending",
        "--connection-string",
        &cs,
    ]));
    let line = |id: &str| {
        list.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{list}"))
            .to_owned()
    };
    assert!(list.lines().next().unwrap().contains("  state  "), "{list}");
    assert!(
        line(&pending).contains(&format!("{pending}  pending  ")),
        "{list}"
    );
    assert!(
        line(&stored).contains(&format!("{stored}  stored   ")),
        "{list}"
    );
    let json: Value = serde_json::from_str(&ok(&osprofiler(&[
        "trace",
        "list",
        "--all",
        "--pending",
        "--json",
        "--connection-string",
        &cs,
    ])))
    .unwrap();
    let state = |id: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|t| t["base_id"] == id)
            .map(|t| t["state"].clone())
    };
    assert_eq!(state(&pending), Some(json!("pending")));
    assert_eq!(state(&stored), Some(json!("stored")));

    let err = fails(
        &osprofiler(&["trace", "show", &pending, "--connection-string", &cs]),
        1,
    );
    assert_eq!(
        err,
        format!(
            "osprofiler: trace {pending} is provisional and not kept (yet): it is removed unless \
             a service keeps it within the staging window; pass --pending to see it\n"
        )
    );
    let shown = ok(&osprofiler(&[
        "trace",
        "show",
        &pending,
        "--pending",
        "--connection-string",
        &cs,
    ]));
    let first = shown.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "trace {pending} is provisional and not kept (yet): pending"
        )),
        "{shown}"
    );
    assert!(shown.contains("wsgi"), "{shown}");
    // A program's format stays valid: the notice goes to standard error.
    let out = osprofiler(&[
        "trace",
        "show",
        &pending,
        "--pending",
        "--json",
        "--connection-string",
        &cs,
    ]);
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["children"][0]["info"]["name"], "wsgi");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is provisional"));
    // The stored trace shows as always, without a notice.
    let shown = ok(&osprofiler(&[
        "trace",
        "show",
        &stored,
        "--pending",
        "--connection-string",
        &cs,
    ]));
    assert!(!shown.contains("provisional"), "{shown}");

    // Dropped (not kept within the window, being removed).
    sql(
        &path,
        &[format!(
            "UPDATE trace_staging SET state = 'd' WHERE base_id = {}",
            lit(&pending)
        )],
    );
    let err = fails(
        &osprofiler(&["trace", "show", &pending, "--connection-string", &cs]),
        1,
    );
    assert!(err.contains("pass --pending to see it"), "{err}");
    let shown = ok(&osprofiler(&[
        "trace",
        "show",
        &pending,
        "--pending",
        "--connection-string",
        &cs,
    ]));
    assert!(shown.lines().next().unwrap().contains("dropped"), "{shown}");
    let list = ok(&osprofiler(&[
        "trace",
        "list",
        "--all",
        "--pending",
        "--connection-string",
        &cs,
    ]));
    assert!(list.contains(&format!("{pending}  dropped  ")), "{list}");
    // Kept: shown as any trace.
    sql(
        &path,
        &[format!(
            "UPDATE trace_staging SET state = 'k' WHERE base_id = {}",
            lit(&pending)
        )],
    );
    let shown = ok(&osprofiler(&[
        "trace",
        "show",
        &pending,
        "--connection-string",
        &cs,
    ]));
    assert!(!shown.contains("provisional"), "{shown}");
    assert!(listed(&cs).contains(&pending));
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// `trace delete` goes through the collector's writer whatever the collector: MongoDB here
/// (SecantusDB on 127.0.0.1:27017, started by `scripts/test`).
#[test]
fn trace_delete_on_mongodb() {
    const MONGO: &str = "mongodb://127.0.0.1:27017";
    let (id, msgs) = osprofiler_testkit::error_trace(None);
    osprofiler_collectors::MongoDriver::open(MONGO, true)
        .unwrap()
        .notify(&msgs)
        .unwrap_or_else(|e| panic!("MongoDB at 127.0.0.1:27017 (scripts/test starts it): {e}"));
    let err = fails(
        &osprofiler(&["trace", "delete", &id, "--connection-string", MONGO]),
        1,
    );
    assert!(err.contains("pass --force"), "{err}");
    let out = ok(&osprofiler(&[
        "trace",
        "delete",
        &id,
        "--force",
        "--connection-string",
        MONGO,
    ]));
    assert_eq!(
        out,
        format!("deleted trace {id} from {MONGO}: {} messages\n", msgs.len())
    );
    let err = fails(
        &osprofiler(&["trace", "show", &id, "--connection-string", MONGO]),
        1,
    );
    assert!(err.contains("not found"), "{err}");
}
