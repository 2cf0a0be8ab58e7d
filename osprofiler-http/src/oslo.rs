//! oslo.messaging RPC over RabbitMQ (feature `oslo`): a Rust service in the same RPC trace as
//! Python OpenStack services, called by them and calling them.
//!
//! oslo.messaging 18 sends an RPC request to the control exchange (`openstack`, a topic
//! exchange) with the routing key `<topic>` or `<topic>.<server>`, as an envelope
//! `{"oslo.version": "2.0", "oslo.message": "<JSON text>"}`. The inner message carries
//! `method`, `args`, `namespace`, `version`, `_unique_id`, for a call `_msg_id` and `_reply_q`,
//! and the request context flattened as `_context_<key>` entries — the trace among them, as
//! `_context_trace_info` (`{"hmac_key", "base_id", "parent_id"}`, what Nova's
//! `ProfilerRequestContextSerializer` puts there). The reply goes through the default exchange
//! to the caller's reply queue: `{"result", "failure", "ending": true, "_msg_id"}`, in the
//! same envelope.
//!
//! - [`Request`], [`Reply`], [`RemoteError`]: the envelope, parsed and built.
//! - [`RpcServer`]: answers `call` and `cast` on `<exchange>`/`<topic>` and
//!   `<topic>.<server>`, declared as oslo.messaging declares them; each request is an `rpc`
//!   point, child of the caller's point, recorded as Python's `trace_cls` records an RPC
//!   method (`function.name`, and `args`/`kwargs` unless hidden); a handler's error or panic is
//!   a failure reply and a failed point. Malformed, oversized or unknown-version messages are
//!   rejected (dead-lettered where the queue has a dead-letter exchange, never redelivered);
//!   one with a reply queue gets a failure reply. The consumer never stops on bad input.
//! - [`RpcClient`]: `call` (waits for the reply; a timeout is [`RpcError::Timeout`], a
//!   `failure` reply [`RpcError::Remote`] with the remote exception's type and message) and
//!   `cast`, each an `rpc` point whose id is the callee's parent.
//!
//! The trace is accepted only with one of the verifying keys ([`osprofiler_core::identity::hmac_keys`]
//! by default, as the HTTP server layer does): oslo's `trace_info` carries its key in clear,
//! so a request with another key runs untraced.

use crate::rpc::TraceContext;
use futures_util::{FutureExt as _, StreamExt as _};
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use osprofiler_core::{Info, Profiler, Trace, TraceFutureExt as _};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The envelope version oslo.messaging writes and reads.
pub const ENVELOPE_VERSION: &str = "2.0";
/// oslo.messaging's default control exchange.
pub const CONTROL_EXCHANGE: &str = "openstack";
/// The largest message accepted by default (1 MiB); larger ones are rejected unread.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

