//! The report of one trace: OSProfiler's `get_report`, built from stored messages.

use crate::clock::parse_timestamp;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;

/// A trace report: the tree of points with times in milliseconds since the trace's first
/// message, plus per-name statistics. [`Report::to_value`] gives the JSON of
/// `osprofiler trace show --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    value: Value,
}

struct Node {
    trace_id: String,
    parent_id: Value,
    info: Map<String, Value>,
    started: Option<i64>,
    finished: Option<i64>,
}

/// Options for building a report.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportOptions {
    /// Keep point names whole (`compute-api`); Python cuts them at the first `-` (`compute`).
    pub keep_full_names: bool,
}

/// Python's `int(microseconds / 1000.0)`: truncation toward zero.
fn msec(us: i64) -> i64 {
    (us as f64 / 1000.0) as i64
}

impl Report {
    /// Builds the report exactly as OSProfiler 4.4.0 does.
    ///
    /// ```
    /// use serde_json::json;
    /// let msgs = [
    ///     json!({"name": "db-start", "base_id": "b", "trace_id": "t", "parent_id": "b",
    ///            "timestamp": "2024-01-01T00:00:00.000000", "info": {"host": "h"}, "project": null, "service": null}),
    ///     json!({"name": "db-stop", "base_id": "b", "trace_id": "t", "parent_id": "b",
    ///            "timestamp": "2024-01-01T00:00:00.002999", "info": {"host": "h"}, "project": null, "service": null}),
    /// ];
    /// let r = osprofiler_core::report::Report::build(&msgs);
    /// assert_eq!(r.to_value()["children"][0]["info"]["finished"], 2);
    /// assert_eq!(r.to_value()["stats"]["db"], json!({"count": 1, "duration": 2}));
    /// ```
    pub fn build(messages: &[Value]) -> Report {
        Self::build_with(messages, ReportOptions::default())
    }

    /// [`Report::build`] with options.
    pub fn build_with(messages: &[Value], opts: ReportOptions) -> Report {
        Self::build_from(messages.iter().map(std::borrow::Cow::Borrowed), opts)
    }

    /// [`Report::build_with`] taking the messages by value: each is moved into its node's
    /// `meta.raw_payload.*` instead of copied (what drivers use: they read owned messages).
    ///
    /// ```
    /// use osprofiler_core::{report::Report, report::ReportOptions};
    /// let r = Report::build_owned(Vec::new(), ReportOptions::default());
    /// assert!(r.is_empty());
    /// ```
    pub fn build_owned(messages: Vec<Value>, opts: ReportOptions) -> Report {
        Self::build_from(messages.into_iter().map(std::borrow::Cow::Owned), opts)
    }

