//! Traces that start themselves: head sampling at the edge, and tail keep of slow or failed
//! requests.
//!
//! Python OSProfiler traces a request only when its caller sends signed trace headers: an
//! operator asks for one trace, and gets it. That model is untouched here. A [`Sampler`] adds
//! two more, for requests that come *without* signed headers, at a service's edge (the HTTP
//! server layer and the RPC server take one):
//!
//! - **Head sampling** (`sample_ratio`, `sample_max_per_second`): a share of those requests
//!   starts a trace, stored like any other. Whether a request is in the share is a pure
//!   function of the new trace's base id ([`head_sampled`]), so it can be checked afterwards;
//!   the cap is a token bucket on top of it.
//! - **Tail keep** (`keep_slow_ms`, `keep_errors`, `tail_ratio`): a share of those requests
//!   (all, by default) starts a *provisional* trace. Its points are recorded, by every service
//!   it reaches, but the collector stores them hidden from readers. The trace is kept — shown,
//!   with every point stored for it before or after — when its root request took at least
//!   `keep_slow_ms`, or when any service recorded an error point in it (a failed query, a 5xx,
//!   a panic in a handler; with `keep_errors`, on by default with `keep_slow_ms`), or when code
//!   calls [`keep`]. A provisional trace not kept within the staging window
//!   (`staging_window`, default 60 s) is removed by the collector's sweep, whoever wrote its
//!   points.
//!
//! A provisional trace's base id says so: it is a UUID whose third group is `8f5b` (version
//! 8, RFC 9562's form for ids of one's own; [`is_provisional_id`]). Readers hide a trace with
//! such an id unless a keep is recorded for it, so that the points a service writes straight
//! to the store — Python's, before any of this service's batches has landed — are never seen
//! as a trace of their own while the trace is being decided.
//!
//! Callees learn that a trace is provisional from the `X-Trace-Provisional` header (or the
//! `osprofiler_provisional` entry of an RPC context) sent next to the usual signed ones; a
//! callee whose collector cannot stage does not trace it at all. A request with signed headers
//! and no such header is traced and stored as always, whatever the sampler says.
//!
//! Python OSProfiler services downstream of a provisional trace ignore that header: they trace
//! the request as usual and write its points straight to their collector. When that is the
//! store the Rust services stage in (the same SQL database or Redis), their points are hidden
//! and kept or removed with the rest of the trace.
//!
//! ```
//! use osprofiler_core::sampling::{Sampler, head_sampled};
//! use std::time::Duration;
//! let sampler = Sampler::new()
//!     .ratio(0.01) // one unsigned request in a hundred traced and stored
//!     .max_per_second(10.0) // at most ten a second
//!     .keep_slow(Duration::from_millis(500)); // the others recorded, kept when slow or failed
//! assert!(sampler.is_active());
//! // The decision is reproducible from the base id alone.
//! assert_eq!(head_sampled("4d0a6f0e-9d1c-4b3a-8f5e-2a7c1b9d3e11", 1.0), true);
//! assert_eq!(head_sampled("4d0a6f0e-9d1c-4b3a-8f5e-2a7c1b9d3e11", 0.0), false);
//! ```

use crate::context::{Frame, Root};
use crate::id::Id;
use crate::message::{IntoInfo, Phase};
use crate::{Trace, switches};
use sha1::{Digest, Sha1};
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The name of the header that marks a trace as provisional, next to `X-Trace-Info` and
/// `X-Trace-HMAC`.
pub const X_TRACE_PROVISIONAL: &str = "X-Trace-Provisional";

/// The RPC request context entry that marks a trace as provisional, next to `trace_info`.
pub const CONTEXT_KEY: &str = "osprofiler_provisional";

/// The third group of a provisional trace's base id (see [`is_provisional_id`]).
const PROVISIONAL_GROUP: &[u8; 4] = b"8f5b";

/// Whether `base_id` is the id of a provisional trace: a lowercase, dashed UUID whose third
/// group is `8f5b` (version 8, the 12 bits after the version fixed), the form a [`Sampler`]
/// gives the traces it starts provisionally. Collectors that stage hide such a trace until a
/// keep is recorded for it, whoever wrote its points. Head-sampled and signed traces keep
/// their uuid4 ids.
///
/// ```
/// use osprofiler_core::sampling::is_provisional_id;
/// assert!(is_provisional_id("0f9e8d7c-6b5a-8f5b-9c8d-7e6f5a4b3c2d"));
/// assert!(!is_provisional_id("0f9e8d7c-6b5a-4f5b-9c8d-7e6f5a4b3c2d")); // a uuid4
/// assert!(!is_provisional_id("8f5b"));
/// ```
pub fn is_provisional_id(base_id: &str) -> bool {
    let b = base_id.as_bytes();
    b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && &b[14..18] == PROVISIONAL_GROUP
}

