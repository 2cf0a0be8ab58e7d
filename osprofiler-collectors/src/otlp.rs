//! The OTLP collector: spans over OTLP/HTTP (protobuf), which Jaeger, Tempo and the
//! OpenTelemetry Collector ingest.
//!
//! Ids and names follow Python OSProfiler's `otlp` driver: the trace id is the 128 bits of
//! `base_id`, a span id the low 64 bits of the point's `trace_id`, the parent span the low 64
//! bits of `parent_id` (none when `parent_id == base_id`); span names are
//! `WSGI_<METHOD>_<path>` for server requests, `SQL_<FIRST WORD>` for statements,
//! `REQUESTS_<METHOD>_<hostname>` for client requests, else the point name; attributes are
//! Python's (`http.*`, `name`, `args`, …) except on DB points, which carry OpenTelemetry's
//! stable database attributes: `db.system.name`, `db.namespace`, `db.query.text` (with
//! `trace_sql`), `db.operation.name`, `server.address`/`server.port`,
//! `db.response.returned_rows` and `db.response.status_code` (the SQLSTATE), plus Python's
//! `db.params` and `osprofiler.db.api`. An error point gets `error=true`, `error.type`, a `log`
//! event with `error.kind` and `message`, and status ERROR.
//!
//! Unlike Python, which pairs a stop with the last start on a process-wide stack (wrong as
//! soon as two requests overlap), a stop is paired with its start by point id, also across
//! batches. Spans of a batch go in one request; a failed export is retried by the notifier
//! with nothing lost or sent twice.
//!
//! This driver builds the OTLP messages itself with `opentelemetry-proto` (the types the
//! OpenTelemetry SDK's exporter sends) because the spans carry OSProfiler's own ids and
//! times, which the SDK's tracer would replace.

use crate::http::{Client, client, percent_decode, send};
use crate::rt::Rt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use osprofiler_core::notifier::{DriverError, Writer};
use osprofiler_core::{clock::parse_timestamp, message::Message};
use prost::Message as _;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Starts waiting for their stop are kept at most this long (a point that never stops).
const PENDING_TTL: Duration = Duration::from_secs(600);

/// A collector exporting spans over OTLP/HTTP (see the [module docs](self)).
///
/// Connection strings:
/// - `otlp://host:port[/path]` posts to `http://host:port[/path]/v1/traces`, as Python does;
///   `otlp+https://host:port[/path]` the same over HTTPS (rustls; the system's roots).
/// - `otlp://` with nothing after it takes the endpoint from the standard variables:
///   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), else `OTEL_EXPORTER_OTLP_ENDPOINT`
///   (`/v1/traces` appended), else `http://localhost:4318/v1/traces`.
/// - Headers (for authentication): `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else
///   `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,key2=value2`, values percent-encoded), and
///   `?headers=…` in the same form on the connection string, which wins for a key given twice.
/// - A CA to trust besides the system's (a private or self-signed receiver): the PEM file in
///   `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, else `OTEL_EXPORTER_OTLP_CERTIFICATE`, or
///   `?certificate=/path/ca.pem`.
///
/// Header values are never shown (`Debug` lists the names only). Export only: reading traces
/// back is the tracing back end's job (`trace show` from this driver says so).
///
/// ```
/// use osprofiler_collectors::OtlpDriver;
/// let d = OtlpDriver::open("otlp://127.0.0.1:4318").unwrap();
/// assert_eq!(d.endpoint(), "http://127.0.0.1:4318/v1/traces");
/// ```
pub struct OtlpDriver {
    endpoint: String,
    uri: http::Uri,
    headers: http::HeaderMap,
    rt: Rt,
    client: Client,
    pending: Mutex<HashMap<String, (Value, Instant)>>,
}

impl std::fmt::Debug for OtlpDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpDriver")
            .field("endpoint", &self.shown())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Where and how spans are exported, from a connection string and the environment.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    endpoint: String,
    headers: Vec<(String, String)>,
    certificate: Option<String>,
}

/// `key=value,key2=value2` pairs (the OTel headers format).
fn header_pairs(list: &str) -> Result<Vec<(String, String)>, DriverError> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                // No `=`: the whole pair may be a token; only its length is shown.
                DriverError::new(format!(
                    "bad OTLP header ({} characters): expected key=value",
                    pair.len()
                ))
            })?;
            Ok((percent_decode(k.trim())?, percent_decode(v.trim())?))
        })
        .collect()
}