/// Why a message is not an oslo.messaging RPC message this side can use.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Over the size limit.
    TooLarge {
        /// The message's size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a JSON object (or the inner message is not one).
    NotJson(String),
    /// A JSON object without `oslo.version` and `oslo.message`.
    NotAnEnvelope,
    /// An envelope version this side does not read.
    UnsupportedVersion(String),
    /// A field is missing or of the wrong type.
    BadField(&'static str),
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::TooLarge { size, limit } => {
                write!(f, "message of {size} bytes is over the limit of {limit}")
            }
            EnvelopeError::NotJson(e) => write!(f, "not a JSON object: {e}"),
            EnvelopeError::NotAnEnvelope => {
                f.write_str("not an oslo.messaging envelope (no oslo.version and oslo.message)")
            }
            EnvelopeError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "unsupported envelope version {v:?} (this side reads {ENVELOPE_VERSION})"
                )
            }
            EnvelopeError::BadField(k) => write!(f, "missing or malformed field {k:?}"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// The envelope's outer object (other fields are ignored, as oslo.messaging does).
#[derive(Deserialize)]
struct Outer {
    #[serde(rename = "oslo.version")]
    version: Option<Value>,
    #[serde(rename = "oslo.message")]
    message: Option<Value>,
}

/// The inner message's text of an envelope, size and version checked.
fn open_envelope(body: &[u8], limit: usize) -> Result<String, EnvelopeError> {
    if body.len() > limit {
        return Err(EnvelopeError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let outer: Outer =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    let (Some(version), Some(inner)) = (outer.version, outer.message) else {
        return Err(EnvelopeError::NotAnEnvelope);
    };
    let version = version
        .as_str()
        .ok_or(EnvelopeError::BadField("oslo.version"))?;
    // oslo's version_is_compatible: the same major version, no newer minor.
    let mut parts = version.split('.');
    let compatible = parts.next() == Some("2")
        && parts.next().is_none_or(|m| m == "0")
        && parts
            .next()
            .is_none_or(|p| p.chars().all(|c| c.is_ascii_digit()));
    if !compatible {
        return Err(EnvelopeError::UnsupportedVersion(version.to_owned()));
    }
    match inner {
        Value::String(text) => Ok(text),
        _ => Err(EnvelopeError::BadField("oslo.message")),
    }
}

/// Wraps the inner message `inner` (serialized straight from the caller's data, no
/// intermediate `Value`) in the envelope.
fn envelope(inner: &impl Serialize) -> Vec<u8> {
    let text = serde_json::to_string(inner).unwrap_or_default();
    let mut out = Vec::with_capacity(text.len() + text.len() / 4 + 48);
    out.extend_from_slice(br#"{"oslo.version":"2.0","oslo.message":"#);
    // A string always serializes.
    let _ = serde_json::to_writer(&mut out, &text);
    out.push(b'}');
    out
}

fn opt_string(v: Option<Value>, key: &'static str) -> Result<Option<String>, EnvelopeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EnvelopeError::BadField(key)),
    }
}

fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An RPC request: a `call` when it has a `msg_id` and `reply_q`, else a `cast`.
///
/// ```
/// use osprofiler_http::oslo::Request;
/// let mut args = serde_json::Map::new();
/// args.insert("a".into(), 1.into());
/// let req = Request::new("add", args);
/// let back = Request::parse(&req.to_body(), 1 << 20).unwrap();
/// assert_eq!((back.method.as_str(), &back.args["a"]), ("add", &1.into()));
/// ```
/// `Debug` shows the context's keys, not its values (an oslo context carries the caller's
/// `auth_token`), and the trace without its key.
#[derive(Clone, PartialEq)]
pub struct Request {
    /// The endpoint method.
    pub method: String,
    /// Its keyword arguments.
    pub args: Map<String, Value>,
    /// The target's namespace.
    pub namespace: Option<String>,
    /// The API version asked for.
    pub version: Option<String>,
    /// The request context, without the `_context_` prefix and without `trace_info`.
    pub context: Map<String, Value>,
    /// The caller's trace (`_context_trace_info`), when it is well formed.
    pub trace: Option<TraceContext>,
    /// A call's id (`_msg_id`).
    pub msg_id: Option<String>,
    /// A call's reply queue (`_reply_q`).
    pub reply_q: Option<String>,
    /// `_unique_id`.
    pub unique_id: String,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("args", &self.args)
            .field("namespace", &self.namespace)
            .field("version", &self.version)
            .field("context_keys", &self.context.keys().collect::<Vec<_>>())
            .field("trace", &self.trace)
            .field("msg_id", &self.msg_id)
            .field("reply_q", &self.reply_q)
            .field("unique_id", &self.unique_id)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// A cast of `method` with `args`, version `1.0`, no context.
    pub fn new(method: impl Into<String>, args: Map<String, Value>) -> Self {
        Request {
            method: method.into(),
            args,
            namespace: None,
            version: Some("1.0".into()),
            context: Map::new(),
            trace: None,
            msg_id: None,
            reply_q: None,
            unique_id: unique_id(),
        }
    }

    /// Reads a received message (the body of an AMQP delivery).
    pub fn parse(body: &[u8], limit: usize) -> Result<Request, EnvelopeError> {
        let text = open_envelope(body, limit)?;
        let raw: RawRequest =
            serde_json::from_str(&text).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        let method = match raw.method {
            Some(Value::String(s)) if !s.is_empty() => s,
            _ => return Err(EnvelopeError::BadField("method")),
        };
        let args = match raw.args {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(a)) => a,
            Some(_) => return Err(EnvelopeError::BadField("args")),
        };
        Ok(Request {
            method,
            args,
            namespace: opt_string(raw.namespace, "namespace")?,
            version: opt_string(raw.version, "version")?,
            context: raw.context,
            // Garbage trace_info: the request stands, untraced.
            trace: raw.trace.and_then(|v| TraceContext::deserialize(&v).ok()),
            msg_id: opt_string(raw.msg_id, "_msg_id")?,
            reply_q: opt_string(raw.reply_q, "_reply_q")?,
            unique_id: opt_string(raw.unique_id, "_unique_id")?.unwrap_or_default(),
        })
    }

    /// The message as oslo.messaging sends it (the envelope, as bytes).
    pub fn to_body(&self) -> Vec<u8> {
        envelope(self)
    }
}

/// The inner message as oslo.messaging writes it: the fields, then the context flattened as
/// `_context_<key>` entries (`trace` as `_context_trace_info`, over a context entry of that
/// name).
impl Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("method", &self.method)?;
        m.serialize_entry("args", &self.args)?;
        if let Some(ns) = &self.namespace {
            m.serialize_entry("namespace", ns)?;
        }
        if let Some(v) = &self.version {
            m.serialize_entry("version", v)?;
        }
        if let (Some(id), Some(q)) = (&self.msg_id, &self.reply_q) {
            m.serialize_entry("_msg_id", id)?;
            m.serialize_entry("_reply_q", q)?;
            m.serialize_entry("_timeout", &())?;
        }
        m.serialize_entry("_unique_id", &self.unique_id)?;
        for (k, v) in &self.context {
            if self.trace.is_some() && k == crate::rpc::CONTEXT_KEY {
                continue;
            }
            m.serialize_entry(&ContextKey(k), v)?;
        }
        if let Some(t) = &self.trace {
            m.serialize_entry(&ContextKey(crate::rpc::CONTEXT_KEY), t)?;
        }
        m.end()
    }
}

