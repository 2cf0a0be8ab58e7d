//! Where the time of one trace went: DB share, statement fingerprints, N+1 loops, duplicate
//! statements, per-service self time and the critical path — computed from a report's JSON.
//!
//! [`Analysis::of`] takes the JSON of a [`Report`](crate::report::Report) (what
//! `Reader::get_report`/`Report::to_value` give, or a report saved with
//! `osprofiler trace show --json`, Rust- or Python-written) and serializes with the keys that
//! `osprofiler trace analyze --json` prints and other tools may rely on:
//!
//! | key | meaning |
//! |---|---|
//! | `base_id` | the trace (from the raw messages; `null` when none says) |
//! | `duration_ms` | wall time: latest stop − earliest start, to the microsecond |
//! | `points` | how many points the report has |
//! | `errors` | `[{trace_id, name, service, message}]`, points whose stop carries an error |
//! | `services` | `[{service, project, points, self_ms}]`, most self time first; self time is a point's time not covered by its children |
//! | `db` | `{statements, total_ms, share}`: executed statements, their summed time, and the union of their (possibly overlapping) intervals over the wall time (0–1) |
//! | `fingerprints` | `[{id, fingerprint, calls, total_ms, mean_ms, max_ms, rows, services}]`, most total time first; `fingerprint` is `null` where no text was recorded |
//! | `n_plus_one` | `[{id, fingerprint, parent_id, parent_name, calls, total_ms}]` |
//! | `duplicates` | `[{id, fingerprint, calls, total_ms}]` |
//! | `critical_path` | `[{trace_id, name, service, self_ms}]`, root first |
//!
//! **Statements.** A point is an executed statement when its start info has a `db` object
//! with a `statement` or a `fingerprint` and its `db.api` is `query` or absent (Python's
//! SQLAlchemy points have no `api`). `prepare`, transaction control, `connect` and `acquire`
//! points are not statements and count in none of the keys above but `services` and the
//! critical path.
//!
//! **Fingerprint id.** `db.fingerprint` when recorded; otherwise computed from `db.statement`
//! with the dialect of `db.system` (PostgreSQL's when absent). Statements with neither have
//! no id: they count in `db` but in no fingerprint.
//!
//! **Value digest.** `db.values` when recorded. Otherwise, for traces written before it
//! existed: a hash of the statement text and `db.params` (the literals and bound values as
//! written) when `db.params` is present or the point is Python-shaped (no `db.api`); else
//! *unknown* (a Rust statement recorded without values: its literals were replaced by `?`).
//!
//! **N+1.** A parent's children are ordered by their precise (microsecond) start; among them,
//! the executed statements form a sequence (other points — `acquire`, `begin`, an RPC — do not
//! break it). A *run* is a maximal stretch of that sequence with one fingerprint id. A run is an
//! N+1 when it has at least [`AnalysisOptions::n1_min_calls`] different value digests, an
//! *unknown* digest counting as different from every other (a loop running one statement shape
//! many times under one parent is the N+1 signature whatever its values; what is known to be
//! the same values is a duplicate instead). `calls` and `total_ms` are the whole run's.
//!
//! **Duplicates.** Statements with the same fingerprint id and the same *known* value digest,
//! more than once anywhere in the trace; unknown digests never make duplicates.
//!
//! **Critical path.** Jaeger's algorithm: children are first clipped to their parent's
//! interval; starting at the root with a cursor at its end, take the child that finishes last at
//! or before the cursor, credit the parent with the time between that child's end and the
//! cursor, and descend into the child; a point with no such child is credited from its start
//! to the cursor, and the walk returns to its parent with the cursor at the point's start. So
//! concurrent children that finish earlier than a sibling, while that sibling ran, are off the
//! path. Each point on the path is listed once, parents before children, with `self_ms` the
//! sum of its time on the path. The root is the earliest-starting top-level point.
//!
//! Everything is iterative (a trace may be as deep as it is long) and takes any JSON: missing
//! or wrongly typed fields are read as absent; nothing panics.
//!
//! ```
//! use osprofiler_core::analysis::{Analysis, AnalysisOptions};
//! use osprofiler_core::report::Report;
//! use serde_json::json;
//! let msg = |name: &str, id: &str, parent: &str, ts: &str, info: serde_json::Value| json!({
//!     "name": name, "base_id": "b", "trace_id": id, "parent_id": parent, "timestamp": ts,
//!     "project": "p", "service": "api", "info": info});
//! let report = Report::build(&[
//!     msg("wsgi-start", "w", "b", "2024-01-01T00:00:00.000000", json!({})),
//!     msg("db-start", "d", "w", "2024-01-01T00:00:00.001000",
//!         json!({"db": {"statement": "SELECT * FROM t WHERE id = %(id)s", "params": {"id": 1}}})),
//!     msg("db-stop", "d", "w", "2024-01-01T00:00:00.003000", json!({"db": {"rows": 1}})),
//!     msg("wsgi-stop", "w", "b", "2024-01-01T00:00:00.004000", json!({})),
//! ]);
//! let a = Analysis::of(report.to_value(), &AnalysisOptions::default());
//! assert_eq!(a.duration_ms, 4.0);
//! assert_eq!(a.db.statements, 1);
//! assert_eq!(a.db.share, 0.5);
//! assert_eq!(a.fingerprints[0].rows, 1);
//! let names: Vec<_> = a.critical_path.iter().map(|p| p.name.as_str()).collect();
//! assert_eq!(names, ["wsgi", "db"]);
//! let v = serde_json::to_value(&a).unwrap();
//! assert_eq!(v["db"]["total_ms"], 2.0);
//! ```

