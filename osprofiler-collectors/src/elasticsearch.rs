//! The Elasticsearch / OpenSearch collector, laid out as Python OSProfiler's
//! `elasticsearch://` driver lays it out, so that each reads what the other wrote.
//!
//! Index `osprofiler-notifications`: one document per message — the message as Python stores
//! it, `project` and `service` included. With `filter_error_trace` on, a `{base_id, timestamp}`
//! document per error trace goes into `osprofiler-notifications-error`. Python's `osprofiler
//! trace show/list` read what this driver writes, and the other way round.
//!
//! Where Python's driver goes wrong, this one does not:
//! - **Exact trace ids.** Python looks a trace up with a full-text `match` on a dynamically
//!   mapped (text) `base_id`: the hyphen-separated parts of a UUID are separate words, so a
//!   trace sharing one part with another pulls in its points. Before its first write this
//!   driver puts an index template (named after the index) mapping `base_id`, `trace_id`,
//!   `parent_id`, `name`, `project`, `service` as `keyword` and `timestamp` as `date`, and
//!   reads with exact `term` queries. On an index Python created first (text fields) it queries
//!   the `.keyword` sub-field, or a phrase, and in every case keeps only documents whose
//!   `base_id` is exactly the one asked for.
//! - **Whole traces.** Reads page through every hit with a scroll (`es_scroll_size` hits a
//!   page, kept alive `es_scroll_time` between pages, as in Python) and release the scroll at
//!   the end; a trace of any size reads back whole. (A scroll rather than a point in time:
//!   the point-in-time APIs of Elasticsearch and OpenSearch differ, scrolls are the same.)
//! - **Batches.** A notifier batch is one `_bulk` request (split above 8 MiB), not one request
//!   per message. Each document's `_id` is its point id and phase, so a batch sent again after
//!   a timeout or a throttled item (429) stores nothing twice. A document the server refuses
//!   (a mapping conflict, an immense term) is counted in
//!   [`NotifierStats::dropped_failed`](osprofiler_core::notifier::NotifierStats) and dropped
//!   alone; the rest of the batch is stored.
//! - **Fresh reads.** Reads refresh the index first, so a trace just flushed is there
//!   (`?refresh=wait_for` on the connection string makes each write wait for visibility).
//! - `info` is kept whole in each document's `_source`, but only `info.host` and `info.etype`
//!   are indexed: the fields of arbitrary points (SQL parameters, `tracing` fields) would
//!   otherwise grow the mapping without bound and conflict with each other.
//!
//! Retention and clean-up ([`Writer::retain`], [`Writer::prune`], [`Writer::delete_trace`]):
//! `prune` pages through the traces with a message older than the cutoff (a `range` query on
//! `timestamp` — a `date` in the template and in dynamic mapping — under a `composite`
//! aggregation on the keyword `base_id`, a thousand a page), leaves out those with a message
//! as new as the cutoff or newer (a second search on the page's ids), and deletes the rest
//! with `_delete_by_query` on a `terms` query, error markers included. A trace still being
//! written is never cut. An index whose `base_id` has no keyword (text only) cannot be
//! pruned: the error says so. This collector does not stage provisional traces
//! ([`Writer::stage`] is an error: a service with `keep_slow_ms` on it fails at start).
//!
//! `es_doc_type` has no effect: mapping types are gone from Elasticsearch 7 and OpenSearch 2
//! (documents are `_doc`); the profiler warns once when it is set. Needs Elasticsearch 7.8+
//! or OpenSearch 1.0+ (composable index templates).

use crate::http::{Client, client, percent_decode, send};
use crate::rt::Rt;
use base64::Engine as _;
use osprofiler_core::notifier::{DriverError, Reader, TraceSummary, Writer, summarize};
use osprofiler_core::{ProfilerConfig, message::Message};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Python's index names.
const INDEX: &str = "osprofiler-notifications";
/// A `_bulk` request is cut above this many bytes (Elasticsearch's advice: 5–15 MB).
const MAX_BULK_BYTES: usize = 8 << 20;
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Traces per page of [`Writer::prune`] (one search, one `_delete_by_query`).
const PRUNE_PAGE: usize = 1000;

/// A collector storing messages in Elasticsearch or OpenSearch (see the [module docs](self)).
///
/// Connection strings: `elasticsearch://[user:password@]host[:port][/path][?options]` over
/// HTTP (port 9200 when none is given; `elasticsearch://` alone is `localhost:9200`, as in
/// Python), `elasticsearch+https://…` over HTTPS (rustls; the system's roots). User and
/// password (percent-encoded) go in HTTP basic authentication. Options:
/// - `index=NAME`: the index (default `osprofiler-notifications`; errors go to `NAME-error`),
///   for several deployments in one cluster; Python's driver always uses the default.
/// - `refresh=wait_for` (or `true`, `false`): passed to every `_bulk` request.
/// - `certificate=/path/ca.pem`: a CA to trust besides the system's.
///
/// Nothing is connected until the first write or read; the password is never shown (`Debug`
/// and errors name the URL without it).
///
/// ```
/// use osprofiler_collectors::ElasticsearchDriver;
/// let es = ElasticsearchDriver::open("elasticsearch://ops:s3cret@127.0.0.1:9200?index=osp").unwrap();
/// assert_eq!(es.url(), "http://127.0.0.1:9200");
/// assert_eq!(es.index(), "osp");
/// assert!(!format!("{es:?}").contains("s3cret"));
/// ```
pub struct ElasticsearchDriver {
    url: String,
    index: String,
    error_index: String,
    auth: Option<http::HeaderValue>,
    user: Option<String>,
    refresh: Option<String>,
    scroll_time: String,
    scroll_size: u64,
    /// `None`: follow the process-wide `filter_error_trace` switch.
    filter_error_trace: Option<bool>,
    rt: Rt,
    client: Client,
    templated: AtomicBool,
    /// How `base_id` is queried on this index, once known.
    base_id_query: Mutex<Option<BaseIdQuery>>,
    /// Why the server refused a document of the batch being stored.
    last_refusal: Mutex<Option<String>>,
}

