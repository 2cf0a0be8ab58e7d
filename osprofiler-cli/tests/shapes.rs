//! Every view of reports of any shape: a 100,000-deep chain and a 100,000-wide trace render
//! without overflowing a test thread's 2 MiB stack, and the binary (main thread) shows a saved
//! deep report in every format; detached points and microsecond order in the DOT graph.

use osprofiler_core::report::{Report, ReportOptions, drop_deep};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Instant;

const N: usize = 100_000;

fn msg(id: &str, parent: &str, name: &str, us: i64) -> Value {
    let (s, f) = (us / 1_000_000, us % 1_000_000);
    json!({"name": name, "base_id": "base", "trace_id": id, "parent_id": parent,
           "timestamp": format!("2024-01-01T00:{:02}:{:02}.{f:06}", s / 60, s % 60),
           "info": {"host": "h", "db": {"statement": "SELECT 1"}}, "project": "p", "service": "s"})
}

fn chain() -> Vec<Value> {
    let mut msgs = Vec::with_capacity(2 * N);
    for i in 0..N {
        let parent = if i == 0 {
            "base".into()
        } else {
            format!("p{}", i - 1)
        };
        msgs.push(msg(&format!("p{i}"), &parent, "db-start", i as i64));
        msgs.push(msg(
            &format!("p{i}"),
            &parent,
            "db-stop",
            3 * N as i64 - i as i64,
        ));
    }
    msgs
}

fn wide() -> Vec<Value> {
    let mut msgs = Vec::with_capacity(2 * N);
    for i in 0..N as i64 {
        msgs.push(msg(&format!("p{i}"), "base", "db-start", 2 * N as i64 - i));
        msgs.push(msg(&format!("p{i}"), "base", "db-stop", 2 * N as i64));
    }
    msgs
}

/// Builds and renders every view; returns the saved --json text.
fn every_view(what: &str, msgs: Vec<Value>) -> String {
    let t = Instant::now();
    let report = Report::build_owned(msgs, ReportOptions::default()).into_value();
    let built = t.elapsed();
    let tree = osprofiler_cli::render_terminal(&report);
    let t_tree = t.elapsed();
    let json = osprofiler_cli::render_json(&report);
    let t_json = t.elapsed();
    let dot = osprofiler_cli::render_dot(&report);
    let t_dot = t.elapsed();
    let html = osprofiler_cli::render_html(&report, what);
    let t_html = t.elapsed();
    drop_deep(report);
    eprintln!(
        "{what}: build {built:?}, +tree {:?}, +json {:?}, +dot {:?}, +html {:?}, +drop {:?}",
        t_tree - built,
        t_json - t_tree,
        t_dot - t_json,
        t_html - t_dot,
        t.elapsed() - t_html
    );
    assert_eq!(tree.matches("─ db").count(), N, "{what}");
    assert_eq!(dot.matches(" -> ").count(), N, "{what}");
    assert!(html.contains("SELECT 1"));
    json
}

#[test]
fn a_deep_chain_and_a_wide_trace_render_in_every_view_on_a_small_stack() {
    let json = every_view("100,000-deep chain", chain());
    // Python's layout, then (past the depth Python can write) one line per remaining subtree.
    assert!(json.starts_with("{\n  \"children\": [\n    {\n"));
    let back = osprofiler_core::pyjson::from_str_deep(&json).unwrap();
    drop_deep(back);
    every_view("100,000-wide trace", wide());
}

#[test]
fn the_binary_shows_a_saved_100000_deep_report_in_every_format() {
    let dir = std::env::temp_dir().join(format!("osp-shapes-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("deep.json");
    let report = Report::build_owned(chain(), ReportOptions::default()).into_value();
    std::fs::write(&saved, osprofiler_cli::render_json(&report)).unwrap();
    drop_deep(report);
    let path = saved.to_str().unwrap();
    for format in [None, Some("--json"), Some("--dot"), Some("--html")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_osprofiler"));
        cmd.args(["trace", "show", path]).args(format);
        let t = Instant::now();
        let out = cmd.output().unwrap();
        eprintln!(
            "osprofiler trace show deep.json {format:?}: {:?}",
            t.elapsed()
        );
        assert!(
            out.status.success(),
            "{format:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        match format {
            None => assert_eq!(text.matches("─ db").count(), N),
            Some("--json") => assert!(
                text.strip_suffix('\n') == Some(&std::fs::read_to_string(&saved).unwrap()),
                "the saved report comes out as it went in"
            ),
            Some("--dot") => assert_eq!(text.matches(" -> ").count(), N),
            _ => assert!(text.contains("<!DOCTYPE html>")),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_dot_graph_orders_siblings_by_the_microsecond_and_labels_detached_points() {
    let msgs = [
        msg("root", "base", "wsgi-start", 0),
        msg("late", "root", "db-start", 9_907),
        msg("early", "root", "db-start", 9_491),
        msg("orphan", "gone", "db-start", 20_000),
        msg("root", "base", "wsgi-stop", 30_000),
    ];
    let report = Report::build(&msgs).into_value();
    let dot = osprofiler_cli::render_dot(&report);
    let lines: Vec<&str> = dot.lines().collect();
    assert_eq!(lines[0], "digraph {");
    assert!(lines[1].starts_with("\t0 [label=\"total - "), "{dot}");
    assert!(lines[2].starts_with("\t1 [label=\"s:wsgi - 30 ms"), "{dot}");
    // early (9.491 ms) before late (9.907 ms), though the JSON keeps store order.
    assert_eq!(
        report["children"][0]["children"][0]["trace_id"], "late",
        "Python's order in the JSON"
    );
    assert!(
        lines[3].starts_with("\t2 [label=\"s:db - 0 ms\\nSELECT 1\"]"),
        "{dot}"
    );
    assert_eq!(
        &lines[4..],
        [
            "\t1 -> 2",
            "\t3 [label=\"s:db - 0 ms\\nSELECT 1\"]",
            "\t1 -> 3",
            "\t0 -> 1",
            "\t4 [label=\"s:db - 0 ms\\nSELECT 1\\n(detached: parent gone not stored)\"]",
            "\t0 -> 4",
            "}"
        ],
        "{dot}"
    );
    let tree = osprofiler_cli::render_terminal(&report);
    assert!(
        tree.find("@9.491").unwrap() < tree.find("@9.907").unwrap(),
        "{tree}"
    );
}

#[test]
fn a_saved_report_that_is_not_json_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("osp-shapes-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("cut.json");
    // A deep report cut short: not JSON, said in one line, no crash.
    std::fs::write(&saved, "[".repeat(200_000)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_osprofiler"))
        .args(["trace", "show", saved.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a report in JSON"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