/// `_context_<key>`, written without building the string.
struct ContextKey<'a>(&'a str);

impl Serialize for ContextKey<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("_context_{}", self.0))
    }
}

/// A request's inner message, read in one pass: the known fields, the `_context_` entries
/// (prefix removed) and the trace taken out; anything else skipped unread.
#[derive(Default)]
struct RawRequest {
    method: Option<Value>,
    args: Option<Value>,
    namespace: Option<Value>,
    version: Option<Value>,
    msg_id: Option<Value>,
    reply_q: Option<Value>,
    unique_id: Option<Value>,
    context: Map<String, Value>,
    trace: Option<Value>,
}

impl<'de> Deserialize<'de> for RawRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawRequest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an oslo.messaging message object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawRequest, A::Error> {
                let mut r = RawRequest::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "method" => &mut r.method,
                        "args" => &mut r.args,
                        "namespace" => &mut r.namespace,
                        "version" => &mut r.version,
                        "_msg_id" => &mut r.msg_id,
                        "_reply_q" => &mut r.reply_q,
                        "_unique_id" => &mut r.unique_id,
                        "_context_trace_info" => &mut r.trace,
                        k => {
                            if let Some(name) = k.strip_prefix("_context_") {
                                r.context.insert(name.to_owned(), map.next_value()?);
                            } else {
                                map.next_value::<serde::de::IgnoredAny>()?;
                            }
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

/// An exception raised by the remote side of a call, as oslo.messaging serializes it.
///
/// What a Python caller (oslo.messaging's `RPCClient.call`) raises for it depends on
/// [`RemoteError::module`], as oslo.messaging decides: for `builtins` (made by
/// [`RemoteError::builtin`]) the builtin exception of that class, so
/// `except ValueError:` catches `RemoteError::builtin("ValueError", …)`; for any other module
/// (the default of [`RemoteError::new`] is `osprofiler_rs`, which no caller lists in
/// `allowed_remote_exmods`) `oslo_messaging.RemoteError`, whose `exc_type` is the class name
/// and `value` the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The exception's class name (`ValueError`).
    pub class: String,
    /// Its module (`builtins`).
    pub module: String,
    /// Its text.
    pub message: String,
    /// The remote traceback's lines, if sent.
    pub traceback: Vec<String>,
}

impl RemoteError {
    /// An error of `class` with `message`, from module `osprofiler_rs`.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteError {
            class: class.into(),
            module: "osprofiler_rs".into(),
            message: message.into(),
            traceback: Vec::new(),
        }
    }

    /// A builtin Python exception (`ValueError`, `KeyError`, `TimeoutError`, …): a Python
    /// caller raises that very type (a subclass of it whose text is `message`).
    ///
    /// ```
    /// let e = osprofiler_http::oslo::RemoteError::builtin("ValueError", "no such flavor");
    /// assert_eq!((e.module.as_str(), e.class.as_str()), ("builtins", "ValueError"));
    /// ```
    pub fn builtin(class: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteError {
            module: "builtins".into(),
            ..RemoteError::new(class, message)
        }
    }

    /// The `failure` field's text: `{"class", "module", "message", "tb", "args", "kwargs"}`.
    fn to_failure(&self) -> String {
        json!({
            "class": self.class,
            "module": self.module,
            "message": self.message,
            "tb": self.traceback,
            "args": [self.message],
            "kwargs": {},
        })
        .to_string()
    }

    fn from_failure(text: &str) -> RemoteError {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        RemoteError {
            class: if v["class"].is_string() {
                s("class")
            } else {
                "RemoteError".into()
            },
            module: s("module"),
            message: if v["message"].is_string() {
                s("message")
            } else {
                text.to_owned()
            },
            traceback: v["tb"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for RemoteError {}

/// A call's reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The call it answers (`_msg_id`).
    pub msg_id: String,
    /// The result, or the remote exception.
    pub outcome: Result<Value, RemoteError>,
}

impl Reply {
    /// The reply message (envelope bytes): `{"result", "failure", "ending": true, "_msg_id",
    /// "_unique_id"}`.
    pub fn to_body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            result: Option<&'a Value>,
            failure: Option<String>,
            ending: bool,
            _msg_id: &'a str,
            _unique_id: String,
        }
        let (result, failure) = match &self.outcome {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.to_failure())),
        };
        envelope(&Body {
            result,
            failure,
            ending: true,
            _msg_id: &self.msg_id,
            _unique_id: unique_id(),
        })
    }

    /// Reads a reply message.
    pub fn parse(body: &[u8], limit: usize) -> Result<Reply, EnvelopeError> {
        #[derive(Deserialize)]
        struct Raw {
            _msg_id: Option<Value>,
            result: Option<Value>,
            failure: Option<Value>,
        }
        let text = open_envelope(body, limit)?;
        let raw: Raw =
            serde_json::from_str(&text).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        let msg_id =
            opt_string(raw._msg_id, "_msg_id")?.ok_or(EnvelopeError::BadField("_msg_id"))?;
        let outcome = match raw.failure {
            None | Some(Value::Null) => Ok(raw.result.unwrap_or(Value::Null)),
            Some(Value::String(f)) => Err(RemoteError::from_failure(&f)),
            Some(other) => Err(RemoteError::from_failure(&other.to_string())),
        };
        Ok(Reply { msg_id, outcome })
    }
}

