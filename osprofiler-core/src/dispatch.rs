//! Scoped dispatch: the notifier and runtime switches a block of code — or a future, wherever
//! it is polled — sees instead of the process-wide ones.
//!
//! A service sets its notifier once ([`notifier::set`](crate::notifier::set)) and its switches
//! once ([`set_trace_sql`](crate::set_trace_sql), ...): they are process-wide. Tests, and a
//! program that wants a few tasks traced somewhere else, install a [`Dispatch`] instead:
//!
//! - [`with_default`] runs a closure with a dispatch installed on this thread;
//! - [`set_default`] installs one until the returned [`DefaultGuard`] drops;
//! - [`DispatchFutureExt::with_dispatch`] makes a future see its dispatch at every poll (and
//!   while it is dropped), on whichever thread polls it: the dispatch is task-local;
//! - [`spawn_traced`](crate::spawn_traced) and [`spawn_blocking_traced`](crate::spawn_blocking_traced)
//!   carry the caller's dispatch into the task they start.
//!
//! Inside a scope, [`notifier::get`](crate::notifier::get) returns the dispatch's notifier and
//! the switch getters ([`is_enabled`](crate::is_enabled), [`trace_sql`](crate::trace_sql),
//! [`trace_sql_params`](crate::trace_sql_params),
//! [`filter_error_trace`](crate::filter_error_trace)) the dispatch's value where it sets one,
//! else the process-wide one. The setters keep setting the process-wide values.
//!
//! A trace keeps the notifier it started with: a trace started inside a scope delivers to the
//! scope's notifier wherever its points run, even on a thread outside the scope. Switches are
//! read where a point is made; a collector's worker thread runs outside any scope (a collector
//! that follows `filter_error_trace` reads the process-wide switch; give it its own setting).
//!
//! So two tests of one binary can each have their own collector and their own `trace_sql`, and
//! run in parallel:
//!
//! ```
//! use osprofiler_core::{self as osp, dispatch::{self, Dispatch}, memory::MemoryCollector};
//! use osprofiler_core::notifier::{QueueNotifier, QueueOptions};
//! use std::time::Duration;
//!
//! let memory = MemoryCollector::new();
//! let notifier = QueueNotifier::start(memory.clone(), QueueOptions::default()).unwrap();
//! let mine = Dispatch::new(notifier.clone()).enabled(true).trace_sql(true);
//! let base = dispatch::with_default(&mine, || {
//!     assert!(osp::trace_sql()); // this scope's value, whatever the process-wide one is
//!     let p = osp::init("key", None, None).unwrap();
//!     osp::Trace::new("db", osp::Info::new).finish();
//!     osp::clean();
//!     p.base_id().to_string()
//! });
//! assert!(notifier.flush_for(Duration::from_secs(5)));
//! assert_eq!(memory.trace(&base).len(), 2); // only this scope's notifier got them
//! ```
//!
//! ## Cost
//! When no scope exists anywhere in the process, a getter costs what it cost before: the count
//! of scopes shares its word with the `enabled` switch, so [`is_enabled`](crate::is_enabled) is
//! still one relaxed load, and the other getters read a thread-local only when that count is
//! not zero. A future wrapped by [`DispatchFutureExt::with_dispatch`] counts as one scope from
//! its creation to its drop; its polls only swap a thread-local.

use crate::notifier::Notifier;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};

/// What a scope sees: a notifier, and the switches it sets (the others are the process-wide
/// ones). Cheap to clone: one reference count.
///
/// ```
/// use osprofiler_core::{dispatch::Dispatch, notifier::NoopNotifier};
/// use std::sync::Arc;
/// let d = Dispatch::new(Arc::new(NoopNotifier)).trace_sql(true).trace_sql_params(false);
/// let copy = d.clone(); // shares the settings
/// assert!(format!("{copy:?}").contains("trace_sql: Some(true)"));
/// ```
#[derive(Clone)]
pub struct Dispatch {
    pub(crate) inner: Arc<Inner>,
}