/// A provisional trace's id made from a fresh uuid4: its version and the 12 bits after it
/// become `8f5b` (110 random bits remain).
fn provisional_id(id: Id) -> Id {
    match id {
        Id::Uuid(u) => {
            let mut bytes = *u.as_bytes();
            bytes[6] = 0x8f;
            bytes[7] = 0x5b;
            Id::Uuid(uuid::Uuid::from_bytes(bytes))
        }
        text => text,
    }
}

/// Bits of a message's staging flags.
pub(crate) mod flags {
    /// The trace is provisional.
    pub(crate) const PROVISIONAL: u8 = 1;
    /// An error point keeps it.
    pub(crate) const KEEP_ERRORS: u8 = 2;
    /// Keep it (a reason was found in this process).
    pub(crate) const KEEP: u8 = 4;
    /// The start of the root point of the process that started the provisional trace.
    pub(crate) const ORIGIN_START: u8 = 8;
    /// The stop of that point.
    pub(crate) const ORIGIN_END: u8 = 16;
}

/// What a callee learns about a provisional trace from its caller: the
/// `X-Trace-Provisional` header's value (or the RPC context entry's).
///
/// The header is not signed. It is honoured only next to valid signed trace headers, and it
/// gives a caller who could send those nothing more: it can only make a trace it could start
/// anyway provisional, or (on the path of a request) store for good what would have been
/// staged.
///
/// ```
/// use osprofiler_core::sampling::Provisional;
/// let p = Provisional { keep_errors: true };
/// assert_eq!(p.header_value(), "keep=errors");
/// assert_eq!(Provisional::parse("keep=errors"), Some(p));
/// assert_eq!(Provisional::parse("keep=none"), Some(Provisional { keep_errors: false }));
/// // A value this version does not know: provisional, and errors keep it (the safe side).
/// assert_eq!(Provisional::parse("keep=slow,errors,later"), Some(Provisional { keep_errors: true }));
/// assert_eq!(Provisional::parse(""), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisional {
    /// Whether an error point recorded by the callee keeps the trace.
    pub keep_errors: bool,
}

impl Provisional {
    /// The header's value: `keep=errors` or `keep=none`.
    pub fn header_value(self) -> &'static str {
        if self.keep_errors {
            "keep=errors"
        } else {
            "keep=none"
        }
    }

    /// Reads a header value; `None` when empty (not provisional).
    pub fn parse(value: &str) -> Option<Provisional> {
        let v = value.trim();
        if v.is_empty() {
            return None;
        }
        Some(Provisional {
            keep_errors: !v.eq_ignore_ascii_case("keep=none"),
        })
    }

    pub(crate) fn of_flags(flags: u8) -> Option<Provisional> {
        (flags & flags::PROVISIONAL != 0).then_some(Provisional {
            keep_errors: flags & flags::KEEP_ERRORS != 0,
        })
    }
}

/// A trace's staging state in this process (in its [`Root`]).
pub(crate) struct Staging {
    flags: AtomicU8,
    /// This process started the trace: its top point is the trace's root request.
    origin: bool,
    keep_slow: Option<Duration>,
    started: Instant,
}

impl Staging {
    pub(crate) fn flags(&self) -> u8 {
        self.flags.load(Relaxed)
    }

    /// The flags of a message `frame` emits in `phase`: the origin's top point's start and
    /// stop are marked, and its stop says whether the request was slow enough to keep.
    #[cold]
    pub(crate) fn message_flags(&self, frame: &Frame, phase: Phase) -> u8 {
        let mut f = self.flags();
        if self.origin && frame.is_top_point() {
            match phase {
                Phase::Start => f |= flags::ORIGIN_START,
                Phase::Stop => {
                    f |= flags::ORIGIN_END;
                    if self
                        .keep_slow
                        .is_some_and(|slow| self.started.elapsed() >= slow)
                    {
                        f |= flags::KEEP;
                        self.flags.fetch_or(flags::KEEP, Relaxed);
                    }
                }
            }
        }
        f
    }
}

/// How a process's requests without signed headers are traced (see the [module](self)).
/// Cheap to clone; the default samples nothing.
#[derive(Clone, Default)]
pub struct Sampler {
    inner: Option<Arc<Inner>>,
}

