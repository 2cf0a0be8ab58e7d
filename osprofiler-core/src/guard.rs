//! The point guard: [`Trace`] opens a point and stops it when dropped.

use crate::context::{
    ACTIVE, CURRENT, Frame, Root, StopInfo, close, emit, has_current, into_parent, open,
    parent_for, replace_current,
};
use crate::headers::Verified;
use crate::id::Id;
use crate::message::{FnCall, Info, IntoInfo, LazyInfo, Phase};
use crate::scope::{InTrace, TraceOwned};
use crate::{Profiler, switches};
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

/// A point that stops when dropped (the RAII form of [`start`](crate::start)/[`stop`](crate::stop)).
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
    pub(crate) active: Option<Active>,
}

pub(crate) struct Active {
    pub(crate) frame: Arc<Frame>,
    /// Stop info, boxed so that a guard stays two words (an inactive one is one null word).
    stop: Option<Box<StopInfo>>,
}

impl Trace {
    /// The guard of a point just opened on `frame`.
    #[inline]
    pub(crate) fn of_frame(frame: Arc<Frame>) -> Trace {
        Trace {
            active: Some(Active { frame, stop: None }),
        }
    }

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
        Trace::open_child(name.into(), info, true)
    }

    /// Opens a child of the current point, made current or not (the checks are the caller's).
    #[inline(never)]
    fn open_child<F: FnOnce() -> I, I: IntoInfo>(
        name: Cow<'static, str>,
        info: F,
        make_current: bool,
    ) -> Trace {
        let info = info();
        let Some(parent) = parent_for(make_current) else {
            return Trace::inactive();
        };
        let frame = open(parent, name, info, None);
        if make_current {
            replace_current(Some(frame.clone()));
        }
        Trace::of_frame(frame)
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
        Trace::open_child(name.into(), info, false)
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
        let Some(parent) = parent_for(make_current) else {
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

    /// Makes this point the current one on this thread, as [`Profiler::enter`] does for
    /// [`Trace::profiler`], without the handle: `None` for an inactive guard.
    ///
    /// ```
    /// use osprofiler_core::{self as osp, Info, Trace};
    /// osp::init("key", None, None);
    /// let point = Trace::new_detached("span", Info::new); // open, not current
    /// let saved = point.enter().unwrap();
    /// assert_eq!(osp::get().unwrap().id(), point.id().unwrap());
    /// saved.restore();
    /// osp::clean();
    /// ```
    #[inline]
    pub fn enter(&self) -> Option<crate::scope::Saved> {
        Some(crate::scope::Saved::enter(
            self.active.as_ref()?.frame.clone(),
        ))
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
        InTrace::new(TraceOwned::new(fut, self), ctx)
    }

    /// Stops the point now (same as dropping the guard).
    pub fn finish(self) {}

    /// Stops the point now, adding `info` built when the stop message is serialized: the same
    /// as [`Trace::stop_lazy`] then dropping the guard, minus a heap allocation.
    ///
    /// ```
    /// use osprofiler_core::{self as osp, Info, message::LazyInfo, Trace};
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
    /// [`crate::message::lazy_shared`]): no allocation for the stop message's info.
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
        // In order (the usual case): the current slot's reference goes, and the parent moves
        // from the frame (its last reference, here) into the slot.
        let _ = CURRENT.try_with(|c| {
            let mut c = c.borrow_mut();
            if c.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, &frame)) {
                drop(c.take());
                *c = into_parent(frame);
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

// The constructors of points that other modules' types offer live here, with the guard they
// return, so that `context` does not depend on `guard`.
impl Profiler {
    /// A new trace (as [`Profiler::new_root`]) with its first point open — a child of
    /// `parent_id` — in one step: what server middleware does with verified headers. The root
    /// itself gets no frame, so this saves an allocation; when the point stops, no trace is
    /// left current. `staging` is set for a provisional trace.
    pub(crate) fn root_point<I: IntoInfo>(
        hmac_key: Arc<str>,
        base_id: Option<Id>,
        parent_id: Option<Id>,
        name: Cow<'static, str>,
        info: impl FnOnce() -> I,
        staging: Option<crate::sampling::Staging>,
    ) -> Trace {
        if !switches::is_enabled() {
            return Trace::inactive();
        }
        let Some(root) = Root::new_staged(hmac_key, base_id, parent_id, staging) else {
            return Trace::inactive();
        };
        let frame = Arc::new(Frame {
            root,
            id: Id::new_point(),
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
        Trace::of_frame(frame)
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
        Trace::of_frame(open(self.frame.clone(), name.into(), info(), None))
    }
}

impl Verified {
    /// Starts the trace these headers continue with its first point open, as a child of the
    /// caller's point, not installed anywhere (run a future in it with [`crate::Trace::scope`]
    /// or [`crate::TraceFutureExt::in_trace`] and the point's [`crate::Trace::profiler`]).
    /// The same as `self.profiler()` then `child(name, info)`, one allocation cheaper: what
    /// server middleware does per request. An inactive guard when profiling is disabled.
    ///
    /// ```
    /// use osprofiler_core::headers::{signed_pack, HmacKeys, TraceData};
    /// use osprofiler_core::Info;
    /// let h = signed_pack(&TraceData { base_id: "b".into(), parent_id: Some("caller".into()) }, "k");
    /// let v = HmacKeys::new(["k"]).verify(&h.x_trace_info, &h.x_trace_hmac).unwrap();
    /// let point = v.start_point("wsgi", Info::new);
    /// let p = point.profiler().unwrap();
    /// assert!(p.base_id() == &"b" && p.parent_id() == &"caller");
    /// ```
    pub fn start_point<N, F, I>(&self, name: N, info: F) -> crate::Trace
    where
        N: Into<std::borrow::Cow<'static, str>>,
        F: FnOnce() -> I,
        I: crate::message::IntoInfo,
    {
        crate::Profiler::root_point(
            self.hmac_key.clone(),
            Some(self.base_id.clone()),
            self.parent_id.clone(),
            name.into(),
            info,
            self.provisional.map(crate::sampling::Staging::callee),
        )
    }
}
