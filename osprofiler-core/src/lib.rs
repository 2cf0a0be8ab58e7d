//! # osprofiler-core
//!
//! The core of osprofiler-rs, a cross-service profiler wire-compatible with OpenStack's
//! [OSProfiler](https://docs.openstack.org/osprofiler/): trace context, points, signed trace
//! headers, the notifier, configuration and reports. It depends on no database, HTTP or broker
//! crate; the adapters (`osprofiler-sqlx`, `osprofiler-http`, ...) and collectors build on it.
//!
//! A trace is a tree of *points*. Each point sends a `<name>-start` and a `<name>-stop`
//! message with `base_id` (the trace), `trace_id` (the point), `parent_id`, a timestamp and
//! `info`, in exactly the format Python's OSProfiler 4.4.0 writes.
//!
//! ```
//! use osprofiler_core::{self as osp, MemoryCollector, notifier::{QueueNotifier, QueueOptions}};
//! use std::time::Duration;
//!
//! // Where messages go: here an in-memory collector behind the standard queue.
//! let memory = MemoryCollector::new();
//! let notifier = QueueNotifier::start(memory.clone(), QueueOptions::default()).unwrap();
//! osp::notifier::set(notifier.clone());
//!
//! // Start a trace, open points.
//! let p = osp::init("SECRET_KEY", None, None).unwrap();
//! {
//!     let _rpc = osp::Trace::new("rpc", || osp::info!({"method": "get_user"}));
//!     let _db = osp::Trace::new("db", || osp::info!({"db": {"statement": "SELECT 1"}}));
//! } // both stop here, innermost first
//! osp::clean();
//!
//! notifier.flush_for(Duration::from_secs(5));
//! let report = osp::Report::build(&memory.trace(&p.base_id().to_string()));
//! assert_eq!(report.to_value()["children"][0]["children"][0]["info"]["name"], "db");
//! ```
//!
//! ## Free when off
//! Every hook first checks the global `enabled` switch and whether a trace is active in the
//! current task; when either says no it returns at once — no allocation, no clock read, no id
//! generation, no info building (info is passed as a closure).
//!
//! ## Async
//! The context follows the future: see [`trace_scope`], [`TraceFutureExt`] and
//! [`spawn_traced`].

#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod context;
pub mod db;
pub mod headers;
mod memory;
mod message;
pub mod notifier;
pub mod pyjson;
mod report;

pub use config::{
    ConfigError, DriverFactory, InitError, NotifierGuard, OPTIONS, ProfilerConfig,
    ProfilerConfigBuilder, create_driver, init_from_conf, redact, register_driver,
};
pub use context::{
    InTrace, Profiler, Trace, TraceFutureExt, TraceOwned, clean, get, init, is_active, start, stop,
    trace_scope, with_trace,
};
#[cfg(feature = "tokio")]
pub use context::{spawn_blocking_traced, spawn_traced};
pub use headers::{TraceHeaders, trace_headers};
pub use memory::MemoryCollector;
pub use message::{
    Id, Identity, Info, IntoInfo, Lazy, LazyInfo, Message, Phase, format_timestamp, lazy,
    lazy_shared, parse_timestamp,
};
pub use report::{Report, ReportOptions};
pub use switches::{
    filter_error_trace, is_enabled, set_enabled, set_filter_error_trace, set_trace_sql,
    set_trace_sql_params, trace_sql, trace_sql_params,
};
#[allow(deprecated)]
pub use switches::{set_trace_requests, trace_requests};

#[cfg(feature = "macros")]
pub use osprofiler_macros::{trace, trace_impl};

#[doc(hidden)]
pub use serde_json as __serde_json;

/// Builds an [`Info`] map with `serde_json::json!` syntax.
///
/// ```
/// let info = osprofiler_core::info!({"db": {"statement": "SELECT 1"}});
/// assert_eq!(info["db"]["statement"], "SELECT 1");
/// ```
#[macro_export]
macro_rules! info {
    ($($json:tt)+) => {
        match $crate::__serde_json::json!($($json)+) {
            $crate::__serde_json::Value::Object(map) => map,
            _ => ::core::panic!("osprofiler_core::info! takes a JSON object"),
        }
    };
}