use crate::clock::parse_timestamp;
use crate::db::Dialect;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::rc::Rc;

use crate::db::fingerprint as fp;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Settings of [`Analysis::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AnalysisOptions {
    /// The fewest different-value executions of one fingerprint in a run under one parent
    /// reported as an N+1 (default 5).
    pub n1_min_calls: usize,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions { n1_min_calls: 5 }
    }
}

impl AnalysisOptions {
    /// Options with the given N+1 threshold.
    ///
    /// ```
    /// let o = osprofiler_core::analysis::AnalysisOptions::default().n1_min_calls(3);
    /// assert_eq!(o.n1_min_calls, 3);
    /// ```
    pub fn n1_min_calls(mut self, n: usize) -> Self {
        self.n1_min_calls = n;
        self
    }
}

/// The analysis of one trace (see the [module docs](self) for each key's meaning).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The trace's base id, from its raw messages.
    pub base_id: Option<String>,
    /// Wall time in milliseconds (microsecond precision).
    pub duration_ms: f64,
    /// Points in the report.
    pub points: usize,
    /// Error points, parents first.
    pub errors: Vec<ErrorPoint>,
    /// Self time per service and project, most first.
    pub services: Vec<ServiceTime>,
    /// DB totals.
    pub db: DbSummary,
    /// Statements grouped by fingerprint id, most total time first.
    pub fingerprints: Vec<FingerprintStat>,
    /// N+1 loops, most total time first.
    pub n_plus_one: Vec<NPlusOne>,
    /// Statements run more than once with the same values, most total time first.
    pub duplicates: Vec<Duplicate>,
    /// The critical path, root first.
    pub critical_path: Vec<PathPoint>,
}

/// A point that ended with an error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorPoint {
    /// The point's id.
    pub trace_id: String,
    /// The point's name.
    pub name: String,
    /// Its service.
    pub service: Option<String>,
    /// The error's message (its type when no message was recorded).
    pub message: String,
}

/// Self time of one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceTime {
    /// The service (`null` when points did not say).
    pub service: Option<String>,
    /// The project.
    pub project: Option<String>,
    /// Its points.
    pub points: usize,
    /// The summed self time of its points.
    pub self_ms: f64,
}

/// DB totals of a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbSummary {
    /// Executed statements.
    pub statements: usize,
    /// Their summed duration.
    pub total_ms: f64,
    /// The union of their intervals over the wall time, 0–1 (4 decimals).
    pub share: f64,
}

