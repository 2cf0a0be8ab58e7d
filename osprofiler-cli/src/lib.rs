//! The `osprofiler` command's renderers and loaders, usable as a library.
//!
//! A report is the JSON of [`osprofiler_core::report::Report`] (Python's `get_report`). This crate
//! turns it into the four views of `osprofiler trace show`:
//!
//! * [`render_terminal`] — the tree with durations and the SQL of `db` points (the default);
//! * [`render_json`] — the layout of Python's `osprofiler trace show --json` (indent,
//!   separators, `\uXXXX` escapes; keys sorted, where Python keeps insertion order);
//! * [`render_dot`] — a Graphviz digraph with Python's node labels;
//! * [`render_html`] — one self-contained page (no network needed): the analysis (summary bar,
//!   statements by time, N+1/duplicate warnings, critical path), a collapsible tree with a
//!   timeline bar per point, a filter box and the raw messages of each point.
//!
//! and the analysis of `osprofiler trace analyze`: [`render_analysis`], [`render_analysis_json`]
//! and the three lines `trace show` ends with, [`summary_lines`].
//!
//! The helpers of the commands that change a store (`osprofiler trace delete`, `osprofiler
//! prune`) and of provisional traces (`--pending`) are here too: [`open_writer`],
//! [`parse_age`], [`check_not_recent`], [`newest_micros`], [`load_shown_trace`],
//! [`provisional_notice`].
//!
//! ```
//! use osprofiler_core::report::Report;
//! let report = Report::build(&[]).into_value();
//! assert!(osprofiler_cli::render_json(&report).starts_with("{\n  \"children\": [],\n"));
//! assert!(osprofiler_cli::render_dot(&report).starts_with("digraph {"));
//! assert!(osprofiler_cli::render_html(&report, "empty").contains("<!DOCTYPE html>"));
//! ```

use osprofiler_core::analysis::{Analysis, AnalysisOptions};
use osprofiler_core::notifier::{Reader, TraceState, Writer};
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

/// Opens the writing half of the collector named by `connection_string` (what `trace delete`
/// and `prune` use). Creates the store's tables if missing, as a service does: open the
/// reader first ([`open_driver`]) to refuse a store that does not exist.
pub fn open_writer(connection_string: &str) -> Result<std::sync::Arc<dyn Writer>, CliError> {
    osprofiler_collectors::open(connection_string, &ProfilerConfig::default())
        .map_err(|e| CliError(e.to_string()))
}

/// How long after its newest point a trace may still be being written: `trace delete`
/// refuses a younger one without `--force`, and `prune --older-than` takes no less.
pub const STILL_WRITTEN: std::time::Duration = std::time::Duration::from_secs(60);

/// Parses an age such as `prune --older-than` takes: [`osprofiler_core::listing::parse_age`]
/// (a whole number and a unit, `s`, `m`, `h`, `d` or `w`: the units of `--since`).
pub use osprofiler_core::listing::parse_age;

/// The newest timestamp among a trace's messages, in microseconds since the epoch (`None`
/// when none has an OSProfiler timestamp).
pub fn newest_message_micros(messages: &[Value]) -> Option<i64> {
    messages
        .iter()
        .filter_map(|m| osprofiler_core::clock::parse_timestamp(m["timestamp"].as_str()?))
        .max()
}

/// When the newest message of a listed trace was written, in microseconds since the epoch:
/// its start plus its duration (what `prune --dry-run` compares with the cutoff).
pub fn newest_micros(t: &osprofiler_core::listing::TraceListing) -> i64 {
    t.start_micros()
        .saturating_add((t.duration_ms * 1000.0).round() as i64)
}