/// Bit 0: the process-wide `enabled` switch. The other bits: how many dispatch scopes exist
/// (each adds [`SCOPE`]). One word, so that [`is_enabled`](crate::is_enabled) answers with one load when no scope
/// exists — the hot path of every hook.
pub(crate) static STATE: AtomicUsize = AtomicUsize::new(ENABLED);
pub(crate) const ENABLED: usize = 1;
const SCOPE: usize = 2;

/// Whether a dispatch scope exists anywhere in the process (then getters look at this
/// thread's).
#[inline(always)]
pub(crate) fn any_scope() -> bool {
    STATE.load(Relaxed) >= SCOPE
}

pub(crate) fn scope_created() {
    STATE.fetch_add(SCOPE, Relaxed);
}

pub(crate) fn scope_dropped() {
    STATE.fetch_sub(SCOPE, Relaxed);
}

/// The process-wide `enabled` switch, whatever the scope.
#[cfg(test)]
pub(crate) fn global_enabled() -> bool {
    STATE.load(Relaxed) & ENABLED != 0
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) enabled: Option<bool>,
    pub(crate) trace_sql: Option<bool>,
    pub(crate) trace_sql_params: Option<bool>,
    pub(crate) filter_error_trace: Option<bool>,
}

impl Dispatch {
    /// A dispatch to `notifier`, with every switch left to its process-wide value.
    ///
    /// ```
    /// use osprofiler_core::{dispatch::{self, Dispatch}, memory::MemoryCollector, notifier};
    /// use std::sync::Arc;
    /// let n = notifier::QueueNotifier::start(MemoryCollector::new(), Default::default()).unwrap();
    /// let d = Dispatch::new(n.clone());
    /// dispatch::with_default(&d, || {
    ///     let seen = notifier::get();
    ///     assert!(Arc::ptr_eq(&seen, &(n.clone() as Arc<dyn notifier::Notifier>)));
    /// });
    /// ```
    pub fn new(notifier: Arc<dyn Notifier>) -> Dispatch {
        Dispatch {
            inner: Arc::new(Inner {
                notifier,
                enabled: None,
                trace_sql: None,
                trace_sql_params: None,
                filter_error_trace: None,
            }),
        }
    }

    fn with(mut self, set: impl FnOnce(&mut Inner)) -> Dispatch {
        set(Arc::make_mut(&mut self.inner));
        self
    }

    /// Profiling on or off in the scope (see [`crate::is_enabled`]).
    ///
    /// ```
    /// use osprofiler_core::{self as osp, dispatch::{self, Dispatch}, notifier::NoopNotifier};
    /// use std::sync::Arc;
    /// let off = Dispatch::new(Arc::new(NoopNotifier)).enabled(false);
    /// dispatch::with_default(&off, || assert!(osp::init("key", None, None).is_none()));
    /// ```
    pub fn enabled(self, on: bool) -> Dispatch {
        self.with(|i| i.enabled = Some(on))
    }

    /// SQL text recorded by DB adapters in the scope, or not (see [`crate::trace_sql`]).
    ///
    /// ```
    /// use osprofiler_core::{self as osp, dispatch::{self, Dispatch}, notifier::NoopNotifier};
    /// use std::sync::Arc;
    /// let sql = Dispatch::new(Arc::new(NoopNotifier)).trace_sql(true);
    /// assert!(dispatch::with_default(&sql, osp::trace_sql));
    /// ```
    pub fn trace_sql(self, on: bool) -> Dispatch {
        self.with(|i| i.trace_sql = Some(on))
    }

    /// Bound parameter values recorded in the scope, or not (see [`crate::trace_sql_params`]).
    ///
    /// ```
    /// use osprofiler_core::{self as osp, dispatch::{self, Dispatch}, notifier::NoopNotifier};
    /// use std::sync::Arc;
    /// let params = Dispatch::new(Arc::new(NoopNotifier)).trace_sql_params(true);
    /// assert!(dispatch::with_default(&params, osp::trace_sql_params));
    /// ```
    pub fn trace_sql_params(self, on: bool) -> Dispatch {
        self.with(|i| i.trace_sql_params = Some(on))
    }

