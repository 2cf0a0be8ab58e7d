//! # osprofiler-tracing
//!
//! A [`tracing_subscriber::Layer`] that makes the spans a service already has — its
//! `#[instrument]` functions, tower-http's `TraceLayer`, the spans of the libraries it uses —
//! points of the [OSProfiler](https://docs.openstack.org/osprofiler/) trace the current task
//! belongs to. It composes with the other layers of a subscriber:
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(osprofiler_tracing::layer())
//!     .init();
//! ```
//!
//! ## What becomes a point
//! Only spans created **inside an active OSProfiler trace** (as [`osprofiler_core::is_active`]
//! sees it: a request the HTTP layer admitted, an RPC call, a trace started with `init`). Such a
//! span starts a point when it is created — a child of the current point — and stops it when it
//! closes. While the span is entered, it *is* the current point: points opened inside it (DB
//! adapters, `#[trace]`, the HTTP client, nested spans) are its children, however often an async
//! span is entered and exited, and on whichever thread an `.instrument()`ed future runs — also
//! in a task started with plain `tokio::spawn`.
//!
//! - **Name**: the span's `osprofiler.point` field when it has one, else the layer's default
//!   (`"span"`, see [`PointLayer::default_point`]):
//!   `#[instrument(fields(osprofiler.point = "rpc"))]`.
//! - **Info** of the start message: `{"function": {"name": "<target>::<span name>"}, "fields":
//!   {…}}` with the fields recorded at creation; fields recorded later (`Span::record`) go to the
//!   stop message's `{"fields": {…}}`. Debug values are cut at [`PointLayer::max_field_len`].
//! - **Errors**: a span that records an `error` field, or inside which an `ERROR` event fires,
//!   stops with `etype` and `message` like any failed point (see [`PointLayer`]).
//! - **Secrets** stay out by default: fields whose name has a word ending in password, secret,
//!   token, auth, cookie, credential or session, or ends with a key (`api_key`, `apiKey`,
//!   `ssh_key`, …), are recorded as `"***"` (`author`, `keyword`, `primary_key`, `monkey` are
//!   not secrets: names match by words; see [`PointLayer::secret_fields`]), URL passwords in
//!   any value
//!   become `***` and SQL in `db.statement`/`db.query.text` loses its literals, as the DB
//!   adapters' statements do.
//!
//! ## Outside a trace
//! Each callback makes one inlined check and returns: no point, no allocation (a new span: is
//! a trace active in this task; enter, exit, record, `ERROR` events: is any span of the process
//! a point). While some span elsewhere in the process is a point, entering an untraced span
//! also looks it up in the registry (about 25 ns). The layer never disables a
//! span or an event for the other layers, so `fmt` keeps logging everything it is configured
//! to log.
//!
//! ## Choosing spans
//! Which spans become points is decided with the usual per-layer filters. Recommended: leave
//! out `TRACE`-level spans and the chatty internals of the HTTP stack, which would add a point
//! per poll or per frame:
//!
//! ```
//! use tracing_subscriber::{filter::{LevelFilter, Targets}, prelude::*};
//!
//! let points = Targets::new()
//!     .with_default(LevelFilter::DEBUG)
//!     .with_target("h2", LevelFilter::OFF)
//!     .with_target("hyper", LevelFilter::OFF)
//!     .with_target("tokio", LevelFilter::OFF);
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())        // logs what it always logged
//!     .with(osprofiler_tracing::layer().with_filter(points));
//! # let _ = subscriber;
//! ```
//!
//! ## Together with the rest of osprofiler-rs
//! ```
//! use osprofiler_core::{self as osp, memory::MemoryCollector, notifier::{QueueNotifier, QueueOptions}};
//! use osprofiler_core::report::Report;
//! use tracing_subscriber::prelude::*;
//!
//! #[tracing::instrument]
//! fn get_user(id: u64) -> String {
//!     let _db = osp::Trace::new("db", osp::Info::new); // a child of get_user's point
//!     format!("user-{id}")
//! }
//!
//! let memory = MemoryCollector::new();
//! let notifier = QueueNotifier::start(memory.clone(), QueueOptions::default()).unwrap();
//! osp::notifier::set(notifier.clone());
//! let subscriber = tracing_subscriber::registry().with(osprofiler_tracing::layer());
//! tracing::subscriber::with_default(subscriber, || {
//!     let p = osp::init("SECRET_KEY", None, None).unwrap();
//!     get_user(7);
//!     osp::clean();
//!     notifier.flush_for(std::time::Duration::from_secs(5));
//!     let messages = memory.trace(&p.base_id().to_string());
//!     let report = Report::build(&messages);
//!     let span = &report.to_value()["children"][0];
//!     assert_eq!(span["info"]["name"], "span");
//!     assert_eq!(span["children"][0]["info"]["name"], "db");
//! });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod fields;