/// One statement shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FingerprintStat {
    /// The fingerprint id, 16 lowercase hex digits.
    pub id: String,
    /// The normalized text, when recorded.
    pub fingerprint: Option<String>,
    /// Executions.
    pub calls: usize,
    /// Summed duration.
    pub total_ms: f64,
    /// Mean duration.
    pub mean_ms: f64,
    /// Longest execution.
    pub max_ms: f64,
    /// Summed `db.rows`.
    pub rows: u64,
    /// Services that ran it, sorted.
    pub services: Vec<String>,
}

/// An N+1 loop: one statement shape run again and again with different values under one
/// parent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NPlusOne {
    /// The fingerprint id.
    pub id: String,
    /// The normalized text, when recorded.
    pub fingerprint: Option<String>,
    /// The parent point's id.
    pub parent_id: String,
    /// The parent point's name.
    pub parent_name: String,
    /// Executions in the run.
    pub calls: usize,
    /// Their summed duration.
    pub total_ms: f64,
    /// The executions' point ids (not in the JSON; the HTML page marks them).
    #[serde(skip)]
    pub trace_ids: Vec<String>,
}

/// One statement run more than once with the same values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Duplicate {
    /// The fingerprint id.
    pub id: String,
    /// The normalized text, when recorded.
    pub fingerprint: Option<String>,
    /// Executions.
    pub calls: usize,
    /// Their summed duration.
    pub total_ms: f64,
    /// The executions' point ids (not in the JSON; the HTML page marks them).
    #[serde(skip)]
    pub trace_ids: Vec<String>,
}

/// A point on the critical path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathPoint {
    /// The point's id.
    pub trace_id: String,
    /// Its name.
    pub name: String,
    /// Its service.
    pub service: Option<String>,
    /// Its time on the path (not covered by the chosen children).
    pub self_ms: f64,
    /// Its depth in the tree, 0 for a top-level point (not in the JSON; for indenting).
    #[serde(skip)]
    pub depth: usize,
}

/// One executed statement, for statistics across traces (`osprofiler stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCall {
    /// The fingerprint id (`None` when neither a fingerprint nor a statement was recorded).
    pub id: Option<u64>,
    /// The normalized text, when recorded.
    pub text: Option<String>,
    /// The value digest (see the [module docs](self)); `None` when unknown.
    pub values: Option<u64>,
    /// How long it ran, in microseconds.
    pub duration_us: i64,
    /// `db.rows` of its stop message.
    pub rows: Option<u64>,
    /// The service that ran it.
    pub service: Option<String>,
    /// The trace's base id, from the report's messages (a report is one trace).
    pub base_id: Option<String>,
    /// The point's id.
    pub trace_id: String,
    /// Its parent's id.
    pub parent_id: Option<String>,
    /// When it started, in microseconds since the epoch (or since the trace's start when the
    /// report has no raw messages).
    pub start_us: i64,
    /// Whether it ended with an error.
    pub error: bool,
}

/// Executed statements of a report, in the report's order (see [`DbCall`]).
///
/// ```
/// use osprofiler_core::{analysis, report::Report};
/// let calls = analysis::db_calls(Report::build(&[]).to_value());
/// assert!(calls.is_empty());
/// ```
pub fn db_calls(report: &Value) -> Vec<DbCall> {
    let flat = Flat::of(report);
    flat.pts
        .iter()
        .filter_map(|p| {
            let db = p.db.as_ref()?;
            Some(DbCall {
                id: db.id,
                text: db.text.as_deref().map(str::to_owned),
                values: db.values,
                duration_us: p.end - p.start,
                rows: db.rows,
                service: p.service.map(str::to_owned),
                base_id: flat.base.map(str::to_owned),
                trace_id: p.trace_id.to_owned(),
                parent_id: p.parent_id.map(str::to_owned),
                start_us: p.start,
                error: p.error.is_some(),
            })
        })
        .collect()
}

struct DbInfo {
    id: Option<u64>,
    text: Option<Rc<str>>,
    values: Option<u64>,
    rows: Option<u64>,
}

struct Pt<'a> {
    trace_id: &'a str,
    parent_id: Option<&'a str>,
    name: &'a str,
    service: Option<&'a str>,
    project: Option<&'a str>,
    parent: Option<usize>,
    depth: usize,
    kids: Vec<usize>,
    start: i64,
    end: i64,
    error: Option<&'a str>,
    db: Option<DbInfo>,
}

