//! An RPC request: the inner message of a call or a cast, with the request context
//! flattened as `_context_<key>` entries and the trace as `_context_trace_info`.

use crate::context::TraceContext;
use crate::envelope::{EnvelopeError, envelope, open_envelope, opt_string, unique_id};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

/// An RPC request: a `call` when it has a `msg_id` and `reply_q`, else a `cast`.
///
/// ```
/// use osprofiler_oslo::Request;
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
    /// The request context, without the `_context_` prefix and without `trace_info` and
    /// `osprofiler_provisional`.
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
        let mut context = raw.context;
        // Garbage trace_info: the request stands, untraced.
        let mut trace = raw.trace.and_then(|v| TraceContext::deserialize(&v).ok());
        let provisional = context.remove(crate::context::PROVISIONAL_KEY);
        if let Some(t) = &mut trace {
            t.provisional = provisional
                .as_ref()
                .and_then(Value::as_str)
                .and_then(osprofiler_core::sampling::Provisional::parse);
        }
        Ok(Request {
            method,
            args,
            namespace: opt_string(raw.namespace, "namespace")?,
            version: opt_string(raw.version, "version")?,
            context,
            trace,
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
            if self.trace.is_some()
                && (k == crate::context::CONTEXT_KEY || k == crate::context::PROVISIONAL_KEY)
            {
                continue;
            }
            m.serialize_entry(&ContextKey(k), v)?;
        }
        if let Some(t) = &self.trace {
            m.serialize_entry(&ContextKey(crate::context::CONTEXT_KEY), t)?;
            if let Some(p) = t.provisional {
                m.serialize_entry(
                    &ContextKey(crate::context::PROVISIONAL_KEY),
                    p.header_value(),
                )?;
            }
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
