//! Signed trace headers: how a caller hands its trace to a callee over HTTP.
//!
//! `X-Trace-Info` is the URL-safe base64 (with padding) of the Python-style JSON
//! `{"base_id": ..., "parent_id": ...}`; `X-Trace-HMAC` is the lowercase hex HMAC-SHA1 of that
//! base64 text under a shared key. Both are byte-identical to OSProfiler 4.4.0's
//! `utils.signed_pack`, and [`signed_unpack`] accepts exactly what its `signed_unpack` plus the
//! WSGI middleware's validity check accept — except that it never fails on odd input: anything
//! it does not accept is simply `None` (the request runs untraced).

use crate::id::Id;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Name of the header that carries the packed trace data.
pub const X_TRACE_INFO: &str = "X-Trace-Info";
/// Name of the header that carries its signature.
pub const X_TRACE_HMAC: &str = "X-Trace-HMAC";

/// Longest `X-Trace-Info` value considered (bytes); longer ones are rejected unread.
pub const MAX_TRACE_INFO_LEN: usize = 4096;
/// Longest `X-Trace-HMAC` value considered (bytes, whitespace included).
pub const MAX_TRACE_HMAC_LEN: usize = 256;

/// Python's `json.dumps({"base_id": b, "parent_id": p})` around the two ids: what
/// [`signed_pack`] writes and the one-pass parser of two uuids expects.
const JSON_HEAD: &[u8] = b"{\"base_id\": \"";
const JSON_MID: &[u8] = b"\", \"parent_id\": \"";
const JSON_TAIL: &[u8] = b"\"}";

const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// The data carried in `X-Trace-Info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceData {
    /// The trace's id.
    pub base_id: String,
    /// The caller's current point, which becomes the callee's parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

/// A pair of header values, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    /// Value of `X-Trace-Info`.
    pub x_trace_info: String,
    /// Value of `X-Trace-HMAC`.
    pub x_trace_hmac: String,
    /// Value of `X-Trace-Provisional`, sent when the trace is provisional (see
    /// [`crate::sampling`]); `None` for a trace stored for good.
    pub x_trace_provisional: Option<&'static str>,
}

impl TraceHeaders {
    /// The `(name, value)` pairs to send: `X-Trace-Info`, `X-Trace-HMAC`, and
    /// `X-Trace-Provisional` when the trace is provisional.
    ///
    /// ```
    /// use osprofiler_core::headers::{signed_pack, TraceData};
    /// let h = signed_pack(&TraceData { base_id: "b".into(), parent_id: None }, "k");
    /// let names: Vec<&str> = h.pairs().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["X-Trace-Info", "X-Trace-HMAC"]);
    /// ```
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            (X_TRACE_INFO, &*self.x_trace_info),
            (X_TRACE_HMAC, &*self.x_trace_hmac),
        ]
        .into_iter()
        .chain(
            self.x_trace_provisional
                .map(|v| (crate::sampling::X_TRACE_PROVISIONAL, v)),
        )
    }
}

/// Verified trace data from an incoming request.
///
/// The ids are [`Id`]s: canonical uuids (what OSProfiler sends) are kept as 16 bytes, so
/// verifying a request allocates nothing for them. Compare them with text directly
/// (`v.base_id == "..."`) or format them (`to_string`, `to_text`).
#[derive(Clone, PartialEq, Eq)]
pub struct Verified {
    /// The trace's id.
    pub base_id: Id,
    /// The caller's point (absent when the caller sent only `base_id`).
    pub parent_id: Option<Id>,
    /// The configured key that matched; sign onward calls with it. Shared with the
    /// [`HmacKeys`] it came from (no copy per request).
    pub hmac_key: std::sync::Arc<str>,
    /// Set when the caller marked the trace provisional (`X-Trace-Provisional`, read by the
    /// server layer, not by verification; see [`crate::sampling`]).
    pub provisional: Option<crate::sampling::Provisional>,
}

/// The key is not shown.
impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("base_id", &self.base_id)
            .field("parent_id", &self.parent_id)
            .field("hmac_key", &"[REDACTED]")
            .field("provisional", &self.provisional)
            .finish()
    }
}