/// `trace delete` without `--force`: an error when the trace's newest message is less than
/// [`STILL_WRITTEN`] older than `now` (the trace may still be being written), or has no time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let m = serde_json::json!([{"timestamp": "1970-01-01T00:01:00.000000"}]);
/// let m = m.as_array().unwrap();
/// assert!(osprofiler_cli::check_not_recent("t", m, UNIX_EPOCH + Duration::from_secs(120)).is_ok());
/// let e = osprofiler_cli::check_not_recent("t", m, UNIX_EPOCH + Duration::from_secs(90)).unwrap_err();
/// assert!(e.to_string().contains("--force"));
/// ```
pub fn check_not_recent(
    trace: &str,
    messages: &[Value],
    now: std::time::SystemTime,
) -> Result<(), CliError> {
    let now_us = osprofiler_core::clock::system_micros(now);
    let Some(newest) = newest_message_micros(messages) else {
        return Err(CliError(format!(
            "trace {trace} has no message with a time: cannot tell whether it is still being \
             written; pass --force to delete it anyway"
        )));
    };
    let age_us = now_us.saturating_sub(newest);
    if age_us < STILL_WRITTEN.as_micros() as i64 {
        return Err(CliError(format!(
            "trace {trace} was written to {:.0} s ago (its newest point is at {} UTC): it may \
             still be being written; pass --force to delete it anyway",
            (age_us.max(0) as f64) / 1e6,
            osprofiler_core::clock::format_timestamp(newest)
        )));
    }
    Ok(())
}

/// The line `trace show --pending` starts a provisional trace with; `None` for a trace
/// stored for good.
///
/// ```
/// use osprofiler_core::notifier::TraceState;
/// assert_eq!(osprofiler_cli::provisional_notice("t", TraceState::Stored), None);
/// let n = osprofiler_cli::provisional_notice("t", TraceState::Pending).unwrap();
/// assert!(n.starts_with("trace t is provisional and not kept (yet)"), "{n}");
/// ```
pub fn provisional_notice(trace: &str, state: TraceState) -> Option<String> {
    match state {
        TraceState::Stored => None,
        TraceState::Pending => Some(format!(
            "trace {trace} is provisional and not kept (yet): pending, it is removed unless a \
             service keeps it within the staging window"
        )),
        TraceState::Dropped => Some(format!(
            "trace {trace} is provisional and not kept (yet): dropped, it was not kept within \
             the staging window and is being removed"
        )),
    }
}

/// What `trace show` shows, and the trace's [`TraceState`] (a saved report is
/// [`TraceState::Stored`]). A provisional trace ([`TraceState::Pending`] or
/// [`TraceState::Dropped`]) is an error unless `pending`, read or not; a trace that is not
/// stored is an error saying so. `open` makes the reader (see [`load_report_from`]).
pub fn load_shown_trace(
    trace: &str,
    connection_string: &str,
    opts: ReportOptions,
    pending: bool,
    open: impl FnOnce(&str) -> Result<std::sync::Arc<dyn Reader>, CliError>,
) -> Result<(Value, TraceState), CliError> {
    let mut state = TraceState::Stored;
    let report = load(trace, connection_string, opts, open, |driver| {
        state = driver.trace_state(trace).map_err(|e| {
            CliError(format!(
                "cannot read trace {trace} from {}: {e}",
                osprofiler_core::config::redact(connection_string)
            ))
        })?;
        if state != TraceState::Stored && !pending {
            return Err(CliError(format!(
                "trace {trace} is provisional and not kept (yet): it is removed unless a \
                 service keeps it within the staging window; pass --pending to see it"
            )));
        }
        Ok(())
    })?;
    Ok((report, state))
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
    load(trace, connection_string, opts, open, |_| Ok(()))
}

