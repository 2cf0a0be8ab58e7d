//! Support for the `#[trace]` and `#[trace_impl]` macros. Not a public API: may change in any
//! release.

pub use crate::context::TracedFn;
use crate::{Info, Trace};
use serde_json::Value;
use std::fmt::{Debug, Display};

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
    let mut s = String::from("(");
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
