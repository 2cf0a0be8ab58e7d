//! Runtime switches: relaxed atomics, so a running service can turn tracing, SQL text and
//! error indexing on and off without restarting anything.
//!
//! The setters change the process-wide values. A [dispatch scope](crate::dispatch) may set its
//! own: inside it, the getters return the scope's value where it sets one.

use crate::dispatch::{self, ENABLED, STATE, any_scope};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

static TRACE_SQL: AtomicBool = AtomicBool::new(false);
static TRACE_SQL_PARAMS: AtomicBool = AtomicBool::new(false);
static FILTER_ERROR_TRACE: AtomicBool = AtomicBool::new(false);

/// A switch: the scope's value if a scope installed here sets it, else the process-wide one.
#[inline(always)]
fn read(global: &AtomicBool, pick: fn(&dispatch::Inner) -> Option<bool>) -> bool {
    if any_scope()
        && let Some(on) = dispatch::scoped(pick)
    {
        return on;
    }
    global.load(Relaxed)
}

/// Whether profiling is on (default true for the library; `init_from_conf` sets it from
/// the `enabled` option). When off, `init` starts nothing and every hook returns at once.
///
/// ```
/// assert!(osprofiler_core::is_enabled());
/// ```
#[inline]
pub fn is_enabled() -> bool {
    match STATE.load(Relaxed) {
        // Off, no scope: one compare, as when this was a plain boolean.
        0 => false,
        ENABLED => true,
        // Inline, no call: a call here would keep the hooks' other values out of registers.
        state => dispatch::enabled_here().unwrap_or(state & ENABLED != 0),
    }
}

/// Turns profiling on or off for the whole process, at once (a [scope](crate::dispatch) that
/// sets its own keeps it).
pub fn set_enabled(on: bool) {
    if on {
        STATE.fetch_or(ENABLED, Relaxed);
    } else {
        STATE.fetch_and(!ENABLED, Relaxed);
    }
}
/// Whether DB adapters record SQL text (`trace_sqlalchemy` / `trace_sql`, default false).
#[inline]
pub fn trace_sql() -> bool {
    read(&TRACE_SQL, |d| d.trace_sql)
}
/// Turns SQL text recording on or off, without reconnecting anything.
pub fn set_trace_sql(on: bool) {
    TRACE_SQL.store(on, Relaxed)
}
/// Whether DB adapters record bound parameter values (default false: they carry secrets).
#[inline]
pub fn trace_sql_params() -> bool {
    read(&TRACE_SQL_PARAMS, |d| d.trace_sql_params)
}
/// Turns parameter recording on or off.
pub fn set_trace_sql_params(on: bool) {
    TRACE_SQL_PARAMS.store(on, Relaxed)
}
/// Whether collectors index error traces (`filter_error_trace`, default false).
#[inline]
pub fn filter_error_trace() -> bool {
    read(&FILTER_ERROR_TRACE, |d| d.filter_error_trace)
}
/// Turns error-trace indexing on or off.
pub fn set_filter_error_trace(on: bool) {
    FILTER_ERROR_TRACE.store(on, Relaxed)
}
