//! Traces worth opening: one line per stored trace ([`TraceListing`]), the filters of
//! `osprofiler trace list` ([`ListFilter`]), and the per-trace summaries that make listing
//! many traces cheap ([`PartialSummary`]).
//!
//! A listing can always be computed from a trace's stored messages ([`listing_of`]): that
//! works for every collector and for traces written by Python OSProfiler. Reading every
//! message of 10,000 traces is slow, so the [`QueueNotifier`](crate::notifier::QueueNotifier)
//! also writes, through [`Writer::write_summaries`](crate::notifier::Writer::write_summaries),
//! an additive summary of what *this process* wrote for a trace whenever it has no open point
//! left for it. A trace that crosses services gets one partial summary per service (and one
//! more per late batch of points); a reader adds them up ([`PartialSummary::merge`]). Each
//! partial counts the messages it stands for, so a reader that can count a trace's stored
//! messages cheaply sees when some were written by a process that wrote no summary (Python)
//! and computes that trace from its messages instead.
//!
//! Why partials, not one summary when the root stops: each service writes its own points, and
//! no process sees a whole trace; the process that stops the root may even finish before a
//! worker it called. Trade-offs:
//! - A Python service that writes part of a Rust trace writes no partial: the stored count then
//!   exceeds the partials' and the trace is computed from its messages — right, at the cost of
//!   reading it. Both SQL (`COUNT(*)` per `base_id`) and Redis (`LLEN`) count cheaply; a store
//!   that could not would have to trust the partials and undercount such traces.
//! - A partial is written once the process has no open point of the trace; a point that
//!   never stops keeps its trace open until [`QueueOptions::summary_traces`] newer traces push
//!   it out (its partial is then written with what is known, and a later stop adds another
//!   partial) or the notifier shuts down.
//! - A message the store refused, or partials lost with a failing store, make the counts
//!   disagree: the trace is computed from what was stored.
//! - `duration_ms` runs from the first to the last stored message; `db_ms` sums each `db`
//!   point's own duration (concurrent statements add up).
//!
//! [`QueueOptions::summary_traces`]: crate::notifier::QueueOptions::summary_traces

use crate::clock::{format_timestamp, parse_timestamp};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// One trace in `osprofiler trace list`.
///
/// Serialized (`--json`) with exactly these keys: `base_id`, `start` (OSProfiler timestamp
/// text), `duration_ms`, `root` (the root point's name, or null), `services`, `points`,
/// `db_statements`, `db_ms`, `errors` (how many messages record an error) and `error_type`
/// (the first error's `etype`, or null).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TraceListing {
    /// The trace's `base_id`.
    pub base_id: String,
    /// When the first stored message was written (OSProfiler timestamp text).
    pub start: String,
    /// From the first to the last stored message, in milliseconds.
    pub duration_ms: f64,
    /// The name of the point whose parent is the trace itself (the request's entry point).
    pub root: Option<String>,
    /// The services that wrote points, sorted.
    pub services: Vec<String>,
    /// Points started.
    pub points: u64,
    /// Points named `db` started.
    pub db_statements: u64,
    /// Time spent in `db` points (each from its start to its stop), in milliseconds.
    pub db_ms: f64,
    /// Messages that record an error (`info.etype`).
    pub errors: u64,
    /// The first error's type.
    pub error_type: Option<String>,
}

impl TraceListing {
    /// The start in microseconds since the epoch (0 when the start is unreadable).
    pub fn start_micros(&self) -> i64 {
        parse_timestamp(&self.start).unwrap_or(0)
    }
}

/// An additive summary of the messages one process wrote for one trace. The notifier writes
/// one when the process has no open point left for the trace; readers add the partials of a
/// trace up with [`PartialSummary::merge`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartialSummary {
    /// The trace's `base_id`.
    pub base_id: String,
    /// The first message's time, microseconds since the epoch.
    pub start_us: i64,
    /// The last message's time, microseconds since the epoch.
    pub end_us: i64,
    /// The root point's name, when this process wrote it.
    pub root: Option<String>,
    /// The services of the messages, sorted, without duplicates.
    pub services: Vec<String>,
    /// Messages this summary stands for (compared with the store's count of the trace's
    /// messages to detect parts written without a summary).
    pub messages: u64,
    /// Points started.
    pub points: u64,
    /// `db` points started.
    pub db_statements: u64,
    /// Time in `db` points, microseconds.
    pub db_us: u64,
    /// Messages recording an error.
    pub errors: u64,
    /// The first error's type and time.
    pub error_type: Option<String>,
    /// When the first error was recorded (microseconds), with `error_type`.
    pub error_us: Option<i64>,
}