impl Settings {
    fn of(
        connection_string: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, DriverError> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let (scheme, rest) = connection_string
            .split_once("://")
            .ok_or_else(|| DriverError::new("expected otlp://host:port[/path]"))?;
        let http = match scheme.to_ascii_lowercase().as_str() {
            "otlp" | "otlp+http" => "http",
            "otlp+https" => "https",
            other => {
                return Err(DriverError::new(format!(
                    "unknown OTLP scheme {other:?}: use otlp://, otlp+http:// or otlp+https://"
                )));
            }
        };
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut headers = match env("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
        {
            Some(list) => header_pairs(&list)?,
            None => Vec::new(),
        };
        let mut certificate = env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
            .or_else(|| env("OTEL_EXPORTER_OTLP_CERTIFICATE"));
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            match k {
                "headers" => {
                    for (k, v) in header_pairs(&percent_decode(v)?)? {
                        headers.retain(|(old, _)| !old.eq_ignore_ascii_case(&k));
                        headers.push((k, v));
                    }
                }
                "certificate" => certificate = Some(percent_decode(v)?),
                other => {
                    return Err(DriverError::new(format!(
                        "unknown otlp:// option {other:?} (known: headers, certificate)"
                    )));
                }
            }
        }
        let (authority, path) = match location.find('/') {
            Some(i) => (&location[..i], location[i..].trim_end_matches('/')),
            None => (location, ""),
        };
        let endpoint = if authority.is_empty() {
            if let Some(e) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
                e.trim().to_owned()
            } else if let Some(e) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
                format!("{}/v1/traces", e.trim().trim_end_matches('/'))
            } else {
                "http://localhost:4318/v1/traces".to_owned()
            }
        } else {
            let authority = if authority.contains(':') {
                authority.to_owned()
            } else {
                format!("{authority}:4318")
            };
            let path = if path.ends_with("/v1/traces") {
                path.to_owned()
            } else {
                format!("{path}/v1/traces")
            };
            format!("{http}://{authority}{path}")
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(DriverError::new(format!(
                "the OTLP endpoint {:?} is not an http:// or https:// URL",
                osprofiler_core::config::redact_urls(&endpoint)
            )));
        }
        Ok(Settings {
            endpoint,
            headers,
            certificate,
        })
    }
}

impl OtlpDriver {
    /// A driver for `otlp://host:port[/path]` and the forms above, with the environment's
    /// `OTEL_EXPORTER_OTLP_*` variables. Nothing is connected until the first export.
    pub fn open(connection_string: &str) -> Result<OtlpDriver, DriverError> {
        Self::with_settings(Settings::of(connection_string, |k| std::env::var(k).ok())?)
    }

    fn with_settings(settings: Settings) -> Result<OtlpDriver, DriverError> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in &settings.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| DriverError::new(format!("bad OTLP header name {k:?}")))?;
            let mut value = http::HeaderValue::from_str(v)
                .map_err(|_| DriverError::new(format!("bad value for OTLP header {k:?}")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let uri: http::Uri = settings.endpoint.parse().map_err(|e| {
            DriverError::with_source(
                format!(
                    "bad OTLP endpoint {}",
                    osprofiler_core::config::redact_urls(&settings.endpoint)
                ),
                e,
            )
        })?;
        let rt = Rt::new()?;
        let client = {
            // The connection pool's background tasks run on the driver's runtime.
            let _enter = rt.handle().enter();
            client(settings.certificate.as_deref())?
        };
        Ok(OtlpDriver {
            endpoint: settings.endpoint,
            uri,
            headers,
            rt,
            client,
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// The URL spans are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The endpoint as errors and `Debug` show it: without a password.
    fn shown(&self) -> std::borrow::Cow<'_, str> {
        osprofiler_core::config::redact_urls(&self.endpoint)
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), DriverError> {
        let mut req = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| DriverError::with_source("cannot build the OTLP request", e))?;
        req.headers_mut().extend(self.headers.clone());
        let target = format!("cannot export spans to {}", self.shown());
        let (status, _) = send(&self.client, req, Duration::from_secs(10), &target).await?;
        if !status.is_success() {
            let e = DriverError::new(format!(
                "the OTLP receiver at {} answered {status}",
                self.shown()
            ));
            // 4xx but timeouts and throttling: the receiver will refuse the same spans again
            // (OTLP's retryable codes are 429, 502, 503, 504).
            let refused = status.is_client_error()
                && status != http::StatusCode::TOO_MANY_REQUESTS
                && status != http::StatusCode::REQUEST_TIMEOUT;
            return Err(if refused { e.rejected() } else { e });
        }
        Ok(())
    }
}

fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    uuid::Uuid::try_parse(id).ok().map(|u| *u.as_bytes())
}

