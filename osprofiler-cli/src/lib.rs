//! The `osprofiler` command's renderers and loaders, usable as a library.
//!
//! A report is the JSON of [`osprofiler_core::report::Report`] (Python's `get_report`). This crate
//! turns it into the four views of `osprofiler trace show`:
//!
//! * [`render_terminal`] — the tree with durations and the SQL of `db` points (the default);
//! * [`render_json`] — the layout of Python's `osprofiler trace show --json` (indent,
//!   separators, `\uXXXX` escapes; keys sorted, where Python keeps insertion order);
//! * [`render_dot`] — a Graphviz digraph with Python's node labels;
//! * [`render_html`] — one self-contained page (no network needed): a collapsible tree with a
//!   timeline bar per point, a filter box and the raw messages of each point.
//!
//! ```
//! use osprofiler_core::report::Report;
//! let report = Report::build(&[]).into_value();
//! assert!(osprofiler_cli::render_json(&report).starts_with("{\n  \"children\": [],\n"));
//! assert!(osprofiler_cli::render_dot(&report).starts_with("digraph {"));
//! assert!(osprofiler_cli::render_html(&report, "empty").contains("<!DOCTYPE html>"));
//! ```

use osprofiler_core::notifier::Reader;
use osprofiler_core::{ProfilerConfig, report::Report, report::ReportOptions};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

pub mod demo;

/// What went wrong, as the one line the command prints before exiting with status 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Opens the collector named by `connection_string` (password redacted in errors).
pub fn open_driver(connection_string: &str) -> Result<std::sync::Arc<dyn Reader>, CliError> {
    osprofiler_collectors::open_reader(connection_string, &ProfilerConfig::default())
        .map_err(|e| CliError(e.to_string()))
}

/// The report to show: `trace` is a base id looked up in the collector, or the path of a
/// report saved with `--json`. A trace that is not stored is an error saying so.
pub fn load_report(
    trace: &str,
    connection_string: &str,
    opts: ReportOptions,
) -> Result<Value, CliError> {
    load_report_from(trace, connection_string, opts, open_driver)
}

/// [`load_report`] with the driver made by `open` (the CLI's `--consume` opens a consuming
/// messaging driver).
pub fn load_report_from(
    trace: &str,
    connection_string: &str,
    opts: ReportOptions,
    open: impl FnOnce(&str) -> Result<std::sync::Arc<dyn Reader>, CliError>,
) -> Result<Value, CliError> {
    let path = Path::new(trace);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError(format!("cannot read {trace}: {e}")))?;
        // Any depth: a saved report is as deep as its trace (serde_json alone stops at 128).
        let v: Value = osprofiler_core::pyjson::from_str_deep(&text)
            .map_err(|e| CliError(format!("{trace} is not a report in JSON: {e}")))?;
        if v.get("children").is_none() || v.get("info").is_none() {
            osprofiler_core::report::drop_deep(v);
            return Err(CliError(format!(
                "{trace} is JSON but not a trace report (no \"info\" and \"children\")"
            )));
        }
        return Ok(v);
    }
    let driver = open(connection_string)?;
    let messages = driver.trace_messages(trace).map_err(|e| {
        CliError(format!(
            "cannot read trace {trace} from {}: {e}",
            osprofiler_core::config::redact(connection_string)
        ))
    })?;
    if messages.is_empty() {
        return Err(CliError(format!(
            "trace {trace} not found in {} (check the id, the connection string and the HMAC key the trace was sent with)",
            osprofiler_core::config::redact(connection_string)
        )));
    }
    Ok(Report::build_owned(messages, opts).into_value())
}

/// The default view: the tree with each point's start and duration to the microsecond,
/// service@host, errors and the statement of `db` points, then per-name totals
/// ([`Report::render_tree_of`]).
pub fn render_terminal(report: &Value) -> String {
    Report::render_tree_of(report)
}