fn keyed(key: &str) -> Hmac<Sha1> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha1> as Mac>::new_from_slice(key.as_bytes()).expect("hmac takes any key length")
}

/// [`keyed`] through a small per-thread cache of key schedules: keys given as text
/// ([`signed_pack`], [`signed_unpack`]) are the same few on every call, and a schedule costs two
/// SHA-1 blocks, as much as the MAC of a header itself. The newest 8 keys a thread used are
/// kept (compared by content; the cache is never printed).
fn keyed_cached(key: &str) -> Hmac<Sha1> {
    const KEPT: usize = 8;
    thread_local! {
        static SCHEDULES: std::cell::RefCell<Vec<(Box<str>, Hmac<Sha1>)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    SCHEDULES
        .try_with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(i) = cache.iter().position(|(k, _)| **k == *key) {
                if i > 0 {
                    cache[..=i].rotate_right(1); // most recent first
                }
                return cache[0].1.clone();
            }
            let mac = keyed(key);
            if cache.len() == KEPT {
                cache.pop();
            }
            cache.insert(0, (key.into(), mac.clone()));
            mac
        })
        .unwrap_or_else(|_| keyed(key))
}

fn finish_raw(mut mac: Hmac<Sha1>, data: &[u8]) -> [u8; 20] {
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The received MAC as bytes: exactly 40 lowercase hex digits (Python compares the hex text,
/// so uppercase never matches).
fn parse_mac(hex: &[u8]) -> Option<[u8; 20]> {
    const PAIRS: [usize; 20] = {
        let mut at = [0; 20];
        let mut i = 0;
        while i < 20 {
            at[i] = 2 * i;
            i += 1;
        }
        at
    };
    let mut out = [0u8; 20];
    (hex.len() == 40 && crate::id::decode_hex_pairs(hex, &PAIRS, &mut out)).then_some(out)
}

/// Constant-time comparison of two digests, a word at a time.
fn digests_equal(a: &[u8; 20], b: &[u8; 20]) -> bool {
    let w = |x: &[u8; 20], i: usize| {
        let mut v = [0u8; 4];
        v.copy_from_slice(&x[i * 4..i * 4 + 4]);
        u32::from_ne_bytes(v)
    };
    let mut eq = subtle::Choice::from(1);
    for i in 0..5 {
        eq &= w(a, i).ct_eq(&w(b, i));
    }
    bool::from(eq)
}

fn finish_hex(mut mac: Hmac<Sha1>, data: &[u8]) -> [u8; 40] {
    mac.update(data);
    let digest = mac.finalize().into_bytes();
    let mut out = [0u8; 40];
    // 20 bytes always fit 40 hex digits.
    let _ = hex::encode_to_slice(digest, &mut out);
    out
}

/// The keyed MAC for `key`, or `None` for the empty key (which signs nothing).
pub(crate) fn keyed_mac(key: &str) -> Option<Hmac<Sha1>> {
    (!key.is_empty()).then(|| keyed_cached(key))
}

fn hmac_hex(data: &[u8], key: &str) -> [u8; 40] {
    finish_hex(keyed_cached(key), data)
}

/// Verification keys prepared once (the HMAC key schedule is computed up front), for servers
/// that verify many requests against the same configured keys.
///
/// ```
/// use osprofiler_core::headers::{signed_pack, HmacKeys, TraceData};
/// let keys = HmacKeys::new(["new", "old"]);
/// let h = signed_pack(&TraceData { base_id: "b".into(), parent_id: None }, "old");
/// assert_eq!(keys.verify(&h.x_trace_info, &h.x_trace_hmac).unwrap().hmac_key, "old".into());
/// ```
pub struct HmacKeys {
    keys: Vec<(std::sync::Arc<str>, Hmac<Sha1>)>,
    /// The key that verified last, tried first: during a rotation most requests carry one of
    /// the keys, so a verification costs one MAC instead of up to one per key.
    last: std::sync::atomic::AtomicUsize,
}

impl Clone for HmacKeys {
    fn clone(&self) -> Self {
        HmacKeys {
            keys: self.keys.clone(),
            last: std::sync::atomic::AtomicUsize::new(
                self.last.load(std::sync::atomic::Ordering::Relaxed),
            ),
        }
    }
}

impl std::fmt::Debug for HmacKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys themselves.
        f.debug_struct("HmacKeys")
            .field("count", &self.keys.len())
            .finish()
    }
}

