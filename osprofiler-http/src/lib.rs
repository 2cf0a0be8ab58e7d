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
//! - [`w3c`]: W3C `traceparent`, off by default.
//!
//! RPC — the trace in request contexts, AMQP connections and headers, oslo.messaging's server
//! and client — is the [osprofiler-oslo] crate's. The old paths, `rpc` (and `rpc::amqp`,
//! `oslo` with the features of those names), still name its items in 0.2, deprecated.
//!
//! [osprofiler-core]: osprofiler_core
//! [osprofiler-oslo]: osprofiler_oslo

#![cfg_attr(docsrs, feature(doc_cfg))]

/// Declares the deprecated aliases of items that moved to osprofiler-oslo, one line each: the
/// item of the same name at `$new`, with a note that gives the user that new path (`deprecated`
/// takes no `concat!`; it is not inherited through a `use` re-export either, which rustc does
/// not mark deprecated).
macro_rules! moved {
    ($(type $name:ident = $new:path => $note:literal;)*) => {$(
        #[doc = concat!("Moved: [`", stringify!($new), "`].")]
        #[deprecated(since = "0.2.0", note = $note)]
        pub type $name = $new;
    )*};
    ($(const $name:ident: $ty:ty = $new:path => $note:literal;)*) => {$(
        #[doc = concat!("Moved: [`", stringify!($new), "`].")]
        #[deprecated(since = "0.2.0", note = $note)]
        pub const $name: $ty = $new;
    )*};
}

mod client;
#[cfg(feature = "oslo")]
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate (feature `rpc`): use osprofiler_oslo::{RpcServer, RpcClient, ...}"
)]
pub mod oslo;
#[cfg(feature = "reqwest")]
mod reqwest_mw;
#[deprecated(
    since = "0.2.0",
    note = "moved to the osprofiler-oslo crate: use osprofiler_oslo::context and osprofiler_oslo::amqp"
)]
pub mod rpc;
mod server;
pub mod w3c;

pub use client::{TraceClient, TraceClientFuture, TraceClientLayer};
/// The sampler [`OsProfilerLayer::sampler`] takes ([`osprofiler_core::sampling::Sampler`]).
pub use osprofiler_core::sampling::Sampler;
#[cfg(feature = "reqwest")]
pub use reqwest_mw::TraceMiddleware;
pub use server::{OsProfiler, OsProfilerLayer, ResponseFuture, verify_request};

use serde_json::json;

/// `X-Trace-Info`, lowercase and parsed once.
pub(crate) static X_TRACE_INFO: http::HeaderName = http::HeaderName::from_static("x-trace-info");
/// `X-Trace-HMAC`, lowercase and parsed once.
pub(crate) static X_TRACE_HMAC: http::HeaderName = http::HeaderName::from_static("x-trace-hmac");
/// `X-Trace-Provisional` ([`osprofiler_core::sampling::X_TRACE_PROVISIONAL`]), lowercase and
/// parsed once.
pub(crate) static X_TRACE_PROVISIONAL: http::HeaderName =
    http::HeaderName::from_static("x-trace-provisional");

/// `{"request": {"path", "query", "method", "scheme"}}` (server) or
/// `{"requests": {"method", "query", "path", "hostname", "port", "scheme"}}` (client), built
/// by the notifier's worker from what the request thread copied: the method, scheme and port,
/// and host, path and query in one inline buffer (no allocation beyond the info itself for
/// URIs up to [`INLINE_URI`] bytes; a clone of the `Uri` would allocate and share its buffer).
///
/// The same value serves the point's stop message: `{"response": {"status_code"}}` (server) or
/// `{"requests": {"status_code"}}` (client) once [`RequestInfo::set_status`] has been called.
pub(crate) struct RequestInfo {
    status: std::sync::atomic::AtomicU16,
    method: http::Method,
    scheme: Option<http::uri::Scheme>,
    port: Option<u16>,
    /// Host (client only), path and query, back to back.
    text: UriText,
    host_len: usize,
    path_len: usize,
    client: bool,
}

/// Host, path and query that fit in a request info's own allocation.
const INLINE_URI: usize = 96;

enum UriText {
    Inline(u8, [u8; INLINE_URI]),
    Heap(Box<str>),
}

impl RequestInfo {
    pub(crate) fn new(method: &http::Method, uri: &http::Uri, client: bool) -> RequestInfo {
        let host = if client { uri.host().unwrap_or("") } else { "" };
        let path = uri.path();
        let query = uri.query().unwrap_or("");
        let len = host.len() + path.len() + query.len();
        let text = if len <= INLINE_URI {
            let mut buf = [0u8; INLINE_URI];
            let mut at = 0;
            for part in [host, path, query] {
                buf[at..at + part.len()].copy_from_slice(part.as_bytes());
                at += part.len();
            }
            UriText::Inline(len as u8, buf)
        } else {
            UriText::Heap([host, path, query].concat().into_boxed_str())
        };
        RequestInfo {
            status: std::sync::atomic::AtomicU16::new(0),
            method: method.clone(),
            scheme: uri.scheme().cloned(),
            port: uri.port_u16(),
            text,
            host_len: host.len(),
            path_len: path.len(),
            client,
        }
    }

