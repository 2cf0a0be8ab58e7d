//! Statements and endpoints across many traces: `osprofiler stats`, the pg_stat_statements of
//! a deployment that also counts the application's own time.
//!
//! Feed reports to a [`StatsBuilder`] (one per trace, in any order) and [`finish`] it:
//!
//! - **statements**, one row per fingerprint: calls, the traces they ran in, total, mean, p95
//!   (nearest rank) and max time, rows, the services that ran them, and the base id of the
//!   slowest call to open with `osprofiler trace show`; most total time first;
//! - **endpoints**, one row per entry point: what a request to a service was (`GET
//!   /orders/{id}`, an RPC method, ...): calls, total, mean, p95 and max time, the DB time and
//!   statements per call under it, and the slowest trace. Path segments that are numbers, UUIDs
//!   or long hex ids read as `{id}`, so `/orders/1` and `/orders/2` are one endpoint.
//!
//! Without a service, an endpoint is each trace's root point. With [`StatsBuilder::service`],
//! only that service's statements count, and its endpoints are its own entry points: each of its
//! points whose parent belongs to another service (or to no stored point) — the requests it
//! served in the traces, wherever in the trace they were.
//!
//! [`finish`]: StatsBuilder::finish
//!
//! ```
//! use osprofiler_core::{report::Report, stats::StatsBuilder};
//! use serde_json::json;
//! let msg = |name: &str, id: &str, parent: &str, us: u32, info: serde_json::Value| json!({
//!     "name": name, "base_id": "b1", "trace_id": id, "parent_id": parent,
//!     "timestamp": format!("2024-01-01T00:00:00.{us:06}"), "project": "p", "service": "api",
//!     "info": info});
//! let report = Report::build(&[
//!     msg("wsgi-start", "w", "b1", 0, json!({"request": {"method": "GET", "path": "/orders/7"}})),
//!     msg("db-start", "d", "w", 1000, json!({"db": {"statement": "SELECT * FROM t WHERE id = 7"}})),
//!     msg("db-stop", "d", "w", 3000, json!({"db": {"rows": 1}})),
//!     msg("wsgi-stop", "w", "b1", 4000, json!({})),
//! ]);
//! let mut stats = StatsBuilder::new();
//! stats.add(report.to_value());
//! let stats = stats.finish();
//! assert_eq!(stats.traces, 1);
//! assert_eq!(stats.endpoints[0].endpoint, "wsgi GET /orders/{id}");
//! assert_eq!(stats.endpoints[0].db_ms, 2.0);
//! assert_eq!(stats.statements[0].fingerprint.as_deref(), Some("SELECT * FROM t WHERE id = ?"));
//! assert_eq!(stats.statements[0].slowest_base_id.as_deref(), Some("b1"));
//! ```

use crate::analysis::db_calls;
use crate::clock::parse_timestamp;
use crate::report::raw_message;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// One statement shape across traces (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementStats {
    /// The fingerprint id, 16 hex digits.
    pub id: String,
    /// The normalized text, when some trace recorded it.
    pub fingerprint: Option<String>,
    /// How many times it ran.
    pub calls: usize,
    /// In how many traces.
    pub traces: usize,
    /// Summed time, ms.
    pub total_ms: f64,
    /// Mean time per call, ms.
    pub mean_ms: f64,
    /// 95th percentile (nearest rank), ms.
    pub p95_ms: f64,
    /// Slowest call, ms.
    pub max_ms: f64,
    /// Rows returned or affected, summed over the calls that reported them.
    pub rows: u64,
    /// The services that ran it.
    pub services: Vec<String>,
    /// The trace of the slowest call.
    pub slowest_base_id: Option<String>,
}