impl PartialSummary {
    /// An empty summary of `base_id` (the identity of [`PartialSummary::merge`]).
    pub fn empty(base_id: impl Into<String>) -> PartialSummary {
        PartialSummary {
            base_id: base_id.into(),
            start_us: i64::MAX,
            end_us: i64::MIN,
            root: None,
            services: Vec::new(),
            messages: 0,
            points: 0,
            db_statements: 0,
            db_us: 0,
            errors: 0,
            error_type: None,
            error_us: None,
        }
    }

    /// Adds `other` (another part of the same trace) into this one: earliest start, latest
    /// end, union of services, sums of the counts, the earliest error.
    ///
    /// ```
    /// use osprofiler_core::listing::PartialSummary;
    /// let mut a = PartialSummary { start_us: 10, end_us: 50, points: 2, messages: 4,
    ///     root: Some("wsgi".into()), services: vec!["api".into()], ..PartialSummary::empty("t") };
    /// let b = PartialSummary { start_us: 20, end_us: 70, points: 1, messages: 2,
    ///     services: vec!["worker".into()], ..PartialSummary::empty("t") };
    /// a.merge(&b);
    /// let l = a.to_listing();
    /// assert_eq!((l.points, l.duration_ms, l.root.as_deref()), (3, 0.06, Some("wsgi")));
    /// assert_eq!(l.services, ["api", "worker"]);
    /// ```
    pub fn merge(&mut self, other: &PartialSummary) {
        self.start_us = self.start_us.min(other.start_us);
        self.end_us = self.end_us.max(other.end_us);
        if self.root.is_none() {
            self.root.clone_from(&other.root);
        }
        for s in &other.services {
            if let Err(i) = self.services.binary_search(s) {
                self.services.insert(i, s.clone());
            }
        }
        self.messages += other.messages;
        self.points += other.points;
        self.db_statements += other.db_statements;
        self.db_us += other.db_us;
        self.errors += other.errors;
        if let Some(at) = other.error_us
            && self.error_us.is_none_or(|mine| at < mine)
        {
            self.error_us = Some(at);
            self.error_type.clone_from(&other.error_type);
        }
    }

    /// The line of `trace list` this (merged) summary gives.
    pub fn to_listing(&self) -> TraceListing {
        let (start, end) = if self.start_us <= self.end_us {
            (self.start_us, self.end_us)
        } else {
            (0, 0)
        };
        TraceListing {
            base_id: self.base_id.clone(),
            start: format_timestamp(start),
            duration_ms: (end - start) as f64 / 1000.0,
            root: self.root.clone(),
            services: self.services.clone(),
            points: self.points,
            db_statements: self.db_statements,
            db_ms: self.db_us as f64 / 1000.0,
            errors: self.errors,
            error_type: self.error_type.clone(),
        }
    }
}

/// Adds up the partial summaries of each trace (any order, any number of traces).
pub fn merge_partials(parts: impl IntoIterator<Item = PartialSummary>) -> Vec<PartialSummary> {
    let mut by_id: HashMap<String, PartialSummary> = HashMap::new();
    for p in parts {
        match by_id.get_mut(&p.base_id) {
            Some(m) => m.merge(&p),
            None => {
                by_id.insert(p.base_id.clone(), p);
            }
        }
    }
    by_id.into_values().collect()
}

/// The point name of a message name: `db-start` → `db`.
fn point_name(name: &str) -> Option<(&str, bool)> {
    if let Some(p) = name.strip_suffix("-start") {
        Some((p, true))
    } else {
        name.strip_suffix("-stop").map(|p| (p, false))
    }
}

