//! The report of one trace: OSProfiler's `get_report`, built from stored messages.

use crate::clock::parse_timestamp;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;

/// A trace report: the tree of points with times in milliseconds since the trace's first
/// message, plus per-name statistics. [`Report::to_value`] gives the JSON of
/// `osprofiler trace show --json`.
///
/// Any set of stored messages gives a report, and every readable point is in it exactly once:
/// a point whose parent is not stored, or that is in a parent cycle (a→b→a, its own parent),
/// is a top-level point (the terminal tree marks it *detached*); messages without a string
/// `trace_id` and `name` and a parseable `timestamp` are counted in the total node's
/// `info.unreadable` (present only when not zero, so the JSON of a sound trace is Python's).
/// Building, rendering, comparing, cloning and dropping a report never recurse: a trace may be
/// as deep as it is long.
pub struct Report {
    value: Value,
}

impl Drop for Report {
    fn drop(&mut self) {
        drop_deep(std::mem::take(&mut self.value));
    }
}

impl Clone for Report {
    fn clone(&self) -> Self {
        Report {
            value: clone_deep(&self.value),
        }
    }
}

impl PartialEq for Report {
    fn eq(&self, other: &Self) -> bool {
        eq_deep(&self.value, &other.value)
    }
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = Vec::new();
        crate::pyjson::write_value(&mut text, &self.value, crate::pyjson::Layout::Compact);
        write!(f, "Report({})", String::from_utf8_lossy(&text))
    }
}

/// Drops a [`Value`] without recursion. Dropping a `Value` normally recurses once per nesting
/// level, which overflows the stack on a deep report (a chain of 100,000 points is 300,000
/// levels): drop reports taken with [`Report::into_value`] or read from a saved report this way.
///
/// ```
/// let mut v = serde_json::json!([]);
/// for _ in 0..200_000 {
///     v = serde_json::Value::Array(vec![v]);
/// }
/// osprofiler_core::report::drop_deep(v);
/// ```
pub fn drop_deep(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => {
                stack.extend(items.into_iter().filter(|x| x.is_array() || x.is_object()));
            }
            Value::Object(map) => stack.extend(
                map.into_iter()
                    .map(|(_, x)| x)
                    .filter(|x| x.is_array() || x.is_object()),
            ),
            _ => {}
        }
    }
}

/// A deep copy of `value` without recursion.
fn clone_deep(value: &Value) -> Value {
    // Containers are rebuilt bottom-up: each frame collects its copied items.
    enum Frame<'a> {
        Array(std::slice::Iter<'a, Value>, Vec<Value>),
        Object(
            serde_json::map::Iter<'a>,
            Map<String, Value>,
            Option<String>,
        ),
    }
    fn open(v: &Value) -> Result<Frame<'_>, Value> {
        match v {
            Value::Array(a) => Ok(Frame::Array(a.iter(), Vec::with_capacity(a.len()))),
            Value::Object(m) => Ok(Frame::Object(m.iter(), Map::new(), None)),
            other => Err(other.clone()),
        }
    }
    let mut stack = match open(value) {
        Ok(f) => vec![f],
        Err(scalar) => return scalar,
    };
    loop {
        let Some(top) = stack.last_mut() else {
            unreachable!("the loop returns when the outermost frame closes")
        };
        let next = match top {
            Frame::Array(it, _) => it.next(),
            Frame::Object(it, _, key) => it.next().map(|(k, v)| {
                *key = Some(k.clone());
                v
            }),
        };
        let done = match next {
            Some(v) => match open(v) {
                Ok(frame) => {
                    stack.push(frame);
                    continue;
                }
                Err(scalar) => scalar,
            },
            None => match stack.pop() {
                Some(Frame::Array(_, items)) => Value::Array(items),
                Some(Frame::Object(_, map, _)) => Value::Object(map),
                None => unreachable!(),
            },
        };
        // `done` is a finished item of the frame now on top (or the whole copy).
        match stack.last_mut() {
            None => return done,
            Some(Frame::Array(_, items)) => items.push(done),
            Some(Frame::Object(_, map, key)) => {
                map.insert(key.take().unwrap_or_default(), done);
            }
        }
    }
}