use fields::{FieldOptions, Fields, Visitor};
use osprofiler_core::message::{LazyInfo, Phase};
use osprofiler_core::scope::Saved;
use osprofiler_core::{Info, Trace};
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A layer with the defaults: spans become points named `"span"` unless they have an
/// `osprofiler.point` field; Debug values cut at 1,024 bytes; secrets redacted.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// let subscriber = tracing_subscriber::registry().with(osprofiler_tracing::layer());
/// # let _ = subscriber;
/// ```
pub fn layer() -> PointLayer {
    PointLayer::default()
}

/// The `tracing_subscriber` layer made by [`layer()`]: spans inside an OSProfiler trace become
/// its points.
///
/// Errors: a span's `error` field (`tracing::field::display(&e)`, `&e as &dyn Error`, any
/// value) or an `ERROR` event inside the span (the innermost span that is a point) stops the
/// point with `message` = the error field's text, else the event's message, and `etype` = the
/// value of an `error.type` field when the span or event records one, else `"Error"` (a `dyn
/// Error` carries no type name).
///
/// Parents follow the OSProfiler context, not `tracing`'s span tree: a span's point is a child
/// of the point current when the span is created, also for a span made with an explicit
/// `parent:` elsewhere. The point's name is fixed when the span is created: an
/// `osprofiler.point` recorded later is ignored.
#[derive(Clone, Debug)]
pub struct PointLayer {
    default_point: Cow<'static, str>,
    fields: Arc<FieldOptions>,
}

impl Default for PointLayer {
    fn default() -> Self {
        PointLayer {
            default_point: Cow::Borrowed("span"),
            fields: Arc::new(FieldOptions::default()),
        }
    }
}

impl PointLayer {
    /// The point name of spans without an `osprofiler.point` field (default `"span"`).
    ///
    /// ```
    /// let layer = osprofiler_tracing::layer().default_point("function");
    /// # let _ = layer;
    /// ```
    pub fn default_point(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.default_point = name.into();
        self
    }

    /// Debug-formatted values (and strings) longer than `bytes` are cut there (at a character
    /// boundary) and end with `…`; default 1,024. Formatting stops at the bound, so a huge value
    /// costs no more than `bytes`.
    pub fn max_field_len(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.fields).max_len = bytes;
        self
    }

    /// Whether span fields go into the points' info at all (default `true`). Off, a point has
    /// only the `function` name (and error info).
    pub fn record_fields(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.fields).record = on;
        self
    }

    /// Field names whose values are recorded as `"***"`, matched case-insensitively against
    /// the words of a field name (split at `_`, `-`, `.` and camelCase: `x_api_key`, `apiKey`
    /// and `API-Key` all have the words `api key`). A one-word name matches a word that ends
    /// with it, digits after it aside (`password` hides `dbPassword2`, not `passwordless`;
    /// `auth` hides `oauth`, not `author`); `key` matches only as the last word and not after
    /// `primary`, `foreign`, `sort`, `cache`, … (`ssh_key` is hidden, `primary_key` and
    /// `monkey` are not); a name of several words matches a run of them. Replaces the default
    /// list: `password`, `passwd`, `pwd`, `passphrase`, `secret`, `token`, `auth`,
    /// `authorization`, `cookie`, `credential(s)`, `session`, `key`, `apikey`, `accesskey`,
    /// `secretkey`, `privatekey`, `signingkey`, `hmackey`. URL passwords in any value are
    /// redacted whatever this list says.
    ///
    /// ```
    /// let layer = osprofiler_tracing::layer().secret_fields(["password", "ssn"]);
    /// # let _ = layer;
    /// ```
    pub fn secret_fields<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.fields).set_secret(names.into_iter().map(Into::into));
        self
    }
}