/// Computes the summary of one trace from its stored messages (JSON, any order), as Python
/// or Rust services wrote them. Entries that are not messages, or miss fields, are skipped
/// field by field: a trace is summarized whatever its entries look like. `messages` counts
/// every entry given.
///
/// ```
/// use osprofiler_core::listing::summary_of;
/// use serde_json::json;
/// let m = |name: &str, id: &str, parent: &str, ts: &str, info| json!({"name": name,
///     "base_id": "b", "trace_id": id, "parent_id": parent, "timestamp": ts,
///     "service": "api", "info": info});
/// let msgs = [
///     m("wsgi-start", "r", "b", "2024-01-01T00:00:00.000000", json!({})),
///     m("db-start", "d", "r", "2024-01-01T00:00:00.010000", json!({})),
///     m("db-stop", "d", "r", "2024-01-01T00:00:00.030000", json!({"etype": "ValueError"})),
///     m("wsgi-stop", "r", "b", "2024-01-01T00:00:00.100000", json!({})),
///     json!("garbage"),
/// ];
/// let l = summary_of("b", &msgs).to_listing();
/// assert_eq!((l.root.as_deref(), l.points, l.db_statements, l.db_ms), (Some("wsgi"), 2, 1, 20.0));
/// assert_eq!((l.duration_ms, l.errors, l.error_type.as_deref()), (100.0, 1, Some("ValueError")));
/// ```
pub fn summary_of<'a>(
    base_id: &str,
    messages: impl IntoIterator<Item = &'a Value>,
) -> PartialSummary {
    let mut s = PartialSummary::empty(base_id);
    let mut services = BTreeSet::new();
    // db point id → (start, stop) times.
    let mut db: HashMap<&str, (Option<i64>, Option<i64>)> = HashMap::new();
    let mut root: Option<(i64, &str)> = None;
    for m in messages {
        s.messages += 1;
        let ts = m["timestamp"].as_str().and_then(parse_timestamp);
        if let Some(ts) = ts {
            s.start_us = s.start_us.min(ts);
            s.end_us = s.end_us.max(ts);
        }
        if let Some(svc) = m["service"].as_str() {
            services.insert(svc);
        }
        if crate::notifier::is_error(m) {
            s.errors += 1;
            let at = ts.unwrap_or(i64::MAX);
            if s.error_us.is_none_or(|e| at < e) {
                s.error_us = Some(at);
                s.error_type = Some(match &m["info"]["etype"] {
                    Value::String(t) => t.clone(),
                    other => other.to_string(),
                });
            }
        }
        let Some((point, start)) = m["name"].as_str().and_then(point_name) else {
            continue;
        };
        if start {
            s.points += 1;
            if m["parent_id"].as_str() == Some(base_id) {
                let at = ts.unwrap_or(i64::MAX);
                if root.is_none_or(|(t, _)| at < t) {
                    root = Some((at, point));
                }
            }
        }
        let statement = |m: &Value| crate::db::is_statement_api(m["info"]["db"]["api"].as_str());
        if point == "db" && (!start || statement(m)) {
            if start {
                s.db_statements += 1;
            }
            if let Some(id) = m["trace_id"].as_str() {
                let e = db.entry(id).or_default();
                if start {
                    e.0 = ts;
                } else {
                    e.1 = ts;
                }
            }
        }
    }
    s.db_us = db
        .values()
        .filter_map(|&(a, b)| Some((b? - a?).max(0) as u64))
        .sum();
    s.root = root.map(|(_, n)| n.to_owned());
    s.services = services.into_iter().map(str::to_owned).collect();
    if s.error_us == Some(i64::MAX) {
        s.error_us = Some(s.end_us.max(0));
    }
    s
}

/// [`summary_of`] as a listing line.
pub fn listing_of<'a>(
    base_id: &str,
    messages: impl IntoIterator<Item = &'a Value>,
) -> TraceListing {
    summary_of(base_id, messages).to_listing()
}

/// A trace in a store, as a collector that stores summaries counts it cheaply (for
/// [`list_from_summaries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTrace {
    /// The trace's `base_id`.
    pub base_id: String,
    /// How many messages the store holds for it.
    pub messages: u64,
}

