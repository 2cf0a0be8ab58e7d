//! Where messages go: a process-global [`Notifier`], the [`Writer`] and [`Reader`] traits
//! collectors implement (a [`Driver`] is both), and [`QueueNotifier`], which moves messages off
//! the traced code's path.
//!
//! The traced code never waits for I/O. [`QueueNotifier::notify`] pushes into a bounded
//! lock-free queue and returns; a background thread drains the queue in batches and hands each
//! batch to the driver. When the queue is full the message is dropped and counted (see
//! [`NotifierStats`]), with one warning in the log. A failing driver is retried with backoff;
//! meanwhile messages wait in the queue.

use crate::id::Id;
pub use crate::listing::{ListFilter, PartialSummary, SortBy, TraceListing};
use crate::message::{Leftover, Message};
use crate::report::Report;
use crate::sampling::flags;
use crossbeam_queue::ArrayQueue;
use serde_json::Value;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Receives every message of the traces started while it is installed.
///
/// `notify` runs on the traced code's path: it must not block or do I/O.
pub trait Notifier: Send + Sync + 'static {
    /// Takes one message.
    fn notify(&self, message: Message);

    /// Delivers everything taken so far, waiting at most `timeout`; true when all was delivered.
    fn flush(&self, timeout: Duration) -> bool {
        let _ = timeout;
        true
    }

    /// Counters, for monitoring.
    fn stats(&self) -> NotifierStats {
        NotifierStats::default()
    }

    /// Whether this notifier's collector stages provisional traces (see [`crate::sampling`]
    /// and [`Writer::stage`]). A service whose notifier does not stage records no provisional
    /// trace: neither one it would start nor one a caller asks it to continue. Default false.
    fn stages(&self) -> bool {
        false
    }
}

/// A notifier that discards everything (the default before one is set).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopNotifier;

impl Notifier for NoopNotifier {
    #[inline]
    fn notify(&self, _message: Message) {}
}

/// How many delivered messages' memory may wait to be freed by traced threads.
const LEFTOVERS: usize = 4096;

fn global() -> &'static RwLock<Arc<dyn Notifier>> {
    static GLOBAL: OnceLock<RwLock<Arc<dyn Notifier>>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(Arc::new(NoopNotifier)))
}

/// Installs `notifier` as the process-wide notifier (OSProfiler's `notifier.set`).
///
/// Traces capture the notifier when they start, so a swap takes effect for traces started
/// afterwards; traces in flight finish on the notifier they began with. Code inside a
/// [dispatch scope](crate::dispatch) keeps seeing the scope's notifier.
pub fn set(notifier: Arc<dyn Notifier>) {
    *global().write().unwrap_or_else(|e| e.into_inner()) = notifier;
}

/// The notifier traces started here deliver to: the [dispatch scope](crate::dispatch)'s, when
/// one is installed on this thread or task, else the process-wide one.
///
/// ```
/// use osprofiler_core::{dispatch::{self, Dispatch}, notifier::{self, NoopNotifier}};
/// use std::sync::Arc;
/// let scoped: Arc<dyn notifier::Notifier> = Arc::new(NoopNotifier);
/// let d = Dispatch::new(scoped.clone());
/// assert!(dispatch::with_default(&d, || Arc::ptr_eq(&notifier::get(), &scoped)));
/// assert!(!Arc::ptr_eq(&notifier::get(), &scoped)); // the process-wide one
/// ```
pub fn get() -> Arc<dyn Notifier> {
    if crate::dispatch::any_scope()
        && let Some(n) = crate::dispatch::scoped(|d| Some(d.notifier.clone()))
    {
        return n;
    }
    global().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Flushes the notifier [`get`] returns (waits at most `timeout`); true when all was
/// delivered.
pub fn flush(timeout: Duration) -> bool {
    get().flush(timeout)
}

/// Counters of a notifier.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotifierStats {
    /// Messages accepted into the queue.
    pub queued: u64,
    /// Messages handed to the driver successfully.
    pub delivered: u64,
    /// Messages dropped because the queue was full.
    pub dropped_full: u64,
    /// Messages given up: those the collector kept rejecting as invalid (after
    /// [`QueueOptions::reject_retries`] tries on their own), or still failing at shutdown.
    pub dropped_failed: u64,
    /// Driver calls that failed (each was retried).
    pub driver_errors: u64,
    /// Provisional traces (see [`crate::sampling`]) as this process saw them.
    pub provisional: ProvisionalStats,
}

/// What happened to provisional traces (see [`crate::sampling`]), as one process saw them:
/// part of [`NotifierStats`], and logged at debug level every minute while the notifier
/// stages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionalStats {
    /// Provisional traces this process started (its sampler's tail share).
    pub started: u64,
    /// Provisional traces this process wrote a keep for: those it started whose root took at
    /// least `keep_slow_ms`, those in which it recorded an error point (with `keep_errors`),
    /// and those kept with [`crate::sampling::keep`].
    pub kept: u64,
    /// Provisional traces started here whose root point finished with no reason to keep them
    /// seen in this process (another service may still keep them).
    pub dropped: u64,
    /// Provisional traces removed from the store by this process's sweeps: not kept within
    /// the staging window (see [`Writer::sweep`]).
    pub expired: u64,
}

/// An error from a collector driver.
///
/// By default an error is a failure to reach the collector: the notifier keeps the batch and
/// retries it, with backoff, until the collector is back. An error marked
/// [`DriverError::rejected`] says the collector refused the batch itself (invalid data, a
/// wrong key type): the notifier tries it [`QueueOptions::reject_retries`] times, then
/// delivers its messages one at a time and drops (and counts in
/// [`NotifierStats::dropped_failed`]) only those still rejected on their own, so that an
/// invalid message neither holds up the batches behind it nor takes valid ones with it.
pub struct DriverError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    rejected: bool,
    /// Messages refused by a store that kept the rest of the batch.
    refused: Option<usize>,
}