/// The 128-bit trace id of a base id; a non-UUID id gets a stable hash instead of Python's
/// fresh random id (so all of its spans stay in one trace).
fn trace_id(base_id: &str) -> Vec<u8> {
    uuid_bytes(base_id).map_or_else(|| stable_hash(base_id, 16), |b| b.to_vec())
}

/// The low 64 bits of a point id.
fn span_id(id: &str) -> Vec<u8> {
    uuid_bytes(id).map_or_else(|| stable_hash(id, 8), |b| b[8..].to_vec())
}

fn stable_hash(s: &str, len: usize) -> Vec<u8> {
    // FNV-1a, twice with different offsets for 16 bytes: stable across processes and builds.
    let mut out = Vec::with_capacity(16);
    for seed in [0xcbf2_9ce4_8422_2325_u64, 0x6c62_272e_07bb_0142] {
        let mut h = seed;
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.extend_from_slice(&h.to_be_bytes());
    }
    out.truncate(len);
    out
}

fn kv(key: &str, v: &Value) -> Option<KeyValue> {
    let value = match v {
        Value::Null => return None,
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        other => any_value::Value::StringValue(osprofiler_core::pyjson::to_string(other)),
    };
    Some(KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    })
}

fn point_name(message_name: &str) -> &str {
    message_name
        .strip_suffix("-start")
        .or_else(|| message_name.strip_suffix("-stop"))
        .unwrap_or(message_name)
}

/// Python's span name.
fn span_name(start: &Value) -> String {
    let info = &start["info"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    if info["request"].is_object() {
        format!(
            "WSGI_{}_{}",
            s(&info["request"]["method"]),
            s(&info["request"]["path"])
        )
    } else if let Some(sql) = info["db"]["statement"].as_str() {
        format!(
            "SQL_{}",
            sql.split(' ').next().unwrap_or_default().to_uppercase()
        )
    } else if info["requests"].is_object() {
        format!(
            "REQUESTS_{}_{}",
            s(&info["requests"]["method"]),
            s(&info["requests"]["hostname"])
        )
    } else {
        point_name(start["name"].as_str().unwrap_or_default()).to_owned()
    }
}

fn span_kind(point: &str) -> SpanKind {
    if point.contains("wsgi") {
        SpanKind::Server
    } else if point.contains("db") || point.contains("http") || point.contains("api") {
        SpanKind::Client
    } else {
        SpanKind::Internal
    }
}

/// The OpenTelemetry database attributes of a `db` point's start (the stable conventions:
/// `db.system.name`, `db.namespace`, `db.query.text`, `db.operation.name`,
/// `server.address`/`server.port`), with Python's `db.params` and our `osprofiler.db.api`.
fn db_attributes(db: &serde_json::Map<String, Value>, add: &mut impl FnMut(&str, &Value)) {
    let text = |k: &str| db.get(k).and_then(Value::as_str);
    for (attr, key) in [
        ("db.system.name", "system"),
        ("db.namespace", "namespace"),
        ("db.query.text", "statement"),
        ("osprofiler.db.api", "api"),
    ] {
        if let Some(v) = db.get(key) {
            add(attr, v);
        }
    }
    if let Some(v) = db.get("params") {
        add(
            "db.params",
            &Value::String(osprofiler_core::pyjson::to_string(v)),
        );
    }
    let operation = match (text("statement"), text("api")) {
        (Some(sql), _) => sql
            .split_whitespace()
            .next()
            .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase),
        (None, Some(api)) => match api {
            "begin" => Some("BEGIN"),
            "commit" => Some("COMMIT"),
            "rollback" => Some("ROLLBACK"),
            "savepoint" => Some("SAVEPOINT"),
            "release_savepoint" => Some("RELEASE SAVEPOINT"),
            "rollback_to_savepoint" => Some("ROLLBACK TO SAVEPOINT"),
            _ => None,
        }
        .map(str::to_owned),
        _ => None,
    };
    if let Some(op) = operation {
        add("db.operation.name", &Value::String(op));
    }
    if let Some(server) = text("server") {
        // `host:port`, `[v6]:port` or a host alone.
        let (host, port) = match server.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse::<u16>().ok()),
            _ => (server, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        add("server.address", &Value::String(host.to_owned()));
        if let Some(port) = port {
            add("server.port", &Value::from(port));
        }
    }
}