/// [`Reader::list`](crate::notifier::Reader::list) for a collector that stores partial
/// summaries: `stored` names every trace in the store with its count of stored messages,
/// `partials` are all the stored partial summaries. A trace whose partials add up to as many
/// messages as are stored is listed from them; the others (no summary: written by Python, or
/// by a process that wrote only part of it with summaries) are handed in one call to
/// `compute`, which reads their messages (e.g. with [`listing_of`]).
///
/// When there are such traces and the filter can use their start (`since_us`, or only the
/// newest `limit` by start), `starts` is called first with them and answers their first
/// message's time where it can cheaply (microseconds; a trace left out passes): only those
/// that may pass are computed.
///
/// ```
/// use osprofiler_core::listing::{list_from_summaries, ListFilter, PartialSummary, StoredTrace};
/// let part = PartialSummary { start_us: 0, end_us: 5_000, messages: 2, points: 1, ..PartialSummary::empty("a") };
/// let stored = |id: &str, messages| StoredTrace { base_id: id.into(), messages };
/// let listed = list_from_summaries(
///     [stored("a", 2), stored("py", 4)],
///     [part],
///     &ListFilter::default(),
///     |_| Ok(Default::default()),
///     |ids: &[String]| {
///         assert_eq!(ids, ["py"]); // no summary: computed from its messages
///         Ok::<_, ()>(vec![])
///     },
/// ).unwrap();
/// assert_eq!((listed[0].base_id.as_str(), listed[0].duration_ms), ("a", 5.0));
/// ```
pub fn list_from_summaries<E>(
    stored: impl IntoIterator<Item = StoredTrace>,
    partials: impl IntoIterator<Item = PartialSummary>,
    filter: &ListFilter,
    starts: impl FnOnce(&[String]) -> Result<HashMap<String, i64>, E>,
    compute: impl FnOnce(&[String]) -> Result<Vec<TraceListing>, E>,
) -> Result<Vec<TraceListing>, E> {
    let mut merged: HashMap<String, PartialSummary> = merge_partials(partials)
        .into_iter()
        .map(|p| (p.base_id.clone(), p))
        .collect();
    let mut summarized = Vec::new();
    let mut missing = Vec::new();
    for t in stored {
        match merged.remove(&t.base_id) {
            Some(p) if p.messages == t.messages => {
                if filter.may_pass_start(Some(p.start_us)) {
                    summarized.push(p);
                }
            }
            _ => missing.push(t.base_id),
        }
    }
    let newest_only = matches!(
        (
            filter.sort,
            filter.limit,
            filter.min_duration_ms,
            &filter.service,
            filter.errors_only
        ),
        (SortBy::Start, Some(_), None, None, false)
    );
    if !missing.is_empty() && (filter.since_us.is_some() || newest_only) {
        let known = starts(&missing)?;
        missing.retain(|id| filter.may_pass_start(known.get(id).copied()));
        // Only the newest N wanted, by start alone: when every start is known, only those
        // are read.
        if let Some(n) = filter.limit.filter(|_| newest_only)
            && missing.iter().all(|id| known.contains_key(id))
        {
            let mut all: Vec<(i64, Option<PartialSummary>, Option<String>)> = summarized
                .drain(..)
                .map(|p| (p.start_us, Some(p), None))
                .chain(missing.drain(..).map(|id| (known[&id], None, Some(id))))
                .collect();
            all.sort_by_key(|a| a.0);
            all.drain(..all.len().saturating_sub(n));
            for (_, p, id) in all {
                summarized.extend(p);
                missing.extend(id);
            }
        }
    }
    let mut out: Vec<TraceListing> = summarized.iter().map(PartialSummary::to_listing).collect();
    if !missing.is_empty() {
        out.extend(compute(&missing)?);
    }
    Ok(filter.apply(out))
}

/// [`Reader::list`](crate::notifier::Reader::list) for a collector that reads all its messages
/// at once (a queue, memory): groups them by trace and computes each listing.
///
/// ```
/// use osprofiler_core::listing::{list_messages, ListFilter};
/// use serde_json::json;
/// let msgs = [
///     json!({"base_id": "a", "name": "wsgi-start", "parent_id": "a", "trace_id": "r", "timestamp": "2024-01-01T00:00:00.000000"}),
///     json!({"base_id": "a", "name": "wsgi-stop", "parent_id": "a", "trace_id": "r", "timestamp": "2024-01-01T00:00:00.002000"}),
///     json!({"base_id": "b", "name": "x-start", "parent_id": "b", "trace_id": "s", "timestamp": "2024-01-01T00:00:01.000000"}),
/// ];
/// let l = list_messages(&msgs, &ListFilter::default());
/// assert_eq!((l[0].base_id.as_str(), l[0].duration_ms, l[1].root.as_deref()), ("a", 2.0, Some("x")));
/// ```
pub fn list_messages<'a>(
    messages: impl IntoIterator<Item = &'a Value>,
    filter: &ListFilter,
) -> Vec<TraceListing> {
    let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for m in messages {
        if let Some(id) = m["base_id"].as_str() {
            by_id.entry(id).or_default().push(m);
        }
    }
    let out = by_id
        .into_iter()
        .map(|(id, msgs)| listing_of(id, msgs))
        .collect();
    filter.apply(out)
}

/// The order of `trace list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Oldest first (the newest are the last lines), as Python lists.
    #[default]
    Start,
    /// Longest first.
    Duration,
}