/// The report's points flattened, children ordered by precise start.
struct Flat<'a> {
    pts: Vec<Pt<'a>>,
    roots: Vec<usize>,
    /// The first base id the walk met.
    base: Option<&'a str>,
}

fn hex_u64(v: &Value) -> Option<u64> {
    v.as_str()
        .filter(|s| !s.is_empty() && s.len() <= 16)
        .and_then(|s| u64::from_str_radix(s, 16).ok())
}

/// Normalized text and id per (statement, dialect): an N+1 runs one text many times.
type Shapes<'a> = HashMap<(&'a str, Dialect), (Rc<str>, u64)>;

fn hash_value(h: u64, v: &Value) -> u64 {
    match v {
        Value::String(s) => fnv1a(fnv1a(h, b"s"), s.as_bytes()),
        other => fnv1a(h, other.to_string().as_bytes()),
    }
}

/// What the analysis reads of a raw message, in one pass over its keys.
struct Msg<'a> {
    ts: Option<i64>,
    base_id: Option<&'a str>,
    info: Option<&'a Value>,
}

impl<'a> Msg<'a> {
    /// `base_id` is read only when `want_base` (one per trace is enough).
    fn of(m: Option<&'a Value>, want_base: bool) -> Msg<'a> {
        let mut out = Msg {
            ts: None,
            base_id: None,
            info: None,
        };
        for (k, v) in m.and_then(Value::as_object).into_iter().flatten() {
            match k.as_str() {
                "timestamp" => out.ts = v.as_str().and_then(parse_timestamp),
                "base_id" if want_base => out.base_id = v.as_str(),
                "info" => out.info = Some(v),
                _ => {}
            }
        }
        out
    }
}

/// The statement of a `db` point, from its start and stop messages' info.
fn db_info<'a>(
    start: Option<&'a Value>,
    stop: Option<&'a Value>,
    shapes: &mut Shapes<'a>,
) -> Option<DbInfo> {
    let db = start?.get("db")?.as_object()?;
    let (mut api, mut statement, mut recorded, mut normalized, mut system) =
        (None, None, None, None, None);
    let (mut params, mut values) = (None, None);
    for (k, v) in db {
        match k.as_str() {
            "api" => api = v.as_str(),
            "statement" => statement = v.as_str(),
            "fingerprint" => recorded = hex_u64(v),
            "normalized" => normalized = v.as_str(),
            "system" => system = v.as_str(),
            "params" => params = Some(v),
            "values" => values = hex_u64(v),
            _ => {}
        }
    }
    if !crate::db::is_statement_api(api) {
        return None;
    }
    if statement.is_none() && recorded.is_none() && api.is_none() {
        return None;
    }
    let computed = statement.map(|sql| {
        let dialect = Dialect::of_system(system.unwrap_or(""));
        shapes
            .entry((sql, dialect))
            .or_insert_with(|| {
                let text = fp::normalize(sql, dialect);
                let id = fp::fingerprint_id(&text);
                (Rc::from(text), id)
            })
            .clone()
    });
    let text = match normalized {
        Some(n) => Some(Rc::from(n)),
        None => computed.as_ref().map(|c| c.0.clone()),
    };
    let id = recorded.or_else(|| match normalized {
        Some(n) => Some(fp::fingerprint_id(n)),
        None => computed.as_ref().map(|c| c.1),
    });
    let values = values.or_else(|| {
        let s = statement?;
        if params.is_none() && api.is_some() {
            return None; // a Rust statement without values: its literals are gone
        }
        let h = fnv1a(fnv1a(0xcbf2_9ce4_8422_2325, s.as_bytes()), &[0]);
        Some(params.map_or(h, |p| hash_value(h, p)))
    });
    let rows = stop
        .and_then(|i| i.get("db"))
        .and_then(|d| d.get("rows"))
        .and_then(Value::as_u64);
    Some(DbInfo {
        id,
        text,
        values,
        rows,
    })
}