/// Runtime switches: relaxed atomics, so a running service can turn tracing on and off.
mod switches {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    static ENABLED: AtomicBool = AtomicBool::new(true);
    static TRACE_SQL: AtomicBool = AtomicBool::new(false);
    static TRACE_SQL_PARAMS: AtomicBool = AtomicBool::new(false);
    static TRACE_REQUESTS: AtomicBool = AtomicBool::new(false);
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
    /// Whether HTTP clients are traced (`trace_requests`, default false).
    #[deprecated(
        since = "0.1.1",
        note = "nothing reads it: adding osprofiler-http's client middleware is the opt-in"
    )]
    #[inline]
    pub fn trace_requests() -> bool {
        TRACE_REQUESTS.load(Relaxed)
    }
    /// Turns HTTP client tracing on or off.
    #[deprecated(
        since = "0.1.1",
        note = "nothing reads it: adding osprofiler-http's client middleware is the opt-in"
    )]
    pub fn set_trace_requests(on: bool) {
        TRACE_REQUESTS.store(on, Relaxed)
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
}

fn identity_slot() -> &'static std::sync::RwLock<Option<&'static Identity>> {
    static SLOT: std::sync::RwLock<Option<&'static Identity>> = std::sync::RwLock::new(None);
    &SLOT
}

/// The machine's hostname, as Python's `socket.gethostname()`.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Bumped by [`set_identity`]: threads keep the identity they last read with the generation it
/// belonged to, so a trace reads one shared counter instead of taking the lock (whose count
/// every core would write to).
static IDENTITY_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn identity() -> &'static Identity {
    thread_local! {
        static SEEN: std::cell::Cell<Option<(u64, &'static Identity)>> =
            const { std::cell::Cell::new(None) };
    }
    let generation = IDENTITY_GENERATION.load(std::sync::atomic::Ordering::Acquire);
    if let Ok(Some((g, id))) = SEEN.try_with(std::cell::Cell::get)
        && g == generation
    {
        return id;
    }
    let id = locked_identity();
    let _ = SEEN.try_with(|s| s.set(Some((generation, id))));
    id
}

fn locked_identity() -> &'static Identity {
    if let Some(id) = *identity_slot().read().unwrap_or_else(|e| e.into_inner()) {
        return id;
    }
    let mut slot = identity_slot().write().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(|| {
        Box::leak(Box::new(Identity {
            project: None,
            service: None,
            host: hostname().into(),
        }))
    })
}

/// Sets the project, service and host stamped on the messages of traces started from now on
/// (`None` host = this machine's hostname).
///
/// Meant for start-up: each call keeps its few bytes for the life of the process, which is what
/// lets every message refer to the identity without a reference count.
pub fn set_identity(project: Option<&str>, service: Option<&str>, host: Option<&str>) {
    let id = Identity {
        project: project.map(Into::into),
        service: service.map(Into::into),
        host: host.map_or_else(hostname, str::to_owned).into(),
    };
    *identity_slot().write().unwrap_or_else(|e| e.into_inner()) = Some(Box::leak(Box::new(id)));
    // After the new identity is in place: a thread that sees the new generation reads it.
    IDENTITY_GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

fn keys_slot() -> &'static std::sync::RwLock<std::sync::Arc<[String]>> {
    static SLOT: std::sync::OnceLock<std::sync::RwLock<std::sync::Arc<[String]>>> =
        std::sync::OnceLock::new();
    SLOT.get_or_init(|| std::sync::RwLock::new(std::sync::Arc::from(vec!["SECRET_KEY".to_owned()])))
}

/// The keys incoming trace headers are verified against, in order (set by `init_from_conf`;
/// default `["SECRET_KEY"]`). Server middleware reads these unless given its own.
pub fn hmac_keys() -> std::sync::Arc<[String]> {
    keys_slot()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Replaces the process-wide verification keys (rotation: add the new key first, later drop
/// the old one).
pub fn set_hmac_keys(keys: Vec<String>) {
    *keys_slot().write().unwrap_or_else(|e| e.into_inner()) = keys.into();
}

/// Support for the `#[trace]` macros; not a public API.
#[doc(hidden)]
pub mod __private;