    /// Error-trace indexing in the scope, or not (see [`crate::filter_error_trace`]; read by
    /// code running in the scope, not by a collector's worker thread).
    ///
    /// ```
    /// use osprofiler_core::{self as osp, dispatch::{self, Dispatch}, notifier::NoopNotifier};
    /// use std::sync::Arc;
    /// let errors = Dispatch::new(Arc::new(NoopNotifier)).filter_error_trace(true);
    /// assert!(dispatch::with_default(&errors, osp::filter_error_trace));
    /// ```
    pub fn filter_error_trace(self, on: bool) -> Dispatch {
        self.with(|i| i.filter_error_trace = Some(on))
    }

    /// The scope's notifier.
    ///
    /// ```
    /// use osprofiler_core::{dispatch::Dispatch, notifier::NoopNotifier};
    /// use std::{sync::Arc, time::Duration};
    /// let d = Dispatch::new(Arc::new(NoopNotifier));
    /// assert!(d.notifier().flush(Duration::from_secs(1)));
    /// ```
    pub fn notifier(&self) -> &Arc<dyn Notifier> {
        &self.inner.notifier
    }
}

impl fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("Dispatch")
            .field("notifier", &i.notifier.stats())
            .field("enabled", &i.enabled)
            .field("trace_sql", &i.trace_sql)
            .field("trace_sql_params", &i.trace_sql_params)
            .field("filter_error_trace", &i.filter_error_trace)
            .finish()
    }
}

thread_local! {
    /// The dispatch installed on this thread (by a guard, or by the future being polled).
    static CURRENT: RefCell<Option<Dispatch>> = const { RefCell::new(None) };
    /// Its `enabled` setting (0: none, 1: off, 2: on), mirrored in a destructor-free cell so
    /// that [`crate::is_enabled`] reads it inline, without a call on the hooks' path.
    static ENABLED_HERE: Cell<u8> = const { Cell::new(0) };
}

/// The `enabled` setting of the dispatch installed on this thread, if it sets one.
#[inline(always)]
pub(crate) fn enabled_here() -> Option<bool> {
    match ENABLED_HERE.with(Cell::get) {
        0 => None,
        on => Some(on == 2),
    }
}

/// One scope in existence (a guard, or a future wrapped with a dispatch): counted while it
/// lives, so that getters look at the thread-local only when some scope exists.
struct Counted;

impl Counted {
    fn new() -> Counted {
        scope_created();
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        scope_dropped();
    }
}

/// A value of the dispatch installed on this thread (`None` when none is, or it does not set
/// what `pick` reads). Called only when some scope exists.
#[cold]
#[inline(never)]
pub(crate) fn scoped<T>(pick: impl FnOnce(&Inner) -> Option<T>) -> Option<T> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().and_then(|d| pick(&d.inner)))
        .ok()
        .flatten()
}

