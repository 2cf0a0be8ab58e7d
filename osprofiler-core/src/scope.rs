//! Carrying the trace with futures and into spawned tasks: [`trace_scope`],
//! [`TraceFutureExt`], [`with_trace`], [`spawn_traced`], [`spawn_blocking_traced`].

use crate::context::{Frame, SCOPE_DEPTH, current_frame, replace_current};
use crate::switches;
use crate::{Profiler, Trace};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// A future together with the [`Trace`] guard it runs in; see [`Trace::scope`].
    pub struct TraceOwned<F> {
        #[pin]
        fut: F,
        _trace: Trace,
    }
}

impl<F> TraceOwned<F> {
    pub(crate) fn new(fut: F, trace: Trace) -> Self {
        TraceOwned { fut, _trace: trace }
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
    pub(crate) fn new(inner: F, ctx: Option<Arc<Frame>>) -> Self {
        InTrace { inner, ctx }
    }
}

/// Restores the previous context when a poll ends, even by panic.
pub(crate) struct Entered<'a> {
    slot: &'a mut Option<Arc<Frame>>,
    prev: Option<Option<Arc<Frame>>>,
}

impl<'a> Entered<'a> {
    #[inline]
    pub(crate) fn enter(slot: &'a mut Option<Arc<Frame>>) -> Self {
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

/// Runs `fut` in a scope of its own, starting with no trace: an [`init`](crate::init) inside it belongs to
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

/// The context a thread had before [`Profiler::enter`]: give it back with
/// [`Saved::restore`].
///
/// For code that is told "entered" and "exited" in two separate calls — a `tracing`
/// subscriber's `on_enter`/`on_exit` — where neither [`with_trace`] nor a future wrapper fits.
/// Restores must come in the reverse order of the enters on the same thread; dropping a
/// `Saved` without restoring it leaves the entered point current.
#[must_use = "give the context back with Saved::restore"]
pub struct Saved {
    prev: Option<Arc<Frame>>,
}

impl Saved {
    /// Makes `frame` current on this thread, saving what was.
    #[inline]
    pub(crate) fn enter(frame: Arc<Frame>) -> Saved {
        Saved {
            prev: replace_current(Some(frame)),
        }
    }

    /// Makes the context saved by [`Profiler::enter`] current again on this thread.
    #[inline]
    pub fn restore(self) {
        drop(replace_current(self.prev));
    }
}

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saved")
            .field("traced", &self.prev.is_some())
            .finish()
    }
}

impl Profiler {
    /// Makes this profiler's point the current one on this thread until the returned
    /// [`Saved`] is restored: points opened meanwhile are its children.
    ///
    /// ```
    /// use osprofiler_core::{self as osp, Info, Profiler};
    /// let root = Profiler::new_root("key", None, None).unwrap();
    /// let point = root.child("span", Info::new); // open, not current
    /// assert!(osp::get().is_none());
    /// let saved = point.profiler().unwrap().enter();
    /// assert_eq!(osp::get().unwrap().id(), point.id().unwrap());
    /// saved.restore();
    /// assert!(osp::get().is_none());
    /// ```
    #[inline]
    pub fn enter(&self) -> Saved {
        Saved::enter(self.frame.clone())
    }
}

/// Spawns a tokio task that continues the current trace (tokio's `spawn` does not), in the
/// caller's [dispatch scope](crate::dispatch) if it has one.
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
    use crate::dispatch::DispatchFutureExt;
    tokio::spawn(fut.in_current_trace().with_current_dispatch())
}

/// Runs blocking code (sync DB drivers, diesel) on tokio's blocking pool inside the current
/// trace, in the caller's [dispatch scope](crate::dispatch) if it has one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use osprofiler_core as osp;
/// osp::init("key", None, None);
/// let seen = osp::spawn_blocking_traced(|| osp::get().is_some()).await.unwrap();
/// assert!(seen);
/// osp::clean();
/// # }
/// ```
#[cfg(feature = "tokio")]
pub fn spawn_blocking_traced<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let profiler = crate::context::get();
    let dispatch = crate::dispatch::current();
    tokio::task::spawn_blocking(move || match dispatch {
        Some(d) => crate::dispatch::with_default(&d, || with_trace(profiler, f)),
        None => with_trace(profiler, f),
    })
}