/// One endpoint across traces (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStats {
    /// The point's name and what it served: `wsgi GET /orders/{id}`, `rpc compute.build`.
    pub endpoint: String,
    /// The service that served it.
    pub service: Option<String>,
    /// How many requests.
    pub calls: usize,
    /// Summed time, ms.
    pub total_ms: f64,
    /// Mean time per request, ms.
    pub mean_ms: f64,
    /// 95th percentile (nearest rank), ms.
    pub p95_ms: f64,
    /// Slowest request, ms.
    pub max_ms: f64,
    /// DB statement time under it, summed, ms.
    pub db_ms: f64,
    /// `db_ms / total_ms` (0 when there is no time).
    pub db_share: f64,
    /// DB statements under it per request.
    pub statements_per_call: f64,
    /// The trace of the slowest request.
    pub slowest_base_id: Option<String>,
}

/// What [`StatsBuilder::finish`] gives: the JSON of `osprofiler stats --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// How many traces were added.
    pub traces: usize,
    /// The service statements and endpoints were restricted to, if any.
    pub service: Option<String>,
    /// Endpoints, most total time first.
    pub endpoints: Vec<EndpointStats>,
    /// Statements, most total time first.
    pub statements: Vec<StatementStats>,
}

#[derive(Default)]
struct Acc {
    text: Option<String>,
    durations: Vec<i64>,
    rows: u64,
    services: BTreeSet<String>,
    traces: usize,
    slowest: Option<(i64, Option<String>)>,
    db_us: i64,
    statements: usize,
}

impl Acc {
    fn record(&mut self, us: i64, base_id: Option<&str>) {
        self.durations.push(us);
        if self.slowest.as_ref().is_none_or(|(s, _)| us > *s) {
            self.slowest = Some((us, base_id.map(str::to_owned)));
        }
    }

    /// (total, mean, p95, max) in ms.
    fn times(&mut self) -> (f64, f64, f64, f64) {
        self.durations.sort_unstable();
        let n = self.durations.len();
        if n == 0 {
            return (0.0, 0.0, 0.0, 0.0);
        }
        let total: i64 = self.durations.iter().sum();
        // Nearest rank: the smallest value with at least 95% of the calls at or below it.
        let rank = (n * 95).div_ceil(100).max(1);
        (
            ms(total),
            ms(total) / n as f64,
            ms(self.durations[rank - 1]),
            ms(self.durations[n - 1]),
        )
    }
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// Adds traces one by one and gives the [`Stats`] (see the [module docs](self)).
#[derive(Default)]
pub struct StatsBuilder {
    service: Option<String>,
    traces: usize,
    statements: HashMap<u64, Acc>,
    endpoints: HashMap<(String, Option<String>), Acc>,
}

impl std::fmt::Debug for StatsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsBuilder")
            .field("service", &self.service)
            .field("traces", &self.traces)
            .field("statements", &self.statements.len())
            .field("endpoints", &self.endpoints.len())
            .finish()
    }
}

/// A point of the report, flattened.
struct Node<'a> {
    parent: Option<usize>,
    name: &'a str,
    service: Option<&'a str>,
    start_info: Option<&'a Value>,
    us: i64,
    db_us: i64,
    statements: usize,
}

fn micros(m: Option<&Value>) -> Option<i64> {
    m?.get("timestamp")?.as_str().and_then(parse_timestamp)
}