impl std::fmt::Debug for ElasticsearchDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElasticsearchDriver")
            .field("url", &self.url)
            .field("index", &self.index)
            .field("user", &self.user)
            .field("filter_error_trace", &self.filter_error_trace)
            .finish_non_exhaustive()
    }
}

/// The parts of a connection string.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    url: String,
    credentials: Option<(String, String)>,
    index: String,
    refresh: Option<String>,
    certificate: Option<String>,
}

impl Settings {
    fn of(connection_string: &str) -> Result<Settings, DriverError> {
        let (scheme, rest) = connection_string.split_once("://").ok_or_else(|| {
            DriverError::new("expected elasticsearch://[user:password@]host[:port]")
        })?;
        let http = match scheme.to_ascii_lowercase().as_str() {
            "elasticsearch" | "elasticsearch+http" => "http",
            "elasticsearch+https" => "https",
            other => {
                return Err(DriverError::new(format!(
                    "unknown Elasticsearch scheme {other:?}: use elasticsearch:// or \
                     elasticsearch+https://"
                )));
            }
        };
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        // The authority ends at the first `/` (a `/` in a password is written %2F).
        let (authority, path) = match location.find('/') {
            Some(i) => (&location[..i], location[i..].trim_end_matches('/')),
            None => (location, ""),
        };
        let (userinfo, authority) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let bad = |what: &str, e: DriverError| {
                    DriverError::new(format!("elasticsearch:// {what}: {e}"))
                };
                Some((
                    percent_decode(user).map_err(|e| bad("user name", e))?,
                    percent_decode(pass).map_err(|e| bad("password", e))?,
                ))
            }
            None => None,
        };
        let authority = match authority.rsplit_once(':') {
            _ if authority.is_empty() => "localhost:9200".to_owned(),
            // A port (an IPv6 literal's last `:` is inside its brackets).
            Some((_, port)) if !port.contains(']') => {
                if port.parse::<u16>().is_err() {
                    return Err(DriverError::new(format!(
                        "bad port {port:?} in the elasticsearch:// connection string"
                    )));
                }
                authority.to_owned()
            }
            _ => format!("{authority}:9200"),
        };
        // Checked now: a URL that cannot make a request would fail every write for ever.
        if format!("{http}://{authority}{path}/_bulk")
            .parse::<http::Uri>()
            .is_err()
        {
            return Err(DriverError::new(format!(
                "bad host or path in the elasticsearch:// connection string: {authority}{path}"
            )));
        }
        let mut s = Settings {
            url: format!("{http}://{authority}{path}"),
            credentials,
            index: INDEX.to_owned(),
            refresh: None,
            certificate: None,
        };
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            let v = percent_decode(v)?;
            match k {
                "index" => {
                    let valid = !v.is_empty()
                        && !v.starts_with(['-', '_', '+'])
                        && v.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)
                        });
                    if !valid {
                        return Err(DriverError::new(format!(
                            "bad elasticsearch:// option index={v:?}: an index name is \
                             lowercase letters, digits, '-', '_' and '.', not starting with \
                             '-', '_' or '+'"
                        )));
                    }
                    s.index = v;
                }
                "refresh" => match v.as_str() {
                    "true" | "false" | "wait_for" => s.refresh = Some(v),
                    _ => {
                        return Err(DriverError::new(format!(
                            "bad elasticsearch:// option refresh={v:?}: expected true, false \
                             or wait_for"
                        )));
                    }
                },
                "certificate" => s.certificate = Some(v),
                other => {
                    return Err(DriverError::new(format!(
                        "unknown elasticsearch:// option {other:?} (known: index, refresh, \
                         certificate)"
                    )));
                }
            }
        }
        Ok(s)
    }
}

/// `es_scroll_time` as Elasticsearch takes it: a number and a unit.
fn check_scroll_time(t: &str) -> Result<(), DriverError> {
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let unit = &t[digits..];
    if digits == 0 || !["d", "h", "m", "s", "ms", "micros", "nanos"].contains(&unit) {
        return Err(DriverError::new(format!(
            "bad es_scroll_time {t:?}: expected a number and a unit (d, h, m, s, ms, micros, \
             nanos), like 2m"
        )));
    }
    Ok(())
}

/// How the index lets `base_id` be matched exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BaseIdQuery {
    /// A `term` query on this keyword field (`base_id`, or `base_id.keyword` on an index that
    /// Python's driver created with dynamic mapping).
    Term(String),
    /// A phrase on a text field without a keyword sub-field (the results are filtered).
    Phrase,
}

