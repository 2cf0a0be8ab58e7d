//! W3C Trace Context (`traceparent`), optional and off by default, so that services
//! instrumented with OpenTelemetry can join OSProfiler traces. Ids map as the reference's OTLP
//! section says: the trace id is the 128 bits of `base_id`, a span id the low 64 bits of a
//! point's id.
//!
//! `traceparent` is not signed: accepting it lets any caller start a trace, which OSProfiler's
//! HMAC keys exist to prevent. Turn it on only behind a trusted edge.
//!
//! The sampled flag is honoured: a request whose `traceparent` says "not sampled" (flags
//! `00`) is not traced, and the clients of this crate with `traceparent` on forward that
//! context, still unsampled, on the calls made while it is handled (on the handler's task,
//! as the trace itself follows it). Points this crate records send flags `01`: they are
//! recorded.

use osprofiler_core::id::Id;
use std::cell::RefCell;
use std::sync::Arc;

/// Header name.
pub const TRACEPARENT: &str = "traceparent";

fn uuid_bits(id: &Id) -> Option<u128> {
    match id {
        Id::Uuid(u) => Some(u.as_u128()),
        Id::Text(t) => {
            let hex: String = t.chars().filter(|c| *c != '-').collect();
            (hex.len() == 32)
                .then(|| u128::from_str_radix(&hex, 16).ok())
                .flatten()
        }
    }
}

/// `00-<base_id>-<low 64 bits of point>-01` for a point of a trace whose base id is a uuid.
///
/// ```
/// use osprofiler_core::id::Id;
/// let base = Id::from("0f0e0d0c-0b0a-4908-8706-050403020100");
/// let point = Id::from("11111111-2222-4333-8444-555555555555");
/// assert_eq!(
///     osprofiler_http::w3c::traceparent(&base, &point).unwrap(),
///     "00-0f0e0d0c0b0a49088706050403020100-8444555555555555-01"
/// );
/// ```
pub fn traceparent(base_id: &Id, point: &Id) -> Option<String> {
    let trace = uuid_bits(base_id)?;
    let span = uuid_bits(point)? as u64;
    (trace != 0 && span != 0).then(|| format!("00-{trace:032x}-{span:016x}-01"))
}

/// A parsed `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id as a dashed uuid (OSProfiler's `base_id`).
    pub base_id: String,
    /// The parent span as a uuid whose high 64 bits are zero (so that the OTLP mapping gives
    /// back the same span id).
    pub parent_id: String,
    /// The caller recorded its span (flag bit 0): only then does a request join the trace.
    pub sampled: bool,
}

impl TraceParent {
    /// The value to send on: the same trace and parent span, with the sampled flag; `None`
    /// when the ids are not what [`parse`] makes (dashed uuids).
    pub fn to_header(&self) -> Option<String> {
        let hex = |s: &str| {
            let h = s.replace('-', "");
            (h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit())).then_some(h)
        };
        let (trace, parent) = (hex(&self.base_id)?, hex(&self.parent_id)?);
        Some(format!(
            "00-{trace}-{}-{}",
            &parent[16..],
            if self.sampled { "01" } else { "00" }
        ))
    }
}

/// Parses a `traceparent` value as OSProfiler ids and the sampled flag. `None` for anything
/// not valid per the spec.
///
/// ```
/// let tp = osprofiler_http::w3c::parse("00-0f0e0d0c0b0a49088706050403020100-8444555555555555-01").unwrap();
/// assert_eq!(tp.base_id, "0f0e0d0c-0b0a-4908-8706-050403020100");
/// assert_eq!(tp.parent_id, "00000000-0000-0000-8444-555555555555");
/// assert!(tp.sampled);
/// let unsampled = osprofiler_http::w3c::parse("00-0f0e0d0c0b0a49088706050403020100-8444555555555555-00").unwrap();
/// assert!(!unsampled.sampled);
/// assert_eq!(unsampled.to_header().unwrap(), "00-0f0e0d0c0b0a49088706050403020100-8444555555555555-00");
/// ```
pub fn parse(value: &str) -> Option<TraceParent> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let t = u128::from_str_radix(trace, 16).ok()?;
    let s = u64::from_str_radix(span, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if t == 0 || s == 0 {
        return None;
    }
    let dashed = |v: u128| {
        let h = format!("{v:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    };
    Some(TraceParent {
        base_id: dashed(t),
        parent_id: dashed(s as u128),
        sampled: flags & 1 == 1,
    })
}

thread_local! {
    /// The unsampled `traceparent` of the request being handled on this thread, to forward.
    static UNSAMPLED: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Runs `f` with `value` as the unsampled context to forward (the server's future, polled).
pub(crate) fn with_unsampled<R>(value: &Arc<str>, f: impl FnOnce() -> R) -> R {
    let saved = UNSAMPLED.with(|u| u.replace(Some(value.clone())));
    struct Restore(Option<Arc<str>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let saved = self.0.take();
            UNSAMPLED.with(|u| *u.borrow_mut() = saved);
        }
    }
    let _restore = Restore(saved);
    f()
}

/// The unsampled `traceparent` to forward on an untraced call, if one is being handled.
pub(crate) fn unsampled() -> Option<http::HeaderValue> {
    UNSAMPLED.with(|u| {
        u.borrow()
            .as_deref()
            .and_then(|v| http::HeaderValue::from_str(v).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_invalid_values() {
        for v in [
            "",
            "00-00000000000000000000000000000000-8444555555555555-01",
            "00-0f0e0d0c0b0a49088706050403020100-0000000000000000-01",
            "ff-0f0e0d0c0b0a49088706050403020100-8444555555555555-01",
            "00-0F0E0D0C0B0A49088706050403020100-8444555555555555-01",
            "00-0f0e0d0c0b0a49088706050403020100-8444555555555555-01-extra",
            "00-0f0e-8444555555555555-01",
        ] {
            assert!(parse(v).is_none(), "{v}");
        }
    }

    #[test]
    fn round_trips_through_the_otlp_mapping() {
        let tp = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let again = traceparent(
            &Id::from(tp.base_id.as_str()),
            &Id::from(tp.parent_id.as_str()),
        )
        .unwrap();
        assert_eq!(
            again,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(tp.to_header().as_deref(), Some(again.as_str()));
        // Other flag bits (future ones) do not make a trace sampled.
        assert!(
            !parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02")
                .unwrap()
                .sampled
        );
    }
}