/// Spans holding a point, in the whole process: while there are none, enter, exit, record and
/// error events skip the span lookup.
static LIVE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The contexts saved by entering span points on this thread, innermost last.
    static ENTERED: RefCell<Vec<(Id, Saved)>> = const { RefCell::new(Vec::new()) };
}

/// A span point's info, shared by its start and stop messages and written as JSON only when
/// the notifier serializes them (off the traced thread).
struct SpanInfo {
    meta: &'static Metadata<'static>,
    /// Copied from the layer's options, not shared: the worker thread drops this info, and a
    /// shared `Arc` would bounce its counter between the traced thread and the worker.
    record: bool,
    max_len: usize,
    fields: Fields,
    /// What the stop message adds: set once, when the span closes, before the stop is sent
    /// (boxed: most spans have none, and a small info is cheaper to allocate and share).
    stop: OnceLock<Box<StopInfo>>,
}

/// What a span records after its creation, for the stop message.
#[derive(Default)]
struct StopInfo {
    fields: Fields,
    /// `(etype, message)`
    error: Option<(String, String)>,
    /// The latest `error.type` recorded on the span.
    etype: Option<String>,
}

impl StopInfo {
    fn fail(&mut self, message: String, etype: Option<String>) {
        if self.error.is_none() {
            let etype = etype.or_else(|| self.etype.clone());
            self.error = Some((etype.unwrap_or_else(|| "Error".to_owned()), message));
        }
    }
}

impl LazyInfo for SpanInfo {
    fn write(&self, info: &mut Info) {
        self.write_for(Phase::Start, info);
    }

    fn write_for(&self, phase: Phase, info: &mut Info) {
        match phase {
            Phase::Start => {
                let name = format!("{}::{}", self.meta.target(), self.meta.name());
                info.insert("function".into(), serde_json::json!({ "name": name }));
                if self.record {
                    info.insert("fields".into(), self.fields.to_value(self.max_len));
                }
            }
            Phase::Stop => {
                let Some(stop) = self.stop.get() else { return };
                if !stop.fields.is_empty() {
                    info.insert("fields".into(), stop.fields.to_value(self.max_len));
                }
                if let Some((etype, message)) = &stop.error {
                    info.insert("etype".into(), etype.as_str().into());
                    let message = fields::clean(message, None, self.max_len);
                    info.insert("message".into(), message.into());
                }
            }
        }
    }

    fn error_type(&self, phase: Phase) -> Option<&str> {
        match phase {
            Phase::Stop => Some(self.stop.get()?.error.as_ref()?.0.as_str()),
            Phase::Start => None,
        }
    }
}

/// What a span that is a point keeps in its extensions (small: it is boxed and moved).
struct SpanPoint {
    /// Active: a span point is made only for an active guard.
    guard: Trace,
    info: Arc<SpanInfo>,
    /// Created by the first record or error after the span's creation (most spans have none).
    stop: Option<Box<StopInfo>>,
}

impl SpanPoint {
    fn new(guard: Trace, info: Arc<SpanInfo>) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        SpanPoint {
            guard,
            info,
            stop: None,
        }
    }

    fn stop(&mut self) -> &mut StopInfo {
        self.stop.get_or_insert_with(Default::default)
    }
}

/// The registry drops a span's extensions when the span closes (after every layer's
/// `on_close`): that is where the point stops, so the layer needs no `on_close` lookup.
impl Drop for SpanPoint {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        if let Some(stop) = self.stop.take() {
            let _ = self.info.stop.set(stop);
        }
        let guard = std::mem::replace(&mut self.guard, Trace::inactive());
        guard.finish_shared(self.info.clone());
    }
}