impl BaseIdQuery {
    /// From the answer of `GET /<index>/_mapping/field/base_id` (`None`: not mapped yet).
    fn of_mapping(mapping: &Value) -> Option<BaseIdQuery> {
        let field = mapping
            .as_object()?
            .values()
            .find_map(|index| index["mappings"]["base_id"]["mapping"]["base_id"].as_object())?;
        Some(match field.get("type").and_then(Value::as_str) {
            Some("keyword") => BaseIdQuery::Term("base_id".into()),
            _ => match field
                .get("fields")
                .and_then(Value::as_object)
                .and_then(|f| {
                    f.iter()
                        .find(|(_, sub)| sub["type"] == "keyword")
                        .map(|(name, _)| format!("base_id.{name}"))
                }) {
                Some(sub) => BaseIdQuery::Term(sub),
                None => BaseIdQuery::Phrase,
            },
        })
    }

    fn query(&self, base_id: &str) -> Value {
        match self {
            BaseIdQuery::Term(field) => json!({"term": {field: base_id}}),
            BaseIdQuery::Phrase => json!({"match_phrase": {"base_id": base_id}}),
        }
    }

    /// A query for any of `base_ids`.
    fn any_of(&self, base_ids: &[String]) -> Value {
        match self {
            BaseIdQuery::Term(field) => json!({"terms": {field: base_ids}}),
            BaseIdQuery::Phrase => json!({"bool": {
                "should": base_ids.iter().map(|id| self.query(id)).collect::<Vec<_>>(),
                "minimum_should_match": 1,
            }}),
        }
    }
}

/// The field that compares `timestamp` as time, from the answer of
/// `GET /<index>/_mapping/field/timestamp`: `timestamp` itself when it is a `date` (the
/// template's, and what dynamic mapping makes of OSProfiler's text) or a `keyword` (the text
/// sorts as time), else a keyword sub-field. `None`: not mapped yet; `Some(Err)`: the type it
/// has.
fn timestamp_field(mapping: &Value) -> Option<Result<String, String>> {
    let field = mapping
        .as_object()?
        .values()
        .find_map(|index| index["mappings"]["timestamp"]["mapping"]["timestamp"].as_object())?;
    let kind = field.get("type").and_then(Value::as_str).unwrap_or("?");
    if kind == "date" || kind == "date_nanos" || kind == "keyword" {
        return Some(Ok("timestamp".into()));
    }
    let sub = field
        .get("fields")
        .and_then(Value::as_object)
        .and_then(|f| {
            f.iter()
                .find(|(_, sub)| sub["type"] == "keyword")
                .map(|(name, _)| format!("timestamp.{name}"))
        });
    Some(sub.ok_or_else(|| kind.to_owned()))
}

/// The index template: exact ids, a date for sorting, `info` kept but not mapped field by field.
fn template(index: &str, error_index: &str) -> Value {
    let keyword = json!({"type": "keyword", "ignore_above": 1024});
    json!({
        "index_patterns": [index, error_index],
        "priority": 200,
        "_meta": {"description": "osprofiler-rs: trace points, as Python OSProfiler's driver stores them"},
        "template": {"mappings": {"properties": {
            "base_id": keyword, "trace_id": keyword, "parent_id": keyword,
            "name": keyword, "project": keyword, "service": keyword,
            "timestamp": {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
            "info": {"type": "object", "dynamic": false, "properties": {
                "host": keyword, "etype": keyword,
            }},
        }}},
    })
}

/// What a `_bulk` item stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Item {
    Message,
    ErrorMarker,
}

/// One `_bulk` request: its body, its items in order, and the messages it carries.
struct Chunk {
    body: Vec<u8>,
    items: Vec<Item>,
    messages: std::ops::Range<usize>,
}

/// The batch as `_bulk` bodies of at most [`MAX_BULK_BYTES`] (a larger document goes alone).
fn bulk_chunks(
    batch: &[Message],
    index: &str,
    error_index: &str,
    index_errors: bool,
) -> Vec<Chunk> {
    let new = |at: usize| Chunk {
        body: Vec::new(),
        items: Vec::new(),
        messages: at..at,
    };
    let mut chunks = Vec::new();
    let mut cur = new(0);
    for (i, m) in batch.iter().enumerate() {
        let mut entry = Vec::new();
        let id = format!("{}-{}", m.trace_id().to_text(), m.phase().as_str());
        line(&mut entry, &json!({"index": {"_index": index, "_id": id}}));
        line(&mut entry, m);
        let mut items = vec![Item::Message];
        if index_errors && m.error_type().is_some() {
            let base_id = m.base_id().to_text();
            line(
                &mut entry,
                &json!({"create": {"_index": error_index, "_id": base_id}}),
            );
            line(
                &mut entry,
                &json!({"base_id": base_id, "timestamp": m.timestamp()}),
            );
            items.push(Item::ErrorMarker);
        }
        if !cur.items.is_empty() && cur.body.len() + entry.len() > MAX_BULK_BYTES {
            chunks.push(std::mem::replace(&mut cur, new(i)));
        }
        cur.body.extend_from_slice(&entry);
        cur.items.extend(items);
        cur.messages.end = i + 1;
    }
    if !cur.items.is_empty() {
        chunks.push(cur);
    }
    chunks
}