#[derive(Clone)]
struct Inner {
    ratio: f64,
    max_per_second: Option<f64>,
    bucket: Arc<Mutex<Bucket>>,
    tail: Option<Tail>,
}

#[derive(Clone, Copy)]
struct Tail {
    ratio: Option<f64>,
    keep_slow: Option<Duration>,
    keep_errors: Option<bool>,
}

impl Tail {
    fn keep_errors(&self) -> bool {
        self.keep_errors.unwrap_or(true)
    }
}

struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Sampler");
        if let Some(i) = &self.inner {
            d.field("ratio", &i.ratio)
                .field("max_per_second", &i.max_per_second);
            if let Some(t) = &i.tail {
                d.field("tail_ratio", &t.ratio.unwrap_or(1.0))
                    .field("keep_slow", &t.keep_slow)
                    .field("keep_errors", &t.keep_errors());
            }
        }
        d.finish()
    }
}

/// What a [`Sampler`] decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not traced.
    Untraced,
    /// Traced and stored, as a signed request.
    Sampled,
    /// Traced provisionally: kept only if slow or failed.
    Provisional,
}

/// A number in `[0, 1)` drawn from `base_id`: the first (`second` false) or second 8 bytes of
/// the SHA-1 of its text, big-endian, over 2⁶⁴.
fn draw(base_id: &str, second: bool) -> f64 {
    let digest = Sha1::digest(base_id.as_bytes());
    let at = if second { 8 } else { 0 };
    let x = u64::from_be_bytes(digest[at..at + 8].try_into().expect("8 bytes"));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a request whose new trace has this `base_id` is in the head-sampled share `ratio`:
/// the first 8 bytes of the SHA-1 of the id's text, read as a big-endian integer, are below
/// `ratio` × 2⁶⁴ (at 53 bits of precision). A pure function, so a stored trace's decision can
/// be checked — in Python too: `int(hashlib.sha1(base_id.encode()).hexdigest()[:16], 16) >> 11
/// < ratio * 2**53`.
///
/// ```
/// use osprofiler_core::sampling::head_sampled;
/// let ids: Vec<String> = (0..1000).map(|i| format!("trace-{i}")).collect();
/// let n = ids.iter().filter(|id| head_sampled(id, 0.25)).count();
/// assert!((200..300).contains(&n), "{n}");
/// assert!(ids.iter().all(|id| head_sampled(id, 0.25) == head_sampled(id, 0.25)));
/// ```
pub fn head_sampled(base_id: &str, ratio: f64) -> bool {
    draw(base_id, false) < ratio
}

/// Whether a request whose new trace has this `base_id` is in the provisionally traced share
/// `ratio` (`tail_ratio`): as [`head_sampled`], from the SHA-1's second 8 bytes, so that the
/// two shares are independent.
pub fn tail_sampled(base_id: &str, ratio: f64) -> bool {
    draw(base_id, true) < ratio
}

fn unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

impl Sampler {
    /// A sampler that traces nothing; add shares with the other methods.
    pub fn new() -> Sampler {
        Sampler::default()
    }

    fn with(mut self, set: impl FnOnce(&mut Inner)) -> Sampler {
        let inner = self.inner.get_or_insert_with(|| {
            Arc::new(Inner {
                ratio: 0.0,
                max_per_second: None,
                bucket: Arc::new(Mutex::new(Bucket {
                    tokens: 0.0,
                    last: None,
                })),
                tail: None,
            })
        });
        set(Arc::make_mut(inner));
        self
    }

    fn with_tail(self, set: impl FnOnce(&mut Tail)) -> Sampler {
        self.with(|i| {
            set(i.tail.get_or_insert(Tail {
                ratio: None,
                keep_slow: None,
                keep_errors: None,
            }))
        })
    }

    /// The share of requests without signed headers that start a trace stored for good
    /// (`sample_ratio`), clamped to `[0, 1]`.
    pub fn ratio(self, ratio: f64) -> Sampler {
        self.with(|i| i.ratio = unit(ratio))
    }

    /// At most this many head-sampled traces a second (`sample_max_per_second`; a token bucket
    /// holding one second's worth). Requests over the cap are not head-sampled (they may still
    /// be traced provisionally). Not positive: no cap.
    pub fn max_per_second(self, n: f64) -> Sampler {
        self.with(|i| i.max_per_second = (n > 0.0 && n.is_finite()).then_some(n))
    }

    /// Keeps a provisional trace whose root request took at least `slow` (`keep_slow_ms`).
    /// Turns tail keep on, with [`Sampler::keep_errors`] on unless set.
    pub fn keep_slow(self, slow: Duration) -> Sampler {
        self.with_tail(|t| t.keep_slow = Some(slow))
    }

    /// Keeps a provisional trace in which any service recorded an error point
    /// (`keep_errors`). `true` turns tail keep on.
    pub fn keep_errors(self, on: bool) -> Sampler {
        self.with_tail(|t| t.keep_errors = Some(on))
    }

    /// The share of requests without signed headers (and not head-sampled) traced
    /// provisionally (`tail_ratio`, default 1: all), clamped to `[0, 1]`. Has effect only
    /// with tail keep on.
    pub fn tail_ratio(self, ratio: f64) -> Sampler {
        self.with_tail(|t| t.ratio = Some(unit(ratio)))
    }

    /// The sampler the `[profiler]` options describe: `sample_ratio`,
    /// `sample_max_per_second`, `keep_slow_ms`, `keep_errors`, `tail_ratio`.
    ///
    /// ```
    /// use osprofiler_core::{ProfilerConfig, sampling::Sampler};
    /// let conf = ProfilerConfig::from_ini_str("[profiler]\nsample_ratio = 0.1\nkeep_slow_ms = 250\n").unwrap();
    /// let s = Sampler::from_conf(&conf);
    /// assert!(s.is_active() && s.keeps());
    /// assert!(!Sampler::from_conf(&ProfilerConfig::default()).is_active());
    /// ```
    pub fn from_conf(conf: &crate::ProfilerConfig) -> Sampler {
        let mut s = Sampler::new();
        if conf.sample_ratio > 0.0 {
            s = s.ratio(conf.sample_ratio);
        }
        if let Some(n) = conf.sample_max_per_second {
            s = s.max_per_second(n);
        }
        if let Some(ms) = conf.keep_slow_ms {
            s = s.keep_slow(Duration::from_millis(ms));
        }
        if let Some(on) = conf.keep_errors {
            s = s.keep_errors(on);
        }
        if let Some(r) = conf.tail_ratio {
            s = s.tail_ratio(r);
        }
        s
    }

    /// Whether it traces any request without signed headers.
    pub fn is_active(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.ratio > 0.0 || self.keeps())
    }

    /// Whether it traces requests provisionally (tail keep on: `keep_slow_ms`, or
    /// `keep_errors = true`): then the service's collector must stage.
    pub fn keeps(&self) -> bool {
        self.tail().is_some()
    }

    /// Tail keep, when on and with a reason to keep.
    fn tail(&self) -> Option<&Tail> {
        let t = self.inner.as_ref()?.tail.as_ref()?;
        (t.keep_slow.is_some() || t.keep_errors == Some(true)).then_some(t)
    }

    /// The decision for a request whose new trace would have `base_id`. Head sampling first
    /// (a pure function of the id, then the cap), then the tail share.
    pub fn decide(&self, base_id: &str) -> Decision {
        let Some(i) = &self.inner else {
            return Decision::Untraced;
        };
        if i.ratio > 0.0 && head_sampled(base_id, i.ratio) && self.take_token(i) {
            return Decision::Sampled;
        }
        match self.tail() {
            Some(t) if tail_sampled(base_id, t.ratio.unwrap_or(1.0)) => Decision::Provisional,
            _ => Decision::Untraced,
        }
    }

    fn take_token(&self, i: &Inner) -> bool {
        let Some(rate) = i.max_per_second else {
            return true;
        };
        let mut b = i.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = b
            .last
            .map_or(rate, |l| now.duration_since(l).as_secs_f64() * rate);
        b.tokens = (b.tokens + refill).min(rate.max(1.0));
        b.last = Some(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// For a request that came without (valid) signed trace headers: decides, and when it is
    /// traced starts its trace with its first point `name` open, not installed anywhere (what
    /// server middleware does; see [`crate::headers::Verified::start_point`]). Onward calls
    /// are signed with `hmac_key` (copied only for a request it traces). An inactive guard when the request is not traced, when
    /// profiling is disabled, or when it would be provisional and the notifier does not
    /// stage ([`crate::notifier::Notifier::stages`]; logged once).
    ///
    /// ```
    /// use osprofiler_core::{Info, sampling::Sampler};
    /// use std::sync::Arc;
    /// let all = Sampler::new().ratio(1.0);
    /// let point = all.start_point("key", "wsgi", Info::new);
    /// assert!(point.is_active());
    /// let none = Sampler::new();
    /// assert!(!none.start_point("key", "wsgi", Info::new).is_active());
    /// ```
    pub fn start_point<N, F, I>(&self, hmac_key: &str, name: N, info: F) -> Trace
    where
        N: Into<Cow<'static, str>>,
        F: FnOnce() -> I,
        I: IntoInfo,
    {
        if self.inner.is_none() || !switches::is_enabled() {
            return Trace::inactive();
        }
        let mut base_id = Id::new_v4();
        let staging = match base_id.with_text(|b| self.decide(b)) {
            Decision::Untraced => return Trace::inactive(),
            Decision::Sampled => None,
            Decision::Provisional => {
                let t = self.tail().expect("provisional only with tail keep");
                let mut f = flags::PROVISIONAL;
                if t.keep_errors() {
                    f |= flags::KEEP_ERRORS;
                }
                base_id = provisional_id(base_id);
                Some(Staging {
                    flags: AtomicU8::new(f),
                    origin: true,
                    keep_slow: t.keep_slow,
                    started: Instant::now(),
                })
            }
        };
        crate::Profiler::root_point(
            Arc::from(hmac_key),
            Some(base_id),
            None,
            name.into(),
            info,
            staging,
        )
    }
}

impl Staging {
    /// The staging state of a trace a caller marked provisional, in a callee.
    pub(crate) fn callee(p: Provisional) -> Staging {
        let mut f = flags::PROVISIONAL;
        if p.keep_errors {
            f |= flags::KEEP_ERRORS;
        }
        Staging {
            flags: AtomicU8::new(f),
            origin: false,
            keep_slow: None,
            started: Instant::now(),
        }
    }
}

/// Said once: a provisional trace was not recorded because the notifier does not stage.
pub(crate) fn warn_no_staging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::warn!(
            "osprofiler: a provisional trace (started by a sampler with keep_slow_ms/keep_errors, \
             or continued for a caller's X-Trace-Provisional) runs untraced: the notifier's \
             collector does not stage provisional traces (see Notifier::stages and \
             QueueOptions::keep_traces)"
        );
    });
}

