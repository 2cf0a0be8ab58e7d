//! The trace context: which trace (and which point in it) the running code belongs to.
//!
//! OSProfiler keeps its profiler in a thread-local. Rust services are async, so here the
//! context follows the *future*: a thread-local holds the current context while a future is
//! being polled, and the scope wrappers ([`InTrace`], created by [`trace_scope`],
//! [`TraceFutureExt::in_current_trace`] and [`spawn_traced`]) save it into the future between
//! polls. Sync code without tokio simply uses the thread's own context.
//!
//! Every hook starts with two cheap checks — the global `enabled` switch (one relaxed load) and
//! "is there a current context?" (one thread-local read) — and does nothing else, allocates
//! nothing and reads no clock when either says no.

use crate::message::{FnCall, Id, Identity, Info, IntoInfo, LazyInfo, Message, Phase, Stamp};
use crate::notifier::{self, Notifier};
use crate::switches;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What every point of one trace in this process shares.
pub(crate) struct Root {
    pub(crate) base_id: Id,
    /// The caller's point given to `init` (the root frame's id): the parent of top-level points.
    pub(crate) top_id: Id,
    pub(crate) identity: &'static Identity,
    pub(crate) hmac_key: Arc<str>,
    /// The key's HMAC schedule, computed the first time headers are signed.
    pub(crate) mac: std::sync::OnceLock<Option<hmac::Hmac<sha1::Sha1>>>,
    pub(crate) notifier: Arc<dyn Notifier>,
}

