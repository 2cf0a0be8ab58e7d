//! The signed trace headers in AMQP message headers.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use osprofiler_core::headers::{HmacKeys, Verified, X_TRACE_HMAC, X_TRACE_INFO};

/// Adds the signed headers of the current trace (parent = the current point) to `headers`;
/// does nothing when no trace is active.
pub fn inject(headers: &mut FieldTable) {
    if let Some(h) = osprofiler_core::trace_headers() {
        headers.insert(
            ShortString::from(X_TRACE_INFO),
            AMQPValue::LongString(LongString::from(h.x_trace_info)),
        );
        headers.insert(
            ShortString::from(X_TRACE_HMAC),
            AMQPValue::LongString(LongString::from(h.x_trace_hmac)),
        );
    }
}

/// Verifies the trace headers of a received message against `keys`.
pub fn extract(headers: Option<&FieldTable>, keys: &HmacKeys) -> Option<Verified> {
    let table = headers?.inner();
    let get = |name: &str| match table.get(name) {
        Some(AMQPValue::LongString(s)) => Some(s.as_bytes().to_vec()),
        _ => None,
    };
    keys.verify_bytes(&get(X_TRACE_INFO)?, &get(X_TRACE_HMAC)?)
}
