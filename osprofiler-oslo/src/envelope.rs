//! The oslo.messaging 2.0 envelope: `{"oslo.version": "2.0", "oslo.message": "<JSON text>"}`,
//! opened with its size and version checked, and written.

use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The envelope version oslo.messaging writes and reads.
pub const ENVELOPE_VERSION: &str = "2.0";
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
pub(crate) fn open_envelope(body: &[u8], limit: usize) -> Result<String, EnvelopeError> {
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
pub(crate) fn envelope(inner: &impl Serialize) -> Vec<u8> {
    let text = serde_json::to_string(inner).unwrap_or_default();
    let mut out = Vec::with_capacity(text.len() + text.len() / 4 + 48);
    out.extend_from_slice(br#"{"oslo.version":"2.0","oslo.message":"#);
    // A string always serializes.
    let _ = serde_json::to_writer(&mut out, &text);
    out.push(b'}');
    out
}

pub(crate) fn opt_string(
    v: Option<Value>,
    key: &'static str,
) -> Result<Option<String>, EnvelopeError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EnvelopeError::BadField(key)),
    }
}

/// A new `_unique_id` / `_msg_id`: a random UUID, in hex.
pub(crate) fn unique_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The properties of an oslo.messaging message: JSON in UTF-8.
pub(crate) fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
}

/// `_msg_id` and `_reply_q` of a message that is an envelope but not a valid request.
pub(crate) fn reply_address(body: &[u8], limit: usize) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Address {
        _msg_id: String,
        _reply_q: String,
    }
    let text = open_envelope(body, limit).ok()?;
    let a: Address = serde_json::from_str(&text).ok()?;
    Some((a._msg_id, a._reply_q))
}

#[cfg(test)]
mod tests {
    use crate::context::TraceContext;
    use crate::{DEFAULT_MAX_MESSAGE, EnvelopeError, RemoteError, Reply, Request};
    use serde_json::{Map, Value};

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
            provisional: Some(osprofiler_core::sampling::Provisional { keep_errors: false }),
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
        // Next to trace_info, not in it: Python's profiler.init(**trace_info) takes no more.
        assert_eq!(inner["_context_osprofiler_provisional"], "keep=none");
        assert_eq!(
            inner["_context_trace_info"].as_object().unwrap().len(),
            3,
            "{inner}"
        );
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