impl Root {
    /// Empty ids count as absent: `base_id` defaults to a new uuid4, `parent_id` to `base_id`.
    fn new(hmac_key: Arc<str>, base_id: Option<Id>, parent_id: Option<Id>) -> Arc<Root> {
        crate::message::clock::warm_up();
        let given = |id: Option<Id>| id.filter(|i| !matches!(i, Id::Text(t) if t.is_empty()));
        let base_id = given(base_id).unwrap_or_else(Id::new_v4);
        let top_id = given(parent_id).unwrap_or_else(|| base_id.clone());
        Arc::new(Root {
            base_id,
            top_id,
            identity: crate::identity(),
            hmac_key,
            mac: std::sync::OnceLock::new(),
            notifier: notifier::get(),
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
    /// The id its messages carry as `parent_id` (a point's parent; for the root frame, the
    /// base id, as OSProfiler's `get_parent_id` at the top).
    #[inline]
    fn parent_id(&self) -> &Id {
        match (&self.parent, &self.name) {
            (Some(p), _) => &p.id,
            (None, Some(_)) => &self.root.top_id,
            (None, None) => &self.root.base_id,
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Frame>>> = const { RefCell::new(None) };
    /// Mirrors `CURRENT.is_some()`. A `Cell<bool>` needs no destructor, so reading it is a
    /// single thread-local load: the "is a trace active?" check of every hook.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static SCOPE_DEPTH: Cell<u32> = const { Cell::new(0) };
}

#[inline(always)]
fn has_current() -> bool {
    ACTIVE.with(Cell::get)
}

#[inline]
fn current_frame() -> Option<Arc<Frame>> {
    if !has_current() {
        return None;
    }
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

#[inline]
fn replace_current(new: Option<Arc<Frame>>) -> Option<Arc<Frame>> {
    let active = new.is_some();
    if !active && !has_current() {
        return None; // nothing to swap: skip the destructor-registered thread-local
    }
    let prev = CURRENT.try_with(|c| c.replace(new)).ok().flatten();
    ACTIVE.with(|a| a.set(active));
    prev
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
    frame: Arc<Frame>,
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
        Some(self.base_id().with_text(pack))
    }
}

/// Starts a trace in the current scope (OSProfiler's `profiler.init`).
///
/// `base_id` defaults to a new uuid4 and `parent_id` to `base_id`. If a trace is already
/// active in this scope it is kept and returned (a second init does not replace the first).
/// Returns `None` when profiling is disabled by the runtime switch ([`crate::set_enabled`]).
///
/// In async code, call it inside a scope — a future wrapped by [`trace_scope`], a task started
/// with [`spawn_traced`], or a request handled by the HTTP layer — so that the trace belongs to
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
    /// [`TraceFutureExt::in_trace`] or [`with_trace`]. This is what server middleware does
    /// with verified headers. Same defaults as [`init`]; `None` when profiling is disabled.
    ///
    /// ```
    /// use osprofiler_core::{Profiler, TraceFutureExt};
    /// let p = Profiler::new_root("key", Some("b"), Some("caller")).unwrap();
    /// assert!(osprofiler_core::get().is_none()); // not installed
    /// assert_eq!(osprofiler_core::with_trace(Some(p), || osprofiler_core::get().unwrap().id().to_string()), "caller");
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

    /// A new trace (as [`Profiler::new_root`]) with its first point open — a child of
    /// `parent_id` — in one step: what server middleware does with verified headers. The root
    /// itself gets no frame, so this saves an allocation; when the point stops, no trace is
    /// left current.
    pub(crate) fn root_point<I: IntoInfo>(
        hmac_key: Arc<str>,
        base_id: Option<Id>,
        parent_id: Option<Id>,
        name: Cow<'static, str>,
        info: impl FnOnce() -> I,
    ) -> Trace {
        if !switches::is_enabled() {
            return Trace::inactive();
        }
        let frame = Arc::new(Frame {
            root: Root::new(hmac_key, base_id, parent_id),
            id: Id::new_v4(),
            name: Some(name),
            parent: None,
        });
        emit(
            &frame,
            Phase::Start,
            frame.parent_id(),
            info().into_parts(),
            None,
        );
        Trace {
            active: Some(Active { frame, stop: None }),
        }
    }

    /// Opens a point as a child of this profiler's current point, without installing it
    /// anywhere (see [`Trace::scope`] to run a future inside it).
    pub fn child<N, F, I>(&self, name: N, info: F) -> Trace
    where
        N: Into<Cow<'static, str>>,
        F: FnOnce() -> I,
        I: IntoInfo,
    {
        if !switches::is_enabled() {
            return Trace::inactive();
        }
        Trace {
            active: Some(Active {
                frame: open(self.frame.clone(), name.into(), info(), None),
                stop: None,
            }),
        }
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
fn emit(
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
    };
    frame.root.notifier.notify(msg);
}

/// Opens a child point of `parent` and emits its start message.
fn open(
    parent: Arc<Frame>,
    name: Cow<'static, str>,
    info: impl IntoInfo,
    function: Option<FnCall>,
) -> Arc<Frame> {
    let frame = Arc::new(Frame {
        root: parent.root.clone(),
        id: Id::new_v4(),
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
struct StopInfo(Info, Option<Arc<dyn LazyInfo>>);

impl IntoInfo for StopInfo {
    fn into_parts(self) -> (Info, Option<Arc<dyn LazyInfo>>) {
        (self.0, self.1)
    }
}

fn close(frame: &Frame, info: impl IntoInfo) {
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
/// none. Does nothing when no trace is active. Prefer the [`Trace`] guard, which cannot be
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
    let Some(parent) = current_frame() else {
        return;
    };
    let frame = open(parent, name.into(), info(), None);
    replace_current(Some(frame));
}

/// Closes the innermost open point (OSProfiler's `profiler.stop`); ignored when none is open.
#[inline]
pub fn stop<F: FnOnce() -> I, I: IntoInfo>(info: F) {
    if !has_current() || !switches::is_enabled() {
        return;
    }
    let Some(frame) = current_frame() else { return };
    if frame.name.is_none() {
        return; // only the root: stop without start is ignored, as in Python
    }
    close(&frame, info());
    replace_current(frame.parent.clone());
}

/// A point that stops when dropped (the RAII form of [`start`]/[`stop`]).
///
/// The guard remembers its own point, so it stops the right one even when dropped out of
/// order, on another thread, or while its future is being cancelled.
///
/// ```
/// use osprofiler_core::{self as osp, Trace};
/// osp::init("key", None, None);
/// {
///     let mut point = Trace::new("db", || osp::info!({"db": {"statement": "SELECT 1"}}));
///     let err = std::io::Error::other("connection reset");
///     point.error(&err); // etype = "std::io::error::Error", message = "connection reset"
/// } // db-stop sent here
/// osp::clean();
/// ```
#[must_use = "the point stops when the guard is dropped"]
pub struct Trace {
    /// `None` when inactive: one pointer-sized word, so an inactive guard costs nothing to
    /// make or drop.
    active: Option<Active>,
}

struct Active {
    frame: Arc<Frame>,
    /// Stop info, boxed so that a guard stays two words (an inactive one is one null word).
    stop: Option<Box<StopInfo>>,
}

impl Trace {
    /// Opens a point named `name` as a child of the current point and makes it current.
    #[inline(always)]
    pub fn new<N, F, I>(name: N, info: F) -> Trace
    where
        N: Into<Cow<'static, str>>,
        F: FnOnce() -> I,
        I: IntoInfo,
    {
        // Thread-local first: one %fs load, where the switch is behind a GOT indirection.
        if !has_current() || !switches::is_enabled() {
            return Trace::inactive();
        }
        Trace::open_current(name.into(), info)
    }

    #[inline(never)]
    fn open_current<F: FnOnce() -> I, I: IntoInfo>(name: Cow<'static, str>, info: F) -> Trace {
        let Some(parent) = current_frame() else {
            return Trace::inactive();
        };
        let frame = open(parent, name, info(), None);
        replace_current(Some(frame.clone()));
        Trace {
            active: Some(Active { frame, stop: None }),
        }
    }

    /// Opens a point as a child of the current point *without* making it current.
    ///
    /// Used to run a future inside the point: see [`Trace::scope`].
    #[inline]
    pub fn new_detached<N, F, I>(name: N, info: F) -> Trace
    where
        N: Into<Cow<'static, str>>,
        F: FnOnce() -> I,
        I: IntoInfo,
    {
        if !has_current() || !switches::is_enabled() {
            return Trace::inactive();
        }
        let Some(parent) = current_frame() else {
            return Trace::inactive();
        };
        Trace {
            active: Some(Active {
                frame: open(parent, name.into(), info(), None),
                stop: None,
            }),
        }
    }

    /// The point of a `#[trace]`d call (used by the macros).
    #[doc(hidden)]
    #[inline(always)]
    pub fn __call(
        name: &'static str,
        fn_name: &'static str,
        args: impl FnOnce() -> Option<String>,
        make_current: bool,
    ) -> Trace {
        if !has_current() || !switches::is_enabled() {
            return Trace::inactive();
        }
        Trace::open_call(name, fn_name, args(), make_current)
    }

    #[inline(never)]
    fn open_call(
        name: &'static str,
        fn_name: &'static str,
        args: Option<String>,
        make_current: bool,
    ) -> Trace {
        let Some(parent) = current_frame() else {
            return Trace::inactive();
        };
        let frame = open(
            parent,
            Cow::Borrowed(name),
            Info::new(),
            Some(FnCall {
                name: fn_name,
                args,
            }),
        );
        if make_current {
            replace_current(Some(frame.clone()));
        }
        Trace {
            active: Some(Active { frame, stop: None }),
        }
    }

    /// A guard that emits nothing.
    #[inline(always)]
    pub fn inactive() -> Trace {
        Trace { active: None }
    }

    /// Whether this guard has an open point (false when no trace was active).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// The point's id (`trace_id` of its messages).
    pub fn id(&self) -> Option<&Id> {
        self.active.as_ref().map(|a| &a.frame.id)
    }

    /// A profiler handle positioned at this point (for headers of calls made inside it).
    pub fn profiler(&self) -> Option<Profiler> {
        self.active.as_ref().map(|a| Profiler {
            frame: a.frame.clone(),
        })
    }

    /// Records an error for the stop message: `etype` = the error's type name, `message` = its
    /// `Display` text.
    pub fn error<E: std::fmt::Display + ?Sized>(&mut self, err: &E) {
        if self.active.is_some() {
            self.error_with(std::any::type_name::<E>(), err);
        }
    }

    /// Records an error with an explicit type name.
    pub fn error_with(&mut self, etype: &str, message: impl std::fmt::Display) {
        if let Some(a) = &mut self.active {
            let info = &mut a.stop.get_or_insert_with(Default::default).0;
            info.insert("etype".into(), etype.into());
            info.insert("message".into(), message.to_string().into());
        }
    }

    /// Adds to the stop message's info; `f` runs only when the point is active.
    #[inline]
    pub fn stop_info(&mut self, f: impl FnOnce(&mut Info)) {
        if let Some(a) = &mut self.active {
            f(&mut a.stop.get_or_insert_with(Default::default).0);
        }
    }

    /// Sets info for the stop message that is built only when serialized (see [`LazyInfo`]).
    #[inline]
    pub fn stop_lazy(&mut self, info: impl LazyInfo) {
        if let Some(a) = &mut self.active {
            a.stop.get_or_insert_with(Default::default).1 = Some(Arc::new(info));
        }
    }

    /// Runs `fut` with this point as its current point (children of `fut` nest under it); the
    /// point stops when the returned future completes or is dropped.
    pub fn scope<F: Future>(self, fut: F) -> InTrace<TraceOwned<F>> {
        let ctx = self.active.as_ref().map(|a| a.frame.clone());
        InTrace::new(TraceOwned { fut, _trace: self }, ctx)
    }

    /// Stops the point now (same as dropping the guard).
    pub fn finish(self) {}

    /// Stops the point now, adding `info` built when the stop message is serialized: the same
    /// as [`Trace::stop_lazy`] then dropping the guard, minus a heap allocation.
    ///
    /// ```
    /// use osprofiler_core::{self as osp, Info, LazyInfo, Trace};
    /// struct Rows(u64);
    /// impl LazyInfo for Rows {
    ///     fn write(&self, info: &mut Info) {
    ///         info.insert("rows".into(), self.0.into());
    ///     }
    /// }
    /// osp::init("key", None, None);
    /// Trace::new("db", Info::new).finish_lazy(Rows(3));
    /// osp::clean();
    /// ```
    #[inline]
    pub fn finish_lazy(self, info: impl LazyInfo) {
        if self.active.is_some() {
            self.finish_shared(Arc::new(info));
        }
    }

    /// Stops the point now with info shared with its start message (see
    /// [`crate::lazy_shared`]): no allocation for the stop message's info.
    #[inline]
    pub fn finish_shared<L: LazyInfo>(mut self, info: Arc<L>) {
        if let Some(active) = self.active.take() {
            active.stop_with(Some(info));
        }
    }
}

impl Drop for Trace {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            active.stop();
        }
    }
}

impl Active {
    #[inline(never)]
    fn stop(self) {
        self.stop_with(None);
    }

    /// Emits the stop message; `lazy`, if given, replaces the lazy info set so far.
    #[inline(never)]
    fn stop_with(self, lazy: Option<Arc<dyn LazyInfo>>) {
        let Active { frame, stop } = self;
        let mut info = stop.map(|b| *b).unwrap_or_default();
        if lazy.is_some() {
            info.1 = lazy;
        }
        close(&frame, info);
        let _ = CURRENT.try_with(|c| {
            let mut c = c.borrow_mut();
            if c.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, &frame)) {
                *c = frame.parent.clone();
                ACTIVE.with(|a| a.set(c.is_some()));
            }
        });
    }
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("id", &self.id()).finish()
    }
}

pin_project_lite::pin_project! {
    /// A future together with the [`Trace`] guard it runs in; see [`Trace::scope`].
    pub struct TraceOwned<F> {
        #[pin]
        fut: F,
        _trace: Trace,
    }
}

impl<F: Future> Future for TraceOwned<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().fut.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// A future that carries its own trace context: while it is polled, its context is the
    /// current one; between polls it is saved here. Created by [`trace_scope`],
    /// [`TraceFutureExt::in_current_trace`], [`TraceFutureExt::in_trace`] and [`spawn_traced`].
    pub struct InTrace<F> {
        #[pin]
        inner: F,
        ctx: Option<Arc<Frame>>,
    }
}

impl<F> InTrace<F> {
    fn new(inner: F, ctx: Option<Arc<Frame>>) -> Self {
        InTrace { inner, ctx }
    }
}

/// Restores the previous context when a poll ends, even by panic.
struct Entered<'a> {
    slot: &'a mut Option<Arc<Frame>>,
    prev: Option<Option<Arc<Frame>>>,
}

impl<'a> Entered<'a> {
    #[inline]
    fn enter(slot: &'a mut Option<Arc<Frame>>) -> Self {
        let prev = replace_current(slot.take());
        let _ = SCOPE_DEPTH.try_with(|d| d.set(d.get() + 1));
        Entered {
            slot,
            prev: Some(prev),
        }
    }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        let prev = self.prev.take().flatten();
        *self.slot = replace_current(prev);
        let _ = SCOPE_DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl<F: Future> Future for InTrace<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = Entered::enter(this.ctx);
        this.inner.poll(cx)
    }
}