/// A path with its id-like segments read as `{id}`.
fn path_shape(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|seg| {
            let hexish = seg.len() >= 8
                && seg.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
                && seg.chars().any(|c| c.is_ascii_digit());
            if (!seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit())) || hexish {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `wsgi GET /orders/{id}`, `rpc compute.build_instance`, or the name alone.
fn endpoint_of(name: &str, start_info: Option<&Value>) -> String {
    let info = start_info.and_then(|m| m.get("info"));
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    if let Some(req) = info
        .and_then(|i| i.get("request"))
        .filter(|r| r.is_object())
    {
        return format!(
            "{name} {} {}",
            s(req.get("method")),
            path_shape(&s(req.get("path")))
        );
    }
    if let Some(f) = info
        .and_then(|i| i.get("function"))
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
    {
        return format!("{name} {f}");
    }
    name.to_owned()
}

impl StatsBuilder {
    /// An empty builder over every service.
    pub fn new() -> StatsBuilder {
        StatsBuilder::default()
    }

    /// Only this service's statements, and its own entry points as endpoints.
    pub fn service(mut self, service: impl Into<String>) -> StatsBuilder {
        self.service = Some(service.into());
        self
    }

    /// Adds one trace: the JSON of its [`Report`](crate::report::Report). Any JSON is taken
    /// (what is unreadable counts for nothing); the walk is iterative.
    pub fn add(&mut self, report: &Value) {
        self.traces += 1;
        let calls = db_calls(report);
        let base_id = calls
            .iter()
            .find_map(|c| c.base_id.clone())
            .or_else(|| first_base_id(report));
        let wanted = |svc: Option<&str>| match &self.service {
            None => true,
            Some(s) => svc == Some(s.as_str()),
        };
        let mut in_trace: BTreeSet<u64> = BTreeSet::new();
        let mut db_by_point: HashMap<&str, i64> = HashMap::new();
        for c in &calls {
            if !wanted(c.service.as_deref()) {
                continue;
            }
            db_by_point.insert(c.trace_id.as_str(), c.duration_us);
            let Some(id) = c.id else { continue };
            let acc = self.statements.entry(id).or_default();
            if acc.text.is_none() {
                acc.text.clone_from(&c.text);
            }
            acc.record(c.duration_us, c.base_id.as_deref().or(base_id.as_deref()));
            acc.rows += c.rows.unwrap_or(0);
            if let Some(s) = &c.service {
                acc.services.insert(s.clone());
            }
            if in_trace.insert(id) {
                acc.traces += 1;
            }
        }

        // The report's points in pre-order (parents before children), iteratively.
        let mut nodes: Vec<Node<'_>> = Vec::new();
        let mut stack: Vec<(&Value, Option<usize>)> = report
            .get("children")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .rev()
            .map(|c| (c, None))
            .collect();
        while let Some((n, parent)) = stack.pop() {
            let Some(info) = n.get("info") else { continue };
            let (start, stop) = (raw_message(info, "start"), raw_message(info, "stop"));
            let us = match (micros(start), micros(stop)) {
                (Some(s), Some(f)) => f - s,
                _ => {
                    let g = |k: &str| info.get(k).and_then(Value::as_i64).unwrap_or(0);
                    (g("finished") - g("started")) * 1000
                }
            };
            let trace_id = n.get("trace_id").and_then(Value::as_str).unwrap_or("");
            let db_us = db_by_point.get(trace_id).copied();
            nodes.push(Node {
                parent,
                name: info.get("name").and_then(Value::as_str).unwrap_or("?"),
                service: info.get("service").and_then(Value::as_str),
                start_info: start,
                us,
                db_us: db_us.unwrap_or(0),
                statements: usize::from(db_us.is_some()),
            });
            let me = nodes.len() - 1;
            if let Some(kids) = n.get("children").and_then(Value::as_array) {
                stack.extend(kids.iter().rev().map(|c| (c, Some(me))));
            }
        }
        // Subtree DB time and statements: children come after their parent.
        for i in (0..nodes.len()).rev() {
            if let Some(p) = nodes[i].parent {
                let (us, n) = (nodes[i].db_us, nodes[i].statements);
                nodes[p].db_us += us;
                nodes[p].statements += n;
            }
        }
        let entries: Vec<usize> = match &self.service {
            // The trace's root: the first top-level point (report order is by start).
            None => nodes
                .iter()
                .position(|n| n.parent.is_none())
                .into_iter()
                .collect(),
            Some(s) => (0..nodes.len())
                .filter(|&i| {
                    nodes[i].service == Some(s.as_str())
                        && nodes[i]
                            .parent
                            .is_none_or(|p| nodes[p].service != Some(s.as_str()))
                })
                .collect(),
        };
        for i in entries {
            let n = &nodes[i];
            let key = (
                endpoint_of(n.name, n.start_info),
                n.service.map(str::to_owned),
            );
            let acc = self.endpoints.entry(key).or_default();
            acc.record(n.us, base_id.as_deref());
            acc.db_us += n.db_us;
            acc.statements += n.statements;
        }
    }

    /// The statistics, each list most total time first.
    pub fn finish(self) -> Stats {
        let mut statements: Vec<StatementStats> = self
            .statements
            .into_iter()
            .map(|(id, mut a)| {
                let (total_ms, mean_ms, p95_ms, max_ms) = a.times();
                StatementStats {
                    id: crate::db::fingerprint::format_id(id),
                    fingerprint: a.text,
                    calls: a.durations.len(),
                    traces: a.traces,
                    total_ms,
                    mean_ms,
                    p95_ms,
                    max_ms,
                    rows: a.rows,
                    services: a.services.into_iter().collect(),
                    slowest_base_id: a.slowest.and_then(|(_, b)| b),
                }
            })
            .collect();
        statements.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms).then(a.id.cmp(&b.id)));
        let mut endpoints: Vec<EndpointStats> = self
            .endpoints
            .into_iter()
            .map(|((endpoint, service), mut a)| {
                let (total_ms, mean_ms, p95_ms, max_ms) = a.times();
                let calls = a.durations.len();
                EndpointStats {
                    endpoint,
                    service,
                    calls,
                    total_ms,
                    mean_ms,
                    p95_ms,
                    max_ms,
                    db_ms: ms(a.db_us),
                    db_share: if total_ms > 0.0 {
                        (ms(a.db_us) / total_ms).min(1.0)
                    } else {
                        0.0
                    },
                    statements_per_call: if calls > 0 {
                        a.statements as f64 / calls as f64
                    } else {
                        0.0
                    },
                    slowest_base_id: a.slowest.and_then(|(_, b)| b),
                }
            })
            .collect();
        endpoints.sort_by(|a, b| {
            b.total_ms
                .total_cmp(&a.total_ms)
                .then(a.endpoint.cmp(&b.endpoint))
        });
        Stats {
            traces: self.traces,
            service: self.service,
            endpoints,
            statements,
        }
    }
}