/// Python's span attributes (`create_span_tags`); DB points get OpenTelemetry's database
/// attributes instead of Python's `db.statement`.
fn start_attributes(start: &Value) -> Vec<KeyValue> {
    let info = &start["info"];
    let mut out = Vec::new();
    let mut add = |k: &str, v: &Value| out.extend(kv(k, v));
    if let Some(db) = info["db"].as_object() {
        db_attributes(db, &mut add);
    } else if let Some(r) = info["request"].as_object() {
        for k in ["path", "query", "method", "scheme"] {
            add(&format!("http.{k}"), r.get(k).unwrap_or(&Value::Null));
        }
    } else if let Some(r) = info["requests"].as_object() {
        for k in ["path", "query", "method", "scheme", "hostname", "port"] {
            add(&format!("http.{k}"), r.get(k).unwrap_or(&Value::Null));
        }
    } else if let Some(f) = info["function"].as_object() {
        for k in ["args", "kwargs", "name"] {
            if let Some(v) = f.get(k) {
                add(k, v);
            }
        }
    }
    out
}

fn nanos(ts: &Value) -> u64 {
    ts.as_str()
        .and_then(parse_timestamp)
        .map_or(0, |us| (us.max(0) as u64) * 1000)
}

/// One span from a start and its stop.
fn span(start: &Value, stop: &Value) -> Span {
    let base = start["base_id"].as_str().unwrap_or_default();
    let parent = start["parent_id"].as_str().unwrap_or_default();
    let point = point_name(start["name"].as_str().unwrap_or_default());
    let mut attributes = start_attributes(start);
    let sinfo = &stop["info"];
    for call in ["db", "function"] {
        if let Some(r) = sinfo[call].get("result") {
            attributes.extend(kv("result", r));
        }
    }
    if let Some(db) = sinfo["db"].as_object() {
        if let Some(rows) = db.get("rows") {
            attributes.extend(kv("db.response.returned_rows", rows));
        }
        // The SQLSTATE, or the database's own code where it has none (SQLite).
        if let Some(code) = db.get("sqlstate").or_else(|| db.get("code")) {
            let code = match code {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            attributes.extend(kv("db.response.status_code", &Value::String(code)));
        }
    }
    if let Some(code) = sinfo["requests"].get("status_code") {
        attributes.extend(kv("status_code", code));
    }
    if let Some(code) = sinfo["response"].get("status_code") {
        attributes.extend(kv("http.status_code", code));
    }
    let mut events = Vec::new();
    let mut status = None;
    if let Some(etype) = sinfo.get("etype").filter(|e| !e.is_null()) {
        attributes.extend(kv("error", &Value::Bool(true)));
        attributes.extend(kv("error.type", etype));
        let message = sinfo.get("message").cloned().unwrap_or(Value::Null);
        events.push(Event {
            time_unix_nano: nanos(&stop["timestamp"]),
            name: "log".into(),
            attributes: [kv("error.kind", etype), kv("message", &message)]
                .into_iter()
                .flatten()
                .collect(),
            dropped_attributes_count: 0,
        });
        status = Some(Status {
            message: format!(
                "{}: {}",
                etype.as_str().unwrap_or_default(),
                message.as_str().unwrap_or_default()
            ),
            code: StatusCode::Error as i32,
        });
    }
    Span {
        trace_id: trace_id(base),
        span_id: span_id(start["trace_id"].as_str().unwrap_or_default()),
        parent_span_id: if parent == base {
            Vec::new()
        } else {
            span_id(parent)
        },
        flags: 0x100 | 0x1, // sampled; the parent's "is remote" flag is known
        name: span_name(start),
        kind: span_kind(point) as i32,
        start_time_unix_nano: nanos(&start["timestamp"]),
        end_time_unix_nano: nanos(&stop["timestamp"]),
        attributes,
        events,
        status,
        ..Default::default()
    }
}

/// Python's service name: `<project>-<service>`.
fn service_name(m: &Value) -> String {
    let s = |k: &str| m[k].as_str().unwrap_or("None").to_owned();
    format!("{}-{}", s("project"), s("service"))
}

fn request(spans: BTreeMap<String, Vec<Span>>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: spans
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: kv("service.name", &Value::String(service))
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "osprofiler-rs".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

impl Writer for OtlpDriver {
    fn name(&self) -> &str {
        "otlp"
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        let mut spans: BTreeMap<String, Vec<Span>> = BTreeMap::new();
        // Starts paired in this call, put back if the export fails (the notifier retries the
        // same batch, whose stops pair with them again).
        let mut consumed: Vec<(String, (Value, Instant))> = Vec::new();
        let mut added: Vec<String> = Vec::new();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.retain(|_, (_, at)| at.elapsed() < PENDING_TTL);
            for m in batch {
                let v = m.to_value();
                let id = v["trace_id"].as_str().unwrap_or_default().to_owned();
                if v["name"].as_str().is_some_and(|n| n.ends_with("-start")) {
                    added.push(id.clone());
                    pending.insert(id, (v, Instant::now()));
                    continue;
                }
                // A stop without its start (lost, or from before a restart): a span of zero
                // length at the stop.
                let (start, at) = pending
                    .remove(&id)
                    .unwrap_or_else(|| (v.clone(), Instant::now()));
                spans
                    .entry(service_name(&start))
                    .or_default()
                    .push(span(&start, &v));
                if !added.contains(&id) {
                    consumed.push((id, (start, at)));
                }
            }
        }
        if spans.is_empty() {
            return Ok(());
        }
        let body = request(spans).encode_to_vec();
        let result = self.rt.run(self.post(body));
        if result.is_err() {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for id in added {
                pending.remove(&id);
            }
            pending.extend(consumed);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_python() {
        let e = |cs: &str| OtlpDriver::open(cs).unwrap().endpoint;
        assert_eq!(
            e("otlp://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(e("otlp://collector"), "http://collector:4318/v1/traces");
        assert_eq!(e("otlp://c:1/otel/"), "http://c:1/otel/v1/traces");
        assert_eq!(e("otlp://c:1/v1/traces"), "http://c:1/v1/traces");
    }

    #[test]
    fn ids_are_the_references() {
        let u = "0f0e0d0c-0b0a-4908-8706-050403020100";
        assert_eq!(
            trace_id(u),
            uuid::Uuid::parse_str(u).unwrap().as_bytes().to_vec()
        );
        assert_eq!(
            span_id(u),
            vec![0x87, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x00]
        );
        assert_eq!(trace_id("not-a-uuid"), trace_id("not-a-uuid"));
        assert_eq!(trace_id("not-a-uuid").len(), 16);
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;

    fn of(cs: &str, vars: &[(&str, &str)]) -> Result<Settings, DriverError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::of(cs, |k| vars.get(k).cloned())
    }

    #[test]
    fn endpoints_from_the_connection_string_or_the_standard_variables() {
        assert_eq!(
            of("otlp://h:1/p", &[]).unwrap().endpoint,
            "http://h:1/p/v1/traces"
        );
        assert_eq!(
            of("otlp+https://h", &[]).unwrap().endpoint,
            "https://h:4318/v1/traces"
        );
        assert_eq!(
            of("otlp://", &[]).unwrap().endpoint,
            "http://localhost:4318/v1/traces"
        );
        let generic = [("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/")];
        assert_eq!(
            of("otlp://", &generic).unwrap().endpoint,
            "https://collector:4318/v1/traces"
        );
        let both = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://traces.example/api/otlp",
            ),
        ];
        assert_eq!(
            of("otlp://", &both).unwrap().endpoint,
            "https://traces.example/api/otlp",
            "the signal's variable is used as is"
        );
        assert_eq!(
            of("otlp://h:1", &both).unwrap().endpoint,
            "http://h:1/v1/traces",
            "an explicit host wins"
        );
        assert!(of("otlp://", &[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x")]).is_err());
        assert!(of("otlps://h", &[]).is_err());
    }

    #[test]
    fn headers_and_certificate() {
        let s = of(
            "otlp://h?headers=authorization%3DBearer%2520t0k,x-tenant%3Da",
            &[
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Basic%20old, x-org=7",
                ),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
            ],
        )
        .unwrap();
        assert_eq!(
            s.headers,
            [
                ("x-org".to_owned(), "7".to_owned()),
                ("authorization".to_owned(), "Bearer t0k".to_owned()),
                ("x-tenant".to_owned(), "a".to_owned()),
            ]
        );
        assert_eq!(s.certificate.as_deref(), Some("/etc/ca.pem"));
        let e = of("otlp://h", &[("OTEL_EXPORTER_OTLP_HEADERS", "oops")]).unwrap_err();
        assert!(e.to_string().contains("key=value"), "{e}");
        assert!(of("otlp://h?colour=blue", &[]).is_err());
        let d = OtlpDriver::with_settings(
            of("otlp://h?headers=authorization%3Dsecret-token", &[]).unwrap(),
        )
        .unwrap();
        assert!(!format!("{d:?}").contains("secret-token"));
    }
}