/// Python's `osprofiler trace show --json` output: `json.dumps(report, indent=2,
/// separators=(",", ": "))`, with every object's keys sorted (the same output whether or not
/// some dependency makes `serde_json` keep insertion order). Siblings stay in the report's
/// (Python's) order. Written without recursion; nesting deeper than
/// [`osprofiler_core::pyjson::PRETTY_DEPTH_LIMIT`] levels (where Python's `json.dumps` fails)
/// is written on one line.
pub fn render_json(report: &Value) -> String {
    osprofiler_core::pyjson::to_string_pretty_sorted(report)
}

/// A Graphviz digraph of the tree with Python's labels (`service:name - N ms`, plus the
/// request of `wsgi` points and the function of `rpc`/`driver` points). Siblings come in
/// precise (microsecond) order ([`osprofiler_core::report::Walk`]); a detached point's label
/// says so on a line of its own. Written without recursion.
pub fn render_dot(report: &Value) -> String {
    fn label(info: &Value) -> String {
        let name = info["name"].as_str().unwrap_or("");
        let took = info["finished"].as_i64().unwrap_or(0) - info["started"].as_i64().unwrap_or(0);
        let service = info["service"]
            .as_str()
            .map(|s| format!("{s}:"))
            .unwrap_or_default();
        let mut l = format!("{service}{name} - {took} ms");
        let start = &info[format!("meta.raw_payload.{name}-start").as_str()]["info"];
        if name == "wsgi" {
            let req = &start["request"];
            let path: String = req["path"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(30)
                .collect();
            let _ = write!(l, "\\n{} {path}..", req["method"].as_str().unwrap_or(""));
        } else if name == "rpc" || name == "driver" {
            if let Some(f) = start["function"]["name"].as_str() {
                let _ = write!(l, "\\n{}", f.rsplit('.').next().unwrap_or(f));
            }
        } else if name == "db"
            && let Some(sql) = start["db"]["statement"].as_str()
        {
            let short: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = short.chars().take(40).collect();
            let _ = write!(l, "\\n{short}");
        }
        l
    }
    fn quote(s: &str) -> String {
        let mut q = String::with_capacity(s.len() + 2);
        q.push('"');
        for c in s.chars() {
            if c == '"' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    }
    let walk = osprofiler_core::report::Walk::new(report);
    let mut out = String::from("digraph {\n");
    let _ = writeln!(out, "\t0 [label={}]", quote(&label(&report["info"])));
    // Node ids in depth-first order from 1 (0 is the report's total); each edge is written
    // once the child's subtree is, as a recursive walk would.
    let id = |i: usize| i + 1;
    let mut open: Vec<(usize, usize)> = Vec::new(); // (depth, point index)
    let close = |out: &mut String, open: &mut Vec<(usize, usize)>, depth: usize| {
        while open.last().is_some_and(|&(d, _)| d >= depth) {
            let Some((_, i)) = open.pop() else { break };
            let parent = walk.points[i].parent.map_or(0, id);
            let _ = writeln!(out, "\t{parent} -> {}", id(i));
        }
    };
    for (i, p) in walk.points.iter().enumerate() {
        close(&mut out, &mut open, p.depth);
        let mut l = label(&p.node["info"]);
        if let Some(d) = &p.detached {
            let _ = write!(l, "\\n({d})");
        }
        let _ = writeln!(out, "\t{} [label={}]", id(i), quote(&l));
        open.push((p.depth, i));
    }
    close(&mut out, &mut open, 0);
    out.push_str("}\n");
    out
}

const HTML_TEMPLATE: &str = include_str!("report.html");

/// One self-contained HTML page for the report (works offline: no external script, style or
/// font). `title` is shown in the header (usually the base id).
pub fn render_html(report: &Value, title: &str) -> String {
    // Inside <script>, a "</script>" in the data would end the element: `<` only occurs in
    // JSON strings, where \u003c means the same.
    let mut data = Vec::new();
    osprofiler_core::pyjson::write_value(
        &mut data,
        report,
        osprofiler_core::pyjson::Layout::Compact,
    );
    // Written from a `Value`'s strings: valid UTF-8.
    let data = String::from_utf8_lossy(&data).replace('<', "\\u003c");
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    HTML_TEMPLATE
        .replace("__TITLE__", &title)
        .replace("__DATA__", &data)
}