impl DriverError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        DriverError {
            message: message.into(),
            source: None,
            rejected: false,
            refused: None,
        }
    }
    /// An error with a message and an underlying cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        DriverError {
            message: message.into(),
            source: Some(Box::new(source)),
            rejected: false,
            refused: None,
        }
    }

    /// Marks the error as the collector refusing the batch (not a connection failure).
    ///
    /// ```
    /// use osprofiler_core::notifier::DriverError;
    /// assert!(DriverError::new("value too long").rejected().is_rejected());
    /// assert!(!DriverError::new("connection refused").is_rejected());
    /// ```
    pub fn rejected(mut self) -> Self {
        self.rejected = true;
        self
    }

    /// Whether the collector refused the batch itself (see [`DriverError::rejected`]).
    pub fn is_rejected(&self) -> bool {
        self.rejected
    }

    /// Says that the batch was stored except `refused` messages the collector will never
    /// accept — for stores that are not atomic (a Redis pipeline keeps every command that
    /// succeeded): the notifier counts those in [`NotifierStats::dropped_failed`], the rest as
    /// delivered, and does not send the batch again (which would store the rest twice).
    ///
    /// ```
    /// use osprofiler_core::notifier::DriverError;
    /// let e = DriverError::new("WRONGTYPE on 1 key").partly_stored(2);
    /// assert_eq!(e.refused(), Some(2));
    /// ```
    pub fn partly_stored(mut self, refused: usize) -> Self {
        self.refused = Some(refused);
        self
    }

    /// The messages refused by a store that kept the rest of the batch (see
    /// [`DriverError::partly_stored`]).
    pub fn refused(&self) -> Option<usize> {
        self.refused
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {s}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The text of `Display` (what a `main` returning the error prints), and the flags.
impl fmt::Debug for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        if self.rejected {
            f.write_str(" [rejected]")?;
        }
        if let Some(n) = self.refused {
            write!(f, " [{n} refused]")?;
        }
        Ok(())
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// A trace in a listing: its id and the timestamp of its first stored message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraceSummary {
    /// The trace's `base_id`.
    pub base_id: String,
    /// OSProfiler timestamp text.
    pub timestamp: String,
}

/// Whether a stored message (as JSON) is an error point's stop: its `info.etype` is set.
///
/// ```
/// use osprofiler_core::notifier::is_error;
/// assert!(is_error(&serde_json::json!({"info": {"etype": "ValueError"}})));
/// assert!(!is_error(&serde_json::json!({"info": {"etype": null}})));
/// ```
pub fn is_error(message: &Value) -> bool {
    message["info"].get("etype").is_some_and(|e| !e.is_null())
}

/// The traces among `messages`, each with the timestamp of its first message, oldest first;
/// with `only_errors`, only those with an error point ([`is_error`]). For drivers that read
/// whole messages to list traces.
///
/// ```
/// use osprofiler_core::notifier::summarize;
/// use serde_json::json;
/// let msgs = [
///     json!({"base_id": "b", "timestamp": "2024-01-01T00:00:01.000000", "info": {}}),
///     json!({"base_id": "a", "timestamp": "2024-01-01T00:00:02.000000", "info": {"etype": "E"}}),
///     json!({"base_id": "b", "timestamp": "2024-01-01T00:00:00.000000", "info": {}}),
/// ];
/// let all: Vec<_> = summarize(&msgs, false).into_iter().map(|s| (s.base_id, s.timestamp)).collect();
/// assert_eq!(all, [("b".into(), "2024-01-01T00:00:00.000000".into()), ("a".into(), "2024-01-01T00:00:02.000000".into())]);
/// assert_eq!(summarize(&msgs, true)[0].base_id, "a");
/// ```
pub fn summarize<'a>(
    messages: impl IntoIterator<Item = &'a Value>,
    only_errors: bool,
) -> Vec<TraceSummary> {
    let mut traces: std::collections::HashMap<&str, (&str, bool)> = Default::default();
    for m in messages {
        let Some(base_id) = m["base_id"].as_str() else {
            continue;
        };
        // A message without a timestamp still lists its trace, but does not make its start "".
        let ts = m["timestamp"].as_str();
        let e = traces
            .entry(base_id)
            .or_insert((ts.unwrap_or_default(), false));
        if let Some(ts) = ts
            && (ts < e.0 || e.0.is_empty())
        {
            e.0 = ts;
        }
        e.1 |= is_error(m);
    }
    let mut out: Vec<TraceSummary> = traces
        .into_iter()
        .filter(|(_, (_, err))| *err || !only_errors)
        .map(|(base_id, (ts, _))| TraceSummary {
            base_id: base_id.to_owned(),
            timestamp: ts.to_owned(),
        })
        .collect();
    out.sort_by(|a, b| (&a.timestamp, &a.base_id).cmp(&(&b.timestamp, &b.base_id)));
    out
}