/// Which traces `trace list` shows, and in which order.
///
/// ```
/// use osprofiler_core::listing::{ListFilter, SortBy, TraceListing};
/// let t = |id: &str, ms: f64| TraceListing { base_id: id.into(), start: format!("2024-01-01T00:00:0{id}.000000"),
///     duration_ms: ms, root: None, services: vec!["api".into()], points: 1, db_statements: 0,
///     db_ms: 0.0, errors: 0, error_type: None };
/// let f = ListFilter { min_duration_ms: Some(5.0), sort: SortBy::Duration, ..ListFilter::default() };
/// let kept: Vec<_> = f.apply(vec![t("1", 10.0), t("2", 1.0), t("3", 20.0)]).into_iter().map(|t| t.base_id).collect();
/// assert_eq!(kept, ["3", "1"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    /// Only traces that started at or after this time (microseconds since the epoch).
    pub since_us: Option<i64>,
    /// Only traces that took at least this long.
    pub min_duration_ms: Option<f64>,
    /// Only traces with a point written by this service.
    pub service: Option<String>,
    /// Only traces with an error.
    pub errors_only: bool,
    /// The order.
    pub sort: SortBy,
    /// At most this many: the newest ones when sorted by start, the longest by duration.
    pub limit: Option<usize>,
    /// Also provisional traces not kept (yet) (see [`crate::notifier::TraceState`]): a
    /// collector hides them otherwise.
    pub include_pending: bool,
}

impl ListFilter {
    /// Whether a trace that started at `start_us` may pass (checked before its summary is
    /// computed, to skip reading traces that cannot).
    pub fn may_pass_start(&self, start_us: Option<i64>) -> bool {
        match (self.since_us, start_us) {
            (Some(since), Some(start)) => start >= since,
            _ => true,
        }
    }

    /// Whether `t` passes the filters.
    pub fn passes(&self, t: &TraceListing) -> bool {
        self.since_us.is_none_or(|s| t.start_micros() >= s)
            && self.min_duration_ms.is_none_or(|d| t.duration_ms >= d)
            && self
                .service
                .as_ref()
                .is_none_or(|s| t.services.iter().any(|x| x == s))
            && (!self.errors_only || t.errors > 0)
    }

    /// Keeps the traces that pass, sorted, limited.
    pub fn apply(&self, traces: Vec<TraceListing>) -> Vec<TraceListing> {
        let mut kept: Vec<(i64, TraceListing)> = traces
            .into_iter()
            .filter(|t| self.passes(t))
            .map(|t| (t.start_micros(), t))
            .collect();
        match self.sort {
            SortBy::Start => {
                kept.sort_by(|a, b| (a.0, &a.1.base_id).cmp(&(b.0, &b.1.base_id)));
                if let Some(n) = self.limit {
                    kept.drain(..kept.len().saturating_sub(n));
                }
            }
            SortBy::Duration => {
                kept.sort_by(|a, b| {
                    b.1.duration_ms
                        .total_cmp(&a.1.duration_ms)
                        .then_with(|| a.1.base_id.cmp(&b.1.base_id))
                });
                if let Some(n) = self.limit {
                    kept.truncate(n);
                }
            }
        }
        kept.into_iter().map(|(_, t)| t).collect()
    }
}

/// Parses an age: a whole number and a unit, `s`, `m`, `h`, `d` or `w` (`90s`, `30m`, `12h`,
/// `7d`, `2w`): what `--since`, `prune --older-than` and the `retention` option take.
///
/// ```
/// use osprofiler_core::listing::parse_age;
/// use std::time::Duration;
/// assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_age(" 7d"), Ok(Duration::from_secs(7 * 86_400)));
/// assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
/// assert!(parse_age("7").is_err());
/// assert!(parse_age("1.5h").is_err());
/// assert!(parse_age("2024-05-01T10:00:00Z").is_err());
/// ```
pub fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "{text:?} is not an age: a whole number and a unit, s, m, h, d or w (90s, 30m, 12h, 7d, 2w)"
        )
    };
    let secs = match t.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        Some('w') => 7 * 86_400,
        _ => return Err(bad()),
    };
    let n: u64 = t[..t.len() - 1].parse().map_err(|_| bad())?;
    n.checked_mul(secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

/// Parses `--since`: a duration back from `now_us` (`90s`, `30m`, `1h`, `7d`) or a time
/// (RFC 3339 such as `2024-05-01T10:00:00Z` or `…+02:00`, or OSProfiler's
/// `2024-05-01T10:00:00.000000`, UTC). Returns microseconds since the epoch.
///
/// ```
/// use osprofiler_core::listing::parse_since;
/// assert_eq!(parse_since("1h", 7_200_000_000), Ok(3_600_000_000));
/// assert_eq!(parse_since("1970-01-01T01:00:00+01:00", 0), Ok(0));
/// assert!(parse_since("soon", 0).is_err());
/// ```
pub fn parse_since(text: &str, now_us: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "{text:?} is neither a duration (90s, 30m, 1h, 7d) nor a time (2024-05-01T10:00:00Z, 2024-05-01T10:00:00.000000)"
        )
    };
    if t.ends_with(|c: char| c.is_ascii_alphabetic())
        && let Ok(age) = parse_age(t)
    {
        let us = i64::try_from(age.as_micros()).map_err(|_| bad())?;
        return Ok(now_us.saturating_sub(us));
    }
    // An offset: Z, or ±HH:MM after the time.
    let (local, offset_us) = if let Some(rest) = t.strip_suffix(['Z', 'z']) {
        (rest, 0)
    } else if t.len() > 6
        && t.is_char_boundary(t.len() - 6)
        && matches!(&t.as_bytes()[t.len() - 6], b'+' | b'-')
        && t.as_bytes()[t.len() - 3] == b':'
        && t.contains('T')
    {
        let (rest, off) = t.split_at(t.len() - 6);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let h: i64 = off[1..3].parse().map_err(|_| bad())?;
        let m: i64 = off[4..6].parse().map_err(|_| bad())?;
        (rest, sign * (h * 3600 + m * 60) * 1_000_000)
    } else {
        (t, 0)
    };
    parse_timestamp(local)
        .map(|us| us - offset_us)
        .ok_or_else(bad)
}