/// Puts `new` on this thread, returning what was there (`Err` when the thread-local is gone:
/// the thread is exiting).
fn replace(new: Option<Dispatch>) -> Result<Option<Dispatch>, Option<Dispatch>> {
    let enabled = match new.as_ref().and_then(|d| d.inner.enabled) {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    let mut new = Some(new);
    let prev = CURRENT
        .try_with(|c| c.replace(new.take().flatten()))
        .map_err(|_| new.flatten())?;
    ENABLED_HERE.with(|e| e.set(enabled));
    Ok(prev)
}

/// The dispatch installed on this thread or task, if any (to carry it somewhere else, e.g.
/// into a thread with [`with_default`]).
///
/// ```
/// use osprofiler_core::{dispatch::{self, Dispatch}, notifier::NoopNotifier};
/// use std::sync::Arc;
/// assert!(dispatch::current().is_none());
/// let d = Dispatch::new(Arc::new(NoopNotifier)).trace_sql(true);
/// dispatch::with_default(&d, || {
///     let here = dispatch::current().unwrap();
///     let seen = std::thread::spawn(move || dispatch::with_default(&here, osprofiler_core::trace_sql));
///     assert!(seen.join().unwrap());
/// });
/// ```
pub fn current() -> Option<Dispatch> {
    if !any_scope() {
        return None;
    }
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Runs `f` with `dispatch` installed on this thread, then puts back what was installed before
/// (also when `f` panics). Scopes nest: the innermost one is seen.
///
/// ```
/// use osprofiler_core::{self as osp, dispatch::{self, Dispatch}, notifier::NoopNotifier};
/// use std::sync::Arc;
/// let n = Arc::new(NoopNotifier);
/// let (outer, inner) = (Dispatch::new(n.clone()).trace_sql(true), Dispatch::new(n).trace_sql(false));
/// dispatch::with_default(&outer, || {
///     assert!(osp::trace_sql());
///     dispatch::with_default(&inner, || assert!(!osp::trace_sql()));
///     assert!(osp::trace_sql());
/// });
/// ```
pub fn with_default<R>(dispatch: &Dispatch, f: impl FnOnce() -> R) -> R {
    let _guard = set_default(dispatch);
    f()
}

/// Installs `dispatch` on this thread until the returned guard drops; the guard puts back what
/// was installed before. Guards nest; drop them in the reverse order of their creation (as
/// scopes do).
///
/// ```
/// use osprofiler_core::{self as osp, dispatch::{self, Dispatch}, notifier::NoopNotifier};
/// use std::sync::Arc;
/// let guard = dispatch::set_default(&Dispatch::new(Arc::new(NoopNotifier)).trace_sql_params(true));
/// assert!(osp::trace_sql_params());
/// drop(guard);
/// assert!(dispatch::current().is_none());
/// ```
#[must_use = "the dispatch is uninstalled when the guard drops"]
pub fn set_default(dispatch: &Dispatch) -> DefaultGuard {
    let counted = Counted::new();
    match replace(Some(dispatch.clone())) {
        Ok(prev) => DefaultGuard {
            prev: Some(prev),
            _counted: counted,
            _not_send: PhantomData,
        },
        // The thread is exiting: nothing installed, nothing to put back.
        Err(_) => DefaultGuard {
            prev: None,
            _counted: counted,
            _not_send: PhantomData,
        },
    }
}

/// Keeps a dispatch installed on this thread (see [`set_default`]); puts back the previous one
/// when dropped, also during a panic. Not `Send`: it restores this thread's state.
///
/// ```
/// use osprofiler_core::{self as osp, dispatch::{self, Dispatch}, notifier::NoopNotifier};
/// use std::sync::Arc;
/// let r = std::panic::catch_unwind(|| {
///     let _guard = dispatch::set_default(&Dispatch::new(Arc::new(NoopNotifier)).trace_sql(true));
///     panic!("a failing test");
/// });
/// assert!(r.is_err());
/// assert!(dispatch::current().is_none()); // unwinding dropped the guard
/// ```
pub struct DefaultGuard {
    /// What to put back (`None`: nothing was installed).
    prev: Option<Option<Dispatch>>,
    _counted: Counted,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for DefaultGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultGuard").finish_non_exhaustive()
    }
}

impl Drop for DefaultGuard {
    fn drop(&mut self) {
        if let Some(prev) = self.prev.take() {
            // Dropped outside the thread-local's borrow (a notifier's last handle may flush).
            drop(replace(prev));
        }
    }
}

/// Installs a future's dispatch on the polling thread for one poll (or its drop), then puts
/// back what was there, also on panic.
struct Installed<'a> {
    slot: &'a mut Option<Dispatch>,
    prev: Option<Option<Dispatch>>,
}