/// The writing half of a collector: where the notifier's worker stores batches. This is all a
/// service needs ([`QueueNotifier::start`] takes one), so a service links no collector's
/// reading code.
///
/// Called from the notifier's worker thread, never from traced code, so it may block.
pub trait Writer: Send + Sync + 'static {
    /// A short name for logs and errors (`redis`, `sqlite`, ...).
    fn name(&self) -> &str;

    /// Stores a batch of messages. On error the same batch is offered again later.
    fn notify(&self, batch: &[Message]) -> Result<(), DriverError>;

    /// Whether this collector stores per-trace summaries ([`Writer::write_summaries`]): when
    /// true, the notifier's worker keeps them. Default false.
    fn stores_summaries(&self) -> bool {
        false
    }

    /// Stores partial summaries of traces (see [`crate::listing`]): each says what this process
    /// wrote for one trace since its last partial, written when the process has no open point
    /// left for the trace. Called by the notifier's worker after the messages they count were
    /// stored, only when [`Writer::stores_summaries`]. Partials are additive: a reader adds
    /// up all those of a trace. On error the same partials are offered again later. By default
    /// nothing is stored and listing computes each trace from its messages.
    fn write_summaries(&self, parts: &[PartialSummary]) -> Result<(), DriverError> {
        let _ = parts;
        Ok(())
    }

    /// Prepares the collector to stage provisional traces (see [`crate::sampling`]) with a
    /// staging window of `window`; called once by [`QueueNotifier::start`], before any batch,
    /// without I/O. From then on [`Writer::notify`] stores the messages that are
    /// [`Message::is_provisional`] so that readers do not see their trace (see
    /// [`Reader::trace_state`]) until it is kept ([`Writer::keep`]), and the notifier calls
    /// [`Writer::sweep`] regularly.
    ///
    /// By default an error saying that this collector cannot stage: a service configured to
    /// keep slow or failed traces (`keep_slow_ms`, `keep_errors`) fails at start-up with it,
    /// rather than losing or leaking traces.
    fn stage(&self, window: Duration) -> Result<(), DriverError> {
        let _ = window;
        Err(DriverError::new(format!(
            "the {} collector cannot stage provisional traces (keep_slow_ms, keep_errors): \
             use sqlite://, postgresql://, mysql:// or redis://",
            self.name()
        )))
    }

    /// Keeps these provisional traces for good: readers see their stored messages, and every
    /// message stored for them later, whoever writes it. Idempotent, and may come before any
    /// message of the trace was stored. Called by the notifier's worker after the messages
    /// that led to the keep were stored. Default: nothing to do (a collector that does not
    /// stage keeps everything).
    fn keep(&self, base_ids: &[&str]) -> Result<(), DriverError> {
        let _ = base_ids;
        Ok(())
    }

    /// Removes the provisional traces staged more than the staging window ago and never kept:
    /// all their stored messages (also those other services wrote straight to the store,
    /// such as Python OSProfiler's), their summaries and their error index; messages of such a
    /// trace that arrive up to another window later are removed by later sweeps. Returns how
    /// many traces were removed ([`ProvisionalStats::expired`]). Called regularly by the
    /// notifier's worker of every service whose collector stages; idempotent, so services may
    /// sweep the same store concurrently. Default: nothing staged, nothing to remove.
    fn sweep(&self) -> Result<u64, DriverError> {
        Ok(0)
    }

    /// Prepares the collector to delete traces older than `age` by itself (the `retention`
    /// option); called once by [`QueueNotifier::start`], without I/O. The notifier then calls
    /// [`Writer::prune`] regularly. By default an error saying that this collector cannot
    /// delete: a service configured with a `retention` fails at start-up with it.
    fn retain(&self, age: Duration) -> Result<(), DriverError> {
        let _ = age;
        Err(DriverError::new(format!(
            "the {} collector cannot delete old traces (retention)",
            self.name()
        )))
    }

    /// Deletes every stored trace whose newest message is older than `cutoff` (so never a
    /// trace still being written), with its summaries, error index and staging record;
    /// returns how many traces. By default an error saying that this collector cannot.
    fn prune(&self, cutoff: std::time::SystemTime) -> Result<u64, DriverError> {
        let _ = cutoff;
        Err(DriverError::new(format!(
            "the {} collector cannot delete traces",
            self.name()
        )))
    }

    /// Deletes one trace: its messages, summaries, error index and staging record; returns
    /// how many messages were deleted. By default an error saying that this collector cannot.
    fn delete_trace(&self, base_id: &str) -> Result<u64, DriverError> {
        let _ = base_id;
        Err(DriverError::new(format!(
            "the {} collector cannot delete traces",
            self.name()
        )))
    }
}

/// Whether readers show a stored trace (see [`Reader::trace_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceState {
    /// Stored for good: never provisional, or provisional and kept.
    Stored,
    /// Provisional and not kept (yet): hidden from listings, removed when the staging window
    /// passes without a keep.
    Pending,
    /// Provisional, not kept within the staging window, and being removed.
    Dropped,
}