/// Keeps the current trace if it is provisional: the next message this process sends for it
/// (at the latest the stop of the innermost open point) carries the keep, and the collector
/// then shows the whole trace, every service's points included. For a reason to keep that
/// only your code knows (a rare customer, a suspicious result). Nothing happens for a trace
/// stored anyway, or without a trace.
///
/// ```
/// osprofiler_core::sampling::keep(); // no trace: nothing to do
/// ```
pub fn keep() {
    if let Some(p) = crate::get()
        && let Some(s) = &p.frame.root.staging
    {
        s.flags.fetch_or(flags::KEEP, Relaxed);
    }
}

/// What a callee is told about the current trace when it is provisional (kept or not yet):
/// what `X-Trace-Provisional` carries, and the RPC context's `osprofiler_provisional`.
///
/// ```
/// assert!(osprofiler_core::sampling::current().is_none()); // no trace
/// ```
pub fn current() -> Option<Provisional> {
    Provisional::of_flags(crate::get()?.frame.root.staging_flags())
}

fn global() -> &'static RwLock<Sampler> {
    static GLOBAL: RwLock<Sampler> = RwLock::new(Sampler { inner: None });
    &GLOBAL
}

/// Installs the process-wide sampler (what [`crate::init_from_conf`] does with the
/// `[profiler]` options); server layers built with `from_global` read it.
pub fn set_global(sampler: Sampler) {
    *global().write().unwrap_or_else(|e| e.into_inner()) = sampler;
}