/// What the notifier's worker knows of the traces this process is writing: per trace, the
/// partial summary so far and the points still open. A trace's partial is taken out when no
/// point of it is open here; the oldest trace is taken out when more than `cap` are open.
pub(crate) struct Accumulator {
    traces: HashMap<crate::id::Id, Open>,
    /// Arrival order, to evict the oldest.
    order: std::collections::BTreeMap<u64, crate::id::Id>,
    seq: u64,
    cap: usize,
    /// Traces touched since the last [`Accumulator::take_closed`].
    touched: Vec<crate::id::Id>,
    /// Partials taken out by eviction, waiting for `take_closed`.
    evicted: Vec<PartialSummary>,
}

struct Open {
    summary: PartialSummary,
    open: i64,
    seq: u64,
    db_open: HashMap<crate::id::Id, i64>,
}

impl Accumulator {
    pub(crate) fn new(cap: usize) -> Accumulator {
        Accumulator {
            traces: HashMap::new(),
            order: Default::default(),
            seq: 0,
            cap: cap.max(1),
            touched: Vec::new(),
            evicted: Vec::new(),
        }
    }

    /// Counts one delivered message.
    pub(crate) fn observe(&mut self, m: &crate::message::Message) {
        use crate::message::Phase;
        if !self.traces.contains_key(&m.base_id) {
            if self.traces.len() >= self.cap
                && let Some((_, oldest)) = self.order.pop_first()
                && let Some(o) = self.traces.remove(&oldest)
            {
                self.evicted.push(o.summary);
            }
            self.seq += 1;
            self.order.insert(self.seq, m.base_id.clone());
            self.traces.insert(
                m.base_id.clone(),
                Open {
                    summary: PartialSummary::empty(m.base_id.to_text()),
                    open: 0,
                    seq: self.seq,
                    db_open: HashMap::new(),
                },
            );
            self.touched.push(m.base_id.clone());
        }
        let o = self.traces.get_mut(&m.base_id).expect("inserted above");
        let s = &mut o.summary;
        let ts = m.stamp.micros();
        s.messages += 1;
        s.start_us = s.start_us.min(ts);
        s.end_us = s.end_us.max(ts);
        if let Some(svc) = m.identity.service()
            && let Err(i) = s.services.binary_search_by(|x| x.as_str().cmp(svc))
        {
            s.services.insert(i, svc.to_owned());
        }
        if let Some(etype) = m.error_type() {
            s.errors += 1;
            if s.error_us.is_none_or(|e| ts < e) {
                s.error_us = Some(ts);
                s.error_type = Some(etype.to_owned());
            }
        }
        let db =
            m.name == "db" && (m.phase == Phase::Stop || crate::db::is_statement_api(m.db_api()));
        match m.phase {
            Phase::Start => {
                o.open += 1;
                s.points += 1;
                if s.root.is_none() && m.parent_id == m.base_id {
                    s.root = Some(m.name.to_string());
                }
                if db {
                    s.db_statements += 1;
                    o.db_open.insert(m.trace_id.clone(), ts);
                }
            }
            Phase::Stop => {
                o.open -= 1;
                if db && let Some(start) = o.db_open.remove(&m.trace_id) {
                    s.db_us += (ts - start).max(0) as u64;
                }
            }
        }
        if o.open <= 0 && self.touched.last() != Some(&m.base_id) {
            self.touched.push(m.base_id.clone());
        }
    }

