//! The trace context: which trace (and which point in it) the running code belongs to.
//!
//! OSProfiler keeps its profiler in a thread-local. Rust services are async, so here the
//! context follows the *future*: a thread-local holds the current context while a future is
//! being polled, and the scope wrappers ([`InTrace`](crate::scope::InTrace), created by [`trace_scope`](crate::trace_scope),
//! [`TraceFutureExt::in_current_trace`](crate::TraceFutureExt::in_current_trace) and [`spawn_traced`](crate::spawn_traced)) save it into the future between
//! polls. Sync code without tokio simply uses the thread's own context.
//!
//! Every hook starts with two cheap checks — the global `enabled` switch (one relaxed load) and
//! "is there a current context?" (one thread-local read) — and does nothing else, allocates
//! nothing and reads no clock when either says no.

use crate::clock::Stamp;
use crate::headers::{TraceHeaders, Verified};
use crate::id::Id;
use crate::message::{FnCall, Identity, Info, IntoInfo, LazyInfo, Message, Phase};
use crate::notifier::{self, Notifier};
use crate::switches;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// What every point of one trace in this process shares.
pub(crate) struct Root {
    pub(crate) base_id: Id,
    /// The caller's point given to `init` (the root frame's id): the parent of top-level points.
    pub(crate) top_id: Id,
    pub(crate) identity: &'static Identity,
    pub(crate) hmac_key: Arc<str>,
    /// The key's HMAC schedule, computed the first time headers are signed.
    pub(crate) mac: std::sync::OnceLock<Option<hmac::Hmac<sha1::Sha1>>>,
    /// The key of `db.values` digests, derived from the HMAC key the first time one is written.
    pub(crate) values_key: std::sync::OnceLock<(u64, u64)>,
    pub(crate) notifier: Arc<dyn Notifier>,
    /// Set for a provisional trace (see [`crate::sampling`]).
    pub(crate) staging: Option<crate::sampling::Staging>,
}

impl Root {
    /// Empty ids count as absent: `base_id` defaults to a new uuid4, `parent_id` to `base_id`.
    pub(crate) fn new(hmac_key: Arc<str>, base_id: Option<Id>, parent_id: Option<Id>) -> Arc<Root> {
        Root::build(hmac_key, base_id, parent_id, notifier::get(), None)
    }

    /// [`Root::new`] for a trace with this staging state. `None` for a provisional trace when
    /// the notifier it would deliver to does not stage ([`Notifier::stages`]; warned once): a
    /// provisional trace is recorded only where its collector can stage it, whether this
    /// service started it or a caller marked it.
    pub(crate) fn new_staged(
        hmac_key: Arc<str>,
        base_id: Option<Id>,
        parent_id: Option<Id>,
        staging: Option<crate::sampling::Staging>,
    ) -> Option<Arc<Root>> {
        let notifier = notifier::get();
        if staging.is_some() && !notifier.stages() {
            crate::sampling::warn_no_staging();
            return None;
        }
        Some(Root::build(hmac_key, base_id, parent_id, notifier, staging))
    }

    fn build(
        hmac_key: Arc<str>,
        base_id: Option<Id>,
        parent_id: Option<Id>,
        notifier: Arc<dyn Notifier>,
        staging: Option<crate::sampling::Staging>,
    ) -> Arc<Root> {
        crate::clock::counter::warm_up();
        let given = |id: Option<Id>| id.filter(|i| !matches!(i, Id::Text(t) if t.is_empty()));
        let base_id = given(base_id).unwrap_or_else(Id::new_v4);
        let top_id = given(parent_id).unwrap_or_else(|| base_id.clone());
        Arc::new(Root {
            base_id,
            top_id,
            identity: crate::identity(),
            hmac_key,
            mac: std::sync::OnceLock::new(),
            values_key: std::sync::OnceLock::new(),
            notifier,
            staging,
        })
    }
}

/// One level of the trace stack: the root (ids given to `init`) or an open point.
pub(crate) struct Frame {
    pub(crate) root: Arc<Root>,
    pub(crate) id: Id,
    /// `None` for the root frame.
    pub(crate) name: Option<Cow<'static, str>>,
    /// `None` for the root frame, and for a point opened as the trace's first (see
    /// [`Profiler::root_point`]), whose parent is the root's `top_id`.
    pub(crate) parent: Option<Arc<Frame>>,
}

impl Frame {
    /// Whether this is the first point the process opened in the trace (its parent is the
    /// caller's point, or the root frame).
    pub(crate) fn is_top_point(&self) -> bool {
        self.name.is_some() && self.parent.as_ref().is_none_or(|p| p.name.is_none())
    }