/// The process-wide sampler (samples nothing until [`set_global`]).
pub fn global_sampler() -> Sampler {
    global().read().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Root {
    /// The flags every message of this trace carries (0: stored for good).
    #[inline]
    pub(crate) fn staging_flags(&self) -> u8 {
        match &self.staging {
            None => 0,
            Some(s) => s.flags(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{self, Dispatch};
    use crate::headers::HmacKeys;
    use crate::memory::MemoryCollector;
    use crate::notifier::{
        DriverError, Notifier, QueueNotifier, QueueOptions, Reader, TraceState, Writer,
    };
    use crate::{Info, message::Message};

    const WINDOW: Duration = Duration::from_millis(300);

    /// A service: a staging in-memory store behind a queue, in a dispatch of its own.
    fn service() -> (Arc<MemoryCollector>, Arc<QueueNotifier>, Dispatch) {
        let memory = MemoryCollector::new();
        let n = QueueNotifier::start(
            memory.clone(),
            QueueOptions {
                staging_window: WINDOW,
                keep_traces: true,
                ..QueueOptions::default()
            },
        )
        .unwrap();
        let d = Dispatch::new(n.clone()).enabled(true);
        (memory, n, d)
    }

    /// Runs one request through `sampler` (its root point, with `body` inside); the base id.
    fn request(d: &Dispatch, sampler: &Sampler, body: impl FnOnce()) -> Option<String> {
        dispatch::with_default(d, || {
            let point = sampler.start_point("key", "wsgi", Info::new);
            let p = point.profiler()?;
            crate::scope::with_trace(Some(p.clone()), body);
            drop(point);
            Some(p.base_id().to_string())
        })
    }

    fn listed(memory: &MemoryCollector) -> Vec<String> {
        memory
            .list_traces()
            .unwrap()
            .into_iter()
            .map(|t| t.base_id)
            .collect()
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn head_sampling_takes_its_share_and_is_a_function_of_the_id() {
        let s = Sampler::new().ratio(0.25);
        let ids: Vec<String> = (0..4000).map(|_| Id::new_v4().to_string()).collect();
        let sampled = ids
            .iter()
            .filter(|id| s.decide(id) == Decision::Sampled)
            .count();
        // Mean 1000, sd 27.4: ± 5 sd.
        assert!((863..=1137).contains(&sampled), "{sampled}");
        for id in &ids {
            assert_eq!(s.decide(id) == Decision::Sampled, head_sampled(id, 0.25));
        }
        // The tail share is drawn independently of the head share.
        let both = ids
            .iter()
            .filter(|id| head_sampled(id, 0.5) && tail_sampled(id, 0.5))
            .count();
        assert!((880..=1120).contains(&both), "{both}");
        assert_eq!(
            Sampler::new().decide(&ids[0]),
            Decision::Untraced,
            "nothing by default"
        );
        assert!(!Sampler::new().ratio(f64::NAN).is_active());
        assert!(ids.iter().all(|id| head_sampled(id, 1.0)));
    }

    #[test]
    fn the_cap_is_a_token_bucket() {
        let s = Sampler::new().ratio(1.0).max_per_second(5.0);
        let ids: Vec<String> = (0..200).map(|_| Id::new_v4().to_string()).collect();
        let start = Instant::now();
        let sampled = ids
            .iter()
            .filter(|id| s.decide(id) == Decision::Sampled)
            .count();
        let secs = start.elapsed().as_secs_f64();
        assert!(
            sampled >= 5 && sampled as f64 <= 5.0 + 5.0 * secs + 1.0,
            "{sampled} in {secs} s"
        );
        // Over the cap, a tail keep still traces provisionally.
        let s = s.keep_slow(Duration::from_secs(1));
        let provisional = ids
            .iter()
            .filter(|id| s.decide(id) == Decision::Provisional)
            .count();
        assert!(provisional >= 190, "{provisional}");
    }

    #[test]
    fn options_make_the_sampler() {
        let conf = crate::ProfilerConfig::from_ini_str(
            "[profiler]\nkeep_errors = true\ntail_ratio = 0.5\n",
        )
        .unwrap();
        let s = Sampler::from_conf(&conf);
        assert!(s.keeps() && s.is_active());
        let conf = crate::ProfilerConfig::from_ini_str("[profiler]\ntail_ratio = 0.5\n").unwrap();
        assert!(!Sampler::from_conf(&conf).is_active(), "no reason to keep");
        assert_eq!(conf.inert_options()[0].0, "tail_ratio");
        let e = crate::ProfilerConfig::from_ini_str("[profiler]\nsample_ratio = 2\n").unwrap_err();
        assert_eq!(e.option, "sample_ratio");
        let e = crate::ProfilerConfig::from_ini_str("[profiler]\nkeep_slow_ms = -1\n").unwrap_err();
        assert_eq!(e.option, "keep_slow_ms");
    }

    #[test]
    fn a_provisional_trace_is_hidden_then_removed_unless_kept() {
        let (memory, n, d) = service();
        let sampler = Sampler::new().keep_slow(Duration::from_secs(5));
        let dropped = request(&d, &sampler, || {
            crate::Trace::new("db", Info::new).finish();
        })
        .unwrap();
        assert!(is_provisional_id(&dropped), "{dropped}");
        assert!(n.flush_for(Duration::from_secs(5)));
        assert_eq!(memory.trace(&dropped).len(), 4, "recorded");
        assert!(listed(&memory).is_empty(), "hidden from readers");
        assert_eq!(memory.trace_state(&dropped).unwrap(), TraceState::Pending);
        let p = n.stats().provisional;
        assert_eq!((p.started, p.kept, p.dropped), (1, 0, 1));
        wait_until("the sweep", || memory.trace(&dropped).is_empty());
        wait_until("the expired count", || n.stats().provisional.expired == 1);
    }

    #[test]
    fn slow_roots_errors_and_keep_calls_keep_the_trace() {
        let (memory, n, d) = service();
        let slow = Sampler::new().keep_slow(Duration::from_millis(30));
        let slow_id = request(&d, &slow, || std::thread::sleep(Duration::from_millis(40))).unwrap();
        let failed_id = request(&d, &slow, || {
            let mut p = crate::Trace::new("db", Info::new);
            p.error_with("OperationalError", "no such table");
        })
        .unwrap();
        let kept_id = request(&d, &slow, keep).unwrap();
        // Errors keep only with keep_errors.
        let no_errors = slow.clone().keep_errors(false);
        let ignored = request(&d, &no_errors, || {
            let mut p = crate::Trace::new("db", Info::new);
            p.error_with("OperationalError", "no such table");
        })
        .unwrap();
        assert!(n.flush_for(Duration::from_secs(5)));
        let mut want = vec![slow_id.clone(), failed_id.clone(), kept_id.clone()];
        want.sort();
        let mut got = listed(&memory);
        got.sort();
        assert_eq!(got, want);
        assert_eq!(memory.trace_state(&ignored).unwrap(), TraceState::Pending);
        let p = n.stats().provisional;
        assert_eq!((p.started, p.kept, p.dropped), (4, 3, 1));
        wait_until("the sweep", || memory.trace(&ignored).is_empty());
        for id in [&slow_id, &failed_id, &kept_id] {
            assert!(!memory.trace(id).is_empty(), "{id} kept past the window");
        }
    }

    #[test]
    fn a_callee_continues_a_provisional_trace_and_its_error_keeps_it() {
        let (memory, n, d) = service();
        let sampler = Sampler::new().keep_slow(Duration::from_secs(5));
        let keys = HmacKeys::new(["key"]);
        // The caller's request: its outgoing headers say the trace is provisional.
        let mut sent = None;
        let base = request(&d, &sampler, || {
            let h = crate::trace_headers().unwrap();
            assert_eq!(h.x_trace_provisional, Some("keep=errors"));
            assert_eq!(current(), Some(Provisional { keep_errors: true }));
            sent = Some(h);
        })
        .unwrap();
        let h = sent.unwrap();
        // The callee (here the same store): its error keeps the whole trace.
        let mut v = keys.verify(&h.x_trace_info, &h.x_trace_hmac).unwrap();
        v.provisional = h.x_trace_provisional.and_then(Provisional::parse);
        dispatch::with_default(&d, || {
            let mut point = v.start_point("wsgi", Info::new);
            assert!(point.is_active());
            point.error_with("HTTPServerError", "500");
        });
        assert!(n.flush_for(Duration::from_secs(5)));
        assert_eq!(listed(&memory), std::slice::from_ref(&base));
        assert_eq!(memory.trace(&base).len(), 4);
        let p = n.stats().provisional;
        // Kept by the callee's error; the caller's root had finished with no reason of its own.
        assert_eq!((p.started, p.kept, p.dropped), (1, 1, 1));
        // Signed headers without X-Trace-Provisional: stored as always.
        v.provisional = None;
        let signed = dispatch::with_default(&d, || {
            let point = v.start_point("wsgi", Info::new);
            point.profiler().unwrap().base_id().to_string()
        });
        assert_eq!(memory.trace_state(&signed).unwrap(), TraceState::Stored);
    }

    /// A collector that cannot stage.
    struct NoStaging(Arc<MemoryCollector>);
    impl Writer for NoStaging {
        fn name(&self) -> &str {
            "nostaging"
        }
        fn notify(&self, batch: &[Message]) -> Result<(), DriverError> {
            self.0.notify(batch)
        }
    }

    #[test]
    fn a_service_whose_collector_cannot_stage_records_no_provisional_trace() {
        let memory = MemoryCollector::new();
        let e = QueueNotifier::start(
            Arc::new(NoStaging(memory.clone())),
            QueueOptions {
                keep_traces: true,
                ..QueueOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("the nostaging collector cannot stage"),
            "{e}"
        );
        let e = QueueNotifier::start(
            Arc::new(NoStaging(memory.clone())),
            QueueOptions {
                retention: Some(Duration::from_secs(60)),
                ..QueueOptions::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot delete old traces"), "{e}");
        // A callee with such a collector: a provisional request runs untraced, a signed one
        // as always.
        let n =
            QueueNotifier::start(Arc::new(NoStaging(memory.clone())), Default::default()).unwrap();
        assert!(!n.stages());
        let d = Dispatch::new(n.clone()).enabled(true);
        let h = crate::headers::signed_pack(
            &crate::headers::TraceData {
                base_id: "b".into(),
                parent_id: None,
            },
            "key",
        );
        let mut v = HmacKeys::new(["key"])
            .verify(&h.x_trace_info, &h.x_trace_hmac)
            .unwrap();
        v.provisional = Some(Provisional { keep_errors: true });
        dispatch::with_default(&d, || {
            assert!(!v.start_point("wsgi", Info::new).is_active());
            assert!(v.profiler().is_none());
            let sampler = Sampler::new().keep_slow(Duration::ZERO);
            assert!(!sampler.start_point("key", "wsgi", Info::new).is_active());
            v.provisional = None;
            assert!(v.start_point("wsgi", Info::new).is_active());
        });
    }

    #[test]
    fn points_written_before_the_trace_is_staged_are_hidden_by_its_id() {
        // What a Python callee writes straight to the store: no flag, only the trace's id.
        let (memory, n, d) = service();
        let provisional = provisional_id(Id::new_v4()).to_string();
        let plain = Id::new_v4().to_string();
        for base in [&provisional, &plain] {
            dispatch::with_default(&d, || {
                let p = crate::Profiler::new_root("key", Some(base), None).unwrap();
                crate::scope::with_trace(Some(p), || {
                    crate::Trace::new("wsgi", Info::new).finish();
                });
            });
        }
        assert!(n.flush_for(Duration::from_secs(5)));
        assert_eq!(memory.trace(&provisional).len(), 2);
        assert_eq!(listed(&memory), std::slice::from_ref(&plain));
        assert_eq!(
            memory.trace_state(&provisional).unwrap(),
            TraceState::Pending
        );
        memory.keep(&[&provisional]).unwrap();
        assert_eq!(
            memory.trace_state(&provisional).unwrap(),
            TraceState::Stored
        );
        assert_eq!(listed(&memory).len(), 2);
    }

    #[test]
    fn the_worker_prunes_traces_older_than_the_retention() {
        let memory = MemoryCollector::new();
        let now = crate::clock::system_micros(std::time::SystemTime::now());
        let message = |base: &str, age: Duration| Message {
            base_id: Id::from(base),
            identity: crate::identity(),
            name: "wsgi".into(),
            phase: Phase::Start,
            trace_id: Id::new_v4(),
            parent_id: Id::from(base),
            stamp: crate::clock::Stamp::Micros(now - age.as_micros() as i64),
            info: Info::new(),
            function: None,
            lazy: None,
            staging: 0,
            queued_bytes: 0,
        };
        let hour = Duration::from_secs(3600);
        memory
            .notify(&[
                message("old", 2 * hour),
                message("recent", 2 * hour),
                message("recent", Duration::from_secs(5)),
            ])
            .unwrap();
        let _n = QueueNotifier::start(
            memory.clone(),
            QueueOptions {
                retention: Some(hour),
                ..QueueOptions::default()
            },
        )
        .unwrap();
        wait_until("the first prune", || memory.trace("old").is_empty());
        assert_eq!(
            memory.trace("recent").len(),
            2,
            "a newer point keeps it whole"
        );
        let e = QueueNotifier::start(
            memory.clone(),
            QueueOptions {
                retention: Some(Duration::from_secs(30)),
                ..QueueOptions::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("less than a minute"), "{e}");
    }

    #[test]
    fn head_sampled_traces_are_stored_at_once() {
        let (memory, n, d) = service();
        let base = request(&d, &Sampler::new().ratio(1.0), || {
            assert!(
                crate::trace_headers()
                    .unwrap()
                    .x_trace_provisional
                    .is_none()
            );
        })
        .unwrap();
        assert!(!is_provisional_id(&base), "a uuid4: {base}");
        assert!(n.flush_for(Duration::from_secs(5)));
        assert_eq!(listed(&memory), [base]);
        assert_eq!(n.stats().provisional.started, 0);
    }
}