/// Python's `repr` of a JSON value, as `trace_cls` writes `args`/`kwargs` (`str(kwargs)`).
fn py_repr(v: &Value, out: &mut String) {
    use std::fmt::Write as _;
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => py_repr_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => py_repr_map(m, out),
    }
}

/// Python's `repr` of a dict with string keys.
fn py_repr_map(m: &Map<String, Value>, out: &mut String) {
    out.push('{');
    for (i, (k, x)) in m.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        py_repr_str(k, out);
        out.push_str(": ");
        py_repr(x, out);
    }
    out.push('}');
}

/// Python's `repr` of a str.
fn py_repr_str(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    // Python prefers single quotes unless the text has one and no double quote.
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(q);
}

/// The info of an `rpc` point: `{"function": {"name", "args", "kwargs"}}` (no arguments when
/// `hide_args`), as Python OSProfiler's `trace_cls` records a traced RPC method.
fn rpc_info(name: &str, args: &Map<String, Value>, hide_args: bool) -> Info {
    let mut f = Map::new();
    f.insert("name".into(), name.into());
    if !hide_args {
        let mut kwargs = String::with_capacity(64);
        py_repr_map(args, &mut kwargs);
        f.insert("args".into(), "()".into());
        f.insert("kwargs".into(), kwargs.into());
    }
    let mut info = Info::new();
    info.insert("function".into(), Value::Object(f));
    info
}

/// Declares exchange `exchange` as oslo.messaging does: topic, not durable, not auto-deleted.
async fn declare_control_exchange(ch: &Channel, exchange: &str) -> Result<(), lapin::Error> {
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
}

fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
}

/// How an [`RpcServer`] serves (`Debug` shows `trusted_keys` as a count).
#[derive(Clone)]
pub struct ServerOptions {
    /// The control exchange (default `openstack`).
    pub exchange: String,
    /// The topic: the queue `<topic>` takes requests for any server.
    pub topic: String,
    /// This server's name: the queue `<topic>.<server>` takes requests for it alone.
    pub server: String,
    /// The name recorded as the `rpc` point's `function.name` before the method
    /// (`<endpoint>.<method>`; default the topic).
    pub endpoint: String,
    /// Record no `args`/`kwargs` on the `rpc` point.
    pub hide_args: bool,
    /// The largest message read (default [`DEFAULT_MAX_MESSAGE`]).
    pub max_message: usize,
    /// The keys a caller's `trace_info` must carry to be continued (default: the process's
    /// verifying keys, `osprofiler_core::identity::hmac_keys()`).
    pub trusted_keys: Option<Vec<String>>,
    /// The most requests handled at once (default [`DEFAULT_PREFETCH`], the size of
    /// oslo.messaging's executor pool; 0: no limit). A request is acknowledged when it has been
    /// answered, and RabbitMQ delivers no more than this many unacknowledged requests to the
    /// server's channel: the rest wait in the queue, for this server or another.
    pub prefetch: u16,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("exchange", &self.exchange)
            .field("topic", &self.topic)
            .field("server", &self.server)
            .field("endpoint", &self.endpoint)
            .field("hide_args", &self.hide_args)
            .field("max_message", &self.max_message)
            .field(
                "trusted_keys",
                &self
                    .trusted_keys
                    .as_ref()
                    .map(|k| format!("[REDACTED; {}]", k.len())),
            )
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

/// The default [`ServerOptions::prefetch`]: oslo.messaging's `executor_thread_pool_size`.
pub const DEFAULT_PREFETCH: u16 = 64;

impl ServerOptions {
    /// Options for `topic` on server `server`.
    pub fn new(topic: impl Into<String>, server: impl Into<String>) -> Self {
        let topic = topic.into();
        ServerOptions {
            exchange: CONTROL_EXCHANGE.into(),
            endpoint: topic.clone(),
            topic,
            server: server.into(),
            hide_args: false,
            max_message: DEFAULT_MAX_MESSAGE,
            trusted_keys: None,
            prefetch: DEFAULT_PREFETCH,
        }
    }
}

/// An RPC server answering oslo.messaging calls and casts (see the [module docs](self)).
///
/// ```no_run
/// # async fn demo() -> Result<(), lapin::Error> {
/// use osprofiler_http::oslo::{RemoteError, RpcServer, ServerOptions};
/// let server = RpcServer::start(
///     "amqp://guest:guest@127.0.0.1:5672/%2f",
///     ServerOptions::new("compute", "host-1"),
///     |req| async move {
///         match req.method.as_str() {
///             "ping" => Ok(serde_json::json!("pong")),
///             other => Err(RemoteError::new("NoSuchMethod", other)),
///         }
///     },
/// )
/// .await?;
/// # server.stop().await; Ok(()) }
/// ```
pub struct RpcServer {
    conn: Connection,
    channel: Channel,
    consumer_tags: Vec<String>,
    /// Tells the serving task to take no more requests and drain those in flight until the
    /// instant sent.
    stop: Option<oneshot::Sender<tokio::time::Instant>>,
    task: tokio::task::JoinHandle<()>,
}

/// How long [`RpcServer::stop`] lets requests in flight finish (oslo.messaging's
/// `graceful_shutdown_timeout` default).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(60);

impl fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcServer").finish_non_exhaustive()
    }
}

