//! Support for the `#[trace]` and `#[trace_impl]` macros. Not a public API: may change in any
//! release.

use crate::context::Frame;
use crate::scope::Entered;
use crate::{Info, Trace};
use serde_json::Value;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Opens the point of a sync fn and makes it current.
#[inline(always)]
pub fn start_fn(
    name: &'static str,
    fn_name: &'static str,
    args: impl FnOnce() -> Option<String>,
) -> Trace {
    Trace::__call(name, fn_name, args, true)
}

/// Opens the point of an async fn; [`TracedFn`] makes it current while the body is polled.
#[inline(always)]
pub fn start_fn_detached(
    name: &'static str,
    fn_name: &'static str,
    args: impl FnOnce() -> Option<String>,
) -> Trace {
    Trace::__call(name, fn_name, args, false)
}

/// Records `{"function": {"result": "<Debug>"}}` (only generated when `hide_result = false`).
#[inline]
pub fn record_result<T: Debug + ?Sized>(trace: &mut Trace, result: &T) {
    trace.stop_info(|i| {
        let mut f = Info::new();
        f.insert("result".into(), format!("{result:?}").into());
        i.insert("function".into(), Value::Object(f));
    });
}

/// Formats args like Python's `str(args)` tuple: `()`, `(a,)`, `(a, b)`.
pub fn tuple(items: &[&dyn Debug]) -> String {
    use std::fmt::Write as _;
    // Sized for a few short arguments: grown from 1 byte it reallocated three times.
    let mut s = String::with_capacity(16 * items.len() + 8);
    s.push('(');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{item:?}");
    }
    if items.len() == 1 {
        s.push(',');
    }
    s.push(')');
    s
}

/// Autoref dispatch: `(&Wrap(&value)).__osp_record(&mut trace)` records the error of a `Result`
/// whose error type implements `Display`, and does nothing for any other value.
pub struct Wrap<'a, T>(pub &'a T);

/// Picked for `Result<T, E: Display>`.
pub trait ViaResult {
    /// Records `etype`/`message` when the value is an `Err`.
    fn __osp_record(&self, trace: &mut Trace);
}

impl<T, E: Display> ViaResult for Wrap<'_, Result<T, E>> {
    #[inline]
    fn __osp_record(&self, trace: &mut Trace) {
        if let Err(e) = self.0 {
            trace.error_with(std::any::type_name::<E>(), e);
            // A failed call carries no result, as in Python.
            trace.stop_info(|i| {
                i.remove("function");
            });
        }
    }
}

/// Picked for everything else.
pub trait ViaAny {
    /// Does nothing.
    fn __osp_record(&self, trace: &mut Trace);
}

impl<T> ViaAny for &Wrap<'_, T> {
    #[inline]
    fn __osp_record(&self, _trace: &mut Trace) {}
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