/// The work of the layer's callbacks, kept out of line: the callbacks themselves are one check
/// each, inlined into the subscriber.
impl PointLayer {
    #[inline(never)]
    fn open_point<S>(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        let mut visitor = Visitor::new(&self.fields);
        attrs.record(&mut visitor);
        let name = match visitor.point.take() {
            Some(point) => Cow::Owned(point),
            None => self.default_point.clone(),
        };
        let info = Arc::new(SpanInfo {
            meta: attrs.metadata(),
            record: self.fields.record,
            max_len: self.fields.max_len,
            fields: std::mem::take(&mut visitor.fields),
            stop: OnceLock::new(),
        });
        // A child of the current point, not made current: entering the span does that.
        let guard =
            Trace::new_detached(name, || osprofiler_core::message::lazy_shared(info.clone()));
        if !guard.is_active() {
            return;
        }
        let mut point = SpanPoint::new(guard, info);
        if visitor.etype.is_some() || visitor.error.is_some() {
            let stop = point.stop();
            stop.etype = visitor.etype.take();
            if let Some(message) = visitor.error.take() {
                stop.fail(message, None);
            }
        }
        span.extensions_mut().insert(point);
    }

    #[inline(never)]
    fn record_point<S>(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<SpanPoint>().is_none() {
            return;
        }
        // Values are formatted before the span's extensions are locked: a Debug impl that
        // logs must not find them locked.
        let mut visitor = Visitor::new(&self.fields);
        values.record(&mut visitor);
        let mut ext = span.extensions_mut();
        let Some(point) = ext.get_mut::<SpanPoint>() else {
            return;
        };
        let stop = point.stop();
        if let Some(etype) = visitor.etype.take() {
            stop.etype = Some(etype);
        }
        if let Some(message) = visitor.error.take() {
            stop.fail(message, None);
        }
        stop.fields.append(&mut visitor.fields);
    }

    #[inline(never)]
    fn fail_point<S>(&self, event: &Event<'_>, ctx: Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(span) = scope
            .into_iter()
            .find(|s| s.extensions().get::<SpanPoint>().is_some())
        else {
            return;
        };
        // Formatted before the span's extensions are locked (see `record_point`).
        let mut visitor = Visitor::for_event(&self.fields);
        event.record(&mut visitor);
        let message = visitor
            .error
            .take()
            .or_else(|| visitor.message.take())
            .unwrap_or_else(|| event.metadata().name().to_owned());
        if let Some(point) = span.extensions_mut().get_mut::<SpanPoint>() {
            point.stop().fail(message, visitor.etype.take());
        }
    }

    #[inline(never)]
    fn enter_point<S>(&self, id: &Id, ctx: Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        if let Some(point) = ext.get::<SpanPoint>()
            && let Some(saved) = point.guard.enter()
        {
            let _ = ENTERED.try_with(|e| e.borrow_mut().push((id.clone(), saved)));
        }
    }

    #[inline(never)]
    fn exit_point(id: &Id) {
        let _ = ENTERED.try_with(|e| {
            let mut entered = e.borrow_mut();
            if let Some(at) = entered.iter().rposition(|(entered, _)| entered == id) {
                let (_, saved) = entered.remove(at);
                saved.restore();
            }
        });
    }
}

impl<S> tracing_subscriber::Layer<S> for PointLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    #[inline]
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if osprofiler_core::is_active() {
            self.open_point(attrs, id, ctx);
        }
    }

    #[inline]
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if LIVE.load(Ordering::Relaxed) != 0 {
            self.record_point(id, values, ctx);
        }
    }

    #[inline]
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() == Level::ERROR && LIVE.load(Ordering::Relaxed) != 0 {
            self.fail_point(event, ctx);
        }
    }

    #[inline]
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if LIVE.load(Ordering::Relaxed) != 0 {
            self.enter_point(id, ctx);
        }
    }

    #[inline]
    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        // A span that is a point is alive while it is exited: none alive, none to leave.
        if LIVE.load(Ordering::Relaxed) != 0 {
            Self::exit_point(id);
        }
    }
}

// The README's examples are compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
