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
//! use osprofiler_core::{self as osp, memory::MemoryCollector, report::Report};
//! use osprofiler_core::notifier::{QueueNotifier, QueueOptions};
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
//! let report = Report::build(&memory.trace(&p.base_id().to_string()));
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
//!
//! ## Tests
//! The notifier and the switches are process-wide; a test that needs its own installs a
//! [`dispatch::Dispatch`] for a block ([`dispatch::with_default`]) or a future
//! ([`dispatch::DispatchFutureExt::with_dispatch`]), so tests of one binary run in parallel.
//!
//! ## Where things are
//! The crate root has what a service needs day to day; the rest is in its module: [`context`]
//! (the trace a task belongs to), [`guard`] (the point guard), [`scope`] (futures and spawned
//! tasks), [`message`] and [`id`] (what points emit), [`clock`], [`headers`] (signed trace
//! headers), [`config`], [`notifier`] (queue and drivers), [`report`], [`memory`] (an in-memory
//! collector), [`db`] (the `db` point model of the DB adapters), [`switches`], [`dispatch`]
//! (a notifier and switches of a scope's own), [`identity`].

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod analysis;
pub mod clock;
pub mod config;
pub mod context;
pub mod db;
pub mod dispatch;
pub mod guard;
pub mod headers;
pub mod id;
pub mod identity;
pub mod listing;
pub mod memory;
pub mod message;
pub mod notifier;
pub mod pyjson;
pub mod report;
pub mod sampling;
pub mod scope;
pub mod stats;
pub mod switches;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

// What a service needs for the quickstart: start traces and points, carry them across awaits
// and tasks, configure from [profiler], sign outgoing calls, and the runtime switches.
pub use config::{ProfilerConfig, init_from_conf};
pub use context::{Profiler, clean, get, init, is_active, start, stop, trace_headers};
pub use guard::Trace;
pub use headers::TraceHeaders;
pub use message::Info;
pub use scope::{TraceFutureExt, trace_scope};
#[cfg(feature = "tokio")]
pub use scope::{spawn_blocking_traced, spawn_traced};
pub use switches::{
    filter_error_trace, is_enabled, set_enabled, set_filter_error_trace, set_trace_sql,
    set_trace_sql_params, trace_sql, trace_sql_params,
};

#[cfg(feature = "macros")]
pub use osprofiler_macros::{trace, trace_impl};

pub(crate) use identity::identity;

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

/// Support for the `#[trace]` macros; not a public API.
#[doc(hidden)]
pub mod __private;

// The README's examples are compiled (and run, unless `no_run`) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