    fn build_from<'a>(
        messages: impl Iterator<Item = std::borrow::Cow<'a, Value>>,
        opts: ReportOptions,
    ) -> Report {
        let mut nodes: Vec<Node> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let (mut started_at, mut finished_at, mut last_started): (
            Option<i64>,
            Option<i64>,
            Option<i64>,
        ) = (None, None, None);

        for m in messages {
            let (Some(trace_id), Some(name), Some(ts)) = (
                m.get("trace_id").and_then(Value::as_str),
                m.get("name").and_then(Value::as_str),
                m.get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(parse_timestamp),
            ) else {
                continue; // not a point message
            };
            let i = *index.entry(trace_id.to_owned()).or_insert_with(|| {
                let short = if opts.keep_full_names {
                    name.strip_suffix("-start")
                        .or_else(|| name.strip_suffix("-stop"))
                        .unwrap_or(name)
                } else {
                    name.split('-').next().unwrap_or(name)
                };
                let mut info = Map::new();
                info.insert("name".into(), short.into());
                info.insert(
                    "project".into(),
                    m.get("project").cloned().unwrap_or(Value::Null),
                );
                info.insert(
                    "service".into(),
                    m.get("service").cloned().unwrap_or(Value::Null),
                );
                info.insert(
                    "host".into(),
                    m.get("info")
                        .and_then(|i| i.get("host"))
                        .cloned()
                        .unwrap_or(Value::Null),
                );
                nodes.push(Node {
                    trace_id: trace_id.to_owned(),
                    parent_id: m.get("parent_id").cloned().unwrap_or(Value::Null),
                    info,
                    started: None,
                    finished: None,
                });
                nodes.len() - 1
            });
            let key = format!("meta.raw_payload.{name}");
            let is_stop = name.ends_with("stop");
            let exc = is_stop.then(|| {
                m.get("info")
                    .and_then(|i| i.get("etype"))
                    .cloned()
                    .unwrap_or_else(|| "None".into())
            });
            let node = &mut nodes[i];
            node.info.insert(key, m.into_owned());
            if let Some(exc) = exc {
                node.finished = Some(ts);
                node.info.insert("exception".into(), exc);
            } else {
                node.started = Some(ts);
                if last_started.is_none_or(|l| l < ts) {
                    last_started = Some(ts);
                }
            }
            if started_at.is_none_or(|s| s > ts) {
                started_at = Some(ts);
            }
            if finished_at.is_none_or(|f| f < ts) {
                finished_at = Some(ts);
            }
        }

        let base = started_at.unwrap_or(0);
        let mut stats: Map<String, Value> = Map::new();
        let mut times: Vec<i64> = Vec::with_capacity(nodes.len());
        for n in &mut nodes {
            let s = n.started.or(n.finished).unwrap_or(base);
            let f = n.finished.or(n.started).unwrap_or(base);
            let (s, f) = (msec(s - base), msec(f - base));
            n.info.insert("started".into(), s.into());
            n.info.insert("finished".into(), f.into());
            times.push(s);
            let name = n.info["name"].as_str().unwrap_or_default().to_owned();
            let entry = stats
                .entry(name)
                .or_insert_with(|| json!({"count": 0, "duration": 0}));
            entry["count"] = (entry["count"].as_i64().unwrap_or(0) + 1).into();
            entry["duration"] = (entry["duration"].as_i64().unwrap_or(0) + (f - s)).into();
        }

        // Children lists in message order, then stably sorted by start, as Python does.
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut roots: Vec<usize> = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            match n.parent_id.as_str().and_then(|p| index.get(p)) {
                Some(&p) if p != i => children[p].push(i),
                _ => roots.push(i),
            }
        }
        for c in &mut children {
            c.sort_by_key(|&i| times[i]);
        }
        roots.sort_by_key(|&i| times[i]);

        fn render(
            i: usize,
            nodes: &mut [Option<Node>],
            children: &[Vec<usize>],
            depth: usize,
        ) -> Value {
            let Some(n) = nodes[i].take() else {
                return Value::Null;
            };
            let kids: Vec<Value> = if depth > 10_000 {
                Vec::new()
            } else {
                children[i]
                    .iter()
                    .map(|&c| render(c, nodes, children, depth + 1))
                    .filter(|v| !v.is_null())
                    .collect()
            };
            // Built by moving, not with json!: that macro serializes its values again (a deep
            // copy of every subtree at every level).
            let mut node = Map::with_capacity(4);
            node.insert("info".into(), Value::Object(n.info));
            node.insert("trace_id".into(), Value::String(n.trace_id));
            node.insert("parent_id".into(), n.parent_id);
            node.insert("children".into(), Value::Array(kids));
            Value::Object(node)
        }
        let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
        let tree: Vec<Value> = roots
            .iter()
            .map(|&r| render(r, &mut slots, &children, 0))
            .collect();

        let total = |t: Option<i64>| match (started_at, t) {
            (Some(s), Some(t)) => json!(msec(t - s)),
            _ => Value::Null,
        };
        let mut root = Map::with_capacity(3);
        root.insert(
            "info".into(),
            json!({"name": "total", "started": 0, "finished": total(finished_at), "last_trace_started": total(last_started)}),
        );
        root.insert("children".into(), Value::Array(tree));
        root.insert("stats".into(), Value::Object(stats));
        Report {
            value: Value::Object(root),
        }
    }

    /// The report as JSON (the shape of Python's `get_report`).
    pub fn to_value(&self) -> &Value {
        &self.value
    }

    /// Consumes the report into its JSON.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// [`Report::render_tree_of`] this report.
    ///
    /// ```
    /// let r = osprofiler_core::report::Report::build(&[]);
    /// assert!(r.render_tree().starts_with("total"));
    /// ```
    pub fn render_tree(&self) -> String {
        Self::render_tree_of(&self.value)
    }

    /// A plain-text tree of a report's JSON (as built by [`Report::build`] or read from a saved
    /// `--json` report): each point's start (from the trace's first message) and duration in
    /// milliseconds to the microsecond (from the raw messages; whole milliseconds when they are
    /// missing), service@host, the error type if any, and what the point did (the SQL of `db`
    /// points, the request of `wsgi`/`http` points, the function of `rpc` points); then the
    /// per-name totals.
    ///
    /// ```
    /// let r = osprofiler_core::report::Report::build(&[]);
    /// assert!(osprofiler_core::report::Report::render_tree_of(r.to_value()).starts_with("total 0 ms, 0 points"));
    /// ```
    pub fn render_tree_of(report: &Value) -> String {
        let mut out = String::new();
        let t0 = earliest_start(report);
        let total = report["info"]["finished"].as_i64().unwrap_or(0);
        let points: i64 = report["stats"]
            .as_object()
            .map_or(0, |s| s.values().filter_map(|x| x["count"].as_i64()).sum());
        let _ = writeln!(
            out,
            "total {total} ms, {points} point{}",
            if points == 1 { "" } else { "s" }
        );
        walk_terminal(
            &mut out,
            report["children"].as_array().map_or(&[], Vec::as_slice),
            "",
            t0,
        );
        if let Some(stats) = report["stats"].as_object().filter(|s| !s.is_empty()) {
            out.push('\n');
            for (name, s) in stats {
                let count = s["count"].as_i64().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "{name:>12}: {count} call{}, {} ms",
                    if count == 1 { "" } else { "s" },
                    s["duration"].as_i64().unwrap_or(0)
                );
            }
        }
        out
    }

    /// True when the trace had no messages.
    pub fn is_empty(&self) -> bool {
        self.value["children"].as_array().is_none_or(Vec::is_empty)
    }
}