    /// The id its messages carry as `parent_id` (a point's parent; for the root frame, the
    /// base id, as OSProfiler's `get_parent_id` at the top).
    #[inline]
    pub(crate) fn parent_id(&self) -> &Id {
        match (&self.parent, &self.name) {
            (Some(p), _) => &p.id,
            (None, Some(_)) => &self.root.top_id,
            (None, None) => &self.root.base_id,
        }
    }
}

thread_local! {
    pub(crate) static CURRENT: RefCell<Option<Arc<Frame>>> = const { RefCell::new(None) };
    /// Mirrors `CURRENT.is_some()`. A `Cell<bool>` needs no destructor, so reading it is a
    /// single thread-local load: the "is a trace active?" check of every hook.
    pub(crate) static ACTIVE: Cell<bool> = const { Cell::new(false) };
    pub(crate) static SCOPE_DEPTH: Cell<u32> = const { Cell::new(0) };
}

#[inline(always)]
pub(crate) fn has_current() -> bool {
    ACTIVE.with(Cell::get)
}

#[inline]
pub(crate) fn current_frame() -> Option<Arc<Frame>> {
    if !has_current() {
        return None;
    }
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

#[inline]
pub(crate) fn replace_current(new: Option<Arc<Frame>>) -> Option<Arc<Frame>> {
    let active = new.is_some();
    if !active && !has_current() {
        return None; // nothing to swap: skip the destructor-registered thread-local
    }
    let prev = CURRENT.try_with(|c| c.replace(new)).ok().flatten();
    ACTIVE.with(|a| a.set(active));
    prev
}

/// The frame a new point opens on, and what it then does with the current slot: made current,
/// the point takes its parent out of the slot (its reference moves into the child, which
/// [`replace_current`] then puts back: one atomic increment and one decrement fewer than
/// cloning the parent and dropping the old value; hooks running in between, a notifier that
/// traces, find no trace); detached, it shares the current frame.
#[inline]
pub(crate) fn parent_for(make_current: bool) -> Option<Arc<Frame>> {
    if make_current {
        replace_current(None)
    } else {
        current_frame()
    }
}

/// The current frame's parent once `frame` (taken out of the current slot, or its last other
/// reference dropped) stops: moved out when `frame` is the last reference, as it is for a
/// point stopped in order (no increment for the parent, no decrement for the frame).
#[inline]
pub(crate) fn into_parent(frame: Arc<Frame>) -> Option<Arc<Frame>> {
    match Arc::try_unwrap(frame) {
        Ok(f) => f.parent,
        Err(shared) => shared.parent.clone(),
    }
}

/// True when profiling is enabled and a trace is active in the current task or thread.
///
/// This is the check every hook makes first; it costs about a nanosecond. Use it to skip
/// building expensive info yourself.
///
/// ```
/// assert!(!osprofiler_core::is_active());
/// ```
#[inline]
pub fn is_active() -> bool {
    has_current() && switches::is_enabled()
}

/// A handle on the current trace, as returned by [`init`] and [`get`].
///
/// It is a snapshot: it names the trace and the innermost point at the time it was taken.
#[derive(Clone)]
pub struct Profiler {
    pub(crate) frame: Arc<Frame>,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler")
            .field("base_id", self.base_id())
            .field("parent_id", self.parent_id())
            .field("id", self.id())
            .finish_non_exhaustive()
    }
}

impl Profiler {
    /// The trace's id, shared by every point.
    pub fn base_id(&self) -> &Id {
        &self.frame.root.base_id
    }
    /// The innermost open point's id (the `parent_id` given to init when no point is open).
    pub fn id(&self) -> &Id {
        &self.frame.id
    }
    /// The parent of [`Profiler::id`] (OSProfiler's `get_parent_id`): the base id at the top.
    pub fn parent_id(&self) -> &Id {
        self.frame.parent_id()
    }
    /// The name of the innermost open point, if any.
    pub fn current_point(&self) -> Option<&str> {
        self.frame.name.as_deref()
    }
    /// The key that signs outgoing trace headers (the one that admitted this trace).
    pub fn hmac_key(&self) -> &str {
        &self.frame.root.hmac_key
    }
    /// Project, service and host of this process's points.
    pub fn identity(&self) -> &Identity {
        self.frame.root.identity
    }
    /// Signed headers for an outgoing call made from here (`None` without an hmac key).
    pub fn headers(&self) -> Option<crate::TraceHeaders> {
        let root = &self.frame.root;
        let mac = root
            .mac
            .get_or_init(|| crate::headers::keyed_mac(&root.hmac_key))
            .clone()?;
        let pack = |base: &str| {
            self.id()
                .with_text(|id| crate::headers::pack_with(base, Some(id), Some(mac)))
        };
        let mut headers = self.base_id().with_text(pack);
        headers.x_trace_provisional =
            crate::sampling::Provisional::of_flags(root.staging_flags()).map(|p| p.header_value());
        Some(headers)
    }
}