    /// Records the response status for the stop message (before it is sent: the queue orders
    /// the store before the worker's read).
    pub(crate) fn set_status(&self, status: http::StatusCode) {
        self.status
            .store(status.as_u16(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Host, path and query.
    fn parts(&self) -> (&str, &str, &str) {
        let text = match &self.text {
            // The bytes of three whole `&str`s: valid UTF-8, split at char boundaries.
            UriText::Inline(len, buf) => {
                std::str::from_utf8(&buf[..usize::from(*len)]).expect("copied from str")
            }
            UriText::Heap(s) => s,
        };
        let (host, rest) = text.split_at(self.host_len);
        let (path, query) = rest.split_at(self.path_len);
        (host, path, query)
    }
}

impl osprofiler_core::message::LazyInfo for RequestInfo {
    fn write(&self, info: &mut osprofiler_core::Info) {
        self.write_for(osprofiler_core::message::Phase::Start, info);
    }

    fn heap_size(&self) -> usize {
        match &self.text {
            UriText::Inline(..) => 0,
            UriText::Heap(t) => t.len(),
        }
    }

    fn write_for(&self, phase: osprofiler_core::message::Phase, info: &mut osprofiler_core::Info) {
        if phase == osprofiler_core::message::Phase::Stop {
            let status = self.status.load(std::sync::atomic::Ordering::Relaxed);
            if status != 0 {
                let key = if self.client { "requests" } else { "response" };
                info.insert(key.into(), json!({ "status_code": status }));
            }
            return;
        }
        let (host, path, query) = self.parts();
        let scheme = self.scheme.as_ref().map_or("http", |s| s.as_str());
        if self.client {
            let port = self
                .port
                .unwrap_or(if scheme == "https" { 443 } else { 80 });
            info.insert(
                "requests".into(),
                json!({
                    "method": self.method.as_str(),
                    "query": query,
                    "path": path,
                    "hostname": host,
                    "port": port,
                    "scheme": scheme,
                }),
            );
        } else {
            info.insert(
                "request".into(),
                json!({
                    "path": path,
                    "query": query,
                    "method": self.method.as_str(),
                    "scheme": scheme,
                }),
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use osprofiler_core::message::LazyInfo as _;

    fn written(info: &RequestInfo) -> serde_json::Value {
        let mut map = osprofiler_core::Info::new();
        info.write(&mut map);
        serde_json::Value::Object(map)
    }

    #[test]
    fn request_info_copies_short_and_long_uris_exactly() {
        let long_path = format!("/v2/{}", "servers/".repeat(20));
        for (uri, path, query) in [
            (
                "https://api.example:8443/v2/servers?limit=5",
                "/v2/servers",
                "limit=5",
            ),
            ("http://h/", "/", ""),
            (
                &*format!("http://a-rather-long-host-name.example.org{long_path}?q=1"),
                &*long_path,
                "q=1",
            ),
        ] {
            let parsed: http::Uri = uri.parse().unwrap();
            let client = written(&RequestInfo::new(&http::Method::POST, &parsed, true));
            let r = &client["requests"];
            assert_eq!(r["hostname"], parsed.host().unwrap(), "{uri}");
            assert_eq!(
                (r["path"].as_str(), r["query"].as_str()),
                (Some(path), Some(query))
            );
            assert_eq!(r["method"], "POST");
            let default_port = if uri.starts_with("https") { 443 } else { 80 };
            assert_eq!(r["port"], parsed.port_u16().unwrap_or(default_port));
            let server = written(&RequestInfo::new(&http::Method::GET, &parsed, false));
            let r = &server["request"];
            assert_eq!(
                (r["path"].as_str(), r["query"].as_str()),
                (Some(path), Some(query))
            );
            assert_eq!(r["scheme"], parsed.scheme_str().unwrap());
        }
        let origin_form: http::Uri = "/only/path".parse().unwrap();
        let server = written(&RequestInfo::new(&http::Method::GET, &origin_form, false));
        assert_eq!(
            server,
            json!({"request": {"path": "/only/path", "query": "", "method": "GET", "scheme": "http"}})
        );
    }
}

// The README's examples are compiled (and run, unless `no_run`) as doctests. They use the
// `reqwest` feature: `cargo test -p osprofiler-http --doc --features reqwest` (the workspace's
// tests turn it on).
#[cfg(all(doctest, feature = "reqwest"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
