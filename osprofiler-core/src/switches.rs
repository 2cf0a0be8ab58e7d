//! Runtime switches: relaxed atomics, so a running service can turn tracing, SQL text and
//! error indexing on and off without restarting anything.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

static ENABLED: AtomicBool = AtomicBool::new(true);
static TRACE_SQL: AtomicBool = AtomicBool::new(false);
static TRACE_SQL_PARAMS: AtomicBool = AtomicBool::new(false);
static FILTER_ERROR_TRACE: AtomicBool = AtomicBool::new(false);

/// Whether profiling is on (default true for the library; `init_from_conf` sets it from
/// the `enabled` option). When off, `init` starts nothing and every hook returns at once.
#[inline]
pub fn is_enabled() -> bool {
    ENABLED.load(Relaxed)
}
/// Turns profiling on or off for the whole process, at once.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Relaxed)
}
/// Whether DB adapters record SQL text (`trace_sqlalchemy` / `trace_sql`, default false).
#[inline]
pub fn trace_sql() -> bool {
    TRACE_SQL.load(Relaxed)
}
/// Turns SQL text recording on or off, without reconnecting anything.
pub fn set_trace_sql(on: bool) {
    TRACE_SQL.store(on, Relaxed)
}
/// Whether DB adapters record bound parameter values (default false: they carry secrets).
#[inline]
pub fn trace_sql_params() -> bool {
    TRACE_SQL_PARAMS.load(Relaxed)
}
/// Turns parameter recording on or off.
pub fn set_trace_sql_params(on: bool) {
    TRACE_SQL_PARAMS.store(on, Relaxed)
}
/// Whether collectors index error traces (`filter_error_trace`, default false).
#[inline]
pub fn filter_error_trace() -> bool {
    FILTER_ERROR_TRACE.load(Relaxed)
}
/// Turns error-trace indexing on or off.
pub fn set_filter_error_trace(on: bool) {
    FILTER_ERROR_TRACE.store(on, Relaxed)
}