/// `a == b` without recursion.
fn eq_deep(a: &Value, b: &Value) -> bool {
    let mut stack = vec![(a, b)];
    while let Some((a, b)) = stack.pop() {
        match (a, b) {
            (Value::Array(x), Value::Array(y)) => {
                if x.len() != y.len() {
                    return false;
                }
                stack.extend(x.iter().zip(y));
            }
            (Value::Object(x), Value::Object(y)) => {
                if x.len() != y.len() {
                    return false;
                }
                for (k, v) in x {
                    match y.get(k) {
                        Some(w) => stack.push((v, w)),
                        None => return false,
                    }
                }
            }
            (x, y) if x.is_array() || x.is_object() || y.is_array() || y.is_object() => {
                return false;
            }
            (x, y) => {
                if x != y {
                    return false;
                }
            }
        }
    }
    true
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

        let mut unreadable: u64 = 0;
        for m in messages {
            let (Some(trace_id), Some(name), Some(ts)) = (
                m.get("trace_id").and_then(Value::as_str),
                m.get("name").and_then(Value::as_str),
                m.get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(parse_timestamp),
            ) else {
                unreadable += 1; // not a point message: counted, not shown
                continue;
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
        let parent: Vec<Option<usize>> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.parent_id
                    .as_str()
                    .and_then(|p| index.get(p))
                    .copied()
                    .filter(|&p| p != i)
            })
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut roots: Vec<usize> = Vec::new();
        for (i, p) in parent.iter().enumerate() {
            match p {
                Some(p) => children[*p].push(i),
                None => roots.push(i),
            }
        }
        // Points in a parent cycle hang from no root (Python's tree would be circular and its
        // JSON fail): each cycle is cut at its first stored point, which becomes top-level.
        let mut reached = vec![false; nodes.len()];
        let mut todo: Vec<usize> = Vec::new();
        let mark = |from: usize, reached: &mut Vec<bool>, todo: &mut Vec<usize>| {
            todo.push(from);
            while let Some(i) = todo.pop() {
                reached[i] = true;
                todo.extend(children[i].iter().copied().filter(|&c| !reached[c]));
            }
        };
        for &r in &roots {
            mark(r, &mut reached, &mut todo);
        }
        let mut walked = vec![usize::MAX; nodes.len()];
        let mut cut: Vec<(usize, usize)> = Vec::new();
        for u in 0..nodes.len() {
            if reached[u] {
                continue;
            }
            // Up from u until a point repeats: that point is on the cycle.
            let mut v = u;
            while walked[v] != u {
                walked[v] = u;
                v = parent[v].unwrap_or(v);
            }
            let mut first = v;
            let mut w = parent[v].unwrap_or(v);
            while w != v {
                first = first.min(w);
                w = parent[w].unwrap_or(v);
            }
            if let Some(p) = parent[first] {
                cut.push((p, first));
            }
            roots.push(first);
            // The cut edge is skipped by marking `first` reached before its cycle is walked.
            reached[first] = true;
            for &c in &children[first] {
                if !reached[c] {
                    mark(c, &mut reached, &mut todo);
                }
            }
        }
        for (p, c) in cut {
            children[p].retain(|&x| x != c);
        }
        for c in &mut children {
            c.sort_by_key(|&i| times[i]);
        }
        roots.sort_by_key(|&i| times[i]);

        // Nested bottom-up without recursion: in reverse pre-order every point comes after
        // all of its descendants.
        let mut preorder: Vec<usize> = Vec::with_capacity(nodes.len());
        todo.extend(roots.iter().rev());
        while let Some(i) = todo.pop() {
            preorder.push(i);
            todo.extend(children[i].iter().rev());
        }
        let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
        let mut built: Vec<Option<Value>> = vec![None; slots.len()];
        for &i in preorder.iter().rev() {
            let Some(n) = slots[i].take() else { continue };
            let kids: Vec<Value> = children[i]
                .iter()
                .filter_map(|&c| built[c].take())
                .collect();
            // Built by moving, not with json!: that macro serializes its values again (a deep
            // copy of every subtree at every level).
            let mut node = Map::with_capacity(4);
            node.insert("info".into(), Value::Object(n.info));
            node.insert("trace_id".into(), Value::String(n.trace_id));
            node.insert("parent_id".into(), n.parent_id);
            node.insert("children".into(), Value::Array(kids));
            built[i] = Some(Value::Object(node));
        }
        let tree: Vec<Value> = roots.iter().filter_map(|&r| built[r].take()).collect();

        let total = |t: Option<i64>| match (started_at, t) {
            (Some(s), Some(t)) => json!(msec(t - s)),
            _ => Value::Null,
        };
        let mut root = Map::with_capacity(3);
        let mut info = json!({"name": "total", "started": 0, "finished": total(finished_at), "last_trace_started": total(last_started)});
        if unreadable > 0 {
            info["unreadable"] = unreadable.into();
        }
        root.insert("info".into(), info);
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

    /// Consumes the report into its JSON. A deep report's JSON is best dropped with
    /// [`drop_deep`] (a `Value`'s own drop recurses once per level).
    pub fn into_value(mut self) -> Value {
        std::mem::take(&mut self.value)
    }

    /// How many stored messages could not be read as points (no string `trace_id` or `name`,
    /// or no parseable `timestamp`; wrong types; not an object).
    pub fn unreadable(&self) -> u64 {
        self.value["info"]["unreadable"].as_u64().unwrap_or(0)
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
    /// Siblings come in precise order ([`Walk`]: by the microsecond, not Python's whole
    /// milliseconds). The first line counts detached points and unreadable entries when there
    /// are any (`total 12 ms, 40 points, 1 detached, 2 unreadable entries not shown`); a
    /// detached point's line ends with `(detached: parent <id> not stored)`, `(detached: in a
    /// cycle)` or `(detached: its own parent)`. Points deeper than 64 levels are drawn at that
    /// indent with `[depth N]` written out.
    ///
    /// ```
    /// let r = osprofiler_core::report::Report::build(&[]);
    /// assert!(osprofiler_core::report::Report::render_tree_of(r.to_value()).starts_with("total 0 ms, 0 points"));
    /// ```
    pub fn render_tree_of(report: &Value) -> String {
        let mut out = String::new();
        let walk = Walk::new(report);
        let total = report["info"]["finished"].as_i64().unwrap_or(0);
        let points: i64 = report["stats"]
            .as_object()
            .map_or(0, |s| s.values().filter_map(|x| x["count"].as_i64()).sum());
        let _ = write!(
            out,
            "total {total} ms, {points} point{}",
            if points == 1 { "" } else { "s" }
        );
        let detached = walk.points.iter().filter(|p| p.detached.is_some()).count();
        if detached > 0 {
            let _ = write!(out, ", {detached} detached");
        }
        if let Some(n) = report["info"]["unreadable"].as_u64().filter(|&n| n > 0) {
            let _ = write!(
                out,
                ", {n} unreadable entr{} not shown",
                if n == 1 { "y" } else { "ies" }
            );
        }
        out.push('\n');
        // Whether each open ancestor level still has siblings to come (draws `│`).
        let mut open: Vec<bool> = Vec::new();
        for p in &walk.points {
            open.truncate(p.depth);
            let mut prefix = String::new();
            for &more in open.iter().take(TREE_MAX_INDENT) {
                prefix.push_str(if more { "│  " } else { "   " });
            }
            if p.depth > TREE_MAX_INDENT {
                let _ = write!(prefix, "[depth {}] ", p.depth);
            }
            open.push(!p.last);
            let info = &p.node["info"];
            let name = info["name"].as_str().unwrap_or("?");
            let branch = if p.last { "└─ " } else { "├─ " };
            match p.start_us {
                Some(s) => {
                    let f = p.stop_us.unwrap_or(s);
                    let _ = write!(
                        out,
                        "{prefix}{branch}{name}  @{:.3} ms  {:.3} ms",
                        s as f64 / 1000.0,
                        (f - s) as f64 / 1000.0
                    );
                }
                None => {
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
            if let Some(d) = &p.detached {
                let _ = write!(out, "  ({d})");
            }
            if let Some(what) = point_summary(info) {
                let _ = write!(out, "  {what}");
            }
            out.push('\n');
        }
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
pub(crate) fn raw_message<'a>(info: &'a Value, phase: &str) -> Option<&'a Value> {
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

/// Levels of tree guides the terminal tree draws; deeper points are drawn at this indent
/// with their depth written out (an indent growing with depth would make a 100,000-deep
/// trace's tree quadratic in size).
const TREE_MAX_INDENT: usize = 64;

/// Why a top-level point is not under the point it names as its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detached {
    /// Its parent (this id) is not among the trace's stored points.
    ParentNotStored(String),
    /// Its parent is stored, but the parent links go round in a cycle (a→b→a): the report
    /// cut the cycle here.
    InCycle,
    /// It names itself as its parent.
    OwnParent,
}

impl std::fmt::Display for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Detached::ParentNotStored(p) => write!(f, "detached: parent {p} not stored"),
            Detached::InCycle => f.write_str("detached: in a cycle"),
            Detached::OwnParent => f.write_str("detached: its own parent"),
        }
    }
}