/// The base id of the first raw message found (iteratively) in a report.
fn first_base_id(report: &Value) -> Option<String> {
    let mut stack: Vec<&Value> = report
        .get("children")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    while let Some(n) = stack.pop() {
        if let Some(b) = n
            .get("info")
            .and_then(|i| raw_message(i, "start").or_else(|| raw_message(i, "stop")))
            .and_then(|m| m.get("base_id"))
            .and_then(Value::as_str)
        {
            return Some(b.to_owned());
        }
        if let Some(kids) = n.get("children").and_then(Value::as_array) {
            stack.extend(kids);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;
    use serde_json::json;

    fn msg(
        name: &str,
        base: &str,
        id: &str,
        parent: &str,
        svc: &str,
        us: u32,
        info: Value,
    ) -> Value {
        json!({"name": name, "base_id": base, "trace_id": id, "parent_id": parent,
               "timestamp": format!("2024-01-01T00:00:{:02}.{:06}", us / 1_000_000, us % 1_000_000),
               "project": "p", "service": svc, "info": info})
    }

    /// A request to the api (GET /orders/N) that calls the worker, which runs `slow_us` of SQL.
    fn trace(base: &str, n: u32, slow_us: u32) -> Value {
        let q = |sql: &str| json!({"db": {"api": "query", "system": "sqlite", "statement": sql}});
        Report::build(&[
            msg(
                "wsgi-start",
                base,
                "w",
                base,
                "api",
                0,
                json!({"request": {"method": "GET", "path": format!("/orders/{n}")}}),
            ),
            msg(
                "db-start",
                base,
                "d1",
                "w",
                "api",
                100,
                q("SELECT * FROM orders WHERE id = ?"),
            ),
            msg(
                "db-stop",
                base,
                "d1",
                "w",
                "api",
                1100,
                json!({"db": {"rows": 1}}),
            ),
            msg("http-start", base, "h", "w", "api", 1200, json!({})),
            msg(
                "wsgi-start",
                base,
                "w2",
                "h",
                "worker",
                1300,
                json!({"request": {"method": "GET", "path": "/stock/widget"}}),
            ),
            msg(
                "db-start",
                base,
                "d2",
                "w2",
                "worker",
                1400,
                q("SELECT count(*) FROM days"),
            ),
            msg(
                "db-stop",
                base,
                "d2",
                "w2",
                "worker",
                1400 + slow_us,
                json!({"db": {"rows": 1}}),
            ),
            msg(
                "wsgi-stop",
                base,
                "w2",
                "h",
                "worker",
                1500 + slow_us,
                json!({}),
            ),
            msg(
                "http-stop",
                base,
                "h",
                "w",
                "api",
                1600 + slow_us,
                json!({}),
            ),
            msg(
                "wsgi-stop",
                base,
                "w",
                base,
                "api",
                1700 + slow_us,
                json!({}),
            ),
        ])
        .into_value()
    }

    #[test]
    fn statements_and_endpoints_over_traces() {
        let mut b = StatsBuilder::new();
        for (i, slow) in [1000, 50_000, 2000, 3000].into_iter().enumerate() {
            b.add(&trace(&format!("b{i}"), i as u32 + 1, slow));
        }
        let s = b.finish();
        assert_eq!(s.traces, 4);
        let top = &s.statements[0];
        assert_eq!(
            top.fingerprint.as_deref(),
            Some("SELECT count(*) FROM days")
        );
        assert_eq!((top.calls, top.traces, top.rows), (4, 4, 4));
        assert_eq!(top.total_ms, 56.0);
        assert_eq!(top.max_ms, 50.0);
        assert_eq!(top.p95_ms, 50.0, "nearest rank of 4 calls is the 4th");
        assert_eq!(top.slowest_base_id.as_deref(), Some("b1"));
        assert_eq!(top.services, ["worker"]);
        assert_eq!(s.statements[1].calls, 4);
        assert_eq!(s.statements[1].mean_ms, 1.0);
        // One endpoint whatever the order id; the worker is not an endpoint of the trace.
        assert_eq!(s.endpoints.len(), 1);
        let e = &s.endpoints[0];
        assert_eq!(e.endpoint, "wsgi GET /orders/{id}");
        assert_eq!(e.calls, 4);
        assert_eq!(e.statements_per_call, 2.0);
        assert_eq!(e.db_ms, 60.0);
        assert_eq!(e.slowest_base_id.as_deref(), Some("b1"));
    }

    #[test]
    fn a_service_sees_its_own_statements_and_entry_points() {
        let mut b = StatsBuilder::new().service("worker");
        b.add(&trace("b0", 1, 5000));
        let s = b.finish();
        assert_eq!(s.statements.len(), 1);
        assert_eq!(s.statements[0].services, ["worker"]);
        assert_eq!(s.endpoints.len(), 1);
        assert_eq!(s.endpoints[0].endpoint, "wsgi GET /stock/widget");
        assert_eq!(s.endpoints[0].service.as_deref(), Some("worker"));
        assert_eq!(s.endpoints[0].db_ms, 5.0);
    }

    #[test]
    fn any_json_is_taken() {
        let mut b = StatsBuilder::new();
        for v in [
            json!(null),
            json!([]),
            json!({"children": 3}),
            json!({"children": [1, {"info": 2}]}),
        ] {
            b.add(&v);
        }
        let s = b.finish();
        assert_eq!(s.traces, 4);
        assert!(s.statements.is_empty());
    }

    #[test]
    fn ids_in_paths_read_as_one_endpoint() {
        assert_eq!(
            path_shape("/v2/servers/0d6b7a4e-0000-4000-8000-000000000000/action"),
            "/v2/servers/{id}/action"
        );
        assert_eq!(path_shape("/orders/12?x=1"), "/orders/{id}");
        assert_eq!(path_shape("/stock/widget"), "/stock/widget");
        assert_eq!(path_shape("/"), "/");
    }
}