    /// The partials of the traces with no open point left here (and of evicted ones).
    pub(crate) fn take_closed(&mut self) -> Vec<PartialSummary> {
        let mut out = std::mem::take(&mut self.evicted);
        for id in std::mem::take(&mut self.touched) {
            if self.traces.get(&id).is_some_and(|o| o.open <= 0)
                && let Some(o) = self.traces.remove(&id)
            {
                self.order.remove(&o.seq);
                out.push(o.summary);
            }
        }
        out
    }

    /// Every partial, open points or not (at shutdown).
    pub(crate) fn take_all(&mut self) -> Vec<PartialSummary> {
        let mut out = std::mem::take(&mut self.evicted);
        self.order.clear();
        self.touched.clear();
        out.extend(self.traces.drain().map(|(_, o)| o.summary));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(name: &str, id: &str, parent: &str, ms: u32, svc: &str, info: Value) -> Value {
        json!({"name": name, "base_id": "b", "trace_id": id, "parent_id": parent,
            "timestamp": format!("2024-01-01T00:00:00.{:06}", ms * 1000), "service": svc, "info": info,
            "project": "p"})
    }

    fn two_services() -> Vec<Value> {
        vec![
            msg("wsgi-start", "r", "b", 0, "api", json!({})),
            msg("rpc-start", "c", "r", 5, "api", json!({})),
            msg("db-start", "d1", "c", 10, "worker", json!({})),
            msg("db-stop", "d1", "c", 40, "worker", json!({})),
            msg("db-start", "d2", "c", 50, "worker", json!({})),
            msg(
                "db-stop",
                "d2",
                "c",
                55,
                "worker",
                json!({"etype": "IntegrityError"}),
            ),
            msg(
                "rpc-stop",
                "c",
                "r",
                60,
                "api",
                json!({"etype": "RemoteError"}),
            ),
            msg("wsgi-stop", "r", "b", 90, "api", json!({})),
        ]
    }

    #[test]
    fn summary_counts_every_column() {
        let l = listing_of("b", &two_services());
        assert_eq!(l.start, "2024-01-01T00:00:00.000000");
        assert_eq!(l.duration_ms, 90.0);
        assert_eq!(l.root.as_deref(), Some("wsgi"));
        assert_eq!(l.services, ["api", "worker"]);
        assert_eq!((l.points, l.db_statements, l.db_ms), (4, 2, 35.0));
        assert_eq!(
            (l.errors, l.error_type.as_deref()),
            (2, Some("IntegrityError"))
        );
    }

    #[test]
    fn partials_of_two_services_add_up_to_the_whole() {
        let all = two_services();
        let (api, worker): (Vec<_>, Vec<_>) = all.iter().partition(|m| m["service"] == "api");
        let parts = vec![
            summary_of("b", worker.iter().copied()),
            summary_of("b", api.iter().copied()),
        ];
        let merged = merge_partials(parts);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].to_listing(), listing_of("b", &all));
        assert_eq!(merged[0].messages, 8);
    }

    #[test]
    fn garbage_entries_are_skipped_field_by_field() {
        let mut msgs = vec![
            json!(null),
            json!({"name": 3, "timestamp": "not a time", "service": ["x"]}),
            json!({"info": {"etype": {"a": 1}}}),
        ];
        msgs.extend(two_services());
        let l = listing_of("b", &msgs);
        assert_eq!((l.points, l.errors), (4, 3));
        assert_eq!(l.start, "2024-01-01T00:00:00.000000");
        // An error without a time comes after those with one.
        assert_eq!(l.error_type.as_deref(), Some("IntegrityError"));
        let only_garbage = listing_of("g", &[json!("x")]);
        assert_eq!((only_garbage.points, only_garbage.duration_ms), (0, 0.0));
    }

    #[test]
    fn filters_sort_and_limit() {
        let mk = |id: &str, s: u32, ms: f64, svc: &str, errors: u64| TraceListing {
            base_id: id.into(),
            start: format!("2024-01-01T00:00:{s:02}.000000"),
            duration_ms: ms,
            root: None,
            services: vec![svc.into()],
            points: 1,
            db_statements: 0,
            db_ms: 0.0,
            errors,
            error_type: None,
        };
        let all = vec![
            mk("a", 1, 5.0, "api", 0),
            mk("b", 2, 50.0, "worker", 1),
            mk("c", 3, 20.0, "api", 1),
        ];
        let ids = |f: ListFilter| -> Vec<String> {
            f.apply(all.clone())
                .into_iter()
                .map(|t| t.base_id)
                .collect()
        };
        assert_eq!(ids(ListFilter::default()), ["a", "b", "c"]);
        let since = parse_since("2024-01-01T00:00:02Z", 0).unwrap();
        let f = ListFilter {
            since_us: Some(since),
            ..Default::default()
        };
        assert_eq!(ids(f), ["b", "c"]);
        let f = ListFilter {
            min_duration_ms: Some(20.0),
            ..Default::default()
        };
        assert_eq!(ids(f), ["b", "c"]);
        let f = ListFilter {
            service: Some("api".into()),
            ..Default::default()
        };
        assert_eq!(ids(f), ["a", "c"]);
        let f = ListFilter {
            errors_only: true,
            ..Default::default()
        };
        assert_eq!(ids(f), ["b", "c"]);
        let f = ListFilter {
            limit: Some(2),
            ..Default::default()
        };
        assert_eq!(ids(f), ["b", "c"]);
        let f = ListFilter {
            sort: SortBy::Duration,
            limit: Some(2),
            ..Default::default()
        };
        assert_eq!(ids(f), ["b", "c"]);
        let f = ListFilter {
            sort: SortBy::Duration,
            ..Default::default()
        };
        assert_eq!(ids(f), ["b", "c", "a"]);
    }

    #[test]
    fn only_unsummarized_traces_that_may_pass_are_computed() {
        let part = |id: &str, start: i64| PartialSummary {
            start_us: start,
            end_us: start + 10,
            messages: 2,
            ..PartialSummary::empty(id)
        };
        let stored = |id: &str, messages| StoredTrace {
            base_id: id.into(),
            messages,
        };
        let traces = || {
            [
                stored("s1", 2),
                stored("s9", 2),
                stored("py2", 4),
                stored("py8", 4),
                stored("short", 4), // its partial counts 2 of its 4 messages
            ]
        };
        let parts = || [part("s1", 1), part("s9", 9), part("short", 7)];
        let starts = |ids: &[String]| -> Result<HashMap<String, i64>, ()> {
            Ok(ids
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        id.trim_start_matches(char::is_alphabetic)
                            .parse()
                            .unwrap_or(7),
                    )
                })
                .collect())
        };
        let run = |filter: ListFilter| {
            let mut computed = Vec::new();
            let listed = list_from_summaries(traces(), parts(), &filter, starts, |ids| {
                computed = ids.to_vec();
                Ok(ids
                    .iter()
                    .map(|id| part(id, starts(std::slice::from_ref(id)).unwrap()[id]).to_listing())
                    .collect())
            })
            .unwrap();
            let ids: Vec<String> = listed.into_iter().map(|t| t.base_id).collect();
            (ids, computed)
        };
        // Everything: the three without (enough) summary are computed.
        let (ids, computed) = run(ListFilter::default());
        assert_eq!(ids, ["s1", "py2", "short", "py8", "s9"]);
        assert_eq!(computed, ["py2", "py8", "short"]);
        // The newest 2: only py8 is read.
        let (ids, computed) = run(ListFilter {
            limit: Some(2),
            ..Default::default()
        });
        assert_eq!(
            (ids, computed),
            (
                vec!["py8".to_string(), "s9".into()],
                vec!["py8".to_string()]
            )
        );
        // Since 5: py2 is not read.
        let (ids, computed) = run(ListFilter {
            since_us: Some(5),
            ..Default::default()
        });
        assert_eq!(ids, ["short", "py8", "s9"]);
        assert_eq!(computed, ["py8", "short"]);
    }

    #[test]
    fn since_forms() {
        let now = 1_000_000_000_000_000;
        assert_eq!(parse_since("30m", now), Ok(now - 1_800_000_000));
        assert_eq!(parse_since("7d", now), Ok(now - 7 * 86_400_000_000));
        assert_eq!(parse_since("90s", now), Ok(now - 90_000_000));
        assert_eq!(
            parse_since("2024-01-02T03:04:05.678901", now),
            Ok(1_704_164_645_678_901)
        );
        assert_eq!(
            parse_since("2024-01-02T05:04:05.678901+02:00", now),
            Ok(1_704_164_645_678_901)
        );
        assert_eq!(
            parse_since("2024-01-02T03:04:05Z", now),
            Ok(1_704_164_645_000_000)
        );
        for bad in ["", "1y", "h", "-1h", "yesterday", "2024-13-01T00:00:00"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