/// Starts a trace in the current scope (OSProfiler's `profiler.init`).
///
/// `base_id` defaults to a new uuid4 and `parent_id` to `base_id`. If a trace is already
/// active in this scope it is kept and returned (a second init does not replace the first).
/// Returns `None` when profiling is disabled by the runtime switch ([`crate::set_enabled`]).
///
/// In async code, call it inside a scope — a future wrapped by [`trace_scope`](crate::trace_scope), a task started
/// with [`spawn_traced`](crate::spawn_traced), or a request handled by the HTTP layer — so that the trace belongs to
/// that future and not to the worker thread.
///
/// ```
/// use osprofiler_core as osp;
/// let p = osp::init("SECRET_KEY", None, None).unwrap();
/// assert_eq!(p.id(), p.base_id()); // parent_id defaults to base_id
/// let again = osp::init("other", Some("ignored"), None).unwrap();
/// assert_eq!(again.base_id(), p.base_id());
/// osp::clean();
/// ```
pub fn init(hmac_key: &str, base_id: Option<&str>, parent_id: Option<&str>) -> Option<Profiler> {
    init_with(|| Profiler::new_root(hmac_key, base_id, parent_id))
}

/// [`init`] with the root made by `root` (called only when no trace is active yet).
pub(crate) fn init_with(root: impl FnOnce() -> Option<Profiler>) -> Option<Profiler> {
    if !switches::is_enabled() {
        return None;
    }
    if let Some(frame) = current_frame() {
        return Some(Profiler { frame });
    }
    warn_if_unscoped_task();
    let p = root()?;
    replace_current(Some(p.frame.clone()));
    Some(p)
}

impl Profiler {
    /// A new trace that is not installed anywhere: run code in it with
    /// [`TraceFutureExt::in_trace`](crate::TraceFutureExt::in_trace) or [`with_trace`](crate::scope::with_trace). This is what server middleware does
    /// with verified headers. Same defaults as [`init`]; `None` when profiling is disabled.
    ///
    /// ```
    /// use osprofiler_core::{Profiler, TraceFutureExt};
    /// let p = Profiler::new_root("key", Some("b"), Some("caller")).unwrap();
    /// assert!(osprofiler_core::get().is_none()); // not installed
    /// assert_eq!(osprofiler_core::scope::with_trace(Some(p), || osprofiler_core::get().unwrap().id().to_string()), "caller");
    /// ```
    pub fn new_root(
        hmac_key: &str,
        base_id: Option<&str>,
        parent_id: Option<&str>,
    ) -> Option<Profiler> {
        if !switches::is_enabled() {
            return None;
        }
        Self::new_root_ids(
            Arc::from(hmac_key),
            base_id.map(Id::from),
            parent_id.map(Id::from),
        )
    }

    /// [`Profiler::new_root`] with the ids already parsed and a key already shared (a verified
    /// request's, from [`crate::headers::HmacKeys`]): no copy of either.
    pub(crate) fn new_root_ids(
        hmac_key: Arc<str>,
        base_id: Option<Id>,
        parent_id: Option<Id>,
    ) -> Option<Profiler> {
        if !switches::is_enabled() {
            return None;
        }
        let root = Root::new(hmac_key, base_id, parent_id);
        let frame = Arc::new(Frame {
            id: root.top_id.clone(),
            root,
            name: None,
            parent: None,
        });
        Some(Profiler { frame })
    }
}

#[cfg(feature = "tokio")]
fn warn_if_unscoped_task() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    let unscoped = SCOPE_DEPTH.try_with(Cell::get).unwrap_or(0) == 0;
    if unscoped && tokio::task::try_id().is_some() && !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "osprofiler: init() called in a tokio task outside a trace scope; the trace is bound \
             to the worker thread and will be lost or leak across tasks. Wrap the task with \
             osprofiler_core::trace_scope() or start it with spawn_traced()."
        );
    }
}

#[cfg(not(feature = "tokio"))]
fn warn_if_unscoped_task() {}

/// The current trace, if one is active in this scope (OSProfiler's `profiler.get`).
#[inline]
pub fn get() -> Option<Profiler> {
    if !switches::is_enabled() {
        return None;
    }
    current_frame().map(|frame| Profiler { frame })
}

/// Ends the current trace in this scope without emitting anything (OSProfiler's `clean`).
pub fn clean() {
    drop(replace_current(None));
}

#[inline]
pub(crate) fn emit(
    frame: &Frame,
    phase: Phase,
    parent_id: &Id,
    info: (Info, Option<Arc<dyn LazyInfo>>),
    function: Option<FnCall>,
) {
    let Some(name) = frame.name.clone() else {
        return;
    };
    let msg = Message {
        base_id: frame.root.base_id.clone(),
        identity: frame.root.identity,
        name,
        phase,
        trace_id: frame.id.clone(),
        parent_id: parent_id.clone(),
        stamp: Stamp::now(),
        info: info.0,
        function,
        lazy: info.1,
        staging: match &frame.root.staging {
            None => 0,
            Some(st) => st.message_flags(frame, phase),
        },
        queued_bytes: 0,
    };
    frame.root.notifier.notify(msg);
}