/// The reading half of a collector: what the CLI and reports need. A collector that only
/// exports (OTLP) has none.
pub trait Reader: Send + Sync + 'static {
    /// Every stored message of one trace, as JSON objects (any order).
    fn trace_messages(&self, base_id: &str) -> Result<Vec<Value>, DriverError>;

    /// The report of one trace (OSProfiler's `get_report`).
    fn get_report(&self, base_id: &str) -> Result<Report, DriverError> {
        Ok(Report::build_owned(
            self.trace_messages(base_id)?,
            crate::report::ReportOptions::default(),
        ))
    }

    /// All stored traces, but not those still provisional ([`TraceState::Pending`] or
    /// [`TraceState::Dropped`]).
    fn list_traces(&self) -> Result<Vec<TraceSummary>, DriverError>;

    /// Whether readers show this trace: [`TraceState::Stored`] unless it is provisional and
    /// not kept. `osprofiler trace show` asks first and shows a pending trace only with
    /// `--pending`. Default: [`TraceState::Stored`] (a collector that does not stage).
    fn trace_state(&self, base_id: &str) -> Result<TraceState, DriverError> {
        let _ = base_id;
        Ok(TraceState::Stored)
    }

    /// Traces with at least one error point.
    fn list_error_traces(&self) -> Result<Vec<TraceSummary>, DriverError>;

    /// The traces `filter` selects, one [`TraceListing`] each (`osprofiler trace list`),
    /// sorted and limited as it says.
    ///
    /// By default each trace is computed from its messages ([`crate::listing::listing_of`]):
    /// right for every collector and for traces Python wrote, but it reads every message of
    /// every listed trace. Collectors that store summaries answer from them.
    ///
    /// ```
    /// use osprofiler_core::{self as osp, listing::ListFilter, memory::MemoryCollector, notifier::Reader};
    /// let memory = MemoryCollector::new();
    /// let d = osp::dispatch::Dispatch::new(osp::notifier::QueueNotifier::start(memory.clone(), Default::default()).unwrap());
    /// osp::dispatch::with_default(&d, || {
    ///     osp::init("key", None, None);
    ///     osp::Trace::new("wsgi", osp::Info::new).finish();
    ///     osp::clean();
    ///     osp::notifier::flush(std::time::Duration::from_secs(5));
    /// });
    /// let listed = memory.list(&ListFilter::default()).unwrap();
    /// assert_eq!((listed[0].root.as_deref(), listed[0].points), (Some("wsgi"), 1));
    /// ```
    fn list(&self, filter: &ListFilter) -> Result<Vec<TraceListing>, DriverError> {
        let mut traces = self.list_traces()?;
        // Only the newest wanted, by start alone: only those are read.
        if let (SortBy::Start, Some(n), None, None, false) = (
            filter.sort,
            filter.limit,
            filter.min_duration_ms,
            &filter.service,
            filter.errors_only,
        ) {
            traces.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
            traces.drain(..traces.len().saturating_sub(n));
        }
        let mut out = Vec::new();
        for t in traces {
            if !filter.may_pass_start(crate::clock::parse_timestamp(&t.timestamp)) {
                continue;
            }
            let messages = self.trace_messages(&t.base_id)?;
            out.push(crate::listing::listing_of(&t.base_id, &messages));
        }
        Ok(filter.apply(out))
    }
}

/// A collector that writes and reads (OSProfiler's `drivers.base.Driver`): every type that is
/// both a [`Writer`] and a [`Reader`] is one. An `Arc<dyn Driver>` converts into either half.
///
/// ```
/// use osprofiler_core::memory::MemoryCollector;
/// use osprofiler_core::notifier::{Driver, Reader, Writer};
/// use std::sync::Arc;
/// let both: Arc<dyn Driver> = MemoryCollector::new();
/// let writer: Arc<dyn Writer> = both.clone();
/// let reader: Arc<dyn Reader> = both;
/// assert_eq!(writer.name(), "memory");
/// assert!(reader.list_traces().unwrap().is_empty());
/// ```
pub trait Driver: Writer + Reader {}

impl<T: Writer + Reader + ?Sized> Driver for T {}

/// The shortest `retention` ([`QueueOptions::retention`]): a trace that got a point more
/// recently than this may still be being written, and is never deleted for its age.
pub const MIN_RETENTION: Duration = Duration::from_secs(60);

/// Settings of a [`QueueNotifier`].
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Messages the queue holds before new ones are dropped (default 65,536).
    pub capacity: usize,
    /// Heap bytes the queued messages may hold, over their fixed size (statement texts, info
    /// maps, arguments: [`Message::heap_size`]); past it, messages that hold more than 256
    /// bytes are dropped and counted as [`NotifierStats::dropped_full`] (default 64 MiB). The
    /// rest is bounded by `capacity`: the queue is a ring of `capacity` slots of
    /// `size_of::<Message>()` (256) bytes allocated at start (16 MiB by default), and messages
    /// holding up to 256 heap bytes each (a `#[trace]`d call's arguments, a short statement)
    /// are not counted, so that they never touch the shared counter.
    pub max_bytes: usize,
    /// Largest batch handed to the driver (default 512).
    pub batch_size: usize,
    /// How long the worker sleeps when the queue is empty (default 10 ms); it is also woken by
    /// [`Notifier::flush`], and early when the queue is a quarter full, so the queue only fills
    /// when messages arrive faster than the driver takes them.
    pub interval: Duration,
    /// How long shutdown (drop of the last handle) waits for delivery (default 5 s).
    pub shutdown_timeout: Duration,
    /// How many times a batch the collector rejects as invalid is tried before it is dropped
    /// (default 3). Connection failures are retried until the collector is back.
    pub reject_retries: u32,
    /// For a collector that stores per-trace summaries ([`Writer::stores_summaries`]): how
    /// many traces with points still open the worker follows at once (default 10,000); past
    /// that, the oldest one's summary is written with what is known so far.
    pub summary_traces: usize,
    /// How long a provisional trace waits to be kept before the collector removes it (default
    /// 60 s; see [`crate::sampling`] and [`Writer::stage`]). The notifier asks every collector
    /// that can stage to do so, and sweeps it every quarter window (at least every 100 ms, at
    /// most every 15 s) once it has stored a provisional message.
    pub staging_window: Duration,
    /// This service starts provisional traces (its sampler keeps slow or failed requests): a
    /// collector that cannot stage is an error at start, and the notifier sweeps from the
    /// start (default false).
    pub keep_traces: bool,
    /// Delete stored traces whose newest message is older than this (`retention`; default
    /// none; at least [`MIN_RETENTION`]): a collector that cannot is an error at start; the
    /// notifier prunes it every quarter of the retention (at most every 10 minutes).
    pub retention: Option<Duration>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            capacity: 65_536,
            max_bytes: 64 << 20,
            batch_size: 512,
            interval: Duration::from_millis(10),
            shutdown_timeout: Duration::from_secs(5),
            reject_retries: 3,
            summary_traces: 10_000,
            staging_window: Duration::from_secs(60),
            keep_traces: false,
            retention: None,
        }
    }
}