/// Runs `fut` in a scope of its own, starting with no trace: an [`init`] inside it belongs to
/// this future, wherever it is polled.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use osprofiler_core as osp;
/// let base = osp::trace_scope(async {
///     let p = osp::init("key", None, None).unwrap();
///     tokio::task::yield_now().await;
///     osp::get().unwrap().base_id().to_string() == p.base_id().to_string()
/// })
/// .await;
/// assert!(base);
/// assert!(osp::get().is_none()); // the trace stayed inside the scope
/// # }
/// ```
pub fn trace_scope<F: Future>(fut: F) -> InTrace<F> {
    InTrace::new(fut, None)
}

/// Carrying the current trace into a future.
pub trait TraceFutureExt: Future + Sized {
    /// Captures the current context now; the future runs in it wherever it is polled.
    fn in_current_trace(self) -> InTrace<Self> {
        InTrace::new(
            self,
            if switches::is_enabled() {
                current_frame()
            } else {
                None
            },
        )
    }

    /// Runs the future in the given trace (or in none).
    fn in_trace(self, profiler: Option<Profiler>) -> InTrace<Self> {
        InTrace::new(self, profiler.map(|p| p.frame))
    }
}

impl<F: Future> TraceFutureExt for F {}

/// Runs `f` with `profiler` as the current trace of this thread, then restores the previous
/// one. The sync counterpart of [`TraceFutureExt::in_trace`].
pub fn with_trace<R>(profiler: Option<Profiler>, f: impl FnOnce() -> R) -> R {
    let mut slot = profiler.map(|p| p.frame);
    let _entered = Entered::enter(&mut slot);
    f()
}