impl<'a> Flat<'a> {
    fn of(report: &'a Value) -> Flat<'a> {
        // The report's per-name counts say how many points to expect (a hint only).
        let hint = report
            .get("stats")
            .and_then(Value::as_object)
            .map_or(0, |s| {
                s.values()
                    .filter_map(|x| x.get("count").and_then(Value::as_u64))
                    .fold(0u64, u64::saturating_add)
            })
            .min(1 << 20) as usize;
        let mut pts: Vec<Pt<'a>> = Vec::with_capacity(hint);
        let mut roots = Vec::new();
        // Raw times (µs since the epoch) or, where missing, the report's whole milliseconds
        // (since the trace's first message) placed after `t0` once known.
        let mut raw: Vec<(Option<i64>, Option<i64>, i64, i64)> = Vec::with_capacity(hint);
        let mut stack: Vec<(&'a Value, Option<usize>)> = Vec::new();
        let top = report.get("children").and_then(Value::as_array);
        for c in top.into_iter().flatten().rev() {
            stack.push((c, None));
        }
        static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
        let empty: &Map<String, Value> = &EMPTY;
        let mut shapes: Shapes<'a> = HashMap::new();
        let mut base: Option<&'a str> = None;
        while let Some((node, parent)) = stack.pop() {
            // One pass over each map's keys rather than lookups: a report is a large tree of
            // small maps, and each lookup is a cache miss or two.
            let (mut info, mut trace_id, mut parent_id, mut kids) = (empty, "", None, None);
            for (k, v) in node.as_object().unwrap_or(empty) {
                match k.as_str() {
                    "info" => info = v.as_object().unwrap_or(empty),
                    "trace_id" => trace_id = v.as_str().unwrap_or(""),
                    "parent_id" => parent_id = v.as_str(),
                    "children" => kids = v.as_array(),
                    _ => {}
                }
            }
            // One pass over the info's keys (no lookups: a report's info has ~10 keys).
            let (mut name, mut service, mut project, mut exception) = (None, None, None, None);
            let (mut started, mut finished) = (0, 0);
            let (mut start_msg, mut stop_msg) = (None, None);
            // Garbage-proof: within ±3,000 years, so sums of microseconds cannot overflow.
            let ms = |v: &Value| v.as_i64().unwrap_or(0).clamp(-MAX_MS, MAX_MS);
            for (k, v) in info {
                match k.as_str() {
                    "name" => name = v.as_str(),
                    "service" => service = v.as_str(),
                    "project" => project = v.as_str(),
                    "exception" => exception = v.as_str(),
                    "started" => started = ms(v),
                    "finished" => finished = ms(v),
                    k => {
                        if let Some(rest) = k.strip_prefix("meta.raw_payload.") {
                            if rest.ends_with("-start") {
                                start_msg = start_msg.or(Some(v));
                            } else if rest.ends_with("-stop") {
                                stop_msg = stop_msg.or(Some(v));
                            }
                        }
                    }
                }
            }
            let start = Msg::of(start_msg, base.is_none());
            let stop = Msg::of(stop_msg, base.is_none() && start.base_id.is_none());
            raw.push((start.ts, stop.ts, started, finished));
            let error = exception.filter(|e| *e != "None").map(|etype| {
                stop.info
                    .and_then(|i| i.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or(etype)
            });
            base = base.or(start.base_id).or(stop.base_id);
            let i = pts.len();
            pts.push(Pt {
                trace_id,
                parent_id,
                name: name.unwrap_or("?"),
                service,
                project,
                parent,
                depth: parent.map_or(0, |p| pts[p].depth + 1),
                kids: Vec::new(),
                start: 0,
                end: 0,
                error,
                db: db_info(start.info, stop.info, &mut shapes),
            });
            match parent {
                Some(p) => pts[p].kids.push(i),
                None => roots.push(i),
            }
            for c in kids.into_iter().flatten().rev() {
                stack.push((c, Some(i)));
            }
        }
        let t0 = raw
            .iter()
            .filter_map(|r| r.0.or(r.1))
            .min()
            .map_or(0, |t| t);
        for (p, (s, f, ms, mf)) in pts.iter_mut().zip(raw) {
            let start = s.or(f).unwrap_or(t0 + ms * 1000);
            let end = f.unwrap_or(if s.is_some() { start } else { t0 + mf * 1000 });
            p.start = start;
            p.end = end.max(start);
        }
        let starts: Vec<i64> = pts.iter().map(|p| p.start).collect();
        for p in &mut pts {
            p.kids.sort_by_key(|&k| starts[k]);
        }
        roots.sort_by_key(|&k| starts[k]);
        Flat { pts, roots, base }
    }

    /// Parents before children, siblings by start.
    fn preorder(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.pts.len());
        let mut stack: Vec<usize> = self.roots.iter().rev().copied().collect();
        while let Some(i) = stack.pop() {
            out.push(i);
            stack.extend(self.pts[i].kids.iter().rev());
        }
        out
    }
}

const MAX_MS: i64 = 100_000_000_000_000;

fn sum(it: impl Iterator<Item = i64>) -> i64 {
    it.fold(0, i64::saturating_add)
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// Total length of the union of intervals (sorted in place).
fn union_len(iv: &mut [(i64, i64)]) -> i64 {
    iv.sort_unstable();
    let mut total = 0;
    let mut cur: Option<(i64, i64)> = None;
    for &(s, e) in iv.iter() {
        match cur {
            Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total = (ce - cs).saturating_add(total);
                cur = Some((s, e));
            }
            None => cur = Some((s, e)),
        }
    }
    if let Some((cs, ce)) = cur {
        total = (ce - cs).saturating_add(total);
    }
    total
}

impl Analysis {
    /// Analyses a report's JSON (see the [module docs](self)).
    ///
    /// ```
    /// use osprofiler_core::analysis::{Analysis, AnalysisOptions};
    /// let a = Analysis::of(&serde_json::json!({"garbage": true}), &AnalysisOptions::default());
    /// assert_eq!(a.points, 0);
    /// assert_eq!(a.duration_ms, 0.0);
    /// ```
    pub fn of(report: &Value, opts: &AnalysisOptions) -> Analysis {
        let flat = Flat::of(report);
        let pts = &flat.pts;
        let order = flat.preorder();
        let fmt_id = fp::format_id;

        let t0 = pts.iter().map(|p| p.start).min().unwrap_or(0);
        let t1 = pts.iter().map(|p| p.end).max().unwrap_or(0);
        let wall = t1 - t0;

        let errors = order
            .iter()
            .filter_map(|&i| {
                let p = &pts[i];
                Some(ErrorPoint {
                    trace_id: p.trace_id.to_owned(),
                    name: p.name.to_owned(),
                    service: p.service.map(str::to_owned),
                    message: p.error?.to_owned(),
                })
            })
            .collect();

        // Self time: own interval minus the union of the children's clipped intervals.
        // (service, project) → (points, self µs)
        type Key<'b> = (Option<&'b str>, Option<&'b str>);
        let mut by_service: HashMap<Key<'_>, (usize, i64)> = HashMap::new();
        let mut iv: Vec<(i64, i64)> = Vec::new();
        for p in pts {
            iv.clear();
            iv.extend(p.kids.iter().filter_map(|&k| {
                let (s, e) = (pts[k].start.max(p.start), pts[k].end.min(p.end));
                (s < e).then_some((s, e))
            }));
            let own = (p.end - p.start) - union_len(&mut iv);
            let e = by_service.entry((p.service, p.project)).or_default();
            e.0 += 1;
            e.1 = e.1.saturating_add(own);
        }
        let mut services: Vec<ServiceTime> = by_service
            .into_iter()
            .map(|((s, pr), (n, us))| ServiceTime {
                service: s.map(str::to_owned),
                project: pr.map(str::to_owned),
                points: n,
                self_ms: ms(us),
            })
            .collect();
        services.sort_by(|a, b| {
            b.self_ms
                .total_cmp(&a.self_ms)
                .then_with(|| a.service.cmp(&b.service))
                .then_with(|| a.project.cmp(&b.project))
        });

        // DB totals and fingerprints.
        let stmts: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| pts[i].db.is_some())
            .collect();
        iv.clear();
        iv.extend(stmts.iter().map(|&i| (pts[i].start, pts[i].end)));
        let db_total = sum(stmts.iter().map(|&i| pts[i].end - pts[i].start));
        let share = if wall > 0 {
            (union_len(&mut iv) as f64 / wall as f64 * 10_000.0).round() / 10_000.0
        } else {
            0.0
        };
        struct Acc<'b> {
            text: Option<&'b str>,
            calls: usize,
            total: i64,
            max: i64,
            rows: u64,
            services: Vec<&'b str>,
        }
        let mut fps: HashMap<u64, Acc<'_>> = HashMap::new();
        for &i in &stmts {
            let p = &pts[i];
            let db = p.db.as_ref().expect("filtered");
            let Some(id) = db.id else { continue };
            let a = fps.entry(id).or_insert(Acc {
                text: None,
                calls: 0,
                total: 0,
                max: 0,
                rows: 0,
                services: Vec::new(),
            });
            a.text = a.text.or(db.text.as_deref());
            a.calls += 1;
            let d = p.end - p.start;
            a.total = a.total.saturating_add(d);
            a.max = a.max.max(d);
            a.rows = a.rows.saturating_add(db.rows.unwrap_or(0));
            if let Some(s) = p.service
                && !a.services.contains(&s)
            {
                a.services.push(s);
            }
        }
        let text_of = |id: u64| fps.get(&id).and_then(|a| a.text).map(str::to_owned);
        let mut fingerprints: Vec<FingerprintStat> = fps
            .iter()
            .map(|(&id, a)| {
                let mut services: Vec<String> =
                    a.services.iter().map(|s| (*s).to_owned()).collect();
                services.sort();
                FingerprintStat {
                    id: fmt_id(id),
                    fingerprint: a.text.map(str::to_owned),
                    calls: a.calls,
                    total_ms: ms(a.total),
                    mean_ms: (ms(a.total) / a.calls as f64 * 1000.0).round() / 1000.0,
                    max_ms: ms(a.max),
                    rows: a.rows,
                    services,
                }
            })
            .collect();
        fingerprints.sort_by(|a, b| {
            b.total_ms
                .total_cmp(&a.total_ms)
                .then_with(|| a.id.cmp(&b.id))
        });

        // N+1: runs of one fingerprint among each parent's statement children.
        let mut n_plus_one = Vec::new();
        let min = opts.n1_min_calls.max(1);
        let mut check_run = |run: &[usize], parent: usize| {
            if run.len() < min {
                return;
            }
            let mut digests: Vec<u64> = Vec::new();
            let mut unknown = 0;
            for &i in run {
                match pts[i].db.as_ref().and_then(|d| d.values) {
                    Some(v) => digests.push(v),
                    None => unknown += 1,
                }
            }
            digests.sort_unstable();
            digests.dedup();
            if digests.len() + unknown < min {
                return;
            }
            let id = pts[run[0]].db.as_ref().and_then(|d| d.id).unwrap_or(0);
            n_plus_one.push(NPlusOne {
                id: fmt_id(id),
                fingerprint: text_of(id),
                parent_id: pts[parent].trace_id.to_owned(),
                parent_name: pts[parent].name.to_owned(),
                calls: run.len(),
                total_ms: ms(sum(run.iter().map(|&i| pts[i].end - pts[i].start))),
                trace_ids: run.iter().map(|&i| pts[i].trace_id.to_owned()).collect(),
            });
        };
        let mut seq: Vec<usize> = Vec::new();
        for &parent in &order {
            seq.clear();
            seq.extend(
                pts[parent]
                    .kids
                    .iter()
                    .copied()
                    .filter(|&k| pts[k].db.as_ref().is_some_and(|d| d.id.is_some())),
            );
            let mut from = 0;
            for i in 1..=seq.len() {
                let id = |j: usize| pts[seq[j]].db.as_ref().and_then(|d| d.id);
                if i == seq.len() || id(i) != id(from) {
                    check_run(&seq[from..i], parent);
                    from = i;
                }
            }
        }
        n_plus_one.sort_by(|a: &NPlusOne, b: &NPlusOne| b.total_ms.total_cmp(&a.total_ms));

        // Duplicates: same id and same known digest.
        let mut dups: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
        for &i in &stmts {
            let db = pts[i].db.as_ref().expect("filtered");
            if let (Some(id), Some(v)) = (db.id, db.values) {
                dups.entry((id, v)).or_default().push(i);
            }
        }
        let mut duplicates: Vec<Duplicate> = dups
            .into_iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|((id, _), v)| Duplicate {
                id: fmt_id(id),
                fingerprint: text_of(id),
                calls: v.len(),
                total_ms: ms(sum(v.iter().map(|&i| pts[i].end - pts[i].start))),
                trace_ids: v.iter().map(|&i| pts[i].trace_id.to_owned()).collect(),
            })
            .collect();
        duplicates.sort_by(|a, b| {
            b.total_ms
                .total_cmp(&a.total_ms)
                .then_with(|| a.id.cmp(&b.id))
                .then_with(|| a.trace_ids.cmp(&b.trace_ids))
        });