impl RpcServer {
    /// Connects to `url`, declares the exchange and the queues `<topic>` and
    /// `<topic>.<server>` and serves each request with `handler` (concurrently, up to
    /// [`ServerOptions::prefetch`] at once).
    pub async fn start<H, Fut>(
        url: &str,
        opts: ServerOptions,
        handler: H,
    ) -> Result<RpcServer, lapin::Error>
    where
        H: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RemoteError>> + Send + 'static,
    {
        let conn = crate::rpc::amqp::connect(url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        if opts.prefetch > 0 {
            // `global`: one limit for the channel's two consumers (topic and topic.server).
            ch.basic_qos(opts.prefetch, BasicQosOptions { global: true })
                .await?;
        }
        declare_control_exchange(&ch, &opts.exchange).await?;
        let mut streams = Vec::new();
        let mut consumer_tags = Vec::new();
        for queue in [
            opts.topic.clone(),
            format!("{}.{}", opts.topic, opts.server),
        ] {
            // As oslo.messaging declares a topic consumer's queue: not durable, not
            // auto-deleted, no arguments; bound with its own name.
            ch.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
            ch.queue_bind(
                queue.as_str().into(),
                opts.exchange.as_str().into(),
                queue.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
            let tag = format!("osprofiler-rs-{}", unique_id());
            let consumer = ch
                .basic_consume(
                    queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            consumer_tags.push(tag);
            streams.push(consumer);
        }
        let handler = Arc::new(handler);
        let opts = Arc::new(opts);
        let mut incoming = futures_util::stream::select_all(streams);
        let (stop, mut stopped) = oneshot::channel::<tokio::time::Instant>();
        let channel = ch.clone();
        let task = tokio::spawn(async move {
            let mut in_flight = tokio::task::JoinSet::new();
            let deadline = loop {
                tokio::select! {
                    biased;
                    at = &mut stopped => break at.ok(),
                    Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                    next = incoming.next() => match next {
                        Some(Ok(delivery)) => {
                            let (ch, handler, opts) = (ch.clone(), handler.clone(), opts.clone());
                            in_flight.spawn(async move {
                                handle(&ch, delivery, &*handler, &opts).await;
                            });
                        }
                        Some(Err(_)) => continue,
                        // The broker cancelled the consumers (queue deleted, failover): the
                        // requests in flight still finish and answer.
                        None => {
                            log::warn!(
                                "osprofiler oslo RpcServer: the broker ended the consumers; \
                                 finishing the requests in flight, taking no more"
                            );
                            break Some(tokio::time::Instant::now() + DEFAULT_STOP_TIMEOUT);
                        }
                    },
                }
            };
            // Stopping: the requests in flight finish, until the deadline. Those still running
            // then are abandoned unacknowledged, as are the ones delivered but not started:
            // RabbitMQ gives them to another server when the connection closes.
            if let Some(deadline) = deadline {
                let drained = async { while in_flight.join_next().await.is_some() {} };
                let _ = tokio::time::timeout_at(deadline, drained).await;
            }
            in_flight.abort_all();
        });
        Ok(RpcServer {
            conn,
            channel,
            consumer_tags,
            stop: Some(stop),
            task,
        })
    }

    /// Stops gracefully: takes no more requests, lets those in flight finish (their replies
    /// are sent) for up to [`DEFAULT_STOP_TIMEOUT`], then closes the connection, which hands
    /// the requests not finished back to RabbitMQ for another server. See
    /// [`RpcServer::stop_within`].
    pub async fn stop(self) {
        self.stop_within(DEFAULT_STOP_TIMEOUT).await;
    }

    /// [`RpcServer::stop`] with the time requests in flight get to finish. A SIGTERM handler
    /// calls this: no call is lost, none is answered twice unless its handler was cut off at
    /// the deadline (it then runs again on another server, as oslo.messaging's would).
    pub async fn stop_within(mut self, timeout: Duration) {
        let now = tokio::time::Instant::now();
        // `Duration::MAX` means "as long as they take".
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        // The serving task starts no more requests and waits for those in flight (told
        // first: cancelling the consumers ends their streams, which it would take for a lost
        // connection); then RabbitMQ delivers nothing more to this server.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(deadline);
        }
        // A broker that went silent must not hold the stop beyond its deadline (and a short
        // grace for the cancel and close frames).
        let grace = deadline + Duration::from_secs(5);
        let cancel = async {
            for tag in &self.consumer_tags {
                let _ = self
                    .channel
                    .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                    .await;
            }
        };
        let _ = tokio::time::timeout_at(grace, cancel).await;
        let _ = (&mut self.task).await;
        let _ = tokio::time::timeout_at(grace, self.conn.close(200, "bye".into())).await;
    }
}

/// The caller's trace, if its key is one this server trusts.
fn trusted_root(trace: Option<&TraceContext>, opts: &ServerOptions) -> Option<Profiler> {
    let t = trace?;
    let trusted = match &opts.trusted_keys {
        Some(keys) => keys.contains(&t.hmac_key),
        None => osprofiler_core::identity::hmac_keys().contains(&t.hmac_key),
    };
    if !trusted || t.base_id.is_empty() {
        return None;
    }
    t.profiler()
}

async fn publish_reply(ch: &Channel, reply_q: &str, reply: &Reply) {
    let _ = ch
        .basic_publish(
            "".into(),
            reply_q.into(),
            BasicPublishOptions::default(),
            &reply.to_body(),
            json_properties(),
        )
        .await;
}

/// Serves one delivery: a reply for a call, an ack in every case but a malformed message,
/// which is rejected without requeueing (dead-lettered where configured).
async fn handle<H, Fut>(
    ch: &Channel,
    delivery: lapin::message::Delivery,
    handler: &H,
    opts: &ServerOptions,
) where
    H: Fn(Request) -> Fut,
    Fut: Future<Output = Result<Value, RemoteError>>,
{
    let req = match Request::parse(&delivery.data, opts.max_message) {
        Ok(r) => r,
        Err(e) => {
            log::warn!("osprofiler: rejected an RPC message on {}: {e}", opts.topic);
            // If the reply queue can be read at all, tell the caller instead of letting it wait.
            if let Some((id, q)) = reply_address(&delivery.data, opts.max_message) {
                let reply = Reply {
                    msg_id: id,
                    outcome: Err(RemoteError::new("MessageRejected", e.to_string())),
                };
                publish_reply(ch, &q, &reply).await;
            }
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    let root = trusted_root(req.trace.as_ref(), opts);
    let mut point = match &root {
        Some(r) => r.child("rpc", || {
            let name = format!("{}.{}", opts.endpoint, req.method);
            rpc_info(&name, &req.args, opts.hide_args)
        }),
        None => Trace::inactive(),
    };
    let reply_to = req.msg_id.clone().zip(req.reply_q.clone());
    let method = req.method.clone();
    let run = std::panic::AssertUnwindSafe(handler(req).in_trace(point.profiler()));
    let outcome = match run.catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the handler panicked".into());
            log::error!("osprofiler: RPC handler for {method} panicked: {text}");
            Err(RemoteError::new("HandlerPanicked", text))
        }
    };
    if let Err(e) = &outcome {
        point.error_with(&e.class, &e.message);
    }
    drop(point);
    if let Some((msg_id, reply_q)) = reply_to {
        publish_reply(ch, &reply_q, &Reply { msg_id, outcome }).await;
    }
    let _ = delivery.ack(BasicAckOptions::default()).await;
}

/// `_msg_id` and `_reply_q` of a message that is an envelope but not a valid request.
fn reply_address(body: &[u8], limit: usize) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Address {
        _msg_id: String,
        _reply_q: String,
    }
    let text = open_envelope(body, limit).ok()?;
    let a: Address = serde_json::from_str(&text).ok()?;
    Some((a._msg_id, a._reply_q))
}

/// Where a client's request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The topic.
    pub topic: String,
    /// A server of the topic (the request then goes to `<topic>.<server>` only).
    pub server: Option<String>,
    /// The endpoint namespace.
    pub namespace: Option<String>,
    /// The API version (default `1.0`).
    pub version: String,
}