/// One point of a [`Walk`].
#[derive(Debug, Clone)]
pub struct WalkPoint<'a> {
    /// The point's node in the report JSON (`info`, `trace_id`, `parent_id`, `children`).
    pub node: &'a Value,
    /// 0 for a top-level point.
    pub depth: usize,
    /// The index in [`Walk::points`] of the point's parent (`None` at top level).
    pub parent: Option<usize>,
    /// The last of its siblings in precise order.
    pub last: bool,
    /// Microseconds from [`Walk::t0_us`] to the point's start (its stop message's time when
    /// only that is stored); `None` when the report has no raw messages' times.
    pub start_us: Option<i64>,
    /// Microseconds from [`Walk::t0_us`] to the point's stop (`None` when not stored).
    pub stop_us: Option<i64>,
    /// Set on a top-level point that is not a root of the trace.
    pub detached: Option<Detached>,
}

/// A report's points flattened in display order, without recursion: depth first, siblings by
/// precise start ([`precise_children`]). The order of the terminal tree and the DOT graph, for
/// any view or analysis that walks a report ("consecutive siblings" means consecutive here).
///
/// ```
/// use serde_json::json;
/// use osprofiler_core::report::{Report, Walk};
/// let msg = |id: &str, parent: &str, name: &str, ts: &str| json!({"name": name, "base_id": "b",
///     "trace_id": id, "parent_id": parent, "timestamp": ts, "info": {}, "project": null, "service": null});
/// let r = Report::build(&[
///     msg("a", "b", "wsgi-start", "2024-01-01T00:00:00.000000"),
///     msg("x", "a", "db-start", "2024-01-01T00:00:00.000900"),
///     msg("y", "a", "db-start", "2024-01-01T00:00:00.000100"),
///     msg("z", "gone", "db-start", "2024-01-01T00:00:00.000200"),
/// ]);
/// let walk = Walk::new(r.to_value());
/// let ids: Vec<&str> = walk.points.iter().map(|p| p.node["trace_id"].as_str().unwrap()).collect();
/// // Whole milliseconds: x and y both start at 0 ms and stay in store order in the JSON;
/// // the walk puts y (100 µs) before x (900 µs).
/// assert_eq!(ids, ["a", "y", "x", "z"]);
/// assert_eq!(walk.points[1].start_us, Some(100));
/// assert_eq!(walk.points[3].detached.as_ref().unwrap().to_string(), "detached: parent gone not stored");
/// ```
#[derive(Debug, Clone)]
pub struct Walk<'a> {
    /// The points in display order.
    pub points: Vec<WalkPoint<'a>>,
    /// Microseconds since the epoch of the earliest stored start (`None` without raw times).
    pub t0_us: Option<i64>,
}

