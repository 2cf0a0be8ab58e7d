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

use serde_json::{Value, json};

/// `{"<key>": {"path", "query", "method", "scheme"}}` as OSProfiler's WSGI middleware records.
pub(crate) fn request_info<B>(key: &str, req: &http::Request<B>) -> osprofiler_core::Info {
    let uri = req.uri();
    let mut info = osprofiler_core::Info::new();
    info.insert(
        key.to_owned(),
        json!({
            "path": uri.path(),
            "query": uri.query().unwrap_or(""),
            "method": req.method().as_str(),
            "scheme": uri.scheme_str().unwrap_or("http"),
        }),
    );
    info
}

pub(crate) fn status_info(status: http::StatusCode) -> Value {
    json!({"status_code": status.as_u16()})
}

/// `{"requests": {"method", "query", "path", "hostname", "port", "scheme"}}` as OSProfiler's
/// requests instrumentation records.
pub(crate) fn client_info(
    method: &str,
    url_scheme: &str,
    host: &str,
    port: Option<u16>,
    path: &str,
    query: Option<&str>,
) -> osprofiler_core::Info {
    let port = port.unwrap_or(if url_scheme == "https" { 443 } else { 80 });
    let mut info = osprofiler_core::Info::new();
    info.insert(
        "requests".into(),
        json!({
            "method": method,
            "query": query.unwrap_or(""),
            "path": path,
            "hostname": host,
            "port": port,
            "scheme": url_scheme,
        }),
    );
    info
}

/// The point name for a client call: the URL scheme (`http` or `https`), as OSProfiler.
pub(crate) fn point_name(scheme: &str) -> &'static str {
    if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else {
        "http"
    }
}