/// `v` as one line of JSON.
fn line<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(&mut *out, v).expect("JSON to memory");
    out.push(b'\n');
}

/// What became of a `_bulk` request the server answered.
enum Sent {
    /// Stored, but for this many messages refused for good.
    Stored(usize),
    /// The body is over the server's `http.max_content_length` (413).
    TooLarge,
}

/// A short text of an Elasticsearch error object (`type: reason`).
fn reason(error: &Value) -> String {
    match (error["type"].as_str(), error["reason"].as_str()) {
        (Some(t), Some(r)) => format!("{t}: {r}"),
        (Some(t), None) => t.to_owned(),
        _ => osprofiler_core::pyjson::to_string(error),
    }
}

/// The error object of an error answer's body, as text.
fn body_reason(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("error").is_some() => reason(&v["error"]),
        _ => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    }
}

/// What a bulk answer says: messages refused for good, items to send again, the first reason.
fn bulk_outcome(resp: &Value, items: &[Item]) -> Result<(usize, usize, Option<String>), String> {
    let answered = resp["items"]
        .as_array()
        .ok_or("a _bulk answer without items")?;
    if answered.len() != items.len() {
        return Err(format!(
            "a _bulk answer with {} items for {} sent",
            answered.len(),
            items.len()
        ));
    }
    let (mut refused, mut again, mut first) = (0, 0, None);
    for (item, kind) in answered.iter().zip(items) {
        let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
            return Err("a _bulk answer item that is not an object".into());
        };
        let status = result["status"].as_u64().unwrap_or(0);
        if (200..300).contains(&status) || (*kind == Item::ErrorMarker && status == 409) {
            continue; // stored (an error trace already marked: the first error's time stays)
        }
        if status == 429 || status >= 500 {
            again += 1;
        } else if *kind == Item::Message {
            refused += 1;
        }
        first.get_or_insert_with(|| format!("{status} {}", reason(&result["error"])));
    }
    Ok((refused, again, first))
}

impl ElasticsearchDriver {
    /// A driver for an `elasticsearch://` URL (see [`ElasticsearchDriver`]) with Python's
    /// defaults for the other options; error traces are indexed while the process-wide
    /// `filter_error_trace` switch is on. Only the URL is checked here; nothing is connected.
    pub fn open(connection_string: &str) -> Result<Self, DriverError> {
        Self::from_conf(connection_string, &ProfilerConfig::default())
    }

    /// A driver taking `es_scroll_size` and `es_scroll_time` from `conf` (what
    /// `init_from_conf` uses). A bad value is an error naming the option.
    pub fn from_conf(connection_string: &str, conf: &ProfilerConfig) -> Result<Self, DriverError> {
        let s = Settings::of(connection_string)?;
        check_scroll_time(&conf.es_scroll_time)?;
        if conf.es_scroll_size == 0 {
            return Err(DriverError::new(
                "bad es_scroll_size 0: hits per page must be at least 1",
            ));
        }
        let auth = match &s.credentials {
            Some((user, pass)) => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                let mut v = http::HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| DriverError::new("elasticsearch:// credentials"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let rt = Rt::new()?;
        let client = {
            let _enter = rt.handle().enter();
            client(s.certificate.as_deref())?
        };
        Ok(ElasticsearchDriver {
            error_index: format!("{}-error", s.index),
            index: s.index,
            url: s.url,
            auth,
            user: s.credentials.map(|(u, _)| u),
            refresh: s.refresh,
            scroll_time: conf.es_scroll_time.clone(),
            scroll_size: conf.es_scroll_size,
            filter_error_trace: None,
            rt,
            client,
            templated: AtomicBool::new(false),
            base_id_query: Mutex::new(None),
            last_refusal: Mutex::new(None),
        })
    }

    /// Indexes error traces when `on`, whatever the process-wide switch says.
    pub fn filter_error_trace(mut self, on: bool) -> Self {
        self.filter_error_trace = Some(on);
        self
    }

    /// The server's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The index messages go to (error traces: this name and `-error`).
    pub fn index(&self) -> &str {
        &self.index
    }

    fn indexes_errors(&self) -> bool {
        self.filter_error_trace
            .unwrap_or_else(osprofiler_core::filter_error_trace)
    }

    /// One request; `Err` only when the server could not be reached or did not answer.
    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<(http::StatusCode, bytes::Bytes), DriverError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(auth) = &self.auth {
            req = req.header(http::header::AUTHORIZATION, auth.clone());
        }
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(http::header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Vec::new(),
        };
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| DriverError::with_source("cannot build an Elasticsearch request", e))?;
        send(&self.client, req, timeout, &self.url).await
    }

    /// A JSON request whose answer must be a success; `what` says what failed.
    async fn call_json(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Option<Value>, DriverError> {
        let body = body.map(|b| ("application/json", serde_json::to_vec(b).expect("JSON")));
        let (status, bytes) = self.call(method, path, body, READ_TIMEOUT).await?;
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(DriverError::new(format!(
                "{what}: Elasticsearch at {} answered {status}: {}",
                self.url,
                body_reason(&bytes)
            )));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DriverError::with_source(format!("{what}: an answer that is not JSON"), e))
    }