/// [`load_report_from`], with `check` asked about the trace before its messages are read
/// (not for a saved report).
fn load(
    trace: &str,
    connection_string: &str,
    opts: ReportOptions,
    open: impl FnOnce(&str) -> Result<std::sync::Arc<dyn Reader>, CliError>,
    check: impl FnOnce(&dyn Reader) -> Result<(), CliError>,
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
    check(&*driver)?;
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
/// ([`Report::render_tree_of`]), then the analysis in three lines ([`summary_lines`]).
pub fn render_terminal(report: &Value) -> String {
    let mut out = Report::render_tree_of(report);
    out.push('\n');
    out.push_str(&summary_lines(&Analysis::of(
        report,
        &AnalysisOptions::default(),
    )));
    out
}

fn cut(text: &str, max: usize) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max {
        folded
    } else {
        let mut s: String = folded.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

fn shape(id: &str, text: Option<&str>, max: usize) -> String {
    match text {
        Some(t) => cut(t, max),
        None => format!("(statement {id}, text not recorded)"),
    }
}

/// `n` and the noun for it: `1 trace`, `2 traces`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The analysis in three lines (what `trace show` ends with):
///
/// ```text
/// duration 52.301 ms · db 12.400 ms (23.7%) in 24 statements · errors: 0
/// slowest statement: 36.000 ms in 20 calls  SELECT … FROM items WHERE id = ?
/// N+1: 1 (20× under wsgi) · duplicates: 1 (2×) · critical path: 6 points, most db@worker 30.000 ms, wsgi@api 8.100 ms
/// ```
///
/// ```
/// use osprofiler_core::analysis::{Analysis, AnalysisOptions};
/// let a = Analysis::of(&osprofiler_core::report::Report::build(&[]).into_value(), &AnalysisOptions::default());
/// let s = osprofiler_cli::summary_lines(&a);
/// assert_eq!(s.lines().count(), 3);
/// assert!(s.starts_with("duration 0.000 ms · db 0.000 ms (0.0%) in 0 statements · errors: 0"));
/// ```
pub fn summary_lines(a: &Analysis) -> String {
    let mut out = format!(
        "duration {:.3} ms · db {:.3} ms ({:.1}%) in {} · errors: {}\n",
        a.duration_ms,
        a.db.total_ms,
        a.db.share * 100.0,
        plural(a.db.statements, "statement", "statements"),
        a.errors.len()
    );
    match a.fingerprints.first() {
        Some(f) => {
            let _ = writeln!(
                out,
                "slowest statement: {:.3} ms in {}  {}",
                f.total_ms,
                plural(f.calls, "call", "calls"),
                shape(&f.id, f.fingerprint.as_deref(), 80)
            );
        }
        None => out.push_str("slowest statement: none\n"),
    }
    let n1 = match a.n_plus_one.first() {
        None => "0".to_owned(),
        Some(n) => format!(
            "{} ({}× under {})",
            a.n_plus_one.len(),
            n.calls,
            n.parent_name
        ),
    };
    let dups = match a.duplicates.first() {
        None => "0".to_owned(),
        Some(d) => format!("{} ({}×)", a.duplicates.len(), d.calls),
    };
    // The path's biggest contributors (the whole path is in `trace analyze`).
    let mut top: Vec<&osprofiler_core::analysis::PathPoint> = a.critical_path.iter().collect();
    top.sort_by(|x, y| y.self_ms.total_cmp(&x.self_ms));
    let path = if top.is_empty() {
        "none".to_owned()
    } else {
        let most: Vec<String> = top
            .iter()
            .take(2)
            .map(|p| {
                format!(
                    "{}@{} {:.3} ms",
                    p.name,
                    p.service.as_deref().unwrap_or("?"),
                    p.self_ms
                )
            })
            .collect();
        format!(
            "{}, most {}",
            plural(top.len(), "point", "points"),
            most.join(", ")
        )
    };
    let _ = writeln!(
        out,
        "N+1: {n1} · duplicates: {dups} · critical path: {path}"
    );
    out
}

/// `osprofiler trace analyze`'s terminal summary: totals, errors, the statements that took
/// the most time, N+1 and duplicate warnings with their parent point, and the critical path.
///
/// ```
/// use osprofiler_core::analysis::{Analysis, AnalysisOptions};
/// let a = Analysis::of(&osprofiler_core::report::Report::build(&[]).into_value(), &AnalysisOptions::default());
/// assert!(osprofiler_cli::render_analysis(&a).contains("no statement"));
/// ```
pub fn render_analysis(a: &Analysis) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {}: {:.3} ms, {}, errors: {}",
        a.base_id.as_deref().unwrap_or("?"),
        a.duration_ms,
        plural(a.points, "point", "points"),
        a.errors.len()
    );
    let _ = writeln!(
        out,
        "db: {} in {:.3} ms, {:.1}% of the wall time",
        plural(a.db.statements, "statement", "statements"),
        a.db.total_ms,
        a.db.share * 100.0
    );
    if !a.errors.is_empty() {
        out.push_str("\nerrors\n");
        for e in &a.errors {
            let _ = writeln!(
                out,
                "  {} [{}] {}: {}",
                e.name,
                e.service.as_deref().unwrap_or("?"),
                e.trace_id,
                cut(&e.message, 120)
            );
        }
    }
    if a.fingerprints.is_empty() {
        out.push_str("\nno statement\n");
    } else {
        out.push_str("\nstatements by total time\n");
        let _ = writeln!(
            out,
            "  {:>6} {:>10} {:>9} {:>9} {:>7}  {:<16}  statement",
            "calls", "total ms", "mean ms", "max ms", "rows", "id"
        );
        for f in a.fingerprints.iter().take(10) {
            let _ = writeln!(
                out,
                "  {:>6} {:>10.3} {:>9.3} {:>9.3} {:>7}  {:<16}  {}",
                f.calls,
                f.total_ms,
                f.mean_ms,
                f.max_ms,
                f.rows,
                f.id,
                shape(&f.id, f.fingerprint.as_deref(), 90)
            );
        }
        if a.fingerprints.len() > 10 {
            let _ = writeln!(
                out,
                "  … and {} more (--json lists them all)",
                a.fingerprints.len() - 10
            );
        }
    }
    if !a.n_plus_one.is_empty() {
        out.push_str("\nN+1 queries\n");
        for n in &a.n_plus_one {
            let _ = writeln!(
                out,
                "  ! {}× {} ms under {} ({}): {}",
                n.calls,
                format_args!("{:.3}", n.total_ms),
                n.parent_name,
                n.parent_id,
                shape(&n.id, n.fingerprint.as_deref(), 90)
            );
        }
    }
    if !a.duplicates.is_empty() {
        out.push_str("\nduplicate statements (same values)\n");
        for d in &a.duplicates {
            let _ = writeln!(
                out,
                "  ! {}× {:.3} ms: {}",
                d.calls,
                d.total_ms,
                shape(&d.id, d.fingerprint.as_deref(), 90)
            );
        }
    }
    if !a.critical_path.is_empty() {
        out.push_str("\ncritical path (self ms on the path)\n");
        let top = a.critical_path.first().map_or(0, |p| p.depth);
        for p in &a.critical_path {
            let _ = writeln!(
                out,
                "  {:>10.3}  {}{} [{}] {}",
                p.self_ms,
                "  ".repeat(p.depth.saturating_sub(top).min(40)),
                p.name,
                p.service.as_deref().unwrap_or("?"),
                p.trace_id
            );
        }
    }
    out
}