impl Target {
    /// Any server of `topic`.
    pub fn topic(topic: impl Into<String>) -> Self {
        Target {
            topic: topic.into(),
            server: None,
            namespace: None,
            version: "1.0".into(),
        }
    }

    /// This server of the topic.
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }

    fn routing_key(&self) -> String {
        match &self.server {
            Some(s) => format!("{}.{s}", self.topic),
            None => self.topic.clone(),
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RpcError {
    /// No reply within the client's timeout.
    Timeout {
        /// The method called.
        method: String,
        /// How long the client waited.
        after: Duration,
    },
    /// The remote side raised an exception.
    Remote(RemoteError),
    /// The broker connection failed.
    Transport(lapin::Error),
    /// The arguments or the context do not serialize to a JSON object (keyword arguments).
    Arguments(String),
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Timeout { method, after } => {
                write!(f, "no reply to {method} within {after:?}")
            }
            RpcError::Remote(e) => write!(f, "remote error: {e}"),
            RpcError::Transport(e) => write!(f, "RabbitMQ: {e}"),
            RpcError::Arguments(e) => write!(f, "bad call: {e}"),
        }
    }
}

impl std::error::Error for RpcError {}

impl From<lapin::Error> for RpcError {
    fn from(e: lapin::Error) -> Self {
        RpcError::Transport(e)
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// Keyword arguments or a context as a JSON object (`()` and `None`: empty).
fn object(what: &str, v: impl Serialize) -> Result<Map<String, Value>, RpcError> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(RpcError::Arguments(format!(
            "{what} must serialize to a JSON object (keyword arguments by name), not {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                _ => "a boolean",
            }
        ))),
        Err(e) => Err(RpcError::Arguments(format!("{what}: {e}"))),
    }
}