/// A node's raw `<name>-start` or `-stop` message (`phase` is "start" or "stop"), found by
/// suffix: the node's name may have been cut at its first `-` (`compute-api` → `compute`).
fn raw_message<'a>(info: &'a Value, phase: &str) -> Option<&'a Value> {
    info.as_object()?
        .iter()
        .find(|(k, _)| {
            k.strip_prefix("meta.raw_payload.")
                .and_then(|rest| rest.strip_suffix(phase))
                .is_some_and(|rest| rest.ends_with('-'))
        })
        .map(|(_, v)| v)
}

/// Microseconds since the epoch of a point's start and stop messages.
fn raw_times(info: &Value) -> (Option<i64>, Option<i64>) {
    let ts = |phase| {
        raw_message(info, phase)?["timestamp"]
            .as_str()
            .and_then(parse_timestamp)
    };
    (ts("start"), ts("stop"))
}

fn earliest_start(node: &Value) -> Option<i64> {
    let own = raw_times(&node["info"]).0;
    node["children"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(earliest_start)
        .chain(own)
        .min()
}

/// A one-line summary of what a point did: SQL, HTTP request, or function.
fn point_summary(info: &Value) -> Option<String> {
    let start = &raw_message(info, "start")?["info"];
    if let Some(sql) = start["db"]["statement"].as_str() {
        return Some(sql.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    if let Some(api) = start["db"]["api"].as_str() {
        return Some(api.to_owned());
    }
    if let Some(r) = start["request"].as_object() {
        return Some(format!(
            "{} {}",
            r.get("method").and_then(Value::as_str).unwrap_or(""),
            r.get("path").and_then(Value::as_str).unwrap_or("")
        ));
    }
    if let Some(r) = start["requests"].as_object() {
        return Some(format!(
            "{} {}://{}:{}{}",
            r.get("method").and_then(Value::as_str).unwrap_or(""),
            r.get("scheme").and_then(Value::as_str).unwrap_or(""),
            r.get("hostname").and_then(Value::as_str).unwrap_or(""),
            r.get("port")
                .map(|p| p.to_string().replace('"', ""))
                .unwrap_or_default(),
            r.get("path").and_then(Value::as_str).unwrap_or("")
        ));
    }
    start["function"]["name"].as_str().map(str::to_owned)
}

fn walk_terminal(out: &mut String, nodes: &[Value], prefix: &str, t0: Option<i64>) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let info = &n["info"];
        let name = info["name"].as_str().unwrap_or("?");
        let branch = if last { "└─ " } else { "├─ " };
        match (t0, raw_times(info)) {
            (Some(t0), (Some(s), f)) => {
                let f = f.unwrap_or(s);
                let _ = write!(
                    out,
                    "{prefix}{branch}{name}  @{:.3} ms  {:.3} ms",
                    (s - t0) as f64 / 1000.0,
                    (f - s) as f64 / 1000.0
                );
            }
            _ => {
                let (s, f) = (
                    info["started"].as_i64().unwrap_or(0),
                    info["finished"].as_i64().unwrap_or(0),
                );
                let _ = write!(out, "{prefix}{branch}{name}  @{s} ms  {} ms", f - s);
            }
        }
        let who: Vec<&str> = [&info["service"], &info["host"]]
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        if !who.is_empty() {
            let _ = write!(out, "  [{}]", who.join("@"));
        }
        if let Some(e) = info["exception"].as_str().filter(|e| *e != "None") {
            let _ = write!(out, "  ERROR {e}");
        }
        if let Some(what) = point_summary(info) {
            let _ = write!(out, "  {what}");
        }
        out.push('\n');
        if let Some(kids) = n["children"].as_array() {
            let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
            walk_terminal(out, kids, &deeper, t0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_finds_raw_messages_of_names_cut_at_a_dash() {
        let msg = |phase: &str, ts: &str| {
            json!({"name": format!("compute-api-{phase}"), "base_id": "b", "trace_id": "t",
                   "parent_id": "b", "timestamp": ts, "project": null, "service": "nova",
                   "info": {"host": "h", "db": {"statement": "SELECT 1"}}})
        };
        let r = Report::build(&[
            msg("start", "2024-01-01T00:00:00.000100"),
            msg("stop", "2024-01-01T00:00:00.001350"),
        ]);
        let tree = r.render_tree();
        assert!(tree.contains("└─ compute  @0.000 ms  1.250 ms"), "{tree}");
        assert!(tree.contains("SELECT 1"), "{tree}");
    }
}
