//! A `db` point's guard and the future and stream that stop it.

use super::{DbCall, DbError};
use crate::Trace;
use crate::message::{Info, LazyInfo, Phase};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

/// An open `db` point (or an inactive guard when no trace was active): it stops with
/// [`DbPoint::ok`], [`DbPoint::done`] or [`DbPoint::err`], or as cancelled when dropped.
/// Made by [`super::DbTracer::start`].
#[derive(Debug)]
pub struct DbPoint {
    trace: Trace,
    /// The start message's info, which the stop message of a success shares (with the rows).
    info: Option<Arc<DbInfo>>,
}

/// A `db` point's call (start message) and, after a success, its rows (stop message): one
/// allocation for both messages.
#[derive(Debug)]
struct DbInfo {
    call: DbCall,
    /// [`DbInfo::NO_ROWS`] until [`DbPoint::ok`].
    rows: AtomicU64,
}

impl DbInfo {
    const NO_ROWS: u64 = u64::MAX;
}

impl LazyInfo for DbInfo {
    fn write(&self, info: &mut Info) {
        self.call.write(info);
    }

    fn db_api(&self) -> Option<&str> {
        self.call.db_api()
    }

    fn heap_size(&self) -> usize {
        self.call.heap_size()
    }

    fn write_for(&self, phase: Phase, info: &mut Info) {
        match phase {
            Phase::Start => self.call.write(info),
            Phase::Stop => {
                let rows = self.rows.load(Ordering::Relaxed);
                if rows != Self::NO_ROWS {
                    info.insert("db".into(), serde_json::json!({ "rows": rows }));
                }
            }
        }
    }
}

/// Marks a point whose future was dropped before the call finished.
#[derive(Debug, Clone, Copy)]
struct Cancelled;

impl LazyInfo for Cancelled {
    fn write(&self, info: &mut Info) {
        info.insert("cancelled".into(), true.into());
    }
}

impl DbPoint {
    /// A guard that records nothing.
    #[inline]
    pub fn inactive() -> DbPoint {
        DbPoint {
            trace: Trace::inactive(),
            info: None,
        }
    }

    pub(super) fn open(call: DbCall) -> DbPoint {
        let info = Arc::new(DbInfo {
            call,
            rows: AtomicU64::new(DbInfo::NO_ROWS),
        });
        let trace = Trace::new_detached("db", || crate::message::lazy_shared(info.clone()));
        if !trace.is_active() {
            return DbPoint::inactive();
        }
        DbPoint {
            trace,
            info: Some(info),
        }
    }

    /// Whether the point is recorded (a trace was active).
    #[inline]
    pub fn is_active(&self) -> bool {
        self.trace.is_active()
    }

    /// Stops the point with the rows returned or affected.
    #[inline]
    pub fn ok(mut self, rows: u64) {
        let trace = self.take_trace();
        if let Some(info) = self.info.take() {
            // Before the stop message is queued, which orders it before the worker's read.
            info.rows
                .store(rows.min(DbInfo::NO_ROWS - 1), Ordering::Relaxed);
            trace.finish_shared(info);
        }
    }

    /// Stops the point with no row count.
    #[inline]
    pub fn done(mut self) {
        self.take_trace().finish();
    }

    /// Stops the point with an error.
    pub fn err(mut self, error: DbError) {
        self.take_trace().finish_lazy(error);
    }

    /// Stops the point with the outcome of a call: `rows` of a success (`None`: no count), or
    /// the error described by `error`. Neither is called for an inactive point.
    #[inline]
    pub fn finish<T, E>(
        self,
        result: &Result<T, E>,
        rows: impl FnOnce(&T) -> Option<u64>,
        error: impl FnOnce(&E) -> DbError,
    ) {
        if !self.is_active() {
            return;
        }
        match result {
            Ok(v) => match rows(v) {
                Some(n) => self.ok(n),
                None => self.done(),
            },
            Err(e) => self.err(error(e)),
        }
    }

    /// The point, leaving an inactive guard: a point taken out has been stopped, so the drop
    /// of the `DbPoint` does not stop it again as cancelled.
    #[inline]
    fn take_trace(&mut self) -> Trace {
        std::mem::replace(&mut self.trace, Trace::inactive())
    }
}

impl Drop for DbPoint {
    #[inline]
    fn drop(&mut self) {
        if self.trace.is_active() {
            self.take_trace().finish_lazy(Cancelled);
        }
    }
}

pin_project_lite::pin_project! {
    /// A DB call's future run as its `db` point: see [`super::DbTracer::run`].
    #[must_use = "futures do nothing unless polled"]
    pub struct DbFuture<F, T, E> {
        #[pin]
        inner: F,
        point: DbPoint,
        rows: fn(&T) -> Option<u64>,
        error: fn(&E) -> DbError,
    }
}

impl<F, T, E> DbFuture<F, T, E> {
    /// `inner` as `point`: the point stops when `inner` completes (with `rows` of its value or
    /// the `error` of its error), or as cancelled when this future is dropped first.
    #[inline]
    pub fn new(
        inner: F,
        point: DbPoint,
        rows: fn(&T) -> Option<u64>,
        error: fn(&E) -> DbError,
    ) -> Self {
        DbFuture {
            inner,
            point,
            rows,
            error,
        }
    }
}

impl<F, T, E> std::fmt::Debug for DbFuture<F, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbFuture")
            .field("point", &self.point)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for DbFuture<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        std::mem::replace(this.point, DbPoint::inactive()).finish(&result, *this.rows, *this.error);
        Poll::Ready(result)
    }
}

pin_project_lite::pin_project! {
    /// A stream of rows (or results) whose `db` point stops with it: at its end with the rows
    /// counted, at its first error, or when dropped (as cancelled). With an inactive point it
    /// is the inner stream and a branch.
    pub struct DbStream<S, T, E> {
        #[pin]
        inner: S,
        point: DbPoint,
        rows: u64,
        count: fn(&T) -> u64,
        error: fn(&E) -> DbError,
    }
}

impl<S, T, E> DbStream<S, T, E> {
    /// Wraps `inner`; `count` gives the rows an item stands for, `error` describes an error.
    pub fn new(inner: S, point: DbPoint, count: fn(&T) -> u64, error: fn(&E) -> DbError) -> Self {
        DbStream {
            inner,
            point,
            rows: 0,
            count,
            error,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, T, E> std::fmt::Debug for DbStream<S, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbStream")
            .field("point", &self.point)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<S, T, E> futures_core::Stream for DbStream<S, T, E>
where
    S: futures_core::Stream<Item = Result<T, E>>,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        if this.point.is_active() {
            match &item {
                Some(Ok(v)) => *this.rows += (this.count)(v),
                Some(Err(e)) => {
                    std::mem::replace(this.point, DbPoint::inactive()).err((this.error)(e))
                }
                None => std::mem::replace(this.point, DbPoint::inactive()).ok(*this.rows),
            }
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