/// Opens a child point of `parent` and emits its start message.
pub(crate) fn open(
    parent: Arc<Frame>,
    name: Cow<'static, str>,
    info: impl IntoInfo,
    function: Option<FnCall>,
) -> Arc<Frame> {
    let frame = Arc::new(Frame {
        root: parent.root.clone(),
        id: Id::new_point(),
        name: Some(name),
        parent: Some(parent),
    });
    emit(
        &frame,
        Phase::Start,
        frame.parent_id(),
        info.into_parts(),
        function,
    );
    frame
}

#[derive(Default)]
pub(crate) struct StopInfo(pub(crate) Info, pub(crate) Option<Arc<dyn LazyInfo>>);

impl IntoInfo for StopInfo {
    fn into_parts(self) -> (Info, Option<Arc<dyn LazyInfo>>) {
        (self.0, self.1)
    }
}

pub(crate) fn close(frame: &Frame, info: impl IntoInfo) {
    emit(
        frame,
        Phase::Stop,
        frame.parent_id(),
        info.into_parts(),
        None,
    );
}

/// Opens a point named `name` in the current trace (OSProfiler's `profiler.start`).
///
/// `info` is called only if the point is really emitted: pass a closure, or `Info::new` for
/// none. Does nothing when no trace is active. Prefer the [`Trace`](crate::Trace) guard, which cannot be
/// left open.
///
/// ```
/// use osprofiler_core as osp;
/// osp::start("never-emitted", || -> osp::Info { unreachable!("no trace is active") }); // no-op
/// osp::init("key", None, None);
/// osp::start("db", || osp::info!({"db": {"statement": "SELECT 1"}}));
/// osp::stop(osp::Info::new);
/// osp::clean();
/// ```
#[inline]
pub fn start<N, F, I>(name: N, info: F)
where
    N: Into<Cow<'static, str>>,
    F: FnOnce() -> I,
    I: IntoInfo,
{
    if !has_current() || !switches::is_enabled() {
        return;
    }
    let info = info();
    let Some(parent) = parent_for(true) else {
        return;
    };
    let frame = open(parent, name.into(), info, None);
    replace_current(Some(frame));
}

/// Closes the innermost open point (OSProfiler's `profiler.stop`); ignored when none is open.
#[inline]
pub fn stop<F: FnOnce() -> I, I: IntoInfo>(info: F) {
    if !has_current() || !switches::is_enabled() {
        return;
    }
    let point_open = CURRENT
        .try_with(|c| c.borrow().as_ref().is_some_and(|f| f.name.is_some()))
        .unwrap_or(false);
    if !point_open {
        return; // only the root: stop without start is ignored, as in Python
    }
    let info = info();
    let Some(frame) = replace_current(None) else {
        return;
    };
    close(&frame, info);
    replace_current(into_parent(frame));
}

/// What verified trace headers start: the context takes the plain data [`Verified`] holds
/// (headers never call into the context).
impl Verified {
    /// A trace root for these ids and key, not installed anywhere
    /// ([`crate::Profiler::new_root`]): run a handler in it.
    pub fn profiler(&self) -> Option<crate::Profiler> {
        if !switches::is_enabled() {
            return None;
        }
        let root = Root::new_staged(
            self.hmac_key.clone(),
            Some(self.base_id.clone()),
            self.parent_id.clone(),
            self.provisional.map(crate::sampling::Staging::callee),
        )?;
        Some(crate::Profiler {
            frame: Arc::new(Frame {
                id: root.top_id.clone(),
                root,
                name: None,
                parent: None,
            }),
        })
    }

    /// Starts the trace in the current scope ([`crate::init`] with these ids and key).
    pub fn init(&self) -> Option<crate::Profiler> {
        init_with(|| self.profiler())
    }
}

/// Signed headers for an outgoing call from the current point, or `None` when no trace is
/// active (or it has no key). Parent = the innermost open point; key = the one that admitted
/// the trace (or was given to init).
///
/// ```
/// use osprofiler_core as osp;
/// assert!(osp::trace_headers().is_none());
/// osp::init("SECRET_KEY", None, None);
/// let h = osp::trace_headers().unwrap();
/// assert!(osp::headers::signed_unpack(&h.x_trace_info, &h.x_trace_hmac, &["SECRET_KEY"]).is_some());
/// osp::clean();
/// ```
#[inline]
pub fn trace_headers() -> Option<TraceHeaders> {
    get()?.headers()
}