impl<'a> Installed<'a> {
    fn enter(slot: &'a mut Option<Dispatch>) -> Installed<'a> {
        let prev = match slot.take() {
            Some(d) => match replace(Some(d)) {
                Ok(prev) => Some(prev),
                Err(d) => {
                    *slot = d; // the thread is exiting: run without it
                    None
                }
            },
            None => None,
        };
        Installed { slot, prev }
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        if let Some(prev) = self.prev.take()
            && let Ok(mine) = replace(prev)
        {
            *self.slot = mine;
        }
    }
}

pin_project_lite::pin_project! {
    /// A future that sees its own dispatch: installed on the polling thread for each poll and
    /// for its drop, whichever thread that is. Made by [`DispatchFutureExt::with_dispatch`] and
    /// [`DispatchFutureExt::with_current_dispatch`]; it counts as one scope while it exists.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use osprofiler_core::{self as osp, dispatch::{self, Dispatch, DispatchFutureExt}, notifier::NoopNotifier};
    /// use std::sync::Arc;
    /// let sql = Dispatch::new(Arc::new(NoopNotifier)).trace_sql(true);
    /// let (a, b) = tokio::join!(
    ///     async { tokio::task::yield_now().await; osp::trace_sql() }.with_dispatch(sql),
    ///     async { tokio::task::yield_now().await; osp::trace_sql() }, // no scope: the global
    /// );
    /// assert!(a && !b); // interleaved on one thread, each saw its own
    /// # }
    /// ```
    pub struct WithDispatch<F> {
        #[pin]
        inner: Option<F>,
        dispatch: Option<Dispatch>,
        counted: Option<Counted>,
    }

    impl<F> PinnedDrop for WithDispatch<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.inner.is_some() {
                // The future's destructors (a cancelled point's stop) run in its scope too.
                let _in = Installed::enter(this.dispatch);
                this.inner.set(None);
            }
        }
    }
}

impl<F> WithDispatch<F> {
    fn new(inner: F, dispatch: Option<Dispatch>) -> Self {
        WithDispatch {
            counted: dispatch.as_ref().map(|_| Counted::new()),
            inner: Some(inner),
            dispatch,
        }
    }
}

impl<F> fmt::Debug for WithDispatch<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithDispatch")
            .field("dispatch", &self.dispatch)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for WithDispatch<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let _in = Installed::enter(this.dispatch);
        let fut = this
            .inner
            .as_mut()
            .as_pin_mut()
            .expect("WithDispatch polled after it completed");
        let out = fut.poll(cx);
        if out.is_ready() {
            // Dropped here, in the scope, rather than later outside it.
            this.inner.set(None);
        }
        out
    }
}

/// Running futures in a dispatch scope: implemented for every future.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use osprofiler_core::{self as osp, dispatch::{Dispatch, DispatchFutureExt}, notifier::NoopNotifier};
/// use std::sync::Arc;
/// let off = Dispatch::new(Arc::new(NoopNotifier)).enabled(false);
/// let traced = async { osp::trace_scope(async { osp::init("key", None, None).is_some() }).await };
/// assert!(!traced.with_dispatch(off).await);
/// # }
/// ```
pub trait DispatchFutureExt: Future + Sized {
    /// The future with `dispatch` installed at each of its polls, on any thread.
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
    /// use osprofiler_core::{self as osp, dispatch::{Dispatch, DispatchFutureExt}, notifier::NoopNotifier};
    /// use std::sync::Arc;
    /// let d = Dispatch::new(Arc::new(NoopNotifier)).trace_sql(true);
    /// let seen = tokio::spawn(async {
    ///     tokio::task::yield_now().await;
    ///     osp::trace_sql()
    /// }.with_dispatch(d));
    /// assert!(seen.await.unwrap());
    /// # }
    /// ```
    fn with_dispatch(self, dispatch: Dispatch) -> WithDispatch<Self> {
        WithDispatch::new(self, Some(dispatch))
    }

    /// The future with the dispatch installed now (if any, see [`current`]) at each of its
    /// polls: what [`spawn_traced`](crate::spawn_traced) does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use osprofiler_core::{self as osp, dispatch::{self, Dispatch, DispatchFutureExt}, notifier::NoopNotifier};
    /// use std::sync::Arc;
    /// let d = Dispatch::new(Arc::new(NoopNotifier)).trace_sql(true);
    /// let task = dispatch::with_default(&d, || tokio::spawn(async { osp::trace_sql() }.with_current_dispatch()));
    /// assert!(task.await.unwrap());
    /// # }
    /// ```
    fn with_current_dispatch(self) -> WithDispatch<Self> {
        WithDispatch::new(self, current())
    }
}

