//! # osprofiler-http
//!
//! Cross-service trace propagation for [osprofiler-core], wire-compatible with OpenStack's
//! OSProfiler: the caller sends its trace (`base_id` and its current point as the callee's
//! parent) in HMAC-signed `X-Trace-Info`/`X-Trace-HMAC` headers; the callee verifies them and
//! continues the same trace.
//!
//! - [`OsProfilerLayer`]: tower layer for servers (axum, hyper, tonic), OSProfiler's WSGI
//!   middleware.
//! - [`TraceClientLayer`]: tower layer for `http::Request` clients; [`TraceMiddleware`] for
//!   reqwest-middleware. Both add the headers and record an `http`/`https` point.
//! - [`rpc`]: the trace context for RPC request contexts (oslo-style `trace_info`).
//!
//! [osprofiler-core]: osprofiler_core

mod client;
#[cfg(feature = "reqwest")]
mod reqwest_mw;
pub mod rpc;
mod server;
pub mod w3c;

pub use client::{TraceClient, TraceClientFuture, TraceClientLayer};
#[cfg(feature = "reqwest")]
pub use reqwest_mw::TraceMiddleware;
pub use server::{OsProfiler, OsProfilerLayer, ResponseFuture, verify_request};

use serde_json::json;

/// `X-Trace-Info`, lowercase and parsed once.
pub(crate) static X_TRACE_INFO: http::HeaderName = http::HeaderName::from_static("x-trace-info");
/// `X-Trace-HMAC`, lowercase and parsed once.
pub(crate) static X_TRACE_HMAC: http::HeaderName = http::HeaderName::from_static("x-trace-hmac");

/// `{"request": {"path", "query", "method", "scheme"}}` (server) or
/// `{"requests": {"method", "query", "path", "hostname", "port", "scheme"}}` (client), built
/// by the notifier's worker from the request's URI and method (cheap clones).
pub(crate) struct RequestInfo {
    pub(crate) uri: http::Uri,
    pub(crate) method: http::Method,
    pub(crate) client: bool,
}

impl osprofiler_core::LazyInfo for RequestInfo {
    fn write(&self, info: &mut osprofiler_core::Info) {
        let uri = &self.uri;
        let scheme = uri.scheme_str().unwrap_or("http");
        if self.client {
            let port = uri
                .port_u16()
                .unwrap_or(if scheme == "https" { 443 } else { 80 });
            info.insert(
                "requests".into(),
                json!({
                    "method": self.method.as_str(),
                    "query": uri.query().unwrap_or(""),
                    "path": uri.path(),
                    "hostname": uri.host().unwrap_or(""),
                    "port": port,
                    "scheme": scheme,
                }),
            );
        } else {
            info.insert(
                "request".into(),
                json!({
                    "path": uri.path(),
                    "query": uri.query().unwrap_or(""),
                    "method": self.method.as_str(),
                    "scheme": scheme,
                }),
            );
        }
    }
}

/// `{"<key>": {"status_code": n}}`, built by the worker.
pub(crate) struct StatusInfo(pub(crate) &'static str, pub(crate) u16);

impl osprofiler_core::LazyInfo for StatusInfo {
    fn write(&self, info: &mut osprofiler_core::Info) {
        info.insert(self.0.into(), json!({"status_code": self.1}));
    }
}

/// The point name for a client call: the URL scheme (`http` or `https`), as OSProfiler.
pub(crate) fn point_name(scheme: &str) -> &'static str {
    if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        "http"
    }
}