impl HmacKeys {
    /// Prepares `keys`, tried in this order.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(keys: I) -> Self {
        HmacKeys {
            keys: keys
                .into_iter()
                .map(|k| {
                    let k: String = k.into();
                    let mac = keyed(&k);
                    (std::sync::Arc::from(k), mac)
                })
                .collect(),
            last: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no keys (then nothing verifies).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// [`signed_unpack`] against these keys.
    pub fn verify(&self, info: &str, hmac: &str) -> Option<Verified> {
        self.verify_bytes(info.as_bytes(), hmac.as_bytes())
    }

    /// [`signed_unpack_bytes`] against these keys.
    pub fn verify_bytes(&self, info: &[u8], hmac: &[u8]) -> Option<Verified> {
        let first = self.last.load(std::sync::atomic::Ordering::Relaxed);
        let i = find_key(info, hmac, self.keys.len(), first, |i| {
            self.keys[i].1.clone()
        })?;
        if i != first {
            self.last.store(i, std::sync::atomic::Ordering::Relaxed);
        }
        verified(info, self.keys[i].0.clone())
    }
}

/// Lowercase hex HMAC-SHA1 of `data` under `key` (OSProfiler's `generate_hmac`).
///
/// ```
/// assert_eq!(osprofiler_core::headers::generate_hmac("data", "key").len(), 40);
/// ```
pub fn generate_hmac(data: &str, key: &str) -> String {
    let hex = hmac_hex(data.as_bytes(), key);
    String::from_utf8_lossy(&hex).into_owned()
}

/// Packs and signs trace data (OSProfiler's `signed_pack`). As in Python, an empty key signs
/// nothing: `x_trace_hmac` is then empty, and no verifier will accept the pair.
///
/// ```
/// use osprofiler_core::headers::{signed_pack, TraceData};
/// let h = signed_pack(
///     &TraceData {
///         base_id: "11111111-1111-4111-8111-111111111111".into(),
///         parent_id: Some("22222222-2222-4222-8222-222222222222".into()),
///     },
///     "SECRET_KEY",
/// );
/// assert_eq!(h.x_trace_hmac, "d5c8c499158d92608f09da737823d4272b920cd4");
/// ```
pub fn signed_pack(data: &TraceData, hmac_key: &str) -> TraceHeaders {
    let mac = keyed_mac(hmac_key);
    pack_with(data.base_id.as_str(), data.parent_id.as_deref(), mac)
}

/// Packs with an already keyed MAC (`None`: unsigned).
pub(crate) fn pack_with(
    base_id: &str,
    parent_id: Option<&str>,
    mac: Option<Hmac<Sha1>>,
) -> TraceHeaders {
    // Python's json.dumps of {"base_id": ..., "parent_id": ...}, written directly: on the
    // stack when the ids need no escaping (always, for uuids), else with Python's escapes.
    let plain = |s: &str| {
        s.bytes().fold(true, |ok, b| {
            ok & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
        })
    };
    let mut stack = [0u8; 160];
    let heap: Vec<u8>;
    let json: &[u8] = match parent_id {
        Some(p)
            if JSON_HEAD.len() + base_id.len() + JSON_MID.len() + p.len() + JSON_TAIL.len()
                <= stack.len()
                && plain(base_id)
                && plain(p) =>
        {
            let mut at = 0;
            for part in [
                JSON_HEAD,
                base_id.as_bytes(),
                JSON_MID,
                p.as_bytes(),
                JSON_TAIL,
            ] {
                stack[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            &stack[..at]
        }
        _ => {
            let mut out = Vec::with_capacity(32 + base_id.len() + parent_id.map_or(0, str::len));
            out.extend_from_slice(b"{\"base_id\": ");
            crate::pyjson::write(&mut out, base_id);
            if let Some(p) = parent_id {
                out.extend_from_slice(b", \"parent_id\": ");
                crate::pyjson::write(&mut out, p);
            }
            out.push(b'}');
            heap = out;
            &heap
        }
    };
    let info = base64_simd::URL_SAFE.encode_to_string(json);
    let hmac = match mac {
        // Hex digits are ASCII.
        Some(mac) => {
            String::from_utf8(finish_hex(mac, info.as_bytes()).to_vec()).unwrap_or_default()
        }
        None => String::new(),
    };
    TraceHeaders {
        x_trace_info: info,
        x_trace_hmac: hmac,
        x_trace_provisional: None,
    }
}

/// Verifies and unpacks trace headers against `hmac_keys` (constant-time comparison; the key
/// that matched last on this thread is tried first, then the ones after it, wrapping round). Each key's HMAC
/// schedule is cached per thread (the 8 newest keys), so keys given as text cost about what
/// prepared [`HmacKeys`] do. `None` for anything that would leave Python's middleware
/// untraced: missing or bad signature, bad base64, UTF-8 or JSON, a value that is not an object,
/// no `base_id`, keys other than `base_id`/`parent_id`. Non-string ids are rejected too, and so
/// are values longer than [`MAX_TRACE_INFO_LEN`]/[`MAX_TRACE_HMAC_LEN`].
///
/// ```
/// use osprofiler_core::headers::{signed_pack, signed_unpack, TraceData};
/// let h = signed_pack(&TraceData { base_id: "b".into(), parent_id: None }, "new");
/// let v = signed_unpack(&h.x_trace_info, &h.x_trace_hmac, &["old", "new"]).unwrap();
/// assert!(v.base_id == "b" && &*v.hmac_key == "new");
/// assert!(signed_unpack(&h.x_trace_info, &h.x_trace_hmac, &["old"]).is_none());
/// ```
pub fn signed_unpack<K: AsRef<str>>(info: &str, hmac: &str, hmac_keys: &[K]) -> Option<Verified> {
    signed_unpack_bytes(info.as_bytes(), hmac.as_bytes(), hmac_keys)
}

/// [`signed_unpack`] over raw header bytes (which need not be UTF-8).
pub fn signed_unpack_bytes<K: AsRef<str>>(
    info: &[u8],
    hmac: &[u8],
    hmac_keys: &[K],
) -> Option<Verified> {
    // The key that matched last on this thread is tried first, as `HmacKeys` does: during a
    // rotation most requests carry one of the keys, so a verification costs one MAC.
    thread_local! {
        static LAST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    let first = LAST.try_with(|l| l.get()).unwrap_or(0);
    let i = find_key(info, hmac, hmac_keys.len(), first, |i| {
        keyed_cached(hmac_keys[i].as_ref())
    })?;
    if i != first {
        let _ = LAST.try_with(|l| l.set(i));
    }
    verified(info, std::sync::Arc::from(hmac_keys[i].as_ref()))
}

/// The index of the key (of `n`, `mac(i)` keyed with the `i`-th) whose MAC the headers carry,
/// trying `first` and then the next ones round; `None` for headers over the size limits or a
/// malformed MAC.
fn find_key(
    info: &[u8],
    hmac: &[u8],
    n: usize,
    first: usize,
    mac: impl Fn(usize) -> Hmac<Sha1>,
) -> Option<usize> {
    if info.is_empty() || info.len() > MAX_TRACE_INFO_LEN || hmac.len() > MAX_TRACE_HMAC_LEN {
        return None;
    }
    let got = parse_mac(hmac.trim_ascii())?;
    (0..n)
        .map(|k| (first + k) % n)
        .find(|&i| digests_equal(&finish_raw(mac(i), info), &got))
}

/// The verified headers' ids, admitted by `hmac_key`.
fn verified(info: &[u8], hmac_key: std::sync::Arc<str>) -> Option<Verified> {
    let (base_id, parent_id) = decode(info)?;
    Some(Verified {
        base_id,
        parent_id,
        hmac_key,
        provisional: None,
    })
}

/// Decodes base64 the way Python's `urlsafe_b64decode` does (either alphabet, characters
/// outside the alphabet skipped, padding required), then the JSON object.
fn decode(info: &[u8]) -> Option<(Id, Option<Id>)> {
    // What we and Python send is canonical URL-safe base64: decoded with SIMD into a stack
    // buffer (a header is ~110 bytes decoded). Anything else takes Python's lenient path,
    // which decodes canonical input to the same bytes.
    let mut stack = [0u8; 512];
    let heap;
    let simd = base64_simd::URL_SAFE;
    let fast = (simd.estimated_decoded_length(info.len()) <= stack.len())
        .then(|| {
            simd.decode(info, base64_simd::Out::from_slice(&mut stack))
                .ok()
        })
        .flatten();
    let raw: &[u8] = if let Some(raw) = fast {
        raw
    } else if let Ok(v) = LENIENT_URL_SAFE.decode(info) {
        heap = v;
        &heap
    } else {
        let cleaned: Vec<u8> = info
            .iter()
            .filter_map(|&b| match b {
                b'-' => Some(b'+'),
                b'_' => Some(b'/'),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => Some(b),
                _ => None,
            })
            .collect();
        heap = LENIENT_STANDARD.decode(cleaned).ok()?;
        &heap
    };
    if let Some(ids) = parse_uuids(raw) {
        return Some(ids);
    }
    if let Some(plain) = parse_plain(raw) {
        return plain.map(|(b, p)| (Id::from(b), p.map(Id::from)));
    }
    // Only `base_id` (required) and `parent_id`, both strings; anything else is rejected.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wire {
        base_id: String,
        parent_id: Option<String>,
    }
    let wire: Wire = serde_json::from_slice(raw).ok()?;
    Some((
        Id::from(wire.base_id.as_str()),
        wire.parent_id.as_deref().map(Id::from),
    ))
}

/// What OSProfiler (Python's `json.dumps`, and [`signed_pack`]) sends for two uuids, parsed
/// in one pass; `None` for any other text, which the general parsers then take.
fn parse_uuids(raw: &[u8]) -> Option<(Id, Option<Id>)> {
    let rest = raw.strip_prefix(JSON_HEAD)?;
    let base = crate::id::canonical_uuid(rest.get(..36)?)?;
    let rest = rest[36..].strip_prefix(JSON_MID)?;
    let parent = crate::id::canonical_uuid(rest.get(..36)?)?;
    (&rest[36..] == JSON_TAIL).then_some((Id::Uuid(base), Some(Id::Uuid(parent))))
}

/// The common case without serde: an object whose keys and string values contain no escapes
/// or control characters, in any layout. `None` means "not that simple": the caller then
/// parses with serde, so both paths accept and reject exactly the same texts.
#[allow(clippy::type_complexity)]
fn parse_plain(raw: &[u8]) -> Option<Option<(&str, Option<&str>)>> {
    if raw.contains(&b'\\') {
        return None;
    }
    let ws = |i: &mut usize| {
        while raw
            .get(*i)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            *i += 1;
        }
    };
    let string = |i: &mut usize| -> Option<&str> {
        if raw.get(*i) != Some(&b'"') {
            return None;
        }
        let start = *i + 1;
        let len = raw[start..].iter().position(|&b| b == b'"')?;
        let bytes = &raw[start..start + len];
        if bytes.iter().any(|&b| b < 0x20) {
            return None;
        }
        *i = start + len + 1;
        std::str::from_utf8(bytes).ok()
    };
    let mut i = 0;
    let (mut base, mut parent): (Option<&str>, Option<Option<&str>>) = (None, None);
    ws(&mut i);
    if raw.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        ws(&mut i);
        let key = string(&mut i)?;
        ws(&mut i);
        if raw.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        ws(&mut i);
        let value = if raw[i..].starts_with(b"null") {
            i += 4;
            None
        } else {
            Some(string(&mut i)?)
        };
        match (key, value) {
            ("base_id", Some(v)) if base.is_none() => base = Some(v),
            ("parent_id", v) if parent.is_none() => parent = Some(v),
            _ => return None, // unknown or repeated key, or a null base_id: serde decides
        }
        ws(&mut i);
        match raw.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    ws(&mut i);
    if i != raw.len() {
        return None;
    }
    Some(base.map(|b| (b, parent.flatten())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_keys_verify_through_the_schedule_cache_whatever_the_order() {
        let data = |i: usize| TraceData {
            base_id: format!("b{i}"),
            parent_id: None,
        };
        // More keys than the cache keeps, used in turns, each header checked against every
        // slice order: the key reported is always the signing one, and a key not in the slice
        // never verifies (a cached schedule is only used for the key it was made from).
        let keys: Vec<String> = (0..12).map(|i| format!("key-{i}")).collect();
        for round in 0..3 {
            for (i, k) in keys.iter().enumerate() {
                let h = signed_pack(&data(i + round), k);
                let mut order: Vec<&str> = keys.iter().map(String::as_str).collect();
                order.rotate_left((i * 5 + round) % keys.len());
                let v = signed_unpack(&h.x_trace_info, &h.x_trace_hmac, &order).unwrap();
                assert_eq!(&*v.hmac_key, k.as_str());
                assert_eq!(v.base_id, format!("b{}", i + round).as_str());
                let others: Vec<&str> = order.iter().copied().filter(|o| o != k).collect();
                assert!(signed_unpack(&h.x_trace_info, &h.x_trace_hmac, &others).is_none());
                // The same header against the pack of another key's text: never equal.
                assert_ne!(
                    h.x_trace_hmac,
                    signed_pack(&data(i + round), &keys[(i + 1) % 12]).x_trace_hmac
                );
            }
        }
    }

    #[test]
    fn keys_verify_whichever_matched_last_and_report_the_right_one() {
        let keys = HmacKeys::new(["new", "old", "older"]);
        let signed = |k: &str| {
            signed_pack(
                &TraceData {
                    base_id: "b".into(),
                    parent_id: None,
                },
                k,
            )
        };
        for k in ["old", "old", "new", "older", "new", "old"] {
            let h = signed(k);
            assert_eq!(
                &*keys
                    .verify(&h.x_trace_info, &h.x_trace_hmac)
                    .unwrap()
                    .hmac_key,
                k
            );
        }
        let h = signed("other");
        assert!(keys.verify(&h.x_trace_info, &h.x_trace_hmac).is_none());
        assert!(
            HmacKeys::new(Vec::<String>::new())
                .verify(&h.x_trace_info, &h.x_trace_hmac)
                .is_none()
        );
    }
    fn pack_raw(json: &str, key: &str) -> (String, String) {
        let info = base64_simd::URL_SAFE.encode_to_string(json);
        let mac = generate_hmac(&info, key);
        (info, mac)
    }

    #[test]
    fn rejects_what_python_rejects() {
        for json in [
            r#"{"base_id": "b", "parent_id": "p", "extra": 1}"#,
            r#"{"parent_id": "p"}"#,
            r#"["base_id"]"#,
            r#""base_id""#,
            r#"{"base_id": "b""#,
        ] {
            let (i, m) = pack_raw(json, "k");
            assert!(signed_unpack(&i, &m, &["k"]).is_none(), "{json}");
        }
    }

    #[test]
    fn accepts_what_python_accepts() {
        let (i, m) = pack_raw(r#"{"parent_id":"p","base_id":"b"}"#, "k");
        let v = signed_unpack(&i, &format!("  {m}\t"), &["x", "k"]).unwrap();
        assert_eq!(
            v,
            Verified {
                base_id: "b".into(),
                parent_id: Some("p".into()),
                hmac_key: "k".into(),
                provisional: None,
            }
        );
        let (i, m) = pack_raw(r#"{"base_id": "b"}"#, "k");
        assert_eq!(signed_unpack(&i, &m, &["k"]).unwrap().parent_id, None);
    }

    #[test]
    fn bad_mac_case_padding_and_size_are_untraced() {
        let (i, m) = pack_raw(r#"{"base_id": "b"}"#, "k");
        assert!(signed_unpack(&i, &m.to_uppercase(), &["k"]).is_none());
        assert!(signed_unpack(&i, "", &["k"]).is_none());
        assert!(signed_unpack(&i, &m, &[] as &[&str]).is_none());
        let unpadded = i.trim_end_matches('=');
        assert_ne!(unpadded, i);
        let m2 = generate_hmac(unpadded, "k");
        assert!(signed_unpack(unpadded, &m2, &["k"]).is_none());
        let huge = "A".repeat(MAX_TRACE_INFO_LEN + 4);
        assert!(signed_unpack(&huge, &generate_hmac(&huge, "k"), &["k"]).is_none());
        assert!(signed_unpack_bytes(&[0xff, 0xfe, 0x00], &[0xc3, 0x28], &["k"]).is_none());
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    /// The hand parser and serde agree on every text (the hand parser may defer).
    #[test]
    fn plain_parser_agrees_with_serde() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire {
            base_id: String,
            parent_id: Option<String>,
        }
        let serde = |t: &str| {
            serde_json::from_str::<Wire>(t)
                .ok()
                .map(|w| (w.base_id, w.parent_id))
        };
        for t in [
            r#"{"base_id": "b", "parent_id": "p"}"#,
            r#"{"parent_id":"p","base_id":"b"}"#,
            " \n{ \"base_id\" :\t\"b\" } \r\n",
            r#"{"base_id": "b", "parent_id": null}"#,
            r#"{"base_id": null}"#,
            r#"{"base_id": "b", "base_id": "c"}"#,
            r#"{"base_id": "b", "x": "y"}"#,
            r#"{"base_id": "b",}"#,
            r#"{"base_id": "b"} x"#,
            r#"{"base_id": 1}"#,
            r#"{"base_id": "é"}"#,
            "{\"base_id\": \"a\u{1}\"}",
            r#"{"base_id": "a\"b"}"#,
            r#"{}"#,
            r#"[]"#,
            r#"{"base_id": "b""#,
            r#"{"base_id": "b", "parent_id": nullx}"#,
            // The two-uuid fast path, and texts just off it.
            r#"{"base_id": "6f1c5b4e-2a3d-4c5b-8e9f-0a1b2c3d4e5f", "parent_id": "00000000-0000-4000-8000-00000000000a"}"#,
            r#"{"base_id": "6F1C5B4E-2A3D-4C5B-8E9F-0A1B2C3D4E5F", "parent_id": "00000000-0000-4000-8000-00000000000a"}"#,
            r#"{"base_id": "6f1c5b4e-2a3d-4c5b-8e9f-0a1b2c3d4e5f", "parent_id": "00000000-0000-4000-8000-00000000000a"} "#,
            r#"{"base_id": "6f1c5b4e-2a3d-4c5b-8e9f-0a1b2c3d4e5f", "parent_id": "00000000-0000-4000-8000-00000000000a""#,
            r#"{"base_id": "6f1c5b4e-2a3d-4c5b-8e9f-0a1b2c3d4e5f", "parent_id": "0000000000000-4000-8000-00000000000a"}"#,
            r#"{"base_id": "6f1c5b4e-2a3d-4c5b-8e9f-0a1b2c3d4e5f", "parent_id": null}"#,
            r#"{"base_id": "6f1c5b4e2a3d4c5b8e9f0a1b2c3d4e5f"}"#,
        ] {
            if let Some(fast) = parse_plain(t.as_bytes()) {
                let owned = fast.map(|(b, p)| (b.to_owned(), p.map(str::to_owned)));
                assert_eq!(owned, serde(t), "{t:?}");
            }
            if let Some((b, p)) = parse_uuids(t.as_bytes()) {
                assert!(
                    matches!((&b, &p), (Id::Uuid(_), Some(Id::Uuid(_)))),
                    "{t:?}"
                );
            }
            let full = decode(base64_simd::URL_SAFE.encode_to_string(t).as_bytes())
                .map(|(b, p)| (b.to_string(), p.map(|p| p.to_string())));
            assert_eq!(full, serde(t), "{t:?}");
        }
    }
}