    /// Puts the index template, once per driver, before the first write. A server that
    /// refuses it (no privilege to manage templates, an older version) is not an error: the
    /// index is then mapped dynamically, and reads still match `base_id` exactly.
    async fn ensure_template(&self) -> Result<(), DriverError> {
        if self.templated.load(Ordering::Acquire) {
            return Ok(());
        }
        let body = serde_json::to_vec(&template(&self.index, &self.error_index)).expect("JSON");
        let (status, _) = self
            .call(
                http::Method::PUT,
                &format!("/_index_template/{}", self.index),
                Some(("application/json", body)),
                WRITE_TIMEOUT,
            )
            .await?;
        if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            return Err(DriverError::new(format!(
                "Elasticsearch at {} answered {status} to the index template",
                self.url
            )));
        }
        self.templated.store(true, Ordering::Release);
        Ok(())
    }

    /// Sends one `_bulk` body.
    async fn bulk(&self, body: Vec<u8>, items: &[Item]) -> Result<Sent, DriverError> {
        let path = match &self.refresh {
            Some(r) => format!("/_bulk?refresh={r}"),
            None => "/_bulk".to_owned(),
        };
        let (status, bytes) = self
            .call(
                http::Method::POST,
                &path,
                Some(("application/x-ndjson", body)),
                WRITE_TIMEOUT,
            )
            .await?;
        if status == http::StatusCode::PAYLOAD_TOO_LARGE {
            return Ok(Sent::TooLarge);
        }
        if !status.is_success() {
            let e = DriverError::new(format!(
                "Elasticsearch at {} answered {status} to _bulk: {}",
                self.url,
                body_reason(&bytes)
            ));
            // A bad request as a whole (a closed index, …) is the batch's fault; throttling,
            // timeouts, server errors and credentials are retried until they pass.
            let retry = status.is_server_error()
                || status == http::StatusCode::TOO_MANY_REQUESTS
                || status == http::StatusCode::REQUEST_TIMEOUT
                || status == http::StatusCode::UNAUTHORIZED
                || status == http::StatusCode::FORBIDDEN;
            return Err(if retry { e } else { e.rejected() });
        }
        // An answer that is not Elasticsearch's (a proxy's page at a wrong path prefix): the
        // batch is refused (a few tries, then dropped), not retried for ever.
        let resp: Value = serde_json::from_slice(&bytes).map_err(|e| {
            DriverError::with_source(format!("{}: a _bulk answer that is not JSON", self.url), e)
                .rejected()
        })?;
        if resp["errors"] == false {
            return Ok(Sent::Stored(0));
        }
        let (refused, again, first) =
            bulk_outcome(&resp, items).map_err(|e| DriverError::new(e).rejected())?;
        if again > 0 {
            // Sent again whole: documents have fixed ids, so nothing is stored twice.
            return Err(DriverError::new(format!(
                "Elasticsearch at {} could not take {again} documents now ({})",
                self.url,
                first.unwrap_or_default()
            )));
        }
        if let Some(first) = first.filter(|_| refused > 0) {
            *self.last_refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(first);
        }
        Ok(Sent::Stored(refused))
    }

    /// Stores `batch`; returns how many of its messages the server refused for good. A body
    /// the server finds too large is sent again in halves, down to one message, which is then
    /// refused alone.
    async fn store(&self, batch: &[Message]) -> Result<usize, DriverError> {
        let mut refused = 0;
        for chunk in bulk_chunks(batch, &self.index, &self.error_index, self.indexes_errors()) {
            let part = &batch[chunk.messages.clone()];
            match self.bulk(chunk.body, &chunk.items).await? {
                Sent::Stored(r) => refused += r,
                Sent::TooLarge if part.len() == 1 => {
                    *self.last_refusal.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some("413: a document over the server's http.max_content_length".into());
                    refused += 1;
                }
                Sent::TooLarge => {
                    let (a, b) = part.split_at(part.len() / 2);
                    refused += Box::pin(self.store(a)).await?;
                    refused += Box::pin(self.store(b)).await?;
                }
            }
        }
        Ok(refused)
    }

    /// Makes what was written visible to reads. An index that does not exist yet is fine; a
    /// role without the privilege to refresh reads what the server's own refresh (1 s by
    /// default) has made visible.
    async fn refresh(&self, index: &str) -> Result<(), DriverError> {
        self.call(
            http::Method::POST,
            &format!("/{index}/_refresh"),
            None,
            READ_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// How `base_id` is matched on the main index (asked once, then remembered).
    async fn base_id_query(&self) -> Result<BaseIdQuery, DriverError> {
        if let Some(q) = self
            .base_id_query
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(q);
        }
        let (q, known) = self.mapped_base_id(&self.index).await?;
        if known {
            *self.base_id_query.lock().unwrap_or_else(|e| e.into_inner()) = Some(q.clone());
        }
        Ok(q)
    }

    /// How `base_id` is matched on `index`.
    async fn base_id_query_of(&self, index: &str) -> Result<BaseIdQuery, DriverError> {
        if index == self.index {
            return self.base_id_query().await;
        }
        Ok(self.mapped_base_id(index).await?.0)
    }

    /// The query for `base_id` on `index` as mapped, and whether the mapping said so (no index
    /// or no `base_id` yet: whatever is written next follows the template).
    async fn mapped_base_id(&self, index: &str) -> Result<(BaseIdQuery, bool), DriverError> {
        let mapping = self
            .call_json(
                http::Method::GET,
                &format!("/{index}/_mapping/field/base_id"),
                None,
                "cannot read the index mapping",
            )
            .await?;
        Ok(match mapping.as_ref().and_then(BaseIdQuery::of_mapping) {
            Some(q) => (q, true),
            None => (BaseIdQuery::Term("base_id".into()), false),
        })
    }

    /// The `_source` of every hit of `query` on `index`, page by page.
    async fn scroll(&self, index: &str, mut body: Value) -> Result<Vec<Value>, DriverError> {
        body["size"] = json!(self.scroll_size);
        body["sort"] = json!(["_doc"]);
        body["track_total_hits"] = json!(true);
        let Some(page) = self
            .call_json(
                http::Method::POST,
                &format!("/{index}/_search?scroll={}", self.scroll_time),
                Some(&body),
                "cannot search (es_scroll_size, es_scroll_time)",
            )
            .await?
        else {
            return Ok(Vec::new()); // no such index: nothing stored yet
        };
        let total = page["hits"]["total"]["value"]
            .as_u64()
            .or_else(|| page["hits"]["total"].as_u64());
        // The scroll is released whatever happens next (Python leaves its scrolls open).
        let mut scroll_id = page["_scroll_id"].as_str().map(str::to_owned);
        let read = self.pages(page, total, &mut scroll_id).await;
        if let Some(id) = scroll_id {
            let _ = self
                .call(
                    http::Method::DELETE,
                    "/_search/scroll",
                    Some((
                        "application/json",
                        serde_json::to_vec(&json!({"scroll_id": [id]})).expect("JSON"),
                    )),
                    READ_TIMEOUT,
                )
                .await;
        }
        read
    }

    /// The hits of a scroll from its first page on; `scroll_id` follows the scroll.
    async fn pages(
        &self,
        mut page: Value,
        total: Option<u64>,
        scroll_id: &mut Option<String>,
    ) -> Result<Vec<Value>, DriverError> {
        // A bound on the pages, so that a server that never ends a scroll cannot hang a read.
        let max_pages = total.map_or(u64::MAX, |t| t / self.scroll_size + 2);
        let mut out = Vec::new();
        for _ in 0..max_pages {
            let hits = page["hits"]["hits"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            if hits.is_empty() || total.is_some_and(|t| out.len() as u64 >= t) {
                break;
            }
            out.extend(
                hits.iter()
                    .map(|h| h["_source"].clone())
                    .filter(Value::is_object),
            );
            if total.is_some_and(|t| out.len() as u64 >= t) {
                break;
            }
            let Some(id) = page["_scroll_id"].as_str().map(str::to_owned) else {
                break;
            };
            *scroll_id = Some(id.clone());
            let next = self
                .call_json(
                    http::Method::POST,
                    "/_search/scroll",
                    Some(&json!({"scroll": self.scroll_time, "scroll_id": id})),
                    "cannot read the next page",
                )
                .await?;
            match next {
                Some(p) => {
                    if let Some(id) = p["_scroll_id"].as_str() {
                        *scroll_id = Some(id.to_owned());
                    }
                    page = p;
                }
                // The scroll expired between two pages (es_scroll_time) or its node went: an
                // error, not a trace cut short.
                None => {
                    return Err(DriverError::new(format!(
                        "the search expired after {} of {} hits (raise es_scroll_time, now {})",
                        out.len(),
                        total.map_or_else(|| "?".to_owned(), |t| t.to_string()),
                        self.scroll_time
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Deletes one trace's documents and its error marker; returns how many messages went.
    /// Uses `_delete_by_query` (the reindex module, in every Elasticsearch and OpenSearch
    /// distribution).
    async fn delete_one(&self, base_id: &str) -> Result<u64, DriverError> {
        let mut deleted = 0;
        for index in [&self.index, &self.error_index] {
            // Each index as it is mapped (one may be Python's, the other ours).
            let query = self.base_id_query_of(index).await?.query(base_id);
            let n = self.delete_by_query(index, query).await?;
            if *index == self.index {
                deleted = n;
            }
        }
        Ok(deleted)
    }

    /// Deletes the documents of `index` that `query` selects, visibly to the next read;
    /// returns how many.
    async fn delete_by_query(&self, index: &str, query: Value) -> Result<u64, DriverError> {
        let path = format!("/{index}/_delete_by_query?refresh=true&conflicts=proceed");
        let answer = self
            .call_json(
                http::Method::POST,
                &path,
                Some(&json!({"query": query})),
                "cannot delete traces",
            )
            .await?;
        Ok(answer.map_or(0, |r| r["deleted"].as_u64().unwrap_or(0)))
    }

    /// Deletes the traces whose newest message is older than `cutoff` (OSProfiler's text
    /// timestamp); returns how many.
    async fn prune_before(&self, cutoff: &str) -> Result<u64, DriverError> {
        self.refresh(&self.index).await?;
        let mapping = self
            .call_json(
                http::Method::GET,
                &format!("/{}/_mapping/field/timestamp", self.index),
                None,
                "cannot read the index mapping",
            )
            .await?;
        let ts = match mapping.as_ref().and_then(timestamp_field) {
            None => return Ok(0), // no index, or no message yet
            Some(Ok(field)) => field,
            Some(Err(kind)) => {
                return Err(DriverError::new(format!(
                    "cannot delete old traces: timestamp is mapped as {kind} in {}, without \
                     a date or keyword field to compare",
                    self.index
                )));
            }
        };
        let ids = match self.base_id_query().await? {
            BaseIdQuery::Term(field) => field,
            BaseIdQuery::Phrase => {
                return Err(DriverError::new(format!(
                    "cannot delete old traces: base_id is mapped as text without a keyword \
                     field in {} (an index Python created without dynamic keywords)",
                    self.index
                )));
            }
        };
        let markers = self.base_id_query_of(&self.error_index).await?;
        let mut pruned = 0;
        let mut after: Option<Value> = None;
        loop {
            // The next page of traces with an old message, in base_id order: deleting a
            // page's traces does not move the next pages.
            let mut composite = json!({
                "size": PRUNE_PAGE,
                "sources": [{"id": {"terms": {"field": ids}}}],
            });
            if let Some(a) = after.take() {
                composite["after"] = a;
            }
            let body = json!({
                "size": 0,
                "query": {"range": {&ts: {"lt": cutoff}}},
                "aggs": {"ids": {"composite": composite}},
            });
            let Some(page) = self.search(&body).await? else {
                break;
            };
            let agg = &page["aggregations"]["ids"];
            let candidates: Vec<String> = agg["buckets"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(|b| b["key"]["id"].as_str().map(str::to_owned))
                .collect();
            if candidates.is_empty() {
                break;
            }
            // Those with a message as new as the cutoff or newer stay.
            let body = json!({
                "size": 0,
                "query": {"bool": {"filter": [
                    {"terms": {&ids: &candidates}},
                    {"range": {&ts: {"gte": cutoff}}},
                ]}},
                "aggs": {"ids": {"terms": {"field": ids, "size": candidates.len()}}},
            });
            let newer = self.search(&body).await?.unwrap_or_default();
            let newer: std::collections::HashSet<&str> = newer["aggregations"]["ids"]["buckets"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(|b| b["key"].as_str())
                .collect();
            let old: Vec<String> = candidates
                .iter()
                .filter(|id| !newer.contains(id.as_str()))
                .cloned()
                .collect();
            if !old.is_empty() {
                self.delete_by_query(&self.index, json!({"terms": {&ids: &old}}))
                    .await?;
                self.delete_by_query(&self.error_index, markers.any_of(&old))
                    .await?;
                pruned += old.len() as u64;
            }
            match &agg["after_key"] {
                Value::Null => break,
                a => after = Some(a.clone()),
            }
        }
        Ok(pruned)
    }

    /// One search on the main index without hits (aggregations); `None`: no index.
    async fn search(&self, body: &Value) -> Result<Option<Value>, DriverError> {
        self.call_json(
            http::Method::POST,
            &format!("/{}/_search", self.index),
            Some(body),
            "cannot search for old traces",
        )
        .await
    }

    async fn messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        self.refresh(&self.index).await?;
        let query = self.base_id_query().await?.query(base_id);
        let mut docs = self.scroll(&self.index, json!({"query": query})).await?;
        // Exactly this trace, whatever the mapping made of the query.
        docs.retain(|d| d["base_id"] == base_id);
        // A search has no order: time, then point and phase, as they were sent.
        docs.sort_by(|a, b| {
            let key = |m: &Value| {
                (
                    m["timestamp"].as_str().unwrap_or_default().to_owned(),
                    m["trace_id"].as_str().unwrap_or_default().to_owned(),
                    m["name"].as_str().unwrap_or_default().to_owned(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(docs)
    }

    async fn summaries(&self, errors: bool) -> Result<Vec<TraceSummary>, DriverError> {
        let index = if errors {
            &self.error_index
        } else {
            &self.index
        };
        self.refresh(index).await?;
        let docs = self
            .scroll(
                index,
                json!({"query": {"match_all": {}}, "_source": ["base_id", "timestamp"]}),
            )
            .await?;
        Ok(summarize(&docs, false))
    }
}

impl Writer for ElasticsearchDriver {
    fn name(&self) -> &str {
        "elasticsearch"
    }

    fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.rt.run(async {
            self.ensure_template().await?;
            match self.store(batch).await? {
                0 => Ok(()),
                refused => {
                    let why = self
                        .last_refusal
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    Err(DriverError::new(format!(
                        "Elasticsearch refused {refused} of {} documents ({})",
                        batch.len(),
                        why.unwrap_or_default()
                    ))
                    .partly_stored(refused))
                }
            }
        })
    }

    /// Nothing to prepare: [`Writer::prune`] does the work.
    fn retain(&self, _age: Duration) -> Result<(), DriverError> {
        Ok(())
    }

    fn prune(&self, cutoff: std::time::SystemTime) -> Result<u64, DriverError> {
        use osprofiler_core::clock::{format_timestamp, system_micros};
        let cutoff = format_timestamp(system_micros(cutoff));
        self.rt.run(self.prune_before(&cutoff))
    }

    fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        self.rt.run(self.delete_one(base_id))
    }
}

impl Reader for ElasticsearchDriver {
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError> {
        self.rt.run(self.messages(base_id))
    }

    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        self.rt.run(self.summaries(false))
    }

    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError> {
        self.rt.run(self.summaries(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let s = Settings::of("elasticsearch://").unwrap();
        assert_eq!(
            (s.url.as_str(), s.index.as_str()),
            ("http://localhost:9200", INDEX)
        );
        let s = Settings::of("elasticsearch://es.example:9201/prefix/").unwrap();
        assert_eq!(s.url, "http://es.example:9201/prefix");
        // An `@` in the path is the path's.
        let s = Settings::of("elasticsearch://h/prefix@x").unwrap();
        assert_eq!(
            (s.url.as_str(), s.credentials),
            ("http://h:9200/prefix@x", None)
        );
        let s = Settings::of("elasticsearch+https://u%40x:p%3Aw@[::1]?index=a.b&refresh=wait_for")
            .unwrap();
        assert_eq!(s.url, "https://[::1]:9200");
        assert_eq!(s.credentials, Some(("u@x".into(), "p:w".into())));
        assert_eq!(
            (s.index.as_str(), s.refresh.as_deref()),
            ("a.b", Some("wait_for"))
        );
        for (bad, says) in [
            ("es://x", "unknown Elasticsearch scheme"),
            ("elasticsearch://x?index=Upper", "index=\"Upper\""),
            ("elasticsearch://x?refresh=soon", "refresh=\"soon\""),
            (
                "elasticsearch://x?size=3",
                "unknown elasticsearch:// option \"size\"",
            ),
            ("elasticsearch://u:%zz@x", "password"),
            ("elasticsearch://es:92O0", "bad port \"92O0\""),
            ("elasticsearch://es:", "bad port \"\""),
            ("elasticsearch://es/a b", "bad host or path"),
        ] {
            let e = Settings::of(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_options_name_themselves() {
        let mut conf = ProfilerConfig::default();
        conf.es_scroll_time = "2 minutes".into();
        let e = ElasticsearchDriver::from_conf("elasticsearch://", &conf).unwrap_err();
        assert!(e.to_string().contains("es_scroll_time"), "{e}");
        conf.es_scroll_time = "90s".into();
        conf.es_scroll_size = 0;
        let e = ElasticsearchDriver::from_conf("elasticsearch://", &conf).unwrap_err();
        assert!(e.to_string().contains("es_scroll_size"), "{e}");
    }

    #[test]
    fn base_id_queries_follow_the_mapping() {
        let keyword = json!({"osprofiler-notifications": {"mappings": {"base_id": {
            "full_name": "base_id", "mapping": {"base_id": {"type": "keyword"}}}}}});
        let dynamic = json!({"osprofiler-notifications": {"mappings": {"base_id": {
            "full_name": "base_id", "mapping": {"base_id": {"type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}}}}}});
        let text =
            json!({"i": {"mappings": {"base_id": {"mapping": {"base_id": {"type": "text"}}}}}});
        assert_eq!(
            BaseIdQuery::of_mapping(&keyword),
            Some(BaseIdQuery::Term("base_id".into()))
        );
        assert_eq!(
            BaseIdQuery::of_mapping(&dynamic),
            Some(BaseIdQuery::Term("base_id.keyword".into()))
        );
        assert_eq!(BaseIdQuery::of_mapping(&text), Some(BaseIdQuery::Phrase));
        assert_eq!(
            BaseIdQuery::of_mapping(&json!({"i": {"mappings": {}}})),
            None
        );
    }

    #[test]
    fn timestamps_compare_on_a_date_or_a_keyword() {
        let of = |m: Value| {
            timestamp_field(
                &json!({"i": {"mappings": {"timestamp": {"mapping": {"timestamp": m}}}}}),
            )
        };
        assert_eq!(of(json!({"type": "date"})), Some(Ok("timestamp".into())));
        assert_eq!(of(json!({"type": "keyword"})), Some(Ok("timestamp".into())));
        assert_eq!(
            of(json!({"type": "text", "fields": {"kw": {"type": "keyword"}}})),
            Some(Ok("timestamp.kw".into()))
        );
        assert_eq!(of(json!({"type": "text"})), Some(Err("text".into())));
        assert_eq!(timestamp_field(&json!({"i": {"mappings": {}}})), None);
        assert_eq!(timestamp_field(&json!({})), None);
        let ids = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            BaseIdQuery::Term("base_id".into()).any_of(&ids),
            json!({"terms": {"base_id": ["a", "b"]}})
        );
        assert_eq!(
            BaseIdQuery::Phrase.any_of(&ids)["bool"]["should"][1],
            json!({"match_phrase": {"base_id": "b"}})
        );
    }

    #[test]
    fn bulk_answers() {
        let items = [
            Item::Message,
            Item::ErrorMarker,
            Item::Message,
            Item::Message,
        ];
        let resp = json!({"errors": true, "items": [
            {"index": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
            {"index": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad"}}},
            {"index": {"status": 200}},
        ]});
        assert_eq!(
            bulk_outcome(&resp, &items).unwrap(),
            (1, 0, Some("400 mapper_parsing_exception: bad".into()))
        );
        let resp = json!({"errors": true, "items": [
            {"index": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
        ]});
        assert_eq!(bulk_outcome(&resp, &items[..1]).unwrap().1, 1);
        assert!(bulk_outcome(&json!({"items": []}), &items[..1]).is_err());
        assert!(bulk_outcome(&json!({"items": [7]}), &items[..1]).is_err());
    }
}