impl<F: Future> DispatchFutureExt for F {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryCollector;
    use crate::notifier::{self, NoopNotifier, QueueNotifier, QueueOptions};
    use crate::{Info, Trace};
    use std::time::Duration;

    fn collector() -> (Arc<MemoryCollector>, Arc<QueueNotifier>) {
        let memory = MemoryCollector::new();
        let n = QueueNotifier::start(memory.clone(), QueueOptions::default()).unwrap();
        (memory, n)
    }

    fn is(a: &Arc<dyn Notifier>, b: &Arc<QueueNotifier>) -> bool {
        Arc::ptr_eq(a, &(b.clone() as Arc<dyn Notifier>))
    }

    /// One trace of one point; its base id.
    fn one_trace() -> String {
        let p = crate::init("k", None, None).expect("enabled in the scope");
        Trace::new("p", Info::new).finish();
        crate::clean();
        p.base_id().to_string()
    }

    #[test]
    fn scopes_nest_and_restore_what_was_installed() {
        let (_, a) = collector();
        let (_, b) = collector();
        let (da, db) = (Dispatch::new(a.clone()), Dispatch::new(b.clone()));
        assert!(current().is_none());
        with_default(&da, || {
            assert!(is(&notifier::get(), &a));
            let g = set_default(&db);
            assert!(is(&notifier::get(), &b));
            with_default(&da, || assert!(is(&notifier::get(), &a)));
            assert!(is(&notifier::get(), &b));
            drop(g);
            assert!(is(&notifier::get(), &a));
        });
        assert!(current().is_none());
    }