struct Shared {
    /// The collector stages provisional traces.
    stages: bool,
    /// Counters of [`ProvisionalStats`]: started, kept, dropped, expired.
    provisional: [AtomicU64; 4],
    queue: ArrayQueue<Message>,
    /// Heap memory of delivered messages, freed by traced threads (see [`QueueNotifier`]).
    leftovers: ArrayQueue<Leftover>,
    driver: Arc<dyn Writer>,
    opts: QueueOptions,
    /// Flush requests made so far, and the last one the worker has completed: a request is
    /// complete once the worker has seen the queue empty after it was made.
    flush_requested: AtomicU64,
    flushed: AtomicU64,
    /// Messages taken from the queue and not yet delivered or given up.
    in_flight: AtomicU64,
    delivered: AtomicU64,
    dropped_full: AtomicU64,
    /// Heap bytes of the messages in the queue (`Message::queued_bytes`).
    queued_bytes: AtomicUsize,
    dropped_failed: AtomicU64,
    driver_errors: AtomicU64,
    warned_full: AtomicBool,
    shutdown: AtomicBool,
    wake_lock: Mutex<bool>,
    wake: Condvar,
    done_lock: Mutex<()>,
    done_cv: Condvar,
}

impl Shared {
    fn provisional_stats(&self) -> ProvisionalStats {
        let [started, kept, dropped, expired] =
            std::array::from_fn(|i| self.provisional[i].load(Ordering::Relaxed));
        ProvisionalStats {
            started,
            kept,
            dropped,
            expired,
        }
    }

    fn wake_worker(&self) {
        let mut flag = self.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
        *flag = true;
        self.wake.notify_one();
    }

    /// Every 256 messages a thread sends, wakes the worker early if the queue is a quarter
    /// full: a burst faster than the worker's sleep interval is drained instead of dropped.
    #[inline]
    fn wake_if_filling(&self) {
        thread_local! {
            static SENT: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
        }
        let sent = SENT.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        if sent == 0 && self.queue.len() > self.queue.capacity() / 4 {
            self.wake_worker();
        }
    }
}

/// Messages holding at most this many heap bytes are left out of the byte count
/// ([`QueueOptions::max_bytes`]): the message count bounds them.
const SMALL_HEAP: usize = 256;

/// The standard notifier: a bounded queue drained by a background thread into a collector [`Writer`].
///
/// Memory a delivered message still owns (its info, lazy info and arguments) is not freed by
/// the worker: it goes back through a small second queue and each later `notify` frees one
/// such message's memory on the traced thread. With glibc's allocator, frees on a thread
/// other than the one that allocated contend for the allocating thread's arena lock (perf
/// showed a fifth of a traced HTTP request's time in futex waits on it); handing the memory
/// back keeps the traced threads' allocations and frees in their own caches.
///
/// ```
/// use osprofiler_core::{self as osp, notifier::{QueueNotifier, QueueOptions}, memory::MemoryCollector};
/// use std::time::Duration;
/// let memory = MemoryCollector::new();
/// let notifier = QueueNotifier::start(memory.clone(), QueueOptions::default()).unwrap();
/// osp::notifier::set(notifier.clone());
/// let p = osp::init("key", None, None).unwrap();
/// osp::Trace::new("work", osp::Info::new).finish();
/// assert!(notifier.flush_for(Duration::from_secs(5)));
/// assert_eq!(memory.trace(&p.base_id().to_string()).len(), 2);
/// osp::clean();
/// ```
pub struct QueueNotifier {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for QueueNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueNotifier")
            .field("driver", &self.shared.driver.name())
            .field("stats", &self.stats())
            .finish()
    }
}

impl QueueNotifier {
    #[inline(never)]
    fn push(&self, message: Message) {
        let s = &*self.shared;
        match s.queue.push(message) {
            Ok(()) => {
                // Free one delivered message's memory here, on a thread that allocates. (An
                // emptiness check is two loads; a `pop` of an empty queue costs ~35
                // instructions, on every point whose messages own no memory.)
                if !s.leftovers.is_empty() {
                    drop(s.leftovers.pop());
                }
                s.wake_if_filling();
            }
            Err(lost) => {
                if lost.queued_bytes > 0 {
                    s.queued_bytes
                        .fetch_sub(lost.queued_bytes as usize, Ordering::Relaxed);
                }
                self.dropped(false);
            }
        }
    }

    /// [`Notifier::notify`] of a message counted against [`QueueOptions::max_bytes`].
    #[inline(never)]
    fn notify_counted(&self, mut message: Message, heap: usize) {
        let s = &*self.shared;
        let heap = heap.min(u32::MAX as usize);
        let before = s.queued_bytes.fetch_add(heap, Ordering::Relaxed);
        if before + heap > s.opts.max_bytes {
            s.queued_bytes.fetch_sub(heap, Ordering::Relaxed);
            self.dropped(true);
            return;
        }
        message.queued_bytes = heap as u32;
        self.push(message);
    }

    /// Counts a message dropped because the queue is full (of messages or of bytes), and
    /// warns the first time.
    #[cold]
    fn dropped(&self, bytes: bool) {
        let s = &*self.shared;
        s.dropped_full.fetch_add(1, Ordering::Relaxed);
        if !s.warned_full.swap(true, Ordering::Relaxed) {
            let what = if bytes {
                format!("{} bytes of message info", s.opts.max_bytes)
            } else {
                format!("{} messages", s.opts.capacity)
            };
            log::warn!(
                "osprofiler: notifier queue full ({what}, driver {}); dropping messages until \
                 it drains (see NotifierStats::dropped_full)",
                s.driver.name()
            );
        }
    }