/// Spawns a tokio task that continues the current trace (tokio's `spawn` does not).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use osprofiler_core as osp;
/// osp::init("key", None, None);
/// let seen = osp::spawn_traced(async { osp::get().is_some() }).await.unwrap();
/// assert!(seen);
/// osp::clean();
/// # }
/// ```
#[cfg(feature = "tokio")]
pub fn spawn_traced<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(fut.in_current_trace())
}

/// Runs blocking code (sync DB drivers, diesel) on tokio's blocking pool inside the current
/// trace.
#[cfg(feature = "tokio")]
pub fn spawn_blocking_traced<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let profiler = get();
    tokio::task::spawn_blocking(move || with_trace(profiler, f))
}

pin_project_lite::pin_project! {
    /// The future of an async fn under `#[trace]`: runs the body inside its point, records the
    /// outcome and stops the point when the body completes (or when dropped, as cancelled).
    #[doc(hidden)]
    pub struct TracedFn<F, R> {
        #[pin]
        inner: F,
        ctx: Option<Arc<Frame>>,
        trace: Trace,
        record: Option<R>,
    }

    impl<F, R> PinnedDrop for TracedFn<F, R> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Dropped before completion (timeout, select!): the guard stops the point.
            if this.record.is_some() {
                this.trace.stop_info(|i| {
                    i.insert("cancelled".into(), true.into());
                });
            }
        }
    }
}

impl<F, R> TracedFn<F, R>
where
    F: Future,
    R: FnOnce(&F::Output, &mut Trace),
{
    #[doc(hidden)]
    #[inline]
    pub fn new(trace: Trace, inner: F, record: R) -> Self {
        let ctx = trace.active.as_ref().map(|a| a.frame.clone());
        TracedFn {
            inner,
            ctx,
            trace,
            record: Some(record),
        }
    }
}

impl<F, R> Future for TracedFn<F, R>
where
    F: Future,
    R: FnOnce(&F::Output, &mut Trace),
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !this.trace.is_active() {
            return this.inner.poll(cx);
        }
        let out = {
            let _entered = Entered::enter(this.ctx);
            this.inner.poll(cx)
        };
        match out {
            Poll::Ready(out) => {
                if let Some(record) = this.record.take() {
                    record(&out, this.trace);
                }
                std::mem::replace(this.trace, Trace::inactive()).finish();
                Poll::Ready(out)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