    #[test]
    fn a_panic_in_the_scope_restores_the_previous_dispatch() {
        let (_, a) = collector();
        let (_, b) = collector();
        let (da, db) = (Dispatch::new(a.clone()), Dispatch::new(b));
        with_default(&da, || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                with_default(&db, || panic!("in the inner scope"))
            }));
            assert!(r.is_err());
            assert!(is(&notifier::get(), &a), "the outer scope is back");
        });
        assert!(current().is_none());
    }

    #[test]
    fn switches_follow_the_scope_and_default_to_the_process_wide_values() {
        let n: Arc<dyn Notifier> = Arc::new(NoopNotifier);
        // Whatever another test of this binary sets process-wide, the scope decides.
        let on = Dispatch::new(n.clone())
            .enabled(true)
            .trace_sql(true)
            .trace_sql_params(true)
            .filter_error_trace(true);
        let off = Dispatch::new(n.clone())
            .enabled(false)
            .trace_sql(false)
            .trace_sql_params(false)
            .filter_error_trace(false);
        with_default(&on, || {
            let all = || {
                [
                    crate::is_enabled(),
                    crate::trace_sql(),
                    crate::trace_sql_params(),
                    crate::filter_error_trace(),
                ]
            };
            assert_eq!(all(), [true; 4]);
            with_default(&off, || {
                assert_eq!(all(), [false; 4]);
                assert!(crate::init("k", None, None).is_none(), "disabled here");
            });
            // A dispatch is whole: what it leaves unset is the process-wide value, not the
            // value of the scope around it.
            let only_sql = Dispatch::new(n.clone()).trace_sql(false);
            with_default(&only_sql, || {
                assert!(!crate::trace_sql());
                assert_eq!(crate::is_enabled(), global_enabled());
            });
        });
    }

    #[test]
    fn two_threads_in_two_scopes_do_not_see_each_others_messages() {
        let (ma, a) = collector();
        let (mb, b) = collector();
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let run = |d: Dispatch, barrier: Arc<std::sync::Barrier>| {
            std::thread::spawn(move || {
                with_default(&d, || {
                    let mut mine = Vec::new();
                    for _ in 0..50 {
                        barrier.wait(); // both threads trace at the same time
                        mine.push(one_trace());
                    }
                    mine
                })
            })
        };
        let ta = run(Dispatch::new(a.clone()).enabled(true), barrier.clone());
        let tb = run(Dispatch::new(b.clone()).enabled(true), barrier);
        let (ids_a, ids_b) = (ta.join().unwrap(), tb.join().unwrap());
        assert!(a.flush_for(Duration::from_secs(10)) && b.flush_for(Duration::from_secs(10)));
        let bases = |m: &MemoryCollector| {
            let mut v: Vec<String> = m
                .messages()
                .iter()
                .map(|m| m["base_id"].as_str().unwrap().to_owned())
                .collect();
            v.dedup();
            v
        };
        assert_eq!(bases(&ma), ids_a);
        assert_eq!(bases(&mb), ids_b);
        assert_eq!(ma.messages().len(), 100);
        assert_eq!(mb.messages().len(), 100);
    }

    #[test]
    fn a_trace_keeps_its_scopes_notifier_outside_the_scope() {
        let (memory, a) = collector();
        let d = Dispatch::new(a.clone()).enabled(true);
        let p = with_default(&d, || crate::Profiler::new_root("k", None, None).unwrap());
        // Points of the trace, made on another thread with no scope.
        std::thread::spawn(move || {
            crate::scope::with_trace(Some(p), || {
                assert!(current().is_none());
                Trace::new("elsewhere", Info::new).finish();
            });
        })
        .join()
        .unwrap();
        assert!(a.flush_for(Duration::from_secs(10)));
        assert_eq!(memory.messages().len(), 2);
    }

    #[test]
    fn a_future_sees_its_dispatch_on_every_thread_that_polls_it() {
        let (memory, a) = collector();
        let d = Dispatch::new(a.clone()).enabled(true).trace_sql(true);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (base, threads) = rt.block_on(async {
            let task = tokio::spawn(
                async {
                    let mut threads = std::collections::HashSet::new();
                    let base = crate::trace_scope(async {
                        let p = crate::init("k", None, None).unwrap();
                        for _ in 0..200 {
                            threads.insert(std::thread::current().id());
                            assert!(crate::trace_sql(), "the dispatch is seen at every poll");
                            Trace::new("step", Info::new).finish();
                            tokio::task::yield_now().await;
                        }
                        p.base_id().to_string()
                    })
                    .await;
                    (base, threads)
                }
                .with_dispatch(d),
            );
            // Meanwhile, this task has no dispatch.
            assert!(current().is_none());
            task.await.unwrap()
        });
        println!("polled on {} threads", threads.len());
        assert!(current().is_none(), "nothing left installed here");
        assert!(a.flush_for(Duration::from_secs(10)));
        assert_eq!(memory.trace(&base).len(), 400);
    }

    #[test]
    fn a_dropped_future_is_dropped_in_its_scope() {
        struct SeesScope(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for SeesScope {
            fn drop(&mut self) {
                self.0
                    .store(crate::trace_sql(), std::sync::atomic::Ordering::SeqCst);
            }
        }
        let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let guard = SeesScope(seen.clone());
        let fut = async move {
            let _g = guard;
            std::future::pending::<()>().await
        }
        .with_dispatch(Dispatch::new(Arc::new(NoopNotifier)).trace_sql(true));
        let mut fut = Box::pin(fut);
        let waker = std::task::Waker::noop();
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
        drop(fut);
        assert!(seen.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn spawn_traced_and_spawn_blocking_traced_carry_the_scope() {
        let (memory, a) = collector();
        let d = Dispatch::new(a.clone()).enabled(true).trace_sql(true);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (in_task, in_blocking, bases) = rt.block_on(
            async {
                let t = crate::spawn_traced(async {
                    tokio::task::yield_now().await;
                    (crate::trace_sql(), one_trace())
                });
                let b = crate::spawn_blocking_traced(|| (crate::trace_sql(), one_trace()));
                let (t, b) = (t.await.unwrap(), b.await.unwrap());
                (t.0, b.0, [t.1, b.1])
            }
            .with_dispatch(d),
        );
        assert!(in_task && in_blocking);
        assert!(a.flush_for(Duration::from_secs(10)));
        for base in bases {
            assert_eq!(
                memory.trace(&base).len(),
                2,
                "{base} went to the scope's notifier"
            );
        }
        // Without a scope, a spawned task sees none.
        let outside =
            rt.block_on(async { crate::spawn_traced(async { current().is_none() }).await });
        assert!(outside.unwrap());
    }
}