    /// Starts the worker thread for `driver`.
    pub fn start(
        driver: Arc<dyn Writer>,
        opts: QueueOptions,
    ) -> Result<Arc<QueueNotifier>, DriverError> {
        if opts.capacity == 0 || opts.batch_size == 0 {
            return Err(DriverError::new(
                "queue capacity and batch_size must be at least 1",
            ));
        }
        // Every collector that can stage does, so that this service can take part in
        // provisional traces others start; one that must and cannot is an error now.
        let stages = match driver.stage(opts.staging_window) {
            Ok(()) => true,
            Err(e) if opts.keep_traces => return Err(e),
            Err(_) => false,
        };
        if let Some(age) = opts.retention {
            if age < MIN_RETENTION {
                return Err(DriverError::new(format!(
                    "retention {age:?} is less than a minute: a trace that got a point more \
                     recently may still be being written"
                )));
            }
            driver.retain(age)?;
        }
        let shared = Arc::new(Shared {
            stages,
            provisional: Default::default(),
            queue: ArrayQueue::new(opts.capacity),
            leftovers: ArrayQueue::new(LEFTOVERS),
            driver,
            opts,
            flush_requested: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped_full: AtomicU64::new(0),
            queued_bytes: AtomicUsize::new(0),
            dropped_failed: AtomicU64::new(0),
            driver_errors: AtomicU64::new(0),
            warned_full: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            wake_lock: Mutex::new(false),
            wake: Condvar::new(),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
        });
        let worker_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("osprofiler-{}", shared.driver.name()))
            .spawn(move || worker(worker_shared))
            .map_err(|e| DriverError::with_source("cannot start the notifier thread", e))?;
        Ok(Arc::new(QueueNotifier {
            shared,
            worker: Mutex::new(Some(handle)),
        }))
    }

    /// The collector this notifier writes to.
    pub fn driver(&self) -> &Arc<dyn Writer> {
        &self.shared.driver
    }

    /// [`Notifier::flush`] with the given timeout.
    pub fn flush_for(&self, timeout: Duration) -> bool {
        Notifier::flush(self, timeout)
    }

    /// The counters ([`Notifier::stats`]), provisional traces included.
    ///
    /// ```
    /// use osprofiler_core::{memory::MemoryCollector, notifier::QueueNotifier};
    /// let n = QueueNotifier::start(MemoryCollector::new(), Default::default()).unwrap();
    /// assert_eq!(n.stats().provisional.started, 0);
    /// ```
    pub fn stats(&self) -> NotifierStats {
        Notifier::stats(self)
    }

    /// Heap bytes the messages waiting in the queue hold ([`Message::heap_size`]), which
    /// [`QueueOptions::max_bytes`] bounds. The batch the worker has in hand is not counted.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Relaxed)
    }

    /// Stops the worker after delivering what it can within the shutdown timeout.
    pub fn shutdown(&self) {
        let timeout = self.shared.opts.shutdown_timeout;
        Notifier::flush(self, timeout);
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.wake_worker();
        let handle = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for QueueNotifier {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Notifier for QueueNotifier {
    #[inline]
    fn notify(&self, message: Message) {
        // Only messages that hold more than a little heap memory touch the shared byte count
        // (those holding less are bounded by the count: `SMALL_HEAP` a slot at most). The
        // message is not written to on the common path: that would copy its 256 bytes once more.
        let heap = message.heap_size();
        if heap > SMALL_HEAP {
            self.notify_counted(message, heap);
        } else {
            self.push(message);
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        let s = &*self.shared;
        let target = s.flush_requested.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = Instant::now() + timeout;
        s.wake_worker();
        let mut guard = s.done_lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if s.flushed.load(Ordering::Acquire) >= target {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || s.shutdown.load(Ordering::Acquire) && self.worker_finished() {
                return false;
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            guard = s
                .done_cv
                .wait_timeout(guard, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn stats(&self) -> NotifierStats {
        let s = &*self.shared;
        NotifierStats {
            queued: s.delivered.load(Ordering::Relaxed)
                + s.dropped_failed.load(Ordering::Relaxed)
                + s.in_flight.load(Ordering::Relaxed)
                + s.queue.len() as u64,
            delivered: s.delivered.load(Ordering::Relaxed),
            dropped_full: s.dropped_full.load(Ordering::Relaxed),
            dropped_failed: s.dropped_failed.load(Ordering::Relaxed),
            driver_errors: s.driver_errors.load(Ordering::Relaxed),
            provisional: s.provisional_stats(),
        }
    }

    fn stages(&self) -> bool {
        self.shared.stages
    }
}

impl QueueNotifier {
    fn worker_finished(&self) -> bool {
        self.worker
            .lock()
            .map(|w| w.as_ref().is_none_or(|h| h.is_finished()))
            .unwrap_or(true)
    }
}

fn worker(s: Arc<Shared>) {
    let mut batch: Vec<Message> = Vec::with_capacity(s.opts.batch_size);
    let mut backoff = Duration::from_millis(10);
    // Tries of the current batch that the collector rejected as invalid.
    let mut rejections = 0u32;
    // Messages of a rejected batch, delivered one at a time to find the invalid ones.
    let mut singles: std::collections::VecDeque<Message> = std::collections::VecDeque::new();
    // Per-trace summaries of what this process wrote, for collectors that store them.
    let mut summaries = s
        .driver
        .stores_summaries()
        .then(|| Summaries::new(s.opts.summary_traces));
    // Keeps, sweeps and retention.
    let mut upkeep = Upkeep::new(&s);
    loop {
        let flush_request = s.flush_requested.load(Ordering::Acquire);
        if batch.is_empty() {
            if let Some(m) = singles.pop_front() {
                batch.push(m);
            } else {
                let mut bytes = 0;
                while batch.len() < s.opts.batch_size {
                    match s.queue.pop() {
                        Some(m) => {
                            bytes += m.queued_bytes as usize;
                            batch.push(m);
                        }
                        None => break,
                    }
                }
                if bytes > 0 {
                    s.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                }
            }
            s.in_flight
                .store((batch.len() + singles.len()) as u64, Ordering::Relaxed);
        }
        if !batch.is_empty() {
            // A store that kept all but `refused` messages is done with the batch too.
            let outcome = match s.driver.notify(&batch) {
                Ok(()) => Ok(0),
                Err(e) => match e.refused() {
                    Some(refused) => {
                        let refused = refused.min(batch.len());
                        s.driver_errors.fetch_add(1, Ordering::Relaxed);
                        let before = s
                            .dropped_failed
                            .fetch_add(refused as u64, Ordering::Relaxed);
                        if before == 0 || (before + refused as u64).is_power_of_two() {
                            log::warn!(
                                "osprofiler: driver {} refused {refused} of {} messages and \
                                 stored the rest; {} dropped so far (see \
                                 NotifierStats::dropped_failed): {e}",
                                s.driver.name(),
                                batch.len(),
                                before + refused as u64
                            );
                        }
                        Ok(refused)
                    }
                    None => Err(e),
                },
            };
            match outcome {
                Ok(refused) => {
                    let n = (batch.len() - refused) as u64;
                    if s.stages {
                        upkeep.observe(&s, &batch);
                    }
                    if let Some(sum) = summaries.as_mut() {
                        sum.observe(&batch);
                        if sum.pending.len() >= s.opts.batch_size {
                            sum.write(&s);
                        }
                    }
                    for mut m in batch.drain(..) {
                        if let Some(l) = m.take_leftover() {
                            // When full, the worker frees it itself.
                            let _ = s.leftovers.push(l);
                        }
                    }
                    s.delivered.fetch_add(n, Ordering::Relaxed);
                    s.in_flight.store(singles.len() as u64, Ordering::Relaxed);
                    backoff = Duration::from_millis(10);
                    rejections = 0;
                    continue;
                }
                Err(e) if e.is_rejected() && rejections + 1 >= s.opts.reject_retries.max(1) => {
                    s.driver_errors.fetch_add(1, Ordering::Relaxed);
                    rejections = 0;
                    backoff = Duration::from_millis(10);
                    if batch.len() > 1 {
                        // Which messages are invalid? Each gets tried on its own.
                        log::warn!(
                            "osprofiler: driver {} rejected a batch of {} messages; delivering \
                             them one at a time to drop only the invalid ones: {e}",
                            s.driver.name(),
                            batch.len()
                        );
                        singles.extend(batch.drain(..));
                        continue;
                    }
                    let dropped = s.dropped_failed.fetch_add(1, Ordering::Relaxed);
                    if dropped == 0 || (dropped + 1).is_power_of_two() {
                        log::warn!(
                            "osprofiler: driver {} rejected a message {} times; dropped it ({} \
                             dropped so far, see NotifierStats::dropped_failed): {e}",
                            s.driver.name(),
                            s.opts.reject_retries.max(1),
                            dropped + 1
                        );
                    }
                    batch.clear();
                    s.in_flight.store(singles.len() as u64, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    if e.is_rejected() {
                        rejections += 1;
                    }
                    let errors = s.driver_errors.fetch_add(1, Ordering::Relaxed);
                    if errors == 0 || errors.is_power_of_two() {
                        log::warn!(
                            "osprofiler: driver {} failed ({} failures so far), will retry: {e}",
                            s.driver.name(),
                            errors + 1
                        );
                    }
                    if s.shutdown.load(Ordering::Acquire) {
                        // Shutdown's flush already waited; give up on what is left.
                        let n = (batch.len() + singles.len()) as u64;
                        batch.clear();
                        singles.clear();
                        s.dropped_failed.fetch_add(n, Ordering::Relaxed);
                        s.in_flight.store(0, Ordering::Relaxed);
                        continue;
                    }
                    sleep_or_wake(&s, backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            }
        }
        if let Some(sum) = summaries.as_mut() {
            if s.shutdown.load(Ordering::Acquire) && s.queue.is_empty() {
                sum.finish();
            }
            sum.write(&s);
        }
        upkeep.tick(&s);
        // The queue was seen empty with nothing in flight: every message pushed before
        // `flush_request` was made has been delivered.
        if s.flushed.load(Ordering::Relaxed) < flush_request {
            s.flushed.store(flush_request, Ordering::Release);
            notify_done(&s);
        }
        if s.shutdown.load(Ordering::Acquire) && s.queue.is_empty() {
            return;
        }
        sleep_or_wake(&s, s.opts.interval);
    }
}

/// The worker's per-trace summaries: followed traces, and partials waiting to be written.
struct Summaries {
    acc: crate::listing::Accumulator,
    pending: Vec<PartialSummary>,
    failures: u64,
}

impl Summaries {
    /// Partials kept while the collector fails; past that the oldest are dropped (listing then
    /// computes those traces from their messages, seeing the counts disagree).
    const MAX_PENDING: usize = 100_000;

    fn new(cap: usize) -> Summaries {
        Summaries {
            acc: crate::listing::Accumulator::new(cap),
            pending: Vec::new(),
            failures: 0,
        }
    }

    fn observe(&mut self, delivered: &[Message]) {
        for m in delivered {
            self.acc.observe(m);
        }
        self.pending.extend(self.acc.take_closed());
        if self.pending.len() > Self::MAX_PENDING {
            let extra = self.pending.len() - Self::MAX_PENDING;
            self.pending.drain(..extra);
        }
    }

    /// At shutdown: the traces still open are summarized with what is known.
    fn finish(&mut self) {
        self.pending.extend(self.acc.take_all());
    }

    fn write(&mut self, s: &Shared) {
        if self.pending.is_empty() {
            return;
        }
        match s.driver.write_summaries(&self.pending) {
            Ok(()) => self.pending.clear(),
            Err(e) => {
                self.failures += 1;
                if self.failures.is_power_of_two() {
                    log::warn!(
                        "osprofiler: driver {} cannot store trace summaries ({} failures so far), will \
                         retry: {e}",
                        s.driver.name(),
                        self.failures
                    );
                }
                if s.shutdown.load(Ordering::Acquire) {
                    self.pending.clear();
                }
            }
        }
    }
}

/// The worker's upkeep of provisional traces and retention: keeps to write, sweeps, prunes,
/// and the periodic debug log of the counters.
struct Upkeep {
    /// Traces kept lately, so that each is kept and counted once.
    kept: std::collections::HashSet<Id>,
    kept_order: std::collections::VecDeque<Id>,
    /// Keeps not written yet (the collector failed).
    to_keep: Vec<Id>,
    keep_failures: u64,
    /// Whether a provisional message went through (or this service starts provisional
    /// traces): only then does this service sweep.
    sweeping: bool,
    next_sweep: Instant,
    next_prune: Option<Instant>,
    next_log: Instant,
    failures: u64,
}

impl Upkeep {
    /// Traces remembered as kept.
    const KEPT: usize = 4096;

    fn new(s: &Shared) -> Upkeep {
        let now = Instant::now();
        Upkeep {
            kept: Default::default(),
            kept_order: Default::default(),
            to_keep: Vec::new(),
            keep_failures: 0,
            sweeping: s.stages && s.opts.keep_traces,
            next_sweep: now,
            next_prune: s.opts.retention.map(|_| now),
            next_log: now + Self::LOG_EVERY,
            failures: 0,
        }
    }

    const LOG_EVERY: Duration = Duration::from_secs(60);

    fn sweep_every(s: &Shared) -> Duration {
        (s.opts.staging_window / 4).clamp(Duration::from_millis(100), Duration::from_secs(15))
    }

    fn prune_every(age: Duration) -> Duration {
        (age / 4).min(Duration::from_secs(600))
    }

    /// A stored batch: which traces to keep, and the counters.
    fn observe(&mut self, s: &Shared, stored: &[Message]) {
        for m in stored.iter().filter(|m| m.is_provisional()) {
            self.sweeping = true;
            let f = m.staging;
            if f & flags::ORIGIN_START != 0 {
                s.provisional[0].fetch_add(1, Ordering::Relaxed);
            }
            let keep =
                f & flags::KEEP != 0 || f & flags::KEEP_ERRORS != 0 && m.error_type().is_some();
            if keep && !self.kept.contains(&m.base_id) {
                if self.kept_order.len() >= Self::KEPT
                    && let Some(old) = self.kept_order.pop_front()
                {
                    self.kept.remove(&old);
                }
                self.kept.insert(m.base_id.clone());
                self.kept_order.push_back(m.base_id.clone());
                self.to_keep.push(m.base_id.clone());
                s.provisional[1].fetch_add(1, Ordering::Relaxed);
            }
            if f & flags::ORIGIN_END != 0 && !self.kept.contains(&m.base_id) {
                s.provisional[2].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.write_keeps(s);
    }

    fn write_keeps(&mut self, s: &Shared) {
        if self.to_keep.is_empty() {
            return;
        }
        let texts: Vec<String> = self.to_keep.iter().map(Id::to_string).collect();
        let ids: Vec<&str> = texts.iter().map(String::as_str).collect();
        match s.driver.keep(&ids) {
            Ok(()) => self.to_keep.clear(),
            Err(e) => {
                self.keep_failures += 1;
                if self.keep_failures.is_power_of_two() {
                    log::warn!(
                        "osprofiler: driver {} cannot keep {} provisional traces ({} failures so                          far), will retry: {e}",
                        s.driver.name(),
                        ids.len(),
                        self.keep_failures
                    );
                }
            }
        }
    }

    /// Between batches: keeps to retry, a sweep or a prune when due, the debug log.
    fn tick(&mut self, s: &Shared) {
        self.write_keeps(s);
        let now = Instant::now();
        if self.sweeping && now >= self.next_sweep {
            self.next_sweep = now + Self::sweep_every(s);
            match s.driver.sweep() {
                Ok(n) => {
                    s.provisional[3].fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => self.failed(s, "sweep provisional traces", &e),
            }
        }
        if let (Some(at), Some(age)) = (self.next_prune, s.opts.retention)
            && now >= at
        {
            self.next_prune = Some(now + Self::prune_every(age));
            match std::time::SystemTime::now()
                .checked_sub(age)
                .map(|cutoff| s.driver.prune(cutoff))
            {
                Some(Ok(n)) if n > 0 => log::debug!(
                    "osprofiler: driver {} deleted {n} traces older than the retention ({age:?})",
                    s.driver.name()
                ),
                Some(Err(e)) => self.failed(s, "delete old traces", &e),
                _ => {}
            }
        }
        if s.stages && now >= self.next_log {
            self.next_log = now + Self::LOG_EVERY;
            let p = s.provisional_stats();
            log::debug!(
                "osprofiler: provisional traces: {} started, {} kept, {} dropped, {} expired",
                p.started,
                p.kept,
                p.dropped,
                p.expired
            );
        }
    }

    fn failed(&mut self, s: &Shared, what: &str, e: &DriverError) {
        self.failures += 1;
        if self.failures.is_power_of_two() {
            log::warn!(
                "osprofiler: driver {} cannot {what} ({} failures so far), will retry: {e}",
                s.driver.name(),
                self.failures
            );
        }
    }
}

fn notify_done(s: &Shared) {
    let _g = s.done_lock.lock().unwrap_or_else(|e| e.into_inner());
    s.done_cv.notify_all();
}

fn sleep_or_wake(s: &Shared, timeout: Duration) {
    let mut flag = s.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
    if !*flag {
        flag = s
            .wake
            .wait_timeout(flag, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    *flag = false;
}