/// `osprofiler trace analyze --json`: the analysis as pretty JSON with the keys of
/// [`osprofiler_core::analysis`].
pub fn render_analysis_json(a: &Analysis) -> String {
    serde_json::to_string_pretty(a).unwrap_or_else(|_| "{}".into())
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

/// What the HTML page gets besides the report: the analysis (the keys of `trace analyze
/// --json`) and the points each finding is made of, so that warnings can jump to them.
fn page_analysis(report: &Value) -> Value {
    let a = Analysis::of(report, &AnalysisOptions::default());
    let n1: Vec<&Vec<String>> = a.n_plus_one.iter().map(|n| &n.trace_ids).collect();
    let dups: Vec<&Vec<String>> = a.duplicates.iter().map(|d| &d.trace_ids).collect();
    let fp_of: serde_json::Map<String, Value> = osprofiler_core::analysis::db_calls(report)
        .into_iter()
        .filter_map(|c| Some((c.trace_id, Value::String(format!("{:016x}", c.id?)))))
        .collect();
    serde_json::json!({
        "analysis": a,
        "n_plus_one_points": n1,
        "duplicate_points": dups,
        "fingerprint_of": fp_of,
    })
}

/// JSON for inside a `<script>` element: a "</script>" in the data would end the element;
/// `<` only occurs in JSON strings, where \u003c means the same.
fn script_json(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "{}".into())
        .replace('<', "\\u003c")
}