        let critical_path = critical_path(&flat, &order);
        let base_id = flat.base.map(str::to_owned);

        Analysis {
            base_id,
            duration_ms: ms(wall),
            points: pts.len(),
            errors,
            services,
            db: DbSummary {
                statements: stmts.len(),
                total_ms: ms(db_total),
                share,
            },
            fingerprints,
            n_plus_one,
            duplicates,
            critical_path,
        }
    }
}

/// Jaeger's critical path, iteratively (see the module docs).
fn critical_path(flat: &Flat<'_>, order: &[usize]) -> Vec<PathPoint> {
    let pts = &flat.pts;
    let Some(&root) = flat
        .roots
        .iter()
        .min_by_key(|&&r| (pts[r].start, std::cmp::Reverse(pts[r].end)))
    else {
        return Vec::new();
    };
    // Clipped intervals, parents first.
    let n = pts.len();
    let mut span: Vec<Option<(i64, i64)>> = vec![None; n];
    span[root] = Some((pts[root].start, pts[root].end));
    for &i in order {
        let Some((ps, pe)) = span[i] else { continue };
        for &k in &pts[i].kids {
            let (s, e) = (pts[k].start, pts[k].end);
            if s > pe || e < ps {
                continue; // entirely outside its parent: not on any path
            }
            span[k] = Some((s.max(ps), e.min(pe)));
        }
    }
    // Each node's children, latest end first, and how far the walk has looked among them.
    let mut by_end: Vec<Option<(Vec<usize>, usize)>> = Vec::new();
    by_end.resize_with(n, || None);
    let mut credit: Vec<Option<i64>> = vec![None; n];
    let mut node = root;
    let mut cursor = span[root].map_or(0, |s| s.1);
    loop {
        let (kids, next) = by_end[node].get_or_insert_with(|| {
            let mut k: Vec<usize> = pts[node]
                .kids
                .iter()
                .copied()
                .filter(|&k| span[k].is_some())
                .collect();
            k.sort_by_key(|&k| std::cmp::Reverse(span[k].map_or(0, |s| s.1)));
            (k, 0)
        });
        while *next < kids.len() && span[kids[*next]].map_or(0, |s| s.1) > cursor {
            *next += 1;
        }
        let (ns, _) = span[node].unwrap_or((cursor, cursor));
        if *next < kids.len() {
            let child = kids[*next];
            *next += 1;
            let ce = span[child].map_or(cursor, |s| s.1);
            *credit[node].get_or_insert(0) += (cursor - ce).max(0);
            node = child;
            cursor = ce;
        } else {
            *credit[node].get_or_insert(0) += (cursor - ns).max(0);
            cursor = ns;
            match pts[node].parent.filter(|_| node != root) {
                Some(p) => node = p,
                None => break,
            }
        }
    }
    order
        .iter()
        .filter_map(|&i| {
            let c = credit[i]?;
            Some(PathPoint {
                trace_id: pts[i].trace_id.to_owned(),
                name: pts[i].name.to_owned(),
                service: pts[i].service.map(str::to_owned),
                self_ms: ms(c),
                depth: pts[i].depth,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