impl<'a> Walk<'a> {
    /// Flattens `report` (the JSON of a [`Report`], or a saved `--json` report).
    pub fn new(report: &'a Value) -> Walk<'a> {
        let mut points: Vec<WalkPoint<'a>> = Vec::new();
        let mut abs: Vec<(Option<i64>, Option<i64>)> = Vec::new();
        // (node, depth, parent, last), popped in display order.
        let mut todo: Vec<(&'a Value, usize, Option<usize>, bool)> = Vec::new();
        let top = precise_children(report);
        let n = top.len();
        todo.extend(
            top.into_iter()
                .enumerate()
                .rev()
                .map(|(i, c)| (c, 0, None, i + 1 == n)),
        );
        let mut ids: std::collections::HashSet<&'a str> = std::collections::HashSet::new();
        while let Some((node, depth, parent, last)) = todo.pop() {
            let me = points.len();
            let (s, f) = raw_times(&node["info"]);
            abs.push((s.or(f), f));
            if let Some(id) = node["trace_id"].as_str() {
                ids.insert(id);
            }
            points.push(WalkPoint {
                node,
                depth,
                parent,
                last,
                start_us: None,
                stop_us: None,
                detached: None,
            });
            let kids = precise_children(node);
            let n = kids.len();
            todo.extend(
                kids.into_iter()
                    .enumerate()
                    .rev()
                    .map(|(i, c)| (c, depth + 1, Some(me), i + 1 == n)),
            );
        }
        let t0_us = abs.iter().filter_map(|t| t.0).min();
        for (p, (s, f)) in points.iter_mut().zip(abs) {
            if let Some(t0) = t0_us {
                p.start_us = s.map(|s| s - t0);
                p.stop_us = f.map(|f| f - t0);
            }
            if p.depth == 0 {
                p.detached = detached(p.node, &ids);
            }
        }
        Walk { points, t0_us }
    }
}

/// Why a top-level `node` is detached, if it is: its parent id is neither the trace's base id
/// nor a root's (a Python report's top-level points hang from the base id).
fn detached(node: &Value, ids: &std::collections::HashSet<&str>) -> Option<Detached> {
    let info = &node["info"];
    let base = ["start", "stop"]
        .into_iter()
        .find_map(|ph| raw_message(info, ph)?["base_id"].as_str());
    let own = node["trace_id"].as_str();
    match node["parent_id"].as_str() {
        Some(p) if Some(p) == own => Some(Detached::OwnParent),
        Some(p) if ids.contains(p) => Some(Detached::InCycle),
        Some(p) if Some(p) == base || base.is_none() => None,
        Some(p) => Some(Detached::ParentNotStored(p.to_owned())),
        None if base.is_none() => None,
        None => Some(Detached::ParentNotStored(node["parent_id"].to_string())),
    }
}

/// A node's children (or a report's top-level points) in precise order: by the microsecond
/// start of their raw messages (a stop-only point by its stop), equal times in the report's
/// order (store order). The report JSON itself keeps Python's order (whole milliseconds, store
/// order within one); when some child has no raw times, that order is kept as it is.
///
/// ```
/// use osprofiler_core::report::{Report, precise_children};
/// let r = Report::build(&[]);
/// assert!(precise_children(r.to_value()).is_empty());
/// ```
pub fn precise_children(node: &Value) -> Vec<&Value> {
    let kids: Vec<&Value> = node["children"].as_array().into_iter().flatten().collect();
    let keys: Option<Vec<i64>> = kids
        .iter()
        .map(|c| {
            let (s, f) = raw_times(&c["info"]);
            s.or(f)
        })
        .collect();
    let Some(keys) = keys else { return kids };
    let mut order: Vec<usize> = (0..kids.len()).collect();
    order.sort_by_key(|&i| keys[i]);
    order.into_iter().map(|i| kids[i]).collect()
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