/// An RPC client calling oslo.messaging servers (see the [module docs](self)).
///
/// ```no_run
/// # async fn demo() -> Result<(), osprofiler_http::oslo::RpcError> {
/// use osprofiler_http::oslo::{RpcClient, Target};
/// // oslo.messaging's transport_url, as in the service's [DEFAULT] section.
/// let client = RpcClient::connect("rabbit://guest:guest@127.0.0.1:5672/").await?;
/// // Keyword arguments and context: anything that serializes to a JSON object.
/// let args = serde_json::json!({"instance_id": "42"});
/// let context = serde_json::json!({"user": "alice", "project_id": "p1"});
/// let state = client.call(&Target::topic("compute"), "get_state", args, context).await?;
/// # Ok(()) }
/// ```
pub struct RpcClient {
    conn: Connection,
    ch: Channel,
    exchange: String,
    reply_q: String,
    pending: Pending,
    timeout: Duration,
    max_message: usize,
    hide_args: bool,
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("exchange", &self.exchange)
            .field("reply_q", &self.reply_q)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// Connects to `url` with the control exchange `openstack`, a reply queue of its own
    /// (`reply_<uuid>`, as oslo.messaging names and declares it) and a 60 s call timeout.
    pub async fn connect(url: &str) -> Result<RpcClient, RpcError> {
        Self::connect_to(url, CONTROL_EXCHANGE).await
    }