/// One self-contained HTML page for the report (works offline: no external script, style or
/// font). `title` is shown in the header (usually the base id). The page carries the analysis
/// too: a summary bar (duration, DB share, statements, errors), the statements by total
/// time, N+1 and duplicate warnings that jump to their points, and the critical path marked
/// in the waterfall; siblings are ordered by their start to the microsecond.
pub fn render_html(report: &Value, title: &str) -> String {
    // The report may be as deep as it is long: written without recursion.
    let mut data = Vec::new();
    osprofiler_core::pyjson::write_value(
        &mut data,
        report,
        osprofiler_core::pyjson::Layout::Compact,
    );
    // Written from a `Value`'s strings: valid UTF-8.
    let data = String::from_utf8_lossy(&data).replace('<', "\\u003c");
    let analysis = script_json(&page_analysis(report));
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    fill(
        HTML_TEMPLATE,
        &[
            ("__TITLE__", &title),
            ("__ANALYSIS__", &analysis),
            ("__DATA__", &data),
        ],
    )
}

/// The template with each placeholder replaced, in one pass: a value is never searched for
/// placeholders (a statement may well contain "__DATA__").
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some((at, key, value)) = values
        .iter()
        .filter_map(|(k, v)| rest.find(k).map(|at| (at, *k, *v)))
        .min_by_key(|x| x.0)
    {
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + key.len()..];
    }
    out.push_str(rest);
    out
}

/// The terminal view of `osprofiler stats`: the endpoints, then the statements, each most total
/// time first and at most `top` rows.
///
/// ```
/// let stats = osprofiler_core::stats::StatsBuilder::new().finish();
/// assert!(osprofiler_cli::render_stats(&stats, 20).starts_with("0 traces"));
/// ```
pub fn render_stats(stats: &osprofiler_core::stats::Stats, top: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}{}",
        plural(stats.traces, "trace", "traces"),
        stats
            .service
            .as_deref()
            .map(|s| format!(", service {s}"))
            .unwrap_or_default()
    );
    let clip = |s: &str, n: usize| -> String {
        if s.chars().count() > n {
            let mut c: String = s.chars().take(n - 1).collect();
            c.push('…');
            c
        } else {
            s.to_owned()
        }
    };
    if !stats.endpoints.is_empty() {
        let _ = writeln!(
            out,
            "\nendpoints by total time\n{:>6} {:>11} {:>10} {:>10} {:>10} {:>6} {:>8}  {:<36}  endpoint",
            "calls", "total ms", "mean ms", "p95 ms", "max ms", "db %", "stmts", "slowest trace"
        );
        for e in stats.endpoints.iter().take(top) {
            let _ = writeln!(
                out,
                "{:>6} {:>11.3} {:>10.3} {:>10.3} {:>10.3} {:>5.1}% {:>8.1}  {:<36}  {}{}",
                e.calls,
                e.total_ms,
                e.mean_ms,
                e.p95_ms,
                e.max_ms,
                e.db_share * 100.0,
                e.statements_per_call,
                e.slowest_base_id.as_deref().unwrap_or("-"),
                e.service
                    .as_deref()
                    .map(|s| format!("{s}: "))
                    .unwrap_or_default(),
                clip(&e.endpoint, 80)
            );
        }
    }
    if !stats.statements.is_empty() {
        let _ = writeln!(
            out,
            "\nstatements by total time\n{:>6} {:>11} {:>10} {:>10} {:>10} {:>8}  {:<36}  statement",
            "calls", "total ms", "mean ms", "p95 ms", "max ms", "rows", "slowest trace"
        );
        for st in stats.statements.iter().take(top) {
            let text = st
                .fingerprint
                .clone()
                .unwrap_or_else(|| format!("(fingerprint {}, no text recorded)", st.id));
            let _ = writeln!(
                out,
                "{:>6} {:>11.3} {:>10.3} {:>10.3} {:>10.3} {:>8}  {:<36}  {} [{}]",
                st.calls,
                st.total_ms,
                st.mean_ms,
                st.p95_ms,
                st.max_ms,
                st.rows,
                st.slowest_base_id.as_deref().unwrap_or("-"),
                clip(&text, 100),
                st.services.join(", ")
            );
        }
    }
    let hidden =
        stats.endpoints.len().saturating_sub(top) + stats.statements.len().saturating_sub(top);
    if hidden > 0 {
        let _ = writeln!(
            out,
            "\n({} more: --top N, or --json for all)",
            plural(hidden, "row", "rows")
        );
    }
    out
}