    /// [`RpcClient::connect`] with another control exchange.
    pub async fn connect_to(url: &str, exchange: &str) -> Result<RpcClient, RpcError> {
        let conn = crate::rpc::amqp::connect(url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        declare_control_exchange(&ch, exchange).await?;
        let reply_q = format!("reply_{}", unique_id());
        let mut args = FieldTable::default();
        // oslo.messaging's rabbit_transient_queues_ttl: an unused reply queue goes in 30 min.
        args.insert("x-expires".into(), AMQPValue::LongLongInt(1_800_000));
        ch.queue_declare(
            reply_q.as_str().into(),
            QueueDeclareOptions::default(),
            args,
        )
        .await?;
        let mut replies = ch
            .basic_consume(
                reply_q.as_str().into(),
                format!("osprofiler-rs-{}", unique_id()).as_str().into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let pending: Pending = Arc::default();
        let waiting = pending.clone();
        tokio::spawn(async move {
            while let Some(delivery) = replies.next().await {
                let Ok(delivery) = delivery else { continue };
                match Reply::parse(&delivery.data, DEFAULT_MAX_MESSAGE) {
                    Ok(reply) => {
                        let tx = waiting
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&reply.msg_id);
                        if let Some(tx) = tx {
                            let _ = tx.send(reply);
                        }
                    }
                    Err(e) => log::warn!("osprofiler: ignored a malformed RPC reply: {e}"),
                }
            }
        });
        Ok(RpcClient {
            conn,
            ch,
            exchange: exchange.to_owned(),
            reply_q,
            pending,
            timeout: Duration::from_secs(60),
            max_message: DEFAULT_MAX_MESSAGE,
            hide_args: false,
        })
    }

    /// How long a call waits for its reply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Record no `args`/`kwargs` on the caller's `rpc` points.
    pub fn hide_args(mut self, hide: bool) -> Self {
        self.hide_args = hide;
        self
    }

    async fn send(&self, target: &Target, req: &Request) -> Result<(), RpcError> {
        let body = req.to_body();
        if body.len() > self.max_message {
            return Err(RpcError::Remote(RemoteError::new(
                "MessageTooLarge",
                format!("{} bytes, over {}", body.len(), self.max_message),
            )));
        }
        self.ch
            .basic_publish(
                self.exchange.as_str().into(),
                target.routing_key().as_str().into(),
                BasicPublishOptions::default(),
                &body,
                json_properties(),
            )
            .await?;
        Ok(())
    }

    fn request(
        &self,
        target: &Target,
        method: &str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> Request {
        Request {
            namespace: target.namespace.clone(),
            version: Some(target.version.clone()),
            context,
            // Inside the caller's rpc point: the callee's parent.
            trace: TraceContext::current(),
            ..Request::new(method, args)
        }
    }

    /// Calls `method` and waits for its result: an `rpc` point of the caller, the callee's
    /// parent. `args` are the keyword arguments and `context` the request context: anything
    /// that serializes to a JSON object (a struct, a map, `serde_json::json!({...})`; `()` for
    /// none). A remote exception is [`RpcError::Remote`]; no reply in time
    /// [`RpcError::Timeout`]; arguments that are not an object [`RpcError::Arguments`].
    pub async fn call(
        &self,
        target: &Target,
        method: &str,
        args: impl Serialize,
        context: impl Serialize,
    ) -> Result<Value, RpcError> {
        let (args, context) = (object("args", args)?, object("context", context)?);
        let mut point = Trace::new("rpc", || rpc_info(method, &args, self.hide_args));
        let mut req = self.request(target, method, args, context);
        let msg_id = unique_id();
        req.msg_id = Some(msg_id.clone());
        req.reply_q = Some(self.reply_q.clone());
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(msg_id.clone(), tx);
        let result = match self.send(target, &req).await {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(reply)) => reply.outcome.map_err(RpcError::Remote),
                _ => Err(RpcError::Timeout {
                    method: method.to_owned(),
                    after: self.timeout,
                }),
            },
        };
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&msg_id);
        match &result {
            Err(RpcError::Remote(e)) => point.error_with(&e.class, &e.message),
            Err(e) => point.error_with("RpcError", e),
            Ok(_) => {}
        }
        result
    }

    /// Casts `method` (no reply): an `rpc` point of the caller. `args` and `context` as for
    /// [`RpcClient::call`].
    pub async fn cast(
        &self,
        target: &Target,
        method: &str,
        args: impl Serialize,
        context: impl Serialize,
    ) -> Result<(), RpcError> {
        let (args, context) = (object("args", args)?, object("context", context)?);
        let mut point = Trace::new("rpc", || rpc_info(method, &args, self.hide_args));
        let req = self.request(target, method, args, context);
        let r = self.send(target, &req).await;
        if let Err(e) = &r {
            point.error_with("RpcError", e);
        }
        r
    }

    /// Closes the connection (the reply queue expires after 30 min unused, as oslo's do).
    pub async fn close(self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr_of_kwargs() {
        let mut s = String::new();
        py_repr(
            &json!({"a": 1, "b": "it's", "c": [true, null, "x\ny"], "d": {"e": 1.5}}),
            &mut s,
        );
        assert_eq!(
            s,
            r#"{'a': 1, 'b': "it's", 'c': [True, None, 'x\ny'], 'd': {'e': 1.5}}"#
        );
    }

    #[test]
    fn envelopes_round_trip_and_bad_ones_are_named() {
        let mut req = Request::new("add", Map::new());
        req.msg_id = Some("m1".into());
        req.reply_q = Some("reply_x".into());
        req.context.insert("user".into(), "alice".into());
        req.trace = Some(TraceContext {
            hmac_key: "k".into(),
            base_id: "b".into(),
            parent_id: "p".into(),
        });
        let back = Request::parse(&req.to_body(), DEFAULT_MAX_MESSAGE).unwrap();
        assert_eq!(back, req);
        let inner: Value = serde_json::from_str(
            serde_json::from_slice::<Value>(&req.to_body()).unwrap()["oslo.message"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(inner["_context_trace_info"]["base_id"], "b");
        assert_eq!(inner["_context_user"], "alice");

        let bad = |body: &[u8]| Request::parse(body, 64).unwrap_err();
        assert!(matches!(
            bad(&[b' '; 65]),
            EnvelopeError::TooLarge { size: 65, .. }
        ));
        assert!(matches!(bad(b"nope"), EnvelopeError::NotJson(_)));
        assert_eq!(bad(b"{\"method\": \"x\"}"), EnvelopeError::NotAnEnvelope);
        assert_eq!(
            bad(br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#),
            EnvelopeError::UnsupportedVersion("3.0".into())
        );
        assert_eq!(
            bad(br#"{"oslo.version": "2.0", "oslo.message": "{}"}"#),
            EnvelopeError::BadField("method")
        );
        // Garbage trace_info: the request stands, untraced.
        let r = Request::parse(
            br#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"m\", \"_context_trace_info\": 7}"}"#,
            1024,
        )
        .unwrap();
        assert_eq!((r.trace, r.context.len()), (None, 0));

        let reply = Reply {
            msg_id: "m1".into(),
            outcome: Err(RemoteError::new("ValueError", "nope")),
        };
        let back = Reply::parse(&reply.to_body(), DEFAULT_MAX_MESSAGE).unwrap();
        assert_eq!(back.outcome.unwrap_err().class, "ValueError");
    }
}
